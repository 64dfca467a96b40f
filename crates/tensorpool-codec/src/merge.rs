//! Schema 903 (`shm.tensorpool.merge`): merge maps that tell a join stage how to line up
//! its input streams. Optional signed fields use the type's minimum as their null.

use crate::generated::merge as gm;
use crate::generated::merge::types as g;
pub use crate::wire::ClockDomain;

/// Schema id of the merge (join-barrier) schema.
pub const SCHEMA_ID: u16 = gm::SequenceMergeMapAnnounce::SCHEMA_ID;
/// Schema version implemented.
pub const SCHEMA_VERSION: u16 = gm::SequenceMergeMapAnnounce::SCHEMA_VERSION;

wire_enum! {
    /// Which timestamp a timestamp merge rule reads.
    TimestampSource(TimestampSourceEnum): u8 in [g] { FrameDescriptor, SlotHeader }
}

wire_enum! {
    /// Kind of a sequence merge rule.
    MergeRuleType(MergeRuleTypeEnum): u8 in [g] { Offset, Window }
}

wire_enum! {
    /// Kind of a timestamp merge rule.
    MergeTimeRuleType(MergeTimeRuleTypeEnum): u8 in [g] { OffsetNs, WindowNs }
}

codec! {
    /// Sequence-aligned merge rules of an output stream.
    message SequenceMergeMapAnnounce<'a> = gm::SequenceMergeMapAnnounce {
        /// Output stream.
        out_stream_id: u32,
        /// Epoch of the map.
        epoch: u64,
        /// How long to wait for a missing input.
        stale_timeout_ns: Option<u64> = null(u64::MAX, stale_timeout_ns_opt),
    } groups {
        /// One rule per input stream.
        rules: SequenceMergeRule = "rules",
    }
}

codec! {
    /// How one input stream's sequence maps to the output's.
    entry SequenceMergeRule = gm::sequence_merge_map_announce::rulesEntry {
        /// Input stream.
        input_stream_id: u32,
        /// Offset or window rule.
        rule_type: MergeRuleType,
        /// Sequence offset (OFFSET rules).
        offset: Option<i32> = null(i32::MIN, offset_opt),
        /// Window size (WINDOW rules).
        window_size: Option<u32> = null(u32::MAX, window_size_opt),
    }
}

codec! {
    /// Asks for the sequence merge map of an output stream.
    message SequenceMergeMapRequest = gm::SequenceMergeMapRequest {
        /// Output stream.
        out_stream_id: u32,
        /// Epoch wanted.
        epoch: u64,
    }
}

codec! {
    /// Time-aligned merge rules of an output stream.
    message TimestampMergeMapAnnounce<'a> = gm::TimestampMergeMapAnnounce {
        /// Output stream.
        out_stream_id: u32,
        /// Epoch of the map.
        epoch: u64,
        /// How long to wait for a missing input.
        stale_timeout_ns: Option<u64> = null(u64::MAX, stale_timeout_ns_opt),
        /// Clock of the timestamps.
        clock_domain: ClockDomain,
        /// How late an input may be.
        lateness_ns: Option<u64> = null(u64::MAX, lateness_ns_opt),
    } groups {
        /// One rule per input stream.
        rules: TimestampMergeRule = "rules",
    }
}

codec! {
    /// How one input stream's timestamps map to the output's.
    entry TimestampMergeRule = gm::timestamp_merge_map_announce::rulesEntry {
        /// Input stream.
        input_stream_id: u32,
        /// Offset or window rule.
        rule_type: MergeTimeRuleType,
        /// Which timestamp to read.
        timestamp_source: TimestampSource,
        /// Time offset (OFFSET_NS rules).
        offset_ns: Option<i64> = null(i64::MIN, offset_ns_opt),
        /// Window (WINDOW_NS rules).
        window_ns: Option<u64> = null(u64::MAX, window_ns_opt),
    }
}

codec! {
    /// Asks for the timestamp merge map of an output stream.
    message TimestampMergeMapRequest = gm::TimestampMergeMapRequest {
        /// Output stream.
        out_stream_id: u32,
        /// Epoch wanted.
        epoch: u64,
    }
}
