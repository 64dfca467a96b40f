//! The producer without Aeron: [`ProducerCore`] owns the regions, the consumers, the
//! metadata, the timers and the counters; it takes decoded-from-the-wire message bytes
//! ([`ProducerCore::on_control`], [`ProducerCore::on_qos`]), driver-client events
//! ([`ProducerCore::on_client_event`]) and a clock ([`ProducerCore::on_tick`]), and writes
//! every message it sends through [`Sinks`]. Per-consumer streams are opened through a
//! [`LinkOpener`] the agent provides. [`super::Producer`] is this core plus its Aeron
//! publications and subscriptions; tests and the `producer_core` fuzz target drive the core
//! alone, with [`RecordingSinks`] and [`RecordingLinks`] (no media driver).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tensorpool_aeron::PublishError;
use tensorpool_shm::AllowedBaseDirs;

use super::counters::ProducerCells;
use super::meta::Meta;
use super::regions::{Regions, Standalone};
use super::state::{Granted, Outbound};
use super::work::Timers;
use super::{BuildError, ProducerConfig, ProducerCounters, RegionMode};
use crate::control::{MessageSink, RecordingSink};
use crate::meta::MetaAttribute;

/// Where the producer's messages go, one sink per stream it publishes on.
pub struct Sinks<'a> {
    /// `ShmPoolAnnounce` (standalone mode).
    pub announce: &'a mut dyn MessageSink,
    /// `FrameDescriptor` on the shared descriptor stream.
    pub descriptor: &'a mut dyn MessageSink,
    /// `ConsumerConfig` answers and `FrameProgress` on the shared control stream.
    pub control: &'a mut dyn MessageSink,
    /// `QosProducer`.
    pub qos: &'a mut dyn MessageSink,
    /// `DataSourceAnnounce`, `DataSourceMeta` and meta blobs.
    pub metadata: &'a mut dyn MessageSink,
}

impl std::fmt::Debug for Sinks<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sinks").finish_non_exhaustive()
    }
}

/// A per-consumer stream (descriptor or control) a consumer asked for: registered by the
/// transport in the background, polled from the duty cycle (never waited on), then a sink.
pub trait ConsumerLink: Send + std::fmt::Debug {
    /// Polls a registration in flight (never blocks): `Ok(true)` once the stream is ready,
    /// `Ok(false)` while pending, `Err` (why) when the transport refused it or its deadline
    /// passed (the request is then declined).
    fn poll(&mut self) -> Result<bool, String>;

    /// The stream, once [`ConsumerLink::poll`] said it is ready.
    fn sink(&mut self) -> Option<&mut dyn MessageSink>;
}

/// Opens per-consumer streams (the agent: Aeron exclusive publications).
pub trait LinkOpener: Send + std::fmt::Debug {
    /// Starts registering a stream on `channel` / `stream_id` (never blocks); `Err` (why)
    /// declines the request at once.
    fn open(&mut self, channel: &str, stream_id: i32) -> Result<Box<dyn ConsumerLink>, String>;
}

/// Where the regions come from: our own files, or a driver lease (the driver client itself
/// is the agent's; its events reach the core through [`ProducerCore::on_client_event`]).
#[derive(Debug)]
pub(crate) enum RegionSource {
    Standalone(Standalone),
    Driver { allowed: AllowedBaseDirs },
}

/// A producer's logic and state, without subscriptions, publications or a driver client.
/// Single-threaded: claims, handlers and [`ProducerCore::on_tick`] run on the thread that
/// owns it.
#[derive(Debug)]
pub struct ProducerCore {
    pub(super) cfg: ProducerConfig,
    pub(super) source: RegionSource,
    /// The mapped regions (one mapping per file); a claim borrows them for its frame.
    pub(super) regions: Option<Regions>,
    /// Consumers, counters, next sequence: what a claim publishes through.
    pub(super) out: Outbound,
    pub(super) meta: Meta,
    pub(super) timers: Timers,
    /// Opens per-consumer streams.
    pub(super) links: Box<dyn LinkOpener>,
    /// When (ns) the last `ConsumerConfig` for our stream from another publication (a
    /// supervisor) was seen; while within the staleness window the producer is supervised.
    pub(super) supervisor_seen_ns: Option<u64>,
    /// Mints the frames' trace ids when `trace_ids` is on (TraceLink §6.3).
    pub(super) tracer: Option<crate::tracelink::TraceIdGenerator>,
    closed: bool,
}

