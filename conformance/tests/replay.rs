//! Message logs of real captures, replays against the reference server, and
//! recordings through the proxy, all over real sockets on 127.0.0.1.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use conformance::capture::{read_tcp_flows_timed, rtmp_flows};
use conformance::client::{ClientProfile, RtmpClient};
use conformance::record::Recorder;
use conformance::replay::log::Direction;
use conformance::replay::report::Status;
use conformance::replay::{
    message_logs, replay_capture, replay_source, CaptureSource, MessageKind, MessageLog, ReplayError, ReplayOptions,
    Verdict,
};
use conformance::target::embedded;
use media::netstatus::code;

fn fixture_path(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures").join(path)
}

const OBS: &str = "captures/obs_publish_to_nginx.pcap";
const FP9: &str = "captures/wireshark_rtmp_sample_fp9.cap";

fn only_log(source: &CaptureSource) -> MessageLog {
    let mut logs = message_logs(source, None).unwrap();
    assert_eq!(logs.len(), 1, "one RTMP connection in {}", source.describe());
    logs.remove(0)
}

/// What the client did: command names and data handler names, in order.
fn client_calls(log: &MessageLog) -> Vec<String> {
    log.messages
        .iter()
        .filter(|m| m.direction == Direction::ClientToServer)
        .filter_map(|m| match &m.kind {
            MessageKind::Command(c) => Some(c.name.clone()),
            MessageKind::Data(d) => d.values.first().and_then(|v| v.as_str()).map(str::to_string),
            _ => None,
        })
        .collect()
}

fn count_media(log: &MessageLog, direction: Direction, audio_codec: &str, video_codec: &str) -> (usize, usize) {
    let mine = log.messages.iter().filter(|m| m.direction == direction);
    let audio = mine
        .clone()
        .filter(|m| matches!(m.kind, MessageKind::Audio { codec: Some(c), .. } if c == audio_codec))
        .count();
    let video = mine
        .filter(|m| matches!(m.kind, MessageKind::Video { codec: Some(c), .. } if c == video_codec))
        .count();
    (audio, video)
}

fn fast() -> ReplayOptions {
    ReplayOptions {
        answer_timeout: Duration::from_secs(3),
        settle: Duration::from_millis(50),
        ..ReplayOptions::default()
    }
}

fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("conformance-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn obs_capture_logs_the_fmle_sequence_and_every_media_message() {
    let log = only_log(&CaptureSource::File(fixture_path(OBS)));
    assert_eq!(
        client_calls(&log),
        [
            "connect",
            "releaseStream",
            "FCPublish",
            "createStream",
            "publish",
            "@setDataFrame",
            "FCUnpublish",
            "deleteStream"
        ]
    );
    // fixtures/README.md: 197 AAC + 126 H.264 messages.
    assert_eq!(count_media(&log, Direction::ClientToServer, "aac", "h264"), (197, 126));
    assert_eq!(
        log.status_codes(Direction::ServerToClient),
        [code::CONNECT_SUCCESS, code::PUBLISH_START, code::UNPUBLISH_SUCCESS]
    );
    assert_eq!((log.client_trailing_bytes, log.server_trailing_bytes), (0, 0));
    // In capture order, the publish answer comes before the first media message.
    let lines = log.lines();
    let start = lines.iter().position(|l| l.contains(code::PUBLISH_START)).unwrap();
    let first_media = lines
        .iter()
        .position(|l| l.starts_with("C→S video") || l.starts_with("C→S audio"))
        .unwrap();
    assert!(start < first_media, "{lines:#?}");
    insta::assert_snapshot!("obs_log_head", lines[..24].join("\n"));
}

#[test]
fn flash_player_9_capture_logs_its_failed_play() {
    let log = only_log(&CaptureSource::File(fixture_path(FP9)));
    assert_eq!(client_calls(&log), ["connect", "createStream", "play"]);
    assert_eq!(
        log.status_codes(Direction::ServerToClient),
        [code::CONNECT_SUCCESS, code::PLAY_FAILED]
    );
    insta::assert_snapshot!("fp9_log", log.to_string());
}

