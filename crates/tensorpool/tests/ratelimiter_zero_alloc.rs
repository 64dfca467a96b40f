//! After construction the rate limiter's core allocates nothing: three mappings (a 30 Hz
//! limit, every 10th sequence, unlimited) fed a 1 kHz source for 10 s of manual clock, with
//! gaps, repeats, lost forwards and a source epoch change, see 0 allocations on the test's
//! own thread.

use tensorpool::ratelimiter::{Action, Lost, Policy, RateLimiterCore};
use tensorpool_testkit::CountingAllocator;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const MS: u64 = 1_000_000;

fn cycle(core: &mut RateLimiterCore, seq: u64, epoch: u64, now: u64) -> u64 {
    let mut forwarded = 0;
    for lane in 0..core.len() {
        if let Some(s) = core.release(lane, now) {
            core.on_forwarded(lane, s, now);
            forwarded += 1;
        }
        let v = core.on_frame(lane, seq, epoch, now);
        if v.action == Action::Forward {
            if seq.is_multiple_of(97) {
                core.on_lost(lane, seq, Lost::Torn);
            } else {
                core.on_forwarded(lane, seq, now);
                forwarded += 1;
            }
        }
    }
    forwarded
}

#[test]
fn steady_cycle_of_three_mappings_allocates_nothing() {
    let mut core = RateLimiterCore::new(&[
        Policy::MaxRate { hz: 30 },
        Policy::EveryNth { n: 10 },
        Policy::Unlimited,
    ]);
    // warm-up
    let mut forwarded = cycle(&mut core, 0, 1, 0);
    CountingAllocator::reset_thread();
    CountingAllocator::arm_thread();
    for t in 1..10_000u64 {
        // epoch change at 5 s; a gap every 50 frames; a repeat every 77
        let (epoch, base) = if t < 5000 { (1, 0) } else { (2, 5000) };
        let mut seq = t - base;
        if t.is_multiple_of(50) {
            continue;
        }
        if t.is_multiple_of(77) {
            seq = seq.saturating_sub(1);
        }
        forwarded += cycle(&mut core, seq, epoch, t * MS);
    }
    CountingAllocator::disarm_thread();
    let counts = CountingAllocator::thread_counts();
    assert!(counts.is_zero(), "allocations in steady state: {counts:?}");
    assert!(forwarded > 0);
    assert_eq!(core.counters(0).epoch_changes, 1);
}
