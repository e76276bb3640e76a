//! The task that owns one RTMP client's socket: handshake, then a loop that
//! moves bytes between the socket and the [`Session`], acts on its events
//! (applications, hooks, the hub) and feeds played streams back to it.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{AbortHandle, Abortable, BoxStream};
use futures_util::{FutureExt, StreamExt};
use media::amf::Value;
use media::eflv::FourCc;
use media::flv::{AudioCodec, TagKind};
use media::netstatus::code;
use media::rtmp::enhanced::{caps_ex, Capabilities};
use media::rtmp::url::Params;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::{timeout, Instant};
use tracing::Instrument;

use super::enhanced::{self, Form};
use super::fanout::{Back, Plainness, RtmpSink, Steering, Wire};
use super::session::{ConnectRequest, Event, MediaKind, Session, SessionConfig, SessionError, Start};
use crate::admission::{self, Requester};
use crate::config::{AppConfig, MissingStreamPolicy};
use crate::hooks::{Hook, HookBody};
use crate::hub::{Delivery, Frame, Publisher, Selection, Subscription, Tracks};
use crate::rooms::{next_event, RoomClient, RoomEvent, RoomRequest};
use crate::server::Context;
use crate::text::Clipped;
use crate::transcode::{Target, Transcoded};
use codecs::VideoSettings;

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
enum Closed {
    #[error("handshake: {0}")]
    Handshake(String),
    #[error("handshake not completed within {0:?}")]
    HandshakeTimeout(Duration),
    #[error("no connect within {0:?} of the handshake")]
    ConnectTimeout(Duration),
    #[error("{0}")]
    Protocol(#[from] SessionError),
    #[error("no data from the client for {0:?}")]
    Idle(Duration),
    #[error("client did not read what we sent for {0:?}")]
    WriteStalled(Duration),
    #[error("connect rejected: {0}")]
    Rejected(String),
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
}

/// Serves one accepted socket until it closes; never panics on client input.
pub async fn serve(socket: TcpStream, peer: SocketAddr, ctx: Arc<Context>, connection_id: u64) {
    let client_id = format!("{connection_id:x}{:08x}", rand::random::<u32>());
    let span = tracing::info_span!("rtmp", %peer, client = %client_id);
    async move {
        tracing::info!("connection accepted");
        let _ = socket.set_nodelay(true);
        let metrics = ctx.metrics.clone();
        match run(socket, ctx, client_id, connection_id).await {
            Ok(reason) => tracing::info!(reason, "connection closed"),
            Err(Closed::Rejected(reason)) => {
                tracing::info!(%reason, "connection closed after connect was rejected")
            }
            Err(Closed::Io(error)) => tracing::info!(%error, "connection closed by socket error"),
            Err(error) => {
                metrics.rtmp_protocol_errors.inc();
                tracing::warn!(%error, "connection closed: bad or stalled client");
            }
        }
    }
    .instrument(span)
    .await
}

async fn run(
    mut socket: TcpStream,
    ctx: Arc<Context>,
    client_id: String,
    connection_id: u64,
) -> Result<&'static str, Closed> {
    let rtmp = &ctx.config.rtmp;
    let leftover = timeout(rtmp.handshake_timeout, handshake(&mut socket))
        .await
        .map_err(|_| Closed::HandshakeTimeout(rtmp.handshake_timeout))??;
    let session = Session::new(SessionConfig::from_config(&ctx.config), client_id);
    let mut connection = Connection {
        wire: Arc::new(Wire::new(socket)),
        session,
        ctx: ctx.clone(),
        connection_id,
        app: None,
        publishers: HashMap::new(),
        players: HashMap::new(),
        player_events: PlayerEvents::default(),
        rooms: None,
        enhanced: None,
        withheld: HashSet::new(),
    };
    connection.run(leftover).await
}

/// Its state and buffer are on the heap, not in the future: the task's
/// future is as large as its largest stage for as long as it runs, and
/// this one would make every connection's task 6 KB instead of 3.5.
async fn handshake(socket: &mut TcpStream) -> Result<Vec<u8>, Closed> {
    let mut handshake = Box::new(Handshake::new(PeerType::Server));
    let mut buf = vec![0u8; 4096];
    loop {
        let n = socket.read(&mut buf).await?;
        if n == 0 {
            return Err(Closed::Handshake("client closed the connection mid-handshake".into()));
        }
        match handshake.process_bytes(&buf[..n]) {
            Ok(HandshakeProcessResult::InProgress { response_bytes }) => socket.write_all(&response_bytes).await?,
            Ok(HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            }) => {
                socket.write_all(&response_bytes).await?;
                return Ok(remaining_bytes);
            }
            Err(error) => return Err(Closed::Handshake(format!("{error:?}"))),
        }
    }
}

/// The application a connection joined.
struct App {
    key: String,
    config: AppConfig,
    params: Params,
    login: Option<String>,
}

/// What one of the connection's plays has for its client.
enum PlayerEvent {
    Frame {
        stream_id: u32,
        frame: Frame,
    },
    Publication {
        stream_id: u32,
        live: bool,
    },
    /// The publisher has sent nothing for `stream_dry_after`.
    Dry {
        stream_id: u32,
    },
    /// The play went to its stream's fan-out, or came back with nothing
    /// to deliver (the rest of a message the fan-out wrote in part is to
    /// be written).
    Steered,
}

