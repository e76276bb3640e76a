//! What must follow a step: the expectations a scenario may write, each
//! owning its check and its description, and what a step observed for them.
//!
//! `Expect` keeps the flat shape of a scenario file (`expect = { statuses =
//! [...], closed = true }`); [`Expect::parts`] turns its fields into the
//! [`Expectation`]s they make, in the one order they are checked and told.
//! A new expectation on what a step already observes is a field of
//! `Expect`, a type with its `check` and `describe` here, and a line in
//! `parts`: this module only.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::backend::HookCall;
use crate::client::StatusEvent;
use crate::webrtc::sdp::MediaSection;
use crate::webrtc::PlayerReport;

/// What must follow a step. Every field is optional; all given must hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// NetStatus codes that must arrive in this order (others may come between).
    #[serde(default)]
    pub statuses: Vec<String>,
    /// The codes must be exactly `statuses`, nothing else, within `within`.
    #[serde(default)]
    pub exactly: bool,
    /// The picture sizes (`WxH`) a Flash player's own
    /// `NetStream.Video.DimensionChange` events give, exactly these in order.
    #[serde(default)]
    pub dimensions: Vec<String>,
    /// Codes that must not arrive (checked until `within` has passed when
    /// nothing else is awaited).
    #[serde(default)]
    pub forbidden: Vec<String>,
    /// The level of the last code in `statuses`: `status`, `warning` or `error`.
    #[serde(default)]
    pub level: Option<String>,
    /// How long to wait (default: the run's step timeout).
    #[serde(default, with = "humantime_serde")]
    pub within: Option<Duration>,
    /// The server closes the connection (true) or keeps it open (false).
    #[serde(default)]
    pub closed: Option<bool>,
    /// After the step, a fresh client can still connect and publish.
    #[serde(default)]
    pub survives: Option<bool>,
    /// Media an RTMP player must receive.
    #[serde(default)]
    pub rtmp_media: Option<RtmpMediaExpect>,
    /// The SDP answer of a WebRTC step.
    #[serde(default)]
    pub sdp: Option<SdpExpect>,
    /// What a WebRTC player must decode.
    #[serde(default)]
    pub media: Option<MediaExpect>,
    /// A replay must match the captured server's answers.
    #[serde(default)]
    pub replay_matches: Option<bool>,
    /// Commands of a replay (by name) that must get an answer, the same as
    /// the captured server's or not: one left unanswered, or not sent
    /// because the target closed the connection, misses.
    #[serde(default)]
    pub replay_answered: Vec<String>,
    /// The server refuses the action with an answer: an HTTP 4xx to a
    /// WHEP/WHIP request, a `FAILED` status on the WebSocket channel. A
    /// connection closed without an answer, a timeout or a 5xx is not a
    /// refusal. `false`: the action was answered and not refused (a
    /// failure without an answer holds neither).
    #[serde(default)]
    pub refused: Option<bool>,
    /// A call the backend must have received (`hook` steps).
    #[serde(default)]
    pub hook: Option<HookExpect>,
    /// At least this many keyframe requests (PLI or FIR) received by the
    /// actor's WebRTC publisher since it started (`wait` steps).
    #[serde(default)]
    pub keyframe_requests: Option<u64>,
    /// What the server's `_result` to connect states of Enhanced RTMP
    /// (`connect` steps).
    #[serde(default)]
    pub server_announces: Option<super::ertmp::ServerAnnounces>,
    /// Room events the actor must receive, in this order (others may come
    /// between), since its previous step: `STATE alice,bob` (the others, by
    /// name), `JOINED bob`, `LEFT bob`, `PUBLISHED bob STREAM`, `MESSAGE
    /// bob: TEXT`, `FAILED INFO`. Each matches an event whose text starts
    /// with it.
    #[serde(default)]
    pub room_events: Vec<String>,
    /// Every NetStatus info object the server sent in the step carries a
    /// `level` of `status`, `warning` or `error`, as ActionScript's
    /// NetStatusEvent.info always does and players branch on.
    #[serde(default)]
    pub levels_valid: bool,
    /// The answer to an `http` step.
    #[serde(default)]
    pub http: Option<HttpExpect>,
    /// Messages the server sent on the actor's RTMP connection since it
    /// opened, each matched by a text its wire-log line holds
    /// (`WindowAckSize`, `SetPeerBandwidth`, `UserControl StreamBegin 1`,
    /// `data "onMetaData"`, `Acknowledgement`), in any order. `{stream_id}`
    /// in a text is the id of the step's stream, as createStream gave it.
    #[serde(default)]
    pub received: Vec<String>,
    /// Messages the server must not have sent on the actor's RTMP
    /// connection since it opened, by a text of their wire-log lines (as
    /// `received`).
    #[serde(default)]
    pub not_received: Vec<String>,
    /// Texts the latest metadata the server sent on the actor's connection
    /// must hold: the wire-log line of its latest data message named
    /// `onMetaData` (a message named `@setDataFrame` is not one), as
    /// `title: "Part two"`.
    #[serde(default)]
    pub metadata: Vec<String>,
    /// The `201` of a `webrtc-play` step's WHEP (or WHIP) offer carried a
    /// `Link` with each of these `rel` values (the extensions it announces).
    #[serde(default)]
    pub links: Vec<String>,
    /// The server's S2 echoes the C1 the actor sent: its time and random
    /// bytes (a `connect` step's handshake).
    #[serde(default)]
    pub s2_echoes_c1: Option<bool>,
    /// The answer to a `call`: its name (`_result` or `_error`), and the
    /// info object's code after a space if it must have one
    /// (`"_error NetConnection.Call.Failed"`).
    #[serde(default)]
    pub answer: Option<String>,
}

/// What the answer to an `http` step must be.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpExpect {
    /// Its status: any of these codes (`201`) or classes (`"4xx"`).
    #[serde(default)]
    pub status: Vec<StatusPattern>,
    /// Header fields it must have, each holding one of the `|`-separated
    /// texts given (any case; `""` for any value).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Header fields it must not have.
    #[serde(default)]
    pub absent: Vec<String>,
    /// Texts its body must hold.
    #[serde(default)]
    pub body: Vec<String>,
    /// Its body must be empty.
    #[serde(default)]
    pub empty_body: bool,
    /// Server-sent events its (streamed) body must hold, by event name, in
    /// any order (the extension orders none).
    #[serde(default)]
    pub events: Vec<String>,
    /// What its `Link` fields say of STUN and TURN servers (`rel="ice-server"`).
    #[serde(default)]
    pub ice_servers: Option<IceServers>,
}

/// What an answer's `Link` fields name as STUN and TURN servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IceServers {
    /// At least one, each usable by a client (see
    /// [`crate::webrtc::http::ice_server_problem`]).
    Usable,
    /// None.
    None,
}

/// An HTTP status code, or a class of them (`"4xx"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StatusPattern {
    /// Exactly this code.
    Code(u16),
    /// `"2xx"`, `"4xx"`...
    Class(String),
}

impl StatusPattern {
    fn matches(&self, status: u16) -> bool {
        match self {
            StatusPattern::Code(code) => *code == status,
            StatusPattern::Class(class) => class
                .strip_suffix("xx")
                .and_then(|digit| digit.parse::<u16>().ok())
                .is_some_and(|digit| status / 100 == digit),
        }
    }

    fn text(&self) -> String {
        match self {
            StatusPattern::Code(code) => code.to_string(),
            StatusPattern::Class(class) => class.clone(),
        }
    }
}

