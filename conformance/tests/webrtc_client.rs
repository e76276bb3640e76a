//! Self-checks of the suite's WebRTC actors (`conformance::webrtc`), without
//! the reference server.
//!
//! The first cases are sans-IO: the SDP answer reader on a hand-written answer,
//! the synthetic H.264 source through openh264, the Opus tone through the
//! player's decoder. The last ones go over the wire against a throwaway
//! server written here: axum for WHEP/WHIP and the WebSocket channel, and one
//! ICE-lite str0m answerer per session that either sends the same synthetic
//! media (for players) or decodes what it gets (for publishers).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, post};
use axum::Router;
use codecs::opus::SAMPLE_RATE;
use conformance::webrtc::http::{self as whip, Endpoint};
use conformance::webrtc::receive::annexb_nal_types;
use conformance::webrtc::ws::ws_url;
use conformance::webrtc::{
    install_crypto, H264Source, MediaReceiver, PlayerOptions, PublisherOptions, SdpDirection, SdpSummary, Signalling,
    StreamStatus, ToneSource, WebRtcError, WebRtcPlayer, WebRtcPublisher, WsSession,
};
use serde_json::{json, Value};
use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::media::{Frequency, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

const WAIT: Duration = Duration::from_secs(10);

/// The picture size sent over the wire here: small, because debug-built
/// openh264 encodes and decodes 320x240 in about 20 ms a frame, and these
/// tests run side by side on small machines.
const SMALL: (u32, u32) = (160, 120);

/// Publisher options with [`SMALL`] pictures.
fn small_publisher() -> PublisherOptions {
    PublisherOptions {
        width: SMALL.0 as usize,
        height: SMALL.1 as usize,
        ..PublisherOptions::default()
    }
}

fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("warn")
        .try_init();
}

// ---------------------------------------------------------------- sans-IO

/// An answer like a gateway gives for an audio-only stream: the video m-line
/// of the offer is rejected with port 0.
const AUDIO_ONLY_ANSWER: &str = "v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0\r\n\
a=ice-lite\r\n\
a=fingerprint:sha-256 19:E2:1C:3B:4B:9F:81:E6:B8:5C:F4:A5:A8:D8:73:04:BB:05:2F:70:9F:04:A9:0E:05:E9:26:33:E8:70:88:A2\r\n\
m=audio 8443 UDP/TLS/RTP/SAVPF 111 0 8\r\n\
c=IN IP4 127.0.0.1\r\n\
a=mid:0\r\n\
a=ice-ufrag:8hhY\r\n\
a=ice-pwd:asd88fgpdd777uzjYhagZg\r\n\
a=setup:passive\r\n\
a=rtcp-mux\r\n\
a=sendonly\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=candidate:1 1 udp 2130706431 127.0.0.1 8443 typ host\r\n\
m=video 0 UDP/TLS/RTP/SAVPF 102 103\r\n\
c=IN IP4 0.0.0.0\r\n\
a=mid:1\r\n\
a=inactive\r\n\
a=rtpmap:102 H264/90000\r\n\
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
a=rtpmap:103 rtx/90000\r\n\
a=fmtp:103 apt=102\r\n";

#[test]
fn the_answer_reader_sees_a_rejected_video_line() {
    let answer = SdpSummary::parse(AUDIO_ONLY_ANSWER).expect("a valid answer");
    assert!(answer.ice_lite && answer.has_fingerprint && answer.has_ice_credentials);
    assert_eq!(answer.media.len(), 2);
    assert_eq!(answer.accepted_kinds(), ["audio"]);

    let audio = answer.audio().unwrap();
    assert!(!audio.rejected && audio.answerer_sends() && !audio.answerer_receives());
    assert_eq!(audio.port, 8443);
    assert_eq!(audio.mid.as_deref(), Some("0"));
    assert_eq!(audio.direction, SdpDirection::SendOnly);
    assert_eq!(
        audio.codec_names(),
        ["opus", "PCMU", "PCMA"],
        "PCMU has no rtpmap: static payload type 0"
    );
    assert_eq!(
        (audio.codecs[0].clock_rate, audio.codecs[0].channels),
        (48_000, Some(2))
    );
    assert_eq!(audio.codecs[0].fmtp_value("minptime"), Some("10"));
    assert_eq!(audio.candidates, ["1 1 udp 2130706431 127.0.0.1 8443 typ host"]);

    let video = answer.video().unwrap();
    assert!(video.rejected && !video.answerer_sends());
    assert_eq!(video.port, 0);
    assert_eq!(video.direction, SdpDirection::Inactive);
    assert_eq!(video.codec_names(), ["H264"], "rtx is a repair format, not a codec");
    let h264 = video.codecs_named("h264").next().unwrap();
    assert_eq!(h264.profile_level_id(), Some(0x42e01f));
    assert_eq!(h264.packetization_mode(), Some(1));
    assert_eq!(video.codecs[1].fmtp_value("apt"), Some("102"));
}

