//! The two audio pipelines the gateway runs per stream.
//!
//! * [`ToOpus`]: FLV audio tag bodies from an RTMP publisher (Speex,
//!   Nellymoser, AAC, MP3, G.711, enhanced-RTMP Opus) in, 20 ms mono Opus
//!   packets at 48 kHz out, for WebRTC viewers. PCM, ADPCM and enhanced-RTMP
//!   codecs other than Opus are refused.
//! * [`FromOpus`]: Opus packets from a WebRTC publisher in, FLV audio tag
//!   bodies out, for RTMP players: Speex wideband, one frame per tag, for
//!   Flash-era players; or AAC-LC 48 kHz mono, a sequence header then one
//!   access unit per tag, for everything else.
//!
//! Both carry time the same way: the first input anchors the output clock, the
//! output then advances by exactly one packet per packet, and an input that is
//! more than [`REANCHOR_MS`] away from where the pipeline expects it (a gap in
//! the stream or a timestamp jump, in either direction) moves the anchor to it.
//! Codec state survives a re-anchor, so the audio stays clean across it.

use bytes::Bytes;

use super::aac::{AacPacket, FRAME_SAMPLES as AAC_FRAME};
use super::g711;
use super::libav::SoundDecoder;
use super::nellymoser::{self, NellymoserDecoder};
use super::opus::{OpusDecoder, OpusEncoder, FRAME_SAMPLES as OPUS_FRAME, SAMPLE_RATE as OPUS_RATE};
use super::speex::{SpeexDecoder, SpeexEncoder, FRAME_SAMPLES as SPEEX_FRAME, SAMPLE_RATE as SPEEX_RATE};
use super::{mix_to_mono, AacDecoder, AacEncoder, CodecError, Mp3Decoder, Resampler};
use ffmpeg_sys_next::AVCodecID;
use media::eflv::{self, PacketType};
use media::flv::{audio_header, AudioCodec, TagKind};

/// How far (in ms) an input's timestamp may be from where the pipeline expects
/// it before the output clock re-anchors on it.
pub const REANCHOR_MS: u64 = 200;
const REANCHOR_48K: i128 = REANCHOR_MS as i128 * 48;

/// The FLV audio header byte [`FromOpus`] writes for Speex, as Flash Player
/// does: SoundFormat 11, 16-bit, mono.
pub const SPEEX_TAG_HEADER: u8 = 0xB2;
/// The Speex quality [`FromOpus::new`] encodes at (about 27.8 kbit/s).
pub const DEFAULT_SPEEX_QUALITY: u8 = 8;
/// The FLV audio header byte [`FromOpus`] writes for AAC: SoundFormat 10 with
/// the 44 kHz, 16-bit, stereo bits the FLV specification says AAC tags always
/// carry (the real format is in the AudioSpecificConfig).
pub const AAC_TAG_HEADER: u8 = 0xAF;
/// The AAC bitrate [`FromOpus::new`] encodes at: 64 kbit/s, plenty for mono
/// voice and music that arrived as Opus at 48 kbit/s or less.
pub const DEFAULT_AAC_BITRATE: u32 = 64_000;
/// The sample rate [`FromOpus`] encodes AAC at: Opus's own, so no resampling.
pub const AAC_SAMPLE_RATE: u32 = OPUS_RATE;
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
    /// AAC-LC, 48 kHz mono ([`DEFAULT_AAC_BITRATE`] unless
    /// [`FromOpus::aac`] says otherwise), header byte [`AAC_TAG_HEADER`]: a
    /// sequence header (AACPacketType 0) once, then one 1024-sample access
    /// unit (AACPacketType 1) per tag. What FFmpeg, recording and HLS
    /// pipelines expect; Flash Player 9.0.115 and later plays it too.
    Aac,
}

