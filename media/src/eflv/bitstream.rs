//! From the tags of an Enhanced RTMP video track to the bitstream that
//! decoders and RTP packetizers take, for HEVC, AV1, VP9 and VP8 (H.264
//! has its own, [`crate::h264::AvcConfig`]).
//!
//! - HEVC: the SequenceStart's HEVCDecoderConfigurationRecord (ISO/IEC
//!   14496-15, section 8.3.3) gives the NAL unit length size and the
//!   parameter sets; a coded frame's length-prefixed NAL units become
//!   Annex B (what RFC 7798's packetizers split into NAL units), with the
//!   parameter sets before every keyframe.
//! - AV1: the AV1CodecConfigurationRecord's configOBUs (the sequence
//!   header) go before every keyframe's OBUs, which are already in the
//!   low-overhead format with sizes (AV1-ISOBMFF, section 2.3) that the AV1
//!   RTP payload format takes apart.
//! - VP8 and VP9: the VPCodecConfigurationRecord only describes the stream;
//!   frames are the codec's frames as they are.

use super::{EflvError, FourCc};

/// One track's framing state: what its SequenceStart said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitstream {
    fourcc: FourCc,
    /// HEVC: bytes per NAL unit length (1, 2 or 4).
    length_size: usize,
    /// What goes before a keyframe: HEVC parameter sets as Annex B, AV1
    /// configuration OBUs. `None` until configured (required for HEVC).
    prefix: Option<Vec<u8>>,
}

impl Bitstream {
    /// The framing of `fourcc`; `None` for a codec this module does not frame.
    pub fn new(fourcc: FourCc) -> Option<Bitstream> {
        matches!(fourcc, FourCc::HEVC | FourCc::AV1 | FourCc::VP9 | FourCc::VP8).then_some(Bitstream {
            fourcc,
            length_size: 4,
            prefix: None,
        })
    }

    /// The codec it frames.
    pub fn fourcc(&self) -> FourCc {
        self.fourcc
    }

    /// Whether a SequenceStart was read.
    pub fn configured(&self) -> bool {
        self.prefix.is_some()
    }

    /// Takes a SequenceStart's configuration record.
    pub fn configure(&mut self, record: &[u8]) -> Result<(), EflvError> {
        let (length_size, prefix) = read_record(self.fourcc, record)?;
        self.length_size = length_size;
        self.prefix = Some(prefix);
        Ok(())
    }

    /// Appends one CodedFrames packet's bitstream to `out`; a `keyframe`
    /// gets the configuration in front. HEVC before its SequenceStart is
    /// an error (its NAL units cannot be decoded without parameter sets).
    pub fn frame(&self, data: &[u8], keyframe: bool, out: &mut Vec<u8>) -> Result<(), EflvError> {
        match self.fourcc {
            FourCc::HEVC => {
                let Some(parameter_sets) = &self.prefix else {
                    return Err(EflvError::BadFrame {
                        codec: "hevc",
                        what: "a coded frame before any SequenceStart",
                    });
                };
                if keyframe {
                    out.extend_from_slice(parameter_sets);
                }
                let mut rest = data;
                while rest.len() >= self.length_size {
                    let (size, tail) = rest.split_at(self.length_size);
                    let size = size.iter().fold(0usize, |n, b| n << 8 | usize::from(*b));
                    let Some(unit) = tail.get(..size) else {
                        return Err(EflvError::BadFrame {
                            codec: "hevc",
                            what: "a NAL unit longer than its frame",
                        });
                    };
                    out.extend_from_slice(&[0, 0, 0, 1]);
                    out.extend_from_slice(unit);
                    rest = &tail[size..];
                }
            }
            FourCc::AV1 => {
                if let (true, Some(obus)) = (keyframe, &self.prefix) {
                    out.extend_from_slice(obus);
                }
                out.extend_from_slice(data);
            }
            _ => out.extend_from_slice(data),
        }
        Ok(())
    }
}

