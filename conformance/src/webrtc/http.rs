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

/// Sends an SDP offer the way WHEP/WHIP asks and returns `(answer, location)`:
/// anything but `201 Created` with a `Location` is an error that carries what
/// the server said.
pub async fn offer(url: &str, sdp: &str) -> Result<(String, String), WebRtcError> {
    let answer = post_sdp(url, "application/sdp", sdp).await?;
    if answer.status != 201 {
        return Err(WebRtcError::HttpStatus {
            method: "POST",
            url: url.to_string(),
            status: answer.status,
            expected: 201,
            body: answer.body,
        });
    }
    match answer.location {
        Some(location) => Ok((answer.body, location)),
        None => Err(WebRtcError::BadLocation {
            url: url.to_string(),
            location: answer.raw_location,
        }),
    }
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
