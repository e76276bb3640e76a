//! The Enhanced FLV fixtures `examples/make_eflv.rs` wrote
//! (`fixtures/flv/eflv_*_{320x240,640x360,1280x720}.flv`): every tag reads with
//! `media::eflv`, each file holds what its row in `fixtures/README.md` says
//! (codecs, sequence starts first, 100 pictures with a keyframe every 25, the
//! audio packets, their times), the configuration records hold the streams'
//! parameters, and, when ffmpeg is installed, the elementary streams taken
//! back out of the tags decode to every picture and every audio frame.
//!
//! ffmpeg 5.1 cannot read enhanced FLV, hence the rebuilt elementary streams:
//! Annex B from the HEVCDecoderConfigurationRecord's parameter sets and the
//! length-prefixed NAL units, IVF around the VP8 and VP9 frames, temporal
//! delimiters put back between AV1 temporal units, Ogg pages around OpusHead
//! and the Opus packets, the FLAC sequence start followed by the frames, and
//! the AC-3 and E-AC-3 syncframes one after another.

use std::io::Write;
use std::process::{Command, Stdio};

use bytes::Bytes;
use media::eflv::{self, FourCc, PacketType};
use media::flv::{self, TagKind};

/// One packet of a fixture, as the tags carry it.
#[derive(Debug)]
struct Unit {
    timestamp: u32,
    keyframe: bool,
    fourcc: FourCc,
    packet_type: PacketType,
    composition_offset: i32,
    data: Vec<u8>,
}

/// A fixture's tags, read and checked to be one single-track packet each.
struct Fixture {
    name: &'static str,
    video: Vec<Unit>,
    audio: Vec<Unit>,
}

fn read(name: &'static str) -> Fixture {
    let path = format!("{}/../fixtures/flv/{name}", env!("CARGO_MANIFEST_DIR"));
    let file = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(file.len() < 400_000, "{name}: {} bytes", file.len());
    assert_eq!(file[4], 0x05, "{name}: the header flags audio and video");
    let tags = flv::read_tags(&Bytes::from(file)).unwrap();
    let (mut video, mut audio) = (Vec::new(), Vec::new());
    let mut last_time = 0;
    let mut coded_seen = false;
    for (i, tag) in tags.iter().enumerate() {
        assert!(tag.timestamp >= last_time, "{name}: tag {i} goes back in time");
        last_time = tag.timestamp;
        let parsed = eflv::parse(tag.kind, &tag.data)
            .unwrap_or_else(|e| panic!("{name}: tag {i}: {e}"))
            .unwrap_or_else(|| panic!("{name}: tag {i} is not enhanced"));
        assert_eq!((parsed.header.multitrack, parsed.header.nano_offset), (None, None));
        let packets: Vec<_> = parsed.packets().collect::<Result<_, _>>().unwrap();
        let [packet] = packets[..] else {
            panic!("{name}: tag {i} holds {} packets", packets.len())
        };
        assert_eq!(packet.track, 0);
        if packet.packet_type.is_coded() {
            coded_seen = true;
        } else {
            assert!(
                !coded_seen,
                "{name}: tag {i}, a {:?} after coded frames",
                packet.packet_type
            );
        }
        let unit = Unit {
            timestamp: tag.timestamp,
            keyframe: parsed.header.is_keyframe(),
            fourcc: packet.fourcc,
            packet_type: packet.packet_type,
            composition_offset: packet.composition_offset,
            data: packet.data.to_vec(),
        };
        match tag.kind {
            TagKind::Video => video.push(unit),
            TagKind::Audio => audio.push(unit),
            TagKind::Script => panic!("{name}: a script tag"),
        }
    }
    Fixture { name, video, audio }
}

