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
//! 2. the token, when the application has tokens for the action: one of
//!    them must be presented ([`Refusal::Unauthorized`], see [`presented`]),
//!    before anything else is revealed about the name (whether it is live);
//! 3. publishing only: a name that is live already is refused
//!    ([`Refusal::NameInUse`]) without asking the backend, which could not
//!    make it succeed;
//! 4. the application's backend hook (`publishStream`, `playStream`), when
//!    it has one ([`Refusal::Backend`]);
//! 5. publishing only: the hub's reservation of the name, which is the
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
    /// The token of an HTTP `Authorization: Bearer` header (WHIP, WHEP).
    pub bearer: Option<String>,
}

/// What a token is checked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// Publishing.
    Publish,
    /// Playing.
    Play,
}

impl Verb {
    /// "Publishing" or "Playing", for refusals.
    pub fn gerund(self) -> &'static str {
        match self {
            Verb::Publish => "Publishing",
            Verb::Play => "Playing",
        }
    }
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
    /// The application wants a token for this and none, or a wrong one,
    /// was presented.
    #[error("{} {} {}", .verb.gerund(), Clipped(.name), if *.presented { "was refused: the token is not accepted" } else { "needs a token" })]
    Unauthorized {
        /// What was asked.
        verb: Verb,
        /// The stream name.
        name: String,
        /// Whether a token was presented at all.
        presented: bool,
    },
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
    authorize(config, Verb::Publish, presented(name, requester), &name.name)?;
    if ctx.hub.name_taken(app_key, &name.name) {
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
    authorize(config, Verb::Play, presented(name, requester), &name.name)?;
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

/// The token a client presents: an HTTP bearer token, else the `token`
/// parameter of the stream name (`cam?token=…`), else that of the
/// connection (an RTMP tcUrl's `?token=…`, a WebSocket `connect`'s).
pub fn presented<'a>(name: &'a NameWithParams, requester: &'a Requester) -> Option<&'a str> {
    requester
        .bearer
        .as_deref()
        .or_else(|| name.params.get(TOKEN).map(String::as_str))
        .or_else(|| requester.params.as_ref()?.get(TOKEN).map(String::as_str))
}

/// The parameter that carries a token in stream names and URLs.
pub const TOKEN: &str = "token";

/// [`Refusal::Unauthorized`] unless `token` is one of `config`'s tokens for
/// `verb`, or the application has none for it. Used for a WHIP or WHEP
/// session's own requests too.
pub fn authorize(config: &AppConfig, verb: Verb, token: Option<&str>, name: &str) -> Result<(), Refusal> {
    let tokens = match verb {
        Verb::Publish => &config.publish_tokens,
        Verb::Play => &config.play_tokens,
    };
    if tokens.is_empty() {
        return Ok(());
    }
    let accepted = token.is_some_and(|token| {
        // Every token is compared in full: the time taken tells nothing of
        // which one, or how much of one, matched.
        tokens.iter().fold(false, |found, known| {
            same_secret(known.as_bytes(), token.as_bytes()) | found
        })
    });
    if accepted {
        return Ok(());
    }
    Err(Refusal::Unauthorized {
        verb,
        name: name.to_string(),
        presented: token.is_some(),
    })
}

/// Whether `a` and `b` are equal, in a time that depends on their lengths only.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let differ = a.iter().zip(b).fold(0u8, |differ, (x, y)| differ | (x ^ y));
    a.len() == b.len() && differ == 0
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

#[cfg(test)]
mod tests {
    use media::rtmp::url::split_params;

    use super::*;

    fn guarded() -> AppConfig {
        AppConfig {
            publish_tokens: vec!["pub-1".into(), "pub-2".into()],
            ..AppConfig::default()
        }
    }

    #[test]
    fn an_application_without_tokens_lets_anyone_in() {
        assert_eq!(authorize(&AppConfig::default(), Verb::Publish, None, "cam"), Ok(()));
        assert_eq!(authorize(&guarded(), Verb::Play, None, "cam"), Ok(()), "no play tokens");
    }

    #[test]
    fn only_a_listed_token_is_accepted() {
        assert_eq!(authorize(&guarded(), Verb::Publish, Some("pub-2"), "cam"), Ok(()));
        let missing = authorize(&guarded(), Verb::Publish, None, "cam").unwrap_err();
        assert_eq!(missing.to_string(), "Publishing cam needs a token");
        for wrong in ["pub-", "pub-22", "PUB-1", ""] {
            let refusal = authorize(&guarded(), Verb::Publish, Some(wrong), "cam").unwrap_err();
            assert_eq!(
                refusal.to_string(),
                "Publishing cam was refused: the token is not accepted"
            );
        }
    }

    #[test]
    fn a_bearer_token_comes_first_then_the_names_then_the_connections() {
        let name = split_params("cam?token=from-name");
        let mut requester = Requester {
            params: Some(split_params("x?token=from-connection").params),
            ..Requester::default()
        };
        assert_eq!(presented(&name, &requester), Some("from-name"));
        assert_eq!(presented(&split_params("cam"), &requester), Some("from-connection"));
        requester.bearer = Some("from-header".into());
        assert_eq!(presented(&name, &requester), Some("from-header"));
        assert_eq!(presented(&split_params("cam"), &Requester::default()), None);
    }
}
