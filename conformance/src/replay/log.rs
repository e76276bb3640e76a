//! The message log of one captured RTMP session: both directions decoded
//! after the handshake, in one order, each message renderable as one line.
//!
//! # Decoding
//!
//! Each direction starts with its handshake, skipped by length: C0+C1+C2 and
//! S0+S1+S2 are 1 + 1536 + 1536 bytes each. The first byte must be 3 (plain
//! RTMP; 6 is RTMPE, which cannot be decoded). The captured client's C1 is
//! checked for a Flash Player digest, so a replay can send the same kind of
//! handshake. The rest goes through [`media::rtmp::ChunkDecoder`], which
//! applies Set Chunk Size and Abort of its own direction as it goes, and
//! [`media::rtmp::Message::decode`]: commands in AMF0 (type 20) and AMF3
//! (type 17, a 0x00 byte then AMF0 values with 0x11 switches to AMF3) alike.
//! A body that does not decode is logged as [`MessageKind::Undecodable`]
//! rather than ending the log; a broken chunk stream is an error
//! ([`LogError::Chunk`]). Bytes of a message the capture cut off at its end
//! are counted ([`MessageLog::client_trailing_bytes`]), not an error.
//!
//! # Order
//!
//! * **Capture order** ([`LogOrder::Capture`], from a pcap/pcapng through
//!   [`MessageLog::from_timed_flow`]): a message is placed at the packet
//!   that carried its last byte (the first captured copy of it), so the two
//!   directions interleave as they did on the wire. Messages completed by
//!   one packet keep their order.
//! * **Request/response order** ([`LogOrder::RequestResponse`], from two raw
//!   direction files or a flow without packet positions): the captured
//!   client's messages keep their order; after each client command comes
//!   the server's traffic up to and including that command's answer (see
//!   [`answers`]): its `_result`/`_error` by transaction id, or for
//!   `publish`, `play`, `play2`, `pause`, `seek` and `closeStream` the
//!   first `onStatus` on its stream (answers are searched in order, each
//!   after the previous one). Once no later client message has an answer,
//!   all the server's remaining traffic (the media of a play session, say)
//!   goes before the next client command (`deleteStream`, say): a client
//!   ends its session after what the server sent, not in the middle of it.
//!   Without such a command, or without any answer at all, the server's
//!   traffic that is left comes last. This is a reconstruction: the order
//!   of unanswered messages between two answers is not known.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use media::amf::{AmfError, Value};
use media::netstatus::NetStatus;
use media::rtmp::message::type_id;
use media::rtmp::{
    ChunkDecoder, ChunkError, ChunkLimits, Command, Data, Message, MessageError, ObjectEncoding, UserControl,
};
use serde::Serialize;

use crate::capture::{TcpFlow, TimedTcpFlow};
use crate::handshake::{verify_client_c1, ClientHandshake, HANDSHAKE_SIZE};

/// Bytes of C0+C1+C2 (and of S0+S1+S2).
pub const HANDSHAKE_BYTES: usize = 1 + 2 * HANDSHAKE_SIZE;

/// Rendered values longer than this many characters are cut.
const MAX_VALUES_CHARS: usize = 240;

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Direction {
    /// Sent by the client.
    ClientToServer,
    /// Sent by the server.
    ServerToClient,
}

impl Direction {
    /// `C→S` or `S→C`, as log lines start.
    pub fn arrow(self) -> &'static str {
        match self {
            Direction::ClientToServer => "C→S",
            Direction::ServerToClient => "S→C",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::ClientToServer => "client to server",
            Direction::ServerToClient => "server to client",
        })
    }
}