impl ProducerCore {
    /// A standalone core for `cfg` (validated; `cfg.mode` must be standalone): creates the
    /// first epoch's files under `cfg.shm_base_dir` now, removes them on close or drop.
    /// Counters are plain integers (no Aeron counters).
    pub fn standalone(cfg: ProducerConfig, links: Box<dyn LinkOpener>) -> Result<Self, BuildError> {
        if !matches!(cfg.mode, RegionMode::Standalone) {
            return Err(BuildError::NotStandalone);
        }
        cfg.validate()?;
        let mut standalone = Standalone::new(&cfg)?;
        let regions = standalone.create(&cfg)?;
        let source = RegionSource::Standalone(standalone);
        let mut core = Self::from_parts(cfg, source, regions, ProducerCells::default(), links);
        core.arm_tracing(None)?;
        Ok(core)
    }

    /// Starts minting trace ids if `trace_ids` is on: with `trace_node_id`, else with
    /// `driver_node` (the node id of the driver's lease). Called at build and again on
    /// every new lease; an explicit node id never changes.
    pub(crate) fn arm_tracing(&mut self, driver_node: Option<u32>) -> Result<(), BuildError> {
        if !self.cfg.trace_ids || (self.tracer.is_some() && self.cfg.trace_node_id.is_some()) {
            return Ok(());
        }
        let Some(node) = self.cfg.trace_node_id.or(driver_node) else {
            return Err(BuildError::InvalidConfig {
                field: "trace_node_id",
                expected: "a node id: trace_ids is on and the SHM driver assigned none",
            });
        };
        if self
            .tracer
            .as_ref()
            .is_some_and(|t| t.node_id() == u64::from(node))
        {
            // same node: keep the generator, so its ids keep increasing
            return Ok(());
        }
        let tracer = crate::tracelink::TraceIdGenerator::new(u64::from(node)).map_err(|_| {
            BuildError::InvalidConfig {
                field: "trace_node_id",
                expected: "a node id that fits trace ids (0 to 1023); the driver's does not",
            }
        })?;
        self.tracer = Some(tracer);
        Ok(())
    }

    /// The node id trace ids are minted with, when tracing.
    pub fn trace_node_id(&self) -> Option<u64> {
        self.tracer.as_ref().map(|t| t.node_id())
    }

    pub(crate) fn from_parts(
        cfg: ProducerConfig,
        source: RegionSource,
        regions: Regions,
        counters: ProducerCells,
        links: Box<dyn LinkOpener>,
    ) -> Self {
        let mut core = Self {
            timers: Timers::new(&cfg),
            source,
            regions: None,
            out: Outbound::new(&cfg, counters),
            meta: Meta::default(),
            links,
            supervisor_seen_ns: None,
            tracer: None,
            closed: false,
            cfg,
        };
        core.install(regions);
        core.out.registry.replan(&core.cfg);
        core
    }

    /// Switches to freshly mapped regions: seq restarts at 0 (Wire Spec §15.2) and the
    /// announce goes out at the next cycle.
    pub(super) fn install(&mut self, regions: Regions) {
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
        let RegionSource::Standalone(s) = &mut self.source else {
            return Err(BuildError::NotStandalone);
        };
        let regions = s.create(&self.cfg)?;
        let epoch = regions.epoch;
        self.regions = None;
        self.install(regions);
        if let (Some(old), RegionSource::Standalone(s)) = (old, &mut self.source) {
            s.remove(old);
        }
        Ok(epoch)
    }

    /// Replaces the data-source attributes at `now_ns`: bumps `meta_version` (stamped on every
    /// later frame) and sends `DataSourceMeta` at the next cycle. Returns the new version.
    pub fn set_meta(
        &mut self,
        attrs: &[MetaAttribute],
        now_ns: u64,
    ) -> Result<u32, tensorpool_codec::EncodeError> {
        let v = self.meta.set(self.cfg.stream_id, attrs, now_ns)?;
        self.timers.meta.arm_at(0);
        self.timers.data_source.arm_at(0);
        Ok(v)
    }

    /// Forwards another stream's metadata (RateLimiter §6): the attributes with the source's
    /// `meta_version` preserved (stamped on later frames claimed without a
    /// [`super::FrameStamp`]), `DataSourceMeta.streamId` = `meta_stream_id`, and the
    /// `DataSourceAnnounce` name and summary replaced; both are sent at the next cycle.
    pub fn forward_meta(
        &mut self,
        meta_stream_id: u32,
        attrs: &[MetaAttribute],
        meta_version: u32,
        name: Option<&str>,
        now_ns: u64,
    ) -> Result<u32, tensorpool_codec::EncodeError> {
        let v = self
            .meta
            .set_version(meta_stream_id, attrs, meta_version, now_ns)?;
        if let Some(name) = name {
            name.clone_into(&mut self.cfg.name);
        }
        self.timers.meta.arm_at(0);
        self.timers.data_source.arm_at(0);
        Ok(v)
    }

