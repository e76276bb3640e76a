//! The one UDP port every WebRTC peer shares.
//!
//! The server is ICE-lite: a peer's first packets are STUN binding requests
//! whose USERNAME starts with the ufrag the server put in that peer's answer.
//! That names the peer; from then on its source address does (DTLS, SRTP and
//! SRTCP carry no ufrag). Datagrams for nobody are dropped and counted.
//!
//! Datagrams go out in batches: the packets of one picture for one peer
//! are the same size but the last, which is what UDP generic segmentation
//! offload (GSO: one `sendmsg` for many datagrams, split by the kernel)
//! takes, so a peer's [`Batch`] sends them with one system call instead of
//! one each. They come in by `recvmmsg`, split again where the kernel
//! coalesced them (GRO). `quinn-udp` does the system calls, and falls back
//! to one datagram per call where the kernel cannot.

use std::cell::Cell;
use std::collections::HashMap;
use std::io::IoSliceMut;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// The shared socket and its offload state.
///
/// The runtime watches the socket for datagrams to read only. Sends never
/// wait for room (a full buffer loses them, as the network might), so the
/// runtime has no use for the kernel's word that there is room again: with
/// it, every datagram the kernel freed woke a parked worker thread for
/// nothing, a fifth of the server's time at 400 viewers.
pub struct Port {
    socket: AsyncFd<std::net::UdpSocket>,
    state: UdpSocketState,
}

impl Port {
    /// Binds `addr` and turns on what the kernel offers (GSO, GRO). Must be
    /// called within a tokio runtime.
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Port> {
        let socket = std::net::UdpSocket::bind(addr)?;
        socket.set_nonblocking(true)?;
        let state = UdpSocketState::new((&socket).into())?;
        // SAFETY: a `std::net::UdpSocket` owns its file descriptor and
        // always returns that one; the `AsyncFd` owns the socket until it
        // is dropped, so the descriptor stays open and the same.
        let socket = unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) }?;
        Ok(Port { socket, state })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.get_ref().local_addr()
    }

    /// Datagrams one send may carry (1 without GSO).
    pub fn max_segments(&self) -> usize {
        self.state.max_gso_segments()
    }

    /// Sends `contents` to `destination` now, without waiting: as one
    /// datagram, or as datagrams of `segment` bytes (the last may be
    /// shorter). A full socket buffer loses them, as the network might.
    fn send(&self, destination: SocketAddr, contents: &[u8], segment: Option<usize>) {
        let transmit = Transmit {
            destination,
            ecn: None,
            contents,
            segment_size: segment,
            src_ip: None,
        };
        if let Err(error) = self.state.try_send(self.socket.get_ref().into(), &transmit) {
            tracing::debug!(%error, %destination, "UDP send failed");
        }
    }
}

thread_local! {
    /// The buffer batches gather datagrams in, one per thread: a batch
    /// takes it at its first datagram and gives it back when it has sent
    /// them (a peer is drained in one go, so on one thread), so thousands
    /// of peers keep one buffer per thread, not one each, and sending
    /// allocates nothing once it has grown to a batch's size.
    static BUFFER: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// One peer's outgoing datagrams, gathered while its `Rtc` is drained and
/// sent by [`Batch::flush`] in as few system calls as GSO allows.
#[derive(Debug, Default)]
pub struct Batch {
    destination: Option<SocketAddr>,
    buf: Vec<u8>,
    /// The size of every datagram in the batch but the last.
    segment: usize,
    count: usize,
    /// The last datagram was shorter than `segment`: nothing may follow it.
    closed: bool,
    /// System calls made, datagrams sent (for tests and metrics).
    sends: u64,
    datagrams: u64,
}

impl Batch {
    /// Adds a datagram, sending what was gathered first if it cannot join.
    pub fn push(&mut self, port: &Port, destination: SocketAddr, datagram: &[u8]) {
        let joins = self.count > 0
            && self.destination == Some(destination)
            && !self.closed
            && datagram.len() <= self.segment
            && self.count < port.max_segments();
        if !joins {
            self.flush(port);
            self.destination = Some(destination);
            self.segment = datagram.len();
        }
        if self.count == 0 && self.buf.capacity() == 0 {
            self.buf = BUFFER.take();
        }
        self.buf.extend_from_slice(datagram);
        self.count += 1;
        self.closed = datagram.len() < self.segment;
    }

    /// Sends what was gathered.
    pub fn flush(&mut self, port: &Port) {
        if let (Some(destination), true) = (self.destination, self.count > 0) {
            port.send(destination, &self.buf, (self.count > 1).then_some(self.segment));
            self.sends += 1;
            self.datagrams += self.count as u64;
        }
        self.buf.clear();
        self.count = 0;
        self.closed = false;
        if self.buf.capacity() > 0 {
            BUFFER.set(std::mem::take(&mut self.buf));
        }
    }

    /// System calls and datagrams so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.sends, self.datagrams)
    }
}

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

