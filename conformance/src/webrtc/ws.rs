//! The WebSocket signalling channel of docs/signalling.md, client side.
//!
//! One [`WsSession`] is one connection: `connect` first (answered by
//! `connection`), then any number of `publish`/`play` requests, each named by
//! an `id` the client chooses. The session records everything the server
//! sends: every message (the wire log), every `stream` status event per id in
//! order, every `answer`, every `error`, and anything that breaks the protocol
//! (bad JSON, unknown `type`, missing fields).
//!
//! A background task owns the socket; a [`WsSession`] is a cheap handle
//! (clone it to share the connection between players and publishers). The
//! connection closes when the last handle is dropped or on [`WsSession::close`].

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

use super::{wait_for, WebRtcError};

/// How long [`WsSession::connect`] waits for the `connection` answer.
pub const WS_TIMEOUT: Duration = Duration::from_secs(10);

/// A stream status, in WCS's words (docs/signalling.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamStatus {
    /// The server has taken the request.
    New,
    /// The answer is sent; ICE/DTLS are being set up, or the stream waits for its publisher.
    Pending,
    /// A publisher's peer is connected and its media reaches the server.
    Publishing,
    /// A player's peer is connected and the stream is live.
    Playing,
    /// (play) the stream's publisher left.
    Unpublished,
    /// The session ended.
    Stopped,
    /// The request or the session failed; the event's `info` says why.
    Failed,
    /// A status this suite does not know, as sent.
    Other(String),
}

impl StreamStatus {
    /// Reads a status as the server writes it (`"PLAYING"`).
    pub fn parse(s: &str) -> StreamStatus {
        match s {
            "NEW" => StreamStatus::New,
            "PENDING" => StreamStatus::Pending,
            "PUBLISHING" => StreamStatus::Publishing,
            "PLAYING" => StreamStatus::Playing,
            "UNPUBLISHED" => StreamStatus::Unpublished,
            "STOPPED" => StreamStatus::Stopped,
            "FAILED" => StreamStatus::Failed,
            other => StreamStatus::Other(other.to_string()),
        }
    }

    /// The status as written on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            StreamStatus::New => "NEW",
            StreamStatus::Pending => "PENDING",
            StreamStatus::Publishing => "PUBLISHING",
            StreamStatus::Playing => "PLAYING",
            StreamStatus::Unpublished => "UNPUBLISHED",
            StreamStatus::Stopped => "STOPPED",
            StreamStatus::Failed => "FAILED",
            StreamStatus::Other(s) => s,
        }
    }
}

impl fmt::Display for StreamStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `stream` message.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEvent {
    /// The status.
    pub status: StreamStatus,
    /// The `stream` field (the stream's name as the server understood it).
    pub stream: String,
    /// The `info` field, if any.
    pub info: Option<String>,
    /// When it arrived, from the start of the connection.
    pub at: Duration,
}

/// Everything the server said about one id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamLog {
    /// The `stream` events, in order.
    pub events: Vec<StreamEvent>,
    /// The SDP of the last `answer` for this id.
    pub answer: Option<String>,
    /// The SDP of every `offer` the server sent for this id (a track added
    /// after the answer), in order.
    pub offers: Vec<String>,
}

impl StreamLog {
    /// The statuses, in order.
    pub fn statuses(&self) -> Vec<StreamStatus> {
        self.events.iter().map(|e| e.status.clone()).collect()
    }
}

/// `publish` or `play`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsRequest {
    /// Publish a stream from this peer.
    Publish,
    /// Play a stream to this peer.
    Play,
}

impl WsRequest {
    /// The message `type`.
    pub fn as_str(&self) -> &'static str {
        match self {
            WsRequest::Publish => "publish",
            WsRequest::Play => "play",
        }
    }
}

#[derive(Debug)]
struct WsState {
    started: Instant,
    connection: Option<Value>,
    streams: BTreeMap<String, StreamLog>,
    errors: Vec<String>,
    violations: Vec<String>,
    messages: Vec<Value>,
    closed: Option<String>,
}

#[derive(Debug)]
struct WsShared {
    state: Mutex<WsState>,
    changed: watch::Sender<u64>,
}

