//! MP3 in FLV (SoundFormat 2, and 14 for 8 kHz): each tag body holds whole
//! MPEG audio frames back to back, decoded with symphonia.
//!
//! The body is split into frames by their headers before anything is decoded,
//! so a damaged or truncated body is refused as a whole and leaves the decoder
//! (and its bit reservoir) as it was.

use symphonia_core::codecs::audio::well_known::{CODEC_ID_MP1, CODEC_ID_MP2, CODEC_ID_MP3};
use symphonia_core::codecs::audio::{AudioCodecParameters, AudioDecoder, AudioDecoderOptions};
use symphonia_core::packet::PacketRef;
use symphonia_core::units::{Duration, Timestamp};

use super::{from_symphonia, guard_panic, CodecError};

/// The most frames [`Mp3Decoder::decode`] takes from one body.
pub const MAX_FRAMES_PER_BODY: usize = 64;

/// What an MPEG audio frame header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// 1 for MPEG-1, 2 for MPEG-2, 25 for MPEG-2.5.
    pub version: u8,
    /// Layer 1, 2 or 3.
    pub layer: u8,
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// 1 or 2.
    pub channels: usize,
    /// The whole frame, header included, in bytes.
    pub frame_len: usize,
    /// Samples per channel the frame decodes to.
    pub samples: usize,
}

impl FrameHeader {
    /// Reads the 4-byte header at the start of `data`; `None` when it is not a
    /// valid header (no sync word, a reserved value, or free-format bitrate).
    pub fn parse(data: &[u8]) -> Option<Self> {
        let h = data.get(..4)?;
        if h[0] != 0xFF || h[1] & 0xE0 != 0xE0 {
            return None;
        }
        let version = match (h[1] >> 3) & 0x03 {
            0 => 25,
            2 => 2,
            3 => 1,
            _ => return None,
        };
        let layer = match (h[1] >> 1) & 0x03 {
            1 => 3,
            2 => 2,
            3 => 1,
            _ => return None,
        };
        let bitrate_index = usize::from(h[2] >> 4);
        if bitrate_index == 0 || bitrate_index == 15 {
            return None;
        }
        // kbit/s for indices 1..=14 (ISO/IEC 11172-3 and 13818-3).
        const V1_L1: [u32; 14] = [32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448];
        const V1_L2: [u32; 14] = [32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384];
        const V1_L3: [u32; 14] = [32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320];
        const V2_L1: [u32; 14] = [32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256];
        const V2_L23: [u32; 14] = [8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];
        let table = match (version, layer) {
            (1, 1) => &V1_L1,
            (1, 2) => &V1_L2,
            (1, _) => &V1_L3,
            (_, 1) => &V2_L1,
            _ => &V2_L23,
        };
        let bitrate = table[bitrate_index - 1] * 1000;
        let base_rate = match (h[2] >> 2) & 0x03 {
            0 => 44_100,
            1 => 48_000,
            2 => 32_000,
            _ => return None,
        };
        let sample_rate = match version {
            1 => base_rate,
            2 => base_rate / 2,
            _ => base_rate / 4,
        };
        let padding = usize::from((h[2] >> 1) & 1);
        let (frame_len, samples) = match (layer, version) {
            (1, _) => ((12 * bitrate / sample_rate) as usize * 4 + padding * 4, 384),
            (2, _) | (3, 1) => ((144 * bitrate / sample_rate) as usize + padding, 1152),
            _ => ((72 * bitrate / sample_rate) as usize + padding, 576),
        };
        Some(FrameHeader {
            version,
            layer,
            sample_rate,
            channels: if h[3] >> 6 == 3 { 1 } else { 2 },
            frame_len,
            samples,
        })
    }
}

/// Decodes FLV MP3 tag bodies (after the FLV audio header byte) to interleaved
/// PCM; the rate and channel count come from the frames themselves.
#[derive(Default)]
pub struct Mp3Decoder {
    inner: Option<(symphonia_bundle_mp3::MpaDecoder, u8, u32, usize)>,
    frames: Vec<(usize, FrameHeader)>,
}

impl std::fmt::Debug for Mp3Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mp3Decoder")
            .field("sample_rate", &self.sample_rate())
            .field("channels", &self.channels())
            .finish_non_exhaustive()
    }
}

fn make_decoder(layer: u8) -> Result<symphonia_bundle_mp3::MpaDecoder, CodecError> {
    let mut params = AudioCodecParameters::new();
    params.for_codec(match layer {
        1 => CODEC_ID_MP1,
        2 => CODEC_ID_MP2,
        _ => CODEC_ID_MP3,
    });
    symphonia_bundle_mp3::MpaDecoder::try_new(&params, &AudioDecoderOptions::default())
        .map_err(|e| from_symphonia("mp3", e))
}

