//! `consumer.catch_up`: a consumer that finds itself lapped (a frame lost to an overwrite)
//! drops the frames the producer is already half a ring past (cause `behind`) without reading
//! them, so it next reads frames with half a ring of headroom instead of the oldest one, which
//! the producer overwrites while it is read. A consumer never lapped loses nothing to it.
//! Counts only: the producer commits frames before the consumer polls.

mod common;

use common::*;
use tensorpool::consumer::{Consumer, DropCause};
use tensorpool::prelude::*;

/// Frames committed before the consumer polls (the ring has 16 slots).
const FRAMES: u64 = 40;

fn run(catch_up: bool, frames: u64) -> (Consumer, Vec<u64>) {
    let world = World::new();
    let mut producer = world.producer().build().unwrap();
    let mut consumer = world
        .consumer()
        .configure(|c| c.catch_up = catch_up)
        .build()
        .unwrap();
    connect(&mut producer, &mut consumer);
    let spec = TensorSpec::new(Dtype::Uint8, &[256]).unwrap();
    let mut first = None;
    for _ in 0..frames {
        let mut claim = producer.claim(&spec).unwrap();
        first.get_or_insert(claim.seq());
        claim.payload_mut().fill(7);
        claim.commit();
        producer.do_work(tensorpool::monotonic_ns());
    }
    let first = first.unwrap();
    let mut seqs = Vec::new();
    let deadline = std::time::Instant::now() + DEADLINE;
    let mut round = 0;
    while consumer.counters().accepted + consumer.drops().total() < frames {
        assert!(
            std::time::Instant::now() < deadline,
            "descriptors not counted"
        );
        let n = consumer
            .poll(|f: &Frame<'_>| seqs.push(f.seq() - first), 64)
            .unwrap();
        if n == 0 {
            idle(&mut round);
        }
    }
    drop(producer);
    (consumer, seqs)
}

#[test]
fn a_lapped_consumer_skips_what_the_producer_is_half_a_ring_past() {
    let (consumer, seqs) = run(true, FRAMES);
    // 0..24 were overwritten; 24..32 are behind (32..40 are begun); 32..40 are read.
    assert_eq!(seqs, (32..40).collect::<Vec<_>>());
    assert_eq!(consumer.counters().accepted, 8);
    assert_eq!(
        consumer.drops().get(DropCause::Behind),
        8,
        "{:?}",
        consumer.drops()
    );
    assert_eq!(consumer.drops().gap, 0, "a skipped frame is not a gap");
    assert!(
        consumer.drops().late() >= 8 + 24,
        "QoS drops_late counts the skipped frames with the overwritten ones: {:?}",
        consumer.drops()
    );
}

#[test]
fn with_catch_up_off_every_frame_still_in_the_ring_is_read() {
    let (consumer, seqs) = run(false, FRAMES);
    assert_eq!(seqs, (24..40).collect::<Vec<_>>());
    assert_eq!(consumer.drops().get(DropCause::Behind), 0);
}

#[test]
fn a_consumer_never_lapped_reads_every_frame_of_a_burst_of_almost_a_ring() {
    // 15 frames in a 16-slot ring: nothing was overwritten, so nothing is skipped, although
    // the first frames are more than half a ring behind the last.
    let (consumer, seqs) = run(true, 15);
    assert_eq!(seqs, (0..15).collect::<Vec<_>>());
    assert_eq!(consumer.drops().total(), 0, "{:?}", consumer.drops());
}

#[test]
fn catch_up_is_a_config_key() {
    let c = ConsumerConfig::new(STREAM);
    assert!(c.catch_up, "on by default");
}
