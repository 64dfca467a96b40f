//! Role rules observed one at a time, each deterministic:
//! - Wire Spec §8.3 step 6: after the handler has read a frame, the consumer re-reads the
//!   slot's commit word and sequence; a frame the producer overwrote while the handler ran is a
//!   late drop, never an accepted frame (the handler itself makes the producer lap the ring, so
//!   the overwrite happens during the handler every time).
//! - Wire Spec §9: a frame no pool holds is dropped and counted by the producer, never blocked
//!   on, and the next frame goes on.
//! - Wire Spec §10.4.1 / §10.4.2: `QosConsumer` and `QosProducer`, read off the QoS stream and
//!   decoded, carry the roles' own state.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tensorpool::prelude::*;
use tensorpool::producer::ClaimError;
use tensorpool::streams::{DEFAULT_CHANNEL, QOS_STREAM_ID};
use tensorpool_codec::Message;
use tensorpool_codec::wire::{Mode, QosConsumer, QosProducer};

/// The world's producer has 16 header slots: 16 commits lap the ring once.
const RING: u64 = 16;

#[test]
fn w_8_3_a_frame_overwritten_during_the_handler_is_a_late_drop_not_accepted() {
    let world = World::new();
    let mut producer = world.producer().build().unwrap();
    // Catching up would skip half of the lap below (the consumer was just lapped); this test
    // is about the frames themselves: every one still in the ring is intact.
    let mut consumer = world
        .consumer()
        .configure(|c| c.catch_up = false)
        .build()
        .unwrap();
    connect(&mut producer, &mut consumer);
    let spec = TensorSpec::new(Dtype::Uint8, &[64]).unwrap();
    let commit = |producer: &mut Producer, fill: u8| {
        let mut claim = producer.claim(&spec).unwrap();
        claim.payload_mut().fill(fill);
        claim.commit();
    };

    // a frame accepted the ordinary way (the control: the path works)
    commit(&mut producer, 1);
    pump_until(
        "the first frame accepted",
        &mut producer,
        &mut consumer,
        |_, c| c.counters().accepted == 1,
    );

    // the frame whose handler sees its slot overwritten
    commit(&mut producer, 2);
    let target = producer.counters().committed - 1;
    let (accepted, late) = (consumer.counters().accepted, consumer.drops().late());
    let mut seen: Option<u64> = None;
    let deadline = std::time::Instant::now() + DEADLINE;
    let mut round = 0;
    while seen.is_none() {
        assert!(std::time::Instant::now() < deadline, "no descriptor");
        // one fragment per poll: exactly the target's descriptor is handled
        let w = consumer
            .poll(
                |f: &Frame<'_>| {
                    seen = Some(f.seq());
                    assert_eq!(f.bytes()[0], 2, "the handler reads the committed frame");
                    // the producer laps the ring while the handler runs
                    for i in 0..RING {
                        commit(&mut producer, 3 + i as u8);
                    }
                },
                1,
            )
            .unwrap();
        if w == 0 {
            idle(&mut round);
        }
    }
    assert_eq!(seen, Some(target));
    let (c, d) = (consumer.counters(), consumer.drops());
    assert_eq!(
        c.accepted, accepted,
        "the overwritten frame is not accepted"
    );
    assert_eq!(d.late(), late + 1, "it is a late drop: {d:?}");

    // the frames committed during the handler are intact: they are accepted
    pump_until("the lap accepted", &mut producer, &mut consumer, |_, c| {
        c.counters().accepted == accepted + RING
    });
    drop((consumer, producer));
    world.finish();
}

#[test]
fn w_9_a_frame_no_pool_holds_is_dropped_and_counted_never_blocked() {
    let world = World::new();
    let mut producer = world.producer().build().unwrap();
    let mut consumer = world.consumer().build().unwrap();
    connect(&mut producer, &mut consumer);
    // the world's only pool has a 64 KiB stride
    let big = TensorSpec::new(Dtype::Uint8, &[64 * 1024 + 1]).unwrap();
    let err = producer.claim(&big).map(|_| ()).unwrap_err();
    assert!(
        matches!(
            err,
            ClaimError::NoPoolFits {
                len: 65_537,
                largest_stride: 65_536
            }
        ),
        "{err}"
    );
    let c = producer.counters();
    assert_eq!((c.drops_no_pool, c.committed), (1, 0));
    // the next frame that fits goes on as usual
    let small = TensorSpec::new(Dtype::Uint8, &[64 * 1024]).unwrap();
    let mut claim = producer.claim(&small).unwrap();
    claim.payload_mut().fill(1);
    assert_eq!(claim.commit(), 0, "the dropped frame used no sequence");
    pump_until(
        "the frame after the drop",
        &mut producer,
        &mut consumer,
        |_, c| c.counters().accepted == 1,
    );
    drop((consumer, producer));
    world.finish();
}

