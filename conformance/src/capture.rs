//! Reading packet captures and reassembling their TCP connections.
//!
//! Files are libpcap (the classic format, microsecond or nanosecond, either
//! byte order) or pcapng (IETF draft-ietf-opsawg-pcapng), told apart by their
//! magic number. Supported link types (tcpdump.org LINKTYPE_* registry):
//! Ethernet (with VLAN tags), Linux cooked capture v1 and v2 (SLL, SLL2),
//! raw IP (RAW, IPV4, IPV6) and BSD loopback (NULL in host byte order, LOOP
//! in network byte order). IPv4 and IPv6 are decoded with `etherparse`.
//!
//! TCP reassembly follows RFC 9293: each direction's bytes are placed by
//! sequence number relative to the initial sequence number of the SYN (or,
//! for a connection captured after its start, to the lowest sequence number
//! seen). Retransmitted and overlapping bytes are dropped (the first copy in
//! sequence order wins), out-of-order segments are put in place, and a hole
//! in the sequence space, including bytes cut off by a short snap length, is
//! a [`CaptureError::Gap`] naming the missing range. IP fragments are not
//! reassembled. Without a SYN the stream is taken to start at the lowest
//! sequence number captured, so a keep-alive probe captured before any data
//! of such a connection would be read as its first byte.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use etherparse::{EtherType, LaxNetSlice, LaxSlicedPacket, TransportSlice};
use pcap_file::pcap::PcapParser;
use pcap_file::pcapng::{Block, PcapNgParser};
use pcap_file::{DataLink, PcapError};

/// The port taken to be the server's when a connection has no SYN to tell
/// which side opened it (RTMP's registered port).
pub const SERVER_PORT_HINT: u16 = 1935;

/// Why a capture could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// The file starts with neither a pcap nor a pcapng magic number.
    #[error("not a pcap or pcapng file (first bytes {0:02x?})")]
    UnknownFormat(Vec<u8>),
    /// The pcap or pcapng structure is invalid.
    #[error("invalid {format} file: {source}")]
    Format {
        /// "pcap" or "pcapng".
        format: &'static str,
        /// The parser's complaint.
        #[source]
        source: PcapError,
    },
    /// The file ends in the middle of a record.
    #[error("the {format} file is cut short: {remaining} bytes of an incomplete record at its end")]
    Truncated {
        /// "pcap" or "pcapng".
        format: &'static str,
        /// Bytes left that do not make a whole record.
        remaining: usize,
    },
    /// No TCP was found and some packets used link types this module cannot
    /// decode.
    #[error("no TCP packets found; unsupported link type(s) {0:?}")]
    UnsupportedLinkType(Vec<u32>),
    /// A pcapng packet names an interface that was never described.
    #[error("pcapng packet on undescribed interface {0}")]
    UnknownInterface(u32),
    /// Bytes of one direction of a connection are missing from the capture.
    #[error(
        "{from} -> {to}: bytes {start}..{end} of the stream \
         (TCP sequence numbers {seq_start}..{seq_end}) are missing from the capture"
    )]
    Gap {
        /// Sender of the direction with the hole.
        from: SocketAddr,
        /// Receiver of the direction with the hole.
        to: SocketAddr,
        /// Offset in the reassembled direction where the hole starts.
        start: u64,
        /// Offset where the hole ends (exclusive).
        end: u64,
        /// TCP sequence number of the first missing byte.
        seq_start: u32,
        /// TCP sequence number just past the last missing byte.
        seq_end: u32,
    },
}

/// One direction of one TCP connection, reassembled in sequence order
/// (retransmissions and overlaps dropped, out-of-order segments placed by
/// sequence number; a gap is an error naming the missing range).
#[derive(Debug, Clone)]
pub struct TcpFlow {
    /// The side that opened the connection.
    pub client: std::net::SocketAddr,
    /// The side that accepted it.
    pub server: std::net::SocketAddr,
    /// Every byte the client sent, in order.
    pub client_to_server: Vec<u8>,
    /// Every byte the server sent, in order.
    pub server_to_client: Vec<u8>,
}

