//! The servers the suite runs against.
//!
//! * **embedded**: the reference server started in-process on ephemeral
//!   ports, a fresh one for every case;
//! * **external**: any server, by its URLs (`--rtmp rtmp://host:port/app
//!   --whep URL --whip URL --ws URL`, or the same in a TOML target file):
//!
//! ```toml
//! name = "mediamtx"
//! rtmp = "rtmp://127.0.0.1:1935/live"
//! whep = "http://127.0.0.1:8889/{stream}/whep"   # {app} and {stream} are filled in
//! whip = "http://127.0.0.1:8889/{stream}/whip"
//! # ws = "ws://127.0.0.1:8080/ws"                # the WCS-style channel of docs/signalling.md
//! capabilities = []                              # extra: "app-keys", "rooms", "backend-hooks"
//! lacks = ["rtmp-play"]                          # what it does not do, though it has the URL
//! restart = "systemctl restart mediamtx"         # run when it stops answering
//! # counter_offer_app = "countered"              # an application whose WHEP endpoint answers offers 406 with its own (the `whep-counter-offer` cases)
//! [tokens]                                       # an application that wants tokens (the `tokens` cases)
//! app = "secured"                                # (default: the RTMP URL's)
//! publish = "a publish token"
//! play = "a play token"
//! [exclude]
//! "rtmp/handshake/digest" = "answers the digest handshake with a simple one; known"
//! ```
//!
//! * **container**: the same, plus a `[container]` table naming an image
//!   the suite starts (with testcontainers, on the host's network) before
//!   the run and removes after it; see [`container`].
//!
//! What a target lacks makes the cases that need it UNIMPLEMENTED, not
//! FAILED; exclusions are listed with their reasons before the run.

pub mod container;
pub mod liveness;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use container::{Container, ContainerError, ContainerSpec};

#[cfg(feature = "embedded")]
use reference_server::config::Quirks;
#[cfg(feature = "embedded")]
use reference_server::{Config, Server, ServerHandle};
use serde::{Deserialize, Serialize};

/// Starts the reference server on 127.0.0.1 with ephemeral ports, after
/// `adjust` has changed the default configuration.
#[cfg(feature = "embedded")]
pub async fn embedded(adjust: impl FnOnce(&mut Config)) -> Result<ServerHandle, reference_server::StartError> {
    let mut config = Config::default();
    config.rtmp.listen = ([127, 0, 0, 1], 0).into();
    config.http.listen = ([127, 0, 0, 1], 0).into();
    config.webrtc.listen = ([127, 0, 0, 1], 0).into();
    adjust(&mut config);
    Server::start(config).await
}

/// Something a case may need from a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// RTMP connections.
    Rtmp,
    /// RTMP publishing.
    RtmpPublish,
    /// RTMP playing.
    RtmpPlay,
    /// WHEP playing.
    Whep,
    /// WHIP publishing.
    Whip,
    /// The WebSocket signalling channel of docs/signalling.md.
    #[serde(rename = "websocket")]
    WebSocket,
    /// Applications chosen by `appKey` and unknown keys refused (WCS).
    AppKeys,
    /// Rooms (docs/rooms.md): `sendData` calls over RTMP, `room` messages
    /// on the WebSocket channel.
    Rooms,
    /// Hooks the suite can point at its own backend, per case (the embedded target).
    BackendHooks,
    /// An application that wants publish and play tokens: the target's
    /// `[tokens]`.
    Tokens,
    /// An application whose WHEP endpoint rejects every offer for a
    /// counter-offer of its own (WHEP draft 03, section 4.2): the target's
    /// `counter_offer_app`.
    WhepCounterOffer,
}

impl Capability {
    /// The name used in target files and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Rtmp => "rtmp",
            Capability::RtmpPublish => "rtmp-publish",
            Capability::RtmpPlay => "rtmp-play",
            Capability::Whep => "whep",
            Capability::Whip => "whip",
            Capability::WebSocket => "websocket",
            Capability::AppKeys => "app-keys",
            Capability::BackendHooks => "backend-hooks",
            Capability::Rooms => "rooms",
            Capability::Tokens => "tokens",
            Capability::WhepCounterOffer => "whep-counter-offer",
        }
    }
}

