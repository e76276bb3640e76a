//! Speex wideband (16 kHz mono), the voice codec Flash Player publishes with
//! (FLV SoundFormat 11), through the system libspeex.
//!
//! Flash Player sends one 20 ms frame per tag; other encoders (FFmpeg's
//! `frames_per_packet`) pack several frames into one bit stream per tag, ended
//! by padding or a terminator. [`SpeexDecoder::decode`] takes either.

use std::ffi::{c_char, c_int, c_uint, c_void};

use super::CodecError;

/// Samples in one wideband frame: 20 ms at 16 kHz.
pub const FRAME_SAMPLES: usize = 320;
/// The wideband sample rate.
pub const SAMPLE_RATE: u32 = 16_000;
/// The most frames [`SpeexDecoder::decode`] takes from one body (1.28 s), so
/// that a small hostile body cannot make it produce unbounded audio.
pub const MAX_FRAMES_PER_BODY: usize = 64;
/// The longest body [`SpeexDecoder::decode`] accepts; a wideband frame is at
/// most 106 bytes, so this is far more than [`MAX_FRAMES_PER_BODY`] frames need.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The C `SpeexBits` of speex_bits.h, field for field.
#[repr(C)]
struct SpeexBits {
    chars: *mut c_char,
    nb_bits: c_int,
    char_ptr: c_int,
    bit_ptr: c_int,
    owner: c_int,
    overflow: c_int,
    buf_size: c_int,
    reserved1: c_int,
    reserved2: *mut c_void,
}

/// The opaque C `SpeexMode`.
#[repr(C)]
struct SpeexMode {
    _private: [u8; 0],
}

const SPEEX_MODEID_WB: c_int = 1;
const SPEEX_SET_ENH: c_int = 0;
const SPEEX_GET_FRAME_SIZE: c_int = 3;
const SPEEX_SET_QUALITY: c_int = 4;
const SPEEX_SET_VBR: c_int = 12;
const SPEEX_SET_COMPLEXITY: c_int = 16;
const SPEEX_RESET_STATE: c_int = 26;

#[link(name = "speex")]
extern "C" {
    fn speex_lib_get_mode(mode: c_int) -> *const SpeexMode;
    fn speex_decoder_init(mode: *const SpeexMode) -> *mut c_void;
    fn speex_decoder_destroy(state: *mut c_void);
    fn speex_decoder_ctl(state: *mut c_void, request: c_int, ptr: *mut c_void) -> c_int;
    fn speex_decode_int(state: *mut c_void, bits: *mut SpeexBits, out: *mut i16) -> c_int;
    fn speex_encoder_init(mode: *const SpeexMode) -> *mut c_void;
    fn speex_encoder_destroy(state: *mut c_void);
    fn speex_encoder_ctl(state: *mut c_void, request: c_int, ptr: *mut c_void) -> c_int;
    fn speex_encode_int(state: *mut c_void, input: *mut i16, bits: *mut SpeexBits) -> c_int;
    fn speex_bits_init(bits: *mut SpeexBits);
    fn speex_bits_destroy(bits: *mut SpeexBits);
    fn speex_bits_reset(bits: *mut SpeexBits);
    fn speex_bits_read_from(bits: *mut SpeexBits, bytes: *const c_char, len: c_int);
    fn speex_bits_write(bits: *mut SpeexBits, bytes: *mut c_char, max_len: c_int) -> c_int;
    fn speex_bits_nbytes(bits: *mut SpeexBits) -> c_int;
    fn speex_bits_remaining(bits: *mut SpeexBits) -> c_int;
    fn speex_bits_peek_unsigned(bits: *mut SpeexBits, nb_bits: c_int) -> c_uint;
    fn speex_bits_insert_terminator(bits: *mut SpeexBits);
}

/// A `SpeexBits` that owns its buffer and frees it on drop. Boxed so that its
/// address never changes while libspeex holds it.
struct Bits(Box<SpeexBits>);

impl Bits {
    fn new() -> Self {
        let mut bits = Box::new(SpeexBits {
            chars: std::ptr::null_mut(),
            nb_bits: 0,
            char_ptr: 0,
            bit_ptr: 0,
            owner: 0,
            overflow: 0,
            buf_size: 0,
            reserved1: 0,
            reserved2: std::ptr::null_mut(),
        });
        // SAFETY: `bits` is a valid, writable SpeexBits; init allocates its buffer.
        unsafe { speex_bits_init(&mut *bits) };
        Bits(bits)
    }

