//! Whether a target still answers. A server that stops accepting
//! connections during a case is FAILED in that case ("the server stopped
//! answering after this case"); the cases after it are TARGET-DOWN until it
//! answers again, so that one crash does not read as a page of unrelated
//! "Connection refused" failures. A target file may name a `restart`
//! command, which the suite runs when the server is down.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{sleep, timeout, Instant};

use super::{split_rtmp_url, TargetSpec};

/// The ports a target listens on, as the suite reaches them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Liveness {
    /// What each address serves (`rtmp`, `http`), and the address.
    pub ports: Vec<(&'static str, SocketAddr)>,
    /// The target's restart command.
    pub restart: Option<String>,
}

impl Liveness {
    /// The ports of `spec`'s RTMP URL and of the host of its WHEP, WHIP and
    /// WebSocket URLs (each address once).
    pub fn of(spec: &TargetSpec) -> Liveness {
        use std::net::ToSocketAddrs;
        let mut ports = Vec::new();
        let mut add = |what: &'static str, host: &str| {
            if let Some(addr) = host.to_socket_addrs().ok().and_then(|mut a| a.next()) {
                if !ports.iter().any(|(_, a)| *a == addr) {
                    ports.push((what, addr));
                }
            }
        };
        if let Some(Ok((base, _))) = spec.rtmp.as_deref().map(split_rtmp_url) {
            add("rtmp", base.trim_start_matches("rtmp://"));
        }
        for url in [&spec.whep, &spec.whip, &spec.ws].into_iter().flatten() {
            if let Some(host) = http_host(url) {
                add("http", &host);
            }
        }
        Liveness {
            ports,
            restart: spec.restart.clone(),
        }
    }

    /// `Ok` when every port answers within `wait` (tried every 100 ms);
    /// otherwise what did not, e.g. "rtmp 127.0.0.1:1935: Connection
    /// refused". See [`answers`] for what counts as an answer.
    pub async fn check(&self, wait: Duration) -> Result<(), String> {
        let deadline = Instant::now() + wait;
        loop {
            let mut down = Vec::new();
            for (what, addr) in &self.ports {
                // A busy server gets until the deadline to answer, 1 s at least.
                let patience = deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_secs(1));
                if let Err(why) = answers(what, *addr, patience).await {
                    down.push(format!("{what} {addr}: {why}"));
                }
            }
            if down.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(down.join("; "));
            }
            sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs the restart command (`sh -c`), then waits up to `wait` for the
    /// ports. `Err` says why the target is still down.
    pub async fn restart(&self, wait: Duration) -> Result<(), String> {
        let Some(command) = &self.restart else {
            return Err("the target names no restart command".into());
        };
        // Its output is kept out of the report unless it fails.
        let output = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| format!("cannot run the restart command {command:?}: {e}"))?;
        if !output.status.success() {
            let said = String::from_utf8_lossy(&output.stderr);
            let last = said.lines().last().unwrap_or("").trim();
            return Err(format!(
                "the restart command {command:?} exited with {}{}",
                output.status,
                if last.is_empty() {
                    String::new()
                } else {
                    format!(": {last}")
                }
            ));
        }
        self.check(wait)
            .await
            .map_err(|e| format!("still down after the restart command: {e}"))
    }
}

/// Whether the server behind `addr` answers: the first byte of S0 to an
/// RTMP C0+C1, any byte to an HTTP request, within `patience`. A TCP connect
/// alone is not enough: the kernel completes it from the listen backlog
/// while the process is still dying (a crashed node-media-server did, and
/// the next case took the blame).
async fn answers(what: &str, addr: SocketAddr, patience: Duration) -> Result<(), String> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        if what == "rtmp" {
            let mut c0c1 = vec![0u8; 1 + 1536];
            c0c1[0] = 3;
            stream.write_all(&c0c1).await?;
        } else {
            stream
                .write_all(b"OPTIONS * HTTP/1.1\r\nHost: liveness\r\nConnection: close\r\n\r\n")
                .await?;
        }
        let mut first = [0u8; 1];
        match stream.read(&mut first).await? {
            0 => Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the connection closed without an answer",
            )),
            _ => Ok(()),
        }
    };
    match timeout(patience, exchange).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {:.1} s", patience.as_secs_f64())),
    }
}

/// `host:port` of an http(s) or ws(s) URL, with the scheme's default port.
fn http_host(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?']).next()?;
    if authority.is_empty() {
        return None;
    }
    if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        return Some(authority.to_string());
    }
    let port = match scheme {
        "https" | "wss" => 443,
        _ => 80,
    };
    Some(format!("{authority}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ports_come_from_the_urls_each_once() {
        let spec = TargetSpec {
            rtmp: Some("rtmp://127.0.0.1/live".into()),
            whep: Some("http://127.0.0.1:8889/{stream}/whep".into()),
            whip: Some("http://127.0.0.1:8889/{stream}/whip".into()),
            ws: Some("ws://127.0.0.1/ws".into()),
            ..TargetSpec::default()
        };
        let ports: Vec<String> = Liveness::of(&spec)
            .ports
            .iter()
            .map(|(w, a)| format!("{w} {a}"))
            .collect();
        assert_eq!(
            ports,
            ["rtmp 127.0.0.1:1935", "http 127.0.0.1:8889", "http 127.0.0.1:80"]
        );
    }

    #[tokio::test]
    async fn a_closed_port_is_down_and_says_which() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let live = Liveness {
            ports: vec![("rtmp", addr)],
            restart: None,
        };
        // Accepted by the kernel but never answered: not alive.
        let silent = live.check(Duration::ZERO).await.unwrap_err();
        assert_eq!(silent, format!("rtmp {addr}: no answer within 1.0 s"));
        // Answers S0 to each C0+C1 (the silent check's connection first).
        let server = tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut c0c1 = [0u8; 1537];
                if socket.read_exact(&mut c0c1).await.is_ok() {
                    let _ = socket.write_all(&[3]).await;
                }
            }
        });
        assert_eq!(live.check(Duration::ZERO).await, Ok(()));
        server.abort();
        let _ = server.await;
        let down = live.check(Duration::from_millis(250)).await.unwrap_err();
        assert!(down.starts_with(&format!("rtmp {addr}: ")), "{down}");
        assert!(live
            .restart(Duration::ZERO)
            .await
            .unwrap_err()
            .contains("no restart command"));
    }
}
