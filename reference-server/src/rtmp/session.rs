//! The server side of one RTMP connection after the handshake, as a state machine.
//!
//! Bytes go in through [`Session::handle_input`], which returns what the
//! application must decide ([`Event`]s: connect, publish, play, media, ...).
//! The application answers through methods such as [`Session::accept_connect`]
//! or [`Session::publish_started`], and every byte the session wants sent
//! accumulates in [`Session::output`]. No sockets, no clocks: the connection
//! task in `connection.rs` moves the bytes and the time.

use std::collections::HashMap;

use bytes::Bytes;
use media::amf::Value;
use media::netstatus::{code, Level, NetStatus};
use media::rtmp::enhanced::Capabilities;
use media::rtmp::message::split_aggregate;
use media::rtmp::url::{self, NameWithParams};
use media::rtmp::{
    csid, ChunkError, ChunkLimits, Command, Data, Endpoint, Message, MessageError, MessageRef, ObjectEncoding,
    RawMessage, UserControl,
};

/// Settings the session needs from the server configuration.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Chunk size the server switches to after connect.
    pub chunk_size: u32,
    /// Window Acknowledgement Size the server announces.
    pub window_ack_size: u32,
    /// Limits on what the peer may make us buffer.
    pub limits: ChunkLimits,
    /// Most NetStreams one connection may create.
    pub max_streams: u32,
    /// How the peer's continuation chunks are read (both ways, unless a
    /// quirk says otherwise).
    pub continuations: media::rtmp::Continuations,
    /// Faults the peer's chunks are read with (quirks; none by default).
    pub reader_faults: media::rtmp::ReaderFaults,
    /// Whether `_result` states the server's Enhanced RTMP support (unless
    /// the quirk `ertmp_ignored` is on).
    pub states_enhanced: bool,
}

impl SessionConfig {
    /// The settings of `config`: its RTMP limits, and the quirks that
    /// change how chunks are read.
    pub fn from_config(config: &crate::config::Config) -> SessionConfig {
        let rtmp = &config.rtmp;
        SessionConfig {
            chunk_size: rtmp.chunk_size,
            window_ack_size: rtmp.window_ack_size,
            limits: ChunkLimits {
                max_message_size: rtmp.max_message_size,
                max_chunk_size: rtmp.max_chunk_size,
                max_pending_bytes: rtmp.max_message_size as usize * 2,
                ..ChunkLimits::default()
            },
            max_streams: rtmp.max_streams_per_connection,
            continuations: match (
                config.quirks.extended_timestamps_always_repeated,
                config.quirks.extended_timestamps_never_repeated,
            ) {
                (true, _) => media::rtmp::Continuations::AlwaysRepeated,
                (_, true) => media::rtmp::Continuations::NeverRepeated,
                _ => media::rtmp::Continuations::Recognised,
            },
            reader_faults: media::rtmp::ReaderFaults {
                aborts_ignored: config.quirks.chunk_aborts_ignored,
                interleaving_refused: config.quirks.chunk_interleaving_refused,
            },
            states_enhanced: !config.quirks.ertmp_ignored,
        }
    }
}

/// What the peer asked for in `connect`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectRequest {
    /// The application with its connection parameters (`live?c1=v1` → `live`, `{c1: v1}`).
    pub app: NameWithParams,
    /// `tcUrl` as sent.
    pub tc_url: Option<String>,
    /// `flashVer` as sent (`WIN 11,2,202,235`, `FMLE/3.0 (compatible; FMSc/1.0)`, ...).
    pub flash_ver: Option<String>,
    /// The encoding the client asked for (objectEncoding 3 → AMF3).
    pub object_encoding: ObjectEncoding,
    /// The whole connect object.
    pub connect_object: Value,
    /// The arguments after the connect object (Flash apps pass e.g. `{login, appKey}`).
    pub extra_args: Vec<Value>,
    /// The Enhanced RTMP codecs and capabilities it announced; `None` for a
    /// legacy client.
    pub enhanced: Option<Capabilities>,
}

