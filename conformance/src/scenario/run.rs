//! Running one scenario against one target: actors, steps, expectations,
//! verdict, wire log.
//!
//! Each step acts, then watches what follows until one of its acceptable
//! outcomes holds or its time runs out. A step without `expect` or `outcome`
//! expects what success looks like: `connect` NetConnection.Connect.Success,
//! `publish` NetStream.Publish.Start, `play` NetStream.Play.Start, any other
//! action merely not failing. The first miss of a required step ends the
//! case; misses of recommended and informational scenarios are noted and the
//! case goes on.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use media::amf::Value;
use media::flv::Tag;
use media::rtmp::message::{join_aggregate, type_id, AggregatePart};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::action::{ConnectHow, Then};
use super::browser::BrowserActor;
use super::expect::{describe_section, Observed};
use super::ffmpeg::FfmpegActor;
use super::{ActorKind, Expect, Scenario, Step};
use crate::backend::Backend;
use crate::client::{ClientProfile, Incoming, RtmpClient};
use crate::shipped::Fixtures;
use crate::target::{Capability, Running, Target};
use crate::verdict::{CaseResult, Verdict};
use crate::webrtc::{WebRtcPlayer, WebRtcPublisher, WsSession};

/// Time limits of a run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// How long a step waits for its expectations, unless it says `within`.
    pub step_timeout: Duration,
    /// How long a case may take, unless it says `timeout`.
    pub case_timeout: Duration,
    /// Where the fixture files scenarios name are found.
    pub fixtures: Fixtures,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            step_timeout: Duration::from_secs(5),
            case_timeout: Duration::from_secs(60),
            fixtures: Fixtures::default(),
        }
    }
}

/// Runs `scenario` against `target` and concludes.
pub async fn run_case(scenario: &Scenario, target: &Target, options: &RunOptions) -> CaseResult {
    let started = Instant::now();
    let mut result = CaseResult {
        id: scenario.id.clone(),
        title: scenario.title.clone(),
        requirement: scenario.requirement.clone(),
        strictness: scenario.strictness,
        verdict: Verdict::Ok,
        expected: None,
        actual: None,
        notes: Vec::new(),
        log: Vec::new(),
        duration: Duration::ZERO,
    };
    let spec = target.spec();
    let uses = |kind| scenario.actors.values().any(|k| *k == kind);
    let unable = spec
        .cannot_run(scenario)
        .or_else(|| {
            uses(ActorKind::Ffmpeg)
                .then(super::ffmpeg::available)
                .and_then(Result::err)
        })
        .or_else(|| {
            uses(ActorKind::Browser)
                .then(super::browser::available)
                .and_then(Result::err)
        });
    if let Some(reason) = unable {
        result.verdict = Verdict::Unimplemented;
        result.notes.push(reason);
        return result;
    }
    let backend = if scenario.has_backend() {
        let addr = ([127, 0, 0, 1], 0).into();
        match Backend::start(addr).await {
            Ok(backend) => Some(backend),
            Err(error) => {
                result.verdict = Verdict::Failed;
                result.expected = Some(format!("the suite's backend to listen on {addr}"));
                result.actual = Some(error.to_string());
                return result;
            }
        }
    } else {
        None
    };
    let hooks = backend.as_ref().map(Backend::url);
    let mut running = match target.start(hooks.as_deref()).await {
        Ok(running) => running,
        Err(error) => {
            result.verdict = Verdict::Failed;
            result.expected = Some("the target to start".into());
            result.actual = Some(error.to_string());
            return result;
        }
    };
    if scenario.needs.contains(&Capability::Tokens) {
        if let Some(app) = running.spec.tokens.as_ref().and_then(|tokens| tokens.app.clone()) {
            running.app = app;
        }
    }
    if scenario.needs.contains(&Capability::WhepCounterOffer) {
        if let Some(app) = running.spec.counter_offer_app.clone() {
            running.app = app;
        }
    }
    let limit = scenario.timeout.unwrap_or(options.case_timeout);
    let mut case = Case {
        running: &running,
        scenario,
        options,
        actors: HashMap::new(),
        backend: backend.as_ref(),
        hooks_logged: std::cell::Cell::new(0),
        published: std::cell::RefCell::new(HashMap::new()),
        suffix: format!("{:06x}", rand::random::<u32>() & 0xFF_FFFF),
        result: &mut result,
        started: Instant::now(),
        log: Vec::new(),
    };
    if tokio::time::timeout(limit, case.run_steps()).await.is_err() {
        case.miss(
            Verdict::of_miss(scenario.strictness),
            format!("the case to finish within {limit:?}"),
            "it was still running (a step hung)".into(),
        );
    }
    case.finish().await;
    running.stop().await;
    result.duration = started.elapsed();
    result
}