/// A target file, or the same from the command line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    /// The name reports use (`embedded`, `srs`, ...).
    pub name: String,
    /// `rtmp://host:port/app`.
    #[serde(default)]
    pub rtmp: Option<String>,
    /// The WHEP endpoint, with `{app}` and `{stream}` placeholders.
    #[serde(default)]
    pub whep: Option<String>,
    /// The WHIP endpoint, with `{app}` and `{stream}` placeholders.
    #[serde(default)]
    pub whip: Option<String>,
    /// The WebSocket signalling URL (`ws://host:port/ws`).
    #[serde(default)]
    pub ws: Option<String>,
    /// The application key Flash actors send as `appKey` and WebSocket
    /// sessions connect with (default: the RTMP URL's application).
    #[serde(default)]
    pub app_key: Option<String>,
    /// Capabilities beyond those the URLs imply.
    #[serde(default)]
    pub capabilities: Vec<Capability>,
    /// Capabilities the URLs imply but the server does not have.
    #[serde(default)]
    pub lacks: Vec<Capability>,
    /// Cases not to run, with the reason.
    #[serde(default)]
    pub exclude: BTreeMap<String, String>,
    /// A shell command that starts the server again when it stopped
    /// answering during a run (see [`liveness`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<String>,
    /// An image to start for the run (the container target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerSpec>,
    /// An application that wants tokens, and two of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<Tokens>,
    /// An application whose WHEP endpoint answers every offer `406` with a
    /// counter-offer of its own (WHEP draft 03, section 4.2): the cases that
    /// need `whep-counter-offer` run in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counter_offer_app: Option<String>,
    /// An address of this machine that reaches the server and that the
    /// suite's other clients do not use: where attacks come from, so that
    /// the server's per-address limits fall on the attacker and not on the
    /// clients that check it still serves others. Without it, 127.0.0.2
    /// for a server on IPv4 loopback; a server elsewhere then has no such
    /// address, and the cases that need one are not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attack_from: Option<IpAddr>,
}

/// A target's application that lets a client publish or play only with a
/// token (as a WHIP/WHEP bearer token or `?token=` in an RTMP stream name):
/// the cases that need `tokens` run in it, and `{publish_token}` and
/// `{play_token}` in their stream names, connect parameters and HTTP
/// headers stand for these.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tokens {
    /// The application (default: the RTMP URL's).
    #[serde(default)]
    pub app: Option<String>,
    /// A token that lets a client publish there.
    pub publish: String,
    /// A token that lets a client play there.
    pub play: String,
}

/// The embedded server's application with tokens.
pub const EMBEDDED_TOKENS: (&str, &str, &str) = ("secured", "publish-token-1", "play-token-1");

/// The embedded server's application whose WHEP endpoint counter-offers.
pub const EMBEDDED_COUNTER_OFFER_APP: &str = "countered";

/// The STUN and TURN servers the embedded server names to WHIP and WHEP
/// clients: none of them runs, and the suite's clients do not use them.
#[cfg(feature = "embedded")]
fn embedded_ice_servers() -> Vec<reference_server::config::IceServer> {
    use reference_server::config::IceServer;
    vec![
        IceServer {
            url: "stun:127.0.0.1:3478".into(),
            username: None,
            credential: None,
        },
        IceServer {
            url: "turn:127.0.0.1:3478?transport=udp".into(),
            username: Some("conformance".into()),
            credential: Some("not-a-secret".into()),
        },
    ]
}

