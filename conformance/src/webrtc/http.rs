//! WHEP and WHIP as a client speaks them (docs/signalling.md): `POST` an SDP
//! offer to `/whep/{app}/{stream}` or `/whip/{app}/{stream}`, expect
//! `201 Created` with the answer and a `Location`, `DELETE` that location to
//! end the session.
//!
//! [`post_sdp`] and [`delete`] return whatever the server answered, for
//! checks on refusals (400, 403, 404, 409, 415, 422); [`offer`] insists on the
//! success path and turns anything else into a [`WebRtcError`] that carries the
//! status and body.

use std::time::Duration;

use reqwest::header::{HeaderName, CONTENT_TYPE, LOCATION};
use reqwest::Url;

use super::WebRtcError;

/// How long one WHEP/WHIP request may take.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Which of the two HTTP endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// WebRTC-HTTP egress (play): `/whep/...`.
    Whep,
    /// WebRTC-HTTP ingest (publish): `/whip/...`.
    Whip,
}

impl Endpoint {
    /// The path segment, `"whep"` or `"whip"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Endpoint::Whep => "whep",
            Endpoint::Whip => "whip",
        }
    }
}

/// The URL of `endpoint` for `app`/`stream` under `http_base` (e.g.
/// `http://127.0.0.1:8080`). `stream` may carry `?params`, kept as given.
pub fn endpoint_url(http_base: &str, endpoint: Endpoint, app: &str, stream: &str) -> String {
    format!(
        "{}/{}/{app}/{stream}",
        http_base.trim_end_matches('/'),
        endpoint.as_str()
    )
}

/// What the server answered to a request, whatever its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    /// The status code.
    pub status: u16,
    /// The `Location` header resolved against the request URL, if it was present and valid.
    pub location: Option<String>,
    /// The `Location` header as sent.
    pub raw_location: Option<String>,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The body, as text (lossy UTF-8).
    pub body: String,
}

fn client() -> Result<reqwest::Client, WebRtcError> {
    // A fresh client per request: a pooled connection must not outlive the
    // runtime of the test that opened it.
    reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .build()
        .map_err(|source| WebRtcError::Http {
            method: "POST",
            url: String::new(),
            source,
        })
}

