//! A player's own RTP send path, sans-IO: RTP packets made from the
//! stream's shared payloads and protected here (SRTP with AES-GCM,
//! [`super::srtp`]), sender reports, and resends on the peer's NACKs.
//!
//! Why: str0m sends a packet through a per-session queue, a pacer, a
//! resend cache holding a parsed copy of every header, and a datagram
//! allocated per packet; for a viewer of a shared stream that was most of
//! its cost, and its resend cache most of its memory. This path writes the
//! header and seals the payload into one buffer, and remembers a frame sent
//! by its number among the stream's recent frames ([`super::packets`]),
//! where a resend finds its payload again. str0m still runs ICE, DTLS, the
//! SDP and the peer's RTCP (a PLI becomes its keyframe request); it sends
//! nothing on the SSRCs this path sends on ([`Sender::owns`] lets the shell
//! drop anything it would, so no SRTP nonce is used twice).
//!
//! The RTP (RFC 3550): version 2, the session's payload type, the
//! player's sequence numbers and timestamps, the negotiated MID header
//! extension (RFC 8843 §15) in the one-byte form (RFC 8285 §4.2). Sender
//! reports (RFC 3550 §6.4.1) go with an SDES CNAME (§6.5.1, the one the SDP
//! announced) about once a second per track while it sends. A NACK
//! (RFC 4585 §6.2.1) for a video packet sent within the resend window is
//! answered with the packet again: in the m-line's retransmission stream
//! when it negotiated one (RFC 4588 §4: its own SSRC and sequence numbers,
//! the payload type paired with the original's, the original sequence
//! number in front of the payload), else as it was, while resends take at
//! most 15 % of the video bytes sent. Sound is not resent.

use std::cell::Cell;
use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::packets::{self, Packet};
use super::srtp::{OpenRtcp, Protect, SessionKeys, TAG_LEN};

thread_local! {
    /// What the players written on this thread seal into, each in turn:
    /// warm in the cache, where buffers of each player's own would not be.
    static BUFFER: Cell<Sealed> = const { Cell::new(Sealed { bytes: Vec::new(), ends: Vec::new() }) };
}

/// Datagrams made and not yet taken: their bytes, and where each ends.
#[derive(Debug, Default)]
struct Sealed {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Sealed {
    /// Itself, once it holds the thread's [`BUFFER`] (taken by the first
    /// datagram since the last [`Sender::drain`]).
    fn taken(&mut self) -> &mut Sealed {
        if self.bytes.capacity() == 0 {
            *self = BUFFER.take();
        }
        self
    }
}

/// The longest RTP header written: 12 bytes, and a one-byte extension
/// header of 4 with a 16-byte MID in 5 words.
const MAX_HEADER: usize = 12 + 4 + 20;

/// Seconds from the NTP era (1900) to the Unix epoch.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
/// How often each track's sender report goes.
const REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// The SRTCP index of the first report of a track. str0m numbers the
/// session's SRTCP from 0 with one counter (its packets are not sent beside
/// this path's, but any it sent before this path began must never meet
/// ours): at one report a second, ours would take 34 years to wrap.
const SRTCP_INDEX_START: u32 = 1 << 30;
/// Video packets kept for resending at most, whatever the settings say.
const MAX_KEPT: usize = 4096;
/// The share of the video bytes sent that resends may add (str0m's cap
/// too): a peer NACKing everything gets no more.
const RESEND_SHARE_PERCENT: usize = 15;
/// Resend bytes saved up at most: a burst of losses after a quiet spell is
/// answered, up to about 50 full packets.
const RESEND_BUDGET_MAX: usize = 64 * 1024;
/// Resend bytes a player starts with: the losses in its first keyframe are
/// answered too.
const RESEND_BUDGET_START: usize = 16 * 1024;
/// Resends answered for one NACK packet at most.
const MAX_RESENDS_PER_NACK: usize = 64;

/// The media kinds a player sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Sound.
    Audio,
    /// Pictures.
    Video,
}

