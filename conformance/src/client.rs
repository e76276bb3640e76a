//! An RTMP client that behaves like the clients servers meet: Flash Player
//! (digest handshake, `objectEncoding` 3, every command after connect as
//! type 17, the Flash connect object plus the application's own arguments) or
//! an encoder such as OBS or ffmpeg (AMF0, the FMLE command set).
//!
//! It records everything the server says: every NetStatus in order (the
//! transcript checks compare), every command answer, every media message.
//! Like Flash Player, it raises `NetConnection.Connect.Closed` itself when the
//! server closes the socket, and a Flash Player profile raises
//! `NetStream.Video.DimensionChange` when the H.264 picture size it receives
//! is first known or changes.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use media::amf::Value;
use media::netstatus::{code, Level, NetStatus};
use media::rtmp::{csid, ChunkLimits, Command, Data, Endpoint, Message, ObjectEncoding, RawMessage, UserControl};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::handshake::{client_handshake_in_pieces, ClientHandshake, DigestScheme, HandshakeReport};

/// How the emulated client behaves.
#[derive(Debug, Clone)]
pub struct ClientProfile {
    /// Simple or Flash digest handshake.
    pub handshake: ClientHandshake,
    /// Bytes per write of C0C1 and C2 (`usize::MAX`: each at once).
    pub handshake_piece: usize,
    /// The `objectEncoding` in connect; with AMF3, commands after connect go as type 17.
    pub object_encoding: ObjectEncoding,
    /// `flashVer` in connect.
    pub flash_ver: String,
    /// Whether connect carries the browser-plugin fields (swfUrl, pageUrl, fpad, capabilities, codecs).
    pub flash_fields: bool,
    /// Whether publish is preceded by releaseStream and FCPublish and followed by FCUnpublish (FMLE, OBS, ffmpeg).
    pub fmle_commands: bool,
    /// Chunk size announced after connect (Flash keeps 128; encoders raise it).
    pub chunk_size: u32,
    /// Raises the NetStatus events Flash Player raises itself as a player:
    /// `NetStream.Video.DimensionChange` when the size in the SPS it
    /// receives is first known or changes.
    pub player_events: bool,
    /// The Enhanced RTMP codecs and capabilities connect announces
    /// (`fourCcList`, the FourCC info maps, `capsEx`); `None`: a legacy client.
    pub enhanced: Option<media::rtmp::enhanced::Capabilities>,
    /// The buffer a player states with a User Control SetBufferLength for
    /// the stream right after `play`, in ms, as Flash Player does (0 ms in
    /// the captured Flash Player 9 session,
    /// `fixtures/captures/wireshark_rtmp_sample_fp9.cap`); `None`: not sent.
    pub buffer_ms: Option<u32>,
}

impl ClientProfile {
    /// Flash Player 11 on Windows: digest handshake, AMF3, type-17 commands, chunk size 128.
    pub fn flash_player() -> Self {
        ClientProfile {
            handshake: ClientHandshake::FlashDigest(DigestScheme::Scheme1),
            handshake_piece: usize::MAX,
            object_encoding: ObjectEncoding::Amf3,
            flash_ver: "WIN 11,2,202,235".into(),
            flash_fields: true,
            fmle_commands: false,
            chunk_size: 128,
            player_events: true,
            enhanced: None,
            buffer_ms: Some(0),
        }
    }

    /// An encoder like OBS: simple handshake, AMF0, FMLE commands, chunk size 4096.
    pub fn encoder() -> Self {
        ClientProfile {
            handshake: ClientHandshake::Simple,
            handshake_piece: usize::MAX,
            object_encoding: ObjectEncoding::Amf0,
            flash_ver: "FMLE/3.0 (compatible; FMSc/1.0)".into(),
            flash_fields: false,
            fmle_commands: true,
            chunk_size: 4096,
            player_events: false,
            enhanced: None,
            buffer_ms: None,
        }
    }
}

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The TCP connection failed.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    /// The handshake failed.
    #[error("handshake: {0}")]
    Handshake(#[from] crate::handshake::HandshakeError),
    /// The server sent bytes that are not valid RTMP.
    #[error("server sent malformed RTMP: {0}")]
    Protocol(String),
    /// The server closed the connection.
    #[error("server closed the connection")]
    Closed,
    /// Nothing matching arrived in time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        after: Duration,
    },
    /// The server answered with something unexpected.
    #[error("unexpected answer: {0}")]
    Unexpected(String),
}

