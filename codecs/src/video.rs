//! The video pipeline the gateway runs per stream and output size: FLV video
//! tag bodies in (H.264, B-frames included, or Sorenson Spark; Enhanced
//! RTMP's H.264, HEVC, AV1, VP9 and VP8; all decoded by libavcodec), FLV AVC tag
//! bodies out (Constrained Baseline, no B-frames, an optional smaller size
//! and a bitrate of the caller's choosing), what WebRTC players decode and
//! RTMP players play.
//!
//! Output pictures are stamped with their presentation time (the input's
//! timestamp plus its composition offset), in display order, composition
//! offset 0. An input keyframe becomes an output IDR, and so does the next
//! picture after [`VideoTranscoder::request_keyframe`]; a sequence header
//! goes out before the first IDR and whenever the encoder's parameter sets
//! change (a new size).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use bytes::Bytes;

use super::avc::{AvcDecoder, AvcEncoder};
use super::enhanced_video::EnhancedDecoder;
use super::picture::{fit_within, scale, Picture};
use super::spark::SparkDecoder;
use super::CodecError;
use media::eflv::{self, FourCc, PacketType};
use media::flv::{composition_offset, video_header, TagKind, VideoCodec};
use media::h264::{annexb_nal_units, nal_type, nal_unit_type, to_avcc, AvcConfig};
use media::rtmp::Timeline;

/// What a [`VideoTranscoder`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VideoSettings {
    /// Largest output width; the source's when `None`.
    pub max_width: Option<u16>,
    /// Largest output height; the source's when `None`.
    pub max_height: Option<u16>,
    /// Target bitrate in bits per second; [`default_bitrate`] for the
    /// output size when `None`.
    pub bitrate: Option<u32>,
}

/// A good bitrate for [`VideoSettings::bitrate`] at `width` x `height`
/// (about 0.1 bit per pixel at 30 frames per second, 150 kbit/s at least).
pub fn default_bitrate(width: usize, height: usize) -> u32 {
    ((width * height * 3) as u32).max(150_000)
}

/// One FLV video tag body with its time and flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlvVideoTag {
    /// The RTMP timestamp in milliseconds (the picture's presentation time).
    pub timestamp_ms: u32,
    /// A sequence header (AVC packet type 0) rather than a picture.
    pub config: bool,
    /// An IDR picture (or a sequence header, which players start from).
    pub keyframe: bool,
    /// The tag body, FLV video header included.
    pub data: Bytes,
}

/// Decodes, scales and re-encodes one stream's video. Sans-IO: tags in,
/// tags out.
pub struct VideoTranscoder {
    settings: VideoSettings,
    avc: Option<AvcDecoder>,
    spark: Option<SparkDecoder>,
    enhanced: Option<EnhancedDecoder>,
    encoder: Option<AvcEncoder>,
    /// Input timestamps past the 32-bit wrap, so that pictures on either
    /// side of it keep their order.
    timeline: Timeline,
    /// Presentation times (extended) of pictures given to the decoder and not out yet.
    pending: BinaryHeap<Reverse<i64>>,
    /// The presentation time (extended) of the last input keyframe not yet re-encoded.
    keyframe_at: Option<i64>,
    started: bool,
    last_config: Option<AvcConfig>,
    decoded: Picture,
    scaled: Picture,
    annexb: Vec<u8>,
}

impl std::fmt::Debug for VideoTranscoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoTranscoder")
            .field("settings", &self.settings)
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

/// Pictures a decoder may hold back for reordering before the oldest
/// pending time is taken for lost (H.264 allows 16).
const MAX_PENDING: usize = 16;

impl VideoTranscoder {
    /// A transcoder making `settings`.
    pub fn new(settings: VideoSettings) -> VideoTranscoder {
        VideoTranscoder {
            settings,
            avc: None,
            spark: None,
            enhanced: None,
            encoder: None,
            timeline: Timeline::default(),
            pending: BinaryHeap::with_capacity(MAX_PENDING + 1),
            keyframe_at: None,
            started: false,
            last_config: None,
            decoded: Picture::default(),
            scaled: Picture::default(),
            annexb: Vec::with_capacity(64 * 1024),
        }
    }

    /// What this transcoder makes.
    pub fn settings(&self) -> VideoSettings {
        self.settings
    }

    /// Makes the next output picture an IDR (a player's PLI or FIR, or a new
    /// player), without waiting for the source's next keyframe.
    pub fn request_keyframe(&mut self) {
        if let Some(encoder) = &mut self.encoder {
            encoder.request_idr();
        }
    }

    /// Forgets the pictures in flight: after input was dropped, decoding
    /// starts again at the next keyframe.
    pub fn restart_at_keyframe(&mut self) {
        self.started = false;
        self.pending.clear();
    }