impl Expectation for &HttpExpect {
    fn check(&self, observed: &Observed) -> Result<(), String> {
        let answer = observed.http.as_ref().ok_or("no HTTP answer")?;
        let mut misses = Vec::new();
        if !self.status.is_empty() && !self.status.iter().any(|s| s.matches(answer.status)) {
            misses.push(format!("status {}", answer.status));
        }
        for (name, texts) in &self.headers {
            match answer.header_joined(name).as_deref() {
                None => misses.push(format!("no {name}")),
                Some(value) => {
                    let value_lower = value.to_ascii_lowercase();
                    if !texts
                        .split('|')
                        .any(|text| value_lower.contains(&text.trim().to_ascii_lowercase()))
                    {
                        misses.push(format!("{name}: {value}"));
                    }
                }
            }
        }
        for name in &self.absent {
            if let Some(value) = answer.header(name) {
                misses.push(format!("{name}: {value}"));
            }
        }
        for text in &self.body {
            if !answer.body.contains(text.as_str()) {
                misses.push(format!("no {text:?} in the body"));
            }
        }
        if self.empty_body && !answer.body.is_empty() {
            misses.push(format!("a body of {} bytes", answer.body.len()));
        }
        if !self.events.is_empty() {
            let got = crate::webrtc::http::sse_events(&answer.body);
            let missing: Vec<&str> = self
                .events
                .iter()
                .filter(|wanted| !got.iter().any(|(name, _)| name == *wanted))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                let seen: Vec<String> = got.iter().map(|(n, d)| format!("{n} {d}")).collect();
                let seen = if seen.is_empty() {
                    "none".to_string()
                } else {
                    seen.join("; ")
                };
                misses.push(format!("no {} event; events received: {seen}", missing.join(", ")));
            }
        }
        if let Some(wanted) = self.ice_servers {
            let servers = answer.ice_servers();
            let named = || {
                let targets: Vec<String> = servers.iter().map(|(t, _)| format!("<{t}>")).collect();
                targets.join(", ")
            };
            match wanted {
                IceServers::None if !servers.is_empty() => {
                    misses.push(format!("Link rel=\"ice-server\" {}", named()));
                }
                IceServers::Usable if servers.is_empty() => misses.push("no Link rel=\"ice-server\"".into()),
                IceServers::Usable => misses.extend(
                    servers
                        .iter()
                        .filter_map(|(target, params)| crate::webrtc::http::ice_server_problem(target, params)),
                ),
                IceServers::None => {}
            }
        }
        if misses.is_empty() {
            Ok(())
        } else {
            Err(misses.join(", "))
        }
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.status.is_empty() {
            let codes: Vec<String> = self.status.iter().map(StatusPattern::text).collect();
            parts.push(format!("HTTP {}", codes.join(" or ")));
        }
        for (name, texts) in &self.headers {
            parts.push(match texts.as_str() {
                "" => format!("{name} present"),
                texts => format!("{name}: {}", texts.replace('|', " or ")),
            });
        }
        for name in &self.absent {
            parts.push(format!("no {name}"));
        }
        for text in &self.body {
            parts.push(format!("{text:?} in the body"));
        }
        if self.empty_body {
            parts.push("no body".into());
        }
        if !self.events.is_empty() {
            parts.push(format!("the events {}", self.events.join(", ")));
        }
        match self.ice_servers {
            Some(IceServers::Usable) => {
                parts.push("Link rel=\"ice-server\" naming STUN or TURN servers a client can use".into())
            }
            Some(IceServers::None) => parts.push("no Link rel=\"ice-server\"".into()),
            None => {}
        }
        parts.join(", ")
    }
}

/// A hook call the backend must receive. Stream names are the scenario's
/// (the runner's per-run suffix is taken off before comparing); maps must
/// be equal, not merely include the keys.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookExpect {
    /// `connect`, `publishStream` or `playStream`.
    pub call: String,
    /// The `name` field: the stream name without its parameters.
    #[serde(default)]
    pub name: Option<String>,
    /// The `appKey` field.
    #[serde(default)]
    pub app_key: Option<String>,
    /// The `custom` map: the connection's parameters for `connect`, the
    /// stream name's for the others.
    #[serde(default)]
    pub custom: Option<BTreeMap<String, String>>,
    /// The `connectionCustom` map of publishStream and playStream.
    #[serde(default)]
    pub connection_custom: Option<BTreeMap<String, String>>,
}

/// Media messages an RTMP player must receive.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RtmpMediaExpect {
    /// At least this many audio messages.
    #[serde(default)]
    pub audio: u64,
    /// At least this many video messages.
    #[serde(default)]
    pub video: u64,
    /// The first picture (the first video message that is no sequence
    /// header, end of sequence or command frame) must be a keyframe: a
    /// decoder can start at nothing else.
    #[serde(default)]
    pub starts_with_keyframe: bool,
    /// The first video message within this time of the step's start.
    #[serde(default, with = "humantime_serde")]
    pub first_video_within: Option<Duration>,
    /// The first audio message within this time of the step's start.
    #[serde(default, with = "humantime_serde")]
    pub first_audio_within: Option<Duration>,
    /// No audio message older (by timestamp) than the newest video message
    /// already received by more than this: the tracks arrive interleaved in
    /// time, as players that probe the first seconds need.
    #[serde(default, with = "humantime_serde")]
    pub max_audio_behind_video: Option<Duration>,
    /// How far the media of the first second after the first message may
    /// run ahead of real time: a late joiner's backlog, sent at once.
    #[serde(default, with = "humantime_serde")]
    pub max_backlog: Option<Duration>,
    /// No audio frame arrives later than this after the step began (the
    /// player asked for none: `receiveAudio false`); the step then watches
    /// the whole of its `within`.
    #[serde(default, with = "humantime_serde")]
    pub no_audio_after: Option<Duration>,
    /// No video frame arrives later than this after the step began; the
    /// step then watches the whole of its `within`.
    #[serde(default, with = "humantime_serde")]
    pub no_video_after: Option<Duration>,
    /// No two video frames received one after the other are further apart
    /// in timestamp than this: none was lost between them (a 25 fps
    /// stream steps 40 ms).
    #[serde(default, with = "humantime_serde")]
    pub max_video_step: Option<Duration>,
    /// Enhanced RTMP tags (ExAudioTagHeader, ExVideoTagHeader) received
    /// (true: at least one; false: none, as a legacy player must get).
    #[serde(default)]
    pub enhanced: Option<bool>,
    /// FourCCs the enhanced tags received must include.
    #[serde(default)]
    pub codecs: Vec<String>,
    /// FourCCs no enhanced tag received may carry.
    #[serde(default)]
    pub not_codecs: Vec<String>,
    /// The only codecs the legacy (not enhanced) tags received may be in,
    /// by name (`h264`, `aac`, `speex`, `mp3`...): a tag of another codec,
    /// such as HEVC under the legacy CodecID 12, fails.
    #[serde(default)]
    pub legacy_codecs: Vec<String>,
    /// Multitrack messages received (true: at least one; false: none).
    #[serde(default)]
    pub multitrack: Option<bool>,
    /// Every audio and video body received is one the case's publisher of
    /// the stream sent (or, for a multitrack message, one of its tracks
    /// alone): the server passed them on unchanged.
    #[serde(default)]
    pub as_published: bool,
}

/// What an SDP answer must say about one kind of media.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SdpMedia {
    /// Answered and the server sends it.
    Sends,
    /// Answered and the server receives it.
    Receives,
    /// Answered with port 0 (or `inactive`), or absent.
    Rejected,
}

/// Expectations on an SDP answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SdpExpect {
    /// The audio m-line.
    #[serde(default)]
    pub audio: Option<SdpMedia>,
    /// The video m-line.
    #[serde(default)]
    pub video: Option<SdpMedia>,
    /// A codec the audio answer must hold (`opus`, `PCMU`, ...).
    #[serde(default)]
    pub audio_codec: Option<String>,
    /// A codec the video answer must hold (`H264`).
    #[serde(default)]
    pub video_codec: Option<String>,
    /// The H.264 profile-level-id answered, in hex (`42001e`).
    #[serde(default)]
    pub h264_profile_level_id: Option<String>,
    /// The answer answers the offer sent ([`crate::webrtc::sdp::answer_misfit`]):
    /// its m-lines, mids, payload type numbers, DTLS role, rtcp-mux, BUNDLE.
    #[serde(default)]
    pub fits_offer: bool,
    /// The answer holds at least one ICE candidate (WHIP and WHEP: the
    /// answer SHALL hold the media server's full list).
    #[serde(default)]
    pub candidates: bool,
    /// The answer keeps the payload type numbers the offer gave its codecs
    /// ([`crate::webrtc::sdp::renumbered`]; RFC 3264, section 6.1: SHOULD).
    #[serde(default)]
    pub same_payload_types: bool,
}

/// What a WebRTC player must decode, within `Expect::within`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaExpect {
    /// At least this many decoded pictures.
    #[serde(default)]
    pub pictures: u64,
    /// The codec the video frames came in (`H264`, `H265`, `AV1`, `VP9`,
    /// `VP8`; any case): what the server chose among those the answer took.
    #[serde(default)]
    pub video_codec: Option<String>,
    /// Picture size.
    #[serde(default)]
    pub width: Option<u32>,
    /// Picture size.
    #[serde(default)]
    pub height: Option<u32>,
    /// At least this many decoded audio frames.
    #[serde(default)]
    pub audio_frames: u64,
    /// The dominant frequency of the last 500 ms of sound, ±10 Hz.
    #[serde(default)]
    pub tone_hz: Option<f64>,
    /// The last 500 ms of sound at least this loud (dBFS).
    #[serde(default)]
    pub min_dbfs: Option<f64>,
    /// The first video frame is an IDR.
    #[serde(default)]
    pub first_frame_idr: bool,
    /// No video frame is sent after a frame with a later RTP timestamp (no
    /// B-frames sent in decode order; retransmissions do not count).
    #[serde(default)]
    pub pictures_in_order: bool,
    /// No video frames may arrive at all.
    #[serde(default)]
    pub no_video: bool,
    /// The first picture within this time of the offer.
    #[serde(default, with = "humantime_serde")]
    pub first_picture_within: Option<Duration>,
    /// No longer than this between two audio frames' arrivals, once sound
    /// has begun.
    #[serde(default, with = "humantime_serde")]
    pub max_audio_gap: Option<Duration>,
    /// No frame's RTP time moves further ahead of its arrival, compared
    /// with the frame before it in its track, than this (RTP time follows
    /// the sampling clock).
    #[serde(default, with = "humantime_serde")]
    pub max_rtp_leap: Option<Duration>,
    /// The audio RTP sequence never breaks (no loss, no new SSRC).
    #[serde(default)]
    pub audio_continuous: bool,
    /// Every audio RTP payload received is an Opus packet the case's
    /// publisher of the stream sent, byte for byte (nothing transcoded).
    #[serde(default)]
    pub audio_as_published: bool,
    /// The first decoded audio louder than -50 dBFS must come this soon
    /// after the offer was sent.
    #[serde(default, with = "humantime_serde")]
    pub first_sound_within: Option<Duration>,
    /// Every track received has had an RTCP sender report (the NTP and RTP
    /// times that put audio and video on one clock).
    #[serde(default)]
    pub sender_reports: bool,
    /// A keyframe (IDR) has come since the step's keyframe request.
    #[serde(default)]
    pub keyframe_answered: bool,
    /// Since the step's ICE restart, a connectivity check the player made
    /// with the new credentials (its own and the server's) was answered
    /// with success.
    #[serde(default)]
    pub restart_checks_answered: bool,
    /// The player's relay lost at least 10 video packets
    /// (`lose_video_every`), and every one came back in time: no gap in the
    /// pictures' RTP sequence.
    #[serde(default)]
    pub losses_repaired: bool,
    /// For a stream that flashes and beeps together once a second (the
    /// `sync_*` fixtures): on the sender's clock (the RTCP sender reports),
    /// the median beep's onset within this of its flash, over at least 3
    /// (one beep off at a player's join is not lip sync lost).
    #[serde(default, with = "humantime_serde")]
    pub max_av_offset: Option<Duration>,
}