/// The decoder for the codec a publisher currently sends (the big symphonia
/// decoders boxed, made once per codec change).
enum Input {
    Speex(SpeexDecoder),
    /// One decoder for every Nellymoser rate (the rate comes with each tag).
    Nellymoser(NellymoserDecoder),
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
    /// Enhanced RTMP's FLAC, AC-3 and E-AC-3, through libavcodec.
    Sound(Box<SoundDecoder>),
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
            AudioCodec::Nellymoser => Input::Nellymoser(NellymoserDecoder::new()?),
            AudioCodec::Flac => Input::Sound(Box::new(SoundDecoder::new(AVCodecID::AV_CODEC_ID_FLAC, "flac")?)),
            AudioCodec::Ac3 => Input::Sound(Box::new(SoundDecoder::new(AVCodecID::AV_CODEC_ID_AC3, "ac3")?)),
            AudioCodec::Eac3 => Input::Sound(Box::new(SoundDecoder::new(AVCodecID::AV_CODEC_ID_EAC3, "eac3")?)),
            AudioCodec::PcmPlatform | AudioCodec::PcmLe | AudioCodec::Adpcm => {
                return Err(CodecError::Unsupported(format!(
                    "{} audio in FLV; publish Speex, AAC or MP3 instead",
                    codec.name()
                )))
            }
            AudioCodec::Other(9) => {
                return Err(CodecError::Unsupported(
                    "enhanced-RTMP audio in a codec other than Opus, AAC, MP3, FLAC, AC-3 and E-AC-3".into(),
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
    /// * Nellymoser takes its rate from the header byte of each tag (SoundFormat
    ///   4 is 16 kHz, 5 is 8 kHz, 6 says it in the SoundRate bits); a tag may
    ///   hold several 64-byte frames.
    /// * PCM and ADPCM bodies are [`CodecError::Unsupported`].
    /// * Timestamps: the first body with audio anchors the output at
    ///   `timestamp_ms * 48`; packets then follow 960 apart. A body whose
    ///   timestamp is more than [`REANCHOR_MS`] from where the audio so far
    ///   ends re-anchors the clock there (audio still buffered is placed just
    ///   before it); decoder and encoder state carry on.
    ///
    /// When a body cannot be decoded nothing is appended and the pipeline stays
    /// usable; the next good body decodes normally.
    pub fn push(&mut self, timestamp_ms: u32, flv_body: &[u8], out: &mut Vec<OpusPacket>) -> Result<(), CodecError> {
        let decoded = if eflv::is_enhanced(TagKind::Audio, flv_body) {
            self.decode_enhanced(flv_body)?
        } else {
            self.decode(flv_body)?
        };
        match decoded {
            Some((rate, channels)) => self.encode_decoded(timestamp_ms, rate, channels, out),
            None => Ok(()),
        }
    }

    /// Switches the decoder to `codec` if it is another one.
    fn switch_input(&mut self, codec: AudioCodec) -> Result<(), CodecError> {
        if self.codec != Some(codec) || self.input.is_none() {
            let input = Input::for_codec(codec)?;
            if self.codec.is_some() {
                self.reanchor = true;
            }
            self.input = Some(input);
            self.codec = Some(codec);
        }
        Ok(())
    }

    /// Decodes a legacy FLV audio tag body into `self.decoded`: its sample
    /// rate and channels, or `None` when it held no sound.
    fn decode(&mut self, flv_body: &[u8]) -> Result<Option<(u32, usize)>, CodecError> {
        let Some(header) = audio_header(flv_body) else {
            return Ok(None);
        };
        self.switch_input(header.codec)?;
        let Some(input) = self.input.as_mut() else {
            return Ok(None); // set just above
        };
        self.decoded.clear();
        let payload = &flv_body[1..];
        let (rate, channels) = match input {
            Input::Speex(decoder) => {
                decoder.decode(payload, &mut self.decoded)?;
                (SPEEX_RATE, 1)
            }
            Input::Nellymoser(decoder) => {
                let Some(rate) = nellymoser::flv_sample_rate(flv_body[0]) else {
                    return Ok(None); // the codec was read from this same byte
                };
                // Nellymoser is mono only; the SoundType bit is ignored.
                decoder.decode(payload, &mut self.decoded)?;
                (rate, 1)
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
                        return Ok(None);
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
                    _ => return Ok(None),
                }
            }
            Input::G711 { alaw } => {
                // SoundType bit: stereo. The rate is always 8 kHz.
                let channels = if flv_body[0] & 0x01 != 0 { 2 } else { 1 };
                let whole = payload.len() / channels * channels;
                g711::decode(&payload[..whole], *alaw, &mut self.decoded);
                (g711::SAMPLE_RATE, channels)
            }
            // Codecs only Enhanced RTMP names: read by `decode_enhanced`.
            Input::Opus(_) | Input::Sound(_) => return Ok(None),
        };
        Ok(Some((rate, channels)))
    }

    /// Decodes an Enhanced RTMP audio tag body (its first packet: the caller
    /// gives a multitrack message's main track alone) into `self.decoded`.
    fn decode_enhanced(&mut self, flv_body: &[u8]) -> Result<Option<(u32, usize)>, CodecError> {
        let corrupt = |e: eflv::EflvError| CodecError::corrupt("audio", e.to_string());
        let Some(tag) = eflv::parse(TagKind::Audio, flv_body).map_err(corrupt)? else {
            return Ok(None);
        };
        let Some(packet) = tag.first().transpose().map_err(corrupt)? else {
            return Ok(None);
        };
        let codec = match AudioCodec::from_fourcc(packet.fourcc) {
            AudioCodec::Other(_) => return Err(CodecError::Unsupported(format!("{} audio", packet.fourcc))),
            codec => codec,
        };
        let config = packet.packet_type == PacketType::SequenceStart;
        if !config && packet.packet_type != PacketType::CodedFrames {
            return Ok(None); // a sequence end, the channel configuration
        }
        self.switch_input(codec)?;
        let Some(input) = self.input.as_mut() else {
            return Ok(None); // set just above
        };
        self.decoded.clear();
        let data = packet.data;
        let format = match input {
            Input::Aac {
                decoder,
                config: current,
            } if config => {
                if decoder.is_none() || current.as_slice() != data {
                    *decoder = Some(Box::new(AacDecoder::new(data)?));
                    current.clear();
                    current.extend_from_slice(data);
                }
                None
            }
            _ if config => None, // OpusHead, STREAMINFO: the frames say what the decoders need
            Input::Aac { decoder, .. } => {
                let Some(decoder) = decoder else {
                    return Err(CodecError::NotConfigured { codec: "aac" });
                };
                decoder.decode(data, &mut self.decoded)?;
                Some((decoder.sample_rate(), decoder.channels()))
            }
            Input::Mp3(decoder) => {
                decoder.decode(data, &mut self.decoded)?;
                decoder.sample_rate().zip(decoder.channels())
            }
            Input::Opus(decoder) => {
                decoder.decode(data, &mut self.decoded)?;
                Some((OPUS_RATE, 1))
            }
            Input::Sound(decoder) => decoder.decode(data, &mut self.decoded)?,
            _ => None,
        };
        Ok(format)
    }

    /// Mixes, resamples and encodes what [`Self::decode`] left in
    /// `self.decoded`, appending the Opus packets now complete to `out`.
    fn encode_decoded(
        &mut self,
        timestamp_ms: u32,
        rate: u32,
        channels: usize,
        out: &mut Vec<OpusPacket>,
    ) -> Result<(), CodecError> {
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

/// The encoder half of [`FromOpus`]: frames of PCM at its rate in, FLV audio
/// tag bodies out.
enum TagEncoder {
    Speex(Box<SpeexEncoder>),
    Aac {
        encoder: AacEncoder,
        header_sent: bool,
        packets: Vec<AacPacket>,
    },
}

impl TagEncoder {
    fn sample_rate(&self) -> u32 {
        match self {
            TagEncoder::Speex(_) => SPEEX_RATE,
            TagEncoder::Aac { .. } => AAC_SAMPLE_RATE,
        }
    }

    fn frame_samples(&self) -> usize {
        match self {
            TagEncoder::Speex(_) => SPEEX_FRAME,
            TagEncoder::Aac { .. } => AAC_FRAME,
        }
    }

    /// Encodes one frame whose first sample is at `timestamp` (48 kHz units)
    /// and appends the tags it completes.
    fn encode(&mut self, pcm: &[i16], timestamp: u64, out: &mut Vec<FlvAudioTag>) -> Result<(), CodecError> {
        match self {
            TagEncoder::Speex(encoder) => {
                let mut body = Vec::with_capacity(128);
                body.push(SPEEX_TAG_HEADER);
                encoder.encode(pcm, &mut body)?;
                out.push(FlvAudioTag {
                    timestamp_ms: (timestamp / 48) as u32,
                    data: Bytes::from(body),
                });
            }
            TagEncoder::Aac {
                encoder,
                header_sent,
                packets,
            } => {
                packets.clear();
                // AAC runs at 48 kHz, so its pts are in the same 48 kHz units.
                encoder.encode(pcm, i64::try_from(timestamp).unwrap_or(i64::MAX), packets)?;
                for packet in packets.drain(..) {
                    // The encoder's priming starts before the first input; a
                    // clock that starts at 0 cannot go below it.
                    let timestamp_ms = (u64::try_from(packet.pts).unwrap_or(0) / 48) as u32;
                    if !*header_sent {
                        let config = encoder.audio_specific_config();
                        let mut body = Vec::with_capacity(2 + config.len());
                        body.extend_from_slice(&[AAC_TAG_HEADER, 0]);
                        body.extend_from_slice(config);
                        out.push(FlvAudioTag {
                            timestamp_ms,
                            data: Bytes::from(body),
                        });
                        *header_sent = true;
                    }
                    let mut body = Vec::with_capacity(2 + packet.data.len());
                    body.extend_from_slice(&[AAC_TAG_HEADER, 1]);
                    body.extend_from_slice(&packet.data);
                    out.push(FlvAudioTag {
                        timestamp_ms,
                        data: Bytes::from(body),
                    });
                }
            }
        }
        Ok(())
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
    encoder: TagEncoder,
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
    /// A pipeline to `target` at its default quality: Speex at
    /// [`DEFAULT_SPEEX_QUALITY`], AAC at [`DEFAULT_AAC_BITRATE`].
    pub fn new(target: FlvAudioTarget) -> Result<Self, CodecError> {
        match target {
            FlvAudioTarget::Speex => Self::speex(DEFAULT_SPEEX_QUALITY),
            FlvAudioTarget::Aac => Self::aac(DEFAULT_AAC_BITRATE),
        }
    }

    /// A pipeline to Speex wideband at `quality` (0 to 10).
    pub fn speex(quality: u8) -> Result<Self, CodecError> {
        let encoder = TagEncoder::Speex(Box::new(SpeexEncoder::new(quality)?));
        Self::with_encoder(FlvAudioTarget::Speex, encoder)
    }

    /// A pipeline to AAC-LC, [`AAC_SAMPLE_RATE`] mono, at `bitrate` bits per
    /// second (8000 to 320000).
    pub fn aac(bitrate: u32) -> Result<Self, CodecError> {
        let encoder = TagEncoder::Aac {
            encoder: AacEncoder::new(AAC_SAMPLE_RATE, 1, bitrate)?,
            header_sent: false,
            packets: Vec::new(),
        };
        Self::with_encoder(FlvAudioTarget::Aac, encoder)
    }

    fn with_encoder(target: FlvAudioTarget, encoder: TagEncoder) -> Result<Self, CodecError> {
        Ok(FromOpus {
            target,
            decoder: OpusDecoder::new(1)?,
            resampler: Resampler::new(OPUS_RATE, encoder.sample_rate(), 1)?,
            encoder,
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
    /// now complete to `out`:
    ///
    /// * Speex: one 20 ms frame per tag, 20 ms apart.
    /// * AAC: the sequence header once, before the first access unit and with
    ///   its timestamp; then one 1024-sample access unit per tag, 21.33 ms
    ///   apart (so 21 or 22 in whole ms). Each carries the time of the audio
    ///   it decodes to: the encoder's delay is accounted for, so the first
    ///   (the encoder's priming) is 21 ms before the first packet's time, or 0
    ///   if that would be negative, and the last 1024 samples stay inside.
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
        let ratio = u64::from(OPUS_RATE / self.encoder.sample_rate());
        if reanchor {
            let held = (self.pending.len() as u64 + self.resampler.latency_frames()) * ratio;
            self.next_timestamp = Some(ts.saturating_sub(held));
        }
        self.expected_input = Some(ts + samples as u64);
        self.resampler.process(&self.decoded, &mut self.pending)?;
        let frame = self.encoder.frame_samples();
        let mut next = self.next_timestamp.unwrap_or(ts);
        let mut used = 0;
        let mut result = Ok(());
        while self.pending.len() - used >= frame {
            if let Err(e) = self.encoder.encode(&self.pending[used..used + frame], next, out) {
                result = Err(e);
            }
            next += frame as u64 * ratio;
            used += frame;
        }
        self.pending.drain(..used);
        self.next_timestamp = Some(next);
        result
    }
}

#[cfg(test)]
mod tests;