/// A play, as its connection holds it.
struct Play {
    /// Ends its events.
    abort: AbortHandle,
    steering: Arc<Steering>,
}

impl Play {
    /// Ends the play: nothing more of it is written once this returns.
    fn end(self) {
        self.steering.seat.recall();
        self.abort.abort();
    }
}

/// The events of a connection's plays, as one stream. A connection plays
/// one stream, or a few: each is polled in turn from where the last event
/// came from, and nothing is allocated per event (unlike `SelectAll`,
/// which queues a stream anew after each of its items).
#[derive(Default)]
struct PlayerEvents {
    plays: Vec<Abortable<BoxStream<'static, PlayerEvent>>>,
    /// The play polled first next time, so that one busy stream does not
    /// starve the others.
    next: usize,
}

impl PlayerEvents {
    fn push(&mut self, play: Abortable<BoxStream<'static, PlayerEvent>>) {
        self.plays.push(play);
    }
}

impl futures_util::Stream for PlayerEvents {
    type Item = PlayerEvent;

    /// The next event of any play; pending (never ended) while there is
    /// none, so a connection without plays just waits.
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<PlayerEvent>> {
        let this = &mut *self;
        let mut tried = 0;
        while tried < this.plays.len() {
            let at = this.next % this.plays.len();
            match this.plays[at].poll_next_unpin(cx) {
                std::task::Poll::Ready(Some(event)) => {
                    this.next = at + 1;
                    return std::task::Poll::Ready(Some(event));
                }
                // Ended or aborted: dropped, and the one moved into its
                // place is polled next.
                std::task::Poll::Ready(None) => {
                    drop(this.plays.swap_remove(at));
                }
                std::task::Poll::Pending => {
                    this.next = at + 1;
                    tried += 1;
                }
            }
        }
        std::task::Poll::Pending
    }
}

struct Connection {
    /// The socket, shared with the fan-outs that write its plays' frames.
    wire: Arc<Wire>,
    session: Session,
    ctx: Arc<Context>,
    connection_id: u64,
    app: Option<App>,
    publishers: HashMap<u32, Publisher>,
    /// Playing streams: what ends each play's events, and what steers it
    /// into and out of its stream's fan-out.
    players: HashMap<u32, Play>,
    /// Every play's events, polled by this connection's task: a frame
    /// wakes the connection itself, with no task or queue per player.
    player_events: PlayerEvents,
    /// The rooms this connection joined (after connect).
    rooms: Option<RoomClient>,
    /// The Enhanced RTMP codecs and capabilities its connect announced.
    enhanced: Option<Capabilities>,
    /// The codecs withheld from each of its players, told once each.
    withheld: HashSet<(u32, FourCc)>,
}

/// Bytes one read takes from a connection's socket at first: a player's
/// acknowledgements and commands fit.
const READ_BUFFER: usize = 2 * 1024;
/// Bytes one read takes once a read filled the buffer (a publisher).
const READ_BUFFER_BUSY: usize = 16 * 1024;

