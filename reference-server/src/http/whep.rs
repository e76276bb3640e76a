//! WHEP (play) and WHIP (publish, RFC 9725): one HTTP request sets up a
//! session, `DELETE` on its `Location` ends it. See docs/signalling.md.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use media::rtmp::url::split_params;

use super::session::{start, Requester, StartFailure};
use crate::admission::Refusal;
use crate::server::Context;
use crate::webrtc::{Direction, SessionError};

/// `POST /whep/{app}/{stream}`.
pub async fn play(
    State(ctx): State<Arc<Context>>,
    Path((app, stream)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    offer: String,
) -> Response {
    post(ctx, Direction::Play, app, stream, query, headers, offer).await
}

/// `POST /whip/{app}/{stream}`.
pub async fn publish(
    State(ctx): State<Arc<Context>>,
    Path((app, stream)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    offer: String,
) -> Response {
    post(ctx, Direction::Publish, app, stream, query, headers, offer).await
}

async fn post(
    ctx: Arc<Context>,
    direction: Direction,
    app: String,
    stream: String,
    query: Option<String>,
    headers: HeaderMap,
    offer: String,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/sdp") {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("expected Content-Type: application/sdp, got '{content_type}'\n"),
        )
            .into_response();
    }
    let name = split_params(&format!("{stream}?{}", query.unwrap_or_default()));
    let requester = Requester {
        session_id: format!("http-{:016x}", rand::random::<u64>()),
        ..Requester::default()
    };
    let kind = match direction {
        Direction::Play => "whep",
        Direction::Publish => "whip",
    };
    // WHEP cannot renegotiate (its draft 03, section 3): no offers later.
    match start(&ctx, &app, &name, direction, &requester, &offer, None).await {
        Ok((session, answer)) => (
            StatusCode::CREATED,
            [
                (header::CONTENT_TYPE, "application/sdp".to_string()),
                (header::LOCATION, format!("/{kind}/{app}/{stream}/{}", session.id)),
            ],
            answer,
        )
            .into_response(),
        Err(failure) => {
            let status = match &failure {
                StartFailure::Refused(Refusal::UnknownApp(_) | Refusal::Backend { .. }) => StatusCode::FORBIDDEN,
                StartFailure::Refused(Refusal::NameInUse(_)) => StatusCode::CONFLICT,
                StartFailure::Session(SessionError::BadOffer(_) | SessionError::BadParameter(_)) => {
                    StatusCode::BAD_REQUEST
                }
                StartFailure::Session(SessionError::NotFound) => StatusCode::NOT_FOUND,
                StartFailure::Session(SessionError::NoUsableMedia(_)) => StatusCode::UNPROCESSABLE_ENTITY,
                StartFailure::Session(SessionError::TooManySessions(_)) => StatusCode::SERVICE_UNAVAILABLE,
            };
            tracing::info!(%app, %stream, %status, reason = %failure, "{kind} refused");
            (status, format!("{failure}\n")).into_response()
        }
    }
}

/// `DELETE /whep/{app}/{stream}/{session}` (and `/whip/...`).
pub async fn delete(
    State(ctx): State<Arc<Context>>,
    Path((app, stream, id)): Path<(String, String, String)>,
) -> Response {
    match ctx.webrtc.session(&id) {
        Some(session) if session.app == app && session.stream == stream => {
            session.stop();
            (StatusCode::OK, "session ended\n").into_response()
        }
        _ => (StatusCode::NOT_FOUND, "no such session\n").into_response(),
    }
}

/// `PATCH` (trickle ICE): not needed with an ICE-lite server whose answer holds its candidates.
pub async fn patch() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::ALLOW, "POST, DELETE, OPTIONS")],
        "trickle ICE is not supported: the answer holds all candidates\n",
    )
        .into_response()
}
