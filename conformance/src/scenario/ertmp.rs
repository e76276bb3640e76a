//! Enhanced RTMP in scenarios: what an `ertmp` actor announces in its
//! connect, how a `publish` step reshapes an E-FLV fixture (the suite's
//! own muxer: multitrack layouts, ModEx nanosecond offsets, tags the
//! specification does not define), and what a player saw of the enhanced
//! tags it received.

use std::collections::{BTreeSet, HashSet};

use crate::digest;
use bytes::Bytes;
use media::amf::Value;
use media::eflv::{self, FourCc, Header, Multitrack, Packet};
use media::flv::{Tag, TagKind};
use media::rtmp::enhanced::{caps_ex, info, Capabilities};
use serde::{Deserialize, Serialize};

/// An extended capability by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CapsEx {
    /// `NetConnection.Connect.ReconnectRequest`.
    Reconnect,
    /// Multitrack messages.
    Multitrack,
    /// The ModEx signal.
    ModEx,
    /// The nanosecond timestamp offset.
    NanoOffset,
}

impl CapsEx {
    fn bit(self) -> u32 {
        match self {
            CapsEx::Reconnect => caps_ex::RECONNECT,
            CapsEx::Multitrack => caps_ex::MULTITRACK,
            CapsEx::ModEx => caps_ex::MOD_EX,
            CapsEx::NanoOffset => caps_ex::TIMESTAMP_NANO_OFFSET,
        }
    }
}

/// Where the codecs are announced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnnounceForm {
    /// v2's `videoFourCcInfoMap` and `audioFourCcInfoMap` (decode and forward).
    #[default]
    Maps,
    /// v1's `fourCcList` only.
    List,
    /// Both.
    Both,
}

/// What an Enhanced RTMP client announces in its connect object (a
/// `connect` step's `announce`; an `ertmp` actor's default is
/// [`Announce::default`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Announce {
    /// The FourCCs (or `"*"`) it can decode and forward; default every
    /// one the specification defines.
    #[serde(default)]
    pub codecs: Option<Vec<String>>,
    /// Where it says so.
    #[serde(default)]
    pub form: AnnounceForm,
    /// Its `capsEx`; default multitrack, ModEx and the nanosecond offset.
    #[serde(default)]
    pub caps_ex: Option<Vec<CapsEx>>,
}

impl Announce {
    /// The connect object's properties.
    pub fn capabilities(&self) -> Capabilities {
        let codecs: Vec<String> = match &self.codecs {
            Some(codecs) => codecs.clone(),
            None => FourCc::VIDEO
                .iter()
                .chain(&FourCc::AUDIO)
                .map(FourCc::to_string)
                .collect(),
        };
        let mut caps = Capabilities::default();
        if self.form != AnnounceForm::Maps {
            caps.list = codecs.clone();
        }
        if self.form != AnnounceForm::List {
            let flags = info::CAN_DECODE | info::CAN_FORWARD;
            for codec in &codecs {
                let audio = FourCc::parse(codec).is_some_and(|f| FourCc::AUDIO.contains(&f));
                let video = FourCc::parse(codec).is_some_and(|f| FourCc::VIDEO.contains(&f));
                if audio || !video {
                    caps.audio.insert(codec.clone(), flags);
                }
                if video || !audio {
                    caps.video.insert(codec.clone(), flags);
                }
            }
        }
        let default = [CapsEx::Multitrack, CapsEx::ModEx, CapsEx::NanoOffset];
        caps.caps_ex = self
            .caps_ex
            .as_deref()
            .unwrap_or(&default)
            .iter()
            .map(|c| c.bit())
            .sum();
        caps
    }
}

/// A multitrack layout a publish step re-muxes its tags into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// OneTrack: each packet as track 0.
    OneTrack,
    /// ManyTracks: each packet twice, as tracks 0 and 1 (a two-rung
    /// ladder of one picture).
    ManyTracks,
    /// ManyTracksManyCodecs: the same two tracks, each naming its codec.
    ManyCodecs,
}

