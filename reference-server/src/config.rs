//! The server configuration: embedded defaults, a TOML file, and `--set`
//! overrides from the command line, in that order.
//!
//! Every field has a default, so an empty file (or none) is a valid
//! configuration. The file and the overrides are merged key by key into the
//! defaults: `[apps.key1]` adds an application and keeps the others.
//! `reference-server --print-config` prints the effective configuration.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The RTMP listener and its limits.
    pub rtmp: RtmpConfig,
    /// The HTTP listener: WHEP/WHIP, the WebSocket signalling channel, the demo page, metrics.
    pub http: HttpConfig,
    /// The WebRTC UDP port shared by every peer.
    pub webrtc: WebRtcConfig,
    /// Backend hook settings shared by all applications.
    pub hooks: HooksConfig,
    /// When true, the RTMP application name is the application key and must be
    /// defined in `apps`; when false, the key comes from `appKey` (connect
    /// arguments or URL parameter), else the RTMP application name when it is
    /// a defined application, else `default_app` (see [`Config::app_key`]).
    pub application_from_url: bool,
    /// The application used when a client names none.
    pub default_app: String,
    /// Longest stream name a client may publish or play, in bytes: a longer
    /// one is refused (NetStream.Publish.BadName or Play.Failed, HTTP 400,
    /// FAILED on the WebSocket channel), and never echoed in full.
    pub max_name_bytes: usize,
    /// A publisher that has sent nothing for this long loses its stream to
    /// the next publisher of the same name (`0s`: never; a live name is
    /// then refused until its publisher closes or times out). An encoder
    /// whose network dropped reconnects while its old connection is still
    /// open on the server (half-open: no FIN ever came); it is not kept out
    /// for `rtmp.idle_timeout`.
    #[serde(with = "humantime_serde")]
    pub silent_publisher_takeover: Duration,
    /// A live stream whose publisher has sent nothing for this long is
    /// dry: its RTMP players are sent User Control StreamDry, once until
    /// media comes again (`0s`: never).
    #[serde(with = "humantime_serde")]
    pub stream_dry_after: Duration,
    /// The defined applications, by key. The defaults define `flashStreamingApp`
    /// and `live`; a file or `--set` adds applications or changes these.
    pub apps: BTreeMap<String, AppConfig>,
    /// Known bugs of other servers, switched back on: for reproducing them and
    /// for proving that the conformance suite catches them. All off by default.
    pub quirks: Quirks,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            rtmp: RtmpConfig::default(),
            http: HttpConfig::default(),
            webrtc: WebRtcConfig::default(),
            hooks: HooksConfig::default(),
            quirks: Quirks::default(),
            application_from_url: false,
            default_app: "flashStreamingApp".to_string(),
            max_name_bytes: 1024,
            silent_publisher_takeover: Duration::from_secs(5),
            stream_dry_after: Duration::from_secs(3),
            apps: [
                ("flashStreamingApp".to_string(), AppConfig::default()),
                ("live".to_string(), AppConfig::default()),
            ]
            .into(),
        }
    }
}

/// RTMP listener settings and limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RtmpConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Chunk size the server uses for what it sends (announced after connect).
    pub chunk_size: u32,
    /// Window Acknowledgement Size announced to clients.
    pub window_ack_size: u32,
    /// Largest message a client may send, in bytes.
    pub max_message_size: u32,
    /// Largest chunk size used for a client's chunks: a larger Set Chunk
    /// Size (all up to 2147483647 are legal) is taken as this one.
    pub max_chunk_size: u32,
    /// Time allowed for the handshake.
    #[serde(with = "humantime_serde")]
    pub handshake_timeout: Duration,
    /// A connection whose connect has not been accepted this long after its
    /// handshake is closed: a client that shakes hands and then waits holds
    /// a slot for nothing.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// A connection that sends nothing for this long is closed (the server pings at half of it).
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Most simultaneous RTMP connections; more are closed at once.
    pub max_connections: usize,
    /// Most simultaneous RTMP connections from one IP address (0: no
    /// limit); more from it are closed at once, so that one client cannot
    /// hold every slot of `max_connections`. Raise it for load tests from
    /// one machine.
    pub max_connections_per_address: usize,
    /// Most NetStreams one connection may create.
    pub max_streams_per_connection: u32,
    /// Frames a player may fall behind before it skips to the next keyframe.
    pub player_queue_frames: usize,
    /// How often an RTMP player's connection writes (0: each frame as it
    /// comes). Above 0, frames that arrive within this time go out in one
    /// write: fewer wake-ups and system calls per player (more players per
    /// core), each frame up to this much later (SRS's `mw_latency`, 350 ms
    /// by default there, makes the same trade).
    #[serde(with = "humantime_serde")]
    pub player_write_interval: Duration,
    /// Largest group of pictures kept for late joiners, in bytes.
    pub gop_cache_bytes: usize,
    /// Longest group of pictures kept for late joiners, in media time: a
    /// longer one is not cached, and late joiners start at the next keyframe.
    #[serde(with = "humantime_serde")]
    pub gop_cache_duration: Duration,
    /// Where Enhanced RTMP clients that announced capsEx Reconnect are told
    /// to connect again when the server shuts down
    /// (`NetConnection.Connect.ReconnectRequest`'s `tcUrl`, absolute or
    /// relative to theirs); unset, they reconnect to the same tcUrl.
    pub reconnect_tc_url: Option<String>,
}

