//! FLV (Adobe Flash Video File Format Specification 10.1, annex E): the file
//! container and the audio/video tag headers that RTMP audio and video messages
//! reuse as their bodies.

use bytes::Bytes;

use crate::eflv::FourCc;

/// The kind of an FLV tag (the same numbers as RTMP message types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagKind {
    /// Type 8.
    Audio,
    /// Type 9.
    Video,
    /// Type 18, AMF0 script data (onMetaData).
    Script,
}

impl TagKind {
    /// The RTMP message type id for this kind of tag.
    pub fn type_id(self) -> u8 {
        match self {
            TagKind::Audio => 8,
            TagKind::Video => 9,
            TagKind::Script => 18,
        }
    }
}

/// One tag of an FLV file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// Audio, video or script data.
    pub kind: TagKind,
    /// Milliseconds (32 bits with the extension byte).
    pub timestamp: u32,
    /// The tag body: what an RTMP message of the same type carries.
    pub data: Bytes,
}

/// Why an FLV file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlvError {
    /// The file does not start with "FLV".
    #[error("not an FLV file (no \"FLV\" signature)")]
    NotFlv,
    /// A tag runs past the end of the file.
    #[error("tag at byte {at} is truncated")]
    Truncated {
        /// Byte offset of the tag.
        at: usize,
    },
    /// The tag is encrypted (filter bit set).
    #[error("tag at byte {at} is encrypted (filter bit set)")]
    Encrypted {
        /// Byte offset of the tag.
        at: usize,
    },
    /// A tag body longer than the 24-bit DataSize field can give.
    #[error("tag {index} is {size} bytes, more than a tag can hold (16 MiB - 1)")]
    TooLarge {
        /// Its place in the list given to [`write_file`].
        index: usize,
        /// Its body's length.
        size: usize,
    },
}

/// Reads the tags of an FLV file held in memory. Unknown tag types are skipped.
pub fn read_tags(file: &Bytes) -> Result<Vec<Tag>, FlvError> {
    if file.len() < 9 || &file[..3] != b"FLV" {
        return Err(FlvError::NotFlv);
    }
    let header_len = u32::from_be_bytes([file[5], file[6], file[7], file[8]]) as usize;
    let mut at = header_len.max(9) + 4; // header, then PreviousTagSize0
    let mut tags = Vec::new();
    while at + 11 <= file.len() {
        let h = &file[at..at + 11];
        if h[0] & 0x20 != 0 {
            return Err(FlvError::Encrypted { at });
        }
        let size = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let timestamp = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let end = at + 11 + size;
        if end > file.len() {
            return Err(FlvError::Truncated { at });
        }
        let kind = match h[0] & 0x1F {
            8 => Some(TagKind::Audio),
            9 => Some(TagKind::Video),
            18 => Some(TagKind::Script),
            _ => None,
        };
        if let Some(kind) = kind {
            tags.push(Tag {
                kind,
                timestamp,
                data: file.slice(at + 11..end),
            });
        }
        at = end + 4;
    }
    Ok(tags)
}

/// The largest tag body an FLV tag header can describe (DataSize is UI24).
const MAX_TAG_SIZE: usize = 0xFF_FFFF;

/// An FLV file holding `tags` in order: the 9-byte header (version 1, the
/// audio and video flags as given), PreviousTagSize0, then each tag (its
/// 11-byte header with the timestamp's low 24 bits and its extension byte,
/// stream id 0, the body, and the PreviousTagSize after it). [`read_tags`]
/// reads it back to the same tags. A body too long for a tag is an error.
pub fn write_file(tags: &[Tag], has_audio: bool, has_video: bool) -> Result<Vec<u8>, FlvError> {
    let body_bytes: usize = tags.iter().map(|t| t.data.len() + 15).sum();
    let mut file = Vec::with_capacity(13 + body_bytes);
    file.extend_from_slice(b"FLV\x01");
    file.push(u8::from(has_audio) << 2 | u8::from(has_video));
    file.extend_from_slice(&9u32.to_be_bytes());
    file.extend_from_slice(&0u32.to_be_bytes());
    for (index, tag) in tags.iter().enumerate() {
        let size = tag.data.len();
        if size > MAX_TAG_SIZE {
            return Err(FlvError::TooLarge { index, size });
        }
        let [extended, high, middle, low] = tag.timestamp.to_be_bytes();
        file.push(tag.kind.type_id());
        file.extend_from_slice(&(size as u32).to_be_bytes()[1..]);
        file.extend_from_slice(&[high, middle, low, extended]);
        file.extend_from_slice(&[0, 0, 0]);
        file.extend_from_slice(&tag.data);
        file.extend_from_slice(&(size as u32 + 11).to_be_bytes());
    }
    Ok(file)
}

