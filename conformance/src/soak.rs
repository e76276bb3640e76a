//! `conformance soak`: a long, mixed load with hostile clients, and what the
//! server looks like after it.
//!
//! One healthy stream runs for the whole soak: an encoder publishes a
//! fixture in a loop and one RTMP player reads every frame. Around it,
//! events start at a steady rate, each a short life: publishers that come
//! and go, RTMP, WHEP and WebSocket players that join the healthy stream and
//! leave, and hostile clients (the suite's attacks, smaller). When the time
//! is up, everything stops and the server is left alone for a few seconds.
//!
//! The soak passes when the healthy player lost no frame (no two video
//! timestamps further apart than two frames) and got nearly every frame
//! published, every gauge of the server's `/metrics` is back to zero, and
//! the server's resident memory is back within a bound of where it began.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use media::flv::{Tag, TagKind};
use rand::seq::SliceRandom;
use rand::Rng;
use tokio::task::JoinSet;

use crate::client::{ClientProfile, Incoming, RtmpClient};
use crate::scenario::attack::{self, Aim, Attack};
use crate::target::Running;
use crate::webrtc::{PlayerOptions, Signalling, WebRtcPlayer, WsSession};

/// The fixture every publisher of the soak sends, in a loop.
const FIXTURE: &str = "flv/ffmpeg_h264_aac_320x240_440hz.flv";
/// Its video frame interval.
const FRAME: Duration = Duration::from_millis(40);
/// How long the server is left alone before it is measured: allocators
/// give freed memory back after a delay (jemalloc's is 10 s).
const SETTLE: Duration = Duration::from_secs(12);

/// How a soak runs.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    /// How long the load lasts.
    pub duration: Duration,
    /// Events started per second.
    pub rate: f64,
    /// The server's Prometheus `/metrics` URL, for its gauges.
    pub metrics: Option<String>,
    /// The server's process, for its memory.
    pub pid: Option<u32>,
    /// How far above its starting point the server's memory may end (MiB).
    pub rss_growth_mib: u64,
}

/// What a soak saw.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct SoakReport {
    /// How long the load lasted (s).
    pub seconds: f64,
    /// Video frames the healthy publisher sent.
    pub healthy_sent: u64,
    /// Video frames the healthy player received.
    pub healthy_received: u64,
    /// The widest step between two video timestamps it received (ms).
    pub healthy_widest_step_ms: u32,
    /// What went wrong with the healthy stream, if anything.
    pub healthy_error: Option<String>,
    /// Each kind of event: how many went as they should, and how many not.
    pub events: BTreeMap<String, (u64, u64)>,
    /// One failure of each kind, for the report.
    pub event_failures: BTreeMap<String, String>,
    /// The server's gauges after the soak, when `/metrics` was given.
    pub gauges_after: BTreeMap<String, f64>,
    /// The server's resident memory before, at its highest during, and
    /// after the soak (MiB).
    pub rss_mib: Option<(f64, f64, f64)>,
    /// Why the soak failed; empty when it passed.
    pub failures: Vec<String>,
}

impl SoakReport {
    /// Whether the soak passed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// The report as text.
    pub fn text(&self) -> String {
        let mut out = format!(
            "soak of {:.0} s: healthy stream {} of {} video frames, widest timestamp step {} ms\n",
            self.seconds, self.healthy_received, self.healthy_sent, self.healthy_widest_step_ms
        );
        for (kind, (ok, failed)) in &self.events {
            out.push_str(&format!("  {kind:<28} {ok:>5} ok {failed:>5} failed"));
            if let Some(failure) = self.event_failures.get(kind) {
                out.push_str(&format!("  (e.g. {failure})"));
            }
            out.push('\n');
        }
        if !self.gauges_after.is_empty() {
            let gauges: Vec<String> = self.gauges_after.iter().map(|(k, v)| format!("{k} {v}")).collect();
            out.push_str(&format!("gauges after: {}\n", gauges.join(", ")));
        }
        if let Some((before, peak, after)) = self.rss_mib {
            out.push_str(&format!(
                "server memory: {before:.0} MiB before, {peak:.0} MiB at most, {after:.0} MiB after\n"
            ));
        }
        match self.passed() {
            true => out.push_str("PASSED\n"),
            false => {
                for failure in &self.failures {
                    out.push_str(&format!("FAILED: {failure}\n"));
                }
            }
        }
        out
    }
}

