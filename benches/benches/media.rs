//! Per-frame costs of the media path: audio transcodes (Speex, AAC and
//! Nellymoser to Opus, each beside the bare decoder, resampler and libopus
//! calls it is made of; Opus to Speex and AAC), AVCC→Annex B with parameter sets (what a WebRTC player's H.264
//! goes through before str0m packetizes it), and fan-out of one frame from a
//! publisher to 100 players through the hub: players that take it from the
//! ring, and players the push itself delivers to (driven subscriptions, as
//! RTMP players are; a sink that only counts, so without the socket writes).

use std::sync::Arc;

use bytes::Bytes;
use codecs::spark::{Picture, SparkDecoder};
use codecs::transcode::{FlvAudioTarget, FromOpus, OpusPacket, ToOpus};
use codecs::{AacDecoder, NellymoserDecoder, OpusEncoder, Resampler, SpeexDecoder};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use media::flv::{read_tags, Tag, TagKind};
use media::h264::AvcConfig;
use reference_server::hub::{Delivery, Frame, Hub, HubLimits, Made, Seat, Sink, Subscription, Take, Tracks};
use reference_server::rtmp::session::MediaKind;

fn fixture(name: &str) -> Vec<Tag> {
    let path = format!("{}/../fixtures/flv/{name}", env!("CARGO_MANIFEST_DIR"));
    read_tags(&Bytes::from(std::fs::read(path).unwrap())).unwrap()
}

fn audio(tags: &[Tag]) -> Vec<Tag> {
    tags.iter().filter(|t| t.kind == TagKind::Audio).cloned().collect()
}

/// Runs a whole file through a fresh pipeline per iteration and reports per-frame throughput.
fn to_opus(c: &mut Criterion, name: &str, file: &str) {
    let tags = audio(&fixture(file));
    let mut group = c.benchmark_group("transcode");
    group.throughput(Throughput::Elements(tags.len() as u64));
    group.bench_function(name, |b| {
        let mut out = Vec::with_capacity(64);
        b.iter(|| {
            let mut pipeline = ToOpus::new(48_000).unwrap();
            for tag in &tags {
                out.clear();
                let _ = pipeline.push(tag.timestamp, &tag.data, &mut out);
            }
        });
    });
    group.finish();
}

/// The same file through the bare codecs: `decode` (a fresh decoder per
/// iteration, from `new`) to mono PCM at `rate`, the resampler to 48 kHz,
/// libopus every 20 ms. What `ToOpus` is made of, without its framing,
/// timing and header handling.
fn bare_to_opus<D>(
    c: &mut Criterion,
    name: &str,
    file: &str,
    rate: u32,
    new: impl Fn(&[Tag]) -> D,
    decode: impl Fn(&mut D, &Tag, &mut Vec<i16>),
) {
    let tags = audio(&fixture(file));
    let mut group = c.benchmark_group("transcode");
    group.throughput(Throughput::Elements(tags.len() as u64));
    group.bench_function(name, |b| {
        let (mut pcm, mut pcm48) = (Vec::with_capacity(4096), Vec::with_capacity(16384));
        b.iter(|| {
            let mut decoder = new(&tags);
            let mut resampler = Resampler::new(rate, 48_000, 1).unwrap();
            let mut opus = OpusEncoder::new(1, 48_000).unwrap();
            let mut start = 0;
            pcm48.clear();
            for tag in &tags {
                pcm.clear();
                decode(&mut decoder, tag, &mut pcm);
                resampler.process(&pcm, &mut pcm48).unwrap();
                while pcm48.len() - start >= 960 {
                    opus.encode(&pcm48[start..start + 960]).unwrap();
                    start += 960;
                }
            }
        });
    });
    group.finish();
}

