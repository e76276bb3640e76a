//! NetStatus: the `info` objects Flash's NetConnection and NetStream raise as
//! `NetStatusEvent`s, carried by `_result`/`_error` answers and `onStatus` calls.
//!
//! Each has a `level` (status, warning or error), a `code` and a `description`;
//! stream statuses also carry `details` (the stream name) and `clientid`.
//! The sequences the reference server sends are documented in docs/netstatus.md.

use crate::amf::Value;

/// The codes used by servers and raised by Flash Player.
pub mod code {
    /// connect accepted.
    pub const CONNECT_SUCCESS: &str = "NetConnection.Connect.Success";
    /// connect refused by the application (unknown app, backend refusal).
    pub const CONNECT_REJECTED: &str = "NetConnection.Connect.Rejected";
    /// connect failed (raised by the player when the server cannot be reached).
    pub const CONNECT_FAILED: &str = "NetConnection.Connect.Failed";
    /// The connection closed (raised by the player when the socket closes).
    pub const CONNECT_CLOSED: &str = "NetConnection.Connect.Closed";
    /// A call to a method the server does not have.
    pub const CALL_FAILED: &str = "NetConnection.Call.Failed";
    /// publish accepted.
    pub const PUBLISH_START: &str = "NetStream.Publish.Start";
    /// publish refused: the name is in use or not allowed.
    pub const PUBLISH_BAD_NAME: &str = "NetStream.Publish.BadName";
    /// Publishing stopped.
    pub const UNPUBLISH_SUCCESS: &str = "NetStream.Unpublish.Success";
    /// Enhanced RTMP: the server asks the client to connect again (to the
    /// `tcUrl` in the info object, or the same one), as it shuts down.
    pub const CONNECT_RECONNECT_REQUEST: &str = "NetConnection.Connect.ReconnectRequest";
    /// play2: the server switches the stream being played to another
    /// (dynamic streaming; `details` names the new one).
    pub const PLAY_TRANSITION: &str = "NetStream.Play.Transition";
    /// play2: the switch took place (sent in an `onPlayStatus` data message).
    pub const PLAY_TRANSITION_COMPLETE: &str = "NetStream.Play.TransitionComplete";
    /// play: the playlist was reset.
    pub const PLAY_RESET: &str = "NetStream.Play.Reset";
    /// play: playback started.
    pub const PLAY_START: &str = "NetStream.Play.Start";
    /// play: playback stopped.
    pub const PLAY_STOP: &str = "NetStream.Play.Stop";
    /// play failed for a reason other than a missing stream (e.g. refused).
    pub const PLAY_FAILED: &str = "NetStream.Play.Failed";
    /// play: no such stream.
    pub const PLAY_STREAM_NOT_FOUND: &str = "NetStream.Play.StreamNotFound";
    /// play: the publisher of the stream being played started publishing.
    pub const PLAY_PUBLISH_NOTIFY: &str = "NetStream.Play.PublishNotify";
    /// play: the publisher of the stream being played stopped publishing.
    pub const PLAY_UNPUBLISH_NOTIFY: &str = "NetStream.Play.UnpublishNotify";
    /// play: a track of the stream is in a codec the player cannot take
    /// (Flash Player's code for a file with no track it supports; this
    /// server sends it at level warning, once per codec, when it withholds
    /// an Enhanced RTMP track from a player that did not announce its codec).
    pub const PLAY_NO_SUPPORTED_TRACK: &str = "NetStream.Play.NoSupportedTrackFound";
    /// Data messages start (sent as an onStatus data message after Play.Start).
    pub const DATA_START: &str = "NetStream.Data.Start";
    /// pause(true) accepted.
    pub const PAUSE_NOTIFY: &str = "NetStream.Pause.Notify";
    /// pause(false) accepted.
    pub const UNPAUSE_NOTIFY: &str = "NetStream.Unpause.Notify";
    /// A seek the server cannot do (a live stream has nothing to seek in).
    pub const SEEK_FAILED: &str = "NetStream.Seek.Failed";
    /// Raised by the player when the decoded picture size changes.
    pub const VIDEO_DIMENSION_CHANGE: &str = "NetStream.Video.DimensionChange";
}

