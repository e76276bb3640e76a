//! `conformance bench`: a whole server under load, over the network.
//!
//! N publishers send the suite's own media over RTMP in real time: a moving
//! pattern whose frames carry their number drawn into the picture
//! ([`marks`]), and a tone. Each stream is played over WHEP, the WebSocket
//! channel or RTMP by a few **probes** that decode every picture: reading
//! the number off a decoded picture names the frame, so the time from its
//! publishing to its display is known for every frame, whatever the server
//! did with it (passed it through, transcoded it, scaled it), on servers we
//! do not control. The other viewers are **light players** ([`players`]):
//! set up like real ones, then only counting what arrives, so one machine
//! can load a server with thousands of viewers.
//!
//! A run is one or more **steps** (a ramp): each brings every stream to its
//! number of viewers, at a bounded rate of new sessions, then holds and
//! measures: the probes' latency distribution (p50, p90, p99, max), first
//! picture and sound, frames lost; the light players' packets, bytes and
//! losses; the CPU and memory of the server process when its pid is known
//! ([`procstat`]), and of the load generator itself. A ramp stops after the
//! first step where probes lose frames or their p99 passes a limit.
//! [`report`] writes it as a table, JSON, and an HTML page with plots.

pub mod marks;
pub mod media;
pub mod players;
pub mod procstat;
pub mod report;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

use self::media::MediaSpec;
use self::players::{lock, Endpoints, Light, PlayJob, ProbeLog};
use crate::target::Running;
use crate::webrtc::count::RtpTotals;

/// How players play.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum PlayVia {
    /// WebRTC, signalled with WHEP.
    Whep,
    /// WebRTC, signalled over the WebSocket channel.
    Ws,
    /// RTMP.
    Rtmp,
}

/// The load.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Publishers, each on a stream of its own.
    pub publishers: usize,
    /// Viewers of each stream at each step, increasing; one entry for a
    /// single measurement.
    pub steps: Vec<usize>,
    /// Of the viewers of each stream, how many decode (probes); the others
    /// are light players.
    pub probes: usize,
    /// How the viewers play.
    pub via: PlayVia,
    /// How long each step is held and measured once its viewers are set up.
    pub hold: Duration,
    /// The published media.
    pub media: MediaSpec,
    /// The server process to watch (CPU, RSS), when known.
    pub pid: Option<u32>,
    /// Parameters players add to the stream name (`width=320`: on the
    /// reference server, a transcoded smaller picture).
    pub play_params: Option<String>,
    /// New sessions started per second, at most.
    pub setup_rate: f64,
    /// A ramp stops after a step whose probe latency p99 is above this, ms.
    pub max_p99_ms: Option<f64>,
}

impl BenchOptions {
    /// `players` viewers per stream, all of them probes up to `probes`,
    /// measured for `hold`: one step.
    pub fn point(publishers: usize, players: usize, via: PlayVia, hold: Duration, media: MediaSpec) -> BenchOptions {
        BenchOptions {
            publishers,
            steps: vec![players],
            probes: DEFAULT_PROBES,
            via,
            hold,
            media,
            pid: None,
            play_params: None,
            setup_rate: DEFAULT_SETUP_RATE,
            max_p99_ms: None,
        }
    }
}

/// Probes per stream unless told otherwise.
pub const DEFAULT_PROBES: usize = 2;
/// New sessions per second unless told otherwise.
pub const DEFAULT_SETUP_RATE: f64 = 50.0;

