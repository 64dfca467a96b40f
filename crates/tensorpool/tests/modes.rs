//! Consumer modes and per-consumer streams (Wire Spec §5, §10.1.2-§10.1.3, §11, §15.12):
//! RATE_LIMITED gating, per-consumer descriptor streams granted, rate-capped and declined,
//! closed when the consumer goes stale, and FALLBACK ordered by `ConsumerConfig`.

mod common;

use std::time::Duration;

use common::*;
use tensorpool::consumer::{BuildError, Consumer, DropCause, Mode};
use tensorpool::prelude::*;

/// Offers `n` frames whose capture timestamps are `spacing_ns` apart, polling the consumer
/// after each; returns the frames accepted.
fn offer_spaced(producer: &mut Producer, consumer: &mut Consumer, n: u64, spacing_ns: u64) -> u64 {
    let spec = TensorSpec::new(Dtype::Uint8, &[128]).unwrap();
    let base = tensorpool::monotonic_ns();
    let before = consumer.counters().accepted;
    for i in 0..n {
        let mut claim = producer.claim(&spec).unwrap();
        claim.set_timestamp_ns(base + i * spacing_ns);
        claim.payload_mut().fill(i as u8);
        claim.commit();
        let mut round = 0;
        // Let the descriptor arrive (bounded), so the 16-slot ring never laps the consumer.
        let deadline = std::time::Instant::now() + DEADLINE;
        while consumer
            .last_seq()
            .is_none_or(|s| s < producer.next_seq() - 1)
        {
            assert!(
                std::time::Instant::now() < deadline,
                "descriptor {i} never arrived"
            );
            if consumer.poll(|_| {}, 16).unwrap() == 0 {
                idle(&mut round);
            }
        }
    }
    consumer.counters().accepted - before
}

#[test]
fn w_11_rate_limited_gates_on_frame_timestamps() {
    let world = World::new();
    let mut producer = world.producer().build().unwrap();
    let mut consumer = world
        .consumer()
        .mode(Mode::RateLimited { max_rate_hz: 50 })
        .build()
        .unwrap();
    connect(&mut producer, &mut consumer);
    // 500 frames 2 ms apart = 1 s of frames; 50 Hz lets one in every 20 ms.
    let accepted = offer_spaced(&mut producer, &mut consumer, 500, 2_000_000);
    assert!((49..=51).contains(&accepted), "accepted {accepted}");
    assert_eq!(consumer.drops().get(DropCause::RateLimited), 500 - accepted);
    assert_eq!(consumer.drops().gap, 0);
    drop((producer, consumer));
    world.finish();
}

#[test]
fn w_5_per_consumer_descriptor_stream_requested_and_assigned() {
    let world = World::new();
    let mut producer = world.producer().build().unwrap();
    let mut consumer = world
        .consumer()
        .descriptor_stream(Endpoint::ipc(31_001))
        .build()
        .unwrap();
    pump_until(
        "per-consumer stream",
        &mut producer,
        &mut consumer,
        |p, c| {
            c.on_per_consumer_stream()
                && p.per_consumer_descriptor_streams() == 1
                && c.state() != ConsumerState::Unmapped
        },
    );
    let accepted = offer_spaced(&mut producer, &mut consumer, 20, 1_000);
    assert_eq!(accepted, 20);
    assert!(producer.counters().descriptors_per_consumer >= 20);
    assert_eq!(producer.counters().per_consumer_granted, 1);

    // Consumer gone: after 3-5x the hello interval the producer closes the stream.
    drop(consumer);
    let deadline = std::time::Instant::now() + DEADLINE;
    while producer.consumer_count() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "stale consumer never removed"
        );
        producer.do_work(tensorpool::monotonic_ns());
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(producer.per_consumer_descriptor_streams(), 0);
    assert_eq!(producer.counters().consumers_stale, 1);
    drop(producer);
    world.finish();
}

