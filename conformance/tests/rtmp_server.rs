//! The reference server's RTMP side over real sockets on 127.0.0.1, driven by
//! the suite's emulated Flash Player and encoder clients.

use std::time::Duration;

use bytes::Bytes;
use conformance::client::{ClientProfile, Incoming, RtmpClient, StatusEvent};
use conformance::target::embedded;
use media::amf::Value;
use media::flv::{self, Tag};
use media::netstatus::{code, Level};
use media::rtmp::UserControl;
use reference_server::config::MissingStreamPolicy;
use reference_server::ServerHandle;

const WAIT: Duration = Duration::from_secs(5);

fn fixture(path: &str) -> Vec<u8> {
    let full = format!("{}/../fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&full).unwrap_or_else(|e| panic!("fixture {full}: {e}"))
}

/// The real Flash Player recording: H.264 Baseline + Speex, 30 s.
/// The Red5 recording of Flash Player from its first keyframe (8.4 s in),
/// restamped from 0, after its metadata and the last sequence header
/// before that keyframe: its first seconds are inter pictures no decoder
/// can start at, which no player gets.
fn flash_recording() -> Vec<Tag> {
    let tags = flv::read_tags(&Bytes::from(fixture("flv/red5_h264_speex.flv"))).expect("valid FLV");
    let video = |t: &Tag, first: u8, second: u8| {
        t.kind == flv::TagKind::Video && t.data.first() == Some(&first) && t.data.get(1) == Some(&second)
    };
    let keyframe = tags.iter().position(|t| video(t, 0x17, 1)).expect("a keyframe");
    let header = tags[..keyframe]
        .iter()
        .rposition(|t| video(t, 0x17, 0))
        .expect("a sequence header before it");
    let start = tags[keyframe].timestamp;
    tags.iter()
        .enumerate()
        .filter(|(i, t)| t.kind == flv::TagKind::Script || *i == header || *i >= keyframe)
        .map(|(_, t)| Tag {
            timestamp: t.timestamp.saturating_sub(start),
            ..t.clone()
        })
        .collect()
}

/// The first `ms` milliseconds of the recording, from its start.
fn first_ms(tags: &[Tag], ms: u32) -> Vec<Tag> {
    tags.iter().filter(|t| t.timestamp <= ms).cloned().collect()
}

/// The seed's Flash client: `nc.connect(url, {login, appKey})`.
fn seed_args(app_key: &str) -> Vec<Value> {
    vec![Value::object([
        ("login", Value::from("user1")),
        ("appKey", Value::from(app_key)),
    ])]
}

fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("debug")
        .try_init();
}

async fn flash_connected(server: &ServerHandle, path: &str, args: Vec<Value>) -> RtmpClient {
    let mut client = RtmpClient::open(server.rtmp_addr(), ClientProfile::flash_player())
        .await
        .unwrap();
    let status = client
        .connect(&format!("rtmp://{}/{path}", server.rtmp_addr()), args)
        .await
        .unwrap();
    assert_eq!(status.code, code::CONNECT_SUCCESS, "{:?}", client.wire_log());
    client
}

async fn encoder_connected(server: &ServerHandle, path: &str) -> RtmpClient {
    let mut client = RtmpClient::open(server.rtmp_addr(), ClientProfile::encoder())
        .await
        .unwrap();
    let status = client
        .connect(&format!("rtmp://{}/{path}", server.rtmp_addr()), vec![])
        .await
        .unwrap();
    assert_eq!(status.code, code::CONNECT_SUCCESS, "{:?}", client.wire_log());
    client
}

/// A transcript line per NetStatus, without the random clientid.
fn transcript(statuses: &[StatusEvent]) -> Vec<String> {
    statuses
        .iter()
        .map(|s| {
            format!(
                "[{}] {} {} {} | {}{}",
                s.stream_id,
                s.via,
                s.status.level.as_str(),
                s.status.code,
                s.status.description,
                s.status
                    .details
                    .as_ref()
                    .map(|d| format!(" | details={d}"))
                    .unwrap_or_default()
            )
        })
        .collect()
}

fn first_video_frame(media: &[Incoming]) -> Option<(bool, bool)> {
    media.iter().find_map(|m| match m {
        Incoming::Media {
            type_id: 9, payload, ..
        } => flv::video_header(payload).map(|h| (h.is_sequence_header, h.is_keyframe)),
        _ => None,
    })
}

