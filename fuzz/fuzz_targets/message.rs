//! Every RTMP message type: the first byte is the type id, the rest the
//! body; aggregates are taken apart as the server does.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use media::rtmp::message::split_aggregate;
use media::rtmp::Message;

fuzz_target!(|data: &[u8]| {
    let Some((type_id, body)) = data.split_first() else {
        return;
    };
    let body = Bytes::copy_from_slice(body);
    if let Ok(Message::Aggregate(payload)) = Message::decode(*type_id, body.clone()) {
        let _ = split_aggregate(0, &payload);
    }
    let _ = Message::decode(*type_id, body);
});