/// Something the application must act on.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The client wants to connect; answer with `accept_connect` or `reject_connect`.
    Connect(ConnectRequest),
    /// The client wants to publish on a stream; answer with `publish_started` or `publish_refused`.
    Publish {
        /// The message stream id.
        stream_id: u32,
        /// The stream name with its parameters.
        name: NameWithParams,
        /// "live", "record" or "append".
        publish_type: String,
    },
    /// The client wants to play; answer with `play_started` or `play_refused`.
    Play {
        /// The message stream id.
        stream_id: u32,
        /// The stream name with its parameters.
        name: NameWithParams,
    },
    /// The client wants the stream it plays switched to another (play2
    /// with the transition `switch` or `swap`); answer with
    /// `play_transition` or `play_transition_failed`.
    Play2 {
        /// The message stream id.
        stream_id: u32,
        /// The name of the stream to play instead, with its parameters.
        name: NameWithParams,
    },
    /// Audio, video or data from a publishing stream.
    Media {
        /// The message stream id.
        stream_id: u32,
        /// What it is.
        kind: MediaKind,
        /// Milliseconds.
        timestamp: u32,
        /// An FLV tag body (for data: an AMF0 `onMetaData`-style body).
        payload: Bytes,
    },
    /// The publisher stopped (FCUnpublish, closeStream or deleteStream). Unpublish.Success was sent.
    PublishStopped {
        /// The message stream id.
        stream_id: u32,
    },
    /// A player stopped (closeStream or deleteStream). Play.Stop was sent for closeStream.
    PlayStopped {
        /// The message stream id.
        stream_id: u32,
    },
    /// `NetConnection.call("sendData", responder, data)`: an application
    /// request (rooms, docs/rooms.md). Answer with `call_result` or
    /// `call_error` when `transaction_id` is not 0.
    SendData {
        /// The call's transaction id (0: no answer wanted).
        transaction_id: f64,
        /// The call's first argument.
        data: Value,
    },
}

/// The kind of a media message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// Type 8.
    Audio,
    /// Type 9.
    Video,
    /// Type 18 (metadata and other data).
    Data,
}

/// Whether a video message is somewhere a decoder can start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// A keyframe: pictures can start here.
    Keyframe,
    /// A decoder configuration (sequence header): no picture, though
    /// flagged as a keyframe; a decoder needs the latest.
    Config,
    /// Anything else: an inter picture, sound, data.
    No,
}

/// Why the connection must close.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The chunk stream is malformed.
    #[error("bad chunk stream: {0}")]
    Chunk(#[from] ChunkError),
    /// A message is malformed.
    #[error("bad message on stream {stream_id}: {source}")]
    Message {
        /// Its message stream id.
        stream_id: u32,
        /// What was wrong.
        source: MessageError,
    },
    /// The client sent something before connect that needs a connection.
    #[error("{0} before connect")]
    NotConnected(String),
    /// The client sent a second connect.
    #[error("second connect on a connected session")]
    SecondConnect,
}

#[derive(Debug, Clone, PartialEq)]
enum StreamRole {
    Idle,
    Publishing { name: String },
    Playing(Player),
}

#[derive(Debug, Clone, PartialEq)]
struct Player {
    name: String,
    receive_audio: bool,
    receive_video: bool,
    paused: bool,
    /// Video is held back until the next keyframe (after receiveVideo(true) or unpause).
    video_needs_keyframe: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitingConnect,
    Connecting,
    Connected,
}

/// One RTMP connection's protocol state. See the module docs.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    client_id: String,
    state: State,
    /// The chunk stream both ways, acknowledgements and ping answers.
    endpoint: Endpoint,
    encoding: ObjectEncoding,
    connect_transaction: f64,
    streams: HashMap<u32, StreamRole>,
    next_stream_id: u32,
}

impl Session {
    /// A session for a connection whose handshake just completed.
    pub fn new(config: SessionConfig, client_id: String) -> Self {
        Session {
            endpoint: {
                let mut endpoint = Endpoint::new(config.limits);
                endpoint.set_continuations(config.continuations);
                endpoint.set_reader_faults(config.reader_faults);
                endpoint
            },
            config,
            client_id,
            state: State::AwaitingConnect,
            encoding: ObjectEncoding::Amf0,
            connect_transaction: 1.0,
            streams: HashMap::new(),
            next_stream_id: 1,
        }
    }

    /// The id the server gives this client (sent as `clientid`).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The bytes to send to the peer; the caller drains them.
    pub fn output(&mut self) -> &mut media::rtmp::Outgoing {
        self.endpoint.output()
    }

    /// The output was all written (see [`Endpoint::output_written`]).
    pub fn output_written(&mut self) {
        self.endpoint.output_written();
    }

    /// Total bytes received, as acknowledged to the peer.
    pub fn bytes_received(&self) -> u64 {
        self.endpoint.bytes_received()
    }

    /// Feeds bytes from the peer and collects the events they cause into `events`.
    ///
    /// Decoding pauses after a connect request until the application answers
    /// it (clients may send their next commands without waiting for the
    /// answer); call [`resume`](Self::resume) after answering.
    pub fn handle_input(&mut self, bytes: &[u8], events: &mut Vec<Event>) -> Result<(), SessionError> {
        self.endpoint.receive(bytes);
        self.resume(events)
    }

