//! The WebSocket signalling channel (`GET /ws`): one connection publishes and
//! plays any number of streams, each named by a client-chosen `id`, and gets
//! stream status events in WCS's vocabulary. See docs/signalling.md.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use media::rtmp::url::{split_params, Params};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::session::{start, Requester};
use crate::rooms::{next_event, RoomClient, RoomEvent, RoomRequest};
use crate::server::Context;
use crate::text::Clipped;
use crate::webrtc::{Direction, SessionHandle, SessionStatus};

/// Largest message a client may send (an SDP offer is a few kB).
const MAX_MESSAGE: usize = 256 * 1024;

/// JSON values as URL-style parameters: strings as they are, anything else
/// as its JSON text.
fn to_params(values: serde_json::Map<String, Value>) -> Params {
    values
        .into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect()
}

/// `GET /ws`: upgrades to the signalling channel.
pub async fn upgrade(
    State(ctx): State<Arc<Context>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ws: WebSocketUpgrade,
) -> Response {
    let Some(slot) = ctx.websocket_addresses.admit(peer.ip()) else {
        tracing::info!(%peer, "WebSocket refused: too many from this address");
        let limit = ctx.websocket_addresses.limit();
        return (
            StatusCode::TOO_MANY_REQUESTS,
            format!("too many WebSocket connections from this address ({limit})\n"),
        )
            .into_response();
    };
    ws.max_message_size(MAX_MESSAGE).on_upgrade(move |socket| async move {
        serve(socket, ctx, peer).await;
        drop(slot);
    })
}

/// A client's message, from its JSON text.
pub(crate) fn read_message(text: &str) -> Result<ClientMessage, serde_json::Error> {
    serde_json::from_str(text)
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub(crate) enum ClientMessage {
    Connect {
        #[serde(rename = "appKey")]
        app_key: String,
        #[serde(default)]
        params: serde_json::Map<String, Value>,
    },
    Publish {
        id: String,
        stream: String,
        sdp: String,
    },
    Play {
        id: String,
        stream: String,
        sdp: String,
        /// `{"width": 320, "height": 240, "bitrate": 300}`: the same as the
        /// stream-name parameters of those names (docs/signalling.md).
        #[serde(default)]
        constraints: serde_json::Map<String, Value>,
    },
    Stop {
        id: String,
    },
    /// The answer to an `offer` the server sent for a stream `id`: video
    /// that appeared after the stream's first answer.
    Answer {
        id: String,
        sdp: String,
    },
    /// A player's video layer selection, with the fields of WHEP's
    /// (`rid`, `maxWidth`, `maxHeight`; none: back to the first track):
    /// answered with a `layer` message, `SELECTED` or `FAILED`.
    Layer {
        id: String,
        #[serde(flatten)]
        request: super::layer::Request,
    },
    /// A room request: `{"type": "room", "method": "joinRoom", ...}`.
    Room(RoomRequest),
}

struct Connection {
    ctx: Arc<Context>,
    app: Option<String>,
    requester: Requester,
    streams: HashMap<String, SessionHandle>,
    /// Where the tasks a connection starts (stream statuses, later offers)
    /// send their messages.
    out: mpsc::Sender<String>,
    /// The connection's own answers to the message being handled, written
    /// by the loop once it is handled. (Not through `out`: the loop is that
    /// channel's only reader, so a message with more answers than it holds
    /// would wait on itself for ever.)
    replies: Vec<String>,
    rooms: Option<RoomClient>,
}

/// How long a message to the client may wait on a client that does not
/// read; then the connection is closed.
const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Sends `text`; false when the client is gone or has not read for [`SEND_TIMEOUT`].
async fn deliver(socket: &mut WebSocket, text: String) -> bool {
    match tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Text(text.into()))).await {
        Ok(Ok(())) => true,
        Ok(Err(_)) => false,
        Err(_) => {
            tracing::info!("WebSocket signalling closed: the client read nothing for {SEND_TIMEOUT:?}");
            false
        }
    }
}