impl WsShared {
    fn lock(&self) -> MutexGuard<'_, WsState> {
        // A panic while holding this lock is a bug in this module; the data is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    fn record_text(&self, text: &str) {
        let mut state = self.lock();
        let at = state.started.elapsed();
        let value: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                state.violations.push(format!("not JSON ({e}): {text:?}"));
                return;
            }
        };
        state.messages.push(value.clone());
        let field = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_string);
        match value.get("type").and_then(Value::as_str) {
            Some("connection") => state.connection = Some(value.clone()),
            Some("answer") => match (field("id"), field("sdp")) {
                (Some(id), Some(sdp)) => state.streams.entry(id).or_default().answer = Some(sdp),
                _ => state.violations.push(format!("answer without id or sdp: {value}")),
            },
            Some("offer") => match (field("id"), field("sdp")) {
                (Some(id), Some(sdp)) => state.streams.entry(id).or_default().offers.push(sdp),
                _ => state.violations.push(format!("offer without id or sdp: {value}")),
            },
            Some("stream") => match (field("id"), field("status")) {
                (Some(id), Some(status)) => {
                    let event = StreamEvent {
                        status: StreamStatus::parse(&status),
                        stream: field("stream").unwrap_or_default(),
                        info: field("info"),
                        at,
                    };
                    state.streams.entry(id).or_default().events.push(event);
                }
                _ => state
                    .violations
                    .push(format!("stream event without id or status: {value}")),
            },
            Some("error") => {
                let info = field("info").unwrap_or_else(|| value.to_string());
                state.errors.push(info);
            }
            _ => state.violations.push(format!("unknown message type: {value}")),
        }
    }
}

/// A WebSocket signalling connection (see the module docs).
#[derive(Debug, Clone)]
pub struct WsSession {
    inner: Arc<WsInner>,
}

#[derive(Debug)]
struct WsInner {
    url: String,
    session_id: OnceLock<String>,
    out: mpsc::UnboundedSender<Message>,
    shared: Arc<WsShared>,
}

/// The `/ws` URL that belongs to an HTTP base such as `http://127.0.0.1:8080`.
pub fn ws_url(http_base: &str) -> String {
    let base = http_base.trim_end_matches('/');
    let base = match base.strip_prefix("http://") {
        Some(rest) => format!("ws://{rest}"),
        None => match base.strip_prefix("https://") {
            Some(rest) => format!("wss://{rest}"),
            None => base.to_string(),
        },
    };
    format!("{base}/ws")
}

impl WsSession {
    /// Opens the WebSocket at `ws_url`, sends `connect` with `app_key` and
    /// `params` (a JSON object, or `Value::Null` for none) and waits up to
    /// [`WS_TIMEOUT`] for `connection`. `FAILED` (or an `error`) is
    /// [`WebRtcError::ConnectFailed`].
    pub async fn connect(ws_url: &str, app_key: &str, params: Value) -> Result<WsSession, WebRtcError> {
        Self::connect_with_timeout(ws_url, app_key, params, WS_TIMEOUT).await
    }

