use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::flv;

fn video(body: &[u8]) -> Tag<'_> {
    parse(TagKind::Video, body).unwrap().expect("enhanced")
}

fn packets<'a>(tag: &Tag<'a>) -> Vec<Packet<'a>> {
    tag.packets().collect::<Result<_, _>>().unwrap()
}

#[test]
fn legacy_and_empty_bodies_are_not_enhanced() {
    assert_eq!(parse(TagKind::Video, &[0x17, 0, 0, 0, 0]), Ok(None));
    assert_eq!(parse(TagKind::Audio, &[0xAF, 1, 0x21]), Ok(None));
    assert_eq!(parse(TagKind::Video, &[]), Ok(None));
    assert_eq!(parse(TagKind::Script, &[0x92]), Ok(None));
}

/// Every audio and video tag of the Enhanced RTMP lab's files reads to the
/// end, and they hold what their origin line says.
#[test]
fn the_veovera_vectors_read_completely() {
    for (file, coded_video) in [("eflv_av1_opus_testsrc.flv", 300), ("eflv_av1_opus_mptestsrc.flv", 342)] {
        let path = format!("{}/../fixtures/flv/{file}", env!("CARGO_MANIFEST_DIR"));
        let tags = flv::read_tags(&Bytes::from(std::fs::read(path).unwrap())).unwrap();
        let mut seen = BTreeMap::new();
        for tag in tags.iter().filter(|t| t.kind != TagKind::Script) {
            let parsed = parse(tag.kind, &tag.data).unwrap().expect("every tag is enhanced");
            let mut count = 0;
            for packet in parsed.packets() {
                let packet = packet.unwrap();
                assert_eq!(packet.track, 0);
                let key = format!("{:?} {} {:?}", tag.kind, packet.fourcc, packet.packet_type);
                *seen.entry(key).or_insert(0) += 1;
                count += 1;
            }
            assert_eq!(count, 1, "{file}: one packet per tag");
        }
        assert_eq!(seen["Video av01 CodedFrames"], coded_video, "{file}");
        assert_eq!(seen["Video av01 SequenceStart"], 2, "{file}");
        assert_eq!(seen["Video av01 Metadata"], 1, "{file}");
        assert_eq!(seen["Audio Opus SequenceStart"], 1, "{file}");
        assert_eq!(seen["Audio Opus MultichannelConfig"], 1, "{file}");
        assert_eq!(seen["Audio Opus CodedFrames"], 501, "{file}");
        assert_eq!(seen.len(), 6, "{file}: {seen:?}");
    }
}

#[test]
fn the_metadata_in_a_command_frame_is_a_packet_not_a_command() {
    // 0xD4: IsExHeader, frame type 5 (command), packet type 4 (Metadata), as the lab's files have it.
    let tag = video(b"\xD4av01\x02\x00\x09colorInfo");
    assert_eq!(tag.header.command, None);
    assert_eq!(tag.header.packet_type, PacketType::Metadata);
    let [packet] = packets(&tag)[..] else { panic!() };
    assert_eq!(packet.fourcc, FourCc::AV1);
    assert_eq!(packet.data, b"\x02\x00\x09colorInfo");
}

#[test]
fn a_command_frame_has_a_command_and_no_packets() {
    // Frame type 5, packet type 1: VideoCommand 1 (EndSeek), no FourCC.
    let tag = video(&[0xD1, 1]);
    assert_eq!(tag.header.command, Some(1));
    assert_eq!(tag.packets().count(), 0);
}

#[test]
fn hevc_coded_frames_carry_a_signed_composition_offset() {
    let tag = video(b"\x91hvc1\xFF\xFF\xD8\x00\x00\x00\x02\x26\x01");
    assert!(tag.header.is_keyframe());
    let [packet] = packets(&tag)[..] else { panic!() };
    assert_eq!(packet.composition_offset, -40);
    assert_eq!(packet.data, b"\x00\x00\x00\x02\x26\x01");
    // CodedFramesX leaves the offset out; AV1 never has one.
    assert_eq!(packets(&video(b"\xA3hvc1\xAA"))[0].data, b"\xAA");
    assert_eq!(packets(&video(b"\xA1av01\x12\x00"))[0].data, b"\x12\x00");
}

