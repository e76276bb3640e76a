//! Admission: whether a client may publish or play a stream, decided in one
//! place for every protocol. RTMP (`rtmp/connection.rs`), WHIP/WHEP and the
//! WebSocket channel (`http/session.rs`) are thin adapters that turn a
//! [`Refusal`] into their own answer (a NetStatus code, an HTTP status, a
//! channel message).
//!
//! The order, the same for all of them:
//! 0. the name: at most `max_name_bytes` long ([`Refusal::NameTooLong`]);
//! 1. the application: it must be configured ([`Refusal::UnknownApp`]);
//!    RTMP resolves it once, at connect;
//! 2. publishing only: a name that is live already is refused
//!    ([`Refusal::NameInUse`]) without asking the backend, which could not
//!    make it succeed;
//! 3. the application's backend hook (`publishStream`, `playStream`), when
//!    it has one ([`Refusal::Backend`]);
//! 4. publishing only: the hub's reservation of the name, which is the
//!    only step that decides between two publishers racing for it.
//!
//! A player is then subscribed by its adapter, with the application's
//! missing-stream policy ([`AppConfig::on_missing_stream`]).

use media::rtmp::url::{NameWithParams, Params};

use crate::config::AppConfig;
use crate::hooks::{Hook, HookBody};
use crate::hub::{PublishError, Publisher};
use crate::server::Context;
use crate::text::Clipped;

/// Who asks: what a backend hook is told of the client.
#[derive(Debug, Clone, Default)]
pub struct Requester {
    /// The server's id of the client: an RTMP connection's `clientid`, a
    /// WebSocket connection's id, or one WHEP/WHIP request's.
    pub session_id: String,
    /// `login`, when the client gave one.
    pub login: Option<String>,
    /// The connection's parameters (an RTMP tcUrl's or WebSocket `connect`'s).
    pub params: Option<Params>,
    /// The client's IP address, when known.
    pub address: Option<std::net::IpAddr>,
}

/// Why a publish or a play was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The stream name is longer than `max_name_bytes` (the limit).
    #[error("The stream name is longer than {0} bytes")]
    NameTooLong(usize),
    /// The application key is not in the configuration.
    #[error("Application '{}' is not defined on this server", Clipped(.0))]
    UnknownApp(String),
    /// Somebody publishes this name already.
    #[error("{0} is already being published")]
    NameInUse(String),
    /// The application's backend said no.
    #[error("{verb} {name} was refused by the application backend ({reason})")]
    Backend {
        /// "Publishing" or "Playing".
        verb: &'static str,
        /// The stream name.
        name: String,
        /// What the backend answered.
        reason: String,
    },
}

/// The configuration of `app`, or [`Refusal::UnknownApp`].
pub fn app<'a>(ctx: &'a Context, app: &str) -> Result<&'a AppConfig, Refusal> {
    ctx.config
        .apps
        .get(app)
        .ok_or_else(|| Refusal::UnknownApp(app.to_string()))
}

/// [`Refusal::NameTooLong`] for a name longer than `max_name_bytes`.
fn name_fits(ctx: &Context, name: &NameWithParams) -> Result<(), Refusal> {
    let limit = ctx.config.max_name_bytes;
    if name.name.len() > limit {
        return Err(Refusal::NameTooLong(limit));
    }
    Ok(())
}

/// Admits a publisher of `name` in `app` and reserves the name for `owner`.
pub async fn publish(
    ctx: &Context,
    app_key: &str,
    name: &NameWithParams,
    requester: &Requester,
    owner: u64,
) -> Result<Publisher, Refusal> {
    name_fits(ctx, name)?;
    let config = app(ctx, app_key)?;
    if ctx.hub.is_live(app_key, &name.name) {
        return Err(Refusal::NameInUse(name.name.clone()));
    }
    if let Some(url) = &config.backend_url {
        let body = hook_body(app_key, name, requester, None);
        if let Err(refusal) = ctx.hooks.call(url, Hook::PublishStream, &body, &ctx.metrics).await {
            return Err(Refusal::Backend {
                verb: "Publishing",
                name: name.name.clone(),
                reason: refusal.to_string(),
            });
        }
    }
    ctx.hub
        .publish(app_key, &name.name, owner)
        .map_err(|PublishError::BadName(name)| Refusal::NameInUse(name))
}

/// Admits a player of `name` in `app`; the caller subscribes it.
pub async fn play<'a>(
    ctx: &'a Context,
    app_key: &str,
    name: &NameWithParams,
    requester: &Requester,
) -> Result<&'a AppConfig, Refusal> {
    name_fits(ctx, name)?;
    let config = app(ctx, app_key)?;
    if let Some(url) = &config.backend_url {
        let body = hook_body(app_key, name, requester, ctx.hub.tracks(app_key, &name.name));
        if let Err(refusal) = ctx.hooks.call(url, Hook::PlayStream, &body, &ctx.metrics).await {
            return Err(Refusal::Backend {
                verb: "Playing",
                name: name.name.clone(),
                reason: refusal.to_string(),
            });
        }
    }
    Ok(config)
}

/// The body of publishStream and playStream; `tracks` says whether the
/// stream has audio and video, where known (a live stream being played).
fn hook_body(app_key: &str, name: &NameWithParams, requester: &Requester, tracks: Option<(bool, bool)>) -> HookBody {
    HookBody {
        app_key: app_key.to_string(),
        session_id: requester.session_id.clone(),
        login: requester.login.clone(),
        name: Some(name.name.clone()),
        custom: name.params.clone(),
        connection_custom: requester.params.clone(),
        connect_args: None,
        flash_ver: None,
        has_audio: tracks.map(|(audio, _)| audio),
        has_video: tracks.map(|(_, video)| video),
    }
}