/// Why a target could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The target file could not be read or parsed.
    #[error("target file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A URL is not usable.
    #[error("{0}")]
    Url(String),
    /// The embedded server did not start.
    #[cfg(feature = "embedded")]
    #[error("the embedded reference server did not start: {0}")]
    Start(#[from] reference_server::StartError),
    /// The container target did not start.
    #[error(transparent)]
    Container(#[from] ContainerError),
}

impl TargetSpec {
    /// Reads a target file.
    pub fn load(path: &Path) -> Result<TargetSpec, TargetError> {
        let file = |reason: String| TargetError::File {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| file(e.to_string()))?;
        toml::from_str(&text).map_err(|e| file(e.to_string()))
    }

    /// Why this target does not run `scenario`: it excludes it (and says
    /// why), lacks a capability the case needs, or the case's attack needs
    /// an address of its own and the suite has none toward this target.
    /// `None` when it runs it.
    pub fn cannot_run(&self, scenario: &crate::scenario::Scenario) -> Option<String> {
        if let Some(reason) = self.exclude.get(&scenario.id) {
            return Some(format!("excluded by the target: {reason}"));
        }
        if scenario.attacks().any(|attack| attack.outnumbers_one_host()) && self.attacker_address().is_none() {
            return Some(
                "the attack must come from an address the case's other clients do not use, and the suite has \
                 none toward this server: give one of this machine's addresses that reaches it as \
                 attack_from (target file) or --attack-from"
                    .to_string(),
            );
        }
        let offers = self.offers();
        let missing: Vec<&str> = scenario
            .capabilities()
            .into_iter()
            .filter(|c| !offers.contains(c))
            .map(|c| c.as_str())
            .collect();
        (!missing.is_empty()).then(|| format!("the target lacks {}", missing.join(", ")))
    }

    /// Where the suite's attacks come from: `attack_from`, or 127.0.0.2
    /// when the server's RTMP (else WHEP, WebSocket) host is IPv4 loopback.
    pub fn attacker_address(&self) -> Option<IpAddr> {
        self.attack_from.or_else(|| {
            let url = [&self.rtmp, &self.whep, &self.ws, &self.whip]
                .into_iter()
                .flatten()
                .next()?;
            let host = reqwest::Url::parse(url).ok()?.host_str()?.to_string();
            let loopback = host == "localhost" || host.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback());
            loopback.then_some(IpAddr::from([127, 0, 0, 2]))
        })
    }

    /// What the target offers: what its URLs imply and `capabilities`, less `lacks`.
    pub fn offers(&self) -> Vec<Capability> {
        let mut all = self.capabilities.clone();
        if self.rtmp.is_some() {
            all.extend([Capability::Rtmp, Capability::RtmpPublish, Capability::RtmpPlay]);
        }
        if self.whep.is_some() {
            all.push(Capability::Whep);
        }
        if self.whip.is_some() {
            all.push(Capability::Whip);
        }
        if self.ws.is_some() {
            all.push(Capability::WebSocket);
        }
        if self.tokens.is_some() {
            all.push(Capability::Tokens);
        }
        if self.whep.is_some() && self.counter_offer_app.is_some() {
            all.push(Capability::WhepCounterOffer);
        }
        all.retain(|c| !self.lacks.contains(c));
        all.sort();
        all.dedup();
        all
    }
}

/// A target the runner can start for each case.
#[derive(Debug, Clone)]
pub enum Target {
    /// The reference server, in-process, a fresh one per case (feature `embedded`).
    #[cfg(feature = "embedded")]
    Embedded,
    /// The reference server with known bugs switched back on (see
    /// `reference_server::config::Quirks`): what the known-issue scenarios
    /// must catch.
    #[cfg(feature = "embedded")]
    EmbeddedWithQuirks(Quirks),
    /// A server somebody else runs.
    External(Box<TargetSpec>),
    /// A server in a container the suite started for the run; the
    /// container is removed when the last clone of the target is dropped.
    Container(Arc<StartedContainer>),
}

/// A container target's spec and its running container.
#[derive(Debug)]
pub struct StartedContainer {
    spec: TargetSpec,
    container: Container,
}

impl StartedContainer {
    /// The running container.
    pub fn container(&self) -> &Container {
        &self.container
    }
}

impl Target {
    /// The target a spec describes: external, or, when it has a
    /// `[container]` table, its container started (this blocks until the
    /// server accepts RTMP connections).
    pub fn from_spec(spec: TargetSpec) -> Result<Target, TargetError> {
        let Some(container) = &spec.container else {
            return Ok(Target::External(Box::new(spec)));
        };
        let url = spec
            .rtmp
            .as_deref()
            .ok_or_else(|| TargetError::Url("a container target needs its rtmp URL".into()))?;
        let (base, _) = split_rtmp_url(url)?;
        let ready = resolve(base.trim_start_matches("rtmp://"))?;
        let container = Container::start(container, ready)?;
        Ok(Target::Container(Arc::new(StartedContainer { spec, container })))
    }

    /// Its description: URLs, capabilities, exclusions. For the embedded
    /// target the URLs hold port 0 until a case starts it.
    pub fn spec(&self) -> TargetSpec {
        match self {
            #[cfg(feature = "embedded")]
            Target::Embedded => embedded_spec(0, 0),
            #[cfg(feature = "embedded")]
            Target::EmbeddedWithQuirks(quirks) => quirky(embedded_spec(0, 0), quirks),
            Target::External(spec) => spec.as_ref().clone(),
            Target::Container(started) => started.spec.clone(),
        }
    }

