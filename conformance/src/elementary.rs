//! Elementary streams as Debian's ffmpeg 5.1 writes them, made into Enhanced
//! FLV tags (Enhanced RTMP v2, "Enhanced Audio" and "Enhanced Video"), for
//! the codecs that ffmpeg 5.1 cannot put in an FLV file itself: HEVC, VP8,
//! VP9, AV1, Opus, FLAC, AC-3 and E-AC-3.
//!
//! Each function takes the whole output of one `ffmpeg ... -f FORMAT` run and
//! gives the tags of that one stream: a SequenceStart carrying the codec's
//! configuration record (none for AC-3 and E-AC-3), then one CodedFrames tag
//! per picture or audio packet, stamped in milliseconds. [`interleave`] puts
//! an audio and a video stream together for [`media::flv::write_file`].
//!
//! Everything here is sans-IO and reads its input as untrusted: a stream that
//! is cut short, malformed, or uses something these fixtures do not need is
//! an [`ElementaryError`], never a panic.

use bytes::Bytes;
use media::eflv::{self, EflvError, FourCc, Header, Packet, PacketType};
use media::flv::{Tag, TagKind};

/// Why an elementary stream could not be made into tags.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ElementaryError {
    /// The input ends inside a field or a unit.
    #[error("{format}: the stream ends inside {what}")]
    Truncated {
        /// The input format.
        format: &'static str,
        /// What was being read.
        what: &'static str,
    },
    /// A field holds a value the format forbids.
    #[error("{format}: {what}")]
    Malformed {
        /// The input format.
        format: &'static str,
        /// What is wrong.
        what: String,
    },
    /// Something every stream of the format has is not there.
    #[error("{format}: no {what}")]
    Missing {
        /// The input format.
        format: &'static str,
        /// What is missing.
        what: &'static str,
    },
    /// A valid stream that uses something this module does not handle.
    #[error("{format}: {what} is not supported")]
    Unsupported {
        /// The input format.
        format: &'static str,
        /// What it uses.
        what: &'static str,
    },
    /// The enhanced tag body could not be written.
    #[error("cannot write the tag: {0}")]
    Tag(#[from] EflvError),
}

/// A constant frame rate: `frames` pictures every `seconds` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRate {
    /// Pictures...
    pub frames: u32,
    /// ...per this many seconds.
    pub seconds: u32,
}

impl FrameRate {
    /// A whole number of pictures per second.
    pub const fn per_second(frames: u32) -> FrameRate {
        FrameRate { frames, seconds: 1 }
    }
}

const HEVC: &str = "HEVC Annex B";
const IVF: &str = "IVF";
const AV1: &str = "AV1 OBU stream";
const OGG: &str = "Ogg Opus";
const FLAC: &str = "FLAC";
const AC3: &str = "AC-3";
const EAC3: &str = "E-AC-3";

type Result<T> = std::result::Result<T, ElementaryError>;

fn malformed<T>(format: &'static str, what: impl Into<String>) -> Result<T> {
    Err(ElementaryError::Malformed {
        format,
        what: what.into(),
    })
}

fn truncated(format: &'static str, what: &'static str) -> ElementaryError {
    ElementaryError::Truncated { format, what }
}

/// `count` units of `per_second` each, in whole milliseconds (rounded down).
fn millis(format: &'static str, count: u64, per_second: u64) -> Result<u32> {
    let too_late = ElementaryError::Unsupported {
        format,
        what: "a timestamp past 2^32 ms",
    };
    if per_second == 0 {
        return malformed(format, "a clock of zero units per second");
    }
    let ms = count.checked_mul(1000).ok_or(too_late.clone())? / per_second;
    u32::try_from(ms).map_err(|_| too_late)
}

/// The time of picture `index` at a constant `rate`.
fn frame_time(format: &'static str, index: usize, rate: FrameRate) -> Result<u32> {
    let seconds = (index as u64).saturating_mul(u64::from(rate.seconds));
    millis(format, seconds, u64::from(rate.frames))
}

/// An enhanced tag holding one packet.
fn tag(
    kind: TagKind,
    frame_type: u8,
    timestamp: u32,
    packet_type: PacketType,
    fourcc: FourCc,
    data: &[u8],
) -> Result<Tag> {
    let header = Header::single(kind, frame_type, packet_type);
    let packet = Packet {
        track: 0,
        fourcc,
        packet_type,
        composition_offset: 0,
        data,
    };
    let mut body = Vec::with_capacity(data.len() + 8);
    eflv::write(&mut body, &header, &[packet])?;
    Ok(Tag {
        kind,
        timestamp,
        data: Bytes::from(body),
    })
}

/// A video tag: VideoFrameType 1 (key) or 2 (inter).
fn video_tag(timestamp: u32, keyframe: bool, packet_type: PacketType, fourcc: FourCc, data: &[u8]) -> Result<Tag> {
    let frame_type = if keyframe { 1 } else { 2 };
    tag(TagKind::Video, frame_type, timestamp, packet_type, fourcc, data)
}

/// An audio tag.
fn audio_tag(timestamp: u32, packet_type: PacketType, fourcc: FourCc, data: &[u8]) -> Result<Tag> {
    tag(TagKind::Audio, 0, timestamp, packet_type, fourcc, data)
}

/// Tags of one video and one audio stream in one list, for an FLV file: the
/// tags at the head of each stream that are not coded frames (the sequence
/// starts) first, video before audio, then the coded frames by timestamp,
/// each stream's own order kept and video first at equal timestamps.
pub fn interleave(video: Vec<Tag>, audio: Vec<Tag>) -> Vec<Tag> {
    let is_coded = |t: &Tag| {
        eflv::parse(t.kind, &t.data)
            .ok()
            .flatten()
            .is_some_and(|parsed| parsed.header.packet_type.is_coded())
    };
    let split = |tags: Vec<Tag>| {
        let head = tags.iter().take_while(|t| !is_coded(t)).count();
        let mut tags = tags;
        let rest = tags.split_off(head);
        (tags, rest)
    };
    let (video_head, video) = split(video);
    let (audio_head, audio) = split(audio);
    let mut out = Vec::with_capacity(video_head.len() + audio_head.len() + video.len() + audio.len());
    out.extend(video_head);
    out.extend(audio_head);
    let mut video = video.into_iter().peekable();
    let mut audio = audio.into_iter().peekable();
    loop {
        let next = match (video.peek(), audio.peek()) {
            (Some(v), Some(a)) if v.timestamp <= a.timestamp => video.next(),
            (Some(_), Some(_)) => audio.next(),
            (Some(_), None) => video.next(),
            (None, Some(_)) => audio.next(),
            (None, None) => break,
        };
        out.extend(next);
    }
    out
}

/// A most-significant-bit-first reader over a header.
struct Bits<'a> {
    data: &'a [u8],
    at: usize,
    format: &'static str,
    what: &'static str,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8], format: &'static str, what: &'static str) -> Self {
        Bits {
            data,
            at: 0,
            format,
            what,
        }
    }

    fn bit(&mut self) -> Result<u64> {
        let byte = self.data.get(self.at / 8).ok_or(truncated(self.format, self.what))?;
        let bit = (byte >> (7 - self.at % 8)) & 1;
        self.at += 1;
        Ok(u64::from(bit))
    }

    /// `n` bits (at most 64) as a number.
    fn bits(&mut self, n: u32) -> Result<u64> {
        let mut value = 0;
        for _ in 0..n.min(64) {
            value = value << 1 | self.bit()?;
        }
        Ok(value)
    }

    fn flag(&mut self) -> Result<bool> {
        Ok(self.bit()? == 1)
    }

    fn skip(&mut self, n: u64) -> Result<()> {
        let end = (self.at as u64).saturating_add(n);
        if end > self.data.len() as u64 * 8 {
            return Err(truncated(self.format, self.what));
        }
        self.at = end as usize;
        Ok(())
    }

    /// The number of zero bits before the next one bit, at most `limit`
    /// (that one bit is read too, unless the limit is reached).
    fn leading_zeros(&mut self, limit: u32) -> Result<u32> {
        let mut zeros = 0;
        while zeros < limit && self.bit()? == 0 {
            zeros += 1;
        }
        Ok(zeros)
    }

    /// An unsigned Exp-Golomb number, ue(v) (H.265 9.2), up to 32 bits.
    fn ue(&mut self) -> Result<u32> {
        let zeros = self.leading_zeros(32)?;
        if zeros >= 32 {
            return malformed(
                self.format,
                format!("an Exp-Golomb number too long in its {}", self.what),
            );
        }
        let value = (1u64 << zeros) - 1 + self.bits(zeros)?;
        u32::try_from(value).or_else(|_| {
            malformed(
                self.format,
                format!("an Exp-Golomb number too large in its {}", self.what),
            )
        })
    }

    /// A variable-length unsigned number, uvlc() (AV1 4.10.3).
    fn uvlc(&mut self) -> Result<u32> {
        let zeros = self.leading_zeros(32)?;
        if zeros >= 32 {
            return Ok(u32::MAX);
        }
        Ok(((1u64 << zeros) - 1 + self.bits(zeros)?) as u32)
    }
}

// ---------------------------------------------------------------------------
// HEVC

/// HEVC NAL unit types (H.265 table 7-1) this module treats specially.
const HEVC_VPS: u8 = 32;
const HEVC_SPS: u8 = 33;
const HEVC_PPS: u8 = 34;
const HEVC_AUD: u8 = 35;
const HEVC_PREFIX_SEI: u8 = 39;

fn hevc_nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| (b >> 1) & 0x3F)
}

/// HEVC from an Annex B byte stream (`ffmpeg ... -c:v libx265 -f hevc`):
/// a SequenceStart with the HEVCDecoderConfigurationRecord (ISO/IEC
/// 14496-15 8.3.3) built from the VPS, SPS and PPS, then one CodedFrames
/// per access unit, its NAL units with 4-byte length prefixes. Keyframes
/// are the access units holding an IRAP picture (NAL unit types 16 to 21).
///
/// The parameter sets must all come before the first picture; they are left
/// out of the coded frames (repeats that are identical are allowed). An
/// Annex B stream carries no times: picture `i` is at `i / rate` and every
/// composition time offset is 0, so the stream must not reorder pictures
/// (no B-frames: `-x265-params bframes=0`); an SPS that allows reordering
/// (sps_max_num_reorder_pics > 0) is refused.
pub fn hevc_annexb(stream: &[u8], rate: FrameRate) -> Result<Vec<Tag>> {
    let units = hevc_access_units(annexb_nal_units(stream)?)?;
    let first = units.first().ok_or(ElementaryError::Missing {
        format: HEVC,
        what: "picture",
    })?;
    let mut sets: [Vec<&[u8]>; 3] = Default::default();
    for nal in first.iter().take_while(|nal| hevc_nal_type(nal) >= 32) {
        let kind = hevc_nal_type(nal);
        if (HEVC_VPS..=HEVC_PPS).contains(&kind) {
            let array = &mut sets[usize::from(kind - HEVC_VPS)];
            if !array.contains(nal) {
                array.push(nal);
            }
        }
    }
    for (array, name) in sets.iter().zip(["VPS", "SPS", "PPS"]) {
        if array.is_empty() {
            return Err(ElementaryError::Missing {
                format: HEVC,
                what: name,
            });
        }
    }
    let sps = HevcSps::parse(sets[usize::from(HEVC_SPS - HEVC_VPS)][0])?;
    if sps.max_num_reorder_pics > 0 {
        return Err(ElementaryError::Unsupported {
            format: HEVC,
            what: "picture reordering (B-frames)",
        });
    }
    let mut tags = vec![video_tag(
        0,
        true,
        PacketType::SequenceStart,
        FourCc::HEVC,
        &hevc_record(&sps, &sets)?,
    )?];
    for (index, unit) in units.iter().enumerate() {
        let mut data = Vec::new();
        let mut keyframe = false;
        for nal in unit {
            let kind = hevc_nal_type(nal);
            if (HEVC_VPS..=HEVC_PPS).contains(&kind) {
                if !sets[usize::from(kind - HEVC_VPS)].contains(nal) {
                    return Err(ElementaryError::Unsupported {
                        format: HEVC,
                        what: "a parameter set that changes after the first picture",
                    });
                }
                continue;
            }
            keyframe |= (16..=21).contains(&kind);
            let length = u32::try_from(nal.len()).or_else(|_| malformed(HEVC, "a NAL unit over 4 GiB"))?;
            data.extend_from_slice(&length.to_be_bytes());
            data.extend_from_slice(nal);
        }
        let timestamp = frame_time(HEVC, index, rate)?;
        tags.push(video_tag(
            timestamp,
            keyframe,
            PacketType::CodedFrames,
            FourCc::HEVC,
            &data,
        )?);
    }
    Ok(tags)
}

