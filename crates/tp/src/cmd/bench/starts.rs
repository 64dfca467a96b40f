//! `starts`: process start-up against a running system, N times in a row (by name only, not
//! in `all`).
//!
//! - **Consumer starts**: `tp consume --driver-config F --exit-when-mapped`, N times; each
//!   start is timed from spawn to its `mapped epoch` line, then must exit with status 0.
//! - **Producer starts**: `tp produce --driver-config F --count 0 --linger 0`, N times; timed
//!   from spawn to its `epoch` line (the driver granted the PRODUCER lease), then must exit 0.
//! - **Driver starts**: `tp driver --config F` with one consumer (driver mode) waiting, N
//!   times; timed from spawn until the waiting consumer mapped the new driver's epoch; then
//!   the driver gets SIGTERM and must exit 0.
//!
//! A start that has not attached and exited within the per-start timeout is killed and
//! counted as hung; one ended by a signal counts as crashed; a non-zero exit (or an exit
//! without attaching) as failed. N: `TP_BENCH_STARTS` (default 1000, `--quick` 20);
//! driver starts `TP_BENCH_STARTS_DRIVER` (default N); timeout `TP_BENCH_STARTS_TIMEOUT_MS`
//! (default 5000).

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use serde_json::json;

use super::procs::{Proc, STARTUP, args};
use super::report::{Figure, conditions, s};
use super::{Output, Rig};
use crate::cmd::CmdError;

const STREAM: u32 = 31_000;
const WITHIN: Duration = Duration::from_secs(1);

fn driver_toml(base: &Path) -> String {
    format!(
        "[driver]\ninstance_id = \"tp-bench-starts\"\n[shm]\nbase_dir = \"{}\"\n\
         [policies]\nepoch_gc_min_age_ns = 0\nepoch_gc_on_startup = true\n\
         [profiles.small]\nheader_nslots = 64\npayload_pools = [{{ pool_id = 1, stride_bytes = 1024 }}]\n\
         [streams.starts]\nstream_id = {STREAM}\nprofile = \"small\"\n",
        base.display()
    )
}

/// How one start ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Ok,
    Hung,
    Crashed(i32),
    Failed,
}

/// One start: its end and the time from spawn to attached/mapped (ns), if it got there.
#[derive(Debug, Clone, Copy)]
struct Start {
    end: End,
    attach_ns: Option<u64>,
}

fn env_usize(key: &str, default: usize) -> Result<usize, CmdError> {
    match std::env::var(key) {
        Ok(v) => v
            .parse()
            .map_err(|e| format!("{key}={v:?}: not a count ({e})").into()),
        Err(_) => Ok(default),
    }
}

/// Sends every line of `r` into `tx` (a reader thread per stream).
fn pump(r: impl Read + Send + 'static, tx: std::sync::mpsc::Sender<String>) {
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
}

/// Spawns `exe args`, stdout and stderr both read line by line.
fn spawn(exe: &Path, a: &[String]) -> Result<(Child, Receiver<String>), CmdError> {
    let mut child = Command::new(exe)
        .args(a)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawning {}: {e}", exe.display()))?;
    let (tx, rx) = channel();
    pump(
        child.stdout.take().ok_or("child without stdout")?,
        tx.clone(),
    );
    pump(child.stderr.take().ok_or("child without stderr")?, tx);
    Ok((child, rx))
}

/// Waits for the exit until `deadline`; `None` when still running.
fn wait_until(child: &mut Child, deadline: Instant) -> Result<Option<ExitStatus>, CmdError> {
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok(Some(st));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn end_of(status: ExitStatus, attached: bool) -> End {
    match (status.signal(), status.code()) {
        (Some(sig), _) => End::Crashed(sig),
        (None, Some(0)) if attached => End::Ok,
        _ => End::Failed,
    }
}

/// One client start: spawn, wait for a line containing `marker`, wait for the exit.
fn client_start(
    exe: &Path,
    a: &[String],
    marker: &str,
    timeout: Duration,
    tail: &mut Vec<String>,
) -> Result<Start, CmdError> {
    let t0 = Instant::now();
    let deadline = t0 + timeout;
    let (mut child, rx) = spawn(exe, a)?;
    let mut attach_ns = None;
    let mut lines = Vec::new();
    while attach_ns.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if line.contains(marker) {
                    attach_ns = Some(t0.elapsed().as_nanos() as u64);
                }
                lines.push(line);
            }
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    let end = match wait_until(&mut child, deadline)? {
        Some(st) => end_of(st, attach_ns.is_some()),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            End::Hung
        }
    };
    lines.extend(rx.try_iter());
    if end != End::Ok && tail.is_empty() {
        *tail = lines.into_iter().rev().take(5).rev().collect();
    }
    Ok(Start { end, attach_ns })
}