    /// Decodes messages already received, unless a connect request awaits its answer.
    pub fn resume(&mut self, events: &mut Vec<Event>) -> Result<(), SessionError> {
        while self.state != State::Connecting {
            let Some(raw) = self.endpoint.next_message()? else {
                break;
            };
            self.handle_message(raw, events)?;
        }
        Ok(())
    }

    fn handle_message(&mut self, raw: RawMessage, events: &mut Vec<Event>) -> Result<(), SessionError> {
        let stream_id = raw.stream_id;
        let message =
            Message::decode(raw.type_id, raw.payload).map_err(|source| SessionError::Message { stream_id, source })?;
        match message {
            Message::Command(command) => self.handle_command(stream_id, command, events)?,
            Message::Audio(payload) => self.media(stream_id, MediaKind::Audio, raw.timestamp, payload, events),
            Message::Video(payload) => self.media(stream_id, MediaKind::Video, raw.timestamp, payload, events),
            Message::Data(data) => self.handle_data(stream_id, raw.timestamp, data, events),
            Message::Aggregate(payload) => {
                let parts = split_aggregate(raw.timestamp, &payload)
                    .map_err(|source| SessionError::Message { stream_id, source })?;
                for part in parts {
                    let kind = match part.type_id {
                        8 => MediaKind::Audio,
                        9 => MediaKind::Video,
                        _ => continue,
                    };
                    self.media(stream_id, kind, part.timestamp, part.payload, events);
                }
            }
            // Set Chunk Size and Abort were applied by the decoder; the rest needs nothing.
            _ => {}
        }
        Ok(())
    }

    fn media(&mut self, stream_id: u32, kind: MediaKind, timestamp: u32, payload: Bytes, events: &mut Vec<Event>) {
        if matches!(self.streams.get(&stream_id), Some(StreamRole::Publishing { .. })) {
            events.push(Event::Media {
                stream_id,
                kind,
                timestamp,
                payload,
            });
        } else {
            tracing::debug!(stream_id, ?kind, "media on a stream that is not publishing: dropped");
        }
    }

    fn handle_data(&mut self, stream_id: u32, timestamp: u32, data: Data, events: &mut Vec<Event>) {
        let mut values = data.values;
        // `@setDataFrame onMetaData {…}` is stored and sent to players as `onMetaData {…}`.
        if values.first().and_then(Value::as_str) == Some("@setDataFrame") {
            values.remove(0);
        }
        if values.first().and_then(Value::as_str) == Some("@clearDataFrame") {
            return;
        }
        let mut body = Vec::with_capacity(256);
        for value in &values {
            media::amf::encode_amf0(value, &mut body);
        }
        self.media(stream_id, MediaKind::Data, timestamp, Bytes::from(body), events);
    }