/// What the shell tells a track's packets.
#[derive(Debug, Clone)]
pub struct Track {
    /// Its SSRC (str0m's, announced in the SDP).
    pub ssrc: u32,
    /// The negotiated MID extension's id, and the MID.
    pub mid_ext: Option<(u8, [u8; 16], usize)>,
    /// Its RTP clock rate.
    pub clock_rate: u32,
    /// Its retransmission stream's SSRC, and the payload type each payload
    /// type is resent with (RFC 4588 `apt`), if negotiated.
    pub rtx: Option<(u32, Vec<(u8, u8)>)>,
}

/// One frame's packets for [`Sender::write`].
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Its payload type.
    pub pt: u8,
    /// The 48-bit SRTP index (rollover counter, then sequence number) of
    /// its first packet; the others follow.
    pub first: u64,
    /// Its RTP timestamp.
    pub time: u32,
    /// When, on the server's clock, its sampling instant falls.
    pub wallclock: Instant,
    /// Its number among the stream's recent frames, where a resend finds
    /// it ([`packets::Cut::number`]); a frame without one is not resent.
    pub number: Option<u64>,
    /// Its packets (their payloads shared by the stream's players).
    pub packets: &'a [Packet],
}

#[derive(Debug)]
struct TrackState {
    kind: Kind,
    track: Track,
    packets: u32,
    octets: u32,
    /// The RTP time and wallclock of the last packet: what a report extrapolates from.
    last: Option<(u32, Instant)>,
    next_report: Option<Instant>,
    srtcp_index: u32,
    /// The retransmission stream's last extended sequence number.
    rtx_index: u64,
}

/// Video packets kept for resending: `count` packets of the stream's
/// recent frame `number` from its packet `from` on, the first of them sent
/// with SRTP index `index`.
#[derive(Debug, Clone, Copy)]
struct Sent {
    index: u64,
    number: u64,
    from: usize,
    count: usize,
    pt: u8,
    time: u32,
    at: Instant,
}

/// A player's send path (see the module docs).
#[derive(Debug)]
pub struct Sender {
    protect: Protect,
    open: OpenRtcp,
    tracks: Vec<TrackState>,
    cname: Vec<u8>,
    /// Recent video packets, oldest first: `kept` of them, `keep` at most.
    sent: VecDeque<Sent>,
    kept: usize,
    keep: usize,
    resend_window: Duration,
    /// Bytes resends may still take (see [`RESEND_SHARE_PERCENT`]).
    resend_budget: usize,
    /// Quirks: no sender reports, no resends.
    withhold_reports: bool,
    withhold_resends: bool,
    /// Datagrams made and not yet taken (the thread's [`BUFFER`] while
    /// there are some).
    out: Sealed,
    /// Scratch for a report, an opened RTCP packet.
    scratch: Vec<u8>,
    /// Wallclock to NTP: an `Instant` and the Unix time it was.
    epoch: (Instant, Duration),
    /// Counts, for metrics and tests: packets resent, resends refused
    /// (beyond the share resends may take).
    pub resent: u64,
    pub refused: u64,
    /// Sender reports sent.
    pub reports: u64,
}

/// How a sender is set up.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The CNAME the SDP announced for the session's tracks.
    pub cname: String,
    /// How many video packets are kept for resending, at most.
    pub resend_packets: usize,
    /// How long one is kept.
    pub resend_window: Duration,
    /// Quirk: send no sender reports.
    pub withhold_reports: bool,
    /// Quirk: answer no NACK.
    pub withhold_resends: bool,
}

impl Sender {
    /// Asks for the lines a packet's send reads of the sender at `at`,
    /// its key among them (see [`crate::prefetch`]).
    pub fn prefetch_at(at: usize) {
        use std::mem::offset_of;
        Protect::prefetch_at(at + offset_of!(Sender, protect));
        crate::prefetch::fields(
            at,
            [
                offset_of!(Sender, tracks),
                offset_of!(Sender, sent),
                offset_of!(Sender, out),
                offset_of!(Sender, epoch),
                offset_of!(Sender, kept),
            ],
        );
    }

    /// Asks for the SRTP key ahead of the seals ([`Protect::prefetch`]).
    pub fn prefetch_key(&self) {
        self.protect.prefetch();
    }

