//! Announce handling (Wire Spec §10.1.1, §15.1, §15.2, §15.14, §15.21): freshness, the
//! join-time rule (MONOTONIC only), highest epoch preferred, remap at an epoch bump while
//! frames flow (nothing accepted from the old mapping after the switch), liveness.

mod common;

use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use common::*;
use tensorpool::consumer::{Consumer, DropCause};
use tensorpool::prelude::*;
use tensorpool::streams::{ANNOUNCE_STREAM_ID, DEFAULT_CHANNEL};
use tensorpool_aeron::Publication;
use tensorpool_codec::wire::{ClockDomain, PayloadPool, ShmPoolAnnounce};
use tensorpool_codec::{Bytes, Message};
use tensorpool_shm::layout::{CreateOptions, EpochSpec, FileModes, ShmLayout};
use tensorpool_shm::pool::PoolGeometry;
use tensorpool_shm::{CreatedEpoch, LAYOUT_VERSION};

struct Source {
    layout: ShmLayout,
    publication: Publication,
    epochs: std::cell::RefCell<Vec<u64>>,
}

impl Drop for Source {
    fn drop(&mut self) {
        for e in self.epochs.borrow().iter() {
            self.layout.remove_epoch(STREAM, *e).unwrap();
        }
    }
}

impl Source {
    fn new(world: &World) -> Self {
        let layout = ShmLayout::new(world.base(), "default", FileModes::default()).unwrap();
        let publication = world
            .ctx
            .client()
            .add_exclusive_publication(DEFAULT_CHANNEL, ANNOUNCE_STREAM_ID, Duration::from_secs(5))
            .unwrap();
        Self {
            layout,
            publication,
            epochs: Default::default(),
        }
    }

    fn create(&self, epoch: u64) -> CreatedEpoch {
        self.create_at(epoch, tensorpool::monotonic_ns())
    }

    /// An epoch whose superblocks say they were last active at `activity_ns`.
    fn create_at(&self, epoch: u64, activity_ns: u64) -> CreatedEpoch {
        let spec = EpochSpec {
            layout_version: LAYOUT_VERSION,
            stream_id: STREAM,
            epoch,
            header_nslots: 16,
            pools: vec![PoolGeometry {
                pool_id: 1,
                stride_bytes: 4096,
                nslots: 16,
            }],
        };
        let opts = CreateOptions {
            prefault: false,
            pid: u64::from(std::process::id()),
            now_ns: activity_ns,
        };
        self.epochs.borrow_mut().push(epoch);
        self.layout.create_epoch(&spec, opts).unwrap()
    }

    fn announce(&mut self, created: &CreatedEpoch, epoch: u64, ts: u64, domain: ClockDomain) {
        self.announce_nslots(created, epoch, ts, domain, 16);
    }

