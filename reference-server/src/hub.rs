//! The hub: one registry of live streams per application.
//!
//! A stream has at most one publisher. Publishing a name in use fails
//! ([`PublishError::BadName`]); the first publisher keeps the stream, unless it
//! has sent nothing for [`HubLimits::silent_publisher_takeover`]: then the new
//! publisher takes the name over (an encoder reconnecting while its old
//! connection is half-open), and the old one's frames are refused. Players
//! subscribe by name and get, atomically with their subscription, what a late
//! joiner needs to start cleanly: metadata, codec sequence headers and the
//! current group of pictures from its keyframe. Then live frames arrive through
//! one shared `broadcast` ring per stream: fan-out clones `Bytes`, never copies
//! media. A player that falls behind loses frames, not memory: the ring is
//! bounded, and the player skips to the next keyframe. A second ring carries
//! the same without most of the sound, for players whose sound a transcoder
//! makes: a ring wakes every subscriber for every frame it carries.
//!
//! Publication changes (publisher gone, publisher back) travel on a `watch`
//! channel, so a player learns them even when it lagged on media.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use media::flv;
use tokio::sync::{broadcast, watch, Notify};

use crate::continuity::Continuity;
pub use crate::frame::{Frame, MediaKind};
use crate::metrics::{Counter, Metrics};
use crate::text::Clipped;
use crate::warn::RateLimited;
use media::rtmp::url::Params;

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

/// Limits of the hub's buffers, and when a silent publisher is taken over.
#[derive(Debug, Clone, Copy)]
pub struct HubLimits {
    /// Frames in each stream's broadcast ring: how far a player may fall behind.
    pub player_queue_frames: usize,
    /// Largest group of pictures kept for late joiners, in bytes; a longer one is dropped.
    pub gop_cache_bytes: usize,
    /// Longest group of pictures kept for late joiners, in media time; a
    /// longer one is dropped, so a late joiner never gets more backlog.
    pub gop_cache_duration: Duration,
    /// A publisher that has pushed nothing for this long loses its name to
    /// the next publisher of it; zero: never.
    pub silent_publisher_takeover: Duration,
    /// A live stream whose publisher has pushed nothing for this long is
    /// dry: its subscribers are told once ([`Delivery::Dry`]), until its
    /// next frame; zero: never.
    pub stream_dry_after: Duration,
}

type Key = (String, String);

/// What a stream's ring carries: its frames, and a marker where its
/// publication changed (read then from the stream's `watch`). Subscribers
/// wait on the ring alone: one wake per frame, and no waiter to register
/// on the publication per frame (with thousands of players on a stream,
/// each registration is a lock all of them share).
#[derive(Clone)]
enum Item {
    Frame(Frame),
    PublicationChanged,
    /// The publisher has sent nothing for `stream_dry_after`.
    Dry,
}

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
    /// Frames, and a marker after each publication change, in order.
    media: broadcast::Sender<Item>,
    /// The same without most of the sound: a sound frame goes here only
    /// when it is a sequence header or its codec is not the last one's. A
    /// player whose sound comes from a transcoder takes this ring, so the
    /// stream's own sound does not wake it for every frame (it needs only
    /// to see the codec change, when a new publisher comes).
    soundless: broadcast::Sender<Item>,
    publication: watch::Sender<Publication>,
    /// A player joined or lost pictures: a publisher that can make a
    /// keyframe on request (WebRTC) should make one.
    keyframe_wanted: Notify,
    /// The subscriptions the thread that sends an item delivers at once
    /// (see [`Subscription::drive`]).
    fanout: Mutex<Fanout>,
    /// Seats filled since the last pump, taken in by the next.
    joining: Mutex<Vec<Arc<Seat>>>,
}

impl Stream {
    /// Sends `item` to every subscriber of the ring with sound, and to
    /// those of the ring without (if any) when `soundless`. Called with
    /// the stream's state locked: a subscriber changing rings sees the
    /// items in order. No receivers is fine: nobody plays yet.
    fn send(&self, item: Item, soundless: bool) {
        if soundless && self.soundless.receiver_count() > 0 {
            let _ = self.soundless.send(item.clone());
        }
        let _ = self.media.send(item);
    }

    /// Delivers what the rings hold to every driven subscription, through
    /// its sink; a subscription its sink gives back leaves the fan-out.
    /// Called after each send, with the stream's state unlocked: a pump
    /// writes to every driven player before it returns.
    fn pump(&self) {
        // WebRTC players' datagrams go out together when the pump is done.
        let _sends = crate::webrtc::udp::hold();
        loop {
            {
                let mut fanout = lock(&self.fanout);
                let Fanout { seats, made } = &mut *fanout;
                let mut from = 0;
                loop {
                    // Seats filled meanwhile are pumped too (they may hold items).
                    seats.append(&mut lock(&self.joining));
                    if from == seats.len() {
                        break;
                    }
                    let mut at = from;
                    while at < seats.len() {
                        if seats[at].pump(made) {
                            at += 1;
                        } else {
                            seats.swap_remove(at);
                        }
                    }
                    from = seats.len();
                }
                // What was made is not kept until the next frame.
                made.clear();
            }
            // A seat filled after the last look, whose `try_pump` found
            // this pump under way, is pumped now.
            if lock(&self.joining).is_empty() {
                return;
            }
        }
    }

    /// Pumps now unless a pump is under way: that one looks at the
    /// joining seats once more after it lets go of the fan-out.
    fn try_pump(&self) {
        let busy = matches!(self.fanout.try_lock(), Err(std::sync::TryLockError::WouldBlock));
        if !busy {
            self.pump();
        }
    }
}

/// A stream's driven subscriptions and what their sinks made of the item
/// being delivered.
#[derive(Default)]
struct Fanout {
    seats: Vec<Arc<Seat>>,
    made: Made,
}

/// What a sink makes of a frame (an RTMP player's chunks, say), made once
/// per pump for all the sinks that make the same: keyed by the frame (its
/// payload, kept so that its address stays its own, its kind and
/// timestamp) and a variant the sink names (the player's message stream
/// id).
#[derive(Default)]
pub struct Made {
    made: Vec<(Bytes, MediaKind, u32, u32, Bytes)>,
}

impl Made {
    /// What `make` makes of `frame` for `variant`, made once per pump.
    pub fn get_or_make(&mut self, frame: &Frame, variant: u32, make: impl FnOnce() -> Bytes) -> Bytes {
        let same = |(payload, kind, timestamp, v, _): &&(Bytes, MediaKind, u32, u32, Bytes)| {
            payload.as_ptr() == frame.payload.as_ptr()
                && payload.len() == frame.payload.len()
                && *kind == frame.kind
                && *timestamp == frame.timestamp
                && *v == variant
        };
        if let Some((.., bytes)) = self.made.iter().find(same) {
            return bytes.clone();
        }
        let bytes = make();
        self.made.push((
            frame.payload.clone(),
            frame.kind,
            frame.timestamp,
            variant,
            bytes.clone(),
        ));
        bytes
    }

    fn clear(&mut self) {
        self.made.clear();
    }
}

/// What a [`Sink`] did with a delivery.
#[derive(Debug)]
pub enum Take {
    /// Delivered; more may come.
    Taken,
    /// Delivered, but the sink takes no more: the subscription goes back.
    TakenLast,
    /// Not delivered: the subscription goes back with it, delivered first.
    Refused(Delivery),
}

/// Where a driven subscription's deliveries go: the player's socket, written
/// from the thread that sent the item, without waking the player's task.
pub trait Sink: Send {
    /// Delivers `delivery` (from `subscription`, whose choice of tracks
    /// and sound it may change as it does), or refuses it.
    fn take(&mut self, delivery: Delivery, made: &mut Made, subscription: &mut Subscription) -> Take;
    /// Gives the subscription back to its player, with what it refused.
    fn give_back(self: Box<Self>, subscription: Subscription, refused: Option<Delivery>);
}

