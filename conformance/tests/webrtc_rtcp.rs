//! RTCP between the reference server and a WebRTC player, over real UDP:
//! lost video packets come back when the player NACKs them (and do not
//! when the server is told to keep none), and sender
//! reports put audio and video on one clock.
//!
//! The stream is made here, so that its timestamps are known exactly: an
//! RTMP encoder publishes openh264 pictures (25 fps, an IDR every 2 s) and an
//! Opus tone in enhanced-RTMP tags (which WebRTC players get untranscoded).

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use conformance::client::{ClientProfile, RtmpClient};
use conformance::target::embedded;
use conformance::webrtc::source::{H264Source, ToneSource};
use conformance::webrtc::{Loss, PlayerOptions, PlayerReport, Signalling, UdpRelay, WebRtcPlayer};
use media::flv::{Tag, TagKind};
use media::h264::{annexb_nal_units, nal_unit_type, AvcConfig};
use reference_server::ServerHandle;

const APP: &str = "live";
const WAIT: Duration = Duration::from_secs(20);
const FPS: u32 = 25;

/// `seconds` of a synthetic stream: the AVC sequence header, then pictures
/// every 40 ms from 0 and 20 ms Opus packets from `audio_offset_ms`, in
/// timestamp order.
fn synthetic_stream(seconds: u32, audio_offset_ms: u32, bitrate: u32) -> Vec<Tag> {
    let mut video = H264Source::new(320, 240, FPS, 2 * FPS, bitrate).unwrap();
    let mut tone = ToneSource::new(440.0, 0.5).unwrap();
    let mut tags = Vec::new();
    for _ in 0..seconds * FPS {
        let frame = video.next_frame().unwrap();
        let timestamp = (frame.index * 1000 / u64::from(FPS)) as u32;
        let units: Vec<&[u8]> = annexb_nal_units(&frame.data).collect();
        if frame.index == 0 {
            let sps = units.iter().find(|u| nal_unit_type(u) == 7).unwrap();
            let pps = units.iter().find(|u| nal_unit_type(u) == 8).unwrap();
            let config = AvcConfig::from_parameter_sets(sps, pps).unwrap();
            tags.push(tag(TagKind::Video, 0, config.to_sequence_header().to_vec()));
        }
        let mut body = vec![if frame.keyframe { 0x17 } else { 0x27 }, 1, 0, 0, 0];
        media::h264::to_avcc(
            units.into_iter().filter(|u| !matches!(nal_unit_type(u), 7 | 8)),
            &mut body,
        );
        tags.push(tag(TagKind::Video, timestamp, body));
    }
    for index in 0..seconds * 50 {
        let packet = tone.next_frame().unwrap();
        let timestamp = audio_offset_ms + index * 20;
        tags.push(tag(
            TagKind::Audio,
            timestamp,
            media::flv::opus_audio_body(&packet.data),
        ));
    }
    // Stable: the sequence header stays ahead of the picture of the same time.
    tags.sort_by_key(|t| t.timestamp);
    tags
}

fn tag(kind: TagKind, timestamp: u32, data: Vec<u8>) -> Tag {
    Tag {
        kind,
        timestamp,
        data: Bytes::from(data),
    }
}

/// Connects an encoder and publishes `name`; returns it and its stream id.
async fn encoder(server: &ServerHandle, name: &str) -> (RtmpClient, u32) {
    let mut client = RtmpClient::open(server.rtmp_addr(), ClientProfile::encoder())
        .await
        .unwrap();
    client.connect(&server.rtmp_url(APP), Vec::new()).await.unwrap();
    let stream = client.create_stream().await.unwrap();
    client.publish(stream, name).await.unwrap();
    (client, stream)
}

async fn until(player: &WebRtcPlayer, what: &str, done: impl Fn(&PlayerReport) -> bool) -> PlayerReport {
    match player.wait_until(what, done, WAIT).await {
        Ok(report) => report,
        Err(error) => panic!("{what}: {error}\nlast report: {:#?}", player.report()),
    }
}

