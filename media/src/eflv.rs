//! Enhanced FLV tag bodies (Enhanced RTMP v2, sections "Enhanced Audio" and
//! "Enhanced Video"): the ExAudioTagHeader and ExVideoTagHeader that name a
//! codec by FourCC, and the packets after them.
//!
//! An enhanced tag is flagged by its first byte: SoundFormat 9 (`ExHeader`)
//! in an audio tag, the top bit (`IsExHeader`) in a video tag. The rest of
//! that byte is the packet type, which may be preceded by any number of
//! ModEx blocks (one of them a nanosecond timestamp offset) and may switch
//! the message into multitrack mode, where one message carries a packet per
//! track, each with its track id (and, in the third form, its own codec).
//! Both sections of the specification say a message "MUST be processed
//! completely", and that anything not recognised MUST fail "in a controlled
//! and predictable manner": [`Tag::packets`] walks every packet, and every
//! malformed or reserved field is an [`EflvError`], never a panic.
//!
//! [`write`] is the inverse, for the suite's E-FLV muxer and for the server
//! when it takes one track out of a multitrack message.

use std::fmt;

use crate::flv::TagKind;

/// A codec's four-character code, as the tags and `connect` name it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FourCc(pub [u8; 4]);

impl FourCc {
    /// H.264 (`avc1`).
    pub const AVC: FourCc = FourCc(*b"avc1");
    /// HEVC (`hvc1`).
    pub const HEVC: FourCc = FourCc(*b"hvc1");
    /// AV1 (`av01`).
    pub const AV1: FourCc = FourCc(*b"av01");
    /// VP9 (`vp09`).
    pub const VP9: FourCc = FourCc(*b"vp09");
    /// VP8 (`vp08`).
    pub const VP8: FourCc = FourCc(*b"vp08");
    /// VVC (`vvc1`).
    pub const VVC: FourCc = FourCc(*b"vvc1");
    /// Opus (`Opus`).
    pub const OPUS: FourCc = FourCc(*b"Opus");
    /// AAC (`mp4a`).
    pub const AAC: FourCc = FourCc(*b"mp4a");
    /// MP3 (`.mp3`).
    pub const MP3: FourCc = FourCc(*b".mp3");
    /// FLAC (`fLaC`).
    pub const FLAC: FourCc = FourCc(*b"fLaC");
    /// AC-3 (`ac-3`).
    pub const AC3: FourCc = FourCc(*b"ac-3");
    /// E-AC-3 (`ec-3`).
    pub const EAC3: FourCc = FourCc(*b"ec-3");

    /// The video FourCCs the specification defines.
    pub const VIDEO: [FourCc; 6] = [
        FourCc::AVC,
        FourCc::HEVC,
        FourCc::AV1,
        FourCc::VP9,
        FourCc::VP8,
        FourCc::VVC,
    ];
    /// The audio FourCCs the specification defines.
    pub const AUDIO: [FourCc; 6] = [
        FourCc::OPUS,
        FourCc::AAC,
        FourCc::MP3,
        FourCc::FLAC,
        FourCc::AC3,
        FourCc::EAC3,
    ];

    /// A FourCC from its text; `None` unless it is four bytes.
    pub fn parse(text: &str) -> Option<FourCc> {
        text.as_bytes().try_into().ok().map(FourCc)
    }

    /// Whether a coded frame of this codec starts with a composition time
    /// offset (SI24): the NAL-unit codecs.
    pub fn has_composition_offset(self) -> bool {
        matches!(self, FourCc::AVC | FourCc::HEVC | FourCc::VVC)
    }
}

impl fmt::Display for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
            // Printable ASCII is UTF-8.
            f.write_str(std::str::from_utf8(&self.0).unwrap_or("????"))
        } else {
            write!(f, "0x{:08x}", u32::from_be_bytes(self.0))
        }
    }
}

impl fmt::Debug for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FourCc({self})")
    }
}

/// What a packet holds (VideoPacketType and AudioPacketType, less the two
/// values that are not packets: Multitrack and ModEx).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// The decoder configuration record.
    SequenceStart,
    /// Coded frames; for the NAL-unit codecs with a composition time offset.
    CodedFrames,
    /// The end of the sequence (for audio: at least a silence message).
    SequenceEnd,
    /// Video: coded frames whose composition time offset is zero and left out.
    CodedFramesX,
    /// Video: an AMF-encoded metadata object (`colorInfo`).
    Metadata,
    /// Video: an AV1 video descriptor for MPEG-2 TS.
    Mpeg2TsSequenceStart,
    /// Audio: the channel order and count.
    MultichannelConfig,
}

