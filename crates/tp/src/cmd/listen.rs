//! `tp listen`: every message on the shared streams, decoded, one line each.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tensorpool_aeron::{AeronClient, FragmentInfo, Subscription};
use tensorpool_codec::{AnyMessage, MessageHeader};

use super::CmdError;
use super::decode::hex_prefix;
use super::endpoints::{Endpoint, Endpoints};
use super::frames::message_names;
use super::util::{self, Backoff};

/// Which stream to listen to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// Driver / shared control stream (default 1000).
    Control,
    /// ShmPoolAnnounce streams: the driver's (default: the control stream) and standalone
    /// producers' (default 1001).
    Announce,
    /// Shared descriptor stream (default 1100).
    Descriptor,
    /// QoS stream (default 1200).
    Qos,
    /// Metadata stream (default 1300).
    Metadata,
    /// FrameProgress on the control stream (other messages hidden unless --type says).
    Progress,
    /// Control, both announce, descriptor, QoS and metadata streams at once.
    All,
}

/// One-line description (`tp listen -h`).
pub const ABOUT: &str = "Print every message on the shared streams, decoded";

/// What `tp listen --help` says.
pub const LONG_ABOUT: &str = "Print every message on the shared streams, decoded.

Subscribes to the shared streams and prints one line per message: local receive time, the
stream it came on, the message name and its fields. The driver's streams (control,
announce, QoS) and aeron_dir are read as `tp driver` reads them: from --config (a driver
TOML, validated like the driver does) or the driver's defaults, with DRIVER_* environment
overrides (defaults: control and announce 1000, QoS 1200 on aeron:ipc?term-length=4m); the
roles' shared streams are added (producers' announce 1001, descriptor 1100, metadata 1300). Messages are decoded by
schema id, then template id. A message that does not decode is printed as MALFORMED with
the reason and its first bytes. Runs until --duration ends or the process is interrupted.";

/// Examples, shown after the flags.
pub const EXAMPLES: &str = "Examples:
  tp listen all
  tp listen qos --filter-stream 10000 --json
  tp listen control --type ShmAttachRequest --type ShmAttachResponse
  tp listen announce --channel 'aeron:udp?endpoint=239.1.1.1:40456' --stream-id 3001";

/// Flags of `tp listen`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// control, announce, descriptor, qos, metadata, progress or all.
    #[arg(value_enum)]
    target: Target,
    /// Aeron directory [default: driver.aeron_dir of --config, AERON_DIR, /dev/shm/aeron-<user>].
    #[arg(long, value_name = "DIR")]
    aeron_dir: Option<PathBuf>,
    /// Driver TOML to read the channels and stream ids from.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Channel to subscribe on (instead of the configured one).
    #[arg(long, value_name = "CHANNEL")]
    channel: Option<String>,
    /// Stream id to subscribe to (not with `all`).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
    stream_id: Option<i32>,
    /// Show only messages whose stream id field is S (repeatable).
    #[arg(long, value_name = "S")]
    filter_stream: Vec<u64>,
    /// Show only messages of this type (repeatable; `malformed` for undecodable ones).
    #[arg(long = "type", value_name = "NAME")]
    types: Vec<String>,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
    /// How long to wait for the media driver.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    timeout: u64,
}

/// One subscription and the name its messages are labelled with.
struct Source {
    label: String,
    subscription: Subscription,
}

/// Which messages to print.
#[derive(Debug, Default)]
struct Filter {
    streams: Vec<u64>,
    /// Lower-case names; empty: every type.
    types: Vec<String>,
}

impl Filter {
    fn shows(&self, name: Option<&str>, body: Option<&Value>) -> bool {
        let Some(name) = name else {
            return self.types.is_empty() || self.types.iter().any(|t| t == "malformed");
        };
        if !self.types.is_empty() && !self.types.contains(&name.to_ascii_lowercase()) {
            return false;
        }
        self.streams.is_empty()
            || body
                .and_then(util::message_stream_id)
                .is_some_and(|s| self.streams.contains(&s))
    }
}