    /// Transcodes one FLV video tag body shown at `timestamp_ms`, appending
    /// what comes out to `out` (nothing before the first keyframe; with
    /// B-frames, pictures come out a few tags late).
    pub fn push(&mut self, timestamp_ms: u32, body: &[u8], out: &mut Vec<FlvVideoTag>) -> Result<(), CodecError> {
        let timestamp = self.timeline.extend(timestamp_ms);
        if eflv::is_enhanced(TagKind::Video, body) {
            return self.push_enhanced(timestamp, body, out);
        }
        let header = video_header(body).ok_or_else(|| CodecError::corrupt("video", "an empty video tag"))?;
        if header.is_command {
            return Ok(());
        }
        let picture = match header.codec {
            VideoCodec::Avc => {
                let (Some(&packet_type), Some(cts)) = (body.get(1), composition_offset(body)) else {
                    return Err(CodecError::corrupt("h264", "a tag shorter than its header"));
                };
                match packet_type {
                    0 => return open(&mut self.avc, AvcDecoder::new)?.configure(&body[5..]),
                    1 => {}
                    _ => return Ok(()), // end of sequence
                }
                if !self.avc_picture(timestamp, cts, header.is_keyframe, &body[5..])? {
                    return Ok(());
                }
                true
            }
            VideoCodec::SorensonSpark => {
                if !self.start(header.is_keyframe) {
                    return Ok(());
                }
                self.pending_picture(timestamp, header.is_keyframe);
                open(&mut self.spark, SparkDecoder::new)?.decode(&body[1..], &mut self.decoded)?
            }
            other => return Err(CodecError::Unsupported(format!("{} video", other.name()))),
        };
        if picture {
            let pts = self.pending.pop().map_or(timestamp, |Reverse(pts)| pts);
            self.encode(pts, out)?;
        }
        Ok(())
    }

    /// Transcodes one Enhanced RTMP video tag body (its first packet: the
    /// caller gives a multitrack message's main track alone).
    fn push_enhanced(&mut self, timestamp: i64, body: &[u8], out: &mut Vec<FlvVideoTag>) -> Result<(), CodecError> {
        let corrupt = |e: eflv::EflvError| CodecError::corrupt("video", e.to_string());
        let Some(tag) = eflv::parse(TagKind::Video, body).map_err(corrupt)? else {
            return Ok(());
        };
        let Some(packet) = tag.first() else {
            return Ok(()); // a command frame
        };
        let packet = packet.map_err(corrupt)?;
        let keyframe = tag.header.is_keyframe();
        let picture = match (packet.fourcc, packet.packet_type) {
            (FourCc::AVC, PacketType::SequenceStart) => {
                return open(&mut self.avc, AvcDecoder::new)?.configure(packet.data)
            }
            (FourCc::AVC, PacketType::CodedFrames | PacketType::CodedFramesX) => {
                self.avc_picture(timestamp, packet.composition_offset, keyframe, packet.data)?
            }
            (fourcc, _) if !EnhancedDecoder::decodes(fourcc) => {
                return Err(CodecError::Unsupported(format!("{fourcc} video")));
            }
            (fourcc, PacketType::SequenceStart) => {
                if self.enhanced.as_ref().is_some_and(|d| d.fourcc() != fourcc) {
                    self.enhanced = None;
                    self.restart_at_keyframe();
                }
                return open(&mut self.enhanced, || EnhancedDecoder::new(fourcc))?.configure(packet.data);
            }
            (fourcc, PacketType::CodedFrames | PacketType::CodedFramesX) => {
                if !self.start(keyframe) {
                    return Ok(());
                }
                let pts = timestamp + i64::from(packet.composition_offset);
                self.pending_picture(pts, keyframe);
                let decoder = open(&mut self.enhanced, || EnhancedDecoder::new(fourcc))?;
                decoder.decode(packet.data, keyframe, &mut self.decoded)?
            }
            _ => return Ok(()), // a sequence end, metadata
        };
        if picture {
            let pts = self.pending.pop().map_or(timestamp, |Reverse(pts)| pts);
            self.encode(pts, out)?;
        }
        Ok(())
    }

    /// Decodes an H.264 access unit (AVCC) shown `cts` ms after
    /// `timestamp` (extended): whether a picture came out.
    fn avc_picture(&mut self, timestamp: i64, cts: i32, keyframe: bool, avcc: &[u8]) -> Result<bool, CodecError> {
        if !self.start(keyframe) {
            return Ok(false);
        }
        self.pending_picture(timestamp + i64::from(cts), keyframe);
        open(&mut self.avc, AvcDecoder::new)?.decode(avcc, &mut self.decoded)
    }

