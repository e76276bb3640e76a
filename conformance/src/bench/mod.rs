//! `conformance bench`: a whole server under load, over the network.
//!
//! N publishers send the suite's own media over RTMP in real time: a moving
//! pattern whose frames carry their number drawn into the picture
//! ([`marks`]), and a tone. M players per stream play it back over WHEP, the
//! WebSocket channel or RTMP and decode every picture. Reading the number
//! off a decoded picture names the frame, so the time from its publishing to
//! its display is known for every frame, whatever the server did with it
//! (passed it through, transcoded it, scaled it), on servers we do not control.
//!
//! A run reports the latency distribution (p50, p90, p99, max), the time to
//! the first picture and the first sound, frames lost, the longest audio
//! gap, and the CPU and memory of the server process when its pid is known
//! ([`procstat`]). [`report`] writes it as JSON and as an HTML page with plots.

pub mod marks;
pub mod media;
pub mod procstat;
pub mod report;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::codecs::avc::AvcDecoder;
use ::codecs::picture::Picture;
use ::media::flv::{Tag, TagKind};
use serde::Serialize;

use self::media::MediaSpec;
use crate::client::{ClientProfile, Incoming, RtmpClient};
use crate::target::Running;
use crate::webrtc::{PlayerOptions, Signalling, WebRtcPlayer, WsSession};

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
    /// Players of each stream.
    pub players: usize,
    /// How the players play.
    pub via: PlayVia,
    /// How long players play.
    pub duration: Duration,
    /// The published media.
    pub media: MediaSpec,
    /// The server process to watch (CPU, RSS), when known.
    pub pid: Option<u32>,
    /// Parameters players add to the stream name (`width=320`: on the
    /// reference server, a transcoded smaller picture).
    pub play_params: Option<String>,
}

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

/// CPU and memory of the server process.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessUse {
    /// The process watched.
    pub pid: u32,
    /// CPU seconds it used while players played.
    pub cpu_seconds: f64,
    /// Those seconds per second of the run, in percent of one core.
    pub cpu_percent: f64,
    /// The largest resident set size seen, MiB.
    pub rss_max_mib: f64,
    /// Readings every half second: (seconds into the run, CPU % since the
    /// reading before, RSS MiB).
    pub samples: Vec<(f64, f64, f64)>,
}

/// What a run measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchResult {
    /// The target's name.
    pub target: String,
    /// Publishers.
    pub publishers: usize,
    /// Players per stream.
    pub players_per_stream: usize,
    /// How they played.
    pub via: PlayVia,
    /// Seconds the players played.
    pub seconds: f64,
    /// The published picture: width, height, frames per second.
    pub picture: (usize, usize, u32),
    /// Publish-to-display latency of every frame every player decoded, ms
    /// (frames published after the player asked to play).
    pub latency_ms: Option<Summary>,
    /// The latency histogram: (bucket start ms, frames), 10 ms buckets.
    pub latency_histogram: Vec<(u32, u64)>,
    /// From each player's request to its first decoded picture, ms.
    pub first_picture_ms: Option<Summary>,
    /// From each player's request to its first sound, ms.
    pub first_sound_ms: Option<Summary>,
    /// Frames the players should have shown (sent from each one's first
    /// picture until a second before the end), summed over players.
    pub frames_expected: u64,
    /// Of those, frames decoded.
    pub frames_decoded: u64,
    /// `frames_expected - frames_decoded`.
    pub frames_lost: u64,
    /// Frames the players' decoders refused (damaged or missing references),
    /// summed over players.
    pub decode_errors: u64,
    /// The longest time between two audio frames at any player, ms.
    pub longest_audio_gap_ms: f64,
    /// Players that could not start or ended early, with why.
    pub player_errors: Vec<String>,
    /// Publishers that could not publish, with why.
    pub publisher_errors: Vec<String>,
    /// The server process's CPU and memory, when its pid was given.
    pub process: Option<ProcessUse>,
}

/// Why a bench could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The target lacks what the load needs.
    #[error("{0}")]
    Target(String),
    /// The media could not be made.
    #[error("making the bench media: {0}")]
    Media(String),
}