async fn serve(mut socket: WebSocket, ctx: Arc<Context>, peer: SocketAddr) {
    let (out, mut outgoing) = mpsc::channel::<String>(64);
    let mut connection = Connection {
        requester: Requester {
            session_id: format!("ws-{:016x}", rand::random::<u64>()),
            address: Some(peer.ip()),
            ..Requester::default()
        },
        ctx: ctx.clone(),
        app: None,
        streams: HashMap::new(),
        out,
        replies: Vec::new(),
        rooms: None,
    };
    tracing::info!(session = %connection.requester.session_id, "WebSocket signalling opened");
    loop {
        tokio::select! {
            _ = ctx.shutdown.cancelled() => {
                let bye = json!({"type": "connection", "status": "DISCONNECTED", "info": "the server is shutting down"});
                let _ = socket.send(Message::Text(bye.to_string().into())).await;
                break;
            }
            Some(event) = next_event(&mut connection.rooms) => {
                let mut message = event.to_json();
                message["type"] = Value::String("room".into());
                if !deliver(&mut socket, message.to_string()).await {
                    break;
                }
            }
            message = socket.recv() => match message {
                Some(Ok(Message::Text(text))) => {
                    connection.message(text.as_str()).await;
                    let mut delivered = true;
                    for reply in std::mem::take(&mut connection.replies) {
                        delivered = delivered && deliver(&mut socket, reply).await;
                    }
                    if !delivered {
                        break;
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    let refusal = json!({"type": "error", "info": "binary messages are not part of this protocol"});
                    if !deliver(&mut socket, refusal.to_string()).await {
                        break;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    tracing::info!(%error, "WebSocket signalling failed");
                    break;
                }
                None => break,
            },
            Some(text) = outgoing.recv() => {
                if !deliver(&mut socket, text).await {
                    break;
                }
            }
        }
    }
    for session in connection.streams.values() {
        session.stop();
    }
    tracing::info!(session = %connection.requester.session_id, "WebSocket signalling closed");
}

impl Connection {
    async fn send(&mut self, message: Value) {
        self.replies.push(message.to_string());
    }

    async fn error(&mut self, info: &str) {
        self.send(json!({"type": "error", "info": info})).await;
    }

    async fn message(&mut self, text: &str) {
        let message = match read_message(text) {
            Ok(message) => message,
            // serde's words may quote the peer's text: clipped.
            Err(error) => {
                return self
                    .error(&format!("bad message: {}", Clipped(&error.to_string())))
                    .await
            }
        };
        match message {
            ClientMessage::Connect { app_key, params } => self.connect(app_key, params).await,
            ClientMessage::Publish { id, stream, sdp } => {
                self.start(Direction::Publish, id, stream, Params::new(), sdp).await
            }
            ClientMessage::Play {
                id,
                stream,
                sdp,
                constraints,
            } => {
                self.start(Direction::Play, id, stream, to_params(constraints), sdp)
                    .await
            }
            ClientMessage::Stop { id } => match self.streams.get(&id) {
                Some(session) => session.stop(),
                None => self.error(&format!("no stream with id '{}'", Clipped(&id))).await,
            },
            ClientMessage::Answer { id, sdp } => {
                let taken = self.streams.get(&id).is_some_and(|session| session.remote_answer(sdp));
                if !taken {
                    self.error(&format!("no stream with id '{}' waits for an answer", Clipped(&id)))
                        .await;
                }
            }
            ClientMessage::Layer { id, request } => self.select_layer(id, &request).await,
            ClientMessage::Room(request) => {
                let room = request.room().to_string();
                let result = match &mut self.rooms {
                    Some(rooms) => rooms.request(request).map_err(|e| e.to_string()),
                    None => Err("send connect first".to_string()),
                };
                if let Err(info) = result {
                    let mut failed = RoomEvent::failed(&room, info).to_json();
                    failed["type"] = Value::String("room".into());
                    self.send(failed).await;
                }
            }
        }
    }

    /// A `layer` message: the stream `id`'s player switches to the layer
    /// `request` asks for; the answer lists the stream's layers.
    async fn select_layer(&mut self, id: String, request: &super::layer::Request) {
        let Some(session) = self.streams.get(&id) else {
            return self.error(&format!("no stream with id '{}'", Clipped(&id))).await;
        };
        let chosen = match session.direction {
            Direction::Play => super::layer::select_for(&self.ctx, session, request),
            Direction::Publish => Err("a publisher has no layers to select".into()),
        };
        let layers = super::layer::listed(&self.ctx, session);
        let mut answer = json!({"type": "layer", "id": id, "layers": layers});
        match chosen {
            Ok(track) => {
                answer["status"] = "SELECTED".into();
                answer["rid"] = track.map_or(Value::Null, |t| t.to_string().into());
            }
            Err(why) => {
                answer["status"] = "FAILED".into();
                answer["info"] = why.into();
            }
        }
        self.send(answer).await;
    }

    async fn connect(&mut self, app_key: String, params: serde_json::Map<String, Value>) {
        if !self.ctx.config.apps.contains_key(&app_key) {
            let info = format!("Application '{}' is not defined on this server", Clipped(&app_key));
            return self
                .send(json!({"type": "connection", "status": "FAILED", "info": info}))
                .await;
        }
        let params = to_params(params);
        self.requester.login = params.get("login").cloned();
        self.requester.params = Some(params);
        let policy = self.ctx.config.apps.get(&app_key).map(|a| a.rooms).unwrap_or_default();
        self.rooms = Some(RoomClient::new(self.ctx.rooms.clone(), &app_key, policy));
        self.app = Some(app_key);
        let session_id = self.requester.session_id.clone();
        // The STUN and TURN servers its peer connections may use (as WHIP
        // and WHEP name them in Link header fields).
        let credentials = !self.ctx.config.quirks.ice_server_credentials_left_out;
        let ice_servers: Vec<Value> = self
            .ctx
            .config
            .webrtc
            .ice_servers
            .iter()
            .map(|server| server.to_rtc(credentials))
            .collect();
        self.send(json!({
            "type": "connection",
            "status": "ESTABLISHED",
            "sessionId": session_id,
            "iceServers": ice_servers,
        }))
        .await;
    }

    /// Starts a publish or play of `stream`; `extra` parameters join those
    /// of the stream name.
    async fn start(&mut self, direction: Direction, id: String, stream: String, extra: Params, sdp: String) {
        let Some(app) = self.app.clone() else {
            return self.error("send connect first").await;
        };
        if self.streams.get(&id).is_some_and(|s| !s.status.borrow().is_final()) {
            return self.error(&format!("id '{}' is already in use", Clipped(&id))).await;
        }
        let mut name = split_params(&stream);
        name.params.extend(extra);
        let event = |status: &str, info: Option<String>| {
            let mut event = json!({"type": "stream", "id": id, "stream": name.name, "status": status});
            if let Some(info) = info {
                event["info"] = Value::String(info);
            }
            event
        };
        self.send(event("NEW", None)).await;
        // A player's later offers (video that appears after its answer) go
        // out on this connection as `offer` messages.
        let (offers, mut offered) = mpsc::unbounded_channel::<String>();
        let out = self.out.clone();
        let offer_id = id.clone();
        tokio::spawn(async move {
            while let Some(sdp) = offered.recv().await {
                let offer = json!({"type": "offer", "id": offer_id, "sdp": sdp});
                if out.send(offer.to_string()).await.is_err() {
                    return;
                }
            }
        });
        let offers = (direction == Direction::Play).then_some(offers);
        match start(&self.ctx, &app, &name, direction, &self.requester, &sdp, offers).await {
            Ok((session, answer)) => {
                self.send(json!({"type": "answer", "id": id, "sdp": answer})).await;
                if direction == Direction::Publish {
                    if let Some(rooms) = &self.rooms {
                        rooms.published(&name.name);
                    }
                }
                if direction == Direction::Publish && self.ctx.config.quirks.publish_takes_played_audio {
                    self.take_played_audio(&session);
                }
                tokio::spawn(report_status(
                    session.clone(),
                    id.clone(),
                    name.name.clone(),
                    self.out.clone(),
                ));
                self.streams.insert(id, session);
            }
            Err(failure) => self.send(event("FAILED", Some(failure.to_string()))).await,
        }
    }
}

impl Connection {
    /// KI-2 switched back on: a shared "avoid transcoding" path gives this
    /// connection's publisher the audio route of the streams it plays, so
    /// they fall silent until the publisher stops.
    fn take_played_audio(&self, publisher: &SessionHandle) {
        let players: Vec<SessionHandle> = self
            .streams
            .values()
            .filter(|s| s.direction == Direction::Play && !s.status.borrow().is_final())
            .cloned()
            .collect();
        for player in &players {
            player.mute_audio(true);
        }
        let mut status = publisher.status.clone();
        tokio::spawn(async move {
            while !status.borrow_and_update().is_final() {
                if status.changed().await.is_err() {
                    break;
                }
            }
            for player in &players {
                player.mute_audio(false);
            }
        });
    }
}

/// Sends a session's status changes as `stream` events until it ends.
async fn report_status(session: SessionHandle, id: String, stream: String, out: mpsc::Sender<String>) {
    let mut status = session.status.clone();
    loop {
        let current = status.borrow_and_update().clone();
        let mut event = json!({"type": "stream", "id": id, "stream": stream, "status": current.name()});
        if let SessionStatus::Failed(info) = &current {
            event["info"] = Value::String(info.clone());
        }
        if out.send(event.to_string()).await.is_err() || current.is_final() {
            return;
        }
        if status.changed().await.is_err() {
            // The session task is gone; its last status was sent or is final.
            let last = status.borrow().clone();
            if !last.is_final() {
                let _ = out
                    .send(json!({"type": "stream", "id": id, "stream": stream, "status": "STOPPED"}).to_string())
                    .await;
            }
            return;
        }
    }
}
