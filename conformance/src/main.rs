//! `conformance`: run the scenarios against a server, replay captures, record sessions, benchmark servers.
//!
//! ```sh
//! conformance list
//! conformance run                                    # against the embedded reference server
//! conformance run --rtmp rtmp://127.0.0.1:1935/live --whep 'http://127.0.0.1:8889/{stream}/whep' \
//!     --json index.json --junit junit.xml --html report.html rtmp/netstatus
//! conformance run --target srs.toml --strict
//! conformance run --target targets/nginx-rtmp.toml --target targets/node-media-server.toml \
//!     --html matrix.html --expect targets/nginx-rtmp.expected.json --expect targets/node-media-server.expected.json
//! conformance run --scenarios my-cases/ --fixtures my-media/ --target mine.toml   # cases of your own, too
//! conformance run --quirk ki-1 known-issues              # the reference server with a known bug back on (feature `embedded`)
//! conformance run --image reference-server:local --image-arg=--rtmp=127.0.0.1:19350 \
//!     --rtmp rtmp://127.0.0.1:19350/live            # a container, on the host's network
//! conformance replay fixtures/captures/obs_publish_to_nginx.pcap --rtmp rtmp://127.0.0.1:1935/live
//! conformance replay client.bin server.bin --rtmp rtmp://127.0.0.1:1935/live
//! conformance record --listen 127.0.0.1:1936 --upstream rtmp://127.0.0.1:1935 --out session.pcapng
//! conformance bench --publishers 2 --players 5 --via whep --duration 30s --html bench.html
//! conformance bench --rtmp rtmp://127.0.0.1:1935/live --whep 'http://127.0.0.1:8080/whep/{app}/{stream}' \
//!     --pid 4242 --compare nginx.toml --compare-pid 4343 --via rtmp --json bench.json
//! conformance bench --target mine.toml --pid 4242 --ramp 100,200,500,1000 --max-p99 50 --html ramp.html
//! ```

/// jemalloc, whose background thread gives freed memory back to the system
/// about 10 s after a load (glibc's malloc keeps what its per-thread arenas
/// once held): docs/RELIABILITY.md, "Memory after a load".
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use conformance::bench::media::MediaSpec;
use conformance::bench::report as bench_report;
use conformance::bench::{BenchOptions, PlayVia};
use conformance::replay::{replay_source, CaptureSource, ReplayOptions};
use conformance::report::{self, TargetResults};
use conformance::scenario::{self, run_series, RunOptions, Scenario};
use conformance::shipped::Fixtures;
use conformance::target::container::ContainerSpec;
use conformance::target::{Target, TargetSpec};
use conformance::verdict::Verdict;
#[cfg(feature = "embedded")]
use reference_server::config::Quirks;

/// `println!` that ends the process quietly (status 141, as after SIGPIPE)
/// when stdout is a pipe that closed (`conformance list | head`), where
/// `println!` would panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(error) = writeln!(std::io::stdout(), $($arg)*) {
            closed_stdout(error);
        }
    }};
}

/// `print!` as [`say!`] does `println!`.
macro_rules! say_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(error) = write!(std::io::stdout(), $($arg)*) {
            closed_stdout(error);
        }
    }};
}

fn closed_stdout(error: std::io::Error) {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(141);
    }
    eprintln!("error: cannot write to stdout: {error}");
    std::process::exit(2);
}

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
        /// A directory of scenarios of your own (laid out like the built-in
        /// ones, `area/topic/case.toml`), added to the built-in ones or in
        /// place of those with the same id.
        #[arg(long)]
        scenarios: Option<PathBuf>,
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
    /// Measure a server under load: N publishers x M players each, latency
    /// from frame numbers drawn into the published pictures, first picture
    /// and sound, frames lost, audio gaps, and the server's CPU and memory.
    Bench(Box<BenchArgs>),
    /// Soak a server: a healthy stream for the whole time while publishers
    /// come and go, RTMP, WHEP and WebSocket players join and leave, and
    /// hostile clients attack; then check that the healthy player lost no
    /// frame, every gauge of /metrics is back to 0, and the server's memory
    /// is back near where it began. Exits 1 when one of those fails.
    Soak(Box<SoakArgs>),
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
struct SoakArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// How long the load lasts (minutes).
    #[arg(long, default_value_t = 1.0)]
    minutes: f64,
    /// Events (a publisher, a player, an attack) started per second.
    #[arg(long, default_value_t = 4.0)]
    rate: f64,
    /// The server's Prometheus metrics URL (the embedded server's own when
    /// no target is named): every gauge must be 0 after the soak.
    #[arg(long)]
    metrics: Option<String>,
    /// The server's process id, for its memory (the embedded server's is
    /// this process, load generator included).
    #[arg(long)]
    pid: Option<u32>,
    /// How far the server's memory may end above where it began (MiB).
    #[arg(long, default_value_t = 128)]
    rss_growth_mib: u64,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Args)]
