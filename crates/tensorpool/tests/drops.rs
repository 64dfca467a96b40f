//! Every drop rule of Wire Spec §10.2.1 and §8.2 (and the seqlock of §8.3): the test writes a
//! bad slot straight into the producer's header ring file, publishes a `FrameDescriptor` for
//! it on the descriptor stream, and sees the drop counted under its cause.

mod common;

use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use common::*;
use tensorpool::consumer::{Consumer, DropCause};
use tensorpool::prelude::*;
use tensorpool::streams::{DEFAULT_CHANNEL, DESCRIPTOR_STREAM_ID};
use tensorpool_aeron::Publication;
use tensorpool_codec::Message;
use tensorpool_codec::wire::{FrameDescriptor, ProgressUnit, SlotHeader, slot as slot_offsets};
use tensorpool_shm::slot::{encode_slot, slot_for_frame};
use tensorpool_shm::tensor::contiguous;
use tensorpool_shm::{DropReason, seqlock};

const NSLOTS: u64 = 16;

struct Rig {
    world: World,
    producer: Producer,
    consumer: Consumer,
    publication: Publication,
    ring: std::fs::File,
    epoch: u64,
}

impl Rig {
    fn new() -> Self {
        let world = World::new();
        let mut producer = world.producer().build().unwrap();
        let mut consumer = world.consumer().build().unwrap();
        connect(&mut producer, &mut consumer);
        let publication = world
            .ctx
            .client()
            .add_exclusive_publication(
                DEFAULT_CHANNEL,
                DESCRIPTOR_STREAM_ID,
                Duration::from_secs(5),
            )
            .unwrap();
        let ring = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(producer.header_ring_path().unwrap())
            .unwrap();
        let epoch = producer.epoch().unwrap();
        Self {
            world,
            producer,
            consumer,
            publication,
            ring,
            epoch,
        }
    }

    /// A valid slot for `seq` (u8 tensor of 64 bytes in pool 1).
    fn good_slot(seq: u64) -> SlotHeader {
        let t = contiguous(
            tensorpool_codec::wire::Dtype::Uint8,
            tensorpool_codec::wire::MajorOrder::Row,
            &[64],
        )
        .unwrap();
        slot_for_frame(seq, (seq % NSLOTS) as u32, 1, 64, &t)
    }

    fn write_slot(&self, seq: u64, slot: &SlotHeader, patch: impl FnOnce(&mut [u8; 256])) {
        let mut bytes = [0u8; 256];
        encode_slot(slot, &mut bytes).unwrap();
        patch(&mut bytes);
        self.ring
            .write_at(&bytes, 64 + (seq % NSLOTS) * 256)
            .unwrap();
    }

