//! FrameProgress (Wire Spec §10.2.2): published only for consumers that asked, throttled by
//! the aggregated hints; on the consumer monotonic, never beyond values_len, regressions
//! dropped, layout-safe prefixes only, and COMPLETE never taken as committed.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tensorpool::consumer::{FrameHandler, Progress, ProgressHints};
use tensorpool::prelude::*;
use tensorpool::producer::ProgressPolicy;
use tensorpool::streams::{CONTROL_STREAM_ID, DEFAULT_CHANNEL};
use tensorpool_codec::Message;
use tensorpool_codec::wire::{FrameProgress, FrameProgressState};

#[derive(Default)]
struct Rec {
    progress: Vec<(u64, FrameProgressState, u64, Option<Vec<u8>>)>,
    frames: Vec<u64>,
}

impl FrameHandler for Rec {
    fn on_frame(&mut self, frame: &Frame<'_>) {
        self.frames.push(frame.seq());
    }
    fn on_progress(&mut self, p: &Progress<'_>) {
        let prefix = p.prefix().map(<[u8]>::to_vec);
        if p.recheck().is_ok() {
            self.progress
                .push((p.seq(), p.state(), p.bytes_filled(), prefix));
        }
    }
}

#[test]
fn w_10_2_2_progress_is_monotonic_bounded_and_never_a_commit() {
    let world = World::new();
    let zero = ProgressPolicy {
        interval_us: 0,
        bytes_delta: 0,
        major_delta_units: 0,
    };
    let mut producer = world
        .producer()
        .configure(|c| c.progress_floor = zero)
        .build()
        .unwrap();
    let hints = ProgressHints {
        interval_us: Some(0),
        bytes_delta: Some(0),
        major_delta_units: None,
    };
    let mut consumer = world.consumer().progress(hints).build().unwrap();
    connect(&mut producer, &mut consumer);
    pump_until("progress active", &mut producer, &mut consumer, |p, _| {
        p.progress_active()
    });
    let raw = world
        .ctx
        .client()
        .add_exclusive_publication(DEFAULT_CHANNEL, CONTROL_STREAM_ID, Duration::from_secs(5))
        .unwrap();
    let mut raw = raw;
    let epoch = producer.epoch().unwrap();
    let spec = TensorSpec::new(Dtype::Uint8, &[16, 64])
        .unwrap()
        .progress_rows()
        .unwrap();
    let mut rec = Rec::default();

    let mut claim = producer.claim(&spec).unwrap();
    let seq = claim.seq();
    for r in 0..16usize {
        claim.payload_mut()[r * 64..(r + 1) * 64].fill(r as u8 + 1);
        assert!(
            claim.progress((r + 1) * 64 - 10),
            "row {r} progress published"
        );
    }
    let mut poll_until =
        |what: &str,
         rec: &mut Rec,
         cond: &dyn Fn(&Rec, &tensorpool::consumer::Consumer) -> bool| {
            let deadline = Instant::now() + DEADLINE;
            let mut round = 0;
            while !cond(rec, &consumer) {
                assert!(Instant::now() < deadline, "timed out waiting for {what}");
                if consumer.poll_handler(rec, 16).unwrap() == 0 {
                    idle(&mut round);
                }
            }
            consumer.counters()
        };
    poll_until("started + 16 progress", &mut rec, &|r, _| {
        r.progress.len() == 17
    });
    assert_eq!(rec.progress[0].1, FrameProgressState::Started);
    let mut last = 0;
    for (i, (s, state, filled, prefix)) in rec.progress.iter().enumerate().skip(1) {
        assert_eq!((*s, *state), (seq, FrameProgressState::Progress));
        assert!(*filled >= last && *filled <= 1024);
        last = *filled;
        // ROWS in row-major: only whole rows are readable, and they hold what was written.
        let prefix = prefix.as_ref().expect("row prefix");
        assert_eq!(prefix.len(), (i - 1) * 64, "whole rows only");
        assert!(
            prefix
                .chunks(64)
                .enumerate()
                .all(|(r, row)| row.iter().all(|&b| b == r as u8 + 1))
        );
    }

    // Injected reports: a regression, one beyond values_len, then COMPLETE before commit.
    let send = |raw: &mut tensorpool_aeron::Publication, filled, state| {
        let m = FrameProgress {
            stream_id: STREAM,
            epoch,
            seq,
            payload_bytes_filled: filled,
            state,
        };
        raw.publish(m.encoded_len(), |b| m.encode(b).map(|_| ()))
            .unwrap();
    };
    send(&mut raw, 100, FrameProgressState::Progress);
    send(&mut raw, 5000, FrameProgressState::Progress);
    send(&mut raw, 1024, FrameProgressState::Complete);
    let c = poll_until("injected", &mut rec, &|r, c| {
        r.progress.len() == 18 && c.counters().progress_beyond == 1
    });
    assert_eq!(c.progress_regressed, 1);
    assert_eq!(rec.progress[17].1, FrameProgressState::Complete);
    assert!(rec.frames.is_empty(), "COMPLETE is not a committed frame");
    assert_eq!(c.accepted, 0);

    claim.commit();
    poll_until("frame", &mut rec, &|r, _| r.frames == [seq]);
    drop(raw);
    drop((producer, consumer));
    world.finish();
}

