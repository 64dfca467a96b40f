//! `tp driver status|leases|streams|shutdown`: a running driver's answers (admin schema 990)
//! printed as text or JSON, and the authenticated shutdown request.

use std::time::{Duration, Instant};

use tensorpool::client::{AdminQuery, query_driver, request_shutdown};
use tensorpool_aeron::AeronClient;
use tensorpool_codec::admin::{DriverLeasesResponse, DriverStatusResponse, DriverStreamsResponse};
use tensorpool_codec::driver::{self, ShmDriverShutdown, ShutdownReason};
use tensorpool_codec::{AnyMessage, Message, peek_header};

use super::Endpoint;
use crate::cmd::CmdError;

/// Flags of `tp driver status|leases|streams`.
#[derive(Debug, clap::Args)]
pub(crate) struct QueryArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    /// Print the answer as JSON.
    #[arg(long)]
    json: bool,
    /// When the driver does not answer in the admin schema (990): how long to watch its
    /// streams instead (control, announce, QoS), in milliseconds.
    #[arg(long, default_value_t = 3000)]
    observe_ms: u64,
}

/// Flags of `tp driver shutdown`.
#[derive(Debug, clap::Args)]
pub(crate) struct ShutdownArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    /// The driver's `policies.shutdown_token`.
    #[arg(long)]
    token: String,
    /// Reason sent (and mirrored in `ShmDriverShutdown`): normal, admin or error.
    #[arg(long, default_value = "admin")]
    reason: String,
    /// Text sent with the request.
    #[arg(long, default_value = "")]
    message: String,
    /// Wait for the driver's `ShmDriverShutdown` (up to the drain period plus the timeout).
    #[arg(long)]
    wait: bool,
}

fn stream_id(id: u32) -> Result<i32, CmdError> {
    i32::try_from(id).map_err(|_| format!("{id} is not an Aeron stream id").into())
}

/// Runs one query and prints the answer.
pub(crate) fn run(args: &QueryArgs, query: AdminQuery) -> Result<(), CmdError> {
    let r = args.endpoint.resolve()?;
    let aeron = AeronClient::connect(&r.aeron_dir, r.timeout)?;
    let d = &r.cfg.driver;
    let bytes = match query_driver(
        &aeron,
        &d.control_channel,
        stream_id(d.control_stream_id)?,
        query,
        r.timeout,
    ) {
        Ok(b) => b,
        // Something subscribes to the control stream but nothing answers in schema 990: a
        // driver without our admin schema (the C driver), or no driver but other clients.
        Err(tensorpool::client::AdminError::NoAnswer(waited)) => {
            return observe(args, &aeron, &r.cfg, waited);
        }
        Err(e) => return Err(e.into()),
    };
    let msg = AnyMessage::decode(&bytes)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&msg)?);
        return Ok(());
    }
    match msg {
        AnyMessage::DriverStatusResponse(s) => print_status(&s),
        AnyMessage::DriverLeasesResponse(l) => print_leases(&l),
        AnyMessage::DriverStreamsResponse(s) => print_streams(&s),
        other => return Err(format!("unexpected answer {}", other.name()).into()),
    }
    Ok(())
}

fn print_status(s: &DriverStatusResponse<'_>) {
    println!("instance_id: {}", s.instance_id.as_str().unwrap_or("?"));
    println!("state: {:?}", s.state);
    println!("pid: {}", s.pid);
    println!(
        "uptime_ms: {}",
        s.now_ns.saturating_sub(s.start_timestamp_ns) / 1_000_000
    );
    println!("shm_base_dir: {}", s.shm_base_dir.as_str().unwrap_or("?"));
    println!("streams: {}", s.stream_count);
    println!(
        "leases: {} ({} producers, {} consumers)",
        s.lease_count, s.producer_count, s.consumer_count
    );
    println!(
        "attaches granted/rejected: {}/{}",
        s.attaches_granted, s.attaches_rejected
    );
    println!("keepalives: {}", s.keepalives);
    println!(
        "leases detached/expired/revoked: {}/{}/{}",
        s.leases_detached, s.leases_expired, s.leases_revoked
    );
    println!("epoch bumps: {}", s.epoch_bumps);
    println!("announces sent: {}", s.announces_sent);
    println!("messages dropped: {}", s.messages_dropped);
}

