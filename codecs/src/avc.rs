//! H.264 pictures in and out. The decoder is the system libavcodec's (the
//! reference every player is measured against: High profile, B-frames,
//! interlacing, bit-identical to Debian's ffmpeg) fed with what an FLV AVC
//! stream carries, a decoder configuration record, then AVCC access units.
//! The encoder is openh264 (Cisco's, built from source by the `openh264`
//! crate) making Constrained Baseline, what every WebRTC browser decodes.

use ffmpeg_sys_next::AVCodecID;
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, IntraFramePeriod, Profile, RateControlMode, UsageType,
};
use openh264::formats::YUVSource;
use openh264::{OpenH264API, Timestamp};

use super::libav::PictureDecoder;
use super::picture::Picture;
use super::CodecError;
use media::h264::AvcConfig;

const DECODER: &str = "h264";

/// An H.264 decoder for FLV AVC streams.
pub struct AvcDecoder {
    decoder: PictureDecoder,
    config: Option<AvcConfig>,
    annexb: Vec<u8>,
}

impl std::fmt::Debug for AvcDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AvcDecoder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl AvcDecoder {
    /// A decoder waiting for its configuration.
    pub fn new() -> Result<AvcDecoder, CodecError> {
        Ok(AvcDecoder {
            decoder: PictureDecoder::new(AVCodecID::AV_CODEC_ID_H264, DECODER)?,
            config: None,
            annexb: Vec::with_capacity(64 * 1024),
        })
    }

    /// Takes an AVCDecoderConfigurationRecord (a sequence header's body
    /// after its 5-byte tag header): the parameter sets and NAL length size
    /// of the access units that follow.
    pub fn configure(&mut self, record: &[u8]) -> Result<(), CodecError> {
        let config = AvcConfig::parse(record).map_err(|e| CodecError::corrupt(DECODER, e.to_string()))?;
        self.config = Some(config);
        Ok(())
    }

    /// Decodes one AVCC access unit. Fills `out` and returns true when a
    /// picture came out: with B-frames that is an earlier picture (in
    /// display order) than this one, or none yet.
    pub fn decode(&mut self, avcc: &[u8], out: &mut Picture) -> Result<bool, CodecError> {
        let Some(config) = &self.config else {
            return Err(CodecError::NotConfigured { codec: DECODER });
        };
        self.annexb.clear();
        // Parameter sets go before every IDR (as Annex B), so a new
        // configuration takes effect at the next IDR.
        config.avcc_to_annexb(avcc, &mut self.annexb);
        if self.annexb.is_empty() {
            return Ok(false);
        }
        self.decoder.decode(&self.annexb, out)
    }

    /// Decodes one Annex B access unit that carries its own parameter sets
    /// before its IDRs (as RTP delivers H.264): no configuration needed.
    /// Fills `out` and returns true when a picture came out.
    pub fn decode_annexb(&mut self, annexb: &[u8], out: &mut Picture) -> Result<bool, CodecError> {
        if annexb.is_empty() {
            return Ok(false);
        }
        self.decoder.decode(annexb, out)
    }
}

/// Frame rate the encoder's rate control plans for when the source's is
/// not known; real timestamps steer it from there.
const NOMINAL_FPS: f32 = 30.0;

/// An H.264 encoder: Constrained Baseline, one slice per picture, no frame
/// skipping, IDRs only when asked for (the transcoder mirrors its source's
/// keyframes and answers players' requests).
pub struct AvcEncoder {
    encoder: Encoder,
    force_idr: bool,
    encoded: u64,
}

impl std::fmt::Debug for AvcEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AvcEncoder")
            .field("encoded", &self.encoded)
            .finish_non_exhaustive()
    }
}

/// The openh264 settings [`AvcEncoder`] encodes with, aiming at `bitrate`
/// bits per second (public so benchmarks can time the bare codec the same way).
pub fn encoder_config(bitrate: u32) -> EncoderConfig {
    EncoderConfig::new()
        .profile(Profile::Baseline)
        .bitrate(BitRate::from_bps(bitrate))
        .max_frame_rate(FrameRate::from_hz(NOMINAL_FPS))
        .rate_control_mode(RateControlMode::Bitrate)
        .usage_type(UsageType::CameraVideoRealTime)
        .complexity(Complexity::Low)
        .skip_frames(false)
        .scene_change_detect(false)
        .intra_frame_period(IntraFramePeriod::from_num_frames(0))
        .num_threads(1)
}

/// An openh264 encoder with `config` that prints nothing: openh264 logs
/// warnings to stderr while it initializes (at the first frame), before the
/// wrapper applies `EncoderConfig::debug`, so the trace level is set here,
/// before that first frame.
pub fn quiet_encoder(config: EncoderConfig) -> Result<Encoder, openh264::Error> {
    let mut encoder = Encoder::with_api_config(OpenH264API::from_source(), config)?;
    let mut quiet: std::ffi::c_int = openh264_sys2::WELS_LOG_QUIET as std::ffi::c_int;
    // SAFETY: the trace level is an int option the encoder copies; it is not
    // one of the parameters the wrapper relies on (`raw_api`'s contract).
    unsafe {
        encoder.raw_api().set_option(
            openh264_sys2::ENCODER_OPTION_TRACE_LEVEL,
            std::ptr::addr_of_mut!(quiet).cast(),
        );
    }
    Ok(encoder)
}

impl AvcEncoder {
    /// An encoder aiming at `bitrate` bits per second.
    pub fn new(bitrate: u32) -> Result<AvcEncoder, CodecError> {
        let config = encoder_config(bitrate);
        let encoder = quiet_encoder(config).map_err(|e| CodecError::Libav {
            codec: "openh264",
            detail: e.to_string(),
        })?;
        Ok(AvcEncoder {
            encoder,
            force_idr: false,
            encoded: 0,
        })
    }

