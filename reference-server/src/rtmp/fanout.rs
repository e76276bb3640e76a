//! RTMP players written from their stream's fan-out.
//!
//! A play whose frames all go out as they come (no transcoder, no
//! Enhanced RTMP form to make, not paused, both tracks taken) and whose
//! connection has nothing left to write hands its subscription to the
//! stream ([`Subscription::drive`]). The task that pushes a frame then
//! writes it to every such player's socket itself, encoded once for all of
//! them, without waking a task per player: the way nginx-rtmp serves its
//! players, at about its CPU (docs/BENCHMARKS.md, "A fan-out prototype").
//!
//! Anything else hands the play back to its connection's task, the frame
//! that could not be written delivered first: a publication change, a
//! frame the player takes in another form, a socket that would block (a
//! slow player keeps its own pace and its own catching up), or a write
//! the socket took in part (its rest goes out first). The connection also
//! takes a play back, synchronously, when a command changes what it sends
//! (pause, receiveAudio, receiveVideo, closeStream, play2) and when it
//! ends.
//!
//! The fan-out writes with type 0 headers on chunk streams of its own, so
//! the connection's compressed headers on the usual ones stay true.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Buf, Bytes, BytesMut};
use media::rtmp::enhanced::Capabilities;
use media::rtmp::{ChunkEncoder, MessageRef};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::enhanced::{self, Form};
use crate::hub::{Delivery, Frame, Made, MediaKind, Seat, Sink, Subscription, Take};
use crate::metrics::Metrics;

/// The chunk streams of the messages the fan-out writes.
pub mod csid {
    /// Sound.
    pub const AUDIO: u32 = 8;
    /// Pictures.
    pub const VIDEO: u32 = 9;
    /// Data messages (`onMetaData`).
    pub const DATA: u32 = 10;
}

/// A connection's socket, shared by its task and the fan-outs that write
/// to it. Their writes never interleave: the task marks when it writes,
/// and a fan-out writes only whole messages, between the task's writes.
pub struct Wire {
    socket: TcpStream,
    state: Mutex<WireState>,
    /// The task has written all it had and is waiting: a play may be
    /// handed to the fan-out.
    idle: AtomicBool,
}

#[derive(Default)]
struct WireState {
    /// The connection's task is writing.
    writing: bool,
    /// The rest of a message a fan-out wrote in part: the task writes it
    /// before anything else.
    rest: Option<Bytes>,
}

/// How a fan-out's write went.
enum Written {
    All,
    /// In part: the rest waits for the connection's task.
    Part,
    /// Not at all: the socket would block, or the task is writing.
    None,
}

impl Wire {
    pub fn new(socket: TcpStream) -> Wire {
        Wire {
            socket,
            state: Mutex::default(),
            idle: AtomicBool::new(false),
        }
    }

    pub fn socket(&self) -> &TcpStream {
        &self.socket
    }