/// Percentiles of a set of durations, in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// How many values.
    pub count: usize,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl Summary {
    /// The summary of `values` (ms); `None` when empty.
    pub fn of(values: &[f64]) -> Option<Summary> {
        if values.is_empty() {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        // Nearest rank: the smallest value with at least p% of values at or below it.
        let rank = |p: f64| sorted[((p / 100.0 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
        Some(Summary {
            count: sorted.len(),
            p50: rank(50.0),
            p90: rank(90.0),
            p99: rank(99.0),
            max: sorted[sorted.len() - 1],
            mean: sorted.iter().sum::<f64>() / sorted.len() as f64,
        })
    }
}

/// CPU and memory of a process over a step's hold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessUse {
    /// The process watched.
    pub pid: u32,
    /// CPU seconds it used during the hold.
    pub cpu_seconds: f64,
    /// Those seconds per second of the hold, in percent of one core.
    pub cpu_percent: f64,
    /// The largest resident set size seen in the hold, MiB.
    pub rss_max_mib: f64,
    /// Readings every half second: (seconds into the hold, CPU % since the
    /// reading before, RSS MiB).
    pub samples: Vec<(f64, f64, f64)>,
}

/// What the light players of a step counted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LightUse {
    /// Light players counting during the hold, over all streams.
    pub players: usize,
    /// What they received during the hold: RTP packets (WebRTC) or media
    /// messages (RTMP), their bytes, and RTP packets lost (sequence gaps).
    pub counted: RtpTotals,
    /// Packets (or messages) per second per light player.
    pub packets_per_second_each: f64,
    /// Kbit/s per light player.
    pub kbps_each: f64,
    /// Sessions this step set up, and how long each took from the request
    /// to the first media, ms.
    pub setup_ms: Option<Summary>,
    /// Sessions this step failed to set up (each within its timeouts).
    pub setup_failures: usize,
    /// The first few reasons.
    pub setup_errors: Vec<String>,
}

/// What one step measured (a single measurement is a run of one step).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchResult {
    /// The target's name.
    pub target: String,
    /// Publishers.
    pub publishers: usize,
    /// Viewers per stream, probes included.
    pub players_per_stream: usize,
    /// Of those, probes.
    pub probes_per_stream: usize,
    /// How they played.
    pub via: PlayVia,
    /// Seconds the step was held and measured.
    pub seconds: f64,
    /// The published picture: width, height, frames per second.
    pub picture: (usize, usize, u32),
    /// Publish-to-display latency of every frame the probes decoded during
    /// the hold, ms (frames published after the probe asked to play).
    pub latency_ms: Option<Summary>,
    /// The latency histogram: (bucket start ms, frames), 10 ms buckets.
    pub latency_histogram: Vec<(u32, u64)>,
    /// From each probe's request to its first decoded picture, ms (probes
    /// that started in this step).
    pub first_picture_ms: Option<Summary>,
    /// From each probe's request to its first sound, ms (the same probes).
    pub first_sound_ms: Option<Summary>,
    /// Frames the probes should have shown during the hold (from each one's
    /// first picture until a second before the end), summed over probes.
    pub frames_expected: u64,
    /// Of those, frames decoded.
    pub frames_decoded: u64,
    /// `frames_expected - frames_decoded`.
    pub frames_lost: u64,
    /// Frames the probes' decoders refused during the hold (damaged, or
    /// missing references).
    pub decode_errors: u64,
    /// The longest time between two audio frames at any probe since it
    /// started, ms.
    pub longest_audio_gap_ms: f64,
    /// The light players (absent when every viewer is a probe).
    pub light: Option<LightUse>,
    /// Probes that could not start or ended early, with why.
    pub player_errors: Vec<String>,
    /// Publishers that could not publish, with why.
    pub publisher_errors: Vec<String>,
    /// The server process's CPU and memory, when its pid was given.
    pub process: Option<ProcessUse>,
    /// The server's RSS growth since before the first viewer, per viewer, KiB.
    pub rss_per_viewer_kib: Option<f64>,
    /// The load generator's own CPU during the hold (when the server is
    /// another process), so readers can subtract it.
    pub generator: Option<ProcessUse>,
}

/// A whole run: its steps, and why it stopped early if it did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchRun {
    /// The target's name.
    pub target: String,
    /// When the run began, in seconds since the Unix epoch (runs measured
    /// together began together).
    pub started_unix: f64,
    /// The steps measured, in order.
    pub steps: Vec<BenchResult>,
    /// Why the ramp stopped before its last step.
    pub stopped_early: Option<String>,
}