impl Connection {
    async fn run(&mut self, leftover: Vec<u8>) -> Result<&'static str, Closed> {
        let idle = self.ctx.config.rtmp.idle_timeout;
        // Every connection has one, players too (thousands of them): small,
        // until the client sends more than it holds.
        let mut buf = vec![0u8; READ_BUFFER];
        let mut events = Vec::new();
        // Clients often send connect in the same segment as C2.
        self.input(&leftover, &mut events).await?;
        self.flush().await?;
        // Idleness counts from when input was handled: time spent waiting on a
        // backend hook is the server's, not the client's.
        let mut last_input = Instant::now();
        let connect_timeout = self.ctx.config.rtmp.connect_timeout;
        // The futures that outlive one turn of the loop are made once: made
        // anew each turn (each frame, for a player), every one of them would
        // register and unregister a waiter or a timer, under locks shared
        // by every connection.
        let connect_deadline = tokio::time::sleep_until(last_input + connect_timeout);
        let ping = tokio::time::sleep_until(last_input + idle / 2);
        let shutdown = self.ctx.shutdown.clone().cancelled_owned();
        let drained = drained(self.ctx.draining.subscribe());
        // With `player_write_interval`, the plays' frames are taken (and
        // written) at most once per interval: the subscriptions are not
        // polled, so not woken, in between.
        let write_interval = self.ctx.config.rtmp.player_write_interval;
        let next_write = tokio::time::sleep(Duration::ZERO);
        let mut holding = false;
        tokio::pin!(connect_deadline, ping, shutdown, drained, next_write);
        let mut asked_to_reconnect = false;
        loop {
            tokio::select! {
                _ = &mut shutdown => {
                    self.ask_to_reconnect().await;
                    return Ok("server shutting down");
                }
                _ = &mut drained, if !asked_to_reconnect => {
                    // Asked once; the client closes when it reconnects.
                    tracing::info!("server draining");
                    asked_to_reconnect = true;
                    self.ask_to_reconnect().await;
                }
                _ = &mut connect_deadline, if self.app.is_none() => {
                    return Err(Closed::ConnectTimeout(connect_timeout));
                }
                read = self.wire.read(&mut buf) => {
                    let n = read?;
                    if n == 0 {
                        return Ok("client closed the connection");
                    }
                    // A pending backend hook must not hold up a server shutdown.
                    let shutdown = self.ctx.shutdown.clone();
                    tokio::select! {
                        handled = self.input(&buf[..n], &mut events) => handled?,
                        _ = shutdown.cancelled() => return Ok("server shutting down"),
                    }
                    last_input = Instant::now();
                    if n == buf.len() && n < READ_BUFFER_BUSY {
                        buf.resize(READ_BUFFER_BUSY, 0);
                    }
                }
                Some(event) = next_event(&mut self.rooms), if self.rooms.as_ref().is_some_and(RoomClient::has_events) => {
                    self.session.call_client("onRoomEvent", Value::from_json(&event.to_json()));
                }
                Some(event) = self.player_events.next(), if !holding => {
                    // Plays polled now may not go to the fan-out: the
                    // output is not empty.
                    self.wire.set_idle(false);
                    self.player_event(event);
                    // Batch what is already there into one write.
                    while let Some(Some(event)) = self.player_events.next().now_or_never() {
                        self.player_event(event);
                        if self.session.output().len() > 256 * 1024 {
                            break;
                        }
                    }
                    if !write_interval.is_zero() {
                        holding = true;
                        next_write.as_mut().reset(tokio::time::Instant::now() + write_interval);
                    }
                }
                _ = &mut next_write, if holding => holding = false,
                _ = &mut ping => {
                    // Input since the timer was set moves the ping on
                    // rather than re-arming the timer at each read.
                    let due = last_input + idle / 2;
                    if due > Instant::now() {
                        ping.as_mut().reset(due);
                    } else {
                        if last_input.elapsed() >= idle {
                            return Err(Closed::Idle(idle));
                        }
                        self.session.ping(last_input.elapsed().as_millis() as u32);
                        ping.as_mut().reset(Instant::now() + idle / 2);
                    }
                }
            }
            self.steer();
            self.flush().await?;
            // Between turns, a play may go to its stream's fan-out.
            let idle = self.session.output().is_empty();
            self.wire.set_idle(idle);
            if idle && !self.players.is_empty() && self.players.values().all(|p| p.steering.seat.is_driven()) {
                // The fan-out writes its frames: the output's room is not needed.
                self.session.output().release();
            }
        }
    }

    /// Tells each play whether the session sends its frames as they come,
    /// taking back from the fan-out those it no longer does: before what
    /// the session queued (Pause.Notify, say) is written.
    fn steer(&mut self) {
        for (stream_id, play) in &self.players {
            play.steering.set_plain(self.session.plays_plainly(*stream_id));
        }
    }

    /// Enhanced RTMP: a client that announced capsEx Reconnect is asked to
    /// connect again, when the server drains or before it closes the
    /// connection on shutdown (waiting at most a second for the write).
    async fn ask_to_reconnect(&mut self) {
        if self.request_reconnect() {
            let _ = timeout(Duration::from_secs(1), self.flush()).await;
        }
    }

    /// Queues a ReconnectRequest for a client that announced it can take
    /// one (Enhanced RTMP v2's `capsEx`); whether it did.
    fn request_reconnect(&mut self) -> bool {
        let can = self.enhanced.as_ref().is_some_and(|c| c.has(caps_ex::RECONNECT));
        if can {
            self.session
                .reconnect_request(self.ctx.config.rtmp.reconnect_tc_url.as_deref());
        }
        can
    }

    async fn input(&mut self, bytes: &[u8], events: &mut Vec<Event>) -> Result<(), Closed> {
        self.session.handle_input(bytes, events)?;
        // A pause or receiveVideo(false) stops the fan-out now, not after
        // the hooks other commands may wait on.
        self.steer();
        while !events.is_empty() {
            for event in std::mem::take(events) {
                self.event(event).await?;
            }
            // Messages that waited for the answer to connect.
            self.session.resume(events)?;
            self.steer();
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), Closed> {
        if self.session.output().is_empty() && !self.wire.has_rest() {
            return Ok(());
        }
        let limit = self.ctx.config.rtmp.idle_timeout;
        timeout(limit, self.wire.write_all(self.session.output()))
            .await
            .map_err(|_| Closed::WriteStalled(limit))??;
        self.session.output_written();
        Ok(())
    }

    async fn event(&mut self, event: Event) -> Result<(), Closed> {
        // Connect, publish and play, each once or so per connection, wait on
        // backend hooks: their futures are boxed, or every connection's task
        // would be as large as theirs for as long as it runs.
        match event {
            Event::Connect(request) => Box::pin(self.connect(request)).await?,
            Event::Publish { stream_id, name, .. } => Box::pin(self.publish(stream_id, name)).await,
            Event::Play { stream_id, name } => Box::pin(self.play(stream_id, name, false)).await,
            Event::Play2 { stream_id, name } => Box::pin(self.play(stream_id, name, true)).await,
            Event::Media {
                stream_id,
                kind,
                timestamp,
                payload,
            } => {
                if let Some(publisher) = self.publishers.get(&stream_id) {
                    let frame = Frame::new(kind, timestamp, payload);
                    if let Some(error) = frame.enhanced.as_ref().and_then(|e| e.error.as_ref()) {
                        // Enhanced RTMP: "fail in a controlled and predictable manner".
                        self.ctx.metrics.media_unreadable.inc();
                        tracing::debug!(stream_id, ?kind, timestamp, %error, "enhanced tag dropped");
                        return Ok(());
                    }
                    if let Err(taken_over) = publisher.push(frame) {
                        tracing::info!(stream_id, %taken_over, "publishing ended");
                        self.publishers.remove(&stream_id);
                        self.session.publish_refused(
                            stream_id,
                            code::PUBLISH_BAD_NAME,
                            "Another publisher took the stream over while this one sent nothing.",
                        );
                    }
                }
            }
            Event::PublishStopped { stream_id } => {
                if self.publishers.remove(&stream_id).is_some() {
                    tracing::info!(stream_id, "unpublished");
                }
            }
            Event::SendData { transaction_id, data } => self.send_data(transaction_id, &data),
            Event::PlayStopped { stream_id } => {
                if let Some(play) = self.players.remove(&stream_id) {
                    play.end();
                }
            }
        }
        Ok(())
    }

    async fn connect(&mut self, request: ConnectRequest) -> Result<(), Closed> {
        let config = &self.ctx.config;
        let args = request.extra_args.first();
        let arg = |key: &str| {
            args.and_then(|a| a.get(key))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let app_key = config.app_key(
            &request.app.name,
            arg("appKey").or_else(|| request.app.params.get("appKey").cloned()),
        );
        tracing::info!(
            app = %Clipped(&request.app.name),
            app_key = %Clipped(&app_key),
            flash_ver = %Clipped(request.flash_ver.as_deref().unwrap_or("-")),
            object_encoding = request.object_encoding.number(),
            "connect"
        );
        let Some(app_config) = config.apps.get(&app_key).cloned() else {
            let reason = format!("Application '{}' is not defined on this server.", Clipped(&app_key));
            return self.reject(reason).await;
        };
        let app = App {
            key: app_key,
            config: app_config,
            params: request.app.params.clone(),
            login: arg("login"),
        };
        if let Some(url) = &app.config.backend_url {
            let body = HookBody {
                app_key: app.key.clone(),
                session_id: self.session.client_id().to_string(),
                login: app.login.clone(),
                name: None,
                custom: app.params.clone(),
                connection_custom: None,
                connect_args: Some(match request.extra_args.as_slice() {
                    [one] => one.to_json(),
                    many => serde_json::Value::Array(many.iter().map(Value::to_json).collect()),
                }),
                flash_ver: request.flash_ver.clone(),
                has_audio: None,
                has_video: None,
            };
            if let Err(refusal) = self.ctx.hooks.call(url, Hook::Connect, &body, &self.ctx.metrics).await {
                return self
                    .reject(format!("Connection refused by the application backend ({refusal})."))
                    .await;
            }
        }
        self.rooms = Some(RoomClient::new(self.ctx.rooms.clone(), &app.key, app.config.rooms));
        self.app = Some(app);
        let quirks = &self.ctx.config.quirks;
        self.enhanced = request.enhanced.filter(|_| !quirks.ertmp_ignored).and_then(|mut caps| {
            if quirks.ertmp_fourcc_list_ignored {
                caps.list.clear();
            }
            // Only the list announced anything: a legacy client after all.
            (!caps.list.is_empty() || !caps.video.is_empty() || !caps.audio.is_empty() || caps.caps_ex != 0)
                .then_some(caps)
        });
        self.session.accept_connect(request.object_encoding);
        // A client that connects while the server drains is asked at once.
        if *self.ctx.draining.borrow() && self.request_reconnect() {
            tracing::info!("server draining: asked to reconnect on connect");
        }
        Ok(())
    }

    /// A `sendData` call: a room request (docs/rooms.md).
    fn send_data(&mut self, transaction_id: f64, data: &Value) {
        let request: Result<RoomRequest, String> =
            serde_json::from_value(data.to_json()).map_err(|e| format!("bad sendData request: {e}"));
        let room = data.get("room").and_then(Value::as_str).unwrap_or_default().to_string();
        let result = request.and_then(|request| match &mut self.rooms {
            Some(rooms) => rooms.request(request).map_err(|e| e.to_string()),
            None => Err("connect first".to_string()),
        });
        match result {
            Ok(()) => self.session.call_result(transaction_id),
            Err(info) => {
                tracing::info!(%info, "room request failed");
                self.session.call_error(transaction_id, &info);
                let failed = RoomEvent::failed(&room, info);
                self.session
                    .call_client("onRoomEvent", Value::from_json(&failed.to_json()));
            }
        }
    }

    async fn reject(&mut self, reason: String) -> Result<(), Closed> {
        self.session.reject_connect(&reason);
        self.flush().await?;
        let _ = self.wire.shutdown();
        Err(Closed::Rejected(reason))
    }

    /// What a backend hook is told of this connection.
    fn requester(&self, app: &App) -> Requester {
        Requester {
            session_id: self.session.client_id().to_string(),
            login: app.login.clone(),
            params: Some(app.params.clone()),
            address: self.wire.socket().peer_addr().ok().map(|peer| peer.ip()),
            bearer: None,
        }
    }

    /// The name as the quirks switched on make it: with KI-3 the query
    /// stays part of it; with `stream_names_case_folded` it is lowercased.
    fn quirky_name(&self, name: &mut media::rtmp::url::NameWithParams) {
        if self.ctx.config.quirks.stream_names_case_folded {
            name.name = name.name.to_lowercase();
        }
        if self.ctx.config.quirks.stream_name_keeps_query && !name.params.is_empty() {
            let query = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&name.params)
                .finish();
            name.name = format!("{}?{query}", name.name);
        }
    }

    async fn publish(&mut self, stream_id: u32, mut name: media::rtmp::url::NameWithParams) {
        self.quirky_name(&mut name);
        let Some(app) = &self.app else { return };
        let key = app.key.clone();
        tracing::info!(stream_id, stream = %Clipped(&name.name), params = %crate::text::Params(&name.params), "publish");
        let requester = self.requester(app);
        match admission::publish(&self.ctx, &key, &name, &requester, self.connection_id).await {
            Ok(mut publisher) => {
                if self.ctx.config.quirks.timestamp_jumps_passed_on {
                    publisher.pass_timestamp_jumps_on();
                }
                self.ctx.metrics.publishes_total.inc();
                self.publishers.insert(stream_id, publisher);
                self.session.publish_started(stream_id);
                if let Some(rooms) = &self.rooms {
                    rooms.published(&name.name);
                }
            }
            Err(refusal) => {
                self.session
                    .publish_refused(stream_id, code::PUBLISH_BAD_NAME, &format!("{refusal}."));
            }
        }
    }

    /// Plays `name` on `stream_id`; with `switch` (play2), in place of the
    /// stream played there, which goes on if the switch is refused.
    async fn play(&mut self, stream_id: u32, mut name: media::rtmp::url::NameWithParams, switch: bool) {
        self.quirky_name(&mut name);
        let Some(app) = &self.app else { return };
        let key = app.key.clone();
        let transcode_for_legacy = app.config.transcode_for_legacy;
        // A switch is to a stream that is live now.
        let wait = !switch && app.config.on_missing_stream == MissingStreamPolicy::Wait;
        let opus_target = Target::from(app.config.opus_to_rtmp);
        tracing::info!(stream_id, stream = %Clipped(&name.name), params = %crate::text::Params(&name.params), switch, "play");
        let requester = self.requester(app);
        let selection = match Selection::from_params(&name.params) {
            Ok(selection) => {
                let selection = selection.unless(self.ctx.config.quirks.track_selection_ignored);
                // A player that cannot take multitrack messages gets one track of each kind.
                let multitrack = self.enhanced.as_ref().is_some_and(|c| c.has(caps_ex::MULTITRACK));
                match multitrack || self.ctx.config.quirks.ertmp_ignored {
                    true => selection,
                    false => selection.single(),
                }
            }
            Err(error) => {
                return self.refuse_play(stream_id, &name.name, switch, code::PLAY_FAILED, &format!("{error}."));
            }
        };
        if let Err(refusal) = admission::play(&self.ctx, &key, &name, &requester).await {
            return self.refuse_play(stream_id, &name.name, switch, code::PLAY_FAILED, &format!("{refusal}."));
        }
        let Some(mut subscription) = self.ctx.hub.subscribe(&key, &name.name, wait, Tracks::All) else {
            let reason = format!("{} is not published.", name.name);
            return self.refuse_play(stream_id, &name.name, switch, code::PLAY_STREAM_NOT_FOUND, &reason);
        };
        subscription.count_as_viewer();
        subscription.select(selection);
        self.ctx.metrics.plays_total.inc();
        match switch {
            true => self.session.play_transition(stream_id, &name.name),
            false => self.session.play_started(stream_id),
        }
        let quirks = &self.ctx.config.quirks;
        let source = Source {
            ctx: self.ctx.clone(),
            app: key.clone(),
            stream: name.name.clone(),
            selection,
        };
        let steering = Arc::new(Steering::default());
        let plainness = Plainness {
            caps: self.enhanced.clone(),
            ertmp_ignored: quirks.ertmp_ignored,
            opus_as_is: self
                .enhanced
                .as_ref()
                .is_some_and(|c| c.takes(TagKind::Audio, FourCc::OPUS)),
        };
        let mut player = Player {
            stream_id,
            feed: Feed {
                here: Some(subscription),
                back: None,
                steering: steering.clone(),
                wire: self.wire.clone(),
                stream_id,
                chunk_size: self.session.chunk_size(),
                plainness: plainness.clone(),
                metrics: self.ctx.metrics.clone(),
                // Frames held back to be written together are the connection's.
                enabled: self.ctx.config.rtmp.player_write_interval.is_zero(),
                plain_run: 0,
            },
            caps: self.enhanced.clone(),
            transcode_withheld: transcode_for_legacy && !quirks.ertmp_ignored,
            sound: SoundForRtmp {
                source: source.clone(),
                target: opus_target,
                // A player that announced Opus (Enhanced RTMP) gets it as it is.
                opus_as_is: plainness.opus_as_is,
                transcoded: None,
                not_before: None,
            },
            pictures: PicturesForRtmp {
                source,
                transcoded: None,
                keyframe_sent: false,
            },
            once: quirks.players_dropped_on_unpublish,
            ended: false,
        };
        let mut sent_through = None;
        while let Some(frame) = player.next_cached() {
            if player.replaces(&frame) {
                continue; // the player gets a transcoder's output instead
            }
            if frame.kind != MediaKind::Data {
                sent_through = sent_through.max(Some(frame.timestamp));
            }
            self.send_frame(stream_id, &frame);
        }
        player.sound.not_before = sent_through.filter(|_| !self.ctx.config.quirks.rtmp_audio_behind_video);
        if switch {
            // The new stream's cached pictures, from its keyframe, went out.
            self.session.play_transition_complete(stream_id);
        }
        let (abort, registration) = AbortHandle::new_pair();
        self.player_events
            .push(Abortable::new(player.events().boxed(), registration));
        if let Some(old) = self.players.insert(stream_id, Play { abort, steering }) {
            old.end();
        }
    }

    /// A play refused: the stream becomes idle again; a switch refused:
    /// the stream played goes on.
    fn refuse_play(&mut self, stream_id: u32, name: &str, switch: bool, code: &str, reason: &str) {
        match switch {
            true => self.session.play_transition_failed(stream_id, name, reason),
            false => self.session.play_refused(stream_id, code, reason),
        }
    }

    fn send_frame(&mut self, stream_id: u32, frame: &Frame) {
        let form = match self.ctx.config.quirks.ertmp_ignored {
            true => Form::AsIs,
            false => enhanced::form(frame, self.enhanced.as_ref()),
        };
        let payload = match form {
            Form::AsIs => &frame.payload,
            Form::MainTrack(alone) | Form::Legacy(alone) => alone,
            Form::Withheld(fourcc) => {
                if self.withheld.insert((stream_id, fourcc)) {
                    let what = if frame.kind == MediaKind::Audio {
                        "sound"
                    } else {
                        "pictures"
                    };
                    let description = format!(
                        "The stream's {what} are in {fourcc}, which this player did not announce in connect \
                         (fourCcList, or audioFourCcInfoMap and videoFourCcInfoMap); they are not sent."
                    );
                    tracing::info!(stream_id, %fourcc, "enhanced track withheld from an RTMP player");
                    self.session.track_withheld(stream_id, &description);
                }
                return;
            }
        };
        let start = match (frame.config, frame.keyframe) {
            (true, _) => Start::Config,
            (false, true) => Start::Keyframe,
            (false, false) => Start::No,
        };
        if self
            .session
            .send_media(stream_id, frame.kind, frame.timestamp, payload, start)
        {
            self.ctx.metrics.frames_out.inc();
        }
    }

    fn player_event(&mut self, event: PlayerEvent) {
        match event {
            PlayerEvent::Frame { stream_id, frame } => self.send_frame(stream_id, &frame),
            PlayerEvent::Publication { stream_id, live: true } => self.session.publish_notify(stream_id),
            PlayerEvent::Publication { stream_id, live: false } => self.session.unpublish_notify(stream_id),
            PlayerEvent::Dry { stream_id } => self.session.stream_dry(stream_id),
            PlayerEvent::Steered => {}
        }
    }
}