/// One driver start with `consumer` waiting: spawn, wait until the consumer mapped an epoch
/// above `*epoch`, SIGTERM, wait for the exit.
fn driver_start(
    exe: &Path,
    a: &[String],
    consumer: &mut Proc,
    epoch: &mut u64,
    timeout: Duration,
    tail: &mut Vec<String>,
) -> Result<Start, CmdError> {
    let t0 = tensorpool::monotonic_ns();
    let started = Instant::now();
    let deadline = started + timeout;
    let (mut child, rx) = spawn(exe, a)?;
    let mut attach_ns = None;
    while attach_ns.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(e) = consumer.expect_event("mapped", left) else {
            break;
        };
        let got = e["epoch"].as_u64().unwrap_or(0);
        if got > *epoch {
            *epoch = got;
            attach_ns = Some(e["t_ns"].as_u64().unwrap_or(t0).saturating_sub(t0));
        }
    }
    // still running now, unless it crashed or failed: stop it as an operator would
    let early = child.try_wait()?;
    if early.is_none() {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stderr(Stdio::null())
            .status();
    }
    let stop_deadline = Instant::now().max(deadline) + Duration::from_secs(3);
    let end = match early.map_or_else(|| wait_until(&mut child, stop_deadline), |s| Ok(Some(s)))? {
        Some(st) if early.is_some() && st.signal().is_none() => End::Failed,
        Some(st) => end_of(st, attach_ns.is_some()),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            End::Hung
        }
    };
    let end = if attach_ns.is_none() && end == End::Ok {
        End::Hung
    } else {
        end
    };
    if end != End::Ok && tail.is_empty() {
        *tail = rx.try_iter().collect::<Vec<_>>();
        tail.reverse();
        tail.truncate(5);
        tail.reverse();
    }
    Ok(Start { end, attach_ns })
}

/// The figures of one series.
fn figures(who: &str, starts: &[Start], tail: &[String], c: &serde_json::Value, out: &mut Output) {
    let n = starts.len();
    let count = |f: &dyn Fn(&Start) -> bool| starts.iter().filter(|s| f(s)).count() as f64;
    let mut times: Vec<u64> = starts.iter().filter_map(|s| s.attach_ns).collect();
    times.sort_unstable();
    let q = |p: f64| {
        if times.is_empty() {
            return f64::NAN;
        }
        let i = ((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1;
        times[i] as f64 / 1e6
    };
    let within =
        count(&|s| s.end == End::Ok && s.attach_ns.is_some_and(|t| t <= WITHIN.as_nanos() as u64));
    let mut c = c.clone();
    if !tail.is_empty() {
        c["first_failure_output"] = json!(tail);
    }
    let fig = |name: &str, v: f64, unit: &'static str| {
        Figure::new("starts", format!("{who} starts: {name}"), v, unit).with(&c)
    };
    out.figures.push(fig("started", n as f64, "starts"));
    out.figures
        .push(fig("ok", count(&|s| s.end == End::Ok), "starts"));
    out.figures.push(fig(
        "hung (killed at the timeout)",
        count(&|s| s.end == End::Hung),
        "starts",
    ));
    out.figures.push(fig(
        "crashed (signal)",
        count(&|s| matches!(s.end, End::Crashed(_))),
        "starts",
    ));
    out.figures.push(fig(
        "failed (exit != 0 or no attach)",
        count(&|s| s.end == End::Failed),
        "starts",
    ));
    out.figures.push(
        fig("ok and attached within 1 s", within, "starts")
            .vs(n as f64, "all starts")
            .target(super::report::Target::RatioAtLeast(1.0)),
    );
    for (name, p) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0)] {
        out.figures
            .push(fig(&format!("time to attached {name}"), q(p), "ms"));
    }
    eprintln!(
        "tp bench starts: {who}: {n} started, {} ok, {} hung, {} crashed, {} failed, {within} within 1 s; \
         attach p50 {:.1} p90 {:.1} p99 {:.1} max {:.1} ms",
        count(&|s| s.end == End::Ok),
        count(&|s| s.end == End::Hung),
        count(&|s| matches!(s.end, End::Crashed(_))),
        count(&|s| s.end == End::Failed),
        q(0.5),
        q(0.9),
        q(0.99),
        q(1.0)
    );
}

