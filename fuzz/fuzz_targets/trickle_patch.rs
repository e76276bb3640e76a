//! A trickle-ICE or ICE-restart `PATCH` of a WHIP/WHEP session: its
//! Content-Type, its If-Match and its body, split at the first two newlines.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(3, '\n');
    let content_type = parts.next().filter(|s| !s.is_empty());
    let if_match = parts.next().filter(|s| !s.is_empty());
    let body = parts.next().unwrap_or_default();
    reference_server::fuzzing::trickle_patch(content_type, if_match, body);
});
