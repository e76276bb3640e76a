//! What a `PATCH` to a WHIP or WHEP session gets (RFC 9725, section 4.3;
//! WHEP draft 03, section 4.5), decided from the request alone.
//!
//! The server takes trickle ICE and ICE restarts. Taking trickled
//! candidates needs nothing more: the server is ICE-lite, so it answers the
//! peer's connectivity checks and never sends its own to the candidates it
//! is told. An ICE restart (new `ice-ufrag` and `ice-pwd`, RFC 9725 section
//! 4.3.3) gives the session new credentials of its own, answered with `200`,
//! a fragment holding them, and the new ICE session's entity-tag. Each ICE
//! session has its own entity-tag: `If-Match` is required (428 without it)
//! and must name the current one (412 otherwise), or be `*` for a restart.

use axum::http::StatusCode;

/// The media type of a trickle-ICE SDP fragment (RFC 8840).
pub const FRAGMENT_TYPE: &str = "application/trickle-ice-sdpfrag";

/// The parts of a `PATCH` that decide its answer.
#[derive(Debug, Clone, Copy)]
pub struct Patch<'a> {
    /// `Content-Type`.
    pub content_type: Option<&'a str>,
    /// `If-Match`.
    pub if_match: Option<&'a str>,
    /// The body.
    pub body: &'a str,
}

/// The answer to a `PATCH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 204: candidates taken.
    Trickled,
    /// 200: an ICE restart, to be done; the body is [`restarted`].
    Restart,
    /// 415: not a trickle-ICE fragment.
    NotAFragment,
    /// 400: a fragment that is not SDP.
    Malformed(&'static str),
    /// 428: no `If-Match`.
    PreconditionRequired,
    /// 412: `If-Match` names another ICE session.
    PreconditionFailed,
}

impl Answer {
    /// The status code.
    pub fn status(self) -> StatusCode {
        match self {
            Answer::Trickled => StatusCode::NO_CONTENT,
            Answer::Restart => StatusCode::OK,
            Answer::NotAFragment => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Answer::Malformed(_) => StatusCode::BAD_REQUEST,
            Answer::PreconditionRequired => StatusCode::PRECONDITION_REQUIRED,
            Answer::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
        }
    }

    /// Why, in a line for the body and the log (empty for 204 and 200).
    pub fn reason(self) -> &'static str {
        match self {
            Answer::Trickled | Answer::Restart => "",
            Answer::NotAFragment => "expected Content-Type: application/trickle-ice-sdpfrag",
            Answer::Malformed(why) => why,
            Answer::PreconditionRequired => "If-Match with the ICE session's ETag is required",
            Answer::PreconditionFailed => "If-Match does not name the current ICE session",
        }
    }
}

/// The entity-tag of ICE session number `generation` (0 before any
/// restart) of the session `session_id`: unique per ICE session, as RFC
/// 9725 section 4.3.1 asks of a server that restarts ICE.
pub fn etag(session_id: &str, generation: u32) -> String {
    match generation {
        0 => format!("\"ice-{session_id}\""),
        n => format!("\"ice-{session_id}-{n}\""),
    }
}

/// The answer to `patch` on an ICE session whose entity-tag is `etag` and
/// whose peer's ICE username fragment is `peer_ufrag`.
pub fn answer(patch: Patch<'_>, etag: &str, peer_ufrag: &str) -> Answer {
    let media_type = patch.content_type.and_then(|t| t.split(';').next()).map(str::trim);
    if !media_type.is_some_and(|t| t.eq_ignore_ascii_case(FRAGMENT_TYPE)) {
        return Answer::NotAFragment;
    }
    let lines: Vec<&str> = patch
        .body
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() {
        return Answer::Malformed("an empty fragment");
    }
    if !lines.iter().all(|line| crate::webrtc::is_sdp_line(line)) {
        return Answer::Malformed("a fragment line is not SDP (type=value)");
    }
    let restart = attribute(patch.body, "ice-ufrag").is_some_and(|ufrag| ufrag != peer_ufrag);
    if restart && credentials(patch.body).is_none() {
        return Answer::Malformed("an ICE restart needs both a=ice-ufrag and a=ice-pwd");
    }
    let matches = |tags: &str| tags.split(',').any(|tag| tag.trim() == etag);
    match patch.if_match.map(str::trim) {
        None => Answer::PreconditionRequired,
        Some("*") if restart => Answer::Restart,
        Some("*") => Answer::Trickled,
        Some(tags) if matches(tags) && restart => Answer::Restart,
        Some(tags) if matches(tags) => Answer::Trickled,
        Some(_) => Answer::PreconditionFailed,
    }
}

/// The value of the first `a=NAME:` line of a fragment.
fn attribute<'a>(body: &'a str, name: &str) -> Option<&'a str> {
    body.lines().find_map(|line| {
        line.trim_end()
            .strip_prefix("a=")?
            .strip_prefix(name)?
            .strip_prefix(':')
            .map(str::trim)
    })
}

/// A fragment's ICE username fragment and password, when it has both.
pub fn credentials(body: &str) -> Option<(&str, &str)> {
    let ufrag = attribute(body, "ice-ufrag").filter(|u| !u.is_empty())?;
    let pwd = attribute(body, "ice-pwd").filter(|p| !p.is_empty())?;
    Some((ufrag, pwd))
}