struct BenchArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Publishers, each on a stream of its own.
    #[arg(long, default_value_t = 1)]
    publishers: usize,
    /// Viewers of each stream: `--probes` of them decode every picture, the
    /// others are light players that set up their sessions like real ones
    /// and then only count what arrives.
    #[arg(long, default_value_t = 4, conflicts_with = "ramp")]
    players: usize,
    /// Viewers per stream that decode every picture and measure latency,
    /// first picture and sound.
    #[arg(long, default_value_t = conformance::bench::DEFAULT_PROBES)]
    probes: usize,
    /// A ramp instead of one load: viewers per stream at each step,
    /// increasing, e.g. `100,200,500,1000`. Each step is held for
    /// `--duration`; the ramp stops after the first step where the probes
    /// lose frames or their latency p99 passes `--max-p99`. Viewers per
    /// core are printed from the best step and from the slope of CPU
    /// against viewers.
    #[arg(long, value_delimiter = ',')]
    ramp: Vec<usize>,
    /// New sessions started per second, at most (signalling at scale).
    #[arg(long, default_value_t = conformance::bench::DEFAULT_SETUP_RATE)]
    setup_rate: f64,
    /// The probe latency p99 (ms) above which a ramp stops.
    #[arg(long)]
    max_p99: Option<f64>,
    /// How players play.
    #[arg(long, value_enum, default_value = "whep")]
    via: PlayVia,
    /// How long each load (each step of a ramp) is held and measured, once
    /// its viewers are set up.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "20s")]
    duration: Duration,
    /// Published picture size, WIDTHxHEIGHT.
    #[arg(long, default_value = "640x360", value_parser = parse_size)]
    size: (usize, usize),
    /// Published frames per second.
    #[arg(long, default_value_t = 25)]
    fps: u32,
    /// Published video bitrate, kbit/s.
    #[arg(long, default_value_t = 800)]
    kbps: u32,
    /// Parameters players add to the stream name, e.g. `width=320` (the
    /// reference server then transcodes to a smaller picture).
    #[arg(long)]
    play_params: Option<String>,
    /// The server's process id, to measure its CPU and memory from /proc
    /// (the embedded server's is this process, load generator included).
    #[arg(long)]
    pid: Option<u32>,
    /// Run the same load on this second target afterwards and print ratios:
    /// a target file, or `embedded`.
    #[arg(long)]
    compare: Option<String>,
    /// The second target's process id.
    #[arg(long, requires = "compare")]
    compare_pid: Option<u32>,
    /// Measure the two targets of --compare at the same time, each with its
    /// own load, rather than one after the other: a drift in the machine's
    /// speed then cancels out of their CPU figures. Each target's figures
    /// include the other's load on the machine, and the load generator's
    /// CPU counts both loads.
    #[arg(long, requires = "compare")]
    together: bool,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write an HTML page with plots here.
    #[arg(long)]
    html: Option<PathBuf>,
}

fn parse_size(text: &str) -> Result<(usize, usize), String> {
    let (w, h) = text.split_once('x').ok_or("WIDTHxHEIGHT, e.g. 640x360")?;
    let (w, h): (usize, usize) = (
        w.parse().map_err(|_| "bad width")?,
        h.parse().map_err(|_| "bad height")?,
    );
    if w < 40 || h < 16 || w % 2 == 1 || h % 2 == 1 {
        return Err("even sides, at least 40x16".into());
    }
    Ok((w, h))
}

