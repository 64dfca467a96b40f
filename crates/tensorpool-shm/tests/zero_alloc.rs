//! ARCHITECTURE rule 2: the frame write and read paths allocate nothing. A counting global
//! allocator counts allocations made by the current thread while the paths run.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::*;
use tensorpool_shm::tensor::{self, Dtype, MajorOrder};
use tensorpool_shm::{FrameMeta, HeaderRing, PoolSet, ReadOnly, ReadWrite};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    static BYTES: Cell<u64> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with`: thread-locals may be gone while a thread shuts down.
    let _ = COUNTING.try_with(|c| {
        if c.get() {
            let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
            let _ = BYTES.try_with(|b| b.set(b.get() + size as u64));
        }
    });
}

// SAFETY: forwards to the system allocator; the bookkeeping neither allocates nor panics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

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
    COUNTING.with(|c| c.set(true));
    let probe = std::hint::black_box(Box::new(7u64));
    COUNTING.with(|c| c.set(false));
    assert_eq!(ALLOCS.with(Cell::get), 1);
    drop(probe);
    ALLOCS.with(|a| a.set(0));
    BYTES.with(|b| b.set(0));

    COUNTING.with(|c| c.set(true));
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
    COUNTING.with(|c| c.set(false));

    assert!(checksum > 0);
    assert_eq!(ALLOCS.with(Cell::get), 0, "allocations on the frame paths");
    assert_eq!(BYTES.with(Cell::get), 0);
}