#[test]
fn the_answer_reader_refuses_what_is_not_sdp() {
    for (text, why) in [
        ("", "empty"),
        ("<html>Not Found</html>", "an error page"),
        ("v=0\r\nm=video zero UDP/TLS/RTP/SAVPF 96\r\n", "a non-numeric port"),
        (
            "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus\r\n",
            "an rtpmap without a rate",
        ),
    ] {
        assert!(SdpSummary::parse(text).is_err(), "{why} must not parse");
    }
}

#[test]
fn the_h264_source_decodes_to_its_size_with_idrs_where_asked() {
    let start = Instant::now();
    let mut source = H264Source::new(320, 240, 25, 10, 500_000).unwrap();
    let mut receiver = MediaReceiver::new(start, Duration::from_secs(1));
    let mut keyframes = Vec::new();
    for i in 0..30 {
        if i == 14 {
            source.request_keyframe();
        }
        let frame = source.next_frame().unwrap();
        assert_eq!(frame.index, i);
        assert_eq!(frame.rtp_time, i * 3600, "90 kHz at 25 fps");
        assert!(!frame.data.is_empty(), "frame {i} is empty (skipped by the encoder?)");
        if frame.keyframe {
            keyframes.push(i);
            let types: Vec<u8> = annexb_nal_types(&frame.data).collect();
            assert!(
                types.contains(&7) && types.contains(&8),
                "frame {i}: an IDR carries SPS and PPS: {types:?}"
            );
        }
        receiver.receive(start, Codec::H264, &frame.data, 1, true);
    }
    assert_eq!(keyframes, [0, 10, 14, 20], "IDR every 10 frames, and one on request");
    let video = receiver.video();
    assert_eq!(video.frames, 30);
    assert_eq!(video.pictures, 30, "every frame decodes to a picture: {video:?}");
    assert_eq!(video.decode_errors, 0, "{video:?}");
    assert_eq!((video.width, video.height), (320, 240));
    assert_eq!(video.first_frame_was_idr, Some(true));
    assert_eq!(video.frames_before_first_idr, 0);
    assert_eq!(video.idr_frames, 4);
}

#[test]
fn a_player_that_misses_the_first_idr_says_so() {
    let start = Instant::now();
    let mut source = H264Source::new(176, 144, 25, 5, 300_000).unwrap();
    let frames: Vec<_> = (0..12).map(|_| source.next_frame().unwrap()).collect();
    let mut receiver = MediaReceiver::new(start, Duration::from_secs(1));
    // Join after the first IDR: frames 1..=4 are inter frames without a reference.
    for frame in &frames[1..] {
        receiver.receive(start, Codec::H264, &frame.data, 1, true);
    }
    let video = receiver.video();
    assert_eq!(video.first_frame_was_idr, Some(false));
    assert_eq!(video.frames_before_first_idr, 4);
    assert_eq!(video.idr_frames, 2);
    assert_eq!(
        (video.width, video.height),
        (176, 144),
        "pictures decode again from the IDR at frame 5"
    );
    assert!(video.pictures >= 7, "{video:?}");
}

#[test]
fn the_opus_tone_decodes_to_its_frequency_and_level() {
    let start = Instant::now();
    for hz in [440.0, 1000.0] {
        let mut tone = ToneSource::new(hz, 0.5).unwrap();
        let mut receiver = MediaReceiver::new(start, Duration::from_secs(2));
        for i in 0..100u64 {
            let frame = tone.next_frame().unwrap();
            assert_eq!(frame.rtp_time, i * 960, "48 kHz, 20 ms");
            receiver.receive(start, Codec::Opus, &frame.data, 1, true);
        }
        let audio = receiver.audio();
        assert_eq!(
            (audio.decoded_frames, audio.decode_errors, audio.sample_rate),
            (100, 0, SAMPLE_RATE)
        );
        let pcm = receiver.pcm(Duration::from_secs(1));
        assert_eq!(pcm.samples.len(), 48_000);
        let f = pcm.dominant_frequency().expect("a tone");
        assert!((f - hz).abs() <= 3.0, "sent {hz} Hz, decoded {f} Hz");
        let level = pcm.dbfs().unwrap();
        assert!((level + 9.03).abs() <= 1.5, "sent -9.03 dBFS, decoded {level:.2}");
    }
}

