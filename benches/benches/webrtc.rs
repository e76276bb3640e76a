//! Per-frame cost of sending H.264 to a WebRTC player, as the reference
//! server does it: an FLV AVCC body becomes Annex B with its parameter sets
//! (`media::h264`), then str0m packetizes it into RTP (FU-A), encrypts it
//! (SRTP) and hands out the datagrams.
//!
//! Two str0m peers are connected in memory (ICE and DTLS run for real, with
//! datagrams passed by hand); the benchmark then writes frames on the
//! sending side and drains its datagrams. The receiving side is not fed, so
//! only the sender's work is measured.
//!
//! `shared_payloads_to_srtp` is the same frames as the server's players
//! send them now: packetized once per stream (`webrtc::packets`, timed
//! apart as `shared_payloads_made`) and written by each player through
//! str0m's direct API with its own sequence numbers.
//!
//! `shared_payloads_own_path` is what they do now: the same payloads,
//! headers written and sealed by the player's own send path
//! (`webrtc::send`, AES-256-GCM as str0m negotiates it), no str0m.
//!
//! `send_path` then times putting those datagrams on a real UDP socket on
//! 127.0.0.1: one `sendto` per datagram, as the server used to, beside the
//! server's `udp::Batch`, which sends a picture's datagrams for one peer in
//! one GSO `sendmsg` where the kernel can.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use media::h264::{annexb_nal_units, nal_unit_type, to_avcc, AvcConfig};
use openh264::encoder::EncoderConfig;
use openh264::formats::YUVBuffer;
use reference_server::webrtc::packets;
use reference_server::webrtc::send::{self, Sender};
use reference_server::webrtc::srtp::{Master, Profile, SessionKeys};
use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, Input, Output, Rtc};

const WIDTH: usize = 1280;
const HEIGHT: usize = 720;
const FRAMES: usize = 30;

/// `FRAMES` frames of 720p H.264 (one IDR, then P frames of a moving
/// gradient) as FLV AVCC bodies, and the stream's configuration.
fn frames() -> (AvcConfig, Vec<Vec<u8>>) {
    let config = EncoderConfig::new().bitrate(openh264::encoder::BitRate::from_bps(2_500_000));
    let mut encoder = codecs::avc::quiet_encoder(config).unwrap();
    let mut avc = None;
    let mut bodies = Vec::new();
    for index in 0..FRAMES {
        // I420: a moving luma gradient with some texture, flat chroma.
        let mut yuv = vec![128u8; WIDTH * HEIGHT * 3 / 2];
        for (i, y) in yuv[..WIDTH * HEIGHT].iter_mut().enumerate() {
            let (col, row) = (i % WIDTH, i / WIDTH);
            *y = ((col + index * 8) ^ (row + index * 4)) as u8;
        }
        let yuv = YUVBuffer::from_vec(yuv, WIDTH, HEIGHT);
        let annexb = encoder.encode(&yuv).unwrap().to_vec();
        let units: Vec<&[u8]> = annexb_nal_units(&annexb).collect();
        let find = |t| units.iter().copied().find(|u| nal_unit_type(u) == t);
        if let (None, Some(sps), Some(pps)) = (&avc, find(7), find(8)) {
            avc = AvcConfig::from_parameter_sets(sps, pps);
        }
        let mut body = vec![0x27, 1, 0, 0, 0];
        to_avcc(
            units.into_iter().filter(|u| !matches!(nal_unit_type(u), 7 | 8)),
            &mut body,
        );
        bodies.push(body);
    }
    (avc.expect("the first frame carries SPS and PPS"), bodies)
}

/// A sending and a receiving peer, connected; the sender's video mid.
struct Pair {
    sender: Rtc,
    receiver: Rtc,
    sender_addr: SocketAddr,
    receiver_addr: SocketAddr,
    mid: Mid,
    now: Instant,
}

