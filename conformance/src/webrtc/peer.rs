//! The tokio shell around one str0m [`Rtc`]: it owns the UDP socket and the
//! `Rtc`, feeds it datagrams and timeouts, drains `poll_output()` until
//! `Output::Timeout` after every input and every mutation, sends what it
//! transmits, and hands its events to a [`PeerApp`].
//!
//! The app (a player's decoder, a publisher's media sources) never touches the
//! `Rtc` or the socket: it gets events and the time and answers with
//! [`PeerAction`]s, which the shell applies one at a time, draining after each.
//!
//! The socket takes coalesced datagrams (UDP GRO) where the kernel offers
//! it: a sender's one `sendmsg` of several same-size datagrams (GSO) then
//! arrives as one read and one wakeup, not one each, and is split here. A
//! player on another host costs its server nothing to receive; on one host
//! the sender's kernel delivers to the player's socket, so this keeps a
//! bench of thousands of players on 127.0.0.1 from charging the server
//! for more of the receiving than it must.

use std::collections::VecDeque;
use std::io::IoSliceMut;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use quinn_udp::{RecvMeta, UdpSocketState};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::PayloadParams;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive, Transmit};
use str0m::{Candidate, Event, IceCreds, Input, Output, Rtc, RtcConfig, RtcError};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::{install_crypto, wait_for, WebRtcError};

/// At most this many errors are kept in [`PeerStatus::errors`].
const MAX_ERRORS: usize = 100;
/// The longest the task sleeps without checking in.
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// How long a closing peer may take to send its RTCP BYE and DTLS close_notify.
const CLOSE_GRACE: Duration = Duration::from_millis(500);

/// The connection state of a peer, part of every player and publisher report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PeerStatus {
    /// The local UDP address (our only ICE candidate).
    pub local_addr: Option<SocketAddr>,
    /// The last ICE connection state str0m reported (`"Checking"`, `"Connected"`, `"Disconnected"`).
    pub ice_state: Option<String>,
    /// ICE reached `Connected` or `Completed` at least once.
    pub ice_connected: bool,
    /// ICE and DTLS were both established (str0m's `Event::Connected`).
    pub connected: bool,
    /// Time from the offer to `connected`.
    pub connected_after: Option<Duration>,
    /// The last ICE state is `Disconnected` (the server stopped answering checks).
    pub disconnected: bool,
    /// The server closed DTLS (close_notify) or the SCTP association.
    pub remote_closed: bool,
    /// Why the peer's task ended, once it has.
    pub ended: Option<String>,
    /// UDP datagrams received.
    pub datagrams_in: u64,
    /// UDP datagrams sent.
    pub datagrams_out: u64,
    /// Datagrams str0m could not classify (neither STUN, DTLS nor RTP/RTCP).
    pub ignored_datagrams: u64,
    /// Errors str0m gave on input or on our writes, in order (at most 100).
    pub errors: Vec<String>,
    /// ICE restarts applied (see [`PeerAction::RestartIce`]).
    pub ice_restarts: u32,
    /// Connectivity checks sent with the credentials of the last ICE
    /// restart that the server answered with a success response.
    pub checks_answered_since_restart: u32,
}

impl PeerStatus {
    fn error(&mut self, error: String) {
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(error);
        }
    }
}

/// Something the app wants done to the `Rtc`.
#[derive(Debug)]
pub(crate) enum PeerAction {
    /// Write one frame of media.
    Write {
        mid: Mid,
        pt: Pt,
        wallclock: Instant,
        rtp_time: MediaTime,
        data: Vec<u8>,
    },
    /// Ask the sender for a keyframe; the result goes to `reply`.
    RequestKeyframe {
        mid: Mid,
        kind: KeyframeRequestKind,
        reply: Option<oneshot::Sender<Result<(), String>>>,
    },
    /// Go on with new ICE credentials, the peer's and the server's, after
    /// an ICE restart agreed by signalling: str0m sends its checks with
    /// them from now on (on the pair in use, every few seconds), and the
    /// answers to those checks are counted.
    RestartIce { local: IceCreds, remote: IceCreds },
    /// Accept an offer of the remote side (a renegotiation); the answer's
    /// SDP, or why not, goes to `reply`.
    AcceptOffer {
        sdp: String,
        reply: oneshot::Sender<Result<String, String>>,
    },
}