fn print_leases(l: &DriverLeasesResponse<'_>) {
    println!(
        "{:>20} {:>10} {:>10} {:>8} {:>10} {:>20} {:>12}",
        "lease_id", "stream_id", "client_id", "role", "node_id", "epoch", "expires_in_ms"
    );
    for e in l.leases.iter() {
        let node = e.node_id.map_or("-".to_owned(), |n| n.to_string());
        let left = e.expiry_timestamp_ns.saturating_sub(l.now_ns) / 1_000_000;
        println!(
            "{:>20} {:>10} {:>10} {:>8} {:>10} {:>20} {:>12}",
            e.lease_id,
            e.stream_id,
            e.client_id,
            format!("{:?}", e.role),
            node,
            e.epoch,
            left
        );
    }
}

fn print_streams(s: &DriverStreamsResponse<'_>) {
    println!(
        "{:>10} {:>20} {:>8} {:>6} {:>10} {:>9} {:>7}  profile / header uri",
        "stream_id", "epoch", "nslots", "pools", "producer", "consumers", "dynamic"
    );
    for e in s.streams.iter() {
        let epoch = e.epoch.map_or("-".to_owned(), |v| v.to_string());
        let producer = e
            .producer_client_id
            .map_or("-".to_owned(), |v| v.to_string());
        println!(
            "{:>10} {:>20} {:>8} {:>6} {:>10} {:>9} {:>7}  {} {}",
            e.stream_id,
            epoch,
            e.header_nslots,
            e.pool_count,
            producer,
            e.consumer_count,
            e.dynamic,
            e.profile.as_str().unwrap_or("?"),
            e.header_region_uri.as_str().unwrap_or("")
        );
    }
}

fn reason(text: &str) -> Result<ShutdownReason, CmdError> {
    match text.to_ascii_lowercase().as_str() {
        "normal" => Ok(ShutdownReason::Normal),
        "admin" => Ok(ShutdownReason::Admin),
        "error" => Ok(ShutdownReason::Error),
        other => Err(format!("--reason {other:?}: expected normal, admin or error").into()),
    }
}

