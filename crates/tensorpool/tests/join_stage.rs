//! The join stage (Join Barrier v1.0 §5-§10) over real producers and consumers on an embedded
//! media driver: sequence, timestamp and latest-value sets with every frame read under the
//! seqlock and rechecked, an overwritten frame never delivered in a set (counted), the merge
//! map requested and received on the control stream, and a republished set's
//! `TraceLinkSet` (TraceLink v1.0 §7, §9). Every wait has a deadline.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tensorpool::join::{
    JoinBarrier, JoinKey, JoinMode, JoinOutput, JoinStage, LatestOrder, SequenceInput,
    SequenceMergeMap, SequenceRule, TimestampInput, TimestampMergeMap, TimestampRule,
};
use tensorpool::prelude::*;
use tensorpool::tracelink::validate;
use tensorpool_codec::Message;
use tensorpool_codec::merge::{
    ClockDomain, SequenceMergeMapAnnounce, SequenceMergeMapRequest, TimestampSource,
};
use tensorpool_codec::tracelink::TraceLinkSet;

const OUT: u32 = 9000;
const A: u32 = 10_001;
const B: u32 = 10_002;

fn producer(world: &World, stream: u32, node: Option<u32>, nslots: u32) -> Producer {
    world
        .ctx
        .producer(stream)
        .standalone(world.base())
        .header_nslots(nslots)
        .pool(1, 1024)
        .configure(|c| {
            c.announce_period = Duration::from_millis(50);
            c.qos_period = Duration::from_millis(100);
            c.consumer_hello_interval = Duration::from_millis(100);
            c.prefault = false;
            if let Some(n) = node {
                c.trace_ids = true;
                c.trace_node_id = Some(n);
            }
        })
        .build()
        .unwrap()
}

fn consumer(world: &World, stream: u32) -> Consumer {
    world
        .ctx
        .consumer(stream)
        .allowed_base_dir(world.base())
        .configure(|c| {
            c.hello_interval = Duration::from_millis(100);
            c.qos_interval = Duration::from_millis(100);
        })
        .build()
        .unwrap()
}

fn seq_barrier(rules: &[(u32, SequenceRule)], stale: Option<u64>) -> JoinBarrier {
    let mut b = JoinBarrier::new(OUT, JoinMode::Sequence);
    b.apply_sequence_map(
        &SequenceMergeMap {
            out_stream_id: OUT,
            epoch: 1,
            stale_timeout_ns: stale,
            inputs: rules
                .iter()
                .map(|&(stream_id, rule)| SequenceInput { stream_id, rule })
                .collect(),
        },
        tensorpool::monotonic_ns(),
    )
    .unwrap();
    b
}

/// (stream, seq, first payload byte, trace id) of one frame of a set.
type Kept = (u32, u64, u8, Option<u64>);

/// What a test keeps of one delivered set.
#[derive(Debug, Clone)]
struct Got {
    key: JoinKey,
    /// (stream, seq, first payload byte, trace id) per rule; `None` when absent.
    frames: Vec<Option<Kept>>,
}

fn keep(set: &tensorpool::join::JoinedSet<'_, '_>) -> Got {
    Got {
        key: set.key(),
        frames: set
            .frames()
            .map(|f| f.map(|f| (f.stream_id(), f.seq(), f.bytes()[0], f.trace_id())))
            .collect(),
    }
}

/// Pumps producers and the stage until every input consumer is mapped.
fn connect(producers: &mut [Producer], stage: &mut JoinStage) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        for p in producers.iter_mut() {
            p.do_work(tensorpool::monotonic_ns());
        }
        stage.poll(|_| {}, 16).unwrap();
        let mapped = stage
            .consumers()
            .all(|c| matches!(c.state(), ConsumerState::Mapped { .. }));
        let known = producers.iter().all(|p| p.consumer_count() > 0);
        if mapped && known {
            return;
        }
        assert!(Instant::now() < deadline, "inputs not mapped in time");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Offers one frame whose first byte is its seq (mod 256) on every producer.
fn offer_all(producers: &mut [Producer]) {
    let spec = TensorSpec::new(Dtype::Uint8, &[64]).unwrap();
    for p in producers.iter_mut() {
        let seq = p.next_seq();
        p.offer(&spec, &[seq as u8; 64]).unwrap();
        p.do_work(tensorpool::monotonic_ns());
    }
}

