//! `attach`: the SHM driver as its own process (`tp driver`, backoff idle) on the shared
//! media driver.
//!
//! - **Attach round trip**: an attacher process attaches as CONSUMER and detaches, 1 000
//!   times back to back, then 100 times after 10 ms of quiet each (the driver parked in its
//!   backoff, which parks up to 1 ms); bound: 1 ms at p99. Then the quiet case again against
//!   a driver whose backoff parks at most 100 us (`--idle backoff:10,5,1us,100us`): what a
//!   deployment that wants cold attaches well under 1 ms configures.
//! - **Producer-crash failover**: a producer (driver mode, 1 kHz) and 4 consumers (driver
//!   mode); the producer gets SIGKILL; the time from the kill until every consumer has
//!   mapped the new epoch the driver bumps when the dead lease expires. Bound: lease
//!   (keepalive interval x expiry grace intervals) + 3 announce periods.

use std::path::Path;

use serde_json::{Value, json};

use super::procs::{Proc, STARTUP, args};
use super::report::{Figure, Target, conditions, s};
use super::{Output, Rig};
use crate::cmd::CmdError;

const STREAM: u32 = 30_000;
const ANNOUNCE_MS: u64 = 100;
const KEEPALIVE_MS: u64 = 100;
const GRACE_INTERVALS: u64 = 3;
const CONSUMERS: usize = 4;

fn driver_toml(base: &Path) -> String {
    format!(
        "[driver]\ninstance_id = \"tp-bench\"\n[shm]\nbase_dir = \"{}\"\n\
         [policies]\nannounce_period_ms = {ANNOUNCE_MS}\nlease_keepalive_interval_ms = {KEEPALIVE_MS}\n\
         lease_expiry_grace_intervals = {GRACE_INTERVALS}\nepoch_gc_min_age_ns = 0\n\
         [profiles.bench]\nheader_nslots = 64\npayload_pools = [{{ pool_id = 1, stride_bytes = 65536 }}]\n\
         [streams.bench]\nstream_id = {STREAM}\nprofile = \"bench\"\n",
        base.display()
    )
}

/// The SHM driver process and the paths its clients need.
struct ShmDriver {
    proc: Proc,
    config: String,
    base: String,
}

/// The driver's default idle strategy, and the one with a shorter longest park.
const DRIVER_IDLE: &str = "backoff";
const DRIVER_IDLE_SHORT_PARK: &str = "backoff:10,5,1us,100us";

fn start_driver(rig: &mut Rig, idle: &str) -> Result<ShmDriver, CmdError> {
    let base = rig.scratch("driver-shm");
    let config = rig.scratch("driver.toml");
    std::fs::write(&config, driver_toml(&base))?;
    let config = config.to_string_lossy().into_owned();
    let aeron = rig.aeron_dir();
    let a = args(&[
        "driver",
        "--config",
        &config,
        "--aeron-dir",
        &aeron,
        "--idle",
        idle,
    ]);
    let mut proc = rig.spawn("shm-driver", &a)?;
    proc.expect_line(STARTUP, |l| l.contains("ready"))?;
    Ok(ShmDriver {
        proc,
        config,
        base: base.to_string_lossy().into_owned(),
    })
}

fn attacher(rig: &mut Rig, d: &ShmDriver, count: u32, gap_ms: f64) -> Result<Value, CmdError> {
    let aeron = rig.aeron_dir();
    let a = args(&[
        "bench-role",
        "attacher",
        "--aeron-dir",
        &aeron,
        "--driver-config",
        &d.config,
        "--stream-id",
        &STREAM.to_string(),
        "--count",
        &count.to_string(),
        "--gap-ms",
        &gap_ms.to_string(),
        "--idle",
        "yield",
    ]);
    let mut p = rig.spawn("attacher", &a)?;
    p.expect_event("ready", STARTUP)?;
    p.say("go")?;
    let r = p.expect_event("result", STARTUP * 4)?;
    p.wait(STARTUP)?;
    rig.record(json!({"measurement": "attach", "gap_ms": gap_ms, "attacher_report": r}));
    Ok(r)
}