/// What a step saw, for its expectations.
#[derive(Debug, Default)]
pub(super) struct Observed {
    /// The action itself failed (could not connect, signalling refused...).
    pub(super) error: Option<String>,
    /// The server refused the action, in its own words (an HTTP 4xx, a
    /// `FAILED` status): an answer, unlike a closed socket or a timeout.
    pub(super) refusal: Option<String>,
    pub(super) statuses: Vec<StatusEvent>,
    /// The answer to a call: `_result` or `_error`, with its info object's
    /// code if it has one.
    pub(super) answer: Option<String>,
    pub(super) closed: bool,
    pub(super) audio: u64,
    pub(super) video: u64,
    pub(super) first_picture_keyframe: Option<bool>,
    /// When an RTMP player's media arrived, against its timestamps.
    pub(super) rtmp_timing: super::timing::RtmpTiming,
    /// What an RTMP player saw of Enhanced RTMP in its media.
    pub(super) ertmp: super::ertmp::Seen,
    /// The properties object of the server's answer to connect.
    pub(super) connect_properties: Option<media::amf::Value>,
    /// Keyframe requests the actor's WebRTC publisher has received.
    pub(super) keyframe_requests: Option<u64>,
    /// When a `request-keyframe` step asked: the IDR frames and the video
    /// frames its player had received.
    pub(super) keyframe_asked: Option<(u64, u64)>,
    pub(super) sdp: Option<crate::webrtc::SdpSummary>,
    /// The `rel` values of the `Link`s of a WebRTC actor's `201`.
    pub(super) links: Option<Vec<String>>,
    /// The offer an `http` step sent, to check the answer against.
    pub(super) offer: Option<crate::webrtc::SdpSummary>,
    pub(super) report: Option<PlayerReport>,
    /// What the case's publisher of the played stream sent, by digest
    /// ([`super::ertmp::published_bodies`]).
    pub(super) published: Option<std::rc::Rc<std::collections::HashSet<u64>>>,
    pub(super) tone: Option<f64>,
    pub(super) dbfs: Option<f64>,
    pub(super) survived: Option<Result<(), String>>,
    /// A replay: whether every answer matched, a summary, and the commands
    /// the captured server answered that the target left unanswered (or
    /// could not be sent, the connection being gone).
    pub(super) replay: Option<(bool, String, Vec<String>)>,
    /// Lines for the case's wire log (a replay's, the backend's calls).
    pub(super) log: Vec<String>,
    /// Lines for the case's wire log with the time they happened (a raw actor's).
    pub(super) timed_log: Vec<(Instant, String)>,
    /// How long a raw connection stayed open after its bytes without closing.
    pub(super) open_after: Option<Duration>,
    /// Every call the backend received, stream names without the run's suffix.
    pub(super) hook_calls: Option<Vec<HookCall>>,
    /// Room events since the actor's previous step, as `room_events` spells them.
    pub(super) room_events: Vec<String>,
    /// The answer to an `http` step.
    pub(super) http: Option<crate::webrtc::http::Exchange>,
    /// The wire-log lines of what the server sent on an RTMP actor's
    /// connection since it opened.
    pub(super) received: Vec<String>,
    /// The RTMP message stream id of the step's stream, once created.
    pub(super) stream_id: Option<u32>,
    /// What a `connect` step's handshake showed of the server.
    pub(super) handshake: Option<crate::handshake::HandshakeReport>,
}

impl Observed {
    /// The statuses the checks read: those a client acts on. The info
    /// objects of FMS's `onFCPublish`, `onFCUnpublish` and `onFCSubscribe`
    /// are not among them: OBS and FFmpeg wait for `onStatus`, so an
    /// `onFCPublish` NetStream.Publish.Start alone is no start.
    fn counted(&self) -> impl Iterator<Item = &StatusEvent> {
        self.statuses.iter().filter(|s| !s.via.starts_with("onFC"))
    }

    pub(super) fn codes(&self) -> Vec<&str> {
        self.counted().map(|s| s.status.code.as_str()).collect()
    }

    pub(super) fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(error) = &self.error {
            parts.push(format!("error: {error}"));
        }
        // What the server sent; the Connect.Closed the client raises
        // itself (as Flash does) reads as "connection closed" below.
        let codes: Vec<String> = self
            .statuses
            .iter()
            .filter(|s| !(s.via == "local" && s.status.code == media::netstatus::code::CONNECT_CLOSED))
            .map(|s| match s.via.starts_with("onFC") {
                true => format!("{} ({}, in {})", s.status.code, s.status.level.as_str(), s.via),
                false => format!("{} ({})", s.status.code, s.status.level.as_str()),
            })
            .collect();
        if !codes.is_empty() {
            parts.push(format!("statuses [{}]", codes.join(", ")));
        }
        if let Some(answer) = &self.answer {
            parts.push(format!("the answer {answer}"));
        }
        if self.closed {
            parts.push("connection closed".into());
        }
        if let Some(open) = self.open_after {
            parts.push(format!(
                "the connection still open {:.1} s after the bytes",
                open.as_secs_f64()
            ));
        }
        if self.audio + self.video > 0 {
            parts.push(format!("{} audio and {} video messages", self.audio, self.video));
        }
        if let Some(sdp) = &self.sdp {
            parts.push(format!(
                "SDP audio: {}, video: {}",
                describe_section(sdp.audio()),
                describe_section(sdp.video())
            ));
            // How the answer departs from the offer of the step, if it does.
            if let Some(offer) = &self.offer {
                let departs = crate::webrtc::sdp::answer_misfit(offer, sdp)
                    .or_else(|| crate::webrtc::sdp::renumbered(offer, sdp));
                parts.extend(departs);
            }
        }
        if let Some(r) = &self.report {
            let first = match r.video.first_frame_was_idr {
                Some(true) => " (the first an IDR)",
                Some(false) => " (the first not an IDR)",
                None => "",
            };
            let size = if r.video.pictures > 0 {
                format!(" of {}x{}", r.video.width, r.video.height)
            } else {
                String::new()
            };
            parts.push(format!(
                "{} pictures{size}{first}, {} video frames, {} audio frames decoded, {} RTP audio / {} RTP video packets",
                r.video.pictures,
                r.video.frames,
                r.audio.decoded_frames,
                r.audio.rtp_packets,
                r.video.rtp_packets
            ));
            for (what, errors, last) in [
                ("video", r.video.decode_errors, &r.video.last_error),
                ("audio", r.audio.decode_errors, &r.audio.last_error),
            ] {
                if errors > 0 {
                    parts.push(format!(
                        "{errors} {what} decode errors, the last: {}",
                        last.as_deref().unwrap_or("-")
                    ));
                }
            }
        }
        if let Some(tone) = self.tone {
            parts.push(format!("tone {tone:.0} Hz"));
        }
        if let Some(db) = self.dbfs {
            parts.push(format!("level {db:.1} dBFS"));
        }
        if let Some(survived) = &self.survived {
            parts.push(match survived {
                Ok(()) => "the server still serves a new client".into(),
                Err(e) => format!("a new client is not served: {e}"),
            });
        }
        if let Some((_, summary, _)) = &self.replay {
            parts.push(summary.clone());
        }
        if !self.room_events.is_empty() {
            parts.push(format!("room events [{}]", self.room_events.join(" | ")));
        }
        if let Some(answer) = &self.http {
            parts.push(describe_exchange(answer));
        }
        if let Some(calls) = &self.hook_calls {
            let calls: Vec<String> = calls.iter().map(|c| format!("{} {}", c.hook, c.body)).collect();
            parts.push(format!("backend calls [{}]", calls.join(", ")));
        }
        if parts.is_empty() {
            "nothing".into()
        } else {
            parts.join("; ")
        }
    }
}

