//! [`ConsumerCore`]: the consumer's logic without Aeron. Entry points take the bytes of one
//! received message (gated on schema, version and template, then decoded) and the time;
//! [`ConsumerCore::poll_timers`] does the periodic work (hello, QoS, liveness) and writes its
//! messages into [`Sinks`]. The decoded handlers are in `handlers.rs`, the outbound
//! messages in `proxy.rs`, the state types in `state.rs`.

use tensorpool_agent::DeadlineTimer;
use tensorpool_codec::Message;
use tensorpool_codec::wire::{
    ConsumerConfig as ConfigMsg, DataSourceAnnounce, DataSourceMeta, FrameDescriptor,
    FrameProgress, MetaBlobAnnounce, MetaBlobChunk, MetaBlobComplete, ShmPoolAnnounce,
};
use tensorpool_shm::{AllowedBaseDirs, DropReason};

use super::config::ConsumerConfig;
use super::counters::{ConsumerCells, DropCause, DropCells, LatencyWindow};
use super::mapping::Mapped;
use super::meta::{BlobEvent, MetaStore};
use super::progress::Tracker;
use super::proxy;
use super::state::{Assignment, Backoffs, ConsumerState, Fallback, Rejection, SeqTracker};
use super::{BuildError, ConsumerCounters, Drops, FrameHandler};
use crate::control::{MessageSink, tid, wire_template};

/// Where [`ConsumerCore::poll_timers`] writes: the control stream (`ConsumerHello`) and the
/// QoS stream (`QosConsumer`).
pub struct Sinks<'a> {
    /// The control stream.
    pub control: &'a mut dyn MessageSink,
    /// The QoS stream.
    pub qos: &'a mut dyn MessageSink,
}

impl std::fmt::Debug for Sinks<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sinks").finish_non_exhaustive()
    }
}

/// The consumer's logic without transport: every handler and all the state, a clock passed in,
/// outbound messages written to sinks. [`super::Consumer`]'s duty cycle drives it from its
/// Aeron subscriptions (`work.rs`); tests and the `consumer_core` fuzz target drive it with
/// bytes and a clock of their own. The files it maps are whatever the announces name.
#[derive(Debug)]
pub struct ConsumerCore {
    pub(crate) cfg: ConsumerConfig,
    pub(crate) allowed: AllowedBaseDirs,
    pub(crate) mapped: Option<Mapped>,
    pub(crate) fallback: Option<Fallback>,
    /// The served fallback's receiver (`fallback.rs`).
    pub(crate) fallback_rx: Option<super::fallback::FallbackRx>,
    /// The fallback source changed: the agent (re)subscribes (or unsubscribes).
    pub(crate) fallback_changed: bool,
    /// After a stale or changed mapping: only a newer epoch is mapped.
    pub(crate) dead_epoch: u64,
    /// Highest epoch announced (with its local receipt time).
    pub(crate) highest: Option<(u64, u64)>,
    /// Failed epochs are not retried before their time.
    pub(crate) backoff: Backoffs,
    pub(crate) last_error: Option<String>,
    pub(crate) last_rejection: Option<Rejection>,
    /// The epoch whose rejection was last logged at `warn` (later ones of it: `debug`).
    logged_epoch: Option<u64>,
    pub(crate) join_time_ns: u64,
    /// The sequence state of the current epoch (moved only by frames the slot proved).
    pub(crate) seqs: SeqTracker,
    pub(crate) last_gate_ts: Option<u64>,
    /// A frame was lost to an overwrite (`late`, `overwritten`) and no frame has been read
    /// with headroom since: `consumer.catch_up` skips frames until one has.
    pub(crate) lapped: bool,
    pub(crate) effective_mode: tensorpool_codec::wire::Mode,
    pub(crate) per_consumer_descriptor: bool,
    pub(crate) assignment: Assignment,
    pub(crate) assignment_changed: bool,
    pub(crate) tracker: Tracker,
    pub(crate) counters: ConsumerCells,
    pub(crate) drops: DropCells,
    /// Delivery latencies since the last QoS report.
    pub(crate) latency: LatencyWindow,
    pub(crate) meta: MetaStore,
    hello_timer: DeadlineTimer,
    qos_timer: DeadlineTimer,
    liveness_timer: DeadlineTimer,
}

