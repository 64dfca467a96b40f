//! The producer role (Wire Spec §5, §8.3, §9, §10; Driver Model §2.2): writes tensors
//! straight into a shared-memory slot, commits it with the seqlock and publishes a
//! `FrameDescriptor`; never waits for consumers.
//!
//! ```no_run
//! use tensorpool::prelude::*;
//!
//! let ctx = Context::embedded()?;
//! let mut producer = ctx.producer(10_000).standalone("/dev/shm/tensorpool").build()?;
//! let spec = TensorSpec::new(Dtype::Float32, &[480, 640])?;
//! let mut claim = producer.claim(&spec)?;
//! claim.payload_mut().fill(0);          // write the tensor in place
//! let seq = claim.commit();             // seqlock commit + FrameDescriptor
//! producer.do_work(tensorpool::monotonic_ns()); // announces, QoS, consumer hellos
//! # let _ = seq;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Layout: `config` (fields, defaults, builder), `regions` (standalone files; the place a
//! driver lease plugs in), `claim` (claim -> write -> commit), `handlers` (hello, QoS),
//! `proxy` (outbound messages), `state` (consumers, progress plan), `meta` (metadata and
//! blobs), `work` (duty cycle), `counters`.

mod claim;
mod config;
pub mod counters;
mod handlers;
mod meta;
mod proxy;
mod regions;
mod state;
mod work;

pub use crate::meta::MetaAttribute;
pub use claim::{Claim, ClaimError};
pub use config::{
    META_BLOB_CHUNK_MAX, PoolConfig, ProducerBuilder, ProducerConfig, ProgressPolicy, RegionMode,
};
pub use counters::ProducerCounters;

use std::path::PathBuf;

use tensorpool_aeron::{AddError, AeronClient, Subscription};
use tensorpool_agent::{Agent, AgentResult};

use crate::client::{AeronTransport, ClientEvent, DriverClient};
use crate::context::Context;
use counters::ProducerCells;
use regions::{Regions, Standalone};
use state::{Outbound, Registry};
use work::Timers;