fn series(
    rig: &mut Rig,
    who: &str,
    n: usize,
    mut one: impl FnMut(&mut Vec<String>) -> Result<Start, CmdError>,
) -> Result<(Vec<Start>, Vec<String>), CmdError> {
    let mut starts = Vec::with_capacity(n);
    let mut tail = Vec::new();
    for i in 0..n {
        starts.push(one(&mut tail)?);
        if (i + 1) % 100 == 0 {
            eprintln!("tp bench starts: {who} {}/{n}", i + 1);
        }
    }
    rig.record(json!({
        "measurement": format!("{who} starts"),
        "attach_ns": starts.iter().map(|s| s.attach_ns).collect::<Vec<_>>(),
        "ends": starts.iter().map(|s| format!("{:?}", s.end)).collect::<Vec<_>>(),
    }));
    Ok((starts, tail))
}

/// `tp bench starts`.
pub fn run(rig: &mut Rig) -> Result<Output, CmdError> {
    let n = env_usize("TP_BENCH_STARTS", if rig.quick() { 20 } else { 1000 })?;
    let n_driver = env_usize("TP_BENCH_STARTS_DRIVER", n)?;
    let timeout = Duration::from_millis(env_usize("TP_BENCH_STARTS_TIMEOUT_MS", 5000)? as u64);
    let exe = rig.exe().to_path_buf();
    let aeron = rig.aeron_dir();
    let base = rig.scratch("starts-shm");
    let config = rig.scratch("starts-driver.toml");
    std::fs::write(&config, driver_toml(&base))?;
    let config = config.to_string_lossy().into_owned();
    let base = base.to_string_lossy().into_owned();
    let stream = STREAM.to_string();
    let driver_args = args(&["driver", "--config", &config, "--aeron-dir", &aeron]);
    let c = conditions(&[
        (
            "processes",
            s(
                "media driver, SHM driver (tp driver, backoff idle), and one process started at a time; debug or release as built",
            ),
        ),
        (
            "measured",
            s(
                "spawn -> the process printed that it attached (producer) or mapped (consumer), or the waiting consumer mapped the new driver's epoch (driver); then its exit",
            ),
        ),
        ("timeout_per_start_ms", json!(timeout.as_millis() as u64)),
    ]);
    let mut out = Output::default();

    let mut driver = rig.spawn("starts-shm-driver", &driver_args)?;
    driver.expect_line(STARTUP, |l| l.contains("ready"))?;
    let consume = args(&[
        "consume",
        "--driver-config",
        &config,
        "--stream-id",
        &stream,
        "--aeron-dir",
        &aeron,
        "--exit-when-mapped",
    ]);
    let (starts, tail) = series(rig, "consumer", n, |tail| {
        client_start(&exe, &consume, "mapped epoch", timeout, tail)
    })?;
    figures("consumer", &starts, &tail, &c, &mut out);
    let produce = args(&[
        "produce",
        "--driver-config",
        &config,
        "--stream-id",
        &stream,
        "--aeron-dir",
        &aeron,
        "--size",
        "1024",
        "--count",
        "0",
        "--linger",
        "0",
    ]);
    let (starts, tail) = series(rig, "producer", n, |tail| {
        client_start(&exe, &produce, " epoch ", timeout, tail)
    })?;
    figures("producer", &starts, &tail, &c, &mut out);
    if n_driver > 0 {
        // the waiting consumer attaches to this driver first, then sees every restart
        let waiting = args(&[
            "bench-role",
            "consumer",
            "--aeron-dir",
            &aeron,
            "--stream-id",
            &stream,
            "--driver-config",
            &config,
            "--allowed-base-dir",
            &base,
            "--idle",
            "backoff",
        ]);
        let mut consumer = rig.spawn("starts-waiting-consumer", &waiting)?;
        consumer.expect_event("ready", STARTUP)?;
        let first = consumer.expect_event("mapped", STARTUP)?;
        let mut epoch = first["epoch"].as_u64().unwrap_or(0);
        driver.stop();
        let (starts, tail) = series(rig, "driver", n_driver, |tail| {
            driver_start(&exe, &driver_args, &mut consumer, &mut epoch, timeout, tail)
        })?;
        consumer.stop();
        figures("driver", &starts, &tail, &c, &mut out);
    } else {
        driver.stop();
    }
    Ok(out)
}