/// FLV audio codec ids (SoundFormat).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioCodec {
    /// 0: linear PCM, platform endian.
    PcmPlatform,
    /// 1: ADPCM.
    Adpcm,
    /// 2: MP3.
    Mp3,
    /// 3: linear PCM, little endian.
    PcmLe,
    /// 4, 5, 6: Nellymoser (16 kHz mono, 8 kHz mono, any rate).
    Nellymoser,
    /// 7: G.711 A-law.
    G711A,
    /// 8: G.711 µ-law.
    G711U,
    /// 10: AAC.
    Aac,
    /// 11: Speex (16 kHz mono).
    Speex,
    /// 14: MP3 8 kHz.
    Mp3_8k,
    /// Opus in an enhanced-RTMP audio tag (SoundFormat 9, FourCC `Opus`), as
    /// this server stores WebRTC publishers' sound.
    Opus,
    /// Enhanced RTMP `fLaC`.
    Flac,
    /// Enhanced RTMP `ac-3`.
    Ac3,
    /// Enhanced RTMP `ec-3`.
    Eac3,
    /// Anything else.
    Other(u8),
}

impl AudioCodec {
    /// The codec named by a SoundFormat value.
    pub fn from_id(id: u8) -> Self {
        match id {
            0 => AudioCodec::PcmPlatform,
            1 => AudioCodec::Adpcm,
            2 => AudioCodec::Mp3,
            3 => AudioCodec::PcmLe,
            4..=6 => AudioCodec::Nellymoser,
            7 => AudioCodec::G711A,
            8 => AudioCodec::G711U,
            10 => AudioCodec::Aac,
            11 => AudioCodec::Speex,
            14 => AudioCodec::Mp3_8k,
            other => AudioCodec::Other(other),
        }
    }

    /// The codec an Enhanced RTMP audio FourCC names (`Other(9)`, SoundFormat
    /// 9, for one not defined).
    pub fn from_fourcc(fourcc: FourCc) -> Self {
        match fourcc {
            FourCc::OPUS => AudioCodec::Opus,
            FourCc::AAC => AudioCodec::Aac,
            FourCc::MP3 => AudioCodec::Mp3,
            FourCc::FLAC => AudioCodec::Flac,
            FourCc::AC3 => AudioCodec::Ac3,
            FourCc::EAC3 => AudioCodec::Eac3,
            _ => AudioCodec::Other(ENHANCED_AUDIO),
        }
    }

    /// A short lowercase name for logs and hooks.
    pub fn name(self) -> &'static str {
        match self {
            AudioCodec::PcmPlatform | AudioCodec::PcmLe => "pcm",
            AudioCodec::Adpcm => "adpcm",
            AudioCodec::Mp3 | AudioCodec::Mp3_8k => "mp3",
            AudioCodec::Nellymoser => "nellymoser",
            AudioCodec::G711A => "pcma",
            AudioCodec::G711U => "pcmu",
            AudioCodec::Aac => "aac",
            AudioCodec::Speex => "speex",
            AudioCodec::Opus => "opus",
            AudioCodec::Flac => "flac",
            AudioCodec::Ac3 => "ac3",
            AudioCodec::Eac3 => "eac3",
            AudioCodec::Other(_) => "unknown",
        }
    }
}

