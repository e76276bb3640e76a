//! The actions a step can take, and what each one does.
//!
//! Everything that is particular to one action is here: its parameters
//! (a variant of [`Action`]), the actors that can take it, what it needs of
//! the target, the success it implies, and the code that performs it
//! ([`Case::perform`]). Adding an action touches this module only. What
//! follows an action, the watching of NetStatus events, media, players and
//! room events until an expectation holds, is the runner's (`run.rs`): the
//! action says which with the [`Then`] it returns.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use media::amf::Value;
use media::flv::{Tag, TagKind};
use media::netstatus::{code, NetStatus};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::attack::Attack;
use super::browser::BrowserActor;
use super::expect::Observed;
use super::ffmpeg::{FfmpegActor, Process as FfmpegProcess};
use super::run::{Actor, Case, RtmpActor, Sending, WebrtcActor};
use super::{parse_size, ActorKind, Expect, HookExpect, Step};
use crate::backend::HookCall;
use crate::browser::page::PageBrowser;
use crate::handshake::{ClientHandshake, DigestScheme};
use crate::shipped::Fixtures;
use crate::target::Capability;
use crate::verdict::Verdict;
use crate::webrtc::http::{Endpoint, Method, Offer, OfferShape};
use crate::webrtc::{PlayerOptions, PublisherOptions, Signalling, WebRtcPlayer, WebRtcPublisher};

/// How long a `request-keyframe` step waits for a keyframe to come on its
/// own before it asks for the next.
const KEYFRAME_WAIT: Duration = Duration::from_secs(10);

/// What a step does, with the parameters of that action and no others: a
/// parameter another action takes is an unknown field here, and one the
/// action needs is a missing field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Action {
    /// RTMP `connect` to the target's application (or `app`), with
    /// `params` in the URL (`c1=v1&c2=v2`) and `args` as extra arguments
    /// (Flash actors add `{login, appKey}` unless `args` is given; tables
    /// become AMF objects). Other RTMP actions connect this way with no
    /// parameters when the actor is not connected yet.
    /// Expectations: `statuses` (NetConnection codes), `level`.
    Connect {
        /// The RTMP application, instead of the target's.
        #[serde(default)]
        app: Option<String>,
        /// URL parameters (`c1=v1&c2=v2`).
        #[serde(default)]
        params: Option<String>,
        /// Extra arguments, as AMF values.
        #[serde(default)]
        args: Option<Vec<toml::Value>>,
        /// The handshake before it, instead of the actor's own.
        /// Expectations: `s2_echoes_c1`.
        #[serde(default)]
        handshake: Option<HandshakeShape>,
        /// What connect announces of Enhanced RTMP, instead of the actor's
        /// own (an `ertmp` actor announces every codec). Expectations:
        /// `server_announces`.
        #[serde(default)]
        announce: Option<super::ertmp::Announce>,
    },
    /// `createStream` (if the actor has none for `stream`), then `publish
    /// stream`. With `media`, the FLV fixture (path below `fixtures/`) is
    /// sent from then on.
    Publish {
        /// The stream name (made unique per run by the runner; a `?query` stays).
        stream: String,
        /// An FLV file below `fixtures/` to publish.
        #[serde(default)]
        media: Option<String>,
        /// Which tracks of `media` to send (default both).
        #[serde(default)]
        tracks: Tracks,
        /// Send `media` at its own pace (default) or as fast as possible.
        #[serde(default = "yes")]
        realtime: bool,
        /// Send at most this many seconds of `media`.
        #[serde(default)]
        seconds: Option<u32>,
        /// Send `media`'s script tags (its `onMetaData`); default true.
        /// Flash Player itself sends no metadata.
        #[serde(default = "yes")]
        metadata: bool,
        /// Send no video of `media` before this many milliseconds (a
        /// camera that starts after the microphone): video begins at the
        /// first keyframe from then on, after the sequence header.
        #[serde(default)]
        video_after: Option<u32>,
        /// Send no audio of `media` before this many milliseconds (an
        /// encoder whose first sound follows its first pictures): audio
        /// begins there, after its sequence header.
        #[serde(default)]
        audio_after: Option<u32>,
        /// Restart the H.264 encoder at this many ms of `media`: before its
        /// first keyframe from then on, an AVC end of sequence
        /// (AVCPacketType 2) and the sequence header again.
        #[serde(default)]
        avc_restart_at: Option<u32>,
        /// The publishing type: `live` (default), `record` or `append`.
        #[serde(default = "live")]
        kind: String,
        /// How the media is chunked (default: as the actor's client does).
        #[serde(default)]
        chunking: Option<Chunking>,
        /// Send audio and video in aggregate messages (type 22, as FMS
        /// edges relay them) of up to this many tags each.
        #[serde(default)]
        aggregate: Option<usize>,
        /// Reshape `media`'s Enhanced RTMP tags (multitrack layouts, ModEx
        /// nanosecond offsets, tags of unknown codecs in between).
        #[serde(default)]
        eflv: Option<super::ertmp::EflvShape>,
        /// An encoder's reconnect loop: when the publish is refused or the
        /// connection closes, wait this long, connect again on a new
        /// connection and publish again, until the step's time is up (OBS
        /// retries so after a network failure).
        #[serde(default, with = "humantime_serde")]
        retry: Option<Duration>,
    },
    /// The actor's network goes away: it stops sending (its media too) and
    /// reading, and its connection stays open until the case ends, so the
    /// server gets no FIN: a half-open connection.
    Vanish {},
    /// Sends Set Chunk Size (`size`) and chunks by it from then on, while
    /// any media the actor sends goes on.
    SetChunkSize {
        /// Bytes (1 to 2147483647 are legal).
        size: u32,
    },
    /// Sends Window Acknowledgement Size: the server is to acknowledge
    /// every `size` bytes it receives from then on.
    WindowAckSize {
        /// Bytes.
        size: u32,
    },
    /// Sends User Control SetBufferLength for the actor's stream `stream`
    /// (creating it if needed): the client buffers `ms` of it, as Flash
    /// Player says whenever a NetStream's `bufferTime` is set.
    SetBufferLength {
        /// The stream.
        stream: String,
        /// Milliseconds.
        ms: u32,
    },
    /// `createStream` then `play stream` (RTMP). Expectations: `statuses`,
    /// `rtmp_media` (messages received within `within`).
    Play {
        /// The stream name.
        stream: String,
        /// The arguments after the name: start (-2 live or recorded, -1
        /// live only, 0 or more recorded from there; FFmpeg sends these
        /// times 1000), duration, reset. Default `[-2]`.
        #[serde(default)]
        args: Option<Vec<toml::Value>>,
    },
    /// Sends a data message (AMF0, type 18) on the actor's publishing
    /// `stream`, while any media it sends goes on: `values`, as
    /// `["onCuePoint", {name = "cue1", time = 1.5, type = "event"}]`.
    SendData {
        /// The stream.
        stream: String,
        /// The message's values.
        values: Vec<toml::Value>,
    },
    /// Stops publishing `stream` the way the actor's client does (a WebRTC
    /// actor stops its publisher, and keeps playing; it names no stream).
    Unpublish {
        /// The stream (RTMP actors).
        #[serde(default)]
        stream: Option<String>,
    },
    /// Closes the actor's connection (or ends its WebRTC session).
    Disconnect {},
    /// Waits for NetStatus events on the actor (`expect.statuses` within
    /// `expect.within`); on a WebRTC actor, checks what its player has got
    /// so far (`expect.media`), or waits for room events.
    Wait {
        /// The stream waited on, for the report only.
        #[serde(default)]
        stream: Option<String>,
    },
    /// Waits `ms` milliseconds.
    Sleep {
        /// How long.
        ms: u64,
    },
    /// Sends `hex` (or the file `bytes`, below `fixtures/`) on a raw
    /// connection. Expectations: `closed`, `survives`.
    SendRaw {
        /// Raw bytes in hex (spaces allowed).
        #[serde(default)]
        hex: Option<String>,
        /// Raw bytes from a file below `fixtures/`.
        #[serde(default)]
        bytes: Option<String>,
        /// Do the simple handshake before the bytes (default true).
        #[serde(default = "yes")]
        handshake: bool,
    },
    /// A hostile client's attack (see [`Attack`]) from a `raw` actor,
    /// sized by `count`; `stream` is the stream it aims at where it needs
    /// one (a slow viewer's, a WHEP flood's). What it opens stays open until
    /// the actor disconnects or the case ends. Expectations: `closed` (the
    /// server closed the attacking connections), `survives`.
    Attack {
        /// Which attack.
        kind: Attack,
        /// Its size (connections, messages, datagrams), instead of its own.
        #[serde(default)]
        count: Option<usize>,
        /// The stream it aims at.
        #[serde(default)]
        stream: Option<String>,
    },
    /// Plays `stream` over WebRTC. Expectations: `sdp`, `media`.
    WebrtcPlay {
        /// The stream name.
        stream: String,
        /// `whep` (default) or `ws`.
        #[serde(default)]
        signalling: PlaySignalling,
        /// Offer audio (default true).
        #[serde(default = "yes")]
        audio: bool,
        /// Offer video (default true).
        #[serde(default = "yes")]
        video: bool,
        /// Video codecs offered before H.264, in this order (`H265`, `AV1`,
        /// `VP9`, `VP8`); the player decodes them with libavcodec.
        #[serde(default)]
        video_codecs: Vec<OfferedVideo>,
        /// The WebRTC client's shape.
        #[serde(default)]
        profile: Profile,
        /// Lose every this many-th video RTP packet the server sends (not
        /// its retransmissions) on the way to the player, which asks for
        /// them again (NACK). Expectation: `media.losses_repaired`.
        #[serde(default)]
        lose_video_every: Option<u64>,
    },
    /// A WebRTC actor's player asks for a keyframe (RTCP PLI) 200 ms after
    /// a keyframe has come, so that the publisher's own next one is far
    /// off. Expectation: `media.keyframe_answered` within the step's time.
    RequestKeyframe {},
    /// A WebRTC actor's player restarts ICE over WHEP: a `PATCH` of its
    /// session with new credentials and `If-Match: *` (WHEP draft 03,
    /// section 4.5.3). The server's answer is the step's `http`; after a
    /// `200` holding the server's new credentials, the player goes on with
    /// both. Expectations: `http`, and `media.restart_checks_answered`.
    RestartIce {},
    /// A WebRTC actor's player switches its video to another layer (a
    /// track of a multitrack stream): by `rid`, or the largest that fits
    /// `max_width` and `max_height`, or (none of them) back to the first.
    /// Over WHEP a POST to the layer entry point its 201 announced; over
    /// the WebSocket channel a `layer` message. Expectations: `refused`,
    /// then a `wait` step's `media`.
    SelectLayer {
        /// The layer's `rid` (the track id).
        #[serde(default)]
        rid: Option<String>,
        /// The widest picture wanted.
        #[serde(default)]
        max_width: Option<u32>,
        /// The tallest picture wanted.
        #[serde(default)]
        max_height: Option<u32>,
    },
    /// Publishes `stream` over WebRTC: a moving test pattern and a tone.
    WebrtcPublish {
        /// The stream name.
        stream: String,
        /// `whip` (default) or `ws`.
        #[serde(default)]
        signalling: PublishSignalling,
        /// The tone's frequency (default 440 Hz).
        #[serde(default)]
        tone_hz: Option<f64>,
        /// How often the publisher makes a keyframe on its own (default
        /// 2 s); it always makes one when asked (PLI/FIR). A browser may
        /// make one in 20 s or more.
        #[serde(default, with = "humantime_serde")]
        keyframe_interval: Option<Duration>,
        /// The WebRTC client's shape.
        #[serde(default)]
        profile: Profile,
    },
    /// Replays the RTMP capture `capture` (a pcap/pcapng below `fixtures/`,
    /// or the client's and the server's raw bytes: two paths separated by a
    /// space) and compares the answers with the captured server's.
    Replay {
        /// The capture.
        capture: String,
        /// The RTMP application, instead of the target's.
        #[serde(default)]
        app: Option<String>,
    },
    /// Waits for the backend actor to receive a hook call (since the case
    /// began) that matches `expect.hook`.
    Hook {},
    /// Joins `room` as `participant` (RTMP: a `sendData` call; WebRTC
    /// actors: their WebSocket session). Expectations: `room_events`.
    JoinRoom {
        /// The room (made unique per run like stream names).
        room: String,
        /// The name to join as.
        participant: String,
    },
    /// Leaves `room`.
    LeaveRoom {
        /// The room.
        room: String,
    },
    /// Sends `text` to the others in `room` (or only to `to`).
    RoomMessage {
        /// The room.
        room: String,
        /// The message.
        text: String,
        /// Its one addressee.
        #[serde(default)]
        to: Option<String>,
    },
    /// Calls the NetConnection method `method` with `args` (AMF values,
    /// tables as objects) and a transaction id, as Flash's
    /// `NetConnection.call` with a responder does, connecting first if need
    /// be. The server must answer `_result` or `_error` within `within`; the
    /// info object of an `_error` counts among the statuses.
    Call {
        /// The method.
        method: String,
        /// Its arguments, after the null command object.
        #[serde(default)]
        args: Vec<toml::Value>,
    },
    /// One WHIP or WHEP request made by hand, and whatever the server
    /// answers: every status is observed, none is an error. `method` goes
    /// to the `whip` or `whep` URL of `stream`, or to `session`, the
    /// `Location` of this actor's last `201`. `body`: a fresh SDP `offer`
    /// (`sendonly` to WHIP, `recvonly` to WHEP, with the m-lines `audio` and
    /// `video` ask for), a `trickle` or `ice-restart` fragment for the last
    /// offer's ICE session, `garbage`, or `none`. In `headers`, `{etag}`
    /// stands for the last `ETag` the server gave (a header naming it is
    /// left out when there was none), `{publish_token}` and `{play_token}`
    /// for the target's tokens. Expectations: `http`, `sdp` (of an
    /// SDP answer).
    Http {
        /// `POST` (default), `GET`, `HEAD`, `OPTIONS`, `PATCH`, `DELETE`, `PUT`.
        #[serde(default)]
        method: Method,
        /// `whip`, `whep` or `session`.
        to: HttpTarget,
        /// The stream (`whip` and `whep`).
        #[serde(default)]
        stream: Option<String>,
        /// What the request carries.
        #[serde(default)]
        body: HttpBody,
        /// The `Content-Type`, instead of the body's own.
        #[serde(default)]
        content_type: Option<String>,
        /// More request header fields.
        #[serde(default)]
        headers: BTreeMap<String, String>,
        /// An offer's audio m-line (default true).
        #[serde(default = "yes")]
        audio: bool,
        /// An offer's video m-line (default true).
        #[serde(default = "yes")]
        video: bool,
        /// An offer in `sendrecv`, instead of the endpoint's direction.
        #[serde(default)]
        sendrecv: bool,
        /// The codecs an offer holds (default `opus` and `H264`; also
        /// `PCMU`, `PCMA`, `VP8`, `VP9`, `AV1`).
        #[serde(default)]
        codecs: Vec<String>,
        /// An offer in the shape this client sends (`chrome`, `firefox`,
        /// `safari`, `obs`, `ffmpeg`) instead of the suite's own; `codecs`
        /// and `sendrecv` do not apply. No peer stands behind it: it is
        /// for checking the answer.
        #[serde(default)]
        like: Option<crate::webrtc::shapes::ClientOffer>,
        /// The event names an `events` body asks for.
        #[serde(default)]
        events: Vec<String>,
        /// The text of a `json` body.
        #[serde(default)]
        json: Option<String>,
        /// Read a streamed answer (server-sent events) this long, instead
        /// of to its end.
        #[serde(default, with = "humantime_serde")]
        read_for: Option<Duration>,
    },
    /// Sends the NetStream command `method` with `args` (after the null
    /// command object; in a string, also inside a table, `{stream}` is the
    /// stream's name as the run names it and `{stream:other}` another
    /// stream's, as play2's `streamName` needs) on the
    /// actor's stream `stream` (created first if need be), transaction id
    /// 0, as Flash's `NetStream` methods do (`pause`, `seek`,
    /// `receiveVideo`, `play2`...). Expectations: `statuses`, `rtmp_media`.
    StreamCommand {
        /// The stream.
        stream: String,
        /// The command.
        method: String,
        /// Its arguments.
        #[serde(default)]
        args: Vec<toml::Value>,
    },
    /// A WebRTC actor's publisher switches to pictures of `size` from its
    /// next frame, an IDR with new parameter sets.
    Resize {
        /// `WxH`.
        size: Size,
    },
}

