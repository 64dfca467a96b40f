//! The data the producer's core owns: one entry per `ConsumerHello` with the per-consumer
//! streams it granted, the progress policy aggregated from their hints, and [`Outbound`]
//! (what a claim publishes through besides its sinks).

use tensorpool_codec::wire::Mode;

use super::config::ProducerConfig;
use super::core::ConsumerLink;
use super::counters::ProducerCells;
use crate::control::MessageSink;

/// What a claim needs besides its slot (which borrows the regions) and its sinks: the
/// consumers (per-consumer streams, progress plan), the counters and the next sequence.
/// The frame's path through it is in `claim.rs`.
#[derive(Debug)]
pub(crate) struct Outbound {
    pub registry: Registry,
    pub counters: ProducerCells,
    /// Sequence the next claim gets.
    pub next_seq: u64,
    /// Since when (capture clock, ns) the shared descriptor stream has refused every
    /// descriptor with back pressure; `None` while it takes them.
    pub stalled_since: Option<u64>,
    /// Whether the current stall was already logged and counted.
    pub stall_reported: bool,
    /// `ProducerConfig::stall_threshold` in ns.
    pub stall_threshold_ns: u64,
}

impl Outbound {
    pub fn new(cfg: &ProducerConfig, counters: ProducerCells) -> Self {
        Self {
            registry: Registry::new(cfg.max_consumers),
            counters,
            next_seq: 0,
            stalled_since: None,
            stall_reported: false,
            stall_threshold_ns: u64::try_from(cfg.stall_threshold.as_nanos()).unwrap_or(u64::MAX),
        }
    }
}

/// A per-consumer stream the producer publishes on, once its registration completed (the
/// link is the agent's transport: an Aeron publication, or a recording sink in tests).
#[derive(Debug)]
pub(crate) struct Granted {
    pub channel: String,
    pub stream_id: u32,
    pub link: Box<dyn ConsumerLink>,
    pub ready: bool,
}

impl Granted {
    pub fn matches(&self, channel: &[u8], stream_id: u32) -> bool {
        self.stream_id == stream_id && self.channel.as_bytes() == channel
    }

    /// The sink, once registered.
    pub fn sink(&mut self) -> Option<&mut dyn MessageSink> {
        match self.ready {
            true => self.link.sink(),
            false => None,
        }
    }

    pub fn is_ready(&self) -> bool {
        self.ready
    }
}

/// What polling a pending per-consumer registration found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolved {
    /// Nothing pending, or still pending.
    Unchanged,
    /// The stream is registered.
    Ready,
    /// The transport refused it or its deadline passed: the request is declined.
    Failed,
}

/// Polls one per-consumer registration (non-blocking); a failed one is removed.
pub(crate) fn poll_grant(slot: &mut Option<Granted>) -> Resolved {
    let Some(g) = slot.as_mut().filter(|g| !g.ready) else {
        return Resolved::Unchanged;
    };
    match g.link.poll() {
        Ok(false) => Resolved::Unchanged,
        Ok(true) => {
            g.ready = true;
            Resolved::Ready
        }
        Err(e) => {
            tracing::warn!(channel = %g.channel, stream_id = g.stream_id, error = %e,
                "per-consumer stream declined");
            *slot = None;
            Resolved::Failed
        }
    }
}

/// One consumer, as its last hello described it.
#[derive(Debug)]
pub(crate) struct ConsumerEntry {
    pub consumer_id: u32,
    pub last_seen_ns: u64,
    pub supports_progress: bool,
    pub mode: Mode,
    pub max_rate_hz: u32,
    pub hints: [Option<u32>; 3],
    pub descriptor: Option<Granted>,
    pub control: Option<Granted>,
    /// When the last descriptor went out on the per-consumer stream (rate cap).
    pub last_descriptor_ns: u64,
    /// A hello is unanswered until its per-consumer registrations complete.
    pub answer_due: bool,
}

impl ConsumerEntry {
    pub fn new(consumer_id: u32, now_ns: u64) -> Self {
        Self {
            consumer_id,
            last_seen_ns: now_ns,
            supports_progress: false,
            mode: Mode::Stream,
            max_rate_hz: 0,
            hints: [None; 3],
            descriptor: None,
            control: None,
            last_descriptor_ns: 0,
            answer_due: false,
        }
    }

    /// Whether a per-consumer registration is still in flight.
    pub fn is_pending(&self) -> bool {
        [&self.descriptor, &self.control]
            .into_iter()
            .flatten()
            .any(|g| !g.is_ready())
    }