    fn handle_command(
        &mut self,
        stream_id: u32,
        command: Command,
        events: &mut Vec<Event>,
    ) -> Result<(), SessionError> {
        let tid = command.transaction_id;
        if command.name == "connect" {
            if self.state != State::AwaitingConnect {
                return Err(SessionError::SecondConnect);
            }
            self.state = State::Connecting;
            self.connect_transaction = tid;
            events.push(Event::Connect(connect_request(&command)));
            return Ok(());
        }
        if self.state != State::Connected {
            return Err(SessionError::NotConnected(format!("command {:?}", command.name)));
        }
        let name_arg = || command.args.first().and_then(Value::as_str).unwrap_or("").to_string();
        match command.name.as_str() {
            "createStream" => {
                if self.streams.len() as u32 >= self.config.max_streams {
                    let status = NetStatus::new(
                        Level::Error,
                        code::CALL_FAILED,
                        format!("too many streams (limit {})", self.config.max_streams),
                    );
                    self.reply(0, "_error", tid, Value::Null, vec![status.to_value()]);
                } else {
                    let id = self.next_stream_id;
                    self.next_stream_id += 1;
                    self.streams.insert(id, StreamRole::Idle);
                    self.reply(0, "_result", tid, Value::Null, vec![Value::Number(f64::from(id))]);
                }
            }
            // A live stream has no length: 0 seconds, a number as ffmpeg reads
            // it (it warns "Unexpected reply on getStreamLength()" otherwise).
            "getStreamLength" => {
                if tid != 0.0 {
                    self.reply(0, "_result", tid, Value::Null, vec![Value::Number(0.0)]);
                }
            }
            "releaseStream" | "FCPublish" | "_checkbw" => {
                if tid != 0.0 {
                    self.reply(0, "_result", tid, Value::Null, vec![Value::Undefined]);
                }
            }
            "FCUnpublish" => {
                let name = url::split_params(&name_arg()).name;
                let publishing = self.streams.iter().find_map(|(id, role)| match role {
                    StreamRole::Publishing { name: n } if *n == name => Some(*id),
                    _ => None,
                });
                if let Some(id) = publishing {
                    self.stop_publishing(id, events);
                }
                if tid != 0.0 {
                    self.reply(0, "_result", tid, Value::Null, vec![Value::Undefined]);
                }
            }
            "publish" => {
                let Some(StreamRole::Idle) = self.streams.get(&stream_id) else {
                    return self.stream_command_error(stream_id, code::PUBLISH_BAD_NAME, "publish", &name_arg());
                };
                let raw = name_arg();
                let name = url::split_params(&raw);
                if name.name.is_empty() {
                    let status = NetStatus::new(Level::Error, code::PUBLISH_BAD_NAME, "publish needs a stream name.")
                        .details(raw.as_str())
                        .clientid(self.client_id.as_str());
                    self.on_status(stream_id, status);
                    return Ok(());
                }
                let publish_type = command
                    .args
                    .get(1)
                    .and_then(Value::as_str)
                    .unwrap_or("live")
                    .to_string();
                self.streams.insert(
                    stream_id,
                    StreamRole::Publishing {
                        name: name.name.clone(),
                    },
                );
                events.push(Event::Publish {
                    stream_id,
                    name,
                    publish_type,
                });
            }
            "play" => {
                if !matches!(self.streams.get(&stream_id), Some(StreamRole::Idle)) {
                    return self.stream_command_error(stream_id, code::PLAY_FAILED, "play", &name_arg());
                }
                let raw = name_arg();
                let name = url::split_params(&raw);
                if name.name.is_empty() {
                    let status = NetStatus::new(Level::Error, code::PLAY_STREAM_NOT_FOUND, "play needs a stream name.")
                        .details(raw.as_str())
                        .clientid(self.client_id.as_str());
                    self.on_status(stream_id, status);
                    return Ok(());
                }
                self.streams.insert(
                    stream_id,
                    StreamRole::Playing(Player {
                        name: name.name.clone(),
                        receive_audio: true,
                        receive_video: true,
                        paused: false,
                        video_needs_keyframe: false,
                    }),
                );
                events.push(Event::Play { stream_id, name });
            }
            "play2" => {
                // One argument: a NetStreamPlayOptions object.
                let options = command.args.first();
                let field = |key: &str| options.and_then(|o| o.get(key)).and_then(Value::as_str);
                let raw = field("streamName").unwrap_or_default().to_string();
                if !matches!(self.streams.get(&stream_id), Some(StreamRole::Playing(_))) {
                    return self.stream_command_error(stream_id, code::PLAY_FAILED, "play2", &raw);
                }
                let transition = field("transition").unwrap_or("switch");
                let name = url::split_params(&raw);
                let refusal = match transition {
                    _ if name.name.is_empty() => Some("play2 needs a streamName.".to_string()),
                    "switch" | "swap" => None,
                    other => Some(format!(
                        "play2's transition {other:?} is not for live streams: only switch and swap are."
                    )),
                };
                match refusal {
                    Some(reason) => self.play_transition_failed(stream_id, &raw, &reason),
                    None => events.push(Event::Play2 { stream_id, name }),
                }
            }
            "closeStream" => self.close_stream(stream_id, true, events),
            "deleteStream" => {
                let id = command
                    .args
                    .first()
                    .and_then(Value::as_f64)
                    .map_or(stream_id, |n| n as u32);
                self.close_stream(id, false, events);
                self.streams.remove(&id);
            }
            "receiveAudio" | "receiveVideo" => {
                let on = command.args.first().and_then(Value::as_bool).unwrap_or(true);
                if let Some(StreamRole::Playing(player)) = self.streams.get_mut(&stream_id) {
                    if command.name == "receiveAudio" {
                        player.receive_audio = on;
                    } else {
                        player.video_needs_keyframe |= on && !player.receive_video;
                        player.receive_video = on;
                    }
                }
            }
            "pause" => {
                let pause = command.args.first().and_then(Value::as_bool).unwrap_or(true);
                if let Some(StreamRole::Playing(player)) = self.streams.get_mut(&stream_id) {
                    let name = player.name.clone();
                    if player.paused != pause {
                        player.paused = pause;
                        player.video_needs_keyframe |= !pause;
                    }
                    let (code, text) = if pause {
                        (code::PAUSE_NOTIFY, format!("Pausing {name}."))
                    } else {
                        (code::UNPAUSE_NOTIFY, format!("Unpausing {name}."))
                    };
                    let status = NetStatus::new(Level::Status, code, text)
                        .details(name)
                        .clientid(self.client_id.as_str());
                    self.on_status(stream_id, status);
                }
            }
            // A live stream has no position to seek to: the player gets an
            // answer instead of waiting (RTMP 1.0, section 7.2.2.7).
            "seek" => {
                if let Some(StreamRole::Playing(player)) = self.streams.get(&stream_id) {
                    let name = player.name.clone();
                    let status = NetStatus::new(
                        Level::Error,
                        code::SEEK_FAILED,
                        format!("Seeking is not possible in the live stream {name}."),
                    )
                    .details(name)
                    .clientid(self.client_id.as_str());
                    self.on_status(stream_id, status);
                }
            }
            "sendData" if stream_id == 0 => events.push(Event::SendData {
                transaction_id: tid,
                data: command.args.first().cloned().unwrap_or(Value::Null),
            }),
            other => {
                tracing::debug!(command = other, "unknown command");
                if tid != 0.0 {
                    let status =
                        NetStatus::new(Level::Error, code::CALL_FAILED, format!("Method not found ({other})."));
                    self.reply(0, "_error", tid, Value::Null, vec![status.to_value()]);
                }
            }
        }
        Ok(())
    }

