//! The suite's own browser page (`page.html`), served on 127.0.0.1 (a
//! secure context, so the fake camera may be used), and a Chromium that
//! has it open: it plays over WHEP or publishes over WHIP, and tells what
//! it got through `window.actor`.

use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::{Browser, BrowserError};

/// The page.
const PAGE: &str = include_str!("page.html");

/// What the page's `window.actor` holds.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PageState {
    /// NEW, CAPTURING, OFFERING, PLAYING, PUBLISHING, REFUSED, ERROR, STOPPED.
    pub status: String,
    /// Why it is REFUSED or in ERROR.
    pub error: Option<String>,
    /// The status of the answer to its offer.
    pub http_status: Option<u16>,
    /// The SDP answer.
    pub answer: Option<String>,
    /// `RTCPeerConnection.iceConnectionState`.
    pub ice_state: String,
    /// Pictures decoded (`inbound-rtp` `framesDecoded`).
    pub frames_decoded: u64,
    /// Video frames received.
    pub frames_received: u64,
    /// The size of the last picture decoded.
    pub frame_width: u32,
    /// The size of the last picture decoded.
    pub frame_height: u32,
    /// RTP packets received.
    pub video_packets: u64,
    /// RTP packets received.
    pub audio_packets: u64,
    /// Audio samples received (decoded, per channel).
    pub audio_samples: u64,
    /// Their clock rate.
    pub audio_clock_rate: u32,
    /// When the first picture was decoded, in ms after the offer was made.
    pub first_picture_ms: Option<f64>,
    /// When sound (RMS above -50 dBFS) was first heard, in ms after the offer.
    pub first_sound_ms: Option<f64>,
    /// The loudest 170 ms heard (RMS, 1 is full scale).
    pub rms_max: f64,
    /// The strongest frequency of the last sound heard.
    pub tone_hz: Option<f64>,
    /// Frames the publisher encoded.
    pub frames_encoded: u64,
}

/// Chromium with the suite's page open.
pub struct PageBrowser {
    browser: Browser,
    server: JoinHandle<()>,
}

impl PageBrowser {
    /// Serves the page and opens it in a headless Chromium with its fake
    /// camera and microphone.
    pub async fn open() -> Result<PageBrowser, BrowserError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| BrowserError::Start(format!("the page's server: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| BrowserError::Start(format!("the page's server: {e}")))?;
        let server = tokio::spawn(serve(listener));
        let mut browser = Browser::open_as_the_targets_page(&format!("http://{addr}/")).await?;
        browser
            .wait_for("typeof window.play", Duration::from_secs(10), |v| v == "function")
            .await?;
        Ok(PageBrowser { browser, server })
    }

    /// Plays `url` (a WHEP endpoint), offering audio and video as asked.
    pub async fn play(&mut self, url: &str, audio: bool, video: bool) -> Result<(), BrowserError> {
        self.call("play", url, audio, video).await
    }

    /// Publishes the fake camera and microphone to `url` (a WHIP endpoint).
    pub async fn publish(&mut self, url: &str, audio: bool, video: bool) -> Result<(), BrowserError> {
        self.call("publish", url, audio, video).await
    }

    async fn call(&mut self, function: &str, url: &str, audio: bool, video: bool) -> Result<(), BrowserError> {
        let url = serde_json::to_string(url).map_err(|e| BrowserError::Script(e.to_string()))?;
        self.browser
            .evaluate(&format!("{function}({url}, {audio}, {video}), true"))
            .await
            .map(drop)
    }

    /// What the page has seen so far.
    pub async fn state(&mut self) -> Result<PageState, BrowserError> {
        let value = self.browser.evaluate("window.actor").await?;
        serde_json::from_value(value).map_err(|e| BrowserError::Script(format!("window.actor: {e}")))
    }

    /// Closes the peer connection.
    pub async fn stop(&mut self) -> Result<(), BrowserError> {
        self.browser.evaluate("stop(), true").await.map(drop)
    }
}

impl Drop for PageBrowser {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Answers every request with the page.
async fn serve(listener: TcpListener) {
    while let Ok((mut socket, _)) = listener.accept().await {
        tokio::spawn(async move {
            // The request itself does not matter; read its head and answer.
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await;
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                PAGE.len()
            );
            let _ = socket.write_all(head.as_bytes()).await;
            let _ = socket.write_all(PAGE.as_bytes()).await;
        });
    }
}
