//! Counters served at `/metrics` in the Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// A monotonically increasing counter (or, with `dec`, a gauge).
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// Subtracts one (gauges only).
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Every counter the server keeps.
#[derive(Debug, Default)]
pub struct Metrics {
    /// RTMP connections accepted since start.
    pub rtmp_connections_total: Counter,
    /// RTMP connections open now (gauge).
    pub rtmp_connections: Counter,
    /// Connections refused because `max_connections` or
    /// `max_connections_per_address` was reached.
    pub rtmp_connections_refused: Counter,
    /// Connections closed because of malformed or hostile input.
    pub rtmp_protocol_errors: Counter,
    /// Publishes accepted.
    pub publishes_total: Counter,
    /// Publishers that lost their name to a new publisher after a silence.
    pub publishers_taken_over: Counter,
    /// Plays accepted.
    pub plays_total: Counter,
    /// Media messages received from publishers.
    pub frames_in: Counter,
    /// Media messages sent to players.
    pub frames_out: Counter,
    /// RTMP plays handed to their stream's fan-out (see ARCHITECTURE.md).
    pub rtmp_fanout_handed: Counter,
    /// RTMP plays the fan-out gave back to their connection.
    pub rtmp_fanout_given_back: Counter,
    /// Frames players lost because they fell behind (then skipped to a keyframe).
    pub player_frames_dropped: Counter,
    /// Enhanced RTMP tags from publishers that could not be read (dropped).
    pub media_unreadable: Counter,
    /// Backend hook calls made.
    pub hook_calls: Counter,
    /// Backend hook calls that refused the action or failed.
    pub hook_refusals: Counter,
    /// WebRTC sessions (players and publishers) open now (gauge).
    pub webrtc_sessions: Counter,
    /// WebRTC sessions set up since start.
    pub webrtc_sessions_total: Counter,
    /// UDP datagrams dropped: for no known peer, or a peer too far behind.
    pub webrtc_datagrams_dropped: Counter,
    /// Keyframe requests (PLI/FIR) from WebRTC players answered from the GOP cache.
    pub webrtc_keyframe_requests: Counter,
    /// ICE restarts WHIP and WHEP sessions took (a `PATCH` with new credentials).
    pub webrtc_ice_restarts: Counter,
    /// Frames cut into RTP payloads for WebRTC players: once per stream and
    /// frame, however many players send it.
    pub webrtc_frames_packetized: Counter,
    /// Keyframe requests (PLI, or FIR) sent to WebRTC publishers: when a
    /// player joins, and whenever their last keyframe is older than
    /// `webrtc.publisher_keyframe_interval`.
    pub publisher_keyframe_requests: Counter,
    /// Groups of pictures not cached for late joiners because they grew past
    /// `rtmp.gop_cache_bytes` or `rtmp.gop_cache_duration`.
    pub gop_cache_overflows: Counter,
    /// Live audio frames dropped before a transcoder that could not keep up.
    pub audio_transcode_dropped: Counter,
    /// Audio frames transcoded (input frames).
    pub transcoded_frames: Counter,
    /// Time spent transcoding audio, in microseconds.
    pub transcode_micros: Counter,
    /// Audio frames a transcoder could not decode or encode.
    pub transcode_errors: Counter,
    /// Video transcoders running.
    pub video_transcoders: Counter,
    /// Video frames given to transcoders.
    pub video_transcoded_frames: Counter,
    /// Time spent transcoding video, in microseconds.
    pub video_transcode_micros: Counter,
    /// Video frames a transcoder could not decode or encode.
    pub video_transcode_errors: Counter,
    /// Video frames dropped before a transcoder that could not keep up
    /// (it resumes at the next keyframe).
    pub video_transcode_dropped: Counter,
}

