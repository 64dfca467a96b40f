//! `tp bench`: the system benchmarks. Each one runs the real multi-process system (a media
//! driver process, producer and consumer processes, the SHM driver where it matters) and,
//! in the same run, the baseline that bounds it, so that every figure is a ratio.
//!
//! | bench | measures | baseline |
//! |---|---|---|
//! | `throughput` | 64 KiB / 640 KiB / 4 MiB frames, flat out, every byte written and read | memcpy + read on one core |
//! | `latency` | 4 KiB at 1 kHz and 10 kHz, commit -> accept | raw Aeron IPC `try_claim` -> `poll` |
//! | `fanout` | 1..64 consumers of one stream at a fixed offered rate | 1 consumer |
//! | `attach` | driver attach round trips; producer kill -9 -> consumers on the new epoch | 1 ms; lease + 3 announce periods |
//! | `sizes` | 1 KiB .. 16 MiB frames, flat out | memcpy + read per size |
//! | `supervisor` | `tp supervisor` CPU, 256 consumers' hellos + QoS at 1 Hz | the same supervisor idle |
//! | `bridge` | 640 KiB GB/s and 4 KiB latency across two network namespaces through `tp bridge` | raw Aeron UDP on the same link |
//! | `ratelimit` | `tp ratelimit` CPU per forwarded 640 KiB frame, latency it adds | memcpy of the frame; the source's own consumer |
//! | `starts` | N consumer / producer / driver process starts: ok, hung, crashed, time to attached | 1 s per start |
//!
//! Layout: `procs` (child processes), `roles` (the hidden `tp bench-role` processes),
//! `workload` (fill / read, the memcpy baseline), `report` (figures, JSON, Markdown),
//! `plot` (SVG), one module per benchmark.

mod attach;
mod bridge;
mod fanout;
mod latency;
mod plot;
mod procs;
mod ratelimit;
mod report;
pub mod roles;
mod session;
mod starts;
mod supervisor;
mod throughput;
mod workload;

use std::path::{Path, PathBuf};
use std::time::Instant;

use report::{Figure, Machine};

use super::CmdError;

/// A benchmark name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Name {
    /// Frames per second and GB/s against memcpy + read.
    Throughput,
    /// Commit -> accept latency against raw Aeron IPC.
    Latency,
    /// Producer rate and drops with 1..64 consumers.
    Fanout,
    /// Driver attach round trip and producer-crash failover.
    Attach,
    /// GB/s from 1 KiB to 16 MiB against memcpy + read.
    Sizes,
    /// Supervisor CPU with 256 consumers' hellos and QoS at 1 Hz against it idle.
    Supervisor,
    /// `tp bridge` across two network namespaces against raw Aeron UDP (root + `ip` only).
    Bridge,
    /// `tp ratelimit`: CPU per forwarded frame against memcpy, latency it adds.
    Ratelimit,
    /// N process starts of a consumer, a producer and the driver: none hung or crashed,
    /// each attached within 1 s (N: TP_BENCH_STARTS, default 1000).
    Starts,
    /// Every benchmark.
    All,
}

impl Name {
    fn as_str(self) -> &'static str {
        match self {
            Name::Throughput => "throughput",
            Name::Latency => "latency",
            Name::Fanout => "fanout",
            Name::Attach => "attach",
            Name::Sizes => "sizes",
            Name::Supervisor => "supervisor",
            Name::Bridge => "bridge",
            Name::Ratelimit => "ratelimit",
            Name::Starts => "starts",
            Name::All => "all",
        }
    }
}

/// Flags of `tp bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Benchmarks to run (throughput, latency, fanout, attach, sizes, supervisor, bridge,
    /// ratelimit, starts, or all)
    #[arg(value_enum, required = true)]
    names: Vec<Name>,
    /// Short runs that only prove the suite works (CI); the figures are not meaningful
    #[arg(long)]
    quick: bool,
    /// Output directory [default: target/bench/<UTC timestamp>]
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Print the figures as JSON on stdout (instead of the Markdown table)
    #[arg(long)]
    json: bool,
}

/// What every benchmark runs on: this binary, the output directory, a private SHM base
/// directory and one media driver process for the whole run.
#[derive(Debug)]
pub struct Rig {
    exe: PathBuf,
    out: PathBuf,
    logs: PathBuf,
    /// Declared before `shm`: the media driver stops before its directory (inside `shm`)
    /// is removed.
    media: procs::MediaDriver,
    shm: tempfile::TempDir,
    quick: bool,
    next_stream: u32,
    spawned: u32,
    /// What every measurement's processes reported (written to `raw.json`).
    raw: Vec<serde_json::Value>,
}

impl Rig {
    fn new(out: &Path, quick: bool) -> Result<Self, CmdError> {
        let exe = std::env::current_exe()?;
        let logs = out.join("logs");
        std::fs::create_dir_all(&logs)?;
        let root = shm_root();
        let shm = tempfile::Builder::new()
            .prefix("tp-bench-")
            .tempdir_in(&root)?;
        std::fs::create_dir(shm.path().join("pool"))?;
        let aeron = shm.path().join("aeron");
        let media = procs::MediaDriver::start(&exe, &aeron, &logs)?;
        Ok(Self {
            exe,
            out: out.to_path_buf(),
            logs,
            shm,
            media,
            quick,
            next_stream: 20_000,
            spawned: 0,
            raw: Vec::new(),
        })
    }

