//! `FrameProgress` for consumers that opted in (Wire Spec §10.2.2): validated against the
//! slot, monotonic within a frame, never beyond `values_len_bytes`, never a substitute for
//! the `FrameDescriptor` (COMPLETE is not a commit), and a payload prefix only when the
//! layout makes it safe to read.

use tensorpool_codec::wire::{FrameProgressState, ProgressUnit};
use tensorpool_shm::slot::{decode_slot, validate_slot};
use tensorpool_shm::{DropReason, HEADER_SLOT_BYTES, seqlock};

use super::mapping::Mapped;

/// A progress report on a frame still being written.
#[derive(Debug)]
pub struct Progress<'a> {
    seq: u64,
    epoch: u64,
    state: FrameProgressState,
    filled: u64,
    values_len: u64,
    prefix: Option<&'a [u8]>,
    mapped: &'a Mapped,
    index: u32,
}

impl<'a> Progress<'a> {
    /// Sequence of the frame.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// STARTED, PROGRESS or COMPLETE. COMPLETE does **not** mean committed: wait for the
    /// frame itself.
    pub fn state(&self) -> FrameProgressState {
        self.state
    }

    /// Payload bytes the producer reports written.
    pub fn bytes_filled(&self) -> u64 {
        self.filled
    }

    /// The frame's payload length.
    pub fn values_len(&self) -> u64 {
        self.values_len
    }

    /// The readable prefix: `[0, bytes_filled)` for an inferred-contiguous tensor, whole
    /// rows (columns) for a ROWS (COLUMNS) progress unit in the matching major order, else
    /// `None` (the report is informational only). Racy: confirm with [`Progress::recheck`].
    pub fn prefix(&self) -> Option<&'a [u8]> {
        self.prefix
    }

    /// `Ok` while the slot still belongs to this frame (in progress or committed).
    pub fn recheck(&self) -> Result<(), DropReason> {
        let now = self.mapped.ring.seq_commit(self.index);
        if seqlock::sequence(now) == self.seq {
            Ok(())
        } else {
            Err(DropReason::Late)
        }
    }
}

/// Why a progress report was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProgressDrop {
    Slot,
    Beyond,
    Regressed,
}

/// Per-frame progress tracking: the last (seq, bytes) reported.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    last: Option<(u64, u64)>,
}

impl Tracker {
    pub fn reset(&mut self) {
        self.last = None;
    }

    /// Validates a report against the slot and the frame's earlier reports.
    pub fn check<'a>(
        &mut self,
        m: &'a Mapped,
        seq: u64,
        filled: u64,
        state: FrameProgressState,
    ) -> Result<Progress<'a>, ProgressDrop> {
        let index = m.ring.index_of(seq);
        let first = m.ring.seq_commit(index);
        if seqlock::sequence(first) != seq {
            return Err(ProgressDrop::Slot);
        }
        let mut bytes = [0u8; HEADER_SLOT_BYTES];
        m.ring.copy_slot(index, &mut bytes);
        if m.ring.seq_commit(index) != first {
            return Err(ProgressDrop::Slot);
        }
        let header = decode_slot(&bytes).map_err(|_| ProgressDrop::Slot)?;
        let check =
            validate_slot(&header, index, m.pools.geometry()).map_err(|_| ProgressDrop::Slot)?;
        let values_len = u64::from(header.values_len_bytes);
        if filled > values_len {
            return Err(ProgressDrop::Beyond);
        }
        if let Some((s, b)) = self.last
            && s == seq
            && filled < b
        {
            return Err(ProgressDrop::Regressed);
        }
        self.last = Some((seq, filled));
        let t = &header.tensor;
        let n = usize::from(t.ndims);
        let inferred = t.strides[..n].iter().all(|&s| s == 0);
        let order = check.layout.order;
        let safe_len = match t.progress_unit {
            _ if inferred
                && header.payload_offset == 0
                && t.progress_unit == ProgressUnit::None =>
            {
                Some(filled)
            }
            ProgressUnit::Rows if order == tensorpool_codec::wire::MajorOrder::Row => {
                let s = u64::from(t.progress_stride_bytes);
                filled.checked_div(s).map(|rows| rows * s)
            }
            ProgressUnit::Columns if order == tensorpool_codec::wire::MajorOrder::Column => {
                let s = u64::from(t.progress_stride_bytes);
                filled.checked_div(s).map(|rows| rows * s)
            }
            _ => None,
        };
        let prefix = safe_len.and_then(|l| {
            let pool = m.pools.by_id(header.pool_id)?;
            pool.slot_bytes(index, u32::try_from(l).ok()?)
        });
        Ok(Progress {
            seq,
            epoch: m.epoch,
            state,
            filled,
            values_len,
            prefix,
            mapped: m,
            index,
        })
    }
}
