//! A publisher's timestamps kept going forward with the clock, sans-IO
//! (the time a frame arrived is an input).
//!
//! RTMP timestamps are relative to an arbitrary epoch, and some publishers
//! start a new one in the middle of a stream: an encoder restarted without
//! reconnecting, a playlist fed to ffmpeg, a relay whose source changed.
//! The new epoch may be behind the old one or far ahead of it. Passed on,
//! such a jump makes WebRTC players' RTP time leave the sampling clock
//! (RFC 3550, section 5.1, wants it to increase with it, linearly): after a
//! jump back a browser drops every picture until the new timestamps pass
//! the old ones, after a jump ahead it holds them for as long as the jump;
//! Flash players' buffers stall either way. The hub restamps what follows a
//! jump (a track going back on itself by more than [`JUMP_BACK_MS`], or
//! ahead of the time that passed since its last frame by more than
//! [`JUMP_AHEAD_MS`]) so that it continues just after the latest
//! timestamp; everything else (the 32-bit wrap, a track that lags the
//! other, a track that paused) goes through unchanged, modulo 2^32.

use std::time::Instant;

use media::rtmp::Timeline;

/// A jump back further than this starts a new epoch. Muxers interleave
/// audio and video by timestamp (a frame or two apart; composition offsets
/// of B-frames are not in the timestamp): no ordinary stream steps back
/// this far.
pub const JUMP_BACK_MS: i64 = 2_000;

/// A frame whose timestamp is ahead of its track's latest by this much more
/// than the time since that one arrived starts a new epoch. Frames sent in
/// a burst (a publisher catching up) are a frame or two ahead of the clock
/// each; a track that paused comes back with the time that passed.
pub const JUMP_AHEAD_MS: i64 = 2_000;

/// Where a restamped epoch starts: this long after the latest timestamp,
/// about a frame.
const STEP_MS: i64 = 20;

/// One publisher's timeline.
#[derive(Debug, Default)]
pub struct Continuity {
    timeline: Timeline,
    /// Added to each track's (audio, video) extended timestamps: the
    /// offset of the epoch the track is on.
    offsets: [i64; 2],
    /// The offset of the latest epoch (the one a track joins when it jumps
    /// back to where the other track already went).
    epoch: i64,
    /// The latest timestamp handed out on each track, extended, offset
    /// included. A jump back is one track going back on itself, so a track
    /// that lags the other (sound seconds behind pictures) is not one.
    latest: [Option<i64>; 2],
    /// When each track's last frame arrived.
    arrived: [Option<Instant>; 2],
    /// Per track, a frame that jumped, not yet confirmed by the next frame
    /// of its track: its extended timestamp, and where it was put. One per
    /// track, so that both tracks jumping with their frames alternating
    /// each confirm their own.
    tentative: [Option<(i64, i64)>; 2],
}

impl Continuity {
    /// The timestamp to pass on for a frame of the audio (`video` false)
    /// or video track stamped `timestamp` by the publisher, arrived `now`.
    ///
    /// A frame that jumps is put just after the latest timestamp; the new
    /// epoch starts only when the next frame of its track confirms the jump
    /// (one stray frame changes nothing else). The other track joins the
    /// new epoch when it jumps itself, so frames still in flight from
    /// before the jump keep their place.
    pub fn restamp(&mut self, video: bool, timestamp: u32, now: Instant) -> u32 {
        let track = usize::from(video);
        let extended = self.timeline.extend(timestamp);
        let mut out = extended + self.offsets[track];
        let newest = self.latest.iter().flatten().max().copied();
        let elapsed = self.arrived[track].map_or(0, |then| {
            i64::try_from(now.saturating_duration_since(then).as_millis()).unwrap_or(i64::MAX)
        });
        self.arrived[track] = Some(now);
        let joined = extended + self.epoch;
        let near_newest = |at: i64| newest.is_some_and(|newest| (at - newest).abs() <= JUMP_BACK_MS);
        let jumped = self.latest[track].is_some_and(|latest| {
            out < latest - JUMP_BACK_MS || out.saturating_sub(latest).saturating_sub(elapsed) > JUMP_AHEAD_MS
        });
        if self.latest[track].is_none() && self.epoch != 0 && !near_newest(out) && near_newest(joined) {
            // A track that starts after the other moved to a new epoch,
            // stamped on it: it starts there too.
            self.offsets[track] = self.epoch;
            out = joined;
        } else if jumped {
            if near_newest(joined) {
                // The other track went there already: same epoch.
                self.offsets[track] = self.epoch;
                out = joined;
                self.tentative[track] = None;
            } else {
                match self.tentative[track] {
                    Some((first, at)) if (extended - first).abs() <= JUMP_BACK_MS => {
                        // Confirmed: the epoch starts where its first frame was put.
                        self.epoch = at - first;
                        self.offsets[track] = self.epoch;
                        self.tentative[track] = None;
                        out = extended + self.epoch;
                    }
                    _ => {
                        out = newest.unwrap_or(out) + STEP_MS;
                        self.tentative[track] = Some((extended, out));
                    }
                }
            }
        } else {
            // The track went on where it was: a frame that jumped was a stray.
            self.tentative[track] = None;
        }
        let latest = &mut self.latest[track];
        *latest = Some(latest.map_or(out, |latest| latest.max(out)));
        out as u32
    }

