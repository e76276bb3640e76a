//! The bench's actors: publishers, probes and light players.
//!
//! * A **publisher** sends the marked media over RTMP in real time.
//! * A **probe** plays like a real player and decodes every picture, so each
//!   frame's publish-to-display latency is read off its mark; it also
//!   measures the first picture and sound. A few per stream are enough.
//! * A **light player** sets up its session exactly like a real one (RTMP
//!   connect and play; or WHEP or WebSocket signalling, ICE and DTLS like a
//!   browser), then only counts what it receives: SRTP packets, bytes and
//!   sequence gaps from their clear headers, or RTMP media messages. It
//!   decrypts and decodes nothing, so one load generator can hold
//!   thousands of them. It sends no keyframe requests: a loss shows in its
//!   counts, not as a PLI the server would have to answer.
//!
//! Every actor runs until `stop` turns true.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ::codecs::avc::AvcDecoder;
use ::codecs::picture::Picture;
use ::media::flv::{Tag, TagKind};
use tokio::sync::watch;

use super::{marks, PlayVia, IN_FLIGHT};
use crate::client::{ClientError, ClientProfile, Incoming, RtmpClient};
use crate::webrtc::count::RtpTotals;
use crate::webrtc::{PlayerOptions, Signalling, WebRtcPlayer, WsSession};

/// How long a light player's session may take to set up, each stage
/// (signalling, ICE and DTLS, the first media).
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a light WebRTC player reads what came to its socket. Read as
/// each datagram arrives, every datagram the server sent woke one of the
/// bench's threads, and on loopback the sender's kernel does that wake-up:
/// the server was charged for it (4 % of its time at 800 viewers). Read
/// on a tick, nothing waits on the socket and nobody is woken. A tick
/// holds about 3 of a viewer's packets at 600 kbit/s, far below the
/// socket's buffer; what is counted does not change.
pub const LIGHT_READ_EVERY: Duration = Duration::from_millis(20);

/// Where players reach the target.
pub struct Endpoints {
    pub rtmp_addr: std::net::SocketAddr,
    pub tc_url: String,
    pub whep: Option<String>,
    pub ws: Option<String>,
    pub app_key: String,
}

/// Whether the run is over.
pub type Stop = watch::Receiver<bool>;

fn stopped(stop: &Stop) -> bool {
    *stop.borrow()
}

/// Returns once the run is over (or its sender is gone).
async fn until_stopped(stop: &mut Stop) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// Publishes `tags` on `name` from `start` at their pace until `stop`,
/// logging into `sent` when each video frame went out (by frame number).
pub async fn publish(
    endpoints: Arc<Endpoints>,
    name: String,
    tags: Arc<Vec<Tag>>,
    (start, sent): (Instant, Arc<Mutex<Vec<Instant>>>),
    mut stop: Stop,
) -> Result<(), String> {
    let (mut client, stream) = rtmp_stream(&endpoints).await?;
    let status = client.publish(stream, &name).await.map_err(|e| e.to_string())?;
    if status.code != ::media::netstatus::code::PUBLISH_START {
        return Err(format!("publish answered {}", status.code));
    }
    let tokio_start = tokio::time::Instant::from_std(start);
    let mut stopping: Option<Instant> = None;
    for tag in tags.iter() {
        let due = tokio_start + Duration::from_millis(u64::from(tag.timestamp));
        // Frames sent in the last second are in flight at the end, not lost:
        // keep publishing for that second after the stop.
        if stopping.is_some_and(|at| due.into_std() > at + IN_FLIGHT) {
            break;
        }
        if stopping.is_none() {
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = until_stopped(&mut stop) => {
                    stopping = Some(Instant::now());
                    tokio::time::sleep_until(due).await;
                }
            }
        } else {
            tokio::time::sleep_until(due).await;
        }
        client.send_tag(stream, tag).await.map_err(|e| e.to_string())?;
        if tag.kind == TagKind::Video && tag.data.get(1) == Some(&1) {
            lock(&sent).push(Instant::now());
        }
    }
    let _ = client.unpublish(stream, &name).await;
    Ok(())
}

/// What one probe saw, on the suite's clock; shared with the bench, which
/// reads it at the edges of each step.
#[derive(Debug, Default)]
pub struct ProbeLog {
    pub stream: usize,
    pub requested: Option<Instant>,
    pub marks: Vec<(u16, Instant)>,
    pub first_sound: Option<Instant>,
    pub longest_audio_gap: Duration,
    pub decode_errors: u64,
    pub error: Option<String>,
}

/// A player's stream and name (with any parameters) and id.
pub struct PlayJob {
    pub stream: usize,
    pub name: String,
    pub id: String,
}

