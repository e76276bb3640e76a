//! H.264 bitstream helpers (ITU-T H.264): the decoder configuration record of
//! an FLV sequence header (ISO/IEC 14496-15), walking length-prefixed (AVCC) and
//! start-code (Annex B) NAL units, converting between the two as an RTMP/WebRTC
//! gateway must, and recognising where a decoder can start.

use bytes::Bytes;

/// NAL unit types this crate looks at.
pub mod nal_type {
    /// Coded slice of a non-IDR picture.
    pub const SLICE: u8 = 1;
    /// Coded slice of an IDR picture.
    pub const IDR: u8 = 5;
    /// Supplemental enhancement information.
    pub const SEI: u8 = 6;
    /// Sequence parameter set.
    pub const SPS: u8 = 7;
    /// Picture parameter set.
    pub const PPS: u8 = 8;
    /// Access unit delimiter.
    pub const AUD: u8 = 9;
}

/// SEI payload type of a recovery point (H.264 D.1.8).
const SEI_RECOVERY_POINT: u32 = 6;

/// The NAL units of an AVCC payload with 4-byte lengths (what follows the
/// 5-byte AVC video tag header). Stops at the first length that overruns.
pub fn avcc_nal_units(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    length_prefixed_nal_units(data, 4)
}

/// The NAL units of an AVCC payload whose lengths take `length_size` bytes
/// (1, 2 or 4, from the decoder configuration record). Stops at the first
/// length that overruns.
pub fn length_prefixed_nal_units(mut data: &[u8], length_size: usize) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        if length_size == 0 || length_size > 4 || data.len() < length_size {
            return None;
        }
        let len = data[..length_size]
            .iter()
            .fold(0usize, |len, &b| len << 8 | usize::from(b));
        let unit = data.get(length_size..length_size + len)?;
        data = &data[length_size + len..];
        Some(unit)
    })
}

