//! Consumer counters: one table, plus drop accounting (one counter per drop cause, in an
//! array indexed by [`DropCause::index`]; `drops_gap` (sequence gaps) and `drops_late` (commit
//! instability or overwrite) derive from them as QoS reports them, Wire Spec §15.4) and the
//! delivery latency window. The fields with a kind are also Aeron counters (`tp stat`,
//! AeronStat) keyed by stream id and consumer id (see [`crate::counters`]); a drop counter's
//! key carries its cause.

use tensorpool_aeron::{AddError, Counter};
use tensorpool_shm::DropReason;

use crate::counters::{Cell, Kind, Registrar, Role};

/// `tensorpool:201`: frames accepted.
pub const FRAMES: Kind = Kind::total(201, Role::Consumer, "frames", "frames accepted");
/// `tensorpool:202`: payload bytes of the frames accepted.
pub const BYTES: Kind = Kind::total(202, Role::Consumer, "bytes", "payload bytes accepted");
/// `tensorpool:203`: descriptors dropped, one counter per [`DropCause`] (key `detail` =
/// [`DropCause::index`]).
pub const DROPS: Kind = Kind::per_cause(
    203,
    Role::Consumer,
    "drops",
    "descriptors dropped, per cause",
    drop_cause_name,
);
/// `tensorpool:204`: frames never seen (sequence gaps, QoS `drops_gap`).
pub const DROPS_GAP: Kind = Kind::total(
    204,
    Role::Consumer,
    "drops gap",
    "frames never seen (sequence gaps)",
);
/// `tensorpool:205`: remaps at an epoch change.
pub const REMAPS: Kind = Kind::total(205, Role::Consumer, "remaps", "remaps at an epoch change");
/// `tensorpool:206`: the mapped epoch (0: unmapped).
pub const EPOCH: Kind = Kind::gauge(206, Role::Consumer, "epoch", "mapped epoch (0: unmapped)");
/// `tensorpool:207`: latency of the last frame accepted, ns.
pub const LATENCY_LAST: Kind = Kind::gauge(
    207,
    Role::Consumer,
    "latency last ns",
    "capture (slot timestamp) to delivery of the last frame accepted, ns",
);
/// `tensorpool:208`: median latency over the last QoS interval, ns.
pub const LATENCY_P50: Kind = Kind::gauge(
    208,
    Role::Consumer,
    "latency p50 ns",
    "median capture-to-delivery latency over the last QoS interval, ns (within 6.25 %)",
);
/// `tensorpool:209`: 99th percentile latency over the last QoS interval, ns.
pub const LATENCY_P99: Kind = Kind::gauge(
    209,
    Role::Consumer,
    "latency p99 ns",
    "99th percentile capture-to-delivery latency over the last QoS interval, ns (within 6.25 %)",
);

/// Every consumer counter kind.
pub const COUNTER_KINDS: &[&Kind] = &[
    &FRAMES,
    &BYTES,
    &DROPS,
    &DROPS_GAP,
    &REMAPS,
    &EPOCH,
    &LATENCY_LAST,
    &LATENCY_P50,
    &LATENCY_P99,
];

fn drop_cause_name(detail: u16) -> Option<&'static str> {
    DropCause::from_index(usize::from(detail)).map(DropCause::name)
}

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
    /// Skipped unread to catch up: the producer had already begun the frame half a ring later
    /// (`consumer.catch_up`).
    Behind,
}

const OWN: usize = 4;

impl DropCause {
    /// Number of causes (size of a counter array).
    pub const COUNT: usize = OWN + DropReason::COUNT + 1;

    /// Index in a counter array.
    pub fn index(self) -> usize {
        match self {
            DropCause::Unmapped => 0,
            DropCause::EpochMismatch => 1,
            DropCause::SeqRegressed => 2,
            DropCause::RateLimited => 3,
            DropCause::Slot(r) => OWN + r.index(),
            // Last, so that the indexes (Aeron counter keys, the C enum) of the others stay.
            DropCause::Behind => OWN + DropReason::COUNT,
        }
    }

    /// The cause at `index`.
    pub fn from_index(index: usize) -> Option<Self> {
        Some(match index {
            0 => DropCause::Unmapped,
            1 => DropCause::EpochMismatch,
            2 => DropCause::SeqRegressed,
            3 => DropCause::RateLimited,
            i if i == OWN + DropReason::COUNT => DropCause::Behind,
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
            DropCause::Behind => "behind",
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
                R::RegionDead => "region_dead",
            },
        }
    }