fn us(v: &Value, key: &str, q: &str) -> f64 {
    v[key][q].as_f64().unwrap_or(f64::NAN) / 1000.0
}

fn attach_figures(
    back_to_back: &Value,
    after_idle: &Value,
    after_idle_short_park: &Value,
) -> Vec<Figure> {
    let c = conditions(&[
        (
            "processes",
            s(
                "media driver, SHM driver (tp driver, backoff idle: 10 spins, 5 yields, park 1 us..1 ms), attacher; each with its main thread and an Aeron client conductor thread",
            ),
        ),
        (
            "idle",
            s(
                "attacher yields while waiting for an answer (a busy-spinning attacher would hold a core the driver needs on a 2-core machine); SHM driver backoff; media driver Aeron backoff",
            ),
        ),
        ("payload", s("none (control plane)")),
        (
            "measured",
            s(
                "ShmAttachRequest sent -> lease granted and validated by the library's DriverClient (consumer role, stream already live); then detach; transport set up once",
            ),
        ),
        (
            "rate",
            s(
                "back to back, or after 10 ms of quiet (driver backoff parking up to 1 ms, or up to 100 us)",
            ),
        ),
    ]);
    let mut figs = Vec::new();
    for (label, v) in [
        ("back to back", back_to_back),
        ("after 10 ms quiet", after_idle),
        (
            "after 10 ms quiet, driver parks <= 100 us",
            after_idle_short_park,
        ),
    ] {
        for q in ["p50", "p99"] {
            let mut f = Figure::new(
                "attach",
                format!("attach round trip {q}, {label}"),
                us(v, "attach_ns", q),
                "us",
            )
            .vs(1000.0, "bound: 1 ms");
            if q == "p99" {
                f = f.target(Target::RatioAtMost(1.0));
            }
            figs.push(f.with(&c));
        }
        figs.push(
            Figure::new(
                "attach",
                format!("detach round trip p99, {label}"),
                us(v, "detach_ns", "p99"),
                "us",
            )
            .with(&c),
        );
        let n = v["attach_ns"]["count"].as_f64().unwrap_or(0.0);
        figs.push(
            Figure::new("attach", format!("attaches timed, {label}"), n, "attaches").with(&c),
        );
    }
    figs
}

/// Waits until consumer `c` reports a mapping of an epoch `>= min`; returns (epoch, t_ns).
fn mapped_at_least(c: &mut Proc, min: u64) -> Result<(u64, u64), CmdError> {
    loop {
        let e = c.expect_event("mapped", STARTUP)?;
        let epoch = e["epoch"].as_u64().unwrap_or(0);
        if epoch >= min {
            return Ok((epoch, e["t_ns"].as_u64().unwrap_or(0)));
        }
    }
}

/// One failover: a fresh producer, its epoch mapped by every consumer, SIGKILL, the time
/// until every consumer mapped a newer epoch (ns).
fn failover_once(rig: &mut Rig, d: &ShmDriver, consumers: &mut [Proc]) -> Result<u64, CmdError> {
    let aeron = rig.aeron_dir();
    let a = args(&[
        "bench-role",
        "producer",
        "--aeron-dir",
        &aeron,
        "--stream-id",
        &STREAM.to_string(),
        "--driver-config",
        &d.config,
        "--driver-base-dir",
        &d.base,
        "--size",
        "65536",
        "--rate",
        "1000",
        "--warmup",
        "0",
        "--duration",
        "0",
        "--idle",
        "backoff",
    ]);
    let mut producer = rig.spawn("producer", &a)?;
    let ready = producer.expect_event("ready", STARTUP)?;
    let epoch = ready["epoch"].as_u64().ok_or("producer without an epoch")?;
    producer.say("go")?;
    for c in consumers.iter_mut() {
        mapped_at_least(c, epoch)?;
    }
    // frames flowing and keepalives steady before the crash
    std::thread::sleep(std::time::Duration::from_millis(300));
    let killed = tensorpool::monotonic_ns();
    producer.kill9();
    let mut last = killed;
    for c in consumers.iter_mut() {
        let (_, t) = mapped_at_least(c, epoch + 1)?;
        last = last.max(t);
    }
    Ok(last - killed)
}

