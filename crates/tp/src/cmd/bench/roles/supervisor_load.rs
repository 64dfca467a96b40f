//! The supervisor benchmark's load: N simulated consumers (distinct consumer ids) each
//! sending a `ConsumerHello` on the control stream and a `QosConsumer` on the QoS stream
//! once per period, spread evenly over the period, from one process.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;
use tensorpool::config::NoEnv;
use tensorpool::supervisor::SupervisorConfig;
use tensorpool_aeron::AeronClient;
use tensorpool_codec::wire::{ConsumerHello, Mode, QosConsumer};
use tensorpool_codec::{Bytes, Message};

use super::{Orders, emit};
use crate::cmd::CmdError;

const TIMEOUT: Duration = Duration::from_secs(10);

/// Flags of the load process.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// Aeron directory of the media driver
    #[arg(long)]
    aeron_dir: PathBuf,
    /// Simulated consumers (consumer ids 1..=N)
    #[arg(long, default_value_t = 256)]
    consumers: u32,
    /// Hellos (and QoS) per consumer per second
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    /// Data source stream id of every consumer
    #[arg(long, default_value_t = 10_000)]
    stream_id: u32,
}

/// Runs the load until stopped; reports the messages sent.
pub fn run(a: &LoadArgs) -> Result<(), CmdError> {
    let orders = Orders::watch();
    let cfg = SupervisorConfig::from_toml("", &NoEnv)?;
    let client = AeronClient::connect(&a.aeron_dir, TIMEOUT)?;
    let ctrl_id = i32::try_from(cfg.control_stream_id).map_err(|_| "control stream id")?;
    let qos_id = i32::try_from(cfg.qos_stream_id).map_err(|_| "qos stream id")?;
    let mut control = client.add_publication(&cfg.control_channel, ctrl_id, TIMEOUT)?;
    let mut qos = client.add_publication(&cfg.qos_channel, qos_id, TIMEOUT)?;
    emit(&json!({"event": "ready"}));
    while !orders.go() {
        if orders.stop() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let n = a.consumers.max(1);
    let step_ns = (1e9 / (a.rate.max(0.001) * f64::from(n))) as u64;
    let mut buf = [0u8; 256];
    let (mut sent, mut refused) = (0u64, 0u64);
    let mut next = tensorpool::monotonic_ns();
    let mut k: u32 = 0;
    let mut seq: u64 = 0;
    while !orders.stop() {
        let now = tensorpool::monotonic_ns();
        if now < next {
            std::thread::sleep(Duration::from_nanos((next - now).min(1_000_000)));
            continue;
        }
        next += step_ns;
        let consumer_id = k + 1;
        k = (k + 1) % n;
        if k == 0 {
            seq += 1;
        }
        let len = ConsumerHello {
            stream_id: a.stream_id,
            consumer_id,
            supports_shm: true,
            supports_progress: false,
            mode: Mode::Stream,
            max_rate_hz: 0,
            expected_layout_version: 1,
            progress_interval_us: None,
            progress_bytes_delta: None,
            progress_major_delta_units: None,
            descriptor_stream_id: 0,
            control_stream_id: 0,
            descriptor_channel: Bytes::new(b""),
            control_channel: Bytes::new(b""),
        }
        .encode(&mut buf)?;
        match control.offer(&buf[..len]) {
            Ok(_) => sent += 1,
            Err(_) => refused += 1,
        }
        let len = QosConsumer {
            stream_id: a.stream_id,
            consumer_id,
            epoch: 1,
            last_seq_seen: seq,
            drops_gap: 0,
            drops_late: 0,
            mode: Mode::Stream,
        }
        .encode(&mut buf)?;
        match qos.offer(&buf[..len]) {
            Ok(_) => sent += 1,
            Err(_) => refused += 1,
        }
    }
    emit(&json!({"event": "result", "sent": sent, "refused": refused}));
    Ok(())
}
