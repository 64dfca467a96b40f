//! Throughput benchmark, Rust side: the twin of `examples/cpp/bench_throughput.cpp` with the
//! same conditions, on the Rust API directly (no C ABI). Two processes:
//!
//! ```sh
//! bench_throughput producer AERON_DIR SHM_DIR SECONDS   # embedded media driver, flat out
//! bench_throughput consumer AERON_DIR SHM_DIR SECONDS   # prints accepted frames/s
//! ```
//!
//! Frames: 640 KiB (81920 x u64); the producer writes every word (seq ^ index), the consumer
//! sums every byte ([`byte_sum`], the same loop as the C++ side's), checks word 0, then
//! rechecks. Both idle with backoff:10,10,1us,200us.
//! `bench_throughput inproc SHM_DIR WORDS CYCLES` runs claim, write, commit, do_work and poll
//! (read, recheck) on one thread and prints ns/cycle: the per-frame cost of the API itself.

use std::time::{Duration, Instant};

use tensorpool::prelude::*;
use tensorpool_aeron::MediaDriverConfig;
use tensorpool_agent::{BackoffIdleStrategy, IdleStrategy};

type Res = Result<(), Box<dyn std::error::Error>>;

/// The slot as u64 words, as the C++ side sees it (slots are 64-byte aligned, lengths a
/// multiple of 8): the same loops in both languages.
fn words(bytes: &[u8]) -> &[u64] {
    // SAFETY: every bit pattern is a valid u64; `align_to` only yields aligned words.
    let (head, words, _) = unsafe { bytes.align_to::<u64>() };
    assert!(head.is_empty(), "payload slots are 8-byte aligned");
    words
}

/// The consumer's work on a frame: every byte, widened and summed; the C++ twin's `byte_sum`
/// is the same loop (a u32 accumulator, vectorized by rustc, clang and GCC alike for the
/// default x86-64 target; never inlined on either side). 640 KiB frames: 255 x 655360 fits.
#[inline(never)]
fn byte_sum(bytes: &[u8]) -> u64 {
    u64::from(
        bytes
            .iter()
            .fold(0u32, |a, &b| a.wrapping_add(u32::from(b))),
    )
}

fn words_mut(bytes: &mut [u8]) -> &mut [u64] {
    // SAFETY: as in `words`.
    let (head, words, _) = unsafe { bytes.align_to_mut::<u64>() };
    assert!(head.is_empty(), "payload slots are 8-byte aligned");
    words
}

fn idle() -> BackoffIdleStrategy {
    BackoffIdleStrategy::new(10, 10, Duration::from_micros(1), Duration::from_micros(200))
}

