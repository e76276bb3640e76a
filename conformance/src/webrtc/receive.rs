//! What a player does with the media it receives, sans-IO: frames and the
//! time in, statistics and decoded PCM out.
//!
//! H.264 access units (Annex B, as str0m depacketizes them) go to
//! libavcodec (ffmpeg's decoder: every profile, B-frames in display order);
//! the receiver counts the pictures that come out, remembers the size of the
//! last one, and notes whether the first frame it got was an IDR (a player
//! must never be fed inter frames before the first IDR). Opus goes to
//! `media`'s libopus decoder, PCMU and PCMA are expanded by the G.711
//! formulas; the mono PCM of the last seconds is kept for level and pitch checks.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use codecs::audio::{dbfs, dominant_frequency};
use codecs::avc::AvcDecoder;
use codecs::enhanced_video::EnhancedDecoder;
use codecs::opus::OpusDecoder;
use codecs::picture::Picture;
use str0m::format::Codec;
use str0m::media::MediaTime;
use str0m::rtp::rtcp::SenderInfo;

use super::sync::{LipSync, SyncProbe};

/// A decoded frame louder than this counts as sound (for [`AudioStats::first_sound_after`]).
pub const SOUND_DBFS: f64 = -50.0;

/// What a player saw of the video.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VideoStats {
    /// The codec of the last frame (`"H264"`).
    pub codec: Option<String>,
    /// RTP packets that made up the frames received.
    pub rtp_packets: u64,
    /// Frames (access units) received.
    pub frames: u64,
    /// Frames that hold an IDR slice.
    pub idr_frames: u64,
    /// Whether the first frame received was an IDR; `None` before any frame.
    pub first_frame_was_idr: Option<bool>,
    /// Frames received before the first IDR (0 for a well-behaved server).
    pub frames_before_first_idr: u64,
    /// Frames str0m marked as not contiguous with the previous one (packets lost).
    pub discontinuities: u64,
    /// Frames the sender sent after a frame with a later RTP timestamp (their
    /// sequence numbers follow it, their timestamp is earlier): B-frames
    /// passed through in decode order, which a WebRTC decoder shows out of
    /// order or stalls on. A frame completed late by a retransmission (sent
    /// earlier, sequence numbers earlier too) does not count.
    pub out_of_order: u64,
    /// Pictures libavcodec decoded.
    pub pictures: u64,
    /// Frames libavcodec refused, or frames of a codec the player cannot decode.
    pub decode_errors: u64,
    /// Width of the last decoded picture (0 before any).
    pub width: u32,
    /// Height of the last decoded picture (0 before any).
    pub height: u32,
    /// Time from the offer to the first frame received.
    pub first_frame_after: Option<Duration>,
    /// Time from the offer to the first decoded picture.
    pub first_picture_after: Option<Duration>,
    /// When the sender's clock says the first frame was sampled: its RTP
    /// timestamp placed on the NTP time line of the latest RTCP sender
    /// report. Simultaneous audio and video must map to the same instant (lip
    /// sync). `None` before a sender report has come.
    pub first_frame_sampled_at: Option<SystemTime>,
    /// The furthest a frame's RTP time moved ahead of its arrival time,
    /// compared with the frame before it: RTP time that leaves the sampling
    /// clock (RFC 3550, section 5.1), as a sender that passes on a jump of
    /// its source's timestamps makes it. A burst of frames (a late joiner's
    /// cache, a catch-up) stays within a frame's time.
    pub largest_leap: Duration,
    /// When the largest leap happened, counted from the offer.
    pub largest_leap_after: Option<Duration>,
    /// The most the pictures' RTP time got ahead of their arrival since the
    /// first: the backlog a late joiner was sent at once (a cached group of
    /// pictures, or a new transcoder's output of it). About zero for
    /// pictures that came as they were made.
    pub backlog: Duration,
    /// When the first picture within 100 ms of that backlog arrived,
    /// counted from the offer: when the pictures had caught up with live.
    pub backlog_through_after: Option<Duration>,
    /// The last decode error.
    pub last_error: Option<String>,
}

