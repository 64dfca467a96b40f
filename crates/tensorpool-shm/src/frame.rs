//! Writing and reading whole frames: the seqlock, the slot rules and the pools combined, so
//! that upper layers cannot get the order wrong. Both paths allocate nothing.
//!
//! # The read contract
//!
//! [`HeaderRing::read_frame`] checks the commit word, copies the 256-byte header into a private
//! buffer, confirms the word did not change while copying, and validates the copy (§8.2). The
//! returned [`FrameView`] then hands out the payload **in place** (zero copy). The producer may
//! overwrite that payload at any moment, so:
//!
//! * the header in the view ([`FrameView::header`]) is a private, consistent copy;
//! * the payload bytes ([`FrameView::payload`]) are trustworthy **only if
//!   [`FrameView::recheck`] returns `Ok` after you finished reading them** (§8.3 step 6).
//!   Read (or copy) the payload, then call `recheck`; on `Err(DropReason::Late)` discard
//!   everything derived from those bytes. Never act on payload bytes before the recheck.
//!
//! [`FrameView::copy_payload_to`] does the copy and the recheck in one call.

use crate::HEADER_SLOT_BYTES;
use crate::pool::{PoolError, PoolGeometry, select_pool, validate_pools};
use crate::region::{HeaderRing, Mode, PayloadPool, ReadWrite};
use crate::seqlock;
use crate::slot::{
    DropReason, SlotHeader, decode_slot, encode_slot, header_slot_offset, slot_for_frame,
    validate_slot,
};
use crate::tensor::{TensorHeader, TensorLayout};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The payload pools of one stream, checked against the header ring (§15.5).
#[derive(Debug)]
pub struct PoolSet<M: Mode> {
    pools: Vec<PayloadPool<M>>,
    geometry: Vec<PoolGeometry>,
}

impl<M: Mode> PoolSet<M> {
    /// Groups pools: at least one, unique ids, valid strides, every `nslots` equal to
    /// `header_nslots`.
    pub fn new(pools: Vec<PayloadPool<M>>, header_nslots: u32) -> Result<Self, PoolError> {
        let geometry: Vec<PoolGeometry> = pools.iter().map(PayloadPool::geometry).collect();
        validate_pools(&geometry, header_nslots)?;
        Ok(Self { pools, geometry })
    }

    /// Geometry of every pool, in the order given to [`PoolSet::new`].
    pub fn geometry(&self) -> &[PoolGeometry] {
        &self.geometry
    }

    /// The pools.
    pub fn pools(&self) -> &[PayloadPool<M>] {
        &self.pools
    }

    /// The pool with `pool_id`.
    pub fn by_id(&self, pool_id: u16) -> Option<&PayloadPool<M>> {
        self.pools.iter().find(|p| p.geometry().pool_id == pool_id)
    }
}

/// Everything about a frame except its payload bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameMeta {
    /// Shape and type (must pass [`crate::tensor::validate_tensor`] for the payload length).
    pub tensor: TensorHeader,
    /// Source / capture time (`SlotHeader.timestamp_ns`).
    pub timestamp_ns: u64,
    /// `DataSourceMeta` version this frame belongs to.
    pub meta_version: u32,
}

/// Why a frame was not written. Nothing was touched in shared memory when this is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// No pool's stride holds the payload: drop the frame (§9), never block.
    #[error("no payload pool holds {values_len_bytes} bytes (largest stride {largest_stride})")]
    NoPoolFits {
        /// Payload length asked for.
        values_len_bytes: u32,
        /// Largest stride available.
        largest_stride: u32,
    },
    /// The tensor header would be rejected by consumers.
    #[error("tensor header invalid: {0}")]
    InvalidHeader(DropReason),
    /// `seq` does not fit the 63-bit logical sequence.
    #[error("sequence {0} exceeds the 63-bit logical sequence range")]
    SeqOutOfRange(u64),
    /// The codec refused to encode the header (cannot happen for a validated header).
    #[error("slot header could not be encoded")]
    Encode,
    /// The pools do not belong to this header ring (nslots differ).
    #[error("pool set has {pool_nslots} slots per pool; header ring has {header_nslots}")]
    PoolsMismatch {
        /// Pool nslots.
        pool_nslots: u32,
        /// Ring nslots.
        header_nslots: u32,
    },
}

/// Where a written frame went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrittenFrame {
    /// Header index (= payload slot).
    pub header_index: u32,
    /// Pool used.
    pub pool_id: u16,
}

