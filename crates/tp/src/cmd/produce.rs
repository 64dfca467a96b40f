//! `tp produce`: a producer of synthetic frames that carry their own checksum.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tensorpool::prelude::*;
use tensorpool_agent::{BackoffIdleStrategy, IdleStrategy};

use super::CmdError;
use super::synth::{self, LiveStats, SynthProducer};

/// Flags of `tp produce`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Data source (pool stream id)
    #[arg(long, default_value_t = 10_000)]
    stream_id: u32,
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
    /// Frames to produce, then exit
    #[arg(long, default_value_t = 1000)]
    count: u64,
    /// Create and announce the SHM files ourselves (no SHM driver); default: attach to the
    /// SHM driver as PRODUCER
    #[arg(long)]
    standalone: bool,
    /// Driver mode: the driver's configuration file (for its control/announce endpoints and
    /// timers) [default: the Driver Model §17 defaults]
    #[arg(long, value_name = "FILE")]
    driver_config: Option<PathBuf>,
    /// Aeron directory of the media driver [default: AERON_DIR]
    #[arg(long, env = "AERON_DIR")]
    aeron_dir: PathBuf,
    /// Standalone: SHM base directory; driver mode: where the driver's files must lie
    #[arg(long, default_value = tensorpool_shm::layout::DEFAULT_BASE_DIR)]
    shm_base_dir: PathBuf,
    /// Header ring slots (power of two)
    #[arg(long, default_value_t = 64)]
    nslots: u32,
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

/// The SHM driver's endpoints: from its configuration file, or the §17 defaults.
pub fn driver_endpoints(
    config: Option<&std::path::Path>,
) -> Result<tensorpool::streams::DriverEndpoints, CmdError> {
    match config {
        None => Ok(tensorpool::streams::DriverEndpoints::default()),
        Some(path) => {
            let cfg = tensorpool::driver::DriverConfig::load(
                Some(path),
                &tensorpool::config::ProcessEnv,
            )?;
            Ok(tensorpool::streams::DriverEndpoints::of_driver(&cfg))
        }
    }
}

/// Smallest power-of-two stride (>= 64) holding `len`.
pub fn stride_for(len: usize) -> Result<u32, CmdError> {
    let s = len.max(64).next_power_of_two();
    u32::try_from(s).map_err(|_| format!("frame of {len} bytes is too large").into())
}

/// Runs the producer until `count` frames are out (or Ctrl-C).
pub fn run(args: &Args) -> Result<(), CmdError> {
    let spec = spec_of(args)?;
    let ctx = Context::connect(&args.aeron_dir)?;
    let builder = ctx.producer(args.stream_id);
    let builder = if args.standalone {
        builder
            .standalone(&args.shm_base_dir)
            .header_nslots(args.nslots)
            .pool(1, stride_for(spec.len_bytes())?)
    } else {
        builder.driver(
            driver_endpoints(args.driver_config.as_deref())?,
            &args.shm_base_dir,
        )
    };
    let producer = builder.build()?;
    eprintln!(
        "tp produce: stream {} epoch {} ({} bytes/frame, {} Hz, {} frames, {})",
        args.stream_id,
        producer.epoch().unwrap_or(0),
        spec.len_bytes(),
        args.rate,
        args.count,
        if args.standalone {
            "standalone"
        } else {
            "through the SHM driver"
        }
    );
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let _ = ctrlc::set_handler(move || s.store(true, Ordering::Release));
    let stats = Arc::new(LiveStats::default());
    let mut agent = SynthProducer::new(producer, spec, args.rate, args.count, stats.clone());
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
