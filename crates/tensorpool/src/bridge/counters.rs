//! What the bridge counts (one table). The fields with a kind are also Aeron counters
//! (`tp stat`, AeronStat) when the bridge runs on an Aeron client; their key has stream id 0
//! and client id 0 (bridge-wide), role 4.

use crate::counters::{Kind, Role};

/// `tensorpool:401`: frames sent whole (every chunk published).
pub const FRAMES_SENT: Kind = Kind::total(
    401,
    Role::Bridge,
    "frames sent",
    "frames whose every chunk was published",
);
/// `tensorpool:402`: chunks published.
pub const CHUNKS_SENT: Kind = Kind::total(402, Role::Bridge, "chunks sent", "chunks published");
/// `tensorpool:403`: frames dropped by the sender: back pressure or not connected.
pub const SEND_DROPS: Kind = Kind::total(
    403,
    Role::Bridge,
    "send drops",
    "frames dropped by the sender: payload publication refused a chunk",
);
/// `tensorpool:404`: frames abandoned: overwritten in SHM while being sent or pending.
pub const SEND_ABANDONED: Kind = Kind::total(
    404,
    Role::Bridge,
    "send abandoned",
    "frames abandoned by the sender: overwritten in SHM while being sent or pending",
);
/// `tensorpool:405`: frames re-materialized and published on the destination.
pub const FRAMES_RECEIVED: Kind = Kind::total(
    405,
    Role::Bridge,
    "frames received",
    "frames assembled and committed into the destination stream",
);
/// `tensorpool:406`: chunks dropped by the receiver (a field broke a rule).
pub const CHUNK_DROPS: Kind = Kind::total(
    406,
    Role::Bridge,
    "chunk drops",
    "chunks dropped by the receiver: invalid field, unknown mapping, epoch, no announce",
);
/// `tensorpool:407`: frames dropped by the receiver while assembling.
pub const FRAME_DROPS: Kind = Kind::total(
    407,
    Role::Bridge,
    "frame drops",
    "frames dropped by the receiver: conflict, CRC, header, no local pool, evicted",
);
/// `tensorpool:408`: frames whose assembly timed out.
pub const ASSEMBLY_TIMEOUTS: Kind = Kind::total(
    408,
    Role::Bridge,
    "assembly timeouts",
    "frames dropped incomplete after bridge.assembly_timeout_ms",
);
/// `tensorpool:409`: CRC32C mismatches.
pub const CRC_ERRORS: Kind = Kind::total(
    409,
    Role::Bridge,
    "crc errors",
    "chunks whose CRC32C did not match (integrity_crc32c)",
);
/// `tensorpool:410`: source announces forwarded.
pub const ANNOUNCES_FORWARDED: Kind = Kind::total(
    410,
    Role::Bridge,
    "announces forwarded",
    "source ShmPoolAnnounce forwarded on the bridge control channel",
);
/// `tensorpool:411`: pending frames (the payload publication's window could not take them
/// whole) superseded by a newer frame of their mapping before the window took them.
pub const SEND_WINDOW_SKIPS: Kind = Kind::total(
    411,
    Role::Bridge,
    "send window skips",
    "pending frames (window full) superseded by a newer frame: never sent",
);

/// Every bridge counter kind.
pub const COUNTER_KINDS: &[&Kind] = &[
    &FRAMES_SENT,
    &CHUNKS_SENT,
    &SEND_DROPS,
    &SEND_ABANDONED,
    &FRAMES_RECEIVED,
    &CHUNK_DROPS,
    &FRAME_DROPS,
    &ASSEMBLY_TIMEOUTS,
    &CRC_ERRORS,
    &ANNOUNCES_FORWARDED,
    &SEND_WINDOW_SKIPS,
];

counters! {
    /// Bridge counters since start (sender and receiver sides of every mapping).
    pub struct Counters, cells BridgeCells {
        /// Frames sent whole.
        frames_sent = FRAMES_SENT,
        /// Chunks published.
        chunks_sent = CHUNKS_SENT,
        /// Frames dropped by the sender (publication refused a chunk after the window
        /// check: not connected, or back pressure the window did not foresee).
        send_drops = SEND_DROPS,
        /// Frames abandoned: overwritten while being sent, or while pending.
        send_abandoned = SEND_ABANDONED,
        /// Frames committed into a destination stream.
        frames_received = FRAMES_RECEIVED,
        /// Chunks dropped by the receiver.
        chunk_drops = CHUNK_DROPS,
        /// Frames dropped by the receiver.
        frame_drops = FRAME_DROPS,
        /// Frames dropped incomplete after the assembly timeout.
        assembly_timeouts = ASSEMBLY_TIMEOUTS,
        /// CRC32C mismatches.
        crc_errors = CRC_ERRORS,
        /// Source announces forwarded.
        announces_forwarded = ANNOUNCES_FORWARDED,
        /// Pending frames (the payload publication's window could not take them whole)
        /// superseded by a newer frame of their mapping before the window took them (none
        /// of their chunks sent; newest wins).
        send_window_skips = SEND_WINDOW_SKIPS,
        /// Frames too large to send (more than 65535 chunks or above max_payload_bytes).
        send_too_large,
        /// Forwarded announces received (receiver).
        announces_received,
        /// Duplicate chunks ignored.
        duplicates,
        /// Frames dropped: their header failed validation (§6).
        header_drops,
        /// Frames dropped: no destination pool fits, or the destination refused the claim.
        dest_drops,
        /// In-flight assemblies dropped on a source epoch change.
        epoch_drops,
        /// Chunks dropped: received before any forwarded announce.
        no_announce_drops,
        /// Frames dropped: their source `seq` was below the destination's next sequence
        /// (never written under another sequence, §6 step 9).
        seq_behind_drops,
        /// Source epoch changes seen in forwarded announces (receiver, §8).
        source_epoch_changes,
        /// Destinations moved to a new local epoch (re-attached) after a source epoch
        /// change (receiver, §8).
        dest_remaps,
        /// Destination re-attaches that failed (retried; frames dropped meanwhile).
        dest_remap_failures,
        /// `DataSourceAnnounce` / `DataSourceMeta` forwarded (sender).
        metadata_forwarded,
        /// Forwarded metadata republished locally, stream id rewritten (receiver).
        metadata_republished,
        /// `FrameProgress` / QoS forwarded from a source control stream (sender).
        control_forwarded,
        /// Forwarded progress / QoS republished on a destination control stream (receiver).
        control_republished,
        /// Messages on the control channel that were not of a known schema.
        malformed,
    }
}
