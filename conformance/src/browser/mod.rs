//! A real browser as a test peer: Debian's Chromium, headless, driven over the
//! Chrome DevTools Protocol (a WebSocket) to open a page and read values the
//! page exposes (`Runtime.evaluate`). [`page`] is the suite's own page, from
//! which the `browser` actor plays over WHEP and publishes over WHIP.

pub mod page;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;

/// Why the browser could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    /// Chromium is not installed or did not start.
    #[error("cannot start chromium ({0}): install Debian's chromium package (.ci/install-deps does)")]
    Start(String),
    /// The DevTools connection failed.
    #[error("DevTools: {0}")]
    DevTools(String),
    /// The page's script threw.
    #[error("page script failed: {0}")]
    Script(String),
}

/// Chromium's fake camera and microphone, granted without asking.
const FAKE_CAMERA: &[&str] = &["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"];

/// A headless Chromium with one page.
pub struct Browser {
    child: Child,
    socket: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    next_id: u64,
    _profile: TempDir,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Browser {
    /// Starts Chromium on `url` (flags for a closed network, autoplay without a
    /// user gesture, WebRTC over loopback) and connects to its page.
    pub async fn open(url: &str) -> Result<Browser, BrowserError> {
        Browser::start(url, &[]).await
    }

    /// As [`Browser::open`], with Chromium's fake camera (a moving test
    /// picture) and microphone (a beep every second), granted to the page
    /// without asking.
    pub async fn open_with_fake_camera(url: &str) -> Result<Browser, BrowserError> {
        Browser::start(url, FAKE_CAMERA).await
    }

    /// As [`Browser::open_with_fake_camera`], with the page's requests to
    /// other origins not subject to CORS: a page of the suite's own talks
    /// to the target's WHIP and WHEP endpoints as the target's own page
    /// would (CORS has cases of its own).
    pub async fn open_as_the_targets_page(url: &str) -> Result<Browser, BrowserError> {
        let mut flags = FAKE_CAMERA.to_vec();
        flags.push("--disable-web-security");
        Browser::start(url, &flags).await
    }

    async fn start(url: &str, extra: &[&str]) -> Result<Browser, BrowserError> {
        let program = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".to_string());
        let profile = std::env::temp_dir().join(format!("conformance-chromium-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&profile).map_err(|e| BrowserError::Start(e.to_string()))?;
        let profile = TempDir(profile);
        let child = Command::new(&program)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
                "--autoplay-policy=no-user-gesture-required",
                "--allow-loopback-in-peer-connection",
                "--remote-debugging-port=0",
            ])
            .args(extra)
            .arg(format!("--user-data-dir={}", profile.0.display()))
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| BrowserError::Start(format!("{program}: {e}")))?;
        // Chromium writes its DevTools port into the profile once it listens.
        let port_file = profile.0.join("DevToolsActivePort");
        let mut port = None;
        for _ in 0..300 {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                port = text.lines().next().and_then(|l| l.trim().parse::<u16>().ok());
                if port.is_some() {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let port = port.ok_or_else(|| BrowserError::Start("no DevTools port after 15 s".into()))?;
        let mut page = None;
        for _ in 0..100 {
            let targets: Value = match reqwest::get(format!("http://127.0.0.1:{port}/json")).await {
                Ok(response) => response.json().await.unwrap_or(Value::Null),
                Err(_) => Value::Null,
            };
            page = targets.as_array().and_then(|targets| {
                targets
                    .iter()
                    .find(|t| t["type"] == "page")
                    .and_then(|t| t["webSocketDebuggerUrl"].as_str().map(str::to_string))
            });
            if page.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let page = page.ok_or_else(|| BrowserError::DevTools("no page target".into()))?;
        let (socket, _) = tokio_tungstenite::connect_async(page.as_str())
            .await
            .map_err(|e| BrowserError::DevTools(e.to_string()))?;
        Ok(Browser {
            child,
            socket,
            next_id: 1,
            _profile: profile,
        })
    }

    /// Evaluates a JavaScript expression in the page and returns its value (by JSON).
    pub async fn evaluate(&mut self, expression: &str) -> Result<Value, BrowserError> {
        use futures_util::{SinkExt, StreamExt};
        let id = self.next_id;
        self.next_id += 1;
        let request = json!({"id": id, "method": "Runtime.evaluate",
                             "params": {"expression": expression, "returnByValue": true}});
        self.socket
            .send(Message::Text(request.to_string().into()))
            .await
            .map_err(|e| BrowserError::DevTools(e.to_string()))?;
        loop {
            let message = tokio::time::timeout(Duration::from_secs(10), self.socket.next())
                .await
                .map_err(|_| BrowserError::DevTools("no answer in 10 s".into()))?
                .ok_or_else(|| BrowserError::DevTools("connection closed".into()))?
                .map_err(|e| BrowserError::DevTools(e.to_string()))?;
            let Message::Text(text) = message else { continue };
            let answer: Value = serde_json::from_str(&text).map_err(|e| BrowserError::DevTools(e.to_string()))?;
            if answer["id"] != id {
                continue; // an event
            }
            if let Some(exception) = answer["result"].get("exceptionDetails") {
                return Err(BrowserError::Script(exception.to_string()));
            }
            return Ok(answer["result"]["result"]["value"].clone());
        }
    }

    /// Polls `expression` until `done` accepts its value or `timeout` passes;
    /// returns the last value either way.
    pub async fn wait_for(
        &mut self,
        expression: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Result<Value, BrowserError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let value = self.evaluate(expression).await?;
            if done(&value) || tokio::time::Instant::now() >= deadline {
                return Ok(value);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