/// How a `publish` step reshapes an E-FLV fixture's enhanced tags.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EflvShape {
    /// Re-mux every enhanced audio and video tag in this layout.
    #[serde(default)]
    pub multitrack: Option<Layout>,
    /// Put a TimestampOffsetNano ModEx (this many ns) in every enhanced tag.
    #[serde(default)]
    pub nano_offset: Option<u32>,
    /// After every this many enhanced video tags, send one the
    /// specification does not define, alternately a coded frame of an
    /// unknown FourCC (`zzzz`) and a reserved packet type (8).
    #[serde(default)]
    pub unknown_every: Option<u32>,
    /// Send the fixture's legacy H.264, AAC and MP3 tags as the enhanced
    /// `avc1`, `mp4a` and `.mp3` tags that say the same thing (as OBS's
    /// multitrack output does), before any other reshaping. The legacy
    /// originals count as published too: a server may give them to
    /// players that did not announce the codecs.
    #[serde(default)]
    pub enhance: bool,
    /// A second E-FLV fixture (below `fixtures/`) whose video becomes track
    /// 1 of every video message, `media`'s staying track 0: a two-rung
    /// ladder (ManyTracks, or ManyTracksManyCodecs when the codecs differ).
    /// Its enhanced video tags must come at the same times, of the same
    /// frame and packet types, as `media`'s.
    #[serde(default)]
    pub ladder: Option<String>,
    /// Send the ladder as OBS sends its tracks: `media`'s tags as they are
    /// (track 0, not multitrack) and each tag of the second rung after its
    /// twin in a OneTrack message of track 1.
    #[serde(default)]
    pub ladder_one_track: bool,
    /// A second E-FLV fixture whose audio becomes track 1 of every audio
    /// message, `media`'s staying track 0: a second language. Its enhanced
    /// audio tags must come at the same times, of the same packet types,
    /// as `media`'s.
    #[serde(default)]
    pub audio_ladder: Option<String>,
}

impl EflvShape {
    /// `tags` reshaped; a legacy tag goes as it is.
    pub fn apply(&self, tags: Vec<Tag>) -> Result<Vec<Tag>, String> {
        let mut out = Vec::with_capacity(tags.len());
        let mut video_tags = 0u32;
        for tag in tags {
            let (kind, timestamp) = (tag.kind, tag.timestamp);
            let mut enhanced = Vec::new();
            if let Some((header, packet)) = eflv::from_legacy(kind, &tag.data).filter(|_| self.enhance) {
                eflv::write(&mut enhanced, &header, &[packet]).map_err(|e| e.to_string())?;
            }
            let body = if enhanced.is_empty() { &tag.data[..] } else { &enhanced };
            let reshaped = match eflv::parse(kind, body).map_err(|e| format!("a fixture tag: {e}"))? {
                Some(parsed) => {
                    let packets: Vec<Packet> = parsed.packets().collect::<Result<_, _>>().map_err(|e| e.to_string())?;
                    let mut header = parsed.header;
                    if self.nano_offset.is_some() {
                        header.nano_offset = self.nano_offset;
                    }
                    let packets = match (self.multitrack, header.command) {
                        (Some(layout), None) => {
                            header.multitrack = Some(match layout {
                                Layout::OneTrack => Multitrack::OneTrack,
                                Layout::ManyTracks => Multitrack::ManyTracks,
                                Layout::ManyCodecs => Multitrack::ManyTracksManyCodecs,
                            });
                            match layout {
                                Layout::OneTrack => packets,
                                _ => packets.iter().flat_map(|p| [*p, Packet { track: 1, ..*p }]).collect(),
                            }
                        }
                        _ => packets,
                    };
                    let mut body = Vec::new();
                    eflv::write(&mut body, &header, &packets).map_err(|e| e.to_string())?;
                    Tag {
                        data: Bytes::from(body),
                        ..tag
                    }
                }
                None => tag,
            };
            out.push(reshaped);
            if kind == TagKind::Video && eflv::is_enhanced(kind, &out[out.len() - 1].data) {
                video_tags += 1;
                if let Some(every) = self.unknown_every.filter(|n| video_tags.checked_rem(*n) == Some(0)) {
                    let body: &[u8] = if (video_tags / every) % 2 == 1 {
                        b"\xA1zzzz\x00\x01\x02\x03"
                    } else {
                        b"\xA8av01\x00\x01\x02\x03"
                    };
                    out.push(Tag {
                        kind,
                        timestamp,
                        data: Bytes::from_static(body),
                    });
                }
            }
        }
        Ok(out)
    }
}