    /// Reads what the client sent (cancel safe).
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            self.socket.readable().await?;
            match self.socket.try_read(buf) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                read => return read,
            }
        }
    }

    /// Writes what a fan-out left unwritten, then all of `out`, vectored
    /// (a frame's pieces are written from the frame itself). No fan-out
    /// writes meanwhile, nor after a write cut short (a timeout), until a
    /// later one has written the rest.
    pub async fn write_all(&self, out: &mut impl Buf) -> io::Result<()> {
        let mut writing = Writing {
            wire: self,
            rest: None,
            done: false,
        };
        writing.rest = {
            let mut state = self.lock();
            state.writing = true;
            state.rest.take()
        };
        if let Some(rest) = writing.rest.as_mut() {
            self.write_buf(rest).await?;
        }
        writing.rest = None;
        self.write_buf(out).await?;
        writing.done = true;
        Ok(())
    }

    /// Ends the sending side (the client reads what was written, then the end).
    pub fn shutdown(&self) -> io::Result<()> {
        socket2::SockRef::from(&self.socket).shutdown(std::net::Shutdown::Write)
    }

    /// Whether a fan-out left part of a message to write.
    pub fn has_rest(&self) -> bool {
        self.lock().rest.is_some()
    }

    async fn write_buf(&self, out: &mut impl Buf) -> io::Result<()> {
        while out.has_remaining() {
            self.socket.writable().await?;
            let result = {
                let mut slices = [io::IoSlice::new(&[]); 64];
                let n = out.chunks_vectored(&mut slices);
                self.socket.try_write_vectored(&slices[..n])
            };
            match result {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => out.advance(written),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// Writes `message` now if the socket takes it without waiting and the
    /// connection's task is not writing.
    fn write_now(&self, message: &Bytes) -> Written {
        let mut state = self.lock();
        if state.writing || state.rest.is_some() {
            return Written::None;
        }
        match self.socket.try_write(message) {
            Ok(n) if n == message.len() => Written::All,
            Ok(0) | Err(_) => Written::None,
            Ok(n) => {
                state.rest = Some(message.slice(n..));
                Written::Part
            }
        }
    }

    /// Whether the connection's task said it has nothing left to write.
    pub fn set_idle(&self, idle: bool) {
        self.idle.store(idle, Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WireState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A write of the connection's task: what it has not written of a
/// fan-out's rest goes back for the next write; only a write that went
/// whole lets the fan-outs write again.
struct Writing<'a> {
    wire: &'a Wire,
    rest: Option<Bytes>,
    done: bool,
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        let mut state = self.wire.lock();
        if let Some(rest) = self.rest.take().filter(|rest| !rest.is_empty()) {
            state.rest = Some(rest);
        }
        if self.done {
            state.writing = false;
        }
    }
}

/// What a play and its connection share about driving it.
#[derive(Default)]
pub struct Steering {
    /// Its place in the stream's fan-out.
    pub seat: Arc<Seat>,
    /// The session sends the play's frames as they come: playing, not
    /// paused, both tracks on, no keyframe awaited.
    plain: AtomicBool,
}

impl Steering {
    /// Says whether the session sends the play's frames as they come; if
    /// not, takes the play back from the fan-out.
    pub fn set_plain(&self, plain: bool) {
        self.plain.store(plain, Ordering::Relaxed);
        if !plain {
            self.seat.recall();
        }
    }

    /// Whether the play may be handed to the fan-out now, as far as its
    /// connection knows.
    pub fn ready(&self, wire: &Wire) -> bool {
        self.plain.load(Ordering::Relaxed) && wire.idle.load(Ordering::Relaxed)
    }
}

/// What a player takes as it comes, so that the fan-out can write it.
#[derive(Clone)]
pub struct Plainness {
    /// What the player's connect announced (Enhanced RTMP); `None`: legacy.
    pub caps: Option<Capabilities>,
    /// The quirk `ertmp_ignored`: every frame goes as it is.
    pub ertmp_ignored: bool,
    /// The player takes Opus as it is.
    pub opus_as_is: bool,
}

impl Plainness {
    /// Whether `frame` goes to the player as it is: no form to make of it,
    /// no transcoder to replace it.
    pub fn takes(&self, frame: &Frame) -> bool {
        let as_is = self.ertmp_ignored || matches!(enhanced::form(frame, self.caps.as_ref()), Form::AsIs);
        // Opus goes as it is only to a player that announced it.
        let transcoded = frame.audio_codec() == Some(media::flv::AudioCodec::Opus) && !self.opus_as_is;
        as_is && !transcoded
    }
}

/// A driven play given back to its connection.
pub struct Back {
    pub subscription: Subscription,
    /// What the fan-out did not write, delivered first.
    pub refused: Option<Delivery>,
}

/// An RTMP player's sink: its frames, written to its socket.
pub struct RtmpSink {
    pub wire: Arc<Wire>,
    /// The player's message stream id.
    pub stream_id: u32,
    pub chunk_size: u32,
    pub plainness: Plainness,
    pub back: oneshot::Sender<Back>,
    pub metrics: Arc<Metrics>,
}

impl Sink for RtmpSink {
    fn take(&mut self, delivery: Delivery, made: &mut Made, _: &mut Subscription) -> Take {
        let Delivery::Frame(frame) = &delivery else {
            return Take::Refused(delivery);
        };
        if !self.plainness.takes(frame) {
            return Take::Refused(delivery);
        }
        let message = made.get_or_make(frame, self.stream_id, || chunks(frame, self.stream_id, self.chunk_size));
        // WebRTC players served before this one in the fan-out do not wait
        // behind the RTMP players' writes.
        crate::webrtc::udp::send_held();
        match self.wire.write_now(&message) {
            Written::All => {
                self.metrics.frames_out.inc();
                Take::Taken
            }
            Written::Part => {
                self.metrics.frames_out.inc();
                Take::TakenLast
            }
            Written::None => Take::Refused(delivery),
        }
    }

    fn give_back(self: Box<Self>, subscription: Subscription, refused: Option<Delivery>) {
        self.metrics.rtmp_fanout_given_back.inc();
        // A player gone drops it.
        let _ = self.back.send(Back { subscription, refused });
    }
}

/// `frame` as an RTMP message on the fan-out's chunk streams, type 0 header first.
fn chunks(frame: &Frame, stream_id: u32, chunk_size: u32) -> Bytes {
    let (csid, type_id) = match frame.kind {
        MediaKind::Audio => (csid::AUDIO, 8),
        MediaKind::Video => (csid::VIDEO, 9),
        MediaKind::Data => (csid::DATA, 18),
    };
    let mut encoder = ChunkEncoder::new();
    encoder.set_chunk_size(chunk_size);
    let mut out = BytesMut::with_capacity(frame.payload.len() + 18 + frame.payload.len() / chunk_size as usize * 5);
    encoder.encode(
        MessageRef {
            csid,
            timestamp: frame.timestamp,
            type_id,
            stream_id,
            payload: &frame.payload,
        },
        &mut out,
    );
    out.freeze()
}