/// One case being run: the target, the actors, the wire log.
pub(super) struct Case<'a> {
    pub(super) running: &'a Running,
    pub(super) scenario: &'a Scenario,
    pub(super) options: &'a RunOptions,
    pub(super) actors: HashMap<String, Actor>,
    pub(super) backend: Option<&'a Backend>,
    /// Backend calls already in the case's log.
    pub(super) hooks_logged: std::cell::Cell<usize>,
    /// The audio and video bodies each RTMP publisher of the case sent, by
    /// the stream's name in the scenario (for `rtmp_media.as_published`).
    pub(super) published: std::cell::RefCell<HashMap<String, std::rc::Rc<std::collections::HashSet<u64>>>>,
    pub(super) suffix: String,
    pub(super) result: &'a mut CaseResult,
    /// When the case started: the wire log's time origin.
    pub(super) started: Instant,
    /// The wire log until the case finishes, when it is put in time order.
    pub(super) log: Vec<(Instant, String)>,
}

/// One actor's state across the steps of a case.
pub(super) enum Actor {
    /// A Flash or encoder actor.
    Rtmp(Box<RtmpActor>),
    /// A WebRTC actor.
    Webrtc(Box<WebrtcActor>),
    /// A raw TCP connection, once opened, and what its attacks hold.
    Raw(Box<RawActor>),
    /// The `ffmpeg` program's processes.
    Ffmpeg(Box<FfmpegActor>),
    /// Chromium with the suite's page.
    Browser(Box<BrowserActor>),
}

/// A `raw` actor: its connection, once opened, and what its attacks keep open.
#[derive(Default)]
pub(super) struct RawActor {
    pub(super) socket: Option<TcpStream>,
    pub(super) held: Vec<super::attack::Held>,
}

/// An RTMP client and what it has done so far.
pub(super) struct RtmpActor {
    pub(super) kind: ActorKind,
    pub(super) client: Option<RtmpClient>,
    pub(super) streams: HashMap<String, u32>,
    pub(super) sending: Option<MediaTask>,
    /// Media whose sending a step interrupted, resumed after it.
    pub(super) paused: Option<Sending>,
    /// Media to send once the step's expectations are checked.
    pub(super) media: Option<Sending>,
    /// Statuses already matched by earlier expectations.
    pub(super) matched: usize,
    /// Wire log lines already copied to the case log.
    pub(super) logged: usize,
    /// Room events already shown to earlier steps.
    pub(super) rooms_seen: usize,
    /// Connections its network left half-open (`vanish`), held open unread.
    pub(super) vanished: Vec<RtmpClient>,
}

/// A WebRTC actor's player, publisher and WebSocket session.
#[derive(Default)]
pub(super) struct WebrtcActor {
    /// Room events already shown to earlier steps.
    pub(super) rooms_seen: usize,
    pub(super) player: Option<WebRtcPlayer>,
    pub(super) publisher: Option<WebRtcPublisher>,
    pub(super) ws: Option<WsSession>,
    /// What its `http` steps keep between requests.
    pub(super) http: super::action::HandMade,
}

impl Actor {
    /// A new actor of `kind`, not connected yet.
    fn new(kind: ActorKind) -> Actor {
        match kind {
            ActorKind::Webrtc => Actor::Webrtc(Box::default()),
            ActorKind::Raw => Actor::Raw(Box::default()),
            ActorKind::Ffmpeg => Actor::Ffmpeg(Box::default()),
            ActorKind::Browser => Actor::Browser(Box::default()),
            kind => Actor::Rtmp(Box::new(RtmpActor {
                kind,
                client: None,
                streams: HashMap::new(),
                sending: None,
                paused: None,
                media: None,
                matched: 0,
                logged: 0,
                rooms_seen: 0,
                vanished: Vec::new(),
            })),
        }
    }
}

impl RtmpActor {
    /// The client, back from the media task if one is sending (the media
    /// goes on after the step, from where it stopped).
    pub(super) async fn client(&mut self) -> Option<&mut RtmpClient> {
        if let Some((task, stop)) = self.sending.take() {
            let _ = stop.send(());
            if let Ok((client, sending)) = task.await {
                self.client = Some(client);
                self.paused = (sending.next < sending.tags.len()).then_some(sending);
            }
        }
        self.client.as_mut()
    }

    /// Forgets what belonged to its connection, once the client is gone: the
    /// next one starts with no streams, media or wire-log lines.
    pub(super) fn forget_connection(&mut self) {
        self.streams.clear();
        self.paused = None;
        self.media = None;
        self.matched = 0;
        self.logged = 0;
    }
}