/// `POST`s `body` to `url` with `Content-Type: content_type` and returns the
/// answer as it is. Errors only when there is no HTTP answer at all.
pub async fn post_sdp(url: &str, content_type: &str, body: &str) -> Result<HttpAnswer, WebRtcError> {
    let http_error = |source| WebRtcError::Http {
        method: "POST",
        url: url.to_string(),
        source,
    };
    let response = client()?
        .post(url)
        .header(CONTENT_TYPE, content_type)
        .body(body.to_string())
        .send()
        .await
        .map_err(http_error)?;
    let status = response.status().as_u16();
    let header = |name: HeaderName| {
        response
            .headers()
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let raw_location = header(LOCATION);
    let content_type = header(CONTENT_TYPE);
    let location = raw_location
        .as_deref()
        .and_then(|l| Url::parse(url).ok()?.join(l).ok())
        .map(String::from);
    let bytes = response.bytes().await.map_err(http_error)?;
    Ok(HttpAnswer {
        status,
        location,
        raw_location,
        content_type,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

/// What a WHEP or WHIP endpoint gave for an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offered {
    /// The server's SDP: its answer, or its counter-offer.
    pub sdp: String,
    /// The session's `Location`, resolved against the endpoint's URL.
    pub location: String,
    /// The `Link`s (each `rel` with its target).
    pub links: Vec<(String, String)>,
    /// The WHEP endpoint rejected the offer for its own (`406 Not
    /// Acceptable` with an SDP body, WHEP draft 03, section 4.2): `sdp` is
    /// an offer, for the player to answer by [`answer_counter_offer`].
    pub counter_offer: bool,
}

/// Sends an SDP offer the way WHEP/WHIP asks and returns what the server
/// gave: `201 Created` with an answer, or (WHEP only) `406 Not Acceptable`
/// with a counter-offer, either with a `Location`. Anything else is an
/// error that carries what the server said.
pub async fn offer(endpoint: Endpoint, url: &str, sdp: &str) -> Result<Offered, WebRtcError> {
    let answer = exchange(Method::Post, url, &[], Some(("application/sdp", sdp)), None).await?;
    let typed_sdp = answer
        .header("content-type")
        .and_then(|t| t.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/sdp"));
    let counter_offer = endpoint == Endpoint::Whep && answer.status == 406 && typed_sdp;
    if answer.status != 201 && !counter_offer {
        return Err(WebRtcError::HttpStatus {
            method: "POST",
            url: url.to_string(),
            status: answer.status,
            expected: 201,
            body: answer.body,
        });
    }
    if counter_offer {
        if let Some(until) = answer.header("content-type").and_then(valid_until) {
            if httpdate::parse_http_date(until).is_err() {
                return Err(WebRtcError::BadAnswer {
                    reason: format!(
                        "the counter-offer's valid-until {until:?} is not an HTTP-date (WHEP draft 03, section 4.2: it MUST be)"
                    ),
                    sdp: answer.body,
                });
            }
        }
    }
    let links = answer.links();
    match answer.location() {
        Some(location) => Ok(Offered {
            sdp: answer.body,
            location,
            links,
            counter_offer,
        }),
        None => Err(WebRtcError::BadLocation {
            url: url.to_string(),
            status: answer.status,
            location: answer.header("location").map(str::to_string),
        }),
    }
}

/// The `valid-until` parameter of a `Content-Type` (a WHEP counter-offer's
/// deadline), unquoted.
pub fn valid_until(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("valid-until")
            .then(|| value.trim().trim_matches('"'))
    })
}

/// `PATCH`es a WHEP player's SDP `answer` to the server's counter-offer to
/// the session's `location`. WHEP draft 03, section 4.2, asks for `204 No
/// Content`; as a player would, any 2xx is taken (the case
/// `webrtc/whep/counter-offer` checks for 204).
pub async fn answer_counter_offer(location: &str, answer: &str) -> Result<(), WebRtcError> {
    let reply = exchange(Method::Patch, location, &[], Some(("application/sdp", answer)), None).await?;
    if (200..300).contains(&reply.status) {
        return Ok(());
    }
    Err(WebRtcError::HttpStatus {
        method: "PATCH",
        url: location.to_string(),
        status: reply.status,
        expected: 204,
        body: reply.body,
    })
}

/// `DELETE`s a session's `Location` and returns the status (200 when it
/// ended it, 404 when it was gone).
pub async fn delete(url: &str) -> Result<HttpAnswer, WebRtcError> {
    let http_error = |source| WebRtcError::Http {
        method: "DELETE",
        url: url.to_string(),
        source,
    };
    let response = client()?.delete(url).send().await.map_err(http_error)?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let bytes = response.bytes().await.map_err(http_error)?;
    Ok(HttpAnswer {
        status,
        location: None,
        raw_location: None,
        content_type,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

/// `DELETE`s a session and insists on a 2xx answer.
pub async fn end_session(url: &str) -> Result<(), WebRtcError> {
    let answer = delete(url).await?;
    if (200..300).contains(&answer.status) {
        Ok(())
    } else {
        Err(WebRtcError::HttpStatus {
            method: "DELETE",
            url: url.to_string(),
            status: answer.status,
            expected: 200,
            body: answer.body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_offers_valid_until_is_read_from_its_content_type() {
        let typed = "application/sdp; valid-until=\"Wed, 09 Oct 2024 10:00:00 GMT\"";
        assert_eq!(valid_until(typed), Some("Wed, 09 Oct 2024 10:00:00 GMT"));
        assert!(httpdate::parse_http_date(valid_until(typed).unwrap()).is_ok());
        assert_eq!(valid_until("application/sdp;charset=utf-8"), None);
        assert_eq!(valid_until("application/sdp"), None);
    }

    #[test]
    fn server_sent_events_are_read_by_name_and_data() {
        let body = "event: active\ndata: {}\n\n: a comment\nevent:viewercount\ndata:{\"viewercount\":2}\n\ndata: a\ndata: b\r\n\r\nevent: cut\ndata: off";
        let events = sse_events(body);
        assert_eq!(
            events,
            [
                ("active".to_string(), "{}".to_string()),
                ("viewercount".to_string(), "{\"viewercount\":2}".to_string()),
                ("message".to_string(), "a\nb".to_string()),
            ]
        );
    }

    #[test]
    fn quoted_strings_keep_their_escaped_quotes_commas_and_semicolons() {
        let field = r#"<turn:t.example>; rel="ice-server"; username="a\"b,c"; credential="x;y\\", <stun:s.example>; rel="ice-server""#;
        let found = links(field);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].1[1], ("username".to_string(), "a\"b,c".to_string()));
        assert_eq!(found[0].1[2], ("credential".to_string(), "x;y\\".to_string()));
        assert_eq!(found[1].0, "stun:s.example");
    }

    #[test]
    fn links_split_at_commas_outside_quotes_and_targets() {
        let field = r#"</s/1/sse>; rel="urn:ietf:params:whep:ext:core:server-sent-events"; events="active,inactive", <stun:a.example>; rel="ice-server""#;
        let found = links(field);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].0, "/s/1/sse");
        assert_eq!(found[0].1[1], ("events".to_string(), "active,inactive".to_string()));
        assert_eq!(found[1].0, "stun:a.example");
        let exchange = Exchange {
            method: Method::Post,
            url: "http://127.0.0.1:8080/whep/live/cam".into(),
            status: 201,
            headers: vec![("link".into(), field.into())],
            body: String::new(),
        };
        assert_eq!(
            exchange.link(EVENTS_REL).as_deref(),
            Some("http://127.0.0.1:8080/s/1/sse")
        );
        assert_eq!(exchange.link("ice-server").as_deref(), Some("stun:a.example"));
        assert_eq!(exchange.link("other"), None);
    }

    #[test]
    fn endpoint_urls_keep_params() {
        assert_eq!(
            endpoint_url("http://127.0.0.1:8080/", Endpoint::Whep, "live", "cam?token=a"),
            "http://127.0.0.1:8080/whep/live/cam?token=a"
        );
        assert_eq!(
            endpoint_url("http://h:1", Endpoint::Whip, "a", "b"),
            "http://h:1/whip/a/b"
        );
    }
}

/// An HTTP method a scenario can send to a WHIP or WHEP URL by hand.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// Creates a session from an offer.
    #[default]
    Post,
    /// Must be answered 2xx without content (RFC 9725 section 4.1).
    Get,
    /// WHEP discovery (draft 03, section 4.2).
    Head,
    /// CORS preflight and `Accept-Post`.
    Options,
    /// Trickle ICE and ICE restarts.
    Patch,
    /// Ends a session.
    Delete,
    /// Not part of either protocol.
    Put,
}

impl Method {
    /// As written on the request line.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Options => "OPTIONS",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Put => "PUT",
        }
    }
}

/// One request and the server's answer to it, whatever the status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// The request's method.
    pub method: Method,
    /// The request's URL.
    pub url: String,
    /// The answer's status code.
    pub status: u16,
    /// The answer's header fields, names in lower case, in the order sent.
    pub headers: Vec<(String, String)>,
    /// The answer's body (lossy UTF-8).
    pub body: String,
}

