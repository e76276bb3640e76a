//! WebRTC players and publishers, on str0m.
//!
//! Every peer is a str0m `Rtc` (sans-IO) driven by its own tokio task; all of
//! them share one UDP socket ([`udp`]), ICE-lite with host candidates. A player
//! ([`play`]) subscribes to a hub stream once its peer is connected and sends
//! it H.264 and Opus (transcoded once per stream, or passed through), in RTP
//! payloads made once per stream and shared by its players ([`packets`]); a publisher ([`publish`]) pushes what it receives into
//! the hub as FLV-shaped frames so RTMP players get it too.
//!
//! Signalling (WHEP/WHIP, WebSocket) lives in `http`; this module starts and
//! stops sessions and reports their status.

pub mod clock;
mod dtls_keys;
pub mod packets;
mod peer;
pub mod plan;
pub mod play;
pub mod play_core;

mod publish;
pub mod send;
pub mod srtp;
pub mod udp;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use media::rtmp::url::Params;
use rand::Rng;
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::config::DtlsCert;
use str0m::media::MediaKind;
use str0m::{Candidate, IceCreds, Rtc, RtcConfig};
use tokio::sync::{watch, OwnedSemaphorePermit};

use crate::limits::{AddressSlot, PerAddress};
use tokio_util::sync::CancellationToken;

use crate::config::WebRtcConfig;
use crate::hub::Publisher;
use crate::server::Context;

/// Where a session is, in the words of Flashphoner WCS's stream statuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionStatus {
    /// Answered; ICE and DTLS are being set up, or the stream waits for its publisher.
    Pending,
    /// A publisher's peer is connected; its media goes to the hub.
    Publishing,
    /// A player's peer is connected and the stream is live.
    Playing,
    /// The played stream lost its publisher; the session stays.
    Unpublished,
    /// The session ended normally (stop, DELETE, or the peer left).
    Stopped,
    /// The session failed; the reason says why.
    Failed(String),
}

impl SessionStatus {
    /// The WCS name of the status (`PLAYING`, `FAILED`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            SessionStatus::Pending => "PENDING",
            SessionStatus::Publishing => "PUBLISHING",
            SessionStatus::Playing => "PLAYING",
            SessionStatus::Unpublished => "UNPUBLISHED",
            SessionStatus::Stopped => "STOPPED",
            SessionStatus::Failed(_) => "FAILED",
        }
    }

    /// Whether the session is over.
    pub fn is_final(&self) -> bool {
        matches!(self, SessionStatus::Stopped | SessionStatus::Failed(_))
    }
}

/// Plays or publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The peer receives a stream.
    Play,
    /// The peer sends a stream.
    Publish,
}

/// Why a session could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The offer is not SDP, or not one the server can answer; the text
    /// says which in the server's own words (never the parser's).
    #[error("bad SDP offer: {0}")]
    BadOffer(String),
    /// Nothing publishes the stream and the application does not wait.
    #[error("Stream not found")]
    NotFound,
    /// The server has `webrtc.max_sessions` sessions already.
    #[error("too many WebRTC sessions ({0}); try again later")]
    TooManySessions(usize),
    /// The client's address has `webrtc.max_sessions_per_address` already.
    #[error("too many WebRTC sessions from this address ({0})")]
    TooManyFromAddress(usize),
    /// No m-line of the offer carries a codec the stream can use.
    #[error("the offer has no media this stream can use ({0})")]
    NoUsableMedia(String),
    /// A stream-name parameter (`width`, `height`, `bitrate`) is not valid.
    #[error("{0}")]
    BadParameter(String),
    /// A player's answer to a counter-offer is not SDP, or does not answer it.
    #[error("bad SDP answer: {0}")]
    BadAnswer(String),
}

/// What a player asked to play, decided before its `Rtc` is made.
struct PlayRequest {
    app: String,
    stream: String,
    selection: crate::hub::Selection,
    /// A transcoded picture of this size or bitrate, if asked for.
    video: Option<codecs::VideoSettings>,
    /// The application transcodes every WebRTC player's video.
    always_transcode: bool,
    /// The stream as it is now; none when nobody publishes it yet.
    description: Option<crate::hub::StreamDescription>,
}

impl PlayRequest {
    /// `stream` of `app` with its name's `params` (an error names a bad one).
    fn new(ctx: &Context, app: &str, stream: &str, params: &Params) -> Result<PlayRequest, SessionError> {
        let video = play::video_request(params)
            .map_err(SessionError::BadParameter)?
            .filter(|_| !ctx.config.quirks.size_ignored);
        let selection = crate::hub::Selection::from_params(params)
            .map_err(SessionError::BadParameter)?
            .unless(ctx.config.quirks.track_selection_ignored)
            .single();
        Ok(PlayRequest {
            app: app.to_string(),
            stream: stream.to_string(),
            selection,
            video,
            always_transcode: !ctx.config.apps.get(app).is_none_or(|a| a.avoid_transcoding),
            description: None,
        })
    }

