//! Hostile clients, as the `attack` action plays them: floods, bombs and
//! malformed input that real servers have crashed, hung or bloated on.
//!
//! Every attack comes from its own source address where the suite has one
//! ([`Aim::from`]: the target's `attack_from`, or 127.0.0.2 for a target on
//! the loopback network, as another host would), so that a server's
//! per-address limits fall on the attacker and not on the suite's healthy
//! clients and its `survives` check. The floods that need it are not run
//! without it ([`Attack::outnumbers_one_host`]).
//! What the attack keeps open (a flood's connections, a viewer that never
//! reads) stays open in [`Held`] until the actor disconnects or the case
//! ends, so that the checks after it run under the attack's weight.
//!
//! The payloads are built by pure functions ([`payload`]), tested without
//! sockets; [`launch`] sends them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use media::amf::Value;
use media::rtmp::{ChunkEncoder, Command, Message, ObjectEncoding, RawMessage};
use rand::{Rng, RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpSocket, TcpStream, UdpSocket};
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant};

use crate::client::{ClientProfile, RtmpClient};
use crate::target::Capability;
use crate::webrtc::http::{Endpoint, Offer, OfferShape};

/// One kind of attack. `count` (where it says) sets its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Attack {
    /// C0 and then 64 KiB of random bytes: a handshake of noise.
    Noise,
    /// A handshake, then 64 KiB of random bytes as chunks.
    NoiseAfterHandshake,
    /// Set Chunk Size with the top bit set (0x80000400), then a connect.
    ChunkSizeTopBit,
    /// A connect whose command object nests `count` (100,000) AMF0 objects.
    AmfDepth,
    /// Commands whose AMF0 values announce 4 GiB: a long string, a strict
    /// array and an ECMA array of 0xFFFFFFFF elements, in a few bytes.
    AmfLengthBomb,
    /// `count` (5,000) chunk stream ids, each with the first chunk of a
    /// 4 KiB message that never ends.
    CsidFlood,
    /// `count` (20) connections, each sending half of an 8,000,000-byte
    /// message and then nothing.
    HalfMessages,
    /// After connect, `count` (100,000) Acknowledgement messages.
    AckFlood,
    /// After connect, `count` (10,000) messages of zero length, of every
    /// type a client sends.
    ZeroLength,
    /// After connect, `count` (2,000) User Control messages of unknown
    /// event types and short bodies.
    UserControlGarbage,
    /// After connect, `count` (10,000) calls of a method nobody has.
    CommandFlood,
    /// After connect, `count` (10,000) createStream commands.
    CreateStreamFlood,
    /// After connect, media, data and commands on stream ids never created.
    WrongStreamIds,
    /// `count` (1,000) TCP connections that send nothing.
    ConnectionFlood,
    /// `count` (1,000) connections that complete the handshake and then
    /// send nothing.
    HandshakeFlood,
    /// `count` (100) connections that send C0C1 a byte every 200 ms.
    Slowloris,
    /// A connection whose client dies after connect: nothing more is sent,
    /// not even an answer to the server's PingRequest, and no FIN comes.
    DeadAfterConnect,
    /// `count` (200) connections, one after another, each publishing the
    /// same name and leaving.
    PublishCycles,
    /// A player of `stream` that never reads what it is sent.
    SlowViewer,
    /// A publisher sending `count` (1,000) onMetaData messages of 64 KiB.
    MetadataFlood,
    /// A publisher whose AVC and AAC sequence headers are garbage, then
    /// frames.
    BadSequenceHeaders,
    /// A publisher whose timestamps jump: backwards, to 0xFFFFFFFF, to 0.
    TimestampChaos,
    /// A WHEP offer of 10 MB.
    WhepHugeBody,
    /// A WHEP offer of `count` (10,000) m-lines.
    WhepManyMlines,
    /// `count` (500) WHEP offers for `stream` at once; the sessions made
    /// are ended after.
    WhepFlood,
    /// A WHEP request with `count` (1,000) header fields of 1 KiB.
    HeaderBomb,
    /// A WebSocket text message of 10 MB.
    WsHugeMessage,
    /// `count` (10,000) malformed WebSocket messages.
    WsGarbage,
    /// `count` (3,000) datagrams of noise, STUN, DTLS and RTP look-alikes
    /// to the UDP port of a WHEP session of `stream`.
    UdpGarbage,
    /// A WHEP player of `stream` behind a relay that loses every second RTP
    /// packet (retransmissions too): it asks for every packet again (its
    /// WebRTC stack's NACKs) and for a keyframe every 100 ms (PLI), for as
    /// long as the step lasts.
    NackStorm,
    /// A WHEP player of `stream` that completes ICE and DTLS and then
    /// receives nothing more (a relay in front of it loses every RTP
    /// packet), for as long as the step lasts.
    DeafWebrtcViewer,
}

impl Attack {
    /// Its size when the step gives no `count`.
    pub fn default_count(self) -> usize {
        match self {
            Attack::AmfDepth => 100_000,
            Attack::CsidFlood => 5_000,
            Attack::HalfMessages => 20,
            Attack::AckFlood => 100_000,
            Attack::ZeroLength | Attack::CommandFlood | Attack::CreateStreamFlood | Attack::WsGarbage => 10_000,
            Attack::WhepManyMlines => 10_000,
            Attack::UserControlGarbage => 2_000,
            Attack::ConnectionFlood | Attack::HandshakeFlood | Attack::MetadataFlood | Attack::HeaderBomb => 1_000,
            Attack::Slowloris => 100,
            Attack::PublishCycles => 200,
            Attack::WhepFlood => 500,
            Attack::UdpGarbage => 3_000,
            _ => 1,
        }
    }

    /// What the target must offer for it.
    pub fn capability(self) -> Capability {
        match self {
            Attack::WhepHugeBody
            | Attack::WhepManyMlines
            | Attack::WhepFlood
            | Attack::HeaderBomb
            | Attack::UdpGarbage
            | Attack::NackStorm
            | Attack::DeafWebrtcViewer => Capability::Whep,
            Attack::WsHugeMessage | Attack::WsGarbage => Capability::WebSocket,
            Attack::PublishCycles | Attack::MetadataFlood | Attack::BadSequenceHeaders | Attack::TimestampChaos => {
                Capability::RtmpPublish
            }
            Attack::SlowViewer => Capability::RtmpPlay,
            _ => Capability::Rtmp,
        }
    }

