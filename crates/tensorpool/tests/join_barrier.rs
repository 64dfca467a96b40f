//! The join barrier core (Join Barrier spec v1.0) without transport: map validation, the
//! sequence, timestamp and latest-value rules, staleness, epochs, late join, and the three
//! example scenarios of the Julia implementation (scripts/example_join_barrier_*.jl)
//! reproduced with our types.

use tensorpool::join::{
    InputRejection, JoinBarrier, JoinMode, JoinStatus, LatestOrder, MAX_JOIN_INPUTS, MergeMapError,
    SequenceInput, SequenceMergeMap, SequenceRule, Stamp, TimestampInput, TimestampMergeMap,
    TimestampRule,
};
use tensorpool_codec::merge::{
    ClockDomain, MergeRuleType, MergeTimeRuleType, SequenceMergeMapAnnounce, SequenceMergeRule,
    TimestampMergeMapAnnounce, TimestampMergeRule, TimestampSource,
};
use tensorpool_codec::{Group, Message};

const OUT: u32 = 9000;
const A: u32 = 10_001;
const B: u32 = 10_002;
const MS: u64 = 1_000_000;

fn seq_map(epoch: u64, stale: Option<u64>, rules: &[(u32, SequenceRule)]) -> SequenceMergeMap {
    SequenceMergeMap {
        out_stream_id: OUT,
        epoch,
        stale_timeout_ns: stale,
        inputs: rules
            .iter()
            .map(|&(stream_id, rule)| SequenceInput { stream_id, rule })
            .collect(),
    }
}

fn time_map(lateness: u64, rules: &[(u32, TimestampRule)]) -> TimestampMergeMap {
    TimestampMergeMap {
        out_stream_id: OUT,
        epoch: 1,
        stale_timeout_ns: None,
        clock_domain: ClockDomain::Monotonic,
        lateness_ns: lateness,
        inputs: rules
            .iter()
            .map(|&(stream_id, rule)| TimestampInput {
                stream_id,
                rule,
                source: TimestampSource::FrameDescriptor,
            })
            .collect(),
    }
}

fn seq_barrier(rules: &[(u32, SequenceRule)]) -> JoinBarrier {
    let mut b = JoinBarrier::new(OUT, JoinMode::Sequence);
    b.apply_sequence_map(&seq_map(1, None, rules), 0).unwrap();
    b
}

fn wire_rule(
    input_stream_id: u32,
    rule_type: MergeRuleType,
    offset: Option<i32>,
    window_size: Option<u32>,
) -> SequenceMergeRule {
    SequenceMergeRule {
        input_stream_id,
        rule_type,
        offset,
        window_size,
    }
}

fn announce(rules: Vec<SequenceMergeRule>) -> Vec<u8> {
    SequenceMergeMapAnnounce {
        out_stream_id: OUT,
        epoch: 1,
        stale_timeout_ns: None,
        rules: Group::Owned(rules),
    }
    .encode_to_vec()
    .unwrap()
}

