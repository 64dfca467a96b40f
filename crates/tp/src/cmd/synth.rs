//! Shared by `tp produce`, `tp consume` and `tp demo`: synthetic payloads that carry their own
//! checksum, the producing and verifying agents, and live statistics.
//!
//! Payload layout: bytes 0..8 the frame's seq (LE), 8..12 the CRC32C of bytes 12.. (LE),
//! 12.. a pattern derived from the seq (so a torn mix of two frames fails the checksum).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hdrhistogram::Histogram;
use tensorpool::consumer::{Consumer, ConsumerAgent, Drops, FrameHandler};
use tensorpool::frame::{Frame, TensorSpec};
use tensorpool::producer::Producer;
use tensorpool_agent::{Agent, AgentResult};

/// Smallest payload that carries seq + checksum.
pub const HEADER_LEN: usize = 12;

/// Writes seq, pattern and checksum into `buf`.
pub fn fill_payload(buf: &mut [u8], seq: u64) {
    if buf.len() < HEADER_LEN {
        buf.fill(seq as u8);
        return;
    }
    let mut x = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let (head, body) = buf.split_at_mut(HEADER_LEN);
    let mut words = body.chunks_exact_mut(8);
    for w in &mut words {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        w.copy_from_slice(&x.to_le_bytes());
    }
    for b in words.into_remainder() {
        *b = x as u8;
    }
    let crc = crc32c::crc32c(body);
    head[..8].copy_from_slice(&seq.to_le_bytes());
    head[8..12].copy_from_slice(&crc.to_le_bytes());
}

/// Whether `bytes` is the payload of frame `seq` (seq and checksum match).
pub fn verify_payload(bytes: &[u8], seq: u64) -> bool {
    if bytes.len() < HEADER_LEN {
        return true;
    }
    let mut s = [0u8; 8];
    s.copy_from_slice(&bytes[..8]);
    let mut c = [0u8; 4];
    c.copy_from_slice(&bytes[8..12]);
    u64::from_le_bytes(s) == seq && crc32c::crc32c(&bytes[HEADER_LEN..]) == u32::from_le_bytes(c)
}

/// The sum of every byte of `bytes` as unsigned integers (what `tp consume --sum` adds up per
/// frame). Bytes are added in u32 lanes over blocks of 64 KiB (at most 65536 x 255 < 2^32,
/// so no lane overflows), which the compiler vectorizes, then into the u64 total.
pub fn byte_sum(bytes: &[u8]) -> u64 {
    bytes
        .chunks(1 << 16)
        .map(|c| u64::from(c.iter().map(|&b| u32::from(b)).sum::<u32>()))
        .sum()
}

/// Live numbers of one role, written by its agent thread, read by the display.
#[derive(Debug, Default)]
pub struct LiveStats {
    pub frames: AtomicU64,
    pub bytes: AtomicU64,
    pub drops: AtomicU64,
    pub corrupt: AtomicU64,
    pub p50_us: AtomicU64,
    pub p99_us: AtomicU64,
    pub last_seq: AtomicU64,
    pub done: AtomicBool,
}

/// A paced synthetic producer agent.
pub struct SynthProducer {
    pub producer: Producer,
    pub spec: TensorSpec,
    pub period_ns: u64,
    pub count: u64,
    next_due: u64,
    produced: u64,
    pub stats: Arc<LiveStats>,
}

impl SynthProducer {
    pub fn new(
        producer: Producer,
        spec: TensorSpec,
        rate_hz: f64,
        count: u64,
        stats: Arc<LiveStats>,
    ) -> Self {
        let period_ns = if rate_hz > 0.0 {
            (1e9 / rate_hz) as u64
        } else {
            0
        };
        Self {
            producer,
            spec,
            period_ns,
            count,
            next_due: 0,
            produced: 0,
            stats,
        }
    }

    fn produce_one(&mut self, now: u64) -> usize {
        if self.produced >= self.count || now < self.next_due {
            return 0;
        }
        self.next_due = if self.next_due == 0 || now.saturating_sub(self.next_due) > 1_000_000_000 {
            now + self.period_ns
        } else {
            self.next_due + self.period_ns
        };
        let Ok(mut claim) = self.producer.claim(&self.spec) else {
            return 0;
        };
        let seq = claim.seq();
        fill_payload(claim.payload_mut(), seq);
        claim.commit();
        self.produced += 1;
        self.stats.frames.store(self.produced, Ordering::Relaxed);
        let len = self.spec.len_bytes() as u64;
        self.stats.bytes.fetch_add(len, Ordering::Relaxed);
        self.stats.last_seq.store(seq, Ordering::Relaxed);
        if self.produced >= self.count {
            self.stats.done.store(true, Ordering::Release);
        }
        1
    }
}

impl Agent for SynthProducer {
    fn do_work(&mut self, now_ns: u64) -> AgentResult {
        let mut work = self.producer.do_work(now_ns);
        work += self.produce_one(now_ns);
        Ok(work)
    }

    fn on_close(&mut self) {
        self.producer.close();
    }

    fn role_name(&self) -> &str {
        "producer"
    }
}

