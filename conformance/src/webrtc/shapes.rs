//! Offers in the shapes real WebRTC clients send them: Chrome's, Firefox's
//! and Safari's `RTCPeerConnection`, OBS's WHIP output (libdatachannel) and
//! FFmpeg's WHIP muxer. A server that was tried with one browser breaks on
//! the others in the same places: payload type numbers it did not expect
//! (Firefox sends Opus as 109 and H.264 as 126), attributes in another
//! order (Firefox writes `a=fmtp` before `a=rtpmap`), header extensions
//! with a direction (`a=extmap:2/recvonly`), a session-level fingerprint,
//! an offer that is not `actpass` (FFmpeg offers `a=setup:passive`), RTX
//! streams grouped with `a=ssrc-group:FID`.
//!
//! Each shape is written from what those clients put on the wire (their
//! offers as logged by the clients themselves), with fresh ICE credentials
//! and a fresh fingerprint. They are for checking answers: no peer stands
//! behind them, so no media follows.

use std::fmt::Write;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// A client whose offers [`offer`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientOffer {
    /// Chrome (and Edge): VP8 first, H.264 in six profiles and both
    /// packetization modes, AV1, VP9, RTX for each, RED and ULPFEC.
    Chrome,
    /// Firefox: Opus as 109, VP8 as 120, H.264 as 126 (mode 1) and 97 (mode
    /// 0); `a=fmtp` before `a=rtpmap`; fingerprint at session level.
    Firefox,
    /// Safari: H.264 first (High, then Constrained Baseline), H.265, VP8.
    Safari,
    /// OBS Studio's WHIP output (libdatachannel): one Opus and one H.264
    /// format, ICE and DTLS attributes at session level, its host
    /// candidates in the offer.
    Obs,
    /// FFmpeg's WHIP muxer: one Opus and one H.264 format, no feedback,
    /// `a=setup:passive` (FFmpeg takes the DTLS server's role).
    Ffmpeg,
}

impl ClientOffer {
    /// The client's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            ClientOffer::Chrome => "Chrome",
            ClientOffer::Firefox => "Firefox",
            ClientOffer::Safari => "Safari",
            ClientOffer::Obs => "OBS Studio",
            ClientOffer::Ffmpeg => "FFmpeg",
        }
    }

    /// Whether the client only publishes (WHIP), never plays.
    pub fn publishes_only(&self) -> bool {
        matches!(self, ClientOffer::Obs | ClientOffer::Ffmpeg)
    }
}

/// One payload type of an offer.
struct Format {
    pt: u8,
    /// `name/clock[/channels]`.
    encoding: &'static str,
    fmtp: &'static str,
    /// Feedback the format asks for (`a=rtcp-fb`).
    feedback: &'static [&'static str],
    /// The RTX payload type that repairs it.
    rtx: Option<u8>,
}

const fn format(pt: u8, encoding: &'static str, fmtp: &'static str) -> Format {
    Format {
        pt,
        encoding,
        fmtp,
        feedback: &[],
        rtx: None,
    }
}

const fn video(
    pt: u8,
    encoding: &'static str,
    fmtp: &'static str,
    rtx: u8,
    feedback: &'static [&'static str],
) -> Format {
    Format {
        pt,
        encoding,
        fmtp,
        feedback,
        rtx: Some(rtx),
    }
}

const LIBWEBRTC_FEEDBACK: &[&str] = &["goog-remb", "transport-cc", "ccm fir", "nack", "nack pli"];
const FIREFOX_FEEDBACK: &[&str] = &["nack", "nack pli", "ccm fir", "goog-remb", "transport-cc"];

/// Chrome's and Safari's audio (libwebrtc).
const LIBWEBRTC_AUDIO: &[Format] = &[
    Format {
        pt: 111,
        encoding: "opus/48000/2",
        fmtp: "minptime=10;useinbandfec=1",
        feedback: &["transport-cc"],
        rtx: None,
    },
    format(63, "red/48000/2", "111/111"),
    format(9, "G722/8000", ""),
    format(0, "PCMU/8000", ""),
    format(8, "PCMA/8000", ""),
    format(13, "CN/8000", ""),
    format(110, "telephone-event/48000", ""),
    format(126, "telephone-event/8000", ""),
];

