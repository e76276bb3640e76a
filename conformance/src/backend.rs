//! An application backend inside the suite: a real HTTP server that
//! receives a target's hooks (`POST {url}/connect`, `/publishStream`,
//! `/playStream`, the WCS-style calls of docs/backend-hooks.md), records
//! every call and answers by a policy (allow all unless told otherwise).
//!
//! Scenarios use it through a `backend` actor; the embedded target points
//! every application's `backend_url` at it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use tokio::sync::Notify;

/// One request the backend received.
#[derive(Debug, Clone, PartialEq)]
pub struct HookCall {
    /// The request path below the backend URL's base (`/hooks/connect`).
    pub path: String,
    /// The hook: the last path segment (`connect`, `publishStream`, ...).
    pub hook: String,
    /// The JSON body (`null` when there was none; a string when unparsable).
    pub body: serde_json::Value,
}

impl HookCall {
    /// A string field of the body.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.body.get(key).and_then(serde_json::Value::as_str)
    }
}

/// How the backend answers one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// How long to wait before answering.
    pub delay: Duration,
    /// A `Location` header (for redirects).
    pub location: Option<String>,
}

impl Answer {
    /// `200 OK` at once.
    pub fn allow() -> Answer {
        Answer::status(200)
    }

    /// This status at once.
    pub fn status(status: u16) -> Answer {
        Answer {
            status,
            delay: Duration::ZERO,
            location: None,
        }
    }
}

type Policy = dyn Fn(&HookCall) -> Answer + Send + Sync;

#[derive(Clone)]
struct Shared {
    calls: Arc<Mutex<Vec<HookCall>>>,
    arrived: Arc<Notify>,
    policy: Arc<Policy>,
}

/// A running backend; it stops when dropped.
pub struct Backend {
    addr: SocketAddr,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Backend {
    /// Listens on `addr` (port 0 picks one) and allows every call.
    pub async fn start(addr: SocketAddr) -> std::io::Result<Backend> {
        Backend::with_policy(addr, |_| Answer::allow()).await
    }

    /// Listens on `addr` and answers each call as `policy` says.
    pub async fn with_policy(
        addr: SocketAddr,
        policy: impl Fn(&HookCall) -> Answer + Send + Sync + 'static,
    ) -> std::io::Result<Backend> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Shared {
            calls: Arc::default(),
            arrived: Arc::default(),
            policy: Arc::new(policy),
        };
        let app = Router::new().fallback(any(answer)).with_state(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::warn!(%error, "the hook backend stopped");
            }
        });
        Ok(Backend { addr, shared, task })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `backend_url` a server should call: `http://ADDR/hooks`.
    pub fn url(&self) -> String {
        format!("http://{}/hooks", self.addr)
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<HookCall> {
        self.shared.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The first call (so far or within `within`) that `matches`; `Err`
    /// with every call received when none did.
    pub async fn wait_for(
        &self,
        matches: impl Fn(&HookCall) -> bool,
        within: Duration,
    ) -> Result<HookCall, Vec<HookCall>> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let arrived = self.shared.arrived.notified();
            if let Some(call) = self.calls().into_iter().find(|c| matches(c)) {
                return Ok(call);
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return Err(self.calls());
            }
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(State(shared): State<Shared>, uri: Uri, body: Bytes) -> Response {
    let body = if body.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&body).into_owned()))
    };
    let path = uri.path().to_string();
    let call = HookCall {
        hook: path.rsplit('/').next().unwrap_or_default().to_string(),
        path,
        body,
    };
    let answer = (shared.policy)(&call);
    shared.calls.lock().unwrap_or_else(|p| p.into_inner()).push(call);
    shared.arrived.notify_waiters();
    if !answer.delay.is_zero() {
        tokio::time::sleep(answer.delay).await;
    }
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match answer.location {
        Some(location) => (status, [("location", location)]).into_response(),
        None => status.into_response(),
    }
}
