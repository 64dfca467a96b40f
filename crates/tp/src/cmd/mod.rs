//! One module per subcommand.

mod aeron_probe;
mod decode;
mod encode;
mod endpoints;
mod frames;
mod inspect;
mod listen;
mod media_driver;
mod stat;
mod top;
mod util;

use clap::Subcommand;

/// A boxed error for the command layer: each subcommand's typed errors, shown to the user.
pub type CmdError = Box<dyn std::error::Error + Send + Sync>;

/// Every `tp` subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the Aeron media driver in the foreground (like Aeron's `aeronmd`).
    ///
    /// Every `AERON_*` environment variable the C media driver knows applies (AERON_DIR,
    /// AERON_THREADING_MODE, AERON_TERM_BUFFER_LENGTH, ...); the flags override them. Prints
    /// the directory once running; SIGINT or SIGTERM closes the driver and exits 0.
    MediaDriver(media_driver::Args),
    /// Inspect a header ring or payload pool file: superblock verdicts, liveness, slots.
    Inspect(inspect::Args),
    /// Print every message on the shared streams, decoded (control, announce, QoS, ...).
    Listen(listen::Args),
    /// Decode a message (or a header slot, a superblock) from bytes.
    Decode(decode::Args),
    /// Encode a message from its JSON (as `tp decode --json` prints it).
    Encode(encode::Args),
    /// Print the media driver's counters with their rates (like AeronStat).
    Stat(stat::Args),
    /// Live full-screen view of every stream on the host (rates, lag, drops, epochs).
    Top(top::Args),
    /// Send or receive numbered test messages over Aeron (used by tests).
    #[command(hide = true)]
    AeronProbe(aeron_probe::Args),
}

/// Runs one subcommand.
pub fn run(command: Command) -> Result<(), CmdError> {
    match command {
        Command::MediaDriver(args) => media_driver::run(&args),
        Command::Inspect(args) => inspect::run(&args),
        Command::Listen(args) => listen::run(&args),
        Command::Decode(args) => decode::run(&args),
        Command::Encode(args) => encode::run(&args),
        Command::Stat(args) => stat::run(&args),
        Command::Top(args) => top::run(&args),
        Command::AeronProbe(args) => aeron_probe::run(&args),
    }
}
