//! The HTTP listener: `/metrics` (Prometheus text) and `/healthz`. WHEP, WHIP
//! and the WebSocket signalling channel will live here too.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::server::Context;

/// Serves HTTP until the server shuts down.
pub async fn serve(listener: TcpListener, ctx: Arc<Context>) {
    let shutdown = ctx.shutdown.clone();
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(ctx);
    if let Err(error) = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
    {
        tracing::error!(%error, "HTTP server failed");
    }
}

async fn metrics(State(ctx): State<Arc<Context>>) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    (
        [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        ctx.metrics.render(ctx.hub.live_streams()),
    )
}