    /// Reads the stream as it is now; [`SessionError::NotFound`] when
    /// nobody publishes it and the application does not `wait`.
    fn describe(&mut self, ctx: &Context, wait: bool) -> Result<(), SessionError> {
        self.description = ctx.hub.describe_for(&self.app, &self.stream, self.selection);
        match self.description.is_none() && !wait {
            true => Err(SessionError::NotFound),
            false => Ok(()),
        }
    }

    /// What the player's `Rtc` may send it.
    fn answerable(&self, ctx: &Context) -> play::Answerable {
        play::codecs(
            self.description.as_ref(),
            self.always_transcode || self.video.is_some(),
            &ctx.config.quirks,
        )
    }
}

/// A counter-offer waiting for its answer, with the session's places.
struct CounterOffer {
    rtc: Rtc,
    pending: SdpPendingOffer,
    slot: Slot,
    request: PlayRequest,
}

/// Where a player's session sends the SDP offer of a renegotiation (video
/// that appeared after the answer), for its signalling to pass on.
pub type OfferSink = tokio::sync::mpsc::UnboundedSender<String>;

/// A running session, as signalling sees it.
#[derive(Clone)]
pub struct SessionHandle {
    /// The server's id of the session (in WHEP/WHIP `Location`).
    pub id: String,
    /// Application key.
    pub app: String,
    /// Stream name.
    pub stream: String,
    /// Play or publish.
    pub direction: Direction,
    /// The current ICE session: its peer's ICE username fragment (a
    /// trickle-ICE `PATCH` with another one is an ICE restart, RFC 9725
    /// section 4.3.3) and its number. Held across a restart, so that
    /// restarts and trickles of one session are taken one at a time.
    pub ice: Arc<tokio::sync::Mutex<IceSession>>,
    /// Status changes.
    pub status: watch::Receiver<SessionStatus>,
    /// A player's video m-line: its index among the answer's m-lines.
    pub video_line: Option<usize>,
    cancel: CancellationToken,
    signals: tokio::sync::mpsc::UnboundedSender<peer::Signal>,
}

/// A session's current ICE session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceSession {
    /// The peer's ICE username fragment in it.
    pub peer_ufrag: String,
    /// 0 for the session's first ICE session, then one more at each restart.
    pub generation: u32,
}

impl SessionHandle {
    /// Stops (true) or resumes (false) the audio a player sends; its RTP
    /// stream stays the same. No effect on publishers.
    pub fn mute_audio(&self, muted: bool) {
        let _ = self.signals.send(peer::Signal::MuteAudio(muted));
    }

    /// Switches a player's video to track `track` of a multitrack stream
    /// (`None`: back to the track it started with), from that track's
    /// cached keyframe. No effect on publishers.
    pub fn select_video_track(&self, track: Option<u8>) {
        let _ = self.signals.send(peer::Signal::VideoTrack(track));
    }

    /// The peer's SDP answer to an offer the session sent (see
    /// [`WebRtc::play`]'s `offers`); false for a publisher, which is sent
    /// no offers, and once the session is gone.
    pub fn remote_answer(&self, sdp: String) -> bool {
        self.direction == Direction::Play && self.signals.send(peer::Signal::Answer(sdp)).is_ok()
    }

    /// Ends the session (its status becomes `Stopped`).
    pub fn stop(&self) {
        self.cancel.cancel();
    }
}

/// The WebRTC side of the server: the shared UDP socket and the sessions.
pub struct WebRtc {
    port: Arc<udp::Port>,
    candidate: SocketAddr,
    router: udp::Router,
    sessions: Mutex<HashMap<String, SessionHandle>>,
    /// Counter-offers waiting for their answers, by session id.
    counter_offers: Mutex<HashMap<String, CounterOffer>>,
    /// One permit per session that may still start (`max_sessions`): a
    /// session takes one before it is answered and holds it to its end, so
    /// concurrent offers never make more.
    slots: Arc<tokio::sync::Semaphore>,
    /// Sessions per client address.
    addresses: Arc<PerAddress>,
    /// The DTLS certificate of every session, made once: a key pair per
    /// session would cost every offer a key generation.
    certificate: Option<DtlsCert>,
    config: WebRtcConfig,
    /// The RTP payloads each played stream's players share.
    pub packets: packets::Registry,
}