/// Sets up `client` to send media as `chunking` says.
async fn chunk_as(client: &mut crate::client::RtmpClient, chunking: &Chunking) -> Result<(), String> {
    let defaults = crate::client::MediaLayout::default();
    let (audio, video) = (
        chunking.audio_csid.unwrap_or(defaults.audio_csid),
        chunking.video_csid.unwrap_or(defaults.video_csid),
    );
    if chunking.interleave && audio == video {
        return Err(format!(
            "chunking: interleave needs audio and video on different chunk streams, not both on {audio}"
        ));
    }
    client.set_media_layout(crate::client::MediaLayout {
        audio_csid: chunking.audio_csid.unwrap_or(defaults.audio_csid),
        video_csid: chunking.video_csid.unwrap_or(defaults.video_csid),
        timestamp_offset: chunking.timestamp_offset,
        restart_at: chunking.restart_at,
        leap: chunking.leap_at.map(|at| (at, chunking.leap_by)),
        interleave: chunking.interleave,
        abort_every: chunking.abort_every,
    });
    client.set_chunk_style(media::rtmp::ChunkStyle {
        full_headers: chunking.full_headers,
        bare_continuations: chunking.bare_continuations,
    });
    match chunking.size {
        Some(size) => client.set_chunk_size(size).await.map_err(|e| e.to_string()),
        None => Ok(()),
    }
}

fn yes() -> bool {
    true
}

fn live() -> String {
    "live".into()
}

