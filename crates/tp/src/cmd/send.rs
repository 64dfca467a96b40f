//! `tp send`: publish one message on an Aeron stream: a file `tp encode` produced, or a
//! `ConsumerConfig` built from flags (a supervisor's answer issued by hand).

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tensorpool_aeron::AeronClient;
use tensorpool_codec::wire::{ConsumerConfig, Mode};
use tensorpool_codec::{Bytes, Message};

use super::decode::read_input;
use super::{CmdError, util};

/// One-line description (`tp send -h`).
pub const ABOUT: &str = "Publish one message on an Aeron stream";

/// What `tp send --help` says.
pub const LONG_ABOUT: &str = "Publish one message on an Aeron stream.

`tp send FILE|- --channel CH --stream ID` publishes the bytes of FILE (as `tp encode`
writes them; `--hex` for its hex text) as one message. `tp send consumer-config ...`
builds a `ConsumerConfig` (Wire Spec §10.1.3) and publishes it on the control stream, as a
supervisor would. Both wait (up to --timeout-ms) for a subscriber to the stream, publish
once, print `sent N bytes` and exit 0; no subscriber in time is an error (exit 1).";

/// Examples, shown after the flags.
pub const EXAMPLES: &str = "Examples:
  tp encode qos.json -o qos.bin && tp send qos.bin --channel aeron:ipc --stream 1200
  tp send consumer-config --stream 10000 --consumer-id 7 --no-shm --fallback aeron:udp?endpoint=10.0.0.2:40123
  tp send consumer-config --stream 10000 --consumer-id 7 --descriptor aeron:ipc:2001 --mode rate-limited";

/// Flags of `tp send`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Args {
    #[command(subcommand)]
    kind: Option<Kind>,
    /// Message file (bytes, as `tp encode` writes them), or `-` for standard input.
    #[arg(value_name = "FILE|-", required = true)]
    input: Option<PathBuf>,
    /// The input is hex text (`tp encode --hex`).
    #[arg(long)]
    hex: bool,
    /// Aeron channel to publish on.
    #[arg(long, required = true)]
    channel: Option<String>,
    /// Stream id to publish on.
    #[arg(long, required = true)]
    stream: Option<i32>,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, clap::Args)]
struct Common {
    /// Aeron directory of the media driver [default: AERON_DIR, else Aeron's default].
    #[arg(long, global = true)]
    aeron_dir: Option<PathBuf>,
    /// How long to wait for a subscriber (and the media driver), in milliseconds.
    #[arg(long, default_value_t = 5000, global = true)]
    timeout_ms: u64,
}

#[derive(Debug, clap::Subcommand)]
enum Kind {
    /// Publish a `ConsumerConfig` (Wire Spec §10.1.3) on the control stream.
    ConsumerConfig(ConsumerConfigArgs),
}

/// Delivery mode of the `ConsumerConfig`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ModeArg {
    Stream,
    RateLimited,
}

#[derive(Debug, clap::Args)]
struct ConsumerConfigArgs {
    /// The data stream id the config is for.
    #[arg(long)]
    stream: u32,
    /// The consumer it is for.
    #[arg(long)]
    consumer_id: u32,
    /// The mode the consumer is given.
    #[arg(long, value_enum, default_value = "stream")]
    mode: ModeArg,
    /// `use_shm = false`: the consumer must not map SHM (it reports FALLBACK, or stops when
    /// there is no fallback URI).
    #[arg(long)]
    no_shm: bool,
    /// `payload_fallback_uri` (an Aeron channel or `bridge://<id>`).
    #[arg(long, value_name = "URI", default_value = "")]
    fallback: String,
    /// Per-consumer descriptor stream, `CHANNEL:ID` (the id after the last colon) [default:
    /// none: empty channel and 0].
    #[arg(long, value_name = "CH:ID", value_parser = parse_endpoint)]
    descriptor: Option<(String, u32)>,
    /// Per-consumer control stream, `CHANNEL:ID` [default: none].
    #[arg(long, value_name = "CH:ID", value_parser = parse_endpoint)]
    control: Option<(String, u32)>,
    /// Channel of the control stream to publish on.
    #[arg(long, default_value = tensorpool::streams::DEFAULT_CHANNEL)]
    channel: String,
    /// Control stream id to publish on.
    #[arg(long, default_value_t = tensorpool::streams::CONTROL_STREAM_ID)]
    control_stream: i32,
}

