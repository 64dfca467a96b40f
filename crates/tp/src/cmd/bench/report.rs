//! Figures, the conditions they were measured under, and the files they are written to:
//! `results.json` (one object per figure) and `results.md` (the table).

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::cmd::CmdError;

/// A target a figure is held to (from the project's benchmark targets).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// `ratio >= x`.
    RatioAtLeast(f64),
    /// `ratio <= x`.
    RatioAtMost(f64),
    /// `value < x` (in the figure's unit; for figures whose goal is absolute).
    ValueBelow(f64),
}

impl Target {
    fn text(self) -> String {
        match self {
            Target::RatioAtLeast(x) => format!("ratio >= {x}"),
            Target::RatioAtMost(x) => format!("ratio <= {x}"),
            Target::ValueBelow(x) => format!("value < {x}"),
        }
    }

    fn met(self, value: f64, ratio: Option<f64>) -> Option<bool> {
        match self {
            Target::RatioAtLeast(x) => ratio.map(|r| r >= x),
            Target::RatioAtMost(x) => ratio.map(|r| r <= x),
            Target::ValueBelow(x) => Some(value < x),
        }
    }
}

/// One measured number with its baseline from the same run.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// The benchmark (`throughput`, `latency`, ...).
    pub bench: &'static str,
    /// What was measured.
    pub name: String,
    /// The measured value.
    pub value: f64,
    /// Its unit.
    pub unit: &'static str,
    /// The baseline's value (same unit), if any.
    pub baseline: Option<f64>,
    /// What the baseline is.
    pub baseline_name: Option<String>,
    /// `value / baseline`.
    pub ratio: Option<f64>,
    /// The target, if the figure has one.
    pub target: Option<String>,
    /// Whether the target was met.
    pub met: Option<bool>,
    /// Machine and benchmark conditions.
    pub conditions: Value,
}

impl Figure {
    /// A figure without baseline.
    pub fn new(
        bench: &'static str,
        name: impl Into<String>,
        value: f64,
        unit: &'static str,
    ) -> Self {
        Self {
            bench,
            name: name.into(),
            value,
            unit,
            baseline: None,
            baseline_name: None,
            ratio: None,
            target: None,
            met: None,
            conditions: Value::Null,
        }
    }

    /// Adds the baseline (and the ratio).
    pub fn vs(mut self, baseline: f64, what: impl Into<String>) -> Self {
        self.baseline = Some(baseline);
        self.baseline_name = Some(what.into());
        self.ratio = (baseline != 0.0).then(|| self.value / baseline);
        self
    }

    /// Adds a target (on the ratio, or on the value for [`Target::ValueBelow`]).
    pub fn target(mut self, t: Target) -> Self {
        self.target = Some(t.text());
        self.met = t.met(self.value, self.ratio);
        self
    }

    /// Sets the benchmark's conditions (merged with the machine's when written).
    pub fn with(mut self, conditions: &Value) -> Self {
        self.conditions = conditions.clone();
        self
    }
}

/// The machine and the build a run happened on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// `git rev-parse HEAD` of the working directory (`+dirty` with uncommitted changes).
    pub commit: String,
    /// CPU model (`/proc/cpuinfo`).
    pub cpu_model: String,
    /// Logical CPUs available to the process.
    pub cores: usize,
    /// Kernel release.
    pub kernel: String,
    /// When the run started (UTC).
    pub date_utc: String,
    /// Load average (1, 5, 15 min) at the start and at the end.
    pub load_average_start: String,
    /// Load average at the end.
    pub load_average_end: String,
    /// Processes using more than 5 % CPU when the run started (`ps`), ours excluded.
    pub busy_processes_at_start: Vec<String>,
    /// Build of the `tp` binary.
    pub build: String,
    /// CPU pinning.
    pub pinning: String,
    /// The media driver every benchmark shares.
    pub media_driver: String,
    /// Per benchmark: the load average at its start and end and the busy processes at its
    /// start (what else was running).
    pub load_by_bench: Vec<Value>,
}