/// How far a run is, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Time since the players started.
    pub elapsed: Duration,
    /// How long they play.
    pub total: Duration,
    /// Players running now.
    pub players: usize,
    /// CPU % of the server process over the last half second, if watched.
    pub cpu_percent: Option<f64>,
    /// Its RSS in MiB, if watched.
    pub rss_mib: Option<f64>,
}

/// Publishers get this long before players start.
const PUBLISH_LEAD: Duration = Duration::from_secs(2);
/// Frames sent in the last second of the run are not counted as lost.
const IN_FLIGHT: Duration = Duration::from_secs(1);

/// What one player saw, on the suite's clock.
#[derive(Debug, Default)]
struct PlayerOutcome {
    stream: usize,
    requested: Option<Instant>,
    marks: Vec<(u16, Instant)>,
    first_sound: Option<Instant>,
    longest_audio_gap: Duration,
    decode_errors: u64,
    error: Option<String>,
}

/// Runs the load against `running` and measures. `progress` is called
/// about twice a second while players play.
pub async fn run(
    running: &Running,
    options: &BenchOptions,
    mut progress: impl FnMut(Progress),
) -> Result<BenchResult, BenchError> {
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
    let media_seconds = (PUBLISH_LEAD + options.duration).as_secs() as u32 + 2;
    let spec = MediaSpec {
        seconds: media_seconds,
        ..options.media
    };
    let tags = Arc::new(media::marked_tags(spec).map_err(|e| BenchError::Media(e.to_string()))?);
    let tc_url = format!("{}/{}", running.rtmp_base.clone().unwrap_or_default(), running.app);
    let endpoints = Arc::new(Endpoints {
        rtmp_addr: addr,
        tc_url: tc_url.clone(),
        whep: running.spec.whep.clone(),
        ws: running.spec.ws.clone(),
        app_key: running.app_key(),
    });
    let run_id = format!("{:06x}", rand::random::<u32>() & 0xFF_FFFF);
    let names: Vec<String> = (0..options.publishers).map(|i| format!("bench{i}-{run_id}")).collect();

    let start = Instant::now();
    let players_start = start + PUBLISH_LEAD;
    let end = players_start + options.duration;
    let publishers: Vec<_> = names
        .iter()
        .map(|name| tokio::spawn(publish(addr, tc_url.clone(), name.clone(), tags.clone(), start, end)))
        .collect();

    tokio::time::sleep_until(players_start.into()).await;
    let mut players = Vec::new();
    for (stream, name) in names.iter().enumerate() {
        for index in 0..options.players {
            let job = PlayJob {
                stream,
                name: match &options.play_params {
                    Some(params) => format!("{name}?{params}"),
                    None => name.clone(),
                },
                id: format!("p{stream}-{index}"),
                end,
            };
            players.push(tokio::spawn(play(endpoints.clone(), job, options.via)));
        }
    }

    let mut process = options.pid.map(|pid| (pid, Vec::<procstat::Reading>::new()));
    let mut samples = Vec::new();
    let mut ticker = tokio::time::interval(Duration::from_millis(500));
    while Instant::now() < end {
        ticker.tick().await;
        let (mut cpu_percent, mut rss_mib) = (None, None);
        if let Some((pid, readings)) = &mut process {
            if let Some(reading) = procstat::read(*pid) {
                if let Some(last) = readings.last() {
                    let span = reading.at.duration_since(last.at).as_secs_f64().max(1e-3);
                    let percent = (reading.cpu_seconds - last.cpu_seconds) / span * 100.0;
                    let mib = reading.rss_bytes as f64 / (1024.0 * 1024.0);
                    samples.push((reading.at.duration_since(players_start).as_secs_f64(), percent, mib));
                    (cpu_percent, rss_mib) = (Some(percent), Some(mib));
                }
                readings.push(reading);
            }
        }
        progress(Progress {
            elapsed: Instant::now()
                .saturating_duration_since(players_start)
                .min(options.duration),
            total: options.duration,
            players: players.iter().filter(|p| !p.is_finished()).count(),
            cpu_percent,
            rss_mib,
        });
    }

    let mut outcomes = Vec::new();
    for player in players {
        match player.await {
            Ok(outcome) => outcomes.push(outcome),
            Err(error) => outcomes.push(PlayerOutcome {
                error: Some(format!("player task: {error}")),
                ..PlayerOutcome::default()
            }),
        }
    }
    let mut sent = Vec::new();
    let mut publisher_errors = Vec::new();
    for (name, publisher) in names.iter().zip(publishers) {
        match publisher.await {
            Ok(Ok(times)) => sent.push(times),
            Ok(Err(error)) => {
                publisher_errors.push(format!("{name}: {error}"));
                sent.push(Vec::new());
            }
            Err(error) => {
                publisher_errors.push(format!("{name}: {error}"));
                sent.push(Vec::new());
            }
        }
    }
    let process = process.and_then(|(pid, readings)| {
        let (first, last) = (readings.first()?, readings.last()?);
        let span = last.at.duration_since(first.at).as_secs_f64().max(1e-3);
        Some(ProcessUse {
            pid,
            cpu_seconds: last.cpu_seconds - first.cpu_seconds,
            cpu_percent: (last.cpu_seconds - first.cpu_seconds) / span * 100.0,
            rss_max_mib: readings.iter().map(|r| r.rss_bytes).max().unwrap_or(0) as f64 / (1024.0 * 1024.0),
            samples,
        })
    });
    Ok(analyse(
        running.spec.name.clone(),
        options,
        &sent,
        outcomes,
        end,
        publisher_errors,
        process,
    ))
}