    fn descriptor(&mut self, epoch: u64, seq: u64) {
        let fd = FrameDescriptor {
            stream_id: STREAM,
            epoch,
            seq,
            timestamp_ns: None,
            meta_version: Some(0),
            trace_id: None,
        };
        let deadline = Instant::now() + DEADLINE;
        while Instant::now() < deadline {
            let r = self
                .publication
                .publish(fd.encoded_len(), |b| fd.encode(b).map(|_| ()));
            if r.is_ok() {
                return;
            }
            self.producer.do_work(tensorpool::monotonic_ns());
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("descriptor not published");
    }

    /// Publishes a descriptor and waits until it is counted (accepted or dropped).
    fn expect(&mut self, epoch: u64, seq: u64, cause: Option<DropCause>) {
        let before = (self.consumer.counters().accepted, self.consumer.drops());
        self.descriptor(epoch, seq);
        pump_until(
            "descriptor counted",
            &mut self.producer,
            &mut self.consumer,
            |_, c| c.counters().accepted != before.0 || c.drops().total() != before.1.total(),
        );
        match cause {
            None => assert_eq!(
                self.consumer.counters().accepted,
                before.0 + 1,
                "{:?}",
                self.consumer.drops()
            ),
            Some(cause) => {
                assert_eq!(
                    self.consumer.drops().get(cause),
                    before.1.get(cause) + 1,
                    "cause {cause:?}: {:?}",
                    self.consumer.drops()
                );
                assert_eq!(self.consumer.counters().accepted, before.0);
            }
        }
    }
}

#[test]
fn w_10_2_1_w_8_2_every_drop_rule_is_counted_under_its_cause() {
    let mut rig = Rig::new();
    let e = rig.epoch;
    let mut seq = 100;
    let mut next = || {
        seq += 1;
        seq
    };

    // The crafted slot path is sound: a good slot is accepted.
    let s = next();
    rig.write_slot(s, &Rig::good_slot(s), |_| {});
    rig.expect(e, s, None);

    // Seqlock (§8.3, §15.3): older sequence in the slot (stale), newer (overwritten: seq
    // mismatch), in progress (not committed).
    let s = next();
    rig.write_slot(s, &Rig::good_slot(s - NSLOTS), |_| {});
    rig.expect(e, s, Some(DropCause::Slot(DropReason::Stale)));
    let s = next();
    rig.write_slot(s, &Rig::good_slot(s + NSLOTS), |_| {});
    rig.expect(e, s, Some(DropCause::Slot(DropReason::Overwritten)));
    let s = next();
    let mut h = Rig::good_slot(s);
    h.seq_commit = seqlock::in_progress(s);
    rig.write_slot(s, &h, |_| {});
    rig.expect(e, s, Some(DropCause::Slot(DropReason::NotCommitted)));

    // Wrong epoch (§10.2.1).
    let s = next();
    rig.write_slot(s, &Rig::good_slot(s), |_| {});
    rig.expect(e + 1, s, Some(DropCause::EpochMismatch));

    // Slot rules (§8.2, §9, §10.2.1).
    type Corrupt = Box<dyn Fn(&mut SlotHeader)>;
    let cases: Vec<(DropReason, Corrupt)> = vec![
        (
            DropReason::PayloadSlotMismatch,
            Box::new(|h| h.payload_slot = (h.payload_slot + 1) % NSLOTS as u32),
        ),
        (
            DropReason::PayloadSlotMismatch,
            Box::new(|h| h.payload_slot = NSLOTS as u32 + 3),
        ),
        (
            DropReason::ValuesLenExceedsStride,
            Box::new(|h| h.values_len_bytes = 64 * 1024 + 64),
        ),
        (
            DropReason::NdimsOutOfRange,
            Box::new(|h| h.tensor.ndims = 0),
        ),
        (
            DropReason::NdimsOutOfRange,
            Box::new(|h| h.tensor.ndims = 9),
        ),
        (
            DropReason::ProgressStrideInvalid,
            Box::new(|h| {
                h.tensor.progress_unit = ProgressUnit::Rows;
                h.tensor.progress_stride_bytes = 3;
            }),
        ),
        (
            DropReason::ProgressStrideInvalid,
            Box::new(|h| {
                h.tensor.progress_unit = ProgressUnit::Rows;
                h.tensor.progress_stride_bytes = 0;
            }),
        ),
        (
            DropReason::PayloadOffsetNonZero,
            Box::new(|h| h.payload_offset = 64),
        ),
        (DropReason::UnknownPool, Box::new(|h| h.pool_id = 7)),
        (
            DropReason::StridesOverlap,
            Box::new(|h| {
                h.tensor.ndims = 2;
                h.tensor.dims[..2].copy_from_slice(&[4, 16]);
                h.tensor.strides[..2].copy_from_slice(&[8, 1]);
            }),
        ),
    ];
    for (reason, bad) in cases {
        let s = next();
        let mut h = Rig::good_slot(s);
        bad(&mut h);
        rig.write_slot(s, &h, |_| {});
        rig.expect(e, s, Some(DropCause::Slot(reason)));
    }

    // Embedded header checks (§8.3 step 5): template id and headerBytes length.
    let s = next();
    rig.write_slot(s, &Rig::good_slot(s), |b| {
        b[slot_offsets::TENSOR_HEADER_OFFSET + 2] = 99;
    });
    rig.expect(e, s, Some(DropCause::Slot(DropReason::EmbeddedTemplateId)));
    let s = next();
    rig.write_slot(s, &Rig::good_slot(s), |b| {
        b[slot_offsets::HEADER_BYTES_LEN_OFFSET] = 191;
    });
    rig.expect(e, s, Some(DropCause::Slot(DropReason::HeaderBytesLength)));

    // Sequence regression within an epoch: against the last sequence a slot proved (the
    // refused descriptors above moved nothing).
    let s = next();
    rig.write_slot(s, &Rig::good_slot(s), |_| {});
    rig.expect(e, s, None);
    rig.expect(e, s - 3, Some(DropCause::SeqRegressed));

    // Gap accounting: skipping 5 sequences counts 5 gap drops.
    let gap_before = rig.consumer.drops().gap;
    let s = s + 6;
    rig.write_slot(s, &Rig::good_slot(s), |_| {});
    rig.expect(e, s, None);
    assert_eq!(rig.consumer.drops().gap, gap_before + 5);
    assert!(
        rig.consumer.drops().late() >= 2,
        "not committed + overwritten count as late"
    );

    let Rig {
        world,
        producer,
        consumer,
        publication,
        ring,
        ..
    } = rig;
    drop((producer, consumer, publication, ring));
    world.finish();
}

#[test]
fn w_15_21_descriptor_for_unmapped_regions_is_dropped() {
    let world = World::new();
    let elsewhere = tempfile::Builder::new()
        .prefix("tp-test-other-")
        .tempdir_in("/dev/shm")
        .unwrap();
    let mut producer = world.producer().build().unwrap();
    // Allowed base dir excludes the producer's files: mapping fails, the consumer stays M0.
    let mut consumer = world
        .consumer()
        .allowed_base_dir(elsewhere.path())
        .build()
        .unwrap();
    pump_until("mapping attempted", &mut producer, &mut consumer, |_, c| {
        c.counters().map_failures > 0
    });
    assert_eq!(consumer.state(), ConsumerState::Unmapped);
    assert!(
        consumer.last_error().unwrap().contains("outside"),
        "{:?}",
        consumer.last_error()
    );
    let spec = TensorSpec::new(Dtype::Uint8, &[64]).unwrap();
    producer.offer(&spec, &[1u8; 64]).unwrap();
    pump_until("unmapped drop", &mut producer, &mut consumer, |_, c| {
        c.drops().get(DropCause::Unmapped) > 0
    });
    assert_eq!(consumer.counters().accepted, 0);
    drop((producer, consumer));
    world.finish();
}
