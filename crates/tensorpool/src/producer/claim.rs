//! The frame's path, in one place: [`ProducerCore::claim`] begins the frame
//! ([`HeaderRing::begin_frame`]: slot marked in progress, the whole header written once, the
//! payload slot handed out in place) -> the payload is written through
//! [`Claim::payload_mut`] (and reported with [`Claim::progress`]) -> [`Claim::commit`]: the
//! seqlock commit alone ([`FrameWriter::commit`]; the header is not written again), then
//! [`Claim::publish_descriptor`] (shared stream, per-consumer streams, stall accounting), then
//! `FrameProgress` COMPLETE. Dropping a `Claim` without committing aborts it: the slot stays
//! in progress (consumers drop it), no descriptor is sent, and the next claim works as usual.
//! [`super::Producer::claim`] is this with the agent's publications as sinks.
//!
//! [`HeaderRing::begin_frame`]: tensorpool_shm::HeaderRing::begin_frame

use tensorpool_codec::wire::FrameProgressState;
use tensorpool_shm::{DropReason, FrameMeta, FrameWriter, WriteError};

use super::core::{ProducerCore, Sinks};
use super::counters::ProducerCells;
use super::proxy;
use super::state::Outbound;
use crate::control::{MessageSink, SendError};
use crate::frame::TensorSpec;

/// Why a slot could not be claimed. Nothing in shared memory was touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// The producer has no regions (closed, or paused while its lease is re-established).
    #[error("the producer has no mapped regions (closed or paused)")]
    NoRegions,
    /// No pool's stride holds the payload: the frame is dropped and counted (Wire Spec §9).
    #[error("no payload pool holds {len} bytes (largest stride {largest_stride})")]
    NoPoolFits {
        /// Payload length asked for.
        len: usize,
        /// Largest stride configured.
        largest_stride: u32,
    },
    /// The tensor does not fit the payload length, or its header is invalid.
    #[error("tensor header rejected: {0}")]
    InvalidSpec(DropReason),
    /// The 63-bit sequence space is exhausted (start a new epoch).
    #[error("sequence space exhausted")]
    SeqExhausted,
    /// [`FrameStamp::seq`] is below the producer's next sequence: sequences only grow
    /// within an epoch.
    #[error("sequence {seq} is behind the next sequence {next}")]
    SeqBehind {
        /// The sequence asked for.
        seq: u64,
        /// The producer's next sequence.
        next: u64,
    },
    /// The shared-memory write path refused the slot for another reason (pools that do
    /// not belong to the ring, a header the codec cannot encode).
    #[error("slot write refused: {0}")]
    Slot(WriteError),
    /// The Aeron client lost its media driver: no descriptor could reach a consumer.
    #[error("the Aeron media driver is lost (no heartbeat within the driver timeout)")]
    MediaDriverLost,
}

impl ClaimError {
    fn of_write(e: WriteError, len: usize) -> Self {
        match e {
            WriteError::NoPoolFits { largest_stride, .. } => Self::NoPoolFits {
                len,
                largest_stride,
            },
            WriteError::InvalidHeader(d) => Self::InvalidSpec(d),
            WriteError::SeqOutOfRange(_) => Self::SeqExhausted,
            other => Self::Slot(other),
        }
    }
}

/// What a re-publishing producer (a rate limiter, a bridge receiver) keeps from the frame it
/// copies: its sequence (gaps allowed, never backwards), its capture timestamp and its
/// `meta_version` (RateLimiter §4, §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameStamp {
    /// Logical sequence of the frame (at least [`super::Producer::next_seq`]).
    pub seq: u64,
    /// `SlotHeader.timestamp_ns` to write.
    pub timestamp_ns: u64,
    /// `SlotHeader.meta_version` / `FrameDescriptor.metaVersion` to write.
    pub meta_version: u32,
}

/// Progress reporting state of one claim.
#[derive(Debug, Default)]
struct ProgressTrack {
    active: bool,
    last_ns: u64,
    last_bytes: u64,
    sent: bool,
}