/// Publishes the tags on `name` from `start` at their pace until `end`;
/// returns when each video frame went out (by frame number).
async fn publish(
    addr: std::net::SocketAddr,
    tc_url: String,
    name: String,
    tags: Arc<Vec<Tag>>,
    start: Instant,
    end: Instant,
) -> Result<Vec<Option<Instant>>, String> {
    let mut client = RtmpClient::open(addr, ClientProfile::encoder())
        .await
        .map_err(|e| e.to_string())?;
    client.connect(&tc_url, Vec::new()).await.map_err(|e| e.to_string())?;
    let stream = client.create_stream().await.map_err(|e| e.to_string())?;
    let status = client.publish(stream, &name).await.map_err(|e| e.to_string())?;
    if status.code != ::media::netstatus::code::PUBLISH_START {
        return Err(format!("publish answered {}", status.code));
    }
    let mut sent = Vec::with_capacity(tags.len());
    let tokio_start = tokio::time::Instant::from_std(start);
    for tag in tags.iter() {
        let due = tokio_start + Duration::from_millis(u64::from(tag.timestamp));
        if due.into_std() > end + IN_FLIGHT {
            break;
        }
        tokio::time::sleep_until(due).await;
        client.send_tag(stream, tag).await.map_err(|e| e.to_string())?;
        if tag.kind == TagKind::Video && tag.data.get(1) == Some(&1) {
            sent.push(Some(Instant::now()));
        }
    }
    let _ = client.unpublish(stream, &name).await;
    Ok(sent)
}

/// Where players reach the target.
struct Endpoints {
    rtmp_addr: std::net::SocketAddr,
    tc_url: String,
    whep: Option<String>,
    ws: Option<String>,
    app_key: String,
}

struct PlayJob {
    stream: usize,
    name: String,
    id: String,
    end: Instant,
}

async fn play(endpoints: Arc<Endpoints>, job: PlayJob, via: PlayVia) -> PlayerOutcome {
    let mut outcome = PlayerOutcome {
        stream: job.stream,
        ..PlayerOutcome::default()
    };
    let result = match via {
        PlayVia::Rtmp => play_rtmp(&endpoints, &job, &mut outcome).await,
        PlayVia::Whep | PlayVia::Ws => play_webrtc(&endpoints, &job, via, &mut outcome).await,
    };
    if let Err(error) = result {
        outcome.error = Some(format!("{}: {error}", job.id));
    }
    outcome
}