    /// A send path protecting with `keys`.
    pub fn new(keys: &SessionKeys, settings: Settings, now: Instant) -> Sender {
        let unix = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Sender {
            protect: keys.local.protect(),
            open: keys.remote.open_rtcp(),
            tracks: Vec::with_capacity(2),
            cname: settings.cname.into_bytes(),
            sent: VecDeque::new(),
            kept: 0,
            keep: settings.resend_packets.min(MAX_KEPT),
            resend_budget: RESEND_BUDGET_START,
            resend_window: settings.resend_window,
            withhold_reports: settings.withhold_reports,
            withhold_resends: settings.withhold_resends || settings.resend_packets == 0,
            out: Sealed::default(),
            scratch: Vec::with_capacity(64),
            epoch: (now, unix),
            resent: 0,
            refused: 0,
            reports: 0,
        }
    }

    /// Whether this path sends on `ssrc` (str0m must not).
    pub fn owns(&self, ssrc: u32) -> bool {
        (self.tracks.iter()).any(|t| t.track.ssrc == ssrc || t.track.rtx.as_ref().is_some_and(|(rtx, _)| *rtx == ssrc))
    }

    /// Sends `kind` as `track` from now on.
    pub fn track(&mut self, kind: Kind, track: Track) {
        match self.tracks.iter_mut().find(|t| t.kind == kind) {
            Some(state) if state.track.ssrc == track.ssrc => state.track = track,
            Some(state) => {
                *state = TrackState::new(kind, track);
            }
            None => self.tracks.push(TrackState::new(kind, track)),
        }
    }

    /// The clock rate of the `kind` track's payload type being written.
    pub fn set_clock_rate(&mut self, kind: Kind, clock_rate: u32) {
        if let Some(state) = self.tracks.iter_mut().find(|t| t.kind == kind) {
            state.track.clock_rate = clock_rate;
        }
    }

    /// Makes the datagrams of `frame` on the `kind` track, and a sender
    /// report first if one is due; `false` if the track is not declared.
    pub fn write(&mut self, kind: Kind, frame: Frame<'_>, now: Instant) -> bool {
        let Some(position) = self.tracks.iter().position(|t| t.kind == kind) else {
            return false;
        };
        if !self.withhold_reports && self.tracks[position].next_report.is_some_and(|at| now >= at) {
            self.report(position, now);
        }
        let state = &mut self.tracks[position];
        let bytes: usize = frame.packets.iter().map(|p| p.payload.len()).sum();
        state.packets = state.packets.wrapping_add(frame.packets.len() as u32);
        state.octets = state.octets.wrapping_add(bytes as u32);
        state.last = Some((frame.time, frame.wallclock));
        state.next_report.get_or_insert(now + REPORT_INTERVAL);
        let (ssrc, mid_ext) = (state.track.ssrc, state.track.mid_ext);
        for (index, packet) in (frame.first..).zip(frame.packets) {
            let header = Header {
                ssrc,
                mid_ext,
                pt: frame.pt,
                index,
                time: frame.time,
                marker: packet.marker,
            };
            self.seal(header, &[], &packet.payload);
        }
        if kind == Kind::Video && !self.withhold_resends {
            let earned = bytes * RESEND_SHARE_PERCENT / 100;
            self.resend_budget = (self.resend_budget + earned).min(RESEND_BUDGET_MAX);
            if let Some(number) = frame.number.filter(|_| !frame.packets.is_empty()) {
                self.keep(Sent {
                    index: frame.first,
                    number,
                    from: 0,
                    count: frame.packets.len(),
                    pt: frame.pt,
                    time: frame.time,
                    at: now,
                });
            }
        }
        true
    }

    /// Remembers `sent`, and forgets the oldest packets beyond `keep`.
    fn keep(&mut self, sent: Sent) {
        self.kept += sent.count;
        self.sent.push_back(sent);
        while self.kept > self.keep {
            let Some(oldest) = self.sent.front_mut() else { break };
            let excess = (self.kept - self.keep).min(oldest.count);
            oldest.index += excess as u64;
            oldest.from += excess;
            oldest.count -= excess;
            self.kept -= excess;
            if oldest.count == 0 {
                self.sent.pop_front();
            }
        }
    }

