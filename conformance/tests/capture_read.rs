//! Reading real RTMP captures, and TCP reassembly on synthetic captures
//! built from real RTMP byte streams with reordering, retransmissions,
//! overlaps and holes.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::Duration;

use conformance::capture::{read_tcp_flows, rtmp_flows, CaptureError, TcpFlow};
use etherparse::PacketBuilder;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock;
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::DataLink;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn fixture(path: &str) -> Vec<u8> {
    let full = format!("{}/../fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// An AMF0 string: marker 0x02, 16-bit length, bytes.
fn amf0_string(s: &str) -> Vec<u8> {
    let mut out = vec![0x02];
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    out
}

/// Checks the handshake sizes and finds the connect command after C0C1C2.
fn assert_rtmp_session(flow: &TcpFlow, texts: &[&str]) {
    let c = &flow.client_to_server;
    let s = &flow.server_to_client;
    assert_eq!(c[0], 3, "C0");
    assert_eq!(s[0], 3, "S0");
    assert!(s.len() >= 3073, "S0S1S2: {} bytes", s.len());
    let after_handshake = &c[1537 + 1536..];
    let at = find(after_handshake, &amf0_string("connect")).expect("AMF0 'connect'");
    assert!(at < 64, "connect is the first command, at {at}");
    for text in texts {
        assert!(
            find(after_handshake, text.as_bytes()).is_some(),
            "{text:?} not found after the handshake"
        );
    }
}

#[test]
fn obs_capture_has_one_rtmp_flow() {
    let bytes = fixture("captures/obs_publish_to_nginx.pcap");
    let flows = rtmp_flows(&bytes, 1935).unwrap();
    assert_eq!(flows.len(), 1);
    let flow = &flows[0];
    assert_eq!(flow.client, "127.0.0.1:57080".parse::<SocketAddr>().unwrap());
    assert_eq!(flow.server, "127.0.0.1:1935".parse::<SocketAddr>().unwrap());
    // Sums of the TCP payload lengths per direction (tshark: tcp.len).
    assert_eq!(flow.client_to_server.len(), 1_362_991);
    assert_eq!(flow.server_to_client.len(), 3_602);
    assert_rtmp_session(
        flow,
        &[
            "tcUrl",
            "rtmp://localhost:1935/twinx",
            "FMLE/3.0 (compatible; FMSc/1.0)",
        ],
    );
}

#[test]
fn obs_capture_other_connections_are_empty_refusals() {
    let bytes = fixture("captures/obs_publish_to_nginx.pcap");
    let flows = read_tcp_flows(&bytes).unwrap();
    // The RTMP session plus six SYN/RST pairs to port 27117.
    assert_eq!(flows.len(), 7);
    assert_eq!(flows[0].server.port(), 1935);
    for flow in &flows[1..] {
        assert_eq!(flow.server.port(), 27117);
        assert!((60604..=60614).contains(&flow.client.port()));
        assert!(flow.client_to_server.is_empty() && flow.server_to_client.is_empty());
    }
}

#[test]
fn flash_player_9_capture() {
    let bytes = fixture("captures/wireshark_rtmp_sample_fp9.cap");
    let flows = rtmp_flows(&bytes, 1935).unwrap();
    assert_eq!(flows.len(), 1);
    let flow = &flows[0];
    assert_eq!(flow.client, "192.168.43.1:1177".parse::<SocketAddr>().unwrap());
    assert_eq!(flow.server, "192.168.43.128:1935".parse::<SocketAddr>().unwrap());
    assert_eq!(flow.client_to_server.len(), 3_452);
    assert_eq!(flow.server_to_client.len(), 3_496);
    assert_rtmp_session(flow, &["flashVer", "WIN 9,0,47,0", "tcUrl"]);
    // Flash Player 9's simple handshake: C1 version 0, S2 echoes C1.
    let c = &flow.client_to_server;
    assert_eq!(c[5..9], [0, 0, 0, 0]);
    assert_eq!(flow.server_to_client[1537 + 8..3073], c[1 + 8..1537]);
}

#[test]
fn other_port_finds_nothing() {
    let bytes = fixture("captures/wireshark_rtmp_sample_fp9.cap");
    assert!(rtmp_flows(&bytes, 80).unwrap().is_empty());
}

/// FFmpeg's two directions of one session, as raw byte runs.
fn ffmpeg_session() -> (Vec<u8>, Vec<u8>) {
    (
        fixture("captures/ffmpeg_play_client.bin"),
        fixture("captures/ffmpeg_listen_server.bin"),
    )
}

#[test]
fn ffmpeg_raw_directions_are_rtmp_but_not_captures() {
    let (client, server) = ffmpeg_session();
    let flow = TcpFlow {
        client: "10.0.0.1:50000".parse().unwrap(),
        server: "10.0.0.2:1935".parse().unwrap(),
        client_to_server: client.clone(),
        server_to_client: server,
    };
    assert_rtmp_session(&flow, &["LNX 9,0,124,2", "tcUrl"]);
    match read_tcp_flows(&client) {
        Err(CaptureError::UnknownFormat(magic)) => assert_eq!(magic, client[..4]),
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Synthetic captures

/// How the IP packets are framed.
#[derive(Clone, Copy)]
enum Link {
    Ethernet,
    LinuxSll,
    Null,
}

impl Link {
    fn data_link(self) -> DataLink {
        match self {
            Link::Ethernet => DataLink::ETHERNET,
            Link::LinuxSll => DataLink::LINUX_SLL,
            Link::Null => DataLink::NULL,
        }
    }

    fn frame(self, ip: &[u8]) -> Vec<u8> {
        let v6 = ip[0] >> 4 == 6;
        let ether_type: u16 = if v6 { 0x86dd } else { 0x0800 };
        let mut out = match self {
            Link::Ethernet => {
                let mut h = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
                h.extend_from_slice(&ether_type.to_be_bytes());
                h
            }
            Link::LinuxSll => {
                let mut h = vec![0, 0, 0, 1, 0, 6, 0x02, 0, 0, 0, 0, 1, 0, 0];
                h.extend_from_slice(&ether_type.to_be_bytes());
                h
            }
            // AF_INET / AF_INET6 (Linux value), host byte order.
            Link::Null => (if v6 { 10u32 } else { 2u32 }).to_le_bytes().to_vec(),
        };
        out.extend_from_slice(ip);
        out
    }
}

/// One captured TCP segment.
#[derive(Clone)]
struct Packet {
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    syn: bool,
    ack: bool,
    fin: bool,
    payload: Vec<u8>,
    /// Bytes of the payload kept in the capture (a short snap length).
    captured_payload: Option<usize>,
}

impl Packet {
    fn ip(&self) -> Vec<u8> {
        let builder = match (self.src, self.dst) {
            (SocketAddr::V4(s), SocketAddr::V4(d)) => PacketBuilder::ipv4(s.ip().octets(), d.ip().octets(), 64),
            (SocketAddr::V6(s), SocketAddr::V6(d)) => PacketBuilder::ipv6(s.ip().octets(), d.ip().octets(), 64),
            _ => unreachable!("mixed address families"),
        };
        let mut tcp = builder.tcp(self.src.port(), self.dst.port(), self.seq, 65535);
        if self.syn {
            tcp = tcp.syn();
        }
        if self.ack {
            tcp = tcp.ack(1);
        }
        if self.fin {
            tcp = tcp.fin();
        }
        let mut out = Vec::new();
        tcp.write(&mut out, &self.payload).unwrap();
        if let Some(kept) = self.captured_payload {
            out.truncate(out.len() - self.payload.len() + kept);
        }
        out
    }
}

/// A conversation to capture: endpoints, initial sequence numbers, data.
struct Conversation {
    client: SocketAddr,
    server: SocketAddr,
    client_isn: u32,
    server_isn: u32,
    client_data: Vec<u8>,
    server_data: Vec<u8>,
}

/// Cuts `data` into segments of 1..=1460 bytes: (stream offset, bytes).
fn cut(data: &[u8], rng: &mut StdRng) -> Vec<(usize, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let len = rng.gen_range(1..=1460).min(data.len() - at);
        out.push((at, data[at..at + len].to_vec()));
        at += len;
    }
    out
}

impl Conversation {
    fn ffmpeg(client: &str, server: &str, client_isn: u32, server_isn: u32) -> Self {
        let (client_data, server_data) = ffmpeg_session();
        Conversation {
            client: client.parse().unwrap(),
            server: server.parse().unwrap(),
            client_isn,
            server_isn,
            client_data,
            server_data,
        }
    }

    fn data_packet(&self, from_client: bool, offset: usize, payload: Vec<u8>) -> Packet {
        let (src, dst, isn) = if from_client {
            (self.client, self.server, self.client_isn)
        } else {
            (self.server, self.client, self.server_isn)
        };
        Packet {
            src,
            dst,
            seq: isn.wrapping_add(1).wrapping_add(offset as u32),
            syn: false,
            ack: true,
            fin: false,
            payload,
            captured_payload: None,
        }
    }

    /// The packets of the conversation, in a plausible order, then
    /// disturbed: reordered, retransmitted, overlapping, with pure ACKs and
    /// keep-alives. Without `with_syn` the capture starts after the
    /// three-way handshake.
    fn packets(&self, seed: u64, with_syn: bool, disturb: bool) -> Vec<Packet> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut packets = Vec::new();
        if with_syn {
            let mut syn = self.data_packet(true, 0, Vec::new());
            syn.seq = self.client_isn;
            syn.syn = true;
            syn.ack = false;
            let mut syn_ack = self.data_packet(false, 0, Vec::new());
            syn_ack.seq = self.server_isn;
            syn_ack.syn = true;
            packets.push(syn.clone());
            packets.push(syn.clone()); // a retransmitted SYN
            packets.push(syn_ack);
            packets.push(self.data_packet(true, 0, Vec::new()));
        }
        let client_segments = cut(&self.client_data, &mut rng);
        let server_segments = cut(&self.server_data, &mut rng);
        let (mut ci, mut si) = (0, 0);
        while ci < client_segments.len() || si < server_segments.len() {
            let from_client = si == server_segments.len() || (ci < client_segments.len() && rng.gen_bool(0.3));
            let (offset, data) = if from_client {
                ci += 1;
                client_segments[ci - 1].clone()
            } else {
                si += 1;
                server_segments[si - 1].clone()
            };
            packets.push(self.data_packet(from_client, offset, data));
        }
        let mut fin = self.data_packet(true, self.client_data.len(), Vec::new());
        fin.fin = true;
        packets.push(fin);
        if !disturb {
            return packets;
        }
        let first_data = if with_syn { 4 } else { 0 };
        for _ in 0..packets.len() / 4 {
            let i = rng.gen_range(first_data..packets.len() - 1);
            match rng.gen_range(0..5) {
                // Out of order: swap with a later packet.
                0 | 1 => {
                    let j = rng.gen_range(i + 1..packets.len().min(i + 6));
                    packets.swap(i, j);
                }
                // Retransmission of a data packet, a little later.
                2 => {
                    let again = packets[i].clone();
                    let at = rng.gen_range(i + 1..=packets.len());
                    packets.insert(at, again);
                }
                // A segment overlapping two neighbours of the same direction.
                3 => {
                    let (src, data_len) = (packets[i].src, packets[i].payload.len());
                    let from_client = src == self.client;
                    let data = if from_client {
                        &self.client_data
                    } else {
                        &self.server_data
                    };
                    let isn = if from_client { self.client_isn } else { self.server_isn };
                    let start = packets[i].seq.wrapping_sub(isn.wrapping_add(1)) as usize + data_len / 2;
                    if data_len > 0 && start < data.len() {
                        let end = (start + 1000).min(data.len());
                        let p = self.data_packet(from_client, start, data[start..end].to_vec());
                        packets.insert(i + 1, p);
                    }
                }
                // A pure ACK and a keep-alive (one old byte, wrong content).
                _ => {
                    let mut keep_alive = packets[i].clone();
                    let isn = if keep_alive.src == self.client {
                        self.client_isn
                    } else {
                        self.server_isn
                    };
                    // A probe repeats the last byte sent, so it never comes
                    // before the first data byte.
                    let first = keep_alive.seq == isn.wrapping_add(1);
                    if !keep_alive.payload.is_empty() && !keep_alive.syn && !first {
                        keep_alive.seq = keep_alive.seq.wrapping_sub(1);
                        keep_alive.payload = vec![0xee];
                        let mut ack = keep_alive.clone();
                        ack.payload.clear();
                        packets.insert(i + 1, keep_alive);
                        packets.insert(i + 1, ack);
                    }
                }
            }
        }
        packets
    }
}

/// A pcapng file; each frame is (interface, packet), interfaces by link.
fn pcapng(interfaces: &[Link], frames: &[(usize, Packet)]) -> Vec<u8> {
    let mut writer = PcapNgWriter::new(Vec::new()).unwrap();
    for link in interfaces {
        writer
            .write_pcapng_block(InterfaceDescriptionBlock::new(link.data_link(), 0))
            .unwrap();
    }
    for (n, (interface, packet)) in frames.iter().enumerate() {
        let data = interfaces[*interface].frame(&packet.ip());
        writer
            .write_pcapng_block(EnhancedPacketBlock {
                interface_id: *interface as u32,
                timestamp: Duration::from_micros(1_000_000 + n as u64),
                original_len: data.len() as u32,
                data: Cow::Borrowed(&data),
                options: vec![],
            })
            .unwrap();
    }
    writer.into_inner()
}

/// A classic pcap file, all frames on `link`.
fn pcap(link: Link, packets: &[Packet]) -> Vec<u8> {
    let header = PcapHeader {
        datalink: link.data_link(),
        ..Default::default()
    };
    let mut writer = PcapWriter::with_header(Vec::new(), header).unwrap();
    for (n, packet) in packets.iter().enumerate() {
        let data = link.frame(&packet.ip());
        let ts = Duration::from_micros(1_000_000 + n as u64);
        writer
            .write_packet(&PcapPacket::new(ts, data.len() as u32, &data))
            .unwrap();
    }
    writer.into_writer()
}

fn assert_flow_is(flow: &TcpFlow, conv: &Conversation) {
    assert_eq!(flow.client, conv.client);
    assert_eq!(flow.server, conv.server);
    assert!(
        flow.client_to_server == conv.client_data,
        "client_to_server differs ({} vs {} bytes)",
        flow.client_to_server.len(),
        conv.client_data.len()
    );
    assert!(
        flow.server_to_client == conv.server_data,
        "server_to_client differs ({} vs {} bytes)",
        flow.server_to_client.len(),
        conv.server_data.len()
    );
}

#[test]
fn reassembles_reordered_and_retransmitted_segments_in_pcapng() {
    // The server's sequence numbers wrap past 2^32 during the session.
    let conv = Conversation::ffmpeg("10.1.1.1:50123", "10.1.1.2:1935", 7_000, u32::MAX - 40_000);
    for seed in 0..8 {
        let packets = conv.packets(seed, true, true);
        let frames: Vec<_> = packets.into_iter().map(|p| (0, p)).collect();
        let file = pcapng(&[Link::Ethernet], &frames);
        let flows = read_tcp_flows(&file).unwrap();
        assert_eq!(flows.len(), 1, "seed {seed}");
        assert_flow_is(&flows[0], &conv);
    }
}

#[test]
fn disturbances_really_happen() {
    // Guard against a generator that silently produces an orderly capture.
    let conv = Conversation::ffmpeg("10.1.1.1:50123", "10.1.1.2:1935", 1, 1);
    let packets = conv.packets(3, true, true);
    let orderly = conv.packets(3, true, false);
    assert!(packets.len() > orderly.len() + 10);
    let data: Vec<(SocketAddr, u32, usize)> = packets
        .iter()
        .filter(|p| p.payload.len() > 1)
        .map(|p| (p.src, p.seq, p.payload.len()))
        .collect();
    let reordered = |side: SocketAddr| {
        let seqs: Vec<u32> = data.iter().filter(|d| d.0 == side).map(|d| d.1).collect();
        seqs.windows(2).any(|w| w[1] < w[0])
    };
    assert!(reordered(conv.client) && reordered(conv.server), "reordered");
    assert!(
        data.iter().enumerate().any(|(i, d)| data[..i].contains(d)),
        "retransmitted"
    );
    assert!(
        data.iter().any(|a| data
            .iter()
            .any(|b| a.0 == b.0 && b.1 > a.1 && b.1 < a.1 + a.2 as u32 && b.1 + b.2 as u32 > a.1 + a.2 as u32)),
        "overlapping"
    );
}

#[test]
fn ipv6_over_linux_sll_without_syn_uses_the_port_hint() {
    // Captured after the three-way handshake; the first packet captured is
    // the server's, so only the port tells the client.
    let conv = Conversation::ffmpeg("[2001:db8::1]:49999", "[2001:db8::2]:1935", 99, 5);
    let mut packets = conv.packets(11, false, true);
    let first_server = packets.iter().position(|p| p.src == conv.server).unwrap();
    let p = packets.remove(first_server);
    packets.insert(0, p);
    let file = pcap(Link::LinuxSll, &packets);
    let flows = rtmp_flows(&file, 1935).unwrap();
    assert_eq!(flows.len(), 1);
    assert_flow_is(&flows[0], &conv);
}

#[test]
fn two_interfaces_and_loopback_in_one_pcapng() {
    let a = Conversation::ffmpeg("192.0.2.1:40000", "192.0.2.2:1935", 1_000, 2_000);
    let b = Conversation::ffmpeg("127.0.0.1:40001", "127.0.0.1:1935", 3_000, 4_000);
    let mut frames: Vec<(usize, Packet)> = Vec::new();
    let pa = a.packets(21, true, true);
    let pb = b.packets(22, true, true);
    for i in 0..pa.len().max(pb.len()) {
        if let Some(p) = pa.get(i) {
            frames.push((0, p.clone()));
        }
        if let Some(p) = pb.get(i) {
            frames.push((1, p.clone()));
        }
    }
    let file = pcapng(&[Link::Ethernet, Link::Null], &frames);
    let flows = rtmp_flows(&file, 1935).unwrap();
    assert_eq!(flows.len(), 2);
    assert_flow_is(&flows[0], &a);
    assert_flow_is(&flows[1], &b);
}

#[test]
fn reused_addresses_make_two_connections() {
    let first = Conversation::ffmpeg("10.0.0.1:50000", "10.0.0.2:1935", 100, 200);
    let mut second = Conversation::ffmpeg("10.0.0.1:50000", "10.0.0.2:1935", 900_000, 800_000);
    second.client_data.truncate(2_000);
    second.server_data.truncate(4_000);
    let mut packets = first.packets(31, true, true);
    packets.extend(second.packets(32, true, true));
    let file = pcap(Link::Ethernet, &packets);
    let flows = read_tcp_flows(&file).unwrap();
    assert_eq!(flows.len(), 2);
    assert_flow_is(&flows[0], &first);
    assert_flow_is(&flows[1], &second);
}

#[test]
fn a_lost_segment_is_a_gap_naming_the_range() {
    let conv = Conversation::ffmpeg("10.1.1.1:50123", "10.1.1.2:1935", 7_000, 70_000);
    let mut packets = conv.packets(5, true, false);
    // Drop the server's third data segment.
    let lost_at = packets
        .iter()
        .enumerate()
        .filter(|(_, p)| p.src == conv.server && !p.payload.is_empty())
        .nth(2)
        .map(|(i, _)| i)
        .unwrap();
    let lost = packets.remove(lost_at);
    let start = lost.seq.wrapping_sub(70_001) as u64;
    let end = start + lost.payload.len() as u64;
    let frames: Vec<_> = packets.into_iter().map(|p| (0, p)).collect();
    let file = pcapng(&[Link::Ethernet], &frames);
    let err = read_tcp_flows(&file).unwrap_err();
    match &err {
        CaptureError::Gap {
            from,
            to,
            start: s,
            end: e,
            seq_start,
            seq_end,
        } => {
            assert_eq!((*from, *to), (conv.server, conv.client));
            assert_eq!((*s, *e), (start, end));
            assert_eq!(*seq_start, lost.seq);
            assert_eq!(*seq_end, lost.seq + lost.payload.len() as u32);
        }
        other => panic!("{other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains(&format!("bytes {start}..{end}")), "{text}");
    // Another port's hole does not concern the RTMP flows.
    assert!(rtmp_flows(&file, 8080).unwrap().is_empty());
}

#[test]
fn bytes_cut_by_the_snap_length_are_a_gap() {
    let conv = Conversation::ffmpeg("10.1.1.1:50123", "10.1.1.2:1935", 7_000, 70_000);
    let mut packets = conv.packets(6, true, false);
    let cut_at = packets
        .iter()
        .position(|p| p.src == conv.client && p.payload.len() > 100)
        .unwrap();
    packets[cut_at].captured_payload = Some(40);
    let offset = packets[cut_at].seq.wrapping_sub(7_001) as u64;
    let file = pcap(Link::Ethernet, &packets);
    match read_tcp_flows(&file).unwrap_err() {
        CaptureError::Gap { from, start, end, .. } => {
            assert_eq!(from, conv.client);
            assert_eq!(start, offset + 40);
            assert_eq!(end, offset + packets[cut_at].payload.len() as u64);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_file_cut_mid_record_is_reported() {
    let bytes = fixture("captures/wireshark_rtmp_sample_fp9.cap");
    let cut = &bytes[..bytes.len() - 10];
    assert!(matches!(
        read_tcp_flows(cut),
        Err(CaptureError::Truncated { format: "pcap", .. })
    ));
    assert!(matches!(read_tcp_flows(b"GIF89a"), Err(CaptureError::UnknownFormat(_))));
}
