//! TraceLink §6.2, §6.3, §8.1 at the producer: with `trace_ids` on, every frame's
//! `FrameDescriptor.traceId` is a fresh non-zero id minted with the configured node id
//! (standalone) or the one the SHM driver assigned (driver mode); two producers of one
//! driver get different node ids, so their ids never collide.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use tensorpool::config::NoEnv;
use tensorpool::driver::{DriverConfig, ShmDriver};
use tensorpool::prelude::*;
use tensorpool::producer::{BuildError, ProducerConfig};
use tensorpool::streams::DriverEndpoints;
use tensorpool::tracelink::TraceIdGenerator;
use tensorpool_aeron::AeronClient;
use tensorpool_agent::{AgentError, AgentRunner, MonotonicClock, SleepingIdleStrategy};

/// TL §8.1: a traced stream's frames carry non-zero, distinct, increasing ids with the
/// producer's node id; a producer without tracing leaves the field null.
#[test]
fn tl_8_1_a_traced_producer_sets_a_fresh_non_zero_trace_id_on_every_frame() {
    let world = World::new();
    let mut producer = world
        .producer()
        .configure(|c| {
            c.trace_ids = true;
            c.trace_node_id = Some(9);
        })
        .build()
        .unwrap();
    assert_eq!(producer.core().trace_node_id(), Some(9));
    let mut consumer = world.consumer().build().unwrap();
    connect(&mut producer, &mut consumer);
    let spec = TensorSpec::new(Dtype::Uint8, &[64]).unwrap();
    let mut ids = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    while ids.len() < 50 {
        assert!(Instant::now() < deadline, "got {} frames", ids.len());
        if ids.len() < 50 {
            producer.offer(&spec, &[1u8; 64]).unwrap();
        }
        producer.do_work(tensorpool::monotonic_ns());
        consumer.poll(|f| ids.push(f.trace_id()), 16).unwrap();
    }
    let split = TraceIdGenerator::new(9).unwrap();
    let mut last = 0;
    for id in &ids {
        let id = id.expect("a traced frame has a trace id");
        assert!(id > last, "ids increase");
        assert_eq!(split.split(id).node_id, 9);
        last = id;
    }
    drop((producer, consumer));
    world.finish();
}

/// Without `trace_ids` the field stays null (TL §8.2: untraced streams are unchanged).
#[test]
fn tl_8_1_an_untraced_producer_leaves_trace_id_null() {
    let world = World::new();
    let mut producer = world.producer().build().unwrap();
    assert_eq!(producer.core().trace_node_id(), None);
    let mut consumer = world.consumer().build().unwrap();
    connect(&mut producer, &mut consumer);
    let spec = TensorSpec::new(Dtype::Uint8, &[64]).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    while got.is_empty() {
        assert!(Instant::now() < deadline);
        producer.offer(&spec, &[1u8; 64]).unwrap();
        producer.do_work(tensorpool::monotonic_ns());
        consumer.poll(|f| got.push(f.trace_id()), 16).unwrap();
    }
    assert!(got.iter().all(Option::is_none));
    drop((producer, consumer));
    world.finish();
}

/// TL §6.2: a standalone producer has no driver to assign a node id: tracing without one,
/// or with one that does not fit the id layout, is refused with the key named.
#[test]
fn tl_6_2_a_standalone_traced_producer_needs_a_node_id_that_fits() {
    let world = World::new();
    for node in [None, Some(1024)] {
        let err = world
            .producer()
            .configure(|c| {
                c.trace_ids = true;
                c.trace_node_id = node;
            })
            .build()
            .unwrap_err();
        assert!(
            matches!(
                err,
                BuildError::InvalidConfig {
                    field: "trace_node_id",
                    ..
                }
            ),
            "{node:?}: {err}"
        );
    }
    let path = world.base().join("producer.toml");
    std::fs::write(
        &path,
        "[producer]\nstream_id = 5\ntrace_ids = true\ntrace_node_id = 12\n",
    )
    .unwrap();
    let loaded = ProducerConfig::load(Some(&path), &NoEnv).unwrap();
    assert!(loaded.unknown_keys.is_empty(), "{:?}", loaded.unknown_keys);
    let cfg = loaded.config;
    assert_eq!((cfg.trace_ids, cfg.trace_node_id), (true, Some(12)));
    std::fs::remove_file(&path).unwrap();
    world.finish();
}

fn driver_config(base: &std::path::Path) -> DriverConfig {
    let text = format!(
        r#"
[shm]
base_dir = "{}"
[policies]
announce_period_ms = 100
lease_keepalive_interval_ms = 100
prefault_shm = false
[profiles.p]
header_nslots = 16
payload_pools = [{{ pool_id = 1, stride_bytes = 4096 }}]
[streams.a]
stream_id = {STREAM}
profile = "p"
[streams.b]
stream_id = {}
profile = "p"
"#,
        base.display(),
        STREAM + 1
    );
    DriverConfig::from_toml(&text, &NoEnv).unwrap()
}

/// TL §6.2: in driver mode the node id is the one the driver assigned with the lease; two
/// producers get two node ids and their ids never collide.
#[test]
fn tl_6_2_driver_assigned_node_ids_keep_two_producers_ids_apart() {
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
    let mut producers: Vec<Producer> = [STREAM, STREAM + 1]
        .iter()
        .map(|&s| {
            world
                .ctx
                .producer(s)
                .driver(endpoints.clone(), world.base())
                .configure(|c| c.trace_ids = true)
                .build()
                .unwrap()
        })
        .collect();
    let nodes: Vec<u64> = producers
        .iter()
        .map(|p| {
            p.core()
                .trace_node_id()
                .expect("the driver assigned a node id")
        })
        .collect();
    assert_ne!(nodes[0], nodes[1]);
    assert!(nodes.iter().all(|&n| (1..=1023).contains(&n)));
    let spec = TensorSpec::new(Dtype::Uint8, &[16]).unwrap();
    let mut all = HashSet::new();
    for _ in 0..2_000 {
        for p in &mut producers {
            let mut claim = p.claim(&spec).unwrap();
            let id = claim.trace_id().expect("minted at claim");
            assert!(all.insert(id), "duplicate trace id {id:#x}");
            claim.payload_mut().fill(0);
            claim.commit();
        }
    }
}