    /// publish or play on a stream that was not created or is already busy.
    fn stream_command_error(&mut self, stream_id: u32, code: &str, what: &str, name: &str) -> Result<(), SessionError> {
        let reason = if self.streams.contains_key(&stream_id) {
            format!("{what} on stream {stream_id}, which is already publishing or playing.")
        } else {
            format!("{what} on stream {stream_id}, which was not created with createStream.")
        };
        let status = NetStatus::new(Level::Error, code, reason)
            .details(url::split_params(name).name)
            .clientid(self.client_id.as_str());
        self.on_status(stream_id, status);
        Ok(())
    }

    fn close_stream(&mut self, stream_id: u32, send_play_stop: bool, events: &mut Vec<Event>) {
        match self.streams.get(&stream_id).cloned() {
            Some(StreamRole::Publishing { .. }) => self.stop_publishing(stream_id, events),
            Some(StreamRole::Playing(player)) => {
                self.streams.insert(stream_id, StreamRole::Idle);
                if send_play_stop {
                    let status = NetStatus::new(
                        Level::Status,
                        code::PLAY_STOP,
                        format!("Stopped playing {}.", player.name),
                    )
                    .details(player.name.as_str())
                    .clientid(self.client_id.as_str());
                    self.on_status(stream_id, status);
                }
                events.push(Event::PlayStopped { stream_id });
            }
            _ => {}
        }
    }

    fn stop_publishing(&mut self, stream_id: u32, events: &mut Vec<Event>) {
        if let Some(StreamRole::Publishing { name }) = self.streams.insert(stream_id, StreamRole::Idle) {
            let status = NetStatus::new(
                Level::Status,
                code::UNPUBLISH_SUCCESS,
                format!("{name} is now unpublished."),
            )
            .details(name.as_str())
            .clientid(self.client_id.as_str());
            self.on_status(stream_id, status);
            events.push(Event::PublishStopped { stream_id });
        }
    }

    // ---- The application's answers ----

    /// Accepts the pending connect: window size, bandwidth, StreamBegin 0, chunk
    /// size, then `_result` with Connect.Success in the client's objectEncoding.
    pub fn accept_connect(&mut self, object_encoding: ObjectEncoding) {
        self.state = State::Connected;
        self.encoding = object_encoding;
        let window = self.config.window_ack_size;
        self.send(csid::CONTROL, 0, 0, &Message::WindowAckSize(window));
        self.send(
            csid::CONTROL,
            0,
            0,
            &Message::SetPeerBandwidth {
                size: window,
                limit_type: 2,
            },
        );
        self.send(csid::CONTROL, 0, 0, &Message::UserControl(UserControl::StreamBegin(0)));
        self.endpoint.set_chunk_size(self.config.chunk_size);
        let mut properties = Value::object([
            ("fmsVer", Value::from("FMS/3,5,7,7009")),
            ("capabilities", Value::Number(31.0)),
            ("mode", Value::Number(1.0)),
        ]);
        if let (true, Value::Object { properties, .. }) = (self.config.states_enhanced, &mut properties) {
            properties.extend(super::enhanced::announced().to_properties());
        }
        let mut info = NetStatus::new(Level::Status, code::CONNECT_SUCCESS, "Connection succeeded.")
            .clientid(self.client_id.as_str())
            .to_value();
        if let Value::Object { properties, .. } = &mut info {
            properties.push(("objectEncoding".into(), Value::Number(object_encoding.number())));
            properties.push((
                "data".into(),
                Value::EcmaArray(vec![("version".into(), Value::from("3,5,7,7009"))]),
            ));
        }
        // The connect answer itself goes as AMF0: the client learns the encoding from it.
        let tid = self.connect_transaction;
        self.send_command(
            csid::COMMAND,
            0,
            ObjectEncoding::Amf0,
            "_result",
            tid,
            properties,
            vec![info],
        );
    }