    /// How to tell that the server still answers, for a server outside
    /// this process (an in-process one is started afresh for each case).
    pub fn liveness(&self) -> Option<liveness::Liveness> {
        match self {
            Target::External(spec) => Some(liveness::Liveness::of(spec)),
            Target::Container(started) => Some(liveness::Liveness::of(&started.spec)),
            #[cfg(feature = "embedded")]
            _ => None,
        }
    }

    /// Makes the target ready for one case. `hooks` is the suite's backend
    /// URL, when the case has one: the embedded server's applications all
    /// call it. (Other targets cannot be pointed at it per case, so they do
    /// not offer `backend-hooks`.)
    pub async fn start(&self, hooks: Option<&str>) -> Result<Running, TargetError> {
        self.start_as(hooks, false).await
    }

    /// Makes the target ready for a load test from this one host (`conformance
    /// bench`): the embedded server's per-address limits, which would take
    /// the load generator for one hostile client, are lifted.
    pub async fn start_for_load(&self) -> Result<Running, TargetError> {
        self.start_as(None, true).await
    }

    async fn start_as(&self, hooks: Option<&str>, load: bool) -> Result<Running, TargetError> {
        #[cfg(not(feature = "embedded"))]
        let _ = (hooks, load);
        match self {
            #[cfg(feature = "embedded")]
            Target::Embedded | Target::EmbeddedWithQuirks(_) => {
                let quirks = match self {
                    Target::EmbeddedWithQuirks(quirks) => *quirks,
                    _ => Quirks::default(),
                };
                let server = embedded(|config| {
                    for app in config.apps.values_mut() {
                        app.backend_url = hooks.map(str::to_string);
                    }
                    config.quirks = quirks;
                    // Named to WHIP and WHEP clients (the suite's ice-servers cases).
                    config.webrtc.ice_servers = embedded_ice_servers();
                    let (app, publish, play) = EMBEDDED_TOKENS;
                    let mut secured = config.apps["live"].clone();
                    secured.publish_tokens = vec![publish.into()];
                    secured.play_tokens = vec![play.into()];
                    config.apps.insert(app.into(), secured);
                    let mut countered = config.apps["live"].clone();
                    countered.whep_counter_offer = true;
                    config.apps.insert(EMBEDDED_COUNTER_OFFER_APP.into(), countered);
                    // The suite's attacks come from 127.0.0.2 and its healthy
                    // clients from 127.0.0.1, so the per-address caps stay on
                    // for cases; a load test comes from one address.
                    if load {
                        config.rtmp.max_connections_per_address = 0;
                        config.webrtc.max_sessions_per_address = 0;
                        config.http.max_websockets_per_address = 0;
                    }
                })
                .await?;
                let spec = embedded_spec(server.rtmp_addr().port(), server.http_addr().port());
                let mut running = Running::new(quirky(spec, &quirks))?;
                running.server = Some(server);
                Ok(running)
            }
            Target::External(spec) => Running::new(spec.as_ref().clone()),
            Target::Container(started) => Running::new(started.spec.clone()),
        }
    }
}

/// The spec named after the quirks switched on (`embedded+stream_name_keeps_query`).
#[cfg(feature = "embedded")]
fn quirky(mut spec: TargetSpec, quirks: &Quirks) -> TargetSpec {
    for name in quirks.names() {
        spec.name = format!("{}+{name}", spec.name);
    }
    spec
}

/// A WHEP/WHIP URL template with `{app}` and `{stream}` filled in. `stream`
/// may carry parameters (`big?width=160`): the name alone goes into the
/// `{stream}` slot, percent-encoded for where the slot is (a path segment,
/// or a query value), and the parameters are added to the URL's query,
/// so that `...?app={app}&stream={stream}` becomes
/// `...?app=live&stream=big&width=160`, never `stream=big?width=160`.
pub fn fill_template(template: &str, app: &str, stream: &str) -> String {
    let (name, params) = stream.split_once('?').unwrap_or((stream, ""));
    let query_at = template.find('?').unwrap_or(template.len());
    let encode = |value: &str, at: Option<usize>| match at {
        Some(at) if at > query_at => form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>(),
        _ => path_segment(value),
    };
    let filled = template
        .replace("{app}", &encode(app, template.find("{app}")))
        .replace("{stream}", &encode(name, template.find("{stream}")));
    if params.is_empty() {
        return filled;
    }
    let separator = if filled.contains('?') { '&' } else { '?' };
    format!("{filled}{separator}{params}")
}