/// Why a bench could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The target lacks what the load needs.
    #[error("{0}")]
    Target(String),
    /// The options ask for nothing, or for something impossible.
    #[error("{0}")]
    Options(String),
    /// The media could not be made.
    #[error("making the bench media: {0}")]
    Media(String),
}

/// How far a run is, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// The step (from 1) and how many there are.
    pub step: (usize, usize),
    /// Setting viewers up, or holding.
    pub holding: bool,
    /// Time since the hold started.
    pub elapsed: Duration,
    /// How long it lasts.
    pub total: Duration,
    /// Viewers set up or setting up, over all streams.
    pub players: usize,
    /// CPU % of the server process over the last half second, if watched.
    pub cpu_percent: Option<f64>,
    /// Its RSS in MiB, if watched.
    pub rss_mib: Option<f64>,
}

/// Publishers get this long before players start.
const PUBLISH_LEAD: Duration = Duration::from_secs(2);
/// How long the uncounted first probe may take to show a picture.
const WARM_UP_LIMIT: Duration = Duration::from_secs(5);
/// Frames sent in the last second of a hold are not counted as lost.
const IN_FLIGHT: Duration = Duration::from_secs(1);
/// Setup errors kept per step.
const MAX_SETUP_ERRORS: usize = 5;

/// Reads a process every half second over a hold.
struct Watch {
    pid: u32,
    readings: Vec<procstat::Reading>,
    samples: Vec<(f64, f64, f64)>,
}

impl Watch {
    fn new(pid: u32) -> Watch {
        Watch {
            pid,
            readings: procstat::read(pid).into_iter().collect(),
            samples: Vec::new(),
        }
    }

    /// Reads now; the CPU % since the last reading and the RSS, MiB.
    fn read(&mut self, since: Instant) -> Option<(f64, f64)> {
        let reading = procstat::read(self.pid)?;
        let last = *self.readings.last()?;
        self.readings.push(reading);
        let span = reading.at.duration_since(last.at).as_secs_f64().max(1e-3);
        let percent = (reading.cpu_seconds - last.cpu_seconds) / span * 100.0;
        let mib = reading.rss_bytes as f64 / (1024.0 * 1024.0);
        self.samples
            .push((reading.at.saturating_duration_since(since).as_secs_f64(), percent, mib));
        Some((percent, mib))
    }

    fn finish(mut self, since: Instant) -> Option<ProcessUse> {
        self.read(since);
        let (first, last) = (self.readings.first()?, self.readings.last()?);
        let span = last.at.duration_since(first.at).as_secs_f64().max(1e-3);
        Some(ProcessUse {
            pid: self.pid,
            cpu_seconds: last.cpu_seconds - first.cpu_seconds,
            cpu_percent: (last.cpu_seconds - first.cpu_seconds) / span * 100.0,
            rss_max_mib: self.readings.iter().map(|r| r.rss_bytes).max().unwrap_or(0) as f64 / (1024.0 * 1024.0),
            samples: self.samples,
        })
    }
}