/// What a handle asks of the task.
#[derive(Debug)]
pub(crate) enum PeerCommand {
    /// Apply an action.
    Act(PeerAction),
    /// Close the session (RTCP BYE, DTLS close_notify) and end the task.
    Close,
}

/// The media side of a peer, driven by the shell.
pub(crate) trait PeerApp: Send + 'static {
    /// An event from str0m, at `now`.
    fn on_event(&mut self, now: Instant, event: Event, actions: &mut Vec<PeerAction>);

    /// When the app next wants [`PeerApp::on_wakeup`].
    fn next_wakeup(&self) -> Option<Instant> {
        None
    }

    /// Called at or after [`PeerApp::next_wakeup`].
    fn on_wakeup(&mut self, _now: Instant, _actions: &mut Vec<PeerAction>) {}

    /// Offered every datagram before str0m sees it: `true` keeps it from
    /// str0m. A counting player claims SRTP (its header is in the clear)
    /// and leaves STUN, DTLS and SRTCP to str0m, so ICE and DTLS stay up
    /// without decrypting media.
    fn claim(&mut self, _datagram: &[u8]) -> bool {
        false
    }
}

/// The state a handle shares with its task.
pub(crate) struct Shared<A> {
    pub status: PeerStatus,
    pub app: A,
}

/// An `Rtc` with its socket and its offer, waiting for the answer.
pub(crate) struct Prepared {
    rtc: Rtc,
    socket: Socket,
    gro: UdpSocketState,
    local: SocketAddr,
    started: Instant,
    offer: String,
    pending: Option<SdpPendingOffer>,
    mids: Vec<(MediaKind, Mid)>,
    backlog_events: Vec<Event>,
    backlog_transmits: Vec<Transmit>,
    via: Option<SocketAddr>,
    /// A relay at `via` to aim at the answer's candidate.
    aim: Option<super::relay::RelayAim>,
}

impl Prepared {
    /// Binds a socket on `bind`, builds the `Rtc` from `config` with that
    /// socket as its host candidate, and creates an offer with one m-line per
    /// entry of `media`. The clock of every report starts here.
    pub(crate) async fn new(
        config: RtcConfig,
        media: &[(MediaKind, Direction)],
        bind: IpAddr,
    ) -> Result<Prepared, WebRtcError> {
        install_crypto();
        if media.is_empty() {
            return Err(WebRtcError::Options("nothing to offer: neither audio nor video".into()));
        }
        let socket = UdpSocket::bind((bind, 0)).await?;
        let gro = UdpSocketState::new((&socket).into())?;
        let local = socket.local_addr()?;
        let started = Instant::now();
        let rtc = config.build(started);
        let candidate = Candidate::host(local, "udp")
            .map_err(|e| WebRtcError::Options(format!("{local} is not a usable host candidate: {e}")))?;
        let mut prepared = Prepared {
            rtc,
            socket: Socket::Woken(socket),
            gro,
            local,
            started,
            offer: String::new(),
            pending: None,
            mids: Vec::new(),
            backlog_events: Vec::new(),
            backlog_transmits: Vec::new(),
            via: None,
            aim: None,
        };
        prepared.rtc.add_local_candidate(candidate);
        prepared.drain()?;
        let mut api = prepared.rtc.sdp_api();
        let mids: Vec<(MediaKind, Mid)> = media
            .iter()
            .map(|&(kind, dir)| (kind, api.add_media(kind, dir, None, None, None)))
            .collect();
        let (offer, pending) = api
            .apply()
            .ok_or_else(|| WebRtcError::Options("str0m made no offer for the media asked".into()))?;
        prepared.drain()?;
        prepared.offer = offer.to_sdp_string();
        prepared.pending = Some(pending);
        prepared.mids = mids;
        Ok(prepared)
    }

    fn drain(&mut self) -> Result<(), WebRtcError> {
        loop {
            match self.rtc.poll_output()? {
                Output::Timeout(_) => return Ok(()),
                Output::Transmit(t) => self.backlog_transmits.push(t),
                Output::Event(e) => self.backlog_events.push(e),
            }
        }
    }

