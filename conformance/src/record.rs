//! Recording RTMP sessions: a TCP proxy between RTMP clients and an upstream
//! server that writes every session it carries to a pcapng file.
//!
//! The proxy passes bytes both ways untouched. The file shows each session
//! as one TCP connection from the client's address to the upstream's, as a
//! capture between the two would: Ethernet, IPv4 (IPv6 when either side is
//! IPv6, IPv4 addresses then mapped) and TCP headers are synthesized with
//! consistent sequence and acknowledgement numbers, a SYN / SYN-ACK / ACK
//! opening, data in segments of at most one Ethernet MSS with PSH, and a FIN
//! (acknowledged by the peer) when a side closes its half or the recording
//! stops. [`crate::capture`], the replay and Wireshark read it back.
//! Timestamps are nanoseconds (`if_tsresol` 9). Concurrent sessions go to
//! the same file, their packets interleaved as they happened.
//!
//! [`TcpSynth`] builds the packets of one connection without I/O;
//! [`Recorder`] is the tokio shell: it accepts clients, dials the upstream
//! for each, pumps both ways and hands packets to a writer thread.
//!
//! ```no_run
//! # async fn example() -> Result<(), conformance::record::RecordError> {
//! // Clients connect to port 1936; the server is on 1935; Ctrl-C ends it.
//! let summary = conformance::record::record(
//!     ([127, 0, 0, 1], 1936).into(),
//!     "rtmp://127.0.0.1:1935",
//!     std::path::Path::new("session.pcapng"),
//!     tokio::signal::ctrl_c(),
//! )
//! .await?;
//! println!("{} sessions, {} packets", summary.connections, summary.packets);
//! # Ok(()) }
//! ```

use std::borrow::Cow;
use std::future::Future;
use std::io::BufWriter;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use etherparse::PacketBuilder;
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::{DataLink, PcapError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::replay::TargetUrl;

/// Largest TCP payload per synthesized IPv4 segment (Ethernet MTU 1500).
pub const MSS_IPV4: usize = 1460;
/// Largest TCP payload per synthesized IPv6 segment.
pub const MSS_IPV6: usize = 1440;
/// The locally administered MAC address given to clients.
const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// The locally administered MAC address given to the upstream.
const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
/// The window every synthesized segment advertises.
const WINDOW: u16 = 65535;

/// Why recording failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The upstream is not `rtmp://host[:port]`.
    #[error("upstream {url:?}: {reason}")]
    BadUpstream {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The upstream host does not resolve.
    #[error("upstream {url:?}: cannot resolve the host: {source}")]
    Resolve {
        /// The URL given.
        url: String,
        /// The resolver's error.
        #[source]
        source: std::io::Error,
    },
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The output file could not be created.
    #[error("cannot create {path}: {source}")]
    Create {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Writing the pcapng failed.
    #[error("writing {path} failed: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The writer's error.
        #[source]
        source: PcapError,
    },
}

/// What a recording holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSummary {
    /// The pcapng written.
    pub path: PathBuf,
    /// Client connections proxied (and recorded).
    pub connections: usize,
    /// Client connections dropped because the upstream refused them (not recorded).
    pub upstream_failures: usize,
    /// Bytes clients sent.
    pub client_bytes: u64,
    /// Bytes the upstream sent.
    pub server_bytes: u64,
    /// Packets written.
    pub packets: u64,
}

/// Synthesizes the Ethernet frames of one TCP connection, client to server.
/// No I/O: each call returns the frames to write, in order.
#[derive(Debug, Clone)]
pub struct TcpSynth {
    client: SocketAddr,
    server: SocketAddr,
    /// Next sequence number of each side.
    client_seq: u32,
    server_seq: u32,
    client_fin: bool,
    server_fin: bool,
    client_bytes: u64,
    server_bytes: u64,
}

impl TcpSynth {
    /// A connection from `client` to `server` with these initial sequence
    /// numbers (the SYNs carry them).
    pub fn new(client: SocketAddr, server: SocketAddr, client_isn: u32, server_isn: u32) -> TcpSynth {
        TcpSynth {
            client,
            server,
            client_seq: client_isn,
            server_seq: server_isn,
            client_fin: false,
            server_fin: false,
            client_bytes: 0,
            server_bytes: 0,
        }
    }

