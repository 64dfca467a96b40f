//! The rate limiter agent's steady cycle allocates nothing: an in-process SHM driver (its own
//! thread), a driver-mode source producer, a `RateLimiter` with an every-10th and a 200 Hz
//! mapping (both holding and forwarding), and a consumer of each destination, all driven
//! from the test's thread. After a warm-up (leases, mappings, metadata forwarded, the hold
//! buffer grown), 2 000 source frames through the whole path are counted on the test's own
//! thread: 0 allocations.

mod common;
mod rl_rig;

use std::time::{Duration, Instant};

use common::*;
use tensorpool::prelude::*;
use tensorpool::ratelimiter::RateLimiter;
use tensorpool_agent::Agent;
use tensorpool_testkit::CountingAllocator;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[test]
fn the_agents_steady_cycle_allocates_nothing() {
    let rl_rig::Rig {
        world: _world,
        driver: _driver,
        mut producer,
        mut rl,
        mut dests,
    } = rl_rig::rig("za");
    let spec = TensorSpec::new(Dtype::Uint8, &[1024]).unwrap();
    let payload = vec![5u8; 1024];
    let mut got = [0u64; 2];
    let cycle = |producer: &mut Producer,
                 rl: &mut RateLimiter,
                 dests: &mut [Consumer],
                 got: &mut [u64; 2]| {
        let _ = producer.offer(&spec, &payload);
        producer.do_work(tensorpool::monotonic_ns());
        rl.do_work(tensorpool::monotonic_ns()).unwrap();
        for (d, g) in dests.iter_mut().zip(got.iter_mut()) {
            d.poll(|_| *g += 1, 64).unwrap();
        }
        std::thread::sleep(Duration::from_micros(500));
    };
    // warm-up: both destinations deliver, the rate lane has held and released frames, the
    // metadata has been forwarded
    let deadline = Instant::now() + DEADLINE;
    while got[0] < 20
        || got[1] < 20
        || rl.core().counters(1).held == 0
        || rl.core().counters(0).meta_forwarded == 0
    {
        assert!(
            Instant::now() < deadline,
            "warm-up: got {got:?}, {:?} {:?}",
            rl.core().counters(0),
            rl.core().counters(1)
        );
        cycle(&mut producer, &mut rl, &mut dests, &mut got);
    }
    let before = (rl.core().counters(0), rl.core().counters(1), got);
    CountingAllocator::reset_thread();
    CountingAllocator::arm_thread();
    for _ in 0..2000 {
        cycle(&mut producer, &mut rl, &mut dests, &mut got);
    }
    CountingAllocator::disarm_thread();
    let counts = CountingAllocator::thread_counts();
    let after = (rl.core().counters(0), rl.core().counters(1), got);
    assert!(
        counts.is_zero(),
        "allocations in the steady cycle: {counts:?}"
    );
    assert!(
        after.0.forwarded > before.0.forwarded,
        "every-10th kept forwarding"
    );
    assert!(
        after.1.forwarded > before.1.forwarded,
        "the rate lane kept forwarding"
    );
    assert!(after.1.held > before.1.held, "the rate lane kept holding");
    println!(
        "steady: every-10th +{} forwarded, rate +{} forwarded (+{} held), consumers +{:?}",
        after.0.forwarded - before.0.forwarded,
        after.1.forwarded - before.1.forwarded,
        after.1.held - before.1.held,
        [after.2[0] - before.2[0], after.2[1] - before.2[1]]
    );
}
