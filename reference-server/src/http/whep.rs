//! WHEP (play) and WHIP (publish, RFC 9725): one HTTP request sets up a
//! session, `PATCH` on its `Location` trickles ICE candidates (see
//! [`super::patch`]), `DELETE` ends it. In an application with
//! `whep_counter_offer`, a WHEP offer is answered `406` with the server's
//! own, and the player's `PATCH` of its answer sets the session up (WHEP
//! draft 03, section 4.2). See docs/signalling.md.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use media::rtmp::url::split_params;

use super::session::{self, Requester, StartFailure};
use super::{events, patch};
use crate::admission::{self, Refusal, Verb};
use crate::config::IceServer;
use crate::server::Context;
use crate::text::Clipped;
use crate::webrtc::{Direction, IceSession, SessionError, SessionHandle};

/// `POST /whep/{app}/{stream}`.
pub async fn play(
    State(ctx): State<Arc<Context>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((app, stream)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    offer: String,
) -> Response {
    let request = Request {
        app,
        stream,
        query,
        headers,
        peer,
    };
    post(ctx, Direction::Play, request, offer).await
}

/// `POST /whip/{app}/{stream}`.
pub async fn publish(
    State(ctx): State<Arc<Context>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((app, stream)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    offer: String,
) -> Response {
    let request = Request {
        app,
        stream,
        query,
        headers,
        peer,
    };
    post(ctx, Direction::Publish, request, offer).await
}

/// What a WHEP or WHIP `POST` came with, besides its offer.
struct Request {
    app: String,
    stream: String,
    query: Option<String>,
    headers: HeaderMap,
    peer: SocketAddr,
}

async fn post(ctx: Arc<Context>, direction: Direction, request: Request, offer: String) -> Response {
    let Request {
        app,
        stream,
        query,
        headers,
        peer,
    } = request;
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
        address: Some(peer.ip()),
        bearer: bearer(&headers).map(str::to_string),
        ..Requester::default()
    };
    let kind = endpoint(direction);
    let here = (app.as_str(), stream.as_str());
    if direction == Direction::Play && admission::app(&ctx, &app).is_ok_and(|config| config.whep_counter_offer) {
        // The server's own offer instead (WHEP draft 03, section 4.2),
        // answered by a PATCH to the session's URL.
        return match session::counter_offer(&ctx, &app, &name, &requester, &offer).await {
            Ok((id, counter)) => established(&ctx, StatusCode::NOT_ACCEPTABLE, direction, here, &id, counter),
            Err(failure) => refused(kind, here, failure),
        };
    }
    // WHEP cannot renegotiate (its draft 03, section 3): no offers later.
    match session::start(&ctx, &app, &name, direction, &requester, &offer, None).await {
        Ok((session, answer)) => established(&ctx, StatusCode::CREATED, direction, here, &session.id, answer),
        Err(failure) => refused(kind, here, failure),
    }
}

/// The path segment of `direction`'s endpoint.
fn endpoint(direction: Direction) -> &'static str {
    match direction {
        Direction::Play => "whep",
        Direction::Publish => "whip",
    }
}

/// The WHEP draft's default time a counter-offer stays valid (section 4.2).
const COUNTER_OFFER_VALID: Duration = Duration::from_secs(30);

/// The `Content-Type` of a counter-offer made at `now` that stays valid for
/// `valid`: with a `valid-until` HTTP-date (WHEP draft 03, section 4.2)
/// unless that is the draft's default of 30 seconds.
fn counter_offer_type(valid: Duration, now: SystemTime) -> String {
    match valid {
        COUNTER_OFFER_VALID => "application/sdp".to_string(),
        valid => format!(
            "application/sdp; valid-until=\"{}\"",
            httpdate::fmt_http_date(now + valid)
        ),
    }
}

/// The `201` with the answer to a WHIP or WHEP offer, or the WHEP `406`
/// with the server's counter-offer: the SDP, the session's `Location` and
/// `ETag`, and `Link`s (a player's extensions, the ICE servers).
fn established(
    ctx: &Context,
    status: StatusCode,
    direction: Direction,
    (app, stream): (&str, &str),
    id: &str,
    sdp: String,
) -> Response {
    let kind = endpoint(direction);
    let location = format!("/{kind}/{app}/{stream}/{id}");
    let content_type = match status {
        StatusCode::NOT_ACCEPTABLE => counter_offer_type(ctx.config.webrtc.counter_offer_valid, SystemTime::now()),
        _ => "application/sdp".to_string(),
    };
    let mut response = (
        status,
        [
            (header::CONTENT_TYPE, content_type),
            (header::LOCATION, location.clone()),
            (header::ETAG, patch::etag(id, 0)),
        ],
        sdp,
    )
        .into_response();
    let headers = response.headers_mut();
    // A player's session offers server-sent events and layer selection.
    if direction == Direction::Play {
        for link in [events::link(&location), super::layer::link(&location)] {
            if let Ok(link) = HeaderValue::from_str(&link) {
                headers.append(header::LINK, link);
            }
        }
    }
    let credentials = !ctx.config.quirks.ice_server_credentials_left_out;
    for server in &ctx.config.webrtc.ice_servers {
        if let Ok(link) = HeaderValue::from_bytes(ice_server_link(server, credentials).as_bytes()) {
            headers.append(header::LINK, link);
        }
    }
    response
}

