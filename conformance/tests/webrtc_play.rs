//! WebRTC players and publishers against the reference server over real UDP
//! on 127.0.0.1: the suite's str0m peer decodes what it receives (openh264
//! pictures, Opus sound) and checks the SDP answer.

#[path = "support/tools.rs"]
mod tools;

use std::time::Duration;

use bytes::Bytes;
use conformance::client::{ClientProfile, RtmpClient};
use conformance::target::embedded;
use conformance::webrtc::{PlayerOptions, PlayerReport, Signalling, StreamStatus, WebRtcPlayer, WsSession};
use media::amf::Value;
use media::flv::{Tag, TagKind};
use reference_server::ServerHandle;
use tools::{ffmpeg_publish, program};

const APP: &str = "live";
const WAIT: Duration = Duration::from_secs(20);

fn flash_recording() -> Vec<Tag> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/flv/red5_h264_speex.flv");
    media::flv::read_tags(&Bytes::from(std::fs::read(path).unwrap())).unwrap()
}

/// Publishes `tags` like Flash Player (digest handshake, AMF3, `{login, appKey}`) in real time.
async fn flash_publish(server: &ServerHandle, name: &str, tags: Vec<Tag>) -> tokio::task::JoinHandle<RtmpClient> {
    let mut flash = RtmpClient::open(server.rtmp_addr(), ClientProfile::flash_player())
        .await
        .unwrap();
    let args = vec![Value::object([
        ("login", Value::from("u")),
        ("appKey", Value::from(APP)),
    ])];
    flash.connect(&server.rtmp_url(APP), args).await.unwrap();
    let stream = flash.create_stream().await.unwrap();
    flash.publish(stream, name).await.unwrap();
    tokio::spawn(async move {
        flash.send_tags(stream, &tags, true).await.unwrap();
        flash
    })
}

/// The first 15 s of the Flash recording published as `name`, once the
/// server has both its tracks.
async fn flash_live(server: &ServerHandle, name: &str) -> tokio::task::JoinHandle<RtmpClient> {
    let tags = flash_recording()
        .into_iter()
        .filter(|t| t.timestamp <= 15_000)
        .collect();
    let publishing = flash_publish(server, name, tags).await;
    wait_tracks(server, name, true, true).await;
    publishing
}

/// FFmpeg publishing 30 s of pictures and a 440 Hz tone as `name`, once
/// the server has both tracks.
async fn ffmpeg_live(server: &ServerHandle, name: &str) -> tokio::process::Child {
    let publisher = ffmpeg_publish(&format!("{}/{name}", server.rtmp_url("live")), true, Some(440), 30)
        .spawn()
        .unwrap();
    wait_tracks(server, name, true, true).await;
    publisher
}

async fn wait_tracks(server: &ServerHandle, name: &str, audio: bool, video: bool) {
    for _ in 0..200 {
        if server
            .hub()
            .describe(APP, name)
            .is_some_and(|d| d.has_audio == audio && d.has_video == video)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{name} never went live with audio={audio} video={video}");
}

/// Logs to the test's output with `RUST_LOG=...`.
fn init_log() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

fn whep(server: &ServerHandle, name: &str) -> Signalling {
    Signalling::http(&server.http_url(), APP, name)
}

async fn until(player: &WebRtcPlayer, what: &str, done: impl Fn(&PlayerReport) -> bool) -> PlayerReport {
    match player.wait_until(what, done, WAIT).await {
        Ok(report) => report,
        Err(error) => panic!("{what}: {error}\nlast report: {:#?}", player.report()),
    }
}

#[tokio::test]
async fn flash_h264_speex_plays_over_whep_with_picture_and_sound() {
    let server = embedded(|_| {}).await.unwrap();
    let publishing = flash_live(&server, "flashcam").await;

    let player = WebRtcPlayer::play(whep(&server, "flashcam"), PlayerOptions::default())
        .await
        .unwrap();
    let answer = player.answer();
    assert!(
        answer.audio().is_some_and(|a| a.has_codec("opus")),
        "{}",
        player.answer_sdp()
    );
    let video = answer.video().expect("a video m-line");
    let h264 = video.codecs_named("H264").next().expect("H.264 answered");
    // The profile-level-id of the recording's own sequence header (Baseline, level 2.0).
    let header = flash_recording()
        .into_iter()
        .find(|t| t.kind == TagKind::Video)
        .unwrap();
    let recorded = media::h264::AvcConfig::parse(&header.data[5..]).unwrap();
    assert_eq!(recorded.profile_level_id(), 0x420014);
    assert_eq!(
        h264.profile_level_id(),
        Some(recorded.profile_level_id()),
        "{}",
        player.answer_sdp()
    );
    let report = until(&player, "Flash stream: pictures and sound", |r| {
        r.video.pictures >= 10 && r.audio.decoded_frames >= 50 && r.recent_audio_dbfs.is_some_and(|db| db > -50.0)
    })
    .await;
    assert_eq!((report.video.width, report.video.height), (160, 120), "{report:#?}");
    assert_eq!(report.audio.sample_rate, 48_000);
    assert!(server.context().transcoders.running() == 1, "one Speex→Opus transcoder");
    publishing.abort();
    server.shutdown().await;
}

#[tokio::test]
async fn audio_only_flash_speex_gets_an_audio_only_answer_and_real_sound() {
    // Known issue 1: an audio-only stream must not be offered video, and must be heard.
    let server = embedded(|_| {}).await.unwrap();
    let tags = flash_recording()
        .into_iter()
        .filter(|t| t.kind == TagKind::Audio && t.timestamp <= 15_000)
        .collect();
    let publishing = flash_publish(&server, "voice", tags).await;
    wait_tracks(&server, "voice", true, false).await;

    let player = WebRtcPlayer::play(whep(&server, "voice"), PlayerOptions::default())
        .await
        .unwrap();
    let answer = player.answer();
    let video = answer.video().expect("the offered video m-line is answered");
    assert!(
        video.rejected,
        "video must be rejected (port 0): {}",
        player.answer_sdp()
    );
    let audio = answer.audio().expect("an audio m-line");
    assert!(!audio.rejected && audio.has_codec("opus"), "{}", player.answer_sdp());
    let report = until(&player, "audio-only Speex: sound", |r| {
        r.audio.decoded_frames >= 50 && r.recent_audio_dbfs.is_some_and(|db| db > -50.0)
    })
    .await;
    assert_eq!(report.video.frames, 0);
    publishing.abort();
    server.shutdown().await;
}

#[tokio::test]
async fn nellymoser_from_ffmpeg_plays_over_whep_as_opus_with_its_tone() {
    // Flash Player's other microphone codec; ffmpeg encodes it too.
    let server = embedded(|_| {}).await.unwrap();
    let mut publisher = program("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i"])
        .arg("sine=frequency=660:sample_rate=22050")
        .args(["-ac", "1", "-c:a", "nellymoser", "-t", "30", "-f", "flv"])
        .arg(format!("{}/nelly", server.rtmp_url("live")))
        .spawn()
        .unwrap();
    wait_tracks(&server, "nelly", true, false).await;
    assert_eq!(
        server.hub().describe(APP, "nelly").and_then(|d| d.audio_codec),
        Some(media::flv::AudioCodec::Nellymoser)
    );
    let player = WebRtcPlayer::play(whep(&server, "nelly"), PlayerOptions::default())
        .await
        .unwrap();
    assert!(
        player.answer().video().is_some_and(|v| v.rejected),
        "{}",
        player.answer_sdp()
    );
    until(&player, "Nellymoser as Opus: 1 s of sound", |r| {
        r.audio.decoded_frames >= 50 && r.recent_audio_dbfs.is_some_and(|db| db > -40.0)
    })
    .await;
    let tone = player.audio_frequency(Duration::from_millis(500)).expect("a tone");
    assert!((tone - 660.0).abs() < 10.0, "heard {tone} Hz");
    let _ = publisher.kill().await;
    server.shutdown().await;
}

