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
