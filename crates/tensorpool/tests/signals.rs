//! Signals (issue 18 item 2) and waiting (item 4): consumer events, the frame count of a
//! poll, `poll_wait`, `Producer::wait_for_consumers` and the `Runner`. Losing the media
//! driver is tested with real processes in `crates/tp/tests/media_driver_loss.rs`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use tensorpool::consumer::{ConsumerEvent, DropCause, UnmapReason};
use tensorpool::prelude::*;
use tensorpool::runner::Runner;
use tensorpool_agent::SleepingIdleStrategy;

fn spec() -> TensorSpec {
    TensorSpec::new(Dtype::Uint8, &[256]).unwrap()
}

/// Polls (and runs the producer) until the consumer records an event matching `want`;
/// returns every event seen on the way.
fn wait_event(
    what: &str,
    producer: Option<&mut Producer>,
    consumer: &mut Consumer,
    want: impl Fn(&ConsumerEvent) -> bool,
) -> Vec<ConsumerEvent> {
    let deadline = Instant::now() + DEADLINE;
    let mut seen = Vec::new();
    let mut round = 0;
    let mut producer = producer;
    loop {
        while let Some(e) = consumer.poll_event() {
            seen.push(e);
            if want(&e) {
                return seen;
            }
        }
        assert!(Instant::now() < deadline, "no {what}; events {seen:?}");
        let mut w = consumer.poll(|_| {}, 16).expect("poll");
        if let Some(p) = producer.as_deref_mut() {
            w += p.do_work(tensorpool::monotonic_ns());
        }
        if w == 0 {
            idle(&mut round);
        }
    }
}

