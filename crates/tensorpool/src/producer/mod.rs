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
//! The producer is a core without transport ([`ProducerCore`]: decoded messages, a clock and
//! sinks in, messages out through [`Sinks`]) plus this agent, which adds the Aeron
//! publications and subscriptions and the driver client.
//!
//! | file | what it holds |
//! |---|---|
//! | `mod.rs` | [`Producer`] (core + Aeron streams + driver client), its [`Agent`] impl, [`BuildError`] |
//! | `config.rs` | [`ProducerConfig`] fields, defaults, loading, validation; [`ProducerBuilder`] |
//! | `core.rs` | [`ProducerCore`]: state, construction, accessors, epochs, close; [`Sinks`], the per-consumer link traits and their recording implementations |
//! | `state.rs` | the data the core owns: consumers, granted streams, progress plan, `Outbound` |
//! | `handlers.rs` | one `on_<message>` per inbound message (hello, QoS, driver-client event) |
//! | `proxy.rs` | one `send_<message>` per outbound message, through `control::send` |
//! | `work.rs` | the agent's duty cycle, and the core's periodic duties (`on_tick`) |
//! | `claim.rs` | the frame's path: claim -> write -> commit -> descriptor (-> progress) |
//! | `regions.rs` | standalone epoch files; mapping a driver lease's regions |
//! | `meta.rs` | data-source metadata and meta blobs |
//! | `counters.rs` | the counter table (and which are Aeron counters) |
//! | `wait.rs` | signals: the media driver's loss, [`Producer::wait_for_consumers`] (consumers' mapped-epoch counters) |

mod claim;
mod config;
mod core;
pub mod counters;
mod handlers;
mod meta;
mod proxy;
mod regions;
mod state;
mod wait;
mod work;

pub use crate::meta::MetaAttribute;
pub use claim::{Claim, ClaimError, FrameStamp};
pub use config::{
    META_BLOB_CHUNK_MAX, PoolConfig, ProducerBuilder, ProducerConfig, ProgressPolicy, RegionMode,
};
pub use core::{
    ConsumerLink, LinkOpener, OpenedLink, ProducerCore, RecordingLinks, RecordingSinks, Sinks,
};
pub use counters::ProducerCounters;
pub use wait::WaitError;

use std::path::PathBuf;

use tensorpool_aeron::{AddError, AeronClient, PendingPublication, Publication, Subscription};
use tensorpool_agent::{Agent, AgentResult};

use crate::client::{AeronTransport, ClientEvent, DriverClient};
use crate::context::Context;
use crate::control::MessageSink;
use crate::frame::TensorSpec;
use core::RegionSource;
use counters::ProducerCells;
use regions::{Regions, Standalone};

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

/// A producer lease held through the driver client (Driver Model §2.2, §4.12.2).
#[derive(Debug)]
struct DriverLink {
    client: DriverClient<AeronTransport>,
    /// Events of one client cycle (capacity kept: no allocation in steady state).
    events: Vec<ClientEvent>,
}

/// A producer of one data source. Single-threaded: claim/commit and [`Producer::do_work`]
/// run on the thread that owns it (or drive it as an [`Agent`]). Its logic is a
/// [`ProducerCore`]; this adds the Aeron streams and, in driver mode, the driver client.
#[derive(Debug)]
pub struct Producer {
    core: ProducerCore,
    /// The shared publications: the core's sinks.
    pubs: Publications,
    control_sub: Option<Subscription>,
    qos_sub: Option<Subscription>,
    /// The driver client (driver mode).
    driver: Option<Box<DriverLink>>,
    /// The Aeron client (and embedded media driver) the streams belong to: dropped last.
    _ctx: Context,
}

/// The producer's shared publications (exclusive: one writer each).
#[derive(Debug)]
pub(crate) struct Publications {
    pub announce: Publication,
    pub descriptor: Publication,
    pub control: Publication,
    pub qos: Publication,
    pub metadata: Publication,
}

impl Publications {
    /// The publications as the core's sinks.
    fn sinks(&mut self) -> Sinks<'_> {
        Sinks {
            announce: &mut self.announce,
            descriptor: &mut self.descriptor,
            control: &mut self.control,
            qos: &mut self.qos,
            metadata: &mut self.metadata,
        }
    }
}

/// Opens per-consumer streams as Aeron exclusive publications (registered in the
/// background; polled, never waited on).
#[derive(Debug)]
struct AeronLinks {
    client: AeronClient,
    timeout: std::time::Duration,
}

