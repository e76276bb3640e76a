//! The two audio pipelines the gateway runs per stream.
//!
//! * [`ToOpus`]: FLV audio tag bodies from an RTMP publisher (Speex, AAC, MP3,
//!   G.711, enhanced-RTMP Opus) in, 20 ms mono Opus packets at 48 kHz out, for WebRTC viewers.
//! * [`FromOpus`]: Opus packets from a WebRTC publisher in, FLV audio tag
//!   bodies out (Speex wideband, one frame per tag), for Flash-era players.
//!
//! Both carry time the same way: the first input anchors the output clock, the
//! output then advances by exactly one packet per packet, and an input that is
//! more than [`REANCHOR_MS`] away from where the pipeline expects it (a gap in
//! the stream or a timestamp jump, in either direction) moves the anchor to it.
//! Codec state survives a re-anchor, so the audio stays clean across it.

use bytes::Bytes;

use super::g711;
use super::opus::{OpusDecoder, OpusEncoder, FRAME_SAMPLES as OPUS_FRAME, SAMPLE_RATE as OPUS_RATE};
use super::speex::{SpeexDecoder, SpeexEncoder, FRAME_SAMPLES as SPEEX_FRAME, SAMPLE_RATE as SPEEX_RATE};
use super::{mix_to_mono, AacDecoder, CodecError, Mp3Decoder, Resampler};
use crate::flv::{audio_header, AudioCodec, ENHANCED_AUDIO_HEADER_LEN};

/// How far (in ms) an input's timestamp may be from where the pipeline expects
/// it before the output clock re-anchors on it.
pub const REANCHOR_MS: u64 = 200;
const REANCHOR_48K: i128 = REANCHOR_MS as i128 * 48;

/// The FLV audio header byte [`FromOpus`] writes for Speex, as Flash Player
/// does: SoundFormat 11, 16-bit, mono.
pub const SPEEX_TAG_HEADER: u8 = 0xB2;
/// The Speex quality [`FromOpus::new`] encodes at (about 27.8 kbit/s).
pub const DEFAULT_SPEEX_QUALITY: u8 = 8;
/// A good Opus bitrate for [`ToOpus::new`]: mono voice and music, 48 kbit/s.
pub const DEFAULT_OPUS_BITRATE: u32 = 48_000;

/// One Opus packet of 20 ms (960 samples at 48 kHz, mono).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusPacket {
    /// The time of the packet's first sample in 48 kHz units: the first input's
    /// RTMP timestamp × 48, then 960 more per packet (see [`ToOpus::push`]).
    /// An RTP sender truncates it to 32 bits after adding its random offset.
    pub rtp_timestamp: u64,
    /// The Opus packet.
    pub data: Bytes,
}

/// One FLV audio tag body (what an RTMP audio message carries) with its time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlvAudioTag {
    /// The RTMP timestamp in milliseconds.
    pub timestamp_ms: u32,
    /// The tag body, FLV audio header byte(s) included.
    pub data: Bytes,
}

/// What [`FromOpus`] encodes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlvAudioTarget {
    /// Speex wideband, 16 kHz mono, one 20 ms frame per tag, header byte
    /// [`SPEEX_TAG_HEADER`]: what Flash Player plays (and sends).
    Speex,
    /// AAC-LC. Not implemented yet: [`FromOpus::new`] returns
    /// [`CodecError::Unsupported`] for it.
    Aac,
}

/// The decoder for the codec a publisher currently sends (the big symphonia
/// decoders boxed, made once per codec change).
enum Input {
    Speex(SpeexDecoder),
    Aac {
        decoder: Option<Box<AacDecoder>>,
        config: Vec<u8>,
    },
    Mp3(Box<Mp3Decoder>),
    G711 {
        alaw: bool,
    },
    /// Opus in an enhanced-RTMP tag: decoded and re-encoded like the others,
    /// so that every output packet is 20 ms of mono on one clock.
    Opus(OpusDecoder),
}