#[test]
fn bad_source_options_are_refused() {
    assert!(matches!(
        H264Source::new(321, 240, 25, 10, 500_000),
        Err(WebRtcError::Options(_))
    ));
    assert!(matches!(
        H264Source::new(320, 240, 0, 10, 500_000),
        Err(WebRtcError::Options(_))
    ));
    assert!(matches!(ToneSource::new(0.0, 0.5), Err(WebRtcError::Options(_))));
}

// ---------------------------------------------------------- a test server

/// One str0m answerer's view of its session.
#[derive(Debug)]
struct Answered {
    receiver: MediaReceiver,
    connected: bool,
    keyframe_requests: u64,
    closed: bool,
    ended: Option<String>,
}

/// A session of the test server: its answerer's state and the switch that ends it.
type Session = (Arc<Mutex<Answered>>, oneshot::Sender<()>);

/// A throwaway WHEP/WHIP/WebSocket server: one ICE-lite str0m answerer per session.
#[derive(Clone, Default)]
struct FakeServer {
    sessions: Arc<Mutex<HashMap<String, Session>>>,
    last: Arc<Mutex<Option<Arc<Mutex<Answered>>>>>,
    next: Arc<AtomicU64>,
}

/// What an answerer does with the session.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Role {
    /// Answer a player: send H.264 and a tone.
    Send,
    /// Answer a publisher: decode what comes.
    Receive,
}