/// `value` percent-encoded as one path segment (RFC 3986 unreserved
/// characters kept).
fn path_segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The embedded reference server's endpoints on these ports, with its
/// backend hooks open to the suite.
#[cfg(feature = "embedded")]
fn embedded_spec(rtmp_port: u16, http_port: u16) -> TargetSpec {
    let mut spec = reference_server_spec(
        "embedded",
        ([127, 0, 0, 1], rtmp_port).into(),
        ([127, 0, 0, 1], http_port).into(),
    );
    spec.capabilities.push(Capability::BackendHooks);
    let (app, publish, play) = EMBEDDED_TOKENS;
    spec.tokens = Some(Tokens {
        app: Some(app.into()),
        publish: publish.into(),
        play: play.into(),
    });
    spec.counter_offer_app = Some(EMBEDDED_COUNTER_OFFER_APP.into());
    spec
}

/// The reference server's endpoints at these addresses, as any target file
/// would give them: the obvious URLs, since the RTMP application `live` is
/// also the application of `/whep/live/...` and of WebSocket sessions of `live`.
pub fn reference_server_spec(name: &str, rtmp: SocketAddr, http: SocketAddr) -> TargetSpec {
    TargetSpec {
        name: name.into(),
        rtmp: Some(format!("rtmp://{rtmp}/live")),
        whep: Some(format!("http://{http}/whep/{{app}}/{{stream}}")),
        whip: Some(format!("http://{http}/whip/{{app}}/{{stream}}")),
        ws: Some(format!("ws://{http}/ws")),
        capabilities: vec![Capability::AppKeys, Capability::Rooms],
        ..TargetSpec::default()
    }
}

/// A target ready for a case: where to reach it.
pub struct Running {
    /// Its description.
    pub spec: TargetSpec,
    /// The RTMP server's address.
    pub rtmp_addr: Option<SocketAddr>,
    /// `rtmp://host:port`, without the application.
    pub rtmp_base: Option<String>,
    /// The application of the RTMP URL.
    pub app: String,
    #[cfg(feature = "embedded")]
    server: Option<ServerHandle>,
}

impl Running {
    fn new(spec: TargetSpec) -> Result<Running, TargetError> {
        let (rtmp_addr, rtmp_base, app) = match &spec.rtmp {
            Some(url) => {
                let (base, app) = split_rtmp_url(url)?;
                let host = base.trim_start_matches("rtmp://");
                let addr = resolve(host)?;
                (Some(addr), Some(base), app)
            }
            None => (None, None, String::new()),
        };
        Ok(Running {
            spec,
            rtmp_addr,
            rtmp_base,
            app,
            #[cfg(feature = "embedded")]
            server: None,
        })
    }

    /// The embedded server, when the target is the embedded one.
    #[cfg(feature = "embedded")]
    pub fn server(&self) -> Option<&ServerHandle> {
        self.server.as_ref()
    }

    /// Whether the server runs inside this process (the embedded target).
    pub fn in_process(&self) -> bool {
        #[cfg(feature = "embedded")]
        return self.server.is_some();
        #[cfg(not(feature = "embedded"))]
        false
    }

    /// The application key for Flash's `appKey` and WebSocket sessions.
    pub fn app_key(&self) -> String {
        self.spec.app_key.clone().unwrap_or_else(|| self.app.clone())
    }

    /// Stops what was started for the case.
    pub async fn stop(self) {
        #[cfg(feature = "embedded")]
        if let Some(server) = self.server {
            server.shutdown().await;
        }
    }
}

/// `rtmp://host[:port]/app[/...]` as (`rtmp://host:port`, `app`).
pub fn split_rtmp_url(url: &str) -> Result<(String, String), TargetError> {
    let rest = url
        .strip_prefix("rtmp://")
        .ok_or_else(|| TargetError::Url(format!("{url:?} is not an rtmp:// URL")))?;
    let (host, app) = rest.split_once('/').unwrap_or((rest, ""));
    if host.is_empty() || app.is_empty() {
        return Err(TargetError::Url(format!(
            "{url:?} needs a host and an application: rtmp://host:port/app"
        )));
    }
    let host = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:1935")
    };
    Ok((format!("rtmp://{host}"), app.trim_end_matches('/').to_string()))
}