impl PacketType {
    /// Its value in the tag's packet type nibble.
    pub fn value(self) -> u8 {
        match self {
            PacketType::SequenceStart => 0,
            PacketType::CodedFrames => 1,
            PacketType::SequenceEnd => 2,
            PacketType::CodedFramesX => 3,
            PacketType::Metadata | PacketType::MultichannelConfig => 4,
            PacketType::Mpeg2TsSequenceStart => 5,
        }
    }

    /// Whether it carries pictures or sound.
    pub fn is_coded(self) -> bool {
        matches!(self, PacketType::CodedFrames | PacketType::CodedFramesX)
    }
}

/// Multitrack: the packet type value that switches it on, and ModEx.
const VIDEO_MULTITRACK: u8 = 6;
const AUDIO_MULTITRACK: u8 = 5;
const MOD_EX: u8 = 7;
/// The ModEx type of a nanosecond timestamp offset.
const TIMESTAMP_OFFSET_NANO: u8 = 0;
/// VideoFrameType 5: a video info or command frame.
const COMMAND_FRAME: u8 = 5;
/// SoundFormat 9: `ExHeader`.
const AUDIO_EX_HEADER: u8 = 9;

/// How a multitrack message lays out its tracks (AvMultitrackType).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Multitrack {
    /// One track, named by its track id.
    OneTrack,
    /// Several tracks of one codec, each with its size.
    ManyTracks,
    /// Several tracks, each with its own codec and size.
    ManyTracksManyCodecs,
}

impl Multitrack {
    fn value(self) -> u8 {
        match self {
            Multitrack::OneTrack => 0,
            Multitrack::ManyTracks => 1,
            Multitrack::ManyTracksManyCodecs => 2,
        }
    }
}

/// Why an enhanced tag body cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EflvError {
    /// The body ends inside a field.
    #[error("the tag ends inside its {0}")]
    Truncated(&'static str),
    /// A packet type the specification reserves.
    #[error("{kind:?} packet type {value} is reserved")]
    ReservedPacketType {
        /// Audio or video.
        kind: TagKind,
        /// The value.
        value: u8,
    },
    /// A multitrack type the specification reserves.
    #[error("multitrack type {0} is reserved")]
    ReservedMultitrack(u8),
    /// A multitrack message whose tracks' packet type is Multitrack or ModEx again.
    #[error("a multitrack message gives its tracks packet type {0}")]
    NestedMultitrack(u8),
    /// A TimestampOffsetNano ModEx shorter than the 3 bytes it MUST have.
    #[error("TimestampOffsetNano holds {0} bytes, fewer than 3")]
    ShortNanoOffset(usize),
    /// A track says it is longer than what is left of the message.
    #[error("track {track} is {size} bytes but {left} are left")]
    TrackOverrun {
        /// Its track id.
        track: u8,
        /// The size it gives.
        size: usize,
        /// The bytes after its size field.
        left: usize,
    },
    /// [`write`] was given packets that one message cannot hold together.
    #[error("cannot write these packets in one message: {0}")]
    Unwritable(&'static str),
    /// A SequenceStart whose decoder configuration record cannot be read.
    #[error("a {codec} configuration record that cannot be read: {what}")]
    BadRecord {
        /// The codec (`hevc`, `av1`).
        codec: &'static str,
        /// What is wrong with it.
        what: &'static str,
    },
    /// A coded frame that cannot be framed for a decoder.
    #[error("a {codec} frame that cannot be framed: {what}")]
    BadFrame {
        /// The codec.
        codec: &'static str,
        /// What is wrong with it.
        what: &'static str,
    },
}

/// What the header of an enhanced tag says, for every packet in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Audio or video.
    pub kind: TagKind,
    /// Video: VideoFrameType (1 key, 2 inter, 3 disposable, 4 generated
    /// key, 5 command). Audio: 0.
    pub frame_type: u8,
    /// The packet type of every packet in the message.
    pub packet_type: PacketType,
    /// A TimestampOffsetNano ModEx: nanoseconds to add to the message's
    /// millisecond timestamp.
    pub nano_offset: Option<u32>,
    /// The multitrack layout, if the message is multitrack.
    pub multitrack: Option<Multitrack>,
    /// Video command frames: the VideoCommand (0 StartSeek, 1 EndSeek);
    /// such a message has no packets.
    pub command: Option<u8>,
}