/// What a message is, decoded as far as the log needs.
#[derive(Debug, Clone, PartialEq)]
pub enum MessageKind {
    /// A command (types 20 and 17), with its name, transaction id, command
    /// object and arguments; NetStatus info objects are among the arguments
    /// (see [`LoggedMessage::statuses`]).
    Command(Command),
    /// A data message (types 18 and 15).
    Data(Data),
    /// Audio (type 8).
    Audio {
        /// Body size in bytes.
        size: usize,
        /// Codec name (`aac`, `speex`, …), `None` for an empty body.
        codec: Option<&'static str>,
        /// An AAC sequence header rather than a frame.
        sequence_header: bool,
    },
    /// Video (type 9).
    Video {
        /// Body size in bytes.
        size: usize,
        /// Codec name (`h264`, `sorenson`, …), `None` for an empty body.
        codec: Option<&'static str>,
        /// A keyframe.
        keyframe: bool,
        /// A codec configuration record rather than a picture.
        sequence_header: bool,
    },
    /// An aggregate (type 22) of this many bytes.
    Aggregate {
        /// Body size in bytes.
        size: usize,
    },
    /// Protocol control (types 1, 2, 3, 5, 6) or user control (type 4).
    Control(Message),
    /// A type this log does not interpret (shared objects, unknown types).
    Other {
        /// Body size in bytes.
        size: usize,
    },
    /// A command, data or control body that does not decode.
    Undecodable {
        /// What the decoder said.
        error: String,
    },
}

/// Where in the capture a message was completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapturePoint {
    /// Position of the packet in the capture file.
    pub packet: usize,
    /// Its capture time relative to the connection's first packet.
    pub time: Option<Duration>,
}

/// One message of the log.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedMessage {
    /// Which way it went.
    pub direction: Direction,
    /// Its RTMP timestamp in milliseconds.
    pub timestamp: u32,
    /// Its message stream id (0: the NetConnection).
    pub stream_id: u32,
    /// The chunk stream it travelled on.
    pub csid: u32,
    /// Its message type id.
    pub type_id: u8,
    /// Its body, as it travelled.
    pub payload: Bytes,
    /// What it is.
    pub kind: MessageKind,
    /// Bytes of invalid UTF-8 in AMF strings replaced by `?` to decode it
    /// (some servers send garbage in descriptions); 0 for most messages.
    pub replaced_bytes: usize,
    /// Offset of its direction's byte stream, handshake included, just past
    /// its last chunk.
    pub end_offset: u64,
    /// The packet that completed it, when read from a capture with packet
    /// positions.
    pub capture: Option<CapturePoint>,
}

impl LoggedMessage {
    /// Decodes one raw message.
    pub fn decode(direction: Direction, raw: media::rtmp::RawMessage, end_offset: u64) -> LoggedMessage {
        let (decoded, replaced_bytes) = decode_lenient(raw.type_id, &raw.payload);
        let kind = match decoded {
            Ok(Message::Command(command)) => MessageKind::Command(command),
            Ok(Message::Data(data)) => MessageKind::Data(data),
            Ok(Message::Audio(body)) => {
                let header = media::flv::audio_header(&body);
                MessageKind::Audio {
                    size: body.len(),
                    codec: header.map(|h| h.codec.name()),
                    sequence_header: header.is_some_and(|h| h.is_sequence_header),
                }
            }
            Ok(Message::Video(body)) => {
                let header = media::flv::video_header(&body);
                MessageKind::Video {
                    size: body.len(),
                    codec: header.map(|h| h.codec.name()),
                    keyframe: header.is_some_and(|h| h.is_keyframe),
                    sequence_header: header.is_some_and(|h| h.is_sequence_header),
                }
            }
            Ok(Message::Aggregate(body)) => MessageKind::Aggregate { size: body.len() },
            Ok(Message::Other { payload, .. }) => MessageKind::Other { size: payload.len() },
            Ok(control) => MessageKind::Control(control),
            Err(e) => MessageKind::Undecodable { error: e.to_string() },
        };
        LoggedMessage {
            direction,
            timestamp: raw.timestamp,
            stream_id: raw.stream_id,
            csid: raw.csid,
            type_id: raw.type_id,
            payload: raw.payload,
            kind,
            replaced_bytes,
            end_offset,
            capture: None,
        }
    }

    /// The command, if this is one.
    pub fn command(&self) -> Option<&Command> {
        match &self.kind {
            MessageKind::Command(c) => Some(c),
            _ => None,
        }
    }

