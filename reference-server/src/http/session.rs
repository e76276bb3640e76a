//! Starting a WebRTC session on behalf of a signalling request: the
//! application's rules and backend hooks first, as for RTMP, then the session.

use std::sync::Arc;

use media::rtmp::url::{NameWithParams, Params};

use crate::config::MissingStreamPolicy;
use crate::hooks::{Hook, HookBody};
use crate::server::Context;
use crate::webrtc::{Direction, SessionError, SessionHandle};

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
pub async fn start(
    ctx: &Arc<Context>,
    app: &str,
    name: &NameWithParams,
    direction: Direction,
    requester: &Requester,
    offer: &str,
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
    let started = match direction {
        Direction::Play => {
            let wait = app_config.on_missing_stream == MissingStreamPolicy::Wait;
            ctx.webrtc.play(ctx, app, &name.name, &name.params, wait, offer)
        }
        Direction::Publish => ctx.webrtc.publish(ctx, app, &name.name, offer),
    };
    Ok(started?)
}
