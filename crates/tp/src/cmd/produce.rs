//! `tp produce`: a producer of synthetic frames that carry their own checksum.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tensorpool::config::{Loaded, Loader, ProcessEnv, Provenance, Source};
use tensorpool::prelude::*;
use tensorpool::producer::{ProducerConfig, RegionMode};
use tensorpool::streams::DriverEndpoints;
use tensorpool_agent::{BackoffIdleStrategy, IdleStrategy};

use super::synth::{self, LiveStats, SynthProducer};
use super::{CmdError, util};

/// Flags of `tp produce`. Role settings come from, lowest first: defaults, `--config FILE`,
/// `PRODUCER_*` environment variables, then these flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Producer configuration: the [producer] table of a TOML file (keys in docs/roles.md;
    /// with producer.use_driver, the file's [driver] and [policies] endpoints and timers)
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data source (pool stream id) [default: producer.stream_id, 10000]
    #[arg(long)]
    stream_id: Option<u32>,
    /// Tensor shape, e.g. 480x640 (default: --size bytes as a 1-D u8 tensor)
    #[arg(long)]
    shape: Option<String>,
    /// Element type: u8, i8, u16, i16, u32, i32, u64, i64, f32, f64, bool, bytes, bit
    #[arg(long, default_value = "u8")]
    dtype: Dtype,
    /// Payload bytes of a 1-D tensor (when no --shape)
    #[arg(long, default_value_t = 65_536)]
    size: usize,
    /// Frames per second (0: as fast as possible)
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Frames to produce, then exit (0: attach or create the files, announce for --linger,
    /// exit)
    #[arg(long, default_value_t = 1000)]
    count: u64,
    /// Create and announce the SHM files ourselves, no SHM driver [default:
    /// producer.use_driver, false]
    #[arg(long, conflicts_with = "driver")]
    standalone: bool,
    /// Attach to the SHM driver as PRODUCER and write into its files
    #[arg(long)]
    driver: bool,
    /// Driver mode: the driver's own configuration file, for its control/announce endpoints
    /// and timers (implies --driver) [default: the [driver] keys of --config, else Driver
    /// Model §17 defaults]
    #[arg(long, value_name = "FILE")]
    driver_config: Option<PathBuf>,
    /// Aeron directory of the media driver [default: AERON_DIR, else driver.aeron_dir of
    /// --config]
    #[arg(long, env = "AERON_DIR")]
    aeron_dir: Option<PathBuf>,
    /// Standalone: SHM base directory; driver mode: where the driver's files must lie
    /// [default: producer.shm_base_dir, /dev/shm/tensorpool]
    #[arg(long)]
    shm_base_dir: Option<PathBuf>,
    /// Header ring slots, a power of two [default: producer.header_nslots, 64]
    #[arg(long)]
    nslots: Option<u32>,
    /// Seconds to keep announcing after the last frame (lets consumers drain)
    #[arg(long, default_value_t = 0.5)]
    linger: f64,
}

fn spec_of(args: &Args) -> Result<TensorSpec, CmdError> {
    let shape = match &args.shape {
        Some(s) => synth::parse_shape(s)?,
        None => vec![args.size / args.dtype.size_bytes()],
    };
    Ok(TensorSpec::new(args.dtype, &shape)?)
}

/// The SHM driver's endpoints: from its configuration file, or the §17 defaults (with the
/// driver's environment overrides).
pub fn driver_endpoints(config: Option<&Path>) -> Result<DriverEndpoints, CmdError> {
    match config {
        None => Ok(DriverEndpoints::from_loader(&mut Loader::empty(
            &ProcessEnv,
        ))?),
        Some(path) => {
            let cfg = tensorpool::driver::DriverConfig::load(Some(path), &ProcessEnv)?;
            Ok(DriverEndpoints::of_driver(&cfg))
        }
    }
}

/// Where a role given `--driver-config FILE` finds the driver's files: that file's `[shm]`
/// table read as the driver reads it (`shm.base_dir`, and `shm.allowed_base_dirs`, which
/// defaults to `[shm.base_dir]`).
pub fn driver_shm(path: &Path) -> Result<tensorpool::driver::config::ShmSection, CmdError> {
    Ok(tensorpool::driver::DriverConfig::load(Some(path), &ProcessEnv)?.shm)
}

/// Whether `key` was given by the role's own table or environment (not a default).
pub fn given(p: &Provenance, key: &str) -> bool {
    p.source(key).is_some_and(|s| *s != Source::Default)
}

/// The producer's configuration as `tp produce` resolves it before its flags: defaults, the
/// `[producer]` table of `config`, `PRODUCER_*` variables; with `driver_config`, a
/// `producer.shm_base_dir` given by neither is the driver file's `shm.base_dir` (recorded
/// with that source).
pub fn load_producer(
    config: Option<&Path>,
    driver_config: Option<&Path>,
) -> Result<Loaded<ProducerConfig>, CmdError> {
    let mut loaded = ProducerConfig::load(config, &ProcessEnv)?;
    if let Some(path) = driver_config
        && !given(&loaded.provenance, "producer.shm_base_dir")
    {
        let shm = driver_shm(path)?;
        loaded.provenance.record_from(
            "producer.shm_base_dir",
            &shm.base_dir.display().to_string(),
            Source::Peer(format!("driver file {} (shm.base_dir)", path.display())),
        );
        loaded.config.shm_base_dir = shm.base_dir;
    }
    Ok(loaded)
}

