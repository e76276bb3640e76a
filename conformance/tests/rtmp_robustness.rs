//! Hostile and broken RTMP input over real sockets: each case must end the
//! offending connection promptly (counting a protocol error where the input
//! was malformed) while every other client carries on, and the server must
//! keep serving new clients afterwards. Legal but unusual input (interleaved
//! chunk streams, Abort) must be accepted.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use conformance::client::{ClientError, ClientProfile, Incoming, RtmpClient};
use conformance::handshake::{client_handshake, ClientHandshake};
use conformance::target::embedded;
use media::amf::Value;
use media::netstatus::code;
use media::rtmp::{csid, ChunkEncoder, Command, Message, ObjectEncoding, RawMessage};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use reference_server::ServerHandle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(5);
/// How long the server may take to close a connection after bad input.
const CLOSE_WITHIN: Duration = Duration::from_secs(2);

fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("info")
        .try_init();
}

/// Panics raised anywhere but in this file's own assertions: a panic in a
/// server task does not fail a test by itself (tokio catches it), so they are
/// collected here and `assert_still_serving` fails on any.
static FOREIGN_PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn watch_for_server_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let file = info.location().map(|l| l.file()).unwrap_or("?");
            if !file.ends_with("rtmp_robustness.rs") {
                FOREIGN_PANICS
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(info.to_string());
            }
            default(info);
        }));
    });
}

/// Starts a server with `adjust` applied, watching for panics.
async fn server_with(adjust: impl FnOnce(&mut reference_server::Config)) -> ServerHandle {
    logs();
    watch_for_server_panics();
    embedded(adjust).await.expect("start the reference server")
}

fn seed_args(app_key: &str) -> Vec<Value> {
    vec![Value::object([
        ("login", Value::from("user1")),
        ("appKey", Value::from(app_key)),
    ])]
}

async fn flash_connected(server: &ServerHandle) -> RtmpClient {
    let mut client = RtmpClient::open(server.rtmp_addr(), ClientProfile::flash_player())
        .await
        .expect("TCP connect and handshake");
    let status = client
        .connect(&server.rtmp_url("flashStreamingApp"), seed_args("flashStreamingApp"))
        .await
        .expect("an answer to connect");
    assert_eq!(
        status.code,
        code::CONNECT_SUCCESS,
        "a normal Flash connect should succeed; got {status:?}; wire: {:#?}",
        client.wire_log()
    );
    client
}

async fn encoder_connected(server: &ServerHandle) -> RtmpClient {
    let mut client = RtmpClient::open(server.rtmp_addr(), ClientProfile::encoder())
        .await
        .expect("TCP connect and handshake");
    let status = client
        .connect(&server.rtmp_url("flashStreamingApp"), vec![])
        .await
        .expect("an answer to connect");
    assert_eq!(status.code, code::CONNECT_SUCCESS, "got {status:?}");
    client
}

/// A player on `name` that has received Play.Start, and its stream id.
async fn player_on(server: &ServerHandle, name: &str) -> (RtmpClient, u32) {
    let mut player = encoder_connected(server).await;
    let s = player.create_stream().await.unwrap();
    player.play(s, name).await.unwrap();
    let start = player.wait_status(s, code::PLAY_START, WAIT).await;
    assert!(
        start.is_ok(),
        "playing {name} should start; got {start:?}, statuses {:?}",
        player.codes(s)
    );
    (player, s)
}

/// A publisher live on `name`, and its stream id.
async fn publisher_on(server: &ServerHandle, name: &str) -> (RtmpClient, u32) {
    let mut publisher = flash_connected(server).await;
    let s = publisher.create_stream().await.unwrap();
    let status = publisher.publish(s, name).await.unwrap();
    assert_eq!(
        status.code,
        code::PUBLISH_START,
        "publishing {name} should start; got {status:?}"
    );
    (publisher, s)
}

fn audio(tag: u8, len: usize) -> Bytes {
    let mut payload = vec![0xAF, 0x01];
    payload.extend((0..len.saturating_sub(2)).map(|i| (i as u8).wrapping_mul(7) ^ tag));
    Bytes::from(payload)
}

