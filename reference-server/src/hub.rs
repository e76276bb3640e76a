//! The hub: one registry of live streams per application.
//!
//! A stream has at most one publisher. Publishing a name in use fails
//! ([`PublishError::BadName`]); the first publisher keeps the stream. Players
//! subscribe by name and get, atomically with their subscription, what a late
//! joiner needs to start cleanly: metadata, codec sequence headers and the
//! current group of pictures from its keyframe. Then live frames arrive through
//! one shared `broadcast` ring per stream: fan-out clones `Bytes`, never copies
//! media. A player that falls behind loses frames, not memory: the ring is
//! bounded, and the player skips to the next keyframe.
//!
//! Publication changes (publisher gone, publisher back) travel on a `watch`
//! channel, so a player learns them even when it lagged on media.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use media::flv;
use tokio::sync::{broadcast, watch, Notify};

use crate::metrics::Metrics;
use crate::rtmp::session::MediaKind;
use crate::warn::RateLimited;

/// One media message as it travels from a publisher to its players.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Audio, video or data.
    pub kind: MediaKind,
    /// Milliseconds.
    pub timestamp: u32,
    /// A video keyframe (where a player may start).
    pub keyframe: bool,
    /// A codec sequence header (decoder configuration), kept for late joiners.
    pub config: bool,
    /// The FLV tag body.
    pub payload: Bytes,
}

impl Frame {
    /// Classifies an RTMP media message.
    pub fn new(kind: MediaKind, timestamp: u32, payload: Bytes) -> Frame {
        let (keyframe, config) = match kind {
            MediaKind::Video => match flv::video_header(&payload) {
                Some(h) if h.is_sequence_header => (h.is_keyframe, true),
                // Trust the flag, but also find H.264 random access points that
                // are not flagged (Flash Player's recovery points).
                Some(h) if h.codec == flv::VideoCodec::Avc => (
                    h.is_keyframe || payload.get(5..).is_some_and(media::h264::is_random_access),
                    false,
                ),
                Some(h) => (h.is_keyframe, false),
                None => (false, false),
            },
            MediaKind::Audio => (false, flv::audio_header(&payload).is_some_and(|h| h.is_sequence_header)),
            MediaKind::Data => (false, false),
        };
        Frame {
            kind,
            timestamp,
            keyframe,
            config,
            payload,
        }
    }
}

/// Whether a stream has a publisher right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publication {
    /// No publisher.
    Idle,
    /// Published; the generation counts publishers of this name since the hub started.
    Live {
        /// Increases with each new publisher.
        generation: u64,
    },
}

/// Why a publish was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// Somebody already publishes this name.
    #[error("{0} is already being published")]
    BadName(String),
}

/// Limits of the hub's buffers.
#[derive(Debug, Clone, Copy)]
pub struct HubLimits {
    /// Frames in each stream's broadcast ring: how far a player may fall behind.
    pub player_queue_frames: usize,
    /// Largest group of pictures kept for late joiners, in bytes; a longer one is dropped.
    pub gop_cache_bytes: usize,
    /// Longest group of pictures kept for late joiners, in media time; a
    /// longer one is dropped, so a late joiner never gets more backlog.
    pub gop_cache_duration: Duration,
}

type Key = (String, String);

/// The registry of streams. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    streams: Arc<Mutex<HashMap<Key, Arc<Stream>>>>,
    limits: HubLimits,
    metrics: Arc<Metrics>,
}

struct Stream {
    key: Key,
    state: Mutex<StreamState>,
    media: broadcast::Sender<Frame>,
    publication: watch::Sender<Publication>,
    /// A player joined or lost pictures: a publisher that can make a
    /// keyframe on request (WebRTC) should make one.
    keyframe_wanted: Notify,
}

#[derive(Default)]
struct StreamState {
    publisher: Option<u64>,
    /// When the current publisher started.
    published_at: Option<Instant>,
    generation: u64,
    players: usize,
    metadata: Option<Frame>,
    /// What the metadata says of the tracks.
    announced: Option<flv::MetadataTracks>,
    audio_config: Option<Frame>,
    video_config: Option<Frame>,
    /// Frames since the last random access point, while `gop_open`.
    gop: Vec<Frame>,
    gop_bytes: usize,
    gop_open: bool,
    /// The timestamp of the cached GOP's first frame.
    gop_start: u32,
    gop_overflow_warning: RateLimited,
    /// Which tracks the current publisher has sent.
    has_audio: bool,
    has_video: bool,
    /// The codec of the last audio frame.
    audio_codec: Option<flv::AudioCodec>,
    /// The codec of the last video frame.
    video_codec: Option<flv::VideoCodec>,
    /// An H.264 picture with a composition offset came: the stream has B-frames.
    video_reorders: bool,
}

