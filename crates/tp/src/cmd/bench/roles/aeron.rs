//! The raw Aeron baseline: a publisher that `try_claim`s each stamped message straight into
//! the term buffer (or `offer`s it, fragmented, when it is longer than one fragment) and a
//! subscriber that reads every byte of it, on an IPC channel of the same media driver or a
//! UDP channel between two hosts (`bridge`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;
use tensorpool_aeron::{AeronClient, ClaimError};
use tensorpool_agent::IdleStrategyKind;

use super::{Orders, PHASE_AFTER, PHASE_MEASURE, Pacer, Schedule, Tally, emit};
use crate::cmd::CmdError;
use crate::cmd::bench::workload::{Stamp, fill, source_frame};

/// The baseline's IPC channel: the MTU raised so that a 4 KiB message is one fragment
/// (Aeron's IPC default MTU is 1408 bytes), the term length of tensorpool's own streams.
pub const CHANNEL: &str = "aeron:ipc?term-length=4m|mtu=8192";

const TIMEOUT: Duration = Duration::from_secs(10);

/// Flags of the raw publisher.
#[derive(Debug, clap::Args)]
pub struct PubArgs {
    /// Aeron directory of the media driver
    #[arg(long)]
    aeron_dir: PathBuf,
    /// Channel
    #[arg(long, default_value = CHANNEL)]
    channel: String,
    /// Stream id
    #[arg(long)]
    stream_id: i32,
    /// Message bytes
    #[arg(long)]
    size: usize,
    /// Messages per second (0: flat out)
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Seconds of warm-up after `go`
    #[arg(long, default_value_t = 0.5)]
    warmup: f64,
    /// Seconds measured
    #[arg(long, default_value_t = 1.0)]
    duration: f64,
    /// Idle strategy while waiting for the next due message
    #[arg(long, default_value = "busy-spin")]
    idle: IdleStrategyKind,
}

/// Runs the publisher: ready once a subscriber is connected, `go`, warm-up, window, result.
pub fn run_pub(a: &PubArgs) -> Result<(), CmdError> {
    let orders = Orders::watch();
    let client = AeronClient::connect(&a.aeron_dir, TIMEOUT)?;
    let mut publication = client.add_exclusive_publication(&a.channel, a.stream_id, TIMEOUT)?;
    // a message longer than one fragment goes through `offer` (Aeron fragments it; the
    // subscriber's assembler joins it): filled and stamped in a private buffer, then copied
    // into the term buffer, like a bridge sender copying a frame out of shared memory
    let fragmented = publication.max_claim_len() < a.size;
    if a.size > publication.max_message_len() {
        return Err(format!(
            "a {}-byte message is longer than {} allows (max {})",
            a.size,
            a.channel,
            publication.max_message_len()
        )
        .into());
    }
    let mut staging = if fragmented {
        vec![0u8; a.size]
    } else {
        Vec::new()
    };
    let deadline = Instant::now() + TIMEOUT;
    while !publication.is_connected() {
        if Instant::now() >= deadline || orders.stop() {
            return Err("no subscriber connected".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    emit(&json!({"event": "ready"}));
    while !orders.go() {
        if orders.stop() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let src = source_frame(a.size);
    let start = tensorpool::monotonic_ns();
    let schedule = Schedule::new(start, a.warmup, a.duration);
    let mut pacer = Pacer::new(a.rate, start);
    let mut idle = a.idle.build();
    let (mut sent, mut back_pressured, mut seq) = ([0u64; 3], 0u64, 0u64);
    let mut pending = false;
    while !orders.stop() {
        let now = tensorpool::monotonic_ns();
        let phase = schedule.phase(now);
        if phase == PHASE_AFTER {
            break;
        }
        if !pacer.due(now) {
            idle.idle_work(0);
            continue;
        }
        if fragmented {
            // filled once per message; a retry after back pressure only stamps it again
            if !pending {
                fill(&mut staging, &src);
                pending = true;
            }
            Stamp {
                seq,
                phase,
                commit_ns: tensorpool::monotonic_ns(),
            }
            .write(&mut staging);
            match publication.offer(&staging) {
                Ok(_) => {
                    pacer.advance(now);
                    sent[phase as usize] += 1;
                    seq += 1;
                    pending = false;
                }
                Err(e) if e.is_retryable() => {
                    back_pressured += 1;
                    idle.idle_work(0);
                }
                Err(e) => return Err(format!("publishing: {e}").into()),
            }
            continue;
        }
        let result = publication.try_claim(a.size, |buf| {
            fill(buf, &src);
            let commit_ns = tensorpool::monotonic_ns();
            Stamp {
                seq,
                phase,
                commit_ns,
            }
            .write(buf);
            Ok::<(), std::convert::Infallible>(())
        });
        match result {
            Ok(_) => {
                pacer.advance(now);
                sent[phase as usize] += 1;
                seq += 1;
            }
            Err(ClaimError::Publish(e)) if e.is_retryable() => back_pressured += 1,
            Err(e) => return Err(format!("publishing: {e}").into()),
        }
    }
    emit(&json!({
        "event": "result",
        "committed": {"warmup": sent[0], "measure": sent[PHASE_MEASURE as usize]},
        "back_pressured": back_pressured,
        "skipped": pacer.skipped,
    }));
    while !orders.stop() {
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// Flags of the raw subscriber.
#[derive(Debug, clap::Args)]
pub struct SubArgs {
    /// Aeron directory of the media driver
    #[arg(long)]
    aeron_dir: PathBuf,
    /// Channel
    #[arg(long, default_value = CHANNEL)]
    channel: String,
    /// Stream id
    #[arg(long)]
    stream_id: i32,
    /// Idle strategy when a poll found nothing
    #[arg(long, default_value = "busy-spin")]
    idle: IdleStrategyKind,
}

/// Runs the subscriber until stopped, then reports.
pub fn run_sub(a: &SubArgs) -> Result<(), CmdError> {
    let orders = Orders::watch();
    let client = AeronClient::connect(&a.aeron_dir, TIMEOUT)?;
    let mut subscription = client.add_subscription(&a.channel, a.stream_id, TIMEOUT)?;
    emit(&json!({"event": "ready"}));
    let mut idle = a.idle.build();
    let mut tally = Tally::new();
    let (cpu_start, mut cycles) = (super::CpuSample::now(), 0u64);
    while !orders.stop() {
        cycles += 1;
        let work = subscription.poll(
            |msg, _| {
                tally.on_payload(msg, None, || true);
            },
            64,
        )?;
        idle.idle_work(work);
    }
    let mut result = tally.json();
    result["event"] = "result".into();
    if let (Some(s), Some(e)) = (cpu_start, super::CpuSample::now()) {
        result["polls"] = json!({
            "count": cycles,
            "on_cpu_ns_per_poll": e.on_cpu_ns.saturating_sub(s.on_cpu_ns) as f64 / cycles.max(1) as f64,
        });
    }
    emit(&result);
    Ok(())
}