/// Which peer gets which datagram. A peer is known by its session id (the
/// ufrag of its first ICE session) and reached by every ufrag it has had.
#[derive(Default)]
pub struct Routes {
    /// Local ufrag: the session, its queue.
    by_ufrag: HashMap<String, (String, mpsc::Sender<Datagram>)>,
    /// Source address: the session, its queue.
    by_source: HashMap<SocketAddr, (String, mpsc::Sender<Datagram>)>,
}

/// The routing table, shared by the receive loop and the peers.
#[derive(Clone, Default)]
pub struct Router(Arc<Mutex<Routes>>);

impl Router {
    fn lock(&self) -> MutexGuard<'_, Routes> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a peer by its session id, its first local ufrag; returns
    /// its datagram queue.
    pub fn add(&self, session: &str) -> mpsc::Receiver<Datagram> {
        let (tx, rx) = mpsc::channel(PEER_QUEUE);
        self.lock()
            .by_ufrag
            .insert(session.to_string(), (session.to_string(), tx));
        rx
    }

    /// After an ICE restart: STUN for the local ufrag `ufrag` reaches the
    /// peer `session` too, instead of the ufrag of its restart before (if
    /// any): a peer has at most two, however often it restarts. False if
    /// there is no such peer.
    pub fn alias(&self, session: &str, ufrag: &str) -> bool {
        let mut routes = self.lock();
        let Some(route) = routes.by_ufrag.get(session).cloned() else {
            return false;
        };
        routes.by_ufrag.retain(|key, (s, _)| s != session || key == session);
        routes.by_ufrag.insert(ufrag.to_string(), route);
        true
    }

    /// Forgets a peer, every ufrag it had and every address it used.
    pub fn remove(&self, session: &str) {
        let mut routes = self.lock();
        routes.by_ufrag.retain(|_, (s, _)| s != session);
        routes.by_source.retain(|_, (s, _)| s != session);
    }

    /// Peers registered now.
    pub fn len(&self) -> usize {
        let routes = self.lock();
        routes
            .by_ufrag
            .iter()
            .filter(|(ufrag, (session, _))| ufrag == &session)
            .count()
    }

    /// Whether no peer is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn route(&self, source: SocketAddr, data: &[u8]) -> Option<mpsc::Sender<Datagram>> {
        let mut routes = self.lock();
        if let Some(ufrag) = stun_local_ufrag(data) {
            let (session, tx) = routes.by_ufrag.get(ufrag)?.clone();
            routes.by_source.insert(source, (session, tx.clone()));
            return Some(tx);
        }
        routes.by_source.get(&source).map(|(_, tx)| tx.clone())
    }
}

/// Buffers one receive call fills (by `recvmmsg`).
const RECEIVE_BATCH: usize = 16;
/// Room for one datagram, or for what GRO coalesced of several.
const RECEIVE_SLOT: usize = 2048;

/// Receives datagrams and hands each to its peer until shutdown.
pub async fn receive_loop(port: Arc<Port>, router: Router, metrics: Arc<Metrics>, shutdown: CancellationToken) {
    let slot = RECEIVE_SLOT * port.state.gro_segments().max(1);
    let mut storage = vec![0u8; slot * RECEIVE_BATCH];
    let mut bufs: Vec<IoSliceMut<'_>> = storage.chunks_mut(slot).map(IoSliceMut::new).collect();
    let mut meta = [RecvMeta::default(); RECEIVE_BATCH];
    loop {
        let mut ready = tokio::select! {
            _ = shutdown.cancelled() => return,
            ready = port.socket.readable() => match ready {
                Ok(ready) => ready,
                Err(error) => {
                    tracing::warn!(%error, "UDP socket failed: WebRTC receive stopped");
                    return;
                }
            },
        };
        let received = ready.try_io(|socket| port.state.recv(socket.get_ref().into(), &mut bufs, &mut meta));
        let count = match received {
            Ok(Ok(count)) => count,
            // Nothing after all: the readiness is cleared, wait again.
            Err(_would_block) => continue,
            Ok(Err(error)) => {
                // ICMP port unreachable from a peer that went away, and the like.
                tracing::debug!(%error, "UDP receive failed");
                continue;
            }
        };
        for (buf, meta) in bufs.iter().zip(&meta).take(count) {
            for datagram in buf[..meta.len].chunks(meta.stride.max(1)) {
                deliver(&router, &metrics, meta.addr, datagram);
            }
        }
    }
}

