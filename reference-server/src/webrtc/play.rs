//! A WebRTC player of a hub stream.
//!
//! The answer offers only the media the stream has (known issue 1): the codec
//! configuration of the `Rtc` holds Opus (and G.711 when the stream carries it)
//! only if the stream has audio, and H.264 with the stream's own profile only
//! if it has video, so str0m rejects (port 0) an m-line nothing matches.
//!
//! Once the peer is connected the player subscribes to the hub and starts at
//! the cached keyframe, never with inter frames. H.264 video passes through
//! (SPS/PPS before every IDR, in RTP payloads the stream's players share:
//! [`super::packets`]) when it can; Sorenson Spark,
//! H.264 with B-frames (which WebRTC decoders show out of order), a size or
//! bitrate the player asked for (`width`, `height`, `bitrate` parameters)
//! and apps with `avoid_transcoding = false` get the output of a shared
//! video transcoder instead: Constrained Baseline H.264, whose IDRs answer
//! the player's PLIs. Audio is Opus transcoded once per stream
//! (shared with every player), or passes through when it already is Opus or is
//! G.711 the peer accepts. RTP timestamps follow the RTMP timestamps on one
//! clock, so sender reports tie audio and video together.

use std::cell::Cell;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use codecs::VideoSettings;
use media::flv::{AudioCodec, VideoCodec};
use media::h264::AvcConfig;
use media::rtmp::url::Params;
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::{Codec, FormatParams};
use str0m::media::{Frequency, MediaKind as RtcKind, Mid};
use str0m::rtp::{Extension, ExtensionMap, RtpWrite, Ssrc};
use str0m::{Rtc, RtcConfig};

use super::packets;
use super::plan::{AudioOut, VideoOut, VideoPlan};
use super::play_core::{Output, Payload, PlayCore, Write};
use super::send::{self, Sender};
use super::srtp::SessionKeys;
use super::{OfferSink, SessionStatus};
use crate::config::Quirks;
use crate::hub::{Frame, Seat, Selection, StreamDescription, Subscription, Tracks};
use crate::server::Context;
use crate::transcode::{Doorbell, Target, Transcoded};

/// Payload types of the H.264 we offer (and its retransmissions).
const H264_PT: u8 = 102;
const H264_RTX_PT: u8 = 103;
/// The H.264 payload type in single NAL unit mode, offered only with the
/// quirk `single_nal_mode_accepted`.
const H264_SINGLE_NAL_PT: u8 = 104;
/// What a player is answered with while the stream's H.264 is not known
/// yet: payload type, its RTX, profile-level-id (Baseline, Constrained
/// Baseline, Main and High, level 3.1).
const UNKNOWN_H264: [(u8, u8, u32); 4] = [
    (127, 121, 0x42001f),
    (108, 109, 0x42e01f),
    (123, 119, 0x4d001f),
    (114, 115, 0x64001f),
];
/// Payload types of the HEVC we offer (str0m's own default is H.264's here).
const H265_PT: u8 = 106;
const H265_RTX_PT: u8 = 107;
/// Payload types of the VP9 (profile 0) we offer.
const VP9_PT: u8 = 98;
const VP9_RTX_PT: u8 = 99;
/// The `profile-level-id` of what the video transcoder makes: Constrained
/// Baseline, level 3.1 (720p at 30 frames per second).
const TRANSCODED_PROFILE_LEVEL_ID: u32 = 0x42e01f;

/// What a player asked of its video with the `width`, `height` (the most
/// pixels it wants) and `bitrate` (kbit/s) parameters of its stream name;
/// `None` when it asked nothing. A value that is not a positive number is
/// an error naming it.
pub fn video_request(params: &Params) -> Result<Option<VideoSettings>, String> {
    let number = |key: &str, max: u32| -> Result<Option<u32>, String> {
        match params.get(key) {
            None => Ok(None),
            Some(value) => match value.parse::<u32>() {
                Ok(n) if (1..=max).contains(&n) => Ok(Some(n)),
                _ => Err(format!(
                    "parameter {key}={}: a number from 1 to {max} expected",
                    crate::text::Clipped(value)
                )),
            },
        }
    };
    let (width, height) = (number("width", 7680)?, number("height", 4320)?);
    let bitrate = number("bitrate", 100_000)?;
    if width.is_none() && height.is_none() && bitrate.is_none() {
        return Ok(None);
    }
    Ok(Some(VideoSettings {
        max_width: width.map(|w| w as u16),
        max_height: height.map(|h| h as u16),
        bitrate: bitrate.map(|kbps| kbps * 1000),
    }))
}

/// How long after a publish started a player's answer may wait to learn
/// which tracks the stream has (see [`undecided`]).
#[derive(Clone, Copy, Debug)]
pub struct TrackWaits {
    /// For video: a Flash camera starts up to a few seconds after the microphone.
    pub video: Duration,
    /// For sound: encoders interleave it with the first pictures, so the
    /// wait is short; a video-only stream is not held up for long.
    pub audio: Duration,
}

/// Until when the answer to a player of `stream` should wait to learn
/// whether the stream has video and sound; `None` to answer now. It waits
/// while a track has not arrived, the metadata (if any) does not say
/// whether it comes, and less than its wait has passed since the publish
/// started. The earliest deadline still ahead is returned: the caller
/// asks again when it passes or when anything arrives.
pub fn undecided(stream: &StreamDescription, waits: TrackWaits, now: Instant) -> Option<Instant> {
    let announced = stream.announced.unwrap_or_default();
    let deadline = |arrived: bool, announced: Option<bool>, wait: Duration| {
        let deadline = stream.published_at + wait;
        (!arrived && announced.is_none() && deadline > now).then_some(deadline)
    };
    let video = deadline(stream.has_video, announced.video, waits.video);
    let audio = deadline(stream.has_audio, announced.audio, waits.audio);
    video.into_iter().chain(audio).min()
}

