//! A reader for the SDP a server answers with, made for checks: for each
//! m-line its kind, whether it was rejected (port 0), its direction, its
//! codecs (`a=rtpmap`) and their `a=fmtp` parameters, plus the session facts
//! a WebRTC answer must carry (fingerprint, ICE credentials, candidates).
//!
//! It is independent of str0m on purpose: str0m may refuse or normalise an
//! answer, and the checks want to see what the server actually wrote. Input is
//! untrusted: anything malformed is an [`SdpParseError`], never a panic.

use std::fmt;

/// Why an SDP text could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpParseError {
    /// The text does not start with `v=0`.
    #[error("SDP does not start with v=0 (first line: {0:?})")]
    NoVersion(String),
    /// An `m=` line that is not `m=<media> <port> <proto> <fmt> ...`.
    #[error("line {line}: malformed m-line {text:?}")]
    BadMediaLine {
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
    /// An `a=rtpmap` that is not `a=rtpmap:<pt> <name>/<rate>[/<channels>]`.
    #[error("line {line}: malformed a=rtpmap {text:?}")]
    BadRtpmap {
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
}

/// The direction attribute of an m-line (RFC 4566 §6; absent means `sendrecv`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdpDirection {
    /// `a=sendrecv`, or no direction attribute at all.
    SendRecv,
    /// `a=sendonly`: the answerer only sends.
    SendOnly,
    /// `a=recvonly`: the answerer only receives.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl SdpDirection {
    /// The attribute's name, e.g. `"sendonly"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            SdpDirection::SendRecv => "sendrecv",
            SdpDirection::SendOnly => "sendonly",
            SdpDirection::RecvOnly => "recvonly",
            SdpDirection::Inactive => "inactive",
        }
    }
}