/// The NAL units of an Annex B byte stream (H.265 annex B), without their
/// start codes and trailing zero bytes.
fn annexb_nal_units(stream: &[u8]) -> Result<Vec<&[u8]>> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i] == 0 && stream[i + 1] == 0 && stream[i + 2] == 1 {
            starts.push(i);
            i += 3;
        } else {
            i += 1;
        }
    }
    let Some(&first) = starts.first() else {
        return Err(ElementaryError::Missing {
            format: HEVC,
            what: "start code",
        });
    };
    if stream[..first].iter().any(|&b| b != 0) {
        return malformed(HEVC, "bytes before the first start code");
    }
    let mut nals = Vec::with_capacity(starts.len());
    for (k, &start) in starts.iter().enumerate() {
        let end = starts.get(k + 1).copied().unwrap_or(stream.len());
        let mut nal = &stream[start + 3..end];
        while let [rest @ .., 0] = nal {
            nal = rest;
        }
        if nal.len() < 2 {
            return malformed(HEVC, "a NAL unit shorter than its header");
        }
        if nal[0] & 0x80 != 0 {
            return malformed(HEVC, "a NAL unit with forbidden_zero_bit set");
        }
        if nal[0] & 0x01 != 0 || nal[1] & 0xF8 != 0 {
            return Err(ElementaryError::Unsupported {
                format: HEVC,
                what: "a NAL unit of a layer other than 0",
            });
        }
        if nal[1] & 0x07 == 0 {
            return malformed(HEVC, "a NAL unit with nuh_temporal_id_plus1 0");
        }
        nals.push(nal);
    }
    Ok(nals)
}

/// NAL units grouped into access units (H.265 7.4.2.4.4): after a picture,
/// an access unit delimiter, a parameter set, a prefix SEI, a NAL unit of
/// types 41..=44 or 48..=55, or the first slice segment of a picture starts
/// the next one.
fn hevc_access_units(nals: Vec<&[u8]>) -> Result<Vec<Vec<&[u8]>>> {
    let mut units: Vec<Vec<&[u8]>> = Vec::new();
    let mut current: Vec<&[u8]> = Vec::new();
    let mut has_picture = false;
    for nal in nals {
        let kind = hevc_nal_type(nal);
        let is_vcl = kind < 32;
        let starts_unit = if is_vcl {
            // first_slice_segment_in_pic_flag, the first bit after the header.
            nal.get(2).ok_or(truncated(HEVC, "a slice segment header"))? & 0x80 != 0
        } else {
            matches!(kind, HEVC_VPS..=HEVC_AUD | HEVC_PREFIX_SEI | 41..=44 | 48..=55)
        };
        if starts_unit && has_picture {
            units.push(std::mem::take(&mut current));
            has_picture = false;
        }
        has_picture |= is_vcl;
        current.push(nal);
    }
    if !current.is_empty() {
        if !has_picture {
            return malformed(HEVC, "NAL units after the last picture that belong to none");
        }
        units.push(current);
    }
    Ok(units)
}

/// What the decoder configuration record takes from a sequence parameter set.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HevcSps {
    profile_space: u8,
    tier: bool,
    profile_idc: u8,
    compatibility: u32,
    constraints: [u8; 6],
    level_idc: u8,
    max_sub_layers: u8,
    temporal_id_nesting: bool,
    chroma_format_idc: u8,
    bit_depth_luma_minus8: u8,
    bit_depth_chroma_minus8: u8,
    /// sps_max_num_reorder_pics of the highest sub-layer.
    max_num_reorder_pics: u32,
}

impl HevcSps {
    /// Reads an SPS NAL unit (H.265 7.3.2.2) as far as its sub-layer
    /// ordering info.
    fn parse(nal: &[u8]) -> Result<HevcSps> {
        let rbsp = media::h264::without_emulation_prevention(nal);
        let mut b = Bits::new(rbsp.get(2..).unwrap_or_default(), HEVC, "SPS");
        b.skip(4)?; // sps_video_parameter_set_id
        let max_sub_layers_minus1 = b.bits(3)? as u8;
        if max_sub_layers_minus1 > 6 {
            return malformed(HEVC, "sps_max_sub_layers_minus1 7");
        }
        let temporal_id_nesting = b.flag()?;
        // profile_tier_level(1, sps_max_sub_layers_minus1), 7.3.3.
        let profile_space = b.bits(2)? as u8;
        let tier = b.flag()?;
        let profile_idc = b.bits(5)? as u8;
        let compatibility = b.bits(32)? as u32;
        let mut constraints = [0; 6];
        for byte in &mut constraints {
            *byte = b.bits(8)? as u8;
        }
        let level_idc = b.bits(8)? as u8;
        let mut present = Vec::new();
        for _ in 0..max_sub_layers_minus1 {
            present.push((b.flag()?, b.flag()?));
        }
        if max_sub_layers_minus1 > 0 {
            b.skip(2 * u64::from(8 - max_sub_layers_minus1))?; // reserved_zero_2bits
        }
        for (profile_present, level_present) in present {
            if profile_present {
                b.skip(88)?; // sub_layer profile space .. constraint flags
            }
            if level_present {
                b.skip(8)?; // sub_layer_level_idc
            }
        }
        b.ue()?; // sps_seq_parameter_set_id
        let chroma_format_idc = b.ue()?;
        if chroma_format_idc > 3 {
            return malformed(HEVC, format!("chroma_format_idc {chroma_format_idc}"));
        }
        if chroma_format_idc == 3 {
            b.skip(1)?; // separate_colour_plane_flag
        }
        b.ue()?; // pic_width_in_luma_samples
        b.ue()?; // pic_height_in_luma_samples
        if b.flag()? {
            for _ in 0..4 {
                b.ue()?; // conf_win offsets
            }
        }
        let bit_depth_luma_minus8 = b.ue()?;
        let bit_depth_chroma_minus8 = b.ue()?;
        if bit_depth_luma_minus8 > 7 || bit_depth_chroma_minus8 > 7 {
            return malformed(HEVC, "a bit depth over 15");
        }
        b.ue()?; // log2_max_pic_order_cnt_lsb_minus4
        let all_sub_layers = b.flag()?;
        let first = if all_sub_layers { 0 } else { max_sub_layers_minus1 };
        let mut max_num_reorder_pics = 0;
        for _ in first..=max_sub_layers_minus1 {
            b.ue()?; // sps_max_dec_pic_buffering_minus1
            max_num_reorder_pics = b.ue()?;
            b.ue()?; // sps_max_latency_increase_plus1
        }
        Ok(HevcSps {
            profile_space,
            tier,
            profile_idc,
            compatibility,
            constraints,
            level_idc,
            max_sub_layers: max_sub_layers_minus1 + 1,
            temporal_id_nesting,
            chroma_format_idc: chroma_format_idc as u8,
            bit_depth_luma_minus8: bit_depth_luma_minus8 as u8,
            bit_depth_chroma_minus8: bit_depth_chroma_minus8 as u8,
            max_num_reorder_pics,
        })
    }
}

/// The HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 8.3.3.1.2): the
/// general profile, tier and level and the format fields from the SPS,
/// min_spatial_segmentation_idc, parallelismType and avgFrameRate 0
/// (unknown), 4-byte NAL unit lengths, then the VPS, SPS and PPS arrays
/// (array_completeness 1: the coded frames carry no parameter sets).
fn hevc_record(sps: &HevcSps, sets: &[Vec<&[u8]>; 3]) -> Result<Vec<u8>> {
    let mut out = vec![1, sps.profile_space << 6 | u8::from(sps.tier) << 5 | sps.profile_idc];
    out.extend_from_slice(&sps.compatibility.to_be_bytes());
    out.extend_from_slice(&sps.constraints);
    out.push(sps.level_idc);
    out.extend_from_slice(&[0xF0, 0x00]); // reserved, min_spatial_segmentation_idc 0
    out.push(0xFC); // reserved, parallelismType 0
    out.push(0xFC | sps.chroma_format_idc);
    out.push(0xF8 | sps.bit_depth_luma_minus8);
    out.push(0xF8 | sps.bit_depth_chroma_minus8);
    out.extend_from_slice(&[0, 0]); // avgFrameRate
                                    // constantFrameRate 0, numTemporalLayers, temporalIdNested, lengthSizeMinusOne 3.
    out.push((sps.max_sub_layers & 0x07) << 3 | u8::from(sps.temporal_id_nesting) << 2 | 3);
    out.push(3);
    for (kind, nals) in (HEVC_VPS..).zip(sets) {
        out.push(0x80 | kind);
        let count = u16::try_from(nals.len()).or_else(|_| malformed(HEVC, "over 65535 parameter sets"))?;
        out.extend_from_slice(&count.to_be_bytes());
        for nal in nals {
            let length = u16::try_from(nal.len()).or_else(|_| malformed(HEVC, "a parameter set over 64 KiB"))?;
            out.extend_from_slice(&length.to_be_bytes());
            out.extend_from_slice(nal);
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// VP8 and VP9 in IVF

/// The VP codec configuration fields (VP Codec ISO Media File Format
/// Binding, 'vpcC').
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct VpConfig {
    profile: u8,
    level: u8,
    bit_depth: u8,
    chroma_subsampling: u8,
    full_range: bool,
    colour_primaries: u8,
    transfer_characteristics: u8,
    matrix_coefficients: u8,
}

impl VpConfig {
    /// The VPCodecConfigurationRecord as the full box's body: version 1,
    /// flags 0, then the fields, and codecInitializationDataSize 0.
    fn record(&self) -> Vec<u8> {
        vec![
            1,
            0,
            0,
            0,
            self.profile,
            self.level,
            self.bit_depth << 4 | self.chroma_subsampling << 1 | u8::from(self.full_range),
            self.colour_primaries,
            self.transfer_characteristics,
            self.matrix_coefficients,
            0,
            0,
        ]
    }
}

/// ISO/IEC 23091-2 "unspecified", for the colour fields a stream does not give.
const UNSPECIFIED: u8 = 2;
/// vpcC chromaSubsampling for 4:2:0 with the chroma location not given:
/// "collocated with luma" (1), as FFmpeg's vpcC writer picks it then.
const CHROMA_420: u8 = 1;

/// VP8 or VP9 from an IVF file (`ffmpeg ... -c:v libvpx -f ivf` or
/// `-c:v libvpx-vp9 -f ivf`; the IVF FourCC `VP80` or `VP90` says which): a
/// SequenceStart with the VPCodecConfigurationRecord, then one CodedFrames
/// per IVF frame (for VP9, a frame or a superframe), stamped from the IVF
/// timestamps and time base.
///
/// The record's fields come from the first frame, which must be a key frame.
/// VP9: profile, bit depth, chroma subsampling, colour range and matrix from
/// the uncompressed header; the level from the picture size and the IVF
/// header's frame rate (VP9 levels); primaries and transfer unspecified.
/// VP8: profile (the frame tag's version), level 0, 8-bit 4:2:0, colour
/// unspecified. A frame is a key frame when VP8's frame tag says so (bit 0 of
/// the first byte is 0) or VP9's uncompressed header has frame_type 0 (for a
/// superframe: that of its first frame).
pub fn ivf(file: &[u8]) -> Result<Vec<Tag>> {
    let header = file.get(..32).ok_or(truncated(IVF, "the file header"))?;
    if &header[..4] != b"DKIF" {
        return malformed(IVF, "no DKIF signature");
    }
    let le16 = |at: usize| u16::from_le_bytes([header[at], header[at + 1]]);
    let le32 = |at: usize| u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]]);
    let header_len = usize::from(le16(6)).max(32);
    let fourcc = match &header[8..12] {
        b"VP80" => FourCc::VP8,
        b"VP90" => FourCc::VP9,
        _ => {
            return Err(ElementaryError::Unsupported {
                format: IVF,
                what: "a codec other than VP8 and VP9",
            })
        }
    };
    let (width, height) = (u64::from(le16(12)), u64::from(le16(14)));
    let (rate, scale) = (u64::from(le32(16)), u64::from(le32(20)));
    if rate == 0 || scale == 0 {
        return malformed(IVF, "a time base of zero");
    }
    let mut frames = Vec::new();
    let mut at = header_len;
    while at < file.len() {
        let frame_header = file.get(at..at + 12).ok_or(truncated(IVF, "a frame header"))?;
        let size = u32::from_le_bytes([frame_header[0], frame_header[1], frame_header[2], frame_header[3]]) as usize;
        let mut pts = [0; 8];
        pts.copy_from_slice(&frame_header[4..12]);
        let pts = u64::from_le_bytes(pts);
        let data = file.get(at + 12..at + 12 + size).ok_or(truncated(IVF, "a frame"))?;
        if data.is_empty() {
            return malformed(IVF, "an empty frame");
        }
        frames.push((pts, data));
        at += 12 + size;
    }
    let Some(&(_, first)) = frames.first() else {
        return Err(ElementaryError::Missing {
            format: IVF,
            what: "frame",
        });
    };
    let config = if fourcc == FourCc::VP9 {
        let key = Vp9Header::parse(first)?;
        let Some(mut config) = key.config else {
            return malformed(IVF, "the first frame is not a key frame");
        };
        let (w, h) = key.size.unwrap_or((width, height));
        let picture = w.saturating_mul(h);
        config.level = vp9_level(picture, picture.saturating_mul(rate) / scale);
        config
    } else {
        if !vp8_is_keyframe(first)? {
            return malformed(IVF, "the first frame is not a key frame");
        }
        VpConfig {
            profile: (first[0] >> 1) & 0x07,
            level: 0,
            bit_depth: 8,
            chroma_subsampling: CHROMA_420,
            full_range: false,
            colour_primaries: UNSPECIFIED,
            transfer_characteristics: UNSPECIFIED,
            matrix_coefficients: UNSPECIFIED,
        }
    };
    let mut tags = vec![video_tag(0, true, PacketType::SequenceStart, fourcc, &config.record())?];
    for (pts, data) in frames {
        let keyframe = if fourcc == FourCc::VP9 {
            Vp9Header::parse(data)?.config.is_some()
        } else {
            vp8_is_keyframe(data)?
        };
        let timestamp = millis(IVF, pts.saturating_mul(scale), rate)?;
        tags.push(video_tag(timestamp, keyframe, PacketType::CodedFrames, fourcc, data)?);
    }
    Ok(tags)
}