    /// Writes the RTP header of a packet and seals it, with `prefix` in
    /// front of `payload`, into `out`.
    fn seal(&mut self, packet: Header, prefix: &[u8], payload: &[u8]) {
        let mut header = [0; MAX_HEADER];
        let len = packet.write(&mut header);
        let out = self.out.taken();
        out.bytes.reserve(len + prefix.len() + payload.len() + TAG_LEN);
        self.protect
            .rtp(&header[..len], prefix, payload, packet.index, &mut out.bytes);
        out.ends.push(out.bytes.len());
    }

    /// Sends the `position` track's sender report and CNAME.
    fn report(&mut self, position: usize, now: Instant) {
        let state = &mut self.tracks[position];
        let Some((time, wallclock)) = state.last else { return };
        state.next_report = Some(now + REPORT_INTERVAL);
        let ssrc = state.track.ssrc;
        // The RTP time now, from the last packet's, in the track's clock.
        let elapsed = now.saturating_duration_since(wallclock).as_nanos() as i128
            - wallclock.saturating_duration_since(now).as_nanos() as i128;
        let rtp = time.wrapping_add((elapsed * i128::from(state.track.clock_rate) / 1_000_000_000) as i32 as u32);
        let unix = self.epoch.1 + now.saturating_duration_since(self.epoch.0);
        let seconds = (unix.as_secs() + NTP_UNIX_OFFSET) as u32;
        let fraction = ((u64::from(unix.subsec_nanos()) << 32) / 1_000_000_000) as u32;
        let (packets, octets) = (state.packets, state.octets);
        state.srtcp_index = state.srtcp_index.wrapping_add(1) & 0x7fff_ffff;
        let index = state.srtcp_index;
        let rtcp = &mut self.scratch;
        rtcp.clear();
        // SR, no report blocks: 28 bytes, length 6 (RFC 3550 §6.4.1).
        rtcp.extend_from_slice(&[0x80, 200, 0, 6]);
        for word in [ssrc, seconds, fraction, rtp, packets, octets] {
            rtcp.extend_from_slice(&word.to_be_bytes());
        }
        // SDES with one chunk: the SSRC, CNAME, the end, padded to words.
        let cname_len = self.cname.len().min(255);
        let chunk = 4 + 2 + cname_len + 1;
        let words = chunk.div_ceil(4);
        rtcp.extend_from_slice(&[0x81, 202]);
        rtcp.extend_from_slice(&(words as u16).to_be_bytes());
        rtcp.extend_from_slice(&ssrc.to_be_bytes());
        rtcp.extend_from_slice(&[1, cname_len as u8]);
        rtcp.extend_from_slice(&self.cname[..cname_len]);
        rtcp.resize(rtcp.len() + words * 4 - (chunk - 1), 0);
        let out = self.out.taken();
        self.protect.rtcp(rtcp, index, &mut out.bytes);
        out.ends.push(out.bytes.len());
        self.reports += 1;
    }