impl Header {
    /// The header of a message that is neither multitrack nor a command
    /// and has no ModEx.
    pub fn single(kind: TagKind, frame_type: u8, packet_type: PacketType) -> Header {
        Header {
            kind,
            frame_type,
            packet_type,
            nano_offset: None,
            multitrack: None,
            command: None,
        }
    }

    /// A video keyframe (frame type 1, or 4, generated by a server).
    pub fn is_keyframe(&self) -> bool {
        self.kind == TagKind::Video && matches!(self.frame_type, 1 | 4)
    }
}

/// An enhanced tag body, read as far as its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag<'a> {
    /// The header.
    pub header: Header,
    /// The codec of every packet, except in ManyTracksManyCodecs messages.
    fourcc: Option<FourCc>,
    /// The bytes after the header.
    rest: &'a [u8],
}

/// One packet of an enhanced tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Its track (0 in a message that is not multitrack).
    pub track: u8,
    /// Its codec.
    pub fourcc: FourCc,
    /// What it holds (the message's packet type).
    pub packet_type: PacketType,
    /// Presentation minus decode time, ms (NAL-unit codecs' CodedFrames).
    pub composition_offset: i32,
    /// The codec's bytes: a configuration record, coded frames, metadata.
    pub data: &'a [u8],
}

/// Whether a tag body of `kind` uses the enhanced header.
pub fn is_enhanced(kind: TagKind, body: &[u8]) -> bool {
    match (kind, body.first()) {
        (TagKind::Video, Some(first)) => first & 0x80 != 0,
        (TagKind::Audio, Some(first)) => first >> 4 == AUDIO_EX_HEADER,
        _ => false,
    }
}

/// A cursor over a tag body.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], EflvError> {
        if self.bytes.len() < n {
            return Err(EflvError::Truncated(what));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, EflvError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, EflvError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u24(&mut self, what: &'static str) -> Result<u32, EflvError> {
        let b = self.take(3, what)?;
        Ok(u32::from_be_bytes([0, b[0], b[1], b[2]]))
    }

    fn fourcc(&mut self) -> Result<FourCc, EflvError> {
        let b = self.take(4, "FourCC")?;
        Ok(FourCc([b[0], b[1], b[2], b[3]]))
    }
}

/// The packet type a nibble names in a tag of `kind`; `Ok(None)` for
/// Multitrack and ModEx, which are not packets.
fn packet_type(kind: TagKind, value: u8) -> Result<Option<PacketType>, EflvError> {
    let reserved = Err(EflvError::ReservedPacketType { kind, value });
    Ok(Some(match (kind, value) {
        (_, 0) => PacketType::SequenceStart,
        (_, 1) => PacketType::CodedFrames,
        (_, 2) => PacketType::SequenceEnd,
        (_, MOD_EX) => return Ok(None),
        (TagKind::Video, 3) => PacketType::CodedFramesX,
        (TagKind::Video, 4) => PacketType::Metadata,
        (TagKind::Video, 5) => PacketType::Mpeg2TsSequenceStart,
        (TagKind::Video, VIDEO_MULTITRACK) => return Ok(None),
        (TagKind::Audio, 4) => PacketType::MultichannelConfig,
        (TagKind::Audio, AUDIO_MULTITRACK) => return Ok(None),
        _ => return reserved,
    }))
}

fn multitrack_value(kind: TagKind) -> u8 {
    if kind == TagKind::Audio {
        AUDIO_MULTITRACK
    } else {
        VIDEO_MULTITRACK
    }
}

