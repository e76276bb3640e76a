//! The RTMP chunk stream layer (Adobe RTMP specification 1.0, section 5.3).
//!
//! [`ChunkDecoder`] turns the byte stream after the handshake into whole messages,
//! keeping one reassembly state per chunk stream, so interleaved chunk streams
//! (audio and video messages split across each other's chunks) are reassembled
//! correctly. It applies Set Chunk Size and Abort itself, because they change how
//! the very next chunk is parsed, and counts every byte it was given so the
//! session can send Acknowledgements with the running total.
//!
//! [`ChunkEncoder`] does the reverse, compressing headers (types 1 and 2) when
//! consecutive messages on a chunk stream allow it.
//!
//! Both are sans-IO. The decoder treats its input as hostile: every length is
//! checked against configured limits before anything is buffered.

use std::collections::HashMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::message::type_id;

/// The chunk size every RTMP connection starts with, in both directions.
pub const DEFAULT_CHUNK_SIZE: u32 = 128;
/// The largest chunk size the specification allows (31 bits).
pub const MAX_CHUNK_SIZE: u32 = 0x7FFF_FFFF;
/// Timestamp field value meaning "the real timestamp follows in 4 extra bytes".
const EXTENDED_TIMESTAMP: u32 = 0xFF_FFFF;

/// One complete RTMP message as it came off (or goes onto) the chunk stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    /// The chunk stream it travelled on (2 is protocol control, 3 commands by convention).
    pub csid: u32,
    /// Absolute timestamp in milliseconds, 32 bits, wrapping.
    pub timestamp: u32,
    /// Message type id (see [`type_id`]).
    pub type_id: u8,
    /// Message stream id (0 for the NetConnection, else a NetStream from createStream).
    pub stream_id: u32,
    /// The message body.
    pub payload: Bytes,
}

/// A message to be chunked, its body borrowed: a server chunks a stream's
/// frame for each of its players from the frame itself, and only the sink
/// ([`ChunkSink`]) decides whether to copy a piece or keep a reference to
/// it (an atomic count every player of the stream shares).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageRef<'a> {
    /// The chunk stream it goes on.
    pub csid: u32,
    /// Absolute timestamp in milliseconds, 32 bits, wrapping.
    pub timestamp: u32,
    /// Message type id (see [`type_id`]).
    pub type_id: u8,
    /// Message stream id.
    pub stream_id: u32,
    /// The message body.
    pub payload: &'a Bytes,
}

impl<'a> From<&'a RawMessage> for MessageRef<'a> {
    fn from(message: &'a RawMessage) -> Self {
        MessageRef {
            csid: message.csid,
            timestamp: message.timestamp,
            type_id: message.type_id,
            stream_id: message.stream_id,
            payload: &message.payload,
        }
    }
}

/// Limits that keep a hostile peer from making the decoder buffer without bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLimits {
    /// Largest message length accepted in a chunk message header.
    pub max_message_size: u32,
    /// Largest chunk size used: a Set Chunk Size above it is taken as it.
    /// Every size from 1 to 2147483647 is legal (RTMP 1.0, section 5.4.1),
    /// and those larger than the largest message all mean the same (no
    /// chunk is longer than its message), so none is refused.
    pub max_chunk_size: u32,
    /// Largest number of bytes held in partly received messages over all chunk streams.
    pub max_pending_bytes: usize,
    /// Largest number of distinct chunk streams a peer may use.
    pub max_chunk_streams: usize,
}

impl Default for ChunkLimits {
    fn default() -> Self {
        ChunkLimits {
            max_message_size: 8 * 1024 * 1024,
            max_chunk_size: 16 * 1024 * 1024,
            max_pending_bytes: 16 * 1024 * 1024,
            max_chunk_streams: 64,
        }
    }
}

/// Why the chunk stream cannot be decoded; the connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkError {
    /// A type 1, 2 or 3 chunk arrived on a chunk stream that never had a type 0 header.
    #[error("chunk stream {csid}: type {fmt} chunk header with no previous type 0 header to inherit from")]
    NoPreviousHeader {
        /// The chunk stream id.
        csid: u32,
        /// The chunk header type (1, 2 or 3).
        fmt: u8,
    },
    /// A new message header arrived while a message on that chunk stream was incomplete.
    #[error("chunk stream {csid}: new message header (type {fmt}) while {missing} bytes of the previous message are still missing")]
    InterruptedMessage {
        /// The chunk stream id.
        csid: u32,
        /// The chunk header type that interrupted it.
        fmt: u8,
        /// How many bytes the interrupted message still lacked.
        missing: u32,
    },
    /// The message header declared a length above the configured limit.
    #[error("chunk stream {csid}: message length {length} exceeds the limit of {limit} bytes")]
    MessageTooLarge {
        /// The chunk stream id.
        csid: u32,
        /// The declared length.
        length: u32,
        /// The configured limit.
        limit: u32,
    },
    /// Set Chunk Size 0, or with its top bit set, which RTMP 1.0 section
    /// 5.4.1 says MUST be zero.
    #[error("Set Chunk Size {size} is invalid (allowed 1..={limit})")]
    InvalidChunkSize {
        /// The requested size.
        size: u32,
        /// The configured limit.
        limit: u32,
    },
    /// A protocol control message with a body of the wrong length.
    #[error("protocol control message type {type_id} has a {len}-byte body, expected {expected}")]
    BadControlMessage {
        /// The message type.
        type_id: u8,
        /// Its body length.
        len: usize,
        /// The length the specification requires.
        expected: usize,
    },
    /// Too many bytes held in partly received messages.
    #[error("{pending} bytes pending in partly received messages exceed the limit of {limit}")]
    TooMuchPending {
        /// Bytes that would be pending.
        pending: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The peer used more chunk streams than allowed.
    #[error("peer opened more than {limit} chunk streams")]
    TooManyChunkStreams {
        /// The configured limit.
        limit: usize,
    },
    /// A chunk of one chunk stream while a message of another was partly
    /// received, to a reader given [`ReaderFaults::interleaving_refused`].
    #[error("a chunk on chunk stream {csid} while a message on chunk stream {other} is partly received")]
    Interleaved {
        /// The chunk stream of the chunk.
        csid: u32,
        /// The chunk stream whose message is incomplete.
        other: u32,
    },
}

