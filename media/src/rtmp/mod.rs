//! RTMP below the application: the chunk stream layer and the messages it carries.
//!
//! The handshake is not here: the reference server uses rml_rtmp's (sound,
//! including Flash Player's digest handshake) and the conformance suite has its
//! own independent client implementation to check servers with.

pub mod chunk;
pub mod control;
pub mod endpoint;
pub mod enhanced;
pub mod message;
pub mod outgoing;
pub mod url;

pub use chunk::{
    ChunkDecoder, ChunkEncoder, ChunkError, ChunkLimits, ChunkSink, ChunkStyle, Continuations, MessageRef, RawMessage,
    ReaderFaults,
};
pub use control::Control;
pub use endpoint::Endpoint;
pub use message::{Command, Data, Message, MessageError, ObjectEncoding, UserControl};
pub use outgoing::Outgoing;

/// Conventional chunk stream ids.
pub mod csid {
    /// Protocol control and user control messages.
    pub const CONTROL: u32 = 2;
    /// Commands on the NetConnection.
    pub const COMMAND: u32 = 3;
    /// Commands and data on a NetStream.
    pub const STREAM_COMMAND: u32 = 5;
    /// Audio.
    pub const AUDIO: u32 = 6;
    /// Video.
    pub const VIDEO: u32 = 7;
}

/// Whether RTMP timestamp `a` comes before `b`. Timestamps are 32-bit
/// milliseconds that wrap to 0 after 49.7 days, compared as serial numbers
/// (RFC 1982; RTMP specification 1.0, section 5.1.1): `a` is before `b`
/// when `b` is less than 2^31 ms ahead of it, modulo 2^32.
pub fn timestamp_before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// RTMP timestamps on a timeline that does not wrap: each 32-bit timestamp
/// is taken as the one nearest (as a serial number) to the timestamp before
/// it, so a stream that crosses 2^32 ms goes on forward, and audio a little
/// behind video from before the wrap stays behind it.
#[derive(Debug, Default, Clone, Copy)]
pub struct Timeline {
    last: Option<i64>,
}

impl Timeline {
    /// `timestamp`, extended: the first is taken as it is.
    pub fn extend(&mut self, timestamp: u32) -> i64 {
        let extended = match self.last {
            Some(last) => last + i64::from(timestamp.wrapping_sub(last as u32) as i32),
            None => i64::from(timestamp),
        };
        self.last = Some(extended);
        extended
    }
}

#[cfg(test)]
mod tests {
    use super::{timestamp_before, Timeline};

    #[test]
    fn a_timeline_goes_on_past_the_wrap() {
        let mut timeline = Timeline::default();
        let before = u32::MAX - 39;
        assert_eq!(timeline.extend(before), i64::from(before));
        assert_eq!(timeline.extend(0), i64::from(before) + 40);
        assert_eq!(timeline.extend(u32::MAX - 9), i64::from(before) + 30, "a little behind");
        assert_eq!(timeline.extend(50), i64::from(before) + 90);
        assert_eq!(Timeline::default().extend(7), 7);
    }

    #[test]
    fn timestamps_compare_across_the_wrap() {
        assert!(timestamp_before(1, 2));
        assert!(!timestamp_before(2, 2));
        assert!(!timestamp_before(3, 2));
        assert!(timestamp_before(u32::MAX - 10, 5), "just before the wrap");
        assert!(!timestamp_before(5, u32::MAX - 10), "just after the wrap");
    }
}