    /// Whether a picture (a keyframe or not) can be decoded now.
    fn start(&mut self, keyframe: bool) -> bool {
        self.started |= keyframe;
        self.started
    }

    fn pending_picture(&mut self, pts: i64, keyframe: bool) {
        self.pending.push(Reverse(pts));
        if self.pending.len() > MAX_PENDING {
            self.pending.pop();
        }
        if keyframe {
            self.keyframe_at = Some(pts);
        }
    }

    fn encode(&mut self, pts: i64, out: &mut Vec<FlvVideoTag>) -> Result<(), CodecError> {
        let (width, height) = fit_within(
            self.decoded.width,
            self.decoded.height,
            self.settings.max_width.map(usize::from),
            self.settings.max_height.map(usize::from),
        );
        let picture = if (width, height) == (self.decoded.width, self.decoded.height) {
            &self.decoded
        } else {
            scale(&self.decoded, width, height, &mut self.scaled);
            &self.scaled
        };
        let bitrate = self.settings.bitrate.unwrap_or_else(|| default_bitrate(width, height));
        let encoder = open(&mut self.encoder, || AvcEncoder::new(bitrate))?;
        if self.keyframe_at.is_some_and(|at| pts >= at) {
            self.keyframe_at = None;
            encoder.request_idr();
        }
        self.annexb.clear();
        encoder.encode(picture, pts.max(0) as u64, &mut self.annexb)?;
        // Back on RTMP's 32-bit clock, wrapping where the input did.
        let timestamp_ms = pts as u32;

        let (mut sps, mut pps, mut idr) = (None, None, false);
        for unit in annexb_nal_units(&self.annexb) {
            match nal_unit_type(unit) {
                nal_type::SPS => sps = Some(unit),
                nal_type::PPS => pps = Some(unit),
                nal_type::IDR => idr = true,
                _ => {}
            }
        }
        if let Some(config) = sps.zip(pps).and_then(|(s, p)| AvcConfig::from_parameter_sets(s, p)) {
            if self.last_config.as_ref() != Some(&config) {
                out.push(FlvVideoTag {
                    timestamp_ms,
                    config: true,
                    keyframe: true,
                    data: config.to_sequence_header(),
                });
                self.last_config = Some(config);
            }
        }
        let mut body = Vec::with_capacity(self.annexb.len() + 16);
        body.extend([if idr { 0x17 } else { 0x27 }, 1, 0, 0, 0]);
        let pictures =
            annexb_nal_units(&self.annexb).filter(|u| !matches!(nal_unit_type(u), nal_type::SPS | nal_type::PPS));
        to_avcc(pictures, &mut body);
        out.push(FlvVideoTag {
            timestamp_ms,
            config: false,
            keyframe: idr,
            data: Bytes::from(body),
        });
        Ok(())
    }
}

