//! Producer and consumer through the SHM driver (Driver Model §2.2, §2.3, §4.9, §4.12.2-3):
//! both attach, frames flow; when the producer's lease ends (detach) the consumer stops using
//! the old regions, and a new producer's epoch-bumped regions are mapped and used.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use tensorpool::config::NoEnv;
use tensorpool::consumer::Consumer;
use tensorpool::driver::{DriverConfig, ShmDriver};
use tensorpool::prelude::*;
use tensorpool::streams::DriverEndpoints;
use tensorpool_aeron::AeronClient;
use tensorpool_agent::{AgentError, AgentRunner, MonotonicClock, SleepingIdleStrategy};

fn start_driver(world: &World) -> (AgentRunner, DriverConfig) {
    start_driver_with(world, "")
}

/// The driver with `policies` lines added.
fn start_driver_with(world: &World, policies: &str) -> (AgentRunner, DriverConfig) {
    let cfg = driver_config(world.base(), policies);
    (spawn_driver(world, cfg.clone()), cfg)
}

/// The test driver's configuration, its SHM files under `base` (which it creates).
fn driver_config(base: &Path, policies: &str) -> DriverConfig {
    let text = format!(
        r#"
[shm]
base_dir = "{}"
[policies]
{policies}
announce_period_ms = 100
lease_keepalive_interval_ms = 100
prefault_shm = false
[profiles.p]
header_nslots = 16
payload_pools = [{{ pool_id = 1, stride_bytes = 65536 }}]
[streams.s]
stream_id = {STREAM}
profile = "p"
"#,
        base.display()
    );
    DriverConfig::from_toml(&text, &NoEnv).unwrap()
}

/// Runs the driver as an agent on its own thread, with its own Aeron client.
fn spawn_driver(world: &World, c: DriverConfig) -> AgentRunner {
    let dir = world.ctx.aeron_dir();
    AgentRunner::spawn(
        "shm-driver",
        move || {
            let aeron =
                AeronClient::connect(&dir, Duration::from_secs(10)).map_err(AgentError::failed)?;
            ShmDriver::new(c, aeron, tensorpool::monotonic_ns()).map_err(AgentError::failed)
        },
        SleepingIdleStrategy::new(Duration::from_micros(200)),
        MonotonicClock,
        None,
    )
    .unwrap()
}

/// Polls `consumer` (bounded) until `cond` holds.
fn poll_until(what: &str, consumer: &mut Consumer, mut cond: impl FnMut(&Consumer) -> bool) {
    let deadline = Instant::now() + DEADLINE;
    let mut round = 0;
    while !cond(consumer) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        if consumer.poll(|_| {}, 16).unwrap() == 0 {
            idle(&mut round);
        }
    }
}

/// Start order in driver mode: a consumer built before its allowed base dir exists (the
/// driver creates it when it starts) is built all the same; while it waits it sends no
/// attach (its driver client stays unattached, so it takes no lease it could not map); once
/// the driver has created the dir, the dir is checked as one that appeared, given to the
/// driver client, and the consumer attaches, maps and takes frames.
#[test]
fn driver_mode_consumer_started_before_its_base_dir_waits_for_it_then_maps() {
    let world = World::new();
    let late = world.base().join("late");
    let cfg = driver_config(&late, "");
    let endpoints = DriverEndpoints::of_driver(&cfg);
    let mut consumer = world
        .consumer()
        .allowed_base_dir(&late)
        .driver(endpoints.clone())
        .build()
        .unwrap();
    for _ in 0..3 {
        consumer.poll(|_| {}, 16).unwrap();
    }
    assert_eq!(
        consumer.driver_state(),
        Some(tensorpool::client::ClientState::Unattached),
        "no attach while the base dir is missing"
    );
    assert_eq!(consumer.state(), ConsumerState::Unmapped);

    let driver = spawn_driver(&world, cfg);
    // the producer needs the dir at build; the consumer keeps polling meanwhile
    poll_until("the driver created the base dir", &mut consumer, |_| {
        late.is_dir()
    });
    let mut producer = world
        .ctx
        .producer(STREAM)
        .driver(endpoints, &late)
        .build()
        .unwrap();
    let epoch = producer.epoch().unwrap();
    pump_until("consumer mapped", &mut producer, &mut consumer, |p, c| {
        c.state() == ConsumerState::Mapped { epoch } && p.consumer_count() > 0
    });
    let got = flow(&mut producer, &mut consumer, 10);
    assert!(got.iter().all(|&(e, _)| e == epoch));
    assert_eq!(consumer.last_error(), None);
    drop((producer, consumer));
    driver.close().unwrap();
    world.finish_aeron();
}

