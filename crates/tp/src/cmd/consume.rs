//! `tp consume`: a consumer that prints its rate, drops by cause and latency, and with
//! `--verify` checks the checksum every `tp produce` frame carries; `--sum` sums every byte.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tensorpool::config::{Loaded, Loader, ProcessEnv, Source};
use tensorpool::consumer::{ConsumerConfig, Mode};
use tensorpool::prelude::*;
use tensorpool::streams::DriverEndpoints;
use tensorpool_agent::{BackoffIdleStrategy, IdleStrategy};

use super::synth::{ConsumerSummary, Verifier};
use super::{CmdError, util};

/// Delivery mode flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeArg {
    /// Every frame.
    Stream,
    /// At most --max-rate-hz frames per second.
    RateLimited,
}

/// Flags of `tp consume`. Role settings come from, lowest first: defaults, `--config FILE`,
/// `CONSUMER_*` environment variables, then these flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Consumer configuration: the [consumer] table of a TOML file (keys in docs/roles.md;
    /// with consumer.use_driver, the file's [driver] and [policies] endpoints and timers)
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data source (pool stream id) [default: consumer.stream_id, 10000]
    #[arg(long)]
    stream_id: Option<u32>,
    /// Delivery mode [default: consumer.mode, stream]
    #[arg(long, value_enum)]
    mode: Option<ModeArg>,
    /// Rate cap in rate-limited mode [default: consumer.max_rate_hz, 0]
    #[arg(long)]
    max_rate_hz: Option<u32>,
    /// Exit after this many accepted frames
    #[arg(long)]
    count: Option<u64>,
    /// Exit after this many seconds
    #[arg(long)]
    duration: Option<f64>,
    /// Exit as soon as the consumer has mapped an epoch, after printing `tp consume: mapped
    /// epoch N` (start-up checks, `tp bench starts`)
    #[arg(long)]
    exit_when_mapped: bool,
    /// Check the seq + CRC32C every `tp produce` payload carries
    #[arg(long)]
    verify: bool,
    /// Sum every byte of each accepted frame into a u64 (the per-frame work of the Python
    /// benchmark, scripts/py-bench); the summary reports frames summed and the total
    #[arg(long)]
    sum: bool,
    /// Aeron directory of the media driver [default: AERON_DIR, else driver.aeron_dir of
    /// --config]
    #[arg(long, env = "AERON_DIR")]
    aeron_dir: Option<PathBuf>,
    /// Directory announced regions must lie in [default: consumer.allowed_base_dirs,
    /// /dev/shm/tensorpool]
    #[arg(long)]
    allowed_base_dir: Option<PathBuf>,
    /// Print the summary as one JSON object on the last line
    #[arg(long)]
    json: bool,
    /// Attach through the SHM driver as CONSUMER [default: consumer.use_driver, false:
    /// follow the announces of a standalone producer]
    #[arg(long)]
    driver: bool,
    /// Driver mode: the driver's own configuration file (implies --driver) [default: the
    /// [driver] keys of --config, else Driver Model §17 defaults]
    #[arg(long, value_name = "FILE")]
    driver_config: Option<PathBuf>,
}

/// The consumer's configuration as `tp consume` resolves it before its flags: defaults, the
/// `[consumer]` table of `config`, `CONSUMER_*` variables; with `driver_config`,
/// `consumer.allowed_base_dirs` given by neither is the driver file's `shm.allowed_base_dirs`
/// (itself `[shm.base_dir]` unless set; recorded with that source).
pub fn load_consumer(
    config: Option<&std::path::Path>,
    driver_config: Option<&std::path::Path>,
) -> Result<Loaded<ConsumerConfig>, CmdError> {
    let mut loaded = ConsumerConfig::load(config, &ProcessEnv)?;
    if let Some(path) = driver_config
        && !super::produce::given(&loaded.provenance, "consumer.allowed_base_dirs")
    {
        let shm = super::produce::driver_shm(path)?;
        let dirs: Vec<String> = shm
            .allowed_base_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        loaded.provenance.record_from(
            "consumer.allowed_base_dirs",
            &dirs,
            Source::Peer(format!(
                "driver file {} (shm.allowed_base_dirs)",
                path.display()
            )),
        );
        loaded.config.allowed_base_dirs = shm.allowed_base_dirs;
    }
    Ok(loaded)
}