    /// Whether it opens more connections than a server may allow one
    /// address (100 and more), and its case then checks that a new client
    /// is still served: the attacker needs an address the case's other
    /// clients do not use, or a per-address limit, which is right to refuse
    /// them too, would read as the server shutting everyone out.
    pub fn outnumbers_one_host(self) -> bool {
        matches!(
            self,
            Attack::ConnectionFlood | Attack::HandshakeFlood | Attack::Slowloris
        )
    }

    /// Whether it needs a `stream` (the healthy stream it aims at).
    pub fn needs_stream(self) -> bool {
        matches!(
            self,
            Attack::SlowViewer | Attack::WhepFlood | Attack::UdpGarbage | Attack::NackStorm | Attack::DeafWebrtcViewer
        )
    }
}

/// Where an attack is aimed.
pub struct Aim {
    /// The RTMP server.
    pub rtmp: Option<SocketAddr>,
    /// The RTMP URL of the target's application (`rtmp://host:port/app`).
    pub tc_url: String,
    /// The application.
    pub app: String,
    /// The WHEP URL of the step's stream (or of a made-up one).
    pub whep: Option<String>,
    /// The WebSocket URL.
    pub ws: Option<String>,
    /// The step's stream, as the target knows it.
    pub stream: String,
    /// A name of the attacker's own.
    pub own_stream: String,
    /// Where the attack comes from ([`crate::target::TargetSpec::attacker_address`]);
    /// `None`: wherever the routing table says, as the other clients.
    pub from: Option<IpAddr>,
}

/// What an attack keeps open after its step.
#[derive(Default)]
pub struct Held {
    writers: Vec<OwnedWriteHalf>,
    clients: Vec<RtmpClient>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Held {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// How an attack went, from the attacker's side.
pub struct Report {
    /// The server closed every connection the attack opened (none: false).
    pub closed: bool,
    /// What was sent and what came back, in a line for the log.
    pub summary: String,
    /// What stays open.
    pub held: Held,
}

/// Makes the attack, watches its connections for `within`, and reports.
pub async fn launch(attack: Attack, count: Option<usize>, aim: &Aim, within: Duration) -> Report {
    let count = count.unwrap_or_else(|| attack.default_count());
    let result = match attack.capability() {
        Capability::Whep if matches!(attack, Attack::NackStorm | Attack::DeafWebrtcViewer) => match aim.whep.clone() {
            Some(url) => match http_client(aim.from) {
                Ok(http) => lossy_viewer(attack, &url, &http, within).await,
                Err(error) => Err(error),
            },
            None => Err("the target has no WHEP URL".into()),
        },
        Capability::Whep => http_attack(attack, count, aim).await,
        Capability::WebSocket => ws_attack(attack, count, aim, within).await,
        _ => match aim.rtmp {
            Some(addr) => rtmp_attack(attack, count, addr, aim, within).await,
            None => Err("the target has no RTMP URL".into()),
        },
    };
    // An attack the server refused before it was made (its connection
    // refused, reset or closed at a per-address limit, or a server that is
    // down) is an answer: the connection was closed. `survives` tells the
    // two apart.
    result.unwrap_or_else(|error| Report {
        closed: true,
        summary: format!("the attacker was refused or dropped before the attack was made: {error}"),
        held: Held::default(),
    })
}

// ---------------------------------------------------------------- RTMP

/// A connection whose answers a task reads and counts (so that a server
/// that answers never blocks on the attacker), until the server closes it.
struct Conn {
    writer: OwnedWriteHalf,
    drained: Arc<Drained>,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct Drained {
    bytes: AtomicU64,
    closed: AtomicBool,
}

impl Conn {
    fn new(stream: TcpStream) -> Conn {
        let (mut reader, writer) = stream.into_split();
        let drained = Arc::new(Drained::default());
        let seen = drained.clone();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        seen.bytes.fetch_add(n as u64, Ordering::Relaxed);
                    }
                }
            }
            seen.closed.store(true, Ordering::Relaxed);
        });
        Conn { writer, drained, task }
    }

    /// Sends `bytes`; false when the server had closed the connection.
    async fn send(&mut self, bytes: &[u8]) -> bool {
        self.writer.write_all(bytes).await.is_ok()
    }

    /// Sends `messages` chunked by `encoder`, `batch` at a time; false
    /// when the server closed the connection before all went out.
    async fn send_messages(&mut self, encoder: &mut ChunkEncoder, messages: &[RawMessage], batch: usize) -> bool {
        for part in messages.chunks(batch) {
            if !self.send(&payload::chunks(encoder, part)).await {
                return false;
            }
        }
        true
    }

    fn closed(&self) -> bool {
        self.drained.closed.load(Ordering::Relaxed)
    }
}

/// A TCP connection to `addr`, from 127.0.0.2 when `addr` is on the IPv4
/// loopback network.
async fn dial(addr: SocketAddr, from: Option<IpAddr>) -> Result<TcpStream, String> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(|e| e.to_string())?;
    if let Some(from) = from {
        socket.bind(SocketAddr::new(from, 0)).map_err(|e| e.to_string())?;
    }
    timeout(Duration::from_secs(5), socket.connect(addr))
        .await
        .map_err(|_| format!("TCP connect to {addr}: no answer within 5 s"))?
        .map_err(|e| format!("TCP connect to {addr}: {e}"))
}

/// The simple handshake on `stream` (C0C1, S0S1S2, C2).
pub(super) async fn shake(stream: &mut TcpStream) -> Result<(), String> {
    let c0c1 = crate::handshake::client_c0c1(crate::handshake::ClientHandshake::Simple, 0);
    stream.write_all(&c0c1).await.map_err(|e| e.to_string())?;
    let mut s0s1s2 = vec![0u8; 1 + 2 * 1536];
    timeout(Duration::from_secs(5), stream.read_exact(&mut s0s1s2))
        .await
        .map_err(|_| "no S0S1S2 within 5 s".to_string())?
        .map_err(|e| e.to_string())?;
    stream.write_all(&s0s1s2[1..1537]).await.map_err(|e| e.to_string())
}

/// A connection that has completed the handshake.
async fn shaken(addr: SocketAddr, from: Option<IpAddr>) -> Result<TcpStream, String> {
    let mut stream = dial(addr, from).await?;
    shake(&mut stream).await?;
    Ok(stream)
}

