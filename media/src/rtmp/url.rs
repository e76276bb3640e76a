//! Names with parameters: `live?c1=v1&c2=v2` as the RTMP application and
//! `stream1?s1=v1` as a stream name (known issue 3).
//!
//! RTMP has no separate field for parameters: clients append a query to the
//! application part of the URL (it arrives in connect's `app` and `tcUrl`) and to
//! the stream name given to `publish` and `play`. A server must strip the query
//! from the name (`stream1?x=1` publishes `stream1`) and keep the parameters.

use std::collections::BTreeMap;

/// Parameters from a query, by name (the last of repeated names wins).
pub type Params = BTreeMap<String, String>;

/// A name with its query split off.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NameWithParams {
    /// The name without the query.
    pub name: String,
    /// The decoded query parameters.
    pub params: Params,
}

/// Splits `name?k=v&k2=v2` into the name and its parameters (percent-decoded,
/// `+` as space). A name without `?` has no parameters. Surrounding
/// whitespace and slashes are trimmed from the name.
pub fn split_params(raw: &str) -> NameWithParams {
    let (name, query) = match raw.split_once('?') {
        Some((name, query)) => (name, query),
        None => (raw, ""),
    };
    NameWithParams {
        name: name.trim().trim_matches('/').to_string(),
        params: form_urlencoded::parse(query.as_bytes())
            .filter(|(k, _)| !k.is_empty())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
    }
}

/// The application named by a connect command: its `app` field, or failing
/// that the first path segment of `tcUrl`, with parameters from both (the
/// `app` field's win).
pub fn application(app_field: Option<&str>, tc_url: Option<&str>) -> NameWithParams {
    let from_url = tc_url.map(app_from_tc_url).unwrap_or_default();
    match app_field {
        Some(app) if !app.trim().is_empty() => {
            let mut parsed = split_params(app);
            for (k, v) in from_url.params {
                parsed.params.entry(k).or_insert(v);
            }
            parsed
        }
        _ => from_url,
    }
}

/// `rtmp://host:1935/live?c1=v1/...` → `live` with `{c1: v1}`.
fn app_from_tc_url(tc_url: &str) -> NameWithParams {
    let after_scheme = tc_url.split_once("://").map_or(tc_url, |(_, rest)| rest);
    let path = after_scheme.split_once('/').map_or("", |(_, path)| path);
    // The application is everything up to the next '/' that is not inside the query.
    let app = match path.split_once('?') {
        Some((name, query)) => {
            let query = query.split_once('/').map_or(query, |(q, _)| q);
            format!("{name}?{query}")
        }
        None => path.split('/').next().unwrap_or("").to_string(),
    };
    split_params(&app)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn stream_names_lose_their_query() {
        let s = split_params("stream1?s1=v1&s2=a%20b+c");
        assert_eq!(s.name, "stream1");
        assert_eq!(s.params, params(&[("s1", "v1"), ("s2", "a b c")]));
        assert_eq!(split_params("stream1").params, Params::new());
        assert_eq!(split_params("stream1?").name, "stream1");
        assert_eq!(split_params("mp4:file.mp4?x=1").name, "mp4:file.mp4");
        assert_eq!(split_params("?x=1").name, "");
    }

    #[test]
    fn applications_from_app_and_tc_url() {
        let a = application(Some("live?c1=v1&c2=v2"), Some("rtmp://h:1935/live?c1=v1&c2=v2"));
        assert_eq!(a.name, "live");
        assert_eq!(a.params, params(&[("c1", "v1"), ("c2", "v2")]));

        let b = application(None, Some("rtmp://h:1935/live?appKey=key1/streamName"));
        assert_eq!(b.name, "live");
        assert_eq!(b.params, params(&[("appKey", "key1")]));

        let c = application(Some("live"), Some("rtmp://h/live?token=t"));
        assert_eq!(
            (c.name.as_str(), c.params.get("token").map(String::as_str)),
            ("live", Some("t"))
        );

        let d = application(Some("app/inst"), None);
        assert_eq!(d.name, "app/inst");
        assert_eq!(application(None, Some("rtmp://host")).name, "");
    }
}
