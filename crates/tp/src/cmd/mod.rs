//! One module per subcommand.

mod aeron_probe;
mod bench;
mod bridge;
mod config;
mod consume;
mod decode;
mod demo;
mod discovery;
mod driver;
mod encode;
mod endpoints;
mod exporter;
mod frames;
mod inspect;
mod join;
mod listen;
mod media_driver;
mod notify;
mod produce;
mod ratelimit;
mod send;
mod stat;
mod supervisor;
mod supervisor_status;
mod synth;
mod top;
mod trace;
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
    /// Produce synthetic frames (each carries seq + CRC32C of its payload).
    Produce(produce::Args),
    /// Consume frames: rate, drops by cause, latency; `--verify` checks payload checksums.
    Consume(consume::Args),
    /// One producer and two consumers (STREAM, RATE_LIMITED) in one process, live stats.
    Demo(demo::Args),
    /// The SHM driver: run it, or talk to a running one (status, leases, streams, shutdown,
    /// attach).
    Driver(driver::Args),
    /// The supervisor (Wire Spec §10.5): tracks producers and consumers, aggregates QoS,
    /// answers hellos with `ConsumerConfig` (policies, per-consumer streams). SIGINT or
    /// SIGTERM stops it and prints its counters.
    Supervisor(supervisor::Args),
    /// The Aeron UDP bridge (Bridge Spec v1.1): sends mapped source streams to another host
    /// in chunks and re-materializes them there into driver-attached destination streams.
    /// SIGINT or SIGTERM stops it and prints its counters.
    Bridge(bridge::Args),
    /// The rate limiter / decimator (RateLimiter v1.0): republishes each mapping's source
    /// stream on its destination stream at most max_rate_hz, or every Nth sequence, through
    /// its own driver-attached pools. SIGINT or SIGTERM stops it and prints its counters.
    /// `tp decimator` is the same command (the seed's decimator is its every-Nth policy).
    #[command(visible_alias = "decimator")]
    Ratelimit(ratelimit::Args),
    /// A join stage (Join Barrier v1.0) over N input streams: prints each joined set of
    /// frames (sequence, timestamp or latest-value rules), or with --output republishes it
    /// as one frame with a TraceLinkSet. SIGINT or SIGTERM stops it and prints its counters.
    Join(join::Args),
    /// Discovery (Discovery Spec v1.0): `tp discovery serve` runs a provider that indexes one
    /// driver's streams and answers requests; `tp discovery list` shows what it knows.
    Discovery(discovery::Args),
    /// Find streams through a discovery provider by name, tag, stream or producer.
    Discover(discovery::QueryArgs),
    /// Configuration files: `tp config validate FILE` prints the resolved values and their
    /// sources (default, file, env).
    Config(config::Args),
    #[command(about = inspect::ABOUT, long_about = inspect::LONG_ABOUT, after_help = inspect::EXAMPLES)]
    Inspect(inspect::Args),
    #[command(about = listen::ABOUT, long_about = listen::LONG_ABOUT, after_help = listen::EXAMPLES)]
    Listen(listen::Args),
    #[command(about = decode::ABOUT, long_about = decode::LONG_ABOUT, after_help = decode::EXAMPLES)]
    Decode(decode::Args),
    #[command(about = encode::ABOUT, long_about = encode::LONG_ABOUT, after_help = encode::EXAMPLES)]
    Encode(encode::Args),
    #[command(about = send::ABOUT, long_about = send::LONG_ABOUT, after_help = send::EXAMPLES)]
    Send(send::Args),
    #[command(about = stat::ABOUT, long_about = stat::LONG_ABOUT, after_help = stat::EXAMPLES)]
    Stat(stat::Args),
    #[command(about = exporter::ABOUT, long_about = exporter::LONG_ABOUT, after_help = exporter::EXAMPLES)]
    Exporter(exporter::Args),
    #[command(about = top::ABOUT, long_about = top::LONG_ABOUT, after_help = top::EXAMPLES)]
    Top(top::Args),
    #[command(about = trace::ABOUT, long_about = trace::LONG_ABOUT, after_help = trace::EXAMPLES)]
    Trace(trace::Args),
    /// Benchmarks of the real multi-process system, each against its baseline in the same run
    /// (throughput, latency, fanout, attach, sizes, or all); see docs/BENCHMARKS.md.
    Bench(bench::Args),
    /// Send or receive numbered test messages over Aeron (used by tests).
    #[command(hide = true)]
    AeronProbe(aeron_probe::Args),
    /// A process of `tp bench` (producer, consumer, raw Aeron pair, attacher).
    #[command(hide = true)]
    BenchRole(bench::roles::Args),
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
        Command::Send(args) => send::run(&args),
        Command::Top(args) => top::run(&args),
        Command::Trace(args) => trace::run(&args),
        Command::Exporter(args) => exporter::run(&args),
        Command::AeronProbe(args) => aeron_probe::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::BenchRole(args) => bench::roles::run(&args),
        Command::Driver(args) => driver::run(args),
        Command::Supervisor(args) => supervisor::run(&args),
        Command::Bridge(args) => bridge::run(&args),
        Command::Ratelimit(args) => ratelimit::run(&args),
        Command::Join(args) => join::run(&args),
        Command::Config(args) => config::run(&args),
        Command::Produce(args) => produce::run(&args),
        Command::Consume(args) => consume::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Discovery(args) => discovery::run(&args),
        Command::Discover(args) => discovery::discover(&args),
    }
}
