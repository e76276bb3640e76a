//! Enhanced RTMP toward RTMP clients: what the server announces in
//! connect's `_result`, and which form of a frame each player gets.
//!
//! A player gets an enhanced tag only if its connect announced the codec
//! (`fourCcList`, or a FourCC info map that can decode or forward it); a
//! legacy player, which announced nothing, never gets one. A multitrack
//! message goes whole to a player that announced multitrack (`capsEx`),
//! and as its main track alone to the others. H.264, AAC and MP3 in
//! enhanced tags go to a player that did not announce them as the legacy
//! tags that say the same thing, byte for byte what a legacy publisher
//! would have sent. Anything else a player does not get is withheld, and
//! it is told so once per codec with `NetStream.Play.NoSupportedTrackFound`
//! at level warning.

use media::eflv::FourCc;
use media::flv::TagKind;
use media::rtmp::enhanced::{caps_ex, info, Capabilities, ANY};

use crate::frame::{Frame, MediaKind};

/// What the server announces in `_result` (Enhanced RTMP v2: "The server
/// SHOULD state its support via attributes such as videoFourCcInfoMap,
/// capsEx"): it forwards every codec to players that announce it, decodes
/// and encodes H.264, Opus and AAC (its transcoders), decodes MP3; it
/// reads multitrack messages, ModEx and nanosecond offsets, and passes
/// them on as they came; it sends a reconnect request when it shuts down.
pub fn announced() -> Capabilities {
    let all = info::CAN_DECODE | info::CAN_ENCODE | info::CAN_FORWARD;
    let mut caps = Capabilities::default();
    caps.video.insert(ANY.into(), info::CAN_FORWARD);
    caps.video.insert(FourCc::AVC.to_string(), all);
    caps.audio.insert(ANY.into(), info::CAN_FORWARD);
    caps.audio.insert(FourCc::OPUS.to_string(), all);
    caps.audio.insert(FourCc::AAC.to_string(), all);
    caps.audio
        .insert(FourCc::MP3.to_string(), info::CAN_DECODE | info::CAN_FORWARD);
    caps.caps_ex = caps_ex::RECONNECT | caps_ex::MULTITRACK | caps_ex::MOD_EX | caps_ex::TIMESTAMP_NANO_OFFSET;
    caps
}

/// How a frame goes to one RTMP player.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Form<'a> {
    /// The tag body as the publisher sent it.
    AsIs,
    /// A multitrack message's main track alone.
    MainTrack(&'a bytes::Bytes),
    /// The main track as a legacy tag (H.264, AAC, MP3).
    Legacy(&'a bytes::Bytes),
    /// Not sent: the player did not announce this codec.
    Withheld(FourCc),
}

/// The form of `frame` for a player whose connect announced `caps`
/// (`None`: a legacy player).
pub fn form<'a>(frame: &'a Frame, caps: Option<&Capabilities>) -> Form<'a> {
    let Some(enhanced) = &frame.enhanced else {
        return Form::AsIs;
    };
    let kind = if frame.kind == MediaKind::Audio {
        TagKind::Audio
    } else {
        TagKind::Video
    };
    let takes = caps.is_some_and(|caps| {
        // A command frame names no codec: any enhanced player takes it.
        enhanced.fourcc == FourCc([0; 4]) || caps.takes(kind, enhanced.fourcc)
    });
    match (takes, &enhanced.main_track) {
        (false, _) => match &enhanced.legacy {
            Some(legacy) => Form::Legacy(legacy),
            None => Form::Withheld(enhanced.fourcc),
        },
        (true, Some(alone)) if !caps.is_some_and(|c| c.has(caps_ex::MULTITRACK)) => Form::MainTrack(alone),
        _ => Form::AsIs,
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn video(body: &'static [u8]) -> Frame {
        Frame::new(MediaKind::Video, 0, Bytes::from_static(body))
    }

    #[test]
    fn a_legacy_player_gets_legacy_tags_only() {
        assert_eq!(form(&video(&[0x17, 1, 0, 0, 0, 0xAA]), None), Form::AsIs);
        assert_eq!(form(&video(b"\x91av01\xAA"), None), Form::Withheld(FourCc::AV1));
        // H.264 in an enhanced tag (CodedFrames, composition offset 2): the legacy tag.
        let avc1 = video(b"\x91avc1\x00\x00\x02\xAA");
        assert_eq!(
            form(&avc1, None),
            Form::Legacy(&Bytes::from_static(&[0x17, 1, 0, 0, 2, 0xAA]))
        );
    }

    #[test]
    fn a_player_gets_the_codecs_it_announced() {
        let mut av1_only = Capabilities::default();
        av1_only.list.push("av01".into());
        assert_eq!(form(&video(b"\x91av01\xAA"), Some(&av1_only)), Form::AsIs);
        assert_eq!(
            form(&video(b"\x90hvc1\x01"), Some(&av1_only)),
            Form::Withheld(FourCc::HEVC)
        );
        // A multitrack message: its main track alone, unless multitrack was announced.
        let multitrack = video(b"\x96\x11av01\x00\x00\x00\x01\xAA\x01\x00\x00\x01\xBB");
        let Form::MainTrack(alone) = form(&multitrack, Some(&av1_only)) else {
            panic!()
        };
        assert_eq!(&alone[..], b"\x91av01\xAA");
        let forwarder = announced();
        assert_eq!(form(&multitrack, Some(&forwarder)), Form::AsIs);
    }
}
