//! `tp driver attach`: a driver client process. Prints one line per event
//! (`<event> key=value ...`), so tests and scripts can follow it; with `--hold` it keeps the
//! lease (and reattaches after revocations, driver restarts, ...) until SIGINT / SIGTERM,
//! then detaches.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tensorpool::client::{AeronTransport, ClientConfig, ClientEvent, DriverClient, code_name};
use tensorpool_aeron::AeronClient;
use tensorpool_agent::monotonic_ns;
use tensorpool_codec::driver::{PublishMode, Role};

use super::Endpoint;
use crate::cmd::CmdError;
use crate::cmd::util::stop_flag;

/// Flags of `tp driver attach`.
#[derive(Debug, clap::Args)]
pub(crate) struct AttachArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    /// producer or consumer.
    #[arg(long)]
    role: String,
    /// Stream to attach to.
    #[arg(long)]
    stream_id: u32,
    /// Client id (0: a random one, renewed on collision).
    #[arg(long, default_value_t = 0)]
    client_id: u32,
    /// Create the stream if the driver allows dynamic streams (EXISTING_OR_CREATE).
    #[arg(long)]
    create: bool,
    /// Desired node id.
    #[arg(long)]
    node_id: Option<u32>,
    /// Keep the lease until SIGINT / SIGTERM (reattaching when needed).
    #[arg(long)]
    hold: bool,
}

fn line(event: &ClientEvent) -> String {
    match event {
        ClientEvent::Attached(i) => format!(
            "attached lease_id={} client_id={} stream_id={} epoch={} node_id={} layout_version={} header_nslots={} pools={} header_uri={}",
            i.lease_id,
            i.client_id,
            i.regions.stream_id,
            i.regions.epoch,
            i.node_id.map_or("-".into(), |n| n.to_string()),
            i.regions.layout_version,
            i.regions.header_nslots,
            i.regions.pools.len(),
            i.regions.header_uri
        ),
        ClientEvent::Rejected { code, message } => {
            format!("rejected code={} message={message:?}", code_name(*code))
        }
        ClientEvent::AttachTimedOut => "attach_timeout".into(),
        ClientEvent::ProtocolError(e) => format!("protocol_error error={:?}", e.to_string()),
        ClientEvent::LeaseRevoked { reason, message } => {
            format!("lease_revoked reason={reason:?} message={message:?}")
        }
        ClientEvent::LeaseLost(why) => format!("lease_lost why={why:?}"),
        ClientEvent::ProducerRevoked { lease_id } => {
            format!("producer_revoked lease_id={lease_id}")
        }
        ClientEvent::EpochChanged(r) => format!(
            "epoch_changed stream_id={} epoch={} header_uri={}",
            r.stream_id, r.epoch, r.header_uri
        ),
        ClientEvent::DriverShutdown { reason, message } => {
            format!("driver_shutdown reason={reason:?} message={message:?}")
        }
        ClientEvent::DriverLost => "driver_lost".into(),
        ClientEvent::Detached => "detached".into(),
    }
}

/// Attaches and prints what happens.
pub(crate) fn run(args: &AttachArgs) -> Result<(), CmdError> {
    let role = match args.role.to_ascii_lowercase().as_str() {
        "producer" => Role::Producer,
        "consumer" => Role::Consumer,
        other => return Err(format!("--role {other:?}: expected producer or consumer").into()),
    };
    let r = args.endpoint.resolve()?;
    let stop = stop_flag()?;
    let aeron = AeronClient::connect(&r.aeron_dir, r.timeout)?;
    let mut cfg = ClientConfig::for_driver(args.stream_id, role, &r.cfg);
    cfg.client_id = args.client_id;
    cfg.desired_node_id = args.node_id;
    cfg.attach_timeout = r.timeout.min(Duration::from_secs(2));
    if args.create {
        cfg.publish_mode = Some(PublishMode::ExistingOrCreate);
    }
    let transport = AeronTransport::new(&aeron, &cfg, r.timeout)?;
    let mut client = DriverClient::new(cfg, transport);
    let start = Instant::now();
    let mut attached = false;
    let mut detached = false;
    let mut out = std::io::stdout();
    loop {
        if stop.load(Ordering::Acquire) || (attached && !args.hold) {
            client.close();
        }
        let work = client.do_work(monotonic_ns(), &mut |event| {
            attached |= matches!(event, ClientEvent::Attached(_));
            detached |= matches!(event, ClientEvent::Detached);
            let _ = writeln!(out, "{}", line(&event));
            let _ = out.flush();
        });
        if detached {
            return Ok(());
        }
        if !attached && !args.hold && start.elapsed() > r.timeout {
            return Err(format!("no lease within {:?}", r.timeout).into());
        }
        if work == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