/// The consumer configuration: defaults, file, environment, then flags.
fn config_of(args: &Args) -> Result<ConsumerConfig, CmdError> {
    let loaded = load_consumer(args.config.as_deref(), args.driver_config.as_deref())?;
    super::produce::warn_unknown(&loaded.unknown_keys);
    let mut cfg = loaded.config;
    if let Some(id) = args.stream_id {
        cfg.stream_id = id;
    }
    let rate = args.max_rate_hz.unwrap_or(cfg.mode.max_rate_hz());
    match args.mode {
        Some(ModeArg::Stream) => cfg.mode = Mode::Stream,
        Some(ModeArg::RateLimited) => cfg.mode = Mode::RateLimited { max_rate_hz: rate },
        None => {
            if let Mode::RateLimited { max_rate_hz } = &mut cfg.mode {
                *max_rate_hz = rate;
            }
        }
    }
    if let Some(dir) = &args.allowed_base_dir {
        cfg.allowed_base_dirs = vec![dir.clone()];
    }
    if args.driver_config.is_some() {
        cfg.driver = Some(super::produce::driver_endpoints(
            args.driver_config.as_deref(),
        )?);
    } else if args.driver && cfg.driver.is_none() {
        let mut l = Loader::open(args.config.as_deref(), &ProcessEnv)?;
        cfg.driver = Some(DriverEndpoints::from_loader(&mut l)?);
    }
    Ok(cfg)
}

/// Runs the consumer until --count, --duration or Ctrl-C.
pub fn run(args: &Args) -> Result<(), CmdError> {
    let cfg = config_of(args)?;
    let dir = super::produce::aeron_dir(args.aeron_dir.as_ref(), args.config.as_deref())?;
    let ctx = Context::connect(&dir)?;
    let mut consumer = ctx.consumer(cfg.stream_id).config(cfg).build()?;
    let stop = util::stop_flag()?;
    let mut v = Verifier::new(args.verify);
    v.sum = args.sum;
    let mut idle =
        BackoffIdleStrategy::new(10, 10, Duration::from_micros(1), Duration::from_micros(200));
    let start = Instant::now();
    let end = args.duration.map(|d| start + Duration::from_secs_f64(d));
    let mut next_line = start + Duration::from_secs(1);
    let mut last_frames = 0;
    let mut first_frame: Option<Duration> = None;
    while !stop.load(Ordering::Acquire) {
        let work = consumer.poll_handler(&mut v, 64)?;
        idle.idle_work(work);
        let now = Instant::now();
        let accepted = consumer.counters().accepted;
        if first_frame.is_none() && accepted > 0 {
            first_frame = Some(now - start);
        }
        if args.count.is_some_and(|c| accepted >= c) || end.is_some_and(|e| now >= e) {
            break;
        }
        if args.exit_when_mapped
            && let ConsumerState::Mapped { epoch } = consumer.state()
        {
            eprintln!("tp consume: mapped epoch {epoch}");
            break;
        }
        if now >= next_line {
            next_line = now + Duration::from_secs(1);
            eprintln!(
                "tp consume: {:?} {} frames/s, accepted {accepted}, drops {} (gap {}), corrupt {}, p50 {} us p99 {} us",
                consumer.state(),
                accepted - last_frames,
                consumer.drops().total(),
                consumer.drops().gap,
                v.corrupt,
                v.hist.value_at_quantile(0.5),
                v.hist.value_at_quantile(0.99),
            );
            last_frames = accepted;
        }
    }
    let s = ConsumerSummary::of(&consumer, &v);
    let rejection = consumer
        .last_rejection()
        .map(|r| serde_json::json!({"reason": r.reason, "epoch": r.epoch, "at": r.at_unix_ns}));
    let supervised = serde_json::json!({
        "mode": mode_name(consumer.effective_mode()),
        "configs": consumer.counters().configs,
        "descriptor_stream_id": consumer.descriptor_assignment().map(|(_, id)| id),
        "fallback_frames": consumer.counters().fallback_frames,
        "fallback_source": consumer.fallback_source().map(|(ch, id)| serde_json::json!({"channel": ch, "stream_id": id})),
    });
    report(
        args,
        &s,
        (
            start.elapsed().as_secs_f64(),
            first_frame.map(|d| d.as_secs_f64()),
        ),
        consumer.state(),
        rejection,
        supervised,
    );
    if args.verify && s.corrupt > 0 {
        return Err(format!("{} accepted frames failed their checksum", s.corrupt).into());
    }
    Ok(())
}

