//! The task that drives one str0m `Rtc`: datagrams, timers and media in;
//! datagrams and events out. After every input the `Rtc` is drained until it
//! asks for a timeout, as str0m requires.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::net::{Protocol, Receive};
use str0m::{Event, IceConnectionState, IceCreds, Input, Output, Rtc};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::play::Player;
use super::publish::Ingest;
use super::udp::{Batch, Datagram, Port};
use super::SessionStatus;

/// What the peer does with its media.
pub enum Role {
    /// Sends a hub stream to the peer.
    Play(Box<Player>),
    /// Takes the peer's media into the hub.
    Publish(Box<Ingest>),
}

/// What signalling asks of a session's task: one channel, polled at every
/// turn of its loop (each frame), however rarely it carries anything.
pub enum Signal {
    /// An ICE restart to apply; boxed, since a channel holds room for 32
    /// messages from its start.
    Restart(Box<Restart>),
    /// A player's peer answered the offer that added video.
    Answer(String),
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

/// One peer's state, owned by its task.
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

impl Peer {
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
        if let Err(error) = self.rtc.handle_input(input) {
            tracing::warn!(%error, "peer input failed: disconnecting");
            self.set_status(SessionStatus::Failed(format!("WebRTC error: {error}")));
            self.rtc.disconnect();
        }
    }
}

fn status_reason(status: &SessionStatus) -> Option<&str> {
    match status {
        SessionStatus::Failed(reason) => Some(reason),
        _ => None,
    }
}

/// What woke the loop.
pub enum Wake {
    /// The role has media or news for the peer.
    Role(RoleInput),
    /// Nothing more will come from the role.
    RoleDone,
    /// A publisher's stream wants a keyframe (a player joined).
    KeyframeWanted,
}

/// Media or news for a player.
pub type RoleInput = super::play::PlayerInput;

/// Runs the peer until it stops, fails, or the server shuts down.
///
/// The peer comes boxed: an `async fn` keeps its arguments apart from its
/// locals, and the task that awaits it keeps what it captured, so a `Peer`
/// (its `Rtc` is 10 KB) passed by value was held three times per session.
pub async fn run(mut peer: Box<Peer>, mut role: Role) {
    // Made once, not at each turn of the loop (each frame, each datagram):
    // a timer or waiter made anew is registered and unregistered each time.
    let connect_deadline = tokio::time::sleep(peer.connect_timeout);
    let cancelled = peer.cancel.clone().cancelled_owned();
    let sleep = tokio::time::sleep(Duration::from_secs(3600));
    tokio::pin!(connect_deadline, cancelled, sleep);
    let mut connected = false;
    while let Some(timeout) = drain(&mut peer, &mut role, &mut connected) {
        let timeout = match &role {
            Role::Publish(ingest) => ingest.poll_timeout().map_or(timeout, |due| due.min(timeout)),
            Role::Play(_) => timeout,
        };
        let due = tokio::time::Instant::from_std(timeout);
        if sleep.deadline() != due {
            sleep.as_mut().reset(due);
        }
        tokio::select! {
            _ = &mut cancelled => {
                peer.set_status(SessionStatus::Stopped);
                break;
            }
            _ = &mut connect_deadline, if !connected => {
                peer.set_status(SessionStatus::Failed("ICE failed: the peer did not connect in time".into()));
                break;
            }
            datagram = peer.datagrams.recv() => {
                let Some(datagram) = datagram else { break };
                let Ok(contents) = datagram.data[..].try_into() else {
                    tracing::debug!(source = %datagram.source, "unparseable datagram ignored");
                    continue;
                };
                let receive = Receive {
                    proto: Protocol::Udp,
                    source: datagram.source,
                    destination: peer.local,
                    contents,
                };
                peer.input(Input::Receive(Instant::now(), receive));
            }
            Some(signal) = peer.signals.recv() => match signal {
                Signal::Restart(restart) => {
                    // The `Rtc` answers checks with the new credentials only,
                    // and keeps sending on the pair in use (ICE-lite: the peer
                    // checks and nominates; the session only answers).
                    let mut api = peer.rtc.direct_api();
                    api.set_local_ice_credentials(restart.local);
                    api.set_remote_ice_credentials(restart.remote);
                    tracing::info!("ICE restarted");
                    let _ = restart.done.send(());
                }
                Signal::Answer(sdp) => {
                    if let Role::Play(player) = &mut role {
                        play(&mut peer, player, RoleInput::Answer(sdp));
                    }
                }
            },
            wake = next(&mut role) => match wake {
                Wake::Role(input) => {
                    if let Role::Play(player) = &mut role {
                        play(&mut peer, player, input);
                    }
                }
                Wake::RoleDone => {
                    peer.set_status(SessionStatus::Stopped);
                    break;
                }
                Wake::KeyframeWanted => {
                    if let Role::Publish(ingest) = &mut role {
                        ingest.keyframe_wanted(&mut peer.rtc, Instant::now());
                    }
                }
            },
            _ = &mut sleep => {
                let now = Instant::now();
                peer.input(Input::Timeout(now));
                if let Role::Publish(ingest) = &mut role {
                    ingest.handle_timeout(&mut peer.rtc, now);
                }
            }
        }
    }
    peer.rtc.disconnect();
    // Let the DTLS close alert and the like go out.
    let _ = drain(&mut peer, &mut role, &mut connected);
    peer.set_status(SessionStatus::Stopped);
    tracing::info!("session ended");
}

