//! AMF3 values (the commands of Flash Player with objectEncoding 3).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = media::amf::decode_amf3(data);
});
