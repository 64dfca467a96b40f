//! The rate limiter's policies without shared memory or Aeron: frames arrive as (mapping,
//! seq, epoch) with a manual clock, and the agent's part (forward, hold, release) is played by
//! a small driver that records what reached the destination. RateLimiter v1.0 §4 (rate,
//! newest wins, first frame eligible at once, timer reset on epoch change), §5 (losses are
//! drops), §7 (epoch change = remap boundary), and our decimation rule (every Nth sequence,
//! gaps never shift the phase).

use proptest::prelude::*;
use tensorpool::ratelimiter::{Action, Lost, Policy, RateLimiterCore};

const MS: u64 = 1_000_000;

/// What reached the destination: (seq, epoch, forward time).
#[derive(Default)]
struct Dest {
    out: Vec<(u64, u64, u64)>,
}

/// Plays the agent: a frame arrives at `now`; held frames are released at `now`.
fn frame(core: &mut RateLimiterCore, dest: &mut Dest, lane: usize, seq: u64, epoch: u64, now: u64) {
    let v = core.on_frame(lane, seq, epoch, now);
    if v.action == Action::Forward {
        core.on_forwarded(lane, seq, now);
        dest.out.push((seq, epoch, now));
    }
}

fn tick(core: &mut RateLimiterCore, dest: &mut Dest, lane: usize, epoch: u64, now: u64) {
    if let Some(seq) = core.release(lane, now) {
        core.on_forwarded(lane, seq, now);
        dest.out.push((seq, epoch, now));
    }
}

#[test]
fn rl_4_max_rate_newest_wins_and_no_two_forwards_closer_than_the_interval() {
    // 1 kHz source, 30 Hz limit: interval ceil(1e9 / 30) ns
    let mut core = RateLimiterCore::new(&[Policy::MaxRate { hz: 30 }]);
    let interval = Policy::MaxRate { hz: 30 }.interval_ns().unwrap();
    assert_eq!(interval, 33_333_334);
    let mut dest = Dest::default();
    for seq in 0..1000u64 {
        let now = seq * MS;
        tick(&mut core, &mut dest, 0, 1, now);
        frame(&mut core, &mut dest, 0, seq, 1, now);
    }
    // first frame eligible at once (RL §4)
    assert_eq!(dest.out[0], (0, 1, 0));
    for w in dest.out.windows(2) {
        assert!(
            w[1].2 - w[0].2 >= interval,
            "{w:?} closer than the interval"
        );
        assert!(w[1].0 > w[0].0, "sequences increase");
    }
    // newest wins: each released frame is the last one that arrived before its slot opened
    for &(seq, _, at) in &dest.out[1..] {
        assert_eq!(
            seq,
            at / MS - 1,
            "frame {seq} released at {at} is the newest before it"
        );
    }
    let c = core.counters(0);
    assert_eq!(c.received, 1000);
    assert_eq!(c.forwarded as usize, dest.out.len());
    assert_eq!(
        c.filtered + c.forwarded,
        1000 - u64::from(core.holding(0).is_some())
    );
    assert!(dest.out.len() <= 1 + (999 * MS / interval) as usize);
}

#[test]
fn rl_4_a_held_frame_goes_out_when_the_slot_opens_even_without_a_newer_frame() {
    let mut core = RateLimiterCore::new(&[Policy::MaxRate { hz: 10 }]);
    let mut dest = Dest::default();
    frame(&mut core, &mut dest, 0, 1, 7, 0);
    frame(&mut core, &mut dest, 0, 2, 7, 10 * MS);
    frame(&mut core, &mut dest, 0, 3, 7, 20 * MS);
    assert_eq!(core.holding(0), Some(3), "the newest replaces the held one");
    tick(&mut core, &mut dest, 0, 7, 99 * MS);
    assert_eq!(dest.out.len(), 1, "slot not open before 100 ms");
    tick(&mut core, &mut dest, 0, 7, 100 * MS);
    assert_eq!(dest.out, vec![(1, 7, 0), (3, 7, 100 * MS)]);
    assert_eq!(core.counters(0).filtered, 1, "frame 2 was replaced");
}