/// What kind of event a churn step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Publisher,
    RtmpPlayer,
    WhepPlayer,
    WsPlayer,
    Hostile(Attack),
}

impl Event {
    fn name(self) -> String {
        match self {
            Event::Publisher => "rtmp publisher".into(),
            Event::RtmpPlayer => "rtmp player".into(),
            Event::WhepPlayer => "whep player".into(),
            Event::WsPlayer => "websocket player".into(),
            Event::Hostile(attack) => format!("attack {attack:?}"),
        }
    }
}

/// The attacks a soak mixes in, each with a small size.
const HOSTILE: &[(Attack, usize)] = &[
    (Attack::Noise, 1),
    (Attack::NoiseAfterHandshake, 1),
    (Attack::ChunkSizeTopBit, 1),
    (Attack::AmfDepth, 10_000),
    (Attack::AmfLengthBomb, 1),
    (Attack::ZeroLength, 500),
    (Attack::UserControlGarbage, 200),
    (Attack::WrongStreamIds, 1),
    (Attack::HandshakeFlood, 50),
    (Attack::WhepHugeBody, 1),
    (Attack::UdpGarbage, 200),
    (Attack::WsGarbage, 200),
];

/// Runs a soak against `running`.
pub async fn run(running: &Running, fixtures: &crate::shipped::Fixtures, options: &SoakOptions) -> SoakReport {
    let mut report = SoakReport::default();
    let tags = match fixtures
        .read(FIXTURE)
        .and_then(|bytes| media::flv::read_tags(&bytes).map_err(|e| e.to_string()))
    {
        Ok(tags) => Arc::new(tags),
        Err(error) => {
            report.failures.push(format!("the soak's media {FIXTURE}: {error}"));
            return report;
        }
    };
    let Some(addr) = running.rtmp_addr else {
        report.failures.push("the target has no RTMP URL".into());
        return report;
    };
    let tc_url = format!("{}/{}", running.rtmp_base.clone().unwrap_or_default(), running.app);
    let suffix = format!("{:06x}", rand::random::<u32>() & 0xFF_FFFF);
    let healthy = format!("soak-healthy-{suffix}");
    let rss_before = options.pid.and_then(rss_mib);

    let began = Instant::now();
    let end = began + options.duration;
    // The healthy stream: its publisher until the end, its player a little longer.
    let publisher = tokio::spawn(publish_loop(addr, tc_url.clone(), healthy.clone(), tags.clone(), end));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let player = tokio::spawn(watch_stream(
        addr,
        tc_url.clone(),
        healthy.clone(),
        end + Duration::from_secs(1),
    ));

    let mut events = Vec::new();
    if running.spec.whep.is_some() {
        events.push(Event::WhepPlayer);
    }
    if running.spec.ws.is_some() {
        events.push(Event::WsPlayer);
    }
    events.extend([Event::Publisher, Event::RtmpPlayer, Event::RtmpPlayer]);
    let mut tasks = JoinSet::new();
    let mut peak = rss_before.unwrap_or(0.0);
    let interval = Duration::from_secs_f64(1.0 / options.rate.max(0.1));
    let mut next = 0u64;
    while Instant::now() < end {
        let event = match rand::thread_rng().gen_bool(0.3) {
            true => {
                let (attack, count) = *HOSTILE.choose(&mut rand::thread_rng()).expect("attacks");
                let usable = match attack.capability() {
                    crate::target::Capability::Whep => running.spec.whep.is_some(),
                    crate::target::Capability::WebSocket => running.spec.ws.is_some(),
                    _ => true,
                };
                if !usable {
                    continue;
                }
                (Event::Hostile(attack), count)
            }
            false => (*events.choose(&mut rand::thread_rng()).expect("events"), 0),
        };
        next += 1;
        let life = Duration::from_millis(rand::thread_rng().gen_range(1000..3000));
        let job = Job {
            addr,
            tc_url: tc_url.clone(),
            healthy: healthy.clone(),
            own: format!("soak-churn-{suffix}-{next}"),
            life,
            tags: tags.clone(),
            whep: running
                .spec
                .whep
                .as_deref()
                .map(|template| crate::target::fill_template(template, &running.app, &healthy)),
            ws: running.spec.ws.clone(),
            app_key: running.app_key(),
            attack_from: running.spec.attacker_address(),
        };
        tasks.spawn(async move { (event.0, job.run(event.0, event.1).await) });
        while let Some(done) = tasks.try_join_next() {
            tally(&mut report, done);
        }
        if let Some(rss) = options.pid.and_then(rss_mib) {
            peak = peak.max(rss);
        }
        tokio::time::sleep(interval).await;
    }
    while let Some(done) = tasks.join_next().await {
        tally(&mut report, done);
    }
    report.seconds = began.elapsed().as_secs_f64();
    match publisher.await {
        Ok(Ok(sent)) => report.healthy_sent = sent,
        Ok(Err(error)) => report.healthy_error = Some(format!("the healthy publisher: {error}")),
        Err(error) => report.healthy_error = Some(format!("the healthy publisher: {error}")),
    }
    match player.await {
        Ok(Ok((received, widest))) => {
            report.healthy_received = received;
            report.healthy_widest_step_ms = widest;
        }
        Ok(Err(error)) => report.healthy_error = Some(format!("the healthy player: {error}")),
        Err(error) => report.healthy_error = Some(format!("the healthy player: {error}")),
    }
    tokio::time::sleep(SETTLE).await;
    if let Some(url) = &options.metrics {
        match gauges(url).await {
            Ok(gauges) => report.gauges_after = gauges,
            Err(error) => report.failures.push(format!("/metrics after the soak: {error}")),
        }
    }
    let rss_after = options.pid.and_then(rss_mib);
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        report.rss_mib = Some((before, peak.max(after), after));
    }
    judge(&mut report, options);
    report
}

