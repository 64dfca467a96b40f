//! `tp media-driver`: the Aeron C media driver in the foreground until SIGINT or SIGTERM.

use std::io::Write;
use std::path::PathBuf;

use tensorpool_aeron::{StandaloneOptions, ThreadingMode, run_standalone};

use super::CmdError;

/// Flags of `tp media-driver`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Aeron directory [default: AERON_DIR, else /dev/shm/aeron-<user>]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Threading mode: dedicated, shared-network or shared [default: AERON_THREADING_MODE,
    /// else dedicated]
    #[arg(long, value_name = "MODE")]
    threading_mode: Option<ThreadingMode>,
    /// Delete the directory when the driver starts (else AERON_DIR_DELETE_ON_START)
    #[arg(long)]
    delete_dir_on_start: bool,
    /// Delete the directory when the driver stops (else AERON_DIR_DELETE_ON_SHUTDOWN)
    #[arg(long)]
    delete_dir_on_shutdown: bool,
}

/// Runs the driver; returns once it has stopped cleanly.
pub fn run(args: &Args) -> Result<(), CmdError> {
    let options = StandaloneOptions {
        dir: args.dir.clone(),
        threading_mode: args.threading_mode,
        dir_delete_on_start: args.delete_dir_on_start.then_some(true),
        dir_delete_on_shutdown: args.delete_dir_on_shutdown.then_some(true),
    };
    run_standalone(&options, |info| {
        let mode = info.threading_mode.map_or("invoker", ThreadingMode::as_str);
        println!(
            "tp media-driver: running, aeron dir {} (threading mode {mode}); SIGINT or SIGTERM stops it",
            info.dir.display()
        );
        // A closed stdout is no reason to stop the driver.
        let _ = std::io::stdout().flush();
    })?;
    println!("tp media-driver: stopped");
    Ok(())
}