impl LinkOpener for AeronLinks {
    fn open(&mut self, channel: &str, stream_id: i32) -> Result<Box<dyn ConsumerLink>, String> {
        match self
            .client
            .start_add_exclusive_publication(channel, stream_id, self.timeout)
        {
            Ok(pending) => Ok(Box::new(AeronLink::Pending(pending))),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// A per-consumer Aeron publication: pending registration, then ready.
#[derive(Debug)]
enum AeronLink {
    Pending(PendingPublication),
    Ready(Publication),
}

impl ConsumerLink for AeronLink {
    fn poll(&mut self) -> Result<bool, String> {
        let AeronLink::Pending(pending) = self else {
            return Ok(true);
        };
        match pending.poll() {
            Ok(None) => Ok(false),
            Ok(Some(publication)) => {
                *self = AeronLink::Ready(publication);
                Ok(true)
            }
            Err(e) => Err(e.to_string()),
        }
    }

    fn sink(&mut self) -> Option<&mut dyn MessageSink> {
        match self {
            AeronLink::Ready(p) => Some(p),
            AeronLink::Pending(_) => None,
        }
    }
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
    pubs: Publications,
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
            pubs: Publications {
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

/// The regions: a standalone epoch created now, or the driver's, by lease (with the
/// driver client that holds it).
/// Where a producer's regions come from, the first regions, the driver link (driver mode)
/// and the node id the driver assigned with the lease.
type SourcedRegions = (RegionSource, Regions, Option<Box<DriverLink>>, Option<u32>);

fn region_source(client: &AeronClient, cfg: &ProducerConfig) -> Result<SourcedRegions, BuildError> {
    match &cfg.mode {
        RegionMode::Standalone => {
            let mut standalone = Standalone::new(cfg)?;
            let regions = standalone.create(cfg)?;
            Ok((RegionSource::Standalone(standalone), regions, None, None))
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
                events: Vec::with_capacity(8),
            };
            Ok((
                RegionSource::Driver { allowed },
                regions,
                Some(Box::new(link)),
                info.node_id,
            ))
        }
    }
}

impl Producer {
    fn new(ctx: Context, cfg: ProducerConfig) -> Result<Self, BuildError> {
        let client = ctx.shared().client.clone();
        let side = AeronSide::register(&client, &cfg)?;
        let (source, regions, driver, node_id) = region_source(&client, &cfg)?;
        let links = Box::new(AeronLinks {
            client,
            timeout: cfg.aeron_timeout,
        });
        let mut core = ProducerCore::from_parts(cfg, source, regions, side.counters, links);
        core.arm_tracing(node_id)?;
        Ok(Self {
            core,
            pubs: side.pubs,
            control_sub: Some(side.control_sub),
            qos_sub: Some(side.qos_sub),
            driver,
            _ctx: ctx,
        })
    }

    /// Claims the next slot for a tensor of `spec` (payload length `spec.len_bytes()`).
    /// See [`claim`](claim.rs) for the frame's path.
    pub fn claim(&mut self, spec: &TensorSpec) -> Result<Claim<'_>, ClaimError> {
        self.check_driver()?;
        self.core.claim(spec, self.pubs.sinks())
    }

    /// Claims the next slot with an explicit payload length (at least the tensor's extent).
    pub fn claim_len(&mut self, spec: &TensorSpec, len: usize) -> Result<Claim<'_>, ClaimError> {
        self.check_driver()?;
        self.core.claim_len(spec, len, self.pubs.sinks())
    }

    /// Claims a slot for a frame copied from another stream (a rate limiter's or a bridge's
    /// destination): sequence, timestamp and `meta_version` from `stamp`.
    pub fn claim_stamped(
        &mut self,
        spec: &TensorSpec,
        len: usize,
        stamp: FrameStamp,
    ) -> Result<Claim<'_>, ClaimError> {
        self.check_driver()?;
        self.core.claim_stamped(spec, len, stamp, self.pubs.sinks())
    }

    /// Copies `payload` into the next slot and commits it: claim + copy + commit.
    pub fn offer(&mut self, spec: &TensorSpec, payload: &[u8]) -> Result<u64, ClaimError> {
        self.check_driver()?;
        self.core.offer(spec, payload, self.pubs.sinks())
    }

    /// The producer's logic and state.
    pub fn core(&self) -> &ProducerCore {
        &self.core
    }

    /// Standalone: moves to a new epoch (new files, seq from 0, announce now) and removes the
    /// old epoch's files. Consumers remap at the epoch boundary.
    pub fn bump_epoch(&mut self) -> Result<u64, BuildError> {
        self.core.bump_epoch()
    }

    /// Replaces the data-source attributes: bumps `meta_version` (stamped on every later frame)
    /// and sends `DataSourceMeta` at the next cycle. Returns the new version.
    pub fn set_meta(
        &mut self,
        attrs: &[MetaAttribute],
    ) -> Result<u32, tensorpool_codec::EncodeError> {
        self.core.set_meta(attrs, tensorpool_agent::monotonic_ns())
    }

    /// Forwards another stream's metadata (a rate limiter or bridge republishing a stream,
    /// RateLimiter §6): `attrs` with `meta_version` preserved, `DataSourceMeta.streamId` =
    /// `meta_stream_id`, and the data source `name` when given; sent at the next cycle.
    pub fn forward_meta(
        &mut self,
        meta_stream_id: u32,
        attrs: &[MetaAttribute],
        meta_version: u32,
        name: Option<&str>,
    ) -> Result<u32, tensorpool_codec::EncodeError> {
        self.core.forward_meta(
            meta_stream_id,
            attrs,
            meta_version,
            name,
            tensorpool_agent::monotonic_ns(),
        )
    }

    /// Queues a large metadata blob (calibration table, mask, ...) for the current
    /// `meta_version`: sent over the next cycles as announce, chunks and complete, with a
    /// CRC32C checksum.
    pub fn publish_meta_blob(&mut self, blob_type: u32, data: Vec<u8>) {
        self.core.publish_meta_blob(blob_type, data);
    }

    /// The configuration.
    pub fn config(&self) -> &ProducerConfig {
        self.core.config()
    }

    /// Current epoch (`None` once closed).
    pub fn epoch(&self) -> Option<u64> {
        self.core.epoch()
    }

    /// Sequence the next claim gets.
    pub fn next_seq(&self) -> u64 {
        self.core.next_seq()
    }

    /// Counters.
    pub fn counters(&self) -> ProducerCounters {
        self.core.counters()
    }

    /// Consumers currently tracked (heard from within the staleness window).
    pub fn consumer_count(&self) -> usize {
        self.core.consumer_count()
    }

    /// What each tracked consumer's last `ConsumerHello` asked for: (consumer id, mode,
    /// `max_rate_hz`).
    pub fn consumer_requests(
        &self,
    ) -> impl Iterator<Item = (u32, tensorpool_codec::wire::Mode, u32)> + '_ {
        self.core.consumer_requests()
    }