/// JB §6.2: OFFSET needs offset and no windowSize, WINDOW a positive windowSize and no
/// offset; a violating map is rejected and the barrier has no map until a valid one.
#[test]
fn jb_6_2_rules_with_wrong_parameters_reject_the_whole_map_until_replaced() {
    let bad = [
        wire_rule(A, MergeRuleType::Offset, None, None),
        wire_rule(A, MergeRuleType::Offset, Some(0), Some(3)),
        wire_rule(A, MergeRuleType::Window, None, None),
        wire_rule(A, MergeRuleType::Window, Some(1), Some(3)),
        wire_rule(A, MergeRuleType::Window, None, Some(0)),
    ];
    for rule in bad {
        let mut b = seq_barrier(&[(A, SequenceRule::Offset(0))]);
        assert!(b.has_map());
        let bytes = announce(vec![
            wire_rule(B, MergeRuleType::Offset, Some(0), None),
            rule.clone(),
        ]);
        let msg = SequenceMergeMapAnnounce::decode(&bytes).unwrap();
        let err = b.on_sequence_announce(&msg, 0).unwrap_err();
        assert!(
            matches!(
                err,
                MergeMapError::BadOffsetRule { index: 1, .. }
                    | MergeMapError::BadWindowRule { index: 1, .. }
            ),
            "{rule:?}: {err}"
        );
        assert!(!b.has_map(), "{rule:?}: an invalid map leaves no map");
        b.observe_seq(A, 1, 100, 0);
        b.observe_seq(B, 1, 100, 0);
        assert_eq!(b.ready_seq(0, 0).status, JoinStatus::NoMap);
        // a valid replacement restores readiness
        let ok = announce(vec![wire_rule(A, MergeRuleType::Offset, Some(0), None)]);
        b.on_sequence_announce(&SequenceMergeMapAnnounce::decode(&ok).unwrap(), 0)
            .unwrap();
        b.observe_seq(A, 1, 5, 0);
        assert!(b.ready_seq(5, 0).is_ready());
        assert_eq!(b.counters().maps_rejected, 1);
    }
    // the same checks on maps built in code, and on timestamp rules (JB §6.3)
    assert!(matches!(
        seq_map(1, None, &[(A, SequenceRule::Window(0))]).validate(),
        Err(MergeMapError::BadWindowRule { .. })
    ));
    assert!(matches!(
        seq_map(1, None, &[]).validate(),
        Err(MergeMapError::NoRules { .. })
    ));
    let many: Vec<_> = (0..=MAX_JOIN_INPUTS as u32)
        .map(|i| (i, SequenceRule::Offset(0)))
        .collect();
    assert!(matches!(
        seq_map(1, None, &many).validate(),
        Err(MergeMapError::TooManyRules { count: 65, .. })
    ));
    for (rule_type, offset_ns, window_ns) in [
        (MergeTimeRuleType::OffsetNs, None, None),
        (MergeTimeRuleType::OffsetNs, Some(0), Some(1)),
        (MergeTimeRuleType::WindowNs, None, Some(0)),
        (MergeTimeRuleType::WindowNs, Some(1), Some(5)),
    ] {
        let bytes = TimestampMergeMapAnnounce {
            out_stream_id: OUT,
            epoch: 1,
            stale_timeout_ns: None,
            clock_domain: ClockDomain::Monotonic,
            lateness_ns: None,
            rules: Group::Owned(vec![TimestampMergeRule {
                input_stream_id: A,
                rule_type,
                timestamp_source: TimestampSource::SlotHeader,
                offset_ns,
                window_ns,
            }]),
        }
        .encode_to_vec()
        .unwrap();
        let msg = TimestampMergeMapAnnounce::decode(&bytes).unwrap();
        assert!(TimestampMergeMap::from_announce(&msg).is_err());
        let mut b = JoinBarrier::new(OUT, JoinMode::Timestamp);
        assert!(b.on_timestamp_announce(&msg, 0).is_err());
        assert!(!b.has_map());
    }
}

/// A map survives encode/decode: the announce an authority sends is the map a stage applies.
#[test]
fn maps_round_trip_through_their_announces() {
    let m = seq_map(
        7,
        Some(5 * MS),
        &[(A, SequenceRule::Offset(-2)), (B, SequenceRule::Window(4))],
    );
    let bytes = m.to_announce().encode_to_vec().unwrap();
    let back = SequenceMergeMap::from_announce(&SequenceMergeMapAnnounce::decode(&bytes).unwrap());
    assert_eq!(back.unwrap(), m);
    let t = time_map(
        3,
        &[
            (A, TimestampRule::OffsetNs(-7)),
            (B, TimestampRule::WindowNs(9)),
        ],
    );
    let bytes = t.to_announce().encode_to_vec().unwrap();
    let back =
        TimestampMergeMap::from_announce(&TimestampMergeMapAnnounce::decode(&bytes).unwrap());
    assert_eq!(back.unwrap(), t);
}