#[test]
fn ffmpeg_raw_directions_log_in_request_response_order() {
    let source = CaptureSource::Directions {
        client: fixture_path("captures/ffmpeg_play_client.bin"),
        server: fixture_path("captures/ffmpeg_listen_server.bin"),
    };
    let log = only_log(&source);
    assert_eq!(
        client_calls(&log),
        [
            "connect",
            "createStream",
            "_checkbw",
            "getStreamLength",
            "play",
            "deleteStream"
        ]
    );
    let (audio, video) = count_media(&log, Direction::ServerToClient, "aac", "h264");
    assert_eq!(video, 0);
    // fixtures/README.md: ~400 AAC messages (a sequence header and 409 frames).
    assert_eq!(audio, 410);
    // ffmpeg -listen writes garbage into the onStatus description; the log
    // still reads its code.
    assert_eq!(
        log.status_codes(Direction::ServerToClient),
        [code::CONNECT_SUCCESS, code::PLAY_START]
    );
    // Request/response order: play's answer right after it, the media before
    // the client's closing deleteStream.
    let lines = log.lines();
    let play = lines.iter().position(|l| l.starts_with("C→S play")).unwrap();
    let start = lines.iter().position(|l| l.contains(code::PLAY_START)).unwrap();
    let last_audio = lines.iter().rposition(|l| l.starts_with("S→C audio")).unwrap();
    let delete = lines.iter().position(|l| l.starts_with("C→S deleteStream")).unwrap();
    assert!(play < start && start < last_audio && last_audio < delete, "{lines:#?}");
    assert_eq!(
        log.client_handshake,
        conformance::handshake::ClientHandshake::FlashDigest(conformance::handshake::DigestScheme::Scheme0)
    );
}

#[tokio::test]
async fn obs_capture_replays_against_the_reference_server() {
    let server = embedded(|_| {}).await.unwrap();
    let report = replay_capture(&fixture_path(OBS), &server.rtmp_url("live"), fast())
        .await
        .unwrap();
    assert!(report.is_match(), "{report}");
    let names: Vec<&str> = report.commands.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "connect",
            "releaseStream",
            "FCPublish",
            "createStream",
            "publish",
            "FCUnpublish",
            "deleteStream"
        ]
    );
    // Every command the captured nginx answered was answered by the reference server.
    for command in ["connect", "createStream", "publish", "deleteStream"] {
        assert_eq!(report.command(command).unwrap().verdict, Verdict::Match, "{report}");
    }
    assert_eq!(report.sent.media, 197 + 126);
    assert_eq!(report.stream_ids.len(), 1, "{report}");
    // The app and tcUrl were rewritten: the stream went live on the default app.
    assert_eq!(server.metrics().frames_in.get(), 197 + 126 + 1);
    assert!(report
        .wire_log
        .iter()
        .any(|l| l.starts_with("S→C onStatus") && l.contains(code::PUBLISH_START)));
    assert!(report
        .wire_log
        .iter()
        .any(|l| l.starts_with("C→S connect") && l.contains(&server.rtmp_url("live"))));
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["commands"][0]["verdict"], "match");
    server.shutdown().await;
}

#[tokio::test]
async fn flash_player_9_replay_shows_the_play_difference() {
    let server = embedded(|_| {}).await.unwrap();
    let report = replay_capture(&fixture_path(FP9), &server.rtmp_url("flashStreamingApp"), fast())
        .await
        .unwrap();
    assert!(!report.is_match(), "{report}");
    assert_eq!(report.command("connect").unwrap().verdict, Verdict::Match, "{report}");
    assert_eq!(
        report.command("createStream").unwrap().verdict,
        Verdict::Match,
        "{report}"
    );
    let status = |code: &str| Status {
        code: code.to_string(),
        level: "error".to_string(),
    };
    match &report.command("play").unwrap().verdict {
        Verdict::Differs { expected, actual } => {
            assert_eq!(expected.statuses, [status(code::PLAY_FAILED)], "{report}");
            assert_eq!(actual.statuses, [status(code::PLAY_STREAM_NOT_FOUND)], "{report}");
        }
        other => panic!("play: {other:?}\n{report}"),
    }
    assert_eq!(report.mismatches().count(), 1, "{report}");
    let summary = report.to_string();
    assert!(
        summary.contains("Expected: onStatus NetStream.Play.Failed (error)"),
        "{summary}"
    );
    assert!(
        summary.contains("Actual:   onStatus NetStream.Play.StreamNotFound (error)"),
        "{summary}"
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["commands"][2]["verdict"], "differs");
    assert_eq!(
        json["commands"][2]["actual"]["statuses"][0]["code"],
        code::PLAY_STREAM_NOT_FOUND
    );
    server.shutdown().await;
}