#[test]
fn rl_4_a_lost_forward_leaves_the_slot_open() {
    let mut core = RateLimiterCore::new(&[Policy::MaxRate { hz: 10 }]);
    let v = core.on_frame(0, 1, 1, 0);
    assert_eq!(v.action, Action::Forward);
    core.on_lost(0, 1, Lost::Torn);
    let v = core.on_frame(0, 2, 1, MS);
    assert_eq!(
        v.action,
        Action::Forward,
        "nothing was forwarded: still eligible"
    );
    core.on_lost(0, 2, Lost::NoPool);
    assert_eq!(core.on_frame(0, 3, 1, 2 * MS).action, Action::Forward);
    core.on_lost(0, 3, Lost::ClaimFailed);
    let c = core.counters(0);
    assert_eq!(
        (c.torn, c.no_pool, c.claim_failed, c.forwarded),
        (1, 1, 1, 0)
    );
}

#[test]
fn rl_4_7_source_epoch_change_resets_the_timer_and_drops_the_held_frame() {
    let mut core = RateLimiterCore::new(&[Policy::MaxRate { hz: 1 }]);
    let mut dest = Dest::default();
    frame(&mut core, &mut dest, 0, 100, 1, 0);
    frame(&mut core, &mut dest, 0, 101, 1, MS);
    assert_eq!(core.holding(0), Some(101));
    // the source restarts: epoch 2, seq from 0, long before the 1 s slot opens
    let v = core.on_frame(0, 0, 2, 2 * MS);
    assert!(v.remap, "the epoch change is reported");
    assert_eq!(
        v.action,
        Action::Forward,
        "first frame after remap eligible at once"
    );
    core.on_forwarded(0, 0, 2 * MS);
    assert_eq!(core.holding(0), None, "held frame of the old epoch dropped");
    let c = core.counters(0);
    assert_eq!((c.epoch_changes, c.epoch_drops, c.stale), (1, 1, 0));
}

#[test]
fn decimation_forwards_exactly_the_multiples_of_n_across_gaps() {
    let mut core = RateLimiterCore::new(&[Policy::EveryNth { n: 10 }]);
    let mut dest = Dest::default();
    // a source with gaps: 20 and 35..=52 never arrive
    for seq in (0..200u64).filter(|s| *s != 20 && !(35..=52).contains(s)) {
        frame(&mut core, &mut dest, 0, seq, 1, seq * MS);
    }
    let got: Vec<u64> = dest.out.iter().map(|o| o.0).collect();
    let want: Vec<u64> = (0..200)
        .step_by(10)
        .filter(|s| *s != 20 && *s != 40 && *s != 50)
        .collect();
    assert_eq!(
        got, want,
        "a lost multiple is not replaced; the phase never shifts"
    );
}

#[test]
fn stale_and_repeated_sequences_are_dropped() {
    let mut core = RateLimiterCore::new(&[Policy::Unlimited]);
    let mut dest = Dest::default();
    for seq in [5, 6, 6, 4, 7] {
        frame(&mut core, &mut dest, 0, seq, 1, 0);
    }
    let got: Vec<u64> = dest.out.iter().map(|o| o.0).collect();
    assert_eq!(got, vec![5, 6, 7]);
    assert_eq!(core.counters(0).stale, 2);
}

#[test]
fn one_instance_serves_several_mappings_independently() {
    let mut core = RateLimiterCore::new(&[
        Policy::MaxRate { hz: 100 },
        Policy::EveryNth { n: 3 },
        Policy::Unlimited,
    ]);
    let mut dests = [Dest::default(), Dest::default(), Dest::default()];
    for seq in 0..30u64 {
        for (lane, d) in dests.iter_mut().enumerate() {
            tick(&mut core, d, lane, 1, seq * MS);
            frame(&mut core, d, lane, seq, 1, seq * MS);
        }
    }
    assert_eq!(dests[0].out.len(), 3, "0, 10 ms, 20 ms");
    assert_eq!(dests[1].out.len(), 10);
    assert_eq!(dests[2].out.len(), 30);
}