/// JB §6.2.1, §7.1: OFFSET readiness is `observed >= out_seq + offset`, and a negative offset
/// is not ready while `out_seq < -offset`.
#[test]
fn jb_7_1_offset_rule_readiness() {
    let mut b = seq_barrier(&[(A, SequenceRule::Offset(0)), (B, SequenceRule::Offset(-2))]);
    assert_eq!(b.ready_seq(0, 0).status, JoinStatus::Waiting);
    b.observe_seq(A, 1, 1, 0);
    b.observe_seq(B, 1, 1, 0);
    // out 1: B would need seq -1: not ready however far B is
    let r = b.ready_seq(1, 0);
    assert_eq!(
        (r.status, r.missing.iter().collect::<Vec<_>>()),
        (JoinStatus::Waiting, vec![1])
    );
    // out 2: A needs 2 (has 1), B needs 0 (has 1)
    let r = b.ready_seq(2, 0);
    assert_eq!(r.missing.iter().collect::<Vec<_>>(), vec![0]);
    b.observe_seq(A, 1, 2, 0);
    assert!(b.ready_seq(2, 0).is_ready());
    // out 4: B needs 2
    b.observe_seq(A, 1, 4, 0);
    assert_eq!(
        b.ready_seq(4, 0).missing.iter().collect::<Vec<_>>(),
        vec![1]
    );
    b.observe_seq(B, 1, 2, 0);
    assert!(b.ready_seq(4, 0).is_ready());
    assert_eq!(b.input_seqs(1, 4), Some(2..=2));
    // a positive offset looks ahead
    let mut b = seq_barrier(&[(A, SequenceRule::Offset(3))]);
    b.observe_seq(A, 1, 12, 0);
    assert!(!b.ready_seq(10, 0).is_ready());
    b.observe_seq(A, 1, 13, 0);
    assert!(b.ready_seq(10, 0).is_ready());
}

/// JB §6.2.2: WINDOW N is not ready while `out_seq + 1 < N`; readiness uses the upper bound.
#[test]
fn jb_6_2_2_window_rule_uses_the_upper_bound_only() {
    let mut b = seq_barrier(&[(A, SequenceRule::Window(5))]);
    b.observe_seq(A, 1, 100, 0);
    for out in 0..4 {
        assert!(!b.ready_seq(out, 0).is_ready(), "out {out} < N - 1");
    }
    assert!(b.ready_seq(4, 0).is_ready());
    assert_eq!(b.input_seqs(0, 4), Some(0..=4));
    assert_eq!(b.input_seqs(0, 10), Some(6..=10));
    assert!(b.ready_seq(100, 0).is_ready());
    assert!(!b.ready_seq(101, 0).is_ready());
}

/// JB §7.1 "if configured": the processed cursor must reach the required sequence too.
#[test]
fn jb_7_1_processed_cursor_gates_when_configured() {
    let mut b = JoinBarrier::new(OUT, JoinMode::Sequence).with_processed_cursor(true);
    b.apply_sequence_map(&seq_map(1, None, &[(A, SequenceRule::Offset(0))]), 0)
        .unwrap();
    b.observe_seq(A, 1, 3, 0);
    assert!(!b.ready_seq(3, 0).is_ready());
    b.processed_seq(A, 1, 3);
    assert!(b.ready_seq(3, 0).is_ready());
}

/// JB §7.4: without a stale timeout a silent input blocks; with one it becomes absent after
/// the timeout, the join proceeds and says which input was absent.
#[test]
fn jb_7_4_staleness_blocks_without_timeout_and_surfaces_absent_inputs_with_one() {
    let rules = [(A, SequenceRule::Offset(0)), (B, SequenceRule::Offset(0))];
    let mut blocking = JoinBarrier::new(OUT, JoinMode::Sequence);
    blocking
        .apply_sequence_map(&seq_map(1, None, &rules), 0)
        .unwrap();
    let mut stale = JoinBarrier::new(OUT, JoinMode::Sequence);
    stale
        .apply_sequence_map(&seq_map(1, Some(10 * MS), &rules), 0)
        .unwrap();
    for b in [&mut blocking, &mut stale] {
        b.observe_seq(A, 1, 1, 0);
        b.observe_seq(B, 1, 1, 0);
        assert!(b.ready_seq(1, MS).is_ready());
        b.observe_seq(A, 1, 2, 2 * MS);
        assert_eq!(b.ready_seq(2, 5 * MS).status, JoinStatus::Waiting);
    }
    let r = blocking.ready_seq(2, 3600 * 1000 * MS);
    assert_eq!(r.status, JoinStatus::Waiting);
    assert!(r.absent.is_empty());
    // B last seen at 0: stale after 10 ms
    let r = stale.ready_seq(2, 10 * MS);
    assert_eq!(r.status, JoinStatus::Waiting);
    let r = stale.ready_seq(2, 10 * MS + 1);
    assert_eq!(r.status, JoinStatus::Ready);
    assert_eq!(r.absent.iter().collect::<Vec<_>>(), vec![1]);
    assert!(r.missing.is_empty());
    // B comes back: no longer absent
    stale.observe_seq(B, 1, 2, 11 * MS);
    let r = stale.ready_seq(2, 11 * MS);
    assert!(r.is_ready() && r.absent.is_empty());
    // an input never seen is measured from when the map was applied
    let mut b = JoinBarrier::new(OUT, JoinMode::Sequence);
    b.apply_sequence_map(&seq_map(1, Some(10 * MS), &rules), 100 * MS)
        .unwrap();
    b.observe_seq(A, 1, 0, 100 * MS);
    assert!(!b.ready_seq(0, 105 * MS).is_ready());
    assert!(b.ready_seq(0, 111 * MS).is_ready());
}

