//! AAC-LC as RTMP publishers send it (FLV SoundFormat 10): an
//! AudioSpecificConfig in the sequence header (AACPacketType 0), then raw
//! access units (AACPacketType 1, no ADTS headers), decoded with symphonia.
//!
//! HE-AAC (SBR, and PS on top of it) is decoded as its AAC-LC core: half the
//! output rate and no spectral band replication above the core's bandwidth,
//! which is plenty for a gateway whose far end is a voice call.
//!
//! [`AacEncoder`] goes the other way, with the system libavcodec's native AAC-LC
//! encoder, for players that want AAC rather than Speex.

use std::collections::VecDeque;

use bytes::Bytes;
use ffmpeg_sys_next::AVCodecID;
use symphonia_core::audio::layouts::{CHANNEL_LAYOUT_MONO, CHANNEL_LAYOUT_STEREO};
use symphonia_core::codecs::audio::well_known::CODEC_ID_AAC;
use symphonia_core::codecs::audio::{AudioCodecParameters, AudioDecoder, AudioDecoderOptions};
use symphonia_core::packet::PacketRef;
use symphonia_core::units::{Duration, Timestamp};

use super::libav::{i16_to_f32, Context, Frame, Packet};
use super::{from_symphonia, guard_panic, CodecError};

/// Samples per channel in one AAC-LC access unit.
pub const FRAME_SAMPLES: usize = 1024;

/// The sampling frequencies of ISO/IEC 14496-3 table 1.18, by index.
const SAMPLE_RATES: [u32; 13] = [
    96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000, 7_350,
];

/// What an AudioSpecificConfig says, as far as decoding the core needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AacConfig {
    /// The audio object type (2 for AAC-LC; 5 SBR and 29 PS are read through
    /// to their core type).
    pub object_type: u8,
    /// Whether SBR or PS was signalled explicitly (object type 5 or 29).
    pub extension: bool,
    /// The core's sample rate (for HE-AAC, half the output rate).
    pub sample_rate: u32,
    /// The channel count from the channel configuration.
    pub channels: usize,
}

struct BitReader<'a> {
    data: &'a [u8],
    bit: usize,
}

impl BitReader<'_> {
    fn read(&mut self, bits: usize) -> Option<u32> {
        let mut value = 0u32;
        for _ in 0..bits {
            let byte = *self.data.get(self.bit / 8)?;
            value = (value << 1) | u32::from((byte >> (7 - self.bit % 8)) & 1);
            self.bit += 1;
        }
        Some(value)
    }

    fn object_type(&mut self) -> Option<u8> {
        let first = self.read(5)?;
        let aot = if first == 31 { 32 + self.read(6)? } else { first };
        Some(aot as u8)
    }

    fn sample_rate(&mut self) -> Option<u32> {
        match self.read(4)? {
            15 => self.read(24),
            index => SAMPLE_RATES.get(index as usize).copied().or(Some(0)),
        }
    }
}

impl AacConfig {
    /// Reads an AudioSpecificConfig (the body of an FLV AAC sequence header
    /// after its two header bytes).
    pub fn parse(asc: &[u8]) -> Result<Self, CodecError> {
        let short = || {
            CodecError::corrupt(
                "aac",
                format!("AudioSpecificConfig of {} bytes is too short", asc.len()),
            )
        };
        let mut r = BitReader { data: asc, bit: 0 };
        let mut object_type = r.object_type().ok_or_else(short)?;
        let sample_rate = r.sample_rate().ok_or_else(short)?;
        let channel_config = r.read(4).ok_or_else(short)?;
        let extension = object_type == 5 || object_type == 29;
        if extension {
            r.sample_rate().ok_or_else(short)?; // the SBR output rate
            object_type = r.object_type().ok_or_else(short)?;
        }
        if object_type != 2 {
            return Err(CodecError::Unsupported(format!(
                "AAC audio object type {object_type} (only AAC-LC, and HE-AAC over an LC core, are decoded)"
            )));
        }
        // GASpecificConfig: frameLengthFlag first.
        if r.read(1).ok_or_else(short)? == 1 {
            return Err(CodecError::Unsupported("AAC with 960-sample frames".into()));
        }
        if !(7_350..=96_000).contains(&sample_rate) {
            return Err(CodecError::Unsupported(format!("AAC sample rate {sample_rate} Hz")));
        }
        let channels = match channel_config {
            1 | 2 => channel_config as usize,
            0 => {
                return Err(CodecError::Unsupported(
                    "AAC channel layout in a program config element".into(),
                ))
            }
            n => {
                return Err(CodecError::Unsupported(format!(
                    "AAC channel configuration {n} (only mono and stereo)"
                )))
            }
        };
        Ok(AacConfig {
            object_type,
            extension,
            sample_rate,
            channels,
        })
    }
}

