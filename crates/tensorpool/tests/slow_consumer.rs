//! A slow consumer never slows the producer (Wire Spec §1, §2, §15.4): a paced producer
//! commits about the same number of frames in a fixed period with or without a consumer that
//! sleeps in its handler, and the slow consumer counts drops. Counts are compared, not times.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use tensorpool::consumer::Consumer;
use tensorpool::prelude::*;

const RATE_HZ: u64 = 1000;
const PERIOD: Duration = Duration::from_millis(1500);

fn run_consumer(mut c: Consumer, stop: Arc<AtomicBool>, sleep: Option<Duration>) -> Consumer {
    let mut round = 0;
    while !stop.load(Ordering::Acquire) {
        let w = c
            .poll(
                |_f: &Frame<'_>| {
                    if let Some(d) = sleep {
                        thread::sleep(d);
                    }
                },
                16,
            )
            .unwrap();
        if w == 0 {
            idle(&mut round);
        } else {
            round = 0;
        }
    }
    c
}

/// Runs a paced producer for `PERIOD` with the given consumers; returns frames committed and
/// the consumers.
fn scenario(world: &World, slow: bool) -> (u64, Vec<Consumer>) {
    let mut producer = world.producer().build().unwrap();
    let mut fast = world.consumer().build().unwrap();
    connect(&mut producer, &mut fast);
    let mut consumers = vec![(fast, None)];
    if slow {
        let mut s = world.consumer().build().unwrap();
        connect(&mut producer, &mut s);
        consumers.push((s, Some(Duration::from_millis(5))));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = consumers
        .into_iter()
        .map(|(c, sleep)| {
            let stop = stop.clone();
            thread::spawn(move || run_consumer(c, stop, sleep))
        })
        .collect();
    let spec = TensorSpec::new(Dtype::Uint8, &[4096]).unwrap();
    let period_ns = 1_000_000_000 / RATE_HZ;
    let start = Instant::now();
    let mut next_due = tensorpool::monotonic_ns();
    while start.elapsed() < PERIOD {
        let now = tensorpool::monotonic_ns();
        while now >= next_due {
            let mut claim = producer.claim(&spec).unwrap();
            claim.payload_mut().fill(1);
            claim.commit();
            next_due += period_ns;
        }
        producer.do_work(now);
        thread::sleep(Duration::from_micros(200));
    }
    let committed = producer.counters().committed;
    stop.store(true, Ordering::Release);
    let consumers = handles.into_iter().map(|h| h.join().unwrap()).collect();
    drop(producer);
    (committed, consumers)
}

#[test]
fn w_2_slow_consumer_never_slows_the_producer() {
    let world = World::new();
    let (baseline, _) = scenario(&world, false);
    let (with_slow, consumers) = scenario(&world, true);
    let expected = RATE_HZ * PERIOD.as_millis() as u64 / 1000;
    for n in [baseline, with_slow] {
        assert!(
            n * 100 >= expected * 90,
            "producer committed {n}, paced for {expected}"
        );
    }
    let diff = baseline.abs_diff(with_slow);
    assert!(
        diff * 100 <= baseline * 10,
        "baseline {baseline} vs with slow consumer {with_slow}"
    );
    let slow = &consumers[1];
    let drops = slow.drops().total() + slow.drops().gap;
    assert!(
        drops > 0,
        "the slow consumer drops frames: {:?}",
        slow.drops()
    );
    assert!(
        slow.counters().accepted * 2 < with_slow,
        "slow accepted {}",
        slow.counters().accepted
    );
    let fast = &consumers[0];
    assert!(
        fast.counters().accepted * 100 >= with_slow * 90,
        "fast accepted {} of {with_slow}",
        fast.counters().accepted
    );
    drop(consumers);
    world.finish();
}

/// A consumer that stops polling altogether (hung, or killed while its Aeron client still
/// counts as alive) must not starve the others (Wire Spec §1: lossy, no producer back
/// pressure). Its descriptor subscription is untethered and the producer's descriptor
/// publication lets an untethered subscriber that fell a window behind go after 100 ms: the
/// descriptors the producer publishes after that keep reaching the consumer that polls. With
/// a tethered subscription the publication stops at one window (21 845 descriptors) for good.
#[test]
fn w_1_a_consumer_that_stops_polling_does_not_starve_the_others() {
    let world = World::new();
    let mut producer = world.producer().build().unwrap();
    let mut stuck = world.consumer().build().unwrap();
    connect(&mut producer, &mut stuck);
    let mut live = world.consumer().build().unwrap();
    connect(&mut producer, &mut live);
    let stop = Arc::new(AtomicBool::new(false));
    let last_seq = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let handle = {
        let (stop, last_seq) = (stop.clone(), last_seq.clone());
        thread::spawn(move || {
            let mut round = 0;
            while !stop.load(Ordering::Acquire) {
                let w = live
                    .poll(
                        |f: &Frame<'_>| {
                            last_seq.fetch_max(f.seq(), Ordering::AcqRel);
                        },
                        64,
                    )
                    .unwrap();
                if w == 0 {
                    idle(&mut round);
                } else {
                    round = 0;
                }
            }
            live
        })
    };
    // Well past one window of descriptors, for long enough that the stuck subscriber is let go.
    let spec = TensorSpec::new(Dtype::Uint8, &[64]).unwrap();
    let start = Instant::now();
    let mut committed = 0u64;
    while start.elapsed() < Duration::from_millis(2000) || committed < 100_000 {
        for _ in 0..256 {
            let mut claim = producer.claim(&spec).unwrap();
            claim.payload_mut().fill(3);
            claim.commit();
            committed += 1;
        }
        producer.do_work(tensorpool::monotonic_ns());
        thread::sleep(Duration::from_micros(100));
    }
    let last_committed = committed - 1;
    // what is in flight arrives
    let deadline = Instant::now() + Duration::from_secs(5);
    while last_seq.load(Ordering::Acquire) < last_committed && Instant::now() < deadline {
        producer.do_work(tensorpool::monotonic_ns());
        thread::sleep(Duration::from_millis(1));
    }
    stop.store(true, Ordering::Release);
    let live = handle.join().unwrap();
    let seen = last_seq.load(Ordering::Acquire);
    let c = producer.counters();
    assert!(
        seen == last_committed,
        "the polling consumer's last frame is {seen} of {last_committed} committed \
         (descriptors refused by back pressure: {})",
        c.descriptors_back_pressured
    );
    // more descriptors than one window holds reached it (frames it was too slow for are
    // dropped as overwritten: lossy, as designed)
    assert!(
        live.counters().descriptors > 22_000,
        "{:?}",
        live.counters()
    );
    drop((stuck, live, producer));
    world.finish();
}
