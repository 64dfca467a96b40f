//! `tp driver`: the SHM driver as a process, and the commands that talk to a running one.
//!
//! - `tp driver [--config FILE] [--aeron-dir DIR]`: run the driver (embedded Aeron media
//!   driver in a private directory under /dev/shm unless a directory is given);
//! - `tp driver status|leases|streams [--json]`: ask a running driver (admin schema 990);
//! - `tp driver shutdown --token T`: `ShmDriverShutdownRequest`;
//! - `tp driver attach --role producer|consumer --stream-id N [--hold]`: a client process.

mod attach;
mod query;
mod run;

use std::path::PathBuf;
use std::time::Duration;

use tensorpool::config::ProcessEnv;
use tensorpool::driver::DriverConfig;

use super::CmdError;

/// `tp driver` and its subcommands.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<DriverCommand>,
    #[command(flatten)]
    run: run::RunArgs,
}

#[derive(Debug, clap::Subcommand)]
enum DriverCommand {
    /// Status and counters of a running driver.
    Status(query::QueryArgs),
    /// Active leases of a running driver.
    Leases(query::QueryArgs),
    /// Streams of a running driver.
    Streams(query::QueryArgs),
    /// Ask a running driver to shut down (needs its policies.shutdown_token).
    Shutdown(query::ShutdownArgs),
    /// Attach to a stream as a client; print the answer and the events that follow.
    Attach(attach::AttachArgs),
}

/// How to reach a running driver: its config file, or flags (flags win).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Endpoint {
    /// The driver's configuration file (for its control channel, stream and Aeron dir).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Aeron directory of the media driver the driver uses [default: driver.aeron_dir,
    /// else AERON_DIR].
    #[arg(long, value_name = "DIR")]
    aeron_dir: Option<PathBuf>,
    /// Driver control channel [default: driver.control_channel].
    #[arg(long)]
    control_channel: Option<String>,
    /// Driver control stream id [default: driver.control_stream_id].
    #[arg(long)]
    control_stream_id: Option<u32>,
    /// How long to wait for the driver, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
}

/// An endpoint resolved against the configuration.
pub(crate) struct Resolved {
    pub cfg: DriverConfig,
    pub aeron_dir: PathBuf,
    pub timeout: Duration,
}

impl Endpoint {
    pub(crate) fn resolve(&self) -> Result<Resolved, CmdError> {
        let mut cfg = match &self.config {
            Some(path) => DriverConfig::load(Some(path), &ProcessEnv)?,
            None => DriverConfig::from_toml(
                "[profiles.default]\npayload_pools = [{ pool_id = 1, stride_bytes = 64 }]\n",
                &ProcessEnv,
            )?,
        };
        if let Some(c) = &self.control_channel {
            if cfg.driver.announce_channel == cfg.driver.control_channel {
                cfg.driver.announce_channel = c.clone();
            }
            cfg.driver.control_channel = c.clone();
        }
        if let Some(id) = self.control_stream_id {
            if cfg.driver.announce_stream_id == cfg.driver.control_stream_id {
                cfg.driver.announce_stream_id = id;
            }
            cfg.driver.control_stream_id = id;
        }
        let aeron_dir = self
            .aeron_dir
            .clone()
            .or_else(|| cfg.driver.aeron_dir.clone())
            .or_else(|| std::env::var_os("AERON_DIR").map(PathBuf::from))
            .ok_or("no Aeron directory: pass --aeron-dir (the driver prints its own at start), set driver.aeron_dir or AERON_DIR")?;
        Ok(Resolved {
            cfg,
            aeron_dir,
            timeout: Duration::from_millis(self.timeout_ms),
        })
    }
}

/// Runs `tp driver ...`.
pub fn run(args: Args) -> Result<(), CmdError> {
    match args.command {
        None => run::run(&args.run),
        Some(DriverCommand::Status(a)) => query::run(&a, tensorpool::client::AdminQuery::Status),
        Some(DriverCommand::Leases(a)) => query::run(&a, tensorpool::client::AdminQuery::Leases),
        Some(DriverCommand::Streams(a)) => query::run(&a, tensorpool::client::AdminQuery::Streams),
        Some(DriverCommand::Shutdown(a)) => query::shutdown(&a),
        Some(DriverCommand::Attach(a)) => attach::run(&a),
    }
}
