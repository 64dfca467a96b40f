//! `tp config validate [--role R] FILE`: loads a driver (or producer, consumer, supervisor,
//! bridge, rate limiter, discovery provider) configuration
//! exactly as `tp driver` (`tp produce`, `tp consume`) would, environment overrides
//! included, and prints every resolved key, its value and where it came from (default,
//! file, env VAR).

use std::path::PathBuf;

use tensorpool::config::{ProcessEnv, render_provenance};
use tensorpool::driver::DriverConfig;

use super::CmdError;

/// `tp config ...`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ConfigCommand {
    /// Validate a configuration and print the resolved values with their sources.
    Validate {
        /// Whose configuration: the driver's, a producer's ([producer]), a consumer's
        /// ([consumer]), the supervisor's ([supervisor]), a bridge's ([bridge] and
        /// [[mappings]]), the rate limiter's ([rate_limiter] + [[mappings]]) or a discovery
        /// provider's ([discovery]).
        #[arg(long, value_enum, default_value_t = Role::Driver)]
        role: Role,
        /// The TOML file.
        file: PathBuf,
        /// Producer / consumer: the driver's file, as `tp produce|consume --driver-config`
        /// reads it (base dir and allowed base dirs from its `[shm]` table unless the role's
        /// table or environment sets them).
        #[arg(long, value_name = "FILE")]
        driver_config: Option<PathBuf>,
    },
}

/// The role a configuration file is read for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Role {
    /// `tp driver`.
    Driver,
    /// `tp produce`.
    Producer,
    /// `tp consume`.
    Consumer,
    /// `tp supervisor` (`[supervisor]`; its per-consumer ranges checked against the driver's
    /// configuration: `--driver-config`, else FILE when it is one).
    Supervisor,
    /// `tp bridge` (`[bridge]` and `[[mappings]]`, Bridge Spec §10).
    Bridge,
    /// `tp ratelimit` (`[rate_limiter]` and `[[mappings]]`, RateLimiter §8).
    Ratelimit,
    /// A discovery provider (`[discovery]`, the C `tp_discoveryd` table; in a driver's file,
    /// the provider `tp driver` embeds, read with the driver's defaults).
    Discovery,
}

/// Runs `tp config ...`.
pub fn run(args: &Args) -> Result<(), CmdError> {
    match &args.command {
        ConfigCommand::Validate {
            role: Role::Driver,
            file,
            ..
        } => {
            let cfg = DriverConfig::load(Some(file), &ProcessEnv)?;
            // a [discovery] table is the embedded provider's (`--role discovery` checks it)
            for key in cfg
                .unknown_keys
                .iter()
                .filter(|k| !k.starts_with("discovery."))
            {
                eprintln!("warning: unknown key {key} (ignored)");
            }
            for w in &cfg.warnings {
                eprintln!("warning: {w}");
            }
            print!("{}", render_provenance(&cfg.provenance));
            println!(
                "# {} profile(s), {} stream(s): valid",
                cfg.profiles.len(),
                cfg.streams.len()
            );
            Ok(())
        }
        ConfigCommand::Validate {
            role: Role::Producer,
            file,
            driver_config,
        } => {
            let loaded = super::produce::load_producer(Some(file), driver_config.as_deref())?;
            super::produce::warn_unknown(&loaded.unknown_keys);
            loaded.config.validate()?;
            print!("{}", render_provenance(&loaded.provenance));
            println!("# producer of stream {}: valid", loaded.config.stream_id);
            Ok(())
        }
        ConfigCommand::Validate {
            role: Role::Consumer,
            file,
            driver_config,
        } => {
            let loaded = super::consume::load_consumer(Some(file), driver_config.as_deref())?;
            super::produce::warn_unknown(&loaded.unknown_keys);
            loaded.config.validate()?;
            print!("{}", render_provenance(&loaded.provenance));
            println!("# consumer of stream {}: valid", loaded.config.stream_id);
            Ok(())
        }
        ConfigCommand::Validate {
            role: Role::Supervisor,
            file,
            driver_config,
        } => {
            let cfg = super::supervisor::load(Some(file), driver_config.as_deref())?;
            for key in &cfg.unknown_keys {
                eprintln!("warning: unknown key {key} (ignored)");
            }
            for w in &cfg.warnings {
                eprintln!("warning: {w}");
            }
            print!("{}", render_provenance(&cfg.provenance));
            println!("# supervisor, {} rule(s): valid", cfg.rules.len());
            Ok(())
        }
        ConfigCommand::Validate {
            role: Role::Bridge,
            file,
            ..
        } => {
            let cfg = tensorpool::bridge::BridgeConfig::load(Some(file), &ProcessEnv)?;
            for key in &cfg.unknown_keys {
                eprintln!("warning: unknown key {key} (ignored)");
            }
            for w in &cfg.warnings {
                eprintln!("warning: {w}");
            }
            print!("{}", render_provenance(&cfg.provenance));
            println!(
                "# bridge {}, {} mapping(s), chunks of {} bytes: valid",
                cfg.instance_id,
                cfg.mappings.len(),
                cfg.effective_chunk_bytes()
            );
            Ok(())
        }
        ConfigCommand::Validate {
            role: Role::Ratelimit,
            file,
            ..
        } => {
            let cfg = super::ratelimit::load(file)?;
            for key in &cfg.unknown_keys {
                eprintln!("warning: unknown key {key} (ignored)");
            }
            for w in &cfg.warnings {
                eprintln!("warning: {w}");
            }
            print!("{}", render_provenance(&cfg.provenance));
            println!(
                "# rate limiter {}, {} mapping(s): valid",
                cfg.instance_id,
                cfg.mappings.len()
            );
            Ok(())
        }
        ConfigCommand::Validate {
            role: Role::Discovery,
            file,
            ..
        } => {
            // a driver's file: the provider `tp driver` embeds, with the driver's defaults
            let cfg = tensorpool::discovery::DiscoveryConfig::load_any(file, &ProcessEnv)?;
            for key in &cfg.unknown_keys {
                eprintln!("warning: unknown key {key} (ignored)");
            }
            print!("{}", render_provenance(&cfg.provenance));
            println!(
                "# discovery provider for {} (requests on stream {}): valid",
                cfg.driver_instance_id, cfg.request_stream_id
            );
            Ok(())
        }
    }
}
