//! Scenarios as data: one TOML file per case under `scenarios/<area>/`.
//!
//! A scenario names the requirement it checks, how strict it is, the actors
//! it needs and the steps they take; each step may carry expectations, or
//! several acceptable outcomes each with its own verdict. The file's path
//! below `scenarios/` is its id (`scenarios/rtmp/netstatus/publish-badname.toml`
//! is `rtmp/netstatus/publish-badname`), and the `id` written in the file must
//! agree. Unknown keys are errors, so a typo never silently weakens a check.
//!
//! ```toml
//! id = "rtmp/netstatus/publish-badname"
//! title = "A second publisher of a live name is refused"
//! requirement = "While a name is published, another publish of it is answered NetStream.Publish.BadName."
//! strictness = "required"
//!
//! [actors]
//! first = "encoder"
//! second = "flash"
//!
//! [[step]]
//! actor = "first"
//! action = "publish"
//! stream = "dup"
//! expect = { statuses = ["NetStream.Publish.Start"] }
//!
//! [[step]]
//! actor = "second"
//! action = "publish"
//! stream = "dup"
//! expect = { statuses = ["NetStream.Publish.BadName"], level = "error" }
//! ```
//!
//! The step actions, their parameters and the expectations are documented on
//! [`Step`], [`Action`] and [`Expect`]; `scenarios/README.md` has the tour.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod run;
mod series;
mod timing;

pub use run::{run_case, RunOptions};
pub use series::{run_series, Watch};

use crate::target::Capability;

/// How much a scenario's requirement matters, which decides the verdict when
/// an expectation is missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strictness {
    /// A MUST: a miss is FAILED.
    Required,
    /// A SHOULD: a miss is NON-STRICT (FAILED under `--strict`).
    Recommended,
    /// Behaviour worth knowing, right either way: a miss is INFORMATIONAL.
    Informational,
}

/// The clients a scenario can put on stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActorKind {
    /// Flash Player: digest handshake, objectEncoding 3 (type-17 commands),
    /// the Flash connect object plus `{login, appKey}` as extra argument,
    /// `closeStream` to stop; raises `NetStream.Video.DimensionChange` as a
    /// player when the H.264 picture size is first known or changes.
    Flash,
    /// An encoder (OBS, ffmpeg, FMLE): simple handshake, AMF0,
    /// releaseStream/FCPublish/FCUnpublish/deleteStream.
    Encoder,
    /// A WebRTC player or publisher (str0m) that decodes what it receives.
    Webrtc,
    /// A bare TCP connection for raw bytes.
    Raw,
    /// The application backend: an HTTP server inside the suite that the
    /// target's hooks call (docs/backend-hooks.md) and that allows every
    /// call. The embedded target is pointed at it (the `backend-hooks`
    /// capability).
    Backend,
}

/// One scenario file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// `area/topic/case`, equal to the file's path below `scenarios/`.
    pub id: String,
    /// One line.
    pub title: String,
    /// The requirement checked, quoted or paraphrased in a sentence or two.
    pub requirement: String,
    /// Where the requirement comes from (a spec section, a known issue).
    #[serde(default)]
    pub reference: Option<String>,
    /// What a miss means.
    pub strictness: Strictness,
    /// What the target must offer beyond what the actors imply; a target
    /// without it makes the case UNIMPLEMENTED.
    #[serde(default)]
    pub needs: Vec<Capability>,
    /// The whole case's time limit (default: the run's).
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// The actors by name.
    pub actors: BTreeMap<String, ActorKind>,
    /// What happens, in order.
    #[serde(rename = "step")]
    pub steps: Vec<Step>,
    /// The file it was read from (`scenarios/<id>.toml` for a built-in one).
    #[serde(skip)]
    pub path: PathBuf,
}