    /// Reads an SRTCP datagram from the peer and answers its NACKs for
    /// video with the packets `recent` (the stream's recent frames) still
    /// has (the shell still hands it to str0m); `false` if it did not
    /// open.
    pub fn feedback(&mut self, datagram: &[u8], recent: &packets::Shared, now: Instant) -> bool {
        let mut plain = std::mem::take(&mut self.scratch);
        let opened = self.open.open(datagram, &mut plain);
        if opened && !self.withhold_resends {
            let mut rest = &plain[..];
            while rest.len() >= 4 {
                let words = u16::from_be_bytes([rest[2], rest[3]]) as usize;
                let len = (words + 1) * 4;
                if len > rest.len() {
                    break;
                }
                let (packet, tail) = rest.split_at(len);
                // Generic NACK: transport feedback (205), FMT 1, with the media SSRC.
                if packet[1] == 205 && packet[0] & 0x1f == 1 && packet.len() >= 12 {
                    let media = u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]);
                    self.nack(media, &packet[12..], recent, now);
                }
                rest = tail;
            }
        }
        plain.clear();
        self.scratch = plain;
        opened
    }

    /// Resends the packets `fci` (pairs of a packet id and a bitmask of the
    /// 16 after it) asks for on `media`.
    fn nack(&mut self, media: u32, fci: &[u8], recent: &packets::Shared, now: Instant) {
        let Some(position) = (self.tracks.iter()).position(|t| t.kind == Kind::Video && t.track.ssrc == media) else {
            return;
        };
        let mut wanted = Vec::new();
        for pair in fci.chunks_exact(4) {
            let pid = u16::from_be_bytes([pair[0], pair[1]]);
            let mask = u16::from_be_bytes([pair[2], pair[3]]);
            wanted.push(pid);
            wanted.extend(
                (0..16)
                    .filter(|bit| mask & (1 << bit) != 0)
                    .map(|bit| pid.wrapping_add(bit + 1)),
            );
        }
        for seq in wanted.into_iter().take(MAX_RESENDS_PER_NACK) {
            let window = self.resend_window;
            let found = (self.sent.iter().rev())
                .take_while(|sent| now.saturating_duration_since(sent.at) <= window)
                .find_map(|sent| {
                    let n = usize::from(seq.wrapping_sub(sent.index as u16));
                    (n < sent.count).then_some((*sent, sent.index + n as u64, sent.from + n))
                });
            let Some((sent, index, n)) = found else { continue };
            let Some(packet) = recent.packet(sent.number, n) else {
                continue;
            };
            let Some(budget) = self.resend_budget.checked_sub(packet.payload.len()) else {
                self.refused += 1;
                continue;
            };
            self.resend_budget = budget;
            let state = &mut self.tracks[position];
            let mid_ext = state.track.mid_ext;
            let rtx = (state.track.rtx.as_ref())
                .and_then(|(ssrc, pts)| pts.iter().find(|(pt, _)| *pt == sent.pt).map(|(_, rtx)| (*ssrc, *rtx)));
            let original = Header {
                ssrc: media,
                mid_ext,
                pt: sent.pt,
                index,
                time: sent.time,
                marker: packet.marker,
            };
            match rtx {
                Some((ssrc, pt)) => {
                    state.rtx_index += 1;
                    let header = Header {
                        ssrc,
                        pt,
                        index: state.rtx_index,
                        ..original
                    };
                    self.seal(header, &(index as u16).to_be_bytes(), &packet.payload);
                }
                None => self.seal(original, &[], &packet.payload),
            }
            self.resent += 1;
        }
    }

    /// Hands each datagram made since the last call to `send`, in order.
    pub fn drain(&mut self, mut send: impl FnMut(&[u8])) {
        let mut start = 0;
        for &end in &self.out.ends {
            send(&self.out.bytes[start..end]);
            start = end;
        }
        self.out.bytes.clear();
        self.out.ends.clear();
        // A keyframe's packets need tens of kilobytes: one buffer per
        // thread holds them, not one per player.
        if self.out.bytes.capacity() > 0 {
            BUFFER.set(std::mem::take(&mut self.out));
        }
    }
}

/// An RTP header to write.
#[derive(Debug, Clone, Copy)]
struct Header {
    ssrc: u32,
    mid_ext: Option<(u8, [u8; 16], usize)>,
    pt: u8,
    index: u64,
    time: u32,
    marker: bool,
}

