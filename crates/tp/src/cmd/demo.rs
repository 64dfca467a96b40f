//! `tp demo`: an embedded Aeron media driver, one producer and two consumers (STREAM and
//! RATE_LIMITED) as agents on runner threads in one process, a live line per role on stderr,
//! a summary at the end, and nothing left behind (SHM files and Aeron directory removed).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tensorpool::consumer::Mode;
use tensorpool::prelude::*;
use tensorpool::streams::DriverEndpoints;
use tensorpool_agent::{AgentError, AgentRunner, BackoffIdleStrategy, MonotonicClock};

use super::produce::stride_for;
use super::synth::{self, ConsumerSummary, LiveStats, StatsConsumer, SynthProducer};
use super::{CmdError, util};

/// Flags of `tp demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Frames to produce before the summary
    #[arg(long, default_value_t = 5000)]
    frames: u64,
    /// Producer rate, frames per second
    #[arg(long, default_value_t = 500.0)]
    rate: f64,
    /// Tensor shape
    #[arg(long, default_value = "480x640")]
    shape: String,
    /// Element type
    #[arg(long, default_value = "u16")]
    dtype: Dtype,
    /// Rate cap of the RATE_LIMITED consumer
    #[arg(long, default_value_t = 30)]
    limited_hz: u32,
    /// Header ring slots
    #[arg(long, default_value_t = 64)]
    nslots: u32,
    /// Print the summary as one JSON object on the last line of stdout
    #[arg(long)]
    json: bool,
    /// Run without the SHM driver: the producer creates and announces its own files
    #[arg(long)]
    standalone: bool,
}

fn idle() -> BackoffIdleStrategy {
    BackoffIdleStrategy::new(10, 10, Duration::from_micros(1), Duration::from_micros(200))
}

struct Role {
    name: &'static str,
    mode: &'static str,
    stats: Arc<LiveStats>,
    summary: Option<Arc<Mutex<Option<ConsumerSummary>>>>,
    runner: Option<AgentRunner>,
}

fn line(role: &Role, dt: f64, last: &mut (u64, u64)) -> String {
    let s = &role.stats;
    let frames = s.frames.load(Ordering::Relaxed);
    let bytes = s.bytes.load(Ordering::Relaxed);
    let fps = (frames - last.0) as f64 / dt;
    let gbps = (bytes - last.1) as f64 / dt / 1e9;
    *last = (frames, bytes);
    let mut l = format!(
        "{:<18} {:>8.0} frames/s {:>6.2} GB/s  total {frames:>7}",
        role.name, fps, gbps
    );
    if role.summary.is_some() {
        l += &format!(
            "  drops {:>6}  corrupt {}  p50 {:>5} us  p99 {:>6} us",
            s.drops.load(Ordering::Relaxed),
            s.corrupt.load(Ordering::Relaxed),
            s.p50_us.load(Ordering::Relaxed),
            s.p99_us.load(Ordering::Relaxed)
        );
    }
    l
}