/// Runs the load against `running` and measures each step. `progress` is
/// called about twice a second.
pub async fn run(
    running: &Running,
    options: &BenchOptions,
    mut progress: impl FnMut(Progress),
) -> Result<BenchRun, BenchError> {
    let addr = running
        .rtmp_addr
        .ok_or_else(|| BenchError::Target("the target has no RTMP URL to publish to".into()))?;
    match options.via {
        PlayVia::Whep if running.spec.whep.is_none() => {
            return Err(BenchError::Target("the target has no WHEP URL".into()))
        }
        PlayVia::Ws if running.spec.ws.is_none() => {
            return Err(BenchError::Target("the target has no WebSocket URL".into()))
        }
        _ => {}
    }
    if options.steps.is_empty() || options.steps.windows(2).any(|w| w[0] > w[1]) || options.steps[0] == 0 {
        return Err(BenchError::Options(
            "the steps must be one or more viewer counts, increasing, above 0".into(),
        ));
    }
    if options.setup_rate.is_nan() || options.setup_rate <= 0.0 {
        return Err(BenchError::Options("the setup rate must be above 0".into()));
    }
    // Enough media for every step's setup (with its timeouts) and hold.
    let setup_seconds: f64 = options
        .steps
        .iter()
        .scan(0, |had, &n| {
            let added = (n - *had) * options.publishers;
            *had = n;
            Some(added as f64 / options.setup_rate + 3.0 * players::SETUP_TIMEOUT.as_secs_f64())
        })
        .sum();
    let media_seconds = (PUBLISH_LEAD.as_secs_f64()
        + WARM_UP_LIMIT.as_secs_f64()
        + setup_seconds
        + options.steps.len() as f64 * options.hold.as_secs_f64())
    .ceil() as u32
        + 2;
    let spec = MediaSpec {
        seconds: media_seconds,
        ..options.media
    };
    // Encoding takes seconds: off the runtime, whose other tasks (another
    // target's run, an embedded server) go on meanwhile.
    let tags = tokio::task::spawn_blocking(move || media::marked_tags(spec).map_err(|e| e.to_string()))
        .await
        .map_err(|e| BenchError::Media(e.to_string()))?
        .map_err(BenchError::Media)?;
    let tags = Arc::new(tags);
    let tc_url = format!("{}/{}", running.rtmp_base.clone().unwrap_or_default(), running.app);
    let endpoints = Arc::new(Endpoints {
        rtmp_addr: addr,
        tc_url,
        whep: running.spec.whep.clone(),
        ws: running.spec.ws.clone(),
        app_key: running.app_key(),
    });
    let run_id = format!("{:06x}", rand::random::<u32>() & 0xFF_FFFF);
    let names: Vec<String> = (0..options.publishers).map(|i| format!("bench{i}-{run_id}")).collect();
    let (stop_tx, stop) = watch::channel(false);

    let start = Instant::now();
    let started_unix =
        (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)).map_or(0.0, |since| since.as_secs_f64());
    let sent: Vec<Arc<Mutex<Vec<Instant>>>> = names.iter().map(|_| Arc::default()).collect();
    let publishers: Vec<_> = names
        .iter()
        .zip(&sent)
        .map(|(name, sent)| {
            tokio::spawn(players::publish(
                endpoints.clone(),
                name.clone(),
                tags.clone(),
                (start, sent.clone()),
                stop.clone(),
            ))
        })
        .collect();
    tokio::time::sleep_until((start + PUBLISH_LEAD).into()).await;
    let play_name = |stream: usize| match &options.play_params {
        Some(params) => format!("{}?{params}", names[stream]),
        None => names[stream].clone(),
    };
    warm_up(&endpoints, play_name(0), options.via).await;

    let own_pid = std::process::id();
    let baseline_rss = options.pid.and_then(procstat::read).map(|r| r.rss_bytes);
    let mut probes: Vec<(Arc<Mutex<ProbeLog>>, tokio::task::JoinHandle<()>)> = Vec::new();
    let mut lights: Vec<Light> = Vec::new();
    let mut viewers = vec![0usize; names.len()];
    let mut steps = Vec::new();
    let mut stopped_early = None;
    let mut hold_start = start;
    let (mut cpu_now, mut rss_now) = (None, None);
    let mut sampler = Watch::new(options.pid.unwrap_or(own_pid));
    for (index, &target_viewers) in options.steps.iter().enumerate() {
        let step = (index + 1, options.steps.len());
        // Set up: probes first, then light players, round-robin over the
        // streams, one session every 1/rate seconds.
        let interval = Duration::from_secs_f64(1.0 / options.setup_rate);
        let mut setups = Vec::new();
        let step_start = Instant::now();
        let mut next_at = tokio::time::Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        while let Some(stream) = (0..names.len())
            .filter(|&s| viewers[s] < target_viewers)
            .min_by_key(|&s| viewers[s])
        {
            let id = format!("p{stream}-{}", viewers[stream]);
            let job = PlayJob {
                stream,
                name: play_name(stream),
                id,
            };
            if viewers[stream] < options.probes {
                let log = Arc::new(Mutex::new(ProbeLog {
                    stream,
                    ..ProbeLog::default()
                }));
                let task = tokio::spawn(players::probe(
                    endpoints.clone(),
                    job,
                    options.via,
                    log.clone(),
                    stop.clone(),
                ));
                probes.push((log, task));
            } else {
                setups.push(tokio::spawn(players::light(endpoints.clone(), job, options.via)));
            }
            viewers[stream] += 1;
            next_at += interval;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(next_at) => break,
                    _ = tick.tick() => {
                        if let Some((cpu, rss)) = sampler.read(step_start) {
                            (cpu_now, rss_now) = (Some(cpu), Some(rss));
                        }
                        progress(Progress {
                            step,
                            holding: false,
                            elapsed: Duration::ZERO,
                            total: options.hold,
                            players: viewers.iter().sum(),
                            cpu_percent: cpu_now,
                            rss_mib: rss_now,
                        });
                    }
                }
            }
        }
        let (mut setup_ms, mut setup_errors, mut setup_failures) = (Vec::new(), Vec::new(), 0);
        for setup in setups {
            match setup.await {
                Ok(Ok((light, took))) => {
                    lights.push(light);
                    setup_ms.push(took.as_secs_f64() * 1000.0);
                }
                Ok(Err(error)) => {
                    setup_failures += 1;
                    if setup_errors.len() < MAX_SETUP_ERRORS {
                        setup_errors.push(error);
                    }
                }
                Err(error) => {
                    setup_failures += 1;
                    if setup_errors.len() < MAX_SETUP_ERRORS {
                        setup_errors.push(format!("setup task: {error}"));
                    }
                }
            }
        }

        // Hold and measure.
        let previous_hold = hold_start;
        hold_start = Instant::now();
        let hold_end = hold_start + options.hold;
        let counted_before = sum(&lights);
        let decode_errors_before: u64 = probes.iter().map(|(log, _)| lock(log).decode_errors).sum();
        let mut server = options.pid.map(Watch::new);
        let mut generator = (options.pid != Some(own_pid)).then(|| Watch::new(own_pid));
        while Instant::now() < hold_end {
            tick.tick().await;
            if let Some(server) = &mut server {
                if let Some((cpu, rss)) = server.read(hold_start) {
                    (cpu_now, rss_now) = (Some(cpu), Some(rss));
                }
            }
            if let Some(generator) = &mut generator {
                generator.read(hold_start);
            }
            progress(Progress {
                step,
                holding: true,
                elapsed: Instant::now().saturating_duration_since(hold_start).min(options.hold),
                total: options.hold,
                players: viewers.iter().sum(),
                cpu_percent: cpu_now,
                rss_mib: rss_now,
            });
        }
        let counted = sum(&lights).since(&counted_before);
        let process = server.and_then(|w| w.finish(hold_start));
        let generator = generator.and_then(|w| w.finish(hold_start));
        let seconds = options.hold.as_secs_f64();
        let light = (!lights.is_empty() || setup_failures > 0).then(|| LightUse {
            players: lights.len(),
            counted,
            packets_per_second_each: counted.packets as f64 / seconds / lights.len().max(1) as f64,
            kbps_each: counted.bytes as f64 * 8.0 / 1000.0 / seconds / lights.len().max(1) as f64,
            setup_ms: Summary::of(&setup_ms),
            setup_failures,
            setup_errors,
        });
        let total_viewers: usize = viewers.iter().sum();
        let rss_per_viewer_kib = match (&process, baseline_rss) {
            (Some(p), Some(base)) if total_viewers > 0 => {
                Some((p.rss_max_mib * 1024.0 - base as f64 / 1024.0) / total_viewers as f64)
            }
            _ => None,
        };
        let window = Window {
            from: hold_start,
            to: hold_end,
            new_since: previous_hold,
            first_step: index == 0,
        };
        let logs: Vec<_> = probes.iter().map(|(log, _)| log.clone()).collect();
        let mut result = {
            let guards: Vec<_> = logs.iter().map(|log| lock(log)).collect();
            let outcomes: Vec<&ProbeLog> = guards.iter().map(|g| &**g).collect();
            let sent: Vec<Vec<Instant>> = sent.iter().map(|s| lock(s).clone()).collect();
            analyse(&outcomes, &sent, &window)
        };
        result.decode_errors = result.decode_errors.saturating_sub(decode_errors_before);
        let measured = BenchResult {
            target: running.spec.name.clone(),
            publishers: options.publishers,
            players_per_stream: target_viewers,
            probes_per_stream: target_viewers.min(options.probes),
            via: options.via,
            seconds,
            picture: (options.media.width, options.media.height, options.media.fps),
            light,
            process,
            rss_per_viewer_kib,
            generator,
            ..result
        };
        let enough = (index + 1 < options.steps.len())
            .then(|| too_much(&measured, options.max_p99_ms))
            .flatten();
        steps.push(measured);
        if let Some(reason) = enough {
            stopped_early = Some(format!("after {target_viewers} viewers per stream: {reason}"));
            break;
        }
    }

    stop_tx.send_replace(true);
    let mut player_errors = Vec::new();
    for (log, task) in probes {
        let _ = task.await;
        if let Some(error) = lock(&log).error.take() {
            player_errors.push(error);
        }
    }
    futures_util::future::join_all(lights.into_iter().map(Light::stop)).await;
    let mut publisher_errors = Vec::new();
    for (name, publisher) in names.iter().zip(publishers) {
        match publisher.await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => publisher_errors.push(format!("{name}: {error}")),
            Err(error) => publisher_errors.push(format!("{name}: {error}")),
        }
    }
    if let Some(last) = steps.last_mut() {
        last.player_errors = player_errors;
        last.publisher_errors = publisher_errors;
    }
    Ok(BenchRun {
        target: running.spec.name.clone(),
        started_unix,
        steps,
        stopped_early,
    })
}