async fn ffmpeg_stream_plays(signalling: &str) {
    init_log();
    let server = embedded(|_| {}).await.unwrap();
    let name = format!("ff-{signalling}");
    let mut publisher = ffmpeg_live(&server, &name).await;
    let ws;
    let signalling = if signalling == "ws" {
        ws = WsSession::connect(
            &conformance::webrtc::ws::ws_url(&server.http_url()),
            APP,
            serde_json::json!({"login": "t"}),
        )
        .await
        .unwrap();
        Signalling::ws(&ws, "p1", &name)
    } else {
        whep(&server, &name)
    };
    let player = WebRtcPlayer::play(signalling, PlayerOptions::default()).await.unwrap();
    let report = until(&player, "ffmpeg stream: pictures and a 440 Hz tone", |r| {
        r.video.pictures >= 25 && r.audio.decoded_frames >= 50
    })
    .await;
    assert_eq!((report.video.width, report.video.height), (320, 240));
    assert_eq!(
        report.video.frames_before_first_idr, 0,
        "started with inter frames: {report:#?}"
    );
    assert_eq!(report.video.first_frame_was_idr, Some(true));
    let tone = player.audio_frequency(Duration::from_millis(500)).expect("a tone");
    assert!((tone - 440.0).abs() < 10.0, "heard {tone} Hz");
    let level = player.audio_dbfs(Duration::from_millis(500)).unwrap();
    assert!(level > -30.0, "level {level} dBFS");
    let _ = publisher.kill().await;
    server.shutdown().await;
}

#[tokio::test]
async fn ffmpeg_h264_aac_plays_over_whep_with_picture_and_tone() {
    ffmpeg_stream_plays("whep").await;
}

#[tokio::test]
async fn ffmpeg_h264_aac_plays_over_the_websocket_channel_with_picture_and_tone() {
    ffmpeg_stream_plays("ws").await;
}

#[tokio::test]
async fn websocket_statuses_follow_the_publisher() {
    let server = embedded(|_| {}).await.unwrap();
    let mut publisher = ffmpeg_live(&server, "wsst").await;
    let ws = WsSession::connect(
        &conformance::webrtc::ws::ws_url(&server.http_url()),
        APP,
        serde_json::json!({}),
    )
    .await
    .unwrap();
    let player = WebRtcPlayer::play(Signalling::ws(&ws, "p1", "wsst"), PlayerOptions::default())
        .await
        .unwrap();
    ws.wait_status("p1", StreamStatus::Playing, WAIT).await.unwrap();
    until(&player, "pictures", |r| r.video.pictures >= 5).await;
    let _ = publisher.kill().await;
    ws.wait_status("p1", StreamStatus::Unpublished, WAIT).await.unwrap();
    ws.stop("p1").unwrap();
    ws.wait_status("p1", StreamStatus::Stopped, WAIT).await.unwrap();
    let statuses: Vec<String> = ws.statuses("p1").iter().map(|s| s.as_str().to_string()).collect();
    assert_eq!(statuses, ["NEW", "PENDING", "PLAYING", "UNPUBLISHED", "STOPPED"]);

    // A stream nobody publishes, in an app that does not wait.
    let _missing = WebRtcPlayer::play(Signalling::ws(&ws, "p2", "nobody"), PlayerOptions::default()).await;
    let failed = ws.wait_status("p2", StreamStatus::Failed, WAIT).await.unwrap();
    assert_eq!(failed.info.as_deref(), Some("Stream not found"));
    server.shutdown().await;
}