impl Input {
    fn for_codec(codec: AudioCodec) -> Result<Self, CodecError> {
        Ok(match codec {
            AudioCodec::Speex => Input::Speex(SpeexDecoder::new()?),
            AudioCodec::Aac => Input::Aac {
                decoder: None,
                config: Vec::new(),
            },
            AudioCodec::Mp3 | AudioCodec::Mp3_8k => Input::Mp3(Box::default()),
            AudioCodec::G711A => Input::G711 { alaw: true },
            AudioCodec::G711U => Input::G711 { alaw: false },
            AudioCodec::Opus => Input::Opus(OpusDecoder::new(1)?),
            AudioCodec::Nellymoser => {
                return Err(CodecError::Unsupported(
                    "Nellymoser (FLV SoundFormat 4, 5, 6); publish Speex, AAC or MP3 instead".into(),
                ))
            }
            AudioCodec::PcmPlatform | AudioCodec::PcmLe | AudioCodec::Adpcm => {
                return Err(CodecError::Unsupported(format!(
                    "{} audio in FLV; publish Speex, AAC or MP3 instead",
                    codec.name()
                )))
            }
            AudioCodec::Other(9) => {
                return Err(CodecError::Unsupported(
                    "enhanced-RTMP audio other than Opus (FLV SoundFormat 9)".into(),
                ));
            }
            AudioCodec::Other(id) => {
                return Err(CodecError::Unsupported(format!("FLV SoundFormat {id}")));
            }
        })
    }
}

/// Turns the FLV audio of an RTMP publisher into 20 ms mono Opus packets at
/// 48 kHz with RTP-style timestamps.
///
/// Decoded audio is mixed to mono, resampled to 48 kHz and cut into 20 ms
/// packets; up to about 50 ms of audio (less than a packet, plus the
/// resampler's 20 ms chunk and filter delay) waits inside for the next input. All
/// buffers are kept between calls, so a steady stream allocates only the
/// packets' `Bytes`.
pub struct ToOpus {
    codec: Option<AudioCodec>,
    input: Option<Input>,
    encoder: OpusEncoder,
    resampler: Option<Resampler>,
    decoded: Vec<i16>,
    mono: Vec<i16>,
    pending: Vec<i16>,
    next_timestamp: Option<u64>,
    reanchor: bool,
}

impl std::fmt::Debug for ToOpus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToOpus")
            .field("codec", &self.codec)
            .field("input_rate", &self.input_sample_rate())
            .field("next_timestamp", &self.next_timestamp)
            .finish_non_exhaustive()
    }
}

impl ToOpus {
    /// A pipeline encoding mono Opus at `opus_bitrate` bits per second
    /// (6000 to 510000; [`DEFAULT_OPUS_BITRATE`] suits most streams).
    pub fn new(opus_bitrate: u32) -> Result<Self, CodecError> {
        Ok(ToOpus {
            codec: None,
            input: None,
            encoder: OpusEncoder::new(1, opus_bitrate)?,
            resampler: None,
            decoded: Vec::new(),
            mono: Vec::new(),
            pending: Vec::new(),
            next_timestamp: None,
            reanchor: false,
        })
    }

    /// The codec of the last audio accepted, if any.
    pub fn input_codec(&self) -> Option<AudioCodec> {
        self.codec
    }

    /// The sample rate of the audio being decoded, once some has been.
    pub fn input_sample_rate(&self) -> Option<u32> {
        self.resampler.as_ref().map(Resampler::from_rate)
    }