impl WebRtc {
    /// Binds the UDP port. Sessions start with [`WebRtc::play`] and [`WebRtc::publish`];
    /// [`WebRtc::receive_loop`] must run for any of them to connect.
    pub async fn bind(config: &WebRtcConfig) -> std::io::Result<WebRtc> {
        // Once per process; later calls are no-ops.
        install_crypto();
        let port = udp::Port::bind(config.listen).await?;
        let local = port.local_addr()?;
        let candidate = SocketAddr::new(config.public_ip.unwrap_or(local.ip()), local.port());
        Ok(WebRtc {
            port: Arc::new(port),
            candidate,
            router: udp::Router::default(),
            sessions: Mutex::default(),
            counter_offers: Mutex::default(),
            slots: Arc::new(tokio::sync::Semaphore::new(config.max_sessions)),
            addresses: PerAddress::new(config.max_sessions_per_address),
            certificate: dtls_certificate(),
            config: config.clone(),
            packets: packets::Registry::default(),
        })
    }

    /// Restarts `session`'s ICE with the peer's new credentials
    /// `remote` (RFC 9725 and WHEP draft 03, "ICE restarts"), under `ice`
    /// (its [`SessionHandle::ice`], locked by the caller): the session gets
    /// new credentials of its own, STUN for its new ufrag reaches it (from
    /// any address), and checks with the old ones are no longer answered;
    /// media goes on over the pair in use until the peer nominates another.
    /// Returns the new credentials once the session has them; `None` if it
    /// has ended. With `unapplied` (the quirk `ice_restarts_unapplied`)
    /// the session is never given them.
    pub async fn restart_ice(
        &self,
        session: &SessionHandle,
        ice: &mut IceSession,
        remote: IceCreds,
        unapplied: bool,
    ) -> Option<IceCreds> {
        let local = IceCreds {
            ufrag: random_token(16),
            pass: random_token(24),
        };
        if !self.router.alias(&session.id, &local.ufrag) {
            return None;
        }
        let peer_ufrag = remote.ufrag.clone();
        if !unapplied {
            let (done, applied) = tokio::sync::oneshot::channel();
            session
                .signals
                .send(peer::Signal::Restart(Box::new(peer::Restart {
                    local: local.clone(),
                    remote,
                    done,
                })))
                .ok()?;
            applied.await.ok()?;
        }
        ice.peer_ufrag = peer_ufrag;
        ice.generation += 1;
        Some(local)
    }

    /// The `a=candidate` lines of every session (the host candidate).
    pub fn candidate_lines(&self) -> Vec<String> {
        Candidate::host(self.candidate, "udp")
            .map(|candidate| vec![format!("a={}", candidate.to_sdp_string())])
            .unwrap_or_default()
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.port.local_addr().unwrap_or(self.candidate)
    }

