//! Decoders for the video codecs Enhanced RTMP names by FourCC besides
//! H.264: HEVC (`hvc1`), AV1 (`av01`), VP9 (`vp09`) and VP8 (`vp08`), all
//! through the system libavcodec (dav1d for AV1 where it is built in), fed
//! with what their tags carry: the SequenceStart's configuration record,
//! then CodedFrames.
//!
//! - HEVC: the HEVCDecoderConfigurationRecord (ISO/IEC 14496-15, 8.3.3)
//!   gives the NAL unit length size and the parameter sets; each coded
//!   frame's length-prefixed NAL units become Annex B, with the parameter
//!   sets before every keyframe.
//! - AV1: the AV1CodecConfigurationRecord's configOBUs (the sequence
//!   header) go before every keyframe's OBUs.
//! - VP8 and VP9: the VPCodecConfigurationRecord only describes the stream;
//!   frames decode as they are.

use ffmpeg_sys_next::AVCodecID;
use media::eflv::FourCc;

use super::libav::PictureDecoder;
use super::picture::Picture;
use super::CodecError;

/// A decoder for one of [`EnhancedDecoder::decodes`]' codecs.
pub struct EnhancedDecoder {
    fourcc: FourCc,
    decoder: PictureDecoder,
    /// HEVC: bytes per NAL unit length (1, 2 or 4).
    length_size: usize,
    /// What goes before a keyframe: HEVC parameter sets as Annex B, AV1
    /// configuration OBUs. `None` until configured (for HEVC, required).
    prefix: Option<Vec<u8>>,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for EnhancedDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnhancedDecoder")
            .field("fourcc", &self.fourcc)
            .field("configured", &self.prefix.is_some())
            .finish_non_exhaustive()
    }
}

/// A name for errors.
fn name(fourcc: FourCc) -> &'static str {
    match fourcc {
        FourCc::HEVC => "hevc",
        FourCc::AV1 => "av1",
        FourCc::VP9 => "vp9",
        _ => "vp8",
    }
}

impl EnhancedDecoder {
    /// Whether `fourcc` is a codec this module decodes.
    pub fn decodes(fourcc: FourCc) -> bool {
        matches!(fourcc, FourCc::HEVC | FourCc::AV1 | FourCc::VP9 | FourCc::VP8)
    }

    /// A decoder for `fourcc`.
    pub fn new(fourcc: FourCc) -> Result<EnhancedDecoder, CodecError> {
        let (id, prefer) = match fourcc {
            FourCc::HEVC => (AVCodecID::AV_CODEC_ID_HEVC, None),
            FourCc::AV1 => (AVCodecID::AV_CODEC_ID_AV1, Some(c"libdav1d")),
            FourCc::VP9 => (AVCodecID::AV_CODEC_ID_VP9, None),
            FourCc::VP8 => (AVCodecID::AV_CODEC_ID_VP8, None),
            other => return Err(CodecError::Unsupported(format!("{other} video"))),
        };
        Ok(EnhancedDecoder {
            fourcc,
            decoder: PictureDecoder::preferring(id, name(fourcc), prefer)?,
            length_size: 4,
            prefix: None,
            scratch: Vec::with_capacity(64 * 1024),
        })
    }

    /// The codec it decodes.
    pub fn fourcc(&self) -> FourCc {
        self.fourcc
    }

    /// Takes the SequenceStart's configuration record.
    pub fn configure(&mut self, record: &[u8]) -> Result<(), CodecError> {
        let (length_size, prefix) = read_record(self.fourcc, record)?;
        self.length_size = length_size;
        self.prefix = Some(prefix);
        Ok(())
    }

    /// Decodes one CodedFrames packet. Fills `out` and returns true when a
    /// picture came out.
    pub fn decode(&mut self, data: &[u8], keyframe: bool, out: &mut Picture) -> Result<bool, CodecError> {
        self.scratch.clear();
        match self.fourcc {
            FourCc::HEVC => {
                let Some(parameter_sets) = &self.prefix else {
                    return Err(CodecError::NotConfigured { codec: "hevc" });
                };
                if keyframe {
                    self.scratch.extend_from_slice(parameter_sets);
                }
                let mut rest = data;
                while rest.len() >= self.length_size {
                    let (size, tail) = rest.split_at(self.length_size);
                    let size = size.iter().fold(0usize, |n, b| n << 8 | usize::from(*b));
                    let Some(unit) = tail.get(..size) else {
                        return Err(CodecError::corrupt("hevc", "a NAL unit longer than its frame"));
                    };
                    self.scratch.extend_from_slice(&[0, 0, 0, 1]);
                    self.scratch.extend_from_slice(unit);
                    rest = &tail[size..];
                }
            }
            FourCc::AV1 => {
                if let (true, Some(obus)) = (keyframe, &self.prefix) {
                    self.scratch.extend_from_slice(obus);
                }
                self.scratch.extend_from_slice(data);
            }
            _ => self.scratch.extend_from_slice(data),
        }
        if self.scratch.is_empty() {
            return Ok(false);
        }
        self.decoder.decode(&self.scratch, out)
    }
}

