//! What a WebRTC player sends, sans-IO: the stream's frames (and its
//! transcoders' output), publication changes and `now` in; writes for the
//! peer and what the player needs from outside (a transcoder, a video
//! offer) out. [`super::play::Player`] is the shell around it: it owns the
//! str0m `Rtc`, the hub subscription and the transcoder subscriptions, and
//! carries out the [`Output`]s.
//!
//! The decisions here:
//! - pictures start at a keyframe (or a keyframe-flagged sequence header,
//!   Flash Player's refresh point), at first and whenever the source of the
//!   pictures changes;
//! - video in a codec the peer took passes through: H.264 AVCC with the
//!   parameter sets before every IDR (packetized once per stream by the
//!   shell, [`super::packets`]), HEVC, AV1, VP9 and VP8 as
//!   [`media::eflv::bitstream`] frames them, unless it cannot: a codec the
//!   peer did not take (Sorenson Spark always), pictures with a
//!   composition offset (B-frames, which WebRTC decoders would show out of
//!   order), or a player that asked for a size, a bitrate or always
//!   transcoded video switch it to the stream's video transcoder, once;
//! - sound passes through when it is Opus, or G.711 the peer took; any
//!   other codec switches to the stream's shared Opus transcoder;
//! - RTP time follows the stream's timestamps on one [`Clock`].

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use media::eflv::bitstream::Bitstream;
use media::flv::{AudioCodec, VideoCodec};
use media::h264::AvcConfig;
use str0m::media::{Frequency, MediaKind as Kind, MediaTime, Pt};

use super::clock::{Clock, Track};
pub use super::plan::{AudioOut, VideoOut};
use super::plan::{AudioPlan, VideoPlan};
use crate::hub::{Frame, MediaKind};

/// Bytes reserved beyond a picture's own for the parameter sets put in
/// front of a keyframe, so that converting it does not reallocate.
const PARAMETER_SETS_ROOM: usize = 256;

/// Media for the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// Which m-line.
    pub kind: Kind,
    /// The payload type.
    pub pt: Pt,
    /// When it stands for, for str0m's queue and sender reports.
    pub wallclock: Instant,
    /// Its RTP time.
    pub time: MediaTime,
    /// What is sent.
    pub data: Payload,
}

/// A frame for the peer, in the form its RTP payloads are made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// An H.264 access unit (AVCC, a slice of the stream's shared buffer)
    /// and the configuration to read it with: its RTP payloads are made
    /// once per stream and shared by every player ([`super::packets`]).
    Avc {
        /// The access unit.
        avcc: Bytes,
        /// Its configuration.
        config: Arc<AvcConfig>,
    },
    /// A sound frame, one RTP payload as it is (a slice of the shared buffer).
    Sound(Bytes),
    /// A picture in its codec's RTP-ready bitstream (Annex B for HEVC,
    /// OBUs for AV1, VP8 and VP9 frames), made for this player and handed
    /// to str0m's packetizer.
    Picture(Vec<u8>),
}

#[cfg(test)]
impl Payload {
    /// The bytes a decoder gets (Annex B for H.264).
    fn bytes(&self) -> Vec<u8> {
        match self {
            Payload::Avc { avcc, config } => {
                let mut out = Vec::new();
                config.avcc_to_annexb(avcc, &mut out);
                out
            }
            Payload::Sound(data) => data.to_vec(),
            Payload::Picture(data) => data.clone(),
        }
    }
}

/// What the player does for its core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send this to the peer.
    Write(Write),
    /// Play the stream's video transcoder from now on, and tell the core
    /// with [`PlayCore::video_transcoder`].
    TranscodeVideo,
    /// Play the stream's Opus transcoder from now on.
    TranscodeAudio,
    /// The stream's sound is Opus now: the Opus transcoder is not needed.
    StopAudioTranscoder,
    /// Video came and the answer had none: offer it, if the signalling can.
    OfferVideo,
}