/// An HTTP answer in a line: status, the header fields that matter to
/// WHIP and WHEP, and the body's size (its start, when it is not SDP).
pub(super) fn describe_exchange(answer: &crate::webrtc::http::Exchange) -> String {
    const DULL: [&str; 5] = ["date", "content-length", "vary", "connection", "server"];
    let headers: Vec<String> = answer
        .headers
        .iter()
        .filter(|(name, _)| !DULL.contains(&name.as_str()))
        .map(|(name, value)| format!("{name}: {value}"))
        .collect();
    let body = match answer.body.trim() {
        "" => "no body".to_string(),
        text if text.starts_with("v=0") => format!("an SDP body of {} bytes", answer.body.len()),
        text => format!("body {:?}", text.chars().take(80).collect::<String>()),
    };
    format!(
        "HTTP {} to {} ({}); {body}",
        answer.status,
        answer.method.as_str(),
        headers.join("; ")
    )
}

pub(super) fn describe_section(section: Option<&MediaSection>) -> String {
    match section {
        None => "absent".into(),
        Some(s) if s.rejected => "rejected".into(),
        Some(s) => format!("{} {}", s.direction.as_str(), s.codec_names().join("/")),
    }
}

/// One expectation: what it checks on an observed step, and how it reads.
pub(super) trait Expectation {
    /// `Ok` when `observed` meets it; else what is missing, in words.
    fn check(&self, observed: &Observed) -> Result<(), String>;
    /// What it wants, in words ("statuses A then B").
    fn describe(&self) -> String;
}

impl Expect {
    /// The expectations its fields make, in the order they are checked
    /// and told; the action's own success (no error, or the refusal asked
    /// for) always last.
    pub(super) fn parts(&self) -> Vec<Box<dyn Expectation + '_>> {
        let mut parts: Vec<Box<dyn Expectation + '_>> = Vec::new();
        if !self.statuses.is_empty() || self.exactly {
            parts.push(Box::new(Statuses {
                codes: &self.statuses,
                exactly: self.exactly,
                level: self.level.as_deref(),
            }));
        }
        if !self.forbidden.is_empty() {
            parts.push(Box::new(Forbidden(&self.forbidden)));
        }
        if !self.dimensions.is_empty() {
            parts.push(Box::new(Dimensions(&self.dimensions)));
        }
        if let Some(closed) = self.closed {
            parts.push(Box::new(Closed(closed)));
        }
        if let Some(survives) = self.survives {
            parts.push(Box::new(Survives(survives)));
        }
        if let Some(media) = &self.rtmp_media {
            parts.push(Box::new(media));
        }
        if self.sdp.is_some() || self.media.is_some() {
            parts.push(Box::new(WebrtcPlayer {
                sdp: self.sdp.as_ref(),
                media: self.media.as_ref(),
            }));
        }
        if let Some(matches) = self.replay_matches {
            parts.push(Box::new(ReplayMatches(matches)));
        }
        if !self.replay_answered.is_empty() {
            parts.push(Box::new(ReplayAnswered(&self.replay_answered)));
        }
        if !self.room_events.is_empty() {
            parts.push(Box::new(RoomEvents(&self.room_events)));
        }
        if let Some(hook) = &self.hook {
            parts.push(Box::new(hook));
        }
        if let Some(least) = self.keyframe_requests {
            parts.push(Box::new(KeyframeRequests(least)));
        }
        if let Some(announces) = &self.server_announces {
            parts.push(Box::new(announces));
        }
        if self.levels_valid {
            parts.push(Box::new(LevelsValid));
        }
        if let Some(http) = &self.http {
            parts.push(Box::new(http));
        }
        if let Some(answer) = &self.answer {
            parts.push(Box::new(CallAnswer(answer)));
        }
        if !self.received.is_empty() {
            parts.push(Box::new(Received(&self.received)));
        }
        if !self.not_received.is_empty() {
            parts.push(Box::new(NotReceived(&self.not_received)));
        }
        if !self.metadata.is_empty() {
            parts.push(Box::new(LatestMetadata(&self.metadata)));
        }
        if !self.links.is_empty() {
            parts.push(Box::new(Links(&self.links)));
        }
        if let Some(echoes) = self.s2_echoes_c1 {
            parts.push(Box::new(S2EchoesC1(echoes)));
        }
        parts.push(Box::new(Answer(self.refused)));
        parts
    }

    /// Whether `observed` meets every part; the first miss if not.
    pub(super) fn check(&self, observed: &Observed) -> Result<(), String> {
        self.parts().iter().try_for_each(|part| part.check(observed))
    }

    /// One line saying what it wants.
    pub(super) fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .parts()
            .iter()
            .map(|part| part.describe())
            .filter(|text| !text.is_empty())
            .collect();
        if parts.is_empty() {
            parts.push("the action to succeed".into());
        }
        if let Some(within) = self.within {
            parts.push(format!("within {within:?}"));
        }
        parts.join("; ")
    }
}

/// NetStatus codes in this order (others may come between, unless
/// `exactly`), the last at `level`.
struct Statuses<'a> {
    codes: &'a [String],
    exactly: bool,
    level: Option<&'a str>,
}

impl Expectation for Statuses<'_> {
    fn check(&self, observed: &Observed) -> Result<(), String> {
        let codes = observed.codes();
        let mut position = 0;
        for wanted in self.codes {
            match codes[position..].iter().position(|c| c == wanted) {
                Some(found) => position += found + 1,
                None => return Err(format!("no {wanted} (in order)")),
            }
        }
        if self.exactly && codes.len() != self.codes.len() {
            return Err(format!("other statuses than exactly {:?}", self.codes));
        }
        if let (Some(level), Some(last)) = (self.level, self.codes.last()) {
            // A missing or unknown level is not the one asked for, whatever
            // the parser defaulted it to.
            match observed.counted().find(|s| &s.status.code == last) {
                Some(e) if !e.level_valid => return Err(format!("{last} without a valid level")),
                Some(e) if e.status.level.as_str() == level => {}
                _ => return Err(format!("{last} not at level {level}")),
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        let mut text = match self.codes {
            [] => "no statuses".to_string(),
            codes => format!("statuses {}", codes.join(" then ")),
        };
        if let Some(level) = self.level {
            text.push_str(&format!(" (level {level})"));
        }
        if self.exactly {
            text.push_str(", nothing else");
        }
        text
    }
}

/// Codes that must not arrive.
struct Forbidden<'a>(&'a [String]);

impl Expectation for Forbidden<'_> {
    fn check(&self, observed: &Observed) -> Result<(), String> {
        let codes = observed.codes();
        match self.0.iter().find(|f| codes.contains(&f.as_str())) {
            Some(code) => Err(format!("{code}, which is forbidden")),
            None => Ok(()),
        }
    }

    fn describe(&self) -> String {
        format!("never {}", self.0.join(" or "))
    }
}

/// The picture sizes a Flash player's own DimensionChange events give.
struct Dimensions<'a>(&'a [String]);

impl Expectation for Dimensions<'_> {
    fn check(&self, observed: &Observed) -> Result<(), String> {
        let sizes: Vec<&str> = observed
            .statuses
            .iter()
            .filter(|s| s.status.code == media::netstatus::code::VIDEO_DIMENSION_CHANGE)
            .map(|s| s.status.description.as_str())
            .collect();
        if sizes != self.0 {
            return Err(format!("picture sizes {sizes:?}, not {:?}", self.0));
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!("picture sizes {}", self.0.join(" then "))
    }
}

/// The server's S2 echoes (true) or does not echo (false) the actor's C1.
struct S2EchoesC1(bool);

impl Expectation for S2EchoesC1 {
    fn check(&self, observed: &Observed) -> Result<(), String> {
        match &observed.handshake {
            None => Err("no handshake completed".into()),
            Some(report) if report.s2_echoes_c1 == self.0 => Ok(()),
            Some(_) if self.0 => Err("S2 is not an echo of C1 (its time or random bytes differ)".into()),
            Some(_) => Err("S2 is an echo of C1".into()),
        }
    }

    fn describe(&self) -> String {
        if self.0 {
            "S2 echoing C1's time and random bytes"
        } else {
            "S2 not echoing C1"
        }
        .into()
    }
}

/// The server closes the connection (true) or keeps it open (false).
struct Closed(bool);

impl Expectation for Closed {
    fn check(&self, observed: &Observed) -> Result<(), String> {
        match (self.0, observed.closed) {
            (true, false) => Err("the connection still open".into()),
            (false, true) => Err("the connection closed".into()),
            _ => Ok(()),
        }
    }

    fn describe(&self) -> String {
        if self.0 {
            "the connection closed"
        } else {
            "the connection kept open"
        }
        .into()
    }
}

/// After the step, a fresh client can (true) or cannot (false) still
/// connect and publish.
struct Survives(bool);

impl Expectation for Survives {
    fn check(&self, observed: &Observed) -> Result<(), String> {
        let survived = matches!(observed.survived, Some(Ok(())));
        if survived != self.0 {
            return Err("the server's survival not as expected".into());
        }
        Ok(())
    }

    fn describe(&self) -> String {
        if self.0 {
            "the server still serving new clients"
        } else {
            "the server no longer serving new clients"
        }
        .into()
    }
}