/// Hands one datagram to its peer, or drops and counts it.
fn deliver(router: &Router, metrics: &Metrics, source: SocketAddr, data: &[u8]) {
    match router.route(source, data) {
        Some(tx) => {
            let datagram = Datagram {
                source,
                data: Bytes::copy_from_slice(data),
            };
            if tx.try_send(datagram).is_err() {
                metrics.webrtc_datagrams_dropped.inc();
            }
        }
        None => {
            metrics.webrtc_datagrams_dropped.inc();
            tracing::debug!(%source, len = data.len(), "datagram for no peer dropped");
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
    use tokio::net::UdpSocket;

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

    /// Receives `n` datagrams on `socket`, their sizes and first bytes.
    async fn receive(socket: &UdpSocket, n: usize) -> Vec<(usize, u8)> {
        let mut buf = [0u8; 2048];
        let mut got = Vec::new();
        for _ in 0..n {
            let wait = tokio::time::timeout(std::time::Duration::from_secs(2), socket.recv_from(&mut buf));
            let (len, _) = wait.await.expect("a datagram in time").unwrap();
            got.push((len, buf[0]));
        }
        got
    }

    #[tokio::test]
    async fn a_pictures_datagrams_go_out_in_one_call_and_arrive_apart() {
        let port = Port::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let (a, b) = (
            UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        );
        let (to_a, to_b) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let mut batch = Batch::default();
        // A picture in three packets to a, the last shorter; then a larger
        // one to a (it cannot follow a short one), then one to b.
        for (dest, len, tag) in [
            (to_a, 1000, 1),
            (to_a, 1000, 2),
            (to_a, 400, 3),
            (to_a, 1100, 4),
            (to_b, 200, 5),
        ] {
            batch.push(&port, dest, &vec![tag; len]);
        }
        batch.flush(&port);
        assert_eq!(receive(&a, 4).await, [(1000, 1), (1000, 2), (400, 3), (1100, 4)]);
        assert_eq!(receive(&b, 1).await, [(200, 5)]);
        let (sends, datagrams) = batch.counts();
        assert_eq!(datagrams, 5);
        let expected_sends = if port.max_segments() > 1 { 3 } else { 5 };
        assert_eq!(sends, expected_sends, "GSO segments: {}", port.max_segments());
        // Nothing left to send.
        batch.flush(&port);
        assert_eq!(batch.counts(), (sends, 5));
    }

    #[tokio::test]
    async fn coalesced_or_not_every_datagram_reaches_its_peer() {
        let port = Arc::new(Port::bind("127.0.0.1:0".parse().unwrap()).await.unwrap());
        let router = Router::default();
        let mut rx = router.add("srv1");
        let metrics = Arc::new(Metrics::default());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(receive_loop(port.clone(), router, metrics.clone(), shutdown.clone()));
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let server = port.local_addr().unwrap();
        client.send_to(&binding_request("srv1:x"), server).await.unwrap();
        // A burst of equal datagrams, which GRO may coalesce on the way in.
        for seq in 0..50u8 {
            client
                .send_to(&[0x80, seq, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], server)
                .await
                .unwrap();
        }
        let first = rx.recv().await.unwrap();
        assert_eq!(first.data[0], 0, "STUN first");
        for seq in 0..50u8 {
            let datagram = rx.recv().await.unwrap();
            assert_eq!((datagram.data.len(), datagram.data[1]), (12, seq));
        }
        shutdown.cancel();
        task.await.unwrap();
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

    #[tokio::test]
    async fn a_restarted_peer_is_reached_by_its_new_ufrag_until_it_is_removed() {
        let router = Router::default();
        let mut rx = router.add("srv1");
        assert!(router.alias("srv1", "srv0"));
        assert!(router.alias("srv1", "srv2"));
        assert!(!router.alias("nobody", "srv3"));
        assert_eq!(router.len(), 1, "one peer");
        assert_eq!(router.lock().by_ufrag.len(), 2, "its first ufrag and its latest");
        assert!(router
            .route("127.0.0.1:6001".parse().unwrap(), &binding_request("srv0:y"))
            .is_none());
        let moved: SocketAddr = "127.0.0.1:6000".parse().unwrap();
        let tx = router.route(moved, &binding_request("srv2:y")).unwrap();
        tx.try_send(Datagram {
            source: moved,
            data: Bytes::from_static(b"x"),
        })
        .unwrap();
        assert_eq!(rx.try_recv().unwrap().source, moved);
        assert!(router.route(moved, &[0x80, 0, 0, 0]).is_some(), "its new address");
        router.remove("srv1");
        assert!(router.route(moved, &binding_request("srv2:y")).is_none());
        assert!(router.route(moved, &[0x80, 0, 0, 0]).is_none());
        assert!(router.is_empty());
    }
}