/// Whether a VP8 frame is a key frame (RFC 6386 9.1: the frame tag's bit 0
/// is 0), checking a key frame's start code.
fn vp8_is_keyframe(frame: &[u8]) -> Result<bool> {
    let tag = frame.first().ok_or(truncated(IVF, "a VP8 frame tag"))?;
    if tag & 1 != 0 {
        return Ok(false);
    }
    match frame.get(3..6) {
        Some([0x9D, 0x01, 0x2A]) => Ok(true),
        Some(_) => malformed(IVF, "a VP8 key frame without its start code"),
        None => Err(truncated(IVF, "a VP8 key frame header")),
    }
}

/// What a VP9 uncompressed header (VP9 bitstream 6.2) says.
struct Vp9Header {
    /// For a key frame: its profile and colour config (level left 0).
    config: Option<VpConfig>,
    /// For a key frame: its picture size.
    size: Option<(u64, u64)>,
}

impl Vp9Header {
    fn parse(frame: &[u8]) -> Result<Vp9Header> {
        let not_key = Vp9Header {
            config: None,
            size: None,
        };
        let mut b = Bits::new(frame, IVF, "a VP9 uncompressed header");
        if b.bits(2)? != 2 {
            return malformed(IVF, "a VP9 frame without its frame marker");
        }
        let low = b.bit()?;
        let profile = (b.bit()? << 1 | low) as u8;
        if profile == 3 {
            b.skip(1)?; // reserved_zero
        }
        if b.flag()? {
            return Ok(not_key); // show_existing_frame
        }
        if b.flag()? {
            return Ok(not_key); // frame_type 1: not a key frame
        }
        b.skip(2)?; // show_frame, error_resilient_mode
        if b.bits(24)? != 0x49_83_42 {
            return malformed(IVF, "a VP9 key frame without its sync code");
        }
        let bit_depth = if profile < 2 {
            8
        } else if b.flag()? {
            12
        } else {
            10
        };
        let color_space = b.bits(3)? as u8;
        let (full_range, subsampling) = if color_space != 7 {
            let full_range = b.flag()?;
            let subsampling = if profile & 1 == 1 {
                let xy = (b.bit()?, b.bit()?);
                b.skip(1)?; // reserved_zero
                xy
            } else {
                (1, 1)
            };
            (full_range, subsampling)
        } else {
            if profile & 1 == 0 {
                return malformed(IVF, "VP9 RGB in profile 0 or 2");
            }
            b.skip(1)?; // reserved_zero
            (true, (0, 0))
        };
        let chroma_subsampling = match subsampling {
            (1, 1) => CHROMA_420,
            (1, 0) => 2,
            (0, 0) => 3,
            _ => {
                return Err(ElementaryError::Unsupported {
                    format: IVF,
                    what: "VP9 4:4:0",
                })
            }
        };
        // ISO/IEC 23091-2 MatrixCoefficients for VP9's color_space.
        let matrix_coefficients = match color_space {
            1 | 3 => 6, // BT.601, SMPTE 170M
            2 => 1,     // BT.709
            4 => 7,     // SMPTE 240M
            5 => 9,     // BT.2020 non-constant luminance
            7 => 0,     // RGB
            _ => UNSPECIFIED,
        };
        let width = b.bits(16)? + 1;
        let height = b.bits(16)? + 1;
        Ok(Vp9Header {
            config: Some(VpConfig {
                profile,
                level: 0,
                bit_depth,
                chroma_subsampling,
                full_range,
                colour_primaries: UNSPECIFIED,
                transfer_characteristics: UNSPECIFIED,
                matrix_coefficients,
            }),
            size: Some((width, height)),
        })
    }
}

/// The lowest VP9 level (times ten) whose picture size and luma sample rate
/// limits hold a stream, or 0 past them all.
fn vp9_level(picture_size: u64, sample_rate: u64) -> u8 {
    const LEVELS: [(u8, u64, u64); 14] = [
        (10, 36_864, 829_440),
        (11, 73_728, 2_764_800),
        (20, 122_880, 4_608_000),
        (21, 245_760, 9_216_000),
        (30, 552_960, 20_736_000),
        (31, 983_040, 36_864_000),
        (40, 2_228_224, 83_558_400),
        (41, 2_228_224, 160_432_128),
        (50, 8_912_896, 311_951_360),
        (51, 8_912_896, 588_251_136),
        (52, 8_912_896, 1_176_502_272),
        (60, 35_651_584, 1_176_502_272),
        (61, 35_651_584, 2_353_004_544),
        (62, 35_651_584, 4_706_009_088),
    ];
    LEVELS
        .iter()
        .find(|(_, size, rate)| picture_size <= *size && sample_rate <= *rate)
        .map_or(0, |(level, _, _)| *level)
}

// ---------------------------------------------------------------------------
// AV1

/// AV1 OBU types (AV1 6.2.2).
const OBU_SEQUENCE_HEADER: u8 = 1;
const OBU_TEMPORAL_DELIMITER: u8 = 2;
const OBU_FRAME_HEADER: u8 = 3;
const OBU_FRAME: u8 = 6;

/// One OBU of a low-overhead bitstream.
struct Obu<'a> {
    kind: u8,
    /// The whole OBU: header, size field and payload.
    bytes: &'a [u8],
    /// The payload.
    payload: &'a [u8],
}

/// AV1 from a low-overhead OBU stream (AV1 5.2, `ffmpeg ... -c:v libaom-av1
/// -f obu`): a SequenceStart with the AV1CodecConfigurationRecord (the
/// AV1-ISOBMFF binding's av1C: marker and version 0x81, the fields of the
/// first sequence header, then that sequence header OBU as configOBUs), then
/// one CodedFrames per temporal unit, its OBUs as they are less the temporal
/// delimiter. Temporal units start at each temporal delimiter; unit `i` is at
/// `i / rate`.
///
/// A temporal unit is a keyframe when it holds a sequence header OBU and a
/// frame (or frame header) OBU whose frame_type is KEY_FRAME; intra-only
/// frames are not keyframes. Later sequence headers must be identical to the
/// first.
pub fn av1_obu(stream: &[u8], rate: FrameRate) -> Result<Vec<Tag>> {
    let obus = av1_obus(stream)?;
    if obus.first().map(|o| o.kind) != Some(OBU_TEMPORAL_DELIMITER) {
        return malformed(AV1, "the stream does not start with a temporal delimiter");
    }
    let first_header = obus
        .iter()
        .find(|o| o.kind == OBU_SEQUENCE_HEADER)
        .ok_or(ElementaryError::Missing {
            format: AV1,
            what: "sequence header",
        })?;
    let sequence = Av1Sequence::parse(first_header.payload)?;
    let mut record = sequence.record();
    record.extend_from_slice(first_header.bytes);
    let mut tags = vec![video_tag(0, true, PacketType::SequenceStart, FourCc::AV1, &record)?];
    let mut units: Vec<Vec<&Obu<'_>>> = Vec::new();
    for obu in &obus {
        match units.last_mut() {
            Some(unit) if obu.kind != OBU_TEMPORAL_DELIMITER => unit.push(obu),
            _ => units.push(Vec::new()),
        }
    }
    for (index, unit) in units.iter().enumerate() {
        if unit.is_empty() {
            return malformed(AV1, "an empty temporal unit");
        }
        let mut has_header = false;
        let mut key = false;
        let mut data = Vec::new();
        for obu in unit {
            if obu.kind == OBU_SEQUENCE_HEADER {
                if obu.payload != first_header.payload {
                    return Err(ElementaryError::Unsupported {
                        format: AV1,
                        what: "a sequence header that changes",
                    });
                }
                has_header = true;
            }
            if matches!(obu.kind, OBU_FRAME_HEADER | OBU_FRAME) {
                key |= av1_is_key_frame(obu.payload, &sequence)?;
            }
            data.extend_from_slice(obu.bytes);
        }
        let timestamp = frame_time(AV1, index, rate)?;
        tags.push(video_tag(
            timestamp,
            has_header && key,
            PacketType::CodedFrames,
            FourCc::AV1,
            &data,
        )?);
    }
    Ok(tags)
}

/// A leb128 number (AV1 4.10.5) at the start of `bytes`, and its length.
fn leb128(bytes: &[u8]) -> Result<(u64, usize)> {
    let mut value = 0u64;
    for (i, byte) in bytes.iter().take(8).enumerate() {
        value |= u64::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            if value > u64::from(u32::MAX) {
                return malformed(AV1, "an obu_size over 2^32 - 1");
            }
            return Ok((value, i + 1));
        }
    }
    if bytes.len() < 8 {
        Err(truncated(AV1, "an obu_size"))
    } else {
        malformed(AV1, "an obu_size longer than 8 bytes")
    }
}

/// The OBUs of a low-overhead bitstream, each with its size field.
fn av1_obus(stream: &[u8]) -> Result<Vec<Obu<'_>>> {
    let mut obus = Vec::new();
    let mut at = 0;
    while at < stream.len() {
        let header = stream[at];
        if header & 0x80 != 0 {
            return malformed(AV1, "an OBU with obu_forbidden_bit set");
        }
        if header & 0x02 == 0 {
            return Err(ElementaryError::Unsupported {
                format: AV1,
                what: "an OBU without obu_size",
            });
        }
        let header_len = if header & 0x04 != 0 { 2 } else { 1 };
        let size_at = at + header_len;
        let (size, size_len) = leb128(stream.get(size_at..).unwrap_or_default())?;
        let start = size_at + size_len;
        let end = start
            .checked_add(size as usize)
            .filter(|&end| end <= stream.len())
            .ok_or(truncated(AV1, "an OBU"))?;
        obus.push(Obu {
            kind: (header >> 3) & 0x0F,
            bytes: &stream[at..end],
            payload: &stream[start..end],
        });
        at = end;
    }
    Ok(obus)
}

/// What the av1C record and the frame headers need from a sequence header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Av1Sequence {
    profile: u8,
    level: u8,
    tier: bool,
    high_bitdepth: bool,
    twelve_bit: bool,
    monochrome: bool,
    subsampling_x: bool,
    subsampling_y: bool,
    chroma_sample_position: u8,
    reduced_still_picture_header: bool,
}

