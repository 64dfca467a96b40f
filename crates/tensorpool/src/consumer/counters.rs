//! Consumer counters and drop accounting: one counter per drop cause, in an array indexed by
//! [`DropCause::index`]; `drops_gap` (sequence gaps) and `drops_late` (commit instability or
//! overwrite) derive from them as QoS reports them (Wire Spec §15.4).

use tensorpool_shm::DropReason;

/// Why a descriptor did not become an accepted frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropCause {
    /// No regions mapped (M0, Wire Spec §15.21).
    Unmapped,
    /// Descriptor epoch differs from the mapped epoch (§10.2.1, hard boundary).
    EpochMismatch,
    /// Sequence not above the last one seen in this epoch (a duplicate or regression).
    SeqRegressed,
    /// Skipped by RATE_LIMITED gating (§11).
    RateLimited,
    /// The slot failed the seqlock or a header rule (§8.2, §8.3).
    Slot(DropReason),
}

const OWN: usize = 4;

impl DropCause {
    /// Number of causes (size of a counter array).
    pub const COUNT: usize = OWN + DropReason::COUNT;

    /// Index in a counter array.
    pub fn index(self) -> usize {
        match self {
            DropCause::Unmapped => 0,
            DropCause::EpochMismatch => 1,
            DropCause::SeqRegressed => 2,
            DropCause::RateLimited => 3,
            DropCause::Slot(r) => OWN + r.index(),
        }
    }

    /// The cause at `index`.
    pub fn from_index(index: usize) -> Option<Self> {
        Some(match index {
            0 => DropCause::Unmapped,
            1 => DropCause::EpochMismatch,
            2 => DropCause::SeqRegressed,
            3 => DropCause::RateLimited,
            i => DropCause::Slot(*DropReason::ALL.get(i.checked_sub(OWN)?)?),
        })
    }

    /// Short snake_case name.
    pub fn name(self) -> &'static str {
        use DropReason as R;
        match self {
            DropCause::Unmapped => "unmapped",
            DropCause::EpochMismatch => "epoch_mismatch",
            DropCause::SeqRegressed => "seq_regressed",
            DropCause::RateLimited => "rate_limited",
            DropCause::Slot(r) => match r {
                R::NotCommitted => "not_committed",
                R::Late => "late",
                R::Stale => "stale",
                R::Overwritten => "overwritten",
                R::HeaderBytesLength => "header_bytes_length",
                R::EmbeddedBlockLength => "embedded_block_length",
                R::EmbeddedTemplateId => "embedded_template_id",
                R::EmbeddedSchemaId => "embedded_schema_id",
                R::EmbeddedVersion => "embedded_version",
                R::NdimsOutOfRange => "ndims_out_of_range",
                R::UnknownDtype => "unknown_dtype",
                R::UnknownMajorOrder => "unknown_major_order",
                R::UnknownProgressUnit => "unknown_progress_unit",
                R::NegativeDim => "negative_dim",
                R::NegativeStride => "negative_stride",
                R::StridesOverlap => "strides_overlap",
                R::StridesContradictMajorOrder => "strides_contradict_major_order",
                R::ProgressStrideInvalid => "progress_stride_invalid",
                R::ExtentExceedsValuesLen => "extent_exceeds_values_len",
                R::PayloadOffsetNonZero => "payload_offset_non_zero",
                R::PayloadSlotMismatch => "payload_slot_mismatch",
                R::UnknownPool => "unknown_pool",
                R::ValuesLenExceedsStride => "values_len_exceeds_stride",
                R::Malformed => "malformed",
            },
        }
    }

    /// Whether QoS reports this cause as `drops_late` (seqlock instability / overwrite).
    pub fn is_late(self) -> bool {
        matches!(self, DropCause::Slot(r) if r.is_late())
    }
}

/// Drop counters per cause, plus sequence gaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drops {
    by_cause: [u64; DropCause::COUNT],
    /// Frames never seen: the sum of sequence gaps (`drops_gap`).
    pub gap: u64,
}

impl Default for Drops {
    fn default() -> Self {
        Self {
            by_cause: [0; DropCause::COUNT],
            gap: 0,
        }
    }
}

impl Drops {
    /// Counts one drop.
    pub(crate) fn add(&mut self, cause: DropCause) {
        self.by_cause[cause.index()] += 1;
    }

    /// Drops of one cause.
    pub fn get(&self, cause: DropCause) -> u64 {
        self.by_cause[cause.index()]
    }

    /// `drops_late` as QoS reports it.
    pub fn late(&self) -> u64 {
        self.iter()
            .filter(|(c, _)| c.is_late())
            .map(|(_, n)| n)
            .sum()
    }

    /// Every descriptor dropped, all causes.
    pub fn total(&self) -> u64 {
        self.by_cause.iter().sum()
    }

    /// Non-zero causes with their counts.
    pub fn iter(&self) -> impl Iterator<Item = (DropCause, u64)> + '_ {
        self.by_cause
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .filter_map(|(i, n)| Some((DropCause::from_index(i)?, *n)))
    }
}

counters! {
    /// What the consumer did since it started.
    pub struct ConsumerCounters {
        /// Descriptors received for our stream.
        descriptors,
        /// Frames accepted: delivered, and still committed after the handler returned.
        accepted,
        /// Resyncs: a sequence gap larger than `max_outstanding_seq_gap`.
        resyncs,
        /// Announces received for our stream.
        announces,
        /// Announces ignored as older than the freshness window.
        announces_stale,
        /// MONOTONIC announces ignored as older than the subscription's join time.
        announces_pre_join,
        /// Announces ignored for an older epoch than the mapped or freshest one.
        announces_older_epoch,
        /// Announces ignored while waiting for a new epoch or backing off.
        announces_waiting,
        /// Successful mappings.
        maps,
        /// Failed mappings (nothing stays mapped).
        map_failures,
        /// Remaps at an epoch change.
        remaps,
        /// Unmaps because `activity_timestamp_ns` went stale.
        unmaps_stale,
        /// Unmaps because the superblock changed (pid, epoch, magic).
        unmaps_superblock,
        /// `FrameProgress` delivered to the handler.
        progress,
        /// `FrameProgress` dropped (unmapped, epoch, slot, beyond values_len, regression).
        progress_dropped,
        /// `FrameProgress` dropped because bytes regressed within a frame.
        progress_regressed,
        /// `FrameProgress` dropped because bytes exceeded values_len_bytes.
        progress_beyond,
        /// `ConsumerConfig` messages for us.
        configs,
        /// `ConsumerHello` sent.
        hellos_sent,
        /// `QosConsumer` sent.
        qos_sent,
        /// Meta blobs reassembled and verified.
        blobs_completed,
        /// Meta blobs discarded (gap, overlap, checksum, size).
        blobs_discarded,
        /// `DataSourceMeta` versions stored.
        meta_updates,
    }
}
