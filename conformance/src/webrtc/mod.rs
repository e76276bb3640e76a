//! The suite's WebRTC actors: a player and a publisher built on str0m that
//! speak to any server over the network, by WHEP/WHIP or by the WebSocket
//! channel of docs/signalling.md.
//!
//! * [`WebRtcPlayer`] offers recvonly audio (Opus, PCMU, PCMA) and/or video
//!   (H.264, packetization-mode 1, the usual profiles), **decodes** what it
//!   receives (libavcodec; Opus with `media`'s decoder, G.711 by formula) and
//!   keeps a [`PlayerReport`]: ICE/DTLS state, RTP packets per kind, decoded
//!   pictures and their size, whether the first frame was an IDR, decode
//!   failures, time to first audio and first picture, and the last seconds of
//!   PCM for level and pitch checks.
//! * [`WebRtcPublisher`] offers sendonly H.264 and/or Opus and, once
//!   connected, sends a moving test pattern (openh264) and a sine tone in real
//!   time, answering the server's PLI/FIR with an IDR.
//! * [`WsSession`] is one WebSocket signalling connection; it can carry any
//!   number of players and publishers and records every status event per id.
//! * [`SdpSummary`] reads a server's SDP answer for checks.
//!
//! Each peer is a str0m [`Rtc`](str0m::Rtc) driven by one tokio task that owns
//! a UDP socket (full ICE, controlling, its socket address as the only host
//! candidate) on the address this machine reaches the signalling server
//! from: 127.0.0.1 for a server on this machine ([`local_address_for`]). What the peer *does* with media is sans-IO: the
//! player's [`MediaReceiver`] and the publisher's [`H264Source`] and
//! [`ToneSource`] take bytes and time in and give bytes out, so they are tested
//! without sockets.
//!
//! ```no_run
//! # async fn demo() -> Result<(), conformance::webrtc::WebRtcError> {
//! use std::time::Duration;
//! use conformance::webrtc::{PlayerOptions, Signalling, WebRtcPlayer};
//!
//! let signalling = Signalling::http("http://127.0.0.1:8080", "live", "cam1");
//! let mut player = WebRtcPlayer::play(signalling, PlayerOptions::default()).await?;
//! assert!(player.answer().video().is_some_and(|v| v.has_codec("H264")));
//! let report = player
//!     .wait_until("a decoded picture and sound", |r| r.video.pictures > 0 && r.audio.decoded_frames > 10, Duration::from_secs(5))
//!     .await?;
//! assert_eq!((report.video.width, report.video.height), (320, 240));
//! assert!(player.audio_dbfs(Duration::from_millis(500)).unwrap_or(f64::NEG_INFINITY) > -30.0);
//! player.stop().await?;
//! # Ok(())
//! # }
//! ```

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Once;
use std::time::Duration;

use tokio::sync::watch;

pub mod count;
mod error;
pub mod http;
mod peer;
mod player;
mod publisher;
pub mod receive;
pub mod relay;
pub mod sdp;
pub mod shapes;
pub mod source;
pub mod sync;
pub mod ws;

pub use error::WebRtcError;
pub use peer::PeerStatus;
pub use player::{AudioCodec, OfferedVideo, PlayerOptions, PlayerReport, WebRtcPlayer};
pub use publisher::{PublisherOptions, PublisherReport, WebRtcPublisher};
pub use receive::{AudioStats, MediaReceiver, Pcm, VideoStats};
pub use relay::{Loss, UdpRelay};
pub use sdp::{MediaSection, RtpCodec, SdpDirection, SdpSummary};
pub use source::{EncodedFrame, H264Source, TestPattern, ToneSource};
pub use ws::{StreamEvent, StreamLog, StreamStatus, WsRequest, WsSession};

/// H.264 `profile-level-id`s the player offers by default: Constrained
/// Baseline, Baseline, Main and High, all level 3.1.
pub const DEFAULT_H264_PROFILES: [u32; 4] = [0x42e01f, 0x42001f, 0x4d001f, 0x64001f];