impl Expectation for &RtmpMediaExpect {
    fn check(&self, observed: &Observed) -> Result<(), String> {
        let media = *self;
        if observed.audio < media.audio || observed.video < media.video {
            let wanted: Vec<String> = [(media.audio, "audio"), (media.video, "video")]
                .into_iter()
                .filter(|(count, _)| *count > 0)
                .map(|(count, kind)| format!("{count} {kind}"))
                .collect();
            // The step's summary counts the messages unless there were none.
            let none = if observed.audio + observed.video == 0 {
                " (none came)"
            } else {
                ""
            };
            return Err(format!("fewer than {} messages{none}", wanted.join(" and ")));
        }
        if media.starts_with_keyframe && observed.first_picture_keyframe == Some(false) {
            return Err("the first picture is not a keyframe (an inter frame came first)".into());
        }
        let seen = &observed.ertmp;
        match media.enhanced {
            Some(true) if seen.enhanced == 0 => return Err("no Enhanced RTMP tag".into()),
            Some(false) if seen.enhanced > 0 => {
                return Err(format!(
                    "{} Enhanced RTMP tags ({})",
                    seen.enhanced,
                    seen.fourccs.iter().cloned().collect::<Vec<_>>().join(", ")
                ))
            }
            _ => {}
        }
        let missing: Vec<&str> = media
            .codecs
            .iter()
            .filter(|c| !seen.fourccs.contains(*c))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            let got = match seen.fourccs.is_empty() {
                true => "none".to_string(),
                false => seen.fourccs.iter().cloned().collect::<Vec<_>>().join(", "),
            };
            return Err(format!("no enhanced tag of {} (got: {got})", missing.join(", ")));
        }
        let unwanted: Vec<&str> = media
            .not_codecs
            .iter()
            .filter(|c| seen.fourccs.contains(*c))
            .map(String::as_str)
            .collect();
        if !unwanted.is_empty() {
            return Err(format!("enhanced tags of {}", unwanted.join(", ")));
        }
        if !media.legacy_codecs.is_empty() {
            let other: Vec<&str> = (seen.legacy.iter().copied())
                .filter(|c| !media.legacy_codecs.iter().any(|allowed| allowed == c))
                .collect();
            if !other.is_empty() {
                return Err(format!("legacy tags of {}", other.join(", ")));
            }
        }
        match media.multitrack {
            Some(true) if seen.multitrack == 0 => return Err("no multitrack message".into()),
            Some(false) if seen.multitrack > 0 => return Err(format!("{} multitrack messages", seen.multitrack)),
            _ => {}
        }
        if media.as_published {
            if let Some(foreign) = &seen.foreign {
                return Err(foreign.clone());
            }
            if seen.compared == 0 {
                return Err("nothing to compare: no publisher of this stream in the case".into());
            }
        }
        observed.rtmp_timing.check(media)
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        match (self.audio, self.video) {
            (0, 0) => {}
            (0, video) => parts.push(format!("at least {video} video messages")),
            (audio, 0) => parts.push(format!("at least {audio} audio messages")),
            (audio, video) => parts.push(format!("at least {audio} audio and {video} video messages")),
        }
        if self.starts_with_keyframe {
            parts.push("video from a keyframe".into());
        }
        if let Some(within) = self.first_video_within {
            parts.push(format!("the first video frame within {within:?}"));
        }
        if let Some(within) = self.first_audio_within {
            parts.push(format!("the first audio frame within {within:?}"));
        }
        if let Some(limit) = self.max_audio_behind_video {
            parts.push(format!("no audio more than {limit:?} behind video already received"));
        }
        if let Some(limit) = self.max_backlog {
            parts.push(format!("a backlog of at most {limit:?}"));
        }
        if let Some(after) = self.no_audio_after {
            parts.push(format!("no audio frame later than {after:?}"));
        }
        if let Some(after) = self.no_video_after {
            parts.push(format!("no video frame later than {after:?}"));
        }
        if let Some(step) = self.max_video_step {
            parts.push(format!("no video frame lost (timestamps at most {step:?} apart)"));
        }
        match self.enhanced {
            Some(true) => parts.push("Enhanced RTMP tags".into()),
            Some(false) => parts.push("no Enhanced RTMP tag".into()),
            None => {}
        }
        if !self.codecs.is_empty() {
            parts.push(format!("tags of {}", self.codecs.join(", ")));
        }
        if !self.legacy_codecs.is_empty() {
            parts.push(format!("legacy tags only of {}", self.legacy_codecs.join(", ")));
        }
        if !self.not_codecs.is_empty() {
            parts.push(format!("no tag of {}", self.not_codecs.join(", ")));
        }
        match self.multitrack {
            Some(true) => parts.push("multitrack messages".into()),
            Some(false) => parts.push("no multitrack message".into()),
            None => {}
        }
        if self.as_published {
            parts.push("every body as the publisher sent it".into());
        }
        parts.join("; ")
    }
}

impl Expectation for &super::ertmp::ServerAnnounces {
    fn check(&self, observed: &Observed) -> Result<(), String> {
        super::ertmp::ServerAnnounces::check(self, observed.connect_properties.as_ref())
    }

    fn describe(&self) -> String {
        super::ertmp::ServerAnnounces::describe(self)
    }
}

/// What a WebRTC player got: every miss is told, the answer's and the media's.
struct WebrtcPlayer<'a> {
    sdp: Option<&'a SdpExpect>,
    media: Option<&'a MediaExpect>,
}

impl Expectation for WebrtcPlayer<'_> {
    fn check(&self, observed: &Observed) -> Result<(), String> {
        let misses: Vec<String> = [
            self.sdp.map(|sdp| sdp.check(observed)),
            self.media.map(|media| media.check(observed)),
        ]
        .into_iter()
        .flatten()
        .filter_map(Result::err)
        .collect();
        if misses.is_empty() {
            Ok(())
        } else {
            Err(misses.join("; "))
        }
    }

    fn describe(&self) -> String {
        let parts: Vec<String> = [self.sdp.map(SdpExpect::describe), self.media.map(MediaExpect::describe)]
            .into_iter()
            .flatten()
            .collect();
        parts.join("; ")
    }
}

impl SdpExpect {
    fn check(&self, observed: &Observed) -> Result<(), String> {
        let sdp = self;
        let answer = observed.sdp.as_ref().ok_or("no SDP answer")?;
        for (kind, want, section) in [
            ("audio", sdp.audio, answer.audio()),
            ("video", sdp.video, answer.video()),
        ] {
            let Some(want) = want else { continue };
            let live = section.filter(|s| !s.rejected);
            let holds = match want {
                SdpMedia::Rejected => live.is_none(),
                SdpMedia::Sends => live.is_some_and(|s| s.answerer_sends()),
                SdpMedia::Receives => live.is_some_and(|s| s.answerer_receives()),
            };
            if !holds {
                let want = match want {
                    SdpMedia::Rejected => "rejected",
                    SdpMedia::Sends => "sending",
                    SdpMedia::Receives => "receiving",
                };
                return Err(format!(
                    "the {kind} m-line is {}, not {want}",
                    describe_section(section)
                ));
            }
        }
        if let Some(codec) = &sdp.audio_codec {
            if !answer.audio().is_some_and(|a| a.has_codec(codec)) {
                return Err(format!("no {codec} in the audio answer"));
            }
        }
        if let Some(codec) = &sdp.video_codec {
            if !answer.video().is_some_and(|v| v.has_codec(codec)) {
                return Err(format!("no {codec} in the video answer"));
            }
        }
        if sdp.fits_offer {
            let offer = observed
                .offer
                .as_ref()
                .ok_or("no offer of this step to check the answer against")?;
            if let Some(misfit) = crate::webrtc::sdp::answer_misfit(offer, answer) {
                return Err(misfit);
            }
        }
        if sdp.candidates && answer.media.iter().all(|m| m.candidates.is_empty()) {
            return Err("the answer holds no a=candidate".into());
        }
        if sdp.same_payload_types {
            let offer = observed
                .offer
                .as_ref()
                .ok_or("no offer of this step to check the answer against")?;
            if let Some(renumbered) = crate::webrtc::sdp::renumbered(offer, answer) {
                return Err(renumbered);
            }
        }
        if let Some(profile) = &sdp.h264_profile_level_id {
            let want = u32::from_str_radix(profile, 16).map_err(|_| format!("bad profile-level-id {profile:?}"))?;
            let answered = answer
                .video()
                .and_then(|v| v.codecs_named("H264").next())
                .and_then(|c| c.profile_level_id());
            if answered != Some(want) {
                return Err(format!("H.264 profile-level-id {answered:06x?}, not {profile}"));
            }
        }
        Ok(())
    }

