//! Producer counters: one table. Every field is a plain integer of the single writer (read
//! them any time with [`super::Producer::counters`]); the fields with a kind are also Aeron
//! counters (`tp stat`, AeronStat) keyed by stream id and producer id (see
//! [`crate::counters`]).

use crate::counters::{Kind, Role};

/// `tensorpool:101`: frames committed.
pub const FRAMES: Kind = Kind::total(101, Role::Producer, "frames", "frames committed");
/// `tensorpool:102`: payload bytes committed.
pub const BYTES: Kind = Kind::total(102, Role::Producer, "bytes", "payload bytes committed");
/// `tensorpool:103`: frames dropped because no pool's stride holds them (Wire Spec §9).
pub const DROPS_NO_POOL: Kind = Kind::total(
    103,
    Role::Producer,
    "drops no-pool-fits",
    "frames dropped: no pool's stride holds them",
);
/// `tensorpool:104`: descriptors Aeron refused with back pressure (or an admin action).
pub const DESCRIPTOR_BACK_PRESSURE: Kind = Kind::total(
    104,
    Role::Producer,
    "descriptor back-pressured",
    "descriptors refused by back pressure or an admin action",
);
/// `tensorpool:105`: descriptors not sent because nobody subscribes.
pub const DESCRIPTOR_NOT_CONNECTED: Kind = Kind::total(
    105,
    Role::Producer,
    "descriptor not-connected",
    "descriptors not sent: no subscriber",
);
/// `tensorpool:108`: stalls of the shared descriptor stream (every descriptor refused with
/// back pressure for longer than `producer.stall_threshold_ms`), one per stall.
pub const DESCRIPTOR_STALLS: Kind = Kind::total(
    108,
    Role::Producer,
    "descriptor stalls",
    "shared descriptor stream held back longer than the stall threshold",
);
/// `tensorpool:106`: the epoch being written.
pub const EPOCH: Kind = Kind::gauge(106, Role::Producer, "epoch", "current epoch");
/// `tensorpool:107`: consumers tracked (heard from within the staleness window).
pub const CONSUMERS: Kind = Kind::gauge(
    107,
    Role::Producer,
    "consumers",
    "consumers connected (hello or QoS within the staleness window)",
);

/// Every producer counter kind.
pub const COUNTER_KINDS: &[&Kind] = &[
    &FRAMES,
    &BYTES,
    &DROPS_NO_POOL,
    &DESCRIPTOR_BACK_PRESSURE,
    &DESCRIPTOR_STALLS,
    &DESCRIPTOR_NOT_CONNECTED,
    &EPOCH,
    &CONSUMERS,
];

counters! {
    /// What the producer did since it started.
    pub struct ProducerCounters, cells ProducerCells {
        /// Frames committed (seqlock committed, descriptor attempted).
        committed = FRAMES,
        /// Payload bytes committed.
        bytes = BYTES,
        /// Claims dropped without commit (slot left in progress, no descriptor).
        aborted,
        /// Frames dropped because no pool's stride holds them (Wire Spec §9).
        drops_no_pool = DROPS_NO_POOL,
        /// Descriptors published on the shared stream.
        descriptors_sent,
        /// Descriptors published on per-consumer streams.
        descriptors_per_consumer,
        /// Descriptors skipped on a per-consumer stream by its `max_rate_hz` cap.
        descriptors_rate_capped,
        /// Descriptors Aeron refused with back pressure or an admin action (shared or
        /// per-consumer stream); the frame stays committed.
        descriptors_back_pressured = DESCRIPTOR_BACK_PRESSURE,
        /// Descriptors not sent because no one subscribes to the stream.
        descriptors_not_connected = DESCRIPTOR_NOT_CONNECTED,
        /// Stalls of the shared descriptor stream: back pressure on every descriptor for
        /// longer than `stall_threshold`, counted (and logged) once per stall.
        descriptor_stalls = DESCRIPTOR_STALLS,
        /// Descriptors Aeron refused otherwise (publication closed, position exhausted).
        descriptor_failures,
        /// `FrameProgress` messages published.
        progress_sent,
        /// `ShmPoolAnnounce` messages published.
        announces_sent,
        /// `QosProducer` messages published.
        qos_sent,
        /// `DataSourceAnnounce` messages published.
        data_source_sent,
        /// `DataSourceMeta` messages published.
        meta_sent,
        /// Meta blob messages (announce, chunks, complete) published.
        meta_blob_messages,
        /// `ConsumerHello` messages received for our stream.
        hellos,
        /// `QosConsumer` messages received for our stream.
        consumer_qos,
        /// `ConsumerConfig` messages sent.
        configs_sent,
        /// `ConsumerConfig` messages for our stream from a supervisor (another publication),
        /// applied: their per-consumer streams opened, no answer of our own.
        supervisor_configs,
        /// `ConsumerHello` messages left to the supervisor (not answered: supervised).
        hellos_left_to_supervisor,
        /// Per-consumer streams granted (registered by the media driver).
        per_consumer_granted,
        /// Per-consumer stream requests declined (invalid, disabled, full or failed).
        per_consumer_declined,
        /// Consumers removed as stale (their per-consumer publications closed).
        consumers_stale,
        /// Consumers tracked now (a level).
        consumers = CONSUMERS,
        /// Epochs installed (created standalone, or granted by the driver).
        epochs,
        /// The epoch being written now (a level; 0 while paused).
        epoch = EPOCH,
        /// Times the producer paused (driver mode: lease revoked or lost, driver gone).
        pauses,
        /// Other control messages Aeron refused to send.
        send_failures,
    }
}
