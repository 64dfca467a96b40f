//! `throughput` (64 KiB, 640 KiB, 4 MiB) and `sizes` (1 KiB .. 16 MiB): a flat-out producer
//! process that writes every payload byte and one consumer process that reads every byte,
//! against the same fill + read done on one core with no IPC (the memcpy baseline), measured
//! just before and just after each point (their mean).

use std::time::Duration;

use serde_json::{Value, json};

use super::report::{Figure, Target, conditions, s};
use super::session::{PoolResult, PoolRun};
use super::workload::{Baseline, memcpy_read_baseline};
use super::{Output, Rig, plot};
use crate::cmd::CmdError;
use crate::cmd::produce::stride_for;

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;
/// Ring memory per point is capped at this (the slot count shrinks for large frames).
const RING_BYTES_MAX: usize = 256 * MIB;

/// Slots of the ring for `size`-byte frames: 64, fewer when the ring would pass 256 MiB
/// (strides and the cap are powers of two, so the quotient is one too).
fn nslots_for(size: usize) -> u32 {
    let stride = size.max(64).next_power_of_two();
    u32::try_from((RING_BYTES_MAX / stride).clamp(8, 64)).unwrap_or(64)
}

/// A size as text: `640 KiB`, `4 MiB`.
pub fn size_label(size: usize) -> String {
    if size >= MIB && size.is_multiple_of(MIB) {
        format!("{} MiB", size / MIB)
    } else if size >= KIB && size.is_multiple_of(KIB) {
        format!("{} KiB", size / KIB)
    } else {
        format!("{size} B")
    }
}

/// One point: the baseline, then the two processes.
struct Point {
    size: usize,
    baseline: Baseline,
    run: PoolResult,
}

fn measure(rig: &mut Rig, size: usize, warmup: f64, duration: f64) -> Result<Point, CmdError> {
    let nslots = nslots_for(size);
    let stride = stride_for(size)? as usize;
    // The baseline just before and just after the run, averaged: on a shared machine the
    // memory bandwidth drifts within seconds, and one side alone would carry the drift.
    let baseline = || {
        memcpy_read_baseline(
            size,
            stride,
            nslots as usize,
            Duration::from_secs_f64(warmup),
            Duration::from_secs_f64(duration / 2.0),
        )
    };
    let before = baseline();
    let run = PoolRun {
        size,
        nslots,
        rate: 0.0,
        warmup,
        duration,
        consumers: 1,
        producer_idle: "busy-spin",
        consumer_idle: "busy-spin",
        breakdown: false,
    }
    .run(rig)?;
    let baseline = before.mean(&baseline());
    Ok(Point {
        size,
        baseline,
        run,
    })
}

fn point_conditions(p: &Point) -> Value {
    let stride = p.size.max(64).next_power_of_two();
    conditions(&[
        (
            "processes",
            s(
                "3: media driver, producer (standalone: creates and announces its own files, no SHM driver), consumer; each with its main thread and an Aeron client conductor thread",
            ),
        ),
        (
            "idle",
            s(
                "producer flat out (never idles, never waits for the consumer); consumer busy-spin; media driver Aeron backoff",
            ),
        ),
        (
            "payload",
            s(
                "touched: the producer memcpy's every byte from a private source frame and stamps 24 bytes; the consumer sums every byte as 64-bit words, then recheck()",
            ),
        ),
        ("rate", s("flat out")),
        ("frame_bytes", json!(p.size)),
        (
            "ring",
            s(format!(
                "{} slots, stride {stride} bytes",
                nslots_for(p.size)
            )),
        ),
        ("window_s", json!(p.run.window_s())),
        (
            "baseline",
            s(
                "one thread, no IPC: the same memcpy + stamp + read per frame through a heap ring of the same slot count and stride, measured just before and just after each point (mean of the two)",
            ),
        ),
    ])
}

