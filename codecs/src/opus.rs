//! Opus at 48 kHz, the audio codec of the WebRTC side, through the system
//! libopus (Debian's libopus-dev).

use std::ffi::{c_char, c_int, c_void, CStr};

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

const OPUS_APPLICATION_AUDIO: c_int = 2049;
const OPUS_SET_BITRATE_REQUEST: c_int = 4002;

#[link(name = "opus")]
extern "C" {
    fn opus_encoder_create(fs: i32, channels: c_int, application: c_int, error: *mut c_int) -> *mut c_void;
    fn opus_encoder_destroy(st: *mut c_void);
    fn opus_encoder_ctl(st: *mut c_void, request: c_int, ...) -> c_int;
    fn opus_encode(st: *mut c_void, pcm: *const i16, frame_size: c_int, data: *mut u8, max_data_bytes: i32) -> i32;
    fn opus_decoder_create(fs: i32, channels: c_int, error: *mut c_int) -> *mut c_void;
    fn opus_decoder_destroy(st: *mut c_void);
    fn opus_decode(
        st: *mut c_void,
        data: *const u8,
        len: i32,
        pcm: *mut i16,
        frame_size: c_int,
        decode_fec: c_int,
    ) -> c_int;
    fn opus_strerror(error: c_int) -> *const c_char;
}

/// libopus's words for a negative return code.
fn opus_error(code: c_int) -> CodecError {
    // SAFETY: opus_strerror returns a pointer to a static NUL-terminated
    // string for every code, known or not.
    let text = unsafe { CStr::from_ptr(opus_strerror(code)) };
    CodecError::Opus(format!("{} ({code})", text.to_string_lossy()))
}

fn channels_of(channels: usize) -> Result<c_int, CodecError> {
    match channels {
        1 | 2 => Ok(channels as c_int),
        n => Err(CodecError::InvalidParameter(format!(
            "opus takes 1 or 2 channels, not {n}"
        ))),
    }
}

/// Encodes 20 ms of 48 kHz PCM (1 or 2 channels) per call into one Opus packet.
#[derive(Debug)]
pub struct OpusEncoder {
    /// The libopus encoder state, owned: destroyed on drop.
    state: *mut c_void,
    channels: usize,
    buf: Vec<u8>,
}

// SAFETY: the state is only touched through &mut self, and libopus states
// hold no thread-local data.
unsafe impl Send for OpusEncoder {}

impl OpusEncoder {
    /// An encoder for general audio at `bitrate` bits per second (6000 to 510000).
    pub fn new(channels: usize, bitrate: u32) -> Result<Self, CodecError> {
        if !(6_000..=510_000).contains(&bitrate) {
            return Err(CodecError::InvalidParameter(format!(
                "opus bitrate {bitrate} is not in 6000..=510000"
            )));
        }
        let count = channels_of(channels)?;
        let mut error = 0;
        // SAFETY: valid rate, channel count and application; `error` outlives the call.
        let state = unsafe { opus_encoder_create(SAMPLE_RATE as i32, count, OPUS_APPLICATION_AUDIO, &mut error) };
        if state.is_null() || error < 0 {
            return Err(opus_error(error));
        }
        let encoder = OpusEncoder {
            state,
            channels,
            buf: vec![0; MAX_PACKET_BYTES],
        };
        // SAFETY: a live encoder state; the request takes one opus_int32.
        // The range check above keeps the bitrate in i32.
        let done = unsafe { opus_encoder_ctl(encoder.state, OPUS_SET_BITRATE_REQUEST, bitrate as i32) };
        if done < 0 {
            return Err(opus_error(done));
        }
        Ok(encoder)
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
        // SAFETY: a live state; `pcm` holds FRAME_SAMPLES samples per channel
        // (checked above) and `buf` has room for the length passed.
        let len = unsafe {
            opus_encode(
                self.state,
                pcm.as_ptr(),
                FRAME_SAMPLES as c_int,
                self.buf.as_mut_ptr(),
                self.buf.len() as i32,
            )
        };
        if len < 0 {
            return Err(opus_error(len));
        }
        Ok(Bytes::copy_from_slice(&self.buf[..len as usize]))
    }
}

impl Drop for OpusEncoder {
    fn drop(&mut self) {
        // SAFETY: created by opus_encoder_create, destroyed once.
        unsafe { opus_encoder_destroy(self.state) }
    }
}

/// Decodes Opus packets to 48 kHz PCM with a chosen channel count (libopus
/// mixes or duplicates channels as needed), and conceals lost packets.
#[derive(Debug)]
pub struct OpusDecoder {
    /// The libopus decoder state, owned: destroyed on drop.
    state: *mut c_void,
    channels: usize,
    last_samples: usize,
}

// SAFETY: as for the encoder.
unsafe impl Send for OpusDecoder {}

impl Drop for OpusDecoder {
    fn drop(&mut self) {
        // SAFETY: created by opus_decoder_create, destroyed once.
        unsafe { opus_decoder_destroy(self.state) }
    }
}

impl OpusDecoder {
    /// A decoder producing `channels` (1 or 2) interleaved channels.
    pub fn new(channels: usize) -> Result<Self, CodecError> {
        let count = channels_of(channels)?;
        let mut error = 0;
        // SAFETY: valid rate and channel count; `error` outlives the call.
        let state = unsafe { opus_decoder_create(SAMPLE_RATE as i32, count, &mut error) };
        if state.is_null() || error < 0 {
            return Err(opus_error(error));
        }
        Ok(OpusDecoder {
            state,
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
        let samples = self.decode_into(packet, MAX_PACKET_SAMPLES, out)?;
        if samples > 0 {
            self.last_samples = samples;
        }
        Ok(samples)
    }

    /// Appends `samples_per_channel` samples of packet-loss concealment (rounded
    /// down to whole 2.5 ms steps, at most 120 ms) extrapolated from the audio
    /// decoded so far; returns the number of samples per channel appended.
    pub fn conceal(&mut self, samples_per_channel: usize, out: &mut Vec<i16>) -> Result<usize, CodecError> {
        let samples = (samples_per_channel.min(MAX_PACKET_SAMPLES) / 120) * 120;
        if samples == 0 {
            return Ok(0);
        }
        self.decode_into(&[], samples, out)
    }

    /// Decodes `packet` (concealment when empty) into at most `room`
    /// samples per channel appended to `out`; returns how many came.
    fn decode_into(&mut self, packet: &[u8], room: usize, out: &mut Vec<i16>) -> Result<usize, CodecError> {
        let Ok(len) = i32::try_from(packet.len()) else {
            return Err(CodecError::corrupt("opus", "a packet over 2 GiB"));
        };
        let start = out.len();
        out.resize(start + room * self.channels, 0);
        let data = if packet.is_empty() {
            std::ptr::null()
        } else {
            packet.as_ptr()
        };
        // SAFETY: a live state; `data` is `len` readable bytes (or null for
        // concealment) and `out[start..]` has room for `room` samples per channel.
        let samples = unsafe { opus_decode(self.state, data, len, out[start..].as_mut_ptr(), room as c_int, 0) };
        if samples < 0 {
            out.truncate(start);
            return Err(opus_error(samples));
        }
        out.truncate(start + samples as usize * self.channels);
        Ok(samples as usize)
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
