//! Video transcoders: one stream's pictures, decoded (H.264 or Sorenson
//! Spark), scaled to fit what the players asked for and encoded as
//! Constrained Baseline H.264 ([`media::codec::VideoTranscoder`]).
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

use media::codec::{FlvVideoTag, VideoSettings, VideoTranscoder};
use tokio::sync::broadcast;
use tokio::sync::mpsc::error::TrySendError;
use tokio_util::sync::CancellationToken;

use super::{send_waiting, Queue, Sink};
use crate::hub::{Frame, Subscription};
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

/// Moves a stream's video to the codec thread until stopped, dropping to
/// the next keyframe whenever the thread is a full queue behind.
pub(super) async fn feed(mut subscription: Subscription, input: Queue, stop: CancellationToken, metrics: Arc<Metrics>) {
    let mut feed = Feed {
        input,
        metrics,
        dropping: false,
        held_config: None,
    };
    // The cached group of pictures goes in whole, however long: the
    // decoder needs all of it, so it waits for room rather than dropping.
    for frame in std::mem::take(&mut subscription.initial) {
        if frame.kind == MediaKind::Video && !send_waiting(&feed.input, frame, &stop).await {
            return;
        }
    }
    loop {
        let frame = tokio::select! {
            _ = stop.cancelled() => return,
            frame = subscription.media.recv() => frame,
        };
        match frame {
            Ok(frame) => {
                if !feed.send(frame) {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Lagged(lost)) => {
                // Frames the hub could not keep for us: resume at a keyframe too.
                feed.metrics.video_transcode_dropped.add(lost);
                feed.dropping = true;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
    // Dropping `input` ends the codec thread.
}

struct Feed {
    input: Queue,
    metrics: Arc<Metrics>,
    /// Frames are being dropped until the next keyframe.
    dropping: bool,
    /// A sequence header that met a full queue: sent before the next keyframe.
    held_config: Option<Frame>,
}

impl Feed {
    /// Queues a video frame for the codec thread; false once the thread is gone.
    fn send(&mut self, frame: Frame) -> bool {
        if frame.kind != MediaKind::Video {
            return true;
        }
        if frame.config {
            self.held_config = Some(frame);
            return self.flush_config();
        }
        if self.dropping && !frame.keyframe {
            self.metrics.video_transcode_dropped.inc();
            return true;
        }
        if !self.flush_config() {
            return false;
        }
        match self.input.try_send(frame) {
            Ok(()) => {
                if self.dropping {
                    tracing::info!("video transcoder caught up at a keyframe");
                }
                self.dropping = false;
                true
            }
            Err(TrySendError::Full(_)) => {
                if !self.dropping {
                    tracing::warn!("video transcoder behind: dropping to the next keyframe");
                }
                self.metrics.video_transcode_dropped.inc();
                self.dropping = true;
                true
            }
            Err(TrySendError::Closed(_)) => false,
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
                self.dropping = true;
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
    sink: Sink,
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
        if let Err(error) = transcoder.push(frame.timestamp, &frame.payload, &mut tags) {
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
            sink.send(Frame {
                kind: MediaKind::Video,
                timestamp: tag.timestamp_ms,
                keyframe: tag.keyframe,
                config: tag.config,
                payload: tag.data,
            });
        }
    }
    metrics.video_transcoders.dec();
    tracing::info!(?settings, "video transcoder stopped");
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn video(keyframe: bool, config: bool) -> Frame {
        Frame {
            kind: MediaKind::Video,
            timestamp: 0,
            keyframe,
            config,
            payload: Bytes::from_static(&[0x27, 1, 0, 0, 0]),
        }
    }

    #[test]
    fn a_full_queue_drops_to_the_next_keyframe_and_counts_the_drops() {
        let (input, mut work) = tokio::sync::mpsc::channel(2);
        let metrics = Arc::new(Metrics::default());
        let mut feed = Feed {
            input,
            metrics: metrics.clone(),
            dropping: false,
            held_config: None,
        };
        assert!(feed.send(video(true, false)) && feed.send(video(false, false)));
        // Full: this frame and every one up to the next keyframe are dropped,
        // even after the thread has made room.
        assert!(feed.send(video(false, false)));
        let _ = work.try_recv();
        let _ = work.try_recv();
        assert!(feed.send(video(false, false)));
        // A sequence header is never lost: it waits for the keyframe's turn.
        assert!(feed.send(video(false, true)));
        assert!(feed.send(video(true, false)));
        assert_eq!(metrics.video_transcode_dropped.get(), 2);
        let queued: Vec<(bool, bool)> = std::iter::from_fn(|| work.try_recv().ok())
            .map(|f| (f.keyframe, f.config))
            .collect();
        assert_eq!(queued, [(false, true), (true, false)]);
        assert!(feed.send(video(false, false)), "back to normal after the keyframe");
        assert_eq!(std::iter::from_fn(|| work.try_recv().ok()).count(), 1);
        drop(work);
        assert!(!feed.send(video(true, false)), "the thread is gone");
    }
}
