//! WHEP's server-sent events extension (the WHEP extensions draft, section
//! "Server Sent Events extension"). A player's `201 Created` carries a
//! `Link` to the session's event entry point with the events it offers; the
//! player `POST`s a JSON array of the events it wants (none: all of them),
//! gets a `201` whose `Location` it long-pulls as `text/event-stream`, and
//! may `DELETE` it. Events (each one `data` line of JSON):
//! - `active` when the played stream has a publisher (at once if it has
//!   one), `inactive` when it loses it;
//! - `viewercount`, the stream's players (RTMP and WebRTC), when it changes,
//!   looked at every second;
//! - `reconnect` when the server drains: play again, elsewhere;
//! - `layers`, the stream's video tracks with their bitrates and sizes (see
//!   [`super::layer`]), a second after the pull starts, when they change,
//!   and every 5 seconds.
//!
//! Event streams are bounded per session, one long pull at a time, and go
//! with their session.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::whep::{player_session_at, session_at};
use crate::hub::{Publication, VideoLayer};
use crate::server::Context;
use crate::webrtc::SessionStatus;

/// The `rel` of the `Link` that announces the extension.
pub const REL: &str = "urn:ietf:params:whep:ext:core:server-sent-events";

/// The events offered, in the order the `Link` lists them.
pub const EVENTS: [&str; 5] = ["active", "inactive", "viewercount", "reconnect", "layers"];

/// Event streams one session may have at once.
const PER_SESSION: usize = 4;

/// How often the viewer count and the layers are looked at.
const VIEWERCOUNT_EVERY: Duration = Duration::from_secs(1);

/// How often the `layers` event is sent when nothing but bitrates changed.
const LAYERS_EVERY: Duration = Duration::from_secs(5);

/// The `Link` header of a player session at `session_url`.
pub fn link(session_url: &str) -> String {
    format!("<{session_url}/sse>; rel=\"{REL}\"; events=\"{}\"", EVENTS.join(","))
}

/// A set of [`EVENTS`], one bit each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Wanted(u8);

impl Wanted {
    fn has(self, event: &str) -> bool {
        EVENTS
            .iter()
            .position(|e| *e == event)
            .is_some_and(|i| self.0 & (1 << i) != 0)
    }
}

/// The events a `POST` body asks for: a JSON array of event names, or
/// nothing for all of them. Names the server does not offer are an error
/// naming them (the extension asks for 400).
fn requested(body: &str, lax: bool) -> Result<Wanted, String> {
    if body.trim().is_empty() {
        return Ok(Wanted((1 << EVENTS.len()) - 1));
    }
    let names: Vec<String> =
        serde_json::from_str(body).map_err(|_| "the body is not a JSON array of event names".to_string())?;
    let mut wanted = 0;
    let mut unknown = Vec::new();
    for name in &names {
        match EVENTS.iter().position(|e| e == name) {
            Some(i) => wanted |= 1 << i,
            None => unknown.push(crate::text::Clipped(name).to_string()),
        }
    }
    if !unknown.is_empty() && !lax {
        return Err(format!(
            "unsupported event types: {} (offered: {})",
            unknown.join(", "),
            EVENTS.join(", ")
        ));
    }
    Ok(Wanted(wanted))
}

/// The event streams of every session.
#[derive(Default)]
pub struct Registry {
    streams: Mutex<HashMap<String, Entry>>,
}

struct Entry {
    session: String,
    wanted: Wanted,
    /// Cancelled by `DELETE`: a pull in progress ends.
    cancel: CancellationToken,
    /// A long pull is reading it.
    pulled: bool,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.streams.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Forgets the event streams of sessions that ended.
    fn purge(&self, ctx: &Context) {
        self.lock().retain(|_, entry| {
            let live = ctx.webrtc.session(&entry.session).is_some();
            if !live {
                entry.cancel.cancel();
            }
            live
        });
    }
}

/// `POST {session}/sse`: creates an event stream.
pub async fn create(
    State(ctx): State<Arc<Context>>,
    Path(path): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: String,
) -> Response {
    let session = match player_session_at(&ctx, &path, &headers, query.as_deref(), "event stream") {
        Ok(session) => session,
        Err(refused) => return refused.into_response(),
    };
    let lax = ctx.config.quirks.event_streams_lax;
    let wanted = match requested(&body, lax) {
        Ok(wanted) => wanted,
        Err(why) => {
            tracing::info!(session = %session.id, reason = %why, "event stream refused");
            return (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response();
        }
    };
    ctx.events.purge(&ctx);
    let mut streams = ctx.events.lock();
    if streams.values().filter(|e| e.session == session.id).count() >= PER_SESSION {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            format!("a session has at most {PER_SESSION} event streams\n"),
        )
            .into_response();
    }
    let id = format!("{:016x}", rand::random::<u64>());
    streams.insert(
        id.clone(),
        Entry {
            session: session.id.clone(),
            wanted,
            cancel: CancellationToken::new(),
            pulled: false,
        },
    );
    tracing::info!(session = %session.id, events = wanted.0, "event stream created");
    let (app, stream, _) = &path;
    (
        StatusCode::CREATED,
        [(
            header::LOCATION,
            format!("/whep/{app}/{stream}/{}/sse/{id}", session.id),
        )],
    )
        .into_response()
}

