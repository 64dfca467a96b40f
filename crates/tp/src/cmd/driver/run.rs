//! `tp driver`: the driver process. SIGINT / SIGTERM drain it like an authenticated shutdown
//! request with reason NORMAL (Driver Model §4.13). A `[supervisor]` table in its file runs
//! the supervisor in the same process and duty cycle (as the C driver embeds it).

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tensorpool::config::{Loader, NoEnv, ProcessEnv};
use tensorpool::driver::{DriverConfig, ShmDriver};
use tensorpool::supervisor::Supervisor;
use tensorpool_aeron::{AeronClient, EmbeddedMediaDriver, MediaDriverConfig};
use tensorpool_agent::{Agent, AgentError, IdleStrategyKind, monotonic_ns};
use tensorpool_codec::driver::ShutdownReason;

use crate::cmd::CmdError;
use crate::cmd::notify::ServiceNotifier;
use crate::cmd::util::stop_flag;

/// Flags of `tp driver` (running it).
#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// Configuration file (Driver Model §17 keys; environment variables override them).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Use the external Aeron media driver in this directory [default: driver.aeron_dir;
    /// without either, an embedded media driver in a private directory under /dev/shm].
    #[arg(long, value_name = "DIR")]
    aeron_dir: Option<PathBuf>,
    /// Idle strategy of the duty cycle (backoff, sleep:1ms, yield, ...).
    #[arg(long, default_value = "backoff")]
    idle: IdleStrategyKind,
}

/// Runs the driver until it has shut down.
pub(crate) fn run(args: &RunArgs) -> Result<(), CmdError> {
    let cfg = DriverConfig::load(args.config.as_deref(), &ProcessEnv)?;
    // a [supervisor] table runs the supervisor in this process (as the C driver does)
    let supervisor_cfg = match args.config.as_deref() {
        Some(path)
            if Loader::open(Some(path), &NoEnv)?
                .raw("supervisor")
                .is_some() =>
        {
            Some(crate::cmd::supervisor::load(Some(path), None)?)
        }
        _ => None,
    };
    let unknown: Vec<&String> = cfg
        .unknown_keys
        .iter()
        .filter(|k| supervisor_cfg.is_none() || !k.starts_with("supervisor."))
        .collect();
    if !unknown.is_empty() {
        tracing::warn!(keys = ?unknown, "unknown configuration keys ignored");
    }
    if let Some(s) = &supervisor_cfg {
        if !s.unknown_keys.is_empty() {
            tracing::warn!(keys = ?s.unknown_keys, "unknown [supervisor] keys ignored");
        }
        for w in &s.warnings {
            tracing::warn!("{w}");
        }
    }
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    let stop = stop_flag()?;
    let external = args
        .aeron_dir
        .clone()
        .or_else(|| cfg.driver.aeron_dir.clone());
    let (media, dir) = match external {
        Some(dir) => (None, dir),
        None => {
            let m = EmbeddedMediaDriver::start(MediaDriverConfig::default())?;
            let dir = m.dir().to_path_buf();
            (Some(m), dir)
        }
    };
    let aeron = AeronClient::connect(&dir, Duration::from_secs(10))?;
    let mut driver = ShmDriver::new(cfg, aeron, monotonic_ns())?;
    let mut supervisor = match supervisor_cfg {
        Some(c) => {
            let aeron = AeronClient::connect(&dir, Duration::from_secs(10))?;
            Some(Supervisor::new(c, aeron, monotonic_ns())?)
        }
        None => None,
    };
    println!("aeron_dir={}", dir.display());
    println!(
        "tp driver: ready (instance {}{})",
        driver.core().config().driver.instance_id,
        if supervisor.is_some() {
            ", supervisor embedded"
        } else {
            ""
        }
    );
    let _ = std::io::stdout().flush();
    let mut idle = args.idle.build();
    let mut notifier = ServiceNotifier::from_env();
    // READY=1 after the first cycle: the control subscription was registered by
    // ShmDriver::new and this cycle polled it, so an attach sent now is answered.
    let ready_status = format!(
        "serving instance {} on control stream {}",
        driver.core().config().driver.instance_id,
        driver.core().config().driver.control_stream_id
    );
    let result = loop {
        let now = monotonic_ns();
        notifier.cycle(now);
        if stop.load(Ordering::Acquire) {
            notifier.stopping("draining: shutdown requested by a signal");
            driver.begin_shutdown(ShutdownReason::Normal, "signal", now);
        }
        let supervised = match supervisor.as_mut().map(|s| s.do_work(now)) {
            Some(Ok(work)) => work,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "supervisor duty cycle error");
                0
            }
            None => 0,
        };
        match driver.do_work(now) {
            Ok(work) => {
                if !notifier.is_ready() {
                    notifier.ready(&ready_status);
                }
                idle.idle_work(work + supervised);
            }
            Err(AgentError::Terminate) => break Ok(()),
            Err(e) => tracing::warn!(error = %e, "duty cycle error"),
        }
    };
    notifier.stopping("stopped");
    if let Some(e) = driver.core().fatal_error() {
        return Err(format!("driver stopped on a fatal error: {e}").into());
    }
    if let Some(s) = &supervisor {
        for (name, value) in s.core().counters().table() {
            println!("supervisor.{name} = {value}");
        }
    }
    println!("tp driver: stopped");
    drop(supervisor);
    drop(driver);
    drop(media);
    result
}
