//! Starting a WebRTC session on behalf of a signalling request: the
//! application's rules and backend hooks first, as for RTMP, then the session.

use std::sync::Arc;
use std::time::Instant;

use media::rtmp::url::NameWithParams;

pub use crate::admission::Requester;
use crate::admission::{self, Refusal};
use crate::config::MissingStreamPolicy;
use crate::hub::Tracks;
use crate::server::Context;
use crate::text::Clipped;
use crate::webrtc::{play, Direction, OfferSink, SessionError, SessionHandle};

/// Why a session was not started.
#[derive(Debug, thiserror::Error)]
pub enum StartFailure {
    /// Admission refused (see [`crate::admission`]).
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The WebRTC side refused.
    #[error(transparent)]
    Session(#[from] SessionError),
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
    let from = requester.address;
    let started = match direction {
        Direction::Play => {
            let wait = admit_player(ctx, app, name, requester).await?;
            ctx.webrtc
                .play(ctx, app, &name.name, &name.params, wait, offer, offers, from)
        }
        Direction::Publish => {
            let owner = rand::random::<u64>() | 1 << 63;
            let publisher = admission::publish(ctx, app, name, requester, owner).await?;
            requested(app, name, direction);
            ctx.webrtc.publish(ctx, app, &name.name, publisher, offer, from)
        }
    };
    Ok(started?)
}

/// Admits a player of `name` in `app` as [`start`] does, then makes the
/// server's counter-offer instead of answering its `offer` (see
/// [`crate::webrtc::WebRtc::counter_offer`]): the session id and the offer.
pub async fn counter_offer(
    ctx: &Arc<Context>,
    app: &str,
    name: &NameWithParams,
    requester: &Requester,
    offer: &str,
) -> Result<(String, String), StartFailure> {
    let wait = admit_player(ctx, app, name, requester).await?;
    let from = requester.address;
    Ok(ctx
        .webrtc
        .counter_offer(ctx, app, &name.name, &name.params, wait, offer, from)?)
}

/// Admits a player, then waits until the stream's tracks are known (see
/// [`wait_until_tracks_are_known`]); whether the application has players
/// wait for a stream nobody publishes yet.
async fn admit_player(
    ctx: &Arc<Context>,
    app: &str,
    name: &NameWithParams,
    requester: &Requester,
) -> Result<bool, StartFailure> {
    admission::play(ctx, app, name, requester).await?;
    requested(app, name, Direction::Play);
    if !ctx.config.quirks.answer_only_tracks_sent {
        wait_until_tracks_are_known(ctx, app, &name.name).await;
    }
    Ok(admission::app(ctx, app)?.on_missing_stream == MissingStreamPolicy::Wait)
}

fn requested(app: &str, name: &NameWithParams, direction: Direction) {
    tracing::info!(
        app = %Clipped(app),
        stream = %Clipped(&name.name),
        params = %crate::text::Params(&name.params),
        ?direction,
        "WebRTC session requested"
    );
}

/// Waits, at most `webrtc.video_wait` (for video) or `webrtc.audio_wait`
/// (for sound) after the publish started, while a live stream has not sent
/// a track and its metadata does not say whether it will (see
/// [`play::undecided`]): the answer then offers video to a player that
/// arrives between a Flash microphone's first sound and its camera's first
/// picture, and sound to one that arrives between an encoder's first
/// picture and its first sound.
async fn wait_until_tracks_are_known(ctx: &Arc<Context>, app: &str, stream: &str) {
    let waits = play::TrackWaits {
        video: ctx.config.webrtc.video_wait,
        audio: ctx.config.webrtc.audio_wait,
    };
    let Some(mut subscription) = ctx.hub.subscribe(app, stream, false, Tracks::All) else {
        return;
    };
    let started = Instant::now();
    while let Some(deadline) = ctx
        .hub
        .describe(app, stream)
        .and_then(|description| play::undecided(&description, waits, Instant::now()))
    {
        // Any delivery may be the one that decides.
        match tokio::time::timeout_at(deadline.into(), subscription.next()).await {
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    let waited = started.elapsed();
    if !waited.is_zero() {
        tracing::debug!(
            waited_ms = waited.as_millis() as u64,
            "waited to learn which tracks the stream has"
        );
    }
}
