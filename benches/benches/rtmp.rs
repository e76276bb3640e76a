//! Per-message costs of the RTMP layers: chunking a video frame out (copied,
//! or referenced as a player's connection does), reassembling it in, and
//! decoding a Flash connect command.

use bytes::{Buf, Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use media::rtmp::{ChunkDecoder, ChunkEncoder, ChunkLimits, Message, Outgoing, RawMessage};

fn video_frame(len: usize) -> RawMessage {
    RawMessage {
        csid: 7,
        timestamp: 40,
        type_id: 9,
        stream_id: 1,
        payload: Bytes::from(vec![0x27; len]),
    }
}

fn chunking(c: &mut Criterion) {
    let mut group = c.benchmark_group("chunk");
    for &(len, chunk_size) in &[(3_000usize, 128u32), (3_000, 4096), (60_000, 4096)] {
        let message = video_frame(len);
        group.throughput(Throughput::Bytes(len as u64));
        let id = format!("{len}B/chunk{chunk_size}");
        group.bench_with_input(BenchmarkId::new("encode", &id), &message, |b, m| {
            let mut encoder = ChunkEncoder::new();
            encoder.set_chunk_size(chunk_size);
            let mut out = BytesMut::with_capacity(len * 2);
            b.iter(|| {
                out.clear();
                encoder.encode(m, &mut out);
            });
        });
        // What a player's connection does: the frame's pieces referenced
        // in its output, which the writer then takes.
        group.bench_with_input(BenchmarkId::new("encode_referenced", &id), &message, |b, m| {
            let mut encoder = ChunkEncoder::new();
            encoder.set_chunk_size(chunk_size);
            let mut out = Outgoing::default();
            b.iter(|| {
                encoder.encode(m, &mut out);
                let len = out.remaining();
                out.advance(len);
            });
        });
        // The peer announces its chunk size first, as a real one does.
        let mut encoder = ChunkEncoder::new();
        let (mut wire, mut second) = (BytesMut::new(), BytesMut::new());
        let (type_id, payload) = Message::SetChunkSize(chunk_size).encode();
        let set = RawMessage {
            csid: 2,
            timestamp: 0,
            type_id,
            stream_id: 0,
            payload,
        };
        encoder.encode(&set, &mut wire);
        encoder.set_chunk_size(chunk_size);
        encoder.encode(&message, &mut wire);
        encoder.encode(&message, &mut second); // the second uses a compressed header
        group.bench_with_input(BenchmarkId::new("decode", &id), &second, |b, bytes| {
            let mut decoder = ChunkDecoder::new(ChunkLimits::default());
            decoder.push(&wire);
            while let Ok(Some(_)) = decoder.next_message() {}
            b.iter(|| {
                decoder.push(bytes);
                decoder.next_message().expect("valid").expect("complete")
            });
        });
    }
    group.finish();
}

fn commands(c: &mut Criterion) {
    let body = Bytes::from_static(include_bytes!(
        "../../fixtures/flash-player/red5_fp_lnx20.0.0.286_oflaDemo_connect_amf0_body.bin"
    ));
    c.bench_function("decode Flash Player connect", |b| {
        b.iter(|| Message::decode(20, body.clone()).expect("a real connect decodes"))
    });
}

criterion_group!(benches, chunking, commands);
criterion_main!(benches);