    /// Has the peer read its socket every `every`, instead of as datagrams
    /// arrive. A socket nobody waits on wakes no thread when a datagram
    /// comes: on loopback that wake-up is the sender's kernel's work,
    /// charged to the sender. Must be called within the runtime.
    pub(crate) fn read_every(&mut self, every: Duration) -> std::io::Result<()> {
        let socket = std::mem::replace(&mut self.socket, Socket::Closed);
        self.socket = socket.poll_every(every)?;
        Ok(())
    }

    /// The address of the socket the offer's candidate names.
    pub(crate) fn local(&self) -> SocketAddr {
        self.local
    }

    /// The SDP offer.
    pub(crate) fn offer(&self) -> &str {
        &self.offer
    }

    /// When the offer was made.
    pub(crate) fn started(&self) -> Instant {
        self.started
    }

    /// The mid of the first m-line of `kind`.
    pub(crate) fn mid(&self, kind: MediaKind) -> Option<Mid> {
        self.mids.iter().find(|(k, _)| *k == kind).map(|(_, m)| *m)
    }

    /// Sends to `via` instead of the candidates the answer gives (a relay in
    /// front of the server).
    pub(crate) fn send_via(&mut self, via: Option<SocketAddr>) {
        self.via = via;
    }

    /// Sends through `relay`, aimed at the answer's first UDP candidate
    /// when the answer comes.
    pub(crate) fn relay_through(&mut self, relay: &super::relay::UdpRelay) {
        self.via = Some(relay.addr());
        self.aim = Some(relay.aim_later());
    }

    /// Applies the server's answer.
    pub(crate) fn accept(&mut self, answer: &str) -> Result<(), WebRtcError> {
        let bad = |reason: String| WebRtcError::BadAnswer {
            reason,
            sdp: answer.to_string(),
        };
        let aimed = self.aimed(answer).map_err(bad)?;
        let parsed = SdpAnswer::from_sdp_string(&aimed).map_err(|e| bad(format!("str0m cannot parse it: {e}")))?;
        let pending = self
            .pending
            .take()
            .ok_or_else(|| bad("an answer was already applied".into()))?;
        self.rtc
            .sdp_api()
            .accept_answer(pending, parsed)
            .map_err(|e| bad(format!("str0m refuses it: {e}")))?;
        self.drain()
    }

    /// Drops the peer's own offer for the server's `offer` (a WHEP
    /// counter-offer) and returns the peer's answer to it. The mids become
    /// the counter-offer's.
    pub(crate) fn answer_counter_offer(&mut self, offer: &str) -> Result<String, WebRtcError> {
        let bad = |reason: String| WebRtcError::BadAnswer {
            reason: format!("(a counter-offer) {reason}"),
            sdp: offer.to_string(),
        };
        let aimed = self.aimed(offer).map_err(bad)?;
        let parsed = SdpOffer::from_sdp_string(&aimed).map_err(|e| bad(format!("str0m cannot parse it: {e}")))?;
        if self.pending.take().is_none() {
            return Err(bad("an answer was already applied".into()));
        }
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(parsed)
            .map_err(|e| bad(format!("str0m refuses it: {e}")))?
            .to_sdp_string();
        self.drain()?;
        self.mids = accepted_mids(&answer);
        Ok(answer)
    }

    /// The server's `sdp` as the peer applies it: with a relay to aim, the
    /// relay aimed at its first UDP candidate; sending via another address,
    /// its candidates redirected there.
    fn aimed(&self, sdp: &str) -> Result<String, String> {
        if let Some(aim) = &self.aim {
            let server = super::relay::first_udp_candidate(sdp)
                .ok_or_else(|| "no UDP candidate for the relay to send to".to_string())?;
            aim.at(server);
        }
        Ok(match self.via {
            Some(via) => super::relay::redirect_candidates(sdp, via),
            None => sdp.to_string(),
        })
    }

    /// The payload types the answer accepted for `mid` (empty when rejected).
    pub(crate) fn negotiated(&mut self, mid: Mid) -> Vec<PayloadParams> {
        let disabled = self.rtc.media(mid).is_none_or(|m| m.disabled());
        if disabled {
            return Vec::new();
        }
        self.rtc
            .writer(mid)
            .map(|w| w.payload_params().cloned().collect())
            .unwrap_or_default()
    }