    /// Takes one FLV audio tag body (FLV audio header included) with its RTMP
    /// timestamp in ms, and appends every Opus packet now complete to `out`.
    ///
    /// * An AAC sequence header configures the decoder and produces nothing
    ///   (the same header again changes nothing); an AAC frame before one is
    ///   [`CodecError::NotConfigured`].
    /// * A body in a different codec from the last one replaces the decoder.
    /// * Enhanced-RTMP Opus is decoded and re-encoded like any other input, so
    ///   that every packet out is 20 ms of mono on the one clock.
    /// * Nellymoser, PCM and ADPCM bodies are [`CodecError::Unsupported`].
    /// * Timestamps: the first body with audio anchors the output at
    ///   `timestamp_ms * 48`; packets then follow 960 apart. A body whose
    ///   timestamp is more than [`REANCHOR_MS`] from where the audio so far
    ///   ends re-anchors the clock there (audio still buffered is placed just
    ///   before it); decoder and encoder state carry on.
    ///
    /// When a body cannot be decoded nothing is appended and the pipeline stays
    /// usable; the next good body decodes normally.
    pub fn push(&mut self, timestamp_ms: u32, flv_body: &[u8], out: &mut Vec<OpusPacket>) -> Result<(), CodecError> {
        let Some(header) = audio_header(flv_body) else {
            return Ok(());
        };
        if self.codec != Some(header.codec) || self.input.is_none() {
            let input = Input::for_codec(header.codec)?;
            if self.codec.is_some() {
                self.reanchor = true;
            }
            self.input = Some(input);
            self.codec = Some(header.codec);
        }
        let Some(input) = self.input.as_mut() else {
            return Ok(()); // set just above
        };
        self.decoded.clear();
        let payload = &flv_body[1..];
        let (rate, channels) = match input {
            Input::Speex(decoder) => {
                decoder.decode(payload, &mut self.decoded)?;
                (SPEEX_RATE, 1)
            }
            Input::Aac { decoder, config } => {
                let Some((&packet_type, data)) = payload.split_first() else {
                    return Err(CodecError::corrupt("aac", "tag ends before its AACPacketType"));
                };
                match packet_type {
                    0 => {
                        if decoder.is_none() || config.as_slice() != data {
                            config.clear();
                            *decoder = None;
                            *decoder = Some(Box::new(AacDecoder::new(data)?));
                            config.extend_from_slice(data);
                        }
                        return Ok(());
                    }
                    1 => {
                        let Some(decoder) = decoder else {
                            return Err(CodecError::NotConfigured { codec: "aac" });
                        };
                        decoder.decode(data, &mut self.decoded)?;
                        (decoder.sample_rate(), decoder.channels())
                    }
                    other => {
                        return Err(CodecError::corrupt("aac", format!("unknown AACPacketType {other}")));
                    }
                }
            }
            Input::Mp3(decoder) => {
                decoder.decode(payload, &mut self.decoded)?;
                match (decoder.sample_rate(), decoder.channels()) {
                    (Some(rate), Some(channels)) => (rate, channels),
                    _ => return Ok(()),
                }
            }
            Input::G711 { alaw } => {
                // SoundType bit: stereo. The rate is always 8 kHz.
                let channels = if flv_body[0] & 0x01 != 0 { 2 } else { 1 };
                let whole = payload.len() / channels * channels;
                g711::decode(&payload[..whole], *alaw, &mut self.decoded);
                (g711::SAMPLE_RATE, channels)
            }
            Input::Opus(decoder) => {
                // Enhanced RTMP: packet type in the low nibble, then the FourCC.
                match flv_body[0] & 0x0F {
                    // CodedFrames.
                    1 => {
                        let Some(packet) = flv_body.get(ENHANCED_AUDIO_HEADER_LEN..) else {
                            return Err(CodecError::corrupt("opus", "enhanced-RTMP tag shorter than its header"));
                        };
                        decoder.decode(packet, &mut self.decoded)?;
                        (OPUS_RATE, 1)
                    }
                    // SequenceStart (OpusHead), SequenceEnd, MultichannelConfig: no audio.
                    0 | 2 | 4 => return Ok(()),
                    other => {
                        return Err(CodecError::Unsupported(format!(
                            "enhanced-RTMP audio packet type {other}"
                        )));
                    }
                }
            }
        };
        if self.decoded.is_empty() {
            return Ok(());
        }
        let mono: &[i16] = if channels == 1 {
            &self.decoded
        } else {
            self.mono.clear();
            mix_to_mono(&self.decoded, channels, &mut self.mono);
            &self.mono
        };
        let resampler = match &mut self.resampler {
            Some(r) if r.from_rate() == rate => r,
            slot => {
                if slot.is_some() {
                    self.reanchor = true;
                }
                slot.insert(Resampler::new(rate, OPUS_RATE, 1)?)
            }
        };
        let ts = u64::from(timestamp_ms) * 48;
        let held = self.pending.len() as u64 + resampler.latency_frames();
        let anchor = match self.next_timestamp {
            None => true,
            Some(next) => self.reanchor || (i128::from(ts) - i128::from(next + held)).abs() > REANCHOR_48K,
        };
        if anchor {
            self.next_timestamp = Some(ts.saturating_sub(held));
            self.reanchor = false;
        }
        resampler.process(mono, &mut self.pending)?;
        let mut next = self.next_timestamp.unwrap_or(ts);
        let mut used = 0;
        let mut result = Ok(());
        while self.pending.len() - used >= OPUS_FRAME {
            match self.encoder.encode(&self.pending[used..used + OPUS_FRAME]) {
                Ok(data) => out.push(OpusPacket {
                    rtp_timestamp: next,
                    data,
                }),
                Err(e) => result = Err(e),
            }
            next += OPUS_FRAME as u64;
            used += OPUS_FRAME;
        }
        self.pending.drain(..used);
        self.next_timestamp = Some(next);
        result
    }
}

