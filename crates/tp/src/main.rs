//! `tp`: the one tensorpool binary.
#![forbid(unsafe_code)]

mod cmd;

use std::process::ExitCode;

use clap::Parser;

/// The tensorpool command: every role, the tools, the demo and the benchmarks.
#[derive(Debug, Parser)]
#[command(name = "tp", version, about)]
struct Cli {
    /// Log level or filter for every command (`warn`, `info`, `debug`,
    /// `tensorpool=debug`...) [default: RUST_LOG, else `info` for `tp driver`, `tp supervisor` and `tp bridge`, `off` for
    /// `tp top`, `warn` otherwise]
    #[arg(long, global = true, value_name = "LEVEL")]
    log: Option<String>,
    #[command(subcommand)]
    command: cmd::Command,
}

/// Logs to stderr through `tracing`: `--log`, else `RUST_LOG`, else the command's default.
fn init_logging(log: Option<&str>, command: &cmd::Command) -> Result<(), String> {
    use tracing_subscriber::EnvFilter;
    let filter = match log {
        Some(level) => EnvFilter::try_new(level).map_err(|e| format!("--log {level}: {e}"))?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| {
            EnvFilter::new(match command {
                cmd::Command::Driver(_) | cmd::Command::Supervisor(_) | cmd::Command::Bridge(_) => {
                    "info"
                }
                cmd::Command::Top(_) => "off",
                _ => "warn",
            })
        }),
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
    Ok(())
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
    if let Err(e) = init_logging(cli.log.as_deref(), &cli.command) {
        eprintln!("tp: {e}");
        return ExitCode::from(2);
    }
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
