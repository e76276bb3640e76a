//! Per-frame costs of video transcoding, each beside the bare codec calls it
//! is made of, so the overhead of our own code shows (target: the pipeline
//! within 1.1x of the bare codecs):
//!
//! - `h264_360p` and `h264_720p`: H.264 High with B-frames (libx264's
//!   defaults) to Constrained Baseline at the same size. `bare codecs` is
//!   libavcodec's decoder fed Annex B access units prepared in advance and
//!   openh264 encoding straight from the decoder's picture buffers, with the
//!   very settings the server uses; `pipeline` is `VideoTranscoder::push`
//!   with the FLV tags as the server gets them (AVCC to Annex B, reordering
//!   times, picture copy, parameter sets, AVCC and FLV out).
//! - `h264_720p_to_360p`: the same with the picture scaled down (what a
//!   player asking for `height=360` costs), and the scaler alone.
//! - `spark_320x240`: Flash's Sorenson Spark to H.264, the whole pipeline.
//! - `hevc_720p`, `av1_720p`, `vp9_720p`: Enhanced RTMP's codecs to
//!   Constrained Baseline H.264 at 1280x720 (what a WebRTC player that does
//!   not take the codec costs). `bare codecs` is libavcodec's decoder (dav1d
//!   for AV1, as the server prefers) fed the codec's bitstream prepared in
//!   advance, and openh264 encoding from its picture buffers; `pipeline` is
//!   `VideoTranscoder::push` with the E-FLV tags as the server gets them.

use std::ptr;

use bytes::Bytes;
use codecs::avc::encoder_config;
use codecs::picture::{scale, Picture};
use codecs::video::{default_bitrate, VideoSettings, VideoTranscoder};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ffmpeg_sys_next as ff;
use media::eflv::bitstream::Bitstream;
use media::eflv::{self, PacketType};
use media::flv::{read_tags, Tag, TagKind};
use media::h264::AvcConfig;
use openh264::formats::YUVSource;
use openh264::Timestamp;

fn video_tags(name: &str) -> Vec<Tag> {
    let path = format!("{}/../fixtures/flv/{name}", env!("CARGO_MANIFEST_DIR"));
    let tags = read_tags(&Bytes::from(std::fs::read(path).unwrap())).unwrap();
    tags.into_iter().filter(|t| t.kind == TagKind::Video).collect()
}

/// The access units of an FLV AVC stream as Annex B, parameter sets before IDRs.
fn annexb_units(tags: &[Tag]) -> Vec<Vec<u8>> {
    let config = AvcConfig::parse(&tags[0].data[5..]).unwrap();
    tags[1..]
        .iter()
        .filter(|t| t.data[1] == 1)
        .map(|t| {
            let mut out = Vec::new();
            config.avcc_to_annexb(&t.data[5..], &mut out);
            out
        })
        .collect()
}

/// libavcodec's H.264 decoder, called directly.
struct BareDecoder {
    context: *mut ff::AVCodecContext,
    packet: *mut ff::AVPacket,
    frame: *mut ff::AVFrame,
}

impl BareDecoder {
    /// libavcodec's decoder of `id`, or the one named `prefer` when it has it.
    fn new(id: ff::AVCodecID, prefer: Option<&std::ffi::CStr>) -> BareDecoder {
        // SAFETY: plain libavcodec setup; every pointer is checked before use
        // and freed in Drop.
        unsafe {
            let preferred = prefer.map_or(ptr::null(), |name| ff::avcodec_find_decoder_by_name(name.as_ptr()));
            let codec = if preferred.is_null() {
                ff::avcodec_find_decoder(id)
            } else {
                preferred
            };
            assert!(!codec.is_null());
            let context = ff::avcodec_alloc_context3(codec);
            assert!(!context.is_null());
            assert_eq!(ff::avcodec_open2(context, codec, ptr::null_mut()), 0);
            let (packet, frame) = (ff::av_packet_alloc(), ff::av_frame_alloc());
            assert!(!packet.is_null() && !frame.is_null());
            BareDecoder { context, packet, frame }
        }
    }