fn failover(rig: &mut Rig, d: &ShmDriver, reps: usize) -> Result<Vec<u64>, CmdError> {
    let aeron = rig.aeron_dir();
    let mut consumers = Vec::with_capacity(CONSUMERS);
    for i in 0..CONSUMERS {
        let a = args(&[
            "bench-role",
            "consumer",
            "--aeron-dir",
            &aeron,
            "--stream-id",
            &STREAM.to_string(),
            "--driver-config",
            &d.config,
            "--allowed-base-dir",
            &d.base,
            "--idle",
            "backoff",
        ]);
        consumers.push(rig.spawn(&format!("failover-consumer{i}"), &a)?);
    }
    for c in &mut consumers {
        c.expect_event("ready", STARTUP)?;
    }
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        times.push(failover_once(rig, d, &mut consumers)?);
    }
    for c in &mut consumers {
        c.close_stdin();
        c.expect_event("result", STARTUP)?;
    }
    Ok(times)
}

fn failover_figures(times: &mut [u64]) -> Vec<Figure> {
    times.sort_unstable();
    let ms = |ns: u64| ns as f64 / 1e6;
    let lease_ms = KEEPALIVE_MS * GRACE_INTERVALS;
    let bound = (lease_ms + 3 * ANNOUNCE_MS) as f64;
    let c = conditions(&[
        (
            "processes",
            s(format!(
                "media driver, SHM driver (backoff idle), producer (driver mode, 64 KiB at 1 kHz, killed with SIGKILL), {CONSUMERS} consumers (driver mode, backoff idle)"
            )),
        ),
        (
            "idle",
            s("producer and consumers backoff; SHM driver backoff; media driver Aeron backoff"),
        ),
        (
            "payload",
            s("touched: the producer memcpy's 64 KiB frames at 1 kHz; consumers read every byte"),
        ),
        (
            "timers",
            s(format!(
                "lease keepalive {KEEPALIVE_MS} ms x {GRACE_INTERVALS} grace intervals = {lease_ms} ms lease; announce period {ANNOUNCE_MS} ms"
            )),
        ),
        (
            "measured",
            s(
                "SIGKILL of the producer -> the last consumer maps the epoch the driver bumps when the dead lease expires (CLOCK_MONOTONIC, same host)",
            ),
        ),
        ("repetitions", json!(times.len())),
    ]);
    let worst = times.last().copied().map_or(f64::NAN, ms);
    let median = times.get(times.len() / 2).copied().map_or(f64::NAN, ms);
    let best = times.first().copied().map_or(f64::NAN, ms);
    let what = format!("bound: lease {lease_ms} ms + 3 x announce {ANNOUNCE_MS} ms");
    vec![
        Figure::new("attach", "producer-crash failover, worst", worst, "ms")
            .vs(bound, what.clone())
            .target(Target::RatioAtMost(1.0))
            .with(&c),
        Figure::new("attach", "producer-crash failover, median", median, "ms")
            .vs(bound, what.clone())
            .with(&c),
        Figure::new("attach", "producer-crash failover, best", best, "ms")
            .vs(bound, what)
            .with(&c),
    ]
}

/// `tp bench attach`.
pub fn run(rig: &mut Rig) -> Result<Output, CmdError> {
    let (count, idle_count, reps) = if rig.quick() {
        (200, 20, 2)
    } else {
        (1000, 100, 5)
    };
    let mut d = start_driver(rig, DRIVER_IDLE_SHORT_PARK)?;
    let after_idle_short_park = attacher(rig, &d, idle_count, 10.0)?;
    d.proc.stop();
    let mut d = start_driver(rig, DRIVER_IDLE)?;
    let back_to_back = attacher(rig, &d, count, 0.0)?;
    let after_idle = attacher(rig, &d, idle_count, 10.0)?;
    let mut out = Output::default();
    out.figures.extend(attach_figures(
        &back_to_back,
        &after_idle,
        &after_idle_short_park,
    ));
    let mut times = failover(rig, &d, reps)?;
    out.figures.extend(failover_figures(&mut times));
    d.proc.stop();
    Ok(out)
}
