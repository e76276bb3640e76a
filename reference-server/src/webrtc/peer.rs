//! One str0m `Rtc` and its role, under a lock shared by the peer's task and,
//! for a player, the threads that deliver its frames.
//!
//! The task takes datagrams, timers and signalling in. A player's frames do
//! not wake it: its hub subscription is driven by its stream's fan-out
//! ([`crate::hub::Subscription::drive`]) and its transcoders ring it
//! ([`crate::transcode::Doorbell`]), and the thread that sent the frame
//! hands it to the player, lets str0m packetize, protect and transmit it,
//! and sends the datagrams, all under the lock. That thread wakes the task
//! only when str0m's next timeout is now earlier than the one the task
//! sleeps until, or the peer died. After every input the `Rtc` is drained
//! until it asks for a timeout, as str0m requires.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use str0m::net::{Protocol, Receive};
use str0m::{Event, IceConnectionState, IceCreds, Input, Output, Rtc};
use tokio::sync::{mpsc, watch, Notify};
use tokio_util::sync::CancellationToken;

use super::dtls_keys;
use super::play::{Player, PlayerInput};
use super::publish::Ingest;
use super::send;
use super::srtp::SessionKeys;
use super::udp::{Batch, Datagram, Port};
use super::SessionStatus;
use crate::hub::{Delivery, Made, Sink, Subscription, Take};
use crate::transcode::Doorbell;

/// What the peer does with its media.
pub enum Role {
    /// Sends a hub stream to the peer.
    Play(Box<Player>),
    /// Takes the peer's media into the hub.
    Publish(Box<Ingest>),
}

/// What signalling asks of a session's task: one channel, polled at every
/// turn of its loop, however rarely it carries anything.
pub enum Signal {
    /// An ICE restart to apply; boxed, since a channel holds room for 32
    /// messages from its start.
    Restart(Box<Restart>),
    /// A player's peer answered the offer that added video.
    Answer(String),
    /// A player stops (true) or resumes (false) sending audio.
    MuteAudio(bool),
    /// A player switches to this video track (`None`: the one it started with).
    VideoTrack(Option<u8>),
}

/// An ICE restart for the peer's task to apply (see
/// [`super::WebRtc::restart_ice`]).
pub struct Restart {
    /// The session's new credentials.
    pub local: IceCreds,
    /// The peer's new credentials.
    pub remote: IceCreds,
    /// Told once the `Rtc` has both.
    pub done: tokio::sync::oneshot::Sender<()>,
}

/// A new peer: its `Rtc`, where it sends, and what its task takes in.
pub struct Peer {
    pub rtc: Rtc,
    pub port: Arc<Port>,
    /// What the `Rtc` transmits, sent when it has been drained.
    pub batch: Batch,
    pub local: SocketAddr,
    pub datagrams: mpsc::Receiver<Datagram>,
    /// ICE restarts and answers from signalling.
    pub signals: mpsc::UnboundedReceiver<Signal>,
    pub status: watch::Sender<SessionStatus>,
    pub cancel: CancellationToken,
    pub connect_timeout: Duration,
    /// The quirk `sender_reports_withheld`: RTCP led by a sender report is
    /// not sent.
    pub withhold_sender_reports: bool,
    /// The quirk `retransmissions_withheld`: RTX packets are not sent.
    pub withhold_retransmissions: bool,
}

/// What the task and the threads delivering a player's frames share.
/// Laid out as written: `ahead` comes first, in the line the reference
/// counts share, which the transcoders read for every player before
/// ringing any (see [`Doorbell::prefetch`]).
#[repr(C)]
struct Shared {
    /// Where the state and the player lie, for [`Doorbell::prefetch`]
    /// (neither moves: the state is inside this, the player boxed); 0
    /// until known, or for no player. Stored once, as the task starts.
    ahead: [AtomicUsize; 2],
    state: Mutex<State>,
    /// Wakes the task: its timer is too late, a subscription waits to be
    /// driven, or the peer died.
    kick: Notify,
    /// The session's span, entered by the threads delivering frames.
    span: tracing::Span,
}