/// FLV video codec ids (CodecID), plus the enhanced-RTMP FourCC codecs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    /// 2: Sorenson Spark (H.263).
    SorensonSpark,
    /// 3: Screen video.
    ScreenVideo,
    /// 4: On2 VP6.
    Vp6,
    /// 5: On2 VP6 with alpha.
    Vp6Alpha,
    /// 6: Screen video version 2.
    ScreenVideo2,
    /// 7: AVC (H.264).
    Avc,
    /// 12 or enhanced RTMP 'hvc1': HEVC.
    Hevc,
    /// Enhanced RTMP 'av01'.
    Av1,
    /// Enhanced RTMP 'vp09'.
    Vp9,
    /// Enhanced RTMP 'vp08'.
    Vp8,
    /// Anything else.
    Other(u32),
}

impl VideoCodec {
    /// The codec an Enhanced RTMP video FourCC names.
    pub fn from_fourcc(fourcc: FourCc) -> Self {
        match fourcc {
            FourCc::AVC => VideoCodec::Avc,
            FourCc::HEVC => VideoCodec::Hevc,
            FourCc::AV1 => VideoCodec::Av1,
            FourCc::VP9 => VideoCodec::Vp9,
            FourCc::VP8 => VideoCodec::Vp8,
            other => VideoCodec::Other(u32::from_be_bytes(other.0)),
        }
    }

    /// The Enhanced RTMP FourCC of the codec, if it has one.
    pub fn fourcc(self) -> Option<FourCc> {
        match self {
            VideoCodec::Avc => Some(FourCc::AVC),
            VideoCodec::Hevc => Some(FourCc::HEVC),
            VideoCodec::Av1 => Some(FourCc::AV1),
            VideoCodec::Vp9 => Some(FourCc::VP9),
            VideoCodec::Vp8 => Some(FourCc::VP8),
            _ => None,
        }
    }

    /// A short lowercase name for logs and hooks.
    pub fn name(self) -> &'static str {
        match self {
            VideoCodec::SorensonSpark => "sorenson",
            VideoCodec::ScreenVideo | VideoCodec::ScreenVideo2 => "screen",
            VideoCodec::Vp6 | VideoCodec::Vp6Alpha => "vp6",
            VideoCodec::Avc => "h264",
            VideoCodec::Hevc => "h265",
            VideoCodec::Av1 => "av1",
            VideoCodec::Vp9 => "vp9",
            VideoCodec::Vp8 => "vp8",
            VideoCodec::Other(_) => "unknown",
        }
    }
}

/// What the first bytes of an audio tag say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioHeader {
    /// The codec.
    pub codec: AudioCodec,
    /// The codec configuration (AAC AudioSpecificConfig), not a frame.
    pub is_sequence_header: bool,
}

/// What the first bytes of a video tag say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoHeader {
    /// The codec.
    pub codec: VideoCodec,
    /// A keyframe: a player can start decoding here.
    pub is_keyframe: bool,
    /// The codec configuration (AVCDecoderConfigurationRecord and the like), not a frame.
    pub is_sequence_header: bool,
    /// A video info/command frame (frame type 5) carrying no picture.
    pub is_command: bool,
    /// An end of sequence (AVC or HEVC packet type 2, enhanced SequenceEnd):
    /// no picture, though flagged as a keyframe.
    pub is_end_of_sequence: bool,
}

/// Reads an audio tag body's header, legacy or enhanced RTMP; `None` for an empty body.
pub fn audio_header(data: &[u8]) -> Option<AudioHeader> {
    let first = *data.first()?;
    if first >> 4 == ENHANCED_AUDIO {
        // The FourCC of a tag that is not multitrack (nor ModEx).
        let fourcc = data.get(1..5).and_then(|b| <[u8; 4]>::try_from(b).ok());
        let codec = fourcc.map_or(AudioCodec::Other(ENHANCED_AUDIO), |f| {
            AudioCodec::from_fourcc(FourCc(f))
        });
        return Some(AudioHeader {
            codec,
            is_sequence_header: first & 0x0F == 0,
        });
    }
    let codec = AudioCodec::from_id(first >> 4);
    Some(AudioHeader {
        codec,
        is_sequence_header: codec == AudioCodec::Aac && data.get(1) == Some(&0),
    })
}