    /// Whether this is audio, video or an aggregate.
    pub fn is_media(&self) -> bool {
        matches!(
            self.kind,
            MessageKind::Audio { .. } | MessageKind::Video { .. } | MessageKind::Aggregate { .. }
        )
    }

    /// The NetStatus info objects a command carries (the info object of
    /// `onStatus`, `_result` and `_error`), in order.
    pub fn statuses(&self) -> Vec<NetStatus> {
        self.command()
            .map(|c| c.args.iter().filter_map(NetStatus::from_value).collect())
            .unwrap_or_default()
    }

    /// The message as one human line, e.g.
    /// `C→S connect tid=1 {app: "live", flashVer: "FMLE/3.0 …"}`,
    /// `S→C onStatus stream=1 NetStream.Publish.Start (status)`,
    /// `C→S video stream=1 1234 B ts=40 h264 keyframe`.
    pub fn render(&self) -> String {
        let mut line = String::from(self.direction.arrow());
        line.push(' ');
        let stream = if self.stream_id != 0 {
            format!(" stream={}", self.stream_id)
        } else {
            String::new()
        };
        match &self.kind {
            MessageKind::Command(c) => {
                line.push_str(&c.name);
                if c.encoding == ObjectEncoding::Amf3 {
                    line.push_str(" [AMF3]");
                }
                if c.transaction_id != 0.0 {
                    line.push_str(&format!(" tid={}", Value::Number(c.transaction_id)));
                }
                line.push_str(&stream);
                let statuses = self.statuses();
                if statuses.is_empty() {
                    let values: Vec<&Value> = std::iter::once(&c.command_object)
                        .filter(|v| **v != Value::Null)
                        .chain(&c.args)
                        .collect();
                    if !values.is_empty() {
                        line.push(' ');
                        line.push_str(&join_values(values));
                    }
                } else {
                    for status in statuses {
                        line.push_str(&format!(" {} ({})", status.code, status.level.as_str()));
                    }
                }
            }
            MessageKind::Data(d) => {
                line.push_str("data");
                if d.encoding == ObjectEncoding::Amf3 {
                    line.push_str(" [AMF3]");
                }
                line.push_str(&stream);
                if let Some(status) = d.values.iter().find_map(NetStatus::from_value) {
                    let handler = d.values.first().and_then(Value::as_str).unwrap_or("");
                    line.push_str(&format!(" {handler} {} ({})", status.code, status.level.as_str()));
                } else if !d.values.is_empty() {
                    line.push(' ');
                    line.push_str(&join_values(d.values.iter()));
                }
            }
            MessageKind::Audio {
                size,
                codec,
                sequence_header,
            } => {
                line.push_str(&format!("audio{stream} {size} B ts={}", self.timestamp));
                if let Some(codec) = codec {
                    line.push_str(&format!(" {codec}"));
                }
                if *sequence_header {
                    line.push_str(" sequence-header");
                }
            }
            MessageKind::Video {
                size,
                codec,
                keyframe,
                sequence_header,
            } => {
                line.push_str(&format!("video{stream} {size} B ts={}", self.timestamp));
                if let Some(codec) = codec {
                    line.push_str(&format!(" {codec}"));
                }
                if *sequence_header {
                    line.push_str(" sequence-header");
                } else if *keyframe {
                    line.push_str(" keyframe");
                }
            }
            MessageKind::Aggregate { size } => {
                line.push_str(&format!("aggregate{stream} {size} B ts={}", self.timestamp));
            }
            MessageKind::Control(control) => line.push_str(&render_control(control)),
            MessageKind::Other { size } => {
                line.push_str(&format!("type-{}{stream} {size} B", self.type_id));
            }
            MessageKind::Undecodable { error } => {
                line.push_str(&format!(
                    "type-{}{stream} {} B undecodable: {error}",
                    self.type_id,
                    self.payload.len()
                ));
            }
        }
        if self.replaced_bytes > 0 {
            line.push_str(&format!(" [{} invalid UTF-8 bytes read as '?']", self.replaced_bytes));
        }
        line
    }
}