    /// In words: "an SDP answer sending audio (opus) and rejecting video".
    fn describe(&self) -> String {
        let sdp = self;
        let side = |kind: &str, media: Option<SdpMedia>, codec: &Option<String>| {
            let codec = codec.as_deref().map(|c| format!(" ({c})")).unwrap_or_default();
            match media {
                Some(SdpMedia::Sends) => Some(format!("sending {kind}{codec}")),
                Some(SdpMedia::Receives) => Some(format!("receiving {kind}{codec}")),
                Some(SdpMedia::Rejected) => Some(format!("rejecting {kind} (port 0 or inactive)")),
                None if !codec.is_empty() => Some(format!("{kind}{codec}")),
                None => None,
            }
        };
        let mut parts: Vec<String> = [
            side("audio", sdp.audio, &sdp.audio_codec),
            side("video", sdp.video, &sdp.video_codec),
        ]
        .into_iter()
        .flatten()
        .collect();
        if let Some(profile) = &sdp.h264_profile_level_id {
            parts.push(format!("H.264 profile-level-id {profile}"));
        }
        if sdp.fits_offer {
            parts.push("answering the offer's m-lines, mids, codecs, DTLS role, rtcp-mux and BUNDLE".into());
        }
        if sdp.same_payload_types {
            parts.push("keeping the offer's payload type numbers".into());
        }
        if sdp.candidates {
            parts.push("with ICE candidates".into());
        }
        format!("an SDP answer {}", parts.join(" and "))
    }
}

impl MediaExpect {
    fn check(&self, observed: &Observed) -> Result<(), String> {
        let media = self;
        let report = observed.report.as_ref().ok_or("no player report")?;
        // What these ask is what the case is about: said first.
        if media.sender_reports {
            for (track, packets, reported) in [
                ("audio", report.audio.rtp_packets, report.audio.first_frame_sampled_at),
                ("video", report.video.rtp_packets, report.video.first_frame_sampled_at),
            ] {
                if packets > 0 && reported.is_none() {
                    return Err(format!(
                        "no sender report for the {track} ({packets} RTP packets received)"
                    ));
                }
            }
            if report.audio.rtp_packets + report.video.rtp_packets == 0 {
                return Err("no RTP received".into());
            }
        }
        if media.keyframe_answered {
            let (idr, frames) = observed.keyframe_asked.ok_or("no keyframe request was sent")?;
            if report.video.idr_frames <= idr {
                return Err(format!(
                    "no keyframe since the keyframe request (PLI): {} video frames came, none an IDR",
                    report.video.frames.saturating_sub(frames)
                ));
            }
        }
        if media.restart_checks_answered {
            let peer = &report.peer;
            if peer.ice_restarts == 0 {
                return Err("the player did not restart: the answer carried no new ice-ufrag and ice-pwd".into());
            }
            if peer.checks_answered_since_restart == 0 {
                return Err(format!(
                    "no connectivity check made with the new credentials was answered (ICE {}; {} datagrams in)",
                    peer.ice_state.as_deref().unwrap_or("state unknown"),
                    peer.datagrams_in
                ));
            }
        }
        if let Some(limit) = media.max_av_offset {
            let sync = &report.lip_sync;
            let reported =
                report.video.first_frame_sampled_at.is_some() && report.audio.first_frame_sampled_at.is_some();
            match (sync.median_ms(), sync.worst_ms()) {
                (Some(median), Some(worst)) if sync.offsets_ms.len() >= 3 => {
                    if median.abs() > limit.as_secs_f64() * 1000.0 {
                        let way = |ms: f64| match ms >= 0.0 {
                            true => format!("{ms:.0} ms after"),
                            false => format!("{:.0} ms before", -ms),
                        };
                        let each: Vec<String> = sync.offsets_ms.iter().map(|ms| format!("{ms:+.0}")).collect();
                        return Err(format!(
                            "the sound comes {} the picture on the sender's clock (the median of {} beeps; the furthest {}; each, in ms: {}), more than {limit:?} either way",
                            way(median),
                            sync.offsets_ms.len(),
                            way(worst),
                            each.join(" ")
                        ));
                    }
                }
                _ if !reported => {
                    return Err(format!(
                        "no sender report for {} to place sound and pictures on one clock ({} flashes seen, {} beeps heard)",
                        match report.video.first_frame_sampled_at {
                            None => "the video",
                            Some(_) => "the audio",
                        },
                        sync.flashes,
                        sync.beeps
                    ));
                }
                _ => {
                    return Err(format!(
                        "{} beeps paired with a flash, 3 needed ({} flashes seen, {} beeps heard)",
                        sync.offsets_ms.len(),
                        sync.flashes,
                        sync.beeps
                    ))
                }
            }
        }
        if media.losses_repaired {
            let lost = report.relay_lost;
            if lost < 10 {
                return Err(format!(
                    "too few video packets to see losses repaired: {} came, the relay lost {lost}",
                    report.video.rtp_packets
                ));
            }
            if report.video.discontinuities > 0 {
                return Err(format!(
                    "{} video frames came with packets missing: of the {lost} lost on the way, not all were sent again in time",
                    report.video.discontinuities
                ));
            }
        }
        if let Some(codec) = &media.video_codec {
            let came = report.video.codec.as_deref();
            if !came.is_some_and(|c| c.eq_ignore_ascii_case(codec)) {
                return Err(format!("video in {}, not {codec}", came.unwrap_or("nothing")));
            }
        }
        if report.video.pictures < media.pictures {
            return Err(format!("fewer than {} pictures", media.pictures));
        }
        if media.width.is_some_and(|w| w != report.video.width)
            || media.height.is_some_and(|h| h != report.video.height)
        {
            return Err(format!(
                "pictures of {}x{}, not {}x{}",
                report.video.width,
                report.video.height,
                media.width.unwrap_or(0),
                media.height.unwrap_or(0)
            ));
        }
        if let Some(limit) = media.first_sound_within {
            if report.audio.first_sound_after.is_none_or(|t| t > limit) {
                return Err(format!(
                    "no sound within {limit:?}: {} RTP audio packets, {} frames decoded{}",
                    report.audio.rtp_packets,
                    report.audio.decoded_frames,
                    report
                        .audio
                        .first_sound_after
                        .map(|t| format!(", the first sound after {t:?}"))
                        .unwrap_or_default()
                ));
            }
        }
        if let Some(limit) = media.max_rtp_leap {
            for (track, leap, after) in [
                ("video", report.video.largest_leap, report.video.largest_leap_after),
                ("audio", report.audio.largest_leap, report.audio.largest_leap_after),
            ] {
                if leap > limit {
                    return Err(format!(
                        "the {track} RTP time leapt {:.1} s ahead of the arrival clock between two frames, {:.1} s into playing ({limit:?} allowed)",
                        leap.as_secs_f64(),
                        after.unwrap_or_default().as_secs_f64()
                    ));
                }
            }
        }
        if let Some(limit) = media.max_audio_gap {
            if report.audio.longest_gap > limit {
                return Err(format!(
                    "the sound stopped for {:.2} s, {:.2} s into playing ({limit:?} allowed)",
                    report.audio.longest_gap.as_secs_f64(),
                    report.audio.longest_gap_after.unwrap_or_default().as_secs_f64()
                ));
            }
        }
        if media.audio_as_published {
            let published = observed
                .published
                .as_ref()
                .ok_or("no publisher of this stream in the case")?;
            let digests = &report.audio.payload_digests;
            let foreign = digests.iter().filter(|d| !published.contains(d)).count();
            if digests.is_empty() {
                return Err("no audio payload to compare with the publisher's Opus packets".into());
            }
            if foreign > 0 {
                return Err(format!(
                    "{foreign} of {} audio payloads are not Opus packets the publisher sent",
                    digests.len()
                ));
            }
        }
        if media.audio_continuous && report.audio.sequence_breaks > 0 {
            return Err(format!(
                "the audio RTP sequence broke {} time(s) (lost packets or a new SSRC)",
                report.audio.sequence_breaks
            ));
        }
        if report.audio.decoded_frames < media.audio_frames {
            return Err(format!("fewer than {} audio frames", media.audio_frames));
        }
        if let Some(hz) = media.tone_hz {
            if observed.tone.is_none_or(|t| (t - hz).abs() > 10.0) {
                return Err(format!("no {hz} Hz tone"));
            }
        }
        if let Some(db) = media.min_dbfs {
            if observed.dbfs.is_none_or(|d| d < db) {
                return Err(format!("sound quieter than {db} dBFS"));
            }
        }
        if media.first_frame_idr && report.video.first_frame_was_idr != Some(true) {
            return Err("the first video frame is not an IDR".into());
        }
        if media.pictures_in_order && report.video.out_of_order > 0 {
            return Err(format!(
                "{} of {} video frames were sent after a frame with a later RTP timestamp (B-frames passed through in decode order, or RTP time that went back)",
                report.video.out_of_order, report.video.frames
            ));
        }
        if media.no_video && report.video.frames > 0 {
            return Err("video frames arrived".into());
        }
        if let Some(limit) = media.first_picture_within {
            if report.video.first_picture_after.is_none_or(|t| t > limit) {
                return Err(format!("no picture within {limit:?}"));
            }
        }
        Ok(())
    }

