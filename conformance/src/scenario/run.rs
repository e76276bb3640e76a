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
use media::flv::{Tag, TagKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::expect::{describe_section, Observed};
use super::{
    Action, ActorKind, Expect, HookExpect, PlaySignalling, Profile, PublishSignalling, Scenario, Step, Tracks,
};
use crate::backend::{Backend, HookCall};
use crate::client::{ClientProfile, Incoming, RtmpClient};
use crate::shipped::Fixtures;
use crate::target::{Running, Target};
use crate::verdict::{CaseResult, Verdict};
use crate::webrtc::{PlayerOptions, PublisherOptions, Signalling, WebRtcPlayer, WebRtcPublisher, WsSession};

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
    if let Some(reason) = spec.cannot_run(scenario) {
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
    let running = match target.start(hooks.as_deref()).await {
        Ok(running) => running,
        Err(error) => {
            result.verdict = Verdict::Failed;
            result.expected = Some("the target to start".into());
            result.actual = Some(error.to_string());
            return result;
        }
    };
    let limit = scenario.timeout.unwrap_or(options.case_timeout);
    let mut case = Case {
        running: &running,
        scenario,
        options,
        actors: HashMap::new(),
        backend: backend.as_ref(),
        hooks_logged: std::cell::Cell::new(0),
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

struct Case<'a> {
    running: &'a Running,
    scenario: &'a Scenario,
    options: &'a RunOptions,
    actors: HashMap<String, Actor>,
    backend: Option<&'a Backend>,
    /// Backend calls already in the case's log.
    hooks_logged: std::cell::Cell<usize>,
    suffix: String,
    result: &'a mut CaseResult,
    /// When the case started: the wire log's time origin.
    started: Instant,
    /// The wire log until the case finishes, when it is put in time order.
    log: Vec<(Instant, String)>,
}

enum Actor {
    Rtmp(Box<RtmpActor>),
    Webrtc(Box<WebrtcActor>),
    Raw(Option<TcpStream>),
}

struct RtmpActor {
    kind: ActorKind,
    client: Option<RtmpClient>,
    streams: HashMap<String, u32>,
    sending: Option<MediaTask>,
    /// Media whose sending a step interrupted, resumed after it.
    paused: Option<Sending>,
    /// Media to send once the step's expectations are checked: stream id, tags, real time.
    media: Option<(u32, Vec<Tag>, bool)>,
    /// Statuses already matched by earlier expectations.
    matched: usize,
    /// Wire log lines already copied to the case log.
    logged: usize,
    /// Room events already shown to earlier steps.
    rooms_seen: usize,
}

#[derive(Default)]
struct WebrtcActor {
    /// Room events already shown to earlier steps.
    rooms_seen: usize,
    player: Option<WebRtcPlayer>,
    publisher: Option<WebRtcPublisher>,
    ws: Option<WsSession>,
}

impl RtmpActor {
    /// The client, back from the media task if one is sending (the media
    /// goes on after the step, from where it stopped).
    async fn client(&mut self) -> Option<&mut RtmpClient> {
        if let Some((task, stop)) = self.sending.take() {
            let _ = stop.send(());
            if let Ok((client, sending)) = task.await {
                self.client = Some(client);
                self.paused = (sending.next < sending.tags.len()).then_some(sending);
            }
        }
        self.client.as_mut()
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
            let candidates = candidates(step);
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
            if verdict == Verdict::Failed {
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

    /// The run's name for a scenario's stream name: unique per case, query kept.
    fn stream_name(&self, logical: &str) -> String {
        match logical.split_once('?') {
            Some((name, query)) => format!("{name}-{}?{query}", self.suffix),
            None => format!("{logical}-{}", self.suffix),
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
        let name = step.actor.clone().unwrap_or_default();
        let kind = self.scenario.actors.get(&name).copied();
        if let Action::Sleep { ms } = step.action {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            return observed;
        }
        if matches!(step.action, Action::Hook {}) {
            self.hook_step(candidates, &mut observed).await;
            return observed;
        }
        if !self.actors.contains_key(&name) {
            let actor = match kind {
                Some(ActorKind::Webrtc) => Actor::Webrtc(Box::default()),
                Some(ActorKind::Raw) => Actor::Raw(None),
                Some(kind) => Actor::Rtmp(Box::new(RtmpActor {
                    kind,
                    client: None,
                    streams: HashMap::new(),
                    sending: None,
                    paused: None,
                    media: None,
                    matched: 0,
                    logged: 0,
                    rooms_seen: 0,
                })),
                None => {
                    observed.error = Some(format!("no actor {name}"));
                    return observed;
                }
            };
            self.actors.insert(name.clone(), actor);
        }
        let within = self.within(candidates);
        let Some(actor) = self.actors.remove(&name) else {
            return observed;
        };
        let actor = match actor {
            Actor::Rtmp(mut rtmp) => {
                self.rtmp_step(&mut rtmp, step, candidates, within, &mut observed).await;
                Actor::Rtmp(rtmp)
            }
            Actor::Webrtc(mut webrtc) => {
                self.webrtc_step(&mut webrtc, step, candidates, within, &mut observed)
                    .await;
                Actor::Webrtc(webrtc)
            }
            Actor::Raw(mut socket) => {
                self.raw_step(&mut socket, step, within, &mut observed).await;
                Actor::Raw(socket)
            }
        };
        self.actors.insert(name, actor);
        if candidates.iter().any(|(_, e)| e.survives.is_some()) {
            observed.survived = Some(self.survives().await);
        }
        observed
    }

    /// Waits until the backend has a call some candidate's `hook` matches.
    async fn hook_step(&self, candidates: &[(Verdict, Expect)], observed: &mut Observed) {
        let Some(backend) = self.backend else {
            observed.error = Some("the case has no backend".into());
            return;
        };
        let wanted: Vec<&HookExpect> = candidates.iter().filter_map(|(_, e)| e.hook.as_ref()).collect();
        let found = backend
            .wait_for(
                |call| {
                    let call = self.without_suffix(call);
                    wanted.iter().any(|w| w.matches(&call))
                },
                self.within(candidates),
            )
            .await;
        let calls = match found {
            Ok(_) => backend.calls(),
            Err(calls) => calls,
        };
        let logged = self.hooks_logged.replace(calls.len());
        observed.log.extend(
            calls
                .iter()
                .skip(logged)
                .map(|c| format!("backend < POST {} {}", c.path, c.body)),
        );
        observed.hook_calls = Some(calls.iter().map(|c| self.without_suffix(c)).collect());
    }

    /// The call as the scenario names things: the run's suffix taken off `name`.
    fn without_suffix(&self, call: &HookCall) -> HookCall {
        let mut call = call.clone();
        if let Some(name) = call.body.get_mut("name") {
            if let Some(text) = name.as_str() {
                let suffix = format!("-{}", self.suffix);
                *name = serde_json::Value::String(text.replacen(&suffix, "", 1));
            }
        }
        call
    }

    /// Opens the actor's connection and sends `connect`, unless done.
    async fn ensure_connected(&self, actor: &mut RtmpActor, step: &Step) -> Result<usize, String> {
        if actor.client().await.is_some() {
            return Ok(0);
        }
        let addr = self.running.rtmp_addr.ok_or("the target has no RTMP URL")?;
        let profile = match actor.kind {
            ActorKind::Flash => ClientProfile::flash_player(),
            _ => ClientProfile::encoder(),
        };
        let client = RtmpClient::open(addr, profile).await.map_err(|e| e.to_string())?;
        actor.client = Some(client);
        let client = actor.client.as_mut().ok_or("no client")?;
        let base = self.running.rtmp_base.clone().unwrap_or_default();
        // Other actions connect as a bare `connect` step would.
        let (app, params, args) = match &step.action {
            Action::Connect { app, params, args } => (app.as_ref(), params.as_ref(), args.as_ref()),
            _ => (None, None, None),
        };
        let app = app.cloned().unwrap_or_else(|| self.running.app.clone());
        let mut tc_url = format!("{base}/{app}");
        if let Some(params) = params {
            tc_url = format!("{tc_url}?{params}");
        }
        let args = match (args, actor.kind) {
            (Some(args), _) => args.iter().map(amf_of).collect(),
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

    async fn rtmp_step(
        &self,
        actor: &mut RtmpActor,
        step: &Step,
        candidates: &[(Verdict, Expect)],
        within: Duration,
        observed: &mut Observed,
    ) {
        let began = Instant::now();
        let mut before = actor.client().await.map_or(0, |c| c.statuses().len());
        let result: Result<(), String> = match &step.action {
            Action::Connect { .. } => {
                if actor.client.is_some() {
                    Err("already connected".into())
                } else {
                    self.ensure_connected(actor, step).await.map(|b| before = b)
                }
            }
            Action::Publish { .. } | Action::Play { .. } => self.publish_or_play(actor, step, &mut before).await,
            Action::Unpublish { stream } => {
                let logical = stream.clone().unwrap_or_default();
                let id = actor.streams.get(&logical).copied();
                let name = self.stream_name(&logical);
                let _ = actor.client().await;
                if let Some(id) = id {
                    actor.paused = actor.paused.take().filter(|p| p.stream_id != id);
                }
                match (actor.client.as_mut(), id) {
                    (Some(client), Some(id)) => client.unpublish(id, &name).await.map_err(|e| e.to_string()),
                    (Some(_), None) => Err(format!("the actor publishes no stream {logical:?}")),
                    (None, _) => Err("not connected".into()),
                }
            }
            Action::Disconnect {} => {
                let _ = actor.client().await;
                actor.client = None; // dropping it closes the connection
                actor.streams.clear();
                actor.paused = None;
                return;
            }
            Action::Wait { .. } => {
                before = actor.matched;
                Ok(())
            }
            Action::Replay { capture, app } => {
                let names: Vec<&str> = capture.split_whitespace().collect();
                let url = format!(
                    "{}/{}",
                    self.running.rtmp_base.clone().unwrap_or_default(),
                    app.clone().unwrap_or_else(|| self.running.app.clone())
                );
                let fixtures = &self.options.fixtures;
                let source = match names.as_slice() {
                    [file] => fixtures.read(file).map(|bytes| crate::replay::CaptureSource::Bytes {
                        name: file.to_string(),
                        bytes,
                    }),
                    [client, server] => fixtures.read(client).and_then(|c| {
                        fixtures
                            .read(server)
                            .map(|s| crate::replay::CaptureSource::DirectionBytes {
                                name: format!("{client} + {server}"),
                                client: c,
                                server: s,
                            })
                    }),
                    _ => Err("capture: one file, or the client's and the server's bytes".to_string()),
                };
                let replayed = match source {
                    Ok(source) => crate::replay::replay_source(&source, &url, crate::replay::ReplayOptions::default())
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e),
                };
                match replayed {
                    Ok(report) => {
                        let unanswered = report
                            .commands
                            .iter()
                            .filter(|c| {
                                matches!(
                                    c.verdict,
                                    crate::replay::report::Verdict::Missing { .. }
                                        | crate::replay::report::Verdict::NotSent { .. }
                                )
                            })
                            .map(|c| c.name.clone())
                            .collect();
                        observed.replay = Some((report.is_match(), replay_summary(&report), unanswered));
                        observed.log = report.wire_log.clone();
                        observed.log.push(report.to_string());
                        Ok(())
                    }
                    Err(error) => Err(error),
                }
            }
            Action::JoinRoom { .. } | Action::LeaveRoom { .. } | Action::RoomMessage { .. } => {
                match self.ensure_connected(actor, step).await {
                    Ok(_) => match actor.client().await {
                        Some(client) => {
                            let request = Value::from_json(&self.room_request(step));
                            // The answer (_result or _error) matters less than the events.
                            client
                                .call("sendData", vec![request])
                                .await
                                .map(drop)
                                .map_err(|e| e.to_string())
                        }
                        None => Err("not connected".into()),
                    },
                    Err(error) => Err(error),
                }
            }
            other => Err(format!("{} is not an RTMP action", other.name())),
        };
        if let Err(error) = result {
            observed.error = Some(error);
        }
        let Some(client) = actor.client.as_mut() else {
            return;
        };
        let deadline = tokio::time::Instant::now() + within;
        let media = candidates.iter().filter_map(|(_, e)| e.rtmp_media.clone()).next();
        let settle = candidates.iter().any(|(_, e)| e.exactly || !e.forbidden.is_empty());
        let mut settled_at: Option<tokio::time::Instant> = None;
        loop {
            observed.room_events =
                self.room_texts(&client.room_events()[actor.rooms_seen.min(client.room_events().len())..]);
            observed.statuses = client.statuses()[before.min(client.statuses().len())..].to_vec();
            observed.closed = observed
                .statuses
                .iter()
                .any(|s| s.via == "local" && s.status.code == media::netstatus::code::CONNECT_CLOSED);
            // The first outcome is the best: a lesser one that already holds
            // is only concluded when the best cannot hold any more (the
            // deadline passed, the connection closed).
            let answered = join_answered(step, observed);
            let best = answered && candidates[0].1.check(observed).is_ok();
            let holds = answered && candidates.iter().any(|(_, e)| e.check(observed).is_ok());
            let now = tokio::time::Instant::now();
            if best && (!settle || settled_at.is_some_and(|t| now >= t)) {
                break;
            }
            if best && settle && settled_at.is_none() {
                settled_at = Some(now + QUIET);
            }
            if now >= deadline || observed.closed && (holds || observed.error.is_some()) {
                break;
            }
            let slice = deadline.saturating_duration_since(now).min(Duration::from_millis(100));
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
                    if type_id == 8 {
                        observed.audio += 1;
                    } else {
                        observed.video += 1;
                        if observed.first_video_keyframe.is_none() {
                            observed.first_video_keyframe = Some(payload.first().is_some_and(|b| b >> 4 == 1));
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
            if media.is_none() && matches!(step.action, Action::Play { .. }) && best {
                break;
            }
        }
        if !join_answered(step, observed) && observed.error.is_none() {
            observed.error = Some(UNANSWERED_JOIN.into());
        }
        actor.matched = client.statuses().len();
        actor.rooms_seen = client.room_events().len();
        // Media to publish goes out from a task of its own from now on.
        let fresh = actor
            .media
            .take()
            .map(|(id, tags, realtime)| Sending::new(id, tags, realtime));
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

    async fn publish_or_play(&self, actor: &mut RtmpActor, step: &Step, before: &mut usize) -> Result<(), String> {
        let logical = step.action.stream().unwrap_or_default().to_string();
        if actor.client().await.is_none() {
            self.ensure_connected(actor, step).await?;
        }
        let client = actor.client.as_mut().ok_or("not connected")?;
        let id = match actor.streams.get(&logical) {
            Some(id) => *id,
            None => {
                let id = client.create_stream().await.map_err(|e| e.to_string())?;
                actor.streams.insert(logical.clone(), id);
                id
            }
        };
        *before = client.statuses().len();
        let name = self.stream_name(&logical);
        let Action::Publish {
            media: Some(file),
            realtime,
            ..
        } = &step.action
        else {
            if matches!(step.action, Action::Play { .. }) {
                return client.play(id, &name).await.map(|_| ()).map_err(|e| e.to_string());
            }
            return client.publish(id, &name).await.map(|_| ()).map_err(|e| e.to_string());
        };
        let status = client.publish(id, &name).await.map_err(|e| e.to_string())?;
        if status.code == media::netstatus::code::PUBLISH_START {
            let tags = load_media(&self.options.fixtures, file, &step.action)?;
            actor.media = Some((id, tags, *realtime));
        }
        Ok(())
    }

    async fn webrtc_step(
        &self,
        actor: &mut WebrtcActor,
        step: &Step,
        candidates: &[(Verdict, Expect)],
        within: Duration,
        observed: &mut Observed,
    ) {
        match &step.action {
            Action::Unpublish { .. } => {
                match &mut actor.publisher {
                    Some(publisher) => {
                        if let Err(error) = publisher.stop().await {
                            observed.error = Some(error.to_string());
                        }
                    }
                    None => observed.error = Some("the actor publishes nothing".into()),
                }
                return;
            }
            Action::Resize { size } => {
                match &actor.publisher {
                    Some(publisher) => {
                        if let Err(error) = publisher.resize(size.width, size.height) {
                            observed.error = Some(error.to_string());
                        }
                    }
                    None => observed.error = Some("the actor publishes nothing".into()),
                }
                return;
            }
            Action::Wait { .. } if candidates.iter().all(|(_, e)| e.room_events.is_empty()) => {
                return self.watch_player(actor, candidates, within, observed).await
            }
            Action::Wait { .. } | Action::JoinRoom { .. } | Action::LeaveRoom { .. } | Action::RoomMessage { .. } => {
                return self.ws_room_step(actor, step, candidates, within, observed).await
            }
            Action::Disconnect {} => {
                if let Some(player) = &mut actor.player {
                    let _ = player.stop().await;
                }
                if let Some(publisher) = &mut actor.publisher {
                    let _ = publisher.stop().await;
                }
                if let Some(session) = actor.ws.take() {
                    session.close();
                }
                return;
            }
            _ => {}
        }
        let name = self.stream_name(step.action.stream().unwrap_or_default());
        let signalling = match self.signalling(actor, step, &name).await {
            Ok(signalling) => signalling,
            Err(error) => {
                observed.error = Some(error);
                return;
            }
        };
        match &step.action {
            Action::WebrtcPlay {
                audio, video, profile, ..
            } => {
                let shape = match profile {
                    Profile::Safari => PlayerOptions::safari(),
                    Profile::Default => PlayerOptions::default(),
                };
                let options = PlayerOptions {
                    audio: *audio,
                    video: *video,
                    ..shape
                };
                match WebRtcPlayer::play(signalling, options).await {
                    Ok(player) => {
                        observed.sdp = Some(player.answer().clone());
                        actor.player = Some(player);
                    }
                    Err(error) => {
                        observed.refusal = error.refusal();
                        observed.error = Some(error.to_string());
                        return;
                    }
                }
            }
            Action::WebrtcPublish {
                tone_hz,
                keyframe_interval,
                profile,
                ..
            } => {
                let shape = match profile {
                    Profile::Safari => PublisherOptions::safari(),
                    Profile::Default => PublisherOptions::default(),
                };
                let idr_interval = match keyframe_interval {
                    Some(interval) => ((interval.as_secs_f64() * f64::from(shape.fps)).ceil() as u32).max(1),
                    None => shape.idr_interval,
                };
                let options = PublisherOptions {
                    tone_hz: tone_hz.unwrap_or(440.0),
                    idr_interval,
                    ..shape
                };
                match WebRtcPublisher::publish(signalling, options).await {
                    Ok(publisher) => {
                        observed.sdp = Some(publisher.answer().clone());
                        // The next step starts once the first picture is on its
                        // way (ICE and DTLS up); a publisher that never gets
                        // there is seen by the steps that look for its media.
                        let _ = publisher
                            .wait_until("the first keyframe to be sent", |r| r.video_keyframes_sent > 0, within)
                            .await;
                        actor.publisher = Some(publisher);
                    }
                    Err(error) => {
                        observed.refusal = error.refusal();
                        observed.error = Some(error.to_string());
                    }
                }
                return;
            }
            other => {
                observed.error = Some(format!("{} is not a WebRTC action", other.name()));
                return;
            }
        }
        self.watch_player(actor, candidates, within, observed).await;
    }

    /// A room request or a wait for room events on the actor's WebSocket session.
    async fn ws_room_step(
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
        if !matches!(step.action, Action::Wait { .. }) {
            let mut request = self.room_request(step);
            request["type"] = serde_json::Value::String("room".into());
            if let Err(error) = session.send_json(&request) {
                observed.error = Some(error.to_string());
                return;
            }
        }
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
                join_answered(step, observed) && candidates.iter().any(|(_, e)| e.check(observed).is_ok())
            })
            .await;
        let events = room_events(&messages);
        observed.room_events = self.room_texts(&events[seen.min(events.len())..]);
        actor.rooms_seen = events.len();
        if !join_answered(step, observed) {
            observed.error = Some(UNANSWERED_JOIN.into());
        }
    }

    /// The `sendData` object (RTMP) or the body of a `room` message (WebSocket).
    fn room_request(&self, step: &Step) -> serde_json::Value {
        match &step.action {
            Action::JoinRoom { room, participant } => serde_json::json!({
                "method": "joinRoom", "room": self.stream_name(room), "name": participant
            }),
            Action::LeaveRoom { room } => serde_json::json!({"method": "leaveRoom", "room": self.stream_name(room)}),
            Action::RoomMessage { room, text, to } => {
                let mut message = serde_json::json!({
                    "method": "sendMessage", "room": self.stream_name(room), "text": text
                });
                if let Some(to) = to {
                    message["to"] = serde_json::Value::String(to.clone());
                }
                message
            }
            _ => serde_json::Value::Null,
        }
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
    async fn ws_session<'b>(&self, actor: &'b mut WebrtcActor) -> Result<&'b WsSession, String> {
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

    async fn signalling(&self, actor: &mut WebrtcActor, step: &Step, name: &str) -> Result<Signalling, String> {
        let spec = &self.running.spec;
        let fill = |template: &str| crate::target::fill_template(template, &self.running.app_key(), name);
        let kind = match &step.action {
            Action::WebrtcPlay {
                signalling: PlaySignalling::Ws,
                ..
            }
            | Action::WebrtcPublish {
                signalling: PublishSignalling::Ws,
                ..
            } => "ws",
            Action::WebrtcPublish { .. } => "whip",
            _ => "whep",
        };
        match kind {
            "ws" => {
                let session = self.ws_session(actor).await?;
                Ok(Signalling::ws(session, &format!("{kind}-{name}"), name))
            }
            "whip" => Ok(Signalling::url(&fill(
                spec.whip.as_deref().ok_or("the target has no WHIP URL")?,
            ))),
            _ => Ok(Signalling::url(&fill(
                spec.whep.as_deref().ok_or("the target has no WHEP URL")?,
            ))),
        }
    }

    async fn raw_step(&self, socket: &mut Option<TcpStream>, step: &Step, within: Duration, observed: &mut Observed) {
        let Action::SendRaw { hex, bytes, handshake } = &step.action else {
            *socket = None; // disconnect
            return;
        };
        let bytes = match (hex, bytes) {
            (Some(hex), _) => parse_hex(hex),
            (None, Some(file)) => self.options.fixtures.read(file).map(|b| b.to_vec()),
            (None, None) => Err("no bytes to send".into()),
        };
        let bytes = match bytes {
            Ok(bytes) => bytes,
            Err(error) => {
                observed.error = Some(error);
                return;
            }
        };
        if socket.is_none() {
            let Some(addr) = self.running.rtmp_addr else {
                observed.error = Some("the target has no RTMP URL".into());
                return;
            };
            match raw_connect(addr, *handshake).await {
                Ok(stream) => *socket = Some(stream),
                Err(error) => {
                    observed.error = Some(error);
                    return;
                }
            }
        }
        let Some(stream) = socket.as_mut() else { return };
        let actor = step.actor.as_deref().unwrap_or("raw");
        observed
            .timed_log
            .push((Instant::now(), format!("{actor} > {}", hex_preview(&bytes))));
        let sent = tokio::time::Instant::now();
        if let Err(error) = stream.write_all(&bytes).await {
            // Already closed by the server: that is an answer too.
            observed.timed_log.push((
                Instant::now(),
                format!("{actor} < the connection was closed before the bytes went out: {error}"),
            ));
            observed.closed = true;
            return;
        }
        let deadline = sent + within;
        let mut buf = vec![0u8; 64 * 1024];
        let mut received = 0usize;
        let after = |at: tokio::time::Instant| format!("{:.1} s", at.duration_since(sent).as_secs_f64());
        loop {
            let ended = match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
                Ok(Ok(0)) => "the connection closed".to_string(),
                Ok(Err(error)) => error.to_string(),
                Ok(Ok(n)) => {
                    received += n;
                    continue;
                }
                Err(_) => {
                    let line = format!(
                        "{actor} < {received} bytes; the connection still open {} after the bytes",
                        after(deadline)
                    );
                    observed.timed_log.push((deadline.into_std(), line));
                    observed.open_after = Some(deadline.duration_since(sent));
                    return;
                }
            };
            let now = tokio::time::Instant::now();
            let line = format!(
                "{actor} < {received} bytes, then {ended} {} after the bytes",
                after(now)
            );
            observed.timed_log.push((now.into_std(), line));
            observed.closed = true;
            return;
        }
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

/// `n bytes: 02 00 00 …` with at most the first 64 bytes in hex.
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

fn hex_preview(bytes: &[u8]) -> String {
    const SHOWN: usize = 64;
    let hex: Vec<String> = bytes.iter().take(SHOWN).map(|b| format!("{b:02x}")).collect();
    let more = if bytes.len() > SHOWN { " …" } else { "" };
    format!("{} bytes: {}{more}", bytes.len(), hex.join(" "))
}

/// The replay's differences, stable from run to run (no paths, ports or times).
fn replay_summary(report: &crate::replay::ReplayReport) -> String {
    use crate::replay::report::Verdict as Compared;
    let differences: Vec<String> = report
        .mismatches()
        .map(|c| match &c.verdict {
            Compared::Differs { expected, actual } => {
                format!("{}: expected {expected}, actual {actual}", c.name)
            }
            Compared::Missing { expected } => format!("{}: expected {expected}, no answer", c.name),
            Compared::NotSent { reason } => format!("{}: not sent ({reason})", c.name),
            Compared::Match => String::new(),
        })
        .collect();
    if differences.is_empty() {
        format!("replay: all {} commands answered as captured", report.commands.len())
    } else {
        format!("replay differs: {}", differences.join("; "))
    }
}

/// What a join that the server never answered is told.
const UNANSWERED_JOIN: &str = "the server never answered joinRoom (no STATE or FAILED room event)";

/// A `join-room` step is over only once the server answered it (STATE or
/// FAILED), so the next step never races the join; other steps need nothing.
fn join_answered(step: &Step, observed: &Observed) -> bool {
    !matches!(step.action, Action::JoinRoom { .. })
        || observed
            .room_events
            .iter()
            .any(|e| e.starts_with("STATE") || e.starts_with("FAILED"))
}

/// What a step accepts: its outcomes with their verdicts, or its `expect`
/// (or the action's implicit success) as OK.
fn candidates(step: &Step) -> Vec<(Verdict, Expect)> {
    if !step.outcomes.is_empty() {
        return step.outcomes.iter().map(|o| (o.verdict, o.expect.clone())).collect();
    }
    let expect = step.expect.clone().unwrap_or_else(|| {
        let code = match step.action {
            Action::Connect { .. } => Some("NetConnection.Connect.Success"),
            Action::Publish { .. } => Some("NetStream.Publish.Start"),
            Action::Play { .. } => Some("NetStream.Play.Start"),
            _ => None,
        };
        Expect {
            statuses: code.map(str::to_string).into_iter().collect(),
            ..Expect::default()
        }
    });
    vec![(Verdict::Ok, expect)]
}

/// A TOML value as AMF: tables become anonymous objects.
fn amf_of(value: &toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::from(s.as_str()),
        toml::Value::Integer(i) => Value::Number(*i as f64),
        toml::Value::Float(f) => Value::Number(*f),
        toml::Value::Boolean(b) => Value::Boolean(*b),
        toml::Value::Datetime(d) => Value::from(d.to_string().as_str()),
        toml::Value::Array(items) => Value::StrictArray(items.iter().map(amf_of).collect()),
        toml::Value::Table(table) => Value::object(table.iter().map(|(k, v)| (k.clone(), amf_of(v)))),
    }
}

fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return Err(format!("odd number of hex digits in {text:?}"));
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).map_err(|_| format!("not hex: {text:?}")))
        .collect()
}

/// A TCP connection, after a simple RTMP handshake if `handshake`.
async fn raw_connect(addr: std::net::SocketAddr, handshake: bool) -> Result<TcpStream, String> {
    let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    if handshake {
        let c0c1 = crate::handshake::client_c0c1(crate::handshake::ClientHandshake::Simple, 0);
        stream.write_all(&c0c1).await.map_err(|e| e.to_string())?;
        let mut s0s1s2 = vec![0u8; 1 + 2 * 1536];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut s0s1s2))
            .await
            .map_err(|_| "no S0S1S2 within 5 s".to_string())?
            .map_err(|e| e.to_string())?;
        stream.write_all(&s0s1s2[1..1537]).await.map_err(|e| e.to_string())?;
    }
    Ok(stream)
}

/// The tags of an FLV fixture to publish: `tracks` only, at most `seconds`.
fn load_media(fixtures: &Fixtures, file: &str, publish: &Action) -> Result<Vec<Tag>, String> {
    let Action::Publish {
        tracks,
        seconds,
        metadata,
        video_after,
        ..
    } = publish
    else {
        return Err("media comes with a publish step".into());
    };
    let bytes = fixtures.read(file)?;
    let tags = media::flv::read_tags(&bytes).map_err(|e| format!("{file}: {e}"))?;
    let limit = seconds.map(|s| s.saturating_mul(1000));
    let tags = tags
        .into_iter()
        .filter(|t| match t.kind {
            TagKind::Audio => *tracks != Tracks::Video,
            TagKind::Video => *tracks != Tracks::Audio,
            TagKind::Script => *tracks == Tracks::Both && *metadata,
        })
        .filter(|t| limit.is_none_or(|l| t.timestamp <= l))
        .collect();
    Ok(match video_after {
        Some(after) => media::flv::video_from(tags, *after),
        None => tags,
    })
}

/// Sends `tags` until they end or `stop` fires; returns the client.
/// A task sending media, and how to stop it.
type MediaTask = (JoinHandle<(RtmpClient, Sending)>, oneshot::Sender<()>);

/// An FLV fixture being published: where it is, and its clock.
struct Sending {
    stream_id: u32,
    tags: Vec<Tag>,
    /// The next tag to send.
    next: usize,
    realtime: bool,
    start: tokio::time::Instant,
}

impl Sending {
    fn new(stream_id: u32, tags: Vec<Tag>, realtime: bool) -> Sending {
        Sending {
            stream_id,
            tags,
            next: 0,
            realtime,
            start: tokio::time::Instant::now(),
        }
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
        if client.send_tag(sending.stream_id, tag).await.is_err() {
            sending.next = sending.tags.len();
            break;
        }
        sending.next += 1;
    }
    (client, sending)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_args_become_amf_objects() {
        let value: toml::Value = toml::from_str::<toml::Table>("a = { login = \"u\", n = 2 }")
            .unwrap()
            .remove("a")
            .unwrap();
        assert_eq!(
            amf_of(&value),
            Value::object([("login", Value::from("u")), ("n", Value::Number(2.0))])
        );
        assert_eq!(parse_hex("03 ff").unwrap(), vec![3, 255]);
        assert!(parse_hex("0").is_err());
    }
}
