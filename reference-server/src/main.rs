//! `reference-server`: runs the reference RTMP/WebRTC gateway.

/// jemalloc, whose background thread gives freed memory back to the system
/// about 10 s after a load (glibc's malloc keeps what its per-thread arenas
/// once held): docs/RELIABILITY.md, "Memory after a load".
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read before `main`: its memory in transparent huge
/// pages (2 MiB) where the kernel gives them on request (its "madvise"
/// mode, the common default). A stream's fan-out reads a few lines of
/// every player's state for each packet; in 4 KiB pages most of those
/// reads also missed the TLB, and huge pages took 5 % off the server's CPU
/// at 800 WebRTC viewers (docs/BENCHMARKS.md, "Huge pages"). The variable
/// `_RJEM_MALLOC_CONF` still overrides it (`thp:default` turns it off).
#[export_name = "_rjem_malloc_conf"]
static MALLOC_CONF: &[u8; 11] = b"thp:always\0";

use std::path::PathBuf;

use clap::Parser;
use reference_server::{Config, Server};
use tracing_subscriber::EnvFilter;

/// The reference RTMP/WebRTC gateway.
///
/// With no options it listens on 127.0.0.1: RTMP on TCP port 1935; HTTP on
/// port 8080 (the demo page at /, WHEP at /whep/{app}/{stream}, WHIP at
/// /whip/{app}/{stream}, the WebSocket channel at /ws, /metrics, /healthz); and
/// WebRTC media on UDP port 8443. The applications are `flashStreamingApp` and
/// `live`. A TOML file and `--set` override any setting; see
/// `--print-config` for them all.
///
/// SIGTERM or Ctrl-C stops it. SIGUSR1 drains it: Enhanced RTMP clients that
/// can reconnect are asked to, and /healthz answers 503 from then on.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    /// TOML configuration file.
    #[arg(short, long, env = "REFERENCE_SERVER_CONFIG")]
    config: Option<PathBuf>,
    /// RTMP listen address (same as --set rtmp.listen=ADDR); port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    rtmp: Option<String>,
    /// HTTP listen address (same as --set http.listen=ADDR); port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    http: Option<String>,
    /// WebRTC UDP listen address (same as --set webrtc.listen=ADDR); port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    webrtc: Option<String>,
    /// Override any setting: dotted.key=value, value in TOML syntax
    /// (e.g. --set rtmp.chunk_size=60000 --set application_from_url=true
    /// --set apps.live.backend_url='"http://127.0.0.1:9000/hooks"').
    #[arg(short, long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
    /// Log filter (tracing EnvFilter syntax), e.g. "info" or "reference_server=debug".
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    log: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&cli.log)?)
        .init();
    let mut overrides = cli.set.clone();
    if let Some(addr) = &cli.rtmp {
        overrides.push(format!("rtmp.listen=\"{addr}\""));
    }
    if let Some(addr) = &cli.http {
        overrides.push(format!("http.listen=\"{addr}\""));
    }
    if let Some(addr) = &cli.webrtc {
        overrides.push(format!("webrtc.listen=\"{addr}\""));
    }
    let config = Config::load(cli.config.as_deref(), &overrides)?;
    if cli.print_config {
        print!("{}", config.to_toml());
        return Ok(());
    }
    let server = Server::start(config).await?;
    let signal = stop_signal(|| server.drain()).await?;
    tracing::info!("{signal}: shutting down");
    server.shutdown().await;
    Ok(())
}

/// Waits for Ctrl-C or SIGTERM (what `docker stop` and service managers
/// send), calling `drain` on every SIGUSR1 meanwhile.
async fn stop_signal(drain: impl Fn()) -> std::io::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    loop {
        tokio::select! {
            interrupted = tokio::signal::ctrl_c() => return interrupted.map(|()| "interrupted"),
            _ = term.recv() => return Ok("terminated"),
            _ = usr1.recv() => drain(),
        }
    }
}