proptest! {
    /// Any arrival pattern (gaps, repeats, bursts, epoch changes, forwards lost): forwarded
    /// frames of one epoch are at least the interval apart and increase in sequence; a
    /// decimated lane forwards only multiples of n; counters add up.
    #[test]
    fn policies_hold_for_any_arrivals(
        hz in 1u32..2000,
        n in 1u64..20,
        steps in proptest::collection::vec((0u64..5, 0u64..3_000_000, 0u8..20, any::<bool>()), 1..400),
    ) {
        let mut core = RateLimiterCore::new(&[Policy::MaxRate { hz }, Policy::EveryNth { n }]);
        let interval = Policy::MaxRate { hz }.interval_ns().unwrap();
        let (mut seq, mut epoch, mut now) = (0u64, 1u64, 0u64);
        let mut out: [Vec<(u64, u64, u64)>; 2] = [Vec::new(), Vec::new()];
        for (dseq, dt, op, lose) in steps {
            now += dt;
            // the agent releases held frames before it reads new ones
            for (lane, o) in out.iter_mut().enumerate() {
                if let Some(s) = core.release(lane, now) {
                    if lose { core.on_lost(lane, s, Lost::Torn) } else {
                        core.on_forwarded(lane, s, now);
                        o.push((s, epoch, now));
                    }
                }
            }
            if op == 0 {
                epoch += 1;
                seq = 0;
            }
            seq = if op == 1 { seq.saturating_sub(dseq) } else { seq + dseq };
            for (lane, o) in out.iter_mut().enumerate() {
                let v = core.on_frame(lane, seq, epoch, now);
                if v.action == Action::Forward {
                    if lose { core.on_lost(lane, seq, Lost::ClaimFailed) } else {
                        core.on_forwarded(lane, seq, now);
                        o.push((seq, epoch, now));
                    }
                }
            }
        }
        for w in out[0].windows(2) {
            if w[0].1 == w[1].1 {
                prop_assert!(w[1].2 - w[0].2 >= interval, "{:?}", w);
                prop_assert!(w[1].0 > w[0].0, "{:?}", w);
            }
        }
        for o in &out[1] {
            prop_assert_eq!(o.0 % n, 0);
        }
        for (lane, o) in out.iter().enumerate() {
            let c = core.counters(lane);
            prop_assert_eq!(c.forwarded as usize, o.len());
            prop_assert!(c.forwarded + c.filtered + c.stale + c.torn + c.claim_failed <= c.received);
        }
    }
}

mod forwarding {
    //! RateLimiter §6.1: progress and QoS of a source stream republished for each mapping of
    //! that source, `streamId` rewritten to the destination.

    use tensorpool::control::RecordingSink;
    use tensorpool::ratelimiter::{Policy, RateLimiterCore};
    use tensorpool_codec::Message;
    use tensorpool_codec::wire::{
        FrameProgress, FrameProgressState, Mode, QosConsumer, QosProducer,
    };

    const SOURCE: u32 = 10_000;
    const EVERY_10: u32 = 11_000;
    const RATE: u32 = 11_001;
    const OTHER_SOURCE: u32 = 10_500;
    const OTHER_DEST: u32 = 11_500;

    fn progress(stream_id: u32, epoch: u64, seq: u64) -> Vec<u8> {
        FrameProgress {
            stream_id,
            epoch,
            seq,
            payload_bytes_filled: 4096,
            state: FrameProgressState::Progress,
        }
        .encode_to_vec()
        .unwrap()
    }

    fn qos_consumer(stream_id: u32) -> Vec<u8> {
        QosConsumer {
            stream_id,
            consumer_id: 9,
            epoch: 5,
            last_seq_seen: 10,
            drops_gap: 1,
            drops_late: 2,
            mode: Mode::Stream,
        }
        .encode_to_vec()
        .unwrap()
    }

