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

mod action;
pub mod attack;
mod browser;
pub mod ertmp;
mod expect;
mod ffmpeg;
mod run;
mod series;
mod timing;

pub use action::{Action, HttpBody, HttpTarget, PlaySignalling, Profile, PublishSignalling, Size, Tracks};
pub use attack::Attack;
pub use expect::{Expect, HookExpect, HttpExpect, MediaExpect, RtmpMediaExpect, SdpExpect, SdpMedia, StatusPattern};
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
    /// An Enhanced RTMP client (OBS 30, FFmpeg 7): an encoder whose
    /// connect announces the codecs it takes by FourCC and its extended
    /// capabilities (by default every FourCC the specification defines, in
    /// the v2 info maps, and capsEx multitrack, ModEx and nanosecond
    /// offsets; a `connect` step's `announce` says otherwise).
    Ertmp,
    /// A WebRTC player or publisher (str0m) that decodes what it receives.
    Webrtc,
    /// A bare TCP connection for raw bytes.
    Raw,
    /// Debian's Chromium, headless, on the suite's own page: `webrtc-play`
    /// over WHEP and `webrtc-publish` over WHIP (its fake camera and
    /// microphone), `wait` reads what it decoded (`getStats`, WebAudio).
    /// A case with one is UNIMPLEMENTED on a machine without `chromium`.
    Browser,
    /// FFmpeg's own RTMP client, the `ffmpeg` program: `publish` sends an
    /// FLV fixture with `-re -c copy -f flv`, `play` decodes every frame
    /// (`-f framecrc`), counted as `rtmp_media`. A case with one is
    /// UNIMPLEMENTED on a machine without `ffmpeg`.
    Ffmpeg,
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
    /// Where this case has been seen to miss, the proof that it can fail:
    /// `nginx-rtmp`, `node-media-server` (their expected results, which CI
    /// checks against fresh runs), `srs` (docs/RESULTS.md, run by hand),
    /// `quirk NAMES` (the reference server with those quirks on,
    /// `conformance/tests/quirks_caught.rs`) or `broken target` (a small
    /// broken server of `conformance/tests/broken_target.rs`). A test
    /// (`conformance/tests/seen_failing.rs`) checks every claim against
    /// that evidence and refuses a case with none.
    #[serde(default)]
    pub seen_failing_on: Vec<String>,
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
            let hook = step.expect.as_ref().is_some_and(|e| e.hook.is_some())
                || step.outcomes.iter().any(|o| o.expect.hook.is_some());
            step.action.check(kind, hook).map_err(at)?;
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
            let kind = step.actor.as_ref().and_then(|a| self.actors.get(a)).copied();
            all.extend(step.action.capability(kind));
        }
        all.sort();
        all.dedup();
        all
    }

    /// The attacks its steps launch.
    pub fn attacks(&self) -> impl Iterator<Item = attack::Attack> + '_ {
        self.steps.iter().filter_map(|step| match &step.action {
            Action::Attack { kind, .. } => Some(*kind),
            _ => None,
        })
    }
}

/// `WxH` as (width, height).
pub fn parse_size(text: &str) -> Option<(usize, usize)> {
    let (w, h) = text.split_once('x')?;
    Some((w.trim().parse().ok()?, h.trim().parse().ok()?))
}

/// Whether `program` is installed: `program flag` (its version) succeeds;
/// why not, for an UNIMPLEMENTED verdict, if it does not.
fn runs(program: &str, flag: &str) -> Result<(), String> {
    let status = std::process::Command::new(program)
        .arg(flag)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    match status {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("`{program} {flag}` exited with {status}")),
        Err(error) => Err(format!("this machine has no `{program}` program ({error})")),
    }
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
