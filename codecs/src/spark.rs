//! Sorenson Spark, Flash Player's default camera codec (FLV video CodecID 2,
//! an H.263 variant), decoded with the system libavcodec (its `flv`
//! decoder) into YUV 4:2:0 pictures: what a gateway needs before it can
//! re-encode a Flash camera for WebRTC players.

use ffmpeg_sys_next::AVCodecID;

use super::libav::PictureDecoder;
pub use super::picture::Picture;
use super::CodecError;

const CODEC: &str = "Sorenson Spark";

/// A Sorenson Spark decoder.
pub struct SparkDecoder {
    decoder: PictureDecoder,
}

impl std::fmt::Debug for SparkDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SparkDecoder").finish_non_exhaustive()
    }
}

impl SparkDecoder {
    /// A decoder (libavcodec's `flv`).
    pub fn new() -> Result<Self, CodecError> {
        Ok(SparkDecoder {
            decoder: PictureDecoder::new(AVCodecID::AV_CODEC_ID_FLV1, CODEC)?,
        })
    }

    /// Decodes one frame: the body of an FLV video tag after its one-byte
    /// header. Fills `out` and returns true when a picture came out (Spark
    /// has no B-frames, so every frame gives one, unless it is damaged).
    pub fn decode(&mut self, data: &[u8], out: &mut Picture) -> Result<bool, CodecError> {
        self.decoder.decode(data, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avc::tests::{adler32, framecrc};
    use media::flv::{read_tags, TagKind};

    /// Every picture of the fixture is bit-identical to Debian's ffmpeg's
    /// decode of it (`ffmpeg -i FILE -map 0:v -f framecrc -`, checked in).
    #[test]
    fn decodes_the_fixture_exactly_as_ffmpeg_does() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/flv");
        let flv = bytes::Bytes::from(std::fs::read(dir.join("ffmpeg_sorenson_nellymoser_320x240_440hz.flv")).unwrap());
        let expected = framecrc("ffmpeg_sorenson_nellymoser_320x240_440hz.framecrc");
        let mut decoder = SparkDecoder::new().unwrap();
        let mut picture = Picture::default();
        let mut crcs = Vec::new();
        for tag in read_tags(&flv).unwrap() {
            let spark = tag.kind == TagKind::Video && tag.data.first().is_some_and(|b| b & 0x0F == 2);
            if spark && decoder.decode(&tag.data[1..], &mut picture).unwrap() {
                assert_eq!((picture.width, picture.height), (320, 240));
                crcs.push(adler32(&picture.data));
            }
        }
        assert_eq!(crcs.len(), 90);
        assert_eq!(crcs, expected);
    }

    #[test]
    fn garbage_is_an_error_not_a_crash() {
        let mut decoder = SparkDecoder::new().unwrap();
        let mut picture = Picture::default();
        for junk in [&[][..], &[0xFF; 7][..], &[0x00, 0x00, 0x84, 0xFF, 0x12][..]] {
            let _ = decoder.decode(junk, &mut picture);
        }
    }
}