impl Fixture {
    /// Checks the video: one SequenceStart (a keyframe) then 100 CodedFrames
    /// of `fourcc`, 40 ms apart, keyframes at pictures 0, 25, 50 and 75.
    /// Returns the record and the frames.
    fn video(&self, fourcc: FourCc) -> (&[u8], Vec<&Unit>) {
        let name = self.name;
        let (start, frames) = self.video.split_first().unwrap();
        assert_eq!(
            (start.packet_type, start.keyframe, start.timestamp),
            (PacketType::SequenceStart, true, 0)
        );
        assert!(self.video.iter().all(|u| u.fourcc == fourcc), "{name}");
        assert!(frames
            .iter()
            .all(|u| u.packet_type == PacketType::CodedFrames && u.composition_offset == 0));
        assert_eq!(frames.len(), 100, "{name}");
        let times: Vec<u32> = frames.iter().map(|u| u.timestamp).collect();
        assert_eq!(times, (0..100).map(|i| i * 40).collect::<Vec<_>>(), "{name}");
        let keys: Vec<usize> = (0..frames.len()).filter(|&i| frames[i].keyframe).collect();
        assert_eq!(keys, [0, 25, 50, 75], "{name}");
        (&start.data, frames.iter().collect())
    }

    /// Checks the audio: a SequenceStart first when `with_start`, then
    /// `count` CodedFrames of `fourcc` lasting about 4 s. Returns the
    /// sequence start (if any) and the frames.
    fn audio(&self, fourcc: FourCc, with_start: bool, count: usize) -> (Option<&[u8]>, Vec<&Unit>) {
        let name = self.name;
        assert!(self.audio.iter().all(|u| u.fourcc == fourcc && !u.keyframe), "{name}");
        let (start, frames) = if with_start {
            let (start, frames) = self.audio.split_first().unwrap();
            assert_eq!((start.packet_type, start.timestamp), (PacketType::SequenceStart, 0));
            (Some(&start.data[..]), frames)
        } else {
            (None, &self.audio[..])
        };
        assert!(
            frames.iter().all(|u| u.packet_type == PacketType::CodedFrames),
            "{name}"
        );
        assert_eq!(frames.len(), count, "{name}");
        assert_eq!(frames[0].timestamp, 0);
        let last = frames.last().unwrap().timestamp;
        assert!(
            (3_900..4_100).contains(&last),
            "{name}: the last audio frame at {last} ms"
        );
        (start, frames.iter().collect())
    }
}

/// Splits 4-byte length-prefixed NAL units, which must fill `data` exactly.
fn nal_units(data: &[u8]) -> Vec<&[u8]> {
    let mut nals = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        nals.push(&rest[4..4 + len]);
        rest = &rest[4 + len..];
    }
    nals
}

/// The HEVCDecoderConfigurationRecord's parameter set arrays: (type, NAL units).
fn hvcc_arrays(record: &[u8]) -> Vec<(u8, Vec<&[u8]>)> {
    let mut arrays = Vec::new();
    let mut at = 23;
    for _ in 0..record[22] {
        let kind = record[at] & 0x3F;
        let count = u16::from_be_bytes([record[at + 1], record[at + 2]]);
        at += 3;
        let mut nals = Vec::new();
        for _ in 0..count {
            let len = usize::from(u16::from_be_bytes([record[at], record[at + 1]]));
            nals.push(&record[at + 2..at + 2 + len]);
            at += 2 + len;
        }
        arrays.push((kind, nals));
    }
    assert_eq!(at, record.len(), "the arrays fill the record");
    arrays
}

