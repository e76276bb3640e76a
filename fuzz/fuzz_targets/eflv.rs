//! Enhanced RTMP tag bodies (media::eflv): ModEx, multitrack, batched
//! packets; and the server's classification of a publisher's audio and
//! video messages. Whatever parses completely writes back to the same
//! header and packets.
#![no_main]

use libfuzzer_sys::fuzz_target;
use media::eflv::{self, Packet};
use media::flv::TagKind;

fuzz_target!(|data: &[u8]| {
    for kind in [TagKind::Audio, TagKind::Video] {
        let Ok(Some(tag)) = eflv::parse(kind, data) else {
            continue;
        };
        let packets: Result<Vec<Packet>, _> = tag.packets().collect();
        let Ok(packets) = packets else { continue };
        for packet in &packets {
            assert!(packet.data.len() <= data.len());
        }
        let mut written = Vec::new();
        if eflv::write(&mut written, &tag.header, &packets).is_ok() {
            let again = eflv::parse(kind, &written)
                .expect("what write made parses")
                .expect("enhanced");
            assert_eq!(again.header, tag.header);
            let back: Vec<Packet> = again.packets().collect::<Result<_, _>>().expect("its packets parse");
            assert_eq!(back, packets);
        }
    }
    reference_server::fuzzing::media_frame(false, data);
    reference_server::fuzzing::media_frame(true, data);
});