/// The peer's state, under [`Shared`]'s lock.
struct State {
    rtc: Rtc,
    role: Role,
    port: Arc<Port>,
    batch: Batch,
    status: watch::Sender<SessionStatus>,
    withhold_sender_reports: bool,
    withhold_retransmissions: bool,
    /// ICE and DTLS came up.
    connected: bool,
    /// When the task's timer goes off.
    armed: Option<Instant>,
    /// The SRTP keys of the session, from its DTLS handshake until a player
    /// takes them as it connects.
    keys: Option<SessionKeys>,
    /// Where the own send path sends: where str0m last sent DTLS, RTP or
    /// RTCP, which is the pair its ICE nominated (sent or not, see
    /// [`State::poll`]).
    remote: Option<SocketAddr>,
}

impl State {
    /// Asks for the lines a delivery reads of the state at `at` (see
    /// [`crate::prefetch`]).
    fn prefetch_at(at: usize) {
        use std::mem::offset_of;
        crate::prefetch::fields(
            at,
            [
                offset_of!(State, role),
                offset_of!(State, batch),
                offset_of!(State, remote),
                offset_of!(State, port),
                offset_of!(State, status),
                offset_of!(State, connected),
            ],
        );
    }

    fn set_status(&self, status: SessionStatus) {
        self.status.send_if_modified(|current| {
            if *current == status || current.is_final() {
                return false;
            }
            tracing::info!(status = status.name(), reason = ?status_reason(&status), "session status");
            *current = status;
            true
        });
    }

    /// Feeds an input; on a str0m error the peer is disconnected.
    fn input(&mut self, input: Input) {
        let result = self.rtc.handle_input(input);
        self.take_keys();
        if let Err(error) = result {
            tracing::warn!(%error, "peer input failed: disconnecting");
            self.set_status(SessionStatus::Failed(format!("WebRTC error: {error}")));
            self.rtc.disconnect();
        }
    }

    /// Keeps the SRTP keys the `Rtc` call just made exported, if any
    /// (see [`dtls_keys`]).
    fn take_keys(&mut self) {
        if let Some(keys) = dtls_keys::take() {
            self.keys = keys;
        }
    }

    /// A datagram from the peer: RTCP is read by the own send path first
    /// (it answers NACKs), then everything goes to str0m. (Where the peer
    /// sends from is not followed: a replayed packet would authenticate
    /// too. str0m's ICE says where to send.)
    fn receive(&mut self, data: &[u8], receive: Receive<'_>, now: Instant) {
        if let Role::Play(player) = &mut self.role {
            if player.own().is_some() && send::is_rtcp(data) {
                player.feedback(data, now);
                self.send_own();
                self.batch.flush(&self.port);
            }
        }
        self.input(Input::Receive(now, receive));
    }

    /// Sends what the own send path made (nowhere before the peer's
    /// address is known, which DTLS makes it before any media).
    fn send_own(&mut self) {
        let Role::Play(player) = &mut self.role else {
            return;
        };
        if let Some(own) = player.own() {
            let (batch, port) = (&mut self.batch, &self.port);
            match self.remote {
                Some(remote) => own.drain(|datagram| batch.push(port, remote, datagram)),
                None => own.drain(|_| tracing::debug!("no address to send to yet: datagram dropped")),
            }
        }
    }

