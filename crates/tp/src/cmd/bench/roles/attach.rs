//! The attacher role: attach to the SHM driver as CONSUMER, detach, again, `count` times,
//! timing each attach round trip (request sent -> lease granted and validated) and each
//! detach round trip. The library's [`DriverClient`] does the protocol; its Aeron
//! publication and subscriptions are set up once and lent to a fresh client per attach, so
//! that only the protocol round trip is timed.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;
use tensorpool::client::{
    AeronTransport, ClientConfig, ClientEvent, ClientState, ClientTransport, DriverClient,
};
use tensorpool::config::ProcessEnv;
use tensorpool::control::MessageSink;
use tensorpool::driver::DriverConfig;
use tensorpool_aeron::AeronClient;
use tensorpool_agent::IdleStrategyKind;
use tensorpool_codec::driver::Role;

use super::{Orders, emit, histogram_json, new_histogram};
use crate::cmd::CmdError;

const TIMEOUT: Duration = Duration::from_secs(10);
/// Longest one round trip may take before the run is given up.
const ROUND_TRIP_LIMIT_NS: u64 = 5_000_000_000;

/// Flags of the attacher.
#[derive(Debug, clap::Args)]
pub struct AttacherArgs {
    /// Aeron directory of the media driver
    #[arg(long)]
    aeron_dir: PathBuf,
    /// The SHM driver's configuration file
    #[arg(long)]
    driver_config: PathBuf,
    /// Stream to attach to
    #[arg(long)]
    stream_id: u32,
    /// Timed attaches
    #[arg(long, default_value_t = 1000)]
    count: u32,
    /// Untimed attaches first
    #[arg(long, default_value_t = 20)]
    warmup_count: u32,
    /// Milliseconds of quiet before each attach (0: back to back)
    #[arg(long, default_value_t = 0.0)]
    gap_ms: f64,
    /// Idle strategy while waiting for an answer
    #[arg(long, default_value = "busy-spin")]
    idle: IdleStrategyKind,
}

/// Lends one [`AeronTransport`] to a short-lived client.
struct Lent<'a>(&'a mut AeronTransport);

impl ClientTransport for Lent<'_> {
    fn control(&mut self) -> &mut dyn MessageSink {
        self.0.control()
    }

    fn poll(&mut self, handler: &mut dyn FnMut(&[u8]), limit: usize) -> usize {
        self.0.poll(handler, limit)
    }

    fn join_time_ns(&self) -> Option<u64> {
        self.0.join_time_ns()
    }
}

/// Drives `client` until `done` says so; returns the elapsed ns.
fn drive(
    client: &mut DriverClient<Lent<'_>>,
    idle: &mut dyn tensorpool_agent::IdleStrategy,
    what: &str,
    mut done: impl FnMut(&ClientEvent) -> bool,
) -> Result<u64, CmdError> {
    let start = tensorpool::monotonic_ns();
    let mut finished = false;
    let mut last = None;
    idle.reset();
    loop {
        let now = tensorpool::monotonic_ns();
        let work = client.do_work(now, &mut |e| {
            finished |= done(&e);
            if let ClientEvent::Rejected { message, .. } = &e {
                last = Some(message.clone());
            }
        });
        if finished {
            return Ok(tensorpool::monotonic_ns() - start);
        }
        if now - start > ROUND_TRIP_LIMIT_NS {
            return Err(format!("no {what} within 5 s (last refusal: {last:?})").into());
        }
        idle.idle_work(work);
    }
}

/// Runs the attacher: ready, `go`, the attaches, the result.
pub fn run(a: &AttacherArgs) -> Result<(), CmdError> {
    let orders = Orders::watch();
    let aeron = AeronClient::connect(&a.aeron_dir, TIMEOUT)?;
    let driver = DriverConfig::load(Some(&a.driver_config), &ProcessEnv)?;
    let cfg = ClientConfig::for_driver(a.stream_id, Role::Consumer, &driver);
    let mut transport = AeronTransport::new(&aeron, &cfg, TIMEOUT)?;
    emit(&json!({"event": "ready"}));
    while !orders.go() {
        if orders.stop() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut idle = a.idle.build();
    let (mut attach, mut detach) = (new_histogram(), new_histogram());
    for i in 0..a.warmup_count + a.count {
        if orders.stop() {
            break;
        }
        if a.gap_ms > 0.0 {
            std::thread::sleep(Duration::from_secs_f64(a.gap_ms / 1000.0));
        }
        let mut client = DriverClient::new(cfg.clone(), Lent(&mut transport));
        let t_attach = drive(&mut client, idle.as_mut(), "lease", |e| {
            matches!(e, ClientEvent::Attached(_))
        })?;
        client.close();
        let t_detach = drive(&mut client, idle.as_mut(), "detach", |e| {
            matches!(e, ClientEvent::Detached)
        })?;
        debug_assert_eq!(client.state(), ClientState::Closed);
        if i >= a.warmup_count {
            attach.saturating_record(t_attach.max(1));
            detach.saturating_record(t_detach.max(1));
        }
    }
    emit(&json!({
        "event": "result",
        "attach_ns": histogram_json(&attach),
        "detach_ns": histogram_json(&detach),
    }));
    Ok(())
}
