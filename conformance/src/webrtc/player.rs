//! The WebRTC player: a recvonly str0m peer that plays one stream by WHEP or
//! the WebSocket channel and decodes what it receives.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid};
use str0m::{Event, Rtc, RtcConfig};

use super::count::{RtpCounter, RtpTotals};
use super::http::{self, Endpoint};
use super::peer::{PeerAction, PeerApp, PeerHandle, PeerStatus, Prepared, Shared};
use super::receive::{AudioStats, MediaReceiver, Pcm, VideoStats};
use super::relay::{Loss, UdpRelay};
use super::sdp::SdpSummary;
use super::sync::LipSync;
use super::ws::WsRequest;
use super::{
    ActiveSignalling, Signalling, WebRtcError, DEFAULT_H264_PROFILES, SAFARI_H264_PROFILES, SIGNALLING_TIMEOUT,
};

/// Payload types (and their RTX) for the H.264 profiles offered, in order.
const H264_PTS: [(u8, u8); 8] = [
    (102, 103),
    (104, 105),
    (106, 107),
    (108, 109),
    (112, 113),
    (114, 115),
    (116, 117),
    (118, 119),
];

/// The level window [`PlayerReport::recent_audio_dbfs`] measures.
pub const RECENT_AUDIO: Duration = Duration::from_millis(500);

/// An audio codec the player can offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioCodec {
    /// Opus 48 kHz (payload type 111).
    Opus,
    /// G.711 µ-law (static payload type 0).
    Pcmu,
    /// G.711 A-law (static payload type 8).
    Pcma,
}

/// What the player offers and how it behaves.
#[derive(Debug, Clone)]
pub struct PlayerOptions {
    /// Offer an audio m-line.
    pub audio: bool,
    /// Offer a video m-line.
    pub video: bool,
    /// The audio codecs offered, in order of preference.
    pub audio_codecs: Vec<AudioCodec>,
    /// The H.264 `profile-level-id`s offered (packetization-mode 1), in order; at most 8.
    pub h264_profiles: Vec<u32>,
    /// How much decoded PCM to keep.
    pub keep_pcm: Duration,
    /// The address the UDP socket binds (port 0); by default (`None`) the
    /// one this machine reaches the signalling server's host from
    /// ([`super::local_address_for`]): 127.0.0.1 for a local server.
    pub bind: Option<IpAddr>,
    /// How long to wait for the SDP answer.
    pub signalling_timeout: Duration,
    /// Send to this address instead of the answer's candidates: a
    /// [`UdpRelay`](super::UdpRelay) in front of the server, to lose packets.
    pub via: Option<SocketAddr>,
    /// Read the frame marks of decoded pictures ([`WebRtcPlayer::take_marks`]).
    pub read_marks: bool,
    /// Video codecs offered before H.264, in this order.
    pub video_codecs: Vec<OfferedVideo>,
    /// Decrypt and decode the media (the default). A player that does not
    /// (a light bench player) sets up ICE, DTLS and signalling exactly the
    /// same, then only counts RTP from its clear headers
    /// ([`PlayerReport::counted`]): its video and audio stats stay empty.
    pub decode: bool,
    /// Lose every this many-th video RTP packet the server sends (not its
    /// retransmissions), in a relay the player puts in front of itself and
    /// aims at the answer's candidate: to see the server repair losses
    /// ([`PlayerReport::relay_lost`]). 0 loses nothing; ignored with `via`.
    pub lose_video_every: u64,
    /// Read the socket at this interval instead of as each datagram
    /// arrives (`None`, the default). A datagram to a socket nobody waits
    /// on wakes no thread; on loopback that wake-up is otherwise done by
    /// the sender's kernel, and charged to the server under test. The
    /// bench's light players read at a tick.
    pub read_every: Option<Duration>,
}

/// A video codec a player offers besides H.264, decoded with libavcodec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum OfferedVideo {
    /// HEVC (RFC 7798), Main profile.
    H265,
    /// AV1, profile 0.
    Av1,
    /// VP9, profiles 0 and 2.
    Vp9,
    /// VP8.
    Vp8,
}