fn transcodes(c: &mut Criterion) {
    to_opus(c, "speex_to_opus (per Flash frame)", "red5_h264_speex.flv");
    bare_to_opus(
        c,
        "speex_to_opus bare codecs (per Flash frame)",
        "red5_h264_speex.flv",
        16_000,
        |_| SpeexDecoder::new().unwrap(),
        |d, tag, pcm| drop(d.decode(&tag.data[1..], pcm)),
    );
    to_opus(c, "aac_to_opus (per AAC frame)", "ffmpeg_aac_lc_mono_44100_440hz.flv");
    bare_to_opus(
        c,
        "aac_to_opus bare codecs (per AAC frame)",
        "ffmpeg_aac_lc_mono_44100_440hz.flv",
        44_100,
        |tags| AacDecoder::new(&tags[0].data[2..]).unwrap(),
        |d, tag, pcm| {
            if tag.data[1] == 1 {
                drop(d.decode(&tag.data[2..], pcm));
            }
        },
    );
    to_opus(
        c,
        "nellymoser_to_opus (per 22 kHz tag)",
        "ffmpeg_nellymoser_22050_440hz.flv",
    );
    bare_to_opus(
        c,
        "nellymoser_to_opus bare codecs (per 22 kHz tag)",
        "ffmpeg_nellymoser_22050_440hz.flv",
        22_050,
        |_| NellymoserDecoder::new().unwrap(),
        |d, tag, pcm| drop(d.decode(&tag.data[1..], pcm)),
    );

    // Opus packets to turn back into Speex, made once.
    let mut packets: Vec<OpusPacket> = Vec::new();
    let mut to_opus = ToOpus::new(48_000).unwrap();
    for tag in audio(&fixture("red5_h264_speex.flv")).iter().take(500) {
        let _ = to_opus.push(tag.timestamp, &tag.data, &mut packets);
    }
    let mut group = c.benchmark_group("transcode");
    group.throughput(Throughput::Elements(packets.len() as u64));
    for (name, target) in [
        ("opus_to_speex (per 20 ms packet)", FlvAudioTarget::Speex),
        ("opus_to_aac (per 20 ms packet)", FlvAudioTarget::Aac),
    ] {
        group.bench_function(name, |b| {
            let mut out = Vec::with_capacity(8);
            b.iter(|| {
                let mut pipeline = FromOpus::new(target).unwrap();
                for packet in &packets {
                    out.clear();
                    let _ = pipeline.push(packet.rtp_timestamp, &packet.data, &mut out);
                }
            });
        });
    }
    group.finish();
}

fn h264(c: &mut Criterion) {
    let tags = fixture("red5_h264_speex.flv");
    let video: Vec<&Tag> = tags.iter().filter(|t| t.kind == TagKind::Video).collect();
    let config = AvcConfig::parse(&video[0].data[5..]).unwrap();
    let frames: Vec<&Tag> = video.iter().skip(1).copied().filter(|t| t.data.len() > 5).collect();
    let bytes: usize = frames.iter().map(|t| t.data.len()).sum();
    let mut group = c.benchmark_group("h264");
    group.throughput(Throughput::Elements(frames.len() as u64));
    group.bench_function(format!("avcc_to_annexb ({} frames, {bytes} B)", frames.len()), |b| {
        let mut out = Vec::with_capacity(64 * 1024);
        b.iter(|| {
            for frame in &frames {
                out.clear();
                config.avcc_to_annexb(&frame.data[5..], &mut out);
            }
        });
    });
    group.finish();
}

/// Sorenson Spark decoding (libavcodec's `flv`) of Flash's default camera
/// codec, 320x240: the first half of a Spark to H.264 transcode.
fn spark(c: &mut Criterion) {
    let frames: Vec<Tag> = fixture("ffmpeg_sorenson_nellymoser_320x240_440hz.flv")
        .into_iter()
        .filter(|t| t.kind == TagKind::Video && t.data.first().is_some_and(|b| b & 0x0F == 2))
        .collect();
    let mut group = c.benchmark_group("video");
    group.throughput(Throughput::Elements(frames.len() as u64));
    group.bench_function("spark_decode (per 320x240 frame)", |b| {
        let mut picture = Picture::default();
        b.iter(|| {
            let mut decoder = SparkDecoder::new().unwrap();
            for frame in &frames {
                let _ = decoder.decode(&frame.data[1..], &mut picture);
            }
        });
    });
    group.finish();
}