/// SoundFormat 9: an enhanced-RTMP audio tag (a packet type and a FourCC follow).
const ENHANCED_AUDIO: u8 = 9;

/// Bytes before the codec data in an enhanced-RTMP audio tag.
pub const ENHANCED_AUDIO_HEADER_LEN: usize = 5;

/// An enhanced-RTMP audio tag body holding one Opus packet (packet type
/// CodedFrames, FourCC `Opus`).
pub fn opus_audio_body(packet: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(ENHANCED_AUDIO_HEADER_LEN + packet.len());
    body.push(ENHANCED_AUDIO << 4 | 1);
    body.extend_from_slice(b"Opus");
    body.extend_from_slice(packet);
    body
}

/// The Opus packet in an enhanced-RTMP Opus audio tag body (packet type
/// CodedFrames); `None` for other bodies, sequence headers and the
/// MultichannelConfig.
pub fn opus_packet(body: &[u8]) -> Option<&[u8]> {
    match audio_header(body)? {
        AudioHeader {
            codec: AudioCodec::Opus,
            is_sequence_header: false,
        } if body[0] & 0x0F == 1 => body.get(ENHANCED_AUDIO_HEADER_LEN..),
        _ => None,
    }
}

/// The composition time offset (ms, signed) of a legacy AVC video tag body:
/// how long after its decode time a picture is shown, non-zero only in
/// streams with B-frames. `None` for other bodies.
pub fn composition_offset(body: &[u8]) -> Option<i32> {
    match body {
        [first, _, a, b, c, ..] if first & 0x8F == 7 => Some(i32::from_be_bytes([0, *a, *b, *c]) << 8 >> 8),
        _ => None,
    }
}

/// Reads a video tag body's header, legacy or enhanced RTMP; `None` for an empty body.
pub fn video_header(data: &[u8]) -> Option<VideoHeader> {
    let first = *data.first()?;
    let frame_type = (first >> 4) & 0x07;
    if first & 0x80 != 0 {
        // Enhanced RTMP: low nibble is the packet type, then a FourCC.
        let fourcc = data.get(1..5).and_then(|b| <[u8; 4]>::try_from(b).ok());
        let codec = fourcc.map_or(VideoCodec::Other(0), |f| VideoCodec::from_fourcc(FourCc(f)));
        return Some(VideoHeader {
            codec,
            is_keyframe: frame_type == 1,
            is_sequence_header: first & 0x0F == 0,
            is_command: frame_type == 5,
            is_end_of_sequence: first & 0x0F == 2,
        });
    }
    let codec = match first & 0x0F {
        2 => VideoCodec::SorensonSpark,
        3 => VideoCodec::ScreenVideo,
        4 => VideoCodec::Vp6,
        5 => VideoCodec::Vp6Alpha,
        6 => VideoCodec::ScreenVideo2,
        7 => VideoCodec::Avc,
        12 => VideoCodec::Hevc,
        other => VideoCodec::Other(u32::from(other)),
    };
    let packet_type = data.get(1).copied();
    Some(VideoHeader {
        codec,
        is_keyframe: frame_type == 1,
        is_sequence_header: matches!(codec, VideoCodec::Avc | VideoCodec::Hevc) && packet_type == Some(0),
        is_command: frame_type == 5,
        is_end_of_sequence: matches!(codec, VideoCodec::Avc | VideoCodec::Hevc) && packet_type == Some(2),
    })
}

