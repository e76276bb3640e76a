//! Transcoders, shared: one per stream and output, whatever the number of
//! players, started by the first player that needs it and stopped with the
//! last one.
//!
//! A transcoder subscribes to its stream in the hub like a player. A tokio task
//! moves the stream's frames to a thread of its own through a bounded queue,
//! and the codecs run on that thread (they never block the async runtime);
//! the thread's output frames go to every subscriber through one `broadcast`
//! ring. Audio ([`audio`]) turns a stream's sound into Opus for WebRTC
//! players, or Opus into Speex or AAC for RTMP players; video ([`video`])
//! turns H.264 with B-frames, Sorenson Spark, or a picture too large for a
//! player into Constrained Baseline H.264 of the size asked for.

pub mod audio;
pub mod video;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use codecs::VideoSettings;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

pub use self::audio::Target;
use crate::hub::{Delivery, Frame, Hub, Selection, Subscription, Tracks};
use crate::metrics::Metrics;

/// Output frames a transcoder may be ahead of its slowest subscriber.
const OUTPUT_RING: usize = 256;

/// The bounded queue from a transcoder's feed task to its codec thread,
/// which takes from it with `blocking_recv`.
type Queue = tokio::sync::mpsc::Sender<Frame>;

/// How a transcoder's feed hands frames to its codec thread.
trait Feed {
    /// The codec thread's queue.
    fn queue(&self) -> &Queue;
    /// Whether a frame of the cached burst goes to the codecs.
    fn takes_cached(&mut self, _frame: &Frame) -> bool {
        true
    }
    /// Queues a live frame, or drops it when the thread is a full queue
    /// behind; false once the thread is gone.
    fn send_live(&mut self, frame: Frame) -> bool;
}

/// Moves a subscription's frames to a codec thread until stopped. The
/// cached burst a new transcoder starts from waits for room: the codecs
/// need all of it, and it is bounded (one group of pictures). Live frames
/// that outrun the codec thread are dropped by the feed. Dropping the
/// queue at the end ends the codec thread.
async fn feed(mut subscription: Subscription, mut feed: impl Feed, stop: CancellationToken) {
    while let Some(frame) = subscription.next_cached() {
        if !frame.for_decoders() || !feed.takes_cached(&frame) {
            continue;
        }
        let sent = tokio::select! {
            _ = stop.cancelled() => false,
            sent = feed.queue().send(frame) => sent.is_ok(),
        };
        if !sent {
            return;
        }
    }
    loop {
        let delivery = tokio::select! {
            _ = stop.cancelled() => return,
            delivery = subscription.next() => delivery,
        };
        match delivery {
            Some(Delivery::Frame(frame)) if !frame.for_decoders() => {}
            Some(Delivery::Frame(frame)) => {
                if !feed.send_live(frame) {
                    return;
                }
            }
            Some(Delivery::Publication(_) | Delivery::Dry) => {}
            None => return,
        }
    }
}

/// What a transcoder makes: a sound format, or H.264 of some size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Output {
    Audio(Target),
    Video(VideoSettings),
}

/// What a subscriber has rung, on the codec thread, after each frame its
/// transcoder sends: a WebRTC player takes its frames then, without a task
/// of its own being woken. It is rung within the runtime the transcoder
/// was started in (the subscriber may start tasks).
pub trait Doorbell: Send + Sync {
    /// A frame was sent.
    fn ring(&self);
    /// Asks for the memory `ring` will read, without waiting for it: the
    /// doorbells are rung in turn, each asked one ring ahead (see
    /// [`crate::prefetch`]).
    fn prefetch(&self) {}
}

/// The doorbells of a transcoder's subscribers; one whose owner is gone
/// is dropped at the next frame.
type Doorbells = Arc<Mutex<Vec<Weak<dyn Doorbell>>>>;

