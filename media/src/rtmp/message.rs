//! RTMP messages (Adobe RTMP specification 1.0, sections 5.4, 6 and 7).
//!
//! [`Message::decode`] gives meaning to a [`RawMessage`](super::chunk::RawMessage)
//! body; [`Message::encode`] produces one. Commands and data come in two
//! encodings: AMF0 (types 20 and 18) and "AMF3" (types 17 and 15), which is a
//! format byte 0x00 followed by AMF0 values that may switch to AMF3 one value at a
//! time through the AVM+ marker 0x11. Flash Player sends every command after
//! `connect` as type 17 when its `objectEncoding` is 3.

use bytes::{BufMut, Bytes, BytesMut};

use crate::amf::{self, AmfError, Value};

/// Message type ids.
pub mod type_id {
    /// Set Chunk Size (protocol control).
    pub const SET_CHUNK_SIZE: u8 = 1;
    /// Abort Message (protocol control).
    pub const ABORT: u8 = 2;
    /// Acknowledgement (protocol control).
    pub const ACKNOWLEDGEMENT: u8 = 3;
    /// User Control Message.
    pub const USER_CONTROL: u8 = 4;
    /// Window Acknowledgement Size (protocol control).
    pub const WINDOW_ACK_SIZE: u8 = 5;
    /// Set Peer Bandwidth (protocol control).
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    /// Audio data (an FLV audio tag body).
    pub const AUDIO: u8 = 8;
    /// Video data (an FLV video tag body).
    pub const VIDEO: u8 = 9;
    /// Data message, AMF3 flavour.
    pub const DATA_AMF3: u8 = 15;
    /// Shared object message, AMF3 flavour.
    pub const SHARED_OBJECT_AMF3: u8 = 16;
    /// Command message, AMF3 flavour.
    pub const COMMAND_AMF3: u8 = 17;
    /// Data message, AMF0.
    pub const DATA_AMF0: u8 = 18;
    /// Shared object message, AMF0.
    pub const SHARED_OBJECT_AMF0: u8 = 19;
    /// Command message, AMF0.
    pub const COMMAND_AMF0: u8 = 20;
    /// Aggregate message (several audio/video/data messages in one).
    pub const AGGREGATE: u8 = 22;
}

/// Which message types carry a command or data: the `objectEncoding` of the NetConnection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectEncoding {
    /// Types 20 and 18.
    Amf0,
    /// Types 17 and 15 (a 0x00 format byte, then AMF0 values with AMF3 switches).
    Amf3,
}

impl ObjectEncoding {
    /// The value of `objectEncoding` in a connect object: 0 or 3.
    pub fn number(self) -> f64 {
        match self {
            ObjectEncoding::Amf0 => 0.0,
            ObjectEncoding::Amf3 => 3.0,
        }
    }
}

/// A command: a remote procedure call or its answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// Which message type carries it.
    pub encoding: ObjectEncoding,
    /// The procedure name (`connect`, `publish`, `_result`, `onStatus`, ...).
    pub name: String,
    /// 0 when no answer is expected; else the answer carries the same number.
    pub transaction_id: f64,
    /// The command object (`null` for most commands after connect).
    pub command_object: Value,
    /// The remaining arguments.
    pub args: Vec<Value>,
}

/// A data message (`@setDataFrame`, `onMetaData`, `|RtmpSampleAccess`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct Data {
    /// Which message type carries it.
    pub encoding: ObjectEncoding,
    /// The values; the first is usually the handler name.
    pub values: Vec<Value>,
}

/// User Control Message events (section 7.1.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserControl {
    /// The stream became functional.
    StreamBegin(u32),
    /// Playback of the stream ended.
    StreamEof(u32),
    /// No more data on the stream.
    StreamDry(u32),
    /// The client's buffer length for a stream.
    SetBufferLength {
        /// The message stream.
        stream_id: u32,
        /// Buffer length in milliseconds.
        buffer_ms: u32,
    },
    /// The stream is a recorded one.
    StreamIsRecorded(u32),
    /// The server checks the client is reachable; the payload is a timestamp.
    PingRequest(u32),
    /// The answer to a ping, echoing its timestamp.
    PingResponse(u32),
    /// An event this library does not interpret.
    Other {
        /// The event type.
        event_type: u16,
        /// The event data.
        data: Bytes,
    },
}