/// Faults a reader can be given on purpose, as some servers have them, to
/// show that a conformance case catches them. None by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReaderFaults {
    /// Abort Messages are read and not acted on: the partly received
    /// message stays, and the next header on its chunk stream is an error.
    pub aborts_ignored: bool,
    /// One message at a time: a chunk of another chunk stream before the
    /// current message is complete is an error.
    pub interleaving_refused: bool,
}

/// What the decoder remembers about one chunk stream.
#[derive(Debug, Default)]
struct ChunkStream {
    /// Header of the message last started here; `None` until a type 0 header arrives.
    header: Option<Header>,
    /// The message being reassembled, with the bytes still missing.
    partial: Option<(BytesMut, u32)>,
}

#[derive(Debug, Clone, Copy)]
struct Header {
    timestamp: u32,
    delta: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
    /// Whether the last timestamp field was 0xFFFFFF (so type 3 chunks carry 4 more bytes).
    extended: bool,
    /// The value of the last extended timestamp field, to recognise it in type 3 chunks.
    extended_value: u32,
}

/// How a decoder reads the type 3 continuation chunks of a message with an
/// extended timestamp, which writers send two ways.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Continuations {
    /// Either way: the 4 bytes are the repeated timestamp when they equal
    /// it (what FFmpeg and this crate do).
    #[default]
    Recognised,
    /// Always repeated, as Adobe's specification (section 5.3.1.3) and
    /// Flash Player write them: a writer that omits them is misread.
    AlwaysRepeated,
    /// Never repeated: a writer that repeats them is misread.
    NeverRepeated,
}

/// Reassembles RTMP messages from the chunk stream. See the module docs.
#[derive(Debug)]
pub struct ChunkDecoder {
    limits: ChunkLimits,
    continuations: Continuations,
    faults: ReaderFaults,
    chunk_size: u32,
    buffer: BytesMut,
    streams: HashMap<u32, ChunkStream>,
    pending_bytes: usize,
    bytes_received: u64,
}

impl ChunkDecoder {
    /// A decoder at the start of a connection (chunk size 128).
    pub fn new(limits: ChunkLimits) -> Self {
        ChunkDecoder {
            limits,
            continuations: Continuations::default(),
            faults: ReaderFaults::default(),
            chunk_size: DEFAULT_CHUNK_SIZE,
            // Grows with what a publisher sends; a player sends little.
            buffer: BytesMut::with_capacity(4 * 1024),
            streams: HashMap::new(),
            pending_bytes: 0,
            bytes_received: 0,
        }
    }

    /// Reads continuation chunks as `continuations` says from now on.
    pub fn set_continuations(&mut self, continuations: Continuations) {
        self.continuations = continuations;
    }

    /// Reads with `faults` from now on.
    pub fn set_faults(&mut self, faults: ReaderFaults) {
        self.faults = faults;
    }

    /// Appends bytes read from the peer.
    pub fn push(&mut self, data: &[u8]) {
        self.bytes_received += data.len() as u64;
        self.buffer.extend_from_slice(data);
    }

    /// Every byte given to [`push`](Self::push) so far: the running total for Acknowledgements.
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    /// The chunk size the peer currently uses.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Bytes pushed but not yet part of a returned message or pending reassembly.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// The next complete message, `Ok(None)` when more input is needed.
    ///
    /// Set Chunk Size and Abort are applied here and returned too, so callers can log them.
    pub fn next_message(&mut self) -> Result<Option<RawMessage>, ChunkError> {
        loop {
            match self.next_chunk()? {
                Step::NeedMore => return Ok(None),
                Step::Partial => continue,
                Step::Message(message) => {
                    self.apply_control(&message)?;
                    return Ok(Some(message));
                }
            }
        }
    }

