//! Replaying captured RTMP sessions against a target, and comparing its
//! answers with the captured server's.
//!
//! A session comes from a pcap/pcapng file (each RTMP connection in it, see
//! [`crate::capture`]) or from the two raw directions of one connection.
//! [`log`] decodes it into a [`MessageLog`]: both directions after the
//! handshake, one line per message. [`session::Replayer`] replays the
//! captured client's side against a target with a fresh handshake (the same
//! kind the captured client sent) and [`replay_log`] drives it over TCP;
//! [`replay_capture`] and [`replay_source`] do everything from a file. The
//! outcome is a [`ReplayReport`]: a verdict per captured client command, and
//! the wire log of the replay.
//!
//! ```no_run
//! # async fn example() -> Result<(), conformance::replay::ReplayError> {
//! use conformance::replay::{replay_capture, ReplayOptions};
//!
//! let report = replay_capture(
//!     std::path::Path::new("fixtures/captures/obs_publish_to_nginx.pcap"),
//!     "rtmp://127.0.0.1:1935/live",
//!     ReplayOptions::default(),
//! )
//! .await?;
//! println!("{report}"); // the summary, with Expected/Actual for each difference
//! let json = serde_json::to_string_pretty(&report).unwrap_or_default();
//! # let _ = json;
//! if !report.is_match() {
//!     std::process::exit(1);
//! }
//! # Ok(()) }
//! ```
//!
//! # Comparison rules
//!
//! The target's answers are compared *semantically*, command by command:
//!
//! 1. **Result.** For a command with a transaction id other than 0, the
//!    captured server's `_result`/`_error` with that id is compared with the
//!    target's: the same name (`_result` vs `_error`), and when it carries a
//!    NetStatus info object (connect's does), the same `code` and `level`.
//!    Nothing else in it is compared: not `fmsVer`, `capabilities`, `mode`,
//!    `objectEncoding`, `data.version`, `description`, `clientid`, nor the id
//!    `createStream` returns (ids are remapped instead).
//! 2. **Statuses.** The `onStatus` commands (on any stream) are compared as
//!    the list of their `code` and `level`, in order, per *group* of client
//!    commands: the commands the captured client sent without waiting for an
//!    answer in between (`FCUnpublish` then `deleteStream`, say) form one
//!    group, since which of them a server answers is its own business. The
//!    group's statuses are reported on its last command. A status belongs to
//!    the group of the last client command before it (in the capture), and
//!    to the group of the last command sent (in the replay).
//! 3. **Verdicts.** [`Verdict::Match`] when both agree; [`Verdict::Missing`]
//!    when the captured server answered (a result, or statuses) and the
//!    target said nothing within `answer_timeout`; [`Verdict::Differs`] with
//!    both answers otherwise; [`Verdict::NotSent`] for commands after the
//!    connection ended.
//! 4. **Not differences** (they become notes on the command):
//!    * a command the captured server did not answer and the target did
//!      (nginx-rtmp ignores `releaseStream` and `FCPublish`, others answer);
//!    * the result of the server-specific methods of
//!      [`session::SERVER_SPECIFIC_METHODS`] (`_checkbw`, `getStreamLength`,
//!      bandwidth checks), whatever either server said.
//! 5. **Ignored altogether:** the server's own calls (`onBWDone`,
//!    `_checkbw`, `onFCPublish`, …: any command other than `_result`,
//!    `_error` and `onStatus`), data messages (`|RtmpSampleAccess`,
//!    `onMetaData`, the `NetStream.Data.Start` data status), media, protocol
//!    and user control messages, and the handshake's version fields. They
//!    stay in the wire log.
//!
//! [`ReplayReport::is_match`] is true when every command's verdict is
//! [`Verdict::Match`].
//!
//! # Limits
//!
//! One connection is replayed at a time ([`ReplayOptions::connection`]): a
//! capture of a player that depends on another connection's publisher needs
//! that stream published on the target first. RTMPE and RTMPS cannot be
//! replayed.

pub mod log;
pub mod report;
pub mod session;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

pub use log::{Direction, LogError, LoggedMessage, MessageKind, MessageLog};
pub use report::{Answer, CommandReport, ReplayReport, Verdict};
pub use session::{Output, Replayer};

use crate::capture::{self, CaptureError};
use crate::handshake::{client_handshake_with_timeout, HandshakeError};