/// `tags` with nothing of the `kind` track (audio or video) before `after`
/// ms, as a camera that starts after the microphone (or a microphone after
/// the camera) would send. The track resumes at its first frame from then
/// on that a decoder can start at (a keyframe, for video), preceded by the
/// last sequence header before it, restamped.
pub fn track_from(tags: Vec<Tag>, kind: TagKind, after: u32) -> Vec<Tag> {
    let is_config = |t: &Tag| match kind {
        TagKind::Video => video_header(&t.data).is_some_and(|h| h.is_sequence_header),
        _ => audio_header(&t.data).is_some_and(|h| h.is_sequence_header),
    };
    let can_start = |t: &Tag| kind != TagKind::Video || video_header(&t.data).is_some_and(|h| h.is_keyframe);
    let mut config: Option<Tag> = None;
    let mut started = false;
    let mut out = Vec::with_capacity(tags.len());
    for tag in tags {
        if tag.kind != kind || started {
            out.push(tag);
            continue;
        }
        if is_config(&tag) {
            config = Some(tag);
        } else if tag.timestamp >= after && can_start(&tag) {
            if let Some(config) = config.take() {
                out.push(Tag {
                    timestamp: tag.timestamp,
                    ..config
                });
            }
            out.push(tag);
            started = true;
        }
    }
    out
}

/// The body of an AVC end of sequence (AVCPacketType 2, FLV specification
/// E.4.3.1): no picture. FFmpeg's FLV muxer ends each H.264 stream with one.
pub const AVC_END_OF_SEQUENCE: [u8; 5] = [0x17, 0x02, 0, 0, 0];

/// `tags` as an H.264 encoder restarted at `at` ms sends them: before the
/// first keyframe from then on, an AVC end of sequence, then the last AVC
/// sequence header again, both at the keyframe's timestamp.
pub fn avc_restart_at(tags: Vec<Tag>, at: u32) -> Vec<Tag> {
    let mut header: Option<Tag> = None;
    let mut restarted = false;
    let mut out = Vec::with_capacity(tags.len() + 2);
    for tag in tags {
        let video = match tag.kind {
            TagKind::Video => video_header(&tag.data).filter(|h| h.codec == VideoCodec::Avc),
            _ => None,
        };
        match video {
            Some(h) if h.is_sequence_header => header = Some(tag.clone()),
            Some(h) if h.is_keyframe && !restarted && tag.timestamp >= at => {
                if let Some(header) = &header {
                    out.push(Tag {
                        kind: TagKind::Video,
                        timestamp: tag.timestamp,
                        data: Bytes::from_static(&AVC_END_OF_SEQUENCE),
                    });
                    out.push(Tag {
                        timestamp: tag.timestamp,
                        ..header.clone()
                    });
                    restarted = true;
                }
            }
            _ => {}
        }
        out.push(tag);
    }
    out
}

/// What a stream's `onMetaData` says about its tracks: `Some(true)` when it
/// announces the track (a `videocodecid`/`audiocodecid` that is not 0 or
/// empty, or `hasVideo`/`hasAudio` true), `Some(false)` when it says there is
/// none (`hasVideo: false`, or no codec id for the track at all), `None` when it
/// says nothing either way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetadataTracks {
    /// Whether the stream has (or will have) video.
    pub video: Option<bool>,
    /// Whether the stream has (or will have) audio.
    pub audio: Option<bool>,
}