/// The RTP header extensions a player's answer may take: str0m's standard
/// set without the two that only feed a sender's bandwidth estimation
/// (transport-wide sequence numbers, whose per-packet register and the
/// browser's feedback cost every viewer memory and CPU, and
/// abs-send-time). The server forwards a stream at the rate it is
/// published, so it has nothing to estimate.
fn player_extensions() -> ExtensionMap {
    let mut map = ExtensionMap::empty();
    for (id, extension) in [
        (1, Extension::AudioLevel),
        (4, Extension::RtpMid),
        (10, Extension::RtpStreamId),
        (11, Extension::RepairedRtpStreamId),
        (13, Extension::VideoOrientation),
    ] {
        map.set(id, extension);
    }
    map
}

/// What a player's `Rtc` will accept for a stream.
pub struct Answerable {
    /// The codec configuration.
    pub config: RtcConfig,
    /// A phrase naming what is accepted, for errors.
    pub plan: String,
    /// Whether audio is accepted.
    pub audio: bool,
    /// Whether video is accepted.
    pub video: bool,
}

/// Adds H.264 of `profile_level_id` in packetization mode 1 (mode 0 too
/// with the quirk `single_nal_mode_accepted`).
fn add_h264(config: &mut RtcConfig, profile_level_id: u32, quirks: &Quirks) {
    let codecs = config.codec_config();
    codecs.add_h264(H264_PT.into(), Some(H264_RTX_PT.into()), true, profile_level_id);
    if quirks.single_nal_mode_accepted {
        codecs.add_h264(H264_SINGLE_NAL_PT.into(), None, false, profile_level_id);
    }
}

/// The codecs a player's `Rtc` accepts for this stream, and a phrase naming
/// them for errors. `None` (not live yet) accepts audio and H.264 video; so
/// does a stream that has sent nothing yet. A track the metadata announces
/// counts as sent (unless the `answer_only_tracks_sent` quirk is on). With
/// `transcoded`, the video is the transcoder's Constrained Baseline H.264
/// whatever the stream's own. A stream in HEVC, AV1, VP9 or VP8 is accepted
/// in its own codec (passed through to a peer that offered it) and as
/// transcoded H.264 (for a peer that did not).
pub fn codecs(stream: Option<&StreamDescription>, transcoded: bool, quirks: &Quirks) -> Answerable {
    let mut config = Rtc::builder().clear_codecs().set_extension_map(player_extensions());
    let mut plan = Vec::new();
    let announced = |track: fn(&media::flv::MetadataTracks) -> Option<bool>| {
        !quirks.answer_only_tracks_sent && stream.and_then(|s| s.announced.as_ref()).and_then(track) == Some(true)
    };
    let (audio, video) = match stream {
        Some(s) if s.has_audio || s.has_video => (
            s.has_audio || announced(|a| a.audio),
            s.has_video || announced(|a| a.video),
        ),
        _ => (true, true),
    };
    if audio {
        // Preference order: G.711 passes through when the stream has it.
        match stream.and_then(|s| s.audio_codec) {
            Some(AudioCodec::G711A) => config = config.enable_pcma(true, false),
            Some(AudioCodec::G711U) => config = config.enable_pcmu(true, false),
            _ => {}
        }
        config = config.enable_opus(true, false);
        plan.push("Opus audio".to_string());
    }
    if video {
        let codec = stream.and_then(|s| s.video_codec);
        let record = stream.and_then(|s| s.video_config.as_deref());
        let known = stream.and_then(|s| {
            Some(VideoPlan::decide(
                s.video_codec?,
                s.video_reorders,
                transcoded,
                &VideoOut::ALL,
            ))
        });
        let transcode = known == Some(VideoPlan::Transcode) || (known.is_none() && transcoded);
        let add_transcoded = |config: &mut RtcConfig, plan: &mut Vec<String>| {
            add_h264(config, TRANSCODED_PROFILE_LEVEL_ID, quirks);
            plan.push(format!(
                "H.264 profile-level-id {TRANSCODED_PROFILE_LEVEL_ID:06x} (transcoded)"
            ));
        };
        match (known, codec) {
            _ if transcode => add_transcoded(&mut config, &mut plan),
            // Video neither H.264 nor anything decodable (VP6, screen video) cannot be played.
            (Some(VideoPlan::Unplayable), _) => {
                plan.push("no video (the stream's codec is neither H.264 nor one the server decodes)".to_string())
            }
            (_, Some(VideoCodec::Avc) | None) => match record.map(AvcConfig::parse) {
                Some(Ok(avc)) => {
                    add_h264(&mut config, avc.profile_level_id(), quirks);
                    plan.push(format!("H.264 profile-level-id {:06x}", avc.profile_level_id()));
                }
                // Not known yet: the H.264 profiles browsers offer, in
                // packetization mode 1 only (the pictures will need FU-A);
                // the stream is expected to fit.
                _ if stream.is_none_or(|s| !s.has_video) => {
                    for (pt, rtx, profile) in UNKNOWN_H264 {
                        config
                            .codec_config()
                            .add_h264(pt.into(), Some(rtx.into()), true, profile);
                    }
                    plan.push("H.264 video".to_string());
                }
                _ => plan.push("no video (the stream's H.264 has no sequence header yet)".to_string()),
            },
            (_, Some(codec)) => {
                let native = Some(config.clone())
                    .filter(|_| !quirks.enhanced_video_transcoded)
                    .and_then(|config| native(config, codec, record));
                if let Some(native) = native {
                    config = native;
                    plan.push(format!("{} as published", codec.name()));
                }
                add_transcoded(&mut config, &mut plan);
            }
        }
    }
    let video = plan
        .iter()
        .any(|p| p.starts_with("H.264") || p.ends_with("as published"));
    Answerable {
        config,
        plan: plan.join(", "),
        audio,
        video,
    }
}

