//! Micro-benchmark of announce handling (criterion): a `ShmPoolAnnounce` decoded and
//! validated as the driver client does for every announce it receives (layout fields, pool
//! geometry, region URIs parsed; with allowed base dirs also each path canonicalized,
//! checked for containment and `lstat`ed, which are system calls on real files).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tensorpool::client::validate_announce;
use tensorpool_codec::wire::{ClockDomain, PayloadPool, ShmPoolAnnounce};
use tensorpool_codec::{Bytes, Group, Message};
use tensorpool_shm::AllowedBaseDirs;

fn announce(dir: &std::path::Path) -> Vec<u8> {
    let pool = format!("shm:file?path={}/1.pool", dir.display());
    let header = format!("shm:file?path={}/header.ring", dir.display());
    ShmPoolAnnounce {
        stream_id: 10_000,
        producer_id: 1,
        epoch: 7,
        announce_timestamp_ns: 1,
        announce_clock_domain: ClockDomain::Monotonic,
        layout_version: 1,
        header_nslots: 64,
        header_slot_bytes: 256,
        payload_pools: Group::Owned(vec![PayloadPool {
            pool_id: 1,
            pool_nslots: 64,
            stride_bytes: 1 << 20,
            region_uri: Bytes::from(pool.as_str()),
        }]),
        header_region_uri: Bytes::from(header.as_str()),
    }
    .encode_to_vec()
    .unwrap()
}

fn bench_announce(c: &mut Criterion) {
    let dir = tempfile::Builder::new()
        .prefix("tp-announce-bench-")
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap();
    std::fs::write(dir.path().join("1.pool"), b"").unwrap();
    std::fs::write(dir.path().join("header.ring"), b"").unwrap();
    let allowed = AllowedBaseDirs::new([dir.path()]).unwrap();
    let bytes = announce(dir.path());
    let mut g = c.benchmark_group("announce handling");
    g.bench_function(
        "decode + validate_announce (URIs parsed, no path checks)",
        |b| {
            b.iter(|| {
                let a = ShmPoolAnnounce::decode(black_box(&bytes)).unwrap();
                validate_announce(&a, None).unwrap()
            })
        },
    );
    g.bench_function(
        "decode + validate_announce with allowed base dirs (canonicalize, lstat)",
        |b| {
            b.iter(|| {
                let a = ShmPoolAnnounce::decode(black_box(&bytes)).unwrap();
                validate_announce(&a, Some(&allowed)).unwrap()
            })
        },
    );
    g.finish();
}

criterion_group!(benches, bench_announce);
criterion_main!(benches);
