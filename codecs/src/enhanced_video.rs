//! Decoders for the video codecs Enhanced RTMP names by FourCC besides
//! H.264: HEVC (`hvc1`), AV1 (`av01`), VP9 (`vp09`) and VP8 (`vp08`), all
//! through the system libavcodec (dav1d for AV1 where it is built in), fed
//! either with what their tags carry (the SequenceStart's configuration
//! record, then CodedFrames, framed by [`media::eflv::bitstream`]) or with
//! the codec's own bitstream (what an RTP depacketizer gives).

use ffmpeg_sys_next::AVCodecID;
use media::eflv::bitstream::Bitstream;
use media::eflv::FourCc;

use super::libav::PictureDecoder;
use super::picture::Picture;
use super::CodecError;

/// A decoder for one of [`EnhancedDecoder::decodes`]' codecs.
pub struct EnhancedDecoder {
    decoder: PictureDecoder,
    bitstream: Bitstream,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for EnhancedDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnhancedDecoder")
            .field("fourcc", &self.bitstream.fourcc())
            .field("configured", &self.bitstream.configured())
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
        Bitstream::new(fourcc).is_some()
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
        let bitstream = Bitstream::new(fourcc).ok_or_else(|| CodecError::Unsupported(format!("{fourcc} video")))?;
        Ok(EnhancedDecoder {
            decoder: PictureDecoder::preferring(id, name(fourcc), prefer)?,
            bitstream,
            scratch: Vec::with_capacity(64 * 1024),
        })
    }

    /// The codec it decodes.
    pub fn fourcc(&self) -> FourCc {
        self.bitstream.fourcc()
    }

    /// Takes the SequenceStart's configuration record.
    pub fn configure(&mut self, record: &[u8]) -> Result<(), CodecError> {
        let codec = name(self.fourcc());
        self.bitstream
            .configure(record)
            .map_err(|e| CodecError::corrupt(codec, e.to_string()))
    }

    /// Decodes one CodedFrames packet. Fills `out` and returns true when a
    /// picture came out.
    pub fn decode(&mut self, data: &[u8], keyframe: bool, out: &mut Picture) -> Result<bool, CodecError> {
        self.scratch.clear();
        let codec = name(self.fourcc());
        match self.bitstream.frame(data, keyframe, &mut self.scratch) {
            Err(_) if !self.bitstream.configured() => return Err(CodecError::NotConfigured { codec }),
            Err(e) => return Err(CodecError::corrupt(codec, e.to_string())),
            Ok(()) => {}
        }
        if self.scratch.is_empty() {
            return Ok(false);
        }
        self.decoder.decode(&self.scratch, out)
    }

    /// Decodes the codec's own bitstream (HEVC in Annex B, AV1 OBUs, VP8
    /// or VP9 frames), as an RTP depacketizer gives it. Fills `out` and
    /// returns true when a picture came out.
    pub fn decode_bitstream(&mut self, data: &[u8], out: &mut Picture) -> Result<bool, CodecError> {
        if data.is_empty() {
            return Ok(false);
        }
        self.decoder.decode(data, out)
    }
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
