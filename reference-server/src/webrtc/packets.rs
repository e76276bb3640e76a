//! RTP payloads made once per stream and shared by all its WebRTC players.
//!
//! Every player of a stream sends the same pictures and sounds; only the
//! RTP header (sequence number, time, SSRC) and the SRTP keys are its own.
//! So a frame is cut into RTP payloads by the first player that sends it,
//! and the other players take the same payloads (`Arc<[u8]>`, which str0m
//! keeps as they are in its queue and in its history for NACKs): nothing is
//! copied or packetized per player.
//!
//! A frame is known by its bytes: every player's [`Frame`](crate::hub::Frame)
//! shares the publisher's buffer, and an entry keeps that buffer alive, so
//! no other frame can be at the same address while the entry is there (an
//! empty frame has no address of its own, and is never remembered).
//!
//! The recent frames are also where a player finds a video packet again to
//! answer a NACK: each is numbered, and a player's resend history holds
//! numbers, not references, so that sending a packet touches no count the
//! stream's other players share.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use media::h264::AvcConfig;

/// The largest RTP payload sent: with the RTP header, its extensions and
/// the SRTP tag, a datagram stays under 1200 bytes, which every path that
/// carries WebRTC carries.
pub const MAX_PAYLOAD: usize = 1100;

/// Frames (pictures and sounds) remembered per stream: enough for players
/// a few frames behind the others, and for resends within
/// `webrtc.resend_window` (a second by default: 75 frames at 25 pictures
/// and 50 sounds a second; this holds two seconds at 60 pictures). The
/// older frames a late joiner or a keyframe request starts with are cut
/// again (a few microseconds each).
pub const RECENT: usize = 256;

/// One RTP payload and whether it ends its frame (the RTP marker bit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// The payload, shared by every player that sends it.
    pub payload: Arc<[u8]>,
    /// The last packet of a picture.
    pub marker: bool,
}

/// A frame's packets.
pub type Packets = Arc<[Packet]>;

/// A frame's packets, and its number among the stream's recent frames.
#[derive(Debug, Clone)]
pub struct Cut {
    /// Where [`Shared::packet`] finds the packets again while the frame is
    /// recent; `None` for a frame that is not remembered.
    pub number: Option<u64>,
    pub packets: Packets,
}

/// The H.264 access unit `avcc` in RTP payloads (RFC 6184, packetization
/// mode 1), parameter sets in front of its IDR; the marker on the last.
pub fn avc(config: &AvcConfig, avcc: &[u8]) -> Vec<Packet> {
    let mut packets = Vec::new();
    config.rtp_payloads(avcc, MAX_PAYLOAD, |header, body| {
        let mut payload = Vec::with_capacity(header.len() + body.len());
        payload.extend_from_slice(header);
        payload.extend_from_slice(body);
        packets.push(Packet {
            payload: payload.into(),
            marker: false,
        });
    });
    if let Some(last) = packets.last_mut() {
        last.marker = true;
    }
    packets
}

/// A sound frame as one RTP payload (Opus, RFC 7587; G.711, RFC 3551).
pub fn sound(data: &[u8]) -> Vec<Packet> {
    vec![Packet {
        payload: data.into(),
        marker: false,
    }]
}

/// The packets of a stream's recent frames.
#[derive(Debug, Default)]
pub struct Shared {
    recent: Mutex<Recent>,
}

/// The recent frames, oldest first, numbered in turn: the first's number,
/// and each frame's bytes and packets.
#[derive(Debug, Default)]
struct Recent {
    first: u64,
    frames: VecDeque<(Bytes, Packets)>,
}

impl Recent {
    fn find(&self, frame: &Bytes) -> Option<Cut> {
        let same = |(bytes, _): &(Bytes, Packets)| bytes.as_ptr() == frame.as_ptr() && bytes.len() == frame.len();
        let at = self.frames.iter().rposition(same)?;
        Some(Cut {
            number: Some(self.first + at as u64),
            packets: self.frames[at].1.clone(),
        })
    }
}

impl Shared {
    /// The packets of `frame` (the codec's bytes, a slice of the frame's
    /// shared buffer): made by `make` if no player made them yet.
    pub fn get_or_make(&self, frame: &Bytes, make: impl FnOnce() -> Vec<Packet>) -> Cut {
        if frame.is_empty() {
            return Cut {
                number: None,
                packets: make().into(),
            };
        }
        if let Some(cut) = self.lock().find(frame) {
            return cut;
        }
        // Cut with the lock released: the stream's other players go on.
        let packets: Packets = make().into();
        let mut recent = self.lock();
        if let Some(made) = recent.find(frame) {
            // Another player cut it meanwhile: its payloads, so that only
            // one copy is kept.
            return made;
        }
        if recent.frames.len() == RECENT {
            recent.frames.pop_front();
            recent.first += 1;
        }
        recent.frames.push_back((frame.clone(), packets.clone()));
        Cut {
            number: Some(recent.first + recent.frames.len() as u64 - 1),
            packets,
        }
    }