impl Av1Sequence {
    /// Reads a sequence header OBU's payload (AV1 5.5) to the end of its
    /// color_config.
    fn parse(payload: &[u8]) -> Result<Av1Sequence> {
        let mut b = Bits::new(payload, AV1, "the sequence header");
        let profile = b.bits(3)? as u8;
        if profile > 2 {
            return malformed(AV1, format!("seq_profile {profile}"));
        }
        b.skip(1)?; // still_picture
        let reduced = b.flag()?;
        let (level, tier);
        if reduced {
            level = b.bits(5)? as u8;
            tier = false;
        } else {
            let mut decoder_model_info = false;
            let mut buffer_delay_length = 0;
            if b.flag()? {
                // timing_info()
                b.skip(64)?; // num_units_in_display_tick, time_scale
                if b.flag()? {
                    b.uvlc()?; // num_ticks_per_picture_minus_1
                }
                decoder_model_info = b.flag()?;
                if decoder_model_info {
                    buffer_delay_length = b.bits(5)? + 1;
                    b.skip(32 + 5 + 5)?;
                }
            }
            let initial_display_delay = b.flag()?;
            let operating_points = b.bits(5)? + 1;
            let (mut first_level, mut first_tier) = (0, false);
            for i in 0..operating_points {
                b.skip(12)?; // operating_point_idc
                let level = b.bits(5)? as u8;
                let tier = level > 7 && b.flag()?;
                if decoder_model_info && b.flag()? {
                    b.skip(2 * buffer_delay_length + 1)?;
                }
                if initial_display_delay && b.flag()? {
                    b.skip(4)?;
                }
                if i == 0 {
                    (first_level, first_tier) = (level, tier);
                }
            }
            (level, tier) = (first_level, first_tier);
        }
        let width_bits = b.bits(4)? + 1;
        let height_bits = b.bits(4)? + 1;
        b.skip(width_bits + height_bits)?;
        if !reduced && b.flag()? {
            b.skip(4 + 3)?; // frame id lengths
        }
        b.skip(3)?; // use_128x128_superblock, enable_filter_intra, enable_intra_edge_filter
        if !reduced {
            b.skip(4)?; // interintra, masked compound, warped motion, dual filter
            let order_hint = b.flag()?;
            if order_hint {
                b.skip(2)?; // enable_jnt_comp, enable_ref_frame_mvs
            }
            let screen_content_tools = if b.flag()? { 2 } else { b.bits(1)? };
            if screen_content_tools > 0 && !b.flag()? {
                b.skip(1)?; // seq_force_integer_mv
            }
            if order_hint {
                b.skip(3)?; // order_hint_bits_minus_1
            }
        }
        b.skip(3)?; // enable_superres, enable_cdef, enable_restoration
                    // color_config()
        let high_bitdepth = b.flag()?;
        let twelve_bit = profile == 2 && high_bitdepth && b.flag()?;
        let monochrome = profile != 1 && b.flag()?;
        let (mut primaries, mut transfer, mut matrix) = (2, 2, 2);
        if b.flag()? {
            (primaries, transfer, matrix) = (b.bits(8)?, b.bits(8)?, b.bits(8)?);
        }
        let (subsampling_x, subsampling_y, chroma_sample_position);
        if monochrome {
            b.skip(1)?; // color_range
            (subsampling_x, subsampling_y, chroma_sample_position) = (true, true, 0);
        } else if (primaries, transfer, matrix) == (1, 13, 0) {
            (subsampling_x, subsampling_y, chroma_sample_position) = (false, false, 0);
        } else {
            b.skip(1)?; // color_range
            (subsampling_x, subsampling_y) = match profile {
                0 => (true, true),
                1 => (false, false),
                _ if twelve_bit => {
                    let x = b.flag()?;
                    (x, x && b.flag()?)
                }
                _ => (true, false),
            };
            chroma_sample_position = if subsampling_x && subsampling_y {
                b.bits(2)? as u8
            } else {
                0
            };
        }
        Ok(Av1Sequence {
            profile,
            level,
            tier,
            high_bitdepth,
            twelve_bit,
            monochrome,
            subsampling_x,
            subsampling_y,
            chroma_sample_position,
            reduced_still_picture_header: reduced,
        })
    }

    /// The first four bytes of the av1C record (AV1-ISOBMFF 2.3.3): marker
    /// and version 1, the profile, level, tier and color fields, and no
    /// initial presentation delay. The configOBUs follow them.
    fn record(&self) -> Vec<u8> {
        vec![
            0x81,
            self.profile << 5 | self.level,
            u8::from(self.tier) << 7
                | u8::from(self.high_bitdepth) << 6
                | u8::from(self.twelve_bit) << 5
                | u8::from(self.monochrome) << 4
                | u8::from(self.subsampling_x) << 3
                | u8::from(self.subsampling_y) << 2
                | self.chroma_sample_position,
            0,
        ]
    }
}

/// Whether a frame header (or frame) OBU's uncompressed header (AV1 5.9.2)
/// starts a KEY_FRAME that is not a shown existing frame.
fn av1_is_key_frame(payload: &[u8], sequence: &Av1Sequence) -> Result<bool> {
    if sequence.reduced_still_picture_header {
        return Ok(true);
    }
    let mut b = Bits::new(payload, AV1, "a frame header");
    if b.flag()? {
        return Ok(false); // show_existing_frame
    }
    Ok(b.bits(2)? == 0) // frame_type KEY_FRAME
}

// ---------------------------------------------------------------------------
// Opus in Ogg

/// Opus from an Ogg file (`ffmpeg ... -c:a libopus -f ogg`): a
/// SequenceStart with the ID header, OpusHead (RFC 7845 5.1), then one
/// CodedFrames per Opus packet, the comment header (OpusTags) left out. A
/// packet's time is the samples of the packets before it at 48 kHz, each
/// packet's duration read from its TOC byte (RFC 6716 3.1); the pre-skip
/// stays in OpusHead.
///
/// Only one logical stream, with its pages' CRCs right, is read.
pub fn opus_ogg(file: &[u8]) -> Result<Vec<Tag>> {
    let packets = ogg_packets(file)?;
    let mut packets = packets.iter();
    let head = packets.next().ok_or(ElementaryError::Missing {
        format: OGG,
        what: "OpusHead",
    })?;
    if head.len() < 19 || &head[..8] != b"OpusHead" {
        return malformed(OGG, "the first packet is not an OpusHead of 19 bytes or more");
    }
    if head[8] & 0xF0 != 0 {
        return Err(ElementaryError::Unsupported {
            format: OGG,
            what: "an OpusHead of a major version other than 0",
        });
    }
    match packets.next() {
        Some(tags) if tags.starts_with(b"OpusTags") => {}
        _ => return malformed(OGG, "the second packet is not OpusTags"),
    }
    let mut tags = vec![audio_tag(0, PacketType::SequenceStart, FourCc::OPUS, head)?];
    let mut samples = 0u64;
    for packet in packets {
        let timestamp = millis(OGG, samples, 48_000)?;
        tags.push(audio_tag(timestamp, PacketType::CodedFrames, FourCc::OPUS, packet)?);
        samples += u64::from(opus_samples(packet)?);
    }
    Ok(tags)
}

/// The samples at 48 kHz of an Opus packet, from its TOC byte and frame
/// count (RFC 6716 3.1, 3.2.5).
fn opus_samples(packet: &[u8]) -> Result<u32> {
    let toc = *packet.first().ok_or(ElementaryError::Malformed {
        format: OGG,
        what: "an empty Opus packet".into(),
    })?;
    let config = toc >> 3;
    let per_frame = match config {
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        12..=15 => [480, 960][usize::from(config % 2)],
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames = match toc & 0x03 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(packet.get(1).ok_or(truncated(OGG, "an Opus frame count"))? & 0x3F),
    };
    let samples = per_frame * frames;
    if frames == 0 || samples > 5760 {
        return malformed(OGG, format!("an Opus packet of {frames} frames, {samples} samples"));
    }
    Ok(samples)
}