    /// Moves datagrams to peers until shutdown.
    pub fn receive_loop(&self, ctx: &Context) -> impl std::future::Future<Output = ()> + Send + 'static {
        udp::receive_loop(
            self.port.clone(),
            self.router.clone(),
            ctx.metrics.clone(),
            ctx.shutdown.clone(),
        )
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, SessionHandle>> {
        self.sessions.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A session by id; none once it was told to stop, although its task
    /// may still be winding down (a second DELETE finds nothing at once).
    pub fn session(&self, id: &str) -> Option<SessionHandle> {
        self.lock()
            .get(id)
            .filter(|session| !session.cancel.is_cancelled())
            .cloned()
    }

    /// Sessions open now.
    pub fn session_count(&self) -> usize {
        self.lock().len()
    }

    /// Starts playing `stream` of `app` to the peer that sent `offer`; returns
    /// the session and the SDP answer. With `wait`, a stream nobody publishes
    /// yet is played when it arrives; without, that is [`SessionError::NotFound`].
    /// `params` are the stream name's parameters: `width`, `height` and
    /// `bitrate` ask for transcoded video (see [`play::video_request`]).
    /// With `offers` (signalling that can renegotiate: the WebSocket
    /// channel), a player answered without video is sent an SDP offer there
    /// when video appears, and takes the answer through the handle's
    /// [`SessionHandle::remote_answer`].
    #[allow(clippy::too_many_arguments)]
    pub fn play(
        self: &Arc<Self>,
        ctx: &Arc<Context>,
        app: &str,
        stream: &str,
        params: &Params,
        wait: bool,
        offer: &str,
        offers: Option<OfferSink>,
        from: Option<IpAddr>,
    ) -> Result<(SessionHandle, String), SessionError> {
        let mut request = PlayRequest::new(ctx, app, stream, params)?;
        let offer = &one_way(offer, "a=recvonly");
        let parsed = parse_offer(offer)?;
        let peer_ufrag = ice_ufrag(offer);
        request.describe(ctx, wait)?;
        let play::Answerable {
            mut config,
            plan,
            video: answers_video,
            ..
        } = request.answerable(ctx);
        // KI-1 switched back on: an audio-only stream is answered with video
        // too, and its audio never sent.
        let silent = ctx.config.quirks.video_line_for_audio_only
            && request
                .description
                .as_ref()
                .is_some_and(|d| d.has_audio && !d.has_video);
        // Video left out now may be offered later: the `Rtc` needs H.264 in
        // its codecs for that, and the offer's video declined so that it is
        // still answered rejected (known issue 1).
        let wants_video = offer.lines().any(|line| line.starts_with("m=video "));
        let offers = offers.filter(|_| wants_video && !answers_video && !silent && !ctx.config.quirks.no_renegotiation);
        let offer = match &offers {
            Some(_) => parse_offer(&play::decline_video(offer))?,
            None => parsed,
        };
        if silent || offers.is_some() {
            config = config.enable_h264(true);
        }
        let (rtc, ufrag, answer, slot) = self.accept(config, offer, from, &ctx.config.quirks)?;
        if !answer_has_media(&answer) {
            return Err(SessionError::NoUsableMedia(plan));
        }
        let session = self.start_player(ctx, request, (rtc, ufrag, slot), peer_ufrag, &answer, offers, silent);
        Ok((session, answer))
    }

    /// Rejects a player's offer in favour of the server's own (WHEP draft
    /// 03, section 4.2): an initial offer, `sendonly`, of what the stream
    /// can be played in (as [`WebRtc::play`] would answer). Returns the id
    /// of the session it will become and the offer; the player's answer goes
    /// to [`WebRtc::answer_counter_offer`] within `webrtc.counter_offer_valid`,
    /// after which the offer is forgotten. It holds a session's places
    /// meanwhile, so unanswered counter-offers are bounded as sessions are.
    /// `offer` is only checked to be SDP: a malformed one is refused.
    #[allow(clippy::too_many_arguments)]
    pub fn counter_offer(
        self: &Arc<Self>,
        ctx: &Arc<Context>,
        app: &str,
        stream: &str,
        params: &Params,
        wait: bool,
        offer: &str,
        from: Option<IpAddr>,
    ) -> Result<(String, String), SessionError> {
        let mut request = PlayRequest::new(ctx, app, stream, params)?;
        parse_offer(offer)?;
        request.describe(ctx, wait)?;
        let answerable = request.answerable(ctx);
        if !answerable.audio && !answerable.video {
            return Err(SessionError::NoUsableMedia(answerable.plan));
        }
        let slot = self.take_slot(from)?;
        let (mut rtc, ufrag) = self.new_rtc(answerable.config);
        let mut api = rtc.sdp_api();
        for (kind, wanted) in [
            (MediaKind::Audio, answerable.audio),
            (MediaKind::Video, answerable.video),
        ] {
            if wanted {
                api.add_media(kind, str0m::media::Direction::SendOnly, None, None, None);
            }
        }
        let (offer, pending) = api
            .apply()
            .ok_or_else(|| SessionError::NoUsableMedia(answerable.plan.clone()))?;
        let sdp = offer.to_sdp_string();
        let waiting = CounterOffer {
            rtc,
            pending,
            slot,
            request,
        };
        self.counter_offers().insert(ufrag.clone(), waiting);
        tracing::info!(session = %ufrag, app = %crate::text::Clipped(app), "counter-offer made");
        let (this, id, valid) = (self.clone(), ufrag.clone(), self.config.counter_offer_valid);
        tokio::spawn(async move {
            tokio::time::sleep(valid).await;
            if this.counter_offers().remove(&id).is_some() {
                tracing::info!(session = %id, "counter-offer expired unanswered");
            }
        });
        Ok((ufrag, sdp))
    }

    /// Takes a player's SDP `answer` to the counter-offer `id` for `stream`
    /// of `app` and starts its session. The counter-offer is used up either
    /// way. [`SessionError::NotFound`]: no counter-offer waits under that
    /// id (never made, expired, answered, or for another stream).
    pub fn answer_counter_offer(
        self: &Arc<Self>,
        ctx: &Arc<Context>,
        (app, stream, id): (&str, &str, &str),
        answer: &str,
    ) -> Result<SessionHandle, SessionError> {
        if !self.counter_offer_waits(app, stream, id) {
            return Err(SessionError::NotFound);
        }
        let Some(CounterOffer {
            mut rtc,
            pending,
            slot,
            request,
        }) = self.counter_offers().remove(id)
        else {
            return Err(SessionError::NotFound);
        };
        let parsed = SdpAnswer::from_sdp_string(answer).map_err(|error| {
            tracing::debug!(%error, "answer not parsed");
            SessionError::BadAnswer("it is not an SDP answer to the counter-offer".into())
        })?;
        rtc.sdp_api().accept_answer(pending, parsed).map_err(|error| {
            tracing::debug!(%error, "answer not accepted");
            SessionError::BadAnswer("its media sections do not answer the counter-offer's".into())
        })?;
        if !answer_has_media(answer) {
            return Err(SessionError::NoUsableMedia("the answer rejected every m-line".into()));
        }
        let peer_ufrag = ice_ufrag(answer);
        Ok(self.start_player(
            ctx,
            request,
            (rtc, id.to_string(), slot),
            peer_ufrag,
            answer,
            None,
            false,
        ))
    }

    /// Whether the counter-offer `id` of `stream` of `app` waits for its answer.
    pub fn counter_offer_waits(&self, app: &str, stream: &str, id: &str) -> bool {
        self.counter_offers()
            .get(id)
            .is_some_and(|waiting| waiting.request.app == app && waiting.request.stream == stream)
    }

    /// Forgets the counter-offer `id` of `stream` of `app` (its `DELETE`);
    /// false when none waits there.
    pub fn withdraw_counter_offer(&self, app: &str, stream: &str, id: &str) -> bool {
        self.counter_offer_waits(app, stream, id) && self.counter_offers().remove(id).is_some()
    }

    fn counter_offers(&self) -> MutexGuard<'_, HashMap<String, CounterOffer>> {
        self.counter_offers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts the session of a player whose `answer` (the server's, or the
    /// player's to a counter-offer) is agreed on.
    #[allow(clippy::too_many_arguments)]
    fn start_player(
        self: &Arc<Self>,
        ctx: &Arc<Context>,
        request: PlayRequest,
        accepted: (Rtc, String, Slot),
        peer_ufrag: String,
        answer: &str,
        offers: Option<OfferSink>,
        silent: bool,
    ) -> SessionHandle {
        let PlayRequest {
            app,
            stream,
            selection,
            video,
            always_transcode,
            ..
        } = request;
        let mut player = play::Player::new(ctx.clone(), &app, &stream, selection, video, always_transcode);
        player.video_line = video_line(answer);
        if let Some(offers) = offers {
            player.renegotiate_with(offers);
        }
        for (kind, mid) in accepted_mids(answer) {
            if !(silent && kind == MediaKind::Audio) {
                player.media_added(mid, kind);
            }
        }
        self.spawn(
            ctx,
            accepted,
            peer_ufrag,
            &app,
            &stream,
            peer::Role::Play(Box::new(player)),
        )
    }

    /// Starts a publisher of `stream` in `app` from the peer that sent `offer`
    /// (H.264 and Opus), pushing to `publisher` (the name admitted and
    /// reserved, see [`crate::admission`]); returns the session and the SDP answer.
    pub fn publish(
        self: &Arc<Self>,
        ctx: &Arc<Context>,
        app: &str,
        stream: &str,
        publisher: Publisher,
        offer: &str,
        from: Option<IpAddr>,
    ) -> Result<(SessionHandle, String), SessionError> {
        let peer_ufrag = ice_ufrag(offer);
        let offered = offer
            .lines()
            .filter(|line| line.starts_with("m=audio ") || line.starts_with("m=video "))
            .count();
        let offer = parse_offer(&one_way(offer, "a=sendonly"))?;
        let config = Rtc::builder().clear_codecs().enable_opus(true, false).enable_h264(true);
        let (rtc, ufrag, answer, slot) = self.accept(config, offer, from, &ctx.config.quirks)?;
        // A publisher whose tracks are not all taken is refused rather than
        // half-accepted (RFC 9725, section 4.4.3): it would go live
        // without them, unaware.
        if !answer_has_media(&answer) || accepted_mids(&answer).len() < offered {
            return Err(SessionError::NoUsableMedia(
                "H.264 video and Opus audio, every track offered".into(),
            ));
        }
        ctx.metrics.publishes_total.inc();
        let interval = ctx.config.webrtc.publisher_keyframe_interval;
        let schedule = (!ctx.config.quirks.no_publisher_keyframe_requests).then_some(interval);
        let mut ingest = publish::Ingest::new(publisher, schedule, ctx.metrics.clone(), Instant::now());
        for (kind, mid) in accepted_mids(&answer) {
            ingest.media_added(mid, kind);
        }
        let role = peer::Role::Publish(Box::new(ingest));
        Ok((
            self.spawn(ctx, (rtc, ufrag, slot), peer_ufrag, app, stream, role),
            answer,
        ))
    }

    /// Answers `offer` of a client at `from` with a new `Rtc` (ICE lite,
    /// one host candidate): the `Rtc`, its ICE ufrag (the session id), the
    /// answer, and the session's slots.
    fn accept(
        &self,
        config: RtcConfig,
        offer: SdpOffer,
        from: Option<IpAddr>,
        quirks: &crate::config::Quirks,
    ) -> Result<Accepted, SessionError> {
        let slot = self.take_slot(from)?;
        let (mut rtc, ufrag) = self.new_rtc(config);
        let answer = answer_with(&mut rtc, offer)?;
        let answer = match quirks.payload_types_fixed {
            true => fixed_payload_types(&answer),
            false => answer,
        };
        Ok((rtc, ufrag, answer, slot))
    }

    /// A session's places for a client at `from`, if the server and the
    /// address have one left.
    fn take_slot(&self, from: Option<IpAddr>) -> Result<Slot, SessionError> {
        let address = match from {
            Some(ip) => Some(
                self.addresses
                    .admit(ip)
                    .ok_or(SessionError::TooManyFromAddress(self.addresses.limit()))?,
            ),
            None => None,
        };
        let slot = self
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| SessionError::TooManySessions(self.config.max_sessions))?;
        Ok(Slot {
            _server: slot,
            _address: address,
        })
    }

    /// A session's `Rtc` of `config`, with the server's certificate, ICE
    /// lite, and the host candidate; and its ICE ufrag. (A player sets its
    /// resend history when it starts sending: `Player::keep_for_resends`.)
    fn new_rtc(&self, config: RtcConfig) -> (Rtc, String) {
        let config = match &self.certificate {
            Some(certificate) => config.set_dtls_cert(certificate.clone()),
            None => config,
        };
        session_rtc(config, self.candidate)
    }

    fn spawn(
        self: &Arc<Self>,
        ctx: &Arc<Context>,
        (rtc, ufrag, slot): (Rtc, String, Slot),
        peer_ufrag: String,
        app: &str,
        stream: &str,
        role: peer::Role,
    ) -> SessionHandle {
        let direction = match role {
            peer::Role::Play(_) => Direction::Play,
            peer::Role::Publish(_) => Direction::Publish,
        };
        let (status_tx, status) = watch::channel(SessionStatus::Pending);
        let (signals, signals_rx) = tokio::sync::mpsc::unbounded_channel();
        let video_line = match &role {
            peer::Role::Play(player) => player.video_line,
            peer::Role::Publish(_) => None,
        };
        let handle = SessionHandle {
            id: ufrag.clone(),
            app: app.to_string(),
            stream: stream.to_string(),
            direction,
            ice: Arc::new(tokio::sync::Mutex::new(IceSession {
                peer_ufrag,
                generation: 0,
            })),
            status,
            video_line,
            cancel: ctx.shutdown.child_token(),
            signals,
        };
        let datagrams = self.router.add(&ufrag);
        self.lock().insert(ufrag.clone(), handle.clone());
        ctx.metrics.webrtc_sessions.inc();
        ctx.metrics.webrtc_sessions_total.inc();
        let peer = Box::new(peer::Peer {
            rtc,
            port: self.port.clone(),
            batch: udp::Batch::default(),
            local: self.local_addr(),
            datagrams,
            signals: signals_rx,
            status: status_tx,
            cancel: handle.cancel.clone(),
            connect_timeout: self.config.connect_timeout,
            withhold_sender_reports: ctx.config.quirks.sender_reports_withheld,
            withhold_retransmissions: ctx.config.quirks.retransmissions_withheld,
        });
        let this = self.clone();
        let metrics = ctx.metrics.clone();
        let span = tracing::info_span!("webrtc", session = %ufrag, %app, %stream, ?direction);
        tracing::info!(parent: &span, "session started");
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                peer::run(peer, role).await;
                this.router.remove(&ufrag);
                this.lock().remove(&ufrag);
                metrics.webrtc_sessions.dec();
                drop(slot);
            },
            span,
        ));
        handle
    }
}