/// `config` accepting the Enhanced RTMP `codec` as it is published, when
/// the stream's configuration `record` says it fits what the codec's SDP
/// names: HEVC in the Main or Main 10 profile at the record's tier and
/// level; AV1 in profile 0 (Main: 8 or 10-bit 4:2:0) and VP9 in profile 0
/// (8-bit 4:2:0), what their SDP means without a `profile` parameter; VP8.
/// `None` when it does not, or the record does not say (the player gets
/// H.264).
fn native(config: RtcConfig, codec: VideoCodec, record: Option<&[u8]>) -> Option<RtcConfig> {
    use media::eflv::bitstream::{hevc_profile_tier_level, profile};
    let fourcc = codec.fourcc()?;
    let profile_0 = record.and_then(|r| profile(fourcc, r)) == Some(0);
    match codec {
        VideoCodec::Hevc => {
            let (profile, tier, level) = record
                .and_then(hevc_profile_tier_level)
                .filter(|&(profile, _, level)| matches!(profile, 1 | 2) && level > 0)?;
            let mut config = config;
            config
                .codec_config()
                .add_h265(H265_PT.into(), Some(H265_RTX_PT.into()), profile, tier, level);
            Some(config)
        }
        VideoCodec::Av1 if profile_0 => Some(config.enable_av1(true)),
        VideoCodec::Vp9 if profile_0 => {
            let mut config = config;
            config.codec_config().add_config(
                VP9_PT.into(),
                Some(VP9_RTX_PT.into()),
                Codec::Vp9,
                Frequency::NINETY_KHZ,
                None,
                FormatParams {
                    profile_id: Some(0),
                    ..FormatParams::default()
                },
            );
            Some(config)
        }
        VideoCodec::Vp8 => Some(config.enable_vp8(true)),
        _ => None,
    }
}

/// `offer` with its video m-lines declined by the offerer (port 0, out of
/// the BUNDLE group), so that an `Rtc` whose codecs include H.264 (to offer
/// video later, by renegotiation) still answers them rejected.
pub fn decline_video(offer: &str) -> String {
    let mut video_mids = Vec::new();
    let mut in_video = false;
    for line in offer.lines() {
        if line.starts_with("m=") {
            in_video = line.starts_with("m=video ");
        } else if let (true, Some(mid)) = (in_video, line.trim_end().strip_prefix("a=mid:")) {
            video_mids.push(mid.to_string());
        }
    }
    let mut out = String::with_capacity(offer.len());
    for line in offer.split_inclusive('\n') {
        let (text, ending) = match line.strip_suffix("\r\n") {
            Some(text) => (text, "\r\n"),
            None => line.strip_suffix('\n').map_or((line, ""), |text| (text, "\n")),
        };
        if let Some(rest) = text.strip_prefix("m=video ") {
            let rest = rest.split_once(' ').map_or("", |(_, rest)| rest);
            out.push_str(&format!("m=video 0 {rest}{ending}"));
        } else if let Some(group) = text.strip_prefix("a=group:BUNDLE") {
            let kept: Vec<&str> = group
                .split_whitespace()
                .filter(|m| !video_mids.iter().any(|v| v == m))
                .collect();
            out.push_str(&format!("a=group:BUNDLE {}{ending}", kept.join(" ")));
        } else {
            out.push_str(line);
        }
    }
    out
}

/// Media or news for a player's peer.
pub enum PlayerInput {
    /// A frame of the stream.
    Frame(Frame),
    /// An Opus frame from the stream's transcoder.
    Transcoded(Frame),
    /// An H.264 frame from the stream's video transcoder.
    TranscodedVideo(Frame),
    /// The stream got (true) or lost (false) its publisher.
    Publication(bool),
    /// The peer's SDP answer to the offer the player sent.
    Answer(String),
}

thread_local! {
    /// The output queues of the players handled on this thread, each in
    /// turn ([`Player::handle`]): warm in the cache, where queues of each
    /// player's own would not be.
    static QUEUES: Cell<[Vec<Output>; 2]> = const { Cell::new([Vec::new(), Vec::new()]) };
}

/// A WebRTC player.
pub struct Player {
    ctx: Arc<Context>,
    app: String,
    stream: String,
    /// The tracks of a multitrack stream it plays.
    selection: Selection,
    audio_mid: Option<Mid>,
    video_mid: Option<Mid>,
    /// The media decisions.
    core: PlayCore,
    /// What the core asks for, and what is being carried out (reused).
    out: Vec<Output>,
    /// The RTP payloads its stream's players share.
    packets: Arc<packets::Shared>,
    /// The extended sequence numbers last sent on the audio and video
    /// m-lines (the RTP sequence number and the SRTP rollover counter).
    audio_seq: u64,
    video_seq: u64,
    /// The SSRCs str0m sends the audio and video m-lines with, once
    /// looked up: a lookup by SSRC is a hash, by mid a walk of every stream.
    audio_ssrc: Option<Ssrc>,
    video_ssrc: Option<Ssrc>,
    /// H.264 goes out in the stream's shared packets: H.264 is the only
    /// video codec the peer took.
    video_shared: bool,
    carrying: Vec<Output>,
    /// The hub subscription, from the peer's connection until it is handed
    /// to the stream's fan-out, which delivers its frames from then on.
    subscription: Option<Subscription>,
    /// Its place in the stream's fan-out.
    seat: Arc<Seat>,
    /// It subscribed: its peer connected to a live stream.
    subscribed: bool,
    /// Whether the subscription delivers the stream's sound (not while
    /// it is transcoded: only a change of codec matters then).
    takes_sound: bool,
    /// Rung by the transcoders it plays after each frame they send.
    doorbell: Option<Weak<dyn Doorbell>>,
    transcoded: Option<Transcoded>,
    /// The video transcoder's output this player plays, once it needs one.
    transcoded_video: Option<Transcoded>,
    /// What that transcoder makes.
    video_settings: VideoSettings,
    last_keyframe_request: Option<Instant>,
    /// The video track it started with.
    first_video_track: Option<u8>,
    /// Its video m-line's index among the answer's m-lines.
    pub video_line: Option<usize>,
    /// Where an offer adding video goes, when the signalling can renegotiate
    /// and the answer had no video; taken when the offer is sent.
    offers: Option<OfferSink>,
    /// The offer sent, waiting for its answer, and the mid it adds.
    pending: Option<(SdpPendingOffer, Mid)>,
    /// The server's own send path, once the session's keys are known and
    /// it may take them ([`Player::send_own`]).
    own: Option<Sender>,
    /// Video goes through `own` too (its packets are the stream's shared ones).
    video_own: bool,
}