/// A connection that has completed the handshake and sent connect (not
/// waiting for its answer).
async fn connected(addr: SocketAddr, aim: &Aim) -> Result<(Conn, ChunkEncoder), String> {
    let mut conn = Conn::new(shaken(addr, aim.from).await?);
    let mut encoder = ChunkEncoder::new();
    let connect = payload::connect(&aim.app, &aim.tc_url);
    conn.send(&payload::chunks(&mut encoder, &[connect])).await;
    Ok((conn, encoder))
}

/// An encoder client connected to the target's application, from the
/// attacker's address.
async fn client(addr: SocketAddr, aim: &Aim) -> Result<RtmpClient, String> {
    let mut client = RtmpClient::over(dial(addr, aim.from).await?, ClientProfile::encoder())
        .await
        .map_err(|e| e.to_string())?;
    client.connect(&aim.tc_url, vec![]).await.map_err(|e| e.to_string())?;
    Ok(client)
}

/// Waits until every connection is closed or `within` has passed; how
/// many were closed and the bytes they got.
async fn watch(conns: &[Conn], within: Duration) -> (usize, u64) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline && !conns.iter().all(Conn::closed) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let closed = conns.iter().filter(|c| c.closed()).count();
    let bytes = conns.iter().map(|c| c.drained.bytes.load(Ordering::Relaxed)).sum();
    (closed, bytes)
}

/// The report on connections that sent `what`.
async fn conclude(conns: Vec<Conn>, what: String, within: Duration) -> Report {
    let (closed, bytes) = watch(&conns, within).await;
    let total = conns.len();
    let summary = format!(
        "{what}; the server closed {closed} of {total} connection{} within {:.1} s and sent {bytes} bytes",
        if total == 1 { "" } else { "s" },
        within.as_secs_f64()
    );
    let mut held = Held::default();
    for conn in conns {
        held.writers.push(conn.writer);
        held.tasks.push(conn.task);
    }
    Report {
        closed: closed == total && total > 0,
        summary,
        held,
    }
}