/// The `level` of a NetStatus info object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Level {
    /// "status".
    Status,
    /// "warning".
    Warning,
    /// "error".
    Error,
}

impl Level {
    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Status => "status",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }

    /// Parses the wire string.
    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "status" => Some(Level::Status),
            "warning" => Some(Level::Warning),
            "error" => Some(Level::Error),
            _ => None,
        }
    }
}

/// A NetStatus info object.
#[derive(Debug, Clone, PartialEq)]
pub struct NetStatus {
    /// status, warning or error.
    pub level: Level,
    /// The code, e.g. `NetStream.Publish.Start`.
    pub code: String,
    /// A human-readable description.
    pub description: String,
    /// The stream name, for stream statuses.
    pub details: Option<String>,
    /// The server's id for the client connection.
    pub clientid: Option<String>,
    /// Enhanced RTMP's `NetConnection.Connect.ReconnectRequest`: where to
    /// connect again (absolute, or relative to the current tcUrl).
    pub tc_url: Option<String>,
}

impl NetStatus {
    /// A status with level, code and description only.
    pub fn new(level: Level, code: &str, description: impl Into<String>) -> Self {
        NetStatus {
            level,
            code: code.to_string(),
            description: description.into(),
            details: None,
            clientid: None,
            tc_url: None,
        }
    }

    /// Adds `details` (the stream name).
    pub fn details(mut self, details: impl Into<String>) -> Self {
        self.details = Some(details.into());
        self
    }

    /// Adds `tcUrl` (a reconnect request's destination).
    pub fn tc_url(mut self, tc_url: impl Into<String>) -> Self {
        self.tc_url = Some(tc_url.into());
        self
    }

    /// Adds `clientid`.
    pub fn clientid(mut self, clientid: impl Into<String>) -> Self {
        self.clientid = Some(clientid.into());
        self
    }

    /// The info object as an AMF object, in the order FMS writes its fields.
    pub fn to_value(&self) -> Value {
        let mut props = vec![
            ("level".to_string(), Value::from(self.level.as_str())),
            ("code".to_string(), Value::from(self.code.as_str())),
            ("description".to_string(), Value::from(self.description.as_str())),
        ];
        if let Some(details) = &self.details {
            props.push(("details".to_string(), Value::from(details.as_str())));
        }
        if let Some(clientid) = &self.clientid {
            props.push(("clientid".to_string(), Value::from(clientid.as_str())));
        }
        if let Some(tc_url) = &self.tc_url {
            props.push(("tcUrl".to_string(), Value::from(tc_url.as_str())));
        }
        Value::Object {
            class_name: None,
            properties: props,
        }
    }

    /// Reads an info object; `None` when it has no string `code`.
    /// A missing or unknown level reads as [`Level::Status`]... unless the code
    /// itself says otherwise, so callers can check levels strictly via
    /// [`NetStatus::level_from`].
    pub fn from_value(value: &Value) -> Option<NetStatus> {
        let code = value.get("code")?.as_str()?.to_string();
        let text = |k: &str| value.get(k).and_then(Value::as_str).map(str::to_string);
        Some(NetStatus {
            level: Self::level_from(value).unwrap_or(Level::Status),
            code,
            description: text("description").unwrap_or_default(),
            details: text("details"),
            clientid: value.get("clientid").map(|v| match v {
                Value::Number(n) => format!("{n}"),
                other => other.as_str().map(str::to_string).unwrap_or_else(|| other.to_string()),
            }),
            tc_url: text("tcUrl"),
        })
    }

    /// The `level` field exactly as sent, if it is one of the three levels.
    pub fn level_from(value: &Value) -> Option<Level> {
        value.get("level").and_then(Value::as_str).and_then(Level::parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_through_amf() {
        let status = NetStatus::new(
            Level::Error,
            code::PUBLISH_BAD_NAME,
            "stream1 is already being published.",
        )
        .details("stream1")
        .clientid("c1");
        assert_eq!(NetStatus::from_value(&status.to_value()), Some(status));
        assert_eq!(NetStatus::from_value(&Value::Null), None);
    }
}