    /// Spawns `program args...` (not this binary) as a child named `name`.
    pub fn spawn_program(
        &mut self,
        name: &str,
        program: &Path,
        args: &[String],
    ) -> Result<procs::Proc, CmdError> {
        self.spawned += 1;
        let label = format!("{:03}-{name}", self.spawned);
        procs::Proc::spawn(program, &label, args, &self.logs)
    }

    /// This binary.
    pub fn exe(&self) -> &Path {
        &self.exe
    }

    /// Spawns `tp args...` as a child named `name` (numbered, for its log file).
    pub fn spawn(&mut self, name: &str, args: &[String]) -> Result<procs::Proc, CmdError> {
        self.spawned += 1;
        let label = format!("{:03}-{name}", self.spawned);
        procs::Proc::spawn(&self.exe, &label, args, &self.logs)
    }

    /// A fresh data-source / Aeron stream id for the next measurement.
    pub fn stream_id(&mut self) -> u32 {
        self.next_stream += 1;
        self.next_stream
    }

    /// The media driver's directory.
    pub fn aeron_dir(&self) -> String {
        self.media.dir().to_string_lossy().into_owned()
    }

    /// The SHM base directory for producers' files.
    pub fn shm_dir(&self) -> String {
        self.shm.path().join("pool").to_string_lossy().into_owned()
    }

    /// A scratch path under the private directory.
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.shm.path().join(name)
    }

    /// Keeps what the processes of one measurement reported, for `raw.json`.
    pub fn record(&mut self, what: serde_json::Value) {
        self.raw.push(what);
    }

    /// Whether this is a quick run.
    pub fn quick(&self) -> bool {
        self.quick
    }

    /// The output directory (plots go there).
    pub fn out(&self) -> &Path {
        &self.out
    }
}

fn shm_root() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// `target/bench/<UTC timestamp>`.
fn default_out() -> PathBuf {
    let t = crate::cmd::util::rfc3339_utc(tensorpool_agent::realtime_ns());
    let stamp: String = t
        .chars()
        .take(19)
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .collect();
    PathBuf::from("target/bench").join(stamp)
}

/// What one benchmark produced.
#[derive(Debug, Default)]
pub struct Output {
    /// Its figures.
    pub figures: Vec<Figure>,
    /// Plot files written into the output directory (names relative to it).
    pub plots: Vec<String>,
}

fn run_one(name: Name, rig: &mut Rig) -> Result<Output, CmdError> {
    match name {
        Name::Throughput => throughput::run_throughput(rig),
        Name::Latency => latency::run(rig),
        Name::Fanout => fanout::run(rig),
        Name::Attach => attach::run(rig),
        Name::Sizes => throughput::run_sizes(rig),
        Name::Supervisor => supervisor::run(rig),
        Name::Bridge => bridge::run(rig),
        Name::Ratelimit => ratelimit::run(rig),
        Name::Starts => starts::run(rig),
        Name::All => Ok(Output::default()),
    }
}

/// Runs the benchmarks, writes the results, prints the table (or the JSON).
pub fn run(args: &Args) -> Result<(), CmdError> {
    let names: Vec<Name> = if args.names.contains(&Name::All) {
        vec![
            Name::Throughput,
            Name::Latency,
            Name::Fanout,
            Name::Attach,
            Name::Sizes,
            Name::Supervisor,
        ]
    } else {
        args.names.clone()
    };
    let out = args.out.clone().unwrap_or_else(default_out);
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut machine = Machine::probe();
    let mut rig = Rig::new(&out, args.quick)?;
    let mut figures = Vec::new();
    let mut plots = Vec::new();
    let mut failures = Vec::new();
    let started = Instant::now();
    for name in names {
        let t = Instant::now();
        eprintln!("tp bench: {} ...", name.as_str());
        machine.bench_started(name.as_str());
        let result = run_one(name, &mut rig);
        machine.bench_ended();
        match result {
            Ok(o) => {
                figures.extend(o.figures);
                plots.extend(o.plots);
                eprintln!(
                    "tp bench: {} done in {:.1} s",
                    name.as_str(),
                    t.elapsed().as_secs_f64()
                );
            }
            Err(e) => {
                eprintln!("tp bench: {} failed: {e}", name.as_str());
                failures.push(format!("{}: {e}", name.as_str()));
            }
        }
    }
    let raw = std::mem::take(&mut rig.raw);
    drop(rig);
    std::fs::write(
        out.join("raw.json"),
        serde_json::to_string_pretty(&raw)? + "\n",
    )?;
    machine.finish();
    let json = report::write(&out, &figures, &machine, &plots)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print!("{}", report::markdown(&figures, &machine, &plots));
    }
    eprintln!(
        "tp bench: {} figures in {:.1} s, written to {}",
        figures.len(),
        started.elapsed().as_secs_f64(),
        out.display()
    );
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; ").into())
    }
}
