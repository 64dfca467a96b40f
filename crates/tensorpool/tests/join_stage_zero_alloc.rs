//! JB §5 / TL §5 at the join stage (sequence, latest-value and timestamp modes): after warm-up, a steady cycle of two traced producers,
//! the join stage (descriptors observed, readiness, each frame read by seq under the seqlock,
//! the set delivered and rechecked) and the output (claim, concatenation, recheck, commit,
//! `TraceLinkSet` encoded and sent) allocates nothing, under a counting global allocator.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tensorpool::join::{
    JoinBarrier, JoinMode, JoinOutput, JoinStage, LatestOrder, SequenceInput, SequenceMergeMap,
    SequenceRule, TimestampInput, TimestampMergeMap, TimestampRule,
};
use tensorpool::prelude::*;
use tensorpool_codec::merge::{ClockDomain, TimestampSource};
use tensorpool_testkit::CountingAllocator;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const OUT: u32 = 9000;

fn producer(world: &World, stream: u32, node: u32) -> Producer {
    world
        .ctx
        .producer(stream)
        .standalone(world.base())
        .header_nslots(64)
        .pool(1, 1024)
        .configure(|c| {
            c.announce_period = Duration::from_millis(50);
            c.qos_period = Duration::from_millis(100);
            c.consumer_hello_interval = Duration::from_millis(100);
            c.prefault = false;
            c.trace_ids = true;
            c.trace_node_id = Some(node);
        })
        .build()
        .unwrap()
}

fn seq_map() -> SequenceMergeMap {
    SequenceMergeMap {
        out_stream_id: OUT,
        epoch: 1,
        stale_timeout_ns: Some(10_000_000_000),
        inputs: vec![
            SequenceInput {
                stream_id: 10_001,
                rule: SequenceRule::Offset(0),
            },
            SequenceInput {
                stream_id: 10_002,
                rule: SequenceRule::Window(4),
            },
        ],
    }
}

#[test]
fn jb_5_the_join_stage_and_its_output_allocate_nothing_in_steady_state() {
    let mut barrier = JoinBarrier::new(OUT, JoinMode::Sequence);
    barrier
        .apply_sequence_map(&seq_map(), tensorpool::monotonic_ns())
        .unwrap();
    steady(barrier);
}

#[test]
fn jb_5_a_latest_value_stage_allocates_nothing_in_steady_state() {
    let mut barrier = JoinBarrier::new(OUT, JoinMode::LatestValue(LatestOrder::Sequence));
    barrier
        .apply_sequence_map(&seq_map(), tensorpool::monotonic_ns())
        .unwrap();
    steady(barrier);
}

#[test]
fn jb_5_a_timestamp_stage_allocates_nothing_in_steady_state() {
    let mut barrier = JoinBarrier::new(OUT, JoinMode::Timestamp);
    let input = |stream_id, rule| TimestampInput {
        stream_id,
        rule,
        source: TimestampSource::SlotHeader,
    };
    barrier
        .apply_timestamp_map(
            &TimestampMergeMap {
                out_stream_id: OUT,
                epoch: 1,
                stale_timeout_ns: None,
                clock_domain: ClockDomain::Monotonic,
                lateness_ns: 0,
                inputs: vec![
                    input(10_001, TimestampRule::OffsetNs(0)),
                    input(10_002, TimestampRule::WindowNs(1_000_000_000)),
                ],
            },
            tensorpool::monotonic_ns(),
        )
        .unwrap();
    steady(barrier);
}

/// Two traced producers, the stage over them with `barrier`, a traced output: warmed up,
/// then 500 cycles under the counting allocator.
fn steady(barrier: JoinBarrier) {
    let world = World::new();
    let mut producers = [producer(&world, 10_001, 1), producer(&world, 10_002, 2)];
    let consumers = [10_001, 10_002]
        .map(|s| {
            world
                .ctx
                .consumer(s)
                .allowed_base_dir(world.base())
                .configure(|c| {
                    c.hello_interval = Duration::from_millis(100);
                    c.qos_interval = Duration::from_millis(100);
                })
                .build()
                .unwrap()
        })
        .into_iter()
        .collect();
    let mut stage = JoinStage::new(&world.ctx, barrier, consumers).unwrap();
    let mut output = JoinOutput::new(&world.ctx, producer(&world, OUT, 3)).unwrap();
    let spec = TensorSpec::new(Dtype::Uint8, &[64]).unwrap();
    let payload = [7u8; 64];
    let cycle = |producers: &mut [Producer; 2], stage: &mut JoinStage, out: &mut JoinOutput| {
        for p in producers.iter_mut() {
            p.offer(&spec, &payload).unwrap();
            p.do_work(tensorpool::monotonic_ns());
        }
        stage
            .poll(
                |set| {
                    let _ = out.publish_concat(set);
                },
                16,
            )
            .unwrap();
        out.producer_mut().do_work(tensorpool::monotonic_ns());
    };
    // warm up: mapped, sets flowing, link sets sent
    let deadline = Instant::now() + DEADLINE;
    while output.counters().links_sent < 50 {
        assert!(
            Instant::now() < deadline,
            "{:?} {:?}",
            stage.counters(),
            output.counters()
        );
        cycle(&mut producers, &mut stage, &mut output);
        std::thread::sleep(Duration::from_micros(200));
    }
    let before = (stage.counters().sets, output.counters().links_sent);
    let ((), counts) = CountingAllocator::count_thread(|| {
        for _ in 0..500 {
            cycle(&mut producers, &mut stage, &mut output);
        }
    });
    let after = (stage.counters().sets, output.counters().links_sent);
    assert!(
        after.0 > before.0 + 100,
        "sets flowed: {before:?} {after:?}"
    );
    assert!(after.1 > before.1 + 100, "links sent: {before:?} {after:?}");
    assert!(counts.is_zero(), "steady join cycle allocated: {counts:?}");
    drop((producers, stage, output));
    world.finish();
}