#[tokio::test]
async fn flash_publishes_encoder_plays_with_exact_netstatus() {
    let server = embedded(|_| {}).await.unwrap();
    let mut flash = flash_connected(&server, "flashStreamingApp", seed_args("flashStreamingApp")).await;

    // Flash Player asked for AMF3: the answer says so, and commands now go as type 17.
    let answer = flash.connect_answer().unwrap().clone();
    assert_eq!(answer.name, "_result");
    let info = &answer.args[0];
    assert_eq!(info.get("objectEncoding").and_then(Value::as_f64), Some(3.0));
    assert!(info
        .get("clientid")
        .and_then(Value::as_str)
        .is_some_and(|id| !id.is_empty()));
    assert!(answer.command_object.get("fmsVer").and_then(Value::as_str).is_some());
    assert!(
        flash.handshake_report().s2_verified,
        "S2 must verify against our digest C1"
    );

    let stream = flash.create_stream().await.unwrap();
    let status = flash.publish(stream, "stream1?s1=v1").await.unwrap();
    assert_eq!(
        (status.code.as_str(), status.level),
        (code::PUBLISH_START, Level::Status)
    );
    assert_eq!(
        status.details.as_deref(),
        Some("stream1"),
        "the stream name loses its query"
    );
    assert!(status.clientid.is_some());
    let recording = flash_recording();
    flash
        .send_tags(stream, &first_ms(&recording, 3000), false)
        .await
        .unwrap();

    // A late joiner gets the whole play sequence, metadata, headers, then the GOP from a keyframe.
    let mut player = encoder_connected(&server, "flashStreamingApp").await;
    let play_stream = player.create_stream().await.unwrap();
    player
        .send_command(play_stream, "play", 0.0, vec![Value::from("stream1")])
        .await
        .unwrap();
    // At most 12 messages: what the player has a second after it played.
    let mut sequence = vec![];
    while sequence.len() < 12 {
        let Ok(next) = player.next(Duration::from_secs(1)).await else {
            break;
        };
        match next {
            Incoming::UserControl(UserControl::StreamBegin(id)) if id == play_stream => {
                sequence.push(format!("StreamBegin({id})"))
            }
            Incoming::Command { command, .. } => sequence.push(format!(
                "onStatus {}",
                command.args[0].get("code").and_then(Value::as_str).unwrap_or("?")
            )),
            Incoming::Data { data, .. } => {
                let name = data.values[0].as_str().unwrap_or("?").to_string();
                let detail = data
                    .values
                    .get(1)
                    .and_then(|v| v.get("code"))
                    .and_then(Value::as_str)
                    .map(|c| format!(" {c}"))
                    .unwrap_or_default();
                sequence.push(format!("data {name}{detail}"));
            }
            Incoming::Media { type_id, payload, .. } => {
                let what = if type_id == 9 {
                    let h = flv::video_header(&payload).unwrap();
                    if h.is_sequence_header {
                        "video config"
                    } else if h.is_keyframe {
                        "video keyframe"
                    } else {
                        "video inter"
                    }
                } else {
                    "audio"
                };
                sequence.push(what.to_string());
            }
            Incoming::Control(_) | Incoming::UserControl(_) => {}
        }
    }
    insta::assert_yaml_snapshot!("late_joiner_play_sequence", sequence);
    let live: Vec<Tag> = recording
        .iter()
        .filter(|t| t.timestamp > 3000 && t.timestamp <= 6000)
        .cloned()
        .collect();
    flash.send_tags(stream, &live, false).await.unwrap();
    let media = player.collect_media(50, WAIT).await;
    assert_eq!(media.len(), 50, "live media keeps flowing");

    // The publisher's socket closes: every player hears UnpublishNotify and StreamEOF.
    drop(flash);
    player
        .wait_status(play_stream, code::PLAY_UNPUBLISH_NOTIFY, WAIT)
        .await
        .unwrap();
    let mut eof = false;
    for _ in 0..200 {
        match player.next(WAIT).await.unwrap() {
            Incoming::UserControl(UserControl::StreamEof(id)) if id == play_stream => {
                eof = true;
                break;
            }
            _ => continue,
        }
    }
    assert!(eof, "StreamEOF follows UnpublishNotify");
    insta::assert_yaml_snapshot!("encoder_player_transcript", transcript(player.statuses()));
    server.shutdown().await;
}

