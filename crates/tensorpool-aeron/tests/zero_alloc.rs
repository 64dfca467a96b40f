//! After warm-up, claim + commit + poll (and the publish/offer and reassembly paths) allocate
//! nothing: neither Rust allocations (a counting global allocator, all threads) nor C
//! allocations on the calling thread (malloc/calloc/realloc interposed, counted per thread).

mod common;

use std::cell::Cell;
use std::os::raw::c_void;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use common::*;
use tensorpool_aeron::{ClaimError, Publication, PublishPath, Subscription};
use tensorpool_testkit::CountingAllocator;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

// C allocations (Aeron's C client calls malloc/calloc/realloc) on the measuring thread.
thread_local! {
    static C_ARMED: Cell<bool> = const { Cell::new(false) };
}
static C_ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe extern "C" {
    fn __libc_malloc(size: usize) -> *mut c_void;
    fn __libc_calloc(count: usize, size: usize) -> *mut c_void;
    fn __libc_realloc(ptr: *mut c_void, size: usize) -> *mut c_void;
}

fn count_c() {
    if C_ARMED.with(Cell::get) {
        C_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

/// # Safety
/// As C `malloc`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn malloc(size: usize) -> *mut c_void {
    count_c();
    // SAFETY: glibc's own malloc, same contract.
    unsafe { __libc_malloc(size) }
}

/// # Safety
/// As C `calloc`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn calloc(count: usize, size: usize) -> *mut c_void {
    count_c();
    // SAFETY: glibc's own calloc, same contract.
    unsafe { __libc_calloc(count, size) }
}

/// # Safety
/// As C `realloc`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn realloc(ptr: *mut c_void, size: usize) -> *mut c_void {
    count_c();
    // SAFETY: glibc's own realloc, same contract.
    unsafe { __libc_realloc(ptr, size) }
}

fn arm(on: bool) {
    if on {
        CountingAllocator::arm_process();
    } else {
        CountingAllocator::disarm_process();
    }
    C_ARMED.with(|armed| armed.set(on));
}

const STREAM: i32 = 3003;
const CYCLES: u64 = 100_000;

/// One echo cycle: publish `seq` (claim for short, publish/offer for long), poll it back.
fn cycle(publication: &mut Publication, sub: &mut Subscription, seq: u64, len: usize) {
    let expected_path = if len <= publication.max_claim_len() {
        PublishPath::Claim
    } else {
        PublishPath::Offer
    };
    loop {
        let result = publication.publish(len, |buf| {
            buf[..8].copy_from_slice(&seq.to_le_bytes());
            let last = buf.len() - 1;
            buf[last] = seq as u8;
            Ok::<(), ()>(())
        });
        match result {
            Ok(published) => {
                assert_eq!(published.path, expected_path);
                break;
            }
            Err(ClaimError::Publish(e)) if e.is_retryable() => std::hint::spin_loop(),
            Err(e) => panic!("publish failed: {e:?}"),
        }
    }
    let mut received = false;
    let deadline = Instant::now() + TIMEOUT;
    while !received {
        let n = sub
            .poll(
                |msg, _| {
                    assert_eq!(msg.len(), len);
                    let mut head = [0u8; 8];
                    head.copy_from_slice(&msg[..8]);
                    assert_eq!(u64::from_le_bytes(head), seq);
                    assert_eq!(msg[len - 1], seq as u8);
                    received = true;
                },
                16,
            )
            .unwrap();
        if n == 0 {
            assert!(Instant::now() < deadline, "echo {seq} never arrived");
            std::thread::yield_now();
        }
    }
}

#[test]
fn steady_state_claim_commit_poll_allocates_nothing() {
    let driver = driver();
    let dir = driver.dir().to_path_buf();
    {
        let client = connect(&driver);
        let mut sub = client
            .add_subscription("aeron:ipc", STREAM, TIMEOUT)
            .unwrap();
        let mut publication = client
            .add_exclusive_publication("aeron:ipc", STREAM, TIMEOUT)
            .unwrap();
        wait_connected(&publication, &sub);
        let long = 3 * publication.max_claim_len() + 17;

        // Warm-up: first use of every path (scratch buffer, per-session reassembly buffer).
        for seq in 0..1_000 {
            cycle(&mut publication, &mut sub, seq, 64);
            cycle(&mut publication, &mut sub, seq, long);
        }

        arm(true);
        let start = Instant::now();
        for seq in 0..CYCLES {
            cycle(&mut publication, &mut sub, seq, 64);
        }
        let claim_elapsed = start.elapsed();
        for seq in 0..CYCLES / 10 {
            cycle(&mut publication, &mut sub, seq, long);
        }
        arm(false);

        let rust = {
            let c = CountingAllocator::process_counts();
            (c.allocations, c.bytes)
        };
        let c = C_ALLOCATIONS.load(Ordering::SeqCst);
        println!(
            "{CYCLES} claim+commit+poll cycles in {claim_elapsed:?}; Rust allocations {} ({} B), C allocations on this thread {c}",
            rust.0, rust.1
        );
        assert_eq!(rust, (0, 0), "Rust allocations in steady state");
        assert_eq!(c, 0, "C allocations on the hot thread in steady state");
        assert_counters_count(&client);
    }
    drop(driver);
    assert_removed(dir);
}

/// Guards against a vacuous pass: armed, the counters do see Rust allocations and the C
/// client's own allocations (registering a publication allocates in C on the calling thread).
fn assert_counters_count(client: &tensorpool_aeron::AeronClient) {
    let (rust_before, c_before) = (
        CountingAllocator::process_counts().allocations,
        C_ALLOCATIONS.load(Ordering::SeqCst),
    );
    arm(true);
    let v = std::hint::black_box(vec![1u8; 32]);
    let publication = client
        .add_publication("aeron:ipc", STREAM + 1, TIMEOUT)
        .unwrap();
    arm(false);
    drop((v, publication));
    assert!(CountingAllocator::process_counts().allocations > rust_before);
    assert!(C_ALLOCATIONS.load(Ordering::SeqCst) > c_before);
}
