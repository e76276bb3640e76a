//! Wire formats shared by the reference server and the conformance suite:
//! AMF0/AMF3, the RTMP chunk layer, messages and control duties, FLV tags,
//! NetStatus codes, H.264 framing. The codecs are in the `codecs` crate.
//!
//! Everything here is sans-IO: bytes in, values out, no sockets and no clocks.
//! Every decoder treats its input as hostile: it returns an error, never panics,
//! and never allocates more than its input justifies.

#![forbid(unsafe_code)]

pub mod amf;
pub mod eflv;
pub mod flv;
pub mod h264;
pub mod ice;
pub mod netstatus;
pub mod rtmp;