#[tokio::test]
async fn publish_and_unpublish_sequences_for_flash_and_encoders() {
    logs();
    let server = embedded(|_| {}).await.unwrap();
    // Flash: publish, then NetStream.close() sends closeStream.
    let mut flash = flash_connected(&server, "flashStreamingApp", seed_args("flashStreamingApp")).await;
    let s = flash.create_stream().await.unwrap();
    flash.publish(s, "flashcam").await.unwrap();
    flash.unpublish(s, "flashcam").await.unwrap();
    flash.wait_status(s, code::UNPUBLISH_SUCCESS, WAIT).await.unwrap();
    assert!(!server.hub().is_live("flashStreamingApp", "flashcam"));
    insta::assert_yaml_snapshot!("flash_publish_transcript", transcript(flash.statuses()));

    // Encoder: releaseStream, FCPublish, publish, FCUnpublish, deleteStream.
    let mut obs = encoder_connected(&server, "live").await;
    let s = obs.create_stream().await.unwrap();
    obs.publish(s, "obs").await.unwrap();
    assert!(server.hub().is_live("live", "obs"));
    obs.unpublish(s, "obs").await.unwrap();
    obs.wait_status(s, code::UNPUBLISH_SUCCESS, WAIT).await.unwrap();
    // Exactly one Unpublish.Success although both FCUnpublish and deleteStream stop it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = obs.next(Duration::from_millis(100)).await;
    assert_eq!(obs.codes(s), vec![code::PUBLISH_START, code::UNPUBLISH_SUCCESS]);
    server.shutdown().await;
}

#[tokio::test]
async fn second_publisher_gets_bad_name_and_first_keeps_the_stream() {
    let server = embedded(|_| {}).await.unwrap();
    let mut first = flash_connected(&server, "flashStreamingApp", seed_args("flashStreamingApp")).await;
    let s1 = first.create_stream().await.unwrap();
    first.publish(s1, "taken").await.unwrap();

    let mut second = flash_connected(&server, "flashStreamingApp", seed_args("flashStreamingApp")).await;
    let s2 = second.create_stream().await.unwrap();
    let status = second.publish(s2, "taken?x=1").await.unwrap();
    assert_eq!(
        (status.code.as_str(), status.level),
        (code::PUBLISH_BAD_NAME, Level::Error)
    );
    assert_eq!(status.details.as_deref(), Some("taken"));
    insta::assert_yaml_snapshot!("bad_name_transcript", transcript(second.statuses()));

    // The first publisher still feeds players.
    let mut player = encoder_connected(&server, "flashStreamingApp").await;
    let p = player.create_stream().await.unwrap();
    player.play(p, "taken").await.unwrap();
    let tags = first_ms(&flash_recording(), 2000);
    first.send_tags(s1, &tags, false).await.unwrap();
    let media = player.collect_media(20, WAIT).await;
    assert_eq!(media.len(), 20);
    server.shutdown().await;
}

#[tokio::test]
async fn a_silent_publisher_is_taken_over_and_told_when_it_sends_again() {
    let server = embedded(|c| c.silent_publisher_takeover = Duration::from_millis(300))
        .await
        .unwrap();
    let mut first = encoder_connected(&server, "live").await;
    let s1 = first.create_stream().await.unwrap();
    first.publish(s1, "comeback").await.unwrap();
    let mut player = encoder_connected(&server, "live").await;
    let p = player.create_stream().await.unwrap();
    player.play(p, "comeback").await.unwrap();

    // Silent past the takeover time: the same name is someone else's now.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut second = encoder_connected(&server, "live").await;
    let s2 = second.create_stream().await.unwrap();
    let status = second.publish(s2, "comeback").await.unwrap();
    assert_eq!(status.code, code::PUBLISH_START);
    let tags = first_ms(&flash_recording(), 2000);
    second.send_tags(s2, &tags, false).await.unwrap();
    player.wait_status(p, code::PLAY_PUBLISH_NOTIFY, WAIT).await.unwrap();
    assert_eq!(player.collect_media(20, WAIT).await.len(), 20);

    // The first publisher comes back to life: its media is refused, and it is told.
    first.send_tags(s1, &tags[..5], false).await.unwrap();
    let refused = first.wait_status(s1, code::PUBLISH_BAD_NAME, WAIT).await.unwrap();
    assert_eq!(refused.level, Level::Error);
    assert_eq!(refused.details.as_deref(), Some("comeback"));
    server.shutdown().await;
}

