//! `tp supervisor status`: the supervisor's view, observed on the wire for a short window
//! (announces, hellos, `ConsumerConfig`, QoS on the streams of the `[supervisor]` table), so
//! it works the same against a supervisor embedded in `tp driver` and a standalone one.
//! [`View`] is also `tp top`'s SUPERVISOR section (fed continuously there).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tensorpool::config::ProcessEnv;
use tensorpool::supervisor::SupervisorConfig;
use tensorpool_aeron::AeronClient;
use tensorpool_codec::AnyMessage;
use tensorpool_codec::wire::Mode;

use super::{CmdError, util};

/// Flags of `tp supervisor status`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The `[supervisor]` table whose control / announce / QoS streams are observed
    /// [default: the defaults, with `SUPERVISOR_*` environment overrides].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Aeron directory of the media driver [default: AERON_DIR, else Aeron's default].
    #[arg(long, value_name = "DIR")]
    aeron_dir: Option<PathBuf>,
    /// How long to observe, in milliseconds (at least two hello / QoS intervals).
    #[arg(long, default_value_t = 2500)]
    observe_ms: u64,
    /// One JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Default, Clone)]
struct Producer {
    producer_id: u32,
    epoch: u64,
    current_seq: Option<u64>,
    announces: u64,
    qos: u64,
}

#[derive(Debug, Default, Clone)]
struct Consumer {
    requested_mode: Option<Mode>,
    /// From the last `ConsumerConfig` (the supervisor's answer).
    mode: Option<Mode>,
    use_shm: Option<bool>,
    fallback: String,
    descriptor: (String, u32),
    control: (String, u32),
    hellos: u64,
    qos: u64,
    configs: u64,
    epoch: Option<u64>,
    last_seq_seen: Option<u64>,
    drops_gap: u64,
    drops_late: u64,
    /// When its last hello or QoS arrived (monotonic ns).
    heard_ns: Option<u64>,
}

/// The supervisor's view as observed on the wire: producers, consumers with the
/// `ConsumerConfig` they were given, and who sends `ConsumerConfig`.
#[derive(Debug, Default, Clone)]
pub(crate) struct View {
    producers: BTreeMap<u32, Producer>,
    consumers: BTreeMap<(u32, u32), Consumer>,
    /// Aeron sessions that sent `ConsumerConfig` (the supervisor; a producer answering
    /// hellos itself shows up here too).
    config_sessions: Vec<i32>,
    /// When the last `ConsumerConfig` arrived (monotonic ns).
    config_seen_ns: Option<u64>,
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::RateLimited => "RATE_LIMITED",
        _ => "STREAM",
    }
}

impl View {
    /// When the last `ConsumerConfig` arrived (monotonic ns).
    pub(crate) fn config_seen_ns(&self) -> Option<u64> {
        self.config_seen_ns
    }

    /// Folds one message from Aeron session `session_id` in, received at `now_ns`.
    pub(crate) fn on_message(&mut self, msg: &[u8], session_id: i32, now_ns: u64) {
        let Ok(any) = AnyMessage::decode(msg) else {
            return;
        };
        match any {
            AnyMessage::ShmPoolAnnounce(a) => {
                let p = self.producers.entry(a.stream_id).or_default();
                p.producer_id = a.producer_id;
                p.epoch = a.epoch;
                p.announces += 1;
            }
            AnyMessage::QosProducer(q) => {
                let p = self.producers.entry(q.stream_id).or_default();
                p.producer_id = q.producer_id;
                p.epoch = q.epoch;
                p.current_seq = Some(q.current_seq);
                p.qos += 1;
            }
            AnyMessage::ConsumerHello(h) => {
                let c = self
                    .consumers
                    .entry((h.stream_id, h.consumer_id))
                    .or_default();
                c.requested_mode = Some(h.mode);
                c.hellos += 1;
                c.heard_ns = Some(now_ns);
            }
            AnyMessage::QosConsumer(q) => {
                let c = self
                    .consumers
                    .entry((q.stream_id, q.consumer_id))
                    .or_default();
                c.qos += 1;
                c.heard_ns = Some(now_ns);
                c.epoch = Some(q.epoch);
                c.last_seq_seen = Some(q.last_seq_seen);
                c.drops_gap = q.drops_gap;
                c.drops_late = q.drops_late;
            }
            AnyMessage::ConsumerConfig(k) => {
                if !self.config_sessions.contains(&session_id) {
                    self.config_sessions.push(session_id);
                }
                self.config_seen_ns = Some(now_ns);
                let c = self
                    .consumers
                    .entry((k.stream_id, k.consumer_id))
                    .or_default();
                c.configs += 1;
                c.mode = Some(k.mode);
                c.use_shm = Some(k.use_shm);
                let text = |b: &tensorpool_codec::Bytes<'_>| {
                    String::from_utf8_lossy(b.as_bytes()).into_owned()
                };
                c.fallback = text(&k.payload_fallback_uri);
                c.descriptor = (text(&k.descriptor_channel), k.descriptor_stream_id);
                c.control = (text(&k.control_channel), k.control_stream_id);
            }
            _ => {}
        }
    }

    /// The view as JSON: per stream the producer and each consumer; a consumer is `stale`
    /// when no hello or QoS of it arrived within `stale_ns` of `now_ns` (or none at all).
    pub(crate) fn to_json(&self, now_ns: u64, stale_ns: u64) -> Value {
        let mut ids: Vec<u32> = self.producers.keys().copied().collect();
        ids.extend(self.consumers.keys().map(|k| k.0));
        ids.sort_unstable();
        ids.dedup();
        let streams: Vec<Value> = ids
            .iter()
            .map(|&s| {
                let p = self.producers.get(&s);
                let producer = p.map(|p| {
                    json!({"producer_id": p.producer_id, "epoch": p.epoch,
                           "current_seq": p.current_seq, "announces": p.announces, "qos": p.qos})
                });
                let consumers: Vec<Value> = self
                    .consumers
                    .range((s, 0)..=(s, u32::MAX))
                    .map(|(&(_, id), c)| {
                        let lag = match (p, c.epoch, c.last_seq_seen) {
                            (Some(p), Some(e), Some(seen)) if e == p.epoch => {
                                p.current_seq.map(|cur| cur.saturating_sub(seen))
                            }
                            _ => None,
                        };
                        json!({
                            "consumer_id": id,
                            "mode": c.mode.or(c.requested_mode).map(mode_name),
                            "requested_mode": c.requested_mode.map(mode_name),
                            "use_shm": c.use_shm,
                            "payload_fallback_uri": c.fallback,
                            "stale": c.heard_ns.is_none_or(|t| now_ns.saturating_sub(t) > stale_ns),
                            "descriptor_channel": c.descriptor.0,
                            "descriptor_stream_id": c.descriptor.1,
                            "control_channel": c.control.0,
                            "control_stream_id": c.control.1,
                            "drops_gap": c.drops_gap,
                            "drops_late": c.drops_late,
                            "lag": lag,
                            "hellos": c.hellos,
                            "qos": c.qos,
                            "configs": c.configs,
                        })
                    })
                    .collect();
                json!({"stream_id": s, "producer": producer, "consumers": consumers})
            })
            .collect();
        json!({
            "supervisor_seen": !self.config_sessions.is_empty(),
            "config_sessions": self.config_sessions,
            "streams": streams,
        })
    }
}

