//! `tp stat`: the media driver's counters, like Aeron's AeronStat, tensorpool's included.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;
use tensorpool_aeron::{AeronClient, CountersReader, is_tensorpool_counter_type_id};

use super::CmdError;
use super::util;

/// One-line description (`tp stat -h`).
pub const ABOUT: &str = "Print the media driver's counters (like AeronStat)";

/// What `tp stat --help` says.
pub const LONG_ABOUT: &str = "Print the media driver's counters (like AeronStat).

Connects as a client and reads every counter of the driver's counters file: Aeron's own
(system counters, publisher and subscriber positions, ...) first, then tensorpool's (type ids
0x54500000-0x5450FFFF) grouped by the stream id in their key, then role, client id and
kind. Prints id, type, value, rate per second since the previous refresh, and label;
--json adds each tensorpool counter's key (stream_id, role, client_id, detail and its
cause, pid). --count 1 prints once and exits.";

/// Examples, shown after the flags.
pub const EXAMPLES: &str = "Examples:
  tp stat
  tp stat --filter tensorpool --interval 500
  tp stat --count 1 --json";

/// Flags of `tp stat`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Aeron directory [default: AERON_DIR, else /dev/shm/aeron-<user>].
    #[arg(long, value_name = "DIR")]
    aeron_dir: Option<PathBuf>,
    /// Show only counters whose label or type name contains TEXT (case-insensitive).
    #[arg(long, value_name = "TEXT")]
    filter: Option<String>,
    /// Time between refreshes.
    #[arg(long, default_value_t = 1000, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(1..))]
    interval: u64,
    /// Stop after N refreshes [default: run until interrupted].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
    /// One JSON object per refresh.
    #[arg(long)]
    json: bool,
    /// How long to wait for the media driver.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    timeout: u64,
}

/// One counter in one refresh.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    id: i32,
    type_id: i32,
    #[serde(rename = "type")]
    type_name: String,
    tensorpool: bool,
    label: String,
    value: i64,
    /// Change per second since the previous refresh (`None` on the first).
    rate_per_sec: Option<f64>,
    /// A tensorpool counter's key, decoded.
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<Key>,
}

/// The key of a tensorpool counter (`tensorpool::counters::CounterKey`), for people.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Key {
    /// Stream id (0: driver-wide).
    pub stream_id: u32,
    /// `producer`, `consumer`, `driver`, `bridge`.
    pub role: &'static str,
    /// Producer id, consumer id (0 for the driver).
    pub client_id: u32,
    /// The cause of a per-cause counter (0 otherwise).
    pub detail: u16,
    /// The cause's name (drop cause, response code, revoke reason).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<&'static str>,
    /// The owning process.
    pub pid: u32,
    /// `n` of the type id (`tensorpool_counter_type_id(n)`).
    #[serde(skip)]
    pub kind: u16,
}

impl Row {
    /// Whether the counter's type id is in tensorpool's range.
    pub fn is_tensorpool(&self) -> bool {
        self.tensorpool
    }

    /// Id, type name, label, value and rate.
    pub fn parts(&self) -> (i32, &str, &str, i64, Option<f64>) {
        (
            self.id,
            &self.type_name,
            &self.label,
            self.value,
            self.rate_per_sec,
        )
    }

    /// The Aeron counter type id.
    pub fn type_id(&self) -> i32 {
        self.type_id
    }

    /// The decoded key of one of tensorpool's counters.
    pub fn key(&self) -> Option<&Key> {
        self.key.as_ref()
    }
}

/// Name of an Aeron counter type id (aeron_counters.h), a tensorpool kind
/// (`producer.frames`, `consumer.drops`), or `tensorpool:<n>` for other ids of the range.
pub fn type_name(type_id: i32) -> String {
    if let Some(k) = tensorpool::counters::kind(type_id) {
        return format!("{}.{}", k.role.name(), k.name.replace(' ', "-"));
    }
    if is_tensorpool_counter_type_id(type_id) {
        return format!("tensorpool:{}", type_id & 0xFFFF);
    }
    let name = match type_id {
        0 => "system",
        1 => "pub-lmt",
        2 => "snd-pos",
        3 => "rcv-hwm",
        4 => "sub-pos",
        5 => "rcv-pos",
        6 => "snd-channel",
        7 => "rcv-channel",
        9 => "snd-lmt",
        10 => "per-image",
        11 => "client-heartbeat",
        12 => "pub-pos",
        13 => "snd-bpe",
        14 => "local-sockaddr",
        15 => "nr-neighbors",
        16 => "nr-cache",
        17 => "fc-receivers",
        18 => "channel-destinations",
        19 => "snd-naks",
        20 => "rcv-naks",
        21 => "nr-bootstrap",
        _ => return format!("type-{type_id}"),
    };
    name.to_owned()
}

/// The key of a counter of one of tensorpool's kinds.
fn decode_key(type_id: i32, key: &[u8]) -> Option<Key> {
    let kind = tensorpool::counters::kind(type_id)?;
    let k = tensorpool::counters::CounterKey::decode(key)?;
    Some(Key {
        stream_id: k.stream_id,
        role: k.role.name(),
        client_id: k.client_id,
        detail: k.detail,
        cause: kind.detail_name(k.detail),
        pid: k.pid,
        kind: kind.n,
    })
}