/// Driver mode: a base dir that appears as a symbolic link is refused (reason in
/// `last_error`) and the driver client is never started: no attach, no lease taken.
#[test]
fn driver_mode_base_dir_appearing_as_a_symlink_is_refused_without_attaching() {
    let world = World::new();
    let link = world.base().join("link");
    let cfg = driver_config(&link, "");
    let endpoints = DriverEndpoints::of_driver(&cfg);
    let mut consumer = world
        .consumer()
        .allowed_base_dir(&link)
        .driver(endpoints)
        .build()
        .unwrap();
    let real = world.base().join("real");
    std::fs::create_dir(&real).unwrap();
    std::os::unix::fs::symlink(&real, &link).unwrap();
    poll_until("the symlink refused", &mut consumer, |c| {
        c.last_error().is_some()
    });
    let why = consumer.last_error().unwrap().to_owned();
    assert!(why.contains("symbolic link"), "{why}");
    for _ in 0..3 {
        consumer.poll(|_| {}, 16).unwrap();
    }
    assert_eq!(
        consumer.driver_state(),
        Some(tensorpool::client::ClientState::Unattached)
    );
    assert_eq!(consumer.state(), ConsumerState::Unmapped);
    drop(consumer);
    world.finish_aeron();
}

fn flow(producer: &mut Producer, consumer: &mut Consumer, n: u64) -> Vec<(u64, u64)> {
    let spec = TensorSpec::new(Dtype::Uint16, &[32, 32]).unwrap();
    let mut got = Vec::new();
    for i in 0..n {
        let mut claim = producer.claim(&spec).unwrap();
        fill(claim.payload_mut(), i);
        claim.commit();
        let deadline = Instant::now() + DEADLINE;
        let mut round = 0;
        while got.len() as u64 <= i {
            assert!(Instant::now() < deadline, "frame {i} never arrived");
            producer.do_work(tensorpool::monotonic_ns());
            let w = consumer
                .poll(
                    |f: &Frame<'_>| {
                        let mut want = vec![0u8; f.bytes().len()];
                        fill(&mut want, i);
                        let same = f.bytes() == want.as_slice();
                        if f.recheck().is_ok() {
                            assert!(same, "payload of frame {i}");
                            got.push((f.epoch(), f.seq()));
                        }
                    },
                    16,
                )
                .unwrap();
            if w == 0 {
                idle(&mut round);
            }
        }
    }
    got
}

