//! When an RTMP player's media arrives, against its timestamps: how soon
//! the first picture and sound came, whether sound arrives behind video
//! already received, and how much backlog a late joiner got at once. Time is
//! an input (offsets since the step began), so it is tested without sockets.

use std::time::Duration;

use super::RtmpMediaExpect;

/// How long after the first message the backlog is measured.
const BACKLOG_WINDOW: Duration = Duration::from_secs(1);

/// What an RTMP player's media looked like in time.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RtmpTiming {
    /// The first audio frame (not a sequence header), after the step began.
    pub first_audio: Option<Duration>,
    /// The first video frame (not a sequence header), after the step began.
    pub first_video: Option<Duration>,
    /// The last audio frame, after the step began.
    pub last_audio: Option<Duration>,
    /// The last video frame, after the step began.
    pub last_video: Option<Duration>,
    /// The newest video timestamp received (ms).
    newest_video: Option<u32>,
    /// The last video timestamp received (ms).
    last_video_timestamp: Option<u32>,
    /// The widest step between the timestamps of two video frames received
    /// one after the other (ms), and the timestamp it stepped from.
    pub widest_video_step: Option<(u32, u32)>,
    /// The most an audio message's timestamp was behind the newest video
    /// timestamp received before it (ms), and that audio's timestamp.
    pub audio_behind_video: Option<(u32, u32)>,
    /// The first media frame: when, and its timestamp.
    first_media: Option<(Duration, u32)>,
    /// How far ahead of real time the media of the first second ran (ms).
    backlog: i64,
    /// The first second since the first media frame is over.
    backlog_measured: bool,
}

impl RtmpTiming {
    /// An audio (`type_id` 8) or video (9) message arrived `at` after the step began.
    pub fn media(&mut self, at: Duration, type_id: u8, timestamp: u32, payload: &[u8]) {
        let config = match type_id {
            8 => media::flv::audio_header(payload).is_some_and(|h| h.is_sequence_header),
            _ => media::flv::video_header(payload).is_some_and(|h| h.is_sequence_header),
        };
        if config {
            return;
        }
        if type_id == 8 {
            self.first_audio.get_or_insert(at);
            self.last_audio = Some(at);
            // Timestamps are serial numbers: compared across the 2^32 wrap.
            if let Some(video) = self
                .newest_video
                .filter(|v| media::rtmp::timestamp_before(timestamp, *v))
            {
                let behind = video.wrapping_sub(timestamp);
                if self.audio_behind_video.is_none_or(|(most, _)| behind > most) {
                    self.audio_behind_video = Some((behind, timestamp));
                }
            }
        } else {
            self.first_video.get_or_insert(at);
            self.last_video = Some(at);
            if self
                .newest_video
                .is_none_or(|newest| media::rtmp::timestamp_before(newest, timestamp))
            {
                self.newest_video = Some(timestamp);
            }
            if let Some(last) = self.last_video_timestamp {
                let step = timestamp.wrapping_sub(last);
                if self.widest_video_step.is_none_or(|(widest, _)| step > widest) {
                    self.widest_video_step = Some((step, last));
                }
            }
            self.last_video_timestamp = Some(timestamp);
        }
        let (first_at, first_ts) = *self.first_media.get_or_insert((at, timestamp));
        let arrived = at.saturating_sub(first_at);
        if arrived > BACKLOG_WINDOW {
            self.backlog_measured = true;
            return;
        }
        let media_time = i64::from(timestamp.wrapping_sub(first_ts) as i32);
        self.backlog = self.backlog.max(media_time - arrived.as_millis() as i64);
    }

    /// Whether the timing meets `expect`; what the server did if not.
    pub fn check(&self, expect: &RtmpMediaExpect) -> Result<(), String> {
        let late = |first: Option<Duration>, within: Option<Duration>, what: &str| match (first, within) {
            (Some(at), Some(within)) if at > within => Err(format!(
                "the first {what} frame arrived {} after the step began, not within {}",
                seconds(at),
                seconds(within)
            )),
            (None, Some(within)) => Err(format!("no {what} frame within {}", seconds(within))),
            _ => Ok(()),
        };
        late(self.first_video, expect.first_video_within, "video")?;
        late(self.first_audio, expect.first_audio_within, "audio")?;
        let going_on = |last: Option<Duration>, after: Option<Duration>, what: &str| match (last, after) {
            (Some(at), Some(after)) if at > after => Err(format!(
                "{what} kept coming: one {what} frame arrived {} after the step began, later than {}",
                seconds(at),
                seconds(after)
            )),
            _ => Ok(()),
        };
        going_on(self.last_audio, expect.no_audio_after, "audio")?;
        going_on(self.last_video, expect.no_video_after, "video")?;
        if let (Some(limit), Some((behind, timestamp))) = (expect.max_audio_behind_video, self.audio_behind_video) {
            if u128::from(behind) > limit.as_millis() {
                return Err(format!(
                    "audio at {timestamp} ms arrived after video {behind} ms newer (more than {} behind)",
                    seconds(limit)
                ));
            }
        }
        if let (Some(limit), Some((step, from))) = (expect.max_video_step, self.widest_video_step) {
            if u128::from(step) > limit.as_millis() {
                return Err(format!(
                    "video stepped from {from} ms to {} ms, more than {} ms: the frames between were lost",
                    from.wrapping_add(step),
                    limit.as_millis()
                ));
            }
        }
        if let Some(limit) = expect.max_backlog {
            if !self.backlog_measured {
                return Err("media for less than a second so far: the backlog is not measured yet".into());
            }
            if self.backlog > limit.as_millis() as i64 {
                return Err(format!(
                    "the first second of media ran {} ahead of real time (a backlog sent at once), more than {}",
                    seconds(Duration::from_millis(self.backlog as u64)),
                    seconds(limit)
                ));
            }
        }
        Ok(())
    }
}