    /// SYN, SYN-ACK and ACK.
    pub fn open(&mut self) -> Vec<Vec<u8>> {
        let syn = self.frame(true, self.client_seq, None, Flags::Syn, &[]);
        let syn_ack = self.frame(
            false,
            self.server_seq,
            Some(self.client_seq.wrapping_add(1)),
            Flags::Syn,
            &[],
        );
        self.client_seq = self.client_seq.wrapping_add(1);
        self.server_seq = self.server_seq.wrapping_add(1);
        let ack = self.frame(true, self.client_seq, Some(self.server_seq), Flags::None, &[]);
        vec![syn, syn_ack, ack]
    }

    /// Data from one side, in segments of at most one MSS.
    pub fn data(&mut self, from_client: bool, bytes: &[u8]) -> Vec<Vec<u8>> {
        let mss = if self.is_ipv4() { MSS_IPV4 } else { MSS_IPV6 };
        let mut frames = Vec::with_capacity(bytes.len() / mss + 1);
        for segment in bytes.chunks(mss) {
            let (seq, ack) = self.numbers(from_client);
            frames.push(self.frame(from_client, seq, Some(ack), Flags::Psh, segment));
            // TCP sequence numbers wrap; segments are at most one MSS.
            let advance = segment.len() as u32;
            if from_client {
                self.client_seq = self.client_seq.wrapping_add(advance);
                self.client_bytes += segment.len() as u64;
            } else {
                self.server_seq = self.server_seq.wrapping_add(advance);
                self.server_bytes += segment.len() as u64;
            }
        }
        frames
    }

    /// FIN from one side and the other side's ACK of it; nothing if that
    /// side already closed.
    pub fn fin(&mut self, from_client: bool) -> Vec<Vec<u8>> {
        let done = if from_client {
            &mut self.client_fin
        } else {
            &mut self.server_fin
        };
        if *done {
            return Vec::new();
        }
        *done = true;
        let (seq, ack) = self.numbers(from_client);
        let fin = self.frame(from_client, seq, Some(ack), Flags::Fin, &[]);
        if from_client {
            self.client_seq = self.client_seq.wrapping_add(1);
        } else {
            self.server_seq = self.server_seq.wrapping_add(1);
        }
        let (seq, ack) = self.numbers(!from_client);
        let ack_frame = self.frame(!from_client, seq, Some(ack), Flags::None, &[]);
        vec![fin, ack_frame]
    }

    /// Whether both sides sent their FIN.
    pub fn is_closed(&self) -> bool {
        self.client_fin && self.server_fin
    }

    /// Payload bytes the client and the server sent.
    pub fn bytes(&self) -> (u64, u64) {
        (self.client_bytes, self.server_bytes)
    }

    /// (sequence number, acknowledgement number) for a segment from one side.
    fn numbers(&self, from_client: bool) -> (u32, u32) {
        if from_client {
            (self.client_seq, self.server_seq)
        } else {
            (self.server_seq, self.client_seq)
        }
    }

    fn is_ipv4(&self) -> bool {
        self.client.is_ipv4() && self.server.is_ipv4()
    }

    /// One Ethernet frame.
    fn frame(&self, from_client: bool, seq: u32, ack: Option<u32>, flags: Flags, payload: &[u8]) -> Vec<u8> {
        let (src, dst, src_mac, dst_mac) = if from_client {
            (self.client, self.server, CLIENT_MAC, SERVER_MAC)
        } else {
            (self.server, self.client, SERVER_MAC, CLIENT_MAC)
        };
        let ethernet = PacketBuilder::ethernet2(src_mac, dst_mac);
        let ip = if self.is_ipv4() {
            ethernet.ipv4(ipv4_octets(src.ip()), ipv4_octets(dst.ip()), 64)
        } else {
            ethernet.ipv6(ipv6_octets(src.ip()), ipv6_octets(dst.ip()), 64)
        };
        let mut tcp = ip.tcp(src.port(), dst.port(), seq, WINDOW);
        if let Some(ack) = ack {
            tcp = tcp.ack(ack);
        }
        tcp = match flags {
            Flags::Syn => tcp.syn(),
            Flags::Psh => tcp.psh(),
            Flags::Fin => tcp.fin(),
            Flags::None => tcp,
        };
        let mut frame = Vec::with_capacity(tcp.size(payload.len()));
        // Writing to a Vec cannot fail, and payloads stay within one MSS, so
        // the IP length fields cannot overflow; an error would only lose
        // this frame from the file.
        if tcp.write(&mut frame, payload).is_err() {
            frame.clear();
        }
        frame
    }
}