impl StreamState {
    fn start_gop(&mut self, timestamp: u32) {
        self.gop.clear();
        self.gop_bytes = 0;
        self.gop_open = true;
        self.gop_start = timestamp;
    }

    /// Caches a frame of the open GOP, or drops the GOP when it grows past
    /// the limits: late joiners then wait for the next keyframe rather than
    /// receive a long backlog.
    fn push_gop(&mut self, frame: Frame, limits: &HubLimits, metrics: &Metrics) {
        self.gop_bytes += frame.payload.len();
        let span = Duration::from_millis(u64::from(frame.timestamp.wrapping_sub(self.gop_start)));
        // A timestamp before the GOP's start (wrapped) is not a long GOP.
        let too_long = span > limits.gop_cache_duration && span < Duration::from_secs(1 << 30);
        if self.gop_bytes > limits.gop_cache_bytes || too_long {
            metrics.gop_cache_overflows.inc();
            if let Some(held_back) = self.gop_overflow_warning.allow(Instant::now()) {
                tracing::warn!(
                    bytes = self.gop_bytes,
                    ms = span.as_millis() as u64,
                    limit_bytes = limits.gop_cache_bytes,
                    limit_ms = limits.gop_cache_duration.as_millis() as u64,
                    held_back,
                    "group of pictures exceeds the cache limit: not cached until the next keyframe"
                );
            }
            self.gop.clear();
            self.gop_bytes = 0;
            self.gop_open = false;
        } else {
            self.gop.push(frame);
        }
    }
}