/// The body of a `200` to an ICE restart (RFC 9725, section 4.3.3): the
/// server's new credentials and its candidates, with `a=ice-lite` as in its
/// answer, under the m-line and mid the peer's fragment named (the bundle's
/// first).
pub fn restarted(request: &str, (ufrag, pwd): (&str, &str), candidates: &[String]) -> String {
    let mut fragment = String::from("a=ice-lite\r\n");
    if let Some(m_line) = request.lines().map(str::trim_end).find(|line| line.starts_with("m=")) {
        fragment += &format!("{m_line}\r\n");
    }
    if let Some(mid) = attribute(request, "mid") {
        fragment += &format!("a=mid:{mid}\r\n");
    }
    fragment += &format!("a=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\n");
    for candidate in candidates {
        fragment += &format!("{candidate}\r\n");
    }
    fragment + "a=end-of-candidates\r\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAGMENT: &str = "a=ice-ufrag:peer\r\na=ice-pwd:secret\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n\
                            a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\n";

    fn patch<'a>(content_type: Option<&'a str>, if_match: Option<&'a str>, body: &'a str) -> Answer {
        answer(
            Patch {
                content_type,
                if_match,
                body,
            },
            &etag("s1", 0),
            "peer",
        )
    }

    #[test]
    fn candidates_of_the_current_ice_session_are_taken() {
        let tag = etag("s1", 0);
        assert_eq!(patch(Some(FRAGMENT_TYPE), Some(&tag), FRAGMENT), Answer::Trickled);
        assert_eq!(patch(Some(FRAGMENT_TYPE), Some("*"), FRAGMENT), Answer::Trickled);
        let listed = format!("\"other\", {tag}");
        assert_eq!(patch(Some(FRAGMENT_TYPE), Some(&listed), FRAGMENT), Answer::Trickled);
        assert_eq!(Answer::Trickled.status(), StatusCode::NO_CONTENT);
    }

    #[test]
    fn preconditions_are_required_and_checked() {
        assert_eq!(patch(Some(FRAGMENT_TYPE), None, FRAGMENT), Answer::PreconditionRequired);
        assert_eq!(
            patch(Some(FRAGMENT_TYPE), Some("\"ice-s2\""), FRAGMENT),
            Answer::PreconditionFailed
        );
        assert_eq!(Answer::PreconditionRequired.status().as_u16(), 428);
        assert_eq!(Answer::PreconditionFailed.status().as_u16(), 412);
    }

    #[test]
    fn new_credentials_are_a_restart_with_if_match_star_or_the_current_tag() {
        let restart = FRAGMENT.replace("ice-ufrag:peer", "ice-ufrag:fresh");
        assert_eq!(patch(Some(FRAGMENT_TYPE), Some("*"), &restart), Answer::Restart);
        assert_eq!(
            patch(Some(FRAGMENT_TYPE), Some(&etag("s1", 0)), &restart),
            Answer::Restart
        );
        assert_eq!(Answer::Restart.status(), StatusCode::OK);
        assert_eq!(patch(Some(FRAGMENT_TYPE), None, &restart), Answer::PreconditionRequired);
        assert_eq!(
            patch(Some(FRAGMENT_TYPE), Some(&etag("s1", 1)), &restart),
            Answer::PreconditionFailed
        );
        let no_pwd = restart.replace("a=ice-pwd:secret\r\n", "");
        assert!(matches!(
            patch(Some(FRAGMENT_TYPE), Some("*"), &no_pwd),
            Answer::Malformed(_)
        ));
    }

    #[test]
    fn each_ice_session_has_its_own_tag() {
        assert_eq!(etag("s1", 0), "\"ice-s1\"");
        assert_eq!(etag("s1", 2), "\"ice-s1-2\"");
        assert_ne!(etag("s1", 1), etag("s1", 2));
    }

    #[test]
    fn a_restart_is_answered_with_new_credentials_under_the_peers_m_line() {
        let restart = FRAGMENT.replace("ice-ufrag:peer", "ice-ufrag:fresh");
        assert_eq!(credentials(&restart), Some(("fresh", "secret")));
        let candidate = "a=candidate:1 1 udp 2130706431 127.0.0.1 4000 typ host".to_string();
        let body = restarted(&restart, ("new", "newpassword"), &[candidate]);
        assert_eq!(
            body,
            "a=ice-lite\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=ice-ufrag:new\r\n\
             a=ice-pwd:newpassword\r\na=candidate:1 1 udp 2130706431 127.0.0.1 4000 typ host\r\n\
             a=end-of-candidates\r\n"
        );
        assert!(body.lines().all(crate::webrtc::is_sdp_line));
    }

    #[test]
    fn what_is_not_a_fragment_is_refused_4xx() {
        assert_eq!(
            patch(Some("application/sdp"), Some("*"), FRAGMENT),
            Answer::NotAFragment
        );
        assert_eq!(patch(None, Some("*"), FRAGMENT), Answer::NotAFragment);
        assert!(matches!(
            patch(Some(FRAGMENT_TYPE), Some("*"), ""),
            Answer::Malformed(_)
        ));
        assert!(matches!(
            patch(Some(FRAGMENT_TYPE), Some("*"), "hello world"),
            Answer::Malformed(_)
        ));
        assert_eq!(
            patch(
                Some("Application/Trickle-ICE-SDPFrag; charset=utf-8"),
                Some("*"),
                FRAGMENT
            ),
            Answer::Trickled
        );
    }
}