impl Action {
    /// The action's name in reports.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Connect { .. } => "Connect",
            Action::Publish { .. } => "Publish",
            Action::Play { .. } => "Play",
            Action::Unpublish { .. } => "Unpublish",
            Action::Disconnect {} => "Disconnect",
            Action::Vanish {} => "Vanish",
            Action::Wait { .. } => "Wait",
            Action::Sleep { .. } => "Sleep",
            Action::SendRaw { .. } => "SendRaw",
            Action::Attack { .. } => "Attack",
            Action::WebrtcPlay { .. } => "WebrtcPlay",
            Action::WebrtcPublish { .. } => "WebrtcPublish",
            Action::Replay { .. } => "Replay",
            Action::Hook {} => "Hook",
            Action::JoinRoom { .. } => "JoinRoom",
            Action::LeaveRoom { .. } => "LeaveRoom",
            Action::RoomMessage { .. } => "RoomMessage",
            Action::Resize { .. } => "Resize",
            Action::RequestKeyframe {} => "RequestKeyframe",
            Action::RestartIce {} => "RestartIce",
            Action::SelectLayer { .. } => "SelectLayer",
            Action::Call { .. } => "Call",
            Action::Http { .. } => "Http",
            Action::StreamCommand { .. } => "StreamCommand",
            Action::SendData { .. } => "SendData",
            Action::SetChunkSize { .. } => "SetChunkSize",
            Action::WindowAckSize { .. } => "WindowAckSize",
            Action::SetBufferLength { .. } => "SetBufferLength",
        }
    }

    /// The stream the step names, if any.
    pub fn stream(&self) -> Option<&str> {
        match self {
            Action::Publish { stream, .. }
            | Action::Play { stream, .. }
            | Action::SendData { stream, .. }
            | Action::StreamCommand { stream, .. }
            | Action::SetBufferLength { stream, .. }
            | Action::WebrtcPlay { stream, .. }
            | Action::WebrtcPublish { stream, .. } => Some(stream),
            Action::Unpublish { stream }
            | Action::Wait { stream }
            | Action::Http { stream, .. }
            | Action::Attack { stream, .. } => stream.as_deref(),
            _ => None,
        }
    }

    /// What the action needs of the target, played by an actor of `kind`.
    pub(super) fn capability(&self, kind: Option<ActorKind>) -> Option<Capability> {
        let webrtc = matches!(kind, Some(ActorKind::Webrtc | ActorKind::Browser));
        Some(match self {
            // What the actor's own play or publish step needs.
            Action::Wait { .. } | Action::Unpublish { .. } if webrtc => return None,
            Action::Connect { .. }
            | Action::Wait { .. }
            | Action::Unpublish { .. }
            | Action::SendRaw { .. }
            | Action::Replay { .. }
            | Action::Call { .. }
            | Action::StreamCommand { .. }
            | Action::SetChunkSize { .. }
            | Action::SetBufferLength { .. }
            | Action::WindowAckSize { .. } => Capability::Rtmp,
            Action::SendData { .. } => Capability::RtmpPublish,
            Action::Publish { .. } => Capability::RtmpPublish,
            Action::Play { .. } => Capability::RtmpPlay,
            Action::WebrtcPlay {
                signalling: PlaySignalling::Ws,
                ..
            }
            | Action::WebrtcPublish {
                signalling: PublishSignalling::Ws,
                ..
            } => Capability::WebSocket,
            Action::WebrtcPlay { .. }
            | Action::Http {
                to: HttpTarget::Whep, ..
            } => Capability::Whep,
            Action::Http {
                to: HttpTarget::Whip, ..
            } => Capability::Whip,
            Action::Http { .. } => return None,
            Action::WebrtcPublish { .. } => Capability::Whip,
            Action::Hook {} => Capability::BackendHooks,
            Action::Attack { kind, .. } => kind.capability(),
            Action::JoinRoom { .. } | Action::LeaveRoom { .. } | Action::RoomMessage { .. } => Capability::Rooms,
            Action::Resize { .. }
            | Action::RequestKeyframe {}
            | Action::RestartIce {}
            | Action::SelectLayer { .. }
            | Action::Disconnect {}
            | Action::Vanish {}
            | Action::Sleep { .. } => return None,
        })
    }

    /// The NetStatus code that means success, expected when a step of an
    /// actor of `kind` says nothing else (an `ffmpeg` actor shows none).
    pub(super) fn success(&self, kind: Option<ActorKind>) -> Option<&'static str> {
        if kind == Some(ActorKind::Ffmpeg) {
            return None;
        }
        match self {
            Action::Connect { .. } => Some(code::CONNECT_SUCCESS),
            Action::Publish { .. } => Some(code::PUBLISH_START),
            Action::Play { .. } => Some(code::PLAY_START),
            _ => None,
        }
    }

    /// Whether the server has answered the action, so the step may end: a
    /// `join-room` only once a STATE or FAILED room event came (the next
    /// step never races the join); other actions need nothing.
    pub(super) fn answered(&self, observed: &Observed) -> bool {
        !matches!(self, Action::JoinRoom { .. })
            || observed
                .room_events
                .iter()
                .any(|e| e.starts_with("STATE") || e.starts_with("FAILED"))
    }

    /// Whether media follows the action's answer with no end (`play`): its
    /// step ends as soon as the expected statuses came, without the quiet
    /// period of `exactly` or `forbidden`, unless it expects media.
    pub(super) fn streams_media(&self) -> bool {
        matches!(self, Action::Play { .. })
    }

    /// Whether a step may take this action with an actor of `kind`;
    /// `hook` tells whether the step expects a hook call.
    pub(super) fn check(&self, kind: Option<ActorKind>, hook: bool) -> Result<(), String> {
        if !self.fits(kind) {
            let who = kind.map_or("no actor".to_string(), |k| format!("a {k:?} actor"));
            return Err(format!(
                "{} does not fit {who} (or lacks hex/bytes, an RTMP unpublish its stream, or an http step the stream of its whip or whep)",
                self.name()
            ));
        }
        if matches!(self, Action::Hook {}) && !hook {
            return Err("a hook step needs expect.hook".into());
        }
        Ok(())
    }

    /// The actor kinds that can take this action.
    fn fits(&self, kind: Option<ActorKind>) -> bool {
        let rtmp = matches!(kind, Some(ActorKind::Flash | ActorKind::Encoder | ActorKind::Ertmp));
        let webrtc = kind == Some(ActorKind::Webrtc);
        match self {
            Action::Publish { media: Some(_), .. }
            | Action::Play { .. }
            | Action::Wait { stream: Some(_) }
            | Action::Unpublish { .. }
                if kind == Some(ActorKind::Ffmpeg) =>
            {
                true
            }
            Action::WebrtcPlay {
                signalling: PlaySignalling::Whep,
                profile: Profile::Default,
                ..
            }
            | Action::WebrtcPublish {
                signalling: PublishSignalling::Whip,
                profile: Profile::Default,
                ..
            }
            | Action::Wait { .. }
            | Action::Unpublish { stream: None }
                if kind == Some(ActorKind::Browser) =>
            {
                true
            }
            Action::Connect { .. }
            | Action::Publish { .. }
            | Action::Play { .. }
            | Action::Replay { .. }
            | Action::Call { .. }
            | Action::StreamCommand { .. }
            | Action::SendData { .. }
            | Action::SetChunkSize { .. }
            | Action::SetBufferLength { .. }
            | Action::WindowAckSize { .. }
            | Action::Vanish {} => rtmp,
            Action::Unpublish { stream } => (rtmp && stream.is_some()) || webrtc,
            Action::Wait { .. } | Action::JoinRoom { .. } | Action::LeaveRoom { .. } | Action::RoomMessage { .. } => {
                rtmp || webrtc
            }
            Action::Disconnect {} => kind.is_some_and(|k| k != ActorKind::Backend),
            Action::Sleep { .. } => kind.is_none(),
            Action::SendRaw { hex, bytes, .. } => kind == Some(ActorKind::Raw) && (hex.is_some() || bytes.is_some()),
            Action::Attack {
                kind: attack, stream, ..
            } => kind == Some(ActorKind::Raw) && (stream.is_some() || !attack.needs_stream()),
            Action::WebrtcPlay { .. }
            | Action::WebrtcPublish { .. }
            | Action::Resize { .. }
            | Action::RequestKeyframe {}
            | Action::RestartIce {}
            | Action::SelectLayer { .. } => webrtc,
            Action::Http { to, stream, .. } => {
                webrtc && stream.is_some() == matches!(to, HttpTarget::Whip | HttpTarget::Whep)
            }
            Action::Hook {} => kind == Some(ActorKind::Backend),
        }
    }
}

/// How a `connect` step's handshake goes, where it is not the actor's own
/// (a Flash actor sends Flash Player's digest C1, others a simple one, each
/// at once).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandshakeShape {
    /// The C1 to send.
    #[serde(default)]
    pub c1: Option<C1Shape>,
    /// Bytes per write of C0C1 and of C2, each write flushed on its own
    /// (1: byte by byte).
    #[serde(default)]
    pub piece: Option<usize>,
}

impl HandshakeShape {
    /// Makes `profile` shake hands this way.
    pub(super) fn apply(self, profile: &mut crate::client::ClientProfile) {
        if let Some(c1) = self.c1 {
            profile.handshake = match c1 {
                C1Shape::Simple => ClientHandshake::Simple,
                C1Shape::Digest8 => ClientHandshake::FlashDigest(DigestScheme::Scheme0),
                C1Shape::Digest772 => ClientHandshake::FlashDigest(DigestScheme::Scheme1),
            };
        }
        if let Some(piece) = self.piece {
            profile.handshake_piece = piece;
        }
    }
}

/// A client's C1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum C1Shape {
    /// Version 0 and random bytes, no digest (Adobe's specification, §5.2.3;
    /// FFmpeg's, OBS's and librtmp's default).
    #[serde(rename = "simple")]
    Simple,
    /// A Flash Player digest whose offset bytes are at 8 (FFmpeg's and
    /// Red5's digest C1).
    #[serde(rename = "digest-8")]
    Digest8,
    /// A Flash Player digest whose offset bytes are at 772 (Flash Player's
    /// own C1).
    #[serde(rename = "digest-772")]
    Digest772,
}

/// What a `connect` (or the connection an action opens first) is to be.
#[derive(Debug, Default)]
pub(super) struct ConnectHow<'a> {
    /// The RTMP application, instead of the target's.
    pub(super) app: Option<&'a str>,
    /// URL parameters.
    pub(super) params: Option<&'a str>,
    /// Extra arguments, instead of the actor's own.
    pub(super) args: Option<Vec<Value>>,
    /// The handshake, instead of the actor's own.
    pub(super) handshake: Option<HandshakeShape>,
    /// What connect announces of Enhanced RTMP, instead of the actor's own.
    pub(super) announce: Option<&'a super::ertmp::Announce>,
}

/// How a `publish` step chunks its media: the chunk size, the chunk
/// streams, the header style and a timestamp offset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chunking {
    /// Set Chunk Size to this before the media.
    #[serde(default)]
    pub size: Option<u32>,
    /// Audio's chunk stream id (2 to 65599; 64 and up take two bytes, 320
    /// and up three).
    #[serde(default)]
    pub audio_csid: Option<u32>,
    /// Video's chunk stream id.
    #[serde(default)]
    pub video_csid: Option<u32>,
    /// Added to every media timestamp, wrapping at 2^32 (16777215 and up
    /// need extended timestamps; near 4294967295 they wrap).
    #[serde(default)]
    pub timestamp_offset: u32,
    /// From this media timestamp on, the timestamps sent start again from
    /// 0 while the media goes on at its pace, as an encoder restarted
    /// without reconnecting sends them: a jump back mid-stream.
    #[serde(default)]
    pub restart_at: Option<u32>,
    /// From this media timestamp on, the timestamps sent are `leap_by` ms
    /// ahead while the media goes on at its pace: a source that leapt to a
    /// new epoch (a playlist's next item, a relay whose origin changed).
    #[serde(default)]
    pub leap_at: Option<u32>,
    /// How far `leap_at` leaps, in ms.
    #[serde(default)]
    pub leap_by: u32,
    /// Every message with a full (type 0) header.
    #[serde(default)]
    pub full_headers: bool,
    /// Continuation chunks without the extended timestamp.
    #[serde(default)]
    pub bare_continuations: bool,
    /// Each video message's chunks after its first go out between the
    /// audio messages that follow it.
    #[serde(default)]
    pub interleave: bool,
    /// Every this many video messages, one is first started, abandoned
    /// after its first chunk with an Abort Message, then sent whole.
    #[serde(default)]
    pub abort_every: Option<u32>,
}