/// Plays one probe, uncounted, until its first picture (or
/// [`WARM_UP_LIMIT`]). The generator's first session of a run is slower
/// than the next ones (its first decoder, DTLS handshake and HTTP
/// connection): counted, it would add tens of milliseconds to the first
/// picture of whichever target of a comparison is measured first.
async fn warm_up(endpoints: &Arc<Endpoints>, name: String, via: PlayVia) {
    let (stop_tx, stop) = watch::channel(false);
    let log = Arc::new(Mutex::new(ProbeLog::default()));
    let job = PlayJob {
        stream: 0,
        name,
        id: "warm-up".into(),
    };
    let task = tokio::spawn(players::probe(endpoints.clone(), job, via, log.clone(), stop));
    let until = tokio::time::Instant::now() + WARM_UP_LIMIT;
    while tokio::time::Instant::now() < until && !task.is_finished() && players::lock(&log).marks.is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop_tx.send(true);
    let _ = task.await;
}

/// Why a ramp should not go on after `step`, if it should not.
fn too_much(step: &BenchResult, max_p99_ms: Option<f64>) -> Option<String> {
    if step.frames_lost > 0 {
        return Some(format!("the probes lost {} frames", step.frames_lost));
    }
    let p99 = step.latency_ms.as_ref().map(|l| l.p99);
    match (p99, max_p99_ms) {
        (None, _) => Some("the probes decoded no marked picture".into()),
        (Some(p99), Some(max)) if p99 > max => Some(format!("probe latency p99 {p99:.1} ms is above {max} ms")),
        _ => None,
    }
}