const CHROME_VIDEO: &[Format] = &[
    video(96, "VP8/90000", "", 97, LIBWEBRTC_FEEDBACK),
    video(
        102,
        "H264/90000",
        "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f",
        103,
        LIBWEBRTC_FEEDBACK,
    ),
    video(
        104,
        "H264/90000",
        "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f",
        105,
        LIBWEBRTC_FEEDBACK,
    ),
    video(
        106,
        "H264/90000",
        "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        107,
        LIBWEBRTC_FEEDBACK,
    ),
    video(
        108,
        "H264/90000",
        "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f",
        109,
        LIBWEBRTC_FEEDBACK,
    ),
    video(
        127,
        "H264/90000",
        "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f",
        125,
        LIBWEBRTC_FEEDBACK,
    ),
    video(
        39,
        "H264/90000",
        "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=4d001f",
        40,
        LIBWEBRTC_FEEDBACK,
    ),
    video(45, "AV1/90000", "level-idx=5;profile=0;tier=0", 46, LIBWEBRTC_FEEDBACK),
    video(98, "VP9/90000", "profile-id=0", 99, LIBWEBRTC_FEEDBACK),
    video(100, "VP9/90000", "profile-id=2", 101, LIBWEBRTC_FEEDBACK),
    video(
        112,
        "H264/90000",
        "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f",
        113,
        LIBWEBRTC_FEEDBACK,
    ),
    video(116, "red/90000", "", 117, &[]),
    format(118, "ulpfec/90000", ""),
];

const SAFARI_VIDEO: &[Format] = &[
    video(
        96,
        "H264/90000",
        "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640c1f",
        97,
        LIBWEBRTC_FEEDBACK,
    ),
    video(
        98,
        "H264/90000",
        "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        99,
        LIBWEBRTC_FEEDBACK,
    ),
    video(
        100,
        "H264/90000",
        "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=640c1f",
        101,
        LIBWEBRTC_FEEDBACK,
    ),
    video(
        127,
        "H264/90000",
        "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f",
        125,
        LIBWEBRTC_FEEDBACK,
    ),
    video(104, "H265/90000", "", 105, LIBWEBRTC_FEEDBACK),
    video(106, "VP8/90000", "", 107, LIBWEBRTC_FEEDBACK),
    video(108, "red/90000", "", 109, &[]),
    format(114, "ulpfec/90000", ""),
];

const FIREFOX_AUDIO: &[Format] = &[
    format(109, "opus/48000/2", "maxplaybackrate=48000;stereo=1;useinbandfec=1"),
    format(9, "G722/8000/1", ""),
    format(0, "PCMU/8000", ""),
    format(8, "PCMA/8000", ""),
    format(101, "telephone-event/8000", "0-15"),
];

const FIREFOX_VIDEO: &[Format] = &[
    video(120, "VP8/90000", "max-fs=12288;max-fr=60", 124, FIREFOX_FEEDBACK),
    video(121, "VP9/90000", "max-fs=12288;max-fr=60", 125, FIREFOX_FEEDBACK),
    video(
        126,
        "H264/90000",
        "profile-level-id=42e01f;level-asymmetry-allowed=1;packetization-mode=1",
        127,
        FIREFOX_FEEDBACK,
    ),
    video(
        97,
        "H264/90000",
        "profile-level-id=42e01f;level-asymmetry-allowed=1",
        98,
        FIREFOX_FEEDBACK,
    ),
    video(122, "red/90000", "", 119, &[]),
    format(123, "ulpfec/90000", ""),
];

const OBS_AUDIO: &[Format] = &[format(
    111,
    "opus/48000/2",
    "minptime=10;maxaveragebitrate=96000;stereo=1;sprop-stereo=1;useinbandfec=1",
)];
const OBS_VIDEO: &[Format] = &[Format {
    pt: 96,
    encoding: "H264/90000",
    fmtp: "profile-level-id=42e01f;packetization-mode=1;level-asymmetry-allowed=1",
    feedback: &["nack", "nack pli", "goog-remb"],
    rtx: None,
}];

const FFMPEG_AUDIO: &[Format] = &[format(111, "opus/48000/2", "")];
const FFMPEG_VIDEO: &[Format] = &[format(
    106,
    "H264/90000",
    "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
)];