/// Completes when the server starts draining after the connection began
/// (never if it does not).
async fn drained(mut draining: tokio::sync::watch::Receiver<bool>) {
    loop {
        if draining.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
        if *draining.borrow_and_update() {
            return;
        }
    }
}

/// The stream a play's transcoders take their input from.
#[derive(Clone)]
struct Source {
    ctx: Arc<Context>,
    app: String,
    stream: String,
    /// The tracks of a multitrack stream the player takes.
    selection: Selection,
}

impl Source {
    /// Its sound in `target`, from the stream's shared transcoder.
    fn sound(&self, target: Target) -> Transcoded {
        self.ctx
            .transcoders
            .subscribe(&self.app, &self.stream, self.selection, target)
    }

    /// Its pictures in H.264 of the source's size, from the stream's shared transcoder.
    fn pictures(&self) -> Transcoded {
        self.ctx
            .transcoders
            .subscribe_video(&self.app, &self.stream, self.selection, SOURCE_SIZE)
    }
}

/// Sound an RTMP player does not take as it is, replaced by the output of
/// the stream's shared transcoder, started on the first such frame: Opus
/// (from a WebRTC publisher), which Flash Player and most RTMP clients do
/// not know, becomes the app's `opus_to_rtmp` codec unless the player
/// announced Opus (Enhanced RTMP); with the app's `transcode_for_legacy`,
/// an enhanced codec the player did not announce (FLAC, AC-3, E-AC-3)
/// becomes AAC.
///
/// A transcoder started for this player begins with the stream's cached
/// backlog, whose sound is older than the cached video this player was
/// already sent; that sound is skipped, so the player's media stays in
/// timestamp order (players such as ffmpeg probe the first seconds and find
/// no audio track otherwise).
struct SoundForRtmp {
    source: Source,
    target: Target,
    /// The player announced Opus (Enhanced RTMP): Opus is not replaced.
    opus_as_is: bool,
    transcoded: Option<Transcoded>,
    /// Sound older than this timestamp (ms) is not sent.
    not_before: Option<u32>,
}

