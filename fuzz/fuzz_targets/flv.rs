//! FLV files and tags: the tag headers, audio and video headers, the AVC
//! configuration record and the SPS inside it, metadata.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use media::{flv, h264};

fuzz_target!(|data: &[u8]| {
    // The same bytes as one tag body of each kind, and as a whole file.
    let _ = flv::audio_header(data);
    let _ = flv::video_header(data);
    let _ = flv::composition_offset(data);
    let _ = flv::metadata_tracks(data);
    let _ = flv::opus_packet(data);
    if let Ok(config) = h264::AvcConfig::parse(data) {
        for sps in &config.sps {
            let _ = h264::SpsInfo::parse(sps);
        }
    }
    let _ = h264::is_random_access(data);
    if let Ok(tags) = flv::read_tags(&Bytes::copy_from_slice(data)) {
        for tag in tags {
            let _ = flv::audio_header(&tag.data);
            let _ = flv::video_header(&tag.data);
        }
    }
});