impl Pair {
    fn connect() -> Pair {
        let now = Instant::now();
        let sender_addr: SocketAddr = "127.0.0.1:10000".parse().unwrap();
        let receiver_addr: SocketAddr = "127.0.0.1:20000".parse().unwrap();
        let mut sender = Rtc::builder()
            .clear_codecs()
            .enable_h264(true)
            .set_ice_lite(true)
            .build(now);
        let mut receiver = Rtc::builder().clear_codecs().enable_h264(true).build(now);
        sender.add_local_candidate(Candidate::host(sender_addr, "udp").unwrap());
        receiver.add_local_candidate(Candidate::host(receiver_addr, "udp").unwrap());
        let mut api = receiver.sdp_api();
        api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let (offer, pending) = api.apply().unwrap();
        let offer = SdpOffer::from_sdp_string(&offer.to_sdp_string()).unwrap();
        let answer = sender.sdp_api().accept_offer(offer).unwrap();
        receiver.sdp_api().accept_answer(pending, answer).unwrap();
        let mut pair = Pair {
            sender,
            receiver,
            sender_addr,
            receiver_addr,
            mid: Mid::from("0"),
            now,
        };
        let mut mid = None;
        for _ in 0..10_000 {
            if let Some(m) = pair.step() {
                mid = Some(m);
            }
            if mid.is_some() && pair.sender.is_connected() && pair.receiver.is_connected() {
                pair.mid = mid.unwrap_or(pair.mid);
                return pair;
            }
        }
        panic!("the peers never connected");
    }

    /// Moves every pending datagram to the other peer, then advances time to
    /// the next timeout. Returns the sender's media mid once it is added.
    fn step(&mut self) -> Option<Mid> {
        let mut mid = None;
        let mut next = self.now + Duration::from_millis(100);
        for from_sender in [true, false] {
            loop {
                let (rtc, other, source, destination) = if from_sender {
                    (
                        &mut self.sender,
                        &mut self.receiver,
                        self.sender_addr,
                        self.receiver_addr,
                    )
                } else {
                    (
                        &mut self.receiver,
                        &mut self.sender,
                        self.receiver_addr,
                        self.sender_addr,
                    )
                };
                match rtc.poll_output().unwrap() {
                    Output::Timeout(at) => {
                        next = next.min(at);
                        break;
                    }
                    Output::Transmit(t) => {
                        let input = Receive::new(Protocol::Udp, source, destination, &t.contents).unwrap();
                        other.handle_input(Input::Receive(self.now, input)).unwrap();
                    }
                    Output::Event(Event::MediaAdded(added)) if from_sender => mid = Some(added.mid),
                    Output::Event(_) => {}
                }
            }
        }
        self.now = next.max(self.now + Duration::from_millis(1));
        self.sender.handle_input(Input::Timeout(self.now)).unwrap();
        self.receiver.handle_input(Input::Timeout(self.now)).unwrap();
        mid
    }

    /// Moves the sender's clock to `at` and drains it: how many datagrams
    /// it sent (what was written before goes out now).
    fn send(&mut self, at: Instant) -> usize {
        self.sender.handle_input(Input::Timeout(at)).unwrap();
        let mut datagrams = 0;
        loop {
            match self.sender.poll_output().unwrap() {
                Output::Transmit(_) => datagrams += 1,
                Output::Event(_) => {}
                Output::Timeout(_) => return datagrams,
            }
        }
    }

    /// The payload type the sender's H.264 was negotiated at.
    fn h264_pt(&mut self) -> str0m::media::Pt {
        self.sender
            .writer(self.mid)
            .and_then(|w| {
                w.payload_params()
                    .find(|p| p.spec().codec == Codec::H264)
                    .map(|p| p.pt())
            })
            .expect("H.264 negotiated")
    }
}