/// Where an `http` step's request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HttpTarget {
    /// The target's WHIP endpoint for the step's stream.
    Whip,
    /// The target's WHEP endpoint for the step's stream.
    Whep,
    /// The session URL (`Location`) of the actor's last `201`.
    Session,
    /// The server-sent events entry point a WHEP `201` announced (its
    /// `Link` with `rel="urn:ietf:params:whep:ext:core:server-sent-events"`).
    Events,
    /// The event stream (`Location`) of the last `201` from `events`.
    EventStream,
    /// The video layer selection entry point (its `Link` with
    /// `rel="urn:ietf:params:whep:ext:core:layer"`) of the actor's WHEP
    /// player, or of its last WHEP `201`.
    Layer,
}

/// What an `http` step's request carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HttpBody {
    /// No body.
    #[default]
    None,
    /// A fresh SDP offer (`application/sdp`).
    Offer,
    /// A trickle-ICE fragment with one more candidate for the last offer's
    /// ICE session (`application/trickle-ice-sdpfrag`).
    Trickle,
    /// A fragment with new ICE credentials: an ICE restart.
    IceRestart,
    /// The SDP answer of the last offer's peer to the counter-offer of the
    /// last WHEP `406` (`application/sdp`, WHEP draft 03, section 4.2).
    Answer,
    /// Text that is no SDP, sent as `application/sdp`.
    Garbage,
    /// The JSON array of the step's `events` (`application/json`).
    Events,
    /// The step's `json` text (`application/json`).
    Json,
}

/// What an actor's `http` steps keep between requests.
#[derive(Default)]
pub(super) struct HandMade {
    /// The last offer made, and where it went.
    offer: Option<(Offer, Endpoint)>,
    /// The `Location` of the last `201` (or WHEP `406` with a counter-offer).
    session: Option<String>,
    /// The counter-offer of the last WHEP `406`.
    counter_offer: Option<String>,
    /// The last `ETag` of a 2xx answer.
    etag: Option<String>,
    /// The server-sent events entry point the last WHEP `201` announced.
    events: Option<String>,
    /// The layer selection entry point the last WHEP `201` announced.
    layer: Option<String>,
    /// The `Location` of the last `201` from the events entry point.
    event_stream: Option<String>,
}

/// Which tracks of an FLV fixture a `publish` step sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tracks {
    /// Sound and pictures, and the script tags.
    #[default]
    Both,
    /// Sound only.
    Audio,
    /// Pictures only.
    Video,
}

/// How a WebRTC player signals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlaySignalling {
    /// WHEP: an HTTP POST of the offer.
    #[default]
    Whep,
    /// The server's WebSocket channel.
    Ws,
}

/// How a WebRTC publisher signals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PublishSignalling {
    /// WHIP: an HTTP POST of the offer.
    #[default]
    Whip,
    /// The server's WebSocket channel.
    Ws,
}

pub use crate::webrtc::OfferedVideo;

/// The shape of a WebRTC client's offer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// The suite's own.
    #[default]
    Default,
    /// Safari's H.264 profiles, High before Constrained Baseline.
    Safari,
}

/// A picture size, written `WxH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Size {
    /// Pixels.
    pub width: usize,
    /// Pixels.
    pub height: usize,
}

impl TryFrom<String> for Size {
    type Error = String;
    fn try_from(text: String) -> Result<Size, String> {
        parse_size(&text)
            .map(|(width, height)| Size { width, height })
            .ok_or_else(|| format!("a size is WxH, not {text:?}"))
    }
}

impl From<Size> for String {
    fn from(size: Size) -> String {
        format!("{}x{}", size.width, size.height)
    }
}

/// What the runner watches once an action is done, until an expectation
/// holds or the step's time runs out.
pub(super) enum Then {
    /// Nothing: the action's own observations are the step's.
    Done,
    /// The RTMP actor's NetStatus events, media and room events, the
    /// statuses counted from `before`.
    Statuses {
        /// How many of the actor's statuses came before the action.
        before: usize,
    },
    /// The WebRTC actor's player, and its publisher's keyframe requests.
    Player,
    /// Room events on the WebRTC actor's WebSocket session.
    RoomEvents,
}