/// Turns the Opus packets of a WebRTC publisher into FLV audio tag bodies with
/// RTMP timestamps.
///
/// Packets are decoded to 48 kHz mono, resampled to the target's rate and cut
/// into its frames. A packet that comes 20 ms to [`REANCHOR_MS`] later than
/// expected has the gap before it filled by Opus packet-loss concealment; one
/// that lies wholly before the audio already decoded (a duplicate or a very
/// late packet) is dropped; anything further away re-anchors the clock.
pub struct FromOpus {
    target: FlvAudioTarget,
    decoder: OpusDecoder,
    resampler: Resampler,
    encoder: SpeexEncoder,
    decoded: Vec<i16>,
    pending: Vec<i16>,
    next_timestamp: Option<u64>,
    expected_input: Option<u64>,
}

impl std::fmt::Debug for FromOpus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FromOpus")
            .field("target", &self.target)
            .field("next_timestamp", &self.next_timestamp)
            .finish_non_exhaustive()
    }
}

impl FromOpus {
    /// A pipeline to `target` at its default quality ([`DEFAULT_SPEEX_QUALITY`]).
    /// [`FlvAudioTarget::Aac`] is not implemented yet and gives
    /// [`CodecError::Unsupported`].
    pub fn new(target: FlvAudioTarget) -> Result<Self, CodecError> {
        Self::with_speex_quality(target, DEFAULT_SPEEX_QUALITY)
    }

    /// Like [`FromOpus::new`], with the Speex quality (0 to 10) to encode at.
    pub fn with_speex_quality(target: FlvAudioTarget, quality: u8) -> Result<Self, CodecError> {
        if target == FlvAudioTarget::Aac {
            return Err(CodecError::Unsupported(
                "AAC as the FLV target for Opus audio (not implemented yet; use Speex)".into(),
            ));
        }
        Ok(FromOpus {
            target,
            decoder: OpusDecoder::new(1)?,
            resampler: Resampler::new(OPUS_RATE, SPEEX_RATE, 1)?,
            encoder: SpeexEncoder::new(quality)?,
            decoded: Vec::new(),
            pending: Vec::new(),
            next_timestamp: None,
            expected_input: None,
        })
    }

    /// What this pipeline encodes to.
    pub fn target(&self) -> FlvAudioTarget {
        self.target
    }

    /// Takes one Opus packet with its timestamp in 48 kHz units (an RTP
    /// timestamp extended to 64 bits; its origin is the caller's choice, and
    /// the output's milliseconds are `timestamp / 48`), and appends every tag
    /// now complete to `out`: for Speex, one 20 ms frame per tag, 20 ms apart.
    ///
    /// An empty packet is a lost one and is concealed. When a packet cannot be
    /// decoded nothing is appended; the next packet decodes normally.
    pub fn push(&mut self, rtp_timestamp: u64, packet: &[u8], out: &mut Vec<FlvAudioTag>) -> Result<(), CodecError> {
        let ts = rtp_timestamp;
        let mut reanchor = true;
        let mut gap = 0;
        if let Some(expected) = self.expected_input {
            let diff = i128::from(ts) - i128::from(expected);
            if diff.abs() <= REANCHOR_48K {
                reanchor = false;
                if diff <= -(OPUS_FRAME as i128) {
                    return Ok(()); // already played: a duplicate or a late packet
                }
                if diff >= OPUS_FRAME as i128 {
                    gap = diff as usize; // at most REANCHOR_48K
                }
            }
        }
        self.decoded.clear();
        while gap >= 120 {
            let concealed = self.decoder.conceal(gap, &mut self.decoded)?;
            if concealed == 0 {
                break;
            }
            gap -= concealed;
        }
        let samples = self.decoder.decode(packet, &mut self.decoded)?;
        let ratio = u64::from(OPUS_RATE / SPEEX_RATE);
        if reanchor {
            let held = (self.pending.len() as u64 + self.resampler.latency_frames()) * ratio;
            self.next_timestamp = Some(ts.saturating_sub(held));
        }
        self.expected_input = Some(ts + samples as u64);
        self.resampler.process(&self.decoded, &mut self.pending)?;
        let mut next = self.next_timestamp.unwrap_or(ts);
        let mut used = 0;
        let mut result = Ok(());
        while self.pending.len() - used >= SPEEX_FRAME {
            let mut body = Vec::with_capacity(128);
            body.push(SPEEX_TAG_HEADER);
            match self.encoder.encode(&self.pending[used..used + SPEEX_FRAME], &mut body) {
                Ok(_) => out.push(FlvAudioTag {
                    timestamp_ms: (next / 48) as u32,
                    data: Bytes::from(body),
                }),
                Err(e) => result = Err(e),
            }
            next += SPEEX_FRAME as u64 * ratio;
            used += SPEEX_FRAME;
        }
        self.pending.drain(..used);
        self.next_timestamp = Some(next);
        result
    }
}

#[cfg(test)]
mod tests;