fn video(tag: u8, len: usize, keyframe: bool) -> Bytes {
    let mut payload = vec![if keyframe { 0x17 } else { 0x27 }, 0x01, 0, 0, 0];
    payload.extend((0..len.saturating_sub(5)).map(|i| (i as u8).wrapping_mul(13) ^ tag));
    Bytes::from(payload)
}

fn media_of(items: &[Incoming], type_id: u8) -> Vec<(u32, Bytes)> {
    items
        .iter()
        .filter_map(|m| match m {
            Incoming::Media {
                type_id: t,
                timestamp,
                payload,
                ..
            } if *t == type_id => Some((*timestamp, payload.clone())),
            _ => None,
        })
        .collect()
}

static STREAMS: AtomicU32 = AtomicU32::new(0);

/// A normal Flash client still connects and publishes, another client plays
/// it and receives its media, and no server task has panicked.
async fn assert_still_serving(server: &ServerHandle) {
    let name = format!("still-serving-{}", STREAMS.fetch_add(1, Ordering::Relaxed));
    let (mut publisher, ps) = publisher_on(server, &name).await;
    let (mut player, _) = player_on(server, &name).await;
    let frame = video(1, 300, true);
    publisher
        .send_media(ps, 9, 40, frame.clone())
        .await
        .expect("the publisher can still send");
    let media = player.collect_media(1, WAIT).await;
    assert_eq!(
        media_of(&media, 9),
        vec![(40, frame)],
        "after the hostile input, a new player should receive a new publisher's frame"
    );
    let panics = FOREIGN_PANICS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(panics.is_empty(), "server code panicked during the run: {panics:#?}");
}

/// A publisher that is live before the hostile input and must be untouched by it.
struct Bystander {
    client: RtmpClient,
    name: String,
}

impl Bystander {
    async fn start(server: &ServerHandle) -> Bystander {
        let name = format!("bystander-{}", STREAMS.fetch_add(1, Ordering::Relaxed));
        let (client, _) = publisher_on(server, &name).await;
        Bystander { client, name }
    }

    async fn assert_unharmed(mut self, server: &ServerHandle) {
        assert!(
            server.hub().is_live("flashStreamingApp", &self.name),
            "an unrelated publisher lost its stream because of another connection's input"
        );
        // Only control messages (if anything) may be pending; a close is a failure.
        loop {
            match self.client.next(Duration::from_millis(50)).await {
                Ok(_) => continue,
                Err(ClientError::Timeout { .. }) => break,
                Err(e) => panic!(
                    "an unrelated publisher's connection ended because of another \
                     connection's input: {e}"
                ),
            }
        }
    }
}