/// Runs `tp supervisor status`.
pub fn run(args: &Args) -> Result<(), CmdError> {
    let cfg = SupervisorConfig::load(args.config.as_deref(), &ProcessEnv)?;
    let dir = util::aeron_dir(args.aeron_dir.as_ref());
    let timeout = Duration::from_secs(10);
    let aeron = AeronClient::connect(&dir, timeout)?;
    let mut endpoints: Vec<(String, u32)> = Vec::new();
    for e in [
        (&cfg.control_channel, cfg.control_stream_id),
        (&cfg.announce_channel, cfg.announce_stream_id),
        (&cfg.qos_channel, cfg.qos_stream_id),
    ] {
        let e = (e.0.clone(), e.1);
        if !endpoints.contains(&e) {
            endpoints.push(e);
        }
    }
    let mut subs = Vec::with_capacity(endpoints.len());
    for (channel, id) in &endpoints {
        let id = i32::try_from(*id).map_err(|_| format!("stream id {id} out of range"))?;
        subs.push(aeron.add_subscription(channel, id, timeout)?);
    }
    let mut view = View::default();
    let end = Instant::now() + Duration::from_millis(args.observe_ms);
    while Instant::now() < end {
        let mut work = 0;
        for sub in &mut subs {
            work += sub
                .poll(
                    |msg, info| {
                        view.on_message(msg, info.session_id, tensorpool_agent::monotonic_ns())
                    },
                    64,
                )
                .unwrap_or(0);
        }
        if work == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    // stale: not heard during the observation
    let j = view.to_json(tensorpool_agent::monotonic_ns(), u64::MAX);
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{j}")?;
        return Ok(());
    }
    writeln!(
        out,
        "supervisor: {} (observed {} ms on {} streams)",
        if view.config_sessions.is_empty() {
            "no ConsumerConfig seen"
        } else {
            "answering"
        },
        args.observe_ms,
        endpoints.len()
    )?;
    for s in j["streams"].as_array().into_iter().flatten() {
        writeln!(out, "stream {}", s["stream_id"])?;
        match s["producer"].as_object() {
            Some(p) => writeln!(
                out,
                "  producer {} epoch {} current_seq {}",
                p["producer_id"], p["epoch"], p["current_seq"]
            )?,
            None => writeln!(out, "  producer: none heard")?,
        }
        for c in s["consumers"].as_array().into_iter().flatten() {
            writeln!(
                out,
                "  consumer {} mode {} use_shm {} descriptor {}:{} control {}:{} drops gap {} late {} lag {}{}",
                c["consumer_id"],
                c["mode"],
                c["use_shm"],
                c["descriptor_channel"],
                c["descriptor_stream_id"],
                c["control_channel"],
                c["control_stream_id"],
                c["drops_gap"],
                c["drops_late"],
                c["lag"],
                if c["stale"] == true { " STALE" } else { "" }
            )?;
        }
    }
    Ok(())
}
