//! A publisher's timestamps kept going forward, sans-IO.
//!
//! RTMP timestamps are relative to an arbitrary epoch, and some publishers
//! start a new one in the middle of a stream: an encoder restarted without
//! reconnecting, a playlist fed to ffmpeg, a relay whose source changed.
//! Passed on, such a jump back makes WebRTC players' RTP time go back
//! (RFC 3550, section 5.1, wants it to increase with the sampling clock: a
//! browser drops every picture until the new timestamps pass the old ones)
//! and stalls Flash players' buffers. The hub restamps what follows a jump
//! back (a track going back on itself by more than [`JUMP_BACK_MS`]) so
//! that it continues just after the latest timestamp; everything else (the
//! 32-bit wrap, a track that lags the other) goes through unchanged,
//! modulo 2^32.

use media::rtmp::Timeline;

/// A jump back further than this starts a new epoch. Muxers interleave
/// audio and video by timestamp (a frame or two apart; composition offsets
/// of B-frames are not in the timestamp): no ordinary stream steps back
/// this far.
pub const JUMP_BACK_MS: i64 = 2_000;

/// Where a restamped epoch starts: this long after the latest timestamp,
/// about a frame.
const STEP_MS: i64 = 20;

/// One publisher's timeline.
#[derive(Debug, Default)]
pub struct Continuity {
    timeline: Timeline,
    /// Added to the extended timestamps since the last jump back.
    offset: i64,
    /// The latest timestamp handed out on each track (audio, video),
    /// extended, offset included: a jump back is one track going back on
    /// itself, so a track that lags the other (an encoder whose sound runs
    /// seconds behind its pictures) is not one.
    latest: [Option<i64>; 2],
}

impl Continuity {
    /// The timestamp to pass on for a frame of the audio (`video` false)
    /// or video track stamped `timestamp` by the publisher.
    pub fn restamp(&mut self, video: bool, timestamp: u32) -> u32 {
        let track = usize::from(video);
        let mut out = self.timeline.extend(timestamp) + self.offset;
        if self.latest[track].is_some_and(|latest| out < latest - JUMP_BACK_MS) {
            let newest = self.latest.iter().flatten().max().copied().unwrap_or(out);
            self.offset += newest + STEP_MS - out;
            out = newest + STEP_MS;
        }
        let latest = &mut self.latest[track];
        *latest = Some(latest.map_or(out, |latest| latest.max(out)));
        out as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUDIO: bool = false;
    const VIDEO: bool = true;

    #[test]
    fn an_ordinary_stream_goes_through_unchanged() {
        let mut c = Continuity::default();
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
        let mut c = Continuity::default();
        for step in 0..100u32 {
            assert_eq!(c.restamp(VIDEO, 10_000 + step * 40), 10_000 + step * 40);
            assert_eq!(c.restamp(AUDIO, 5_000 + step * 40), 5_000 + step * 40);
        }
    }

    #[test]
    fn a_new_epoch_continues_after_the_latest_timestamp() {
        let mut c = Continuity::default();
        assert_eq!(c.restamp(VIDEO, 4000), 4000);
        assert_eq!(c.restamp(AUDIO, 4010), 4010);
        assert_eq!(c.restamp(VIDEO, 4040), 4040);
        // The encoder restarted: its timestamps begin at 0 again.
        assert_eq!(c.restamp(VIDEO, 0), 4060);
        assert_eq!(c.restamp(AUDIO, 10), 4070, "the other track follows the same epoch");
        assert_eq!(c.restamp(VIDEO, 40), 4100);
        // A frame a little behind on the new epoch keeps its spacing.
        assert_eq!(c.restamp(AUDIO, 30), 4090);
        // Stepping back less than the limit is not a new epoch.
        assert_eq!(c.restamp(VIDEO, 1540), 5600);
        assert_eq!(c.restamp(VIDEO, 40), 4100);
    }
}
