//! Lip sync as a player sees it, sans-IO: a stream whose pictures flash
//! white while its sound beeps, once a second (the `sync_*` fixtures), is
//! placed on the sender's clock by each track's RTCP sender reports, and
//! each beep's onset is compared with the flash nearest to it.
//!
//! A flash is a decoded picture whose luma averages above half scale after
//! one that does not; a beep's onset is the first sample louder than
//! [`ONSET`] after a frame with none. Each is kept by its frame's RTP time
//! (a beep's to the sample) and placed on the sender's clock by its
//! track's latest sender report ([`super::receive::sampled_at_sender`]),
//! so that a beep heard before the first report counts too.

use std::time::{Duration, SystemTime};

use serde::Serialize;
use str0m::media::MediaTime;
use str0m::rtp::rtcp::SenderInfo;

use super::receive::sampled_at_sender;

/// A sample this loud (about -20 dBFS) starts a beep.
const ONSET: i16 = 3000;
/// A frame whose loudest sample is below this ends one.
const QUIET: i16 = 1000;
/// A beep this far from every flash is not paired.
const PAIRING: Duration = Duration::from_millis(400);
/// Events kept per kind (the latest).
const KEPT: usize = 64;

/// What a player measured of lip sync.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LipSync {
    /// Flashes seen (with or without a sender report to time them).
    pub flashes: u64,
    /// Beeps heard.
    pub beeps: u64,
    /// For each beep paired with a flash, how far its sound came after its
    /// picture on the sender's clock, in ms (negative: the sound first).
    pub offsets_ms: Vec<f64>,
}

impl LipSync {
    /// The median offset, if any beep was paired.
    pub fn median_ms(&self) -> Option<f64> {
        let mut sorted = self.offsets_ms.clone();
        sorted.sort_by(f64::total_cmp);
        sorted.get(sorted.len() / 2).copied()
    }

    /// The offset furthest from zero, if any.
    pub fn worst_ms(&self) -> Option<f64> {
        self.offsets_ms
            .iter()
            .copied()
            .max_by(|a, b| a.abs().total_cmp(&b.abs()))
    }
}

/// Finds flashes and beeps in decoded media.
#[derive(Debug, Default)]
pub struct SyncProbe {
    bright: bool,
    beeping: bool,
    flashes: u64,
    beeps: u64,
    /// RTP times (and, for beeps, the onset within the frame).
    flashes_at: Vec<(MediaTime, Duration)>,
    beeps_at: Vec<(MediaTime, Duration)>,
}

impl SyncProbe {
    /// A decoded picture (its luma plane, `width` by `height`) of RTP time `at`.
    pub fn picture(&mut self, luma: &[u8], width: usize, height: usize, at: MediaTime) {
        let pixels = (width * height).min(luma.len());
        if pixels == 0 {
            return;
        }
        // Every 7th pixel is plenty for a full-frame flash.
        let (sum, count) = luma[..pixels]
            .iter()
            .step_by(7)
            .fold((0u64, 0u64), |(sum, n), &y| (sum + u64::from(y), n + 1));
        let bright = sum > 128 * count;
        if bright && !self.bright {
            self.flashes += 1;
            keep(&mut self.flashes_at, (at, Duration::ZERO));
        }
        self.bright = bright;
    }

    /// A decoded audio frame of `rate` Hz, its first sample of RTP time `at`.
    pub fn sound(&mut self, samples: &[i16], rate: u32, at: MediaTime) {
        match samples.iter().position(|s| s.unsigned_abs() >= ONSET.unsigned_abs()) {
            Some(onset) if !self.beeping => {
                self.beeping = true;
                self.beeps += 1;
                let within = Duration::from_secs_f64(onset as f64 / f64::from(rate.max(1)));
                keep(&mut self.beeps_at, (at, within));
            }
            Some(_) => {}
            None => {
                if samples.iter().all(|s| s.unsigned_abs() < QUIET.unsigned_abs()) {
                    self.beeping = false;
                }
            }
        }
    }