/// A frame being written (producer side): the slot is marked in progress, the payload slot is
/// writable in place, and nothing is visible to consumers until [`FrameWriter::commit`].
///
/// Dropping a writer without committing leaves the slot "in progress": consumers drop it
/// (`NotCommitted`), the ring stays usable, and a later frame simply overwrites the slot.
#[derive(Debug)]
pub struct FrameWriter<'a> {
    word: &'a AtomicU64,
    /// Dead flag of the payload pool written (see [`crate::sigbus`]).
    pool_dead: &'static AtomicBool,
    ring: &'a HeaderRing<ReadWrite>,
    payload: &'a mut [u8],
    header: [u8; HEADER_SLOT_BYTES],
    seq: u64,
    written: WrittenFrame,
}

impl<'a> FrameWriter<'a> {
    /// The payload slot, `values_len_bytes` long, to fill in place (zero copy).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        self.payload
    }

    /// The logical sequence being written.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Where the frame goes (header index = payload slot, pool).
    pub fn target(&self) -> WrittenFrame {
        self.written
    }

    /// Payload length reserved (`values_len_bytes`).
    pub fn len(&self) -> usize {
        self.payload.len()
    }

    /// Whether the payload is empty (`values_len_bytes = 0` is a valid frame).
    pub fn is_empty(&self) -> bool {
        self.payload.is_empty()
    }

    /// Replaces `SlotHeader.timestamp_ns`, in the slot too (it is in progress: readers drop
    /// it until [`FrameWriter::commit`]). The field is unaligned: the aligned words around it
    /// are rewritten from the header the writer holds.
    pub fn set_timestamp_ns(&mut self, timestamp_ns: u64) {
        use tensorpool_codec::wire::slot::{SEQ_COMMIT_END, TIMESTAMP_OFFSET};
        let at = TIMESTAMP_OFFSET;
        self.header[at..at + 8].copy_from_slice(&timestamp_ns.to_le_bytes());
        let (start, end) = (at & !7, (at + 8).next_multiple_of(8));
        debug_assert!(start >= SEQ_COMMIT_END, "never the seqlock word");
        let off = header_slot_offset(self.written.header_index) as usize;
        self.ring
            .mapping()
            .store_words(off + start, &self.header[start..end]);
    }

    /// Publishes the frame with a release store of the committed word (§8.3 steps 3-4): the
    /// header is in the slot since [`HeaderRing::begin_frame`] (and any later change was
    /// stored as it was made), the payload was written in place. After this, and only after
    /// it, the frame may be announced.
    ///
    /// If the header ring or the payload pool was truncated under the writer's mapping (a
    /// repaired SIGBUS, see [`crate::sigbus`]), the payload went to private zero pages, not
    /// to the file: the slot is left in progress (readers drop it as not committed) instead
    /// of publishing a header over bytes readers never see.
    pub fn commit(self) -> WrittenFrame {
        if !self.ring.is_dead() && !self.pool_dead.load(Ordering::Acquire) {
            seqlock::commit(self.word, self.seq);
        }
        self.written
    }
}

impl HeaderRing<ReadWrite> {
    /// Producer path, first half (§8.3, §15.18): chooses the smallest fitting pool, validates
    /// the header consumers will see, then marks the slot in progress (store + release fence),
    /// writes the header behind that mark and hands out the payload slot. Validation happens before anything is written: on error
    /// shared memory is untouched.
    pub fn begin_frame<'a>(
        &'a mut self,
        pools: &'a mut PoolSet<ReadWrite>,
        seq: u64,
        meta: &FrameMeta,
        values_len_bytes: u32,
    ) -> Result<FrameWriter<'a>, WriteError> {
        if seq > seqlock::MAX_SEQ {
            return Err(WriteError::SeqOutOfRange(seq));
        }
        if let Some(p) = pools.geometry.iter().find(|p| p.nslots != self.nslots()) {
            return Err(WriteError::PoolsMismatch {
                pool_nslots: p.nslots,
                header_nslots: self.nslots(),
            });
        }
        let Some(pi) = select_pool(&pools.geometry, values_len_bytes) else {
            let largest_stride = pools
                .geometry
                .iter()
                .map(|p| p.stride_bytes)
                .max()
                .unwrap_or(0);
            return Err(WriteError::NoPoolFits {
                values_len_bytes,
                largest_stride,
            });
        };
        let index = self.index_of(seq);
        let pool_id = pools.geometry[pi].pool_id;
        let mut slot = slot_for_frame(seq, index, pool_id, values_len_bytes, &meta.tensor);
        slot.timestamp_ns = meta.timestamp_ns;
        slot.meta_version = meta.meta_version;
        validate_slot(&slot, index, &pools.geometry).map_err(WriteError::InvalidHeader)?;
        let mut header = [0u8; HEADER_SLOT_BYTES];
        encode_slot(&slot, &mut header).map_err(|_| WriteError::Encode)?;

        let pool_dead = pools.pools[pi].dead_flag();
        // validate_slot proved index < pool nslots and values_len <= stride: the view exists.
        let payload = pools.pools[pi]
            .slot_bytes_mut(index, values_len_bytes)
            .ok_or(WriteError::InvalidHeader(
                DropReason::ValuesLenExceedsStride,
            ))?;
        let ring: &'a HeaderRing<ReadWrite> = self;
        let word = ring.word_of(index);
        seqlock::begin(word, seq);
        // The header goes in now, behind the in-progress mark (begin's release fence keeps
        // these stores after it): the slot's cache lines are fetched from a reader's core
        // here, while the payload is written, not on the commit's latency path; and readers
        // that follow a frame before its commit (progress, Wire Spec §10.2.2) can validate
        // their reports against it.
        ring.mapping()
            .store_words(header_slot_offset(index) as usize + 8, &header[8..]);
        Ok(FrameWriter {
            word,
            pool_dead,
            ring,
            payload,
            header,
            seq,
            written: WrittenFrame {
                header_index: index,
                pool_id,
            },
        })
    }

    /// The whole producer path in one call: [`HeaderRing::begin_frame`], `fill` writes exactly
    /// `values_len_bytes` of payload, [`FrameWriter::commit`]. If `fill` panics, the slot stays
    /// "in progress" and consumers drop it.
    pub fn write_frame<F: FnOnce(&mut [u8])>(
        &mut self,
        pools: &mut PoolSet<ReadWrite>,
        seq: u64,
        meta: &FrameMeta,
        values_len_bytes: u32,
        fill: F,
    ) -> Result<WrittenFrame, WriteError> {
        let mut writer = self.begin_frame(pools, seq, meta, values_len_bytes)?;
        fill(writer.payload_mut());
        Ok(writer.commit())
    }
}

