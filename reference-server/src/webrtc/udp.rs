//! The one UDP port every WebRTC peer shares.
//!
//! The server is ICE-lite: a peer's first packets are STUN binding requests
//! whose USERNAME starts with the ufrag the server put in that peer's answer.
//! That names the peer; from then on its source address does (DTLS, SRTP and
//! SRTCP carry no ufrag). Datagrams for nobody are dropped and counted.
//!
//! Datagrams go out in batches: the packets of one picture for one peer
//! are the same size but the last, which is what UDP generic segmentation
//! offload (GSO: one send for many datagrams, split by the kernel) takes,
//! so a peer's [`Batch`] makes them one send instead of one each. And a
//! thread that serves many peers in one go (a stream's fan-out, a
//! transcoder's doorbells) [`hold`]s their sends and makes them one
//! `sendmmsg` for up to [`OUTBOX_SENDS`] peers. They come in by
//! `recvmmsg`, split again where the kernel coalesced them (GRO).
//! `quinn-udp` receives, sends what is not held, and falls back to one
//! datagram per call where the kernel cannot do GSO.

use std::cell::RefCell;
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
    /// Why it was not sent, if it was not.
    fn send(&self, destination: SocketAddr, contents: &[u8], segment: Option<usize>) -> std::io::Result<()> {
        let transmit = Transmit {
            destination,
            ecn: None,
            contents,
            segment_size: segment,
            src_ip: None,
        };
        let sent = self.state.try_send(self.socket.get_ref().into(), &transmit);
        if let Err(error) = &sent {
            tracing::debug!(%error, %destination, "UDP send failed");
        }
        sent
    }

    /// Sends `contents` again after a `sendmmsg` refused it: through
    /// quinn-udp, which turns GSO off for later sends if GSO was the
    /// reason, and then, if it was a GSO group refused for something else
    /// than a full buffer, one datagram at a time.
    fn send_again(&self, send: &Outgoing) {
        let destination = send.destination.as_socket().unwrap_or(UNSPECIFIED);
        let Err(error) = self.send(destination, &send.contents, send.segment) else {
            return;
        };
        if let (Some(segment), false) = (send.segment, error.kind() == std::io::ErrorKind::WouldBlock) {
            for datagram in send.contents.chunks(segment) {
                let _ = self.send(destination, datagram, None);
            }
        }
    }

    /// Sends each of `sends` now, without waiting, in as few `sendmmsg`
    /// calls as the kernel takes them. One the kernel refuses (its
    /// destination, GSO the device cannot do, or no room in the socket's
    /// buffer for its size) is sent again alone ([`Port::send_again`]),
    /// and the others still go.
    #[cfg(target_os = "linux")]
    fn send_many(&self, sends: &[Outgoing]) {
        use std::os::fd::AsRawFd;
        debug_assert!(sends.len() <= OUTBOX_SENDS);
        let count = sends.len().min(OUTBOX_SENDS);
        // SAFETY: all-zero `iovec`s, `mmsghdr`s and control buffers are
        // valid values (null pointers, zero lengths).
        let mut iovs: [libc::iovec; OUTBOX_SENDS] = unsafe { std::mem::zeroed() };
        let mut msgs: [libc::mmsghdr; OUTBOX_SENDS] = unsafe { std::mem::zeroed() };
        let mut controls = [Control::default(); OUTBOX_SENDS];
        for (i, send) in sends.iter().take(count).enumerate() {
            iovs[i] = libc::iovec {
                iov_base: send.contents.as_ptr() as *mut libc::c_void,
                iov_len: send.contents.len(),
            };
            let header = &mut msgs[i].msg_hdr;
            header.msg_name = send.destination.as_ptr() as *mut libc::c_void;
            header.msg_namelen = send.destination.len();
            header.msg_iov = &mut iovs[i];
            header.msg_iovlen = 1;
            if let Some(segment) = send.segment {
                controls[i].segment(header, segment);
            }
        }
        let fd = self.socket.get_ref().as_raw_fd();
        let mut at = 0;
        while at < count {
            // SAFETY: `msgs[at..count]` are initialised above; every pointer
            // in them (address, iovec, its bytes, control) lives until the
            // end of this function and is not moved meanwhile.
            let sent = unsafe { libc::sendmmsg(fd, msgs[at..count].as_mut_ptr(), (count - at) as libc::c_uint, 0) };
            if sent > 0 {
                at += sent as usize;
                continue;
            }
            if sent < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            self.send_again(&sends[at]);
            at += 1;
        }
    }

    /// Sends each of `sends` now, one call each.
    #[cfg(not(target_os = "linux"))]
    fn send_many(&self, sends: &[Outgoing]) {
        for send in sends {
            self.send_again(send);
        }
    }
}

