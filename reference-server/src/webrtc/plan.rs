//! How a stream's media reaches a WebRTC player: passed through or
//! transcoded. One set of rules, used when the player is admitted (the SDP
//! answer, from what the stream is known to carry: [`super::play::codecs`])
//! and again by the player's core when a frame shows the stream carries
//! something else (a new publisher, the first B-frame:
//! [`super::play_core::PlayCore`]).

use media::flv::{AudioCodec, VideoCodec};
use str0m::media::{Frequency, Pt};

/// How audio reaches the peer: the payload type the answer gave the codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioOut {
    /// Opus, 48 kHz.
    Opus(Pt),
    /// G.711 A-law, 8 kHz.
    Pcma(Pt),
    /// G.711 µ-law, 8 kHz.
    Pcmu(Pt),
}

/// The payload types an answer gave each video codec the server can send
/// (none where the peer did not take the codec).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VideoOut {
    /// H.264, packetization mode 1.
    pub h264: Option<Pt>,
    /// HEVC (RFC 7798).
    pub hevc: Option<Pt>,
    /// AV1 (the AOM's RTP payload format).
    pub av1: Option<Pt>,
    /// VP9 (RFC 9628).
    pub vp9: Option<Pt>,
    /// VP8 (RFC 7741).
    pub vp8: Option<Pt>,
}

impl VideoOut {
    /// The payload type of `codec`, if the peer took it.
    pub fn pt(&self, codec: VideoCodec) -> Option<Pt> {
        match codec {
            VideoCodec::Avc => self.h264,
            VideoCodec::Hevc => self.hevc,
            VideoCodec::Av1 => self.av1,
            VideoCodec::Vp9 => self.vp9,
            VideoCodec::Vp8 => self.vp8,
            _ => None,
        }
    }

    /// Whether the peer took any video codec the server sends.
    pub fn any(&self) -> bool {
        [self.h264, self.hevc, self.av1, self.vp9, self.vp8]
            .iter()
            .any(Option::is_some)
    }

    /// Everything, for deciding what an answer may hold.
    pub const ALL: VideoOut = VideoOut {
        h264: Some(Pt::new_with_value(0)),
        hevc: Some(Pt::new_with_value(0)),
        av1: Some(Pt::new_with_value(0)),
        vp9: Some(Pt::new_with_value(0)),
        vp8: Some(Pt::new_with_value(0)),
    };
}

/// What becomes of a stream's pictures for one player.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoPlan {
    /// As published (H.264 AVCC to Annex B; HEVC, AV1, VP9 and VP8 framed
    /// by [`media::eflv::bitstream`]), nothing decoded, with this payload type.
    Pass(Pt),
    /// Through the stream's transcoder to Constrained Baseline H.264.
    Transcode,
    /// Not playable over WebRTC (VP6, screen video, or a codec the peer
    /// did not take with no H.264 to transcode to): no pictures.
    Unplayable,
}

impl VideoPlan {
    /// The plan for pictures in `codec` to a peer that took `out`. A codec
    /// the peer took passes, unless the pictures `reorders` (B-frames,
    /// which WebRTC decoders would show out of order) or the player asked
    /// for a size or bitrate (`always_transcode`); otherwise H.264, Sorenson
    /// Spark and Enhanced RTMP's HEVC, AV1, VP9 and VP8 are transcoded to
    /// H.264; nothing else can be decoded.
    pub fn decide(codec: VideoCodec, reorders: bool, always_transcode: bool, out: &VideoOut) -> VideoPlan {
        use VideoCodec::*;
        match (codec, out.pt(codec)) {
            (_, Some(pt)) if !reorders && !always_transcode => VideoPlan::Pass(pt),
            (Avc | SorensonSpark | Hevc | Av1 | Vp9 | Vp8, _) if out.h264.is_some() => VideoPlan::Transcode,
            _ => VideoPlan::Unplayable,
        }
    }
}

