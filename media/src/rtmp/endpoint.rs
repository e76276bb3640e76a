//! One side of an RTMP connection after the handshake, sans-IO, whatever
//! its role: the server's session, the suite's client and the replayer each
//! hold one and add only what their role decides.
//!
//! An [`Endpoint`] owns the chunk stream in both directions and the control
//! duties every endpoint has ([`Control`]): bytes from the peer go in with
//! [`Endpoint::receive`] and come out as whole messages from
//! [`Endpoint::next_message`]; messages to the peer go in with
//! [`Endpoint::send`] and come out as bytes in [`Endpoint::output`]. On the
//! way it answers Ping Requests, and acknowledges the bytes received exactly
//! when each window the peer announced fills: input is handed to the chunk
//! decoder up to the next window boundary at a time, so the Acknowledgement
//! carries the exact running total, however the bytes were split by reads.
//! A Set Chunk Size sent applies to the chunks after it.

use bytes::BytesMut;

use super::outgoing::Outgoing;

use super::chunk::{ChunkDecoder, ChunkEncoder, ChunkError, ChunkLimits, MessageRef, RawMessage};
use super::control::Control;
use super::csid;
use super::message::{type_id, Message};

/// One side of an RTMP connection. See the module docs.
#[derive(Debug)]
pub struct Endpoint {
    decoder: ChunkDecoder,
    encoder: ChunkEncoder,
    control: Control,
    /// Bytes received but not yet given to the decoder: past the next
    /// window boundary, until that window's Acknowledgement is out.
    held: BytesMut,
    output: Outgoing,
    /// What it sent on its own during the last `next_message` (at most a
    /// Ping Response and an Acknowledgement).
    answered: Vec<Message>,
}

impl Endpoint {
    /// An endpoint at the start of a connection, its decoder bounded by `limits`.
    pub fn new(limits: ChunkLimits) -> Endpoint {
        Endpoint {
            decoder: ChunkDecoder::new(limits),
            encoder: ChunkEncoder::new(),
            control: Control::default(),
            held: BytesMut::new(),
            output: Outgoing::default(),
            answered: Vec::new(),
        }
    }

    /// Bytes from the peer; their messages come out of [`next_message`](Self::next_message).
    pub fn receive(&mut self, bytes: &[u8]) {
        if !self.held.is_empty() {
            self.held.extend_from_slice(bytes);
            return;
        }
        let (now, later) = bytes.split_at(self.room().min(bytes.len()));
        self.decoder.push(now);
        self.held.extend_from_slice(later);
    }

    /// The next whole message from the peer, `Ok(None)` until more bytes
    /// come. Control duties are done as messages pass: a Window
    /// Acknowledgement Size is noted, a Ping Request answered, and an
    /// Acknowledgement queued whenever a window has filled.
    pub fn next_message(&mut self) -> Result<Option<RawMessage>, ChunkError> {
        self.answered.clear();
        loop {
            if let Some(raw) = self.decoder.next_message()? {
                if matches!(raw.type_id, type_id::WINDOW_ACK_SIZE | type_id::USER_CONTROL) {
                    // A malformed one is the caller's to judge when it decodes it.
                    if let Ok(message) = Message::decode(raw.type_id, raw.payload.clone()) {
                        if let Some(answer) = self.control.on_message(&message) {
                            self.answer(answer);
                        }
                    }
                }
                return Ok(Some(raw));
            }
            if let Some(ack) = self.control.acknowledgement(self.decoder.bytes_received()) {
                self.answer(ack);
            }
            if self.held.is_empty() {
                return Ok(None);
            }
            let piece = self.held.split_to(self.room().min(self.held.len()));
            self.decoder.push(&piece);
        }
    }

    fn answer(&mut self, message: Message) {
        self.send(csid::CONTROL, 0, 0, &message);
        self.answered.push(message);
    }

    /// What the endpoint sent on its own during the last
    /// [`next_message`](Self::next_message) call (a Ping Response, an
    /// Acknowledgement), for callers that log the wire.
    pub fn answered(&self) -> &[Message] {
        &self.answered
    }

