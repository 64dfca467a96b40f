//! `tp ratelimit`: the rate limiter / decimator (RateLimiter v1.0) as its own process. Reads
//! each mapping's source stream as a consumer, republishes the selected frames on the
//! destination stream as the driver-attached producer of it. SIGINT / SIGTERM stop it and
//! print each mapping's counters.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use tensorpool::config::ProcessEnv;
use tensorpool::prelude::Context;
use tensorpool::ratelimiter::{RateLimiter, RateLimiterConfig};
use tensorpool_agent::{Agent, AgentError, IdleStrategyKind, monotonic_ns};

use crate::cmd::CmdError;
use crate::cmd::notify::ServiceNotifier;
use crate::cmd::util::stop_flag;

/// Flags of `tp ratelimit`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file: `[rate_limiter]` and `[[mappings]]` (RateLimiter §8; docs/roles.md;
    /// environment variables `RATE_LIMITER_*` override the `[rate_limiter]` keys).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// The SHM driver's own configuration file: its control and announce endpoints and its
    /// timers (keepalive, announce period) replace the `rate_limiter.driver_*` keys and the
    /// Driver Model defaults.
    #[arg(long, value_name = "FILE")]
    driver_config: Option<PathBuf>,
    /// Aeron directory of the media driver [default: AERON_DIR, else rate_limiter.aeron_dir].
    #[arg(long, env = "AERON_DIR")]
    aeron_dir: Option<PathBuf>,
    /// Idle strategy of the duty cycle (backoff, sleep:1ms, yield, ...).
    #[arg(long, default_value = "backoff")]
    idle: IdleStrategyKind,
}

/// Loads the configuration as `tp ratelimit` does (`tp config validate --role ratelimit`).
pub(crate) fn load(config: &Path) -> Result<RateLimiterConfig, CmdError> {
    Ok(RateLimiterConfig::load(Some(config), &ProcessEnv)?)
}

/// Runs the rate limiter until SIGINT / SIGTERM.
pub fn run(args: &Args) -> Result<(), CmdError> {
    let cfg = load(&args.config)?;
    for key in &cfg.unknown_keys {
        tracing::warn!(key, "unknown [rate_limiter] key ignored");
    }
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    let driver = match &args.driver_config {
        Some(path) => {
            let d = tensorpool::driver::DriverConfig::load(Some(path), &ProcessEnv)?;
            tensorpool::streams::DriverEndpoints {
                attach_timeout: cfg.attach_timeout(),
                ..tensorpool::streams::DriverEndpoints::of_driver(&d)
            }
        }
        None => cfg.driver_endpoints(),
    };
    let dir = args
        .aeron_dir
        .clone()
        .or_else(|| cfg.aeron_dir.clone())
        .ok_or("no Aeron directory: give --aeron-dir, set AERON_DIR, or rate_limiter.aeron_dir")?;
    let stop = stop_flag()?;
    let ctx = Context::connect(&dir)?;
    let mut rl = RateLimiter::with_driver(cfg, driver, ctx)?;
    for (i, m) in rl.mappings().enumerate() {
        println!(
            "mapping {i}: {} -> {} ({}) dest_epoch={}",
            m.source_stream_id,
            m.dest_stream_id,
            m.policy.describe(),
            rl.dest_epoch(i).unwrap_or(0)
        );
    }
    println!("tp ratelimit: ready");
    let _ = std::io::stdout().flush();
    let mut idle = args.idle.build();
    let mut notifier = ServiceNotifier::from_env();
    notifier.ready("rate limiter running");
    while !stop.load(Ordering::Acquire) {
        let now = monotonic_ns();
        notifier.cycle(now);
        match rl.do_work(now) {
            Ok(work) => idle.idle_work(work),
            Err(AgentError::Terminate) => break,
            Err(e) => tracing::warn!(error = %e, "duty cycle error"),
        }
    }
    notifier.stopping("rate limiter stopping");
    let dests: Vec<u32> = rl.mappings().map(|m| m.dest_stream_id).collect();
    for (i, dest) in dests.iter().enumerate() {
        for (name, value) in rl.core().counters(i).table() {
            println!("mapping {i} (dest {dest}): {name} = {value}");
        }
    }
    println!("tp ratelimit: stopped");
    drop(rl);
    Ok(())
}