/// What an offer holds: its m-lines' direction (`sendonly` to a WHIP
/// endpoint, `recvonly` to a WHEP one, or `sendrecv`) and which m-lines.
#[derive(Debug, Clone, Copy)]
pub struct OfferParts {
    /// `sendonly`, `recvonly` or `sendrecv`.
    pub direction: &'static str,
    /// An audio m-line.
    pub audio: bool,
    /// A video m-line.
    pub video: bool,
}

/// The offer `client` would send for `parts`, with fresh ICE credentials
/// and fingerprint. Lines end in CRLF.
pub fn offer(client: ClientOffer, parts: OfferParts) -> String {
    let ids = Ids::fresh();
    let mut kinds = Vec::new();
    if parts.audio {
        kinds.push("audio");
    }
    if parts.video {
        kinds.push("video");
    }
    let mut out = String::new();
    match client {
        ClientOffer::Chrome | ClientOffer::Safari => libwebrtc(&mut out, client, &kinds, parts.direction, &ids),
        ClientOffer::Firefox => firefox(&mut out, &kinds, parts.direction, &ids),
        ClientOffer::Obs => obs(&mut out, &kinds, parts.direction, &ids),
        ClientOffer::Ffmpeg => ffmpeg(&mut out, &kinds, parts.direction, &ids),
    }
    out.replace('\n', "\r\n")
}

/// The random parts of an offer.
struct Ids {
    ufrag: String,
    pwd: String,
    fingerprint: String,
    session: u64,
    ssrcs: [u32; 4],
    stream: String,
}

impl Ids {
    fn fresh() -> Ids {
        let mut rng = rand::thread_rng();
        let token = |rng: &mut rand::rngs::ThreadRng, n: usize| -> String {
            (0..n)
                .map(|_| {
                    let i = rng.gen_range(0..62u8);
                    match i {
                        0..=9 => (b'0' + i) as char,
                        10..=35 => (b'a' + i - 10) as char,
                        _ => (b'A' + i - 36) as char,
                    }
                })
                .collect()
        };
        let fingerprint = (0..32)
            .map(|_| format!("{:02X}", rng.gen::<u8>()))
            .collect::<Vec<_>>()
            .join(":");
        Ids {
            ufrag: token(&mut rng, 8),
            pwd: token(&mut rng, 24),
            fingerprint,
            session: rng.gen_range(1..i64::MAX as u64),
            ssrcs: [rng.gen(), rng.gen(), rng.gen(), rng.gen()],
            stream: token(&mut rng, 12),
        }
    }
}

fn formats(client: ClientOffer, kind: &str) -> &'static [Format] {
    match (client, kind) {
        (ClientOffer::Chrome | ClientOffer::Safari, "audio") => LIBWEBRTC_AUDIO,
        (ClientOffer::Chrome, _) => CHROME_VIDEO,
        (ClientOffer::Safari, _) => SAFARI_VIDEO,
        (ClientOffer::Firefox, "audio") => FIREFOX_AUDIO,
        (ClientOffer::Firefox, _) => FIREFOX_VIDEO,
        (ClientOffer::Obs, "audio") => OBS_AUDIO,
        (ClientOffer::Obs, _) => OBS_VIDEO,
        (ClientOffer::Ffmpeg, "audio") => FFMPEG_AUDIO,
        (ClientOffer::Ffmpeg, _) => FFMPEG_VIDEO,
    }
}

/// `m=<kind> 9 UDP/TLS/RTP/SAVPF <pts>`, RTX after the format it repairs.
fn m_line(out: &mut String, kind: &str, formats: &[Format]) {
    let _ = write!(out, "m={kind} 9 UDP/TLS/RTP/SAVPF");
    for f in formats {
        let _ = write!(out, " {}", f.pt);
        if let Some(rtx) = f.rtx {
            let _ = write!(out, " {rtx}");
        }
    }
    out.push_str("\nc=IN IP4 0.0.0.0\n");
}

/// `a=rtpmap`, `a=rtcp-fb`, `a=fmtp` per format, in libwebrtc's order.
fn formats_in_order(out: &mut String, formats: &[Format]) {
    for f in formats {
        let _ = writeln!(out, "a=rtpmap:{} {}", f.pt, f.encoding);
        for fb in f.feedback {
            let _ = writeln!(out, "a=rtcp-fb:{} {fb}", f.pt);
        }
        if !f.fmtp.is_empty() {
            let _ = writeln!(out, "a=fmtp:{} {}", f.pt, f.fmtp);
        }
        if let Some(rtx) = f.rtx {
            let _ = writeln!(out, "a=rtpmap:{rtx} rtx/90000\na=fmtp:{rtx} apt={}", f.pt);
        }
    }
}

