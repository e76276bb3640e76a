//! Wire formats shared by the reference server and the conformance suite.
//!
//! Everything here is sans-IO: bytes in, values out, no sockets and no clocks.
//! Every decoder treats its input as hostile: it returns an error, never panics,
//! and never allocates more than its input justifies.

pub mod amf;
pub mod audio;
pub mod codec;
pub mod flv;
pub mod h264;
pub mod netstatus;
pub mod rtmp;