impl Default for PlayerOptions {
    /// Audio (Opus, PCMU, PCMA) and video (H.264 Constrained Baseline,
    /// Baseline, Main, High), 10 s of PCM kept, 127.0.0.1.
    fn default() -> Self {
        PlayerOptions {
            audio: true,
            video: true,
            audio_codecs: vec![AudioCodec::Opus, AudioCodec::Pcmu, AudioCodec::Pcma],
            h264_profiles: DEFAULT_H264_PROFILES.to_vec(),
            keep_pcm: Duration::from_secs(10),
            bind: None,
            signalling_timeout: SIGNALLING_TIMEOUT,
            via: None,
            read_marks: false,
            video_codecs: Vec::new(),
            decode: true,
            lose_video_every: 0,
            read_every: None,
        }
    }
}

impl PlayerOptions {
    /// The defaults with audio only.
    pub fn audio_only() -> Self {
        PlayerOptions {
            video: false,
            ..Self::default()
        }
    }

    /// A player shaped like Safari's: Opus, PCMU, PCMA, and H.264 High 3.1
    /// before Constrained Baseline 3.1 ([`SAFARI_H264_PROFILES`]).
    pub fn safari() -> Self {
        PlayerOptions {
            h264_profiles: SAFARI_H264_PROFILES.to_vec(),
            ..Self::default()
        }
    }

    /// The defaults with video only.
    pub fn video_only() -> Self {
        PlayerOptions {
            audio: false,
            ..Self::default()
        }
    }

    fn rtc_config(&self) -> Result<RtcConfig, WebRtcError> {
        let mut config = Rtc::builder().clear_codecs();
        let codecs = config.codec_config();
        if self.audio {
            if self.audio_codecs.is_empty() {
                return Err(WebRtcError::Options("audio is offered without any audio codec".into()));
            }
            for codec in &self.audio_codecs {
                match codec {
                    AudioCodec::Opus => codecs.enable_opus(true, false),
                    AudioCodec::Pcmu => codecs.enable_pcmu(true, false),
                    AudioCodec::Pcma => codecs.enable_pcma(true, false),
                }
            }
        }
        if self.video {
            for codec in &self.video_codecs {
                match codec {
                    // Main profile, main tier, level 6.0, as Chrome offers it
                    // (not at str0m's default payload type, which is H.264's here).
                    OfferedVideo::H265 => codecs.add_h265(49.into(), Some(50.into()), 1, 0, 180),
                    OfferedVideo::Av1 => codecs.enable_av1(true),
                    OfferedVideo::Vp9 => codecs.enable_vp9(true),
                    OfferedVideo::Vp8 => codecs.enable_vp8(true),
                }
            }
            if self.h264_profiles.is_empty() || self.h264_profiles.len() > H264_PTS.len() {
                return Err(WebRtcError::Options(format!(
                    "video needs 1 to {} H.264 profiles, not {}",
                    H264_PTS.len(),
                    self.h264_profiles.len()
                )));
            }
            for (&profile, &(pt, rtx)) in self.h264_profiles.iter().zip(H264_PTS.iter()) {
                codecs.add_h264(pt.into(), Some(rtx.into()), true, profile);
            }
        }
        Ok(config)
    }
}

/// A snapshot of what a player has seen.
#[derive(Debug, Clone, PartialEq)]
pub struct PlayerReport {
    /// ICE/DTLS state and datagram counts.
    pub peer: PeerStatus,
    /// Audio received and decoded.
    pub audio: AudioStats,
    /// Video received and decoded.
    pub video: VideoStats,
    /// Keyframe requests (PLI) this player sent.
    pub keyframe_requests_sent: u64,
    /// RTP counted without decrypting, when the player does not decode.
    pub counted: RtpTotals,
    /// The level of the last 500 ms of decoded audio, if any was decoded.
    pub recent_audio_dbfs: Option<f64>,
    /// Video packets the player's own relay lost on purpose
    /// ([`PlayerOptions::lose_video_every`]).
    pub relay_lost: u64,
    /// Lip sync, for a stream that flashes and beeps together.
    pub lip_sync: LipSync,
    /// Time since the offer was made.
    pub elapsed: Duration,
}