    /// Bytes the decoder may take before the next Acknowledgement is due.
    fn room(&self) -> usize {
        match self.control.until_acknowledgement(self.decoder.bytes_received()) {
            // At a boundary whose Acknowledgement is not out yet: nothing
            // until it is (next_message sends it, then feeds on).
            Some(room) => usize::try_from(room).unwrap_or(usize::MAX),
            None => usize::MAX,
        }
    }

    /// Queues `message` for the peer on chunk stream `csid`.
    pub fn send(&mut self, csid: u32, stream_id: u32, timestamp: u32, message: &Message) {
        let (type_id, payload) = message.encode();
        self.send_raw(&RawMessage {
            csid,
            timestamp,
            type_id,
            stream_id,
            payload,
        });
    }

    /// Queues a message for the peer as it is (a [`RawMessage`], or a
    /// [`MessageRef`] to its parts). A Set Chunk Size changes the chunk
    /// size of the messages after it.
    pub fn send_raw<'a>(&mut self, message: impl Into<MessageRef<'a>>) {
        let message = message.into();
        self.encoder.encode(message, &mut self.output);
        if message.type_id == type_id::SET_CHUNK_SIZE {
            if let Ok(Message::SetChunkSize(size)) = Message::decode(message.type_id, message.payload.clone()) {
                self.encoder.set_chunk_size(size);
            }
        }
    }

    /// The chunks of `message`, each with its header, for the caller to
    /// write itself: interleaved with other chunk streams' or abandoned part
    /// way (see [`super::ChunkEncoder::encode_chunks`]).
    pub fn chunks(&mut self, message: &RawMessage) -> Vec<bytes::Bytes> {
        self.encoder.encode_chunks(message)
    }

    /// The next message on `csid` goes with a full (type 0) header.
    pub fn forget_chunk_stream(&mut self, csid: u32) {
        self.encoder.forget(csid);
    }

    /// Sends Set Chunk Size and uses `size` from the next message on.
    pub fn set_chunk_size(&mut self, size: u32) {
        self.send(csid::CONTROL, 0, 0, &Message::SetChunkSize(size));
    }

    /// Reads the peer's continuation chunks as `continuations` says.
    pub fn set_continuations(&mut self, continuations: super::Continuations) {
        self.decoder.set_continuations(continuations);
    }

    /// Reads the peer's chunks with `faults` (a quirk's).
    pub fn set_reader_faults(&mut self, faults: super::ReaderFaults) {
        self.decoder.set_faults(faults);
    }

    /// Writes chunk headers in `style` from the next message on.
    pub fn set_chunk_style(&mut self, style: super::ChunkStyle) {
        self.encoder.set_style(style);
    }

    /// The chunk size of the messages this side sends.
    pub fn chunk_size(&self) -> u32 {
        self.encoder.chunk_size()
    }

    /// The bytes to send to the peer, media referenced rather than
    /// copied; the caller writes them (a [`bytes::Buf`]: vectored writes).
    pub fn output(&mut self) -> &mut Outgoing {
        &mut self.output
    }

    /// The output was all written: gives back what a burst (a cached group
    /// of pictures sent to a player at once) grew it to, so that a
    /// connection keeps the room its usual writes need, not its largest
    /// moment.
    pub fn output_written(&mut self) {
        self.output.trim();
    }

    /// Bytes of the peer's taken into messages so far (the running total
    /// Acknowledgements carry), not counting any held back.
    pub fn bytes_received(&self) -> u64 {
        self.decoder.bytes_received()
    }

    /// Bytes received but not yet part of a returned message.
    pub fn buffered(&self) -> usize {
        self.decoder.buffered() + self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtmp::message::UserControl;

    #[test]
    fn pictures_go_out_by_reference_and_a_burst_keeps_no_room() {
        let mut endpoint = Endpoint::new(ChunkLimits::default());
        endpoint.set_chunk_size(4096);
        let picture = bytes::Bytes::from(vec![0x17; 30_000]);
        // A cached group of pictures written at once.
        for i in 0..10 {
            endpoint.send(csid::VIDEO, 1, i * 40, &Message::Video(picture.clone()));
        }
        let output = endpoint.output();
        assert!(output.len() > 300_000);
        assert!(
            output.capacity() <= 4096,
            "headers copied, pictures referenced: no growth"
        );
        let bytes = output.take_all();
        endpoint.output_written();
        assert!(endpoint.output().is_empty());
        let mut reader = Endpoint::new(ChunkLimits::default());
        reader.receive(&bytes);
        let got = drain(&mut reader);
        assert_eq!(got.len(), 11, "Set Chunk Size and ten pictures");
        assert!(got[1..].iter().all(|m| *m == Message::Video(picture.clone())));
    }

    fn peer_bytes(messages: &[Message]) -> Vec<u8> {
        let mut peer = Endpoint::new(ChunkLimits::default());
        for message in messages {
            peer.send(csid::COMMAND, 0, 0, message);
        }
        peer.output().take_all().to_vec()
    }

    fn drain(endpoint: &mut Endpoint) -> Vec<Message> {
        let mut messages = Vec::new();
        while let Some(raw) = endpoint.next_message().unwrap() {
            messages.push(Message::decode(raw.type_id, raw.payload).unwrap());
        }
        messages
    }

    fn sent(endpoint: &mut Endpoint) -> Vec<Message> {
        let mut reader = Endpoint::new(ChunkLimits::default());
        let bytes = endpoint.output().take_all();
        reader.receive(&bytes);
        drain(&mut reader)
    }

    #[test]
    fn acknowledgements_carry_exact_window_multiples_however_bytes_arrive() {
        let messages: Vec<Message> = std::iter::once(Message::WindowAckSize(100))
            .chain((0..20).map(|i| Message::UserControl(UserControl::StreamBegin(i))))
            .chain(std::iter::once(Message::SetPeerBandwidth { size: 1, limit_type: 0 }))
            .collect();
        let bytes = peer_bytes(&messages);
        for read in [1, 7, 64, bytes.len()] {
            let mut endpoint = Endpoint::new(ChunkLimits::default());
            let mut got = Vec::new();
            for piece in bytes.chunks(read) {
                endpoint.receive(piece);
                got.extend(drain(&mut endpoint));
            }
            assert_eq!(got, messages, "read size {read}");
            let acks: Vec<Message> = sent(&mut endpoint);
            // Every window since the connection began, the bytes before
            // the window was announced included; bytes already decoded when
            // the window became known are acknowledged at once, in one.
            let expected: Vec<Message> = if read == bytes.len() {
                vec![Message::Acknowledgement(read as u32)]
            } else {
                (1..)
                    .map(|n| 100 * n)
                    .take_while(|total| *total as usize <= bytes.len())
                    .map(Message::Acknowledgement)
                    .collect()
            };
            assert!(!expected.is_empty());
            assert_eq!(acks, expected, "read size {read}");
        }
    }

    #[test]
    fn a_ping_is_answered_and_a_sent_chunk_size_applies_after_it() {
        let mut endpoint = Endpoint::new(ChunkLimits::default());
        endpoint.receive(&peer_bytes(&[Message::UserControl(UserControl::PingRequest(77))]));
        assert!(endpoint.next_message().unwrap().is_some());
        assert_eq!(
            endpoint.answered(),
            [Message::UserControl(UserControl::PingResponse(77))]
        );
        assert!(endpoint.next_message().unwrap().is_none());
        assert!(endpoint.answered().is_empty());
        endpoint.set_chunk_size(4096);
        assert_eq!(endpoint.chunk_size(), 4096);
        let big = Message::Audio(bytes::Bytes::from(vec![0xAF; 1000]));
        endpoint.send(csid::AUDIO, 1, 0, &big);
        assert_eq!(
            sent(&mut endpoint),
            [
                Message::UserControl(UserControl::PingResponse(77)),
                Message::SetChunkSize(4096),
                big
            ]
        );
    }
}