impl Player {
    /// Asks for the lines a delivery reads of the player at `at` (see
    /// [`crate::prefetch`]).
    pub fn prefetch_at(at: usize) {
        use std::mem::{offset_of, size_of};
        let core = offset_of!(Player, core);
        crate::prefetch::bytes(at, core, core + size_of::<PlayCore>());
        crate::prefetch::fields(
            at,
            [
                offset_of!(Player, transcoded),
                offset_of!(Player, transcoded_video),
                offset_of!(Player, doorbell),
                offset_of!(Player, out),
                offset_of!(Player, carrying),
                offset_of!(Player, audio_ssrc),
                offset_of!(Player, audio_seq),
                offset_of!(Player, video_seq),
                offset_of!(Player, ctx),
                offset_of!(Player, video_own),
            ],
        );
        // An `Option<Sender>` is laid out as the `Sender` (its niche says
        // `None`); were it not, this would ask for the wrong lines, nothing worse.
        Sender::prefetch_at(at + offset_of!(Player, own));
    }

    /// A player of `stream` in `app` (of the tracks `selection` names, if
    /// it is multitrack), waiting for its peer to connect. `video` is what
    /// it asked of its video (see [`video_request`]); with
    /// `always_transcode` the video goes through a transcoder even when it
    /// could pass through.
    pub fn new(
        ctx: Arc<Context>,
        app: &str,
        stream: &str,
        selection: Selection,
        video: Option<VideoSettings>,
        always_transcode: bool,
    ) -> Player {
        let mut core = PlayCore::new(always_transcode || video.is_some());
        core.opus_transcoded = ctx.config.quirks.opus_transcoded;
        core.clock.wrap_ignored = ctx.config.quirks.timestamp_wrap_ignored;
        // Sequence numbers start at random (RFC 3550, section 5.1) with a
        // rollover counter of 0, which receivers assume (RFC 3711, section
        // 3.3.1); below 2^15, the first wrap is far from the first packet.
        let first_seq = || u64::from(rand::random::<u16>() >> 1);
        Player {
            own: None,
            video_own: false,
            packets: ctx.webrtc.packets.of(app, stream),
            audio_seq: first_seq(),
            video_seq: first_seq(),
            audio_ssrc: None,
            video_ssrc: None,
            video_shared: false,
            ctx,
            app: app.to_string(),
            stream: stream.to_string(),
            selection,
            audio_mid: None,
            video_mid: None,
            core,
            out: Vec::new(),
            carrying: Vec::new(),
            subscription: None,
            seat: Arc::default(),
            subscribed: false,
            takes_sound: true,
            doorbell: None,
            transcoded: None,
            transcoded_video: None,
            video_settings: video.unwrap_or(VideoSettings {
                max_width: None,
                max_height: None,
                bitrate: None,
            }),
            last_keyframe_request: None,
            first_video_track: selection.video,
            video_line: None,
            offers: None,
            pending: None,
        }
    }

    /// Whether a known bug switched back on drops this frame (Speex, or a
    /// WebRTC publisher's Opus, never reaching the player).
    fn quirk_drops(&self, frame: &Frame) -> bool {
        let quirks = &self.ctx.config.quirks;
        match frame.audio_codec() {
            Some(AudioCodec::Speex) => quirks.speex_dropped,
            Some(AudioCodec::Opus) => quirks.webrtc_opus_not_forwarded,
            _ => false,
        }
    }

    /// Offers video by renegotiation through `offers` when it appears, the
    /// answer having had none.
    pub fn renegotiate_with(&mut self, offers: OfferSink) {
        self.offers = Some(offers);
    }

    /// Sends no audio from now on (true), or sends it again (false); see
    /// [`SessionHandle::mute_audio`](super::SessionHandle::mute_audio).
    pub fn mute_audio(&mut self, muted: bool) {
        self.core.audio_muted = muted;
    }

    /// Plays video track `asked` (`None`: the one it started with) from
    /// now on, starting at its cached keyframe (or, for a transcoded player,
    /// at the next picture of its track's transcoder); see
    /// [`SessionHandle::select_video_track`](super::SessionHandle::select_video_track).
    pub fn select_video_track(&mut self, rtc: &mut Rtc, asked: Option<u8>, now: Instant) {
        let track = asked.or(self.first_video_track);
        if track == self.selection.video {
            return;
        }
        tracing::info!(from = ?self.selection.video, to = ?track, "video track switched");
        self.selection.video = track;
        if !self.subscribed {
            return; // it subscribes to that track
        }
        if let Some(subscription) = &mut self.subscription {
            subscription.select(self.selection);
        }
        let selection = self.selection;
        let pick =
            |frames: Vec<Frame>| -> Vec<Frame> { frames.into_iter().filter_map(|f| selection.pick(f)).collect() };
        let snapshot = pick(self.ctx.hub.keyframe_snapshot(&self.app, &self.stream));
        // The track's sequence header, even when no group of pictures is cached.
        let configs = pick(self.ctx.hub.video_configs(&self.app, &self.stream));
        self.core.switch_track();
        match configs.iter().chain(&snapshot).find(|f| !f.config) {
            // Already transcoding: the new track's transcoder.
            _ if self.core.video_transcoded() => self.out.push(Output::TranscodeVideo),
            // A codec the player did not take: the core starts transcoding.
            Some(picture) if self.core.transcodes(picture) => self.core.frame(picture, now, &mut self.out),
            _ if snapshot.iter().any(|f| f.keyframe && !f.config) => {
                self.core.replay(&snapshot, now, &mut self.out);
            }
            // No cached keyframe of that track: its header now, its
            // pictures from its next keyframe (asked for, where the
            // publisher can make one).
            _ => {
                self.core.replay(&configs, now, &mut self.out);
                self.ctx.hub.request_keyframe(&self.app, &self.stream);
            }
        }
        self.carry_out(rtc, now);
    }

    /// An m-line of the offer.
    pub fn media_added(&mut self, mid: Mid, kind: RtcKind) {
        match kind {
            RtcKind::Audio => self.audio_mid = self.audio_mid.or(Some(mid)),
            RtcKind::Video => self.video_mid = self.video_mid.or(Some(mid)),
        }
    }