impl Default for RtmpConfig {
    fn default() -> Self {
        RtmpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 1935)),
            chunk_size: 4096,
            window_ack_size: 2_500_000,
            max_message_size: 8 * 1024 * 1024,
            max_chunk_size: 16 * 1024 * 1024,
            handshake_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1000,
            max_connections_per_address: 100,
            max_streams_per_connection: 64,
            player_queue_frames: 1024,
            player_write_interval: Duration::ZERO,
            gop_cache_bytes: 32 * 1024 * 1024,
            gop_cache_duration: Duration::from_secs(12),
            reconnect_tc_url: None,
        }
    }
}

/// HTTP listener settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Most simultaneous WebSocket signalling connections from one IP
    /// address (0: no limit); more are refused (429).
    pub max_websockets_per_address: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_websockets_per_address: 100,
        }
    }
}

/// WebRTC settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebRtcConfig {
    /// UDP address every WebRTC peer talks to (ICE-lite, one port for all); port 0 picks a free port.
    pub listen: SocketAddr,
    /// The address put in answers' host candidates instead of the listen address
    /// (for a server behind NAT, or listening on 0.0.0.0).
    pub public_ip: Option<std::net::IpAddr>,
    /// A session whose peer has not connected (ICE and DTLS) within this time is ended.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// How long a WHEP counter-offer (an application's `whep_counter_offer`)
    /// waits for the player's answer, holding a session's place, before it
    /// is forgotten. WHEP draft 03, section 4.2: 30 s unless the `406`
    /// says otherwise (it does, with `valid-until`, for any other value).
    #[serde(with = "humantime_serde")]
    pub counter_offer_valid: Duration,
    /// Most WebRTC sessions (players and publishers) at once; more are refused (HTTP 503).
    pub max_sessions: usize,
    /// Most simultaneous WebRTC sessions for one IP address (0: no limit);
    /// more are refused (HTTP 429, FAILED on the WebSocket channel).
    pub max_sessions_per_address: usize,
    /// How long after its publish started a stream that has sent no video,
    /// and whose metadata does not say whether it has video, may still be
    /// waited for: a player arriving earlier is answered when video comes
    /// or when this has passed since the publish started, whichever is
    /// first. Metadata that names a video codec gets a video line at once;
    /// metadata without one, an audio-only answer at once.
    #[serde(with = "humantime_serde")]
    pub video_wait: Duration,
    /// The same for sound: how long after its publish started a stream
    /// that has sent no audio, and whose metadata does not say whether it
    /// has audio, may still be waited for. Encoders send their first sound
    /// with their first pictures, so this is short: a player of a
    /// video-only stream without metadata is held up at most this long,
    /// and only in the stream's first moments.
    #[serde(with = "humantime_serde")]
    pub audio_wait: Duration,
    /// A WebRTC publisher is asked for a keyframe (PLI, or FIR when that is
    /// all it takes) when a player joins, and whenever its last keyframe is
    /// older than this.
    #[serde(with = "humantime_serde")]
    pub publisher_keyframe_interval: Duration,
    /// Video packets each player keeps at most to answer its retransmission
    /// requests (NACK), the newest first. The payloads are shared by the
    /// stream's players: on its own send path a player keeps about 48
    /// bytes per picture (a resend finds the packet among the stream's 256
    /// most recent frames), where str0m sends 0.5 KB of bookkeeping per
    /// packet. 150 hold `resend_window` up to about 1 Mbit/s, half a
    /// second at 2.5 Mbit/s.
    pub resend_packets: usize,
    /// How long a video packet is kept for resending, within
    /// `resend_packets`: an older one is not resent (where str0m sends, its
    /// history grows only as far as this window needs). libwebrtc, the
    /// sender of Chrome, keeps a packet for at least max(1 s, 3 × RTT); 1 s
    /// answers every NACK on paths up to a round trip of about 330 ms, and
    /// a picture resent later than that has missed its time at a live
    /// player. 0 turns resending off.
    #[serde(with = "humantime_serde")]
    pub resend_window: Duration,
    /// Players send their RTP themselves (SRTP with AES-GCM keyed from the
    /// session's DTLS, sender reports, resends on NACK) rather than through
    /// str0m's per-session send queue, pacer and resend cache: 55 to 65 %
    /// of the CPU and two thirds of the memory a viewer costs that way
    /// (docs/BENCHMARKS.md). A session that negotiated AES-CM/HMAC-SHA1
    /// SRTP, or video str0m packetizes (a codec beside H.264), is sent by
    /// str0m either way.
    pub own_send_path: bool,
    /// STUN and TURN servers named to WHIP and WHEP clients, a `Link`
    /// (`rel="ice-server"`) each in every 201 (RFC 9725, section 4.6): a
    /// client behind a restrictive NAT reaches the server through the TURN
    /// server's relay. None by default.
    pub ice_servers: Vec<IceServer>,
}

