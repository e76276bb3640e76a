//! H.264 bitstream helpers (ITU-T H.264): walking the length-prefixed NAL units
//! of an AVC video tag and recognising where a decoder can start.

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
pub fn avcc_nal_units(mut data: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        if data.len() < 4 {
            return None;
        }
        let len = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
        let unit = data.get(4..4 + len)?;
        data = &data[4 + len..];
        Some(unit)
    })
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

/// Reads Exp-Golomb codes MSB first; `None` past the end.
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl BitReader<'_> {
    fn bit(&mut self) -> Option<u32> {
        let byte = self.data.get(self.pos / 8)?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(u32::from(bit))
    }

    fn ue(&mut self) -> Option<u32> {
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
}