/// Sends the shutdown request (and with `--wait`, waits for `ShmDriverShutdown`).
pub(crate) fn shutdown(args: &ShutdownArgs) -> Result<(), CmdError> {
    let r = args.endpoint.resolve()?;
    let aeron = AeronClient::connect(&r.aeron_dir, r.timeout)?;
    let d = &r.cfg.driver;
    let id = stream_id(d.control_stream_id)?;
    let mut sub = aeron.add_subscription(&d.control_channel, id, r.timeout)?;
    let correlation_id = request_shutdown(
        &aeron,
        &d.control_channel,
        id,
        &args.token,
        reason(&args.reason)?,
        &args.message,
        r.timeout,
    )?;
    println!("shutdown request sent (correlation_id={correlation_id})");
    if !args.wait {
        return Ok(());
    }
    let wait = Duration::from_millis(u64::from(r.cfg.policies.shutdown_timeout_ms)) + r.timeout;
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        let mut seen = None;
        sub.poll(
            |buf, _| {
                let is_notice = peek_header(buf).is_ok_and(|h| {
                    h.schema_id == driver::SCHEMA_ID
                        && h.template_id == ShmDriverShutdown::TEMPLATE_ID
                });
                if is_notice && let Ok(s) = ShmDriverShutdown::decode(buf) {
                    seen = Some(s.reason);
                }
            },
            64,
        )?;
        if let Some(reason) = seen {
            println!("driver shut down (reason {reason:?})");
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Err(format!("no ShmDriverShutdown within {wait:?}: wrong token, or shutdown disabled (empty policies.shutdown_token)").into())
}

/// What `observe` saw of one kind of message.
#[derive(Debug, Default)]
struct Seen {
    count: u64,
    /// `ShmPoolAnnounce`: (stream id, latest epoch, producer id) per stream.
    announces: std::collections::BTreeMap<u32, (u64, u32)>,
}

/// Watches the driver's control, announce and QoS streams for `--observe-ms` and reports
/// what went by: the fallback for a driver that does not answer admin requests.
fn observe(
    args: &QueryArgs,
    aeron: &AeronClient,
    cfg: &tensorpool::driver::DriverConfig,
    waited: Duration,
) -> Result<(), CmdError> {
    let d = &cfg.driver;
    let mut endpoints = vec![(d.control_channel.clone(), stream_id(d.control_stream_id)?)];
    for e in [
        (d.announce_channel.clone(), stream_id(d.announce_stream_id)?),
        (d.qos_channel.clone(), stream_id(d.qos_stream_id)?),
    ] {
        if !endpoints.contains(&e) {
            endpoints.push(e);
        }
    }
    let mut subs = Vec::new();
    for (channel, id) in &endpoints {
        let ch = tensorpool::streams::untethered_subscription_channel(channel);
        subs.push(aeron.add_subscription(&ch, *id, Duration::from_secs(5))?);
    }
    let mut seen: std::collections::BTreeMap<&'static str, Seen> = Default::default();
    let window = Duration::from_millis(args.observe_ms);
    let end = Instant::now() + window;
    while Instant::now() < end {
        let mut n = 0;
        for sub in &mut subs {
            n += sub
                .poll(
                    |buf, _| {
                        let Ok(m) = AnyMessage::decode(buf) else {
                            return;
                        };
                        let name = m.name();
                        if !matches!(
                            name,
                            "ShmPoolAnnounce"
                                | "QosProducer"
                                | "QosConsumer"
                                | "ShmLeaseRevoked"
                                | "ShmDriverShutdown"
                        ) {
                            return;
                        }
                        let e = seen.entry(name).or_default();
                        e.count += 1;
                        if let AnyMessage::ShmPoolAnnounce(a) = &m {
                            e.announces.insert(a.stream_id, (a.epoch, a.producer_id));
                        }
                    },
                    64,
                )
                .unwrap_or(0);
        }
        if n == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let streams: Vec<String> = endpoints
        .iter()
        .map(|(c, id)| format!("{c}#{id}"))
        .collect();
    if args.json {
        let messages: serde_json::Map<String, serde_json::Value> = seen
            .iter()
            .map(|(k, v)| ((*k).to_owned(), serde_json::json!(v.count)))
            .collect();
        let announces: Vec<serde_json::Value> = seen
            .get("ShmPoolAnnounce")
            .map(|s| {
                s.announces
                    .iter()
                    .map(|(id, (epoch, producer))| {
                        serde_json::json!({"stream_id": id, "epoch": epoch, "producer_id": producer})
                    })
                    .collect()
            })
            .unwrap_or_default();
        println!(
            "{}",
            serde_json::json!({
                "admin_schema": false,
                "admin_timeout_ms": u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
                "observed_ms": args.observe_ms,
                "streams": streams,
                "messages": messages,
                "announces": announces,
            })
        );
    } else {
        println!(
            "the driver does not speak the admin schema (id 990): no answer within {waited:?}"
        );
        println!("observed {} for {window:?}:", streams.join(", "));
        if seen.is_empty() {
            println!("  nothing");
        }
        for (name, s) in &seen {
            println!("  {name}: {}", s.count);
            for (id, (epoch, producer)) in &s.announces {
                println!("    stream {id} epoch {epoch} producer {producer}");
            }
        }
    }
    if seen.is_empty() {
        return Err("no admin answer and nothing observed on the driver's streams".into());
    }
    Ok(())
}
