//! `tp join`: a join stage (Join Barrier v1.0) over N input streams. Prints every joined set,
//! or with `--output` republishes each set as one frame (the concatenation of the inputs'
//! payloads) with its `TraceLinkSet` (TraceLink v1.0). docs/join.md, docs/tools.md.

use std::io::Write;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tensorpool::join::{
    JoinBarrier, JoinKey, JoinMode, JoinOutput, JoinStage, JoinedSet, LatestOrder, SequenceInput,
    SequenceMergeMap, SequenceRule, TimestampInput, TimestampMergeMap, TimestampRule,
};
use tensorpool::prelude::*;
use tensorpool::producer::RegionMode;
use tensorpool::streams::DriverEndpoints;
use tensorpool_agent::{IdleStrategy, IdleStrategyKind};
use tensorpool_codec::merge::{ClockDomain, TimestampSource};

use super::{CmdError, produce, util};

/// Which rule decides when a set is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeArg {
    /// Sequence alignment (OFFSET / WINDOW rules on the inputs' seq).
    Sequence,
    /// Timestamp alignment (OFFSET_NS / WINDOW_NS rules), paced by the first input.
    Timestamp,
    /// Each input's newest frame, whenever one moved.
    Latest,
}

/// Which timestamp the timestamp rules read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SourceArg {
    /// `SlotHeader.timestamp_ns` (every producer stamps it).
    Slot,
    /// `FrameDescriptor.timestamp_ns` (null unless the producer sets it).
    Descriptor,
}

/// One `--input STREAM[:RULE]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputArg {
    stream_id: u32,
    rule: RuleArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RuleArg {
    Default,
    Offset(i32),
    Window(u32),
    OffsetNs(i64),
    WindowNs(u64),
}

impl FromStr for InputArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let expected =
            "expected STREAM[:offset=K|:window=N|:offset-ns=K|:window-ns=W], e.g. 10001:offset=-1";
        let (stream, rule) = match s.split_once(':') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let stream_id = stream
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|&id| id != 0)
            .ok_or_else(|| format!("`{s}`: bad stream id; {expected}"))?;
        let rule = match rule.map(|r| r.split_once('=')) {
            None => RuleArg::Default,
            Some(None) => return Err(format!("`{s}`: {expected}")),
            Some(Some((k, v))) => {
                let bad = || format!("`{s}`: bad value `{v}` for {k}; {expected}");
                match k.trim() {
                    "offset" => RuleArg::Offset(v.trim().parse().map_err(|_| bad())?),
                    "window" => {
                        RuleArg::Window(v.trim().parse().ok().filter(|&n| n > 0).ok_or_else(bad)?)
                    }
                    "offset-ns" => RuleArg::OffsetNs(v.trim().parse().map_err(|_| bad())?),
                    "window-ns" => RuleArg::WindowNs(v.trim().parse().map_err(|_| bad())?),
                    _ => return Err(format!("`{s}`: unknown rule `{k}`; {expected}")),
                }
            }
        };
        Ok(Self { stream_id, rule })
    }
}