    /// Minimum interval between descriptors on the per-consumer stream: `max_rate_hz` caps
    /// only a RATE_LIMITED consumer's own stream (Wire Spec §5, §11); 0 = unthrottled.
    pub fn descriptor_interval_ns(&self) -> u64 {
        if self.mode == Mode::RateLimited && self.max_rate_hz > 0 {
            1_000_000_000 / u64::from(self.max_rate_hz)
        } else {
            0
        }
    }
}

/// Progress publishing decided from every consumer's hello (Wire Spec §10.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct ProgressPlan {
    /// Some consumer said `supports_progress`: publish at all.
    pub active: bool,
    /// Some progress consumer has no per-consumer control stream: publish on the shared one.
    pub on_shared: bool,
    pub interval_ns: u64,
    pub bytes_delta: u64,
    pub major_delta_units: u64,
}

/// The consumers the producer tracks (bounded; no allocation once full capacity exists).
#[derive(Debug)]
pub(crate) struct Registry {
    pub entries: Vec<ConsumerEntry>,
    pub capacity: usize,
    pub plan: ProgressPlan,
}

impl Registry {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Vec::with_capacity(capacity),
            capacity,
            plan: ProgressPlan::default(),
        }
    }

    pub fn find_mut(&mut self, consumer_id: u32) -> Option<&mut ConsumerEntry> {
        self.entries
            .iter_mut()
            .find(|e| e.consumer_id == consumer_id)
    }

    /// Removes consumers heard from neither by hello nor QoS within `stale_ns`; closing their
    /// per-consumer publications (dropped). Returns how many were removed.
    pub fn sweep(&mut self, now_ns: u64, stale_ns: u64) -> usize {
        let before = self.entries.len();
        self.entries
            .retain(|e| now_ns.saturating_sub(e.last_seen_ns) <= stale_ns);
        before - self.entries.len()
    }

    /// Aggregates hints: the smallest interval and deltas offered, never below the floors;
    /// producer defaults for a hint nobody gave (Wire Spec §10.2.2).
    pub fn replan(&mut self, cfg: &ProducerConfig) {
        let mut plan = ProgressPlan::default();
        let mut mins: [Option<u32>; 3] = [None; 3];
        for e in self.entries.iter().filter(|e| e.supports_progress) {
            plan.active = true;
            plan.on_shared |= !e.control.as_ref().is_some_and(Granted::is_ready);
            for (m, h) in mins.iter_mut().zip(e.hints) {
                if let Some(h) = h {
                    *m = Some(m.map_or(h, |m| m.min(h)));
                }
            }
        }
        let d = cfg.progress_default;
        let f = cfg.progress_floor;
        let pick =
            |m: Option<u32>, default: u32, floor: u32| u64::from(m.unwrap_or(default).max(floor));
        plan.interval_ns = pick(mins[0], d.interval_us, f.interval_us) * 1000;
        plan.bytes_delta = pick(mins[1], d.bytes_delta, f.bytes_delta);
        plan.major_delta_units = pick(mins[2], d.major_delta_units, f.major_delta_units);
        self.plan = plan;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::producer::config::ProgressPolicy;

    #[test]
    fn w_10_2_2_hints_aggregate_to_the_smallest_not_below_the_floors() {
        let mut cfg = ProducerConfig::new(1);
        cfg.progress_floor = ProgressPolicy {
            interval_us: 100,
            bytes_delta: 4096,
            major_delta_units: 0,
        };
        let mut r = Registry::new(4);
        r.replan(&cfg);
        assert!(!r.plan.active, "no consumer asked for progress");
        let mut a = ConsumerEntry::new(1, 0);
        a.supports_progress = true;
        a.hints = [Some(500), Some(8192), Some(4)];
        let mut b = ConsumerEntry::new(2, 0);
        b.supports_progress = true;
        b.hints = [Some(50), Some(100_000), None];
        let mut c = ConsumerEntry::new(3, 0);
        c.hints = [Some(1), Some(1), Some(1)]; // not a progress consumer: ignored
        r.entries.extend([a, b, c]);
        r.replan(&cfg);
        let p = r.plan;
        assert!(p.active && p.on_shared);
        assert_eq!(
            p.interval_ns, 100_000,
            "smallest (50 us) raised to the 100 us floor"
        );
        assert_eq!(p.bytes_delta, 8192, "smallest offered");
        assert_eq!(p.major_delta_units, 4);
        r.entries.truncate(0);
        r.replan(&cfg);
        assert!(!r.plan.active);
        assert_eq!(r.plan.bytes_delta, 65_536, "producer default without hints");
    }
}