/// A NetStatus event as the client saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusEvent {
    /// The message stream it came on (0 for the NetConnection).
    pub stream_id: u32,
    /// The command that carried it (`_result`, `_error`, `onStatus`), or
    /// `local` for events the client raises itself (Connect.Closed,
    /// Video.DimensionChange).
    pub via: String,
    /// The info object.
    pub status: NetStatus,
    /// Whether `level` was present and one of status/warning/error.
    pub level_valid: bool,
}

/// Something the server sent, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A command (answers, onStatus, server calls).
    Command {
        /// Message stream id.
        stream_id: u32,
        /// The command.
        command: Command,
    },
    /// A data message (`|RtmpSampleAccess`, `onMetaData`, `onStatus` data).
    Data {
        /// Message stream id.
        stream_id: u32,
        /// The values.
        data: Data,
    },
    /// Audio or video.
    Media {
        /// Message stream id.
        stream_id: u32,
        /// 8 audio, 9 video.
        type_id: u8,
        /// Milliseconds.
        timestamp: u32,
        /// FLV tag body.
        payload: Bytes,
    },
    /// A user control event.
    UserControl(UserControl),
    /// Any other protocol control message.
    Control(Message),
}

impl Incoming {
    /// A short description for wire logs.
    pub fn describe(&self) -> String {
        match self {
            Incoming::Command { stream_id, command } => {
                let info = command
                    .args
                    .iter()
                    .find_map(|a| a.get("code").and_then(Value::as_str).map(str::to_string));
                format!(
                    "[{stream_id}] {}({}){}",
                    command.name,
                    command.transaction_id,
                    info.map(|c| format!(" {c}")).unwrap_or_default()
                )
            }
            Incoming::Data { stream_id, data } => {
                let values: Vec<String> = data.values.iter().map(Value::to_string).collect();
                format!("[{stream_id}] data {}", values.join(" "))
            }
            Incoming::Media {
                stream_id,
                type_id,
                timestamp,
                payload,
            } => {
                format!(
                    "[{stream_id}] {} ts={timestamp} {} bytes",
                    if *type_id == 8 { "audio" } else { "video" },
                    payload.len()
                )
            }
            Incoming::UserControl(event) => crate::replay::log::render_control(&Message::UserControl(event.clone())),
            Incoming::Control(message) => crate::replay::log::render_control(message),
        }
    }
}

/// An emulated RTMP client connection. See the module docs.
pub struct RtmpClient {
    socket: TcpStream,
    profile: ClientProfile,
    handshake: HandshakeReport,
    /// The chunk stream both ways, acknowledgements and ping answers.
    endpoint: Endpoint,
    encoding_after_connect: ObjectEncoding,
    next_transaction: f64,
    inbox: VecDeque<Incoming>,
    statuses: Vec<StatusEvent>,
    /// Room events the server called `onRoomEvent` with, as JSON.
    room_events: Vec<serde_json::Value>,
    /// Per stream: the NAL length size of its H.264 and the picture size last seen.
    video: HashMap<u32, (usize, Option<(u32, u32)>)>,
    log: Vec<String>,
    /// When each line of `log` happened.
    log_times: Vec<tokio::time::Instant>,
    closed: bool,
    connect_answer: Option<Command>,
    /// How media goes out: chunk streams and a timestamp offset.
    layout: MediaLayout,
    /// Chunks of an interleaved video message still to send.
    held: VecDeque<Bytes>,
    /// Video messages sent.
    videos_sent: u64,
}