/// A STUN or TURN server for WebRTC clients (`[[webrtc.ice_servers]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IceServer {
    /// Its URI: `stun:` or `stuns:` host and port (RFC 7064), `turn:` or
    /// `turns:` host, port and `?transport=udp|tcp` (RFC 7065).
    pub url: String,
    /// The TURN username (a TURN server needs one, as browsers do).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The TURN long-term password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

impl IceServer {
    /// As a W3C `RTCIceServer` dictionary (`urls`, and a TURN server's
    /// `username` and `credential` unless `credentials` is false), for a
    /// client to give its `RTCPeerConnection`.
    pub fn to_rtc(&self, credentials: bool) -> serde_json::Value {
        let mut server = serde_json::json!({ "urls": self.url });
        if let (true, Some(username), Some(credential)) = (credentials, &self.username, &self.credential) {
            server["username"] = username.as_str().into();
            server["credential"] = credential.as_str().into();
        }
        server
    }

    /// Why a client could not use it, if it could not: a URI that is not
    /// a STUN or TURN URI, a TURN server without a username and
    /// credential (browsers refuse one: W3C WebRTC, section 4.2.1), or a
    /// text a header field cannot carry.
    pub fn check(&self) -> Result<(), String> {
        let turn = media::ice::ServerUri::parse(&self.url)?.is_turn();
        if turn && (self.username.is_none() || self.credential.is_none()) {
            return Err(format!(
                "{:?}: a TURN server needs a username and a credential",
                self.url
            ));
        }
        let texts = [Some(&self.url), self.username.as_ref(), self.credential.as_ref()];
        if texts.into_iter().flatten().any(|t| t.chars().any(char::is_control)) {
            return Err(format!(
                "{:?}: control characters cannot go in a header field",
                self.url
            ));
        }
        Ok(())
    }
}

impl Default for WebRtcConfig {
    fn default() -> Self {
        WebRtcConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            public_ip: None,
            connect_timeout: Duration::from_secs(15),
            counter_offer_valid: Duration::from_secs(30),
            max_sessions: 1000,
            max_sessions_per_address: 100,
            video_wait: Duration::from_secs(3),
            audio_wait: Duration::from_secs(1),
            publisher_keyframe_interval: Duration::from_secs(2),
            resend_packets: 150,
            resend_window: Duration::from_secs(1),
            own_send_path: true,
            ice_servers: Vec::new(),
        }
    }
}