/// Decodes raw AAC-LC access units to interleaved PCM at the stream's own rate
/// and channel count.
pub struct AacDecoder {
    inner: symphonia_codec_aac::AacDecoder,
    config: AacConfig,
}

impl std::fmt::Debug for AacDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AacDecoder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn make_decoder(config: &AacConfig) -> Result<symphonia_codec_aac::AacDecoder, CodecError> {
    let mut params = AudioCodecParameters::new();
    // The configuration goes in as rate and channels, not as extra data, so
    // that symphonia decodes the LC core of explicitly signalled HE-AAC too.
    params
        .for_codec(CODEC_ID_AAC)
        .with_sample_rate(config.sample_rate)
        .with_channels(if config.channels == 1 {
            CHANNEL_LAYOUT_MONO
        } else {
            CHANNEL_LAYOUT_STEREO
        });
    symphonia_codec_aac::AacDecoder::try_new(&params, &AudioDecoderOptions::default())
        .map_err(|e| from_symphonia("aac", e))
}

impl AacDecoder {
    /// A decoder for the stream an AudioSpecificConfig describes (the FLV AAC
    /// sequence header body after its two header bytes).
    pub fn new(audio_specific_config: &[u8]) -> Result<Self, CodecError> {
        let config = AacConfig::parse(audio_specific_config)?;
        Ok(AacDecoder {
            inner: make_decoder(&config)?,
            config,
        })
    }

    /// What the configuration said.
    pub fn config(&self) -> AacConfig {
        self.config
    }

    /// The sample rate of the decoded PCM.
    pub fn sample_rate(&self) -> u32 {
        self.config.sample_rate
    }

    /// The channel count of the decoded PCM.
    pub fn channels(&self) -> usize {
        self.config.channels
    }

    /// Decodes one access unit and appends its interleaved samples to `out`;
    /// returns the number of samples per channel. On an error nothing is
    /// appended; the next access unit decodes normally.
    pub fn decode(&mut self, frame: &[u8], out: &mut Vec<i16>) -> Result<usize, CodecError> {
        if frame.is_empty() {
            return Ok(0);
        }
        let start = out.len();
        let channels = self.config.channels;
        let inner = &mut self.inner;
        let step = guard_panic("aac", || {
            let packet = PacketRef::new(0, Timestamp::new(0), Duration::new(FRAME_SAMPLES as u64), frame);
            let decoded = inner.decode_ref(&packet).map_err(|e| from_symphonia("aac", e))?;
            if decoded.num_planes() != channels {
                return Err(CodecError::corrupt(
                    "aac",
                    format!("{} channels decoded, {channels} configured", decoded.num_planes()),
                ));
            }
            let samples = decoded.frames();
            out.resize(start + samples * channels, 0);
            decoded.copy_to_slice_interleaved::<i16, _>(&mut out[start..]);
            Ok(samples)
        });
        let result = match step {
            Ok(result) => result,
            // The configuration made a decoder once, so it makes one again.
            Err(panicked) => make_decoder(&self.config).and_then(|fresh| {
                self.inner = fresh;
                Err(panicked)
            }),
        };
        if result.is_err() {
            out.truncate(start);
        }
        result
    }
}

