//! A streaming sample-rate converter for interleaved `i16` PCM, built on rubato.
//!
//! Input comes in whatever lengths the decoders produce (320 samples of Speex,
//! 1024 of AAC, 1152 of MP3); rubato works in fixed chunks, so the remainder
//! waits inside until the next call. Rates with a common divisor of at least
//! 50 (every rate FLV and Opus use) go through rubato's FFT resampler in 20 ms
//! chunks; other pairs use its windowed-sinc resampler. The filter's start-up
//! delay is dropped, so output sample `n` lines up with input time `n / to_rate`.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Async, Fft, FixedAsync, FixedSync, SincInterpolationParameters, WindowFunction};

use super::CodecError;

/// The highest sample rate [`Resampler::new`] accepts.
pub const MAX_RATE: u32 = 384_000;
/// The most channels [`Resampler::new`] accepts.
pub const MAX_CHANNELS: usize = 8;

struct Engine {
    inner: Box<dyn rubato::Resampler<f32>>,
    /// Interleaved input waiting for a whole chunk, as f32 in -1..1.
    input: Vec<f32>,
    /// Scratch for one chunk of output.
    output: Vec<f32>,
    /// Output frames still to drop (the filter's start-up delay).
    skip: usize,
}

/// Converts interleaved PCM from one sample rate to another, any input length
/// per call; the identity when both rates are equal.
pub struct Resampler {
    from_rate: u32,
    to_rate: u32,
    channels: usize,
    engine: Option<Engine>,
    fed_frames: u64,
    emitted_frames: u64,
}