/// Hands `input` to the player, and lets str0m send what it wrote.
fn play(peer: &mut Peer, player: &mut Player, input: RoleInput) {
    let now = Instant::now();
    if let Some(status) = player.handle(&mut peer.rtc, input, now) {
        peer.set_status(status);
    }
    // str0m sends what was written once its time moves on: now, in this
    // turn, not at the next timeout.
    peer.input(Input::Timeout(now));
}

async fn next(role: &mut Role) -> Wake {
    match role {
        Role::Play(player) => match player.next().await {
            Some(input) => Wake::Role(input),
            None => Wake::RoleDone,
        },
        Role::Publish(ingest) => {
            ingest.wanted().await;
            Wake::KeyframeWanted
        }
    }
}

/// Polls output until str0m asks for a timeout, then sends what it
/// transmitted; `None` once the peer is dead.
fn drain(peer: &mut Peer, role: &mut Role, connected: &mut bool) -> Option<Instant> {
    let next = poll(peer, role, connected);
    peer.batch.flush(&peer.port);
    next
}

fn poll(peer: &mut Peer, role: &mut Role, connected: &mut bool) -> Option<Instant> {
    loop {
        if !peer.rtc.is_alive() {
            return None;
        }
        let output = match peer.rtc.poll_output() {
            Ok(output) => output,
            Err(error) => {
                tracing::warn!(%error, "peer failed");
                peer.set_status(SessionStatus::Failed(format!("WebRTC error: {error}")));
                peer.rtc.disconnect();
                return None;
            }
        };
        match output {
            Output::Timeout(at) => return Some(at),
            Output::Transmit(transmit)
                if peer.withhold_sender_reports && leads_with_sender_report(&transmit.contents) => {}
            Output::Transmit(transmit)
                if peer.withhold_retransmissions && is_retransmission(&peer.rtc, &transmit.contents) => {}
            Output::Transmit(transmit) => {
                peer.batch.push(&peer.port, transmit.destination, &transmit.contents);
            }
            Output::Event(event) => {
                if let Some(status) = event_status(peer, role, event, connected) {
                    peer.set_status(status);
                }
            }
        }
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

fn event_status(peer: &mut Peer, role: &mut Role, event: Event, connected: &mut bool) -> Option<SessionStatus> {
    match event {
        Event::Connected => {
            *connected = true;
            tracing::info!("peer connected (ICE and DTLS)");
            match role {
                Role::Play(player) => player.connected(&mut peer.rtc),
                Role::Publish(_) => Some(SessionStatus::Publishing),
            }
        }
        Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
            tracing::info!("peer went away (ICE disconnected)");
            peer.rtc.disconnect();
            Some(SessionStatus::Stopped)
        }
        Event::MediaAdded(added) => {
            match role {
                Role::Play(player) => player.media_added(added.mid, added.kind),
                Role::Publish(ingest) => ingest.media_added(added.mid, added.kind),
            }
            None
        }
        Event::MediaData(data) => {
            if let Role::Publish(ingest) = role {
                if let Err(taken_over) = ingest.media(&mut peer.rtc, data, Instant::now()) {
                    tracing::info!(%taken_over, "publisher session ended");
                    peer.rtc.disconnect();
                    return Some(SessionStatus::Stopped);
                }
            }
            None
        }
        Event::KeyframeRequest(request) => {
            if let Role::Play(player) = role {
                player.keyframe_request(&mut peer.rtc, request.mid, Instant::now());
            }
            None
        }
        _ => None,
    }
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