/// Runs a probe until `stop`, logging into `log`.
pub async fn probe(endpoints: Arc<Endpoints>, job: PlayJob, via: PlayVia, log: Arc<Mutex<ProbeLog>>, stop: Stop) {
    let result = match via {
        PlayVia::Rtmp => probe_rtmp(&endpoints, &job, &log, stop).await,
        PlayVia::Whep | PlayVia::Ws => probe_webrtc(&endpoints, &job, via, &log, stop).await,
    };
    if let Err(error) = result {
        lock(&log).error = Some(format!("{}: {error}", job.id));
    }
}

/// Locks a log; a panic elsewhere while holding it leaves it usable.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Opens an RTMP connection, connects to the app and creates a stream.
async fn rtmp_stream(endpoints: &Endpoints) -> Result<(RtmpClient, u32), String> {
    let mut client = RtmpClient::open(endpoints.rtmp_addr, ClientProfile::encoder())
        .await
        .map_err(|e| e.to_string())?;
    client
        .connect(&endpoints.tc_url, Vec::new())
        .await
        .map_err(|e| e.to_string())?;
    let stream = client.create_stream().await.map_err(|e| e.to_string())?;
    Ok((client, stream))
}

/// Opens an RTMP session that plays `name`.
async fn rtmp_play(endpoints: &Endpoints, name: &str) -> Result<RtmpClient, String> {
    let (mut client, stream) = rtmp_stream(endpoints).await?;
    client.play(stream, name).await.map_err(|e| e.to_string())?;
    Ok(client)
}

/// The next media message, or `None` once `stop` turns true.
async fn next_media(client: &mut RtmpClient, stop: &Stop) -> Result<Option<(u8, bytes::Bytes)>, String> {
    loop {
        if stopped(stop) {
            return Ok(None);
        }
        match client.next(Duration::from_millis(250)).await {
            Ok(Incoming::Media { type_id, payload, .. }) => return Ok(Some((type_id, payload))),
            Ok(_) | Err(ClientError::Timeout { .. }) => {}
            Err(error) => return Err(error.to_string()),
        }
    }
}

async fn probe_rtmp(endpoints: &Endpoints, job: &PlayJob, log: &Mutex<ProbeLog>, stop: Stop) -> Result<(), String> {
    lock(log).requested = Some(Instant::now());
    let mut client = rtmp_play(endpoints, &job.name).await?;
    let mut decoder = AvcDecoder::new().map_err(|e| e.to_string())?;
    let mut picture = Picture::default();
    let mut last_audio: Option<Instant> = None;
    while let Some((type_id, payload)) = next_media(&mut client, &stop).await? {
        let now = Instant::now();
        let mut log = lock(log);
        match (type_id, payload.get(1)) {
            (9, Some(0)) => decoder.configure(&payload[5..]).map_err(|e| e.to_string())?,
            (9, Some(1)) => {
                let decoded = decoder.decode(&payload[5..], &mut picture);
                log.decode_errors += u64::from(decoded.is_err());
                if let Ok(true) = decoded {
                    let (w, h) = (picture.width, picture.height);
                    if let Some(mark) = marks::read(&picture.data, w, w, h) {
                        log.marks.push((mark, now));
                    }
                }
            }
            // AAC frames (not the sequence header) and any other sound.
            (8, Some(&second)) if !(payload[0] >> 4 == 10 && second == 0) => {
                log.first_sound.get_or_insert(now);
                if let Some(last) = last_audio {
                    log.longest_audio_gap = log.longest_audio_gap.max(now - last);
                }
                last_audio = Some(now);
            }
            _ => {}
        }
    }
    Ok(())
}

/// The signalling for a WebRTC player of `job`; the WebSocket session, when
/// there is one, must live as long as the player.
async fn signalling(
    endpoints: &Endpoints,
    job: &PlayJob,
    via: PlayVia,
) -> Result<(Signalling, Option<WsSession>), String> {
    match via {
        PlayVia::Ws => {
            let url = endpoints.ws.as_deref().ok_or("no WebSocket URL")?;
            let session = WsSession::connect(url, &endpoints.app_key, serde_json::json!({"login": "bench"}))
                .await
                .map_err(|e| e.to_string())?;
            Ok((Signalling::ws(&session, &job.id, &job.name), Some(session)))
        }
        _ => {
            let template = endpoints.whep.as_deref().ok_or("no WHEP URL")?;
            let url = crate::target::fill_template(template, &endpoints.app_key, &job.name);
            Ok((Signalling::url(&url), None))
        }
    }
}