/// A decoded RTMP message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Set Chunk Size.
    SetChunkSize(u32),
    /// Abort Message for a chunk stream.
    Abort(u32),
    /// Acknowledgement of the bytes received so far.
    Acknowledgement(u32),
    /// A user control event.
    UserControl(UserControl),
    /// Window Acknowledgement Size.
    WindowAckSize(u32),
    /// Set Peer Bandwidth.
    SetPeerBandwidth {
        /// Window size in bytes.
        size: u32,
        /// 0 hard, 1 soft, 2 dynamic.
        limit_type: u8,
    },
    /// Audio: an FLV audio tag body.
    Audio(Bytes),
    /// Video: an FLV video tag body.
    Video(Bytes),
    /// A data message.
    Data(Data),
    /// A command.
    Command(Command),
    /// An aggregate of audio, video and data messages.
    Aggregate(Bytes),
    /// A message type this library does not interpret (shared objects, unknown types).
    Other {
        /// The message type id.
        type_id: u8,
        /// The body.
        payload: Bytes,
    },
}

/// Why a message body could not be decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// The body is shorter than its type requires.
    #[error("message type {type_id}: body of {len} bytes is too short (needs {needed})")]
    TooShort {
        /// The message type.
        type_id: u8,
        /// The body length.
        len: usize,
        /// The length required.
        needed: usize,
    },
    /// The AMF values of a command or data message are malformed.
    #[error("message type {type_id}: {source}")]
    Amf {
        /// The message type.
        type_id: u8,
        /// What the AMF decoder found.
        source: AmfError,
    },
    /// A command without a string name and a numeric transaction id.
    #[error("command message: {0}")]
    BadCommand(String),
    /// An aggregate message whose sub-messages do not fit its body.
    #[error("aggregate message: {0}")]
    BadAggregate(String),
}

impl Message {
    /// Decodes a message body of the given type.
    pub fn decode(type_id: u8, payload: Bytes) -> Result<Message, MessageError> {
        let need = |needed: usize| {
            if payload.len() < needed {
                Err(MessageError::TooShort {
                    type_id,
                    len: payload.len(),
                    needed,
                })
            } else {
                Ok(())
            }
        };
        let u32_at = |i: usize| u32::from_be_bytes([payload[i], payload[i + 1], payload[i + 2], payload[i + 3]]);
        Ok(match type_id {
            type_id::SET_CHUNK_SIZE => {
                need(4)?;
                Message::SetChunkSize(u32_at(0) & 0x7FFF_FFFF)
            }
            type_id::ABORT => {
                need(4)?;
                Message::Abort(u32_at(0))
            }
            type_id::ACKNOWLEDGEMENT => {
                need(4)?;
                Message::Acknowledgement(u32_at(0))
            }
            type_id::WINDOW_ACK_SIZE => {
                need(4)?;
                Message::WindowAckSize(u32_at(0))
            }
            type_id::SET_PEER_BANDWIDTH => {
                need(5)?;
                Message::SetPeerBandwidth {
                    size: u32_at(0),
                    limit_type: payload[4],
                }
            }
            type_id::USER_CONTROL => {
                need(2)?;
                let event_type = u16::from_be_bytes([payload[0], payload[1]]);
                let with_u32 = |make: fn(u32) -> UserControl| -> Result<Message, MessageError> {
                    need(6)?;
                    Ok(Message::UserControl(make(u32_at(2))))
                };
                match event_type {
                    0 => with_u32(UserControl::StreamBegin)?,
                    1 => with_u32(UserControl::StreamEof)?,
                    2 => with_u32(UserControl::StreamDry)?,
                    3 => {
                        need(10)?;
                        Message::UserControl(UserControl::SetBufferLength {
                            stream_id: u32_at(2),
                            buffer_ms: u32_at(6),
                        })
                    }
                    4 => with_u32(UserControl::StreamIsRecorded)?,
                    6 => with_u32(UserControl::PingRequest)?,
                    7 => with_u32(UserControl::PingResponse)?,
                    _ => Message::UserControl(UserControl::Other {
                        event_type,
                        data: payload.slice(2..),
                    }),
                }
            }
            type_id::AUDIO => Message::Audio(payload),
            type_id::VIDEO => Message::Video(payload),
            type_id::DATA_AMF0 | type_id::DATA_AMF3 => {
                let (encoding, values) = decode_values(type_id, &payload)?;
                Message::Data(Data { encoding, values })
            }
            type_id::COMMAND_AMF0 | type_id::COMMAND_AMF3 => {
                let (encoding, values) = decode_values(type_id, &payload)?;
                let mut values = values.into_iter();
                let name = match values.next() {
                    Some(Value::String(name)) => name,
                    other => {
                        return Err(MessageError::BadCommand(format!(
                            "the first value must be the command name (a string), found {}",
                            other.map_or_else(|| "nothing".to_string(), |v| v.to_string())
                        )))
                    }
                };
                let transaction_id = match values.next() {
                    Some(Value::Number(n)) => n,
                    // Some clients omit trailing values of notifications; treat as 0.
                    None => 0.0,
                    Some(other) => {
                        return Err(MessageError::BadCommand(format!(
                            "command {name:?}: the transaction id must be a number, found {other}"
                        )))
                    }
                };
                Message::Command(Command {
                    encoding,
                    name,
                    transaction_id,
                    command_object: values.next().unwrap_or(Value::Null),
                    args: values.collect(),
                })
            }
            type_id::AGGREGATE => Message::Aggregate(payload),
            _ => Message::Other { type_id, payload },
        })
    }