/// [`Message::decode`], and when a command or data body fails only for
/// invalid UTF-8 in its strings, the same body with each offending byte
/// replaced by `?` (same lengths, so the structure is unchanged). Returns the
/// result and how many bytes were replaced.
fn decode_lenient(type_id: u8, payload: &Bytes) -> (Result<Message, MessageError>, usize) {
    /// Gives up on bodies with more bad bytes than this.
    const MAX_REPLACED: usize = 256;
    let first = Message::decode(type_id, payload.clone());
    if !matches!(
        first,
        Err(MessageError::Amf {
            source: AmfError::InvalidUtf8 { .. },
            ..
        })
    ) {
        return (first, 0);
    }
    // Error offsets count from the AMF values, after the 0x00 format byte of types 15 and 17.
    let base =
        usize::from(matches!(type_id, type_id::COMMAND_AMF3 | type_id::DATA_AMF3) && payload.first() == Some(&0));
    let mut bytes = payload.to_vec();
    let mut replaced = 0usize;
    loop {
        match Message::decode(type_id, Bytes::from(bytes.clone())) {
            Ok(message) => return (Ok(message), replaced),
            Err(MessageError::Amf {
                source: AmfError::InvalidUtf8 { at },
                ..
            }) if replaced < MAX_REPLACED => match bytes.get_mut(base + at) {
                // An invalid UTF-8 sequence starts with a non-ASCII byte;
                // anything else means the offset is not where we think.
                Some(byte) if *byte >= 0x80 => {
                    *byte = b'?';
                    replaced += 1;
                }
                _ => return (first, 0),
            },
            Err(_) => return (first, 0),
        }
    }
}

/// Values separated by `, `, cut after [`MAX_VALUES_CHARS`] characters.
fn join_values<'a>(values: impl IntoIterator<Item = &'a Value>) -> String {
    let text = values.into_iter().map(Value::to_string).collect::<Vec<_>>().join(", ");
    if text.chars().count() > MAX_VALUES_CHARS {
        let cut: String = text.chars().take(MAX_VALUES_CHARS).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// A protocol or user control message as log text.
pub(crate) fn render_control(control: &Message) -> String {
    match control {
        Message::SetChunkSize(size) => format!("SetChunkSize {size}"),
        Message::Abort(csid) => format!("Abort csid={csid}"),
        Message::Acknowledgement(n) => format!("Acknowledgement {n}"),
        Message::WindowAckSize(n) => format!("WindowAckSize {n}"),
        Message::SetPeerBandwidth { size, limit_type } => {
            let limit = match limit_type {
                0 => "hard",
                1 => "soft",
                2 => "dynamic",
                _ => "unknown-limit",
            };
            format!("SetPeerBandwidth {size} {limit}")
        }
        Message::UserControl(event) => match event {
            UserControl::StreamBegin(id) => format!("UserControl StreamBegin {id}"),
            UserControl::StreamEof(id) => format!("UserControl StreamEOF {id}"),
            UserControl::StreamDry(id) => format!("UserControl StreamDry {id}"),
            UserControl::SetBufferLength { stream_id, buffer_ms } => {
                format!("UserControl SetBufferLength {stream_id} {buffer_ms} ms")
            }
            UserControl::StreamIsRecorded(id) => format!("UserControl StreamIsRecorded {id}"),
            UserControl::PingRequest(t) => format!("UserControl PingRequest {t}"),
            UserControl::PingResponse(t) => format!("UserControl PingResponse {t}"),
            UserControl::Other { event_type, data } => {
                format!("UserControl event {event_type} ({} B)", data.len())
            }
        },
        other => format!("{other:?}"),
    }
}

/// Commands whose answer is the first `onStatus` on their stream.
pub const STATUS_COMMANDS: [&str; 6] = ["publish", "play", "play2", "pause", "seek", "closeStream"];

/// Whether the server message `answer` answers the client message `request`:
/// a `_result`/`_error` with its transaction id (when that is not 0), and,
/// for the commands of [`STATUS_COMMANDS`], an `onStatus` on its stream.
pub fn answers(request: &LoggedMessage, answer: &LoggedMessage) -> bool {
    if answer.direction != Direction::ServerToClient {
        return false;
    }
    let (Some(request_command), Some(reply)) = (request_command(request), answer.command()) else {
        return false;
    };
    let by_transaction = request_command.transaction_id != 0.0
        && (reply.name == "_result" || reply.name == "_error")
        && reply.transaction_id == request_command.transaction_id;
    let by_status = STATUS_COMMANDS.contains(&request_command.name.as_str())
        && reply.name == "onStatus"
        && request.stream_id != 0
        && answer.stream_id == request.stream_id;
    by_transaction || by_status
}

fn request_command(message: &LoggedMessage) -> Option<&Command> {
    (message.direction == Direction::ClientToServer)
        .then(|| message.command())
        .flatten()
}

/// In what order the two directions were put.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum LogOrder {
    /// By the packets of a capture (see the module docs).
    Capture,
    /// By requests and their answers (see the module docs).
    RequestResponse,
}

/// Why a session cannot be logged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// A direction is shorter than its handshake.
    #[error(
        "{direction}: only {len} bytes, but the handshake alone takes {HANDSHAKE_BYTES} \
         (1 + 1536 + 1536): the capture is cut short or is not RTMP"
    )]
    ShortHandshake {
        /// The direction.
        direction: Direction,
        /// Its length.
        len: usize,
    },
    /// A direction does not start with RTMP version 3.
    #[error("{direction}: first byte 0x{version:02x} is not RTMP version 3{hint}")]
    NotRtmp {
        /// The direction.
        direction: Direction,
        /// The first byte.
        version: u8,
        /// Extra explanation for known values.
        hint: &'static str,
    },
    /// The chunk stream after the handshake does not decode.
    #[error(
        "{direction}: the chunk stream breaks at byte {offset} (handshake included), \
         after {messages} messages: {source}"
    )]
    Chunk {
        /// The direction.
        direction: Direction,
        /// Where the decoder stood.
        offset: u64,
        /// Messages decoded before.
        messages: usize,
        /// The decoder's complaint.
        #[source]
        source: ChunkError,
    },
}

