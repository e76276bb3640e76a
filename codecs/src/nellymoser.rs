//! Nellymoser Asao, the codec Flash Player published with before Speex (FLV
//! SoundFormat 4, 5 and 6), decoded with the system libavcodec.
//!
//! A frame is 64 bytes for 256 mono samples at any sample rate: the bit stream
//! does not depend on the rate, which only the FLV header says (see
//! [`flv_sample_rate`]). Flash Player puts several frames in one tag (one at
//! 8 kHz, four at 22 kHz, eight at 44 kHz); FFmpeg writes one.

use ffmpeg_sys_next::AVCodecID;

use super::libav::{f32_to_i16, Context, Frame, Packet};
use super::CodecError;

/// Samples in one frame.
pub const FRAME_SAMPLES: usize = 256;
/// Bytes in one frame.
pub const FRAME_BYTES: usize = 64;
/// The most frames [`NellymoserDecoder::decode`] takes from one body (eight
/// times what Flash Player sends at 44 kHz), so that a hostile body cannot make
/// it produce unbounded audio.
pub const MAX_FRAMES_PER_BODY: usize = 64;

const CODEC: &str = "nellymoser";

/// The sample rate of Nellymoser audio from its FLV audio header byte, as the
/// FLV specification (10.1, E.4.2.1) and FFmpeg read it: SoundFormat 4 is
/// 16 kHz mono, 5 is 8 kHz mono, and 6 takes its rate from the SoundRate bits
/// (5512, 11025, 22050 or 44100 Hz). `None` for any other SoundFormat.
pub fn flv_sample_rate(header: u8) -> Option<u32> {
    match header >> 4 {
        4 => Some(16_000),
        5 => Some(8_000),
        6 => Some([5_512, 11_025, 22_050, 44_100][usize::from((header >> 2) & 0x03)]),
        _ => None,
    }
}

/// Decodes Nellymoser frames from FLV tag bodies (the bytes after the FLV
/// audio header byte) to mono PCM at the stream's rate.
pub struct NellymoserDecoder {
    context: Context,
    frame: Frame,
    packet: Packet,
}

impl std::fmt::Debug for NellymoserDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NellymoserDecoder").finish_non_exhaustive()
    }
}

impl NellymoserDecoder {
    /// A decoder (libavcodec's `nellymoser`). One decoder serves every rate,
    /// so a stream that changes rate keeps it.
    pub fn new() -> Result<Self, CodecError> {
        // The rate is only informative to libavcodec; 8 kHz is any valid one.
        let context = Context::open_decoder(AVCodecID::AV_CODEC_ID_NELLYMOSER, CODEC, 8_000, 1)?;
        Ok(NellymoserDecoder {
            context,
            frame: Frame::new()?,
            packet: Packet::new()?,
        })
    }

    /// Decodes every 64-byte frame in `data` and appends 256 samples per frame
    /// to `out`; returns the number of samples appended. An empty body is no
    /// frames.
    ///
    /// A body that is not a whole number of frames (a truncated tag), or holds
    /// more than [`MAX_FRAMES_PER_BODY`], is [`CodecError::Corrupt`] and
    /// nothing is appended. Any 64 bytes are a valid frame, so damage inside a
    /// frame decodes to noise, never to an error or to more audio.
    pub fn decode(&mut self, data: &[u8], out: &mut Vec<i16>) -> Result<usize, CodecError> {
        if data.is_empty() {
            return Ok(0);
        }
        if !data.chunks_exact(FRAME_BYTES).remainder().is_empty() {
            return Err(CodecError::corrupt(
                CODEC,
                format!(
                    "{} bytes is not a whole number of {FRAME_BYTES}-byte frames",
                    data.len()
                ),
            ));
        }
        if data.len() / FRAME_BYTES > MAX_FRAMES_PER_BODY {
            return Err(CodecError::corrupt(
                CODEC,
                format!(
                    "{} frames in one tag, more than {MAX_FRAMES_PER_BODY}",
                    data.len() / FRAME_BYTES
                ),
            ));
        }
        self.packet.fill(data).map_err(|e| e.library(CODEC))?;
        let start = out.len();
        match self.decode_packet(out) {
            Ok(()) => Ok(out.len() - start),
            Err(e) => {
                out.truncate(start);
                self.context.flush();
                Err(e)
            }
        }
    }