impl Exchange {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// Every field named `name` (any case), joined with `, ` as RFC 9110
    /// (section 5.3) combines them; `None` without one.
    pub fn header_joined(&self, name: &str) -> Option<String> {
        let name = name.to_ascii_lowercase();
        let values: Vec<&str> = self
            .headers
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    }

    /// `Location`, resolved against the request's URL.
    pub fn location(&self) -> Option<String> {
        let location = self.header("location")?;
        Url::parse(&self.url).ok()?.join(location).ok().map(String::from)
    }

    /// Every `Link` (RFC 8288): each of its `rel` values with its target,
    /// resolved against the request's URL.
    pub fn links(&self) -> Vec<(String, String)> {
        let base = Url::parse(&self.url).ok();
        self.headers
            .iter()
            .filter(|(name, _)| name == "link")
            .flat_map(|(_, value)| links(value))
            .flat_map(|(target, params)| {
                let resolved = base
                    .as_ref()
                    .and_then(|b| b.join(&target).ok())
                    .map_or(target, String::from);
                params
                    .into_iter()
                    .filter(|(name, _)| name.eq_ignore_ascii_case("rel"))
                    .flat_map(|(_, rels)| rels.split_whitespace().map(str::to_string).collect::<Vec<_>>())
                    .map(move |rel| (rel, resolved.clone()))
            })
            .collect()
    }

