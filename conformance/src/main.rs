//! `conformance`: run the scenarios against a server, replay captures, record sessions.
//!
//! ```sh
//! conformance list
//! conformance run                                    # against the embedded reference server
//! conformance run --rtmp rtmp://127.0.0.1:1935/live --whep 'http://127.0.0.1:8889/{stream}/whep' \
//!     --json index.json --junit junit.xml --html report.html rtmp/netstatus
//! conformance run --target srs.toml --strict
//! conformance run --quirk ki-1 known-issues              # the reference server with a known bug back on
//! conformance run --image reference-server:local --image-arg=--rtmp=127.0.0.1:19350 \
//!     --rtmp rtmp://127.0.0.1:19350/live            # a container, on the host's network
//! conformance replay fixtures/captures/obs_publish_to_nginx.pcap --rtmp rtmp://127.0.0.1:1935/live
//! conformance replay client.bin server.bin --rtmp rtmp://127.0.0.1:1935/live
//! conformance record --listen 127.0.0.1:1936 --upstream rtmp://127.0.0.1:1935 --out session.pcapng
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use conformance::replay::{replay_source, CaptureSource, ReplayOptions};
use conformance::report::{self, TargetResults};
use conformance::scenario::{self, run_case, RunOptions, Scenario};
use conformance::target::container::ContainerSpec;
use conformance::target::{Target, TargetSpec};
use conformance::verdict::Verdict;
use reference_server::config::Quirks;