async fn rtmp_attack(
    attack: Attack,
    count: usize,
    addr: SocketAddr,
    aim: &Aim,
    within: Duration,
) -> Result<Report, String> {
    let mut rng = rand::rngs::StdRng::from_entropy();
    let one = |conn: Conn, what: String| conclude(vec![conn], what, within);
    Ok(match attack {
        Attack::Noise => {
            let mut conn = Conn::new(dial(addr, aim.from).await?);
            let mut noise = vec![3u8];
            noise.extend(payload::noise(&mut rng, 64 * 1024));
            conn.send(&noise).await;
            one(conn, "C0 and 64 KiB of random bytes".into()).await
        }
        Attack::NoiseAfterHandshake => {
            let mut conn = Conn::new(shaken(addr, aim.from).await?);
            conn.send(&payload::noise(&mut rng, 64 * 1024)).await;
            one(conn, "the handshake, then 64 KiB of random bytes".into()).await
        }
        Attack::ChunkSizeTopBit => {
            let mut conn = Conn::new(shaken(addr, aim.from).await?);
            let mut encoder = ChunkEncoder::new();
            let mut bytes = payload::set_chunk_size(0x8000_0400).to_vec();
            bytes.extend(payload::chunks(
                &mut encoder,
                &[payload::connect(&aim.app, &aim.tc_url)],
            ));
            conn.send(&bytes).await;
            one(conn, "Set Chunk Size 0x80000400, then connect".into()).await
        }
        Attack::AmfDepth => {
            let mut conn = Conn::new(shaken(addr, aim.from).await?);
            let mut encoder = ChunkEncoder::new();
            let message = RawMessage {
                csid: 3,
                timestamp: 0,
                type_id: 20,
                stream_id: 0,
                payload: payload::nested_connect(count),
            };
            let bytes = payload::chunks(&mut encoder, &[message]);
            conn.send(&bytes).await;
            let what = format!("a connect of {} bytes nesting {count} AMF0 objects", bytes.len());
            one(conn, what).await
        }
        Attack::AmfLengthBomb => {
            let (mut conn, mut encoder) = connected(addr, aim).await?;
            let bombs = payload::length_bombs();
            conn.send(&payload::chunks(&mut encoder, &bombs)).await;
            one(
                conn,
                format!("connect, then {} commands announcing 4 GiB values", bombs.len()),
            )
            .await
        }
        Attack::CsidFlood => {
            let mut conn = Conn::new(shaken(addr, aim.from).await?);
            conn.send(&payload::csid_flood(count)).await;
            one(
                conn,
                format!("first chunks of 4 KiB messages on {count} chunk stream ids"),
            )
            .await
        }
        Attack::HalfMessages => {
            let mut conns = Vec::new();
            let half = payload::half_message(8_000_000);
            for _ in 0..count {
                let mut conn = Conn::new(shaken(addr, aim.from).await?);
                conn.send(&half).await;
                conns.push(conn);
            }
            let what = format!(
                "{count} connections, each {} bytes of an 8,000,000-byte message",
                half.len()
            );
            conclude(conns, what, within).await
        }
        Attack::AckFlood => {
            let (mut conn, mut encoder) = connected(addr, aim).await?;
            let acks: Vec<RawMessage> = (0..count as u32)
                .map(|i| payload::control(3, &i.wrapping_mul(4096).to_be_bytes()))
                .collect();
            let sent = conn.send_messages(&mut encoder, &acks, 1000).await;
            let what = format!("connect, then {count} Acknowledgements{}", cut_short(sent));
            one(conn, what).await
        }
        Attack::ZeroLength => {
            let (mut conn, mut encoder) = connected(addr, aim).await?;
            let types = [8u8, 9, 18, 20, 15, 17, 22, 4, 3, 5, 6];
            let messages: Vec<RawMessage> = (0..count)
                .map(|i| RawMessage {
                    csid: 4,
                    timestamp: i as u32,
                    type_id: types[i % types.len()],
                    stream_id: (i % 2) as u32,
                    payload: Bytes::new(),
                })
                .collect();
            let sent = conn.send_messages(&mut encoder, &messages, 1000).await;
            let what = format!(
                "connect, then {count} zero-length messages of 11 types{}",
                cut_short(sent)
            );
            one(conn, what).await
        }
        Attack::UserControlGarbage => {
            let (mut conn, mut encoder) = connected(addr, aim).await?;
            let messages: Vec<RawMessage> = (0..count)
                .map(|_| {
                    let mut body = vec![0u8; rng.gen_range(0..4)];
                    rng.fill_bytes(&mut body);
                    let mut event = rng.gen_range(8u16..=u16::MAX).to_be_bytes().to_vec();
                    event.extend(body);
                    payload::control(4, &event)
                })
                .collect();
            let sent = conn.send(&payload::chunks(&mut encoder, &messages)).await;
            let what = format!(
                "connect, then {count} User Control messages of unknown events{}",
                cut_short(sent)
            );
            one(conn, what).await
        }
        Attack::CommandFlood | Attack::CreateStreamFlood => {
            let (mut conn, mut encoder) = connected(addr, aim).await?;
            let name = match attack {
                Attack::CommandFlood => "noSuchMethod",
                _ => "createStream",
            };
            let commands: Vec<RawMessage> = (0..count).map(|i| payload::command(name, 2.0 + i as f64, 0)).collect();
            let sent = conn.send_messages(&mut encoder, &commands, 500).await;
            let what = format!("connect, then {count} {name} commands{}", cut_short(sent));
            one(conn, what).await
        }
        Attack::WrongStreamIds => {
            let (mut conn, mut encoder) = connected(addr, aim).await?;
            let messages = payload::wrong_stream_ids(&aim.own_stream);
            let sent = conn.send(&payload::chunks(&mut encoder, &messages)).await;
            let what = format!(
                "connect, then {} media, data and command messages on stream ids never created{}",
                messages.len(),
                cut_short(sent)
            );
            one(conn, what).await
        }
        Attack::ConnectionFlood | Attack::HandshakeFlood => {
            let handshake = attack == Attack::HandshakeFlood;
            let opened = futures_util::stream::iter(0..count)
                .map(|_| async move {
                    let mut stream = dial(addr, aim.from).await.ok()?;
                    if handshake {
                        shake(&mut stream).await.ok()?;
                    }
                    Some(Conn::new(stream))
                })
                .buffer_unordered(64)
                .collect::<Vec<_>>()
                .await;
            let refused = opened.iter().filter(|c| c.is_none()).count();
            let conns: Vec<Conn> = opened.into_iter().flatten().collect();
            let what = format!(
                "{count} connections{} ({refused} refused or not answered)",
                if handshake {
                    " completing the handshake, then silent"
                } else {
                    " sending nothing"
                }
            );
            conclude(conns, what, within).await
        }
        Attack::DeadAfterConnect => {
            let (conn, _) = connected(addr, aim).await?;
            one(
                conn,
                "connect, then nothing: no answer to a PingRequest, no other message, no FIN".into(),
            )
            .await
        }
        Attack::Slowloris => {
            let mut conns = Vec::new();
            for _ in 0..count {
                if let Ok(stream) = dial(addr, aim.from).await {
                    conns.push(Conn::new(stream));
                }
            }
            let c0c1 = crate::handshake::client_c0c1(crate::handshake::ClientHandshake::Simple, 0);
            let deadline = Instant::now() + within;
            let mut sent = 0;
            while Instant::now() < deadline && sent < c0c1.len() {
                for conn in &mut conns {
                    conn.send(&c0c1[sent..=sent]).await;
                }
                sent += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let what = format!(
                "{} connections sending C0C1 a byte every 200 ms ({sent} bytes each)",
                conns.len()
            );
            conclude(conns, what, Duration::ZERO).await
        }
        Attack::PublishCycles => {
            let mut started = 0;
            let mut failed = None;
            for _ in 0..count {
                let cycle = async {
                    let mut publisher = client(addr, aim).await?;
                    let id = publisher.create_stream().await.map_err(|e| e.to_string())?;
                    let status = publisher
                        .publish(id, &aim.own_stream)
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok::<_, String>(status.code == media::netstatus::code::PUBLISH_START)
                };
                match timeout(Duration::from_secs(5), cycle).await {
                    Ok(Ok(true)) => started += 1,
                    Ok(Ok(false)) => {}
                    Ok(Err(error)) => failed = Some(error),
                    Err(_) => failed = Some("a cycle took over 5 s".into()),
                }
            }
            let mut summary = format!("{count} connections in turn published one name and left: {started} started");
            if let Some(error) = failed {
                summary.push_str(&format!("; the last failure: {error}"));
            }
            Report {
                closed: false,
                summary,
                held: Held::default(),
            }
        }
        Attack::SlowViewer => {
            let socket = match addr {
                SocketAddr::V4(_) => TcpSocket::new_v4(),
                SocketAddr::V6(_) => TcpSocket::new_v6(),
            }
            .map_err(|e| e.to_string())?;
            socket.set_recv_buffer_size(4096).map_err(|e| e.to_string())?;
            if let Some(from) = aim.from {
                socket.bind(SocketAddr::new(from, 0)).map_err(|e| e.to_string())?;
            }
            let stream = socket.connect(addr).await.map_err(|e| e.to_string())?;
            let mut viewer = RtmpClient::over(stream, ClientProfile::encoder())
                .await
                .map_err(|e| e.to_string())?;
            viewer.connect(&aim.tc_url, vec![]).await.map_err(|e| e.to_string())?;
            let id = viewer.create_stream().await.map_err(|e| e.to_string())?;
            let status = viewer.play(id, &aim.stream).await.map_err(|e| e.to_string())?;
            tokio::time::sleep(within).await;
            let mut held = Held::default();
            held.clients.push(viewer);
            Report {
                closed: false,
                summary: format!(
                    "a player of {} (answered {}) that reads nothing more, for {:.1} s",
                    aim.stream,
                    status.code,
                    within.as_secs_f64()
                ),
                held,
            }
        }
        Attack::MetadataFlood | Attack::BadSequenceHeaders | Attack::TimestampChaos => {
            let mut publisher = client(addr, aim).await?;
            let id = publisher.create_stream().await.map_err(|e| e.to_string())?;
            let status = publisher
                .publish(id, &aim.own_stream)
                .await
                .map_err(|e| e.to_string())?;
            let messages = match attack {
                Attack::MetadataFlood => payload::metadata_flood(count),
                Attack::BadSequenceHeaders => payload::bad_sequence_headers(&mut rng),
                _ => payload::timestamp_chaos(),
            };
            let mut sent = 0;
            for (type_id, timestamp, body) in &messages {
                if publisher
                    .send_media(id, *type_id, *timestamp, body.clone())
                    .await
                    .is_err()
                {
                    break;
                }
                sent += 1;
            }
            let what = match attack {
                Attack::MetadataFlood => "onMetaData messages of 64 KiB",
                Attack::BadSequenceHeaders => "messages after garbage AVC and AAC sequence headers",
                _ => "media messages whose timestamps jump back, to 0xFFFFFFFF and to 0",
            };
            tokio::time::sleep(within).await;
            let closed = publisher
                .next(Duration::from_millis(10))
                .await
                .is_err_and(|e| !matches!(e, crate::client::ClientError::Timeout { .. }));
            let mut held = Held::default();
            held.clients.push(publisher);
            Report {
                closed,
                summary: format!(
                    "a publisher (answered {}) sent {sent} of {} {what}",
                    status.code,
                    messages.len()
                ),
                held,
            }
        }
        _ => return Err(format!("{attack:?} is not an RTMP attack")),
    })
}

/// ", cut short: the server closed the connection" when not everything went out.
fn cut_short(sent: bool) -> &'static str {
    if sent {
        ""
    } else {
        " (cut short: the connection was closed)"
    }
}