    /// Encodes the message: its type id and body.
    pub fn encode(&self) -> (u8, Bytes) {
        let u32_body = |t: u8, v: u32| (t, Bytes::copy_from_slice(&v.to_be_bytes()));
        match self {
            Message::SetChunkSize(size) => u32_body(type_id::SET_CHUNK_SIZE, *size),
            Message::Abort(csid) => u32_body(type_id::ABORT, *csid),
            Message::Acknowledgement(n) => u32_body(type_id::ACKNOWLEDGEMENT, *n),
            Message::WindowAckSize(n) => u32_body(type_id::WINDOW_ACK_SIZE, *n),
            Message::SetPeerBandwidth { size, limit_type } => {
                let mut b = BytesMut::with_capacity(5);
                b.put_u32(*size);
                b.put_u8(*limit_type);
                (type_id::SET_PEER_BANDWIDTH, b.freeze())
            }
            Message::UserControl(event) => (type_id::USER_CONTROL, encode_user_control(event)),
            Message::Audio(body) => (type_id::AUDIO, body.clone()),
            Message::Video(body) => (type_id::VIDEO, body.clone()),
            Message::Data(data) => {
                let (t, mut out) = start_values(data.encoding, type_id::DATA_AMF0, type_id::DATA_AMF3);
                for value in &data.values {
                    amf::encode_amf0(value, &mut out);
                }
                (t, Bytes::from(out))
            }
            Message::Command(command) => {
                let (t, mut out) = start_values(command.encoding, type_id::COMMAND_AMF0, type_id::COMMAND_AMF3);
                amf::encode_amf0(&Value::String(command.name.clone()), &mut out);
                amf::encode_amf0(&Value::Number(command.transaction_id), &mut out);
                amf::encode_amf0(&command.command_object, &mut out);
                for arg in &command.args {
                    amf::encode_amf0(arg, &mut out);
                }
                (t, Bytes::from(out))
            }
            Message::Aggregate(body) => (type_id::AGGREGATE, body.clone()),
            Message::Other { type_id, payload } => (*type_id, payload.clone()),
        }
    }
}

fn start_values(encoding: ObjectEncoding, amf0: u8, amf3: u8) -> (u8, Vec<u8>) {
    let mut out = Vec::with_capacity(128);
    match encoding {
        ObjectEncoding::Amf0 => (amf0, out),
        ObjectEncoding::Amf3 => {
            out.push(0);
            (amf3, out)
        }
    }
}

fn decode_values(type_id: u8, payload: &[u8]) -> Result<(ObjectEncoding, Vec<Value>), MessageError> {
    let (encoding, body) = match (type_id, payload.first()) {
        // Types 17 and 15 start with a format byte 0x00. A few encoders leave it
        // out; a command or data message cannot start with an AMF0 number, so a
        // non-zero first byte means the values start right away.
        (type_id::COMMAND_AMF3 | type_id::DATA_AMF3, Some(0)) => (ObjectEncoding::Amf3, &payload[1..]),
        (type_id::COMMAND_AMF3 | type_id::DATA_AMF3, _) => (ObjectEncoding::Amf3, payload),
        _ => (ObjectEncoding::Amf0, payload),
    };
    let values = amf::decode_amf0_sequence(body).map_err(|source| MessageError::Amf { type_id, source })?;
    Ok((encoding, values))
}