    /// Starts the task that drives the peer with `app`.
    pub(crate) fn spawn<A: PeerApp>(self, app: A) -> PeerHandle<A> {
        let status = PeerStatus {
            local_addr: Some(self.local),
            ..PeerStatus::default()
        };
        let shared = Arc::new(Mutex::new(Shared { status, app }));
        let changed = Arc::new(watch::channel(0).0);
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let mut driver = Driver {
            rtc: self.rtc,
            gro: self.gro,
            socket: self.socket,
            local: self.local,
            started: self.started,
            shared: shared.clone(),
            changed: changed.clone(),
            actions: VecDeque::new(),
            transmits: self.backlog_transmits,
            restart_checks: None,
        };
        let now = Instant::now();
        for event in self.backlog_events {
            driver.on_event(now, event);
        }
        let task = tokio::spawn(driver.run(commands_rx));
        PeerHandle {
            shared,
            changed,
            commands,
            task,
        }
    }
}

/// The accepted audio and video m-lines of an SDP, with their mids.
fn accepted_mids(sdp: &str) -> Vec<(MediaKind, Mid)> {
    let Ok(summary) = super::sdp::SdpSummary::parse(sdp) else {
        return Vec::new();
    };
    summary
        .media
        .iter()
        .filter(|m| !m.rejected)
        .filter_map(|m| {
            let kind = match m.kind.as_str() {
                "audio" => MediaKind::Audio,
                "video" => MediaKind::Video,
                _ => return None,
            };
            Some((kind, Mid::from(m.mid.as_deref()?)))
        })
        .collect()
}

/// Has a running peer accept the remote side's offers.
#[derive(Clone)]
pub(crate) struct OfferAcceptor {
    commands: mpsc::UnboundedSender<PeerCommand>,
}

impl OfferAcceptor {
    /// The peer's answer to `sdp`, an offer of the remote side.
    pub(crate) async fn accept(&self, sdp: String) -> Result<String, WebRtcError> {
        let ended = || WebRtcError::PeerEnded {
            reason: "the peer ended before answering the offer".into(),
        };
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(PeerCommand::Act(PeerAction::AcceptOffer {
                sdp: sdp.clone(),
                reply,
            }))
            .map_err(|_| ended())?;
        answer
            .await
            .map_err(|_| ended())?
            .map_err(|reason| WebRtcError::BadAnswer { reason, sdp })
    }
}

/// The handle's side of a running peer. Dropping it stops the task.
pub(crate) struct PeerHandle<A> {
    shared: Arc<Mutex<Shared<A>>>,
    changed: Arc<watch::Sender<u64>>,
    commands: mpsc::UnboundedSender<PeerCommand>,
    task: JoinHandle<()>,
}