/// The verdict's reasons.
fn judge(report: &mut SoakReport, options: &SoakOptions) {
    if let Some(error) = &report.healthy_error {
        report.failures.push(error.clone());
    }
    let widest = u128::from(report.healthy_widest_step_ms);
    if widest > 2 * FRAME.as_millis() - 10 {
        report.failures.push(format!(
            "the healthy player lost frames: its video timestamps stepped {widest} ms at once"
        ));
    }
    // The last frames may still be on their way when the player stops.
    if report.healthy_received + 25 < report.healthy_sent {
        report.failures.push(format!(
            "the healthy player got {} of {} video frames",
            report.healthy_received, report.healthy_sent
        ));
    }
    for (gauge, value) in &report.gauges_after {
        if *value != 0.0 {
            report
                .failures
                .push(format!("{gauge} is {value} with every client gone, not 0"));
        }
    }
    if let Some((before, _, after)) = report.rss_mib {
        if after > before + options.rss_growth_mib as f64 {
            report.failures.push(format!(
                "the server's memory went from {before:.0} MiB to {after:.0} MiB, more than {} MiB up",
                options.rss_growth_mib
            ));
        }
    }
    for (kind, (ok, _)) in &report.events {
        // Every legitimate kind of client must have got through sometimes.
        if !kind.starts_with("attack") && *ok == 0 {
            report.failures.push(format!("no {kind} ever succeeded"));
        }
    }
}

fn tally(report: &mut SoakReport, done: Result<(Event, Result<(), String>), tokio::task::JoinError>) {
    let (name, result) = match done {
        Ok((event, result)) => (event.name(), result),
        Err(error) => ("a task".to_string(), Err(error.to_string())),
    };
    let entry = report.events.entry(name.clone()).or_default();
    match result {
        Ok(()) => entry.0 += 1,
        Err(error) => {
            entry.1 += 1;
            report.event_failures.entry(name).or_insert(error);
        }
    }
}

/// One churn event and what it needs.
struct Job {
    addr: std::net::SocketAddr,
    tc_url: String,
    healthy: String,
    own: String,
    life: Duration,
    tags: Arc<Vec<Tag>>,
    whep: Option<String>,
    ws: Option<String>,
    app_key: String,
    /// Where its attack comes from.
    attack_from: Option<std::net::IpAddr>,
}