impl Case<'_> {
    fn miss(&mut self, verdict: Verdict, expected: String, actual: String) {
        if self.result.expected.is_none() && verdict != Verdict::Ok {
            self.result.expected = Some(expected);
            self.result.actual = Some(actual);
        }
        self.result.verdict = self.result.verdict.worst(verdict);
    }

    async fn run_steps(&mut self) {
        for (index, step) in self.scenario.steps.iter().enumerate() {
            let label = format!(
                "step {} ({} {}{})",
                index + 1,
                step.actor.as_deref().unwrap_or("-"),
                step.action.name(),
                step.action.stream().map(|s| format!(" {s}")).unwrap_or_default()
            );
            self.log(Instant::now(), format!("== {label}"));
            let kind = step
                .actor
                .as_ref()
                .and_then(|name| self.scenario.actors.get(name))
                .copied();
            let candidates = candidates(step, kind);
            let observed = self.act(step, &candidates).await;
            self.copy_wire_log();
            let now = Instant::now();
            for (at, line) in &observed.timed_log {
                self.log(*at, line.clone());
            }
            for line in &observed.log {
                self.log(now, line.clone());
            }
            if let Some(sdp) = &observed.sdp {
                self.log(
                    now,
                    format!(
                        "SDP answer: audio {}, video {}",
                        describe_section(sdp.audio()),
                        describe_section(sdp.video())
                    ),
                );
            }
            let verdict = self.conclude(&label, step, &candidates, &observed);
            // A failure ends the case; so does an outcome that says the
            // target lacks what the rest needs (an optional extension).
            if verdict == Verdict::Failed || verdict == Verdict::Unimplemented {
                let left = self.scenario.steps.len() - index - 1;
                if left > 0 {
                    self.result.notes.push(format!("{left} later step(s) not run"));
                }
                return;
            }
        }
    }

    /// Picks the verdict of the first outcome that holds.
    fn conclude(&mut self, label: &str, step: &Step, candidates: &[(Verdict, Expect)], observed: &Observed) -> Verdict {
        if let Some(error) = &observed.error {
            let holds = candidates.iter().any(|(_, e)| e.check(observed).is_ok());
            if !holds {
                let verdict = Verdict::of_miss(self.scenario.strictness);
                // The check's own words when they tell the error (a failure
                // that is not the refusal asked for), else the error.
                let why = candidates[0].1.check(observed).err().unwrap_or_default();
                let actual = if why.contains(error.as_str()) {
                    why
                } else {
                    error.clone()
                };
                self.miss(
                    verdict,
                    format!("{label}: {}", candidates[0].1.describe()),
                    format!("{label}: {actual}"),
                );
                return verdict;
            }
        }
        for (index, (verdict, expect)) in candidates.iter().enumerate() {
            if expect.check(observed).is_ok() {
                if !step.outcomes.is_empty() {
                    let note = step.outcomes[index].note.as_deref().unwrap_or("");
                    self.result
                        .notes
                        .push(format!("{label}: outcome {} ({verdict}) {note}", index + 1));
                    if *verdict != Verdict::Ok {
                        self.miss(
                            *verdict,
                            format!("{label}: {}", candidates[0].1.describe()),
                            format!("{label}: {}", observed.describe()),
                        );
                    }
                }
                return *verdict;
            }
        }
        let verdict = Verdict::of_miss(self.scenario.strictness);
        let why = candidates[0].1.check(observed).err().unwrap_or_default();
        self.miss(
            verdict,
            format!("{label}: {}", candidates[0].1.describe()),
            format!("{label}: {why}; saw {}", observed.describe()),
        );
        verdict
    }

    /// Adds a line to the case's wire log, which [`finish`](Self::finish)
    /// puts in time order and stamps with the time since the case started.
    fn log(&mut self, at: Instant, line: String) {
        self.log.push((at, line));
    }

    /// The RTMP actors' new wire-log lines, in the order they happened.
    fn copy_wire_log(&mut self) {
        let mut names: Vec<&String> = self.actors.keys().collect();
        names.sort();
        let mut lines = Vec::new();
        for name in names {
            if let Some(Actor::Rtmp(actor)) = self.actors.get(name) {
                if let Some(client) = &actor.client {
                    let times = &client.wire_log_times()[actor.logged..];
                    for (line, at) in client.wire_log()[actor.logged..].iter().zip(times) {
                        lines.push((at.into_std(), format!("{name} {line}")));
                    }
                }
            }
        }
        lines.sort_by_key(|(at, _)| *at);
        for actor in self.actors.values_mut() {
            if let Actor::Rtmp(actor) = actor {
                if let Some(client) = &actor.client {
                    actor.logged = client.wire_log().len();
                }
            }
        }
        for (at, line) in lines {
            self.log(at, line);
        }
    }

    async fn finish(&mut self) {
        let mut names: Vec<String> = self.actors.keys().cloned().collect();
        names.sort();
        for name in names {
            let Some(actor) = self.actors.remove(&name) else {
                continue;
            };
            match actor {
                Actor::Rtmp(mut actor) => {
                    let _ = actor.client().await;
                    self.actors.insert(name, Actor::Rtmp(actor));
                }
                Actor::Webrtc(mut actor) => {
                    if let Some(player) = &mut actor.player {
                        let r = player.report();
                        self.log(Instant::now(), format!(
                            "{name} WebRTC player: {} RTP audio, {} RTP video packets; {} pictures, {} audio frames decoded",
                            r.audio.rtp_packets, r.video.rtp_packets, r.video.pictures, r.audio.decoded_frames
                        ));
                        let _ = player.stop().await;
                    }
                    if let Some(publisher) = &mut actor.publisher {
                        let _ = publisher.stop().await;
                    }
                }
                Actor::Raw(_) => {}
                Actor::Browser(mut actor) => {
                    if let Some(mut page) = actor.page.take() {
                        if let Ok(state) = page.state().await {
                            self.log(
                                Instant::now(),
                                format!(
                                    "{name} browser: {}, ICE {}, {} pictures of {}x{} decoded, {} audio samples, {} frames encoded",
                                    state.status,
                                    state.ice_state,
                                    state.frames_decoded,
                                    state.frame_width,
                                    state.frame_height,
                                    state.audio_samples,
                                    state.frames_encoded
                                ),
                            );
                        }
                        let _ = page.stop().await;
                    }
                }
                Actor::Ffmpeg(mut actor) => {
                    if let Some(player) = actor.player.take() {
                        let counts = player.counts();
                        self.log(
                            Instant::now(),
                            format!(
                                "{name} ffmpeg player: {} audio, {} video frames decoded",
                                counts.audio, counts.video
                            ),
                        );
                        player.stop().await;
                    }
                    if let Some(publisher) = actor.publisher.take() {
                        publisher.stop().await;
                    }
                }
            }
        }
        self.copy_wire_log();
        // A stable sort: lines logged at one instant keep their order.
        self.log.sort_by_key(|(at, _)| *at);
        let started = self.started;
        self.result.log.extend(self.log.drain(..).map(|(at, line)| {
            let offset = at.saturating_duration_since(started).as_secs_f64();
            format!("{offset:>8.3} {line}")
        }));
    }

    /// The run's name for a scenario's stream name: unique per case, query
    /// kept; the empty name stays empty.
    pub(super) fn stream_name(&self, logical: &str) -> String {
        if logical.is_empty() {
            return String::new();
        }
        match logical.split_once('?') {
            Some((name, query)) => format!("{name}-{}?{}", self.suffix, self.with_tokens(query)),
            None => format!("{logical}-{}", self.suffix),
        }
    }

    /// `text` with `{publish_token}` and `{play_token}` replaced by the
    /// target's tokens (left as they are when it declares none).
    pub(super) fn with_tokens(&self, text: &str) -> String {
        match &self.running.spec.tokens {
            Some(tokens) => text
                .replace("{publish_token}", &tokens.publish)
                .replace("{play_token}", &tokens.play),
            None => text.to_string(),
        }
    }

    fn within(&self, candidates: &[(Verdict, Expect)]) -> Duration {
        candidates
            .iter()
            .filter_map(|(_, e)| e.within)
            .max()
            .unwrap_or(self.options.step_timeout)
    }

    async fn act(&mut self, step: &Step, candidates: &[(Verdict, Expect)]) -> Observed {
        let mut observed = Observed::default();
        let began = Instant::now();
        let within = self.within(candidates);
        let name = step.actor.clone().unwrap_or_default();
        let mut actor = match self.scenario.actors.get(&name).copied() {
            None | Some(ActorKind::Backend) => None,
            Some(kind) => Some(self.actors.remove(&name).unwrap_or_else(|| Actor::new(kind))),
        };
        let then = self
            .perform(actor.as_mut(), step, candidates, within, &mut observed)
            .await;
        match (then, actor.as_mut()) {
            (Then::Statuses { before }, Some(Actor::Rtmp(rtmp))) => {
                self.watch_statuses(rtmp, step, candidates, within, began, before, &mut observed)
                    .await;
            }
            (Then::Player, Some(Actor::Webrtc(webrtc))) => {
                observed.published = step
                    .action
                    .stream()
                    .and_then(|s| self.published.borrow().get(s.split('?').next().unwrap_or(s)).cloned());
                self.watch_player(webrtc, candidates, within, &mut observed).await;
            }
            (Then::RoomEvents, Some(Actor::Webrtc(webrtc))) => {
                self.watch_rooms(webrtc, step, candidates, within, &mut observed).await;
            }
            _ => {}
        }
        if let Some(actor) = actor {
            self.actors.insert(name, actor);
        }
        if candidates.iter().any(|(_, e)| e.survives.is_some()) {
            observed.survived = Some(self.survives().await);
        }
        observed
    }

    /// Opens the actor's connection (with the handshake `how` asks for, or
    /// the actor's own) and sends `connect` to `how.app` (the target's by
    /// default) with `how.params` in the URL and `how.args` as extra
    /// arguments (a Flash actor's `{login, appKey}` by default), unless it
    /// is connected; returns how many statuses came before.
    pub(super) async fn connect(&self, actor: &mut RtmpActor, how: ConnectHow<'_>) -> Result<usize, String> {
        if actor.client().await.is_some() {
            return Ok(0);
        }
        let addr = self.running.rtmp_addr.ok_or("the target has no RTMP URL")?;
        let mut profile = match actor.kind {
            ActorKind::Flash => ClientProfile::flash_player(),
            _ => ClientProfile::encoder(),
        };
        profile.enhanced = match (how.announce, actor.kind) {
            (Some(announce), _) => Some(announce.capabilities()),
            (None, ActorKind::Ertmp) => Some(super::ertmp::Announce::default().capabilities()),
            (None, _) => None,
        };
        if let Some(shape) = how.handshake {
            shape.apply(&mut profile);
        }
        let client = RtmpClient::open(addr, profile).await.map_err(|e| e.to_string())?;
        let client = actor.client.insert(client);
        let base = self.running.rtmp_base.clone().unwrap_or_default();
        let app = how.app.unwrap_or(&self.running.app);
        let mut tc_url = format!("{base}/{app}");
        if let Some(params) = how.params {
            tc_url = format!("{tc_url}?{}", self.with_tokens(params));
        }
        let args = match (how.args, actor.kind) {
            (Some(args), _) => args,
            (None, ActorKind::Flash) => vec![Value::object([
                ("login", Value::from("conformance")),
                ("appKey", Value::from(self.running.app_key())),
            ])],
            (None, _) => Vec::new(),
        };
        let before = client.statuses().len();
        client.connect(&tc_url, args).await.map_err(|e| e.to_string())?;
        Ok(before)
    }

    /// Room events as `room_events` spells them, without the run's suffix.
    fn room_texts(&self, events: &[serde_json::Value]) -> Vec<String> {
        let suffix = format!("-{}", self.suffix);
        events
            .iter()
            .map(|event| {
                let field = |key: &str| event.get(key).and_then(serde_json::Value::as_str).unwrap_or_default();
                let text = match field("event") {
                    "STATE" => {
                        let names: Vec<&str> = event
                            .get("participants")
                            .and_then(serde_json::Value::as_array)
                            .map(|list| list.iter().filter_map(|p| p.get("name")?.as_str()).collect())
                            .unwrap_or_default();
                        format!("STATE {}", names.join(","))
                    }
                    kind @ ("JOINED" | "LEFT") => format!("{kind} {}", field("participant")),
                    "PUBLISHED" => format!("PUBLISHED {} {}", field("participant"), field("stream")),
                    "MESSAGE" => format!("MESSAGE {}: {}", field("from"), field("text")),
                    "FAILED" => format!("FAILED {}", field("info")),
                    other => other.to_string(),
                };
                text.trim_end().replace(&suffix, "")
            })
            .collect()
    }

    /// Watches the RTMP actor's statuses (from `before`), media and room
    /// events until the best outcome holds, or a lesser one once the best
    /// cannot (the deadline passed, the connection closed); then starts
    /// sending the media its `publish` brought, if any.
    #[allow(clippy::too_many_arguments)]
    async fn watch_statuses(
        &self,
        actor: &mut RtmpActor,
        step: &Step,
        candidates: &[(Verdict, Expect)],
        within: Duration,
        began: Instant,
        before: usize,
        observed: &mut Observed,
    ) {
        let Some(client) = actor.client.as_mut() else {
            return;
        };
        // A publish that retried used its time already: what is left of it
        // (and a moment for the last answer) is the statuses'.
        let deadline = match step.action {
            super::Action::Publish { retry: Some(_), .. } => {
                tokio::time::Instant::from_std(began + within).max(tokio::time::Instant::now() + Duration::from_secs(1))
            }
            _ => tokio::time::Instant::now() + within,
        };
        let media = candidates.iter().filter_map(|(_, e)| e.rtmp_media.clone()).next();
        // What the case's publisher of this stream sent, if an actor of the case publishes it.
        let published = step
            .action
            .stream()
            .and_then(|s| self.published.borrow().get(s.split('?').next().unwrap_or(s)).cloned());
        let settle = candidates.iter().any(|(_, e)| e.exactly || !e.forbidden.is_empty());
        // "No enhanced tag", "no multitrack message" and "no audio (video)
        // after" hold only if none came in the whole of `within`.
        let watch_all = media.as_ref().is_some_and(|m| {
            m.enhanced == Some(false)
                || m.multitrack == Some(false)
                || m.no_audio_after.is_some()
                || m.no_video_after.is_some()
        });
        let mut settled_at: Option<tokio::time::Instant> = None;
        let mut read = 0;
        loop {
            // What the server sent on this connection so far, as the wire log has it.
            let log = client.wire_log();
            observed.received.extend(
                log[read.min(log.len())..]
                    .iter()
                    .filter(|l| l.starts_with("< "))
                    .cloned(),
            );
            read = log.len();
            observed.stream_id = step.action.stream().and_then(|s| actor.streams.get(s).copied());
            observed.room_events =
                self.room_texts(&client.room_events()[actor.rooms_seen.min(client.room_events().len())..]);
            observed.statuses = client.statuses()[before.min(client.statuses().len())..].to_vec();
            if observed.connect_properties.is_none() {
                observed.connect_properties = client.connect_answer().map(|answer| answer.command_object.clone());
            }
            observed.closed = observed
                .statuses
                .iter()
                .any(|s| s.via == "local" && s.status.code == media::netstatus::code::CONNECT_CLOSED);
            // The first outcome is the best: a lesser one that already holds
            // is only concluded when the best cannot hold any more (the
            // deadline passed, the connection closed).
            let answered = step.action.answered(observed);
            let best = answered && candidates[0].1.check(observed).is_ok();
            let holds = answered && candidates.iter().any(|(_, e)| e.check(observed).is_ok());
            let now = tokio::time::Instant::now();
            if best && !watch_all && (!settle || settled_at.is_some_and(|t| now >= t)) {
                break;
            }
            if best && settle && settled_at.is_none() {
                settled_at = Some(now + QUIET);
            }
            if now >= deadline || observed.closed && (holds || observed.error.is_some()) {
                break;
            }
            // Until the next message, or the next moment the verdict could
            // change without one (the quiet period ends, the deadline).
            let wake = settled_at.map_or(deadline, |t| t.min(deadline));
            let slice = wake.saturating_duration_since(now);
            match client.next(slice).await {
                Ok(Incoming::Media {
                    type_id,
                    payload,
                    timestamp,
                    ..
                }) => {
                    observed
                        .rtmp_timing
                        .media(began.elapsed(), type_id, timestamp, &payload);
                    observed.ertmp.media(type_id, timestamp, &payload, published.as_deref());
                    if type_id == 8 {
                        observed.audio += 1;
                    } else {
                        observed.video += 1;
                        // The first picture: sequence headers, ends of
                        // sequence and command frames carry none (and are
                        // flagged as keyframes all the same).
                        let header = media::flv::video_header(&payload);
                        let picture =
                            header.filter(|h| !(h.is_sequence_header || h.is_end_of_sequence || h.is_command));
                        if let (None, Some(picture)) = (observed.first_picture_keyframe, picture) {
                            observed.first_picture_keyframe = Some(picture.is_keyframe);
                        }
                    }
                }
                Ok(_) => {}
                Err(crate::client::ClientError::Timeout { .. }) => {}
                // Closed: the next round sees Connect.Closed among the statuses.
                Err(_) => {
                    if observed.closed {
                        break;
                    }
                }
            }
            if media.is_none() && step.action.streams_media() && best {
                break;
            }
        }
        if !step.action.answered(observed) && observed.error.is_none() {
            observed.error = Some(UNANSWERED_JOIN.into());
        }
        actor.matched = client.statuses().len();
        actor.rooms_seen = client.room_events().len();
        // Media to publish goes out from a task of its own from now on.
        let fresh = actor.media.take().map(|sending| Sending {
            start: tokio::time::Instant::now(),
            ..sending
        });
        let starting = fresh.is_some();
        if let Some(sending) = fresh.or_else(|| actor.paused.take()) {
            if let Some(client) = actor.client.take() {
                let (stop, stopped) = oneshot::channel();
                let (begun, begins) = oneshot::channel();
                let task = tokio::spawn(send_media(client, sending, stopped, begun));
                actor.sending = Some((task, stop));
                if starting {
                    // The next step starts once the first media is written.
                    let _ = tokio::time::timeout(within, begins).await;
                }
            }
        }
    }

    /// Waits for room events on the WebRTC actor's WebSocket session.
    async fn watch_rooms(
        &self,
        actor: &mut WebrtcActor,
        step: &Step,
        candidates: &[(Verdict, Expect)],
        within: Duration,
        observed: &mut Observed,
    ) {
        let seen = actor.rooms_seen;
        let session = match self.ws_session(actor).await {
            Ok(session) => session,
            Err(error) => {
                observed.error = Some(error);
                return;
            }
        };
        // Re-checked whenever the server sends a message, until `within`.
        let room_events = |messages: &[serde_json::Value]| -> Vec<serde_json::Value> {
            messages
                .iter()
                .filter(|m| m.get("type").and_then(serde_json::Value::as_str) == Some("room"))
                .cloned()
                .collect()
        };
        let (messages, _) = session
            .wait_messages(within, |messages| {
                let events = room_events(messages);
                observed.room_events = self.room_texts(&events[seen.min(events.len())..]);
                step.action.answered(observed) && candidates.iter().any(|(_, e)| e.check(observed).is_ok())
            })
            .await;
        let events = room_events(&messages);
        observed.room_events = self.room_texts(&events[seen.min(events.len())..]);
        actor.rooms_seen = events.len();
        if !step.action.answered(observed) {
            observed.error = Some(UNANSWERED_JOIN.into());
        }
    }

    /// Checks the actor's player until an expectation holds or `within` ends.
    async fn watch_player(
        &self,
        actor: &WebrtcActor,
        candidates: &[(Verdict, Expect)],
        within: Duration,
        observed: &mut Observed,
    ) {
        let counts_requests = candidates.iter().any(|(_, e)| e.keyframe_requests.is_some());
        let player = actor
            .player
            .as_ref()
            .filter(|_| !counts_requests || candidates.iter().any(|(_, e)| e.media.is_some()));
        if player.is_none() && !counts_requests {
            observed.error = Some("the actor plays nothing".into());
            return;
        }
        // Measuring the sound costs more than reading counters: it is done
        // when an expectation asks for it and 100 ms more of sound has been
        // decoded since the last time, and once at the end.
        let hears = candidates.iter().any(|(_, e)| {
            e.media
                .as_ref()
                .is_some_and(|m| m.tone_hz.is_some() || m.min_dbfs.is_some())
        });
        let mut heard_at: Option<u64> = None;
        let mut player_changes = player.map(WebRtcPlayer::changes);
        let mut publisher_changes = actor.publisher.as_ref().map(WebRtcPublisher::changes);
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let timed_out = tokio::time::Instant::now() >= deadline;
            observe_player(actor, player, false, observed);
            let decoded = observed.report.as_ref().map_or(0, |r| r.audio.decoded_frames);
            if hears && heard_at.is_none_or(|at| decoded >= at + 5) {
                heard_at = Some(decoded);
                observe_player(actor, player, true, observed);
            }
            let holds = candidates.iter().any(|(_, e)| e.check(observed).is_ok());
            if holds || timed_out {
                // For the report; a verdict that holds stays on what it saw.
                if !holds && heard_at != Some(decoded) || !hears {
                    observe_player(actor, player, true, observed);
                }
                return;
            }
            // Wake on what the player or the publisher does, or at the deadline.
            tokio::select! {
                () = next_change(&mut player_changes) => {}
                () = next_change(&mut publisher_changes) => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    /// The actor's WebSocket session, connected on first use.
    pub(super) async fn ws_session<'b>(&self, actor: &'b mut WebrtcActor) -> Result<&'b WsSession, String> {
        if actor.ws.is_none() {
            let url = self
                .running
                .spec
                .ws
                .as_deref()
                .ok_or("the target has no WebSocket URL")?;
            let session = WsSession::connect(
                url,
                &self.running.app_key(),
                serde_json::json!({"login": "conformance"}),
            )
            .await
            .map_err(|e| e.to_string())?;
            actor.ws = Some(session);
        }
        actor.ws.as_ref().ok_or_else(|| "no WebSocket session".to_string())
    }

    /// Whether a fresh encoder can still connect and publish.
    async fn survives(&self) -> Result<(), String> {
        let addr = self.running.rtmp_addr.ok_or("no RTMP URL")?;
        let mut client = RtmpClient::open(addr, ClientProfile::encoder())
            .await
            .map_err(|e| e.to_string())?;
        let url = format!(
            "{}/{}",
            self.running.rtmp_base.clone().unwrap_or_default(),
            self.running.app
        );
        client.connect(&url, Vec::new()).await.map_err(|e| e.to_string())?;
        let id = client.create_stream().await.map_err(|e| e.to_string())?;
        let status = client
            .publish(id, &self.stream_name("survivor"))
            .await
            .map_err(|e| e.to_string())?;
        if status.code == media::netstatus::code::PUBLISH_START {
            Ok(())
        } else {
            Err(format!("publish answered {}", status.code))
        }
    }
}