    /// Queues a large metadata blob for the current `meta_version` (sent over the next
    /// cycles as announce, chunks and complete, with a CRC32C checksum).
    pub fn publish_meta_blob(&mut self, blob_type: u32, data: Vec<u8>) {
        self.meta.queue_blob(blob_type, data);
    }

    /// The configuration.
    pub fn config(&self) -> &ProducerConfig {
        &self.cfg
    }

    /// Current epoch (`None` once closed, or while paused).
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

    /// Whether a supervisor is present at `now_ns`: a `ConsumerConfig` for our stream from
    /// another publication was seen within `consumer_stale_factor` hello intervals. While
    /// supervised the producer answers no hello and opens the per-consumer streams the
    /// supervisor assigns (docs/roles.md, "Producer under a supervisor").
    pub fn is_supervised(&self, now_ns: u64) -> bool {
        self.supervisor_seen_ns
            .is_some_and(|t| now_ns.saturating_sub(t) <= self.supervisor_window_ns())
    }

    pub(super) fn supervisor_window_ns(&self) -> u64 {
        let interval =
            u64::try_from(self.cfg.consumer_hello_interval.as_nanos()).unwrap_or(u64::MAX);
        interval.saturating_mul(u64::from(self.cfg.consumer_stale_factor))
    }

    /// Consumers currently tracked (heard from within the staleness window).
    pub fn consumer_count(&self) -> usize {
        self.out.registry.entries.len()
    }

    /// What each tracked consumer's last `ConsumerHello` asked for: (consumer id, mode,
    /// `max_rate_hz`).
    pub fn consumer_requests(
        &self,
    ) -> impl Iterator<Item = (u32, tensorpool_codec::wire::Mode, u32)> + '_ {
        self.out
            .registry
            .entries
            .iter()
            .map(|e| (e.consumer_id, e.mode, e.max_rate_hz))
    }

    /// Consumers currently holding a registered per-consumer descriptor stream.
    pub fn per_consumer_descriptor_streams(&self) -> usize {
        self.out
            .registry
            .entries
            .iter()
            .filter(|e| e.descriptor.as_ref().is_some_and(Granted::is_ready))
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
            RegionSource::Standalone(s) => Some(s.epoch_dir(epoch)),
            RegionSource::Driver { .. } => None,
        }
    }

    /// Whether the regions come from an SHM driver's lease.
    pub fn is_driver_mode(&self) -> bool {
        matches!(self.source, RegionSource::Driver { .. })
    }

    /// Whether the core has regions to write into (false while paused in driver mode).
    pub fn is_active(&self) -> bool {
        self.regions.is_some()
    }

    /// Whether [`ProducerCore::close`] ran.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Clean close: unmaps and, standalone, removes the epoch directory. Idempotent (also
    /// done on drop). The driver lease, if any, is the agent's to release.
    pub fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        let epoch = self.regions.take().map(|r| r.epoch);
        if let (Some(epoch), RegionSource::Standalone(s)) = (epoch, &mut self.source) {
            s.remove(epoch);
        }
    }
}

impl Drop for ProducerCore {
    fn drop(&mut self) {
        self.close();
    }
}

/// One [`RecordingSink`] per producer stream (for tests and fuzzing). Clear them between
/// cycles and recording allocates nothing once the buffers exist.
#[derive(Debug, Default)]
pub struct RecordingSinks {
    /// `ShmPoolAnnounce`.
    pub announce: RecordingSink,
    /// Shared `FrameDescriptor` stream.
    pub descriptor: RecordingSink,
    /// `ConsumerConfig`, shared `FrameProgress`.
    pub control: RecordingSink,
    /// `QosProducer`.
    pub qos: RecordingSink,
    /// `DataSourceAnnounce`, `DataSourceMeta`, meta blobs.
    pub metadata: RecordingSink,
}

impl RecordingSinks {
    /// Every sink with room for `messages` messages of up to `bytes` bytes.
    pub fn with_capacity(messages: usize, bytes: usize) -> Self {
        let s = || RecordingSink::with_capacity(messages, bytes);
        Self {
            announce: s(),
            descriptor: s(),
            control: s(),
            qos: s(),
            metadata: s(),
        }
    }