    fn ptr(&mut self) -> *mut SpeexBits {
        &mut *self.0
    }
}

impl Drop for Bits {
    fn drop(&mut self) {
        // SAFETY: initialised by speex_bits_init in `new`, destroyed once here.
        unsafe { speex_bits_destroy(self.ptr()) }
    }
}

fn wideband_mode() -> Result<*const SpeexMode, CodecError> {
    // SAFETY: returns a pointer to a static mode table, or null for an unknown id.
    let mode = unsafe { speex_lib_get_mode(SPEEX_MODEID_WB) };
    if mode.is_null() {
        return Err(CodecError::Library("libspeex (no wideband mode)"));
    }
    Ok(mode)
}

/// Decodes Speex wideband frames from FLV tag bodies (the bytes after the FLV
/// audio header byte) to 16 kHz mono PCM.
pub struct SpeexDecoder {
    state: *mut c_void,
    bits: Bits,
}

// SAFETY: a libspeex decoder state and its SpeexBits are plain heap memory with
// no thread affinity and no shared mutable globals (the mode tables are
// read-only). `&mut self` on every call means one thread at a time; the raw
// pointer keeps the type !Sync.
unsafe impl Send for SpeexDecoder {}

impl SpeexDecoder {
    /// A wideband decoder with the perceptual enhancer on.
    pub fn new() -> Result<Self, CodecError> {
        let mode = wideband_mode()?;
        // SAFETY: `mode` is a valid static mode.
        let state = unsafe { speex_decoder_init(mode) };
        if state.is_null() {
            return Err(CodecError::Library("libspeex decoder"));
        }
        let decoder = SpeexDecoder {
            state,
            bits: Bits::new(),
        };
        let mut enhance: c_int = 1;
        let mut frame_size: c_int = 0;
        // SAFETY: valid state; both requests take a pointer to an int.
        unsafe {
            speex_decoder_ctl(decoder.state, SPEEX_SET_ENH, (&mut enhance as *mut c_int).cast());
            speex_decoder_ctl(
                decoder.state,
                SPEEX_GET_FRAME_SIZE,
                (&mut frame_size as *mut c_int).cast(),
            );
        }
        if frame_size as usize != FRAME_SAMPLES {
            return Err(CodecError::Library("libspeex decoder (unexpected wideband frame size)"));
        }
        Ok(decoder)
    }

    /// Decodes every frame in `data` and appends 320 samples per frame to `out`;
    /// returns the number of samples appended.
    ///
    /// Decoding stops cleanly at a terminator or when fewer bits remain than a
    /// frame header needs (the padding after the last frame). On an error
    /// nothing is appended, and the decoder state is reset so that the damage
    /// does not leak into the frames that follow.
    pub fn decode(&mut self, data: &[u8], out: &mut Vec<i16>) -> Result<usize, CodecError> {
        if data.len() > MAX_BODY_BYTES {
            return Err(CodecError::corrupt(
                "speex",
                format!("{} bytes in one tag, more than {MAX_BODY_BYTES}", data.len()),
            ));
        }
        let start = out.len();
        let bits = self.bits.ptr();
        // SAFETY: `bits` is initialised; libspeex copies `data` (len fits in c_int,
        // checked above) into its own buffer.
        unsafe { speex_bits_read_from(bits, data.as_ptr().cast(), data.len() as c_int) };
        let mut frames = 0;
        let result = loop {
            // SAFETY: `bits` is initialised and holds the data read above.
            let (remaining, next) = unsafe { (speex_bits_remaining(bits), speex_bits_peek_unsigned(bits, 5)) };
            // A narrowband-layer header is 5 bits: the wideband flag (0) and a
            // 4-bit mode, 15 being the terminator.
            if remaining < 5 || next == 0x0F {
                break Ok(());
            }
            if frames == MAX_FRAMES_PER_BODY {
                break Err(CodecError::corrupt(
                    "speex",
                    format!("more than {MAX_FRAMES_PER_BODY} frames in one tag"),
                ));
            }
            let at = out.len();
            out.resize(at + FRAME_SAMPLES, 0);
            // SAFETY: valid state and bits; `out[at..]` has room for exactly one
            // wideband frame (FRAME_SAMPLES, checked against the library in `new`).
            let status = unsafe { speex_decode_int(self.state, bits, out[at..].as_mut_ptr()) };
            // SAFETY: as above; `overflow` is set when a frame ran past the data.
            let overflow = unsafe { (*bits).overflow != 0 };
            match status {
                0 if !overflow => frames += 1,
                0 | -1 if overflow => break Err(CodecError::corrupt("speex", "frame truncated")),
                -1 => {
                    // End of stream signalled inside the frame: not audio.
                    out.truncate(at);
                    break Ok(());
                }
                _ => break Err(CodecError::corrupt("speex", "invalid mode in frame header")),
            }
        };
        match result {
            Ok(()) => Ok(out.len() - start),
            Err(e) => {
                out.truncate(start);
                self.reset();
                Err(e)
            }
        }
    }