/// What a transcoder and its subscribers share.
struct Shared {
    frames: broadcast::Sender<Frame>,
    doorbells: Doorbells,
    /// The output's last decoder configuration (an AAC or AVC sequence
    /// header), which a subscriber arriving after it was sent needs first.
    config: Arc<Mutex<Option<Frame>>>,
    /// Set by a subscriber that needs a keyframe now; the codec thread
    /// makes its next picture one and clears it.
    keyframe_wanted: Arc<AtomicBool>,
    stop: CancellationToken,
}

impl Shared {
    fn new() -> Shared {
        Shared {
            frames: broadcast::channel(OUTPUT_RING).0,
            doorbells: Arc::default(),
            config: Arc::default(),
            keyframe_wanted: Arc::default(),
            stop: CancellationToken::new(),
        }
    }

    /// Where the codec thread sends; must be called within the runtime
    /// the doorbells are rung in.
    fn sink(&self) -> Sink {
        Sink {
            frames: self.frames.clone(),
            config: self.config.clone(),
            doorbells: self.doorbells.clone(),
            ringing: Vec::new(),
            runtime: tokio::runtime::Handle::current(),
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A subscription to a transcoder's output. Dropping the last one stops it.
pub struct Transcoded {
    /// The output's decoder configuration sent before this subscription
    /// began (an AAC or AVC sequence header), to be sent before `frames`.
    pub initial: Option<Frame>,
    /// The transcoded frames, timestamped in the stream's milliseconds.
    pub frames: broadcast::Receiver<Frame>,
    /// Frames were skipped (this subscriber fell a whole ring behind)
    /// since the holder last cleared it.
    pub lost: bool,
    shared: Arc<Shared>,
    /// Rung after each frame (see [`Transcoded::ring_on_send`]).
    doorbell: Option<Weak<dyn Doorbell>>,
}

impl Drop for Transcoded {
    /// Its doorbell rings no more (the entry it added; another
    /// subscription of the same subscriber keeps its own).
    fn drop(&mut self) {
        if let Some(doorbell) = &self.doorbell {
            let mut doorbells = lock(&self.shared.doorbells);
            if let Some(at) = doorbells
                .iter()
                .position(|d| std::ptr::addr_eq(d.as_ptr(), doorbell.as_ptr()))
            {
                doorbells.swap_remove(at);
            }
        }
    }
}

impl Transcoded {
    fn new(shared: Arc<Shared>) -> Transcoded {
        // Subscribe first: a configuration sent in between comes twice, never not at all.
        let frames = shared.frames.subscribe();
        let initial = lock(&shared.config).clone();
        Transcoded {
            initial,
            frames,
            lost: false,
            shared,
            doorbell: None,
        }
    }

    /// Asks a video transcoder for an IDR as its next picture (a player's
    /// PLI or FIR); shared by every subscriber, so asking twice costs one.
    pub fn request_keyframe(&self) {
        self.shared.keyframe_wanted.store(true, Ordering::Relaxed);
    }

    /// Has `doorbell` rung after each frame from now on, until this
    /// subscription is dropped or the doorbell's owner is gone (once).
    pub fn ring_on_send(&mut self, doorbell: Weak<dyn Doorbell>) {
        if self.doorbell.is_some() {
            return;
        }
        lock(&self.shared.doorbells).push(doorbell.clone());
        self.doorbell = Some(doorbell);
    }

    /// The next frame already sent, if any, without waiting; frames a slow
    /// subscriber missed are skipped (and `lost` set). `None` when there
    /// is none now, or the transcoder is gone.
    pub fn try_recv(&mut self) -> Option<Frame> {
        loop {
            match self.frames.try_recv() {
                Ok(frame) => return Some(frame),
                Err(broadcast::error::TryRecvError::Lagged(_)) => self.lost = true,
                Err(_) => return None,
            }
        }
    }

    /// The initial configuration if there is one, then the frames as
    /// [`Transcoded::recv`] gives them.
    pub async fn next(&mut self) -> Option<Frame> {
        match self.initial.take() {
            Some(config) => Some(config),
            None => self.recv().await,
        }
    }

    /// The next frame; frames a slow subscriber missed are skipped (and
    /// counted by the caller's own lag handling, if any).
    pub async fn recv(&mut self) -> Option<Frame> {
        loop {
            match self.frames.recv().await {
                Ok(frame) => return Some(frame),
                Err(broadcast::error::RecvError::Lagged(_)) => self.lost = true,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

/// Where a codec thread's frames go.
struct Sink {
    frames: broadcast::Sender<Frame>,
    config: Arc<Mutex<Option<Frame>>>,
    doorbells: Doorbells,
    /// The doorbells to ring for the frame being sent, gathered under the
    /// lock and rung after it (a subscriber may subscribe again as it
    /// takes the frame); kept, so that nothing is allocated per frame.
    ringing: Vec<Arc<dyn Doorbell>>,
    /// Entered while the doorbells ring.
    runtime: tokio::runtime::Handle,
}

impl Sink {
    fn send(&mut self, frame: Frame) {
        if frame.config {
            *lock(&self.config) = Some(frame.clone());
        }
        let _ = self.frames.send(frame); // no subscriber now: nobody to miss it
        lock(&self.doorbells).retain(|doorbell| match doorbell.upgrade() {
            Some(doorbell) => {
                self.ringing.push(doorbell);
                true
            }
            None => false,
        });
        let _runtime = self.runtime.enter();
        // The players' datagrams go out together once all have taken the frame.
        let _sends = crate::webrtc::udp::hold();
        // Each doorbell's memory is asked for ahead (see
        // `crate::prefetch`): its first line two rings ahead, what that
        // line says where to find one ring ahead.
        for (at, doorbell) in self.ringing.iter().enumerate() {
            if let Some(after) = self.ringing.get(at + 2) {
                crate::prefetch::line(Arc::as_ptr(after).cast::<()>() as usize, 0);
            }
            if let Some(next) = self.ringing.get(at + 1) {
                next.prefetch();
            }
            doorbell.ring();
        }
        self.ringing.clear();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

type Key = (String, String, Selection, Output);

/// The registry of running transcoders.
pub struct Transcoders {
    hub: Hub,
    metrics: Arc<Metrics>,
    running: Mutex<HashMap<Key, Weak<Shared>>>,
    /// The quirks that change what transcoders make (`opus_transcoded`,
    /// `transcoded_audio_stamped_late`).
    quirks: crate::config::Quirks,
}

impl Transcoders {
    /// No transcoders yet; they read from `hub`.
    pub fn new(hub: Hub, metrics: Arc<Metrics>) -> Transcoders {
        Transcoders {
            hub,
            metrics,
            running: Mutex::default(),
            quirks: crate::config::Quirks::default(),
        }
    }

    /// Transcoders that reproduce `quirks` (never for production).
    pub fn with_quirks(self, quirks: crate::config::Quirks) -> Transcoders {
        Transcoders { quirks, ..self }
    }

    /// Transcoders running now.
    pub fn running(&self) -> usize {
        let running = lock(&self.running);
        running.values().filter(|w| w.strong_count() > 0).count()
    }

    /// Subscribes to the `target` sound of `stream` in `app` (of the
    /// track `selection` names, for a multitrack stream), starting its
    /// transcoder if none runs. Must be called within a tokio runtime.
    pub fn subscribe(&self, app: &str, stream: &str, selection: Selection, target: Target) -> Transcoded {
        self.subscribe_to(app, stream, selection, Output::Audio(target))
    }

    /// Subscribes to `stream`'s video as H.264 made with `settings`,
    /// starting its transcoder if none runs, and asks for an IDR so the new
    /// subscriber can start at once. Must be called within a tokio runtime.
    pub fn subscribe_video(
        &self,
        app: &str,
        stream: &str,
        selection: Selection,
        settings: VideoSettings,
    ) -> Transcoded {
        let transcoded = self.subscribe_to(app, stream, selection, Output::Video(settings));
        transcoded.request_keyframe();
        transcoded
    }

    fn subscribe_to(&self, app: &str, stream: &str, selection: Selection, output: Output) -> Transcoded {
        let mut running = lock(&self.running);
        running.retain(|_, shared| shared.strong_count() > 0);
        // Only the track of the kind it transcodes tells transcoders apart.
        let selection = selection.of(match output {
            Output::Audio(_) => crate::hub::MediaKind::Audio,
            Output::Video(_) => crate::hub::MediaKind::Video,
        });
        let key = (app.to_string(), stream.to_string(), selection, output);
        if let Some(shared) = running.get(&key).and_then(Weak::upgrade) {
            return Transcoded::new(shared);
        }
        let shared = Arc::new(Shared::new());
        running.insert(key, Arc::downgrade(&shared));
        drop(running);

        tracing::info!(%app, %stream, ?selection, ?output, "transcoder started");
        let sink = shared.sink();
        let name = format!("transcode {app}/{stream}");
        let metrics = self.metrics.clone();
        let input = match output {
            Output::Audio(target) => audio::start(&name, target, &self.quirks, sink, metrics),
            Output::Video(settings) => video::start(&name, settings, sink, shared.keyframe_wanted.clone(), metrics),
        };
        // `wait`: a transcoder outlives its stream's publisher, like a player.
        let tracks = match output {
            Output::Audio(_) => Tracks::Audio,
            Output::Video(_) => Tracks::Video,
        };
        match (input, self.hub.subscribe(app, stream, true, tracks)) {
            (Ok(input), Some(mut subscription)) => {
                subscription.select(selection);
                let (stop, metrics) = (shared.stop.clone(), self.metrics.clone());
                match output {
                    Output::Audio(_) => tokio::spawn(feed(subscription, audio::Feed::new(input, metrics), stop)),
                    Output::Video(_) => tokio::spawn(feed(subscription, video::Feed::new(input, metrics), stop)),
                };
            }
            (Err(error), _) => tracing::error!(%error, "cannot start a transcoder thread"),
            (_, None) => {}
        }
        Transcoded::new(shared)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use bytes::Bytes;

    use super::*;
    use crate::hub::MediaKind;

    struct Bell(AtomicUsize);

    impl Doorbell for Bell {
        fn ring(&self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[tokio::test]
    async fn a_subscription_rings_its_doorbell_once_a_frame_until_it_is_dropped() {
        let shared = Arc::new(Shared::new());
        let mut sink = shared.sink();
        let bell = Arc::new(Bell(AtomicUsize::new(0)));
        let doorbell: Weak<dyn Doorbell> = Arc::downgrade(&bell) as Weak<dyn Doorbell>;
        let rings = || bell.0.load(Ordering::Relaxed);
        let mut send = |timestamp| sink.send(Frame::new(MediaKind::Audio, timestamp, Bytes::from_static(b"opus")));

        let mut first = Transcoded::new(shared.clone());
        first.ring_on_send(doorbell.clone());
        first.ring_on_send(doorbell.clone());
        send(0);
        assert_eq!(rings(), 1, "one ring a frame, however often it is asked");
        assert_eq!(first.try_recv().map(|f| f.timestamp), Some(0));
        assert!(first.try_recv().is_none());

        // The same subscriber subscribes again, then drops its first
        // subscription (a player's transcoder replaced by the same one).
        let mut second = Transcoded::new(shared.clone());
        second.ring_on_send(doorbell.clone());
        drop(first);
        send(20);
        assert_eq!(rings(), 2, "the second subscription still rings it");
        assert_eq!(second.try_recv().map(|f| f.timestamp), Some(20));

        // Subscriptions come and go (a player switching tracks back and
        // forth): what is dropped rings no more, nothing piles up.
        for _ in 0..10 {
            let mut again = Transcoded::new(shared.clone());
            again.ring_on_send(doorbell.clone());
        }
        drop(second);
        send(40);
        assert_eq!(rings(), 2, "no subscription left: no ring");
        assert!(lock(&shared.doorbells).is_empty());
    }
}
