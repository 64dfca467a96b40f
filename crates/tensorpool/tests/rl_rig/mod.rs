//! The rate limiter rig two tests share: an in-process SHM driver on its own thread, a
//! driver-mode source producer on `STREAM`, a `RateLimiter` forwarding every 10th frame to
//! `EVERY_10` and at most 200 Hz to `RATE`, and a consumer of each destination.
#![allow(dead_code)]

use std::time::Duration;

use crate::common::*;
use tensorpool::config::NoEnv;
use tensorpool::driver::{DriverConfig, ShmDriver};
use tensorpool::meta::MetaAttribute;
use tensorpool::prelude::*;
use tensorpool::ratelimiter::{RateLimiter, RateLimiterConfig};
use tensorpool::streams::DriverEndpoints;
use tensorpool_aeron::AeronClient;
use tensorpool_agent::{AgentError, AgentRunner, MonotonicClock, SleepingIdleStrategy};

pub const EVERY_10: u32 = 11_000;
pub const RATE: u32 = 11_001;

pub fn driver_config(base: &std::path::Path) -> DriverConfig {
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

/// The rig's parts (the driver thread stops when `driver` is dropped).
pub struct Rig {
    pub world: World,
    pub driver: AgentRunner,
    pub producer: Producer,
    pub rl: RateLimiter,
    pub dests: Vec<Consumer>,
}

/// Builds the rig; `instance_id` names the rate limiter.
pub fn rig(instance_id: &str) -> Rig {
    let world = World::new();
    let dcfg = driver_config(world.base());
    let endpoints = DriverEndpoints::of_driver(&dcfg);
    let dir = world.ctx.aeron_dir();
    let driver = AgentRunner::spawn(
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
instance_id = "{instance_id}"
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
    let rl = RateLimiter::with_driver(rl_cfg, endpoints.clone(), world.ctx.clone()).unwrap();
    let dests: Vec<Consumer> = [EVERY_10, RATE]
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
    Rig {
        world,
        driver,
        producer,
        rl,
        dests,
    }
}