/// Where nothing goes (a destination that was not an IP address).
const UNSPECIFIED: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 0));

/// The control message of one send: its GSO segment size (`UDP_SEGMENT`).
#[cfg(target_os = "linux")]
#[derive(Clone, Copy, Default)]
#[repr(C, align(8))]
struct Control([u8; 24]);

#[cfg(target_os = "linux")]
impl Control {
    /// Makes this the control message of `header`: datagrams of `segment` bytes.
    fn segment(&mut self, header: &mut libc::msghdr, segment: usize) {
        const UDP_SEGMENT: libc::c_int = 103; // linux/udp.h
                                              // SAFETY: CMSG_SPACE of a u16 is 24 bytes on 64-bit Linux and 16
                                              // on 32-bit (checked), which the 8-aligned buffer holds; the first
                                              // header of a control buffer that size is at its start.
        unsafe {
            let space = libc::CMSG_SPACE(std::mem::size_of::<u16>() as u32) as usize;
            assert!(space <= self.0.len(), "a control message of {space} bytes");
            header.msg_control = self.0.as_mut_ptr() as *mut libc::c_void;
            header.msg_controllen = space as _;
            let cmsg = libc::CMSG_FIRSTHDR(header);
            (*cmsg).cmsg_level = libc::SOL_UDP;
            (*cmsg).cmsg_type = UDP_SEGMENT;
            (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<u16>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut u16, segment as u16);
        }
    }
}

/// At most this many sends (each one datagram or one GSO group) go in one
/// `sendmmsg`.
pub const OUTBOX_SENDS: usize = 32;

/// The largest buffer a thread keeps for reuse.
const SPARE_BYTES: usize = 16 * 1024;

/// One send an [`Outbox`] holds.
struct Outgoing {
    destination: socket2::SockAddr,
    contents: Vec<u8>,
    segment: Option<usize>,
}

/// A thread's sends, held while it serves many peers ([`hold`]), and its
/// buffers for gathering datagrams in: a batch takes one at its first
/// datagram and gives it back once sent (a peer is drained in one go, so
/// on one thread), so thousands of peers keep a few buffers per thread,
/// not one each, and sending allocates nothing once they have grown to a
/// batch's size.
#[derive(Default)]
struct Outbox {
    holds: usize,
    /// The port of the sends held (one at a time).
    port: Option<Arc<Port>>,
    sends: Vec<Outgoing>,
    spare: Vec<Vec<u8>>,
}

thread_local! {
    static OUTBOX: RefCell<Outbox> = RefCell::new(Outbox::default());
}

impl Outbox {
    fn buffer(&mut self) -> Vec<u8> {
        self.spare.pop().unwrap_or_default()
    }

    /// Keeps `buf` for another batch: one per send the outbox may hold
    /// and one for the batch being gathered, each of at most
    /// [`SPARE_BYTES`] (a keyframe's larger batch gives its buffer up).
    fn give_back(&mut self, mut buf: Vec<u8>) {
        if (1..=SPARE_BYTES).contains(&buf.capacity()) && self.spare.len() < OUTBOX_SENDS + 1 {
            buf.clear();
            self.spare.push(buf);
        }
    }