/// A player's media decisions.
#[derive(Debug)]
pub struct PlayCore {
    audio: Option<AudioOut>,
    video: VideoOut,
    /// The answer has a video m-line (with or without a usable payload type).
    video_line: bool,
    /// Transcode the video even when it could pass through.
    always_transcode: bool,
    audio_transcoded: bool,
    video_transcoded: bool,
    avc: Option<Arc<AvcConfig>>,
    /// The framing of an Enhanced RTMP codec passing through.
    bitstream: Option<Bitstream>,
    need_keyframe: bool,
    /// After a keyframe request answered from the cache: video frames up to
    /// this timestamp were in the answer.
    skip_video_through: Option<u32>,
    /// The player's one clock for audio and video.
    pub clock: Clock,
    /// While true, no sound is written.
    pub audio_muted: bool,
    /// Opus is decoded and encoded again instead of passed through (a
    /// quirk: `opus_transcoded`).
    pub opus_transcoded: bool,
}

impl PlayCore {
    /// A core; `always_transcode` sends the video through a transcoder even
    /// when it could pass through.
    pub fn new(always_transcode: bool) -> PlayCore {
        PlayCore {
            audio: None,
            video: VideoOut::default(),
            video_line: false,
            always_transcode,
            audio_transcoded: false,
            video_transcoded: false,
            avc: None,
            bitstream: None,
            need_keyframe: true,
            skip_video_through: None,
            clock: Clock::default(),
            audio_muted: false,
            opus_transcoded: false,
        }
    }

    /// What the answer (or a renegotiation) gave: the audio payload type,
    /// whether there is a video m-line, and the payload types of the video
    /// codecs it took.
    pub fn negotiated(&mut self, audio: Option<AudioOut>, video_line: bool, video: VideoOut) {
        if video_line && !self.video_line {
            // Video added by renegotiation starts at a keyframe.
            self.need_keyframe = true;
        }
        self.audio = audio;
        self.video_line = video_line;
        self.video = video;
    }

    /// Whether the video comes from the transcoder.
    pub fn video_transcoded(&self) -> bool {
        self.video_transcoded
    }

    /// The player's pictures come from another track of the stream from
    /// now on: they start again at a keyframe of it, after its sequence
    /// header (the parameter sets of the track before are forgotten).
    pub fn switch_track(&mut self) {
        self.need_keyframe = true;
        self.skip_video_through = None;
        self.avc = None;
        self.bitstream = None;
    }

    /// Whether pictures like `frame` go to this player through a
    /// transcoder (its codec is not one the player took).
    pub fn transcodes(&self, frame: &Frame) -> bool {
        self.video_transcoded || self.plan(frame) == Some(VideoPlan::Transcode)
    }

    /// The stream got (true) or lost (false) its publisher. A new
    /// publisher's timestamps start anew: the clock goes on from where it was.
    pub fn publication(&mut self, live: bool) {
        if live {
            self.clock.realign();
        }
    }

    /// A frame of the stream.
    pub fn frame(&mut self, frame: &Frame, now: Instant, out: &mut Vec<Output>) {
        if !frame.for_decoders() {
            return; // an enhanced tag's metadata or sequence end: nothing to packetize
        }
        match frame.kind {
            MediaKind::Video if !self.video_line => out.push(Output::OfferVideo),
            MediaKind::Video if self.video_transcoded || !self.video.any() => {}
            MediaKind::Video if self.plan(frame) == Some(VideoPlan::Transcode) => {
                self.video_transcoded = true;
                self.avc = None;
                self.need_keyframe = true;
                self.skip_video_through = None;
                out.push(Output::TranscodeVideo);
            }
            MediaKind::Video => {
                if let Some(through) = self.skip_video_through {
                    if !media::rtmp::timestamp_before(through, frame.timestamp) && !frame.config {
                        return;
                    }
                    self.skip_video_through = None;
                }
                self.video(frame, None, now, out);
            }
            MediaKind::Audio => self.audio(frame, now, out),
            MediaKind::Data => {}
        }
    }

    /// The video transcoder this player now plays: its current sequence
    /// header, if it has made one. Pictures start at the IDR the player's
    /// subscription asked for, even though the header is flagged as a keyframe.
    pub fn video_transcoder(&mut self, config: Option<&Frame>, now: Instant, out: &mut Vec<Output>) {
        if let Some(config) = config {
            self.video(config, None, now, out);
        }
        self.need_keyframe = true;
    }

    /// A frame of the video transcoder's output.
    pub fn transcoded_video(&mut self, frame: &Frame, now: Instant, out: &mut Vec<Output>) {
        self.video(frame, None, now, out);
    }

