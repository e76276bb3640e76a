//! The bytes an endpoint has for its peer, without copying media.
//!
//! A player's chunks are mostly its stream's frames, which thousands of
//! players share: [`Outgoing`] keeps the pieces of a large frame (a
//! keyframe) as references to the frame ([`Bytes`] slices) and copies the
//! rest (chunk headers, commands, sound, ordinary pictures: a copy of a few
//! kilobytes costs less than a reference counted across threads) into one
//! buffer of its own, which therefore stays the size of ordinary writes.
//! It is a [`Buf`]: a writer takes it with vectored writes (tokio's
//! `write_all_buf` does, `writev`), the pieces in order.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::ops::Range;

use bytes::{Buf, Bytes, BytesMut};

use super::chunk::ChunkSink;

/// The pieces of a message at least this long are referenced, not copied.
const SHARE_MIN: usize = 8 * 1024;
/// What the copy buffer starts with: commands and statuses fit.
const COPIED_CAPACITY: usize = 4 * 1024;
/// A copy buffer grown past this is given back once this many writes in a
/// row were no bigger: a player keeps room for its usual writes, not for a
/// moment of several frames in one write (thousands of players would each
/// keep their largest), and one whose every write is bigger keeps its room
/// (no buffer made anew per write).
const COPIED_KEPT: usize = 16 * 1024;
const SMALL_WRITES: u8 = 8;
/// A write bigger than this (a cached group of pictures sent at once) is a
/// burst: its room is given back as soon as it is written.
const BURST: usize = 64 * 1024;
/// Pieces the queue keeps room for once written (a cached group of
/// pictures sent at once needs hundreds).
const PARTS_KEPT: usize = 64;

/// One piece of the output, in order.
#[derive(Debug)]
enum Part {
    /// The next this many bytes of the copy buffer.
    Copied(usize),
    /// A piece of a message's payload, shared.
    Shared(Bytes),
}

/// Bytes queued for the peer. See the module docs.
#[derive(Debug)]
pub struct Outgoing {
    parts: VecDeque<Part>,
    /// What was copied; `copied[read..]` is not written yet.
    copied: BytesMut,
    read: usize,
    /// Bytes not written yet.
    remaining: usize,
    /// Bytes of the copy buffer written since the last [`Outgoing::trim`].
    written: usize,
    /// Writes in a row no bigger than `COPIED_KEPT` into a copy buffer
    /// grown past it.
    small_writes: u8,
}

impl Default for Outgoing {
    fn default() -> Self {
        Outgoing {
            parts: VecDeque::new(),
            copied: BytesMut::with_capacity(COPIED_CAPACITY),
            read: 0,
            remaining: 0,
            written: 0,
            small_writes: 0,
        }
    }
}

impl Outgoing {
    /// Bytes not written yet.
    pub fn len(&self) -> usize {
        self.remaining
    }

    /// Whether everything was written.
    pub fn is_empty(&self) -> bool {
        self.remaining == 0
    }

    /// Appends a copy of `bytes`.
    pub fn put_copy(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.copied.extend_from_slice(bytes);
        self.remaining += bytes.len();
        match self.parts.back_mut() {
            Some(Part::Copied(len)) => *len += bytes.len(),
            _ => self.parts.push_back(Part::Copied(bytes.len())),
        }
    }

    /// Appends `bytes` by reference.
    pub fn put_shared(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.remaining += bytes.len();
            self.parts.push_back(Part::Shared(bytes));
        }
    }

    /// Drops what was not written yet.
    pub fn clear(&mut self) {
        let unwritten = self.remaining;
        self.advance(unwritten);
    }

    /// Everything not written yet, in one piece (copied if in several),
    /// as written: for tests and for writers that need it whole.
    pub fn take_all(&mut self) -> Bytes {
        let len = self.remaining;
        self.copy_to_bytes(len)
    }

    /// Once everything is written: gives back the room a burst grew the
    /// output to, so that a connection keeps what its usual writes need.
    pub fn trim(&mut self) {
        if !self.is_empty() {
            return;
        }
        let written = std::mem::take(&mut self.written);
        self.small_writes = match written {
            _ if self.copied.capacity() <= COPIED_KEPT => 0,
            0..=COPIED_KEPT => self.small_writes + 1,
            _ => 0,
        };
        if written > BURST || self.small_writes >= SMALL_WRITES {
            self.copied = BytesMut::with_capacity(COPIED_CAPACITY);
            self.small_writes = 0;
        }
        if self.parts.capacity() > PARTS_KEPT {
            self.parts = VecDeque::new();
        }
    }

    /// Once everything is written: gives back all its room, for a writer
    /// that will write little for a while (a connection whose plays are
    /// written by someone else).
    pub fn release(&mut self) {
        if self.is_empty() {
            self.copied = BytesMut::new();
            self.parts = VecDeque::new();
            self.written = 0;
            self.small_writes = 0;
        }
    }

    /// The room held: the copy buffer's capacity (for tests).
    pub fn capacity(&self) -> usize {
        self.copied.capacity()
    }
}

impl Buf for Outgoing {
    fn remaining(&self) -> usize {
        self.remaining
    }

    fn chunk(&self) -> &[u8] {
        match self.parts.front() {
            Some(Part::Copied(len)) => &self.copied[self.read..self.read + len],
            Some(Part::Shared(bytes)) => bytes,
            None => &[],
        }
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut offset = self.read;
        let mut filled = 0;
        for (part, slot) in self.parts.iter().zip(dst.iter_mut()) {
            *slot = IoSlice::new(match part {
                Part::Copied(len) => {
                    offset += len;
                    &self.copied[offset - len..offset]
                }
                Part::Shared(bytes) => bytes,
            });
            filled += 1;
        }
        filled
    }

