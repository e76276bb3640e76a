//! WebRTC publishers (WHIP) reach every kind of player: WebRTC players get
//! H.264 and Opus as they are; RTMP players (ffmpeg here) get H.264 in FLV
//! with an AVC sequence header built from the SPS/PPS, and Opus transcoded to
//! Speex, or to AAC where the app's `opus_to_rtmp` says so.

#[path = "support/tools.rs"]
mod tools;

use std::time::Duration;

use conformance::target::embedded;
use conformance::webrtc::{PlayerOptions, PublisherOptions, Signalling, WebRtcPlayer, WebRtcPublisher};
use reference_server::config::RtmpAudio;
use reference_server::ServerHandle;
use tools::program;

const APP: &str = "live";
const WAIT: Duration = Duration::from_secs(20);

async fn whip_publish(server: &ServerHandle, name: &str, tone_hz: f64) -> WebRtcPublisher {
    let options = PublisherOptions {
        tone_hz,
        ..PublisherOptions::default()
    };
    let publisher = WebRtcPublisher::publish(Signalling::http(&server.http_url(), APP, name), options)
        .await
        .unwrap();
    for _ in 0..400 {
        if server
            .hub()
            .describe(APP, name)
            .is_some_and(|d| d.has_audio && d.video_config.is_some())
        {
            return publisher;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the WHIP stream never reached the hub with audio and video: {:#?}",
        publisher.report()
    );
}

#[tokio::test]
async fn a_whip_publisher_is_played_over_whep_as_is() {
    let server = embedded(|_| {}).await.unwrap();
    let mut publisher = whip_publish(&server, "cam", 660.0).await;
    let player = WebRtcPlayer::play(
        Signalling::http(&server.http_url(), APP, "cam"),
        PlayerOptions::default(),
    )
    .await
    .unwrap();
    let report = player
        .wait_until(
            "pictures and a 660 Hz tone",
            |r| r.video.pictures >= 25 && r.audio.decoded_frames >= 50,
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!((report.video.width, report.video.height), (320, 240));
    let tone = player.audio_frequency(Duration::from_millis(500)).unwrap();
    assert!((tone - 660.0).abs() < 10.0, "heard {tone} Hz");
    assert_eq!(
        server.context().transcoders.running(),
        0,
        "Opus passes through untranscoded"
    );
    publisher.stop().await.unwrap();
    server.shutdown().await;
}

/// A WebRTC player of a stream whose RTMP publisher (AAC, which a
/// transcoder makes Opus for the player) is followed by a WHIP publisher
/// (Opus, passed through): the player hears the first tone, then the
/// second, and the transcoder stops. The player takes the stream without
/// its AAC while it is transcoded, and with its sound again once the codec
/// changes (hub `Subscription::take_sound`).
#[tokio::test]
async fn a_whep_player_hears_an_rtmp_publisher_then_the_whip_publisher_after_it() {
    let server = embedded(|_| {}).await.unwrap();
    let name = "handover";
    let url = format!("{}/{name}", server.rtmp_url(APP));
    let mut ffmpeg = tools::ffmpeg_publish(&url, true, Some(440), 60).spawn().unwrap();
    until(|| {
        server
            .hub()
            .describe(APP, name)
            .is_some_and(|d| d.has_audio && d.has_video)
    })
    .await;
    let player = WebRtcPlayer::play(
        Signalling::http(&server.http_url(), APP, name),
        PlayerOptions::default(),
    )
    .await
    .unwrap();
    player
        .wait_until(
            "the RTMP publisher's pictures and sound",
            |r| r.video.pictures >= 25 && r.audio.decoded_frames >= 50,
            WAIT,
        )
        .await
        .unwrap();
    let tone = player.audio_frequency(Duration::from_millis(500)).unwrap();
    assert!((tone - 440.0).abs() < 10.0, "heard {tone} Hz from the RTMP publisher");
    assert_eq!(server.context().transcoders.running(), 1, "AAC made Opus");
    let _ = ffmpeg.kill().await;
    until(|| !server.hub().is_live(APP, name)).await;

    let mut publisher = whip_publish(&server, name, 660.0).await;
    let heard = player.report().audio.decoded_frames;
    player
        .wait_until(
            "the WHIP publisher's sound",
            |r| r.audio.decoded_frames >= heard + 75,
            WAIT,
        )
        .await
        .unwrap();
    let tone = player.audio_frequency(Duration::from_millis(500)).unwrap();
    assert!((tone - 660.0).abs() < 10.0, "heard {tone} Hz from the WHIP publisher");
    until(|| server.context().transcoders.running() == 0).await;
    publisher.stop().await.unwrap();
    server.shutdown().await;
}

/// Waits up to `WAIT` for `done`.
async fn until(done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "not in {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An ICE restart of a WHIP session (RFC 9725, section 4.3.3): 200 with
/// the session's new credentials, the publisher's checks made with the new
/// ones answered, and its media still reaching players afterwards.
#[tokio::test]
async fn a_whip_publisher_restarts_ice_and_goes_on_publishing() {
    let server = embedded(|_| {}).await.unwrap();
    let mut publisher = whip_publish(&server, "restarted-cam", 660.0).await;
    let restart = publisher.restart_ice().await.unwrap();
    assert_eq!(restart.status, 200, "{restart:?}");
    assert!(restart.header("etag").is_some(), "{restart:?}");
    let report = publisher
        .wait_until(
            "a check with the new credentials answered",
            |r| r.peer.ice_restarts == 1 && r.peer.checks_answered_since_restart >= 1,
            WAIT,
        )
        .await
        .unwrap();
    assert!(report.sending, "{report:#?}");
    let player = WebRtcPlayer::play(
        Signalling::http(&server.http_url(), APP, "restarted-cam"),
        PlayerOptions::default(),
    )
    .await
    .unwrap();
    player
        .wait_until(
            "pictures and sound after the restart",
            |r| r.video.pictures >= 25 && r.audio.decoded_frames >= 50,
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(server.metrics().webrtc_ice_restarts.get(), 1);
    publisher.stop().await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn a_whip_publisher_is_played_by_ffmpeg_over_rtmp_with_picture_and_speex_by_default() {
    ffmpeg_plays_a_whip_publisher(RtmpAudio::Speex, "speex", 880.0).await;
}

#[tokio::test]
async fn a_whip_publisher_is_played_by_ffmpeg_over_rtmp_with_aac_where_the_app_says_so() {
    ffmpeg_plays_a_whip_publisher(RtmpAudio::Aac, "aac", 550.0).await;
}

/// ffmpeg plays a WHIP publisher over RTMP, with `opus_to_rtmp = audio` in the
/// app; what it records must hold H.264 at the publisher's size and the
/// publisher's tone in `codec`.
async fn ffmpeg_plays_a_whip_publisher(audio: RtmpAudio, codec: &str, tone_hz: f64) {
    let server = embedded(|c| {
        if let Some(app) = c.apps.get_mut(APP) {
            app.opus_to_rtmp = audio;
        }
    })
    .await
    .unwrap();
    let mut publisher = whip_publish(&server, "webcam", tone_hz).await;
    let dir = std::env::temp_dir().join(format!("rs-whip-rtmp-{codec}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let recording = dir.join("whip.flv");
    let played = program("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(format!("{}/webcam", server.rtmp_url("live")))
        .args(["-t", "4", "-c", "copy", "-y"])
        .arg(&recording)
        .output()
        .await
        .unwrap();
    assert!(
        played.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&played.stderr)
    );
    // Decode what ffmpeg recorded: the picture size, and the tone's pitch.
    let probed = tools::probe(&recording).await;
    assert!(probed.codecs.contains(&"h264".to_string()), "{probed:?}");
    assert!(probed.codecs.contains(&codec.to_string()), "{probed:?}");
    assert_eq!((probed.width, probed.height), (320, 240), "{probed:?}");
    let pcm = program("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&recording)
        .args(["-vn", "-ac", "1", "-ar", "16000", "-f", "s16le", "-"])
        .output()
        .await
        .unwrap();
    let samples: Vec<i16> = pcm
        .stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    assert!(samples.len() >= 16_000, "{} samples decoded", samples.len());
    let middle = &samples[samples.len() / 2..];
    let heard = codecs::audio::dominant_frequency(middle, 16_000).expect("a tone");
    assert!((heard - tone_hz).abs() < 10.0, "ffmpeg heard {heard} Hz");
    assert!(
        codecs::audio::dbfs(middle) > -20.0,
        "level {}",
        codecs::audio::dbfs(middle)
    );
    publisher.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    server.shutdown().await;
}

/// A WebSocket `answer` for a stream that publishes is refused with an
/// error: the server sends publishers no offers (players get one when
/// video appears after their answer).
#[tokio::test]
async fn a_websocket_answer_for_a_publisher_is_refused() {
    use conformance::webrtc::ws::{ws_url, StreamStatus, WsSession};
    let server = embedded(|_| {}).await.unwrap();
    let session = WsSession::connect(&ws_url(&server.http_url()), APP, serde_json::Value::Null)
        .await
        .unwrap();
    let mut publisher = WebRtcPublisher::publish(Signalling::ws(&session, "pub1", "cam"), PublisherOptions::default())
        .await
        .unwrap();
    session
        .wait_status("pub1", StreamStatus::Publishing, WAIT)
        .await
        .unwrap();
    let errors = session.errors().len();
    let answer = serde_json::json!({"type": "answer", "id": "pub1", "sdp": "v=0\r\n"});
    session.send_json(&answer).unwrap();
    let error = session.wait_error(errors, WAIT).await.unwrap();
    assert!(error.contains("waits for an answer"), "{error}");
    publisher.stop().await.unwrap();
    server.shutdown().await;
}
