//! The conformance suite's library: scenarios as data and their runner,
//! emulated clients (Flash Player, encoders, WebRTC players and publishers),
//! capture reading, the targets it runs against, verdicts and reports.
//!
//! Every server is a black box reached over the network; the only tie to the
//! reference server is the embedded target, which starts it in-process.

pub mod backend;
pub mod bench;
pub mod browser;
pub mod capture;
pub mod client;
pub mod elementary;
pub mod handshake;
pub mod harness;
pub mod record;
pub mod replay;
pub mod report;
pub mod scenario;
pub mod shipped;
pub mod soak;
pub mod target;
pub mod verdict;
pub mod webrtc;

/// A 64-bit digest of `bytes`, to compare what a publisher sent with what a
/// player got without keeping both.
pub fn digest(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}