    /// Forgets the decoder history (filter memories, pitch), as after a seek.
    pub fn reset(&mut self) {
        // SAFETY: valid state; SPEEX_RESET_STATE takes no argument.
        unsafe { speex_decoder_ctl(self.state, SPEEX_RESET_STATE, std::ptr::null_mut()) };
    }
}

impl Drop for SpeexDecoder {
    fn drop(&mut self) {
        // SAFETY: created by speex_decoder_init, destroyed once here.
        unsafe { speex_decoder_destroy(self.state) }
    }
}

impl std::fmt::Debug for SpeexDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpeexDecoder").finish_non_exhaustive()
    }
}

/// Encodes 16 kHz mono PCM to Speex wideband, one 20 ms frame per call, the
/// way Flash Player expects it (one frame per FLV tag).
pub struct SpeexEncoder {
    state: *mut c_void,
    bits: Bits,
    frame: [i16; FRAME_SAMPLES],
    quality: u8,
}

// SAFETY: see `SpeexDecoder`; the same holds for an encoder state.
unsafe impl Send for SpeexEncoder {}

impl SpeexEncoder {
    /// A constant-bitrate wideband encoder at `quality` 0 to 10 (8 is about
    /// 27.8 kbit/s, 10 is 42.2 kbit/s).
    pub fn new(quality: u8) -> Result<Self, CodecError> {
        if quality > 10 {
            return Err(CodecError::InvalidParameter(format!(
                "speex quality {quality} is not in 0..=10"
            )));
        }
        let mode = wideband_mode()?;
        // SAFETY: `mode` is a valid static mode.
        let state = unsafe { speex_encoder_init(mode) };
        if state.is_null() {
            return Err(CodecError::Library("libspeex encoder"));
        }
        let encoder = SpeexEncoder {
            state,
            bits: Bits::new(),
            frame: [0; FRAME_SAMPLES],
            quality,
        };
        let mut q = c_int::from(quality);
        let mut vbr: c_int = 0;
        let mut complexity: c_int = 3;
        let mut frame_size: c_int = 0;
        // SAFETY: valid state; every request takes a pointer to an int.
        unsafe {
            speex_encoder_ctl(encoder.state, SPEEX_SET_QUALITY, (&mut q as *mut c_int).cast());
            speex_encoder_ctl(encoder.state, SPEEX_SET_VBR, (&mut vbr as *mut c_int).cast());
            speex_encoder_ctl(
                encoder.state,
                SPEEX_SET_COMPLEXITY,
                (&mut complexity as *mut c_int).cast(),
            );
            speex_encoder_ctl(
                encoder.state,
                SPEEX_GET_FRAME_SIZE,
                (&mut frame_size as *mut c_int).cast(),
            );
        }
        if frame_size as usize != FRAME_SAMPLES {
            return Err(CodecError::Library("libspeex encoder (unexpected wideband frame size)"));
        }
        Ok(encoder)
    }

    /// The quality this encoder was made with.
    pub fn quality(&self) -> u8 {
        self.quality
    }

    /// Encodes exactly [`FRAME_SAMPLES`] samples into one frame, padded to a
    /// whole byte with a terminator, and appends it to `out`; returns its length.
    pub fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<usize, CodecError> {
        self.encode_frames(pcm, out)
    }