    /// The target of the first `Link` (RFC 8288) whose `rel` includes
    /// `rel`, resolved against the request's URL.
    pub fn link(&self, rel: &str) -> Option<String> {
        let target = self
            .headers
            .iter()
            .filter(|(name, _)| name == "link")
            .flat_map(|(_, value)| links(value))
            .find(|(_, params)| {
                params
                    .iter()
                    .any(|(name, value)| name.eq_ignore_ascii_case("rel") && value.split_whitespace().any(|r| r == rel))
            })?
            .0;
        Url::parse(&self.url).ok()?.join(&target).ok().map(String::from)
    }
}

impl Exchange {
    /// The STUN and TURN servers its `Link` fields name (`rel="ice-server"`,
    /// RFC 9725, section 4.6): each target and its parameters.
    pub fn ice_servers(&self) -> Vec<(String, Vec<(String, String)>)> {
        self.headers
            .iter()
            .filter(|(name, _)| name == "link")
            .flat_map(|(_, value)| links(value))
            .filter(|(_, params)| {
                params.iter().any(|(name, value)| {
                    name.eq_ignore_ascii_case("rel") && value.split_whitespace().any(|r| r == "ice-server")
                })
            })
            .collect()
    }
}

/// Why a client could not use the STUN or TURN server a `Link` names, if it
/// could not: its target is not a STUN or TURN URI (RFC 9725, section 4.6:
/// "the server URI as defined in RFC 7064 and RFC 7065"), or it is a TURN
/// server without a username and credential, which a browser refuses
/// (W3C WebRTC, section 4.2.1: `InvalidAccessError`, and the whole
/// configuration with it).
pub fn ice_server_problem(target: &str, params: &[(String, String)]) -> Option<String> {
    let uri = match media::ice::ServerUri::parse(target) {
        Ok(uri) => uri,
        Err(why) => return Some(why),
    };
    let has = |name: &str| params.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    (uri.is_turn() && !(has("username") && has("credential")))
        .then(|| format!("<{target}> is a TURN server without a username and a credential"))
}

/// The `rel` of WHEP's server-sent events extension.
pub const EVENTS_REL: &str = "urn:ietf:params:whep:ext:core:server-sent-events";

/// The `rel` of the WHEP video layer selection extension's `Link`.
pub const LAYER_REL: &str = "urn:ietf:params:whep:ext:core:layer";

/// The link-values of one `Link` field: each target (between `<>`) and its
/// parameters, unquoted. Commas and semicolons inside quotes or the target
/// do not split.
fn links(field: &str) -> Vec<(String, Vec<(String, String)>)> {
    split_outside_quotes(field, ',')
        .iter()
        .filter_map(|value| {
            let (target, params) = value.trim().strip_prefix('<')?.split_once('>')?;
            let params = split_outside_quotes(params, ';')
                .iter()
                .filter_map(|param| {
                    let (name, value) = param.split_once('=')?;
                    Some((name.trim().to_string(), unquote(value.trim())))
                })
                .collect();
            Some((target.to_string(), params))
        })
        .collect()
}

/// `text` split at each `separator` outside a quoted-string (RFC 9110,
/// section 5.6.4, whose `\` escapes the next character) and outside `<>`.
fn split_outside_quotes(text: &str, separator: char) -> Vec<String> {
    let mut parts = Vec::new();
    let (mut part, mut quoted, mut bracketed, mut escaped) = (String::new(), false, false, false);
    for c in text.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' if !bracketed => quoted = !quoted,
            '<' if !quoted => bracketed = true,
            '>' if !quoted => bracketed = false,
            _ if c == separator && !quoted && !bracketed => {
                parts.push(std::mem::take(&mut part));
                continue;
            }
            _ => {}
        }
        part.push(c);
    }
    parts.push(part);
    parts
}

/// A parameter's value: a quoted-string's content with its escapes undone,
/// or the token as it is.
fn unquote(value: &str) -> String {
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return value.to_string();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        out.push(if c == '\\' { chars.next().unwrap_or(c) } else { c });
    }
    out
}

