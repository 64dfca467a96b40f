//! Nothing unproven changes consumer state (Wire Spec §10.1.1, §15.4, §15.21): a forger on
//! the announce and descriptor streams, next to a legitimate producer whose frames keep
//! flowing. A forged descriptor moves neither the last sequence nor the gap count; a forged
//! announce of a newer epoch is mapped and validated before anything is dropped, so its
//! failure keeps the current mapping, and it backs off for that announce only.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tensorpool::consumer::{Consumer, DropCause};
use tensorpool::prelude::*;
use tensorpool::streams::{ANNOUNCE_STREAM_ID, DEFAULT_CHANNEL, DESCRIPTOR_STREAM_ID};
use tensorpool_aeron::Publication;
use tensorpool_codec::wire::{ClockDomain, FrameDescriptor, PayloadPool, ShmPoolAnnounce};
use tensorpool_codec::{Bytes, Message};
use tensorpool_shm::LAYOUT_VERSION;

struct Rig {
    world: World,
    producer: Producer,
    consumer: Consumer,
    announces: Publication,
    descriptors: Publication,
    spec: TensorSpec,
}

fn publish<'a, M: Message<'a>>(p: &mut Publication, producer: &mut Producer, msg: &M) {
    let deadline = Instant::now() + DEADLINE;
    while p
        .publish(msg.encoded_len(), |b| msg.encode(b).map(|_| ()))
        .is_err()
    {
        assert!(Instant::now() < deadline, "forged message not published");
        producer.do_work(tensorpool::monotonic_ns());
        std::thread::sleep(Duration::from_millis(1));
    }
}

impl Rig {
    fn new(remap_backoff: Duration) -> Self {
        let world = World::new();
        let mut producer = world.producer().build().unwrap();
        let mut consumer = world
            .consumer()
            .configure(|c| c.remap_backoff = remap_backoff)
            .build()
            .unwrap();
        connect(&mut producer, &mut consumer);
        let client = world.ctx.client();
        let t = Duration::from_secs(5);
        let announces = client
            .add_exclusive_publication(DEFAULT_CHANNEL, ANNOUNCE_STREAM_ID, t)
            .unwrap();
        let descriptors = client
            .add_exclusive_publication(DEFAULT_CHANNEL, DESCRIPTOR_STREAM_ID, t)
            .unwrap();
        Self {
            world,
            producer,
            consumer,
            announces,
            descriptors,
            spec: TensorSpec::new(Dtype::Uint8, &[256]).unwrap(),
        }
    }

    /// `n` legitimate frames, each accepted with its own bytes before the next is offered.
    fn flow(&mut self, n: u64) {
        for _ in 0..n {
            let seq = self.producer.next_seq();
            let mut payload = [0u8; 256];
            fill(&mut payload, seq);
            self.producer.offer(&self.spec, &payload).unwrap();
            let before = self.consumer.counters().accepted;
            let deadline = Instant::now() + DEADLINE;
            let mut round = 0;
            let mut got = None;
            while got.is_none() {
                assert!(
                    Instant::now() < deadline,
                    "legitimate frame {seq} not accepted: {:?} {:?}",
                    self.consumer.counters(),
                    self.consumer.drops()
                );
                let w = self.producer.do_work(tensorpool::monotonic_ns())
                    + self
                        .consumer
                        .poll(
                            |f: &Frame<'_>| {
                                let ok = f.bytes() == payload;
                                if f.recheck().is_ok() {
                                    got = Some((f.seq(), ok));
                                }
                            },
                            16,
                        )
                        .unwrap();
                if w == 0 {
                    idle(&mut round);
                }
            }
            assert_eq!(got, Some((seq, true)));
            assert_eq!(self.consumer.counters().accepted, before + 1);
        }
    }

    fn forge_descriptor(&mut self, epoch: u64, seq: u64) {
        let fd = FrameDescriptor {
            stream_id: STREAM,
            epoch,
            seq,
            timestamp_ns: None,
            meta_version: Some(0),
            trace_id: None,
        };
        let before = self.consumer.drops().total();
        publish(&mut self.descriptors, &mut self.producer, &fd);
        pump_until(
            "forged descriptor dropped",
            &mut self.producer,
            &mut self.consumer,
            |_, c| c.drops().total() > before,
        );
    }

    /// An announce of `epoch` naming the producer's real header ring (whose superblock says
    /// another epoch) and a pool that does not exist.
    fn forge_announce(&mut self, epoch: u64) {
        let header = self.producer.header_ring_path().unwrap();
        let header = format!("shm:file?path={}", header.display());
        let pool = format!("shm:file?path={}/no-such-pool", self.world.base().display());
        let pools = [PayloadPool {
            pool_id: 1,
            pool_nslots: 16,
            stride_bytes: 64 * 1024,
            region_uri: Bytes::new(pool.as_bytes()),
        }];
        let msg = ShmPoolAnnounce {
            stream_id: STREAM,
            producer_id: 666,
            epoch,
            announce_timestamp_ns: tensorpool::monotonic_ns(),
            announce_clock_domain: ClockDomain::Monotonic,
            layout_version: LAYOUT_VERSION,
            header_nslots: 16,
            header_slot_bytes: 256,
            payload_pools: pools.as_slice().into(),
            header_region_uri: Bytes::new(header.as_bytes()),
        };
        let before = self.consumer.counters().announces;
        publish(&mut self.announces, &mut self.producer, &msg);
        pump_until(
            "forged announce handled",
            &mut self.producer,
            &mut self.consumer,
            |_, c| c.counters().announces > before,
        );
    }

    fn finish(self) {
        let Rig {
            world,
            producer,
            consumer,
            announces,
            descriptors,
            ..
        } = self;
        drop((producer, consumer, announces, descriptors));
        world.finish();
    }
}