    fn apply_control(&mut self, message: &RawMessage) -> Result<(), ChunkError> {
        match message.type_id {
            type_id::SET_CHUNK_SIZE => {
                let size = control_u32(message)?;
                if size == 0 || size > MAX_CHUNK_SIZE {
                    return Err(ChunkError::InvalidChunkSize {
                        size,
                        limit: self.limits.max_chunk_size,
                    });
                }
                self.chunk_size = size.min(self.limits.max_chunk_size);
            }
            type_id::ABORT if !self.faults.aborts_ignored => {
                let csid = control_u32(message)?;
                if let Some(stream) = self.streams.get_mut(&csid) {
                    if let Some((buf, _)) = stream.partial.take() {
                        self.pending_bytes -= buf.len();
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Parses one chunk if the buffer holds all of it.
    fn next_chunk(&mut self) -> Result<Step, ChunkError> {
        let input = &self.buffer[..];
        let Some((fmt, csid, basic_len)) = basic_header(input) else {
            return Ok(Step::NeedMore);
        };
        let header_len = basic_len + [11, 7, 3, 0][fmt as usize];
        if input.len() < header_len {
            return Ok(Step::NeedMore);
        }
        if !self.streams.contains_key(&csid) && self.streams.len() >= self.limits.max_chunk_streams {
            return Err(ChunkError::TooManyChunkStreams {
                limit: self.limits.max_chunk_streams,
            });
        }
        if self.faults.interleaving_refused {
            if let Some((&other, _)) = self.streams.iter().find(|(&id, s)| id != csid && s.partial.is_some()) {
                return Err(ChunkError::Interleaved { csid, other });
            }
        }
        let stream = self.streams.entry(csid).or_default();
        let fields = &input[basic_len..header_len];
        let continuing = fmt == 3 && stream.partial.is_some();

        if fmt != 3 {
            if let Some((_, missing)) = stream.partial {
                return Err(ChunkError::InterruptedMessage { csid, fmt, missing });
            }
        }
        let previous = match (fmt, stream.header) {
            (0, previous) => previous,
            (_, Some(previous)) => Some(previous),
            (_, None) => return Err(ChunkError::NoPreviousHeader { csid, fmt }),
        };

        // The 3-byte timestamp (or delta) field of types 0, 1 and 2.
        let ts_field = (fmt < 3).then(|| be24(fields));
        let extended = match ts_field {
            Some(field) => field == EXTENDED_TIMESTAMP,
            None => previous.is_some_and(|p| p.extended),
        };
        let mut cursor = header_len;
        let mut extended_value = None;
        if extended {
            if input.len() < cursor + 4 {
                return Ok(Step::NeedMore);
            }
            let value = be32(&input[cursor..]);
            // Type 3 continuation chunks repeat the extended timestamp, but some
            // encoders omit it: only consume the 4 bytes when they match.
            let expected = previous.map(|p| p.extended_value);
            let repeated = match self.continuations {
                Continuations::Recognised => Some(value) == expected,
                Continuations::AlwaysRepeated => true,
                Continuations::NeverRepeated => false,
            };
            if !continuing || repeated {
                extended_value = Some(value);
                cursor += 4;
            }
        }

        let header = if continuing {
            // Continuation of the current message: header unchanged.
            previous.ok_or(ChunkError::NoPreviousHeader { csid, fmt })?
        } else {
            let field = extended_value.or(ts_field).unwrap_or(0);
            let mut header = match (fmt, previous) {
                (0, _) => Header {
                    timestamp: field,
                    delta: field,
                    length: be24(&fields[3..]),
                    type_id: fields[6],
                    stream_id: u32::from_le_bytes([fields[7], fields[8], fields[9], fields[10]]),
                    extended,
                    extended_value: 0,
                },
                (1, Some(p)) => Header {
                    delta: field,
                    length: be24(&fields[3..]),
                    type_id: fields[6],
                    ..p
                },
                (2, Some(p)) => Header { delta: field, ..p },
                // Type 3 starting a new message: same header, same delta again.
                (_, Some(p)) => Header {
                    delta: extended_value.unwrap_or(p.delta),
                    ..p
                },
                (_, None) => return Err(ChunkError::NoPreviousHeader { csid, fmt }),
            };
            if fmt != 0 {
                header.timestamp = header.timestamp.wrapping_add(header.delta);
            }
            header.extended = extended;
            header.extended_value = extended_value.unwrap_or(header.extended_value);
            if header.length > self.limits.max_message_size {
                return Err(ChunkError::MessageTooLarge {
                    csid,
                    length: header.length,
                    limit: self.limits.max_message_size,
                });
            }
            header
        };

        let missing = match &stream.partial {
            Some((_, missing)) => *missing,
            None => header.length,
        };
        let take = missing.min(self.chunk_size) as usize;
        if input.len() < cursor + take {
            return Ok(Step::NeedMore);
        }

        // The whole chunk is here: commit.
        stream.header = Some(header);
        self.buffer.advance(cursor);
        let data = self.buffer.split_to(take);
        let remaining = missing - take as u32;
        let payload = match stream.partial.take() {
            None if remaining == 0 => data.freeze(),
            None => {
                self.pending_bytes += data.len();
                stream.partial = Some((data, remaining));
                self.check_pending()?;
                return Ok(Step::Partial);
            }
            Some((mut buf, _)) => {
                self.pending_bytes += data.len();
                buf.unsplit(data);
                if remaining > 0 {
                    stream.partial = Some((buf, remaining));
                    self.check_pending()?;
                    return Ok(Step::Partial);
                }
                self.pending_bytes -= buf.len();
                buf.freeze()
            }
        };
        Ok(Step::Message(RawMessage {
            csid,
            timestamp: header.timestamp,
            type_id: header.type_id,
            stream_id: header.stream_id,
            payload,
        }))
    }

    fn check_pending(&self) -> Result<(), ChunkError> {
        if self.pending_bytes > self.limits.max_pending_bytes {
            return Err(ChunkError::TooMuchPending {
                pending: self.pending_bytes,
                limit: self.limits.max_pending_bytes,
            });
        }
        Ok(())
    }
}

enum Step {
    NeedMore,
    Partial,
    Message(RawMessage),
}

fn control_u32(message: &RawMessage) -> Result<u32, ChunkError> {
    if message.payload.len() < 4 {
        return Err(ChunkError::BadControlMessage {
            type_id: message.type_id,
            len: message.payload.len(),
            expected: 4,
        });
    }
    Ok(be32(&message.payload))
}

/// Chunk basic header: (fmt, chunk stream id, its length in bytes).
fn basic_header(input: &[u8]) -> Option<(u8, u32, usize)> {
    let first = *input.first()?;
    let fmt = first >> 6;
    match first & 0x3F {
        0 => Some((fmt, 64 + u32::from(*input.get(1)?), 2)),
        1 => {
            let (lo, hi) = (*input.get(1)?, *input.get(2)?);
            Some((fmt, 64 + u32::from(lo) + 256 * u32::from(hi), 3))
        }
        csid => Some((fmt, u32::from(csid), 1)),
    }
}

fn be24(b: &[u8]) -> u32 {
    u32::from_be_bytes([0, b[0], b[1], b[2]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// What the encoder remembers of the last message it sent on a chunk stream.
#[derive(Debug, Clone, Copy)]
struct Sent {
    timestamp: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
}

/// How an encoder writes its chunk headers, where writers differ.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkStyle {
    /// Every message starts with a type 0 header, never compressed (as some
    /// hardware encoders send).
    pub full_headers: bool,
    /// The type 3 continuation chunks of a message with an extended
    /// timestamp do not repeat it (as some encoders send; Adobe's
    /// specification, section 5.3.1.3, and Flash Player repeat it).
    pub bare_continuations: bool,
}

/// Splits messages into chunks, compressing headers where the previous message
/// on the same chunk stream allows it.
#[derive(Debug)]
pub struct ChunkEncoder {
    chunk_size: u32,
    style: ChunkStyle,
    /// What was last sent on each chunk stream used: the server picks its
    /// chunk streams, a handful, so a list searched in order is quicker
    /// than hashing each message's.
    sent: Vec<(u32, Sent)>,
}

impl Default for ChunkEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkEncoder {
    /// An encoder at the start of a connection (chunk size 128).
    pub fn new() -> Self {
        ChunkEncoder {
            chunk_size: DEFAULT_CHUNK_SIZE,
            style: ChunkStyle::default(),
            sent: Vec::new(),
        }
    }

    /// Writes headers in `style` from the next message on.
    pub fn set_style(&mut self, style: ChunkStyle) {
        self.style = style;
    }

    /// The chunk size used for outgoing chunks.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Changes the outgoing chunk size. The caller sends Set Chunk Size first
    /// (encoded with the old size); this takes effect for the next message.
    pub fn set_chunk_size(&mut self, size: u32) {
        self.chunk_size = size.clamp(1, MAX_CHUNK_SIZE);
    }

    /// Appends the chunks of `message` to `out`.
    pub fn encode<'a>(&mut self, message: impl Into<MessageRef<'a>>, out: &mut impl ChunkSink) {
        self.encode_into(message.into(), out);
    }

    /// The chunks of `message`, each with its header, for a sender that
    /// interleaves them with other chunk streams' or abandons the message
    /// part way (Abort).
    pub fn encode_chunks(&mut self, message: &RawMessage) -> Vec<Bytes> {
        let mut chunks = Chunks::default();
        self.encode_into(message.into(), &mut chunks);
        let mut bytes = chunks.out.freeze();
        let mut taken = 0;
        chunks
            .ends
            .iter()
            .map(|&end| {
                let chunk = bytes.split_to(end - taken);
                taken = end;
                chunk
            })
            .collect()
    }

    /// Forgets what was last sent on `csid`: its next message goes with a
    /// type 0 header (after an Abort, say).
    pub fn forget(&mut self, csid: u32) {
        self.sent.retain(|&(id, _)| id != csid);
    }

    /// Appends the chunks of `message` to `out`.
    fn encode_into(&mut self, message: MessageRef<'_>, out: &mut impl ChunkSink) {
        let length = message.payload.len() as u32;
        let previous = self
            .sent
            .iter()
            .find(|(id, _)| *id == message.csid)
            .map(|&(_, sent)| sent);
        let (fmt, ts_field) = match previous {
            Some(p)
                if !self.style.full_headers && p.stream_id == message.stream_id && message.timestamp >= p.timestamp =>
            {
                let delta = message.timestamp - p.timestamp;
                if p.length == length && p.type_id == message.type_id {
                    (2u8, delta)
                } else {
                    (1u8, delta)
                }
            }
            _ => (0u8, message.timestamp),
        };
        let extended = ts_field >= EXTENDED_TIMESTAMP;
        let field = ts_field.min(EXTENDED_TIMESTAMP);

        let mut header = HeaderBytes::default();
        header.basic(fmt, message.csid);
        header.put(&field.to_be_bytes()[1..]);
        if fmt <= 1 {
            header.put(&length.to_be_bytes()[1..]);
            header.put(&[message.type_id]);
        }
        if fmt == 0 {
            header.put(&message.stream_id.to_le_bytes());
        }
        if extended {
            header.put(&ts_field.to_be_bytes());
        }
        out.put_header(header.bytes());
        let size = self.chunk_size as usize;
        let len = message.payload.len();
        out.put_payload(message.payload, 0..size.min(len));
        out.chunk_end();
        let mut continuation = HeaderBytes::default();
        continuation.basic(3, message.csid);
        if extended && !self.style.bare_continuations {
            continuation.put(&ts_field.to_be_bytes());
        }
        for start in (size..len).step_by(size.max(1)) {
            out.put_header(continuation.bytes());
            out.put_payload(message.payload, start..(start + size).min(len));
            out.chunk_end();
        }
        let sent = Sent {
            timestamp: message.timestamp,
            length,
            type_id: message.type_id,
            stream_id: message.stream_id,
        };
        match self.sent.iter_mut().find(|(id, _)| *id == message.csid) {
            Some((_, last)) => *last = sent,
            None => self.sent.push((message.csid, sent)),
        }
    }
}

/// Where a [`ChunkEncoder`] puts the chunks it makes: a buffer that
/// copies them ([`BytesMut`]), or one that keeps references to the
/// payload ([`super::outgoing::Outgoing`]).
pub trait ChunkSink {
    /// Appends a chunk header.
    fn put_header(&mut self, header: &[u8]);
    /// Appends `payload[range]`, a piece of the message being chunked.
    fn put_payload(&mut self, payload: &Bytes, range: std::ops::Range<usize>);
    /// A chunk ends here.
    fn chunk_end(&mut self) {}
}

impl ChunkSink for BytesMut {
    fn put_header(&mut self, header: &[u8]) {
        self.put_slice(header);
    }

    fn put_payload(&mut self, payload: &Bytes, range: std::ops::Range<usize>) {
        self.put_slice(&payload[range]);
    }
}

/// A message's chunks, copied, and where each ends.
#[derive(Default)]
struct Chunks {
    out: BytesMut,
    ends: Vec<usize>,
}

impl ChunkSink for Chunks {
    fn put_header(&mut self, header: &[u8]) {
        self.out.put_slice(header);
    }

    fn put_payload(&mut self, payload: &Bytes, range: std::ops::Range<usize>) {
        self.out.put_slice(&payload[range]);
    }

    fn chunk_end(&mut self) {
        self.ends.push(self.out.len());
    }
}

/// A chunk header being made: at most 3 bytes of basic header, 11 of
/// message header and 4 of extended timestamp.
#[derive(Default)]
struct HeaderBytes {
    bytes: [u8; 18],
    len: usize,
}

impl HeaderBytes {
    fn put(&mut self, bytes: &[u8]) {
        self.bytes[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    fn basic(&mut self, fmt: u8, csid: u32) {
        match csid {
            2..=63 => self.put(&[fmt << 6 | csid as u8]),
            64..=319 => self.put(&[fmt << 6, (csid - 64) as u8]),
            _ => {
                // 320..=65599; ids outside the encodable range are clamped to the largest.
                let id = csid.clamp(320, 65599) - 64;
                self.put(&[fmt << 6 | 1, (id & 0xFF) as u8, (id >> 8) as u8]);
            }
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn msg(csid: u32, timestamp: u32, type_id: u8, stream_id: u32, len: usize, fill: u8) -> RawMessage {
        RawMessage {
            csid,
            timestamp,
            type_id,
            stream_id,
            payload: Bytes::from(vec![fill; len]),
        }
    }

    fn decode_all(bytes: &[u8], chunk_size: u32) -> Result<Vec<RawMessage>, ChunkError> {
        let mut decoder = ChunkDecoder::new(ChunkLimits::default());
        decoder.chunk_size = chunk_size;
        decoder.push(bytes);
        let mut out = vec![];
        while let Some(m) = decoder.next_message()? {
            out.push(m);
        }
        Ok(out)
    }

    #[test]
    fn round_trip_with_header_compression() {
        let messages = vec![
            msg(4, 0, 9, 1, 300, 1),
            msg(4, 40, 9, 1, 300, 2),   // type 2 header
            msg(4, 80, 9, 1, 10, 3),    // type 1 header
            msg(6, 20, 8, 1, 5, 4),     // another chunk stream
            msg(4, 10, 9, 1, 10, 5),    // timestamp goes back: type 0
            msg(4, 10, 9, 2, 10, 6),    // other message stream: type 0
            msg(400, 7, 20, 0, 200, 7), // 3-byte basic header
            msg(70, 7, 20, 0, 0, 8),    // 2-byte basic header, empty payload
        ];
        let mut encoder = ChunkEncoder::new();
        let mut out = BytesMut::new();
        for m in &messages {
            encoder.encode(m, &mut out);
        }
        assert_eq!(decode_all(&out, 128).unwrap(), messages);
    }

    #[test]
    fn both_continuation_conventions_and_full_headers_decode_the_same() {
        for style in [
            ChunkStyle::default(),
            ChunkStyle {
                bare_continuations: true,
                ..ChunkStyle::default()
            },
            ChunkStyle {
                full_headers: true,
                ..ChunkStyle::default()
            },
        ] {
            let mut encoder = ChunkEncoder::new();
            encoder.set_style(style);
            let mut out = BytesMut::new();
            let sent = [
                msg(6, 0x00FF_FFF0, 8, 1, 300, 1),
                msg(6, 0x0100_0010, 8, 1, 300, 2),
                msg(6, 0x0100_0030, 8, 1, 300, 3),
            ];
            for m in &sent {
                encoder.encode(m, &mut out);
            }
            let mut decoder = ChunkDecoder::new(ChunkLimits::default());
            decoder.push(&out);
            for m in &sent {
                let got = decoder.next_message().unwrap().unwrap();
                assert_eq!(
                    (got.timestamp, got.payload.clone()),
                    (m.timestamp, m.payload.clone()),
                    "{style:?}"
                );
            }
        }
    }

    #[test]
    fn extended_timestamps_survive_continuation_chunks() {
        let messages = vec![msg(4, 0x0100_0000, 9, 1, 400, 1), msg(4, 0x0100_0040, 9, 1, 400, 2)];
        let mut encoder = ChunkEncoder::new();
        let mut out = BytesMut::new();
        for m in &messages {
            encoder.encode(m, &mut out);
        }
        assert_eq!(decode_all(&out, 128).unwrap(), messages);
    }

    #[test]
    fn continuation_without_repeated_extended_timestamp_is_accepted() {
        // Type 0, extended timestamp, 200-byte message at chunk size 128, and a type 3
        // continuation chunk that does not repeat the extended timestamp.
        let mut bytes = vec![0x04, 0xFF, 0xFF, 0xFF, 0, 0, 200, 9, 1, 0, 0, 0, 0x01, 0, 0, 0];
        bytes.extend(std::iter::repeat_n(0xAB, 128));
        bytes.push(0xC4);
        bytes.extend(std::iter::repeat_n(0xAB, 72));
        let messages = decode_all(&bytes, 128).unwrap();
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].timestamp, 0x0100_0000);
        assert_eq!(messages[0].payload.len(), 200);
        assert!(messages[0].payload.iter().all(|&b| b == 0xAB));
    }

    #[test]
    fn interleaved_chunk_streams_reassemble() {
        // Audio (csid 4) and video (csid 6) messages, chunks alternating.
        let mut a = ChunkEncoder::new();
        let mut v = ChunkEncoder::new();
        let audio = msg(4, 0, 8, 1, 300, 0xA);
        let video = msg(6, 0, 9, 1, 300, 0xB);
        let (mut ab, mut vb) = (BytesMut::new(), BytesMut::new());
        a.encode(&audio, &mut ab);
        v.encode(&video, &mut vb);
        // Each is: 12-byte header + 128, 1 + 128, 1 + 44.
        let mut wire = Vec::new();
        let cuts = [0usize, 140, 269, 314];
        for i in 0..3 {
            wire.extend_from_slice(&ab[cuts[i]..cuts[i + 1]]);
            wire.extend_from_slice(&vb[cuts[i]..cuts[i + 1]]);
        }
        assert_eq!(decode_all(&wire, 128).unwrap(), vec![audio, video]);
    }

    #[test]
    fn set_chunk_size_applies_to_the_next_chunk() {
        let mut encoder = ChunkEncoder::new();
        let mut out = BytesMut::new();
        let set = RawMessage {
            csid: 2,
            timestamp: 0,
            type_id: type_id::SET_CHUNK_SIZE,
            stream_id: 0,
            payload: Bytes::copy_from_slice(&4096u32.to_be_bytes()),
        };
        encoder.encode(&set, &mut out);
        encoder.set_chunk_size(4096);
        let big = msg(4, 0, 9, 1, 3000, 9);
        encoder.encode(&big, &mut out);
        let decoded = decode_all(&out, 128).unwrap();
        assert_eq!(decoded, vec![set, big]);
    }

    #[test]
    fn chunks_interleaved_across_chunk_streams_decode() {
        let mut encoder = ChunkEncoder::new();
        let video = msg(7, 40, 9, 1, 300, 9);
        let audio = msg(6, 42, 8, 1, 20, 8);
        let chunks = encoder.encode_chunks(&video);
        assert_eq!(
            chunks.iter().map(Bytes::len).collect::<Vec<_>>(),
            vec![12 + 128, 1 + 128, 1 + 44]
        );
        let mut whole = BytesMut::new();
        ChunkEncoder::new().encode(&video, &mut whole);
        assert_eq!(chunks.concat(), whole.to_vec());

        let mut wire = BytesMut::new();
        wire.extend_from_slice(&chunks[0]);
        encoder.encode(&audio, &mut wire);
        wire.extend_from_slice(&chunks[1]);
        wire.extend_from_slice(&chunks[2]);
        assert_eq!(decode_all(&wire, 128).unwrap(), vec![audio, video]);
    }

    #[test]
    fn forget_sends_a_type_0_header_next() {
        let mut encoder = ChunkEncoder::new();
        let mut out = BytesMut::new();
        encoder.encode(&msg(7, 0, 9, 1, 10, 1), &mut out);
        encoder.forget(7);
        let second = encoder.encode_chunks(&msg(7, 40, 9, 1, 10, 2));
        assert_eq!(second[0][0] >> 6, 0, "a type 0 header after forget");
    }

    #[test]
    fn abort_drops_the_partial_message() {
        let mut wire = BytesMut::new();
        let mut encoder = ChunkEncoder::new();
        let mut first = BytesMut::new();
        encoder.encode(&msg(4, 0, 9, 1, 300, 1), &mut first);
        wire.extend_from_slice(&first[..140]); // header + first chunk only
        let mut control = ChunkEncoder::new();
        control.encode(
            &RawMessage {
                csid: 2,
                timestamp: 0,
                type_id: type_id::ABORT,
                stream_id: 0,
                payload: Bytes::copy_from_slice(&4u32.to_be_bytes()),
            },
            &mut wire,
        );
        let mut fresh = ChunkEncoder::new();
        fresh.encode(&msg(4, 0, 9, 1, 10, 2), &mut wire);
        let decoded = decode_all(&wire, 128).unwrap();
        assert_eq!(decoded.len(), 2);
        assert_eq!(decoded[1].payload, Bytes::from(vec![2; 10]));
    }

    /// Decodes `wire` with `faults` until the first error.
    fn decode_with(wire: &[u8], faults: ReaderFaults) -> Result<usize, ChunkError> {
        let mut decoder = ChunkDecoder::new(ChunkLimits::default());
        decoder.set_faults(faults);
        decoder.push(wire);
        let mut count = 0;
        while decoder.next_message()?.is_some() {
            count += 1;
        }
        Ok(count)
    }

    #[test]
    fn reader_faults_break_what_they_name() {
        let mut encoder = ChunkEncoder::new();
        let chunks = encoder.encode_chunks(&msg(7, 0, 9, 1, 300, 9));
        let abort = RawMessage {
            csid: 2,
            timestamp: 0,
            type_id: type_id::ABORT,
            stream_id: 0,
            payload: Bytes::copy_from_slice(&7u32.to_be_bytes()),
        };
        let mut aborted = BytesMut::from(&chunks[0][..]);
        encoder.encode(&abort, &mut aborted);
        encoder.forget(7);
        encoder.encode(&msg(7, 40, 9, 1, 300, 9), &mut aborted);
        assert_eq!(decode_with(&aborted, ReaderFaults::default()).unwrap(), 2);
        let ignored = ReaderFaults {
            aborts_ignored: true,
            ..ReaderFaults::default()
        };
        assert!(matches!(
            decode_with(&aborted, ignored),
            Err(ChunkError::InterruptedMessage { csid: 7, .. })
        ));

        let mut interleaved = BytesMut::from(&chunks[0][..]);
        encoder.encode(&msg(6, 0, 8, 1, 20, 8), &mut interleaved);
        let refused = ReaderFaults {
            interleaving_refused: true,
            ..ReaderFaults::default()
        };
        assert!(matches!(
            decode_with(&interleaved, refused),
            Err(ChunkError::Interleaved { csid: 6, other: 7 })
        ));
    }

    #[test]
    fn the_largest_legal_chunk_size_is_taken() {
        let mut bytes = vec![0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0x7F, 0xFF, 0xFF, 0xFF];
        // A 300-byte message in one chunk.
        bytes.extend([0x04, 0, 0, 0, 0, 0x01, 0x2C, 9, 1, 0, 0, 0]);
        bytes.extend([7; 300]);
        let mut decoder = ChunkDecoder::new(ChunkLimits::default());
        decoder.push(&bytes);
        let set = decoder.next_message().unwrap().unwrap();
        assert_eq!(set.type_id, type_id::SET_CHUNK_SIZE);
        let message = decoder.next_message().unwrap().unwrap();
        assert_eq!(message.payload.len(), 300);
        assert_eq!(decoder.chunk_size(), ChunkLimits::default().max_chunk_size);
    }

    #[test]
    fn hostile_headers_are_errors() {
        // Type 1 header on a fresh chunk stream.
        assert!(matches!(
            decode_all(&[0x44, 0, 0, 0, 0, 0, 1, 9, 0], 128),
            Err(ChunkError::NoPreviousHeader { csid: 4, fmt: 1 })
        ));
        // A 16 MiB message.
        assert!(matches!(
            decode_all(&[0x04, 0, 0, 0, 0xFF, 0xFF, 0xFF, 9, 1, 0, 0, 0], 128),
            Err(ChunkError::MessageTooLarge { .. })
        ));
        // Set Chunk Size 0.
        assert!(matches!(
            decode_all(&[0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0, 0], 128),
            Err(ChunkError::InvalidChunkSize { size: 0, .. })
        ));
        // Set Chunk Size with the top bit set (section 5.4.1: it MUST be zero).
        assert!(matches!(
            decode_all(&[0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0x80, 0, 0x04, 0], 128),
            Err(ChunkError::InvalidChunkSize { size: 0x8000_0400, .. })
        ));
        // New type 0 message while one is incomplete on the same chunk stream.
        let mut bytes = vec![0x04, 0, 0, 0, 0, 1, 0, 9, 1, 0, 0, 0];
        bytes.extend([0; 128]);
        bytes.extend([0x04, 0, 0, 0, 0, 0, 1, 9, 1, 0, 0, 0, 0]);
        assert!(matches!(
            decode_all(&bytes, 128),
            Err(ChunkError::InterruptedMessage {
                csid: 4,
                missing: 128,
                ..
            })
        ));
    }

    #[test]
    fn pending_bytes_are_bounded_across_chunk_streams() {
        let limits = ChunkLimits {
            max_pending_bytes: 1000,
            ..ChunkLimits::default()
        };
        let mut decoder = ChunkDecoder::new(limits);
        // 20 chunk streams each starting a 100 KB message and sending one 128-byte chunk.
        let mut result = Ok(None);
        for csid in 3..23u8 {
            let mut bytes = vec![csid, 0, 0, 0, 0x01, 0x86, 0xA0, 9, 1, 0, 0, 0];
            bytes.extend([0; 128]);
            decoder.push(&bytes);
            result = decoder.next_message();
            if result.is_err() {
                break;
            }
        }
        assert!(matches!(result, Err(ChunkError::TooMuchPending { limit: 1000, .. })));
    }

    fn arb_message() -> impl Strategy<Value = RawMessage> {
        (
            prop_oneof![2u32..10, 60u32..70, 300u32..330],
            prop_oneof![0u32..1000, 0xFF_FFF0u32..0x100_0010],
            prop_oneof![Just(8u8), Just(9u8), Just(18u8), Just(20u8)],
            0u32..3,
            proptest::collection::vec(any::<u8>(), 0..1500),
        )
            .prop_map(|(csid, timestamp, type_id, stream_id, payload)| RawMessage {
                csid,
                timestamp,
                type_id,
                stream_id,
                payload: Bytes::from(payload),
            })
    }

    proptest! {
        #[test]
        fn round_trip_any_messages_any_chunk_size(
            messages in proptest::collection::vec(arb_message(), 1..20),
            chunk_size in prop_oneof![1u32..300, Just(128u32), Just(4096u32), Just(65536u32)],
            split in 1usize..500,
        ) {
            let mut encoder = ChunkEncoder::new();
            encoder.set_chunk_size(chunk_size);
            let mut wire = BytesMut::new();
            for m in &messages {
                encoder.encode(m, &mut wire);
            }
            // Feed the bytes in arbitrary pieces.
            let mut decoder = ChunkDecoder::new(ChunkLimits::default());
            decoder.chunk_size = chunk_size;
            let mut decoded = vec![];
            for piece in wire.chunks(split) {
                decoder.push(piece);
                while let Some(m) = decoder.next_message().unwrap() {
                    decoded.push(m);
                }
            }
            prop_assert_eq!(decoder.bytes_received(), wire.len() as u64);
            prop_assert_eq!(decoded, messages);
        }

        #[test]
        fn interleaving_per_chunk_streams_round_trips(
            audio in proptest::collection::vec(any::<u8>(), 1..2000),
            video in proptest::collection::vec(any::<u8>(), 1..2000),
            chunk_size in 16u32..512,
        ) {
            // Split each message into its chunks and interleave them one by one.
            let a = RawMessage { csid: 4, timestamp: 5, type_id: 8, stream_id: 1, payload: Bytes::from(audio) };
            let v = RawMessage { csid: 6, timestamp: 5, type_id: 9, stream_id: 1, payload: Bytes::from(video) };
            let chunks = |m: &RawMessage| {
                let mut e = ChunkEncoder::new();
                e.set_chunk_size(chunk_size);
                let mut b = BytesMut::new();
                e.encode(m, &mut b);
                let mut pieces = vec![b.split_to(12 + (chunk_size as usize).min(m.payload.len())).to_vec()];
                while !b.is_empty() {
                    let n = 1 + (chunk_size as usize).min(b.len() - 1);
                    pieces.push(b.split_to(n).to_vec());
                }
                pieces
            };
            let (ac, vc) = (chunks(&a), chunks(&v));
            let mut wire = vec![];
            for i in 0..ac.len().max(vc.len()) {
                if let Some(p) = ac.get(i) { wire.extend_from_slice(p); }
                if let Some(p) = vc.get(i) { wire.extend_from_slice(p); }
            }
            let decoded = decode_all(&wire, chunk_size).unwrap();
            prop_assert_eq!(decoded.len(), 2);
            prop_assert!(decoded.contains(&a) && decoded.contains(&v));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..4096), split in 1usize..64) {
            let mut decoder = ChunkDecoder::new(ChunkLimits::default());
            for piece in bytes.chunks(split) {
                decoder.push(piece);
                while let Ok(Some(_)) = decoder.next_message() {}
            }
        }
    }
}