async fn play_rtmp(endpoints: &Endpoints, job: &PlayJob, outcome: &mut PlayerOutcome) -> Result<(), String> {
    outcome.requested = Some(Instant::now());
    let mut client = RtmpClient::open(endpoints.rtmp_addr, ClientProfile::encoder())
        .await
        .map_err(|e| e.to_string())?;
    client
        .connect(&endpoints.tc_url, Vec::new())
        .await
        .map_err(|e| e.to_string())?;
    let stream = client.create_stream().await.map_err(|e| e.to_string())?;
    client.play(stream, &job.name).await.map_err(|e| e.to_string())?;
    let mut decoder = AvcDecoder::new().map_err(|e| e.to_string())?;
    let mut picture = Picture::default();
    let mut last_audio: Option<Instant> = None;
    loop {
        let left = job.end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        let incoming = match client.next(left).await {
            Ok(incoming) => incoming,
            Err(crate::client::ClientError::Timeout { .. }) => return Ok(()),
            Err(error) => return Err(error.to_string()),
        };
        let Incoming::Media { type_id, payload, .. } = incoming else {
            continue;
        };
        let now = Instant::now();
        match (type_id, payload.get(1)) {
            (9, Some(0)) => decoder.configure(&payload[5..]).map_err(|e| e.to_string())?,
            (9, Some(1)) => {
                let decoded = decoder.decode(&payload[5..], &mut picture);
                outcome.decode_errors += u64::from(decoded.is_err());
                if let Ok(true) = decoded {
                    let (w, h) = (picture.width, picture.height);
                    if let Some(mark) = marks::read(&picture.data, w, w, h) {
                        outcome.marks.push((mark, now));
                    }
                }
            }
            // AAC frames (not the sequence header) and any other sound.
            (8, Some(&second)) if !(payload[0] >> 4 == 10 && second == 0) => {
                outcome.first_sound.get_or_insert(now);
                if let Some(last) = last_audio {
                    outcome.longest_audio_gap = outcome.longest_audio_gap.max(now - last);
                }
                last_audio = Some(now);
            }
            _ => {}
        }
    }
}

async fn play_webrtc(
    endpoints: &Endpoints,
    job: &PlayJob,
    via: PlayVia,
    outcome: &mut PlayerOutcome,
) -> Result<(), String> {
    let options = PlayerOptions {
        read_marks: true,
        keep_pcm: Duration::from_millis(500),
        ..PlayerOptions::default()
    };
    let session;
    let signalling = match via {
        PlayVia::Ws => {
            let url = endpoints.ws.as_deref().ok_or("no WebSocket URL")?;
            session = WsSession::connect(url, &endpoints.app_key, serde_json::json!({"login": "bench"}))
                .await
                .map_err(|e| e.to_string())?;
            Signalling::ws(&session, &job.id, &job.name)
        }
        _ => {
            let template = endpoints.whep.as_deref().ok_or("no WHEP URL")?;
            Signalling::url(&crate::target::fill_template(template, &endpoints.app_key, &job.name))
        }
    };
    outcome.requested = Some(Instant::now());
    let mut player = WebRtcPlayer::play(signalling, options)
        .await
        .map_err(|e| e.to_string())?;
    let started = player.started();
    let mut collect = |player: &WebRtcPlayer| {
        for (mark, since) in player.take_marks() {
            outcome.marks.push((mark, started + since));
        }
    };
    // Marks are taken as they come, so the player keeps only a few. Like a
    // browser, the player asks for a keyframe when its decoder fails.
    let mut errors = 0;
    while Instant::now() < job.end {
        tokio::time::sleep(Duration::from_millis(250).min(job.end.saturating_duration_since(Instant::now()))).await;
        collect(&player);
        let report = player.report();
        if report.video.decode_errors > errors {
            errors = report.video.decode_errors;
            let _ = player.request_keyframe().await;
        }
    }
    collect(&player);
    let report = player.report();
    outcome.first_sound = report.audio.first_sound_after.map(|after| started + after);
    outcome.longest_audio_gap = report.audio.longest_gap;
    outcome.decode_errors = report.video.decode_errors;
    let _ = player.stop().await;
    Ok(())
}