impl ConsumerCore {
    pub(crate) fn with_parts(
        cfg: ConsumerConfig,
        allowed: AllowedBaseDirs,
        counters: ConsumerCells,
        drops: DropCells,
        now_ns: u64,
    ) -> Self {
        let ns = |d: std::time::Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Self {
            hello_timer: DeadlineTimer::periodic_immediate(ns(cfg.hello_interval)),
            qos_timer: DeadlineTimer::periodic(ns(cfg.qos_interval), now_ns),
            liveness_timer: DeadlineTimer::periodic_immediate(
                (ns(cfg.activity_timeout) / 4).max(10_000_000),
            ),
            effective_mode: cfg.mode.wire(),
            cfg,
            allowed,
            mapped: None,
            fallback: None,
            fallback_rx: None,
            fallback_changed: false,
            dead_epoch: 0,
            highest: None,
            backoff: Backoffs::default(),
            last_error: None,
            last_rejection: None,
            logged_epoch: None,
            join_time_ns: 0,
            seqs: SeqTracker::default(),
            last_gate_ts: None,
            lapped: false,
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

    /// Committed frame `seq` read from its slot under the seqlock (the slot must hold
    /// exactly `seq`), carrying `info` (whose epoch must be the mapped one) or, without it,
    /// the mapping's stream and epoch and no descriptor fields. Counts nothing: the on-demand
    /// read behind [`super::Consumer::read_frame`] and [`super::Consumer::reread`].
    pub(crate) fn frame_at(
        &self,
        seq: u64,
        info: Option<crate::frame::DescriptorInfo>,
    ) -> Result<crate::frame::Frame<'_>, DropCause> {
        let m = self.mapped.as_ref().ok_or(DropCause::Unmapped)?;
        if info.is_some_and(|i| i.epoch != m.epoch) {
            return Err(DropCause::EpochMismatch);
        }
        let view = m.ring.read_frame(&m.pools, seq).map_err(DropCause::Slot)?;
        let info = info.unwrap_or(crate::frame::DescriptorInfo {
            stream_id: self.cfg.stream_id,
            epoch: m.epoch,
            publish_timestamp_ns: None,
            trace_id: None,
        });
        Ok(crate::frame::Frame::new(view, info))
    }

    /// Mapping state (Wire Spec §15.12).
    pub fn state(&self) -> ConsumerState {
        match (&self.mapped, &self.fallback) {
            (_, Some(f)) if f.ordered => ConsumerState::Fallback,
            (Some(m), _) => ConsumerState::Mapped { epoch: m.epoch },
            (None, Some(_)) => ConsumerState::Fallback,
            (None, None) => ConsumerState::Unmapped,
        }
    }

    /// Hard boundary (§15.21): drop the mapping and every per-epoch tracking state.
    pub(crate) fn unmap(&mut self) {
        self.mapped = None;
        self.counters.epoch.set(0);
        self.seqs = SeqTracker::default();
        self.last_gate_ts = None;
        self.lapped = false;
        self.tracker.reset();
    }

    /// Records a rejection: `last_rejection`, `last_error`, and a log line, at `warn` once
    /// per epoch (a backing-off or forged epoch repeats; the log does not).
    pub(crate) fn reject(&mut self, epoch: u64, what: &'static str, reason: String) {
        let stream = self.cfg.stream_id;
        if self.logged_epoch != Some(epoch) {
            self.logged_epoch = Some(epoch);
            tracing::warn!(stream, epoch, reason = %reason, "consumer {what}");
        } else {
            tracing::debug!(stream, epoch, reason = %reason, "consumer {what} (again)");
        }
        self.last_error = Some(format!("stream {stream} epoch {epoch}: {reason}"));
        self.last_rejection = Some(Rejection {
            reason,
            epoch,
            at_unix_ns: tensorpool_agent::realtime_ns(),
        });
    }

    /// Takes freshly mapped regions (M1).
    pub(crate) fn install(&mut self, m: Mapped) {
        self.seqs = SeqTracker::default();
        self.last_gate_ts = None;
        self.lapped = false;
        self.tracker.reset();
        self.counters.epoch.set(m.epoch);
        self.mapped = Some(m);
        self.counters.maps += 1;
    }

    /// Publishes the latency quantiles of the interval that ends and starts a new one.
    pub(crate) fn roll_latency(&mut self) {
        let (p50, p99) = (self.latency.quantile(0.5), self.latency.quantile(0.99));
        self.counters.latency_p50_ns.set(p50.unwrap_or(0));
        self.counters.latency_p99_ns.set(p99.unwrap_or(0));
        self.latency.clear();
    }
}

/// The entry points: one per stream the consumer reads, and the timers.
impl ConsumerCore {
    /// A core for `cfg` (its allowed base dirs canonicalized now; no Aeron counters; the
    /// QoS timer starts at clock 0).
    pub fn new(cfg: ConsumerConfig) -> Result<Self, BuildError> {
        let allowed = AllowedBaseDirs::new(&cfg.allowed_base_dirs)?;
        Ok(Self::with_parts(
            cfg,
            allowed,
            Default::default(),
            Default::default(),
            0,
        ))
    }