/// What a player saw and heard of the audio.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AudioStats {
    /// The codec of the last frame (`"opus"`, `"PCMU"`, `"PCMA"`).
    pub codec: Option<String>,
    /// RTP packets received.
    pub rtp_packets: u64,
    /// Frames received (one per packet for these codecs).
    pub frames: u64,
    /// Frames decoded to PCM.
    pub decoded_frames: u64,
    /// Frames that could not be decoded (damaged, or an unknown codec).
    pub decode_errors: u64,
    /// The rate of the decoded PCM (48000 for Opus, 8000 for G.711; 0 before any).
    pub sample_rate: u32,
    /// Mono samples decoded in all.
    pub decoded_samples: u64,
    /// Time from the offer to the first audio frame received.
    pub first_audio_after: Option<Duration>,
    /// Time from the offer to the first decoded frame louder than [`SOUND_DBFS`].
    pub first_sound_after: Option<Duration>,
    /// The longest time between two audio frames' arrivals (after the first).
    pub longest_gap: Duration,
    /// When the longest gap began, counted from the offer.
    pub longest_gap_after: Option<Duration>,
    /// Times the RTP sequence numbers did not follow on from the frame
    /// before: packets lost, or a new SSRC (str0m's extended sequence
    /// numbers of a new stream start elsewhere).
    pub sequence_breaks: u64,
    /// Digests ([`crate::digest`]) of the first 4,096 audio payloads
    /// received, to compare with what a publisher sent.
    pub payload_digests: Vec<u64>,
    /// When the sender's clock says the first frame was sampled: its RTP
    /// timestamp placed on the NTP time line of the latest RTCP sender
    /// report. Simultaneous audio and video must map to the same instant (lip
    /// sync). `None` before a sender report has come.
    pub first_frame_sampled_at: Option<SystemTime>,
    /// The furthest a frame's RTP time moved ahead of its arrival time,
    /// compared with the frame before it: RTP time that leaves the sampling
    /// clock (RFC 3550, section 5.1), as a sender that passes on a jump of
    /// its source's timestamps makes it. A burst of frames (a late joiner's
    /// cache, a catch-up) stays within a frame's time.
    pub largest_leap: Duration,
    /// When the largest leap happened, counted from the offer.
    pub largest_leap_after: Option<Duration>,
    /// The last decode error.
    pub last_error: Option<String>,
}

/// A stretch of decoded mono PCM.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pcm {
    /// Samples per second (0 when empty).
    pub rate: u32,
    /// Mono samples, oldest first.
    pub samples: Vec<i16>,
}

impl Pcm {
    /// The level in dBFS, or `None` when there are no samples.
    pub fn dbfs(&self) -> Option<f64> {
        (!self.samples.is_empty()).then(|| dbfs(&self.samples))
    }

    /// The dominant frequency (see [`codecs::audio::dominant_frequency`]).
    pub fn dominant_frequency(&self) -> Option<f64> {
        if self.rate == 0 {
            return None;
        }
        dominant_frequency(&self.samples, self.rate)
    }

    /// How long the samples last.
    pub fn duration(&self) -> Duration {
        if self.rate == 0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(self.samples.len() as f64 / f64::from(self.rate))
    }
}

/// Where the sender report `sender` places RTP time `time` on the sender's
/// NTP clock. RTP timestamps are 32 bits and wrap: the difference is taken
/// modulo 2^32, so it holds for frames within half the wrap (hours) of the report.
pub fn sampled_at_sender(time: MediaTime, sender: &SenderInfo) -> SystemTime {
    let ticks = (time.numer() as u32).wrapping_sub(sender.rtp_time.numer() as u32) as i32;
    let offset = Duration::from_secs_f64(f64::from(ticks.unsigned_abs()) / f64::from(time.denom()));
    if ticks >= 0 {
        sender.ntp_time + offset
    } else {
        sender.ntp_time - offset
    }
}