    /// Makes the next picture an IDR.
    pub fn request_idr(&mut self) {
        self.force_idr = true;
    }

    /// Encodes `picture` (even width and height) shown at `timestamp_ms`,
    /// appending its Annex B NAL units to `out`: SPS and PPS before each
    /// IDR. The first picture, and the first after a size change, is an IDR.
    pub fn encode(&mut self, picture: &Picture, timestamp_ms: u64, out: &mut Vec<u8>) -> Result<(), CodecError> {
        if (picture.width | picture.height) & 1 != 0 || picture.width < 16 || picture.height < 16 {
            return Err(CodecError::InvalidParameter(format!(
                "H.264 encoding needs even sides of 16 or more, not {}x{}",
                picture.width, picture.height
            )));
        }
        // Forcing an IDR before the first encode is not possible (and not needed).
        if self.force_idr && self.encoded > 0 {
            self.encoder.force_intra_frame();
        }
        self.force_idr = false;
        let stream = self
            .encoder
            .encode_at(&Planes(picture), Timestamp::from_millis(timestamp_ms))
            .map_err(|e| CodecError::Libav {
                codec: "openh264",
                detail: e.to_string(),
            })?;
        stream.write_vec(out);
        self.encoded += 1;
        Ok(())
    }
}

/// A [`Picture`] as openh264 reads it.
struct Planes<'a>(&'a Picture);

impl YUVSource for Planes<'_> {
    fn dimensions(&self) -> (usize, usize) {
        (self.0.width, self.0.height)
    }

    fn strides(&self) -> (usize, usize, usize) {
        let (cw, _) = self.0.chroma_size();
        (self.0.width, cw, cw)
    }

    fn y(&self) -> &[u8] {
        self.0.planes().0
    }

    fn u(&self) -> &[u8] {
        self.0.planes().1
    }

    fn v(&self) -> &[u8] {
        self.0.planes().2
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use media::flv::{read_tags, TagKind};
    use media::h264::{annexb_nal_units, nal_type, nal_unit_type};

    /// The per-frame checksums of an `ffmpeg -f framecrc` file in fixtures/flv.
    pub(crate) fn framecrc(name: &str) -> Vec<u32> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/flv");
        std::fs::read_to_string(dir.join(name))
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| u32::from_str_radix(l.rsplit("0x").next().unwrap().trim(), 16).unwrap())
            .collect()
    }

    /// The Adler-32 `ffmpeg -f framecrc` prints (started from 0, not 1).
    pub(crate) fn adler32(data: &[u8]) -> u32 {
        let (mut a, mut b) = (0u32, 0u32);
        for &byte in data {
            a = (a + u32::from(byte)) % 65521;
            b = (b + a) % 65521;
        }
        b << 16 | a
    }

    /// The fixture is H.264 High with B-frames (libx264's default): every
    /// picture comes out bit-identical to Debian's ffmpeg's decode, in
    /// display order (`ffmpeg -i FILE -map 0:v -f framecrc -`, checked in).
    #[test]
    fn decodes_b_frames_in_display_order_exactly_as_ffmpeg_does() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/flv");
        let flv = bytes::Bytes::from(std::fs::read(dir.join("ffmpeg_h264_aac_320x240_440hz.flv")).unwrap());
        let expected = framecrc("ffmpeg_h264_aac_320x240_440hz.framecrc");
        let mut decoder = AvcDecoder::new().unwrap();
        let mut picture = Picture::default();
        let mut crcs = Vec::new();
        for tag in read_tags(&flv).unwrap() {
            if tag.kind != TagKind::Video {
                continue;
            }
            if tag.data[1] == 0 {
                decoder.configure(&tag.data[5..]).unwrap();
            } else if tag.data[1] == 1 && decoder.decode(&tag.data[5..], &mut picture).unwrap() {
                assert_eq!((picture.width, picture.height), (320, 240));
                crcs.push(adler32(&picture.data));
            }
        }
        // The last pictures stay in the decoder, held back for reordering.
        assert!(crcs.len() >= expected.len() - 3, "{} pictures", crcs.len());
        assert_eq!(crcs, expected[..crcs.len()]);
    }

    #[test]
    fn access_units_before_the_configuration_are_refused() {
        let mut decoder = AvcDecoder::new().unwrap();
        let error = decoder
            .decode(&[0, 0, 0, 1, 0x65], &mut Picture::default())
            .unwrap_err();
        assert!(matches!(error, CodecError::NotConfigured { .. }), "{error}");
    }

    #[test]
    fn encodes_constrained_baseline_with_parameter_sets_before_each_idr() {
        let mut encoder = AvcEncoder::new(300_000).unwrap();
        let mut picture = Picture::default();
        picture.black(320, 180);
        let mut types = Vec::new();
        for index in 0..5u64 {
            if index == 3 {
                encoder.request_idr();
            }
            let mut out = Vec::new();
            encoder.encode(&picture, index * 33, &mut out).unwrap();
            types.push(annexb_nal_units(&out).map(nal_unit_type).collect::<Vec<_>>());
        }
        let starts = |t: &Vec<u8>| t.starts_with(&[nal_type::SPS, nal_type::PPS, nal_type::IDR]);
        assert!(starts(&types[0]) && starts(&types[3]), "{types:?}");
        assert!(
            types[1] == [nal_type::SLICE] && types[4] == [nal_type::SLICE],
            "{types:?}"
        );
        let mut out = Vec::new();
        let odd = Picture {
            width: 17,
            height: 16,
            data: vec![0; 17 * 16 * 2],
        };
        assert!(encoder.encode(&odd, 200, &mut out).is_err());
    }
}