impl SoundForRtmp {
    /// Whether `frame` (sound) is replaced; `withheld`: the codec, when
    /// the player does not take it and transcoding for legacy players is on.
    fn replaces(&mut self, frame: &Frame, withheld: Option<FourCc>) -> bool {
        let target = match (frame.audio_codec(), withheld) {
            (Some(AudioCodec::Opus), _) if !self.opus_as_is => self.target,
            (_, Some(FourCc::FLAC | FourCc::AC3 | FourCc::EAC3)) => Target::Aac,
            _ => return false,
        };
        if self.transcoded.is_none() {
            tracing::info!(?target, "sound transcoded for this RTMP player");
            self.transcoded = Some(self.source.sound(target));
        }
        true
    }

    async fn next(&mut self) -> Frame {
        loop {
            let frame = transcoded_frame(&mut self.transcoded).await;
            let older = self
                .not_before
                .is_some_and(|t| media::rtmp::timestamp_before(frame.timestamp, t));
            if frame.config || !older {
                // Caught up: from here on the sound is live.
                if !frame.config {
                    self.not_before = None;
                }
                return frame;
            }
        }
    }
}

/// With the app's `transcode_for_legacy`: pictures in an enhanced codec an
/// RTMP player did not announce (HEVC, AV1, VP9, VP8), replaced by the
/// stream's shared transcoder's H.264 at the source's size, which every
/// RTMP player since Flash Player 9 decodes.
struct PicturesForRtmp {
    source: Source,
    transcoded: Option<Transcoded>,
    /// A keyframe was passed on since the transcoder was subscribed to or
    /// lost frames: pictures before one would not decode.
    keyframe_sent: bool,
}