/// What becomes of a stream's sound for one player.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioPlan {
    /// As published, with this payload type at this clock rate.
    Pass(Pt, Frequency),
    /// Through the stream's shared Opus transcoder.
    Transcode,
    /// Nothing the peer took can carry it.
    Drop,
}

impl AudioPlan {
    /// The plan for sound in `codec` to a peer that took `out`: Opus to
    /// Opus and G.711 to the same G.711 pass; anything else is transcoded
    /// to Opus when the peer took Opus.
    pub fn decide(codec: AudioCodec, out: AudioOut) -> AudioPlan {
        match (codec, out) {
            (AudioCodec::Opus, AudioOut::Opus(pt)) => AudioPlan::Pass(pt, Frequency::FORTY_EIGHT_KHZ),
            (AudioCodec::G711A, AudioOut::Pcma(pt)) | (AudioCodec::G711U, AudioOut::Pcmu(pt)) => {
                AudioPlan::Pass(pt, Frequency::EIGHT_KHZ)
            }
            (_, AudioOut::Opus(_)) => AudioPlan::Transcode,
            _ => AudioPlan::Drop,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pictures_pass_in_a_codec_the_peer_took_in_order_else_become_h264() {
        let h264_only = VideoOut {
            h264: Some(102.into()),
            ..VideoOut::default()
        };
        let decide = |codec, reorders, always| VideoPlan::decide(codec, reorders, always, &h264_only);
        assert_eq!(decide(VideoCodec::Avc, false, false), VideoPlan::Pass(102.into()));
        assert_eq!(decide(VideoCodec::Avc, true, false), VideoPlan::Transcode);
        assert_eq!(decide(VideoCodec::Avc, false, true), VideoPlan::Transcode);
        assert_eq!(decide(VideoCodec::SorensonSpark, false, false), VideoPlan::Transcode);
        assert_eq!(decide(VideoCodec::Vp6, false, false), VideoPlan::Unplayable);
        for enhanced in [VideoCodec::Hevc, VideoCodec::Av1, VideoCodec::Vp9, VideoCodec::Vp8] {
            assert_eq!(decide(enhanced, false, false), VideoPlan::Transcode);
        }
        let vp9_too = VideoOut {
            vp9: Some(98.into()),
            ..h264_only
        };
        assert_eq!(
            VideoPlan::decide(VideoCodec::Vp9, false, false, &vp9_too),
            VideoPlan::Pass(98.into())
        );
        assert_eq!(
            VideoPlan::decide(VideoCodec::Vp9, false, true, &vp9_too),
            VideoPlan::Transcode,
            "a size asked for"
        );
        let vp9_only = VideoOut {
            vp9: Some(98.into()),
            ..VideoOut::default()
        };
        assert_eq!(
            VideoPlan::decide(VideoCodec::Hevc, false, false, &vp9_only),
            VideoPlan::Unplayable,
            "no H.264 to transcode to"
        );
    }

    #[test]
    fn sound_passes_in_a_codec_the_peer_took_else_becomes_opus() {
        let opus = AudioOut::Opus(111.into());
        let pcma = AudioOut::Pcma(8.into());
        assert_eq!(
            AudioPlan::decide(AudioCodec::Opus, opus),
            AudioPlan::Pass(111.into(), Frequency::FORTY_EIGHT_KHZ)
        );
        assert_eq!(
            AudioPlan::decide(AudioCodec::G711A, pcma),
            AudioPlan::Pass(8.into(), Frequency::EIGHT_KHZ)
        );
        assert_eq!(AudioPlan::decide(AudioCodec::Aac, opus), AudioPlan::Transcode);
        assert_eq!(AudioPlan::decide(AudioCodec::G711U, opus), AudioPlan::Transcode);
        assert_eq!(AudioPlan::decide(AudioCodec::Aac, pcma), AudioPlan::Drop);
    }
}
