//! A WebRTC offer as the server reads it for WHEP, WHIP and the WebSocket
//! channel: made one-way, parsed, answered with the server's codecs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(offer) = std::str::from_utf8(data) {
        reference_server::fuzzing::sdp_offer(offer);
    }
});