/// Bugs seen in RTMP/WebRTC gateways (docs/known-issues.md), each of
/// which the reference server can reproduce on request. Never for production.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Quirks {
    /// KI-1: a WebRTC player of an audio-only stream gets an answer with a
    /// video m-line too, and the audio is never sent (WCS's silent
    /// microphone-only Flash streams).
    pub video_line_for_audio_only: bool,
    /// KI-2: when a WebSocket session that plays a stream starts publishing
    /// one, a shared "avoid transcoding" path takes the played stream's
    /// audio until the publish stops (sound stops on iOS Safari).
    pub publish_takes_played_audio: bool,
    /// KI-3: an RTMP stream name keeps its `?query` (publish and play), so
    /// players of the bare name find nothing, and a player whose name
    /// carries a token finds nothing either.
    pub stream_name_keeps_query: bool,
    /// A WebRTC player answered before the stream's first video frame gets
    /// no video line, although the metadata announced video: it never sees
    /// a picture (a Flash camera that starts after the microphone).
    pub answer_only_tracks_sent: bool,
    /// WebRTC publishers are never asked for a keyframe, so a late joiner
    /// waits for (or gets the whole backlog since) the publisher's own next one.
    pub no_publisher_keyframe_requests: bool,
    /// An RTMP player of a WebRTC publisher gets the transcoded sound of the
    /// cached backlog after newer video: audio out of timestamp order.
    pub rtmp_audio_behind_video: bool,
    /// A WebSocket player answered without video is never offered the video
    /// that appears later (no renegotiation), so it keeps sound only.
    pub no_renegotiation: bool,
    /// The RTMP application name does not choose the application: without an
    /// `appKey`, `rtmp://host/live/cam` lands in `default_app`, not in `live`.
    pub rtmp_app_name_ignored: bool,
    /// Joining a room is not announced to those already in it (no `JOINED`).
    pub silent_joins: bool,
    /// A participant name already in a room is taken again: the newcomer
    /// replaces the first, whose events stop.
    pub duplicate_participants: bool,
    /// A WebRTC player's `width`, `height` and `bitrate` are ignored.
    pub size_ignored: bool,
    /// Speex sound is not transcoded for WebRTC players: they hear nothing.
    pub speex_dropped: bool,
    /// The Opus a WebRTC publisher sends reaches RTMP players (transcoded)
    /// but not WebRTC players.
    pub webrtc_opus_not_forwarded: bool,
    /// RTMP continuation chunks are read as if they always repeated an
    /// extended timestamp: a publisher that omits it is misread.
    pub extended_timestamps_always_repeated: bool,
    /// RTMP continuation chunks are read as if they never repeated an
    /// extended timestamp: a publisher that repeats it (as the
    /// specification asks) is misread.
    pub extended_timestamps_never_repeated: bool,
    /// RTMP Abort Messages are not acted on: the partly received message
    /// stays, and the next message on its chunk stream ends the connection.
    pub chunk_aborts_ignored: bool,
    /// RTMP chunks are read one message at a time: a publisher that
    /// interleaves chunk streams (sound between a picture's chunks) is
    /// disconnected.
    pub chunk_interleaving_refused: bool,
    /// A WebRTC player that offers H.264 in single NAL unit mode only
    /// (packetization-mode 0) is answered with it, and then sent fragmented
    /// pictures (FU-A), which that mode forbids.
    pub single_nal_mode_accepted: bool,
    /// WebRTC answers name Opus 111 and H.264 102 whatever payload type
    /// numbers the offer gave them, as a server tried only with Chrome
    /// does: Firefox (Opus 109, H.264 126), OBS (H.264 96) and FFmpeg
    /// (H.264 106) are answered in other numbers than theirs.
    pub payload_types_fixed: bool,
    /// WebRTC sessions send no RTCP sender reports, so a player cannot
    /// place audio and video on one clock (no lip sync) nor measure the
    /// round trip.
    pub sender_reports_withheld: bool,
    /// A WebRTC player's NACKs go unanswered: nothing is kept to send
    /// again, so every lost packet stays lost until the next keyframe.
    pub retransmissions_withheld: bool,
    /// An ICE restart is answered `200` with new credentials, but the
    /// session goes on with the old ones: the client's checks made with the
    /// new ones are never answered, and its consent to send runs out.
    pub ice_restarts_unapplied: bool,
    /// A WebRTC player's keyframe requests (PLI, FIR) are ignored: after a
    /// loss its picture stays broken until the publisher's next keyframe.
    pub player_keyframe_requests_ignored: bool,
    /// Opus made from another codec (Speex, AAC...) is stamped 100 ms after
    /// the sound it holds, as a transcoder that buffers 100 ms and stamps
    /// its packets as they leave does: on a browser's clock the sound lags
    /// the pictures.
    pub transcoded_audio_stamped_late: bool,
    /// Enhanced RTMP is not negotiated: connect's `fourCcList`, FourCC
    /// maps and `capsEx` are not read nor stated in `_result`, and every
    /// tag goes to every RTMP player as it came (a codec-blind relay:
    /// legacy players get tags they cannot parse).
    pub ertmp_ignored: bool,
    /// Only Enhanced RTMP v2's FourCC info maps are read: a v1 client's
    /// `fourCcList` announces nothing, so it is treated as a legacy player.
    pub ertmp_fourcc_list_ignored: bool,
    /// HEVC, AV1, VP9 and VP8 from an Enhanced RTMP publisher are never
    /// passed through to WebRTC players: a peer that offered the codec
    /// still gets transcoded H.264 (decoded and encoded again for nothing).
    pub enhanced_video_transcoded: bool,
    /// A player's `video_track` and `audio_track` are ignored: every
    /// player of a multitrack stream gets its main track.
    pub track_selection_ignored: bool,
    /// Opus from a publisher is decoded and encoded again for WebRTC
    /// players instead of passed through: they hear it a generation worse
    /// and later.
    pub opus_transcoded: bool,
    /// An RTMP publisher's timestamps that jump back (an encoder restarted
    /// without reconnecting) or far ahead are passed on as they come:
    /// WebRTC players' RTP time goes back or leaps with them.
    pub timestamp_jumps_passed_on: bool,
    /// A WebRTC player's clock takes RTMP timestamps as they come, without
    /// serial-number arithmetic: once a publisher's timestamps wrap past
    /// 2^32 ms, RTP time falls back and stands still.
    pub timestamp_wrap_ignored: bool,
    /// RTMP stream names are compared without their case: a player of
    /// `case` gets the stream published as `Case`.
    pub stream_names_case_folded: bool,
    /// WHEP's server-sent events are done the least that seems to work: an
    /// event stream is created whatever events are asked for (unknown ones
    /// too), the `active` event is not sent at once for a live stream, and
    /// a deleted event stream can still be pulled.
    pub event_streams_lax: bool,
    /// An RTMP player is told when its publisher leaves, and then gets
    /// nothing more on that stream: a publisher that comes back under the
    /// same name is not played to it.
    pub players_dropped_on_unpublish: bool,
    /// The TURN servers of `webrtc.ice_servers` are named to WHIP and WHEP
    /// clients without their username and credential: a browser given them
    /// refuses the whole configuration.
    pub ice_server_credentials_left_out: bool,
}