#[test]
fn consumer_events_say_mapped_epoch_changed_and_unmapped() {
    let world = World::new();
    let mut producer = world.producer().build().unwrap();
    let mut consumer = world
        .consumer()
        .configure(|c| c.activity_timeout = Duration::from_millis(500))
        .build()
        .unwrap();
    let first = producer.epoch().unwrap();
    let seen = wait_event("Mapped", Some(&mut producer), &mut consumer, |e| {
        matches!(e, ConsumerEvent::Mapped { .. })
    });
    assert_eq!(seen, vec![ConsumerEvent::Mapped { epoch: first }]);

    let second = producer.bump_epoch().unwrap();
    let seen = wait_event("EpochChanged", Some(&mut producer), &mut consumer, |e| {
        matches!(e, ConsumerEvent::EpochChanged { .. })
    });
    assert_eq!(
        seen.last(),
        Some(&ConsumerEvent::EpochChanged {
            from: first,
            to: second
        })
    );

    drop(producer); // closes: the epoch's files go, the activity stops
    let seen = wait_event("Unmapped", None, &mut consumer, |e| {
        matches!(e, ConsumerEvent::Unmapped { .. })
    });
    match seen.last() {
        Some(ConsumerEvent::Unmapped { epoch, reason }) => {
            assert_eq!(*epoch, second);
            assert_ne!(*reason, UnmapReason::Other, "{seen:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(consumer.events_lost(), 0);
    drop(consumer);
    world.finish();
}

#[test]
fn poll_frames_counts_frames_and_poll_wait_returns_on_the_first() {
    let world = World::new();
    let mut producer = world.producer().build().unwrap();
    let mut consumer = world.consumer().build().unwrap();
    connect(&mut producer, &mut consumer);

    // nothing published: the wait ends at its timeout with no frame
    let n = consumer
        .poll_wait(&mut |_: &Frame<'_>| {}, 16, Duration::from_millis(20))
        .unwrap();
    assert_eq!(n, 0);

    for _ in 0..3 {
        producer.offer(&spec(), &[7u8; 256]).unwrap();
    }
    let mut got = 0;
    let deadline = Instant::now() + DEADLINE;
    while got < 3 {
        assert!(Instant::now() < deadline, "{got} of 3 frames");
        let n = consumer
            .poll_wait(
                &mut |f: &Frame<'_>| assert_eq!(f.bytes()[0], 7),
                16,
                DEADLINE,
            )
            .unwrap();
        assert!(
            n >= 1,
            "poll_wait returned before its timeout without a frame"
        );
        got += n;
    }
    assert_eq!(got, 3);

    producer.offer(&spec(), &[8u8; 256]).unwrap();
    let mut frames = 0;
    let deadline = Instant::now() + DEADLINE;
    while frames == 0 {
        assert!(Instant::now() < deadline);
        let p = consumer.poll_frames(&mut |_: &Frame<'_>| {}, 16).unwrap();
        assert!(p.work >= p.frames);
        frames += p.frames;
    }
    assert_eq!(frames, 1);
    assert_eq!(consumer.counters().accepted, 4);
    drop((producer, consumer));
    world.finish();
}

#[test]
fn wait_for_consumers_then_no_frame_is_lost_to_unmapped() {
    let world = World::new();
    let mut producer = world.producer().build().unwrap();
    assert_eq!(producer.mapped_consumers(), 0);
    // no consumer yet: the wait times out, saying how many it saw
    assert_eq!(
        producer.wait_for_consumers(1, Duration::from_millis(10)),
        Err(tensorpool::producer::WaitError::Timeout {
            mapped: 0,
            wanted: 1
        })
    );
    let delivered = Arc::new(AtomicU64::new(0));
    let d = Arc::clone(&delivered);
    let consumer = world.consumer().build().unwrap();
    let runner = Runner::start(
        consumer.into_agent(
            move |_: &Frame<'_>| {
                d.fetch_add(1, Ordering::Relaxed);
            },
            16,
        ),
        SleepingIdleStrategy::new(Duration::from_micros(200)),
    )
    .unwrap();

    let mapped = producer.wait_for_consumers(1, DEADLINE).unwrap();
    assert_eq!(mapped, 1);
    // the consumer's own view agrees
    let epoch = producer.epoch().unwrap();
    assert_eq!(
        runner.with(|a| a.consumer().state()),
        ConsumerState::Mapped { epoch }
    );
    const N: u64 = 300;
    for seq in 0..N {
        let mut payload = [0u8; 256];
        fill(&mut payload, seq);
        producer.offer(&spec(), &payload).unwrap();
        producer.do_work(tensorpool::monotonic_ns());
        // stay within the ring (16 slots): a slow consumer would drop late frames
        let deadline = Instant::now() + DEADLINE;
        while delivered.load(Ordering::Relaxed) + 8 < seq {
            assert!(Instant::now() < deadline, "consumer stuck at {seq}");
            std::thread::sleep(Duration::from_micros(100));
        }
    }
    let deadline = Instant::now() + DEADLINE;
    while delivered.load(Ordering::Relaxed) < N {
        assert!(
            Instant::now() < deadline,
            "{} of {N} frames delivered; drops {:?}",
            delivered.load(Ordering::Relaxed),
            runner.with(|a| a.consumer().drops())
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let drops = runner.with(|a| a.consumer().drops());
    assert_eq!(drops.get(DropCause::Unmapped), 0);
    assert_eq!(drops.total(), 0, "{drops:?}");
    assert_eq!(runner.error_count(), 0);
    assert!(runner.is_running());
    let agent = runner.close().unwrap();
    assert_eq!(agent.consumer().counters().accepted, N);
    drop((producer, agent));
    world.finish();
}

#[test]
fn a_runner_drives_a_producer_while_another_thread_claims() {
    let world = World::new();
    let producer = world.producer().build().unwrap();
    let mut consumer = world.consumer().build().unwrap();
    let runner = Runner::start(
        producer,
        SleepingIdleStrategy::new(Duration::from_micros(200)),
    )
    .unwrap();
    // the runner announces: the consumer maps without anyone calling do_work here
    let deadline = Instant::now() + DEADLINE;
    let mut round = 0;
    while !matches!(consumer.state(), ConsumerState::Mapped { .. }) {
        assert!(Instant::now() < deadline, "not mapped");
        if consumer.poll(|_| {}, 16).unwrap() == 0 {
            idle(&mut round);
        }
    }
    runner.with(|p| p.offer(&spec(), &[1u8; 256])).unwrap();
    let mut got = 0;
    let deadline = Instant::now() + DEADLINE;
    while got == 0 {
        assert!(Instant::now() < deadline);
        got += consumer
            .poll_wait(&mut |_: &Frame<'_>| {}, 16, Duration::from_millis(100))
            .unwrap();
    }
    assert!(runner.cycles() > 0);
    assert_eq!(runner.error_count(), 0);
    assert_eq!(runner.last_error(), None);
    drop(runner); // stops, joins, closes the producer (its files go)
    drop(consumer);
    world.finish();
}
