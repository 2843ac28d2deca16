//! Encode and decode of one broadcast message, 64 B and 4 KiB of payload, in each encoding, and
//! the socket.io argument text with attachments (what socketioxide's common parser carries) that
//! a node converts once per broadcast.
#![allow(missing_docs, clippy::unwrap_used)] // criterion's macros generate undocumented items

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use switchboard_wire::{
    Body, ClusterMessage, Dialect, Limits, Opts, PacketObject, Value, json, map,
    redis::ClassicBroadcast,
};

fn payload(size: usize) -> Vec<Value> {
    // {seq, ts, pad}: what the benchmark harness emits
    vec![
        "tick".into(),
        map![
            ("seq", 12_345i64),
            ("ts", 1_795_312_827_606i64),
            ("pad", "x".repeat(size))
        ],
    ]
}

fn message(size: usize) -> ClusterMessage {
    ClusterMessage::new(
        "3f2a9c0d11e4b7a8",
        "/",
        Body::Broadcast {
            packet: PacketObject::event(payload(size)),
            request_id: None,
            opts: Opts::to_rooms(vec!["room1".into()]),
        },
    )
}

fn codecs(c: &mut Criterion) {
    let limits = Limits::DEFAULT;
    for size in [64usize, 4096] {
        let mut g = c.benchmark_group(format!("broadcast_{size}B"));
        g.throughput(Throughput::Elements(1));
        let m = message(size);
        let msgpack = m.to_msgpack();
        let json = m.to_json();
        let classic = ClassicBroadcast {
            uid: "P0Imza".into(),
            packet: PacketObject {
                nsp: Some("/".into()),
                ..PacketObject::event(payload(size))
            },
            opts: Opts::to_rooms(vec![]),
        };
        let classic_bytes = classic.to_msgpack();
        g.bench_function(BenchmarkId::new("encode", "cluster-msgpack"), |b| {
            b.iter(|| black_box(&m).to_msgpack())
        });
        g.bench_function(BenchmarkId::new("decode", "cluster-msgpack"), |b| {
            b.iter(|| {
                ClusterMessage::decode(black_box(&msgpack), Dialect::Cluster, &limits).unwrap()
            })
        });
        g.bench_function(BenchmarkId::new("encode", "cluster-json"), |b| {
            b.iter(|| black_box(&m).to_json())
        });
        g.bench_function(BenchmarkId::new("decode", "cluster-json"), |b| {
            b.iter(|| ClusterMessage::decode(black_box(&json), Dialect::Cluster, &limits).unwrap())
        });
        g.bench_function(BenchmarkId::new("encode", "classic-redis"), |b| {
            b.iter(|| black_box(&classic).to_msgpack())
        });
        g.bench_function(BenchmarkId::new("decode", "classic-redis"), |b| {
            b.iter(|| ClassicBroadcast::from_msgpack(black_box(&classic_bytes), &limits).unwrap())
        });
        let args = payload(size);
        let (text, bins) = json::array_to_string_with_placeholders(&args);
        let bins: Vec<_> = bins.into();
        g.bench_function(BenchmarkId::new("decode", "args-with-attachments"), |b| {
            b.iter(|| json::from_str_with_attachments(black_box(&text), &bins, &limits).unwrap())
        });
        g.bench_function(BenchmarkId::new("encode", "args-with-attachments"), |b| {
            b.iter(|| json::array_to_string_with_placeholders(black_box(&args)))
        });
        g.finish();
    }
}

criterion_group!(benches, codecs);
criterion_main!(benches);
