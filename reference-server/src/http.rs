//! The HTTP listener: the demo page (`/`), WHEP (`/whep/{app}/{stream}`), WHIP
//! (`/whip/{app}/{stream}`), the WebSocket signalling channel (`/ws`),
//! `/metrics` (Prometheus text) and `/healthz`. Every answer allows any origin,
//! so browser pages served elsewhere can signal here.

pub(crate) mod events;
mod layer;
pub(crate) mod patch;
mod session;
mod whep;
pub(crate) mod ws;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
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
        .route("/whep/{app}/{stream}", post(whep::play).get(whep::describe_endpoint))
        .route("/whip/{app}/{stream}", post(whep::publish).get(whep::describe_endpoint))
        .route(
            "/whep/{app}/{stream}/{session}",
            get(whep::describe_session).delete(whep::delete).patch(whep::trickle),
        )
        .route("/whep/{app}/{stream}/{session}/sse", post(events::create))
        .route("/whep/{app}/{stream}/{session}/layer", post(layer::select))
        .route(
            "/whep/{app}/{stream}/{session}/sse/{id}",
            get(events::pull).delete(events::delete),
        )
        .route(
            "/whip/{app}/{stream}/{session}",
            get(whep::describe_session).delete(whep::delete).patch(whep::trickle),
        )
        .route("/ws", get(ws::upgrade))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .layer(axum::middleware::from_fn(preflight))
        .layer(axum::middleware::map_response(cors))
        .with_state(ctx);
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    if let Err(error) = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
    {
        tracing::error!(%error, "HTTP server failed");
    }
}

/// `ok`, or 503 `draining` once the server drains (for load balancers).
async fn healthz(State(ctx): State<Arc<Context>>) -> Response {
    match *ctx.draining.borrow() {
        true => (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response(),
        false => "ok\n".into_response(),
    }
}

/// Answers every `OPTIONS` (CORS preflight, and WHIP/WHEP's `Accept-Post`
/// of RFC 9725 section 4.2) before routing.
async fn preflight(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if request.method() == Method::OPTIONS {
        return (
            StatusCode::OK,
            [
                (
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    "GET, HEAD, POST, DELETE, PATCH, OPTIONS",
                ),
                (
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    "Content-Type, Authorization, If-Match",
                ),
                (header::ACCESS_CONTROL_MAX_AGE, "86400"),
                (HeaderName::from_static("accept-post"), "application/sdp"),
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
        HeaderValue::from_static("Location, ETag, Retry-After, Link"),
    );
    response
}

async fn metrics(State(ctx): State<Arc<Context>>) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        ctx.metrics.render(ctx.hub.live_streams()),
    )
}