    /// [`WsSession::connect`] with another timeout.
    pub async fn connect_with_timeout(
        ws_url: &str,
        app_key: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<WsSession, WebRtcError> {
        let session = Self::open(ws_url, timeout).await?;
        let mut connect = json!({"type": "connect", "appKey": app_key});
        if !params.is_null() {
            connect["params"] = params;
        }
        session.send_json(&connect)?;
        let shared = session.inner.shared.clone();
        let answer = wait_for(
            &shared.changed,
            timeout,
            || {
                let state = shared.lock();
                if let Some(connection) = &state.connection {
                    return Ok(Some(connection.clone()));
                }
                if let Some(error) = state.errors.first() {
                    return Err(WebRtcError::ConnectFailed {
                        info: error.clone(),
                        message: "error".into(),
                    });
                }
                if let Some(reason) = &state.closed {
                    return Err(WebRtcError::WsClosed {
                        what: "the connection answer".into(),
                        reason: reason.clone(),
                    });
                }
                Ok(None)
            },
            || ("the connection answer".into(), "nothing".into()),
        )
        .await?;
        let field = |name: &str| answer.get(name).and_then(Value::as_str).map(str::to_string);
        match field("status").as_deref() {
            Some("ESTABLISHED") => {
                // Set once, here, before the handle is returned.
                let _ = session.inner.session_id.set(field("sessionId").unwrap_or_default());
                Ok(session)
            }
            _ => Err(WebRtcError::ConnectFailed {
                info: field("info").unwrap_or_default(),
                message: answer.to_string(),
            }),
        }
    }

    /// Opens the WebSocket without sending `connect`, for tests of what the
    /// server does with messages out of order.
    pub async fn open(ws_url: &str, timeout: Duration) -> Result<WsSession, WebRtcError> {
        let ws_error = |reason: String| WebRtcError::WebSocket {
            url: ws_url.to_string(),
            reason,
        };
        let (socket, _) = tokio::time::timeout(timeout, tokio_tungstenite::connect_async(ws_url))
            .await
            .map_err(|_| ws_error(format!("no WebSocket handshake within {timeout:?}")))?
            .map_err(|e| ws_error(e.to_string()))?;
        let shared = Arc::new(WsShared {
            state: Mutex::new(WsState {
                started: Instant::now(),
                connection: None,
                streams: BTreeMap::new(),
                errors: Vec::new(),
                violations: Vec::new(),
                messages: Vec::new(),
                closed: None,
            }),
            changed: watch::channel(0).0,
        });
        let (out, out_rx) = mpsc::unbounded_channel();
        tokio::spawn(run(socket, shared.clone(), out_rx));
        Ok(WsSession {
            inner: Arc::new(WsInner {
                url: ws_url.to_string(),
                session_id: OnceLock::new(),
                out,
                shared,
            }),
        })
    }

    /// The WebSocket URL.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// The `sessionId` of the `connection` answer.
    pub fn session_id(&self) -> &str {
        self.inner.session_id.get().map(String::as_str).unwrap_or("")
    }

    /// Sends one JSON message as a text frame.
    pub fn send_json(&self, message: &Value) -> Result<(), WebRtcError> {
        self.send_text(message.to_string())
    }

    /// Sends a raw text frame (which need not be JSON, for robustness cases).
    pub fn send_text(&self, text: String) -> Result<(), WebRtcError> {
        self.inner
            .out
            .send(Message::text(text))
            .map_err(|_| WebRtcError::WebSocket {
                url: self.inner.url.clone(),
                reason: format!("closed: {}", self.closed().unwrap_or_default()),
            })
    }

    /// Sends `publish` or `play` for `id` with an SDP offer and waits for its
    /// `answer`. A `FAILED` for `id` first is [`WebRtcError::StreamFailed`].
    /// An id may be used again after its session ended: only events after this
    /// request count.
    pub async fn offer(
        &self,
        request: WsRequest,
        id: &str,
        stream: &str,
        sdp: &str,
        timeout: Duration,
    ) -> Result<String, WebRtcError> {
        let mark = {
            let mut state = self.inner.shared.lock();
            let log = state.streams.entry(id.to_string()).or_default();
            log.answer = None;
            log.events.len()
        };
        self.send_json(&json!({"type": request.as_str(), "id": id, "stream": stream, "sdp": sdp}))?;
        let what = format!("the answer to {} {id:?}", request.as_str());
        let shared = &self.inner.shared;
        wait_for(
            &shared.changed,
            timeout,
            || {
                let state = shared.lock();
                let log = state.streams.get(id);
                if let Some(answer) = log.and_then(|l| l.answer.clone()) {
                    return Ok(Some(answer));
                }
                if let Some(log) = log {
                    if let Some(failed) = log.events[mark.min(log.events.len())..]
                        .iter()
                        .find(|e| e.status == StreamStatus::Failed)
                    {
                        return Err(failed_error(id, failed, log));
                    }
                }
                if let Some(reason) = &state.closed {
                    return Err(WebRtcError::WsClosed {
                        what: what.clone(),
                        reason: reason.clone(),
                    });
                }
                Ok(None)
            },
            || (what.clone(), self.describe(id)),
        )
        .await
    }

    /// Answers the server's offers for `id` as they come, with `answer`
    /// (the peer's SDP answer to an offer), until the session closes or
    /// `answer` fails. Returns when it stops.
    pub async fn answer_offers<F, Fut>(&self, id: &str, mut answer: F)
    where
        F: FnMut(String) -> Fut,
        Fut: std::future::Future<Output = Result<String, WebRtcError>>,
    {
        let mut seen = self.inner.shared.changed.subscribe();
        let mut answered = 0;
        loop {
            let (offers, closed) = {
                let state = self.inner.shared.lock();
                let offers = state.streams.get(id).map(|l| l.offers.clone()).unwrap_or_default();
                (offers, state.closed.is_some())
            };
            for sdp in offers.into_iter().skip(answered) {
                answered += 1;
                match answer(sdp).await {
                    Ok(sdp) => {
                        if self
                            .send_json(&json!({"type": "answer", "id": id, "sdp": sdp}))
                            .is_err()
                        {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
            if closed || seen.changed().await.is_err() {
                return;
            }
        }
    }

    /// Sends `stop` for `id`.
    pub fn stop(&self, id: &str) -> Result<(), WebRtcError> {
        self.send_json(&json!({"type": "stop", "id": id}))
    }

    /// Everything the server said about `id` so far.
    pub fn stream_log(&self, id: &str) -> StreamLog {
        self.inner.shared.lock().streams.get(id).cloned().unwrap_or_default()
    }

    /// The statuses of `id` so far, in order.
    pub fn statuses(&self, id: &str) -> Vec<StreamStatus> {
        self.stream_log(id).statuses()
    }

    /// The `info` of every `error` message so far.
    pub fn errors(&self) -> Vec<String> {
        self.inner.shared.lock().errors.clone()
    }

    /// What the server sent that breaks the protocol (bad JSON, unknown types, missing fields).
    pub fn violations(&self) -> Vec<String> {
        self.inner.shared.lock().violations.clone()
    }

    /// Every JSON message the server sent, in order.
    pub fn messages(&self) -> Vec<Value> {
        self.inner.shared.lock().messages.clone()
    }

    /// Waits, at most `timeout`, until `check` holds for the messages the
    /// server has sent so far; re-checks whenever one arrives. Returns the
    /// messages, and whether `check` held.
    pub async fn wait_messages(
        &self,
        timeout: Duration,
        mut check: impl FnMut(&[Value]) -> bool,
    ) -> (Vec<Value>, bool) {
        let shared = &self.inner.shared;
        let held = wait_for(
            &shared.changed,
            timeout,
            || {
                let messages = shared.lock().messages.clone();
                Ok(check(&messages).then_some(messages))
            },
            || (String::new(), String::new()),
        )
        .await;
        match held {
            Ok(messages) => (messages, true),
            Err(_) => (self.messages(), false),
        }
    }

    /// Why the connection closed, once it has.
    pub fn closed(&self) -> Option<String> {
        self.inner.shared.lock().closed.clone()
    }

    /// Waits until `id` has an event with `status` and returns the first such
    /// event. A `FAILED` for `id` (when not waiting for `FAILED`) ends the wait
    /// with [`WebRtcError::StreamFailed`].
    pub async fn wait_status(
        &self,
        id: &str,
        status: StreamStatus,
        timeout: Duration,
    ) -> Result<StreamEvent, WebRtcError> {
        let what = format!("status {status} for {id:?}");
        let shared = &self.inner.shared;
        wait_for(
            &shared.changed,
            timeout,
            || {
                let state = shared.lock();
                if let Some(log) = state.streams.get(id) {
                    if let Some(event) = log.events.iter().find(|e| e.status == status) {
                        return Ok(Some(event.clone()));
                    }
                    if let Some(failed) = log.events.iter().find(|e| e.status == StreamStatus::Failed) {
                        return Err(failed_error(id, failed, log));
                    }
                }
                if let Some(reason) = &state.closed {
                    return Err(WebRtcError::WsClosed {
                        what: what.clone(),
                        reason: reason.clone(),
                    });
                }
                Ok(None)
            },
            || (what.clone(), self.describe(id)),
        )
        .await
    }

    /// Waits until `check` holds for `id`'s log, and returns the log.
    pub async fn wait_log(
        &self,
        id: &str,
        what: &str,
        mut check: impl FnMut(&StreamLog) -> bool,
        timeout: Duration,
    ) -> Result<StreamLog, WebRtcError> {
        let shared = &self.inner.shared;
        wait_for(
            &shared.changed,
            timeout,
            || {
                let log = shared.lock().streams.get(id).cloned().unwrap_or_default();
                Ok(check(&log).then_some(log))
            },
            || (format!("{what} for {id:?}"), self.describe(id)),
        )
        .await
    }

    /// Waits for an `error` message and returns its `info`: the first one at
    /// index `after` or later of [`WsSession::errors`].
    pub async fn wait_error(&self, after: usize, timeout: Duration) -> Result<String, WebRtcError> {
        let shared = &self.inner.shared;
        wait_for(
            &shared.changed,
            timeout,
            || Ok(shared.lock().errors.get(after).cloned()),
            || ("an error message".into(), format!("errors: {:?}", self.errors())),
        )
        .await
    }

    /// Waits until the server has closed the connection, and returns why.
    pub async fn wait_closed(&self, timeout: Duration) -> Result<String, WebRtcError> {
        let shared = &self.inner.shared;
        wait_for(
            &shared.changed,
            timeout,
            || Ok(shared.lock().closed.clone()),
            || ("the WebSocket to close".into(), "open".into()),
        )
        .await
    }

    /// Sends a close frame; the connection ends when the server answers it.
    pub fn close(&self) {
        // If the task has already ended, the connection is closed anyway.
        let _ = self.inner.out.send(Message::Close(None));
    }

    fn describe(&self, id: &str) -> String {
        let state = self.inner.shared.lock();
        let statuses: Vec<String> = state
            .streams
            .get(id)
            .map(|l| l.events.iter().map(describe_event).collect())
            .unwrap_or_default();
        format!(
            "statuses of {id:?}: [{}], errors: {:?}, closed: {:?}",
            statuses.join(", "),
            state.errors,
            state.closed
        )
    }
}

fn describe_event(e: &StreamEvent) -> String {
    match &e.info {
        Some(info) => format!("{} ({info})", e.status),
        None => e.status.to_string(),
    }
}

fn failed_error(id: &str, failed: &StreamEvent, log: &StreamLog) -> WebRtcError {
    WebRtcError::StreamFailed {
        id: id.to_string(),
        info: failed.info.clone().unwrap_or_default(),
        statuses: log.events.iter().map(describe_event).collect::<Vec<_>>().join(", "),
    }
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn run(socket: Socket, shared: Arc<WsShared>, mut out: mpsc::UnboundedReceiver<Message>) {
    let (mut sink, mut stream) = socket.split();
    let reason = loop {
        tokio::select! {
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    shared.record_text(text.as_str());
                    shared.bump();
                }
                Some(Ok(Message::Binary(bytes))) => {
                    shared.lock().violations.push(format!("binary frame of {} bytes", bytes.len()));
                    shared.bump();
                }
                Some(Ok(Message::Close(frame))) => {
                    break match frame {
                        Some(f) => format!("close frame {} {:?}", u16::from(f.code), f.reason.as_str()),
                        None => "close frame without a reason".to_string(),
                    };
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => break format!("WebSocket error: {e}"),
                None => break "the connection ended without a close frame".to_string(),
            },
            message = out.recv() => match message {
                Some(message) => {
                    if let Err(e) = sink.send(message).await {
                        break format!("sending failed: {e}");
                    }
                }
                None => {
                    let _ = sink.send(Message::Close(None)).await;
                    break "closed by the client".to_string();
                }
            },
        }
    };
    shared.lock().closed = Some(reason);
    shared.bump();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ws_url_follows_the_http_base() {
        assert_eq!(ws_url("http://127.0.0.1:8080"), "ws://127.0.0.1:8080/ws");
        assert_eq!(ws_url("https://h/"), "wss://h/ws");
    }

    #[test]
    fn statuses_round_trip() {
        for s in [
            "NEW",
            "PENDING",
            "PUBLISHING",
            "PLAYING",
            "UNPUBLISHED",
            "STOPPED",
            "FAILED",
            "WEIRD",
        ] {
            assert_eq!(StreamStatus::parse(s).as_str(), s);
        }
    }

    #[test]
    fn records_events_answers_errors_and_violations() {
        let shared = WsShared {
            state: Mutex::new(WsState {
                started: Instant::now(),
                connection: None,
                streams: BTreeMap::new(),
                errors: Vec::new(),
                violations: Vec::new(),
                messages: Vec::new(),
                closed: None,
            }),
            changed: watch::channel(0).0,
        };
        shared.record_text(r#"{"type":"stream","id":"p1","stream":"cam","status":"NEW"}"#);
        shared.record_text(r#"{"type":"answer","id":"p1","sdp":"v=0"}"#);
        shared.record_text(r#"{"type":"stream","id":"p1","stream":"cam","status":"FAILED","info":"Stream not found"}"#);
        shared.record_text(r#"{"type":"error","info":"bad"}"#);
        shared.record_text(r#"{"type":"bogus"}"#);
        shared.record_text("not json");
        let state = shared.lock();
        let log = &state.streams["p1"];
        assert_eq!(log.statuses(), [StreamStatus::New, StreamStatus::Failed]);
        assert_eq!(log.events[1].info.as_deref(), Some("Stream not found"));
        assert_eq!(log.answer.as_deref(), Some("v=0"));
        assert_eq!(state.errors, ["bad"]);
        assert_eq!(state.violations.len(), 2);
        assert_eq!(state.messages.len(), 5);
    }
}