#[test]
fn w_15_4_forged_descriptors_move_neither_sequence_nor_gaps() {
    let mut rig = Rig::new(Duration::from_secs(1));
    let epoch = rig.producer.epoch().unwrap();
    rig.flow(5);
    let last = rig.consumer.last_seq().unwrap();
    let drops = rig.consumer.drops();
    // Far ahead (it used to make every real frame a regression), the largest sequence, and
    // a real sequence not yet written.
    for seq in [last + 1_000_000, u64::MAX >> 1, last + 1] {
        rig.forge_descriptor(epoch, seq);
        assert_eq!(rig.consumer.last_seq(), Some(last), "forged seq {seq}");
    }
    // A forged epoch is refused before the slot is even read.
    rig.forge_descriptor(epoch + 1, last + 2);
    assert_eq!(
        rig.consumer.drops().get(DropCause::EpochMismatch),
        drops.get(DropCause::EpochMismatch) + 1
    );
    rig.flow(20);
    let after = rig.consumer.drops();
    assert_eq!(after.get(DropCause::SeqRegressed), 0, "{after:?}");
    assert_eq!(
        after.gap, drops.gap,
        "forged descriptors added gaps: {after:?}"
    );
    assert_eq!(rig.consumer.last_seq(), Some(last + 20));
    rig.finish();
}

#[test]
fn w_15_21_forged_newer_epoch_is_validated_before_the_mapping_goes() {
    let mut rig = Rig::new(Duration::from_secs(60));
    let epoch = rig.producer.epoch().unwrap();
    rig.flow(5);
    rig.forge_announce(epoch + 1);
    let c = rig.consumer.counters();
    assert_eq!(c.map_failures, 1);
    assert_eq!(c.remaps, 0);
    assert_eq!(rig.consumer.state(), ConsumerState::Mapped { epoch });
    assert!(
        rig.consumer
            .last_error()
            .is_some_and(|e| e.contains(&format!("epoch {}", epoch + 1))),
        "{:?}",
        rig.consumer.last_error()
    );
    let r = rig
        .consumer
        .last_rejection()
        .expect("rejection recorded")
        .clone();
    assert_eq!(r.epoch, epoch + 1);
    assert!(r.reason.contains("Epoch"), "{r:?}");
    assert!(r.at_unix_ns > 0);
    rig.flow(10);
    // The same forged announce again: backing off, no second mapping attempt.
    rig.forge_announce(epoch + 1);
    let c = rig.consumer.counters();
    assert_eq!(c.map_failures, 1);
    assert_eq!(c.announces_waiting, 1);
    rig.flow(5);
    assert_eq!(rig.consumer.drops().get(DropCause::SeqRegressed), 0);
    rig.finish();
}