impl<A> PeerHandle<A> {
    /// Locks the shared state.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Shared<A>> {
        lock(&self.shared)
    }

    /// A receiver that wakes whenever the peer's state may have changed
    /// (a packet in or out, a timer, the end).
    pub(crate) fn changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Sends a command to the task.
    pub(crate) fn command(&self, command: PeerCommand) -> Result<(), WebRtcError> {
        self.commands.send(command).map_err(|_| self.ended_error())
    }

    fn ended_error(&self) -> WebRtcError {
        let reason = self
            .lock()
            .status
            .ended
            .clone()
            .unwrap_or_else(|| "the task is gone".into());
        WebRtcError::PeerEnded { reason }
    }

    /// What accepts the remote side's offers (a renegotiation) for this
    /// peer, from another task.
    pub(crate) fn offer_acceptor(&self) -> OfferAcceptor {
        OfferAcceptor {
            commands: self.commands.clone(),
        }
    }

    /// Restarts ICE over WHIP or WHEP (RFC 9725 and WHEP draft 03, "ICE
    /// restarts"): a `PATCH` of the session at `location` with new
    /// credentials of the peer's (a fragment of `offer`'s m-line, mid and
    /// candidate) and `If-Match: *`. On a `200` whose fragment holds the
    /// server's new `ice-ufrag` and `ice-pwd`, the peer goes on with both
    /// (see [`PeerStatus::checks_answered_since_restart`]). Returns the
    /// server's answer, whatever its status.
    pub(crate) async fn restart_ice(&self, location: &str, offer: &str) -> Result<super::http::Exchange, WebRtcError> {
        use super::http;
        let local_addr = self
            .lock()
            .status
            .local_addr
            .ok_or_else(|| WebRtcError::Options("the peer has no local address".into()))?;
        let fragment = http::trickle_fragment(offer, local_addr, true)
            .ok_or_else(|| WebRtcError::Options("the offer has no ICE credentials or m-line".into()))?;
        let ours = http::fragment_credentials(&fragment)
            .ok_or_else(|| WebRtcError::Options("the restart fragment has no credentials".into()))?;
        let answer = http::exchange(
            http::Method::Patch,
            location,
            &[("If-Match".to_string(), "*".to_string())],
            Some((http::TRICKLE_TYPE, &fragment)),
            None,
        )
        .await?;
        if answer.status == 200 {
            if let Some(theirs) = http::fragment_credentials(&answer.body) {
                self.command(PeerCommand::Act(PeerAction::RestartIce {
                    local: ours,
                    remote: theirs,
                }))?;
            }
        }
        Ok(answer)
    }

    /// Asks the sender of `mid` for a keyframe and waits for str0m's verdict.
    pub(crate) async fn request_keyframe(&self, mid: Mid, kind: KeyframeRequestKind) -> Result<(), WebRtcError> {
        let (reply, answer) = oneshot::channel();
        self.command(PeerCommand::Act(PeerAction::RequestKeyframe {
            mid,
            kind,
            reply: Some(reply),
        }))?;
        match answer.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(WebRtcError::Options(format!("keyframe request refused by str0m: {e}"))),
            Err(_) => Err(self.ended_error()),
        }
    }

    /// Waits until `check` gives a value (see [`wait_for`]).
    pub(crate) async fn wait<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&Shared<A>) -> Option<T>,
        describe: impl Fn(&Shared<A>) -> String,
    ) -> Result<T, WebRtcError> {
        wait_for(
            &self.changed,
            timeout,
            || {
                let shared = self.lock();
                if let Some(value) = check(&shared) {
                    return Ok(Some(value));
                }
                match &shared.status.ended {
                    Some(reason) => Err(WebRtcError::PeerEnded {
                        reason: format!("{reason} (while waiting for {what}; last seen: {})", describe(&shared)),
                    }),
                    None => Ok(None),
                }
            },
            || (what.to_string(), describe(&self.lock())),
        )
        .await
    }

    /// Waits until `check` holds for the report `report` makes of the
    /// shared state, and returns that report; errors show the last one.
    pub(crate) async fn wait_report<R: std::fmt::Debug>(
        &self,
        what: &str,
        timeout: Duration,
        report: impl Fn(&Shared<A>) -> R,
        mut check: impl FnMut(&R) -> bool,
    ) -> Result<R, WebRtcError> {
        self.wait(
            what,
            timeout,
            |shared| {
                let made = report(shared);
                check(&made).then_some(made)
            },
            |shared| format!("{:?}", report(shared)),
        )
        .await
    }

    /// Closes the session and waits (briefly) for the task to end.
    pub(crate) async fn close(&self) {
        if self.command(PeerCommand::Close).is_ok() {
            let _ = self
                .wait(
                    "the peer to close",
                    CLOSE_GRACE * 2,
                    |s| s.status.ended.clone(),
                    |_| String::new(),
                )
                .await;
        }
    }
}

impl<A> Drop for PeerHandle<A> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<A>(shared: &Mutex<Shared<A>>) -> MutexGuard<'_, Shared<A>> {
    // A panic while holding the lock is a bug in this module; the data is still usable.
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// A peer's socket: read as datagrams arrive, or at an interval.
enum Socket {
    /// Registered with the runtime: each datagram wakes the peer's task.
    Woken(UdpSocket),
    /// Not registered: the task reads what came at each tick, and a
    /// datagram wakes nobody.
    Polled(std::net::UdpSocket, tokio::time::Interval),
    /// Lost in a failed change from one to the other.
    Closed,
}

impl Socket {
    /// Reads from now on at `every` (within the runtime).
    fn poll_every(self, every: Duration) -> std::io::Result<Socket> {
        let socket = match self {
            Socket::Woken(socket) => socket.into_std()?,
            Socket::Polled(socket, _) => socket,
            Socket::Closed => return Err(closed()),
        };
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ok(Socket::Polled(socket, ticks))
    }