/// Flags of `tp join`. Input consumers take their settings like `tp consume` (defaults,
/// `--config` [consumer] table, `CONSUMER_*`, then these flags); the output producer like
/// `tp produce` ([producer] table, `PRODUCER_*`).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// An input stream and its rule: STREAM, STREAM:offset=K, STREAM:window=N (sequence
    /// mode), STREAM:offset-ns=K, STREAM:window-ns=W (timestamp mode); default offset 0.
    /// Repeat for each input (at most 16), in the map's order
    #[arg(long = "input", value_name = "STREAM[:RULE]", required = true)]
    inputs: Vec<InputArg>,
    /// Join rule
    #[arg(long, value_enum, default_value = "sequence")]
    mode: ModeArg,
    /// Output stream id (the merge map's outStreamId; with --output, the stream written)
    #[arg(long, default_value_t = 9000)]
    out_stream_id: u32,
    /// Output epoch of the merge map
    #[arg(long, default_value_t = 1)]
    epoch: u64,
    /// Stale timeout: an input silent this long no longer blocks a set (absent from it)
    #[arg(long, value_name = "MS")]
    stale_timeout_ms: Option<u64>,
    /// Timestamp mode: lateness budget
    #[arg(long, value_name = "NS", default_value_t = 0)]
    lateness_ns: u64,
    /// Timestamp mode: which timestamp the rules read
    #[arg(long, value_enum, default_value = "slot")]
    timestamp_source: SourceArg,
    /// Apply no local map: wait for a merge-map announce on the control stream (and send
    /// map requests meanwhile); --input then names the streams to consume
    #[arg(long)]
    announced_map: bool,
    /// Republish each joined set as one frame on --out-stream-id (the inputs' payloads
    /// concatenated in rule order), with a TraceLinkSet when traced
    #[arg(long)]
    output: bool,
    /// With --output: mint trace ids on output frames with this node id (0-1023)
    /// [default: producer.trace_ids / producer.trace_node_id]
    #[arg(long, value_name = "N")]
    trace_node_id: Option<u32>,
    /// With --output: payload pool stride of the output stream (largest concatenation)
    #[arg(long, default_value_t = 262_144)]
    out_stride_bytes: u32,
    /// With --output (standalone): SHM base directory of the output's files [default:
    /// producer.shm_base_dir]
    #[arg(long)]
    shm_base_dir: Option<PathBuf>,
    /// Consumer and producer configuration: the [consumer] and [producer] tables of a TOML
    /// file (docs/roles.md)
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Exit after this many joined sets
    #[arg(long)]
    count: Option<u64>,
    /// Exit after this many seconds
    #[arg(long)]
    duration: Option<f64>,
    /// Aeron directory of the media driver [default: AERON_DIR, else driver.aeron_dir of
    /// --config]
    #[arg(long, env = "AERON_DIR")]
    aeron_dir: Option<PathBuf>,
    /// Directory announced regions must lie in [default: consumer.allowed_base_dirs]
    #[arg(long)]
    allowed_base_dir: Option<PathBuf>,
    /// One JSON object per joined set, and the summary as one JSON object on the last line
    #[arg(long)]
    json: bool,
    /// Attach inputs (and the output) through the SHM driver
    #[arg(long)]
    driver: bool,
    /// Driver mode: the driver's own configuration file (implies --driver)
    #[arg(long, value_name = "FILE")]
    driver_config: Option<PathBuf>,
    /// Idle strategy of the duty cycle (backoff, sleep:1ms, yield, ...)
    #[arg(long, default_value = "backoff")]
    idle: IdleStrategyKind,
}

/// The barrier of the flags: its mode and, unless `--announced-map`, the map applied.
fn barrier_of(args: &Args) -> Result<JoinBarrier, CmdError> {
    let mode = match args.mode {
        ModeArg::Sequence => JoinMode::Sequence,
        ModeArg::Timestamp => JoinMode::Timestamp,
        ModeArg::Latest => JoinMode::LatestValue(LatestOrder::Sequence),
    };
    let mut b = JoinBarrier::new(args.out_stream_id, mode);
    if args.announced_map {
        b.set_epoch(args.epoch);
        return Ok(b);
    }
    let stale = args.stale_timeout_ms.map(|ms| ms.saturating_mul(1_000_000));
    let now = tensorpool::monotonic_ns();
    let wrong = |i: &InputArg, what: &str| -> CmdError {
        format!(
            "--input {}: a {what} rule does not fit --mode {:?}",
            i.stream_id, args.mode
        )
        .into()
    };
    match args.mode {
        ModeArg::Sequence | ModeArg::Latest => {
            let mut inputs = Vec::new();
            for i in &args.inputs {
                let rule = match i.rule {
                    RuleArg::Default => SequenceRule::Offset(0),
                    RuleArg::Offset(k) => SequenceRule::Offset(k),
                    RuleArg::Window(n) => SequenceRule::Window(n),
                    RuleArg::OffsetNs(_) | RuleArg::WindowNs(_) => {
                        return Err(wrong(i, "timestamp"));
                    }
                };
                inputs.push(SequenceInput {
                    stream_id: i.stream_id,
                    rule,
                });
            }
            let map = SequenceMergeMap {
                out_stream_id: args.out_stream_id,
                epoch: args.epoch,
                stale_timeout_ns: stale,
                inputs,
            };
            b.apply_sequence_map(&map, now)
                .map_err(|e| format!("merge map: {e}"))?;
        }
        ModeArg::Timestamp => {
            let source = match args.timestamp_source {
                SourceArg::Slot => TimestampSource::SlotHeader,
                SourceArg::Descriptor => TimestampSource::FrameDescriptor,
            };
            let mut inputs = Vec::new();
            for i in &args.inputs {
                let rule = match i.rule {
                    RuleArg::Default => TimestampRule::OffsetNs(0),
                    RuleArg::OffsetNs(k) => TimestampRule::OffsetNs(k),
                    RuleArg::WindowNs(w) => TimestampRule::WindowNs(w),
                    RuleArg::Offset(_) | RuleArg::Window(_) => {
                        return Err(wrong(i, "sequence"));
                    }
                };
                inputs.push(TimestampInput {
                    stream_id: i.stream_id,
                    rule,
                    source,
                });
            }
            let map = TimestampMergeMap {
                out_stream_id: args.out_stream_id,
                epoch: args.epoch,
                stale_timeout_ns: stale,
                clock_domain: ClockDomain::Monotonic,
                lateness_ns: args.lateness_ns,
                inputs,
            };
            b.apply_timestamp_map(&map, now)
                .map_err(|e| format!("merge map: {e}"))?;
        }
    }
    Ok(b)
}

