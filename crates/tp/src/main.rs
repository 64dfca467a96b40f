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

/// A command-line error on one line: clap's message and its hints, without the usage block.
fn one_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.is_empty() && !l.starts_with("Usage:"))
        .collect();
    lines.join(" ")
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help, --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("tp: {} (see tp --help)", one_line(&e));
            return ExitCode::from(2);
        }
    };
    match cmd::run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, whatever the error (some Aeron messages carry a second line).
            let text = e.to_string();
            let lines: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            eprintln!("tp: {}", lines.join("; "));
            ExitCode::FAILURE
        }
    }
}