    /// ICE and DTLS are up: pick the negotiated payload types and start.
    pub fn connected(&mut self, rtc: &mut Rtc, keys: Option<SessionKeys>) -> Option<SessionStatus> {
        self.payload_types(rtc);
        if let Some(keys) = keys {
            self.send_own(rtc, &keys);
        }
        if let (Some(mid), false) = (self.video_mid, self.video_own) {
            self.keep_for_resends(rtc, mid);
        }
        let mut subscription = self.ctx.hub.subscribe(&self.app, &self.stream, true, Tracks::All)?;
        self.subscribed = true;
        subscription.count_as_viewer();
        subscription.select(self.selection);
        self.ctx.metrics.plays_total.inc();
        let live = subscription.is_live();
        // The cached frames come from `next` like live ones, one at a time,
        // each sent before the next is written: str0m's send queue holds a
        // frame, not the whole cached group of pictures (its queue keeps
        // the room it once grew to).
        self.subscription = Some(subscription);
        live.then_some(SessionStatus::Playing)
    }

    /// The video m-line an answer added is up: video starts at once from
    /// the cached keyframe, and the publisher is asked for a new one.
    fn renegotiated(&mut self, rtc: &mut Rtc, mid: Mid, now: Instant) {
        self.media_added(mid, RtcKind::Video);
        let video = self.payload_types(rtc).1;
        self.video_own = false;
        if let Some(own) = &mut self.own {
            match (self.video_shared, own_track(rtc, mid)) {
                (true, Some(track)) => {
                    own.track(send::Kind::Video, track);
                    self.video_own = true;
                }
                // Not offered by the server's own renegotiation (H.264
                // only); were it so, str0m would send the pictures, and no
                // sender report for them (str0m's RTCP is not sent beside
                // the own path's).
                _ => tracing::warn!("video through str0m beside the own send path: no sender reports for it"),
            }
        }
        if !self.video_own {
            self.keep_for_resends(rtc, mid);
        }
        if video.any() {
            tracing::info!("video added by renegotiation");
            self.last_keyframe_request = None;
            self.keyframe_request(rtc, mid, now);
        }
    }

    /// Starts the server's own send path ([`super::send`]) with the
    /// session's `keys`, if the configuration lets it: sound, and pictures
    /// sent as the stream's shared packets, go through it from now on;
    /// pictures str0m packetizes stay with str0m (each SSRC is sent by one
    /// of them only).
    fn send_own(&mut self, rtc: &mut Rtc, keys: &SessionKeys) {
        let config = &self.ctx.config;
        if !config.webrtc.own_send_path {
            return;
        }
        if self.video_mid.is_some() && !self.video_shared {
            tracing::debug!("video str0m packetizes: str0m sends the session");
            return;
        }
        let cname = [self.audio_mid, self.video_mid]
            .into_iter()
            .flatten()
            .find_map(|mid| rtc.media(mid).map(|media| media.cname().to_string()))
            .unwrap_or_default();
        let settings = send::Settings {
            cname,
            resend_packets: config.webrtc.resend_packets,
            resend_window: config.webrtc.resend_window,
            withhold_reports: config.quirks.sender_reports_withheld,
            withhold_resends: config.quirks.retransmissions_withheld,
        };
        let mut own = Sender::new(keys, settings, Instant::now());
        // Every track is declared before anything is sent: from now on str0m
        // sends nothing on their SSRCs (`Sender::owns`).
        for (kind, mid) in [(send::Kind::Audio, self.audio_mid), (send::Kind::Video, self.video_mid)] {
            let Some(mid) = mid else { continue };
            let Some(track) = own_track(rtc, mid) else {
                tracing::debug!(%mid, "no stream to send on: str0m sends the session");
                return;
            };
            own.track(kind, track);
        }
        self.video_own = self.video_mid.is_some();
        self.own = Some(own);
        tracing::debug!("own send path");
    }

    /// Whether str0m sends any of the player's media (and must have its
    /// time moved on as frames are written).
    pub fn str0m_sends(&self) -> bool {
        self.own.is_none() || (self.video_mid.is_some() && !self.video_own)
    }

    /// The own send path, if the player has one.
    pub fn own(&mut self) -> Option<&mut Sender> {
        self.own.as_mut()
    }

    /// Hands the own send path (if any) an SRTCP datagram from the peer:
    /// it answers NACKs from the stream's recent frames.
    pub fn feedback(&mut self, datagram: &[u8], now: Instant) {
        if let Some(own) = &mut self.own {
            own.feedback(datagram, &self.packets, now);
        }
    }

    /// Sizes the resend history of the video stream `mid` before its first
    /// packet: `webrtc.resend_packets` at most, each kept
    /// `webrtc.resend_window` (str0m keeps 3 s, and its history grows to
    /// hold them). Sound is not resent, so its history stays empty.
    fn keep_for_resends(&self, rtc: &mut Rtc, mid: Mid) {
        let config = &self.ctx.config.webrtc;
        if let Some(stream) = rtc.direct_api().stream_tx_by_mid(mid, None) {
            // 0.15: str0m's default cap on the share of resends in what is sent.
            stream.set_rtx_cache(config.resend_packets.max(1), config.resend_window, Some(0.15));
        }
    }