/// Installs str0m's crypto provider for the process, once.
pub(crate) fn install_crypto() {
    static CRYPTO: std::sync::Once = std::sync::Once::new();
    CRYPTO.call_once(|| str0m::crypto::from_feature_flags().install_process_default());
}

/// A DTLS certificate for sessions, if the crypto provider makes one (each
/// `Rtc` makes its own otherwise).
pub(crate) fn dtls_certificate() -> Option<DtlsCert> {
    install_crypto();
    str0m::crypto::from_feature_flags().dtls_provider.generate_certificate()
}

/// Answers `offer` with a new `Rtc` of `config` (ICE lite, the host
/// candidate `candidate`): the `Rtc`, its ICE ufrag, and the answer.
pub(crate) fn answer_offer(
    config: RtcConfig,
    offer: SdpOffer,
    candidate: SocketAddr,
) -> Result<(Rtc, String, String), SessionError> {
    let (mut rtc, ufrag) = session_rtc(config, candidate);
    let answer = answer_with(&mut rtc, offer)?;
    Ok((rtc, ufrag, answer))
}

/// `rtc`'s answer to `offer`.
fn answer_with(rtc: &mut Rtc, offer: SdpOffer) -> Result<String, SessionError> {
    let answer = rtc.sdp_api().accept_offer(offer).map_err(|error| {
        tracing::debug!(%error, "offer not accepted");
        SessionError::BadOffer("its media sections cannot be negotiated (directions, codecs or BUNDLE)".into())
    })?;
    Ok(answer.to_sdp_string())
}

