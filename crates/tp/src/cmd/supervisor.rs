//! `tp supervisor`: the supervisor as its own process (the C implementation embeds it in its
//! driver; ours runs standalone too). SIGINT / SIGTERM stop it and print its counters.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tensorpool::config::{NoEnv, ProcessEnv};
use tensorpool::driver::DriverConfig;
use tensorpool::supervisor::{DriverStreamIds, Supervisor, SupervisorConfig};
use tensorpool_aeron::{AeronClient, EmbeddedMediaDriver, MediaDriverConfig};
use tensorpool_agent::{Agent, AgentError, IdleStrategyKind, monotonic_ns};

use crate::cmd::CmdError;
use crate::cmd::notify::ServiceNotifier;
use crate::cmd::util::stop_flag;

/// Flags of `tp supervisor`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    action: Option<Action>,
    /// Configuration file with a `[supervisor]` table (docs/roles.md; environment variables
    /// `SUPERVISOR_*` override it). Without one: the defaults.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The driver's configuration, whose stream-id ranges and fixed ids the per-consumer
    /// ranges must not overlap [default: the --config file when it is a driver config too].
    #[arg(long, value_name = "FILE")]
    driver_config: Option<PathBuf>,
    /// Use the external Aeron media driver in this directory [default: an embedded media
    /// driver in a private directory under /dev/shm].
    #[arg(long, value_name = "DIR")]
    aeron_dir: Option<PathBuf>,
    /// Idle strategy of the duty cycle (sleep:10ms, backoff, sleep:1ms, yield, ...). The
    /// default sleeps 10 ms when a cycle found nothing to do: the supervisor is control
    /// plane (answers within 10 ms), and it keeps it under 1% of a core with 256 consumers
    /// (`tp bench supervisor`).
    #[arg(long, default_value = "sleep:10ms")]
    idle: IdleStrategyKind,
}

/// `tp supervisor` subcommands.
#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Producers, consumers, modes, assignments, QoS and stale consumers, observed on the
    /// wire (works against a supervisor embedded in `tp driver` and a standalone one).
    Status(super::supervisor_status::Args),
}

/// The driver's ranges and fixed ids, as plain data.
fn driver_ids(d: &DriverConfig) -> DriverStreamIds {
    let s = &d.driver;
    let mut fixed = vec![
        ("driver.control_stream_id".to_owned(), s.control_stream_id),
        ("driver.announce_stream_id".to_owned(), s.announce_stream_id),
        ("driver.qos_stream_id".to_owned(), s.qos_stream_id),
    ];
    for st in &d.streams {
        fixed.push((format!("streams.{}.stream_id", st.name), st.stream_id));
    }
    DriverStreamIds {
        ranges: s
            .stream_id_range
            .map(|r| ("driver.stream_id_range".to_owned(), r))
            .into_iter()
            .collect(),
        descriptor_range: s.descriptor_stream_id_range,
        control_range: s.control_stream_id_range,
        fixed,
    }
}

/// Loads the `[supervisor]` table of `config` as `tp supervisor` does, and checks its
/// per-consumer ranges against the driver's configuration (`driver_config`, else `config`
/// when it is a driver configuration too).
pub(crate) fn load(
    config: Option<&std::path::Path>,
    driver_config: Option<&std::path::Path>,
) -> Result<SupervisorConfig, CmdError> {
    let cfg = SupervisorConfig::load(config, &ProcessEnv)?;
    let driver = match (driver_config, config) {
        (Some(path), _) => Some(DriverConfig::load(Some(path), &ProcessEnv)?),
        // the --config file is also the driver's when it loads as one (the C layout)
        (None, Some(path)) => DriverConfig::load(Some(path), &NoEnv)
            .ok()
            .map(|_| DriverConfig::load(Some(path), &ProcessEnv))
            .transpose()?,
        (None, None) => None,
    };
    if let Some(d) = &driver {
        cfg.check_against_driver(&driver_ids(d))?;
    }
    Ok(cfg)
}

/// Runs the supervisor until SIGINT / SIGTERM.
pub fn run(args: &Args) -> Result<(), CmdError> {
    if let Some(Action::Status(status)) = &args.action {
        return super::supervisor_status::run(status);
    }
    let cfg = load(args.config.as_deref(), args.driver_config.as_deref())?;
    if !cfg.unknown_keys.is_empty() {
        tracing::warn!(keys = ?cfg.unknown_keys, "unknown [supervisor] keys ignored");
    }
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    let stop = stop_flag()?;
    let (media, dir) = match args.aeron_dir.clone() {
        Some(dir) => (None, dir),
        None => {
            let m = EmbeddedMediaDriver::start(MediaDriverConfig::default())?;
            let dir = m.dir().to_path_buf();
            (Some(m), dir)
        }
    };
    let aeron = AeronClient::connect(&dir, Duration::from_secs(10))?;
    let mut supervisor = Supervisor::new(cfg, aeron, monotonic_ns())?;
    println!("aeron_dir={}", dir.display());
    println!("tp supervisor: ready");
    let _ = std::io::stdout().flush();
    let mut idle = args.idle.build();
    let mut notifier = ServiceNotifier::from_env();
    notifier.ready("supervisor running");
    while !stop.load(Ordering::Acquire) {
        let now = monotonic_ns();
        notifier.cycle(now);
        match supervisor.do_work(now) {
            Ok(work) => idle.idle_work(work),
            Err(AgentError::Terminate) => break,
            Err(e) => tracing::warn!(error = %e, "duty cycle error"),
        }
    }
    notifier.stopping("supervisor stopping");
    for (name, value) in supervisor.core().counters().table() {
        println!("{name} = {value}");
    }
    println!("tp supervisor: stopped");
    drop(supervisor);
    drop(media);
    Ok(())
}