    /// Packet `n` of the frame numbered `number`, while that frame is recent.
    pub fn packet(&self, number: u64, n: usize) -> Option<Packet> {
        let recent = self.lock();
        let at = number.checked_sub(recent.first)?;
        let (_, packets) = recent.frames.get(usize::try_from(at).ok()?)?;
        packets.get(n).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Each played stream's [`Shared`], while it has players.
#[derive(Debug, Default)]
pub struct Registry {
    streams: Mutex<HashMap<(String, String), Weak<Shared>>>,
}

impl Registry {
    /// The packets shared by the players of `stream` in `app`.
    pub fn of(&self, app: &str, stream: &str) -> Arc<Shared> {
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        let key = (app.to_string(), stream.to_string());
        if let Some(shared) = streams.get(&key).and_then(Weak::upgrade) {
            return shared;
        }
        // Streams no player plays any more are forgotten here, so the map
        // holds at most the played streams and the one being added.
        streams.retain(|_, shared| shared.strong_count() > 0);
        let shared = Arc::new(Shared::default());
        streams.insert(key, Arc::downgrade(&shared));
        shared
    }

    /// How many streams are remembered (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.streams.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_packetized_once_for_every_player() {
        let shared = Shared::default();
        let buffer = Bytes::from_static(b"\x17\x01\0\0\0opus-ish");
        let frame = buffer.slice(5..);
        let mut made = 0;
        let first = shared.get_or_make(&frame, || {
            made += 1;
            sound(&frame)
        });
        let second = shared.get_or_make(&buffer.slice(5..), || {
            made += 1;
            sound(&frame)
        });
        assert_eq!(made, 1);
        assert!(
            Arc::ptr_eq(&first.packets[0].payload, &second.packets[0].payload),
            "one payload, shared"
        );
        assert_eq!((first.number, second.number), (Some(0), Some(0)));
        // Another slice of the same buffer is another frame.
        let other = shared.get_or_make(&buffer.slice(4..), || sound(b"x"));
        assert_eq!(&other.packets[0].payload[..], b"x");
        assert_eq!(other.number, Some(1));
    }

    #[test]
    fn empty_frames_are_not_remembered() {
        let shared = Shared::default();
        shared.get_or_make(&Bytes::new(), || sound(b""));
        let video = shared.get_or_make(&Bytes::new(), Vec::new);
        assert!(video.packets.is_empty(), "not the sound's packet");
        assert_eq!(video.number, None);
        assert!(shared.recent.lock().unwrap().frames.is_empty());
    }

    #[test]
    fn only_recent_frames_are_kept() {
        let shared = Shared::default();
        let frames: Vec<Bytes> = (0..RECENT + 1).map(|i| Bytes::from(vec![i as u8; 3])).collect();
        for frame in &frames {
            shared.get_or_make(frame, || sound(frame));
        }
        assert_eq!(shared.recent.lock().unwrap().frames.len(), RECENT);
        assert_eq!(shared.packet(0, 0), None, "the oldest was forgotten");
        assert_eq!(shared.packet(1, 0).map(|p| p.payload[0]), Some(1));
        let last = RECENT as u64;
        assert_eq!(shared.packet(last, 0).map(|p| p.payload[0]), Some(last as u8));
        assert_eq!(shared.packet(last, 1), None, "a sound is one packet");
        assert_eq!(shared.packet(last + 1, 0), None, "not made yet");
        let mut made = false;
        let again = shared.get_or_make(&frames[0], || {
            made = true;
            sound(&frames[0])
        });
        assert!(made, "the oldest was forgotten");
        assert_eq!(again.number, Some(last + 1), "and is numbered anew");
    }

    #[test]
    fn a_stream_is_forgotten_when_its_last_player_goes() {
        let registry = Registry::default();
        let a = registry.of("live", "a");
        assert!(Arc::ptr_eq(&a, &registry.of("live", "a")));
        drop(a);
        let _b = registry.of("live", "b");
        assert_eq!(registry.len(), 1);
    }

    #[test]
    fn a_picture_ends_with_the_marker() {
        let config = AvcConfig::from_parameter_sets(&[0x67, 0x42, 0xC0, 0x1E], &[0x68, 0xCE]).unwrap();
        let unit: Vec<u8> = std::iter::once(0x41).chain(std::iter::repeat_n(7, 3000)).collect();
        let mut avcc = (unit.len() as u32).to_be_bytes().to_vec();
        avcc.extend(&unit);
        let packets = avc(&config, &avcc);
        assert_eq!(packets.len(), 3);
        assert!(packets.iter().all(|p| p.payload.len() <= MAX_PAYLOAD));
        let markers: Vec<bool> = packets.iter().map(|p| p.marker).collect();
        assert_eq!(markers, vec![false, false, true]);
    }
}