fn sum(lights: &[Light]) -> RtpTotals {
    let mut totals = RtpTotals::default();
    for light in lights {
        totals.add(&light.totals());
    }
    totals
}

/// The time a step measures.
struct Window {
    /// The hold.
    from: Instant,
    to: Instant,
    /// Probes that asked to play after this started in this step.
    new_since: Instant,
    /// The first step: every probe started in it.
    first_step: bool,
}

/// What the probes' logs say about `window`; the step's other fields are
/// left empty for the caller.
/// `sent` holds when each stream's frames went out, by frame number.
fn analyse(outcomes: &[&ProbeLog], sent: &[Vec<Instant>], window: &Window) -> BenchResult {
    let mut latencies = Vec::new();
    let mut first_pictures = Vec::new();
    let mut first_sounds = Vec::new();
    let (mut expected, mut decoded) = (0u64, 0u64);
    let mut longest_gap = Duration::ZERO;
    let mut decode_errors = 0;
    let counted_until = window.to - IN_FLIGHT;
    for outcome in outcomes {
        let Some(requested) = outcome.requested else { continue };
        let sent = sent.get(outcome.stream).map(Vec::as_slice).unwrap_or_default();
        // The first arrival of each frame; marks count frames modulo 65536.
        let mut seen: HashMap<usize, Instant> = HashMap::new();
        for (mark, at) in &outcome.marks {
            seen.entry(usize::from(*mark)).or_insert(*at);
        }
        let new = window.first_step || requested >= window.new_since;
        if let Some(first) = outcome.marks.first() {
            if new {
                first_pictures.push(first.1.duration_since(requested).as_secs_f64() * 1000.0);
            }
            let from = usize::from(first.0);
            for (frame, at) in sent.iter().enumerate().skip(from) {
                if *at >= window.from && *at <= counted_until {
                    expected += 1;
                    decoded += u64::from(seen.contains_key(&frame));
                }
            }
        }
        // Frames published before the probe asked (a cached GOP sent at
        // once on joining) show in the first picture time, not in latency.
        for (frame, at) in &seen {
            if let Some(sent_at) = sent.get(*frame) {
                if *at >= *sent_at && *sent_at >= requested && *at >= window.from && *at < window.to {
                    latencies.push(at.duration_since(*sent_at).as_secs_f64() * 1000.0);
                }
            }
        }
        if let (Some(sound), true) = (outcome.first_sound, new) {
            first_sounds.push(sound.saturating_duration_since(requested).as_secs_f64() * 1000.0);
        }
        longest_gap = longest_gap.max(outcome.longest_audio_gap);
        decode_errors += outcome.decode_errors;
    }
    BenchResult {
        target: String::new(),
        publishers: 0,
        players_per_stream: 0,
        probes_per_stream: 0,
        via: PlayVia::Whep,
        seconds: 0.0,
        picture: (0, 0, 0),
        latency_histogram: histogram(&latencies, 10.0),
        latency_ms: Summary::of(&latencies),
        first_picture_ms: Summary::of(&first_pictures),
        first_sound_ms: Summary::of(&first_sounds),
        frames_expected: expected,
        frames_decoded: decoded,
        frames_lost: expected.saturating_sub(decoded),
        decode_errors,
        longest_audio_gap_ms: longest_gap.as_secs_f64() * 1000.0,
        light: None,
        player_errors: Vec::new(),
        publisher_errors: Vec::new(),
        process: None,
        rss_per_viewer_kib: None,
        generator: None,
    }
}