/// The NAL units of an Annex B byte stream: split on `00 00 01` and
/// `00 00 00 01` start codes, empty units skipped.
pub fn annexb_nal_units(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = match find_start_code(data) {
        Some((_, end)) => &data[end..],
        None => data,
    };
    std::iter::from_fn(move || loop {
        if rest.is_empty() {
            return None;
        }
        let (unit, next) = match find_start_code(rest) {
            Some((start, end)) => (&rest[..start], &rest[end..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = next;
        // A four-byte start code leaves its leading zero on the previous unit.
        let unit = match unit.iter().rposition(|&b| b != 0) {
            Some(last) => &unit[..=last],
            None => continue,
        };
        return Some(unit);
    })
}

/// Where the first start code `00 00 01` is: (its first byte, the byte after it).
fn find_start_code(data: &[u8]) -> Option<(usize, usize)> {
    data.windows(3).position(|w| w == [0, 0, 1]).map(|i| (i, i + 3))
}

/// The type of a NAL unit (its header's low five bits); 0 for an empty unit.
pub fn nal_unit_type(unit: &[u8]) -> u8 {
    unit.first().map_or(0, |b| b & 0x1F)
}

/// What is wrong with an AVCDecoderConfigurationRecord.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum H264Error {
    /// Shorter than its fields say.
    #[error("AVC decoder configuration record is truncated")]
    Truncated,
    /// `configurationVersion` is not 1.
    #[error("AVC decoder configuration record has version {0}, not 1")]
    Version(u8),
    /// No sequence or no picture parameter set.
    #[error("AVC decoder configuration record has no SPS or no PPS")]
    NoParameterSets,
}

/// An H.264 stream's decoder configuration: what an FLV AVC sequence header
/// carries and what a WebRTC player needs before every IDR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcConfig {
    /// `profile_idc` of the SPS.
    pub profile_idc: u8,
    /// The constraint flags byte of the SPS.
    pub constraint_flags: u8,
    /// `level_idc` of the SPS.
    pub level_idc: u8,
    /// Bytes in each NAL unit length prefix (1, 2 or 4).
    pub length_size: usize,
    /// Sequence parameter sets, NAL header included.
    pub sps: Vec<Bytes>,
    /// Picture parameter sets, NAL header included.
    pub pps: Vec<Bytes>,
}

impl AvcConfig {
    /// Parses an AVCDecoderConfigurationRecord (the body of an FLV AVC
    /// sequence header after its 5-byte tag header).
    pub fn parse(record: &[u8]) -> Result<AvcConfig, H264Error> {
        let mut r = Reader(record);
        let version = r.u8()?;
        if version != 1 {
            return Err(H264Error::Version(version));
        }
        let (profile_idc, constraint_flags, level_idc) = (r.u8()?, r.u8()?, r.u8()?);
        let length_size = usize::from(r.u8()? & 0x03) + 1;
        let sets = |count: usize, r: &mut Reader| -> Result<Vec<Bytes>, H264Error> {
            (0..count)
                .map(|_| {
                    let len = usize::from(u16::from_be_bytes([r.u8()?, r.u8()?]));
                    Ok(Bytes::copy_from_slice(r.take(len)?))
                })
                .collect()
        };
        let sps_count = usize::from(r.u8()? & 0x1F);
        let sps = sets(sps_count, &mut r)?;
        let pps_count = usize::from(r.u8()?);
        let pps = sets(pps_count, &mut r)?;
        if sps.is_empty() || pps.is_empty() || length_size == 3 {
            return Err(H264Error::NoParameterSets);
        }
        Ok(AvcConfig {
            profile_idc,
            constraint_flags,
            level_idc,
            length_size,
            sps,
            pps,
        })
    }

    /// A configuration from one SPS and one PPS (NAL headers included), as a
    /// WebRTC publisher sends them in band; `None` if the SPS is too short.
    pub fn from_parameter_sets(sps: &[u8], pps: &[u8]) -> Option<AvcConfig> {
        let &[_, profile_idc, constraint_flags, level_idc, ..] = sps else {
            return None;
        };
        Some(AvcConfig {
            profile_idc,
            constraint_flags,
            level_idc,
            length_size: 4,
            sps: vec![Bytes::copy_from_slice(sps)],
            pps: vec![Bytes::copy_from_slice(pps)],
        })
    }

    /// The SDP `profile-level-id` (RFC 6184): profile, constraints and level.
    pub fn profile_level_id(&self) -> u32 {
        u32::from(self.profile_idc) << 16 | u32::from(self.constraint_flags) << 8 | u32::from(self.level_idc)
    }

    /// The AVCDecoderConfigurationRecord.
    pub fn to_record(&self) -> Vec<u8> {
        let mut out = vec![
            1,
            self.profile_idc,
            self.constraint_flags,
            self.level_idc,
            0xFC | (self.length_size as u8 - 1),
            0xE0 | self.sps.len() as u8,
        ];
        for sps in &self.sps {
            out.extend((sps.len() as u16).to_be_bytes());
            out.extend_from_slice(sps);
        }
        out.push(self.pps.len() as u8);
        for pps in &self.pps {
            out.extend((pps.len() as u16).to_be_bytes());
            out.extend_from_slice(pps);
        }
        if matches!(self.profile_idc, 100 | 110 | 122 | 144) {
            // High profiles: chroma_format 4:2:0, 8-bit, no SPS extensions.
            out.extend([0xFD, 0xF8, 0xF8, 0]);
        }
        out
    }

    /// The FLV video tag body of the sequence header: keyframe, AVC, packet
    /// type 0, composition time 0, then the record.
    pub fn to_sequence_header(&self) -> Bytes {
        let mut out = vec![0x17, 0, 0, 0, 0];
        out.extend(self.to_record());
        Bytes::from(out)
    }

    /// The NAL units of an AVCC access unit (lengths of `length_size`
    /// bytes). Before an IDR slice that the access unit does not precede
    /// with its own SPS and PPS, this configuration's parameter sets come
    /// first, so that a WebRTC decoder can start at every IDR.
    pub fn nal_units_with_parameter_sets<'a>(&'a self, avcc: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        let mut has_parameter_sets = false;
        let mut has_idr = false;
        length_prefixed_nal_units(avcc, self.length_size).flat_map(move |unit| {
            let sets = match nal_unit_type(unit) {
                nal_type::SPS | nal_type::PPS => {
                    has_parameter_sets = true;
                    None
                }
                nal_type::IDR if !has_parameter_sets && !has_idr => {
                    has_parameter_sets = true;
                    Some(self.sps.iter().chain(&self.pps).map(|set| &set[..]))
                }
                _ => None,
            };
            has_idr |= nal_unit_type(unit) == nal_type::IDR;
            sets.into_iter().flatten().chain(std::iter::once(unit))
        })
    }

    /// Appends an AVCC access unit as Annex B, parameter sets in front of
    /// its IDR as [`AvcConfig::nal_units_with_parameter_sets`] puts them.
    /// Returns whether it held an IDR.
    pub fn avcc_to_annexb(&self, avcc: &[u8], out: &mut Vec<u8>) -> bool {
        const START: [u8; 4] = [0, 0, 0, 1];
        let mut has_idr = false;
        for unit in self.nal_units_with_parameter_sets(avcc) {
            has_idr |= nal_unit_type(unit) == nal_type::IDR;
            out.extend_from_slice(&START);
            out.extend_from_slice(unit);
        }
        has_idr
    }

    /// The RTP payloads of an AVCC access unit in packetization mode 1
    /// (RFC 6184), parameter sets in front of its IDR as
    /// [`AvcConfig::nal_units_with_parameter_sets`] puts them: a NAL unit
    /// of at most `max` bytes in a single NAL unit packet (section 5.6),
    /// a longer one in FU-A fragments of at most `max` bytes (section
    /// 5.8). Each payload is handed to `emit` as its FU-A header (empty
    /// for a single NAL unit) and its body, in order; the last is the
    /// access unit's last packet, the one that carries the RTP marker.
    pub fn rtp_payloads(&self, avcc: &[u8], max: usize, mut emit: impl FnMut(&[u8], &[u8])) {
        const FU_A: u8 = 28;
        let body_max = max.saturating_sub(2).max(1);
        for unit in self.nal_units_with_parameter_sets(avcc) {
            let Some((&header, body)) = unit.split_first() else {
                continue;
            };
            if unit.len() <= max {
                emit(&[], unit);
                continue;
            }
            // The FU indicator keeps F and NRI; the FU header the type.
            let indicator = header & 0xE0 | FU_A;
            let chunks = body.chunks(body_max);
            let last = chunks.len() - 1;
            for (i, chunk) in chunks.enumerate() {
                let start = if i == 0 { 0x80 } else { 0 };
                let end = if i == last { 0x40 } else { 0 };
                emit(&[indicator, start | end | header & 0x1F], chunk);
            }
        }
    }
}