/// What a step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// RTMP `connect` to the target's application (or `app`), with
    /// `params` in the URL (`c1=v1&c2=v2`) and `args` as extra arguments
    /// (Flash actors add `{login, appKey}` unless `args` is given).
    /// Expectations: `statuses` (NetConnection codes), `level`.
    Connect,
    /// `createStream` (if the actor has none for `stream`), then `publish
    /// stream`; connects first if needed. With `media`, the FLV fixture
    /// (path below `fixtures/`, `tracks` audio/video/both) is sent from then
    /// on, in real time unless `realtime = false`, for at most `seconds`.
    Publish,
    /// `createStream` then `play stream` (RTMP). Expectations: `statuses`,
    /// `rtmp_media` (messages received within `within`).
    Play,
    /// Stops publishing `stream` the way the actor's client does (a WebRTC
    /// actor stops its publisher, and keeps playing).
    Unpublish,
    /// Closes the actor's connection (or ends its WebRTC session).
    Disconnect,
    /// Waits for NetStatus events on the actor (`expect.statuses` within
    /// `expect.within`); on a WebRTC actor, checks what its player has got
    /// so far (`expect.media`).
    Wait,
    /// Waits `ms` milliseconds.
    Sleep,
    /// Sends `hex` (or the file `bytes`, below `fixtures/`) on a raw
    /// connection, after a simple handshake unless `handshake = false`.
    /// Expectations: `closed`, `survives`.
    SendRaw,
    /// Plays `stream` over WebRTC (`signalling` = `whep` or `ws`).
    /// Expectations: `sdp`, `media`.
    WebrtcPlay,
    /// Publishes `stream` over WebRTC (`signalling` = `whip` or `ws`): a
    /// moving test pattern and a `tone_hz` tone.
    WebrtcPublish,
    /// Replays the RTMP capture `capture` (a pcap/pcapng below `fixtures/`,
    /// or the client's and the server's raw bytes: two paths separated by a
    /// space) and compares the answers with the captured server's.
    Replay,
    /// Waits for the backend actor to receive a hook call (since the case
    /// began) that matches `expect.hook`.
    Hook,
    /// Joins `room` as `participant` (RTMP: a `sendData` call; WebRTC
    /// actors: their WebSocket session). Expectations: `room_events`.
    JoinRoom,
    /// Leaves `room`.
    LeaveRoom,
    /// Sends `text` to the others in `room` (or only to `to`).
    RoomMessage,
    /// A WebRTC actor's publisher switches to pictures of `size` (`WxH`)
    /// from its next frame, an IDR with new parameter sets.
    Resize,
}