/// Runs the demo.
pub fn run(args: &Args) -> Result<(), CmdError> {
    let shape = synth::parse_shape(&args.shape)?;
    let spec = TensorSpec::new(args.dtype, &shape)?;
    let stop = util::stop_flag()?;

    let ctx = Context::embedded()?;
    let aeron_dir = ctx.aeron_dir();
    let shm = tempfile::Builder::new()
        .prefix("tensorpool-demo-")
        .tempdir_in(shm_root())?;
    eprintln!(
        "tp demo: Aeron media driver embedded at {}",
        aeron_dir.display()
    );
    let stream_id = 10_000;
    let stride = stride_for(spec.len_bytes())?;
    let (shm_driver, endpoints) = region_source(args, &aeron_dir, shm.path(), stream_id, stride)?;
    eprintln!(
        "tp demo: {} frames of {} {} ({} bytes) at {} Hz; consumers: STREAM, RATE_LIMITED {} Hz",
        args.frames,
        args.shape,
        args.dtype,
        spec.len_bytes(),
        args.rate,
        args.limited_hz
    );
    let builder = ctx.producer(stream_id);
    let producer = match &endpoints {
        Some(e) => builder.driver(e.clone(), shm.path()).build()?,
        None => builder
            .standalone(shm.path())
            .header_nslots(args.nslots)
            .pool(1, stride)
            .build()?,
    };
    let mut roles = start_consumers(
        &ctx,
        stream_id,
        args.limited_hz,
        shm.path(),
        endpoints.as_ref(),
    )?;
    let pstats = Arc::new(LiveStats::default());
    let agent = SynthProducer::new(producer, spec, args.rate, args.frames, pstats.clone());
    let runner = AgentRunner::start(agent, idle(), MonotonicClock, None)?;
    roles.insert(
        0,
        Role {
            name: "producer",
            mode: "",
            stats: pstats.clone(),
            summary: None,
            runner: Some(runner),
        },
    );

    let started = Instant::now();
    display_until_done(&roles, &pstats, &stop);
    let elapsed = started.elapsed().as_secs_f64();
    for r in roles.iter_mut().rev() {
        if let Some(runner) = r.runner.take() {
            runner.close()?;
        }
    }
    if let Some(d) = shm_driver {
        d.close()?;
    }
    drop(ctx);
    drop(shm);
    summarize(args, &roles, &pstats, elapsed, &aeron_dir)
}

/// The SHM driver on its own thread, or nothing with `--standalone`.
fn region_source(
    args: &Args,
    aeron_dir: &std::path::Path,
    shm: &std::path::Path,
    stream_id: u32,
    stride: u32,
) -> Result<(Option<AgentRunner>, Option<DriverEndpoints>), CmdError> {
    let source = if args.standalone {
        eprintln!(
            "tp demo: --standalone: the producer creates, announces and removes its own files under {}",
            shm.display()
        );
        (None, None)
    } else {
        let (runner, endpoints) = start_shm_driver(aeron_dir, shm, stream_id, args.nslots, stride)?;
        eprintln!(
            "tp demo: SHM driver running (files under {}); producer and consumers attach through it",
            shm.display()
        );
        (Some(runner), Some(endpoints))
    };
    Ok(source)
}

/// The two consumers (STREAM and RATE_LIMITED) on their runner threads.
fn start_consumers(
    ctx: &Context,
    stream_id: u32,
    limited_hz: u32,
    shm: &std::path::Path,
    endpoints: Option<&DriverEndpoints>,
) -> Result<Vec<Role>, CmdError> {
    let mut roles = Vec::new();
    let modes = [
        ("consumer-stream", "STREAM", Mode::Stream),
        (
            "consumer-limited",
            "RATE_LIMITED",
            Mode::RateLimited {
                max_rate_hz: limited_hz,
            },
        ),
    ];
    for (name, mode_name, mode) in modes {
        let mut builder = ctx.consumer(stream_id).mode(mode).allowed_base_dir(shm);
        if let Some(e) = endpoints {
            builder = builder.driver(e.clone());
        }
        let consumer = builder.build()?;
        let stats = Arc::new(LiveStats::default());
        let agent = StatsConsumer::new(consumer, true, stats.clone());
        let summary = agent.summary.clone();
        let runner = AgentRunner::start(agent, idle(), MonotonicClock, None)?;
        roles.push(Role {
            name,
            mode: mode_name,
            stats,
            summary: Some(summary),
            runner: Some(runner),
        });
    }
    Ok(roles)
}

