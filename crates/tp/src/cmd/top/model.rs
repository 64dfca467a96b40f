//! What `tp top` knows, built only from what is on the wire: announces, QoS, data source
//! announces and descriptors folded into per-stream state, with rates over a time window.
//! Plain data and arithmetic (no terminal, no Aeron), so it is tested on its own.

use std::collections::{BTreeMap, VecDeque};

use tensorpool_codec::AnyMessage;

use crate::cmd::stat::Key;
use crate::cmd::supervisor_status::View as SupervisorView;
use tensorpool_codec::wire::{
    DataSourceAnnounce, FrameDescriptor, QosConsumer, QosProducer, ShmPoolAnnounce,
};

/// Epochs remembered per stream.
const EPOCH_HISTORY: usize = 8;

/// A monotonic counter sampled over time; its rate is the slope across the window.
#[derive(Debug, Clone)]
pub struct RateWindow {
    window_ns: u64,
    samples: VecDeque<(u64, u64)>,
}

impl RateWindow {
    /// A window of `window_ns` nanoseconds.
    pub fn new(window_ns: u64) -> Self {
        Self {
            window_ns,
            samples: VecDeque::new(),
        }
    }

    /// Records `value` at `now_ns`. A value lower than the last one (a new epoch restarting
    /// the sequence) starts the window again.
    pub fn push(&mut self, now_ns: u64, value: u64) {
        if self.samples.back().is_some_and(|&(_, last)| value < last) {
            self.samples.clear();
        }
        self.samples.push_back((now_ns, value));
        let oldest = now_ns.saturating_sub(self.window_ns);
        while self.samples.len() > 2 && self.samples.front().is_some_and(|&(t, _)| t < oldest) {
            self.samples.pop_front();
        }
    }

    /// Units per second across the window, once two samples are apart in time.
    pub fn rate(&self) -> Option<f64> {
        let (&(t0, v0), &(t1, v1)) = (self.samples.front()?, self.samples.back()?);
        (t1 > t0).then(|| (v1 - v0) as f64 * 1e9 / (t1 - t0) as f64)
    }

    /// Forgets every sample.
    pub fn clear(&mut self) {
        self.samples.clear();
    }
}

/// A payload pool, as announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// Pool id.
    pub pool_id: u16,
    /// Slots.
    pub nslots: u32,
    /// Stride in bytes.
    pub stride_bytes: u32,
    /// Region URI.
    pub uri: String,
}

/// The last `ShmPoolAnnounce` of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    /// Epoch.
    pub epoch: u64,
    /// Producer id (0: none attached).
    pub producer_id: u32,
    /// SHM layout version.
    pub layout_version: u32,
    /// Header ring slots.
    pub header_nslots: u32,
    /// Header slot size.
    pub header_slot_bytes: u16,
    /// Header ring URI.
    pub header_uri: String,
    /// Pools.
    pub pools: Vec<Pool>,
    /// `MONOTONIC` or `REALTIME_SYNCED`.
    pub clock_domain: String,
    /// When it was received (monotonic ns).
    pub seen_ns: u64,
}

/// The producer's `QosProducer` reports.
#[derive(Debug, Clone)]
pub struct Producer {
    /// Producer id.
    pub producer_id: u32,
    /// Epoch of the last report.
    pub epoch: u64,
    /// Current sequence.
    pub current_seq: u64,
    /// Watermark, if reported.
    pub watermark: Option<u32>,
    /// When the last report arrived.
    pub seen_ns: u64,
    /// Frames per second, from `current_seq`.
    pub rate: RateWindow,
}