    /// Hands the player what `give` gives it at `now`, lets str0m send what
    /// it wrote, and says whether the task must look again: the peer died,
    /// str0m wants its time sooner than the task's timer goes off, or a
    /// subscription waits to be driven.
    fn play(&mut self, give: impl FnOnce(&mut Player, &mut Rtc, Instant) -> Option<SessionStatus>) -> bool {
        let Role::Play(player) = &mut self.role else {
            return false;
        };
        let now = Instant::now();
        let status = give(player, &mut self.rtc, now);
        let str0m_sends = player.str0m_sends();
        if let Some(status) = status {
            self.set_status(status);
        }
        self.send_own();
        if !str0m_sends {
            // str0m sent none of it: its time moves on at its own timer.
            self.batch.flush(&self.port);
            return matches!(&self.role, Role::Play(player) if player.undriven()) || !self.rtc.is_alive();
        }
        // str0m sends what was written once its time moves on: now, not at
        // the next timeout.
        self.input(Input::Timeout(now));
        let waiting = matches!(&self.role, Role::Play(player) if player.undriven());
        match self.drain() {
            Some(next) => waiting || self.armed.is_none_or(|armed| next < armed),
            None => true,
        }
    }

    /// Polls output until str0m asks for a timeout, then sends what it
    /// transmitted; `None` once the peer is dead.
    fn drain(&mut self) -> Option<Instant> {
        let next = self.poll();
        // What a player wrote on str0m's events (a keyframe request
        // answered from the cache).
        self.send_own();
        self.batch.flush(&self.port);
        next
    }

    fn poll(&mut self) -> Option<Instant> {
        loop {
            if !self.rtc.is_alive() {
                return None;
            }
            let output = self.rtc.poll_output();
            self.take_keys();
            let output = match output {
                Ok(output) => output,
                Err(error) => {
                    tracing::warn!(%error, "peer failed");
                    self.set_status(SessionStatus::Failed(format!("WebRTC error: {error}")));
                    self.rtc.disconnect();
                    return None;
                }
            };
            match output {
                Output::Timeout(at) => return Some(at),
                Output::Transmit(transmit) => {
                    // DTLS, RTP and RTCP go to the pair ICE nominated (STUN
                    // answers go wherever checks come from).
                    if transmit.contents.first().is_some_and(|&b| b >= 20) {
                        self.remote = Some(transmit.destination);
                    }
                    let contents = &transmit.contents;
                    let withheld = (self.withhold_sender_reports && leads_with_sender_report(contents))
                        || (self.withhold_retransmissions && is_retransmission(&self.rtc, contents))
                        // Beside the own send path, str0m's RTCP (its reports
                        // for the same SSRCs) and its RTP on them are not
                        // sent: no SRTP nonce is used twice.
                        || self.own_sends(contents);
                    if !withheld {
                        self.batch.push(&self.port, transmit.destination, contents);
                    }
                }
                Output::Event(event) => {
                    if let Some(status) = self.event(event) {
                        self.set_status(status);
                    }
                }
            }
        }
    }

    /// Whether the own send path sends what `datagram` (from str0m) is:
    /// any RTCP, RTP on its SSRCs.
    fn own_sends(&mut self, datagram: &[u8]) -> bool {
        let Role::Play(player) = &mut self.role else {
            return false;
        };
        let Some(own) = player.own() else {
            return false;
        };
        send::is_rtcp(datagram) || send::ssrc_of(datagram).is_some_and(|ssrc| own.owns(ssrc))
    }

    fn event(&mut self, event: Event) -> Option<SessionStatus> {
        match event {
            Event::Connected => {
                self.connected = true;
                tracing::info!("peer connected (ICE and DTLS)");
                match &mut self.role {
                    Role::Play(player) => player.connected(&mut self.rtc, self.keys.take()),
                    Role::Publish(_) => Some(SessionStatus::Publishing),
                }
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                tracing::info!("peer went away (ICE disconnected)");
                self.rtc.disconnect();
                Some(SessionStatus::Stopped)
            }
            Event::MediaAdded(added) => {
                match &mut self.role {
                    Role::Play(player) => player.media_added(added.mid, added.kind),
                    Role::Publish(ingest) => ingest.media_added(added.mid, added.kind),
                }
                None
            }
            Event::MediaData(data) => {
                if let Role::Publish(ingest) = &mut self.role {
                    if let Err(taken_over) = ingest.media(&mut self.rtc, data, Instant::now()) {
                        tracing::info!(%taken_over, "publisher session ended");
                        self.rtc.disconnect();
                        return Some(SessionStatus::Stopped);
                    }
                }
                None
            }
            Event::KeyframeRequest(request) => {
                if let Role::Play(player) = &mut self.role {
                    player.keyframe_request(&mut self.rtc, request.mid, Instant::now());
                }
                None
            }
            _ => None,
        }
    }
}

