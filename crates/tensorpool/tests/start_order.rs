//! Standalone producers and consumers meeting whatever their start order and stream-id
//! conventions: a producer announcing on the control stream (Driver Model §17's default, as
//! the C producer does) is found by a default consumer; a consumer started before its base
//! dir exists waits for it.

mod common;

use common::*;
use tensorpool::streams::{CONTROL_STREAM_ID, Endpoint, Streams};

#[test]
fn dm_17_default_consumer_finds_a_producer_announcing_on_the_control_stream() {
    let world = World::new();
    let streams = Streams {
        announce: Endpoint::ipc(CONTROL_STREAM_ID),
        ..Streams::default()
    };
    let mut producer = world.producer().streams(streams).build().unwrap();
    let mut consumer = world.consumer().build().unwrap();
    assert!(consumer.config().announce_on_control, "the default");
    assert_ne!(
        consumer.config().streams.announce.stream_id,
        CONTROL_STREAM_ID,
        "the consumer's own announce stream stays the convention's 1001"
    );
    connect(&mut producer, &mut consumer);
    assert!(consumer.counters().announces > 0);
    drop(consumer);
    drop(producer);
    world.finish();
}

/// Polls `consumer` (bounded) until `cond` holds.
fn poll_until(
    what: &str,
    consumer: &mut tensorpool::consumer::Consumer,
    mut cond: impl FnMut(&tensorpool::consumer::Consumer) -> bool,
) {
    let deadline = std::time::Instant::now() + DEADLINE;
    let mut round = 0;
    while !cond(consumer) {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        if consumer.poll(|_| {}, 16).expect("poll") == 0 {
            idle(&mut round);
        }
    }
}

#[test]
fn consumer_started_before_its_base_dir_waits_for_it_then_maps() {
    let world = World::new();
    let late = world.base().join("late");
    let mut consumer = world.consumer().allowed_base_dir(&late).build().unwrap();
    assert_eq!(
        consumer.state(),
        tensorpool::consumer::ConsumerState::Unmapped
    );
    std::fs::create_dir(&late).unwrap();
    let mut producer = world.producer().standalone(&late).build().unwrap();
    connect(&mut producer, &mut consumer);
    assert_eq!(consumer.last_error(), None);
    drop(consumer);
    drop(producer);
    world.finish();
}

#[test]
fn a_base_dir_that_appears_as_a_symlink_or_someone_elses_is_refused() {
    let world = World::new();
    let link = world.base().join("link");
    let mut consumer = world.consumer().allowed_base_dir(&link).build().unwrap();
    let real = world.base().join("real");
    std::fs::create_dir(&real).unwrap();
    std::os::unix::fs::symlink(&real, &link).unwrap();
    poll_until("the symlink refused", &mut consumer, |c| {
        c.last_error().is_some()
    });
    let why = consumer.last_error().unwrap().to_owned();
    assert!(why.contains("symbolic link"), "{why}");
    drop(consumer);

    // Another user's directory (needs root to make one; skipped otherwise).
    let foreign = world.base().join("foreign");
    let mut consumer = world.consumer().allowed_base_dir(&foreign).build().unwrap();
    std::fs::create_dir(&foreign).unwrap();
    if std::os::unix::fs::chown(&foreign, Some(65_534), Some(65_534)).is_ok() {
        poll_until("the foreign dir refused", &mut consumer, |c| {
            c.last_error().is_some()
        });
        let why = consumer.last_error().unwrap().to_owned();
        assert!(why.contains("owned by uid 65534"), "{why}");
    }
    drop(consumer);
    world.finish();
}
