//! The HTTP listener: the demo page (`/`), WHEP (`/whep/{app}/{stream}`), WHIP
//! (`/whip/{app}/{stream}`), the WebSocket signalling channel (`/ws`),
//! `/metrics` (Prometheus text) and `/healthz`. Every answer allows any origin,
//! so browser pages served elsewhere can signal here.

mod session;
mod whep;
mod ws;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use tokio::net::TcpListener;

use crate::server::Context;

/// The demo page: plays and publishes a named stream from a browser.
const DEMO_PAGE: &str = include_str!("http/demo.html");

/// Serves HTTP until the server shuts down.
pub async fn serve(listener: TcpListener, ctx: Arc<Context>) {
    let shutdown = ctx.shutdown.clone();
    let app = Router::new()
        .route("/", get(|| async { Html(DEMO_PAGE) }))
        .route("/whep/{app}/{stream}", post(whep::play).patch(whep::patch))
        .route("/whip/{app}/{stream}", post(whep::publish).patch(whep::patch))
        .route(
            "/whep/{app}/{stream}/{session}",
            delete(whep::delete).patch(whep::patch),
        )
        .route(
            "/whip/{app}/{stream}/{session}",
            delete(whep::delete).patch(whep::patch),
        )
        .route("/ws", get(ws::upgrade))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .layer(axum::middleware::from_fn(preflight))
        .layer(axum::middleware::map_response(cors))
        .with_state(ctx);
    if let Err(error) = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
    {
        tracing::error!(%error, "HTTP server failed");
    }
}

/// Answers every `OPTIONS` (CORS preflight) before routing.
async fn preflight(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if request.method() == Method::OPTIONS {
        return (
            StatusCode::NO_CONTENT,
            [
                (
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    "GET, POST, DELETE, PATCH, OPTIONS",
                ),
                (header::ACCESS_CONTROL_ALLOW_HEADERS, "Content-Type, Authorization"),
                (header::ACCESS_CONTROL_MAX_AGE, "86400"),
            ],
        )
            .into_response();
    }
    next.run(request).await
}

async fn cors(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Location"),
    );
    response
}

async fn metrics(State(ctx): State<Arc<Context>>) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        ctx.metrics.render(ctx.hub.live_streams()),
    )
}
