//! The media unit: one frame of a stream as it travels from any ingest
//! (RTMP, WHIP, the WebSocket channel) through the hub to any egress (RTMP
//! players, WebRTC players, transcoders).
//!
//! A frame is classified once, where it enters ([`Frame::new`]): its track,
//! its codec, whether it is a decoder configuration (sequence header) or a
//! keyframe, its composition offset and where the codec's bytes start in
//! its FLV tag body. Everything downstream reads these fields and never
//! parses the tag header again; the body itself is kept whole, because RTMP
//! players get it as it came.

use bytes::Bytes;
use media::flv::{self, AudioCodec, VideoCodec};

pub use crate::rtmp::session::MediaKind;

/// The codec of a frame, as its tag header names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// A sound codec.
    Audio(AudioCodec),
    /// A picture codec.
    Video(VideoCodec),
    /// A data message, or a body too short to name a codec.
    None,
}

/// One media message as it travels from a publisher to its players.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Audio, video or data.
    pub kind: MediaKind,
    /// Decode time, milliseconds.
    pub timestamp: u32,
    /// The codec its tag header names.
    pub codec: Codec,
    /// A video keyframe (where a player may start).
    pub keyframe: bool,
    /// A codec sequence header (decoder configuration), kept for late joiners.
    pub config: bool,
    /// Presentation minus decode time, milliseconds: non-zero only for
    /// pictures of a stream with B-frames.
    pub composition_offset: i32,
    /// Bytes of tag header before the codec's data in `payload`.
    header_len: u8,
    /// The FLV tag body.
    pub payload: Bytes,
}

impl Frame {
    /// Classifies a media message's FLV tag body (legacy or enhanced RTMP).
    pub fn new(kind: MediaKind, timestamp: u32, payload: Bytes) -> Frame {
        let mut frame = Frame {
            kind,
            timestamp,
            codec: Codec::None,
            keyframe: false,
            config: false,
            composition_offset: 0,
            header_len: 0,
            payload,
        };
        match kind {
            MediaKind::Video => frame.classify_video(),
            MediaKind::Audio => frame.classify_audio(),
            MediaKind::Data => {}
        }
        frame
    }

    /// An Opus packet the server made or received over WebRTC (a WHIP
    /// publisher's, the Opus transcoder's): an enhanced-RTMP Opus tag body,
    /// as an RTMP player that speaks Enhanced RTMP v2 takes it, classified
    /// as it is written rather than parsed back.
    pub fn opus(timestamp: u32, packet: &[u8]) -> Frame {
        Frame {
            kind: MediaKind::Audio,
            timestamp,
            codec: Codec::Audio(AudioCodec::Opus),
            keyframe: false,
            config: false,
            composition_offset: 0,
            header_len: flv::ENHANCED_AUDIO_HEADER_LEN as u8,
            payload: Bytes::from(flv::opus_audio_body(packet)),
        }
    }

    fn classify_video(&mut self) {
        let body = &self.payload;
        let Some(header) = flv::video_header(body) else { return };
        self.codec = Codec::Video(header.codec);
        self.config = header.is_sequence_header;
        self.keyframe = header.is_keyframe;
        let enhanced = body[0] & 0x80 != 0;
        self.header_len = match (enhanced, header.codec) {
            // Enhanced: packet type in the first byte, then the FourCC;
            // AVC and HEVC coded frames (packet type 1) add a composition offset.
            (true, VideoCodec::Avc | VideoCodec::Hevc) if body[0] & 0x0F == 1 => 8,
            (true, _) => 5,
            // Legacy AVC and HEVC: packet type and composition offset.
            (false, VideoCodec::Avc | VideoCodec::Hevc) => 5,
            (false, _) => 1,
        };
        if self.header_len == 8 || (!enhanced && self.header_len == 5) {
            let offset = usize::from(self.header_len) - 3;
            if let Some(b) = body.get(offset..offset + 3) {
                self.composition_offset = i32::from_be_bytes([0, b[0], b[1], b[2]]) << 8 >> 8;
            }
        }
        // Trust the flag, but also find H.264 random access points that are
        // not flagged (Flash Player's recovery points).
        if header.codec == VideoCodec::Avc && !self.config && !self.keyframe {
            self.keyframe = self.data().is_some_and(media::h264::is_random_access);
        }
        if self.config {
            self.composition_offset = 0;
        }
    }

    fn classify_audio(&mut self) {
        let Some(header) = flv::audio_header(&self.payload) else {
            return;
        };
        self.codec = Codec::Audio(header.codec);
        self.config = header.is_sequence_header;
        self.header_len = match header.codec {
            AudioCodec::Opus | AudioCodec::Other(_) if self.payload[0] >> 4 == 9 => {
                flv::ENHANCED_AUDIO_HEADER_LEN as u8
            }
            AudioCodec::Aac => 2,
            _ => 1,
        };
    }

    /// The codec's bytes (the tag body after its header): an AVCC access
    /// unit, an AAC frame, an Opus packet, G.711 samples, a configuration
    /// record. `None` when the body is shorter than its header.
    pub fn data(&self) -> Option<&[u8]> {
        self.payload.get(usize::from(self.header_len)..)
    }