/// The decoded session. See the module docs.
#[derive(Debug, Clone)]
pub struct MessageLog {
    /// The messages of both directions, in [`order`](Self::order).
    pub messages: Vec<LoggedMessage>,
    /// How the two directions were interleaved.
    pub order: LogOrder,
    /// The kind of handshake the captured client sent (a Flash Player
    /// digest or the simple one).
    pub client_handshake: ClientHandshake,
    /// The client's address, when read from a capture.
    pub client: Option<SocketAddr>,
    /// The server's address, when read from a capture.
    pub server: Option<SocketAddr>,
    /// Bytes at the end of the client's stream that do not complete a message.
    pub client_trailing_bytes: usize,
    /// Bytes at the end of the server's stream that do not complete a message.
    pub server_trailing_bytes: usize,
}

impl MessageLog {
    /// Logs a session from its two raw directions (handshake included), in
    /// request/response order.
    pub fn from_directions(client_to_server: &[u8], server_to_client: &[u8]) -> Result<MessageLog, LogError> {
        let (client, client_trailing) = decode_direction(Direction::ClientToServer, client_to_server)?;
        let (server, server_trailing) = decode_direction(Direction::ServerToClient, server_to_client)?;
        Ok(MessageLog {
            messages: merge_request_response(client, server),
            order: LogOrder::RequestResponse,
            client_handshake: client_handshake_kind(client_to_server),
            client: None,
            server: None,
            client_trailing_bytes: client_trailing,
            server_trailing_bytes: server_trailing,
        })
    }

    /// Logs a reassembled connection, in request/response order (a
    /// [`TcpFlow`] has no packet positions; see [`from_timed_flow`](Self::from_timed_flow)).
    pub fn from_flow(flow: &TcpFlow) -> Result<MessageLog, LogError> {
        let mut log = MessageLog::from_directions(&flow.client_to_server, &flow.server_to_client)?;
        log.client = Some(flow.client);
        log.server = Some(flow.server);
        Ok(log)
    }