/// Reads what the actor's player (and publisher) report into `observed`;
/// with `sound`, measures the player's tone and level too.
fn observe_player(actor: &WebrtcActor, player: Option<&WebRtcPlayer>, sound: bool, observed: &mut Observed) {
    if let Some(player) = player {
        observed.report = Some(player.report());
        if sound {
            observed.tone = player.audio_frequency(Duration::from_millis(500));
            observed.dbfs = player.audio_dbfs(Duration::from_millis(500));
        }
    }
    observed.keyframe_requests = actor.publisher.as_ref().map(|p| p.report().keyframe_requests_received);
}

/// What a join that the server never answered is told.
const UNANSWERED_JOIN: &str = "the server never answered joinRoom (no STATE or FAILED room event)";

/// What a step accepts: its outcomes with their verdicts, or its `expect`
/// (or the action's implied success) as OK.
fn candidates(step: &Step, kind: Option<ActorKind>) -> Vec<(Verdict, Expect)> {
    if !step.outcomes.is_empty() {
        return step.outcomes.iter().map(|o| (o.verdict, o.expect.clone())).collect();
    }
    let expect = step.expect.clone().unwrap_or_else(|| Expect {
        statuses: step.action.success(kind).map(str::to_string).into_iter().collect(),
        ..Expect::default()
    });
    vec![(Verdict::Ok, expect)]
}

