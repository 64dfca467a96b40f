//! The claim typestate: [`Producer::claim`] -> [`Claim`] (slot marked in progress, payload
//! writable in place) -> [`Claim::commit`] (full header overwrite, seqlock commit, then the
//! descriptor). Dropping a `Claim` without committing aborts it: the slot stays in progress
//! (consumers drop it), no descriptor is sent, and the next claim works as usual.

use tensorpool_codec::wire::FrameProgressState;
use tensorpool_shm::tensor::validate_tensor;
use tensorpool_shm::{DropReason, FrameMeta, WriteError, select_pool, seqlock};

use super::Producer;
use super::proxy;
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
}

/// Why a commit failed. The slot stays in progress; no descriptor was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    /// The shared-memory write path refused the header.
    #[error("slot write failed: {0}")]
    Write(#[from] WriteError),
    /// The regions went away.
    #[error("the producer has no mapped regions")]
    NoRegions,
}

/// Why [`Producer::offer`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    /// Claiming failed.
    #[error(transparent)]
    Claim(#[from] ClaimError),
    /// Committing failed.
    #[error(transparent)]
    Commit(#[from] CommitError),
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
#[derive(Debug)]
#[must_use = "a claim is aborted unless committed"]
pub struct Claim<'p> {
    producer: &'p mut Producer,
    seq: u64,
    index: u32,
    pool_index: usize,
    len: u32,
    meta: FrameMeta,
    progress: ProgressTrack,
    done: bool,
}

impl Producer {
    /// Claims the next slot for a tensor of `spec` (payload length `spec.len_bytes()`).
    pub fn claim(&mut self, spec: &TensorSpec) -> Result<Claim<'_>, ClaimError> {
        self.claim_len(spec, spec.len_bytes())
    }

    /// Claims the next slot with an explicit payload length (at least the tensor's extent).
    pub fn claim_len(&mut self, spec: &TensorSpec, len: usize) -> Result<Claim<'_>, ClaimError> {
        let seq = self.next_seq;
        if seq > seqlock::MAX_SEQ {
            return Err(ClaimError::SeqExhausted);
        }
        let now = tensorpool_agent::monotonic_ns();
        let meta_version = self.meta.version;
        let plan = self.registry.plan;
        let Some(r) = self.regions.as_mut() else {
            return Err(ClaimError::NoRegions);
        };
        let len32 = u32::try_from(len).unwrap_or(u32::MAX);
        let Some(pool_index) =
            select_pool(r.pools.geometry(), len32).filter(|_| len32 as usize == len)
        else {
            self.counters.drops_no_pool += 1;
            let largest_stride = r
                .pools
                .geometry()
                .iter()
                .map(|g| g.stride_bytes)
                .max()
                .unwrap_or(0);
            return Err(ClaimError::NoPoolFits {
                len,
                largest_stride,
            });
        };
        validate_tensor(spec.header(), len32).map_err(ClaimError::InvalidSpec)?;
        let meta = FrameMeta {
            tensor: spec.header().clone(),
            timestamp_ns: now,
            meta_version,
        };
        let index = r.ring.index_of(seq);
        if plan.active {
            // Progress consumers read the header while the payload fills: write it first
            // (a committed header with no descriptor or progress message yet is unobservable
            // to a consumer, which only reads slots it was told about), then mark in progress.
            r.ring
                .write_frame(&mut r.pools, seq, &meta, len32, |_| {})
                .map_err(|e| match e {
                    WriteError::InvalidHeader(d) => ClaimError::InvalidSpec(d),
                    _ => ClaimError::InvalidSpec(DropReason::Malformed),
                })?;
        }
        seqlock::begin(r.ring.seq_word(index), seq);
        let mut claim = Claim {
            producer: self,
            seq,
            index,
            pool_index,
            len: len32,
            meta,
            progress: ProgressTrack {
                active: plan.active,
                last_ns: now,
                ..ProgressTrack::default()
            },
            done: false,
        };
        claim.send_progress(0, FrameProgressState::Started);
        Ok(claim)
    }

    /// Copies `payload` into the next slot and commits it: claim + copy + commit.
    pub fn offer(&mut self, spec: &TensorSpec, payload: &[u8]) -> Result<u64, OfferError> {
        let mut claim = self.claim_len(spec, payload.len())?;
        claim.payload_mut().copy_from_slice(payload);
        Ok(claim.commit()?)
    }
}

