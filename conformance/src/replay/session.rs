//! The replay as a state machine: no sockets, no clocks.
//!
//! [`Replayer`] is driven like str0m's `Rtc`: give it what the target sent
//! with [`Replayer::handle_receive`] (and [`Replayer::handle_closed`] when the
//! connection ends), ask it what to do with [`Replayer::poll_output`], and
//! read the verdicts with [`Replayer::into_report`]. Time is passed in as
//! the [`Duration`] since the replay started. The handshake is not its
//! business: it starts on the first byte after S2.
//!
//! # The plan
//!
//! From the captured log it takes:
//!
//! * the client messages to send, in order, minus the ones that only make
//!   sense to the captured server: Acknowledgements, Ping Responses and
//!   Aborts (the replay sends its own acknowledgements and ping responses),
//!   and `_result`/`_error`/`onStatus` the client sent in answer to the
//!   captured server's own calls;
//! * the captured server's *answer events*, each at its place in the log:
//!   a `_result`/`_error` carrying the transaction id of an earlier client
//!   command, and every `onStatus` command;
//! * *groups* of client commands: a command opens a new group when an answer
//!   event came since the previous command, else it joins the previous
//!   one's group (the captured client sent them without waiting, e.g.
//!   `FCUnpublish` and `deleteStream`). Each `onStatus` belongs to the group
//!   of the last client command before it.
//!
//! # The replay
//!
//! Before sending a client message, the replayer waits until the target has
//! matched every captured answer event that comes before that message in
//! the log, so the target sees the same causality the captured client did:
//! a `_result`/`_error` event is matched by the target's answer with the
//! same transaction id (commands keep their captured ids), the n-th
//! `onStatus` of a group by the target's n-th `onStatus` received while that
//! group's commands were the last sent. Each wait lasts at most
//! `answer_timeout`; after a wait that was satisfied, it lingers `settle`
//! more before the next message so that extra answers land in the right
//! group; after a wait that timed out it does not linger. After the last
//! client message it waits for the remaining events and settles once more. With `realtime` it also keeps the captured pacing:
//! capture times when the log has them, else the media timestamps.
//!
//! Stream ids are remapped: when the target answers a `createStream` whose
//! captured answer gave id N with id M, every later message on stream N goes
//! on M, and so do `deleteStream(N)` and Set Buffer Length for N. `connect`
//! gets the target's `tcUrl` and (when the target URL names one) `app`.
//! Commands are re-encoded in their captured encoding (AMF0 or type 17);
//! everything else is sent with its captured body, type, chunk stream and
//! timestamp, and a captured Set Chunk Size changes the replay's chunking.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use media::amf::Value;
use media::rtmp::{csid, ChunkLimits, Endpoint, Message, RawMessage, UserControl};

use super::log::{Direction, LogOrder, LoggedMessage, MessageKind, MessageLog};
use super::report::{Answer, CommandReport, ReplayReport, ResultAnswer, SentCounts, Status, Verdict};
use super::{ReplayOptions, TargetUrl};
use crate::handshake::ClientHandshake;

/// Client methods whose answers depend on the server (bandwidth checks,
/// the length of recorded streams): a different answer is a note, not a
/// difference.
pub const SERVER_SPECIFIC_METHODS: [&str; 5] = [
    "_checkbw",
    "checkBandwidth",
    "getStreamLength",
    "_onbwcheck",
    "_onbwdone",
];

/// What the driver should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Write these bytes to the target.
    Transmit(Bytes),
    /// Nothing to send before this time (since the start), unless the
    /// target sends something first.
    Wait(Duration),
    /// The replay is over: close the connection and take the report.
    Done,
}

/// A client message to send.
#[derive(Debug)]
struct Item {
    /// Its index in the captured log.
    log_index: usize,
    /// Its index in [`Plan::commands`], for commands.
    command: Option<usize>,
    /// Whether captured answer events come between the previous item and
    /// this one (the replay settles before it).
    after_events: bool,
}

/// A captured client command and what the captured server answered.
#[derive(Debug)]
struct PlannedCommand {
    log_index: usize,
    name: String,
    transaction_id: f64,
    stream_id: u32,
    group: usize,
    /// The captured `_result`/`_error` with its transaction id.
    expected_result: Option<ResultAnswer>,
    /// For createStream: the stream id the captured server gave.
    captured_new_stream: Option<u32>,
    /// Whether it is the last command of its group (the one the group's
    /// statuses are reported on).
    last_in_group: bool,
}

