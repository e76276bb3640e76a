//! The one error type of the WebRTC actors. Every variant carries what the
//! server answered (HTTP status and body, a `FAILED` status and its `info`,
//! the SDP it sent), so a failing test's message says what happened.

use std::error::Error;
use std::time::Duration;

/// An error and its causes, outermost first: reqwest's own message says
/// only "error sending request", its sources what the socket did.
fn causes(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// What went wrong while signalling, connecting or exchanging media with a server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebRtcError {
    /// The HTTP request could not be made or its answer could not be read
    /// (the message gives every cause, down to the socket's).
    #[error("{method} {url}: no HTTP response: {}", causes(source))]
    Http {
        /// `POST`, `PATCH` or `DELETE`.
        method: &'static str,
        /// The request's URL.
        url: String,
        /// What reqwest said.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with another status than the protocol asks for.
    #[error("{method} {url} answered {status} (expected {expected}): {body:?}")]
    HttpStatus {
        /// `POST`, `PATCH` or `DELETE`.
        method: &'static str,
        /// The request's URL.
        url: String,
        /// The status the server answered.
        status: u16,
        /// The status the protocol asks for.
        expected: u16,
        /// The body the server sent with it (what it says is wrong).
        body: String,
    },
    /// A `201 Created` (or a WHEP `406` counter-offer) without a
    /// `Location` header that resolves to a URL.
    #[error("POST {url} answered {status} without a usable Location header (got {location:?})")]
    BadLocation {
        /// The request's URL.
        url: String,
        /// The status (201 or 406).
        status: u16,
        /// The header's value, if there was one.
        location: Option<String>,
    },
    /// The server's SDP answer could not be parsed or str0m refused it.
    #[error("the server's SDP answer was refused: {reason}\n--- answer ---\n{sdp}")]
    BadAnswer {
        /// Why it was refused.
        reason: String,
        /// The answer as the server sent it.
        sdp: String,
    },
    /// The WebSocket could not be opened, or sending on it failed.
    #[error("WebSocket {url}: {reason}")]
    WebSocket {
        /// The WebSocket URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The server answered `connect` with `{"type":"connection","status":"FAILED"}`,
    /// or with an `error` message.
    #[error("the server refused the WebSocket connect: {info:?} (message: {message})")]
    ConnectFailed {
        /// The `info` it gave.
        info: String,
        /// The whole message, as JSON.
        message: String,
    },
    /// A stream of the WebSocket channel reached `FAILED`.
    #[error("stream {id:?} failed: FAILED {info:?} (statuses so far: {statuses})")]
    StreamFailed {
        /// The stream's id on the connection.
        id: String,
        /// The `info` of the `FAILED` event.
        info: String,
        /// Every status of that id so far, in order.
        statuses: String,
    },
    /// The server refused a video layer selection on the WebSocket channel
    /// (a `layer` message with status `FAILED`).
    #[error("the layer selection was refused: FAILED {info:?}")]
    LayerRefused {
        /// The `info` it gave.
        info: String,
    },
    /// The server closed the WebSocket (or it broke) while we waited for something.
    #[error("the WebSocket closed while waiting for {what}: {reason}")]
    WsClosed {
        /// What we were waiting for.
        what: String,
        /// The close frame's reason, or the transport error.
        reason: String,
    },
    /// Something did not happen in time.
    #[error("timed out after {after:?} waiting for {what}; last seen: {state}")]
    Timeout {
        /// What we were waiting for.
        what: String,
        /// How long we waited.
        after: Duration,
        /// The state when we gave up (a report or the statuses so far).
        state: String,
    },
    /// The UDP socket could not be bound or read.
    #[error("UDP socket: {0}")]
    Io(#[from] std::io::Error),
    /// str0m refused a local operation (building the offer, a keyframe request).
    #[error("str0m: {0}")]
    Rtc(#[from] str0m::RtcError),
    /// A codec could not be set up or failed on our own media.
    #[error("codec: {0}")]
    Codec(String),
    /// The options asked for something impossible (no media at all, an odd size).
    #[error("invalid options: {0}")]
    Options(String),
    /// The task that drives the peer has ended, so the peer cannot act any more.
    #[error("the peer has ended: {reason}")]
    PeerEnded {
        /// Why it ended.
        reason: String,
    },
}

impl WebRtcError {
    /// What the server said when this error is its refusal: an HTTP 4xx
    /// answer (404, 403, 409, ...), a `FAILED` stream status or a refused
    /// `connect` on the WebSocket channel. `None` for anything else: a
    /// connection closed without an answer, a timeout, a 5xx, our own error.
    pub fn refusal(&self) -> Option<String> {
        match self {
            WebRtcError::HttpStatus { status, body, .. } if (400..500).contains(status) => {
                Some(format!("HTTP {status} {:?}", body.trim()))
            }
            WebRtcError::StreamFailed { info, .. } | WebRtcError::LayerRefused { info } => {
                Some(format!("FAILED {info:?}"))
            }
            WebRtcError::ConnectFailed { info, .. } => Some(format!("connect FAILED {info:?}")),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_answer_of_the_server_is_a_refusal() {
        let status = |status| WebRtcError::HttpStatus {
            method: "POST",
            url: "http://h/whep/live/x".into(),
            status,
            expected: 201,
            body: "Stream not found\n".into(),
        };
        assert_eq!(status(404).refusal().as_deref(), Some("HTTP 404 \"Stream not found\""));
        assert_eq!(status(409).refusal().as_deref(), Some("HTTP 409 \"Stream not found\""));
        assert_eq!(status(503).refusal(), None, "overloaded is not a refusal of the stream");
        assert_eq!(status(200).refusal(), None);
        let failed = WebRtcError::StreamFailed {
            id: "p1".into(),
            info: "Stream not found".into(),
            statuses: "NEW, FAILED".into(),
        };
        assert_eq!(failed.refusal().as_deref(), Some("FAILED \"Stream not found\""));
        let closed = WebRtcError::WsClosed {
            what: "the answer".into(),
            reason: "reset".into(),
        };
        assert_eq!(closed.refusal(), None, "a closed socket is not an answer");
    }
}