fn encode_user_control(event: &UserControl) -> Bytes {
    let mut b = BytesMut::with_capacity(10);
    let (event_type, value) = match event {
        UserControl::StreamBegin(id) => (0, *id),
        UserControl::StreamEof(id) => (1, *id),
        UserControl::StreamDry(id) => (2, *id),
        UserControl::SetBufferLength { stream_id, buffer_ms } => {
            b.put_u16(3);
            b.put_u32(*stream_id);
            b.put_u32(*buffer_ms);
            return b.freeze();
        }
        UserControl::StreamIsRecorded(id) => (4, *id),
        UserControl::PingRequest(t) => (6, *t),
        UserControl::PingResponse(t) => (7, *t),
        UserControl::Other { event_type, data } => {
            b.put_u16(*event_type);
            b.put_slice(data);
            return b.freeze();
        }
    };
    b.put_u16(event_type);
    b.put_u32(value);
    b.freeze()
}

/// One message inside an aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregatePart {
    /// Its message type (8, 9 or 18 in practice).
    pub type_id: u8,
    /// Its absolute timestamp: the aggregate's timestamp plus its offset from the first part.
    pub timestamp: u32,
    /// Its body.
    pub payload: Bytes,
}

/// Splits an aggregate message (type 22) into its parts: each is an FLV tag
/// (11-byte header, body, 4-byte back pointer).
pub fn split_aggregate(timestamp: u32, payload: &Bytes) -> Result<Vec<AggregatePart>, MessageError> {
    let mut parts = Vec::new();
    let mut at = 0usize;
    let mut first_ts = None;
    while at < payload.len() {
        let header = payload
            .get(at..at + 11)
            .ok_or_else(|| MessageError::BadAggregate(format!("truncated sub-message header at byte {at}")))?;
        let size = u32::from_be_bytes([0, header[1], header[2], header[3]]) as usize;
        let ts = u32::from_be_bytes([header[7], header[4], header[5], header[6]]);
        let body_start = at + 11;
        let body_end = body_start + size;
        if body_end + 4 > payload.len() {
            return Err(MessageError::BadAggregate(format!(
                "sub-message at byte {at} declares {size} bytes, only {} remain",
                payload.len().saturating_sub(body_start + 4)
            )));
        }
        let first = *first_ts.get_or_insert(ts);
        parts.push(AggregatePart {
            type_id: header[0] & 0x1F,
            timestamp: timestamp.wrapping_add(ts.wrapping_sub(first)),
            payload: payload.slice(body_start..body_end),
        });
        at = body_end + 4;
    }
    Ok(parts)
}