/// One consumer's `QosConsumer` reports.
#[derive(Debug, Clone)]
pub struct Consumer {
    /// Consumer id.
    pub consumer_id: u32,
    /// Epoch of the last report.
    pub epoch: u64,
    /// Last sequence seen.
    pub last_seq_seen: u64,
    /// Frames missed (sequence gaps).
    pub drops_gap: u64,
    /// Frames dropped late (overwritten while read).
    pub drops_late: u64,
    /// `STREAM` or `RATE_LIMITED`.
    pub mode: String,
    /// When the last report arrived.
    pub seen_ns: u64,
    /// Frames per second, from `last_seq_seen`.
    pub rate: RateWindow,
}

/// Everything known about one stream.
#[derive(Debug, Clone)]
pub struct Stream {
    /// Stream id.
    pub stream_id: u32,
    /// Last announce.
    pub announce: Option<Announce>,
    /// Epochs seen in announces, newest last, with when each was first seen.
    pub epochs: Vec<(u64, u64)>,
    /// Producer QoS.
    pub producer: Option<Producer>,
    /// Consumers by id.
    pub consumers: BTreeMap<u32, Consumer>,
    /// `DataSourceAnnounce` name and summary.
    pub name: Option<String>,
    /// Summary of the data source.
    pub summary: Option<String>,
    /// FrameDescriptors counted.
    pub descriptors: u64,
    /// Last descriptor sequence.
    pub last_descriptor_seq: Option<u64>,
    /// Descriptors per second.
    pub descriptor_rate: RateWindow,
    /// When anything about this stream last arrived.
    pub seen_ns: u64,
}

impl Stream {
    fn new(stream_id: u32, window_ns: u64) -> Self {
        Self {
            stream_id,
            announce: None,
            epochs: Vec::new(),
            producer: None,
            consumers: BTreeMap::new(),
            name: None,
            summary: None,
            descriptors: 0,
            last_descriptor_seq: None,
            descriptor_rate: RateWindow::new(window_ns),
            seen_ns: 0,
        }
    }

    /// The current epoch: from the announce, else the producer's QoS.
    pub fn epoch(&self) -> Option<u64> {
        self.announce
            .as_ref()
            .map(|a| a.epoch)
            .or_else(|| self.producer.as_ref().map(|p| p.epoch))
    }

    /// The producer's latest sequence: QoS `current_seq`, or a later descriptor's.
    pub fn producer_seq(&self) -> Option<u64> {
        let qos = self.producer.as_ref().map(|p| p.current_seq);
        match (qos, self.last_descriptor_seq) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// Producer sequence minus the consumer's last seen, when both are known and in the
    /// same epoch.
    pub fn lag(&self, c: &Consumer) -> Option<u64> {
        let same_epoch = self.epoch().is_none_or(|e| e == c.epoch);
        let seq = self.producer_seq()?;
        same_epoch.then(|| seq.saturating_sub(c.last_seq_seen))
    }

    /// Producer frames per second: from QoS, else from descriptors.
    pub fn fps(&self) -> Option<f64> {
        self.producer
            .as_ref()
            .and_then(|p| p.rate.rate())
            .or_else(|| self.descriptor_rate.rate())
    }
}

/// Columns the stream table can be sorted by (`s` cycles through them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    /// Stream id.
    #[default]
    Stream,
    /// Data source name.
    Name,
    /// Producer frames per second (highest first).
    Fps,
    /// Largest consumer lag (highest first).
    Lag,
    /// Drops (highest first).
    Drops,
    /// Announce age (oldest first).
    Age,
}

impl SortKey {
    /// The next column.
    pub fn next(self) -> Self {
        match self {
            Self::Stream => Self::Name,
            Self::Name => Self::Fps,
            Self::Fps => Self::Lag,
            Self::Lag => Self::Drops,
            Self::Drops => Self::Age,
            Self::Age => Self::Stream,
        }
    }

    /// Column title.
    pub fn title(self) -> &'static str {
        match self {
            Self::Stream => "stream",
            Self::Name => "name",
            Self::Fps => "fps",
            Self::Lag => "lag",
            Self::Drops => "drops",
            Self::Age => "age",
        }
    }
}