#[tokio::test]
async fn whep_answers_errors_and_deletes_sessions() {
    let server = embedded(|_| {}).await.unwrap();
    let http = reqwest::Client::new();
    let url = format!("{}/whep/{APP}/nobody", server.http_url());
    let post = |body: &'static str, content_type: &'static str| {
        http.post(&url).header("Content-Type", content_type).body(body).send()
    };
    assert_eq!(post("v=0\r\n", "application/sdp").await.unwrap().status(), 400);
    assert_eq!(post("hello", "text/plain").await.unwrap().status(), 415);
    let preflight = http.request(reqwest::Method::OPTIONS, &url).send().await.unwrap();
    assert_eq!(preflight.status(), 200);
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
    assert_eq!(preflight.headers()["accept-post"], "application/sdp");
    let unknown_app = format!("{}/whep/nosuchapp/s", server.http_url());
    let refused = WebRtcPlayer::play(
        Signalling::http(&server.http_url(), "nosuchapp", "s"),
        PlayerOptions::default(),
    )
    .await;
    let Err(offer) = refused else {
        panic!("unknown app accepted");
    };
    assert!(offer.to_string().contains("403"), "{offer} ({unknown_app})");
    let Err(missing) = WebRtcPlayer::play(whep(&server, "nobody"), PlayerOptions::default()).await else {
        panic!("missing stream accepted");
    };
    assert!(missing.to_string().contains("409"), "{missing}");

    // A real session: DELETE ends it, a second DELETE finds nothing.
    let mut publisher = ffmpeg_publish(&format!("{}/del", server.rtmp_url("live")), true, Some(440), 30)
        .spawn()
        .unwrap();
    wait_tracks(&server, "del", true, true).await;
    let mut player = WebRtcPlayer::play(whep(&server, "del"), PlayerOptions::default())
        .await
        .unwrap();
    until(&player, "pictures", |r| r.video.pictures >= 1).await;
    let location = player.location().unwrap().to_string();
    assert!(
        location.starts_with(&format!("{}/whep/{APP}/del/", server.http_url())),
        "{location}"
    );
    assert_eq!(server.context().webrtc.session_count(), 1);
    // Two DELETEs back to back: the second comes while the session's task
    // may still be winding down, and finds nothing all the same.
    let (first, second) = (http.delete(&location).send(), http.delete(&location).send());
    let first = first.await.unwrap().status().as_u16();
    let second = second.await.unwrap().status().as_u16();
    assert_eq!((first, second), (200, 404), "DELETE, then DELETE again at once");
    // The player's own DELETE finds nothing either; it closes its peer.
    let _ = player.stop().await;
    for _ in 0..100 {
        if server.context().webrtc.session_count() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.context().webrtc.session_count(), 0, "DELETE ends the session");
    assert_eq!(http.delete(&location).send().await.unwrap().status(), 404);
    let _ = publisher.kill().await;
    let _ = program("ffmpeg");
    server.shutdown().await;
}

#[tokio::test]
async fn a_keyframe_request_is_answered_from_the_gop_cache() {
    // An RTMP publisher cannot be asked for a keyframe: the server re-sends the cached one.
    let server = embedded(|_| {}).await.unwrap();
    let mut publisher = ffmpeg_publish(&format!("{}/pli", server.rtmp_url("live")), true, None, 30)
        .spawn()
        .unwrap();
    wait_tracks(&server, "pli", false, true).await;
    let player = WebRtcPlayer::play(whep(&server, "pli"), PlayerOptions::video_only())
        .await
        .unwrap();
    let before = until(&player, "pictures", |r| r.video.pictures >= 5).await;
    player.request_keyframe().await.unwrap();
    let after = until(&player, "an IDR after the PLI", |r| {
        r.video.idr_frames > before.video.idr_frames
    })
    .await;
    assert!(
        server.metrics().webrtc_keyframe_requests.get() >= 1,
        "the PLI reached the server"
    );
    assert_eq!(after.video.decode_errors, 0, "{after:#?}");
    let _ = publisher.kill().await;
    server.shutdown().await;
}

/// Offers that arrive together never make more sessions than the limit:
/// each takes its slot before it is answered (on a multi-threaded
/// runtime, where a count checked before the session is stored let 1100
/// concurrent offers make 1001 sessions of 1000).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_offers_never_exceed_the_session_limit() {
    let server = embedded(|config| config.webrtc.max_sessions = 4).await.unwrap();
    let mut publisher = ffmpeg_publish(&format!("{}/crowd", server.rtmp_url("live")), false, Some(440), 30)
        .spawn()
        .unwrap();
    wait_tracks(&server, "crowd", true, false).await;
    let players = (0..40).map(|_| {
        let signalling = whep(&server, "crowd");
        tokio::spawn(async move { WebRtcPlayer::play(signalling, PlayerOptions::default()).await })
    });
    let mut accepted = Vec::new();
    let mut refused = 0;
    for player in futures_util::future::join_all(players).await {
        match player.unwrap() {
            Ok(player) => accepted.push(player),
            Err(error) => {
                assert!(error.to_string().contains("503"), "{error}");
                refused += 1;
            }
        }
    }
    assert_eq!((accepted.len(), refused), (4, 36));
    assert_eq!(server.metrics().webrtc_sessions.get(), 4);
    for mut player in accepted {
        let _ = player.stop().await;
    }
    let _ = publisher.kill().await;
    server.shutdown().await;
}

