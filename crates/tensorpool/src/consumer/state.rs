//! The consumer's state: the mapping state machine of Wire Spec §15.12 / §15.21 and what the
//! message handlers share.

use tensorpool_shm::AllowedBaseDirs;

use super::config::ConsumerConfig;
use super::counters::{ConsumerCells, DropCells, LatencyWindow};
use super::mapping::Mapped;
use super::meta::MetaStore;
use super::progress::Tracker;

/// Where the consumer stands (Wire Spec §15.12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerState {
    /// Waiting for a usable `ShmPoolAnnounce` (M0).
    Unmapped,
    /// Regions mapped and validated for `epoch` (M1).
    Mapped {
        /// The mapped epoch.
        epoch: u64,
    },
    /// SHM not used: the producer said `use_shm = false`, or mapping failed and a fallback
    /// URI is configured. See [`super::Consumer::fallback`].
    Fallback,
}

/// Why and where the consumer falls back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fallback {
    /// `payload_fallback_uri` (empty when none was given).
    pub uri: String,
    /// Whether the scheme is one this library recognises (`aeron:` channels, `bridge://`);
    /// undefined schemes are unsupported (Wire Spec §10.1.3). Payload delivery over a
    /// fallback is not implemented here: frames stop while in FALLBACK.
    pub supported: bool,
    /// Whether the producer (or supervisor) ordered it, as opposed to a local mapping failure.
    pub ordered: bool,
}

impl Fallback {
    pub(crate) fn new(uri: &[u8], ordered: bool) -> Self {
        let uri = String::from_utf8_lossy(uri).into_owned();
        let supported = uri.starts_with("aeron:") || uri.starts_with("bridge://");
        Self {
            uri,
            supported,
            ordered,
        }
    }
}

/// A per-consumer stream assignment received in `ConsumerConfig`, applied after the poll.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Assignment {
    pub descriptor: Option<(String, i32)>,
    pub control: Option<(String, i32)>,
}

/// Everything the handlers share (the subscriptions live apart so that a poll callback can
/// borrow this mutably).
#[derive(Debug)]
pub(crate) struct Core {
    pub cfg: ConsumerConfig,
    pub allowed: AllowedBaseDirs,
    pub mapped: Option<Mapped>,
    pub fallback: Option<Fallback>,
    /// After a stale or changed mapping: only a newer epoch is mapped.
    pub dead_epoch: u64,
    /// Highest epoch announced (with its local receipt time).
    pub highest: Option<(u64, u64)>,
    /// A failed epoch is not retried before this time.
    pub backoff: Option<(u64, u64)>,
    pub last_error: Option<String>,
    pub join_time_ns: u64,
    pub last_seq: Option<u64>,
    pub last_gate_ts: Option<u64>,
    pub effective_mode: tensorpool_codec::wire::Mode,
    pub per_consumer_descriptor: bool,
    pub assignment: Assignment,
    pub assignment_changed: bool,
    pub tracker: Tracker,
    pub counters: ConsumerCells,
    pub drops: DropCells,
    /// Delivery latencies since the last QoS report.
    pub latency: LatencyWindow,
    pub meta: MetaStore,
}

impl Core {
    pub fn new(
        cfg: ConsumerConfig,
        allowed: AllowedBaseDirs,
        counters: ConsumerCells,
        drops: DropCells,
    ) -> Self {
        Self {
            effective_mode: cfg.mode.wire(),
            cfg,
            allowed,
            mapped: None,
            fallback: None,
            dead_epoch: 0,
            highest: None,
            backoff: None,
            last_error: None,
            join_time_ns: 0,
            last_seq: None,
            last_gate_ts: None,
            per_consumer_descriptor: false,
            assignment: Assignment::default(),
            assignment_changed: false,
            tracker: Tracker::default(),
            counters,
            drops,
            latency: LatencyWindow::default(),
            meta: MetaStore::default(),
        }
    }

    pub fn state(&self) -> ConsumerState {
        match (&self.mapped, &self.fallback) {
            (_, Some(f)) if f.ordered => ConsumerState::Fallback,
            (Some(m), _) => ConsumerState::Mapped { epoch: m.epoch },
            (None, Some(_)) => ConsumerState::Fallback,
            (None, None) => ConsumerState::Unmapped,
        }
    }

    /// Hard boundary (§15.21): drop the mapping and every per-epoch tracking state.
    pub fn unmap(&mut self) {
        self.mapped = None;
        self.counters.epoch.set(0);
        self.last_seq = None;
        self.last_gate_ts = None;
        self.tracker.reset();
    }

    /// Takes freshly mapped regions (M1).
    pub fn install(&mut self, m: Mapped) {
        self.counters.epoch.set(m.epoch);
        self.mapped = Some(m);
        self.counters.maps += 1;
    }

    /// Publishes the latency quantiles of the interval that ends and starts a new one.
    pub fn roll_latency(&mut self) {
        let (p50, p99) = (self.latency.quantile(0.5), self.latency.quantile(0.99));
        self.counters.latency_p50_ns.set(p50.unwrap_or(0));
        self.counters.latency_p99_ns.set(p99.unwrap_or(0));
        self.latency.clear();
    }
}