/// H.264 of the source's size, at the bitrate that size gets.
const SOURCE_SIZE: VideoSettings = VideoSettings {
    max_width: None,
    max_height: None,
    bitrate: None,
};

impl PicturesForRtmp {
    /// Whether a picture is replaced; `withheld`: its codec, when the
    /// player does not take it and transcoding for legacy players is on.
    /// A codec the transcoder cannot read stays withheld (the player is
    /// told); pictures the player `takes` as they are (a publisher that
    /// came back with H.264) stop the transcoder, whose output would
    /// double them.
    fn replaces(&mut self, withheld: Option<FourCc>, takes: bool) -> bool {
        match withheld {
            Some(FourCc::HEVC | FourCc::AV1 | FourCc::VP9 | FourCc::VP8) => {
                if self.transcoded.is_none() {
                    tracing::info!("pictures transcoded to H.264 for this RTMP player");
                    self.transcoded = Some(self.source.pictures());
                    self.keyframe_sent = false;
                }
                true
            }
            Some(_) => false,
            None => {
                if takes {
                    self.transcoded = None;
                }
                false
            }
        }
    }

    /// The next transcoded picture the player can decode: the sequence
    /// headers, and pictures from a keyframe on (one is asked for after
    /// lost frames).
    async fn next(&mut self) -> Frame {
        loop {
            let frame = transcoded_frame(&mut self.transcoded).await;
            if let Some(transcoded) = self.transcoded.as_mut().filter(|t| t.lost) {
                transcoded.lost = false;
                transcoded.request_keyframe();
                self.keyframe_sent = false;
            }
            self.keyframe_sent |= frame.keyframe && !frame.config;
            if frame.config || self.keyframe_sent {
                return frame;
            }
        }
    }
}