    /// Decodes one access unit; the picture, when one came out.
    fn decode(&mut self, unit: &[u8]) -> Option<&ff::AVFrame> {
        // SAFETY: the packet borrows `unit` (not reference-counted, so
        // libavcodec copies it in send_packet) and is reset before returning.
        unsafe {
            (*self.packet).data = unit.as_ptr().cast_mut();
            (*self.packet).size = unit.len() as i32;
            let sent = ff::avcodec_send_packet(self.context, self.packet);
            (*self.packet).data = ptr::null_mut();
            (*self.packet).size = 0;
            if sent < 0 || ff::avcodec_receive_frame(self.context, self.frame) < 0 {
                return None;
            }
            Some(&*self.frame)
        }
    }
}

impl Drop for BareDecoder {
    fn drop(&mut self) {
        // SAFETY: allocated in `new`, freed once.
        unsafe {
            ff::av_frame_free(&mut self.frame);
            ff::av_packet_free(&mut self.packet);
            ff::avcodec_free_context(&mut self.context);
        }
    }
}

/// A decoded YUV 4:2:0 frame as openh264 reads it, without a copy.
struct FramePlanes<'a>(&'a ff::AVFrame);

impl FramePlanes<'_> {
    fn plane(&self, index: usize, rows: usize) -> &[u8] {
        let stride = self.0.linesize[index] as usize;
        // SAFETY: a decoded 4:2:0 frame's plane holds `rows` lines of `stride` bytes.
        unsafe { std::slice::from_raw_parts(self.0.data[index], stride * rows) }
    }
}

impl YUVSource for FramePlanes<'_> {
    fn dimensions(&self) -> (usize, usize) {
        (self.0.width as usize, self.0.height as usize)
    }

    fn strides(&self) -> (usize, usize, usize) {
        let l = self.0.linesize;
        (l[0] as usize, l[1] as usize, l[2] as usize)
    }

    fn y(&self) -> &[u8] {
        self.plane(0, self.0.height as usize)
    }

    fn u(&self) -> &[u8] {
        self.plane(1, self.0.height as usize / 2)
    }

    fn v(&self) -> &[u8] {
        self.plane(2, self.0.height as usize / 2)
    }
}

/// Bare codecs against the pipeline, one H.264 file at its own size.
fn h264_same_size(c: &mut Criterion, name: &str, file: &str) {
    let tags = video_tags(file);
    let units = annexb_units(&tags);
    let config = AvcConfig::parse(&tags[0].data[5..]).unwrap();
    let sps = media::h264::SpsInfo::parse(&config.sps[0]).unwrap();
    let bitrate = default_bitrate(sps.width as usize, sps.height as usize);
    let decoder = || BareDecoder::new(ff::AVCodecID::AV_CODEC_ID_H264, None);
    bare_beside_pipeline(c, name, (&tags, &units), bitrate, decoder);
}

/// One group of two benches on one input at its own size and `bitrate`:
/// the bare codecs (`units` decoded by `decoder`'s decoder, encoded by
/// openh264) and the pipeline (`tags` through the `VideoTranscoder`).
fn bare_beside_pipeline(
    c: &mut Criterion,
    name: &str,
    (tags, units): (&[Tag], &[Vec<u8>]),
    bitrate: u32,
    decoder: impl Fn() -> BareDecoder,
) {
    let mut group = c.benchmark_group(name);
    group.sample_size(10);
    group.throughput(Throughput::Elements(units.len() as u64));
    bare(
        &mut group,
        "bare codecs (libavcodec decode + openh264 encode)",
        units,
        bitrate,
        decoder,
    );
    let settings = VideoSettings {
        max_width: None,
        max_height: None,
        bitrate: Some(bitrate),
    };
    pipeline(&mut group, "pipeline (VideoTranscoder)", tags, settings);
    group.finish();
}

/// The bare codecs: `units` decoded by a fresh decoder from `decoder` and
/// every picture encoded by openh264 at `bitrate`.
fn bare(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    units: &[Vec<u8>],
    bitrate: u32,
    decoder: impl Fn() -> BareDecoder,
) {
    group.bench_function(name, |b| {
        let mut out = Vec::with_capacity(256 * 1024);
        b.iter(|| {
            let mut decoder = decoder();
            let mut encoder = codecs::avc::quiet_encoder(encoder_config(bitrate)).unwrap();
            for (index, unit) in units.iter().enumerate() {
                if let Some(frame) = decoder.decode(unit) {
                    out.clear();
                    let stream = encoder
                        .encode_at(&FramePlanes(frame), Timestamp::from_millis(index as u64 * 40))
                        .unwrap();
                    stream.write_vec(&mut out);
                }
            }
        });
    });
}