/// JB §6.4, §7.3, §10.3: scoped to (out_stream, epoch); no map blocks; a new output epoch
/// drops the map and needs a fresh one; a late joiner asks for it; maps for another output
/// or epoch are refused.
#[test]
fn jb_6_4_epoch_change_requires_a_fresh_map_and_late_joiners_ask() {
    let mut b = JoinBarrier::new(OUT, JoinMode::Sequence).with_request_interval_ns(100 * MS);
    b.observe_seq(A, 1, 5, 0);
    assert_eq!(b.ready_seq(5, 0).status, JoinStatus::NoMap);
    assert_eq!(
        b.map_request(0),
        None,
        "no request before the epoch is known"
    );
    b.set_epoch(1);
    let req = b.map_request(0).unwrap();
    assert_eq!(
        (req.out_stream_id, req.epoch, req.timestamp),
        (OUT, 1, false)
    );
    assert_eq!(b.map_request(50 * MS), None, "rate limited");
    assert!(b.map_request(100 * MS).is_some());
    assert!(matches!(
        b.apply_sequence_map(&seq_map(2, None, &[(A, SequenceRule::Offset(0))]), 0),
        Err(MergeMapError::WrongEpoch {
            current: 1,
            got: 2,
            ..
        })
    ));
    let mut other = seq_map(1, None, &[(A, SequenceRule::Offset(0))]);
    other.out_stream_id = OUT + 1;
    assert!(matches!(
        b.apply_sequence_map(&other, 0),
        Err(MergeMapError::WrongOutputStream { .. })
    ));
    b.apply_sequence_map(&seq_map(1, None, &[(A, SequenceRule::Offset(0))]), 0)
        .unwrap();
    assert_eq!(b.map_request(500 * MS), None, "a map is active");
    b.observe_seq(A, 1, 5, 0);
    assert!(b.ready_seq(5, 0).is_ready());
    b.set_epoch(2);
    assert_eq!(b.ready_seq(6, 0).status, JoinStatus::NoMap);
    assert_eq!(b.counters().maps_dropped_on_epoch, 1);
    assert_eq!(b.map_request(600 * MS).unwrap().epoch, 2);
    b.apply_sequence_map(&seq_map(2, None, &[(A, SequenceRule::Offset(0))]), 0)
        .unwrap();
    assert!(
        b.ready_seq(5, 0).is_ready(),
        "the input's own frames still count"
    );
}

