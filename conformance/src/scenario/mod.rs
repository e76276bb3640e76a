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

mod expect;
mod run;
mod series;
mod timing;

pub use expect::{Expect, HookExpect, MediaExpect, RtmpMediaExpect, SdpExpect, SdpMedia};
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

/// What a step does, with the parameters of that action and no others: a
/// parameter another action takes is an unknown field here, and one the
/// action needs is a missing field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Action {
    /// RTMP `connect` to the target's application (or `app`), with
    /// `params` in the URL (`c1=v1&c2=v2`) and `args` as extra arguments
    /// (Flash actors add `{login, appKey}` unless `args` is given; tables
    /// become AMF objects). Other RTMP actions connect this way with no
    /// parameters when the actor is not connected yet.
    /// Expectations: `statuses` (NetConnection codes), `level`.
    Connect {
        /// The RTMP application, instead of the target's.
        #[serde(default)]
        app: Option<String>,
        /// URL parameters (`c1=v1&c2=v2`).
        #[serde(default)]
        params: Option<String>,
        /// Extra arguments, as AMF values.
        #[serde(default)]
        args: Option<Vec<toml::Value>>,
    },
    /// `createStream` (if the actor has none for `stream`), then `publish
    /// stream`. With `media`, the FLV fixture (path below `fixtures/`) is
    /// sent from then on.
    Publish {
        /// The stream name (made unique per run by the runner; a `?query` stays).
        stream: String,
        /// An FLV file below `fixtures/` to publish.
        #[serde(default)]
        media: Option<String>,
        /// Which tracks of `media` to send (default both).
        #[serde(default)]
        tracks: Tracks,
        /// Send `media` at its own pace (default) or as fast as possible.
        #[serde(default = "yes")]
        realtime: bool,
        /// Send at most this many seconds of `media`.
        #[serde(default)]
        seconds: Option<u32>,
        /// Send `media`'s script tags (its `onMetaData`); default true.
        /// Flash Player itself sends no metadata.
        #[serde(default = "yes")]
        metadata: bool,
        /// Send no video of `media` before this many milliseconds (a
        /// camera that starts after the microphone): video begins at the
        /// first keyframe from then on, after the sequence header.
        #[serde(default)]
        video_after: Option<u32>,
    },
    /// `createStream` then `play stream` (RTMP). Expectations: `statuses`,
    /// `rtmp_media` (messages received within `within`).
    Play {
        /// The stream name.
        stream: String,
    },
    /// Stops publishing `stream` the way the actor's client does (a WebRTC
    /// actor stops its publisher, and keeps playing; it names no stream).
    Unpublish {
        /// The stream (RTMP actors).
        #[serde(default)]
        stream: Option<String>,
    },
    /// Closes the actor's connection (or ends its WebRTC session).
    Disconnect {},
    /// Waits for NetStatus events on the actor (`expect.statuses` within
    /// `expect.within`); on a WebRTC actor, checks what its player has got
    /// so far (`expect.media`), or waits for room events.
    Wait {
        /// The stream waited on, for the report only.
        #[serde(default)]
        stream: Option<String>,
    },
    /// Waits `ms` milliseconds.
    Sleep {
        /// How long.
        ms: u64,
    },
    /// Sends `hex` (or the file `bytes`, below `fixtures/`) on a raw
    /// connection. Expectations: `closed`, `survives`.
    SendRaw {
        /// Raw bytes in hex (spaces allowed).
        #[serde(default)]
        hex: Option<String>,
        /// Raw bytes from a file below `fixtures/`.
        #[serde(default)]
        bytes: Option<String>,
        /// Do the simple handshake before the bytes (default true).
        #[serde(default = "yes")]
        handshake: bool,
    },
    /// Plays `stream` over WebRTC. Expectations: `sdp`, `media`.
    WebrtcPlay {
        /// The stream name.
        stream: String,
        /// `whep` (default) or `ws`.
        #[serde(default)]
        signalling: PlaySignalling,
        /// Offer audio (default true).
        #[serde(default = "yes")]
        audio: bool,
        /// Offer video (default true).
        #[serde(default = "yes")]
        video: bool,
        /// The WebRTC client's shape.
        #[serde(default)]
        profile: Profile,
    },
    /// Publishes `stream` over WebRTC: a moving test pattern and a tone.
    WebrtcPublish {
        /// The stream name.
        stream: String,
        /// `whip` (default) or `ws`.
        #[serde(default)]
        signalling: PublishSignalling,
        /// The tone's frequency (default 440 Hz).
        #[serde(default)]
        tone_hz: Option<f64>,
        /// How often the publisher makes a keyframe on its own (default
        /// 2 s); it always makes one when asked (PLI/FIR). A browser may
        /// make one in 20 s or more.
        #[serde(default, with = "humantime_serde")]
        keyframe_interval: Option<Duration>,
        /// The WebRTC client's shape.
        #[serde(default)]
        profile: Profile,
    },
    /// Replays the RTMP capture `capture` (a pcap/pcapng below `fixtures/`,
    /// or the client's and the server's raw bytes: two paths separated by a
    /// space) and compares the answers with the captured server's.
    Replay {
        /// The capture.
        capture: String,
        /// The RTMP application, instead of the target's.
        #[serde(default)]
        app: Option<String>,
    },
    /// Waits for the backend actor to receive a hook call (since the case
    /// began) that matches `expect.hook`.
    Hook {},
    /// Joins `room` as `participant` (RTMP: a `sendData` call; WebRTC
    /// actors: their WebSocket session). Expectations: `room_events`.
    JoinRoom {
        /// The room (made unique per run like stream names).
        room: String,
        /// The name to join as.
        participant: String,
    },
    /// Leaves `room`.
    LeaveRoom {
        /// The room.
        room: String,
    },
    /// Sends `text` to the others in `room` (or only to `to`).
    RoomMessage {
        /// The room.
        room: String,
        /// The message.
        text: String,
        /// Its one addressee.
        #[serde(default)]
        to: Option<String>,
    },
    /// A WebRTC actor's publisher switches to pictures of `size` from its
    /// next frame, an IDR with new parameter sets.
    Resize {
        /// `WxH`.
        size: Size,
    },
}