    /// Where a sequence header of the track, arrived `now`, goes: on the
    /// track's epoch, never before its latest frame (an encoder sends it
    /// again at 0) nor further ahead of it than the time since that frame
    /// allows (a new epoch's, before its first frame).
    pub fn restamp_config(&self, video: bool, timestamp: u32, now: Instant) -> u32 {
        let track = usize::from(video);
        let mut timeline = self.timeline;
        let out = timeline.extend(timestamp) + self.offsets[track];
        let elapsed = self.arrived[track].map_or(0, |then| {
            i64::try_from(now.saturating_duration_since(then).as_millis()).unwrap_or(i64::MAX)
        });
        match self.latest[track] {
            Some(latest) if out < latest || (out - latest).saturating_sub(elapsed) > JUMP_AHEAD_MS => latest as u32,
            _ => out as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const AUDIO: bool = false;
    const VIDEO: bool = true;

    /// A continuity whose frames arrive 20 ms apart, about a publisher's
    /// pace.
    struct Paced {
        continuity: Continuity,
        start: Instant,
        frames: u64,
    }

    impl Paced {
        fn new() -> Paced {
            Paced {
                continuity: Continuity::default(),
                start: Instant::now(),
                frames: 0,
            }
        }

        fn restamp(&mut self, video: bool, timestamp: u32) -> u32 {
            self.frames += 1;
            let now = self.start + Duration::from_millis(20 * self.frames);
            self.continuity.restamp(video, timestamp, now)
        }

        fn restamp_config(&self, video: bool, timestamp: u32) -> u32 {
            let now = self.start + Duration::from_millis(20 * (self.frames + 1));
            self.continuity.restamp_config(video, timestamp, now)
        }
    }

    #[test]
    fn an_ordinary_stream_goes_through_unchanged() {
        let mut c = Paced::new();
        // Audio a little behind video, and the 32-bit wrap.
        for (track, ts) in [
            (VIDEO, 1000),
            (VIDEO, 1040),
            (AUDIO, 980),
            (VIDEO, 1080),
            (AUDIO, 1020),
            (VIDEO, u32::MAX - 10),
            (VIDEO, 30),
            (AUDIO, u32::MAX - 5),
            (AUDIO, 70),
        ] {
            assert_eq!(c.restamp(track, ts), ts);
        }
    }

    #[test]
    fn a_track_that_lags_the_other_by_seconds_is_not_a_jump() {
        let mut c = Paced::new();
        for step in 0..100u32 {
            assert_eq!(c.restamp(VIDEO, 10_000 + step * 40), 10_000 + step * 40);
            assert_eq!(c.restamp(AUDIO, 5_000 + step * 40), 5_000 + step * 40);
        }
    }

    #[test]
    fn a_new_epoch_continues_after_the_latest_timestamp() {
        let mut c = Paced::new();
        assert_eq!(c.restamp(VIDEO, 4000), 4000);
        assert_eq!(c.restamp(AUDIO, 4010), 4010);
        assert_eq!(c.restamp(VIDEO, 4040), 4040);
        // The encoder restarted: its timestamps begin at 0 again.
        assert_eq!(c.restamp(VIDEO, 0), 4060);
        assert_eq!(c.restamp(VIDEO, 40), 4100, "confirmed");
        assert_eq!(c.restamp(AUDIO, 10), 4070, "the other track joins the epoch");
        assert_eq!(c.restamp(AUDIO, 30), 4090);
        assert_eq!(c.restamp(VIDEO, 80), 4140);
        // Stepping back less than the limit is not a new epoch.
        assert_eq!(c.restamp(VIDEO, 1580), 5640);
        assert_eq!(c.restamp(VIDEO, 120), 4180);
        // A sequence header sent again at 0 goes with its track.
        assert_eq!(c.restamp_config(VIDEO, 0), 5640);
    }

    #[test]
    fn one_stray_frame_changes_nothing_else() {
        let mut c = Paced::new();
        assert_eq!(c.restamp(AUDIO, 10_000), 10_000);
        assert_eq!(c.restamp(VIDEO, 10_040), 10_040);
        assert_eq!(c.restamp(AUDIO, 0), 10_060, "put after the latest");
        assert_eq!(c.restamp(AUDIO, 10_046), 10_046);
        assert_eq!(c.restamp(VIDEO, 10_080), 10_080);
    }

    #[test]
    fn frames_in_flight_from_before_the_jump_keep_their_place() {
        let mut c = Paced::new();
        assert_eq!(c.restamp(VIDEO, 3960), 3960);
        assert_eq!(c.restamp(AUDIO, 3950), 3950);
        // Video restarts first; audio from before the restart still comes.
        assert_eq!(c.restamp(VIDEO, 0), 3980);
        assert_eq!(c.restamp(AUDIO, 3970), 3970);
        assert_eq!(c.restamp(VIDEO, 40), 4020);
        assert_eq!(c.restamp(AUDIO, 3990), 3990);
        // Then audio restarts too, onto the video's epoch.
        assert_eq!(c.restamp(AUDIO, 10), 3990);
        assert_eq!(c.restamp(AUDIO, 30), 4010);
    }

    #[test]
    fn a_jump_ahead_continues_after_the_latest_timestamp() {
        let mut c = Paced::new();
        assert_eq!(c.restamp(VIDEO, 1000), 1000);
        assert_eq!(c.restamp(AUDIO, 1010), 1010);
        assert_eq!(c.restamp(VIDEO, 1040), 1040);
        // An hour ahead, 20 ms later.
        assert_eq!(c.restamp(VIDEO, 3_601_080), 1060);
        assert_eq!(c.restamp(VIDEO, 3_601_120), 1100, "confirmed");
        assert_eq!(c.restamp(AUDIO, 3_601_070), 1050, "the other track joins the epoch");
        assert_eq!(
            c.restamp_config(VIDEO, 3_601_120),
            1100,
            "a sequence header goes with its track"
        );
        assert_eq!(c.restamp(VIDEO, 3_601_160), 1140);
    }

    #[test]
    fn a_track_that_paused_is_not_a_jump() {
        let mut c = Continuity::default();
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        assert_eq!(c.restamp(VIDEO, 1000, at(1000)), 1000);
        assert_eq!(c.restamp(AUDIO, 1010, at(1010)), 1010);
        // The camera was off for a minute; the microphone went on.
        for ms in (1030..61_000).step_by(20) {
            assert_eq!(c.restamp(AUDIO, ms, at(u64::from(ms))), ms);
        }
        assert_eq!(c.restamp(VIDEO, 61_000, at(61_000)), 61_000);
        // A burst: frames queued during a stall arrive at once.
        for step in 1..=50u32 {
            assert_eq!(c.restamp(VIDEO, 61_000 + step * 40, at(63_000)), 61_000 + step * 40);
        }
    }

    #[test]
    fn both_tracks_leaping_with_their_frames_alternating_each_confirm_their_own() {
        let mut c = Paced::new();
        assert_eq!(c.restamp(VIDEO, 1000), 1000);
        assert_eq!(c.restamp(AUDIO, 1000), 1000);
        assert_eq!(c.restamp(VIDEO, 1040), 1040);
        assert_eq!(c.restamp(AUDIO, 1020), 1020);
        // Both leap an hour ahead, frames alternating.
        assert_eq!(c.restamp(AUDIO, 3_601_040), 1060, "put after the latest");
        assert_eq!(c.restamp(VIDEO, 3_601_080), 1080, "put after the latest");
        assert_eq!(c.restamp(AUDIO, 3_601_060), 1080, "audio confirmed");
        assert_eq!(c.restamp(VIDEO, 3_601_120), 1140, "video joins the epoch");
        assert_eq!(c.restamp(AUDIO, 3_601_080), 1100);
        assert_eq!(c.restamp(VIDEO, 3_601_160), 1180);
    }

    #[test]
    fn a_track_that_starts_after_a_leap_starts_on_the_new_epoch() {
        let mut c = Paced::new();
        assert_eq!(c.restamp(VIDEO, 1000), 1000);
        assert_eq!(c.restamp(VIDEO, 1040), 1040);
        assert_eq!(c.restamp(VIDEO, 3_601_080), 1060);
        assert_eq!(c.restamp(VIDEO, 3_601_120), 1100, "confirmed");
        // Sound begins, stamped on the new epoch.
        assert_eq!(c.restamp(AUDIO, 3_601_130), 1110);
        assert_eq!(c.restamp(AUDIO, 3_601_150), 1130);
    }

    #[test]
    fn a_sequence_header_after_a_pause_keeps_its_time() {
        let mut c = Continuity::default();
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        assert_eq!(c.restamp(VIDEO, 1000, at(1000)), 1000);
        // The camera comes back ten seconds later with a new sequence header.
        assert_eq!(c.restamp_config(VIDEO, 11_000, at(11_000)), 11_000);
        assert_eq!(c.restamp(VIDEO, 11_000, at(11_000)), 11_000);
        // One an hour ahead, before the frames of a new epoch, goes at the latest.
        assert_eq!(c.restamp_config(VIDEO, 3_611_040, at(11_040)), 11_000);
    }
}