fn first_line(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status.success().then_some(())?;
    String::from_utf8(out.stdout)
        .ok()?
        .lines()
        .next()
        .map(str::to_owned)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn busy_processes() -> Vec<String> {
    let Ok(out) = Command::new("ps")
        .args(["-eo", "pcpu=,comm=", "--sort=-pcpu"])
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (cpu, comm) = l.trim().split_once(' ')?;
            let cpu: f64 = cpu.parse().ok()?;
            (cpu >= 5.0 && comm.trim() != "tp" && comm.trim() != "ps")
                .then(|| format!("{} ({cpu:.0}% CPU)", comm.trim()))
        })
        .take(8)
        .collect()
}

impl Machine {
    /// Looks at the machine now.
    pub fn probe() -> Self {
        let commit = first_line("git", &["rev-parse", "--short=12", "HEAD"])
            .unwrap_or_else(|| "unknown".into());
        let dirty = Command::new("git")
            .args(["status", "--porcelain", "--untracked-files=no"])
            .output()
            .is_ok_and(|o| !o.stdout.is_empty());
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, m)| m.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let build = if cfg!(debug_assertions) {
            "unoptimized or test profile (debug assertions on): figures are not representative"
        } else {
            "release profile"
        };
        Self {
            commit: if dirty {
                format!("{commit}+dirty")
            } else {
                commit
            },
            cpu_model,
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "unknown".into()),
            date_utc: crate::cmd::util::rfc3339_utc(tensorpool_agent::realtime_ns()),
            load_average_start: load_average(),
            load_average_end: String::new(),
            busy_processes_at_start: busy_processes(),
            build: build.into(),
            pinning: "none: every process may run on any core".into(),
            media_driver: super::procs::MEDIA_DRIVER_IDLE.into(),
            load_by_bench: Vec::new(),
        }
    }

    /// Notes the load when benchmark `name` starts.
    pub fn bench_started(&mut self, name: &str) {
        self.load_by_bench.push(json!({
            "bench": name,
            "load_average_start": load_average(),
            "busy_processes_at_start": busy_processes(),
        }));
    }

    /// Notes the load when the last benchmark started ends.
    pub fn bench_ended(&mut self) {
        if let Some(last) = self.load_by_bench.last_mut() {
            last["load_average_end"] = json!(load_average());
        }
    }

    /// Records the load average at the end of the run.
    pub fn finish(&mut self) {
        self.load_average_end = load_average();
    }

    fn json(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        }
    }
}

/// Every figure as JSON: the machine's conditions merged into each figure's.
pub fn figures_json(figures: &[Figure], machine: &Machine) -> Value {
    let m = machine.json();
    let all: Vec<Value> = figures
        .iter()
        .map(|f| {
            let mut v = serde_json::to_value(f).unwrap_or(Value::Null);
            let mut c = m.clone();
            // only this figure's benchmark's load, not every benchmark's
            c.remove("load_by_bench");
            if let Some(l) = machine
                .load_by_bench
                .iter()
                .find(|l| l["bench"].as_str() == Some(f.bench))
            {
                c.insert("load_during_bench".into(), l.clone());
            }
            if let Value::Object(own) = &f.conditions {
                c.extend(own.clone());
            }
            v["conditions"] = Value::Object(c);
            v
        })
        .collect();
    Value::Array(all)
}

