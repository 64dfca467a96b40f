//! `supervisor`: the CPU share of a standalone `tp supervisor` process (utime + stime from
//! `/proc/<pid>/stat` over the window, per second of wall time) while one load process
//! sends hellos and QoS for 256 simulated consumers at 1 Hz each; the baseline is the same
//! supervisor process idle (no consumers) over a window of the same length, measured first
//! in the same run. Measured once per idle strategy of `--idle` (see [`IDLE_STRATEGIES`]).
//! Target: under 1% of a core (reported, not asserted).

use std::time::{Duration, Instant};

use serde_json::json;

use super::procs::{STARTUP, args};
use super::report::{Figure, Target, conditions, s};
use super::{Output, Rig};
use crate::cmd::CmdError;

const CONSUMERS: u32 = 256;

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64, CmdError> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // fields after the command name (which may hold spaces) close with ')'
    let rest = stat.rsplit_once(')').map(|(_, r)| r).ok_or("bad stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, stime 15
    let ut: u64 = f.get(11).ok_or("no utime")?.parse()?;
    let st: u64 = f.get(12).ok_or("no stime")?.parse()?;
    Ok(ut + st)
}

fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Percent of one core used by `pid` over `window`.
fn cpu_percent(pid: u32, window: Duration, tck: f64) -> Result<f64, CmdError> {
    let t0 = Instant::now();
    let c0 = cpu_ticks(pid)?;
    std::thread::sleep(window);
    let c1 = cpu_ticks(pid)?;
    let secs = t0.elapsed().as_secs_f64();
    Ok((c1 - c0) as f64 / tck / secs * 100.0)
}

/// `tp bench supervisor`: once per idle strategy of [`IDLE_STRATEGIES`].
pub fn run(rig: &mut Rig) -> Result<Output, CmdError> {
    let mut out = Output::default();
    for idle in IDLE_STRATEGIES {
        measure(rig, idle, &mut out)?;
    }
    Ok(out)
}

/// The idle strategies measured: Aeron's default backoff (parks up to 1 ms), a backoff that
/// parks up to 10 ms, and plain sleeps of 1 ms and 10 ms.
const IDLE_STRATEGIES: [&str; 4] = [
    "backoff",
    "backoff:10,20,1us,10ms",
    "sleep:1ms",
    "sleep:10ms",
];

fn measure(rig: &mut Rig, idle_strategy: &str, out: &mut Output) -> Result<(), CmdError> {
    let (settle, window) = if rig.quick() {
        (Duration::from_millis(1200), Duration::from_secs(1))
    } else {
        (Duration::from_secs(2), Duration::from_secs(10))
    };
    let tck = clk_tck();
    let dir = rig.aeron_dir();
    let mut sup = rig.spawn(
        "supervisor",
        &args(&["supervisor", "--aeron-dir", &dir, "--idle", idle_strategy]),
    )?;
    sup.expect_line(STARTUP, |l| l.contains("tp supervisor: ready"))?;
    let pid = sup.pid().ok_or("supervisor exited")?;
    let idle = cpu_percent(pid, window, tck)?;
    let mut load = rig.spawn(
        "supervisor-load",
        &args(&[
            "bench-role",
            "supervisor-load",
            "--aeron-dir",
            &dir,
            "--consumers",
            &CONSUMERS.to_string(),
            "--rate",
            "1",
        ]),
    )?;
    load.expect_event("ready", STARTUP)?;
    load.say("go")?;
    // one whole period: every consumer has said hello once before the window
    std::thread::sleep(settle);
    let loaded = cpu_percent(pid, window, tck)?;
    load.close_stdin();
    let result = load.expect_event("result", Duration::from_secs(5))?;
    load.stop();
    sup.stop();
    rig.record(
        json!({"bench": "supervisor", "load": result, "idle_pct": idle, "loaded_pct": loaded}),
    );
    let c = conditions(&[
        (
            "processes",
            s(format!(
                "media driver, tp supervisor (standalone, --idle {idle_strategy}), one load process"
            )),
        ),
        (
            "load",
            s(format!(
                "{CONSUMERS} simulated consumers, distinct ids, one ConsumerHello and one QosConsumer each per second, spread evenly"
            )),
        ),
        (
            "cpu",
            s(
                "utime + stime from /proc/<pid>/stat over the window, per second of wall time, % of one core",
            ),
        ),
        ("clk_tck", json!(tck)),
        ("window_s", json!(window.as_secs_f64())),
        (
            "baseline",
            s("the same supervisor process idle (no consumers), measured first"),
        ),
        ("target", s("< 1% of a core (reported, not asserted)")),
    ]);
    out.figures.push(
        Figure::new(
            "supervisor",
            format!("{CONSUMERS} consumers at 1 Hz, --idle {idle_strategy}: supervisor CPU"),
            loaded,
            "% of a core",
        )
        .vs(idle, "idle supervisor")
        .target(Target::ValueBelow(1.0))
        .with(&c),
    );
    out.figures.push(
        Figure::new(
            "supervisor",
            format!("idle supervisor, --idle {idle_strategy}: CPU"),
            idle,
            "% of a core",
        )
        .with(&c),
    );
    eprintln!(
        "tp bench supervisor (--idle {idle_strategy}): {loaded:.3}% of a core with {CONSUMERS} consumers at 1 Hz, {idle:.3}% idle (ratio {:.2}; target < 1%)",
        if idle > 0.0 {
            loaded / idle
        } else {
            f64::INFINITY
        }
    );
    Ok(())
}
