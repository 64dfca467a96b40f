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