/// JB §8.1, §6.3: OFFSET_NS and WINDOW_NS readiness with the map's lateness.
#[test]
fn jb_8_1_timestamp_rules_with_lateness() {
    let mut b = JoinBarrier::new(OUT, JoinMode::Timestamp);
    b.apply_timestamp_map(
        &time_map(
            0,
            &[
                (A, TimestampRule::OffsetNs(0)),
                (B, TimestampRule::OffsetNs(-2 * MS as i64)),
            ],
        ),
        0,
    )
    .unwrap();
    let fd = TimestampSource::FrameDescriptor;
    let mono = ClockDomain::Monotonic;
    b.observe_time(
        A,
        1,
        0,
        Stamp {
            source: fd,
            timestamp_ns: Some(10 * MS),
            clock_domain: mono,
        },
        0,
    );
    b.observe_time(
        B,
        1,
        0,
        Stamp {
            source: fd,
            timestamp_ns: Some(7 * MS),
            clock_domain: mono,
        },
        0,
    );
    assert_eq!(
        b.ready_time(MS, mono, 0).missing.iter().collect::<Vec<_>>(),
        vec![1],
        "out 1 ms < 2 ms"
    );
    assert!(b.ready_time(9 * MS, mono, 0).is_ready());
    assert_eq!(
        b.ready_time(10 * MS, mono, 0)
            .missing
            .iter()
            .collect::<Vec<_>>(),
        vec![1]
    );
    b.observe_time(
        B,
        1,
        1,
        Stamp {
            source: fd,
            timestamp_ns: Some(8 * MS),
            clock_domain: mono,
        },
        0,
    );
    assert!(b.ready_time(10 * MS, mono, 0).is_ready());
    // a camera + IMU window join (JB A.4.2): IMU within 10 ms, lateness 10 ms
    let mut b = JoinBarrier::new(OUT, JoinMode::Timestamp);
    b.apply_timestamp_map(
        &time_map(
            10 * MS,
            &[
                (A, TimestampRule::OffsetNs(0)),
                (B, TimestampRule::WindowNs(10 * MS)),
            ],
        ),
        0,
    )
    .unwrap();
    b.observe_time(
        A,
        1,
        0,
        Stamp {
            source: fd,
            timestamp_ns: Some(100 * MS),
            clock_domain: mono,
        },
        0,
    );
    b.observe_time(
        B,
        1,
        0,
        Stamp {
            source: fd,
            timestamp_ns: Some(89 * MS),
            clock_domain: mono,
        },
        0,
    );
    let r = b.ready_time(100 * MS, mono, 0);
    // cam needs 100 - 10 (lateness applies to every rule's readiness), imu needs 90
    assert_eq!(r.missing.iter().collect::<Vec<_>>(), vec![1]);
    b.observe_time(
        B,
        1,
        1,
        Stamp {
            source: fd,
            timestamp_ns: Some(90 * MS),
            clock_domain: mono,
        },
        0,
    );
    assert!(b.ready_time(100 * MS, mono, 0).is_ready());
    assert_eq!(b.input_times(1, 100 * MS), Some(90 * MS..=100 * MS));
    // a window is not ready while out_time < window
    assert!(!b.ready_time(100 * MS, mono, 0).missing.contains(0));
    let mut w = JoinBarrier::new(OUT, JoinMode::Timestamp);
    w.apply_timestamp_map(&time_map(0, &[(A, TimestampRule::WindowNs(50))]), 0)
        .unwrap();
    w.observe_time(
        A,
        1,
        0,
        Stamp {
            source: fd,
            timestamp_ns: Some(1000),
            clock_domain: mono,
        },
        0,
    );
    assert!(!w.ready_time(49, mono, 0).is_ready());
    assert!(w.ready_time(50, mono, 0).is_ready());
}

/// JB §8.2: a null timestamp is not ready; timestamps going backwards reject the stream;
/// another clock domain rejects the input, and an output time in another domain or going
/// backwards is refused.
#[test]
fn jb_8_2_timestamp_validity_rules() {
    let fd = TimestampSource::FrameDescriptor;
    let mono = ClockDomain::Monotonic;
    let map = time_map(
        0,
        &[
            (A, TimestampRule::OffsetNs(0)),
            (B, TimestampRule::OffsetNs(0)),
        ],
    );
    let mut b = JoinBarrier::new(OUT, JoinMode::Timestamp);
    b.apply_timestamp_map(&map, 0).unwrap();
    b.observe_time(
        A,
        1,
        0,
        Stamp {
            source: fd,
            timestamp_ns: None,
            clock_domain: mono,
        },
        0,
    );
    b.observe_time(
        B,
        1,
        0,
        Stamp {
            source: fd,
            timestamp_ns: Some(5),
            clock_domain: mono,
        },
        0,
    );
    assert_eq!(
        b.ready_time(5, mono, 0).missing.iter().collect::<Vec<_>>(),
        vec![0]
    );
    assert_eq!(b.counters().timestamps_missing, 1);
    // backwards: B rejected
    b.observe_time(
        A,
        1,
        1,
        Stamp {
            source: fd,
            timestamp_ns: Some(5),
            clock_domain: mono,
        },
        0,
    );
    b.observe_time(
        B,
        1,
        1,
        Stamp {
            source: fd,
            timestamp_ns: Some(4),
            clock_domain: mono,
        },
        0,
    );
    let r = b.ready_time(5, mono, 0);
    assert_eq!(
        (r.status, r.rejected.iter().collect::<Vec<_>>()),
        (JoinStatus::Rejected, vec![1])
    );
    assert_eq!(b.input_rejection(1), Some(InputRejection::NonMonotonic));
    // a later good timestamp does not clear it; a new epoch of the input does
    b.observe_time(
        B,
        1,
        2,
        Stamp {
            source: fd,
            timestamp_ns: Some(9),
            clock_domain: mono,
        },
        0,
    );
    assert_eq!(b.ready_time(5, mono, 0).status, JoinStatus::Rejected);
    b.observe_time(
        B,
        2,
        0,
        Stamp {
            source: fd,
            timestamp_ns: Some(9),
            clock_domain: mono,
        },
        0,
    );
    assert!(b.ready_time(5, mono, 0).is_ready());
    // an input in another clock domain is rejected
    b.observe_time(
        A,
        1,
        2,
        Stamp {
            source: fd,
            timestamp_ns: Some(10),
            clock_domain: ClockDomain::RealtimeSynced,
        },
        0,
    );
    assert_eq!(b.input_rejection(0), Some(InputRejection::ClockDomain));
    // the output in another domain, or going backwards
    let mut b = JoinBarrier::new(OUT, JoinMode::Timestamp);
    b.apply_timestamp_map(&map, 0).unwrap();
    assert_eq!(
        b.ready_time(5, ClockDomain::RealtimeSynced, 0).status,
        JoinStatus::ClockMismatch
    );
    b.ready_time(5, mono, 0);
    assert_eq!(b.ready_time(4, mono, 0).status, JoinStatus::OutputRegressed);
    assert_eq!(b.counters().outputs_regressed, 1);
    // a slot-header rule is not fed by frame-descriptor timestamps
    let mut sh = map.clone();
    sh.inputs[0].source = TimestampSource::SlotHeader;
    let mut b = JoinBarrier::new(OUT, JoinMode::Timestamp);
    b.apply_timestamp_map(&sh, 0).unwrap();
    assert!(!b.observe_time(
        A,
        1,
        0,
        Stamp {
            source: fd,
            timestamp_ns: Some(5),
            clock_domain: mono
        },
        0
    ));
    assert!(b.observe_time(
        A,
        1,
        0,
        Stamp {
            source: TimestampSource::SlotHeader,
            timestamp_ns: Some(5),
            clock_domain: mono
        },
        0
    ));
}