/// A conformance suite for RTMP/WebRTC gateways.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the scenarios (id, strictness, title).
    List {
        /// Only ids containing one of these.
        filters: Vec<String>,
        /// The catalogue as a Markdown table (id, strictness, requirement,
        /// reference), as scenarios/README.md holds it.
        #[arg(long)]
        markdown: bool,
        /// The scenarios directory.
        #[arg(long, default_value_os_t = scenario::default_dir())]
        scenarios: PathBuf,
    },
    /// Run scenarios against a target and report verdicts. Exits 1 when a
    /// required case FAILED (or, with --strict, a recommended one missed).
    Run(Box<RunArgs>),
    /// Replay the client side of a captured RTMP session against a server
    /// and compare its answers with the captured server's.
    Replay {
        /// A pcap or pcapng file, or the client's and the server's raw bytes as two files.
        #[arg(required = true, num_args = 1..=2)]
        capture: Vec<PathBuf>,
        /// The server: rtmp://host:port/app.
        #[arg(long)]
        rtmp: String,
        /// Write the comparison as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Proxy RTMP clients to a server and write their sessions to a pcapng.
    Record {
        /// Where clients connect.
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// The server: rtmp://host:port.
        #[arg(long)]
        upstream: String,
        /// The pcapng to write.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Args)]
struct RunArgs {
    /// Only ids containing one of these (e.g. rtmp/netstatus).
    filters: Vec<String>,
    /// A target file (TOML: name, rtmp, whep, whip, ws, capabilities, lacks,
    /// [exclude], [container]).
    #[arg(long, conflicts_with_all = ["rtmp", "whep", "whip", "ws", "image"])]
    target: Option<PathBuf>,
    /// Start this Docker image for the run (host networking) and test it
    /// at the URLs given by --rtmp, --whep, --whip, --ws.
    #[arg(long, requires = "rtmp")]
    image: Option<String>,
    /// An argument for the image's entrypoint (repeat for several).
    #[arg(long, requires = "image", allow_hyphen_values = true)]
    image_arg: Vec<String>,
    /// The server's RTMP URL, rtmp://host:port/app (an external target).
    #[arg(long)]
    rtmp: Option<String>,
    /// Its WHEP endpoint; {app} and {stream} are filled in.
    #[arg(long)]
    whep: Option<String>,
    /// Its WHIP endpoint; {app} and {stream} are filled in.
    #[arg(long)]
    whip: Option<String>,
    /// Its WebSocket signalling URL (docs/signalling.md).
    #[arg(long)]
    ws: Option<String>,
    /// The application key Flash actors send as `appKey` and WebSocket
    /// sessions connect with (default: the RTMP URL's application).
    #[arg(long)]
    app_key: Option<String>,
    /// Switch a known bug back on in the embedded reference server, to see
    /// it and see the suite catch it: ki-1 (video_line_for_audio_only),
    /// ki-2 (publish_takes_played_audio), ki-3 (stream_name_keeps_query).
    #[arg(long, conflicts_with_all = ["target", "rtmp", "whep", "whip", "ws", "image"])]
    quirk: Vec<String>,
    /// The name reports give an external target.
    #[arg(long, default_value = "external")]
    name: String,
    /// The scenarios directory.
    #[arg(long, default_value_os_t = scenario::default_dir())]
    scenarios: PathBuf,
    /// Write the JSON index (target → case → verdict) here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write JUnit XML here.
    #[arg(long)]
    junit: Option<PathBuf>,
    /// Write an HTML report here.
    #[arg(long)]
    html: Option<PathBuf>,
    /// Count NON-STRICT as failure.
    #[arg(long)]
    strict: bool,
    /// How long a step waits for its expectations unless it says otherwise.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    step_timeout: Duration,
    /// How long a case may take unless it says otherwise.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    case_timeout: Duration,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::List {
            filters,
            markdown,
            scenarios,
        } => match load(&scenarios, &filters) {
            Ok(list) if markdown => {
                print!("{}", report::catalogue(&list));
                ExitCode::SUCCESS
            }
            Ok(list) => {
                for s in list {
                    println!(
                        "{:<48} {:<13} {}",
                        s.id,
                        format!("{:?}", s.strictness).to_lowercase(),
                        s.title
                    );
                }
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Run(args) => run(*args).await,
        Command::Replay { capture, rtmp, json } => replay(capture, rtmp, json).await,
        Command::Record { listen, upstream, out } => record(listen, upstream, out).await,
    }
}

fn load(dir: &std::path::Path, filters: &[String]) -> Result<Vec<Scenario>, ExitCode> {
    match scenario::load_dir(dir) {
        Ok(all) => Ok(all
            .into_iter()
            .filter(|s| filters.is_empty() || filters.iter().any(|f| s.id.contains(f.as_str())))
            .collect()),
        Err(error) => {
            eprintln!("error: {error}");
            Err(ExitCode::from(2))
        }
    }
}

async fn run(args: RunArgs) -> ExitCode {
    let spec = if let Some(file) = &args.target {
        match TargetSpec::load(file) {
            Ok(spec) => Some(spec),
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::from(2);
            }
        }
    } else if args.rtmp.is_some() || args.whep.is_some() || args.whip.is_some() || args.ws.is_some() {
        Some(TargetSpec {
            name: args.name.clone(),
            rtmp: args.rtmp.clone(),
            whep: args.whep.clone(),
            whip: args.whip.clone(),
            ws: args.ws.clone(),
            app_key: args.app_key.clone(),
            container: args.image.as_ref().map(|image| ContainerSpec {
                args: args.image_arg.clone(),
                ..ContainerSpec::new(image.clone())
            }),
            ..TargetSpec::default()
        })
    } else {
        None
    };
    let mut quirks = Quirks::default();
    for name in &args.quirk {
        if let Err(error) = quirks.set(name) {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    }
    let target = match spec {
        None if quirks == Quirks::default() => Target::Embedded,
        None => Target::EmbeddedWithQuirks(quirks),
        Some(spec) => {
            if let Some(container) = &spec.container {
                println!("starting a container from {}", container.image);
            }
            match tokio::task::spawn_blocking(|| Target::from_spec(spec)).await {
                Ok(Ok(target)) => target,
                Ok(Err(error)) => {
                    eprintln!("error: {error}");
                    return ExitCode::from(2);
                }
                Err(error) => {
                    eprintln!("error: {error}");
                    return ExitCode::from(2);
                }
            }
        }
    };
    let scenarios = match load(&args.scenarios, &args.filters) {
        Ok(list) => list,
        Err(code) => return code,
    };
    let spec = target.spec();
    let offers = spec.offers();
    println!(
        "target {}: rtmp {}, whep {}, whip {}, ws {}",
        spec.name,
        spec.rtmp.as_deref().unwrap_or("-"),
        spec.whep.as_deref().unwrap_or("-"),
        spec.whip.as_deref().unwrap_or("-"),
        spec.ws.as_deref().unwrap_or("-")
    );
    println!(
        "offers: {}",
        offers.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")
    );
    // Exclusions and what cannot run, with reasons, before anything runs.
    for s in &scenarios {
        if let Some(reason) = spec.cannot_run(s) {
            println!("not run: {} ({reason})", s.id);
        }
    }
    println!("running {} cases", scenarios.len());
    let options = RunOptions {
        step_timeout: args.step_timeout,
        case_timeout: args.case_timeout,
    };
    let mut cases = Vec::with_capacity(scenarios.len());
    for (index, s) in scenarios.iter().enumerate() {
        let result = run_case(s, &target, &options).await;
        println!(
            "[{:>3}/{}] {}",
            index + 1,
            scenarios.len(),
            report::console_line(&result)
        );
        cases.push(result);
    }
    // A container target's container is removed here (it blocks until gone).
    let _ = tokio::task::spawn_blocking(move || drop(target)).await;
    for case in &cases {
        if !matches!(case.verdict, Verdict::Ok | Verdict::Unimplemented) {
            println!("\n{} {} — {}", case.verdict, case.id, case.title);
            print!("{}", report::console_details(case));
        }
    }
    let results = vec![TargetResults {
        target: spec.name.clone(),
        cases,
    }];
    println!("\n{}", report::summary(&results[0]));
    let writes = [
        (args.json.as_ref(), report::index_json(&results)),
        (args.junit.as_ref(), report::junit(&results, args.strict)),
        (args.html.as_ref(), report::html(&results)),
    ];
    for (path, text) in writes {
        if let Some(path) = path {
            if let Err(error) = std::fs::write(path, text) {
                eprintln!("error: cannot write {}: {error}", path.display());
                return ExitCode::from(2);
            }
            println!("wrote {}", path.display());
        }
    }
    if results[0].cases.iter().any(|c| c.verdict.fails(args.strict)) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

async fn replay(capture: Vec<PathBuf>, rtmp: String, json: Option<PathBuf>) -> ExitCode {
    let Some(source) = CaptureSource::from_paths(&capture) else {
        eprintln!("error: give one capture file, or the client's and the server's bytes");
        return ExitCode::from(2);
    };
    let report = match replay_source(&source, &rtmp, ReplayOptions::default()).await {
        Ok(report) => report,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    for line in &report.wire_log {
        println!("{line}");
    }
    println!("\n{report}");
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&report).unwrap_or_default();
        if let Err(error) = std::fs::write(&path, text + "\n") {
            eprintln!("error: cannot write {}: {error}", path.display());
            return ExitCode::from(2);
        }
    }
    if report.is_match() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

async fn record(listen: std::net::SocketAddr, upstream: String, out: PathBuf) -> ExitCode {
    let recorder = match conformance::record::Recorder::bind(listen, &upstream, &out).await {
        Ok(recorder) => recorder,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    println!(
        "recording RTMP sessions on {} to {} into {}; Ctrl-C stops",
        recorder.local_addr(),
        upstream,
        out.display()
    );
    match recorder.run(tokio::signal::ctrl_c()).await {
        Ok(summary) => {
            println!(
                "wrote {}: {} connection(s), {} bytes from clients, {} from the server, {} packets",
                summary.path.display(),
                summary.connections,
                summary.client_bytes,
                summary.server_bytes,
                summary.packets
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}