/// The H.264 `profile-level-id`s Safari (macOS and iOS 17) offers, in its
/// order: High 3.1 first, then Constrained Baseline 3.1.
pub const SAFARI_H264_PROFILES: [u32; 2] = [0x640c1f, 0x42e01f];

/// How long a player or publisher waits for the server's SDP answer.
pub const SIGNALLING_TIMEOUT: Duration = Duration::from_secs(10);

/// Installs str0m's crypto provider (aws-lc-rs) for the process, once. Every
/// constructor here calls it; call it yourself before building an `Rtc` of your own.
pub fn install_crypto() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| str0m::crypto::from_feature_flags().install_process_default());
}

/// How a player or publisher reaches the server.
#[derive(Debug, Clone)]
pub enum Signalling {
    /// WHEP (player) or WHIP (publisher) under `http_base` (e.g.
    /// `http://127.0.0.1:8080`): `POST {http_base}/whep/{app}/{stream}`.
    Http {
        /// Scheme, host and port of the HTTP server.
        http_base: String,
        /// The application key.
        app: String,
        /// The stream name, possibly with `?params`.
        stream: String,
    },
    /// WHEP or WHIP at exactly this URL, whatever the server's layout
    /// (MediaMTX: `http://host:8889/{stream}/whep`; SRS:
    /// `http://host:1985/rtc/v1/whep/?app=live&stream={stream}`).
    Url {
        /// The endpoint.
        url: String,
    },
    /// `play`/`publish` on a WebSocket connection, as stream `id`.
    Ws {
        /// The connection (its `connect` named the application).
        session: WsSession,
        /// The id of this stream on the connection.
        id: String,
        /// The stream name, possibly with `?params`.
        stream: String,
    },
}

impl Signalling {
    /// WHEP/WHIP on `http_base` for `app`/`stream`.
    pub fn http(http_base: &str, app: &str, stream: &str) -> Signalling {
        Signalling::Http {
            http_base: http_base.to_string(),
            app: app.to_string(),
            stream: stream.to_string(),
        }
    }

    /// WHEP or WHIP at `url`.
    pub fn url(url: &str) -> Signalling {
        Signalling::Url { url: url.to_string() }
    }

    /// The URL of the server signalled with: where the media's socket
    /// binds the address that reaches it ([`local_address_toward`]).
    pub fn server_url(&self) -> &str {
        match self {
            Signalling::Http { http_base, .. } => http_base,
            Signalling::Url { url } => url,
            Signalling::Ws { session, .. } => session.url(),
        }
    }

    /// The WebSocket connection `session`, as stream `id`.
    pub fn ws(session: &WsSession, id: &str, stream: &str) -> Signalling {
        Signalling::Ws {
            session: session.clone(),
            id: id.to_string(),
            stream: stream.to_string(),
        }
    }
}

/// How a running player or publisher ends its session.
#[derive(Debug, Clone)]
pub(crate) enum ActiveSignalling {
    /// `DELETE` this URL; the `Link`s of its `201` (`rel`, target).
    Http {
        location: String,
        links: Vec<(String, String)>,
    },
    /// `stop` this id.
    Ws { session: WsSession, id: String },
}

impl ActiveSignalling {
    /// Where the session lives: the WHEP/WHIP resource, or `ws:{id}`.
    pub(crate) fn location(&self) -> Option<&str> {
        match self {
            ActiveSignalling::Http { location, .. } => Some(location),
            ActiveSignalling::Ws { .. } => None,
        }
    }

    /// The `Link`s of the session's `201`: each `rel` with its target.
    pub(crate) fn links(&self) -> &[(String, String)] {
        match self {
            ActiveSignalling::Http { links, .. } => links,
            ActiveSignalling::Ws { .. } => &[],
        }
    }

    pub(crate) async fn stop(&self) -> Result<(), WebRtcError> {
        match self {
            ActiveSignalling::Http { location, .. } => http::end_session(location).await,
            ActiveSignalling::Ws { session, id } => session.stop(id),
        }
    }
}