    fn announce_nslots(
        &mut self,
        created: &CreatedEpoch,
        epoch: u64,
        ts: u64,
        domain: ClockDomain,
        nslots: u32,
    ) {
        let uris: Vec<String> = created
            .pool_uris
            .iter()
            .map(|(_, u)| u.to_string())
            .collect();
        let pools: Vec<PayloadPool<'_>> = created
            .pool_uris
            .iter()
            .zip(&uris)
            .map(|((id, _), u)| PayloadPool {
                pool_id: *id,
                pool_nslots: nslots,
                stride_bytes: 4096,
                region_uri: Bytes::new(u.as_bytes()),
            })
            .collect();
        let header = created.header_uri.to_string();
        let msg = ShmPoolAnnounce {
            stream_id: STREAM,
            producer_id: 9,
            epoch,
            announce_timestamp_ns: ts,
            announce_clock_domain: domain,
            layout_version: LAYOUT_VERSION,
            header_nslots: nslots,
            header_slot_bytes: 256,
            payload_pools: pools.as_slice().into(),
            header_region_uri: Bytes::new(header.as_bytes()),
        };
        let deadline = Instant::now() + DEADLINE;
        while self
            .publication
            .publish(msg.encoded_len(), |b| msg.encode(b).map(|_| ()))
            .is_err()
        {
            assert!(Instant::now() < deadline, "announce not published");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

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

fn connected_consumer(world: &World, src: &Source) -> Consumer {
    let mut c = world.consumer().build().unwrap();
    poll_until("announce image", &mut c, |c| c.join_time_ns() > 0);
    let _ = src;
    c
}

#[test]
fn w_10_1_1_stale_announces_are_ignored_in_both_clock_domains() {
    let world = World::new();
    let mut src = Source::new(&world);
    let e = src.create(1000);
    let mut c = connected_consumer(&world, &src);
    src.announce(
        &e,
        1000,
        tensorpool::monotonic_ns() - 5_000_000_000,
        ClockDomain::Monotonic,
    );
    src.announce(
        &e,
        1000,
        tensorpool_agent::realtime_ns() - 5_000_000_000,
        ClockDomain::RealtimeSynced,
    );
    poll_until("two stale announces", &mut c, |c| {
        c.counters().announces_stale == 2
    });
    assert_eq!(c.state(), ConsumerState::Unmapped);
    src.announce(&e, 1000, tensorpool::monotonic_ns(), ClockDomain::Monotonic);
    poll_until("mapped", &mut c, |c| {
        c.state() == ConsumerState::Mapped { epoch: 1000 }
    });
    drop(c);
    drop(src);
    world.finish();
}

#[test]
fn w_10_1_1_pre_join_announces_are_ignored_only_for_monotonic() {
    let world = World::new();
    let mut src = Source::new(&world);
    let e = src.create(2000);
    let mut c = connected_consumer(&world, &src);
    let join = c.join_time_ns();
    // Fresh (well inside the 3 s window) but before the join time.
    src.announce(&e, 2000, join - 1_000_000, ClockDomain::Monotonic);
    poll_until("pre-join announce", &mut c, |c| {
        c.counters().announces_pre_join == 1
    });
    assert_eq!(c.state(), ConsumerState::Unmapped);
    // REALTIME_SYNCED: no join-time rule, only freshness.
    src.announce(
        &e,
        2000,
        tensorpool_agent::realtime_ns() - 1_000_000,
        ClockDomain::RealtimeSynced,
    );
    poll_until("mapped", &mut c, |c| {
        c.state() == ConsumerState::Mapped { epoch: 2000 }
    });
    assert_eq!(c.counters().announces_pre_join, 1);
    drop(c);
    drop(src);
    world.finish();
}

#[test]
fn w_10_1_1_highest_epoch_is_preferred() {
    let world = World::new();
    let mut src = Source::new(&world);
    let old = src.create(3000);
    let new = src.create(3001);
    let mut c = connected_consumer(&world, &src);
    src.announce(
        &new,
        3001,
        tensorpool::monotonic_ns(),
        ClockDomain::Monotonic,
    );
    poll_until("mapped new", &mut c, |c| {
        c.state() == ConsumerState::Mapped { epoch: 3001 }
    });
    src.announce(
        &old,
        3000,
        tensorpool::monotonic_ns(),
        ClockDomain::Monotonic,
    );
    poll_until("old ignored", &mut c, |c| {
        c.counters().announces_older_epoch == 1
    });
    assert_eq!(c.state(), ConsumerState::Mapped { epoch: 3001 });
    // An unmapped consumer that saw the newer epoch recently does not take the older one.
    let mut c2 = connected_consumer(&world, &src);
    src.announce(
        &new,
        3001,
        tensorpool::monotonic_ns(),
        ClockDomain::Monotonic,
    );
    poll_until("c2 mapped new", &mut c2, |c| {
        c.state() == ConsumerState::Mapped { epoch: 3001 }
    });
    drop((c, c2));
    drop(src);
    world.finish();
}

#[test]
fn w_15_14_stale_activity_and_changed_pid_unmap_and_wait_for_a_new_epoch() {
    let world = World::new();
    let mut src = Source::new(&world);
    let e = src.create(4000);
    let mut c = world
        .consumer()
        .configure(|c| c.activity_timeout = Duration::from_millis(300))
        .build()
        .unwrap();
    poll_until("image", &mut c, |c| c.join_time_ns() > 0);
    src.announce(&e, 4000, tensorpool::monotonic_ns(), ClockDomain::Monotonic);
    poll_until("mapped", &mut c, |c| {
        c.state() == ConsumerState::Mapped { epoch: 4000 }
    });
    // Nobody refreshes the activity timestamp: the producer is dead.
    poll_until("stale unmap", &mut c, |c| c.counters().unmaps_stale == 1);
    assert_eq!(c.state(), ConsumerState::Unmapped);
    src.announce(&e, 4000, tensorpool::monotonic_ns(), ClockDomain::Monotonic);
    poll_until("same epoch refused", &mut c, |c| {
        c.counters().announces_waiting == 1
    });
    assert_eq!(c.state(), ConsumerState::Unmapped);

    // A new epoch maps; then a pid change in its superblock unmaps.
    let e2 = src.create(4001);
    src.announce(
        &e2,
        4001,
        tensorpool::monotonic_ns(),
        ClockDomain::Monotonic,
    );
    poll_until("mapped 4001", &mut c, |c| {
        c.state() == ConsumerState::Mapped { epoch: 4001 }
    });
    let ring = std::fs::OpenOptions::new()
        .write(true)
        .open(created_path(&e2))
        .unwrap();
    ring.write_at(&(u64::from(std::process::id()) + 1).to_le_bytes(), 40)
        .unwrap();
    poll_until("pid change unmap", &mut c, |c| {
        c.counters().unmaps_superblock == 1
    });
    assert_eq!(c.state(), ConsumerState::Unmapped);
    drop(c);
    drop(src);
    world.finish();
}

fn created_path(e: &CreatedEpoch) -> std::path::PathBuf {
    e.header_uri.to_path_buf()
}

#[test]
fn w_15_21_remap_at_epoch_bump_while_frames_flow() {
    let world = World::new();
    let mut producer = world.producer().build().unwrap();
    let mut consumer = world.consumer().build().unwrap();
    connect(&mut producer, &mut consumer);
    let e1 = producer.epoch().unwrap();
    let spec = TensorSpec::new(Dtype::Uint8, &[256]).unwrap();
    let mut accepted: Vec<(u64, u64)> = Vec::new();
    let poll = |consumer: &mut Consumer, accepted: &mut Vec<(u64, u64)>| {
        consumer
            .poll(
                |f: &Frame<'_>| {
                    if f.recheck().is_ok() {
                        accepted.push((f.epoch(), f.seq()));
                    }
                },
                64,
            )
            .unwrap()
    };
    for i in 0..20u64 {
        producer.offer(&spec, &[i as u8; 256]).unwrap();
        producer.do_work(tensorpool::monotonic_ns());
        poll(&mut consumer, &mut accepted);
    }
    // Frames of the old epoch still in flight when the new epoch is announced.
    for i in 0..5u64 {
        producer.offer(&spec, &[i as u8; 256]).unwrap();
    }
    let e2 = producer.bump_epoch().unwrap();
    assert!(e2 > e1);
    assert_eq!(producer.next_seq(), 0, "seq restarts at 0 in a new epoch");
    producer.do_work(tensorpool::monotonic_ns()); // announces e2
    let deadline = Instant::now() + DEADLINE;
    let mut round = 0;
    let mut sent = 0;
    while accepted.iter().filter(|(e, _)| *e == e2).count() < 20 {
        assert!(
            Instant::now() < deadline,
            "frames of the new epoch never arrived"
        );
        if consumer.state() == (ConsumerState::Mapped { epoch: e2 }) && sent < 40 {
            producer.offer(&spec, &[7u8; 256]).unwrap();
            sent += 1;
        }
        let w = producer.do_work(tensorpool::monotonic_ns()) + poll(&mut consumer, &mut accepted);
        if w == 0 {
            idle(&mut round);
        }
    }
    let first_new = accepted.iter().position(|(e, _)| *e == e2).unwrap();
    assert!(
        accepted[first_new..].iter().all(|(e, _)| *e == e2),
        "old-epoch frame accepted after the switch: {accepted:?}"
    );
    assert!(accepted[..first_new].iter().all(|(e, _)| *e == e1));
    assert_eq!(consumer.counters().remaps, 1);
    assert!(
        consumer.drops().get(DropCause::EpochMismatch) >= 5,
        "{:?}",
        consumer.drops()
    );
    assert!(producer.epoch_dir().unwrap().ends_with(e2.to_string()));
    drop((producer, consumer));
    world.finish();
}

#[test]
fn w_15_1_superblock_mismatch_is_refused_without_partial_mapping() {
    let world = World::new();
    let mut src = Source::new(&world);
    let e = src.create(5000);
    let mut c = world
        .consumer()
        .configure(|c| c.remap_backoff = Duration::from_millis(50))
        .build()
        .unwrap();
    poll_until("image", &mut c, |c| c.join_time_ns() > 0);
    // The files hold 16 slots; the announce says 32.
    src.announce_nslots(
        &e,
        5000,
        tensorpool::monotonic_ns(),
        ClockDomain::Monotonic,
        32,
    );
    poll_until("refused", &mut c, |c| c.counters().map_failures == 1);
    assert_eq!(c.state(), ConsumerState::Unmapped);
    assert!(
        c.last_error().unwrap().contains("Nslots"),
        "{:?}",
        c.last_error()
    );
    // After the backoff (50 ms), a matching announce maps: announce (fresh each time) until
    // the consumer maps, the deadline a failure. Announces during the backoff are ignored.
    let deadline = Instant::now() + DEADLINE;
    while c.state() != (ConsumerState::Mapped { epoch: 5000 }) {
        assert!(
            Instant::now() < deadline,
            "a matching announce never mapped"
        );
        src.announce(&e, 5000, tensorpool::monotonic_ns(), ClockDomain::Monotonic);
        c.poll(|_| {}, 16).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        c.counters().map_failures,
        1,
        "the refused announce stays the only failure"
    );
    drop(c);
    drop(src);
    world.finish();
}

#[test]
fn w_15_14_stale_activity_is_refused_before_mapping() {
    let world = World::new();
    let mut src = Source::new(&world);
    // Fresh announce, but nobody has written the region for 10 s (timeout 3 s).
    let e = src.create_at(
        6000,
        tensorpool::monotonic_ns().saturating_sub(10_000_000_000),
    );
    let mut c = connected_consumer(&world, &src);
    src.announce(&e, 6000, tensorpool::monotonic_ns(), ClockDomain::Monotonic);
    poll_until("refused", &mut c, |c| c.counters().map_failures == 1);
    assert_eq!(c.state(), ConsumerState::Unmapped);
    assert!(
        c.last_error().is_some_and(|e| e.contains("stale")),
        "{:?}",
        c.last_error()
    );
    drop(c);
    drop(src);
    world.finish();
}