/// A quirk's flag in [`Quirks`].
type Flag = fn(&mut Quirks) -> &mut bool;

/// Every quirk: its configuration name, a short alias, and its flag.
const QUIRKS: &[(&str, &str, Flag)] = &[
    ("video_line_for_audio_only", "ki-1", |q| {
        &mut q.video_line_for_audio_only
    }),
    ("publish_takes_played_audio", "ki-2", |q| {
        &mut q.publish_takes_played_audio
    }),
    ("stream_name_keeps_query", "ki-3", |q| &mut q.stream_name_keeps_query),
    ("answer_only_tracks_sent", "video-late", |q| {
        &mut q.answer_only_tracks_sent
    }),
    ("no_publisher_keyframe_requests", "no-pli", |q| {
        &mut q.no_publisher_keyframe_requests
    }),
    ("rtmp_audio_behind_video", "audio-behind", |q| {
        &mut q.rtmp_audio_behind_video
    }),
    ("no_renegotiation", "no-reoffer", |q| &mut q.no_renegotiation),
    ("rtmp_app_name_ignored", "app-name", |q| &mut q.rtmp_app_name_ignored),
    ("silent_joins", "no-joined", |q| &mut q.silent_joins),
    ("duplicate_participants", "dup-names", |q| &mut q.duplicate_participants),
    ("size_ignored", "no-size", |q| &mut q.size_ignored),
    ("speex_dropped", "no-speex", |q| &mut q.speex_dropped),
    ("extended_timestamps_always_repeated", "ext-ts-always", |q| {
        &mut q.extended_timestamps_always_repeated
    }),
    ("extended_timestamps_never_repeated", "ext-ts-never", |q| {
        &mut q.extended_timestamps_never_repeated
    }),
    ("webrtc_opus_not_forwarded", "no-opus-relay", |q| {
        &mut q.webrtc_opus_not_forwarded
    }),
    ("ertmp_ignored", "no-ertmp", |q| &mut q.ertmp_ignored),
    ("ertmp_fourcc_list_ignored", "no-fourcclist", |q| {
        &mut q.ertmp_fourcc_list_ignored
    }),
    ("enhanced_video_transcoded", "no-passthrough", |q| {
        &mut q.enhanced_video_transcoded
    }),
    ("track_selection_ignored", "no-track-pick", |q| {
        &mut q.track_selection_ignored
    }),
    ("opus_transcoded", "opus-reencode", |q| &mut q.opus_transcoded),
    ("timestamp_jumps_passed_on", "ts-jumps", |q| {
        &mut q.timestamp_jumps_passed_on
    }),
    ("timestamp_wrap_ignored", "no-wrap", |q| &mut q.timestamp_wrap_ignored),
    ("stream_names_case_folded", "case-folded", |q| {
        &mut q.stream_names_case_folded
    }),
    ("event_streams_lax", "sse-lax", |q| &mut q.event_streams_lax),
    ("players_dropped_on_unpublish", "drop-players", |q| {
        &mut q.players_dropped_on_unpublish
    }),
    ("ice_server_credentials_left_out", "turn-no-credentials", |q| {
        &mut q.ice_server_credentials_left_out
    }),
    ("chunk_aborts_ignored", "no-abort", |q| &mut q.chunk_aborts_ignored),
    ("chunk_interleaving_refused", "no-interleave", |q| {
        &mut q.chunk_interleaving_refused
    }),
    ("single_nal_mode_accepted", "pm0", |q| &mut q.single_nal_mode_accepted),
    ("payload_types_fixed", "fixed-pt", |q| &mut q.payload_types_fixed),
    ("sender_reports_withheld", "no-sr", |q| &mut q.sender_reports_withheld),
    ("retransmissions_withheld", "no-rtx", |q| {
        &mut q.retransmissions_withheld
    }),
    ("ice_restarts_unapplied", "ice-restart-unapplied", |q| {
        &mut q.ice_restarts_unapplied
    }),
    ("player_keyframe_requests_ignored", "pli-ignored", |q| {
        &mut q.player_keyframe_requests_ignored
    }),
    ("transcoded_audio_stamped_late", "audio-late", |q| {
        &mut q.transcoded_audio_stamped_late
    }),
];