/// Every counter, matching `filter` (lower-case) if given: Aeron's by id, then tensorpool's
/// grouped by stream id, role, client id, kind and cause (ids and others without a key last).
pub fn read_counters(reader: &CountersReader, filter: Option<&str>) -> Vec<Row> {
    let mut rows = Vec::new();
    reader.for_each(|c| {
        let type_name = type_name(c.type_id);
        let label = c.label().to_owned();
        let shown = filter.is_none_or(|f| {
            label.to_ascii_lowercase().contains(f) || type_name.to_ascii_lowercase().contains(f)
        });
        if shown {
            rows.push(Row {
                id: c.id,
                type_id: c.type_id,
                type_name,
                tensorpool: is_tensorpool_counter_type_id(c.type_id),
                label,
                value: c.value,
                rate_per_sec: None,
                key: decode_key(c.type_id, c.key),
            });
        }
    });
    rows.sort_by_key(|r| {
        let k = r
            .key
            .map(|k| (k.stream_id, k.role, k.client_id, k.kind, k.detail));
        (r.tensorpool, r.key.is_none(), k, r.id)
    });
    rows
}

/// Sets each row's rate from the previous refresh (matched by id, type and label, since
/// ids are reused) and remembers this one.
pub fn apply_rates(
    rows: &mut [Row],
    previous: &mut HashMap<(i32, i32, String), (i64, Instant)>,
    now: Instant,
) {
    let mut next = HashMap::with_capacity(rows.len());
    for row in rows.iter_mut() {
        let key = (row.id, row.type_id, row.label.clone());
        if let Some((value, at)) = previous.get(&key) {
            let secs = now.duration_since(*at).as_secs_f64();
            if secs > 0.0 {
                row.rate_per_sec = Some((row.value - value) as f64 / secs);
            }
        }
        next.insert(key, (row.value, now));
    }
    *previous = next;
}

/// Aeron's stream position counter key (`aeron_stream_position_counter_key_layout_t`):
/// registration id, session id, stream id, channel.
fn stream_key(key: &[u8]) -> Option<(i64, i32, i32, String)> {
    let i64_at = |o: usize| Some(i64::from_le_bytes(key.get(o..o + 8)?.try_into().ok()?));
    let i32_at = |o: usize| Some(i32::from_le_bytes(key.get(o..o + 4)?.try_into().ok()?));
    let len = usize::try_from(i32_at(16)?).ok()?;
    let channel = key
        .get(20..20 + len.min(key.len().saturating_sub(20)))
        .map(|b| String::from_utf8_lossy(b).into_owned())?;
    Some((i64_at(0)?, i32_at(8)?, i32_at(12)?, channel))
}

/// AERON_COUNTER_PUBLISHER_LIMIT_TYPE_ID, SUBSCRIPTION_POSITION, PUBLISHER_POSITION.
const PUB_LMT: i32 = 1;
const SUB_POS: i32 = 4;
const PUB_POS: i32 = 12;

/// A subscriber position of a publication's session.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SubscriberPosition {
    /// The subscription's registration id.
    pub registration_id: i64,
    /// Its position.
    pub position: i64,
}

/// An IPC publication that reached its limit (back-pressured), and who holds it: the
/// slowest subscriber, from the media driver's position counters.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Held {
    /// Stream id.
    pub stream_id: i32,
    /// Session id (one per publication).
    pub session_id: i32,
    /// Channel.
    pub channel: String,
    /// The publication's registration id.
    pub registration_id: i64,
    /// Producer position (`pub-pos`).
    pub publisher_position: i64,
    /// Publisher limit (`pub-lmt`): the slowest subscriber's position plus the window.
    pub publisher_limit: i64,
    /// The subscription holding the limit (the slowest).
    pub holder: SubscriberPosition,
    /// Every subscriber position of the session.
    pub subscribers: Vec<SubscriberPosition>,
}

/// The IPC publications at their limit, each with the subscription that holds it.
pub fn held_publications(reader: &CountersReader) -> Vec<Held> {
    let mut limits = Vec::new();
    let mut positions = HashMap::new();
    let mut subs: Vec<(i32, i32, SubscriberPosition)> = Vec::new();
    reader.for_each(|c| {
        let Some((reg, session, stream, channel)) = stream_key(c.key) else {
            return;
        };
        match c.type_id {
            PUB_LMT if channel.starts_with("aeron:ipc") => {
                limits.push((reg, session, stream, channel, c.value))
            }
            PUB_POS => {
                positions.insert(reg, c.value);
            }
            SUB_POS => subs.push((
                session,
                stream,
                SubscriberPosition {
                    registration_id: reg,
                    position: c.value,
                },
            )),
            _ => {}
        }
    });
    let mut out = Vec::new();
    for (reg, session, stream, channel, limit) in limits {
        let Some(&position) = positions.get(&reg) else {
            continue;
        };
        if position < limit {
            continue;
        }
        let subscribers: Vec<SubscriberPosition> = subs
            .iter()
            .filter(|(s, id, _)| *s == session && *id == stream)
            .map(|(_, _, p)| p.clone())
            .collect();
        let Some(holder) = subscribers.iter().min_by_key(|p| p.position).cloned() else {
            continue;
        };
        out.push(Held {
            stream_id: stream,
            session_id: session,
            channel,
            registration_id: reg,
            publisher_position: position,
            publisher_limit: limit,
            holder,
            subscribers,
        });
    }
    out
}

