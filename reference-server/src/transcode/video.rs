//! Video transcoders: one stream's pictures, decoded (H.264 or Sorenson
//! Spark), scaled to fit what the players asked for and encoded as
//! Constrained Baseline H.264 ([`codecs::VideoTranscoder`]).
//!
//! A codec thread that cannot keep up never makes its queue grow: the
//! cached group of pictures a new transcoder starts from waits for room in
//! the queue, but when live frames find it full, the feed drops frames up
//! to the source's next keyframe
//! (a decoder cannot resume anywhere else), counts them in
//! `video_transcode_frames_dropped_total`, and the output goes on from there.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use codecs::{FlvVideoTag, VideoSettings, VideoTranscoder};
use tokio::sync::mpsc::error::TrySendError;

use super::{Queue, Sink};
use crate::hub::{Frame, Gate, Tracks};
use crate::metrics::Metrics;
use crate::rtmp::session::MediaKind;

/// Pictures waiting for the codec thread (about a second of video) before
/// the feed drops to the next keyframe.
const INPUT_QUEUE: usize = 32;

/// Starts the codec thread of a transcoder making `settings`; frames sent
/// to the returned queue come out of `sink`. `keyframe_wanted` asks for an IDR.
pub(super) fn start(
    name: &str,
    settings: VideoSettings,
    sink: Sink,
    keyframe_wanted: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
) -> std::io::Result<Queue> {
    let (input, work) = tokio::sync::mpsc::channel(INPUT_QUEUE);
    std::thread::Builder::new()
        .name(format!("{name} video"))
        .spawn(move || run(settings, work, sink, keyframe_wanted, metrics))?;
    Ok(input)
}

/// Feeds a stream's video to the codec thread, dropping to the next
/// keyframe whenever the thread is a full queue behind.
pub(super) struct Feed {
    input: Queue,
    metrics: Arc<Metrics>,
    /// Drops pictures to the next keyframe after the queue was full.
    gate: Gate,
    /// A sequence header that met a full queue: sent before the next keyframe.
    held_config: Option<Frame>,
}

impl Feed {
    pub(super) fn new(input: Queue, metrics: Arc<Metrics>) -> Feed {
        Feed {
            input,
            metrics,
            gate: Gate::new(Tracks::Video),
            held_config: None,
        }
    }