struct PlayerApp {
    started: Instant,
    receiver: MediaReceiver,
    keyframe_requests_sent: u64,
    /// Set when the player counts instead of decoding.
    counter: Option<RtpCounter>,
    /// The relay losing video on purpose, if any.
    relay: Option<UdpRelay>,
}

impl PeerApp for PlayerApp {
    fn claim(&mut self, datagram: &[u8]) -> bool {
        self.counter.as_mut().is_some_and(|counter| counter.count(datagram))
    }

    fn on_event(&mut self, _now: Instant, event: Event, _actions: &mut Vec<PeerAction>) {
        if let Event::MediaData(data) = event {
            let packets = data
                .seq_range
                .end()
                .saturating_sub(**data.seq_range.start())
                .saturating_add(1);
            let codec = data.params.spec().codec;
            let seq = (**data.seq_range.start(), **data.seq_range.end());
            self.receiver
                .timing(codec, data.time, seq, data.network_time, data.last_sender_info.as_ref());
            self.receiver
                .sequence(codec, **data.seq_range.start(), **data.seq_range.end());
            if codec.is_video() {
                self.receiver
                    .video_order(data.time, **data.seq_range.start(), **data.seq_range.end());
            }
            self.receiver
                .receive(data.network_time, codec, &data.data, packets, data.contiguous);
        }
    }
}

fn report_of(shared: &Shared<PlayerApp>) -> PlayerReport {
    let app = &shared.app;
    PlayerReport {
        peer: shared.status.clone(),
        audio: app.receiver.audio().clone(),
        video: app.receiver.video().clone(),
        keyframe_requests_sent: app.keyframe_requests_sent,
        counted: app.counter.as_ref().map(RtpCounter::totals).unwrap_or_default(),
        relay_lost: app.relay.as_ref().map_or(0, UdpRelay::lost),
        lip_sync: app.receiver.lip_sync(),
        recent_audio_dbfs: app.receiver.pcm(RECENT_AUDIO).dbfs(),
        elapsed: app.started.elapsed(),
    }
}

/// A WebRTC player (see the module docs). Dropping it stops its peer without
/// signalling; call [`WebRtcPlayer::stop`] to end the session properly.
pub struct WebRtcPlayer {
    peer: PeerHandle<PlayerApp>,
    /// Answers the server's renegotiation offers (WebSocket signalling).
    answering: Option<tokio::task::JoinHandle<()>>,
    signalling: ActiveSignalling,
    stopped: bool,
    offer: String,
    answer_sdp: String,
    answer: SdpSummary,
    video_mid: Option<Mid>,
}

impl std::fmt::Debug for WebRtcPlayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebRtcPlayer")
            .field("signalling", &self.signalling)
            .field("report", &self.report())
            .finish()
    }
}

impl Drop for WebRtcPlayer {
    fn drop(&mut self) {
        if let Some(answering) = &self.answering {
            answering.abort();
        }
    }
}

