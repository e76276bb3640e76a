//! Backend hooks: HTTP POSTs to an application's backend on connect, publish
//! and play, in the manner of WCS's REST hooks.
//!
//! `POST {backend_url}/connect`, `/publishStream`, `/playStream` with a JSON
//! body (see docs/backend-hooks.md). A 2xx answer allows the action; any other
//! status, a timeout or a transport error refuses it. Each call runs in the
//! task of the connection that caused it, so a slow backend delays only that
//! client.

use std::time::Duration;

use serde::Serialize;

use crate::metrics::Metrics;

/// Which hook is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// A client connects.
    Connect,
    /// A client publishes a stream.
    PublishStream,
    /// A client plays a stream.
    PlayStream,
}

impl Hook {
    /// The path appended to the backend URL.
    pub fn path(self) -> &'static str {
        match self {
            Hook::Connect => "connect",
            Hook::PublishStream => "publishStream",
            Hook::PlayStream => "playStream",
        }
    }
}

/// The JSON body of every hook.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HookBody {
    /// The application key.
    pub app_key: String,
    /// The server's id of the connection (also sent to the client as `clientid`).
    pub session_id: String,
    /// The `login` the client passed in its connect arguments, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    /// The stream name without parameters (publishStream, playStream).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The parsed parameters: the connection's for connect, the stream name's for the others.
    pub custom: media::rtmp::url::Params,
    /// The connection's parameters (publishStream, playStream), so a backend sees both maps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_custom: Option<media::rtmp::url::Params>,
    /// The connect command's extra arguments (connect only), as JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_args: Option<serde_json::Value>,
    /// `flashVer` (connect only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flash_ver: Option<String>,
    /// Whether the stream has audio, where known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub has_audio: Option<bool>,
    /// Whether the stream has video, where known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub has_video: Option<bool>,
}

/// Why a hook refused.
#[derive(Debug, thiserror::Error)]
pub enum HookRefusal {
    /// The backend answered with a non-2xx status.
    #[error("backend answered {status} to {hook}")]
    Status {
        /// The hook path.
        hook: &'static str,
        /// The HTTP status.
        status: u16,
    },
    /// The backend did not answer in time.
    #[error("backend did not answer {hook} within {timeout:?}")]
    Timeout {
        /// The hook path.
        hook: &'static str,
        /// The configured timeout.
        timeout: Duration,
    },
    /// The request failed (connection refused, bad URL, ...).
    #[error("backend call {hook} failed: {error}")]
    Transport {
        /// The hook path.
        hook: &'static str,
        /// What went wrong.
        error: String,
    },
}

/// Calls backends.
#[derive(Debug, Clone)]
pub struct Hooks {
    client: reqwest::Client,
    timeout: Duration,
}

impl Hooks {
    /// A hook client with the given per-call timeout.
    pub fn new(timeout: Duration) -> Hooks {
        Hooks {
            // Redirects are not followed: a 3xx is a refusal like any other non-2xx
            // (a backend's 302 to a login page must not allow the action).
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("the hook HTTP client builds"),
            timeout,
        }
    }

    /// Calls `hook` on `backend_url` with `body`; `Ok` when the backend allows.
    pub async fn call(
        &self,
        backend_url: &str,
        hook: Hook,
        body: &HookBody,
        metrics: &Metrics,
    ) -> Result<(), HookRefusal> {
        metrics.hook_calls.inc();
        let url = format!("{}/{}", backend_url.trim_end_matches('/'), hook.path());
        let request = self.client.post(&url).json(body).send();
        let result = match tokio::time::timeout(self.timeout, request).await {
            Err(_) => Err(HookRefusal::Timeout {
                hook: hook.path(),
                timeout: self.timeout,
            }),
            Ok(Err(error)) => Err(HookRefusal::Transport {
                hook: hook.path(),
                error: error.to_string(),
            }),
            Ok(Ok(response)) if response.status().is_success() => Ok(()),
            Ok(Ok(response)) => Err(HookRefusal::Status {
                hook: hook.path(),
                status: response.status().as_u16(),
            }),
        };
        if let Err(refusal) = &result {
            metrics.hook_refusals.inc();
            tracing::info!(%url, %refusal, "backend refused");
        }
        result
    }
}
