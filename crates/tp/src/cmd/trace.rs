//! `tp trace`: TraceLink lineage as it happens. Listens for `TraceLinkSet`s (metadata
//! stream) and, to name the frames, for traced `FrameDescriptor`s (descriptor stream); for
//! every link set prints the derived frame and its ancestors down to the roots.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tensorpool::tracelink::{FrameRef, TraceGraph, TraceIdGenerator};
use tensorpool_aeron::{AeronClient, Subscription};
use tensorpool_codec::tracelink::TraceLinkSet;
use tensorpool_codec::wire::FrameDescriptor;
use tensorpool_codec::{AnyMessage, MessageHeader};

use super::CmdError;
use super::endpoints::Endpoints;
use super::util::{self, Backoff};

/// One-line description (`tp trace -h`).
pub const ABOUT: &str = "Print the lineage of derived frames (TraceLink)";

/// What `tp trace --help` says.
pub const LONG_ABOUT: &str = "Print the lineage of derived frames (TraceLink).

Listens for TraceLinkSet messages on the metadata stream (default 1300; a join stage sends
one for every frame it derives from several parents) and for FrameDescriptors on the
descriptor stream (default 1100) to learn which frame carries which trace id. For every
link set it prints the derived frame and its ancestors, one per line, indented by
generation, each with its stream, epoch and seq when seen and the node id and millisecond
its id was minted at (the default trace id layout: 10-bit node, 12-bit sequence). Invalid
link sets (zero or repeated parents, no parent, a zero trace id) are printed as INVALID
with the reason. Channels and stream ids come from --config (a driver TOML) or the
defaults; --channel and --stream-id override the metadata stream.";

/// Examples, shown after the flags.
pub const EXAMPLES: &str = "Examples:
  tp trace
  tp trace --trace 0x68a1b2c3d4e5f607 --json
  tp trace --channel 'aeron:udp?endpoint=239.1.1.1:40456' --stream-id 3002 --no-descriptors";

/// Flags of `tp trace`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Aeron directory [default: driver.aeron_dir of --config, AERON_DIR, /dev/shm/aeron-<user>].
    #[arg(long, value_name = "DIR")]
    aeron_dir: Option<PathBuf>,
    /// Driver TOML to read the channels and stream ids from.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Channel of the TraceLinkSets (instead of the metadata channel).
    #[arg(long, value_name = "CHANNEL")]
    channel: Option<String>,
    /// Stream id of the TraceLinkSets (instead of the metadata stream).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
    stream_id: Option<i32>,
    /// Do not listen to the descriptor stream (frames are then shown by trace id only).
    #[arg(long)]
    no_descriptors: bool,
    /// Show only link sets whose lineage contains this trace id (decimal or 0x hex).
    #[arg(long, value_name = "ID", value_parser = parse_id)]
    trace: Option<u64>,
    /// Generations of ancestors to print.
    #[arg(long, default_value_t = 16, value_name = "N")]
    depth: usize,
    /// Trace ids to remember (frames and links), oldest forgotten first.
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    capacity: usize,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
    /// One JSON object per link set.
    #[arg(long)]
    json: bool,
    /// How long to wait for the media driver.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    timeout: u64,
}

fn parse_id(s: &str) -> Result<u64, String> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.map_err(|_| format!("`{s}`: expected a trace id (decimal or 0x hex)"))
}

/// Runs `tp trace`.
pub fn run(args: &Args) -> Result<(), CmdError> {
    if let Some(d) = args.duration
        && !(d.is_finite() && d >= 0.0)
    {
        return Err(format!("--duration {d}: expected a number of seconds >= 0").into());
    }
    let endpoints = Endpoints::load(args.config.as_deref())?;
    let dir = util::aeron_dir(args.aeron_dir.as_ref().or(endpoints.aeron_dir.as_ref()));
    let timeout = Duration::from_secs(args.timeout);
    let client = AeronClient::connect(&dir, timeout)?;
    let links_channel = args
        .channel
        .clone()
        .unwrap_or_else(|| endpoints.metadata.channel.clone());
    let links_stream = args.stream_id.unwrap_or(endpoints.metadata.stream_id);
    // untethered: an observer never holds a publication back
    let sub = |channel: &str, stream: i32| {
        client.add_subscription(
            &tensorpool::streams::untethered_subscription_channel(channel),
            stream,
            timeout,
        )
    };
    let mut links = sub(&links_channel, links_stream)?;
    eprintln!(
        "tp trace: link sets on {links_channel} stream {links_stream} (aeron dir {})",
        dir.display()
    );
    let mut descriptors = if args.no_descriptors {
        None
    } else {
        let d = &endpoints.descriptor;
        eprintln!("tp trace: frames on {} stream {}", d.channel, d.stream_id);
        Some(sub(&d.channel, d.stream_id)?)
    };
    trace(&mut links, descriptors.as_mut(), args)
}