    /// What was measured so far, placed on the sender's clock by the latest
    /// sender reports of the video and the audio (no offsets without both).
    pub fn report(&self, video: Option<&SenderInfo>, audio: Option<&SenderInfo>) -> LipSync {
        let place = |events: &[(MediaTime, Duration)], sender: Option<&SenderInfo>| -> Vec<SystemTime> {
            let Some(sender) = sender else { return Vec::new() };
            events
                .iter()
                .map(|&(time, within)| sampled_at_sender(time, sender) + within)
                .collect()
        };
        let flashes = place(&self.flashes_at, video);
        let offsets_ms = place(&self.beeps_at, audio)
            .into_iter()
            .filter_map(|beep| {
                flashes
                    .iter()
                    .map(|&flash| signed_ms(beep, flash))
                    .filter(|ms| ms.abs() <= PAIRING.as_secs_f64() * 1000.0)
                    .min_by(|a, b| a.abs().total_cmp(&b.abs()))
            })
            .collect();
        LipSync {
            flashes: self.flashes,
            beeps: self.beeps,
            offsets_ms,
        }
    }
}

fn keep(events: &mut Vec<(MediaTime, Duration)>, at: (MediaTime, Duration)) {
    if events.len() == KEPT {
        events.remove(0);
    }
    events.push(at);
}

/// `a - b` in ms.
fn signed_ms(a: SystemTime, b: SystemTime) -> f64 {
    match a.duration_since(b) {
        Ok(after) => after.as_secs_f64() * 1000.0,
        Err(before) => -before.duration().as_secs_f64() * 1000.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beeps_are_paired_with_the_nearest_flash_to_the_sample() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        // Video at 90 kHz and audio at 48 kHz, their RTP times at t0.
        let video = |ms: u64| MediaTime::new(900_000 + ms * 90, VIDEO_HZ);
        let audio = |ms: u64| MediaTime::new(4_000 + ms * 48, AUDIO_HZ);
        let report = |rtp_time: MediaTime| SenderInfo {
            ssrc: 1.into(),
            ntp_time: t0,
            rtp_time,
            sender_packet_count: 0,
            sender_octet_count: 0,
        };
        let (black, white) = (vec![16u8; 64], vec![235u8; 64]);
        let (quiet, tone) = (vec![0i16; 960], {
            let mut frame = vec![0i16; 960];
            frame[480..].fill(8000);
            frame
        });
        let mut probe = SyncProbe::default();
        for second in 1..4u64 {
            let ms = second * 1000;
            probe.picture(&black, 8, 8, video(ms - 40));
            probe.picture(&white, 8, 8, video(ms));
            probe.picture(&white, 8, 8, video(ms + 40));
            probe.picture(&black, 8, 8, video(ms + 80));
            // The beep's frame starts 20 ms after the flash; its onset is
            // 480 samples (10 ms) in: 30 ms late.
            probe.sound(&quiet, 48000, audio(ms));
            probe.sound(&tone, 48000, audio(ms + 20));
            probe.sound(&tone, 48000, audio(ms + 40));
            probe.sound(&quiet, 48000, audio(ms + 60));
        }
        let (v, a) = (report(video(0)), report(audio(0)));
        assert!(
            probe.report(Some(&v), None).offsets_ms.is_empty(),
            "no audio report yet"
        );
        let sync = probe.report(Some(&v), Some(&a));
        assert_eq!((sync.flashes, sync.beeps), (3, 3));
        assert_eq!(sync.offsets_ms.len(), 3);
        assert!(sync.offsets_ms.iter().all(|ms| (ms - 30.0).abs() < 0.01), "{sync:?}");
        assert!((sync.median_ms().unwrap() - 30.0).abs() < 0.01);
    }

    const VIDEO_HZ: Frequency = Frequency::NINETY_KHZ;
    const AUDIO_HZ: Frequency = Frequency::FORTY_EIGHT_KHZ;
    use str0m::media::Frequency;
}