/// What a SequenceStart's configuration record gives the framing of
/// `fourcc`: the NAL unit length size (HEVC; 4 otherwise) and what goes
/// before a keyframe (HEVC parameter sets as Annex B, AV1 configuration
/// OBUs; nothing for VP8 and VP9).
fn read_record(fourcc: FourCc, record: &[u8]) -> Result<(usize, Vec<u8>), EflvError> {
    match fourcc {
        FourCc::HEVC => hevc_record(record).ok_or(EflvError::BadRecord {
            codec: "hevc",
            what: "it ends inside a field",
        }),
        // An empty record (the Enhanced RTMP lab's files begin with one):
        // the keyframes carry their sequence header.
        FourCc::AV1 if record.is_empty() => Ok((4, Vec::new())),
        FourCc::AV1 => {
            // marker and version (0x81), then three bytes of fields, then configOBUs.
            let obus = record.get(4..).filter(|_| record.first() == Some(&0x81));
            let obus = obus.ok_or(EflvError::BadRecord {
                codec: "av1",
                what: "no marker and version byte 0x81",
            })?;
            Ok((4, obus.to_vec()))
        }
        _ => Ok((4, Vec::new())),
    }
}

/// An HEVCDecoderConfigurationRecord's NAL unit length size and its
/// parameter sets as Annex B; `None` when it is cut short.
fn hevc_record(record: &[u8]) -> Option<(usize, Vec<u8>)> {
    let length_size = usize::from(record.get(21)? & 0x03) + 1;
    let arrays = *record.get(22)?;
    let mut at = 23;
    let mut annexb = Vec::new();
    for _ in 0..arrays {
        let count = u16::from_be_bytes([*record.get(at + 1)?, *record.get(at + 2)?]);
        at += 3;
        for _ in 0..count {
            let size = usize::from(u16::from_be_bytes([*record.get(at)?, *record.get(at + 1)?]));
            let unit = record.get(at + 2..at + 2 + size)?;
            annexb.extend_from_slice(&[0, 0, 0, 1]);
            annexb.extend_from_slice(unit);
            at += 2 + size;
        }
    }
    Some((length_size, annexb))
}

/// The profile, tier and level an HEVCDecoderConfigurationRecord declares
/// (general_profile_idc, general_tier_flag, general_level_idc), as the
/// SDP's `profile-id`, `tier-flag` and `level-id` (RFC 7798, section 7.1).
pub fn hevc_profile_tier_level(record: &[u8]) -> Option<(u8, u8, u8)> {
    let general = *record.get(1)?;
    Some((general & 0x1f, (general >> 5) & 1, *record.get(12)?))
}

/// The profile a SequenceStart's configuration `record` declares: HEVC's
/// general_profile_idc, AV1's seq_profile (0 Main: 8 or 10 bits, 4:2:0),
/// VP9's profile (0: 8 bits, 4:2:0) and VP8's (0); `None` when the record
/// does not say (cut short, or empty as AV1's may be).
///
/// A VPCodecConfigurationRecord is 8 bytes with no initialization data for
/// VP8 and VP9; FFmpeg sends it with the version and flags of its `vpcC`
/// box in front, so the profile is read 8 bytes from its end.
pub fn profile(fourcc: FourCc, record: &[u8]) -> Option<u8> {
    match fourcc {
        FourCc::HEVC => hevc_profile_tier_level(record).map(|(profile, _, _)| profile),
        FourCc::AV1 => record.get(1).filter(|_| record.first() == Some(&0x81)).map(|b| b >> 5),
        FourCc::VP9 | FourCc::VP8 => record.get(record.len().checked_sub(8)?).copied(),
        _ => None,
    }
}

/// The picture size a SequenceStart's configuration `record` gives: from
/// HEVC's SPS (H.265, section 7.3.2.2: pic_width_in_luma_samples and
/// pic_height_in_luma_samples less the conformance window) and AV1's
/// sequence header OBU (AV1, section 5.5: max_frame_width_minus_1 and
/// max_frame_height_minus_1); `None` for VP8 and VP9, whose record says
/// nothing of it, and for a record cut short or without those.
pub fn picture_size(fourcc: FourCc, record: &[u8]) -> Option<(u32, u32)> {
    match fourcc {
        FourCc::HEVC => hevc_sps_size(hevc_unit(record, 33)?),
        FourCc::AV1 if record.first() == Some(&0x81) => av1_size(record.get(4..)?),
        _ => None,
    }
}