/// The chunk streams audio and video go out on, and what is added to their
/// timestamps (modulo 2^32: a publisher that started long ago).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaLayout {
    /// Audio's chunk stream id (default 6).
    pub audio_csid: u32,
    /// Video's chunk stream id (default 7).
    pub video_csid: u32,
    /// Added to every media timestamp, wrapping at 2^32.
    pub timestamp_offset: u32,
    /// From this media timestamp on, timestamps start again from 0 (before
    /// the offset is added): an encoder restarted without reconnecting.
    pub restart_at: Option<u32>,
    /// From the first media timestamp of this pair on, the timestamps sent
    /// are the second ms ahead (before the offset is added): a source that
    /// leapt to a new epoch.
    pub leap: Option<(u32, u32)>,
    /// A video message's chunks after its first go out one after each of
    /// the audio messages that follow it (the rest before the next video
    /// message), as a multiplexer that keeps sound flowing during a large
    /// picture sends them.
    pub interleave: bool,
    /// Every this many video messages, one larger than a chunk is first
    /// started and abandoned after its first chunk with an Abort Message,
    /// then sent again whole.
    pub abort_every: Option<u32>,
}

impl Default for MediaLayout {
    fn default() -> Self {
        MediaLayout {
            audio_csid: csid::AUDIO,
            video_csid: csid::VIDEO,
            timestamp_offset: 0,
            restart_at: None,
            leap: None,
            interleave: false,
            abort_every: None,
        }
    }
}

/// Default time to wait for an answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

impl RtmpClient {
    /// Opens a TCP connection and performs the profile's handshake.
    pub async fn open(addr: SocketAddr, profile: ClientProfile) -> Result<RtmpClient, ClientError> {
        let socket = timeout(DEFAULT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| ClientError::Timeout {
                what: format!("TCP connect to {addr}"),
                after: DEFAULT_TIMEOUT,
            })??;
        RtmpClient::over(socket, profile).await
    }

    /// Performs the profile's handshake on a connected socket.
    pub async fn over(mut socket: TcpStream, profile: ClientProfile) -> Result<RtmpClient, ClientError> {
        socket.set_nodelay(true)?;
        let handshake = client_handshake_in_pieces(&mut socket, profile.handshake, profile.handshake_piece);
        let (handshake, leftover) = timeout(DEFAULT_TIMEOUT, handshake)
            .await
            .map_err(|_| ClientError::Timeout {
                what: "handshake".into(),
                after: DEFAULT_TIMEOUT,
            })??;
        let mut endpoint = Endpoint::new(ChunkLimits::default());
        endpoint.receive(&leftover);
        Ok(RtmpClient {
            socket,
            profile,
            handshake,
            endpoint,
            encoding_after_connect: ObjectEncoding::Amf0,
            next_transaction: 1.0,
            inbox: VecDeque::new(),
            statuses: Vec::new(),
            room_events: Vec::new(),
            video: HashMap::new(),
            log: Vec::new(),
            log_times: Vec::new(),
            closed: false,
            connect_answer: None,
            layout: MediaLayout::default(),
            held: VecDeque::new(),
            videos_sent: 0,
        })
    }

    /// What the handshake showed about the server.
    pub fn handshake_report(&self) -> &HandshakeReport {
        &self.handshake
    }

    /// The server's whole answer to connect (`_result` or `_error`), once received.
    pub fn connect_answer(&self) -> Option<&Command> {
        self.connect_answer.as_ref()
    }

    /// The room events (`onRoomEvent` calls) received so far, as JSON.
    pub fn room_events(&self) -> &[serde_json::Value] {
        &self.room_events
    }

    /// Every NetStatus received so far, in order.
    pub fn statuses(&self) -> &[StatusEvent] {
        &self.statuses
    }

    /// The NetStatus codes received so far on one message stream (0: the NetConnection).
    pub fn codes(&self, stream_id: u32) -> Vec<String> {
        self.statuses
            .iter()
            .filter(|s| s.stream_id == stream_id)
            .map(|s| s.status.code.clone())
            .collect()
    }

    /// A line per message sent and received, for failure reports.
    pub fn wire_log(&self) -> &[String] {
        &self.log
    }

    /// When each line of [`wire_log`](Self::wire_log) happened.
    pub fn wire_log_times(&self) -> &[tokio::time::Instant] {
        &self.log_times
    }

    fn note(&mut self, line: String) {
        self.log.push(line);
        self.log_times.push(tokio::time::Instant::now());
    }