#[test]
fn w_5_max_rate_hz_caps_a_rate_limited_consumers_own_stream() {
    let world = World::new();
    let mut producer = world.producer().build().unwrap();
    let mut consumer = world
        .consumer()
        .mode(Mode::RateLimited { max_rate_hz: 50 })
        .descriptor_stream(Endpoint::ipc(31_002))
        .build()
        .unwrap();
    pump_until(
        "per-consumer stream",
        &mut producer,
        &mut consumer,
        |p, c| {
            c.on_per_consumer_stream()
                && p.per_consumer_descriptor_streams() == 1
                && c.state() != ConsumerState::Unmapped
        },
    );
    let spec = TensorSpec::new(Dtype::Uint8, &[128]).unwrap();
    let base = tensorpool::monotonic_ns();
    for i in 0..100u64 {
        let sent_before = producer.counters().descriptors_per_consumer;
        let mut claim = producer.claim(&spec).unwrap();
        claim.set_timestamp_ns(base + i * 2_000_000);
        let seq = claim.commit();
        if producer.counters().descriptors_per_consumer > sent_before {
            pump_until("capped descriptor", &mut producer, &mut consumer, |_, c| {
                c.last_seq() == Some(seq)
            });
        }
    }
    let c = producer.counters();
    assert_eq!(c.descriptors_per_consumer, 10, "{c:?}");
    assert_eq!(c.descriptors_rate_capped, 90);
    assert_eq!(consumer.counters().accepted, 10);
    // A throttled per-consumer stream skips sequences on purpose: not counted as gaps.
    assert_eq!(consumer.drops().gap, 0);
    drop((producer, consumer));
    world.finish();
}

#[test]
fn w_10_1_3_per_consumer_stream_requested_and_declined() {
    let world = World::new();
    let mut producer = world
        .producer()
        .configure(|c| c.per_consumer_streams = false)
        .build()
        .unwrap();
    let mut consumer = world
        .consumer()
        .descriptor_stream(Endpoint::ipc(31_003))
        .build()
        .unwrap();
    pump_until("declined", &mut producer, &mut consumer, |p, c| {
        p.counters().per_consumer_declined >= 1
            && c.counters().configs >= 1
            && c.state() != ConsumerState::Unmapped
    });
    assert!(
        !consumer.on_per_consumer_stream(),
        "stays on the shared stream"
    );
    assert_eq!(producer.per_consumer_descriptor_streams(), 0);
    assert_eq!(offer_spaced(&mut producer, &mut consumer, 10, 1_000), 10);
    drop((producer, consumer));
    world.finish();
}

#[test]
fn w_10_1_2_a_channel_without_stream_id_is_never_requested() {
    let world = World::new();
    let err = world
        .consumer()
        .descriptor_stream(Endpoint::new("aeron:ipc", 0))
        .build()
        .unwrap_err();
    assert!(
        matches!(
            err,
            BuildError::InvalidConfig {
                field: "descriptor_request",
                ..
            }
        ),
        "{err}"
    );
    world.finish();
}

#[test]
fn w_10_1_3_use_shm_false_enters_fallback_with_the_uri() {
    for (uri, supported) in [
        ("aeron:udp?endpoint=10.0.0.2:40123", true),
        ("ftp://nowhere", false),
    ] {
        let world = World::new();
        let mut producer = world
            .producer()
            .configure(|c| {
                c.use_shm = false;
                c.payload_fallback_uri = uri.into();
            })
            .build()
            .unwrap();
        let mut consumer = world.consumer().build().unwrap();
        pump_until("fallback", &mut producer, &mut consumer, |_, c| {
            c.state() == ConsumerState::Fallback
        });
        let f = consumer.fallback().unwrap();
        assert_eq!(
            (f.uri.as_str(), f.supported, f.ordered),
            (uri, supported, true)
        );
        // ... and says so as an event (issue 18: signals)
        let mut events = Vec::new();
        consumer.drain_events(|e| events.push(e));
        assert!(
            events.contains(&tensorpool::consumer::ConsumerEvent::FallbackActive),
            "{events:?}"
        );
        // Frames are not taken from SHM while in FALLBACK.
        let spec = TensorSpec::new(Dtype::Uint8, &[64]).unwrap();
        producer.offer(&spec, &[0u8; 64]).unwrap();
        pump_until("dropped", &mut producer, &mut consumer, |_, c| {
            c.drops().get(DropCause::Unmapped) >= 1
        });
        assert_eq!(consumer.counters().accepted, 0);
        drop((producer, consumer));
        world.finish();
    }
}