/// A captured server answer the replay waits for.
#[derive(Debug, Clone, Copy)]
enum EventKind {
    /// A `_result`/`_error` with this transaction id.
    Result(f64),
    /// The `nth` `onStatus` of a group.
    Status { group: usize, nth: usize },
}

#[derive(Debug)]
struct Event {
    log_index: usize,
    kind: EventKind,
}

/// Everything taken from the captured log.
#[derive(Debug, Default)]
struct Plan {
    items: Vec<Item>,
    commands: Vec<PlannedCommand>,
    events: Vec<Event>,
    /// The captured statuses of each group.
    group_statuses: Vec<Vec<Status>>,
    /// Captured client messages left out.
    skipped: usize,
}

/// Whether a captured client message is left out of the replay.
fn is_skipped(message: &LoggedMessage) -> bool {
    match &message.kind {
        MessageKind::Control(Message::Acknowledgement(_))
        | MessageKind::Control(Message::Abort(_))
        | MessageKind::Control(Message::UserControl(UserControl::PingResponse(_))) => true,
        MessageKind::Command(c) => matches!(c.name.as_str(), "_result" | "_error" | "onStatus"),
        _ => false,
    }
}

fn tid_key(tid: f64) -> u64 {
    tid.to_bits()
}

impl Plan {
    fn new(log: &MessageLog) -> Plan {
        let mut plan = Plan::default();
        // Server messages (by log index) that answer a client command, with
        // that command's index in `plan.commands`.
        let mut result_events: HashMap<usize, usize> = HashMap::new();
        // Log indices of the server's `_result`/`_error`, by transaction id.
        let mut results_by_tid: HashMap<u64, VecDeque<usize>> = HashMap::new();
        for (j, m) in log.messages.iter().enumerate() {
            if let (Direction::ServerToClient, Some(r)) = (m.direction, m.command()) {
                if r.name == "_result" || r.name == "_error" {
                    results_by_tid
                        .entry(tid_key(r.transaction_id))
                        .or_default()
                        .push_back(j);
                }
            }
        }
        let mut answer_since_command = false;
        let mut event_since_item = false;
        for (i, message) in log.messages.iter().enumerate() {
            match message.direction {
                Direction::ClientToServer => {
                    if is_skipped(message) {
                        plan.skipped += 1;
                        continue;
                    }
                    let command = message.command().map(|c| {
                        if answer_since_command || plan.group_statuses.is_empty() {
                            plan.group_statuses.push(Vec::new());
                        }
                        answer_since_command = false;
                        let group = plan.group_statuses.len() - 1;
                        let index = plan.commands.len();
                        let mut expected_result = None;
                        let mut captured_new_stream = None;
                        if c.transaction_id != 0.0 {
                            // The first answer with its id after it, each answer used once.
                            let answer = results_by_tid.get_mut(&tid_key(c.transaction_id)).and_then(|found| {
                                while found.front().is_some_and(|&j| j < i) {
                                    found.pop_front();
                                }
                                found.pop_front()
                            });
                            if let Some((j, m)) = answer.map(|j| (j, &log.messages[j])) {
                                result_events.insert(j, index);
                                expected_result = m.command().map(|r| ResultAnswer {
                                    name: r.name.clone(),
                                    status: m.statuses().first().map(Status::from),
                                });
                                if c.name == "createStream" {
                                    captured_new_stream = m
                                        .command()
                                        .and_then(|r| r.args.first())
                                        .and_then(Value::as_f64)
                                        .filter(|n| *n >= 0.0 && n.fract() == 0.0 && *n <= f64::from(u32::MAX))
                                        .map(|n| n as u32);
                                }
                            }
                        }
                        plan.commands.push(PlannedCommand {
                            log_index: i,
                            name: c.name.clone(),
                            transaction_id: c.transaction_id,
                            stream_id: message.stream_id,
                            group,
                            expected_result,
                            captured_new_stream,
                            last_in_group: false,
                        });
                        index
                    });
                    plan.items.push(Item {
                        log_index: i,
                        command,
                        after_events: std::mem::take(&mut event_since_item),
                    });
                }
                Direction::ServerToClient => {
                    let Some(reply) = message.command() else { continue };
                    if let Some(&command) = result_events.get(&i) {
                        plan.events.push(Event {
                            log_index: i,
                            kind: EventKind::Result(plan.commands[command].transaction_id),
                        });
                        answer_since_command = true;
                        event_since_item = true;
                    } else if reply.name == "onStatus" && !plan.group_statuses.is_empty() {
                        let group = plan.group_statuses.len() - 1;
                        for status in message.statuses() {
                            let nth = plan.group_statuses[group].len();
                            plan.group_statuses[group].push(Status::from(&status));
                            plan.events.push(Event {
                                log_index: i,
                                kind: EventKind::Status { group, nth },
                            });
                        }
                        answer_since_command = true;
                        event_since_item = true;
                    }
                }
            }
        }
        let mut seen_groups = HashSet::new();
        for command in plan.commands.iter_mut().rev() {
            command.last_in_group = seen_groups.insert(command.group);
        }
        plan
    }
}