/// Appends NAL units as AVCC with 4-byte lengths.
pub fn to_avcc<'a>(units: impl IntoIterator<Item = &'a [u8]>, out: &mut Vec<u8>) {
    for unit in units {
        out.extend((unit.len() as u32).to_be_bytes());
        out.extend_from_slice(unit);
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Result<u8, H264Error> {
        Ok(self.take(1)?[0])
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], H264Error> {
        if self.0.len() < n {
            return Err(H264Error::Truncated);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
}

/// Whether an AVCC access unit is a random access point: it has an IDR slice,
/// an I slice (open-GOP encoders), or an SEI recovery point (gradual decoder
/// refresh).
pub fn is_random_access(avcc: &[u8]) -> bool {
    avcc_nal_units(avcc).any(|unit| match unit.first().map(|b| b & 0x1F) {
        Some(nal_type::IDR) => true,
        Some(nal_type::SLICE) => is_intra_slice(&unit[1..]),
        Some(nal_type::SEI) => sei_has_recovery_point(&unit[1..]),
        _ => false,
    })
}

/// Reads `first_mb_in_slice` and `slice_type` (both ue(v)) from a slice
/// header: types 2 and 7 are I, 4 and 9 are SI.
fn is_intra_slice(header: &[u8]) -> bool {
    let mut bits = BitReader { data: header, pos: 0 };
    let _first_mb = bits.ue();
    matches!(bits.ue(), Some(2 | 4 | 7 | 9))
}

/// What a sequence parameter set says about the pictures (H.264 7.3.2.1.1):
/// the displayed size after cropping, as a player sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpsInfo {
    /// `profile_idc`.
    pub profile_idc: u8,
    /// `level_idc`.
    pub level_idc: u8,
    /// Width in pixels after the frame cropping.
    pub width: u32,
    /// Height in pixels after the frame cropping.
    pub height: u32,
}

impl SpsInfo {
    /// Parses an SPS NAL unit (its one-byte header included). `None` when it
    /// is not an SPS or ends early.
    pub fn parse(unit: &[u8]) -> Option<SpsInfo> {
        if unit.first()? & 0x1F != nal_type::SPS {
            return None;
        }
        let rbsp = without_emulation_prevention(&unit[1..]);
        let mut bits = BitReader { data: &rbsp, pos: 0 };
        let profile_idc = bits.bits(8)? as u8;
        let _constraints = bits.bits(8)?;
        let level_idc = bits.bits(8)? as u8;
        let _sps_id = bits.ue()?;
        let mut chroma_format_idc = 1;
        let mut separate_colour_planes = false;
        if matches!(
            profile_idc,
            100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
        ) {
            chroma_format_idc = bits.ue()?;
            if chroma_format_idc == 3 {
                separate_colour_planes = bits.bit()? == 1;
            }
            let _bit_depth_luma = bits.ue()?;
            let _bit_depth_chroma = bits.ue()?;
            let _transform_bypass = bits.bit()?;
            if bits.bit()? == 1 {
                let lists = if chroma_format_idc == 3 { 12 } else { 8 };
                for list in 0..lists {
                    if bits.bit()? == 1 {
                        bits.skip_scaling_list(if list < 6 { 16 } else { 64 })?;
                    }
                }
            }
        }
        let _log2_max_frame_num = bits.ue()?;
        match bits.ue()? {
            0 => {
                let _log2_max_poc_lsb = bits.ue()?;
            }
            1 => {
                let _delta_always_zero = bits.bit()?;
                let _offset_for_non_ref_pic = bits.se()?;
                let _offset_top_to_bottom = bits.se()?;
                for _ in 0..bits.ue()? {
                    let _offset_for_ref_frame = bits.se()?;
                }
            }
            _ => {}
        }
        let _max_num_ref_frames = bits.ue()?;
        let _gaps_allowed = bits.bit()?;
        let width_in_mbs = bits.ue()?.checked_add(1)?;
        let height_in_map_units = bits.ue()?.checked_add(1)?;
        let frame_mbs_only = bits.bit()?;
        if frame_mbs_only == 0 {
            let _mb_adaptive_frame_field = bits.bit()?;
        }
        let _direct_8x8_inference = bits.bit()?;
        let (mut left, mut right, mut top, mut bottom) = (0, 0, 0, 0);
        if bits.bit()? == 1 {
            (left, right, top, bottom) = (bits.ue()?, bits.ue()?, bits.ue()?, bits.ue()?);
        }
        // Crop units (Table 6-1 and equations 7-19 to 7-22).
        let chroma_array_type = if separate_colour_planes { 0 } else { chroma_format_idc };
        let (unit_x, unit_y) = match chroma_array_type {
            0 => (1, 2 - frame_mbs_only),
            1 => (2, 2 * (2 - frame_mbs_only)),
            2 => (2, 2 - frame_mbs_only),
            _ => (1, 2 - frame_mbs_only),
        };
        let width = width_in_mbs
            .checked_mul(16)?
            .checked_sub(unit_x * left.checked_add(right)?)?;
        let height = height_in_map_units
            .checked_mul(16 * (2 - frame_mbs_only))?
            .checked_sub(unit_y * top.checked_add(bottom)?)?;
        Some(SpsInfo {
            profile_idc,
            level_idc,
            width,
            height,
        })
    }
}

/// An RBSP from NAL unit payload bytes: every `00 00 03` loses its `03`
/// (H.264 and HEVC alike).
pub fn without_emulation_prevention(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut zeros = 0;
    for &byte in data {
        if zeros >= 2 && byte == 3 {
            zeros = 0;
            continue;
        }
        zeros = if byte == 0 { zeros + 1 } else { 0 };
        out.push(byte);
    }
    out
}

/// Reads bits and Exp-Golomb codes MSB first; `None` past the end.
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    /// Reads `data` from its first bit.
    pub(crate) fn new(data: &'a [u8]) -> Self {
        BitReader { data, pos: 0 }
    }

    pub(crate) fn bit(&mut self) -> Option<u32> {
        let byte = self.data.get(self.pos / 8)?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(u32::from(bit))
    }

    pub(crate) fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        let mut value = 1u32;
        for _ in 0..zeros {
            value = value << 1 | self.bit()?;
        }
        Some(value - 1)
    }

    /// se(v): 1, -1, 2, -2, ... from ue(v).
    fn se(&mut self) -> Option<i32> {
        let code = self.ue()?;
        let magnitude = code.div_ceil(2) as i32;
        Some(if code % 2 == 1 { magnitude } else { -magnitude })
    }

    /// `n` bits (at most 32) as an unsigned number.
    pub(crate) fn bits(&mut self, n: u32) -> Option<u32> {
        (0..n).try_fold(0u32, |value, _| Some(value << 1 | self.bit()?))
    }

    /// Skips a scaling_list() of `size` entries (7.3.2.1.1.1).
    fn skip_scaling_list(&mut self, size: usize) -> Option<()> {
        let (mut last, mut next) = (8i32, 8i32);
        for _ in 0..size {
            if next != 0 {
                next = (last + self.se()? + 256) % 256;
            }
            if next != 0 {
                last = next;
            }
        }
        Some(())
    }
}