/// The dead flag of a detached frame's (absent) regions: never set.
static NEVER_DEAD: AtomicBool = AtomicBool::new(false);

/// A frame that passed the seqlock and every header rule. See the module docs: the payload is
/// trustworthy only after [`FrameView::recheck`] succeeds.
#[derive(Debug)]
pub struct FrameView<'a> {
    /// The slot's commit word; `None` for a [`FrameView::detached`] frame (a private copy).
    word: Option<&'a AtomicU64>,
    /// Dead flags of the header ring and of the payload pool (see [`crate::sigbus`]).
    dead: [&'static AtomicBool; 2],
    seq_commit: u64,
    header: SlotHeader,
    layout: TensorLayout,
    payload: &'a [u8],
}

impl<'a> FrameView<'a> {
    /// A frame that is not in shared memory: a private copy (e.g. reassembled from
    /// `BridgeFrameChunk`s, Bridge Spec §5) of a committed slot `header` and its `payload`.
    /// The header is checked as a slot read from a ring is, apart from the pool (there is
    /// none): committed `seq_commit`, `payload_offset == 0`, `values_len_bytes` equal to the
    /// payload's length, then every TensorHeader rule. Nobody can overwrite a private copy,
    /// so [`FrameView::recheck`] is always `Ok`.
    pub fn detached(header: SlotHeader, payload: &'a [u8]) -> Result<Self, DropReason> {
        if !seqlock::is_committed(header.seq_commit) {
            return Err(DropReason::NotCommitted);
        }
        if header.payload_offset != 0 {
            return Err(DropReason::PayloadOffsetNonZero);
        }
        if u64::from(header.values_len_bytes) != payload.len() as u64 {
            return Err(DropReason::ValuesLenExceedsStride);
        }
        let layout = crate::tensor::validate_tensor(&header.tensor, header.values_len_bytes)?;
        Ok(FrameView {
            word: None,
            dead: [&NEVER_DEAD, &NEVER_DEAD],
            seq_commit: header.seq_commit,
            header,
            layout,
            payload,
        })
    }

    /// Logical sequence.
    pub fn seq(&self) -> u64 {
        seqlock::sequence(self.seq_commit)
    }

    /// The validated private copy of the slot header.
    pub fn header(&self) -> &SlotHeader {
        &self.header
    }

    /// The tensor header (inside [`FrameView::header`]).
    pub fn tensor(&self) -> &TensorHeader {
        &self.header.tensor
    }

    /// Effective strides and extent.
    pub fn layout(&self) -> &TensorLayout {
        &self.layout
    }

    /// The payload in place (`values_len_bytes` long; empty when the frame has none).
    /// **Racy until [`FrameView::recheck`] returns `Ok`.**
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// §8.3 step 6: `fence(Acquire)` then reload `seq_commit`; `Ok` only if unchanged, which
    /// proves that everything read from the payload before this call is the committed frame.
    /// [`DropReason::RegionDead`] if either file was truncated under the mapping meanwhile
    /// (the bytes read were zero pages, see [`crate::sigbus`]). No system call: one reload
    /// and two flag loads.
    pub fn recheck(&self) -> Result<(), DropReason> {
        if let Some(word) = self.word {
            seqlock::read_end(word, self.seq_commit)?;
        }
        if self.dead.iter().any(|d| d.load(Ordering::Acquire)) {
            return Err(DropReason::RegionDead);
        }
        Ok(())
    }