#[test]
fn a_nanosecond_offset_comes_in_a_mod_ex_block() {
    // ModEx: 3 bytes of data (size - 1 = 2), 999,999 ns, then type 0 / packet type 1.
    let tag = video(b"\x97\x02\x0F\x42\x3F\x01vp09\x82\x49");
    assert_eq!(tag.header.nano_offset, Some(999_999));
    assert_eq!(tag.header.packet_type, PacketType::CodedFrames);
    assert_eq!(packets(&tag)[0].data, b"\x82\x49");
    // Two blocks, the first of a type not yet defined (skipped), the 16-bit size form.
    let mut body = vec![0x97, 0xFF, 0x01, 0x00];
    body.extend_from_slice(&[0xEE; 257]);
    body.extend_from_slice(&[0x17, 2, 0, 0, 5, 0x01]);
    body.extend_from_slice(b"av01\x0A");
    let tag = video(&body);
    assert_eq!(tag.header.nano_offset, Some(5));
    assert_eq!(packets(&tag)[0].data, b"\x0A");
    assert_eq!(
        parse(TagKind::Audio, b"\x97\x01\x00\x00\x01Opus"),
        Err(EflvError::ShortNanoOffset(2))
    );
}

#[test]
fn the_three_multitrack_layouts() {
    // OneTrack: track 2 of AV1, no size.
    let one = video(b"\x96\x01av01\x02\xAB\xCD");
    assert_eq!(one.header.multitrack, Some(Multitrack::OneTrack));
    let [p] = packets(&one)[..] else { panic!() };
    assert_eq!((p.track, p.fourcc, p.data), (2, FourCc::AV1, &b"\xAB\xCD"[..]));

    // ManyTracks: two Opus tracks, sizes 1 and 2.
    let many = parse(
        TagKind::Audio,
        b"\x95\x11Opus\x00\x00\x00\x01\xF8\x01\x00\x00\x02\xF8\xF9",
    )
    .unwrap()
    .unwrap();
    let got: Vec<_> = packets(&many).iter().map(|p| (p.track, p.data.to_vec())).collect();
    assert_eq!(got, [(0, vec![0xF8]), (1, vec![0xF8, 0xF9])]);

    // ManyTracksManyCodecs: HEVC with its composition offset, then AV1.
    let mixed = video(b"\x96\x21hvc1\x00\x00\x00\x05\x00\x00\x21\xAA\xBBav01\x01\x00\x00\x01\xCC");
    let got = packets(&mixed);
    assert_eq!(got.len(), 2);
    assert_eq!(
        (got[0].fourcc, got[0].composition_offset, got[0].data),
        (FourCc::HEVC, 33, &b"\xAA\xBB"[..])
    );
    assert_eq!(
        (got[1].fourcc, got[1].track, got[1].data),
        (FourCc::AV1, 1, &b"\xCC"[..])
    );
}

#[test]
fn malformed_and_reserved_fields_are_errors() {
    assert_eq!(
        parse(TagKind::Video, b"\x98av01"),
        Err(EflvError::ReservedPacketType {
            kind: TagKind::Video,
            value: 8
        })
    );
    assert!(matches!(
        parse(TagKind::Audio, b"\x93Opus"),
        Err(EflvError::ReservedPacketType { value: 3, .. })
    ));
    assert_eq!(parse(TagKind::Video, b"\x90av0"), Err(EflvError::Truncated("FourCC")));
    assert_eq!(
        parse(TagKind::Video, b"\x96\x31av01"),
        Err(EflvError::ReservedMultitrack(3))
    );
    assert_eq!(
        parse(TagKind::Video, b"\x96\x06av01"),
        Err(EflvError::NestedMultitrack(6))
    );
    assert_eq!(
        parse(TagKind::Video, b"\x97\x05\x00"),
        Err(EflvError::Truncated("ModEx data"))
    );
    let overrun = video(b"\x96\x11av01\x00\x00\x00\x09\xAA");
    assert_eq!(
        overrun.packets().collect::<Vec<_>>(),
        [Err(EflvError::TrackOverrun {
            track: 0,
            size: 9,
            left: 1
        })]
    );
    // The packets after a good one still end at the first error.
    let cut = video(b"\x96\x11av01\x00\x00\x00\x01\xAA\x01\x00");
    let got: Vec<_> = cut.packets().collect();
    assert!(got[0].is_ok() && got[1].is_err() && got.len() == 2);
    assert_eq!(
        video(b"\x91hvc1\x00").packets().next(),
        Some(Err(EflvError::Truncated("composition time offset")))
    );
}

#[test]
fn write_refuses_what_one_message_cannot_hold() {
    let header = Header {
        kind: TagKind::Video,
        frame_type: 1,
        packet_type: PacketType::CodedFrames,
        nano_offset: None,
        multitrack: None,
        command: None,
    };
    let packet = |track, fourcc| Packet {
        track,
        fourcc,
        packet_type: PacketType::CodedFrames,
        composition_offset: 0,
        data: b"x",
    };
    let mut out = Vec::new();
    assert!(write(&mut out, &header, &[packet(0, FourCc::AV1), packet(1, FourCc::AV1)]).is_err());
    let many = Header {
        multitrack: Some(Multitrack::ManyTracks),
        ..header
    };
    assert!(write(&mut out, &many, &[packet(0, FourCc::AV1), packet(1, FourCc::VP9)]).is_err());
    assert!(write(&mut out, &header, &[]).is_err());
}