impl std::fmt::Debug for Resampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resampler")
            .field("from_rate", &self.from_rate)
            .field("to_rate", &self.to_rate)
            .field("channels", &self.channels)
            .field("latency_frames", &self.latency_frames())
            .finish()
    }
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn to_i16(sample: f32) -> i16 {
    (sample * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

impl Resampler {
    /// A converter from `from_rate` to `to_rate` Hz for `channels` interleaved
    /// channels (1 to [`MAX_CHANNELS`]; rates 1 to [`MAX_RATE`]).
    pub fn new(from_rate: u32, to_rate: u32, channels: usize) -> Result<Self, CodecError> {
        for rate in [from_rate, to_rate] {
            if !(1..=MAX_RATE).contains(&rate) {
                return Err(CodecError::InvalidParameter(format!(
                    "sample rate {rate} is not in 1..={MAX_RATE}"
                )));
            }
        }
        if !(1..=MAX_CHANNELS).contains(&channels) {
            return Err(CodecError::InvalidParameter(format!(
                "{channels} channels is not in 1..={MAX_CHANNELS}"
            )));
        }
        let engine = if from_rate == to_rate {
            None
        } else {
            // 20 ms of input per chunk.
            let chunk = (from_rate as usize / 50).max(1);
            let inner: Box<dyn rubato::Resampler<f32>> = if gcd(from_rate, to_rate) >= 50 {
                Box::new(
                    Fft::<f32>::new(from_rate as usize, to_rate as usize, chunk, channels, FixedSync::Both)
                        .map_err(|e| CodecError::InvalidParameter(format!("resampler: {e}")))?,
                )
            } else {
                let parameters = SincInterpolationParameters::new(128, WindowFunction::BlackmanHarris2);
                Box::new(
                    Async::<f32>::new_sinc(
                        f64::from(to_rate) / f64::from(from_rate),
                        1.0,
                        &parameters,
                        chunk,
                        channels,
                        FixedAsync::Input,
                    )
                    .map_err(|e| CodecError::InvalidParameter(format!("resampler: {e}")))?,
                )
            };
            Some(Engine {
                input: Vec::with_capacity(2 * inner.input_frames_max() * channels),
                output: vec![0.0; inner.output_frames_max() * channels],
                skip: inner.output_delay(),
                inner,
            })
        };
        Ok(Resampler {
            from_rate,
            to_rate,
            channels,
            engine,
            fed_frames: 0,
            emitted_frames: 0,
        })
    }

    /// The input sample rate.
    pub fn from_rate(&self) -> u32 {
        self.from_rate
    }

    /// The output sample rate.
    pub fn to_rate(&self) -> u32 {
        self.to_rate
    }

    /// The number of interleaved channels.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// How many output frames the input so far is worth but has not yet come
    /// out (it waits for a whole chunk or sits in the filter). Zero for the
    /// identity; at most about 20 ms plus the filter delay otherwise.
    pub fn latency_frames(&self) -> u64 {
        let due = u128::from(self.fed_frames) * u128::from(self.to_rate) / u128::from(self.from_rate);
        u64::try_from(due.saturating_sub(u128::from(self.emitted_frames))).unwrap_or(u64::MAX)
    }

    /// Converts `input` (interleaved, any whole number of frames) and appends
    /// every output frame that is ready to `out`.
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) -> Result<(), CodecError> {
        let channels = self.channels;
        if !input.chunks_exact(channels).remainder().is_empty() {
            return Err(CodecError::InvalidParameter(format!(
                "{} samples is not a whole number of {channels}-channel frames",
                input.len()
            )));
        }
        self.fed_frames += (input.len() / channels) as u64;
        let Some(engine) = &mut self.engine else {
            out.extend_from_slice(input);
            self.emitted_frames += (input.len() / channels) as u64;
            return Ok(());
        };
        engine.input.extend(input.iter().map(|&s| f32::from(s) / 32768.0));
        let mut used = 0; // frames of `engine.input` consumed
        let result = loop {
            let need = engine.inner.input_frames_next();
            let available = engine.input.len() / channels - used;
            if available < need || need == 0 {
                break Ok(());
            }
            let out_frames = engine.output.len() / channels;
            let step = InterleavedSlice::new(&engine.input[used * channels..], channels, need).and_then(|chunk| {
                let mut scratch = InterleavedSlice::new_mut(&mut engine.output[..], channels, out_frames)?;
                Ok(engine.inner.process_into_buffer(&chunk, &mut scratch, None))
            });
            let (consumed, produced) = match step {
                Ok(Ok(counts)) => counts,
                Ok(Err(e)) => break Err(CodecError::InvalidParameter(format!("resampler: {e}"))),
                Err(e) => break Err(CodecError::InvalidParameter(format!("resampler buffer: {e}"))),
            };
            used += consumed;
            let dropped = engine.skip.min(produced);
            engine.skip -= dropped;
            out.extend(
                engine.output[dropped * channels..produced * channels]
                    .iter()
                    .map(|&s| to_i16(s)),
            );
            self.emitted_frames += (produced - dropped) as u64;
        };
        engine.input.drain(..used * channels);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::{dbfs, dominant_frequency, mono, sine};

    /// Feeds one second of a tone in awkward pieces and measures the output.
    fn convert(frequency: f64, from: u32, to: u32, channels: usize) -> (Resampler, Vec<i16>) {
        let mut resampler = Resampler::new(from, to, channels).unwrap();
        let pcm = sine(frequency, from, channels, 0, from as usize, 0.5);
        let mut out = Vec::new();
        let mut at = 0;
        for (i, piece) in [7usize, 333, 1000, 1, 4096, 160].iter().cycle().enumerate() {
            let frames = (*piece).min(pcm.len() / channels - at);
            resampler
                .process(&pcm[at * channels..(at + frames) * channels], &mut out)
                .unwrap();
            at += frames;
            if at * channels == pcm.len() || i > 10_000 {
                break;
            }
        }
        (resampler, out)
    }

    fn check(frequency: f64, from: u32, to: u32, channels: usize) {
        let (resampler, out) = convert(frequency, from, to, channels);
        assert_eq!(out.len() % channels, 0);
        let frames = (out.len() / channels) as u64;
        assert_eq!(
            frames + resampler.latency_frames(),
            u64::from(to),
            "every input frame is accounted for"
        );
        assert!(
            resampler.latency_frames() < u64::from(to) / 20,
            "{} frames held back",
            resampler.latency_frames()
        );
        // Skip the first 50 ms (filter warm-up).
        let steady = mono(&out[(to as usize / 20) * channels..], channels);
        let f = dominant_frequency(&steady, to).unwrap();
        let level = dbfs(&steady);
        let latency = resampler.latency_frames();
        eprint!("resample {from} -> {to} x{channels}, {frequency} Hz: ");
        eprintln!("{f} Hz, {level:.2} dBFS (sent -9.03), latency {latency}");
        assert!((f - frequency).abs() <= 3.0, "{f}");
        assert!((level - (-9.03)).abs() <= 0.5, "{level}");
    }

    #[test]
    fn speex_rate_to_opus_rate() {
        check(1000.0, 16_000, 48_000, 1);
    }

    #[test]
    fn aac_rate_to_opus_rate() {
        check(440.0, 44_100, 48_000, 1);
    }

    #[test]
    fn g711_rate_to_opus_rate_in_stereo() {
        check(440.0, 8_000, 48_000, 2);
    }

    #[test]
    fn opus_rate_to_speex_rate() {
        check(1000.0, 48_000, 16_000, 1);
    }

    #[test]
    fn an_awkward_ratio_uses_the_sinc_resampler() {
        check(440.0, 44_101, 48_000, 1);
    }

    #[test]
    fn output_lines_up_with_input_time() {
        // The start-up delay is dropped, so the output is the same sine, in
        // phase, at the new rate: compare it with the ideal one.
        for (from, to) in [
            (16_000, 48_000),
            (44_100, 48_000),
            (8_000, 48_000),
            (48_000, 16_000),
            (44_101, 48_000),
        ] {
            let (_, out) = convert(440.0, from, to, 1);
            let ideal = sine(440.0, to, 1, 0, out.len(), 0.5);
            let skip = to as usize / 20;
            let error: Vec<i16> = out[skip..]
                .iter()
                .zip(&ideal[skip..])
                .map(|(a, b)| a.saturating_sub(*b))
                .collect();
            let error_db = dbfs(&error);
            eprintln!("resample {from} -> {to}: error against the ideal sine {error_db:.1} dBFS");
            // FFT pairs are exact to the sample; the sinc path (gcd < 50) is a
            // 128-tap approximation.
            let limit = if from == 44_101 { -35.0 } else { -80.0 };
            assert!(error_db < limit, "{from} -> {to}: {error_db}");
        }
    }

    #[test]
    fn equal_rates_pass_samples_through() {
        let mut resampler = Resampler::new(48_000, 48_000, 2).unwrap();
        let pcm: Vec<i16> = (0..100).collect();
        let mut out = Vec::new();
        resampler.process(&pcm, &mut out).unwrap();
        assert_eq!(out, pcm);
        assert_eq!(resampler.latency_frames(), 0);
    }

    #[test]
    fn bad_parameters_are_refused() {
        assert!(Resampler::new(0, 48_000, 1).is_err());
        assert!(Resampler::new(48_000, MAX_RATE + 1, 1).is_err());
        assert!(Resampler::new(16_000, 48_000, 0).is_err());
        assert!(Resampler::new(16_000, 48_000, 9).is_err());
        let mut resampler = Resampler::new(16_000, 48_000, 2).unwrap();
        let mut out = Vec::new();
        assert!(resampler.process(&[1, 2, 3], &mut out).is_err(), "half a stereo frame");
        resampler.process(&[], &mut out).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn a_resampler_can_move_between_threads() {
        fn is_send<T: Send>() {}
        is_send::<Resampler>();
    }
}