    /// Reads what the socket has: one datagram, or (GRO) several of
    /// `stride` bytes but the last, from one source.
    async fn receive(&mut self, state: &UdpSocketState, buf: &mut [u8]) -> std::io::Result<RecvMeta> {
        let mut meta = [RecvMeta::default()];
        loop {
            let read = match self {
                Socket::Woken(socket) => {
                    socket.readable().await?;
                    socket.try_io(Interest::READABLE, || {
                        state.recv((&*socket).into(), &mut [IoSliceMut::new(&mut *buf)], &mut meta)
                    })
                }
                Socket::Polled(socket, ticks) => {
                    match state.recv((&*socket).into(), &mut [IoSliceMut::new(&mut *buf)], &mut meta) {
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            ticks.tick().await;
                            continue;
                        }
                        read => read,
                    }
                }
                Socket::Closed => Err(closed()),
            };
            match read {
                Ok(_) => return Ok(meta[0]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends `contents` to `destination`; a polled socket does not wait
    /// for room (a full buffer fails the send).
    async fn send_to(&self, contents: &[u8], destination: SocketAddr) -> std::io::Result<usize> {
        match self {
            Socket::Woken(socket) => socket.send_to(contents, destination).await,
            Socket::Polled(socket, _) => socket.send_to(contents, destination),
            Socket::Closed => Err(closed()),
        }
    }
}

fn closed() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        "the socket was lost changing how it is read",
    )
}

struct Driver<A> {
    rtc: Rtc,
    socket: Socket,
    /// The socket's offload state (GRO).
    gro: UdpSocketState,
    local: SocketAddr,
    started: Instant,
    shared: Arc<Mutex<Shared<A>>>,
    changed: Arc<watch::Sender<u64>>,
    actions: VecDeque<PeerAction>,
    transmits: Vec<Transmit>,
    /// The transaction ids of the checks sent since the last ICE restart.
    restart_checks: Option<Vec<[u8; 12]>>,
}

/// At most this many checks since a restart are remembered.
const MAX_RESTART_CHECKS: usize = 64;

/// A STUN message's type and transaction id (RFC 8489, section 5).
fn stun_transaction(datagram: &[u8]) -> Option<(u16, [u8; 12])> {
    if datagram.len() < 20 || datagram[4..8] != [0x21, 0x12, 0xA4, 0x42] {
        return None;
    }
    let kind = u16::from_be_bytes([datagram[0], datagram[1]]);
    Some((kind, datagram[8..20].try_into().ok()?))
}

/// STUN Binding request and success response.
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;

impl<A: PeerApp> Driver<A> {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<PeerCommand>) {
        // Large enough for any UDP datagram, so nothing reaches str0m truncated.
        let mut buf = vec![0u8; 65_536];