    /// Refuses the pending connect with `NetConnection.Connect.Rejected`; the
    /// caller closes the connection once the output is written.
    pub fn reject_connect(&mut self, description: &str) {
        let status =
            NetStatus::new(Level::Error, code::CONNECT_REJECTED, description).clientid(self.client_id.as_str());
        let tid = self.connect_transaction;
        self.send_command(
            csid::COMMAND,
            0,
            ObjectEncoding::Amf0,
            "_error",
            tid,
            Value::Null,
            vec![status.to_value()],
        );
    }

    /// The pending publish is accepted: StreamBegin and Publish.Start.
    pub fn publish_started(&mut self, stream_id: u32) {
        let Some(StreamRole::Publishing { name }) = self.streams.get(&stream_id).cloned() else {
            return;
        };
        self.send(
            csid::CONTROL,
            0,
            0,
            &Message::UserControl(UserControl::StreamBegin(stream_id)),
        );
        let status = NetStatus::new(Level::Status, code::PUBLISH_START, format!("{name} is now published."))
            .details(name.as_str())
            .clientid(self.client_id.as_str());
        self.on_status(stream_id, status);
    }

    /// The pending publish is refused with the given code (BadName for a name in
    /// use or refused by the backend), or a live one ends so (BadName: another
    /// publisher took the name over).
    pub fn publish_refused(&mut self, stream_id: u32, code: &str, description: &str) {
        let Some(StreamRole::Publishing { name }) = self.streams.insert(stream_id, StreamRole::Idle) else {
            return;
        };
        // A refused name may be any length: its start is enough.
        let status = NetStatus::new(Level::Error, code, description)
            .details(crate::text::prefix(&name, crate::text::SHOWN))
            .clientid(self.client_id.as_str());
        self.on_status(stream_id, status);
    }

    /// The pending play is accepted: StreamBegin, Play.Reset, Play.Start,
    /// `|RtmpSampleAccess` and `onStatus(NetStream.Data.Start)`.
    pub fn play_started(&mut self, stream_id: u32) {
        let Some(name) = self.player_name(stream_id) else {
            return;
        };
        self.send(
            csid::CONTROL,
            0,
            0,
            &Message::UserControl(UserControl::StreamBegin(stream_id)),
        );
        let reset = NetStatus::new(
            Level::Status,
            code::PLAY_RESET,
            format!("Playing and resetting {name}."),
        );
        self.on_status(
            stream_id,
            reset.details(name.as_str()).clientid(self.client_id.as_str()),
        );
        let start = NetStatus::new(Level::Status, code::PLAY_START, format!("Started playing {name}."));
        self.on_status(
            stream_id,
            start.details(name.as_str()).clientid(self.client_id.as_str()),
        );
        self.send_data(
            stream_id,
            vec![
                Value::from("|RtmpSampleAccess"),
                Value::Boolean(true),
                Value::Boolean(true),
            ],
        );
        let data_start = Value::object([("code", Value::from(code::DATA_START))]);
        self.send_data(stream_id, vec![Value::from("onStatus"), data_start]);
    }

    /// The pending play2 is carried out: the stream now played is `name`
    /// (NetStream.Play.Transition, its name in `details`).
    pub fn play_transition(&mut self, stream_id: u32, name: &str) {
        let Some(StreamRole::Playing(player)) = self.streams.get_mut(&stream_id) else {
            return;
        };
        player.name = name.to_string();
        let status = NetStatus::new(Level::Status, code::PLAY_TRANSITION, format!("Switching to {name}."));
        self.on_status(stream_id, status.details(name).clientid(self.client_id.as_str()));
    }

    /// The switch of a play2 took place: the new stream's media follows
    /// (`onPlayStatus` NetStream.Play.TransitionComplete).
    pub fn play_transition_complete(&mut self, stream_id: u32) {
        let Some(name) = self.player_name(stream_id) else {
            return;
        };
        let info = NetStatus::new(
            Level::Status,
            code::PLAY_TRANSITION_COMPLETE,
            format!("Switched to {name}."),
        )
        .details(name.as_str());
        self.send_data(stream_id, vec![Value::from("onPlayStatus"), info.to_value()]);
    }