/// Reads the header of an enhanced tag body; `Ok(None)` for a legacy body
/// (or an empty one, or a script tag).
pub fn parse(kind: TagKind, body: &[u8]) -> Result<Option<Tag<'_>>, EflvError> {
    if !is_enhanced(kind, body) {
        return Ok(None);
    }
    let mut r = Reader { bytes: body };
    let first = r.u8("header")?;
    let frame_type = if kind == TagKind::Video { (first >> 4) & 0x07 } else { 0 };
    let mut value = first & 0x0F;
    let mut nano_offset = None;
    while value == MOD_EX {
        let mut size = usize::from(r.u8("ModEx size")?) + 1;
        if size == 256 {
            size = usize::from(r.u16("ModEx size")?) + 1;
        }
        let data = r.take(size, "ModEx data")?;
        let types = r.u8("ModEx type")?;
        if types >> 4 == TIMESTAMP_OFFSET_NANO {
            if data.len() < 3 {
                return Err(EflvError::ShortNanoOffset(data.len()));
            }
            nano_offset = Some(u32::from_be_bytes([0, data[0], data[1], data[2]]));
        }
        // Other ModEx types are not defined yet: their data is skipped.
        value = types & 0x0F;
    }
    let mut multitrack = None;
    let mut fourcc = None;
    let mut command = None;
    let packet_type = match packet_type(kind, value)? {
        // A command frame carries a VideoCommand and no packets, unless its
        // packet type is Metadata.
        packet if kind == TagKind::Video && frame_type == COMMAND_FRAME && packet != Some(PacketType::Metadata) => {
            command = Some(r.u8("video command")?);
            packet.unwrap_or(PacketType::CodedFrames)
        }
        Some(packet) => {
            fourcc = Some(r.fourcc()?);
            packet
        }
        // The ModEx loop leaves only Multitrack.
        None => {
            let both = r.u8("multitrack type")?;
            let layout = match both >> 4 {
                0 => Multitrack::OneTrack,
                1 => Multitrack::ManyTracks,
                2 => Multitrack::ManyTracksManyCodecs,
                other => return Err(EflvError::ReservedMultitrack(other)),
            };
            let inner = both & 0x0F;
            let Some(packet) = packet_type(kind, inner)? else {
                return Err(EflvError::NestedMultitrack(inner));
            };
            if layout != Multitrack::ManyTracksManyCodecs {
                fourcc = Some(r.fourcc()?);
            }
            multitrack = Some(layout);
            packet
        }
    };
    Ok(Some(Tag {
        header: Header {
            kind,
            frame_type,
            packet_type,
            nano_offset,
            multitrack,
            command,
        },
        fourcc,
        rest: r.bytes,
    }))
}

impl<'a> Tag<'a> {
    /// Every packet of the message, in order; an error ends them.
    pub fn packets(&self) -> Packets<'a> {
        Packets {
            tag: *self,
            rest: self.rest,
            done: self.header.command.is_some(),
        }
    }

    /// The message's first packet (for a message that is not multitrack,
    /// its only one).
    pub fn first(&self) -> Option<Result<Packet<'a>, EflvError>> {
        self.packets().next()
    }
}

/// The packets of a [`Tag`].
#[derive(Debug, Clone)]
pub struct Packets<'a> {
    tag: Tag<'a>,
    rest: &'a [u8],
    done: bool,
}

impl<'a> Packets<'a> {
    fn read(&mut self) -> Result<Packet<'a>, EflvError> {
        let header = self.tag.header;
        let mut r = Reader { bytes: self.rest };
        let (track, fourcc, mut data) = match header.multitrack {
            None => {
                self.done = true;
                (0, self.tag.fourcc, r.take(r.bytes.len(), "packet")?)
            }
            Some(layout) => {
                let fourcc = match layout {
                    Multitrack::ManyTracksManyCodecs => Some(r.fourcc()?),
                    _ => self.tag.fourcc,
                };
                let track = r.u8("track id")?;
                let data = if layout == Multitrack::OneTrack {
                    self.done = true;
                    r.take(r.bytes.len(), "packet")?
                } else {
                    let size = r.u24("track size")? as usize;
                    let left = r.bytes.len();
                    r.take(size, "track")
                        .map_err(|_| EflvError::TrackOverrun { track, size, left })?
                };
                (track, fourcc, data)
            }
        };
        self.rest = r.bytes;
        if self.rest.is_empty() {
            self.done = true;
        }
        // A tag always has a FourCC unless it is a command (which has no packets).
        let fourcc = fourcc.ok_or(EflvError::Truncated("FourCC"))?;
        let mut composition_offset = 0;
        if header.packet_type == PacketType::CodedFrames && fourcc.has_composition_offset() {
            let mut p = Reader { bytes: data };
            let raw = p.u24("composition time offset")?;
            composition_offset = ((raw << 8) as i32) >> 8;
            data = p.bytes;
        }
        Ok(Packet {
            track,
            fourcc,
            packet_type: header.packet_type,
            composition_offset,
            data,
        })
    }
}

impl<'a> Iterator for Packets<'a> {
    type Item = Result<Packet<'a>, EflvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let packet = self.read();
        if packet.is_err() {
            self.done = true;
        }
        Some(packet)
    }
}