#[test]
fn w_10_2_2_no_progress_without_a_consumer_that_asked() {
    let world = World::new();
    let mut producer = world.producer().build().unwrap();
    let mut consumer = world.consumer().build().unwrap();
    connect(&mut producer, &mut consumer);
    assert!(!producer.progress_active());
    let spec = TensorSpec::new(Dtype::Uint8, &[4096]).unwrap();
    let mut claim = producer.claim(&spec).unwrap();
    assert!(!claim.progress(4096));
    claim.commit();
    assert_eq!(producer.counters().progress_sent, 0);
    drop((producer, consumer));
    world.finish();
}

#[test]
fn claim_dropped_without_commit_aborts_cleanly() {
    let world = World::new();
    let mut producer = world.producer().build().unwrap();
    let mut consumer = world.consumer().build().unwrap();
    connect(&mut producer, &mut consumer);
    let spec = TensorSpec::new(Dtype::Uint8, &[64]).unwrap();
    let seq = {
        let mut claim = producer.claim(&spec).unwrap();
        claim.payload_mut().fill(9);
        claim.seq()
    }; // dropped: aborted
    assert_eq!(producer.counters().aborted, 1);
    assert_eq!(producer.counters().descriptors_sent, 0);
    assert_eq!(
        producer.next_seq(),
        seq,
        "an unpublished sequence is reused"
    );
    let s2 = producer.offer(&spec, &[3u8; 64]).unwrap();
    assert_eq!(s2, seq);
    pump_until("frame after abort", &mut producer, &mut consumer, |_, c| {
        c.counters().accepted == 1
    });
    drop((producer, consumer));
    world.finish();
}

#[test]
fn w_5_per_consumer_control_stream_carries_progress() {
    let world = World::new();
    let zero = ProgressPolicy {
        interval_us: 0,
        bytes_delta: 0,
        major_delta_units: 0,
    };
    let mut producer = world
        .producer()
        .configure(|c| c.progress_floor = zero)
        .build()
        .unwrap();
    let hints = ProgressHints {
        interval_us: Some(0),
        bytes_delta: Some(0),
        major_delta_units: None,
    };
    let mut consumer = world
        .consumer()
        .progress(hints)
        .configure(|c| c.control_request = Some(tensorpool::streams::Endpoint::ipc(32_001)))
        .build()
        .unwrap();
    pump_until(
        "per-consumer control",
        &mut producer,
        &mut consumer,
        |p, c| {
            p.progress_active()
                && c.on_per_consumer_control()
                && c.state() != ConsumerState::Unmapped
        },
    );
    let spec = TensorSpec::new(Dtype::Uint8, &[4, 64])
        .unwrap()
        .progress_rows()
        .unwrap();
    let mut rec = Rec::default();
    let mut claim = producer.claim(&spec).unwrap();
    claim.payload_mut().fill(1);
    assert!(claim.progress(128));
    claim.commit();
    let deadline = Instant::now() + DEADLINE;
    let mut round = 0;
    while rec.frames.is_empty() || rec.progress.len() < 3 {
        assert!(
            Instant::now() < deadline,
            "progress never arrived: {:?}",
            rec.progress
        );
        if consumer.poll_handler(&mut rec, 16).unwrap() == 0 {
            idle(&mut round);
        }
    }
    let states: Vec<_> = rec.progress.iter().map(|p| p.1).collect();
    assert_eq!(
        states,
        [
            FrameProgressState::Started,
            FrameProgressState::Progress,
            FrameProgressState::Complete
        ]
    );
    drop((producer, consumer));
    world.finish();
}
