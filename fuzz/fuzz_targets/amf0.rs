//! AMF0 values and sequences of them (commands, data messages).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = media::amf::decode_amf0(data);
    let _ = media::amf::decode_amf0_sequence(data);
});
