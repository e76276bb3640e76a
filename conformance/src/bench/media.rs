//! The media a bench publishes: a moving test pattern with each frame's
//! number drawn in ([`super::marks`]), encoded as H.264 (openh264,
//! Constrained Baseline, an IDR every 2 s), and a 440 Hz tone in AAC-LC, as
//! FLV tags an RTMP publisher sends, made before the run so encoding costs
//! nothing while it is measured.

use bytes::Bytes;
use codecs::transcode::{FlvAudioTarget, FromOpus};
use media::flv::{Tag, TagKind};
use media::h264::{annexb_nal_units, nal_type, nal_unit_type, to_avcc, AvcConfig};

use crate::webrtc::source::{H264Source, ToneSource};
use crate::webrtc::WebRtcError;

/// What to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaSpec {
    /// Picture width.
    pub width: usize,
    /// Picture height.
    pub height: usize,
    /// Frames per second.
    pub fps: u32,
    /// Video bitrate, bits per second.
    pub bitrate: u32,
    /// Seconds of media.
    pub seconds: u32,
}

/// FLV tags in timestamp order: the AVC and AAC sequence headers first, then
/// video frame `k` at `k * 1000 / fps` ms (marked `k`) and the sound.
pub fn marked_tags(spec: MediaSpec) -> Result<Vec<Tag>, WebRtcError> {
    let frames = u64::from(spec.seconds) * u64::from(spec.fps);
    if frames >= 1 << 16 {
        return Err(WebRtcError::Options(format!(
            "{frames} frames: marks count to 65535, ask for fewer seconds or frames per second"
        )));
    }
    let mut video = H264Source::new(spec.width, spec.height, spec.fps, spec.fps * 2, spec.bitrate)?.with_marks();
    let mut tags = Vec::with_capacity(frames as usize * 3);
    let mut config: Option<AvcConfig> = None;
    for _ in 0..frames {
        let frame = video.next_frame()?;
        let timestamp = (frame.index * 1000 / u64::from(spec.fps)) as u32;
        let units: Vec<&[u8]> = annexb_nal_units(&frame.data).collect();
        let sps = units.iter().find(|u| nal_unit_type(u) == nal_type::SPS);
        let pps = units.iter().find(|u| nal_unit_type(u) == nal_type::PPS);
        if let (Some(sps), Some(pps), None) = (sps, pps, &config) {
            let avc = AvcConfig::from_parameter_sets(sps, pps)
                .ok_or_else(|| WebRtcError::Codec("openh264 wrote a short SPS".into()))?;
            tags.push(tag(TagKind::Video, 0, avc.to_sequence_header()));
            config = Some(avc);
        }
        let mut body = vec![if frame.keyframe { 0x17 } else { 0x27 }, 1, 0, 0, 0];
        to_avcc(
            units
                .into_iter()
                .filter(|u| !matches!(nal_unit_type(u), nal_type::SPS | nal_type::PPS)),
            &mut body,
        );
        tags.push(tag(TagKind::Video, timestamp, Bytes::from(body)));
    }

    let mut tone = ToneSource::new(440.0, 0.25)?;
    let mut aac = FromOpus::new(FlvAudioTarget::Aac).map_err(|e| WebRtcError::Codec(e.to_string()))?;
    let mut audio = Vec::new();
    for _ in 0..u64::from(spec.seconds) * 50 {
        let packet = tone.next_frame()?;
        aac.push(packet.rtp_time, &packet.data, &mut audio)
            .map_err(|e| WebRtcError::Codec(e.to_string()))?;
    }
    tags.extend(audio.into_iter().map(|a| tag(TagKind::Audio, a.timestamp_ms, a.data)));
    // Stable: each sequence header stays before the frames of its track.
    tags.sort_by_key(|t| t.timestamp);
    Ok(tags)
}

fn tag(kind: TagKind, timestamp: u32, data: Bytes) -> Tag {
    Tag { kind, timestamp, data }
}

#[cfg(test)]
mod tests {
    use super::*;
    use codecs::avc::AvcDecoder;
    use codecs::picture::Picture;

    #[test]
    fn every_frame_carries_its_number_through_an_h264_decoder() {
        let spec = MediaSpec {
            width: 320,
            height: 240,
            fps: 25,
            bitrate: 500_000,
            seconds: 2,
        };
        let tags = marked_tags(spec).unwrap();
        let video: Vec<&Tag> = tags.iter().filter(|t| t.kind == TagKind::Video).collect();
        let audio = tags.iter().filter(|t| t.kind == TagKind::Audio).count();
        assert_eq!(video.len(), 51, "a sequence header and 50 frames");
        assert!((90..=100).contains(&audio), "{audio} AAC tags");
        assert!(tags.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
        let mut decoder = AvcDecoder::new().unwrap();
        decoder.configure(&video[0].data[5..]).unwrap();
        let mut picture = Picture::default();
        let mut marks = Vec::new();
        for tag in &video[1..] {
            if decoder.decode(&tag.data[5..], &mut picture).unwrap() {
                marks.push(super::super::marks::read(&picture.data, 320, 320, 240).unwrap());
            }
        }
        assert_eq!(marks, (0..marks.len() as u16).collect::<Vec<_>>());
        assert!(marks.len() >= 49);
    }

    #[test]
    fn marks_survive_the_reference_servers_transcoder_at_a_quarter_of_the_size() {
        use codecs::video::{VideoSettings, VideoTranscoder};
        let spec = MediaSpec {
            width: 320,
            height: 240,
            fps: 25,
            bitrate: 500_000,
            seconds: 2,
        };
        let mut transcoder = VideoTranscoder::new(VideoSettings {
            max_width: Some(160),
            max_height: None,
            bitrate: None,
        });
        let mut out = Vec::new();
        for tag in marked_tags(spec).unwrap().iter().filter(|t| t.kind == TagKind::Video) {
            transcoder.push(tag.timestamp, &tag.data, &mut out).unwrap();
        }
        let mut decoder = AvcDecoder::new().unwrap();
        let mut picture = Picture::default();
        let mut marks = Vec::new();
        for tag in &out {
            if tag.config {
                decoder.configure(&tag.data[5..]).unwrap();
            } else if decoder.decode(&tag.data[5..], &mut picture).unwrap() {
                assert_eq!((picture.width, picture.height), (160, 120));
                marks.push(super::super::marks::read(&picture.data, 160, 160, 120));
            }
        }
        let read: Vec<u16> = marks.iter().flatten().copied().collect();
        assert_eq!(read.len(), marks.len(), "unreadable marks: {marks:?}");
    }
}