impl Quirks {
    /// Switches a quirk on by its configuration name or alias, for
    /// `--quirk NAME` style switches.
    pub fn set(&mut self, name: &str) -> Result<(), String> {
        match QUIRKS.iter().find(|(long, short, _)| name == *long || name == *short) {
            Some((_, _, flag)) => {
                *flag(self) = true;
                Ok(())
            }
            None => {
                let known: Vec<String> = QUIRKS
                    .iter()
                    .map(|(long, short, _)| format!("{long} ({short})"))
                    .collect();
                Err(format!("no quirk {name:?}: {}", known.join(", ")))
            }
        }
    }

    /// The names of the quirks switched on.
    pub fn names(&self) -> Vec<&'static str> {
        let mut copy = *self;
        QUIRKS
            .iter()
            .filter(|(_, _, flag)| *flag(&mut copy))
            .map(|(long, _, _)| *long)
            .collect()
    }
}

/// Backend hook settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HooksConfig {
    /// How long a backend may take to answer; no answer in time refuses the action.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for HooksConfig {
    fn default() -> Self {
        HooksConfig {
            timeout: Duration::from_secs(5),
        }
    }
}

/// One application.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppConfig {
    /// Base URL of the backend that receives hooks (`{url}/connect`, ...); none by default.
    pub backend_url: Option<String>,
    /// What a player gets for a stream nobody publishes.
    pub on_missing_stream: MissingStreamPolicy,
    /// The codec RTMP players get for the Opus sound of a WebRTC publisher.
    pub opus_to_rtmp: RtmpAudio,
    /// Whether clients may join rooms (docs/rooms.md).
    pub rooms: RoomPolicy,
    /// WCS's "avoid transcoding": on (the default), a WebRTC player gets
    /// the publisher's H.264 as it is when it can decode it; off, every
    /// WebRTC player's video goes through a transcoder. Streams that cannot
    /// pass through (Sorenson Spark, B-frames, a size or bitrate the player
    /// asked for) are transcoded either way.
    pub avoid_transcoding: bool,
    /// An RTMP player gets the stream's pictures in H.264 and its sound in
    /// AAC (the shared transcoders' output) when they are in an Enhanced
    /// RTMP codec its connect did not announce (HEVC, AV1, VP9, VP8; FLAC,
    /// AC-3, E-AC-3): Flash Player, older ffmpeg and players that announce
    /// nothing see a picture and hear sound. Off, those tracks are withheld
    /// and the player is told so (`NetStream.Play.NoSupportedTrackFound`).
    pub transcode_for_legacy: bool,
    /// Tokens that let a client publish here: with any, a publisher must
    /// present one of them (docs/tokens.md); none (the default) lets anyone
    /// publish.
    pub publish_tokens: Vec<String>,
    /// Tokens that let a client play here, likewise.
    pub play_tokens: Vec<String>,
    /// Answer every WHEP offer with a counter-offer of the server's own
    /// (`406 Not Acceptable`, WHEP draft 03, section 4.2), which the player
    /// answers by `PATCH`: for players to be tried on that path. Off by
    /// default: offers are answered (`201 Created`).
    pub whep_counter_offer: bool,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            backend_url: None,
            on_missing_stream: MissingStreamPolicy::default(),
            opus_to_rtmp: RtmpAudio::default(),
            rooms: RoomPolicy::default(),
            avoid_transcoding: true,
            transcode_for_legacy: true,
            publish_tokens: Vec::new(),
            play_tokens: Vec::new(),
            whep_counter_offer: false,
        }
    }
}