/// Smallest power-of-two stride (>= 64) holding `len`.
pub fn stride_for(len: usize) -> Result<u32, CmdError> {
    let s = len.max(64).next_power_of_two();
    u32::try_from(s).map_err(|_| format!("frame of {len} bytes is too large").into())
}

/// The Aeron directory: `--aeron-dir` / `AERON_DIR`, else `driver.aeron_dir` of the role's
/// configuration file (read as the driver reads it).
pub fn aeron_dir(flag: Option<&PathBuf>, config: Option<&Path>) -> Result<PathBuf, CmdError> {
    if let Some(d) = flag {
        return Ok(d.clone());
    }
    let mut l = Loader::open(config, &ProcessEnv)?;
    let section = tensorpool::driver::config::DriverSection::from_loader(&mut l)?;
    section.aeron_dir.ok_or_else(|| {
        "no Aeron directory: give --aeron-dir, set AERON_DIR, or driver.aeron_dir in --config"
            .into()
    })
}

/// Warns about keys of the role's table that nobody knows.
pub fn warn_unknown(keys: &[String]) {
    for key in keys {
        eprintln!("warning: unknown key {key} (ignored)");
    }
}

/// The producer configuration: defaults, file, environment, then flags.
fn config_of(args: &Args, spec: &TensorSpec) -> Result<ProducerConfig, CmdError> {
    let loaded = load_producer(args.config.as_deref(), args.driver_config.as_deref())?;
    warn_unknown(&loaded.unknown_keys);
    let mut cfg = loaded.config;
    let given = |key: &str| given(&loaded.provenance, key);
    if let Some(id) = args.stream_id {
        cfg.stream_id = id;
    }
    if let Some(dir) = &args.shm_base_dir {
        cfg.shm_base_dir = dir.clone();
    }
    if let Some(n) = args.nslots {
        cfg.header_nslots = n;
    }
    // Without a configured stride, the smallest that holds one frame.
    if !given("producer.pool_stride_bytes") {
        cfg.pools[0].stride_bytes = stride_for(spec.len_bytes())?;
    }
    if args.standalone {
        cfg.mode = RegionMode::Standalone;
    } else if args.driver_config.is_some() {
        cfg.mode = RegionMode::Driver(driver_endpoints(args.driver_config.as_deref())?);
    } else if args.driver && cfg.mode == RegionMode::Standalone {
        let mut l = Loader::open(args.config.as_deref(), &ProcessEnv)?;
        cfg.mode = RegionMode::Driver(DriverEndpoints::from_loader(&mut l)?);
    }
    Ok(cfg)
}

/// Runs the producer until `count` frames are out (or Ctrl-C).
pub fn run(args: &Args) -> Result<(), CmdError> {
    let spec = spec_of(args)?;
    let cfg = config_of(args, &spec)?;
    let dir = aeron_dir(args.aeron_dir.as_ref(), args.config.as_deref())?;
    let ctx = Context::connect(&dir)?;
    let standalone = cfg.mode == RegionMode::Standalone;
    let stream_id = cfg.stream_id;
    let producer = ctx.producer(stream_id).config(cfg).build()?;
    eprintln!(
        "tp produce: stream {} epoch {} ({} bytes/frame, {} Hz, {} frames, {})",
        stream_id,
        producer.epoch().unwrap_or(0),
        spec.len_bytes(),
        args.rate,
        args.count,
        if standalone {
            "standalone"
        } else {
            "through the SHM driver"
        }
    );
    let stop = util::stop_flag()?;
    let stats = Arc::new(LiveStats::default());
    let mut agent = SynthProducer::new(producer, spec, args.rate, args.count, stats.clone());
    if args.count == 0 {
        stats.done.store(true, Ordering::Release);
    }
    let mut idle =
        BackoffIdleStrategy::new(10, 10, Duration::from_micros(1), Duration::from_micros(200));
    let mut linger_until = None;
    while !stop.load(Ordering::Acquire) {
        let now = tensorpool::monotonic_ns();
        let work = tensorpool_agent::Agent::do_work(&mut agent, now).unwrap_or(0);
        idle.idle_work(work);
        if stats.done.load(Ordering::Acquire) {
            let until = *linger_until.get_or_insert(now + (args.linger * 1e9) as u64);
            if now >= until {
                break;
            }
        }
    }
    let c = agent.producer.counters();
    agent.producer.close();
    println!(
        "tp produce: committed {} frames, {} descriptors ({} back-pressured, {} other failures), {} consumers",
        c.committed,
        c.descriptors_sent + c.descriptors_per_consumer,
        c.descriptors_back_pressured,
        c.descriptor_failures,
        agent.producer.consumer_count()
    );
    Ok(())
}