/// A number with about four significant digits.
pub fn num(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    let a = x.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 1000.0 {
        format!("{x:.0}")
    } else if a >= 100.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

/// The Markdown report: the machine, then one table per benchmark with its conditions.
pub fn markdown(figures: &[Figure], machine: &Machine, plots: &[String]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# tp bench results\n");
    let _ = writeln!(
        s,
        "- date (UTC): {}\n- commit: {}\n- CPU: {} ({} logical CPUs), kernel {}\n- build: {}\n- pinning: {}\n- media driver: {}\n- load average (1/5/15 min): {} at start, {} at end\n- busy processes at start: {}\n",
        machine.date_utc,
        machine.commit,
        machine.cpu_model,
        machine.cores,
        machine.kernel,
        machine.build,
        machine.pinning,
        machine.media_driver,
        machine.load_average_start,
        machine.load_average_end,
        if machine.busy_processes_at_start.is_empty() {
            "none".to_owned()
        } else {
            machine.busy_processes_at_start.join(", ")
        }
    );
    let mut benches: Vec<&'static str> = figures.iter().map(|f| f.bench).collect();
    benches.dedup();
    for bench in benches {
        let _ = writeln!(s, "## {bench}\n");
        if let Some(l) = machine
            .load_by_bench
            .iter()
            .find(|l| l["bench"].as_str() == Some(bench))
        {
            let busy: Vec<&str> = l["busy_processes_at_start"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "Load average {} at the start, {} at the end; busy processes at the start: {}.\n",
                l["load_average_start"].as_str().unwrap_or("?"),
                l["load_average_end"].as_str().unwrap_or("?"),
                if busy.is_empty() {
                    "none".to_owned()
                } else {
                    busy.join(", ")
                }
            );
        }
        let _ = writeln!(
            s,
            "| figure | value | unit | baseline | ratio | target | met |\n|---|---:|---|---:|---:|---|---|"
        );
        let mine: Vec<&Figure> = figures.iter().filter(|f| f.bench == bench).collect();
        for f in &mine {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} |",
                f.name,
                num(f.value),
                f.unit,
                f.baseline
                    .map(|b| format!("{} ({})", num(b), f.baseline_name.as_deref().unwrap_or("")))
                    .unwrap_or_default(),
                f.ratio.map(num).unwrap_or_default(),
                f.target.as_deref().unwrap_or(""),
                match f.met {
                    Some(true) => "yes",
                    Some(false) => "**no**",
                    None => "",
                }
            );
        }
        let _ = writeln!(s, "\nConditions:\n");
        let first = mine.first().and_then(|f| f.conditions.as_object());
        let mut varying = Vec::new();
        for (k, v) in first.into_iter().flatten() {
            if mine.iter().all(|f| f.conditions.get(k) == Some(v)) {
                let text = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                let _ = writeln!(s, "- {k}: {text}");
            } else {
                varying.push(k.as_str());
            }
        }
        if !varying.is_empty() {
            let _ = writeln!(s, "- per figure (see results.json): {}", varying.join(", "));
        }
        let _ = writeln!(s);
    }
    if !plots.is_empty() {
        let _ = writeln!(s, "## Plots\n");
        for p in plots {
            let _ = writeln!(s, "- ![{p}]({p})");
        }
    }
    s
}

/// Writes `results.json` and `results.md` into `dir`.
pub fn write(
    dir: &Path,
    figures: &[Figure],
    machine: &Machine,
    plots: &[String],
) -> Result<Value, CmdError> {
    let json = figures_json(figures, machine);
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(&json)? + "\n",
    )?;
    std::fs::write(dir.join("results.md"), markdown(figures, machine, plots))?;
    Ok(json)
}

/// Per-benchmark conditions shared by the benches (extended by each).
pub fn conditions(pairs: &[(&str, Value)]) -> Value {
    let mut m = Map::new();
    for (k, v) in pairs {
        m.insert((*k).to_owned(), v.clone());
    }
    Value::Object(m)
}

/// A string value.
pub fn s(text: impl Into<String>) -> Value {
    json!(text.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_target_and_markdown() {
        let c = conditions(&[("frame_bytes", json!(655_360))]);
        let f = Figure::new("throughput", "640 KiB frames/s", 900.0, "frames/s")
            .vs(1000.0, "memcpy + read")
            .target(Target::RatioAtLeast(0.85))
            .with(&c);
        assert_eq!(f.ratio, Some(0.9));
        assert_eq!(f.met, Some(true));
        let g = Figure::new("latency", "p50", 4.0, "us")
            .vs(1.0, "raw Aeron")
            .target(Target::RatioAtMost(1.5));
        assert_eq!(g.met, Some(false));
        let mut m = Machine::probe();
        m.finish();
        let md = markdown(&[f.clone(), g], &m, &["x.svg".into()]);
        assert!(md.contains("| 640 KiB frames/s | 900.0 | frames/s | 1000 (memcpy + read) | 0.900 | ratio >= 0.85 | yes |"));
        assert!(md.contains("**no**"));
        assert!(md.contains("- frame_bytes: 655360"));
        let j = figures_json(&[f], &m);
        assert_eq!(j[0]["conditions"]["frame_bytes"], 655_360);
        assert!(j[0]["conditions"]["commit"].is_string());
    }

    #[test]
    fn numbers() {
        assert_eq!(num(12345.6), "12346");
        assert_eq!(num(123.45), "123.5");
        assert_eq!(num(1.234), "1.23");
        assert_eq!(num(0.01234), "0.012");
    }
}
