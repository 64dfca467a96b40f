//! `tp config validate FILE`: loads a driver configuration exactly as `tp driver` would
//! (environment overrides included) and prints every resolved key, its value and where it
//! came from (default, file, env VAR).

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
    /// Validate a driver configuration and print the resolved values with their sources.
    Validate {
        /// The TOML file.
        file: PathBuf,
    },
}

/// Runs `tp config ...`.
pub fn run(args: &Args) -> Result<(), CmdError> {
    match &args.command {
        ConfigCommand::Validate { file } => {
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
    }
}