    fn qos_producer(stream_id: u32) -> Vec<u8> {
        QosProducer {
            stream_id,
            producer_id: 7,
            epoch: 5,
            current_seq: 11,
            watermark: Some(3),
        }
        .encode_to_vec()
        .unwrap()
    }

    /// Two mappings of one source (every 10th, 30 Hz) and one of another source.
    fn core(progress: bool, qos: bool) -> RateLimiterCore {
        let mut core = RateLimiterCore::new(&[
            Policy::EveryNth { n: 10 },
            Policy::MaxRate { hz: 30 },
            Policy::Unlimited,
        ]);
        core.set_route(0, SOURCE, EVERY_10);
        core.set_route(1, SOURCE, RATE);
        core.set_route(2, OTHER_SOURCE, OTHER_DEST);
        core.set_forwarding(progress, qos);
        core.set_dest_epoch(0, Some(101));
        core.set_dest_epoch(1, Some(102));
        core.set_dest_epoch(2, Some(103));
        core
    }

    fn decoded_progress(sink: &RecordingSink) -> Vec<(u32, u64, u64, u64, FrameProgressState)> {
        sink.messages()
            .map(|m| {
                let p = FrameProgress::decode(m).unwrap();
                (p.stream_id, p.epoch, p.seq, p.payload_bytes_filled, p.state)
            })
            .collect()
    }

    #[test]
    fn rl_6_1_progress_keeps_seq_and_takes_the_destination_stream_id_and_epoch() {
        let mut core = core(true, false);
        let mut out = RecordingSink::with_capacity(8, 256);
        // the source epoch is not known before its first frame: not forwarded
        assert_eq!(
            core.on_source_progress(&progress(SOURCE, 5, 20), &mut out),
            0
        );
        core.on_frame(0, 0, 5, 0);
        core.on_frame(1, 0, 5, 0);
        // seq 20: both mappings of the source; each message names its destination stream
        // and epoch, and keeps seq, bytes and state
        assert_eq!(
            core.on_source_progress(&progress(SOURCE, 5, 20), &mut out),
            2
        );
        assert_eq!(
            decoded_progress(&out),
            vec![
                (EVERY_10, 101, 20, 4096, FrameProgressState::Progress),
                (RATE, 102, 20, 4096, FrameProgressState::Progress),
            ]
        );
        out.clear();
        // seq 21 is never forwarded by the every-10th mapping: only the rate mapping
        assert_eq!(
            core.on_source_progress(&progress(SOURCE, 5, 21), &mut out),
            1
        );
        assert_eq!(decoded_progress(&out)[0].0, RATE);
        out.clear();
        // another source epoch than the frames read, a stream of no mapping, a destination
        // being rebuilt, QoS on the control stream: nothing
        assert_eq!(
            core.on_source_progress(&progress(SOURCE, 4, 30), &mut out),
            0
        );
        assert_eq!(
            core.on_source_progress(&progress(12_345, 5, 30), &mut out),
            0
        );
        core.set_dest_epoch(1, None);
        assert_eq!(
            core.on_source_progress(&progress(SOURCE, 5, 30), &mut out),
            1
        );
        assert_eq!(core.on_source_progress(&qos_producer(SOURCE), &mut out), 0);
        // a destination's own progress (its stream is no source) is never forwarded again
        assert_eq!(
            core.on_source_progress(&progress(EVERY_10, 101, 40), &mut out),
            0
        );
        assert_eq!(core.counters(0).progress_forwarded, 2);
        assert_eq!(core.counters(1).progress_forwarded, 2);
        assert!(core.counters(1).progress_dropped >= 2);
        // garbage and truncated messages: nothing, no panic
        let p = progress(SOURCE, 5, 50);
        for cut in 0..p.len() {
            assert_eq!(core.on_source_progress(&p[..cut], &mut out), 0);
        }
        // off: nothing
        let mut off = self::core(false, true);
        off.on_frame(0, 0, 5, 0);
        assert_eq!(
            off.on_source_progress(&progress(SOURCE, 5, 20), &mut out),
            0
        );
    }