/// Decodes an H.264 access unit in Annex B with `decoder`, started on first use.
fn decode_h264(decoder: &mut Option<AvcDecoder>, data: &[u8], picture: &mut Picture) -> Result<bool, String> {
    if decoder.is_none() {
        let started = AvcDecoder::new().map_err(|e| format!("libavcodec's H.264 decoder could not start: {e}"))?;
        *decoder = Some(started);
    }
    let Some(decoder) = decoder.as_mut() else {
        return Ok(false);
    };
    decoder
        .decode_annexb(data, picture)
        .map_err(|e| format!("libavcodec: {e}"))
}

/// Decodes a depacketized HEVC (Annex B), AV1 (OBUs), VP9 or VP8 frame
/// with `decoder`, started (or restarted, for another codec) on first use.
fn decode_other(
    decoder: &mut Option<EnhancedDecoder>,
    codec: Codec,
    data: &[u8],
    picture: &mut Picture,
) -> Result<bool, String> {
    let fourcc = match codec {
        Codec::H265 => media::eflv::FourCc::HEVC,
        Codec::Av1 => media::eflv::FourCc::AV1,
        Codec::Vp9 => media::eflv::FourCc::VP9,
        Codec::Vp8 => media::eflv::FourCc::VP8,
        other => return Err(format!("the player cannot decode {other}")),
    };
    if decoder.as_ref().map(EnhancedDecoder::fourcc) != Some(fourcc) {
        let started =
            EnhancedDecoder::new(fourcc).map_err(|e| format!("libavcodec's {codec} decoder could not start: {e}"))?;
        *decoder = Some(started);
    }
    let Some(decoder) = decoder.as_mut() else {
        return Ok(false);
    };
    decoder
        .decode_bitstream(data, picture)
        .map_err(|e| format!("libavcodec: {e}"))
}

/// Decodes and measures received media (see the module docs).
pub struct MediaReceiver {
    start: Instant,
    keep: Duration,
    video: VideoStats,
    audio: AudioStats,
    h264: Option<AvcDecoder>,
    /// HEVC, AV1, VP9 or VP8 (libavcodec), once such pictures came.
    other: Option<EnhancedDecoder>,
    /// The last picture libavcodec gave.
    picture: Picture,
    opus: Option<OpusDecoder>,
    first_video_time: Option<MediaTime>,
    /// The latest RTP time of a video frame so far, and the last sequence
    /// number of that frame.
    last_video_time: Option<(MediaTime, u64)>,
    first_audio_time: Option<MediaTime>,
    /// The RTP time of each track's newest frame and when it arrived, and
    /// the last sequence number of the track's last frame.
    last_video_clock: Option<(MediaTime, Instant, u64)>,
    last_audio_clock: Option<(MediaTime, Instant, u64)>,
    last_audio_after: Option<Duration>,
    last_audio_seq: Option<u64>,
    seen_idr: bool,
    pcm_rate: u32,
    pcm: VecDeque<i16>,
    scratch: Vec<i16>,
    /// Frame marks read from decoded pictures, with when they came, while
    /// [`MediaReceiver::read_marks`] is on.
    marks: Option<Vec<(u16, Duration)>>,
    /// Flashes and beeps, for lip sync.
    sync: SyncProbe,
    /// The RTP time of the frame being received (video, audio).
    frame_time: [Option<MediaTime>; 2],
    /// The latest sender report of each track (video, audio).
    senders: [Option<SenderInfo>; 2],
    /// The first picture's RTP time, and when it came after the offer.
    first_picture: Option<(MediaTime, Duration)>,
    /// Each time the backlog grew: when, and to what.
    backlog_steps: Vec<(Duration, Duration)>,
}

/// How near the most backlog seen a picture must be for the backlog to be
/// through ([`VideoStats::backlog_through_after`]).
const BACKLOG_STEP: Duration = Duration::from_millis(100);
/// Growth of the backlog smaller than this is not recorded.
const BACKLOG_GRAIN: Duration = Duration::from_millis(10);
/// At most this many growths are recorded (a minute of backlog).
const MAX_BACKLOG_STEPS: usize = 6000;