    /// Encodes a whole number of 20 ms frames into one packet (frames back to
    /// back in one bit stream, then a terminator), as FFmpeg's
    /// `frames_per_packet` does; appends it to `out` and returns its length.
    /// [`SpeexDecoder::decode`] reads such packets; Flash Player wants one frame.
    pub fn encode_frames(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<usize, CodecError> {
        if pcm.is_empty()
            || !pcm.chunks_exact(FRAME_SAMPLES).remainder().is_empty()
            || pcm.len() / FRAME_SAMPLES > MAX_FRAMES_PER_BODY
        {
            return Err(CodecError::InvalidParameter(format!(
                "speex encoder takes 1 to {MAX_FRAMES_PER_BODY} frames of {FRAME_SAMPLES} samples, got {} samples",
                pcm.len()
            )));
        }
        let bits = self.bits.ptr();
        // SAFETY: `bits` is initialised.
        unsafe { speex_bits_reset(bits) };
        for chunk in pcm.chunks_exact(FRAME_SAMPLES) {
            // libspeex may use its input as scratch, so it gets a copy.
            self.frame.copy_from_slice(chunk);
            // SAFETY: valid state and bits; `frame` holds exactly one frame.
            unsafe { speex_encode_int(self.state, self.frame.as_mut_ptr(), bits) };
        }
        // SAFETY: `bits` is initialised; the terminator pads to a whole byte.
        let len = unsafe {
            speex_bits_insert_terminator(bits);
            speex_bits_nbytes(bits)
        };
        let len = usize::try_from(len).unwrap_or(0);
        let at = out.len();
        out.resize(at + len, 0);
        // SAFETY: `out[at..]` has room for `len` bytes, the whole bit stream.
        let written = unsafe { speex_bits_write(bits, out[at..].as_mut_ptr().cast(), len as c_int) };
        out.truncate(at + usize::try_from(written).unwrap_or(0));
        Ok(out.len() - at)
    }
}

impl Drop for SpeexEncoder {
    fn drop(&mut self) {
        // SAFETY: created by speex_encoder_init, destroyed once here.
        unsafe { speex_encoder_destroy(self.state) }
    }
}

impl std::fmt::Debug for SpeexEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpeexEncoder")
            .field("quality", &self.quality)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::{dbfs, dominant_frequency, sine};

    fn encode_tone(frequency: f64, frames: usize, quality: u8) -> Vec<Vec<u8>> {
        let mut encoder = SpeexEncoder::new(quality).unwrap();
        (0..frames)
            .map(|i| {
                let pcm = sine(
                    frequency,
                    SAMPLE_RATE,
                    1,
                    (i * FRAME_SAMPLES) as u64,
                    FRAME_SAMPLES,
                    0.5,
                );
                let mut frame = Vec::new();
                encoder.encode(&pcm, &mut frame).unwrap();
                frame
            })
            .collect()
    }

    /// Pitch and level of decoded 16 kHz audio after the first 100 ms.
    fn measure(pcm: &[i16]) -> (f64, f64) {
        let steady = &pcm[1600..];
        (dominant_frequency(steady, SAMPLE_RATE).unwrap_or(0.0), dbfs(steady))
    }

    #[test]
    fn a_1khz_tone_survives_a_round_trip() {
        let frames = encode_tone(1000.0, 50, 8);
        assert!(
            frames.iter().all(|f| (60..=75).contains(&f.len())),
            "quality 8 is ~70 bytes a frame"
        );
        let mut decoder = SpeexDecoder::new().unwrap();
        let mut pcm = Vec::new();
        for frame in &frames {
            assert_eq!(decoder.decode(frame, &mut pcm).unwrap(), FRAME_SAMPLES);
        }
        let (f, level) = measure(&pcm);
        eprintln!("speex q8 1 kHz: {f} Hz, {level:.2} dBFS (sent -9.03)");
        assert!((f - 1000.0).abs() <= 5.0, "{f}");
        assert!((level - (-9.03)).abs() <= 3.0, "{level}");
    }

    #[test]
    fn a_440hz_tone_survives_at_flash_quality() {
        let frames = encode_tone(440.0, 50, 10);
        assert!(
            frames.iter().all(|f| f.len() == 106),
            "quality 10 is Flash Player's 106-byte frame"
        );
        let mut decoder = SpeexDecoder::new().unwrap();
        let mut pcm = Vec::new();
        for frame in &frames {
            decoder.decode(frame, &mut pcm).unwrap();
        }
        let (f, level) = measure(&pcm);
        eprintln!("speex q10 440 Hz: {f} Hz, {level:.2} dBFS (sent -9.03)");
        assert!((f - 440.0).abs() <= 5.0, "{f}");
        assert!((level - (-9.03)).abs() <= 3.0, "{level}");
    }