    /// Copies the payload into `out[..len]` and rechecks; returns the length copied.
    /// `out` must hold the payload (else nothing is copied and `None` is returned).
    pub fn copy_payload_to(&self, out: &mut [u8]) -> Option<Result<usize, DropReason>> {
        let n = self.payload.len();
        let dst = out.get_mut(..n)?;
        dst.copy_from_slice(self.payload);
        Some(self.recheck().map(|()| n))
    }
}

impl<M: Mode> HeaderRing<M> {
    /// Consumer path for frame `seq` (§8.3, §15.18, §15.21): acquire-load `seq_commit` (must be
    /// committed and carry `seq`), copy the header, fence + reload (unchanged, else
    /// [`DropReason::Late`]), then validate the copy against `pools`. Single attempt; never
    /// waits. See [`FrameView`] for the payload contract.
    pub fn read_frame<'a, P: Mode>(
        &'a self,
        pools: &'a PoolSet<P>,
        seq: u64,
    ) -> Result<FrameView<'a>, DropReason> {
        let index = self.index_of(seq);
        let word = self.word_of(index);
        let ring_dead = self.mapping().dead_flag();
        // Loading the commit word may be what finds the truncation (the repaired page reads
        // zeros: "not committed"); report it as the dead region it is, so the consumer unmaps
        // at once instead of at its next liveness check.
        let dead_or = |e: DropReason| {
            if ring_dead.load(Ordering::Acquire) {
                DropReason::RegionDead
            } else {
                e
            }
        };
        let first = seqlock::read_begin(word, seq).map_err(dead_or)?;
        let mut bytes = [0u8; HEADER_SLOT_BYTES];
        self.copy_slot(index, &mut bytes);
        seqlock::read_end(word, first).map_err(dead_or)?;
        if ring_dead.load(Ordering::Acquire) {
            return Err(DropReason::RegionDead);
        }
        let header = decode_slot(&bytes)?;
        let check = validate_slot(&header, index, &pools.geometry)?;
        let pool = &pools.pools[check.pool_index];
        let payload = pool
            .slot_bytes(index, header.values_len_bytes)
            .ok_or(DropReason::ValuesLenExceedsStride)?;
        Ok(FrameView {
            word: Some(word),
            dead: [ring_dead, pool.dead_flag()],
            seq_commit: first,
            header,
            layout: check.layout,
            payload,
        })
    }

    /// Whether the writer has already begun frame `seq + ahead` (in progress or committed):
    /// frame `seq`'s slot then has at most `nslots - ahead` frames left before it is
    /// overwritten. One relaxed load of slot `seq + ahead`'s `seq_commit`, a hint only (it
    /// proves nothing about frame `seq`; [`Self::read_frame`] and the recheck still decide).
    /// `ahead` must be in `1..nslots`; otherwise, or if `seq + ahead` overflows, `false`.
    pub fn writer_ahead_by(&self, seq: u64, ahead: u64) -> bool {
        if ahead == 0 || ahead >= u64::from(self.nslots()) {
            return false;
        }
        let Some(target) = seq.checked_add(ahead) else {
            return false;
        };
        let word = self.word_of(self.index_of(target)).load(Ordering::Relaxed);
        seqlock::sequence(word) >= target
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::{Dtype, MajorOrder, contiguous};

    #[test]
    fn a_detached_frame_is_checked_like_a_slot_and_always_rechecks_ok() {
        let t = contiguous(Dtype::Uint8, MajorOrder::Row, &[16]).unwrap();
        let header = slot_for_frame(9, 1, 1, 16, &t);
        let payload = [7u8; 16];
        let v = FrameView::detached(header.clone(), &payload).unwrap();
        assert_eq!((v.seq(), v.payload().len()), (9, 16));
        assert_eq!(v.recheck(), Ok(()));
        let mut out = [0u8; 16];
        assert_eq!(v.copy_payload_to(&mut out), Some(Ok(16)));
        // the payload must be exactly values_len_bytes
        assert!(FrameView::detached(header.clone(), &payload[..15]).is_err());
        // an uncommitted slot is no frame
        let mut open = header.clone();
        open.seq_commit &= !1;
        assert_eq!(
            FrameView::detached(open, &payload).unwrap_err(),
            DropReason::NotCommitted
        );
        let mut offset = header;
        offset.payload_offset = 8;
        assert_eq!(
            FrameView::detached(offset, &payload).unwrap_err(),
            DropReason::PayloadOffsetNonZero
        );
    }
}