/// A line per role every 500 ms until the producer is done and the STREAM consumer caught up
/// (at most 2 s more), or Ctrl-C.
fn display_until_done(roles: &[Role], pstats: &LiveStats, stop: &AtomicBool) {
    let mut lasts = vec![(0u64, 0u64); roles.len()];
    let mut tick = Instant::now();
    let mut done_at: Option<Instant> = None;
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(100));
        if tick.elapsed() >= Duration::from_millis(500) {
            let dt = tick.elapsed().as_secs_f64();
            tick = Instant::now();
            let mut err = std::io::stderr().lock();
            for (r, last) in roles.iter().zip(lasts.iter_mut()) {
                let _ = writeln!(err, "{}", line(r, dt, last));
            }
        }
        if pstats.done.load(Ordering::Acquire) {
            let t = *done_at.get_or_insert_with(Instant::now);
            let last = pstats.last_seq.load(Ordering::Relaxed);
            let stream_caught_up = roles[1].stats.last_seq.load(Ordering::Relaxed) >= last;
            if stream_caught_up || t.elapsed() > Duration::from_secs(2) {
                break;
            }
        }
    }
}

/// The SHM driver as an agent on its own thread, provisioning the demo stream.
fn start_shm_driver(
    aeron_dir: &std::path::Path,
    base: &std::path::Path,
    stream_id: u32,
    nslots: u32,
    stride: u32,
) -> Result<(AgentRunner, DriverEndpoints), CmdError> {
    let text = format!(
        "[driver]\ninstance_id = \"tp-demo\"\n[shm]\nbase_dir = \"{}\"\n[policies]\nprefault_shm = true\n\
         [profiles.demo]\nheader_nslots = {nslots}\npayload_pools = [{{ pool_id = 1, stride_bytes = {stride} }}]\n\
         [streams.demo]\nstream_id = {stream_id}\nprofile = \"demo\"\n",
        base.display()
    );
    let cfg = tensorpool::driver::DriverConfig::from_toml(&text, &tensorpool::config::NoEnv)?;
    let endpoints = DriverEndpoints::of_driver(&cfg);
    let dir = aeron_dir.to_path_buf();
    let runner = AgentRunner::spawn(
        "shm-driver",
        move || {
            let aeron = tensorpool_aeron::AeronClient::connect(&dir, Duration::from_secs(10))
                .map_err(AgentError::failed)?;
            tensorpool::driver::ShmDriver::new(cfg, aeron, tensorpool::monotonic_ns())
                .map_err(AgentError::failed)
        },
        idle(),
        MonotonicClock,
        None,
    )?;
    Ok((runner, endpoints))
}

fn shm_root() -> std::path::PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

fn summarize(
    args: &Args,
    roles: &[Role],
    pstats: &LiveStats,
    elapsed: f64,
    aeron_dir: &std::path::Path,
) -> Result<(), CmdError> {
    let produced = pstats.frames.load(Ordering::Relaxed);
    println!("tp demo: produced {produced} frames in {elapsed:.1} s");
    let mut consumers = Vec::new();
    let mut corrupt_total = 0;
    for r in roles.iter().filter(|r| r.summary.is_some()) {
        let s = r.summary.as_ref().and_then(|m| m.lock().ok()?.clone());
        let Some(s) = s else { continue };
        corrupt_total += s.corrupt;
        println!(
            "  {:<18} {:<13} accepted {:>6}  drops {:>6} (gap {})  corrupt {}  latency p50 {} us p99 {} us",
            r.name,
            r.mode,
            s.accepted,
            s.drops.total(),
            s.drops.gap,
            s.corrupt,
            s.p50_us,
            s.p99_us
        );
        consumers.push(serde_json::json!({
            "name": r.name,
            "mode": r.mode,
            "accepted": s.accepted,
            "drops": s.drops_json(),
            "corrupt": s.corrupt,
            "latency_us": {"p50": s.p50_us, "p99": s.p99_us},
        }));
    }
    let clean = !aeron_dir.exists();
    println!("tp demo: Aeron directory removed: {clean}; SHM files removed: true");
    if args.json {
        println!(
            "{}",
            serde_json::json!({"frames_produced": produced, "consumers": consumers})
        );
    }
    if corrupt_total > 0 {
        return Err(format!("{corrupt_total} accepted frames failed their checksum").into());
    }
    Ok(())
}