/// Reads an `onMetaData` data message (AMF0: the name, then an object or
/// ECMA array; `@setDataFrame` already removed). `None` for any other data
/// message, or one that is not AMF0.
pub fn metadata_tracks(body: &[u8]) -> Option<MetadataTracks> {
    use crate::amf::{decode_amf0, Value};
    let (name, used) = decode_amf0(body).ok()?;
    if name.as_str() != Some("onMetaData") {
        return None;
    }
    let properties = match decode_amf0(body.get(used..)?) {
        Ok((object, _)) => object,
        // The name alone still says this is metadata, if nothing about tracks.
        Err(_) => {
            return Some(MetadataTracks {
                video: None,
                audio: None,
            })
        }
    };
    let announced = |has: &str, codec: &str| -> Option<bool> {
        if let Some(flag) = properties.get(has).and_then(Value::as_bool) {
            return Some(flag);
        }
        let id = properties.get(codec)?;
        Some(match id {
            Value::Number(n) => *n != 0.0,
            Value::String(s) => !s.is_empty(),
            _ => true,
        })
    };
    let any_codec = properties.get("videocodecid").is_some() || properties.get("audiocodecid").is_some();
    // Metadata that names one track's codec and not the other's says the
    // other is absent (ffmpeg and OBS write only the codecs they send).
    let absent = any_codec.then_some(false);
    Some(MetadataTracks {
        video: announced("hasVideo", "videocodecid").or(absent),
        audio: announced("hasAudio", "audiocodecid").or(absent),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(properties: &[(&str, crate::amf::Value)]) -> Vec<u8> {
        use crate::amf::{encode_amf0, Value};
        let mut body = Vec::new();
        encode_amf0(&Value::from("onMetaData"), &mut body);
        encode_amf0(&Value::object(properties.iter().cloned()), &mut body);
        body
    }

    #[test]
    fn a_track_starts_late_at_a_frame_it_can_start_at_after_its_sequence_header() {
        let tag = |kind, timestamp, data: &'static [u8]| Tag {
            kind,
            timestamp,
            data: Bytes::from_static(data),
        };
        let tags = vec![
            tag(TagKind::Script, 0, b"meta"),
            tag(TagKind::Video, 0, &[0x17, 0]),
            tag(TagKind::Audio, 0, &[0xAF, 1]),
            tag(TagKind::Video, 0, &[0x17, 1]),
            tag(TagKind::Video, 2000, &[0x27, 1]),
            tag(TagKind::Audio, 2000, &[0xAF, 1]),
            tag(TagKind::Video, 2040, &[0x17, 1]),
            tag(TagKind::Video, 2080, &[0x27, 1]),
        ];
        let digest = |tags: Vec<Tag>| -> Vec<(TagKind, u32, u8)> {
            tags.iter()
                .map(|t| (t.kind, t.timestamp, t.data[0] ^ t.data.get(1).copied().unwrap_or(0)))
                .collect()
        };
        assert_eq!(
            digest(track_from(tags.clone(), TagKind::Video, 2000)),
            [
                (TagKind::Script, 0, b'm' ^ b'e'),
                (TagKind::Audio, 0, 0xAE),
                (TagKind::Audio, 2000, 0xAE),
                (TagKind::Video, 2040, 0x17),
                (TagKind::Video, 2040, 0x16),
                (TagKind::Video, 2080, 0x26),
            ]
        );
        // Sound that starts late: its AAC sequence header comes with its first frame.
        let mut tags = tags;
        tags.insert(1, tag(TagKind::Audio, 0, &[0xAF, 0]));
        assert_eq!(
            digest(track_from(tags, TagKind::Audio, 1000)),
            [
                (TagKind::Script, 0, b'm' ^ b'e'),
                (TagKind::Video, 0, 0x17),
                (TagKind::Video, 0, 0x16),
                (TagKind::Video, 2000, 0x26),
                (TagKind::Audio, 2000, 0xAF),
                (TagKind::Audio, 2000, 0xAE),
                (TagKind::Video, 2040, 0x16),
                (TagKind::Video, 2080, 0x26),
            ]
        );
    }

    #[test]
    fn metadata_announces_tracks() {
        use crate::amf::Value;
        let av = metadata(&[
            ("videocodecid", Value::Number(7.0)),
            ("audiocodecid", Value::Number(11.0)),
        ]);
        assert_eq!(
            metadata_tracks(&av),
            Some(MetadataTracks {
                video: Some(true),
                audio: Some(true)
            })
        );
        let audio_only = metadata(&[("audiocodecid", Value::Number(11.0)), ("duration", Value::Number(0.0))]);
        assert_eq!(metadata_tracks(&audio_only).unwrap().video, Some(false));
        let fourcc = metadata(&[("videocodecid", Value::from("avc1"))]);
        assert_eq!(metadata_tracks(&fourcc).unwrap().video, Some(true));
        assert_eq!(metadata_tracks(&fourcc).unwrap().audio, Some(false));
        let flagged = metadata(&[
            ("hasVideo", Value::Boolean(false)),
            ("videocodecid", Value::Number(7.0)),
        ]);
        assert_eq!(metadata_tracks(&flagged).unwrap().video, Some(false), "hasVideo wins");
        let silent = metadata(&[("width", Value::Number(320.0))]);
        assert_eq!(metadata_tracks(&silent).unwrap().video, None, "no codec named: unknown");
        assert_eq!(
            metadata_tracks(&metadata(&[("videocodecid", Value::Number(0.0))]))
                .unwrap()
                .video,
            Some(false)
        );
        let mut other = Vec::new();
        crate::amf::encode_amf0(&Value::from("onCuePoint"), &mut other);
        assert_eq!(metadata_tracks(&other), None);
        assert_eq!(metadata_tracks(b"\xff"), None);
    }

    #[test]
    fn metadata_of_the_fixtures() {
        let read = |name: &str| {
            let path = format!("{}/../fixtures/flv/{name}", env!("CARGO_MANIFEST_DIR"));
            let tags = read_tags(&Bytes::from(std::fs::read(path).unwrap())).unwrap();
            let script = tags.iter().find(|t| t.kind == TagKind::Script).unwrap();
            metadata_tracks(&script.data).unwrap()
        };
        assert_eq!(read("red5_h264_speex.flv").video, Some(true));
        assert_eq!(read("ffmpeg_speex_16000_1khz_10s.flv").video, Some(false));
        assert_eq!(read("ffmpeg_h264_640x360_30fps.flv").audio, Some(false));
    }

    #[test]
    fn headers() {
        let aac_config = audio_header(&[0xAF, 0x00, 0x12, 0x10]).unwrap();
        assert_eq!(aac_config.codec, AudioCodec::Aac);
        assert!(aac_config.is_sequence_header);
        assert!(!audio_header(&[0xAF, 0x01]).unwrap().is_sequence_header);
        assert_eq!(audio_header(&[0xB2]).unwrap().codec, AudioCodec::Speex);
        assert_eq!(audio_header(&[0x6E]).unwrap().codec, AudioCodec::Nellymoser);
        assert!(audio_header(&[]).is_none());

        let opus = opus_audio_body(&[0xFC, 1, 2]);
        assert_eq!(&opus[..5], b"\x91Opus");
        assert_eq!(audio_header(&opus).unwrap().codec, AudioCodec::Opus);
        assert_eq!(opus_packet(&opus), Some(&[0xFC, 1, 2][..]));
        assert!(audio_header(b"\x90Opus").unwrap().is_sequence_header);
        assert_eq!(opus_packet(b"\x90Opus\x01"), None, "OpusHead is not a packet");
        assert_eq!(audio_header(b"\x91fLaC").unwrap().codec, AudioCodec::Flac);
        assert_eq!(audio_header(b"\x91zzzz").unwrap().codec, AudioCodec::Other(9));
        assert_eq!(opus_packet(&[0xB2, 1]), None);

        let idr = video_header(&[0x17, 0x01, 0, 0, 0]).unwrap();
        assert!(idr.is_keyframe && !idr.is_sequence_header && idr.codec == VideoCodec::Avc);
        assert!(video_header(&[0x17, 0x00]).unwrap().is_sequence_header);
        let inter = video_header(&[0x27, 0x01]).unwrap();
        assert!(!inter.is_keyframe);
        assert_eq!(video_header(&[0x12]).unwrap().codec, VideoCodec::SorensonSpark);
        let enhanced = video_header(b"\x90hvc1").unwrap();
        assert!(enhanced.is_keyframe && enhanced.is_sequence_header && enhanced.codec == VideoCodec::Hevc);
    }

    #[test]
    fn a_written_file_reads_back_to_its_tags() {
        let tag = |kind, timestamp, data: &'static [u8]| Tag {
            kind,
            timestamp,
            data: Bytes::from_static(data),
        };
        let tags = vec![
            tag(TagKind::Script, 0, b"\x02\x00\x0aonMetaData"),
            tag(TagKind::Video, 0, b"\x90hvc1\x01"),
            tag(TagKind::Audio, 20, &[0xB2, 0x01]),
            tag(TagKind::Video, 0x0123_4567, &[]),
            tag(TagKind::Audio, u32::MAX, &[0xAF, 0x01, 0x21]),
        ];
        let file = write_file(&tags, true, true).unwrap();
        assert_eq!(&file[..13], b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00");
        assert_eq!(read_tags(&Bytes::from(file.clone())).unwrap(), tags);
        // The 24-bit timestamp, then its extension byte (the top 8 bits).
        let fourth = 13 + (11 + 13 + 4) + (11 + 6 + 4) + (11 + 2 + 4);
        assert_eq!(&file[fourth + 4..fourth + 8], &[0x23, 0x45, 0x67, 0x01]);
        // Every PreviousTagSize is the tag's 11-byte header plus its body.
        assert_eq!(&file[file.len() - 4..], &(11u32 + 3).to_be_bytes());
        assert_eq!(write_file(&[], false, true).unwrap()[4], 0x01);
        assert_eq!(
            write_file(&[tag(TagKind::Audio, 0, &[]), tag(TagKind::Audio, 0, &[])], true, false).unwrap()[4],
            0x04
        );
        let huge = Tag {
            kind: TagKind::Video,
            timestamp: 0,
            data: Bytes::from(vec![0; MAX_TAG_SIZE + 1]),
        };
        assert_eq!(
            write_file(&[tags[0].clone(), huge], false, true),
            Err(FlvError::TooLarge {
                index: 1,
                size: MAX_TAG_SIZE + 1
            })
        );
    }

    #[test]
    fn reads_a_small_file_and_rejects_truncation() {
        let mut file = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
        file.extend([8, 0, 0, 2, 0, 0, 20, 0, 0, 0, 0, 0xB2, 0x01, 0, 0, 0, 13]);
        let tags = read_tags(&Bytes::from(file.clone())).unwrap();
        assert_eq!(tags.len(), 1);
        assert_eq!(
            (tags[0].kind, tags[0].timestamp, &tags[0].data[..]),
            (TagKind::Audio, 20, &[0xB2, 1][..])
        );
        file.truncate(file.len() - 6);
        assert_eq!(read_tags(&Bytes::from(file)), Err(FlvError::Truncated { at: 13 }));
        assert_eq!(read_tags(&Bytes::from_static(b"MP4")), Err(FlvError::NotFlv));
    }

    #[test]
    fn an_avc_restart_puts_an_end_of_sequence_and_the_header_before_the_next_keyframe() {
        let video = |timestamp: u32, data: &'static [u8]| Tag {
            kind: TagKind::Video,
            timestamp,
            data: Bytes::from_static(data),
        };
        let tags = vec![
            video(0, &[0x17, 0, 0, 0, 0, 1]),
            video(0, &[0x17, 1, 0, 0, 0, 9]),
            video(40, &[0x27, 1, 0, 0, 0, 9]),
            video(80, &[0x27, 1, 0, 0, 0, 9]),
            video(120, &[0x17, 1, 0, 0, 0, 9]),
            video(160, &[0x17, 1, 0, 0, 0, 9]),
        ];
        let out = avc_restart_at(tags.clone(), 50);
        assert_eq!(out.len(), 8);
        assert_eq!(out[..4], tags[..4]);
        assert_eq!((out[4].timestamp, &out[4].data[..]), (120, &AVC_END_OF_SEQUENCE[..]));
        assert_eq!((out[5].timestamp, &out[5].data), (120, &tags[0].data));
        assert_eq!(out[6..], tags[4..]);
    }
}
