//! TraceLink §6.3, §8.1 through the rate limiter (a 1→1 stage): a traced source (every frame
//! minted a trace id by a `TraceIdGenerator`) forwarded every 10th and at 200 Hz (held then
//! released); every destination frame carries the id of the source frame it copies.

mod common;

use std::time::{Duration, Instant};

use common::*;
use std::collections::HashMap;
use tensorpool::config::NoEnv;
use tensorpool::driver::{DriverConfig, ShmDriver};
use tensorpool::prelude::*;
use tensorpool::ratelimiter::{RateLimiter, RateLimiterConfig};
use tensorpool::streams::DriverEndpoints;
use tensorpool::tracelink::TraceIdGenerator;
use tensorpool_aeron::AeronClient;
use tensorpool_agent::{Agent, AgentError, AgentRunner, MonotonicClock, SleepingIdleStrategy};

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
fn tl_8_1_the_rate_limiter_keeps_the_upstream_trace_id() {
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
instance_id = "tl"
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
    let mut ids = TraceIdGenerator::new(7).unwrap();
    let mut minted: HashMap<u64, u64> = HashMap::new();
    let spec = TensorSpec::new(Dtype::Uint8, &[256]).unwrap();
    // (seq, trace id) seen on each destination
    let mut seen: [Vec<(u64, Option<u64>)>; 2] = [Vec::new(), Vec::new()];
    let deadline = Instant::now() + DEADLINE;
    while seen[0].len() < 10 || seen[1].len() < 10 || rl.core().counters(1).held == 0 {
        assert!(
            Instant::now() < deadline,
            "seen {} / {}, {:?} {:?}",
            seen[0].len(),
            seen[1].len(),
            rl.core().counters(0),
            rl.core().counters(1)
        );
        if let Ok(mut claim) = producer.claim(&spec) {
            let id = ids.next_id();
            claim.set_trace_id(Some(id));
            claim.payload_mut().fill(1);
            minted.insert(claim.commit(), id);
        }
        producer.do_work(tensorpool::monotonic_ns());
        rl.do_work(tensorpool::monotonic_ns()).unwrap();
        for (d, s) in dests.iter_mut().zip(seen.iter_mut()) {
            d.poll(|f| s.push((f.seq(), f.trace_id())), 64).unwrap();
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    // a held frame released later: two frames at once (the second is held: the slot of
    // the first is closed), then no more source frames until the rate lane delivers it
    let mut last = 0;
    for _ in 0..2 {
        let mut claim = producer.claim(&spec).unwrap();
        let id = ids.next_id();
        claim.set_trace_id(Some(id));
        last = claim.commit();
        minted.insert(last, id);
    }
    let deadline = Instant::now() + DEADLINE;
    while !seen[1].iter().any(|&(seq, _)| seq == last) {
        assert!(
            Instant::now() < deadline,
            "the held frame {last} was released"
        );
        producer.do_work(tensorpool::monotonic_ns());
        rl.do_work(tensorpool::monotonic_ns()).unwrap();
        dests[1]
            .poll(|f| seen[1].push((f.seq(), f.trace_id())), 64)
            .unwrap();
        std::thread::sleep(Duration::from_micros(500));
    }
    for (lane, s) in seen.iter().enumerate() {
        for &(seq, trace) in s {
            assert_eq!(
                trace,
                minted.get(&seq).copied(),
                "lane {lane}: destination seq {seq} carries the source frame's trace id"
            );
            assert!(trace.is_some_and(|t| t != 0));
        }
    }
}