#[test]
fn dm_2_2_2_3_frames_flow_through_the_driver_and_survive_a_producer_restart() {
    let world = World::new();
    let (driver, cfg) = start_driver(&world);
    let endpoints = DriverEndpoints::of_driver(&cfg);
    let mut producer = world
        .ctx
        .producer(STREAM)
        .driver(endpoints.clone(), world.base())
        .build()
        .unwrap();
    assert!(producer.is_driver_mode() && producer.is_active());
    let e1 = producer.epoch().unwrap();
    let mut consumer = world.consumer().driver(endpoints.clone()).build().unwrap();
    pump_until("consumer mapped", &mut producer, &mut consumer, |p, c| {
        c.state() == ConsumerState::Mapped { epoch: e1 } && p.consumer_count() > 0
    });
    let got = flow(&mut producer, &mut consumer, 20);
    assert!(got.iter().all(|&(e, _)| e == e1));

    // The producer detaches: the driver revokes its lease and bumps the epoch; the consumer
    // stops using the old regions and maps the new producer's epoch.
    drop(producer);
    let deadline = Instant::now() + DEADLINE;
    while consumer.state() == (ConsumerState::Mapped { epoch: e1 }) {
        assert!(
            Instant::now() < deadline,
            "consumer kept the revoked producer's regions"
        );
        consumer.poll(|_| {}, 16).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut producer = world
        .ctx
        .producer(STREAM)
        .driver(endpoints, world.base())
        .build()
        .unwrap();
    let e2 = producer.epoch().unwrap();
    assert!(e2 > e1, "epoch bumped: {e1} -> {e2}");
    pump_until("consumer remapped", &mut producer, &mut consumer, |_, c| {
        c.state() == ConsumerState::Mapped { epoch: e2 }
    });
    let got = flow(&mut producer, &mut consumer, 20);
    assert!(
        got.iter().all(|&(e, _)| e == e2),
        "only new-epoch frames after the switch"
    );
    drop((producer, consumer));
    driver.close().unwrap();
    world.finish_aeron();
}

/// A producer lost while the consumer is not polling (a busy rate limiter or bridge) can be
/// followed by the driver's next epoch within the consumer's next poll: the revocation and
/// the new epoch's announce arrive together, so the consumer may go from mapped to mapped
/// without ever being seen unmapped. `outages()` counts the loss all the same; a remap to a
/// newer epoch is not an outage.
#[test]
fn dm_4_9_a_producer_lost_between_two_polls_is_counted_as_an_outage() {
    let world = World::new();
    let (driver, cfg) = start_driver(&world);
    let endpoints = DriverEndpoints::of_driver(&cfg);
    let mut producer = world
        .ctx
        .producer(STREAM)
        .driver(endpoints.clone(), world.base())
        .build()
        .unwrap();
    let e1 = producer.epoch().unwrap();
    let mut consumer = world.consumer().driver(endpoints.clone()).build().unwrap();
    pump_until("consumer mapped", &mut producer, &mut consumer, |p, c| {
        c.state() == ConsumerState::Mapped { epoch: e1 } && p.consumer_count() > 0
    });
    flow(&mut producer, &mut consumer, 3);
    assert_eq!(consumer.outages(), 0);
    drop(producer);
    // several announce periods pass unpolled: the revocation and the next epoch queue up
    std::thread::sleep(Duration::from_millis(600));
    poll_until("the outage counted", &mut consumer, |c| c.outages() == 1);
    // a new producer's epoch is a remap, not another outage
    let mut producer = world
        .ctx
        .producer(STREAM)
        .driver(endpoints, world.base())
        .build()
        .unwrap();
    let e2 = producer.epoch().unwrap();
    pump_until("consumer remapped", &mut producer, &mut consumer, |_, c| {
        c.state() == ConsumerState::Mapped { epoch: e2 }
    });
    flow(&mut producer, &mut consumer, 3);
    assert_eq!(consumer.outages(), 1, "a remap is not an outage");
    drop((producer, consumer));
    driver.close().unwrap();
    world.finish_aeron();
}

#[test]
fn dm_4_9_4_12_2_an_expired_producer_lease_pauses_the_producer_until_it_reattaches() {
    let world = World::new();
    let (driver, cfg) = start_driver(&world);
    let endpoints = DriverEndpoints::of_driver(&cfg);
    let mut producer = world
        .ctx
        .producer(STREAM)
        .driver(endpoints.clone(), world.base())
        .build()
        .unwrap();
    let e1 = producer.epoch().unwrap();
    let mut consumer = world.consumer().driver(endpoints).build().unwrap();
    pump_until("consumer mapped", &mut producer, &mut consumer, |_, c| {
        c.state() == ConsumerState::Mapped { epoch: e1 }
    });
    flow(&mut producer, &mut consumer, 5);

    // The producer stops its duty cycle (no keepalives) for longer than the lease grace
    // (3 x 100 ms): the driver expires the lease, revokes it and bumps the epoch.
    // The event waited on: the consumer leaves the revoked producer's regions.
    let deadline = Instant::now() + DEADLINE;
    while consumer.state() == (ConsumerState::Mapped { epoch: e1 }) {
        assert!(
            Instant::now() < deadline,
            "consumer kept the revoked producer's regions"
        );
        consumer.poll(|_| {}, 16).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    pump_until(
        "producer paused and re-attached",
        &mut producer,
        &mut consumer,
        |p, c| {
            p.counters().pauses >= 1
                && p.is_active()
                && p.epoch() > Some(e1)
                && c.state()
                    == ConsumerState::Mapped {
                        epoch: p.epoch().unwrap(),
                    }
        },
    );
    let e2 = producer.epoch().unwrap();
    assert_eq!(producer.next_seq(), 0, "seq restarts in the new epoch");
    let got = flow(&mut producer, &mut consumer, 5);
    assert!(got.iter().all(|&(e, _)| e == e2));
    drop((producer, consumer));
    driver.close().unwrap();
    world.finish_aeron();
}

/// Every entry under `dir`: path -> (inode, length, is a directory).
fn tree(dir: &Path) -> BTreeMap<PathBuf, (u64, u64, bool)> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let m = std::fs::symlink_metadata(e.path()).unwrap();
        out.insert(e.path(), (m.ino(), m.len(), m.is_dir()));
        if m.is_dir() {
            out.extend(tree(&e.path()));
        }
    }
    out
}