    /// Whether QoS reports this cause as `drops_late` (seqlock instability / overwrite, and
    /// frames skipped to catch up, which a lapped consumer would otherwise have lost to the
    /// overwrite: a supervisor still sees the consumer fall behind).
    pub fn is_late(self) -> bool {
        matches!(self, DropCause::Slot(r) if r.is_late()) || self == DropCause::Behind
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

/// The drop cells of a consumer (single writer), one Aeron counter per cause.
#[derive(Debug)]
pub(crate) struct DropCells {
    by_cause: [Cell; DropCause::COUNT],
    pub gap: Cell,
}

impl Default for DropCells {
    fn default() -> Self {
        Self {
            by_cause: std::array::from_fn(|_| Cell::default()),
            gap: Cell::default(),
        }
    }
}

impl DropCells {
    /// Counts one drop.
    pub fn add(&mut self, cause: DropCause) {
        self.by_cause[cause.index()] += 1;
    }

    /// `drops_late` as QoS reports it.
    pub fn late(&self) -> u64 {
        (0..DropCause::COUNT)
            .filter(|&i| DropCause::from_index(i).is_some_and(DropCause::is_late))
            .map(|i| self.by_cause[i].get())
            .sum()
    }

    /// The values now.
    pub fn snapshot(&self) -> Drops {
        Drops {
            by_cause: std::array::from_fn(|i| self.by_cause[i].get()),
            gap: self.gap.get(),
        }
    }

    /// Requests one counter per cause, then the gap counter.
    pub fn register(reg: &mut Registrar<'_>) -> Result<(), AddError> {
        for i in 0..DropCause::COUNT {
            reg.start(&DROPS, i as u16)?;
        }
        reg.start(&DROPS_GAP, 0)
    }

    /// Takes the counters [`DropCells::register`] requested, in the same order.
    pub fn attach(&mut self, counters: &mut impl Iterator<Item = Counter>) {
        for cell in &mut self.by_cause {
            cell.attach(counters.next());
        }
        self.gap.attach(counters.next());
    }
}

/// The largest latency recorded as itself (1 hour, ns); larger ones count as this.
const LATENCY_MAX_NS: u64 = 3_600_000_000_000;
/// Significant decimal digits kept: a recorded value is known within 1 %.
const LATENCY_SIGFIG: u8 = 2;

/// Latencies since the last report: an HDR histogram (`hdrhistogram`) allocated at
/// creation with a fixed range; recording, quantiles and clearing allocate nothing.
#[derive(Debug)]
pub(crate) struct LatencyWindow {
    histogram: hdrhistogram::Histogram<u64>,
}

impl Default for LatencyWindow {
    fn default() -> Self {
        Self {
            // Fixed bounds, no auto-resize: every later call works in place.
            histogram: hdrhistogram::Histogram::new_with_bounds(1, LATENCY_MAX_NS, LATENCY_SIGFIG)
                .expect("constant histogram bounds are valid"),
        }
    }
}

impl LatencyWindow {
    pub fn record(&mut self, ns: u64) {
        self.histogram.saturating_record(ns);
    }

    /// The `q` quantile (0..=1) of what was recorded (`None` when nothing was).
    pub fn quantile(&self, q: f64) -> Option<u64> {
        (!self.histogram.is_empty()).then(|| self.histogram.value_at_quantile(q))
    }

    pub fn clear(&mut self) {
        if !self.histogram.is_empty() {
            self.histogram.reset();
        }
    }
}

counters! {
    /// What the consumer did since it started.
    pub struct ConsumerCounters, cells ConsumerCells {
        /// Descriptors received for our stream.
        descriptors,
        /// Frames accepted: delivered, and still committed after the handler returned.
        accepted = FRAMES,
        /// Payload bytes of the frames accepted.
        bytes = BYTES,
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
        remaps = REMAPS,
        /// The mapped epoch (a level; 0 while unmapped).
        epoch = EPOCH,
        /// Unmaps because `activity_timestamp_ns` went stale.
        unmaps_stale,
        /// Unmaps because the superblock changed (pid, epoch, magic).
        unmaps_superblock,
        /// Unmaps because a region file was truncated under the mapping (SIGBUS repaired).
        unmaps_dead,
        /// Unmaps because the driver revoked the stream's producer or our own lease, shut
        /// down, was lost, or broke the protocol (driver mode).
        unmaps_revoked,
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
        /// Frames accepted through the payload fallback (also in `accepted`).
        fallback_frames,
        /// `BridgeFrameChunk` messages read from the fallback payload stream.
        fallback_chunks,
        /// Fallback chunks dropped (malformed, a field rule, an older epoch, CRC32C).
        fallback_chunk_drops,
        /// Fallback chunks whose CRC32C was missing (integrity on) or wrong.
        fallback_crc_errors,
        /// Fallback frames dropped (conflicting chunks, timed out, evicted, bad header).
        fallback_frame_drops,
        /// Meta blobs reassembled and verified.
        blobs_completed,
        /// Meta blobs discarded (gap, overlap, checksum, size).
        blobs_discarded,
        /// `DataSourceMeta` versions stored.
        meta_updates,
        /// Capture (slot `timestamp_ns`, `CLOCK_MONOTONIC`) to delivery of the last frame
        /// accepted, ns (a level; frames without a timestamp or from another clock are not
        /// measured).
        latency_last_ns = LATENCY_LAST,
        /// Median of that latency over the last QoS interval, ns (a level; 0: no frame).
        latency_p50_ns = LATENCY_P50,
        /// 99th percentile of that latency over the last QoS interval, ns (a level).
        latency_p99_ns = LATENCY_P99,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_quantiles_are_within_one_percent() {
        for v in [0u64, 1, 15, 16, 17, 31, 32, 1000, 123_456, 9_999_999_999] {
            let mut one = LatencyWindow::default();
            one.record(v);
            let got = one.quantile(0.5).unwrap();
            let err = got.abs_diff(v) as f64 / (v.max(1)) as f64;
            assert!(err <= 0.01, "{v} -> {got}");
        }
        let mut w = LatencyWindow::default();
        assert_eq!(w.quantile(0.5), None);
        for v in 1..=1000u64 {
            w.record(v * 1000);
        }
        let p50 = w.quantile(0.5).unwrap() as f64;
        let p99 = w.quantile(0.99).unwrap() as f64;
        assert!((p50 - 500_000.0).abs() / 500_000.0 < 0.01, "{p50}");
        assert!((p99 - 990_000.0).abs() / 990_000.0 < 0.01, "{p99}");
        // beyond the range: counted at the top, never an error or a resize
        w.record(u64::MAX);
        assert!(w.quantile(1.0).unwrap() >= 3_600_000_000_000);
        w.clear();
        assert_eq!(w.quantile(0.99), None);
    }
}
