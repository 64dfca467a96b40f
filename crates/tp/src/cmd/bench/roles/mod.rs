//! `tp bench-role ROLE`: the processes a benchmark spawns (hidden from `tp --help`).
//!
//! Every role prints one JSON object a line on stdout: `{"event":"ready",...}` once set up,
//! other events as they happen, and `{"event":"result",...}` with its numbers. A line `go` on
//! stdin starts the measured work; the end of stdin (or a line `stop`) stops the role, which
//! then reports and exits.

mod aeron;
mod attach;
mod pool;
mod supervisor_load;

use std::io::{BufRead, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use super::workload::{PHASE_AFTER, PHASE_MEASURE, PHASE_WARMUP, Stamp, read_sum};
use crate::cmd::CmdError;

/// The roles.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    role: Role,
}

#[derive(Debug, clap::Subcommand)]
enum Role {
    /// A tensorpool producer: claim, fill every byte, stamp, commit (paced or flat out).
    Producer(pool::ProducerArgs),
    /// A tensorpool consumer: reads every byte of every frame, rechecks, tallies.
    Consumer(pool::ConsumerArgs),
    /// Raw Aeron publisher (`try_claim`) of stamped messages: the latency baseline.
    AeronPub(aeron::PubArgs),
    /// Raw Aeron subscriber (`poll`) reading every byte of every message.
    AeronSub(aeron::SubArgs),
    /// Attaches to and detaches from the SHM driver, timing each round trip.
    Attacher(attach::AttacherArgs),
    /// Simulated consumers sending hellos and QoS to a supervisor at a fixed rate.
    SupervisorLoad(supervisor_load::LoadArgs),
}

/// Runs a role.
pub fn run(args: &Args) -> Result<(), CmdError> {
    match &args.role {
        Role::Producer(a) => pool::run_producer(a),
        Role::Consumer(a) => pool::run_consumer(a),
        Role::AeronPub(a) => aeron::run_pub(a),
        Role::AeronSub(a) => aeron::run_sub(a),
        Role::Attacher(a) => attach::run(a),
        Role::SupervisorLoad(a) => supervisor_load::run(a),
    }
}