    fn decode_packet(&mut self, out: &mut Vec<i16>) -> Result<(), CodecError> {
        self.context.send_packet(&self.packet).map_err(|e| e.corrupt(CODEC))?;
        while self
            .context
            .receive_frame(&mut self.frame)
            .map_err(|e| e.corrupt(CODEC))?
        {
            match (self.frame.packed_f32(), self.frame.channels()) {
                (Some(samples), 1) => out.extend(samples.iter().map(|&s| f32_to_i16(s))),
                _ => {
                    return Err(CodecError::Libav {
                        codec: CODEC,
                        detail: format!(
                            "decoder gave {} channels not in packed float, not mono float",
                            self.frame.channels()
                        ),
                    })
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::{dbfs, dominant_frequency};
    use bytes::Bytes;
    use media::flv::{read_tags, TagKind};

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{}/../fixtures/flv/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    fn audio_bodies(name: &str) -> Vec<Bytes> {
        read_tags(&Bytes::from(fixture(name)))
            .unwrap()
            .into_iter()
            .filter(|t| t.kind == TagKind::Audio)
            .map(|t| t.data)
            .collect()
    }

    /// The PCM `ffmpeg -i X.flv -f s16le -ac 1` wrote for a fixture.
    fn reference_pcm(name: &str) -> Vec<i16> {
        fixture(name)
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect()
    }

    /// Decodes a fixture one tag at a time, checking every header byte.
    fn decode_fixture(name: &str, header: u8) -> Vec<i16> {
        let mut decoder = NellymoserDecoder::new().unwrap();
        let mut pcm = Vec::new();
        for body in audio_bodies(name) {
            assert_eq!(body[0], header);
            assert_eq!(decoder.decode(&body[1..], &mut pcm).unwrap(), FRAME_SAMPLES);
        }
        pcm
    }

    /// Compares with FFmpeg's own decoding: (max |difference|, SNR in dB).
    fn compare(ours: &[i16], reference: &[i16]) -> (i32, f64) {
        assert_eq!(ours.len(), reference.len(), "sample count");
        let max = ours
            .iter()
            .zip(reference)
            .map(|(&a, &b)| (i32::from(a) - i32::from(b)).abs())
            .max()
            .unwrap_or(0);
        let signal: f64 = reference.iter().map(|&s| f64::from(s).powi(2)).sum();
        let noise: f64 = ours
            .iter()
            .zip(reference)
            .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
            .sum();
        let snr = if noise == 0.0 {
            f64::INFINITY
        } else {
            10.0 * (signal / noise).log10()
        };
        (max, snr)
    }

    fn check_fixture(stem: &str, header: u8, rate: u32, frequency: f64) {
        assert_eq!(flv_sample_rate(header), Some(rate));
        let ours = decode_fixture(&format!("{stem}.flv"), header);
        let reference = reference_pcm(&format!("{stem}.s16le"));
        let (max, snr) = compare(&ours, &reference);
        let steady = &ours[rate as usize / 5..];
        let (f, level) = (dominant_frequency(steady, rate).unwrap(), dbfs(steady));
        eprintln!(
            "{stem}: {} samples, max |ours - ffmpeg| = {max}, SNR {snr:.1} dB; {f} Hz, {level:.2} dBFS",
            ours.len()
        );
        // Same library, so the same floats; the conversion to i16 rounds as
        // libswresample does. Bit-identical here; one LSB allows for another
        // CPU's SIMD paths in the decoder.
        assert!(max <= 1, "max difference {max}");
        assert!(snr > 90.0, "{snr}");
        assert!((f - frequency).abs() <= 3.0, "{f}");
        // lavfi's sine is 1/8 of full scale (-21.1 dBFS); Nellymoser at 8 and
        // 16 kHz loses some of it.
        assert!((-30.0..=-20.0).contains(&level), "{level}");
    }

    #[test]
    fn the_22050hz_fixture_decodes_as_ffmpeg_decodes_it() {
        check_fixture("ffmpeg_nellymoser_22050_440hz", 0x6A, 22_050, 440.0);
    }

    #[test]
    fn the_8khz_fixture_decodes_as_ffmpeg_decodes_it() {
        check_fixture("ffmpeg_nellymoser_8000_1khz", 0x52, 8_000, 1000.0);
    }

    #[test]
    fn the_16khz_fixture_decodes_as_ffmpeg_decodes_it() {
        check_fixture("ffmpeg_nellymoser_16000_1khz", 0x42, 16_000, 1000.0);
    }

    #[test]
    fn rates_come_from_the_sound_format_and_rate_bits() {
        assert_eq!(flv_sample_rate(0x42), Some(16_000));
        assert_eq!(flv_sample_rate(0x4E), Some(16_000), "rate bits ignored");
        assert_eq!(flv_sample_rate(0x52), Some(8_000));
        assert_eq!(flv_sample_rate(0x62), Some(5_512));
        assert_eq!(flv_sample_rate(0x66), Some(11_025));
        assert_eq!(flv_sample_rate(0x6A), Some(22_050));
        assert_eq!(flv_sample_rate(0x6E), Some(44_100));
        assert_eq!(flv_sample_rate(0xB2), None);
        assert_eq!(flv_sample_rate(0x32), None);
    }

    #[test]
    fn several_frames_in_one_body_decode_as_one_at_a_time() {
        let bodies = audio_bodies("ffmpeg_nellymoser_22050_440hz.flv");
        let one_by_one = decode_fixture("ffmpeg_nellymoser_22050_440hz.flv", 0x6A);
        // Flash Player style: four frames per tag at 22 kHz.
        let mut decoder = NellymoserDecoder::new().unwrap();
        let mut pcm = vec![7; 3];
        for group in bodies.chunks(4) {
            let body: Vec<u8> = group.iter().flat_map(|b| b[1..].iter().copied()).collect();
            assert_eq!(decoder.decode(&body, &mut pcm).unwrap(), group.len() * FRAME_SAMPLES);
        }
        assert_eq!(&pcm[..3], &[7; 3], "appends after what was there");
        assert_eq!(&pcm[3..], &one_by_one[..]);
    }

    #[test]
    fn partial_and_oversized_bodies_are_errors_and_decoding_goes_on() {
        let bodies = audio_bodies("ffmpeg_nellymoser_8000_1khz.flv");
        let mut decoder = NellymoserDecoder::new().unwrap();
        let mut pcm = Vec::new();
        assert_eq!(decoder.decode(&[], &mut pcm).unwrap(), 0);
        for bad in [
            &bodies[3][1..40],
            &bodies[3][..],
            &vec![0; FRAME_BYTES * (MAX_FRAMES_PER_BODY + 1)][..],
        ] {
            let err = decoder.decode(bad, &mut pcm).unwrap_err();
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
            eprintln!("{} bytes: {err}", bad.len());
        }
        assert!(pcm.is_empty(), "nothing appended on error");
        let big = vec![0x55; FRAME_BYTES * MAX_FRAMES_PER_BODY];
        assert_eq!(
            decoder.decode(&big, &mut pcm).unwrap(),
            FRAME_SAMPLES * MAX_FRAMES_PER_BODY
        );
        pcm.clear();
        for body in &bodies {
            decoder.decode(&body[1..], &mut pcm).unwrap();
        }
        let f = dominant_frequency(&pcm[1600..], 8_000).unwrap();
        assert!((f - 1000.0).abs() <= 3.0, "{f}");
    }

    #[test]
    fn random_frames_decode_to_bounded_noise_without_panics() {
        let mut decoder = NellymoserDecoder::new().unwrap();
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut pcm = Vec::new();
        for _ in 0..500 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let frames = 1 + (seed % 8) as usize;
            let body: Vec<u8> = (0..frames * FRAME_BYTES)
                .map(|i| (seed >> (i % 57)) as u8 ^ i as u8)
                .collect();
            pcm.clear();
            assert_eq!(decoder.decode(&body, &mut pcm).unwrap(), frames * FRAME_SAMPLES);
        }
        let loud = pcm
            .iter()
            .filter(|s| s.unsigned_abs() == 32768 || **s == i16::MAX)
            .count();
        eprintln!(
            "nellymoser random frames: {:.2} dBFS, {loud} clipped samples",
            dbfs(&pcm)
        );
    }

    #[test]
    fn the_decoder_can_move_between_threads() {
        fn is_send<T: Send>() {}
        is_send::<NellymoserDecoder>();
    }
}