impl Header {
    /// Writes the header into `buf`; its length.
    fn write(&self, buf: &mut [u8; MAX_HEADER]) -> usize {
        let extension = self.mid_ext.is_some();
        buf[0] = 0x80 | if extension { 0x10 } else { 0 };
        buf[1] = self.pt & 0x7f | if self.marker { 0x80 } else { 0 };
        buf[2..4].copy_from_slice(&(self.index as u16).to_be_bytes());
        buf[4..8].copy_from_slice(&self.time.to_be_bytes());
        buf[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        let Some((id, mid, len)) = &self.mid_ext else {
            return 12;
        };
        // One element: id and length - 1, then the MID, padded to words.
        let words = (1 + len).div_ceil(4);
        buf[12..14].copy_from_slice(&[0xBE, 0xDE]);
        buf[14..16].copy_from_slice(&(words as u16).to_be_bytes());
        buf[16] = id << 4 | (*len as u8 - 1);
        buf[17..17 + len].copy_from_slice(&mid[..*len]);
        let end = 16 + words * 4;
        buf[17 + len..end].fill(0);
        end
    }
}

impl TrackState {
    fn new(kind: Kind, track: Track) -> TrackState {
        TrackState {
            kind,
            track,
            packets: 0,
            octets: 0,
            last: None,
            next_report: None,
            srtcp_index: SRTCP_INDEX_START,
            // Random below 2^15, as the media's (RFC 3550 §5.1).
            rtx_index: u64::from(rand::random::<u16>() >> 1),
        }
    }
}

/// The SSRC of an RTP or RTCP datagram in the clear (SRTP leaves the
/// header, SRTCP the first header and its SSRC, unencrypted); `None` for
/// anything else (STUN, DTLS).
pub fn ssrc_of(datagram: &[u8]) -> Option<u32> {
    if datagram.len() < 12 || datagram[0] >> 6 != 2 {
        return None;
    }
    let at = match datagram[1] & 0x7f {
        // RTCP (RFC 5761 §4): the sender's SSRC.
        64..=95 => 4,
        _ => 8,
    };
    Some(u32::from_be_bytes([
        datagram[at],
        datagram[at + 1],
        datagram[at + 2],
        datagram[at + 3],
    ]))
}

/// Whether a datagram is RTCP (RFC 5761 §4).
pub fn is_rtcp(datagram: &[u8]) -> bool {
    datagram.len() >= 8 && datagram[0] >> 6 == 2 && (64..=95).contains(&(datagram[1] & 0x7f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webrtc::srtp::{Master, Profile};
    use bytes::Bytes;

    fn keys() -> SessionKeys {
        let ours = Master::new(Profile::AeadAes128Gcm, &[1; 16], &[2; 12]).unwrap();
        let theirs = Master::new(Profile::AeadAes128Gcm, &[3; 16], &[4; 12]).unwrap();
        SessionKeys {
            local: ours,
            remote: theirs,
        }
    }

    fn settings() -> Settings {
        Settings {
            cname: "abc".into(),
            resend_packets: 4,
            resend_window: Duration::from_secs(1),
            withhold_reports: false,
            withhold_resends: false,
        }
    }

    fn mid(m: &str) -> Option<(u8, [u8; 16], usize)> {
        let mut bytes = [0; 16];
        bytes[..m.len()].copy_from_slice(m.as_bytes());
        Some((4, bytes, m.len()))
    }

    /// A sender with a video track of SSRC 9 (and `rtx`).
    fn video_sender(
        settings: Settings,
        mid_ext: Option<(u8, [u8; 16], usize)>,
        rtx: Option<(u32, Vec<(u8, u8)>)>,
        now: Instant,
    ) -> Sender {
        let mut sender = Sender::new(&keys(), settings, now);
        let track = Track {
            ssrc: 9,
            mid_ext,
            clock_rate: 90_000,
            rtx,
        };
        sender.track(Kind::Video, track);
        sender
    }

    /// A frame of `count` packets of `len` bytes, each byte `fill`, cut
    /// once into `recent` (the marker on its last packet).
    fn cut(recent: &packets::Shared, fill: u8, count: usize, len: usize) -> packets::Cut {
        let bytes = Bytes::from(vec![fill; count * len]);
        recent.get_or_make(&bytes, || {
            (0..count)
                .map(|i| Packet {
                    payload: vec![fill; len].into(),
                    marker: i + 1 == count,
                })
                .collect()
        })
    }

    /// `cut` as a frame of payload type 96 at RTP time `time`, its first
    /// packet with SRTP index `first`.
    fn frame(cut: &packets::Cut, first: u64, time: u32, wallclock: Instant) -> Frame<'_> {
        Frame {
            pt: 96,
            first,
            time,
            wallclock,
            number: cut.number,
            packets: &cut.packets,
        }
    }

    /// The peer's NACK (sender SSRC 1, media SSRC 9) for `pid` and the
    /// packets `mask` names after it, sealed with its keys as `index`.
    fn nack(pid: u16, mask: u16, index: u32) -> Vec<u8> {
        let [p0, p1] = pid.to_be_bytes();
        let [m0, m1] = mask.to_be_bytes();
        let nack = [0x81, 205, 0, 3, 0, 0, 0, 1, 0, 0, 0, 9, p0, p1, m0, m1];
        let mut sealed = Vec::new();
        keys().remote.protect().rtcp(&nack, index, &mut sealed);
        sealed
    }

    #[test]
    fn a_packet_has_the_header_the_extension_and_the_tag() {
        let now = Instant::now();
        let mut sender = Sender::new(&keys(), settings(), now);
        let track = Track {
            ssrc: 0x0102_0304,
            mid_ext: mid("1"),
            clock_rate: 90_000,
            rtx: None,
        };
        sender.track(Kind::Video, track.clone());
        assert!(sender.owns(0x0102_0304));
        let packets = [Packet {
            payload: vec![7u8; 100].into(),
            marker: true,
        }];
        let frame = Frame {
            pt: 102,
            first: 0x1_0005,
            time: 9000,
            wallclock: now,
            number: None,
            packets: &packets,
        };
        assert!(sender.write(Kind::Video, frame, now));
        assert!(!sender.write(Kind::Audio, frame, now), "no audio track");
        let mut datagrams = Vec::new();
        sender.drain(|d| datagrams.push(d.to_vec()));
        assert_eq!(datagrams.len(), 1);
        let d = &datagrams[0];
        assert_eq!(&d[..4], &[0x90, 0x80 | 102, 0x00, 0x05]);
        assert_eq!(&d[4..12], &[0, 0, 0x23, 0x28, 1, 2, 3, 4]);
        // The extension: BEDE, 1 word, id 4 length 1, "1", padding.
        assert_eq!(&d[12..20], &[0xBE, 0xDE, 0, 1, 0x40, b'1', 0, 0]);
        assert_eq!(d.len(), 20 + 100 + TAG_LEN);
        assert_eq!(ssrc_of(d), Some(0x0102_0304));
    }

    #[test]
    fn a_nack_is_answered_with_the_same_packet_and_reports_follow_the_interval() {
        let now = Instant::now();
        let mut sender = video_sender(settings(), None, None, now);
        let recent = packets::Shared::default();
        let mut sent = Vec::new();
        // Two pictures of three packets, 100 to 105: the four kept are 102
        // to 105, the first picture's last packet and the second picture.
        for (fill, first) in [(1, 100), (2, 103)] {
            sender.write(Kind::Video, frame(&cut(&recent, fill, 3, 10), first, 0, now), now);
            sender.drain(|d| sent.push(d.to_vec()));
        }
        assert_eq!(sent.len(), 6);
        // The peer's NACK for 102, 103 and 105 (PID 102, bits 0 and 2).
        assert!(sender.feedback(&nack(102, 0b101, 1), &recent, now));
        let mut resent = Vec::new();
        sender.drain(|d| resent.push(d.to_vec()));
        assert_eq!(
            resent,
            vec![sent[2].clone(), sent[3].clone(), sent[5].clone()],
            "the same bytes again"
        );
        // 100 and 101 fell out of the four kept.
        let sealed = nack(100, 0b1, 2);
        assert!(sender.feedback(&sealed, &recent, now));
        sender.drain(|_| panic!("nothing to resend"));
        assert!(
            !sender.feedback(&sealed[..sealed.len() - 1], &recent, now),
            "a damaged packet does not open"
        );

        // A second later, the next packet goes after a report.
        let later = now + REPORT_INTERVAL;
        sender.write(Kind::Video, frame(&cut(&recent, 3, 1, 10), 106, 90_000, later), later);
        let mut out = Vec::new();
        sender.drain(|d| out.push(d.to_vec()));
        assert_eq!(out.len(), 2);
        assert!(is_rtcp(&out[0]) && !is_rtcp(&out[1]));
        let mut report = Vec::new();
        assert!(keys().local.open_rtcp().open(&out[0], &mut report));
        assert_eq!(&report[..8], &[0x80, 200, 0, 6, 0, 0, 0, 9]);
        // 6 packets of 10 bytes before this report; the RTP time of `later`.
        assert_eq!(&report[16..28], &[0, 1, 0x5f, 0x90, 0, 0, 0, 6, 0, 0, 0, 60]);
        assert_eq!(&report[28..32], &[0x81, 202, 0, 3]);
        assert_eq!(&report[36..41], &[1, 3, b'a', b'b', b'c']);
    }

    #[test]
    fn a_nack_is_answered_in_the_retransmission_stream_when_there_is_one() {
        let now = Instant::now();
        let mut sender = video_sender(settings(), mid("0"), Some((10, vec![(96, 97)])), now);
        assert!(sender.owns(10), "str0m must not send on the retransmission SSRC either");
        let recent = packets::Shared::default();
        let picture = cut(&recent, 5, 1, 20);
        sender.write(Kind::Video, frame(&picture, 0x2_0304, 1234, now), now);
        sender.drain(|_| {});
        assert!(sender.feedback(&nack(0x0304, 0, 1), &recent, now));
        let mut resent = Vec::new();
        sender.drain(|d| resent.push(d.to_vec()));
        assert_eq!(resent.len(), 1);
        let d = &resent[0];
        // PT 97 with the marker, the RTX stream's own sequence number, the
        // original's time, SSRC 10, the MID extension.
        assert_eq!(d[1], 0x80 | 97);
        assert_ne!(&d[2..4], &[0x03, 0x04]);
        assert_eq!(&d[4..12], &[0, 0, 0x04, 0xd2, 0, 0, 0, 10]);
        assert_eq!(d.len(), 20 + 2 + 20 + TAG_LEN, "the original sequence number in front");
        assert_eq!(sender.resent, 1);
    }

    #[test]
    fn resends_take_at_most_their_share_of_what_was_sent() {
        let now = Instant::now();
        let mut settings = settings();
        settings.resend_packets = 100;
        let mut sender = video_sender(settings, None, None, now);
        let recent = packets::Shared::default();
        sender.write(Kind::Video, frame(&cut(&recent, 0, 40, 1000), 0, 0, now), now);
        sender.drain(|_| {});
        // 40 000 bytes sent earn 6 000 bytes of resends, on top of the
        // 16 384 it started with: two NACKs for 17 packets each (a packet
        // and the 16 after it) get 17, then 5.
        for (pid, srtcp_index) in [(0, 1), (20, 2)] {
            assert!(sender.feedback(&nack(pid, 0xffff, srtcp_index), &recent, now));
        }
        assert_eq!((sender.resent, sender.refused), (22, 12));
    }

    /// A video sender that sent one picture of `count` packets of 10
    /// bytes from SRTP index 7, the stream's recent frames, and when.
    fn one_picture_sent(count: usize) -> (Sender, packets::Shared, Instant) {
        let now = Instant::now();
        let mut sender = video_sender(settings(), None, None, now);
        let recent = packets::Shared::default();
        sender.write(Kind::Video, frame(&cut(&recent, 1, count, 10), 7, 0, now), now);
        sender.drain(|_| {});
        (sender, recent, now)
    }

    #[test]
    fn a_frame_the_stream_no_longer_remembers_is_not_resent() {
        let (mut sender, recent, now) = one_picture_sent(1);
        // The stream moves on by its recent frames (none sent to this player).
        let others: Vec<_> = (0..packets::RECENT).map(|_| cut(&recent, 2, 1, 10)).collect();
        assert!(sender.feedback(&nack(7, 0, 1), &recent, now));
        sender.drain(|_| panic!("nothing to resend"));
        assert_eq!(sender.resent, 0);
        drop(others);
    }

    #[test]
    fn nothing_is_resent_after_the_window() {
        let (mut sender, recent, now) = one_picture_sent(2);
        let late = now + Duration::from_millis(1001);
        assert!(sender.feedback(&nack(7, 0b1, 1), &recent, late));
        sender.drain(|_| panic!("nothing to resend"));
        assert!(sender.feedback(&nack(8, 0, 2), &recent, now + Duration::from_secs(1)));
        assert_eq!(sender.resent, 1, "the window's last instant still counts");
    }
}