/// The coded frames of an E-FLV video track as the codec's own bitstream,
/// the configuration before keyframes (what a decoder is fed).
fn enhanced_units(tags: &[Tag]) -> Vec<Vec<u8>> {
    let mut bitstream = None;
    let mut units = Vec::new();
    for tag in tags {
        let parsed = eflv::parse(TagKind::Video, &tag.data).unwrap().unwrap();
        let packet = parsed.packets().next().unwrap().unwrap();
        let framing = bitstream.get_or_insert_with(|| Bitstream::new(packet.fourcc).unwrap());
        match packet.packet_type {
            PacketType::SequenceStart => framing.configure(packet.data).unwrap(),
            PacketType::CodedFrames | PacketType::CodedFramesX => {
                let mut unit = Vec::new();
                framing
                    .frame(packet.data, parsed.header.is_keyframe(), &mut unit)
                    .unwrap();
                units.push(unit);
            }
            _ => {}
        }
    }
    units
}

/// Bare codecs against the pipeline for an Enhanced RTMP codec at 720p.
fn enhanced(c: &mut Criterion) {
    let inputs: [(&str, &str, ff::AVCodecID, Option<&std::ffi::CStr>); 3] = [
        (
            "hevc_720p",
            "eflv_hevc_opus_1280x720.flv",
            ff::AVCodecID::AV_CODEC_ID_HEVC,
            None,
        ),
        (
            "av1_720p",
            "eflv_av1_opus_1280x720.flv",
            ff::AVCodecID::AV_CODEC_ID_AV1,
            Some(c"libdav1d"),
        ),
        (
            "vp9_720p",
            "eflv_vp9_opus_1280x720.flv",
            ff::AVCodecID::AV_CODEC_ID_VP9,
            None,
        ),
    ];
    let bitrate = default_bitrate(1280, 720);
    for (name, file, id, prefer) in inputs {
        let tags = video_tags(file);
        let units = enhanced_units(&tags);
        let decoder = || BareDecoder::new(id, prefer);
        bare_beside_pipeline(c, name, (&tags, &units), bitrate, decoder);
    }
}

fn pipeline(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    tags: &[Tag],
    settings: VideoSettings,
) {
    group.bench_function(name, |b| {
        let mut out = Vec::with_capacity(8);
        b.iter(|| {
            let mut transcoder = VideoTranscoder::new(settings);
            for tag in tags {
                out.clear();
                transcoder.push(tag.timestamp, &tag.data, &mut out).unwrap();
            }
        });
    });
}

fn h264(c: &mut Criterion) {
    h264_same_size(c, "h264_360p", "ffmpeg_h264_640x360_30fps.flv");
    h264_same_size(c, "h264_720p", "ffmpeg_h264_1280x720_30fps.flv");
}

fn scaled(c: &mut Criterion) {
    let tags = video_tags("ffmpeg_h264_1280x720_30fps.flv");
    let mut group = c.benchmark_group("h264_720p_to_360p");
    group.sample_size(10);
    group.throughput(Throughput::Elements(tags.len() as u64 - 1));
    let settings = VideoSettings {
        max_width: None,
        max_height: Some(360),
        bitrate: None,
    };
    pipeline(&mut group, "pipeline (VideoTranscoder, height=360)", &tags, settings);
    group.finish();

    let mut source = Picture::default();
    source.black(1280, 720);
    for (index, byte) in source.data.iter_mut().enumerate() {
        *byte = (index * 7 % 251) as u8;
    }
    let mut group = c.benchmark_group("scale");
    group.throughput(Throughput::Elements(1));
    group.bench_function("1280x720 to 640x360 (per picture)", |b| {
        let mut out = Picture::default();
        b.iter(|| scale(&source, 640, 360, &mut out));
    });
    group.finish();
}

fn spark(c: &mut Criterion) {
    let tags = video_tags("ffmpeg_sorenson_nellymoser_320x240_440hz.flv");
    let mut group = c.benchmark_group("spark_320x240");
    group.sample_size(10);
    group.throughput(Throughput::Elements(tags.len() as u64));
    let settings = VideoSettings {
        max_width: None,
        max_height: None,
        bitrate: None,
    };
    pipeline(&mut group, "pipeline to H.264 (VideoTranscoder)", &tags, settings);
    group.finish();
}

criterion_group!(benches, h264, scaled, spark, enhanced);
criterion_main!(benches);