    /// The sinks, to hand to the core.
    pub fn sinks(&mut self) -> Sinks<'_> {
        Sinks {
            announce: &mut self.announce,
            descriptor: &mut self.descriptor,
            control: &mut self.control,
            qos: &mut self.qos,
            metadata: &mut self.metadata,
        }
    }

    /// Forgets every message recorded (buffers kept).
    pub fn clear(&mut self) {
        for s in [
            &mut self.announce,
            &mut self.descriptor,
            &mut self.control,
            &mut self.qos,
            &mut self.metadata,
        ] {
            s.clear();
        }
    }
}

/// One per-consumer stream a [`RecordingLinks`] opened.
#[derive(Debug, Clone)]
pub struct OpenedLink {
    /// The channel asked for.
    pub channel: String,
    /// The stream id asked for.
    pub stream_id: i32,
    /// What the core published on it.
    pub sink: Arc<Mutex<RecordingSink>>,
}

/// A [`LinkOpener`] over [`RecordingSink`]s (for tests and fuzzing): every stream opens
/// (unless [`RecordingLinks::refusing`]), becomes ready after
/// [`RecordingLinks::ready_after`] polls (or fails at that poll when
/// [`RecordingLinks::failing_registrations`]), and records what the core publishes on it.
/// Clones share the list of opened streams.
#[derive(Debug, Clone, Default)]
pub struct RecordingLinks {
    refuse: bool,
    polls_until_ready: u32,
    fail_pending: bool,
    fail_with: Option<PublishError>,
    opened: Arc<Mutex<Vec<OpenedLink>>>,
}

impl RecordingLinks {
    /// Every request is declined at once.
    pub fn refusing(mut self, refuse: bool) -> Self {
        self.refuse = refuse;
        self
    }

    /// A stream is ready at the poll after `polls` pending ones (0: at the first poll).
    pub fn ready_after(mut self, polls: u32) -> Self {
        self.polls_until_ready = polls;
        self
    }

    /// Registrations fail (at the poll they would have completed) instead of completing.
    pub fn failing_registrations(mut self, fail: bool) -> Self {
        self.fail_pending = fail;
        self
    }

    /// Every publish on an opened stream fails with `error`.
    pub fn failing_publishes(mut self, error: Option<PublishError>) -> Self {
        self.fail_with = error;
        self
    }

    /// The streams opened so far (shared with every clone).
    pub fn opened(&self) -> Vec<OpenedLink> {
        self.opened.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl LinkOpener for RecordingLinks {
    fn open(&mut self, channel: &str, stream_id: i32) -> Result<Box<dyn ConsumerLink>, String> {
        if self.refuse {
            return Err("refused by the recording transport".into());
        }
        let mut sink = RecordingSink::default();
        sink.fail_with = self.fail_with;
        let sink = Arc::new(Mutex::new(sink));
        if let Ok(mut v) = self.opened.lock() {
            v.push(OpenedLink {
                channel: channel.to_owned(),
                stream_id,
                sink: sink.clone(),
            });
        }
        Ok(Box::new(RecordingLink {
            polls_left: self.polls_until_ready,
            fail: self.fail_pending,
            sink: LockedSink(sink),
        }))
    }
}

/// A stream of [`RecordingLinks`].
struct RecordingLink {
    polls_left: u32,
    fail: bool,
    sink: LockedSink,
}

impl std::fmt::Debug for RecordingLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingLink")
            .field("polls_left", &self.polls_left)
            .finish_non_exhaustive()
    }
}

/// Publishes into the shared sink, locking it per message.
struct LockedSink(Arc<Mutex<RecordingSink>>);

impl MessageSink for LockedSink {
    fn publish(
        &mut self,
        len: usize,
        fill: &mut dyn FnMut(&mut [u8]) -> Result<(), tensorpool_codec::EncodeError>,
    ) -> Result<(), crate::control::SendError> {
        match self.0.lock() {
            Ok(mut s) => s.publish(len, fill),
            Err(_) => Err(crate::control::SendError::Publish(PublishError::Closed)),
        }
    }

    fn is_connected(&self) -> bool {
        self.0.lock().is_ok_and(|s| s.is_connected())
    }
}

impl ConsumerLink for RecordingLink {
    fn poll(&mut self) -> Result<bool, String> {
        if self.polls_left > 0 {
            self.polls_left -= 1;
            return Ok(false);
        }
        match self.fail {
            true => Err("registration failed (recording transport)".into()),
            false => Ok(true),
        }
    }

    fn sink(&mut self) -> Option<&mut dyn MessageSink> {
        Some(&mut self.sink)
    }
}