impl Metrics {
    /// Renders the Prometheus text exposition format; `live_streams` is read from the hub.
    pub fn render(&self, live_streams: usize) -> String {
        let mut out = String::with_capacity(2048);
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        };
        metric(
            "rtmp_connections_total",
            "counter",
            "RTMP connections accepted.",
            self.rtmp_connections_total.get(),
        );
        metric(
            "rtmp_connections",
            "gauge",
            "RTMP connections open.",
            self.rtmp_connections.get(),
        );
        metric(
            "rtmp_connections_refused_total",
            "counter",
            "RTMP connections refused at the connection limit or the per-address limit.",
            self.rtmp_connections_refused.get(),
        );
        metric(
            "rtmp_protocol_errors_total",
            "counter",
            "Connections closed for malformed input.",
            self.rtmp_protocol_errors.get(),
        );
        metric(
            "streams_live",
            "gauge",
            "Streams with a publisher.",
            live_streams as u64,
        );
        metric(
            "publishes_total",
            "counter",
            "Publishes accepted.",
            self.publishes_total.get(),
        );
        metric(
            "publishers_taken_over_total",
            "counter",
            "Publishers whose stream a new publisher took over after they had sent nothing for silent_publisher_takeover.",
            self.publishers_taken_over.get(),
        );
        metric("plays_total", "counter", "Plays accepted.", self.plays_total.get());
        metric(
            "frames_in_total",
            "counter",
            "Media messages received from publishers.",
            self.frames_in.get(),
        );
        metric(
            "frames_out_total",
            "counter",
            "Media messages sent to players.",
            self.frames_out.get(),
        );
        metric(
            "rtmp_fanout_handed_total",
            "counter",
            "RTMP plays handed to their stream's fan-out, which writes their frames.",
            self.rtmp_fanout_handed.get(),
        );
        metric(
            "rtmp_fanout_given_back_total",
            "counter",
            "RTMP plays the fan-out gave back to their connection.",
            self.rtmp_fanout_given_back.get(),
        );
        metric(
            "player_frames_dropped_total",
            "counter",
            "Frames dropped for players that fell behind.",
            self.player_frames_dropped.get(),
        );
        metric(
            "media_unreadable_total",
            "counter",
            "Enhanced RTMP tags from publishers that could not be read, dropped.",
            self.media_unreadable.get(),
        );
        metric(
            "hook_calls_total",
            "counter",
            "Backend hook calls.",
            self.hook_calls.get(),
        );
        metric(
            "hook_refusals_total",
            "counter",
            "Backend hook calls that refused or failed.",
            self.hook_refusals.get(),
        );
        metric(
            "webrtc_sessions",
            "gauge",
            "WebRTC sessions open.",
            self.webrtc_sessions.get(),
        );
        metric(
            "webrtc_sessions_total",
            "counter",
            "WebRTC sessions set up.",
            self.webrtc_sessions_total.get(),
        );
        metric(
            "webrtc_datagrams_dropped_total",
            "counter",
            "UDP datagrams dropped (no peer, or peer queue full).",
            self.webrtc_datagrams_dropped.get(),
        );
        metric(
            "webrtc_keyframe_requests_total",
            "counter",
            "Keyframe requests from WebRTC players answered from the GOP cache.",
            self.webrtc_keyframe_requests.get(),
        );
        metric(
            "webrtc_ice_restarts_total",
            "counter",
            "ICE restarts WHIP and WHEP sessions took.",
            self.webrtc_ice_restarts.get(),
        );
        metric(
            "webrtc_frames_packetized_total",
            "counter",
            "Frames cut into RTP payloads for WebRTC players, once per stream whatever the number of players.",
            self.webrtc_frames_packetized.get(),
        );
        metric(
            "webrtc_publisher_keyframe_requests_total",
            "counter",
            "Keyframe requests (PLI or FIR) sent to WebRTC publishers.",
            self.publisher_keyframe_requests.get(),
        );
        metric(
            "gop_cache_overflows_total",
            "counter",
            "Groups of pictures too long (bytes or duration) to cache for late joiners.",
            self.gop_cache_overflows.get(),
        );
        metric(
            "audio_transcode_frames_dropped_total",
            "counter",
            "Live audio frames dropped before a transcoder that could not keep up.",
            self.audio_transcode_dropped.get(),
        );
        metric(
            "transcoded_frames_total",
            "counter",
            "Audio frames transcoded.",
            self.transcoded_frames.get(),
        );
        metric(
            "transcode_microseconds_total",
            "counter",
            "Time spent transcoding audio, in microseconds.",
            self.transcode_micros.get(),
        );
        metric(
            "transcode_errors_total",
            "counter",
            "Audio frames a transcoder could not decode or encode.",
            self.transcode_errors.get(),
        );
        metric(
            "video_transcoders",
            "gauge",
            "Video transcoders running.",
            self.video_transcoders.get(),
        );
        metric(
            "video_transcoded_frames_total",
            "counter",
            "Video frames given to transcoders.",
            self.video_transcoded_frames.get(),
        );
        metric(
            "video_transcode_microseconds_total",
            "counter",
            "Time spent transcoding video, in microseconds.",
            self.video_transcode_micros.get(),
        );
        metric(
            "video_transcode_errors_total",
            "counter",
            "Video frames a transcoder could not decode or encode.",
            self.video_transcode_errors.get(),
        );
        metric(
            "video_transcode_frames_dropped_total",
            "counter",
            "Video frames dropped before a transcoder that could not keep up (it resumes at the next keyframe).",
            self.video_transcode_dropped.get(),
        );
        out
    }
}