    /// Picks the payload types the answer gave each kind of media, for
    /// the core; returns them.
    fn payload_types(&mut self, rtc: &mut Rtc) -> (Option<AudioOut>, VideoOut) {
        let audio = self.audio_mid.and_then(|mid| {
            let writer = rtc.writer(mid)?;
            let params: Vec<_> = writer.payload_params().map(|p| (p.spec().codec, p.pt())).collect();
            params.into_iter().find_map(|(codec, pt)| match codec {
                Codec::Opus => Some(AudioOut::Opus(pt)),
                Codec::PCMA => Some(AudioOut::Pcma(pt)),
                Codec::PCMU => Some(AudioOut::Pcmu(pt)),
                _ => None,
            })
        });
        let mut video = VideoOut::default();
        // Fragmented pictures (FU-A) need packetization mode 1 (RFC 6184,
        // section 6.2), unless a quirk sends them in mode 0 anyway.
        let single_nal_too = self.ctx.config.quirks.single_nal_mode_accepted;
        if let Some(writer) = self.video_mid.and_then(|mid| rtc.writer(mid)) {
            for params in writer.payload_params() {
                let mode = params.spec().format.packetization_mode;
                let slot = match params.spec().codec {
                    Codec::H264 if mode == Some(1) || single_nal_too => &mut video.h264,
                    Codec::H265 => &mut video.hevc,
                    Codec::Av1 => &mut video.av1,
                    Codec::Vp9 if params.spec().format.profile_id.unwrap_or(0) == 0 => &mut video.vp9,
                    Codec::Vp8 => &mut video.vp8,
                    _ => continue,
                };
                slot.get_or_insert(params.pt());
            }
        }
        if let (Some(mid), false) = (self.video_mid, video.any()) {
            let offered: Vec<String> = rtc
                .writer(mid)
                .map(|w| w.payload_params().map(|p| format!("{:?}", p.spec())).collect())
                .unwrap_or_default();
            tracing::warn!(%mid, ?offered, "no payload type to send video with");
        }
        tracing::info!(?audio, ?video, "payload types");
        // Sequence numbers of a line are either str0m's (its packetizer)
        // or the player's (shared packets), never both: a peer that took
        // another codec beside H.264 gets H.264 through str0m's packetizer.
        self.video_shared = video
            == VideoOut {
                h264: video.h264,
                ..VideoOut::default()
            };
        self.core.negotiated(audio, self.video_mid.is_some(), video);
        (audio, video)
    }

    /// Sends the peer an offer that adds a video m-line (once).
    fn offer_video(&mut self, rtc: &mut Rtc) {
        let Some(offers) = self.offers.take() else { return };
        let mut api = rtc.sdp_api();
        let mid = api.add_media(RtcKind::Video, str0m::media::Direction::SendOnly, None, None, None);
        let Some((offer, pending)) = api.apply() else { return };
        tracing::info!(%mid, "video appeared: offered to the peer by renegotiation");
        self.pending = Some((pending, mid));
        let _ = offers.send(offer.to_sdp_string());
    }

    /// The peer's answer to [`Player::offer_video`].
    fn answer(&mut self, rtc: &mut Rtc, sdp: &str, now: Instant) {
        let Some((pending, mid)) = self.pending.take() else {
            tracing::info!("an answer nobody asked for: ignored");
            return;
        };
        let accepted = SdpAnswer::from_sdp_string(sdp)
            .map_err(|e| e.to_string())
            .and_then(|answer| rtc.sdp_api().accept_answer(pending, answer).map_err(|e| e.to_string()));
        match accepted {
            // str0m announces no MediaAdded for an m-line of its own offer.
            Ok(()) => self.renegotiated(rtc, mid, now),
            Err(error) => tracing::warn!(%error, "the peer's answer to the video offer was refused"),
        }
    }

    /// Has `doorbell` rung by the transcoders it will play, after each
    /// frame they send.
    pub fn ring_with(&mut self, doorbell: Weak<dyn Doorbell>) {
        self.doorbell = Some(doorbell);
    }

    /// Its place in the stream's fan-out.
    pub fn seat(&self) -> Arc<Seat> {
        self.seat.clone()
    }

    /// Whether it holds a subscription not yet handed to the fan-out.
    pub fn undriven(&self) -> bool {
        self.subscription.is_some()
    }

    /// The subscription to hand to the stream's fan-out, and the seat to
    /// hand it to (see [`Subscription::drive`]).
    pub fn take_undriven(&mut self) -> Option<(Subscription, Arc<Seat>)> {
        Some((self.subscription.take()?, self.seat.clone()))
    }

    /// Makes the driven `subscription` deliver what the player now wants:
    /// its tracks, and the stream's sound unless it is transcoded.
    pub fn adjust(&self, subscription: &mut Subscription) {
        subscription.select(self.selection);
        subscription.take_sound(self.takes_sound);
    }

    /// Plays what its transcoders sent since it last looked.
    pub fn take_transcoded(&mut self, rtc: &mut Rtc, now: Instant) -> Option<SessionStatus> {
        while let Some(frame) = self.transcoded.as_mut().and_then(Transcoded::try_recv) {
            self.handle(rtc, PlayerInput::Transcoded(frame), now);
        }
        while let Some(frame) = self.transcoded_video.as_mut().and_then(Transcoded::try_recv) {
            self.handle(rtc, PlayerInput::TranscodedVideo(frame), now);
        }
        None
    }

    /// Acts, at `now`, on a frame or news for the player.
    pub fn handle(&mut self, rtc: &mut Rtc, input: PlayerInput, now: Instant) -> Option<SessionStatus> {
        if let Some(own) = &self.own {
            own.prefetch_key();
        }
        if self.out.capacity() == 0 {
            // Empty (a queue without room holds nothing), as `carrying` is
            // between turns: the thread's queues take their place.
            [self.out, self.carrying] = QUEUES.take();
        }
        let status = match input {
            PlayerInput::Frame(frame) => {
                if !self.quirk_drops(&frame) {
                    self.core.frame(&frame, now, &mut self.out);
                }
                None
            }
            PlayerInput::Transcoded(frame) => {
                self.core.transcoded_audio(&frame, now, &mut self.out);
                None
            }
            PlayerInput::TranscodedVideo(frame) => {
                self.core.transcoded_video(&frame, now, &mut self.out);
                None
            }
            PlayerInput::Publication(live) => {
                // The subscription resumes pictures at the new publisher's keyframe.
                self.core.publication(live);
                Some(if live {
                    SessionStatus::Playing
                } else {
                    SessionStatus::Unpublished
                })
            }
            PlayerInput::Answer(sdp) => {
                self.answer(rtc, &sdp, now);
                None
            }
        };
        self.carry_out(rtc, now);
        status
    }