impl Case<'_> {
    /// Performs `step`'s action with `actor` (none for `sleep` and `hook`),
    /// noting in `observed` what it saw, and says what to watch next.
    pub(super) async fn perform(
        &self,
        actor: Option<&mut Actor>,
        step: &Step,
        candidates: &[(Verdict, Expect)],
        within: Duration,
        observed: &mut Observed,
    ) -> Then {
        match (&step.action, actor) {
            (Action::Sleep { ms }, _) => tokio::time::sleep(Duration::from_millis(*ms)).await,
            (Action::Hook {}, _) => self.hook(candidates, within, observed).await,
            (action, Some(Actor::Rtmp(actor))) => return self.rtmp(action, actor, within, observed).await,
            (action, Some(Actor::Webrtc(actor))) => {
                return self.webrtc(action, actor, candidates, within, observed).await
            }
            (Action::SendRaw { hex, bytes, handshake }, Some(Actor::Raw(raw))) => {
                let actor = step.actor.as_deref().unwrap_or("raw");
                self.send_raw(&mut raw.socket, actor, hex, bytes, *handshake, within, observed)
                    .await;
            }
            (Action::Attack { kind, count, stream }, Some(Actor::Raw(raw))) => {
                let actor = step.actor.as_deref().unwrap_or("raw");
                let aim = self.aim(stream.as_deref());
                observed
                    .timed_log
                    .push((Instant::now(), format!("{actor} > attack {kind:?}")));
                let report = super::attack::launch(*kind, *count, &aim, within).await;
                observed.closed = report.closed;
                if !report.summary.is_empty() {
                    observed
                        .timed_log
                        .push((Instant::now(), format!("{actor} < {}", report.summary)));
                }
                raw.held.push(report.held);
            }
            (Action::Disconnect {}, Some(Actor::Raw(raw))) => {
                raw.socket = None;
                raw.held.clear();
            }
            (action, Some(Actor::Ffmpeg(ffmpeg))) => self.ffmpeg(action, ffmpeg, candidates, within, observed).await,
            (action, Some(Actor::Browser(browser))) => {
                self.browser(action, browser, candidates, within, observed).await
            }
            (action, _) => observed.error = Some(format!("{} does not fit the actor", action.name())),
        }
        Then::Done
    }

    /// A `browser` actor's action: its page plays over WHEP or publishes
    /// over WHIP, and what it decodes is watched until the step's
    /// expectations hold (a publish: until its media flows).
    async fn browser(
        &self,
        action: &Action,
        actor: &mut BrowserActor,
        candidates: &[(Verdict, Expect)],
        within: Duration,
        observed: &mut Observed,
    ) {
        if let Some(name) = candidates
            .iter()
            .find_map(|(_, e)| e.media.as_ref().and_then(super::browser::unobservable))
        {
            observed.error = Some(format!("a browser actor cannot observe `{name}`"));
            return;
        }
        let deadline = tokio::time::Instant::now() + within;
        if actor.page.is_none() {
            match PageBrowser::open().await {
                Ok(page) => actor.page = Some(page),
                Err(error) => {
                    observed.error = Some(error.to_string());
                    return;
                }
            }
        }
        let Some(page) = actor.page.as_mut() else { return };
        let publishing = matches!(action, Action::WebrtcPublish { .. });
        let started = match action {
            Action::WebrtcPlay {
                stream, audio, video, ..
            } => match self.endpoint_url(stream, "whep") {
                Ok(url) => {
                    observed.log.push(format!("browser plays {url} over WHEP"));
                    page.play(&url, *audio, *video).await.map_err(|e| e.to_string())
                }
                Err(error) => Err(error),
            },
            Action::WebrtcPublish { stream, .. } => match self.endpoint_url(stream, "whip") {
                Ok(url) => {
                    observed
                        .log
                        .push(format!("browser publishes its camera to {url} over WHIP"));
                    page.publish(&url, true, true).await.map_err(|e| e.to_string())
                }
                Err(error) => Err(error),
            },
            Action::Unpublish { .. } | Action::Disconnect {} => {
                if let Err(error) = page.stop().await {
                    observed.error = Some(error.to_string());
                }
                return;
            }
            _ => Ok(()),
        };
        if let Err(error) = started {
            observed.error = Some(error);
            return;
        }
        loop {
            let state = match page.state().await {
                Ok(state) => state,
                Err(error) => {
                    observed.error = Some(error.to_string());
                    return;
                }
            };
            super::browser::observe(&state, observed);
            let settled = observed.error.is_some() || observed.refusal.is_some();
            let done = if publishing {
                super::browser::publishing(&state)
            } else {
                candidates[0].1.check(observed)
            };
            if settled || done.is_ok() {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                if publishing {
                    observed.error = done.err();
                }
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// An `ffmpeg` actor's action: a publish waits until FFmpeg writes
    /// media (the server answered Publish.Start), a play or wait watches
    /// what its player decodes until the step's expectations hold.
    async fn ffmpeg(
        &self,
        action: &Action,
        actor: &mut FfmpegActor,
        candidates: &[(Verdict, Expect)],
        within: Duration,
        observed: &mut Observed,
    ) {
        let base = self.running.rtmp_base.clone().unwrap_or_default();
        let url = |stream: &str| format!("{base}/{}/{}", self.running.app, self.stream_name(stream));
        let deadline = tokio::time::Instant::now() + within;
        let tick = Duration::from_millis(50);
        match action {
            Action::Publish {
                stream,
                media: Some(file),
                ..
            } => {
                let started = self
                    .options
                    .fixtures
                    .read(file)
                    .and_then(|media| FfmpegProcess::publish(&url(stream), media));
                let publisher = match started {
                    Ok(publisher) => actor.publisher.insert(publisher),
                    Err(error) => {
                        observed.error = Some(error);
                        return;
                    }
                };
                observed
                    .log
                    .push(format!("ffmpeg -re -i {file} -c copy -f flv {}", url(stream)));
                while publisher.counts().written_us == 0 {
                    if let Some(ended) = publisher.ended() {
                        observed.error = Some(format!("{ended}; it never began publishing"));
                        return;
                    }
                    if tokio::time::Instant::now() >= deadline {
                        observed.error = Some(format!(
                            "ffmpeg wrote no media within {within:?}: its publish was never answered \
                             NetStream.Publish.Start (FFmpeg waits for it)"
                        ));
                        return;
                    }
                    tokio::time::sleep(tick).await;
                }
            }
            Action::Play { stream, .. } | Action::Wait { stream: Some(stream) } => {
                if matches!(action, Action::Play { .. }) {
                    match FfmpegProcess::play(&url(stream)) {
                        Ok(player) => actor.player = Some(player),
                        Err(error) => {
                            observed.error = Some(error);
                            return;
                        }
                    }
                    observed.log.push(format!("ffmpeg -i {} -f framecrc -", url(stream)));
                }
                let Some(player) = actor.player.as_mut() else {
                    observed.error = Some("the ffmpeg actor plays nothing".into());
                    return;
                };
                let baseline = player.counts();
                loop {
                    let counts = player.counts();
                    observed.audio = counts.audio - baseline.audio;
                    observed.video = counts.video - baseline.video;
                    if candidates[0].1.check(observed).is_ok() || tokio::time::Instant::now() >= deadline {
                        break;
                    }
                    if let Some(ended) = player.ended() {
                        observed.error = Some(ended);
                        break;
                    }
                    tokio::time::sleep(tick).await;
                }
            }
            Action::Unpublish { .. } => {
                if let Some(publisher) = actor.publisher.take() {
                    publisher.stop().await;
                }
            }
            Action::Disconnect {} => {
                for process in [actor.publisher.take(), actor.player.take()].into_iter().flatten() {
                    process.stop().await;
                }
            }
            other => observed.error = Some(format!("{} does not fit an ffmpeg actor", other.name())),
        }
    }

    /// An RTMP actor's action.
    async fn rtmp(&self, action: &Action, actor: &mut RtmpActor, within: Duration, observed: &mut Observed) -> Then {
        let mut before = actor.client().await.map_or(0, |c| c.statuses().len());
        let result: Result<(), String> = match action {
            Action::Connect {
                app,
                params,
                args,
                handshake,
                announce,
            } => {
                if actor.client.is_some() {
                    Err("already connected".into())
                } else {
                    let how = ConnectHow {
                        app: app.as_deref(),
                        params: params.as_deref(),
                        args: args.as_ref().map(|args| args.iter().map(amf_of).collect()),
                        handshake: *handshake,
                        announce: announce.as_ref(),
                    };
                    let connected = self.connect(actor, how).await.map(|b| before = b);
                    observed.handshake = actor.client.as_ref().map(|c| c.handshake_report().clone());
                    connected
                }
            }
            Action::Publish {
                stream,
                media,
                realtime,
                kind,
                chunking,
                retry,
                ..
            } => {
                let mut ready = Ok(());
                if let Some(chunking) = chunking {
                    if actor.client().await.is_none() {
                        ready = self.connect(actor, ConnectHow::default()).await.map(drop);
                    }
                    if ready.is_ok() {
                        ready = match actor.client.as_mut() {
                            Some(client) => chunk_as(client, chunking).await,
                            None => Err("not connected".into()),
                        };
                    }
                }
                let deadline = tokio::time::Instant::now() + within;
                loop {
                    let published = match &ready {
                        Ok(()) => {
                            self.publish(
                                actor,
                                stream,
                                kind,
                                media.as_deref().map(|file| (file, action, *realtime)),
                                &mut before,
                            )
                            .await
                        }
                        Err(error) => Err(error.clone()),
                    };
                    let Some(retry) = *retry else { break published };
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    let answer = match (&published, actor.client.as_mut(), actor.streams.get(stream.as_str())) {
                        (Err(error), _, _) => Err(error.clone()),
                        (Ok(()), Some(client), Some(id)) => {
                            publish_answer(client, before, *id, left.min(Duration::from_secs(5))).await
                        }
                        (Ok(()), _, _) => Err("not connected".into()),
                    };
                    let Err(refusal) = answer else { break published };
                    if tokio::time::Instant::now() + retry >= deadline {
                        // Judged as the encoder judges it: an `onFCPublish`
                        // Publish.Start before a close is no start.
                        break Err(format!(
                            "no publish was answered onStatus NetStream.Publish.Start within {within:?}; the last: {refusal}"
                        ));
                    }
                    observed.timed_log.push((
                        Instant::now(),
                        format!("publish refused ({refusal}): connecting again in {retry:?}"),
                    ));
                    actor.client = None;
                    actor.forget_connection();
                    tokio::time::sleep(retry).await;
                    before = 0;
                }
            }
            Action::SetChunkSize { size } => match actor.client().await {
                Some(client) => client.set_chunk_size(*size).await.map_err(|e| e.to_string()),
                None => Err("not connected".into()),
            },
            Action::WindowAckSize { size } => match self.connect_if_needed(actor).await {
                Ok(client) => client
                    .send_message(
                        media::rtmp::csid::CONTROL,
                        0,
                        &media::rtmp::Message::WindowAckSize(*size),
                    )
                    .await
                    .map_err(|e| e.to_string()),
                Err(error) => Err(error),
            },
            Action::SetBufferLength { stream, ms } => match self.stream_id(actor, stream, &mut before).await {
                Ok(stream_id) => match actor.client.as_mut() {
                    Some(client) => client
                        .send_message(
                            media::rtmp::csid::CONTROL,
                            0,
                            &media::rtmp::Message::UserControl(media::rtmp::UserControl::SetBufferLength {
                                stream_id,
                                buffer_ms: *ms,
                            }),
                        )
                        .await
                        .map_err(|e| e.to_string()),
                    None => Err("not connected".into()),
                },
                Err(error) => Err(error),
            },
            Action::StreamCommand { stream, method, args } => match self.stream_id(actor, stream, &mut before).await {
                Ok(id) => {
                    let args = args
                        .iter()
                        .map(|arg| amf_of(&self.with_stream_names(arg, stream)))
                        .collect();
                    match actor.client.as_mut() {
                        Some(client) => client
                            .send_command(id, method, 0.0, args)
                            .await
                            .map_err(|e| e.to_string()),
                        None => Err("not connected".into()),
                    }
                }
                Err(error) => Err(error),
            },
            Action::Play { stream, args } => {
                let args = args.as_ref().map(|args| args.iter().map(amf_of).collect());
                self.play(actor, stream, args, &mut before).await
            }
            Action::SendData { stream, values } => match self.stream_id(actor, stream, &mut before).await {
                Ok(id) => match actor.client.as_mut() {
                    Some(client) => client
                        .send_data(id, values.iter().map(amf_of).collect())
                        .await
                        .map_err(|e| e.to_string()),
                    None => Err("not connected".into()),
                },
                Err(error) => Err(error),
            },
            Action::Unpublish { stream } => {
                let logical = stream.clone().unwrap_or_default();
                // An encoder's unpublish deletes the stream (deleteStream):
                // its next publish creates another, as OBS does.
                let id = match actor.kind {
                    ActorKind::Encoder | ActorKind::Ertmp => actor.streams.remove(&logical),
                    _ => actor.streams.get(&logical).copied(),
                };
                let name = self.stream_name(&logical);
                let _ = actor.client().await;
                if let Some(id) = id {
                    actor.paused = actor.paused.take().filter(|p| p.stream_id != id);
                }
                match (actor.client.as_mut(), id) {
                    (Some(client), Some(id)) => client.unpublish(id, &name).await.map_err(|e| e.to_string()),
                    (Some(_), None) => Err(format!("the actor publishes no stream {logical:?}")),
                    (None, _) => Err("not connected".into()),
                }
            }
            Action::Disconnect {} => {
                let _ = actor.client().await;
                actor.client = None; // dropping it closes the connection
                actor.forget_connection();
                return Then::Done;
            }
            Action::Vanish {} => {
                let _ = actor.client().await;
                if let Some(client) = actor.client.take() {
                    observed.timed_log.push((
                        Instant::now(),
                        "its network goes away: nothing more is sent or read, and the connection stays open".into(),
                    ));
                    actor.vanished.push(client);
                }
                actor.forget_connection();
                return Then::Done;
            }
            Action::Wait { .. } => {
                before = actor.matched;
                Ok(())
            }
            Action::Replay { capture, app } => self.replay(capture, app.as_deref(), observed).await,
            Action::Call { method, args } => match self.connect(actor, ConnectHow::default()).await {
                Ok(_) => match actor.client().await {
                    Some(client) => {
                        before = client.statuses().len();
                        let args = args.iter().map(amf_of).collect();
                        let answer = match tokio::time::timeout(within, client.call(method, args)).await {
                            Ok(answer) => answer
                                .map(|command| {
                                    let status = command.args.first().and_then(NetStatus::from_value);
                                    observed.answer = Some(match status {
                                        Some(status) => format!("{} {}", command.name, status.code),
                                        None => command.name,
                                    });
                                })
                                .map_err(|e| format!("{method}: {e}")),
                            Err(_) => Err(format!("no _result or _error to {method} within {within:?}")),
                        };
                        if let Err(error) = answer {
                            // Nothing more to watch for: the answer was the point.
                            observed.error = Some(error);
                            return Then::Done;
                        }
                        Ok(())
                    }
                    None => Err("not connected".into()),
                },
                Err(error) => Err(error),
            },
            Action::JoinRoom { .. } | Action::LeaveRoom { .. } | Action::RoomMessage { .. } => {
                match self.connect(actor, ConnectHow::default()).await {
                    Ok(_) => match actor.client().await {
                        Some(client) => {
                            let request = Value::from_json(&self.room_request(action));
                            // The answer (_result or _error) matters less than the events.
                            client
                                .call("sendData", vec![request])
                                .await
                                .map(drop)
                                .map_err(|e| e.to_string())
                        }
                        None => Err("not connected".into()),
                    },
                    Err(error) => Err(error),
                }
            }
            other => Err(format!("{} is not an RTMP action", other.name())),
        };
        if let Err(error) = result {
            observed.error = Some(error);
        }
        Then::Statuses { before }
    }

    /// The actor's client, connected first if it is not.
    async fn connect_if_needed<'a>(
        &self,
        actor: &'a mut RtmpActor,
    ) -> Result<&'a mut crate::client::RtmpClient, String> {
        if actor.client().await.is_none() {
            self.connect(actor, ConnectHow::default()).await?;
        }
        actor.client.as_mut().ok_or_else(|| "not connected".to_string())
    }

    /// The actor's stream id for `logical`, connecting and sending
    /// `createStream` as needed; `before` counts the statuses until then.
    async fn stream_id(&self, actor: &mut RtmpActor, logical: &str, before: &mut usize) -> Result<u32, String> {
        if actor.client().await.is_none() {
            self.connect(actor, ConnectHow::default()).await?;
        }
        let client = actor.client.as_mut().ok_or("not connected")?;
        let id = match actor.streams.get(logical) {
            Some(id) => *id,
            None => {
                let id = client.create_stream().await.map_err(|e| e.to_string())?;
                actor.streams.insert(logical.to_string(), id);
                id
            }
        };
        *before = client.statuses().len();
        Ok(id)
    }

    /// `publish`; with `media` (the fixture, the step, real time) the
    /// fixture's tags go out once the step's expectations are checked.
    async fn publish(
        &self,
        actor: &mut RtmpActor,
        logical: &str,
        kind: &str,
        media: Option<(&str, &Action, bool)>,
        before: &mut usize,
    ) -> Result<(), String> {
        let id = self.stream_id(actor, logical, before).await?;
        let client = actor.client.as_mut().ok_or("not connected")?;
        let status = client
            .publish_as(id, &self.stream_name(logical), kind)
            .await
            .map_err(|e| e.to_string())?;
        if let Some((file, step, realtime)) = media {
            if status.code == code::PUBLISH_START {
                let tags = load_media(&self.options.fixtures, file, step)?;
                let mut bodies = super::ertmp::published_bodies(&tags);
                if let Action::Publish { eflv: Some(shape), .. } = step {
                    if shape.enhance {
                        // The legacy tags the enhanced ones were made from.
                        let mut plain = step.clone();
                        if let Action::Publish { eflv, .. } = &mut plain {
                            *eflv = None;
                        }
                        let originals = load_media(&self.options.fixtures, file, &plain)?;
                        bodies.extend(super::ertmp::published_bodies(&originals));
                    }
                }
                self.published.borrow_mut().insert(
                    logical.split('?').next().unwrap_or(logical).to_string(),
                    std::rc::Rc::new(bodies),
                );
                let aggregate = match step {
                    Action::Publish { aggregate, .. } => *aggregate,
                    _ => None,
                };
                actor.media = Some(Sending::new(id, tags, realtime, aggregate));
            }
        }
        Ok(())
    }

    /// `play`.
    async fn play(
        &self,
        actor: &mut RtmpActor,
        logical: &str,
        args: Option<Vec<Value>>,
        before: &mut usize,
    ) -> Result<(), String> {
        let id = self.stream_id(actor, logical, before).await?;
        let client = actor.client.as_mut().ok_or("not connected")?;
        let args = args.unwrap_or_else(|| vec![Value::Number(-2.0)]);
        client
            .play_with(id, &self.stream_name(logical), args)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// Replays a capture against the target; the report goes in `observed`.
    async fn replay(&self, capture: &str, app: Option<&str>, observed: &mut Observed) -> Result<(), String> {
        let names: Vec<&str> = capture.split_whitespace().collect();
        let url = format!(
            "{}/{}",
            self.running.rtmp_base.clone().unwrap_or_default(),
            app.unwrap_or(&self.running.app)
        );
        let fixtures = &self.options.fixtures;
        let source = match names.as_slice() {
            [file] => fixtures.read(file).map(|bytes| crate::replay::CaptureSource::Bytes {
                name: file.to_string(),
                bytes,
            }),
            [client, server] => fixtures.read(client).and_then(|c| {
                fixtures
                    .read(server)
                    .map(|s| crate::replay::CaptureSource::DirectionBytes {
                        name: format!("{client} + {server}"),
                        client: c,
                        server: s,
                    })
            }),
            _ => Err("capture: one file, or the client's and the server's bytes".to_string()),
        }?;
        let report = crate::replay::replay_source(&source, &url, crate::replay::ReplayOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        let unanswered = report
            .commands
            .iter()
            .filter(|c| {
                matches!(
                    c.verdict,
                    crate::replay::report::Verdict::Missing { .. } | crate::replay::report::Verdict::NotSent { .. }
                )
            })
            .map(|c| c.name.clone())
            .collect();
        observed.replay = Some((report.is_match(), replay_summary(&report), unanswered));
        observed.log = report.wire_log.clone();
        observed.log.push(report.to_string());
        Ok(())
    }

    /// A WebRTC actor's action.
    async fn webrtc(
        &self,
        action: &Action,
        actor: &mut WebrtcActor,
        candidates: &[(Verdict, Expect)],
        within: Duration,
        observed: &mut Observed,
    ) -> Then {
        let result = match action {
            Action::Unpublish { .. } => match &mut actor.publisher {
                Some(publisher) => publisher.stop().await.map_err(|e| e.to_string()),
                None => Err("the actor publishes nothing".to_string()),
            },
            Action::Resize { size } => match &actor.publisher {
                Some(publisher) => publisher.resize(size.width, size.height).map_err(|e| e.to_string()),
                None => Err("the actor publishes nothing".to_string()),
            },
            Action::RequestKeyframe {} => match &actor.player {
                Some(player) => {
                    // Just after a keyframe: the publisher's next is a GOP away.
                    let idr = player.report().video.idr_frames;
                    let _ = player
                        .wait_until("a keyframe", |r| r.video.idr_frames > idr, KEYFRAME_WAIT)
                        .await;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let video = player.report().video;
                    observed.keyframe_asked = Some((video.idr_frames, video.frames));
                    match player.request_keyframe().await {
                        Ok(()) => return Then::Player,
                        Err(error) => Err(error.to_string()),
                    }
                }
                None => Err("the actor plays nothing".to_string()),
            },
            Action::RestartIce {} => match &actor.player {
                Some(player) => match player.restart_ice().await {
                    Ok(exchange) => {
                        observed.log.push(format!(
                            "ICE restart PATCH answered {}:\n{}",
                            exchange.status,
                            exchange.body.trim_end()
                        ));
                        observed.http = Some(exchange);
                        return Then::Player;
                    }
                    Err(error) => Err(error.to_string()),
                },
                None => Err("the actor plays nothing".to_string()),
            },
            Action::SelectLayer {
                rid,
                max_width,
                max_height,
            } => match &actor.player {
                Some(player) => {
                    let mut selection = serde_json::json!({});
                    if let Some(rid) = rid {
                        selection["rid"] = rid.as_str().into();
                    }
                    if let Some(width) = max_width {
                        selection["maxWidth"] = (*width).into();
                    }
                    if let Some(height) = max_height {
                        selection["maxHeight"] = (*height).into();
                    }
                    player.select_layer(&selection, within).await.map_err(|error| {
                        observed.refusal = error.refusal();
                        error.to_string()
                    })
                }
                None => Err("the actor plays nothing".to_string()),
            },
            Action::Http { .. } => {
                let layer = actor.player.as_ref().and_then(|p| p.layer_url()).map(str::to_string);
                self.http(action, &mut actor.http, layer, observed).await
            }
            Action::Wait { .. } if candidates.iter().all(|(_, e)| e.room_events.is_empty()) => return Then::Player,
            Action::Wait { .. } => return Then::RoomEvents,
            Action::JoinRoom { .. } | Action::LeaveRoom { .. } | Action::RoomMessage { .. } => {
                let mut request = self.room_request(action);
                request["type"] = serde_json::Value::String("room".into());
                match self.ws_session(actor).await {
                    Ok(session) => match session.send_json(&request) {
                        Ok(()) => return Then::RoomEvents,
                        Err(error) => Err(error.to_string()),
                    },
                    Err(error) => Err(error),
                }
            }
            Action::Disconnect {} => {
                if let Some(player) = &mut actor.player {
                    let _ = player.stop().await;
                }
                if let Some(publisher) = &mut actor.publisher {
                    let _ = publisher.stop().await;
                }
                if let Some(session) = actor.ws.take() {
                    session.close();
                }
                Ok(())
            }
            Action::WebrtcPlay {
                stream,
                signalling,
                audio,
                video,
                video_codecs,
                profile,
                lose_video_every,
            } => {
                let shape = match profile {
                    Profile::Safari => PlayerOptions::safari(),
                    Profile::Default => PlayerOptions::default(),
                };
                let options = PlayerOptions {
                    audio: *audio,
                    video: *video,
                    video_codecs: video_codecs.clone(),
                    lose_video_every: lose_video_every.unwrap_or(0),
                    ..shape
                };
                let ws = *signalling == PlaySignalling::Ws;
                match self.signalling(actor, stream, ws, "whep").await {
                    Ok(signalling) => match WebRtcPlayer::play(signalling, options).await {
                        Ok(player) => {
                            observed.sdp = Some(player.answer().clone());
                            observed.links = Some(player.links().iter().map(|(rel, _)| rel.clone()).collect());
                            actor.player = Some(player);
                            return Then::Player;
                        }
                        Err(error) => {
                            observed.refusal = error.refusal();
                            Err(error.to_string())
                        }
                    },
                    Err(error) => Err(error),
                }
            }
            Action::WebrtcPublish {
                stream,
                signalling,
                tone_hz,
                keyframe_interval,
                profile,
            } => {
                let shape = match profile {
                    Profile::Safari => PublisherOptions::safari(),
                    Profile::Default => PublisherOptions::default(),
                };
                let idr_interval = match keyframe_interval {
                    Some(interval) => ((interval.as_secs_f64() * f64::from(shape.fps)).ceil() as u32).max(1),
                    None => shape.idr_interval,
                };
                let options = PublisherOptions {
                    tone_hz: tone_hz.unwrap_or(440.0),
                    idr_interval,
                    ..shape
                };
                let ws = *signalling == PublishSignalling::Ws;
                match self.signalling(actor, stream, ws, "whip").await {
                    Ok(signalling) => match WebRtcPublisher::publish(signalling, options).await {
                        Ok(publisher) => {
                            observed.sdp = Some(publisher.answer().clone());
                            // The next step starts once the first picture is on its
                            // way (ICE and DTLS up); a publisher that never gets
                            // there is seen by the steps that look for its media.
                            let _ = publisher
                                .wait_until("the first keyframe to be sent", |r| r.video_keyframes_sent > 0, within)
                                .await;
                            actor.publisher = Some(publisher);
                            Ok(())
                        }
                        Err(error) => {
                            observed.refusal = error.refusal();
                            Err(error.to_string())
                        }
                    },
                    Err(error) => Err(error),
                }
            }
            other => Err(format!("{} is not a WebRTC action", other.name())),
        };
        if let Err(error) = result {
            observed.error = Some(error);
        }
        Then::Done
    }

    /// An `http` step: builds the request, sends it, keeps the session URL
    /// and `ETag` of the answer and notes it in `observed`.
    async fn http(
        &self,
        action: &Action,
        state: &mut HandMade,
        player_layer: Option<String>,
        observed: &mut Observed,
    ) -> Result<(), String> {
        let Action::Http {
            method,
            to,
            stream,
            body,
            content_type,
            headers,
            audio,
            video,
            sendrecv,
            codecs,
            like,
            events,
            json,
            read_for,
        } = action
        else {
            return Err(format!("{} is not an http step", action.name()));
        };
        let (url, endpoint) = match (to, stream) {
            (HttpTarget::Events, _) => (
                state
                    .events
                    .clone()
                    .ok_or("no events URL: no earlier WHEP 201 of this actor announced server-sent events")?,
                Endpoint::Whep,
            ),
            (HttpTarget::Layer, _) => (
                player_layer.or_else(|| state.layer.clone()).ok_or(
                    "no layer selection URL: no WHEP 201 of this actor announced the layer selection extension",
                )?,
                Endpoint::Whep,
            ),
            (HttpTarget::EventStream, _) => (
                state
                    .event_stream
                    .clone()
                    .ok_or("no event stream: no earlier POST to the events URL was answered 201 with a Location")?,
                Endpoint::Whep,
            ),
            (HttpTarget::Session, _) => (
                state
                    .session
                    .clone()
                    .ok_or("no session URL: no earlier POST of this actor was answered 201 with a Location")?,
                state.offer.as_ref().map_or(Endpoint::Whip, |(_, e)| *e),
            ),
            (to, Some(stream)) => {
                let (endpoint, http) = match to {
                    HttpTarget::Whep => (Endpoint::Whep, "whep"),
                    _ => (Endpoint::Whip, "whip"),
                };
                match self.signalling_url(stream, http)? {
                    Signalling::Url { url } => (url, endpoint),
                    _ => return Err("no HTTP URL".into()),
                }
            }
            (_, None) => return Err("no stream".into()),
        };
        let text = match body {
            HttpBody::None => None,
            HttpBody::Offer if like.is_some() => {
                let client = like.expect("matched");
                if client.publishes_only() && endpoint == Endpoint::Whep {
                    return Err(format!("{} offers only to WHIP endpoints", client.name()));
                }
                let direction = match (sendrecv, endpoint) {
                    (true, _) => "sendrecv",
                    (false, Endpoint::Whip) => "sendonly",
                    (false, Endpoint::Whep) => "recvonly",
                };
                let parts = crate::webrtc::shapes::OfferParts {
                    direction,
                    audio: *audio,
                    video: *video,
                };
                let sdp = crate::webrtc::shapes::offer(client, parts);
                observed
                    .log
                    .push(format!("{}'s offer:\n{}", client.name(), sdp.trim_end()));
                observed.offer = crate::webrtc::SdpSummary::parse(&sdp).ok();
                state.offer = None;
                Some(("application/sdp", sdp))
            }
            HttpBody::Offer => {
                let defaults = OfferShape::default();
                let shape = OfferShape {
                    audio: *audio,
                    video: *video,
                    sendrecv: *sendrecv,
                    codecs: if codecs.is_empty() {
                        defaults.codecs
                    } else {
                        codecs.clone()
                    },
                };
                let offer = Offer::new(endpoint, &shape).await.map_err(|e| e.to_string())?;
                let sdp = offer.sdp().to_string();
                observed.offer = crate::webrtc::SdpSummary::parse(&sdp).ok();
                state.offer = Some((offer, endpoint));
                Some(("application/sdp", sdp))
            }
            HttpBody::Trickle | HttpBody::IceRestart => {
                let (offer, _) = state.offer.as_ref().ok_or("no offer made yet, to trickle for")?;
                let fragment = offer
                    .fragment(*body == HttpBody::IceRestart)
                    .ok_or("the offer has no ICE credentials or m-line")?;
                Some(("application/trickle-ice-sdpfrag", fragment))
            }
            HttpBody::Answer => {
                let (offer, _) = state
                    .offer
                    .as_mut()
                    .ok_or("no offer made yet, whose peer would answer")?;
                let counter_offer = state
                    .counter_offer
                    .take()
                    .ok_or("no counter-offer to answer: no earlier WHEP POST was answered 406 with SDP")?;
                let answer = offer.answer_counter_offer(&counter_offer).map_err(|e| e.to_string())?;
                Some(("application/sdp", answer))
            }
            HttpBody::Garbage => Some(("application/sdp", "this is not an SDP offer\r\n".to_string())),
            HttpBody::Events => Some((
                "application/json",
                serde_json::to_string(events).map_err(|e| e.to_string())?,
            )),
            HttpBody::Json => Some((
                "application/json",
                json.clone().ok_or("a json body needs the step's json")?,
            )),
        };
        let mut fields = Vec::new();
        for (name, value) in headers {
            let value = &self.with_tokens(value);
            match (value.contains("{etag}"), &state.etag) {
                (false, _) => fields.push((name.clone(), value.clone())),
                (true, Some(etag)) => fields.push((name.clone(), value.replace("{etag}", etag))),
                (true, None) => observed
                    .log
                    .push(format!("{name} left out: the server gave no ETag to send")),
            }
        }
        let body = match (&text, content_type) {
            (Some((kind, text)), given) => Some((given.as_deref().unwrap_or(kind), text.as_str())),
            (None, Some(given)) => Some((given.as_str(), "")),
            (None, None) => None,
        };
        let answer = crate::webrtc::http::exchange(*method, &url, &fields, body, *read_for)
            .await
            .map_err(|e| e.to_string())?;
        let sdp_typed = answer
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/sdp"));
        match (answer.status, to) {
            (201, HttpTarget::Events) => state.event_stream = answer.location(),
            (201, _) => {
                state.session = answer.location();
                state.events = answer.link(crate::webrtc::http::EVENTS_REL);
                state.layer = answer.link(crate::webrtc::http::LAYER_REL);
            }
            (406, HttpTarget::Whep) if sdp_typed && *method == crate::webrtc::http::Method::Post => {
                state.session = answer.location();
                state.counter_offer = Some(answer.body.clone());
                state.events = answer.link(crate::webrtc::http::EVENTS_REL);
                state.layer = answer.link(crate::webrtc::http::LAYER_REL);
            }
            _ => {}
        }
        if (200..300).contains(&answer.status) {
            if let Some(etag) = answer.header("etag") {
                state.etag = Some(etag.to_string());
            }
        }
        if sdp_typed && !answer.body.is_empty() {
            observed.sdp = crate::webrtc::SdpSummary::parse(&answer.body).ok();
        }
        if (400..500).contains(&answer.status) {
            observed.refusal = Some(format!("HTTP {}", answer.status));
        }
        let sent: Vec<String> = fields.iter().map(|(n, v)| format!("{n}: {v}")).collect();
        observed.log.push(format!(
            "{} {url} [{}{}] -> {}",
            method.as_str(),
            body.map_or("no body".to_string(), |(kind, text)| format!(
                "{kind}, {} bytes",
                text.len()
            )),
            sent.iter().map(|h| format!("; {h}")).collect::<String>(),
            super::expect::describe_exchange(&answer)
        ));
        observed.http = Some(answer);
        Ok(())
    }

    /// How a WebRTC actor signals for `stream`: the target's WebSocket
    /// channel with `ws`, else its `whip` or `whep` URL.
    async fn signalling(
        &self,
        actor: &mut WebrtcActor,
        stream: &str,
        ws: bool,
        http: &str,
    ) -> Result<Signalling, String> {
        let name = self.stream_name(stream);
        if ws {
            let session = self.ws_session(actor).await?;
            return Ok(Signalling::ws(session, &format!("ws-{name}"), &name));
        }
        self.signalling_url(stream, http)
    }

    /// The target's `whip` or `whep` signalling for `stream`.
    fn signalling_url(&self, stream: &str, http: &str) -> Result<Signalling, String> {
        self.endpoint_url(stream, http).map(|url| Signalling::url(&url))
    }

    /// The target's `whip` or `whep` URL for `stream`.
    fn endpoint_url(&self, stream: &str, http: &str) -> Result<String, String> {
        let spec = &self.running.spec;
        let template = if http == "whip" { &spec.whip } else { &spec.whep };
        let template = template
            .as_deref()
            .ok_or_else(|| format!("the target has no {} URL", http.to_uppercase()))?;
        Ok(crate::target::fill_template(
            template,
            &self.running.app_key(),
            &self.stream_name(stream),
        ))
    }

    /// Waits until the backend has a call some candidate's `hook` matches.
    async fn hook(&self, candidates: &[(Verdict, Expect)], within: Duration, observed: &mut Observed) {
        let Some(backend) = self.backend else {
            observed.error = Some("the case has no backend".into());
            return;
        };
        let wanted: Vec<&HookExpect> = candidates.iter().filter_map(|(_, e)| e.hook.as_ref()).collect();
        let found = backend
            .wait_for(
                |call| {
                    let call = self.without_suffix(call);
                    wanted.iter().any(|w| w.matches(&call))
                },
                within,
            )
            .await;
        let calls = match found {
            Ok(_) => backend.calls(),
            Err(calls) => calls,
        };
        let logged = self.hooks_logged.replace(calls.len());
        observed.log.extend(
            calls
                .iter()
                .skip(logged)
                .map(|c| format!("backend < POST {} {}", c.path, c.body)),
        );
        observed.hook_calls = Some(calls.iter().map(|c| self.without_suffix(c)).collect());
    }

    /// The call as the scenario names things: the run's suffix taken off `name`.
    fn without_suffix(&self, call: &HookCall) -> HookCall {
        let mut call = call.clone();
        if let Some(name) = call.body.get_mut("name") {
            if let Some(text) = name.as_str() {
                let suffix = format!("-{}", self.suffix);
                *name = serde_json::Value::String(text.replacen(&suffix, "", 1));
            }
        }
        call
    }

    /// The `sendData` object (RTMP) or the body of a `room` message (WebSocket).
    fn room_request(&self, action: &Action) -> serde_json::Value {
        match action {
            Action::JoinRoom { room, participant } => serde_json::json!({
                "method": "joinRoom", "room": self.stream_name(room), "name": participant
            }),
            Action::LeaveRoom { room } => serde_json::json!({"method": "leaveRoom", "room": self.stream_name(room)}),
            Action::RoomMessage { room, text, to } => {
                let mut message = serde_json::json!({
                    "method": "sendMessage", "room": self.stream_name(room), "text": text
                });
                if let Some(to) = to {
                    message["to"] = serde_json::Value::String(to.clone());
                }
                message
            }
            _ => serde_json::Value::Null,
        }
    }

    /// Where an attack of this case goes; `stream` is the step's.
    fn aim(&self, stream: Option<&str>) -> super::attack::Aim {
        let base = self.running.rtmp_base.clone().unwrap_or_default();
        let own_stream = self.stream_name("attacker");
        let stream = stream.map_or_else(|| own_stream.clone(), |s| self.stream_name(s));
        super::attack::Aim {
            rtmp: self.running.rtmp_addr,
            tc_url: format!("{base}/{}", self.running.app),
            app: self.running.app.clone(),
            whep: self
                .running
                .spec
                .whep
                .as_deref()
                .map(|template| crate::target::fill_template(template, &self.running.app, &stream)),
            ws: self.running.spec.ws.clone(),
            stream,
            own_stream,
            from: self.running.spec.attacker_address(),
        }
    }

    /// Sends raw bytes on the actor's connection (opened first if need be)
    /// and notes what the server did next: close it, or keep it open.
    #[allow(clippy::too_many_arguments)]
    async fn send_raw(
        &self,
        socket: &mut Option<TcpStream>,
        actor: &str,
        hex: &Option<String>,
        bytes: &Option<String>,
        handshake: bool,
        within: Duration,
        observed: &mut Observed,
    ) {
        let bytes = match (hex, bytes) {
            (Some(hex), _) => parse_hex(hex),
            (None, Some(file)) => self.options.fixtures.read(file).map(|b| b.to_vec()),
            (None, None) => Err("no bytes to send".into()),
        };
        let bytes = match bytes {
            Ok(bytes) => bytes,
            Err(error) => {
                observed.error = Some(error);
                return;
            }
        };
        if socket.is_none() {
            let Some(addr) = self.running.rtmp_addr else {
                observed.error = Some("the target has no RTMP URL".into());
                return;
            };
            match raw_connect(addr, handshake).await {
                Ok(stream) => *socket = Some(stream),
                Err(error) => {
                    observed.error = Some(error);
                    return;
                }
            }
        }
        let Some(stream) = socket.as_mut() else { return };
        observed
            .timed_log
            .push((Instant::now(), format!("{actor} > {}", hex_preview(&bytes))));
        let sent = tokio::time::Instant::now();
        if let Err(error) = stream.write_all(&bytes).await {
            // Already closed by the server: that is an answer too.
            observed.timed_log.push((
                Instant::now(),
                format!("{actor} < the connection was closed before the bytes went out: {error}"),
            ));
            observed.closed = true;
            return;
        }
        let deadline = sent + within;
        let mut buf = vec![0u8; 64 * 1024];
        let mut received = 0usize;
        let after = |at: tokio::time::Instant| format!("{:.1} s", at.duration_since(sent).as_secs_f64());
        loop {
            let ended = match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
                Ok(Ok(0)) => "the connection closed".to_string(),
                Ok(Err(error)) => error.to_string(),
                Ok(Ok(n)) => {
                    received += n;
                    continue;
                }
                Err(_) => {
                    let line = format!(
                        "{actor} < {received} bytes; the connection still open {} after the bytes",
                        after(deadline)
                    );
                    observed.timed_log.push((deadline.into_std(), line));
                    observed.open_after = Some(deadline.duration_since(sent));
                    return;
                }
            };
            let now = tokio::time::Instant::now();
            let line = format!(
                "{actor} < {received} bytes, then {ended} {} after the bytes",
                after(now)
            );
            observed.timed_log.push((now.into_std(), line));
            observed.closed = true;
            return;
        }
    }
}

impl Case<'_> {
    /// `value` with `{stream}` in its strings (in tables and arrays too)
    /// made `stream`'s run name, and `{stream:other}` `other`'s.
    fn with_stream_names(&self, value: &toml::Value, stream: &str) -> toml::Value {
        match value {
            toml::Value::String(text) => {
                let mut text = text.replace("{stream}", &self.stream_name(stream));
                while let Some((before, rest)) = text.split_once("{stream:") {
                    let Some((other, after)) = rest.split_once('}') else {
                        break;
                    };
                    text = format!("{before}{}{after}", self.stream_name(other));
                }
                toml::Value::String(text)
            }
            toml::Value::Array(items) => {
                toml::Value::Array(items.iter().map(|item| self.with_stream_names(item, stream)).collect())
            }
            toml::Value::Table(table) => toml::Value::Table(
                table
                    .iter()
                    .map(|(key, item)| (key.clone(), self.with_stream_names(item, stream)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

/// A TOML value as AMF: tables become anonymous objects.
fn amf_of(value: &toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::from(s.as_str()),
        toml::Value::Integer(i) => Value::Number(*i as f64),
        toml::Value::Float(f) => Value::Number(*f),
        toml::Value::Boolean(b) => Value::Boolean(*b),
        toml::Value::Datetime(d) => Value::from(d.to_string().as_str()),
        toml::Value::Array(items) => Value::StrictArray(items.iter().map(amf_of).collect()),
        toml::Value::Table(table) => Value::object(table.iter().map(|(k, v)| (k.clone(), amf_of(v)))),
    }
}

fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return Err(format!("odd number of hex digits in {text:?}"));
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).map_err(|_| format!("not hex: {text:?}")))
        .collect()
}

/// A TCP connection, after a simple RTMP handshake if `handshake`.
async fn raw_connect(addr: std::net::SocketAddr, handshake: bool) -> Result<TcpStream, String> {
    let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    if handshake {
        super::attack::shake(&mut stream).await?;
    }
    Ok(stream)
}

/// `n bytes: 02 00 00 …` with at most the first 64 bytes in hex.
fn hex_preview(bytes: &[u8]) -> String {
    const SHOWN: usize = 64;
    let hex: Vec<String> = bytes.iter().take(SHOWN).map(|b| format!("{b:02x}")).collect();
    let more = if bytes.len() > SHOWN { " …" } else { "" };
    format!("{} bytes: {}{more}", bytes.len(), hex.join(" "))
}

/// The replay's differences, stable from run to run (no paths, ports or times).
fn replay_summary(report: &crate::replay::ReplayReport) -> String {
    use crate::replay::report::Verdict as Compared;
    let differences: Vec<String> = report
        .mismatches()
        .map(|c| match &c.verdict {
            Compared::Differs { expected, actual } => {
                format!("{}: expected {expected}, actual {actual}", c.name)
            }
            Compared::Missing { expected } => format!("{}: expected {expected}, no answer", c.name),
            Compared::NotSent { reason } => format!("{}: not sent ({reason})", c.name),
            Compared::Match => String::new(),
        })
        .collect();
    if differences.is_empty() {
        format!("replay: all {} commands answered as captured", report.commands.len())
    } else {
        format!("replay differs: {}", differences.join("; "))
    }
}

/// The tags of an FLV fixture to publish: `tracks` only, at most `seconds`.
fn load_media(fixtures: &Fixtures, file: &str, publish: &Action) -> Result<Vec<Tag>, String> {
    let Action::Publish {
        tracks,
        seconds,
        metadata,
        video_after,
        audio_after,
        avc_restart_at,
        eflv,
        ..
    } = publish
    else {
        return Err("media comes with a publish step".into());
    };
    let bytes = fixtures.read(file)?;
    let tags = media::flv::read_tags(&bytes).map_err(|e| format!("{file}: {e}"))?;
    let limit = seconds.map(|s| s.saturating_mul(1000));
    let tags = tags
        .into_iter()
        .filter(|t| match t.kind {
            TagKind::Audio => *tracks != Tracks::Video,
            TagKind::Video => *tracks != Tracks::Audio,
            TagKind::Script => *tracks == Tracks::Both && *metadata,
        })
        .filter(|t| limit.is_none_or(|l| t.timestamp <= l))
        .collect();
    let tags = match video_after {
        Some(after) => media::flv::track_from(tags, TagKind::Video, *after),
        None => tags,
    };
    let tags = match audio_after {
        Some(after) => media::flv::track_from(tags, TagKind::Audio, *after),
        None => tags,
    };
    let tags = match avc_restart_at {
        Some(at) => media::flv::avc_restart_at(tags, *at),
        None => tags,
    };
    let Some(shape) = eflv else { return Ok(tags) };
    let mut tags = tags;
    for (second, kind) in [(&shape.ladder, TagKind::Video), (&shape.audio_ladder, TagKind::Audio)] {
        if let Some(second) = second {
            let second = media::flv::read_tags(&fixtures.read(second)?).map_err(|e| format!("{second}: {e}"))?;
            tags = super::ertmp::ladder(tags, &second, kind, shape.ladder_one_track && kind == TagKind::Video)
                .map_err(|e| format!("{file}: {e}"))?;
        }
    }
    shape.apply(tags).map_err(|e| format!("{file}: {e}"))
}

/// How the server answered the publish on stream `id` of `client` (its
/// statuses from `before` on), as an encoder takes it: accepted on an
/// `onStatus` NetStream.Publish.Start (an `onFCPublish` does not count),
/// else what the server said or did instead.
async fn publish_answer(
    client: &mut crate::client::RtmpClient,
    before: usize,
    id: u32,
    within: Duration,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let answer = client.statuses()[before.min(client.statuses().len())..]
            .iter()
            .find(|s| s.stream_id == id && s.via == "onStatus");
        if let Some(answer) = answer {
            return match answer.status.code == code::PUBLISH_START {
                true => Ok(()),
                false => Err(answer.status.code.clone()),
            };
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match client.next(left).await {
            Ok(_) => {}
            Err(crate::client::ClientError::Closed) => return Err("the connection closed".into()),
            Err(crate::client::ClientError::Timeout { .. }) => return Err(format!("no onStatus within {within:?}")),
            Err(error) => return Err(error.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_args_become_amf_objects() {
        let value: toml::Value = toml::from_str::<toml::Table>("a = { login = \"u\", n = 2 }")
            .unwrap()
            .remove("a")
            .unwrap();
        assert_eq!(
            amf_of(&value),
            Value::object([("login", Value::from("u")), ("n", Value::Number(2.0))])
        );
        assert_eq!(parse_hex("03 ff").unwrap(), vec![3, 255]);
        assert!(parse_hex("0").is_err());
    }
}