/// One raw AAC access unit from [`AacEncoder`] with its time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AacPacket {
    /// The time of the access unit's first decoded sample, in samples at the
    /// encoder's rate, on the clock of the `pts` given to
    /// [`AacEncoder::encode`]. The first packet starts [`AacEncoder::delay`]
    /// samples before the first input (it decodes to the encoder's priming
    /// silence), so this can be negative.
    pub pts: i64,
    /// The access unit: what follows `[0xAF, 0x01]` in an FLV AAC tag.
    pub data: Bytes,
}

/// Encodes interleaved PCM to raw AAC-LC access units (no ADTS headers, as FLV
/// AAC tags carry them) with libavcodec's native `aac` encoder, one
/// [`FRAME_SAMPLES`]-sample frame per call.
pub struct AacEncoder {
    context: Context,
    frame: Frame,
    packet: Packet,
    sample_rate: u32,
    channels: usize,
    bitrate: u32,
    config: Vec<u8>,
    /// Frames inside the encoder: (the pts libavcodec was given, the caller's
    /// pts). libavcodec gets a steady sample count, so that timestamp jumps on
    /// the caller's clock never look like time running backwards to it.
    in_flight: VecDeque<(i64, i64)>,
    next_pts: i64,
}

impl std::fmt::Debug for AacEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AacEncoder")
            .field("sample_rate", &self.sample_rate)
            .field("channels", &self.channels)
            .field("bitrate", &self.bitrate)
            .finish_non_exhaustive()
    }
}

impl AacEncoder {
    /// An AAC-LC encoder for `channels` (1 or 2) interleaved channels at
    /// `sample_rate` (one of the 13 AAC rates, 7350 to 96000 Hz), at about
    /// `bitrate` bits per second (8000 to 320000).
    pub fn new(sample_rate: u32, channels: usize, bitrate: u32) -> Result<Self, CodecError> {
        if !SAMPLE_RATES.contains(&sample_rate) {
            return Err(CodecError::InvalidParameter(format!(
                "AAC sample rate {sample_rate} Hz is not one of {SAMPLE_RATES:?}"
            )));
        }
        if !(1..=2).contains(&channels) {
            return Err(CodecError::InvalidParameter(format!(
                "the AAC encoder takes 1 or 2 channels, not {channels}"
            )));
        }
        if !(8_000..=320_000).contains(&bitrate) {
            return Err(CodecError::InvalidParameter(format!(
                "AAC bitrate {bitrate} is not in 8000..=320000"
            )));
        }
        let context = Context::open_encoder(AVCodecID::AV_CODEC_ID_AAC, "aac", sample_rate, channels, bitrate)?;
        if context.frame_size() != FRAME_SAMPLES {
            return Err(CodecError::Libav {
                codec: "aac",
                detail: format!("encoder frame size {}, not {FRAME_SAMPLES}", context.frame_size()),
            });
        }
        let config = context.extradata().to_vec();
        // What a player will read from the sequence header must be what we meant.
        let parsed = AacConfig::parse(&config)?;
        if (parsed.object_type, parsed.sample_rate, parsed.channels) != (2, sample_rate, channels) {
            return Err(CodecError::Libav {
                codec: "aac",
                detail: format!("encoder wrote an AudioSpecificConfig for {parsed:?}"),
            });
        }
        Ok(AacEncoder {
            context,
            frame: Frame::new()?,
            packet: Packet::new()?,
            sample_rate,
            channels,
            bitrate,
            config,
            in_flight: VecDeque::new(),
            next_pts: 0,
        })
    }

    /// The AudioSpecificConfig describing the stream: what follows
    /// `[0xAF, 0x00]` in an FLV AAC sequence header.
    pub fn audio_specific_config(&self) -> &[u8] {
        &self.config
    }