/// The events of a `text/event-stream` body (WHATWG HTML, "Server-sent
/// events", the event stream format): each event's name (`message` when
/// it has none) and its data lines joined. An event ends at a blank line;
/// a last one cut off unfinished is left out.
pub fn sse_events(body: &str) -> Vec<(String, String)> {
    let mut events = Vec::new();
    let (mut name, mut data): (Option<String>, Option<String>) = (None, None);
    for line in body.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)) {
        if line.is_empty() {
            if let Some(data) = data.take() {
                events.push((name.take().unwrap_or_else(|| "message".into()), data));
            }
            name = None;
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => name = Some(value.to_string()),
            "data" => match &mut data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => data = Some(value.to_string()),
            },
            _ => {}
        }
    }
    events
}

/// Most of a streamed answer kept (`exchange` with `read_for`).
const STREAMED_BODY_LIMIT: usize = 64 * 1024;

/// Sends `method` to `url` with `headers` and, if given, a body of
/// `(content type, text)`; returns the answer as it is. With `read_for`,
/// the body is read only that long (a stream of server-sent events does
/// not end), and a body cut off early is kept as far as it came. Errors
/// only when there is no HTTP answer at all.
pub async fn exchange(
    method: Method,
    url: &str,
    headers: &[(String, String)],
    body: Option<(&str, &str)>,
    read_for: Option<Duration>,
) -> Result<Exchange, WebRtcError> {
    let http_error = |source| WebRtcError::Http {
        method: method.as_str(),
        url: url.to_string(),
        source,
    };
    let verb = reqwest::Method::from_bytes(method.as_str().as_bytes()).expect("a standard method");
    let mut request = client()?.request(verb, url);
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    if let Some((content_type, text)) = body {
        request = request.header(CONTENT_TYPE, content_type).body(text.to_string());
    }
    if let Some(limit) = read_for {
        // The client's own timeout covers the body too: a stream read for
        // longer must not be cut by it.
        request = request.timeout(limit + HTTP_TIMEOUT);
    }
    let response = request.send().await.map_err(http_error)?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let bytes = match read_for {
        None => response.bytes().await.map_err(http_error)?.to_vec(),
        Some(limit) => {
            let until = tokio::time::Instant::now() + limit;
            let mut response = response;
            let mut bytes = Vec::new();
            while bytes.len() < STREAMED_BODY_LIMIT {
                match tokio::time::timeout_at(until, response.chunk()).await {
                    Ok(Ok(Some(chunk))) => bytes.extend_from_slice(&chunk),
                    // A stream cut by the server ends the read: what came is the answer.
                    Ok(Ok(None)) | Ok(Err(_)) | Err(_) => break,
                }
            }
            bytes
        }
    };
    Ok(Exchange {
        method,
        url: url.to_string(),
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

/// The media type of a trickle-ICE SDP fragment (RFC 8840).
pub const TRICKLE_TYPE: &str = "application/trickle-ice-sdpfrag";

/// A trickle-ICE SDP fragment (RFC 8840, `application/trickle-ice-sdpfrag`)
/// for the ICE session of `offer`: its credentials, its first m-line and
/// mid, and one host candidate at `candidate`. With `restart`, new
/// credentials instead, as an ICE restart sends (RFC 9725 section 4.3.3).
/// `None` when the offer lacks credentials or an m-line.
pub fn trickle_fragment(offer: &str, candidate: std::net::SocketAddr, restart: bool) -> Option<String> {
    let attribute = |name: &str| {
        offer
            .lines()
            .find_map(|line| line.trim_end().strip_prefix(&format!("a={name}:")))
            .map(str::to_string)
    };
    let (ufrag, pwd) = if restart {
        (
            format!("r{:07x}", rand::random::<u32>() >> 4),
            format!("{:032x}", rand::random::<u128>()),
        )
    } else {
        (attribute("ice-ufrag")?, attribute("ice-pwd")?)
    };
    let mline = offer.lines().find(|line| line.starts_with("m="))?.trim_end();
    let mid = attribute("mid")?;
    Some(format!(
        "a=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\n{mline}\r\na=mid:{mid}\r\n\
         a=candidate:1 1 udp 2130706431 {} {} typ host\r\na=end-of-candidates\r\n",
        candidate.ip(),
        candidate.port()
    ))
}

/// The `ice-ufrag` and `ice-pwd` of an SDP fragment (or an SDP), when it
/// has both.
pub fn fragment_credentials(fragment: &str) -> Option<str0m::IceCreds> {
    let attribute = |name: &str| {
        fragment
            .lines()
            .find_map(|line| line.trim_end().strip_prefix(&format!("a={name}:")))
            .map(|value| value.trim().to_string())
            .filter(|value| !value.is_empty())
    };
    Some(str0m::IceCreds {
        ufrag: attribute("ice-ufrag")?,
        pass: attribute("ice-pwd")?,
    })
}

/// An SDP offer as a WHIP publisher (`sendonly`) or a WHEP player
/// (`recvonly`) makes it, for requests made by hand; the UDP socket its
/// candidate names stays open while it lives.
pub struct Offer {
    prepared: super::peer::Prepared,
}

/// What an [`Offer`] holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferShape {
    /// An audio m-line.
    pub audio: bool,
    /// A video m-line.
    pub video: bool,
    /// `sendrecv` instead of the endpoint's one direction (which WHIP and
    /// WHEP clients MAY use).
    pub sendrecv: bool,
    /// The codecs offered, by name: `opus`, `PCMU`, `PCMA`, `H264`,
    /// `H264/pm0` (H.264 in single NAL unit mode only), `H265`, `VP8`, `VP9`,
    /// `AV1` (default `opus` and `H264`).
    pub codecs: Vec<String>,
}

impl Default for OfferShape {
    fn default() -> Self {
        OfferShape {
            audio: true,
            video: true,
            sendrecv: false,
            codecs: vec!["opus".into(), "H264".into()],
        }
    }
}

impl Offer {
    /// A fresh offer of `shape` to `endpoint`.
    pub async fn new(endpoint: Endpoint, shape: &OfferShape) -> Result<Offer, WebRtcError> {
        use str0m::media::{Direction, MediaKind};
        let direction = match (shape.sendrecv, endpoint) {
            (true, _) => Direction::SendRecv,
            (false, Endpoint::Whip) => Direction::SendOnly,
            (false, Endpoint::Whep) => Direction::RecvOnly,
        };
        let mut config = str0m::Rtc::builder().clear_codecs();
        for codec in &shape.codecs {
            config = match codec.as_str() {
                "opus" => config.enable_opus(true, false),
                "PCMU" => config.enable_pcmu(true, false),
                "PCMA" => config.enable_pcma(true, false),
                "H264" => config.enable_h264(true),
                "H264/pm0" => {
                    // The player's usual profiles, in single NAL unit mode
                    // only (packetization-mode=0, RFC 6184 section 6.2).
                    let mut config = config;
                    for (profile, pt) in super::DEFAULT_H264_PROFILES.into_iter().zip([102u8, 104, 106, 108]) {
                        config
                            .codec_config()
                            .add_h264(pt.into(), Some((pt + 1).into()), false, profile);
                    }
                    config
                }
                "H265" => config.enable_h265(true),
                "VP8" => config.enable_vp8(true),
                "VP9" => config.enable_vp9(true),
                "AV1" => config.enable_av1(true),
                other => return Err(WebRtcError::Options(format!("no codec {other:?} to offer"))),
            };
        }
        let media: Vec<(MediaKind, Direction)> = [(shape.audio, MediaKind::Audio), (shape.video, MediaKind::Video)]
            .into_iter()
            .filter(|(on, _)| *on)
            .map(|(_, kind)| (kind, direction))
            .collect();
        let bind = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
        let prepared = super::peer::Prepared::new(config, &media, bind).await?;
        Ok(Offer { prepared })
    }

    /// The SDP.
    pub fn sdp(&self) -> &str {
        self.prepared.offer()
    }

    /// A trickle-ICE fragment for its ICE session ([`trickle_fragment`]).
    pub fn fragment(&self, restart: bool) -> Option<String> {
        trickle_fragment(self.sdp(), self.prepared.local(), restart)
    }

    /// The offering peer's SDP answer to the server's counter-offer (WHEP
    /// draft 03, section 4.2), its own offer dropped; once per offer.
    pub fn answer_counter_offer(&mut self, counter_offer: &str) -> Result<String, WebRtcError> {
        self.prepared.answer_counter_offer(counter_offer)
    }
}
