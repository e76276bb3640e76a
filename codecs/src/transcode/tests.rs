use super::*;
use crate::audio::{dbfs, dominant_frequency, sine};
use crate::g711::{linear_to_alaw, linear_to_ulaw};
use crate::mp3::FrameHeader;
use crate::nellymoser::FRAME_SAMPLES as NELLY_FRAME;
use media::flv::{read_tags, TagKind};

const RATE: u32 = 48_000;

fn fixture(name: &str) -> Bytes {
    Bytes::from(std::fs::read(format!("{}/../fixtures/flv/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap())
}

/// The audio tags of an FLV fixture as (timestamp, body).
fn audio_tags(name: &str) -> Vec<(u32, Bytes)> {
    read_tags(&fixture(name))
        .unwrap()
        .into_iter()
        .filter(|t| t.kind == TagKind::Audio)
        .map(|t| (t.timestamp, t.data))
        .collect()
}

/// Runs tags through a fresh ToOpus; every push must succeed.
fn to_opus(tags: &[(u32, Bytes)]) -> Vec<OpusPacket> {
    let mut pipeline = ToOpus::new(DEFAULT_OPUS_BITRATE).unwrap();
    let mut packets = Vec::new();
    for (ts, body) in tags {
        pipeline.push(*ts, body, &mut packets).unwrap();
    }
    packets
}

/// Decodes packets to 48 kHz mono.
fn decode(packets: &[OpusPacket]) -> Vec<i16> {
    let mut decoder = OpusDecoder::new(1).unwrap();
    let mut pcm = Vec::new();
    for p in packets {
        assert_eq!(decoder.decode(&p.data, &mut pcm).unwrap(), 960);
    }
    pcm
}

/// Pitch and level of PCM at `rate` from `skip_ms` on.
fn measure(pcm: &[i16], rate: u32, skip_ms: usize) -> (f64, f64) {
    let steady = &pcm[(skip_ms * rate as usize / 1000).min(pcm.len())..];
    (dominant_frequency(steady, rate).unwrap_or(0.0), dbfs(steady))
}

/// Timestamp steps between consecutive packets.
fn steps(packets: &[OpusPacket]) -> Vec<i64> {
    packets
        .windows(2)
        .map(|w| w[1].rtp_timestamp as i64 - w[0].rtp_timestamp as i64)
        .collect()
}

/// FLV bodies of a Flash-style Speex tone: one 20 ms frame per tag, header 0xB2.
fn speex_tags(frequency: f64, frames: usize, first_ms: u32) -> Vec<(u32, Bytes)> {
    let mut encoder = SpeexEncoder::new(10).unwrap();
    (0..frames)
        .map(|i| {
            let pcm = sine(frequency, SPEEX_RATE, 1, (i * SPEEX_FRAME) as u64, SPEEX_FRAME, 0.5);
            let mut body = vec![SPEEX_TAG_HEADER];
            encoder.encode(&pcm, &mut body).unwrap();
            (first_ms + 20 * i as u32, Bytes::from(body))
        })
        .collect()
}

/// G.711 bodies of 20 ms (160 samples), µ-law mono, header 0x82, with the
/// timestamps given.
fn ulaw_tags(frequency: f64, timestamps: &[u32]) -> Vec<(u32, Bytes)> {
    timestamps
        .iter()
        .enumerate()
        .map(|(i, &ts)| {
            let mut body = vec![0x82];
            body.extend(
                sine(frequency, 8_000, 1, i as u64 * 160, 160, 0.5)
                    .into_iter()
                    .map(linear_to_ulaw),
            );
            (ts, Bytes::from(body))
        })
        .collect()
}

fn assert_tone(pcm: &[i16], rate: u32, frequency: f64, what: &str) -> (f64, f64) {
    let (f, level) = measure(pcm, rate, 200);
    eprintln!("{what}: {f} Hz, {level:.2} dBFS");
    assert!((f - frequency).abs() <= 5.0, "{what}: {f} Hz");
    assert!(level > -30.0, "{what}: {level} dBFS");
    (f, level)
}

#[test]
fn the_flash_speex_recording_becomes_audible_opus() {
    let tags = audio_tags("red5_h264_speex.flv");
    assert_eq!(tags.len(), 1362);
    // Straight through the Speex decoder: one 20 ms frame per tag, 16 kHz.
    let mut speex = SpeexDecoder::new().unwrap();
    let mut pcm16 = Vec::new();
    for (_, body) in &tags {
        assert_eq!(body[0], 0xB2);
        assert_eq!(speex.decode(&body[1..], &mut pcm16).unwrap(), SPEEX_FRAME);
    }
    let level16 = dbfs(&pcm16);
    let loud_windows = pcm16.chunks(SPEEX_FRAME).filter(|w| dbfs(w) > -50.0).count();
    eprintln!("red5 speex: {level16:.2} dBFS at 16 kHz, {loud_windows} of 1362 frames above -50 dBFS");
    assert!(level16 > -45.0, "{level16}");
    assert!(loud_windows > 200);

    let packets = to_opus(&tags);
    let last_ms = tags.last().unwrap().0;
    eprintln!(
        "red5 speex -> opus: {} packets for {} frames, timestamps {}..{} (last tag at {last_ms} ms x 48 = {})",
        packets.len(),
        tags.len(),
        packets[0].rtp_timestamp,
        packets.last().unwrap().rtp_timestamp,
        u64::from(last_ms) * 48
    );
    assert!((1358..=1362).contains(&packets.len()), "{}", packets.len());
    assert_eq!(packets[0].rtp_timestamp, 0);
    let steps = steps(&packets);
    assert!(steps.iter().all(|&s| s >= 960), "timestamps only move forward here");
    let reanchors = steps.iter().filter(|&&s| s != 960).count();
    eprintln!("red5 speex -> opus: {reanchors} re-anchors (the recording's clock runs 3 s ahead of its audio)");
    let end = packets.last().unwrap().rtp_timestamp as i64;
    assert!(
        (end - i64::from(last_ms) * 48).abs() <= REANCHOR_48K as i64 + 1920,
        "{end}"
    );
    let pcm48 = decode(&packets);
    let level48 = dbfs(&pcm48);
    eprintln!("red5 speex -> opus -> pcm: {level48:.2} dBFS at 48 kHz");
    assert!((level48 - level16).abs() < 3.0, "{level48} vs {level16}");
}

#[test]
fn ffmpeg_speex_with_two_frames_per_tag_becomes_a_1khz_tone() {
    let tags = audio_tags("ffmpeg_speex_wb_2frames_1khz.flv");
    assert_eq!(tags[0].1[0], 0xB6);
    let packets = to_opus(&tags);
    // 50 tags x 40 ms = 100 packets, less what the resampler still holds.
    assert!((98..=100).contains(&packets.len()), "{}", packets.len());
    assert!(steps(&packets).iter().all(|&s| s == 960));
    assert_tone(&decode(&packets), RATE, 1000.0, "ffmpeg speex 2 frames/tag -> opus");
}

#[test]
fn the_aac_fixture_becomes_a_440hz_tone() {
    let tags = audio_tags("ffmpeg_aac_lc_mono_44100_440hz.flv");
    let packets = to_opus(&tags);
    // 88 frames x 1024 samples at 44.1 kHz = 2.043 s = 102 packets.
    eprintln!("aac -> opus: {} packets", packets.len());
    assert!((100..=102).contains(&packets.len()), "{}", packets.len());
    assert_eq!(packets[0].rtp_timestamp, 0);
    assert_tone(&decode(&packets), RATE, 440.0, "aac 44.1 kHz mono -> opus");
}

#[test]
fn the_stereo_48khz_aac_fixture_becomes_a_1khz_tone() {
    let tags = audio_tags("ffmpeg_aac_lc_stereo_48000_1khz.flv");
    let packets = to_opus(&tags);
    assert_tone(&decode(&packets), RATE, 1000.0, "aac 48 kHz stereo -> opus");
}

#[test]
fn the_mp3_fixture_becomes_a_440hz_tone() {
    let tags = audio_tags("ffmpeg_mp3_mono_44100_440hz.flv");
    let packets = to_opus(&tags);
    eprintln!("mp3 -> opus: {} packets", packets.len());
    assert!(
        (100..=102).contains(&packets.len()),
        "78 x 1152 samples = 2.038 s: {}",
        packets.len()
    );
    assert_tone(&decode(&packets), RATE, 440.0, "mp3 44.1 kHz -> opus");
}

#[test]
fn mp3_at_8khz_as_sound_format_14_becomes_a_1khz_tone() {
    let stream = fixture("ffmpeg_mp3_8000_1khz.mp3");
    let header = FrameHeader::parse(&stream).unwrap();
    let tags: Vec<(u32, Bytes)> = stream
        .chunks_exact(2 * header.frame_len)
        .enumerate()
        .map(|(i, frames)| {
            let mut body = vec![0xE2]; // SoundFormat 14, 16-bit, mono
            body.extend_from_slice(frames);
            (i as u32 * 144, Bytes::from(body))
        })
        .collect();
    let mut pipeline = ToOpus::new(DEFAULT_OPUS_BITRATE).unwrap();
    let mut packets = Vec::new();
    for (ts, body) in &tags {
        pipeline.push(*ts, body, &mut packets).unwrap();
    }
    assert_eq!(pipeline.input_codec(), Some(AudioCodec::Mp3_8k));
    assert_eq!(pipeline.input_sample_rate(), Some(8_000));
    assert_tone(&decode(&packets), RATE, 1000.0, "mp3 8 kHz (format 14) -> opus");
}

#[test]
fn the_pcmu_fixture_becomes_a_440hz_tone() {
    let tags = audio_tags("ffmpeg_pcmu_8000_440hz.flv");
    let packets = to_opus(&tags);
    assert!((98..=100).contains(&packets.len()), "{}", packets.len());
    assert_tone(&decode(&packets), RATE, 440.0, "g.711 µ-law -> opus");
}

#[test]
fn stereo_a_law_becomes_a_1khz_tone() {
    let tags: Vec<(u32, Bytes)> = (0..50)
        .map(|i| {
            let mut body = vec![0x73]; // SoundFormat 7, 16-bit, stereo
            body.extend(
                sine(1000.0, 8_000, 2, i * 160, 160, 0.5)
                    .into_iter()
                    .map(linear_to_alaw),
            );
            (i as u32 * 20, Bytes::from(body))
        })
        .collect();
    let packets = to_opus(&tags);
    assert_tone(&decode(&packets), RATE, 1000.0, "g.711 A-law stereo -> opus");
}

#[test]
fn enhanced_rtmp_opus_is_decoded_and_reencoded() {
    let mut tags = vec![(
        0u32,
        Bytes::from_static(b"\x90OpusOpusHead\x01\x02\x38\x01\x80\xbb\x00\x00\x00\x00\x00"),
    )];
    let mut encoder = OpusEncoder::new(2, 64_000).unwrap();
    for i in 0..50u32 {
        // 20 ms stereo packets, as a WebRTC publisher's sound stored by the server.
        let packet = encoder
            .encode(&sine(440.0, RATE, 2, u64::from(i) * 960, 960, 0.5))
            .unwrap();
        let mut body = vec![0x91];
        body.extend_from_slice(b"Opus");
        body.extend_from_slice(&packet);
        tags.push((20 * i, Bytes::from(body)));
    }
    let packets = to_opus(&tags);
    assert!((49..=50).contains(&packets.len()), "{}", packets.len());
    assert!(steps(&packets).iter().all(|&s| s == 960));
    assert_tone(&decode(&packets), RATE, 440.0, "enhanced-RTMP opus -> opus");
    let mut pipeline = ToOpus::new(DEFAULT_OPUS_BITRATE).unwrap();
    let mut out = Vec::new();
    assert!(pipeline.push(0, b"\x91Op", &mut out).is_err(), "cut inside the FourCC");
    assert!(
        matches!(pipeline.push(0, b"\x95Opus", &mut out), Err(CodecError::Corrupt { .. })),
        "a multitrack message of reserved layout 4"
    );
}

#[test]
fn enhanced_rtmp_flac_ac3_and_eac3_fixtures_become_a_440hz_tone() {
    for name in [
        "eflv_av1_flac_320x240.flv",
        "eflv_hevc_ac3_640x360.flv",
        "eflv_vp9_eac3_320x240.flv",
    ] {
        let packets = to_opus(&audio_tags(name));
        // 4 s of sound: 200 packets of 20 ms, less what the pipeline still holds.
        assert!((195..=200).contains(&packets.len()), "{name}: {}", packets.len());
        assert!(steps(&packets).iter().all(|&s| s == 960), "{name}");
        assert_tone(&decode(&packets), RATE, 440.0, name);
    }
}

/// The level of a Nellymoser fixture decoded at its own rate, from 200 ms on
/// and without its last two frames (FFmpeg's encoder ends its stream with a
/// louder frame, which the Opus side still holds when the input ends).
fn nellymoser_level(name: &str, rate: u32) -> f64 {
    let mut decoder = NellymoserDecoder::new().unwrap();
    let mut pcm = Vec::new();
    for (_, body) in audio_tags(name) {
        decoder.decode(&body[1..], &mut pcm).unwrap();
    }
    dbfs(&pcm[rate as usize / 5..pcm.len() - 2 * NELLY_FRAME])
}

#[test]
fn the_nellymoser_fixture_becomes_a_440hz_tone() {
    let name = "ffmpeg_nellymoser_22050_440hz.flv";
    let tags = audio_tags(name);
    assert!(tags.iter().all(|(_, body)| body[0] == 0x6A), "SoundFormat 6, 22 kHz");
    let mut pipeline = ToOpus::new(DEFAULT_OPUS_BITRATE).unwrap();
    let mut packets = Vec::new();
    for (ts, body) in &tags {
        pipeline.push(*ts, body, &mut packets).unwrap();
    }
    assert_eq!(pipeline.input_codec(), Some(AudioCodec::Nellymoser));
    assert_eq!(pipeline.input_sample_rate(), Some(22_050));
    // 88 frames x 256 samples at 22.05 kHz = 1.022 s = 51 packets, less what
    // the resampler holds.
    eprintln!("nellymoser 22 kHz -> opus: {} packets", packets.len());
    assert!((49..=51).contains(&packets.len()), "{}", packets.len());
    assert_eq!(packets[0].rtp_timestamp, 0);
    assert!(steps(&packets).iter().all(|&s| s == 960));
    let (_, level) = assert_tone(&decode(&packets), RATE, 440.0, "nellymoser 22 kHz -> opus");
    let source = nellymoser_level(name, 22_050);
    assert!((level - source).abs() <= 1.5, "{level} dBFS out, {source} dBFS in");
}

#[test]
fn nellymoser_at_8_and_16khz_becomes_a_1khz_tone() {
    for (name, header, rate) in [
        ("ffmpeg_nellymoser_8000_1khz.flv", 0x52, 8_000),
        ("ffmpeg_nellymoser_16000_1khz.flv", 0x42, 16_000),
    ] {
        let tags = audio_tags(name);
        assert_eq!(tags[0].1[0], header);
        let mut pipeline = ToOpus::new(DEFAULT_OPUS_BITRATE).unwrap();
        let mut packets = Vec::new();
        for (ts, body) in &tags {
            pipeline.push(*ts, body, &mut packets).unwrap();
        }
        assert_eq!(pipeline.input_sample_rate(), Some(rate));
        assert!(steps(&packets).iter().all(|&s| s == 960));
        let (_, level) = assert_tone(&decode(&packets), RATE, 1000.0, name);
        let source = nellymoser_level(name, rate);
        assert!(
            (level - source).abs() <= 1.5,
            "{name}: {level} dBFS out, {source} dBFS in"
        );
    }
}

#[test]
fn flash_style_nellymoser_with_four_frames_per_tag_keeps_the_clock() {
    let tags = audio_tags("ffmpeg_nellymoser_22050_440hz.flv");
    // Four frames (1024 samples, 46.4 ms) per tag, as Flash Player sends at 22 kHz.
    let grouped: Vec<(u32, Bytes)> = tags
        .chunks(4)
        .enumerate()
        .map(|(i, group)| {
            let mut body = vec![0x6A];
            for (_, b) in group {
                body.extend_from_slice(&b[1..]);
            }
            (
                700 + (i as u64 * 4 * NELLY_FRAME as u64 * 1000 / 22_050) as u32,
                Bytes::from(body),
            )
        })
        .collect();
    let packets = to_opus(&grouped);
    assert_eq!(packets[0].rtp_timestamp, 700 * 48);
    assert!((49..=51).contains(&packets.len()), "{}", packets.len());
    assert!(steps(&packets).iter().all(|&s| s == 960));
    assert_tone(&decode(&packets), RATE, 440.0, "nellymoser 4 frames/tag -> opus");
    let mut pipeline = ToOpus::new(DEFAULT_OPUS_BITRATE).unwrap();
    let mut out = Vec::new();
    let err = pipeline.push(0, &grouped[0].1[..100], &mut out).unwrap_err();
    assert!(
        matches!(
            err,
            CodecError::Corrupt {
                codec: "nellymoser",
                ..
            }
        ),
        "{err}"
    );
    pipeline.push(0, &grouped[0].1, &mut out).unwrap();
}

#[test]
fn a_nellymoser_rate_change_keeps_the_decoder_and_reanchors() {
    let mut tags = audio_tags("ffmpeg_nellymoser_8000_1khz.flv");
    let first = tags.len();
    let last_ms = tags.last().unwrap().0;
    tags.extend(
        audio_tags("ffmpeg_nellymoser_22050_440hz.flv")
            .into_iter()
            .map(|(ts, body)| (ts + last_ms + 32, body)),
    );
    let mut pipeline = ToOpus::new(DEFAULT_OPUS_BITRATE).unwrap();
    let mut packets = Vec::new();
    for (ts, body) in &tags[..first] {
        pipeline.push(*ts, body, &mut packets).unwrap();
    }
    assert_eq!(pipeline.input_sample_rate(), Some(8_000));
    let split = packets.len();
    for (ts, body) in &tags[first..] {
        pipeline.push(*ts, body, &mut packets).unwrap();
    }
    assert_eq!(pipeline.input_sample_rate(), Some(22_050));
    assert_eq!(pipeline.input_codec(), Some(AudioCodec::Nellymoser));
    let pcm = decode(&packets);
    assert_tone(&pcm[..split * 960], RATE, 1000.0, "8 kHz part");
    assert_tone(&pcm[(split + 5) * 960..], RATE, 440.0, "22 kHz part");
}

#[test]
fn the_first_input_anchors_and_packets_advance_by_960() {
    let timestamps: Vec<u32> = (0..100).map(|i| 1000 + 20 * i).collect();
    let packets = to_opus(&ulaw_tags(440.0, &timestamps));
    assert_eq!(packets[0].rtp_timestamp, 48_000);
    assert!(steps(&packets).iter().all(|&s| s == 960));
    assert!((98..=100).contains(&packets.len()), "{}", packets.len());
}

#[test]
fn jitter_within_the_threshold_does_not_move_the_clock() {
    let jitter = [0, 35, -40, 150, -150, 5, 190, -190, 0, 60];
    let timestamps: Vec<u32> = (0..200)
        .map(|i| (5000 + 20 * i + jitter[i as usize % 10]) as u32)
        .collect();
    let packets = to_opus(&ulaw_tags(440.0, &timestamps));
    assert_eq!(packets[0].rtp_timestamp, 5000 * 48);
    assert!(steps(&packets).iter().all(|&s| s == 960));
}

#[test]
fn a_forward_gap_reanchors_and_the_tone_goes_on() {
    let mut timestamps: Vec<u32> = (0..50).map(|i| 20 * i).collect();
    timestamps.extend((0..50).map(|i| 5000 + 20 * i));
    let packets = to_opus(&ulaw_tags(440.0, &timestamps));
    let steps = steps(&packets);
    let odd: Vec<i64> = steps.iter().copied().filter(|&s| s != 960).collect();
    assert_eq!(odd, vec![4000 * 48 + 960], "one jump of the gap's length");
    let pcm = decode(&packets);
    let peak = pcm.iter().map(|s| i32::from(*s).abs()).max().unwrap();
    assert!(peak < 24_000, "no burst at the seam: peak {peak}");
    assert_tone(&pcm[..48_000], RATE, 440.0, "before the gap");
    assert_tone(&pcm[48_000..], RATE, 440.0, "after the gap");
}

#[test]
fn a_backward_jump_reanchors() {
    let mut timestamps: Vec<u32> = (0..50).map(|i| 20 * i).collect();
    timestamps.extend((0..50).map(|i| 100 + 20 * i));
    let packets = to_opus(&ulaw_tags(440.0, &timestamps));
    let odd: Vec<i64> = steps(&packets).into_iter().filter(|&s| s != 960).collect();
    assert_eq!(odd, vec![(100 - 1000) * 48 + 960]);
}

#[test]
fn a_slow_drift_is_followed_once_it_passes_the_threshold() {
    // 20 ms of audio every 21 ms: the clock gains 1 ms a tag.
    let timestamps: Vec<u32> = (0..300).map(|i| 21 * i).collect();
    let packets = to_opus(&ulaw_tags(440.0, &timestamps));
    let odd: Vec<i64> = steps(&packets).into_iter().filter(|&s| s != 960).collect();
    assert_eq!(odd.len(), 1, "{odd:?}");
    assert!((200 * 48..=220 * 48).contains(&(odd[0] - 960)), "{odd:?}");
}

#[test]
fn a_codec_change_replaces_the_decoder() {
    let mut tags = speex_tags(1000.0, 50, 0);
    let timestamps: Vec<u32> = (0..50).map(|i| 1000 + 20 * i).collect();
    tags.extend(ulaw_tags(440.0, &timestamps));
    let mut pipeline = ToOpus::new(DEFAULT_OPUS_BITRATE).unwrap();
    let mut packets = Vec::new();
    for (ts, body) in &tags[..50] {
        pipeline.push(*ts, body, &mut packets).unwrap();
    }
    assert_eq!(
        (pipeline.input_codec(), pipeline.input_sample_rate()),
        (Some(AudioCodec::Speex), Some(16_000))
    );
    let first = packets.len();
    for (ts, body) in &tags[50..] {
        pipeline.push(*ts, body, &mut packets).unwrap();
    }
    assert_eq!(
        (pipeline.input_codec(), pipeline.input_sample_rate()),
        (Some(AudioCodec::G711U), Some(8_000))
    );
    let pcm = decode(&packets);
    assert_tone(&pcm[..first * 960], RATE, 1000.0, "speex part");
    assert_tone(&pcm[(first + 5) * 960..], RATE, 440.0, "µ-law part");
    // The seam is re-anchored, so the new codec's audio starts at its own time.
    let seam = packets.iter().position(|p| p.rtp_timestamp >= 1000 * 48).unwrap();
    assert!(
        packets[seam].rtp_timestamp - 1000 * 48 < 960,
        "{}",
        packets[seam].rtp_timestamp
    );
}

#[test]
fn aac_needs_its_sequence_header_and_keeps_state_when_it_repeats() {
    let tags = audio_tags("ffmpeg_aac_lc_mono_44100_440hz.flv");
    let mut pipeline = ToOpus::new(DEFAULT_OPUS_BITRATE).unwrap();
    let mut packets = Vec::new();
    let err = pipeline.push(0, &tags[1].1, &mut packets).unwrap_err();
    assert!(matches!(err, CodecError::NotConfigured { codec: "aac" }), "{err}");
    assert!(packets.is_empty());
    pipeline.push(0, &tags[0].1, &mut packets).unwrap();
    assert!(packets.is_empty(), "a sequence header is no audio");
    for (i, (ts, body)) in tags[1..].iter().enumerate() {
        if i % 10 == 5 {
            pipeline.push(*ts, &tags[0].1, &mut packets).unwrap(); // OBS-style repeat
        }
        pipeline.push(*ts, body, &mut packets).unwrap();
    }
    assert!(
        steps(&packets).iter().all(|&s| s == 960),
        "repeats do not disturb the clock"
    );
    assert_tone(&decode(&packets), RATE, 440.0, "aac with repeated sequence headers");
    // HE-AAC v1 explicit signalling: accepted, decoded as its LC core.
    pipeline
        .push(3000, &[0xAF, 0x00, 0x2B, 0x11, 0x88, 0x00], &mut packets)
        .unwrap();
    // AAC Main: refused, and the frames after it are unconfigured.
    let err = pipeline
        .push(3000, &[0xAF, 0x00, 0x0A, 0x08], &mut packets)
        .unwrap_err();
    assert!(matches!(err, CodecError::Unsupported(_)), "{err}");
    let err = pipeline.push(3000, &tags[1].1, &mut packets).unwrap_err();
    assert!(matches!(err, CodecError::NotConfigured { .. }), "{err}");
}

#[test]
fn unsupported_codecs_are_refused_and_the_pipeline_goes_on() {
    let mut pipeline = ToOpus::new(DEFAULT_OPUS_BITRATE).unwrap();
    let mut packets = Vec::new();
    for first in [0x06u8, 0x36, 0x16, 0x92, 0xC2, 0xD2, 0xF2] {
        let err = pipeline.push(0, &[first, 1, 2, 3, 4], &mut packets).unwrap_err();
        assert!(matches!(err, CodecError::Unsupported(_)), "{first:#x}: {err}");
        eprintln!("{first:#04x}: {err}");
    }
    assert!(packets.is_empty());
    for (ts, body) in speex_tags(440.0, 20, 0) {
        pipeline.push(ts, &body, &mut packets).unwrap();
    }
    assert!(packets.len() >= 18);
    assert_eq!(packets[0].rtp_timestamp, 0);
}

#[test]
fn corrupt_input_is_an_error_and_the_pipeline_keeps_working() {
    let aac = audio_tags("ffmpeg_aac_lc_mono_44100_440hz.flv");
    let mut pipeline = ToOpus::new(DEFAULT_OPUS_BITRATE).unwrap();
    let mut packets = Vec::new();
    pipeline.push(0, &[], &mut packets).unwrap();
    assert!(
        pipeline.push(0, &[0xAF], &mut packets).is_err(),
        "AAC tag without a packet type"
    );
    let mut seed = 0x0123_4567_89AB_CDEFu64;
    let mut errors = 0;
    for i in 0..1500u32 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = (seed % 400) as usize;
        let mut body: Vec<u8> = (0..len).map(|j| (seed >> (j % 53)) as u8 ^ j as u8).collect();
        match i % 5 {
            0 => body.insert(0, 0xB2),
            1 => body.splice(0..0, [0xAF, 0x01]).for_each(drop),
            2 => body.insert(0, 0x2E),
            3 => {
                // A real frame cut short.
                let (_, real) = &aac[1 + (i as usize % (aac.len() - 1))];
                body = real[..(seed as usize % real.len())].to_vec();
            }
            _ => body.insert(0, 0xB2),
        }
        if i % 5 == 1 && i % 2 == 1 {
            pipeline.push(0, &aac[0].1, &mut packets).unwrap();
        }
        if pipeline.push(20 * i, &body, &mut packets).is_err() {
            errors += 1;
        }
    }
    eprintln!(
        "corrupt bodies: {errors} of 1500 rejected, {} packets from the rest",
        packets.len()
    );
    assert!(errors > 300);
    // A good stream afterwards comes out clean.
    packets.clear();
    for (ts, body) in &aac {
        pipeline.push(100_000 + ts, body, &mut packets).unwrap();
    }
    let first_ms = packets[0].rtp_timestamp / 48;
    assert!(
        (100_000 - 40..=100_000).contains(&first_ms),
        "re-anchored on the good stream: {first_ms}"
    );
    assert_tone(
        &decode(&packets)[48_000 / 2..],
        RATE,
        440.0,
        "aac after 1500 corrupt bodies",
    );
}

/// 20 ms Opus packets of a mono tone.
fn opus_packets(frequency: f64, count: usize) -> Vec<Bytes> {
    let mut encoder = OpusEncoder::new(1, 48_000).unwrap();
    (0..count)
        .map(|i| {
            encoder
                .encode(&sine(frequency, RATE, 1, (i * 960) as u64, 960, 0.5))
                .unwrap()
        })
        .collect()
}

fn speex_pcm(tags: &[FlvAudioTag]) -> Vec<i16> {
    let mut decoder = SpeexDecoder::new().unwrap();
    let mut pcm = Vec::new();
    for tag in tags {
        assert_eq!(tag.data[0], SPEEX_TAG_HEADER);
        assert_eq!(
            decoder.decode(&tag.data[1..], &mut pcm).unwrap(),
            SPEEX_FRAME,
            "one frame per tag"
        );
    }
    pcm
}

fn tag_steps(tags: &[FlvAudioTag]) -> Vec<i64> {
    tags.windows(2)
        .map(|w| i64::from(w[1].timestamp_ms) - i64::from(w[0].timestamp_ms))
        .collect()
}

#[test]
fn opus_becomes_speex_tags_one_frame_each() {
    let mut pipeline = FromOpus::new(FlvAudioTarget::Speex).unwrap();
    assert_eq!(pipeline.target(), FlvAudioTarget::Speex);
    let mut tags = Vec::new();
    for (i, packet) in opus_packets(1000.0, 100).iter().enumerate() {
        pipeline.push(3000 * 48 + i as u64 * 960, packet, &mut tags).unwrap();
    }
    eprintln!("opus -> speex: {} tags of {} bytes", tags.len(), tags[0].data.len());
    assert!((98..=100).contains(&tags.len()), "{}", tags.len());
    assert_eq!(tags[0].timestamp_ms, 3000);
    assert!(tag_steps(&tags).iter().all(|&s| s == 20));
    let pcm = speex_pcm(&tags);
    let (f, level) = measure(&pcm, SPEEX_RATE, 200);
    eprintln!("opus -> speex 1 kHz: {f} Hz, {level:.2} dBFS (sent -9.03)");
    assert!((f - 1000.0).abs() <= 5.0, "{f}");
    assert!((level - (-9.03)).abs() <= 3.0, "{level}");
}

#[test]
fn a_lost_opus_packet_is_concealed_and_duplicates_are_dropped() {
    let packets = opus_packets(440.0, 100);
    let mut pipeline = FromOpus::new(FlvAudioTarget::Speex).unwrap();
    let mut tags = Vec::new();
    for (i, packet) in packets.iter().enumerate() {
        if i == 40 || i == 41 {
            continue; // lost
        }
        pipeline.push(i as u64 * 960, packet, &mut tags).unwrap();
        if i == 60 {
            let before = tags.len();
            pipeline.push(i as u64 * 960, packet, &mut tags).unwrap();
            assert_eq!(tags.len(), before, "a duplicate adds nothing");
        }
    }
    assert!((98..=100).contains(&tags.len()), "losses are filled: {}", tags.len());
    assert!(tag_steps(&tags).iter().all(|&s| s == 20));
    let pcm = speex_pcm(&tags);
    let (f, _) = measure(&pcm, SPEEX_RATE, 1000);
    assert!((f - 440.0).abs() <= 5.0, "{f}");
    // An empty packet is a loss too.
    let before = tags.len();
    pipeline.push(100 * 960, &[], &mut tags).unwrap();
    assert!(tags.len() > before);
}

#[test]
fn opus_timestamp_jumps_reanchor_and_damage_is_survived() {
    let packets = opus_packets(440.0, 100);
    let mut pipeline = FromOpus::new(FlvAudioTarget::Speex).unwrap();
    let mut tags = Vec::new();
    for (i, packet) in packets.iter().enumerate() {
        let ts = if i < 50 {
            i as u64 * 960
        } else {
            10_000 * 48 + i as u64 * 960
        };
        if i == 70 {
            assert!(pipeline.push(ts, &[0x03, 0x00], &mut tags).is_err(), "invalid packet");
        }
        pipeline.push(ts, packet, &mut tags).unwrap();
    }
    let odd: Vec<i64> = tag_steps(&tags).into_iter().filter(|&s| s != 20).collect();
    assert_eq!(odd, vec![10_000 + 20]);
    let (f, _) = measure(&speex_pcm(&tags), SPEEX_RATE, 200);
    assert!((f - 440.0).abs() <= 5.0, "{f}");
}

/// The AudioSpecificConfig of an AAC tag stream (which must start with its
/// one sequence header), and the PCM its access units decode to.
fn aac_pcm(tags: &[FlvAudioTag]) -> (Vec<u8>, Vec<i16>) {
    assert_eq!(&tags[0].data[..2], &[AAC_TAG_HEADER, 0], "sequence header first");
    let config = tags[0].data[2..].to_vec();
    let mut decoder = AacDecoder::new(&config).unwrap();
    assert_eq!((decoder.sample_rate(), decoder.channels()), (48_000, 1));
    let mut pcm = Vec::new();
    for tag in &tags[1..] {
        assert_eq!(&tag.data[..2], &[AAC_TAG_HEADER, 1], "one sequence header only");
        assert_eq!(decoder.decode(&tag.data[2..], &mut pcm).unwrap(), 1024);
    }
    (config, pcm)
}

/// An FLV file (audio only) holding `tags`.
fn flv_file(tags: &[FlvAudioTag]) -> Vec<u8> {
    let mut file = b"FLV\x01\x04\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
    for tag in tags {
        let size = tag.data.len() as u32;
        let ts = tag.timestamp_ms;
        file.push(8);
        file.extend_from_slice(&size.to_be_bytes()[1..]);
        file.extend_from_slice(&ts.to_be_bytes()[1..]);
        file.push((ts >> 24) as u8);
        file.extend_from_slice(&[0, 0, 0]);
        file.extend_from_slice(&tag.data);
        file.extend_from_slice(&(size + 11).to_be_bytes());
    }
    file
}

/// Runs an FFmpeg tool, or `None` when it is not installed.
fn run_tool(tool: &str, args: &[&str]) -> Option<std::process::Output> {
    match std::process::Command::new(tool).args(args).output() {
        Ok(output) => Some(output),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("{tool}: {e}"),
    }
}

#[test]
fn opus_becomes_aac_tags_that_ffmpeg_plays() {
    let mut pipeline = FromOpus::new(FlvAudioTarget::Aac).unwrap();
    assert_eq!(pipeline.target(), FlvAudioTarget::Aac);
    let mut tags = Vec::new();
    for (i, packet) in opus_packets(1000.0, 100).iter().enumerate() {
        pipeline.push(3000 * 48 + i as u64 * 960, packet, &mut tags).unwrap();
    }
    // 100 x 960 samples = 93 whole frames; the encoder keeps the last inside.
    assert_eq!(tags.len(), 1 + 92);
    let (config, pcm) = aac_pcm(&tags);
    eprintln!(
        "opus -> aac: AudioSpecificConfig {config:02x?}, {} frames",
        tags.len() - 1
    );
    // Each access unit carries the time of its audio: the first is the
    // encoder's priming, 1024 samples before the first Opus sample.
    assert_eq!(tags[0].timestamp_ms, tags[1].timestamp_ms);
    for (k, tag) in tags[1..].iter().enumerate() {
        assert_eq!(
            u64::from(tag.timestamp_ms),
            (3000 * 48 - 1024 + k as u64 * 1024) / 48,
            "frame {k}"
        );
    }
    assert_eq!(tags[1].timestamp_ms, 2978);
    assert!(tag_steps(&tags[1..]).iter().all(|&s| s == 21 || s == 22));
    let (f, level) = measure(&pcm, RATE, 200);
    let bytes: usize = tags[1..].iter().map(|t| t.data.len() - 2).sum();
    eprintln!(
        "opus -> aac 1 kHz: {f} Hz, {level:.2} dBFS (sent -9.03), {:.1} kbit/s",
        bytes as f64 * 8.0 / (92.0 * 1024.0 / 48.0)
    );
    assert!((f - 1000.0).abs() <= 10.0, "{f}");
    assert!((level - (-9.03)).abs() <= 3.0, "{level}");

    // The same tags as an FLV file, played by Debian's FFmpeg.
    let dir = std::env::temp_dir().join(format!("media-opus-to-aac-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("opus_to_aac.flv");
    std::fs::write(&path, flv_file(&tags)).unwrap();
    let file = path.to_str().unwrap();
    let probe = run_tool(
        "ffprobe",
        &[
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,profile,sample_rate,channels",
            "-of",
            "default=noprint_wrappers=1",
            file,
        ],
    );
    let played = run_tool("ffmpeg", &["-v", "error", "-i", file, "-f", "s16le", "-ac", "1", "-"]);
    std::fs::remove_dir_all(&dir).unwrap();
    let (Some(probe), Some(played)) = (probe, played) else {
        eprintln!("SKIPPED the FFmpeg part: ffprobe or ffmpeg is not installed (bash .ci/install-deps)");
        return;
    };
    let probed = String::from_utf8_lossy(&probe.stdout);
    eprintln!("ffprobe: {}", probed.replace('\n', " "));
    assert!(probe.status.success(), "{}", String::from_utf8_lossy(&probe.stderr));
    for line in ["codec_name=aac", "profile=LC", "sample_rate=48000", "channels=1"] {
        assert!(probed.lines().any(|l| l == line), "{line} in {probed}");
    }
    assert!(played.status.success(), "{}", String::from_utf8_lossy(&played.stderr));
    assert!(played.stderr.is_empty(), "{}", String::from_utf8_lossy(&played.stderr));
    let ffmpeg_pcm: Vec<i16> = played
        .stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    assert_eq!(ffmpeg_pcm.len(), 92 * 1024);
    let (f, level) = measure(&ffmpeg_pcm, RATE, 200);
    eprintln!("opus -> aac -> ffmpeg: {f} Hz, {level:.2} dBFS");
    assert!((f - 1000.0).abs() <= 10.0, "{f}");
    assert!((level - (-9.03)).abs() <= 3.0, "{level}");
}

#[test]
fn aac_tags_start_at_0_when_the_opus_clock_does() {
    let mut pipeline = FromOpus::aac(32_000).unwrap();
    let mut tags = Vec::new();
    for (i, packet) in opus_packets(440.0, 20).iter().enumerate() {
        pipeline.push(i as u64 * 960, packet, &mut tags).unwrap();
    }
    let times: Vec<u32> = tags.iter().map(|t| t.timestamp_ms).collect();
    assert_eq!(&times[..5], &[0, 0, 0, 21, 42], "priming clamped to 0");
    assert!(FromOpus::aac(1_000).is_err());
    assert!(FromOpus::speex(11).is_err());
    assert_eq!(FromOpus::speex(10).unwrap().target(), FlvAudioTarget::Speex);
}

#[test]
fn a_lost_opus_packet_is_concealed_in_aac_too() {
    let packets = opus_packets(440.0, 100);
    let mut pipeline = FromOpus::new(FlvAudioTarget::Aac).unwrap();
    let mut tags = Vec::new();
    for (i, packet) in packets.iter().enumerate() {
        if i == 40 || i == 41 {
            continue; // lost
        }
        pipeline.push(48_000 + i as u64 * 960, packet, &mut tags).unwrap();
        if i == 60 {
            let before = tags.len();
            pipeline.push(48_000 + i as u64 * 960, packet, &mut tags).unwrap();
            assert_eq!(tags.len(), before, "a duplicate adds nothing");
        }
    }
    assert_eq!(tags.len(), 1 + 92, "losses are filled");
    assert!(tag_steps(&tags[1..]).iter().all(|&s| s == 21 || s == 22));
    let (_, pcm) = aac_pcm(&tags);
    let (f, _) = measure(&pcm, RATE, 1000);
    assert!((f - 440.0).abs() <= 5.0, "{f}");
    let before = tags.len();
    pipeline.push(48_000 + 100 * 960, &[], &mut tags).unwrap();
    assert_eq!(tags.len(), before + 1, "an empty packet is a loss too");
}

#[test]
fn opus_timestamp_jumps_reanchor_aac_and_damage_is_survived() {
    let packets = opus_packets(440.0, 100);
    let mut pipeline = FromOpus::new(FlvAudioTarget::Aac).unwrap();
    let mut tags = Vec::new();
    for (i, packet) in packets.iter().enumerate() {
        let ts = if i < 50 {
            48_000 + i as u64 * 960
        } else {
            11_000 * 48 + i as u64 * 960
        };
        if i == 70 {
            assert!(pipeline.push(ts, &[0x03, 0x00], &mut tags).is_err(), "invalid packet");
        }
        pipeline.push(ts, packet, &mut tags).unwrap();
    }
    let odd: Vec<i64> = tag_steps(&tags[1..])
        .into_iter()
        .filter(|&s| s != 21 && s != 22)
        .collect();
    // The audio goes on seamlessly, 10 s later on the clock.
    assert_eq!(odd.len(), 1, "{odd:?}");
    assert!((10_021..=10_022).contains(&odd[0]), "{odd:?}");
    let (_, pcm) = aac_pcm(&tags);
    let (f, _) = measure(&pcm, RATE, 200);
    assert!((f - 440.0).abs() <= 5.0, "{f}");
}

#[test]
fn opus_goes_round_through_aac_and_back() {
    let mut from = FromOpus::new(FlvAudioTarget::Aac).unwrap();
    let mut to = ToOpus::new(DEFAULT_OPUS_BITRATE).unwrap();
    let (mut tags, mut packets) = (Vec::new(), Vec::new());
    for (i, packet) in opus_packets(1000.0, 150).iter().enumerate() {
        tags.clear();
        from.push(500 * 48 + i as u64 * 960, packet, &mut tags).unwrap();
        for tag in &tags {
            to.push(tag.timestamp_ms, &tag.data, &mut packets).unwrap();
        }
    }
    assert_eq!(to.input_codec(), Some(AudioCodec::Aac));
    // Anchored on the priming frame, 21 ms before the first Opus packet.
    assert_eq!(packets[0].rtp_timestamp, 478 * 48);
    assert!(steps(&packets).iter().all(|&s| s == 960));
    let (f, level) = assert_tone(&decode(&packets), RATE, 1000.0, "opus -> aac -> opus");
    assert!((f - 1000.0).abs() <= 5.0 && (level - (-9.03)).abs() <= 3.0, "{level}");
}

#[test]
fn flash_speex_goes_round_through_opus_and_back() {
    let mut to = ToOpus::new(DEFAULT_OPUS_BITRATE).unwrap();
    let mut from = FromOpus::new(FlvAudioTarget::Speex).unwrap();
    let (mut packets, mut tags) = (Vec::new(), Vec::new());
    for (ts, body) in speex_tags(1000.0, 100, 500) {
        packets.clear();
        to.push(ts, &body, &mut packets).unwrap();
        for p in &packets {
            from.push(p.rtp_timestamp, &p.data, &mut tags).unwrap();
        }
    }
    assert_eq!(tags[0].timestamp_ms, 500);
    assert!(tag_steps(&tags).iter().all(|&s| s == 20));
    let pcm = speex_pcm(&tags);
    let (f, level) = measure(&pcm, SPEEX_RATE, 200);
    eprintln!(
        "speex -> opus -> speex 1 kHz: {f} Hz, {level:.2} dBFS (sent -9.03), {} tags",
        tags.len()
    );
    assert!((f - 1000.0).abs() <= 5.0, "{f}");
    assert!((level - (-9.03)).abs() <= 4.0, "{level}");
}

#[test]
fn the_pipelines_can_move_between_threads() {
    fn is_send<T: Send>() {}
    is_send::<ToOpus>();
    is_send::<FromOpus>();
}