    /// The sample rate the encoder takes.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// The channel count the encoder takes.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The bitrate asked for.
    pub fn bitrate(&self) -> u32 {
        self.bitrate
    }

    /// The encoder's delay in samples per channel (1024 for libavcodec's
    /// encoder): the first packet holds this much priming before the first
    /// input sample, and the last this much input stays inside.
    pub fn delay(&self) -> usize {
        self.context.initial_padding()
    }

    /// Encodes exactly [`FRAME_SAMPLES`] samples per channel (interleaved),
    /// whose first sample is at `pts` (in samples at the encoder's rate, on
    /// any clock the caller likes; it may jump), and appends every access unit
    /// now complete to `out`, each with its own time on that clock (see
    /// [`AacPacket::pts`]); returns the number appended. The first call gives
    /// none, every later call one.
    pub fn encode(&mut self, pcm: &[i16], pts: i64, out: &mut Vec<AacPacket>) -> Result<usize, CodecError> {
        let channels = self.channels;
        if pcm.len() != FRAME_SAMPLES * channels {
            return Err(CodecError::InvalidParameter(format!(
                "AAC encoder takes {} interleaved samples, got {}",
                FRAME_SAMPLES * channels,
                pcm.len()
            )));
        }
        let libav_pts = self.next_pts;
        self.frame
            .fill_planar_f32(
                channels,
                self.sample_rate,
                FRAME_SAMPLES,
                libav_pts,
                |channel, plane| {
                    for (to, from) in plane.iter_mut().zip(pcm.iter().skip(channel).step_by(channels)) {
                        *to = i16_to_f32(*from);
                    }
                },
            )
            .map_err(|e| e.library("aac"))?;
        self.context.send_frame(&self.frame).map_err(|e| e.library("aac"))?;
        self.in_flight.push_back((libav_pts, pts));
        self.next_pts += FRAME_SAMPLES as i64;
        let start = out.len();
        while self
            .context
            .receive_packet(&mut self.packet)
            .map_err(|e| e.library("aac"))?
        {
            let libav_pts = self.packet.pts().unwrap_or(libav_pts - self.delay() as i64);
            out.push(AacPacket {
                pts: self.caller_pts(libav_pts),
                data: Bytes::copy_from_slice(self.packet.data()),
            });
        }
        Ok(out.len() - start)
    }