impl std::fmt::Debug for MediaReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaReceiver")
            .field("video", &self.video)
            .field("audio", &self.audio)
            .finish()
    }
}

impl MediaReceiver {
    /// A receiver whose times count from `start` (the offer) and which keeps
    /// the last `keep` of decoded PCM.
    pub fn new(start: Instant, keep: Duration) -> MediaReceiver {
        MediaReceiver {
            start,
            keep,
            video: VideoStats::default(),
            audio: AudioStats::default(),
            h264: None,
            other: None,
            picture: Picture::default(),
            opus: None,
            first_video_time: None,
            last_video_time: None,
            first_audio_time: None,
            last_video_clock: None,
            last_audio_clock: None,
            last_audio_after: None,
            last_audio_seq: None,
            seen_idr: false,
            pcm_rate: 0,
            pcm: VecDeque::new(),
            scratch: Vec::new(),
            marks: None,
            sync: SyncProbe::default(),
            frame_time: [None; 2],
            first_picture: None,
            backlog_steps: Vec::new(),
            senders: [None, None],
        }
    }

    /// Reads the frame mark (see [`crate::bench::marks`]) of every decoded
    /// picture from now on, for [`MediaReceiver::take_marks`].
    pub fn read_marks(&mut self) {
        self.marks.get_or_insert_with(Vec::new);
    }