/// The header and first packet of an enhanced tag.
fn first_packet(tag: &Tag) -> Result<(Header, Packet<'_>), String> {
    let parsed = eflv::parse(tag.kind, &tag.data)
        .map_err(|e| e.to_string())?
        .ok_or("not enhanced")?;
    let packet = parsed.packets().next().ok_or("no packet")?.map_err(|e| e.to_string())?;
    Ok((parsed.header, packet))
}

/// `tags` with each enhanced tag of `kind` (audio or video) joined by the
/// one at the same place among `second`'s as track 1 (see
/// [`EflvShape::ladder`] and [`EflvShape::audio_ladder`]).
pub fn ladder(tags: Vec<Tag>, second: &[Tag], kind: TagKind, one_track: bool) -> Result<Vec<Tag>, String> {
    let mut rungs = second
        .iter()
        .filter(|t| t.kind == kind && eflv::is_enhanced(t.kind, &t.data));
    let mut out = Vec::with_capacity(tags.len());
    for tag in tags {
        if tag.kind != kind || !eflv::is_enhanced(tag.kind, &tag.data) {
            out.push(tag);
            continue;
        }
        let rung = rungs
            .next()
            .ok_or(format!("the ladder's second rung has fewer {kind:?} tags"))?;
        let ((mut header, first), (other, second)) = (first_packet(&tag)?, first_packet(rung)?);
        if (rung.timestamp, other.frame_type, other.packet_type)
            != (tag.timestamp, header.frame_type, header.packet_type)
        {
            return Err(format!(
                "the ladder's rungs differ at {} ms: {:?} {:?} against {} ms {:?} {:?}",
                tag.timestamp,
                header.frame_type,
                header.packet_type,
                rung.timestamp,
                other.frame_type,
                other.packet_type
            ));
        }
        let mut body = Vec::new();
        let second = Packet { track: 1, ..second };
        if one_track {
            let header = Header {
                multitrack: Some(Multitrack::OneTrack),
                ..other
            };
            eflv::write(&mut body, &header, &[second]).map_err(|e| e.to_string())?;
            out.push(tag.clone());
            out.push(Tag {
                data: Bytes::from(body),
                ..tag
            });
            continue;
        }
        header.multitrack = Some(if first.fourcc == second.fourcc {
            Multitrack::ManyTracks
        } else {
            Multitrack::ManyTracksManyCodecs
        });
        eflv::write(&mut body, &header, &[first, second]).map_err(|e| e.to_string())?;
        out.push(Tag {
            data: Bytes::from(body),
            ..tag
        });
    }
    Ok(out)
}

/// The audio and video bodies a publisher sends, by digest: each as it
/// is, each track of a multitrack message alone (as a server gives a
/// player that did not announce multitrack), and each Opus packet alone
/// (as a WebRTC player gets it, the RTP payload).
pub fn published_bodies(tags: &[Tag]) -> HashSet<u64> {
    let mut bodies = HashSet::new();
    for tag in tags.iter().filter(|t| t.kind != TagKind::Script) {
        bodies.insert(digest(&tag.data));
        let Ok(Some(parsed)) = eflv::parse(tag.kind, &tag.data) else {
            continue;
        };
        // Opus packets themselves too, as a WebRTC player gets them in RTP.
        for packet in parsed.packets().flatten() {
            if packet.fourcc == FourCc::OPUS && packet.packet_type.is_coded() {
                bodies.insert(digest(packet.data));
            }
        }
        if parsed.header.multitrack.is_none() {
            continue;
        }
        let single = Header {
            multitrack: None,
            ..parsed.header
        };
        for packet in parsed.packets().flatten() {
            let mut body = Vec::new();
            if eflv::write(&mut body, &single, &[Packet { track: 0, ..packet }]).is_ok() {
                bodies.insert(digest(&body));
            }
        }
    }
    bodies
}

