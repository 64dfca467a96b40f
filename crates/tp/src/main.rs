//! `tp`: the one tensorpool binary.
#![forbid(unsafe_code)]

mod cmd;

use std::process::ExitCode;

use clap::Parser;

/// The tensorpool command: every role, the tools, the demo and the benchmarks.
#[derive(Debug, Parser)]
#[command(name = "tp", version, about)]
struct Cli {
    #[command(subcommand)]
    command: cmd::Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cmd::run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tp: {e}");
            ExitCode::FAILURE
        }
    }
}
