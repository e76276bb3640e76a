//! A UDP relay between a WebRTC peer and a server that loses packets on
//! purpose, to test what the server does about loss: NACK retransmission,
//! keyframe requests.
//!
//! The relay has one socket. Datagrams from the server go to the peer (the
//! last address that sent anything else); all others go to the server. A peer
//! uses it by sending to the relay instead of the server's candidate (see
//! [`PlayerOptions::via`](super::PlayerOptions::via)). SRTP leaves RTP headers
//! in the clear, so the relay can pick which packets to lose by payload type.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// Which packets from the server the relay loses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loss {
    /// Lose every `every`-th RTP packet that matches (0: lose none).
    pub every: u64,
    /// Only RTP packets of this payload type count (all RTP packets when `None`).
    /// RTCP, STUN and DTLS always pass.
    pub payload_type: Option<u8>,
    /// Also lose every RTP packet of this payload type (for example the RTX
    /// payload type, so that losses are not repaired).
    pub all_of: Option<u8>,
}

impl Loss {
    /// Loses nothing.
    pub const NONE: Loss = Loss {
        every: 0,
        payload_type: None,
        all_of: None,
    };
}

#[derive(Debug)]
struct Counters {
    /// Where the relay sends what the peer sends; nothing passes before.
    server: OnceLock<SocketAddr>,
    loss: Mutex<Loss>,
    to_server: AtomicU64,
    to_peer: AtomicU64,
    lost: AtomicU64,
    /// The sender SSRC and SRTCP index of what the server sent as SRTCP.
    srtcp: Mutex<Vec<(u32, u32)>>,
}

/// SRTCP packets remembered at most (a few minutes of a session's).
const SRTCP_KEPT: usize = 10_000;

/// A running relay; dropping it stops it.
#[derive(Debug)]
pub struct UdpRelay {
    addr: SocketAddr,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

impl UdpRelay {
    /// Starts a relay in front of `server`, losing what `loss` says. It
    /// listens on the address this host reaches `server` from (127.0.0.1 for
    /// a server on this host).
    pub async fn start(server: SocketAddr, loss: Loss) -> std::io::Result<UdpRelay> {
        let relay = UdpRelay::unaimed(super::local_address_toward(server.ip()), loss).await?;
        relay.aim(server);
        Ok(relay)
    }

    /// Starts a relay on `bind` that passes nothing until it is aimed at a
    /// server ([`UdpRelay::aim`]): for a peer that learns the server's
    /// address from the answer to its offer. `bind` must reach the server:
    /// the peer's own address does.
    pub async fn unaimed(bind: IpAddr, loss: Loss) -> std::io::Result<UdpRelay> {
        let socket = UdpSocket::bind((bind, 0)).await?;
        let addr = socket.local_addr()?;
        let counters = Arc::new(Counters {
            server: OnceLock::new(),
            loss: Mutex::new(loss),
            to_server: AtomicU64::new(0),
            to_peer: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            srtcp: Mutex::new(Vec::new()),
        });
        let task = tokio::spawn(relay(socket, counters.clone()));
        Ok(UdpRelay { addr, counters, task })
    }

    /// Sends what the peer sends to `server` from now on; a relay is aimed
    /// once (later calls change nothing).
    pub fn aim(&self, server: SocketAddr) {
        self.aim_later().at(server);
    }

    /// A handle that aims the relay later, for whoever learns the server's
    /// address.
    pub(crate) fn aim_later(&self) -> RelayAim {
        RelayAim(self.counters.clone())
    }

    /// The address peers send to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Changes what is lost from now on.
    pub fn set_loss(&self, loss: Loss) {
        *self.counters.loss.lock().unwrap_or_else(PoisonError::into_inner) = loss;
    }

    /// Datagrams passed to the server.
    pub fn to_server(&self) -> u64 {
        self.counters.to_server.load(Ordering::Relaxed)
    }

    /// Datagrams passed to the peer.
    pub fn to_peer(&self) -> u64 {
        self.counters.to_peer.load(Ordering::Relaxed)
    }

    /// RTP packets lost on purpose.
    pub fn lost(&self) -> u64 {
        self.counters.lost.load(Ordering::Relaxed)
    }