/// Reads a pcap or pcapng file (detected by magic), with Ethernet, Linux
/// cooked (SLL, SLL2), raw IP or loopback (BSD null) link types, IPv4 and
/// IPv6, and returns every TCP connection in it in order of first packet.
///
/// The client is the side that sent the first SYN; with no SYN it is the
/// side whose port is not [`SERVER_PORT_HINT`] (1935), and failing that the
/// sender of the connection's first packet.
pub fn read_tcp_flows(bytes: &[u8]) -> Result<Vec<TcpFlow>, CaptureError> {
    let connections = collect_connections(bytes)?;
    connections.iter().map(|c| c.connection.reassemble()).collect()
}

/// The flows whose server port is `port`. Only those flows are reassembled,
/// so a hole in another connection does not make this fail.
pub fn rtmp_flows(bytes: &[u8], port: u16) -> Result<Vec<TcpFlow>, CaptureError> {
    let connections = collect_connections(bytes)?;
    connections
        .iter()
        .filter(|c| c.connection.server().port() == port)
        .map(|c| c.connection.reassemble())
        .collect()
}

// ---------------------------------------------------------------------------
// Capture files

/// A captured frame, the link type it starts with, and its capture time
/// (since the Unix epoch, as the file records it; pcapng simple packet
/// blocks record none).
struct Frame<'a> {
    link: DataLink,
    data: &'a [u8],
    time: Option<std::time::Duration>,
}