impl Job {
    async fn run(self, event: Event, count: usize) -> Result<(), String> {
        let until = Instant::now() + self.life;
        match event {
            Event::Publisher => publish_loop(self.addr, self.tc_url, self.own, self.tags, until)
                .await
                .map(|_| ()),
            Event::RtmpPlayer => {
                let (received, _) = watch_stream(self.addr, self.tc_url, self.healthy, until).await?;
                match received {
                    0 => Err("no video frame".into()),
                    _ => Ok(()),
                }
            }
            Event::WhepPlayer | Event::WsPlayer => self.play_webrtc(event, until).await,
            Event::Hostile(attack) => {
                let aim = Aim {
                    rtmp: Some(self.addr),
                    tc_url: self.tc_url,
                    app: self.app_key,
                    whep: self.whep,
                    ws: self.ws,
                    stream: self.healthy,
                    own_stream: self.own,
                    from: self.attack_from,
                };
                let report = attack::launch(attack, Some(count), &aim, Duration::from_millis(500)).await;
                drop(report.held);
                Ok(())
            }
        }
    }

    async fn play_webrtc(self, event: Event, until: Instant) -> Result<(), String> {
        let session;
        let signalling = match event {
            Event::WsPlayer => {
                let url = self.ws.as_deref().ok_or("no WebSocket URL")?;
                session = WsSession::connect(url, &self.app_key, serde_json::json!({"login": "soak"}))
                    .await
                    .map_err(|e| e.to_string())?;
                Signalling::ws(&session, &self.own, &self.healthy)
            }
            _ => Signalling::url(self.whep.as_deref().ok_or("no WHEP URL")?),
        };
        let mut player = WebRtcPlayer::play(signalling, PlayerOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        tokio::time::sleep(until.saturating_duration_since(Instant::now())).await;
        let report = player.report();
        let _ = player.stop().await;
        match report.video.rtp_packets {
            0 => Err("no RTP video packet".into()),
            _ => Ok(()),
        }
    }
}

/// Publishes `tags` on `name` in a loop, at their pace, until `until`;
/// returns how many video frames went out.
async fn publish_loop(
    addr: std::net::SocketAddr,
    tc_url: String,
    name: String,
    tags: Arc<Vec<Tag>>,
    until: Instant,
) -> Result<u64, String> {
    let mut client = RtmpClient::open(addr, ClientProfile::encoder())
        .await
        .map_err(|e| e.to_string())?;
    client.connect(&tc_url, Vec::new()).await.map_err(|e| e.to_string())?;
    let stream = client.create_stream().await.map_err(|e| e.to_string())?;
    let status = client.publish(stream, &name).await.map_err(|e| e.to_string())?;
    if status.code != media::netstatus::code::PUBLISH_START {
        return Err(format!("publish answered {}", status.code));
    }
    let length = tags.last().map_or(0, |t| t.timestamp) + FRAME.as_millis() as u32;
    let start = tokio::time::Instant::now();
    let mut sent = 0;
    'sending: for lap in 0.. {
        for tag in tags.iter() {
            // Sequence headers once, at the start.
            let config = match tag.kind {
                TagKind::Video => media::flv::video_header(&tag.data).is_some_and(|h| h.is_sequence_header),
                TagKind::Audio => media::flv::audio_header(&tag.data).is_some_and(|h| h.is_sequence_header),
                _ => true,
            };
            if lap > 0 && config {
                continue;
            }
            let timestamp = tag.timestamp + lap * length;
            let due = start + Duration::from_millis(u64::from(timestamp));
            if due.into_std() > until {
                break 'sending;
            }
            tokio::time::sleep_until(due).await;
            let mut tag = tag.clone();
            tag.timestamp = timestamp;
            client.send_tag(stream, &tag).await.map_err(|e| e.to_string())?;
            if tag.kind == TagKind::Video && !config {
                sent += 1;
            }
        }
    }
    Ok(sent)
}

