//! Schema 904 (`shm.tensorpool.tracelink`): which parent frames a derived frame came from.

use crate::generated::tracelink as gt;

/// Schema id of the trace-link schema.
pub const SCHEMA_ID: u16 = gt::TraceLinkSet::SCHEMA_ID;
/// Schema version implemented.
pub const SCHEMA_VERSION: u16 = gt::TraceLinkSet::SCHEMA_VERSION;

codec! {
    /// Parents of a derived frame.
    message TraceLinkSet<'a> = gt::TraceLinkSet {
        /// Stream of the derived frame.
        stream_id: u32,
        /// Region generation of the derived frame.
        epoch: u64,
        /// Sequence number of the derived frame.
        seq: u64,
        /// Trace id of the derived frame.
        trace_id: u64,
    } groups {
        /// Trace ids of the parents (at least one, non-zero, unique: checked by the
        /// trace-link role, not the codec).
        parents: Parent = "parents",
    }
}

codec! {
    /// One parent of a derived frame.
    entry Parent = gt::trace_link_set::parentsEntry {
        /// Trace id of the parent frame.
        trace_id: u64,
    }
}
