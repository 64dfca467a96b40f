//! The counting allocator counts what it claims to: this thread's allocations per thread,
//! every thread's process-wide, nothing while disarmed.

use std::sync::atomic::{AtomicBool, Ordering};

use tensorpool_testkit::{CountingAllocator, Counts};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[test]
fn counts_per_thread_and_process_wide() {
    // disarmed: nothing counted
    CountingAllocator::reset_thread();
    CountingAllocator::reset_process();
    drop(std::hint::black_box(vec![0u8; 16]));
    assert!(CountingAllocator::thread_counts().is_zero());
    assert!(CountingAllocator::process_counts().is_zero());

    // per thread: this thread's allocation, with its size
    let ((), c) = CountingAllocator::count_thread(|| drop(std::hint::black_box(vec![0u8; 40])));
    assert_eq!(
        c,
        Counts {
            allocations: 1,
            bytes: 40
        }
    );

    // per thread: another thread's allocation is not counted here
    let (go, done) = (AtomicBool::new(false), AtomicBool::new(false));
    std::thread::scope(|s| {
        s.spawn(|| {
            while !go.load(Ordering::SeqCst) {
                std::hint::spin_loop();
            }
            drop(std::hint::black_box(vec![0u8; 1000]));
            done.store(true, Ordering::SeqCst);
        });
        let ((), c) = CountingAllocator::count_thread(|| {
            go.store(true, Ordering::SeqCst);
            while !done.load(Ordering::SeqCst) {
                std::hint::spin_loop();
            }
        });
        assert!(c.is_zero(), "{c:?}");
    });
    let child = std::thread::spawn(|| {
        CountingAllocator::arm_thread();
        drop(std::hint::black_box(vec![0u8; 24]));
        CountingAllocator::disarm_thread();
        CountingAllocator::thread_counts()
    })
    .join()
    .unwrap();
    assert_eq!(child.allocations, 1);
    assert_eq!(child.bytes, 24);

    // process-wide: another thread's allocation is counted
    std::thread::scope(|s| {
        let t = s.spawn(|| {
            // wait until armed, then allocate
            while CountingAllocator::process_counts().is_zero() && !std::thread::panicking() {
                drop(std::hint::black_box(vec![0u8; 8]));
                std::thread::yield_now();
            }
        });
        CountingAllocator::arm_process();
        t.join().unwrap();
        CountingAllocator::disarm_process();
    });
    assert!(CountingAllocator::process_counts().allocations > 0);
}
