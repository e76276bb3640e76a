//! The chunk decoder, with the limits the server uses, fed in any pieces;
//! every message it gives is decoded as well.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use media::rtmp::{ChunkDecoder, ChunkLimits, Message};

fuzz_target!(|data: &[u8]| {
    let mut decoder = ChunkDecoder::new(ChunkLimits {
        max_message_size: 1 << 20,
        max_chunk_size: 1 << 16,
        max_pending_bytes: 1 << 21,
        ..ChunkLimits::default()
    });
    for piece in fuzz::pieces(data) {
        decoder.push(piece);
        loop {
            match decoder.next_message() {
                Ok(Some(raw)) => {
                    let _ = Message::decode(raw.type_id, Bytes::clone(&raw.payload));
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
