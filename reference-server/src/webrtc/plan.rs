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

/// What becomes of a stream's pictures for one player.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoPlan {
    /// H.264 as published: AVCC to Annex B, nothing decoded.
    Pass,
    /// Through the stream's H.264 transcoder.
    Transcode,
    /// Not playable over WebRTC (VP6, screen video, …): no pictures.
    Unplayable,
}

impl VideoPlan {
    /// The plan for pictures in `codec`. H.264 passes unless it `reorders`
    /// (B-frames, which WebRTC decoders would show out of order) or the
    /// player asked for a size or bitrate (`always_transcode`); Sorenson
    /// Spark and Enhanced RTMP's HEVC, AV1, VP9 and VP8 are transcoded to
    /// H.264 (none passes through yet); nothing else can be decoded.
    pub fn decide(codec: VideoCodec, reorders: bool, always_transcode: bool) -> VideoPlan {
        match codec {
            VideoCodec::Avc if !reorders && !always_transcode => VideoPlan::Pass,
            VideoCodec::Avc | VideoCodec::SorensonSpark => VideoPlan::Transcode,
            VideoCodec::Hevc | VideoCodec::Av1 | VideoCodec::Vp9 | VideoCodec::Vp8 => VideoPlan::Transcode,
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
    fn pictures_pass_only_as_h264_in_order() {
        assert_eq!(VideoPlan::decide(VideoCodec::Avc, false, false), VideoPlan::Pass);
        assert_eq!(VideoPlan::decide(VideoCodec::Avc, true, false), VideoPlan::Transcode);
        assert_eq!(VideoPlan::decide(VideoCodec::Avc, false, true), VideoPlan::Transcode);
        assert_eq!(
            VideoPlan::decide(VideoCodec::SorensonSpark, false, false),
            VideoPlan::Transcode
        );
        assert_eq!(VideoPlan::decide(VideoCodec::Vp6, false, false), VideoPlan::Unplayable);
        for enhanced in [VideoCodec::Hevc, VideoCodec::Av1, VideoCodec::Vp9, VideoCodec::Vp8] {
            assert_eq!(VideoPlan::decide(enhanced, false, false), VideoPlan::Transcode);
        }
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
