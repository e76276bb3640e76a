//! Opus at 48 kHz, the audio codec of the WebRTC side, through libopus.

use bytes::Bytes;

use super::CodecError;

/// The Opus clock rate, and the only rate used here.
pub const SAMPLE_RATE: u32 = 48_000;
/// Samples per channel in one 20 ms packet at 48 kHz.
pub const FRAME_SAMPLES: usize = 960;
/// Samples per channel in the longest Opus packet (120 ms).
pub const MAX_PACKET_SAMPLES: usize = 5760;
/// The largest packet the encoder writes (RFC 6716: 1275 bytes a frame).
const MAX_PACKET_BYTES: usize = 1500;

fn channels_of(channels: usize) -> Result<::opus::Channels, CodecError> {
    match channels {
        1 => Ok(::opus::Channels::Mono),
        2 => Ok(::opus::Channels::Stereo),
        n => Err(CodecError::InvalidParameter(format!(
            "opus takes 1 or 2 channels, not {n}"
        ))),
    }
}

/// Encodes 20 ms of 48 kHz PCM (1 or 2 channels) per call into one Opus packet.
#[derive(Debug)]
pub struct OpusEncoder {
    inner: ::opus::Encoder,
    channels: usize,
    buf: Vec<u8>,
}

impl OpusEncoder {
    /// An encoder for general audio at `bitrate` bits per second (6000 to 510000).
    pub fn new(channels: usize, bitrate: u32) -> Result<Self, CodecError> {
        if !(6_000..=510_000).contains(&bitrate) {
            return Err(CodecError::InvalidParameter(format!(
                "opus bitrate {bitrate} is not in 6000..=510000"
            )));
        }
        let mut inner = ::opus::Encoder::new(SAMPLE_RATE, channels_of(channels)?, ::opus::Application::Audio)?;
        // The range check above keeps this in i32.
        inner.set_bitrate(::opus::Bitrate::Bits(bitrate as i32))?;
        Ok(OpusEncoder {
            inner,
            channels,
            buf: vec![0; MAX_PACKET_BYTES],
        })
    }

    /// The channel count this encoder takes.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Encodes exactly [`FRAME_SAMPLES`] samples per channel (interleaved) into
    /// one packet.
    pub fn encode(&mut self, pcm: &[i16]) -> Result<Bytes, CodecError> {
        if pcm.len() != FRAME_SAMPLES * self.channels {
            return Err(CodecError::InvalidParameter(format!(
                "opus encoder takes {} interleaved samples (20 ms), got {}",
                FRAME_SAMPLES * self.channels,
                pcm.len()
            )));
        }
        let len = self.inner.encode(pcm, &mut self.buf)?;
        Ok(Bytes::copy_from_slice(&self.buf[..len]))
    }
}

/// Decodes Opus packets to 48 kHz PCM with a chosen channel count (libopus
/// mixes or duplicates channels as needed), and conceals lost packets.
#[derive(Debug)]
pub struct OpusDecoder {
    inner: ::opus::Decoder,
    channels: usize,
    last_samples: usize,
}

impl OpusDecoder {
    /// A decoder producing `channels` (1 or 2) interleaved channels.
    pub fn new(channels: usize) -> Result<Self, CodecError> {
        Ok(OpusDecoder {
            inner: ::opus::Decoder::new(SAMPLE_RATE, channels_of(channels)?)?,
            channels,
            last_samples: FRAME_SAMPLES,
        })
    }

    /// The channel count this decoder produces.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Decodes one packet and appends its samples to `out`; returns the number
    /// of samples per channel. An empty `packet` means a lost one: it is
    /// concealed with as many samples as the last packet had.
    pub fn decode(&mut self, packet: &[u8], out: &mut Vec<i16>) -> Result<usize, CodecError> {
        if packet.is_empty() {
            return self.conceal(self.last_samples, out);
        }
        let start = out.len();
        out.resize(start + MAX_PACKET_SAMPLES * self.channels, 0);
        match self.inner.decode(packet, &mut out[start..], false) {
            Ok(samples) => {
                out.truncate(start + samples * self.channels);
                if samples > 0 {
                    self.last_samples = samples;
                }
                Ok(samples)
            }
            Err(e) => {
                out.truncate(start);
                Err(e.into())
            }
        }
    }