/// Checks an HEVC fixture's record (Main profile, 4:2:0, 8-bit, 4-byte
/// lengths, one VPS, SPS and PPS) and frames (length-prefixed NAL units, no
/// parameter sets, an IRAP picture in each keyframe), and returns the stream
/// as Annex B.
fn hevc(fixture: &Fixture) -> Vec<u8> {
    let (record, frames) = fixture.video(FourCc::HEVC);
    assert_eq!((record[0], record[1] & 0x1F), (1, 1), "version 1, Main profile");
    assert_eq!(&record[16..19], [0xFD, 0xF8, 0xF8], "4:2:0, 8-bit");
    assert_eq!(record[21] & 0x03, 3, "4-byte NAL unit lengths");
    let arrays = hvcc_arrays(record);
    let kinds: Vec<(u8, usize)> = arrays.iter().map(|(kind, nals)| (*kind, nals.len())).collect();
    assert_eq!(kinds, [(32, 1), (33, 1), (34, 1)]);
    let mut annexb = Vec::new();
    for nal in arrays.iter().flat_map(|(_, nals)| nals) {
        annexb.extend_from_slice(&[0, 0, 0, 1]);
        annexb.extend_from_slice(nal);
    }
    for frame in frames {
        let nals = nal_units(&frame.data);
        let kinds: Vec<u8> = nals.iter().map(|nal| (nal[0] >> 1) & 0x3F).collect();
        assert!(kinds.iter().all(|k| !(32..=34).contains(k)), "{kinds:?}");
        assert_eq!(frame.keyframe, kinds.iter().any(|k| (16..=21).contains(k)), "{kinds:?}");
        for nal in nals {
            annexb.extend_from_slice(&[0, 0, 0, 1]);
            annexb.extend_from_slice(nal);
        }
    }
    annexb
}