/// A new `Rtc` of `config`, ICE lite with fresh credentials and the host
/// candidate `candidate`, and its ICE ufrag.
fn session_rtc(config: RtcConfig, candidate: SocketAddr) -> (Rtc, String) {
    let ufrag = random_token(16);
    let creds = IceCreds {
        ufrag: ufrag.clone(),
        pass: random_token(24),
    };
    let mut rtc = config
        .set_crypto_provider(dtls_keys::provider())
        .set_ice_lite(true)
        .set_local_ice_credentials(creds)
        .build(Instant::now());
    match Candidate::host(candidate, "udp") {
        Ok(candidate) => {
            rtc.add_local_candidate(candidate);
        }
        Err(error) => tracing::warn!(%error, address = %candidate, "no ICE candidate for the session"),
    }
    (rtc, ufrag)
}

/// What [`WebRtc::accept`] gives: the `Rtc`, its ICE ufrag, the answer,
/// and the session's slots.
type Accepted = (Rtc, String, String, Slot);

/// A session's places: one of the server's `max_sessions`, and one of its
/// client address's; both are given back when the session ends.
struct Slot {
    _server: OwnedSemaphorePermit,
    _address: Option<AddressSlot>,
}

pub(crate) fn parse_offer(offer: &str) -> Result<SdpOffer, SessionError> {
    if let Some(pt) = payload_type_reused(offer) {
        return Err(SessionError::BadOffer(format!(
            "payload type {pt} names different codecs or media kinds in one offer (BUNDLE, RFC 8843)"
        )));
    }
    SdpOffer::from_sdp_string(offer).map_err(|error| {
        tracing::debug!(%error, "offer not parsed");
        SessionError::BadOffer(offer_problem(offer))
    })
}