    /// The pending play2 is refused: the stream played goes on
    /// (NetStream.Play.Failed, with the name asked for in `details`).
    pub fn play_transition_failed(&mut self, stream_id: u32, name: &str, reason: &str) {
        let status = NetStatus::new(Level::Error, code::PLAY_FAILED, reason)
            .details(crate::text::prefix(name, crate::text::SHOWN))
            .clientid(self.client_id.as_str());
        self.on_status(stream_id, status);
    }

    /// The pending play is refused (StreamNotFound, or Play.Failed when the backend refused).
    pub fn play_refused(&mut self, stream_id: u32, code: &str, description: &str) {
        let Some(name) = self.player_name(stream_id) else {
            return;
        };
        self.streams.insert(stream_id, StreamRole::Idle);
        // A refused name may be any length: its start is enough.
        let status = NetStatus::new(Level::Error, code, description)
            .details(crate::text::prefix(&name, crate::text::SHOWN))
            .clientid(self.client_id.as_str());
        self.on_status(stream_id, status);
    }

    /// The stream being played lost its publisher: UnpublishNotify, then StreamEOF.
    pub fn unpublish_notify(&mut self, stream_id: u32) {
        let Some(name) = self.player_name(stream_id) else {
            return;
        };
        let status = NetStatus::new(
            Level::Status,
            code::PLAY_UNPUBLISH_NOTIFY,
            format!("{name} is now unpublished."),
        )
        .details(name.as_str())
        .clientid(self.client_id.as_str());
        self.on_status(stream_id, status);
        self.send(
            csid::CONTROL,
            0,
            0,
            &Message::UserControl(UserControl::StreamEof(stream_id)),
        );
    }

    /// The stream being played has sent nothing for a while: User Control
    /// StreamDry (RTMP 1.0, section 7.1.7). Media may come again after it.
    pub fn stream_dry(&mut self, stream_id: u32) {
        if self.player_name(stream_id).is_none() {
            return;
        }
        self.send(
            csid::CONTROL,
            0,
            0,
            &Message::UserControl(UserControl::StreamDry(stream_id)),
        );
    }

    /// The stream being played has a publisher again: StreamBegin, PublishNotify.
    pub fn publish_notify(&mut self, stream_id: u32) {
        let Some(name) = self.player_name(stream_id) else {
            return;
        };
        if let Some(StreamRole::Playing(player)) = self.streams.get_mut(&stream_id) {
            player.video_needs_keyframe = true;
        }
        self.send(
            csid::CONTROL,
            0,
            0,
            &Message::UserControl(UserControl::StreamBegin(stream_id)),
        );
        let status = NetStatus::new(
            Level::Status,
            code::PLAY_PUBLISH_NOTIFY,
            format!("{name} is now published."),
        )
        .details(name.as_str())
        .clientid(self.client_id.as_str());
        self.on_status(stream_id, status);
    }

    /// Sends one media message to a player, honouring receiveAudio/receiveVideo
    /// and pause: after those (and after a new publisher), pictures resume
    /// at a `Start::Keyframe`; a `Start::Config` (a sequence header, flagged
    /// as a keyframe but no picture) passes and opens nothing. Returns
    /// whether it was sent.
    pub fn send_media(
        &mut self,
        stream_id: u32,
        kind: MediaKind,
        timestamp: u32,
        payload: &Bytes,
        start: Start,
    ) -> bool {
        let Some(StreamRole::Playing(player)) = self.streams.get_mut(&stream_id) else {
            return false;
        };
        let send = match kind {
            _ if player.paused => false,
            MediaKind::Audio => player.receive_audio,
            MediaKind::Video if !player.receive_video => false,
            MediaKind::Video if start == Start::Config => true,
            MediaKind::Video if player.video_needs_keyframe && start != Start::Keyframe => false,
            MediaKind::Video => {
                player.video_needs_keyframe = false;
                true
            }
            MediaKind::Data => true,
        };
        if send {
            let (csid, type_id) = match kind {
                MediaKind::Audio => (csid::AUDIO, 8),
                MediaKind::Video => (csid::VIDEO, 9),
                MediaKind::Data => (csid::STREAM_COMMAND, 18),
            };
            self.endpoint.send_raw(MessageRef {
                csid,
                timestamp,
                type_id,
                stream_id,
                payload,
            });
        }
        send
    }

    /// Whether the play on `stream_id` sends every frame as it comes: not
    /// paused, both tracks on, no keyframe awaited.
    pub fn plays_plainly(&self, stream_id: u32) -> bool {
        matches!(
            self.streams.get(&stream_id),
            Some(StreamRole::Playing(player))
                if !player.paused && player.receive_audio && player.receive_video && !player.video_needs_keyframe
        )
    }

    /// The size of the chunks it sends.
    pub fn chunk_size(&self) -> u32 {
        self.endpoint.chunk_size()
    }