fn packetize(c: &mut Criterion) {
    let (avc, bodies) = frames();
    let bytes: usize = bodies.iter().map(Vec::len).sum();
    let mut pair = Pair::connect();
    let pt = pair.h264_pt();
    let mut frame = 0u64;
    let mut group = c.benchmark_group("webrtc");
    group.throughput(Throughput::Elements(FRAMES as u64));
    group.bench_function(
        format!("avcc_to_srtp ({FRAMES} frames of 720p, {} kB)", bytes / 1000),
        |b| {
            b.iter(|| {
                let mut datagrams = 0;
                for body in &bodies {
                    frame += 1;
                    // As the player does: one buffer per frame, handed to str0m.
                    let mut data = Vec::with_capacity(body.len() + 256);
                    avc.avcc_to_annexb(&body[5..], &mut data);
                    // 25 fps on the media and the wall clock alike.
                    let at = pair.now + Duration::from_millis(frame * 40);
                    let time = MediaTime::new(frame * 3600, Frequency::NINETY_KHZ);
                    let writer = pair.sender.writer(pair.mid).unwrap();
                    writer.write(pt, at, time, data).unwrap();
                    datagrams += pair.send(at);
                }
                assert!(datagrams >= FRAMES, "{datagrams} datagrams for {FRAMES} frames");
            });
        },
    );
    // As the server's players do since payloads are shared: the stream's
    // packets are made once (outside the timed loop, as one player among
    // many pays for them), and each player hands str0m the same payloads
    // with its own sequence numbers. This is a player's own cost per frame.
    let shared: Vec<_> = bodies.iter().map(|body| packets::avc(&avc, &body[5..])).collect();
    let (mut pair, mut seq, mut frame) = (Pair::connect(), 0u64, 0u64);
    group.bench_function(
        format!("shared_payloads_to_srtp ({FRAMES} frames of 720p, {} kB)", bytes / 1000),
        |b| {
            b.iter(|| {
                let mut datagrams = 0;
                for packets in &shared {
                    frame += 1;
                    let at = pair.now + Duration::from_millis(frame * 40);
                    let time = (frame * 3600) as u32;
                    let mut api = pair.sender.direct_api();
                    let stream = api.stream_tx_by_mid(pair.mid, None).unwrap();
                    for packet in packets {
                        seq += 1;
                        let write = RtpWrite::new(pt, seq.into(), time, at, packet.payload.clone())
                            .marker(packet.marker)
                            .nackable(true);
                        stream.write_rtp(write);
                    }
                    datagrams += pair.send(at);
                }
                assert!(datagrams >= FRAMES, "{datagrams} datagrams for {FRAMES} frames");
            });
        },
    );
    // The same payloads through the player's own send path.
    let keys = SessionKeys {
        local: Master::new(Profile::AeadAes256Gcm, &[1; 32], &[2; 12]).unwrap(),
        remote: Master::new(Profile::AeadAes256Gcm, &[3; 32], &[4; 12]).unwrap(),
    };
    let settings = send::Settings {
        cname: "bench".into(),
        resend_packets: 150,
        resend_window: Duration::from_secs(1),
        withhold_reports: false,
        withhold_resends: false,
    };
    let now = Instant::now();
    let mut sender = Sender::new(&keys, settings, now);
    let mut mid = [0u8; 16];
    mid[0] = b'1';
    let track = send::Track {
        ssrc: 1,
        mid_ext: Some((4, mid, 1)),
        clock_rate: 90_000,
        rtx: Some((2, vec![(96, 97)])),
    };
    sender.track(send::Kind::Video, track);
    // The stream's recent frames, where the player's resends find them.
    let recent = packets::Shared::default();
    let cuts: Vec<_> = (bodies.iter())
        .map(|body| {
            let avcc = bytes::Bytes::copy_from_slice(&body[5..]);
            recent.get_or_make(&avcc, || packets::avc(&avc, &avcc))
        })
        .collect();
    let (mut seq, mut frame) = (0u64, 0u64);
    group.bench_function(
        format!(
            "shared_payloads_own_path ({FRAMES} frames of 720p, {} kB)",
            bytes / 1000
        ),
        |b| {
            b.iter(|| {
                let mut datagrams = 0;
                for cut in &cuts {
                    frame += 1;
                    let at = now + Duration::from_millis(frame * 40);
                    let picture = send::Frame {
                        pt: 96,
                        first: seq + 1,
                        time: (frame * 3600) as u32,
                        wallclock: at,
                        number: cut.number,
                        packets: &cut.packets,
                    };
                    seq += cut.packets.len() as u64;
                    sender.write(send::Kind::Video, picture, at);
                    sender.drain(|_| datagrams += 1);
                }
                assert!(datagrams >= FRAMES, "{datagrams} datagrams for {FRAMES} frames");
            });
        },
    );
    // What the first player of a stream pays once for every player.
    group.bench_function(format!("shared_payloads_made ({FRAMES} frames of 720p)"), |b| {
        b.iter(|| {
            bodies
                .iter()
                .map(|body| packets::avc(&avc, &body[5..]).len())
                .sum::<usize>()
        });
    });
    group.finish();
}

