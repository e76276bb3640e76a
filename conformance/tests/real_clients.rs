//! The reference server against bytes and programs from real clients: Flash
//! Player handshakes and connects, a whole OBS publish session replayed from a
//! capture, and Debian's ffmpeg publishing and playing.

#[path = "support/tools.rs"]
mod tools;

use std::time::Duration;

use bytes::Bytes;
use conformance::capture::rtmp_flows;
use conformance::client::{ClientProfile, RtmpClient};
use conformance::handshake::{client_handshake, verify_client_c1, verify_server_s1, verify_server_s2, ClientHandshake};
use conformance::target::embedded;
use media::amf::Value;
use media::netstatus::{code, NetStatus};
use media::rtmp::{ChunkDecoder, ChunkLimits, Message};
use reference_server::ServerHandle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;

fn fixture(path: &str) -> Vec<u8> {
    let full = format!("{}/../fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&full).unwrap_or_else(|e| panic!("fixture {full}: {e}"))
}

/// Reads the server's messages until `done` says so, or fails after `within`.
async fn read_until(
    socket: &mut TcpStream,
    decoder: &mut ChunkDecoder,
    within: Duration,
    mut done: impl FnMut(&[(u32, Message)]) -> bool,
) -> Vec<(u32, Message)> {
    let deadline = tokio::time::Instant::now() + within;
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 65536];
    while !done(&seen) {
        let n = match tokio::time::timeout_at(deadline, socket.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            other => panic!("server stopped answering ({other:?}); it sent: {:#?}", describe(&seen)),
        };
        decoder.push(&buf[..n]);
        while let Some(raw) = decoder.next_message().expect("server sends valid chunks") {
            let message = Message::decode(raw.type_id, raw.payload).expect("server sends valid messages");
            seen.push((raw.stream_id, message));
        }
    }
    seen
}

fn describe(seen: &[(u32, Message)]) -> Vec<String> {
    seen.iter()
        .map(|(stream, m)| match m {
            Message::Command(c) => {
                let code = c
                    .args
                    .iter()
                    .find_map(NetStatus::from_value)
                    .map(|s| s.code)
                    .unwrap_or_default();
                format!("[{stream}] {}({}) {code}", c.name, c.transaction_id)
            }
            other => format!("[{stream}] {other:?}"),
        })
        .collect()
}

fn has_status(seen: &[(u32, Message)], wanted: &str) -> bool {
    describe(seen).iter().any(|line| line.ends_with(wanted))
}

/// Performs a fresh client handshake on a raw socket and returns the bytes read past S2.
async fn raw_session(server: &ServerHandle, kind: ClientHandshake) -> (TcpStream, ChunkDecoder) {
    let mut socket = TcpStream::connect(server.rtmp_addr()).await.unwrap();
    let (_, leftover) = client_handshake(&mut socket, kind).await.unwrap();
    let mut decoder = ChunkDecoder::new(ChunkLimits::default());
    decoder.push(&leftover);
    (socket, decoder)
}