#[test]
fn w_10_4_1_qos_consumer_reports_the_consumers_own_state() {
    let world = World::new();
    let mut qos = world
        .ctx
        .client()
        .add_subscription(DEFAULT_CHANNEL, QOS_STREAM_ID, Duration::from_secs(5))
        .unwrap();
    let mut producer = world.producer().build().unwrap();
    let mut consumer = world.consumer().build().unwrap();
    connect(&mut producer, &mut consumer);
    let spec = TensorSpec::new(Dtype::Uint8, &[64]).unwrap();
    let commit = |producer: &mut Producer| {
        let mut claim = producer.claim(&spec).unwrap();
        claim.payload_mut().fill(7);
        claim.commit();
    };
    for _ in 0..5 {
        commit(&mut producer);
    }
    pump_until(
        "five frames accepted",
        &mut producer,
        &mut consumer,
        |_, c| c.counters().accepted == 5,
    );
    // a late drop: the producer laps the 16-slot ring while the handler runs
    commit(&mut producer);
    let deadline = Instant::now() + DEADLINE;
    let mut handled = false;
    while !handled {
        assert!(Instant::now() < deadline, "no descriptor");
        consumer
            .poll(
                |_f: &Frame<'_>| {
                    handled = true;
                    for _ in 0..16 {
                        commit(&mut producer);
                    }
                },
                1,
            )
            .unwrap();
    }
    pump_until("the lap accepted", &mut producer, &mut consumer, |p, c| {
        c.last_seq() == Some(p.counters().committed - 1)
    });
    let late = consumer.drops().late();
    assert!(late >= 1, "{:?}", consumer.drops());
    let last_seq = consumer.last_seq().unwrap();

    // The next QosConsumer of this consumer carries that state (QoS every 100 ms here).
    let deadline = Instant::now() + DEADLINE;
    let mut report: Option<QosConsumer> = None;
    let mut producer_report: Option<QosProducer> = None;
    let next_seq = producer.counters().committed;
    let mut round = 0;
    loop {
        assert!(
            Instant::now() < deadline,
            "no QosConsumer with last seq {last_seq} / QosProducer at {next_seq}; last ones {report:?} {producer_report:?}"
        );
        let mut w = producer.do_work(tensorpool::monotonic_ns());
        w += consumer.poll(|_| {}, 16).unwrap();
        w += qos
            .poll(
                |bytes, _| {
                    if let Ok(m) = QosConsumer::decode(bytes) {
                        report = Some(m);
                    } else if let Ok(m) = QosProducer::decode(bytes) {
                        producer_report = Some(m);
                    }
                },
                16,
            )
            .unwrap();
        if report
            .as_ref()
            .is_some_and(|r| r.last_seq_seen == last_seq && r.drops_late == late)
            && producer_report
                .as_ref()
                .is_some_and(|r| r.current_seq == next_seq)
        {
            break;
        }
        if w == 0 {
            idle(&mut round);
        } else {
            round = 0;
        }
    }
    let r = report.unwrap();
    assert_eq!(r.stream_id, STREAM);
    assert_eq!(r.consumer_id, consumer.config().consumer_id);
    assert_ne!(r.consumer_id, 0);
    assert_eq!(r.epoch, producer.epoch().unwrap());
    assert_eq!(r.last_seq_seen, last_seq);
    assert_eq!(r.drops_gap, consumer.drops().gap);
    assert_eq!(r.drops_late, late);
    assert_eq!(r.mode, Mode::Stream);
    // QosProducer (§10.4.2): its stream, id, epoch and sequence (ours: the next to commit)
    let p = producer_report.unwrap();
    assert_eq!(p.stream_id, STREAM);
    assert_eq!(p.producer_id, producer.config().producer_id);
    assert_eq!(p.epoch, producer.epoch().unwrap());
    assert_eq!(p.current_seq, next_seq);
    drop((qos, consumer, producer));
    world.finish();
}