fn analyse(
    target: String,
    options: &BenchOptions,
    sent: &[Vec<Option<Instant>>],
    outcomes: Vec<PlayerOutcome>,
    end: Instant,
    publisher_errors: Vec<String>,
    process: Option<ProcessUse>,
) -> BenchResult {
    let mut latencies = Vec::new();
    let mut first_pictures = Vec::new();
    let mut first_sounds = Vec::new();
    let (mut expected, mut decoded) = (0u64, 0u64);
    let mut longest_gap = Duration::ZERO;
    let mut decode_errors = 0;
    let mut player_errors = Vec::new();
    for outcome in outcomes {
        if let Some(error) = outcome.error {
            player_errors.push(error);
        }
        let Some(requested) = outcome.requested else { continue };
        let sent = sent.get(outcome.stream).map(Vec::as_slice).unwrap_or_default();
        // The first arrival of each frame; marks count frames modulo 65536.
        let mut seen: HashMap<usize, Instant> = HashMap::new();
        for (mark, at) in &outcome.marks {
            seen.entry(usize::from(*mark)).or_insert(*at);
        }
        if let Some(first) = outcome.marks.first() {
            first_pictures.push(first.1.duration_since(requested).as_secs_f64() * 1000.0);
            let from = usize::from(first.0);
            let until = sent
                .iter()
                .rposition(|t| t.is_some_and(|t| t + IN_FLIGHT <= end))
                .unwrap_or(0);
            for frame in from..=until.max(from) {
                if sent.get(frame).copied().flatten().is_some() {
                    expected += 1;
                    decoded += u64::from(seen.contains_key(&frame));
                }
            }
        }
        // Frames published before the player asked (a cached GOP sent at
        // once on joining) show in the first picture time, not in latency.
        for (frame, at) in &seen {
            if let Some(Some(sent_at)) = sent.get(*frame) {
                if *at >= *sent_at && *sent_at >= requested {
                    latencies.push(at.duration_since(*sent_at).as_secs_f64() * 1000.0);
                }
            }
        }
        if let Some(sound) = outcome.first_sound {
            first_sounds.push(sound.saturating_duration_since(requested).as_secs_f64() * 1000.0);
        }
        longest_gap = longest_gap.max(outcome.longest_audio_gap);
        decode_errors += outcome.decode_errors;
    }
    BenchResult {
        target,
        publishers: options.publishers,
        players_per_stream: options.players,
        via: options.via,
        seconds: options.duration.as_secs_f64(),
        picture: (options.media.width, options.media.height, options.media.fps),
        latency_histogram: histogram(&latencies, 10.0),
        latency_ms: Summary::of(&latencies),
        first_picture_ms: Summary::of(&first_pictures),
        first_sound_ms: Summary::of(&first_sounds),
        frames_expected: expected,
        frames_decoded: decoded,
        frames_lost: expected.saturating_sub(decoded),
        decode_errors,
        longest_audio_gap_ms: longest_gap.as_secs_f64() * 1000.0,
        player_errors,
        publisher_errors,
        process,
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
    fn lost_frames_and_latency_come_from_the_marks() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        // 10 frames sent 40 ms apart; the run ends 2 s after the first.
        let sent: Vec<Option<Instant>> = (0..10).map(|k| Some(ms(40 * k))).collect();
        let outcome = PlayerOutcome {
            stream: 0,
            requested: Some(t0 + Duration::from_millis(50)),
            // Frames 2..9 but 5, each shown 100 ms after it was sent, frame 3 twice.
            marks: [2u16, 3, 3, 4, 6, 7, 8, 9]
                .iter()
                .map(|&k| (k, ms(40 * u64::from(k) + 100)))
                .collect(),
            ..PlayerOutcome::default()
        };
        let options = BenchOptions {
            publishers: 1,
            players: 1,
            via: PlayVia::Rtmp,
            duration: Duration::from_secs(2),
            media: MediaSpec {
                width: 320,
                height: 240,
                fps: 25,
                bitrate: 500_000,
                seconds: 2,
            },
            pid: None,
            play_params: None,
        };
        let result = analyse("t".into(), &options, &[sent], vec![outcome], ms(2000), vec![], None);
        assert_eq!(
            (result.frames_expected, result.frames_decoded, result.frames_lost),
            (8, 7, 1)
        );
        let latency = result.latency_ms.unwrap();
        assert_eq!((latency.count, latency.p50, latency.max), (7, 100.0, 100.0));
        assert_eq!(result.first_picture_ms.unwrap().p50, 130.0);
    }
}