/// How long an `exactly` or `forbidden` expectation watches for more
/// NetStatus events after the expected ones arrived: a server sends a
/// command's answers back to back, so a later one would be another answer.
const QUIET: Duration = Duration::from_millis(300);

/// Waits for the next change on `changes`; never, once there are none to wait for.
async fn next_change(changes: &mut Option<tokio::sync::watch::Receiver<u64>>) {
    if let Some(receiver) = changes {
        if receiver.changed().await.is_ok() {
            return;
        }
    }
    *changes = None;
    std::future::pending::<()>().await;
}

/// Sends `tags` until they end or `stop` fires; returns the client.
/// A task sending media, and how to stop it.
type MediaTask = (JoinHandle<(RtmpClient, Sending)>, oneshot::Sender<()>);

/// An FLV fixture being published: where it is, and its clock.
pub(super) struct Sending {
    pub(super) stream_id: u32,
    pub(super) tags: Vec<Tag>,
    /// The next tag to send.
    pub(super) next: usize,
    pub(super) realtime: bool,
    /// Audio and video go in aggregate messages of up to this many tags.
    pub(super) aggregate: Option<usize>,
    pub(super) start: tokio::time::Instant,
}

impl Sending {
    pub(super) fn new(stream_id: u32, tags: Vec<Tag>, realtime: bool, aggregate: Option<usize>) -> Sending {
        Sending {
            stream_id,
            tags,
            next: 0,
            realtime,
            aggregate,
            start: tokio::time::Instant::now(),
        }
    }