/// `GET {session}/sse/{id}`: the long pull, as `text/event-stream`.
pub async fn pull(
    State(ctx): State<Arc<Context>>,
    Path((app, stream, session, id)): Path<(String, String, String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let path = (app, stream, session);
    let session = match session_at(&ctx, &path, &headers, query.as_deref()) {
        Ok(session) => session,
        Err(refused) => return refused.into_response(),
    };
    ctx.events.purge(&ctx);
    let (wanted, cancel) = {
        let mut streams = ctx.events.lock();
        match streams.get_mut(&id).filter(|e| e.session == session.id) {
            None => return (StatusCode::NOT_FOUND, "no such event stream\n").into_response(),
            Some(entry) if entry.pulled => {
                return (StatusCode::CONFLICT, "this event stream is being read already\n").into_response()
            }
            Some(entry) => {
                entry.pulled = true;
                (entry.wanted, entry.cancel.clone())
            }
        }
    };
    let (app, stream, _) = path;
    let pull = Pull {
        publication: ctx.hub.watch_publication(&app, &stream),
        status: session.status.clone(),
        draining: ctx.draining.subscribe(),
        tick: tokio::time::interval(VIEWERCOUNT_EVERY),
        _released: Released { ctx: ctx.clone(), id },
        ctx,
        app,
        stream,
        wanted,
        cancel,
        seen: None,
        queued: None,
        viewers: None,
        video_line: session.video_line,
        layers_seen: None,
        layers_sent: None,
        reconnect_sent: false,
    };
    let events = futures_util::stream::unfold(pull, |mut pull| async move {
        let event = pull.next().await?;
        Some((Ok::<_, Infallible>(event), pull))
    });
    Sse::new(events).keep_alive(KeepAlive::default()).into_response()
}

/// `DELETE {session}/sse/{id}`: ends an event stream.
pub async fn delete(
    State(ctx): State<Arc<Context>>,
    Path((app, stream, session, id)): Path<(String, String, String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let session = match session_at(&ctx, &(app, stream, session), &headers, query.as_deref()) {
        Ok(session) => session,
        Err(refused) => return refused.into_response(),
    };
    let mut streams = ctx.events.lock();
    match streams.get(&id).filter(|e| e.session == session.id) {
        Some(entry) => {
            entry.cancel.cancel();
            if !ctx.config.quirks.event_streams_lax {
                streams.remove(&id);
            } else if let Some(entry) = streams.get_mut(&id) {
                // The quirk: forgotten only in name, it can be pulled again.
                entry.cancel = CancellationToken::new();
            }
            StatusCode::OK.into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such event stream\n").into_response(),
    }
}

/// A layer as the `layers` event tells it, bitrate aside: its track and size.
type LayerShape = (u8, Option<(u32, u32)>);

/// One long pull: waits for the next event the player wants.
struct Pull {
    ctx: Arc<Context>,
    app: String,
    stream: String,
    wanted: Wanted,
    cancel: CancellationToken,
    publication: Option<watch::Receiver<Publication>>,
    status: watch::Receiver<SessionStatus>,
    draining: watch::Receiver<bool>,
    tick: tokio::time::Interval,
    /// The publication at the last event about it.
    seen: Option<Publication>,
    /// An event already due, sent before anything else.
    queued: Option<Event>,
    /// The last viewer count sent.
    viewers: Option<usize>,
    /// The session's video m-line (the `layers` event's key).
    video_line: Option<usize>,
    /// The layers at the last look, and when (for bitrates).
    layers_seen: Option<(Vec<VideoLayer>, Instant)>,
    /// The layers' tracks and sizes at the last `layers` event, and when.
    layers_sent: Option<(Vec<LayerShape>, Instant)>,
    reconnect_sent: bool,
    _released: Released,
}

impl Pull {
    /// The next event, or `None` when the stream ends (DELETE, the session
    /// ended).
    async fn next(&mut self) -> Option<Event> {
        loop {
            if self.status_ended() || self.cancel.is_cancelled() {
                return None;
            }
            if let Some(event) = self.queued.take() {
                return Some(event);
            }
            if let Some(event) = self.publication_news() {
                return Some(event);
            }
            if *self.draining.borrow() && !self.reconnect_sent {
                self.reconnect_sent = true;
                if self.wanted.has("reconnect") {
                    return Some(Event::default().event("reconnect").data("{}"));
                }
            }
            tokio::select! {
                _ = self.cancel.cancelled() => return None,
                changed = self.status.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
                _ = changed(&mut self.publication) => {}
                _ = self.draining.changed() => {}
                _ = self.tick.tick() => {
                    // The stream's entry may have been made again (nobody
                    // published nor played it for a moment): watch the new one.
                    if self.publication.as_ref().is_none_or(|p| p.has_changed().is_err()) {
                        self.publication = self.ctx.hub.watch_publication(&self.app, &self.stream);
                    }
                    let viewers = self.ctx.hub.viewer_count(&self.app, &self.stream);
                    let count = (self.wanted.has("viewercount") && self.viewers.replace(viewers) != Some(viewers))
                        .then(|| Event::default().event("viewercount").data(format!("{{\"viewercount\":{viewers}}}")));
                    let layers = self.layers_news();
                    match (count, layers) {
                        (Some(first), second) => {
                            self.queued = second;
                            return Some(first);
                        }
                        (None, Some(layers)) => return Some(layers),
                        (None, None) => {}
                    }
                }
            }
        }
    }

    /// `active` or `inactive` when the publication changed since the last
    /// event about it (a new publisher in between: both, `inactive` first).
    /// Never an initial `inactive`.
    fn publication_news(&mut self) -> Option<Event> {
        let now = self.publication.as_ref().map_or(Publication::Idle, |p| *p.borrow());
        let before = self.seen.replace(now);
        let quirk = self.ctx.config.quirks.event_streams_lax;
        let (inactive, active) = match (before, now) {
            (None, Publication::Live { .. }) => (false, !quirk),
            (Some(Publication::Live { .. }), Publication::Idle) => (true, false),
            (Some(Publication::Idle), Publication::Live { .. }) => (false, true),
            (Some(Publication::Live { generation: was }), Publication::Live { generation }) => {
                (was != generation, was != generation)
            }
            _ => (false, false),
        };
        let event = |name: &str| self.wanted.has(name).then(|| Event::default().event(name).data("{}"));
        match (
            inactive.then(|| event("inactive")).flatten(),
            active.then(|| event("active")).flatten(),
        ) {
            (Some(first), second) => {
                self.queued = second;
                Some(first)
            }
            (None, second) => second,
        }
    }

    /// A `layers` event when it is due: once a first look has given a
    /// baseline for the bitrates, then when the tracks or their sizes
    /// change, and every [`LAYERS_EVERY`].
    fn layers_news(&mut self) -> Option<Event> {
        if !self.wanted.has("layers") {
            return None;
        }
        let line = self.video_line?;
        let now = Instant::now();
        let layers = self.ctx.hub.video_layers(&self.app, &self.stream);
        let (before, at) = self.layers_seen.replace((layers.clone(), now))?;
        let shape: Vec<LayerShape> = layers.iter().map(|l| (l.track, l.size)).collect();
        let due = match &self.layers_sent {
            None => !layers.is_empty(),
            Some((sent, when)) => *sent != shape || now.duration_since(*when) >= LAYERS_EVERY,
        };
        if !due {
            return None;
        }
        self.layers_sent = Some((shape, now));
        let seconds = now.duration_since(at).as_secs_f64();
        let data = super::layer::event_data(line, &layers, &before, seconds);
        Some(Event::default().event("layers").data(data))
    }

    fn status_ended(&self) -> bool {
        matches!(*self.status.borrow(), SessionStatus::Stopped | SessionStatus::Failed(_))
    }
}

/// Resolves at the next publication change; never without a stream to watch.
async fn changed(publication: &mut Option<watch::Receiver<Publication>>) {
    let Some(receiver) = publication else {
        return std::future::pending().await;
    };
    if receiver.changed().await.is_err() {
        std::future::pending().await
    }
}

/// Frees the event stream for another pull when this one ends.
struct Released {
    ctx: Arc<Context>,
    id: String,
}

impl Drop for Released {
    fn drop(&mut self) {
        if let Some(entry) = self.ctx.events.lock().get_mut(&self.id) {
            entry.pulled = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_post_names_offered_events_or_none() {
        let requested = |body| requested(body, false);
        let all = requested("").unwrap();
        assert!(EVENTS.iter().all(|e| all.has(e)));
        let some = requested(r#"["active","viewercount"]"#).unwrap();
        assert!(some.has("active") && some.has("viewercount") && !some.has("inactive"));
        assert_eq!(
            requested(r#"["active","layers","scte35"]"#).unwrap_err(),
            "unsupported event types: scte35 (offered: active, inactive, viewercount, reconnect, layers)"
        );
        assert!(requested("{}").is_err());
        assert!(requested(r#"[1]"#).is_err());
        assert!(
            super::requested(r#"["active","scte35"]"#, true).unwrap().has("active"),
            "the quirk"
        );
    }

    #[test]
    fn the_link_announces_the_extension_and_its_events() {
        assert_eq!(
            link("/whep/live/cam/s1"),
            "</whep/live/cam/s1/sse>; rel=\"urn:ietf:params:whep:ext:core:server-sent-events\"; events=\"active,inactive,viewercount,reconnect,layers\""
        );
    }
}
