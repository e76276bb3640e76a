//! Starting and stopping the server: listeners, the shared context, and the
//! handle an embedding program (or a test) holds.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::hooks::Hooks;
use crate::hub::{Hub, HubLimits};
use crate::limits::PerAddress;
use crate::metrics::Metrics;
use crate::transcode::Transcoders;
use crate::webrtc::WebRtc;
use crate::{http, rtmp};

/// What every connection task shares.
pub struct Context {
    /// The configuration the server started with.
    pub config: Config,
    /// The stream registry.
    pub hub: Hub,
    /// The backend hook client.
    pub hooks: Hooks,
    /// Counters for /metrics.
    pub metrics: Arc<Metrics>,
    /// Cancelled when the server shuts down.
    pub shutdown: CancellationToken,
    /// True once the server drains ([`ServerHandle::drain`]).
    pub draining: tokio::sync::watch::Sender<bool>,
    /// WebRTC sessions and their UDP port.
    pub webrtc: Arc<WebRtc>,
    /// Shared audio and video transcoders.
    pub transcoders: Transcoders,
    /// The rooms of every application.
    pub rooms: Arc<crate::rooms::Rooms>,
    /// RTMP connections per client address.
    pub rtmp_addresses: Arc<PerAddress>,
    /// WebSocket signalling connections per client address.
    pub websocket_addresses: Arc<PerAddress>,
    /// WHEP players' server-sent event streams.
    pub(crate) events: crate::http::events::Registry,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A listener could not bind.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// The reference server. See [`Server::start`].
pub struct Server;

impl Server {
    /// Binds every listener and starts serving in the background of the current
    /// tokio runtime. Returns once the listeners are bound.
    pub async fn start(config: Config) -> Result<ServerHandle, StartError> {
        config.validate()?;
        let bind = |what, addr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind { what, addr, source })
        };
        let rtmp_listener = bind("RTMP", config.rtmp.listen).await?;
        let http_listener = bind("HTTP", config.http.listen).await?;
        let rtmp_addr = local_addr(&rtmp_listener, "RTMP", config.rtmp.listen)?;
        let http_addr = local_addr(&http_listener, "HTTP", config.http.listen)?;
        let webrtc = WebRtc::bind(&config.webrtc).await.map_err(|source| StartError::Bind {
            what: "WebRTC UDP",
            addr: config.webrtc.listen,
            source,
        })?;
        let webrtc_addr = webrtc.local_addr();

        let metrics = Arc::new(Metrics::default());
        let hub = Hub::new(
            HubLimits {
                player_queue_frames: config.rtmp.player_queue_frames,
                gop_cache_bytes: config.rtmp.gop_cache_bytes,
                gop_cache_duration: config.rtmp.gop_cache_duration,
                silent_publisher_takeover: config.silent_publisher_takeover,
                stream_dry_after: config.stream_dry_after,
            },
            metrics.clone(),
        );
        let ctx = Arc::new(Context {
            hooks: Hooks::new(config.hooks.timeout),
            rooms: Arc::new(crate::rooms::Rooms::new(config.quirks)),
            rtmp_addresses: PerAddress::new(config.rtmp.max_connections_per_address),
            websocket_addresses: PerAddress::new(config.http.max_websockets_per_address),
            events: Default::default(),
            transcoders: Transcoders::new(hub.clone(), metrics.clone()).with_quirks(config.quirks),
            config,
            hub: hub.clone(),
            metrics: metrics.clone(),
            shutdown: CancellationToken::new(),
            draining: tokio::sync::watch::Sender::new(false),
            webrtc: Arc::new(webrtc),
        });
        let tracker = TaskTracker::new();
        tracker.spawn(accept_rtmp(rtmp_listener, ctx.clone(), tracker.clone()));
        tracker.spawn(http::serve(http_listener, ctx.clone()));
        tracker.spawn(ctx.webrtc.receive_loop(&ctx));
        if !ctx.config.stream_dry_after.is_zero() {
            tracker.spawn(mark_dry_streams(hub.clone(), ctx.shutdown.clone()));
        }
        let quirks = ctx.config.quirks.names();
        if !quirks.is_empty() {
            tracing::warn!(?quirks, "known bugs switched on (quirks): for reproducing them only");
        }
        tracing::info!(%rtmp_addr, "RTMP listening");
        tracing::info!(%http_addr, "HTTP listening (demo page /, WHEP /whep, WHIP /whip, WebSocket /ws, /metrics, /healthz)");
        tracing::info!(%webrtc_addr, "WebRTC listening (UDP, ICE-lite)");
        Ok(ServerHandle {
            rtmp_addr,
            http_addr,
            webrtc_addr,
            ctx,
            tracker,
        })
    }
}

