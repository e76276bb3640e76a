//! G.711 A-law and µ-law (FLV SoundFormat 7 and 8, 8 kHz), computed from the
//! segment/mantissa layout of ITU-T G.711 rather than looked up in tables.

/// The G.711 sample rate.
pub const SAMPLE_RATE: u32 = 8_000;

/// Decodes one µ-law byte to linear PCM (range ±32124).
pub fn ulaw_to_linear(byte: u8) -> i16 {
    let u = !byte;
    let exponent = (u >> 4) & 0x07;
    let mantissa = i32::from(u & 0x0F);
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    (if u & 0x80 != 0 { -magnitude } else { magnitude }) as i16
}

/// Decodes one A-law byte to linear PCM (range ±32256).
pub fn alaw_to_linear(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let exponent = (a >> 4) & 0x07;
    let mantissa = i32::from(a & 0x0F);
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    // In A-law the sign bit is set for positive values.
    (if a & 0x80 != 0 { magnitude } else { -magnitude }) as i16
}

/// Encodes linear PCM to one µ-law byte.
pub fn linear_to_ulaw(sample: i16) -> u8 {
    let value = i32::from(sample);
    let sign = if value < 0 { 0x80 } else { 0 };
    let magnitude = value.abs().min(32_635) + 0x84;
    // The segment is the position of the highest set bit above bit 7.
    let exponent = (31 - magnitude.leading_zeros() as i32 - 7).clamp(0, 7);
    let mantissa = (magnitude >> (exponent + 3)) & 0x0F;
    !(sign | (exponent << 4) | mantissa) as u8
}

/// Encodes linear PCM to one A-law byte.
pub fn linear_to_alaw(sample: i16) -> u8 {
    let value = i32::from(sample);
    let (sign, magnitude) = if value >= 0 {
        (0x80, value)
    } else {
        (0, (-value).min(32_767))
    };
    let (exponent, mantissa) = if magnitude < 256 {
        (0, magnitude >> 4)
    } else {
        let exponent = (31 - magnitude.leading_zeros() as i32 - 7).clamp(1, 7);
        (exponent, (magnitude >> (exponent + 3)) & 0x0F)
    };
    ((sign | (exponent << 4) | mantissa) as u8) ^ 0x55
}

/// Appends the linear PCM of µ-law (`alaw == false`) or A-law bytes to `out`.
pub fn decode(data: &[u8], alaw: bool, out: &mut Vec<i16>) {
    if alaw {
        out.extend(data.iter().map(|&b| alaw_to_linear(b)));
    } else {
        out.extend(data.iter().map(|&b| ulaw_to_linear(b)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::{dbfs, dominant_frequency, sine};

    #[test]
    fn known_code_points_decode_to_the_g711_values() {
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x7F), 0);
        assert_eq!(ulaw_to_linear(0x80), 32_124);
        assert_eq!(ulaw_to_linear(0x00), -32_124);
        assert_eq!(ulaw_to_linear(0xEF), 132, "exponent 1, mantissa 0");
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xAA), 32_256);
        assert_eq!(alaw_to_linear(0x2A), -32_256);
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2A);
    }

    #[test]
    fn every_code_survives_decode_then_encode() {
        for byte in 0..=255u8 {
            let u = ulaw_to_linear(byte);
            // 0x7F and 0xFF are both zero; zero encodes as 0xFF.
            let expected = if byte == 0x7F { 0xFF } else { byte };
            assert_eq!(linear_to_ulaw(u), expected, "µ-law {byte:#04x} -> {u}");
            let a = alaw_to_linear(byte);
            assert_eq!(linear_to_alaw(a), byte, "A-law {byte:#04x} -> {a}");
        }
    }

    #[test]
    fn a_tone_survives_both_laws() {
        let pcm = sine(440.0, SAMPLE_RATE, 1, 0, 1600, 0.5);
        for alaw in [false, true] {
            let coded: Vec<u8> = pcm
                .iter()
                .map(|&s| if alaw { linear_to_alaw(s) } else { linear_to_ulaw(s) })
                .collect();
            let mut back = Vec::new();
            decode(&coded, alaw, &mut back);
            let f = dominant_frequency(&back, SAMPLE_RATE).unwrap();
            assert!((f - 440.0).abs() <= 2.0, "{f}");
            assert!((dbfs(&back) - dbfs(&pcm)).abs() < 0.2);
        }
    }
}