/// Calls `on_frame` for every captured frame of a pcap or pcapng file.
fn for_each_frame(bytes: &[u8], mut on_frame: impl FnMut(Frame<'_>)) -> Result<(), CaptureError> {
    let magic: [u8; 4] = match bytes.get(..4).and_then(|m| m.try_into().ok()) {
        Some(m) => m,
        None => return Err(CaptureError::UnknownFormat(bytes.to_vec())),
    };
    match magic {
        [0x0a, 0x0d, 0x0d, 0x0a] => read_pcapng(bytes, &mut on_frame),
        [0xd4, 0xc3, 0xb2, 0xa1] | [0xa1, 0xb2, 0xc3, 0xd4] | [0x4d, 0x3c, 0xb2, 0xa1] | [0xa1, 0xb2, 0x3c, 0x4d] => {
            read_pcap(bytes, &mut on_frame)
        }
        _ => Err(CaptureError::UnknownFormat(magic.to_vec())),
    }
}

/// Maps a parser error, telling a cut-short file from a malformed one.
fn format_error(format: &'static str, rest: &[u8], source: PcapError) -> CaptureError {
    match source {
        PcapError::IncompleteBuffer => CaptureError::Truncated {
            format,
            remaining: rest.len(),
        },
        source => CaptureError::Format { format, source },
    }
}

/// Reads a classic libpcap file.
fn read_pcap(bytes: &[u8], on_frame: &mut impl FnMut(Frame<'_>)) -> Result<(), CaptureError> {
    let (mut rest, parser) = PcapParser::new(bytes).map_err(|e| format_error("pcap", bytes, e))?;
    let link = parser.header().datalink;
    let nanos = parser.header().ts_resolution == pcap_file::TsResolution::NanoSecond;
    while !rest.is_empty() {
        // Raw packets skip pcap-file's check that lengths stay under the snap
        // length, which real tools do not always honour.
        let (next, packet) = parser
            .next_raw_packet(rest)
            .map_err(|e| format_error("pcap", rest, e))?;
        let frac = if nanos {
            std::time::Duration::from_nanos(u64::from(packet.ts_frac))
        } else {
            std::time::Duration::from_micros(u64::from(packet.ts_frac))
        };
        on_frame(Frame {
            link,
            data: &packet.data,
            time: Some(std::time::Duration::from_secs(u64::from(packet.ts_sec)) + frac),
        });
        rest = next;
    }
    Ok(())
}

/// Reads a pcapng file (every section, every interface).
fn read_pcapng(bytes: &[u8], on_frame: &mut impl FnMut(Frame<'_>)) -> Result<(), CaptureError> {
    let (mut rest, mut parser) = PcapNgParser::new(bytes).map_err(|e| format_error("pcapng", bytes, e))?;
    while !rest.is_empty() {
        let (next, block) = parser.next_block(rest).map_err(|e| format_error("pcapng", rest, e))?;
        // pcap-file hands over the raw 64-bit time as nanoseconds, whatever
        // the interface's resolution.
        let (interface, data, raw_time) = match block {
            Block::EnhancedPacket(p) => (p.interface_id, p.data, Some(p.timestamp.as_nanos() as u64)),
            Block::SimplePacket(p) => (0, p.data, None),
            Block::Packet(p) => (u32::from(p.interface_id), p.data, Some(p.timestamp)),
            _ => {
                rest = next;
                continue;
            }
        };
        let description = parser
            .interfaces()
            .get(interface as usize)
            .ok_or(CaptureError::UnknownInterface(interface))?;
        let resolution = description.options.iter().find_map(|o| match o {
            pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption::IfTsResol(r) => Some(*r),
            _ => None,
        });
        on_frame(Frame {
            link: description.linktype,
            data: &data,
            time: raw_time.map(|raw| pcapng_time(raw, resolution.unwrap_or(6))),
        });
        rest = next;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Packets

/// The TCP facts of one captured segment.
struct Segment<'a> {
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    syn: bool,
    ack: bool,
    payload: &'a [u8],
}

/// Outcome of decoding a frame.
enum Decoded<'a> {
    Tcp(Segment<'a>),
    NotTcp,
    UnsupportedLink(u32),
}

/// Decodes a frame down to TCP.
fn decode<'a>(frame: &Frame<'a>) -> Decoded<'a> {
    let data = frame.data;
    let sliced = match frame.link {
        DataLink::ETHERNET => LaxSlicedPacket::from_ethernet(data).ok(),
        DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => LaxSlicedPacket::from_ip(data).ok(),
        DataLink::LINUX_SLL => {
            // 16-byte header; the protocol (an EtherType) is its last 2 bytes.
            data.get(14..16)
                .map(|p| ether_type_packet(u16::from_be_bytes([p[0], p[1]]), &data[16..]))
        }
        DataLink::LINUX_SLL2 => {
            // 20-byte header; the protocol (an EtherType) is its first 2 bytes.
            match (data.get(..2), data.get(20..)) {
                (Some(p), Some(rest)) => Some(ether_type_packet(u16::from_be_bytes([p[0], p[1]]), rest)),
                _ => None,
            }
        }
        DataLink::NULL | DataLink::LOOP => {
            // A 4-byte address family; the IP version nibble tells IPv4 from
            // IPv6 whatever the family's byte order or value (2, 24, 28, 30).
            data.get(4..).and_then(|ip| LaxSlicedPacket::from_ip(ip).ok())
        }
        other => return Decoded::UnsupportedLink(u32::from(other)),
    };
    let Some(packet) = sliced else {
        return Decoded::NotTcp;
    };
    let (Some(net), Some(TransportSlice::Tcp(tcp))) = (&packet.net, &packet.transport) else {
        return Decoded::NotTcp;
    };
    let (src_ip, dst_ip): (IpAddr, IpAddr) = match net {
        LaxNetSlice::Ipv4(ip) => (ip.header().source_addr().into(), ip.header().destination_addr().into()),
        LaxNetSlice::Ipv6(ip) => (ip.header().source_addr().into(), ip.header().destination_addr().into()),
    };
    Decoded::Tcp(Segment {
        src: SocketAddr::new(src_ip, tcp.source_port()),
        dst: SocketAddr::new(dst_ip, tcp.destination_port()),
        seq: tcp.sequence_number(),
        syn: tcp.syn(),
        ack: tcp.ack(),
        payload: tcp.payload(),
    })
}

/// Slices a packet whose network layer is given by an EtherType.
fn ether_type_packet(ether_type: u16, data: &[u8]) -> LaxSlicedPacket<'_> {
    LaxSlicedPacket::from_ether_type(EtherType(ether_type), data)
}

// ---------------------------------------------------------------------------
// Connections

/// The segments one side of a connection sent.
///
/// Sequence numbers are "unwrapped" to `i64`: the first one seen is taken
/// as is and each later one is placed at the shortest signed distance from
/// the previous, so a direction may cross the 2^32 wrap. An unwrapped value
/// is congruent to the raw number modulo 2^32.
#[derive(Default)]
struct Direction {
    /// Unwrapped sequence number of this side's SYN, if captured.
    syn_seq: Option<i64>,
    /// Data segments: (unwrapped sequence number of the first byte, bytes).
    segments: Vec<(i64, Vec<u8>)>,
    /// Last raw sequence number seen and its unwrapped value.
    last: Option<(u32, i64)>,
}

impl Direction {
    /// Unwraps `seq` against the previous segment of this direction.
    fn unwrap_seq(&mut self, seq: u32) -> i64 {
        let value = match self.last {
            None => i64::from(seq),
            // Reinterpreting the wrapped difference as signed gives the
            // shortest distance, backwards for retransmissions.
            Some((raw, value)) => value + i64::from(seq.wrapping_sub(raw) as i32),
        };
        self.last = Some((seq, value));
        value
    }

    /// Reassembles this direction's bytes, or names the first hole.
    fn reassemble(&self, from: SocketAddr, to: SocketAddr) -> Result<Vec<u8>, CaptureError> {
        let mut segments: Vec<&(i64, Vec<u8>)> = self.segments.iter().collect();
        // Stable sort: among segments starting at the same number, the one
        // captured first wins.
        segments.sort_by_key(|(start, _)| *start);
        // The first data byte follows the SYN; without a SYN, the stream is
        // taken to start at the lowest number captured.
        let base = match (self.syn_seq, segments.first()) {
            (Some(syn), _) => syn + 1,
            (None, Some((start, _))) => *start,
            (None, None) => 0,
        };
        // Unwrapped values are congruent to raw sequence numbers modulo 2^32,
        // so truncating gives the raw number.
        let raw = |at: i64| at as u32;
        let mut out = Vec::new();
        let mut next = base;
        for (start, data) in segments {
            let (start, end) = (*start, *start + data.len() as i64);
            if end <= next {
                continue; // a retransmission, or bytes before the stream start
            }
            if start > next {
                return Err(CaptureError::Gap {
                    from,
                    to,
                    start: (next - base) as u64,
                    end: (start - base) as u64,
                    seq_start: raw(next),
                    seq_end: raw(start),
                });
            }
            // Skip the bytes already placed: `start <= next < end` here.
            out.extend_from_slice(&data[(next - start) as usize..]);
            next = end;
        }
        Ok(out)
    }
}

/// One TCP connection's segments, both directions.
struct Connection {
    /// The endpoint taken as the client so far.
    client: SocketAddr,
    /// The other endpoint.
    other: SocketAddr,
    /// Whether `client` was decided by a SYN.
    decided_by_syn: bool,
    /// What `client` sent.
    from_client: Direction,
    /// What `other` sent.
    from_other: Direction,
}

impl Connection {
    /// A connection whose first captured segment is `segment`.
    fn new(segment: &Segment<'_>) -> Self {
        let (client, other, decided_by_syn) = if segment.syn {
            if segment.ack {
                (segment.dst, segment.src, true) // SYN-ACK comes from the server
            } else {
                (segment.src, segment.dst, true)
            }
        } else if segment.src.port() == SERVER_PORT_HINT && segment.dst.port() != SERVER_PORT_HINT {
            (segment.dst, segment.src, false)
        } else {
            (segment.src, segment.dst, false)
        };
        Connection {
            client,
            other,
            decided_by_syn,
            from_client: Direction::default(),
            from_other: Direction::default(),
        }
    }

    /// The server endpoint.
    fn server(&self) -> SocketAddr {
        self.other
    }

    /// Whether a pure SYN `segment` opens a new connection on the same
    /// addresses rather than repeating this one's SYN.
    fn is_reopened_by(&self, segment: &Segment<'_>) -> bool {
        if !segment.syn || segment.ack {
            return false;
        }
        let sender = if segment.src == self.client {
            &self.from_client
        } else {
            &self.from_other
        };
        match sender.syn_seq {
            // Unwrapped numbers are congruent to raw ones modulo 2^32.
            Some(syn) => syn as u32 != segment.seq,
            None => !self.from_client.segments.is_empty() || !self.from_other.segments.is_empty(),
        }
    }

    /// Records `segment`.
    fn add(&mut self, segment: &Segment<'_>) {
        if segment.syn && !self.decided_by_syn {
            // A SYN settles who opened the connection.
            let client = if segment.ack { segment.dst } else { segment.src };
            if client != self.client {
                std::mem::swap(&mut self.client, &mut self.other);
                std::mem::swap(&mut self.from_client, &mut self.from_other);
            }
            self.decided_by_syn = true;
        }
        let direction = if segment.src == self.client {
            &mut self.from_client
        } else {
            &mut self.from_other
        };
        let mut seq = direction.unwrap_seq(segment.seq);
        if segment.syn {
            direction.syn_seq = Some(seq);
            seq += 1; // data on a SYN (TCP Fast Open) follows the SYN's number
        }
        if !segment.payload.is_empty() {
            direction.segments.push((seq, segment.payload.to_vec()));
        }
    }

    /// Reassembles both directions.
    fn reassemble(&self) -> Result<TcpFlow, CaptureError> {
        Ok(TcpFlow {
            client: self.client,
            server: self.other,
            client_to_server: self.from_client.reassemble(self.client, self.other)?,
            server_to_client: self.from_other.reassemble(self.other, self.client)?,
        })
    }
}

// ---------------------------------------------------------------------------
// Capture order and times
//
// The reassembled byte streams above lose the order in which the two
// directions' bytes were captured. The functions below keep it: every data
// segment is remembered with its position in the file and its capture time,
// placed in its direction's reassembled stream, so a decoder can tell which
// packet completed a message and interleave the two directions as they
// happened on the wire.

/// One captured data segment, placed in its direction's reassembled stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentMark {
    /// Position of the frame in the capture file (0 for the first frame).
    pub packet: usize,
    /// Capture time, relative to the first frame of the connection; `None`
    /// when the file records no time for it (pcapng simple packet blocks).
    pub time: Option<std::time::Duration>,
    /// Offset of the segment's first byte in the reassembled direction
    /// (0 for bytes a retransmission repeats from before the stream start).
    pub start: u64,
    /// Offset just past its last byte.
    pub end: u64,
}