fn yes() -> bool {
    true
}

impl Action {
    /// The action's name in reports.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Connect { .. } => "Connect",
            Action::Publish { .. } => "Publish",
            Action::Play { .. } => "Play",
            Action::Unpublish { .. } => "Unpublish",
            Action::Disconnect {} => "Disconnect",
            Action::Wait { .. } => "Wait",
            Action::Sleep { .. } => "Sleep",
            Action::SendRaw { .. } => "SendRaw",
            Action::WebrtcPlay { .. } => "WebrtcPlay",
            Action::WebrtcPublish { .. } => "WebrtcPublish",
            Action::Replay { .. } => "Replay",
            Action::Hook {} => "Hook",
            Action::JoinRoom { .. } => "JoinRoom",
            Action::LeaveRoom { .. } => "LeaveRoom",
            Action::RoomMessage { .. } => "RoomMessage",
            Action::Resize { .. } => "Resize",
        }
    }

    /// The stream the step names, if any.
    pub fn stream(&self) -> Option<&str> {
        match self {
            Action::Publish { stream, .. }
            | Action::Play { stream }
            | Action::WebrtcPlay { stream, .. }
            | Action::WebrtcPublish { stream, .. } => Some(stream),
            Action::Unpublish { stream } | Action::Wait { stream } => stream.as_deref(),
            _ => None,
        }
    }

    /// The actor kinds that can take this action.
    fn fits(&self, kind: Option<ActorKind>) -> bool {
        let rtmp = matches!(kind, Some(ActorKind::Flash | ActorKind::Encoder));
        let webrtc = kind == Some(ActorKind::Webrtc);
        match self {
            Action::Connect { .. } | Action::Publish { .. } | Action::Play { .. } | Action::Replay { .. } => rtmp,
            Action::Unpublish { stream } => (rtmp && stream.is_some()) || webrtc,
            Action::Wait { .. } | Action::JoinRoom { .. } | Action::LeaveRoom { .. } | Action::RoomMessage { .. } => {
                rtmp || webrtc
            }
            Action::Disconnect {} => kind.is_some_and(|k| k != ActorKind::Backend),
            Action::Sleep { .. } => kind.is_none(),
            Action::SendRaw { hex, bytes, .. } => kind == Some(ActorKind::Raw) && (hex.is_some() || bytes.is_some()),
            Action::WebrtcPlay { .. } | Action::WebrtcPublish { .. } | Action::Resize { .. } => webrtc,
            Action::Hook {} => kind == Some(ActorKind::Backend),
        }
    }
}

