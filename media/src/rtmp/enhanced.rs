//! Enhanced RTMP v2, "Enhancing NetConnection connect Command": the codecs
//! and extended capabilities a client announces in its connect object, and
//! the same properties in the server's `_result` ("The server SHOULD state
//! its support via attributes such as videoFourCcInfoMap, capsEx, and
//! similar properties").
//!
//! A client says what it takes in two ways: v1's `fourCcList`, a strict
//! array of FourCCs (audio and video together), and v2's
//! `videoFourCcInfoMap` and `audioFourCcInfoMap`, objects from FourCC to
//! [`info`] flags, where the key `"*"` stands for every codec. The
//! specification recommends servers read both.

use std::collections::BTreeMap;

use crate::amf::Value;
use crate::eflv::FourCc;
use crate::flv::TagKind;

/// FourCcInfoMask: what a party can do with a codec.
pub mod info {
    /// It can decode the codec.
    pub const CAN_DECODE: u32 = 0x01;
    /// It can encode the codec.
    pub const CAN_ENCODE: u32 = 0x02;
    /// It can forward the codec without decoding it.
    pub const CAN_FORWARD: u32 = 0x04;
}

/// CapsExMask: extended capabilities.
pub mod caps_ex {
    /// It handles `NetConnection.Connect.ReconnectRequest`.
    pub const RECONNECT: u32 = 0x01;
    /// It handles multitrack messages.
    pub const MULTITRACK: u32 = 0x02;
    /// It parses the ModEx signal.
    pub const MOD_EX: u32 = 0x04;
    /// It handles the nanosecond timestamp offset.
    pub const TIMESTAMP_NANO_OFFSET: u32 = 0x08;
}

/// The wildcard key: every codec.
pub const ANY: &str = "*";

/// Most entries kept from one list or map of a peer's connect: the
/// specification defines twelve FourCCs, and a hostile connect must not
/// make the server keep more than a few.
const MAX_ENTRIES: usize = 64;

/// What one side of a connection announces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// v1's `fourCcList`: FourCCs (or `"*"`), audio and video together.
    pub list: Vec<String>,
    /// `videoFourCcInfoMap`: FourCC (or `"*"`) to [`info`] flags.
    pub video: BTreeMap<String, u32>,
    /// `audioFourCcInfoMap`.
    pub audio: BTreeMap<String, u32>,
    /// `capsEx`: [`caps_ex`] flags.
    pub caps_ex: u32,
}

