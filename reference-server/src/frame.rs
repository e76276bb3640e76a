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

use std::sync::Arc;

use bytes::Bytes;
use media::eflv::{self, EflvError, FourCc, PacketType};
use media::flv::{self, AudioCodec, TagKind, VideoCodec};

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
    header_len: u32,
    /// Where the main packet's data ends in `payload`, for a multitrack
    /// message whose other tracks follow it; `None`: at the end.
    data_end: Option<u32>,
    /// What an enhanced-RTMP tag says beyond the legacy fields; `None` for
    /// a legacy tag.
    pub enhanced: Option<Enhanced>,
    /// The FLV tag body.
    pub payload: Bytes,
}

/// What an enhanced tag (Enhanced RTMP v2's ExAudioTagHeader or
/// ExVideoTagHeader) says, read once where the frame enters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enhanced {
    /// The codec of the frame's main packet (for a multitrack message, its
    /// track 0, or its first track without one).
    pub fourcc: FourCc,
    /// What the main packet holds.
    pub packet_type: PacketType,
    /// A multitrack message.
    pub multitrack: bool,
    /// For a multitrack message, its main packet alone, as the tag body of
    /// a message that is not multitrack: what a player that did not
    /// announce multitrack gets. Made once per frame, shared by players.
    pub main_track: Option<Bytes>,
    /// For a multitrack message, every track alone (its id, and the frame
    /// of a message that is not multitrack holding it): what a player that
    /// picked a track gets (see [`crate::hub::Selection`]).
    pub tracks: Option<Arc<[(u8, Frame)]>>,
    /// The main packet as the legacy tag body that says the same thing,
    /// when legacy FLV has its codec (`avc1`, `mp4a`, `.mp3`: see
    /// [`eflv::write_legacy`]): what a player that did not announce the
    /// codec gets. Made once per frame, shared by players.
    pub legacy: Option<Bytes>,
    /// The tag could not be read: the frame names no codec and goes to no
    /// player (the specification's "fail in a controlled manner").
    pub error: Option<EflvError>,
}