/// A frame handler that verifies checksums, optionally sums every byte, and records latency.
pub struct Verifier {
    pub verify: bool,
    /// Sum every byte of each frame (`tp consume --sum`).
    pub sum: bool,
    /// Accepted frames summed, and the wrapping u64 total of their byte sums.
    pub summed: u64,
    pub sum_total: u64,
    pub hist: Histogram<u64>,
    pub corrupt: u64,
    pub verified: u64,
    pub bytes: u64,
}

impl Verifier {
    pub fn new(verify: bool) -> Self {
        Self {
            verify,
            sum: false,
            summed: 0,
            sum_total: 0,
            hist: Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds"),
            corrupt: 0,
            verified: 0,
            bytes: 0,
        }
    }
}

impl FrameHandler for Verifier {
    fn on_frame(&mut self, frame: &Frame<'_>) {
        let ok = !self.verify || verify_payload(frame.bytes(), frame.seq());
        let sum = if self.sum { byte_sum(frame.bytes()) } else { 0 };
        if frame.recheck().is_err() {
            return; // overwritten while verified: counted late by the consumer
        }
        if !ok {
            self.corrupt += 1;
        }
        if self.sum {
            self.summed += 1;
            self.sum_total = self.sum_total.wrapping_add(sum);
        }
        self.verified += 1;
        self.bytes += frame.bytes().len() as u64;
        let lat_us = tensorpool::monotonic_ns().saturating_sub(frame.timestamp_ns()) / 1000;
        let _ = self.hist.record(lat_us.max(1));
    }
}

/// Final numbers of a consumer.
#[derive(Debug, Clone)]
pub struct ConsumerSummary {
    pub accepted: u64,
    pub drops: Drops,
    pub corrupt: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    /// With `--sum`: accepted frames summed and the wrapping total of their byte sums.
    pub sum: Option<(u64, u64)>,
}

impl ConsumerSummary {
    pub fn of(consumer: &Consumer, v: &Verifier) -> Self {
        Self {
            accepted: consumer.counters().accepted,
            drops: consumer.drops(),
            corrupt: v.corrupt,
            p50_us: v.hist.value_at_quantile(0.5),
            p99_us: v.hist.value_at_quantile(0.99),
            sum: v.sum.then_some((v.summed, v.sum_total)),
        }
    }

    /// Drops by cause as a JSON object (gap included).
    pub fn drops_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        for (cause, n) in self.drops.iter() {
            m.insert(cause.name().into(), n.into());
        }
        if self.drops.gap > 0 {
            m.insert("gap".into(), self.drops.gap.into());
        }
        serde_json::Value::Object(m)
    }
}

/// A verifying consumer agent that publishes live stats and a final summary.
pub struct StatsConsumer {
    pub inner: ConsumerAgent<Verifier>,
    pub stats: Arc<LiveStats>,
    pub summary: Arc<Mutex<Option<ConsumerSummary>>>,
    next_publish: u64,
}

impl StatsConsumer {
    pub fn new(consumer: Consumer, verify: bool, stats: Arc<LiveStats>) -> Self {
        Self {
            inner: consumer.into_agent(Verifier::new(verify), 64),
            stats,
            summary: Arc::new(Mutex::new(None)),
            next_publish: 0,
        }
    }

    fn publish(&self) {
        let c = self.inner.consumer();
        let v = self.inner.handler();
        let s = &self.stats;
        s.frames.store(c.counters().accepted, Ordering::Relaxed);
        s.bytes.store(v.bytes, Ordering::Relaxed);
        s.drops
            .store(c.drops().total() + c.drops().gap, Ordering::Relaxed);
        s.corrupt.store(v.corrupt, Ordering::Relaxed);
        s.p50_us
            .store(v.hist.value_at_quantile(0.5), Ordering::Relaxed);
        s.p99_us
            .store(v.hist.value_at_quantile(0.99), Ordering::Relaxed);
        s.last_seq
            .store(c.last_seq().unwrap_or(0), Ordering::Relaxed);
    }
}

impl Agent for StatsConsumer {
    fn do_work(&mut self, now_ns: u64) -> AgentResult {
        let work = self.inner.do_work(now_ns)?;
        if now_ns >= self.next_publish {
            self.next_publish = now_ns + 100_000_000;
            self.publish();
        }
        Ok(work)
    }

    fn on_close(&mut self) {
        self.publish();
        let s = ConsumerSummary::of(self.inner.consumer(), self.inner.handler());
        if let Ok(mut slot) = self.summary.lock() {
            *slot = Some(s);
        }
    }

    fn role_name(&self) -> &str {
        "consumer"
    }
}

/// Parses `480x640` (or `480,640`).
pub fn parse_shape(text: &str) -> Result<Vec<usize>, String> {
    text.split(['x', 'X', ','])
        .map(|d| {
            d.trim()
                .parse::<usize>()
                .map_err(|_| format!("bad dimension `{d}` in shape `{text}`"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sum_is_exact_across_block_boundaries_and_at_the_u32_lane_limit() {
        for len in [
            0,
            1,
            255,
            65_535,
            65_536,
            65_537,
            640 * 1024,
            3 * 65_536 + 17,
        ] {
            let ones = vec![0xFFu8; len];
            assert_eq!(byte_sum(&ones), 255 * len as u64, "len {len}");
            let ramp: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let naive: u64 = ramp.iter().map(|&b| u64::from(b)).sum();
            assert_eq!(byte_sum(&ramp), naive, "len {len}");
        }
    }
}