    /// The marks read since the last call, each with its picture's arrival
    /// (counted from the offer).
    pub fn take_marks(&mut self) -> Vec<(u16, Duration)> {
        self.marks.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Takes one frame of `codec` received at `now`, made of `rtp_packets`
    /// packets; `contiguous` is false when packets before it were lost.
    pub fn receive(&mut self, now: Instant, codec: Codec, data: &[u8], rtp_packets: u64, contiguous: bool) {
        let since = now.saturating_duration_since(self.start);
        if codec.is_video() {
            self.receive_video(since, codec, data, rtp_packets, contiguous);
        } else {
            self.receive_audio(since, codec, data, rtp_packets);
        }
    }

    /// Takes the RTP time and (extended) sequence numbers of a frame of
    /// `codec` that arrived `now`, and the sender report in force when it
    /// came: to place the first frame on the sender's clock
    /// ([`VideoStats::first_frame_sampled_at`]) and to see RTP time leap
    /// ahead of the clock ([`VideoStats::largest_leap`]). A break in the
    /// sequence (loss, or a new SSRC with a timestamp base of its own)
    /// starts the comparison again.
    pub fn timing(
        &mut self,
        codec: Codec,
        time: MediaTime,
        seq: (u64, u64),
        now: Instant,
        sender: Option<&SenderInfo>,
    ) {
        let since = now.saturating_duration_since(self.start);
        let (first, sampled_at, last, leap) = if codec.is_video() {
            let v = &mut self.video;
            (
                &mut self.first_video_time,
                &mut v.first_frame_sampled_at,
                &mut self.last_video_clock,
                (&mut v.largest_leap, &mut v.largest_leap_after),
            )
        } else {
            let a = &mut self.audio;
            (
                &mut self.first_audio_time,
                &mut a.first_frame_sampled_at,
                &mut self.last_audio_clock,
                (&mut a.largest_leap, &mut a.largest_leap_after),
            )
        };
        let first = *first.get_or_insert(time);
        if let Some(sender) = sender {
            *sampled_at = Some(sampled_at_sender(first, sender));
        }
        let track = usize::from(!codec.is_video());
        self.frame_time[track] = Some(time);
        if let Some(sender) = sender {
            self.senders[track] = Some(*sender);
        }
        let follows = last.is_some_and(|(_, _, last_seq)| seq.0 == last_seq + 1);
        if let Some((then, arrived, _)) = last.filter(|_| follows) {
            let moved = time.as_seconds() - then.as_seconds();
            let passed = now.saturating_duration_since(arrived).as_secs_f64();
            let ahead = Duration::try_from_secs_f64(moved - passed).unwrap_or_default();
            if ahead > *leap.0 {
                *leap.0 = ahead;
                *leap.1 = Some(since);
            }
        }
        if !follows || last.is_none_or(|(then, _, _)| time > then) {
            *last = Some((time, now, seq.1));
        } else if let Some(last) = last.as_mut() {
            last.2 = seq.1;
        }
        if codec.is_video() {
            self.backlog(time, since);
        }
    }

    /// Places the picture of RTP time `time` that arrived `since` the offer
    /// against the first picture's arrival ([`VideoStats::backlog`]).
    fn backlog(&mut self, time: MediaTime, since: Duration) {
        let (first_time, first_since) = *self.first_picture.get_or_insert((time, since));
        let moved = time.as_seconds() - first_time.as_seconds();
        let passed = since.saturating_sub(first_since).as_secs_f64();
        let ahead = Duration::try_from_secs_f64(moved - passed).unwrap_or_default();
        if ahead > self.video.backlog + BACKLOG_GRAIN && self.backlog_steps.len() < MAX_BACKLOG_STEPS {
            self.video.backlog = ahead;
            self.backlog_steps.push((since, ahead));
            // The first picture within 100 ms of the most seen: a slow drift
            // of the sender's pace later does not move it.
            let level = ahead.saturating_sub(BACKLOG_STEP);
            self.video.backlog_through_after = self
                .backlog_steps
                .iter()
                .find(|(_, ahead)| *ahead >= level)
                .map(|(since, _)| *since);
        }
    }

    /// Takes the RTP time and (extended) sequence numbers of a video frame,
    /// to count frames sent out of presentation order
    /// ([`VideoStats::out_of_order`]).
    pub fn video_order(&mut self, time: MediaTime, first_seq: u64, last_seq: u64) {
        match self.last_video_time {
            Some((latest, latest_seq)) if time < latest => {
                if first_seq > latest_seq {
                    self.video.out_of_order += 1;
                }
            }
            _ => self.last_video_time = Some((time, last_seq)),
        }
    }

    /// Takes the (extended) RTP sequence numbers of a frame of `codec`, to
    /// count breaks in an audio stream's sequence.
    pub fn sequence(&mut self, codec: Codec, first: u64, last: u64) {
        if codec.is_video() {
            return;
        }
        if self.last_audio_seq.is_some_and(|previous| first != previous + 1) {
            self.audio.sequence_breaks += 1;
        }
        self.last_audio_seq = Some(last);
    }

    /// The video statistics so far.
    pub fn video(&self) -> &VideoStats {
        &self.video
    }

    /// The audio statistics so far.
    pub fn audio(&self) -> &AudioStats {
        &self.audio
    }

    /// Lip sync as measured so far (see [`super::sync`]).
    pub fn lip_sync(&self) -> LipSync {
        self.sync.report(self.senders[0].as_ref(), self.senders[1].as_ref())
    }

    /// The last `window` of decoded mono PCM (less if less was decoded).
    pub fn pcm(&self, window: Duration) -> Pcm {
        let wanted = (window.as_secs_f64() * f64::from(self.pcm_rate)) as usize;
        let skip = self.pcm.len().saturating_sub(wanted);
        Pcm {
            rate: self.pcm_rate,
            samples: self.pcm.iter().skip(skip).copied().collect(),
        }
    }

    fn receive_video(&mut self, since: Duration, codec: Codec, data: &[u8], rtp_packets: u64, contiguous: bool) {
        let v = &mut self.video;
        v.codec = Some(codec.to_string());
        v.rtp_packets += rtp_packets;
        v.frames += 1;
        v.discontinuities += u64::from(!contiguous);
        v.first_frame_after.get_or_insert(since);
        let decoded = match codec {
            Codec::H264 => {
                let is_idr = annexb_nal_types(data).any(|t| t == NAL_IDR);
                v.idr_frames += u64::from(is_idr);
                v.first_frame_was_idr.get_or_insert(is_idr);
                if is_idr {
                    self.seen_idr = true;
                } else if !self.seen_idr {
                    v.frames_before_first_idr += 1;
                }
                decode_h264(&mut self.h264, data, &mut self.picture)
            }
            other => decode_other(&mut self.other, other, data, &mut self.picture),
        };
        match decoded {
            Ok(true) => {
                let (w, h) = (self.picture.width, self.picture.height);
                if let Some(marks) = &mut self.marks {
                    if let Some(mark) = crate::bench::marks::read(&self.picture.data, w, w, h) {
                        marks.push((mark, since));
                    }
                }
                if let Some(time) = self.frame_time[0] {
                    self.sync.picture(&self.picture.data, w, h, time);
                }
                v.pictures += 1;
                v.width = u32::try_from(w).unwrap_or(u32::MAX);
                v.height = u32::try_from(h).unwrap_or(u32::MAX);
                v.first_picture_after.get_or_insert(since);
            }
            Ok(false) => {}
            Err(e) => {
                v.decode_errors += 1;
                v.last_error = Some(e);
            }
        }
    }

    fn receive_audio(&mut self, since: Duration, codec: Codec, data: &[u8], rtp_packets: u64) {
        let a = &mut self.audio;
        a.codec = Some(codec.to_string());
        a.rtp_packets += rtp_packets;
        a.frames += 1;
        if let Some(last) = self.last_audio_after {
            let gap = since.saturating_sub(last);
            if gap > a.longest_gap {
                a.longest_gap = gap;
                a.longest_gap_after = Some(last);
            }
        }
        self.last_audio_after = Some(since);
        a.first_audio_after.get_or_insert(since);
        if a.payload_digests.len() < 4096 {
            a.payload_digests.push(crate::digest(data));
        }
        self.scratch.clear();
        let rate = match codec {
            Codec::Opus => {
                if self.opus.is_none() {
                    match OpusDecoder::new(1) {
                        Ok(d) => self.opus = Some(d),
                        Err(e) => {
                            a.decode_errors += 1;
                            a.last_error = Some(format!("opus decoder could not start: {e}"));
                            return;
                        }
                    }
                }
                let Some(decoder) = self.opus.as_mut() else { return };
                if let Err(e) = decoder.decode(data, &mut self.scratch) {
                    a.decode_errors += 1;
                    a.last_error = Some(format!("opus: {e}"));
                    return;
                }
                codecs::opus::SAMPLE_RATE
            }
            Codec::PCMU => {
                self.scratch.extend(data.iter().map(|&b| ulaw_to_linear(b)));
                8000
            }
            Codec::PCMA => {
                self.scratch.extend(data.iter().map(|&b| alaw_to_linear(b)));
                8000
            }
            other => {
                a.decode_errors += 1;
                a.last_error = Some(format!("the player cannot decode {other}"));
                return;
            }
        };
        if let Some(time) = self.frame_time[1] {
            self.sync.sound(&self.scratch, rate, time);
        }
        a.decoded_frames += 1;
        a.decoded_samples += self.scratch.len() as u64;
        a.sample_rate = rate;
        if a.first_sound_after.is_none() && !self.scratch.is_empty() && dbfs(&self.scratch) > SOUND_DBFS {
            a.first_sound_after = Some(since);
        }
        if self.pcm_rate != rate {
            self.pcm.clear();
            self.pcm_rate = rate;
        }
        self.pcm.extend(self.scratch.iter().copied());
        let max = (self.keep.as_secs_f64() * f64::from(rate)) as usize;
        let excess = self.pcm.len().saturating_sub(max);
        self.pcm.drain(..excess);
    }
}

/// NAL unit type of an IDR slice.
const NAL_IDR: u8 = 5;

/// The NAL unit types of an Annex B byte stream, in order.
pub fn annexb_nal_types(data: &[u8]) -> impl Iterator<Item = u8> + '_ {
    // Every NAL unit follows a 00 00 01 start code (a 4-byte start code ends in one).
    data.windows(4)
        .filter(|w| w[0] == 0 && w[1] == 0 && w[2] == 1)
        .map(|w| w[3] & 0x1f)
}