/// Locks a mutex; a panic elsewhere while holding it leaves the data usable, so
/// poisoning is ignored rather than spread.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Hub {
    /// An empty hub.
    pub fn new(limits: HubLimits, metrics: Arc<Metrics>) -> Hub {
        Hub {
            streams: Arc::default(),
            limits,
            metrics,
        }
    }

    fn stream(&self, app: &str, name: &str) -> Arc<Stream> {
        let key = (app.to_string(), name.to_string());
        let mut streams = lock(&self.streams);
        streams
            .entry(key.clone())
            .or_insert_with(|| {
                let (media, _) = broadcast::channel(self.limits.player_queue_frames.max(16));
                let (publication, _) = watch::channel(Publication::Idle);
                Arc::new(Stream {
                    key,
                    state: Mutex::default(),
                    media,
                    publication,
                    keyframe_wanted: Notify::new(),
                })
            })
            .clone()
    }

    /// Forgets a stream nobody publishes or plays.
    fn release(&self, stream: &Stream) {
        let mut streams = lock(&self.streams);
        let state = lock(&stream.state);
        if state.publisher.is_none() && state.players == 0 {
            streams.remove(&stream.key);
        }
    }

    /// Whether `name` is published in `app` now.
    pub fn is_live(&self, app: &str, name: &str) -> bool {
        let key = (app.to_string(), name.to_string());
        let streams = lock(&self.streams);
        streams.get(&key).is_some_and(|s| lock(&s.state).publisher.is_some())
    }

    /// For a live stream, whether its publisher has sent audio and video so far.
    pub fn tracks(&self, app: &str, name: &str) -> Option<(bool, bool)> {
        let key = (app.to_string(), name.to_string());
        let streams = lock(&self.streams);
        let state = lock(&streams.get(&key)?.state);
        state.publisher.map(|_| (state.has_audio, state.has_video))
    }

    /// What a WebRTC answer needs to know about a live stream: its tracks and
    /// codecs so far. `None` when nobody publishes it.
    pub fn describe(&self, app: &str, name: &str) -> Option<StreamDescription> {
        let key = (app.to_string(), name.to_string());
        let streams = lock(&self.streams);
        let state = lock(&streams.get(&key)?.state);
        state.publisher?;
        Some(StreamDescription {
            published_at: state.published_at.unwrap_or_else(Instant::now),
            announced: state.announced,
            has_audio: state.has_audio,
            has_video: state.has_video,
            audio_codec: state.audio_codec,
            video_codec: state.video_codec,
            video_reorders: state.video_reorders,
            video_config: state.video_config.as_ref().map(|f| f.payload.clone()),
        })
    }

    /// The video sequence header and the cached group of pictures from its
    /// keyframe (video frames only): what a player that lost pictures needs
    /// to decode the current one. Empty when no GOP is cached.
    pub fn keyframe_snapshot(&self, app: &str, name: &str) -> Vec<Frame> {
        let key = (app.to_string(), name.to_string());
        let streams = lock(&self.streams);
        let Some(stream) = streams.get(&key) else {
            return Vec::new();
        };
        let state = lock(&stream.state);
        if !state.gop_open {
            return Vec::new();
        }
        state
            .video_config
            .iter()
            .chain(state.gop.iter().filter(|f| f.kind == MediaKind::Video))
            .cloned()
            .collect()
    }

    /// Asks the publisher of `name` for a keyframe, when it can make one
    /// (a WebRTC publisher; see [`Publisher::keyframe_wanted`]).
    pub fn request_keyframe(&self, app: &str, name: &str) {
        let key = (app.to_string(), name.to_string());
        let streams = lock(&self.streams);
        if let Some(stream) = streams.get(&key) {
            stream.keyframe_wanted.notify_one();
        }
    }

    /// Number of streams with a publisher.
    pub fn live_streams(&self) -> usize {
        let streams = lock(&self.streams);
        streams.values().filter(|s| lock(&s.state).publisher.is_some()).count()
    }

    /// Starts publishing `name` in `app` for the connection `owner`.
    pub fn publish(&self, app: &str, name: &str, owner: u64) -> Result<Publisher, PublishError> {
        let stream = self.stream(app, name);
        {
            let mut state = lock(&stream.state);
            if state.publisher.is_some() {
                drop(state);
                self.release(&stream);
                return Err(PublishError::BadName(name.to_string()));
            }
            state.publisher = Some(owner);
            state.published_at = Some(Instant::now());
            state.generation += 1;
            let generation = state.generation;
            stream.publication.send_replace(Publication::Live { generation });
        }
        Ok(Publisher {
            hub: self.clone(),
            stream,
        })
    }

    /// Subscribes to `name` in `app`. With `wait` false, `None` unless it is live;
    /// with `wait` true the subscription starts idle and media flows once a
    /// publisher arrives.
    pub fn subscribe(&self, app: &str, name: &str, wait: bool) -> Option<Subscription> {
        let stream = self.stream(app, name);
        let mut state = lock(&stream.state);
        if state.publisher.is_none() && !wait {
            drop(state);
            self.release(&stream);
            return None;
        }
        state.players += 1;
        let mut initial = Vec::with_capacity(3 + state.gop.len());
        initial.extend(state.metadata.iter().cloned());
        initial.extend(state.audio_config.iter().cloned());
        initial.extend(state.video_config.iter().cloned());
        initial.extend(state.gop.iter().cloned());
        let media = stream.media.subscribe();
        let publication = stream.publication.subscribe();
        drop(state);
        // A new player starts best at a fresh keyframe.
        stream.keyframe_wanted.notify_one();
        Some(Subscription {
            initial,
            media,
            publication,
            guard: PlayerGuard {
                hub: self.clone(),
                stream,
            },
        })
    }
}

/// A live stream's tracks and codecs, as far as its publisher has sent them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamDescription {
    /// When its publisher started.
    pub published_at: Instant,
    /// What its metadata says of its tracks, if it sent any.
    pub announced: Option<flv::MetadataTracks>,
    /// Audio frames have arrived.
    pub has_audio: bool,
    /// Video frames have arrived.
    pub has_video: bool,
    /// The codec of the last audio frame.
    pub audio_codec: Option<flv::AudioCodec>,
    /// The codec of the last video frame.
    pub video_codec: Option<flv::VideoCodec>,
    /// The H.264 video has B-frames (pictures with a composition offset).
    pub video_reorders: bool,
    /// The video sequence header's FLV body (an AVC decoder configuration record after 5 bytes).
    pub video_config: Option<Bytes>,
}

/// The right to push frames into a stream. Dropping it unpublishes.
pub struct Publisher {
    hub: Hub,
    stream: Arc<Stream>,
}

impl Publisher {
    /// Resolves when a player joined or asked for a keyframe since the last
    /// time it resolved (one pending request is kept while nobody waits).
    pub async fn keyframe_wanted(&self) {
        self.stream.keyframe_wanted.notified().await;
    }

