//! A WebRTC player's one clock for audio and video, sans-IO: time is an
//! input.
//!
//! RTP timestamps follow the stream's RTMP milliseconds on one clock, so the
//! sender reports tie audio and video together; after a new publisher (whose
//! timestamps start anew) the clock is shifted so RTP time keeps going
//! forward. str0m also wants a wallclock instant with each frame: it queues
//! frames in wallclock order and puts the last one in its sender reports, so
//! no wallclock may lie in the future and none may go back on a track.

use std::time::{Duration, Instant};

use media::rtmp::Timeline;

/// A track of the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    /// Pictures.
    Video = 0,
    /// Sound.
    Audio = 1,
}

/// The clock of one player.
#[derive(Debug, Default)]
pub struct Clock {
    /// Added to stream milliseconds to make output milliseconds.
    offset: i64,
    /// Stream timestamps past the 32-bit wrap.
    timeline: Timeline,
    /// The latest output milliseconds so far.
    last: u64,
    /// The output milliseconds of the last picture.
    last_video: Option<u64>,
    /// The next timestamp starts a new publisher's timeline.
    realign: bool,
    /// A wallclock instant and the output milliseconds it stands for.
    origin: Option<(Instant, u64)>,
    /// The last wallclock handed out per track.
    last_wallclock: [Option<Instant>; 2],
    /// Timestamps are counted from the first as plain integers, without
    /// serial-number arithmetic (a quirk: `timestamp_wrap_ignored`): past
    /// the 32-bit wrap the output time falls back to 0 and stays there.
    pub wrap_ignored: bool,
}

impl Clock {
    /// The next timestamp comes from a new publisher: it continues 20 ms
    /// after the latest output time.
    pub fn realign(&mut self) {
        self.realign = true;
    }

    /// The output time (ms) and the wallclock for a frame of `track` with
    /// the stream's `timestamp`, at `now`. Media ahead of real time (a
    /// cached group of pictures sent at once) moves the origin back, for
    /// both tracks, so that no wallclock lies in the future.
    pub fn map(&mut self, track: Track, timestamp: u32, now: Instant) -> (u64, Instant) {
        if self.realign {
            self.timeline = Timeline::default();
        }
        let timestamp = if self.wrap_ignored {
            if self.origin.is_none() && !self.realign {
                self.offset = -i64::from(timestamp);
            }
            i64::from(timestamp)
        } else {
            self.timeline.extend(timestamp)
        };
        if self.realign {
            self.offset = self.last as i64 + 20 - timestamp;
            self.realign = false;
        }
        let ms = (timestamp + self.offset).max(0) as u64;
        self.last = self.last.max(ms);
        let (start, first) = self.origin.get_or_insert((now, ms));
        let mut at = *start + Duration::from_millis(ms.saturating_sub(*first));
        if at > now {
            if let Some(earlier) = start.checked_sub(at - now) {
                *start = earlier;
            }
            at = now;
        }
        if track == Track::Video {
            self.last_video = Some(ms);
        }
        (ms, self.monotonic(track, at))
    }

    /// The wallclock for output time `ms` on `track` without moving the
    /// clock: a picture sent again (an answer to a keyframe request).
    pub fn replay(&mut self, track: Track, ms: u64, now: Instant) -> Instant {
        let at = match self.origin {
            Some((start, first)) => start + Duration::from_millis(ms.saturating_sub(first)),
            None => now,
        };
        self.monotonic(track, at)
    }

    /// The output time of the last picture, or else of the last frame.
    pub fn last_video(&self) -> u64 {
        self.last_video.unwrap_or(self.last)
    }

    /// `at`, or the track's last wallclock if that is later.
    fn monotonic(&mut self, track: Track, at: Instant) -> Instant {
        let last = &mut self.last_wallclock[track as usize];
        let at = last.map_or(at, |last| last.max(at));
        *last = Some(at);
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn live_media_keeps_its_spacing_in_wallclock() {
        let mut clock = Clock::default();
        let t0 = Instant::now();
        assert_eq!(clock.map(Track::Audio, 1000, t0), (1000, t0));
        assert_eq!(clock.map(Track::Video, 1040, t0 + 40 * MS), (1040, t0 + 40 * MS));
        // Arriving late (network jitter) keeps the media's own time.
        assert_eq!(clock.map(Track::Audio, 1060, t0 + 75 * MS), (1060, t0 + 60 * MS));
        assert_eq!(clock.last_video(), 1040);
    }

    #[test]
    fn a_burst_ahead_of_real_time_moves_the_origin_back_for_both_tracks() {
        let mut clock = Clock::default();
        let t0 = Instant::now();
        // A cached group of pictures: 2 s of video at once.
        for (i, ts) in (0..2000).step_by(40).enumerate() {
            let (ms, at) = clock.map(Track::Video, ts, t0);
            assert_eq!(ms, u64::from(ts));
            assert!(at <= t0, "frame {i}: never in the future");
        }
        // The sound of the burst lies in the past too, on the same origin.
        let (_, at) = clock.map(Track::Audio, 1000, t0);
        assert_eq!(at, t0 - 960 * MS);
        let (_, at) = clock.map(Track::Audio, 1960, t0);
        assert_eq!(at, t0);
    }

    #[test]
    fn a_tracks_wallclock_never_goes_back() {
        let mut clock = Clock::default();
        let t0 = Instant::now();
        let (_, first) = clock.map(Track::Audio, 500, t0);
        // Video far ahead moves the origin back; audio's next wallclock would go back.
        clock.map(Track::Video, 3000, t0);
        let (_, next) = clock.map(Track::Audio, 520, t0 + 20 * MS);
        assert!(next >= first);
    }

    #[test]
    fn a_new_publisher_continues_the_output_time() {
        let mut clock = Clock::default();
        let t0 = Instant::now();
        clock.map(Track::Video, 50_000, t0);
        clock.map(Track::Audio, 50_010, t0 + 10 * MS);
        clock.realign();
        // The new publisher starts at 0: output goes on 20 ms later.
        assert_eq!(clock.map(Track::Video, 0, t0 + 500 * MS).0, 50_030);
        assert_eq!(clock.map(Track::Audio, 40, t0 + 540 * MS).0, 50_070);
    }

    #[test]
    fn timestamps_that_wrap_past_2_32_go_on_forward() {
        let mut clock = Clock::default();
        let t0 = Instant::now();
        let before = u32::MAX - 39;
        assert_eq!(clock.map(Track::Video, before, t0).0, u64::from(before));
        // The next picture, 40 ms later, is stamped 0 after the wrap.
        let (after, _) = clock.map(Track::Video, 0, t0 + 40 * MS);
        assert_eq!(after, u64::from(before) + 40);
        // Sound from just before the wrap, sent after that picture, stays before it.
        assert_eq!(clock.map(Track::Audio, u32::MAX - 9, t0 + 41 * MS).0, after - 10);
        assert_eq!(clock.map(Track::Audio, 11, t0 + 60 * MS).0, after + 11);
    }

    #[test]
    fn a_replayed_picture_takes_the_time_it_is_sent_again_at() {
        let mut clock = Clock::default();
        let t0 = Instant::now();
        clock.map(Track::Video, 0, t0);
        clock.map(Track::Video, 400, t0 + 400 * MS);
        let at = clock.replay(Track::Video, clock.last_video(), t0 + 410 * MS);
        assert_eq!(at, t0 + 400 * MS);
        assert_eq!(clock.last_video(), 400, "not moved");
    }
}