/// Joins parts into the body of an aggregate message (type 22), as FMS
/// edges send them: each an FLV tag whose timestamp is its own (the
/// aggregate's timestamp is the first part's), followed by its size.
pub fn join_aggregate(parts: &[AggregatePart]) -> Bytes {
    let size: usize = parts.iter().map(|p| 15 + p.payload.len()).sum();
    let mut body = BytesMut::with_capacity(size);
    for part in parts {
        let len = part.payload.len() as u32;
        let ts = part.timestamp.to_be_bytes();
        body.put_u8(part.type_id);
        body.put_slice(&len.to_be_bytes()[1..]);
        body.put_slice(&[ts[1], ts[2], ts[3], ts[0]]);
        body.put_slice(&[0, 0, 0]);
        body.put_slice(&part.payload);
        body.put_u32(11 + len);
    }
    body.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregates_join_and_split_back() {
        let parts = vec![
            AggregatePart {
                type_id: 9,
                timestamp: 0x0100_0010,
                payload: Bytes::from_static(&[0x17, 1, 2]),
            },
            AggregatePart {
                type_id: 8,
                timestamp: 0x0100_0030,
                payload: Bytes::from_static(&[0xAF, 1]),
            },
        ];
        let body = join_aggregate(&parts);
        assert_eq!(body.len(), 15 + 3 + 15 + 2);
        assert_eq!(&body[..11], &[9, 0, 0, 3, 0, 0, 0x10, 1, 0, 0, 0]);
        assert_eq!(split_aggregate(0x0100_0010, &body).unwrap(), parts);
        // Parts keep their distance from the first under another timestamp.
        assert_eq!(split_aggregate(5, &body).unwrap()[1].timestamp, 0x25);
    }

    fn round_trip(message: Message) {
        let (t, body) = message.encode();
        assert_eq!(Message::decode(t, body).unwrap(), message);
    }

    #[test]
    fn control_messages_round_trip() {
        round_trip(Message::SetChunkSize(4096));
        round_trip(Message::Abort(4));
        round_trip(Message::Acknowledgement(123_456));
        round_trip(Message::WindowAckSize(2_500_000));
        round_trip(Message::SetPeerBandwidth {
            size: 2_500_000,
            limit_type: 2,
        });
        for event in [
            UserControl::StreamBegin(1),
            UserControl::StreamEof(1),
            UserControl::StreamDry(1),
            UserControl::SetBufferLength {
                stream_id: 1,
                buffer_ms: 3000,
            },
            UserControl::StreamIsRecorded(1),
            UserControl::PingRequest(99),
            UserControl::PingResponse(99),
        ] {
            round_trip(Message::UserControl(event));
        }
    }

    #[test]
    fn commands_round_trip_in_both_encodings() {
        for encoding in [ObjectEncoding::Amf0, ObjectEncoding::Amf3] {
            round_trip(Message::Command(Command {
                encoding,
                name: "publish".into(),
                transaction_id: 5.0,
                command_object: Value::Null,
                args: vec![Value::from("stream1?s1=v1"), Value::from("live")],
            }));
        }
        let (t, body) = Message::Command(Command {
            encoding: ObjectEncoding::Amf3,
            name: "play".into(),
            transaction_id: 0.0,
            command_object: Value::Null,
            args: vec![],
        })
        .encode();
        assert_eq!(t, type_id::COMMAND_AMF3);
        assert_eq!(body[0], 0, "type 17 starts with the format byte 0x00");
    }

    #[test]
    fn type_17_with_an_amf3_argument() {
        // 0x00, "sendData", 0, null, then 0x11 + AMF3 string "hi".
        let mut body = vec![0u8];
        amf::encode_amf0(&Value::from("sendData"), &mut body);
        amf::encode_amf0(&Value::Number(0.0), &mut body);
        amf::encode_amf0(&Value::Null, &mut body);
        body.extend([0x11, 0x06, 0x05, b'h', b'i']);
        let Message::Command(command) = Message::decode(17, Bytes::from(body)).unwrap() else {
            panic!("not a command")
        };
        assert_eq!(command.name, "sendData");
        assert_eq!(command.args, vec![Value::from("hi")]);
        assert_eq!(command.encoding, ObjectEncoding::Amf3);
    }

    #[test]
    fn bad_bodies_are_errors() {
        assert!(matches!(
            Message::decode(1, Bytes::from_static(&[0, 1])),
            Err(MessageError::TooShort { .. })
        ));
        assert!(matches!(
            Message::decode(20, Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 0, 0])),
            Err(MessageError::BadCommand(_))
        ));
        assert!(matches!(
            Message::decode(20, Bytes::from_static(&[2, 0, 9, b'a'])),
            Err(MessageError::Amf { .. })
        ));
    }

    #[test]
    fn aggregate_parts_get_absolute_timestamps() {
        let mut body = BytesMut::new();
        for (t, ts, data) in [(9u8, 1000u32, &b"abc"[..]), (8, 1020, &b"de"[..])] {
            body.put_u8(t);
            body.put_slice(&(data.len() as u32).to_be_bytes()[1..]);
            body.put_slice(&ts.to_be_bytes()[1..]);
            body.put_u8((ts >> 24) as u8);
            body.put_slice(&[0, 0, 0]);
            body.put_slice(data);
            body.put_u32(11 + data.len() as u32);
        }
        let parts = split_aggregate(5000, &body.freeze()).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!((parts[0].type_id, parts[0].timestamp), (9, 5000));
        assert_eq!((parts[1].type_id, parts[1].timestamp), (8, 5020));
        assert_eq!(&parts[1].payload[..], b"de");
        assert!(split_aggregate(0, &Bytes::from_static(&[9, 0, 0, 50, 0, 0, 0, 0, 0, 0, 0, 1])).is_err());
    }
}