/// Runs `tp listen`.
pub fn run(args: &Args) -> Result<(), CmdError> {
    if args.target == Target::All && args.stream_id.is_some() {
        return Err("--stream-id needs one stream, not `all`".into());
    }
    if let Some(d) = args.duration
        && !(d.is_finite() && d >= 0.0)
    {
        return Err(format!("--duration {d}: expected a number of seconds >= 0").into());
    }
    let filter = filter(args)?;
    let endpoints = Endpoints::load(args.config.as_deref())?;
    let dir = util::aeron_dir(args.aeron_dir.as_ref().or(endpoints.aeron_dir.as_ref()));
    let timeout = Duration::from_secs(args.timeout);
    let client = AeronClient::connect(&dir, timeout)?;
    let mut sources = Vec::new();
    for (label, endpoint) in targets(args, &endpoints) {
        // untethered: a listener that stops reading (paused, slow terminal) must never hold
        // back the publication it watches
        let channel = tensorpool::streams::untethered_subscription_channel(&endpoint.channel);
        let subscription = client.add_subscription(&channel, endpoint.stream_id, timeout)?;
        eprintln!(
            "tp listen: {label} on {} stream {} (aeron dir {})",
            endpoint.channel,
            endpoint.stream_id,
            dir.display()
        );
        sources.push(Source {
            label,
            subscription,
        });
    }
    listen(&mut sources, &filter, args)
}

fn filter(args: &Args) -> Result<Filter, CmdError> {
    let names = message_names();
    for t in &args.types {
        if !t.eq_ignore_ascii_case("malformed") && !names.iter().any(|n| n.eq_ignore_ascii_case(t))
        {
            return Err(format!(
                "unknown message type `{t}`; expected malformed or one of {}",
                names.join(", ")
            )
            .into());
        }
    }
    let mut types: Vec<String> = args.types.iter().map(|t| t.to_ascii_lowercase()).collect();
    if args.target == Target::Progress && types.is_empty() {
        types.push("frameprogress".into());
    }
    Ok(Filter {
        streams: args.filter_stream.clone(),
        types,
    })
}

/// The streams to subscribe to, one subscription per distinct channel and stream id.
fn targets(args: &Args, e: &Endpoints) -> Vec<(String, Endpoint)> {
    let all = e.all();
    let chosen: Vec<(&str, &Endpoint)> = match args.target {
        Target::All => all.to_vec(),
        Target::Control => vec![all[0]],
        Target::Progress => vec![("progress", &e.control)],
        // the driver's announce stream and the standalone producers'
        Target::Announce => vec![all[1], all[2]],
        Target::Descriptor => vec![all[3]],
        Target::Qos => vec![all[4]],
        Target::Metadata => vec![all[5]],
    };
    let mut out: Vec<(String, Endpoint)> = Vec::new();
    for (label, endpoint) in chosen {
        let endpoint = Endpoint {
            channel: args
                .channel
                .clone()
                .unwrap_or_else(|| endpoint.channel.clone()),
            stream_id: args.stream_id.unwrap_or(endpoint.stream_id),
        };
        match out.iter_mut().find(|(_, e)| *e == endpoint) {
            Some((l, _)) => {
                if !l.split('+').any(|x| x == label) {
                    l.push('+');
                    l.push_str(label);
                }
            }
            None => out.push((label.to_owned(), endpoint)),
        }
    }
    out
}