fn bundle(out: &mut String, kinds: &[&str]) {
    let mids: Vec<String> = (0..kinds.len()).map(|i| i.to_string()).collect();
    let _ = writeln!(out, "a=group:BUNDLE {}", mids.join(" "));
}

fn libwebrtc(out: &mut String, client: ClientOffer, kinds: &[&str], direction: &str, ids: &Ids) {
    let _ = write!(out, "v=0\no=- {} 2 IN IP4 127.0.0.1\ns=-\nt=0 0\n", ids.session);
    bundle(out, kinds);
    out.push_str("a=extmap-allow-mixed\n");
    let _ = writeln!(
        out,
        "a=msid-semantic: WMS{}",
        if direction == "recvonly" {
            String::new()
        } else {
            format!(" {}", ids.stream)
        }
    );
    for (mid, kind) in kinds.iter().enumerate() {
        let formats = formats(client, kind);
        m_line(out, kind, formats);
        let _ = write!(
            out,
            "a=rtcp:9 IN IP4 0.0.0.0\na=ice-ufrag:{}\na=ice-pwd:{}\na=ice-options:trickle\n\
             a=fingerprint:sha-256 {}\na=setup:actpass\na=mid:{mid}\n",
            ids.ufrag, ids.pwd, ids.fingerprint
        );
        if *kind == "audio" {
            out.push_str(
                "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\n\
                 a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\n\
                 a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\n\
                 a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\n",
            );
        } else {
            out.push_str(
                "a=extmap:14 urn:ietf:params:rtp-hdrext:toffset\n\
                 a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\n\
                 a=extmap:13 urn:3gpp:video-orientation\n\
                 a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\n\
                 a=extmap:5 http://www.webrtc.org/experiments/rtp-hdrext/playout-delay\n\
                 a=extmap:6 http://www.webrtc.org/experiments/rtp-hdrext/video-content-type\n\
                 a=extmap:7 http://www.webrtc.org/experiments/rtp-hdrext/video-timing\n\
                 a=extmap:8 http://www.webrtc.org/experiments/rtp-hdrext/color-space\n\
                 a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\n\
                 a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\n\
                 a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id\n",
            );
        }
        let _ = writeln!(out, "a={direction}");
        let sends = direction != "recvonly";
        if sends {
            let _ = writeln!(out, "a=msid:{} {}-{kind}", ids.stream, ids.stream);
        }
        out.push_str("a=rtcp-mux\n");
        if *kind == "video" {
            out.push_str("a=rtcp-rsize\n");
        }
        formats_in_order(out, formats);
        if sends {
            let ssrc = ids.ssrcs[mid * 2];
            if *kind == "video" {
                let _ = writeln!(out, "a=ssrc-group:FID {ssrc} {}", ids.ssrcs[mid * 2 + 1]);
            }
            let mut ssrcs = vec![ssrc];
            if *kind == "video" {
                ssrcs.push(ids.ssrcs[mid * 2 + 1]);
            }
            for s in ssrcs {
                let _ = writeln!(
                    out,
                    "a=ssrc:{s} cname:{}\na=ssrc:{s} msid:{} {}-{kind}",
                    ids.stream, ids.stream, ids.stream
                );
            }
        }
    }
}