/// The Ogg CRC-32 (polynomial 0x04C11DB7, no reflection, initial value and
/// final XOR 0) of `bytes`, continuing from `crc`.
pub fn ogg_crc(mut crc: u32, bytes: &[u8]) -> u32 {
    for &byte in bytes {
        crc ^= u32::from(byte) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                crc << 1 ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The packets of the one logical stream of an Ogg file (RFC 3533), joined
/// across pages.
fn ogg_packets(file: &[u8]) -> Result<Vec<Vec<u8>>> {
    let mut packets = Vec::new();
    let mut partial: Option<Vec<u8>> = None;
    let mut serial = None;
    let mut at = 0;
    while at < file.len() {
        let header = file.get(at..at + 27).ok_or(truncated(OGG, "a page header"))?;
        if &header[..4] != b"OggS" || header[4] != 0 {
            return malformed(OGG, format!("no Ogg page of version 0 at byte {at}"));
        }
        let continued = header[5] & 0x01 != 0;
        let page_serial = &header[14..18];
        if *serial.get_or_insert(page_serial) != page_serial {
            return Err(ElementaryError::Unsupported {
                format: OGG,
                what: "more than one logical stream",
            });
        }
        let segments = usize::from(header[26]);
        let table = file
            .get(at + 27..at + 27 + segments)
            .ok_or(truncated(OGG, "a segment table"))?;
        let body_len: usize = table.iter().map(|&s| usize::from(s)).sum();
        let end = at + 27 + segments + body_len;
        let page = file.get(at..end).ok_or(truncated(OGG, "a page"))?;
        let mut crc = ogg_crc(0, &page[..22]);
        crc = ogg_crc(crc, &[0; 4]);
        crc = ogg_crc(crc, &page[26..]);
        if crc.to_le_bytes() != page[22..26] {
            return malformed(OGG, format!("the page at byte {at} fails its CRC"));
        }
        if continued != partial.is_some() {
            return malformed(OGG, format!("the page at byte {at} disagrees on continuing a packet"));
        }
        let mut body = &page[27 + segments..];
        for &lacing in table {
            let (piece, rest) = body.split_at(usize::from(lacing));
            body = rest;
            partial.get_or_insert_with(Vec::new).extend_from_slice(piece);
            if lacing < 255 {
                packets.extend(partial.take());
            }
        }
        at = end;
    }
    if partial.is_some() {
        return Err(truncated(OGG, "a packet"));
    }
    Ok(packets)
}

// ---------------------------------------------------------------------------
// FLAC

/// The STREAMINFO metadata block: its type and length.
const FLAC_STREAMINFO: u8 = 0;
const FLAC_STREAMINFO_LEN: usize = 34;

/// FLAC from a native FLAC file (`ffmpeg ... -c:a flac -f flac`): a
/// SequenceStart holding the `fLaC` signature and the STREAMINFO metadata
/// block (its 4-byte block header, marked as the last block, and its 34
/// bytes), as the specification's FlacSequenceHeader describes it; then one
/// CodedFrames per FLAC frame, stamped from the block sizes and the
/// STREAMINFO sample rate. The file's other metadata blocks (comments,
/// padding) are left out.
///
/// Frames are split at frame sync codes (0xFFF8, or 0xFFF9 in a variable
/// block size stream) that begin a header whose CRC-8 holds and end a frame
/// whose CRC-16 holds, so a sync code inside a frame's data does not split it.
pub fn flac(file: &[u8]) -> Result<Vec<Tag>> {
    if file.get(..4) != Some(b"fLaC") {
        return malformed(FLAC, "no fLaC signature");
    }
    let mut at = 4;
    let mut streaminfo = None;
    loop {
        let header = file.get(at..at + 4).ok_or(truncated(FLAC, "a metadata block header"))?;
        let (last, kind) = (header[0] & 0x80 != 0, header[0] & 0x7F);
        let len = u32::from_be_bytes([0, header[1], header[2], header[3]]) as usize;
        let body = file
            .get(at + 4..at + 4 + len)
            .ok_or(truncated(FLAC, "a metadata block"))?;
        if streaminfo.is_none() {
            if kind != FLAC_STREAMINFO || len != FLAC_STREAMINFO_LEN {
                return malformed(FLAC, "the first metadata block is not a STREAMINFO of 34 bytes");
            }
            streaminfo = Some(body);
        } else if kind == 127 {
            return malformed(FLAC, "a metadata block of the forbidden type 127");
        }
        at += 4 + len;
        if last {
            break;
        }
    }
    let streaminfo = streaminfo.ok_or(ElementaryError::Missing {
        format: FLAC,
        what: "STREAMINFO",
    })?;
    // sample rate: 20 bits after the block and frame size fields.
    let sample_rate = u32::from_be_bytes([0, streaminfo[10], streaminfo[11], streaminfo[12]]) >> 4;
    if sample_rate == 0 {
        return malformed(FLAC, "a STREAMINFO sample rate of 0");
    }
    let mut start = b"fLaC\x80\x00\x00\x22".to_vec();
    start.extend_from_slice(streaminfo);
    let mut tags = vec![audio_tag(0, PacketType::SequenceStart, FourCc::FLAC, &start)?];
    let mut samples = 0u64;
    for (frame, block_size) in flac_frames(&file[at..])? {
        let timestamp = millis(FLAC, samples, u64::from(sample_rate))?;
        tags.push(audio_tag(timestamp, PacketType::CodedFrames, FourCc::FLAC, frame)?);
        samples += u64::from(block_size);
    }
    Ok(tags)
}

/// The CRC-8 of FLAC frame headers (polynomial 0x07, initial value 0).
fn flac_crc8(bytes: &[u8]) -> u8 {
    let mut crc = 0u8;
    for &byte in bytes {
        crc ^= byte;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 { crc << 1 ^ 0x07 } else { crc << 1 };
        }
    }
    crc
}

/// One byte of the CRC-16 of FLAC frames (polynomial 0x8005, initial value 0).
fn flac_crc16(mut crc: u16, byte: u8) -> u16 {
    crc ^= u16::from(byte) << 8;
    for _ in 0..8 {
        crc = if crc & 0x8000 != 0 { crc << 1 ^ 0x8005 } else { crc << 1 };
    }
    crc
}

/// The block size of the FLAC frame whose header starts `data` (RFC 9639
/// 9.1), if one does there: its sync code with `variable` as the blocking
/// strategy, no reserved values, and its CRC-8 right.
fn flac_frame_header(data: &[u8], variable: bool) -> Option<u32> {
    let [0xFF, sync, sizes, channels, ..] = *data else {
        return None;
    };
    if sync != 0xF8 | u8::from(variable) {
        return None;
    }
    let (size_code, rate_code) = (sizes >> 4, sizes & 0x0F);
    let (assignment, depth) = (channels >> 4, (channels >> 1) & 0x07);
    if size_code == 0 || rate_code == 15 || assignment > 10 || depth == 3 || channels & 1 != 0 {
        return None;
    }
    // The frame or sample number, coded like UTF-8 in 1 to 7 bytes.
    let first = *data.get(4)?;
    let number_len = match first.leading_ones() {
        0 => 1,
        n @ 2..=7 => n as usize,
        _ => return None,
    };
    let mut at = 4 + number_len;
    if data.get(5..at)?.iter().any(|b| b & 0xC0 != 0x80) {
        return None;
    }
    let explicit = |at: usize, len: usize| -> Option<u32> {
        let bytes = data.get(at..at + len)?;
        Some(bytes.iter().fold(0, |v, &b| v << 8 | u32::from(b)))
    };
    let block_size = match size_code {
        1 => 192,
        2..=5 => 576 << (size_code - 2),
        6 => explicit(at, 1)? + 1,
        7 => explicit(at, 2)? + 1,
        _ => 256 << (size_code - 8),
    };
    at += match size_code {
        6 => 1,
        7 => 2,
        _ => 0,
    };
    at += match rate_code {
        12 => 1,
        13 | 14 => 2,
        _ => 0,
    };
    (flac_crc8(data.get(..at)?) == *data.get(at)?).then_some(block_size)
}

/// The frames of a FLAC stream, each with its block size.
fn flac_frames(data: &[u8]) -> Result<Vec<(&[u8], u32)>> {
    if data.is_empty() {
        return Err(ElementaryError::Missing {
            format: FLAC,
            what: "audio frame",
        });
    }
    let variable = data.get(1).is_some_and(|b| b & 1 == 1);
    let Some(mut block_size) = flac_frame_header(data, variable) else {
        return malformed(FLAC, "the audio does not start with a frame header");
    };
    let mut frames = Vec::new();
    let mut start = 0;
    let mut crc = 0u16;
    // The smallest frame: a 6-byte header, a 1-byte subframe, the CRC-16.
    const SMALLEST: usize = 9;
    for at in 0..data.len() {
        if at >= start + SMALLEST && crc == 0 && data[at] == 0xFF {
            if let Some(next) = flac_frame_header(&data[at..], variable) {
                frames.push((&data[start..at], block_size));
                (start, block_size) = (at, next);
            }
        }
        crc = flac_crc16(crc, data[at]);
    }
    if crc != 0 {
        return malformed(FLAC, "the last frame fails its CRC-16");
    }
    frames.push((&data[start..], block_size));
    Ok(frames)
}

// ---------------------------------------------------------------------------
// AC-3 and E-AC-3

/// AC-3 from a raw AC-3 stream (`ffmpeg ... -c:a ac3 -f ac3`): one
/// CodedFrames per syncframe (ATSC A/52 5.3), sized from frmsizecod and
/// fscod, each 1536 samples long; no SequenceStart (the specification defines
/// none for AC-3). Every frame must be AC-3 (bsid 10 or less).
pub fn ac3(stream: &[u8]) -> Result<Vec<Tag>> {
    ac3_syncframes(stream, false)
}

/// E-AC-3 from a raw E-AC-3 stream (`ffmpeg ... -c:a eac3 -f eac3`): one
/// CodedFrames per syncframe (ATSC A/52 annex E), sized from frmsiz, its
/// length from numblkscod; no SequenceStart. Every frame must be E-AC-3
/// (bsid 11 to 16). A dependent substream, or an independent one other than
/// substream 0, goes in the tag of the syncframe before it: one tag holds
/// what is played at one time.
pub fn eac3(stream: &[u8]) -> Result<Vec<Tag>> {
    ac3_syncframes(stream, true)
}

/// An AC-3 syncframe's size in bytes, from frmsizecod and fscod (A/52 table
/// 5.18): the bit rate's 16-bit words per 1536 samples, plus one word in the
/// odd codes at 44.1 kHz.
fn ac3_frame_size(frmsizecod: u8, fscod: u8) -> Option<usize> {
    const KBPS: [usize; 19] = [
        32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512, 576, 640,
    ];
    let kbps = *KBPS.get(usize::from(frmsizecod >> 1))?;
    let words = match fscod {
        0 => kbps * 2,
        1 => kbps * 320 / 147 + usize::from(frmsizecod & 1),
        2 => kbps * 3,
        _ => return None,
    };
    Some(words * 2)
}

fn ac3_syncframes(stream: &[u8], enhanced: bool) -> Result<Vec<Tag>> {
    let (format, fourcc) = if enhanced {
        (EAC3, FourCc::EAC3)
    } else {
        (AC3, FourCc::AC3)
    };
    let mut units: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut sample_rate = None;
    let mut samples = 0u64;
    let mut at = 0;
    while at < stream.len() {
        let header = stream.get(at..at + 6).ok_or(truncated(format, "a syncframe header"))?;
        if header[..2] != [0x0B, 0x77] {
            return malformed(format, format!("no syncword at byte {at}"));
        }
        let bsid = header[5] >> 3;
        if enhanced != (bsid > 10) {
            return malformed(format, format!("a frame of bsid {bsid}"));
        }
        if enhanced && bsid > 16 {
            return malformed(format, format!("bsid {bsid}"));
        }
        let fscod = header[4] >> 6;
        let (size, rate, length, joins) = if enhanced {
            let strmtyp = header[2] >> 6;
            let substream = (header[2] >> 3) & 0x07;
            if strmtyp == 3 {
                return malformed(format, "strmtyp 3");
            }
            let size = (usize::from(header[2] & 0x07) << 8 | usize::from(header[3])) * 2 + 2;
            let (rate, blocks) = if fscod == 3 {
                let fscod2 = (header[4] >> 4) & 0x03;
                let rate = *[24_000, 22_050, 16_000]
                    .get(usize::from(fscod2))
                    .ok_or(ElementaryError::Malformed {
                        format,
                        what: "fscod2 3".into(),
                    })?;
                (rate, 6)
            } else {
                (
                    [48_000, 44_100, 32_000][usize::from(fscod)],
                    [1, 2, 3, 6][usize::from((header[4] >> 4) & 0x03)],
                )
            };
            (size, rate, 256 * blocks, strmtyp == 1 || substream != 0)
        } else {
            let size = ac3_frame_size(header[4] & 0x3F, fscod).ok_or(ElementaryError::Malformed {
                format,
                what: format!("frmsizecod {} with fscod {fscod}", header[4] & 0x3F),
            })?;
            (size, [48_000, 44_100, 32_000][usize::from(fscod)], 1536, false)
        };
        if size < 6 {
            return malformed(format, format!("a syncframe of {size} bytes"));
        }
        let frame = stream.get(at..at + size).ok_or(truncated(format, "a syncframe"))?;
        if joins {
            let (_, unit) = units.last_mut().ok_or(ElementaryError::Malformed {
                format,
                what: "a dependent substream before any independent one".into(),
            })?;
            unit.extend_from_slice(frame);
        } else {
            if *sample_rate.get_or_insert(rate) != rate {
                return Err(ElementaryError::Unsupported {
                    format,
                    what: "a sample rate that changes",
                });
            }
            units.push((samples, frame.to_vec()));
            samples += length;
        }
        at += size;
    }
    let sample_rate = sample_rate.ok_or(ElementaryError::Missing {
        format,
        what: "syncframe",
    })?;
    units
        .iter()
        .map(|(start, frame)| {
            let timestamp = millis(format, *start, sample_rate)?;
            audio_tag(timestamp, PacketType::CodedFrames, fourcc, frame)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    //! Each reader on small hand-made streams (and the parameter sets and
    //! headers of real ffmpeg output, whose records FFmpeg's own MP4 muxer
    //! wrote the same), their errors, and arbitrary bytes.

    use proptest::prelude::*;

    use super::*;

    /// Writes bits most significant first, for hand-made headers.
    #[derive(Default)]
    struct BitWriter {
        bytes: Vec<u8>,
        bits: usize,
    }

    impl BitWriter {
        fn put(&mut self, n: u32, value: u64) -> &mut Self {
            for i in (0..n).rev() {
                if self.bits.is_multiple_of(8) {
                    self.bytes.push(0);
                }
                let bit = value.checked_shr(i).unwrap_or(0) as u8 & 1;
                *self.bytes.last_mut().unwrap() |= bit << (7 - self.bits % 8);
                self.bits += 1;
            }
            self
        }

        fn ue(&mut self, value: u32) -> &mut Self {
            let coded = u64::from(value) + 1;
            let len = 64 - coded.leading_zeros();
            self.put(len - 1, 0).put(len, coded)
        }

        /// rbsp_trailing_bits, then the bytes.
        fn finish(&mut self) -> Vec<u8> {
            self.put(1, 1);
            while !self.bits.is_multiple_of(8) {
                self.put(1, 0);
            }
            self.bytes.clone()
        }
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The packet of an enhanced tag, with its header.
    fn packet(tag: &Tag) -> (Header, FourCc, Vec<u8>) {
        let parsed = eflv::parse(tag.kind, &tag.data).unwrap().unwrap();
        let packet = parsed.first().unwrap().unwrap();
        (parsed.header, packet.fourcc, packet.data.to_vec())
    }

    /// (timestamp, keyframe, packet type) of each tag.
    fn summary(tags: &[Tag]) -> Vec<(u32, bool, PacketType)> {
        tags.iter()
            .map(|t| {
                let (header, _, _) = packet(t);
                (t.timestamp, header.is_keyframe(), header.packet_type)
            })
            .collect()
    }

    use PacketType::{CodedFrames as Coded, SequenceStart as Start};

    #[test]
    fn bits_and_exp_golomb() {
        let mut b = Bits::new(&[0xA6, 0x40], "test", "bits");
        assert_eq!((b.ue(), b.ue(), b.ue(), b.ue()), (Ok(0), Ok(1), Ok(2), Ok(3)));
        assert_eq!(b.ue(), Err(truncated("test", "bits")));
        let mut b = Bits::new(&[0, 0, 0, 0, 0x80], "test", "bits");
        assert!(matches!(b.ue(), Err(ElementaryError::Malformed { .. })));
        let mut b = Bits::new(&[0, 0, 0, 0, 0x80], "test", "bits");
        assert_eq!(b.uvlc(), Ok(u32::MAX));
        let mut b = Bits::new(&[0x28], "test", "bits");
        assert_eq!(b.uvlc(), Ok(4)); // 001 01
        assert_eq!(Bits::new(&[0xFF], "t", "w").skip(9), Err(truncated("t", "w")));
        assert_eq!(millis("t", 4608, 48_000), Ok(96));
        assert!(matches!(
            millis("t", u64::MAX, 1),
            Err(ElementaryError::Unsupported { .. })
        ));
        assert!(matches!(millis("t", 1, 0), Err(ElementaryError::Malformed { .. })));
    }

    // The parameter sets x265 wrote for `testsrc2=size=320x240` (Main, level
    // 2, 4:2:0 8-bit), and the hvcC FFmpeg's MP4 muxer made of them.
    const X265_VPS: &str = "40010c01ffff01600000030090000003000003003cba0240";
    const X265_SPS: &str = "42010101600000030090000003000003003ca00a080f165ba924caf0168080000003008000000c84";
    const X265_PPS: &str = "4401c172b46240";
    const FFMPEG_HVCC: &str = "0101600000009000000000003cf000fcfdf8f800000f03a00001001840010c01ffff0160000003009000\
        0003000003003cba0240a10001002842010101600000030090000003000003003ca00a080f165ba924caf01680800000030080\
        00000c84a2000100074401c172b46240";

    fn annexb(nals: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, nal) in nals.iter().enumerate() {
            // 4-byte start codes for the first and for parameter sets, as x265 writes them.
            out.extend_from_slice(if i == 0 || hevc_nal_type(nal) >= 32 {
                &[0, 0, 0, 1]
            } else {
                &[0, 0, 1]
            });
            out.extend_from_slice(nal);
        }
        out
    }

    #[test]
    fn hevc_access_units_become_coded_frames_after_the_record() {
        let (vps, sps, pps) = (hex(X265_VPS), hex(X265_SPS), hex(X265_PPS));
        let sei: &[u8] = b"\x4e\x01\x05\x02\xAA\xBB\x80";
        let idr: &[u8] = b"\x26\x01\xAF\x12\x00\x00\x03\x01"; // IDR_W_RADL, first slice
        let trail: &[u8] = b"\x02\x01\xD0\x33"; // TRAIL_R, first slice
        let second_slice: &[u8] = b"\x02\x01\x40\x44"; // TRAIL_R, not the first slice
        let cra: &[u8] = b"\x2a\x01\x80\x55"; // CRA
        let mut stream = annexb(&[&vps, &sps, &pps, sei, idr, trail, second_slice, trail]);
        stream.extend_from_slice(&[0, 0]); // trailing_zero_8bits
        stream.extend_from_slice(&annexb(&[&vps, &sps, &pps, cra]));
        let tags = hevc_annexb(&stream, FrameRate::per_second(25)).unwrap();
        assert_eq!(
            summary(&tags),
            [
                (0, true, Start),
                (0, true, Coded),
                (40, false, Coded),
                (80, false, Coded),
                (120, true, Coded)
            ]
        );
        let (_, fourcc, record) = packet(&tags[0]);
        assert_eq!(fourcc, FourCc::HEVC);
        assert_eq!(record, hex(FFMPEG_HVCC));
        let expected: Vec<u8> = [sei, idr]
            .iter()
            .flat_map(|nal| [&(nal.len() as u32).to_be_bytes()[..], nal].concat())
            .collect();
        let parsed = eflv::parse(TagKind::Video, &tags[1].data).unwrap().unwrap();
        let first = parsed.first().unwrap().unwrap();
        assert_eq!((first.composition_offset, first.data), (0, &expected[..]));
        assert_eq!(packet(&tags[2]).2.len(), 2 * 4 + trail.len() + second_slice.len());
        assert_eq!(
            packet(&tags[4]).2,
            [&[0, 0, 0, 4][..], cra].concat(),
            "parameter sets left out"
        );
    }

    #[test]
    fn an_hevc_sps_is_read_through_its_sub_layers() {
        let mut w = BitWriter::default();
        w.put(16, 0x4201); // NAL header: SPS
        w.put(4, 0).put(3, 2).put(1, 0); // vps id, max_sub_layers_minus1 2, nesting 0
        w.put(2, 0).put(1, 1).put(5, 2).put(32, 0x2000_0000); // Main 10, high tier
        w.put(48, 0x8000_0000_0000).put(8, 93);
        w.put(1, 1).put(1, 1).put(1, 0).put(1, 0); // sub-layer 0: profile and level; 1: neither
        w.put(2 * 6, 0); // reserved_zero_2bits for sub-layers 2..8
        w.put(88, 0).put(8, 90); // sub-layer 0's profile and level
        w.ue(0).ue(2).ue(64).ue(64); // sps id, 4:2:2, 64x64
        w.put(1, 1).ue(0).ue(0).ue(0).ue(0); // a conformance window
        w.ue(2).ue(2).ue(4).put(1, 0).ue(4).ue(2).ue(0); // 10-bit, reorder 2 in the top sub-layer
        let sps = w.finish();
        let parsed = HevcSps::parse(&sps).unwrap();
        assert_eq!(
            parsed,
            HevcSps {
                profile_space: 0,
                tier: true,
                profile_idc: 2,
                compatibility: 0x2000_0000,
                constraints: [0x80, 0, 0, 0, 0, 0],
                level_idc: 93,
                max_sub_layers: 3,
                temporal_id_nesting: false,
                chroma_format_idc: 2,
                bit_depth_luma_minus8: 2,
                bit_depth_chroma_minus8: 2,
                max_num_reorder_pics: 2,
            }
        );
        let record = hevc_record(&parsed, &[vec![&[0x40, 1]], vec![&sps], vec![&[0x44, 1]]]).unwrap();
        assert_eq!(&record[..2], [1, 0x22]);
        assert_eq!(record[12], 93);
        assert_eq!(&record[16..20], [0xFE, 0xFA, 0xFA, 0]);
        assert_eq!(
            record[21],
            3 << 3 | 3,
            "three temporal layers, not nested, 4-byte lengths"
        );
        // Such a stream reorders its pictures: refused.
        let stream = annexb(&[&[0x40, 1, 0x0C], &sps, &[0x44, 1, 0xC1], &[0x26, 1, 0x80]]);
        assert_eq!(
            hevc_annexb(&stream, FrameRate::per_second(25)),
            Err(ElementaryError::Unsupported {
                format: HEVC,
                what: "picture reordering (B-frames)"
            })
        );
    }

    #[test]
    fn malformed_hevc_is_refused() {
        let rate = FrameRate::per_second(25);
        let (vps, sps, pps) = (hex(X265_VPS), hex(X265_SPS), hex(X265_PPS));
        let idr: &[u8] = &[0x26, 1, 0x80];
        assert!(matches!(hevc_annexb(b"", rate), Err(ElementaryError::Missing { .. })));
        assert!(matches!(
            hevc_annexb(b"\x01\x00\x00\x01\x26\x01\x80", rate),
            Err(ElementaryError::Malformed { .. })
        ));
        assert!(matches!(
            hevc_annexb(b"\x00\x00\x01\x26", rate),
            Err(ElementaryError::Malformed { .. })
        ));
        assert!(matches!(
            hevc_annexb(b"\x00\x00\x01\x26\x01", rate),
            Err(ElementaryError::Truncated { .. })
        ));
        assert!(matches!(
            hevc_annexb(&annexb(&[&sps, &pps, idr]), rate),
            Err(ElementaryError::Missing { what: "VPS", .. })
        ));
        assert!(matches!(
            hevc_annexb(&annexb(&[&vps, &sps[..8], &pps, idr]), rate),
            Err(ElementaryError::Truncated { .. })
        ));
        assert!(matches!(
            hevc_annexb(&annexb(&[&vps, &sps, &pps, idr, &pps[..6], idr]), rate),
            Err(ElementaryError::Unsupported { .. })
        ));
        assert!(matches!(
            hevc_annexb(&annexb(&[&vps, &sps, &pps, idr, &[0x4e, 1, 5]]), rate),
            Err(ElementaryError::Malformed { .. })
        ));
        assert!(matches!(
            hevc_annexb(&annexb(&[&vps, &sps, &pps, &[0x26, 0x09, 0x80]]), rate),
            Err(ElementaryError::Unsupported { .. })
        ));
    }

    fn ivf_file(fourcc: &[u8; 4], frames: &[(u64, &[u8])]) -> Vec<u8> {
        let mut out = b"DKIF\x00\x00\x20\x00".to_vec();
        out.extend_from_slice(fourcc);
        out.extend_from_slice(&[0x40, 0x01, 0xF0, 0x00]); // 320x240
        out.extend_from_slice(&[25, 0, 0, 0, 1, 0, 0, 0]); // 1/25 s
        out.extend_from_slice(&(frames.len() as u32).to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        for (pts, data) in frames {
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(&pts.to_le_bytes());
            out.extend_from_slice(data);
        }
        out
    }

    // A VP9 profile 0 key frame of 320x240 (the start of libvpx-vp9's), an
    // inter frame, and the vpcC FFmpeg's MP4 muxer wrote for such a stream.
    const VP9_KEY: &[u8] = b"\x82\x49\x83\x42\x00\x13\xf0\x0e\xf6\x06";
    const VP9_INTER: &[u8] = b"\x86\x00\x40\x92";
    const FFMPEG_VPCC: &str = "010000000014820202020000";

    #[test]
    fn vp9_frames_in_ivf() {
        let file = ivf_file(b"VP90", &[(0, VP9_KEY), (1, VP9_INTER), (2, VP9_INTER), (3, VP9_KEY)]);
        let tags = ivf(&file).unwrap();
        assert_eq!(
            summary(&tags),
            [
                (0, true, Start),
                (0, true, Coded),
                (40, false, Coded),
                (80, false, Coded),
                (120, true, Coded)
            ]
        );
        assert_eq!(packet(&tags[0]).1, FourCc::VP9);
        assert_eq!(packet(&tags[0]).2, hex(FFMPEG_VPCC));
        assert_eq!(packet(&tags[2]).2, VP9_INTER);
    }

    #[test]
    fn a_vp9_key_frame_gives_profile_depth_and_colour() {
        // Profile 2, 10-bit, BT.709, full range, 1920x1080.
        let mut w = BitWriter::default();
        w.put(2, 2).put(1, 0).put(1, 1).put(1, 0).put(1, 0).put(1, 1).put(1, 0);
        w.put(24, 0x49_83_42)
            .put(1, 0)
            .put(3, 2)
            .put(1, 1)
            .put(16, 1919)
            .put(16, 1079);
        let header = Vp9Header::parse(&w.finish()).unwrap();
        let config = header.config.unwrap();
        assert_eq!(
            (
                config.profile,
                config.bit_depth,
                config.chroma_subsampling,
                config.full_range
            ),
            (2, 10, CHROMA_420, true)
        );
        assert_eq!(config.matrix_coefficients, 1);
        assert_eq!(header.size, Some((1920, 1080)));
        assert_eq!(vp9_level(1920 * 1080, 1920 * 1080 * 30), 40);
        assert_eq!(vp9_level(640 * 360, 640 * 360 * 25), 21);
        assert_eq!(vp9_level(u64::MAX, 0), 0);
        // Profile 1 RGB is 4:4:4; profile 0 cannot be RGB.
        let mut w = BitWriter::default();
        w.put(2, 2)
            .put(1, 1)
            .put(1, 0)
            .put(4, 0b0010)
            .put(24, 0x49_83_42)
            .put(3, 7)
            .put(1, 0)
            .put(32, 0);
        assert_eq!(
            Vp9Header::parse(&w.finish())
                .unwrap()
                .config
                .unwrap()
                .chroma_subsampling,
            3
        );
        let mut w = BitWriter::default();
        w.put(2, 2)
            .put(2, 0)
            .put(4, 0b0010)
            .put(24, 0x49_83_42)
            .put(3, 7)
            .put(32, 0);
        assert!(matches!(
            Vp9Header::parse(&w.finish()),
            Err(ElementaryError::Malformed { .. })
        ));
        // A shown existing frame is not a key frame.
        assert!(Vp9Header::parse(&[0x88]).unwrap().config.is_none());
    }

    #[test]
    fn vp8_frames_in_ivf() {
        let key: &[u8] = b"\x10\x02\x00\x9d\x01\x2a\x40\x01\xf0\x00\x00";
        let inter: &[u8] = b"\x31\x01\x00\x12";
        let tags = ivf(&ivf_file(b"VP80", &[(0, key), (1, inter), (5, inter)])).unwrap();
        assert_eq!(
            summary(&tags),
            [
                (0, true, Start),
                (0, true, Coded),
                (40, false, Coded),
                (200, false, Coded)
            ]
        );
        assert_eq!(
            (packet(&tags[0]).1, packet(&tags[0]).2),
            (FourCc::VP8, hex("010000000000820202020000"))
        );
        assert_eq!(packet(&tags[3]).2, inter);
    }

    #[test]
    fn malformed_ivf_is_refused() {
        let key: &[u8] = b"\x10\x02\x00\x9d\x01\x2a\x40\x01\xf0\x00";
        let inter: &[u8] = b"\x31\x01\x00\x12";
        assert!(matches!(ivf(b"DKIF"), Err(ElementaryError::Truncated { .. })));
        assert!(matches!(
            ivf(&ivf_file(b"AV01", &[(0, key)])),
            Err(ElementaryError::Unsupported { .. })
        ));
        assert!(matches!(
            ivf(&ivf_file(b"VP80", &[])),
            Err(ElementaryError::Missing { .. })
        ));
        assert!(matches!(
            ivf(&ivf_file(b"VP80", &[(0, inter)])),
            Err(ElementaryError::Malformed { .. })
        ));
        assert!(matches!(
            ivf(&ivf_file(b"VP80", &[(0, b"\x10\x02\x00\x9d\x01\x2b")])),
            Err(ElementaryError::Malformed { .. })
        ));
        assert!(matches!(
            ivf(&ivf_file(b"VP90", &[(0, VP9_INTER)])),
            Err(ElementaryError::Malformed { .. })
        ));
        assert!(matches!(
            ivf(&ivf_file(b"VP90", &[(0, b"\x02")])),
            Err(ElementaryError::Malformed { .. })
        ));
        assert!(matches!(
            ivf(&ivf_file(b"VP90", &[(0, &VP9_KEY[..6])])),
            Err(ElementaryError::Truncated { .. })
        ));
        let mut cut = ivf_file(b"VP80", &[(0, key)]);
        cut.pop();
        assert!(matches!(ivf(&cut), Err(ElementaryError::Truncated { .. })));
        let mut zero_rate = ivf_file(b"VP80", &[(0, key)]);
        zero_rate[16] = 0;
        assert!(matches!(ivf(&zero_rate), Err(ElementaryError::Malformed { .. })));
    }

    // libaom's sequence header OBU for 320x240 4:2:0 8-bit (profile 0, level
    // 2.0), and the av1C FFmpeg's MP4 muxer wrote for it.
    const AOM_SEQUENCE_HEADER: &str = "0a0b000000043cffbcdaf90040";
    const FFMPEG_AV1C: &str = "81000c000a0b000000043cffbcdaf90040";

    #[test]
    fn av1_temporal_units_become_coded_frames() {
        let td: &[u8] = &[0x12, 0x00];
        let sequence = hex(AOM_SEQUENCE_HEADER);
        let key: &[u8] = &[0x32, 0x02, 0x10, 0xAA]; // frame OBU: KEY_FRAME, shown
        let inter: &[u8] = &[0x32, 0x02, 0x30, 0xBB]; // INTER_FRAME
        let hidden: &[u8] = &[0x32, 0x01, 0x20]; // INTER_FRAME, not shown
        let existing: &[u8] = &[0x1A, 0x01, 0x80]; // frame header OBU: show_existing_frame
        let intra_only: &[u8] = &[0x32, 0x01, 0x50]; // INTRA_ONLY_FRAME
        let sequence = &sequence[..];
        let stream = [
            td, sequence, key, td, hidden, inter, td, existing, td, sequence, intra_only, td, sequence, key,
        ]
        .concat();
        let tags = av1_obu(&stream, FrameRate::per_second(25)).unwrap();
        assert_eq!(
            summary(&tags),
            [
                (0, true, Start),
                (0, true, Coded),
                (40, false, Coded),
                (80, false, Coded),
                (120, false, Coded),
                (160, true, Coded)
            ]
        );
        assert_eq!(packet(&tags[0]).2, hex(FFMPEG_AV1C));
        assert_eq!(
            packet(&tags[1]).2,
            [sequence, key].concat(),
            "the temporal delimiter left out"
        );
        assert_eq!(packet(&tags[2]).2, [hidden, inter].concat());
    }

    #[test]
    fn an_av1_sequence_header_gives_the_record_fields() {
        // Reduced still picture header, profile 2, level 8, 12-bit 4:2:2.
        let mut w = BitWriter::default();
        w.put(3, 2)
            .put(1, 1)
            .put(1, 1)
            .put(5, 8)
            .put(4, 15)
            .put(4, 15)
            .put(16, 99)
            .put(16, 99);
        w.put(3, 0)
            .put(3, 0)
            .put(1, 1)
            .put(1, 1)
            .put(1, 0)
            .put(1, 0)
            .put(1, 1)
            .put(1, 1)
            .put(1, 0);
        let sequence = Av1Sequence::parse(&w.finish()).unwrap();
        assert_eq!(sequence.record(), [0x81, 0x48, 0x68, 0]);
        assert!(av1_is_key_frame(&[], &sequence).unwrap());
        // With timing and decoder model info, two operating points (the first
        // at level 12, high tier), monochrome, a colour description.
        let mut w = BitWriter::default();
        w.put(3, 0).put(1, 0).put(1, 0); // profile 0
        w.put(1, 1).put(64, 0).put(1, 1).ue(0); // timing_info, equal_picture_interval
        w.put(1, 1).put(5, 9).put(32, 0).put(5, 0).put(5, 0); // decoder_model_info, 10-bit delays
        w.put(1, 1).put(5, 1); // initial_display_delay_present, 2 operating points
        w.put(12, 0x101)
            .put(5, 12)
            .put(1, 1)
            .put(1, 1)
            .put(10, 0)
            .put(10, 0)
            .put(1, 0)
            .put(1, 1)
            .put(4, 3);
        w.put(12, 0).put(5, 4).put(1, 0).put(1, 0);
        w.put(4, 9).put(4, 9).put(10, 319).put(10, 239).put(1, 0).put(3, 0); // size, no frame ids
        w.put(4, 0).put(1, 1).put(2, 0).put(1, 0).put(1, 1).put(1, 1).put(3, 6); // order hints, screen content
        w.put(3, 0)
            .put(1, 0)
            .put(1, 1)
            .put(1, 1)
            .put(24, 0x010D00)
            .put(1, 0)
            .put(1, 0);
        let sequence = Av1Sequence::parse(&w.finish()).unwrap();
        assert_eq!(sequence.record(), [0x81, 0x0C, 0x9C, 0]);
        assert!(!sequence.reduced_still_picture_header);
    }

    #[test]
    fn malformed_av1_is_refused() {
        let rate = FrameRate::per_second(25);
        let td: &[u8] = &[0x12, 0x00];
        let sequence = hex(AOM_SEQUENCE_HEADER);
        let key: &[u8] = &[0x32, 0x02, 0x10, 0xAA];
        let error = |stream: Vec<u8>| av1_obu(&stream, rate).unwrap_err();
        assert!(matches!(
            error([&sequence[..], td, key].concat()),
            ElementaryError::Malformed { .. }
        ));
        assert!(matches!(error([td, key].concat()), ElementaryError::Missing { .. }));
        assert!(matches!(
            error([td, &sequence, &key[..3]].concat()),
            ElementaryError::Truncated { .. }
        ));
        assert!(matches!(
            error([td, &sequence, td, td, key].concat()),
            ElementaryError::Malformed { .. }
        ));
        assert!(matches!(
            error([td, &sequence, &[0x30, 0x10]].concat()),
            ElementaryError::Unsupported { .. }
        ));
        assert!(matches!(
            error([td, &sequence, &[0xB2, 0x00]].concat()),
            ElementaryError::Malformed { .. }
        ));
        assert!(matches!(
            error([td, &sequence, &[0x32, 0xFF, 0xFF]].concat()),
            ElementaryError::Truncated { .. }
        ));
        assert!(matches!(
            error(
                [
                    td,
                    &sequence,
                    &[0x32, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]
                ]
                .concat()
            ),
            ElementaryError::Malformed { .. }
        ));
        let mut other = sequence.clone();
        other[4] ^= 0x01;
        assert!(matches!(
            error([td, &sequence, key, td, &other, key].concat()),
            ElementaryError::Unsupported { .. }
        ));
        assert!(matches!(
            error([td, &[0x0A, 0x01, 0xE0], key].concat()),
            ElementaryError::Malformed { .. }
        ));
        assert!(matches!(
            error([td, &sequence[..4]].concat()),
            ElementaryError::Truncated { .. }
        ));
    }

    /// An Ogg page of `packets` (the last one continued on the next page when
    /// `open`), its CRC right.
    fn ogg_page(flags: u8, sequence: u32, serial: u32, pieces: &[&[u8]], open: bool) -> Vec<u8> {
        let mut table = Vec::new();
        for (i, piece) in pieces.iter().enumerate() {
            table.extend(std::iter::repeat_n(255, piece.len() / 255));
            if !(open && i + 1 == pieces.len()) {
                table.push((piece.len() % 255) as u8);
            }
        }
        let mut page = b"OggS\x00".to_vec();
        page.push(flags);
        page.extend_from_slice(&[0; 8]);
        page.extend_from_slice(&serial.to_le_bytes());
        page.extend_from_slice(&sequence.to_le_bytes());
        page.extend_from_slice(&[0; 4]);
        page.push(table.len() as u8);
        page.extend_from_slice(&table);
        for piece in pieces {
            page.extend_from_slice(piece);
        }
        let crc = ogg_crc(0, &page);
        page[22..26].copy_from_slice(&crc.to_le_bytes());
        page
    }

    const OPUS_HEAD: &[u8] = b"OpusHead\x01\x01\x38\x01\x80\xbb\x00\x00\x00\x00\x00";

    fn opus_file() -> (Vec<u8>, Vec<u8>) {
        let long = [&[0xFB, 0x03][..], &[0x5A; 508]].concat(); // 3 x 20 ms, over two pages
        let file = [
            ogg_page(2, 0, 7, &[OPUS_HEAD], false),
            ogg_page(0, 1, 7, &[b"OpusTags\x00\x00\x00\x00\x00\x00\x00\x00"], false),
            ogg_page(0, 2, 7, &[&[0xF8, 0x01], &[0xF9, 0x02, 0x03], &long[..255]], true),
            ogg_page(1, 3, 7, &[&long[255..], &[0xF8]], false),
        ]
        .concat();
        (file, long)
    }

    #[test]
    fn opus_packets_from_ogg_pages() {
        let (file, long) = opus_file();
        let tags = opus_ogg(&file).unwrap();
        assert_eq!(
            tags.iter()
                .map(|t| (t.timestamp, packet(t).0.packet_type))
                .collect::<Vec<_>>(),
            [(0, Start), (0, Coded), (20, Coded), (60, Coded), (120, Coded)]
        );
        assert_eq!(packet(&tags[0]).1, FourCc::OPUS);
        assert_eq!(packet(&tags[0]).2, OPUS_HEAD);
        assert_eq!(packet(&tags[3]).2, long, "a packet joined across two pages");
        assert_eq!(opus_samples(&[0x00]), Ok(480)); // SILK 10 ms
        assert_eq!(opus_samples(&[0x6B, 0x03]), Ok(2880)); // hybrid 20 ms, 3 frames
        assert_eq!(opus_samples(&[0x83, 0x02]), Ok(240)); // CELT 2.5 ms, 2 frames
        assert!(opus_samples(&[0x1B, 0x03]).is_err(), "3 x 60 ms is over 120 ms");
        assert!(opus_samples(&[0xFB, 0x00]).is_err());
        assert!(opus_samples(&[0xFB]).is_err());
        assert!(opus_samples(&[]).is_err());
    }

    #[test]
    fn malformed_ogg_is_refused() {
        let (file, _) = opus_file();
        let mut bad_crc = file.clone();
        bad_crc[30] ^= 1;
        assert!(matches!(opus_ogg(&bad_crc), Err(ElementaryError::Malformed { .. })));
        assert!(matches!(
            opus_ogg(&file[..file.len() - 1]),
            Err(ElementaryError::Truncated { .. })
        ));
        let head = ogg_page(2, 0, 7, &[OPUS_HEAD], false);
        let tags = ogg_page(0, 1, 7, &[b"OpusTags"], false);
        let open = ogg_page(0, 2, 7, &[&[0xF8; 255]], true);
        assert!(matches!(
            opus_ogg(&[&head[..], &tags, &open].concat()),
            Err(ElementaryError::Truncated { .. })
        ));
        let stray = ogg_page(1, 2, 7, &[&[0xF8]], false);
        assert!(matches!(
            opus_ogg(&[&head[..], &tags, &stray].concat()),
            Err(ElementaryError::Malformed { .. })
        ));
        let other = ogg_page(0, 0, 8, &[&[0xF8]], false);
        assert!(matches!(
            opus_ogg(&[&head[..], &tags, &other].concat()),
            Err(ElementaryError::Unsupported { .. })
        ));
        assert!(matches!(
            opus_ogg(&[&head[..], &head].concat()),
            Err(ElementaryError::Malformed { .. })
        ));
        assert!(matches!(opus_ogg(&tags), Err(ElementaryError::Malformed { .. })));
        assert!(matches!(opus_ogg(b""), Err(ElementaryError::Missing { .. })));
        assert!(matches!(
            opus_ogg(b"RIFF\x00\x00\x00\x00"),
            Err(ElementaryError::Truncated { .. })
        ));
    }

    /// A FLAC frame: header (4608 samples given in 16 bits, 48 kHz, mono,
    /// 16-bit) with its CRC-8, `payload`, and its CRC-16.
    fn flac_frame(number: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![0xFF, 0xF8, 0x7A, 0x08];
        frame.extend_from_slice(number);
        frame.extend_from_slice(&(4608u16 - 1).to_be_bytes());
        frame.push(flac_crc8(&frame));
        frame.extend_from_slice(payload);
        let crc = frame.iter().fold(0, |crc, &b| flac_crc16(crc, b));
        frame.extend_from_slice(&crc.to_be_bytes());
        frame
    }

    // ffmpeg's STREAMINFO for 4 s of 48 kHz mono 16-bit in blocks of 4608.
    const STREAMINFO: &str = "120012000003580004ff0bb800f00002ee002a6ba4825dc1428345546ac64bc657fa";

    fn flac_file(frames: &[Vec<u8>]) -> Vec<u8> {
        let mut file = b"fLaC\x00\x00\x00\x22".to_vec();
        file.extend_from_slice(&hex(STREAMINFO));
        file.extend_from_slice(b"\x81\x00\x00\x04\x00\x00\x00\x00"); // last: 4 bytes of padding
        file.extend(frames.iter().flatten());
        file
    }

    #[test]
    fn flac_frames_split_at_checked_headers() {
        // A sync code and a whole header with its CRC-8 right inside the
        // first frame's data: only the CRC-16 tells it is not a frame.
        let fake = flac_frame(&[0x01], &[]);
        let payload = [&[0x00, 0x11][..], &fake[..fake.len() - 2], &[0x22; 10]].concat();
        let frames = [
            flac_frame(&[0x00], &payload),
            flac_frame(&[0x01], &[0x33; 20]),
            flac_frame(&[0xC3, 0x88], &[0x44; 5]), // frame 200, in two bytes
        ];
        let tags = flac(&flac_file(&frames)).unwrap();
        assert_eq!(
            tags.iter()
                .map(|t| (t.timestamp, packet(t).0.packet_type))
                .collect::<Vec<_>>(),
            [(0, Start), (0, Coded), (96, Coded), (192, Coded)]
        );
        let (_, fourcc, start) = packet(&tags[0]);
        assert_eq!(fourcc, FourCc::FLAC);
        assert_eq!(&start[..8], b"fLaC\x80\x00\x00\x22");
        assert_eq!(start[8..], hex(STREAMINFO));
        assert_eq!(start.len(), 8 + FLAC_STREAMINFO_LEN);
        for (tag, frame) in tags[1..].iter().zip(&frames) {
            assert_eq!(&packet(tag).2, frame);
        }
        assert_eq!(flac_frame_header(&frames[2], false), Some(4608));
        assert_eq!(flac_frame_header(&frames[2], true), None);
        assert_eq!(
            flac_frame_header(&[0xFF, 0xF8, 0xC9, 0x08, 0x00, 0x95], false),
            Some(4096)
        );
        let mut bad_crc8 = frames[1].clone();
        bad_crc8[7] ^= 1;
        assert_eq!(flac_frame_header(&bad_crc8, false), None);
    }

    #[test]
    fn malformed_flac_is_refused() {
        let good = flac_file(&[flac_frame(&[0], &[0x55; 12])]);
        assert!(flac(&good).is_ok());
        let mut bad_crc16 = good.clone();
        *bad_crc16.last_mut().unwrap() ^= 1;
        assert!(matches!(flac(&bad_crc16), Err(ElementaryError::Malformed { .. })));
        assert!(matches!(flac(b"OggS"), Err(ElementaryError::Malformed { .. })));
        assert!(matches!(flac(&good[..20]), Err(ElementaryError::Truncated { .. })));
        let mut padding_first = good.clone();
        padding_first[4] = 1;
        assert!(matches!(flac(&padding_first), Err(ElementaryError::Malformed { .. })));
        let no_frames = flac_file(&[]);
        assert!(matches!(flac(&no_frames), Err(ElementaryError::Missing { .. })));
        let garbage = [&no_frames[..], &[0x12; 30]].concat();
        assert!(matches!(flac(&garbage), Err(ElementaryError::Malformed { .. })));
        let mut zero_rate = good.clone();
        zero_rate[8 + 10..8 + 13].copy_from_slice(&[0, 0, 0]);
        assert!(matches!(flac(&zero_rate), Err(ElementaryError::Malformed { .. })));
    }

    fn ac3_frame(fscod_frmsizecod: u8, fill: u8) -> Vec<u8> {
        let size = ac3_frame_size(fscod_frmsizecod & 0x3F, fscod_frmsizecod >> 6).unwrap();
        let mut frame = vec![0x0B, 0x77, 0, 0, fscod_frmsizecod, 8 << 3];
        frame.resize(size, fill);
        frame
    }

    fn eac3_frame(strmtyp_substream: u8, words: u16, fill: u8) -> Vec<u8> {
        let frmsiz = words - 1;
        let mut frame = vec![
            0x0B,
            0x77,
            strmtyp_substream | (frmsiz >> 8) as u8,
            frmsiz as u8,
            0x30,
            16 << 3,
        ];
        frame.resize(usize::from(words) * 2, fill);
        frame
    }

    #[test]
    fn ac3_and_eac3_syncframes() {
        assert_eq!(ac3_frame_size(0, 0), Some(128));
        assert_eq!(ac3_frame_size(0, 1), Some(138));
        assert_eq!(ac3_frame_size(1, 1), Some(140));
        assert_eq!(ac3_frame_size(36, 1), Some(2786));
        assert_eq!(ac3_frame_size(37, 2), Some(3840));
        assert_eq!(ac3_frame_size(38, 0), None);
        assert_eq!(ac3_frame_size(0, 3), None);
        let stream = [ac3_frame(0x0C, 1), ac3_frame(0x0C, 2), ac3_frame(0x0C, 3)].concat();
        let tags = ac3(&stream).unwrap();
        assert_eq!(tags.iter().map(|t| t.timestamp).collect::<Vec<_>>(), [0, 32, 64]);
        assert_eq!(
            (packet(&tags[1]).1, packet(&tags[1]).2),
            (FourCc::AC3, ac3_frame(0x0C, 2))
        );
        // 44.1 kHz: 1536 samples are 34.8 ms.
        let tags = ac3(&[ac3_frame(0x41, 1), ac3_frame(0x40, 2), ac3_frame(0x41, 3)].concat()).unwrap();
        assert_eq!(tags.iter().map(|t| t.timestamp).collect::<Vec<_>>(), [0, 34, 69]);

        // An independent substream, a dependent one joining it, another independent one.
        let stream = [
            eac3_frame(0x00, 64, 1),
            eac3_frame(0x40, 32, 2),
            eac3_frame(0x00, 64, 3),
        ]
        .concat();
        let tags = eac3(&stream).unwrap();
        assert_eq!(tags.iter().map(|t| t.timestamp).collect::<Vec<_>>(), [0, 32]);
        assert_eq!(packet(&tags[0]).1, FourCc::EAC3);
        assert_eq!(
            packet(&tags[0]).2,
            [eac3_frame(0x00, 64, 1), eac3_frame(0x40, 32, 2)].concat()
        );
    }

    #[test]
    fn malformed_ac3_is_refused() {
        let frame = ac3_frame(0x0C, 1);
        assert!(matches!(eac3(&frame), Err(ElementaryError::Malformed { .. })));
        assert!(matches!(
            ac3(&eac3_frame(0, 64, 0)),
            Err(ElementaryError::Malformed { .. })
        ));
        assert!(matches!(ac3(&frame[..100]), Err(ElementaryError::Truncated { .. })));
        assert!(matches!(
            ac3(&[&frame[..], &[0x0B, 0x78, 0, 0, 0, 0]].concat()),
            Err(ElementaryError::Malformed { .. })
        ));
        assert!(matches!(
            ac3(&[0x0B, 0x77, 0, 0, 0xFF, 0x40]),
            Err(ElementaryError::Malformed { .. })
        ));
        assert!(matches!(
            ac3(&[0x0B, 0x77, 0, 0, 0x26, 0x40]),
            Err(ElementaryError::Malformed { .. })
        ));
        assert!(matches!(ac3(b""), Err(ElementaryError::Missing { .. })));
        assert!(matches!(
            ac3(&[ac3_frame(0x0C, 1), ac3_frame(0x4C, 1)].concat()),
            Err(ElementaryError::Unsupported { .. })
        ));
        assert!(matches!(
            eac3(&eac3_frame(0x40, 64, 0)),
            Err(ElementaryError::Malformed { .. })
        ));
        assert!(matches!(
            eac3(&eac3_frame(0xC0, 64, 0)),
            Err(ElementaryError::Malformed { .. })
        ));
        assert!(matches!(
            eac3(&[0x0B, 0x77, 0, 0, 0x30, 0x80]),
            Err(ElementaryError::Malformed { .. })
        ));
        let mut bad_fscod2 = eac3_frame(0, 64, 0);
        bad_fscod2[4] = 0xF0;
        assert!(matches!(eac3(&bad_fscod2), Err(ElementaryError::Malformed { .. })));
    }

    #[test]
    fn interleaving_puts_sequence_starts_first_then_orders_by_time() {
        let video = hevc_annexb(
            &[
                annexb(&[&hex(X265_VPS), &hex(X265_SPS), &hex(X265_PPS), &[0x26, 1, 0x80]]),
                annexb(&[&[0x02, 1, 0x80], &[0x02, 1, 0x80]]),
            ]
            .concat(),
            FrameRate::per_second(25),
        )
        .unwrap();
        let (file, _) = opus_file();
        let audio = opus_ogg(&file).unwrap();
        let order: Vec<(TagKind, u32, PacketType)> = interleave(video, audio)
            .iter()
            .map(|t| (t.kind, t.timestamp, packet(t).0.packet_type))
            .collect();
        use TagKind::{Audio, Video};
        assert_eq!(
            order,
            [
                (Video, 0, Start),
                (Audio, 0, Start),
                (Video, 0, Coded),
                (Audio, 0, Coded),
                (Audio, 20, Coded),
                (Video, 40, Coded),
                (Audio, 60, Coded),
                (Video, 80, Coded),
                (Audio, 120, Coded),
            ]
        );
    }

    proptest! {
        /// Any bytes, and any damage to a good stream: an answer, never a panic.
        #[test]
        fn any_input_is_read_or_refused(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
            cut in any::<prop::sample::Index>(),
            flip in any::<prop::sample::Index>(),
            mask in 1u8..,
        ) {
            let readers: [fn(&[u8]) -> bool; 7] = [
                |b| hevc_annexb(b, FrameRate::per_second(25)).is_ok(),
                |b| ivf(b).is_ok(),
                |b| av1_obu(b, FrameRate::per_second(25)).is_ok(),
                |b| opus_ogg(b).is_ok(),
                |b| flac(b).is_ok(),
                |b| ac3(b).is_ok(),
                |b| eac3(b).is_ok(),
            ];
            let td: &[u8] = &[0x12, 0x00];
            let good = [
                annexb(&[&hex(X265_VPS), &hex(X265_SPS), &hex(X265_PPS), &[0x26, 1, 0x80, 0x12]]),
                ivf_file(b"VP90", &[(0, VP9_KEY), (1, VP9_INTER)]),
                [td, &hex(AOM_SEQUENCE_HEADER), &[0x32, 0x02, 0x10, 0xAA]].concat(),
                opus_file().0,
                flac_file(&[flac_frame(&[0], &[0x55; 12]), flac_frame(&[1], &[0x66; 3])]),
                ac3_frame(0x0C, 1),
                eac3_frame(0, 64, 0),
            ];
            for (read, good) in readers.iter().zip(&good) {
                prop_assert!(read(good));
                read(&bytes);
                read(&good[..cut.index(good.len() + 1)]);
                let mut damaged = good.clone();
                damaged[flip.index(good.len())] ^= mask;
                read(&damaged);
                let spliced = [&good[..cut.index(good.len() + 1)], &bytes[..]].concat();
                read(&spliced);
            }
        }
    }
}