/// The next frame from a play's transcoder: never, while it has none, and
/// none from then on once its transcoder ends.
async fn transcoded_frame(transcoded: &mut Option<Transcoded>) -> Frame {
    loop {
        let Some(running) = transcoded else {
            return std::future::pending().await;
        };
        match running.next().await {
            Some(frame) => return frame,
            None => *transcoded = None,
        }
    }
}

/// One play of a connection: its subscription's frames and publication
/// changes, with Opus replaced for a player that does not take it. The
/// subscription says what was live when the player was told Play.Start,
/// and reports every change from there.
struct Player {
    stream_id: u32,
    feed: Feed,
    /// What the player's connect announced (Enhanced RTMP); `None`: a legacy player.
    caps: Option<Capabilities>,
    /// The app's `transcode_for_legacy`: codecs the player does not take are transcoded.
    transcode_withheld: bool,
    sound: SoundForRtmp,
    pictures: PicturesForRtmp,
    /// The quirk `players_dropped_on_unpublish`: the play ends at the first unpublish.
    once: bool,
    ended: bool,
}

impl Player {
    /// The play's events, until the stream's ring is gone (or, with the
    /// quirk, the first unpublish).
    fn events(self) -> impl futures_util::Stream<Item = PlayerEvent> + Send + 'static {
        futures_util::stream::unfold(self, |mut player| async move {
            let event = player.next().await?;
            Some((event, player))
        })
    }

    /// Whether `frame` is replaced by a transcoder's output for this player.
    fn replaces(&mut self, frame: &Frame) -> bool {
        let form = enhanced::form(frame, self.caps.as_ref());
        let withheld = match form {
            Form::Withheld(fourcc) if self.transcode_withheld => Some(fourcc),
            _ => None,
        };
        // A command frame (no codec) says nothing of the codec the player takes.
        let command = frame.enhanced.as_ref().is_some_and(|e| e.fourcc == FourCc([0; 4]));
        let takes = !matches!(form, Form::Withheld(_)) && !command;
        match frame.kind {
            MediaKind::Audio => self.sound.replaces(frame, withheld),
            MediaKind::Video => self.pictures.replaces(withheld, takes),
            MediaKind::Data => false,
        }
    }

    /// The next of the cached frames a late joiner starts with.
    fn next_cached(&mut self) -> Option<Frame> {
        self.feed.here.as_mut()?.next_cached()
    }

    async fn next(&mut self) -> Option<PlayerEvent> {
        if self.ended {
            return None;
        }
        let stream_id = self.stream_id;
        loop {
            // Transcoded frames are the connection's to write.
            let plain = self.sound.transcoded.is_none() && self.pictures.transcoded.is_none();
            return Some(tokio::select! {
                fed = self.feed.next(plain) => match fed? {
                    Fed::Steered => PlayerEvent::Steered,
                    Fed::Delivery(delivery) => match delivery {
                    Delivery::Publication(live) => {
                        if !live && self.once {
                            // The quirk: this player is told, then forgotten.
                            self.ended = true;
                        }
                        // A new publisher's timestamps start anew.
                        self.sound.not_before = None;
                        PlayerEvent::Publication { stream_id, live }
                    }
                    Delivery::Dry => PlayerEvent::Dry { stream_id },
                    Delivery::Frame(frame) if self.replaces(&frame) => continue,
                    Delivery::Frame(frame) => PlayerEvent::Frame { stream_id, frame },
                    },
                },
                frame = self.sound.next() => PlayerEvent::Frame { stream_id, frame },
                frame = self.pictures.next() => PlayerEvent::Frame { stream_id, frame },
            });
        }
    }
}