/// One step of a scenario. Which parameters apply depends on the action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// The actor acting (every action but `sleep`).
    #[serde(default)]
    pub actor: Option<String>,
    /// What it does.
    pub action: Action,
    /// The stream name (made unique per run by the runner; a `?query` stays).
    #[serde(default)]
    pub stream: Option<String>,
    /// The RTMP application, instead of the target's.
    #[serde(default)]
    pub app: Option<String>,
    /// URL parameters of `connect` (`c1=v1&c2=v2`).
    #[serde(default)]
    pub params: Option<String>,
    /// Extra arguments of `connect`, as AMF values (tables become objects).
    #[serde(default)]
    pub args: Option<Vec<toml::Value>>,
    /// An FLV file below `fixtures/` to publish.
    #[serde(default)]
    pub media: Option<String>,
    /// Which tracks of `media` to send: `audio`, `video` or `both` (default).
    #[serde(default)]
    pub tracks: Option<String>,
    /// Send `media` at its own pace (default) or as fast as possible.
    #[serde(default)]
    pub realtime: Option<bool>,
    /// Send at most this many seconds of `media`.
    #[serde(default)]
    pub seconds: Option<u32>,
    /// Send `media`'s script tags (its `onMetaData`); default true. Flash
    /// Player itself sends no metadata.
    #[serde(default)]
    pub metadata: Option<bool>,
    /// Send no video of `media` before this many milliseconds (a camera
    /// that starts after the microphone): video begins at the first
    /// keyframe from then on, after the sequence header.
    #[serde(default)]
    pub video_after: Option<u32>,
    /// WebRTC signalling: `whep`, `whip` or `ws`.
    #[serde(default)]
    pub signalling: Option<String>,
    /// Offer audio (WebRTC players; default true).
    #[serde(default)]
    pub audio: Option<bool>,
    /// Offer video (WebRTC players; default true).
    #[serde(default)]
    pub video: Option<bool>,
    /// A WebRTC publisher's tone.
    #[serde(default)]
    pub tone_hz: Option<f64>,
    /// How often a WebRTC publisher makes a keyframe on its own (default
    /// 2 s); it always makes one when asked (PLI/FIR). A browser may make
    /// one in 20 s or more.
    #[serde(default, with = "humantime_serde")]
    pub keyframe_interval: Option<Duration>,
    /// The WebRTC client's shape: `default` or `safari` (Safari's H.264
    /// profiles, High before Constrained Baseline).
    #[serde(default)]
    pub profile: Option<String>,
    /// Raw bytes in hex (spaces allowed).
    #[serde(default)]
    pub hex: Option<String>,
    /// Raw bytes from a file below `fixtures/`.
    #[serde(default)]
    pub bytes: Option<String>,
    /// Do the simple handshake before raw bytes (default true).
    #[serde(default)]
    pub handshake: Option<bool>,
    /// A picture size, `WxH` (`resize`).
    #[serde(default)]
    pub size: Option<String>,
    /// A room (made unique per run like stream names).
    #[serde(default)]
    pub room: Option<String>,
    /// A participant's name in a room.
    #[serde(default)]
    pub participant: Option<String>,
    /// A room message's text.
    #[serde(default)]
    pub text: Option<String>,
    /// A room message's one addressee.
    #[serde(default)]
    pub to: Option<String>,
    /// A capture below `fixtures/` (or two raw direction files, space-separated).
    #[serde(default)]
    pub capture: Option<String>,
    /// For `sleep`.
    #[serde(default)]
    pub ms: Option<u64>,
    /// What must follow.
    #[serde(default)]
    pub expect: Option<Expect>,
    /// Acceptable outcomes, best first, tried in order; the first that holds
    /// gives its verdict. An RTMP step waits for the first outcome (until
    /// `within`, or the connection closes) before it settles for a lesser
    /// one. None holding is a miss of the scenario's strictness.
    #[serde(default, rename = "outcome")]
    pub outcomes: Vec<Outcome>,
}

/// One acceptable outcome of a step and what it is worth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    /// The verdict when it holds: `ok`, `non-strict`, `informational` or `failed`.
    pub verdict: crate::verdict::Verdict,
    /// Why this outcome is worth that verdict.
    #[serde(default)]
    pub note: Option<String>,
    /// What it looks like.
    #[serde(flatten)]
    pub expect: Expect,
}

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
    /// Room events the actor must receive, in this order (others may come
    /// between), since its previous step: `STATE alice,bob` (the others, by
    /// name), `JOINED bob`, `LEFT bob`, `PUBLISHED bob STREAM`, `MESSAGE
    /// bob: TEXT`, `FAILED INFO`. Each matches an event whose text starts
    /// with it.
    #[serde(default)]
    pub room_events: Vec<String>,
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
    /// The first video message must be a sequence header or a keyframe.
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
}

/// What a WebRTC player must decode, within `Expect::within`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaExpect {
    /// At least this many decoded pictures.
    #[serde(default)]
    pub pictures: u64,
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
    /// The audio RTP sequence never breaks (no loss, no new SSRC).
    #[serde(default)]
    pub audio_continuous: bool,
    /// The first decoded audio louder than -50 dBFS must come this soon
    /// after the offer was sent.
    #[serde(default, with = "humantime_serde")]
    pub first_sound_within: Option<Duration>,
}