/// Driver Model §2.2, §2.3, §3.2: producers and consumers never create, truncate, replace or
/// unlink the SHM files; the driver alone does. Observed on the file system: the tree under the
/// base dir (paths, inodes, lengths) is the same before and after a producer and two consumers
/// ran their whole life through the driver (attach, map, frames, keepalives, a consumer's
/// detach). The driver's epoch GC is off, so that nothing else changes the tree meanwhile.
#[test]
fn dm_2_2_2_3_clients_never_create_truncate_or_unlink_files() {
    let world = World::new();
    let (driver, cfg) = start_driver_with(&world, "epoch_gc_enabled = false");
    let endpoints = DriverEndpoints::of_driver(&cfg);
    let mut producer = world
        .ctx
        .producer(STREAM)
        .driver(endpoints.clone(), world.base())
        .build()
        .unwrap();
    let epoch = producer.epoch().unwrap();
    // the driver's files for the producer's epoch, as the attach left them
    let before = tree(world.base());
    let files: Vec<_> = before
        .iter()
        .filter(|(_, v)| !v.2)
        .map(|(p, _)| p)
        .collect();
    assert!(
        files
            .iter()
            .any(|p| p.ends_with(format!("{epoch}/header.ring")))
            && files.iter().any(|p| p.ends_with(format!("{epoch}/1.pool"))),
        "{files:?}"
    );

    let mut consumer = world.consumer().driver(endpoints.clone()).build().unwrap();
    pump_until("consumer mapped", &mut producer, &mut consumer, |p, c| {
        c.state() == ConsumerState::Mapped { epoch } && p.consumer_count() > 0
    });
    let got = flow(&mut producer, &mut consumer, 40);
    assert!(got.iter().all(|&(e, _)| e == epoch));
    let mut second = world.consumer().driver(endpoints).build().unwrap();
    pump_until(
        "second consumer mapped",
        &mut producer,
        &mut second,
        |_, c| c.state() == ConsumerState::Mapped { epoch },
    );
    drop(second);
    flow(&mut producer, &mut consumer, 10);

    assert_eq!(
        tree(world.base()),
        before,
        "the clients changed the file tree"
    );
    drop((producer, consumer));
    driver.close().unwrap();
    world.finish_aeron();
}