    /// Sends `connect` for `tc_url` (e.g. `rtmp://127.0.0.1:1935/live?c1=v1`)
    /// with the application's extra arguments, and waits for the answer.
    pub async fn connect(&mut self, tc_url: &str, extra_args: Vec<Value>) -> Result<NetStatus, ClientError> {
        let app = tc_url
            .split_once("://")
            .map_or(tc_url, |(_, rest)| rest)
            .split_once('/')
            .map_or("", |(_, path)| path)
            .to_string();
        let mut object = vec![
            ("app", Value::from(app)),
            ("flashVer", Value::from(self.profile.flash_ver.as_str())),
            ("tcUrl", Value::from(tc_url)),
        ];
        if self.profile.flash_fields {
            object.extend([
                ("swfUrl", Value::from("http://127.0.0.1/client.swf")),
                ("fpad", Value::Boolean(false)),
                ("capabilities", Value::Number(239.0)),
                ("audioCodecs", Value::Number(3575.0)),
                ("videoCodecs", Value::Number(252.0)),
                ("videoFunction", Value::Number(1.0)),
                ("pageUrl", Value::from("http://127.0.0.1/client.html")),
            ]);
        } else {
            object.push(("type", Value::from("nonprivate")));
        }
        object.push(("objectEncoding", Value::Number(self.profile.object_encoding.number())));
        let mut command_object = Value::object(object);
        if let (Some(caps), Value::Object { properties, .. }) = (&self.profile.enhanced, &mut command_object) {
            properties.extend(caps.to_properties());
        }
        let tid = self.take_transaction();
        let command = Command {
            encoding: ObjectEncoding::Amf0,
            name: "connect".into(),
            transaction_id: tid,
            command_object,
            args: extra_args,
        };
        self.send_message(csid::COMMAND, 0, &Message::Command(command)).await?;
        let answer = self.wait_answer(tid, DEFAULT_TIMEOUT).await?;
        let status =
            answer.args.first().and_then(NetStatus::from_value).ok_or_else(|| {
                ClientError::Unexpected(format!("connect answer {} without an info object", answer.name))
            })?;
        self.connect_answer = Some(answer.clone());
        if answer.name == "_result" {
            self.encoding_after_connect = self.profile.object_encoding;
            if self.profile.chunk_size != self.endpoint.chunk_size() {
                let size = self.profile.chunk_size;
                self.send_message(csid::CONTROL, 0, &Message::SetChunkSize(size))
                    .await?;
            }
        }
        Ok(status)
    }

    fn take_transaction(&mut self) -> f64 {
        self.next_transaction += 1.0;
        self.next_transaction - 1.0
    }

    /// Calls a NetConnection method and waits for its `_result` or `_error`.
    pub async fn call(&mut self, name: &str, args: Vec<Value>) -> Result<Command, ClientError> {
        let tid = self.take_transaction();
        self.send_command(0, name, tid, args).await?;
        self.wait_answer(tid, DEFAULT_TIMEOUT).await
    }

    /// Sends a command without waiting (transaction id 0 unless given).
    pub async fn send_command(
        &mut self,
        stream_id: u32,
        name: &str,
        tid: f64,
        args: Vec<Value>,
    ) -> Result<(), ClientError> {
        let command = Command {
            encoding: self.encoding_after_connect,
            name: name.into(),
            transaction_id: tid,
            command_object: Value::Null,
            args,
        };
        let chunk_stream = if stream_id == 0 {
            csid::COMMAND
        } else {
            csid::STREAM_COMMAND
        };
        self.send_message(chunk_stream, stream_id, &Message::Command(command))
            .await
    }

    /// `createStream`, returning the new stream id.
    pub async fn create_stream(&mut self) -> Result<u32, ClientError> {
        let answer = self.call("createStream", vec![]).await?;
        match (answer.name.as_str(), answer.args.first().and_then(Value::as_f64)) {
            ("_result", Some(id)) if id >= 1.0 && id.fract() == 0.0 => Ok(id as u32),
            _ => Err(ClientError::Unexpected(format!(
                "createStream answered {} {:?}",
                answer.name, answer.args
            ))),
        }
    }

    /// Publishes `name` on `stream_id` (with releaseStream/FCPublish for
    /// encoder profiles) and waits for the first onStatus on that stream.
    pub async fn publish(&mut self, stream_id: u32, name: &str) -> Result<NetStatus, ClientError> {
        self.publish_as(stream_id, name, "live").await
    }

