//! The tensorpool producer and consumer roles, through the public API only.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;
use tensorpool::consumer::ConsumerState;
use tensorpool::prelude::*;
use tensorpool_agent::IdleStrategyKind;

use super::{
    CpuSample, Orders, PHASE_AFTER, PHASE_MEASURE, Pacer, Schedule, Tally, emit, new_histogram,
};
use crate::cmd::CmdError;
use crate::cmd::bench::workload::{Stamp, fill, source_frame};
use crate::cmd::produce::{driver_endpoints, stride_for};

/// Flags of the producer role.
#[derive(Debug, clap::Args)]
pub struct ProducerArgs {
    /// Aeron directory of the media driver
    #[arg(long)]
    aeron_dir: PathBuf,
    /// Data source (pool stream id)
    #[arg(long)]
    stream_id: u32,
    /// Payload bytes per frame
    #[arg(long)]
    size: usize,
    /// Header ring slots (standalone)
    #[arg(long, default_value_t = 64)]
    nslots: u32,
    /// Frames per second (0: flat out)
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Seconds of warm-up after `go` (frames not counted)
    #[arg(long, default_value_t = 0.5)]
    warmup: f64,
    /// Seconds measured (0: until stopped)
    #[arg(long, default_value_t = 1.0)]
    duration: f64,
    /// Idle strategy while waiting for the next due frame
    #[arg(long, default_value = "busy-spin")]
    idle: IdleStrategyKind,
    /// Standalone: create the files under this directory
    #[arg(long, conflicts_with = "driver_config")]
    shm_dir: Option<PathBuf>,
    /// Driver mode: the SHM driver's configuration file
    #[arg(long)]
    driver_config: Option<PathBuf>,
    /// Driver mode: where the driver's files lie
    #[arg(long, default_value = tensorpool_shm::layout::DEFAULT_BASE_DIR)]
    driver_base_dir: PathBuf,
    /// Put the publish time in every descriptor (for the consumer's latency breakdown; one
    /// more clock read per frame)
    #[arg(long)]
    publish_timestamp: bool,
}

fn build_producer(a: &ProducerArgs, ctx: &Context) -> Result<Producer, CmdError> {
    let stamp = a.publish_timestamp;
    let builder = ctx
        .producer(a.stream_id)
        .configure(|c| c.publish_timestamp = stamp);
    let producer = match (&a.shm_dir, &a.driver_config) {
        (Some(dir), _) => builder
            .standalone(dir)
            .header_nslots(a.nslots)
            .pool(1, stride_for(a.size)?)
            .build()?,
        (None, Some(cfg)) => builder
            .driver(driver_endpoints(Some(cfg))?, &a.driver_base_dir)
            .build()?,
        (None, None) => return Err("--shm-dir or --driver-config is required".into()),
    };
    Ok(producer)
}

/// What the producer counts.
#[derive(Debug, Default)]
struct Made {
    committed: [u64; 3],
    claim_failures: u64,
    window_start_ns: Option<u64>,
    window_end_ns: Option<u64>,
    cpu_start: Option<CpuSample>,
    cpu_end: Option<CpuSample>,
}

/// Runs the producer: ready, `go`, warm-up, measured window (result), then idles until
/// stopped (so that the consumers can finish before the files go away).
pub fn run_producer(a: &ProducerArgs) -> Result<(), CmdError> {
    let orders = Orders::watch();
    let ctx = Context::connect(&a.aeron_dir)?;
    let mut producer = build_producer(a, &ctx)?;
    emit(&json!({"event": "ready", "epoch": producer.epoch()}));
    while !orders.go() {
        if orders.stop() {
            return Ok(());
        }
        producer.do_work(tensorpool::monotonic_ns());
        std::thread::sleep(Duration::from_millis(1));
    }
    let spec = TensorSpec::new(Dtype::Uint8, &[a.size])?;
    let src = source_frame(a.size);
    let start = tensorpool::monotonic_ns();
    let schedule = Schedule::new(start, a.warmup, a.duration);
    let mut pacer = Pacer::new(a.rate, start);
    let mut idle = a.idle.build();
    let mut lateness = new_histogram();
    let mut m = Made::default();
    while !orders.stop() {
        let now = tensorpool::monotonic_ns();
        let work = producer.do_work(now);
        let phase = schedule.phase(now);
        if phase == PHASE_AFTER {
            m.window_end_ns = Some(now);
            m.cpu_end = CpuSample::now();
            break;
        }
        if phase == PHASE_MEASURE && m.window_start_ns.is_none() {
            m.window_start_ns = Some(now);
            m.cpu_start = CpuSample::now();
        }
        if !pacer.due(now) {
            idle.idle_work(work);
            continue;
        }
        let Ok(mut claim) = producer.claim(&spec) else {
            m.claim_failures += 1;
            idle.idle_work(0);
            continue;
        };
        let late = pacer.advance(now);
        if phase == PHASE_MEASURE && a.rate > 0.0 {
            lateness.saturating_record(late.max(1));
        }
        let seq = claim.seq();
        fill(claim.payload_mut(), &src);
        let commit_ns = tensorpool::monotonic_ns();
        Stamp {
            seq,
            phase,
            commit_ns,
        }
        .write(claim.payload_mut());
        claim.set_timestamp_ns(commit_ns);
        claim.commit();
        m.committed[phase as usize] += 1;
    }
    report_producer(&producer, &m, &lateness, a.rate, pacer.skipped);
    while !orders.stop() {
        producer.do_work(tensorpool::monotonic_ns());
        std::thread::sleep(Duration::from_millis(1));
    }
    producer.close();
    Ok(())
}

