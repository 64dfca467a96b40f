//! The roles' counters as Aeron counters (tensorpool::counters): in the media driver's
//! counters file, with one type id per kind, the 16-byte key (stream id, client id, role,
//! cause, pid) and readable labels; equal to the in-process values; freed with the role;
//! absent when disabled.

mod common;
mod driver_common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use tensorpool::consumer::DropCause;
use tensorpool::counters::{CounterKey, Role, kind};
use tensorpool::prelude::*;
use tensorpool::streams::{DEFAULT_CHANNEL, DESCRIPTOR_STREAM_ID};
use tensorpool_aeron::{AeronClient, is_tensorpool_counter_type_id};
use tensorpool_codec::Message;

/// One tensorpool counter as read from the counters file.
#[derive(Debug, Clone)]
struct Seen {
    type_n: u16,
    key: CounterKey,
    label: String,
    value: i64,
}

fn tensorpool_counters(client: &AeronClient) -> Vec<Seen> {
    let mut out = Vec::new();
    client.counters_reader().for_each(|c| {
        if is_tensorpool_counter_type_id(c.type_id) {
            out.push(Seen {
                type_n: (c.type_id & 0xFFFF) as u16,
                key: CounterKey::decode(c.key).expect("a tensorpool key"),
                label: c.label().to_owned(),
                value: c.value,
            });
        }
    });
    out
}

/// The one counter of `type_n` (and `detail`) owned by `client_id`.
fn find(seen: &[Seen], type_n: u16, client_id: u32, detail: u16) -> &Seen {
    let hits: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.type_n == type_n && s.key.client_id == client_id && s.key.detail == detail)
        .collect();
    assert_eq!(hits.len(), 1, "counter {type_n}/{detail}: {seen:#?}");
    hits[0]
}

