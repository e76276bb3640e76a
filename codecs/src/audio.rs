//! PCM helpers: a tone generator and the measurements a listener makes (level
//! and pitch). Samples are interleaved `i16`.

use std::f64::consts::PI;

/// `samples_per_channel` samples of a sine at `frequency` Hz, with its peak at
/// `amplitude` (0.0 to 1.0 of full scale), starting at phase sample `start`
/// so that consecutive calls continue the same wave.
pub fn sine(
    frequency: f64,
    rate: u32,
    channels: usize,
    start: u64,
    samples_per_channel: usize,
    amplitude: f64,
) -> Vec<i16> {
    let peak = amplitude.clamp(0.0, 1.0) * f64::from(i16::MAX);
    let mut pcm = Vec::with_capacity(samples_per_channel * channels);
    for i in 0..samples_per_channel as u64 {
        let t = (start + i) as f64 / f64::from(rate);
        let v = (2.0 * PI * frequency * t).sin() * peak;
        pcm.extend(std::iter::repeat_n(v.round() as i16, channels));
    }
    pcm
}

/// The root-mean-square level in dB relative to full scale; silence is
/// `f64::NEG_INFINITY`. A full-scale sine measures about -3 dBFS.
pub fn dbfs(pcm: &[i16]) -> f64 {
    if pcm.is_empty() {
        return f64::NEG_INFINITY;
    }
    let sum: f64 = pcm.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    let rms = (sum / pcm.len() as f64).sqrt() / f64::from(i16::MAX);
    20.0 * rms.log10()
}

/// Mixes interleaved PCM down to its first channel's worth of mono.
pub fn mono(pcm: &[i16], channels: usize) -> Vec<i16> {
    if channels <= 1 {
        return pcm.to_vec();
    }
    pcm.chunks_exact(channels)
        .map(|frame| (frame.iter().map(|&s| i32::from(s)).sum::<i32>() / channels as i32) as i16)
        .collect()
}

/// The strongest frequency between 50 Hz and 8 kHz (or the Nyquist frequency)
/// in mono PCM, to within about 5 Hz, or `None` for silence or too little
/// signal. A coarse Goertzel scan in 10 Hz steps, then a fine one around the peak.
pub fn dominant_frequency(mono_pcm: &[i16], rate: u32) -> Option<f64> {
    // 200 ms is plenty for a tone and bounds the cost.
    let window = &mono_pcm[..mono_pcm.len().min(rate as usize / 5)];
    if window.len() < (rate as usize / 50) || dbfs(window) < -60.0 {
        return None;
    }
    let top = (f64::from(rate) / 2.0 - 10.0).min(8000.0);
    let scan = |from: f64, to: f64, step: f64| {
        let mut best = (from, 0.0);
        let mut f = from;
        while f <= to {
            let p = goertzel_power(window, rate, f);
            if p > best.1 {
                best = (f, p);
            }
            f += step;
        }
        best.0
    };
    let coarse = scan(50.0, top, 10.0);
    Some(scan((coarse - 10.0).max(50.0), (coarse + 10.0).min(top), 1.0))
}

fn goertzel_power(pcm: &[i16], rate: u32, frequency: f64) -> f64 {
    let coefficient = 2.0 * (2.0 * PI * frequency / f64::from(rate)).cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in pcm {
        let s0 = f64::from(x) + coefficient * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - coefficient * s1 * s2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sine_measures_its_level_and_pitch() {
        let pcm = sine(440.0, 48_000, 1, 0, 48_000, 0.5);
        assert!((dbfs(&pcm) - (-9.03)).abs() < 0.1, "{}", dbfs(&pcm));
        let f = dominant_frequency(&pcm, 48_000).unwrap();
        assert!((f - 440.0).abs() <= 2.0, "{f}");
        let pcm = sine(1000.0, 16_000, 2, 0, 1600, 0.2);
        let f = dominant_frequency(&mono(&pcm, 2), 16_000).unwrap();
        assert!((f - 1000.0).abs() <= 2.0, "{f}");
    }

    #[test]
    fn silence_has_no_pitch() {
        assert_eq!(dominant_frequency(&[0; 4800], 48_000), None);
        assert_eq!(dbfs(&[0; 10]), f64::NEG_INFINITY);
        assert_eq!(dominant_frequency(&[1000; 10], 48_000), None, "too short");
    }

    #[test]
    fn consecutive_calls_continue_the_wave() {
        let whole = sine(300.0, 8000, 1, 0, 200, 1.0);
        let mut parts = sine(300.0, 8000, 1, 0, 120, 1.0);
        parts.extend(sine(300.0, 8000, 1, 120, 80, 1.0));
        assert_eq!(whole, parts);
    }
}
