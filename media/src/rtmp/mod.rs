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
pub mod url;

pub use chunk::{ChunkDecoder, ChunkEncoder, ChunkError, ChunkLimits, ChunkStyle, Continuations, RawMessage};
pub use control::Control;
pub use endpoint::Endpoint;
pub use message::{Command, Data, Message, MessageError, ObjectEncoding, UserControl};

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