/// What a SequenceStart's configuration record gives a decoder of
/// `fourcc`: the NAL unit length size (HEVC; 4 otherwise) and what goes
/// before a keyframe (HEVC parameter sets as Annex B, AV1 configuration
/// OBUs; nothing for VP8 and VP9, whose record only describes the stream).
pub fn read_record(fourcc: FourCc, record: &[u8]) -> Result<(usize, Vec<u8>), CodecError> {
    let corrupt = |what: &str| CodecError::corrupt(name(fourcc), what.to_string());
    match fourcc {
        FourCc::HEVC => hevc_record(record).ok_or_else(|| corrupt("a short HEVC record")),
        // An empty record (the Enhanced RTMP lab's files begin with one):
        // the keyframes carry their sequence header.
        FourCc::AV1 if record.is_empty() => Ok((4, Vec::new())),
        FourCc::AV1 => {
            // marker and version (0x81), then three bytes of fields, then configOBUs.
            let obus = record.get(4..).filter(|_| record.first() == Some(&0x81));
            Ok((
                4,
                obus.ok_or_else(|| corrupt("an AV1 record without its marker"))?
                    .to_vec(),
            ))
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

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use media::eflv::{self, PacketType};
    use media::flv::{read_tags, TagKind};

    /// Decodes every video tag of an E-FLV fixture: (pictures, width, height).
    fn decode_fixture(name: &str) -> (usize, usize, usize) {
        let path = format!("{}/../fixtures/flv/{name}", env!("CARGO_MANIFEST_DIR"));
        let tags = read_tags(&Bytes::from(std::fs::read(path).unwrap())).unwrap();
        let mut decoder = None;
        let mut picture = Picture::default();
        let mut pictures = 0;
        for tag in tags.iter().filter(|t| t.kind == TagKind::Video) {
            let parsed = eflv::parse(TagKind::Video, &tag.data).unwrap().unwrap();
            let packet = parsed.first().unwrap().unwrap();
            let decoder = decoder.get_or_insert_with(|| EnhancedDecoder::new(packet.fourcc).unwrap());
            match packet.packet_type {
                PacketType::SequenceStart => decoder.configure(packet.data).unwrap(),
                PacketType::CodedFrames | PacketType::CodedFramesX => {
                    let decoded = decoder.decode(packet.data, parsed.header.is_keyframe(), &mut picture);
                    pictures += usize::from(decoded.map_err(|e| format!("{name}: {e}")).unwrap());
                }
                _ => {}
            }
        }
        (pictures, picture.width, picture.height)
    }

    #[test]
    fn hevc_av1_vp9_and_vp8_fixtures_decode_to_their_pictures() {
        // Decoders may hold a few pictures back at the end: most come out.
        for (file, width, height) in [
            ("eflv_hevc_opus_320x240.flv", 320, 240),
            ("eflv_hevc_ac3_640x360.flv", 640, 360),
            ("eflv_vp9_opus_320x240.flv", 320, 240),
            ("eflv_vp8_opus_320x240.flv", 320, 240),
            ("eflv_av1_flac_320x240.flv", 320, 240),
            ("eflv_av1_opus_testsrc.flv", 0, 0),
        ] {
            let (pictures, w, h) = decode_fixture(file);
            assert!(pictures >= 90, "{file}: {pictures} pictures");
            if width > 0 {
                assert_eq!((w, h), (width, height), "{file}");
            }
        }
    }

    #[test]
    fn a_cut_record_or_frame_is_an_error() {
        let mut hevc = EnhancedDecoder::new(FourCc::HEVC).unwrap();
        assert!(matches!(
            hevc.decode(&[0, 0, 0, 1, 0x26], true, &mut Picture::default()),
            Err(CodecError::NotConfigured { .. })
        ));
        assert!(hevc.configure(&[1; 10]).is_err());
        let mut record = vec![1; 22];
        record.push(1); // one array
        record.extend_from_slice(&[0x20, 0, 1, 0, 9]); // a VPS of 9 bytes, 0 there
        assert!(hevc.configure(&record).is_err());
        assert!(EnhancedDecoder::new(FourCc::AV1)
            .unwrap()
            .configure(&[0x80, 0, 0, 0])
            .is_err());
        assert!(EnhancedDecoder::new(FourCc([b'z'; 4])).is_err());
    }
}