/// A claimed slot being written. Write the payload with [`Claim::payload_mut`], optionally
/// report [`Claim::progress`], then [`Claim::commit`]. Dropping it aborts the frame.
#[must_use = "a claim is aborted unless committed"]
pub struct Claim<'p> {
    /// The frame in shared memory (`None` only once committed).
    writer: Option<FrameWriter<'p>>,
    /// Consumers, counters and the sequence of the producer.
    out: &'p mut Outbound,
    /// The shared descriptor stream.
    descriptor: &'p mut dyn MessageSink,
    /// The shared control stream (`FrameProgress`).
    control: &'p mut dyn MessageSink,
    stream_id: u32,
    epoch: u64,
    publish_timestamp: bool,
    timestamp_ns: u64,
    meta_version: u32,
    progress_stride: u64,
    progress: ProgressTrack,
    trace_id: Option<u64>,
}

impl ProducerCore {
    /// Claims the next slot for a tensor of `spec` (payload length `spec.len_bytes()`); the
    /// claim publishes through `sinks`.
    pub fn claim<'p>(
        &'p mut self,
        spec: &TensorSpec,
        sinks: Sinks<'p>,
    ) -> Result<Claim<'p>, ClaimError> {
        self.claim_len(spec, spec.len_bytes(), sinks)
    }

    /// Claims the next slot with an explicit payload length (at least the tensor's extent).
    pub fn claim_len<'p>(
        &'p mut self,
        spec: &TensorSpec,
        len: usize,
        sinks: Sinks<'p>,
    ) -> Result<Claim<'p>, ClaimError> {
        self.claim_with(spec, len, None, sinks)
    }

    /// Claims a slot for a frame copied from another stream: its sequence, timestamp and
    /// `meta_version` come from `stamp` (the sequence may skip ahead, never go back).
    pub fn claim_stamped<'p>(
        &'p mut self,
        spec: &TensorSpec,
        len: usize,
        stamp: FrameStamp,
        sinks: Sinks<'p>,
    ) -> Result<Claim<'p>, ClaimError> {
        self.claim_with(spec, len, Some(stamp), sinks)
    }

    fn claim_with<'p>(
        &'p mut self,
        spec: &TensorSpec,
        len: usize,
        stamp: Option<FrameStamp>,
        sinks: Sinks<'p>,
    ) -> Result<Claim<'p>, ClaimError> {
        let Self {
            regions,
            out,
            cfg,
            meta,
            tracer,
            ..
        } = self;
        let Some(r) = regions.as_mut() else {
            return Err(ClaimError::NoRegions);
        };
        let now = tensorpool_agent::monotonic_ns();
        let (seq, timestamp_ns, meta_version) = match stamp {
            None => (out.next_seq, now, meta.version),
            Some(s) if s.seq < out.next_seq => {
                return Err(ClaimError::SeqBehind {
                    seq: s.seq,
                    next: out.next_seq,
                });
            }
            Some(s) => (s.seq, s.timestamp_ns, s.meta_version),
        };
        let frame = FrameMeta {
            tensor: spec.header().clone(),
            timestamp_ns,
            meta_version,
        };
        let largest_stride = || r.pools.geometry().iter().map(|g| g.stride_bytes).max();
        let Ok(len32) = u32::try_from(len) else {
            out.counters.drops_no_pool += 1;
            return Err(ClaimError::NoPoolFits {
                len,
                largest_stride: largest_stride().unwrap_or(0),
            });
        };
        let epoch = r.epoch;
        let writer = match r.ring.begin_frame(&mut r.pools, seq, &frame, len32) {
            Ok(w) => w,
            Err(e) => {
                if matches!(e, WriteError::NoPoolFits { .. }) {
                    out.counters.drops_no_pool += 1;
                }
                return Err(ClaimError::of_write(e, len));
            }
        };
        let plan = out.registry.plan;
        let mut claim = Claim {
            writer: Some(writer),
            out,
            descriptor: sinks.descriptor,
            control: sinks.control,
            stream_id: cfg.stream_id,
            epoch,
            publish_timestamp: cfg.publish_timestamp,
            timestamp_ns,
            meta_version: frame.meta_version,
            progress_stride: u64::from(frame.tensor.progress_stride_bytes),
            progress: ProgressTrack {
                active: plan.active,
                last_ns: now,
                ..ProgressTrack::default()
            },
            // a root frame mints its trace id (TraceLink §6.3); a 1→1 stage replaces it
            // with the upstream id through `set_trace_id`
            trace_id: tracer.as_mut().map(|t| t.next_id()),
        };
        claim.send_progress(0, FrameProgressState::Started);
        Ok(claim)
    }

    /// Copies `payload` into the next slot and commits it: claim + copy + commit.
    pub fn offer<'p>(
        &'p mut self,
        spec: &TensorSpec,
        payload: &[u8],
        sinks: Sinks<'p>,
    ) -> Result<u64, ClaimError> {
        let mut claim = self.claim_len(spec, payload.len(), sinks)?;
        claim.payload_mut().copy_from_slice(payload);
        Ok(claim.commit())
    }
}