impl WebRtcPlayer {
    /// Makes a recvonly offer, sends it by `signalling`, applies the answer
    /// and starts the peer. Returns once the answer is applied; ICE, DTLS and
    /// media follow (see [`WebRtcPlayer::wait_until`]). A refusal carries the
    /// server's status and body, or its `FAILED` info.
    pub async fn play(signalling: Signalling, options: PlayerOptions) -> Result<WebRtcPlayer, WebRtcError> {
        let mut media = Vec::new();
        if options.audio {
            media.push((MediaKind::Audio, Direction::RecvOnly));
        }
        if options.video {
            media.push((MediaKind::Video, Direction::RecvOnly));
        }
        let bind = match options.bind {
            Some(bind) => bind,
            None => super::local_address_for(signalling.server_url()).await,
        };
        let mut prepared = Prepared::new(options.rtc_config()?, &media, bind).await?;
        if let Some(every) = options.read_every {
            prepared.read_every(every)?;
        }
        let relay = match (options.lose_video_every, options.via) {
            (1.., None) => Some(UdpRelay::unaimed(bind, Loss::NONE).await?),
            _ => None,
        };
        match &relay {
            Some(relay) => prepared.relay_through(relay),
            None => prepared.send_via(options.via),
        }
        let (answer_sdp, answer, active) = negotiate(
            &mut prepared,
            &signalling,
            Endpoint::Whep,
            WsRequest::Play,
            options.signalling_timeout,
        )
        .await?;
        let started = prepared.started();
        let video_mid = prepared.mid(MediaKind::Video);
        let offer = prepared.offer().to_string();
        let mut receiver = MediaReceiver::new(started, options.keep_pcm);
        if options.read_marks {
            receiver.read_marks();
        }
        let app = PlayerApp {
            started,
            receiver,
            keyframe_requests_sent: 0,
            counter: (!options.decode).then(RtpCounter::default),
            relay,
        };
        // The video's own packets are lost; its retransmissions get through.
        let video = answer.video().and_then(|v| v.codecs.iter().find(|c| !c.is_repair()));
        if let (Some(relay), Some(video)) = (&app.relay, video) {
            relay.set_loss(Loss {
                every: options.lose_video_every,
                payload_type: Some(video.pt),
                all_of: None,
            });
        }
        let peer = prepared.spawn(app);
        // On the WebSocket channel the server may offer a track that appears
        // later (docs/signalling.md): answer it, as a browser page does.
        let answering = match &active {
            ActiveSignalling::Ws { session, id } => {
                let (session, id, acceptor) = (session.clone(), id.clone(), peer.offer_acceptor());
                Some(tokio::spawn(async move {
                    session
                        .answer_offers(&id, |sdp| {
                            let acceptor = acceptor.clone();
                            async move { acceptor.accept(sdp).await }
                        })
                        .await
                }))
            }
            ActiveSignalling::Http { .. } => None,
        };
        Ok(WebRtcPlayer {
            peer,
            answering,
            signalling: active,
            stopped: false,
            offer,
            answer_sdp,
            answer,
            video_mid,
        })
    }

    /// The SDP offer sent.
    pub fn offer_sdp(&self) -> &str {
        &self.offer
    }

    /// The SDP answer as the server sent it.
    pub fn answer_sdp(&self) -> &str {
        &self.answer_sdp
    }

    /// The SDP answer, read for checks.
    pub fn answer(&self) -> &SdpSummary {
        &self.answer
    }

    /// The WHEP session URL (`Location`), when signalled over HTTP.
    pub fn location(&self) -> Option<&str> {
        self.signalling.location()
    }

    /// The `Link`s of the WHEP `201` (each `rel` with its target), when
    /// signalled over HTTP.
    pub fn links(&self) -> &[(String, String)] {
        self.signalling.links()
    }

    /// The video layer selection entry point the WHEP `201` announced
    /// (`Link` with `rel="urn:ietf:params:whep:ext:core:layer"`), if any.
    pub fn layer_url(&self) -> Option<&str> {
        self.links()
            .iter()
            .find(|(rel, _)| rel == http::LAYER_REL)
            .map(|(_, target)| target.as_str())
    }

    /// The frame marks read since the last call (with
    /// [`PlayerOptions::read_marks`]), each with when its picture arrived,
    /// counted from the offer.
    pub fn take_marks(&self) -> Vec<(u16, Duration)> {
        self.peer.lock().app.receiver.take_marks()
    }

    /// When the offer was made: what the times of reports and marks count from.
    pub fn started(&self) -> Instant {
        self.peer.lock().app.started
    }

    /// What the player has seen so far.
    pub fn report(&self) -> PlayerReport {
        report_of(&self.peer.lock())
    }

