//! `ratelimit`: what `tp ratelimit` costs per forwarded 640 KiB frame. A driver-attached
//! producer writes a source stream at a fixed rate; the rate limiter forwards every frame
//! (an unlimited mapping: the copy path of every policy) into a destination stream; one
//! consumer reads the source, another the destination, both reading every byte.
//!
//! - CPU: the rate limiter process's CPU time over the window (every thread, from
//!   `/proc/<pid>/task/*/schedstat`) divided by the frames it forwarded in it, against one
//!   `memcpy` of the same frame into a ring of the destination's geometry, measured on one
//!   thread just before and just after (their mean).
//! - Latency: source commit -> destination consumer accept, against source commit -> source
//!   consumer accept in the same run (the same frames: the rate limiter keeps the source's
//!   seq and the stamp is in the payload it copies).

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::procs::{Proc, STARTUP, args, process_cpu_ns};
use super::report::{Figure, conditions, s};
use super::workload::{fill, source_frame};
use super::{Output, Rig};
use crate::cmd::CmdError;

const SIZE: usize = 640 * 1024;
const STRIDE: usize = 1024 * 1024;
const NSLOTS: usize = 32;
const RATE: f64 = 500.0;
/// Every process of the measurement (producer, rate limiter, both consumers).
const IDLE: &str = "backoff:10,5,1us,100us";

/// Nanoseconds per `memcpy` of `len` bytes into a ring of `nslots` x `stride` (one thread).
fn memcpy_ns(len: usize, stride: usize, nslots: usize, warmup: Duration, window: Duration) -> f64 {
    let src = source_frame(len);
    let mut ring = vec![1u8; stride * nslots];
    let mut i = 0usize;
    let mut run = |until: Instant| {
        let mut n = 0u64;
        loop {
            for _ in 0..8 {
                let slot = i % nslots;
                fill(
                    &mut ring[slot * stride..slot * stride + len],
                    black_box(&src),
                );
                black_box(&ring[slot * stride]);
                i += 1;
                n += 1;
            }
            if Instant::now() >= until {
                return n;
            }
        }
    };
    run(Instant::now() + warmup);
    let t0 = Instant::now();
    let n = run(t0 + window);
    t0.elapsed().as_nanos() as f64 / n.max(1) as f64
}

fn deployment_toml(aeron: &str, shm: &str, src: u32, dst: u32) -> String {
    let ch = tensorpool::streams::DEFAULT_CHANNEL;
    format!(
        r#"[driver]
instance_id = "bench-ratelimit"
aeron_dir = "{aeron}"
[shm]
base_dir = "{shm}"
[policies]
epoch_gc_min_age_ns = 0
[profiles.big]
header_nslots = {NSLOTS}
payload_pools = [{{ pool_id = 1, stride_bytes = {STRIDE} }}]
[streams.src]
stream_id = {src}
profile = "big"
[streams.dst]
stream_id = {dst}
profile = "big"

[rate_limiter]
instance_id = "bench-ratelimit"
aeron_dir = "{aeron}"
descriptor_channel = "{ch}"
descriptor_stream_id = 1100
shm_base_dir = "{shm}"

[[mappings]]
source_stream_id = {src}
dest_stream_id = {dst}
"#
    )
}

fn us(v: &Value, q: &str) -> f64 {
    v["latency_ns"][q].as_f64().unwrap_or(f64::NAN) / 1000.0
}