/// An IVF file of `frames` (320x240, 1/25 s, a frame per 40 ms tag).
fn ivf(fourcc: &[u8; 4], frames: &[&Unit]) -> Vec<u8> {
    let mut out = b"DKIF\x00\x00\x20\x00".to_vec();
    out.extend_from_slice(fourcc);
    out.extend_from_slice(&[0x40, 0x01, 0xF0, 0x00, 25, 0, 0, 0, 1, 0, 0, 0]);
    out.extend_from_slice(&(frames.len() as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    for frame in frames {
        out.extend_from_slice(&(frame.data.len() as u32).to_le_bytes());
        out.extend_from_slice(&u64::from(frame.timestamp / 40).to_le_bytes());
        out.extend_from_slice(&frame.data);
    }
    out
}

/// Checks a VP9 fixture's vpcC (version 1, profile 0, the level of its
/// picture size: 2.0 at 320x240, 3.1 at 1280x720, 8-bit 4:2:0, colour
/// unspecified) and key frames (frame_type 0 in the first byte), and
/// returns the frames as IVF.
fn vp9(fixture: &Fixture) -> Vec<u8> {
    let (record, frames) = fixture.video(FourCc::VP9);
    let level = if fixture.name.contains("1280x720") { 31 } else { 20 };
    assert_eq!(record, [1, 0, 0, 0, 0, level, 0x82, 2, 2, 2, 0, 0]);
    for frame in &frames {
        assert_eq!(
            frame.keyframe,
            frame.data[0] & 0x04 == 0,
            "frame_type in {:02x}",
            frame.data[0]
        );
    }
    ivf(b"VP90", &frames)
}

/// Checks an AV1 fixture's av1C (0x81, profile 0 level 2.0, 8-bit 4:2:0,
/// then the sequence header OBU, which each keyframe repeats) and returns
/// the temporal units with their temporal delimiters put back.
fn av1(fixture: &Fixture) -> Vec<u8> {
    let (record, frames) = fixture.video(FourCc::AV1);
    // Marker and version, seq_profile 0 (Main) with the level of the
    // picture size, 8-bit 4:2:0 with colocated chroma, no delay.
    assert_eq!((record[0], record[1] >> 5, &record[2..4]), (0x81, 0, &[0x0C, 0x00][..]));
    let sequence_header = &record[4..];
    assert_eq!(sequence_header[0] >> 3 & 0x0F, 1, "configOBUs is a sequence header OBU");
    assert_eq!(
        usize::from(sequence_header[1]),
        sequence_header.len() - 2,
        "and only that"
    );
    let mut stream = Vec::new();
    for frame in frames {
        assert_ne!(frame.data[0] >> 3 & 0x0F, 2, "no temporal delimiter");
        if frame.keyframe {
            assert!(frame.data.starts_with(sequence_header));
        }
        stream.extend_from_slice(&[0x12, 0x00]);
        stream.extend_from_slice(&frame.data);
    }
    stream
}

/// An Ogg page holding one whole packet.
fn ogg_page(flags: u8, granule: u64, sequence: u32, packet: &[u8]) -> Vec<u8> {
    let mut page = b"OggS\x00".to_vec();
    page.push(flags);
    page.extend_from_slice(&granule.to_le_bytes());
    page.extend_from_slice(&0x4546_4C56u32.to_le_bytes());
    page.extend_from_slice(&sequence.to_le_bytes());
    page.extend_from_slice(&[0; 4]);
    let mut lacing = vec![255; packet.len() / 255];
    lacing.push((packet.len() % 255) as u8);
    page.push(lacing.len() as u8);
    page.extend_from_slice(&lacing);
    page.extend_from_slice(packet);
    let crc = conformance::elementary::ogg_crc(0, &page);
    page[22..26].copy_from_slice(&crc.to_le_bytes());
    page
}

/// The samples at 48 kHz of an Opus packet (RFC 6716 3.1).
fn opus_samples(packet: &[u8]) -> u64 {
    let config = packet[0] >> 3;
    let per_frame = match config {
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        12..=15 => [480, 960][usize::from(config % 2)],
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames = match packet[0] & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => u64::from(packet[1] & 0x3F),
    };
    per_frame * frames
}

/// Checks an Opus fixture's OpusHead (mono, 48 kHz) and 201 packets 20 ms
/// apart, and returns them in an Ogg file.
fn opus(fixture: &Fixture) -> Vec<u8> {
    let (head, frames) = fixture.audio(FourCc::OPUS, true, 201);
    let head = head.unwrap();
    assert!(head.starts_with(b"OpusHead\x01\x01"), "version 1, one channel");
    assert_eq!(&head[12..16], 48_000u32.to_le_bytes());
    let mut ogg = ogg_page(2, 0, 0, head);
    ogg.extend(ogg_page(0, 0, 1, b"OpusTags\x00\x00\x00\x00\x00\x00\x00\x00"));
    let mut granule = 0;
    for (i, frame) in frames.iter().enumerate() {
        assert_eq!(u64::from(frame.timestamp), granule / 48, "packet {i}");
        granule += opus_samples(&frame.data);
        let last = i + 1 == frames.len();
        ogg.extend(ogg_page(if last { 4 } else { 0 }, granule, i as u32 + 2, &frame.data));
    }
    ogg
}

#[test]
fn hevc_and_opus() {
    let fixture = read("eflv_hevc_opus_320x240.flv");
    let annexb = hevc(&fixture);
    let ogg = opus(&fixture);
    decodes(&fixture, "hevc", &annexb, 100);
    decodes(&fixture, "ogg", &ogg, 201);
}

#[test]
fn vp9_and_opus() {
    let fixture = read("eflv_vp9_opus_320x240.flv");
    let ivf = vp9(&fixture);
    let ogg = opus(&fixture);
    decodes(&fixture, "ivf", &ivf, 100);
    decodes(&fixture, "ogg", &ogg, 201);
}

#[test]
fn vp8_and_opus() {
    let fixture = read("eflv_vp8_opus_320x240.flv");
    let (record, frames) = fixture.video(FourCc::VP8);
    assert_eq!(
        record,
        [1, 0, 0, 0, 0, 0, 0x82, 2, 2, 2, 0, 0],
        "profile 0, 8-bit 4:2:0"
    );
    for frame in &frames {
        assert_eq!(frame.keyframe, frame.data[0] & 1 == 0);
        if frame.keyframe {
            assert_eq!(
                &frame.data[3..10],
                [0x9D, 0x01, 0x2A, 0x40, 0x01, 0xF0, 0x00],
                "320x240"
            );
        }
    }
    let ogg = opus(&fixture);
    decodes(&fixture, "ivf", &ivf(b"VP80", &frames), 100);
    decodes(&fixture, "ogg", &ogg, 201);
}

#[test]
fn av1_and_flac() {
    let fixture = read("eflv_av1_flac_320x240.flv");
    let obu = av1(&fixture);
    let (start, frames) = fixture.audio(FourCc::FLAC, true, 42);
    let start = start.unwrap();
    // "fLaC", the STREAMINFO block header (last block, 34 bytes), STREAMINFO:
    // blocks of 4608 samples, 48 kHz, mono, 16-bit, 192000 samples.
    assert_eq!(start.len(), 42);
    assert_eq!(&start[..12], b"fLaC\x80\x00\x00\x22\x12\x00\x12\x00");
    assert_eq!(&start[18..26], [0x0B, 0xB8, 0x00, 0xF0, 0x00, 0x02, 0xEE, 0x00]);
    let mut flac = start.to_vec();
    for (i, frame) in frames.iter().enumerate() {
        assert_eq!(&frame.data[..2], [0xFF, 0xF8], "a fixed block size frame");
        assert_eq!(frame.timestamp, (i as u64 * 4608 * 1000 / 48_000) as u32);
        flac.extend_from_slice(&frame.data);
    }
    decodes(&fixture, "obu", &obu, 100);
    decodes(&fixture, "flac", &flac, 42);
}

/// The syncframes of an AC-3 or E-AC-3 fixture, each a whole frame of `bsid`
/// at 48 kHz, 32 ms apart, one after another.
fn syncframes(fixture: &Fixture, fourcc: FourCc, bsid: u8) -> Vec<u8> {
    let (start, frames) = fixture.audio(fourcc, false, 125);
    assert!(start.is_none());
    let mut stream = Vec::new();
    for (i, frame) in frames.iter().enumerate() {
        assert_eq!(&frame.data[..2], [0x0B, 0x77]);
        assert_eq!(frame.data[5] >> 3, bsid);
        assert_eq!(frame.timestamp, i as u32 * 32);
        stream.extend_from_slice(&frame.data);
    }
    stream
}

#[test]
fn hevc_640x360_and_ac3() {
    let fixture = read("eflv_hevc_ac3_640x360.flv");
    let annexb = hevc(&fixture);
    let ac3 = syncframes(&fixture, FourCc::AC3, 8);
    assert_eq!(ac3.len(), 125 * 384, "96 kbit/s: 384 bytes a frame");
    decodes(&fixture, "hevc", &annexb, 100);
    decodes(&fixture, "ac3", &ac3, 125);
}

#[test]
fn vp9_and_eac3() {
    let fixture = read("eflv_vp9_eac3_320x240.flv");
    let ivf = vp9(&fixture);
    let eac3 = syncframes(&fixture, FourCc::EAC3, 16);
    decodes(&fixture, "ivf", &ivf, 100);
    decodes(&fixture, "eac3", &eac3, 125);
}

#[test]
fn the_720p_bench_inputs() {
    let fixture = read("eflv_hevc_opus_1280x720.flv");
    decodes(&fixture, "hevc", &hevc(&fixture), 100);
    let fixture = read("eflv_av1_opus_1280x720.flv");
    decodes(&fixture, "obu", &av1(&fixture), 100);
    let fixture = read("eflv_vp9_opus_1280x720.flv");
    decodes(&fixture, "ivf", &vp9(&fixture), 100);
}

/// Decodes `stream` with ffmpeg's demuxer `format` and checks it gives
/// `frames` frames and no error; says so and checks nothing when ffmpeg is
/// not installed.
fn decodes(fixture: &Fixture, format: &str, stream: &[u8], frames: usize) {
    let installed = Command::new("ffmpeg")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        println!("ffmpeg is not installed: {} not decoded ({format})", fixture.name);
        return;
    }
    let mut child = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-v",
            "error",
            "-f",
            format,
            "-i",
            "-",
            "-f",
            "framecrc",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = stream.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{}: ffmpeg -f {format}: {stderr}",
        fixture.name
    );
    assert_eq!(stderr, "", "{}: ffmpeg -f {format} complains", fixture.name);
    let decoded = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.starts_with('#'))
        .count();
    assert_eq!(
        decoded, frames,
        "{}: frames ffmpeg decodes from the {format} stream",
        fixture.name
    );
}