fn status_reason(status: &SessionStatus) -> Option<&str> {
    match status {
        SessionStatus::Failed(reason) => Some(reason),
        _ => None,
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Delivers to the player under the lock (see [`State::play`]), and
    /// wakes the task if it must look again; false once the peer is dead.
    fn deliver(&self, give: impl FnOnce(&mut Player, &mut Rtc, Instant) -> Option<SessionStatus>) -> bool {
        let _span = self.span.enter();
        let mut state = self.lock();
        if state.play(give) {
            self.kick.notify_one();
        }
        state.rtc.is_alive()
    }
}

/// A player's place in its stream's fan-out: each frame is delivered by
/// the thread that pushed it. It holds the peer weakly: a session that
/// ended takes nothing more.
struct PlayerSink(Weak<Shared>);

impl Sink for PlayerSink {
    fn take(&mut self, delivery: Delivery, _: &mut Made, subscription: &mut Subscription) -> Take {
        let Some(shared) = self.0.upgrade() else {
            return Take::TakenLast;
        };
        let input = match delivery {
            Delivery::Frame(frame) => PlayerInput::Frame(frame),
            Delivery::Publication(live) => PlayerInput::Publication(live),
            // RTCP has nothing to say it with; media may resume.
            Delivery::Dry => return Take::Taken,
        };
        let delivered = shared.deliver(|player, rtc, now| {
            let status = player.handle(rtc, input, now);
            player.adjust(subscription);
            status
        });
        match delivered {
            true => Take::Taken,
            false => Take::TakenLast,
        }
    }

    /// The session ended: nothing more to play.
    fn give_back(self: Box<Self>, _: Subscription, _: Option<Delivery>) {}
}

impl Doorbell for Shared {
    /// A transcoder the player plays sent a frame: the player takes what
    /// its transcoders have for it.
    fn ring(&self) {
        self.deliver(|player, rtc, now| player.take_transcoded(rtc, now));
    }

    /// Asks for the lines `ring` reads first: of this, of the state and
    /// of the player.
    fn prefetch(&self) {
        use std::mem::offset_of;
        let at = self as *const Shared as usize;
        crate::prefetch::line(at, offset_of!(Shared, state));
        crate::prefetch::line(at, offset_of!(Shared, span));
        let [state, player] = self.ahead.each_ref().map(|at| at.load(Ordering::Relaxed));
        if state != 0 {
            State::prefetch_at(state);
        }
        if player != 0 {
            Player::prefetch_at(player);
        }
    }
}

/// What the task awaits.
struct Inbox {
    datagrams: mpsc::Receiver<Datagram>,
    signals: mpsc::UnboundedReceiver<Signal>,
    cancel: CancellationToken,
    connect_timeout: Duration,
    local: SocketAddr,
}

/// Runs the peer until it stops, fails, or the server shuts down. Must be
/// called within a tokio runtime, in the session's span.
pub async fn run(peer: Box<Peer>, mut role: Role) {
    let Peer {
        rtc,
        port,
        batch,
        local,
        datagrams,
        signals,
        status,
        cancel,
        connect_timeout,
        withhold_sender_reports,
        withhold_retransmissions,
    } = *peer;
    let keyframes = match &role {
        Role::Publish(ingest) => Some(ingest.keyframe_requests()),
        Role::Play(_) => None,
    };
    let shared = Arc::new_cyclic(|me: &Weak<Shared>| {
        if let Role::Play(player) = &mut role {
            let doorbell: Weak<dyn Doorbell> = me.clone();
            player.ring_with(doorbell);
        }
        Shared {
            state: Mutex::new(State {
                rtc,
                role,
                port,
                batch,
                status,
                withhold_sender_reports,
                withhold_retransmissions,
                connected: false,
                armed: None,
                keys: None,
                remote: None,
            }),
            kick: Notify::new(),
            span: tracing::Span::current(),
            ahead: Default::default(),
        }
    });
    {
        let state = shared.lock();
        shared.ahead[0].store(&*state as *const State as usize, Ordering::Relaxed);
        if let Role::Play(player) = &state.role {
            shared.ahead[1].store(&**player as *const Player as usize, Ordering::Relaxed);
        }
    }
    let inbox = Inbox {
        datagrams,
        signals,
        cancel,
        connect_timeout,
        local,
    };
    serve(&shared, inbox, keyframes).await;
    // The fan-out lets go of the session (outside the lock its sink takes).
    let seat = match &shared.lock().role {
        Role::Play(player) => Some(player.seat()),
        Role::Publish(_) => None,
    };
    if let Some(seat) = seat {
        seat.recall();
    }
    let mut state = shared.lock();
    state.rtc.disconnect();
    // Let the DTLS close alert and the like go out.
    let _ = state.drain();
    state.set_status(SessionStatus::Stopped);
    tracing::info!("session ended");
}

/// The task's loop.
async fn serve(shared: &Arc<Shared>, mut inbox: Inbox, keyframes: Option<crate::hub::KeyframeRequests>) {
    // Made once, not at each turn of the loop: a timer or waiter made anew
    // is registered and unregistered each time.
    let connect_deadline = tokio::time::sleep(inbox.connect_timeout);
    let cancelled = inbox.cancel.clone().cancelled_owned();
    let sleep = tokio::time::sleep(Duration::from_secs(3600));
    tokio::pin!(connect_deadline, cancelled, sleep);
    loop {
        let (timeout, connected, undriven) = {
            let mut state = shared.lock();
            let Some(timeout) = state.drain() else { return };
            let timeout = match &state.role {
                Role::Publish(ingest) => ingest.poll_timeout().map_or(timeout, |due| due.min(timeout)),
                Role::Play(_) => timeout,
            };
            state.armed = Some(timeout);
            let undriven = match &mut state.role {
                Role::Play(player) => player.take_undriven(),
                Role::Publish(_) => None,
            };
            (timeout, state.connected, undriven)
        };
        // Outside the lock, which the fan-out takes as it delivers.
        if let Some((subscription, seat)) = undriven {
            let mut sink = PlayerSink(Arc::downgrade(shared));
            let subscription = catch_up(subscription, &mut sink);
            subscription.drive(&seat, Box::new(sink));
            continue;
        }
        let due = tokio::time::Instant::from_std(timeout);
        if sleep.deadline() != due {
            sleep.as_mut().reset(due);
        }
        tokio::select! {
            _ = &mut cancelled => {
                shared.lock().set_status(SessionStatus::Stopped);
                return;
            }
            _ = &mut connect_deadline, if !connected => {
                shared.lock().set_status(SessionStatus::Failed("ICE failed: the peer did not connect in time".into()));
                return;
            }
            datagram = inbox.datagrams.recv() => {
                let Some(datagram) = datagram else { return };
                let Ok(contents) = datagram.data[..].try_into() else {
                    tracing::debug!(source = %datagram.source, "unparseable datagram ignored");
                    continue;
                };
                let receive = Receive {
                    proto: Protocol::Udp,
                    source: datagram.source,
                    destination: inbox.local,
                    contents,
                };
                shared.lock().receive(&datagram.data, receive, Instant::now());
            }
            Some(signal) = inbox.signals.recv() => match signal {
                Signal::Restart(restart) => {
                    // The `Rtc` answers checks with the new credentials only,
                    // and keeps sending on the pair in use (ICE-lite: the peer
                    // checks and nominates; the session only answers).
                    let mut state = shared.lock();
                    let mut api = state.rtc.direct_api();
                    api.set_local_ice_credentials(restart.local);
                    api.set_remote_ice_credentials(restart.remote);
                    tracing::info!("ICE restarted");
                    let _ = restart.done.send(());
                }
                Signal::Answer(sdp) => {
                    shared.lock().play(|player, rtc, now| player.handle(rtc, PlayerInput::Answer(sdp), now));
                }
                Signal::MuteAudio(muted) => {
                    shared.lock().play(|player, _, _| {
                        player.mute_audio(muted);
                        None
                    });
                }
                Signal::VideoTrack(track) => {
                    // The seat first (the order the fan-out takes them in):
                    // the frame it delivers next is picked for the new track.
                    let seat = match &shared.lock().role {
                        Role::Play(player) => player.seat(),
                        Role::Publish(_) => continue,
                    };
                    seat.with_driven(|subscription| {
                        shared.lock().play(|player, rtc, now| {
                            player.select_video_track(rtc, track, now);
                            if let Some(subscription) = subscription {
                                player.adjust(subscription);
                            }
                            None
                        });
                    });
                }
            },
            _ = shared.kick.notified() => {}
            _ = wanted(&keyframes) => {
                let mut state = shared.lock();
                let state = &mut *state;
                if let Role::Publish(ingest) = &mut state.role {
                    ingest.keyframe_wanted(&mut state.rtc, Instant::now());
                }
            }
            _ = &mut sleep => {
                let now = Instant::now();
                let mut state = shared.lock();
                state.input(Input::Timeout(now));
                let state = &mut *state;
                if let Role::Publish(ingest) = &mut state.role {
                    ingest.handle_timeout(&mut state.rtc, now);
                }
            }
        }
    }
}

/// Delivers what `subscription` already has (the stream's cached frames)
/// from the player's own task: a player that joins starts at once, and
/// the thread that pushes the stream's next frame does not deliver the
/// whole cached group of pictures to it.
fn catch_up(mut subscription: Subscription, sink: &mut PlayerSink) -> Subscription {
    while let Some(delivery) = subscription.try_next() {
        if !matches!(
            sink.take(delivery, &mut Made::default(), &mut subscription),
            Take::Taken
        ) {
            break;
        }
    }
    subscription
}

/// Resolves when the hub wants a keyframe from the publisher; never for a
/// player.
async fn wanted(keyframes: &Option<crate::hub::KeyframeRequests>) {
    match keyframes {
        Some(keyframes) => keyframes.wanted().await,
        None => std::future::pending().await,
    }
}

/// Whether `datagram` is RTCP whose first packet is a sender report (RTP
/// version 2, packet type 200): SRTCP leaves the first 8 bytes in the clear.
fn leads_with_sender_report(datagram: &[u8]) -> bool {
    datagram.len() >= 8 && datagram[0] >> 6 == 2 && datagram[1] == 200
}

/// Whether `datagram` is RTP of a payload type negotiated for
/// retransmissions (RTX); SRTP leaves the header in the clear.
fn is_retransmission(rtc: &Rtc, datagram: &[u8]) -> bool {
    let rtp = datagram.len() >= 12 && datagram[0] >> 6 == 2 && !(192..=223).contains(&datagram[1]);
    let pt = datagram.get(1).map(|b| b & 0x7F);
    rtp && rtc
        .codec_config()
        .params()
        .iter()
        .any(|p| p.resend().map(|rtx| *rtx) == pt)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future `run` returns, which a session's task holds.
    fn future_size<F: FnOnce(Box<Peer>, Role) -> Fut, Fut>(_: F) -> usize {
        std::mem::size_of::<Fut>()
    }

    #[test]
    fn a_sessions_task_holds_its_peer_once() {
        // By value, the future held the `Peer` twice (22 016 bytes beside a
        // 10 272-byte `Peer`) and the task that awaits it a third time.
        let peer = std::mem::size_of::<Peer>();
        let future = future_size(run);
        assert!(
            peer > 4096,
            "a Peer is {peer} bytes: this test no longer measures anything"
        );
        assert!(
            future < peer / 2,
            "run's future is {future} bytes beside a {peer}-byte Peer"
        );
    }
}