/// Which server: the embedded reference server unless told otherwise.
#[derive(Args, Clone)]
struct TargetArgs {
    /// A target file (TOML: name, rtmp, whep, whip, ws, capabilities, lacks,
    /// restart, attack_from, [exclude], [container]), or `embedded` for the reference
    /// server in-process. `run` takes several, for a matrix of targets × cases.
    #[arg(long, conflicts_with_all = ["rtmp", "whep", "whip", "ws", "image"])]
    target: Vec<String>,
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
    /// it and see the suite catch it (repeat for several): a name such as
    /// `ki-1` or `video_line_for_audio_only`; docs/known-issues.md has the
    /// list, and an unknown name is answered with it. Needs the feature
    /// `embedded`.
    #[arg(long, conflicts_with_all = ["target", "rtmp", "whep", "whip", "ws", "image"])]
    quirk: Vec<String>,
    /// An address of this machine that reaches the server and that the
    /// suite's other clients do not use, for attacks to come from (default:
    /// 127.0.0.2 for a server on 127.0.0.1; a server elsewhere has none, and
    /// the flood cases that need one are not run).
    #[arg(long, conflicts_with = "target")]
    attack_from: Option<std::net::IpAddr>,
    /// The name reports give an external target.
    #[arg(long, default_value = "external")]
    name: String,
}