/// A player of `stream` whose datagrams go through `relay`, and the
/// payload type its answer gave H.264.
async fn play_via(server: &ServerHandle, stream: &str, relay: &UdpRelay, options: PlayerOptions) -> (WebRtcPlayer, u8) {
    let options = PlayerOptions {
        via: Some(relay.addr()),
        ..options
    };
    let player = WebRtcPlayer::play(Signalling::http(&server.http_url(), APP, stream), options)
        .await
        .unwrap();
    let h264 = player
        .answer()
        .video()
        .and_then(|v| v.codecs_named("H264").next())
        .map(|c| c.pt)
        .expect("H.264 answered");
    (player, h264)
}

/// A connected player of `stream` behind a relay that loses every tenth
/// H.264 packet (never a retransmission), and the relay.
async fn play_losing_every_tenth_picture_packet(
    server: &ServerHandle,
    stream: &str,
    options: PlayerOptions,
) -> (WebRtcPlayer, UdpRelay) {
    let relay = UdpRelay::start(server.webrtc_addr(), Loss::NONE).await.unwrap();
    let (player, h264) = play_via(server, stream, &relay, options).await;
    relay.set_loss(Loss {
        every: 10,
        payload_type: Some(h264),
        all_of: None,
    });
    player.wait_connected(WAIT).await.unwrap();
    (player, relay)
}

/// Publishes the first tags (up to and including `upto` ms), waits until the
/// server has the stream, and sends the rest in real time from a task once
/// told to, with audio sent `audio_lead_ms` ahead of the video of the same
/// time (encoders interleave unevenly; the timestamps are what count).
async fn publish_from(
    server: &ServerHandle,
    name: &str,
    tags: Vec<Tag>,
    upto: u32,
    audio_lead_ms: u32,
) -> (tokio::task::JoinHandle<RtmpClient>, tokio::sync::oneshot::Sender<()>) {
    let (mut client, stream) = encoder(server, name).await;
    let (head, tail): (Vec<Tag>, Vec<Tag>) = tags.into_iter().partition(|t| t.timestamp <= upto);
    client.send_tags(stream, &head, false).await.unwrap();
    let mut live = false;
    for _ in 0..200 {
        live = server
            .hub()
            .describe(APP, name)
            .is_some_and(|d| d.has_audio && d.video_config.is_some());
        if live {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(live, "{name} never went live with audio and video");
    let (go, start) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let _ = start.await;
        let due = |t: &Tag| match t.kind {
            TagKind::Audio => t.timestamp.saturating_sub(audio_lead_ms),
            _ => t.timestamp,
        };
        let mut tail = tail;
        tail.sort_by_key(due);
        let first = tail.first().map_or(0, due);
        let started = tokio::time::Instant::now();
        for tag in &tail {
            tokio::time::sleep_until(started + Duration::from_millis(u64::from(due(tag) - first))).await;
            let sent = client
                .send_media(stream, tag.kind.type_id(), tag.timestamp, tag.data.clone())
                .await;
            if sent.is_err() {
                break;
            }
        }
        client
    });
    (task, go)
}

#[tokio::test]
async fn sender_reports_put_audio_and_video_on_one_clock() {
    // Audio starts 13 ms after the first picture, in RTMP time.
    const AUDIO_OFFSET_MS: u32 = 13;
    let server = embedded(|_| {}).await.unwrap();
    // Long enough for str0m's audio sender reports, which come every 5 s.
    let tags = synthetic_stream(12, AUDIO_OFFSET_MS, 300_000);
    // Audio goes out 300 ms before the video of the same time: a server that
    // stamped RTP by arrival would put it 300 ms early.
    let (publishing, go) = publish_from(&server, "sync", tags, AUDIO_OFFSET_MS, 300).await;

    // The player joins with the first picture (an IDR at 0) and the first
    // audio packet (at 13) in the cache, so both are the first it gets.
    let player = WebRtcPlayer::play(
        Signalling::http(&server.http_url(), APP, "sync"),
        PlayerOptions {
            audio_codecs: vec![conformance::webrtc::AudioCodec::Opus],
            ..PlayerOptions::default()
        },
    )
    .await
    .unwrap();
    player.wait_connected(WAIT).await.unwrap();
    go.send(()).unwrap();
    let report = until(&player, "sender reports for both tracks", |r| {
        r.video.first_frame_sampled_at.is_some() && r.audio.first_frame_sampled_at.is_some()
    })
    .await;
    assert_eq!(report.video.first_frame_was_idr, Some(true), "{report:#?}");
    let video: SystemTime = report.video.first_frame_sampled_at.unwrap();
    let audio: SystemTime = report.audio.first_frame_sampled_at.unwrap();
    let offset_ms = match audio.duration_since(video) {
        Ok(after) => after.as_secs_f64() * 1000.0,
        Err(before) => -before.duration().as_secs_f64() * 1000.0,
    };
    assert!(
        (offset_ms - f64::from(AUDIO_OFFSET_MS)).abs() <= 2.0,
        "the sender reports place the first audio {offset_ms:.1} ms after the first picture; \
         the publisher sent it {AUDIO_OFFSET_MS} ms after"
    );
    println!("first audio {offset_ms:.2} ms after the first picture on the sender's clock");
    publishing.abort();
    server.shutdown().await;
}