#[test]
fn w_15_21_a_failed_announce_backs_off_for_that_announce_only() {
    let mut rig = Rig::new(Duration::from_secs(60));
    let epoch = rig.producer.epoch().unwrap();
    rig.flow(3);
    // A forged epoch far above anything real, then one just above: both fail, neither is
    // taken as the highest epoch, neither blocks the real next epoch.
    rig.forge_announce(u64::MAX >> 2);
    rig.forge_announce(epoch + 1);
    assert_eq!(rig.consumer.counters().map_failures, 2);
    assert_eq!(rig.consumer.state(), ConsumerState::Mapped { epoch });
    rig.flow(3);
    let e2 = rig.producer.bump_epoch().unwrap();
    pump_until(
        "remapped to the real next epoch",
        &mut rig.producer,
        &mut rig.consumer,
        |_, c| c.state() == ConsumerState::Mapped { epoch: e2 },
    );
    assert_eq!(rig.consumer.counters().remaps, 1);
    assert_eq!(rig.consumer.counters().map_failures, 2);
    rig.flow(10);
    rig.finish();
}

/// The producer's pool file truncated under a live consumer (SIGBUS): the consumer survives,
/// drops the frame it was reading as `region_dead`, unmaps, and maps the next epoch.
#[test]
fn w_15_21_a_pool_truncated_under_the_consumer_unmaps_and_the_next_epoch_maps() {
    let mut rig = Rig::new(Duration::from_secs(1));
    let epoch = rig.producer.epoch().unwrap();
    rig.flow(3);
    let pool = rig.producer.epoch_dir().unwrap().join("1.pool");
    let dead = DropCause::Slot(tensorpool_shm::DropReason::RegionDead);
    let accepted = rig.consumer.counters().accepted;
    // Committed first, truncated next: the consumer's read of the payload is what finds the
    // truncation. (Truncated before the write, the producer's own write finds it and the
    // frame is never committed, so the consumer never reads the pool.)
    rig.producer.offer(&rig.spec, &[9u8; 256]).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&pool)
        .unwrap()
        .set_len(0)
        .unwrap();
    let deadline = Instant::now() + DEADLINE;
    let mut round = 0;
    let mut sum = 0u64;
    while rig.consumer.drops().get(dead) == 0 {
        assert!(Instant::now() < deadline, "{:?}", rig.consumer.drops());
        let w = rig.producer.do_work(tensorpool::monotonic_ns())
            + rig
                .consumer
                .poll(
                    |f: &Frame<'_>| sum += f.bytes().iter().map(|&b| u64::from(b)).sum::<u64>(),
                    16,
                )
                .unwrap();
        if w == 0 {
            idle(&mut round);
        }
    }
    assert_eq!(sum, 0, "the bytes read were the zero pages");
    assert_eq!(rig.consumer.counters().accepted, accepted);
    assert_eq!(rig.consumer.counters().unmaps_dead, 1);
    let r = rig.consumer.last_rejection().unwrap();
    assert_eq!(r.epoch, epoch);
    assert!(r.reason.starts_with("region_dead"), "{r:?}");
    assert_eq!(rig.consumer.state(), ConsumerState::Unmapped);
    let e2 = rig.producer.bump_epoch().unwrap();
    assert!(e2 > epoch);
    pump_until(
        "mapped the next epoch",
        &mut rig.producer,
        &mut rig.consumer,
        |_, c| c.state() == ConsumerState::Mapped { epoch: e2 },
    );
    rig.flow(5);
    rig.finish();
}

/// `max_mapped_bytes`: an announce whose regions would take more is refused before any file
/// is opened; within the cap it maps.
#[test]
fn w_15_21_regions_above_max_mapped_bytes_are_refused_before_opening() {
    let world = World::new();
    let mut producer = world.producer().build().unwrap();
    // 16 slots: ring 64 + 16 * 256, pool 64 + 16 * 64 KiB.
    let needed = 64 + 16 * 256 + 64 + 16 * 64 * 1024;
    let mut small = world
        .consumer()
        .configure(|c| c.max_mapped_bytes = needed - 1)
        .build()
        .unwrap();
    pump_until("refused", &mut producer, &mut small, |_, c| {
        c.counters().map_failures > 0
    });
    assert_eq!(small.state(), ConsumerState::Unmapped);
    assert!(
        small
            .last_error()
            .is_some_and(|e| e.contains("max_mapped_bytes")),
        "{:?}",
        small.last_error()
    );
    drop(small);
    let mut exact = world
        .consumer()
        .configure(|c| c.max_mapped_bytes = needed)
        .build()
        .unwrap();
    connect(&mut producer, &mut exact);
    drop((producer, exact));
    world.finish();
}