/// Which tracks of an FLV fixture a `publish` step sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tracks {
    /// Sound and pictures, and the script tags.
    #[default]
    Both,
    /// Sound only.
    Audio,
    /// Pictures only.
    Video,
}

/// How a WebRTC player signals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlaySignalling {
    /// WHEP: an HTTP POST of the offer.
    #[default]
    Whep,
    /// The server's WebSocket channel.
    Ws,
}

/// How a WebRTC publisher signals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PublishSignalling {
    /// WHIP: an HTTP POST of the offer.
    #[default]
    Whip,
    /// The server's WebSocket channel.
    Ws,
}

/// The shape of a WebRTC client's offer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// The suite's own.
    #[default]
    Default,
    /// Safari's H.264 profiles, High before Constrained Baseline.
    Safari,
}

/// A picture size, written `WxH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Size {
    /// Pixels.
    pub width: usize,
    /// Pixels.
    pub height: usize,
}

impl TryFrom<String> for Size {
    type Error = String;
    fn try_from(text: String) -> Result<Size, String> {
        parse_size(&text)
            .map(|(width, height)| Size { width, height })
            .ok_or_else(|| format!("a size is WxH, not {text:?}"))
    }
}

impl From<Size> for String {
    fn from(size: Size) -> String {
        format!("{}x{}", size.width, size.height)
    }
}

/// One step of a scenario: an actor, an action with its parameters, and
/// what must follow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// The actor acting (every action but `sleep`).
    #[serde(default)]
    pub actor: Option<String>,
    /// What it does (the `action` key and its parameters).
    #[serde(flatten)]
    pub action: Action,
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
            let kind = match &step.actor {
                None => None,
                Some(name) => Some(
                    *self
                        .actors
                        .get(name)
                        .ok_or_else(|| at(format!("unknown actor {name:?}")))?,
                ),
            };
            if !step.action.fits(kind) {
                let who = kind.map_or("no actor".to_string(), |k| format!("a {k:?} actor"));
                return Err(at(format!(
                    "{} does not fit {who} (or lacks hex/bytes, or an RTMP unpublish its stream)",
                    step.action.name()
                )));
            }
            let hook = step.expect.as_ref().is_some_and(|e| e.hook.is_some())
                || step.outcomes.iter().any(|o| o.expect.hook.is_some());
            if matches!(step.action, Action::Hook {}) && !hook {
                return Err(at("a hook step needs expect.hook".into()));
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
            let implied = match &step.action {
                // What the actor's own play or publish step needs.
                Action::Wait { .. } | Action::Unpublish { .. } if webrtc => continue,
                Action::Connect { .. }
                | Action::Wait { .. }
                | Action::Unpublish { .. }
                | Action::SendRaw { .. }
                | Action::Replay { .. } => Capability::Rtmp,
                Action::Publish { .. } => Capability::RtmpPublish,
                Action::Play { .. } => Capability::RtmpPlay,
                Action::WebrtcPlay {
                    signalling: PlaySignalling::Ws,
                    ..
                }
                | Action::WebrtcPublish {
                    signalling: PublishSignalling::Ws,
                    ..
                } => Capability::WebSocket,
                Action::WebrtcPlay { .. } => Capability::Whep,
                Action::WebrtcPublish { .. } => Capability::Whip,
                Action::Hook {} => Capability::BackendHooks,
                Action::JoinRoom { .. } | Action::LeaveRoom { .. } | Action::RoomMessage { .. } => Capability::Rooms,
                Action::Resize { .. } | Action::Disconnect {} | Action::Sleep { .. } => continue,
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
        let stray = write(&format!(
            "{head}[[step]]\nactor = \"p\"\naction = \"connect\"\nstream = \"s\"\n"
        ));
        assert!(
            stray.unwrap_err().contains("unknown field `stream`"),
            "a parameter of another action is an error"
        );
        let missing = write(&format!("{head}[[step]]\nactor = \"p\"\naction = \"publish\"\n"));
        assert!(missing.unwrap_err().contains("missing field `stream`"));
        let bad_size = write(&format!(
            "{head}[[step]]\nactor = \"p\"\naction = \"resize\"\nsize = \"big\"\n"
        ));
        assert!(bad_size.unwrap_err().contains("WxH"));
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