impl Enhanced {
    fn unreadable(error: EflvError) -> Enhanced {
        Enhanced {
            fourcc: FourCc([0; 4]),
            packet_type: PacketType::SequenceEnd,
            multitrack: false,
            main_track: None,
            tracks: None,
            legacy: None,
            error: Some(error),
        }
    }
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
            data_end: None,
            enhanced: None,
            payload,
        };
        match kind {
            MediaKind::Audio | MediaKind::Video if frame.classify_enhanced() => {}
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
            header_len: flv::ENHANCED_AUDIO_HEADER_LEN as u32,
            data_end: None,
            enhanced: Some(Enhanced {
                fourcc: FourCc::OPUS,
                packet_type: PacketType::CodedFrames,
                multitrack: false,
                main_track: None,
                tracks: None,
                legacy: None,
                error: None,
            }),
            payload: Bytes::from(flv::opus_audio_body(packet)),
        }
    }

    /// Classifies an enhanced tag; false for a legacy one.
    fn classify_enhanced(&mut self) -> bool {
        let kind = if self.kind == MediaKind::Audio {
            TagKind::Audio
        } else {
            TagKind::Video
        };
        let payload = self.payload.clone();
        let tag = match eflv::parse(kind, &payload) {
            Ok(None) => return false,
            Ok(Some(tag)) => tag,
            Err(error) => {
                self.enhanced = Some(Enhanced::unreadable(error));
                return true;
            }
        };
        let header = tag.header;
        let mut main = None;
        for packet in tag.packets() {
            match packet {
                Ok(packet) => {
                    if main.is_none_or(|m: eflv::Packet| m.track != 0 && packet.track == 0) {
                        main = Some(packet);
                    }
                }
                Err(error) => {
                    self.enhanced = Some(Enhanced::unreadable(error));
                    return true;
                }
            }
        }
        let Some(packet) = main else {
            // A video command frame: no codec, nothing to decode.
            self.enhanced = Some(Enhanced {
                fourcc: FourCc([0; 4]),
                packet_type: header.packet_type,
                multitrack: false,
                main_track: None,
                tracks: None,
                legacy: None,
                error: None,
            });
            return true;
        };
        self.codec = match kind {
            TagKind::Audio => Codec::Audio(AudioCodec::from_fourcc(packet.fourcc)),
            _ => Codec::Video(VideoCodec::from_fourcc(packet.fourcc)),
        };
        self.config = matches!(
            packet.packet_type,
            PacketType::SequenceStart | PacketType::Mpeg2TsSequenceStart
        );
        self.keyframe = header.is_keyframe();
        self.composition_offset = packet.composition_offset;
        // The packet's bytes lie inside the payload.
        self.header_len = (packet.data.as_ptr() as usize - payload.as_ptr() as usize) as u32;
        if header.multitrack.is_some() {
            self.data_end = Some(self.header_len + packet.data.len() as u32);
        }
        if packet.packet_type.is_coded() {
            self.find_unflagged_keyframe();
        }
        // A multitrack message: each track alone, as the body of a message
        // that is not multitrack, classified once and shared by players.
        let tracks: Option<Arc<[(u8, Frame)]>> = header.multitrack.map(|_| {
            let single = eflv::Header {
                multitrack: None,
                ..header
            };
            tag.packets()
                .flatten()
                .map(|track| {
                    let mut body = Vec::with_capacity(track.data.len() + 16);
                    // One packet of the message's own packet type: always writable.
                    let _ = eflv::write(&mut body, &single, &[eflv::Packet { track: 0, ..track }]);
                    (track.track, Frame::new(self.kind, self.timestamp, Bytes::from(body)))
                })
                .collect()
        });
        let main_track = tracks
            .as_ref()
            .and_then(|tracks| tracks.iter().find(|(id, _)| *id == packet.track))
            .map(|(_, alone)| alone.payload.clone());
        let legacy = match &tracks {
            // A multitrack message: its main track's own (made just above).
            Some(tracks) => tracks
                .iter()
                .find(|(id, _)| *id == packet.track)
                .and_then(|(_, alone)| alone.enhanced.as_ref()?.legacy.clone()),
            None if matches!(packet.fourcc, FourCc::AVC | FourCc::AAC | FourCc::MP3) => {
                let mut body = Vec::with_capacity(packet.data.len() + 5);
                eflv::write_legacy(&mut body, &header, &packet).then(|| Bytes::from(body))
            }
            // Nothing is allocated for a codec legacy FLV does not have.
            None => None,
        };
        self.enhanced = Some(Enhanced {
            fourcc: packet.fourcc,
            packet_type: packet.packet_type,
            multitrack: header.multitrack.is_some(),
            main_track,
            tracks,
            legacy,
            error: None,
        });
        true
    }

    /// Classifies a legacy video tag.
    fn classify_video(&mut self) {
        let body = &self.payload;
        let Some(header) = flv::video_header(body) else { return };
        self.codec = Codec::Video(header.codec);
        self.config = header.is_sequence_header;
        // An end of sequence is flagged as a keyframe, but no picture starts there.
        self.keyframe = header.is_keyframe && !header.is_end_of_sequence;
        // AVC and HEVC: packet type and composition offset after the first byte.
        let nal_units = matches!(header.codec, VideoCodec::Avc | VideoCodec::Hevc);
        self.header_len = if nal_units { 5 } else { 1 };
        if nal_units && !self.config {
            if let Some(b) = body.get(2..5) {
                self.composition_offset = i32::from_be_bytes([0, b[0], b[1], b[2]]) << 8 >> 8;
            }
        }
        self.find_unflagged_keyframe();
    }

    /// Trusts the keyframe flag, but also finds H.264 random access points
    /// that are not flagged (Flash Player's recovery points).
    fn find_unflagged_keyframe(&mut self) {
        if self.codec == Codec::Video(VideoCodec::Avc) && !self.config && !self.keyframe {
            self.keyframe = self.data().is_some_and(media::h264::is_random_access);
        }
    }

    /// Classifies a legacy audio tag.
    fn classify_audio(&mut self) {
        let Some(header) = flv::audio_header(&self.payload) else {
            return;
        };
        self.codec = Codec::Audio(header.codec);
        self.config = header.is_sequence_header;
        self.header_len = if header.codec == AudioCodec::Aac { 2 } else { 1 };
    }

    /// Whether decoders and packetizers take it: every legacy frame, and
    /// an enhanced tag's configuration and coded frames, but not its
    /// SequenceEnd, Metadata, MultichannelConfig or command, nor one that
    /// could not be read (RTMP players that announced the codec get those).
    pub fn for_decoders(&self) -> bool {
        match &self.enhanced {
            None => true,
            Some(e) => {
                e.error.is_none()
                    && self.codec != Codec::None
                    && matches!(
                        e.packet_type,
                        PacketType::SequenceStart | PacketType::CodedFrames | PacketType::CodedFramesX
                    )
            }
        }
    }

    /// The codec's bytes (the tag body after its header): an AVCC access
    /// unit, an AAC frame, an Opus packet, G.711 samples, a configuration
    /// record. `None` when the body is shorter than its header.
    pub fn data(&self) -> Option<&[u8]> {
        let end = self.data_end.map_or(self.payload.len(), |end| end as usize);
        self.payload.get(self.header_len as usize..end)
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

    /// The track this frame counts as, for caches and late joiners: 0 for
    /// a frame that is not multitrack (legacy, or an enhanced tag without
    /// a track id), else its main packet's (track 0 when the message has
    /// one).
    pub fn track(&self) -> u8 {
        let main = self.enhanced.as_ref().and_then(|e| e.tracks.as_ref()).map(|tracks| {
            match tracks.iter().any(|(id, _)| *id == 0) {
                true => 0,
                false => tracks.first().map_or(0, |(id, _)| *id),
            }
        });
        main.unwrap_or(0)
    }

    /// Bytes this frame holds: its body, and the tracks alone and legacy
    /// form made from it.
    pub fn memory(&self) -> usize {
        let extra = self.enhanced.as_ref().map_or(0, |e| {
            let tracks = e
                .tracks
                .iter()
                .flat_map(|t| t.iter())
                .map(|(_, f)| f.payload.len())
                .sum::<usize>();
            tracks + e.legacy.as_ref().map_or(0, Bytes::len)
        });
        self.payload.len() + extra
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
    fn an_avc_end_of_sequence_is_neither_a_keyframe_nor_a_header() {
        let end = video(&media::flv::AVC_END_OF_SEQUENCE);
        assert_eq!(end.codec, Codec::Video(VideoCodec::Avc));
        assert!(!end.keyframe && !end.config);
        assert_eq!(end.data(), Some(&[][..]));
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
    fn a_multitrack_message_is_its_main_track_and_carries_it_alone() {
        // ManyTracksManyCodecs: track 1 of AV1 first, then track 0 of HEVC (offset 33).
        let body = b"\x96\x21av01\x01\x00\x00\x01\xCChvc1\x00\x00\x00\x05\x00\x00\x21\xAA\xBB";
        let frame = video(body);
        assert_eq!(frame.codec, Codec::Video(VideoCodec::Hevc), "track 0 is the main one");
        assert!(frame.keyframe && frame.for_decoders());
        assert_eq!(frame.composition_offset, 33);
        assert_eq!(frame.data(), Some(&b"\xAA\xBB"[..]));
        let enhanced = frame.enhanced.as_ref().unwrap();
        assert!(enhanced.multitrack);
        // Alone: a keyframe of coded HEVC frames, not multitrack.
        let alone = enhanced.main_track.as_ref().unwrap();
        assert_eq!(&alone[..], b"\x91hvc1\x00\x00\x21\xAA\xBB");
    }

    #[test]
    fn enhanced_signals_and_unreadable_tags_are_not_media() {
        // The Enhanced RTMP lab's colorInfo: Metadata in a command frame.
        let metadata = video(b"\xD4av01\x02\x00\x09colorInfo");
        assert_eq!(metadata.codec, Codec::Video(VideoCodec::Av1));
        assert!(!metadata.for_decoders() && !metadata.config);
        // Opus MultichannelConfig, and a sequence end.
        assert!(!audio(b"\x94Opus\x00\x02").for_decoders());
        assert!(!video(b"\x92vp09").for_decoders());
        // A reserved packet type: no codec, an error kept for the log.
        let reserved = video(b"\x98av01\x00");
        assert_eq!(reserved.codec, Codec::None);
        assert!(reserved.enhanced.as_ref().unwrap().error.is_some() && !reserved.for_decoders());
        // An unknown FourCC is read, and named as such.
        let unknown = video(b"\x91zzzz\x01");
        assert_eq!(
            unknown.codec,
            Codec::Video(VideoCodec::Other(u32::from_be_bytes(*b"zzzz")))
        );
        assert!(unknown.enhanced.as_ref().unwrap().error.is_none());
        // Enhanced AAC is AAC: its data is the AudioSpecificConfig or a raw frame.
        let aac = audio(b"\x90mp4a\x12\x10");
        assert!(aac.config && aac.audio_codec() == Some(AudioCodec::Aac));
        assert_eq!(aac.data(), Some(&b"\x12\x10"[..]));
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