fn report_producer(
    producer: &Producer,
    m: &Made,
    lateness: &hdrhistogram::Histogram<u64>,
    rate: f64,
    skipped: u64,
) {
    let c = producer.counters();
    let window_ns = match (m.window_start_ns, m.window_end_ns) {
        (Some(s), Some(e)) => e.saturating_sub(s),
        _ => 0,
    };
    emit(&json!({
        "event": "result",
        "committed": {"warmup": m.committed[0], "measure": m.committed[1]},
        "window_ns": window_ns,
        "rate_offered_hz": rate,
        "skipped": skipped,
        "claim_failures": m.claim_failures,
        "descriptors_sent": c.descriptors_sent,
        "descriptors_back_pressured": c.descriptors_back_pressured,
        "descriptors_not_connected": c.descriptors_not_connected,
        "descriptor_failures": c.descriptor_failures,
        "consumers_seen": producer.consumer_count(),
        "lateness_ns": super::histogram_json(lateness),
        "cpu": m.cpu_start.map_or(serde_json::Value::Null, |c| c.json_until(m.cpu_end)),
    }));
}

/// Flags of the consumer role.
#[derive(Debug, clap::Args)]
pub struct ConsumerArgs {
    /// Aeron directory of the media driver
    #[arg(long)]
    aeron_dir: PathBuf,
    /// Data source (pool stream id)
    #[arg(long)]
    stream_id: u32,
    /// Directory announced regions must lie in
    #[arg(long)]
    allowed_base_dir: PathBuf,
    /// Driver mode: the SHM driver's configuration file (default: follow a standalone
    /// producer's announces)
    #[arg(long)]
    driver_config: Option<PathBuf>,
    /// Idle strategy when a poll found nothing
    #[arg(long, default_value = "busy-spin")]
    idle: IdleStrategyKind,
    /// Descriptors per poll
    #[arg(long, default_value_t = 64)]
    limit: usize,
    /// Split the latency at the descriptor's publish time (the producer must send it) and
    /// the handler's entry (one more clock read per frame)
    #[arg(long)]
    breakdown: bool,
}

/// Runs the consumer until stopped; prints `mapped` on every (re)mapping, then the result.
pub fn run_consumer(a: &ConsumerArgs) -> Result<(), CmdError> {
    let orders = Orders::watch();
    let ctx = Context::connect(&a.aeron_dir)?;
    let mut builder = ctx
        .consumer(a.stream_id)
        .allowed_base_dir(&a.allowed_base_dir);
    if let Some(cfg) = &a.driver_config {
        builder = builder.driver(driver_endpoints(Some(cfg))?);
    }
    let mut consumer = builder.build()?;
    emit(&json!({"event": "ready"}));
    let mut idle = a.idle.build();
    let mut tally = if a.breakdown {
        Tally::new().with_breakdown()
    } else {
        Tally::new()
    };
    let breakdown = a.breakdown;
    let mut mapped: Option<u64> = None;
    let (cpu_start, mut cycles, mut idle_cycles) = (CpuSample::now(), 0u64, 0u64);
    while !orders.stop() {
        cycles += 1;
        let work = consumer.poll(
            |f: &Frame<'_>| {
                let entered = if breakdown {
                    tensorpool::monotonic_ns()
                } else {
                    0
                };
                let done = tally.on_payload(f.bytes(), Some(f.seq()), || f.recheck().is_ok());
                if let (Some((stamp, accepted)), Some(published)) = (done, f.publish_timestamp_ns())
                {
                    tally.split(stamp.commit_ns, published, entered, accepted);
                }
            },
            a.limit,
        )?;
        if let ConsumerState::Mapped { epoch } = consumer.state()
            && mapped != Some(epoch)
        {
            mapped = Some(epoch);
            emit(&json!({"event": "mapped", "epoch": epoch, "t_ns": tensorpool::monotonic_ns()}));
        }
        idle_cycles += u64::from(work == 0);
        idle.idle_work(work);
    }
    let cpu_end = CpuSample::now();
    let drops = consumer.drops();
    let mut by_cause = serde_json::Map::new();
    for (cause, n) in drops.iter() {
        by_cause.insert(cause.name().into(), n.into());
    }
    let mut result = tally.json();
    result["event"] = "result".into();
    result["drops"] = by_cause.into();
    result["gap"] = drops.gap.into();
    result["accepted_total"] = consumer.counters().accepted.into();
    // the duty cycle's cost: on-CPU time per poll (idle polls dominate a busy-spinning run)
    if let (Some(s), Some(e)) = (cpu_start, cpu_end) {
        result["polls"] = json!({
            "count": cycles,
            "idle": idle_cycles,
            "on_cpu_ns_per_poll": e.on_cpu_ns.saturating_sub(s.on_cpu_ns) as f64 / cycles.max(1) as f64,
        });
    }
    emit(&result);
    Ok(())
}
