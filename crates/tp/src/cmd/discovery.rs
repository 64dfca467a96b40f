//! `tp discovery serve` (a standalone discovery provider, like the C `tp_discoveryd`),
//! `tp discovery list` and `tp discover` (queries, like the C `tp_discovery_query`).

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tensorpool::config::ProcessEnv;
use tensorpool::discovery::{ClientEndpoints, DiscoveryConfig, DiscoveryProvider, Found, Query};
use tensorpool_aeron::AeronClient;
use tensorpool_agent::{Agent, AgentError, IdleStrategyKind, monotonic_ns};

use super::CmdError;
use super::notify::ServiceNotifier;
use super::util::{self, stop_flag};

/// Flags of `tp discovery`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

/// `tp discovery` subcommands.
#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Run a discovery provider: index the announces of one driver's streams and answer
    /// requests (docs/discovery.md). SIGINT or SIGTERM stops it and prints its counters.
    Serve(ServeArgs),
    /// Every stream a provider knows (`tp discover` without filters).
    List(QueryArgs),
}

/// Flags of `tp discovery serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Configuration with a `[discovery]` table (the C `discovery_example.toml` loads
    /// unchanged; `DISCOVERY_*` environment variables override it). Without one: defaults.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Aeron directory [default: driver.aeron_dir of --config, AERON_DIR, /dev/shm/aeron-<user>].
    #[arg(long, value_name = "DIR")]
    aeron_dir: Option<PathBuf>,
    /// Idle strategy of the duty cycle (control plane: the default sleeps 1 ms when idle).
    #[arg(long, default_value = "sleep:1ms")]
    idle: IdleStrategyKind,
    /// How long to wait for the media driver and each registration.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    timeout: u64,
}

/// Flags of `tp discover` and `tp discovery list`.
#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// Only the data source with this name (byte-exact, case-sensitive).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Only streams with this tag (repeatable: all must be present).
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Only this stream.
    #[arg(long, value_name = "N")]
    stream_id: Option<u32>,
    /// Only this producer.
    #[arg(long, value_name = "N")]
    producer_id: Option<u32>,
    /// Only this data-source id.
    #[arg(long, value_name = "N")]
    data_source_id: Option<u64>,
    /// The provider's `[discovery]` configuration, for its request channel and stream (a
    /// `tp driver` file: the request endpoint of the provider it embeds, with the driver's
    /// defaults).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The provider's request channel [default: discovery.request_channel].
    #[arg(long, value_name = "CHANNEL")]
    request_channel: Option<String>,
    /// The provider's request stream [default: discovery.request_stream_id, 9000].
    #[arg(long, value_name = "N")]
    request_stream_id: Option<i32>,
    /// Where the answer comes back [default: the request channel].
    #[arg(long, value_name = "CHANNEL")]
    response_channel: Option<String>,
    /// Stream of the answer.
    #[arg(long, default_value_t = 9004, value_name = "N")]
    response_stream_id: i32,
    /// Aeron directory [default: driver.aeron_dir of --config, AERON_DIR,
    /// /dev/shm/aeron-<user>].
    #[arg(long, value_name = "DIR")]
    aeron_dir: Option<PathBuf>,
    /// How long to wait for the answer (and for the media driver).
    #[arg(long, default_value_t = 5, value_name = "SECS")]
    timeout: u64,
    /// One JSON object per stream.
    #[arg(long)]
    json: bool,
}

/// Runs `tp discovery ...`.
pub fn run(args: &Args) -> Result<(), CmdError> {
    match &args.action {
        Action::Serve(a) => serve(a),
        Action::List(a) => discover(a),
    }
}