    /// Pushes a frame to every player and into the late-joiner cache.
    pub fn push(&self, frame: Frame) {
        let mut state = lock(&self.stream.state);
        state.has_audio |= frame.kind == MediaKind::Audio;
        state.has_video |= frame.kind == MediaKind::Video;
        match frame.kind {
            MediaKind::Audio => state.audio_codec = flv::audio_header(&frame.payload).map(|h| h.codec),
            MediaKind::Video => {
                state.video_codec = flv::video_header(&frame.payload).map(|h| h.codec);
                state.video_reorders |=
                    !frame.config && flv::composition_offset(&frame.payload).is_some_and(|cts| cts != 0);
            }
            MediaKind::Data => {}
        }
        let limits = &self.hub.limits;
        let metrics = &self.hub.metrics;
        let announced = match frame.kind {
            MediaKind::Data => flv::metadata_tracks(&frame.payload),
            _ => None,
        };
        match frame.kind {
            MediaKind::Data if announced.is_some() => {
                state.metadata = Some(frame.clone());
                state.announced = announced;
            }
            MediaKind::Audio if frame.config => state.audio_config = Some(frame.clone()),
            // A repeated sequence header flagged as a keyframe is where Flash
            // Player's encoder (which sends no intra pictures) marks a refresh:
            // late joiners start there, as they start at a keyframe.
            MediaKind::Video if frame.config => {
                state.video_config = Some(frame.clone());
                if frame.keyframe {
                    state.start_gop(frame.timestamp);
                }
            }
            MediaKind::Video if frame.keyframe => {
                state.start_gop(frame.timestamp);
                state.push_gop(frame.clone(), limits, metrics);
            }
            _ if state.gop_open => state.push_gop(frame.clone(), limits, metrics),
            _ => {}
        }
        // No receivers is fine: nobody plays yet.
        let _ = self.stream.media.send(frame);
        self.hub.metrics.frames_in.inc();
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        {
            let mut state = lock(&self.stream.state);
            state.publisher = None;
            state.published_at = None;
            state.metadata = None;
            state.announced = None;
            state.audio_config = None;
            state.video_config = None;
            state.gop.clear();
            state.gop_bytes = 0;
            state.gop_open = false;
            state.has_audio = false;
            state.has_video = false;
            state.audio_codec = None;
            state.video_codec = None;
            state.video_reorders = false;
            self.stream.publication.send_replace(Publication::Idle);
        }
        self.hub.release(&self.stream);
    }
}

/// A player's view of a stream.
pub struct Subscription {
    /// What to send first: metadata, sequence headers, the current GOP.
    pub initial: Vec<Frame>,
    /// Live frames.
    pub media: broadcast::Receiver<Frame>,
    /// Publication changes.
    pub publication: watch::Receiver<Publication>,
    guard: PlayerGuard,
}

impl Subscription {
    /// The hub's metrics, to count what the player drops.
    pub fn metrics(&self) -> &Metrics {
        &self.guard.hub.metrics
    }
}

struct PlayerGuard {
    hub: Hub,
    stream: Arc<Stream>,
}