/// One row of the stream table.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRow {
    /// Stream id.
    pub stream_id: u32,
    /// Data source name.
    pub name: String,
    /// Current epoch.
    pub epoch: Option<u64>,
    /// Producer id.
    pub producer_id: Option<u32>,
    /// Producer frames per second.
    pub fps: Option<f64>,
    /// Descriptors per second.
    pub descriptor_fps: Option<f64>,
    /// Consumers reporting QoS.
    pub consumers: usize,
    /// Largest consumer lag.
    pub max_lag: Option<u64>,
    /// Sum of drops_gap and drops_late over consumers.
    pub drops: u64,
    /// Milliseconds since the last announce.
    pub announce_age_ms: Option<u64>,
    /// Nothing heard for longer than the stale window.
    pub stale: bool,
}

/// A tensorpool counter from the media driver's counters file.
#[derive(Debug, Clone)]
pub struct CounterRow {
    /// Counter id.
    pub id: i32,
    /// Type name.
    pub type_name: String,
    /// Label.
    pub label: String,
    /// Value.
    pub value: i64,
    /// Change per second since the previous read.
    pub rate: Option<f64>,
    /// Its key (stream, role, client, cause), when it is one of tensorpool's kinds.
    pub key: Option<Key>,
}

/// What a consumer's own counters say (kinds 203 and 207-209 of its key).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConsumerCounters {
    /// Latency of the last frame accepted, ns.
    pub latency_last_ns: Option<i64>,
    /// Median latency over the consumer's last QoS interval, ns.
    pub latency_p50_ns: Option<i64>,
    /// 99th percentile latency, ns.
    pub latency_p99_ns: Option<i64>,
    /// Non-zero drops by cause.
    pub drops: Vec<(&'static str, i64)>,
}

/// Every stream on the host, as heard.
#[derive(Debug, Clone)]
pub struct Model {
    window_ns: u64,
    stale_ns: u64,
    streams: BTreeMap<u32, Stream>,
    /// Messages decoded.
    pub messages: u64,
    /// Messages that did not decode.
    pub malformed: u64,
    /// Tensorpool counters, as last read.
    pub counters: Vec<CounterRow>,
    /// IPC publications at their limit, each with the subscription holding it (as `tp stat`
    /// prints them), as last read.
    pub held: Vec<String>,
    /// The supervisor's view, observed on the control and QoS streams (`tp supervisor
    /// status`'s, fed continuously).
    pub supervisor: SupervisorView,
}

impl Model {
    /// Rates over `window_ns`; a stream is stale after `stale_ns` of silence.
    pub fn new(window_ns: u64, stale_ns: u64) -> Self {
        Self {
            window_ns,
            stale_ns,
            streams: BTreeMap::new(),
            messages: 0,
            malformed: 0,
            counters: Vec::new(),
            held: Vec::new(),
            supervisor: SupervisorView::default(),
        }
    }

    /// Whether a supervisor runs: its counters are in the counters file (role 5), or a
    /// `ConsumerConfig` was heard on the control stream within the stale window.
    pub fn supervisor_running(&self, now_ns: u64) -> bool {
        self.counters
            .iter()
            .any(|c| c.key.is_some_and(|k| k.role == "supervisor"))
            || self
                .supervisor
                .config_seen_ns()
                .is_some_and(|t| now_ns.saturating_sub(t) <= self.stale_ns)
    }

    /// The supervisor's view as `tp supervisor status --json` prints it; a consumer is stale
    /// after the stale window without hello or QoS.
    pub fn supervisor_json(&self, now_ns: u64) -> serde_json::Value {
        self.supervisor.to_json(now_ns, self.stale_ns)
    }

    /// One stream.
    pub fn stream(&self, stream_id: u32) -> Option<&Stream> {
        self.streams.get(&stream_id)
    }

