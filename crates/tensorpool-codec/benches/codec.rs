//! Micro-benchmarks of the per-frame codec work (criterion): a `FrameDescriptor` encoded into
//! a caller's buffer (as the producer encodes it into an Aeron claim) and decoded (as every
//! consumer does per frame), and a `ShmPoolAnnounce` decoded. Single thread.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tensorpool_codec::wire::{ClockDomain, FrameDescriptor, PayloadPool, ShmPoolAnnounce};
use tensorpool_codec::{Bytes, Group, Message};

fn descriptor() -> FrameDescriptor {
    FrameDescriptor {
        stream_id: 10_000,
        epoch: 7,
        seq: 42,
        timestamp_ns: None,
        meta_version: Some(1),
        trace_id: None,
    }
}

fn bench_descriptor(c: &mut Criterion) {
    let fd = descriptor();
    let mut buf = [0u8; 128];
    let n = fd.encode(&mut buf).unwrap();
    let mut g = c.benchmark_group("FrameDescriptor");
    g.bench_function("encode into a buffer", |b| {
        let mut out = [0u8; 128];
        let mut seq = 0u64;
        b.iter(|| {
            seq += 1;
            let fd = FrameDescriptor {
                seq,
                ..descriptor()
            };
            fd.encode(black_box(&mut out)).unwrap()
        })
    });
    g.bench_function("decode", |b| {
        b.iter(|| FrameDescriptor::decode(black_box(&buf[..n])).unwrap())
    });
    g.finish();
}

/// An announce of one stream with `pools` payload pools.
pub fn announce(pools: u16) -> Vec<u8> {
    let entries: Vec<PayloadPool<'static>> = (1..=pools)
        .map(|id| PayloadPool {
            pool_id: id,
            pool_nslots: 64,
            stride_bytes: 65_536 << id,
            region_uri: Bytes::from("shm:file?path=/dev/shm/tensorpool-bench/10000/7/1.pool"),
        })
        .collect();
    ShmPoolAnnounce {
        stream_id: 10_000,
        producer_id: 1,
        epoch: 7,
        announce_timestamp_ns: 1,
        announce_clock_domain: ClockDomain::Monotonic,
        layout_version: 1,
        header_nslots: 64,
        header_slot_bytes: 256,
        payload_pools: Group::Owned(entries),
        header_region_uri: Bytes::from(
            "shm:file?path=/dev/shm/tensorpool-bench/10000/7/header.ring",
        ),
    }
    .encode_to_vec()
    .unwrap()
}

fn bench_announce(c: &mut Criterion) {
    let one = announce(1);
    let four = announce(4);
    let mut g = c.benchmark_group("ShmPoolAnnounce");
    g.bench_function("decode, 1 pool (iterate the pools)", |b| {
        b.iter(|| {
            let a = ShmPoolAnnounce::decode(black_box(&one)).unwrap();
            a.payload_pools.iter().map(|p| p.stride_bytes).sum::<u32>()
        })
    });
    g.bench_function("decode, 4 pools (iterate the pools)", |b| {
        b.iter(|| {
            let a = ShmPoolAnnounce::decode(black_box(&four)).unwrap();
            a.payload_pools.iter().map(|p| p.stride_bytes).sum::<u32>()
        })
    });
    g.finish();
}

criterion_group!(benches, bench_descriptor, bench_announce);
criterion_main!(benches);