/// The answer to a WHIP or WHEP `POST` (`kind`) that started no session.
fn refused(kind: &str, (app, stream): (&str, &str), failure: StartFailure) -> Response {
    match failure {
        // Playing waits for nobody here: the player may come back (WHEP
        // draft 03, section 4.3.8, asks for 409 with Retry-After).
        StartFailure::Session(SessionError::NotFound) => {
            tracing::info!(app = %Clipped(app), stream = %Clipped(stream), "{kind} refused: nothing published");
            (
                StatusCode::CONFLICT,
                [(header::RETRY_AFTER, RETRY_AFTER_SECONDS)],
                "nothing is published under this name yet\n",
            )
                .into_response()
        }
        StartFailure::Refused(refusal @ Refusal::Unauthorized { .. }) => {
            tracing::info!(app = %Clipped(app), stream = %Clipped(stream), reason = %refusal, "{kind} refused");
            unauthorized(&refusal)
        }
        failure => {
            let status = match &failure {
                StartFailure::Refused(Refusal::UnknownApp(_) | Refusal::Backend { .. }) => StatusCode::FORBIDDEN,
                StartFailure::Refused(Refusal::NameInUse(_)) => StatusCode::CONFLICT,
                StartFailure::Refused(Refusal::NameTooLong(_)) => StatusCode::BAD_REQUEST,
                StartFailure::Refused(Refusal::Unauthorized { .. }) => StatusCode::UNAUTHORIZED,
                StartFailure::Session(
                    SessionError::BadOffer(_) | SessionError::BadParameter(_) | SessionError::BadAnswer(_),
                ) => StatusCode::BAD_REQUEST,
                StartFailure::Session(SessionError::NotFound) => StatusCode::NOT_FOUND,
                StartFailure::Session(SessionError::NoUsableMedia(_)) => StatusCode::UNPROCESSABLE_ENTITY,
                StartFailure::Session(SessionError::TooManySessions(_)) => StatusCode::SERVICE_UNAVAILABLE,
                StartFailure::Session(SessionError::TooManyFromAddress(_)) => StatusCode::TOO_MANY_REQUESTS,
            };
            tracing::info!(app = %Clipped(app), stream = %Clipped(stream), %status, reason = %failure, "{kind} refused");
            let mut response = (status, format!("{failure}\n")).into_response();
            if matches!(status, StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS) {
                // At capacity, or at the address's share of it: say when to
                // try again (WHIP, RFC 9725, and WHEP draft 03, section 4.7;
                // RFC 6585, section 4; RFC 9110, section 10.2.3).
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
            }
            response
        }
    }
}

/// The `Link` that names a STUN or TURN server to a WHIP or WHEP client
/// (RFC 9725, section 4.6): its URI as the target, `rel="ice-server"`, and
/// for a TURN server its username and credential (with `credentials`).
fn ice_server_link(server: &IceServer, credentials: bool) -> String {
    let mut link = format!("<{}>; rel=\"ice-server\"", server.url);
    let turn = media::ice::ServerUri::parse(&server.url).is_ok_and(|uri| uri.is_turn());
    if let (true, true, Some(username), Some(credential)) = (turn, credentials, &server.username, &server.credential) {
        link.push_str(&format!(
            "; username={}; credential={}; credential-type=\"password\"",
            quoted(username),
            quoted(credential)
        ));
    }
    link
}

/// `text` as an HTTP quoted-string (RFC 9110, section 5.6.4).
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The token of an `Authorization: Bearer` header (RFC 6750, section 2.1;
/// the scheme's name is case-insensitive, RFC 9110 section 11.1).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// 401 with the challenge RFC 9110 section 15.5.2 requires: `Bearer`, and
/// `error="invalid_token"` when a token was presented (RFC 6750, section 3).
fn unauthorized(refusal: &Refusal) -> Response {
    let challenge = match refusal {
        Refusal::Unauthorized { presented: true, .. } => r#"Bearer realm="media", error="invalid_token""#,
        _ => r#"Bearer realm="media""#,
    };
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, challenge)],
        format!("{refusal}\n"),
    )
        .into_response()
}