fn arb_packet(kind: TagKind) -> impl Strategy<Value = (u8, FourCc, i32, Vec<u8>)> {
    let fourccs = match kind {
        TagKind::Video => FourCc::VIDEO.to_vec(),
        _ => FourCc::AUDIO.to_vec(),
    };
    (
        any::<u8>(),
        proptest::sample::select(fourccs),
        -0x80_0000i32..0x80_0000,
        proptest::collection::vec(any::<u8>(), 0..40),
    )
}

proptest! {
    /// Whatever `write` makes, `parse` reads back to the same packets.
    #[test]
    fn write_then_parse_is_the_identity(
        video in any::<bool>(),
        frame_type in 1u8..=4,
        type_index in 0usize..4,
        nano_offset in proptest::option::of(0u32..1_000_000),
        layout in 0usize..4,
        specs in proptest::collection::vec(arb_packet(TagKind::Video), 1..4),
        audio_codec in proptest::sample::select(FourCc::AUDIO.to_vec()),
    ) {
        let kind = if video { TagKind::Video } else { TagKind::Audio };
        let packet_type = if video {
            [PacketType::SequenceStart, PacketType::CodedFrames, PacketType::CodedFramesX, PacketType::Metadata][type_index]
        } else {
            [PacketType::SequenceStart, PacketType::CodedFrames, PacketType::SequenceEnd, PacketType::MultichannelConfig][type_index]
        };
        let multitrack = [None, Some(Multitrack::OneTrack), Some(Multitrack::ManyTracks), Some(Multitrack::ManyTracksManyCodecs)][layout];
        let count = match multitrack {
            None | Some(Multitrack::OneTrack) => 1,
            _ => specs.len(),
        };
        let packets: Vec<Packet> = specs[..count]
            .iter()
            .map(|(track, fourcc, offset, data)| {
                let fourcc = match (kind, multitrack) {
                    (TagKind::Audio, Some(Multitrack::ManyTracksManyCodecs)) => audio_codec,
                    (_, Some(Multitrack::ManyTracks)) if kind == TagKind::Audio => audio_codec,
                    (_, Some(Multitrack::ManyTracks)) => specs[0].1,
                    (TagKind::Audio, _) => audio_codec,
                    _ => *fourcc,
                };
                let composition_offset = if packet_type == PacketType::CodedFrames && fourcc.has_composition_offset() { *offset } else { 0 };
                Packet {
                    track: if multitrack.is_some() { *track } else { 0 },
                    fourcc,
                    packet_type,
                    composition_offset,
                    data,
                }
            })
            .collect();
        let header = Header {
            kind,
            frame_type: if video { frame_type } else { 0 },
            packet_type,
            nano_offset,
            multitrack,
            command: None,
        };
        let mut body = Vec::new();
        write(&mut body, &header, &packets).unwrap();
        let tag = parse(kind, &body).unwrap().unwrap();
        prop_assert_eq!(tag.header, header);
        let back: Vec<Packet> = tag.packets().collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(back, packets);
    }

    /// Any bytes: an answer, never a panic, and packets that lie inside the body.
    #[test]
    fn any_bytes_are_read_or_refused(body in proptest::collection::vec(any::<u8>(), 0..64), video in any::<bool>()) {
        let kind = if video { TagKind::Video } else { TagKind::Audio };
        if let Ok(Some(tag)) = parse(kind, &body) {
            for packet in tag.packets().flatten() {
                prop_assert!(packet.data.len() <= body.len());
            }
        }
    }
}