/// Why a producer could not be built. Names what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A configuration field is invalid.
    #[error("producer config `{field}`: expected {expected}")]
    InvalidConfig {
        /// The field.
        field: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// The pools are invalid.
    #[error("pools: {0}")]
    Pools(#[from] tensorpool_shm::PoolError),
    /// The canonical layout could not be set up or created.
    #[error("shared-memory layout: {0}")]
    Layout(#[from] tensorpool_shm::LayoutError),
    /// The base directory is unusable.
    #[error("shared-memory base dir: {0}")]
    Path(#[from] tensorpool_shm::PathError),
    /// A region could not be mapped.
    #[error("mapping a region: {0}")]
    Region(String),
    /// A file-system call failed.
    #[error("{path}: {reason}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
    /// No lease from the SHM driver.
    #[error("attaching to the SHM driver: {0}")]
    Attach(String),
    /// The operation needs standalone mode (the driver owns epochs and files).
    #[error("only a standalone producer owns its epochs")]
    NotStandalone,
    /// An Aeron publication or subscription could not be added.
    #[error("Aeron {what}: {source}")]
    Aeron {
        /// Which stream.
        what: &'static str,
        /// The Aeron error.
        source: AddError,
    },
}

/// Where the regions come from: our own files, or a driver lease.
#[derive(Debug)]
enum Source {
    Standalone(Standalone),
    Driver(Box<DriverLink>),
}

/// A producer lease held through the driver client (Driver Model §2.2, §4.12.2).
#[derive(Debug)]
struct DriverLink {
    client: DriverClient<AeronTransport>,
    allowed: tensorpool_shm::AllowedBaseDirs,
    /// Events of one client cycle (capacity kept: no allocation in steady state).
    events: Vec<ClientEvent>,
}

/// A producer of one data source. Single-threaded: claim/commit and [`Producer::do_work`]
/// run on the thread that owns it (or drive it as an [`Agent`]).
#[derive(Debug)]
pub struct Producer {
    cfg: ProducerConfig,
    source: Source,
    /// The mapped regions (one mapping per file); a claim borrows them for its frame.
    regions: Option<Regions>,
    /// Publications, consumers, counters, next sequence: what a claim publishes through.
    out: Outbound,
    control_sub: Option<Subscription>,
    qos_sub: Option<Subscription>,
    meta: meta::Meta,
    timers: Timers,
    closed: bool,
    ctx: Context,
}

fn aeron(what: &'static str) -> impl FnOnce(AddError) -> BuildError {
    move |source| BuildError::Aeron { what, source }
}

/// Requests the producer's Aeron counters (all at once; see [`finish_counters`]).
fn start_counters<'c>(
    client: &'c AeronClient,
    cfg: &ProducerConfig,
) -> Result<crate::counters::Registrar<'c>, BuildError> {
    let scope = format!("stream={} client={}", cfg.stream_id, cfg.producer_id);
    let mut reg = crate::counters::Registrar::new(
        client,
        crate::counters::Role::Producer,
        cfg.stream_id,
        cfg.producer_id,
        scope,
        cfg.aeron_timeout,
    );
    ProducerCells::register(&mut reg).map_err(aeron("counters"))?;
    Ok(reg)
}

/// The producer's cells with the counters [`start_counters`] requested (bounded by
/// `aeron_timeout`).
fn finish_counters(reg: crate::counters::Registrar<'_>) -> Result<ProducerCells, BuildError> {
    let counters = reg.finish().map_err(aeron("counters"))?;
    let mut cells = ProducerCells::default();
    cells.attach(&mut counters.into_iter());
    Ok(cells)
}

/// The producer's publications, subscriptions and counters.
struct AeronSide {
    pubs: proxy::Publications,
    control_sub: Subscription,
    qos_sub: Subscription,
    counters: ProducerCells,
}

impl AeronSide {
    /// Every registration is requested before any is waited for: a build takes about one
    /// round trip to the media driver, not one per stream (each wait bounded by
    /// `aeron_timeout`).
    fn register(client: &AeronClient, cfg: &ProducerConfig) -> Result<Self, BuildError> {
        let (t, s) = (cfg.aeron_timeout, &cfg.streams);
        let publication = |e: &crate::streams::Endpoint, what| {
            client
                .start_add_exclusive_publication(&e.channel, e.stream_id, t)
                .map_err(aeron(what))
        };
        let subscription = |e: &crate::streams::Endpoint, what| {
            client
                .start_add_subscription(&e.channel, e.stream_id, t)
                .map_err(aeron(what))
        };
        let pending = (
            publication(&s.announce, "announce publication")?,
            client
                .start_add_exclusive_publication(
                    &crate::streams::descriptor_publication_channel(&s.descriptor.channel),
                    s.descriptor.stream_id,
                    t,
                )
                .map_err(aeron("descriptor publication"))?,
            publication(&s.control, "control publication")?,
            publication(&s.qos, "QoS publication")?,
            publication(&s.metadata, "metadata publication")?,
        );
        let control_sub = subscription(&s.control, "control subscription")?;
        let qos_sub = subscription(&s.qos, "QoS subscription")?;
        let counters = match cfg.aeron_counters {
            true => Some(start_counters(client, cfg)?),
            false => None,
        };
        Ok(Self {
            pubs: proxy::Publications {
                announce: pending.0.wait().map_err(aeron("announce publication"))?,
                descriptor: pending.1.wait().map_err(aeron("descriptor publication"))?,
                control: pending.2.wait().map_err(aeron("control publication"))?,
                qos: pending.3.wait().map_err(aeron("QoS publication"))?,
                metadata: pending.4.wait().map_err(aeron("metadata publication"))?,
            },
            control_sub: control_sub.wait().map_err(aeron("control subscription"))?,
            qos_sub: qos_sub.wait().map_err(aeron("QoS subscription"))?,
            counters: match counters {
                Some(reg) => finish_counters(reg)?,
                None => ProducerCells::default(),
            },
        })
    }
}

/// The regions: a standalone epoch created now, or the driver's, by lease.
fn region_source(
    client: &AeronClient,
    cfg: &ProducerConfig,
) -> Result<(Source, Regions), BuildError> {
    match &cfg.mode {
        RegionMode::Standalone => {
            let mut standalone = Standalone::new(cfg)?;
            let regions = standalone.create(cfg)?;
            Ok((Source::Standalone(standalone), regions))
        }
        RegionMode::Driver(endpoints) => {
            let allowed = tensorpool_shm::AllowedBaseDirs::new([&cfg.shm_base_dir])?;
            let role = tensorpool_codec::driver::Role::Producer;
            let ccfg = endpoints.client_config(cfg.stream_id, role, Some(allowed.clone()));
            let (client, info) = crate::client::attach(client, ccfg, endpoints.attach_timeout)
                .map_err(|e| BuildError::Attach(e.to_string()))?;
            let map = tensorpool_shm::MapOptions {
                prefault: false,
                mlock: cfg.mlock,
            };
            let regions = regions::map_driver_regions(&info.regions, &allowed, map)?;
            let link = DriverLink {
                client,
                allowed,
                events: Vec::with_capacity(8),
            };
            Ok((Source::Driver(Box::new(link)), regions))
        }
    }
}

impl Producer {
    fn new(ctx: Context, cfg: ProducerConfig) -> Result<Self, BuildError> {
        let client = ctx.shared().client.clone();
        let side = AeronSide::register(&client, &cfg)?;
        let (source, regions) = region_source(&client, &cfg)?;
        let mut producer = Self {
            timers: Timers::new(&cfg),
            source,
            regions: None,
            out: Outbound {
                pubs: side.pubs,
                registry: Registry::new(cfg.max_consumers),
                counters: side.counters,
                next_seq: 0,
                stalled_since: None,
                stall_reported: false,
                stall_threshold_ns: u64::try_from(cfg.stall_threshold.as_nanos())
                    .unwrap_or(u64::MAX),
            },
            control_sub: Some(side.control_sub),
            qos_sub: Some(side.qos_sub),
            meta: meta::Meta::default(),
            closed: false,
            cfg,
            ctx,
        };
        producer.install(regions);
        producer.out.registry.replan(&producer.cfg);
        Ok(producer)
    }

    /// Switches to freshly mapped regions: seq restarts at 0 (Wire Spec §15.2) and the
    /// announce goes out at the next cycle.
    fn install(&mut self, regions: Regions) {
        self.out.counters.epoch.set(regions.epoch);
        self.regions = Some(regions);
        self.out.next_seq = 0;
        self.out.counters.epochs += 1;
        self.timers.announce.arm_at(0);
    }

    /// Standalone: moves to a new epoch (new files, seq from 0, announce now) and removes the
    /// old epoch's files. Consumers remap at the epoch boundary.
    pub fn bump_epoch(&mut self) -> Result<u64, BuildError> {
        let old = self.regions.as_ref().map(|r| r.epoch);
        let Source::Standalone(s) = &mut self.source else {
            return Err(BuildError::NotStandalone);
        };
        let regions = s.create(&self.cfg)?;
        let epoch = regions.epoch;
        self.regions = None;
        self.install(regions);
        if let (Some(old), Source::Standalone(s)) = (old, &mut self.source) {
            s.remove(old);
        }
        Ok(epoch)
    }

    /// Replaces the data-source attributes: bumps `meta_version` (stamped on every later frame)
    /// and sends `DataSourceMeta` at the next cycle. Returns the new version.
    pub fn set_meta(
        &mut self,
        attrs: &[MetaAttribute],
    ) -> Result<u32, tensorpool_codec::EncodeError> {
        let v = self
            .meta
            .set(self.cfg.stream_id, attrs, tensorpool_agent::monotonic_ns())?;
        self.timers.meta.arm_at(0);
        self.timers.data_source.arm_at(0);
        Ok(v)
    }

    /// Queues a large metadata blob (calibration table, mask, ...) for the current
    /// `meta_version`: sent over the next cycles as announce, chunks and complete, with a
    /// CRC32C checksum.
    pub fn publish_meta_blob(&mut self, blob_type: u32, data: Vec<u8>) {
        self.meta.queue_blob(blob_type, data);
    }

    /// The configuration.
    pub fn config(&self) -> &ProducerConfig {
        &self.cfg
    }

    /// Current epoch (`None` once closed).
    pub fn epoch(&self) -> Option<u64> {
        self.regions.as_ref().map(|r| r.epoch)
    }

    /// Sequence the next claim gets.
    pub fn next_seq(&self) -> u64 {
        self.out.next_seq
    }

    /// Counters.
    pub fn counters(&self) -> ProducerCounters {
        self.out.counters.snapshot()
    }

    /// Consumers currently tracked (heard from within the staleness window).
    pub fn consumer_count(&self) -> usize {
        self.out.registry.entries.len()
    }

    /// Consumers currently holding a registered per-consumer descriptor stream.
    pub fn per_consumer_descriptor_streams(&self) -> usize {
        self.out
            .registry
            .entries
            .iter()
            .filter(|e| e.descriptor.as_ref().is_some_and(state::Granted::is_ready))
            .count()
    }

    /// Whether some consumer follows progress (so `Claim::progress` publishes).
    pub fn progress_active(&self) -> bool {
        self.out.registry.plan.active
    }

    /// Path of the header ring file (standalone) or mapping.
    pub fn header_ring_path(&self) -> Option<PathBuf> {
        self.regions.as_ref().map(|r| r.ring.path().to_path_buf())
    }

    /// Directory of the current epoch (standalone).
    pub fn epoch_dir(&self) -> Option<PathBuf> {
        let epoch = self.epoch()?;
        match &self.source {
            Source::Standalone(s) => Some(s.epoch_dir(epoch)),
            Source::Driver(_) => None,
        }
    }

    /// Clean close: unmaps and, standalone, removes the epoch directory. Idempotent (also
    /// done on drop).
    pub fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        let epoch = self.regions.take().map(|r| r.epoch);
        match &mut self.source {
            Source::Standalone(s) => {
                if let Some(epoch) = epoch {
                    s.remove(epoch);
                }
            }
            Source::Driver(link) => {
                // Best-effort detach (Driver Model §4.9): one cycle sends the request.
                link.client.close();
                link.client
                    .do_work(tensorpool_agent::monotonic_ns(), &mut |_| {});
            }
        }
    }

    /// Whether the producer holds a lease from an SHM driver.
    pub fn is_driver_mode(&self) -> bool {
        matches!(self.source, Source::Driver(_))
    }

    /// Whether the producer has regions to write into (false while paused in driver mode).
    pub fn is_active(&self) -> bool {
        self.regions.is_some()
    }

    /// Drives the driver client (keepalives, revocations, re-attach); applies its events.
    fn driver_duty(&mut self, now_ns: u64) -> usize {
        let Source::Driver(link) = &mut self.source else {
            return 0;
        };
        let mut events = std::mem::take(&mut link.events);
        let work = link.client.do_work(now_ns, &mut |e| events.push(e));
        for e in events.drain(..) {
            self.on_client_event(e);
        }
        if let Source::Driver(link) = &mut self.source {
            link.events = events;
        }
        work
    }

    /// Driver Model §4.12.2: a lease (again) -> Active with its regions; own lease revoked or
    /// lost, driver shut down or gone, protocol error -> Paused (regions unmapped, claims fail
    /// with `NoRegions`); the client re-attaches by itself.
    fn on_client_event(&mut self, event: ClientEvent) {
        let regions = match event {
            ClientEvent::Attached(info) => Some(info.regions),
            ClientEvent::EpochChanged(r) => Some(r),
            ClientEvent::LeaseRevoked { .. }
            | ClientEvent::LeaseLost(_)
            | ClientEvent::DriverShutdown { .. }
            | ClientEvent::DriverLost
            | ClientEvent::ProtocolError(_) => {
                self.regions = None;
                self.out.counters.epoch.set(0);
                self.out.counters.pauses += 1;
                None
            }
            _ => None,
        };
        let (Some(r), Source::Driver(link)) = (regions, &self.source) else {
            return;
        };
        let map = tensorpool_shm::MapOptions {
            prefault: false,
            mlock: self.cfg.mlock,
        };
        // The old epoch's mappings go before the new ones are made.
        self.regions = None;
        match regions::map_driver_regions(&r, &link.allowed, map) {
            Ok(m) => self.install(m),
            Err(e) => tracing::warn!(error = %e, "producer could not map the driver's regions"),
        }
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.close();
    }
}

impl Agent for Producer {
    fn do_work(&mut self, now_ns: u64) -> AgentResult {
        Ok(Producer::do_work(self, now_ns))
    }

    fn on_close(&mut self) {
        self.close();
    }

    fn role_name(&self) -> &str {
        "producer"
    }
}