/// The flag a synthesized segment carries besides ACK.
#[derive(Debug, Clone, Copy)]
enum Flags {
    Syn,
    Psh,
    Fin,
    None,
}

fn ipv4_octets(ip: IpAddr) -> [u8; 4] {
    match ip {
        IpAddr::V4(v4) => v4.octets(),
        // Only called when both ends are IPv4.
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or([0; 4], |v4| v4.octets()),
    }
}

fn ipv6_octets(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// A frame for the writer thread, with its capture time since the epoch.
type Packet = (Duration, Vec<u8>);

/// Writes the pcapng header (section, one Ethernet interface with
/// nanosecond timestamps).
fn start_file(path: &Path) -> Result<PcapNgWriter<BufWriter<std::fs::File>>, RecordError> {
    let file = std::fs::File::create(path).map_err(|source| RecordError::Create {
        path: path.to_path_buf(),
        source,
    })?;
    let write_error = |source| RecordError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut writer = PcapNgWriter::new(BufWriter::new(file)).map_err(write_error)?;
    let interface = InterfaceDescriptionBlock {
        linktype: DataLink::ETHERNET,
        snaplen: 0,
        options: vec![
            InterfaceDescriptionOption::IfName(Cow::Borrowed("rtmp-record")),
            InterfaceDescriptionOption::IfDescription(Cow::Borrowed(
                "sessions proxied by conformance::record, TCP headers synthesized",
            )),
            InterfaceDescriptionOption::IfTsResol(9),
        ],
    };
    writer.write_pcapng_block(interface).map_err(write_error)?;
    Ok(writer)
}

/// The writer thread: writes packets until every sender is gone, then
/// flushes. Returns how many packets it wrote.
fn write_packets(
    mut writer: PcapNgWriter<BufWriter<std::fs::File>>,
    packets: mpsc::Receiver<Packet>,
    path: PathBuf,
) -> Result<u64, RecordError> {
    let mut count = 0u64;
    for (timestamp, data) in packets {
        if data.is_empty() {
            continue;
        }
        let block = EnhancedPacketBlock {
            interface_id: 0,
            timestamp,
            original_len: data.len() as u32,
            data: Cow::Owned(data),
            options: vec![],
        };
        writer.write_pcapng_block(block).map_err(|source| RecordError::Write {
            path: path.clone(),
            source,
        })?;
        count += 1;
    }
    use std::io::Write;
    writer.get_mut().flush().map_err(|e| RecordError::Write {
        path,
        source: PcapError::IoError(e),
    })?;
    Ok(count)
}

/// The recording proxy. See the module docs.
pub struct Recorder {
    listener: TcpListener,
    upstream: SocketAddr,
    path: PathBuf,
    writer: PcapNgWriter<BufWriter<std::fs::File>>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("listen", &self.listener.local_addr().ok())
            .field("upstream", &self.upstream)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Recorder {
    /// Listens on `listen` (port 0 for any; see [`local_addr`](Self::local_addr)),
    /// resolves `upstream` (`rtmp://host[:port]`, a path is ignored) and
    /// creates `out` with its pcapng header.
    pub async fn bind(listen: SocketAddr, upstream: &str, out: &Path) -> Result<Recorder, RecordError> {
        let target = TargetUrl::parse(upstream).map_err(|e| RecordError::BadUpstream {
            url: upstream.to_string(),
            reason: e.to_string(),
        })?;
        let upstream_addr = tokio::net::lookup_host((target.host.as_str(), target.port))
            .await
            .map_err(|source| RecordError::Resolve {
                url: upstream.to_string(),
                source,
            })?
            .next()
            .ok_or_else(|| RecordError::Resolve {
                url: upstream.to_string(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no address"),
            })?;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| RecordError::Bind { addr: listen, source })?;
        let writer = start_file(out)?;
        Ok(Recorder {
            listener,
            upstream: upstream_addr,
            path: out.to_path_buf(),
            writer,
        })
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        // A bound listener always has an address; fall back to an unspecified one.
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The upstream's address.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// Proxies and records until `stop` completes; then closes every
    /// session (writing its FINs) and finishes the file.
    pub async fn run(self, stop: impl Future) -> Result<RecordSummary, RecordError> {
        let Recorder {
            listener,
            upstream,
            path,
            writer,
        } = self;
        let (packets, receiver) = mpsc::channel::<Packet>();
        let writer_path = path.clone();
        let writer_thread = std::thread::spawn(move || write_packets(writer, receiver, writer_path));
        let (stop_all, stopped) = watch::channel(false);
        let mut sessions = JoinSet::new();
        let mut totals = Totals::default();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                accepted = listener.accept() => match accepted {
                    Ok((client, peer)) => {
                        sessions.spawn(session(client, peer, upstream, packets.clone(), stopped.clone()));
                    }
                    Err(e) => tracing::warn!("record: accept failed: {e}"),
                },
                Some(done) = sessions.join_next(), if !sessions.is_empty() => totals.add(done),
            }
        }
        drop(listener);
        // Receivers may all be gone already; nothing to stop then.
        let _ = stop_all.send(true);
        while let Some(done) = sessions.join_next().await {
            totals.add(done);
        }
        drop(packets);
        let written = tokio::task::spawn_blocking(move || writer_thread.join())
            .await
            .map_err(|e| RecordError::Write {
                path: path.clone(),
                source: PcapError::IoError(std::io::Error::other(e.to_string())),
            })?
            .map_err(|_| RecordError::Write {
                path: path.clone(),
                source: PcapError::IoError(std::io::Error::other("the writer thread panicked")),
            })??;
        Ok(RecordSummary {
            path,
            connections: totals.connections,
            upstream_failures: totals.upstream_failures,
            client_bytes: totals.client_bytes,
            server_bytes: totals.server_bytes,
            packets: written,
        })
    }
}

/// Proxies and records until `stop` completes. `listen` with port 0 binds
/// any port: use [`Recorder::bind`] and [`Recorder::local_addr`] to learn it.
pub async fn record(
    listen: SocketAddr,
    upstream: &str,
    out: &Path,
    stop: impl Future,
) -> Result<RecordSummary, RecordError> {
    Recorder::bind(listen, upstream, out).await?.run(stop).await
}

/// How a session ended.
enum SessionEnd {
    /// The upstream could not be reached; the client was dropped.
    UpstreamFailed,
    /// The recording stopped while the upstream was being dialled.
    Stopped,
    /// Proxied and recorded; payload bytes each way.
    Closed { client: u64, server: u64 },
}

/// What the sessions add up to.
#[derive(Default)]
struct Totals {
    connections: usize,
    upstream_failures: usize,
    client_bytes: u64,
    server_bytes: u64,
}

impl Totals {
    fn add(&mut self, end: Result<SessionEnd, tokio::task::JoinError>) {
        match end {
            Ok(SessionEnd::UpstreamFailed) => self.upstream_failures += 1,
            Ok(SessionEnd::Stopped) => {}
            Ok(SessionEnd::Closed { client, server }) => {
                self.connections += 1;
                self.client_bytes += client;
                self.server_bytes += server;
            }
            Err(e) => tracing::warn!("record: a session task failed: {e}"),
        }
    }
}

/// The current time since the epoch, for packet timestamps.
fn now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// Builds frames under the connection's lock and queues them in order.
fn record_frames(
    synth: &Mutex<TcpSynth>,
    packets: &mpsc::Sender<Packet>,
    build: impl FnOnce(&mut TcpSynth) -> Vec<Vec<u8>>,
) {
    // A poisoned lock only means another pump panicked mid-build; the
    // numbers are still usable.
    let mut synth = synth.lock().unwrap_or_else(|e| e.into_inner());
    let time = now();
    for frame in build(&mut synth) {
        // The writer thread only stops once every sender is dropped.
        let _ = packets.send((time, frame));
    }
}

/// One proxied connection.
async fn session(
    client: TcpStream,
    peer: SocketAddr,
    upstream: SocketAddr,
    packets: mpsc::Sender<Packet>,
    mut stopped: watch::Receiver<bool>,
) -> SessionEnd {
    let server = tokio::select! {
        connected = TcpStream::connect(upstream) => match connected {
            Ok(server) => server,
            Err(e) => {
                tracing::warn!("record: upstream {upstream} refused {peer}: {e}");
                return SessionEnd::UpstreamFailed;
            }
        },
        _ = stopped.wait_for(|stop| *stop) => return SessionEnd::Stopped,
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let synth = Arc::new(Mutex::new(TcpSynth::new(
        peer,
        upstream,
        rand::random(),
        rand::random(),
    )));
    record_frames(&synth, &packets, TcpSynth::open);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = pump(client_read, server_write, true, &synth, &packets);
    let down = pump(server_read, client_write, false, &synth, &packets);
    tokio::select! {
        _ = async { tokio::join!(up, down) } => {}
        _ = stopped.wait_for(|stop| *stop) => {}
    }
    // Close what is still open, client first as a client ending its session would.
    record_frames(&synth, &packets, |s| {
        let mut frames = s.fin(true);
        frames.extend(s.fin(false));
        frames
    });
    let (client, server) = synth.lock().map_or((0, 0), |s| s.bytes());
    SessionEnd::Closed { client, server }
}

/// Copies one direction, recording each read before forwarding it; records
/// the FIN when the sender closes and passes the half-close on.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    from_client: bool,
    synth: &Mutex<TcpSynth>,
    packets: &mpsc::Sender<Packet>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        record_frames(synth, packets, |s| s.data(from_client, &buf[..n]));
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    record_frames(synth, packets, |s| s.fin(from_client));
    // The peer may be gone already.
    let _ = to.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::read_tcp_flows_timed;

    fn pcapng_of(frames: &[Vec<u8>]) -> Vec<u8> {
        let mut writer = PcapNgWriter::new(Vec::new()).unwrap();
        writer
            .write_pcapng_block(InterfaceDescriptionBlock {
                linktype: DataLink::ETHERNET,
                snaplen: 0,
                options: vec![InterfaceDescriptionOption::IfTsResol(9)],
            })
            .unwrap();
        for (i, frame) in frames.iter().enumerate() {
            writer
                .write_pcapng_block(EnhancedPacketBlock {
                    interface_id: 0,
                    timestamp: Duration::from_millis(1_700_000_000_000 + i as u64),
                    original_len: frame.len() as u32,
                    data: Cow::Borrowed(frame),
                    options: vec![],
                })
                .unwrap();
        }
        writer.into_inner()
    }

    #[test]
    fn synthesized_connection_reads_back_with_wrapping_sequence_numbers() {
        let client: SocketAddr = "10.0.0.1:50000".parse().unwrap();
        let server: SocketAddr = "10.0.0.2:1935".parse().unwrap();
        // The client's numbers wrap past 2^32 within the first segment.
        let mut synth = TcpSynth::new(client, server, u32::MAX - 10, 1000);
        let up: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        let down: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
        let mut frames = synth.open();
        frames.extend(synth.data(true, &up[..100]));
        frames.extend(synth.data(false, &down));
        frames.extend(synth.data(true, &up[100..]));
        frames.extend(synth.fin(true));
        frames.extend(synth.fin(false));
        assert!(synth.fin(true).is_empty(), "a second FIN is not written");
        assert!(synth.is_closed());
        assert_eq!(synth.bytes(), (5000, 3000));

        let flows = read_tcp_flows_timed(&pcapng_of(&frames)).unwrap();
        assert_eq!(flows.len(), 1);
        let flow = &flows[0];
        assert_eq!((flow.flow.client, flow.flow.server), (client, server));
        assert_eq!(flow.flow.client_to_server, up);
        assert_eq!(flow.flow.server_to_client, down);
        // 100 B, then 1460 + 1460 + 80 down, then 4900 B up in four segments.
        assert_eq!(flow.client_segments.len(), 5);
        assert_eq!(flow.server_segments.len(), 3);
        assert_eq!(flow.server_segments[0].packet, 4);
        assert_eq!(flow.client_segments[1].start, 100);
        assert_eq!(flow.client_segments[0].time, Some(Duration::from_millis(3)));
    }

    #[test]
    fn ipv6_and_mixed_families_give_ipv6_frames() {
        let client: SocketAddr = "[::1]:50000".parse().unwrap();
        let server: SocketAddr = "127.0.0.1:1935".parse().unwrap();
        let mut synth = TcpSynth::new(client, server, 1, 2);
        let mut frames = synth.open();
        frames.extend(synth.data(true, &[3; 3000]));
        let flows = read_tcp_flows_timed(&pcapng_of(&frames)).unwrap();
        assert_eq!(flows[0].flow.client_to_server, vec![3; 3000]);
        assert_eq!(flows[0].client_segments.len(), 3, "1440-byte IPv6 segments");
        assert!(flows[0].flow.server.is_ipv6());
    }
}
