//! `tp bridge --config FILE`: the Aeron UDP bridge (Bridge Spec v1.1) as its own process, on
//! the host's media driver and SHM driver. `--side sender` reads the mapped source streams
//! and sends their frames in chunks over the payload channel; `--side receiver` rebuilds them
//! into driver-attached destination streams; `both` (the default) runs the two halves.
//! SIGINT / SIGTERM stop it and print its counters.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use tensorpool::bridge::{Bridge, BridgeConfig, LocalDriver, Side};
use tensorpool::config::ProcessEnv;
use tensorpool::prelude::Context;
use tensorpool_agent::{Agent, AgentError, IdleStrategyKind, monotonic_ns};

use crate::cmd::CmdError;
use crate::cmd::notify::ServiceNotifier;
use crate::cmd::util::stop_flag;

/// Which half of the bridge to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum SideArg {
    /// Read the source streams of this host and send them.
    Sender,
    /// Receive and write the destination streams of this host.
    Receiver,
    /// Both halves.
    Both,
}

/// Flags of `tp bridge`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Bridge configuration: `[bridge]` and `[[mappings]]` (docs/bridge.md; `BRIDGE_*`
    /// environment variables override the `[bridge]` keys).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// This host's SHM driver configuration: its control and announce endpoints and
    /// `[shm]` directories [default: the Driver Model §17 defaults].
    #[arg(long, value_name = "FILE")]
    driver_config: Option<PathBuf>,
    /// This host's Aeron media driver directory [default: AERON_DIR, else driver.aeron_dir
    /// of --driver-config].
    #[arg(long, value_name = "DIR", env = "AERON_DIR")]
    aeron_dir: Option<PathBuf>,
    /// Which half to run.
    #[arg(long, value_enum, default_value_t = SideArg::Both)]
    side: SideArg,
    /// Idle strategy of the duty cycle (backoff, sleep:1ms, yield, ...).
    #[arg(long, default_value = "backoff")]
    idle: IdleStrategyKind,
}

/// Runs the bridge until SIGINT / SIGTERM.
pub fn run(args: &Args) -> Result<(), CmdError> {
    let cfg = BridgeConfig::load(Some(&args.config), &ProcessEnv)?;
    if !cfg.unknown_keys.is_empty() {
        tracing::warn!(keys = ?cfg.unknown_keys, "unknown bridge keys ignored");
    }
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    let endpoints = super::produce::driver_endpoints(args.driver_config.as_deref())?;
    let (shm_base_dir, allowed_base_dirs) = match &args.driver_config {
        Some(path) => {
            let shm = super::produce::driver_shm(path)?;
            (shm.base_dir, shm.allowed_base_dirs)
        }
        None => {
            let d = PathBuf::from("/dev/shm/tensorpool");
            (d.clone(), vec![d])
        }
    };
    let dir = super::produce::aeron_dir(args.aeron_dir.as_ref(), args.driver_config.as_deref())?;
    let ctx = Context::connect(&dir)?;
    let side = match args.side {
        SideArg::Sender => Side::Sender,
        SideArg::Receiver => Side::Receiver,
        SideArg::Both => Side::Both,
    };
    let local = LocalDriver {
        endpoints,
        shm_base_dir,
        allowed_base_dirs,
    };
    let stop = stop_flag()?;
    let mut bridge = Bridge::new(&cfg, side, &ctx, &local)?;
    println!(
        "tp bridge: ready ({} {:?}, {} mapping(s), chunks of {} bytes, destinations {:?})",
        cfg.instance_id,
        side,
        cfg.mappings.len(),
        cfg.effective_chunk_bytes(),
        bridge.dest_stream_ids()
    );
    let _ = std::io::stdout().flush();
    let mut idle = args.idle.build();
    let mut notifier = ServiceNotifier::from_env();
    notifier.ready("bridge running");
    while !stop.load(Ordering::Acquire) {
        let now = monotonic_ns();
        notifier.cycle(now);
        match bridge.do_work(now) {
            Ok(work) => idle.idle_work(work),
            Err(AgentError::Terminate) => break,
            Err(e) => tracing::warn!(error = %e, "duty cycle error"),
        }
    }
    notifier.stopping("bridge stopping");
    for (name, value) in bridge.counters().table() {
        println!("{name} = {value}");
    }
    bridge.close();
    println!("tp bridge: stopped");
    Ok(())
}