/// A legacy H.264, AAC or MP3 tag body as the header and the one packet of
/// the enhanced message that says the same thing (`avc1`, `mp4a`, `.mp3`):
/// what an Enhanced RTMP publisher sends for those codecs. A picture
/// without a composition offset becomes CodedFramesX. `None` for another
/// codec or a body cut short. [`write_legacy`] is its inverse.
pub fn from_legacy(kind: TagKind, body: &[u8]) -> Option<(Header, Packet<'_>)> {
    let header = |frame_type, packet_type| Header::single(kind, frame_type, packet_type);
    let packet = |fourcc, packet_type, composition_offset, data| Packet {
        track: 0,
        fourcc,
        packet_type,
        composition_offset,
        data,
    };
    let first = *body.first()?;
    match kind {
        TagKind::Video if first & 0x0f == 7 && first & 0x80 == 0 => {
            let cts = i32::from_be_bytes([0, *body.get(2)?, *body.get(3)?, *body.get(4)?]) << 8 >> 8;
            let packet_type = match (body[1], cts) {
                (0, _) => PacketType::SequenceStart,
                (1, 0) => PacketType::CodedFramesX,
                (1, _) => PacketType::CodedFrames,
                (2, _) => PacketType::SequenceEnd,
                _ => return None,
            };
            Some((
                header(first >> 4, packet_type),
                packet(FourCc::AVC, packet_type, cts, &body[5..]),
            ))
        }
        TagKind::Audio if first >> 4 == 10 => {
            let packet_type = match *body.get(1)? {
                0 => PacketType::SequenceStart,
                1 => PacketType::CodedFrames,
                _ => return None,
            };
            Some((header(0, packet_type), packet(FourCc::AAC, packet_type, 0, &body[2..])))
        }
        TagKind::Audio if first >> 4 == 2 => Some((
            header(0, PacketType::CodedFrames),
            packet(FourCc::MP3, PacketType::CodedFrames, 0, &body[1..]),
        )),
        _ => None,
    }
}

/// Appends `packet`, of a message with `header`, to `out` as the legacy
/// tag body that says the same thing, for a player that reads only legacy
/// tags; false (nothing appended) when no legacy tag can. Only the codecs
/// legacy FLV has can: H.264 (`avc1`: its SequenceStart, CodedFrames,
/// CodedFramesX and SequenceEnd become the AVCVIDEOPACKET's sequence
/// header, NAL units and end of sequence, with the composition offset),
/// AAC (`mp4a`: AudioSpecificConfig or raw frames, SoundFormat 10 with
/// the fixed 44 kHz stereo 16-bit flags AAC tags carry) and MP3 (`.mp3`:
/// frames, SoundFormat 2). A nanosecond offset has no legacy place and is
/// dropped.
pub fn write_legacy(out: &mut Vec<u8>, header: &Header, packet: &Packet<'_>) -> bool {
    let video = header.kind == TagKind::Video;
    let (first, second) = match (packet.fourcc, packet.packet_type) {
        (FourCc::AVC, kind) if video => {
            let frame_type = header.frame_type.clamp(1, 4);
            let avc_packet_type = match kind {
                PacketType::SequenceStart => 0,
                PacketType::CodedFrames | PacketType::CodedFramesX => 1,
                PacketType::SequenceEnd => 2,
                _ => return false,
            };
            let cts = match kind {
                PacketType::CodedFrames => packet.composition_offset,
                _ => 0,
            };
            out.push(frame_type << 4 | 7);
            out.push(avc_packet_type);
            out.extend_from_slice(&cts.to_be_bytes()[1..]);
            out.extend_from_slice(packet.data);
            return true;
        }
        _ if video || header.kind != TagKind::Audio => return false,
        (FourCc::AAC, PacketType::SequenceStart) => (0xAF, Some(0)),
        (FourCc::AAC, PacketType::CodedFrames) => (0xAF, Some(1)),
        (FourCc::MP3, PacketType::CodedFrames) => (mp3_flags(packet.data), None),
        _ => return false,
    };
    out.push(first);
    out.extend(second);
    out.extend_from_slice(packet.data);
    true
}