fn firefox(out: &mut String, kinds: &[&str], direction: &str, ids: &Ids) {
    let _ = write!(
        out,
        "v=0\no=mozilla...THIS_IS_SDPARTA-128.0 {} 0 IN IP4 0.0.0.0\ns=-\nt=0 0\n\
         a=fingerprint:sha-256 {}\n",
        ids.session, ids.fingerprint
    );
    bundle(out, kinds);
    out.push_str("a=ice-options:trickle\na=msid-semantic:WMS *\n");
    for (mid, kind) in kinds.iter().enumerate() {
        let formats = formats(ClientOffer::Firefox, kind);
        m_line(out, kind, formats);
        let _ = writeln!(out, "a={direction}");
        if *kind == "audio" {
            out.push_str(
                "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\n\
                 a=extmap:2/recvonly urn:ietf:params:rtp-hdrext:csrc-audio-level\n\
                 a=extmap:3 urn:ietf:params:rtp-hdrext:sdes:mid\n",
            );
        } else {
            out.push_str(
                "a=extmap:3 urn:ietf:params:rtp-hdrext:sdes:mid\n\
                 a=extmap:4 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\n\
                 a=extmap:5 urn:ietf:params:rtp-hdrext:toffset\n\
                 a=extmap:6/recvonly http://www.webrtc.org/experiments/rtp-hdrext/playout-delay\n\
                 a=extmap:7 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\n",
            );
        }
        // Firefox writes every a=fmtp before the a=rtpmap lines.
        for f in formats {
            if !f.fmtp.is_empty() {
                let _ = writeln!(out, "a=fmtp:{} {}", f.pt, f.fmtp);
            }
            if let Some(rtx) = f.rtx {
                let _ = writeln!(out, "a=fmtp:{rtx} apt={}", f.pt);
            }
        }
        let _ = write!(out, "a=ice-pwd:{}\na=ice-ufrag:{}\na=mid:{mid}\n", ids.pwd, ids.ufrag);
        if direction != "recvonly" {
            let _ = writeln!(out, "a=msid:{{{}}} {{{}-{kind}}}", ids.stream, ids.stream);
        }
        for f in formats {
            for fb in f.feedback {
                let _ = writeln!(out, "a=rtcp-fb:{} {fb}", f.pt);
            }
        }
        out.push_str("a=rtcp-mux\n");
        if *kind == "video" {
            out.push_str("a=rtcp-rsize\n");
        }
        for f in formats {
            let _ = writeln!(out, "a=rtpmap:{} {}", f.pt, f.encoding);
            if let Some(rtx) = f.rtx {
                let _ = writeln!(out, "a=rtpmap:{rtx} rtx/90000");
            }
        }
        out.push_str("a=setup:actpass\n");
        // Firefox names an SSRC even for m-lines it only receives on (its
        // RTCP reports come from it).
        let ssrc = ids.ssrcs[mid * 2];
        if *kind == "video" && direction != "recvonly" {
            let _ = writeln!(out, "a=ssrc-group:FID {ssrc} {}", ids.ssrcs[mid * 2 + 1]);
        }
        let _ = writeln!(out, "a=ssrc:{ssrc} cname:{{{}}}", ids.stream);
    }
}

fn obs(out: &mut String, kinds: &[&str], direction: &str, ids: &Ids) {
    let _ = write!(
        out,
        "v=0\no=rtc {} 0 IN IP4 127.0.0.1\ns=-\nt=0 0\n",
        ids.session as u32
    );
    bundle(out, kinds);
    let mids: Vec<String> = (0..kinds.len()).map(|i| i.to_string()).collect();
    let _ = write!(
        out,
        "a=group:LS {}\na=msid-semantic:WMS *\na=setup:actpass\na=ice-ufrag:{}\na=ice-pwd:{}\n\
         a=ice-options:ice2,trickle\na=fingerprint:sha-256 {}\n",
        mids.join(" "),
        ids.ufrag,
        ids.pwd,
        ids.fingerprint
    );
    for (mid, kind) in kinds.iter().enumerate() {
        let formats = formats(ClientOffer::Obs, kind);
        m_line(out, kind, formats);
        let ssrc = ids.ssrcs[mid];
        let _ = write!(
            out,
            "a=mid:{mid}\na={direction}\na=ssrc:{ssrc} cname:obs-{0}\na=ssrc:{ssrc} msid:obs-{0} obs-{0}-{kind}\n\
             a=msid:obs-{0} obs-{0}-{kind}\na=rtcp-mux\n",
            ids.stream
        );
        formats_in_order(out, formats);
        if mid == 0 {
            // OBS sends its offer once gathering is done, candidates and all.
            let _ = write!(
                out,
                "a=candidate:1 1 UDP 2122317823 127.0.0.1 {} typ host\na=end-of-candidates\n",
                40000 + (ids.ssrcs[3] % 20000)
            );
        }
    }
}