#[tokio::test]
async fn recorded_sessions_read_back_and_replay() {
    let server = embedded(|_| {}).await.unwrap();
    let out = temp_path("recorded.pcapng");
    let recorder = Recorder::bind(
        ([127, 0, 0, 1], 0).into(),
        &format!("rtmp://{}", server.rtmp_addr()),
        &out,
    )
    .await
    .unwrap();
    let proxy = recorder.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let recording = tokio::spawn(recorder.run(stopped));

    // A publisher and, at the same time, a player of a stream nobody publishes.
    let mut player = RtmpClient::open(proxy, ClientProfile::flash_player()).await.unwrap();
    player.connect(&format!("rtmp://{proxy}/live"), vec![]).await.unwrap();
    let mut publisher = RtmpClient::open(proxy, ClientProfile::encoder()).await.unwrap();
    publisher
        .connect(&format!("rtmp://{proxy}/live"), vec![])
        .await
        .unwrap();
    let stream = publisher.create_stream().await.unwrap();
    let status = publisher.publish(stream, "recorded").await.unwrap();
    assert_eq!(status.code, code::PUBLISH_START);
    let flv = std::fs::read(fixture_path("flv/ffmpeg_aac_lc_mono_44100_440hz.flv")).unwrap();
    let tags = media::flv::read_tags(&Bytes::from(flv)).unwrap();
    publisher.send_tags(stream, &tags, false).await.unwrap();
    let player_stream = player.create_stream().await.unwrap();
    assert_eq!(
        player.play(player_stream, "absent").await.unwrap().code,
        code::PLAY_STREAM_NOT_FOUND
    );
    publisher.unpublish(stream, "recorded").await.unwrap();
    publisher
        .wait_status(stream, code::UNPUBLISH_SUCCESS, Duration::from_secs(5))
        .await
        .unwrap();
    drop(publisher);
    drop(player);
    stop.send(()).unwrap();
    let summary = recording.await.unwrap().unwrap();
    assert_eq!(summary.connections, 2, "{summary:?}");
    assert!(summary.client_bytes > 89 * 100, "{summary:?}");

    let bytes = std::fs::read(&out).unwrap();
    let flows = rtmp_flows(&bytes, server.rtmp_addr().port()).unwrap();
    assert_eq!(flows.len(), 2);
    assert_eq!(read_tcp_flows_timed(&bytes).unwrap().len(), 2);
    let logs = message_logs(&CaptureSource::File(out.clone()), None).unwrap();
    let publish_log = logs
        .iter()
        .find(|log| client_calls(log).contains(&"publish".to_string()))
        .expect("the publisher's connection");
    assert!(publish_log
        .status_codes(Direction::ServerToClient)
        .contains(&code::PUBLISH_START.to_string()));
    let audio_tags = tags.iter().filter(|t| t.kind == media::flv::TagKind::Audio).count();
    assert_eq!(
        count_media(publish_log, Direction::ClientToServer, "aac", "h264").0,
        audio_tags
    );
    // The Flash-like player: digest handshake, type 17 commands after connect.
    let player_log = logs.iter().find(|log| !std::ptr::eq(*log, publish_log)).unwrap();
    assert_eq!(
        player_log.client_handshake,
        conformance::handshake::ClientHandshake::FlashDigest(conformance::handshake::DigestScheme::Scheme1)
    );
    assert!(
        player_log.lines().iter().any(|l| l.starts_with("C→S play [AMF3]")),
        "{player_log}"
    );
    server.shutdown().await;

    // Both recorded connections replay against a fresh server and match.
    let fresh = embedded(|_| {}).await.unwrap();
    let publisher_index = logs.iter().position(|l| std::ptr::eq(l, publish_log)).unwrap();
    for connection in [publisher_index, 1 - publisher_index] {
        let options = ReplayOptions { connection, ..fast() };
        let report = replay_capture(&out, &fresh.rtmp_url("live"), options).await.unwrap();
        assert!(report.is_match(), "{report}");
        assert_eq!(report.connections, 2);
        if connection != publisher_index {
            assert!(report.handshake.starts_with("flash-digest"), "{report}");
            assert!(
                report.wire_log.iter().any(|l| l.starts_with("C→S play [AMF3]")),
                "{:#?}",
                report.wire_log
            );
            assert!(
                report.wire_log.iter().any(|l| l.contains(code::PLAY_STREAM_NOT_FOUND)),
                "{:#?}",
                report.wire_log
            );
        }
    }
    fresh.shutdown().await;
}

#[tokio::test]
async fn a_refusing_upstream_is_counted_not_recorded() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = format!("rtmp://{}", closed.local_addr().unwrap());
    drop(closed);
    let out = temp_path("refused.pcapng");
    let recorder = Recorder::bind(([127, 0, 0, 1], 0).into(), &upstream, &out)
        .await
        .unwrap();
    let proxy = recorder.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let recording = tokio::spawn(recorder.run(stopped));
    let err = RtmpClient::open(proxy, ClientProfile::encoder()).await.err();
    assert!(err.is_some(), "the handshake cannot succeed without an upstream");
    stop.send(()).unwrap();
    let summary = recording.await.unwrap().unwrap();
    assert_eq!(
        (summary.connections, summary.upstream_failures, summary.packets),
        (0, 1, 0)
    );
    // An empty capture: a clear error, not a panic.
    let err = replay_capture(&out, "rtmp://127.0.0.1/live", fast()).await.unwrap_err();
    assert!(matches!(err, ReplayError::NoRtmp { tcp: 0, .. }), "{err}");
}