fn resolve(host: &str) -> Result<SocketAddr, TargetError> {
    use std::net::ToSocketAddrs;
    host.to_socket_addrs()
        .map_err(|e| TargetError::Url(format!("cannot resolve {host}: {e}")))?
        .next()
        .ok_or_else(|| TargetError::Url(format!("{host} resolves to nothing")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floods_come_from_an_address_of_their_own_or_do_not_run() {
        let scenarios = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let flood =
            crate::scenario::load(&scenarios, &scenarios.join("rtmp/robustness/connection-flood.toml")).unwrap();
        let garbage = crate::scenario::load(&scenarios, &scenarios.join("rtmp/robustness/ack-flood.toml")).unwrap();
        let at = |rtmp: &str, attack_from: Option<&str>| TargetSpec {
            name: "t".into(),
            rtmp: Some(rtmp.into()),
            attack_from: attack_from.map(|ip| ip.parse().unwrap()),
            ..TargetSpec::default()
        };
        let loopback = at("rtmp://127.0.0.1:1935/live", None);
        assert_eq!(loopback.attacker_address(), Some(IpAddr::from([127, 0, 0, 2])));
        assert_eq!(
            at("rtmp://localhost/live", None).attacker_address(),
            Some(IpAddr::from([127, 0, 0, 2]))
        );
        assert_eq!(loopback.cannot_run(&flood), None);

        let elsewhere = at("rtmp://10.77.0.1:1935/live", None);
        assert_eq!(elsewhere.attacker_address(), None);
        let reason = elsewhere
            .cannot_run(&flood)
            .expect("a flood without an address of its own is not run");
        assert!(reason.contains("attack_from"), "{reason}");
        // One connection's garbage needs no address of its own.
        assert_eq!(elsewhere.cannot_run(&garbage), None);

        let given = at("rtmp://10.77.0.1:1935/live", Some("10.77.0.3"));
        assert_eq!(given.attacker_address(), Some(IpAddr::from([10, 77, 0, 3])));
        assert_eq!(given.cannot_run(&flood), None);
    }

    #[test]
    fn stream_parameters_get_their_own_query_slot() {
        let path = "http://h/whep/{app}/{stream}";
        assert_eq!(fill_template(path, "live", "cam"), "http://h/whep/live/cam");
        assert_eq!(
            fill_template(path, "live", "big?width=160"),
            "http://h/whep/live/big?width=160"
        );
        let query = "http://h:1985/rtc/v1/whep/?app={app}&stream={stream}";
        assert_eq!(
            fill_template(query, "live", "big?width=160&height=90"),
            "http://h:1985/rtc/v1/whep/?app=live&stream=big&width=160&height=90",
            "the name alone in the stream slot; parameters after it"
        );
        assert_eq!(
            fill_template(query, "live", "a b/c&d"),
            "http://h:1985/rtc/v1/whep/?app=live&stream=a+b%2Fc%26d"
        );
        assert_eq!(fill_template(path, "live", "a b/c"), "http://h/whep/live/a%20b%2Fc");
    }

    #[test]
    fn rtmp_urls_split_into_base_and_app() {
        assert_eq!(
            split_rtmp_url("rtmp://127.0.0.1/live").unwrap(),
            ("rtmp://127.0.0.1:1935".to_string(), "live".to_string())
        );
        assert_eq!(
            split_rtmp_url("rtmp://h:19350/app/inst/").unwrap(),
            ("rtmp://h:19350".to_string(), "app/inst".to_string())
        );
        assert!(split_rtmp_url("http://h/live").is_err());
        assert!(split_rtmp_url("rtmp://h").is_err());
    }

    #[test]
    fn what_a_target_offers_follows_its_urls() {
        let spec: TargetSpec = toml::from_str(
            "name = \"x\"\nrtmp = \"rtmp://127.0.0.1/live\"\nwhep = \"http://h/{stream}/whep\"\nlacks = [\"rtmp-play\"]\n[exclude]\n\"a/b\" = \"why\"\n",
        )
        .unwrap();
        assert_eq!(
            spec.offers(),
            vec![Capability::Rtmp, Capability::RtmpPublish, Capability::Whep]
        );
        assert_eq!(spec.exclude["a/b"], "why");
    }
}