#[test]
fn producer_and_consumer_counters_are_aeron_counters_keyed_by_stream_and_client() {
    let world = World::new();
    let mut producer = world.producer().build().unwrap();
    let mut consumer = world.consumer().build().unwrap();
    connect(&mut producer, &mut consumer);
    let spec = TensorSpec::new(Dtype::Uint8, &[1000]).unwrap();
    for i in 0..10u8 {
        producer.offer(&spec, &[i; 1000]).unwrap();
        pump_until("frame", &mut producer, &mut consumer, |p, c| {
            c.counters().accepted == p.counters().committed
        });
    }
    // A descriptor of another epoch: one EpochMismatch drop.
    let mut raw = world
        .ctx
        .client()
        .add_exclusive_publication(DEFAULT_CHANNEL, DESCRIPTOR_STREAM_ID, DEADLINE)
        .unwrap();
    let fd = tensorpool_codec::wire::FrameDescriptor {
        stream_id: STREAM,
        epoch: 1,
        seq: 99,
        timestamp_ns: None,
        meta_version: None,
        trace_id: None,
    };
    let deadline = Instant::now() + DEADLINE;
    while consumer.drops().get(DropCause::EpochMismatch) == 0 {
        assert!(Instant::now() < deadline, "no epoch drop");
        let _ = raw.offer(&fd.encode_to_vec().unwrap());
        producer.do_work(tensorpool::monotonic_ns());
        consumer.poll(|_| {}, 16).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    // A QoS interval (100 ms) publishes the latency quantiles.
    pump_until("latency quantiles", &mut producer, &mut consumer, |_, c| {
        c.counters().latency_p99_ns > 0
    });

    let seen = tensorpool_counters(world.ctx.client());
    let (p, c) = (producer.counters(), consumer.counters());
    let (pid, cid) = (producer.config().producer_id, consumer.config().consumer_id);
    let epoch = producer.epoch().unwrap();
    for s in &seen {
        let k = kind(s.type_n as i32 | 0x5450_0000).expect("a declared kind");
        assert_eq!(k.role, s.key.role);
        assert_eq!(s.key.stream_id, STREAM);
        assert_eq!(s.key.pid, std::process::id());
        assert!(
            s.label
                .starts_with(&format!("tp {} {}", k.role.name(), k.name))
        );
    }
    let frames = find(&seen, 101, pid, 0);
    assert_eq!(frames.key.role, Role::Producer);
    assert_eq!(
        frames.label,
        format!("tp producer frames: stream={STREAM} client={pid}")
    );
    assert_eq!(frames.value as u64, p.committed);
    assert_eq!(find(&seen, 102, pid, 0).value as u64, 10_000);
    assert_eq!(find(&seen, 103, pid, 0).value, 0);
    assert_eq!(find(&seen, 106, pid, 0).value as u64, epoch);
    assert_eq!(find(&seen, 107, pid, 0).value, 1, "one consumer");

    assert_eq!(find(&seen, 201, cid, 0).value as u64, c.accepted);
    assert_eq!(find(&seen, 202, cid, 0).value as u64, c.bytes);
    assert_eq!(c.bytes, 10_000);
    assert_eq!(find(&seen, 206, cid, 0).value as u64, epoch);
    assert!(find(&seen, 207, cid, 0).value > 0, "last latency");
    assert_eq!(find(&seen, 209, cid, 0).value as u64, c.latency_p99_ns);
    // one drop counter per cause, the cause in the key and the label
    let drops: Vec<&Seen> = seen.iter().filter(|s| s.type_n == 203).collect();
    assert_eq!(drops.len(), DropCause::COUNT);
    let mismatch = find(&seen, 203, cid, DropCause::EpochMismatch.index() as u16);
    assert_eq!(mismatch.value, 1);
    assert_eq!(
        mismatch.label,
        format!("tp consumer drops epoch_mismatch: stream={STREAM} client={cid}")
    );
    assert_eq!(find(&seen, 204, cid, 0).value as u64, consumer.drops().gap);

    // Counters go with their role.
    drop(raw);
    drop((producer, consumer));
    let deadline = Instant::now() + DEADLINE;
    while !tensorpool_counters(world.ctx.client()).is_empty() {
        assert!(Instant::now() < deadline, "counters not freed");
        std::thread::sleep(Duration::from_millis(10));
    }
    world.finish();
}

#[test]
fn counters_without_aeron_counters_stay_in_process() {
    let world = World::new();
    let mut producer = world
        .producer()
        .configure(|c| c.aeron_counters = false)
        .build()
        .unwrap();
    let mut consumer = world
        .consumer()
        .configure(|c| c.aeron_counters = false)
        .build()
        .unwrap();
    connect(&mut producer, &mut consumer);
    let spec = TensorSpec::new(Dtype::Uint8, &[64]).unwrap();
    producer.offer(&spec, &[1; 64]).unwrap();
    pump_until("frame", &mut producer, &mut consumer, |_, c| {
        c.counters().accepted == 1
    });
    assert!(tensorpool_counters(world.ctx.client()).is_empty());
    assert_eq!(producer.counters().committed, 1);
    assert_eq!(producer.counters().epoch, producer.epoch().unwrap());
    drop((producer, consumer));
    world.finish();
}

#[test]
fn driver_counters_are_aeron_counters_with_codes_and_reasons_in_the_key() {
    use tensorpool::client::{AeronTransport, ClientConfig, ClientEvent, DriverClient};
    use tensorpool::config::NoEnv;
    use tensorpool::driver::{DriverConfig, ShmDriver};
    use tensorpool_agent::{Agent, monotonic_ns};
    use tensorpool_codec::driver::Role as LeaseRole;

    let media = tensorpool_aeron::EmbeddedMediaDriver::start(
        tensorpool_aeron::MediaDriverConfig::default(),
    )
    .unwrap();
    let shm = driver_common::shm_tempdir();
    let text = format!(
        "[driver]\ninstance_id = \"counted\"\n[shm]\nbase_dir = \"{}\"\n[policies]\nprefault_shm = false\n\
         announce_period_ms = 50\n[profiles.p]\nheader_nslots = 8\n\
         payload_pools = [{{ pool_id = 1, stride_bytes = 256 }}]\n[streams.s]\nstream_id = {STREAM}\nprofile = \"p\"\n",
        shm.path().display()
    );
    let cfg = DriverConfig::from_toml(&text, &NoEnv).unwrap();
    let aeron = AeronClient::connect(media.dir(), DEADLINE).unwrap();
    let mut driver = ShmDriver::new(
        cfg.clone(),
        AeronClient::connect(media.dir(), DEADLINE).unwrap(),
        monotonic_ns(),
    )
    .unwrap();
    let client = |stream_id| {
        let c = ClientConfig::for_driver(stream_id, LeaseRole::Consumer, &cfg);
        let t = AeronTransport::new(&aeron, &c, DEADLINE).unwrap();
        DriverClient::new(c, t)
    };
    let (mut ok, mut bad) = (client(STREAM), client(STREAM + 1));
    let deadline = Instant::now() + DEADLINE;
    let (mut attached, mut rejected) = (false, false);
    while !(attached && rejected) {
        assert!(Instant::now() < deadline, "attach outcomes");
        let now = monotonic_ns();
        driver.do_work(now).unwrap();
        ok.do_work(now, &mut |e| {
            attached |= matches!(e, ClientEvent::Attached(_))
        });
        bad.do_work(now, &mut |e| {
            rejected |= matches!(e, ClientEvent::Rejected { .. })
        });
        std::thread::sleep(Duration::from_millis(1));
    }
    // wait (bounded) for a tick to publish the lease level and an announce count
    let deadline = Instant::now() + DEADLINE;
    loop {
        driver.do_work(monotonic_ns()).unwrap();
        let published = tensorpool_counters(&aeron)
            .into_iter()
            .any(|s| s.key.role == Role::Driver && s.type_n == 303 && s.value == 1)
            && tensorpool_counters(&aeron)
                .into_iter()
                .any(|s| s.key.role == Role::Driver && s.type_n == 306 && s.value > 0);
        if published {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the lease level was never published"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let c = driver.core().counters();
    let seen: Vec<Seen> = tensorpool_counters(&aeron)
        .into_iter()
        .filter(|s| s.key.role == Role::Driver)
        .collect();
    let by: HashMap<(u16, u16), &Seen> =
        seen.iter().map(|s| ((s.type_n, s.key.detail), s)).collect();
    assert!(
        seen.iter()
            .all(|s| s.key.stream_id == 0 && s.key.client_id == 0)
    );
    assert_eq!(by[&(301, 0)].value as u64, c.attaches_granted);
    assert_eq!(c.attaches_granted, 1);
    assert_eq!(by[&(303, 0)].value, 1, "one lease");
    assert_eq!(by[&(305, 0)].value as u64, c.epoch_bumps);
    assert!(
        c.epoch_bumps >= 1,
        "provisioned before the counters existed"
    );
    assert!(by[&(306, 0)].value > 0, "announces");
    let rejects: Vec<&Seen> = seen.iter().filter(|s| s.type_n == 302).collect();
    assert_eq!(rejects.len(), 4, "one per rejection code");
    let total: i64 = rejects.iter().map(|s| s.value).sum();
    assert_eq!(total as u64, c.attaches_rejected);
    assert_eq!(total, 1);
    let hit = rejects.iter().find(|s| s.value == 1).unwrap();
    assert!(
        hit.label.starts_with("tp driver attaches rejected ")
            && hit.label.ends_with(": instance=counted"),
        "{}",
        hit.label
    );
    let revocations = seen.iter().filter(|s| s.type_n == 304).count();
    assert_eq!(revocations, 3, "detached, expired, revoked");
    drop((ok, bad, driver, aeron));
}