fn local_addr(listener: &TcpListener, what: &'static str, addr: SocketAddr) -> Result<SocketAddr, StartError> {
    listener
        .local_addr()
        .map_err(|source| StartError::Bind { what, addr, source })
}

/// Tells the subscribers of every stream that went dry so (see
/// [`Hub::mark_dry`]), once a second, until shutdown.
async fn mark_dry_streams(hub: Hub, shutdown: CancellationToken) {
    let mut every_second = tokio::time::interval(std::time::Duration::from_secs(1));
    every_second.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every_second.tick() => {
                let marked = hub.mark_dry(std::time::Instant::now());
                if marked > 0 {
                    tracing::debug!(marked, "streams went dry");
                }
            }
        }
    }
}

async fn accept_rtmp(listener: TcpListener, ctx: Arc<Context>, tracker: TaskTracker) {
    let next_id = AtomicU64::new(1);
    loop {
        let accepted = tokio::select! {
            _ = ctx.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (socket, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // Out of file descriptors and the like: wait a little, keep serving.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let metrics = ctx.metrics.clone();
        if metrics.rtmp_connections.get() as usize >= ctx.config.rtmp.max_connections {
            metrics.rtmp_connections_refused.inc();
            tracing::warn!(%peer, limit = ctx.config.rtmp.max_connections, "connection refused: too many connections");
            continue;
        }
        let Some(slot) = ctx.rtmp_addresses.admit(peer.ip()) else {
            metrics.rtmp_connections_refused.inc();
            tracing::warn!(
                %peer,
                limit = ctx.rtmp_addresses.limit(),
                "connection refused: too many connections from this address"
            );
            continue;
        };
        metrics.rtmp_connections_total.inc();
        metrics.rtmp_connections.inc();
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        let ctx = ctx.clone();
        tracker.spawn(async move {
            rtmp::connection::serve(socket, peer, ctx, id).await;
            metrics.rtmp_connections.dec();
            drop(slot);
        });
    }
}

/// A running server.
pub struct ServerHandle {
    rtmp_addr: SocketAddr,
    http_addr: SocketAddr,
    webrtc_addr: SocketAddr,
    ctx: Arc<Context>,
    tracker: TaskTracker,
}

impl ServerHandle {
    /// The bound RTMP address (the real port when 0 was asked for).
    pub fn rtmp_addr(&self) -> SocketAddr {
        self.rtmp_addr
    }

    /// The bound HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The bound WebRTC UDP address.
    pub fn webrtc_addr(&self) -> SocketAddr {
        self.webrtc_addr
    }

    /// `http://127.0.0.1:PORT` for this server.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// The context every task shares (hub, transcoders, WebRTC sessions).
    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// `rtmp://127.0.0.1:PORT/{app}` for this server.
    pub fn rtmp_url(&self, app: &str) -> String {
        format!("rtmp://{}/{app}", self.rtmp_addr)
    }

    /// The counters behind /metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.ctx.metrics
    }

    /// The stream registry.
    pub fn hub(&self) -> &Hub {
        &self.ctx.hub
    }

    /// Drains the server, for an operator about to take it out of service:
    /// every RTMP client connected now that announced Enhanced RTMP's
    /// capsEx Reconnect is asked to connect again
    /// (`NetConnection.Connect.ReconnectRequest`, with `rtmp.reconnect_tc_url`
    /// as its `tcUrl` when set), and `/healthz` answers 503 `draining` so
    /// that a load balancer sends no one new. Everything keeps being served
    /// until [`ServerHandle::shutdown`]. Draining again does nothing.
    pub fn drain(&self) {
        if self
            .ctx
            .draining
            .send_if_modified(|draining| !std::mem::replace(draining, true))
        {
            tracing::info!("draining: Enhanced RTMP clients are asked to reconnect, /healthz answers 503");
        }
    }

    /// Stops accepting, closes every connection and waits for all tasks.
    pub async fn shutdown(self) {
        self.ctx.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        tracing::info!("server stopped");
    }
}