// ---------------------------------------------------------- HTTP, UDP

/// An HTTP client from the attacker's address `from`.
fn http_client(from: Option<IpAddr>) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .redirect(reqwest::redirect::Policy::none());
    if let Some(from) = from {
        builder = builder.local_address(from);
    }
    builder.build().map_err(|e| e.to_string())
}

/// What an HTTP attempt got: its status, or how it failed.
fn outcome(result: Result<reqwest::Response, reqwest::Error>) -> String {
    match result {
        // At capacity, WHIP and WHEP servers may say when to try again.
        Ok(response)
            if matches!(
                response.status(),
                reqwest::StatusCode::SERVICE_UNAVAILABLE | reqwest::StatusCode::TOO_MANY_REQUESTS
            ) =>
        {
            let status = response.status().as_u16();
            match response.headers().get("retry-after").and_then(|v| v.to_str().ok()) {
                Some(after) => format!("{status} (Retry-After: {})", after.chars().take(32).collect::<String>()),
                None => format!("{status} (no Retry-After)"),
            }
        }
        Ok(response) => response.status().as_u16().to_string(),
        Err(error) if error.is_timeout() => "no answer within 20 s".into(),
        Err(error) if error.is_connect() => "connection refused".into(),
        Err(_) => "connection closed without an answer".into(),
    }
}

/// A WHEP player behind a relay that loses RTP on its way to the player:
/// every second packet ([`Attack::NackStorm`]) or all of them
/// ([`Attack::DeafWebrtcViewer`]). The relay goes to the server's UDP
/// address, learnt from the answer to an offer made first.
async fn lossy_viewer(attack: Attack, url: &str, http: &reqwest::Client, within: Duration) -> Result<Report, String> {
    use crate::webrtc::relay::{Loss, UdpRelay};
    use crate::webrtc::{PlayerOptions, Signalling, WebRtcPlayer};
    let probe = Offer::new(Endpoint::Whep, &OfferShape::default())
        .await
        .map_err(|e| e.to_string())?;
    let answer = http
        .post(url)
        .header("Content-Type", "application/sdp")
        .body(probe.sdp().to_string())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let location = answer
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .map(str::to_string);
    let server = crate::webrtc::relay::first_udp_candidate(&answer.text().await.map_err(|e| e.to_string())?)
        .ok_or("the WHEP answer names no UDP candidate")?;
    if let Some(session) = location.and_then(|l| reqwest::Url::parse(url).and_then(|u| u.join(&l)).ok()) {
        let _ = http.delete(session).send().await;
    }
    let every = match attack {
        Attack::NackStorm => 2,
        _ => 1,
    };
    let relay = UdpRelay::start(server, Loss::NONE).await.map_err(|e| e.to_string())?;
    let options = PlayerOptions {
        via: Some(relay.addr()),
        ..PlayerOptions::default()
    };
    let player = WebRtcPlayer::play(Signalling::url(url), options)
        .await
        .map_err(|e| e.to_string())?;
    // Connected first (ICE, DTLS), then the loss.
    let deadline = Instant::now() + within;
    while player.report().video.rtp_packets == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    relay.set_loss(Loss {
        every,
        payload_type: None,
        all_of: None,
    });
    // A storm asks for a keyframe every 100 ms besides its NACKs.
    while Instant::now() < deadline {
        if attack == Attack::NackStorm {
            let _ = player.request_keyframe().await;
        }
        tokio::time::sleep(Duration::from_millis(100).min(deadline.saturating_duration_since(Instant::now()))).await;
    }
    let report = player.report();
    let summary = format!(
        "a WHEP player behind a relay losing {} of the RTP sent to it, for {:.1} s: {} video packets got through, {} keyframe requests sent",
        if every == 2 { "every second packet" } else { "all" },
        within.as_secs_f64(),
        report.video.rtp_packets,
        report.keyframe_requests_sent
    );
    let mut player = player;
    let _ = player.stop().await;
    drop(relay);
    Ok(Report {
        closed: false,
        summary,
        held: Held::default(),
    })
}