/// The first byte of a legacy MP3 tag for `frames`: SoundFormat 2 (14 at
/// 8 kHz), with the rate and channel flags its first frame header gives
/// (the nearest FLV rate: 44, 22 or 11 kHz), 16-bit.
fn mp3_flags(frames: &[u8]) -> u8 {
    let [0xFF, b1, b2, b3, ..] = *frames else {
        return 0x2F;
    };
    // MPEG version (3: 1, 2: 2, 0: 2.5) and sample rate index.
    let (version, index) = ((b1 >> 3) & 3, (b2 >> 2) & 3);
    let stereo = u8::from(b3 >> 6 != 3);
    let (format, rate) = match (version, index) {
        (0, 2) => (14, 0), // 8 kHz
        (3, _) => (2, 3),  // 44.1, 48, 32 kHz
        (2, _) => (2, 2),  // 22.05, 24, 16 kHz
        _ => (2, 1),       // 11.025, 12 kHz
    };
    format << 4 | rate << 2 | 1 << 1 | stereo
}

/// Appends an enhanced tag body holding `packets` to `out`, laid out as
/// `header` says (its `packet_type` and `command` are taken from it; every
/// packet must have the header's packet type). A message that is not
/// multitrack, or is OneTrack, holds one packet; ManyTracks holds packets
/// of one codec.
pub fn write(out: &mut Vec<u8>, header: &Header, packets: &[Packet<'_>]) -> Result<(), EflvError> {
    let kind = header.kind;
    if kind == TagKind::Script {
        return Err(EflvError::Unwritable("a script tag has no enhanced header"));
    }
    if packets.iter().any(|p| p.packet_type != header.packet_type) {
        return Err(EflvError::Unwritable("packets of different packet types"));
    }
    let first_nibble = if kind == TagKind::Video {
        0x80 | (header.frame_type & 0x07) << 4
    } else {
        AUDIO_EX_HEADER << 4
    };
    let packet_value = header.packet_type.value();
    let leading = match header.multitrack {
        Some(_) if header.command.is_none() => multitrack_value(kind),
        _ => packet_value,
    };
    if let Some(nanos) = header.nano_offset {
        out.push(first_nibble | MOD_EX);
        out.push(2); // three bytes of data
        out.extend_from_slice(&nanos.min(0xFF_FFFF).to_be_bytes()[1..]);
        out.push(TIMESTAMP_OFFSET_NANO << 4 | leading);
    } else {
        out.push(first_nibble | leading);
    }
    if let Some(command) = header.command {
        if !packets.is_empty() || kind != TagKind::Video {
            return Err(EflvError::Unwritable("a command frame has no packets"));
        }
        out.push(command);
        return Ok(());
    }
    let Some(first) = packets.first() else {
        return Err(EflvError::Unwritable("no packets"));
    };
    let body = |out: &mut Vec<u8>, packet: &Packet<'_>| {
        if packet.packet_type == PacketType::CodedFrames && packet.fourcc.has_composition_offset() {
            out.extend_from_slice(&packet.composition_offset.to_be_bytes()[1..]);
        }
        out.extend_from_slice(packet.data);
    };
    match header.multitrack {
        None => {
            if packets.len() != 1 {
                return Err(EflvError::Unwritable(
                    "several packets in a message that is not multitrack",
                ));
            }
            out.extend_from_slice(&first.fourcc.0);
            body(out, first);
        }
        Some(layout) => {
            if layout == Multitrack::OneTrack && packets.len() != 1 {
                return Err(EflvError::Unwritable("several packets in a OneTrack message"));
            }
            if layout == Multitrack::ManyTracks && packets.iter().any(|p| p.fourcc != first.fourcc) {
                return Err(EflvError::Unwritable("several codecs in a ManyTracks message"));
            }
            out.push(layout.value() << 4 | packet_value);
            if layout != Multitrack::ManyTracksManyCodecs {
                out.extend_from_slice(&first.fourcc.0);
            }
            for packet in packets {
                if layout == Multitrack::ManyTracksManyCodecs {
                    out.extend_from_slice(&packet.fourcc.0);
                }
                out.push(packet.track);
                if layout == Multitrack::OneTrack {
                    body(out, packet);
                } else {
                    let at = out.len();
                    out.extend_from_slice(&[0; 3]);
                    body(out, packet);
                    let size = out.len() - at - 3;
                    if size > 0xFF_FFFF {
                        return Err(EflvError::Unwritable("a track longer than 16 MiB"));
                    }
                    out[at..at + 3].copy_from_slice(&(size as u32).to_be_bytes()[1..]);
                }
            }
        }
    }
    Ok(())
}

pub mod bitstream;

#[cfg(test)]
mod tests;
