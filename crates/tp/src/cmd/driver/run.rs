//! `tp driver`: the driver process. SIGINT / SIGTERM drain it like an authenticated shutdown
//! request with reason NORMAL (Driver Model §4.13). A `[supervisor]` table in its file runs
//! the supervisor in the same process and duty cycle (as the C driver embeds it); a
//! `[discovery]` table runs a discovery provider there too (DS §2.2 "embedded in an SHM
//! driver", docs/discovery.md). The roles stay apart: this binary composes them.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tensorpool::config::{Loader, NoEnv, ProcessEnv};
use tensorpool::discovery::{DiscoveryConfig, DiscoveryProvider};
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
    // a [discovery] table (without enabled = false) embeds a discovery provider whose
    // defaults are this driver's endpoints and identity
    let discovery_cfg = match args.config.as_deref() {
        Some(path) => {
            let mut l = Loader::open(Some(path), &ProcessEnv)?;
            if l.raw("discovery").is_some() {
                Some(DiscoveryConfig::embedded(&mut l)?).filter(|c| c.enabled)
            } else {
                None
            }
        }
        None => None,
    };
    let unknown: Vec<&String> = cfg
        .unknown_keys
        .iter()
        .filter(|k| supervisor_cfg.is_none() || !k.starts_with("supervisor."))
        .filter(|k| !k.starts_with("discovery."))
        .collect();
    if let Some(d) = &discovery_cfg
        && !d.unknown_keys.is_empty()
    {
        tracing::warn!(keys = ?d.unknown_keys, "unknown [discovery] keys ignored");
    }
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
    let mut discovery = match &discovery_cfg {
        Some(c) => {
            let aeron = AeronClient::connect(&dir, Duration::from_secs(10))?;
            Some(DiscoveryProvider::new(c, aeron, Duration::from_secs(10))?)
        }
        None => None,
    };
    println!("aeron_dir={}", dir.display());
    if let Some(c) = &discovery_cfg {
        println!(
            "tp driver: discovery on {} stream {}",
            c.request_channel, c.request_stream_id
        );
    }
    println!(
        "tp driver: ready (instance {}{}{})",
        driver.core().config().driver.instance_id,
        if supervisor.is_some() {
            ", supervisor embedded"
        } else {
            ""
        },
        if discovery.is_some() {
            ", discovery embedded"
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
        let discovered = match discovery.as_mut().map(|d| d.do_work(now)) {
            Some(Ok(work)) => work,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "discovery duty cycle error");
                0
            }
            None => 0,
        };
        match driver.do_work(now) {
            Ok(work) => {
                if !notifier.is_ready() {
                    notifier.ready(&ready_status);
                }
                idle.idle_work(work + supervised + discovered);
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
    if let Some(d) = &discovery {
        let r = d.registry().counters();
        let c = d.counters();
        println!("discovery.entries = {}", d.registry().entries().len());
        println!("discovery.announces = {}", r.announces);
        println!("discovery.requests = {}", r.requests);
        println!("discovery.responses_sent = {}", c.responses_sent);
        println!("discovery.forwarded = {}", c.forwarded);
        println!("discovery.forward_dropped = {}", c.forward_dropped);
    }
    println!("tp driver: stopped");
    drop(discovery);
    drop(supervisor);
    drop(driver);
    drop(media);
    result
}
