//! A datagram on the WebRTC UDP port, routed to its peer (STUN USERNAME).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    reference_server::fuzzing::udp_datagram(data);
});
