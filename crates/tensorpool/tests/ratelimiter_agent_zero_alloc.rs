//! The rate limiter agent's steady cycle allocates nothing: an in-process SHM driver (its own
//! thread), a driver-mode source producer, a `RateLimiter` with an every-10th and a 200 Hz
//! mapping (both holding and forwarding), and a consumer of each destination, all driven
//! from the test's thread. After a warm-up (leases, mappings, metadata forwarded, the hold
//! buffer grown), 2 000 source frames through the whole path are counted on the test's own
//! thread: 0 allocations.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tensorpool::config::NoEnv;
use tensorpool::driver::{DriverConfig, ShmDriver};
use tensorpool::meta::MetaAttribute;
use tensorpool::prelude::*;
use tensorpool::ratelimiter::{RateLimiter, RateLimiterConfig};
use tensorpool::streams::DriverEndpoints;
use tensorpool_aeron::AeronClient;
use tensorpool_agent::{Agent, AgentError, AgentRunner, MonotonicClock, SleepingIdleStrategy};
use tensorpool_testkit::CountingAllocator;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const EVERY_10: u32 = 11_000;
const RATE: u32 = 11_001;

fn driver_config(base: &std::path::Path) -> DriverConfig {
    let text = format!(
        r#"
[shm]
base_dir = "{}"
[policies]
announce_period_ms = 100
lease_keepalive_interval_ms = 100
lease_expiry_grace_intervals = 20
prefault_shm = false
[profiles.p]
header_nslots = 64
payload_pools = [{{ pool_id = 1, stride_bytes = 4096 }}]
[streams.s]
stream_id = {STREAM}
profile = "p"
[streams.a]
stream_id = {EVERY_10}
profile = "p"
[streams.b]
stream_id = {RATE}
profile = "p"
"#,
        base.display()
    );
    DriverConfig::from_toml(&text, &NoEnv).unwrap()
}

#[test]
fn the_agents_steady_cycle_allocates_nothing() {
    let world = World::new();
    let dcfg = driver_config(world.base());
    let endpoints = DriverEndpoints::of_driver(&dcfg);
    let dir = world.ctx.aeron_dir();
    let _driver = AgentRunner::spawn(
        "shm-driver",
        move || {
            let aeron =
                AeronClient::connect(&dir, Duration::from_secs(10)).map_err(AgentError::failed)?;
            ShmDriver::new(dcfg, aeron, tensorpool::monotonic_ns()).map_err(AgentError::failed)
        },
        SleepingIdleStrategy::new(Duration::from_micros(200)),
        MonotonicClock,
        None,
    )
    .unwrap();
    let base = world.base().display().to_string();
    let ch = tensorpool::streams::DEFAULT_CHANNEL;
    let rl_cfg = RateLimiterConfig::from_toml(
        &format!(
            r#"
[rate_limiter]
instance_id = "za"
descriptor_channel = "{ch}"
descriptor_stream_id = 1100
control_channel = "{ch}"
qos_channel = "{ch}"
metadata_channel = "{ch}"
shm_base_dir = "{base}"
[[mappings]]
source_stream_id = {STREAM}
dest_stream_id = {EVERY_10}
decimation = 10
[[mappings]]
source_stream_id = {STREAM}
dest_stream_id = {RATE}
max_rate_hz = 200
"#
        ),
        &NoEnv,
    )
    .unwrap();
    let mut producer = world
        .ctx
        .producer(STREAM)
        .driver(endpoints.clone(), world.base())
        .configure(|c| c.announce_period = Duration::from_millis(100))
        .build()
        .unwrap();
    producer.set_meta(&[MetaAttribute::text("k", "v")]).unwrap();
    let mut rl = RateLimiter::with_driver(rl_cfg, endpoints.clone(), world.ctx.clone()).unwrap();
    let mut dests: Vec<Consumer> = [EVERY_10, RATE]
        .iter()
        .map(|&s| {
            world
                .ctx
                .consumer(s)
                .allowed_base_dir(world.base())
                .driver(endpoints.clone())
                .build()
                .unwrap()
        })
        .collect();
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