/// How to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayOptions {
    /// Keep the captured pacing (capture times, else media timestamps)
    /// instead of sending as fast as the answers allow.
    pub realtime: bool,
    /// How long to wait for each captured answer (and for the TCP connect,
    /// the handshake and each write) before giving up on it.
    pub answer_timeout: Duration,
    /// How long to linger after the awaited answers arrived, so that extra
    /// answers are attributed to the right command.
    pub settle: Duration,
    /// Which RTMP connection of the capture to replay (0-based, in order of
    /// first packet).
    pub connection: usize,
    /// Only consider connections to this server port (else every TCP
    /// connection that starts with an RTMP handshake).
    pub port: Option<u16>,
}

impl Default for ReplayOptions {
    /// As fast as possible, 5 s per answer, 100 ms settle, the first RTMP
    /// connection on any port.
    fn default() -> Self {
        ReplayOptions {
            realtime: false,
            answer_timeout: Duration::from_secs(5),
            settle: Duration::from_millis(100),
            connection: 0,
            port: None,
        }
    }
}

/// Why a replay could not run. (A target that answers differently is not an
/// error: that is what the [`ReplayReport`] says.)
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The capture file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The capture file is not a readable pcap/pcapng.
    #[error("{path}: {source}")]
    Capture {
        /// The file.
        path: PathBuf,
        /// What the capture reader found.
        #[source]
        source: CaptureError,
    },
    /// No connection in the capture starts with an RTMP handshake.
    #[error(
        "{source_name}: no RTMP connection in the capture ({tcp} TCP connections{port}, \
         none with a client starting with the RTMP version byte 3)"
    )]
    NoRtmp {
        /// The capture.
        source_name: String,
        /// TCP connections found.
        tcp: usize,
        /// `" to port N"` when filtered by port.
        port: String,
    },
    /// The requested connection is not in the capture.
    #[error("{source_name}: RTMP connection {requested} requested (0-based), the capture holds {available}")]
    NoSuchConnection {
        /// The capture.
        source_name: String,
        /// The index asked for.
        requested: usize,
        /// How many there are.
        available: usize,
    },
    /// The RTMP session does not decode.
    #[error("{source_name}, RTMP connection {connection}: {source}")]
    Log {
        /// The capture.
        source_name: String,
        /// Which connection.
        connection: usize,
        /// What the decoder found.
        #[source]
        source: LogError,
    },
    /// The target URL is not `rtmp://host[:port][/app]`.
    #[error("target URL {url:?}: {reason}")]
    BadTarget {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The target's host name does not resolve.
    #[error("target {url:?}: cannot resolve the host: {source}")]
    Resolve {
        /// The URL.
        url: String,
        /// The resolver's error.
        #[source]
        source: std::io::Error,
    },
    /// The TCP connection to the target failed.
    #[error("cannot connect to the target at {addr}: {source}")]
    Connect {
        /// The address.
        addr: SocketAddr,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The handshake with the target failed.
    #[error("handshake with the target at {addr} failed: {source}")]
    Handshake {
        /// The address.
        addr: SocketAddr,
        /// What went wrong.
        #[source]
        source: HandshakeError,
    },
}

/// Where to replay to: `rtmp://host[:port][/app]`. The path, if any, is the
/// application (it may carry a query, as in a tcUrl); without one, the
/// captured connect's `app` is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetUrl {
    /// The host name or address (IPv6 without brackets).
    pub host: String,
    /// The port (1935 unless given).
    pub port: u16,
    /// The application, if the URL names one.
    pub app: Option<String>,
    /// The URL as given.
    pub url: String,
}

impl TargetUrl {
    /// Parses `rtmp://host[:port][/app]`.
    pub fn parse(url: &str) -> Result<TargetUrl, ReplayError> {
        let bad = |reason: &str| ReplayError::BadTarget {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let rest = url
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case("rtmp://"))
            .map(|_| &url[7..])
            .ok_or_else(|| bad("it must start with rtmp:// (RTMPS and RTMPT are not supported)"))?;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let parse_port = |p: &str| {
            p.parse::<u16>()
                .map_err(|_| bad("the port is not a number from 0 to 65535"))
        };
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, tail) = bracketed
                .split_once(']')
                .ok_or_else(|| bad("an IPv6 address needs its closing ]"))?;
            match tail.strip_prefix(':') {
                Some(port) => (host, parse_port(port)?),
                None if tail.is_empty() => (host, 1935),
                None => return Err(bad("unexpected text after the IPv6 address")),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, parse_port(port)?),
                None => (authority, 1935),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let app = path.trim_end_matches('/');
        Ok(TargetUrl {
            host: host.to_string(),
            port,
            app: (!app.is_empty()).then(|| app.to_string()),
            url: url.to_string(),
        })
    }

    /// `host:port`, with brackets around an IPv6 address.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The tcUrl to connect with: the target's application, else
    /// `captured_app`.
    pub fn tc_url(&self, captured_app: Option<&str>) -> String {
        let app = self.app.as_deref().or(captured_app).unwrap_or("");
        format!("rtmp://{}/{app}", self.authority())
    }

    /// The first address the host resolves to.
    pub async fn resolve(&self) -> Result<SocketAddr, ReplayError> {
        let resolve_error = |source| ReplayError::Resolve {
            url: self.url.clone(),
            source,
        };
        tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(resolve_error)?
            .next()
            .ok_or_else(|| resolve_error(std::io::Error::new(std::io::ErrorKind::NotFound, "no address")))
    }
}