/// The codec in `slot`, created on first use.
fn open<T>(slot: &mut Option<T>, new: impl FnOnce() -> Result<T, CodecError>) -> Result<&mut T, CodecError> {
    match slot {
        Some(codec) => Ok(codec),
        None => Ok(slot.insert(new()?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use media::flv::{read_tags, Tag, TagKind};

    fn video_tags(name: &str) -> Vec<Tag> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/flv");
        let flv = Bytes::from(std::fs::read(dir.join(name)).unwrap());
        read_tags(&flv)
            .unwrap()
            .into_iter()
            .filter(|t| t.kind == TagKind::Video)
            .collect()
    }

    fn transcode(name: &str, settings: VideoSettings) -> Vec<FlvVideoTag> {
        let mut transcoder = VideoTranscoder::new(settings);
        let mut out = Vec::new();
        for tag in video_tags(name) {
            transcoder.push(tag.timestamp, &tag.data, &mut out).unwrap();
        }
        out
    }

    /// Decodes the output with a fresh decoder: (pictures, their size).
    fn decode(tags: &[FlvVideoTag]) -> (usize, (usize, usize)) {
        let mut decoder = AvcDecoder::new().unwrap();
        let mut picture = Picture::default();
        let mut pictures = 0;
        for tag in tags {
            if tag.config {
                decoder.configure(&tag.data[5..]).unwrap();
            } else if decoder.decode(&tag.data[5..], &mut picture).unwrap() {
                pictures += 1;
            }
        }
        (pictures, (picture.width, picture.height))
    }

    const FULL_SIZE: VideoSettings = VideoSettings {
        max_width: None,
        max_height: None,
        bitrate: Some(300_000),
    };

    #[test]
    fn sorenson_spark_becomes_constrained_baseline_h264() {
        let out = transcode("ffmpeg_sorenson_nellymoser_320x240_440hz.flv", FULL_SIZE);
        assert!(out[0].config && out[1].keyframe, "a sequence header, then an IDR");
        let config = AvcConfig::parse(&out[0].data[5..]).unwrap();
        assert_eq!(config.profile_idc, 66);
        assert_eq!(out.iter().filter(|t| !t.config).count(), 90);
        // The source has a keyframe every 15 pictures: so has the output.
        assert_eq!(out.iter().filter(|t| t.keyframe && !t.config).count(), 6);
        assert_eq!(decode(&out), (90, (320, 240)));
        let times: Vec<u32> = out.iter().filter(|t| !t.config).map(|t| t.timestamp_ms).collect();
        assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
    }

    #[test]
    fn b_frames_come_out_in_display_order_without_composition_offsets() {
        let out = transcode("ffmpeg_h264_aac_320x240_440hz.flv", FULL_SIZE);
        let pictures: Vec<&FlvVideoTag> = out.iter().filter(|t| !t.config).collect();
        // 250 pictures in, all but the few the decoder still holds out.
        assert!((245..=250).contains(&pictures.len()), "{}", pictures.len());
        assert!(pictures.windows(2).all(|w| w[0].timestamp_ms < w[1].timestamp_ms));
        assert!(pictures.iter().all(|t| t.data[2..5] == [0, 0, 0]));
        assert_eq!(pictures[1].timestamp_ms - pictures[0].timestamp_ms, 40);
        let (decoded, size) = decode(&out);
        assert_eq!((decoded, size), (pictures.len(), (320, 240)));
    }

    #[test]
    fn b_frames_keep_their_order_across_the_32_bit_wrap() {
        // The stream's timestamps wrap to 0 four seconds in.
        let start = u32::MAX - 3999;
        let mut transcoder = VideoTranscoder::new(FULL_SIZE);
        let mut out = Vec::new();
        for tag in video_tags("ffmpeg_h264_aac_320x240_440hz.flv") {
            transcoder
                .push(tag.timestamp.wrapping_add(start), &tag.data, &mut out)
                .unwrap();
        }
        let times: Vec<u32> = out.iter().filter(|t| !t.config).map(|t| t.timestamp_ms).collect();
        assert!(times.len() >= 245, "{}", times.len());
        assert!(
            times.contains(&(u32::MAX - 39)) && times.contains(&0),
            "crosses the wrap"
        );
        assert!(times.windows(2).all(|w| w[1].wrapping_sub(w[0]) == 40), "{times:?}");
    }

    #[test]
    fn scales_down_to_fit_and_answers_keyframe_requests() {
        let half = VideoSettings {
            max_width: Some(160),
            ..FULL_SIZE
        };
        let mut transcoder = VideoTranscoder::new(half);
        let mut out = Vec::new();
        for (index, tag) in video_tags("ffmpeg_sorenson_nellymoser_320x240_440hz.flv")
            .iter()
            .enumerate()
        {
            if index == 5 {
                transcoder.request_keyframe();
            }
            transcoder.push(tag.timestamp, &tag.data, &mut out).unwrap();
        }
        let idrs: Vec<usize> = out
            .iter()
            .filter(|t| !t.config)
            .enumerate()
            .filter(|(_, t)| t.keyframe)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(idrs, [0, 5, 15, 30, 45, 60, 75]);
        assert_eq!(decode(&out), (90, (160, 120)));
    }

    #[test]
    fn starts_at_a_keyframe_and_refuses_what_it_cannot_decode() {
        let tags = video_tags("ffmpeg_sorenson_nellymoser_320x240_440hz.flv");
        let mut transcoder = VideoTranscoder::new(FULL_SIZE);
        let mut out = Vec::new();
        for tag in &tags[1..15] {
            transcoder.push(tag.timestamp, &tag.data, &mut out).unwrap();
        }
        assert!(out.is_empty(), "inter frames before the first keyframe are dropped");
        transcoder.push(tags[15].timestamp, &tags[15].data, &mut out).unwrap();
        assert!(out[0].config && out[1].keyframe);

        let vp6 = [0x14, 0, 0, 0];
        let error = transcoder.push(0, &vp6, &mut out).unwrap_err();
        assert_eq!(error.to_string(), "unsupported: vp6 video");
        assert!(transcoder.push(0, &[], &mut out).is_err());
        assert!(transcoder.push(0, &[0x17], &mut out).is_err());
        // Damaged data costs the frame, not the transcoder.
        let _ = transcoder.push(0, &[0x12, 0xFF, 0x00, 0x13], &mut out);
        transcoder.push(tags[30].timestamp, &tags[30].data, &mut out).unwrap();
    }
}
