//! The conformance suite's library: emulated clients (Flash Player, encoders),
//! capture reading, and the targets it runs against.
//!
//! Every server is a black box reached over the network; the only tie to the
//! reference server is the embedded target, which starts it in-process.

pub mod browser;
pub mod capture;
pub mod client;
pub mod handshake;
pub mod target;
pub mod tools;
pub mod webrtc;