fn serve(args: &ServeArgs) -> Result<(), CmdError> {
    let cfg = DiscoveryConfig::load(args.config.as_deref(), &ProcessEnv)?;
    for key in &cfg.unknown_keys {
        tracing::warn!(key, "unknown [discovery] key ignored");
    }
    let stop = stop_flag()?;
    let configured = (!cfg.aeron_dir.is_empty()).then(|| PathBuf::from(&cfg.aeron_dir));
    let dir = util::aeron_dir(args.aeron_dir.as_ref().or(configured.as_ref()));
    let timeout = Duration::from_secs(args.timeout);
    let aeron = AeronClient::connect(&dir, timeout)?;
    let mut provider = DiscoveryProvider::new(&cfg, aeron, timeout)?;
    println!(
        "tp discovery: serving {} on {} stream {} (aeron dir {})",
        cfg.driver_instance_id,
        cfg.request_channel,
        cfg.request_stream_id,
        dir.display()
    );
    println!("tp discovery: ready");
    let _ = std::io::stdout().flush();
    let mut idle = args.idle.build();
    let mut notifier = ServiceNotifier::from_env();
    notifier.ready("discovery provider running");
    while !stop.load(Ordering::Acquire) {
        let now = monotonic_ns();
        notifier.cycle(now);
        match provider.do_work(now) {
            Ok(work) => idle.idle_work(work),
            Err(AgentError::Terminate) => break,
            Err(e) => tracing::warn!(error = %e, "duty cycle error"),
        }
    }
    notifier.stopping("discovery provider stopping");
    let c = provider.counters();
    let r = provider.registry().counters();
    println!("entries = {}", provider.registry().entries().len());
    println!("announces = {}", r.announces);
    println!("announces_dropped = {}", r.announces_dropped);
    println!("expired = {}", r.expired);
    println!("requests = {}", r.requests);
    println!("requests_dropped = {}", r.requests_dropped);
    println!("errors = {}", r.errors);
    println!("responses_sent = {}", c.responses_sent);
    println!("responses_dropped = {}", c.responses_dropped);
    println!("requests_malformed = {}", c.requests_malformed);
    println!("forwarded = {}", c.forwarded);
    println!("forward_dropped = {}", c.forward_dropped);
    println!("tp discovery: stopped");
    Ok(())
}

/// Runs `tp discover` (and `tp discovery list`).
pub fn discover(args: &QueryArgs) -> Result<(), CmdError> {
    // a driver's file: the request endpoint of the provider it embeds
    let cfg = match args.config.as_deref() {
        Some(path) => DiscoveryConfig::load_any(path, &ProcessEnv)?,
        None => DiscoveryConfig::load(None, &ProcessEnv)?,
    };
    let request_channel = args
        .request_channel
        .clone()
        .unwrap_or_else(|| cfg.request_channel.clone());
    let endpoints = ClientEndpoints {
        response_channel: args
            .response_channel
            .clone()
            .unwrap_or_else(|| request_channel.clone()),
        request_channel,
        request_stream_id: args
            .request_stream_id
            .unwrap_or(i32::try_from(cfg.request_stream_id).unwrap_or(i32::MAX)),
        response_stream_id: args.response_stream_id,
    };
    let q = Query {
        stream_id: args.stream_id,
        producer_id: args.producer_id,
        data_source_id: args.data_source_id,
        name: args.name.clone().unwrap_or_default(),
        tags: args.tags.clone(),
    };
    let configured = (!cfg.aeron_dir.is_empty()).then(|| PathBuf::from(&cfg.aeron_dir));
    let dir = util::aeron_dir(args.aeron_dir.as_ref().or(configured.as_ref()));
    let timeout = Duration::from_secs(args.timeout);
    let client = AeronClient::connect(&dir, timeout)?;
    let found = tensorpool::discovery::query(&client, &endpoints, &q, timeout)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for f in &found {
        let line = if args.json {
            serde_json::to_string(f)?
        } else {
            describe(f)
        };
        if let Err(e) = writeln!(out, "{line}") {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(());
            }
            return Err(e.into());
        }
    }
    if !args.json {
        eprintln!("tp discover: {} stream(s)", found.len());
    }
    Ok(())
}

fn describe(f: &Found) -> String {
    format!(
        "stream {} producer {} epoch {} name {:?} tags [{}] nslots {} pools {} via {} ({} stream {})",
        f.stream_id,
        f.producer_id,
        f.epoch,
        f.data_source_name,
        f.tags.join(", "),
        f.header_nslots,
        f.pools.len(),
        f.driver_instance_id,
        f.driver_control_channel,
        f.driver_control_stream_id
    )
}
