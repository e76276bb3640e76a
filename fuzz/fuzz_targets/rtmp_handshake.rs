//! The server's RTMP handshake (rml_rtmp's, as `rtmp::connection` drives
//! it), C0C1 and C2 arriving in any pieces.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};

fuzz_target!(|data: &[u8]| {
    let mut handshake = Handshake::new(PeerType::Server);
    for piece in fuzz::pieces(data) {
        match handshake.process_bytes(piece) {
            Ok(HandshakeProcessResult::InProgress { .. }) => {}
            Ok(HandshakeProcessResult::Completed { .. }) | Err(_) => break,
        }
    }
});