async fn http_attack(attack: Attack, count: usize, aim: &Aim) -> Result<Report, String> {
    let url = aim.whep.clone().ok_or("the target has no WHEP URL")?;
    let http = http_client(aim.from)?;
    let post = |body: String| {
        http.post(&url)
            .header("Content-Type", "application/sdp")
            .body(body)
            .send()
    };
    let summary = match attack {
        Attack::WhepHugeBody => {
            let body = payload::huge_offer(10 * 1000 * 1000);
            format!("a WHEP offer of 10 MB: {}", outcome(post(body).await))
        }
        Attack::WhepManyMlines => {
            let body = payload::many_mlines(count);
            let size = body.len();
            format!(
                "a WHEP offer of {count} m-lines ({size} bytes): {}",
                outcome(post(body).await)
            )
        }
        Attack::HeaderBomb => {
            let mut request = http.post(&url).header("Content-Type", "application/sdp");
            let value = "x".repeat(1024);
            for i in 0..count {
                request = request.header(format!("x-bomb-{i}"), &value);
            }
            let answer = request.body("v=0\r\n").send().await;
            format!("a WHEP POST with {count} header fields of 1 KiB: {}", outcome(answer))
        }
        Attack::WhepFlood => {
            let offer = Offer::new(Endpoint::Whep, &OfferShape::default())
                .await
                .map_err(|e| e.to_string())?;
            let sdp = offer.sdp().to_string();
            let answers = futures_util::future::join_all((0..count).map(|_| post(sdp.clone()))).await;
            let mut tally = std::collections::BTreeMap::<String, usize>::new();
            let mut sessions = Vec::new();
            for answer in answers {
                if let Ok(answer) = &answer {
                    if let Some(location) = answer.headers().get("location").and_then(|l| l.to_str().ok()) {
                        sessions.push(location.to_string());
                    }
                }
                *tally.entry(outcome(answer)).or_default() += 1;
            }
            let ended = futures_util::future::join_all(sessions.iter().map(|location| {
                let session = reqwest::Url::parse(&url).and_then(|base| base.join(location));
                let http = http.clone();
                async move {
                    match session {
                        Ok(session) => http.delete(session).send().await.is_ok(),
                        Err(_) => false,
                    }
                }
            }))
            .await;
            let tally: Vec<String> = tally.iter().map(|(status, n)| format!("{n} × {status}")).collect();
            format!(
                "{count} WHEP offers at once: {}; {} sessions ended with DELETE",
                tally.join(", "),
                ended.iter().filter(|ok| **ok).count()
            )
        }
        Attack::UdpGarbage => {
            let offer = Offer::new(Endpoint::Whep, &OfferShape::default())
                .await
                .map_err(|e| e.to_string())?;
            let answer = post(offer.sdp().to_string()).await.map_err(|e| e.to_string())?;
            let status = answer.status();
            let location = answer
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .map(str::to_string);
            let sdp = answer.text().await.map_err(|e| e.to_string())?;
            let port = crate::webrtc::relay::first_udp_candidate(&sdp)
                .ok_or_else(|| format!("the WHEP answer ({status}) names no UDP candidate to send datagrams to"))?;
            let socket = UdpSocket::bind(SocketAddr::new(
                aim.from.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                0,
            ))
            .await
            .map_err(|e| e.to_string())?;
            let mut rng = rand::rngs::StdRng::from_entropy();
            let mut sent = 0;
            for i in 0..count {
                let datagram = payload::datagram(&mut rng, i);
                if socket.send_to(&datagram, port).await.is_ok() {
                    sent += 1;
                }
                if i % 100 == 99 {
                    tokio::task::yield_now().await;
                }
            }
            if let Some(location) = location {
                if let Ok(session) = reqwest::Url::parse(&url).and_then(|base| base.join(&location)) {
                    let _ = http.delete(session).send().await;
                }
            }
            format!(
                "{sent} datagrams of noise, STUN, DTLS and RTP look-alikes to {port}, the UDP port of a WHEP session"
            )
        }
        _ => return Err(format!("{attack:?} is not an HTTP attack")),
    };
    Ok(Report {
        closed: false,
        summary,
        held: Held::default(),
    })
}