    /// Consumers currently holding a registered per-consumer descriptor stream.
    pub fn per_consumer_descriptor_streams(&self) -> usize {
        self.core.per_consumer_descriptor_streams()
    }

    /// Whether some consumer follows progress (so `Claim::progress` publishes).
    pub fn progress_active(&self) -> bool {
        self.core.progress_active()
    }

    /// Path of the header ring file (standalone) or mapping.
    pub fn header_ring_path(&self) -> Option<PathBuf> {
        self.core.header_ring_path()
    }

    /// Directory of the current epoch (standalone).
    pub fn epoch_dir(&self) -> Option<PathBuf> {
        self.core.epoch_dir()
    }

    /// Clean close: unmaps and, standalone, removes the epoch directory; in driver mode,
    /// detaches. Idempotent (also done on drop).
    pub fn close(&mut self) {
        if self.core.is_closed() {
            return;
        }
        self.core.close();
        if let Some(link) = self.driver.as_mut() {
            // Best-effort detach (Driver Model §4.9): one cycle sends the request.
            link.client.close();
            link.client
                .do_work(tensorpool_agent::monotonic_ns(), &mut |_| {});
        }
    }

    /// Whether the producer holds a lease from an SHM driver.
    pub fn is_driver_mode(&self) -> bool {
        self.core.is_driver_mode()
    }

    /// Whether the producer has regions to write into (false while paused in driver mode).
    pub fn is_active(&self) -> bool {
        self.core.is_active()
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.close();
    }
}

impl Agent for Producer {
    /// The duty cycle; [`WaitError::MediaDriverLost`] once the media driver is lost.
    fn do_work(&mut self, now_ns: u64) -> AgentResult {
        if self.media_driver_lost() {
            return Err(tensorpool_agent::AgentError::failed(
                WaitError::MediaDriverLost,
            ));
        }
        Ok(Producer::do_work(self, now_ns))
    }

    fn on_close(&mut self) {
        self.close();
    }

    fn role_name(&self) -> &str {
        "producer"
    }
}
