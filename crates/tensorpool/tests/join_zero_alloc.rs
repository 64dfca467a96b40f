//! JB §5: after initialization the join barrier allocates nothing: applying received maps
//! (sequence and timestamp, valid and invalid), observing frames, processed cursors,
//! readiness checks of every mode, epoch changes and map requests, under a counting
//! global allocator.

use tensorpool::join::{JoinBarrier, JoinMode, LatestOrder, Stamp};
use tensorpool_codec::merge::{
    ClockDomain, MergeRuleType, MergeTimeRuleType, SequenceMergeMapAnnounce, SequenceMergeRule,
    TimestampMergeMapAnnounce, TimestampMergeRule, TimestampSource,
};
use tensorpool_codec::{Group, Message};
use tensorpool_testkit::CountingAllocator;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const OUT: u32 = 9000;
const INPUTS: u32 = 64;

fn seq_announce(epoch: u64, window: Option<u32>) -> Vec<u8> {
    let rules = (0..INPUTS)
        .map(|i| SequenceMergeRule {
            input_stream_id: 10_000 + i,
            rule_type: if window.is_some() && i % 2 == 1 {
                MergeRuleType::Window
            } else {
                MergeRuleType::Offset
            },
            offset: if window.is_some() && i % 2 == 1 {
                None
            } else {
                Some(-(i as i32 % 3))
            },
            window_size: if i % 2 == 1 { window } else { None },
        })
        .collect();
    SequenceMergeMapAnnounce {
        out_stream_id: OUT,
        epoch,
        stale_timeout_ns: Some(1_000_000),
        rules: Group::Owned(rules),
    }
    .encode_to_vec()
    .unwrap()
}

fn time_announce(epoch: u64) -> Vec<u8> {
    let rules = (0..INPUTS)
        .map(|i| TimestampMergeRule {
            input_stream_id: 10_000 + i,
            rule_type: MergeTimeRuleType::OffsetNs,
            timestamp_source: TimestampSource::FrameDescriptor,
            offset_ns: Some(-(i as i64)),
            window_ns: None,
        })
        .collect();
    TimestampMergeMapAnnounce {
        out_stream_id: OUT,
        epoch,
        stale_timeout_ns: None,
        clock_domain: ClockDomain::Monotonic,
        lateness_ns: Some(10),
        rules: Group::Owned(rules),
    }
    .encode_to_vec()
    .unwrap()
}

#[test]
fn jb_5_the_hot_path_and_map_changes_allocate_nothing() {
    let seq_maps = [
        seq_announce(1, Some(4)),
        seq_announce(1, None),
        seq_announce(2, Some(3)),
    ];
    let invalid = seq_announce(2, Some(0));
    let time_maps = [time_announce(1), time_announce(2)];
    let mut seq = JoinBarrier::new(OUT, JoinMode::Sequence);
    let mut time = JoinBarrier::new(OUT, JoinMode::Timestamp);
    let mut latest = JoinBarrier::new(OUT, JoinMode::LatestValue(LatestOrder::Sequence));

    let (probe, probed) = CountingAllocator::count_thread(|| std::hint::black_box(vec![1u8; 8]));
    drop(probe);
    assert!(probed.allocations > 0, "the allocator counts");

    let ((), counts) = CountingAllocator::count_thread(|| {
        let mut ready = 0u64;
        for round in 0..200u64 {
            let epoch = 1 + round / 100;
            let now = round * 1_000;
            seq.set_epoch(epoch);
            time.set_epoch(epoch);
            latest.set_epoch(epoch);
            if let Some(r) = seq.map_request(now) {
                std::hint::black_box(r);
            }
            let m = &seq_maps[(round % 3) as usize];
            let msg = SequenceMergeMapAnnounce::decode(m).unwrap();
            let _ = seq.on_sequence_announce(&msg, now);
            let _ = latest.on_sequence_announce(&msg, now);
            let bad = SequenceMergeMapAnnounce::decode(&invalid).unwrap();
            if round % 17 == 0 {
                let _ = seq.on_sequence_announce(&bad, now);
                let _ = seq.on_sequence_announce(&msg, now);
            }
            let tm = TimestampMergeMapAnnounce::decode(&time_maps[(epoch - 1) as usize]).unwrap();
            let _ = time.on_timestamp_announce(&tm, now);
            for s in 0..INPUTS {
                let stream = 10_000 + s;
                seq.observe_seq(stream, epoch, round, now);
                seq.processed_seq(stream, epoch, round);
                latest.observe_seq(stream, epoch, round, now);
                time.observe_time(
                    stream,
                    epoch,
                    round,
                    Stamp {
                        source: TimestampSource::FrameDescriptor,
                        timestamp_ns: Some(now),
                        clock_domain: ClockDomain::Monotonic,
                    },
                    now,
                );
            }
            latest.invalidate(10_003);
            ready += u64::from(seq.ready_seq(round, now).is_ready());
            ready += u64::from(time.ready_time(now, ClockDomain::Monotonic, now).is_ready());
            ready += u64::from(latest.ready_latest(now).is_ready());
            std::hint::black_box(seq.input_seqs(1, round));
            std::hint::black_box(latest.latest(0));
        }
        assert!(ready > 0, "the loop exercised ready outcomes");
    });
    assert_eq!(counts.allocations, 0, "{counts:?}");
}