    /// In words: "at least 25 pictures of 320x240 decoded, the first an
    /// IDR, at least 50 audio frames, a 440 Hz tone".
    fn describe(&self) -> String {
        let m = self;
        let mut parts = Vec::new();
        if m.no_video {
            parts.push("no video".to_string());
        }
        if m.pictures > 0 {
            let size = match (m.width, m.height) {
                (Some(w), Some(h)) => format!(" of {w}x{h}"),
                _ => String::new(),
            };
            parts.push(format!("at least {} pictures{size} decoded", m.pictures));
        }
        if let Some(codec) = &m.video_codec {
            parts.push(format!("video in {codec}"));
        }
        if m.first_frame_idr {
            parts.push("the first picture an IDR".into());
        }
        if m.pictures_in_order {
            parts.push("pictures in order".into());
        }
        if let Some(within) = m.first_picture_within {
            parts.push(format!("the first picture within {:.1} s", within.as_secs_f64()));
        }
        if m.audio_frames > 0 {
            parts.push(format!("at least {} audio frames decoded", m.audio_frames));
        }
        if let Some(hz) = m.tone_hz {
            parts.push(format!("a {hz:.0} Hz tone"));
        }
        if let Some(dbfs) = m.min_dbfs {
            parts.push(format!("sound louder than {dbfs:.0} dBFS"));
        }
        if let Some(within) = m.first_sound_within {
            parts.push(format!("the first sound within {:.1} s", within.as_secs_f64()));
        }
        if m.audio_continuous {
            parts.push("sound without gaps".into());
        }
        if m.audio_as_published {
            parts.push("every audio payload an Opus packet as published".into());
        }
        if let Some(gap) = m.max_audio_gap {
            parts.push(format!("no gap in the sound longer than {:.2} s", gap.as_secs_f64()));
        }
        if let Some(leap) = m.max_rtp_leap {
            parts.push(format!("RTP time never {:.1} s ahead of the clock", leap.as_secs_f64()));
        }
        if m.sender_reports {
            parts.push("a sender report for each track".into());
        }
        if m.keyframe_answered {
            parts.push("a keyframe after the keyframe request".into());
        }
        if m.restart_checks_answered {
            parts.push("a connectivity check with the new ICE credentials answered".into());
        }
        if m.losses_repaired {
            parts.push("every lost video packet sent again (no gap)".into());
        }
        if let Some(limit) = m.max_av_offset {
            parts.push(format!(
                "sound within {} ms of its picture (the median beep)",
                limit.as_millis()
            ));
        }
        if parts.is_empty() {
            "media decoded".into()
        } else {
            parts.join(", ")
        }
    }
}

/// A replay compares (true) or does not compare (false) with the captured server.
struct ReplayMatches(bool);

impl Expectation for ReplayMatches {
    fn check(&self, observed: &Observed) -> Result<(), String> {
        match &observed.replay {
            Some((matches, ..)) if *matches == self.0 => Ok(()),
            _ => Err("the replay did not compare as expected".into()),
        }
    }

    fn describe(&self) -> String {
        if self.0 {
            "the same answers as the captured server"
        } else {
            "answers that differ from the captured server's"
        }
        .into()
    }
}

/// Commands of a replay that must get an answer.
struct ReplayAnswered<'a>(&'a [String]);

impl Expectation for ReplayAnswered<'_> {
    fn check(&self, observed: &Observed) -> Result<(), String> {
        let Some((_, summary, unanswered)) = &observed.replay else {
            return Err("no replay".into());
        };
        match self.0.iter().find(|n| unanswered.contains(n)) {
            Some(name) => Err(format!("{name} went unanswered ({summary})")),
            None => Ok(()),
        }
    }

    fn describe(&self) -> String {
        format!("answers to {}", self.0.join(", "))
    }
}

/// Room events in this order, each matching an event whose text starts with it.
struct RoomEvents<'a>(&'a [String]);

impl Expectation for RoomEvents<'_> {
    fn check(&self, observed: &Observed) -> Result<(), String> {
        let mut position = 0;
        for wanted in self.0 {
            match observed.room_events[position..]
                .iter()
                .position(|e| e.starts_with(wanted.as_str()))
            {
                Some(found) => position += found + 1,
                None => return Err(format!("no room event {wanted:?} (in order)")),
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!("room events {}", self.0.join(" then "))
    }
}

impl HookExpect {
    /// Whether a backend call is the one this describes.
    pub(super) fn matches(&self, call: &HookCall) -> bool {
        let hook = self;
        let map = |key: &str| -> BTreeMap<String, String> {
            call.body
                .get(key)
                .and_then(serde_json::Value::as_object)
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_string)))
                        .collect()
                })
                .unwrap_or_default()
        };
        call.hook == hook.call
            && hook.name.as_deref().is_none_or(|n| call.field("name") == Some(n))
            && hook.app_key.as_deref().is_none_or(|k| call.field("appKey") == Some(k))
            && hook.custom.as_ref().is_none_or(|c| *c == map("custom"))
            && hook
                .connection_custom
                .as_ref()
                .is_none_or(|c| *c == map("connectionCustom"))
    }

    fn fields(&self) -> String {
        let hook = self;
        let mut parts = Vec::new();
        if let Some(name) = &hook.name {
            parts.push(format!("name {name:?}"));
        }
        if let Some(key) = &hook.app_key {
            parts.push(format!("appKey {key:?}"));
        }
        if let Some(custom) = &hook.custom {
            parts.push(format!("custom {custom:?}"));
        }
        if let Some(custom) = &hook.connection_custom {
            parts.push(format!("connectionCustom {custom:?}"));
        }
        if parts.is_empty() {
            "any fields".into()
        } else {
            parts.join(", ")
        }
    }
}

impl Expectation for &HookExpect {
    fn check(&self, observed: &Observed) -> Result<(), String> {
        let calls = observed.hook_calls.as_deref().unwrap_or_default();
        if calls.iter().any(|call| self.matches(call)) {
            Ok(())
        } else {
            Err(format!("no {} call with {}", self.call, self.fields()))
        }
    }

    fn describe(&self) -> String {
        format!("a {} hook call with {}", self.call, self.fields())
    }
}

/// At least this many keyframe requests received by the actor's WebRTC publisher.
struct KeyframeRequests(u64);

impl Expectation for KeyframeRequests {
    fn check(&self, observed: &Observed) -> Result<(), String> {
        let least = self.0;
        match observed.keyframe_requests {
            Some(received) if received >= least => Ok(()),
            Some(received) => Err(format!(
                "the publisher received {received} keyframe requests (PLI/FIR), not at least {least}"
            )),
            None => Err("the actor publishes nothing over WebRTC".into()),
        }
    }

    fn describe(&self) -> String {
        format!(
            "at least {} keyframe requests (PLI/FIR) received by the publisher",
            self.0
        )
    }
}

/// Every info object the server sent has a valid `level`.
struct LevelsValid;

impl Expectation for LevelsValid {
    fn check(&self, observed: &Observed) -> Result<(), String> {
        let bad: Vec<&str> = observed
            .statuses
            .iter()
            .filter(|s| s.via != "local" && !s.level_valid)
            .map(|s| s.status.code.as_str())
            .collect();
        if bad.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} without a level of status, warning or error",
                bad.join(", ")
            ))
        }
    }

    fn describe(&self) -> String {
        "every info object with a level of status, warning or error".into()
    }
}

/// `Link` relations a WHEP or WHIP `201` must carry.
struct Links<'a>(&'a [String]);

impl Expectation for Links<'_> {
    fn check(&self, observed: &Observed) -> Result<(), String> {
        let seen = observed.links.as_deref().ok_or("no 201 from a WHEP or WHIP offer")?;
        match self.0.iter().find(|rel| !seen.contains(rel)) {
            None => Ok(()),
            Some(rel) if seen.is_empty() => Err(format!("no Link with rel=\"{rel}\" (the 201 had no Link)")),
            Some(rel) => Err(format!("no Link with rel=\"{rel}\" (the 201's: {})", seen.join(", "))),
        }
    }

    fn describe(&self) -> String {
        format!("a 201 announcing {}", self.0.join(", "))
    }
}

/// Messages the server sent, by a text of their wire-log lines.
struct Received<'a>(&'a [String]);

impl Expectation for Received<'_> {
    fn check(&self, observed: &Observed) -> Result<(), String> {
        let id = observed
            .stream_id
            .map_or("(no stream)".to_string(), |id| id.to_string());
        let missing: Vec<String> = self
            .0
            .iter()
            .map(|text| text.replace("{stream_id}", &id))
            .filter(|text| !observed.received.iter().any(|line| line.contains(text.as_str())))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let controls: Vec<&str> = observed
            .received
            .iter()
            .filter(|l| !l.contains(" audio ts=") && !l.contains(" video ts="))
            .map(|l| l.trim_start_matches("< "))
            .take(12)
            .collect();
        Err(format!(
            "no {} from the server (it sent: {})",
            missing.join(", no "),
            controls.join(" | ")
        ))
    }

    fn describe(&self) -> String {
        format!("the server sends {}", self.0.join(", "))
    }
}

/// Messages the server must not send, by a text of their wire-log lines.
struct NotReceived<'a>(&'a [String]);

