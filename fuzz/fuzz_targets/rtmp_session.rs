//! The server's RTMP session after the handshake (chunks, control
//! messages, commands in AMF0 and AMF3, media), fed in any pieces, with its
//! events answered the way the server answers a client it lets in: connect
//! accepted, publishes and plays started, calls answered.
#![no_main]

use libfuzzer_sys::fuzz_target;
use media::rtmp::ObjectEncoding;
use reference_server::config::Config;
use reference_server::rtmp::session::{Event, Session, SessionConfig};

fuzz_target!(|data: &[u8]| {
    let mut session = Session::new(SessionConfig::from_config(&Config::default()), "fuzz".into());
    let mut events = Vec::new();
    for piece in fuzz::pieces(data) {
        if session.handle_input(piece, &mut events).is_err() {
            return;
        }
        while !events.is_empty() {
            for event in std::mem::take(&mut events) {
                match event {
                    Event::Connect(_) => session.accept_connect(ObjectEncoding::Amf0),
                    Event::Publish { stream_id, .. } => session.publish_started(stream_id),
                    Event::Play { stream_id, .. } => session.play_started(stream_id),
                    Event::SendData { transaction_id, .. } if transaction_id != 0.0 => {
                        session.call_result(transaction_id)
                    }
                    _ => {}
                }
            }
            if session.resume(&mut events).is_err() {
                return;
            }
        }
        // What the server would write; bounded by what the client sent.
        session.output().clear();
    }
});