/// G.711 µ-law to linear PCM (ITU-T G.711, 14-bit magnitude scaled to 16 bits).
pub fn ulaw_to_linear(byte: u8) -> i16 {
    let u = !byte;
    let exponent = (u >> 4) & 0x07;
    let mantissa = i32::from(u & 0x0f);
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    // At most (15 << 3 + 0x84) << 7 - 0x84 = 32124, so it fits.
    let magnitude = magnitude as i16;
    if u & 0x80 != 0 {
        -magnitude
    } else {
        magnitude
    }
}

/// G.711 A-law to linear PCM (ITU-T G.711, 13-bit magnitude scaled to 16 bits).
pub fn alaw_to_linear(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let exponent = (a >> 4) & 0x07;
    let mantissa = i32::from(a & 0x0f);
    let magnitude = match exponent {
        0 => (mantissa << 4) + 8,
        e => ((mantissa << 4) + 0x108) << (e - 1),
    };
    // At most (15 << 4 + 0x108) << 6 = 32256, so it fits.
    let magnitude = magnitude as i16;
    if a & 0x80 != 0 {
        magnitude
    } else {
        -magnitude
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_sent_out_of_presentation_order_count_but_late_retransmissions_do_not() {
        use str0m::media::Frequency;
        let t = |ms: u64| MediaTime::new(ms * 90, Frequency::NINETY_KHZ);
        let mut r = MediaReceiver::new(Instant::now(), Duration::from_secs(1));
        // I P B B in decode order, each frame after the one before on the wire.
        r.video_order(t(0), 0, 3);
        r.video_order(t(120), 4, 5);
        r.video_order(t(40), 6, 6);
        r.video_order(t(80), 7, 7);
        assert_eq!(r.video.out_of_order, 2);
        // A frame completed late by RTX: earlier in time and on the wire.
        r.video_order(t(200), 20, 21);
        r.video_order(t(160), 18, 19);
        assert_eq!(r.video.out_of_order, 2);
    }

    #[test]
    fn rtp_time_that_leaps_ahead_of_the_clock_is_measured() {
        use str0m::media::Frequency;
        let t = |ms: u64| MediaTime::new(ms * 90, Frequency::NINETY_KHZ);
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut r = MediaReceiver::new(start, Duration::from_secs(1));
        // A burst (40 ms of RTP time each, 10 ms apart), then paced frames,
        // one packet each.
        for frame in 0..10 {
            r.timing(Codec::H264, t(frame * 40), (frame, frame), at(frame * 10), None);
        }
        for frame in 10..20 {
            r.timing(Codec::H264, t(frame * 40), (frame, frame), at(frame * 40), None);
        }
        assert!(
            r.video.largest_leap <= Duration::from_millis(40),
            "{:?}",
            r.video.largest_leap
        );
        // The burst was 10 frames of 40 ms in 90 ms: 270 ms of backlog,
        // within 100 ms of it from the seventh frame (60 ms) on.
        assert!(
            (Duration::from_millis(260)..=Duration::from_millis(280)).contains(&r.video.backlog),
            "{:?}",
            r.video.backlog
        );
        assert_eq!(r.video.backlog_through_after, Some(Duration::from_millis(60)));
        // A B-frame earlier in time changes nothing.
        r.timing(Codec::H264, t(700), (20, 20), at(801), None);
        assert!(r.video.largest_leap <= Duration::from_millis(40));
        // A new SSRC (the sequence breaks) with a timestamp base of its own.
        r.timing(Codec::H264, t(9_000_000), (5000, 5000), at(820), None);
        r.timing(Codec::H264, t(9_000_040), (5001, 5001), at(860), None);
        assert!(r.video.largest_leap <= Duration::from_millis(40));
        // An hour ahead, 40 ms later.
        r.timing(Codec::H264, t(12_600_080), (5002, 5003), at(900), None);
        let leap = r.video.largest_leap.as_secs_f64();
        assert!((3599.9..3600.1).contains(&leap), "{leap}");
        assert_eq!(r.video.largest_leap_after, Some(Duration::from_millis(900)));
        assert_eq!(r.audio.largest_leap, Duration::ZERO);
    }

    #[test]
    fn g711_matches_the_reference_points_and_media() {
        assert_eq!(ulaw_to_linear(0xff), 0);
        assert_eq!(ulaw_to_linear(0x7f), 0);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(alaw_to_linear(0xd5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xaa), 32256);
        assert_eq!(alaw_to_linear(0x2a), -32256);
        for b in 0..=255u8 {
            assert_eq!(ulaw_to_linear(b), codecs::g711::ulaw_to_linear(b), "µ-law {b:#04x}");
            assert_eq!(alaw_to_linear(b), codecs::g711::alaw_to_linear(b), "A-law {b:#04x}");
        }
    }

    #[test]
    fn nal_types_of_an_annexb_stream() {
        let au = [0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x68, 3, 0, 0, 1, 0x65, 9, 9];
        assert_eq!(annexb_nal_types(&au).collect::<Vec<_>>(), [7, 8, 5]);
        assert_eq!(annexb_nal_types(&[0, 0, 1]).count(), 0);
    }

    /// A High-profile stream with B-frames, as RTP delivers it (Annex B,
    /// parameter sets before each IDR): every picture is decoded (openh264
    /// decoded a fraction of such a stream and the suite under-counted).
    #[test]
    fn a_high_profile_stream_with_b_frames_decodes_whole() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/flv/ffmpeg_h264_640x360_30fps.flv"
        );
        let tags = media::flv::read_tags(&bytes::Bytes::from(std::fs::read(path).unwrap())).unwrap();
        let start = Instant::now();
        let mut r = MediaReceiver::new(start, Duration::from_secs(1));
        let mut config = None;
        let mut annexb = Vec::new();
        let mut frames = 0;
        for tag in tags.iter().filter(|t| t.kind == media::flv::TagKind::Video) {
            if tag.data[1] == 0 {
                config = Some(media::h264::AvcConfig::parse(&tag.data[5..]).unwrap());
                continue;
            }
            annexb.clear();
            config.as_ref().unwrap().avcc_to_annexb(&tag.data[5..], &mut annexb);
            r.receive(start, Codec::H264, &annexb, 1, true);
            frames += 1;
        }
        let v = r.video();
        assert_eq!(frames, 61);
        assert_eq!(v.decode_errors, 0, "{:?}", v.last_error);
        // libavcodec holds the last pictures back for reordering until more come.
        assert!(v.pictures >= 58, "{} of {frames} pictures decoded", v.pictures);
        assert_eq!((v.width, v.height), (640, 360));
    }

    #[test]
    fn garbage_counts_as_errors_and_keeps_the_receiver_alive() {
        let start = Instant::now();
        let mut r = MediaReceiver::new(start, Duration::from_secs(1));
        r.receive(start, Codec::H264, &[0, 0, 0, 1, 0x41, 0xff, 0xff, 0xff], 1, true);
        r.receive(start, Codec::Opus, &[0x03, 0x00], 1, true);
        r.receive(start, Codec::Vp8, &[1, 2, 3], 1, true);
        assert_eq!(r.video().frames, 2);
        assert_eq!(r.video().first_frame_was_idr, Some(false));
        assert_eq!(r.video().frames_before_first_idr, 1);
        assert_eq!(r.video().pictures, 0);
        assert_eq!(r.audio().decode_errors, 1);
        assert!(r.pcm(Duration::from_secs(1)).samples.is_empty());
    }

    #[test]
    fn pcm_is_bounded_to_the_window_kept() {
        let start = Instant::now();
        let mut r = MediaReceiver::new(start, Duration::from_millis(100));
        for _ in 0..10 {
            r.receive(start, Codec::PCMU, &[0x80; 160], 1, true);
        }
        assert_eq!(r.audio().decoded_samples, 1600);
        assert_eq!(r.audio().sample_rate, 8000);
        assert_eq!(r.pcm(Duration::from_secs(5)).samples.len(), 800);
        assert_eq!(r.pcm(Duration::from_millis(10)).samples.len(), 80);
        assert_eq!(r.audio().first_sound_after, Some(Duration::ZERO));
    }
}