/// The seconds a WHEP player is told to wait before it tries a stream
/// nobody publishes again.
const RETRY_AFTER_SECONDS: &str = "2";

/// `GET` (and `HEAD`) of `/whep/{app}/{stream}` or `/whip/...`: these
/// resources have no representation, so 200 without content (RFC 9725,
/// section 4.1), typed `application/sdp` so that a `HEAD` tells players
/// the URL takes SDP offers (WHEP draft 03, section 4.2).
pub async fn describe_endpoint() -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/sdp")]).into_response()
}

/// The session at `/whep/{app}/{stream}/{session}` (or `/whip/...`), if it
/// is there and the request may touch it: in an application with tokens for
/// the session's direction, a session's own requests need one of them too
/// (RFC 9725, section 4.7), as a bearer token or the URL's `token`.
pub(super) fn session_at(
    ctx: &Context,
    (app, stream, id): &(String, String, String),
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<SessionHandle, SessionRefused> {
    let session = ctx
        .webrtc
        .session(id)
        .filter(|session| session.app == *app && session.stream == *stream)
        .ok_or(SessionRefused::NotFound)?;
    authorize(ctx, (app, stream, id), session.direction, headers, query)?;
    Ok(session)
}

/// Whether a request may touch the session `id` of `stream` in `app`, a
/// `direction` session: in an application with tokens for that direction,
/// it needs one of them (RFC 9725, section 4.7), as a bearer token or the
/// URL's `token`.
fn authorize(
    ctx: &Context,
    (app, stream, id): (&str, &str, &str),
    direction: Direction,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<(), SessionRefused> {
    let config = admission::app(ctx, app).map_err(|_| SessionRefused::NotFound)?;
    let verb = match direction {
        Direction::Play => Verb::Play,
        Direction::Publish => Verb::Publish,
    };
    let in_url = query.map(|query| split_params(&format!("?{query}")).params);
    let token = bearer(headers).or_else(|| in_url.as_ref()?.get(admission::TOKEN).map(String::as_str));
    admission::authorize(config, verb, token, stream).map_err(|refusal| {
        tracing::info!(session = %id, reason = %refusal, "session request refused");
        SessionRefused::Unauthorized(refusal)
    })
}

/// The player session a request of a WHEP extension names (events, layer
/// selection): as [`session_at`], and `404` for a WHIP session, which has
/// no `what`.
pub(super) fn player_session_at(
    ctx: &Context,
    path: &(String, String, String),
    headers: &HeaderMap,
    query: Option<&str>,
    what: &'static str,
) -> Result<SessionHandle, SessionRefused> {
    match session_at(ctx, path, headers, query)? {
        session if session.direction == Direction::Play => Ok(session),
        _ => Err(SessionRefused::NotAPlayer(what)),
    }
}

/// Why a session's own request was refused.
pub(super) enum SessionRefused {
    /// 404: no such session (or not under this URL).
    NotFound,
    /// 401: the session's application wants a token.
    Unauthorized(Refusal),
    /// 404: a WHIP session, which has none of this WHEP extension's.
    NotAPlayer(&'static str),
}

impl IntoResponse for SessionRefused {
    fn into_response(self) -> Response {
        match self {
            SessionRefused::NotFound => (StatusCode::NOT_FOUND, "no such session\n").into_response(),
            SessionRefused::Unauthorized(refusal) => unauthorized(&refusal),
            SessionRefused::NotAPlayer(what) => {
                (StatusCode::NOT_FOUND, format!("a WHIP session has no {what}\n")).into_response()
            }
        }
    }
}

/// `GET` of a session: 204, no representation (RFC 9725, section 4.1).
pub async fn describe_session(
    State(ctx): State<Arc<Context>>,
    Path(path): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    match session_at(&ctx, &path, &headers, query.as_deref()) {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(refused) => refused.into_response(),
    }
}

/// `DELETE /whep/{app}/{stream}/{session}` (and `/whip/...`); any `If-Match`
/// is ignored, as RFC 9725 section 4.3.1 asks.
pub async fn delete(
    State(ctx): State<Arc<Context>>,
    Path(path): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let (app, stream, id) = &path;
    if ctx.webrtc.counter_offer_waits(app, stream, id) {
        if let Err(refused) = authorize(&ctx, (app, stream, id), Direction::Play, &headers, query.as_deref()) {
            return refused.into_response();
        }
        if ctx.webrtc.withdraw_counter_offer(app, stream, id) {
            return (StatusCode::OK, "counter-offer withdrawn\n").into_response();
        }
    }
    match session_at(&ctx, &path, &headers, query.as_deref()) {
        Ok(session) => {
            session.stop();
            (StatusCode::OK, "session ended\n").into_response()
        }
        Err(refused) => refused.into_response(),
    }
}

/// `PATCH` of a session: the player's SDP answer to the server's
/// counter-offer (WHEP draft 03, section 4.2), or trickle ICE, answered by
/// [`patch::answer`].
pub async fn trickle(
    State(ctx): State<Arc<Context>>,
    Path(path): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: String,
) -> Response {
    let (app, stream, id) = &path;
    let sdp = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/sdp"));
    if sdp && ctx.webrtc.counter_offer_waits(app, stream, id) {
        if let Err(refused) = authorize(&ctx, (app, stream, id), Direction::Play, &headers, query.as_deref()) {
            return refused.into_response();
        }
        return match ctx.webrtc.answer_counter_offer(&ctx, (app, stream, id), &body) {
            Ok(session) => {
                tracing::info!(session = %session.id, "counter-offer answered");
                (StatusCode::NO_CONTENT, [(header::ETAG, patch::etag(&session.id, 0))]).into_response()
            }
            Err(SessionError::NotFound) => (StatusCode::NOT_FOUND, "no such session\n").into_response(),
            Err(error) => refused("whep", (app, stream), StartFailure::Session(error)),
        };
    }
    let session = match session_at(&ctx, &path, &headers, query.as_deref()) {
        Ok(session) => session,
        Err(refused) => return refused.into_response(),
    };
    let field = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let request = patch::Patch {
        content_type: field(header::CONTENT_TYPE),
        if_match: field(header::IF_MATCH),
        body: &body,
    };
    let mut ice = session.ice.lock().await;
    let answer = patch::answer(request, &patch::etag(&session.id, ice.generation), &ice.peer_ufrag);
    match answer {
        patch::Answer::Trickled => return StatusCode::NO_CONTENT.into_response(),
        patch::Answer::Restart => return restart(&ctx, &session, &mut ice, &body).await,
        _ => {}
    }
    tracing::info!(session = %session.id, status = %answer.status(), reason = answer.reason(), "PATCH refused");
    (answer.status(), format!("{}\n", answer.reason())).into_response()
}

/// The `200` to an ICE restart of `session` asked for by the fragment
/// `body`, once the session has its new credentials (RFC 9725 and WHEP
/// draft 03, "ICE restarts"); `404` if it ended meanwhile.
async fn restart(ctx: &Context, session: &SessionHandle, ice: &mut IceSession, body: &str) -> Response {
    let Some((ufrag, pwd)) = patch::credentials(body) else {
        return (
            StatusCode::BAD_REQUEST,
            "an ICE restart needs a=ice-ufrag and a=ice-pwd\n",
        )
            .into_response();
    };
    let remote = str0m::IceCreds {
        ufrag: ufrag.to_string(),
        pass: pwd.to_string(),
    };
    let unapplied = ctx.config.quirks.ice_restarts_unapplied;
    let Some(local) = ctx.webrtc.restart_ice(session, ice, remote, unapplied).await else {
        return (StatusCode::NOT_FOUND, "no such session\n").into_response();
    };
    ctx.metrics.webrtc_ice_restarts.inc();
    tracing::info!(session = %session.id, generation = ice.generation, "ICE restart");
    let fragment = patch::restarted(body, (&local.ufrag, &local.pass), &ctx.webrtc.candidate_lines());
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, patch::FRAGMENT_TYPE.to_string()),
            (header::ETAG, patch::etag(&session.id, ice.generation)),
        ],
        fragment,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(url: &str, username: Option<&str>, credential: Option<&str>) -> IceServer {
        IceServer {
            url: url.into(),
            username: username.map(Into::into),
            credential: credential.map(Into::into),
        }
    }

    #[test]
    fn a_counter_offer_says_until_when_it_is_valid_unless_for_the_default_30_s() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_728_468_000);
        assert_eq!(counter_offer_type(Duration::from_secs(30), now), "application/sdp");
        assert_eq!(
            counter_offer_type(Duration::from_secs(60), now),
            "application/sdp; valid-until=\"Wed, 09 Oct 2024 10:01:00 GMT\""
        );
    }

    #[test]
    fn ice_server_links_quote_the_credentials_of_turn_servers_only() {
        assert_eq!(
            ice_server_link(&server("stun:stun.example.net", Some("u"), Some("p")), true),
            r#"<stun:stun.example.net>; rel="ice-server""#
        );
        assert_eq!(
            ice_server_link(
                &server("turns:t.example.net?transport=tcp", Some("us\"er"), Some(r"pa\ss")),
                true
            ),
            r#"<turns:t.example.net?transport=tcp>; rel="ice-server"; username="us\"er"; credential="pa\\ss"; credential-type="password""#
        );
        assert_eq!(
            ice_server_link(&server("turn:t.example.net", Some("u"), Some("p")), false),
            r#"<turn:t.example.net>; rel="ice-server""#
        );
    }
}
