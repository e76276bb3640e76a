//! A one-minute soak of the embedded reference server (`conformance soak`
//! runs the same for as long as you like; docs/RELIABILITY.md has a
//! 30-minute one): a healthy stream loses no frame while publishers, RTMP,
//! WHEP and WebSocket players come and go and hostile clients attack; every
//! gauge of /metrics is back to 0 after it, and the memory of this process
//! (the server and the load) ends within 128 MiB of where it began.

use std::time::Duration;

use conformance::shipped::Fixtures;
use conformance::soak::{run, SoakOptions};
use conformance::target::Target;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minute_of_churn_and_attacks_leaves_the_server_as_it_was() {
    let running = Target::Embedded.start(None).await.unwrap();
    let metrics = format!("{}/metrics", running.server().unwrap().http_url());
    let options = SoakOptions {
        duration: Duration::from_secs(60),
        rate: 4.0,
        metrics: Some(metrics),
        pid: Some(std::process::id()),
        rss_growth_mib: 128,
    };
    let report = run(&running, &Fixtures::with_dirs(Vec::new()), &options).await;
    running.stop().await;
    println!("{}", report.text());
    assert!(report.passed(), "{}", report.text());
    assert!(report.healthy_sent >= 1400, "{}", report.text());
    assert_eq!(
        report.gauges_after.len(),
        4,
        "rtmp_connections, streams_live, webrtc_sessions, video_transcoders"
    );
    for kind in ["rtmp publisher", "rtmp player", "whep player", "websocket player"] {
        assert!(
            report.events.get(kind).is_some_and(|(ok, _)| *ok > 0),
            "{kind}: {}",
            report.text()
        );
    }
}