    /// [`RtmpClient::publish`] with the publishing type `kind` (`live`,
    /// `record`, `append`).
    pub async fn publish_as(&mut self, stream_id: u32, name: &str, kind: &str) -> Result<NetStatus, ClientError> {
        if self.profile.fmle_commands {
            let tid = self.take_transaction();
            self.send_command(0, "releaseStream", tid, vec![Value::from(name)])
                .await?;
            let tid = self.take_transaction();
            self.send_command(0, "FCPublish", tid, vec![Value::from(name)]).await?;
        }
        let before = self.statuses.len();
        self.send_command(stream_id, "publish", 0.0, vec![Value::from(name), Value::from(kind)])
            .await?;
        self.wait_status_after(before, stream_id, DEFAULT_TIMEOUT).await
    }

    /// Sends `play` and waits for the first onStatus on that stream.
    pub async fn play(&mut self, stream_id: u32, name: &str) -> Result<NetStatus, ClientError> {
        self.play_with(stream_id, name, vec![Value::Number(-2.0)]).await
    }

    /// Sends `play` with `args` after the name (start, duration, reset) and
    /// waits for the first onStatus on that stream.
    pub async fn play_with(&mut self, stream_id: u32, name: &str, args: Vec<Value>) -> Result<NetStatus, ClientError> {
        let before = self.statuses.len();
        let mut all = vec![Value::from(name)];
        all.extend(args);
        self.send_command(stream_id, "play", 0.0, all).await?;
        if let Some(buffer_ms) = self.profile.buffer_ms {
            let event = UserControl::SetBufferLength { stream_id, buffer_ms };
            self.send_message(csid::CONTROL, 0, &Message::UserControl(event))
                .await?;
        }
        self.wait_status_after(before, stream_id, DEFAULT_TIMEOUT).await
    }

    /// Stops publishing like the profile's client does: FCUnpublish (encoders)
    /// then closeStream (Flash's `NetStream.close()`), or deleteStream.
    pub async fn unpublish(&mut self, stream_id: u32, name: &str) -> Result<(), ClientError> {
        if self.profile.fmle_commands {
            let tid = self.take_transaction();
            self.send_command(0, "FCUnpublish", tid, vec![Value::from(name)])
                .await?;
            let tid = self.take_transaction();
            self.send_command(0, "deleteStream", tid, vec![Value::Number(f64::from(stream_id))])
                .await
        } else {
            self.send_command(stream_id, "closeStream", 0.0, vec![]).await
        }
    }

    /// Sends media on the chunk streams and with the timestamp offset of
    /// `layout` from now on.
    pub fn set_media_layout(&mut self, layout: MediaLayout) {
        self.layout = layout;
    }

    /// Writes chunk headers in `style` from the next message on.
    pub fn set_chunk_style(&mut self, style: media::rtmp::ChunkStyle) {
        self.endpoint.set_chunk_style(style);
    }

    /// Sends Set Chunk Size and chunks by `size` from then on.
    pub async fn set_chunk_size(&mut self, size: u32) -> Result<(), ClientError> {
        self.send_message(csid::CONTROL, 0, &Message::SetChunkSize(size)).await
    }

    /// Sends one audio (8), video (9) or data (18) message on a stream.
    pub async fn send_media(
        &mut self,
        stream_id: u32,
        type_id: u8,
        timestamp: u32,
        payload: Bytes,
    ) -> Result<(), ClientError> {
        let chunk_stream = match type_id {
            8 => self.layout.audio_csid,
            9 => self.layout.video_csid,
            _ => csid::STREAM_COMMAND,
        };
        let timestamp = match (self.layout.restart_at, self.layout.leap) {
            (Some(at), _) if timestamp >= at => timestamp - at,
            (_, Some((at, by))) if timestamp >= at => timestamp.wrapping_add(by),
            _ => timestamp,
        };
        let message = RawMessage {
            csid: chunk_stream,
            timestamp: timestamp.wrapping_add(self.layout.timestamp_offset),
            type_id,
            stream_id,
            payload,
        };
        if type_id != 8 {
            self.release_held().await?;
        }
        if type_id == 9 {
            self.videos_sent += 1;
            let chunk_size = self.endpoint.chunk_size() as usize;
            if self
                .layout
                .abort_every
                .is_some_and(|n| n > 0 && self.videos_sent.is_multiple_of(u64::from(n)))
                && message.payload.len() > chunk_size
            {
                self.abandon(&message).await?;
            }
            if self.layout.interleave {
                self.flush().await?;
                let mut chunks = self.endpoint.chunks(&message).into_iter();
                if let Some(first) = chunks.next() {
                    self.socket.write_all(&first).await?;
                }
                self.held.extend(chunks);
                return Ok(());
            }
        }
        self.endpoint.send_raw(&message);
        self.flush().await?;
        if let Some(chunk) = self.held.pop_front() {
            self.socket.write_all(&chunk).await?;
        }
        Ok(())
    }

