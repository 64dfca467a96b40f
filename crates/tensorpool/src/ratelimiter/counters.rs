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

/// `tensorpool:610`: `FrameProgress` messages forwarded (RateLimiter §6.1).
pub const PROGRESS_FORWARDED: Kind = Kind::total(
    610,
    Role::RateLimiter,
    "progress forwarded",
    "FrameProgress of the source republished on dest_control_stream_id (streamId and epoch the destination's)",
);
/// `tensorpool:611`: QoS messages forwarded (RateLimiter §6.1).
pub const QOS_FORWARDED: Kind = Kind::total(
    611,
    Role::RateLimiter,
    "qos forwarded",
    "QosProducer / QosConsumer of the source republished on dest_qos_stream_id (streamId the destination's)",
);

/// `tensorpool:612`: the rate in force.
pub const RATE_HZ: Kind = Kind::gauge(
    612,
    Role::RateLimiter,
    "rate hz",
    "max_rate_hz in force (0: unlimited or decimation): the configured one, or the sole consumer's ConsumerHello.max_rate_hz with per_consumer (RL §4)",
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
    &PROGRESS_FORWARDED,
    &QOS_FORWARDED,
    &RATE_HZ,
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
        /// Source `FrameProgress` messages republished for the destination (RL §6.1).
        progress_forwarded = PROGRESS_FORWARDED,
        /// Source QoS messages republished for the destination (RL §6.1).
        qos_forwarded = QOS_FORWARDED,
        /// The `max_rate_hz` in force (0: unlimited or decimation).
        rate_hz = RATE_HZ,
        /// Times the rate in force changed because of the sole consumer's hello (RL §4).
        consumer_rate_changes,
        /// Source `FrameProgress` messages not forwarded: source epoch not (yet) the one of
        /// the frames read, no destination, a sequence the policy never forwards, or the
        /// destination control publication refused it.
        progress_dropped,
        /// Source QoS messages the destination QoS publication refused.
        qos_dropped,
        /// Times the source went stale (its consumer unmapped): the destination was closed
        /// until the source comes back (RL §7).
        source_stale,
        /// Frames held for the next rate slot (copied out of the source ring).
        held,
        /// Destination producers rebuilt after a source epoch change.
        dest_rebuilds,
        /// Source metadata versions forwarded to the destination (RateLimiter §6).
        meta_forwarded,
    }
}