/// Counts of `values` in buckets of `width`, from 0 to the largest.
fn histogram(values: &[f64], width: f64) -> Vec<(u32, u64)> {
    let mut buckets: Vec<u64> = Vec::new();
    for value in values {
        let index = (value / width).max(0.0) as usize;
        if buckets.len() <= index {
            buckets.resize(index + 1, 0);
        }
        buckets[index] += 1;
    }
    buckets
        .into_iter()
        .enumerate()
        .map(|(i, n)| ((i as f64 * width) as u32, n))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        let summary = Summary::of(&values).unwrap();
        assert_eq!(
            (summary.p50, summary.p90, summary.p99, summary.max),
            (50.0, 90.0, 99.0, 100.0)
        );
        assert_eq!(summary.mean, 50.5);
        assert_eq!(Summary::of(&[7.0]).unwrap().p99, 7.0);
        assert!(Summary::of(&[]).is_none());
        assert_eq!(histogram(&[1.0, 9.0, 25.0], 10.0), [(0, 2), (10, 0), (20, 1)]);
    }

    #[test]
    fn a_ramp_stops_on_lost_frames_no_pictures_or_a_high_p99() {
        let t0 = Instant::now();
        let window = Window {
            from: t0,
            to: t0 + Duration::from_secs(2),
            new_since: t0,
            first_step: true,
        };
        let mut step = analyse(&[], &[], &window);
        assert!(too_much(&step, None).is_some_and(|r| r.contains("no marked picture")));
        step.latency_ms = Summary::of(&[5.0, 80.0]);
        assert_eq!(too_much(&step, None), None);
        assert_eq!(too_much(&step, Some(100.0)), None);
        let reason = too_much(&step, Some(50.0)).unwrap();
        assert_eq!(reason, "probe latency p99 80.0 ms is above 50 ms");
        step.frames_lost = 3;
        assert_eq!(
            too_much(&step, Some(100.0)).as_deref(),
            Some("the probes lost 3 frames")
        );
    }

    #[test]
    fn lost_frames_and_latency_come_from_the_marks_of_the_window() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        // 50 frames sent 40 ms apart.
        let sent: Vec<Instant> = (0..50).map(|k| ms(40 * k)).collect();
        let outcome = ProbeLog {
            stream: 0,
            requested: Some(ms(50)),
            // Frames 2..49 but 5 and 30, each shown 100 ms after it was sent, frame 3 twice.
            marks: (2u16..50)
                .chain([3])
                .filter(|k| *k != 5 && *k != 30)
                .map(|k| (k, ms(40 * u64::from(k) + 100)))
                .collect(),
            ..ProbeLog::default()
        };
        // The first step holds from 0 to 1.2 s: frames sent up to 0.2 s count.
        let first = Window {
            from: t0,
            to: ms(1200),
            new_since: t0,
            first_step: true,
        };
        let result = analyse(&[&outcome], std::slice::from_ref(&sent), &first);
        // Frames 2..=5 were due, 5 lost.
        assert_eq!(
            (result.frames_expected, result.frames_decoded, result.frames_lost),
            (4, 3, 1)
        );
        // Shown before 1.2 s: frames 2..=27 but 5, sent after the request (frame 2 at 80 ms).
        let latency = result.latency_ms.unwrap();
        assert_eq!((latency.count, latency.p50, latency.max), (25, 100.0, 100.0));
        assert_eq!(result.first_picture_ms.unwrap().p50, 130.0);
        // The second step holds from 1.2 s to 2.4 s: the same probe, not new.
        let second = Window {
            from: ms(1200),
            to: ms(2400),
            new_since: ms(1200),
            first_step: false,
        };
        let result = analyse(&[&outcome], &[sent], &second);
        // Frames sent from 1.2 s to 1.4 s: 30..=35, 30 lost.
        assert_eq!((result.frames_expected, result.frames_lost), (6, 1));
        assert!(result.first_picture_ms.is_none());
        // Shown in the window: frames 28..=49 but 30 (frame 28 shown at 1.22 s).
        assert_eq!(result.latency_ms.unwrap().count, 21);
    }
}
