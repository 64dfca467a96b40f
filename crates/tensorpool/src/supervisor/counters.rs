//! What the supervisor counts (one table). The fields with a kind are also Aeron counters
//! (`tp stat`, AeronStat) when the supervisor runs on an Aeron client; their key has stream
//! id 0 and client id 0 (supervisor-wide), role 5.

use crate::counters::{Kind, Role};

/// `tensorpool:501`: `ConsumerHello` messages handled.
pub const HELLOS: Kind = Kind::total(501, Role::Supervisor, "hellos", "ConsumerHello handled");
/// `tensorpool:502`: `ConsumerConfig` messages sent.
pub const CONFIGS_SENT: Kind = Kind::total(
    502,
    Role::Supervisor,
    "configs sent",
    "ConsumerConfig messages sent",
);
/// `tensorpool:503`: consumers tracked now.
pub const CONSUMERS: Kind = Kind::gauge(
    503,
    Role::Supervisor,
    "consumers",
    "consumers tracked (hello or QoS within consumer_stale_ms)",
);
/// `tensorpool:504`: consumers refused: the table (`consumer_capacity`) was full.
pub const CONSUMERS_REFUSED: Kind = Kind::total(
    504,
    Role::Supervisor,
    "consumers refused",
    "consumers not tracked: consumer_capacity reached",
);
/// `tensorpool:505`: consumers gone stale (their per-consumer ids reclaimed).
pub const CONSUMERS_STALE: Kind = Kind::total(
    505,
    Role::Supervisor,
    "consumers stale",
    "consumers dropped after consumer_stale_ms without hello or QoS",
);
/// `tensorpool:506`: per-consumer stream ids assigned.
pub const ASSIGNMENTS: Kind = Kind::total(
    506,
    Role::Supervisor,
    "assignments",
    "per-consumer descriptor/control stream ids assigned",
);
/// `tensorpool:507`: per-consumer stream requests declined.
pub const DECLINES: Kind = Kind::total(
    507,
    Role::Supervisor,
    "declines",
    "per-consumer stream requests declined (disabled, exhausted, taken, invalid)",
);
/// `tensorpool:508`: consumer-id collisions seen.
pub const COLLISIONS: Kind = Kind::total(
    508,
    Role::Supervisor,
    "collisions",
    "messages from a second source using a live consumer's id",
);
/// `tensorpool:509`: configs that forced a mode.
pub const FORCED_MODE: Kind = Kind::total(
    509,
    Role::Supervisor,
    "forced mode",
    "ConsumerConfig sent with a mode other than the one requested",
);
/// `tensorpool:510`: configs that turned SHM off.
pub const FORCED_NO_SHM: Kind = Kind::total(
    510,
    Role::Supervisor,
    "forced no shm",
    "ConsumerConfig sent with use_shm = false to a consumer that supports SHM",
);
/// `tensorpool:511`: producers alive now.
pub const PRODUCERS: Kind = Kind::gauge(
    511,
    Role::Supervisor,
    "producers",
    "streams whose producer announced within producer_stale_ms",
);
/// `tensorpool:512`: producers that went stale.
pub const PRODUCERS_STALE: Kind = Kind::total(
    512,
    Role::Supervisor,
    "producers stale",
    "producers without announce or QoS for producer_stale_ms",
);

/// Every supervisor counter kind.
pub const COUNTER_KINDS: &[&Kind] = &[
    &HELLOS,
    &CONFIGS_SENT,
    &CONSUMERS,
    &CONSUMERS_REFUSED,
    &CONSUMERS_STALE,
    &ASSIGNMENTS,
    &DECLINES,
    &COLLISIONS,
    &FORCED_MODE,
    &FORCED_NO_SHM,
    &PRODUCERS,
    &PRODUCERS_STALE,
];

counters! {
    /// Supervisor counters since start.
    pub struct Counters, cells SupervisorCells {
        /// `ConsumerHello` handled.
        hellos = HELLOS,
        /// `ConsumerConfig` sent.
        configs_sent = CONFIGS_SENT,
        /// Consumers tracked now (a level).
        consumers = CONSUMERS,
        /// Consumers refused: `consumer_capacity` reached.
        consumers_refused = CONSUMERS_REFUSED,
        /// Consumers dropped as stale.
        consumers_stale = CONSUMERS_STALE,
        /// Per-consumer stream ids assigned.
        assignments = ASSIGNMENTS,
        /// Per-consumer stream requests declined.
        declines = DECLINES,
        /// Consumer-id collisions.
        collisions = COLLISIONS,
        /// Configs forcing a mode.
        forced_mode = FORCED_MODE,
        /// Configs forcing SHM off.
        forced_no_shm = FORCED_NO_SHM,
        /// Producers alive now (a level).
        producers = PRODUCERS,
        /// Producers gone stale.
        producers_stale = PRODUCERS_STALE,
        /// Producers not tracked: the producer table (`consumer_capacity` streams) was full.
        producers_refused,
        /// `ShmPoolAnnounce` received.
        announces,
        /// `DataSourceAnnounce` received.
        data_source_announces,
        /// `QosConsumer` received.
        qos_consumer,
        /// `QosProducer` received.
        qos_producer,
        /// Hellos with an invalid per-consumer request (channel without id or id without
        /// channel, W §10.1.2): the request is treated as absent and declined.
        invalid_requests,
        /// Inbound messages of the wire schema that could not be decoded (or of a newer
        /// version).
        malformed,
        /// Outbound messages that could not be published.
        messages_dropped,
    }
}