    fn advance(&mut self, mut n: usize) {
        assert!(n <= self.remaining, "advanced past the end of the output");
        self.remaining -= n;
        while n > 0 {
            let Some(front) = self.parts.front_mut() else { break };
            match front {
                Part::Copied(len) => {
                    let taken = n.min(*len);
                    self.read += taken;
                    self.written += taken;
                    *len -= taken;
                    n -= taken;
                    if *len == 0 {
                        self.parts.pop_front();
                    }
                }
                Part::Shared(bytes) => {
                    let taken = n.min(bytes.len());
                    bytes.advance(taken);
                    n -= taken;
                    if bytes.is_empty() {
                        self.parts.pop_front();
                    }
                }
            }
        }
        if self.parts.is_empty() {
            self.copied.clear();
            self.read = 0;
        }
    }
}

impl ChunkSink for Outgoing {
    fn put_header(&mut self, header: &[u8]) {
        self.put_copy(header);
    }

    fn put_payload(&mut self, payload: &Bytes, range: Range<usize>) {
        if payload.len() < SHARE_MIN {
            self.put_copy(&payload[range]);
        } else {
            self.put_shared(payload.slice(range));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written_by_vectored_writes(out: &mut Outgoing, max_write: usize) -> Vec<u8> {
        let mut written = Vec::new();
        while out.has_remaining() {
            let mut slices = [IoSlice::new(&[]); 4];
            let n = out.chunks_vectored(&mut slices);
            let mut budget = max_write;
            let mut took = 0;
            for slice in &slices[..n] {
                let part = &slice[..slice.len().min(budget)];
                written.extend_from_slice(part);
                budget -= part.len();
                took += part.len();
            }
            out.advance(took);
        }
        written
    }

    #[test]
    fn pieces_come_out_in_order_however_writes_split_them() {
        let frame = Bytes::from((0..20_000u32).map(|i| i as u8).collect::<Vec<_>>());
        for max_write in [1, 7, 300, 4096, usize::MAX] {
            let mut out = Outgoing::default();
            let mut expected = Vec::new();
            for (header, range) in [(&b"ab"[..], 0..1000), (b"c", 1000..1100), (b"", 1100..20_000)] {
                out.put_header(header);
                out.put_payload(&frame, range.clone());
                expected.extend_from_slice(header);
                expected.extend_from_slice(&frame[range]);
            }
            assert_eq!(out.len(), expected.len());
            assert_eq!(
                written_by_vectored_writes(&mut out, max_write),
                expected,
                "writes of {max_write}"
            );
            assert!(out.is_empty());
            assert_eq!(out.chunk(), b"");
        }
    }

    #[test]
    fn released_it_holds_no_room_until_written_to_and_keeps_unwritten_bytes() {
        let mut out = Outgoing::default();
        out.put_copy(&[1; 3000]);
        out.release();
        assert_eq!(out.len(), 3000, "nothing unwritten is dropped");
        out.take_all();
        out.release();
        assert_eq!((out.capacity(), out.parts.capacity()), (0, 0));
        out.put_copy(b"after");
        assert_eq!(&out.take_all()[..], b"after");
    }

    #[test]
    fn a_large_frame_is_referenced_a_small_one_copied() {
        let keyframe = Bytes::from(vec![7u8; 30_000]);
        let picture = Bytes::from(vec![8u8; 3_000]);
        let mut out = Outgoing::default();
        for (frame, header) in [(&keyframe, &[1u8, 2, 3][..]), (&picture, &[4])] {
            out.put_header(header);
            for start in (0..frame.len()).step_by(4096) {
                out.put_payload(frame, start..(start + 4096).min(frame.len()));
            }
        }
        // The header copied, the keyframe's 8 pieces referenced, then the
        // next header and the small picture copied together.
        assert_eq!(out.parts.len(), 10);
        assert!(matches!(out.parts[1], Part::Shared(ref b) if b.as_ptr() == keyframe.as_ptr()));
        assert_eq!(out.copied.len(), 3 + 1 + 3_000);
        let bytes = out.take_all();
        assert_eq!(bytes.len(), 33_004);
        assert_eq!(&bytes[3..30_003], &keyframe[..]);
    }

    #[test]
    fn a_burst_does_not_keep_its_room_and_ordinary_writes_do() {
        let mut out = Outgoing::default();
        let picture = Bytes::from(vec![1u8; 3_000]);
        // A cached group of pictures written at once.
        for _ in 0..50 {
            out.put_header(&[0; 12]);
            out.put_payload(&picture, 0..3_000);
        }
        let _ = out.take_all();
        out.trim();
        assert!(out.capacity() <= COPIED_KEPT);
        // Writes of several pictures keep their room while they come...
        for _ in 0..20 {
            for _ in 0..7 {
                out.put_payload(&picture, 0..3_000);
            }
            let _ = out.take_all();
            out.trim();
        }
        let grown = out.capacity();
        assert!(grown > COPIED_KEPT);
        // ...and give it back after a run of single pictures (a keyframe
        // with them, referenced, takes no room).
        let keyframe = Bytes::from(vec![5u8; 30_000]);
        for i in 0..SMALL_WRITES {
            assert_eq!(out.capacity(), grown, "after {i} small writes");
            out.put_payload(&picture, 0..3_000);
            out.put_payload(&keyframe, 0..30_000);
            let _ = out.take_all();
            out.trim();
        }
        assert!(out.capacity() <= COPIED_CAPACITY);
    }
}