/// Reads from a raw socket until the peer closes it (EOF or reset), for at most `within`.
async fn raw_closed(socket: &mut TcpStream, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout_at(deadline, socket.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// Waits until `rtmp_protocol_errors` exceeds `before` (the count is bumped
/// just after the socket is dropped, so a client may see the close first).
async fn assert_protocol_error_counted(server: &ServerHandle, before: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while server.metrics().rtmp_protocol_errors.get() <= before {
        assert!(
            Instant::now() < deadline,
            "rtmp_protocol_errors stayed at {before} after {what}; expected it to increase"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the open-connections gauge is at most `n`. A server task that
/// panicked never decrements it, so this also catches panics.
async fn wait_connections_at_most(server: &ServerHandle, n: u64, what: &str) {
    let deadline = Instant::now() + WAIT;
    while server.metrics().rtmp_connections.get() > n {
        assert!(
            Instant::now() < deadline,
            "{what}: the server still counts {} open connections after {WAIT:?}, expected at most {n}",
            server.metrics().rtmp_connections.get()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The chunks of one message, encoded from scratch (type 0 header, chunk size 128).
fn chunks(csid: u32, type_id: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    ChunkEncoder::new().encode(
        &RawMessage {
            csid,
            timestamp: 0,
            type_id,
            stream_id,
            payload: Bytes::copy_from_slice(payload),
        },
        &mut out,
    );
    out.to_vec()
}

/// An AMF0 command message body.
fn command_body(name: &str, tid: f64, args: Vec<Value>) -> Bytes {
    let (type_id, body) = Message::Command(Command {
        encoding: ObjectEncoding::Amf0,
        name: name.into(),
        transaction_id: tid,
        command_object: Value::Null,
        args,
    })
    .encode();
    assert_eq!(type_id, 20);
    body
}

/// Sends hostile bytes on an RTMP client; the server may close before it has
/// read them all, so write errors are expected and ignored.
async fn send_hostile(client: &mut RtmpClient, bytes: &[u8]) {
    let _ = client.send_raw(bytes).await;
}

// ---- (a) garbage instead of a handshake ----

/// The end of most hostile cases: `client` is closed within [`CLOSE_WITHIN`]
/// for a counted protocol error, the bystander publisher is unharmed, the
/// server still serves newcomers, and it shuts down cleanly.
async fn closed_and_survived(
    server: ServerHandle,
    client: &mut RtmpClient,
    errors_before: u64,
    bystander: Bystander,
    what: &str,
) {
    assert!(
        client.wait_closed(CLOSE_WITHIN).await,
        "server did not close the connection within {CLOSE_WITHIN:?} after {what}"
    );
    assert_protocol_error_counted(&server, errors_before, what).await;
    bystander.assert_unharmed(&server).await;
    assert_still_serving(&server).await;
    server.shutdown().await;
}

#[tokio::test]
async fn garbage_instead_of_a_handshake_is_closed() {
    let server = server_with(|_| {}).await;
    let bystander = Bystander::start(&server).await;

    let mut rng = StdRng::seed_from_u64(0xC0FFEE);
    let mut wrong_version = vec![0x07u8; 1 + 1536];
    rng.fill_bytes(&mut wrong_version[1..]);
    let mut http = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".to_vec();
    http.resize(1 + 1536, b' ');

    for (what, bytes) in [
        ("C0 = 0x07 and 1536 random bytes", wrong_version),
        ("an HTTP request padded to 1537 bytes", http),
    ] {
        let before = server.metrics().rtmp_protocol_errors.get();
        let mut socket = TcpStream::connect(server.rtmp_addr()).await.unwrap();
        socket.write_all(&bytes).await.unwrap();
        let started = Instant::now();
        assert!(
            raw_closed(&mut socket, CLOSE_WITHIN).await,
            "server did not close the connection within {CLOSE_WITHIN:?} after {what}"
        );
        assert!(started.elapsed() < CLOSE_WITHIN);
        assert_protocol_error_counted(&server, before, what).await;
    }
    bystander.assert_unharmed(&server).await;
    assert_still_serving(&server).await;
    server.shutdown().await;
}

// ---- (b) a silent TCP connection ----

#[tokio::test]
async fn a_silent_connection_is_closed_at_the_handshake_timeout() {
    let server = server_with(|c| c.rtmp.handshake_timeout = Duration::from_millis(300)).await;
    let mut socket = TcpStream::connect(server.rtmp_addr()).await.unwrap();
    let started = Instant::now();
    assert!(
        raw_closed(&mut socket, CLOSE_WITHIN).await,
        "server did not close a connection that sent nothing within {CLOSE_WITHIN:?} \
         (handshake_timeout 300ms)"
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(250),
        "closed after {elapsed:?}, before the 300 ms handshake timeout"
    );
    assert_still_serving(&server).await;
    server.shutdown().await;
}

// ---- (c) messages above the size limit ----

#[tokio::test]
async fn a_16_mib_message_header_is_closed() {
    let server = server_with(|_| {}).await;
    let bystander = Bystander::start(&server).await;
    let before = server.metrics().rtmp_protocol_errors.get();
    let mut client = RtmpClient::open(server.rtmp_addr(), ClientProfile::encoder())
        .await
        .unwrap();
    // Type 0 header on chunk stream 4: video, length 0xFFFFFF, stream 1. No body follows.
    send_hostile(&mut client, &[0x04, 0, 0, 0, 0xFF, 0xFF, 0xFF, 9, 1, 0, 0, 0]).await;
    closed_and_survived(
        server,
        &mut client,
        before,
        bystander,
        "a 16 MiB message header \
         (limit 8 MiB)",
    )
    .await;
}

#[tokio::test]
async fn a_command_above_max_message_size_is_closed() {
    let server = server_with(|c| c.rtmp.max_message_size = 1000).await;
    let bystander = Bystander::start(&server).await;
    let before = server.metrics().rtmp_protocol_errors.get();
    let mut client = flash_connected(&server).await;
    let body = command_body("createStream", 2.0, vec![Value::from("x".repeat(2000).as_str())]);
    assert!(body.len() > 2000);
    send_hostile(&mut client, &chunks(8, 20, 0, &body)).await;
    assert!(
        client.wait_closed(CLOSE_WITHIN).await,
        "server did not close the connection within {CLOSE_WITHIN:?} after a {}-byte command \
         with rtmp.max_message_size = 1000",
        body.len()
    );
    assert_protocol_error_counted(&server, before, "a command above max_message_size").await;
    bystander.assert_unharmed(&server).await;
    assert_still_serving(&server).await;
    server.shutdown().await;
}

// ---- (d) Set Chunk Size 0 ----

#[tokio::test]
async fn set_chunk_size_zero_is_closed() {
    let server = server_with(|_| {}).await;
    let bystander = Bystander::start(&server).await;
    let before = server.metrics().rtmp_protocol_errors.get();
    let mut client = flash_connected(&server).await;
    send_hostile(&mut client, &chunks(2, 1, 0, &0u32.to_be_bytes())).await;
    closed_and_survived(server, &mut client, before, bystander, "Set Chunk Size 0").await;
}

// ---- (e) a type 1 chunk with nothing to inherit from ----

#[tokio::test]
async fn a_type_1_chunk_on_a_fresh_chunk_stream_is_closed() {
    let server = server_with(|_| {}).await;
    let bystander = Bystander::start(&server).await;
    let before = server.metrics().rtmp_protocol_errors.get();
    let mut client = flash_connected(&server).await;
    // fmt 1 on chunk stream 9 (never used): delta 0, length 1, video; one body byte.
    send_hostile(&mut client, &[0x49, 0, 0, 0, 0, 0, 1, 9, 0x17]).await;
    closed_and_survived(
        server,
        &mut client,
        before,
        bystander,
        "a type 1 chunk on a \
         chunk stream that never had a type 0 header",
    )
    .await;
}

// ---- (f) a command whose AMF is garbage ----

#[tokio::test]
async fn a_command_with_garbage_amf_is_closed() {
    let server = server_with(|_| {}).await;
    let bystander = Bystander::start(&server).await;
    let before = server.metrics().rtmp_protocol_errors.get();
    let mut client = flash_connected(&server).await;
    // An AMF0 string that claims 9 bytes and has 1.
    send_hostile(&mut client, &chunks(8, 20, 0, &[0x02, 0x00, 0x09, 0x61])).await;
    closed_and_survived(
        server,
        &mut client,
        before,
        bystander,
        "a command whose AMF \
         is truncated garbage (02 00 09 61)",
    )
    .await;
}

// ---- (g) deeply nested AMF ----

#[tokio::test]
async fn deeply_nested_amf_is_closed_without_overflowing_the_stack() {
    const DEPTH: usize = 100_000;
    let server = server_with(|c| c.rtmp.max_message_size = 1024 * 1024).await;
    let bystander = Bystander::start(&server).await;
    let before = server.metrics().rtmp_protocol_errors.get();
    let mut client = flash_connected(&server).await;
    let mut body = command_body("createStream", 2.0, vec![]).to_vec();
    for _ in 0..DEPTH {
        body.extend_from_slice(&[0x0A, 0, 0, 0, 1]); // strict array of one element
    }
    body.push(0x05); // null, innermost
    assert!(body.len() < 1024 * 1024);
    send_hostile(&mut client, &chunks(8, 20, 0, &body)).await;
    closed_and_survived(
        server,
        &mut client,
        before,
        bystander,
        "a command with \
         {DEPTH} nested AMF0 strict arrays",
    )
    .await;
}

// ---- (h) interleaved chunk streams are legal ----

/// Splits one encoded message (chunk stream id below 64, no extended
/// timestamp) into its chunks: the first with its message header, then the
/// type 3 continuations.
fn split_chunks(encoded: &[u8], payload_len: usize, chunk_size: usize) -> Vec<Vec<u8>> {
    let header = 1 + [11, 7, 3, 0][usize::from(encoded[0] >> 6)];
    let first = header + chunk_size.min(payload_len);
    let mut pieces = vec![encoded[..first].to_vec()];
    let mut rest = &encoded[first..];
    while !rest.is_empty() {
        let n = 1 + chunk_size.min(rest.len() - 1);
        pieces.push(rest[..n].to_vec());
        rest = &rest[n..];
    }
    pieces
}

#[tokio::test]
async fn interleaved_audio_and_video_chunks_are_reassembled() {
    let server = server_with(|_| {}).await;
    let (mut publisher, ps) = publisher_on(&server, "interleaved").await;
    let (mut player, _) = player_on(&server, "interleaved").await;

    // Several messages per chunk stream, so later ones go with type 1 and 2 headers.
    let audios: Vec<(u32, Bytes)> = vec![
        (0, audio(1, 300)),
        (23, audio(2, 129)),
        (46, audio(3, 700)),
        (69, audio(4, 700)),
    ];
    let videos: Vec<(u32, Bytes)> = vec![
        (0, video(5, 1000, true)),
        (33, video(6, 128, false)),
        (66, video(7, 2500, false)),
        (99, video(8, 2500, false)),
    ];
    let pieces = |csid: u32, type_id: u8, messages: &[(u32, Bytes)]| {
        let mut encoder = ChunkEncoder::new();
        let mut all = Vec::new();
        for (timestamp, payload) in messages {
            let mut out = BytesMut::new();
            encoder.encode(
                &RawMessage {
                    csid,
                    timestamp: *timestamp,
                    type_id,
                    stream_id: ps,
                    payload: payload.clone(),
                },
                &mut out,
            );
            all.extend(split_chunks(&out, payload.len(), 128));
        }
        all
    };
    let (a, v) = (pieces(csid::AUDIO, 8, &audios), pieces(csid::VIDEO, 9, &videos));
    assert!(a.len() > 10 && v.len() > 40, "messages span many chunks");
    let mut wire = Vec::new();
    for i in 0..a.len().max(v.len()) {
        wire.extend(a.get(i).into_iter().flatten());
        wire.extend(v.get(i).into_iter().flatten());
    }
    publisher
        .send_raw(&wire)
        .await
        .expect("the server takes interleaved chunks");

    let media = player.collect_media(audios.len() + videos.len(), WAIT).await;
    assert_eq!(
        media_of(&media, 8),
        audios,
        "the player should receive every audio message intact and in order"
    );
    assert_eq!(
        media_of(&media, 9),
        videos,
        "the player should receive every video message intact and in order"
    );
    assert!(
        matches!(
            publisher.next(Duration::from_millis(200)).await,
            Err(ClientError::Timeout { .. }) | Ok(_)
        ) && server.hub().is_live("flashStreamingApp", "interleaved"),
        "interleaved chunk streams are legal: the publisher must not be disconnected"
    );
    assert_eq!(
        server.metrics().rtmp_protocol_errors.get(),
        0,
        "interleaved chunk streams are legal, yet a protocol error was counted"
    );
    assert_eq!(server.metrics().rtmp_connections.get(), 2);
    assert_still_serving(&server).await;
    server.shutdown().await;
}

// ---- (i) Abort ----

#[tokio::test]
async fn abort_drops_the_partial_message_and_the_next_one_is_accepted() {
    let server = server_with(|_| {}).await;
    let (mut publisher, ps) = publisher_on(&server, "aborted").await;
    let (mut player, _) = player_on(&server, "aborted").await;

    // Half a video message on chunk stream 7, Abort(7), then a whole fresh one.
    let dropped = video(1, 300, true);
    let fresh = video(2, 200, true);
    let partial = chunks(csid::VIDEO, 9, ps, &dropped);
    publisher.send_raw(&partial[..12 + 128]).await.unwrap();
    publisher
        .send_message(csid::CONTROL, 0, &Message::Abort(csid::VIDEO))
        .await
        .unwrap();
    publisher.send_raw(&chunks(csid::VIDEO, 9, ps, &fresh)).await.unwrap();
    let media = player.collect_media(2, Duration::from_millis(1500)).await;
    assert_eq!(
        media_of(&media, 9),
        vec![(0, fresh)],
        "after Abort, the player should get only the fresh video message, not the aborted one"
    );

    // The same on a command chunk stream: half a garbage command, Abort, then createStream.
    let garbage = vec![0xEEu8; 300];
    let partial = chunks(8, 20, 0, &garbage);
    publisher.send_raw(&partial[..12 + 128]).await.unwrap();
    publisher
        .send_message(csid::CONTROL, 0, &Message::Abort(8))
        .await
        .unwrap();
    publisher
        .send_raw(&chunks(8, 20, 0, &command_body("createStream", 77.0, vec![])))
        .await
        .unwrap();
    let answer = publisher.wait_answer(77.0, WAIT).await;
    assert!(
        matches!(&answer, Ok(a) if a.name == "_result"),
        "createStream after an aborted command should be answered with _result; got {answer:?}"
    );
    assert_eq!(
        server.metrics().rtmp_protocol_errors.get(),
        0,
        "Abort is legal, yet a protocol error was counted"
    );
    assert!(server.hub().is_live("flashStreamingApp", "aborted"));
    assert_still_serving(&server).await;
    server.shutdown().await;
}

// ---- (j), (k) commands out of order ----

#[tokio::test]
async fn a_command_before_connect_is_closed() {
    let server = server_with(|_| {}).await;
    let bystander = Bystander::start(&server).await;
    let before = server.metrics().rtmp_protocol_errors.get();
    let mut client = RtmpClient::open(server.rtmp_addr(), ClientProfile::encoder())
        .await
        .unwrap();
    let _ = client.send_command(0, "createStream", 1.0, vec![]).await;
    assert!(
        client.wait_closed(CLOSE_WITHIN).await,
        "server did not close the connection within {CLOSE_WITHIN:?} after createStream was \
         sent before connect; wire: {:#?}",
        client.wire_log()
    );
    assert_protocol_error_counted(&server, before, "createStream before connect").await;
    bystander.assert_unharmed(&server).await;
    assert_still_serving(&server).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_second_connect_is_closed() {
    let server = server_with(|_| {}).await;
    let bystander = Bystander::start(&server).await;
    let before = server.metrics().rtmp_protocol_errors.get();
    let mut client = flash_connected(&server).await;
    let second = client
        .connect(&server.rtmp_url("flashStreamingApp"), seed_args("flashStreamingApp"))
        .await;
    assert!(second.is_err(), "a second connect must not be answered; got {second:?}");
    closed_and_survived(server, &mut client, before, bystander, "a second connect").await;
}

// ---- (l) idle connections ----

#[tokio::test]
async fn a_silent_client_is_closed_at_the_idle_timeout() {
    let server = server_with(|c| c.rtmp.idle_timeout = Duration::from_secs(1)).await;

    // Handshake by hand, then silence: no connect, no ping answers.
    let mut socket = TcpStream::connect(server.rtmp_addr()).await.unwrap();
    client_handshake(&mut socket, ClientHandshake::Simple)
        .await
        .expect("a simple handshake");
    let started = Instant::now();
    assert!(
        raw_closed(&mut socket, Duration::from_millis(2500)).await,
        "server did not close a silent connection within 2.5s (rtmp.idle_timeout = 1s)"
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(2),
        "the silent connection should close about 1 s after the handshake; took {elapsed:?}"
    );

    // A connected client that does not read (so never answers the pings) goes the same way,
    let mut deaf = flash_connected(&server).await;
    // while one that keeps answering pings stays.
    let mut alive = flash_connected(&server).await;
    let until = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < until {
        match alive.next(Duration::from_millis(100)).await {
            Ok(_) | Err(ClientError::Timeout { .. }) => {}
            Err(e) => panic!("a client that answers pings was disconnected: {e}"),
        }
    }
    assert!(
        deaf.wait_closed(Duration::from_millis(500)).await,
        "server did not close a connected client that answered no pings for 2.5s \
         (rtmp.idle_timeout = 1s)"
    );
    let pings = alive.wire_log().iter().filter(|l| l.contains("PingRequest")).count();
    assert!(pings >= 2, "the server should ping an idle client; saw {pings} pings");
    assert_still_serving(&server).await;
    server.shutdown().await;
}

// ---- (m) the connection limit ----

#[tokio::test]
async fn connections_above_the_limit_are_refused_and_capacity_returns() {
    let server = server_with(|c| c.rtmp.max_connections = 2).await;
    let first = flash_connected(&server).await;
    let _second = flash_connected(&server).await;

    let mut third = TcpStream::connect(server.rtmp_addr()).await.unwrap();
    assert!(
        raw_closed(&mut third, Duration::from_secs(1)).await,
        "a third TCP connection with max_connections = 2 was not closed within 1s"
    );
    assert_eq!(
        server.metrics().rtmp_connections_refused.get(),
        1,
        "the refused connection should be counted in rtmp_connections_refused"
    );

    drop(first);
    wait_connections_at_most(&server, 1, "after closing one of two connections").await;
    let mut again = flash_connected(&server).await;
    let s = again.create_stream().await;
    assert!(
        s.is_ok(),
        "a new connection after one closed should be served; got {s:?}"
    );
    assert_eq!(server.metrics().rtmp_connections_refused.get(), 1);
    drop((again, _second));
    wait_connections_at_most(&server, 0, "after closing every connection").await;
    assert_still_serving(&server).await;
    server.shutdown().await;
}

/// One address that opens idle connections up to its cap cannot take more,
/// while another address is still served: a thousand handshaked idle
/// connections from one client no longer hold every slot.
#[tokio::test]
async fn one_address_cannot_hold_more_than_its_share_of_connections() {
    let server = server_with(|c| c.rtmp.max_connections_per_address = 3).await;
    let mut idle = Vec::new();
    for _ in 0..3 {
        let mut socket = TcpStream::connect(server.rtmp_addr()).await.unwrap();
        client_handshake(&mut socket, ClientHandshake::Simple).await.unwrap();
        idle.push(socket);
    }
    let mut fourth = TcpStream::connect(server.rtmp_addr()).await.unwrap();
    assert!(
        raw_closed(&mut fourth, Duration::from_secs(1)).await,
        "a fourth connection from the same address was not closed"
    );
    assert_eq!(server.metrics().rtmp_connections_refused.get(), 1);
    // 127.0.0.2 is another address on the loopback interface.
    let other = tokio::net::TcpSocket::new_v4().unwrap();
    other.bind(([127, 0, 0, 2], 0).into()).unwrap();
    let mut other = other.connect(server.rtmp_addr()).await.unwrap();
    let served = client_handshake(&mut other, ClientHandshake::Simple).await;
    assert!(served.is_ok(), "another address was refused: {served:?}");
    drop(idle.pop());
    wait_connections_at_most(&server, 3, "after one of the first address's closed").await;
    let mut again = encoder_connected(&server).await;
    assert!(again.create_stream().await.is_ok(), "the address got its place back");
    server.shutdown().await;
}

/// A client that completes the handshake and then sends no connect is
/// closed at `rtmp.connect_timeout`; one that connected stays.
#[tokio::test]
async fn a_handshake_without_connect_is_closed_at_the_connect_timeout() {
    let server = server_with(|c| c.rtmp.connect_timeout = Duration::from_secs(1)).await;
    let mut silent = TcpStream::connect(server.rtmp_addr()).await.unwrap();
    client_handshake(&mut silent, ClientHandshake::Simple).await.unwrap();
    let mut connected = encoder_connected(&server).await;
    let started = Instant::now();
    assert!(
        raw_closed(&mut silent, Duration::from_secs(3)).await,
        "a connection without connect was still open 3 s after its handshake"
    );
    assert!(started.elapsed() >= Duration::from_millis(800), "closed too early");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        connected.create_stream().await.is_ok(),
        "a connected client was closed too"
    );
    server.shutdown().await;
}

// ---- (n) random bytes after a valid connect ----

#[tokio::test]
async fn random_bytes_after_connect_never_break_the_server() {
    const ITERATIONS: usize = 50;
    let server = server_with(|_| {}).await;
    let bystander = Bystander::start(&server).await;
    let mut rng = StdRng::seed_from_u64(0x5EED_2024);
    let mut closed = 0;
    for i in 0..ITERATIONS {
        let bytes: Vec<u8> = if i % 2 == 0 {
            // Pure noise.
            let mut b = vec![0u8; rng.gen_range(1..4096)];
            rng.fill_bytes(&mut b);
            b
        } else {
            // A valid command with some bytes flipped, cut or extended.
            let body = command_body("publish", 0.0, vec![Value::from("fuzz"), Value::from("live")]);
            let mut b = chunks(rng.gen_range(2..70), 20, rng.gen_range(0..3), &body);
            for _ in 0..rng.gen_range(1..8) {
                let at = rng.gen_range(0..b.len());
                b[at] = rng.gen();
            }
            b.truncate(rng.gen_range(1..=b.len()));
            let extra = rng.gen_range(0..64);
            b.extend((0..extra).map(|_| rng.gen::<u8>()));
            b
        };
        let mut client = flash_connected(&server).await;
        send_hostile(&mut client, &bytes).await;
        if client.wait_closed(Duration::from_millis(100)).await {
            closed += 1;
        }
        // Still open means the server waits for more bytes; hanging up ends it.
    }
    eprintln!("random input: the server closed {closed} of {ITERATIONS} connections itself");
    bystander.assert_unharmed(&server).await;
    // Every connection task ended normally (a panicked task never decrements the gauge).
    wait_connections_at_most(&server, 0, "after the random-input clients hung up").await;
    assert_still_serving(&server).await;
    server.shutdown().await;
}

/// A megabyte of stream name is refused (Publish.BadName, Play.Failed)
/// with an answer of a few hundred bytes, not echoed back (it used to come
/// back twice, in the description and the details); names up to
/// `max_name_bytes` still publish and play.
#[tokio::test]
async fn a_megabyte_stream_name_is_refused_without_being_echoed() {
    let server = server_with(|config| config.max_name_bytes = 1024).await;
    let huge = "n".repeat(1 << 20);
    let mut publisher = encoder_connected(&server).await;
    let s = publisher.create_stream().await.unwrap();
    let refused = publisher.publish(s, &huge).await.unwrap();
    assert_eq!(refused.code, code::PUBLISH_BAD_NAME, "{}", refused.description);
    assert_eq!(refused.description, "The stream name is longer than 1024 bytes.");
    assert!(
        refused.details.as_ref().is_some_and(|d| d.len() <= 128),
        "{:?}",
        refused.details.map(|d| d.len())
    );
    let mut player = encoder_connected(&server).await;
    let p = player.create_stream().await.unwrap();
    let refused = player.play(p, &huge).await.unwrap();
    assert_eq!(refused.code, code::PLAY_FAILED, "{}", refused.description);
    assert!(refused.description.len() < 100, "{}", refused.description);
    // At the limit, a name is a name.
    let longest = "l".repeat(1024);
    let (_publisher, _) = publisher_on(&server, &longest).await;
    let (_player, _) = player_on(&server, &longest).await;
    assert_still_serving(&server).await;
    server.shutdown().await;
}