#[tokio::test]
async fn stream_not_found_or_wait_by_application_policy() {
    let server = embedded(|c| c.apps.get_mut("live").unwrap().on_missing_stream = MissingStreamPolicy::Wait)
        .await
        .unwrap();

    // flashStreamingApp answers StreamNotFound.
    let mut player = flash_connected(&server, "flashStreamingApp", seed_args("flashStreamingApp")).await;
    let s = player.create_stream().await.unwrap();
    let status = player.play(s, "nobody").await.unwrap();
    assert_eq!(
        (status.code.as_str(), status.level),
        (code::PLAY_STREAM_NOT_FOUND, Level::Error)
    );
    assert_eq!(status.details.as_deref(), Some("nobody"));

    // live waits: Reset and Start now, PublishNotify and media when the publisher comes.
    let mut waiting = flash_connected(&server, "live", seed_args("live")).await;
    let s = waiting.create_stream().await.unwrap();
    waiting.play(s, "later").await.unwrap();
    waiting.wait_status(s, code::PLAY_START, WAIT).await.unwrap();
    let mut publisher = flash_connected(&server, "live", seed_args("live")).await;
    let ps = publisher.create_stream().await.unwrap();
    publisher.publish(ps, "later").await.unwrap();
    waiting.wait_status(s, code::PLAY_PUBLISH_NOTIFY, WAIT).await.unwrap();
    publisher
        .send_tags(ps, &first_ms(&flash_recording(), 2000), false)
        .await
        .unwrap();
    let media = waiting.collect_media(60, WAIT).await;
    assert_eq!(media.len(), 60);
    assert_eq!(
        first_video_frame(&media),
        Some((true, true)),
        "video starts with the sequence header"
    );
    publisher.unpublish(ps, "later").await.unwrap();
    waiting.wait_status(s, code::PLAY_UNPUBLISH_NOTIFY, WAIT).await.unwrap();

    // The publisher returns: PublishNotify again.
    let ps = publisher.create_stream().await.unwrap();
    publisher.publish(ps, "later").await.unwrap();
    for _ in 0..50 {
        if waiting
            .statuses()
            .iter()
            .filter(|e| e.status.code == code::PLAY_PUBLISH_NOTIFY)
            .count()
            == 2
        {
            break;
        }
        let _ = waiting.next(Duration::from_millis(100)).await;
    }
    insta::assert_yaml_snapshot!("wait_policy_transcript", transcript(waiting.statuses()));

    // closeStream answers Play.Stop.
    waiting.send_command(s, "closeStream", 0.0, vec![]).await.unwrap();
    waiting.wait_status(s, code::PLAY_STOP, WAIT).await.unwrap();
    server.shutdown().await;
}

async fn publish_one(client: &mut RtmpClient, name: &str) {
    let s = client.create_stream().await.unwrap();
    let status = client.publish(s, name).await.unwrap();
    assert_eq!(status.code, code::PUBLISH_START);
}

#[tokio::test]
async fn application_keys_from_arguments_url_or_default() {
    let server = embedded(|_| {}).await.unwrap();
    // appKey in the connect arguments.
    let mut a = flash_connected(&server, "whatever", seed_args("live")).await;
    publish_one(&mut a, "by-arg").await;
    assert!(server.hub().is_live("live", "by-arg"));
    // appKey as a URL parameter on the application.
    let mut b = encoder_connected(&server, "live?appKey=live").await;
    publish_one(&mut b, "by-url").await;
    assert!(server.hub().is_live("live", "by-url"));
    // No key: the RTMP application, when it is a defined application.
    let mut named = encoder_connected(&server, "live").await;
    publish_one(&mut named, "by-name").await;
    assert!(server.hub().is_live("live", "by-name"));
    // No key and an application not defined: flashStreamingApp.
    let mut c = encoder_connected(&server, "anything").await;
    publish_one(&mut c, "by-default").await;
    assert!(server.hub().is_live("flashStreamingApp", "by-default"));
    // An undefined key is refused.
    let mut d = RtmpClient::open(server.rtmp_addr(), ClientProfile::flash_player())
        .await
        .unwrap();
    let status = d
        .connect(&format!("rtmp://{}/live?appKey=nokey", server.rtmp_addr()), vec![])
        .await
        .unwrap();
    assert_eq!(
        (status.code.as_str(), status.level),
        (code::CONNECT_REJECTED, Level::Error)
    );
    assert!(status.description.contains("nokey"), "{}", status.description);
    server.shutdown().await;
}

#[tokio::test]
async fn application_from_url_refuses_undefined_apps_and_closes() {
    let server = embedded(|c| c.application_from_url = true).await.unwrap();
    let mut ok = encoder_connected(&server, "live").await;
    let s = ok.create_stream().await.unwrap();
    ok.publish(s, "x").await.unwrap();
    assert!(server.hub().is_live("live", "x"));

    let mut refused = RtmpClient::open(server.rtmp_addr(), ClientProfile::flash_player())
        .await
        .unwrap();
    let status = refused
        .connect(&format!("rtmp://{}/key1", server.rtmp_addr()), seed_args("live"))
        .await
        .unwrap();
    assert_eq!(
        (status.code.as_str(), status.level),
        (code::CONNECT_REJECTED, Level::Error)
    );
    assert!(status.description.contains("key1"));
    assert!(
        refused.wait_closed(WAIT).await,
        "the server closes a rejected connection"
    );
    insta::assert_yaml_snapshot!("rejected_transcript", transcript(refused.statuses()));
    server.shutdown().await;
}