    /// Sends `contents` now, or holds it for the next `sendmmsg`.
    fn send(&mut self, port: &Arc<Port>, destination: SocketAddr, contents: Vec<u8>, segment: Option<usize>) {
        if self.holds == 0 {
            let _ = port.send(destination, &contents, segment); // lost, as the network might
            self.give_back(contents);
            return;
        }
        if self.port.as_ref().is_some_and(|held| !Arc::ptr_eq(held, port)) {
            self.flush();
        }
        if self.port.is_none() {
            self.port = Some(port.clone());
        }
        self.sends.push(Outgoing {
            destination: destination.into(),
            contents,
            segment,
        });
        if self.sends.len() == OUTBOX_SENDS {
            self.flush();
        }
    }

    fn flush(&mut self) {
        // The port is not kept past its sends: a server shut down closes it.
        let Some(port) = self.port.take() else {
            return;
        };
        // Taken out first: were sending to panic, they would not stay
        // behind for another port.
        let mut sent = std::mem::take(&mut self.sends);
        port.send_many(&sent);
        for send in sent.drain(..) {
            self.give_back(send.contents);
        }
        self.sends = sent;
    }
}

/// Holds the peers' sends on this thread until the last [`Hold`] of it is
/// dropped, [`OUTBOX_SENDS`] have gathered, a send for another port comes
/// or [`send_held`] is called: a thread that serves many peers in one go
/// sends their datagrams with one system call for many peers instead of
/// one each. What a peer's own task sends meanwhile (a resend on a NACK, a
/// sender report) may go out before what is held for it, by at most the
/// held sends: a reordering within what SRTP's replay window and a
/// player's jitter buffer take.
#[must_use = "sends are held only while the guard lives"]
pub struct Hold {
    /// On the thread that holds.
    _here: std::marker::PhantomData<*const ()>,
}

/// Sends what this thread holds now, without ending the hold: before
/// something slower on the thread (an RTMP player's TCP write in the same
/// fan-out), which the WebRTC players served before it need not wait for.
pub fn send_held() {
    OUTBOX.with_borrow_mut(Outbox::flush);
}

/// See [`Hold`].
pub fn hold() -> Hold {
    OUTBOX.with_borrow_mut(|outbox| outbox.holds += 1);
    Hold {
        _here: std::marker::PhantomData,
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        OUTBOX.with_borrow_mut(|outbox| {
            outbox.holds -= 1;
            if outbox.holds == 0 {
                outbox.flush();
            }
        });
    }
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
    /// Sends made (one datagram or one GSO group each), datagrams sent
    /// (for tests).
    sends: u64,
    datagrams: u64,
}