    #[test]
    fn several_frames_in_one_body_all_decode() {
        let mut encoder = SpeexEncoder::new(8).unwrap();
        let pcm = sine(1000.0, SAMPLE_RATE, 1, 0, 3 * FRAME_SAMPLES, 0.5);
        let mut packet = Vec::new();
        encoder.encode_frames(&pcm, &mut packet).unwrap();
        let mut decoder = SpeexDecoder::new().unwrap();
        let mut out = vec![7; 5];
        assert_eq!(decoder.decode(&packet, &mut out).unwrap(), 3 * FRAME_SAMPLES);
        assert_eq!(out.len(), 5 + 3 * FRAME_SAMPLES, "appends after what was there");
        assert_eq!(&out[..5], &[7; 5]);
    }

    #[test]
    fn a_terminator_or_the_padding_ends_the_body() {
        let frames = encode_tone(1000.0, 2, 8);
        let mut decoder = SpeexDecoder::new().unwrap();
        let mut out = Vec::new();
        // The encoder pads its frame to a byte with a terminator (0 then 1s);
        // fewer than 5 bits of it, or a whole 0 1111, both end the body.
        assert_eq!(decoder.decode(&frames[0], &mut out).unwrap(), FRAME_SAMPLES);
        // A terminator (0 1111) first: nothing after it is read.
        assert_eq!(decoder.decode(&[0x7F, 0xAA, 0x55, 0x12], &mut out).unwrap(), 0);
        assert_eq!(decoder.decode(&[0x78], &mut out).unwrap(), 0);
        assert_eq!(decoder.decode(&[], &mut out).unwrap(), 0, "an empty body is no frames");
        assert_eq!(decoder.decode(&frames[1], &mut out).unwrap(), FRAME_SAMPLES);
        assert_eq!(out.len(), 2 * FRAME_SAMPLES);
    }

    #[test]
    fn a_truncated_frame_is_an_error_and_decoding_goes_on() {
        let frames = encode_tone(1000.0, 40, 8);
        let mut decoder = SpeexDecoder::new().unwrap();
        let mut out = Vec::new();
        for frame in &frames[..10] {
            decoder.decode(frame, &mut out).unwrap();
        }
        let before = out.len();
        let err = decoder.decode(&frames[10][..30], &mut out).unwrap_err();
        assert!(matches!(err, CodecError::Corrupt { codec: "speex", .. }), "{err}");
        assert_eq!(out.len(), before, "nothing appended on error");
        out.clear();
        for frame in &frames[11..] {
            decoder.decode(frame, &mut out).unwrap();
        }
        let (f, _) = measure(&out);
        assert!((f - 1000.0).abs() <= 5.0, "{f}");
    }

    #[test]
    fn random_bytes_never_panic_and_decoding_goes_on() {
        let mut decoder = SpeexDecoder::new().unwrap();
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut out = Vec::new();
        let (mut ok, mut errors) = (0, 0);
        for _ in 0..2000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 300) as usize;
            let body: Vec<u8> = (0..len).map(|i| (seed >> (i % 57)) as u8 ^ i as u8).collect();
            out.clear();
            match decoder.decode(&body, &mut out) {
                Ok(n) => {
                    assert!(n <= MAX_FRAMES_PER_BODY * FRAME_SAMPLES);
                    ok += 1;
                }
                Err(_) => errors += 1,
            }
        }
        eprintln!("speex random bodies: {ok} decoded, {errors} rejected");
        assert!(errors > 0);
        let big = vec![0u8; MAX_BODY_BYTES + 1];
        assert!(decoder.decode(&big, &mut out).is_err());
        decoder.reset();
        out.clear();
        for frame in &encode_tone(440.0, 30, 8) {
            decoder.decode(frame, &mut out).unwrap();
        }
        let (f, level) = measure(&out);
        assert!((f - 440.0).abs() <= 5.0, "{f}");
        assert!(level > -15.0, "{level}");
    }

    #[test]
    fn the_encoder_rejects_wrong_lengths_and_qualities() {
        assert!(SpeexEncoder::new(11).is_err());
        let mut encoder = SpeexEncoder::new(0).unwrap();
        let mut out = Vec::new();
        assert!(encoder.encode(&[0; 319], &mut out).is_err());
        assert!(encoder.encode(&[], &mut out).is_err());
        assert!(encoder.encode(&[0; FRAME_SAMPLES], &mut out).unwrap() > 0);
    }

    #[test]
    fn codec_states_can_move_between_threads() {
        fn is_send<T: Send>() {}
        is_send::<SpeexDecoder>();
        is_send::<SpeexEncoder>();
    }
}