/// A reassembled connection with, for each direction, its data segments in
/// capture order.
#[derive(Debug, Clone)]
pub struct TimedTcpFlow {
    /// The reassembled bytes, as [`read_tcp_flows`] gives them.
    pub flow: TcpFlow,
    /// The client's data segments, in capture order.
    pub client_segments: Vec<SegmentMark>,
    /// The server's data segments, in capture order.
    pub server_segments: Vec<SegmentMark>,
}

impl TimedTcpFlow {
    /// The first captured segment holding byte `offset` of a direction
    /// (`segments` is [`client_segments`](Self::client_segments) or
    /// [`server_segments`](Self::server_segments)): the packet that made the
    /// bytes up to and including `offset` available to the receiver, as far
    /// as the capture tells.
    pub fn delivered_by(segments: &[SegmentMark], offset: u64) -> Option<&SegmentMark> {
        segments
            .iter()
            .filter(|s| s.start <= offset && offset < s.end)
            .min_by_key(|s| s.packet)
    }
}

/// [`read_tcp_flows`], keeping the capture order and time of every data
/// segment ([`TimedTcpFlow`]).
///
/// Times are read from the pcap record headers (microsecond or nanosecond
/// files) and from pcapng enhanced and obsolete packet blocks, honouring the
/// interface's `if_tsresol` (default microseconds).
pub fn read_tcp_flows_timed(bytes: &[u8]) -> Result<Vec<TimedTcpFlow>, CaptureError> {
    let connections = collect_connections(bytes)?;
    connections.iter().map(TimedConnection::reassemble).collect()
}

