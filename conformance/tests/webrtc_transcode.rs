//! The reference server's video transcoders, over real sockets: ffmpeg
//! publishes over RTMP, the suite's str0m players play over WHEP and decode
//! what they get (openh264); the server's /metrics counters say how many
//! transcoders run.

#[path = "support/tools.rs"]
mod tools;

use std::time::Duration;

use conformance::target::embedded;
use conformance::webrtc::{PlayerOptions, PlayerReport, Signalling, WebRtcPlayer};
use reference_server::ServerHandle;
use tools::{ffmpeg_publish, ffmpeg_publish_flash_codecs, program};

const APP: &str = "live";
const WAIT: Duration = Duration::from_secs(20);

async fn wait_for(what: &str, done: impl Fn() -> bool) {
    for _ in 0..400 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never: {what}");
}

async fn wait_video(server: &ServerHandle, name: &str) {
    let hub = server.hub();
    wait_for(&format!("{name} has video"), || {
        hub.describe(APP, name).is_some_and(|d| d.has_video)
    })
    .await;
}

async fn play(server: &ServerHandle, name: &str) -> WebRtcPlayer {
    let signalling = Signalling::http(&server.http_url(), APP, name);
    WebRtcPlayer::play(signalling, PlayerOptions::video_only())
        .await
        .unwrap()
}

async fn until(player: &WebRtcPlayer, what: &str, done: impl Fn(&PlayerReport) -> bool) -> PlayerReport {
    match player.wait_until(what, done, WAIT).await {
        Ok(report) => report,
        Err(error) => panic!("{what}: {error}\nlast report: {:#?}", player.report()),
    }
}

fn answered_profile(player: &WebRtcPlayer) -> Option<u32> {
    let video = player.answer().video()?;
    let h264 = video.codecs_named("H264").next()?;
    h264.profile_level_id()
}

#[tokio::test]
async fn one_transcoder_per_stream_and_size_shared_by_its_players_and_stopped_with_the_last() {
    let server = embedded(|_| {}).await.unwrap();
    let mut publisher = ffmpeg_publish_flash_codecs(&format!("{}/shared", server.rtmp_url("live")), 440, 60)
        .spawn()
        .unwrap();
    wait_video(&server, "shared").await;

    let mut small_a = play(&server, "shared?width=160").await;
    let mut small_b = play(&server, "shared?width=160").await;
    let mut full = play(&server, "shared").await;
    for (player, size) in [(&small_a, (160, 120)), (&small_b, (160, 120)), (&full, (320, 240))] {
        let report = until(player, "transcoded pictures", |r| r.video.pictures >= 10).await;
        assert_eq!((report.video.width, report.video.height), size, "{report:#?}");
        assert_eq!(report.video.first_frame_was_idr, Some(true));
        assert_eq!(report.video.decode_errors, 0, "{report:#?}");
        assert_eq!(answered_profile(player), Some(0x42e01f), "Constrained Baseline offered");
    }
    let metrics = server.metrics();
    assert_eq!(
        metrics.video_transcoders.get(),
        2,
        "one for 160 wide, shared by two players, one for the full size"
    );
    assert!(metrics.video_transcoded_frames.get() > 0);

    small_a.stop().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        metrics.video_transcoders.get(),
        2,
        "the other 160-wide player still plays"
    );
    small_b.stop().await.unwrap();
    full.stop().await.unwrap();
    wait_for("every transcoder stopped with its last player", || {
        metrics.video_transcoders.get() == 0
    })
    .await;
    let _ = publisher.kill().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_keyframe_request_gets_an_idr_from_the_transcoder_at_once() {
    let server = embedded(|_| {}).await.unwrap();
    // A keyframe every 20 s: an IDR within a few seconds of the PLI is the answer to it.
    let mut publisher = program("ffmpeg");
    publisher.args(["-hide_banner", "-loglevel", "error", "-re"]);
    publisher.args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=15", "-t", "40"]);
    publisher.args(["-c:v", "flv1", "-g", "300", "-f", "flv"]);
    publisher.arg(format!("{}/pli", server.rtmp_url("live")));
    let mut publisher = publisher.spawn().unwrap();
    wait_video(&server, "pli").await;
    let player = play(&server, "pli").await;
    let before = until(&player, "pictures", |r| r.video.pictures >= 10).await;
    assert_eq!(before.video.idr_frames, 1, "{before:#?}");
    player.request_keyframe().await.unwrap();
    let requested = std::time::Instant::now();
    let after = until(&player, "an IDR after the PLI", |r| r.video.idr_frames >= 2).await;
    assert!(
        requested.elapsed() < Duration::from_secs(5),
        "the IDR came {:?} after the PLI",
        requested.elapsed()
    );
    assert!(server.metrics().webrtc_keyframe_requests.get() >= 1);
    assert_eq!(after.video.decode_errors, 0, "{after:#?}");
    let _ = publisher.kill().await;
    server.shutdown().await;
}