    /// Maps a packet's pts from libavcodec's steady count to the caller's
    /// clock, through the input frame it starts in (or, for the priming before
    /// the first input, the first frame).
    fn caller_pts(&mut self, libav_pts: i64) -> i64 {
        while self.in_flight.len() > 1 && self.in_flight[1].0 <= libav_pts {
            self.in_flight.pop_front();
        }
        match self.in_flight.front() {
            Some(&(at, pts)) => pts + (libav_pts - at),
            None => libav_pts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::{dbfs, dominant_frequency, mono, sine};
    use bytes::Bytes;
    use media::flv::{read_tags, TagKind};

    fn fixture_bodies(name: &str) -> Vec<Bytes> {
        let path = format!("{}/../fixtures/flv/{name}", env!("CARGO_MANIFEST_DIR"));
        let file = Bytes::from(std::fs::read(path).unwrap());
        read_tags(&file)
            .unwrap()
            .into_iter()
            .filter(|t| t.kind == TagKind::Audio)
            .map(|t| t.data)
            .collect()
    }

    #[test]
    fn configs_are_read() {
        let lc = AacConfig::parse(&[0x12, 0x08, 0x56, 0xE5, 0x00]).unwrap();
        assert_eq!(
            lc,
            AacConfig {
                object_type: 2,
                extension: false,
                sample_rate: 44_100,
                channels: 1
            }
        );
        let stereo = AacConfig::parse(&[0x11, 0x90]).unwrap();
        assert_eq!((stereo.sample_rate, stereo.channels), (48_000, 2));
        // HE-AAC explicit: object type 5, core 24 kHz stereo, SBR at 48 kHz, core LC.
        let he = AacConfig::parse(&[0x2B, 0x11, 0x88, 0x00]).unwrap();
        assert_eq!(
            he,
            AacConfig {
                object_type: 2,
                extension: true,
                sample_rate: 24_000,
                channels: 2
            }
        );
        // An explicit 24-bit rate (index 15).
        let explicit = AacConfig::parse(&[0x17, 0x80, 0x0F, 0xA0, 0x08]).unwrap();
        assert_eq!((explicit.sample_rate, explicit.channels), (8_000, 1));
    }

    #[test]
    fn unsupported_and_short_configs_are_refused() {
        assert!(matches!(AacConfig::parse(&[]), Err(CodecError::Corrupt { .. })));
        assert!(matches!(AacConfig::parse(&[0x12]), Err(CodecError::Corrupt { .. })));
        // AAC Main (object type 1).
        assert!(matches!(
            AacConfig::parse(&[0x0A, 0x08]),
            Err(CodecError::Unsupported(_))
        ));
        // 960-sample frames.
        assert!(matches!(
            AacConfig::parse(&[0x12, 0x0C]),
            Err(CodecError::Unsupported(_))
        ));
        // Channel configuration 0 (PCE) and 6 (5.1).
        assert!(matches!(
            AacConfig::parse(&[0x12, 0x00]),
            Err(CodecError::Unsupported(_))
        ));
        assert!(matches!(
            AacConfig::parse(&[0x12, 0x30]),
            Err(CodecError::Unsupported(_))
        ));
        // Reserved sampling frequency index 13.
        assert!(matches!(
            AacConfig::parse(&[0x16, 0x88]),
            Err(CodecError::Unsupported(_))
        ));
    }

    #[test]
    fn the_ffmpeg_fixture_decodes_to_a_440hz_tone() {
        let bodies = fixture_bodies("ffmpeg_aac_lc_mono_44100_440hz.flv");
        assert_eq!(&bodies[0][..2], &[0xAF, 0x00]);
        let mut decoder = AacDecoder::new(&bodies[0][2..]).unwrap();
        assert_eq!((decoder.sample_rate(), decoder.channels()), (44_100, 1));
        let mut pcm = Vec::new();
        for body in &bodies[1..] {
            assert_eq!(body[1], 1, "raw frame");
            assert_eq!(decoder.decode(&body[2..], &mut pcm).unwrap(), FRAME_SAMPLES);
        }
        assert_eq!(pcm.len(), (bodies.len() - 1) * FRAME_SAMPLES);
        let steady = &pcm[44_100 / 2..];
        let f = dominant_frequency(steady, 44_100).unwrap();
        let level = dbfs(steady);
        eprintln!("aac fixture: {f} Hz, {level:.2} dBFS");
        assert!((f - 440.0).abs() <= 3.0, "{f}");
        assert!(level > -30.0, "{level}");
    }

    #[test]
    fn the_stereo_fixture_decodes_to_a_1khz_tone() {
        let bodies = fixture_bodies("ffmpeg_aac_lc_stereo_48000_1khz.flv");
        let mut decoder = AacDecoder::new(&bodies[0][2..]).unwrap();
        assert_eq!((decoder.sample_rate(), decoder.channels()), (48_000, 2));
        let mut pcm = Vec::new();
        for body in &bodies[1..] {
            decoder.decode(&body[2..], &mut pcm).unwrap();
        }
        let steady = mono(&pcm[48_000..], 2);
        let f = dominant_frequency(&steady, 48_000).unwrap();
        assert!((f - 1000.0).abs() <= 3.0, "{f}");
        assert!(dbfs(&steady) > -30.0);
    }

    #[test]
    fn damaged_frames_are_errors_and_decoding_goes_on() {
        let bodies = fixture_bodies("ffmpeg_aac_lc_mono_44100_440hz.flv");
        let mut decoder = AacDecoder::new(&bodies[0][2..]).unwrap();
        let mut pcm = Vec::new();
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut errors = 0;
        for i in 0..600 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let body = &bodies[1 + i % (bodies.len() - 1)][2..];
            let mut frame = body.to_vec();
            match i % 3 {
                0 => frame.truncate((seed % body.len() as u64) as usize),
                1 => frame.iter_mut().skip(2).step_by(7).for_each(|b| *b ^= seed as u8),
                _ => frame = (0..(seed % 400) as usize).map(|j| (seed >> (j % 50)) as u8).collect(),
            }
            let before = pcm.len();
            match decoder.decode(&frame, &mut pcm) {
                Ok(n) => assert_eq!(pcm.len(), before + n),
                Err(_) => {
                    errors += 1;
                    assert_eq!(pcm.len(), before);
                }
            }
        }
        eprintln!("aac damaged frames: {errors} of 600 rejected");
        assert!(errors > 0);
        pcm.clear();
        for body in &bodies[1..] {
            decoder.decode(&body[2..], &mut pcm).unwrap();
        }
        let f = dominant_frequency(&pcm[44_100 / 2..], 44_100).unwrap();
        assert!((f - 440.0).abs() <= 3.0, "{f}");
    }

    /// Encodes `frames` frames of a mono tone at 48 kHz, the first at `first_pts`.
    fn encode_tone(frequency: f64, frames: usize, first_pts: i64) -> (AacEncoder, Vec<AacPacket>) {
        let mut encoder = AacEncoder::new(48_000, 1, 64_000).unwrap();
        let mut packets = Vec::new();
        for i in 0..frames {
            let pcm = sine(frequency, 48_000, 1, (i * FRAME_SAMPLES) as u64, FRAME_SAMPLES, 0.5);
            let n = encoder
                .encode(&pcm, first_pts + (i * FRAME_SAMPLES) as i64, &mut packets)
                .unwrap();
            assert_eq!(n, usize::from(i > 0), "one packet per frame after the first");
        }
        (encoder, packets)
    }

    #[test]
    fn the_encoder_describes_48khz_mono_aac_lc() {
        let encoder = AacEncoder::new(48_000, 1, 64_000).unwrap();
        let asc = encoder.audio_specific_config();
        eprintln!("aac encoder: AudioSpecificConfig {asc:02x?}, delay {}", encoder.delay());
        assert_eq!(&asc[..2], &[0x11, 0x88], "LC, 48 kHz (index 3), mono");
        assert_eq!(
            AacConfig::parse(asc).unwrap(),
            AacConfig {
                object_type: 2,
                extension: false,
                sample_rate: 48_000,
                channels: 1
            }
        );
        assert_eq!(encoder.delay(), FRAME_SAMPLES);
        let stereo = AacEncoder::new(44_100, 2, 128_000).unwrap();
        assert_eq!(AacConfig::parse(stereo.audio_specific_config()).unwrap().channels, 2);
    }

    #[test]
    fn a_1khz_tone_survives_encoding_and_decoding() {
        let (encoder, packets) = encode_tone(1000.0, 100, 0);
        let bytes: usize = packets.iter().map(|p| p.data.len()).sum();
        let kbps = bytes as f64 * 8.0 / (packets.len() as f64 * FRAME_SAMPLES as f64 / 48_000.0) / 1000.0;
        let mut decoder = AacDecoder::new(encoder.audio_specific_config()).unwrap();
        let mut pcm = Vec::new();
        for p in &packets {
            assert_eq!(decoder.decode(&p.data, &mut pcm).unwrap(), FRAME_SAMPLES);
        }
        let steady = &pcm[48_000 / 5..];
        let (f, level) = (dominant_frequency(steady, 48_000).unwrap(), dbfs(steady));
        eprintln!("aac encoder 1 kHz: {kbps:.1} kbit/s, decoded {f} Hz, {level:.2} dBFS (sent -9.03)");
        assert!((f - 1000.0).abs() <= 3.0, "{f}");
        assert!((level - (-9.03)).abs() <= 1.0, "{level}");
        assert!((40.0..=80.0).contains(&kbps), "{kbps}");
    }

    #[test]
    fn packet_times_are_the_times_of_their_input_audio() {
        // 10 frames of silence, then a tone from input sample 10240 on; the
        // input clock starts at 5000.
        let mut encoder = AacEncoder::new(48_000, 1, 64_000).unwrap();
        let mut packets = Vec::new();
        for i in 0..30 {
            let pcm = if i < 10 {
                vec![0; FRAME_SAMPLES]
            } else {
                sine(1000.0, 48_000, 1, (i * FRAME_SAMPLES) as u64, FRAME_SAMPLES, 0.5)
            };
            encoder
                .encode(&pcm, 5000 + (i * FRAME_SAMPLES) as i64, &mut packets)
                .unwrap();
        }
        let times: Vec<i64> = packets.iter().map(|p| p.pts).collect();
        assert_eq!(times[0], 5000 - FRAME_SAMPLES as i64, "priming before the first input");
        assert!(times.windows(2).all(|w| w[1] - w[0] == FRAME_SAMPLES as i64));
        let mut decoder = AacDecoder::new(encoder.audio_specific_config()).unwrap();
        let mut pcm = Vec::new();
        for p in &packets {
            decoder.decode(&p.data, &mut pcm).unwrap();
        }
        // Decoded sample n is at time times[0] + n; the tone starts at 15240.
        let onset = pcm.iter().position(|s| s.unsigned_abs() > 1600).unwrap() as i64 + times[0];
        eprintln!("aac encoder: tone sent at 15240, heard from {onset}");
        assert!((15_240 - 64..=15_240 + 64).contains(&onset), "{onset}");
    }

    #[test]
    fn a_jump_on_the_callers_clock_carries_to_the_packets() {
        let mut encoder = AacEncoder::new(48_000, 1, 64_000).unwrap();
        let mut packets = Vec::new();
        let starts = [0i64, 1024, 2048, 900_000, 901_024, 100, 1124];
        for pts in starts {
            let pcm = sine(440.0, 48_000, 1, 0, FRAME_SAMPLES, 0.5);
            encoder.encode(&pcm, pts, &mut packets).unwrap();
        }
        let times: Vec<i64> = packets.iter().map(|p| p.pts).collect();
        assert_eq!(times, vec![-1024, 0, 1024, 2048, 900_000, 901_024]);
    }

    #[test]
    fn the_encoder_refuses_bad_settings_and_lengths() {
        assert!(matches!(
            AacEncoder::new(12_345, 1, 64_000),
            Err(CodecError::InvalidParameter(_))
        ));
        assert!(AacEncoder::new(48_000, 3, 64_000).is_err());
        assert!(AacEncoder::new(48_000, 1, 1_000).is_err());
        let mut encoder = AacEncoder::new(48_000, 2, 96_000).unwrap();
        let mut out = Vec::new();
        assert!(matches!(
            encoder.encode(&[0; FRAME_SAMPLES], 0, &mut out),
            Err(CodecError::InvalidParameter(_))
        ));
        assert_eq!(encoder.encode(&[0; 2 * FRAME_SAMPLES], 0, &mut out).unwrap(), 0);
        assert_eq!(encoder.encode(&[0; 2 * FRAME_SAMPLES], 1024, &mut out).unwrap(), 1);
    }

    #[test]
    fn codec_states_can_move_between_threads() {
        fn is_send<T: Send>() {}
        is_send::<AacDecoder>();
        is_send::<AacEncoder>();
    }
}