    /// Tells a player that a track of its stream is withheld (see
    /// `rtmp::enhanced`): NetStream.Play.NoSupportedTrackFound, level warning.
    pub fn track_withheld(&mut self, stream_id: u32, description: &str) {
        let status = NetStatus::new(Level::Warning, code::PLAY_NO_SUPPORTED_TRACK, description)
            .clientid(self.client_id.as_str());
        self.on_status(stream_id, status);
    }

    /// Asks an Enhanced RTMP client to connect again, to `tc_url` or (when
    /// `None`) its own: `onStatus` NetConnection.Connect.ReconnectRequest,
    /// level status, transaction 0, on the NetConnection.
    pub fn reconnect_request(&mut self, tc_url: Option<&str>) {
        let mut status = NetStatus::new(
            Level::Status,
            code::CONNECT_RECONNECT_REQUEST,
            "The server is going out of service; connect again.",
        );
        status.tc_url = tc_url.map(str::to_string);
        let info = status.to_value();
        self.send_command(
            csid::COMMAND,
            0,
            self.encoding,
            "onStatus",
            0.0,
            Value::Null,
            vec![info],
        );
    }

    /// Asks the client to answer with a PingResponse (keeps idle players alive).
    pub fn ping(&mut self, timestamp: u32) {
        self.send(
            csid::CONTROL,
            0,
            0,
            &Message::UserControl(UserControl::PingRequest(timestamp)),
        );
    }

    fn player_name(&self, stream_id: u32) -> Option<String> {
        match self.streams.get(&stream_id) {
            Some(StreamRole::Playing(player)) => Some(player.name.clone()),
            _ => None,
        }
    }

    // ---- Encoding helpers ----

    fn send(&mut self, csid: u32, stream_id: u32, timestamp: u32, message: &Message) {
        self.endpoint.send(csid, stream_id, timestamp, message);
    }

    #[allow(clippy::too_many_arguments)]
    fn send_command(
        &mut self,
        csid: u32,
        stream_id: u32,
        encoding: ObjectEncoding,
        name: &str,
        transaction_id: f64,
        command_object: Value,
        args: Vec<Value>,
    ) {
        let message = Message::Command(Command {
            encoding,
            name: name.to_string(),
            transaction_id,
            command_object,
            args,
        });
        self.send(csid, stream_id, 0, &message);
    }

    /// Answers an application call (`sendData`) with `_result`.
    pub fn call_result(&mut self, transaction_id: f64) {
        if transaction_id != 0.0 {
            self.reply(0, "_result", transaction_id, Value::Null, vec![Value::Null]);
        }
    }

    /// Answers an application call with `_error` (NetConnection.Call.Failed).
    pub fn call_error(&mut self, transaction_id: f64, description: &str) {
        if transaction_id != 0.0 {
            let status = NetStatus::new(Level::Error, code::CALL_FAILED, description);
            self.reply(0, "_error", transaction_id, Value::Null, vec![status.to_value()]);
        }
    }

    /// Calls `name(arg)` on the client's NetConnection (transaction 0, no answer).
    pub fn call_client(&mut self, name: &str, arg: Value) {
        self.reply(0, name, 0.0, Value::Null, vec![arg]);
    }

    fn reply(&mut self, stream_id: u32, name: &str, tid: f64, object: Value, args: Vec<Value>) {
        self.send_command(csid::COMMAND, stream_id, self.encoding, name, tid, object, args);
    }

    fn on_status(&mut self, stream_id: u32, status: NetStatus) {
        let encoding = self.encoding;
        self.send_command(
            csid::STREAM_COMMAND,
            stream_id,
            encoding,
            "onStatus",
            0.0,
            Value::Null,
            vec![status.to_value()],
        );
    }

    fn send_data(&mut self, stream_id: u32, values: Vec<Value>) {
        let message = Message::Data(Data {
            encoding: ObjectEncoding::Amf0,
            values,
        });
        self.send(csid::STREAM_COMMAND, stream_id, 0, &message);
    }
}

fn connect_request(command: &Command) -> ConnectRequest {
    let object = &command.command_object;
    let text = |k: &str| object.get(k).and_then(Value::as_str).map(str::to_string);
    let tc_url = text("tcUrl");
    let object_encoding = match object.get("objectEncoding").and_then(Value::as_f64) {
        Some(3.0) => ObjectEncoding::Amf3,
        _ => ObjectEncoding::Amf0,
    };
    ConnectRequest {
        app: url::application(text("app").as_deref(), tc_url.as_deref()),
        tc_url,
        flash_ver: text("flashVer"),
        object_encoding,
        connect_object: object.clone(),
        extra_args: command.args.clone(),
        enhanced: Capabilities::from_object(object),
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