impl std::fmt::Debug for Claim<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claim")
            .field("seq", &self.seq())
            .field("epoch", &self.epoch)
            .field("len", &self.len())
            .field("progress", &self.progress)
            .finish_non_exhaustive()
    }
}

impl Claim<'_> {
    /// Logical sequence of the frame being written.
    pub fn seq(&self) -> u64 {
        self.writer.as_ref().map_or(0, FrameWriter::seq)
    }

    /// Header index (= payload slot) of the frame.
    pub fn header_index(&self) -> u32 {
        self.writer.as_ref().map_or(0, |w| w.target().header_index)
    }

    /// Payload length reserved.
    pub fn len(&self) -> usize {
        self.writer.as_ref().map_or(0, FrameWriter::len)
    }

    /// Whether the payload is empty (`values_len_bytes = 0` is a valid frame).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Overrides the capture timestamp (`SlotHeader.timestamp_ns`; default: claim time,
    /// `CLOCK_MONOTONIC`).
    pub fn set_timestamp_ns(&mut self, ts: u64) {
        self.timestamp_ns = ts;
        if let Some(w) = self.writer.as_mut() {
            w.set_timestamp_ns(ts);
        }
    }

    /// Sets the TraceLink id the frame's `FrameDescriptor` carries (`None` or 0: none). A
    /// bridge receiver copies its chunks' `traceId` (Bridge Spec §7).
    pub fn set_trace_id(&mut self, trace_id: Option<u64>) {
        self.trace_id = trace_id.filter(|&t| t != 0);
    }

    /// The trace id the frame will carry: minted at claim when the producer traces
    /// (`trace_ids`), else `None` until [`Claim::set_trace_id`].
    pub fn trace_id(&self) -> Option<u64> {
        self.trace_id
    }

    /// The payload slot in shared memory, exactly [`Claim::len`] bytes. Write every byte
    /// the tensor uses: the slot holds whatever an earlier frame left there.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        match self.writer.as_mut() {
            Some(w) => w.payload_mut(),
            None => &mut [],
        }
    }

    /// Reports that the first `bytes_filled` payload bytes are written. Sends `PROGRESS`
    /// only when some consumer asked for progress and the aggregated throttle allows
    /// (interval, byte delta, row delta); returns whether a message went out.
    pub fn progress(&mut self, bytes_filled: usize) -> bool {
        if !self.progress.active {
            return false;
        }
        let filled = (bytes_filled as u64).min(self.len() as u64);
        if filled <= self.progress.last_bytes {
            return false;
        }
        let plan = self.out.registry.plan;
        let now = tensorpool_agent::monotonic_ns();
        let delta = filled - self.progress.last_bytes;
        let stride = self.progress_stride;
        let rows_ok =
            plan.major_delta_units == 0 || stride == 0 || delta / stride >= plan.major_delta_units;
        if now.saturating_sub(self.progress.last_ns) < plan.interval_ns
            || delta < plan.bytes_delta
            || !rows_ok
        {
            return false;
        }
        self.progress.last_ns = now;
        self.send_progress(filled, FrameProgressState::Progress)
    }

    fn send_progress(&mut self, filled: u64, state: FrameProgressState) -> bool {
        if !self.progress.active {
            return false;
        }
        self.progress.last_bytes = self.progress.last_bytes.max(filled);
        self.progress.sent = true;
        let seq = self.seq();
        self.publish_progress(seq, filled, state)
    }

    /// Commits: the seqlock commit alone through the shared-memory write path (the header
    /// was written whole at the claim, its timestamp word in place since; commit does not
    /// write it again), then the `FrameDescriptor` (shared stream and per-consumer streams),
    /// then `FrameProgress` COMPLETE if anyone follows progress. Returns the sequence.
    /// Cannot fail: the frame is committed whatever the transport does with the descriptor
    /// (refusals are counted).
    pub fn commit(mut self) -> u64 {
        let Some(writer) = self.writer.take() else {
            return 0;
        };
        let (seq, len) = (writer.seq(), writer.len() as u64);
        writer.commit();
        self.out.next_seq = seq + 1;
        self.out.counters.committed += 1;
        self.out.counters.bytes += len;
        let publish_ts = self.publish_timestamp.then(tensorpool_agent::monotonic_ns);
        let d = proxy::Descriptor {
            stream_id: self.stream_id,
            epoch: self.epoch,
            seq,
            publish_ts,
            meta_version: self.meta_version,
            trace_id: self.trace_id,
        };
        self.publish_descriptor(&d, self.timestamp_ns);
        self.send_progress(len, FrameProgressState::Complete);
        seq
    }

    /// Aborts explicitly (same as dropping the claim).
    pub fn abort(self) {}
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        // Not committing the writer leaves the slot in progress (consumers drop it).
        let Some(seq) = self.writer.take().map(|w| w.seq()) else {
            return; // committed
        };
        self.out.counters.aborted += 1;
        // A sequence consumers heard of (progress) is never reused; otherwise it is.
        if self.progress.sent {
            self.out.next_seq = seq + 1;
        }
    }
}