    #[test]
    fn rl_6_1_qos_takes_the_destination_stream_id_and_keeps_every_other_field() {
        let mut core = core(false, true);
        let mut out = RecordingSink::with_capacity(8, 256);
        assert_eq!(core.on_source_qos(&qos_consumer(SOURCE), &mut out), 2);
        assert_eq!(core.on_source_qos(&qos_producer(OTHER_SOURCE), &mut out), 1);
        assert_eq!(core.on_source_qos(&qos_producer(EVERY_10), &mut out), 0);
        assert_eq!(core.on_source_qos(&progress(SOURCE, 5, 20), &mut out), 0);
        let msgs: Vec<&[u8]> = out.messages().collect();
        for (m, dest) in msgs[..2].iter().zip([EVERY_10, RATE]) {
            let q = QosConsumer::decode(m).unwrap();
            assert_eq!(
                (
                    q.stream_id,
                    q.consumer_id,
                    q.epoch,
                    q.last_seq_seen,
                    q.drops_gap,
                    q.drops_late,
                    q.mode
                ),
                (dest, 9, 5, 10, 1, 2, Mode::Stream)
            );
        }
        let q = QosProducer::decode(msgs[2]).unwrap();
        assert_eq!(
            (
                q.stream_id,
                q.producer_id,
                q.epoch,
                q.current_seq,
                q.watermark
            ),
            (OTHER_DEST, 7, 5, 11, Some(3))
        );
        assert_eq!(core.counters(2).qos_forwarded, 1);
        let mut off = self::core(true, false);
        assert_eq!(off.on_source_qos(&qos_consumer(SOURCE), &mut out), 0);
    }
}

#[test]
fn rl_7_a_stale_source_drops_the_held_frame_and_the_next_frame_is_eligible_at_once() {
    let mut core = RateLimiterCore::new(&[Policy::MaxRate { hz: 10 }]);
    let mut dest = Dest::default();
    frame(&mut core, &mut dest, 0, 0, 1, 0);
    frame(&mut core, &mut dest, 0, 1, 1, MS);
    assert_eq!(core.holding(0), Some(1));
    core.on_source_stale(0);
    assert_eq!(core.holding(0), None, "the in-flight frame is dropped");
    assert_eq!(core.release(0, 500 * MS), None, "and never released");
    let c = core.counters(0);
    assert_eq!((c.source_stale, c.epoch_drops), (1, 1));
    // the source comes back on a new epoch: counted as an epoch change, first frame at once
    let v = core.on_frame(0, 0, 2, 2 * MS);
    assert!(v.remap);
    assert_eq!(v.action, Action::Forward);
    // back on the same epoch (a mapping lost and found again): the rate timer was reset too
    let mut core = RateLimiterCore::new(&[Policy::MaxRate { hz: 10 }]);
    frame(&mut core, &mut dest, 0, 5, 1, 0);
    core.on_source_stale(0);
    let v = core.on_frame(0, 6, 1, MS);
    assert_eq!((v.action, v.remap), (Action::Forward, false));
}