    /// The audio codec, for an audio frame.
    pub fn audio_codec(&self) -> Option<AudioCodec> {
        match self.codec {
            Codec::Audio(codec) => Some(codec),
            _ => None,
        }
    }

    /// The video codec, for a video frame.
    pub fn video_codec(&self) -> Option<VideoCodec> {
        match self.codec {
            Codec::Video(codec) => Some(codec),
            _ => None,
        }
    }

    /// A picture shown after a later-decoded one: the stream has B-frames.
    pub fn reorders(&self) -> bool {
        self.kind == MediaKind::Video && !self.config && self.composition_offset != 0
    }

    /// The same frame at another decode time.
    pub fn restamped(&self, timestamp: u32) -> Frame {
        Frame {
            timestamp,
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(body: &'static [u8]) -> Frame {
        Frame::new(MediaKind::Video, 0, Bytes::from_static(body))
    }

    fn audio(body: &'static [u8]) -> Frame {
        Frame::new(MediaKind::Audio, 0, Bytes::from_static(body))
    }

    #[test]
    fn an_opus_frame_made_here_reads_as_one_parsed() {
        let made = Frame::opus(40, &[0xFC, 1, 2]);
        assert_eq!(made.data(), Some(&[0xFC, 1, 2][..]));
        assert_eq!(made, Frame::new(MediaKind::Audio, 40, made.payload.clone()));
    }

    #[test]
    fn legacy_avc_is_classified_once() {
        let config = video(&[0x17, 0, 0, 0, 0, 1, 0x42]);
        assert_eq!(config.codec, Codec::Video(VideoCodec::Avc));
        assert!(config.config && config.keyframe);
        assert_eq!(config.data(), Some(&[1, 0x42][..]));

        // An inter picture shown 80 ms after its decode time; then one shown -40 ms.
        let b = video(&[0x27, 1, 0, 0, 80, 0, 0, 0, 1, 0x41]);
        assert!(!b.keyframe && !b.config && b.reorders());
        assert_eq!(b.composition_offset, 80);
        assert_eq!(b.data(), Some(&[0, 0, 0, 1, 0x41][..]));
        assert_eq!(video(&[0x27, 1, 0xFF, 0xFF, 0xD8]).composition_offset, -40);
    }

    #[test]
    fn an_unflagged_h264_random_access_point_is_a_keyframe() {
        // Flagged inter, but the access unit holds an IDR slice (NAL type 5).
        let idr = video(&[0x27, 1, 0, 0, 0, 0, 0, 0, 1, 0x65]);
        assert!(idr.keyframe);
        assert!(!video(&[0x27, 1, 0, 0, 0, 0, 0, 0, 1, 0x41]).keyframe);
    }

    #[test]
    fn spark_and_enhanced_video() {
        let spark = video(&[0x12, 0, 0x84]);
        assert_eq!(spark.codec, Codec::Video(VideoCodec::SorensonSpark));
        assert!(spark.keyframe && !spark.config);
        assert_eq!(spark.data(), Some(&[0, 0x84][..]));

        // Enhanced RTMP: keyframe, packet type 1 (coded frames) of hvc1, offset 33 ms.
        let hevc = video(&[0x91, b'h', b'v', b'c', b'1', 0, 0, 33, 0xAA]);
        assert_eq!(hevc.codec, Codec::Video(VideoCodec::Hevc));
        assert!(hevc.keyframe && !hevc.config);
        assert_eq!(hevc.composition_offset, 33);
        assert_eq!(hevc.data(), Some(&[0xAA][..]));

        // Enhanced AV1 sequence start: no offset.
        let av1 = video(&[0x90, b'a', b'v', b'0', b'1', 0x81]);
        assert!(av1.config);
        assert_eq!(av1.data(), Some(&[0x81][..]));
    }

    #[test]
    fn audio_headers() {
        let aac_config = audio(&[0xAF, 0, 0x12, 0x10]);
        assert!(aac_config.config);
        assert_eq!(aac_config.data(), Some(&[0x12, 0x10][..]));
        let aac = audio(&[0xAF, 1, 0x21]);
        assert!(!aac.config);
        assert_eq!(aac.audio_codec(), Some(AudioCodec::Aac));
        assert_eq!(aac.data(), Some(&[0x21][..]));

        let opus = Frame::new(MediaKind::Audio, 0, Bytes::from(flv::opus_audio_body(&[0xFC, 1])));
        assert_eq!(opus.audio_codec(), Some(AudioCodec::Opus));
        assert_eq!(opus.data(), Some(&[0xFC, 1][..]));

        let pcma = audio(&[0x72, 0xD5, 0xD5]);
        assert_eq!(pcma.audio_codec(), Some(AudioCodec::G711A));
        assert_eq!(pcma.data(), Some(&[0xD5, 0xD5][..]));
    }

    #[test]
    fn empty_and_short_bodies_name_nothing() {
        let empty = video(&[]);
        assert_eq!(empty.codec, Codec::None);
        assert_eq!(empty.data(), Some(&[][..]));
        assert_eq!(video(&[0x27, 1]).data(), None, "shorter than its header");
        assert_eq!(audio(&[]).codec, Codec::None);
        assert_eq!(
            Frame::new(MediaKind::Data, 0, Bytes::from_static(b"x")).codec,
            Codec::None
        );
    }
}