/// What an RTMP player saw of Enhanced RTMP in the media it received.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// Enhanced audio and video tags.
    pub enhanced: u64,
    /// Multitrack ones among them.
    pub multitrack: u64,
    /// The FourCCs they named.
    pub fourccs: BTreeSet<String>,
    /// The codecs of the legacy tags (`h264`, `aac`, `speex`...: the names
    /// of `media::flv::VideoCodec` and `AudioCodec`).
    pub legacy: BTreeSet<&'static str>,
    /// The first body that is not one the publisher sent (when the
    /// publisher is an actor of the case): what it was.
    pub foreign: Option<String>,
    /// Bodies compared with the publisher's.
    pub compared: u64,
}

impl Seen {
    /// Notes one media message (type 8 or 9).
    pub fn media(&mut self, type_id: u8, timestamp: u32, payload: &[u8], published: Option<&HashSet<u64>>) {
        let kind = if type_id == 8 { TagKind::Audio } else { TagKind::Video };
        if let Ok(Some(tag)) = eflv::parse(kind, payload) {
            self.enhanced += 1;
            self.multitrack += u64::from(tag.header.multitrack.is_some());
            for packet in tag.packets().flatten() {
                if self.fourccs.len() < 32 {
                    self.fourccs.insert(packet.fourcc.to_string());
                }
            }
        } else {
            let codec = match kind {
                TagKind::Audio => media::flv::audio_header(payload).map(|h| h.codec.name()),
                _ => media::flv::video_header(payload).map(|h| h.codec.name()),
            };
            self.legacy.extend(codec);
        }
        if let Some(published) = published {
            self.compared += 1;
            if self.foreign.is_none() && !published.contains(&digest(payload)) {
                let head: Vec<String> = payload.iter().take(12).map(|b| format!("{b:02x}")).collect();
                self.foreign = Some(format!(
                    "{} message at {timestamp} ms of {} bytes that the publisher did not send ({}…)",
                    if type_id == 8 { "an audio" } else { "a video" },
                    payload.len(),
                    head.join(" ")
                ));
            }
        }
    }
}

/// What the server's `_result` to connect must state (Enhanced RTMP v2:
/// "The server SHOULD state its support via attributes such as
/// videoFourCcInfoMap, capsEx, and similar properties").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerAnnounces {
    /// FourCCs it must say it can decode or forward.
    #[serde(default)]
    pub takes: Vec<String>,
    /// Extended capabilities it must state.
    #[serde(default)]
    pub caps_ex: Vec<CapsEx>,
}

impl ServerAnnounces {
    /// Checks the `_result`'s properties object.
    pub fn check(&self, properties: Option<&Value>) -> Result<(), String> {
        let Some(properties) = properties else {
            return Err("no answer to connect".into());
        };
        let Some(caps) = Capabilities::from_object(properties) else {
            return Err(
                "a _result whose properties name none of fourCcList, videoFourCcInfoMap, audioFourCcInfoMap \
                 and capsEx: a legacy answer"
                    .into(),
            );
        };
        let missing: Vec<&str> = self
            .takes
            .iter()
            .filter(|codec| {
                let Some(fourcc) = FourCc::parse(codec) else {
                    return true;
                };
                let kind = if FourCc::AUDIO.contains(&fourcc) {
                    TagKind::Audio
                } else {
                    TagKind::Video
                };
                !caps.takes(kind, fourcc)
            })
            .map(String::as_str)
            .collect();
        let caps_missing: Vec<String> = self
            .caps_ex
            .iter()
            .filter(|c| !caps.has(c.bit()))
            .map(|c| format!("{c:?}"))
            .collect();
        match (missing.is_empty(), caps_missing.is_empty()) {
            (true, true) => Ok(()),
            _ => Err(format!(
                "a _result stating {} (capsEx {}), without {}{}",
                describe(&caps),
                caps.caps_ex,
                missing.join(", "),
                if caps_missing.is_empty() {
                    String::new()
                } else {
                    format!(" capsEx {}", caps_missing.join(", "))
                }
            )),
        }
    }