/// Prints one JSON event line and flushes.
fn emit(v: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

/// What the orchestrator said on stdin.
#[derive(Debug, Clone)]
struct Orders {
    go: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Orders {
    /// Watches stdin on a thread: `go` sets go; `stop` or the end of input sets stop.
    fn watch() -> Self {
        let o = Self {
            go: Arc::new(AtomicBool::new(false)),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let w = o.clone();
        let _ = std::thread::Builder::new()
            .name("orders".into())
            .spawn(move || {
                for line in std::io::stdin().lock().lines() {
                    match line.as_deref().map(str::trim) {
                        Ok("go") => w.go.store(true, Ordering::Release),
                        Ok("stop") | Err(_) => break,
                        Ok(_) => {}
                    }
                }
                w.stop.store(true, Ordering::Release);
            });
        o
    }

    fn go(&self) -> bool {
        self.go.load(Ordering::Acquire)
    }

    fn stop(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}

/// The phase of a paced or flat-out run, from its start and two durations.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    warm_end_ns: u64,
    /// `None`: the measured phase lasts until stopped.
    measure_end_ns: Option<u64>,
}

impl Schedule {
    fn new(start_ns: u64, warmup_s: f64, duration_s: f64) -> Self {
        let warm_end_ns = start_ns + (warmup_s * 1e9) as u64;
        Self {
            warm_end_ns,
            measure_end_ns: (duration_s > 0.0).then(|| warm_end_ns + (duration_s * 1e9) as u64),
        }
    }

    fn phase(&self, now_ns: u64) -> u64 {
        if now_ns < self.warm_end_ns {
            PHASE_WARMUP
        } else if self.measure_end_ns.is_none_or(|e| now_ns < e) {
            PHASE_MEASURE
        } else {
            PHASE_AFTER
        }
    }
}

/// Paces a producer at a fixed rate on a fixed grid: `due` says whether the next frame is
/// due; `advance` marks it sent. A producer more than one period late skips the frames it
/// missed (like a camera with a one-frame buffer) instead of bursting to catch up, so the
/// committed rate never exceeds the offered one.
#[derive(Debug)]
struct Pacer {
    period_ns: u64,
    next_ns: u64,
    /// Frames skipped because the producer was a whole period late or more.
    skipped: u64,
}

impl Pacer {
    fn new(rate_hz: f64, start_ns: u64) -> Self {
        let period_ns = if rate_hz > 0.0 {
            (1e9 / rate_hz) as u64
        } else {
            0
        };
        Self {
            period_ns,
            next_ns: start_ns,
            skipped: 0,
        }
    }

    fn due(&self, now_ns: u64) -> bool {
        self.period_ns == 0 || now_ns >= self.next_ns
    }

    /// Marks the due frame as sent at `now_ns`; returns how late it was.
    fn advance(&mut self, now_ns: u64) -> u64 {
        if self.period_ns == 0 {
            return 0;
        }
        let late = now_ns.saturating_sub(self.next_ns);
        let missed = late / self.period_ns;
        self.skipped += missed;
        self.next_ns += (missed + 1) * self.period_ns;
        late
    }
}

/// Where this thread's time went: on a CPU and waiting in a run queue (ns), from
/// `/proc/thread-self/schedstat`, at a moment (`CLOCK_MONOTONIC` ns).
#[derive(Debug, Clone, Copy)]
struct CpuSample {
    at_ns: u64,
    on_cpu_ns: u64,
    waiting_ns: u64,
}

impl CpuSample {
    fn now() -> Option<Self> {
        let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
        let mut it = text.split_whitespace().map(|w| w.parse::<u64>().ok());
        Some(Self {
            at_ns: tensorpool::monotonic_ns(),
            on_cpu_ns: it.next()??,
            waiting_ns: it.next()??,
        })
    }

    /// The shares of the wall time since `self` this thread spent on a CPU and waiting
    /// for one (a busy thread that got a whole core shows 1.0 and 0.0).
    fn json_until(&self, end: Option<Self>) -> Value {
        let Some(end) = end else {
            return Value::Null;
        };
        let wall = end.at_ns.saturating_sub(self.at_ns).max(1) as f64;
        json!({
            "on_cpu_share": end.on_cpu_ns.saturating_sub(self.on_cpu_ns) as f64 / wall,
            "runqueue_wait_share": end.waiting_ns.saturating_sub(self.waiting_ns) as f64 / wall,
        })
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000_000, 3).expect("histogram bounds")
}

/// Percentiles of a histogram (ns) as JSON, with a curve of (percentile, value) points for
/// plots: 0, 90, 99, 99.9, ... in tenths of a decade as far as the samples resolve them, then
/// the maximum.
fn histogram_json(h: &Histogram<u64>) -> Value {
    let q = |p: f64| h.value_at_quantile(p);
    // percentiles the sample count resolves ((1 - p) x count >= 1), then the maximum
    let n = h.len() as f64;
    let curve: Vec<Value> = (0..=50)
        .map(|k| 1.0 - 10f64.powf(-f64::from(k) / 10.0))
        .filter(|p| *p < 1.0 && (1.0 - p) * n >= 1.0)
        .map(|p| json!([p * 100.0, q(p)]))
        .chain(std::iter::once(json!([100.0, h.max()])))
        .collect();
    json!({
        "count": h.len(),
        "min": h.min(),
        "mean": h.mean(),
        "p50": q(0.5),
        "p90": q(0.9),
        "p99": q(0.99),
        "p99_9": q(0.999),
        "p99_99": q(0.9999),
        "max": h.max(),
        "curve": curve,
    })
}

/// Tallies of a reader of stamped frames (tensorpool consumer or raw Aeron subscriber).
#[derive(Debug)]
struct Tally {
    /// Accepted frames per phase (warm-up, measured, after).
    accepted: [u64; 3],
    bytes_measured: u64,
    /// Payloads whose stamp did not match the frame.
    mismatched: u64,
    /// Frames read, then refused by the seqlock re-check.
    recheck_failed: u64,
    /// Commit -> accept latency of measured frames (ns).
    latency: Histogram<u64>,
    sink: u64,
    /// This thread's CPU time from the first measured frame on.
    cpu_from: Option<CpuSample>,
    /// With `--breakdown`: commit stamp -> descriptor published, descriptor published ->
    /// handler entered, handler entered -> accepted (ns).
    breakdown: Option<[Histogram<u64>; 3]>,
}

impl Tally {
    fn new() -> Self {
        Self {
            accepted: [0; 3],
            bytes_measured: 0,
            mismatched: 0,
            recheck_failed: 0,
            latency: new_histogram(),
            sink: 0,
            cpu_from: None,
            breakdown: None,
        }
    }

    /// Also splits the latency at the descriptor's publish time and the handler's entry.
    fn with_breakdown(mut self) -> Self {
        self.breakdown = Some([new_histogram(), new_histogram(), new_histogram()]);
        self
    }

    /// A frame entered the handler at `entered_ns`; its descriptor was published at
    /// `published_ns`; it was accepted at `accepted_ns`, committed at `commit_ns`.
    fn split(&mut self, commit_ns: u64, published_ns: u64, entered_ns: u64, accepted_ns: u64) {
        if let Some(h) = self.breakdown.as_mut() {
            h[0].saturating_record(published_ns.saturating_sub(commit_ns).max(1));
            h[1].saturating_record(entered_ns.saturating_sub(published_ns).max(1));
            h[2].saturating_record(accepted_ns.saturating_sub(entered_ns).max(1));
        }
    }

    /// Reads every byte of `bytes`; `recheck` says whether the read was valid; `seq` is the
    /// sequence the transport says this is (`None`: take the stamp's). Returns the stamp
    /// and the accept time of a measured frame.
    fn on_payload(
        &mut self,
        bytes: &[u8],
        seq: Option<u64>,
        recheck: impl FnOnce() -> bool,
    ) -> Option<(Stamp, u64)> {
        let sum = read_sum(bytes);
        let stamp = Stamp::read(bytes);
        if !recheck() {
            self.recheck_failed += 1;
            return None;
        }
        let now = tensorpool::monotonic_ns();
        self.sink = self.sink.wrapping_add(sum);
        let Some(s) = stamp.filter(|s| seq.is_none_or(|q| q == s.seq) && s.phase <= PHASE_AFTER)
        else {
            self.mismatched += 1;
            return None;
        };
        self.accepted[s.phase as usize] += 1;
        if s.phase == PHASE_MEASURE {
            if self.cpu_from.is_none() {
                self.cpu_from = CpuSample::now();
            }
            self.bytes_measured += bytes.len() as u64;
            self.latency
                .saturating_record(now.saturating_sub(s.commit_ns).max(1));
            return Some((s, now));
        }
        None
    }

    fn json(&self) -> Value {
        json!({
            "accepted": {
                "warmup": self.accepted[0],
                "measure": self.accepted[1],
                "after": self.accepted[2],
            },
            "bytes_measured": self.bytes_measured,
            "mismatched": self.mismatched,
            "recheck_failed": self.recheck_failed,
            "latency_ns": histogram_json(&self.latency),
            "checksum": self.sink,
            "cpu": self.cpu_from.map_or(Value::Null, |c| c.json_until(CpuSample::now())),
            "breakdown_ns": self.breakdown.as_ref().map_or(Value::Null, |h| json!({
                "commit_to_published": histogram_json(&h[0]),
                "published_to_handler": histogram_json(&h[1]),
                "handler_to_accepted": histogram_json(&h[2]),
            })),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_phases() {
        let s = Schedule::new(1_000, 1e-6, 2e-6);
        assert_eq!(s.phase(1_000), PHASE_WARMUP);
        assert_eq!(s.phase(2_000), PHASE_MEASURE);
        assert_eq!(s.phase(4_000), PHASE_AFTER);
        let open = Schedule::new(0, 0.0, 0.0);
        assert_eq!(open.phase(u64::MAX / 2), PHASE_MEASURE);
    }

    #[test]
    fn pacer_keeps_the_grid_and_skips_what_it_missed() {
        let mut p = Pacer::new(1000.0, 0);
        assert!(p.due(0));
        assert_eq!(p.advance(100), 100);
        assert!(!p.due(999_999));
        assert!(p.due(1_000_000));
        assert_eq!(p.advance(3_500_000), 2_500_000);
        assert_eq!(p.skipped, 2);
        assert!(!p.due(3_999_999));
        assert!(p.due(4_000_000));
        let flat = Pacer::new(0.0, 0);
        assert!(flat.due(0));
    }

    #[test]
    fn tally_counts_by_phase_and_rejects_mismatches() {
        let mut t = Tally::new();
        let mut buf = vec![0u8; 64];
        Stamp {
            seq: 3,
            phase: PHASE_MEASURE,
            commit_ns: tensorpool::monotonic_ns(),
        }
        .write(&mut buf);
        t.on_payload(&buf, Some(3), || true);
        t.on_payload(&buf, Some(4), || true);
        t.on_payload(&buf, Some(3), || false);
        assert_eq!(t.accepted, [0, 1, 0]);
        assert_eq!(t.mismatched, 1);
        assert_eq!(t.recheck_failed, 1);
        assert_eq!(t.latency.len(), 1);
        let j = t.json();
        assert_eq!(j["accepted"]["measure"], 1);
        assert!(
            j["latency_ns"]["curve"]
                .as_array()
                .is_some_and(|c| c.len() == 2 && c[1][0] == 100.0)
        );
    }
}