/// The consumer state as `tp consume --json` names it (W §15.12): `unmapped`, `mapped` or
/// `fallback`.
fn state_name(state: tensorpool::consumer::ConsumerState) -> &'static str {
    use tensorpool::consumer::ConsumerState;
    match state {
        ConsumerState::Unmapped => "unmapped",
        ConsumerState::Mapped { .. } => "mapped",
        ConsumerState::Fallback => "fallback",
    }
}

/// The delivery mode in force as `tp consume --json` names it: `stream` or `rate_limited`.
fn mode_name(mode: tensorpool_codec::wire::Mode) -> String {
    match mode {
        tensorpool_codec::wire::Mode::Stream => "stream".into(),
        tensorpool_codec::wire::Mode::RateLimited => "rate_limited".into(),
        #[allow(unreachable_patterns)]
        other => format!("{other:?}").to_lowercase(),
    }
}

/// The mapped epoch (`null` unless mapped).
fn state_epoch(state: tensorpool::consumer::ConsumerState) -> Option<u64> {
    match state {
        tensorpool::consumer::ConsumerState::Mapped { epoch } => Some(epoch),
        _ => None,
    }
}

/// Prints the summary (and with `--json` one JSON object on the last line).
fn report(
    args: &Args,
    s: &ConsumerSummary,
    (secs, first_frame_s): (f64, Option<f64>),
    state: tensorpool::consumer::ConsumerState,
    last_rejection: Option<serde_json::Value>,
    supervised: serde_json::Value,
) {
    println!(
        "tp consume: accepted {} frames in {secs:.1} s ({:.1} frames/s), corrupt {}, latency p50 {} us p99 {} us",
        s.accepted,
        s.accepted as f64 / secs.max(1e-9),
        s.corrupt,
        s.p50_us,
        s.p99_us
    );
    if let Some((frames, total)) = s.sum {
        println!("  sum of every byte: {total} over {frames} frames");
    }
    for (cause, n) in s.drops.iter() {
        println!("  drops {}: {n}", cause.name());
    }
    if s.drops.gap > 0 {
        println!("  drops gap: {}", s.drops.gap);
    }
    if args.json {
        let j = serde_json::json!({
            "accepted": s.accepted,
            "drops": s.drops_json(),
            "corrupt": s.corrupt,
            "latency_us": {"p50": s.p50_us, "p99": s.p99_us},
            "state": state_name(state),
            "epoch": state_epoch(state),
            "last_rejection": last_rejection,
            "mode": supervised["mode"],
            "configs": supervised["configs"],
            "descriptor_stream_id": supervised["descriptor_stream_id"],
            "fallback_frames": supervised["fallback_frames"],
            "fallback_source": supervised["fallback_source"],
            "elapsed_s": secs,
            "first_frame_s": first_frame_s,
            "sum": s.sum.map(|(frames, total)| serde_json::json!({"frames": frames, "total": total})),
        });
        println!("{j}");
    }
}