    /// Does what the core asked for: writes to the peer, transcoders
    /// started or stopped, an offer of video.
    fn carry_out(&mut self, rtc: &mut Rtc, now: Instant) {
        // Two buffers, swapped: what the core asks for while these are
        // carried out goes round again, and nothing is allocated per frame.
        while !self.out.is_empty() {
            std::mem::swap(&mut self.out, &mut self.carrying);
            let mut outputs = std::mem::take(&mut self.carrying);
            for output in outputs.drain(..) {
                match output {
                    Output::Write(write) => self.write(rtc, write, now),
                    Output::TranscodeVideo => {
                        tracing::info!(settings = ?self.video_settings, "video transcoded for this player");
                        let mut transcoded = self.ctx.transcoders.subscribe_video(
                            &self.app,
                            &self.stream,
                            self.selection,
                            self.video_settings,
                        );
                        let config = transcoded.initial.take();
                        self.core.video_transcoder(config.as_ref(), now, &mut self.out);
                        if let Some(doorbell) = &self.doorbell {
                            transcoded.ring_on_send(doorbell.clone());
                        }
                        self.transcoded_video = Some(transcoded);
                    }
                    Output::TranscodeAudio => {
                        let mut transcoded =
                            (self.ctx.transcoders).subscribe(&self.app, &self.stream, self.selection, Target::Opus);
                        if let Some(doorbell) = &self.doorbell {
                            transcoded.ring_on_send(doorbell.clone());
                        }
                        self.transcoded = Some(transcoded);
                        // The stream's own sound now matters only when its
                        // codec changes: it need not be delivered.
                        self.take_sound(false);
                    }
                    Output::StopAudioTranscoder => {
                        self.transcoded = None;
                        self.take_sound(true);
                    }
                    Output::OfferVideo => self.offer_video(rtc),
                }
            }
            self.carrying = outputs;
        }
        QUEUES.set([std::mem::take(&mut self.out), std::mem::take(&mut self.carrying)]);
    }

    /// Whether its subscription delivers the stream's sound; a driven one
    /// learns it after the frame being delivered ([`Player::adjust`]).
    fn take_sound(&mut self, sound: bool) {
        self.takes_sound = sound;
        if let Some(subscription) = &mut self.subscription {
            subscription.take_sound(sound);
        }
    }

    fn write(&mut self, rtc: &mut Rtc, write: Write, now: Instant) {
        let (mid, seq, ssrc) = match write.kind {
            RtcKind::Audio => (self.audio_mid, &mut self.audio_seq, &mut self.audio_ssrc),
            RtcKind::Video => (self.video_mid, &mut self.video_seq, &mut self.video_ssrc),
        };
        let Some(mid) = mid else { return };
        let picture = match write.data {
            Payload::Avc { avcc, config } if !self.video_shared => {
                let mut annexb = Vec::with_capacity(avcc.len() + 256);
                config.avcc_to_annexb(&avcc, &mut annexb);
                Payload::Picture(annexb)
            }
            data => data,
        };
        let cut = match picture {
            Payload::Picture(data) => {
                let Some(writer) = rtc.writer(mid) else { return };
                match writer.write(write.pt, write.wallclock, write.time, data) {
                    Ok(()) => self.ctx.metrics.frames_out.inc(),
                    Err(error) => tracing::debug!(%error, kind = ?write.kind, "write failed"),
                }
                return;
            }
            Payload::Avc { avcc, config } => self.packets.get_or_make(&avcc, || {
                self.ctx.metrics.webrtc_frames_packetized.inc();
                packets::avc(&config, &avcc)
            }),
            Payload::Sound(data) => self.packets.get_or_make(&data, || {
                self.ctx.metrics.webrtc_frames_packetized.inc();
                packets::sound(&data)
            }),
        };
        let packets = &cut.packets;
        let own = match write.kind {
            RtcKind::Audio => self.own.as_mut(),
            RtcKind::Video => self.own.as_mut().filter(|_| self.video_own),
        };
        if let Some(own) = own {
            let kind = match write.kind {
                RtcKind::Audio => send::Kind::Audio,
                RtcKind::Video => send::Kind::Video,
            };
            own.set_clock_rate(kind, write.time.frequency().get());
            let frame = send::Frame {
                pt: *write.pt,
                first: *seq + 1,
                time: write.time.numer() as u32,
                wallclock: write.wallclock,
                number: cut.number,
                packets,
            };
            *seq += packets.len() as u64;
            own.write(kind, frame, now);
            if !packets.is_empty() {
                self.ctx.metrics.frames_out.inc();
            }
            return;
        }
        let mut api = rtc.direct_api();
        if ssrc.is_none() {
            *ssrc = api.stream_tx_by_mid(mid, None).map(|stream| stream.ssrc());
        }
        let Some(stream) = ssrc.and_then(|ssrc| api.stream_tx(&ssrc)) else {
            return;
        };
        // The RTP time in the clock's own rate (90 kHz video, the codec's for sound).
        let time = write.time.numer() as u32;
        // Sound is not sent again: a late sound is worse than a gap.
        let nackable = write.kind == RtcKind::Video;
        for packet in packets.iter() {
            *seq += 1;
            let write = RtpWrite::new(write.pt, (*seq).into(), time, write.wallclock, packet.payload.clone())
                .marker(packet.marker)
                .nackable(nackable);
            stream.write_rtp(write);
        }
        if !packets.is_empty() {
            self.ctx.metrics.frames_out.inc();
        }
    }

    /// A PLI or FIR from the peer. A transcoder makes its next picture an
    /// IDR. Otherwise the cached keyframe (and the pictures since) are sent
    /// again at once, and the publisher is asked for a new one (a WebRTC
    /// publisher can make one; an RTMP publisher cannot be asked).
    pub fn keyframe_request(&mut self, rtc: &mut Rtc, mid: Mid, now: Instant) {
        if Some(mid) != self.video_mid || self.ctx.config.quirks.player_keyframe_requests_ignored {
            return;
        }
        if let Some(transcoded) = self.transcoded_video.as_ref().filter(|_| self.core.video_transcoded()) {
            self.ctx.metrics.webrtc_keyframe_requests.inc();
            transcoded.request_keyframe();
            return;
        }
        if self
            .last_keyframe_request
            .is_some_and(|t| now.duration_since(t) < Duration::from_millis(500))
        {
            return;
        }
        self.last_keyframe_request = Some(now);
        self.ctx.hub.request_keyframe(&self.app, &self.stream);
        let selection = self.selection;
        let snapshot: Vec<Frame> = (self.ctx.hub.keyframe_snapshot(&self.app, &self.stream).into_iter())
            .filter_map(|frame| selection.pick(frame))
            .collect();
        if self.core.replay(&snapshot, now, &mut self.out) {
            self.ctx.metrics.webrtc_keyframe_requests.inc();
            tracing::debug!(frames = snapshot.len(), "keyframe request answered from the cache");
        }
        self.carry_out(rtc, now);
    }
}

