//! `conformance bench` against the embedded reference server, over real
//! sockets: publishers send marked pictures over RTMP, players decode them
//! over RTMP, WHEP and the WebSocket channel, and every number in the
//! result comes from what they decoded.

use std::time::Duration;

use conformance::bench::media::MediaSpec;
use conformance::bench::{run, BenchOptions, BenchResult, PlayVia};
use conformance::target::Target;

/// One bench at a time: each loads both cores on its own.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn bench(via: PlayVia, play_params: Option<&str>) -> BenchResult {
    let _turn = ONE_AT_A_TIME.lock().await;
    let running = Target::Embedded.start(None).await.unwrap();
    let options = BenchOptions {
        publishers: 2,
        players: 2,
        via,
        duration: Duration::from_secs(4),
        media: MediaSpec {
            width: 320,
            height: 240,
            fps: 25,
            bitrate: 500_000,
            seconds: 0,
        },
        pid: Some(std::process::id()),
        play_params: play_params.map(str::to_string),
    };
    let mut ticks = 0;
    let result = run(&running, &options, |_| ticks += 1).await.unwrap();
    running.stop().await;
    assert!(ticks >= 6, "progress reported {ticks} times");
    result
}

fn check(result: &BenchResult) {
    assert!(
        result.player_errors.is_empty() && result.publisher_errors.is_empty(),
        "{result:#?}"
    );
    let latency = result.latency_ms.as_ref().expect("latencies");
    // 2 streams x 2 players x ~4 s at 25 fps, less the first picture's wait.
    assert!(latency.count >= 300, "{result:#?}");
    assert!(latency.p50 > 0.0 && latency.p50 <= latency.p99 && latency.p99 <= latency.max);
    assert!(latency.p50 < 1000.0, "{result:#?}");
    assert_eq!(result.first_picture_ms.as_ref().map(|s| s.count), Some(4));
    assert_eq!(result.first_sound_ms.as_ref().map(|s| s.count), Some(4));
    // Each player shows every frame from its first picture on.
    assert!(result.frames_expected >= 280, "{result:#?}");
    assert!(result.frames_lost * 100 <= result.frames_expected, "{result:#?}");
    assert_eq!(result.decode_errors, 0, "{result:#?}");
    assert_eq!(result.frames_decoded + result.frames_lost, result.frames_expected);
    let process = result.process.as_ref().expect("this process watched");
    assert!(process.cpu_seconds > 0.0 && process.rss_max_mib > 10.0 && process.samples.len() >= 6);
    let hist: u64 = result.latency_histogram.iter().map(|b| b.1).sum();
    assert_eq!(hist as usize, latency.count);
}

#[tokio::test]
async fn rtmp_players_measure_latency_from_marked_pictures() {
    check(&bench(PlayVia::Rtmp, None).await);
}

#[tokio::test]
async fn whep_players_measure_latency_from_marked_pictures() {
    check(&bench(PlayVia::Whep, None).await);
}

#[tokio::test]
async fn marks_survive_transcoding_to_a_smaller_picture_over_the_websocket_channel() {
    let result = bench(PlayVia::Ws, Some("width=160")).await;
    check(&result);
}