/// `tp bench ratelimit`.
pub fn run(rig: &mut Rig) -> Result<Output, CmdError> {
    let (warmup, duration) = if rig.quick() { (0.2, 0.5) } else { (1.0, 5.0) };
    let (src, dst) = (rig.stream_id(), rig.stream_id());
    let dir = rig.scratch("ratelimit");
    let shm_dir = dir.join("shm");
    std::fs::create_dir_all(&shm_dir)?;
    let cfg = dir.join("deployment.toml");
    let (aeron, shm) = (rig.aeron_dir(), shm_dir.to_string_lossy().into_owned());
    std::fs::write(&cfg, deployment_toml(&aeron, &shm, src, dst))?;
    let cfg = cfg.to_string_lossy().into_owned();
    let result = measure(rig, &cfg, (&aeron, &shm), (src, dst), (warmup, duration));
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn measure(
    rig: &mut Rig,
    cfg: &str,
    (aeron, shm): (&str, &str),
    (src, dst): (u32, u32),
    (warmup, duration): (f64, f64),
) -> Result<Output, CmdError> {
    let mut driver = rig.spawn(
        "rl-driver",
        &args(&["driver", "--config", cfg, "--aeron-dir", aeron]),
    )?;
    driver.expect_line(STARTUP, |l| l.contains("ready"))?;
    let mut limiter = rig.spawn(
        "ratelimit",
        &args(&[
            "ratelimit",
            "--config",
            cfg,
            "--driver-config",
            cfg,
            "--aeron-dir",
            aeron,
            "--idle",
            IDLE,
        ]),
    )?;
    limiter.expect_line(STARTUP, |l| l.contains("tp ratelimit: ready"))?;
    let consumer = |rig: &mut Rig, name: &str, stream: u32| -> Result<Proc, CmdError> {
        let mut c = rig.spawn(
            name,
            &args(&[
                "bench-role",
                "consumer",
                "--aeron-dir",
                aeron,
                "--stream-id",
                &stream.to_string(),
                "--driver-config",
                cfg,
                "--allowed-base-dir",
                shm,
                "--idle",
                IDLE,
            ]),
        )?;
        c.expect_event("ready", STARTUP)?;
        Ok(c)
    };
    let mut source = consumer(rig, "source-consumer", src)?;
    let mut derived = consumer(rig, "derived-consumer", dst)?;
    let mut producer = rig.spawn(
        "producer",
        &args(&[
            "bench-role",
            "producer",
            "--aeron-dir",
            aeron,
            "--stream-id",
            &src.to_string(),
            "--driver-config",
            cfg,
            "--driver-base-dir",
            shm,
            "--size",
            &SIZE.to_string(),
            "--rate",
            &RATE.to_string(),
            "--warmup",
            &warmup.to_string(),
            "--duration",
            &duration.to_string(),
            "--idle",
            IDLE,
        ]),
    )?;
    producer.expect_event("ready", STARTUP)?;
    source.expect_event("mapped", STARTUP)?;
    derived.expect_event("mapped", STARTUP)?;
    let base = || {
        memcpy_ns(
            SIZE,
            STRIDE,
            NSLOTS,
            Duration::from_millis(100),
            Duration::from_secs_f64(duration / 4.0),
        )
    };
    let before = base();
    producer.say("go")?;
    let pid = limiter.pid().ok_or("rate limiter not running")?;
    std::thread::sleep(Duration::from_secs_f64(warmup));
    let (t0, c0) = (Instant::now(), process_cpu_ns(pid)?);
    std::thread::sleep(Duration::from_secs_f64(duration));
    let (wall, c1) = (t0.elapsed().as_secs_f64(), process_cpu_ns(pid)?);
    let made = producer.expect_event("result", STARTUP)?;
    std::thread::sleep(Duration::from_millis(300));
    source.close_stdin();
    derived.close_stdin();
    let src_r = source.expect_event("result", STARTUP)?;
    let dst_r = derived.expect_event("result", STARTUP)?;
    producer.close_stdin();
    producer.wait(STARTUP)?;
    source.wait(STARTUP)?;
    derived.wait(STARTUP)?;
    drop(limiter);
    drop(driver);
    let after = base();
    let memcpy = (before + after) / 2.0;
    rig.record(json!({"measurement": "ratelimit", "frame_bytes": SIZE, "rate": RATE, "producer_report": made, "source_consumer_report": src_r, "derived_consumer_report": dst_r, "ratelimit_cpu_ns": c1.saturating_sub(c0), "cpu_window_s": wall, "memcpy_ns": [before, after]}));

    // frames forwarded in the CPU window: the producer's rate over it (every frame is
    // forwarded; the derived consumer's count of the measured window says how many arrived)
    let window_s = made["window_ns"].as_f64().unwrap_or(0.0) / 1e9;
    let committed = made["committed"]["measure"].as_f64().unwrap_or(0.0);
    let forwarded = dst_r["accepted"]["measure"].as_f64().unwrap_or(0.0);
    let per_s = forwarded / window_s.max(1e-9);
    let cpu_per_frame = c1.saturating_sub(c0) as f64 / (per_s * wall).max(1.0);
    let c = conditions(&[
        (
            "processes",
            s(
                "media driver (shared), tp driver, producer (driver-attached), tp ratelimit (one unlimited mapping: every frame forwarded by the copy path), source consumer and derived consumer (driver-attached); each with its main thread and an Aeron client conductor thread",
            ),
        ),
        (
            "idle",
            s(format!("every process above but the drivers: {IDLE}")),
        ),
        (
            "payload",
            s(
                "touched: the producer memcpy's every byte and stamps 24 bytes; the rate limiter copies the frame into the destination claim (Frame::copy_to, recheck); each consumer sums every byte after recheck()",
            ),
        ),
        ("frame_bytes", json!(SIZE)),
        ("rate", s(format!("{RATE} frames/s, fixed"))),
        ("window_s", json!(window_s)),
        (
            "cpu",
            s(
                "utime + stime of every thread of the tp ratelimit process (/proc/<pid>/task/*/schedstat, ns) over the measured window, divided by the frames forwarded in it (derived consumer's accepted frames per second x window)",
            ),
        ),
        (
            "baseline",
            s(format!(
                "one memcpy of {SIZE} bytes into a heap ring of {NSLOTS} x {STRIDE} bytes (the destination pool's geometry), one thread, measured just before and just after the run (mean): {before:.0} ns and {after:.0} ns"
            )),
        ),
    ]);
    let mut figs = vec![
        Figure::new(
            "ratelimit",
            "640 KiB: rate limiter CPU per forwarded frame",
            cpu_per_frame / 1000.0,
            "us",
        )
        .vs(memcpy / 1000.0, "one memcpy of the frame, 1 core")
        .with(&c),
        Figure::new(
            "ratelimit",
            "640 KiB: rate limiter CPU",
            100.0 * c1.saturating_sub(c0) as f64 / (wall * 1e9),
            "% of a core",
        )
        .with(&c),
    ];
    for q in ["p50", "p99"] {
        figs.push(
            Figure::new(
                "ratelimit",
                format!("640 KiB: {q} source commit -> derived-stream consumer accept"),
                us(&dst_r, q),
                "us",
            )
            .vs(us(&src_r, q), "source commit -> source consumer accept")
            .with(&c),
        );
        figs.push(
            Figure::new(
                "ratelimit",
                format!("640 KiB: {q} latency added by the rate limiter"),
                us(&dst_r, q) - us(&src_r, q),
                "us",
            )
            .vs(memcpy / 1000.0, "one memcpy of the frame, 1 core")
            .with(&c),
        );
    }
    figs.push(
        Figure::new(
            "ratelimit",
            "640 KiB: committed frames the derived consumer did not accept",
            (committed - forwarded).max(0.0),
            "frames",
        )
        .with(&c),
    );
    Ok(Output {
        figures: figs,
        plots: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memcpy_baseline_runs() {
        let ns = memcpy_ns(
            4096,
            4096,
            4,
            Duration::from_millis(1),
            Duration::from_millis(5),
        );
        assert!(ns > 0.0);
    }
}