    fn flush_config(&mut self) -> bool {
        let Some(config) = self.held_config.take() else {
            return true;
        };
        match self.input.try_send(config) {
            Ok(()) => true,
            Err(TrySendError::Full(config)) => {
                self.held_config = Some(config);
                self.gate.resync();
                true
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }
}

impl super::Feed for Feed {
    fn queue(&self) -> &Queue {
        &self.input
    }

    /// The cached group of pictures goes in whole, however long, through
    /// the feed's gate, which opens at its keyframe.
    fn takes_cached(&mut self, frame: &Frame) -> bool {
        self.gate.admit(frame)
    }

    fn send_live(&mut self, frame: Frame) -> bool {
        if frame.config {
            self.held_config = Some(frame);
            return self.flush_config();
        }
        let resuming = self.gate.skipping();
        if !self.gate.admit(&frame) {
            self.metrics.video_transcode_dropped.inc();
            return true;
        }
        if !self.flush_config() {
            return false;
        }
        match self.input.try_send(frame) {
            Ok(()) => {
                if resuming {
                    tracing::info!("video transcoder caught up at a keyframe");
                }
                true
            }
            Err(TrySendError::Full(_)) => {
                tracing::warn!("video transcoder behind: dropping to the next keyframe");
                self.metrics.video_transcode_dropped.inc();
                self.gate.resync();
                true
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }
}

/// The codec thread: decodes, scales, encodes, until its input closes.
fn run(
    settings: VideoSettings,
    mut work: tokio::sync::mpsc::Receiver<Frame>,
    mut sink: Sink,
    keyframe_wanted: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
) {
    metrics.video_transcoders.inc();
    let mut transcoder = VideoTranscoder::new(settings);
    let mut tags: Vec<FlvVideoTag> = Vec::new();
    let mut last_error: Option<String> = None;
    while let Some(frame) = work.blocking_recv() {
        let started = Instant::now();
        if keyframe_wanted.swap(false, Ordering::Relaxed) {
            transcoder.request_keyframe();
        }
        // A multitrack message: its main track alone.
        let body = frame
            .enhanced
            .as_ref()
            .and_then(|e| e.main_track.as_ref())
            .unwrap_or(&frame.payload);
        if let Err(error) = transcoder.push(frame.timestamp, body, &mut tags) {
            metrics.video_transcode_errors.inc();
            let text = error.to_string();
            // Say it once, not thirty times a second.
            if last_error.as_deref() != Some(text.as_str()) {
                tracing::warn!(error = %text, "video frame not transcoded");
                last_error = Some(text);
            }
        }
        metrics.video_transcoded_frames.inc();
        metrics.video_transcode_micros.add(started.elapsed().as_micros() as u64);
        for tag in tags.drain(..) {
            sink.send(Frame::new(MediaKind::Video, tag.timestamp_ms, tag.data));
        }
    }
    metrics.video_transcoders.dec();
    tracing::info!(?settings, "video transcoder stopped");
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::super::Feed as _;
    use super::*;

    fn video(keyframe: bool, config: bool) -> Frame {
        let body: &'static [u8] = match (keyframe, config) {
            (true, _) => &[0x17, 1, 0, 0, 0],
            (false, true) => &[0x27, 0, 0, 0, 0],
            (false, false) => &[0x27, 1, 0, 0, 0],
        };
        Frame::new(MediaKind::Video, 0, Bytes::from_static(body))
    }

    #[tokio::test]
    async fn live_pictures_follow_the_cached_group_of_pictures_without_a_gap() {
        let metrics = Arc::new(Metrics::default());
        let limits = crate::hub::HubLimits {
            player_queue_frames: 64,
            gop_cache_bytes: 1 << 20,
            gop_cache_duration: std::time::Duration::from_secs(10),
            silent_publisher_takeover: std::time::Duration::ZERO,
            stream_dry_after: std::time::Duration::ZERO,
        };
        let hub = crate::hub::Hub::new(limits, metrics.clone());
        let publisher = hub.publish("app", "s", 1).unwrap();
        let at = |ts: u32, frame: Frame| frame.restamped(ts);
        publisher.push(at(0, video(false, true))).unwrap();
        publisher.push(at(0, video(true, false))).unwrap();
        publisher.push(at(40, video(false, false))).unwrap();
        let (input, mut work) = tokio::sync::mpsc::channel(16);
        let subscription = hub.subscribe("app", "s", true, Tracks::Video).unwrap();
        let stop = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(super::super::feed(
            subscription,
            Feed::new(input, metrics.clone()),
            stop.clone(),
        ));
        tokio::task::yield_now().await;
        publisher.push(at(80, video(false, false))).unwrap();
        publisher.push(at(120, video(false, false))).unwrap();
        let mut queued = Vec::new();
        while queued.len() < 5 {
            let frame = tokio::time::timeout(std::time::Duration::from_secs(5), work.recv()).await;
            queued.push(frame.unwrap().unwrap().timestamp);
        }
        assert_eq!(queued, [0, 0, 40, 80, 120], "the sequence header, the GOP, then live");
        assert_eq!(metrics.video_transcode_dropped.get(), 0);
        stop.cancel();
        task.await.unwrap();
    }

    #[test]
    fn a_full_queue_drops_to_the_next_keyframe_and_counts_the_drops() {
        let (input, mut work) = tokio::sync::mpsc::channel(2);
        let metrics = Arc::new(Metrics::default());
        let mut feed = Feed::new(input, metrics.clone());
        assert!(feed.send_live(video(true, false)) && feed.send_live(video(false, false)));
        // Full: this frame and every one up to the next keyframe are dropped,
        // even after the thread has made room.
        assert!(feed.send_live(video(false, false)));
        let _ = work.try_recv();
        let _ = work.try_recv();
        assert!(feed.send_live(video(false, false)));
        // A sequence header is never lost: it waits for the keyframe's turn.
        assert!(feed.send_live(video(false, true)));
        assert!(feed.send_live(video(true, false)));
        assert_eq!(metrics.video_transcode_dropped.get(), 2);
        let queued: Vec<(bool, bool)> = std::iter::from_fn(|| work.try_recv().ok())
            .map(|f| (f.keyframe, f.config))
            .collect();
        assert_eq!(queued, [(false, true), (true, false)]);
        assert!(feed.send_live(video(false, false)), "back to normal after the keyframe");
        assert_eq!(std::iter::from_fn(|| work.try_recv().ok()).count(), 1);
        drop(work);
        assert!(!feed.send_live(video(true, false)), "the thread is gone");
    }
}