    /// How many tags from the next go in its next message: one, or as
    /// many audio and video tags in a row as an aggregate takes.
    fn batch(&self) -> usize {
        let most = self.aggregate.unwrap_or(1).max(1);
        let media = self.tags[self.next..]
            .iter()
            .take(most)
            .take_while(|t| t.kind != media::flv::TagKind::Script)
            .count();
        media.max(1)
    }
}

/// Sends the tags, at their own pace unless not `realtime`, until done or
/// told to stop; hands back the client and where it got to. `begun` fires
/// once every tag of the first timestamp (the headers and the first frames)
/// has been written, or sending ends.
async fn send_media(
    mut client: RtmpClient,
    mut sending: Sending,
    mut stop: oneshot::Receiver<()>,
    begun: oneshot::Sender<()>,
) -> (RtmpClient, Sending) {
    let first = sending.tags.first().map_or(0, |t| t.timestamp);
    let mut begun = Some(begun);
    while let Some(tag) = sending.tags.get(sending.next) {
        if tag.timestamp > first {
            if let Some(begun) = begun.take() {
                let _ = begun.send(());
            }
        }
        if sending.realtime {
            let due = sending.start + Duration::from_millis(u64::from(tag.timestamp.saturating_sub(first)));
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = &mut stop => break,
            }
        } else if stop.try_recv().is_ok() {
            break;
        }
        let batch = sending.batch();
        let sent = match (&sending.aggregate, batch) {
            (Some(_), 2..) => {
                let parts: Vec<AggregatePart> = sending.tags[sending.next..sending.next + batch]
                    .iter()
                    .map(|t| AggregatePart {
                        type_id: t.kind.type_id(),
                        timestamp: t.timestamp,
                        payload: t.data.clone(),
                    })
                    .collect();
                let body = join_aggregate(&parts);
                client
                    .send_media(sending.stream_id, type_id::AGGREGATE, tag.timestamp, body)
                    .await
            }
            _ => client.send_tag(sending.stream_id, tag).await,
        };
        if sent.is_err() {
            sending.next = sending.tags.len();
            break;
        }
        sending.next += batch;
    }
    let _ = client.release_held().await;
    (client, sending)
}
