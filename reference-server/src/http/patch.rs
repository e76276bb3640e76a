//! What a `PATCH` to a WHIP or WHEP session gets (RFC 9725, section 4.3;
//! WHEP draft 03, section 4.5), decided from the request alone.
//!
//! The server takes trickle ICE and refuses ICE restarts. Taking trickled
//! candidates needs nothing more: the server is ICE-lite, so it answers the
//! peer's connectivity checks and never sends its own to the candidates it
//! is told. Because it supports one of the two, the protocol asks for
//! entity-tags on the ICE session (428 without `If-Match`, 412 for a stale
//! one) and 422 for the other.

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
    /// 415: not a trickle-ICE fragment.
    NotAFragment,
    /// 400: a fragment that is not SDP.
    Malformed(&'static str),
    /// 428: no `If-Match`.
    PreconditionRequired,
    /// 412: `If-Match` names another ICE session.
    PreconditionFailed,
    /// 422: an ICE restart (new credentials), which the server does not do.
    RestartUnsupported,
}

impl Answer {
    /// The status code.
    pub fn status(self) -> StatusCode {
        match self {
            Answer::Trickled => StatusCode::NO_CONTENT,
            Answer::NotAFragment => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Answer::Malformed(_) => StatusCode::BAD_REQUEST,
            Answer::PreconditionRequired => StatusCode::PRECONDITION_REQUIRED,
            Answer::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Answer::RestartUnsupported => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }

    /// Why, in a line for the body and the log (empty for 204).
    pub fn reason(self) -> &'static str {
        match self {
            Answer::Trickled => "",
            Answer::NotAFragment => "expected Content-Type: application/trickle-ice-sdpfrag",
            Answer::Malformed(why) => why,
            Answer::PreconditionRequired => "If-Match with the ICE session's ETag is required",
            Answer::PreconditionFailed => "If-Match does not name the current ICE session",
            Answer::RestartUnsupported => "ICE restarts are not supported (trickle ICE is)",
        }
    }
}

/// The entity-tag of a session's ICE session: without restarts there is one
/// per session, named after it.
pub fn etag(session_id: &str) -> String {
    format!("\"ice-{session_id}\"")
}

/// The answer to `patch` on the session `session_id`, whose peer offered
/// ICE username fragment `peer_ufrag`.
pub fn answer(patch: Patch<'_>, session_id: &str, peer_ufrag: &str) -> Answer {
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
    let ufrag = lines.iter().find_map(|line| line.strip_prefix("a=ice-ufrag:"));
    if ufrag.is_some_and(|ufrag| ufrag != peer_ufrag) {
        return Answer::RestartUnsupported;
    }
    match patch.if_match.map(str::trim) {
        None => Answer::PreconditionRequired,
        Some("*") => Answer::Trickled,
        Some(tags) if tags.split(',').any(|tag| tag.trim() == etag(session_id)) => Answer::Trickled,
        Some(_) => Answer::PreconditionFailed,
    }
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
            "s1",
            "peer",
        )
    }

    #[test]
    fn candidates_of_the_current_ice_session_are_taken() {
        let tag = etag("s1");
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
    fn new_credentials_are_a_restart_and_refused_422() {
        let restart = FRAGMENT.replace("ice-ufrag:peer", "ice-ufrag:fresh");
        assert_eq!(
            patch(Some(FRAGMENT_TYPE), Some("*"), &restart),
            Answer::RestartUnsupported
        );
        assert_eq!(Answer::RestartUnsupported.status().as_u16(), 422);
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
