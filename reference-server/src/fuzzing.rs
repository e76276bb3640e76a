//! Entry points for the fuzz targets of `fuzz/`: the parsers that read what
//! peers send and that are not public on their own, reachable without a
//! socket. Not an API: for `fuzz/` only, hidden from the documentation.

use std::net::SocketAddr;
use std::sync::OnceLock;

use crate::http::{patch, ws};
use crate::webrtc::{self, udp};

/// The server's reading of a WebRTC offer, for playing and for publishing:
/// made one-way, parsed, answered by an `Rtc` with the server's codecs, the
/// answer's m-lines read back; and the ufrag and the video-declining
/// rewrite the server applies to offers.
pub fn sdp_offer(offer: &str) {
    let candidate = SocketAddr::from(([127, 0, 0, 1], 9));
    for direction in ["a=recvonly", "a=sendonly"] {
        let offer = webrtc::one_way(offer, direction);
        let _ = webrtc::ice_ufrag(&offer);
        let _ = webrtc::play::decline_video(&offer);
        if let Ok(parsed) = webrtc::parse_offer(&offer) {
            // One certificate for every run, as the server has one.
            static CERTIFICATE: OnceLock<Option<str0m::config::DtlsCert>> = OnceLock::new();
            let mut config = str0m::Rtc::builder()
                .clear_codecs()
                .enable_opus(true, false)
                .enable_h264(true);
            if let Some(certificate) = CERTIFICATE.get_or_init(webrtc::dtls_certificate) {
                config = config.set_dtls_cert(certificate.clone());
            }
            if let Ok((_, _, answer)) = webrtc::answer_offer(config, parsed, candidate) {
                let _ = webrtc::accepted_mids(&answer);
            }
        }
    }
}

/// An audio (`video` false) or video message body from an RTMP publisher,
/// as the server classifies it where it enters, and the form each kind of
/// RTMP player gets it in (legacy; announcing every codec but not
/// multitrack; the server's own capabilities).
pub fn media_frame(video: bool, body: &[u8]) {
    use crate::frame::{Frame, MediaKind};
    use crate::rtmp::enhanced;
    let kind = if video { MediaKind::Video } else { MediaKind::Audio };
    let frame = Frame::new(kind, 0, bytes::Bytes::copy_from_slice(body));
    let _ = frame.for_decoders();
    // A decoder configuration record, as the transcoders read it.
    if let (true, Some(enhanced), Some(record)) = (frame.config, &frame.enhanced, frame.data()) {
        match enhanced.fourcc {
            media::eflv::FourCc::AVC => {
                let _ = media::h264::AvcConfig::parse(record);
            }
            fourcc => {
                if let Some(mut bitstream) = media::eflv::bitstream::Bitstream::new(fourcc) {
                    let _ = media::eflv::bitstream::hevc_profile_tier_level(record);
                    if bitstream.configure(record).is_ok() {
                        let _ = bitstream.frame(record, true, &mut Vec::new());
                    }
                }
            }
        }
    }
    let mut no_multitrack = enhanced::announced();
    no_multitrack.caps_ex = 0;
    for caps in [None, Some(&no_multitrack), Some(&enhanced::announced())] {
        let _ = enhanced::form(&frame, caps);
    }
}

/// A message on the WebSocket signalling channel, as the server reads it.
pub fn websocket_message(text: &str) {
    let _ = ws::read_message(text);
}

/// A trickle-ICE `PATCH` of a WHIP/WHEP session.
pub fn trickle_patch(content_type: Option<&str>, if_match: Option<&str>, body: &str) {
    let request = patch::Patch {
        content_type,
        if_match,
        body,
    };
    let _ = patch::answer(request, &patch::etag("fuzzsession", 0), "peerufrag");
}

/// A UDP datagram on the WebRTC port: which peer it goes to (STUN's
/// USERNAME, else the source address).
pub fn udp_datagram(data: &[u8]) {
    let router = udp::Router::default();
    let _queue = router.add("fuzzsession");
    let _ = router.route(SocketAddr::from(([127, 0, 0, 1], 5000)), data);
}

#[cfg(test)]
mod tests {
    /// The inputs that once crashed a target run again here, on stable.
    #[test]
    fn inputs_that_crashed_a_target_do_not_any_more() {
        super::sdp_offer(include_str!("../../fuzz/seeds/sdp_offer/payload-type-in-two-kinds.sdp"));
    }
}