/// Whether an application has rooms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RoomPolicy {
    /// A room exists while it has participants; joining one creates it.
    #[default]
    Open,
    /// No rooms: joining fails.
    Off,
}

/// The codec a WebRTC publisher's Opus sound is transcoded to for RTMP
/// players, who mostly cannot play Opus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RtmpAudio {
    /// Speex wideband (16 kHz): what Flash Player plays and sends, the
    /// participant of a Flash/WebRTC video chat. ffmpeg plays it too.
    #[default]
    Speex,
    /// AAC-LC (48 kHz mono): what encoders, ffmpeg and HLS/recording
    /// pipelines expect.
    Aac,
}

/// What `play` does for a stream that is not published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MissingStreamPolicy {
    /// Answer `NetStream.Play.StreamNotFound` (level error).
    #[default]
    NotFound,
    /// Answer Play.Reset and Play.Start, then `NetStream.Play.PublishNotify` and
    /// media when a publisher arrives.
    Wait,
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown fields.
    #[error("invalid configuration: {0}")]
    Invalid(#[from] toml::de::Error),
    /// A `--set` override is not `dotted.key=value`.
    #[error("invalid override {0:?}: expected dotted.key=value, e.g. rtmp.listen=\"127.0.0.1:0\"")]
    BadOverride(String),
    /// A value is out of range.
    #[error("invalid configuration: {0}")]
    Value(String),
}

impl Config {
    /// Loads the defaults, then `file` if given, then each `key=value` override
    /// (values are TOML; a value that is not valid TOML is taken as a string).
    pub fn load(file: Option<&Path>, overrides: &[String]) -> Result<Config, ConfigError> {
        let text = match file {
            Some(path) => std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.display().to_string(),
                source,
            })?,
            None => String::new(),
        };
        let mut table = toml::Table::try_from(Config::default()).map_err(|e| ConfigError::Value(e.to_string()))?;
        merge(&mut table, toml::from_str(&text)?);
        for item in overrides {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| ConfigError::BadOverride(item.clone()))?;
            let value = toml::from_str::<toml::Table>(&format!("v = {value}"))
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or_else(|| toml::Value::String(value.to_string()));
            set_path(&mut table, key.trim(), value).ok_or_else(|| ConfigError::BadOverride(item.clone()))?;
        }
        let config: Config = toml::Value::Table(table).try_into()?;
        config.validate()?;
        Ok(config)
    }

    /// The application key of an RTMP connection to the application
    /// `rtmp_app` (the tcUrl's path, without parameters) that named
    /// `explicit` (the connect argument `appKey`, or `?appKey=` on the URL):
    /// the explicit key wins; otherwise the RTMP application name when an
    /// application of that name is defined; otherwise `default_app`. So
    /// `rtmp://host/live/cam`, `/whep/live/cam` and a WebSocket session of
    /// application `live` reach the same stream. With `application_from_url`
    /// the RTMP application name is the key, defined or not.
    pub fn app_key(&self, rtmp_app: &str, explicit: Option<String>) -> String {
        if self.application_from_url {
            return rtmp_app.to_string();
        }
        let by_name = !self.quirks.rtmp_app_name_ignored && self.apps.contains_key(rtmp_app);
        explicit
            .or_else(|| by_name.then(|| rtmp_app.to_string()))
            .unwrap_or_else(|| self.default_app.clone())
    }

    /// Checks values serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let rtmp = &self.rtmp;
        if !(128..=0x7FFF_FFFF).contains(&rtmp.chunk_size) {
            return Err(ConfigError::Value(format!(
                "rtmp.chunk_size {} must be 128..=2147483647",
                rtmp.chunk_size
            )));
        }
        if rtmp.max_chunk_size == 0 || rtmp.max_message_size == 0 {
            return Err(ConfigError::Value(
                "rtmp.max_chunk_size and rtmp.max_message_size must be positive".into(),
            ));
        }
        for server in &self.webrtc.ice_servers {
            server
                .check()
                .map_err(|why| ConfigError::Value(format!("webrtc.ice_servers: {why}")))?;
        }
        if !self.application_from_url && !self.apps.contains_key(&self.default_app) {
            return Err(ConfigError::Value(format!(
                "default_app {:?} is not defined in [apps]",
                self.default_app
            )));
        }
        Ok(())
    }

    /// The effective configuration as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render configuration: {e}\n"))
    }
}

/// Merges `over` into `base`: tables key by key, anything else replaced.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(base)), toml::Value::Table(over)) => merge(base, over),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