#[tokio::test]
async fn no_srtcp_index_is_used_twice_on_an_ssrc() {
    // The player connects 3 s before the first frame: time for sender
    // reports of streams that have sent nothing yet (str0m sends them from
    // its first timeout), then the server's own reports once media flows.
    let server = embedded(|_| {}).await.unwrap();
    let tags = synthetic_stream(4, 0, 300_000);
    let (publishing, go) = publish_from(&server, "nonces", tags, 0, 0).await;
    let relay = UdpRelay::start(server.webrtc_addr(), Loss::NONE).await.unwrap();
    let (player, _) = play_via(&server, "nonces", &relay, PlayerOptions::default()).await;
    player.wait_connected(WAIT).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    go.send(()).unwrap();
    until(&player, "3 s of pictures and sound", |r| {
        r.video.pictures >= 75 && r.audio.frames >= 150
    })
    .await;
    let srtcp = relay.srtcp_from_server();
    let ssrcs: std::collections::BTreeSet<u32> = srtcp.iter().map(|(ssrc, _)| *ssrc).collect();
    assert!(
        srtcp.len() >= 4 && ssrcs.len() >= 2,
        "sender reports for both tracks: {srtcp:x?}"
    );
    let mut seen = std::collections::HashSet::new();
    for packet in &srtcp {
        assert!(
            seen.insert(*packet),
            "SSRC {:x} sent SRTCP index {:x} twice: {srtcp:x?}",
            packet.0,
            packet.1
        );
    }
    println!(
        "{} SRTCP packets from the server, on {} SSRCs, no index twice",
        srtcp.len(),
        ssrcs.len()
    );
    publishing.abort();
    server.shutdown().await;
}