/// Replays one captured session. See the module docs.
#[derive(Debug)]
pub struct Replayer {
    options: ReplayOptions,
    target: TargetUrl,
    captured: Vec<LoggedMessage>,
    order: LogOrder,
    handshake: ClientHandshake,
    /// The tcUrl sent in connect.
    connect_tc_url: Option<String>,
    first_capture_time: Option<Duration>,
    plan: Plan,
    /// Next item of `plan.items` to send.
    next: usize,
    /// First event not yet matched or given up.
    next_event: usize,
    /// Events given up on (timed out).
    given_up: Vec<bool>,
    /// When the current wait gives up.
    wait_deadline: Option<Duration>,
    /// The item the settle time was scheduled for, and until when.
    settle: Option<(usize, Duration)>,
    /// The chunk stream both ways, acknowledgements and ping answers.
    endpoint: Endpoint,
    out: VecDeque<Bytes>,
    wire: Vec<String>,
    stream_map: BTreeMap<u32, u32>,
    /// The target's `_result`/`_error` by transaction id (the first of each).
    results: HashMap<u64, (ResultAnswer, Option<f64>)>,
    /// The target's statuses per group.
    statuses: Vec<Vec<Status>>,
    /// The group of the last command sent.
    current_group: Option<usize>,
    /// The stream id each planned command was sent with.
    sent_stream: Vec<Option<u32>>,
    /// When the first item was sent, for realtime pacing.
    started: Option<Duration>,
    /// When the first media message was sent and its timestamp (pacing by
    /// timestamps).
    media_anchor: Option<(Duration, u32)>,
    closed: Option<String>,
    closed_by_target: bool,
    done: bool,
    sent: SentCounts,
    received: usize,
}

impl Replayer {
    /// A replay of `log` against `target`.
    pub fn new(log: &MessageLog, target: TargetUrl, options: ReplayOptions) -> Replayer {
        let plan = Plan::new(log);
        let first_capture_time = plan
            .items
            .first()
            .and_then(|item| log.messages[item.log_index].capture)
            .and_then(|c| c.time);
        let sent = SentCounts {
            skipped: plan.skipped,
            ..SentCounts::default()
        };
        Replayer {
            options,
            target,
            captured: log.messages.clone(),
            order: log.order,
            handshake: log.client_handshake,
            connect_tc_url: None,
            first_capture_time,
            given_up: vec![false; plan.events.len()],
            statuses: vec![Vec::new(); plan.group_statuses.len()],
            sent_stream: vec![None; plan.commands.len()],
            plan,
            next: 0,
            next_event: 0,
            wait_deadline: None,
            settle: None,
            endpoint: Endpoint::new(ChunkLimits::default()),
            out: VecDeque::new(),
            wire: Vec::new(),
            stream_map: BTreeMap::new(),
            results: HashMap::new(),
            current_group: None,
            started: None,
            media_anchor: None,
            closed: None,
            closed_by_target: false,
            done: false,
            sent,
            received: 0,
        }
    }

    /// Bytes the target sent.
    pub fn handle_receive(&mut self, _now: Duration, bytes: &[u8]) {
        if self.closed.is_some() {
            return;
        }
        self.endpoint.receive(bytes);
        loop {
            let next = self.endpoint.next_message();
            // What the endpoint answered on its own (pings, acknowledgements).
            for answer in self.endpoint.answered() {
                let (type_id, payload) = answer.encode();
                let raw = RawMessage {
                    csid: csid::CONTROL,
                    timestamp: 0,
                    type_id,
                    stream_id: 0,
                    payload,
                };
                self.wire
                    .push(LoggedMessage::decode(Direction::ClientToServer, raw, 0).render());
                self.sent.control += 1;
            }
            match next {
                Ok(Some(raw)) => self.on_message(raw),
                Ok(None) => break,
                Err(e) => {
                    self.wire.push(format!("S→C broken chunk stream: {e}"));
                    self.closed = Some(format!("the target sent a broken chunk stream: {e}"));
                    return;
                }
            }
        }
        self.flush();
    }