        let mut closing_until: Option<Instant> = None;
        let sleep = tokio::time::sleep_until(Instant::now().into());
        tokio::pin!(sleep);
        // A claimed datagram changes nothing in the `Rtc`: the next turn
        // skips draining it and keeps the timer it had.
        let mut claimed = false;
        let reason = loop {
            if !std::mem::take(&mut claimed) {
                let rtc_timeout = match self.settle() {
                    Ok(t) => t,
                    Err(e) => break format!("str0m failed: {e}"),
                };
                self.flush().await;
                self.changed.send_modify(|v| *v = v.wrapping_add(1));
                if !self.rtc.is_alive() {
                    break if closing_until.is_some() {
                        "closed by us"
                    } else {
                        "str0m closed the session"
                    }
                    .to_string();
                }
                let now = Instant::now();
                if closing_until.is_some_and(|until| now >= until) {
                    break "closed by us (close output not fully drained)".to_string();
                }
                // str0m says "never" with an instant 100 years ahead; wake at least every second.
                let mut deadline = rtc_timeout.min(now + MAX_SLEEP);
                if let Some(wakeup) = lock(&self.shared).app.next_wakeup() {
                    deadline = deadline.min(wakeup);
                }
                if let Some(until) = closing_until {
                    deadline = deadline.min(until);
                }
                sleep.as_mut().reset(deadline.into());
            }
            tokio::select! {
                received = self.socket.receive(&self.gro, &mut buf) => match received {
                    Ok(meta) => {
                        // Every datagram of the read claimed, or str0m has work.
                        claimed = true;
                        for datagram in buf[..meta.len].chunks(meta.stride.max(1)) {
                            claimed &= self.receive(meta.addr, datagram);
                        }
                    }
                    // ICMP errors from earlier sends surface here on some systems; they are not fatal.
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset) => {}
                    Err(e) => break format!("UDP receive failed: {e}"),
                },
                command = commands.recv() => match command {
                    Some(PeerCommand::Act(action)) => self.actions.push_back(action),
                    Some(PeerCommand::Close) => {
                        if closing_until.is_none() {
                            if let Err(e) = self.rtc.close() {
                                lock(&self.shared).status.error(format!("close: {e}"));
                            }
                            closing_until = Some(Instant::now() + CLOSE_GRACE);
                        }
                    }
                    None => break "the handle was dropped".to_string(),
                },
                _ = &mut sleep => {
                    let now = Instant::now();
                    if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
                        break format!("str0m failed on a timeout: {e}");
                    }
                    let mut shared = lock(&self.shared);
                    if shared.app.next_wakeup().is_some_and(|w| w <= now) {
                        let mut actions = Vec::new();
                        shared.app.on_wakeup(now, &mut actions);
                        self.actions.extend(actions);
                    }
                }
            }
        };
        self.flush().await;
        lock(&self.shared).status.ended = Some(reason);
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Drains the `Rtc`, then applies queued actions one at a time, draining after each.
    fn settle(&mut self) -> Result<Instant, RtcError> {
        let mut timeout = self.drain()?;
        while let Some(action) = self.actions.pop_front() {
            self.apply(action);
            timeout = self.drain()?;
        }
        Ok(timeout)
    }

    fn drain(&mut self) -> Result<Instant, RtcError> {
        loop {
            match self.rtc.poll_output()? {
                Output::Timeout(t) => return Ok(t),
                Output::Transmit(t) => self.transmits.push(t),
                Output::Event(e) => self.on_event(Instant::now(), e),
            }
        }
    }

    fn on_event(&mut self, now: Instant, event: Event) {
        let mut shared = lock(&self.shared);
        let status = &mut shared.status;
        match &event {
            Event::IceConnectionStateChange(state) => {
                status.ice_state = Some(format!("{state:?}"));
                status.ice_connected |= state.is_connected();
                status.disconnected = state.is_disconnected();
            }
            Event::Connected => {
                status.connected = true;
                status
                    .connected_after
                    .get_or_insert(now.saturating_duration_since(self.started));
            }
            Event::Closed => status.remote_closed = true,
            _ => {}
        }
        let mut actions = Vec::new();
        shared.app.on_event(now, event, &mut actions);
        self.actions.extend(actions);
    }

    fn apply(&mut self, action: PeerAction) {
        let result = match action {
            PeerAction::Write {
                mid,
                pt,
                wallclock,
                rtp_time,
                data,
            } => match self.rtc.writer(mid) {
                Some(writer) => writer
                    .write(pt, wallclock, rtp_time, data)
                    .map_err(|e| format!("write on mid {mid}: {e}")),
                None => Err(format!("no writer for mid {mid}")),
            },
            PeerAction::RequestKeyframe { mid, kind, reply } => {
                let result = match self.rtc.writer(mid) {
                    Some(mut writer) => writer.request_keyframe(None, kind).map_err(|e| e.to_string()),
                    None => Err(format!("no media for mid {mid}")),
                };
                match reply {
                    Some(reply) => {
                        // The requester may have given up waiting; that is fine.
                        let _ = reply.send(result);
                        Ok(())
                    }
                    None => result,
                }
            }
            PeerAction::RestartIce { local, remote } => {
                let mut api = self.rtc.direct_api();
                api.set_local_ice_credentials(local);
                api.set_remote_ice_credentials(remote);
                self.restart_checks = Some(Vec::new());
                let mut shared = lock(&self.shared);
                shared.status.ice_restarts += 1;
                shared.status.checks_answered_since_restart = 0;
                Ok(())
            }
            PeerAction::AcceptOffer { sdp, reply } => {
                let answer = str0m::change::SdpOffer::from_sdp_string(&sdp)
                    .map_err(|e| format!("the server's offer: {e}"))
                    .and_then(|offer| {
                        self.rtc
                            .sdp_api()
                            .accept_offer(offer)
                            .map_err(|e| format!("the server's offer refused: {e}"))
                    })
                    .map(|answer| answer.to_sdp_string());
                if let Err(e) = &answer {
                    lock(&self.shared).status.error(e.clone());
                }
                let _ = reply.send(answer);
                Ok(())
            }
        };
        if let Err(e) = result {
            lock(&self.shared).status.error(e);
        }
    }

    /// Hands a datagram to the app or to str0m; `true` when the app claimed it.
    fn receive(&mut self, source: SocketAddr, data: &[u8]) -> bool {
        let mut shared = lock(&self.shared);
        shared.status.datagrams_in += 1;
        if let (Some(checks), Some((BINDING_SUCCESS, id))) = (&self.restart_checks, stun_transaction(data)) {
            if checks.contains(&id) {
                shared.status.checks_answered_since_restart += 1;
            }
        }
        if shared.app.claim(data) {
            return true;
        }
        match Receive::new(Protocol::Udp, source, self.local, data) {
            Ok(receive) => {
                drop(shared);
                if let Err(e) = self.rtc.handle_input(Input::Receive(Instant::now(), receive)) {
                    lock(&self.shared)
                        .status
                        .error(format!("str0m refused a datagram from {source}: {e}"));
                }
            }
            Err(_) => shared.status.ignored_datagrams += 1,
        }
        false
    }

    async fn flush(&mut self) {
        let mut sent = 0;
        let mut failures = Vec::new();
        for t in self.transmits.drain(..) {
            if let (Some(checks), Some((BINDING_REQUEST, id))) =
                (&mut self.restart_checks, stun_transaction(&t.contents))
            {
                if checks.len() < MAX_RESTART_CHECKS {
                    checks.push(id);
                }
            }
            match self.socket.send_to(&t.contents, t.destination).await {
                Ok(_) => sent += 1,
                Err(e) => failures.push(format!("UDP send to {} failed: {e}", t.destination)),
            }
        }
        let mut shared = lock(&self.shared);
        shared.status.datagrams_out += sent;
        for f in failures {
            shared.status.error(f);
        }
    }
}