/// The SRTP datagrams of each of the `FRAMES` pictures, as str0m made them.
fn pictures_as_datagrams() -> Vec<Vec<Vec<u8>>> {
    let (avc, bodies) = frames();
    let mut pair = Pair::connect();
    let pt = pair.h264_pt();
    let mut pictures = Vec::new();
    for (index, body) in bodies.iter().enumerate() {
        let frame = index as u64 + 1;
        let mut data = Vec::new();
        avc.avcc_to_annexb(&body[5..], &mut data);
        let at = pair.now + Duration::from_millis(frame * 40);
        let time = MediaTime::new(frame * 3600, Frequency::NINETY_KHZ);
        pair.sender.writer(pair.mid).unwrap().write(pt, at, time, data).unwrap();
        pair.sender.handle_input(Input::Timeout(at)).unwrap();
        let mut datagrams = Vec::new();
        loop {
            match pair.sender.poll_output().unwrap() {
                Output::Transmit(t) => datagrams.push(t.contents.to_vec()),
                Output::Event(_) => {}
                Output::Timeout(_) => break,
            }
        }
        pictures.push(datagrams);
    }
    pictures
}

fn send_path(c: &mut Criterion) {
    let pictures = pictures_as_datagrams();
    let datagrams: usize = pictures.iter().map(Vec::len).sum();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _inside = runtime.enter();
    // A peer that never reads: the kernel drops what overflows its buffer,
    // after the sender's work is done.
    let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let destination = peer.local_addr().unwrap();
    let port = std::sync::Arc::new(
        runtime
            .block_on(reference_server::webrtc::udp::Port::bind(
                "127.0.0.1:0".parse().unwrap(),
            ))
            .unwrap(),
    );
    // Let the reactor see the socket writable once.
    runtime.block_on(tokio::time::sleep(Duration::from_millis(20)));
    let plain = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut group = c.benchmark_group("webrtc_send");
    group.throughput(Throughput::Elements(FRAMES as u64));
    group.bench_function(
        format!("one sendto per datagram ({FRAMES} pictures of 720p, {datagrams} datagrams)"),
        |b| {
            b.iter(|| {
                for datagram in pictures.iter().flatten() {
                    let _ = plain.send_to(datagram, destination);
                }
            });
        },
    );
    let mut batch = reference_server::webrtc::udp::Batch::default();
    group.bench_function(
        format!(
            "udp::Batch, a picture per call with GSO (max {} segments)",
            port.max_segments()
        ),
        |b| {
            b.iter(|| {
                for picture in &pictures {
                    for datagram in picture {
                        batch.push(&port, destination, datagram);
                    }
                    batch.flush(&port);
                }
            });
        },
    );
    // An audio packet for each of 32 players (who never read): one send
    // each, or held and sent by one `sendmmsg`.
    let players: Vec<std::net::UdpSocket> = (0..32)
        .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    let addresses: Vec<_> = players.iter().map(|p| p.local_addr().unwrap()).collect();
    let audio = [0x80u8; 160];
    let mut batches: Vec<_> = addresses
        .iter()
        .map(|_| reference_server::webrtc::udp::Batch::default())
        .collect();
    for held in [false, true] {
        let name = match held {
            false => "an audio packet to each of 32 players, a send each",
            true => "an audio packet to each of 32 players, held: one sendmmsg",
        };
        group.bench_function(name, |b| {
            b.iter(|| {
                let _hold = held.then(reference_server::webrtc::udp::hold);
                for (batch, &to) in batches.iter_mut().zip(&addresses) {
                    batch.push(&port, to, &audio);
                    batch.flush(&port);
                }
            });
        });
    }
    group.finish();
    drop(peer);
    drop(players);
}

criterion_group!(benches, packetize, send_path);
criterion_main!(benches);