fn trace(
    links: &mut Subscription,
    mut descriptors: Option<&mut Subscription>,
    args: &Args,
) -> Result<(), CmdError> {
    let deadline = args
        .duration
        .map(|d| Instant::now() + Duration::from_secs_f64(d));
    let mut graph = TraceGraph::new(args.capacity);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut backoff = Backoff::default();
    let mut lines: Vec<String> = Vec::new();
    while deadline.is_none_or(|d| Instant::now() < d) {
        let mut work = 0;
        if let Some(d) = descriptors.as_deref_mut() {
            work += d.poll(
                |msg, _| {
                    if let Ok(AnyMessage::FrameDescriptor(FrameDescriptor {
                        stream_id,
                        epoch,
                        seq,
                        trace_id: Some(t),
                        ..
                    })) = AnyMessage::decode_any_version(msg)
                    {
                        graph.record_frame(
                            t,
                            FrameRef {
                                stream_id,
                                epoch,
                                seq,
                            },
                        );
                    }
                },
                256,
            )?;
        }
        work += links.poll(
            |msg, _| {
                if let Some(line) = on_link_message(&mut graph, msg, args) {
                    lines.push(line);
                }
            },
            64,
        )?;
        for line in lines.drain(..) {
            if let Err(e) = writeln!(out, "{line}") {
                // the reader went away (`| head`): nothing left to do
                return if e.kind() == std::io::ErrorKind::BrokenPipe {
                    Ok(())
                } else {
                    Err(e.into())
                };
            }
        }
        if work == 0 {
            out.flush()?;
            backoff.idle();
        } else {
            backoff.reset();
        }
    }
    out.flush()?;
    Ok(())
}

/// The output for one message of the link stream: `None` for other messages and for link
/// sets the `--trace` filter hides.
fn on_link_message(graph: &mut TraceGraph, msg: &[u8], args: &Args) -> Option<String> {
    let header = MessageHeader::decode(msg).ok()?;
    if header.schema_id != tensorpool_codec::tracelink::SCHEMA_ID {
        return None;
    }
    let time = util::rfc3339_utc(tensorpool_agent::realtime_ns());
    let set = match AnyMessage::decode_any_version(msg) {
        Ok(AnyMessage::TraceLinkSet(set)) => set,
        Ok(_) => return None,
        Err(e) => return Some(invalid(&time, &e.to_string(), None, args.json)),
    };
    if let Err(e) = graph.record_links(&set) {
        return Some(invalid(&time, &e.to_string(), Some(&set), args.json));
    }
    let lineage = graph.lineage(set.trace_id, args.depth);
    if let Some(wanted) = args.trace
        && !lineage.iter().any(|n| n.trace_id == wanted)
    {
        return None;
    }
    if args.json {
        return Some(
            json!({
                "time": time,
                "trace_id": set.trace_id,
                "stream_id": set.stream_id,
                "epoch": set.epoch,
                "seq": set.seq,
                "parents": set.parents.iter().map(|p| p.trace_id).collect::<Vec<_>>(),
                "lineage": lineage.iter().map(|n| node_json(n.depth, n.trace_id, n.frame)).collect::<Vec<_>>(),
            })
            .to_string(),
        );
    }
    let mut text = format!(
        "{time} TraceLinkSet {} <- {} parents",
        describe(set.trace_id, Some(frame_of(&set))),
        set.parents.len()
    );
    for n in lineage.iter().skip(1) {
        text.push('\n');
        text.push_str(&"  ".repeat(n.depth));
        text.push_str(&describe(n.trace_id, n.frame));
    }
    Some(text)
}

fn frame_of(set: &TraceLinkSet<'_>) -> FrameRef {
    FrameRef {
        stream_id: set.stream_id,
        epoch: set.epoch,
        seq: set.seq,
    }
}

/// Node id and minting time of an id in the default layout.
fn parts(trace_id: u64) -> (u64, String) {
    let layout = TraceIdGenerator::new(0).expect("node 0 fits");
    let p = layout.split(trace_id);
    (
        p.node_id,
        util::rfc3339_utc(p.timestamp_ms.saturating_mul(1_000_000)),
    )
}

fn describe(trace_id: u64, frame: Option<FrameRef>) -> String {
    let (node, minted) = parts(trace_id);
    let frame = match frame {
        Some(f) => format!("stream {} epoch {} seq {}", f.stream_id, f.epoch, f.seq),
        None => "(frame not seen)".to_owned(),
    };
    format!("{trace_id:#018x} {frame} node {node} minted {minted}")
}

fn node_json(depth: usize, trace_id: u64, frame: Option<FrameRef>) -> Value {
    let (node, minted) = parts(trace_id);
    json!({
        "depth": depth,
        "trace_id": trace_id,
        "node_id": node,
        "minted": minted,
        "frame": frame,
    })
}

fn invalid(time: &str, reason: &str, set: Option<&TraceLinkSet<'_>>, as_json: bool) -> String {
    if as_json {
        return json!({
            "time": time,
            "invalid": reason,
            "trace_id": set.map(|s| s.trace_id),
            "stream_id": set.map(|s| s.stream_id),
            "seq": set.map(|s| s.seq),
        })
        .to_string();
    }
    match set {
        Some(s) => format!(
            "{time} INVALID TraceLinkSet {:#018x} stream {} seq {}: {reason}",
            s.trace_id, s.stream_id, s.seq
        ),
        None => format!("{time} INVALID TraceLinkSet: {reason}"),
    }
}