/// Runs `tp stat`.
pub fn run(args: &Args) -> Result<(), CmdError> {
    let dir = util::aeron_dir(args.aeron_dir.as_ref());
    let client = AeronClient::connect(&dir, Duration::from_secs(args.timeout))?;
    let reader = client.counters_reader();
    let filter = args.filter.as_ref().map(|f| f.to_ascii_lowercase());
    let interval = Duration::from_millis(args.interval);
    let mut previous = HashMap::new();
    let mut refreshes = 0u64;
    let mut next = Instant::now();
    loop {
        let now = Instant::now();
        let mut rows = read_counters(&reader, filter.as_deref());
        apply_rates(&mut rows, &mut previous, now);
        let held = held_publications(&reader);
        let text = if args.json {
            render_json(&dir, &rows, &held)?
        } else {
            let mut t = render_text(&dir, &rows);
            render_held(&mut t, &held);
            t
        };
        let mut out = std::io::stdout().lock();
        match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            other => other?,
        }
        refreshes += 1;
        if args.count.is_some_and(|n| refreshes >= n) {
            return Ok(());
        }
        next += interval;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

/// Appends who holds each back-pressured IPC publication.
fn render_held(o: &mut String, held: &[Held]) {
    use std::fmt::Write as _;
    if held.is_empty() {
        return;
    }
    o.push_str("-- back-pressured publications --\n");
    for h in held {
        let _ = writeln!(o, "{}", held_line(h));
    }
}

/// One back-pressured publication and its holder, for people (`tp stat`, `tp top`).
pub fn held_line(h: &Held) -> String {
    format!(
        "stream {} session {}: held by subscription {} at position {} ({} bytes behind); publication at {}, its limit {}; {} subscriber(s); {}",
        h.stream_id,
        h.session_id,
        h.holder.registration_id,
        h.holder.position,
        h.publisher_position - h.holder.position,
        h.publisher_position,
        h.publisher_limit,
        h.subscribers.len(),
        h.channel,
    )
}

fn render_json(dir: &std::path::Path, rows: &[Row], held: &[Held]) -> Result<String, CmdError> {
    let unix_ns = tensorpool_agent::realtime_ns();
    let v = serde_json::json!({
        "time": util::rfc3339_utc(unix_ns),
        "unix_ns": unix_ns,
        "aeron_dir": dir,
        "counters": rows,
        "held_publications": held,
    });
    Ok(format!("{v}\n"))
}

fn render_text(dir: &std::path::Path, rows: &[Row]) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{} - {} counters in {}",
        util::rfc3339_utc(tensorpool_agent::realtime_ns()),
        rows.len(),
        dir.display()
    );
    let _ = writeln!(
        o,
        "{:>5}  {:<34} {:>20} {:>14}  label",
        "id", "type", "value", "rate/s"
    );
    let mut group = None;
    for r in rows {
        let this = r.key.map(|k| k.stream_id);
        if this.is_some() && this != group {
            match this {
                Some(0) => o.push_str("-- driver-wide --\n"),
                Some(id) => {
                    let _ = writeln!(o, "-- stream {id} --");
                }
                None => {}
            }
        }
        group = this;
        let rate = r
            .rate_per_sec
            .map_or_else(|| "-".into(), |x| format!("{x:.1}"));
        let _ = writeln!(
            o,
            "{:>5}  {:<34} {:>20} {:>14}  {}",
            r.id, r.type_name, r.value, rate, r.label
        );
    }
    o.push('\n');
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names() {
        assert_eq!(type_name(0), "system");
        assert_eq!(type_name(4), "sub-pos");
        assert_eq!(type_name(0x5450_0007), "tensorpool:7");
        assert_eq!(type_name(0x5450_0000 | 101), "producer.frames");
        assert_eq!(type_name(0x5450_0000 | 203), "consumer.drops");
        assert_eq!(type_name(999), "type-999");
    }

    #[test]
    fn rates_between_refreshes() {
        let row = |v| Row {
            id: 1,
            type_id: 0,
            type_name: "system".into(),
            tensorpool: false,
            label: "x".into(),
            value: v,
            rate_per_sec: None,
            key: None,
        };
        let mut prev = HashMap::new();
        let t0 = Instant::now();
        let mut rows = vec![row(10)];
        apply_rates(&mut rows, &mut prev, t0);
        assert_eq!(rows[0].rate_per_sec, None);
        let mut rows = vec![row(30)];
        apply_rates(&mut rows, &mut prev, t0 + Duration::from_secs(2));
        assert_eq!(rows[0].rate_per_sec, Some(10.0));
    }
}