#[tokio::test]
async fn receive_video_false_and_pause_filter_what_a_player_gets() {
    let server = embedded(|_| {}).await.unwrap();
    let mut publisher = flash_connected(&server, "flashStreamingApp", seed_args("flashStreamingApp")).await;
    let ps = publisher.create_stream().await.unwrap();
    publisher.publish(ps, "filtered").await.unwrap();
    let tags = flash_recording();
    publisher.send_tags(ps, &first_ms(&tags, 1000), false).await.unwrap();

    let mut player = flash_connected(&server, "flashStreamingApp", seed_args("flashStreamingApp")).await;
    let s = player.create_stream().await.unwrap();
    player.play(s, "filtered").await.unwrap();
    player
        .send_command(s, "receiveVideo", 0.0, vec![Value::Boolean(false)])
        .await
        .unwrap();
    let _ = player.collect_media(1000, Duration::from_millis(300)).await; // drain the initial GOP
    let later: Vec<Tag> = tags
        .iter()
        .filter(|t| t.timestamp > 1000 && t.timestamp <= 4000)
        .cloned()
        .collect();
    publisher.send_tags(ps, &later, false).await.unwrap();
    let media = player.collect_media(100, Duration::from_secs(2)).await;
    assert!(!media.is_empty());
    assert!(
        media.iter().all(|m| matches!(m, Incoming::Media { type_id: 8, .. })),
        "only audio after receiveVideo(false)"
    );

    player
        .send_command(s, "pause", 0.0, vec![Value::Boolean(true), Value::Number(0.0)])
        .await
        .unwrap();
    player.wait_status(s, code::PAUSE_NOTIFY, WAIT).await.unwrap();
    let _ = player.collect_media(1000, Duration::from_millis(300)).await;
    let more: Vec<Tag> = tags
        .iter()
        .filter(|t| t.timestamp > 4000 && t.timestamp <= 5000)
        .cloned()
        .collect();
    publisher.send_tags(ps, &more, false).await.unwrap();
    assert!(
        player.collect_media(1, Duration::from_millis(500)).await.is_empty(),
        "nothing while paused"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn acknowledgements_carry_the_running_byte_total() {
    let server = embedded(|_| {}).await.unwrap();
    let mut client = encoder_connected(&server, "live").await;
    client
        .send_message(2, 0, &media::rtmp::Message::WindowAckSize(10_000))
        .await
        .unwrap();
    let s = client.create_stream().await.unwrap();
    client.publish(s, "acked").await.unwrap();
    client
        .send_tags(s, &first_ms(&flash_recording(), 4000), false)
        .await
        .unwrap();
    let mut acks = vec![];
    while let Ok(item) = client.next(Duration::from_millis(500)).await {
        if let Incoming::Control(media::rtmp::Message::Acknowledgement(n)) = item {
            acks.push(n);
        }
    }
    assert!(acks.len() >= 5, "acks: {acks:?}");
    assert!(
        acks.windows(2).all(|w| w[1] >= w[0] + 10_000),
        "each ack is the running total: {acks:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_shutdown_asks_enhanced_rtmp_clients_that_can_reconnect_to_do_so() {
    logs();
    let server = embedded(|c| c.rtmp.reconnect_tc_url = Some("rtmp://other.example/live".into()))
        .await
        .unwrap();
    let mut enhanced = reconnecting_encoder(&server).await;
    let mut legacy = encoder_connected(&server, "live").await;

    server.shutdown().await;
    let asked = enhanced
        .wait_status(0, code::CONNECT_RECONNECT_REQUEST, WAIT)
        .await
        .unwrap();
    assert_eq!(asked.level, Level::Status);
    assert_eq!(asked.tc_url.as_deref(), Some("rtmp://other.example/live"));
    assert!(
        legacy
            .wait_status(0, code::CONNECT_RECONNECT_REQUEST, Duration::from_millis(500))
            .await
            .is_err(),
        "a legacy client is only closed"
    );
}

/// An encoder whose connect announces Enhanced RTMP with capsEx Reconnect.
async fn reconnecting_encoder(server: &ServerHandle) -> RtmpClient {
    let mut caps = media::rtmp::enhanced::Capabilities::default();
    caps.list.push("avc1".into());
    caps.caps_ex = media::rtmp::enhanced::caps_ex::RECONNECT;
    let profile = ClientProfile {
        enhanced: Some(caps),
        ..ClientProfile::encoder()
    };
    let mut client = RtmpClient::open(server.rtmp_addr(), profile).await.unwrap();
    let status = client
        .connect(&format!("rtmp://{}/live", server.rtmp_addr()), vec![])
        .await
        .unwrap();
    assert_eq!(status.code, code::CONNECT_SUCCESS, "{:?}", client.wire_log());
    client
}

async fn healthz(server: &ServerHandle) -> (u16, String) {
    let response = reqwest::get(format!("http://{}/healthz", server.http_addr()))
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn a_drain_asks_enhanced_rtmp_clients_to_reconnect_and_fails_the_health_check() {
    logs();
    let elsewhere = "rtmp://standby.example/live";
    let server = embedded(|c| c.rtmp.reconnect_tc_url = Some(elsewhere.into()))
        .await
        .unwrap();
    let mut enhanced = reconnecting_encoder(&server).await;
    let mut legacy = encoder_connected(&server, "live").await;
    assert_eq!(healthz(&server).await, (200, "ok\n".into()));

    server.drain();
    let request = enhanced
        .wait_status(0, code::CONNECT_RECONNECT_REQUEST, WAIT)
        .await
        .unwrap();
    assert_eq!(
        (request.level, request.tc_url.as_deref()),
        (Level::Status, Some(elsewhere))
    );
    assert_eq!(healthz(&server).await, (503, "draining\n".into()));
    // A legacy client is not asked (it could not understand), and both are still served.
    assert!(legacy
        .wait_status(0, code::CONNECT_RECONNECT_REQUEST, Duration::from_millis(300))
        .await
        .is_err());
    for client in [&mut enhanced, &mut legacy] {
        let id = client.create_stream().await.unwrap();
        assert!(id > 0);
    }
    // A client that connects during the drain is asked as soon as it is connected.
    let mut late = reconnecting_encoder(&server).await;
    let request = late
        .wait_status(0, code::CONNECT_RECONNECT_REQUEST, WAIT)
        .await
        .unwrap();
    assert_eq!(request.tc_url.as_deref(), Some(elsewhere));
}

/// `rtmp.player_write_interval`: a player's frames come in one write per
/// interval (bursts half a second apart here), and none is lost.
#[tokio::test]
async fn a_player_write_interval_gathers_frames_into_bursts() {
    let server = embedded(|c| c.rtmp.player_write_interval = Duration::from_millis(500))
        .await
        .unwrap();
    let mut publisher = flash_connected(&server, "flashStreamingApp", seed_args("flashStreamingApp")).await;
    let ps = publisher.create_stream().await.unwrap();
    publisher.publish(ps, "gathered").await.unwrap();
    let tags = flash_recording();
    publisher.send_tags(ps, &first_ms(&tags, 500), false).await.unwrap();
    let mut player = flash_connected(&server, "flashStreamingApp", seed_args("flashStreamingApp")).await;
    let s = player.create_stream().await.unwrap();
    player.play(s, "gathered").await.unwrap();
    let _ = player.collect_media(1000, Duration::from_millis(700)).await; // the cached GOP
    let later: Vec<Tag> = tags
        .iter()
        .filter(|t| t.timestamp > 500 && t.timestamp <= 3000 && t.kind != flv::TagKind::Script)
        .cloned()
        .collect();
    let sent = later.len();
    let sending = tokio::spawn(async move {
        publisher.send_tags(ps, &later, true).await.unwrap();
        publisher
    });
    let started = tokio::time::Instant::now();
    let (mut received, mut bursts, mut last, mut longest_gap) = (0, 0, None, Duration::ZERO);
    while started.elapsed() < Duration::from_secs(4) && received < sent {
        let batch = player.collect_media(10_000, Duration::from_millis(20)).await;
        if batch.is_empty() {
            continue;
        }
        let now = tokio::time::Instant::now();
        if let Some(last) = last.filter(|l: &tokio::time::Instant| now.duration_since(*l) > Duration::from_millis(100))
        {
            longest_gap = longest_gap.max(now.duration_since(last));
            bursts += 1;
        }
        last = Some(now);
        received += batch.len();
    }
    let _publisher = sending.await.unwrap();
    assert_eq!(received, sent, "every frame sent in 2.5 s arrived");
    assert!(
        longest_gap >= Duration::from_millis(350),
        "bursts apart: {longest_gap:?}"
    );
    assert!(
        (3..=7).contains(&bursts),
        "about one write per 500 ms over 2.5 s: {bursts} bursts"
    );
    server.shutdown().await;
}

/// The audio and video messages among `incoming`, as (type id, timestamp, body).
fn media_of(incoming: &[Incoming]) -> Vec<(u8, u32, Bytes)> {
    incoming
        .iter()
        .filter_map(|m| match m {
            Incoming::Media {
                type_id,
                timestamp,
                payload,
                ..
            } => Some((*type_id, *timestamp, payload.clone())),
            _ => None,
        })
        .collect()
}

/// The audio and video tags among `tags`, as [`media_of`] gives them.
fn media_tags(tags: &[Tag]) -> Vec<(u8, u32, Bytes)> {
    tags.iter()
        .filter(|t| t.kind != flv::TagKind::Script)
        .map(|t| (t.kind.type_id(), t.timestamp, t.data.clone()))
        .collect()
}

/// A player whose frames all go out as they come is written by its
/// stream's fan-out, from the publisher's task (ARCHITECTURE.md): it gets
/// every frame, in order, byte for byte; pause, unpause, unpublish and
/// republish take it back to its connection, and it is told and served as
/// before.
#[tokio::test]
async fn a_player_written_by_the_fan_out_gets_every_frame_and_every_change() {
    let server = embedded(|_| {}).await.unwrap();
    let metrics = server.metrics();
    let mut publisher = flash_connected(&server, "flashStreamingApp", seed_args("flashStreamingApp")).await;
    let ps = publisher.create_stream().await.unwrap();
    publisher.publish(ps, "fanned").await.unwrap();
    let tags = flash_recording();
    let range = |from: u32, to: u32| -> Vec<Tag> {
        tags.iter()
            .filter(|t| t.timestamp > from && t.timestamp <= to)
            .cloned()
            .collect()
    };
    publisher.send_tags(ps, &first_ms(&tags, 1000), false).await.unwrap();
    let mut player = flash_connected(&server, "flashStreamingApp", seed_args("flashStreamingApp")).await;
    let s = player.create_stream().await.unwrap();
    player.play(s, "fanned").await.unwrap();
    let _ = player.collect_media(1000, Duration::from_millis(300)).await; // the cached GOP
    assert_eq!(metrics.rtmp_fanout_handed.get(), 0, "no live frame yet");

    let live = range(1000, 3000);
    publisher.send_tags(ps, &live, true).await.unwrap();
    let got = player.collect_media(10_000, Duration::from_millis(500)).await;
    assert_eq!(media_of(&got), media_tags(&live), "every live frame, in order");
    assert_eq!(metrics.rtmp_fanout_handed.get(), 1, "the play went to the fan-out once");
    let frames_out = metrics.frames_out.get();

    // Paused: taken back, told, and sent nothing.
    player
        .send_command(s, "pause", 0.0, vec![Value::Boolean(true), Value::Number(3000.0)])
        .await
        .unwrap();
    player.wait_status(s, code::PAUSE_NOTIFY, WAIT).await.unwrap();
    assert_eq!(metrics.rtmp_fanout_given_back.get(), 1, "the pause took the play back");
    publisher.send_tags(ps, &range(3000, 4000), false).await.unwrap();
    assert!(
        media_of(&player.collect_media(1000, Duration::from_millis(500)).await).is_empty(),
        "nothing while paused"
    );
    // Unpaused: pictures again from a keyframe, then to the fan-out again.
    player
        .send_command(s, "pause", 0.0, vec![Value::Boolean(false), Value::Number(4000.0)])
        .await
        .unwrap();
    player.wait_status(s, code::UNPAUSE_NOTIFY, WAIT).await.unwrap();
    let after = range(4000, 12_000);
    publisher.send_tags(ps, &after, true).await.unwrap();
    let got = media_of(&player.collect_media(10_000, Duration::from_millis(500)).await);
    let first_picture = got
        .iter()
        .find(|(type_id, ..)| *type_id == 9)
        .expect("pictures after unpause");
    assert_eq!(first_picture.2[0] >> 4, 1, "pictures resume at a keyframe");
    // Sound passes at once; from the keyframe on, every frame in order.
    let expected = media_tags(&after);
    let at = got.iter().position(|m| m == first_picture).unwrap();
    let resumed = expected
        .iter()
        .position(|m| m == first_picture)
        .expect("a frame of the recording");
    assert_eq!(
        got[at..],
        expected[resumed..],
        "every frame from the keyframe on, in order"
    );
    assert!(metrics.frames_out.get() > frames_out);
    assert_eq!(metrics.rtmp_fanout_handed.get(), 2, "driven again after unpausing");

    // Unpublished and republished: told both, then served again.
    publisher.unpublish(ps, "fanned").await.unwrap();
    player.wait_status(s, code::PLAY_UNPUBLISH_NOTIFY, WAIT).await.unwrap();
    assert_eq!(metrics.rtmp_fanout_given_back.get(), 2);
    let ps = publisher.create_stream().await.unwrap();
    publisher.publish(ps, "fanned").await.unwrap();
    player.wait_status(s, code::PLAY_PUBLISH_NOTIFY, WAIT).await.unwrap();
    let again = first_ms(&tags, 3000);
    publisher.send_tags(ps, &again, true).await.unwrap();
    let got = media_of(&player.collect_media(10_000, Duration::from_millis(500)).await);
    assert_eq!(got, media_tags(&again), "the new publisher's frames, every one");
    server.shutdown().await;
}

/// A player that stops reading while it is written by the fan-out is given
/// back to its connection when its socket is full, which catches it up on
/// its own (at the next keyframe if it fell a ring behind); the others are
/// served meanwhile, and its stream stays well-formed.
#[tokio::test]
async fn a_player_that_stops_reading_leaves_the_fan_out_and_the_others_are_served() {
    let server = embedded(|_| {}).await.unwrap();
    let metrics = server.metrics();
    let mut publisher = flash_connected(&server, "flashStreamingApp", seed_args("flashStreamingApp")).await;
    let ps = publisher.create_stream().await.unwrap();
    publisher.publish(ps, "stalled").await.unwrap();
    let tags = flash_recording();
    publisher.send_tags(ps, &first_ms(&tags, 1000), false).await.unwrap();
    // The slow player reads through a small receive buffer.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(server.rtmp_addr()).await.unwrap();
    let mut slow = RtmpClient::over(stream, ClientProfile::flash_player()).await.unwrap();
    slow.connect(
        &format!("rtmp://{}/flashStreamingApp", server.rtmp_addr()),
        seed_args("flashStreamingApp"),
    )
    .await
    .unwrap();
    let mut quick = flash_connected(&server, "flashStreamingApp", seed_args("flashStreamingApp")).await;
    let (ss, qs) = (
        slow.create_stream().await.unwrap(),
        quick.create_stream().await.unwrap(),
    );
    slow.play(ss, "stalled").await.unwrap();
    quick.play(qs, "stalled").await.unwrap();
    let _ = slow.collect_media(1000, Duration::from_millis(300)).await;
    let _ = quick.collect_media(1000, Duration::from_millis(300)).await;
    let warm = tags
        .iter()
        .filter(|t| t.timestamp > 1000 && t.timestamp <= 2000)
        .cloned()
        .collect::<Vec<_>>();
    publisher.send_tags(ps, &warm, true).await.unwrap();
    let _ = slow.collect_media(10_000, Duration::from_millis(300)).await;
    let _ = quick.collect_media(10_000, Duration::from_millis(300)).await;
    assert_eq!(metrics.rtmp_fanout_handed.get(), 2, "both players went to the fan-out");

    // The slow one stops reading; the rest of the recording goes out at
    // once, three times over (more than socket buffers hold).
    let length = tags.last().unwrap().timestamp + 40;
    let rest: Vec<Tag> = (0..3)
        .flat_map(|round| {
            tags.iter()
                .filter(move |t| round > 0 || t.timestamp > 2000)
                .filter(|t| t.kind != flv::TagKind::Script)
                .map(move |t| Tag {
                    timestamp: t.timestamp + round * length,
                    ..t.clone()
                })
        })
        .collect();
    let count = media_tags(&rest).len();
    let quick = tokio::spawn(async move { quick.collect_media(count, Duration::from_secs(10)).await });
    publisher.send_tags(ps, &rest, false).await.unwrap();
    let got = media_of(&quick.await.unwrap());
    assert_eq!(got, media_tags(&rest), "the quick player got every frame, in order");
    assert!(
        metrics.rtmp_fanout_given_back.get() >= 1,
        "the slow player was given back"
    );

    // The slow one reads again: a well-formed stream, in order, ending with
    // the recording's last frame.
    let got = media_of(&slow.collect_media(100_000, Duration::from_millis(3000)).await);
    let pictures: Vec<u32> = got.iter().filter(|m| m.0 == 9).map(|m| m.1).collect();
    assert!(pictures.windows(2).all(|w| w[0] <= w[1]), "pictures in order");
    let last = got.last().map(|m| (m.0, m.1));
    let sent = media_tags(&rest).last().map(|m| (m.0, m.1));
    assert_eq!(last, sent, "caught up to the last frame ({} frames read)", got.len());
    server.shutdown().await;
}