/// A captured session, on disk or in memory (a built-in fixture).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureSource {
    /// A pcap or pcapng file.
    File(PathBuf),
    /// The two raw directions of one connection, handshake included.
    Directions {
        /// What the client sent.
        client: PathBuf,
        /// What the server sent.
        server: PathBuf,
    },
    /// A pcap or pcapng file's bytes, and its name for reports.
    Bytes {
        /// Its name.
        name: String,
        /// The file's bytes.
        bytes: bytes::Bytes,
    },
    /// The two raw directions' bytes, and their name for reports.
    DirectionBytes {
        /// Their name.
        name: String,
        /// What the client sent.
        client: bytes::Bytes,
        /// What the server sent.
        server: bytes::Bytes,
    },
}

impl CaptureSource {
    /// One path: a capture file; two: the client's and the server's
    /// directions; anything else: `None`.
    pub fn from_paths(paths: &[PathBuf]) -> Option<CaptureSource> {
        match paths {
            [file] => Some(CaptureSource::File(file.clone())),
            [client, server] => Some(CaptureSource::Directions {
                client: client.clone(),
                server: server.clone(),
            }),
            _ => None,
        }
    }

    /// The path(s), for reports.
    pub fn describe(&self) -> String {
        match self {
            CaptureSource::File(path) => path.display().to_string(),
            CaptureSource::Directions { client, server } => {
                format!("{} + {}", client.display(), server.display())
            }
            CaptureSource::Bytes { name, .. } | CaptureSource::DirectionBytes { name, .. } => name.clone(),
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, ReplayError> {
    std::fs::read(path).map_err(|source| ReplayError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The message log of every RTMP connection of a capture, in order of first
/// packet (a pcap/pcapng: in capture order; raw directions: one log in
/// request/response order). `port` keeps only connections to that server
/// port; otherwise a connection counts as RTMP when its client's first byte
/// is the RTMP version 3 (or 6, RTMPE, which then fails to decode).
pub fn message_logs(source: &CaptureSource, port: Option<u16>) -> Result<Vec<MessageLog>, ReplayError> {
    let name = source.describe();
    message_logs_lenient(source, port)?
        .into_iter()
        .enumerate()
        .map(|(connection, log)| {
            log.map_err(|source| ReplayError::Log {
                source_name: name.clone(),
                connection,
                source,
            })
        })
        .collect()
}

/// Replays connection [`ReplayOptions::connection`] of a pcap/pcapng file
/// against the RTMP server at `target_rtmp_url` (`rtmp://host[:port][/app]`).
pub async fn replay_capture(
    path: &Path,
    target_rtmp_url: &str,
    options: ReplayOptions,
) -> Result<ReplayReport, ReplayError> {
    replay_source(&CaptureSource::File(path.to_path_buf()), target_rtmp_url, options).await
}

/// [`replay_capture`] for any [`CaptureSource`].
pub async fn replay_source(
    source: &CaptureSource,
    target_rtmp_url: &str,
    options: ReplayOptions,
) -> Result<ReplayReport, ReplayError> {
    let target = TargetUrl::parse(target_rtmp_url)?;
    // Decode only the connection asked for, so another one's defects do not matter.
    let name = source.describe();
    let logs = message_logs_lenient(source, options.port)?;
    let connections = logs.len();
    let log = match logs.into_iter().nth(options.connection) {
        Some(log) => log.map_err(|source| ReplayError::Log {
            source_name: name.clone(),
            connection: options.connection,
            source,
        })?,
        None => {
            return Err(ReplayError::NoSuchConnection {
                source_name: name,
                requested: options.connection,
                available: connections,
            })
        }
    };
    let mut report = replay_log(&log, &target, &options).await?;
    report.source = name;
    report.connection = options.connection;
    report.connections = connections;
    Ok(report)
}

/// [`message_logs`], keeping each connection's decoding error to itself.
fn message_logs_lenient(
    source: &CaptureSource,
    port: Option<u16>,
) -> Result<Vec<Result<MessageLog, LogError>>, ReplayError> {
    let bytes = match source {
        CaptureSource::Directions { client, server } => {
            return Ok(vec![MessageLog::from_directions(&read(client)?, &read(server)?)]);
        }
        CaptureSource::DirectionBytes { client, server, .. } => {
            return Ok(vec![MessageLog::from_directions(client, server)]);
        }
        CaptureSource::File(path) => bytes::Bytes::from(read(path)?),
        CaptureSource::Bytes { bytes, .. } => bytes.clone(),
    };
    let flows = match port {
        Some(port) => capture::rtmp_flows_timed(&bytes, port),
        None => capture::read_tcp_flows_timed(&bytes),
    }
    .map_err(|error| ReplayError::Capture {
        path: PathBuf::from(source.describe()),
        source: error,
    })?;
    let tcp = flows.len();
    let logs: Vec<_> = flows
        .iter()
        .filter(|f| matches!(f.flow.client_to_server.first(), Some(3 | 6)))
        .map(MessageLog::from_timed_flow)
        .collect();
    if logs.is_empty() {
        return Err(ReplayError::NoRtmp {
            source_name: source.describe(),
            tcp,
            port: port.map(|p| format!(" to port {p}")).unwrap_or_default(),
        });
    }
    Ok(logs)
}

/// Replays a decoded session against `target` over TCP: connects, performs
/// the handshake the captured client used, then drives a [`Replayer`]
/// (reading while it writes, so a target that talks while it listens never
/// blocks it). Ends with a FIN.
pub async fn replay_log(
    log: &MessageLog,
    target: &TargetUrl,
    options: &ReplayOptions,
) -> Result<ReplayReport, ReplayError> {
    let addr = target.resolve().await?;
    let limit = options.answer_timeout;
    let mut socket = tokio::time::timeout(limit, TcpStream::connect(addr))
        .await
        .map_err(|_| ReplayError::Connect {
            addr,
            source: std::io::Error::new(std::io::ErrorKind::TimedOut, format!("no answer within {limit:?}")),
        })?
        .map_err(|source| ReplayError::Connect { addr, source })?;
    // Small writes go out at once; failing to set it only costs latency.
    let _ = socket.set_nodelay(true);
    let (_, leftover) = client_handshake_with_timeout(&mut socket, log.client_handshake, limit)
        .await
        .map_err(|source| ReplayError::Handshake { addr, source })?;

    let start = Instant::now();
    let mut replayer = Replayer::new(log, target.clone(), options.clone());
    replayer.handle_receive(start.elapsed(), &leftover);
    let (mut reader, mut writer) = socket.into_split();
    let mut buf = vec![0u8; 64 * 1024];
    let mut reading = true;
    // Feeds one read's outcome to the replayer; false once the socket is done.
    let on_read = |replayer: &mut Replayer, read: std::io::Result<usize>, buf: &[u8]| -> bool {
        let now = start.elapsed();
        match read {
            Ok(0) => {
                replayer.handle_closed(now, "the target closed the connection");
                false
            }
            Ok(n) => {
                replayer.handle_receive(now, &buf[..n]);
                true
            }
            Err(e) => {
                replayer.handle_closed(now, &format!("reading from the target failed: {e}"));
                false
            }
        }
    };
    loop {
        match replayer.poll_output(start.elapsed()) {
            Output::Transmit(bytes) => {
                let write = tokio::time::timeout(limit, writer.write_all(&bytes));
                tokio::pin!(write);
                loop {
                    tokio::select! {
                        written = &mut write => {
                            let now = start.elapsed();
                            match written {
                                Ok(Ok(())) => {}
                                Ok(Err(e)) => replayer.handle_closed(now, &format!("writing to the target failed: {e}")),
                                Err(_) => replayer.handle_closed(now, &format!("the target read nothing for {limit:?}")),
                            }
                            break;
                        }
                        read = reader.read(&mut buf), if reading => {
                            reading = on_read(&mut replayer, read, &buf);
                        }
                    }
                }
            }
            Output::Wait(until) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(start + until) => {}
                    read = reader.read(&mut buf), if reading => {
                        reading = on_read(&mut replayer, read, &buf);
                    }
                }
            }
            Output::Done => break,
        }
    }
    // The captured client's session is over: close our side.
    let _ = writer.shutdown().await;
    Ok(replayer.into_report(start.elapsed()))
}