/// Waits until `check` gives a value, re-checking whenever `changed` moves.
/// `check` may end the wait early with an error; on timeout, `describe` says
/// what was awaited and what the state was.
pub(crate) async fn wait_for<T>(
    changed: &watch::Sender<u64>,
    timeout: Duration,
    mut check: impl FnMut() -> Result<Option<T>, WebRtcError>,
    describe: impl FnOnce() -> (String, String),
) -> Result<T, WebRtcError> {
    let mut seen = changed.subscribe();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check()? {
            return Ok(value);
        }
        // Err(_) from `changed()` cannot happen while `changed` is borrowed; treat it like a timeout.
        if !matches!(tokio::time::timeout_at(deadline, seen.changed()).await, Ok(Ok(()))) {
            if let Some(value) = check()? {
                return Ok(value);
            }
            let (what, state) = describe();
            return Err(WebRtcError::Timeout {
                what,
                after: timeout,
                state,
            });
        }
    }
}

/// The local address this machine sends to `target` from (what the
/// routing table picks; nothing is sent): 127.0.0.1 for a server on this
/// machine's loopback, an interface's address for one elsewhere. Where
/// that cannot be learnt, 127.0.0.1.
pub fn local_address_toward(target: IpAddr) -> IpAddr {
    let unspecified: IpAddr = match target {
        IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    };
    std::net::UdpSocket::bind((unspecified, 0))
        .and_then(|socket| {
            socket.connect((target, 9))?;
            socket.local_addr()
        })
        .map(|local| local.ip())
        .unwrap_or(Ipv4Addr::LOCALHOST.into())
}

/// [`local_address_toward`] the host of `url` (resolved; its first IPv4
/// address if it has one, as the servers' candidates mostly are: `localhost`
/// is 127.0.0.1, not ::1); 127.0.0.1 where it does not resolve.
pub async fn local_address_for(url: &str) -> IpAddr {
    let Ok(url) = reqwest::Url::parse(url) else {
        return Ipv4Addr::LOCALHOST.into();
    };
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return Ipv4Addr::LOCALHOST.into();
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let Ok(addrs) = tokio::net::lookup_host((host, port)).await else {
        return Ipv4Addr::LOCALHOST.into();
    };
    let addrs: Vec<IpAddr> = addrs.map(|addr| addr.ip()).collect();
    match addrs.iter().find(|ip| ip.is_ipv4()).or(addrs.first()) {
        Some(&ip) => local_address_toward(ip),
        None => Ipv4Addr::LOCALHOST.into(),
    }
}

#[cfg(test)]
mod bind_tests {
    use super::*;

    #[test]
    fn media_binds_the_address_that_reaches_the_server() {
        let loopback = IpAddr::from([127, 0, 0, 1]);
        assert_eq!(local_address_toward(loopback), loopback);
        // All of 127/8 is this machine's loopback, reached from 127.0.0.1.
        assert_eq!(local_address_toward(IpAddr::from([127, 0, 0, 2])), loopback);
        // An address of this machine's own interfaces is reached from itself.
        let own = std::net::UdpSocket::bind("0.0.0.0:0")
            .and_then(|s| s.connect("192.0.2.1:9").and(s.local_addr()))
            .map(|a| a.ip());
        if let Some(own) = own.ok().filter(|ip| !ip.is_unspecified()) {
            assert_eq!(local_address_toward(own), own);
        }
    }

    #[tokio::test]
    async fn a_signalling_url_names_the_server() {
        let loopback = IpAddr::from([127, 0, 0, 1]);
        assert_eq!(local_address_for("http://127.0.0.1:8080").await, loopback);
        assert_eq!(local_address_for("ws://localhost:8080/ws").await, loopback);
        assert_eq!(local_address_for("not a url").await, loopback);
        let signalling = Signalling::url("http://127.0.0.2:1985/rtc/v1/whep/?app=live&stream=a");
        assert_eq!(
            signalling.server_url(),
            "http://127.0.0.2:1985/rtc/v1/whep/?app=live&stream=a"
        );
    }
}