    /// One message of the announce stream (`ShmPoolAnnounce`; anything else is ignored).
    /// `join_time_ns` is the join time of the subscription it came from (MONOTONIC
    /// announces stamped before it are ignored).
    pub fn on_announce(&mut self, msg: &[u8], now_ns: u64, join_time_ns: u64) {
        self.join_time_ns = join_time_ns;
        if wire_template(msg) == Some(tid::ANNOUNCE)
            && let Ok(ann) = ShmPoolAnnounce::decode(msg)
        {
            self.on_pool_announce(&ann, now_ns);
        }
    }

    /// One message of the descriptor stream: the frame path (drop rules, slot read, the
    /// handler, the recheck: `handlers.rs`, `on_frame_descriptor`). Returns 1 if a frame
    /// reached the handler and was accepted.
    pub fn on_descriptor<H: FrameHandler + ?Sized>(
        &mut self,
        msg: &[u8],
        now_ns: u64,
        handler: &mut H,
    ) -> usize {
        if wire_template(msg) != Some(tid::DESCRIPTOR) {
            return 0;
        }
        let Ok(fd) = FrameDescriptor::decode(msg) else {
            return 0;
        };
        if fd.stream_id != self.cfg.stream_id {
            return 0;
        }
        self.counters.descriptors += 1;
        match self.on_frame_descriptor(&fd, now_ns, handler) {
            Ok(()) => 1,
            Err(cause) => {
                self.drops.add(cause);
                if cause == DropCause::Slot(DropReason::RegionDead) {
                    // A file was truncated under us: unmap now, wait for a new epoch.
                    self.check_liveness(now_ns);
                }
                0
            }
        }
    }

    /// One message of a control stream: `ConsumerConfig` and `FrameProgress`.
    pub fn on_control<H: FrameHandler + ?Sized>(&mut self, msg: &[u8], handler: &mut H) {
        match wire_template(msg) {
            Some(tid::CONFIG) => {
                if let Ok(cc) = ConfigMsg::decode(msg) {
                    self.on_consumer_config(&cc);
                }
            }
            Some(tid::PROGRESS) => {
                if let Ok(fp) = FrameProgress::decode(msg) {
                    self.on_frame_progress(&fp, handler);
                }
            }
            _ => {}
        }
    }