impl Batch {
    /// Adds a datagram, sending what was gathered first if it cannot join.
    pub fn push(&mut self, port: &Arc<Port>, destination: SocketAddr, datagram: &[u8]) {
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
            self.buf = OUTBOX.with_borrow_mut(Outbox::buffer);
        }
        self.buf.extend_from_slice(datagram);
        self.count += 1;
        self.closed = datagram.len() < self.segment;
    }

    /// Sends what was gathered (now, or where the thread [`hold`]s).
    pub fn flush(&mut self, port: &Arc<Port>) {
        let contents = std::mem::take(&mut self.buf);
        match (self.destination, self.count > 0) {
            (Some(destination), true) => {
                let segment = (self.count > 1).then_some(self.segment);
                OUTBOX.with_borrow_mut(|outbox| outbox.send(port, destination, contents, segment));
                self.sends += 1;
                self.datagrams += self.count as u64;
            }
            _ => OUTBOX.with_borrow_mut(|outbox| outbox.give_back(contents)),
        }
        self.count = 0;
        self.closed = false;
    }

    /// Sends and datagrams so far.
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
        let port = Arc::new(Port::bind("127.0.0.1:0".parse().unwrap()).await.unwrap());
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

    /// Whether `socket` has a datagram waiting.
    fn waiting(socket: &UdpSocket) -> bool {
        socket.try_recv_from(&mut [0u8; 2048]).is_ok()
    }

    #[tokio::test]
    async fn held_sends_go_out_together_when_the_hold_ends() {
        let port = Arc::new(Port::bind("127.0.0.1:0".parse().unwrap()).await.unwrap());
        let other = Arc::new(Port::bind("127.0.0.1:0".parse().unwrap()).await.unwrap());
        let (a, b) = (
            UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        );
        let (to_a, to_b) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let (mut batch_a, mut batch_b) = (Batch::default(), Batch::default());
        {
            let _outer = hold();
            let _inner = hold();
            for tag in 1..=3 {
                batch_a.push(&port, to_a, &[tag; 1000]);
            }
            batch_a.flush(&port);
            batch_b.push(&port, to_b, &[4; 300]);
            batch_b.flush(&port);
            drop(_inner);
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            assert!(!waiting(&a) && !waiting(&b), "nothing sent while a hold lasts");
            // A send through another port sends what this one held first.
            let mut batch = Batch::default();
            batch.push(&other, to_b, &[5; 10]);
            batch.flush(&other);
            assert_eq!(receive(&a, 3).await, [(1000, 1), (1000, 2), (1000, 3)]);
            assert_eq!(receive(&b, 1).await, [(300, 4)]);
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            assert!(!waiting(&b), "the other port's send is held");
        }
        assert_eq!(receive(&b, 1).await, [(10, 5)]);
        // Past OUTBOX_SENDS sends, the held ones go without waiting.
        let _hold = hold();
        for tag in 0..OUTBOX_SENDS as u8 {
            batch_a.push(&port, to_a, &[tag; 20]);
            batch_a.flush(&port);
        }
        assert_eq!(receive(&a, OUTBOX_SENDS).await.len(), OUTBOX_SENDS);
        batch_a.push(&port, to_a, &[99; 20]);
        batch_a.flush(&port);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiting(&a), "one more is held");
        drop(_hold);
        assert_eq!(receive(&a, 1).await, [(20, 99)]);
    }

    #[tokio::test]
    async fn a_send_the_kernel_refuses_loses_no_other() {
        let port = Arc::new(Port::bind("127.0.0.1:0".parse().unwrap()).await.unwrap());
        let (a, b) = (
            UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        );
        let nowhere: SocketAddr = "[::1]:9".parse().unwrap(); // IPv6, from an IPv4 socket
        {
            let _hold = hold();
            for (to, tag) in [(a.local_addr().unwrap(), 1), (nowhere, 2), (b.local_addr().unwrap(), 3)] {
                let mut batch = Batch::default();
                batch.push(&port, to, &[tag; 50]);
                batch.flush(&port);
            }
        }
        assert_eq!(receive(&a, 1).await, [(50, 1)]);
        assert_eq!(receive(&b, 1).await, [(50, 3)]);
    }

    /// More segments than the kernel takes in one GSO send (64, or 128
    /// since Linux 6.11): refused, the group goes one datagram at a time.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_gso_group_the_kernel_refuses_goes_one_datagram_at_a_time() {
        let port = Port::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let contents: Vec<u8> = (0..150u8).flat_map(|i| [i; 4]).collect();
        port.send_many(&[Outgoing {
            destination: peer.local_addr().unwrap().into(),
            contents,
            segment: Some(4),
        }]);
        let got = receive(&peer, 150).await;
        assert_eq!(got, (0..150u8).map(|i| (4, i)).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn what_is_held_goes_at_send_held_and_the_hold_goes_on() {
        let port = Arc::new(Port::bind("127.0.0.1:0".parse().unwrap()).await.unwrap());
        let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = peer.local_addr().unwrap();
        let mut batch = Batch::default();
        let _hold = hold();
        batch.push(&port, to, &[1; 30]);
        batch.flush(&port);
        send_held();
        assert_eq!(receive(&peer, 1).await, [(30, 1)]);
        batch.push(&port, to, &[2; 30]);
        batch.flush(&port);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiting(&peer), "held again");
        drop(_hold);
        assert_eq!(receive(&peer, 1).await, [(30, 2)]);
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