/// Plain frames a play's connection writes in a row before the play goes
/// to its stream's fan-out: a play whose frames alternate between kinds
/// the fan-out writes and kinds it does not stays with its connection.
const PLAIN_RUN: u32 = 4;

/// Where a play's deliveries come from: its subscription, read by the
/// connection's task, or its stream's fan-out, which writes them itself
/// and gives the subscription back (see [`super::fanout`]).
struct Feed {
    /// The subscription, while the connection's task reads it.
    here: Option<Subscription>,
    /// While the fan-out has it: where it comes back.
    back: Option<oneshot::Receiver<Back>>,
    steering: Arc<Steering>,
    wire: Arc<Wire>,
    stream_id: u32,
    chunk_size: u32,
    plainness: Plainness,
    metrics: Arc<crate::metrics::Metrics>,
    /// Whether the play may go to the fan-out at all.
    enabled: bool,
    /// Frames in a row the fan-out could have written.
    plain_run: u32,
}

/// What a [`Feed`] gives.
enum Fed {
    Delivery(Delivery),
    /// Gone to the fan-out, or back from it with nothing to deliver.
    Steered,
}

impl Feed {
    /// The next delivery; meanwhile, with `plain` (no transcoder), the
    /// play goes to the fan-out when its connection is ready for it.
    /// `None` once the stream is gone.
    async fn next(&mut self, plain: bool) -> Option<Fed> {
        if let Some(back) = &mut self.back {
            let Back { subscription, refused } = back.await.ok()?;
            self.back = None;
            self.here = Some(subscription);
            self.plain_run = 0;
            return Some(refused.map_or(Fed::Steered, Fed::Delivery));
        }
        let wants = plain && self.enabled && self.plain_run >= PLAIN_RUN;
        let got = {
            let (steering, wire) = (&self.steering, &self.wire);
            let next = self.here.as_mut()?.next();
            tokio::pin!(next);
            std::future::poll_fn(|cx| {
                // Checked at each poll: the connection is ready between its turns.
                if wants && steering.ready(wire) {
                    return std::task::Poll::Ready(None);
                }
                std::future::Future::poll(next.as_mut(), cx).map(Some)
            })
            .await
        };
        let Some(delivery) = got else {
            self.hand_over();
            return Some(Fed::Steered);
        };
        let delivery = delivery?;
        self.plain_run = match &delivery {
            Delivery::Frame(frame) if self.plainness.takes(frame) => self.plain_run.saturating_add(1),
            _ => 0,
        };
        Some(Fed::Delivery(delivery))
    }

    fn hand_over(&mut self) {
        let Some(subscription) = self.here.take() else { return };
        let (back, returned) = oneshot::channel();
        let sink = RtmpSink {
            wire: self.wire.clone(),
            stream_id: self.stream_id,
            chunk_size: self.chunk_size,
            plainness: self.plainness.clone(),
            back,
            metrics: self.metrics.clone(),
        };
        self.back = Some(returned);
        self.metrics.rtmp_fanout_handed.inc();
        subscription.drive(&self.steering.seat, Box::new(sink));
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        if self.back.is_some() {
            // The subscription ends with the play.
            self.steering.seat.recall();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn future_size<A, Fut>(_: impl FnOnce(A) -> Fut) -> usize {
        std::mem::size_of::<Fut>()
    }

    #[test]
    fn a_connections_task_keeps_neither_its_handshake_nor_its_hooks() {
        // With its 4 KiB buffer and its state inline, the handshake's
        // future took 5840 bytes, and every connection's task 6424 for as
        // long as it ran; with connect, publish and play inline, 4720.
        let handshake = future_size(|socket: &mut TcpStream| handshake(socket));
        assert!(handshake < 1024, "the handshake's future is {handshake} bytes");
        let serve = future_size(|(socket, peer, ctx, id)| serve(socket, peer, ctx, id));
        assert!(serve < 4096, "a connection's future is {serve} bytes");
    }
}