    /// The connection ended (the target closed it, or writing failed).
    pub fn handle_closed(&mut self, _now: Duration, reason: &str) {
        if self.closed.is_none() && !self.done {
            self.wire.push(format!("S→C connection closed: {reason}"));
            self.closed = Some(reason.to_string());
            self.closed_by_target = true;
        }
    }

    /// What to do next at time `now`.
    pub fn poll_output(&mut self, now: Duration) -> Output {
        loop {
            if let Some(bytes) = self.out.pop_front() {
                return Output::Transmit(bytes);
            }
            if self.done {
                return Output::Done;
            }
            if self.closed.is_some() {
                self.done = true;
                continue;
            }
            // Every event before the next item's place in the log (all of
            // them after the last item) must be matched first.
            let next_place = self.plan.items.get(self.next).map_or(usize::MAX, |item| item.log_index);
            if let Some(until) = self.wait_for_events(now, next_place) {
                return Output::Wait(until);
            }
            if let Some(until) = self.settle_time(now) {
                return Output::Wait(until);
            }
            if self.next >= self.plan.items.len() {
                self.done = true;
                continue;
            }
            if let Some(due) = self.due(now) {
                return Output::Wait(due);
            }
            self.send_next(now);
        }
    }

    /// `Some(deadline)` while captured events before `place` are unmatched;
    /// gives up on them at the deadline.
    fn wait_for_events(&mut self, now: Duration, place: usize) -> Option<Duration> {
        while let Some(event) = self.plan.events.get(self.next_event) {
            if event.log_index >= place {
                break;
            }
            if self.given_up[self.next_event] || self.is_matched(event.kind) {
                self.next_event += 1;
                continue;
            }
            let deadline = *self.wait_deadline.get_or_insert(now + self.options.answer_timeout);
            if now < deadline {
                return Some(deadline);
            }
            // Timed out: give up on every event up to `place`, no settling.
            let mut i = self.next_event;
            while let Some(e) = self.plan.events.get(i).filter(|e| e.log_index < place) {
                if !self.is_matched(e.kind) {
                    self.given_up[i] = true;
                }
                i += 1;
            }
            self.settle = Some((self.next, now));
        }
        self.wait_deadline = None;
        None
    }

    /// `Some(until)` while lingering after a satisfied wait for the next item.
    fn settle_time(&mut self, now: Duration) -> Option<Duration> {
        // Settle after any event between the previous item and the next one,
        // and always after the last item.
        let had_events = self.plan.items.get(self.next).is_none_or(|item| item.after_events);
        if !had_events || self.options.settle.is_zero() {
            return None;
        }
        match self.settle {
            Some((item, until)) if item == self.next => (now < until).then_some(until),
            _ => {
                let until = now + self.options.settle;
                self.settle = Some((self.next, until));
                Some(until)
            }
        }
    }

    /// With `realtime`, when the next item is due, if later than `now`.
    fn due(&mut self, now: Duration) -> Option<Duration> {
        if !self.options.realtime {
            return None;
        }
        let item = self.plan.items.get(self.next)?;
        let message = &self.captured[item.log_index];
        let started = *self.started.get_or_insert(now);
        let due = match (message.capture.and_then(|c| c.time), self.first_capture_time) {
            (Some(time), Some(first)) => started + time.saturating_sub(first),
            _ if message.is_media() => match self.media_anchor {
                Some((at, ts)) => at + Duration::from_millis(u64::from(message.timestamp.saturating_sub(ts))),
                None => now,
            },
            _ => now,
        };
        (due > now).then_some(due)
    }

    fn is_matched(&self, kind: EventKind) -> bool {
        match kind {
            EventKind::Result(tid) => self.results.contains_key(&tid_key(tid)),
            EventKind::Status { group, nth } => self.statuses.get(group).is_some_and(|s| s.len() > nth),
        }
    }

    fn map_stream(&self, id: u32) -> u32 {
        self.stream_map.get(&id).copied().unwrap_or(id)
    }

