//! `tp config validate [--role R] FILE`: loads a driver (or producer, consumer) configuration
//! exactly as `tp driver` (`tp produce`, `tp consume`) would, environment overrides
//! included, and prints every resolved key, its value and where it came from (default,
//! file, env VAR).

use std::path::PathBuf;

use tensorpool::config::{ProcessEnv, render_provenance};
use tensorpool::consumer::ConsumerConfig;
use tensorpool::driver::DriverConfig;
use tensorpool::producer::ProducerConfig;

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
        /// Whose configuration: the driver's, a producer's ([producer]) or a consumer's
        /// ([consumer]).
        #[arg(long, value_enum, default_value_t = Role::Driver)]
        role: Role,
        /// The TOML file.
        file: PathBuf,
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
}

/// Runs `tp config ...`.
pub fn run(args: &Args) -> Result<(), CmdError> {
    match &args.command {
        ConfigCommand::Validate {
            role: Role::Driver,
            file,
        } => {
            let cfg = DriverConfig::load(Some(file), &ProcessEnv)?;
            for key in &cfg.unknown_keys {
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
        } => {
            let loaded = ProducerConfig::load(Some(file), &ProcessEnv)?;
            super::produce::warn_unknown(&loaded.unknown_keys);
            loaded.config.validate()?;
            print!("{}", render_provenance(&loaded.provenance));
            println!("# producer of stream {}: valid", loaded.config.stream_id);
            Ok(())
        }
        ConfigCommand::Validate {
            role: Role::Consumer,
            file,
        } => {
            let loaded = ConsumerConfig::load(Some(file), &ProcessEnv)?;
            super::produce::warn_unknown(&loaded.unknown_keys);
            loaded.config.validate()?;
            print!("{}", render_provenance(&loaded.provenance));
            println!("# consumer of stream {}: valid", loaded.config.stream_id);
            Ok(())
        }
    }
}