    /// Writes what is left of an interleaved video message (done before
    /// the next video or command, and when the media ends).
    pub async fn release_held(&mut self) -> Result<(), ClientError> {
        while let Some(chunk) = self.held.pop_front() {
            self.socket.write_all(&chunk).await?;
        }
        Ok(())
    }

    /// Sends the first chunk of `message`, then an Abort Message for its
    /// chunk stream; the next message there starts with a full header.
    async fn abandon(&mut self, message: &RawMessage) -> Result<(), ClientError> {
        self.flush().await?;
        if let Some(first) = self.endpoint.chunks(message).into_iter().next() {
            self.socket.write_all(&first).await?;
        }
        self.send_message(csid::CONTROL, 0, &Message::Abort(message.csid))
            .await?;
        self.endpoint.forget_chunk_stream(message.csid);
        Ok(())
    }

    /// Publishes FLV tags on a stream: at their timestamps' pace when
    /// `realtime`, else as fast as the socket takes them. Script tags go as
    /// `@setDataFrame` data like encoders send them.
    pub async fn send_tags(
        &mut self,
        stream_id: u32,
        tags: &[media::flv::Tag],
        realtime: bool,
    ) -> Result<(), ClientError> {
        let start = tokio::time::Instant::now();
        let first = tags.first().map_or(0, |t| t.timestamp);
        for tag in tags {
            if realtime {
                let due = start + Duration::from_millis(u64::from(tag.timestamp.saturating_sub(first)));
                tokio::time::sleep_until(due).await;
            }
            self.send_tag(stream_id, tag).await?;
        }
        self.release_held().await
    }

    /// Sends one FLV tag on a stream; a script tag goes as `@setDataFrame`
    /// data like encoders send it.
    pub async fn send_tag(&mut self, stream_id: u32, tag: &media::flv::Tag) -> Result<(), ClientError> {
        let payload = if tag.kind == media::flv::TagKind::Script {
            let mut body = Vec::with_capacity(tag.data.len() + 16);
            media::amf::encode_amf0(&Value::from("@setDataFrame"), &mut body);
            body.extend_from_slice(&tag.data);
            Bytes::from(body)
        } else {
            tag.data.clone()
        };
        self.send_media(stream_id, tag.kind.type_id(), tag.timestamp, payload)
            .await
    }

    /// Sends `@setDataFrame onMetaData {…}` as encoders do.
    pub async fn send_metadata(&mut self, stream_id: u32, metadata: Value) -> Result<(), ClientError> {
        let data = Message::Data(Data {
            encoding: ObjectEncoding::Amf0,
            values: vec![Value::from("@setDataFrame"), Value::from("onMetaData"), metadata],
        });
        self.send_message(csid::STREAM_COMMAND, stream_id, &data).await
    }

    /// Sends a data message (AMF0) of `values` on a stream.
    pub async fn send_data(&mut self, stream_id: u32, values: Vec<Value>) -> Result<(), ClientError> {
        let data = Message::Data(Data {
            encoding: ObjectEncoding::Amf0,
            values,
        });
        self.send_message(csid::STREAM_COMMAND, stream_id, &data).await
    }