    /// One message of the metadata stream (`DataSourceAnnounce`, `DataSourceMeta`, meta blob
    /// announce / chunk / complete).
    pub fn on_metadata(&mut self, msg: &[u8]) {
        let stream = self.cfg.stream_id;
        let max = self.cfg.max_meta_blob_bytes;
        let event = match wire_template(msg) {
            Some(tid::DS_ANNOUNCE) => {
                if let Ok(a) = DataSourceAnnounce::decode(msg)
                    && a.stream_id == stream
                {
                    self.meta.on_announce(&a);
                }
                BlobEvent::None
            }
            Some(tid::DS_META) => {
                if let Ok(m) = DataSourceMeta::decode(msg)
                    && m.stream_id == stream
                    && self.meta.on_meta(&m)
                {
                    self.counters.meta_updates += 1;
                }
                BlobEvent::None
            }
            Some(tid::BLOB_ANNOUNCE) => match MetaBlobAnnounce::decode(msg) {
                Ok(a) if a.stream_id == stream => self.meta.on_blob_announce(&a, max),
                _ => BlobEvent::None,
            },
            Some(tid::BLOB_CHUNK) => match MetaBlobChunk::decode(msg) {
                Ok(c) if c.stream_id == stream => self.meta.on_blob_chunk(&c),
                _ => BlobEvent::None,
            },
            Some(tid::BLOB_COMPLETE) => match MetaBlobComplete::decode(msg) {
                Ok(c) if c.stream_id == stream => self.meta.on_blob_complete(&c),
                _ => BlobEvent::None,
            },
            _ => BlobEvent::None,
        };
        match event {
            BlobEvent::None => {}
            BlobEvent::Completed => self.counters.blobs_completed += 1,
            BlobEvent::Discarded => self.counters.blobs_discarded += 1,
        }
    }

    /// The timers due at `now_ns`: `ConsumerHello` (every `hello_interval`, the first at
    /// once), `QosConsumer` (every `qos_interval`, then a new latency interval), the
    /// liveness check of the mapping. Returns the work done.
    pub fn poll_timers(&mut self, now_ns: u64, out: &mut Sinks<'_>) -> usize {
        let mut work = 0;
        if self.hello_timer.poll(now_ns) {
            if proxy::send_hello(out.control, self).is_ok() {
                self.counters.hellos_sent += 1;
            }
            work += 1;
        }
        if self.qos_timer.poll(now_ns) {
            if proxy::send_qos(out.qos, self).is_ok() {
                self.counters.qos_sent += 1;
            }
            self.roll_latency();
            work += 1;
        }
        if self.liveness_timer.poll(now_ns) {
            self.check_liveness(now_ns);
        }
        self.expire_fallback(now_ns);
        work
    }

    /// Counters.
    pub fn counters(&self) -> ConsumerCounters {
        self.counters.snapshot()
    }

    /// Drops per cause and gaps.
    pub fn drops(&self) -> Drops {
        self.drops.snapshot()
    }

    /// Last sequence a slot proved in the current epoch.
    pub fn last_seq(&self) -> Option<u64> {
        self.seqs.last
    }

    /// Times a mapping was dropped without a newer epoch replacing it (activity stale,
    /// superblock changed, region dead, producer or lease revoked, driver gone): a count
    /// that moves even when the mapping comes back before the caller looks at
    /// [`Self::state`] again.
    pub fn outages(&self) -> u64 {
        let c = &self.counters;
        c.unmaps_stale.get()
            + c.unmaps_superblock.get()
            + c.unmaps_dead.get()
            + c.unmaps_revoked.get()
    }

    /// The last rejection.
    pub fn last_rejection(&self) -> Option<&Rejection> {
        self.last_rejection.as_ref()
    }

    /// The fallback, when in FALLBACK.
    pub fn fallback(&self) -> Option<&Fallback> {
        self.fallback.as_ref()
    }
}