    /// Wakes whenever the player's report may have changed; for callers
    /// that wait on several things at once (see `wait_until` otherwise).
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.peer.changes()
    }

    /// Waits until `check` holds for the report and returns that report. A
    /// timeout, or the peer ending first, is an error that shows the last report.
    pub async fn wait_until(
        &self,
        what: &str,
        check: impl FnMut(&PlayerReport) -> bool,
        timeout: Duration,
    ) -> Result<PlayerReport, WebRtcError> {
        self.peer.wait_report(what, timeout, report_of, check).await
    }

    /// Waits until ICE and DTLS are up.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<PlayerReport, WebRtcError> {
        self.wait_until("ICE and DTLS to connect", |r| r.peer.connected, timeout)
            .await
    }

    /// Switches the video to another layer (a track of a multitrack
    /// stream): `selection` is WHEP's layer selection object (`rid`,
    /// `maxWidth`, `maxHeight`; `{}` goes back to the first track), POSTed
    /// to the layer entry point the `201` announced, or sent as a `layer`
    /// message on the WebSocket channel. Ok when the server says it
    /// switched (200, `SELECTED`); a refusal is an error that carries the
    /// server's answer.
    pub async fn select_layer(&self, selection: &serde_json::Value, timeout: Duration) -> Result<(), WebRtcError> {
        match &self.signalling {
            ActiveSignalling::Http { .. } => {
                let url = self
                    .layer_url()
                    .ok_or_else(|| WebRtcError::Options("the 201 announced no layer selection".into()))?;
                let body = selection.to_string();
                let answer =
                    http::exchange(http::Method::Post, url, &[], Some(("application/json", &body)), None).await?;
                match answer.status {
                    200..=299 => Ok(()),
                    status => Err(WebRtcError::HttpStatus {
                        method: "POST",
                        url: url.to_string(),
                        status,
                        expected: 200,
                        body: answer.body,
                    }),
                }
            }
            ActiveSignalling::Ws { session, id } => {
                let mut message = selection.clone();
                message["type"] = "layer".into();
                message["id"] = id.as_str().into();
                let before = session.messages().len();
                session.send_json(&message)?;
                let answered = |m: &serde_json::Value| m["type"] == "layer" && m["id"] == id.as_str();
                let (messages, _) = session
                    .wait_messages(timeout, |all| all.iter().skip(before).any(answered))
                    .await;
                let answer = messages.iter().skip(before).find(|m| answered(m));
                match answer.map(|m| (m["status"].as_str(), m)) {
                    Some((Some("SELECTED"), _)) => Ok(()),
                    Some((_, m)) => Err(WebRtcError::LayerRefused {
                        info: m["info"].as_str().unwrap_or_default().to_string(),
                    }),
                    None => Err(WebRtcError::Timeout {
                        what: format!("an answer to the layer message for {id:?}"),
                        after: timeout,
                        state: format!("{} other messages since", messages.len() - before),
                    }),
                }
            }
        }
    }

    /// Restarts ICE over WHEP (draft 03, section 4.5.3); see
    /// [`PeerHandle::restart_ice`]. Returns the server's answer, whatever
    /// its status.
    pub async fn restart_ice(&self) -> Result<http::Exchange, WebRtcError> {
        let url = self
            .location()
            .ok_or_else(|| WebRtcError::Options("no WHEP session URL: the player was not signalled over HTTP".into()))?
            .to_string();
        self.peer.restart_ice(&url, &self.offer).await
    }

    /// Sends a PLI for the video.
    pub async fn request_keyframe(&self) -> Result<(), WebRtcError> {
        let mid = self
            .video_mid
            .ok_or_else(|| WebRtcError::Options("this player offered no video".into()))?;
        self.peer.request_keyframe(mid, KeyframeRequestKind::Pli).await?;
        self.peer.lock().app.keyframe_requests_sent += 1;
        Ok(())
    }

    /// The last `window` of decoded audio, mono.
    pub fn audio_pcm(&self, window: Duration) -> Pcm {
        self.peer.lock().app.receiver.pcm(window)
    }

    /// The level of the last `window` of decoded audio, `None` before any.
    pub fn audio_dbfs(&self, window: Duration) -> Option<f64> {
        self.audio_pcm(window).dbfs()
    }

    /// The dominant frequency of the last `window` of decoded audio (the
    /// measurement looks at its first 200 ms).
    pub fn audio_frequency(&self, window: Duration) -> Option<f64> {
        self.audio_pcm(window).dominant_frequency()
    }

    /// Ends the session: `DELETE` on the WHEP location or `stop` on the
    /// WebSocket, then closes the peer. The report stays readable. Calling it
    /// again does nothing.
    pub async fn stop(&mut self) -> Result<(), WebRtcError> {
        if std::mem::replace(&mut self.stopped, true) {
            return Ok(());
        }
        let result = self.signalling.stop().await;
        self.peer.close().await;
        result
    }

    /// Closes the peer (RTCP BYE, DTLS close_notify) without telling the
    /// signalling: the server has to notice the peer going away.
    pub async fn close_peer(&self) {
        self.peer.close().await;
    }
}