#[derive(Args)]
struct RunArgs {
    /// Only ids containing one of these (e.g. rtmp/netstatus).
    filters: Vec<String>,
    #[command(flatten)]
    target: TargetArgs,
    /// A directory of scenarios of your own (laid out like the built-in
    /// ones, `area/topic/case.toml`), added to the built-in ones or in place
    /// of those with the same id.
    #[arg(long)]
    scenarios: Option<PathBuf>,
    /// A directory where scenarios find the media and captures they name
    /// (`flv/...`, `captures/...`) before the built-in ones (repeat for several).
    #[arg(long)]
    fixtures: Vec<PathBuf>,
    /// Write the JSON index (target → case → verdict) here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Compare the verdicts with this JSON index (as --json or --write-expect
    /// wrote it; repeat for several): the exit code is then 1 only when a
    /// verdict differs, and the differences are printed.
    #[arg(long)]
    expect: Vec<PathBuf>,
    /// Write the verdicts as an expected-results file here (the JSON index).
    #[arg(long)]
    write_expect: Option<PathBuf>,
    /// Write JUnit XML here (with several targets, one file per target:
    /// `junit-<target>.xml` for `--junit junit.xml`).
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
        } => match load(scenarios.as_deref(), &filters) {
            Ok(list) if markdown => {
                say_raw!("{}", report::catalogue(&list));
                ExitCode::SUCCESS
            }
            Ok(list) => {
                for s in list {
                    say!(
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
        Command::Bench(args) => bench(*args).await,
        Command::Soak(args) => soak(*args).await,
        Command::Replay { capture, rtmp, json } => replay(capture, rtmp, json).await,
        Command::Record { listen, upstream, out } => record(listen, upstream, out).await,
    }
}

/// The targets the options name, in order; prints why not and gives exit code 2.
async fn make_targets(args: &TargetArgs) -> Result<Vec<Target>, ExitCode> {
    let fail = |error: &dyn std::fmt::Display| {
        eprintln!("error: {error}");
        ExitCode::from(2)
    };
    let mut specs: Vec<Option<TargetSpec>> = Vec::new();
    for name in &args.target {
        if name == "embedded" {
            specs.push(None);
        } else {
            specs.push(Some(
                TargetSpec::load(std::path::Path::new(name)).map_err(|e| fail(&e))?,
            ));
        }
    }
    if args.rtmp.is_some() || args.whep.is_some() || args.whip.is_some() || args.ws.is_some() {
        specs.push(Some(TargetSpec {
            name: args.name.clone(),
            rtmp: args.rtmp.clone(),
            whep: args.whep.clone(),
            whip: args.whip.clone(),
            ws: args.ws.clone(),
            app_key: args.app_key.clone(),
            attack_from: args.attack_from,
            container: args.image.as_ref().map(|image| ContainerSpec {
                args: args.image_arg.clone(),
                ..ContainerSpec::new(image.clone())
            }),
            ..TargetSpec::default()
        }));
    }
    if specs.is_empty() {
        specs.push(None);
    }
    let mut targets = Vec::with_capacity(specs.len());
    for spec in specs {
        let target = match spec {
            None => embedded_target(&args.quirk).map_err(|e| fail(&e))?,
            Some(spec) => {
                if let Some(container) = &spec.container {
                    say!("starting a container from {}", container.image);
                }
                match tokio::task::spawn_blocking(|| Target::from_spec(spec)).await {
                    Ok(Ok(target)) => target,
                    Ok(Err(error)) => return Err(fail(&error)),
                    Err(error) => return Err(fail(&error)),
                }
            }
        };
        targets.push(target);
    }
    Ok(targets)
}

/// The reference server in-process, with these known bugs switched back on.
#[cfg(feature = "embedded")]
fn embedded_target(quirk_names: &[String]) -> Result<Target, String> {
    let mut quirks = Quirks::default();
    for name in quirk_names {
        quirks.set(name).map_err(|e| e.to_string())?;
    }
    Ok(if quirks == Quirks::default() {
        Target::Embedded
    } else {
        Target::EmbeddedWithQuirks(quirks)
    })
}

#[cfg(not(feature = "embedded"))]
fn embedded_target(_quirks: &[String]) -> Result<Target, String> {
    Err(
        "this conformance was built without the embedded reference server: name a target \
         (--target FILE, or --rtmp URL with --whep, --whip, --ws), or build with --features embedded"
            .into(),
    )
}

async fn soak(args: SoakArgs) -> ExitCode {
    let target = match make_targets(&args.target).await {
        Ok(list) if list.len() == 1 => list.into_iter().next().expect("one target"),
        Ok(_) => {
            eprintln!("error: soak one target at a time");
            return ExitCode::from(2);
        }
        Err(code) => return code,
    };
    let running = match target.start(None).await {
        Ok(running) => running,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let (metrics, pid) = match running.in_process() {
        true => (
            args.metrics.clone().or_else(|| embedded_metrics(&running)),
            args.pid.or(Some(std::process::id())),
        ),
        false => (args.metrics.clone(), args.pid),
    };
    let options = conformance::soak::SoakOptions {
        duration: Duration::from_secs_f64(args.minutes * 60.0),
        rate: args.rate,
        metrics,
        pid,
        rss_growth_mib: args.rss_growth_mib,
    };
    let fixtures = Fixtures::with_dirs(Vec::new());
    eprintln!("soaking {} for {:.1} min", running.spec.name, args.minutes);
    let report = conformance::soak::run(&running, &fixtures, &options).await;
    running.stop().await;
    print!("{}", report.text());
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report).expect("a report serializes");
        if let Err(error) = std::fs::write(path, json) {
            eprintln!("error: {}: {error}", path.display());
            return ExitCode::from(2);
        }
    }
    match report.passed() {
        true => ExitCode::SUCCESS,
        false => ExitCode::from(1),
    }
}

/// The embedded server's metrics URL.
#[cfg(feature = "embedded")]
fn embedded_metrics(running: &conformance::target::Running) -> Option<String> {
    running.server().map(|server| format!("{}/metrics", server.http_url()))
}

#[cfg(not(feature = "embedded"))]
fn embedded_metrics(_running: &conformance::target::Running) -> Option<String> {
    None
}

async fn bench(args: BenchArgs) -> ExitCode {
    let mut targets = Vec::new();
    match make_targets(&args.target).await {
        Ok(list) if list.len() == 1 => targets.extend(list.into_iter().map(|t| (t, args.pid))),
        Ok(_) => {
            eprintln!("error: bench measures one target; compare a second with --compare");
            return ExitCode::from(2);
        }
        Err(code) => return code,
    }
    if let Some(second) = &args.compare {
        let other = TargetArgs {
            target: vec![second.clone()],
            image: None,
            image_arg: Vec::new(),
            rtmp: None,
            whep: None,
            whip: None,
            ws: None,
            app_key: None,
            attack_from: None,
            quirk: Vec::new(),
            name: second.clone(),
        };
        match make_targets(&other).await {
            Ok(list) => targets.extend(list.into_iter().map(|t| (t, args.compare_pid))),
            Err(code) => return code,
        }
    }
    let options = BenchOptions {
        steps: if args.ramp.is_empty() {
            vec![args.players]
        } else {
            args.ramp.clone()
        },
        probes: args.probes,
        play_params: args.play_params.clone(),
        setup_rate: args.setup_rate,
        max_p99_ms: args.max_p99,
        ..BenchOptions::point(
            args.publishers,
            args.players,
            args.via,
            args.duration,
            MediaSpec {
                width: args.size.0,
                height: args.size.1,
                fps: args.fps,
                bitrate: args.kbps * 1000,
                seconds: 0,
            },
        )
    };
    let results = if args.together {
        // Each in a task of its own: what one run does between its awaits
        // (making its media, say) does not hold the other up.
        let lines = Arc::new(std::sync::Mutex::new(vec![String::new(); targets.len()]));
        let runs = targets.into_iter().enumerate().map(|(i, (target, pid))| {
            let (lines, options) = (lines.clone(), options.clone());
            tokio::spawn(async move {
                measure(target, pid, &options, 10, move |line| {
                    let mut lines = lines.lock().unwrap_or_else(|e| e.into_inner());
                    lines[i] = line;
                    eprint!("\r{}", lines.join(" | "));
                })
                .await
            })
        });
        (futures_util::future::join_all(runs).await.into_iter())
            .map(|joined| joined.unwrap_or_else(|e| Err(format!("the run failed: {e}"))))
            .collect()
    } else {
        let mut results = Vec::new();
        for (target, pid) in targets {
            let result = measure(target, pid, &options, 30, |line| eprint!("\r{line}")).await;
            let failed = result.is_err();
            results.push(result);
            if failed {
                break;
            }
        }
        results
    };
    eprintln!();
    let results = match results.into_iter().collect::<Result<Vec<_>, String>>() {
        Ok(results) => results,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    say_raw!("{}", bench_report::runs_table(&results));
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&results).unwrap_or_default();
        if let Err(error) = std::fs::write(path, json) {
            eprintln!("error: {}: {error}", path.display());
            return ExitCode::from(2);
        }
    }
    if let Some(path) = &args.html {
        if let Err(error) = std::fs::write(path, bench_report::runs_html(&results)) {
            eprintln!("error: {}: {error}", path.display());
            return ExitCode::from(2);
        }
    }
    let failed = results.iter().any(|r| {
        r.steps.first().is_none_or(|s| s.latency_ms.is_none())
            || r.steps.last().is_some_and(|s| !s.publisher_errors.is_empty())
    });
    if failed {
        eprintln!("error: a target's probes decoded no marked picture in its first step, or a publisher failed");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

/// Starts `target`, runs the bench's load on it, and stops it; `progress`
/// gets a line to show as it goes, with a bar `bar` characters wide.
async fn measure(
    target: Target,
    pid: Option<u32>,
    options: &BenchOptions,
    bar: usize,
    mut progress: impl FnMut(String),
) -> Result<conformance::bench::BenchRun, String> {
    let running = target.start_for_load().await.map_err(|e| e.to_string())?;
    // The embedded server runs in this process.
    let pid = pid.or_else(|| running.in_process().then(std::process::id));
    let name = running.spec.name.clone();
    let options = BenchOptions { pid, ..options.clone() };
    let result = conformance::bench::run(&running, &options, |p| {
        let done = ((p.elapsed.as_secs_f64() / p.total.as_secs_f64().max(1e-3) * bar as f64) as usize).min(bar);
        let process = match (p.cpu_percent, p.rss_mib) {
            (Some(cpu), Some(rss)) => format!(" · CPU {cpu:>4.0} % · RSS {rss:.0} MiB"),
            _ => String::new(),
        };
        let step = if p.step.1 > 1 {
            format!(" step {}/{}", p.step.0, p.step.1)
        } else {
            String::new()
        };
        let phase = if p.holding { "holding" } else { "setting up" };
        progress(format!(
            "{name}{step} [{}{}] {:>3.0}/{:.0} s {phase} · {} players{process}   ",
            "#".repeat(done),
            ".".repeat(bar - done),
            p.elapsed.as_secs_f64(),
            p.total.as_secs_f64(),
            p.players
        ));
    })
    .await;
    running.stop().await;
    let _ = tokio::task::spawn_blocking(move || drop(target)).await;
    result.map_err(|e| e.to_string())
}

fn load(extra: Option<&std::path::Path>, filters: &[String]) -> Result<Vec<Scenario>, ExitCode> {
    match scenario::with_extra(extra) {
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
    let expected = match report::read_expected(&args.expect) {
        Ok(index) => index,
        Err(error) => {
            eprintln!("error: expected results: {error}");
            return ExitCode::from(2);
        }
    };
    let scenarios = match load(args.scenarios.as_deref(), &args.filters) {
        Ok(list) => list,
        Err(code) => return code,
    };
    let targets = match make_targets(&args.target).await {
        Ok(targets) => targets,
        Err(code) => return code,
    };
    let options = RunOptions {
        step_timeout: args.step_timeout,
        case_timeout: args.case_timeout,
        fixtures: Fixtures::with_dirs(args.fixtures.clone()),
    };
    // Targets run at once (each its cases one after another, so that a
    // crash is blamed on the case that caused it); with several, each
    // line names its target.
    let several = targets.len() > 1;
    let results = futures_util::future::join_all(
        targets
            .into_iter()
            .map(|target| run_target(&scenarios, target, &options, several)),
    )
    .await;
    for target in &results {
        for case in &target.cases {
            if !matches!(case.verdict, Verdict::Ok | Verdict::Unimplemented) {
                say!("\n{} {} {} — {}", target.target, case.verdict, case.id, case.title);
                say_raw!("{}", report::console_details(case));
            }
        }
    }
    say!();
    for target in &results {
        say!("{}", report::summary(target));
    }
    let mut writes = vec![
        (args.json.clone(), report::index_json(&results)),
        (args.write_expect.clone(), report::index_json(&results)),
        (args.html.clone(), report::html(&results)),
    ];
    if let Some(path) = &args.junit {
        if results.len() == 1 {
            writes.push((Some(path.clone()), report::junit(&results, args.strict)));
        } else {
            for target in &results {
                let file = junit_path(path, &target.target);
                writes.push((Some(file), report::junit(std::slice::from_ref(target), args.strict)));
            }
        }
    }
    for (path, text) in writes {
        if let Some(path) = path {
            if let Err(error) = std::fs::write(&path, text) {
                eprintln!("error: cannot write {}: {error}", path.display());
                return ExitCode::from(2);
            }
            say!("wrote {}", path.display());
        }
    }
    if !args.expect.is_empty() {
        let differences = report::compare(&expected, &results);
        if differences.is_empty() {
            say!("every verdict is the expected one");
            return ExitCode::SUCCESS;
        }
        say!("\n{} verdict(s) differ from the expected results:", differences.len());
        for difference in &differences {
            say!("  {difference}");
        }
        return ExitCode::from(1);
    }
    let failed = results
        .iter()
        .any(|t| t.cases.iter().any(|c| c.verdict.fails(args.strict)));
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Runs the cases against one target, printing a line per case (with the
/// target's name first when `named`), and releases the target (a container
/// is removed).
async fn run_target(scenarios: &[Scenario], target: Target, options: &RunOptions, named: bool) -> TargetResults {
    let spec = target.spec();
    let name = if named {
        format!("{} ", spec.name)
    } else {
        String::new()
    };
    say!(
        "target {}: rtmp {}, whep {}, whip {}, ws {}",
        spec.name,
        spec.rtmp.as_deref().unwrap_or("-"),
        spec.whep.as_deref().unwrap_or("-"),
        spec.whip.as_deref().unwrap_or("-"),
        spec.ws.as_deref().unwrap_or("-")
    );
    let offers: Vec<&str> = spec.offers().iter().map(|c| c.as_str()).collect();
    say!("offers: {}", offers.join(", "));
    // Exclusions and what cannot run, with reasons, before anything runs.
    for s in scenarios {
        if let Some(reason) = spec.cannot_run(s) {
            say!("{name}not run: {} ({reason})", s.id);
        }
    }
    say!("running {} cases", scenarios.len());
    let total = scenarios.len();
    let mut count = 0;
    let cases = run_series(scenarios, &target, options, |result| {
        count += 1;
        say!("{name}[{count:>3}/{total}] {}", report::console_line(result));
    })
    .await;
    // A container target's container is removed here (it blocks until gone).
    let _ = tokio::task::spawn_blocking(move || drop(target)).await;
    TargetResults {
        target: spec.name,
        cases,
    }
}

/// `junit.xml` for target `srs` as `junit-srs.xml`, beside it.
fn junit_path(path: &std::path::Path, target: &str) -> PathBuf {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("junit");
    let safe: String = target
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    path.with_file_name(format!("{stem}-{safe}.xml"))
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
        say!("{line}");
    }
    say!("\n{report}");
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
    say!(
        "recording RTMP sessions on {} to {} into {}; Ctrl-C stops",
        recorder.local_addr(),
        upstream,
        out.display()
    );
    match recorder.run(tokio::signal::ctrl_c()).await {
        Ok(summary) => {
            say!(
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