impl Capabilities {
    /// What a connect object (or a `_result`'s properties) announces;
    /// `None` when it names none of the four properties: a legacy peer.
    pub fn from_object(object: &Value) -> Option<Capabilities> {
        let list = object.get("fourCcList");
        let video = object.get("videoFourCcInfoMap");
        let audio = object.get("audioFourCcInfoMap");
        let caps = object.get("capsEx");
        if list.is_none() && video.is_none() && audio.is_none() && caps.is_none() {
            return None;
        }
        let list = match list {
            Some(Value::StrictArray(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .take(MAX_ENTRIES)
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        };
        let map = |value: Option<&Value>| -> BTreeMap<String, u32> {
            value
                .and_then(Value::properties)
                .unwrap_or_default()
                .iter()
                .filter_map(|(key, flags)| Some((key.clone(), flags.as_f64()? as u32)))
                .take(MAX_ENTRIES)
                .collect()
        };
        Some(Capabilities {
            list,
            video: map(video),
            audio: map(audio),
            caps_ex: caps.and_then(Value::as_f64).map_or(0, |n| n as u32),
        })
    }

    /// The properties that announce these capabilities, for a connect
    /// object or a `_result`: each of the four that is not empty.
    pub fn to_properties(&self) -> Vec<(String, Value)> {
        let mut properties = Vec::new();
        if !self.list.is_empty() {
            let list = self.list.iter().map(|f| Value::from(f.as_str())).collect();
            properties.push(("fourCcList".to_string(), Value::StrictArray(list)));
        }
        let map = |map: &BTreeMap<String, u32>| Value::Object {
            class_name: None,
            properties: map
                .iter()
                .map(|(k, v)| (k.clone(), Value::Number(f64::from(*v))))
                .collect(),
        };
        if !self.video.is_empty() {
            properties.push(("videoFourCcInfoMap".to_string(), map(&self.video)));
        }
        if !self.audio.is_empty() {
            properties.push(("audioFourCcInfoMap".to_string(), map(&self.audio)));
        }
        if self.caps_ex != 0 {
            properties.push(("capsEx".to_string(), Value::Number(f64::from(self.caps_ex))));
        }
        properties
    }

    /// The [`info`] flags these capabilities give a codec of `kind`: its
    /// own entry and the wildcard's, or, from `fourCcList`, decode and
    /// forward for a listed one.
    pub fn flags(&self, kind: TagKind, fourcc: FourCc) -> u32 {
        let name = fourcc.to_string();
        let map = match kind {
            TagKind::Audio => &self.audio,
            _ => &self.video,
        };
        let mut flags = map.get(&name).copied().unwrap_or(0) | map.get(ANY).copied().unwrap_or(0);
        if self.list.iter().any(|f| *f == name || f == ANY) {
            flags |= info::CAN_DECODE | info::CAN_FORWARD;
        }
        flags
    }

    /// Whether a peer with these capabilities takes an enhanced tag of
    /// this codec: it can decode or forward it.
    pub fn takes(&self, kind: TagKind, fourcc: FourCc) -> bool {
        self.flags(kind, fourcc) & (info::CAN_DECODE | info::CAN_FORWARD) != 0
    }

    /// Whether the [`caps_ex`] flag `flag` is announced.
    pub fn has(&self, flag: u32) -> bool {
        self.caps_ex & flag == flag
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(properties: Vec<(String, Value)>) -> Value {
        Value::Object {
            class_name: None,
            properties,
        }
    }

    #[test]
    fn a_legacy_connect_announces_nothing() {
        let legacy = Value::object([("app", Value::from("live")), ("videoCodecs", Value::Number(252.0))]);
        assert_eq!(Capabilities::from_object(&legacy), None);
    }

    #[test]
    fn v2_maps_with_a_wildcard_and_caps_ex_round_trip() {
        let mut caps = Capabilities::default();
        caps.video.insert(ANY.into(), info::CAN_FORWARD);
        caps.video.insert("vp09".into(), info::CAN_DECODE | info::CAN_ENCODE);
        caps.audio.insert("Opus".into(), info::CAN_DECODE);
        caps.caps_ex = caps_ex::RECONNECT | caps_ex::MULTITRACK;
        let back = Capabilities::from_object(&object(caps.to_properties())).unwrap();
        assert_eq!(back, caps);
        assert!(
            back.takes(TagKind::Video, FourCc::HEVC),
            "the wildcard forwards any video"
        );
        assert_eq!(back.flags(TagKind::Video, FourCc::VP9), 0x07);
        assert!(back.takes(TagKind::Audio, FourCc::OPUS));
        assert!(!back.takes(TagKind::Audio, FourCc::FLAC));
        assert!(back.has(caps_ex::MULTITRACK) && !back.has(caps_ex::MOD_EX));
    }

    #[test]
    fn a_v1_list_covers_audio_and_video() {
        let connect = object(vec![(
            "fourCcList".into(),
            Value::StrictArray(vec![Value::from("av01"), Value::from("Opus"), Value::Number(3.0)]),
        )]);
        let caps = Capabilities::from_object(&connect).unwrap();
        assert_eq!(caps.list, ["av01", "Opus"]);
        assert!(caps.takes(TagKind::Video, FourCc::AV1) && caps.takes(TagKind::Audio, FourCc::OPUS));
        assert!(!caps.takes(TagKind::Video, FourCc::HEVC));
    }

    #[test]
    fn a_hostile_list_is_kept_short() {
        let long = Value::StrictArray((0..10_000).map(|i| Value::from(format!("c{i:03}"))).collect());
        let caps = Capabilities::from_object(&object(vec![("fourCcList".into(), long)])).unwrap();
        assert_eq!(caps.list.len(), MAX_ENTRIES);
    }
}
