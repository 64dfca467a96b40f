//! A slow consumer never slows the producer (Wire Spec §1, §2, §15.4). Counts and events,
//! never times or rates: a consumer is held inside its handler (it never returns until
//! released) while the producer commits many ring-laps of frames that a fast consumer
//! receives every one of; released, the slow consumer counts the frames it lost as drops.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use tensorpool::prelude::*;

/// Frames committed while the slow consumer is held: many laps of the 16-slot ring.
const FRAMES: u64 = 2_000;
/// Frames committed between two waits for the fast consumer: under one ring lap, so the fast
/// consumer never loses one to an overwrite.
const BATCH: u64 = 8;

/// Waits (bounded) until `cond` holds; the deadline is a failure.
fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    let mut round = 0;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        idle(&mut round);
    }
}

#[test]
fn w_2_slow_consumer_never_slows_the_producer() {
    let world = World::new();
    let mut producer = world.producer().build().unwrap();
    let mut fast = world.consumer().build().unwrap();
    connect(&mut producer, &mut fast);
    let mut slow = world.consumer().build().unwrap();
    connect(&mut producer, &mut slow);

    let stop = Arc::new(AtomicBool::new(false));
    let fast_frames = Arc::new(AtomicU64::new(0));
    let (held, release) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let slow_frames = Arc::new(AtomicU64::new(0));
    let fast_thread = {
        let (stop, frames) = (stop.clone(), fast_frames.clone());
        thread::spawn(move || {
            let mut round = 0;
            while !stop.load(Ordering::Acquire) {
                let w = fast
                    .poll(
                        |_f: &Frame<'_>| {
                            frames.fetch_add(1, Ordering::AcqRel);
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
            fast
        })
    };
    let slow_thread = {
        let (stop, held, release, frames) = (
            stop.clone(),
            held.clone(),
            release.clone(),
            slow_frames.clone(),
        );
        thread::spawn(move || {
            let mut round = 0;
            while !stop.load(Ordering::Acquire) {
                let w = slow
                    .poll(
                        |_f: &Frame<'_>| {
                            frames.fetch_add(1, Ordering::AcqRel);
                            // the first frame's handler does not return until released
                            if !held.swap(true, Ordering::AcqRel) {
                                while !release.load(Ordering::Acquire) {
                                    thread::sleep(Duration::from_millis(1));
                                }
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
            slow
        })
    };

    let spec = TensorSpec::new(Dtype::Uint8, &[4096]).unwrap();
    let commit = |producer: &mut Producer| {
        let mut claim = producer.claim(&spec).unwrap();
        claim.payload_mut().fill(1);
        claim.commit();
        producer.do_work(tensorpool::monotonic_ns());
    };
    // one frame: the slow consumer's handler takes it and holds on
    commit(&mut producer);
    wait_for("the slow consumer held in its handler", || {
        held.load(Ordering::Acquire)
    });
    wait_for("the fast consumer's first frame", || {
        fast_frames.load(Ordering::Acquire) == 1
    });
    // The producer goes on while the slow consumer is held: were it to wait for that
    // consumer in any way, the fast consumer would stop receiving and a wait below fails at
    // its deadline.
    let mut committed = 1;
    while committed < 1 + FRAMES {
        for _ in 0..BATCH {
            commit(&mut producer);
            committed += 1;
        }
        wait_for("the fast consumer to receive every frame", || {
            fast_frames.load(Ordering::Acquire) == committed
        });
    }
    assert!(held.load(Ordering::Acquire) && !release.load(Ordering::Acquire));
    assert_eq!(
        slow_frames.load(Ordering::Acquire),
        1,
        "the slow consumer is still in its first handler"
    );
    assert_eq!(producer.counters().committed, 1 + FRAMES);

    // Released, the slow consumer finds its frame overwritten and most of the rest gone.
    release.store(true, Ordering::Release);
    stop.store(true, Ordering::Release);
    let fast = fast_thread.join().unwrap();
    let slow = slow_thread.join().unwrap();
    assert_eq!(fast.counters().accepted, 1 + FRAMES);
    assert_eq!(
        fast.drops().total() + fast.drops().gap,
        0,
        "{:?}",
        fast.drops()
    );
    assert!(
        slow.drops().late() >= 1,
        "the held frame was overwritten under the handler: {:?}",
        slow.drops()
    );
    assert!(
        slow.counters().accepted < 1 + FRAMES,
        "slow accepted {}",
        slow.counters().accepted
    );
    drop((fast, slow, producer));
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

/// A frame kept past its handler (the bridge sender's pending frame, `Consumer::reread`):
/// read again from its slot under the seqlock it is the same committed bytes while the slot
/// holds it, and nothing at all once the producer has overwritten the slot (a ring lap
/// later): never another frame's bytes under its key.
#[test]
fn a_frame_key_rereads_its_slot_until_the_producer_overwrites_it() {
    let world = World::new();
    let mut producer = world.producer().build().unwrap();
    let mut consumer = world.consumer().build().unwrap();
    connect(&mut producer, &mut consumer);
    let spec = TensorSpec::new(Dtype::Uint8, &[256]).unwrap();
    let mut first = [0u8; 256];
    fill(&mut first, 1);
    producer.offer(&spec, &first).unwrap();
    let mut key = None;
    let deadline = Instant::now() + DEADLINE;
    let mut round = 0;
    while key.is_none() {
        assert!(Instant::now() < deadline, "timed out waiting for the frame");
        let w = consumer
            .poll(|f: &Frame<'_>| key = Some(f.key()), 16)
            .unwrap();
        if w == 0 {
            idle(&mut round);
        }
    }
    let key = key.unwrap();
    let again = consumer
        .reread(&key, |f| {
            let bytes = f.bytes().to_vec();
            f.recheck().map(|()| (f.seq(), bytes))
        })
        .expect("the slot still holds the frame")
        .expect("recheck");
    assert_eq!(again, (key.seq(), first.to_vec()));
    // one lap of the 16-slot ring: the frame's slot now holds a newer frame
    let mut buf = [0u8; 256];
    for s in 0..16 {
        fill(&mut buf, s + 2);
        producer.offer(&spec, &buf).unwrap();
    }
    assert!(consumer.reread(&key, |_| ()).is_none());
    drop(consumer);
    drop(producer);
    world.finish();
}