impl Claim<'_> {
    /// Logical sequence of the frame being written.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Header index (= payload slot) of the frame.
    pub fn header_index(&self) -> u32 {
        self.index
    }

    /// Payload length reserved.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether the payload is empty (`values_len_bytes = 0` is a valid frame).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Overrides the capture timestamp (`SlotHeader.timestamp_ns`; default: claim time,
    /// `CLOCK_MONOTONIC`).
    pub fn set_timestamp_ns(&mut self, ts: u64) {
        self.meta.timestamp_ns = ts;
    }

    /// The payload slot in shared memory, exactly [`Claim::len`] bytes. Write every byte
    /// the tensor uses: the slot holds whatever an earlier frame left there.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (index, len, pi) = (self.index, self.len, self.pool_index);
        self.producer
            .writer_pools
            .get_mut(pi)
            .and_then(|p| p.slot_bytes_mut(index, len))
            .unwrap_or_default()
    }

    /// Reports that the first `bytes_filled` payload bytes are written. Sends `PROGRESS`
    /// only when some consumer asked for progress and the aggregated throttle allows
    /// (interval, byte delta, row delta); returns whether a message went out.
    pub fn progress(&mut self, bytes_filled: usize) -> bool {
        if !self.progress.active {
            return false;
        }
        let filled = (bytes_filled as u64).min(u64::from(self.len));
        if filled <= self.progress.last_bytes {
            return false;
        }
        let plan = self.producer.registry.plan;
        let now = tensorpool_agent::monotonic_ns();
        let delta = filled - self.progress.last_bytes;
        let stride = u64::from(self.meta.tensor.progress_stride_bytes);
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
        self.producer.publish_progress(self.seq, filled, state)
    }

    /// Commits: full header overwrite and seqlock commit through the shared-memory write
    /// path, then the `FrameDescriptor` (shared stream and per-consumer streams), then
    /// `FrameProgress` COMPLETE if anyone follows progress. Returns the sequence.
    pub fn commit(mut self) -> Result<u64, CommitError> {
        let p = &mut *self.producer;
        let r = p.regions.as_mut().ok_or(CommitError::NoRegions)?;
        r.ring
            .write_frame(&mut r.pools, self.seq, &self.meta, self.len, |_| {})?;
        self.done = true;
        p.next_seq = self.seq + 1;
        p.counters.committed += 1;
        p.publish_descriptor(self.seq, self.meta.timestamp_ns, self.meta.meta_version);
        let len = u64::from(self.len);
        self.send_progress(len, FrameProgressState::Complete);
        Ok(self.seq)
    }

    /// Aborts explicitly (same as dropping the claim).
    pub fn abort(self) {}
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.producer.counters.aborted += 1;
        // A sequence consumers heard of (progress) is never reused; otherwise it is.
        if self.progress.sent {
            self.producer.next_seq = self.seq + 1;
        }
    }
}

impl Producer {
    /// Publishes the descriptor of a committed frame on the shared stream and on every
    /// per-consumer descriptor stream (rate-capped per consumer); never waits.
    pub(super) fn publish_descriptor(&mut self, seq: u64, capture_ns: u64, meta_version: u32) {
        let Some(epoch) = self.regions.as_ref().map(|r| r.epoch) else {
            return;
        };
        let stream_id = self.cfg.stream_id;
        let ts = self
            .cfg
            .publish_timestamp
            .then(tensorpool_agent::monotonic_ns);
        match proxy::send_descriptor(
            &mut self.pubs.descriptor,
            stream_id,
            epoch,
            seq,
            ts,
            meta_version,
        ) {
            Ok(()) => self.counters.descriptors_sent += 1,
            Err(e) if e.is_not_connected() => {}
            Err(_) => self.counters.descriptor_failures += 1,
        }
        for e in &mut self.registry.entries {
            let interval = e.descriptor_interval_ns();
            let Some(g) = e.descriptor.as_mut() else {
                continue;
            };
            if interval > 0 && capture_ns.saturating_sub(e.last_descriptor_ns) < interval {
                self.counters.descriptors_rate_capped += 1;
                continue;
            }
            match proxy::send_descriptor(
                &mut g.publication,
                stream_id,
                epoch,
                seq,
                ts,
                meta_version,
            ) {
                Ok(()) => {
                    e.last_descriptor_ns = capture_ns;
                    self.counters.descriptors_per_consumer += 1;
                }
                Err(err) if err.is_not_connected() => {}
                Err(_) => self.counters.descriptor_failures += 1,
            }
        }
    }

    /// Publishes one `FrameProgress` where progress consumers listen.
    pub(super) fn publish_progress(
        &mut self,
        seq: u64,
        filled: u64,
        state: FrameProgressState,
    ) -> bool {
        let Some(epoch) = self.regions.as_ref().map(|r| r.epoch) else {
            return false;
        };
        let stream_id = self.cfg.stream_id;
        let mut sent = false;
        if self.registry.plan.on_shared {
            sent |=
                proxy::send_progress(&mut self.pubs.control, stream_id, epoch, seq, filled, state)
                    .is_ok();
        }
        for e in self
            .registry
            .entries
            .iter_mut()
            .filter(|e| e.supports_progress)
        {
            if let Some(g) = e.control.as_mut() {
                sent |=
                    proxy::send_progress(&mut g.publication, stream_id, epoch, seq, filled, state)
                        .is_ok();
            }
        }
        if sent {
            self.counters.progress_sent += 1;
        }
        sent
    }
}
