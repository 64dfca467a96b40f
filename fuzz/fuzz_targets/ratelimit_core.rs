//! The rate limiter core under arbitrary frame sequences: three mappings (a max_rate_hz
//! chosen by the input, every Nth with N from the input, unlimited), frames with arbitrary
//! sequences (gaps, repeats, going back), source epoch changes, clock advances, releases and
//! forwards that are lost (torn, no pool, claim refused). Never panics; within one source
//! epoch, forwarded frames of the rate lane are at least the interval apart and increasing;
//! the decimated lane forwards only multiples of N; nothing is forwarded twice; the counters
//! never claim more outcomes than frames received.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tensorpool::ratelimiter::{Action, Lost, Policy, RateLimiterCore};

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from(self.u8()?) << 8 | u16::from(self.u8()?))
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let (Some(hz), Some(n)) = (input.u16(), input.u8()) else {
        return;
    };
    let hz = u32::from(hz).max(1);
    let n = u64::from(n).max(1);
    let policies = [Policy::MaxRate { hz }, Policy::EveryNth { n }, Policy::Unlimited];
    let interval = policies[0].interval_ns().expect("rate policy");
    let mut core = RateLimiterCore::new(&policies);
    let (mut now, mut epoch, mut seq) = (0u64, 1u64, 0u64);
    // (epoch, seq, time) of the last forward per lane
    let mut last: [Option<(u64, u64, u64)>; 3] = [None; 3];
    let mut forwarded = [0u64; 3];
    let mut forward = |core: &mut RateLimiterCore,
                       lane: usize,
                       s: u64,
                       e: u64,
                       now: u64,
                       lose: Option<Lost>,
                       last: &mut [Option<(u64, u64, u64)>; 3]| {
        if let Some(why) = lose {
            core.on_lost(lane, s, why);
            return;
        }
        if let Some((le, ls, lt)) = last[lane]
            && le == e
        {
            assert!(s > ls, "lane {lane}: seq {s} after {ls}");
            if lane == 0 {
                assert!(now - lt >= interval, "rate lane: {now} - {lt} < {interval}");
            }
        }
        if lane == 1 {
            assert_eq!(s % n, 0, "decimated lane forwarded {s}");
        }
        core.on_forwarded(lane, s, now);
        forwarded[lane] += 1;
        last[lane] = Some((e, s, now));
    };
    while let Some(op) = input.u8() {
        let arg = u64::from(input.u8().unwrap_or(0));
        let lose = match op >> 6 {
            0 => Some(Lost::Torn),
            1 => Some(Lost::NoPool),
            2 => Some(Lost::ClaimFailed),
            _ => None,
        };
        if op & 0x7 == 0 {
            now += arg * 1_000_000;
        } else if op & 0x7 == 1 {
            now += arg * 10_000;
        }
        // the agent releases held frames (of the epoch the core knows) before reading more
        for lane in 0..3 {
            if let Some(s) = core.release(lane, now) {
                forward(&mut core, lane, s, epoch, now, lose, &mut last);
            }
        }
        match op & 0x7 {
            0 | 1 => {}
            2 => {
                epoch += 1;
                seq = arg;
            }
            3 => seq = seq.saturating_sub(arg),
            _ => seq = seq.saturating_add(arg),
        }
        for lane in 0..3 {
            let v = core.on_frame(lane, seq, epoch, now);
            if v.action == Action::Forward {
                forward(&mut core, lane, seq, epoch, now, lose, &mut last);
            }
        }
    }
    for (lane, f) in forwarded.iter().enumerate() {
        let c = core.counters(lane);
        assert_eq!(c.forwarded, *f);
        assert!(c.forwarded + c.filtered + c.stale + c.torn + c.no_pool + c.claim_failed <= c.received);
    }
});