/// The picture size a VP8 or VP9 keyframe gives (their records say
/// nothing of it): VP8's key frame header (RFC 6386, section 9.1: the
/// start code 9d 01 2a, then 14-bit width and height, little-endian) and
/// VP9's uncompressed header (VP9 bitstream specification 0.6, section
/// 6.2: frame_width_minus_1 and frame_height_minus_1 after the sync code
/// and the color config). `None` for other codecs, a frame that is not a
/// keyframe, or one cut short. A VP9 superframe starts with its first
/// frame, which is the keyframe.
pub fn keyframe_size(fourcc: FourCc, frame: &[u8]) -> Option<(u32, u32)> {
    match fourcc {
        FourCc::VP8 => vp8_keyframe_size(frame),
        FourCc::VP9 => vp9_keyframe_size(frame),
        _ => None,
    }
}

fn vp8_keyframe_size(frame: &[u8]) -> Option<(u32, u32)> {
    // The frame tag's lowest bit is 0 for a key frame.
    if frame.first()? & 1 != 0 || frame.get(3..6)? != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let le14 = |at: usize| {
        Some(u32::from(
            u16::from_le_bytes([*frame.get(at)?, *frame.get(at + 1)?]) & 0x3fff,
        ))
    };
    Some((le14(6)?, le14(8)?))
}

fn vp9_keyframe_size(frame: &[u8]) -> Option<(u32, u32)> {
    let mut bits = crate::h264::BitReader::new(frame);
    let mut read = |n: u32| -> Option<u32> { (0..n).try_fold(0, |value, _| Some(value << 1 | bits.bit()?)) };
    if read(2)? != 2 {
        return None; // frame_marker
    }
    let low = read(1)?;
    let profile = read(1)? << 1 | low;
    if profile == 3 {
        read(1)?; // reserved_zero
    }
    // show_existing_frame, then frame_type (0: KEY_FRAME).
    if read(1)? == 1 || read(1)? != 0 {
        return None;
    }
    read(2)?; // show_frame, error_resilient_mode
    if read(24)? != 0x49_83_42 {
        return None; // frame_sync_code
    }
    // color_config (section 6.2.2).
    if profile >= 2 {
        read(1)?; // ten_or_twelve_bit
    }
    const CS_RGB: u32 = 7;
    let rgb = read(3)? == CS_RGB;
    if !rgb {
        read(1)?; // color_range
    }
    if profile == 1 || profile == 3 {
        // subsampling_x, subsampling_y and reserved_zero; RGB has only the last.
        read(if rgb { 1 } else { 3 })?;
    }
    Some((read(16)? + 1, read(16)? + 1))
}

/// The first NAL unit of `nal_type` in an HEVCDecoderConfigurationRecord.
fn hevc_unit(record: &[u8], nal_type: u8) -> Option<&[u8]> {
    let arrays = *record.get(22)?;
    let mut at = 23;
    for _ in 0..arrays {
        let kind = record.get(at)? & 0x3f;
        let count = u16::from_be_bytes([*record.get(at + 1)?, *record.get(at + 2)?]);
        at += 3;
        for _ in 0..count {
            let size = usize::from(u16::from_be_bytes([*record.get(at)?, *record.get(at + 1)?]));
            let unit = record.get(at + 2..at + 2 + size)?;
            if kind == nal_type {
                return Some(unit);
            }
            at += 2 + size;
        }
    }
    None
}

