//! Audio transcoders, shared: one per stream and output format, whatever the
//! number of players, started by the first player that needs it and stopped
//! with the last one.
//!
//! A transcoder subscribes to its stream in the hub like a player. A tokio task
//! moves the stream's audio frames to a thread of its own, where the codecs run
//! (they never block the async runtime); the thread's output frames go to every
//! subscriber through one `broadcast` ring. Decoder and encoder state live as
//! long as the transcoder: gaps and timestamp jumps re-anchor the output clock
//! without resetting them.

use std::collections::HashMap;
use std::sync::{mpsc, Arc, Mutex, Weak};
use std::time::Instant;

use bytes::Bytes;
use media::codec::transcode::{FlvAudioTag, FlvAudioTarget, FromOpus, OpusPacket, ToOpus};
use media::flv::{self, AudioCodec};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::config::RtmpAudio;
use crate::hub::{Frame, Hub};
use crate::metrics::Metrics;
use crate::rtmp::session::MediaKind;

/// What a transcoder produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// Opus for WebRTC players, as enhanced-RTMP Opus tag bodies (20 ms each).
    Opus,
    /// Speex wideband for RTMP players of an Opus stream (a WebRTC publisher).
    Speex,
    /// AAC-LC for RTMP players of an Opus stream, for apps configured so.
    Aac,
}

impl From<RtmpAudio> for Target {
    fn from(audio: RtmpAudio) -> Target {
        match audio {
            RtmpAudio::Speex => Target::Speex,
            RtmpAudio::Aac => Target::Aac,
        }
    }
}

/// Opus bitrate for transcoded speech and music, in bits per second.
const OPUS_BITRATE: u32 = 48_000;
/// Output frames a transcoder may be ahead of its slowest subscriber.
const OUTPUT_RING: usize = 256;
/// Input frames waiting for the codec thread before new ones are dropped.
const INPUT_QUEUE: usize = 128;

struct Shared {
    frames: broadcast::Sender<Frame>,
    /// The output's last decoder configuration (AAC's sequence header), which
    /// a subscriber arriving after it was sent needs first.
    config: Arc<Mutex<Option<Frame>>>,
    stop: CancellationToken,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A subscription to a transcoder's output. Dropping the last one stops it.
pub struct TranscodedAudio {
    /// The output's decoder configuration sent before this subscription
    /// began (an AAC sequence header), to be sent before `frames`.
    pub initial: Option<Frame>,
    /// The transcoded frames, timestamped in the stream's milliseconds.
    pub frames: broadcast::Receiver<Frame>,
    _shared: Arc<Shared>,
}

impl TranscodedAudio {
    fn new(shared: Arc<Shared>) -> TranscodedAudio {
        // Subscribe first: a configuration sent in between comes twice, never not at all.
        let frames = shared.frames.subscribe();
        let initial = shared.config.lock().unwrap_or_else(|p| p.into_inner()).clone();
        TranscodedAudio {
            initial,
            frames,
            _shared: shared,
        }
    }
}

type Key = (String, String, Target);

/// The registry of running transcoders.
pub struct Transcoders {
    hub: Hub,
    metrics: Arc<Metrics>,
    running: Mutex<HashMap<Key, Weak<Shared>>>,
}

impl Transcoders {
    /// No transcoders yet; they read from `hub`.
    pub fn new(hub: Hub, metrics: Arc<Metrics>) -> Transcoders {
        Transcoders {
            hub,
            metrics,
            running: Mutex::default(),
        }
    }

    /// Transcoders running now.
    pub fn running(&self) -> usize {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running.values().filter(|w| w.strong_count() > 0).count()
    }

    /// Subscribes to the `target` output of `stream` in `app`, starting its
    /// transcoder if none runs. Must be called within a tokio runtime.
    pub fn subscribe(&self, app: &str, stream: &str, target: Target) -> TranscodedAudio {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running.retain(|_, shared| shared.strong_count() > 0);
        let key = (app.to_string(), stream.to_string(), target);
        if let Some(shared) = running.get(&key).and_then(Weak::upgrade) {
            return TranscodedAudio::new(shared);
        }
        let (frames, _) = broadcast::channel(OUTPUT_RING);
        let shared = Arc::new(Shared {
            frames,
            config: Arc::default(),
            stop: CancellationToken::new(),
        });
        running.insert(key, Arc::downgrade(&shared));
        drop(running);

        let (input, work) = mpsc::sync_channel(INPUT_QUEUE);
        let metrics = self.metrics.clone();
        let name = format!("transcode {app}/{stream} {target:?}");
        tracing::info!(%app, %stream, ?target, "transcoder started");
        let spawned = std::thread::Builder::new().name(name).spawn({
            let output = Output {
                frames: shared.frames.clone(),
                config: shared.config.clone(),
            };
            move || run_codecs(target, work, output, metrics)
        });
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start a transcoder thread");
        }
        // `wait`: a transcoder outlives its stream's publisher, like a player.
        if let Some(subscription) = self.hub.subscribe(app, stream, true) {
            tokio::spawn(feed(subscription, input, shared.stop.clone(), self.metrics.clone()));
        }
        TranscodedAudio::new(shared)
    }
}