/// A malformed offer is refused in the server's own words: no parser
/// internals (addresses, offsets), and none of the peer's bytes echoed.
#[tokio::test]
async fn a_malformed_offer_is_refused_in_the_servers_own_words() {
    let server = embedded(|_| {}).await.unwrap();
    let http = reqwest::Client::new();
    let url = format!("{}/whip/{APP}/garbled", server.http_url());
    for (offer, words) in [
        ("", "the offer is empty"),
        ("<script>alert(1)</script>", "does not begin with v=0"),
        (
            "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\nPointerOffset<script>\r\n",
            "line 3 of the offer is not an SDP line",
        ),
        ("v=0\r\ns=-\r\nt=0 0\r\n", "no media section"),
        // Found by fuzz/'s sdp_offer: str0m panicked on it.
        (
            include_str!("../../fuzz/seeds/sdp_offer/payload-type-in-two-kinds.sdp"),
            "payload type 102 names different codecs or media kinds",
        ),
    ] {
        let answer = http
            .post(&url)
            .header("Content-Type", "application/sdp")
            .body(offer)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 400, "{offer:?}");
        let body = answer.text().await.unwrap();
        assert!(body.contains(words), "{offer:?}: {body}");
        assert!(
            !body.contains("script") && !body.contains("Pointer") && !body.contains("0x"),
            "{body}"
        );
    }
    server.shutdown().await;
}

/// A stream name longer than `max_name_bytes` is refused 400 over WHIP
/// and WHEP, in a short body that does not repeat it.
#[tokio::test]
async fn an_overlong_stream_name_is_refused_400_without_being_echoed() {
    let server = embedded(|config| config.max_name_bytes = 64).await.unwrap();
    let http = reqwest::Client::new();
    let name = "x".repeat(65);
    for endpoint in ["whip", "whep"] {
        let answer = http
            .post(format!("{}/{endpoint}/{APP}/{name}", server.http_url()))
            .header("Content-Type", "application/sdp")
            .body("v=0\r\n")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 400, "{endpoint}");
        let body = answer.text().await.unwrap();
        assert_eq!(body, "The stream name is longer than 64 bytes\n", "{endpoint}");
    }
    server.shutdown().await;
}

/// The answer to a WHEP offer for `stream`, POSTed by hand: whatever it is.
async fn whep_offer_posted(server: &ServerHandle, stream: &str) -> reqwest::Response {
    use conformance::webrtc::http::{Endpoint, Offer, OfferShape};
    let offer = Offer::new(Endpoint::Whep, &OfferShape::default()).await.unwrap();
    reqwest::Client::new()
        .post(format!("{}/whep/{APP}/{stream}", server.http_url()))
        .header("Content-Type", "application/sdp")
        .body(offer.sdp().to_string())
        .send()
        .await
        .unwrap()
}

