//! TraceLink §6.3, §8.1 through the rate limiter (a 1→1 stage): a traced source (every frame
//! minted a trace id by a `TraceIdGenerator`) forwarded every 10th and at 200 Hz (held then
//! released); every destination frame carries the id of the source frame it copies.

mod common;
mod rl_rig;

use std::time::{Duration, Instant};

use common::*;
use std::collections::HashMap;
use tensorpool::prelude::*;
use tensorpool::tracelink::TraceIdGenerator;
use tensorpool_agent::Agent;

#[test]
fn tl_8_1_the_rate_limiter_keeps_the_upstream_trace_id() {
    let rl_rig::Rig {
        world: _world,
        driver: _driver,
        mut producer,
        mut rl,
        mut dests,
    } = rl_rig::rig("tl");
    let mut ids = TraceIdGenerator::new(7).unwrap();
    let mut minted: HashMap<u64, u64> = HashMap::new();
    let spec = TensorSpec::new(Dtype::Uint8, &[256]).unwrap();
    // (seq, trace id) seen on each destination
    let mut seen: [Vec<(u64, Option<u64>)>; 2] = [Vec::new(), Vec::new()];
    let deadline = Instant::now() + DEADLINE;
    while seen[0].len() < 10 || seen[1].len() < 10 || rl.core().counters(1).held == 0 {
        assert!(
            Instant::now() < deadline,
            "seen {} / {}, {:?} {:?}",
            seen[0].len(),
            seen[1].len(),
            rl.core().counters(0),
            rl.core().counters(1)
        );
        if let Ok(mut claim) = producer.claim(&spec) {
            let id = ids.next_id();
            claim.set_trace_id(Some(id));
            claim.payload_mut().fill(1);
            minted.insert(claim.commit(), id);
        }
        producer.do_work(tensorpool::monotonic_ns());
        rl.do_work(tensorpool::monotonic_ns()).unwrap();
        for (d, s) in dests.iter_mut().zip(seen.iter_mut()) {
            d.poll(|f| s.push((f.seq(), f.trace_id())), 64).unwrap();
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    // a held frame released later: two frames at once (the second is held: the slot of
    // the first is closed), then no more source frames until the rate lane delivers it
    let mut last = 0;
    for _ in 0..2 {
        let mut claim = producer.claim(&spec).unwrap();
        let id = ids.next_id();
        claim.set_trace_id(Some(id));
        last = claim.commit();
        minted.insert(last, id);
    }
    let deadline = Instant::now() + DEADLINE;
    while !seen[1].iter().any(|&(seq, _)| seq == last) {
        assert!(
            Instant::now() < deadline,
            "the held frame {last} was released"
        );
        producer.do_work(tensorpool::monotonic_ns());
        rl.do_work(tensorpool::monotonic_ns()).unwrap();
        dests[1]
            .poll(|f| seen[1].push((f.seq(), f.trace_id())), 64)
            .unwrap();
        std::thread::sleep(Duration::from_micros(500));
    }
    for (lane, s) in seen.iter().enumerate() {
        for &(seq, trace) in s {
            assert_eq!(
                trace,
                minted.get(&seq).copied(),
                "lane {lane}: destination seq {seq} carries the source frame's trace id"
            );
            assert!(trace.is_some_and(|t| t != 0));
        }
    }
}