/// `CHANNEL:ID` with a non-zero id after the last colon.
fn parse_endpoint(text: &str) -> Result<(String, u32), String> {
    let (channel, id) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("`{text}`: expected CHANNEL:ID"))?;
    let id: u32 = id
        .parse()
        .map_err(|_| format!("`{text}`: `{id}` is not a stream id"))?;
    if !channel.starts_with("aeron:") || id == 0 {
        return Err(format!(
            "`{text}`: expected an aeron: channel and a non-zero stream id"
        ));
    }
    Ok((channel.to_owned(), id))
}

/// Runs `tp send`.
pub fn run(args: &Args) -> Result<(), CmdError> {
    let (bytes, channel, stream) = match &args.kind {
        Some(Kind::ConsumerConfig(c)) => (consumer_config(c)?, c.channel.clone(), c.control_stream),
        None => {
            let input = args.input.as_ref().ok_or("a FILE or - is required")?;
            let raw = read_input(input)?;
            let bytes = if args.hex {
                let text = String::from_utf8(raw).map_err(|_| "the hex input is not text")?;
                util::from_hex(text.trim())?
            } else {
                raw
            };
            let channel = args.channel.clone().ok_or("--channel is required")?;
            let stream = args.stream.ok_or("--stream is required")?;
            (bytes, channel, stream)
        }
    };
    if bytes.is_empty() {
        return Err("nothing to send: the message is empty".into());
    }
    publish(&args.common, &channel, stream, &bytes)?;
    println!("sent {} bytes on {channel} stream {stream}", bytes.len());
    let _ = std::io::stdout().flush();
    Ok(())
}

fn consumer_config(c: &ConsumerConfigArgs) -> Result<Vec<u8>, CmdError> {
    let (dc, di) = c.descriptor.clone().unwrap_or_default();
    let (cc, ci) = c.control.clone().unwrap_or_default();
    let msg = ConsumerConfig {
        stream_id: c.stream,
        consumer_id: c.consumer_id,
        use_shm: !c.no_shm,
        mode: match c.mode {
            ModeArg::Stream => Mode::Stream,
            ModeArg::RateLimited => Mode::RateLimited,
        },
        descriptor_stream_id: di,
        control_stream_id: ci,
        payload_fallback_uri: Bytes::new(c.fallback.as_bytes()),
        descriptor_channel: Bytes::new(dc.as_bytes()),
        control_channel: Bytes::new(cc.as_bytes()),
    };
    let mut buf = vec![0u8; msg.encoded_len()];
    msg.encode(&mut buf)
        .map_err(|e| format!("encoding ConsumerConfig: {e}"))?;
    Ok(buf)
}

fn publish(common: &Common, channel: &str, stream: i32, bytes: &[u8]) -> Result<(), CmdError> {
    let timeout = Duration::from_millis(common.timeout_ms);
    let deadline = Instant::now() + timeout;
    let dir = util::aeron_dir(common.aeron_dir.as_ref());
    let client = AeronClient::connect(&dir, timeout)?;
    let mut publication = client.add_publication(channel, stream, timeout)?;
    let mut round = 0u32;
    let idle = |round: &mut u32| {
        *round = (*round + 1).min(8);
        std::thread::sleep(Duration::from_micros(50u64 << *round));
    };
    while !publication.is_connected() {
        if Instant::now() >= deadline {
            return Err(
                format!("no subscriber on {channel} stream {stream} within {timeout:?}").into(),
            );
        }
        idle(&mut round);
    }
    round = 0;
    loop {
        match publication.offer(bytes) {
            Ok(_) => return Ok(()),
            Err(e) if e.is_retryable() && Instant::now() < deadline => idle(&mut round),
            Err(e) => return Err(format!("publishing on {channel} stream {stream}: {e}").into()),
        }
    }
}