#[tokio::test]
async fn realtime_replay_keeps_the_captured_pacing() {
    let log = only_log(&CaptureSource::File(fixture_path(FP9)));
    let times: Vec<Duration> = log
        .messages
        .iter()
        .filter(|m| m.direction == Direction::ClientToServer)
        .filter_map(|m| m.capture.and_then(|c| c.time))
        .collect();
    let span = *times.last().unwrap() - times[0];
    assert!(span >= Duration::from_millis(100), "the captured client took {span:?}");
    let server = embedded(|_| {}).await.unwrap();
    let options = ReplayOptions {
        realtime: true,
        ..fast()
    };
    let report = replay_capture(&fixture_path(FP9), &server.rtmp_url("live"), options)
        .await
        .unwrap();
    assert_eq!(report.commands.len(), 3, "{report}");
    assert!(
        Duration::from_millis(report.duration_ms) >= span,
        "replayed in {} ms, captured in {span:?}",
        report.duration_ms
    );
    server.shutdown().await;
}

#[tokio::test]
async fn unreadable_captures_are_clear_errors() {
    let server = embedded(|_| {}).await.unwrap();
    let url = server.rtmp_url("live");

    let garbage = temp_path("garbage.pcap");
    std::fs::write(&garbage, b"this is not a capture at all").unwrap();
    let err = replay_capture(&garbage, &url, fast()).await.unwrap_err();
    assert!(matches!(err, ReplayError::Capture { .. }), "{err}");
    assert!(err.to_string().contains("not a pcap or pcapng file"), "{err}");

    let obs = std::fs::read(fixture_path(OBS)).unwrap();
    let truncated = temp_path("truncated.pcap");
    std::fs::write(&truncated, &obs[..obs.len() / 2 + 7]).unwrap();
    let err = replay_capture(&truncated, &url, fast()).await.unwrap_err();
    assert!(err.to_string().contains("cut short"), "{err}");

    let missing = temp_path("does-not-exist.pcap");
    let err = replay_capture(&missing, &url, fast()).await.unwrap_err();
    assert!(matches!(err, ReplayError::Read { .. }), "{err}");

    // Raw directions: too short for a handshake, then garbage after one.
    let client = temp_path("client.bin");
    let server_side = temp_path("server.bin");
    std::fs::write(&client, [3u8; 100]).unwrap();
    std::fs::write(&server_side, [3u8; 3073]).unwrap();
    let pair = CaptureSource::Directions {
        client: client.clone(),
        server: server_side.clone(),
    };
    let err = replay_source(&pair, &url, fast()).await.unwrap_err();
    assert!(err.to_string().contains("handshake alone takes 3073"), "{err}");
    let mut noise = vec![3u8; 3073];
    let mut x = 0x2545_f491_u32;
    noise.extend((0..4000).map(|_| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x as u8
    }));
    std::fs::write(&client, &noise).unwrap();
    match message_logs(&pair, None) {
        Ok(logs) => assert!(logs[0]
            .messages
            .iter()
            .all(|m| m.direction == Direction::ClientToServer)),
        Err(err) => assert!(err.to_string().contains("chunk stream breaks"), "{err}"),
    }
    std::fs::write(&client, [6u8; 4000]).unwrap();
    let err = message_logs(&pair, None).unwrap_err();
    assert!(err.to_string().contains("RTMPE"), "{err}");

    // No RTMP connection, a connection index out of range, a bad URL, nobody listening.
    let err = replay_capture(
        &fixture_path(OBS),
        &url,
        ReplayOptions {
            port: Some(80),
            ..fast()
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ReplayError::NoRtmp { .. }), "{err}");
    let err = replay_capture(
        &fixture_path(OBS),
        &url,
        ReplayOptions {
            connection: 3,
            ..fast()
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, ReplayError::NoSuchConnection { available: 1, .. }),
        "{err}"
    );
    let err = replay_capture(&fixture_path(OBS), "http://x/live", fast())
        .await
        .unwrap_err();
    assert!(matches!(err, ReplayError::BadTarget { .. }), "{err}");
    server.shutdown().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("rtmp://{}/live", closed.local_addr().unwrap());
    drop(closed);
    let err = replay_capture(&fixture_path(OBS), &closed_url, fast())
        .await
        .unwrap_err();
    assert!(matches!(err, ReplayError::Connect { .. }), "{err}");
}