fn fan_out(c: &mut Criterion) {
    let hub = Hub::new(
        HubLimits {
            player_queue_frames: 1024,
            gop_cache_bytes: 1 << 20,
            gop_cache_duration: std::time::Duration::from_secs(12),
            silent_publisher_takeover: std::time::Duration::ZERO,
            stream_dry_after: std::time::Duration::ZERO,
        },
        Arc::default(),
    );
    let publisher = hub.publish("app", "s", 1).unwrap();
    let mut players: Vec<_> = (0..100)
        .map(|_| hub.subscribe("app", "s", false, Tracks::All).unwrap())
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let receive = |players: &mut Vec<Subscription>| {
        for player in players.iter_mut() {
            match runtime.block_on(player.next()) {
                Some(Delivery::Frame(received)) => assert_eq!(received.payload.len(), 4000),
                other => panic!("{other:?}"),
            }
        }
    };
    // Players start at a keyframe; then every frame is an inter picture.
    let mut keyframe = vec![0x27; 4000];
    keyframe[0] = 0x17;
    publisher
        .push(Frame::new(MediaKind::Video, 0, Bytes::from(keyframe)))
        .unwrap();
    receive(&mut players);
    let frame = Frame::new(MediaKind::Video, 40, Bytes::from(vec![0x27; 4000]));
    let mut group = c.benchmark_group("hub");
    group.throughput(Throughput::Elements(100));
    group.bench_function("fan_out one 4 kB frame to 100 players", |b| {
        b.iter(|| {
            publisher.push(frame.clone()).unwrap();
            receive(&mut players);
        });
    });
    group.finish();
}

/// A sink that counts the bytes it is given.
struct Counting(Arc<std::sync::atomic::AtomicUsize>);

impl Sink for Counting {
    fn take(&mut self, delivery: Delivery, _: &mut Made, _: &mut Subscription) -> Take {
        match delivery {
            Delivery::Frame(frame) => {
                self.0
                    .fetch_add(frame.payload.len(), std::sync::atomic::Ordering::Relaxed);
                Take::Taken
            }
            other => Take::Refused(other),
        }
    }

    fn give_back(self: Box<Self>, _: Subscription, refused: Option<Delivery>) {
        panic!("given back: {refused:?}");
    }
}

fn driven_fan_out(c: &mut Criterion) {
    let hub = Hub::new(
        HubLimits {
            player_queue_frames: 1024,
            gop_cache_bytes: 1 << 20,
            gop_cache_duration: std::time::Duration::from_secs(12),
            silent_publisher_takeover: std::time::Duration::ZERO,
            stream_dry_after: std::time::Duration::ZERO,
        },
        Arc::default(),
    );
    let publisher = hub.publish("app", "s", 1).unwrap();
    let mut keyframe = vec![0x27; 4000];
    keyframe[0] = 0x17;
    publisher
        .push(Frame::new(MediaKind::Video, 0, Bytes::from(keyframe)))
        .unwrap();
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seats: Vec<Arc<Seat>> = (0..100)
        .map(|_| {
            let mut player = hub.subscribe("app", "s", false, Tracks::All).unwrap();
            while player.next_cached().is_some() {}
            let seat = Arc::new(Seat::default());
            player.drive(&seat, Box::new(Counting(count.clone())));
            seat
        })
        .collect();
    let frame = Frame::new(MediaKind::Video, 40, Bytes::from(vec![0x27; 4000]));
    let mut group = c.benchmark_group("hub");
    group.throughput(Throughput::Elements(100));
    group.bench_function("push one 4 kB frame to 100 driven players", |b| {
        b.iter(|| publisher.push(frame.clone()).unwrap());
    });
    group.finish();
    assert!(count.load(std::sync::atomic::Ordering::Relaxed) >= 100 * 4000);
    drop(seats);
}

criterion_group!(benches, transcodes, h264, spark, fan_out, driven_fan_out);
criterion_main!(benches);