impl Expectation for NotReceived<'_> {
    fn check(&self, observed: &Observed) -> Result<(), String> {
        let id = observed
            .stream_id
            .map_or("(no stream)".to_string(), |id| id.to_string());
        let sent: Vec<&str> = observed
            .received
            .iter()
            .filter(|line| {
                self.0
                    .iter()
                    .any(|text| line.contains(text.replace("{stream_id}", &id).as_str()))
            })
            .map(|line| line.trim_start_matches("< "))
            .collect();
        match sent.first() {
            None => Ok(()),
            Some(first) => Err(format!("the server sent {first}")),
        }
    }

    fn describe(&self) -> String {
        format!("the server never sends {}", self.0.join(" or "))
    }
}

/// The latest onMetaData data message holds these texts.
struct LatestMetadata<'a>(&'a [String]);

impl Expectation for LatestMetadata<'_> {
    fn check(&self, observed: &Observed) -> Result<(), String> {
        let Some(latest) = observed
            .received
            .iter()
            .rev()
            .find(|line| line.contains("] data \"onMetaData\""))
        else {
            let named: Vec<&str> = observed
                .received
                .iter()
                .filter(|line| line.contains("] data "))
                .map(|line| line.trim_start_matches("< "))
                .take(4)
                .collect();
            return Err(format!(
                "no onMetaData data message from the server (its data messages: {})",
                if named.is_empty() {
                    "none".to_string()
                } else {
                    named.join(" | ")
                }
            ));
        };
        let missing: Vec<&str> = self
            .0
            .iter()
            .filter(|text| !latest.contains(text.as_str()))
            .map(String::as_str)
            .collect();
        match missing.is_empty() {
            true => Ok(()),
            false => Err(format!(
                "the latest onMetaData has no {}: {}",
                missing.join(", no "),
                latest.trim_start_matches("< ")
            )),
        }
    }

    fn describe(&self) -> String {
        format!("the latest onMetaData holds {}", self.0.join(", "))
    }
}

/// The answer to a call starts with this.
struct CallAnswer<'a>(&'a str);

impl Expectation for CallAnswer<'_> {
    fn check(&self, observed: &Observed) -> Result<(), String> {
        match &observed.answer {
            Some(answer) if answer.starts_with(self.0) => Ok(()),
            Some(answer) => Err(format!("the answer {answer}")),
            None => Err("no answer".into()),
        }
    }

    fn describe(&self) -> String {
        format!("the answer {}", self.0)
    }
}

/// How the action itself ended: refused with an answer (`refused = true`),
/// answered and not refused (`false`), or, unasked, without an error.
struct Answer(Option<bool>);

impl Expectation for Answer {
    fn check(&self, observed: &Observed) -> Result<(), String> {
        match (self.0, &observed.error) {
            (Some(true), _) if observed.refusal.is_some() => Ok(()),
            (Some(true), Some(error)) => Err(format!(
                "no refusal (an HTTP 4xx or a FAILED status) but a failure without an answer: {error}"
            )),
            (Some(true), None) => Err("the action was not refused".into()),
            (Some(false), _) if observed.refusal.is_some() => Err("the action was refused".into()),
            (Some(false), Some(error)) => Err(format!("neither an answer nor a refusal: {error}")),
            (Some(_), _) => Ok(()),
            (None, Some(_)) => Err("the action failed".into()),
            (None, None) => Ok(()),
        }
    }

    fn describe(&self) -> String {
        match self.0 {
            Some(true) => "a refusal".into(),
            Some(false) => "an answer that is not a refusal".into(),
            None => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use media::netstatus::{Level, NetStatus};

    use super::*;

    #[test]
    fn an_http_answer_is_checked_by_status_class_header_and_body() {
        let answer = crate::webrtc::http::Exchange {
            method: crate::webrtc::http::Method::Post,
            url: "http://h/whip/live/s".into(),
            status: 201,
            headers: vec![
                ("location".into(), "/whip/live/s/1".into()),
                ("access-control-allow-headers".into(), "Content-Type, If-Match".into()),
            ],
            body: "v=0\r\n".into(),
        };
        let observed = Observed {
            http: Some(answer),
            ..Observed::default()
        };
        let expect: Expect = toml::from_str(
            r#"http = { status = ["2xx"], headers = { Location = "", "Access-Control-Allow-Headers" = "content-type|*" }, absent = ["ETag"], body = ["v=0"] }"#,
        )
        .unwrap();
        assert_eq!(expect.check(&observed), Ok(()));
        let wrong: Expect = toml::from_str(
            r#"http = { status = [204, "4xx"], headers = { ETag = "" }, absent = ["Location"], empty_body = true }"#,
        )
        .unwrap();
        assert_eq!(
            wrong.check(&observed),
            Err("status 201, no ETag, Location: /whip/live/s/1, a body of 5 bytes".into())
        );
        assert_eq!(wrong.describe(), "HTTP 204 or 4xx, ETag present, no Location, no body");
    }

    #[test]
    fn a_status_in_on_fc_publish_is_not_what_an_encoder_waits_for() {
        let mut seen = observed(&[("NetStream.Publish.Start", Level::Status)]);
        seen.statuses[0].via = "onFCPublish".into();
        let started = expect(&["NetStream.Publish.Start"]);
        assert_eq!(
            started.check(&seen),
            Err("no NetStream.Publish.Start (in order)".into())
        );
        assert_eq!(
            seen.describe(),
            "statuses [NetStream.Publish.Start (status, in onFCPublish)]"
        );
        let refused: Expect = toml::from_str(r#"forbidden = ["NetStream.Publish.Start"]"#).unwrap();
        assert_eq!(refused.check(&seen), Ok(()));
        seen.statuses[0].via = "onStatus".into();
        assert_eq!(started.check(&seen), Ok(()));
        assert!(refused.check(&seen).is_err());
    }

    fn observed(codes: &[(&str, Level)]) -> Observed {
        Observed {
            statuses: codes
                .iter()
                .map(|(code, level)| StatusEvent {
                    stream_id: 1,
                    via: "onStatus".into(),
                    status: NetStatus::new(*level, code, ""),
                    level_valid: true,
                })
                .collect(),
            ..Observed::default()
        }
    }

    fn expect(statuses: &[&str]) -> Expect {
        Expect {
            statuses: statuses.iter().map(|s| s.to_string()).collect(),
            ..Expect::default()
        }
    }

    #[test]
    fn statuses_are_checked_in_order_with_levels_and_forbidden_codes() {
        let seen = observed(&[
            ("NetStream.Play.Reset", Level::Status),
            ("NetStream.Play.Start", Level::Status),
        ]);
        assert!(expect(&["NetStream.Play.Reset", "NetStream.Play.Start"])
            .check(&seen)
            .is_ok());
        assert!(expect(&["NetStream.Play.Start", "NetStream.Play.Reset"])
            .check(&seen)
            .is_err());
        let exactly = Expect {
            exactly: true,
            ..expect(&["NetStream.Play.Start"])
        };
        assert!(exactly.check(&seen).is_err());
        let forbidden = Expect {
            forbidden: vec!["NetStream.Play.Reset".into()],
            ..Expect::default()
        };
        assert!(forbidden.check(&seen).unwrap_err().contains("forbidden"));
        let level = Expect {
            level: Some("error".into()),
            ..expect(&["NetStream.Play.Start"])
        };
        assert_eq!(
            level.check(&seen).unwrap_err(),
            "NetStream.Play.Start not at level error"
        );
    }

    #[test]
    fn info_objects_without_a_valid_level_are_named() {
        let mut seen = observed(&[
            ("NetStream.Publish.Start", Level::Status),
            ("NetStream.Play.Start", Level::Status),
        ]);
        let expect = Expect {
            levels_valid: true,
            ..Expect::default()
        };
        assert!(expect.check(&seen).is_ok());
        seen.statuses[1].level_valid = false;
        assert_eq!(
            expect.check(&seen).unwrap_err(),
            "NetStream.Play.Start without a level of status, warning or error"
        );
        assert_eq!(
            expect.describe(),
            "every info object with a level of status, warning or error"
        );
        // A level the parser defaulted (none was sent) is not the level asked for.
        let at_status = Expect {
            statuses: vec!["NetStream.Play.Start".into()],
            level: Some("status".into()),
            ..Expect::default()
        };
        assert_eq!(
            at_status.check(&seen).unwrap_err(),
            "NetStream.Play.Start without a valid level"
        );
    }

    #[test]
    fn an_expectation_reads_as_its_parts_in_order() {
        let expect = Expect {
            closed: Some(true),
            survives: Some(true),
            within: Some(Duration::from_secs(65)),
            ..expect(&["NetConnection.Connect.Success"])
        };
        assert_eq!(
            expect.describe(),
            "statuses NetConnection.Connect.Success; the connection closed; \
             the server still serving new clients; within 65s"
        );
        assert_eq!(Expect::default().describe(), "the action to succeed");
        let refused = Expect {
            refused: Some(true),
            ..Expect::default()
        };
        assert_eq!(refused.describe(), "a refusal");
        let failed = Observed {
            error: Some("connection refused".into()),
            ..Observed::default()
        };
        assert_eq!(
            refused.check(&failed).unwrap_err(),
            "no refusal (an HTTP 4xx or a FAILED status) but a failure without an answer: connection refused",
            "a closed socket is not a refusal"
        );
        assert_eq!(Expect::default().check(&failed).unwrap_err(), "the action failed");
    }
}