impl FakeServer {
    async fn start() -> (FakeServer, String) {
        let server = FakeServer::default();
        let app = Router::new()
            .route("/whep/{app}/{stream}", post(whep))
            .route("/whip/{app}/{stream}", post(whip_handler))
            .route("/{kind}/{app}/{stream}/{id}", delete(end_session))
            .route("/ws", any(ws_upgrade))
            .with_state(server.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (server, format!("http://{addr}"))
    }

    /// Starts an answerer for `offer`; returns the session id and the answer.
    async fn answer(&self, offer: &str, role: Role, audio_only: bool) -> Result<(String, String), String> {
        let (answer, state, stop) = start_answerer(offer, role, audio_only).await?;
        let id = self.next.fetch_add(1, Ordering::Relaxed).to_string();
        *self.last.lock().unwrap() = Some(state.clone());
        self.sessions.lock().unwrap().insert(id.clone(), (state, stop));
        Ok((id, answer))
    }

    fn end(&self, id: &str) -> bool {
        match self.sessions.lock().unwrap().remove(id) {
            Some((_, stop)) => {
                let _ = stop.send(());
                true
            }
            None => false,
        }
    }

    /// The state of the last session answered.
    fn last(&self) -> Arc<Mutex<Answered>> {
        self.last.lock().unwrap().clone().expect("a session was answered")
    }

    /// The last session's state, for failure messages.
    fn describe_last(&self) -> String {
        match self.last.lock().unwrap().clone() {
            Some(state) => format!("test server session: {:?}", state.lock().unwrap()),
            None => "no session on the test server".into(),
        }
    }

    /// Waits until the last session's state satisfies `check`.
    async fn wait_last(&self, what: &str, check: impl Fn(&Answered) -> bool) -> anyhow::Result<()> {
        let state = self.last();
        let deadline = Instant::now() + WAIT;
        loop {
            if check(&state.lock().unwrap()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the test server never saw {what}: {:?}", state.lock().unwrap());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The refusal of a request that is not `application/sdp`.
fn not_sdp(headers: &HeaderMap) -> Option<Response> {
    match headers.get("content-type").and_then(|v| v.to_str().ok()) {
        Some("application/sdp") => None,
        _ => Some((StatusCode::UNSUPPORTED_MEDIA_TYPE, "send application/sdp").into_response()),
    }
}

async fn whep(
    State(server): State<FakeServer>,
    Path((app, stream)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if let Some(refusal) = not_sdp(&headers) {
        return refusal;
    }
    if stream == "missing" {
        return (StatusCode::NOT_FOUND, "Stream not found").into_response();
    }
    match server.answer(&body, Role::Send, stream == "audio-only").await {
        Ok((id, answer)) => created(&format!("/whep/{app}/{stream}/{id}"), answer),
        Err(e) => (StatusCode::BAD_REQUEST, e).into_response(),
    }
}

async fn whip_handler(
    State(server): State<FakeServer>,
    Path((app, stream)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if let Some(refusal) = not_sdp(&headers) {
        return refusal;
    }
    match server.answer(&body, Role::Receive, false).await {
        Ok((id, answer)) => created(&format!("/whip/{app}/{stream}/{id}"), answer),
        Err(e) => (StatusCode::BAD_REQUEST, e).into_response(),
    }
}

fn created(location: &str, answer: String) -> Response {
    (
        StatusCode::CREATED,
        [("content-type", "application/sdp"), ("location", location)],
        answer,
    )
        .into_response()
}

async fn end_session(
    State(server): State<FakeServer>,
    Path((_, _, _, id)): Path<(String, String, String, String)>,
) -> StatusCode {
    if server.end(&id) {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    }
}

async fn ws_upgrade(State(server): State<FakeServer>, ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(move |socket| ws_session(socket, server))
}

/// The WebSocket channel of docs/signalling.md, just enough of it.
async fn ws_session(mut socket: WebSocket, server: FakeServer) {
    let mut connected = false;
    let mut streams: HashMap<String, (String, String)> = HashMap::new();
    while let Some(Ok(message)) = socket.recv().await {
        let WsMessage::Text(text) = message else { continue };
        let mut replies = Vec::new();
        let value: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
        let field = |name: &str| value.get(name).and_then(Value::as_str).unwrap_or_default().to_string();
        match value.get("type").and_then(Value::as_str) {
            Some("connect") if field("appKey") == "refused" => {
                replies.push(json!({"type": "connection", "status": "FAILED", "info": "Unknown application"}));
            }
            Some("connect") => {
                connected = true;
                replies.push(json!({"type": "connection", "status": "ESTABLISHED", "sessionId": "s-1"}));
            }
            Some(kind @ ("play" | "publish")) if connected => {
                let (id, stream) = (field("id"), field("stream"));
                let event = |status: &str| json!({"type": "stream", "id": id, "stream": stream, "status": status});
                replies.push(event("NEW"));
                if stream == "nobody" {
                    let mut failed = event("FAILED");
                    failed["info"] = json!("Stream not found");
                    replies.push(failed);
                } else {
                    let role = if kind == "play" { Role::Send } else { Role::Receive };
                    match server.answer(&field("sdp"), role, false).await {
                        Ok((session, answer)) => {
                            streams.insert(id.clone(), (stream.clone(), session));
                            replies.push(json!({"type": "answer", "id": id, "sdp": answer}));
                            replies.push(event("PENDING"));
                            replies.push(event(if kind == "play" { "PLAYING" } else { "PUBLISHING" }));
                        }
                        Err(e) => {
                            let mut failed = event("FAILED");
                            failed["info"] = json!(format!("Bad SDP offer: {e}"));
                            replies.push(failed);
                        }
                    }
                }
            }
            Some("stop") => {
                let id = field("id");
                if let Some((stream, session)) = streams.remove(&id) {
                    server.end(&session);
                    replies.push(json!({"type": "stream", "id": id, "stream": stream, "status": "STOPPED"}));
                }
            }
            _ => replies.push(json!({"type": "error", "info": format!("cannot take {text}")})),
        }
        for reply in replies {
            if socket.send(WsMessage::text(reply.to_string())).await.is_err() {
                return;
            }
        }
    }
}

/// Accepts `offer` with an ICE-lite str0m on its own UDP socket and starts its task.
async fn start_answerer(
    offer: &str,
    role: Role,
    audio_only: bool,
) -> Result<(String, Arc<Mutex<Answered>>, oneshot::Sender<()>), String> {
    install_crypto();
    let offer = SdpOffer::from_sdp_string(offer).map_err(|e| format!("not an SDP offer: {e}"))?;
    let socket = UdpSocket::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let local = socket.local_addr().map_err(|e| e.to_string())?;
    let mut config = Rtc::builder().set_ice_lite(true);
    if audio_only {
        config = config.clear_codecs().enable_opus(true, false);
    }
    let mut rtc = config.build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp").map_err(|e| e.to_string())?);
    drain_quietly(&mut rtc)?;
    let answer = rtc.sdp_api().accept_offer(offer).map_err(|e| e.to_string())?;
    drain_quietly(&mut rtc)?;
    let answer = answer.to_sdp_string();
    // str0m announces the mids (Event::MediaAdded) only once connected; read them from the answer.
    let added: Vec<(MediaKind, Mid)> = SdpSummary::parse(&answer)
        .map_err(|e| e.to_string())?
        .media
        .iter()
        .filter(|m| !m.rejected)
        .filter_map(|m| {
            let kind = if m.is_kind("video") {
                MediaKind::Video
            } else {
                MediaKind::Audio
            };
            Some((kind, Mid::from(m.mid.as_deref()?)))
        })
        .collect();
    let state = Arc::new(Mutex::new(Answered {
        receiver: MediaReceiver::new(Instant::now(), Duration::from_secs(2)),
        connected: false,
        keyframe_requests: 0,
        closed: false,
        ended: None,
    }));
    let sender = match role {
        Role::Send => Some(Sender::new(&mut rtc, &added)?),
        Role::Receive => None,
    };
    let (stop, stopped) = oneshot::channel();
    tokio::spawn(run_answerer(rtc, socket, local, sender, state.clone(), stopped));
    Ok((answer, state, stop))
}

/// Drains an `Rtc` that cannot have anything to send or tell yet.
fn drain_quietly(rtc: &mut Rtc) -> Result<(), String> {
    loop {
        if let Output::Timeout(_) = rtc.poll_output().map_err(|e| e.to_string())? {
            return Ok(());
        }
    }
}

/// The answerer's media towards a player: the same synthetic sources as the publisher.
struct Sender {
    video: Option<(Mid, Pt, H264Source, u64)>,
    audio: Option<(Mid, Pt, ToneSource, u64)>,
    since: Option<Instant>,
}

impl Sender {
    fn new(rtc: &mut Rtc, added: &[(MediaKind, Mid)]) -> Result<Sender, String> {
        let mut sender = Sender {
            video: None,
            audio: None,
            since: None,
        };
        for &(kind, mid) in added {
            let Some(writer) = rtc.writer(mid) else { continue };
            let wanted = if kind == MediaKind::Video {
                Codec::H264
            } else {
                Codec::Opus
            };
            let Some(pt) = writer
                .payload_params()
                .find(|p| p.spec().codec == wanted)
                .map(|p| p.pt())
            else {
                continue;
            };
            match kind {
                MediaKind::Video => {
                    sender.video = Some((
                        mid,
                        pt,
                        H264Source::new(SMALL.0 as usize, SMALL.1 as usize, 25, 1000, 200_000)
                            .map_err(|e| e.to_string())?,
                        0,
                    ))
                }
                MediaKind::Audio => {
                    sender.audio = Some((mid, pt, ToneSource::new(440.0, 0.5).map_err(|e| e.to_string())?, 0))
                }
            }
        }
        Ok(sender)
    }

    fn next_due(&self) -> Option<Instant> {
        let since = self.since?;
        let video = self.video.as_ref().map(|v| since + Duration::from_millis(40 * v.3));
        let audio = self.audio.as_ref().map(|a| since + Duration::from_millis(20 * a.3));
        video.into_iter().chain(audio).min()
    }

    /// The next frame due at `now`, if any.
    fn due(&mut self, now: Instant) -> Option<(Mid, Pt, Instant, MediaTime, Vec<u8>)> {
        let since = self.since?;
        // On a starved machine, skip what is more than 200 ms late rather than fall further behind.
        let late = |n: u64, ms: u64| since + Duration::from_millis(ms * n + 200) < now;
        if let Some((_, _, source, next)) = self.video.as_mut() {
            while late(*next, 40) {
                *next += 1;
            }
            source.skip_to(*next);
        }
        if let Some((_, _, source, next)) = self.audio.as_mut() {
            while late(*next, 20) {
                *next += 1;
            }
            source.skip_to(*next);
        }
        let due = self.next_due().filter(|&d| d <= now)?;
        if let Some((mid, pt, source, sent)) = self
            .video
            .as_mut()
            .filter(|v| since + Duration::from_millis(40 * v.3) == due)
        {
            *sent += 1;
            let frame = source.next_frame().ok()?;
            return Some((
                *mid,
                *pt,
                due,
                MediaTime::new(frame.rtp_time, Frequency::NINETY_KHZ),
                frame.data,
            ));
        }
        let (mid, pt, source, sent) = self.audio.as_mut()?;
        *sent += 1;
        let frame = source.next_frame().ok()?;
        Some((
            *mid,
            *pt,
            due,
            MediaTime::new(frame.rtp_time, Frequency::FORTY_EIGHT_KHZ),
            frame.data,
        ))
    }
}

async fn run_answerer(
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    sender: Option<Sender>,
    state: Arc<Mutex<Answered>>,
    stopped: oneshot::Receiver<()>,
) {
    let reason = answerer_loop(rtc, socket, local, sender, &state, stopped).await;
    state.lock().unwrap().ended = Some(reason);
}

/// Drives one answerer until it is stopped or fails; returns why it ended.
async fn answerer_loop(
    mut rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    mut sender: Option<Sender>,
    state: &Mutex<Answered>,
    mut stopped: oneshot::Receiver<()>,
) -> String {
    let mut buf = vec![0u8; 65_536];
    let mut due = Vec::new();
    loop {
        // Drain after the last input, then write what fell due, draining after each write.
        let Some(mut deadline) = drain(&mut rtc, &socket, state, sender.as_mut()).await else {
            return "str0m ended".into();
        };
        for (mid, pt, wallclock, time, data) in due.drain(..) {
            let Some(writer) = rtc.writer(mid) else {
                return format!("no writer for {mid}");
            };
            if let Err(e) = writer.write(pt, wallclock, time, data) {
                return format!("write failed: {e}");
            }
            let Some(timeout) = drain(&mut rtc, &socket, state, sender.as_mut()).await else {
                return "str0m ended".into();
            };
            deadline = timeout;
        }
        if let Some(next) = sender.as_ref().and_then(Sender::next_due) {
            deadline = deadline.min(next);
        }
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                let (n, source) = match received {
                    Ok(r) => r,
                    Err(e) => return format!("receive failed: {e}"),
                };
                if let Ok(receive) = Receive::new(Protocol::Udp, source, local, &buf[..n]) {
                    if let Err(e) = rtc.handle_input(Input::Receive(Instant::now(), receive)) {
                        return format!("str0m refused a datagram: {e}");
                    }
                }
            }
            _ = tokio::time::sleep_until(deadline.into()) => {
                let now = Instant::now();
                if let Err(e) = rtc.handle_input(Input::Timeout(now)) {
                    return format!("str0m failed on a timeout: {e}");
                }
                // A few frames at most per timeout, so str0m's own timers keep running when encoding is slow.
                if let Some(sender) = sender.as_mut() {
                    due.extend(std::iter::from_fn(|| sender.due(now)).take(4));
                }
            }
            _ = &mut stopped => return "stopped".into(),
        }
    }
}

/// Drains `rtc` until its next timeout; `None` when it is dead.
async fn drain(
    rtc: &mut Rtc,
    socket: &UdpSocket,
    state: &Mutex<Answered>,
    mut sender: Option<&mut Sender>,
) -> Option<Instant> {
    loop {
        match rtc.poll_output().ok()? {
            Output::Timeout(t) => return rtc.is_alive().then_some(t),
            Output::Transmit(t) => {
                let _ = socket.send_to(&t.contents, t.destination).await;
            }
            Output::Event(event) => {
                let mut state = state.lock().unwrap();
                match event {
                    Event::Connected => {
                        state.connected = true;
                        if let Some(s) = sender.as_deref_mut() {
                            s.since.get_or_insert(Instant::now());
                        }
                    }
                    Event::MediaData(data) => {
                        let packets = data.seq_range.end().saturating_sub(**data.seq_range.start()) + 1;
                        state
                            .receiver
                            .receive(data.network_time, data.params.spec().codec, &data.data, packets, true);
                    }
                    Event::KeyframeRequest(_) => {
                        state.keyframe_requests += 1;
                        if let Some((_, _, source, _)) = sender.as_deref_mut().and_then(|s| s.video.as_mut()) {
                            source.request_keyframe();
                        }
                    }
                    Event::Closed => state.closed = true,
                    _ => {}
                }
            }
        }
    }
}

// ------------------------------------------------------- over the wire

#[tokio::test]
async fn a_whep_player_decodes_pictures_and_sound() -> anyhow::Result<()> {
    logs();
    let (server, base) = FakeServer::start().await;
    let mut player = WebRtcPlayer::play(Signalling::http(&base, "live", "demo"), PlayerOptions::default()).await?;
    assert!(
        player
            .location()
            .is_some_and(|l| l.starts_with(&format!("{base}/whep/live/demo/"))),
        "{:?}",
        player.location()
    );
    let offer = SdpSummary::parse(player.offer_sdp())?;
    assert_eq!(offer.audio().unwrap().direction, SdpDirection::RecvOnly);
    assert_eq!(offer.audio().unwrap().codec_names(), ["opus", "PCMU", "PCMA"]);
    let offered_profiles: Vec<u32> = offer
        .video()
        .unwrap()
        .codecs_named("H264")
        .filter_map(|c| c.profile_level_id())
        .collect();
    assert_eq!(offered_profiles, [0x42e01f, 0x42001f, 0x4d001f, 0x64001f]);
    assert!(offer
        .video()
        .unwrap()
        .codecs_named("H264")
        .all(|c| c.packetization_mode() == Some(1)));
    assert_eq!(
        offer.media[0].candidates.len(),
        1,
        "one host candidate, added before the offer"
    );

    let answer = player.answer();
    assert_eq!(answer.accepted_kinds(), ["audio", "video"]);
    assert!(answer.video().unwrap().answerer_sends());

    let report = player
        .wait_until(
            "25 pictures and 1 s of sound",
            |r| r.video.pictures >= 25 && r.audio.decoded_frames >= 50,
            WAIT,
        )
        .await
        .with_context(|| server.describe_last())?;
    assert!(report.peer.ice_connected && report.peer.connected, "{report:?}");
    assert_eq!((report.video.width, report.video.height), SMALL);
    assert_eq!(report.video.first_frame_was_idr, Some(true));
    assert_eq!(report.video.decode_errors, 0, "{report:?}");
    assert_eq!(report.audio.codec.as_deref(), Some("opus"));
    assert!(report.video.rtp_packets >= report.video.frames && report.audio.rtp_packets >= 50);
    assert!(report.video.first_picture_after.unwrap() < WAIT && report.audio.first_sound_after.is_some());
    let f = player.audio_frequency(Duration::from_millis(500)).expect("a tone");
    assert!((f - 440.0).abs() <= 5.0, "{f} Hz");
    let level = player.audio_dbfs(Duration::from_millis(500)).unwrap();
    assert!((level + 9.0).abs() <= 3.0, "{level} dBFS");

    player.request_keyframe().await?;
    server.wait_last("a PLI", |s| s.keyframe_requests >= 1).await?;
    player
        .wait_until("an IDR after the PLI", |r| r.video.idr_frames >= 2, WAIT)
        .await
        .context("the test server answers a PLI with an IDR")?;

    let location = player.location().unwrap().to_string();
    player.stop().await?;
    assert!(player.report().peer.ended.is_some());
    assert_eq!(whip::delete(&location).await?.status, 404, "the session is gone");
    Ok(())
}

#[tokio::test]
async fn a_whip_publisher_sends_the_pattern_and_the_tone() -> anyhow::Result<()> {
    logs();
    let (server, base) = FakeServer::start().await;
    let options = PublisherOptions {
        idr_interval: 10,
        tone_hz: 1000.0,
        ..small_publisher()
    };
    let mut publisher = WebRtcPublisher::publish(Signalling::http(&base, "live", "cam"), options).await?;
    let offer = SdpSummary::parse(publisher.offer_sdp())?;
    assert!(offer.media.iter().all(|m| m.direction == SdpDirection::SendOnly));
    assert_eq!(publisher.answer().accepted_kinds(), ["audio", "video"]);

    publisher.wait_connected(WAIT).await?;
    server
        .wait_last("30 pictures and 1 s of sound", |s| {
            s.receiver.video().pictures >= 30 && s.receiver.audio().decoded_frames >= 50
        })
        .await?;
    let report = publisher.report();
    assert!(
        report.sending && report.video_pt.is_some() && report.audio_pt.is_some(),
        "{report:?}"
    );
    assert!(report.errors.is_empty(), "{report:?}");
    assert!(report.video_keyframes_sent >= 3, "an IDR every 10 frames: {report:?}");
    {
        let state = server.last();
        let state = state.lock().unwrap();
        let video = state.receiver.video();
        assert_eq!((video.width, video.height), SMALL);
        assert_eq!(video.first_frame_was_idr, Some(true));
        assert_eq!(video.decode_errors, 0, "{video:?}");
        let pcm = state.receiver.pcm(Duration::from_millis(500));
        let f = pcm.dominant_frequency().expect("a tone");
        assert!((f - 1000.0).abs() <= 5.0, "{f} Hz");
    }

    // A keyframe asked for locally shows up as an extra IDR.
    let before = publisher.report().video_keyframes_sent;
    publisher.force_keyframe();
    publisher
        .wait_until(
            "a forced IDR",
            |r| r.video_keyframes_sent > before,
            Duration::from_secs(1),
        )
        .await?;

    // Closing the peer alone reaches the server as a DTLS close_notify.
    publisher.close_peer().await;
    server.wait_last("the publisher closing", |s| s.closed).await?;
    assert!(publisher.report().peer.ended.is_some());
    publisher.stop().await.context("DELETE after the peer closed")?;
    Ok(())
}

#[tokio::test]
async fn refusals_carry_what_the_server_said() -> anyhow::Result<()> {
    logs();
    let (_server, base) = FakeServer::start().await;
    let err = WebRtcPlayer::play(Signalling::http(&base, "live", "missing"), PlayerOptions::default())
        .await
        .unwrap_err();
    match &err {
        WebRtcError::HttpStatus {
            status: 404,
            expected: 201,
            body,
            ..
        } => assert_eq!(body, "Stream not found"),
        other => bail!("expected a 404 with its body, got {other}"),
    }
    assert!(
        err.to_string().contains("404") && err.to_string().contains("Stream not found"),
        "{err}"
    );

    // The raw helpers return what any answer was, for checks on refusals.
    let url = whip::endpoint_url(&base, Endpoint::Whep, "live", "demo");
    let answer = whip::post_sdp(&url, "text/plain", "v=0").await?;
    assert_eq!(answer.status, 415);
    let answer = whip::post_sdp(&url, "application/sdp", "not an offer").await?;
    assert_eq!(answer.status, 400);
    assert!(answer.body.contains("not an SDP offer"), "{}", answer.body);
    Ok(())
}

#[tokio::test]
async fn a_rejected_video_line_leaves_an_audio_only_player() -> anyhow::Result<()> {
    logs();
    let (_server, base) = FakeServer::start().await;
    let player = WebRtcPlayer::play(Signalling::http(&base, "live", "audio-only"), PlayerOptions::default()).await?;
    let video = player.answer().video().expect("the video m-line is answered");
    assert!(
        video.rejected,
        "an answerer without video codecs rejects the line: {}",
        player.answer_sdp()
    );
    assert_eq!(player.answer().accepted_kinds(), ["audio"]);
    let report = player
        .wait_until("sound", |r| r.audio.decoded_frames >= 25, WAIT)
        .await?;
    assert_eq!(report.video.frames, 0);
    assert!(player.request_keyframe().await.is_err(), "no PLI on a rejected line");
    Ok(())
}

#[tokio::test]
async fn the_websocket_channel_carries_players_publishers_and_statuses() -> anyhow::Result<()> {
    logs();
    let (server, base) = FakeServer::start().await;
    let url = ws_url(&base);

    let refused = WsSession::connect(&url, "refused", Value::Null).await.unwrap_err();
    assert!(
        matches!(&refused, WebRtcError::ConnectFailed { info, .. } if info == "Unknown application"),
        "{refused}"
    );

    let session = WsSession::connect(&url, "live", json!({"login": "alice"})).await?;
    assert_eq!(session.session_id(), "s-1");

    let mut player = WebRtcPlayer::play(Signalling::ws(&session, "p1", "demo"), PlayerOptions::video_only()).await?;
    session.wait_status("p1", StreamStatus::Playing, WAIT).await?;
    player
        .wait_until("10 pictures", |r| r.video.pictures >= 10, WAIT)
        .await
        .with_context(|| server.describe_last())?;
    assert!(player.location().is_none());

    // A second stream on the same connection, by another id.
    let mut publisher = WebRtcPublisher::publish(Signalling::ws(&session, "pub1", "cam"), small_publisher()).await?;
    session.wait_status("pub1", StreamStatus::Publishing, WAIT).await?;
    publisher
        .wait_until("frames sent", |r| r.video_frames_sent >= 5, WAIT)
        .await?;
    server
        .wait_last("pictures from the publisher", |s| s.receiver.video().pictures >= 5)
        .await?;

    let err = WebRtcPlayer::play(Signalling::ws(&session, "p2", "nobody"), PlayerOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, WebRtcError::StreamFailed { id, info, .. } if id == "p2" && info == "Stream not found"),
        "{err}"
    );
    assert_eq!(session.statuses("p2"), [StreamStatus::New, StreamStatus::Failed]);

    player.stop().await?;
    let stopped = session.wait_status("p1", StreamStatus::Stopped, WAIT).await?;
    assert_eq!(stopped.stream, "demo");
    assert_eq!(
        session.statuses("p1"),
        [
            StreamStatus::New,
            StreamStatus::Pending,
            StreamStatus::Playing,
            StreamStatus::Stopped
        ]
    );
    publisher.stop().await?;
    session.wait_status("pub1", StreamStatus::Stopped, WAIT).await?;

    session.send_text("{nonsense".into())?;
    let error = session.wait_error(0, WAIT).await?;
    assert!(error.contains("nonsense"), "{error}");
    assert!(session.violations().is_empty(), "{:?}", session.violations());
    assert!(session.messages().len() >= 10);

    // Waiting for what never comes ends with the statuses so far.
    let err = session
        .wait_status("p1", StreamStatus::Unpublished, Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("STOPPED"), "{err}");
    session.close();
    session.wait_closed(WAIT).await?;
    Ok(())
}