fn set_path(table: &mut toml::Table, key: &str, value: toml::Value) -> Option<()> {
    let mut parts = key.split('.').peekable();
    let mut current = table;
    while let Some(part) = parts.next() {
        if part.is_empty() {
            return None;
        }
        if parts.peek().is_none() {
            current.insert(part.to_string(), value);
            return Some(());
        }
        current = current
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ice_servers_are_checked_as_a_client_would_use_them() {
        let server = |url: &str, credentials: bool| IceServer {
            url: url.into(),
            username: credentials.then(|| "user".into()),
            credential: credentials.then(|| "secret".into()),
        };
        assert_eq!(server("stun:stun.example.net", false).check(), Ok(()));
        assert_eq!(server("turns:turn.example.net:443?transport=tcp", true).check(), Ok(()));
        let said = server("turn:turn.example.net", false).check().unwrap_err();
        assert!(said.contains("needs a username and a credential"), "{said}");
        assert!(server("http://x", false).check().unwrap_err().contains("is not stun"));
        let overrides = ["webrtc.ice_servers=[{url = \"turn:t.example.net\"}]".to_string()];
        let refused = Config::load(None, &overrides).unwrap_err().to_string();
        assert!(
            refused.contains("webrtc.ice_servers: \"turn:t.example.net\": a TURN server needs"),
            "{refused}"
        );
    }

    #[test]
    fn defaults_define_the_two_applications() {
        let config = Config::load(None, &[]).unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.rtmp.listen.to_string(), "127.0.0.1:1935");
        assert_eq!(config.http.listen.to_string(), "127.0.0.1:8080");
        assert!(config.apps.contains_key("flashStreamingApp") && config.apps.contains_key("live"));
    }

    #[test]
    fn file_then_overrides() {
        let dir = std::env::temp_dir().join(format!("rs-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("server.toml");
        std::fs::write(
            &path,
            "application_from_url = true\n[rtmp]\nlisten = \"127.0.0.1:0\"\nidle_timeout = \"5s\"\n[apps.key1]\nbackend_url = \"http://127.0.0.1:9\"\non_missing_stream = \"wait\"\n",
        )
        .unwrap();
        let config = Config::load(
            Some(&path),
            &["rtmp.chunk_size=60000".into(), "default_app=key1".into()],
        )
        .unwrap();
        assert!(config.application_from_url);
        assert_eq!(config.rtmp.listen.port(), 0);
        assert_eq!(config.rtmp.idle_timeout, Duration::from_secs(5));
        assert_eq!(config.rtmp.chunk_size, 60000);
        assert_eq!(config.default_app, "key1");
        assert_eq!(config.apps.len(), 3, "a file's [apps] adds to the defaults");
        assert_eq!(config.apps["key1"].on_missing_stream, MissingStreamPolicy::Wait);
        // The printed configuration loads back to the same thing.
        std::fs::write(&path, config.to_toml()).unwrap();
        assert_eq!(Config::load(Some(&path), &[]).unwrap(), config);
    }

    #[test]
    fn the_rtmp_application_is_the_key_unless_one_is_named() {
        let config = Config::default();
        let named = |key: &str| Some(key.to_string());
        assert_eq!(config.app_key("live", None), "live", "a defined app's name");
        assert_eq!(config.app_key("flashStreamingApp", None), "flashStreamingApp");
        assert_eq!(config.app_key("other", None), "flashStreamingApp", "else default_app");
        assert_eq!(config.app_key("", None), "flashStreamingApp");
        assert_eq!(
            config.app_key("live", named("flashStreamingApp")),
            "flashStreamingApp",
            "an explicit appKey wins (the seed's Flash client sends one)"
        );
        assert_eq!(
            config.app_key("live", named("nope")),
            "nope",
            "refused later as undefined"
        );
        let from_url = Config {
            application_from_url: true,
            ..Config::default()
        };
        assert_eq!(from_url.app_key("other", named("live")), "other");
    }

    #[test]
    fn mistakes_are_explained() {
        let err = Config::load(None, &["rtmp.nope=1".into()]).unwrap_err().to_string();
        assert!(err.contains("unknown field `nope`"), "{err}");
        assert!(Config::load(None, &["nokey".into()]).is_err());
        assert!(Config::load(None, &["rtmp.chunk_size=0".into()]).is_err());
        assert!(Config::load(None, &["default_app=\"missing\"".into()]).is_err());
        let hooked = Config::load(None, &["apps.live.backend_url=\"http://127.0.0.1:9/hooks\"".into()]).unwrap();
        assert_eq!(
            hooked.apps["live"].backend_url.as_deref(),
            Some("http://127.0.0.1:9/hooks")
        );
        assert!(
            hooked.apps.contains_key("flashStreamingApp"),
            "--set on one app keeps the others"
        );
    }
}