/// The input consumers, configured as `tp consume` configures one.
fn consumers_of(args: &Args, ctx: &Context) -> Result<Vec<Consumer>, CmdError> {
    let loaded =
        super::consume::load_consumer(args.config.as_deref(), args.driver_config.as_deref())?;
    produce::warn_unknown(&loaded.unknown_keys);
    let mut base = loaded.config;
    if let Some(dir) = &args.allowed_base_dir {
        base.allowed_base_dirs = vec![dir.clone()];
    }
    if args.driver_config.is_some() {
        base.driver = Some(produce::driver_endpoints(args.driver_config.as_deref())?);
    } else if args.driver && base.driver.is_none() {
        let mut l = tensorpool::config::Loader::open(
            args.config.as_deref(),
            &tensorpool::config::ProcessEnv,
        )?;
        base.driver = Some(DriverEndpoints::from_loader(&mut l)?);
    }
    let mut out = Vec::new();
    for i in &args.inputs {
        let mut cfg = base.clone();
        cfg.stream_id = i.stream_id;
        out.push(ctx.consumer(i.stream_id).config(cfg).build()?);
    }
    Ok(out)
}

/// The output, configured as `tp produce` configures a producer, on --out-stream-id.
fn output_of(args: &Args, ctx: &Context) -> Result<JoinOutput, CmdError> {
    let loaded = produce::load_producer(args.config.as_deref(), args.driver_config.as_deref())?;
    let mut cfg = loaded.config;
    cfg.stream_id = args.out_stream_id;
    cfg.pools[0].stride_bytes = args.out_stride_bytes;
    if let Some(dir) = &args.shm_base_dir {
        cfg.shm_base_dir = dir.clone();
    }
    if let Some(n) = args.trace_node_id {
        cfg.trace_ids = true;
        cfg.trace_node_id = Some(n);
    }
    if args.driver_config.is_some() {
        cfg.mode = RegionMode::Driver(produce::driver_endpoints(args.driver_config.as_deref())?);
    } else if args.driver && cfg.mode == RegionMode::Standalone {
        let mut l = tensorpool::config::Loader::open(
            args.config.as_deref(),
            &tensorpool::config::ProcessEnv,
        )?;
        cfg.mode = RegionMode::Driver(DriverEndpoints::from_loader(&mut l)?);
    }
    let producer = ctx.producer(args.out_stream_id).config(cfg).build()?;
    Ok(JoinOutput::new(ctx, producer)?)
}

fn key_json(key: JoinKey) -> (&'static str, u64) {
    match key {
        JoinKey::Seq(s) => ("seq", s),
        JoinKey::Time(t) => ("time_ns", t),
        JoinKey::Latest(n) => ("latest", n),
    }
}