    /// An Opus frame of the audio transcoder's output.
    pub fn transcoded_audio(&mut self, frame: &Frame, now: Instant, out: &mut Vec<Output>) {
        if let (Some(AudioOut::Opus(pt)), Some(AudioCodec::Opus), false) =
            (self.audio, frame.audio_codec(), frame.config)
        {
            self.write_audio(pt, Frequency::FORTY_EIGHT_KHZ, frame, now, out);
        }
    }

    /// The cached keyframe and the pictures since (the hub's snapshot),
    /// sent again at once at the current output time, for a peer that
    /// asked for a keyframe; live pictures up to the last of them are then
    /// skipped. False when there was nothing to send.
    pub fn replay(&mut self, snapshot: &[Frame], now: Instant, out: &mut Vec<Output>) -> bool {
        let Some(last) = snapshot.last().map(|f| f.timestamp) else {
            return false;
        };
        let ms = self.clock.last_video();
        for frame in snapshot {
            self.video(frame, Some(ms), now, out);
        }
        self.skip_video_through = Some(last);
        true
    }

    /// What this picture says of how the stream's pictures reach the player.
    fn plan(&self, frame: &Frame) -> Option<VideoPlan> {
        let codec = frame.video_codec()?;
        Some(VideoPlan::decide(
            codec,
            frame.reorders(),
            self.always_transcode,
            &self.video,
        ))
    }

    /// A picture or a sequence header; a picture sent again (`replay`)
    /// goes out at that output time instead of its own.
    fn video(&mut self, frame: &Frame, replay: Option<u64>, now: Instant, out: &mut Vec<Output>) {
        let Some(codec) = frame.video_codec() else { return };
        let fourcc = codec.fourcc();
        if codec != VideoCodec::Avc && self.bitstream.as_ref().map(Bitstream::fourcc) != fourcc {
            self.bitstream = fourcc.and_then(Bitstream::new);
        }
        if frame.config {
            match (codec, frame.data(), &mut self.bitstream) {
                (VideoCodec::Avc, Some(data), _) => match AvcConfig::parse(data) {
                    Ok(avc) => self.avc = Some(Arc::new(avc)),
                    Err(error) => tracing::warn!(%error, "bad AVC sequence header ignored"),
                },
                (_, Some(record), Some(bitstream)) => {
                    if let Err(error) = bitstream.configure(record) {
                        tracing::warn!(%error, "bad sequence start ignored");
                    }
                }
                _ => {}
            }
            // Flash Player marks its refresh points with a keyframe-flagged sequence header.
            if frame.keyframe && frame.enhanced.is_none() {
                self.need_keyframe = false;
            }
            return;
        }
        if self.need_keyframe && !frame.keyframe {
            return;
        }
        let (Some(pt), Some(data)) = (self.video.pt(codec), frame.data()) else {
            return;
        };
        let payload = match (codec, &self.avc, &self.bitstream) {
            // An access unit with no NAL unit (an end of sequence, lengths
            // that do not parse) has nothing to send.
            (VideoCodec::Avc, Some(avc), _) if avc.nal_units_with_parameter_sets(data).all(<[u8]>::is_empty) => return,
            (VideoCodec::Avc, Some(avc), _) => Payload::Avc {
                avcc: frame.payload.slice_ref(data),
                config: avc.clone(),
            },
            (VideoCodec::Avc, None, _) | (_, _, None) => return,
            (_, _, Some(bitstream)) => {
                // Room for the parameter sets a keyframe may get in front.
                let mut picture = Vec::with_capacity(data.len() + PARAMETER_SETS_ROOM);
                if let Err(error) = bitstream.frame(data, frame.keyframe, &mut picture) {
                    tracing::debug!(%error, "picture not sent");
                    return;
                }
                if picture.is_empty() {
                    return;
                }
                Payload::Picture(picture)
            }
        };
        // Pictures start once a keyframe could be sent.
        self.need_keyframe = false;
        let (ms, wallclock) = match replay {
            Some(ms) => (ms, self.clock.replay(Track::Video, ms, now)),
            None => self.clock.map(Track::Video, frame.timestamp, now),
        };
        let pts = (ms as i64 + i64::from(frame.composition_offset)).max(0) as u64;
        out.push(Output::Write(Write {
            kind: Kind::Video,
            pt,
            wallclock,
            time: MediaTime::new(pts * 90, Frequency::NINETY_KHZ),
            data: payload,
        }));
    }