/// [`rtmp_flows`], keeping the capture order and time of every data segment.
/// Only the flows whose server port is `port` are reassembled.
pub fn rtmp_flows_timed(bytes: &[u8], port: u16) -> Result<Vec<TimedTcpFlow>, CaptureError> {
    let connections = collect_connections(bytes)?;
    connections
        .iter()
        .filter(|c| c.connection.server().port() == port)
        .map(TimedConnection::reassemble)
        .collect()
}

/// A data segment as recorded while grouping: who sent it, its unwrapped
/// sequence number, and where and when it was captured.
struct SegmentRecord {
    src: SocketAddr,
    seq: i64,
    len: usize,
    packet: usize,
    time: Option<std::time::Duration>,
}

/// A connection and its data segments in capture order.
struct TimedConnection {
    connection: Connection,
    segments: Vec<SegmentRecord>,
    first_time: Option<std::time::Duration>,
}

impl TimedConnection {
    /// Reassembles both directions and places every recorded segment.
    fn reassemble(&self) -> Result<TimedTcpFlow, CaptureError> {
        let flow = self.connection.reassemble()?;
        let c = &self.connection;
        let base = |d: &Direction| match d.syn_seq {
            Some(syn) => syn + 1,
            None => d.segments.iter().map(|(start, _)| *start).min().unwrap_or(0),
        };
        let (client_base, server_base) = (base(&c.from_client), base(&c.from_other));
        let (mut client_segments, mut server_segments) = (Vec::new(), Vec::new());
        for record in &self.segments {
            let (base, marks) = if record.src == c.client {
                (client_base, &mut client_segments)
            } else {
                (server_base, &mut server_segments)
            };
            let end = record.seq + record.len as i64 - base;
            if end <= 0 {
                continue; // entirely before the stream start
            }
            let time = match (record.time, self.first_time) {
                (Some(t), Some(first)) => Some(t.saturating_sub(first)),
                _ => None,
            };
            marks.push(SegmentMark {
                packet: record.packet,
                time,
                start: (record.seq - base).max(0) as u64,
                end: end as u64,
            });
        }
        Ok(TimedTcpFlow {
            flow,
            client_segments,
            server_segments,
        })
    }
}