/// JB §9.1: latest value is ready when every input has a frame in its current epoch; an
/// invalidated selection makes the input absent; frames of a prior epoch never count.
#[test]
fn jb_9_1_latest_value_rules() {
    let mut b = JoinBarrier::new(OUT, JoinMode::LatestValue(LatestOrder::Sequence));
    b.apply_sequence_map(
        &seq_map(
            1,
            None,
            &[(A, SequenceRule::Offset(0)), (B, SequenceRule::Window(3))],
        ),
        0,
    )
    .unwrap();
    assert_eq!(b.ready_latest(0).missing.len(), 2);
    b.observe_seq(A, 4, 10, 0);
    b.observe_seq(B, 4, 12, 0);
    assert!(b.ready_latest(0).is_ready());
    assert_eq!((b.latest(0), b.latest(1)), (Some((4, 10)), Some((4, 12))));
    b.invalidate(B);
    assert_eq!(
        b.ready_latest(0).missing.iter().collect::<Vec<_>>(),
        vec![1]
    );
    b.observe_seq(B, 4, 13, 0);
    assert!(b.ready_latest(0).is_ready());
    // A moves to epoch 5: its epoch-4 frame is gone
    b.observe_seq(A, 4, 11, 0);
    b.ready_latest(0);
    b.processed_seq(A, 5, 0);
    assert_eq!(b.latest(0), None);
    assert!(!b.ready_latest(0).is_ready());
    b.observe_seq(A, 5, 0, 0);
    assert_eq!(b.latest(0), Some((5, 0)));
    // an out-of-order older frame does not replace the newest
    b.observe_seq(B, 4, 12, 0);
    assert_eq!(b.latest(1), Some((4, 13)));
    // stale inputs are absent and do not block (JB A.5.1)
    let mut s = JoinBarrier::new(OUT, JoinMode::LatestValue(LatestOrder::Sequence));
    s.apply_sequence_map(
        &seq_map(
            1,
            Some(60 * MS),
            &[(A, SequenceRule::Offset(0)), (B, SequenceRule::Offset(0))],
        ),
        0,
    )
    .unwrap();
    s.observe_seq(A, 1, 0, 0);
    s.observe_seq(B, 1, 0, 0);
    s.observe_seq(A, 1, 1, 61 * MS);
    let r = s.ready_latest(61 * MS);
    assert!(r.is_ready());
    assert_eq!(r.absent.iter().collect::<Vec<_>>(), vec![1]);
}