    fn audio(&mut self, frame: &Frame, now: Instant, out: &mut Vec<Output>) {
        let (Some(codec), Some(audio)) = (frame.audio_codec(), self.audio) else {
            return;
        };
        let plan = match AudioPlan::decide(codec, audio) {
            AudioPlan::Pass(..) if self.opus_transcoded && codec == AudioCodec::Opus => AudioPlan::Transcode,
            plan => plan,
        };
        match plan {
            AudioPlan::Pass(pt, rate) => {
                if std::mem::take(&mut self.audio_transcoded) {
                    out.push(Output::StopAudioTranscoder);
                }
                if !frame.config {
                    self.write_audio(pt, rate, frame, now, out);
                }
            }
            AudioPlan::Transcode if !self.audio_transcoded => {
                // Transcoded once per stream; this player listens to the shared output.
                tracing::info!(codec = codec.name(), "audio transcoded to Opus");
                self.audio_transcoded = true;
                out.push(Output::TranscodeAudio);
            }
            AudioPlan::Transcode | AudioPlan::Drop => {}
        }
    }

    fn write_audio(&mut self, pt: Pt, rate: Frequency, frame: &Frame, now: Instant, out: &mut Vec<Output>) {
        let Some(data) = frame.data().filter(|d| !d.is_empty()) else {
            return;
        };
        if self.audio_muted {
            return;
        }
        let (ms, wallclock) = self.clock.map(Track::Audio, frame.timestamp, now);
        out.push(Output::Write(Write {
            kind: Kind::Audio,
            pt,
            wallclock,
            time: MediaTime::new(ms * u64::from(rate.get()) / 1000, rate),
            data: Payload::Sound(frame.payload.slice_ref(data)),
        }));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;

    const OPUS: Pt = Pt::new_with_value(111);
    const H264: Pt = Pt::new_with_value(102);
    const H264_ONLY: VideoOut = VideoOut {
        h264: Some(H264),
        hevc: None,
        av1: None,
        vp9: None,
        vp8: None,
    };
    const MS: Duration = Duration::from_millis(1);

    /// An AVC sequence header: SPS and PPS of a 320x240 Baseline stream.
    fn config(ts: u32) -> Frame {
        let mut body = vec![
            0x17, 0, 0, 0, 0, 1, 0x42, 0xC0, 0x1E, 0xFF, 0xE1, 0, 4, 0x67, 0x42, 0xC0, 0x1E, 1, 0, 2,
        ];
        body.extend_from_slice(&[0x68, 0xCE]);
        Frame::new(MediaKind::Video, ts, Bytes::from(body))
    }

    /// A picture: an IDR slice or a P slice, with a composition offset.
    fn picture(ts: u32, idr: bool, cts: u8) -> Frame {
        // The slice headers: first_mb 0, then slice_type I (IDR) or P.
        let (flag, nal, slice) = if idr { (0x17, 0x65, 0x88) } else { (0x27, 0x41, 0xC0) };
        Frame::new(
            MediaKind::Video,
            ts,
            Bytes::from(vec![flag, 1, 0, 0, cts, 0, 0, 0, 2, nal, slice]),
        )
    }

    fn opus(ts: u32) -> Frame {
        Frame::new(
            MediaKind::Audio,
            ts,
            Bytes::from(media::flv::opus_audio_body(&[0xFC, 0xFF])),
        )
    }

    fn aac(ts: u32) -> Frame {
        Frame::new(MediaKind::Audio, ts, Bytes::from_static(&[0xAF, 1, 0x21]))
    }

    fn core() -> PlayCore {
        let mut core = PlayCore::new(false);
        core.negotiated(Some(AudioOut::Opus(OPUS)), true, H264_ONLY);
        core
    }

    /// The writes' kinds and RTP times.
    fn written(out: &[Output]) -> Vec<(Kind, u64)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Write(w) => Some((w.kind, w.time.numer())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_late_joiner_starts_at_the_keyframe_with_parameter_sets() {
        let mut core = core();
        let (t0, mut out) = (Instant::now(), Vec::new());
        // Joined mid-GOP without a cache: inter pictures are held back.
        core.frame(&picture(0, false, 0), t0, &mut out);
        core.frame(&config(40), t0, &mut out);
        assert!(out.is_empty());
        core.frame(&picture(40, true, 0), t0 + 40 * MS, &mut out);
        core.frame(&picture(80, false, 0), t0 + 80 * MS, &mut out);
        assert_eq!(written(&out), [(Kind::Video, 40 * 90), (Kind::Video, 80 * 90)]);
        let Output::Write(idr) = &out[0] else { panic!() };
        assert_eq!(
            &idr.data.bytes()[..],
            [0, 0, 0, 1, 0x67, 0x42, 0xC0, 0x1E, 0, 0, 0, 1, 0x68, 0xCE, 0, 0, 0, 1, 0x65, 0x88],
            "SPS and PPS before the IDR, in Annex B"
        );
    }

    #[test]
    fn an_early_joiner_waits_for_the_sequence_header() {
        let mut core = core();
        let (t0, mut out) = (Instant::now(), Vec::new());
        // A keyframe before any sequence header cannot be framed: nothing sent.
        core.frame(&picture(0, true, 0), t0, &mut out);
        assert!(out.is_empty());
        core.frame(&config(40), t0, &mut out);
        // The sequence header is flagged as a keyframe: Flash Player's refresh point.
        core.frame(&picture(40, false, 0), t0, &mut out);
        core.frame(&picture(80, true, 0), t0, &mut out);
        assert_eq!(written(&out), [(Kind::Video, 40 * 90), (Kind::Video, 80 * 90)]);
    }

    #[test]
    fn b_frames_switch_the_player_to_the_transcoder_once() {
        let mut core = core();
        let (t0, mut out) = (Instant::now(), Vec::new());
        core.frame(&config(0), t0, &mut out);
        core.frame(&picture(0, true, 0), t0, &mut out);
        core.frame(&picture(40, false, 80), t0, &mut out);
        core.frame(&picture(80, false, 0), t0, &mut out);
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[1], Output::TranscodeVideo);
        assert!(core.video_transcoded());
        // From here the transcoder's pictures, from its IDR.
        out.clear();
        core.video_transcoder(Some(&config(80)), t0, &mut out);
        core.transcoded_video(&picture(120, false, 0), t0, &mut out);
        core.transcoded_video(&picture(160, true, 0), t0 + 160 * MS, &mut out);
        assert_eq!(written(&out), [(Kind::Video, 160 * 90)]);
    }

    /// An Enhanced RTMP VP9 tag: a SequenceStart, a keyframe or an inter frame.
    fn vp9(ts: u32, packet: &str) -> Frame {
        let first = match packet {
            "start" => 0x90,
            "key" => 0x91,
            _ => 0xA1,
        };
        let mut body = vec![first];
        body.extend_from_slice(b"vp09");
        body.extend_from_slice(if packet == "start" {
            &[0, 0x1f, 0x80, 2, 2, 2, 0, 0][..]
        } else {
            &[0x82, 0x49, 0x83]
        });
        Frame::new(MediaKind::Video, ts, Bytes::from(body))
    }

    #[test]
    fn vp9_passes_through_to_a_peer_that_took_it_else_is_transcoded() {
        let (t0, mut out) = (Instant::now(), Vec::new());
        let vp9_pt = Pt::new_with_value(98);
        let mut core = PlayCore::new(false);
        core.negotiated(
            None,
            true,
            VideoOut {
                vp9: Some(vp9_pt),
                ..H264_ONLY
            },
        );
        core.frame(&vp9(0, "inter"), t0, &mut out);
        core.frame(&vp9(0, "start"), t0, &mut out);
        assert!(out.is_empty(), "nothing before the keyframe");
        core.frame(&vp9(40, "key"), t0 + 40 * MS, &mut out);
        core.frame(&vp9(80, "inter"), t0 + 80 * MS, &mut out);
        assert_eq!(written(&out), [(Kind::Video, 40 * 90), (Kind::Video, 80 * 90)]);
        let Output::Write(key) = &out[0] else { panic!() };
        assert_eq!(
            (key.pt, &key.data.bytes()[..]),
            (vp9_pt, &[0x82, 0x49, 0x83][..]),
            "the frame as published"
        );
        assert!(!core.video_transcoded());

        let mut h264_only = core_with(H264_ONLY);
        out.clear();
        h264_only.frame(&vp9(0, "start"), t0, &mut out);
        assert_eq!(out, [Output::TranscodeVideo]);
    }

    fn core_with(video: VideoOut) -> PlayCore {
        let mut core = PlayCore::new(false);
        core.negotiated(Some(AudioOut::Opus(OPUS)), true, video);
        core
    }

    #[test]
    fn sound_passes_through_or_asks_for_the_transcoder() {
        let mut core = core();
        let (t0, mut out) = (Instant::now(), Vec::new());
        core.frame(&aac(0), t0, &mut out);
        core.frame(&aac(23), t0, &mut out);
        assert_eq!(out, [Output::TranscodeAudio], "asked once");
        out.clear();
        core.transcoded_audio(&opus(20), t0 + 20 * MS, &mut out);
        assert_eq!(written(&out), [(Kind::Audio, 20 * 48)]);
        out.clear();
        // A new publisher sends Opus: it passes through, the transcoder goes.
        core.frame(&opus(40), t0 + 40 * MS, &mut out);
        assert_eq!(out[0], Output::StopAudioTranscoder);
        assert_eq!(written(&out), [(Kind::Audio, 40 * 48)]);
        core.audio_muted = true;
        out.clear();
        core.frame(&opus(60), t0 + 60 * MS, &mut out);
        assert!(out.is_empty(), "muted");
    }

    #[test]
    fn video_without_a_video_line_asks_for_an_offer_and_then_starts_at_a_keyframe() {
        let mut core = PlayCore::new(false);
        core.negotiated(Some(AudioOut::Opus(OPUS)), false, VideoOut::default());
        let (t0, mut out) = (Instant::now(), Vec::new());
        core.frame(&config(0), t0, &mut out);
        assert_eq!(out, [Output::OfferVideo]);
        out.clear();
        core.negotiated(Some(AudioOut::Opus(OPUS)), true, H264_ONLY);
        // Live pictures mid-GOP are held back; the player answers the
        // renegotiation with the cached GOP (a keyframe request).
        core.frame(&picture(40, false, 0), t0, &mut out);
        assert!(out.is_empty());
        assert!(core.replay(&[config(0), picture(0, true, 0), picture(40, false, 0)], t0, &mut out));
        core.frame(&picture(80, false, 0), t0 + 80 * MS, &mut out);
        assert_eq!(
            written(&out),
            [(Kind::Video, 0), (Kind::Video, 0), (Kind::Video, 80 * 90)]
        );
    }

    #[test]
    fn a_keyframe_request_replays_the_cache_at_the_current_time_and_skips_what_it_sent() {
        let mut core = core();
        let (t0, mut out) = (Instant::now(), Vec::new());
        core.frame(&config(0), t0, &mut out);
        core.frame(&picture(0, true, 0), t0, &mut out);
        core.frame(&picture(40, false, 0), t0 + 40 * MS, &mut out);
        out.clear();
        let snapshot = [config(0), picture(0, true, 0), picture(40, false, 0)];
        assert!(core.replay(&snapshot, t0 + 50 * MS, &mut out));
        assert_eq!(
            written(&out),
            [(Kind::Video, 40 * 90), (Kind::Video, 40 * 90)],
            "at the last output time"
        );
        out.clear();
        core.frame(&picture(40, false, 0), t0 + 60 * MS, &mut out);
        assert!(out.is_empty(), "already sent");
        core.frame(&picture(80, false, 0), t0 + 80 * MS, &mut out);
        assert_eq!(written(&out), [(Kind::Video, 80 * 90)]);
        assert!(!core.replay(&[], t0, &mut out));
    }

    #[test]
    fn a_new_publisher_continues_the_rtp_clock() {
        let mut core = core();
        let (t0, mut out) = (Instant::now(), Vec::new());
        core.frame(&opus(10_000), t0, &mut out);
        core.publication(false);
        core.publication(true);
        core.frame(&opus(0), t0 + 500 * MS, &mut out);
        assert_eq!(written(&out), [(Kind::Audio, 10_000 * 48), (Kind::Audio, 10_020 * 48)]);
    }
}