    /// Logs a reassembled connection in capture order.
    pub fn from_timed_flow(timed: &TimedTcpFlow) -> Result<MessageLog, LogError> {
        let flow = &timed.flow;
        let (mut client, client_trailing) = decode_direction(Direction::ClientToServer, &flow.client_to_server)?;
        let (mut server, server_trailing) = decode_direction(Direction::ServerToClient, &flow.server_to_client)?;
        place(&mut client, &timed.client_segments);
        place(&mut server, &timed.server_segments);
        // Both lists are ordered by packet now; merge them, client first
        // when one packet position were somehow shared.
        let mut messages = Vec::with_capacity(client.len() + server.len());
        let (mut c, mut s) = (client.into_iter().peekable(), server.into_iter().peekable());
        loop {
            let take_client = match (c.peek(), s.peek()) {
                (Some(a), Some(b)) => packet_of(a) <= packet_of(b),
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let next = if take_client { c.next() } else { s.next() };
            messages.extend(next);
        }
        Ok(MessageLog {
            messages,
            order: LogOrder::Capture,
            client_handshake: client_handshake_kind(&flow.client_to_server),
            client: Some(flow.client),
            server: Some(flow.server),
            client_trailing_bytes: client_trailing,
            server_trailing_bytes: server_trailing,
        })
    }

    /// Every message as one line (see [`LoggedMessage::render`]).
    pub fn lines(&self) -> Vec<String> {
        self.messages.iter().map(LoggedMessage::render).collect()
    }

    /// The commands one side sent, in order.
    pub fn commands(&self, direction: Direction) -> impl Iterator<Item = (&LoggedMessage, &Command)> {
        self.messages
            .iter()
            .filter(move |m| m.direction == direction)
            .filter_map(|m| m.command().map(|c| (m, c)))
    }

    /// The names of the commands one side sent, in order.
    pub fn command_names(&self, direction: Direction) -> Vec<&str> {
        self.commands(direction).map(|(_, c)| c.name.as_str()).collect()
    }

    /// The NetStatus codes one side sent in commands, in order.
    pub fn status_codes(&self, direction: Direction) -> Vec<String> {
        self.messages
            .iter()
            .filter(|m| m.direction == direction)
            .flat_map(|m| m.statuses().into_iter().map(|s| s.code))
            .collect()
    }
}

/// One line per message.
impl fmt::Display for MessageLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for message in &self.messages {
            writeln!(f, "{}", message.render())?;
        }
        Ok(())
    }
}

fn packet_of(message: &LoggedMessage) -> usize {
    message.capture.map_or(usize::MAX, |c| c.packet)
}

/// Sets each message's capture point: the first captured packet holding its
/// last byte (see [`TimedTcpFlow::delivered_by`]). Positions are kept
/// non-decreasing so a direction's order never changes.
///
/// One sweep: message offsets only grow, so segments are taken in order of
/// their start and kept in a heap by packet position until they end.
fn place(messages: &mut [LoggedMessage], segments: &[crate::capture::SegmentMark]) {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let mut by_start: Vec<&crate::capture::SegmentMark> = segments.iter().collect();
    by_start.sort_by_key(|s| s.start);
    let mut pending = by_start.into_iter().peekable();
    // Segments that started at or before the current offset: (packet, end, time).
    let mut active: BinaryHeap<Reverse<(usize, u64, Option<Duration>)>> = BinaryHeap::new();
    let mut previous: Option<CapturePoint> = None;
    for message in messages {
        let last_byte = message.end_offset.saturating_sub(1);
        while let Some(segment) = pending.next_if(|s| s.start <= last_byte) {
            active.push(Reverse((segment.packet, segment.end, segment.time)));
        }
        // Segments ending at or before this byte cannot hold a later one either.
        while active.peek().is_some_and(|Reverse((_, end, _))| *end <= last_byte) {
            active.pop();
        }
        let found = active.peek().map(|Reverse((packet, _, time))| CapturePoint {
            packet: *packet,
            time: *time,
        });
        let point = match (found, previous) {
            (Some(f), Some(p)) if f.packet < p.packet => p,
            (Some(f), _) => f,
            (None, p) => p.unwrap_or(CapturePoint {
                packet: usize::MAX,
                time: None,
            }),
        };
        message.capture = Some(point);
        previous = Some(point);
    }
}

