//! `tp media-driver`: the Aeron C media driver in the foreground until SIGINT or SIGTERM.

use std::io::Write;
use std::path::PathBuf;

use tensorpool_aeron::{StandaloneOptions, ThreadingMode, run_standalone_with};
use tensorpool_agent::monotonic_ns;

use super::notify::ServiceNotifier;

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
    let notifier = std::cell::RefCell::new(ServiceNotifier::from_env());
    // the CnC file, checked once the conductor has run a cycle: then a client can connect
    let cnc = std::cell::RefCell::new(None::<PathBuf>);
    let on_cycle = || {
        let mut n = notifier.borrow_mut();
        if !n.is_ready() {
            let ready = cnc.borrow().as_ref().is_some_and(|c| c.exists());
            if ready {
                n.ready("media driver running, CnC file present");
            }
        }
        n.cycle(monotonic_ns());
    };
    let on_stopping = || notifier.borrow_mut().stopping("media driver stopping");
    run_standalone_with(
        &options,
        |info| {
            *cnc.borrow_mut() = Some(info.dir.join("cnc.dat"));
            let mode = info.threading_mode.map_or("invoker", ThreadingMode::as_str);
            println!(
                "tp media-driver: running, aeron dir {} (threading mode {mode}); SIGINT or SIGTERM stops it",
                info.dir.display()
            );
            // A closed stdout is no reason to stop the driver.
            let _ = std::io::stdout().flush();
        },
        on_cycle,
        on_stopping,
    )?;
    println!("tp media-driver: stopped");
    Ok(())
}