    /// Sends the next item.
    fn send_next(&mut self, now: Duration) {
        let Some(item) = self.plan.items.get(self.next) else {
            return;
        };
        let (log_index, command_index) = (item.log_index, item.command);
        self.next += 1;
        self.started.get_or_insert(now);
        let message = self.captured[log_index].clone();
        let stream_id = self.map_stream(message.stream_id);
        let (type_id, payload) = match &message.kind {
            MessageKind::Command(command) => {
                let mut command = command.clone();
                if command.name == "connect" {
                    let tc_url = self.rewrite_connect(&mut command.command_object);
                    self.connect_tc_url = Some(tc_url);
                }
                if command.name == "deleteStream" {
                    if let Some(Value::Number(id)) = command.args.first_mut() {
                        if *id >= 0.0 && id.fract() == 0.0 && *id <= f64::from(u32::MAX) {
                            *id = f64::from(self.map_stream(*id as u32));
                        }
                    }
                }
                if let Some(index) = command_index {
                    self.current_group = Some(self.plan.commands[index].group);
                    self.sent_stream[index] = Some(stream_id);
                }
                self.sent.commands += 1;
                Message::Command(command).encode()
            }
            MessageKind::Control(Message::UserControl(UserControl::SetBufferLength { stream_id, buffer_ms })) => {
                self.sent.control += 1;
                Message::UserControl(UserControl::SetBufferLength {
                    stream_id: self.map_stream(*stream_id),
                    buffer_ms: *buffer_ms,
                })
                .encode()
            }
            MessageKind::Control(_) => {
                self.sent.control += 1;
                (message.type_id, message.payload.clone())
            }
            MessageKind::Data(_) => {
                self.sent.data += 1;
                (message.type_id, message.payload.clone())
            }
            MessageKind::Audio { .. } | MessageKind::Video { .. } | MessageKind::Aggregate { .. } => {
                self.sent.media += 1;
                self.media_anchor.get_or_insert((now, message.timestamp));
                (message.type_id, message.payload.clone())
            }
            MessageKind::Other { .. } | MessageKind::Undecodable { .. } => (message.type_id, message.payload.clone()),
        };
        self.emit(RawMessage {
            csid: message.csid,
            timestamp: message.timestamp,
            type_id,
            stream_id,
            payload,
        });
    }