/// The cropped picture size of an HEVC SPS NAL unit (its 2-byte header
/// first).
fn hevc_sps_size(unit: &[u8]) -> Option<(u32, u32)> {
    let rbsp = crate::h264::without_emulation_prevention(unit.get(2..)?);
    let mut bits = crate::h264::BitReader::new(&rbsp);
    // sps_video_parameter_set_id, then sps_max_sub_layers_minus1, then
    // sps_temporal_id_nesting_flag.
    bits.bits(4)?;
    let sub_layers = bits.bits(3)?;
    bits.bits(1)?;
    // profile_tier_level(1, sps_max_sub_layers_minus1), section 7.3.3: the
    // general profile (88 bits) and level (8), each sub-layer's presence
    // flags, padded to 8 pairs, then what they say is present.
    bits.bits(32)?;
    bits.bits(32)?;
    bits.bits(32)?;
    let mut present = Vec::new();
    for _ in 0..sub_layers {
        present.push((bits.bit()? == 1, bits.bit()? == 1));
    }
    if sub_layers > 0 {
        for _ in sub_layers..8 {
            bits.bits(2)?;
        }
    }
    for (profile, level) in present {
        if profile {
            bits.bits(32)?;
            bits.bits(32)?;
            bits.bits(24)?;
        }
        if level {
            bits.bits(8)?;
        }
    }
    let _sps_id = bits.ue()?;
    let chroma_format_idc = bits.ue()?;
    let separate_planes = chroma_format_idc == 3 && bits.bit()? == 1;
    let (width, height) = (bits.ue()?, bits.ue()?);
    // Table 6-1: the chroma subsampling the window offsets count in.
    let (sub_width, sub_height) = match (chroma_format_idc, separate_planes) {
        (1, false) => (2, 2),
        (2, false) => (2, 1),
        _ => (1, 1),
    };
    let (mut left, mut right, mut top, mut bottom) = (0, 0, 0, 0);
    if bits.bit()? == 1 {
        (left, right, top, bottom) = (bits.ue()?, bits.ue()?, bits.ue()?, bits.ue()?);
    }
    let width = width.checked_sub(sub_width * (left.checked_add(right)?))?;
    let height = height.checked_sub(sub_height * (top.checked_add(bottom)?))?;
    (width > 0 && height > 0).then_some((width, height))
}

/// The maximum frame size of the sequence header OBU among `obus`
/// (configOBUs, in the low-overhead format with sizes).
fn av1_size(mut obus: &[u8]) -> Option<(u32, u32)> {
    while let Some(&header) = obus.first() {
        let kind = (header >> 3) & 0x0f;
        let extension = header & 0x04 != 0;
        let sized = header & 0x02 != 0;
        let mut at = 1 + usize::from(extension);
        let size = match sized {
            true => {
                let (size, read) = leb128(obus.get(at..)?)?;
                at += read;
                usize::try_from(size).ok()?
            }
            false => obus.len().checked_sub(at)?,
        };
        let payload = obus.get(at..at.checked_add(size)?)?;
        if kind == 1 {
            return av1_sequence_header_size(payload);
        }
        obus = &obus[at + size..];
    }
    None
}