    /// The counters whose key names `stream_id`.
    pub fn stream_counters(&self, stream_id: u32) -> impl Iterator<Item = &CounterRow> {
        self.counters
            .iter()
            .filter(move |c| c.key.is_some_and(|k| k.stream_id == stream_id))
    }

    /// Latency and drops by cause of one consumer, from its counters (matched by key).
    pub fn consumer_counters(&self, stream_id: u32, consumer_id: u32) -> ConsumerCounters {
        let mut out = ConsumerCounters::default();
        let own = self.stream_counters(stream_id).filter_map(|c| {
            let k = c.key?;
            (k.role == "consumer" && k.client_id == consumer_id).then_some((k, c.value))
        });
        for (k, value) in own {
            match k.kind {
                203 if value > 0 => out.drops.push((k.cause.unwrap_or("?"), value)),
                207 => out.latency_last_ns = Some(value),
                208 => out.latency_p50_ns = Some(value),
                209 => out.latency_p99_ns = Some(value),
                _ => {}
            }
        }
        out.drops.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        out
    }

    fn entry(&mut self, stream_id: u32, now_ns: u64) -> &mut Stream {
        let window = self.window_ns;
        let s = self
            .streams
            .entry(stream_id)
            .or_insert_with(|| Stream::new(stream_id, window));
        s.seen_ns = now_ns;
        s
    }

    /// Folds one decoded message in (messages that say nothing about streams are counted
    /// only).
    pub fn on_message(&mut self, msg: &AnyMessage<'_>, now_ns: u64) {
        self.messages += 1;
        match msg {
            AnyMessage::ShmPoolAnnounce(m) => self.on_announce(m, now_ns),
            AnyMessage::QosProducer(m) => self.on_qos_producer(m, now_ns),
            AnyMessage::QosConsumer(m) => self.on_qos_consumer(m, now_ns),
            AnyMessage::DataSourceAnnounce(m) => self.on_data_source(m, now_ns),
            AnyMessage::FrameDescriptor(m) => self.on_descriptor(m, now_ns),
            _ => {}
        }
    }

    /// Counts a message that did not decode.
    pub fn on_malformed(&mut self) {
        self.malformed += 1;
    }

    fn on_announce(&mut self, m: &ShmPoolAnnounce<'_>, now_ns: u64) {
        let s = self.entry(m.stream_id, now_ns);
        if s.epochs.last().is_none_or(|&(e, _)| e != m.epoch) {
            s.epochs.push((m.epoch, now_ns));
            if s.epochs.len() > EPOCH_HISTORY {
                s.epochs.remove(0);
            }
        }
        let text =
            |b: &tensorpool_codec::Bytes<'_>| String::from_utf8_lossy(b.as_bytes()).into_owned();
        s.announce = Some(Announce {
            epoch: m.epoch,
            producer_id: m.producer_id,
            layout_version: m.layout_version,
            header_nslots: m.header_nslots,
            header_slot_bytes: m.header_slot_bytes,
            header_uri: text(&m.header_region_uri),
            pools: m
                .payload_pools
                .iter()
                .map(|p| Pool {
                    pool_id: p.pool_id,
                    nslots: p.pool_nslots,
                    stride_bytes: p.stride_bytes,
                    uri: text(&p.region_uri),
                })
                .collect(),
            clock_domain: format!("{:?}", m.announce_clock_domain),
            seen_ns: now_ns,
        });
    }

    fn on_qos_producer(&mut self, m: &QosProducer, now_ns: u64) {
        let window = self.window_ns;
        let s = self.entry(m.stream_id, now_ns);
        let p = s.producer.get_or_insert_with(|| Producer {
            producer_id: m.producer_id,
            epoch: m.epoch,
            current_seq: m.current_seq,
            watermark: m.watermark,
            seen_ns: now_ns,
            rate: RateWindow::new(window),
        });
        if p.epoch != m.epoch {
            p.rate.clear();
        }
        p.producer_id = m.producer_id;
        p.epoch = m.epoch;
        p.current_seq = m.current_seq;
        p.watermark = m.watermark;
        p.seen_ns = now_ns;
        p.rate.push(now_ns, m.current_seq);
    }