fn seconds(duration: Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUDIO: &[u8] = &[0xB2, 1];
    const VIDEO: &[u8] = &[0x27, 1, 0, 0, 0];
    const AVC_CONFIG: &[u8] = &[0x17, 0, 0, 0, 0];

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn expect() -> RtmpMediaExpect {
        RtmpMediaExpect {
            first_video_within: Some(ms(2000)),
            first_audio_within: Some(ms(1000)),
            max_audio_behind_video: Some(ms(500)),
            max_backlog: Some(ms(3000)),
            ..RtmpMediaExpect::default()
        }
    }

    #[test]
    fn live_media_in_time_passes() {
        let mut timing = RtmpTiming::default();
        timing.media(ms(100), 9, 0, AVC_CONFIG);
        for i in 0..60u32 {
            let at = ms(120 + u64::from(i) * 20);
            timing.media(at, 8, 10_000 + i * 20, AUDIO);
            if i % 2 == 0 {
                timing.media(at, 9, 10_000 + i * 20, VIDEO);
            }
        }
        assert_eq!(timing.check(&expect()), Ok(()));
        assert_eq!(
            timing.first_video,
            Some(ms(120)),
            "the sequence header is not a picture"
        );
    }

    #[test]
    fn media_across_the_32_bit_wrap_is_in_time() {
        let mut timing = RtmpTiming::default();
        let start = u32::MAX - 599;
        for i in 0..60u32 {
            let at = ms(120 + u64::from(i) * 20);
            timing.media(at, 8, start.wrapping_add(i * 20), AUDIO);
            if i % 2 == 0 {
                timing.media(at, 9, start.wrapping_add(i * 20), VIDEO);
            }
        }
        assert_eq!(timing.check(&expect()), Ok(()));
        assert_eq!(timing.audio_behind_video, None, "sound never behind pictures");
    }

    #[test]
    fn a_backlog_and_sound_behind_it_are_told() {
        let mut timing = RtmpTiming::default();
        // Ten seconds of video at once, then the sound from the start.
        for i in 0..250u32 {
            timing.media(ms(50), 9, i * 40, VIDEO);
        }
        timing.media(ms(60), 8, 0, AUDIO);
        timing.media(ms(1200), 8, 10_000, AUDIO);
        let error = timing.check(&expect()).unwrap_err();
        assert_eq!(
            error,
            "audio at 0 ms arrived after video 9960 ms newer (more than 0.5 s behind)"
        );
        let backlog_only = RtmpMediaExpect {
            max_audio_behind_video: None,
            ..expect()
        };
        assert_eq!(
            timing.check(&backlog_only).unwrap_err(),
            "the first second of media ran 10.0 s ahead of real time (a backlog sent at once), more than 3.0 s"
        );
    }

    #[test]
    fn late_or_missing_tracks_are_told() {
        let mut timing = RtmpTiming::default();
        timing.media(ms(2500), 9, 0, VIDEO);
        assert_eq!(
            timing.check(&expect()).unwrap_err(),
            "the first video frame arrived 2.5 s after the step began, not within 2.0 s"
        );
        timing.first_video = Some(ms(100));
        assert_eq!(timing.check(&expect()).unwrap_err(), "no audio frame within 1.0 s");
    }

    #[test]
    fn a_track_that_goes_on_after_it_should_stop_is_told() {
        let stops = RtmpMediaExpect {
            no_audio_after: Some(ms(500)),
            ..RtmpMediaExpect::default()
        };
        let mut timing = RtmpTiming::default();
        timing.media(ms(100), 8, 0, AUDIO);
        timing.media(ms(2000), 9, 1900, VIDEO);
        assert_eq!(timing.check(&stops), Ok(()));
        timing.media(ms(2100), 8, 2000, AUDIO);
        assert_eq!(
            timing.check(&stops).unwrap_err(),
            "audio kept coming: one audio frame arrived 2.1 s after the step began, later than 0.5 s"
        );
    }

    #[test]
    fn a_lost_frame_widens_the_step_between_video_timestamps() {
        let mut timing = RtmpTiming::default();
        let expect = RtmpMediaExpect {
            max_video_step: Some(Duration::from_millis(60)),
            ..RtmpMediaExpect::default()
        };
        timing.media(Duration::ZERO, 9, 0, AVC_CONFIG);
        for (i, timestamp) in [0, 40, 80, 120].into_iter().enumerate() {
            timing.media(Duration::from_millis(i as u64 * 40), 9, timestamp, VIDEO);
        }
        assert_eq!(timing.check(&expect), Ok(()));
        timing.media(Duration::from_millis(200), 9, 200, VIDEO);
        assert_eq!(
            timing.check(&expect).unwrap_err(),
            "video stepped from 120 ms to 200 ms, more than 60 ms: the frames between were lost"
        );
    }
}