    /// Puts the target's tcUrl and app into a connect command object;
    /// returns the tcUrl.
    fn rewrite_connect(&self, object: &mut Value) -> String {
        let Value::Object { properties, .. } = object else {
            return self.target.tc_url(None);
        };
        let captured_app = properties
            .iter()
            .find(|(k, _)| k == "app")
            .and_then(|(_, v)| v.as_str())
            .map(str::to_string);
        let tc_url = self.target.tc_url(captured_app.as_deref());
        let mut set = |key: &str, value: String| match properties.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = Value::from(value),
            None => properties.push((key.to_string(), Value::from(value))),
        };
        set("tcUrl", tc_url.clone());
        if let Some(app) = &self.target.app {
            set("app", app.clone());
        }
        tc_url
    }

    /// Encodes a message of the replay's own (acknowledgement, ping response).
    fn emit(&mut self, raw: RawMessage) {
        // A Set Chunk Size applies to the messages after it (the endpoint's rule).
        self.endpoint.send_raw(&raw);
        self.wire
            .push(LoggedMessage::decode(Direction::ClientToServer, raw, 0).render());
        self.flush();
    }

    /// Moves what the endpoint has for the target to the transmit queue.
    fn flush(&mut self) {
        let out = self.endpoint.output();
        if !out.is_empty() {
            self.out.push_back(out.take_all());
        }
    }

    /// Takes one message from the target.
    fn on_message(&mut self, raw: RawMessage) {
        self.received += 1;
        let message = LoggedMessage::decode(Direction::ServerToClient, raw, 0);
        self.wire.push(message.render());
        match &message.kind {
            MessageKind::Command(c) if c.name == "_result" || c.name == "_error" => {
                let value = c.args.first().and_then(Value::as_f64);
                let answer = ResultAnswer {
                    name: c.name.clone(),
                    status: message.statuses().first().map(Status::from),
                };
                let key = tid_key(c.transaction_id);
                if self.results.contains_key(&key) {
                    return;
                }
                // A createStream answer maps the captured stream id to the target's.
                let created = self
                    .plan
                    .commands
                    .iter()
                    .find(|p| p.name == "createStream" && p.transaction_id == c.transaction_id)
                    .and_then(|p| p.captured_new_stream);
                if let (Some(captured), "_result", Some(id)) = (created, c.name.as_str(), value) {
                    if id >= 0.0 && id.fract() == 0.0 && id <= f64::from(u32::MAX) {
                        self.stream_map.insert(captured, id as u32);
                    }
                }
                self.results.insert(key, (answer, value));
            }
            MessageKind::Command(c) if c.name == "onStatus" => {
                if let Some(group) = self.current_group {
                    self.statuses[group].extend(message.statuses().iter().map(Status::from));
                }
            }
            _ => {}
        }
    }

    /// The verdicts, at time `now` (for the duration). The caller fills in
    /// [`ReplayReport::source`], `connection` and `connections`.
    pub fn into_report(self, now: Duration) -> ReplayReport {
        let commands = self
            .plan
            .commands
            .iter()
            .enumerate()
            .map(|(i, planned)| self.command_report(planned, self.sent_stream[i]))
            .collect();
        ReplayReport {
            source: String::new(),
            connection: 0,
            connections: 1,
            order: self.order,
            target: self.connect_tc_url.clone().unwrap_or_else(|| self.target.url.clone()),
            handshake: match self.handshake {
                ClientHandshake::Simple => "simple".to_string(),
                ClientHandshake::FlashDigest(scheme) => format!("flash-digest ({scheme:?})"),
            },
            commands,
            stream_ids: self.stream_map.iter().map(|(k, v)| (*k, *v)).collect(),
            sent: self.sent,
            received: self.received,
            closed_by_target: self.closed_by_target,
            duration_ms: u64::try_from(now.as_millis()).unwrap_or(u64::MAX),
            wire_log: self.wire,
        }
    }

    /// Compares one command's answers (rules in the module docs of `replay`).
    fn command_report(&self, planned: &PlannedCommand, sent_stream: Option<u32>) -> CommandReport {
        let captured = self.captured[planned.log_index].render();
        let mut notes = Vec::new();
        let verdict = if sent_stream.is_none() {
            Verdict::NotSent {
                reason: self
                    .closed
                    .clone()
                    .unwrap_or_else(|| "the replay ended before it".to_string()),
            }
        } else {
            let actual_result = (planned.transaction_id != 0.0)
                .then(|| self.results.get(&tid_key(planned.transaction_id)))
                .flatten()
                .map(|(answer, _)| answer.clone());
            let (expected_statuses, actual_statuses) = if planned.last_in_group {
                (
                    self.plan.group_statuses[planned.group].clone(),
                    self.statuses[planned.group].clone(),
                )
            } else {
                (Vec::new(), Vec::new())
            };
            let expected = Answer {
                result: planned.expected_result.clone(),
                statuses: expected_statuses,
            };
            let actual = Answer {
                result: actual_result,
                statuses: actual_statuses,
            };
            let server_specific = SERVER_SPECIFIC_METHODS.contains(&planned.name.as_str());
            let mut differs = false;
            let mut missing = false;
            match (&expected.result, &actual.result) {
                (None, Some(a)) => notes.push(format!("the capture holds no answer; the target answered {a}")),
                (Some(e), None) if server_specific => notes.push(format!(
                    "server-specific method: the captured server answered {e}, the target did not"
                )),
                (Some(e), Some(a)) if server_specific && e != a => notes.push(format!(
                    "server-specific method: the captured server answered {e}, the target {a}"
                )),
                (Some(_), None) => missing = true,
                (Some(e), Some(a)) => differs |= e != a,
                (None, None) => {}
            }
            if expected.statuses != actual.statuses {
                if actual.statuses.is_empty() {
                    missing = true;
                } else {
                    differs = true;
                }
            }
            if (differs || missing) && self.closed_by_target {
                notes.push("the target closed the connection".to_string());
            }
            verdict_of(differs, missing, expected, actual)
        };
        CommandReport {
            index: planned.log_index,
            name: planned.name.clone(),
            transaction_id: planned.transaction_id,
            stream_id: planned.stream_id,
            replayed_stream_id: sent_stream,
            captured,
            verdict,
            notes,
        }
    }
}

