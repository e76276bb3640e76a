//! Audio and video codecs on both sides of the gateway and the pipelines
//! between them: the C libraries (libopus, libspeex, libavcodec, openh264)
//! each behind one safe wrapper, and the pure-Rust codecs and signal
//! helpers around them. The wire formats they read and write (FLV tag
//! bodies, H.264 framing) come from the `media` crate, which has no C and
//! no `unsafe`.
//!
//! RTMP publishers send Speex or Nellymoser (Flash Player), AAC (OBS, FFmpeg,
//! encoders), MP3 or G.711 inside FLV audio tag bodies; WebRTC peers speak
//! Opus. [`transcode`] holds the two per-stream pipelines, [`ToOpus`] and
//! [`FromOpus`]; the other modules are the codecs and the resampler they are
//! built from. Opus and Speex come from their C libraries, AAC decoding and
//! MP3 from symphonia, Nellymoser decoding and AAC encoding from the system
//! libavcodec (FFmpeg 5.1 or newer).
//!
//! Video: [`video::VideoTranscoder`] turns H.264 (B-frames included) or
//! Sorenson Spark into Constrained Baseline H.264, optionally smaller; H.264
//! goes through openh264 ([`avc`]), Spark is decoded by libavcodec
//! ([`spark`]), and [`picture`] scales between them.
//!
//! Everything here is sans-IO: bytes and timestamps in, bytes and timestamps out,
//! no clocks. PCM is interleaved `i16`. Decoders treat their input as hostile:
//! damaged data gives a [`CodecError`], never a panic, and the decoder keeps
//! working on the data that follows.

pub mod aac;
pub mod audio;
pub mod avc;
pub mod enhanced_video;
pub mod g711;
mod libav;
pub mod mp3;
pub mod nellymoser;
pub mod opus;
pub mod picture;
pub mod resample;
pub mod spark;
pub mod speex;
pub mod transcode;
pub mod video;

pub use self::aac::{AacDecoder, AacEncoder, AacPacket};
pub use self::enhanced_video::EnhancedDecoder;
pub use self::mp3::Mp3Decoder;
pub use self::nellymoser::NellymoserDecoder;
pub use self::opus::{OpusDecoder, OpusEncoder};
pub use self::resample::Resampler;
pub use self::speex::{SpeexDecoder, SpeexEncoder};
pub use self::transcode::{FlvAudioTag, FlvAudioTarget, FromOpus, OpusPacket, ToOpus};
pub use self::video::{FlvVideoTag, VideoSettings, VideoTranscoder};

/// Why audio or video could not be decoded, encoded or converted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The stream uses a codec, or a feature of one, that this module does not handle.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The compressed data is damaged or truncated; nothing was decoded from it.
    #[error("corrupt {codec} data: {detail}")]
    Corrupt {
        /// The codec whose data it was ("speex", "aac", ...).
        codec: &'static str,
        /// What was wrong with it.
        detail: String,
    },
    /// A frame arrived before the configuration it needs (an AAC frame before
    /// the AAC sequence header); it was dropped.
    #[error("{codec} frame before its sequence header (dropped)")]
    NotConfigured {
        /// The codec that lacks its configuration.
        codec: &'static str,
    },
    /// The caller passed a value out of range (a sample rate, a channel count,
    /// a frame of the wrong length). A bug in the caller, not in the stream.
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    /// libopus refused a packet or a setting, in its words.
    #[error("opus: {0}")]
    Opus(String),
    /// A native codec library could not create its state (out of memory or
    /// a library built without the mode we need).
    #[error("{0} could not create its state")]
    Library(&'static str),
    /// The system libavcodec (FFmpeg) lacks a codec, refused a setting, or
    /// failed inside while encoding.
    #[error("libavcodec {codec}: {detail}")]
    Libav {
        /// The codec it was working on ("aac", "nellymoser").
        codec: &'static str,
        /// What libavcodec said.
        detail: String,
    },
}

impl CodecError {
    pub(crate) fn corrupt(codec: &'static str, detail: impl Into<String>) -> Self {
        CodecError::Corrupt {
            codec,
            detail: detail.into(),
        }
    }
}

/// Maps a symphonia error to ours: unsupported features stay unsupported,
/// everything else (malformed data, reading past the end) is corrupt data.
pub(crate) fn from_symphonia(codec: &'static str, error: symphonia_core::errors::Error) -> CodecError {
    use symphonia_core::errors::Error;
    match error {
        Error::Unsupported(what) => CodecError::Unsupported(format!("{codec}: {what}")),
        Error::IoError(e) => CodecError::corrupt(codec, format!("frame ends early ({e})")),
        other => CodecError::corrupt(codec, other.to_string()),
    }
}

/// Runs a third-party decoder step, catching a panic inside it.
///
/// symphonia is written to return errors, but it is a large decoder fed with
/// bytes from the network; this is the last line of defence so that a bug there
/// costs one frame, not the connection's task. The outer `Err` means the step
/// panicked: the caller rebuilds the decoder, whose state may be half-updated,
/// and returns that error.
pub(crate) fn guard_panic<T>(
    codec: &'static str,
    f: impl FnOnce() -> Result<T, CodecError>,
) -> Result<Result<T, CodecError>, CodecError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .map_err(|_| CodecError::corrupt(codec, "the decoder panicked on this frame (decoder reset)"))
}

/// Appends the average of each interleaved frame of `pcm` to `out`.
pub(crate) fn mix_to_mono(pcm: &[i16], channels: usize, out: &mut Vec<i16>) {
    if channels <= 1 {
        out.extend_from_slice(pcm);
        return;
    }
    out.extend(
        pcm.chunks_exact(channels)
            .map(|frame| (frame.iter().map(|&s| i32::from(s)).sum::<i32>() / channels as i32) as i16),
    );
}
