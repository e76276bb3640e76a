//! STUN and TURN server URIs (RFC 7064 and RFC 7065), as WHIP and WHEP
//! name them to their clients in `Link` header fields (RFC 9725, section
//! 4.6) and as browsers take them in `RTCIceServer.urls`.

/// A parsed `stun:`, `stuns:`, `turn:` or `turns:` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUri<'a> {
    /// `stun`, `stuns`, `turn` or `turns`, lower case.
    pub scheme: &'static str,
    /// The host: a name, an IPv4 address, or an IPv6 address (without its brackets).
    pub host: &'a str,
    pub port: Option<u16>,
    /// `?transport=` of a TURN URI.
    pub transport: Option<&'a str>,
}

impl<'a> ServerUri<'a> {
    /// Parses `uri`: `scheme ":" host [":" port]`, and for TURN
    /// `["?transport=" ("udp" / "tcp")]`; otherwise says what is wrong.
    pub fn parse(uri: &'a str) -> Result<ServerUri<'a>, String> {
        let (scheme, rest) = uri
            .split_once(':')
            .ok_or_else(|| format!("{uri:?} has no scheme (stun:, stuns:, turn:, turns:)"))?;
        let scheme = ["stun", "stuns", "turn", "turns"]
            .into_iter()
            .find(|s| s.eq_ignore_ascii_case(scheme))
            .ok_or_else(|| format!("{uri:?}: the scheme {scheme:?} is not stun, stuns, turn or turns"))?;
        let (authority, query) = match rest.split_once('?') {
            Some((authority, query)) => (authority, Some(query)),
            None => (rest, None),
        };
        let transport = match query {
            None => None,
            Some(query) => match query.strip_prefix("transport=") {
                Some(t @ ("udp" | "tcp")) if scheme.starts_with("turn") => Some(t),
                _ => {
                    return Err(format!(
                        "{uri:?}: {query:?} is not a query a STUN or TURN URI has \
                         (only transport=udp or tcp, on turn: and turns:)"
                    ))
                }
            },
        };
        // host [":" port], the host an IPv6 literal in brackets or not.
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (host, rest) = v6.split_once(']').unwrap_or(("", ""));
                if host.parse::<std::net::Ipv6Addr>().is_err() {
                    return Err(format!("{uri:?}: [{host}] is not an IPv6 address"));
                }
                match rest {
                    "" => (host, None),
                    _ => match rest.strip_prefix(':') {
                        Some(port) => (host, Some(port)),
                        None => return Err(format!("{uri:?}: {rest:?} after the IPv6 address")),
                    },
                }
            }
            None => match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            },
        };
        let port = match port {
            None => None,
            Some(port) => Some(
                port.bytes()
                    .all(|b| b.is_ascii_digit())
                    .then(|| port.parse::<u16>().ok())
                    .flatten()
                    .ok_or_else(|| format!("{uri:?}: the port {port:?} is not a number up to 65535"))?,
            ),
        };
        let bad = |c: char| c.is_whitespace() || c.is_control() || "/<>@\"[]".contains(c);
        if host.is_empty() || host.chars().any(bad) {
            return Err(format!("{uri:?} names no host"));
        }
        Ok(ServerUri {
            scheme,
            host,
            port,
            transport,
        })
    }

    /// A TURN server (`turn:` or `turns:`), which needs credentials.
    pub fn is_turn(&self) -> bool {
        self.scheme.starts_with("turn")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stun_and_turn_uris_parse_as_their_rfcs_write_them() {
        let uri = ServerUri::parse("turns:[2001:db8::1]:5349?transport=tcp").unwrap();
        assert_eq!(
            uri,
            ServerUri {
                scheme: "turns",
                host: "2001:db8::1",
                port: Some(5349),
                transport: Some("tcp")
            }
        );
        assert!(uri.is_turn());
        let uri = ServerUri::parse("STUN:stun.example.net").unwrap();
        assert_eq!((uri.scheme, uri.host, uri.port), ("stun", "stun.example.net", None));
        assert!(!uri.is_turn());
        assert_eq!(ServerUri::parse("turn:192.0.2.1:3478").unwrap().port, Some(3478));
    }

    #[test]
    fn what_a_client_could_not_use_is_named() {
        for (bad, why) in [
            ("stun.example.net", "has no scheme"),
            ("http://stun.example.net", "is not stun, stuns, turn or turns"),
            ("stun:", "names no host"),
            ("stun://stun.example.net", "names no host"),
            ("stun:stun.example.net:99999", "is not a number"),
            ("stun:stun.example.net?transport=udp", "is not a query"),
            ("turn:t.example.net?transport=sctp", "is not a query"),
            ("turn:[2001:db8::1", "is not an IPv6 address"),
            ("turn:[::1]3478", "after the IPv6 address"),
            ("turn:[example.net]:3478", "is not an IPv6 address"),
            ("stun:a]b", "names no host"),
            ("stun:example.net:+3478", "is not a number"),
        ] {
            let said = ServerUri::parse(bad).unwrap_err();
            assert!(said.contains(why), "{bad}: {said}");
        }
    }
}