#[tokio::test]
async fn server_answers_real_flash_player_c1s_with_valid_digests() {
    let server = embedded(|_| {}).await.unwrap();
    for vector in [
        "flash-player/srs_fp_C0C1_verifyFPC0C1.bin",
        "flash-player/srs_fp_complexhs_C0C1.bin",
        "flash-player/red5_handshake_chromeFlashPlayerC1.C1.bin",
        "flash-player/red5_handshake_firefoxFlashPlayerC1.C1.bin",
    ] {
        let mut c0c1 = fixture(vector);
        if c0c1.len() == 1536 {
            c0c1.insert(0, 3); // the Red5 vectors are C1 only
        }
        let c1: [u8; 1536] = c0c1[1..].try_into().unwrap();
        let (_, c1_digest) = verify_client_c1(&c1).unwrap_or_else(|| panic!("{vector} is a digest C1"));
        let mut socket = TcpStream::connect(server.rtmp_addr()).await.unwrap();
        socket.write_all(&c0c1).await.unwrap();
        let mut answer = vec![0u8; 3073];
        tokio::time::timeout(Duration::from_secs(5), socket.read_exact(&mut answer))
            .await
            .unwrap_or_else(|_| panic!("{vector}: no S0S1S2 within 5 s"))
            .unwrap();
        assert_eq!(answer[0], 3, "{vector}: S0 is version 3");
        let s1: [u8; 1536] = answer[1..1537].try_into().unwrap();
        let s2: [u8; 1536] = answer[1537..].try_into().unwrap();
        assert!(
            verify_server_s1(&s1).is_some(),
            "{vector}: S1 digest must verify with the FMS key"
        );
        assert!(
            verify_server_s2(&s2, &c1_digest),
            "{vector}: S2 must be signed with the client's C1 digest"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn real_flash_player_12_amf3_connect_in_128_byte_chunks_succeeds() {
    let server = embedded(|_| {}).await.unwrap();
    let (mut socket, mut decoder) = raw_session(
        &server,
        ClientHandshake::FlashDigest(conformance::handshake::DigestScheme::Scheme1),
    )
    .await;
    socket
        .write_all(&fixture(
            "flash-player/srs_fp_win12.0.0.41_connect_chunked128.client.bin",
        ))
        .await
        .unwrap();
    let seen = read_until(&mut socket, &mut decoder, Duration::from_secs(5), |s| {
        has_status(s, code::CONNECT_SUCCESS)
    })
    .await;
    let result = seen.iter().find_map(|(_, m)| match m {
        Message::Command(c) if c.name == "_result" => Some(c.clone()),
        _ => None,
    });
    let result = result.expect("a _result");
    assert_eq!(
        result.args[0].get("objectEncoding").and_then(Value::as_f64),
        Some(3.0),
        "answered with the client's objectEncoding"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn real_flash_player_21_c2_and_connect_bytes_succeed() {
    let server = embedded(|_| {}).await.unwrap();
    let mut socket = TcpStream::connect(server.rtmp_addr()).await.unwrap();
    let mut c0c1 = fixture("flash-player/red5_handshake_chromeFlashPlayerC1.C1.bin");
    c0c1.insert(0, 3);
    socket.write_all(&c0c1).await.unwrap();
    let mut s0s1s2 = vec![0u8; 3073];
    socket.read_exact(&mut s0s1s2).await.unwrap();
    // Flash Player 21's own C2 and connect('oflaDemo'), byte for byte.
    socket
        .write_all(&fixture(
            "flash-player/red5_fp_lnx21.0.0.182_oflaDemo_C2_plus_connect.client.bin",
        ))
        .await
        .unwrap();
    let mut decoder = ChunkDecoder::new(ChunkLimits::default());
    let seen = read_until(&mut socket, &mut decoder, Duration::from_secs(5), |s| {
        has_status(s, code::CONNECT_SUCCESS)
    })
    .await;
    assert!(has_status(&seen, code::CONNECT_SUCCESS));
    server.shutdown().await;
}

#[tokio::test]
async fn real_obs_publish_session_replays_completely() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("info")
        .try_init();
    let server = embedded(|_| {}).await.unwrap();
    let flows = rtmp_flows(&fixture("captures/obs_publish_to_nginx.pcap"), 1935).unwrap();
    assert_eq!(flows.len(), 1);
    // Skip OBS's C0C1 and C2: we do a fresh handshake, then send its session.
    let session = &flows[0].client_to_server[1537 + 1536..];
    let (mut socket, mut decoder) = raw_session(&server, ClientHandshake::Simple).await;
    let writer = async {
        // Write in pieces, as a socket would.
        for piece in session.chunks(1460) {
            socket.write_all(piece).await.unwrap();
        }
        socket
    };
    let mut socket = writer.await;
    let seen = read_until(&mut socket, &mut decoder, Duration::from_secs(10), |s| {
        has_status(s, code::UNPUBLISH_SUCCESS)
    })
    .await;
    let lines = describe(&seen);
    let answered = |tid: f64, name: &str| {
        seen.iter()
            .any(|(_, m)| matches!(m, Message::Command(c) if c.transaction_id == tid && c.name == name))
    };
    // connect(1), releaseStream(2), FCPublish(3), createStream(4) are each answered.
    for tid in [1.0, 2.0, 3.0, 4.0] {
        assert!(answered(tid, "_result"), "transaction {tid} unanswered: {lines:#?}");
    }
    let statuses: Vec<&String> = lines.iter().filter(|l| l.contains("onStatus")).collect();
    assert_eq!(
        statuses,
        vec![
            "[1] onStatus(0) NetStream.Publish.Start",
            "[1] onStatus(0) NetStream.Unpublish.Success"
        ],
        "{lines:#?}"
    );
    // Every audio, video and metadata message reached the hub.
    assert_eq!(server.metrics().frames_in.get(), 197 + 126 + 1);
    assert!(
        !server.hub().is_live("flashStreamingApp", "1234"),
        "FCUnpublish ended the stream"
    );
    server.shutdown().await;
}

fn ffmpeg(program: &str) -> Command {
    tools::program(program)
}

async fn wait_live(server: &ServerHandle, app: &str, name: &str) {
    for _ in 0..200 {
        if server.hub().is_live(app, name) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{app}/{name} never went live");
}

#[tokio::test]
async fn ffmpeg_publishes_h264_aac_and_ffmpeg_plays_it_back_until_unpublish() {
    let server = embedded(|_| {}).await.unwrap();
    let url = format!("{}/ffstream", server.rtmp_url("live"));
    let mut publisher = ffmpeg("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=25",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=44100",
        ])
        .args([
            "-t",
            "6",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
            "-g",
            "25",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-c:a", "aac", "-b:a", "64k", "-f", "flv"])
        .arg(&url)
        .spawn()
        .unwrap();
    wait_live(&server, "live", "ffstream").await;

    let dir = std::env::temp_dir().join(format!("rs-ffmpeg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let recording = dir.join("played.flv");
    // No -t: the player must end by itself when the publisher leaves (UnpublishNotify).
    let player = ffmpeg("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(&url)
        .args(["-c", "copy", "-y"])
        .arg(&recording)
        .output();
    let played = tokio::time::timeout(Duration::from_secs(30), player)
        .await
        .expect("ffmpeg player did not stop after the publisher left")
        .unwrap();
    let published = publisher.wait().await.unwrap();
    assert!(published.success(), "ffmpeg publisher failed: {:?}", publisher.stderr);
    assert!(
        played.status.success(),
        "ffmpeg player failed: {}",
        String::from_utf8_lossy(&played.stderr)
    );

    let probed = tools::probe(&recording).await;
    assert!(
        probed.codecs.contains(&"h264".to_string()) && probed.codecs.contains(&"aac".to_string()),
        "{probed:?}"
    );
    assert_eq!((probed.width, probed.height), (320, 240), "{probed:?}");
    // The player joined up to a second late and stayed until the end: most of 6 s.
    assert!(probed.video_packets >= 100, "{probed:?}");
    assert!(probed.audio_packets >= 150, "{probed:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn ffmpeg_plays_a_flash_h264_speex_stream() {
    let server = embedded(|_| {}).await.unwrap();
    let tags = media::flv::read_tags(&Bytes::from(fixture("flv/red5_h264_speex.flv"))).unwrap();
    // Six seconds from just before the recording's first keyframe (8.4 s
    // in): a player gets no picture before one.
    let first_6s: Vec<_> = tags
        .into_iter()
        .filter(|t| (7700..=13700).contains(&t.timestamp))
        .collect();
    let mut flash = RtmpClient::open(server.rtmp_addr(), ClientProfile::flash_player())
        .await
        .unwrap();
    let args = vec![Value::object([
        ("login", Value::from("u")),
        ("appKey", Value::from("flashStreamingApp")),
    ])];
    flash
        .connect(&server.rtmp_url("flashStreamingApp"), args)
        .await
        .unwrap();
    let stream = flash.create_stream().await.unwrap();
    flash.publish(stream, "flashcam").await.unwrap();
    let publishing = tokio::spawn(async move {
        flash.send_tags(stream, &first_6s, true).await.unwrap();
        flash
    });
    wait_live(&server, "flashStreamingApp", "flashcam").await;
    let dir = std::env::temp_dir().join(format!("rs-ffmpeg-flash-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let recording = dir.join("flash.flv");
    let played = ffmpeg("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(format!("{}/flashcam", server.rtmp_url("flashStreamingApp")))
        .args(["-t", "3", "-c", "copy", "-y"])
        .arg(&recording)
        .output()
        .await
        .unwrap();
    assert!(
        played.status.success(),
        "ffmpeg player failed: {}",
        String::from_utf8_lossy(&played.stderr)
    );
    let probed = tools::probe(&recording).await;
    assert!(
        probed.codecs.contains(&"h264".to_string()) && probed.codecs.contains(&"speex".to_string()),
        "{probed:?}"
    );
    assert!(probed.audio_packets >= 50 && probed.video_packets >= 20, "{probed:?}");
    drop(publishing.await.unwrap());
    server.shutdown().await;
}