/// One address holds at most `webrtc.max_sessions_per_address` sessions
/// (429 beyond), and at most `http.max_websockets_per_address` WebSocket
/// connections; places come back when sessions end.
#[tokio::test]
async fn one_address_holds_at_most_its_share_of_sessions_and_websockets() {
    let server = embedded(|config| {
        config.webrtc.max_sessions_per_address = 2;
        config.http.max_websockets_per_address = 1;
    })
    .await
    .unwrap();
    let mut publisher = ffmpeg_publish(&format!("{}/shared", server.rtmp_url("live")), false, Some(440), 30)
        .spawn()
        .unwrap();
    wait_tracks(&server, "shared", true, false).await;
    let first = WebRtcPlayer::play(whep(&server, "shared"), PlayerOptions::default())
        .await
        .unwrap();
    let _second = WebRtcPlayer::play(whep(&server, "shared"), PlayerOptions::default())
        .await
        .unwrap();
    let Err(third) = WebRtcPlayer::play(whep(&server, "shared"), PlayerOptions::default()).await else {
        panic!("a third session from one address with a cap of 2");
    };
    assert!(third.to_string().contains("429"), "{third}");
    // It says when to try again, as at full capacity.
    let answer = whep_offer_posted(&server, "shared").await;
    assert_eq!(answer.status(), 429);
    assert_eq!(answer.headers()["retry-after"], "2");
    let mut first = first;
    let _ = first.stop().await;
    let mut again = None;
    for _ in 0..50 {
        if let Ok(player) = WebRtcPlayer::play(whep(&server, "shared"), PlayerOptions::default()).await {
            again = Some(player);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(again.is_some(), "the address never got its place back");
    let ws = format!("ws://{}/ws", server.http_addr());
    let open = tokio_tungstenite::connect_async(ws.as_str()).await;
    assert!(open.is_ok(), "the first WebSocket: {:?}", open.err());
    let Err(second) = tokio_tungstenite::connect_async(ws.as_str()).await else {
        panic!("a second WebSocket from one address with a cap of 1");
    };
    assert!(second.to_string().contains("429"), "{second}");
    let _ = publisher.kill().await;
    server.shutdown().await;
}

#[tokio::test]
async fn sessions_beyond_the_limit_are_refused_with_503_and_retry_after() {
    let server = embedded(|config| config.webrtc.max_sessions = 0).await.unwrap();
    let mut publisher = ffmpeg_publish(&format!("{}/full", server.rtmp_url("live")), false, Some(440), 30)
        .spawn()
        .unwrap();
    wait_tracks(&server, "full", true, false).await;
    let Err(refused) = WebRtcPlayer::play(whep(&server, "full"), PlayerOptions::default()).await else {
        panic!("a session beyond the limit was accepted");
    };
    assert!(refused.to_string().contains("503"), "{refused}");
    let answer = whep_offer_posted(&server, "full").await;
    assert_eq!(answer.status(), 503);
    assert_eq!(answer.headers()["retry-after"], "2");
    let _ = publisher.kill().await;
    server.shutdown().await;
}

/// The WebSocket channel names the configured STUN and TURN servers in its
/// answer to `connect`, as `RTCIceServer` dictionaries.
#[tokio::test]
async fn the_websocket_channel_names_its_ice_servers_on_connect() {
    use futures_util::{SinkExt, StreamExt};
    use reference_server::config::IceServer;
    use tokio_tungstenite::tungstenite::Message;
    let server = embedded(|config| {
        config.webrtc.ice_servers = vec![
            IceServer {
                url: "stun:stun.example.org:3478".into(),
                username: None,
                credential: None,
            },
            IceServer {
                url: "turn:turn.example.org:3478?transport=udp".into(),
                username: Some("user".into()),
                credential: Some("secret".into()),
            },
        ]
    })
    .await
    .unwrap();
    let url = format!("ws://{}/ws", server.http_addr());
    let (mut socket, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    socket
        .send(Message::text(r#"{"type":"connect","appKey":"live"}"#))
        .await
        .unwrap();
    let established = tokio::time::timeout(WAIT, async {
        while let Some(Ok(message)) = socket.next().await {
            let Ok(text) = message.into_text() else { continue };
            let event: serde_json::Value = serde_json::from_str(&text).unwrap();
            if event["type"] == "connection" {
                return event;
            }
        }
        serde_json::Value::Null
    })
    .await
    .unwrap();
    assert_eq!(established["status"], "ESTABLISHED", "{established}");
    assert_eq!(
        established["iceServers"],
        serde_json::json!([
            {"urls": "stun:stun.example.org:3478"},
            {"urls": "turn:turn.example.org:3478?transport=udp", "username": "user", "credential": "secret"},
        ]),
        "{established}"
    );
    server.shutdown().await;
}

/// A client that sends more bad messages in a row than the channel's
/// queue holds gets an error for each and is still answered after: the
/// connection once waited on itself for ever after 64 unanswered errors.
#[tokio::test]
async fn a_burst_of_bad_websocket_messages_gets_every_error_and_the_channel_goes_on() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let server = embedded(|_| {}).await.unwrap();
    let url = format!("ws://{}/ws", server.http_addr());
    let (mut socket, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    for _ in 0..500 {
        socket.send(Message::text("{")).await.unwrap();
    }
    let connect = r#"{"type":"connect","appKey":"live"}"#;
    socket.send(Message::text(connect)).await.unwrap();
    let mut errors = 0;
    let established = tokio::time::timeout(WAIT, async {
        while let Some(Ok(message)) = socket.next().await {
            let Ok(text) = message.into_text() else { continue };
            let event: serde_json::Value = serde_json::from_str(&text).unwrap();
            match event["type"].as_str() {
                Some("error") => errors += 1,
                Some("connection") => return event["status"] == "ESTABLISHED",
                _ => {}
            }
        }
        false
    })
    .await;
    assert_eq!(established, Ok(true), "connect answered after {errors} errors");
    assert_eq!(errors, 500);
    server.shutdown().await;
}

/// WHEP's server-sent events over a real session: `active` and the viewer
/// count while it plays, `inactive` when the publisher leaves, `reconnect`
/// when the server drains, and the stream ends with its session.
#[tokio::test]
async fn whep_server_sent_events_follow_the_publisher_the_viewers_and_the_drain() {
    use conformance::webrtc::http::sse_events;
    let server = embedded(|_| {}).await.unwrap();
    let publisher = flash_publish(&server, "evented", flash_recording()).await;
    wait_tracks(&server, "evented", true, true).await;
    let player = WebRtcPlayer::play(whep(&server, "evented"), PlayerOptions::default())
        .await
        .unwrap();
    until(&player, "pictures", |r| r.video.pictures >= 1).await;
    let session = player.location().unwrap().to_string();
    let http = reqwest::Client::new();

    // The events the server offers, all of them (an empty body).
    let created = http.post(format!("{session}/sse")).send().await.unwrap();
    assert_eq!(created.status(), 201);
    let stream = reqwest::Url::parse(&session)
        .unwrap()
        .join(created.headers()["location"].to_str().unwrap())
        .unwrap();
    let mut pull = http.get(stream.clone()).send().await.unwrap();
    assert_eq!(pull.status(), 200);
    assert_eq!(pull.headers()["content-type"], "text/event-stream");
    let mut body = String::new();
    let mut read_until = async |body: &mut String, name: &str, data: &str| {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !sse_events(body).iter().any(|(n, d)| n == name && d == data) {
            match tokio::time::timeout_at(deadline, pull.chunk()).await {
                Ok(Ok(Some(chunk))) => body.push_str(&String::from_utf8_lossy(&chunk)),
                other => panic!("no {name} {data} event: {other:?}; so far: {body:?}"),
            }
        }
    };
    read_until(&mut body, "active", "{}").await;
    read_until(&mut body, "viewercount", r#"{"viewercount":1}"#).await;
    // One long pull at a time.
    assert_eq!(http.get(stream.clone()).send().await.unwrap().status(), 409);

    publisher.abort();
    read_until(&mut body, "inactive", "{}").await;
    server.drain();
    read_until(&mut body, "reconnect", "{}").await;
    let names: Vec<String> = sse_events(&body).into_iter().map(|(name, _)| name).collect();
    assert_eq!(names.iter().filter(|n| *n == "active").count(), 1, "{names:?}");

    // The session ends: so does its event stream, and it is gone.
    let deleted = http.delete(&session).send().await.unwrap();
    assert!(deleted.status().is_success());
    let end = tokio::time::timeout(WAIT, async { while let Ok(Some(_)) = pull.chunk().await {} }).await;
    assert!(end.is_ok(), "the event stream did not end with its session");
    assert_eq!(http.get(stream).send().await.unwrap().status(), 404);
    server.shutdown().await;
}

/// A stream name beyond ASCII plays over WHEP: the session's `Location`
/// (and its events `Link`) are percent-encoded URIs, and the session is
/// found again through them.
#[tokio::test]
async fn a_utf8_stream_name_plays_over_whep_and_its_session_is_found_again() {
    let server = embedded(|_| {}).await.unwrap();
    let name = "名前-ü-cam";
    let _publisher = flash_publish(&server, name, flash_recording()).await;
    wait_tracks(&server, name, true, true).await;
    let mut player = WebRtcPlayer::play(whep(&server, name), PlayerOptions::default())
        .await
        .unwrap();
    let location = player.location().unwrap().to_string();
    assert!(location.is_ascii(), "{location}");
    assert!(
        location.contains("/whep/live/%E5%90%8D%E5%89%8D-%C3%BC-cam/"),
        "{location}"
    );
    until(&player, "pictures", |r| r.video.pictures >= 1).await;
    let found = reqwest::Client::new().get(&location).send().await.unwrap();
    assert_eq!(found.status(), 204);
    player.stop().await.unwrap();
    server.shutdown().await;
}

/// WHEP's layer selection extension over HTTP: the `201` links to it, the
/// `layers` server-sent event lists the stream's one video track with its
/// size and bitrate, and the layer entry point takes a known `rid` (200)
/// and refuses an unknown one and a spatial layer (400).
#[tokio::test]
async fn a_whep_session_offers_its_video_tracks_as_layers() {
    init_log();
    let server = embedded(|_| {}).await.unwrap();
    let name = "layers-one-track";
    let mut publisher = ffmpeg_live(&server, name).await;
    let player = WebRtcPlayer::play(whep(&server, name), PlayerOptions::default())
        .await
        .unwrap();
    until(&player, "pictures", |r| r.video.pictures >= 5).await;
    let link = |rel: &str| {
        player
            .links()
            .iter()
            .find(|(r, _)| r == rel)
            .map(|(_, target)| target.clone())
            .unwrap_or_else(|| panic!("no Link rel={rel}: {:?}", player.links()))
    };
    let http = reqwest::Client::new();
    let events = http
        .post(link(conformance::webrtc::http::EVENTS_REL))
        .header("content-type", "application/json")
        .body(r#"["layers"]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 201);
    let stream = events.headers()["location"].to_str().unwrap().to_string();
    let mut pull = http.get(format!("{}{stream}", server.http_url())).send().await.unwrap();
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !text.contains("\n\n") {
        let chunk = tokio::time::timeout_at(deadline, pull.chunk())
            .await
            .expect("a layers event in 5 s");
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap().expect("the stream goes on")));
    }
    assert!(text.starts_with("event: layers\ndata: {\"1\":[{\"bitrate\":"), "{text}");
    assert!(text.contains(r#""height":240,"rid":"0","width":320}]}"#), "{text}");
    let bitrate: u64 = text
        .split("\"bitrate\":")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(bitrate > 10_000, "a bitrate measured: {text}");
    let layer = link(conformance::webrtc::http::LAYER_REL);
    let select = |body: &'static str| {
        let http = http.clone();
        let layer = layer.clone();
        async move {
            let answer = http
                .post(layer)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            (answer.status().as_u16(), answer.text().await.unwrap())
        }
    };
    assert_eq!(select(r#"{"mediaId":"1","rid":"0"}"#).await.0, 200);
    let (status, why) = select(r#"{"rid":"7"}"#).await;
    assert_eq!(
        (status, why.as_str()),
        (400, "no layer with rid \"7\" (the stream's: 0)\n")
    );
    assert_eq!(select(r#"{"spatialLayerId":1}"#).await.0, 400);
    assert_eq!(select("not json").await.0, 400);
    let _ = publisher.kill().await;
    server.shutdown().await;
}

/// The WebSocket channel's `layer` message: answered `SELECTED` with the
/// stream's layers for a known `rid` or a size that fits, `FAILED` with
/// the reason for an unknown one; an unknown stream id is an `error`.
#[tokio::test]
async fn a_websocket_player_selects_a_layer_with_a_layer_message() {
    init_log();
    let server = embedded(|_| {}).await.unwrap();
    let name = "ws-layers";
    let mut publisher = ffmpeg_live(&server, name).await;
    let ws = WsSession::connect(
        &conformance::webrtc::ws::ws_url(&server.http_url()),
        APP,
        serde_json::json!({}),
    )
    .await
    .unwrap();
    let player = WebRtcPlayer::play(Signalling::ws(&ws, "p1", name), PlayerOptions::default())
        .await
        .unwrap();
    until(&player, "pictures", |r| r.video.pictures >= 5).await;
    let select = |selection| {
        let player = &player;
        async move { player.select_layer(&selection, WAIT).await }
    };
    select(serde_json::json!({"rid": "0"})).await.unwrap();
    select(serde_json::json!({"maxWidth": 320})).await.unwrap();
    let answer = ws.messages().into_iter().rfind(|m| m["type"] == "layer").unwrap();
    assert_eq!(
        answer,
        serde_json::json!({"type": "layer", "id": "p1", "status": "SELECTED", "rid": "0",
            "layers": [{"rid": "0", "width": 320, "height": 240}]})
    );
    let refused = select(serde_json::json!({"rid": "7"})).await.unwrap_err();
    assert_eq!(
        refused.refusal().as_deref(),
        Some("FAILED \"no layer with rid \\\"7\\\" (the stream's: 0)\"")
    );
    let errors = ws.errors().len();
    ws.send_json(&serde_json::json!({"type": "layer", "id": "nobody", "rid": "0"}))
        .unwrap();
    assert_eq!(ws.wait_error(errors, WAIT).await.unwrap(), "no stream with id 'nobody'");
    let _ = publisher.kill().await;
    server.shutdown().await;
}

/// An application with `whep_counter_offer` answers a WHEP offer with its
/// own (406, WHEP draft 03, section 4.2); the suite's player answers it by
/// PATCH and plays. A counter-offer is used up by its answer, withdrawn by
/// DELETE, and a malformed answer is refused 400.
#[tokio::test]
async fn a_counter_offer_is_answered_by_patch_and_played() {
    init_log();
    let server = embedded(|config| {
        config.apps.get_mut(APP).unwrap().whep_counter_offer = true;
    })
    .await
    .unwrap();
    let mut publisher = ffmpeg_live(&server, "countered").await;
    let player = WebRtcPlayer::play(whep(&server, "countered"), PlayerOptions::default())
        .await
        .unwrap();
    // What the player kept is the server's offer: sendonly, both tracks.
    let offer = player.answer();
    for media in [offer.audio(), offer.video()] {
        let media = media.expect("audio and video offered");
        assert_eq!(media.direction.as_str(), "sendonly", "{}", player.answer_sdp());
    }
    let report = until(&player, "pictures and the tone after a counter-offer", |r| {
        r.video.pictures >= 25 && r.audio.decoded_frames >= 50
    })
    .await;
    assert_eq!((report.video.width, report.video.height), (320, 240));
    let tone = player.audio_frequency(Duration::from_millis(500)).expect("a tone");
    assert!((tone - 440.0).abs() < 10.0, "heard {tone} Hz");
    // The counter-offer is used up: its URL is the session's now.
    let location = player.location().unwrap().to_string();
    let http = reqwest::Client::new();
    let again = http
        .patch(&location)
        .header("Content-Type", "application/sdp")
        .body("v=0\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 415, "an SDP PATCH to a running session");
    assert_eq!(server.context().webrtc.session_count(), 1);

    // One left unanswered: DELETE withdraws it, and then nothing is there.
    let posted = whep_offer_posted(&server, "countered").await;
    assert_eq!(posted.status(), 406);
    assert!(posted.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/sdp"));
    let withdrawn = format!(
        "{}{}",
        server.http_url(),
        posted.headers()["location"].to_str().unwrap()
    );
    let counter = posted.text().await.unwrap();
    assert!(
        counter.contains("a=sendonly") && counter.contains("a=setup:actpass"),
        "{counter}"
    );
    assert_eq!(http.delete(&withdrawn).send().await.unwrap().status(), 200);
    assert_eq!(http.delete(&withdrawn).send().await.unwrap().status(), 404);

    // One answered with garbage: 400, and it is used up.
    let posted = whep_offer_posted(&server, "countered").await;
    let garbage = format!(
        "{}{}",
        server.http_url(),
        posted.headers()["location"].to_str().unwrap()
    );
    let patch = |body: &'static str| {
        http.patch(&garbage)
            .header("Content-Type", "application/sdp")
            .body(body)
            .send()
    };
    assert_eq!(patch("hello").await.unwrap().status(), 400);
    assert_eq!(patch("hello").await.unwrap().status(), 404);
    assert_eq!(server.context().webrtc.session_count(), 1);
    let _ = publisher.kill().await;
    server.shutdown().await;
}

/// A counter-offer nobody answers holds a session's place until
/// `webrtc.counter_offer_valid` has passed; then it is forgotten (its
/// PATCH finds nothing) and the place is free again.
#[tokio::test]
async fn an_unanswered_counter_offer_is_forgotten_and_gives_its_place_back() {
    let server = embedded(|config| {
        config.apps.get_mut(APP).unwrap().whep_counter_offer = true;
        config.webrtc.counter_offer_valid = Duration::from_secs(1);
        config.webrtc.max_sessions = 1;
    })
    .await
    .unwrap();
    let mut publisher = ffmpeg_live(&server, "unanswered").await;
    let posted = whep_offer_posted(&server, "unanswered").await;
    assert_eq!(posted.status(), 406);
    // Not the draft's default 30 s: the 406 says until when (an HTTP-date).
    let content_type = posted.headers()["content-type"].to_str().unwrap();
    let until = content_type
        .strip_prefix("application/sdp; valid-until=\"")
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no valid-until: {content_type}"));
    let until = httpdate::parse_http_date(until).unwrap();
    let left = until.duration_since(std::time::SystemTime::now()).unwrap_or_default();
    assert!(left <= Duration::from_secs(1), "valid for {left:?}");
    let location = format!(
        "{}{}",
        server.http_url(),
        posted.headers()["location"].to_str().unwrap()
    );
    assert_eq!(
        whep_offer_posted(&server, "unanswered").await.status(),
        503,
        "the one place is the counter-offer's"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let late = reqwest::Client::new()
        .patch(&location)
        .header("Content-Type", "application/sdp")
        .body("v=0\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(late.status(), 404, "an expired counter-offer is gone");
    assert_eq!(
        whep_offer_posted(&server, "unanswered").await.status(),
        406,
        "its place is free again"
    );
    let _ = publisher.kill().await;
    server.shutdown().await;
}

/// An ICE restart over WHEP (draft 03, section 4.5.3): the session answers
/// 200 with new credentials of its own and a new entity-tag, answers the
/// player's checks made with the new credentials, and the pictures and the
/// sound go on. Each restart is a new ICE session: a trickle `PATCH` must
/// name the current one's tag (412 for the one before).
#[tokio::test]
async fn an_ice_restart_gets_new_credentials_and_the_stream_goes_on() {
    let server = embedded(|_| {}).await.unwrap();
    let mut publisher = ffmpeg_live(&server, "restart").await;
    let player = WebRtcPlayer::play(whep(&server, "restart"), PlayerOptions::default())
        .await
        .unwrap();
    until(&player, "pictures", |r| r.video.pictures >= 10).await;
    let first_ufrag = conformance::webrtc::http::fragment_credentials(player.answer_sdp())
        .unwrap()
        .ufrag;

    let restart = player.restart_ice().await.unwrap();
    assert_eq!(restart.status, 200, "{restart:?}");
    assert_eq!(restart.header("content-type"), Some("application/trickle-ice-sdpfrag"));
    let credentials = conformance::webrtc::http::fragment_credentials(&restart.body).expect("new credentials");
    assert_ne!(credentials.ufrag, first_ufrag, "{}", restart.body);
    assert!(restart.body.contains("a=ice-lite"), "{}", restart.body);
    assert!(restart.body.contains("a=candidate:"), "{}", restart.body);
    let tag = restart.header("etag").expect("the new ICE session's ETag").to_string();

    let before = until(&player, "a check with the new credentials answered", |r| {
        r.peer.checks_answered_since_restart >= 1
    })
    .await;
    assert_eq!(before.peer.ice_restarts, 1);
    until(&player, "pictures and sound after the restart", |r| {
        r.video.pictures >= before.video.pictures + 50 && r.audio.decoded_frames >= before.audio.decoded_frames + 100
    })
    .await;
    let report = player.report();
    assert!(report.recent_audio_dbfs.is_some_and(|db| db > -40.0), "{report:#?}");

    let again = player.restart_ice().await.unwrap();
    assert_eq!(again.status, 200, "{again:?}");
    let newer = again.header("etag").expect("an ETag").to_string();
    assert_ne!(newer, tag, "each ICE session has its own entity-tag");
    assert_eq!(server.metrics().webrtc_ice_restarts.get(), 2);
    until(&player, "a check answered after the second restart", |r| {
        r.peer.ice_restarts == 2 && r.peer.checks_answered_since_restart >= 1
    })
    .await;

    let location = player.location().unwrap().to_string();
    let candidates =
        "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n";
    let trickle = |tag: String| {
        let location = location.clone();
        async move {
            reqwest::Client::new()
                .patch(&location)
                .header("Content-Type", "application/trickle-ice-sdpfrag")
                .header("If-Match", tag)
                .body(candidates)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(trickle(tag).await, 412, "the tag of the ICE session before");
    assert_eq!(trickle(newer).await, 204, "the current ICE session's tag");
    let deleted = reqwest::Client::new().delete(&location).send().await.unwrap();
    assert_eq!(deleted.status(), 200);
    let _ = publisher.kill().await;
    server.shutdown().await;
}

#[tokio::test]
async fn the_players_of_a_stream_send_payloads_made_once() {
    let server = embedded(|_| {}).await.unwrap();
    let publishing = flash_live(&server, "shared").await;
    let players = futures_util::future::join_all(
        (0..3).map(|_| WebRtcPlayer::play(whep(&server, "shared"), PlayerOptions::default())),
    )
    .await;
    let players: Vec<WebRtcPlayer> = players.into_iter().map(Result::unwrap).collect();
    for player in &players {
        until(player, "pictures and sound from shared payloads", |r| {
            r.video.pictures >= 25
                && r.video.decode_errors == 0
                && r.audio.decoded_frames >= 50
                && r.recent_audio_dbfs.is_some_and(|db| db > -50.0)
        })
        .await;
    }
    // Every frame a player sent was counted; every frame cut into RTP
    // payloads once. Three players of one stream: about three sends per
    // cut (fewer only for frames sent before the others joined).
    let (sent, made) = (
        server.metrics().frames_out.get(),
        server.metrics().webrtc_frames_packetized.get(),
    );
    assert!(
        made > 0 && sent >= made * 5 / 2,
        "{sent} frames sent, {made} packetized"
    );
    publishing.abort();
    server.shutdown().await;
}

/// A WebRTC player's frames are delivered by the threads that send them
/// (its stream's fan-out, its sound transcoder's codec thread), not by its
/// own task: a player that leaves is let go at once, the one that stays
/// plays on, and it follows the stream to a new publisher.
#[tokio::test]
async fn players_fed_by_the_fan_out_leave_it_cleanly_and_follow_a_new_publisher() {
    init_log();
    let server = embedded(|_| {}).await.unwrap();
    let name = "fanned-out";
    let mut first = ffmpeg_live(&server, name).await;
    let mut leaving = WebRtcPlayer::play(whep(&server, name), PlayerOptions::default())
        .await
        .unwrap();
    let staying = WebRtcPlayer::play(whep(&server, name), PlayerOptions::default())
        .await
        .unwrap();
    let playing = |r: &PlayerReport| r.video.pictures >= 10 && r.audio.decoded_frames >= 25;
    until(&leaving, "pictures and sound", playing).await;
    until(&staying, "pictures and sound", playing).await;
    assert_eq!(server.hub().viewer_count(APP, name), 2);
    assert_eq!(server.context().transcoders.running(), 1, "one AAC→Opus transcoder");

    leaving.stop().await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while server.hub().viewer_count(APP, name) != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the player that left is still a viewer"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let more = |what: &'static str, before: PlayerReport| {
        let staying = &staying;
        async move {
            until(staying, what, |r| {
                r.video.pictures >= before.video.pictures + 25
                    && r.audio.decoded_frames >= before.audio.decoded_frames + 50
                    && r.recent_audio_dbfs.is_some_and(|db| db > -50.0)
            })
            .await
        }
    };
    more("pictures and sound after the other left", staying.report()).await;

    first.kill().await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while server.hub().describe(APP, name).is_some_and(|d| d.has_video) {
        assert!(tokio::time::Instant::now() < deadline, "the first publisher never left");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = staying.report();
    let mut second = ffmpeg_live(&server, name).await;
    let report = more("pictures and sound from the new publisher", before).await;
    assert_eq!(report.video.decode_errors, 0, "{report:#?}");
    let _ = second.kill().await;
    server.shutdown().await;
}