/// A play's place in its stream's fan-out: empty, or holding its driven
/// subscription and sink. The player keeps it, to take its subscription
/// back at any time ([`Seat::recall`]).
#[derive(Default)]
pub struct Seat {
    inner: Mutex<SeatInner>,
}

#[derive(Default)]
struct SeatInner {
    driven: Option<(Subscription, Box<dyn Sink>)>,
    /// In a stream's fan-out (or joining it).
    listed: bool,
}

impl Seat {
    /// Gives the driven subscription back to its sink's player, if it is
    /// still driven: once this returns, its sink takes nothing more.
    pub fn recall(&self) {
        let mut inner = lock(&self.inner);
        if let Some((subscription, sink)) = inner.driven.take() {
            sink.give_back(subscription, None);
        }
    }

    /// Runs `f` on the driven subscription (`None` when there is none),
    /// while nothing is delivered from this seat: what it changes applies
    /// from the next delivery on.
    pub fn with_driven<R>(&self, f: impl FnOnce(Option<&mut Subscription>) -> R) -> R {
        let mut inner = lock(&self.inner);
        f(inner.driven.as_mut().map(|(subscription, _)| subscription))
    }

    /// Whether a subscription is driven from this seat.
    pub fn is_driven(&self) -> bool {
        lock(&self.inner).driven.is_some()
    }

    /// Delivers what the subscription has to its sink; false once the seat
    /// is empty (it leaves the stream's list).
    fn pump(&self, made: &mut Made) -> bool {
        let mut inner = lock(&self.inner);
        let Some((subscription, sink)) = inner.driven.as_mut() else {
            inner.listed = false;
            return false;
        };
        let refused = loop {
            let Some(delivery) = subscription.try_next() else {
                return true;
            };
            match sink.take(delivery, made, subscription) {
                Take::Taken => {}
                Take::TakenLast => break None,
                Take::Refused(delivery) => break Some(delivery),
            }
        };
        inner.listed = false;
        if let Some((subscription, sink)) = inner.driven.take() {
            sink.give_back(subscription, refused);
        }
        false
    }
}

#[derive(Default)]
struct StreamState {
    publisher: Option<u64>,
    /// When the current publisher started.
    published_at: Option<Instant>,
    /// When the current publisher started or last pushed a frame.
    last_heard: Option<Instant>,
    /// Subscribers were told the stream is dry, and no frame came since.
    dry: bool,
    generation: u64,
    /// Subscriptions, the server's own (transcoders) included.
    players: usize,
    /// The subscriptions of RTMP and WebRTC players (see
    /// [`Subscription::count_as_viewer`]).
    viewers: usize,
    metadata: Option<Frame>,
    /// What the metadata says of the tracks.
    announced: Option<flv::MetadataTracks>,
    /// The latest sequence header of each audio and video track (by
    /// [`Frame::track`]), for late joiners.
    audio_configs: Vec<Frame>,
    video_configs: Vec<Frame>,
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
    /// The current publisher's timestamps, kept going forward.
    continuity: Continuity,
    /// Bytes of pictures received per video track (the WHEP `layers`
    /// event's bitrates).
    video_bytes: std::collections::BTreeMap<u8, u64>,
    /// The picture size of each VP8 and VP9 track's latest keyframe (their
    /// sequence headers do not give it).
    keyframe_sizes: std::collections::BTreeMap<u8, (u32, u32)>,
}

impl StreamState {
    /// Forgets the publisher and what it sent; the stream's generation,
    /// its players and its warnings' pace stay.
    fn unpublished(&mut self) {
        *self = StreamState {
            generation: self.generation,
            players: self.players,
            viewers: self.viewers,
            gop_overflow_warning: std::mem::take(&mut self.gop_overflow_warning),
            ..StreamState::default()
        };
    }