/// Sends the prepared offer by `signalling` and applies what comes back:
/// the server's answer, or (WHEP) its counter-offer, which the player
/// answers by `PATCH` as WHEP draft 03, section 4.2, asks. Returns the
/// server's SDP (answer or counter-offer), read, and how to end the session.
pub(crate) async fn negotiate(
    prepared: &mut Prepared,
    signalling: &Signalling,
    endpoint: Endpoint,
    request: WsRequest,
    timeout: Duration,
) -> Result<(String, SdpSummary, ActiveSignalling), WebRtcError> {
    let (server_sdp, counter_offer, active) = signal(signalling, endpoint, request, prepared.offer(), timeout).await?;
    let applied = apply(prepared, &server_sdp, counter_offer, &active, timeout).await;
    match applied {
        Ok(summary) => Ok((server_sdp, summary, active)),
        Err(e) => {
            let _ = active.stop().await;
            Err(e)
        }
    }
}

/// Reads and applies the server's SDP: its answer, or its counter-offer,
/// answered on the session's `Location`.
async fn apply(
    prepared: &mut Prepared,
    sdp: &str,
    counter_offer: bool,
    active: &ActiveSignalling,
    timeout: Duration,
) -> Result<SdpSummary, WebRtcError> {
    let summary = SdpSummary::parse(sdp).map_err(|e| WebRtcError::BadAnswer {
        reason: e.to_string(),
        sdp: sdp.to_string(),
    })?;
    if !counter_offer {
        prepared.accept(sdp)?;
        return Ok(summary);
    }
    let answer = prepared.answer_counter_offer(sdp)?;
    let location = active.location().unwrap_or_default().to_string();
    tokio::time::timeout(timeout, http::answer_counter_offer(&location, &answer))
        .await
        .map_err(|_| WebRtcError::Timeout {
            what: format!("the answer to PATCH {location}"),
            after: timeout,
            state: "no answer".into(),
        })??;
    Ok(summary)
}

/// Sends `offer` by `signalling` and returns the server's SDP, whether it
/// is a WHEP counter-offer, and how to end the session.
async fn signal(
    signalling: &Signalling,
    endpoint: Endpoint,
    request: WsRequest,
    offer: &str,
    timeout: Duration,
) -> Result<(String, bool, ActiveSignalling), WebRtcError> {
    let url = match signalling {
        Signalling::Http { http_base, app, stream } => http::endpoint_url(http_base, endpoint, app, stream),
        Signalling::Url { url } => url.clone(),
        Signalling::Ws { session, id, stream } => {
            let answer = session.offer(request, id, stream, offer, timeout).await?;
            let active = ActiveSignalling::Ws {
                session: session.clone(),
                id: id.clone(),
            };
            return Ok((answer, false, active));
        }
    };
    let offered = tokio::time::timeout(timeout, http::offer(endpoint, &url, offer))
        .await
        .map_err(|_| WebRtcError::Timeout {
            what: format!("the answer to POST {url}"),
            after: timeout,
            state: "no answer".into(),
        })??;
    let active = ActiveSignalling::Http {
        location: offered.location,
        links: offered.links,
    };
    Ok((offered.sdp, offered.counter_offer, active))
}
