//! ARCHITECTURE rule 2: the frame write and read paths allocate nothing. A counting global
//! allocator counts allocations made by the current thread while the paths run.

mod common;

use common::*;
use tensorpool_shm::tensor::{self, Dtype, MajorOrder};
use tensorpool_shm::{FrameMeta, HeaderRing, PoolSet, ReadOnly, ReadWrite};
use tensorpool_testkit::CountingAllocator;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[test]
fn arch_2_write_and_read_frames_allocate_nothing() {
    let s = create_stream(8, &[256, 4096]);
    let mut wring: HeaderRing<ReadWrite> = s.ring();
    let mut wpools: PoolSet<ReadWrite> = s.pools();
    let rring: HeaderRing<ReadOnly> = s.ring();
    let rpools: PoolSet<ReadOnly> = s.pools();
    let small = FrameMeta {
        tensor: tensor::contiguous(Dtype::Uint8, MajorOrder::Row, &[200]).unwrap(),
        timestamp_ns: 1,
        meta_version: 1,
    };
    let big = FrameMeta {
        tensor: tensor::with_progress(
            tensor::contiguous(Dtype::Float32, MajorOrder::Row, &[8, 100]).unwrap(),
            tensor::ProgressUnit::Rows,
        )
        .unwrap(),
        timestamp_ns: 2,
        meta_version: 1,
    };
    let mut out = [0u8; 4096];
    let mut checksum = 0u64;

    // the counter itself works
    CountingAllocator::arm_thread();
    let probe = std::hint::black_box(Box::new(7u64));
    CountingAllocator::disarm_thread();
    assert_eq!(CountingAllocator::thread_counts().allocations, 1);
    drop(probe);
    CountingAllocator::reset_thread();

    CountingAllocator::arm_thread();
    for seq in 0..10_000u64 {
        let (meta, len) = if seq % 2 == 0 {
            (&small, 200)
        } else {
            (&big, 3200)
        };
        wring
            .write_frame(&mut wpools, seq, meta, len, |p| p.fill(seq as u8))
            .unwrap();
        let view = rring.read_frame(&rpools, seq).unwrap();
        checksum += u64::from(view.payload()[0]);
        view.recheck().unwrap();
        let n = view.copy_payload_to(&mut out).unwrap().unwrap();
        checksum += n as u64;
        // drops allocate nothing either
        assert!(rring.read_frame(&rpools, seq + 8).is_err());
    }
    CountingAllocator::disarm_thread();

    assert!(checksum > 0);
    let counts = CountingAllocator::thread_counts();
    assert_eq!(counts.allocations, 0, "allocations on the frame paths");
    assert_eq!(counts.bytes, 0);
}
