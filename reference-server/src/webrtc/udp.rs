//! The one UDP port every WebRTC peer shares.
//!
//! The server is ICE-lite: a peer's first packets are STUN binding requests
//! whose USERNAME starts with the ufrag the server put in that peer's answer.
//! That names the peer; from then on its source address does (DTLS, SRTP and
//! SRTCP carry no ufrag). Datagrams for nobody are dropped and counted.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// One datagram for a peer.
#[derive(Debug)]
pub struct Datagram {
    /// Who sent it.
    pub source: SocketAddr,
    /// The bytes.
    pub data: Bytes,
}

/// Datagrams a peer may have queued before new ones are dropped (UDP may lose them anyway).
const PEER_QUEUE: usize = 256;

/// Which peer gets which datagram.
#[derive(Default)]
pub struct Routes {
    by_ufrag: HashMap<String, mpsc::Sender<Datagram>>,
    by_source: HashMap<SocketAddr, (String, mpsc::Sender<Datagram>)>,
}

/// The routing table, shared by the receive loop and the peers.
#[derive(Clone, Default)]
pub struct Router(Arc<Mutex<Routes>>);

impl Router {
    fn lock(&self) -> MutexGuard<'_, Routes> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a peer by its local ufrag; returns its datagram queue.
    pub fn add(&self, ufrag: &str) -> mpsc::Receiver<Datagram> {
        let (tx, rx) = mpsc::channel(PEER_QUEUE);
        self.lock().by_ufrag.insert(ufrag.to_string(), tx);
        rx
    }

    /// Forgets a peer and every address it used.
    pub fn remove(&self, ufrag: &str) {
        let mut routes = self.lock();
        routes.by_ufrag.remove(ufrag);
        routes.by_source.retain(|_, (u, _)| u != ufrag);
    }

    /// Peers registered now.
    pub fn len(&self) -> usize {
        self.lock().by_ufrag.len()
    }

    /// Whether no peer is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn route(&self, source: SocketAddr, data: &[u8]) -> Option<mpsc::Sender<Datagram>> {
        let mut routes = self.lock();
        if let Some(ufrag) = stun_local_ufrag(data) {
            let tx = routes.by_ufrag.get(ufrag)?.clone();
            routes.by_source.insert(source, (ufrag.to_string(), tx.clone()));
            return Some(tx);
        }
        routes.by_source.get(&source).map(|(_, tx)| tx.clone())
    }
}

/// Receives datagrams and hands each to its peer until shutdown.
pub async fn receive_loop(socket: Arc<UdpSocket>, router: Router, metrics: Arc<Metrics>, shutdown: CancellationToken) {
    let mut buf = vec![0u8; 2048];
    loop {
        let received = tokio::select! {
            _ = shutdown.cancelled() => return,
            received = socket.recv_from(&mut buf) => received,
        };
        let (len, source) = match received {
            Ok(pair) => pair,
            Err(error) => {
                // ICMP port unreachable from a peer that went away, and the like.
                tracing::debug!(%error, "UDP receive failed");
                continue;
            }
        };
        let data = &buf[..len];
        match router.route(source, data) {
            Some(tx) => {
                if tx
                    .try_send(Datagram {
                        source,
                        data: Bytes::copy_from_slice(data),
                    })
                    .is_err()
                {
                    metrics.webrtc_datagrams_dropped.inc();
                }
            }
            None => {
                metrics.webrtc_datagrams_dropped.inc();
                tracing::debug!(%source, len, "datagram for no peer dropped");
            }
        }
    }
}

/// STUN attribute USERNAME (RFC 8489).
const USERNAME: u16 = 0x0006;
/// STUN's magic cookie.
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];

/// For a STUN message, the ufrag of ours in its USERNAME (`ours:theirs`).
fn stun_local_ufrag(data: &[u8]) -> Option<&str> {
    // RFC 7983: STUN starts with 0..=3, and has the magic cookie.
    if data.len() < 20 || data[0] > 3 || data[4..8] != MAGIC_COOKIE {
        return None;
    }
    let mut attrs = &data[20..];
    while attrs.len() >= 4 {
        let kind = u16::from_be_bytes([attrs[0], attrs[1]]);
        let len = usize::from(u16::from_be_bytes([attrs[2], attrs[3]]));
        let value = attrs.get(4..4 + len)?;
        if kind == USERNAME {
            let username = std::str::from_utf8(value).ok()?;
            return username.split(':').next();
        }
        let padded = (4 + len + 3) & !3;
        attrs = attrs.get(padded..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding_request(username: &str) -> Vec<u8> {
        let mut msg = vec![0, 1, 0, 0];
        msg.extend(MAGIC_COOKIE);
        msg.extend([7; 12]);
        // A PRIORITY attribute first, then USERNAME with padding.
        msg.extend([0x00, 0x24, 0, 4, 1, 2, 3, 4]);
        msg.extend(USERNAME.to_be_bytes());
        msg.extend((username.len() as u16).to_be_bytes());
        msg.extend(username.as_bytes());
        msg.resize(msg.len().next_multiple_of(4), 0);
        msg
    }

    #[test]
    fn finds_our_ufrag_in_a_binding_request() {
        assert_eq!(stun_local_ufrag(&binding_request("srv1:cli9")), Some("srv1"));
        assert_eq!(stun_local_ufrag(&binding_request("abc")), Some("abc"));
        assert_eq!(stun_local_ufrag(&[0x80; 40]), None, "RTP");
        assert_eq!(stun_local_ufrag(&[22; 40]), None, "DTLS");
        let mut truncated = binding_request("srv1:cli9");
        truncated.truncate(30);
        assert_eq!(stun_local_ufrag(&truncated), None);
    }

    #[tokio::test]
    async fn routes_by_ufrag_then_by_address() {
        let router = Router::default();
        let mut rx = router.add("srv1");
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let stranger: SocketAddr = "127.0.0.1:5001".parse().unwrap();
        assert!(router.route(peer, &[0x80, 0, 0, 0]).is_none(), "no STUN seen yet");
        router.route(peer, &binding_request("srv1:x")).unwrap();
        assert!(router.route(peer, &[0x80, 0, 0, 0]).is_some(), "known address");
        assert!(router.route(stranger, &[0x80, 0, 0, 0]).is_none());
        assert!(router.route(stranger, &binding_request("other:x")).is_none());
        router.remove("srv1");
        assert!(router.route(peer, &[0x80, 0, 0, 0]).is_none());
        assert!(router.is_empty());
        drop(rx.try_recv());
    }
}