#[tokio::test]
async fn avoid_transcoding_decides_whether_h264_passes_through() {
    let server = embedded(|config| {
        let strict = config.apps["live"].clone();
        assert!(strict.avoid_transcoding, "on by default");
        config.apps.insert(
            "always".to_string(),
            reference_server::config::AppConfig {
                avoid_transcoding: false,
                ..strict
            },
        );
    })
    .await
    .unwrap();
    // libx264 with -tune zerolatency: no B-frames, so it could pass through.
    let mut publishers = Vec::new();
    for app in ["live", "always"] {
        let url = format!("{}/cam", server.rtmp_url(&format!("live?appKey={app}")));
        publishers.push(ffmpeg_publish(&url, true, None, 60).spawn().unwrap());
    }
    let hub = server.hub();
    wait_for("both streams have video", || {
        ["live", "always"]
            .iter()
            .all(|app| hub.describe(app, "cam").is_some_and(|d| d.has_video))
    })
    .await;

    let passthrough = WebRtcPlayer::play(
        Signalling::http(&server.http_url(), "live", "cam"),
        PlayerOptions::video_only(),
    )
    .await
    .unwrap();
    until(&passthrough, "pictures as published", |r| r.video.pictures >= 10).await;
    let metrics = server.metrics();
    assert_eq!(
        metrics.video_transcoders.get(),
        0,
        "avoid_transcoding on: passed through"
    );
    let source = hub
        .describe("live", "cam")
        .and_then(|d| media::h264::AvcConfig::parse(&d.video_config?).ok())
        .map(|c| c.profile_level_id());
    assert_eq!(answered_profile(&passthrough), source, "the publisher's own profile");

    let transcoded = WebRtcPlayer::play(
        Signalling::http(&server.http_url(), "always", "cam"),
        PlayerOptions::video_only(),
    )
    .await
    .unwrap();
    let report = until(&transcoded, "transcoded pictures", |r| r.video.pictures >= 10).await;
    assert_eq!((report.video.width, report.video.height), (320, 240));
    assert_eq!(metrics.video_transcoders.get(), 1, "avoid_transcoding off: transcoded");
    assert_eq!(answered_profile(&transcoded), Some(0x42e01f));
    for mut publisher in publishers {
        let _ = publisher.kill().await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_bad_size_or_bitrate_is_refused_with_400() {
    let server = embedded(|_| {}).await.unwrap();
    let client = reqwest::Client::new();
    for query in ["width=abc", "height=0", "bitrate=-5", "width=99999"] {
        let url = format!("{}/whep/{APP}/any?{query}", server.http_url());
        let response = client
            .post(&url)
            .header("content-type", "application/sdp")
            .body("v=0\r\n")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 400, "{query}");
        let text = response.text().await.unwrap();
        let key = query.split('=').next().unwrap();
        assert!(
            text.contains(&format!("parameter {query}")) && text.contains(key),
            "{query}: {text}"
        );
    }
    server.shutdown().await;
}

/// A player that joins a running video transcoder gets its first picture
/// at once, not at the transcoder's next IDR: its joining asks the
/// transcoder for one, as a PLI would.
#[tokio::test]
async fn a_player_joining_a_running_transcoder_gets_a_picture_at_once() {
    let server = embedded(|_| {}).await.unwrap();
    // A keyframe every 20 s, and the transcoder keeps to its source's.
    let mut publisher = program("ffmpeg");
    publisher.args(["-hide_banner", "-loglevel", "error", "-re"]);
    publisher.args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=15", "-t", "40"]);
    publisher.args(["-c:v", "flv1", "-g", "300", "-f", "flv"]);
    publisher.arg(format!("{}/joined", server.rtmp_url("live")));
    let mut publisher = publisher.spawn().unwrap();
    wait_video(&server, "joined").await;
    let first = play(&server, "joined").await;
    until(&first, "the first player's pictures", |r| r.video.pictures >= 30).await;
    let joined = std::time::Instant::now();
    let second = play(&server, "joined").await;
    let report = until(&second, "the second player's first picture", |r| r.video.pictures >= 1).await;
    assert!(
        joined.elapsed() < Duration::from_secs(3),
        "the second player's first picture came {:?} after it joined",
        joined.elapsed()
    );
    assert_eq!(report.video.first_frame_was_idr, Some(true), "{report:#?}");
    assert_eq!(server.metrics().video_transcoders.get(), 1, "one transcoder, shared");
    let _ = publisher.kill().await;
    server.shutdown().await;
}

/// A player that starts a new video transcoder (the first player of a
/// Sorenson stream, 7 s into a 10 s group of pictures) gets the cached
/// pictures through the transcoder at codec speed, stamped with their own
/// times: a backlog of about 7 s of pictures, which must be through within
/// 3 s of the first (the picture does not lag the sound by a group of
/// pictures at joining).
#[tokio::test]
async fn a_new_transcoders_pictures_catch_up_with_the_sound() {
    let server = embedded(|_| {}).await.unwrap();
    let mut publisher = program("ffmpeg");
    publisher.args(["-hide_banner", "-loglevel", "error", "-re"]);
    publisher.args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=15"]);
    publisher.args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=22050"]);
    publisher.args(["-c:v", "flv1", "-g", "150", "-b:v", "300k"]);
    publisher.args([
        "-c:a",
        "nellymoser",
        "-ar",
        "22050",
        "-ac",
        "1",
        "-t",
        "40",
        "-f",
        "flv",
    ]);
    publisher.arg(format!("{}/catching-up", server.rtmp_url("live")));
    let mut publisher = publisher.spawn().unwrap();
    wait_video(&server, "catching-up").await;
    tokio::time::sleep(Duration::from_secs(7)).await;
    let signalling = Signalling::http(&server.http_url(), APP, "catching-up");
    let player = WebRtcPlayer::play(signalling, PlayerOptions::default()).await.unwrap();
    let report = until(&player, "150 pictures", |r| r.video.pictures >= 150).await;
    let video = &report.video;
    let first = video.first_picture_after.unwrap();
    let through = video.backlog_through_after.map(|at| at.saturating_sub(first));
    eprintln!(
        "backlog {:?}, through {through:?} after the first picture",
        video.backlog
    );
    assert!(
        video.backlog >= Duration::from_secs(4),
        "the transcoder started at the cached keyframe, about 7 s back: {report:#?}"
    );
    assert!(
        through.is_some_and(|after| after < Duration::from_secs(3)),
        "the backlog was through {through:?} after the first picture: {report:#?}"
    );
    assert_eq!(server.metrics().video_transcoders.get(), 1, "{report:#?}");
    let _ = publisher.kill().await;
    server.shutdown().await;
}