impl Drop for PlayerGuard {
    fn drop(&mut self) {
        lock(&self.stream.state).players -= 1;
        self.hub.release(&self.stream);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub() -> Hub {
        Hub::new(
            HubLimits {
                player_queue_frames: 16,
                gop_cache_bytes: 1 << 20,
                gop_cache_duration: Duration::from_secs(5),
            },
            Arc::default(),
        )
    }

    fn video(ts: u32, keyframe: bool) -> Frame {
        Frame::new(
            MediaKind::Video,
            ts,
            Bytes::from(vec![if keyframe { 0x17 } else { 0x27 }, 1, 0, 0, 0]),
        )
    }

    #[test]
    fn second_publisher_is_refused_and_first_keeps_the_stream() {
        let hub = hub();
        let first = hub.publish("app", "s", 1).unwrap();
        assert_eq!(
            hub.publish("app", "s", 2).err(),
            Some(PublishError::BadName("s".into()))
        );
        assert!(hub.is_live("app", "s"));
        assert!(hub.publish("other-app", "s", 2).is_ok(), "names are per application");
        drop(first);
        assert!(!hub.is_live("app", "s"));
        assert!(hub.publish("app", "s", 2).is_ok());
    }

    #[test]
    fn late_joiner_gets_metadata_headers_and_gop_from_the_keyframe() {
        let hub = hub();
        let publisher = hub.publish("app", "s", 1).unwrap();
        let mut meta = Vec::new();
        media::amf::encode_amf0(&media::amf::Value::from("onMetaData"), &mut meta);
        publisher.push(Frame::new(MediaKind::Data, 0, Bytes::from(meta)));
        publisher.push(Frame::new(MediaKind::Video, 0, Bytes::from_static(&[0x17, 0, 0, 0, 0])));
        publisher.push(Frame::new(
            MediaKind::Audio,
            0,
            Bytes::from_static(&[0xAF, 0, 0x12, 0x10]),
        ));
        publisher.push(video(0, true));
        publisher.push(video(40, false));
        publisher.push(video(80, true));
        publisher.push(video(120, false));
        let sub = hub.subscribe("app", "s", false).unwrap();
        let kinds: Vec<_> = sub
            .initial
            .iter()
            .map(|f| (f.kind, f.timestamp, f.config, f.keyframe))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (MediaKind::Data, 0, false, false),
                (MediaKind::Audio, 0, true, false),
                (MediaKind::Video, 0, true, true),
                (MediaKind::Video, 80, false, true),
                (MediaKind::Video, 120, false, false),
            ]
        );
    }

    #[test]
    fn a_gop_longer_than_the_limit_is_not_cached() {
        let hub = hub();
        let publisher = hub.publish("app", "s", 1).unwrap();
        publisher.push(video(0, true));
        for ts in (40..=4960).step_by(40) {
            publisher.push(video(ts, false));
        }
        assert_eq!(
            hub.subscribe("app", "s", false).unwrap().initial.len(),
            125,
            "5 s are kept"
        );
        publisher.push(video(5040, false));
        assert!(
            hub.subscribe("app", "s", false).unwrap().initial.is_empty(),
            "past 5 s: none"
        );
        assert_eq!(hub.metrics.gop_cache_overflows.get(), 1);
        publisher.push(video(5080, true));
        assert_eq!(
            hub.subscribe("app", "s", false).unwrap().initial.len(),
            1,
            "the next keyframe"
        );
    }

    #[tokio::test]
    async fn the_publisher_learns_that_a_keyframe_is_wanted() {
        let hub = hub();
        let publisher = hub.publish("app", "s", 1).unwrap();
        let wanted = || tokio::time::timeout(std::time::Duration::from_millis(50), publisher.keyframe_wanted());
        assert!(wanted().await.is_err(), "nobody plays yet");
        let _player = hub.subscribe("app", "s", false).unwrap();
        assert!(wanted().await.is_ok(), "a player joined");
        assert!(wanted().await.is_err(), "once");
        hub.request_keyframe("app", "s");
        assert!(wanted().await.is_ok(), "a player asked");
    }

    #[test]
    fn metadata_says_which_tracks_come() {
        let hub = hub();
        let publisher = hub.publish("app", "s", 1).unwrap();
        let mut meta = Vec::new();
        media::amf::encode_amf0(&media::amf::Value::from("onMetaData"), &mut meta);
        media::amf::encode_amf0(
            &media::amf::Value::object([("videocodecid", media::amf::Value::Number(7.0))]),
            &mut meta,
        );
        publisher.push(Frame::new(MediaKind::Data, 0, Bytes::from(meta)));
        let described = hub.describe("app", "s").unwrap();
        assert_eq!(described.announced.and_then(|a| a.video), Some(true));
        assert!(!described.has_video);
    }

    #[test]
    fn players_see_unpublish_and_republish_and_streams_are_forgotten() {
        let hub = hub();
        assert!(hub.subscribe("app", "s", false).is_none());
        let mut sub = hub.subscribe("app", "s", true).unwrap();
        assert_eq!(*sub.publication.borrow_and_update(), Publication::Idle);
        let publisher = hub.publish("app", "s", 1).unwrap();
        assert!(matches!(*sub.publication.borrow_and_update(), Publication::Live { .. }));
        publisher.push(video(0, true));
        assert_eq!(sub.media.try_recv().unwrap().timestamp, 0);
        drop(publisher);
        assert_eq!(*sub.publication.borrow_and_update(), Publication::Idle);
        drop(sub);
        assert!(lock(&hub.streams).is_empty());
    }
}