/// What kind of C1 the captured client sent.
fn client_handshake_kind(client_to_server: &[u8]) -> ClientHandshake {
    client_to_server
        .get(1..1 + HANDSHAKE_SIZE)
        .and_then(|c1| <&[u8; HANDSHAKE_SIZE]>::try_from(c1).ok())
        .and_then(verify_client_c1)
        .map_or(ClientHandshake::Simple, |(scheme, _)| {
            ClientHandshake::FlashDigest(scheme)
        })
}

/// Decodes one direction after its handshake; returns its messages and the
/// bytes left over at the end.
fn decode_direction(direction: Direction, bytes: &[u8]) -> Result<(Vec<LoggedMessage>, usize), LogError> {
    if let Some(&version) = bytes.first() {
        if version != crate::handshake::RTMP_VERSION {
            let hint = match version {
                crate::handshake::RTMPE_VERSION => " (it is 6: encrypted RTMPE, which cannot be decoded)",
                _ => " (not an RTMP connection?)",
            };
            return Err(LogError::NotRtmp {
                direction,
                version,
                hint,
            });
        }
    }
    let Some(session) = bytes.get(HANDSHAKE_BYTES..) else {
        return Err(LogError::ShortHandshake {
            direction,
            len: bytes.len(),
        });
    };
    let mut decoder = ChunkDecoder::new(ChunkLimits::default());
    decoder.push(session);
    let mut messages = Vec::new();
    loop {
        let at = |d: &ChunkDecoder| (HANDSHAKE_BYTES + session.len() - d.buffered()) as u64;
        match decoder.next_message() {
            Ok(Some(raw)) => {
                let end = at(&decoder);
                messages.push(LoggedMessage::decode(direction, raw, end));
            }
            Ok(None) => break,
            Err(source) => {
                return Err(LogError::Chunk {
                    direction,
                    offset: at(&decoder),
                    messages: messages.len(),
                    source,
                })
            }
        }
    }
    let trailing = pending(&messages, session.len());
    Ok((messages, trailing))
}

/// Bytes after the last complete message (partial messages included).
fn pending(messages: &[LoggedMessage], session_len: usize) -> usize {
    let consumed = messages.last().map_or(0, |m| m.end_offset as usize - HANDSHAKE_BYTES);
    session_len.saturating_sub(consumed)
}

/// Interleaves the two directions by requests and answers (module docs).
fn merge_request_response(client: Vec<LoggedMessage>, server: Vec<LoggedMessage>) -> Vec<LoggedMessage> {
    // Where each client message's answer is in `server`, searching forward
    // from the previous answer.
    let mut answer_at: Vec<Option<usize>> = Vec::with_capacity(client.len());
    let mut from = 0usize;
    for request in &client {
        if request.command().is_none() {
            answer_at.push(None);
            continue;
        }
        let found = server
            .iter()
            .enumerate()
            .skip(from)
            .find(|(_, s)| answers(request, s))
            .map(|(i, _)| i);
        if let Some(i) = found {
            from = i + 1;
        }
        answer_at.push(found);
    }
    let last_answered = answer_at.iter().rposition(Option::is_some);
    let mut out = Vec::with_capacity(client.len() + server.len());
    let mut server = server.into_iter().enumerate().peekable();
    for (i, message) in client.into_iter().enumerate() {
        let after_answers = last_answered.is_some_and(|last| i > last);
        if after_answers && message.command().is_some() {
            out.extend(server.by_ref().map(|(_, s)| s));
        }
        out.push(message);
        if let Some(end) = answer_at[i] {
            while let Some((_, s)) = server.next_if(|(j, _)| *j <= end) {
                out.push(s);
            }
        }
    }
    out.extend(server.map(|(_, s)| s));
    out
}