#[test]
fn legacy_h264_aac_and_mp3_tags_go_to_enhanced_and_back_byte_for_byte() {
    let mut converted = 0;
    for name in ["ffmpeg_h264_aac_320x240_440hz.flv", "ffmpeg_mp3_mono_44100_440hz.flv"] {
        let path = format!("{}/../fixtures/flv/{name}", env!("CARGO_MANIFEST_DIR"));
        let tags = crate::flv::read_tags(&bytes::Bytes::from(std::fs::read(path).unwrap())).unwrap();
        for tag in tags.iter().filter(|t| t.kind != TagKind::Script) {
            let (header, packet) = from_legacy(tag.kind, &tag.data).expect("an H.264, AAC or MP3 tag");
            let mut enhanced = Vec::new();
            write(&mut enhanced, &header, &[packet]).unwrap();
            let parsed = parse(tag.kind, &enhanced).unwrap().unwrap();
            let again = parsed.packets().next().unwrap().unwrap();
            let mut legacy = Vec::new();
            assert!(write_legacy(&mut legacy, &parsed.header, &again));
            assert_eq!(legacy, &tag.data[..], "{name} at {} ms", tag.timestamp);
            converted += 1;
        }
    }
    assert!(converted > 100, "{converted}");
    let mut out = Vec::new();
    let av1 = parse(TagKind::Video, b"\x91av01\xAA").unwrap().unwrap();
    assert!(!write_legacy(
        &mut out,
        &av1.header,
        &av1.packets().next().unwrap().unwrap()
    ));
    assert!(out.is_empty(), "no legacy form of AV1");
    // A FourCC of the other kind has no legacy form either.
    let aac_in_video = parse(TagKind::Video, b"\x91mp4a\xAA").unwrap().unwrap();
    assert!(!write_legacy(
        &mut out,
        &aac_in_video.header,
        &aac_in_video.packets().next().unwrap().unwrap()
    ));
    let avc_in_audio = parse(TagKind::Audio, b"\x90avc1\xAA").unwrap().unwrap();
    assert!(!write_legacy(
        &mut out,
        &avc_in_audio.header,
        &avc_in_audio.packets().next().unwrap().unwrap()
    ));
    assert!(out.is_empty());
}

/// The picture size of each fixture's first SequenceStart is the size
/// ffprobe gives for the file (the veovera AV1 vectors begin with an empty
/// record, which says nothing; VP9's record never does).
#[test]
fn sequence_starts_give_the_picture_size() {
    for (file, size) in [
        ("eflv_hevc_opus_320x240.flv", Some((320, 240))),
        ("eflv_hevc_ac3_640x360.flv", Some((640, 360))),
        ("eflv_hevc_opus_1280x720.flv", Some((1280, 720))),
        ("eflv_av1_opus_1280x720.flv", Some((1280, 720))),
        ("eflv_av1_flac_320x240.flv", Some((320, 240))),
        ("eflv_av1_opus_testsrc.flv", None),
        ("eflv_vp9_opus_320x240.flv", None),
    ] {
        let path = format!("{}/../fixtures/flv/{file}", env!("CARGO_MANIFEST_DIR"));
        let tags = flv::read_tags(&Bytes::from(std::fs::read(path).unwrap())).unwrap();
        let record = tags
            .iter()
            .filter(|t| t.kind == TagKind::Video)
            .filter_map(|t| parse(t.kind, &t.data).ok().flatten())
            .flat_map(|t| t.packets().collect::<Vec<_>>())
            .map(Result::unwrap)
            .find(|p| p.packet_type == PacketType::SequenceStart)
            .expect("a SequenceStart");
        assert_eq!(bitstream::picture_size(record.fourcc, record.data), size, "{file}");
    }
}

/// The picture size of each VP8 and VP9 fixture's first keyframe is the
/// size ffprobe gives for the file; a frame that is not a keyframe gives
/// none.
#[test]
fn vp8_and_vp9_keyframes_give_the_picture_size() {
    for (file, size) in [
        ("eflv_vp9_opus_320x240.flv", (320, 240)),
        ("eflv_vp9_eac3_320x240.flv", (320, 240)),
        ("eflv_vp9_opus_1280x720.flv", (1280, 720)),
        ("eflv_vp8_opus_320x240.flv", (320, 240)),
    ] {
        let path = format!("{}/../fixtures/flv/{file}", env!("CARGO_MANIFEST_DIR"));
        let tags = flv::read_tags(&Bytes::from(std::fs::read(path).unwrap())).unwrap();
        let frames: Vec<_> = tags
            .iter()
            .filter(|t| t.kind == TagKind::Video)
            .filter_map(|t| parse(t.kind, &t.data).ok().flatten())
            .flat_map(|t| t.packets().collect::<Vec<_>>())
            .map(Result::unwrap)
            .filter(|p| p.packet_type.is_coded())
            .collect();
        let sizes: Vec<_> = frames
            .iter()
            .map(|p| bitstream::keyframe_size(p.fourcc, p.data))
            .collect();
        assert_eq!(sizes[0], Some(size), "{file}: the first frame is a keyframe");
        assert!(
            sizes.iter().any(Option::is_none),
            "{file}: later frames are not keyframes"
        );
        assert!(sizes.iter().flatten().all(|s| *s == size), "{file}");
    }
    assert_eq!(bitstream::keyframe_size(FourCc::VP9, &[]), None);
    assert_eq!(bitstream::keyframe_size(FourCc::VP8, &[0x00, 0x00, 0x00, 0x9d]), None);
}