/// Plays `name` until `until`: the video frames received and the widest
/// step between two consecutive video timestamps (ms).
async fn watch_stream(
    addr: std::net::SocketAddr,
    tc_url: String,
    name: String,
    until: Instant,
) -> Result<(u64, u32), String> {
    let mut client = RtmpClient::open(addr, ClientProfile::encoder())
        .await
        .map_err(|e| e.to_string())?;
    client.connect(&tc_url, Vec::new()).await.map_err(|e| e.to_string())?;
    let stream = client.create_stream().await.map_err(|e| e.to_string())?;
    client.play(stream, &name).await.map_err(|e| e.to_string())?;
    let mut frames = 0;
    let mut last = None;
    let mut widest = 0;
    while Instant::now() < until {
        let left = until.saturating_duration_since(Instant::now());
        match client.next(left.min(Duration::from_millis(500))).await {
            Ok(Incoming::Media {
                type_id: 9,
                timestamp,
                payload,
                ..
            }) => {
                if media::flv::video_header(&payload).is_some_and(|h| h.is_sequence_header) {
                    continue;
                }
                frames += 1;
                if let Some(last) = last {
                    widest = widest.max(u32::wrapping_sub(timestamp, last));
                }
                last = Some(timestamp);
            }
            Ok(_) | Err(crate::client::ClientError::Timeout { .. }) => {}
            Err(error) => return Err(format!("after {frames} video frames: {error}")),
        }
    }
    Ok((frames, widest))
}

/// The gauges of a Prometheus text page.
async fn gauges(url: &str) -> Result<BTreeMap<String, f64>, String> {
    let text = reqwest::get(url)
        .await
        .map_err(|e| e.to_string())?
        .text()
        .await
        .map_err(|e| e.to_string())?;
    Ok(parse_gauges(&text))
}

/// The samples of every metric whose `# TYPE` is `gauge`.
pub fn parse_gauges(text: &str) -> BTreeMap<String, f64> {
    let kinds: BTreeMap<&str, &str> = text
        .lines()
        .filter_map(|line| {
            let mut words = line.strip_prefix("# TYPE ")?.split_whitespace();
            Some((words.next()?, words.next()?))
        })
        .collect();
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (sample, value) = line.rsplit_once(' ')?;
            let name = sample.split('{').next()?;
            (kinds.get(name) == Some(&"gauge")).then(|| Some((sample.to_string(), value.parse().ok()?)))?
        })
        .collect()
}

/// The resident memory of process `pid` (MiB).
fn rss_mib(pid: u32) -> Option<f64> {
    crate::bench::procstat::read(pid).map(|reading| reading.rss_bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_gauges_are_read_from_metrics() {
        let text = "# HELP a_total A.\n# TYPE a_total counter\na_total 5\n# TYPE open gauge\nopen 2\n# TYPE b gauge\nb{x=\"1\"} 0\n";
        let gauges = parse_gauges(text);
        assert_eq!(gauges.len(), 2);
        assert_eq!(gauges["open"], 2.0);
        assert_eq!(gauges["b{x=\"1\"}"], 0.0);
    }

    #[test]
    fn a_soak_fails_on_lost_frames_gauges_and_memory() {
        let options = SoakOptions {
            duration: Duration::from_secs(60),
            rate: 4.0,
            metrics: None,
            pid: None,
            rss_growth_mib: 64,
        };
        let mut report = SoakReport {
            healthy_sent: 1500,
            healthy_received: 1490,
            healthy_widest_step_ms: 40,
            ..SoakReport::default()
        };
        report.events.insert("rtmp player".into(), (10, 1));
        judge(&mut report, &options);
        assert!(report.passed(), "{:?}", report.failures);
        let mut report = SoakReport {
            healthy_sent: 1500,
            healthy_received: 1400,
            healthy_widest_step_ms: 120,
            rss_mib: Some((30.0, 200.0, 150.0)),
            ..SoakReport::default()
        };
        report.gauges_after.insert("rtmp_connections".into(), 3.0);
        report.events.insert("whep player".into(), (0, 5));
        judge(&mut report, &options);
        assert_eq!(report.failures.len(), 5, "{:?}", report.failures);
    }
}