/// A barrier refuses a map of the other kind and readiness calls of the other mode.
#[test]
fn maps_and_calls_must_fit_the_mode() {
    let mut b = JoinBarrier::new(OUT, JoinMode::Sequence);
    assert!(matches!(
        b.apply_timestamp_map(&time_map(0, &[(A, TimestampRule::OffsetNs(0))]), 0),
        Err(MergeMapError::WrongKind { .. })
    ));
    assert_eq!(
        b.ready_time(0, ClockDomain::Monotonic, 0).status,
        JoinStatus::WrongMode
    );
    assert_eq!(b.ready_latest(0).status, JoinStatus::WrongMode);
    let mut t = JoinBarrier::new(OUT, JoinMode::Timestamp);
    assert!(
        t.apply_sequence_map(&seq_map(1, None, &[(A, SequenceRule::Offset(0))]), 0)
            .is_err()
    );
    assert_eq!(t.ready_seq(0, 0).status, JoinStatus::WrongMode);
    let mut lt = JoinBarrier::new(OUT, JoinMode::LatestValue(LatestOrder::Timestamp));
    assert!(
        lt.apply_sequence_map(&seq_map(1, None, &[(A, SequenceRule::Offset(0))]), 0)
            .is_err(),
        "ordering by time needs a timestamp map (its clock domain)"
    );
    lt.apply_timestamp_map(&time_map(0, &[(A, TimestampRule::OffsetNs(0))]), 0)
        .unwrap();
    lt.observe_time(
        A,
        1,
        3,
        Stamp {
            source: TimestampSource::FrameDescriptor,
            timestamp_ns: Some(7),
            clock_domain: ClockDomain::Monotonic,
        },
        0,
    );
    assert!(lt.ready_latest(0).is_ready());
    assert_eq!(lt.map_request(0), None);
}

/// The Julia implementation's scripts/example_join_barrier_sequence.jl: two inputs with
/// OFFSET 0, out_seq 5: not ready before observations, ready after both saw 5.
#[test]
fn julia_example_sequence() {
    let mut b = JoinBarrier::new(9000, JoinMode::Sequence);
    b.apply_sequence_map(
        &seq_map(
            1,
            None,
            &[(A, SequenceRule::Offset(0)), (B, SequenceRule::Offset(0))],
        ),
        0,
    )
    .unwrap();
    let r = b.ready_seq(5, 0);
    assert_eq!((r.is_ready(), r.missing.len()), (false, 2));
    b.observe_seq(A, 1, 5, 0);
    b.observe_seq(B, 1, 5, 0);
    assert!(b.ready_seq(5, 0).is_ready());
}

/// scripts/example_join_barrier_timestamp.jl: one OFFSET_NS 0 rule on the frame descriptor
/// time, MONOTONIC, lateness 0, out_time 1 ms.
#[test]
fn julia_example_timestamp() {
    let mut b = JoinBarrier::new(OUT, JoinMode::Timestamp);
    b.apply_timestamp_map(&time_map(0, &[(A, TimestampRule::OffsetNs(0))]), 0)
        .unwrap();
    let r = b.ready_time(MS, ClockDomain::Monotonic, 0);
    assert_eq!((r.is_ready(), r.missing.len()), (false, 1));
    b.observe_time(
        A,
        1,
        0,
        Stamp {
            source: TimestampSource::FrameDescriptor,
            timestamp_ns: Some(MS),
            clock_domain: ClockDomain::Monotonic,
        },
        0,
    );
    assert!(b.ready_time(MS, ClockDomain::Monotonic, 0).is_ready());
}

/// scripts/example_join_barrier_latest.jl: two inputs, ready once both observed (10, 12),
/// not ready after the second's selection is invalidated (one missing).
#[test]
fn julia_example_latest() {
    let mut b = JoinBarrier::new(OUT, JoinMode::LatestValue(LatestOrder::Sequence));
    b.apply_sequence_map(
        &seq_map(
            1,
            None,
            &[(A, SequenceRule::Offset(0)), (B, SequenceRule::Offset(0))],
        ),
        0,
    )
    .unwrap();
    let r = b.ready_latest(0);
    assert_eq!((r.is_ready(), r.missing.len()), (false, 2));
    b.observe_seq(A, 1, 10, 0);
    b.observe_seq(B, 1, 12, 0);
    assert!(b.ready_latest(0).is_ready());
    b.invalidate(B);
    let r = b.ready_latest(0);
    assert_eq!((r.is_ready(), r.missing.len()), (false, 1));
}