    /// The SRTCP packets the server sent (the first ten thousand): each
    /// one's sender SSRC and SRTCP index with its E bit, which SRTCP leaves
    /// in the clear (RFC 3711 §3.4). An SSRC and index seen twice is a
    /// nonce used twice, unless the packet was sent again whole.
    pub fn srtcp_from_server(&self) -> Vec<(u32, u32)> {
        self.counters
            .srtcp
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Aims an [`UdpRelay`] once the server's address is known.
#[derive(Debug, Clone)]
pub(crate) struct RelayAim(Arc<Counters>);

impl RelayAim {
    /// See [`UdpRelay::aim`].
    pub(crate) fn at(&self, server: SocketAddr) {
        let _ = self.0.server.set(server);
    }
}

impl Drop for UdpRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The sender SSRC and the last word (E bit and SRTCP index) of `datagram`,
/// if it is RTCP (RFC 5761 §4).
fn srtcp_index(datagram: &[u8]) -> Option<(u32, u32)> {
    let rtcp = datagram.len() >= 12 && datagram[0] >> 6 == 2 && (64..=95).contains(&(datagram[1] & 0x7f));
    let word = |at: usize| u32::from_be_bytes([datagram[at], datagram[at + 1], datagram[at + 2], datagram[at + 3]]);
    rtcp.then(|| (word(4), word(datagram.len() - 4)))
}

/// The RTP payload type of `datagram`, if it is RTP (not RTCP, STUN or DTLS).
pub fn rtp_payload_type(datagram: &[u8]) -> Option<u8> {
    let (&first, &second) = (datagram.first()?, datagram.get(1)?);
    let version_2 = first >> 6 == 2;
    // RTCP packet types 192..=223 share the second byte (RFC 5761).
    let rtcp = (192..=223).contains(&second);
    (version_2 && !rtcp && datagram.len() >= 12).then_some(second & 0x7F)
}

/// The first UDP candidate of an SDP answer: where the server receives.
pub fn first_udp_candidate(sdp: &str) -> Option<SocketAddr> {
    sdp.lines().find_map(|line| {
        let fields: Vec<&str> = line.strip_prefix("a=candidate:")?.split_whitespace().collect();
        if !fields.get(2)?.eq_ignore_ascii_case("udp") {
            return None;
        }
        let ip: std::net::IpAddr = fields.get(4)?.parse().ok()?;
        let port: u16 = fields.get(5)?.parse().ok()?;
        Some(SocketAddr::new(ip, port))
    })
}

async fn relay(socket: UdpSocket, counters: Arc<Counters>) {
    let mut buf = vec![0u8; 2048];
    let mut peer: Option<SocketAddr> = None;
    let mut matching = 0u64;
    loop {
        let Ok((len, from)) = socket.recv_from(&mut buf).await else {
            return;
        };
        let datagram = &buf[..len];
        // Not aimed yet: the peer's ICE checks are sent again.
        let Some(&server) = counters.server.get() else {
            continue;
        };
        if from != server {
            peer = Some(from);
            if socket.send_to(datagram, server).await.is_ok() {
                counters.to_server.fetch_add(1, Ordering::Relaxed);
            }
            continue;
        }
        let Some(peer) = peer else { continue };
        if let Some(seen) = srtcp_index(datagram) {
            let mut srtcp = counters.srtcp.lock().unwrap_or_else(PoisonError::into_inner);
            if srtcp.len() < SRTCP_KEPT {
                srtcp.push(seen);
            }
        }
        if let Some(pt) = rtp_payload_type(datagram) {
            let loss = *counters.loss.lock().unwrap_or_else(PoisonError::into_inner);
            let mut lose = loss.all_of == Some(pt);
            if loss.every > 0 && loss.payload_type.is_none_or(|want| want == pt) {
                matching += 1;
                lose |= matching.is_multiple_of(loss.every);
            }
            if lose {
                counters.lost.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        }
        if socket.send_to(datagram, peer).await.is_ok() {
            counters.to_peer.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// `sdp` with every candidate's address replaced by `via`.
pub(crate) fn redirect_candidates(sdp: &str, via: SocketAddr) -> String {
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        let body = line.trim_end_matches(['\r', '\n']);
        let ending = &line[body.len()..];
        if body.starts_with("a=candidate:") {
            let mut fields: Vec<String> = body.split(' ').map(str::to_string).collect();
            if fields.len() > 5 {
                fields[4] = via.ip().to_string();
                fields[5] = via.port().to_string();
            }
            out.push_str(&fields.join(" "));
        } else {
            out.push_str(body);
        }
        out.push_str(ending);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A relay in front of a server elsewhere listens on the address that
    /// reaches it (a socket on 127.0.0.1 cannot send to another host), and
    /// passes datagrams both ways.
    #[tokio::test]
    async fn a_relay_listens_where_the_server_is_reached_from() {
        let own = std::net::UdpSocket::bind("0.0.0.0:0")
            .and_then(|s| s.connect("192.0.2.1:9").and(s.local_addr()))
            .map(|a| a.ip())
            .ok()
            .filter(|ip| !ip.is_unspecified() && !ip.is_loopback())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        let server = UdpSocket::bind((own, 0)).await.unwrap();
        let relay = UdpRelay::start(server.local_addr().unwrap(), Loss::NONE).await.unwrap();
        assert_eq!(relay.addr().ip(), own);

        let peer = UdpSocket::bind((own, 0)).await.unwrap();
        peer.send_to(b"ping", relay.addr()).await.unwrap();
        let mut buf = [0u8; 16];
        let (len, from) = server.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..len], from), (&b"ping"[..], relay.addr()));
        server.send_to(b"pong", from).await.unwrap();
        let (len, from) = peer.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..len], from), (&b"pong"[..], relay.addr()));
        assert_eq!((relay.to_server(), relay.to_peer()), (1, 1));
    }

    #[test]
    fn an_answers_candidate_is_found() {
        let sdp = "v=0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host\r\n";
        assert_eq!(first_udp_candidate(sdp), Some("127.0.0.1:50000".parse().unwrap()));
        assert_eq!(first_udp_candidate("a=candidate:1 1 tcp 1 127.0.0.1 9 typ host"), None);
    }

    #[test]
    fn tells_rtp_from_rtcp_stun_and_dtls() {
        let mut rtp = [0u8; 12];
        rtp[0] = 0x80;
        rtp[1] = 0x80 | 102; // marker bit set
        assert_eq!(rtp_payload_type(&rtp), Some(102));
        rtp[1] = 111;
        assert_eq!(rtp_payload_type(&rtp), Some(111));
        let mut rtcp = rtp;
        rtcp[1] = 200; // sender report
        assert_eq!(rtp_payload_type(&rtcp), None);
        let stun = [0x00, 0x01, 0, 0, 0x21, 0x12, 0xA4, 0x42, 0, 0, 0, 0];
        assert_eq!(rtp_payload_type(&stun), None);
        let dtls = [22u8, 0xFE, 0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(rtp_payload_type(&dtls), None);
    }

    #[test]
    fn candidates_point_at_the_relay() {
        let sdp = "v=0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 8443 typ host\r\na=ice-lite\r\n";
        let via: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        assert_eq!(
            redirect_candidates(sdp, via),
            "v=0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\na=ice-lite\r\n"
        );
    }
}