    fn on_qos_consumer(&mut self, m: &QosConsumer, now_ns: u64) {
        let window = self.window_ns;
        let s = self.entry(m.stream_id, now_ns);
        let c = s
            .consumers
            .entry(m.consumer_id)
            .or_insert_with(|| Consumer {
                consumer_id: m.consumer_id,
                epoch: m.epoch,
                last_seq_seen: m.last_seq_seen,
                drops_gap: 0,
                drops_late: 0,
                mode: String::new(),
                seen_ns: now_ns,
                rate: RateWindow::new(window),
            });
        if c.epoch != m.epoch {
            c.rate.clear();
        }
        c.epoch = m.epoch;
        c.last_seq_seen = m.last_seq_seen;
        c.drops_gap = m.drops_gap;
        c.drops_late = m.drops_late;
        c.mode = format!("{:?}", m.mode);
        c.seen_ns = now_ns;
        c.rate.push(now_ns, m.last_seq_seen);
    }

    fn on_data_source(&mut self, m: &DataSourceAnnounce<'_>, now_ns: u64) {
        let s = self.entry(m.stream_id, now_ns);
        s.name = Some(String::from_utf8_lossy(m.name.as_bytes()).into_owned());
        s.summary = Some(String::from_utf8_lossy(m.summary.as_bytes()).into_owned());
    }

    fn on_descriptor(&mut self, m: &FrameDescriptor, now_ns: u64) {
        let s = self.entry(m.stream_id, now_ns);
        s.descriptors += 1;
        s.last_descriptor_seq = Some(m.seq);
        let n = s.descriptors;
        s.descriptor_rate.push(now_ns, n);
    }

    /// The stream table, sorted.
    pub fn rows(&self, sort: SortKey, now_ns: u64) -> Vec<StreamRow> {
        let mut rows: Vec<StreamRow> = self.streams.values().map(|s| self.row(s, now_ns)).collect();
        let desc = |a: Option<f64>, b: Option<f64>| b.unwrap_or(-1.0).total_cmp(&a.unwrap_or(-1.0));
        match sort {
            SortKey::Stream => {}
            SortKey::Name => rows.sort_by(|a, b| a.name.cmp(&b.name)),
            SortKey::Fps => rows.sort_by(|a, b| desc(a.fps, b.fps)),
            SortKey::Lag => rows.sort_by_key(|r| std::cmp::Reverse(r.max_lag)),
            SortKey::Drops => rows.sort_by_key(|r| std::cmp::Reverse(r.drops)),
            SortKey::Age => rows.sort_by_key(|r| std::cmp::Reverse(r.announce_age_ms)),
        }
        rows
    }

    fn row(&self, s: &Stream, now_ns: u64) -> StreamRow {
        StreamRow {
            stream_id: s.stream_id,
            name: s.name.clone().unwrap_or_default(),
            epoch: s.epoch(),
            producer_id: s
                .announce
                .as_ref()
                .map(|a| a.producer_id)
                .or_else(|| s.producer.as_ref().map(|p| p.producer_id)),
            fps: s.fps(),
            descriptor_fps: s.descriptor_rate.rate(),
            consumers: s.consumers.len(),
            max_lag: s.consumers.values().filter_map(|c| s.lag(c)).max(),
            drops: s
                .consumers
                .values()
                .map(|c| c.drops_gap.saturating_add(c.drops_late))
                .sum(),
            announce_age_ms: s
                .announce
                .as_ref()
                .map(|a| now_ns.saturating_sub(a.seen_ns) / 1_000_000),
            stale: now_ns.saturating_sub(s.seen_ns) > self.stale_ns,
        }
    }
}

#[cfg(test)]
mod tests;