/// One line for a set (and what publishing it gave).
fn line(set: &JoinedSet<'_, '_>, published: Option<(u64, Option<u64>)>, json: bool) -> String {
    let (kind, value) = key_json(set.key());
    if json {
        let frames: Vec<_> = set
            .frames()
            .map(|f| {
                f.map(|f| {
                    serde_json::json!({
                        "stream_id": f.stream_id(),
                        "epoch": f.epoch(),
                        "seq": f.seq(),
                        "timestamp_ns": f.timestamp_ns(),
                        "bytes": f.bytes().len(),
                        "trace_id": f.trace_id(),
                    })
                })
            })
            .collect();
        let mut v = serde_json::json!({ "set": { kind: value }, "frames": frames });
        if let Some((seq, id)) = published {
            v["published"] = serde_json::json!({"seq": seq, "trace_id": id});
        }
        v.to_string()
    } else {
        let mut s = format!("set {kind}={value}");
        for f in set.frames() {
            match f {
                Some(f) => s += &format!(" {}:{}", f.stream_id(), f.seq()),
                None => s += " absent",
            }
        }
        if let Some((seq, id)) = published {
            s += &format!(" -> seq {seq}");
            if let Some(id) = id {
                s += &format!(" trace {id:#x}");
            }
        }
        s
    }
}

/// Runs the stage until --count sets, --duration, or SIGINT / SIGTERM.
pub fn run(args: &Args) -> Result<(), CmdError> {
    if let Some(d) = args.duration
        && !(d.is_finite() && d >= 0.0)
    {
        return Err(format!("--duration {d}: expected a number of seconds >= 0").into());
    }
    let barrier = barrier_of(args)?;
    let dir = produce::aeron_dir(args.aeron_dir.as_ref(), args.config.as_deref())?;
    let ctx = Context::connect(&dir)?;
    let consumers = consumers_of(args, &ctx)?;
    let mut stage = JoinStage::new(&ctx, barrier, consumers)?;
    let mut output = match args.output {
        true => Some(output_of(args, &ctx)?),
        false => None,
    };
    eprintln!(
        "tp join: {} inputs, mode {:?}, output stream {}{}",
        args.inputs.len(),
        args.mode,
        args.out_stream_id,
        if output.is_some() {
            " (republishing)"
        } else {
            ""
        }
    );
    let stop = util::stop_flag()?;
    let mut idle = args.idle.build();
    let start = Instant::now();
    let end = args.duration.map(|d| start + Duration::from_secs_f64(d));
    let stdout = std::io::stdout();
    let mut publish_errors = 0u64;
    while !stop.load(Ordering::Acquire) {
        let mut out = stdout.lock();
        let work = stage.poll(
            |set| {
                let published = match output.as_mut() {
                    Some(o) => match o.publish_concat(set) {
                        Ok(Some(seq)) => Some((seq, o.last_trace_id())),
                        Ok(None) => None,
                        Err(e) => {
                            publish_errors += 1;
                            if publish_errors == 1 {
                                eprintln!("tp join: output: {e}");
                            }
                            None
                        }
                    },
                    None => None,
                };
                if set.recheck().is_ok() {
                    let _ = writeln!(out, "{}", line(set, published, args.json));
                }
            },
            16,
        )?;
        drop(out);
        if let Some(o) = output.as_mut() {
            o.producer_mut().do_work(tensorpool::monotonic_ns());
        }
        idle.idle_work(work);
        let sets = stage.counters().sets;
        if args.count.is_some_and(|c| sets >= c) || end.is_some_and(|e| Instant::now() >= e) {
            break;
        }
    }
    let c = stage.counters();
    let b = stage.barrier().counters();
    let o = output.as_ref().map(|o| o.counters()).unwrap_or_default();
    if args.json {
        println!(
            "{}",
            serde_json::json!({"summary": {
                "sets": c.sets, "incomplete": c.incomplete, "torn": c.torn, "skipped": c.skipped,
                "announces": c.announces, "requests_sent": c.requests_sent,
                "maps_applied": b.maps_applied, "maps_rejected": b.maps_rejected,
                "published": o.published, "published_torn": o.torn,
                "links_sent": o.links_sent, "links_dropped": o.links_dropped,
                "publish_errors": publish_errors,
            }})
        );
    } else {
        println!(
            "tp join: {} sets, {} incomplete, {} torn, {} skipped; published {}, links sent {} (dropped {})",
            c.sets, c.incomplete, c.torn, c.skipped, o.published, o.links_sent, o.links_dropped
        );
    }
    if let Some(mut o) = output {
        o.producer_mut().close();
    }
    Ok(())
}