fn ffmpeg(out: &mut String, kinds: &[&str], direction: &str, ids: &Ids) {
    let _ = write!(
        out,
        "v=0\no=FFmpeg {} 2 IN IP4 127.0.0.1\ns=FFmpegPublishSession\nt=0 0\n",
        ids.session
    );
    // FFmpeg writes this group, and mid 0 for sound and 1 for pictures,
    // whichever it sends.
    out.push_str("a=group:BUNDLE 0 1\na=extmap-allow-mixed\na=msid-semantic: WMS\n");
    for kind in kinds {
        let mid = usize::from(*kind == "video");
        let formats = formats(ClientOffer::Ffmpeg, kind);
        m_line(out, kind, formats);
        let ssrc = ids.ssrcs[mid];
        let _ = write!(
            out,
            "a=ice-ufrag:{}\na=ice-pwd:{}\na=fingerprint:sha-256 {}\na=setup:passive\na=mid:{mid}\n\
             a={direction}\na=msid:FFmpeg {kind}\na=rtcp-mux\n",
            ids.ufrag, ids.pwd, ids.fingerprint
        );
        if *kind == "video" {
            out.push_str("a=rtcp-rsize\n");
        }
        for f in formats {
            let _ = writeln!(out, "a=rtpmap:{} {}", f.pt, f.encoding);
            if !f.fmtp.is_empty() {
                let _ = writeln!(out, "a=fmtp:{} {}", f.pt, f.fmtp);
            }
        }
        let _ = write!(out, "a=ssrc:{ssrc} cname:FFmpeg\na=ssrc:{ssrc} msid:FFmpeg {kind}\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webrtc::sdp::SdpSummary;

    fn parts(direction: &'static str) -> OfferParts {
        OfferParts {
            direction,
            audio: true,
            video: true,
        }
    }

    #[test]
    fn every_shape_is_sdp_with_both_m_lines_bundled() {
        for client in [
            ClientOffer::Chrome,
            ClientOffer::Firefox,
            ClientOffer::Safari,
            ClientOffer::Obs,
            ClientOffer::Ffmpeg,
        ] {
            let text = offer(client, parts("sendonly"));
            let summary = SdpSummary::parse(&text).unwrap_or_else(|e| panic!("{client:?}: {e}"));
            assert_eq!(summary.bundle, ["0", "1"], "{client:?}");
            assert!(summary.has_fingerprint && summary.has_ice_credentials, "{client:?}");
            let audio = summary.audio().unwrap();
            let video = summary.video().unwrap();
            assert!(audio.rtcp_mux && video.rtcp_mux, "{client:?}");
            assert_eq!(audio.mid.as_deref(), Some("0"));
            assert!(audio.has_codec("opus") && video.has_codec("H264"), "{client:?}");
            assert!(
                text.split_inclusive('\n').all(|l| l.ends_with("\r\n")),
                "{client:?}: CRLF"
            );
        }
    }

    #[test]
    fn shapes_carry_their_clients_quirks() {
        let firefox = offer(ClientOffer::Firefox, parts("recvonly"));
        let s = SdpSummary::parse(&firefox).unwrap();
        assert_eq!(s.audio().unwrap().codecs[0].pt, 109);
        let h264: Vec<(u8, Option<u8>)> = s
            .video()
            .unwrap()
            .codecs_named("H264")
            .map(|c| (c.pt, c.packetization_mode()))
            .collect();
        assert_eq!(h264, [(126, Some(1)), (97, None)], "fmtp read though it comes first");
        assert!(firefox.find("a=fmtp:126").unwrap() < firefox.find("a=rtpmap:126").unwrap());
        let ffmpeg = SdpSummary::parse(&offer(ClientOffer::Ffmpeg, parts("sendonly"))).unwrap();
        assert_eq!(ffmpeg.video().unwrap().setup.as_deref(), Some("passive"));
        let obs = SdpSummary::parse(&offer(ClientOffer::Obs, parts("sendonly"))).unwrap();
        assert_eq!(
            obs.video().unwrap().setup.as_deref(),
            Some("actpass"),
            "session-level setup"
        );
        assert_eq!(obs.audio().unwrap().candidates.len(), 1);
        let audio_only = offer(
            ClientOffer::Chrome,
            OfferParts {
                direction: "recvonly",
                audio: true,
                video: false,
            },
        );
        let s = SdpSummary::parse(&audio_only).unwrap();
        assert_eq!((s.media.len(), s.bundle.len()), (1, 1));
        assert!(
            !audio_only.contains("a=ssrc:"),
            "Chrome names no SSRC when it only receives"
        );
    }
}