impl Claim<'_> {
    /// Publishes the descriptor of a committed frame on the shared stream and on every
    /// per-consumer descriptor stream (rate-capped per consumer by capture time); never
    /// waits.
    fn publish_descriptor(&mut self, d: &proxy::Descriptor, capture_ns: u64) {
        let out = &mut *self.out;
        match proxy::send_descriptor(&mut *self.descriptor, d) {
            Ok(()) => {
                out.counters.descriptors_sent += 1;
                out.stalled_since = None;
                out.stall_reported = false;
            }
            Err(e) => {
                if e.is_back_pressured() {
                    note_stall(out, capture_ns, d.stream_id);
                }
                count_refused(&mut out.counters, e)
            }
        }
        for e in &mut out.registry.entries {
            let interval = e.descriptor_interval_ns();
            let Some(sink) = e.descriptor.as_mut().and_then(|g| g.sink()) else {
                continue;
            };
            if interval > 0 && capture_ns.saturating_sub(e.last_descriptor_ns) < interval {
                out.counters.descriptors_rate_capped += 1;
                continue;
            }
            match proxy::send_descriptor(sink, d) {
                Ok(()) => {
                    e.last_descriptor_ns = capture_ns;
                    out.counters.descriptors_per_consumer += 1;
                }
                Err(err) => count_refused(&mut out.counters, err),
            }
        }
    }

    /// Publishes one `FrameProgress` where progress consumers listen.
    fn publish_progress(&mut self, seq: u64, filled: u64, state: FrameProgressState) -> bool {
        let (stream_id, epoch) = (self.stream_id, self.epoch);
        let out = &mut *self.out;
        let mut sent = false;
        if out.registry.plan.on_shared {
            sent |= proxy::send_progress(&mut *self.control, stream_id, epoch, seq, filled, state)
                .is_ok();
        }
        for e in out
            .registry
            .entries
            .iter_mut()
            .filter(|e| e.supports_progress)
        {
            if let Some(sink) = e.control.as_mut().and_then(|g| g.sink()) {
                sent |= proxy::send_progress(sink, stream_id, epoch, seq, filled, state).is_ok();
            }
        }
        if sent {
            out.counters.progress_sent += 1;
        }
        sent
    }
}

/// The shared descriptor stream refused a descriptor with back pressure at `now_ns`: once it
/// has refused every one for longer than the stall threshold, the stall is logged and
/// counted, once until a descriptor goes through again. Who holds the stream (a subscriber
/// that stopped reading) is in the media driver's counters: `tp stat` names it.
fn note_stall(out: &mut Outbound, now_ns: u64, stream_id: u32) {
    let since = *out.stalled_since.get_or_insert(now_ns);
    if !out.stall_reported && now_ns.saturating_sub(since) >= out.stall_threshold_ns {
        out.stall_reported = true;
        out.counters.descriptor_stalls += 1;
        tracing::warn!(
            stream_id,
            stalled_ms = now_ns.saturating_sub(since) / 1_000_000,
            "producer: the shared descriptor stream is held back by a subscriber that \
             stopped reading (back pressure); `tp stat` names the subscription"
        );
    }
}

/// Counts a descriptor the transport did not take, by why.
fn count_refused(c: &mut ProducerCells, e: SendError) {
    if e.is_not_connected() {
        c.descriptors_not_connected += 1;
    } else if e.is_back_pressured() {
        c.descriptors_back_pressured += 1;
    } else {
        c.descriptor_failures += 1;
    }
}
