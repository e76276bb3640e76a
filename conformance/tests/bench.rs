//! `conformance bench` against the embedded reference server, over real
//! sockets: publishers send marked pictures over RTMP, probes decode them
//! over RTMP, WHEP and the WebSocket channel, light players count what
//! arrives, and every number in the result comes from what they received.

use std::time::Duration;

use conformance::bench::media::MediaSpec;
use conformance::bench::{run, BenchOptions, BenchResult, BenchRun, PlayVia};
use conformance::target::Target;

/// One bench at a time: each loads both cores on its own.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const MEDIA: MediaSpec = MediaSpec {
    width: 320,
    height: 240,
    fps: 25,
    bitrate: 500_000,
    seconds: 0,
};

async fn bench_with(options: BenchOptions) -> BenchRun {
    let _turn = ONE_AT_A_TIME.lock().await;
    let running = Target::Embedded.start(None).await.unwrap();
    let mut ticks = 0;
    let result = run(&running, &options, |_| ticks += 1).await.unwrap();
    running.stop().await;
    assert!(ticks >= 6, "progress reported {ticks} times");
    result
}

async fn bench(via: PlayVia, play_params: Option<&str>) -> BenchResult {
    let options = BenchOptions {
        pid: Some(std::process::id()),
        play_params: play_params.map(str::to_string),
        ..BenchOptions::point(2, 2, via, Duration::from_secs(4), MEDIA)
    };
    let mut run = bench_with(options).await;
    assert_eq!(run.steps.len(), 1);
    let step = run.steps.remove(0);
    assert!(step.light.is_none(), "every viewer is a probe: {step:#?}");
    step
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

/// A ramp of 1 then 5 viewers, one of them a probe: the second step's
/// four light players set up like real players and count every packet.
async fn ramp(via: PlayVia) -> BenchRun {
    let options = BenchOptions {
        steps: vec![1, 5],
        probes: 1,
        pid: Some(std::process::id()),
        ..BenchOptions::point(1, 0, via, Duration::from_secs(3), MEDIA)
    };
    let run = bench_with(options).await;
    assert_eq!(run.steps.len(), 2, "{run:#?}");
    assert_eq!(run.stopped_early, None, "{run:#?}");
    let (first, second) = (&run.steps[0], &run.steps[1]);
    assert_eq!((first.players_per_stream, second.players_per_stream), (1, 5));
    assert!(first.light.is_none(), "{first:#?}");
    // The probe's first picture is the first step's; both steps measure latency.
    assert_eq!(first.first_picture_ms.as_ref().map(|s| s.count), Some(1));
    assert!(second.first_picture_ms.is_none(), "{second:#?}");
    for step in &run.steps {
        // 3 s at 25 fps, the last second in flight.
        assert!(step.frames_expected >= 45 && step.frames_lost <= 1, "{step:#?}");
        assert!(step.latency_ms.as_ref().is_some_and(|l| l.count >= 45), "{step:#?}");
        assert!(step.process.as_ref().is_some_and(|p| p.cpu_seconds > 0.0));
    }
    let light = second.light.as_ref().expect("light players");
    assert_eq!((light.players, light.setup_failures), (4, 0), "{light:#?}");
    assert_eq!(light.setup_ms.as_ref().map(|s| s.count), Some(4));
    assert_eq!(light.counted.lost, 0, "{light:#?}");
    // 500 kbit/s of video and the audio, each light player, within what
    // three seconds' counting can be off by.
    assert!((400.0..900.0).contains(&light.kbps_each), "{light:#?}");
    run
}

#[tokio::test]
async fn a_whep_ramp_counts_srtp_at_light_players_without_decrypting() {
    let run = ramp(PlayVia::Whep).await;
    let light = run.steps[1].light.as_ref().unwrap();
    // Two RTP streams per player (audio and video), about 25 video frames
    // of a few packets and 50 audio packets a second.
    assert_eq!(light.counted.streams, 8, "{light:#?}");
    assert!(light.packets_per_second_each > 75.0, "{light:#?}");
}

#[tokio::test]
async fn an_rtmp_ramp_counts_media_messages_at_light_players() {
    let run = ramp(PlayVia::Rtmp).await;
    let light = run.steps[1].light.as_ref().unwrap();
    // 25 video frames and about 43 AAC frames a second.
    assert!((55.0..85.0).contains(&light.packets_per_second_each), "{light:#?}");
}