#[test]
fn rl_4_the_sole_consumers_rate_is_authoritative_and_the_configuration_is_the_fallback() {
    let mut core = RateLimiterCore::new(&[Policy::MaxRate { hz: 50 }, Policy::EveryNth { n: 10 }]);
    assert_eq!(core.counters(0).rate_hz, 50);
    // the sole consumer asks for 10 Hz: the interval becomes 100 ms
    assert!(core.set_consumer_rate(0, Some(10)));
    assert_eq!(core.lane(0).policy, Policy::MaxRate { hz: 10 });
    assert_eq!(core.counters(0).rate_hz, 10);
    assert!(
        !core.set_consumer_rate(0, Some(10)),
        "no change, not counted"
    );
    let mut dest = Dest::default();
    for seq in 0..1000u64 {
        let now = seq * MS;
        tick(&mut core, &mut dest, 0, 1, now);
        frame(&mut core, &mut dest, 0, seq, 1, now);
    }
    assert!(dest.out.windows(2).all(|w| w[1].2 - w[0].2 >= 100 * MS));
    assert_eq!(dest.out.len(), 10, "1 s at 10 Hz");
    // 0 = unlimited: the held frame goes at once, then every frame
    assert!(core.set_consumer_rate(0, Some(0)));
    assert_eq!(core.lane(0).policy, Policy::Unlimited);
    assert_eq!(core.counters(0).rate_hz, 0);
    // no sole consumer (none, several, or not rate-limited): the configured rate
    assert!(core.set_consumer_rate(0, None));
    assert_eq!(core.lane(0).policy, Policy::MaxRate { hz: 50 });
    // a decimation mapping keeps its policy
    assert!(!core.set_consumer_rate(1, Some(5)));
    assert_eq!(core.lane(1).policy, Policy::EveryNth { n: 10 });
    assert_eq!(core.counters(0).consumer_rate_changes, 3);
}

proptest! {
    /// Bad input from the wire (RL §6.1 forwarding): arbitrary bytes and valid progress / QoS
    /// messages with bytes flipped never panic, and whatever is republished decodes with a
    /// destination stream id.
    #[test]
    fn forwarding_survives_arbitrary_and_corrupted_messages(
        raw in proptest::collection::vec(any::<u8>(), 0..96),
        flip_at in any::<usize>(),
        flip in any::<u8>(),
        stream in prop_oneof![Just(10_000u32), Just(10_500u32), any::<u32>()],
        epoch in 0u64..3,
        seq in any::<u64>(),
    ) {
        use tensorpool::control::RecordingSink;
        use tensorpool_codec::Message;
        use tensorpool_codec::wire::{FrameProgress, FrameProgressState, Mode, QosConsumer, QosProducer};
        let mut core = RateLimiterCore::new(&[Policy::EveryNth { n: 3 }, Policy::MaxRate { hz: 30 }]);
        core.set_route(0, 10_000, 11_000);
        core.set_route(1, 10_500, 11_500);
        core.set_forwarding(true, true);
        core.set_dest_epoch(0, Some(7));
        core.set_dest_epoch(1, Some(8));
        core.on_frame(0, 0, 1, 0);
        core.on_frame(1, 0, 1, 0);
        let valid = [
            FrameProgress { stream_id: stream, epoch, seq, payload_bytes_filled: seq / 2, state: FrameProgressState::Complete }
                .encode_to_vec().unwrap(),
            QosConsumer { stream_id: stream, consumer_id: 1, epoch, last_seq_seen: seq, drops_gap: 0, drops_late: 0, mode: Mode::Stream }
                .encode_to_vec().unwrap(),
            QosProducer { stream_id: stream, producer_id: 2, epoch, current_seq: seq, watermark: None }
                .encode_to_vec().unwrap(),
        ];
        let mut out = RecordingSink::with_capacity(8, 256);
        let mut inputs = vec![raw];
        for mut m in valid {
            let i = flip_at % m.len();
            inputs.push(m.clone());
            m[i] ^= flip;
            inputs.push(m);
        }
        for m in &inputs {
            core.on_source_progress(m, &mut out);
            core.on_source_qos(m, &mut out);
            for sent in out.messages() {
                let id = FrameProgress::decode(sent).map(|p| p.stream_id)
                    .or_else(|_| QosConsumer::decode(sent).map(|q| q.stream_id))
                    .or_else(|_| QosProducer::decode(sent).map(|q| q.stream_id))
                    .unwrap();
                prop_assert!(id == 11_000 || id == 11_500, "republished for {}", id);
            }
            out.clear();
        }
    }
}