impl Mp3Decoder {
    /// A decoder that learns the stream's format from its first frame.
    pub fn new() -> Self {
        Self::default()
    }

    /// The sample rate of the last decoded body, if any.
    pub fn sample_rate(&self) -> Option<u32> {
        self.inner.as_ref().map(|i| i.2)
    }

    /// The channel count of the last decoded body, if any.
    pub fn channels(&self) -> Option<usize> {
        self.inner.as_ref().map(|i| i.3)
    }

    /// Decodes every frame in `body` and appends the interleaved samples to
    /// `out`; returns the number of samples per channel. All frames of one body
    /// must share a layer, rate and channel count; when that changes from one
    /// body to the next the decoder starts afresh. On an error nothing is
    /// appended.
    pub fn decode(&mut self, body: &[u8], out: &mut Vec<i16>) -> Result<usize, CodecError> {
        self.frames.clear();
        let mut at = 0;
        while at < body.len() {
            let Some(header) = FrameHeader::parse(&body[at..]) else {
                return Err(CodecError::corrupt(
                    "mp3",
                    format!("no valid frame header at byte {at}"),
                ));
            };
            if at + header.frame_len > body.len() {
                return Err(CodecError::corrupt(
                    "mp3",
                    format!(
                        "frame at byte {at} needs {} bytes, {} left",
                        header.frame_len,
                        body.len() - at
                    ),
                ));
            }
            if let Some((_, first)) = self.frames.first() {
                if (first.layer, first.sample_rate, first.channels)
                    != (header.layer, header.sample_rate, header.channels)
                {
                    return Err(CodecError::corrupt("mp3", "frames of different formats in one tag"));
                }
            }
            if self.frames.len() == MAX_FRAMES_PER_BODY {
                return Err(CodecError::corrupt(
                    "mp3",
                    format!("more than {MAX_FRAMES_PER_BODY} frames in one tag"),
                ));
            }
            self.frames.push((at, header));
            at += header.frame_len;
        }
        let Some(&(_, first)) = self.frames.first() else {
            return Ok(0);
        };
        let format = (first.layer, first.sample_rate, first.channels);
        if self.inner.as_ref().map(|i| (i.1, i.2, i.3)) != Some(format) {
            self.inner = Some((
                make_decoder(first.layer)?,
                first.layer,
                first.sample_rate,
                first.channels,
            ));
        }
        let Some((decoder, ..)) = &mut self.inner else {
            return Ok(0); // set just above
        };
        let start = out.len();
        let mut total = 0;
        for &(at, header) in &self.frames {
            let frame = &body[at..at + header.frame_len];
            let step = guard_panic("mp3", || {
                let packet = PacketRef::new(0, Timestamp::new(0), Duration::new(header.samples as u64), frame);
                let decoded = decoder.decode_ref(&packet).map_err(|e| from_symphonia("mp3", e))?;
                if decoded.num_planes() != header.channels {
                    return Err(CodecError::corrupt(
                        "mp3",
                        "channel count differs from the frame header",
                    ));
                }
                let at = out.len();
                out.resize(at + decoded.frames() * header.channels, 0);
                decoded.copy_to_slice_interleaved::<i16, _>(&mut out[at..]);
                Ok(decoded.frames())
            });
            match step {
                Ok(Ok(samples)) => total += samples,
                Ok(Err(e)) => {
                    out.truncate(start);
                    return Err(e);
                }
                Err(panicked) => {
                    out.truncate(start);
                    self.inner = None; // made afresh with the next body
                    return Err(panicked);
                }
            }
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::{dbfs, dominant_frequency};
    use bytes::Bytes;
    use media::flv::{read_tags, TagKind};

    fn fixture(name: &str) -> Bytes {
        Bytes::from(std::fs::read(format!("{}/../fixtures/flv/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap())
    }

    /// The FLV bodies of the 44.1 kHz fixture, without their header byte.
    fn flv_frames() -> Vec<Bytes> {
        read_tags(&fixture("ffmpeg_mp3_mono_44100_440hz.flv"))
            .unwrap()
            .into_iter()
            .filter(|t| t.kind == TagKind::Audio)
            .map(|t| t.data.slice(1..))
            .collect()
    }

    #[test]
    fn frame_headers_are_read() {
        let h = FrameHeader::parse(&[0xFF, 0xFB, 0x50, 0xC4]).unwrap();
        assert_eq!(
            h,
            FrameHeader {
                version: 1,
                layer: 3,
                sample_rate: 44_100,
                channels: 1,
                frame_len: 208,
                samples: 1152
            }
        );
        let padded = FrameHeader::parse(&[0xFF, 0xFB, 0x52, 0xC4]).unwrap();
        assert_eq!(padded.frame_len, 209);
        // MPEG-2.5 layer III, 16 kbit/s, 8 kHz, mono.
        let low = FrameHeader::parse(&[0xFF, 0xE3, 0x28, 0xC4]).unwrap();
        assert_eq!(
            (low.version, low.sample_rate, low.frame_len, low.samples),
            (25, 8_000, 144, 576)
        );
        assert_eq!(FrameHeader::parse(&[0xFF, 0xFB, 0x00, 0xC4]), None, "free format");
        assert_eq!(FrameHeader::parse(&[0xFF, 0xFB, 0xF0, 0xC4]), None, "bad bitrate");
        assert_eq!(FrameHeader::parse(&[0xFF, 0xFB, 0x5C, 0xC4]), None, "reserved rate");
        assert_eq!(FrameHeader::parse(&[0xFF, 0xEB, 0x50, 0xC4]), None, "reserved version");
        assert_eq!(FrameHeader::parse(&[0xFF, 0xF9, 0x50, 0xC4]), None, "reserved layer");
        assert_eq!(FrameHeader::parse(&[0xFF, 0xFB, 0x50]), None, "short");
    }

    #[test]
    fn the_flv_fixture_decodes_to_a_440hz_tone() {
        let mut decoder = Mp3Decoder::new();
        let mut pcm = Vec::new();
        for frame in flv_frames() {
            assert_eq!(decoder.decode(&frame, &mut pcm).unwrap(), 1152);
        }
        assert_eq!((decoder.sample_rate(), decoder.channels()), (Some(44_100), Some(1)));
        let steady = &pcm[22_050..];
        let f = dominant_frequency(steady, 44_100).unwrap();
        let level = dbfs(steady);
        eprintln!("mp3 fixture: {f} Hz, {level:.2} dBFS");
        assert!((f - 440.0).abs() <= 3.0, "{f}");
        assert!(level > -30.0, "{level}");
    }

    #[test]
    fn several_frames_in_one_body_and_8khz_frames_decode() {
        let stream = fixture("ffmpeg_mp3_8000_1khz.mp3");
        let header = FrameHeader::parse(&stream).unwrap();
        assert_eq!((header.sample_rate, header.channels), (8_000, 1));
        let mut decoder = Mp3Decoder::new();
        let mut pcm = Vec::new();
        // Four frames per body.
        let whole = stream.len() / header.frame_len * header.frame_len;
        for body in stream[..whole].chunks(4 * header.frame_len) {
            let n = decoder.decode(body, &mut pcm).unwrap();
            assert_eq!(n, body.len() / header.frame_len * 576);
        }
        assert_eq!(decoder.sample_rate(), Some(8_000));
        let f = dominant_frequency(&pcm[4_000..], 8_000).unwrap();
        assert!((f - 1000.0).abs() <= 3.0, "{f}");
    }

    #[test]
    fn damaged_bodies_are_refused_whole_and_decoding_goes_on() {
        let frames = flv_frames();
        let mut decoder = Mp3Decoder::new();
        let mut pcm = Vec::new();
        for frame in &frames[..10] {
            decoder.decode(frame, &mut pcm).unwrap();
        }
        let before = pcm.len();
        let mut two = frames[10].to_vec();
        two.extend_from_slice(&frames[11][..100]);
        assert!(
            matches!(decoder.decode(&two, &mut pcm), Err(CodecError::Corrupt { .. })),
            "truncated second frame"
        );
        let mut junk = frames[10].to_vec();
        junk.extend_from_slice(b"junk");
        assert!(decoder.decode(&junk, &mut pcm).is_err(), "bytes after the last frame");
        assert!(decoder.decode(b"\x00\x01\x02\x03\x04", &mut pcm).is_err(), "no header");
        assert_eq!(pcm.len(), before);
        // Valid headers over damaged payloads go into the decoder itself.
        let mut seed = 0xDEAD_BEEF_1234_5678u64;
        for i in 0..300 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut frame = frames[i % frames.len()].to_vec();
            frame[4..].iter_mut().step_by(3 + i % 5).for_each(|b| *b ^= seed as u8);
            let _ = decoder.decode(&frame, &mut pcm);
        }
        pcm.clear();
        for frame in &frames {
            decoder.decode(frame, &mut pcm).unwrap();
        }
        let f = dominant_frequency(&pcm[22_050..], 44_100).unwrap();
        assert!((f - 440.0).abs() <= 3.0, "{f}");
        assert_eq!(decoder.decode(&[], &mut pcm).unwrap(), 0);
    }
}