    /// Appends `samples_per_channel` samples of packet-loss concealment (rounded
    /// down to whole 2.5 ms steps, at most 120 ms) extrapolated from the audio
    /// decoded so far; returns the number of samples per channel appended.
    pub fn conceal(&mut self, samples_per_channel: usize, out: &mut Vec<i16>) -> Result<usize, CodecError> {
        let samples = (samples_per_channel.min(MAX_PACKET_SAMPLES) / 120) * 120;
        if samples == 0 {
            return Ok(0);
        }
        let start = out.len();
        out.resize(start + samples * self.channels, 0);
        match self.inner.decode(&[], &mut out[start..], false) {
            Ok(n) => {
                out.truncate(start + n * self.channels);
                Ok(n)
            }
            Err(e) => {
                out.truncate(start);
                Err(e.into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::{dbfs, dominant_frequency, mono, sine};

    fn round_trip(frequency: f64, channels: usize, bitrate: u32) -> Vec<i16> {
        let mut encoder = OpusEncoder::new(channels, bitrate).unwrap();
        let mut decoder = OpusDecoder::new(channels).unwrap();
        let mut out = Vec::new();
        for i in 0..50 {
            let pcm = sine(
                frequency,
                SAMPLE_RATE,
                channels,
                (i * FRAME_SAMPLES) as u64,
                FRAME_SAMPLES,
                0.5,
            );
            let packet = encoder.encode(&pcm).unwrap();
            assert_eq!(decoder.decode(&packet, &mut out).unwrap(), FRAME_SAMPLES);
        }
        out
    }

    #[test]
    fn a_440hz_tone_survives_a_mono_round_trip() {
        let out = round_trip(440.0, 1, 32_000);
        let steady = &out[4800..];
        let f = dominant_frequency(steady, SAMPLE_RATE).unwrap();
        let level = dbfs(steady);
        eprintln!("opus mono 440 Hz: {f} Hz, {level:.2} dBFS (sent -9.03)");
        assert!((f - 440.0).abs() <= 3.0, "{f}");
        assert!((level - (-9.03)).abs() <= 1.5, "{level}");
    }

    #[test]
    fn a_1khz_tone_survives_a_stereo_round_trip() {
        let out = round_trip(1000.0, 2, 64_000);
        let steady = mono(&out[9600..], 2);
        let f = dominant_frequency(&steady, SAMPLE_RATE).unwrap();
        let level = dbfs(&steady);
        eprintln!("opus stereo 1 kHz: {f} Hz, {level:.2} dBFS (sent -9.03)");
        assert!((f - 1000.0).abs() <= 3.0, "{f}");
        assert!((level - (-9.03)).abs() <= 1.5, "{level}");
    }

    #[test]
    fn a_stereo_packet_decodes_to_mono_and_back() {
        let mut encoder = OpusEncoder::new(2, 64_000).unwrap();
        let mut decoder = OpusDecoder::new(1).unwrap();
        let packet = encoder
            .encode(&sine(440.0, SAMPLE_RATE, 2, 0, FRAME_SAMPLES, 0.5))
            .unwrap();
        let mut out = Vec::new();
        assert_eq!(decoder.decode(&packet, &mut out).unwrap(), FRAME_SAMPLES);
        assert_eq!(out.len(), FRAME_SAMPLES);
    }

    #[test]
    fn a_lost_packet_is_concealed_with_the_last_duration() {
        let mut encoder = OpusEncoder::new(1, 32_000).unwrap();
        let mut decoder = OpusDecoder::new(1).unwrap();
        let mut out = Vec::new();
        for i in 0..10 {
            let pcm = sine(440.0, SAMPLE_RATE, 1, (i * FRAME_SAMPLES) as u64, FRAME_SAMPLES, 0.5);
            decoder.decode(&encoder.encode(&pcm).unwrap(), &mut out).unwrap();
        }
        out.clear();
        assert_eq!(decoder.decode(&[], &mut out).unwrap(), FRAME_SAMPLES);
        assert_eq!(out.len(), FRAME_SAMPLES);
        assert!(dbfs(&out) > -30.0, "concealment continues the tone: {}", dbfs(&out));
        assert_eq!(decoder.conceal(500, &mut out).unwrap(), 480, "whole 2.5 ms steps");
        assert_eq!(decoder.conceal(100, &mut out).unwrap(), 0);
        assert_eq!(out.len(), FRAME_SAMPLES + 480);
    }

    #[test]
    fn a_damaged_packet_is_an_error_and_decoding_goes_on() {
        let mut encoder = OpusEncoder::new(1, 32_000).unwrap();
        let mut decoder = OpusDecoder::new(1).unwrap();
        let mut out = Vec::new();
        // Code 3 (arbitrary frame count) with a frame count of 0 is invalid.
        let err = decoder.decode(&[0x03, 0x00], &mut out).unwrap_err();
        assert!(matches!(err, CodecError::Opus(_)), "{err}");
        assert!(out.is_empty());
        for i in 0..20 {
            let pcm = sine(440.0, SAMPLE_RATE, 1, (i * FRAME_SAMPLES) as u64, FRAME_SAMPLES, 0.5);
            decoder.decode(&encoder.encode(&pcm).unwrap(), &mut out).unwrap();
        }
        let f = dominant_frequency(&out[4800..], SAMPLE_RATE).unwrap();
        assert!((f - 440.0).abs() <= 3.0, "{f}");
    }

    #[test]
    fn bad_parameters_are_refused() {
        assert!(OpusEncoder::new(3, 32_000).is_err());
        assert!(OpusEncoder::new(1, 1_000).is_err());
        assert!(OpusDecoder::new(0).is_err());
        let mut encoder = OpusEncoder::new(2, 32_000).unwrap();
        assert!(
            encoder.encode(&[0; FRAME_SAMPLES]).is_err(),
            "stereo needs 1920 samples"
        );
    }
}
