//! Join barrier and merge maps (Join Barrier spec v1.0): line up frames of several input
//! streams, by sequence, by timestamp, or as the latest value of each.
//!
//! [`JoinBarrier`] is the transport-free core a join stage drives; [`SequenceMergeMap`] and
//! [`TimestampMergeMap`] are the validated rules an authority announces (schema 903).
//! [`JoinStage`] drives a barrier from N consumers and hands joined sets of frames to the
//! application; [`JoinOutput`] republishes a set with its `TraceLinkSet`. docs/join.md walks
//! through all of them.

mod barrier;
mod map;
mod stage;

pub use barrier::{
    DEFAULT_MAP_REQUEST_INTERVAL_NS, InputRejection, InputSet, JoinBarrier, JoinCounters, JoinMode,
    JoinStatus, LatestOrder, MapRequest, Readiness, Stamp,
};
pub use map::{
    MAX_JOIN_INPUTS, MergeMapError, SequenceInput, SequenceMergeMap, SequenceRule, TimestampInput,
    TimestampMergeMap, TimestampRule,
};
pub use stage::{
    DEFAULT_HISTORY, DEFAULT_MAX_LAG, JoinKey, JoinOutput, JoinOutputCounters, JoinStage,
    JoinStageCounters, JoinStageError, JoinedSet, MAX_STAGE_INPUTS, PublishError,
};
