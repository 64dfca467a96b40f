//! What the rate limiter counts, per mapping (one table). The fields with a kind are also
//! Aeron counters (`tp stat`, AeronStat) when the rate limiter runs on an Aeron client; their
//! key has the destination stream id, client id 0 and role 6.

use crate::counters::{Kind, Role};

/// `tensorpool:601`: source frames handed to the policy.
pub const RECEIVED: Kind = Kind::total(
    601,
    Role::RateLimiter,
    "received",
    "source frames handed to the policy (read intact from the source ring)",
);
/// `tensorpool:602`: frames republished on the destination stream.
pub const FORWARDED: Kind = Kind::total(
    602,
    Role::RateLimiter,
    "forwarded",
    "frames committed into the destination pool and announced by a FrameDescriptor",
);
/// `tensorpool:603`: frames the policy did not select.
pub const FILTERED: Kind = Kind::total(
    603,
    Role::RateLimiter,
    "filtered",
    "frames not selected: not a multiple of the decimation, or replaced by a newer frame within the rate interval",
);
/// `tensorpool:604`: source frames overwritten while being copied.
pub const TORN: Kind = Kind::total(
    604,
    Role::RateLimiter,
    "torn",
    "source frames overwritten while copied (recheck failed): never forwarded",
);
/// `tensorpool:605`: frames no destination pool holds.
pub const NO_POOL: Kind = Kind::total(
    605,
    Role::RateLimiter,
    "no pool",
    "frames dropped: no destination pool holds the payload (RateLimiter §5)",
);
/// `tensorpool:606`: destination claims refused.
pub const CLAIM_FAILED: Kind = Kind::total(
    606,
    Role::RateLimiter,
    "claim failed",
    "frames dropped: the destination slot could not be claimed at once (RateLimiter §5)",
);
/// `tensorpool:607`: source epoch changes.
pub const EPOCH_CHANGES: Kind = Kind::total(
    607,
    Role::RateLimiter,
    "epoch changes",
    "source epoch changes (remap boundaries: rate timer reset, held frame dropped)",
);
/// `tensorpool:608`: frames dropped at a remap boundary.
pub const EPOCH_DROPS: Kind = Kind::total(
    608,
    Role::RateLimiter,
    "epoch drops",
    "held frames dropped because the source epoch changed (RateLimiter §7)",
);
/// `tensorpool:609`: frames not after the last forwarded sequence.
pub const STALE: Kind = Kind::total(
    609,
    Role::RateLimiter,
    "stale",
    "frames whose sequence is not after the last one forwarded (dropped)",
);

/// Every rate limiter counter kind.
pub const COUNTER_KINDS: &[&Kind] = &[
    &RECEIVED,
    &FORWARDED,
    &FILTERED,
    &TORN,
    &NO_POOL,
    &CLAIM_FAILED,
    &EPOCH_CHANGES,
    &EPOCH_DROPS,
    &STALE,
];

counters! {
    /// One mapping's counters since start.
    pub struct Counters, cells RateLimiterCells {
        /// Source frames handed to the policy.
        received = RECEIVED,
        /// Frames republished on the destination stream.
        forwarded = FORWARDED,
        /// Frames the policy did not select.
        filtered = FILTERED,
        /// Source frames overwritten while copied.
        torn = TORN,
        /// Frames no destination pool holds.
        no_pool = NO_POOL,
        /// Destination claims refused.
        claim_failed = CLAIM_FAILED,
        /// Source epoch changes.
        epoch_changes = EPOCH_CHANGES,
        /// Held frames dropped at a remap boundary.
        epoch_drops = EPOCH_DROPS,
        /// Frames not after the last forwarded sequence.
        stale = STALE,
        /// Frames held for the next rate slot (copied out of the source ring).
        held,
        /// Destination producers rebuilt after a source epoch change.
        dest_rebuilds,
        /// Source metadata versions forwarded to the destination (RateLimiter §6).
        meta_forwarded,
    }
}