fn verdict_of(differs: bool, missing: bool, expected: Answer, actual: Answer) -> Verdict {
    if differs {
        Verdict::Differs { expected, actual }
    } else if missing {
        Verdict::Missing { expected }
    } else {
        Verdict::Match
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::log::LogOrder;
    use media::netstatus::{code, Level, NetStatus};
    use media::rtmp::{Command, ObjectEncoding};

    fn command(name: &str, tid: f64, args: Vec<Value>) -> Message {
        Message::Command(Command {
            encoding: ObjectEncoding::Amf0,
            name: name.into(),
            transaction_id: tid,
            command_object: Value::Null,
            args,
        })
    }

    fn status(level: Level, code: &str) -> Value {
        NetStatus::new(level, code, "").to_value()
    }

    fn logged(direction: Direction, stream_id: u32, message: Message) -> LoggedMessage {
        let (type_id, payload) = message.encode();
        let csid = match type_id {
            8 => csid::AUDIO,
            _ if stream_id == 0 => csid::COMMAND,
            _ => csid::STREAM_COMMAND,
        };
        let raw = RawMessage {
            csid,
            timestamp: 0,
            type_id,
            stream_id,
            payload,
        };
        LoggedMessage::decode(direction, raw, 0)
    }

    /// A publish session whose server gave stream id 7, then a call the
    /// server answered.
    fn captured() -> MessageLog {
        use Direction::{ClientToServer as C, ServerToClient as S};
        let connect = Message::Command(Command {
            encoding: ObjectEncoding::Amf0,
            name: "connect".into(),
            transaction_id: 1.0,
            command_object: Value::object([("app", Value::from("old")), ("tcUrl", Value::from("rtmp://old/old"))]),
            args: vec![],
        });
        let messages = vec![
            logged(C, 0, connect),
            logged(S, 0, Message::WindowAckSize(100)),
            logged(
                S,
                0,
                command(
                    "_result",
                    1.0,
                    vec![Value::Null, status(Level::Status, code::CONNECT_SUCCESS)],
                ),
            ),
            logged(C, 0, command("createStream", 2.0, vec![])),
            logged(S, 0, command("_result", 2.0, vec![Value::Number(7.0)])),
            logged(
                C,
                7,
                command("publish", 0.0, vec![Value::from("s"), Value::from("live")]),
            ),
            logged(
                S,
                7,
                command("onStatus", 0.0, vec![status(Level::Status, code::PUBLISH_START)]),
            ),
            logged(C, 7, Message::Audio(Bytes::from_static(&[0xAF, 1, 2, 3]))),
            logged(C, 0, Message::Acknowledgement(10)),
            logged(C, 0, command("deleteStream", 3.0, vec![Value::Number(7.0)])),
            logged(C, 0, command("custom", 4.0, vec![])),
            logged(S, 0, command("_result", 4.0, vec![Value::Null])),
        ];
        MessageLog {
            messages,
            order: LogOrder::Capture,
            client_handshake: ClientHandshake::Simple,
            client: None,
            server: None,
            client_trailing_bytes: 0,
            server_trailing_bytes: 0,
        }
    }

    /// The target's side of the test: decodes what the replayer sent and
    /// encodes answers.
    struct FakeTarget {
        endpoint: Endpoint,
        received: Vec<RawMessage>,
    }

    impl FakeTarget {
        fn new() -> Self {
            FakeTarget {
                endpoint: Endpoint::new(ChunkLimits::default()),
                received: Vec::new(),
            }
        }

        fn take(&mut self, bytes: &[u8]) {
            self.endpoint.receive(bytes);
            while let Some(raw) = self.endpoint.next_message().unwrap() {
                self.received.push(raw);
            }
        }

        /// `message`, after anything the target's endpoint owed the replayer.
        fn answer(&mut self, stream_id: u32, message: Message) -> Bytes {
            self.endpoint.send(3, stream_id, 0, &message);
            self.endpoint.output().take_all()
        }
    }

    /// Polls until the replayer waits or is done, handing transmissions to the target.
    fn drain(replayer: &mut Replayer, target: &mut FakeTarget, now: Duration) -> Output {
        loop {
            match replayer.poll_output(now) {
                Output::Transmit(bytes) => target.take(&bytes),
                other => return other,
            }
        }
    }

    fn options() -> ReplayOptions {
        ReplayOptions {
            answer_timeout: Duration::from_secs(2),
            settle: Duration::from_millis(100),
            ..ReplayOptions::default()
        }
    }

    fn target_url() -> TargetUrl {
        TargetUrl::parse("rtmp://127.0.0.1:1935/live").unwrap()
    }

    #[test]
    fn waits_for_answers_remaps_stream_ids_and_times_out_without_sockets() {
        let mut replayer = Replayer::new(&captured(), target_url(), options());
        let mut target = FakeTarget::new();
        let ms = Duration::from_millis;

        // connect goes out, rewritten; then the replayer waits for its answer.
        assert_eq!(drain(&mut replayer, &mut target, ms(0)), Output::Wait(ms(2000)));
        let connect = Message::decode(target.received[0].type_id, target.received[0].payload.clone()).unwrap();
        let Message::Command(connect) = connect else {
            panic!("{connect:?}")
        };
        assert_eq!(
            connect.command_object.get("tcUrl").and_then(Value::as_str),
            Some("rtmp://127.0.0.1:1935/live")
        );
        assert_eq!(connect.command_object.get("app").and_then(Value::as_str), Some("live"));

        let answer = target.answer(
            0,
            command(
                "_result",
                1.0,
                vec![Value::Null, status(Level::Status, code::CONNECT_SUCCESS)],
            ),
        );
        replayer.handle_receive(ms(10), &answer);
        // Settles 100 ms, then createStream.
        assert_eq!(drain(&mut replayer, &mut target, ms(10)), Output::Wait(ms(110)));
        assert_eq!(drain(&mut replayer, &mut target, ms(110)), Output::Wait(ms(2110)));
        assert_eq!(target.received.len(), 2);

        // The target gives stream 42 where the capture had 7.
        replayer.handle_receive(
            ms(120),
            &target.answer(0, command("_result", 2.0, vec![Value::Number(42.0)])),
        );
        drain(&mut replayer, &mut target, ms(120));
        assert_eq!(drain(&mut replayer, &mut target, ms(220)), Output::Wait(ms(2220)));
        let publish = target.received.last().unwrap();
        assert_eq!((publish.type_id, publish.stream_id), (20, 42));

        replayer.handle_receive(
            ms(230),
            &target.answer(
                42,
                command("onStatus", 0.0, vec![status(Level::Status, code::PUBLISH_START)]),
            ),
        );
        drain(&mut replayer, &mut target, ms(230));
        // Audio on 42, the Acknowledgement skipped, deleteStream(42), custom;
        // then the wait for custom's answer, which never comes.
        assert_eq!(drain(&mut replayer, &mut target, ms(330)), Output::Wait(ms(2330)));
        let sent: Vec<(u8, u32)> = target.received.iter().map(|m| (m.type_id, m.stream_id)).collect();
        assert_eq!(&sent[3..], [(8, 42), (20, 0), (20, 0)]);
        let Ok(Message::Command(delete)) = Message::decode(20, target.received[4].payload.clone()) else {
            panic!("not a command")
        };
        assert_eq!(delete.args, [Value::Number(42.0)]);
        // Gives up at the deadline and is done: no settling after a wait that timed out.
        assert_eq!(drain(&mut replayer, &mut target, ms(2330)), Output::Done);

        let report = replayer.into_report(ms(2330));
        let verdicts: Vec<(&str, &str)> = report
            .commands
            .iter()
            .map(|c| (c.name.as_str(), c.verdict.word()))
            .collect();
        assert_eq!(
            verdicts,
            [
                ("connect", "match"),
                ("createStream", "match"),
                ("publish", "match"),
                ("deleteStream", "match"),
                ("custom", "MISSING")
            ]
        );
        assert_eq!(report.stream_ids, [(7, 42)]);
        assert_eq!(report.sent.skipped, 1);
        assert_eq!(report.sent.media, 1);
        assert!(!report.is_match());
    }

    #[test]
    fn a_closed_connection_leaves_the_rest_unsent() {
        let mut replayer = Replayer::new(&captured(), target_url(), options());
        let mut target = FakeTarget::new();
        drain(&mut replayer, &mut target, Duration::ZERO);
        let answer = target.answer(
            0,
            command(
                "_error",
                1.0,
                vec![Value::Null, status(Level::Error, code::CONNECT_REJECTED)],
            ),
        );
        replayer.handle_receive(Duration::from_millis(5), &answer);
        replayer.handle_closed(Duration::from_millis(6), "the target closed the connection");
        assert_eq!(
            drain(&mut replayer, &mut target, Duration::from_millis(6)),
            Output::Done
        );
        let report = replayer.into_report(Duration::from_millis(6));
        assert!(report.closed_by_target);
        match &report.commands[0].verdict {
            Verdict::Differs { expected, actual } => {
                assert_eq!(expected.to_string(), "_result NetConnection.Connect.Success (status)");
                assert_eq!(actual.to_string(), "_error NetConnection.Connect.Rejected (error)");
            }
            other => panic!("{other:?}"),
        }
        assert!(report.commands[1..]
            .iter()
            .all(|c| matches!(c.verdict, Verdict::NotSent { .. })));
    }
}