async fn probe_webrtc(
    endpoints: &Endpoints,
    job: &PlayJob,
    via: PlayVia,
    log: &Mutex<ProbeLog>,
    mut stop: Stop,
) -> Result<(), String> {
    let options = PlayerOptions {
        read_marks: true,
        keep_pcm: Duration::from_millis(500),
        ..PlayerOptions::default()
    };
    let (signalling, _session) = signalling(endpoints, job, via).await?;
    lock(log).requested = Some(Instant::now());
    let mut player = WebRtcPlayer::play(signalling, options)
        .await
        .map_err(|e| e.to_string())?;
    let started = player.started();
    let collect = |player: &WebRtcPlayer| {
        let report = player.report();
        let mut log = lock(log);
        for (mark, since) in player.take_marks() {
            log.marks.push((mark, started + since));
        }
        log.first_sound = report.audio.first_sound_after.map(|after| started + after);
        log.longest_audio_gap = report.audio.longest_gap;
        log.decode_errors = report.video.decode_errors;
        report.video.decode_errors
    };
    // Marks are taken as they come, so the player keeps only a few. Like a
    // browser, the probe asks for a keyframe when its decoder fails.
    let mut errors = 0;
    while !stopped(&stop) {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = stop.changed() => {}
        }
        let now = collect(&player);
        if now > errors {
            errors = now;
            let _ = player.request_keyframe().await;
        }
    }
    collect(&player);
    let _ = player.stop().await;
    Ok(())
}

/// A light player that is set up and counting.
pub enum Light {
    /// A WebRTC player that counts SRTP (its WebSocket session, if any).
    WebRtc(Box<WebRtcPlayer>, Option<WsSession>),
    /// An RTMP player whose reading task counts media messages.
    Rtmp(Arc<Mutex<RtpTotals>>, tokio::task::JoinHandle<()>),
}

impl Light {
    /// What it counted so far: RTP packets, or RTMP media messages.
    pub fn totals(&self) -> RtpTotals {
        match self {
            Light::WebRtc(player, _) => player.report().counted,
            Light::Rtmp(counts, _) => *lock(counts),
        }
    }

    /// Ends the session as a player would.
    pub async fn stop(self) {
        match self {
            Light::WebRtc(mut player, _session) => {
                let _ = player.stop().await;
            }
            Light::Rtmp(_, task) => task.abort(),
        }
    }
}

/// Sets up a light player and waits for its first media; on success, the
/// player and how long that took.
pub async fn light(endpoints: Arc<Endpoints>, job: PlayJob, via: PlayVia) -> Result<(Light, Duration), String> {
    let asked = Instant::now();
    match via {
        PlayVia::Rtmp => {
            let mut client = tokio::time::timeout(SETUP_TIMEOUT, rtmp_play(&endpoints, &job.name))
                .await
                .map_err(|_| format!("no answer to connect and play in {SETUP_TIMEOUT:?}"))??;
            let counts = Arc::new(Mutex::new(RtpTotals::default()));
            let deadline = Instant::now() + SETUP_TIMEOUT;
            loop {
                match client.next(deadline.saturating_duration_since(Instant::now())).await {
                    Ok(Incoming::Media { payload, .. }) => {
                        count_message(&counts, payload.len());
                        break;
                    }
                    Ok(_) => {}
                    Err(error) => return Err(format!("no media: {error}")),
                }
            }
            let setup = asked.elapsed();
            let task = {
                let counts = counts.clone();
                tokio::spawn(async move {
                    // No stop signal: the bench aborts the task at the end.
                    while let Ok(incoming) = client.next(Duration::from_secs(3600)).await {
                        if let Incoming::Media { payload, .. } = incoming {
                            count_message(&counts, payload.len());
                        }
                    }
                })
            };
            Ok((Light::Rtmp(counts, task), setup))
        }
        PlayVia::Whep | PlayVia::Ws => {
            let options = PlayerOptions {
                decode: false,
                read_every: Some(LIGHT_READ_EVERY),
                signalling_timeout: SETUP_TIMEOUT,
                ..PlayerOptions::default()
            };
            let (signalling, session) = signalling(&endpoints, &job, via).await?;
            let player = WebRtcPlayer::play(signalling, options)
                .await
                .map_err(|e| e.to_string())?;
            player
                .wait_until("the first RTP packet", |r| r.counted.packets > 0, SETUP_TIMEOUT * 2)
                .await
                .map_err(|e| e.to_string())?;
            Ok((Light::WebRtc(Box::new(player), session), asked.elapsed()))
        }
    }
}

fn count_message(counts: &Mutex<RtpTotals>, bytes: usize) {
    let mut counts = lock(counts);
    counts.packets += 1;
    counts.bytes += bytes as u64;
    counts.streams = 1;
}
