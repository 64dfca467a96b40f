//! Micro-benchmarks of the shared-memory hot path (criterion): the seqlock on its own, a
//! whole frame written and read through a real mapped region on tmpfs (header encode, commit;
//! header copy, decode, validation, re-check; the payload is not touched), and slot header
//! decode + validation. Single thread: these are the per-frame costs, not a transport figure
//! (`tp bench` measures the system).

use std::hint::black_box;
use std::sync::atomic::AtomicU64;

use criterion::{Criterion, criterion_group, criterion_main};
use tensorpool_shm::layout::{CreateOptions, EpochSpec, FileModes, ShmLayout};
use tensorpool_shm::slot::{decode_slot, encode_slot, slot_for_frame, validate_slot};
use tensorpool_shm::tensor::contiguous;
use tensorpool_shm::{
    AllowedBaseDirs, Dtype, ExpectedRegion, FrameMeta, HEADER_SLOT_BYTES, HeaderRing,
    LAYOUT_VERSION, MajorOrder, MapOptions, PayloadPool, PoolGeometry, PoolSet, ReadOnly,
    ReadWrite, seqlock,
};

const STREAM: u32 = 10_000;
const EPOCH: u64 = 1;
const NSLOTS: u32 = 64;
const STRIDE: u32 = 4096;

fn bench_seqlock(c: &mut Criterion) {
    let mut g = c.benchmark_group("seqlock");
    let word = AtomicU64::new(0);
    let mut seq = 0u64;
    g.bench_function("commit (begin + commit)", |b| {
        b.iter(|| {
            seq += 1;
            seqlock::begin(black_box(&word), seq);
            seqlock::commit(black_box(&word), seq);
        })
    });
    g.bench_function("read (read_begin + read_end)", |b| {
        b.iter(|| {
            let v = seqlock::read_begin(black_box(&word), seq).unwrap();
            seqlock::read_end(black_box(&word), v).unwrap();
        })
    });
    g.finish();
}

/// A header ring and one pool created on tmpfs (removed with the returned directory).
struct Region {
    _dir: tempfile::TempDir,
    ring: HeaderRing<ReadWrite>,
    pools: PoolSet<ReadWrite>,
    rring: HeaderRing<ReadOnly>,
    rpools: PoolSet<ReadOnly>,
}

fn region() -> Region {
    let dir = tempfile::Builder::new()
        .prefix("tp-shm-bench-")
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("tempdir");
    let base = dir.path().join("tp");
    let layout = ShmLayout::for_user(&base, "bench", "default", FileModes::default()).unwrap();
    let geometry = PoolGeometry {
        pool_id: 1,
        stride_bytes: STRIDE,
        nslots: NSLOTS,
    };
    let spec = EpochSpec {
        layout_version: LAYOUT_VERSION,
        stream_id: STREAM,
        epoch: EPOCH,
        header_nslots: NSLOTS,
        pools: vec![geometry],
    };
    let opts = CreateOptions {
        prefault: true,
        pid: u64::from(std::process::id()),
        now_ns: 1,
    };
    let created = layout.create_epoch(&spec, opts).unwrap();
    let allowed = AllowedBaseDirs::new([&base]).unwrap();
    let ring_expected = ExpectedRegion::header_ring(LAYOUT_VERSION, EPOCH, STREAM, NSLOTS);
    let pool_expected =
        ExpectedRegion::payload_pool(LAYOUT_VERSION, EPOCH, STREAM, 1, NSLOTS, STRIDE);
    let map = MapOptions::default();
    let uri = &created.header_uri;
    let puri = &created.pool_uris[0].1;
    Region {
        ring: HeaderRing::open(uri, &allowed, &ring_expected, map).unwrap(),
        rring: HeaderRing::open(uri, &allowed, &ring_expected, map).unwrap(),
        pools: PoolSet::new(
            vec![PayloadPool::open(puri, &allowed, &pool_expected, map).unwrap()],
            NSLOTS,
        )
        .unwrap(),
        rpools: PoolSet::new(
            vec![PayloadPool::open(puri, &allowed, &pool_expected, map).unwrap()],
            NSLOTS,
        )
        .unwrap(),
        _dir: dir,
    }
}

fn bench_frames(c: &mut Criterion) {
    let mut r = region();
    let meta = FrameMeta {
        tensor: contiguous(Dtype::Uint8, MajorOrder::Row, &[4096]).unwrap(),
        timestamp_ns: 1,
        meta_version: 0,
    };
    let mut g = c.benchmark_group("frame");
    let mut seq = 0u64;
    g.bench_function(
        "write_frame 4 KiB (validate, encode header, seqlock; payload untouched)",
        |b| {
            b.iter(|| {
                seq += 1;
                r.ring
                    .write_frame(&mut r.pools, seq, &meta, 4096, |_| {})
                    .unwrap()
            })
        },
    );
    g.bench_function(
        "read_frame + recheck (header copy, decode, validate; payload untouched)",
        |b| {
            b.iter(|| {
                let v = r.rring.read_frame(&r.rpools, black_box(seq)).unwrap();
                v.recheck().unwrap();
                black_box(v.payload().len())
            })
        },
    );
    g.finish();
}

fn bench_slot(c: &mut Criterion) {
    let tensor = contiguous(Dtype::Float32, MajorOrder::Row, &[480, 640]).unwrap();
    let pools = [PoolGeometry {
        pool_id: 1,
        stride_bytes: 2 * 1024 * 1024,
        nslots: NSLOTS,
    }];
    let header = slot_for_frame(7, 7, 1, 480 * 640 * 4, &tensor);
    let mut bytes = [0u8; HEADER_SLOT_BYTES];
    encode_slot(&header, &mut bytes).unwrap();
    let mut g = c.benchmark_group("slot");
    g.bench_function("validate_slot (480x640 f32)", |b| {
        b.iter(|| validate_slot(black_box(&header), 7, &pools).unwrap())
    });
    g.bench_function("decode_slot + validate_slot", |b| {
        b.iter(|| {
            let h = decode_slot(black_box(&bytes)).unwrap();
            validate_slot(&h, 7, &pools).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench_seqlock, bench_frames, bench_slot);
criterion_main!(benches);