/// Why scenarios could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not a valid scenario.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The scenarios built into the suite (the repository's `scenarios/`), sorted by id.
pub fn embedded() -> Result<Vec<Scenario>, ScenarioError> {
    let scenarios = crate::shipped::SCENARIOS
        .iter()
        .map(|(name, bytes)| {
            let path = Path::new("scenarios").join(name);
            let text = std::str::from_utf8(bytes).map_err(|e| ScenarioError::Invalid {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            parse(text, name.trim_end_matches(".toml"), &path)
        })
        .collect::<Result<Vec<_>, _>>()?;
    sorted_unique(scenarios)
}

/// The built-in scenarios, with those of `extra` (a directory laid out like
/// `scenarios/`) added, or in place of the built-in ones of the same id.
pub fn with_extra(extra: Option<&Path>) -> Result<Vec<Scenario>, ScenarioError> {
    let mut all = embedded()?;
    if let Some(dir) = extra {
        for scenario in load_dir(dir)? {
            match all.binary_search_by(|s| s.id.cmp(&scenario.id)) {
                Ok(at) => all[at] = scenario,
                Err(at) => all.insert(at, scenario),
            }
        }
    }
    Ok(all)
}

/// Loads every `*.toml` below `dir`, sorted by id; checks each.
pub fn load_dir(dir: &Path) -> Result<Vec<Scenario>, ScenarioError> {
    let mut files = Vec::new();
    collect(dir, &mut files)?;
    let scenarios = files
        .iter()
        .map(|file| load(dir, file))
        .collect::<Result<Vec<_>, _>>()?;
    sorted_unique(scenarios)
}

fn sorted_unique(mut scenarios: Vec<Scenario>) -> Result<Vec<Scenario>, ScenarioError> {
    scenarios.sort_by(|a, b| a.id.cmp(&b.id));
    for pair in scenarios.windows(2) {
        if pair[0].id == pair[1].id {
            return Err(ScenarioError::Invalid {
                path: pair[1].path.clone(),
                reason: format!("id {} is used twice", pair[1].id),
            });
        }
    }
    Ok(scenarios)
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), ScenarioError> {
    let read = |source| ScenarioError::Read {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(read)? {
        let path = entry.map_err(read)?.path();
        if path.is_dir() {
            collect(&path, files)?;
        } else if path.extension().is_some_and(|e| e == "toml") {
            files.push(path);
        }
    }
    Ok(())
}

/// Loads and checks the scenario in `file`, whose id must be its path below `root`.
pub fn load(root: &Path, file: &Path) -> Result<Scenario, ScenarioError> {
    let text = std::fs::read_to_string(file).map_err(|source| ScenarioError::Read {
        path: file.to_path_buf(),
        source,
    })?;
    let expected_id = file
        .strip_prefix(root)
        .ok()
        .and_then(|p| p.with_extension("").to_str().map(|s| s.replace('\\', "/")))
        .unwrap_or_default();
    parse(&text, &expected_id, file)
}

/// Parses and checks a scenario whose id must be `expected_id`; `path` names it in errors.
fn parse(text: &str, expected_id: &str, path: &Path) -> Result<Scenario, ScenarioError> {
    let invalid = |reason: String| ScenarioError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let mut scenario: Scenario = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
    scenario.path = path.to_path_buf();
    if expected_id != scenario.id {
        return Err(invalid(format!(
            "id {:?} does not match the file's path (expected {expected_id:?})",
            scenario.id
        )));
    }
    scenario.check().map_err(invalid)?;
    Ok(scenario)
}

impl Scenario {
    /// Whether a backend actor receives the target's hooks.
    pub fn has_backend(&self) -> bool {
        self.actors.values().any(|kind| *kind == ActorKind::Backend)
    }

    /// Checks that every step names a known actor of the right kind and has
    /// the parameters its action needs.
    pub fn check(&self) -> Result<(), String> {
        if self.steps.is_empty() {
            return Err("no steps".into());
        }
        for (index, step) in self.steps.iter().enumerate() {
            let at = |reason: String| format!("step {}: {reason}", index + 1);
            let kind = match (&step.actor, step.action) {
                (None, Action::Sleep) => None,
                (None, _) => return Err(at(format!("{:?} needs an actor", step.action))),
                (Some(name), _) => Some(
                    *self
                        .actors
                        .get(name)
                        .ok_or_else(|| at(format!("unknown actor {name:?}")))?,
                ),
            };
            let rtmp = matches!(kind, Some(ActorKind::Flash | ActorKind::Encoder));
            let fits = match step.action {
                Action::Connect => rtmp,
                Action::Unpublish | Action::Wait => rtmp || kind == Some(ActorKind::Webrtc),
                Action::Publish | Action::Play => rtmp && step.stream.is_some(),
                Action::Disconnect => kind.is_some_and(|k| k != ActorKind::Backend),
                Action::Sleep => step.ms.is_some(),
                Action::SendRaw => kind == Some(ActorKind::Raw) && (step.hex.is_some() || step.bytes.is_some()),
                Action::WebrtcPlay | Action::WebrtcPublish => kind == Some(ActorKind::Webrtc) && step.stream.is_some(),
                Action::Replay => rtmp && step.capture.is_some(),
                Action::Resize => {
                    kind == Some(ActorKind::Webrtc) && step.size.as_deref().and_then(parse_size).is_some()
                }
                Action::JoinRoom | Action::LeaveRoom | Action::RoomMessage => {
                    (rtmp || kind == Some(ActorKind::Webrtc))
                        && step.room.is_some()
                        && (step.action != Action::JoinRoom || step.participant.is_some())
                        && (step.action != Action::RoomMessage || step.text.is_some())
                }
                Action::Hook => {
                    kind == Some(ActorKind::Backend)
                        && (step.expect.as_ref().is_some_and(|e| e.hook.is_some())
                            || step.outcomes.iter().any(|o| o.expect.hook.is_some()))
                }
            };
            if !fits {
                return Err(at(format!(
                    "{:?} does not fit actor kind {kind:?} or lacks its parameter (stream, ms, hex/bytes, capture, expect.hook, room, participant, text, size WxH)",
                    step.action
                )));
            }
            if let Some(tracks) = &step.tracks {
                if !matches!(tracks.as_str(), "audio" | "video" | "both") {
                    return Err(at(format!("tracks must be audio, video or both, not {tracks:?}")));
                }
            }
            if let Some(profile) = &step.profile {
                if !matches!(profile.as_str(), "default" | "safari") {
                    return Err(at(format!("profile must be default or safari, not {profile:?}")));
                }
            }
            if let Some(signalling) = &step.signalling {
                let ok = match step.action {
                    Action::WebrtcPlay => matches!(signalling.as_str(), "whep" | "ws"),
                    Action::WebrtcPublish => matches!(signalling.as_str(), "whip" | "ws"),
                    _ => false,
                };
                if !ok {
                    return Err(at(format!("signalling {signalling:?} does not fit {:?}", step.action)));
                }
            }
        }
        Ok(())
    }

    /// Everything the target must offer for this case: `needs` plus what
    /// the steps imply.
    pub fn capabilities(&self) -> Vec<Capability> {
        let mut all = self.needs.clone();
        if self.has_backend() {
            all.push(Capability::BackendHooks);
        }
        for step in &self.steps {
            let webrtc = step.actor.as_ref().and_then(|a| self.actors.get(a)) == Some(&ActorKind::Webrtc);
            if webrtc && matches!(step.action, Action::Wait | Action::Unpublish | Action::Resize) {
                continue; // what the actor's own play or publish step needs
            }
            let implied = match (step.action, step.signalling.as_deref()) {
                (Action::Connect | Action::Wait | Action::Unpublish | Action::SendRaw | Action::Replay, _) => {
                    Capability::Rtmp
                }
                (Action::Publish, _) => Capability::RtmpPublish,
                (Action::Play, _) => Capability::RtmpPlay,
                (Action::WebrtcPlay, Some("ws")) | (Action::WebrtcPublish, Some("ws")) => Capability::WebSocket,
                (Action::WebrtcPlay, _) => Capability::Whep,
                (Action::WebrtcPublish, _) => Capability::Whip,
                (Action::Hook, _) => Capability::BackendHooks,
                (Action::JoinRoom | Action::LeaveRoom | Action::RoomMessage, _) => Capability::Rooms,
                (Action::Resize, _) => continue,
                (Action::Disconnect | Action::Sleep, _) => continue,
            };
            all.push(implied);
        }
        all.sort();
        all.dedup();
        all
    }
}

/// `WxH` as (width, height).
pub fn parse_size(text: &str) -> Option<(usize, usize)> {
    let (w, h) = text.split_once('x')?;
    Some((w.trim().parse().ok()?, h.trim().parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_scenarios_load() {
        let scenarios = embedded().unwrap();
        assert!(scenarios.len() >= 25, "{} scenarios", scenarios.len());
        let on_disk = load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")).unwrap();
        let ids = |list: &[Scenario]| list.iter().map(|s| s.id.clone()).collect::<Vec<_>>();
        assert_eq!(
            ids(&scenarios),
            ids(&on_disk),
            "the built-in scenarios are the repository's"
        );
    }

    #[test]
    fn typos_and_misfits_are_errors() {
        let dir = std::env::temp_dir().join(format!("scenario-check-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("a")).unwrap();
        let write = |text: &str| {
            let file = dir.join("a/b.toml");
            std::fs::write(&file, text).unwrap();
            load(&dir, &file).map(|_| ()).map_err(|e| e.to_string())
        };
        let head =
            "id = \"a/b\"\ntitle = \"t\"\nrequirement = \"r\"\nstrictness = \"required\"\n[actors]\np = \"flash\"\n";
        assert!(write(&format!("{head}[[step]]\nactor = \"p\"\naction = \"connect\"\n")).is_ok());
        let typo = write(&format!(
            "{head}[[step]]\nactor = \"p\"\naction = \"connect\"\nexpect = {{ statusses = [] }}\n"
        ));
        assert!(typo.unwrap_err().contains("statusses"));
        let wrong_actor = write(&format!("{head}[[step]]\nactor = \"q\"\naction = \"connect\"\n"));
        assert!(wrong_actor.unwrap_err().contains("unknown actor"));
        let misfit = write(&format!(
            "{head}[[step]]\nactor = \"p\"\naction = \"webrtc-play\"\nstream = \"s\"\n"
        ));
        assert!(misfit.unwrap_err().contains("does not fit"));
        let outcomes = format!(
            "{head}[[step]]\nactor = \"p\"\naction = \"connect\"\n[[step.outcome]]\nverdict = \"ok\"\nstatuses = [\"NetConnection.Connect.Success\"]\n[[step.outcome]]\nverdict = \"non-strict\"\nnote = \"n\"\nstatuses = [\"NetConnection.Connect.Rejected\"]\n"
        );
        assert!(write(&outcomes).is_ok(), "{:?}", write(&outcomes));
        let scenario = load(&dir, &dir.join("a/b.toml")).unwrap();
        assert_eq!(scenario.steps[0].outcomes.len(), 2);
        assert_eq!(
            scenario.steps[0].outcomes[1].verdict,
            crate::verdict::Verdict::NonStrict
        );
        assert_eq!(
            scenario.steps[0].outcomes[1].expect.statuses,
            ["NetConnection.Connect.Rejected"]
        );
        let outcome_typo = write(&outcomes.replace("note = ", "note_ = "));
        assert!(outcome_typo.is_err(), "a typo in an outcome is an error");
        let bad_id = write(&format!("{head}[[step]]\nactor = \"p\"\naction = \"connect\"\n").replace("a/b", "a/c"));
        assert!(bad_id.unwrap_err().contains("does not match"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