/// Moves a stream's audio to the codec thread until stopped.
async fn feed(
    mut subscription: crate::hub::Subscription,
    input: mpsc::SyncSender<Frame>,
    stop: CancellationToken,
    metrics: Arc<Metrics>,
) {
    let send = |frame: Frame| match input.try_send(frame) {
        Ok(()) => true,
        Err(mpsc::TrySendError::Full(_)) => {
            metrics.transcode_errors.inc();
            tracing::warn!("transcoder behind: audio frame dropped");
            true
        }
        Err(mpsc::TrySendError::Disconnected(_)) => false,
    };
    for frame in std::mem::take(&mut subscription.initial) {
        if frame.kind == MediaKind::Audio && !send(frame) {
            return;
        }
    }
    loop {
        let frame = tokio::select! {
            _ = stop.cancelled() => return,
            frame = subscription.media.recv() => frame,
        };
        match frame {
            Ok(frame) if frame.kind == MediaKind::Audio => {
                if !send(frame) {
                    return;
                }
            }
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(lost)) => {
                metrics.transcode_errors.add(lost);
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
    // Dropping `input` ends the codec thread.
}

/// Where the codec thread's frames go.
struct Output {
    frames: broadcast::Sender<Frame>,
    config: Arc<Mutex<Option<Frame>>>,
}

impl Output {
    fn send(&self, frame: Frame) {
        if frame.config {
            *self.config.lock().unwrap_or_else(|p| p.into_inner()) = Some(frame.clone());
        }
        let _ = self.frames.send(frame); // no subscriber now: nobody to miss it
    }
}

/// The codec thread: decodes, resamples, encodes, until its input closes.
fn run_codecs(target: Target, work: mpsc::Receiver<Frame>, output: Output, metrics: Arc<Metrics>) {
    let mut to_opus: Option<ToOpus> = None;
    let mut from_opus: Option<FromOpus> = None;
    let mut packets: Vec<OpusPacket> = Vec::new();
    let mut tags: Vec<FlvAudioTag> = Vec::new();
    let mut last_error: Option<String> = None;
    while let Ok(frame) = work.recv() {
        let started = Instant::now();
        let codec = flv::audio_header(&frame.payload).map(|h| h.codec);
        let result = match (target, codec) {
            // Already the target format: nothing to do (players pass it through).
            (Target::Opus, Some(AudioCodec::Opus)) => Ok(()),
            (Target::Opus, _) => match &mut to_opus {
                Some(encoder) => Ok(encoder),
                None => ToOpus::new(OPUS_BITRATE).map(|e| to_opus.insert(e)),
            }
            .and_then(|e| e.push(frame.timestamp, &frame.payload, &mut packets)),
            (Target::Speex | Target::Aac, Some(AudioCodec::Opus)) => match flv::opus_packet(&frame.payload) {
                Some(packet) => {
                    let encoder = match &mut from_opus {
                        Some(encoder) => Ok(encoder),
                        None => FromOpus::new(match target {
                            Target::Aac => FlvAudioTarget::Aac,
                            _ => FlvAudioTarget::Speex,
                        })
                        .map(|e| from_opus.insert(e)),
                    };
                    encoder.and_then(|e| e.push(u64::from(frame.timestamp) * 48, packet, &mut tags))
                }
                None => Ok(()),
            },
            // Not Opus: RTMP players get it as it is.
            (Target::Speex | Target::Aac, _) => Ok(()),
        };
        metrics.transcoded_frames.inc();
        metrics.transcode_micros.add(started.elapsed().as_micros() as u64);
        if let Err(error) = result {
            metrics.transcode_errors.inc();
            let text = error.to_string();
            // Say it once, not fifty times a second.
            if last_error.as_deref() != Some(text.as_str()) {
                tracing::warn!(error = %text, "audio frame not transcoded");
                last_error = Some(text);
            }
        }
        for packet in packets.drain(..) {
            let body = Bytes::from(flv::opus_audio_body(&packet.data));
            output.send(Frame::new(MediaKind::Audio, (packet.rtp_timestamp / 48) as u32, body));
        }
        for tag in tags.drain(..) {
            output.send(Frame::new(MediaKind::Audio, tag.timestamp_ms, tag.data));
        }
    }
    tracing::info!(?target, "transcoder stopped");
}
