//! Counting SRTP without decrypting it: what a light bench player keeps.
//!
//! SRTP encrypts an RTP packet's payload, not its header (RFC 3711 §3.1), so
//! the SSRC and sequence number of every packet are readable on the wire.
//! That is enough to count packets, bytes and losses per sender stream the
//! way an RTCP receiver report does (RFC 3550 §6.4.1 and A.3: expected is
//! the extended highest sequence number minus the first, plus one; lost is
//! expected minus received), for a fraction of the cost of decrypting.

use serde::Serialize;

/// Sender streams tracked; more are counted as packets but not for loss.
const MAX_STREAMS: usize = 8;

/// Whether a datagram is RTP (not STUN, DTLS, or RTCP): version 2, and
/// not a payload type in RTCP's range (RFC 5761 §4).
pub fn is_rtp(datagram: &[u8]) -> bool {
    datagram.len() >= 12 && datagram[0] >> 6 == 2 && !(64..=95).contains(&(datagram[1] & 0x7f))
}

/// The counts, summed over the sender streams.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RtpTotals {
    /// RTP packets received.
    pub packets: u64,
    /// Their bytes, headers and SRTP tags included (UDP payload).
    pub bytes: u64,
    /// Packets the sequence numbers say were sent and did not arrive (a
    /// duplicate or a late packet makes up for one).
    pub lost: u64,
    /// Sender streams (SSRCs) seen.
    pub streams: usize,
}

impl RtpTotals {
    /// What was counted since `earlier`, a snapshot of the same counter.
    pub fn since(&self, earlier: &RtpTotals) -> RtpTotals {
        RtpTotals {
            packets: self.packets.saturating_sub(earlier.packets),
            bytes: self.bytes.saturating_sub(earlier.bytes),
            lost: self.lost.saturating_sub(earlier.lost),
            streams: self.streams,
        }
    }

    /// Adds `other` in (for sums over players).
    pub fn add(&mut self, other: &RtpTotals) {
        self.packets += other.packets;
        self.bytes += other.bytes;
        self.lost += other.lost;
        self.streams += other.streams;
    }
}

#[derive(Debug, Clone, Copy)]
struct Stream {
    ssrc: u32,
    /// The first extended sequence number.
    base: u64,
    /// The highest extended sequence number.
    highest: u64,
    received: u64,
}

impl Stream {
    fn lost(&self) -> u64 {
        (self.highest - self.base + 1).saturating_sub(self.received)
    }
}

/// Counts RTP datagrams (see the module docs). Allocates nothing per packet.
#[derive(Debug, Clone, Default)]
pub struct RtpCounter {
    streams: Vec<Stream>,
    packets: u64,
    bytes: u64,
}

impl RtpCounter {
    /// Counts `datagram` if it is RTP; `false` (and nothing counted) otherwise.
    pub fn count(&mut self, datagram: &[u8]) -> bool {
        if !is_rtp(datagram) {
            return false;
        }
        self.packets += 1;
        self.bytes += datagram.len() as u64;
        let seq = u16::from_be_bytes([datagram[2], datagram[3]]);
        let ssrc = u32::from_be_bytes([datagram[8], datagram[9], datagram[10], datagram[11]]);
        match self.streams.iter().position(|s| s.ssrc == ssrc) {
            Some(index) => {
                let stream = &mut self.streams[index];
                // The extended number nearest the highest seen (RFC 3550 A.1's
                // wrap handling, without its probation).
                let cycle = stream.highest & !0xffff;
                let candidates = [cycle.wrapping_sub(0x1_0000), cycle, cycle + 0x1_0000];
                let extended = candidates
                    .iter()
                    .map(|c| c.wrapping_add(u64::from(seq)))
                    .min_by_key(|e| e.abs_diff(stream.highest))
                    .unwrap_or(stream.highest);
                // A packet from before the first one is expected too.
                stream.base = stream.base.min(extended);
                stream.highest = stream.highest.max(extended);
                stream.received += 1;
            }
            None if self.streams.len() < MAX_STREAMS => {
                // Start a cycle up, so a packet from just before the first
                // one still has a number at or above the base.
                let first = 0x1_0000 + u64::from(seq);
                self.streams.push(Stream {
                    ssrc,
                    base: first,
                    highest: first,
                    received: 1,
                });
            }
            None => {}
        }
        true
    }

    /// The counts so far.
    pub fn totals(&self) -> RtpTotals {
        RtpTotals {
            packets: self.packets,
            bytes: self.bytes,
            lost: self.streams.iter().map(Stream::lost).sum(),
            streams: self.streams.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(ssrc: u32, seq: u16, len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[0] = 0x80;
        p[1] = 96;
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p[8..12].copy_from_slice(&ssrc.to_be_bytes());
        p
    }

    #[test]
    fn stun_dtls_and_rtcp_are_not_counted() {
        let mut counter = RtpCounter::default();
        let stun = [0u8, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42, 0, 0, 0, 0];
        let dtls = [22u8, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let mut rtcp = packet(1, 0, 28);
        rtcp[1] = 200; // sender report
        for datagram in [&stun[..], &dtls[..], &rtcp[..], &[0x80, 96][..]] {
            assert!(!counter.count(datagram));
        }
        assert_eq!(counter.totals(), RtpTotals::default());
    }

    #[test]
    fn gaps_are_lost_until_a_late_packet_fills_them() {
        let mut counter = RtpCounter::default();
        for seq in [10u16, 11, 12, 15, 16] {
            assert!(counter.count(&packet(7, seq, 100)));
        }
        let totals = counter.totals();
        assert_eq!(
            (totals.packets, totals.bytes, totals.lost, totals.streams),
            (5, 500, 2, 1)
        );
        counter.count(&packet(7, 13, 100));
        assert_eq!(counter.totals().lost, 1);
        // A packet from before the first one counts it as expected too.
        counter.count(&packet(7, 9, 100));
        assert_eq!(counter.totals().lost, 1);
    }

    #[test]
    fn the_sequence_wraps_and_streams_are_apart() {
        let mut counter = RtpCounter::default();
        for seq in [65_534u16, 65_535, 0, 2] {
            counter.count(&packet(1, seq, 50));
        }
        for seq in [100u16, 101] {
            counter.count(&packet(2, seq, 50));
        }
        let totals = counter.totals();
        assert_eq!((totals.packets, totals.lost, totals.streams), (6, 1, 2));
        let later = {
            counter.count(&packet(2, 103, 50));
            counter.totals()
        };
        assert_eq!(
            later.since(&totals),
            RtpTotals {
                packets: 1,
                bytes: 50,
                lost: 1,
                streams: 2
            }
        );
    }
}
