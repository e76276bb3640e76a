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