/// Groups the capture's TCP segments into connections, in order of first
/// packet, recording every data segment's sender, unwrapped sequence number,
/// frame position and capture time.
fn collect_connections(bytes: &[u8]) -> Result<Vec<TimedConnection>, CaptureError> {
    let mut connections: Vec<TimedConnection> = Vec::new();
    let mut latest: HashMap<(SocketAddr, SocketAddr), usize> = HashMap::new();
    let mut unsupported: Vec<u32> = Vec::new();
    let mut packet = 0usize;
    for_each_frame(bytes, |frame| {
        let time = frame.time;
        let position = packet;
        packet += 1;
        let segment = match decode(&frame) {
            Decoded::Tcp(segment) => segment,
            Decoded::NotTcp => return,
            Decoded::UnsupportedLink(link) => {
                if !unsupported.contains(&link) {
                    unsupported.push(link);
                }
                return;
            }
        };
        let key = if segment.src <= segment.dst {
            (segment.src, segment.dst)
        } else {
            (segment.dst, segment.src)
        };
        let index = match latest.get(&key) {
            Some(&i) if !connections[i].connection.is_reopened_by(&segment) => i,
            _ => {
                connections.push(TimedConnection {
                    connection: Connection::new(&segment),
                    segments: Vec::new(),
                    first_time: time,
                });
                latest.insert(key, connections.len() - 1);
                connections.len() - 1
            }
        };
        let timed = &mut connections[index];
        timed.connection.add(&segment);
        if segment.payload.is_empty() {
            return;
        }
        let c = &timed.connection;
        let direction = if segment.src == c.client {
            &c.from_client
        } else {
            &c.from_other
        };
        // `add` just unwrapped this segment's number; data on a SYN follows it.
        if let Some((_, unwrapped)) = direction.last {
            timed.segments.push(SegmentRecord {
                src: segment.src,
                seq: unwrapped + i64::from(segment.syn),
                len: segment.payload.len(),
                packet: position,
                time,
            });
        }
    })?;
    if connections.is_empty() && !unsupported.is_empty() {
        return Err(CaptureError::UnsupportedLinkType(unsupported));
    }
    Ok(connections)
}

/// A pcapng timestamp of `raw` units of the `if_tsresol` resolution
/// `resolution`: 10^-n seconds, or 2^-n seconds with the top bit set.
fn pcapng_time(raw: u64, resolution: u8) -> std::time::Duration {
    let exponent = u32::from(resolution & 0x7F);
    let units_per_second: u128 = if resolution & 0x80 == 0 {
        10u128.checked_pow(exponent).unwrap_or(u128::MAX)
    } else {
        1u128.checked_shl(exponent).unwrap_or(u128::MAX)
    };
    let nanos = u128::from(raw) * 1_000_000_000 / units_per_second.max(1);
    std::time::Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}
