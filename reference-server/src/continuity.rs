//! A publisher's timestamps kept going forward, sans-IO.
//!
//! RTMP timestamps are relative to an arbitrary epoch, and some publishers
//! start a new one in the middle of a stream: an encoder restarted without
//! reconnecting, a playlist fed to ffmpeg, a relay whose source changed.
//! Passed on, such a jump back makes WebRTC players' RTP time go back
//! (RFC 3550, section 5.1, wants it to increase with the sampling clock: a
//! browser drops every picture until the new timestamps pass the old ones)
//! and stalls Flash players' buffers. The hub restamps what follows a jump
//! back so that it continues just after the latest timestamp; everything
//! else (the 32-bit wrap included) goes through unchanged, modulo 2^32.

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
    /// The latest timestamp handed out (extended, offset included).
    latest: Option<i64>,
}

impl Continuity {
    /// The timestamp to pass on for one with `timestamp` from the publisher.
    pub fn restamp(&mut self, timestamp: u32) -> u32 {
        let mut out = self.timeline.extend(timestamp) + self.offset;
        if let Some(latest) = self.latest {
            if out < latest - JUMP_BACK_MS {
                self.offset += latest + STEP_MS - out;
                out = latest + STEP_MS;
            }
        }
        self.latest = Some(self.latest.map_or(out, |latest| latest.max(out)));
        out as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ordinary_stream_goes_through_unchanged() {
        let mut c = Continuity::default();
        // Audio a little behind video, B-frames, and the 32-bit wrap.
        for ts in [1000, 1040, 980, 1080, 1020, u32::MAX - 10, 30, u32::MAX - 5, 70] {
            assert_eq!(c.restamp(ts), ts);
        }
    }

    #[test]
    fn a_new_epoch_continues_after_the_latest_timestamp() {
        let mut c = Continuity::default();
        assert_eq!(c.restamp(4000), 4000);
        assert_eq!(c.restamp(4040), 4040);
        // The encoder restarted: its timestamps begin at 0 again.
        assert_eq!(c.restamp(0), 4060);
        assert_eq!(c.restamp(40), 4100);
        // A frame a little behind on the new epoch keeps its spacing.
        assert_eq!(c.restamp(20), 4080);
        // Stepping back less than the limit is not a new epoch.
        assert_eq!(c.restamp(1540), 5600);
        assert_eq!(c.restamp(40), 4100);
    }
}