async fn ws_attack(attack: Attack, count: usize, aim: &Aim, within: Duration) -> Result<Report, String> {
    use tokio_tungstenite::tungstenite::Message as WsMessage;
    let url = aim.ws.clone().ok_or("the target has no WebSocket URL")?;
    let (socket, _) = tokio_tungstenite::connect_async(&url)
        .await
        .map_err(|e| format!("WebSocket connect to {url}: {e}"))?;
    let (mut sink, mut stream) = socket.split();
    let answers = Arc::new(AtomicU64::new(0));
    let counted = answers.clone();
    let reader = tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            if message.is_close() {
                break;
            }
            counted.fetch_add(1, Ordering::Relaxed);
        }
    });
    // Sending stops at the first error (the server closed) or when the
    // server has read nothing more for `within`.
    let sending = async {
        match attack {
            Attack::WsHugeMessage => {
                let text = format!(r#"{{"type":"connect","appKey":"{}"}}"#, "a".repeat(10 * 1000 * 1000));
                let sent = sink.send(WsMessage::text(text)).await.is_ok();
                ("a WebSocket text message of 10 MB".to_string(), sent)
            }
            _ => {
                let mut rng = rand::rngs::StdRng::from_entropy();
                for i in 0..count {
                    let garbage = payload::ws_garbage(&mut rng, i);
                    if sink.send(WsMessage::text(garbage)).await.is_err() {
                        return (format!("{i} of {count} malformed WebSocket messages"), false);
                    }
                }
                (format!("{count} malformed WebSocket messages"), true)
            }
        }
    };
    let (what, sent, stalled) = match timeout(within, sending).await {
        Ok((what, sent)) => (what, sent, false),
        Err(_) => (format!("{attack:?}: the server stopped reading"), false, true),
    };
    let ended = timeout(within, async {
        while !reader.is_finished() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .is_ok();
    let closed = ended || (!sent && !stalled);
    let mut held = Held::default();
    held.tasks.push(reader);
    let how = match stalled {
        true => format!(" for {:.1} s", within.as_secs_f64()),
        false => cut_short(sent).to_string(),
    };
    Ok(Report {
        closed,
        summary: format!(
            "{what}{how}; {} messages came back; the server {} the connection",
            answers.load(Ordering::Relaxed),
            if closed { "closed" } else { "kept" }
        ),
        held,
    })
}

/// The payloads, as pure functions.
pub mod payload {
    use super::*;

    /// `len` random bytes.
    pub fn noise(rng: &mut impl RngCore, len: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; len];
        rng.fill_bytes(&mut bytes);
        bytes
    }

    /// `messages` chunked by `encoder`.
    pub fn chunks(encoder: &mut ChunkEncoder, messages: &[RawMessage]) -> BytesMut {
        let mut out = BytesMut::new();
        for message in messages {
            encoder.encode(message, &mut out);
        }
        out
    }

    /// A protocol control or User Control message (`type_id`) with `body`.
    pub fn control(type_id: u8, body: &[u8]) -> RawMessage {
        RawMessage {
            csid: 2,
            timestamp: 0,
            type_id,
            stream_id: 0,
            payload: Bytes::copy_from_slice(body),
        }
    }

    /// Set Chunk Size `size`, as bytes on chunk stream 2.
    pub fn set_chunk_size(size: u32) -> BytesMut {
        chunks(&mut ChunkEncoder::new(), &[control(1, &size.to_be_bytes())])
    }

    fn amf0(name: &str, tid: f64, object: Value, args: Vec<Value>) -> Bytes {
        let command = Command {
            encoding: ObjectEncoding::Amf0,
            name: name.into(),
            transaction_id: tid,
            command_object: object,
            args,
        };
        Message::Command(command).encode().1
    }

    /// connect to `app`.
    pub fn connect(app: &str, tc_url: &str) -> RawMessage {
        let object = Value::object([
            ("app", Value::from(app)),
            ("tcUrl", Value::from(tc_url)),
            ("flashVer", Value::from("FMLE/3.0 (compatible; conformance attack)")),
        ]);
        RawMessage {
            csid: 3,
            timestamp: 0,
            type_id: 20,
            stream_id: 0,
            payload: amf0("connect", 1.0, object, vec![]),
        }
    }

    /// The AMF0 command `name` with no arguments, on `stream_id`.
    pub fn command(name: &str, tid: f64, stream_id: u32) -> RawMessage {
        RawMessage {
            csid: if stream_id == 0 { 3 } else { 8 },
            timestamp: 0,
            type_id: 20,
            stream_id,
            payload: amf0(name, tid, Value::Null, vec![]),
        }
    }

    /// A connect command whose object nests `depth` objects (`{a: {a: …}}`),
    /// written by hand: no AMF encoder recurses this deep.
    pub fn nested_connect(depth: usize) -> Bytes {
        let mut out = vec![0x02, 0x00, 0x07];
        out.extend_from_slice(b"connect");
        out.push(0x00);
        out.extend_from_slice(&1.0f64.to_be_bytes());
        out.push(0x03);
        for _ in 0..depth {
            out.extend_from_slice(&[0x00, 0x01, b'a', 0x03]);
        }
        for _ in 0..=depth {
            out.extend_from_slice(&[0x00, 0x00, 0x09]);
        }
        Bytes::from(out)
    }

    /// Commands whose values announce 0xFFFFFFFF bytes or elements.
    pub fn length_bombs() -> Vec<RawMessage> {
        let head = |name: &str| {
            let mut out = vec![0x02, 0x00, name.len() as u8];
            out.extend_from_slice(name.as_bytes());
            out.push(0x00);
            out.extend_from_slice(&2.0f64.to_be_bytes());
            out.push(0x05); // null command object
            out
        };
        let bomb = |marker: u8| {
            let mut out = head("releaseStream");
            out.push(marker);
            out.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
            out.extend_from_slice(b"abc");
            RawMessage {
                csid: 3,
                timestamp: 0,
                type_id: 20,
                stream_id: 0,
                payload: Bytes::from(out),
            }
        };
        // Long string, ECMA array, strict array.
        vec![bomb(0x0C), bomb(0x08), bomb(0x0A)]
    }

    /// The first chunk (128 bytes) of a 4096-byte video message on each
    /// of `count` chunk stream ids from 64 up (2- and 3-byte basic headers).
    pub fn csid_flood(count: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(count * 150);
        for i in 0..count {
            let id = i; // the chunk stream id less 64, as the basic header carries it
            if id < 256 {
                out.extend_from_slice(&[0x00, id as u8]);
            } else {
                out.push(0x01);
                out.extend_from_slice(&(id as u16).to_le_bytes());
            }
            out.extend_from_slice(&[0, 0, 0]); // timestamp
            out.extend_from_slice(&[0x00, 0x10, 0x00]); // length 4096
            out.push(9);
            out.extend_from_slice(&1u32.to_le_bytes());
            out.extend(std::iter::repeat_n(0x17, 128));
        }
        out
    }

    /// Set Chunk Size 65536, then the first half of a video message of
    /// `total` bytes on chunk stream 6.
    pub fn half_message(total: u32) -> Vec<u8> {
        const CHUNK: usize = 65536;
        let mut out = set_chunk_size(CHUNK as u32).to_vec();
        out.extend_from_slice(&[0x06, 0, 0, 0]);
        out.extend_from_slice(&total.to_be_bytes()[1..]);
        out.push(9);
        out.extend_from_slice(&1u32.to_le_bytes());
        let half = total as usize / 2;
        let mut written = 0;
        while written < half {
            if written > 0 {
                out.push(0xC6); // type 3 continuation, chunk stream 6
            }
            let n = CHUNK.min(half - written);
            out.extend(std::iter::repeat_n(0x27, n));
            written += n;
        }
        out
    }

    /// Audio, video, data and commands on stream ids nobody created.
    pub fn wrong_stream_ids(stream: &str) -> Vec<RawMessage> {
        let mut out = Vec::new();
        for stream_id in [7, 12345, u32::MAX >> 8, 0x00FF_FFFF] {
            out.push(RawMessage {
                csid: 4,
                timestamp: 0,
                type_id: 8,
                stream_id,
                payload: Bytes::from_static(&[0xAF, 0x01, 0x21, 0x10]),
            });
            out.push(RawMessage {
                csid: 6,
                timestamp: 0,
                type_id: 9,
                stream_id,
                payload: Bytes::from_static(&[0x17, 0x01, 0, 0, 0, 0, 0, 0, 1, 0x65]),
            });
            out.push(RawMessage {
                csid: 5,
                timestamp: 0,
                type_id: 18,
                stream_id,
                payload: Message::Command(Command {
                    encoding: ObjectEncoding::Amf0,
                    name: "@setDataFrame".into(),
                    transaction_id: 0.0,
                    command_object: Value::from("onMetaData"),
                    args: vec![],
                })
                .encode()
                .1,
            });
            for name in ["play", "publish", "deleteStream", "closeStream", "pause"] {
                let mut command = command(name, 0.0, stream_id);
                command.payload = amf0(name, 0.0, Value::Null, vec![Value::from(stream), Value::Number(-2.0)]);
                out.push(command);
            }
        }
        out
    }

    /// `count` onMetaData data messages of about 64 KiB each.
    pub fn metadata_flood(count: usize) -> Vec<(u8, u32, Bytes)> {
        let filler = "m".repeat(64 * 1024);
        let body = Message::Command(Command {
            encoding: ObjectEncoding::Amf0,
            name: "@setDataFrame".into(),
            transaction_id: 0.0,
            command_object: Value::from("onMetaData"),
            args: vec![Value::object([("filler", Value::from(filler.as_str()))])],
        })
        .encode()
        .1;
        (0..count).map(|i| (18, i as u32, body.clone())).collect()
    }

    /// An AVC sequence header and an AAC AudioSpecificConfig of random
    /// bytes, then frames of both.
    pub fn bad_sequence_headers(rng: &mut impl RngCore) -> Vec<(u8, u32, Bytes)> {
        let mut with = |head: &[u8], len: usize| {
            let mut body = head.to_vec();
            body.extend(noise(rng, len));
            Bytes::from(body)
        };
        let mut out = vec![
            (9, 0, with(&[0x17, 0x00, 0, 0, 0, 0x01], 40)),
            (8, 0, with(&[0xAF, 0x00], 5)),
            // A record that claims 31 SPS of 65535 bytes.
            (
                9,
                0,
                Bytes::from_static(&[0x17, 0x00, 0, 0, 0, 0x01, 0x42, 0, 0x1E, 0xFF, 0xFF, 0xFF, 0xFF]),
            ),
        ];
        for i in 1..=50u32 {
            out.push((9, i * 40, with(&[0x17, 0x01, 0, 0, 0, 0, 0, 0, 200], 200)));
            out.push((8, i * 40, with(&[0xAF, 0x01], 100)));
        }
        out
    }

    /// Valid-looking AAC and H.264 frames whose timestamps jump.
    pub fn timestamp_chaos() -> Vec<(u8, u32, Bytes)> {
        let audio = Bytes::from_static(&[0xAF, 0x01, 0x21, 0x10, 0x04, 0x60, 0x8C, 0x1C]);
        let video = Bytes::from_static(&[0x27, 0x01, 0, 0, 0, 0, 0, 0, 2, 0x41, 0x9A]);
        let times = [
            1000,
            40,
            0xFFFF_FFFF,
            0,
            0xFFFF_FF00,
            5,
            0x7FFF_FFFF,
            0x8000_0000,
            1000,
            999,
        ];
        times
            .iter()
            .flat_map(|&t| [(8, t, audio.clone()), (9, t, video.clone())])
            .collect()
    }

    /// An SDP offer padded with attribute lines to `size` bytes.
    pub fn huge_offer(size: usize) -> String {
        let mut sdp = String::from("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n");
        sdp.push_str("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:111 opus/48000/2\r\n");
        while sdp.len() < size {
            sdp.push_str("a=x-padding:0123456789012345678901234567890123456789012345678901234567890123\r\n");
        }
        sdp
    }

    /// An offer of `count` audio m-lines, one BUNDLE group.
    pub fn many_mlines(count: usize) -> String {
        let mut sdp = String::from("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE");
        for i in 0..count {
            sdp.push_str(&format!(" {i}"));
        }
        sdp.push_str("\r\na=ice-ufrag:attk\r\na=ice-pwd:attackattackattackattack\r\n");
        sdp.push_str("a=fingerprint:sha-256 ");
        sdp.push_str(&vec!["AB"; 32].join(":"));
        sdp.push_str("\r\na=setup:actpass\r\n");
        for i in 0..count {
            sdp.push_str(&format!(
                "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:{i}\r\na=recvonly\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\n"
            ));
        }
        sdp
    }

    /// Datagram number `i`: noise, then STUN-, DTLS- and RTP-looking
    /// ones in turn.
    pub fn datagram(rng: &mut impl RngCore, i: usize) -> Vec<u8> {
        let mut body = noise(rng, 20 + i % 1200);
        match i % 4 {
            1 => {
                // A STUN Binding request header with a bad length and attributes.
                body[..8].copy_from_slice(&[0x00, 0x01, 0xFF, 0xF0, 0x21, 0x12, 0xA4, 0x42]);
            }
            2 => {
                // A DTLS 1.2 handshake record that claims more than it has.
                body[..5].copy_from_slice(&[0x16, 0xFE, 0xFD, 0x00, 0x00]);
                body[11..13].copy_from_slice(&[0xFF, 0xFF]);
            }
            3 => {
                // RTP version 2 with random payload types, CSRC counts and extensions.
                body[0] = 0x80 | (body[0] & 0x1F);
            }
            _ => {}
        }
        body
    }

    /// Malformed WebSocket message number `i`.
    pub fn ws_garbage(rng: &mut impl RngCore, i: usize) -> String {
        match i % 6 {
            0 => "{".to_string(),
            1 => r#"{"type": 17}"#.to_string(),
            2 => r#"{"type":"publish","id":null,"stream":[],"sdp":{}}"#.to_string(),
            3 => format!(r#"{{"type":"stop","id":"{}"}}"#, "i".repeat(4096)),
            4 => r#"{"type":"room","method":"joinRoom"}"#.to_string(),
            _ => String::from_utf8_lossy(&noise(rng, 64)).into_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use media::rtmp::{ChunkDecoder, ChunkLimits};

    use super::payload::*;
    use super::*;

    #[test]
    fn a_csid_flood_names_each_chunk_stream_once() {
        let bytes = csid_flood(300);
        let mut decoder = ChunkDecoder::new(ChunkLimits {
            max_chunk_streams: 1000,
            ..ChunkLimits::default()
        });
        decoder.push(&bytes);
        // Nothing completes: every message is 4096 bytes and gets 128.
        assert!(matches!(decoder.next_message(), Ok(None)));
        assert_eq!(bytes.len(), 256 * (2 + 11 + 128) + 44 * (3 + 11 + 128));
    }

    #[test]
    fn a_half_message_is_half_of_what_its_header_announces() {
        let bytes = half_message(1_000_000);
        let mut decoder = ChunkDecoder::new(ChunkLimits::default());
        decoder.push(&bytes);
        let set = decoder.next_message().unwrap().unwrap();
        assert_eq!(set.type_id, 1);
        assert!(
            decoder.next_message().unwrap().is_none(),
            "the video message never completes"
        );
        assert_eq!(
            bytes.len(),
            16 + 12 + 500_000 + 7,
            "half the body, and 7 continuation headers"
        );
    }

    #[test]
    fn the_nested_connect_is_well_formed_amf_up_to_its_depth() {
        let shallow = nested_connect(3);
        let message = Message::decode(20, shallow).unwrap();
        let Message::Command(command) = message else { panic!() };
        assert_eq!(command.name, "connect");
        let mut depth = 0;
        let mut value = &command.command_object;
        while let Value::Object { properties, .. } = value {
            depth += 1;
            match properties.first() {
                Some((_, inner)) => value = inner,
                None => break,
            }
        }
        assert_eq!(depth, 4, "the command object and three inside it");
        assert_eq!(nested_connect(100_000).len(), 20 + 7 * 100_000 + 3);
    }

    #[test]
    fn many_m_lines_are_that_many() {
        let sdp = many_mlines(50);
        assert_eq!(sdp.matches("m=audio").count(), 50);
        assert!(huge_offer(100_000).len() >= 100_000);
    }
}