/// A payload type that an offer's `a=rtpmap` lines give to two codecs, or
/// to m-lines of two kinds (audio and video): in a BUNDLE group one payload
/// type names one codec configuration, and str0m asserts it does (a panic,
/// found by `fuzz/`'s `sdp_offer`), so such an offer is refused first.
fn payload_type_reused(offer: &str) -> Option<u8> {
    let mut kind = "";
    let mut seen: HashMap<u8, (&str, String)> = HashMap::new();
    for line in offer.lines().map(str::trim_end) {
        if let Some(media) = line.strip_prefix("m=") {
            kind = media.split(' ').next().unwrap_or_default();
        } else if let Some(map) = line.strip_prefix("a=rtpmap:") {
            let (pt, codec) = map.split_once(' ').unwrap_or((map, ""));
            let Ok(pt) = pt.trim().parse::<u8>() else { continue };
            let codec = codec.trim().to_ascii_lowercase();
            match seen.get(&pt) {
                Some((k, c)) if *k != kind || *c != codec => return Some(pt),
                Some(_) => {}
                None => {
                    seen.insert(pt, (kind, codec));
                }
            }
        }
    }
    None
}

/// Why an offer the SDP parser refused is not SDP, in the server's words:
/// the parser's own text names its internals, and a peer's bytes are never
/// echoed.
fn offer_problem(offer: &str) -> String {
    let mut lines = offer.lines().map(str::trim_end).enumerate();
    match lines.next() {
        None => return "the offer is empty".into(),
        Some((_, first)) if !first.starts_with("v=") => {
            return "the offer does not begin with v=0: it is not SDP".into()
        }
        _ => {}
    }
    if let Some((index, _)) = lines.clone().find(|(_, line)| !line.is_empty() && !is_sdp_line(line)) {
        return format!(
            "line {} of the offer is not an SDP line (a letter, '=', a value)",
            index + 1
        );
    }
    if !lines.any(|(_, line)| line.starts_with("m=")) {
        return "the offer has no media section (m=)".into();
    }
    "the offer is not SDP this server can read (a field out of place or malformed)".into()
}

/// Whether `line` has the form of an SDP line: a lowercase letter, `=`, a value.
pub fn is_sdp_line(line: &str) -> bool {
    let bytes = line.as_bytes();
    bytes.len() >= 2 && bytes[0].is_ascii_lowercase() && bytes[1] == b'='
}

/// Whether an answer accepts at least one audio or video m-line (port not 0).
fn answer_has_media(answer: &str) -> bool {
    !accepted_mids(answer).is_empty()
}

/// The first `a=ice-ufrag` of an SDP (empty if it has none).
pub fn ice_ufrag(sdp: &str) -> String {
    sdp.lines()
        .find_map(|line| line.trim_end().strip_prefix("a=ice-ufrag:"))
        .unwrap_or_default()
        .to_string()
}