    /// In words.
    pub fn describe(&self) -> String {
        let mut parts = vec!["a _result stating the server's Enhanced RTMP support".to_string()];
        if !self.takes.is_empty() {
            parts.push(format!("taking {}", self.takes.join(", ")));
        }
        if !self.caps_ex.is_empty() {
            let names: Vec<String> = self.caps_ex.iter().map(|c| format!("{c:?}")).collect();
            parts.push(format!("with capsEx {}", names.join(", ")));
        }
        parts.join(", ")
    }
}

fn describe(caps: &Capabilities) -> String {
    let map = |m: &std::collections::BTreeMap<String, u32>| {
        m.iter().map(|(k, v)| format!("{k}:{v}")).collect::<Vec<_>>().join(" ")
    };
    format!(
        "fourCcList [{}], videoFourCcInfoMap {{{}}}, audioFourCcInfoMap {{{}}}",
        caps.list.join(" "),
        map(&caps.video),
        map(&caps.audio)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use media::eflv::PacketType;

    fn av1(data: &'static [u8]) -> Tag {
        Tag {
            kind: TagKind::Video,
            timestamp: 40,
            data: Bytes::from_static(data),
        }
    }

    #[test]
    fn the_default_announce_covers_every_codec_in_the_maps() {
        let caps = Announce::default().capabilities();
        assert!(caps.list.is_empty());
        assert_eq!(caps.video.len(), 6);
        assert_eq!(caps.audio.len(), 6);
        assert!(caps.has(caps_ex::MULTITRACK | caps_ex::MOD_EX) && !caps.has(caps_ex::RECONNECT));
        let v1 = Announce {
            codecs: Some(vec!["av01".into()]),
            form: AnnounceForm::List,
            caps_ex: Some(vec![]),
        };
        assert_eq!(v1.capabilities().to_properties().len(), 1, "fourCcList alone");
    }

    #[test]
    fn a_many_tracks_reshape_is_published_whole_and_track_by_track() {
        let shape = EflvShape {
            multitrack: Some(Layout::ManyTracks),
            nano_offset: Some(500),
            unknown_every: Some(1),
            enhance: true,
            ladder: None,
            ladder_one_track: false,
            audio_ladder: None,
        };
        let legacy_h264 = Tag {
            kind: TagKind::Video,
            timestamp: 40,
            data: Bytes::from_static(&[0x27, 1, 0, 0, 0, 0, 0, 0, 1, 0x41]),
        };
        let enhanced = shape.apply(vec![legacy_h264]).unwrap();
        let parsed = eflv::parse(TagKind::Video, &enhanced[0].data).unwrap().unwrap();
        let packet = parsed.packets().next().unwrap().unwrap();
        assert_eq!(
            (packet.fourcc, packet.packet_type, packet.data),
            (FourCc::AVC, PacketType::CodedFramesX, &[0, 0, 0, 1, 0x41][..]),
            "enhance: the legacy H.264 tag as avc1"
        );
        let tags = shape.apply(vec![av1(b"\xA1av01\x12\x00")]).unwrap();
        assert_eq!(tags.len(), 2, "the tag, then one of an unknown codec");
        let parsed = eflv::parse(TagKind::Video, &tags[0].data).unwrap().unwrap();
        assert_eq!(parsed.header.multitrack, Some(Multitrack::ManyTracks));
        assert_eq!(parsed.header.nano_offset, Some(500));
        assert_eq!(parsed.packets().count(), 2);
        let bodies = published_bodies(&tags);
        // Whole, the unknown one, and track 0 alone (track 1 alone is the same body).
        assert_eq!(bodies.len(), 3);
        let mut seen = Seen::default();
        seen.media(9, 40, &tags[0].data, Some(&bodies));
        seen.media(9, 40, b"\xA1av01\x12\x00", Some(&bodies));
        assert_eq!((seen.enhanced, seen.multitrack), (2, 1));
        assert!(
            seen.foreign.as_deref().unwrap().contains("did not send"),
            "without the ModEx, not published"
        );
    }
}