fn listen(sources: &mut [Source], filter: &Filter, args: &Args) -> Result<(), CmdError> {
    let deadline = args
        .duration
        .map(|d| Instant::now() + Duration::from_secs_f64(d));
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut backoff = Backoff::default();
    let mut failed: Option<std::io::Error> = None;
    while deadline.is_none_or(|d| Instant::now() < d) {
        let mut work = 0;
        for source in sources.iter_mut() {
            let label = source.label.as_str();
            work += source.subscription.poll(
                |msg, info| {
                    if failed.is_some() {
                        return;
                    }
                    if let Some(line) = render(label, msg, &info, filter, args.json)
                        && let Err(e) = writeln!(out, "{line}")
                    {
                        failed = Some(e);
                    }
                },
                64,
            )?;
        }
        match failed.take() {
            // The reader went away (`| head`): nothing left to do.
            Some(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Some(e) => return Err(e.into()),
            None => {}
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

/// One output line for a message, or `None` when the filter hides it.
fn render(
    label: &str,
    msg: &[u8],
    info: &FragmentInfo,
    filter: &Filter,
    as_json: bool,
) -> Option<String> {
    let unix_ns = tensorpool_agent::realtime_ns();
    let time = util::rfc3339_utc(unix_ns);
    let header = MessageHeader::decode(msg).ok();
    let decoded = AnyMessage::decode_any_version(msg);
    let (name, body, error) = match &decoded {
        Ok(m) => (Some(m.name()), serde_json::to_value(m).ok(), None),
        Err(e) => (None, None, Some(e.to_string())),
    };
    if !filter.shows(name, body.as_ref()) {
        return None;
    }
    if as_json {
        let mut line = json!({
            "time": time,
            "unix_ns": unix_ns,
            "source": label,
            "aeron_stream_id": info.stream_id,
            "session_id": info.session_id,
            "len": msg.len(),
            "header": header.map(|h| json!({
                "block_length": h.block_length,
                "template_id": h.template_id,
                "schema_id": h.schema_id,
                "version": h.version,
            })),
            "message": name.unwrap_or("malformed"),
        });
        if let Some(map) = line.as_object_mut() {
            match body {
                Some(body) => map.insert("body".into(), body),
                None => {
                    map.insert("error".into(), error.unwrap_or_default().into());
                    map.insert("hex".into(), hex_prefix(msg).into())
                }
            };
        }
        return Some(line.to_string());
    }
    let source = format!("{label}:{}", info.stream_id);
    Some(match (name, body) {
        (Some(name), Some(mut body)) => {
            if let Some(map) = body.as_object_mut() {
                map.shift_remove("message");
            }
            format!("{time} {source} {name} {}", util::json_to_kv(&body))
        }
        _ => format!(
            "{time} {source} MALFORMED ({} bytes) {} hex={}",
            msg.len(),
            error.unwrap_or_default(),
            hex_prefix(msg)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn args(line: &[&str]) -> Args {
        let mut argv = vec!["listen"];
        argv.extend_from_slice(line);
        Cli::parse_from(argv).args
    }

    fn labels(a: &Args, e: &Endpoints) -> Vec<(String, i32)> {
        targets(a, e)
            .into_iter()
            .map(|(l, e)| (l, e.stream_id))
            .collect()
    }

    #[test]
    fn all_subscribes_once_per_distinct_stream() {
        let mut e = Endpoints::defaults();
        // the driver announces on its control stream (DM §17 default): one subscription
        let got = labels(&args(&["all"]), &e);
        assert_eq!(
            got,
            [
                ("control+announce".to_owned(), 1000),
                ("announce".to_owned(), 1001),
                ("descriptor".to_owned(), 1100),
                ("qos".to_owned(), 1200),
                ("metadata".to_owned(), 1300),
            ]
        );
        e.announce.stream_id = 1001;
        let got = labels(&args(&["announce"]), &e);
        assert_eq!(
            got,
            [("announce".to_owned(), 1001)],
            "one stream, one label"
        );
    }

    #[test]
    fn progress_is_the_control_stream_filtered_to_frame_progress() {
        let a = args(&["progress"]);
        let e = Endpoints::defaults();
        assert_eq!(labels(&a, &e), [("progress".to_owned(), 1000)]);
        let f = filter(&a).unwrap();
        assert!(f.shows(Some("FrameProgress"), None));
        assert!(!f.shows(Some("ConsumerHello"), None));
        let a = args(&[
            "qos",
            "--channel",
            "aeron:udp?endpoint=x:1",
            "--stream-id",
            "7",
        ]);
        let t = targets(&a, &e);
        assert_eq!(
            (t[0].1.channel.as_str(), t[0].1.stream_id),
            ("aeron:udp?endpoint=x:1", 7)
        );
    }

    #[test]
    fn stream_filter_reads_the_message_stream_id() {
        let f = filter(&args(&["all", "--filter-stream", "5"])).unwrap();
        let five = serde_json::json!({"stream_id": 5});
        let six = serde_json::json!({"out_stream_id": 6});
        assert!(f.shows(Some("QosProducer"), Some(&five)));
        assert!(!f.shows(Some("SequenceMergeMapRequest"), Some(&six)));
        assert!(!f.shows(Some("ControlResponse"), Some(&serde_json::json!({}))));
        // malformed messages show whatever the stream filter
        assert!(f.shows(None, None));
    }
}