/// `offer` with its `sendrecv` m-lines made `direction` (`a=sendonly` for
/// a publisher, `a=recvonly` for a player): media goes one way here, and
/// the answer must say so (RFC 9725 section 4.2, WHEP draft 03 section
/// 4.3.5) whatever the client offered.
pub(crate) fn one_way(offer: &str, direction: &str) -> String {
    offer
        .split_inclusive('\n')
        .map(|line| match line.trim_end() {
            "a=sendrecv" => format!("{direction}{}", &line["a=sendrecv".len()..]),
            _ => line.to_string(),
        })
        .collect()
}

/// The quirk `payload_types_fixed`: `answer` with Opus renumbered 111 and
/// H.264 102 in every m-line, whatever numbers the offer gave them, as a
/// server tried only with Chrome (which offers them under those numbers)
/// writes its answers.
fn fixed_payload_types(answer: &str) -> String {
    // The session part, then each m-line's lines.
    let mut sections: Vec<Vec<&str>> = vec![Vec::new()];
    for line in answer.split_inclusive('\n') {
        if line.starts_with("m=") {
            sections.push(Vec::new());
        }
        sections.last_mut().expect("never empty").push(line);
    }
    let mut out = String::with_capacity(answer.len());
    for section in sections {
        let renumber = section.iter().find_map(|line| {
            let (pt, codec) = line.trim_end().strip_prefix("a=rtpmap:")?.split_once(' ')?;
            let to = match codec.split('/').next()?.to_ascii_lowercase().as_str() {
                "opus" => "111",
                "h264" => "102",
                _ => return None,
            };
            Some((pt.to_string(), to))
        });
        for line in section {
            let Some((from, to)) = &renumber else {
                out.push_str(line);
                continue;
            };
            let body = line.trim_end();
            let renamed = match body.strip_prefix("m=") {
                Some(media) => {
                    let words: Vec<&str> = media
                        .split(' ')
                        .enumerate()
                        .map(|(i, word)| if i >= 3 && word == from { to } else { word })
                        .collect();
                    format!("m={}", words.join(" "))
                }
                None => {
                    let mut renamed = body.replace(&format!("apt={from}"), &format!("apt={to}"));
                    for prefix in ["a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"] {
                        if let Some(rest) = body.strip_prefix(prefix).and_then(|r| r.strip_prefix(from.as_str())) {
                            if rest.starts_with(' ') {
                                renamed = format!("{prefix}{to}{rest}");
                            }
                        }
                    }
                    renamed
                }
            };
            out.push_str(&renamed);
            out.push_str(&line[body.len()..]);
        }
    }
    out
}

/// The index of an answer's first accepted video m-line among its m-lines.
fn video_line(answer: &str) -> Option<usize> {
    answer
        .lines()
        .filter(|line| line.starts_with("m="))
        .position(|line| line.starts_with("m=video ") && !line.starts_with("m=video 0 "))
}

/// The accepted (port not 0) audio and video m-lines of an answer, with their mids.
pub(crate) fn accepted_mids(answer: &str) -> Vec<(str0m::media::MediaKind, str0m::media::Mid)> {
    let mut accepted = Vec::new();
    let mut current = None;
    for line in answer.lines() {
        if let Some(m) = line.strip_prefix("m=") {
            let mut words = m.split_whitespace();
            let kind = match words.next() {
                Some("audio") => Some(str0m::media::MediaKind::Audio),
                Some("video") => Some(str0m::media::MediaKind::Video),
                _ => None,
            };
            current = kind.filter(|_| words.next() != Some("0"));
        } else if let (Some(kind), Some(mid)) = (current, line.trim_end().strip_prefix("a=mid:")) {
            accepted.push((kind, str0m::media::Mid::from(mid)));
            current = None;
        }
    }
    accepted
}

fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixed_payload_types_quirk_renumbers_opus_and_h264_only() {
        let answer = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 109\r\na=rtpmap:109 opus/48000/2\r\n\
                      a=fmtp:109 minptime=10\r\nm=video 9 UDP/TLS/RTP/SAVPF 126 127\r\n\
                      a=rtpmap:126 H264/90000\r\na=rtcp-fb:126 nack\r\na=fmtp:126 packetization-mode=1\r\n\
                      a=rtpmap:127 rtx/90000\r\na=fmtp:127 apt=126\r\n";
        let fixed = fixed_payload_types(answer);
        assert_eq!(
            fixed,
            "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n\
             a=fmtp:111 minptime=10\r\nm=video 9 UDP/TLS/RTP/SAVPF 102 127\r\n\
             a=rtpmap:102 H264/90000\r\na=rtcp-fb:102 nack\r\na=fmtp:102 packetization-mode=1\r\n\
             a=rtpmap:127 rtx/90000\r\na=fmtp:127 apt=102\r\n"
        );
    }
}