    /// Counts a picture of video `track`, and keeps the size a VP8 or VP9
    /// keyframe gives.
    fn count_picture(&mut self, track: u8, picture: &Frame) {
        use media::eflv::FourCc;
        *self.video_bytes.entry(track).or_default() += picture.payload.len() as u64;
        if picture.keyframe && !picture.config {
            let codec = picture.enhanced.as_ref().map(|e| e.fourcc);
            if let (Some(fourcc @ (FourCc::VP8 | FourCc::VP9)), Some(data)) = (codec, picture.data()) {
                if let Some(size) = media::eflv::bitstream::keyframe_size(fourcc, data) {
                    self.keyframe_sizes.insert(track, size);
                }
            }
        }
    }

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
        self.gop_bytes += frame.memory();
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

/// Keeps `frame` as its track's latest sequence header in `configs`.
fn keep_config(configs: &mut Vec<Frame>, frame: &Frame) {
    let track = frame.track();
    match configs.iter_mut().find(|c| c.track() == track) {
        Some(kept) => *kept = frame.clone(),
        // At most one per track id: 256.
        None => configs.push(frame.clone()),
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
                let (soundless, _) = broadcast::channel(self.limits.player_queue_frames.max(16));
                let (publication, _) = watch::channel(Publication::Idle);
                Arc::new(Stream {
                    key,
                    state: Mutex::default(),
                    media,
                    soundless,
                    publication,
                    keyframe_wanted: Notify::new(),
                    fanout: Mutex::default(),
                    joining: Mutex::default(),
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

    /// Whether a publish of `name` in `app` would be refused now: it is
    /// published, by a publisher that has not been silent long enough to
    /// be taken over.
    pub fn name_taken(&self, app: &str, name: &str) -> bool {
        let key = (app.to_string(), name.to_string());
        let streams = lock(&self.streams);
        streams
            .get(&key)
            .is_some_and(|s| self.held(&lock(&s.state), Instant::now()).is_some())
    }

    /// `None` when nobody publishes the stream of `state` or its publisher
    /// has been silent long enough to be taken over; else since when it is
    /// silent.
    fn held(&self, state: &StreamState, now: Instant) -> Option<Duration> {
        state.publisher?;
        let silent = now.saturating_duration_since(state.last_heard.unwrap_or(now));
        let takeover = self.limits.silent_publisher_takeover;
        (takeover.is_zero() || silent < takeover).then_some(silent)
    }

    /// Whether `name` in `app` is published, and each change from now on;
    /// `None` for a stream nobody publishes or plays.
    pub fn watch_publication(&self, app: &str, name: &str) -> Option<watch::Receiver<Publication>> {
        let key = (app.to_string(), name.to_string());
        lock(&self.streams).get(&key).map(|s| s.publication.subscribe())
    }

    /// How many viewers (RTMP and WebRTC players) `name` in `app` has now.
    pub fn viewer_count(&self, app: &str, name: &str) -> usize {
        let key = (app.to_string(), name.to_string());
        lock(&self.streams).get(&key).map_or(0, |s| lock(&s.state).viewers)
    }

    /// For a live stream, whether its publisher has sent audio and video so far.
    pub fn tracks(&self, app: &str, name: &str) -> Option<(bool, bool)> {
        let key = (app.to_string(), name.to_string());
        let streams = lock(&self.streams);
        let state = lock(&streams.get(&key)?.state);
        state.publisher.map(|_| (state.has_audio, state.has_video))
    }

    /// Marks dry every live stream whose publisher has pushed nothing for
    /// `stream_dry_after` by `now` and is not marked yet: its subscribers
    /// get [`Delivery::Dry`] once, until its next frame. Returns how many
    /// were marked. (The server calls it every second.)
    pub fn mark_dry(&self, now: Instant) -> usize {
        let after = self.limits.stream_dry_after;
        if after.is_zero() {
            return 0;
        }
        let streams: Vec<Arc<Stream>> = lock(&self.streams).values().cloned().collect();
        let mut marked = 0;
        for stream in streams {
            let mut state = lock(&stream.state);
            let silent = state
                .last_heard
                .is_some_and(|heard| now.saturating_duration_since(heard) >= after);
            if state.publisher.is_some() && silent && !state.dry {
                state.dry = true;
                stream.send(Item::Dry, true);
                drop(state);
                stream.pump();
                marked += 1;
            }
        }
        marked
    }

    /// What a WebRTC answer needs to know about a live stream: its tracks and
    /// codecs so far. `None` when nobody publishes it.
    pub fn describe(&self, app: &str, name: &str) -> Option<StreamDescription> {
        self.describe_for(app, name, Selection::default())
    }

    /// [`Hub::describe`] for a player of the tracks `selection` names: the
    /// codec and configuration record are its video track's.
    pub fn describe_for(&self, app: &str, name: &str, selection: Selection) -> Option<StreamDescription> {
        let key = (app.to_string(), name.to_string());
        let streams = lock(&self.streams);
        let state = lock(&streams.get(&key)?.state);
        state.publisher?;
        // The sequence header of the video track the player takes.
        let config = state.video_configs.iter().rev().find_map(|f| selection.pick(f.clone()));
        Some(StreamDescription {
            published_at: state.published_at.unwrap_or_else(Instant::now),
            announced: state.announced,
            has_audio: state.has_audio,
            has_video: state.has_video,
            audio_codec: state.audio_codec,
            video_reorders: state.video_reorders,
            video_config: config.as_ref().and_then(|f| Some(f.payload.slice_ref(f.data()?))),
            video_codec: config.as_ref().and_then(Frame::video_codec).or(state.video_codec),
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
            .video_configs
            .iter()
            .chain(state.gop.iter().filter(|f| f.kind == MediaKind::Video))
            .cloned()
            .collect()
    }

    /// The video tracks of `name` in `app` as it is published: each track's
    /// id, the bytes of pictures received on it so far, and its picture size
    /// when its sequence header tells it (H.264, HEVC, AV1) or, for VP8 and
    /// VP9, its latest keyframe.
    pub fn video_layers(&self, app: &str, name: &str) -> Vec<VideoLayer> {
        let key = (app.to_string(), name.to_string());
        let streams = lock(&self.streams);
        let Some(stream) = streams.get(&key) else {
            return Vec::new();
        };
        let state = lock(&stream.state);
        state
            .video_bytes
            .iter()
            .map(|(&track, &bytes)| {
                let selection = Selection {
                    video: Some(track),
                    audio: None,
                };
                let size = state
                    .video_configs
                    .iter()
                    .rev()
                    .find_map(|f| selection.pick(f.clone()))
                    .and_then(|config| picture_size(&config))
                    .or_else(|| state.keyframe_sizes.get(&track).copied());
                VideoLayer { track, bytes, size }
            })
            .collect()
    }

    /// The latest sequence header of each video track of `name` in `app`.
    pub fn video_configs(&self, app: &str, name: &str) -> Vec<Frame> {
        let key = (app.to_string(), name.to_string());
        let streams = lock(&self.streams);
        streams
            .get(&key)
            .map(|stream| lock(&stream.state).video_configs.clone())
            .unwrap_or_default()
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
            let now = Instant::now();
            if self.held(&state, now).is_some() {
                drop(state);
                self.release(&stream);
                return Err(PublishError::BadName(name.to_string()));
            }
            if let Some(previous) = state.publisher {
                let silent = now.saturating_duration_since(state.last_heard.unwrap_or(now));
                tracing::info!(
                    stream = %crate::text::Clipped(name),
                    previous,
                    silent_ms = silent.as_millis() as u64,
                    "publisher taken over: the previous one has sent nothing for too long"
                );
                self.metrics.publishers_taken_over.inc();
                state.unpublished();
                stream.publication.send_replace(Publication::Idle);
                stream.send(Item::PublicationChanged, true);
            }
            state.publisher = Some(owner);
            state.published_at = Some(now);
            state.last_heard = Some(now);
            state.dry = false;
            state.continuity = Continuity::default();
            state.generation += 1;
            let generation = state.generation;
            stream.publication.send_replace(Publication::Live { generation });
            stream.send(Item::PublicationChanged, true);
        }
        stream.pump();
        let generation = lock(&stream.state).generation;
        Ok(Publisher {
            hub: self.clone(),
            stream,
            generation,
            restamp_jumps: true,
        })
    }

    /// Subscribes to the `tracks` of `name` in `app`. With `wait` false,
    /// `None` unless it is live; with `wait` true the subscription starts
    /// idle and media flows once a publisher arrives.
    pub fn subscribe(&self, app: &str, name: &str, wait: bool, tracks: Tracks) -> Option<Subscription> {
        let stream = self.stream(app, name);
        let mut state = lock(&stream.state);
        if state.publisher.is_none() && !wait {
            drop(state);
            self.release(&stream);
            return None;
        }
        state.players += 1;
        let mut cached = Vec::with_capacity(3 + state.gop.len());
        cached.extend(state.metadata.iter().cloned());
        cached.extend(state.audio_configs.iter().cloned());
        cached.extend(state.video_configs.iter().cloned());
        cached.extend(state.gop.iter().cloned());
        let media = stream.media.subscribe();
        let mut publication = stream.publication.subscribe();
        let seen = *publication.borrow_and_update();
        drop(state);
        // A new player starts best at a fresh keyframe.
        stream.keyframe_wanted.notify_one();
        Some(Subscription {
            cached: cached.into_iter(),
            media,
            sound: true,
            switched: std::collections::VecDeque::new(),
            publication,
            seen,
            pending: None,
            selection: Selection::default(),
            gate: Gate::new(tracks),
            lag_warning: RateLimited::default(),
            guard: PlayerGuard {
                hub: self.clone(),
                stream,
                viewer: false,
            },
        })
    }
}

/// A video track of a stream, as [`Hub::video_layers`] tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoLayer {
    /// The track id (0 for a stream that is not multitrack).
    pub track: u8,
    /// Bytes of pictures received on it.
    pub bytes: u64,
    /// Width and height, when its sequence header tells them.
    pub size: Option<(u32, u32)>,
}

/// The picture size a sequence header gives: an H.264 or HEVC SPS, an AV1
/// sequence header (VP8 and VP9 records say nothing of it).
fn picture_size(config: &Frame) -> Option<(u32, u32)> {
    match config.video_codec()? {
        flv::VideoCodec::Avc => {
            let record = media::h264::AvcConfig::parse(config.data()?).ok()?;
            let sps = media::h264::SpsInfo::parse(record.sps.first()?)?;
            Some((sps.width, sps.height))
        }
        codec => media::eflv::bitstream::picture_size(codec.fourcc()?, config.data()?),
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
    /// The decoder configuration record of the video track the player
    /// takes (an AVCDecoderConfigurationRecord, an HEVC, AV1 or VP codec
    /// configuration record).
    pub video_config: Option<Bytes>,
}

/// The right to push frames into a stream. Dropping it unpublishes.
pub struct Publisher {
    hub: Hub,
    stream: Arc<Stream>,
    /// The stream's generation it publishes: another one took it over.
    generation: u64,
    /// Whether a jump of the timestamps is restamped ([`Continuity`]).
    restamp_jumps: bool,
}

/// A publisher's frame was refused: another publisher took its stream over
/// after it had been silent (see [`HubLimits::silent_publisher_takeover`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the stream was taken over by a new publisher while this one was silent")]
pub struct TakenOver;

/// A publisher's keyframe requests, awaited apart from the publisher.
pub struct KeyframeRequests(Arc<Stream>);

impl KeyframeRequests {
    /// Resolves as [`Publisher::keyframe_wanted`] does.
    pub async fn wanted(&self) {
        self.0.keyframe_wanted.notified().await;
    }
}

impl Publisher {
    /// Passes the publisher's timestamps on as they come, jumps included
    /// (the `timestamp_jumps_passed_on` quirk).
    pub fn pass_timestamp_jumps_on(&mut self) {
        self.restamp_jumps = false;
    }

    /// Resolves when a player joined or asked for a keyframe since the last
    /// time it resolved (one pending request is kept while nobody waits).
    pub async fn keyframe_wanted(&self) {
        self.stream.keyframe_wanted.notified().await;
    }

    /// What [`Publisher::keyframe_wanted`] waits on, to be awaited apart
    /// from the publisher.
    pub fn keyframe_requests(&self) -> KeyframeRequests {
        KeyframeRequests(self.stream.clone())
    }

    /// Pushes a frame to every player and into the late-joiner cache. A
    /// picture or sound after the publisher's timestamps jumped back or
    /// leapt ahead is restamped to go on from the latest, and sequence
    /// headers with it (see [`Continuity`]); data messages keep theirs.
    /// Refused once another publisher took the stream over.
    pub fn push(&self, mut frame: Frame) -> Result<(), TakenOver> {
        let mut state = lock(&self.stream.state);
        if state.generation != self.generation {
            return Err(TakenOver);
        }
        let now = Instant::now();
        state.last_heard = Some(now);
        state.dry = false;
        if self.restamp_jumps && frame.kind != MediaKind::Data {
            let video = frame.kind == MediaKind::Video;
            frame.timestamp = match frame.config {
                true => state.continuity.restamp_config(video, frame.timestamp, now),
                false => state.continuity.restamp(video, frame.timestamp, now),
            };
        }
        state.has_audio |= frame.kind == MediaKind::Audio;
        state.has_video |= frame.kind == MediaKind::Video;
        let sound_changes =
            frame.kind == MediaKind::Audio && (frame.config || state.audio_codec != frame.audio_codec());
        match frame.kind {
            MediaKind::Audio => state.audio_codec = frame.audio_codec(),
            MediaKind::Video => {
                state.video_codec = frame.video_codec();
                state.video_reorders |= frame.reorders();
                match frame.enhanced.as_ref().and_then(|e| e.tracks.as_ref()) {
                    Some(tracks) => {
                        for (track, alone) in tracks.iter() {
                            state.count_picture(*track, alone);
                        }
                    }
                    None => state.count_picture(frame.track(), &frame),
                }
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
            MediaKind::Audio if frame.config => keep_config(&mut state.audio_configs, &frame),
            // A sequence header is no picture, though flagged as a keyframe
            // (and Flash Player repeats it between its keyframes): pictures
            // start at a keyframe that is one.
            MediaKind::Video if frame.config => keep_config(&mut state.video_configs, &frame),
            // The cached group of pictures starts at the main track's keyframe.
            MediaKind::Video if frame.keyframe && frame.track() == 0 => {
                state.start_gop(frame.timestamp);
                state.push_gop(frame.clone(), limits, metrics);
            }
            _ if state.gop_open => state.push_gop(frame.clone(), limits, metrics),
            _ => {}
        }
        let soundless = frame.kind != MediaKind::Audio || sound_changes;
        self.stream.send(Item::Frame(frame), soundless);
        drop(state);
        self.stream.pump();
        self.hub.metrics.frames_in.inc();
        Ok(())
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        {
            let mut state = lock(&self.stream.state);
            // Taken over: the stream is the new publisher's.
            if state.generation == self.generation {
                state.unpublished();
                self.stream.publication.send_replace(Publication::Idle);
                self.stream.send(Item::PublicationChanged, true);
            }
        }
        self.stream.pump();
        self.hub.release(&self.stream);
    }
}

/// Which tracks a subscriber takes; it also says whose losses they are
/// in `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tracks {
    /// Everything: a player (`player_frames_dropped_total`).
    All,
    /// Sound only: an audio transcoder (`audio_transcode_frames_dropped_total`).
    Audio,
    /// Pictures only: a video transcoder (`video_transcode_frames_dropped_total`).
    Video,
}

impl Tracks {
    fn lost(self, metrics: &Metrics) -> &Counter {
        match self {
            Tracks::All => &metrics.player_frames_dropped,
            Tracks::Audio => &metrics.audio_transcode_dropped,
            Tracks::Video => &metrics.video_transcode_dropped,
        }
    }
}

/// The one policy every consumer of frames follows, sans-IO: which of the
/// frames that reach it it passes on. It takes its tracks only; pictures
/// start at a keyframe, and after frames were lost (a subscriber that fell
/// behind, a codec queue that was full) or a new publisher started, they
/// resume at the next one. Decoder configurations always pass (a decoder
/// needs the latest), and open nothing: a decoder cannot start at the
/// inter pictures that may follow one. Sound and data are never held back.
#[derive(Debug, Clone)]
pub struct Gate {
    tracks: Tracks,
    skipping: bool,
}

impl Gate {
    /// A gate that waits for a keyframe first.
    pub fn new(tracks: Tracks) -> Gate {
        Gate { tracks, skipping: true }
    }

    /// Frames were lost: pictures resume at the next keyframe.
    pub fn resync(&mut self) {
        self.skipping = true;
    }

    /// Whether pictures are held back until the next keyframe.
    pub fn skipping(&self) -> bool {
        self.skipping
    }

    /// Whether `frame` goes on.
    pub fn admit(&mut self, frame: &Frame) -> bool {
        let wanted = match self.tracks {
            Tracks::All => true,
            Tracks::Audio => frame.kind == MediaKind::Audio,
            Tracks::Video => frame.kind == MediaKind::Video,
        };
        if !wanted || frame.kind != MediaKind::Video || !self.skipping {
            return wanted;
        }
        if frame.keyframe && !frame.config {
            self.skipping = false;
        }
        frame.keyframe || frame.config
    }
}

/// What a subscription delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// A frame, as the subscription's [`Gate`] lets it through.
    Frame(Frame),
    /// The stream's publisher has sent nothing for the hub's
    /// `stream_dry_after` (RTMP's StreamDry); frames may follow.
    Dry,
    /// The stream got (true) or lost (false) its publisher. A new
    /// publisher that replaced one unseen comes as false, then true.
    Publication(bool),
}

/// Which track of a multitrack stream (Enhanced RTMP) a subscriber takes,
/// for pictures and for sound. `None` takes every message whole (an RTMP
/// player that announced multitrack); `Some(n)` takes track `n` alone, a
/// frame that is not multitrack counting as track 0. Players that cannot
/// take multitrack messages use [`Selection::single`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Selection {
    /// The video track id.
    pub video: Option<u8>,
    /// The audio track id.
    pub audio: Option<u8>,
}

impl Selection {
    /// A player's choice, from the `video_track` and `audio_track`
    /// parameters of its stream name (or WHEP URL); a value that is not a
    /// track id (0 to 255) is an error naming it.
    pub fn from_params(params: &Params) -> Result<Selection, String> {
        let track = |key: &str| -> Result<Option<u8>, String> {
            params
                .get(key)
                .map(|value| {
                    value
                        .parse::<u8>()
                        .map_err(|_| format!("parameter {key}={}: a track id from 0 to 255 expected", Clipped(value)))
                })
                .transpose()
        };
        Ok(Selection {
            video: track("video_track")?,
            audio: track("audio_track")?,
        })
    }

    /// This selection, or the default (the main tracks) when `ignored`.
    pub fn unless(self, ignored: bool) -> Selection {
        if ignored {
            Selection::default()
        } else {
            self
        }
    }

    /// For a player that takes one track of each kind: track 0 where this
    /// selection names none.
    pub fn single(self) -> Selection {
        Selection {
            video: self.video.or(Some(0)),
            audio: self.audio.or(Some(0)),
        }
    }

    /// What of this selection matters to a transcoder of `kind`'s frames:
    /// the other kind's track does not.
    pub fn of(self, kind: MediaKind) -> Selection {
        match kind {
            MediaKind::Video => Selection { audio: None, ..self },
            MediaKind::Audio => Selection { video: None, ..self },
            MediaKind::Data => self,
        }
    }

    /// `frame` as this selection takes it: of a multitrack message, the
    /// selected track alone, or nothing when the message does not carry it;
    /// any other frame as it is.
    pub fn pick(&self, frame: Frame) -> Option<Frame> {
        let wanted = match frame.kind {
            MediaKind::Video => self.video,
            MediaKind::Audio => self.audio,
            MediaKind::Data => None,
        };
        let Some(id) = wanted else {
            return Some(frame);
        };
        match frame.enhanced.as_ref().and_then(|e| e.tracks.as_ref()) {
            Some(tracks) => tracks
                .iter()
                .find(|(track, _)| *track == id)
                .map(|(_, alone)| alone.clone()),
            // A frame that is not multitrack is track 0 (as OBS sends its
            // first track, the others in one-track messages).
            None => (id == 0).then_some(frame),
        }
    }
}

/// A subscriber's view of a stream: first what a late joiner needs
/// (metadata, sequence headers, the cached group of pictures), then live
/// frames and publication changes, through one [`Gate`]. A subscriber that
/// falls a whole ring behind loses frames, counted in `/metrics` and
/// logged, and its pictures resume at the next keyframe.
pub struct Subscription {
    cached: std::vec::IntoIter<Frame>,
    media: broadcast::Receiver<Item>,
    /// Whether `media` is the ring with sound (see [`Subscription::take_sound`]).
    sound: bool,
    /// What the ring it left still held, delivered before the new ring's.
    switched: std::collections::VecDeque<Item>,
    publication: watch::Receiver<Publication>,
    /// The publication last delivered (or found when subscribing).
    seen: Publication,
    /// A publication change still to deliver.
    pending: Option<bool>,
    /// The tracks of a multitrack stream it takes.
    selection: Selection,
    gate: Gate,
    lag_warning: RateLimited,
    guard: PlayerGuard,
}

impl Subscription {
    /// Counts this subscription among the stream's viewers (an RTMP or
    /// WebRTC player, not the server's own transcoder).
    pub fn count_as_viewer(&mut self) {
        if !self.guard.viewer {
            self.guard.viewer = true;
            lock(&self.guard.stream.state).viewers += 1;
        }
    }

    /// Whether the stream had a publisher when the last publication change
    /// was delivered, or, before any, when it was subscribed to.
    pub fn is_live(&self) -> bool {
        matches!(self.seen, Publication::Live { .. })
    }

    /// The next of the cached frames a late joiner starts with, without
    /// waiting; `None` once they are all delivered.
    pub fn next_cached(&mut self) -> Option<Frame> {
        let (gate, selection) = (&mut self.gate, self.selection);
        let next = self
            .cached
            .by_ref()
            .filter_map(|frame| selection.pick(frame))
            .find(|frame| gate.admit(frame));
        if next.is_none() && self.cached.as_slice().is_empty() {
            // The list's room (a frame's worth for each frame of a group
            // of pictures) is not kept for the rest of the play.
            self.cached = Vec::new().into_iter();
        }
        next
    }

    /// Whether the stream's sound comes to this subscriber (it does at
    /// first). Without it, a subscriber (a player whose sound a transcoder
    /// makes) still gets sound sequence headers and the first sound frame
    /// of each codec, to see the codec change, and is not woken by every
    /// other sound frame. Nothing else is lost or repeated in the change;
    /// sound frames pushed while it was without are not delivered.
    pub fn take_sound(&mut self, sound: bool) {
        if sound == self.sound {
            return;
        }
        let stream = self.guard.stream.clone();
        // Under the lock every push takes: no item is sent meanwhile.
        let _state = lock(&stream.state);
        loop {
            match self.media.try_recv() {
                Ok(item) => self.switched.push_back(item),
                Err(broadcast::error::TryRecvError::Lagged(lost)) => self.lagged(lost),
                Err(_) => break,
            }
        }
        self.media = match sound {
            true => stream.media.subscribe(),
            false => stream.soundless.subscribe(),
        };
        self.sound = sound;
    }

    /// Takes the tracks `selection` names of a multitrack stream from now on.
    pub fn select(&mut self, selection: Selection) {
        self.selection = selection;
    }

    /// The next delivery: cached frames first, then publication changes and
    /// live frames. `None` once the stream's ring is gone (the hub dropped).
    pub async fn next(&mut self) -> Option<Delivery> {
        if let Some(frame) = self.next_cached() {
            return Some(Delivery::Frame(frame));
        }
        loop {
            if let Some(delivery) = self.change()? {
                return Some(delivery);
            }
            let item = match self.switched.pop_front() {
                Some(item) => Ok(item),
                None => self.media.recv().await,
            };
            if let Some(delivery) = self.read(item)? {
                return Some(delivery);
            }
        }
    }

    /// The next delivery if one is ready, as [`next`](Self::next) would
    /// give it; `None` when there is none yet (or the ring is gone).
    pub fn try_next(&mut self) -> Option<Delivery> {
        use broadcast::error::{RecvError, TryRecvError};
        if let Some(frame) = self.next_cached() {
            return Some(Delivery::Frame(frame));
        }
        loop {
            if let Some(delivery) = self.change()? {
                return Some(delivery);
            }
            let item = match self.switched.pop_front() {
                Some(item) => Ok(item),
                None => match self.media.try_recv() {
                    Ok(item) => Ok(item),
                    Err(TryRecvError::Empty) => return None,
                    Err(TryRecvError::Lagged(lost)) => Err(RecvError::Lagged(lost)),
                    Err(TryRecvError::Closed) => Err(RecvError::Closed),
                },
            };
            if let Some(delivery) = self.read(item)? {
                return Some(delivery);
            }
        }
    }

    /// Hands this subscription to its stream's fan-out, in `seat`: from now
    /// on, whoever sends an item into the stream delivers it to `sink` at
    /// once, until the sink gives the subscription back or the seat is
    /// recalled. What the ring holds already is delivered now, unless a
    /// delivery is under way (which delivers it).
    pub fn drive(self, seat: &Arc<Seat>, sink: Box<dyn Sink>) {
        let stream = self.guard.stream.clone();
        {
            let mut inner = lock(&seat.inner);
            inner.driven = Some((self, sink));
            if !inner.listed {
                inner.listed = true;
                lock(&stream.joining).push(seat.clone());
            }
        }
        stream.try_pump();
    }

    /// A publication change to deliver before the ring's next item; `None`
    /// (outside) once the stream is gone.
    fn change(&mut self) -> Option<Option<Delivery>> {
        if let Some(live) = self.pending.take() {
            return Some(Some(Delivery::Publication(live)));
        }
        // A change marked in the ring, or one whose marker a lag lost.
        if self.publication.has_changed().ok()? {
            let now = *self.publication.borrow_and_update();
            return Some(self.publication_changed(now));
        }
        Some(None)
    }

    /// What an item read from the ring delivers, if anything; `None`
    /// (outside) once the ring is gone.
    fn read(&mut self, item: Result<Item, broadcast::error::RecvError>) -> Option<Option<Delivery>> {
        let delivery = match item {
            Ok(Item::Frame(frame)) => self
                .selection
                .pick(frame)
                .filter(|f| self.gate.admit(f))
                .map(Delivery::Frame),
            Ok(Item::PublicationChanged) => None,
            Ok(Item::Dry) if self.is_live() => Some(Delivery::Dry),
            Ok(Item::Dry) => None,
            Err(broadcast::error::RecvError::Lagged(lost)) => {
                self.lagged(lost);
                None
            }
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some(delivery)
    }

    fn publication_changed(&mut self, now: Publication) -> Option<Delivery> {
        let before = std::mem::replace(&mut self.seen, now);
        match (before, now) {
            (Publication::Live { generation: a }, Publication::Live { generation: b }) if a != b => {
                self.gate.resync();
                self.pending = Some(true);
                Some(Delivery::Publication(false))
            }
            (Publication::Idle, Publication::Live { .. }) => {
                // A new publisher's pictures start at its first keyframe.
                self.gate.resync();
                Some(Delivery::Publication(true))
            }
            (Publication::Live { .. }, Publication::Idle) => Some(Delivery::Publication(false)),
            _ => None,
        }
    }

    fn lagged(&mut self, lost: u64) {
        self.gate.resync();
        let metrics = &self.guard.hub.metrics;
        self.gate.tracks.lost(metrics).add(lost);
        if let Some(held_back) = self.lag_warning.allow(Instant::now()) {
            let (app, stream) = &self.guard.stream.key;
            tracing::warn!(%app, %stream, tracks = ?self.gate.tracks, lost, held_back,
                "subscriber fell behind: frames lost, pictures resume at the next keyframe");
        }
    }
}

struct PlayerGuard {
    hub: Hub,
    stream: Arc<Stream>,
    /// Counted among the stream's viewers.
    viewer: bool,
}

impl Drop for PlayerGuard {
    fn drop(&mut self) {
        {
            let mut state = lock(&self.stream.state);
            state.players -= 1;
            state.viewers -= usize::from(self.viewer);
        }
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
                silent_publisher_takeover: Duration::from_secs(5),
                stream_dry_after: Duration::from_secs(3),
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

    fn cached(sub: &mut Subscription) -> Vec<Frame> {
        std::iter::from_fn(|| sub.next_cached()).collect()
    }

    #[test]
    fn a_selection_takes_one_track_of_a_multitrack_message() {
        // ManyTracks AV1 coded frames: track 0 holds 0xAA, track 1 0xBB.
        let ladder = Frame::new(
            MediaKind::Video,
            40,
            Bytes::from_static(b"\x96\x11av01\x00\x00\x00\x01\xAA\x01\x00\x00\x01\xBB"),
        );
        let pick = |video, audio| Selection { video, audio }.pick(ladder.clone());
        assert_eq!(
            pick(None, None),
            Some(ladder.clone()),
            "no selection: the message whole"
        );
        assert_eq!(
            pick(None, Some(1)),
            Some(ladder.clone()),
            "an audio track does not touch video"
        );
        let second = pick(Some(1), None).unwrap();
        assert_eq!(&second.payload[..], b"\x91av01\xBB");
        assert_eq!(
            (second.timestamp, second.keyframe, second.data()),
            (40, true, Some(&[0xBB][..]))
        );
        assert_eq!(pick(Some(2), None), None, "a message without the track");
        let legacy = video(0, true);
        let track = |id| Selection {
            video: Some(id),
            audio: None,
        };
        assert_eq!(track(0).pick(legacy.clone()), Some(legacy.clone()));
        assert_eq!(track(1).pick(legacy), None, "a frame that is not multitrack is track 0");
        let params = |query: &str| media::rtmp::url::split_params(&format!("cam?{query}")).params;
        assert_eq!(
            Selection::from_params(&params("video_track=1&audio_track=0")),
            Ok(Selection {
                video: Some(1),
                audio: Some(0)
            })
        );
        assert!(Selection::from_params(&params("video_track=300"))
            .unwrap_err()
            .contains("video_track=300"));
    }

    #[test]
    fn obs_style_multitrack_keeps_its_tracks_apart() {
        // Track 0 in plain enhanced tags; track 1 in OneTrack messages.
        let plain = |ts, first: u8, data: &'static [u8]| {
            let mut body = vec![first];
            body.extend_from_slice(b"av01");
            body.extend_from_slice(data);
            Frame::new(MediaKind::Video, ts, Bytes::from(body))
        };
        let one_track = |ts, first: u8, packet_type: u8, data: &'static [u8]| {
            let mut body = vec![first, packet_type, b'a', b'v', b'0', b'1', 1];
            body.extend_from_slice(data);
            Frame::new(MediaKind::Video, ts, Bytes::from(body))
        };
        let hub = hub();
        let publisher = hub.publish("app", "s", 1).unwrap();
        publisher.push(plain(0, 0x90, &[0x81, 0, 0x0c, 0])).unwrap(); // track 0 SequenceStart
        publisher
            .push(one_track(0, 0x96, 0x00, &[0x81, 0x20, 0x0c, 0]))
            .unwrap(); // track 1 SequenceStart
        publisher.push(plain(0, 0x91, &[0xA0])).unwrap(); // track 0 keyframe
        publisher.push(one_track(0, 0x96, 0x01, &[0xB0])).unwrap(); // track 1 keyframe
        publisher.push(plain(40, 0xA1, &[0xA1])).unwrap();
        publisher.push(one_track(40, 0xA6, 0x01, &[0xB1])).unwrap();
        let data = |sub: &mut Subscription| -> Vec<u8> {
            cached(sub)
                .iter()
                .filter(|f| !f.config)
                .map(|f| f.data().unwrap()[0])
                .collect()
        };
        let mut main = hub.subscribe("app", "s", false, Tracks::All).unwrap();
        main.select(Selection::default().single());
        let configs: Vec<u8> = std::iter::from_fn(|| main.next_cached())
            .filter(|f| f.config)
            .map(|f| f.data().unwrap()[1])
            .collect();
        assert_eq!(configs, [0x00], "track 0's configuration alone");
        let mut main = hub.subscribe("app", "s", false, Tracks::All).unwrap();
        main.select(Selection::default().single());
        assert_eq!(data(&mut main), [0xA0, 0xA1], "track 0 alone, from its keyframe");
        let mut second = hub.subscribe("app", "s", false, Tracks::All).unwrap();
        second.select(Selection {
            video: Some(1),
            audio: None,
        });
        assert_eq!(
            data(&mut second),
            [0xB0, 0xB1],
            "track 1 alone: its keyframe did not restart the cache"
        );
        let described = hub
            .describe_for(
                "app",
                "s",
                Selection {
                    video: Some(1),
                    audio: None,
                },
            )
            .unwrap();
        assert_eq!(
            described.video_config.as_deref(),
            Some(&[0x81, 0x20, 0x0c, 0][..]),
            "track 1's record"
        );
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
    fn a_silent_publisher_loses_its_name_to_the_next_and_its_frames_are_refused() {
        let takeover = Duration::from_millis(100);
        let hub = Hub::new(
            HubLimits {
                silent_publisher_takeover: takeover,
                stream_dry_after: Duration::ZERO,
                ..hub().limits
            },
            Arc::default(),
        );
        let first = hub.publish("app", "s", 1).unwrap();
        let mut player = hub.subscribe("app", "s", false, Tracks::All).unwrap();
        // Pushing keeps the name.
        for _ in 0..3 {
            std::thread::sleep(takeover / 2);
            first.push(video(0, true)).unwrap();
            assert!(hub.name_taken("app", "s"));
            assert_eq!(
                hub.publish("app", "s", 2).err(),
                Some(PublishError::BadName("s".into()))
            );
        }
        std::thread::sleep(takeover + takeover / 2);
        assert!(!hub.name_taken("app", "s"));
        let second = hub.publish("app", "s", 2).unwrap();
        assert_eq!(first.push(video(40, true)), Err(TakenOver));
        // The old publisher going away leaves the new one's stream alone.
        drop(first);
        assert!(hub.is_live("app", "s"));
        second.push(video(80, true)).unwrap();
        assert_eq!(
            *player.publication.borrow_and_update(),
            Publication::Live { generation: 2 }
        );
        drop(second);
        assert!(!hub.is_live("app", "s"));
    }

    #[tokio::test]
    async fn a_silent_stream_is_told_dry_once_until_its_next_frame() {
        let hub = hub();
        let publisher = hub.publish("app", "s", 1).unwrap();
        let mut player = hub.subscribe("app", "s", false, Tracks::All).unwrap();
        publisher.push(video(0, true)).unwrap();
        assert_eq!(frame(ready(&mut player).await), Some((0, true)));
        let heard = Instant::now();
        let after = hub.limits.stream_dry_after;
        assert_eq!(hub.mark_dry(heard), 0, "not silent yet");
        assert_eq!(hub.mark_dry(heard + after + Duration::from_millis(1)), 1);
        assert_eq!(hub.mark_dry(heard + after * 2), 0, "told once");
        assert!(matches!(ready(&mut player).await, Some(Delivery::Dry)));
        assert!(ready(&mut player).await.is_none());
        publisher.push(video(40, false)).unwrap();
        assert_eq!(frame(ready(&mut player).await), Some((40, false)));
        let heard = Instant::now();
        assert_eq!(hub.mark_dry(heard + after * 2), 1, "dry again after the frame");
        drop(publisher);
        assert_eq!(hub.mark_dry(heard + after * 4), 0, "an idle stream is not dry");
    }

    #[test]
    fn a_zero_takeover_time_never_takes_a_name_over() {
        let hub = Hub::new(
            HubLimits {
                silent_publisher_takeover: Duration::ZERO,
                stream_dry_after: Duration::ZERO,
                ..hub().limits
            },
            Arc::default(),
        );
        let _first = hub.publish("app", "s", 1).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert!(hub.name_taken("app", "s"));
        assert!(hub.publish("app", "s", 2).is_err());
    }

    #[test]
    fn late_joiner_gets_metadata_headers_and_gop_from_the_keyframe() {
        let hub = hub();
        let publisher = hub.publish("app", "s", 1).unwrap();
        let mut meta = Vec::new();
        media::amf::encode_amf0(&media::amf::Value::from("onMetaData"), &mut meta);
        publisher
            .push(Frame::new(MediaKind::Data, 0, Bytes::from(meta)))
            .unwrap();
        publisher
            .push(Frame::new(MediaKind::Video, 0, Bytes::from_static(&[0x17, 0, 0, 0, 0])))
            .unwrap();
        publisher
            .push(Frame::new(
                MediaKind::Audio,
                0,
                Bytes::from_static(&[0xAF, 0, 0x12, 0x10]),
            ))
            .unwrap();
        publisher.push(video(0, true)).unwrap();
        publisher.push(video(40, false)).unwrap();
        publisher.push(video(80, true)).unwrap();
        publisher.push(video(120, false)).unwrap();
        let kinds: Vec<_> = cached(&mut hub.subscribe("app", "s", false, Tracks::All).unwrap())
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
    fn an_avc_end_of_sequence_does_not_start_a_late_joiners_pictures() {
        let hub = hub();
        let publisher = hub.publish("app", "s", 1).unwrap();
        publisher.push(video(0, true)).unwrap();
        publisher.push(video(40, false)).unwrap();
        let end = Bytes::from_static(&media::flv::AVC_END_OF_SEQUENCE);
        publisher.push(Frame::new(MediaKind::Video, 80, end)).unwrap();
        publisher.push(video(120, false)).unwrap();
        let times: Vec<_> = cached(&mut hub.subscribe("app", "s", false, Tracks::All).unwrap())
            .iter()
            .map(|f| f.timestamp)
            .collect();
        assert_eq!(times, vec![0, 40, 80, 120], "the cached pictures start at the IDR");
    }

    #[test]
    fn a_gop_longer_than_the_limit_is_not_cached() {
        let hub = hub();
        let publisher = hub.publish("app", "s", 1).unwrap();
        publisher.push(video(0, true)).unwrap();
        for ts in (40..=4960).step_by(40) {
            publisher.push(video(ts, false)).unwrap();
        }
        assert_eq!(
            cached(&mut hub.subscribe("app", "s", false, Tracks::All).unwrap()).len(),
            125,
            "5 s are kept"
        );
        publisher.push(video(5040, false)).unwrap();
        assert!(
            cached(&mut hub.subscribe("app", "s", false, Tracks::All).unwrap()).is_empty(),
            "past 5 s: none"
        );
        assert_eq!(hub.metrics.gop_cache_overflows.get(), 1);
        publisher.push(video(5080, true)).unwrap();
        assert_eq!(
            cached(&mut hub.subscribe("app", "s", false, Tracks::All).unwrap()).len(),
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
        let _player = hub.subscribe("app", "s", false, Tracks::All).unwrap();
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
        publisher
            .push(Frame::new(MediaKind::Data, 0, Bytes::from(meta)))
            .unwrap();
        let described = hub.describe("app", "s").unwrap();
        assert_eq!(described.announced.and_then(|a| a.video), Some(true));
        assert!(!described.has_video);
    }

    /// The next delivery, if one is ready now.
    async fn ready(sub: &mut Subscription) -> Option<Delivery> {
        tokio::time::timeout(Duration::from_millis(20), sub.next())
            .await
            .ok()
            .flatten()
    }

    fn frame(delivery: Option<Delivery>) -> Option<(u32, bool)> {
        match delivery {
            Some(Delivery::Frame(f)) => Some((f.timestamp, f.keyframe)),
            _ => None,
        }
    }

    #[tokio::test]
    async fn players_see_unpublish_and_republish_and_streams_are_forgotten() {
        let hub = hub();
        assert!(hub.subscribe("app", "s", false, Tracks::All).is_none());
        let mut sub = hub.subscribe("app", "s", true, Tracks::All).unwrap();
        assert!(!sub.is_live());
        let publisher = hub.publish("app", "s", 1).unwrap();
        assert_eq!(ready(&mut sub).await, Some(Delivery::Publication(true)));
        assert!(sub.is_live());
        publisher.push(video(0, true)).unwrap();
        assert_eq!(frame(ready(&mut sub).await), Some((0, true)));
        drop(publisher);
        assert_eq!(ready(&mut sub).await, Some(Delivery::Publication(false)));
        assert_eq!(ready(&mut sub).await, None);
        drop(sub);
        assert!(lock(&hub.streams).is_empty());
    }

    /// A sink that takes frames up to a timestamp and keeps what it got.
    struct Taker {
        got: Arc<Mutex<Vec<u32>>>,
        until: u32,
        back: std::sync::mpsc::Sender<(Subscription, Option<Delivery>)>,
    }

    impl Sink for Taker {
        fn take(&mut self, delivery: Delivery, _: &mut Made, _: &mut Subscription) -> Take {
            match delivery {
                Delivery::Frame(f) if f.timestamp < self.until => {
                    lock(&self.got).push(f.timestamp);
                    Take::Taken
                }
                other => Take::Refused(other),
            }
        }

        fn give_back(self: Box<Self>, subscription: Subscription, refused: Option<Delivery>) {
            self.back.send((subscription, refused)).unwrap();
        }
    }

    #[test]
    fn a_driven_subscription_gets_each_frame_as_it_is_pushed_until_given_back() {
        let hub = hub();
        let publisher = hub.publish("app", "s", 1).unwrap();
        publisher.push(video(0, true)).unwrap();
        let mut sub = hub.subscribe("app", "s", false, Tracks::All).unwrap();
        assert_eq!(cached(&mut sub).len(), 1);
        let (back, returned) = std::sync::mpsc::channel();
        let got = Arc::new(Mutex::new(Vec::new()));
        let seat = Arc::new(Seat::default());
        let taker = |until| {
            Box::new(Taker {
                got: got.clone(),
                until,
                back: back.clone(),
            })
        };
        sub.drive(&seat, taker(80));
        publisher.push(video(40, false)).unwrap();
        assert_eq!(*lock(&got), [40], "delivered by the push itself");
        // Refused: back, with the refused frame to deliver first.
        publisher.push(video(80, false)).unwrap();
        let (sub, refused) = returned.try_recv().unwrap();
        assert_eq!(frame(refused), Some((80, false)));
        assert!(!seat.is_driven());
        publisher.push(video(120, false)).unwrap();
        assert_eq!(*lock(&got), [40], "nothing once given back");
        // Driven again: what the ring held is delivered at once.
        sub.drive(&seat, taker(1000));
        assert_eq!(*lock(&got), [40, 120]);
        seat.recall();
        let (mut sub, refused) = returned.try_recv().unwrap();
        assert_eq!(refused, None);
        publisher.push(video(160, false)).unwrap();
        assert_eq!(*lock(&got), [40, 120]);
        assert_eq!(frame(sub.try_next()), Some((160, false)));
        // An unpublish is not a frame: the subscription comes back with it.
        sub.drive(&seat, taker(1000));
        drop(publisher);
        let (sub, refused) = returned.try_recv().unwrap();
        assert_eq!(refused, Some(Delivery::Publication(false)));
        drop(sub);
        assert!(lock(&hub.streams).is_empty(), "the stream is forgotten");
    }

    #[tokio::test]
    async fn a_publisher_replaced_unseen_is_told_as_unpublish_then_publish() {
        let hub = hub();
        let first = hub.publish("app", "s", 1).unwrap();
        let mut sub = hub.subscribe("app", "s", false, Tracks::All).unwrap();
        assert!(sub.is_live());
        drop(first);
        let second = hub.publish("app", "s", 2).unwrap();
        assert_eq!(ready(&mut sub).await, Some(Delivery::Publication(false)));
        assert_eq!(ready(&mut sub).await, Some(Delivery::Publication(true)));
        // The new publisher's pictures start at its keyframe.
        second.push(video(0, false)).unwrap();
        second.push(video(40, true)).unwrap();
        assert_eq!(frame(ready(&mut sub).await), Some((40, true)));
    }

    #[tokio::test]
    async fn pictures_start_at_a_keyframe_and_sound_is_never_held_back() {
        let hub = hub();
        let publisher = hub.publish("app", "s", 1).unwrap();
        publisher.push(video(0, false)).unwrap(); // no keyframe cached: no GOP open
        let mut sub = hub.subscribe("app", "s", false, Tracks::All).unwrap();
        assert!(sub.next_cached().is_none());
        let aac = Frame::new(MediaKind::Audio, 10, Bytes::from_static(&[0xAF, 1, 0x21]));
        publisher.push(video(40, false)).unwrap();
        publisher.push(aac.clone()).unwrap();
        publisher.push(video(80, true)).unwrap();
        publisher.push(video(120, false)).unwrap();
        assert_eq!(ready(&mut sub).await, Some(Delivery::Frame(aac)));
        assert_eq!(frame(ready(&mut sub).await), Some((80, true)));
        assert_eq!(frame(ready(&mut sub).await), Some((120, false)));
    }

    #[tokio::test]
    async fn without_sound_a_subscriber_sees_only_its_changes_and_loses_nothing_else() {
        let hub = hub();
        let publisher = hub.publish("app", "s", 1).unwrap();
        let mut sub = hub.subscribe("app", "s", false, Tracks::All).unwrap();
        let sound = |ts, bytes: &'static [u8]| Frame::new(MediaKind::Audio, ts, Bytes::from_static(bytes));
        let aac = |ts| sound(ts, &[0xAF, 1, 0x21]);
        let speex = |ts| sound(ts, &[0xB6, 1, 2]);
        let aac_config = sound(30, &[0xAF, 0, 0x12, 0x10]);
        publisher.push(video(0, true)).unwrap();
        publisher.push(aac(10)).unwrap();
        sub.take_sound(false);
        publisher.push(aac(20)).unwrap(); // the codec it had: not delivered
        publisher.push(aac_config.clone()).unwrap();
        publisher.push(aac(35)).unwrap();
        publisher.push(video(40, false)).unwrap();
        publisher.push(speex(60)).unwrap(); // another codec
        publisher.push(speex(80)).unwrap();
        sub.take_sound(true);
        publisher.push(speex(100)).unwrap();
        publisher.push(video(120, false)).unwrap();
        let mut got = Vec::new();
        while let Some(Delivery::Frame(frame)) = ready(&mut sub).await {
            got.push((frame.kind, frame.timestamp));
        }
        use MediaKind::{Audio, Video};
        assert_eq!(
            got,
            [
                (Video, 0),
                (Audio, 10), // in the ring before the change
                (Audio, 30),
                (Video, 40),
                (Audio, 60),
                (Audio, 100),
                (Video, 120)
            ]
        );
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_a_ring_behind_resumes_at_a_keyframe_and_is_counted() {
        let hub = hub(); // a ring of 16 frames
        let publisher = hub.publish("app", "s", 1).unwrap();
        let mut sub = hub.subscribe("app", "s", false, Tracks::Video).unwrap();
        publisher.push(video(0, true)).unwrap();
        for ts in 1..=20 {
            publisher.push(video(ts * 40, false)).unwrap();
        }
        publisher.push(video(840, true)).unwrap();
        publisher.push(video(880, false)).unwrap();
        assert_eq!(
            frame(ready(&mut sub).await),
            Some((840, true)),
            "inter pictures after the loss skipped"
        );
        assert_eq!(frame(ready(&mut sub).await), Some((880, false)));
        assert_eq!(hub.metrics.video_transcode_dropped.get(), 7, "23 sent, 16 kept");
        assert_eq!(
            hub.metrics.player_frames_dropped.get(),
            0,
            "counted as the subscriber's"
        );
    }

    #[test]
    fn the_gate_takes_its_tracks_and_passes_configurations() {
        let aac = Frame::new(MediaKind::Audio, 0, Bytes::from_static(&[0xAF, 1, 0x21]));
        let config = Frame::new(MediaKind::Video, 0, Bytes::from_static(&[0x17, 0, 0, 0, 0]));
        let mut audio = Gate::new(Tracks::Audio);
        assert!(audio.admit(&aac));
        assert!(!audio.admit(&video(0, true)));
        let mut pictures = Gate::new(Tracks::Video);
        assert!(!pictures.admit(&aac));
        assert!(!pictures.admit(&video(0, false)));
        // An AVC sequence header is flagged as a keyframe, and passes; the
        // inter pictures after it cannot be decoded, and wait for a keyframe.
        assert!(pictures.admit(&config));
        assert!(pictures.skipping());
        assert!(!pictures.admit(&video(40, false)));
        assert!(pictures.admit(&video(60, true)));
        assert!(!pictures.skipping());
        assert!(pictures.admit(&video(70, false)));
        pictures.resync();
        assert!(!pictures.admit(&video(80, false)));
        assert!(pictures.admit(&video(120, true)));
    }
}