    /// Writes raw bytes to the socket (robustness cases).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.socket.write_all(bytes).await?;
        Ok(())
    }

    /// Encodes and sends one message.
    pub async fn send_message(
        &mut self,
        chunk_stream: u32,
        stream_id: u32,
        message: &Message,
    ) -> Result<(), ClientError> {
        self.note(format!("> [{stream_id}] {}", describe_outgoing(message)));
        if !matches!(message, Message::Abort(_)) {
            // A Set Chunk Size, say, must not come between a message's chunks.
            self.release_held().await?;
        }
        self.endpoint.send(chunk_stream, stream_id, 0, message);
        self.flush().await
    }

    async fn flush(&mut self) -> Result<(), ClientError> {
        let out = self.endpoint.output();
        if !out.is_empty() {
            self.socket.write_all_buf(out).await?;
        }
        Ok(())
    }

    /// The next thing the server sent, waiting up to `within`.
    pub async fn next(&mut self, within: Duration) -> Result<Incoming, ClientError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(incoming) = self.inbox.pop_front() {
                return Ok(incoming);
            }
            if self.closed {
                return Err(ClientError::Closed);
            }
            match tokio::time::timeout_at(deadline, self.read_more()).await {
                Ok(result) => result?,
                Err(_) => {
                    return Err(ClientError::Timeout {
                        what: "a message from the server".into(),
                        after: within,
                    })
                }
            }
        }
    }

    /// Raises `NetStream.Video.DimensionChange` (as Flash Player does) when
    /// an H.264 SPS, in a sequence header or in band, gives a new size.
    fn watch_dimensions(&mut self, stream_id: u32, payload: &[u8]) {
        let &[header, packet_type, _, _, _, ref body @ ..] = payload else {
            return;
        };
        if header & 0x0F != 7 {
            return;
        }
        let (length_size, size) = self.video.entry(stream_id).or_insert((4, None));
        let sps: Option<media::h264::SpsInfo> = match packet_type {
            0 => media::h264::AvcConfig::parse(body).ok().and_then(|config| {
                *length_size = config.length_size;
                config.sps.first().and_then(|sps| media::h264::SpsInfo::parse(sps))
            }),
            1 => media::h264::length_prefixed_nal_units(body, *length_size).find_map(media::h264::SpsInfo::parse),
            _ => None,
        };
        let Some(sps) = sps else {
            return;
        };
        let new = (sps.width, sps.height);
        if *size == Some(new) {
            return;
        }
        *size = Some(new);
        let description = format!("{}x{}", sps.width, sps.height);
        self.note(format!(
            "< [{stream_id}] (local) {} {description}",
            code::VIDEO_DIMENSION_CHANGE
        ));
        self.statuses.push(StatusEvent {
            stream_id,
            via: "local".into(),
            status: NetStatus::new(Level::Status, code::VIDEO_DIMENSION_CHANGE, &description),
            level_valid: true,
        });
    }

    /// Reads and decodes more bytes into the inbox; answers pings and sends acknowledgements.
    async fn read_more(&mut self) -> Result<(), ClientError> {
        let mut buf = [0u8; 16 * 1024];
        let n = self.socket.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            self.closed = true;
            self.note("< connection closed".into());
            self.statuses.push(StatusEvent {
                stream_id: 0,
                via: "local".into(),
                status: NetStatus::new(Level::Status, code::CONNECT_CLOSED, "The server closed the connection."),
                level_valid: true,
            });
            return Ok(());
        }
        self.endpoint.receive(&buf[..n]);
        loop {
            let next = self
                .endpoint
                .next_message()
                .map_err(|e| ClientError::Protocol(e.to_string()))?;
            // Ping answers and acknowledgements the endpoint sent, for the log.
            for answer in self.endpoint.answered().to_vec() {
                self.note(format!("> [0] {}", describe_outgoing(&answer)));
            }
            let Some(raw) = next else { break };
            let stream_id = raw.stream_id;
            let (type_id, timestamp) = (raw.type_id, raw.timestamp);
            let message =
                Message::decode(raw.type_id, raw.payload).map_err(|e| ClientError::Protocol(e.to_string()))?;
            let incoming = match message {
                Message::Command(command) => {
                    if command.name == "onRoomEvent" {
                        if let Some(event) = command.args.first() {
                            self.room_events.push(event.to_json());
                        }
                    }
                    for arg in &command.args {
                        if let Some(status) = NetStatus::from_value(arg) {
                            self.statuses.push(StatusEvent {
                                stream_id,
                                via: command.name.clone(),
                                status,
                                level_valid: NetStatus::level_from(arg).is_some(),
                            });
                        }
                    }
                    Incoming::Command { stream_id, command }
                }
                Message::Data(data) => Incoming::Data { stream_id, data },
                Message::Video(payload) if self.profile.player_events => {
                    self.watch_dimensions(stream_id, &payload);
                    Incoming::Media {
                        stream_id,
                        type_id,
                        timestamp,
                        payload,
                    }
                }
                Message::Audio(payload) | Message::Video(payload) => Incoming::Media {
                    stream_id,
                    type_id,
                    timestamp,
                    payload,
                },
                Message::UserControl(event) => Incoming::UserControl(event),
                other => Incoming::Control(other),
            };
            if !matches!(incoming, Incoming::Media { .. }) {
                self.note(format!("< {}", incoming.describe()));
            }
            self.inbox.push_back(incoming);
        }
        // Ping answers and acknowledgements.
        self.flush().await
    }

    /// Waits for `_result`/`_error` with transaction id `tid`, keeping other messages queued.
    pub async fn wait_answer(&mut self, tid: f64, within: Duration) -> Result<Command, ClientError> {
        let mut skipped = VecDeque::new();
        let result = loop {
            match self.next(within).await {
                Ok(Incoming::Command { command, .. })
                    if command.transaction_id == tid && (command.name == "_result" || command.name == "_error") =>
                {
                    break Ok(command)
                }
                Ok(other) => skipped.push_back(other),
                Err(ClientError::Timeout { after, .. }) => {
                    break Err(ClientError::Timeout {
                        what: format!("the answer to transaction {tid}"),
                        after,
                    })
                }
                Err(e) => break Err(e),
            }
        };
        // Put back what was not the answer, in order, ahead of anything newer.
        while let Some(item) = skipped.pop_back() {
            self.inbox.push_front(item);
        }
        result
    }

    /// Waits until a NetStatus with `code` arrives on `stream_id` (or was already received).
    pub async fn wait_status(
        &mut self,
        stream_id: u32,
        code: &str,
        within: Duration,
    ) -> Result<NetStatus, ClientError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(found) = self
                .statuses
                .iter()
                .find(|s| s.stream_id == stream_id && s.status.code == code)
            {
                return Ok(found.status.clone());
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Ok(_) => {}
                Err(ClientError::Timeout { .. }) => {
                    return Err(ClientError::Timeout {
                        what: format!("{code} on stream {stream_id} (received: {:?})", self.codes(stream_id)),
                        after: within,
                    })
                }
                Err(ClientError::Closed) if code == code::CONNECT_CLOSED => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits for the first NetStatus on `stream_id` received after the first `before` statuses.
    async fn wait_status_after(
        &mut self,
        before: usize,
        stream_id: u32,
        within: Duration,
    ) -> Result<NetStatus, ClientError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(found) = self.statuses[before..].iter().find(|s| s.stream_id == stream_id) {
                return Ok(found.status.clone());
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Ok(_) => {}
                Err(ClientError::Timeout { .. }) => {
                    return Err(ClientError::Timeout {
                        what: format!("an onStatus on stream {stream_id}"),
                        after: within,
                    })
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Collects media messages until `count` arrived or `within` passed.
    pub async fn collect_media(&mut self, count: usize, within: Duration) -> Vec<Incoming> {
        let deadline = tokio::time::Instant::now() + within;
        let mut media = Vec::new();
        let mut others = VecDeque::new();
        while media.len() < count {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Ok(item @ Incoming::Media { .. }) => media.push(item),
                Ok(other) => others.push_back(other),
                Err(_) => break,
            }
        }
        self.inbox.extend(others);
        media
    }

    /// Waits until the server closes the connection; true if it did within `within`.
    pub async fn wait_closed(&mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while !self.closed {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Err(ClientError::Closed) => return true,
                Err(ClientError::Timeout { .. }) => return false,
                Err(_) => return true,
                Ok(_) => {}
            }
        }
        true
    }
}

fn describe_outgoing(message: &Message) -> String {
    match message {
        Message::Command(c) => format!(
            "{}({}) {}",
            c.name,
            c.transaction_id,
            c.args.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ")
        ),
        Message::Data(d) => format!("data {}", d.values.first().map(|v| v.to_string()).unwrap_or_default()),
        Message::Audio(payload) => format!("audio {} bytes", payload.len()),
        Message::Video(payload) => format!("video {} bytes", payload.len()),
        other => crate::replay::log::render_control(other),
    }
}