/// leb128(): the value and how many bytes it took.
fn leb128(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, byte) in bytes.iter().take(8).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// sequence_header_obu() (AV1, section 5.5.1) up to the maximum frame size.
fn av1_sequence_header_size(payload: &[u8]) -> Option<(u32, u32)> {
    let mut bits = crate::h264::BitReader::new(payload);
    let _profile = bits.bits(3)?;
    let _still_picture = bits.bit()?;
    if bits.bit()? == 1 {
        // reduced_still_picture_header: one operating point, its level.
        bits.bits(5)?;
    } else {
        let mut decoder_model = None;
        if bits.bit()? == 1 {
            // timing_info(): two 32-bit fields, and an uvlc() if
            // equal_picture_interval.
            bits.bits(32)?;
            bits.bits(32)?;
            if bits.bit()? == 1 {
                let mut zeros = 0;
                while bits.bit()? == 0 {
                    zeros += 1;
                    if zeros >= 32 {
                        return None;
                    }
                }
                bits.bits(zeros)?;
            }
            if bits.bit()? == 1 {
                // decoder_model_info(): buffer_delay_length_minus_1 is what
                // later fields need.
                let delay_length = bits.bits(5)? + 1;
                bits.bits(32)?;
                bits.bits(10)?;
                decoder_model = Some(delay_length);
            }
        }
        let initial_display_delay = bits.bit()? == 1;
        let operating_points = bits.bits(5)? + 1;
        for _ in 0..operating_points {
            bits.bits(12)?;
            if bits.bits(5)? > 7 {
                bits.bit()?;
            }
            if let Some(delay_length) = decoder_model {
                if bits.bit()? == 1 {
                    bits.bits(delay_length)?;
                    bits.bits(delay_length)?;
                    bits.bit()?;
                }
            }
            if initial_display_delay && bits.bit()? == 1 {
                bits.bits(4)?;
            }
        }
    }
    let width_bits = bits.bits(4)? + 1;
    let height_bits = bits.bits(4)? + 1;
    let width = bits.bits(width_bits)? + 1;
    let height = bits.bits(height_bits)? + 1;
    Some((width, height))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record: version, profile Main (1) tier 0, …, level 93, length
    /// size 4, one VPS array of one 2-byte unit.
    fn hevc_record_bytes() -> Vec<u8> {
        let mut record = vec![
            1, 0x01, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 93, 0xf0, 0, 0xfc, 0xfd, 0xf8, 0xf8, 0, 0, 0x0f,
        ];
        record.extend_from_slice(&[1, 0x20, 0, 1, 0, 2, 0x40, 0x01]);
        record
    }

    #[test]
    fn hevc_frames_become_annexb_with_parameter_sets_before_keyframes() {
        let mut hevc = Bitstream::new(FourCc::HEVC).unwrap();
        let mut out = Vec::new();
        assert!(
            hevc.frame(&[0, 0, 0, 1, 0x26], true, &mut out).is_err(),
            "before the record"
        );
        hevc.configure(&hevc_record_bytes()).unwrap();
        assert_eq!(hevc_profile_tier_level(&hevc_record_bytes()), Some((1, 0, 93)));
        hevc.frame(&[0, 0, 0, 2, 0x26, 1, 0, 0, 0, 1, 0x02], true, &mut out)
            .unwrap();
        assert_eq!(out, [0, 0, 0, 1, 0x40, 0x01, 0, 0, 0, 1, 0x26, 1, 0, 0, 0, 1, 0x02]);
        out.clear();
        hevc.frame(&[0, 0, 0, 1, 0x02], false, &mut out).unwrap();
        assert_eq!(out, [0, 0, 0, 1, 0x02]);
        assert!(hevc.frame(&[0, 0, 0, 9, 0x02], false, &mut out).is_err(), "overrun");
        assert!(hevc.clone().configure(&hevc_record_bytes()[..25]).is_err(), "cut short");
    }

    #[test]
    fn av1_keyframes_get_the_config_obus_and_vp9_passes_as_is() {
        let mut av1 = Bitstream::new(FourCc::AV1).unwrap();
        av1.configure(&[0x81, 0, 0x0c, 0, 0x0a, 1, 0xaa]).unwrap();
        let mut out = Vec::new();
        av1.frame(&[0x32, 1, 0xbb], true, &mut out).unwrap();
        av1.frame(&[0x32, 1, 0xcc], false, &mut out).unwrap();
        assert_eq!(out, [0x0a, 1, 0xaa, 0x32, 1, 0xbb, 0x32, 1, 0xcc]);
        assert!(av1.configure(&[0x80, 0, 0, 0]).is_err());
        assert!(
            Bitstream::new(FourCc::AV1).unwrap().configure(&[]).is_ok(),
            "the lab's empty record"
        );
        let vp9 = Bitstream::new(FourCc::VP9).unwrap();
        out.clear();
        vp9.frame(&[0x82, 0x49], true, &mut out).unwrap();
        assert_eq!(out, [0x82, 0x49]);
        assert!(Bitstream::new(FourCc::AVC).is_none());
        assert_eq!(profile(FourCc::AV1, &[0x81, 0x00, 0x0c, 0]), Some(0));
        assert_eq!(profile(FourCc::AV1, &[0x81, 0x28, 0x0c, 0]), Some(1), "High: 4:4:4");
        assert_eq!(profile(FourCc::AV1, &[]), None);
        let ffmpeg_vpcc = [1, 0, 0, 0, 2, 20, 0x82, 2, 2, 2, 0, 0];
        assert_eq!(profile(FourCc::VP9, &ffmpeg_vpcc), Some(2));
        assert_eq!(profile(FourCc::VP9, &ffmpeg_vpcc[4..]), Some(2), "the bare record");
        assert_eq!(profile(FourCc::HEVC, &hevc_record_bytes()), Some(1));
    }
}