#[tokio::test]
async fn lost_video_packets_are_retransmitted_on_nack() {
    let server = embedded(|_| {}).await.unwrap();
    // 600 kbit/s: most pictures take several packets.
    let tags = synthetic_stream(10, 0, 600_000);
    let (publishing, go) = publish_from(&server, "lossy", tags, 0, 0).await;

    // Two players behind relays that lose every 10th video packet (str0m, the
    // server's RTP stack, stops retransmitting beyond 15 % loss). The second
    // relay also loses every retransmission, to show the loss is seen at all.
    let repaired = UdpRelay::start(server.webrtc_addr(), Loss::NONE).await.unwrap();
    let unrepaired = UdpRelay::start(server.webrtc_addr(), Loss::NONE).await.unwrap();
    let mut players = Vec::new();
    for relay in [&repaired, &unrepaired] {
        let (player, h264) = play_via(&server, "lossy", relay, PlayerOptions::video_only()).await;
        let rtx = player
            .answer()
            .video()
            .and_then(|v| v.codecs.iter().find(|c| c.is_repair()))
            .map(|c| c.pt)
            .expect("the answer offers retransmissions (RTX)");
        // The mid goes in every packet (BUNDLE); nothing feeds a bandwidth
        // estimator the server does not run.
        let sdp = player.answer_sdp();
        assert!(
            sdp.contains("urn:ietf:params:rtp-hdrext:sdes:mid") && !sdp.contains("transport-wide-cc"),
            "{sdp}"
        );
        players.push((player, h264, rtx));
    }
    repaired.set_loss(Loss {
        every: 10,
        payload_type: Some(players[0].1),
        all_of: None,
    });
    unrepaired.set_loss(Loss {
        every: 10,
        payload_type: Some(players[1].1),
        all_of: Some(players[1].2),
    });
    for (player, _, _) in &players {
        player.wait_connected(WAIT).await.unwrap();
    }
    go.send(()).unwrap();
    let [(good, _, _), (bad, _, _)] = <[_; 2]>::try_from(players).unwrap();
    let report = until(&good, "200 pictures through the lossy relay", |r| {
        r.video.pictures >= 200
    })
    .await;
    assert!(repaired.lost() >= 25, "the relay lost only {} packets", repaired.lost());
    assert_eq!(
        report.video.discontinuities, 0,
        "every lost packet should have been retransmitted in time: {report:#?}"
    );
    assert_eq!(report.video.decode_errors, 0, "{report:#?}");

    let report = until(&bad, "200 frames without retransmissions", |r| r.video.frames >= 200).await;
    assert!(unrepaired.lost() >= 25);
    assert!(
        report.video.discontinuities > 0,
        "losing packets for good must show as gaps: {report:#?}"
    );
    println!(
        "relays lost {} and {} packets; with retransmissions: 0 gaps; without: {} gaps",
        repaired.lost(),
        unrepaired.lost(),
        report.video.discontinuities
    );
    publishing.abort();
    server.shutdown().await;
}

#[tokio::test]
async fn a_resend_window_of_zero_answers_no_nack() {
    // `webrtc.resend_window` reaches each player's video stream: without a
    // window, the losses repaired in the test above stay gaps.
    let server = embedded(|config| config.webrtc.resend_window = Duration::ZERO)
        .await
        .unwrap();
    let tags = synthetic_stream(10, 0, 600_000);
    let (publishing, go) = publish_from(&server, "unkept", tags, 0, 0).await;
    let (player, relay) = play_losing_every_tenth_picture_packet(&server, "unkept", PlayerOptions::video_only()).await;
    go.send(()).unwrap();
    let report = until(&player, "200 frames", |r| r.video.frames >= 200).await;
    assert!(relay.lost() >= 25, "the relay lost only {} packets", relay.lost());
    assert!(
        report.video.discontinuities > 0,
        "nothing kept, nothing resent: the losses must show as gaps: {report:#?}"
    );
    println!(
        "window 0: the relay lost {}, the player saw {} gaps",
        relay.lost(),
        report.video.discontinuities
    );
    publishing.abort();
    server.shutdown().await;
}

#[tokio::test]
async fn a_light_player_counts_the_packets_a_lossy_relay_dropped_without_decrypting() {
    let server = embedded(|_| {}).await.unwrap();
    let tags = synthetic_stream(8, 0, 600_000);
    let (publishing, go) = publish_from(&server, "counted", tags, 0, 0).await;
    let options = PlayerOptions {
        decode: false,
        ..PlayerOptions::default()
    };
    let (player, relay) = play_losing_every_tenth_picture_packet(&server, "counted", options).await;
    go.send(()).unwrap();
    let report = until(&player, "300 packets counted", |r| r.counted.packets >= 300).await;
    let dropped = relay.lost();
    // Audio and video; nothing decrypted, so nothing decoded and no NACK
    // repaired a loss: the gaps are exactly what the relay dropped (but the
    // last few, which no later packet has shown yet).
    assert_eq!(report.counted.streams, 2, "{report:#?}");
    assert_eq!((report.video.pictures, report.audio.decoded_frames), (0, 0));
    assert!(dropped >= 10, "the relay dropped only {dropped}");
    assert!(
        report.counted.lost <= dropped && report.counted.lost + 2 >= dropped,
        "counted {} lost, the relay dropped {dropped}",
        report.counted.lost
    );
    assert!(report.peer.connected && report.counted.bytes > 300 * 12);
    publishing.abort();
    server.shutdown().await;
}