/// Walks the SEI messages of an SEI RBSP (emulation prevention does not affect
/// the payload type and size bytes enough to matter for this test).
fn sei_has_recovery_point(mut rbsp: &[u8]) -> bool {
    // Each message: payload type and size as runs of 0xFF plus a last byte.
    fn read_value(data: &mut &[u8]) -> Option<u32> {
        let mut value = 0u32;
        loop {
            let (&byte, rest) = data.split_first()?;
            *data = rest;
            value = value.checked_add(u32::from(byte))?;
            if byte != 0xFF {
                return Some(value);
            }
        }
    }
    while rbsp.len() > 1 {
        let (Some(payload_type), Some(size)) = (read_value(&mut rbsp), read_value(&mut rbsp)) else {
            return false;
        };
        if payload_type == SEI_RECOVERY_POINT {
            return true;
        }
        let Some(rest) = rbsp.get(size as usize..) else {
            return false;
        };
        rbsp = rest;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn avcc(units: &[&[u8]]) -> Vec<u8> {
        let mut out = vec![];
        for u in units {
            out.extend((u.len() as u32).to_be_bytes());
            out.extend_from_slice(u);
        }
        out
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    /// SPS written by Debian's ffmpeg (libx264) for `testsrc` at each size:
    /// High with cropping (1088 coded lines), Baseline with cropping,
    /// High 4:4:4 (chroma_format_idc 3), and interlaced (field pairs).
    #[test]
    fn sps_sizes_follow_macroblocks_cropping_and_fields() {
        for (sps, profile, width, height) in [
            (
                "67640028acd940780227e5c044000003000400000300c83c60c658",
                100,
                1920,
                1080,
            ),
            ("6742c01ed900a02ff97011000003000100000300320f162e48", 66, 640, 360),
            ("67f4001f919b280a00b76022000003000200000300641e30632c", 244, 1280, 720),
            ("6764001eacd940b424d8088000000300800000190f8a14cb", 100, 720, 576),
        ] {
            let info = SpsInfo::parse(&hex(sps)).unwrap_or_else(|| panic!("{sps} parses"));
            assert_eq!(
                (info.profile_idc, info.width, info.height),
                (profile, width, height),
                "{sps}"
            );
        }
        assert_eq!(SpsInfo::parse(&hex("68ce3c80")), None, "a PPS is not an SPS");
        assert_eq!(SpsInfo::parse(&hex("67640028acd9")), None, "cut short");
    }

    #[test]
    fn emulation_prevention_bytes_are_dropped() {
        assert_eq!(
            without_emulation_prevention(&[0, 0, 3, 1, 0, 0, 3, 0, 3]),
            [0, 0, 1, 0, 0, 0, 3]
        );
    }

    #[test]
    fn random_access_points() {
        assert!(is_random_access(&avcc(&[&[0x09, 0xF0], &[0x65, 0x88]])), "IDR");
        // first_mb_in_slice 0 ("1"), slice_type 0 = P ("1"), or 7 = I ("0001000").
        assert!(
            !is_random_access(&avcc(&[&[0x09, 0xF0], &[0x41, 0b1100_0000]])),
            "P slice"
        );
        assert!(
            is_random_access(&avcc(&[&[0x41, 0b1000_1000, 0]])),
            "I slice in a non-IDR NAL unit"
        );
        // SEI: user data unregistered (5) of 2 bytes, then recovery point (6).
        assert!(is_random_access(&avcc(&[
            &[0x06, 5, 2, 0xAA, 0xBB, 6, 1, 0x84, 0x80],
            &[0x41, 0x9A]
        ])));
        assert!(!is_random_access(&avcc(&[&[0x06, 5, 2, 0xAA, 0xBB, 0x80], &[0x41]])));
        assert!(!is_random_access(&[0, 0, 0, 9, 1]), "overrunning length");
        assert_eq!(avcc_nal_units(&avcc(&[&[1], &[2, 3]])).count(), 2);
    }

    const SPS: &[u8] = &[0x67, 0x42, 0xC0, 0x1E, 0xDA, 0x02];
    const PPS: &[u8] = &[0x68, 0xCE, 0x3C, 0x80];

    #[test]
    fn configuration_record_round_trips_and_names_the_profile() {
        let config = AvcConfig::from_parameter_sets(SPS, PPS).unwrap();
        assert_eq!(config.profile_level_id(), 0x42C01E);
        let record = config.to_record();
        assert_eq!(AvcConfig::parse(&record).unwrap(), config);
        assert_eq!(&config.to_sequence_header()[..5], &[0x17, 0, 0, 0, 0]);
        assert_eq!(AvcConfig::parse(&record[..record.len() - 1]), Err(H264Error::Truncated));
        assert_eq!(
            AvcConfig::parse(&[2, 0, 0, 0, 0xFF, 0xE0, 0]),
            Err(H264Error::Version(2))
        );
        assert_eq!(
            AvcConfig::parse(&[1, 0, 0, 0, 0xFF, 0xE0, 0]),
            Err(H264Error::NoParameterSets)
        );
        assert_eq!(AvcConfig::from_parameter_sets(&[0x67, 0x42], PPS), None);
    }

    #[test]
    fn parameter_sets_are_inserted_before_a_bare_idr_only() {
        let config = AvcConfig::from_parameter_sets(SPS, PPS).unwrap();
        let mut out = vec![];
        assert!(config.avcc_to_annexb(&avcc(&[&[0x09, 0xF0], &[0x65, 0x88, 0x80]]), &mut out));
        let units: Vec<&[u8]> = annexb_nal_units(&out).collect();
        assert_eq!(units, vec![&[0x09, 0xF0][..], SPS, PPS, &[0x65, 0x88, 0x80]]);

        out.clear();
        assert!(!config.avcc_to_annexb(&avcc(&[&[0x41, 0x9A]]), &mut out));
        assert_eq!(out, [0, 0, 0, 1, 0x41, 0x9A], "inter frames pass as they are");

        out.clear();
        config.avcc_to_annexb(&avcc(&[SPS, PPS, &[0x65, 1], &[0x65, 2]]), &mut out);
        assert_eq!(
            annexb_nal_units(&out).count(),
            4,
            "in-band parameter sets are not repeated"
        );
    }

    #[test]
    fn rtp_payloads_fragment_long_units_and_reassemble_to_the_access_unit() {
        let config = AvcConfig::from_parameter_sets(SPS, PPS).unwrap();
        let idr: Vec<u8> = [0x65].into_iter().chain((0..2500u32).map(|i| i as u8)).collect();
        let mut payloads: Vec<Vec<u8>> = vec![];
        config.rtp_payloads(&avcc(&[&[0x09, 0xF0], &idr]), 1000, |header, body| {
            payloads.push([header, body].concat());
        });
        assert!(payloads.iter().all(|p| p.len() <= 1000));
        // AUD, SPS, PPS as single NAL unit packets; the IDR in three FU-As.
        assert_eq!(payloads.len(), 6);
        assert_eq!(&payloads[..3], &[vec![0x09, 0xF0], SPS.to_vec(), PPS.to_vec()]);
        let fus = &payloads[3..];
        assert_eq!(
            fus.iter().map(|p| p[0]).collect::<Vec<_>>(),
            vec![0x60 | 28; 3],
            "NRI kept"
        );
        assert_eq!(fus.iter().map(|p| p[1]).collect::<Vec<_>>(), vec![0x85, 0x05, 0x45]);
        let mut unit = vec![fus[0][0] & 0xE0 | fus[0][1] & 0x1F];
        fus.iter().for_each(|p| unit.extend_from_slice(&p[2..]));
        assert_eq!(unit, idr);

        payloads.clear();
        config.rtp_payloads(&avcc(&[&[0x41, 0x9A]]), 1000, |h, b| payloads.push([h, b].concat()));
        assert_eq!(payloads, vec![vec![0x41, 0x9A]], "an inter picture as it is");
    }

    #[test]
    fn annexb_splits_on_both_start_codes_and_converts_back() {
        let stream = [0, 0, 0, 1, 0x67, 1, 0, 0, 1, 0x68, 2, 0, 0, 0, 1, 0x65, 3, 0];
        let units: Vec<&[u8]> = annexb_nal_units(&stream).collect();
        assert_eq!(units, vec![&[0x67, 1][..], &[0x68, 2], &[0x65, 3]]);
        let mut out = vec![];
        to_avcc(units, &mut out);
        assert_eq!(length_prefixed_nal_units(&out, 4).count(), 3);
        assert_eq!(annexb_nal_units(&[]).count(), 0);
        assert_eq!(annexb_nal_units(&[0, 0, 1]).count(), 0);
        assert_eq!(
            length_prefixed_nal_units(&[0, 2, 9, 9], 2).collect::<Vec<_>>(),
            vec![&[9, 9][..]]
        );
    }
}
