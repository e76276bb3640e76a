//! Starting a WebRTC session on behalf of a signalling request: the
//! application's rules and backend hooks first, as for RTMP, then the session.

use std::sync::Arc;
use std::time::Instant;

use media::rtmp::url::{NameWithParams, Params};

use crate::config::MissingStreamPolicy;
use crate::hooks::{Hook, HookBody};
use crate::server::Context;
use crate::webrtc::{play, Direction, OfferSink, SessionError, SessionHandle};

/// Why a session was not started.
#[derive(Debug, thiserror::Error)]
pub enum StartFailure {
    /// The application key is not in the configuration.
    #[error("Application '{0}' is not defined on this server")]
    UnknownApp(String),
    /// The backend hook refused.
    #[error("Backend refused: {0}")]
    Refused(String),
    /// The WebRTC side refused.
    #[error(transparent)]
    Session(#[from] SessionError),
}

/// Who asks: the connection-level facts a backend hook receives.
#[derive(Debug, Clone, Default)]
pub struct Requester {
    /// The signalling session's id (a WebSocket connection, or one WHEP/WHIP request).
    pub session_id: String,
    /// `login`, when the client gave one.
    pub login: Option<String>,
    /// The connection's parameters (WebSocket `connect` params).
    pub params: Option<Params>,
}

/// Admits and starts a play or publish of `name` in `app` for `offer`.
/// `offers` is where a player's renegotiation offers go, when the
/// signalling can carry them (see [`crate::webrtc::WebRtc::play`]).
pub async fn start(
    ctx: &Arc<Context>,
    app: &str,
    name: &NameWithParams,
    direction: Direction,
    requester: &Requester,
    offer: &str,
    offers: Option<OfferSink>,
) -> Result<(SessionHandle, String), StartFailure> {
    let Some(app_config) = ctx.config.apps.get(app) else {
        return Err(StartFailure::UnknownApp(app.to_string()));
    };
    if let Some(url) = &app_config.backend_url {
        let tracks = match direction {
            Direction::Play => ctx.hub.tracks(app, &name.name),
            Direction::Publish => None,
        };
        let body = HookBody {
            app_key: app.to_string(),
            session_id: requester.session_id.clone(),
            login: requester.login.clone(),
            name: Some(name.name.clone()),
            custom: name.params.clone(),
            connection_custom: requester.params.clone(),
            connect_args: None,
            flash_ver: None,
            has_audio: tracks.map(|(audio, _)| audio),
            has_video: tracks.map(|(_, video)| video),
        };
        let hook = match direction {
            Direction::Play => Hook::PlayStream,
            Direction::Publish => Hook::PublishStream,
        };
        if let Err(refusal) = ctx.hooks.call(url, hook, &body, &ctx.metrics).await {
            return Err(StartFailure::Refused(refusal.to_string()));
        }
    }
    tracing::info!(%app, stream = %name.name, params = ?name.params, ?direction, "WebRTC session requested");
    if direction == Direction::Play && !ctx.config.quirks.answer_only_tracks_sent {
        wait_until_video_is_known(ctx, app, &name.name).await;
    }
    let started = match direction {
        Direction::Play => {
            let wait = app_config.on_missing_stream == MissingStreamPolicy::Wait;
            ctx.webrtc.play(ctx, app, &name.name, &name.params, wait, offer, offers)
        }
        Direction::Publish => ctx.webrtc.publish(ctx, app, &name.name, offer),
    };
    Ok(started?)
}

/// Waits, at most `webrtc.video_wait` after the publish started, while a
/// live stream has sent no video and its metadata does not say whether it
/// will (see [`play::video_undecided`]): the answer then offers video to a
/// player that arrives between a Flash microphone's first sound and its
/// camera's first picture.
async fn wait_until_video_is_known(ctx: &Arc<Context>, app: &str, stream: &str) {
    let wait = ctx.config.webrtc.video_wait;
    let Some(mut subscription) = ctx.hub.subscribe(app, stream, false) else {
        return;
    };
    let started = Instant::now();
    while let Some(deadline) = ctx
        .hub
        .describe(app, stream)
        .and_then(|description| play::video_undecided(&description, wait, Instant::now()))
    {
        // Any frame may be the one that decides; a lagged or closed ring too.
        if tokio::time::timeout_at(deadline.into(), subscription.media.recv())
            .await
            .is_err()
        {
            break;
        }
    }
    let waited = started.elapsed();
    if !waited.is_zero() {
        tracing::debug!(
            waited_ms = waited.as_millis() as u64,
            "waited to learn whether the stream has video"
        );
    }
}