#[cfg(test)]
mod tests {
    use quinn_udp::Transmit;

    use super::*;

    /// A sender's one GSO send of three datagrams reaches the peer as the
    /// same three datagrams, in one read where the kernel coalesces them.
    #[tokio::test]
    async fn coalesced_datagrams_are_read_whole_and_split() {
        coalesced_reads(None).await;
    }

    /// The same, read at a tick from a socket the runtime does not watch
    /// (the bench's light players).
    #[tokio::test]
    async fn a_socket_read_at_a_tick_gets_the_same_datagrams() {
        coalesced_reads(Some(Duration::from_millis(5))).await;
    }

    async fn coalesced_reads(every: Option<Duration>) {
        let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let state = UdpSocketState::new((&peer).into()).unwrap();
        let destination = peer.local_addr().unwrap();
        let mut peer = Socket::Woken(peer);
        if let Some(every) = every {
            peer = peer.poll_every(every).unwrap();
        }
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let sender_state = UdpSocketState::new((&sender).into()).unwrap();
        let contents: Vec<u8> = (0..3u8).flat_map(|i| [i; 100]).chain([9; 40]).collect();
        let segments = sender_state.max_gso_segments() > 1;
        let transmit = Transmit {
            destination,
            ecn: None,
            contents: &contents,
            segment_size: segments.then_some(100),
            src_ip: None,
        };
        if segments {
            sender_state.try_send((&sender).into(), &transmit).unwrap();
        } else {
            for datagram in contents.chunks(100) {
                sender.send_to(datagram, transmit.destination).unwrap();
            }
        }
        let mut buf = vec![0u8; 65_536];
        let mut datagrams = Vec::new();
        let mut reads = 0;
        while datagrams.len() < 4 {
            let meta = tokio::time::timeout(Duration::from_secs(2), peer.receive(&state, &mut buf))
                .await
                .expect("the datagrams arrive")
                .unwrap();
            reads += 1;
            assert_eq!(meta.addr, sender.local_addr().unwrap());
            datagrams.extend(buf[..meta.len].chunks(meta.stride.max(1)).map(<[u8]>::to_vec));
        }
        assert_eq!(datagrams, [vec![0; 100], vec![1; 100], vec![2; 100], vec![9; 40]]);
        if segments && state.gro_segments() > 1 {
            assert_eq!(reads, 1, "the kernel offers GRO, yet the datagrams came one read each");
        }
    }
}