/// Polls the stage (offering a frame per producer each round while `offer`) until `n` sets.
fn collect(
    producers: &mut [Producer],
    stage: &mut JoinStage,
    n: usize,
    mut offer: impl FnMut(usize) -> bool,
) -> Vec<Got> {
    let mut got = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    let mut round = 0;
    while got.len() < n {
        assert!(
            Instant::now() < deadline,
            "{} sets of {n}; counters {:?} barrier {:?}",
            got.len(),
            stage.counters(),
            stage.barrier().counters()
        );
        if offer(round) {
            offer_all(producers);
        }
        round += 1;
        stage.poll(|s| got.push(keep(s)), 16).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    got
}

/// JB §7.1, §6.2.1: with OFFSET rules every set holds, for output `s`, input A's frame
/// `s` and input B's frame `s - 1`, each read under the seqlock (the payload byte is the
/// frame's own seq).
#[test]
fn jb_stage_sequence_sets_hold_the_frames_the_offsets_name() {
    let world = World::new();
    let mut producers = vec![producer(&world, A, None, 64), producer(&world, B, None, 64)];
    let barrier = seq_barrier(
        &[(A, SequenceRule::Offset(0)), (B, SequenceRule::Offset(-1))],
        None,
    );
    let consumers = vec![consumer(&world, A), consumer(&world, B)];
    let mut stage = JoinStage::new(&world.ctx, barrier, consumers).unwrap();
    connect(&mut producers, &mut stage);
    let got = collect(&mut producers, &mut stage, 10, |_| true);
    let mut last = None;
    for g in &got {
        let JoinKey::Seq(out) = g.key else {
            panic!("{g:?}")
        };
        assert!(last.is_none_or(|l| out > l), "outputs increase: {got:?}");
        last = Some(out);
        let (sa, qa, ba, _) = g.frames[0].unwrap();
        let (sb, qb, bb, _) = g.frames[1].unwrap();
        assert_eq!((sa, sb), (A, B));
        assert_eq!(qa, out, "{g:?}");
        assert_eq!(qb + 1, out, "{g:?}");
        assert_eq!((ba, bb), (qa as u8, qb as u8));
    }
    assert_eq!(stage.counters().incomplete, 0);
    drop((producers, stage));
    world.finish();
}

/// JB §7.2, §5: a set whose frame was overwritten before the stage read it is not delivered
/// (counted `incomplete`); the sets that are delivered are whole.
#[test]
fn jb_stage_an_overwritten_frame_is_never_delivered_in_a_set() {
    let world = World::new();
    let mut producers = vec![producer(&world, A, None, 16), producer(&world, B, None, 16)];
    let barrier = seq_barrier(
        &[(A, SequenceRule::Offset(0)), (B, SequenceRule::Offset(0))],
        None,
    );
    let consumers = vec![consumer(&world, A), consumer(&world, B)];
    let mut stage = JoinStage::new(&world.ctx, barrier, consumers)
        .unwrap()
        .with_max_lag(10_000);
    connect(&mut producers, &mut stage);
    let first = collect(&mut producers, &mut stage, 1, |_| true);
    // the stage sleeps while both producers lap their 16-slot rings
    for _ in 0..40 {
        offer_all(&mut producers);
    }
    let deadline = Instant::now() + DEADLINE;
    let mut got = Vec::new();
    while stage.counters().incomplete == 0 || got.is_empty() {
        assert!(Instant::now() < deadline, "{:?}", stage.counters());
        offer_all(&mut producers);
        stage.poll(|s| got.push(keep(s)), 64).unwrap();
    }
    for g in first.iter().chain(&got) {
        let JoinKey::Seq(out) = g.key else { panic!() };
        for f in &g.frames {
            assert_eq!(f.unwrap().1, out, "a delivered set is whole: {g:?}");
        }
    }
    assert!(stage.counters().incomplete > 0);
    drop((producers, stage));
    world.finish();
}

/// JB §8.1: the leader input on OFFSET_NS 0 (slot-header timestamps, which every producer
/// stamps): every leader frame is a set at its own time, holding the second input's newest
/// frame within its WINDOW_NS rule.
#[test]
fn jb_stage_timestamp_sets_follow_the_leader_input() {
    let world = World::new();
    let mut producers = vec![producer(&world, A, None, 64), producer(&world, B, None, 64)];
    let mut barrier = JoinBarrier::new(OUT, JoinMode::Timestamp);
    let window = 50_000_000;
    barrier
        .apply_timestamp_map(
            &TimestampMergeMap {
                out_stream_id: OUT,
                epoch: 1,
                stale_timeout_ns: None,
                clock_domain: ClockDomain::Monotonic,
                lateness_ns: 0,
                inputs: vec![
                    TimestampInput {
                        stream_id: A,
                        rule: TimestampRule::OffsetNs(0),
                        source: TimestampSource::SlotHeader,
                    },
                    TimestampInput {
                        stream_id: B,
                        rule: TimestampRule::WindowNs(window),
                        source: TimestampSource::SlotHeader,
                    },
                ],
            },
            tensorpool::monotonic_ns(),
        )
        .unwrap();
    let consumers = vec![consumer(&world, A), consumer(&world, B)];
    let mut stage = JoinStage::new(&world.ctx, barrier, consumers).unwrap();
    connect(&mut producers, &mut stage);
    let mut seen_times = Vec::new();
    let got = collect(&mut producers, &mut stage, 8, |_| true);
    for g in &got {
        let JoinKey::Time(t) = g.key else { panic!() };
        seen_times.push(t);
        assert!(g.frames.iter().all(Option::is_some), "{g:?}");
    }
    assert!(seen_times.windows(2).all(|w| w[0] < w[1]), "{seen_times:?}");
    // the very first leader frame may precede every frame of B (B's window then holds
    // none: that set is counted incomplete, never delivered)
    assert!(stage.counters().incomplete <= 1, "{:?}", stage.counters());
    drop((producers, stage));
    world.finish();
}

/// JB §9.1 (the Julia latest example): a set as soon as every input has a frame, with each
/// input's newest; a new set only when an input moved.
#[test]
fn jb_stage_latest_sets_hold_each_inputs_newest_frame() {
    let world = World::new();
    let mut producers = vec![producer(&world, A, None, 64), producer(&world, B, None, 64)];
    let mut barrier = JoinBarrier::new(OUT, JoinMode::LatestValue(LatestOrder::Sequence));
    barrier
        .apply_sequence_map(
            &SequenceMergeMap {
                out_stream_id: OUT,
                epoch: 1,
                stale_timeout_ns: None,
                inputs: vec![
                    SequenceInput {
                        stream_id: A,
                        rule: SequenceRule::Offset(0),
                    },
                    SequenceInput {
                        stream_id: B,
                        rule: SequenceRule::Offset(0),
                    },
                ],
            },
            tensorpool::monotonic_ns(),
        )
        .unwrap();
    let consumers = vec![consumer(&world, A), consumer(&world, B)];
    let mut stage = JoinStage::new(&world.ctx, barrier, consumers).unwrap();
    connect(&mut producers, &mut stage);
    // A runs ahead: three frames of A to one of B
    let spec = TensorSpec::new(Dtype::Uint8, &[64]).unwrap();
    for _ in 0..3 {
        let s = producers[0].next_seq();
        producers[0].offer(&spec, &[s as u8; 64]).unwrap();
    }
    producers[1].offer(&spec, &[0; 64]).unwrap();
    let got = collect(&mut producers, &mut stage, 1, |_| false);
    let g = &got[0];
    assert_eq!(g.frames[1].unwrap().1, 0, "{g:?}");
    assert!(g.frames[0].is_some(), "{g:?}");
    // one frame more on B: the next set has B's frame 1 and A's newest, 2
    producers[1].offer(&spec, &[1; 64]).unwrap();
    let mut next = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    while next.iter().all(|g: &Got| g.frames[1].unwrap().1 != 1) {
        assert!(Instant::now() < deadline, "{:?}", stage.counters());
        stage.poll(|s| next.push(keep(s)), 16).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    let last = next.last().unwrap();
    assert_eq!(last.frames[0].unwrap().1, 2, "{last:?}");
    assert_eq!(last.frames[1].unwrap().2, 1);
    drop((producers, stage));
    world.finish();
}

/// JB §10.3: without a map the stage asks the authority on the control stream
/// (`SequenceMergeMapRequest` for its output and epoch); the announce it gets back is applied
/// and sets flow.
#[test]
fn jb_stage_requests_the_map_and_applies_the_announce() {
    let world = World::new();
    let mut producers = vec![producer(&world, A, None, 64), producer(&world, B, None, 64)];
    let mut barrier =
        JoinBarrier::new(OUT, JoinMode::Sequence).with_request_interval_ns(20_000_000);
    barrier.set_epoch(1);
    let consumers = vec![consumer(&world, A), consumer(&world, B)];
    let control = consumers[0].config().streams.control.clone();
    let mut stage = JoinStage::new(&world.ctx, barrier, consumers).unwrap();
    let client = world.ctx.client();
    let mut authority_sub = client
        .start_add_subscription(&control.channel, control.stream_id, DEADLINE)
        .unwrap()
        .wait()
        .unwrap();
    let mut authority_pub = client
        .start_add_publication(&control.channel, control.stream_id, DEADLINE)
        .unwrap()
        .wait()
        .unwrap();
    connect(&mut producers, &mut stage);
    let deadline = Instant::now() + DEADLINE;
    let mut asked = None;
    while asked.is_none() {
        assert!(Instant::now() < deadline, "no map request");
        stage.poll(|_| {}, 16).unwrap();
        authority_sub
            .poll(
                |buf, _| {
                    if let Ok(r) = SequenceMergeMapRequest::decode(buf) {
                        asked = Some((r.out_stream_id, r.epoch));
                    }
                },
                16,
            )
            .unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(asked, Some((OUT, 1)));
    assert!(stage.counters().requests_sent >= 1);
    let map = SequenceMergeMap {
        out_stream_id: OUT,
        epoch: 1,
        stale_timeout_ns: None,
        inputs: vec![
            SequenceInput {
                stream_id: A,
                rule: SequenceRule::Offset(0),
            },
            SequenceInput {
                stream_id: B,
                rule: SequenceRule::Offset(0),
            },
        ],
    };
    let bytes: Vec<u8> = SequenceMergeMapAnnounce::encode_to_vec(&map.to_announce()).unwrap();
    let deadline = Instant::now() + DEADLINE;
    while !stage.barrier().has_map() {
        assert!(Instant::now() < deadline, "announce not applied");
        let _ = authority_pub.offer(&bytes);
        stage.poll(|_| {}, 16).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(stage.counters().announces >= 1);
    let got = collect(&mut producers, &mut stage, 3, |_| true);
    assert!(got.iter().all(|g| g.frames.iter().all(Option::is_some)));
    drop((producers, stage, authority_pub, authority_sub));
    world.finish();
}

/// TL §7, §9.2: a republished set's frame carries a new trace id from the output producer,
/// and a `TraceLinkSet` on the metadata stream names that frame (stream, epoch, seq, id)
/// and its parents, the inputs' trace ids (non-zero, unique, in rule order).
#[test]
fn tl_join_output_emits_a_trace_link_set_naming_the_inputs() {
    let world = World::new();
    let mut producers = vec![
        producer(&world, A, Some(1), 64),
        producer(&world, B, Some(2), 64),
    ];
    let barrier = seq_barrier(
        &[(A, SequenceRule::Offset(0)), (B, SequenceRule::Offset(0))],
        None,
    );
    let consumers = vec![consumer(&world, A), consumer(&world, B)];
    let mut stage = JoinStage::new(&world.ctx, barrier, consumers).unwrap();
    let mut output = JoinOutput::new(&world.ctx, producer(&world, OUT, Some(3), 64)).unwrap();
    let meta = output.producer().config().streams.metadata.clone();
    let mut links_sub = world
        .ctx
        .client()
        .start_add_subscription(&meta.channel, meta.stream_id, DEADLINE)
        .unwrap()
        .wait()
        .unwrap();
    connect(&mut producers, &mut stage);
    // (output seq, output trace id) -> parents, as published
    let mut published = Vec::new();
    let mut links = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    while links.len() < 3 {
        assert!(
            Instant::now() < deadline,
            "{:?} {:?}",
            output.counters(),
            stage.counters()
        );
        offer_all(&mut producers);
        stage
            .poll(
                |set| {
                    let parents: Vec<u64> = set
                        .frames()
                        .flatten()
                        .filter_map(|f| f.trace_id())
                        .collect();
                    if let Ok(Some(seq)) = output.publish_concat(set) {
                        published.push((seq, parents));
                    }
                },
                16,
            )
            .unwrap();
        output.producer_mut().do_work(tensorpool::monotonic_ns());
        links_sub
            .poll(
                |buf, _| {
                    if let Ok(set) = TraceLinkSet::decode(buf) {
                        validate(&set).unwrap();
                        let parents: Vec<u64> = set.parents.iter().map(|p| p.trace_id).collect();
                        links.push((set.stream_id, set.seq, set.trace_id, parents));
                    }
                },
                16,
            )
            .unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    let split = tensorpool::tracelink::TraceIdGenerator::new(0).unwrap();
    for (stream, seq, id, parents) in &links {
        assert_eq!(*stream, OUT);
        assert_eq!(split.split(*id).node_id, 3, "the output producer's id");
        let (_, want) = published.iter().find(|(s, _)| s == seq).unwrap();
        assert_eq!(parents, want);
        assert_eq!(parents.len(), 2);
        assert_eq!(split.split(parents[0]).node_id, 1);
        assert_eq!(split.split(parents[1]).node_id, 2);
    }
    assert_eq!(output.counters().links_dropped, 0);
    drop((producers, stage, output, links_sub));
    world.finish();
}

/// TL §8.1: a set of one frame is a 1→1 lineage: the republished frame keeps the input's
/// trace id and no `TraceLinkSet` is sent; a set of two frames with one traced input is
/// N→1: a new id, and a link set naming the one traced parent.
#[test]
fn tl_join_output_keeps_a_single_inputs_id_and_mints_for_n_to_1() {
    let world = World::new();
    let mut producers = vec![
        producer(&world, A, Some(1), 64),
        producer(&world, B, None, 64),
    ];
    // one input: 1→1
    let barrier = seq_barrier(&[(A, SequenceRule::Offset(0))], None);
    let mut stage = JoinStage::new(&world.ctx, barrier, vec![consumer(&world, A)]).unwrap();
    let mut output = JoinOutput::new(&world.ctx, producer(&world, OUT, Some(3), 64)).unwrap();
    connect(&mut producers[..1], &mut stage);
    let mut kept = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    while kept.len() < 5 {
        assert!(Instant::now() < deadline, "{:?}", stage.counters());
        offer_all(&mut producers[..1]);
        stage
            .poll(
                |set| {
                    let input = set.frame(0).unwrap().trace_id();
                    if let Ok(Some(_)) = output.publish_concat(set) {
                        kept.push((input, output.last_trace_id()));
                    }
                },
                16,
            )
            .unwrap();
    }
    for (input, out) in &kept {
        assert!(input.is_some());
        assert_eq!(input, out, "1→1 keeps the id");
    }
    assert_eq!(output.counters().links_sent, 0);
    drop(stage);
    // two inputs, B untraced: N→1 with one parent
    let barrier = seq_barrier(
        &[(A, SequenceRule::Offset(0)), (B, SequenceRule::Offset(0))],
        None,
    );
    let consumers = vec![consumer(&world, A), consumer(&world, B)];
    let mut stage = JoinStage::new(&world.ctx, barrier, consumers).unwrap();
    connect(&mut producers, &mut stage);
    let mut minted = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    while minted.len() < 3 {
        assert!(Instant::now() < deadline, "{:?}", stage.counters());
        offer_all(&mut producers);
        stage
            .poll(
                |set| {
                    let input = set.frame(0).unwrap().trace_id();
                    if let Ok(Some(_)) = output.publish_concat(set) {
                        minted.push((input, output.last_trace_id()));
                    }
                },
                16,
            )
            .unwrap();
    }
    let split = tensorpool::tracelink::TraceIdGenerator::new(0).unwrap();
    for (input, out) in &minted {
        assert_ne!(input, out, "N→1 mints");
        assert_eq!(split.split(out.unwrap()).node_id, 3);
    }
    assert!(output.counters().links_sent >= 3, "{:?}", output.counters());
    drop((producers, stage, output));
    world.finish();
}

/// A stage without inputs, or with two consumers of one stream, is a clear build error.
#[test]
fn jb_stage_refuses_no_inputs_and_duplicate_inputs() {
    use tensorpool::join::JoinStageError;
    let world = World::new();
    let b = || seq_barrier(&[(A, SequenceRule::Offset(0))], None);
    assert!(matches!(
        JoinStage::new(&world.ctx, b(), Vec::new()),
        Err(JoinStageError::NoInputs)
    ));
    let twice = vec![consumer(&world, A), consumer(&world, A)];
    let err = JoinStage::new(&world.ctx, b(), twice).unwrap_err();
    assert!(matches!(err, JoinStageError::DuplicateInput(A)), "{err}");
    world.finish();
}

/// W §8.3 on the read-by-seq path: `Consumer::read_frame` gives committed frame `seq` only
/// while the slot holds it (the seqlock proves `seq`); an overwritten or future seq is a slot
/// error, an unmapped consumer says so.
#[test]
fn consumer_read_frame_proves_the_seq_under_the_seqlock() {
    let world = World::new();
    let mut p = producer(&world, A, None, 16);
    let mut c = consumer(&world, A);
    assert!(matches!(c.read_frame(0), Err(DropCause::Unmapped)));
    common::connect(&mut p, &mut c);
    let spec = TensorSpec::new(Dtype::Uint8, &[64]).unwrap();
    for i in 0..40u8 {
        p.offer(&spec, &[i; 64]).unwrap();
    }
    let last = p.next_seq() - 1;
    let f = c.read_frame(last).unwrap();
    assert_eq!((f.seq(), f.bytes()[0]), (last, last as u8));
    assert!(f.recheck().is_ok());
    assert_eq!(f.trace_id(), None);
    assert_eq!(c.mapped_epoch(), p.epoch());
    assert!(matches!(c.read_frame(last - 16), Err(DropCause::Slot(_))));
    assert!(matches!(c.read_frame(last + 1), Err(DropCause::Slot(_))));
    drop((p, c));
    world.finish();
}

/// JB §8.2: a timestamp stage whose leader moves to a new epoch (sequence from 0 again) goes
/// on from the leader's new frames; output times keep increasing.
#[test]
fn jb_stage_timestamp_follows_the_leader_into_a_new_epoch() {
    let world = World::new();
    let mut producers = vec![producer(&world, A, None, 64)];
    let mut barrier = JoinBarrier::new(OUT, JoinMode::Timestamp);
    barrier
        .apply_timestamp_map(
            &TimestampMergeMap {
                out_stream_id: OUT,
                epoch: 1,
                stale_timeout_ns: None,
                clock_domain: ClockDomain::Monotonic,
                lateness_ns: 0,
                inputs: vec![TimestampInput {
                    stream_id: A,
                    rule: TimestampRule::OffsetNs(0),
                    source: TimestampSource::SlotHeader,
                }],
            },
            tensorpool::monotonic_ns(),
        )
        .unwrap();
    let mut stage = JoinStage::new(&world.ctx, barrier, vec![consumer(&world, A)]).unwrap();
    connect(&mut producers, &mut stage);
    let before = collect(&mut producers, &mut stage, 20, |_| true);
    let old_epoch = producers[0].epoch().unwrap();
    producers[0].bump_epoch().unwrap();
    let deadline = Instant::now() + DEADLINE;
    let mut after: Vec<Got> = Vec::new();
    while after.len() < 3 {
        assert!(Instant::now() < deadline, "{:?}", stage.counters());
        offer_all(&mut producers);
        stage
            .poll(
                |s| {
                    if s.frame(0).unwrap().epoch() != old_epoch {
                        after.push(keep(s));
                    }
                },
                16,
            )
            .unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    let times: Vec<u64> = before
        .iter()
        .chain(&after)
        .map(|g| match g.key {
            JoinKey::Time(t) => t,
            _ => panic!(),
        })
        .collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
    // the stage went on from the new epoch's first frames, not from the old epoch's seq
    let old_last = before.last().unwrap().frames[0].unwrap().1;
    let new_first = after[0].frames[0].unwrap().1;
    assert!(
        new_first < old_last,
        "new epoch from seq {new_first}, old epoch ended at {old_last}"
    );
    drop((producers, stage));
    world.finish();
}
