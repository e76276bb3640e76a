//! A message of the WebSocket signalling channel (docs/signalling.md).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        reference_server::fuzzing::websocket_message(text);
    }
});
