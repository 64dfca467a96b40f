//! `fanout`: 1, 2, 4, 8, 16 and 64 consumer processes on one stream. The producer is offered
//! a fixed rate (1 000 frames/s of 64 KiB) and sleeps 50 µs at a time while no frame is due
//! (like a producer blocked on its camera); **producer rate** means the frames it committed
//! per second of the measured window at that offered rate (a frame more than a period late
//! is skipped, never caught up). The baseline is the same run with one consumer. Consumers
//! back off when idle (2 cores for up to 66 processes). Also reported: frames of the window
//! each consumer did not accept, and how late the producer's commits were against its
//! schedule (CPU contention shows there first).

use serde_json::{Value, json};

use super::report::{Figure, Target, conditions, s};
use super::session::{PoolResult, PoolRun};
use super::{Output, Rig, plot};
use crate::cmd::CmdError;

const SIZE: usize = 64 * 1024;
const RATE: f64 = 1000.0;
const PRODUCER_IDLE: &str = "sleep:50us";
const CONSUMER_IDLE: &str = "backoff";

fn fanout_conditions(duration: f64) -> Value {
    conditions(&[
        (
            "processes",
            s(
                "media driver, producer (standalone), N consumers: N + 2 processes, each with its main thread and an Aeron client conductor thread",
            ),
        ),
        (
            "idle",
            s(
                "producer sleeps 50 us at a time until the next frame is due; consumers backoff (10 spins, 5 yields, park 1 us..1 ms); media driver Aeron backoff",
            ),
        ),
        (
            "payload",
            s(
                "touched: the producer memcpy's every byte; every consumer sums every byte of every frame it accepts, then recheck()",
            ),
        ),
        ("frame_bytes", json!(SIZE)),
        ("rate", s(format!("{RATE} frames/s offered"))),
        (
            "producer_rate",
            s(
                "frames committed per second of the measured window at the offered rate; a frame more than one period late is skipped, not caught up",
            ),
        ),
        ("window_s", json!(duration)),
        ("baseline", s("the same run with 1 consumer")),
    ])
}

fn lost_stats(r: &PoolResult) -> (f64, f64) {
    let n = r.consumers.len().max(1);
    let lost: Vec<u64> = (0..r.consumers.len()).map(|i| r.lost(i)).collect();
    let mean = lost.iter().sum::<u64>() as f64 / n as f64;
    let max = lost.iter().copied().max().unwrap_or(0) as f64;
    (mean, max)
}

fn lateness_p99_us(r: &PoolResult) -> f64 {
    r.producer["lateness_ns"]["p99"].as_f64().unwrap_or(0.0) / 1000.0
}

/// `tp bench fanout`.
pub fn run(rig: &mut Rig) -> Result<Output, CmdError> {
    let (warmup, duration) = if rig.quick() { (0.2, 0.5) } else { (0.5, 3.0) };
    let counts: &[usize] = if rig.quick() {
        &[1, 4, 64]
    } else {
        &[1, 2, 4, 8, 16, 64]
    };
    let c = fanout_conditions(duration);
    let mut out = Output::default();
    let mut rows: Vec<(usize, f64, f64, f64, f64)> = Vec::new();
    let mut base: Option<(f64, f64)> = None;
    for &n in counts {
        let r = PoolRun {
            size: SIZE,
            nslots: 64,
            rate: RATE,
            warmup,
            duration,
            consumers: n,
            producer_idle: PRODUCER_IDLE,
            consumer_idle: CONSUMER_IDLE,
            breakdown: false,
        }
        .run(rig)?;
        let fps = r.producer_fps();
        let late = lateness_p99_us(&r);
        let (base_fps, base_late) = *base.get_or_insert((fps, late));
        let (mean, max) = lost_stats(&r);
        let who = if n == 1 {
            "1 consumer".to_owned()
        } else {
            format!("{n} consumers")
        };
        let mut rate = Figure::new(
            "fanout",
            format!("{who}: producer frames/s"),
            fps,
            "frames/s",
        )
        .vs(base_fps, "1 consumer");
        if n == 64 {
            rate = rate.target(Target::RatioAtLeast(0.95));
        }
        out.figures.push(rate.with(&c));
        out.figures.push(
            Figure::new(
                "fanout",
                format!("{who}: producer commit lateness p99"),
                late,
                "us",
            )
            .vs(base_late, "1 consumer")
            .with(&c),
        );
        out.figures.push(
            Figure::new(
                "fanout",
                format!("{who}: frames not accepted per consumer, mean"),
                mean,
                "frames",
            )
            .with(&c),
        );
        out.figures.push(
            Figure::new(
                "fanout",
                format!("{who}: frames not accepted per consumer, max"),
                max,
                "frames",
            )
            .with(&c),
        );
        rows.push((n, fps, late, mean, max));
    }
    let name = "fanout.svg";
    plot::fanout(&rig.out().join(name), &rows)?;
    out.plots.push(name.into());
    Ok(out)
}