/// Header ring slots: TP_BENCH_NSLOTS, default 64.
fn nslots() -> u32 {
    std::env::var("TP_BENCH_NSLOTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

fn produce(aeron: &str, shm: &str, secs: f64) -> Res {
    let ctx = Context::embedded_with(MediaDriverConfig::default().dir(aeron))?;
    let mut producer = ctx
        .producer(10_000)
        .standalone(shm)
        .header_nslots(nslots())
        .pool(1, 1 << 20)
        .build()?;
    let spec = TensorSpec::new(Dtype::Uint64, &[81_920])?;
    let mut idle = idle();
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let mut frames = 0u64;
    while Instant::now() < end {
        let mut claim = producer.claim(&spec)?;
        let seq = claim.seq();
        for (k, w) in words_mut(claim.payload_mut()).iter_mut().enumerate() {
            *w = seq ^ k as u64;
        }
        claim.commit();
        frames += 1;
        idle.idle_work(producer.do_work(tensorpool::monotonic_ns()) + 1);
    }
    let s = start.elapsed().as_secs_f64();
    println!(
        "rust producer: {frames} frames in {s:.2} s = {:.0} frames/s",
        frames as f64 / s
    );
    Ok(())
}

#[derive(Default)]
struct Tally {
    late: u64,
    bad: u64,
    sum: u64,
}

fn consume(aeron: &str, shm: &str, secs: f64) -> Res {
    let ctx = Context::connect(aeron)?;
    let mut consumer = ctx.consumer(10_000).allowed_base_dir(shm).build()?;
    let mut idle = idle();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !matches!(consumer.state(), ConsumerState::Mapped { .. }) {
        if Instant::now() > deadline {
            return Err("consumer not mapped within 10 s".into());
        }
        if consumer.poll(|_: &Frame<'_>| {}, 16)? == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let mut t = Tally::default();
    let mut handler = |f: &Frame<'_>| {
        let bytes = f.bytes();
        let s = byte_sum(bytes);
        let first_ok = words(bytes).first() == Some(&f.seq());
        if f.recheck().is_err() {
            t.late += 1;
            return;
        }
        t.bad += u64::from(!first_ok);
        t.sum = t.sum.wrapping_add(s);
    };
    let warm = Instant::now() + Duration::from_secs(1);
    while Instant::now() < warm {
        idle.idle_work(consumer.poll(&mut handler, 64)?);
    }
    let (c0, d0) = (consumer.counters(), consumer.drops());
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    while Instant::now() < end {
        idle.idle_work(consumer.poll(&mut handler, 64)?);
    }
    let s = start.elapsed().as_secs_f64();
    let (c, d) = (consumer.counters(), consumer.drops());
    let n = c.accepted - c0.accepted;
    println!(
        "rust consumer: {n} frames in {s:.2} s = {:.0} frames/s ({:.2} GB/s), late {}, drops {}, gaps {}, bad {} (sum {})",
        n as f64 / s,
        n as f64 * 655_360.0 / s / 1e9,
        t.late,
        d.total() - d0.total(),
        d.gap - d0.gap,
        t.bad,
        t.sum % 1000,
    );
    if t.bad > 0 {
        return Err(format!("{} frames with a wrong first word", t.bad).into());
    }
    Ok(())
}

fn inproc(shm: &str, nwords: usize, cycles: u64) -> Res {
    let ctx = Context::embedded()?;
    let mut producer = ctx
        .producer(10_000)
        .standalone(shm)
        .header_nslots(64)
        .pool(1, 1 << 20)
        .build()?;
    let mut consumer = ctx.consumer(10_000).allowed_base_dir(shm).build()?;
    let spec = TensorSpec::new(Dtype::Uint64, &[nwords])?;
    let (mut sum, mut late) = (0u64, 0u64);
    let mut cycle = |producer: &mut tensorpool::producer::Producer,
                     consumer: &mut tensorpool::consumer::Consumer|
     -> Res {
        let mut claim = producer.claim(&spec)?;
        let seq = claim.seq();
        for (k, w) in words_mut(claim.payload_mut()).iter_mut().enumerate() {
            *w = seq ^ k as u64;
        }
        claim.commit();
        producer.do_work(tensorpool::monotonic_ns());
        consumer.poll(
            |f: &Frame<'_>| {
                let s = byte_sum(f.bytes());
                if f.recheck().is_ok() {
                    sum = sum.wrapping_add(s);
                } else {
                    late += 1;
                }
            },
            16,
        )?;
        Ok(())
    };
    let warm = Instant::now() + Duration::from_secs(1);
    while Instant::now() < warm || consumer.counters().accepted < 1000 {
        cycle(&mut producer, &mut consumer)?;
    }
    let a0 = consumer.counters().accepted;
    let start = Instant::now();
    for _ in 0..cycles {
        cycle(&mut producer, &mut consumer)?;
    }
    let ns = start.elapsed().as_nanos() as f64;
    let accepted = consumer.counters().accepted - a0;
    println!(
        "rust inproc: {}-byte frames, {cycles} cycles, {:.0} ns/cycle, accepted {accepted}, late {late} (sum {})",
        nwords * 8,
        ns / cycles as f64,
        sum % 1000
    );
    Ok(())
}

fn main() -> Res {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        return Err("usage: bench_throughput producer|consumer AERON_DIR SHM_DIR SECONDS".into());
    }
    if args[1] == "inproc" {
        return inproc(&args[2], args[3].parse()?, args[4].parse()?);
    }
    let secs: f64 = args[4].parse()?;
    match args[1].as_str() {
        "producer" => produce(&args[2], &args[3], secs),
        _ => consume(&args[2], &args[3], secs),
    }
}