impl fmt::Display for SdpDirection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One payload type of an m-line: its `a=rtpmap` and `a=fmtp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpCodec {
    /// The payload type.
    pub pt: u8,
    /// The encoding name as written (`opus`, `H264`, `rtx`, `PCMU`).
    pub name: String,
    /// The RTP clock rate.
    pub clock_rate: u32,
    /// The channel count, when the rtpmap gives one (`opus/48000/2`).
    pub channels: Option<u16>,
    /// The `a=fmtp` parameters in order, keys as written (`profile-level-id`, `apt`).
    pub fmtp: Vec<(String, String)>,
}

impl RtpCodec {
    /// Whether this is the codec `name`, compared without case (`"h264"` matches `H264`).
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    /// The value of the fmtp parameter `key` (compared without case).
    pub fn fmtp_value(&self, key: &str) -> Option<&str> {
        self.fmtp
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// H.264's `profile-level-id` as a number (`42e01f` is `0x42e01f`).
    pub fn profile_level_id(&self) -> Option<u32> {
        self.fmtp_value("profile-level-id")
            .and_then(|v| u32::from_str_radix(v, 16).ok())
    }

    /// H.264's `packetization-mode`; absent means 0 (RFC 6184 §8.1).
    pub fn packetization_mode(&self) -> Option<u8> {
        self.fmtp_value("packetization-mode").and_then(|v| v.parse().ok())
    }

    /// Whether this payload type only repairs another (`rtx`, `red`, `ulpfec`, `flexfec`).
    pub fn is_repair(&self) -> bool {
        ["rtx", "red", "ulpfec", "flexfec-03"].iter().any(|n| self.is(n))
    }
}

/// One m-line of an SDP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSection {
    /// `audio`, `video` or `application`.
    pub kind: String,
    /// The port; 0 means the answerer rejected this m-line.
    pub port: u16,
    /// Whether the port is 0 (RFC 3264 §6: the stream is rejected).
    pub rejected: bool,
    /// The transport, e.g. `UDP/TLS/RTP/SAVPF`.
    pub protocol: String,
    /// `a=mid`, if present.
    pub mid: Option<String>,
    /// The direction attribute.
    pub direction: SdpDirection,
    /// Payload types in the order of the m-line's format list.
    pub codecs: Vec<RtpCodec>,
    /// The `a=candidate` values (after `candidate:`), in order.
    pub candidates: Vec<String>,
    /// Whether this m-line has its own `a=fingerprint`.
    pub has_fingerprint: bool,
    /// `a=setup` (`actpass`, `active`, `passive`), its own or the session's.
    pub setup: Option<String>,
    /// Whether it has `a=rtcp-mux`.
    pub rtcp_mux: bool,
}

impl MediaSection {
    /// Whether the m-line is of kind `kind` (`"audio"`, `"video"`).
    pub fn is_kind(&self, kind: &str) -> bool {
        self.kind.eq_ignore_ascii_case(kind)
    }

    /// The distinct codec names, in order, without repair formats (rtx, red, fec).
    pub fn codec_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for c in self.codecs.iter().filter(|c| !c.is_repair()) {
            if !names.iter().any(|n| n.eq_ignore_ascii_case(&c.name)) {
                names.push(&c.name);
            }
        }
        names
    }

    /// Whether any payload type is codec `name` (without case).
    pub fn has_codec(&self, name: &str) -> bool {
        self.codecs.iter().any(|c| c.is(name))
    }

    /// The payload types of codec `name` (without case), in order.
    pub fn codecs_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a RtpCodec> + 'a {
        self.codecs.iter().filter(move |c| c.is(name))
    }

    /// Whether the m-line is accepted and lets media flow from the answerer to us.
    pub fn answerer_sends(&self) -> bool {
        !self.rejected && matches!(self.direction, SdpDirection::SendRecv | SdpDirection::SendOnly)
    }

    /// Whether the m-line is accepted and lets media flow from us to the answerer.
    pub fn answerer_receives(&self) -> bool {
        !self.rejected && matches!(self.direction, SdpDirection::SendRecv | SdpDirection::RecvOnly)
    }
}

/// An SDP reduced to what checks look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdpSummary {
    /// The session has `a=ice-lite`.
    pub ice_lite: bool,
    /// A fingerprint is present at session level or in every accepted m-line.
    pub has_fingerprint: bool,
    /// ICE credentials (`a=ice-ufrag` and `a=ice-pwd`) appear somewhere.
    pub has_ice_credentials: bool,
    /// The mids of `a=group:BUNDLE`, in order (empty without one).
    pub bundle: Vec<String>,
    /// The m-lines, in order.
    pub media: Vec<MediaSection>,
}

impl SdpSummary {
    /// Reads an SDP. Unknown lines and attributes are ignored; a malformed
    /// `m=` or `a=rtpmap` line is an error.
    pub fn parse(text: &str) -> Result<SdpSummary, SdpParseError> {
        let mut lines = text.lines().map(str::trim).enumerate().filter(|(_, l)| !l.is_empty());
        match lines.next() {
            Some((_, "v=0")) => {}
            Some((_, l)) => return Err(SdpParseError::NoVersion(l.to_string())),
            None => return Err(SdpParseError::NoVersion(String::new())),
        }
        let mut summary = SdpSummary {
            ice_lite: false,
            has_fingerprint: false,
            has_ice_credentials: false,
            bundle: Vec::new(),
            media: Vec::new(),
        };
        let mut session_fingerprint = false;
        let mut session_setup = None;
        let (mut ufrag, mut pwd) = (false, false);
        // Formats of the current m-line, and rtpmap/fmtp seen for it (pt -> values).
        let mut formats: Vec<u8> = Vec::new();
        let mut rtpmaps: Vec<(u8, String, u32, Option<u16>)> = Vec::new();
        let mut fmtps: Vec<(u8, Vec<(String, String)>)> = Vec::new();
        for (index, line) in lines {
            let number = index + 1;
            if let Some(m) = line.strip_prefix("m=") {
                if let Some(last) = summary.media.last_mut() {
                    last.codecs = build_codecs(&formats, &rtpmaps, &fmtps);
                }
                let (section, fmts) = parse_media_line(m).ok_or_else(|| SdpParseError::BadMediaLine {
                    line: number,
                    text: line.into(),
                })?;
                formats = fmts;
                rtpmaps.clear();
                fmtps.clear();
                summary.media.push(section);
                continue;
            }
            let Some(attr) = line.strip_prefix("a=") else { continue };
            let (name, value) = match attr.split_once(':') {
                Some((n, v)) => (n, v.trim()),
                None => (attr, ""),
            };
            let current = summary.media.last_mut();
            match (name, current) {
                ("ice-lite", None) => summary.ice_lite = true,
                ("fingerprint", None) => session_fingerprint = true,
                ("fingerprint", Some(m)) => m.has_fingerprint = true,
                ("ice-ufrag", _) => ufrag = true,
                ("ice-pwd", _) => pwd = true,
                ("mid", Some(m)) => m.mid = Some(value.to_string()),
                ("setup", None) => session_setup = Some(value.to_string()),
                ("setup", Some(m)) => m.setup = Some(value.to_string()),
                ("rtcp-mux", Some(m)) => m.rtcp_mux = true,
                ("group", None) => {
                    if let Some(mids) = value.strip_prefix("BUNDLE") {
                        summary.bundle = mids.split_ascii_whitespace().map(str::to_string).collect();
                    }
                }
                ("sendrecv", Some(m)) => m.direction = SdpDirection::SendRecv,
                ("sendonly", Some(m)) => m.direction = SdpDirection::SendOnly,
                ("recvonly", Some(m)) => m.direction = SdpDirection::RecvOnly,
                ("inactive", Some(m)) => m.direction = SdpDirection::Inactive,
                ("candidate", Some(m)) => m.candidates.push(value.to_string()),
                ("rtpmap", Some(_)) => {
                    let parsed = parse_rtpmap(value).ok_or_else(|| SdpParseError::BadRtpmap {
                        line: number,
                        text: line.into(),
                    })?;
                    rtpmaps.push(parsed);
                }
                ("fmtp", Some(_)) => {
                    // A malformed fmtp is kept out rather than failing the whole answer:
                    // the codec then simply shows no parameters, which checks will notice.
                    let (pt, params) = value.split_once(' ').unwrap_or((value, ""));
                    if let Ok(pt) = pt.trim().parse::<u8>() {
                        fmtps.push((pt, parse_fmtp(params)));
                    }
                }
                _ => {}
            }
        }
        if let Some(last) = summary.media.last_mut() {
            last.codecs = build_codecs(&formats, &rtpmaps, &fmtps);
        }
        summary.has_fingerprint = session_fingerprint
            || (!summary.media.is_empty() && summary.media.iter().filter(|m| !m.rejected).all(|m| m.has_fingerprint));
        summary.has_ice_credentials = ufrag && pwd;
        for m in summary.media.iter_mut().filter(|m| m.setup.is_none()) {
            m.setup.clone_from(&session_setup);
        }
        Ok(summary)
    }

    /// The first m-line of kind `kind`.
    pub fn first(&self, kind: &str) -> Option<&MediaSection> {
        self.media.iter().find(|m| m.is_kind(kind))
    }

    /// The first audio m-line.
    pub fn audio(&self) -> Option<&MediaSection> {
        self.first("audio")
    }

    /// The first video m-line.
    pub fn video(&self) -> Option<&MediaSection> {
        self.first("video")
    }

    /// The kinds of the m-lines that were not rejected, in order (`["audio"]`).
    pub fn accepted_kinds(&self) -> Vec<&str> {
        self.media
            .iter()
            .filter(|m| !m.rejected)
            .map(|m| m.kind.as_str())
            .collect()
    }
}

/// The first way `answer` fails to answer `offer`, in words from the
/// wire, or `None` when it answers it as offer/answer requires:
///
/// * as many m-lines as the offer, of the same kinds, in the same order
///   (RFC 3264, section 6), each accepted one with the offer's `a=mid`
///   (RFC 5888, section 9.1);
/// * in each accepted m-line, only codecs the offer gave (RFC 3264, section
///   6.1), H.264 in a packetization mode offered for it (RFC 6184, section
///   8.2.2: the mode of a payload type is the same in offer and answer);
/// * `a=setup` `active` or `passive`, never `actpass`, and `active` to an
///   offer that is `passive` (RFC 8842, section 5.3; RFC 4145, section 4.1);
/// * `a=rtcp-mux` where the offer had it (RFC 9143 and RFC 9429, section
///   5.3.1; browsers take nothing else);
/// * a BUNDLE group of offered mids when the offer had one (RFC 9143,
///   section 7.3).
///
/// In a BUNDLE group, `a=setup` and `a=rtcp-mux` may be written in the
/// group's first m-line only (RFC 9143, section 7.3.1): the others take
/// them from it. Payload type numbers are [`renumbered`]'s.
pub fn answer_misfit(offer: &SdpSummary, answer: &SdpSummary) -> Option<String> {
    let kinds = |s: &SdpSummary| s.media.iter().map(|m| m.kind.clone()).collect::<Vec<_>>().join(", ");
    if offer.media.len() != answer.media.len()
        || offer.media.iter().zip(&answer.media).any(|(o, a)| !o.is_kind(&a.kind))
    {
        return Some(format!(
            "the answer's m-lines are [{}], the offer's [{}]",
            kinds(answer),
            kinds(offer)
        ));
    }
    // The transport attributes of the answer's BUNDLE group, from its first m-line.
    let tagged = answer
        .media
        .iter()
        .find(|m| !m.rejected && m.mid.as_ref().is_some_and(|mid| answer.bundle.contains(mid)));
    for (index, (o, a)) in offer.media.iter().zip(&answer.media).enumerate() {
        if a.rejected {
            continue;
        }
        let which = format!("m-line {} ({})", index + 1, a.kind);
        if o.mid.is_some() && a.mid != o.mid {
            return Some(format!(
                "{which} has mid {:?}, the offer's has {:?}",
                a.mid.as_deref().unwrap_or("none"),
                o.mid.as_deref().unwrap_or("none")
            ));
        }
        for codec in a.codecs.iter().filter(|c| !c.is_repair()) {
            let offered: Vec<&RtpCodec> = o
                .codecs
                .iter()
                .filter(|c| c.is(&codec.name) && c.clock_rate == codec.clock_rate)
                .collect();
            if offered.is_empty() {
                return Some(format!(
                    "{which} answers {}/{}, which the offer does not have",
                    codec.name, codec.clock_rate
                ));
            }
            if codec.is("H264") {
                let mode = codec.packetization_mode().unwrap_or(0);
                // The offer's format of this number, else any of this codec.
                let same_number: Vec<&RtpCodec> = offered.iter().copied().filter(|c| c.pt == codec.pt).collect();
                let candidates = if same_number.is_empty() { &offered } else { &same_number };
                if !candidates.iter().any(|c| c.packetization_mode().unwrap_or(0) == mode) {
                    return Some(format!(
                        "{which} answers H.264 payload type {} in packetization-mode {mode}, which the offer does not give it",
                        codec.pt
                    ));
                }
            }
        }
        let bundled = a.mid.as_ref().is_some_and(|mid| answer.bundle.contains(mid));
        let group_setup = tagged.filter(|_| bundled).and_then(|t| t.setup.as_deref());
        let setup = a.setup.as_deref().or(group_setup).unwrap_or("none");
        let wanted: &[&str] = match o.setup.as_deref() {
            Some("passive") => &["active"],
            Some("active") => &["passive"],
            _ => &["active", "passive"],
        };
        if !wanted.contains(&setup) {
            return Some(format!(
                "{which} answers a=setup:{setup} to an offer of a=setup:{}: the answerer must take {}",
                o.setup.as_deref().unwrap_or("actpass"),
                wanted.join(" or ")
            ));
        }
        let rtcp_mux = a.rtcp_mux || (bundled && tagged.is_some_and(|t| t.rtcp_mux));
        if o.rtcp_mux && !rtcp_mux {
            return Some(format!("{which} has no a=rtcp-mux, which the offer asked for"));
        }
    }
    if !offer.bundle.is_empty() {
        if answer.bundle.is_empty() {
            return Some(format!(
                "the answer has no a=group:BUNDLE (the offer bundled {})",
                offer.bundle.join(" ")
            ));
        }
        if let Some(stray) = answer.bundle.iter().find(|m| !offer.bundle.contains(m)) {
            return Some(format!(
                "the answer's BUNDLE group holds mid {stray:?}, which the offer did not bundle"
            ));
        }
    }
    None
}

/// The first codec `answer` gives another payload type number than
/// `offer` gave it, in words: RFC 3264, section 6.1, says the answer SHOULD
/// keep the offer's numbers (and its sender MUST send with them, whatever
/// the answer says). `None` when every answered codec keeps its number.
pub fn renumbered(offer: &SdpSummary, answer: &SdpSummary) -> Option<String> {
    for (index, (o, a)) in offer.media.iter().zip(&answer.media).enumerate() {
        if a.rejected {
            continue;
        }
        for codec in a.codecs.iter().filter(|c| !c.is_repair()) {
            let same = o
                .codecs
                .iter()
                .any(|c| c.pt == codec.pt && c.is(&codec.name) && c.clock_rate == codec.clock_rate);
            let offered_as: Vec<String> = o.codecs_named(&codec.name).map(|c| c.pt.to_string()).collect();
            if !same && !offered_as.is_empty() {
                return Some(format!(
                    "m-line {} ({}) answers {}/{} as payload type {}, which the offer gave it as {}",
                    index + 1,
                    a.kind,
                    codec.name,
                    codec.clock_rate,
                    codec.pt,
                    offered_as.join(", ")
                ));
            }
        }
    }
    None
}

fn parse_media_line(m: &str) -> Option<(MediaSection, Vec<u8>)> {
    let mut parts = m.split_ascii_whitespace();
    let kind = parts.next()?;
    // The port may carry a count ("9/2"); only the port itself matters here.
    let port: u16 = parts.next()?.split('/').next()?.parse().ok()?;
    let protocol = parts.next()?;
    // Non-RTP m-lines (application) have non-numeric formats such as "webrtc-datachannel".
    let formats: Vec<u8> = parts.filter_map(|f| f.parse().ok()).collect();
    let section = MediaSection {
        kind: kind.to_string(),
        port,
        rejected: port == 0,
        protocol: protocol.to_string(),
        mid: None,
        direction: SdpDirection::SendRecv,
        codecs: Vec::new(),
        candidates: Vec::new(),
        has_fingerprint: false,
        setup: None,
        rtcp_mux: false,
    };
    Some((section, formats))
}

fn parse_rtpmap(value: &str) -> Option<(u8, String, u32, Option<u16>)> {
    let (pt, encoding) = value.split_once(' ')?;
    let pt: u8 = pt.trim().parse().ok()?;
    let mut parts = encoding.trim().split('/');
    let name = parts.next().filter(|n| !n.is_empty())?;
    let rate: u32 = parts.next()?.parse().ok()?;
    let channels = match parts.next() {
        Some(c) => Some(c.parse().ok()?),
        None => None,
    };
    Some((pt, name.to_string(), rate, channels))
}

fn parse_fmtp(params: &str) -> Vec<(String, String)> {
    params
        .split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.trim().to_string(), v.trim().to_string()),
            None => (p.to_string(), String::new()),
        })
        .collect()
}

/// Static payload types of RFC 3551 that may appear without an rtpmap.
fn static_payload(pt: u8) -> Option<(&'static str, u32, Option<u16>)> {
    match pt {
        0 => Some(("PCMU", 8000, Some(1))),
        8 => Some(("PCMA", 8000, Some(1))),
        9 => Some(("G722", 8000, Some(1))),
        _ => None,
    }
}

fn build_codecs(
    formats: &[u8],
    rtpmaps: &[(u8, String, u32, Option<u16>)],
    fmtps: &[(u8, Vec<(String, String)>)],
) -> Vec<RtpCodec> {
    formats
        .iter()
        .filter_map(|&pt| {
            let (name, clock_rate, channels) = match rtpmaps.iter().find(|r| r.0 == pt) {
                Some((_, name, rate, channels)) => (name.clone(), *rate, *channels),
                None => {
                    let (name, rate, channels) = static_payload(pt)?;
                    (name.to_string(), rate, channels)
                }
            };
            let fmtp = fmtps
                .iter()
                .find(|f| f.0 == pt)
                .map(|f| f.1.clone())
                .unwrap_or_default();
            Some(RtpCodec {
                pt,
                name,
                clock_rate,
                channels,
                fmtp,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=ice-lite\r\n\
        a=fingerprint:sha-256 AA:BB\r\na=group:BUNDLE 0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=ice-ufrag:u\r\na=ice-pwd:p\r\n\
        a=sendonly\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n\
        a=candidate:1 1 udp 2130706431 127.0.0.1 8443 typ host\r\n\
        m=video 0 UDP/TLS/RTP/SAVPF 102\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=inactive\r\n\
        a=rtpmap:102 H264/90000\r\na=fmtp:102 packetization-mode=1;profile-level-id=42e01f\r\n";

    #[test]
    fn reads_kinds_ports_directions_and_codecs() {
        let s = SdpSummary::parse(ANSWER).unwrap();
        assert!(s.ice_lite && s.has_fingerprint && s.has_ice_credentials);
        assert_eq!(s.accepted_kinds(), ["audio"]);
        let audio = s.audio().unwrap();
        assert_eq!(audio.direction, SdpDirection::SendOnly);
        assert_eq!(
            audio.codec_names(),
            ["opus", "PCMU"],
            "static pt 0 without rtpmap is PCMU"
        );
        assert_eq!(audio.codecs[0].channels, Some(2));
        assert_eq!(audio.codecs[0].fmtp_value("useinbandfec"), Some("1"));
        assert_eq!(audio.candidates.len(), 1);
        let video = s.video().unwrap();
        assert!(video.rejected && !video.answerer_sends());
        assert_eq!(video.codecs[0].profile_level_id(), Some(0x42e01f));
        assert_eq!(video.codecs[0].packetization_mode(), Some(1));
    }

    #[test]
    fn an_answer_is_checked_against_its_offer() {
        let offer = SdpSummary::parse(
            "v=0\na=group:BUNDLE 0 1\nm=audio 9 UDP/TLS/RTP/SAVPF 109\na=mid:0\na=setup:passive\na=rtcp-mux\n\
             a=rtpmap:109 opus/48000/2\nm=video 9 UDP/TLS/RTP/SAVPF 126 97\na=mid:1\na=setup:passive\na=rtcp-mux\n\
             a=fmtp:126 packetization-mode=1\na=rtpmap:126 H264/90000\na=rtpmap:97 H264/90000\n",
        )
        .unwrap();
        let answer = |audio_pt: u8, setup: &str, video_fmtp: &str, bundle: &str| {
            SdpSummary::parse(&format!(
                "v=0\n{bundle}m=audio 9 UDP/TLS/RTP/SAVPF {audio_pt}\na=mid:0\na=setup:{setup}\na=rtcp-mux\n\
                 a=rtpmap:{audio_pt} opus/48000/2\nm=video 9 UDP/TLS/RTP/SAVPF 126\na=mid:1\na=setup:{setup}\n\
                 a=rtcp-mux\na=rtpmap:126 H264/90000\na=fmtp:126 {video_fmtp}\n"
            ))
            .unwrap()
        };
        let bundle = "a=group:BUNDLE 0 1\n";
        assert_eq!(
            answer_misfit(&offer, &answer(109, "active", "packetization-mode=1", bundle)),
            None
        );
        let misfit = |a: &SdpSummary| answer_misfit(&offer, a).unwrap();
        let renumbered_answer = answer(111, "active", "packetization-mode=1", bundle);
        assert_eq!(
            answer_misfit(&offer, &renumbered_answer),
            None,
            "renumbering is a SHOULD"
        );
        assert_eq!(
            renumbered(&offer, &renumbered_answer).unwrap(),
            "m-line 1 (audio) answers opus/48000 as payload type 111, which the offer gave it as 109"
        );
        assert_eq!(
            renumbered(&offer, &answer(109, "active", "packetization-mode=1", bundle)),
            None
        );
        assert!(misfit(&answer(109, "passive", "packetization-mode=1", bundle))
            .contains("a=setup:passive to an offer of a=setup:passive"));
        assert!(misfit(&answer(109, "actpass", "packetization-mode=1", bundle)).contains("must take active"));
        assert!(misfit(&answer(109, "active", "packetization-mode=0", bundle))
            .contains("packetization-mode 0, which the offer does not give it"));
        assert!(misfit(&answer(109, "active", "packetization-mode=1", "")).contains("no a=group:BUNDLE"));
        // RFC 9143: the group's other m-lines may leave the transport attributes out.
        let tagged_only = SdpSummary::parse(
            "v=0\na=group:BUNDLE 0 1\nm=audio 9 UDP/TLS/RTP/SAVPF 109\na=mid:0\na=setup:active\na=rtcp-mux\n\
             a=rtpmap:109 opus/48000/2\nm=video 9 UDP/TLS/RTP/SAVPF 126\na=mid:1\na=rtpmap:126 H264/90000\n\
             a=fmtp:126 packetization-mode=1\n",
        )
        .unwrap();
        assert_eq!(answer_misfit(&offer, &tagged_only), None);
        let one_line = SdpSummary::parse("v=0\nm=audio 9 RTP/SAVPF 109\na=rtpmap:109 opus/48000/2\n").unwrap();
        assert!(answer_misfit(&offer, &one_line)
            .unwrap()
            .contains("m-lines are [audio], the offer's [audio, video]"));
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        assert!(matches!(SdpSummary::parse(""), Err(SdpParseError::NoVersion(_))));
        assert!(matches!(
            SdpSummary::parse("HTTP/1.1 200"),
            Err(SdpParseError::NoVersion(_))
        ));
        assert!(matches!(
            SdpSummary::parse("v=0\nm=audio x RTP 0"),
            Err(SdpParseError::BadMediaLine { line: 2, .. })
        ));
        assert!(matches!(
            SdpSummary::parse("v=0\nm=audio 9 RTP 96\na=rtpmap:96 opus"),
            Err(SdpParseError::BadRtpmap { line: 3, .. })
        ));
        // Attributes before any m-line that belong to m-lines are ignored.
        let s = SdpSummary::parse("v=0\na=rtpmap:96 opus/48000\na=fmtp:96\n").unwrap();
        assert!(s.media.is_empty() && !s.has_fingerprint);
    }
}