/// The own send path's track for the m-line `mid`: str0m's SSRCs for it
/// and its retransmissions (the ones the SDP announced), the negotiated
/// MID extension and retransmission payload types, and the clock rate of
/// its first payload type (the write of a frame says it again).
fn own_track(rtc: &mut Rtc, mid: Mid) -> Option<send::Track> {
    let ext = rtc.media(mid)?.remote_extmap().id_of(Extension::RtpMid);
    let (ssrc, rtx) = {
        let mut api = rtc.direct_api();
        let stream = api.stream_tx_by_mid(mid, None)?;
        (stream.ssrc(), stream.rtx())
    };
    let (repairs, clock_rate): (Vec<(u8, u8)>, u32) = match rtc.writer(mid) {
        Some(writer) => (
            writer
                .payload_params()
                .filter_map(|p| Some((*p.pt(), *p.resend()?)))
                .collect(),
            writer
                .payload_params()
                .next()
                .map_or(90_000, |p| p.spec().clock_rate.get()),
        ),
        None => (Vec::new(), 90_000),
    };
    // The one-byte form takes ids 1 to 14 and values of 1 to 16 bytes
    // (RFC 8285 §4.2); a MID it cannot carry is left out (the SSRCs are in
    // the SDP).
    let name = mid.as_bytes();
    let mid_ext = ext
        .filter(|id| (1..=14).contains(id) && (1..=16).contains(&name.len()))
        .map(|id| {
            let mut bytes = [0u8; 16];
            bytes[..name.len()].copy_from_slice(name);
            (id, bytes, name.len())
        });
    Some(send::Track {
        ssrc: *ssrc,
        mid_ext,
        clock_rate,
        rtx: rtx.filter(|_| !repairs.is_empty()).map(|rtx| (*rtx, repairs)),
    })
}

#[cfg(test)]
mod tests {
    use media::flv::MetadataTracks;

    use super::*;

    fn stream(has_audio: bool, has_video: bool, video: Option<bool>) -> StreamDescription {
        StreamDescription {
            published_at: Instant::now(),
            announced: video.map(|video| MetadataTracks {
                video: Some(video),
                audio: Some(true),
            }),
            has_audio,
            has_video,
            audio_codec: has_audio.then_some(AudioCodec::Speex),
            video_codec: None,
            video_reorders: false,
            video_config: None,
        }
    }

    #[test]
    fn a_player_waits_for_video_only_while_nothing_says_whether_it_comes() {
        let waits = TrackWaits {
            video: Duration::from_secs(3),
            audio: Duration::from_secs(1),
        };
        let audio_only_so_far = stream(true, false, None);
        let start = audio_only_so_far.published_at;
        assert_eq!(
            undecided(&audio_only_so_far, waits, start + Duration::from_millis(500)),
            Some(start + waits.video)
        );
        assert_eq!(
            undecided(&audio_only_so_far, waits, start + waits.video),
            None,
            "waited enough"
        );
        assert_eq!(
            undecided(&stream(true, false, Some(true)), waits, start),
            None,
            "announced"
        );
        assert_eq!(
            undecided(&stream(true, false, Some(false)), waits, start),
            None,
            "announced absent"
        );
        assert_eq!(undecided(&stream(true, true, None), waits, start), None, "video came");
    }

    #[test]
    fn a_player_waits_briefly_for_sound_after_the_first_picture() {
        let waits = TrackWaits {
            video: Duration::from_secs(3),
            audio: Duration::from_secs(1),
        };
        // An encoder's first keyframe arrives a moment before its first sound.
        let video_so_far = stream(false, true, None);
        let start = video_so_far.published_at;
        assert_eq!(
            undecided(&video_so_far, waits, start + Duration::from_millis(5)),
            Some(start + waits.audio)
        );
        assert_eq!(
            undecided(&video_so_far, waits, start + waits.audio),
            None,
            "a video-only stream is answered after the short wait"
        );
        let mut announced_silent = stream(false, true, Some(true));
        announced_silent.announced = Some(MetadataTracks {
            video: Some(true),
            audio: Some(false),
        });
        assert_eq!(
            undecided(&announced_silent, waits, start),
            None,
            "metadata says no sound"
        );
        // Nothing yet at all: the earlier deadline is the next look.
        let nothing_yet = stream(false, false, None);
        assert_eq!(
            undecided(&nothing_yet, waits, nothing_yet.published_at),
            Some(nothing_yet.published_at + waits.audio)
        );
    }

    #[test]
    fn announced_video_is_answered_before_it_arrives() {
        let quirks = |announced_too: bool| Quirks {
            answer_only_tracks_sent: !announced_too,
            ..Quirks::default()
        };
        let plan = |s, announced_too| codecs(Some(&s), false, &quirks(announced_too)).plan;
        assert_eq!(plan(stream(true, false, Some(true)), true), "Opus audio, H.264 video");
        assert_eq!(
            plan(stream(true, false, Some(true)), false),
            "Opus audio",
            "the quirk answers only what was sent"
        );
        assert_eq!(
            plan(stream(true, false, Some(false)), true),
            "Opus audio",
            "known issue 1: audio-only stays audio-only"
        );
        assert_eq!(
            plan(stream(true, false, None), true),
            "Opus audio",
            "after the wait, nothing announced: audio only"
        );
        assert!(codecs(Some(&stream(true, false, Some(true))), false, &quirks(true)).video);
        assert!(!codecs(Some(&stream(true, false, Some(false))), false, &quirks(true)).video);
    }

    #[test]
    fn declined_video_lines_leave_the_bundle() {
        let offer = "v=0\r\na=group:BUNDLE 0 1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 97\r\na=mid:1\r\n";
        assert_eq!(
            decline_video(offer),
            "v=0\r\na=group:BUNDLE 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\nm=video 0 UDP/TLS/RTP/SAVPF 96 97\r\na=mid:1\r\n"
        );
    }
}