fn point_figures(bench: &'static str, p: &Point, target: Option<Target>) -> Vec<Figure> {
    let label = size_label(p.size);
    let c = point_conditions(p);
    let fps = p.run.consumer_fps(0);
    let mut delivered = Figure::new(
        bench,
        format!("{label}: frames/s delivered"),
        fps,
        "frames/s",
    )
    .vs(p.baseline.fps, "memcpy + read, 1 core");
    if let Some(t) = target {
        delivered = delivered.target(t);
    }
    let lost = 100.0 * p.run.lost(0) as f64 / (p.run.committed().max(1)) as f64;
    let share = |v: &Value| 100.0 * v["cpu"]["on_cpu_share"].as_f64().unwrap_or(f64::NAN);
    // every descriptor Aeron did not take: back pressure, no subscriber, other refusals
    let unpublished: f64 = [
        "descriptors_back_pressured",
        "descriptors_not_connected",
        "descriptor_failures",
    ]
    .iter()
    .map(|k| p.run.producer[*k].as_f64().unwrap_or(0.0))
    .sum();
    let all = (p.run.producer["committed"]["warmup"]
        .as_f64()
        .unwrap_or(0.0)
        + p.run.committed() as f64)
        .max(1.0);
    let mut figs = vec![
        delivered.with(&c),
        Figure::new(
            bench,
            format!("{label}: GB/s delivered"),
            fps * p.size as f64 / 1e9,
            "GB/s",
        )
        .vs(p.baseline.gbps, "memcpy + read, 1 core")
        .with(&c),
        Figure::new(
            bench,
            format!("{label}: committed frames the consumer did not accept"),
            lost,
            "%",
        )
        .with(&c),
        Figure::new(
            bench,
            format!("{label}: descriptors not published (back pressure, no subscriber), whole run"),
            100.0 * unpublished / all,
            "% of commits",
        )
        .with(&c),
    ];
    if bench == "throughput" {
        figs.extend([
            Figure::new(
                bench,
                format!("{label}: frames/s committed by the producer"),
                p.run.producer_fps(),
                "frames/s",
            )
            .vs(p.baseline.fps, "memcpy + read, 1 core")
            .with(&c),
            Figure::new(
                bench,
                format!("{label}: producer thread on a CPU"),
                share(&p.run.producer),
                "% of the window",
            )
            .with(&c),
            Figure::new(
                bench,
                format!("{label}: consumer thread on a CPU"),
                share(&p.run.consumers[0]),
                "% of the window",
            )
            .with(&c),
        ]);
    }
    figs
}

/// `tp bench throughput`.
pub fn run_throughput(rig: &mut Rig) -> Result<Output, CmdError> {
    let (warmup, duration) = if rig.quick() { (0.1, 0.4) } else { (0.5, 3.0) };
    let mut out = Output::default();
    for size in [64 * KIB, 640 * KIB, 4 * MIB] {
        let p = measure(rig, size, warmup, duration)?;
        let target = (size == 640 * KIB).then_some(Target::RatioAtLeast(0.85));
        out.figures.extend(point_figures("throughput", &p, target));
    }
    Ok(out)
}

/// `tp bench sizes`.
pub fn run_sizes(rig: &mut Rig) -> Result<Output, CmdError> {
    let (warmup, duration) = if rig.quick() { (0.05, 0.2) } else { (0.2, 1.0) };
    let sizes: Vec<usize> = if rig.quick() {
        vec![KIB, 64 * KIB, MIB, 16 * MIB]
    } else {
        (0..=14).map(|k| KIB << k).collect()
    };
    let mut out = Output::default();
    let mut points = Vec::new();
    for size in sizes {
        let p = measure(rig, size, warmup, duration)?;
        out.figures
            .extend(point_figures("sizes", &p, None).into_iter().take(4));
        points.push(p);
    }
    let gbps = |f: &dyn Fn(&Point) -> f64| -> Vec<(f64, f64)> {
        points
            .iter()
            .map(|p| (p.size as f64, f(p) * p.size as f64 / 1e9))
            .collect()
    };
    let delivered = gbps(&|p| p.run.consumer_fps(0));
    let committed = gbps(&|p| p.run.producer_fps());
    let base = gbps(&|p| p.baseline.fps);
    let name = "sizes.svg";
    plot::sizes(
        &rig.out().join(name),
        &[
            (
                "tensorpool: delivered (accepted by the consumer process)",
                delivered,
            ),
            ("tensorpool: committed by the producer process", committed),
            ("baseline: memcpy + read on one core", base),
        ],
    )?;
    out.plots.push(name.into());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_slots_shrink_for_large_frames() {
        assert_eq!(nslots_for(KIB), 64);
        assert_eq!(nslots_for(640 * KIB), 64);
        assert_eq!(nslots_for(4 * MIB), 64);
        assert_eq!(nslots_for(8 * MIB), 32);
        assert_eq!(nslots_for(16 * MIB), 16);
    }

    #[test]
    fn labels() {
        assert_eq!(size_label(640 * KIB), "640 KiB");
        assert_eq!(size_label(4 * MIB), "4 MiB");
        assert_eq!(size_label(100), "100 B");
    }
}
