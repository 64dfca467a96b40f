//! tensorpool: zero-copy tensor transport between processes over shared memory and Aeron.
//!
//! | module | what |
//! |---|---|
//! | [`bridge`] | the Aeron UDP bridge role: frames chunked between hosts, re-materialized |
//! | [`driver`] | the SHM driver (Driver Model v1.0): leases, epochs, files, announces |
//! | [`chunks`] | `BridgeFrameChunk` transport: chunking, per-chunk checks, assembly (bridge, consumer fallback) |
//! | [`client`] | the driver client producers and consumers attach through |
//! | [`control`] | control-plane pieces: schema gating, bounded error texts, sinks |
//! | [`config`] | TOML + environment configuration with provenance |
//! | [`producer`] | the producer role: claim -> write -> commit, descriptors, announces, QoS |
//! | [`consumer`] | the consumer role: announces, mapping, borrowed [`frame::Frame`] views |
//! | [`context`] | the Aeron connection (embedded media driver or external) roles share |
//! | [`counters`] | role counters, their Aeron counters (type ids, key layout) |
//! | [`frame`] | dtypes, tensor specs and the frame view contract |
//! | [`meta`] | data-source metadata types the producer and consumer share |
//! | [`supervisor`] | the supervisor role: liveness, QoS aggregation, `ConsumerConfig` policies |
//! | [`ratelimiter`] | the rate limiter / decimator: rate-limited or every-Nth copies of streams |
//! | [`streams`] | default channels and stream ids |
//! | [`prelude`] | `use tensorpool::prelude::*;` |
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[macro_use]
pub mod counters;

pub mod bridge;
pub mod chunks;
pub mod client;
pub mod config;
pub mod consumer;
pub mod context;
pub mod control;
pub mod discovery;
pub mod driver;
pub mod frame;
pub mod join;
pub mod meta;
pub mod prelude;
pub mod producer;
pub mod ratelimiter;
pub mod runner;
pub mod streams;
pub mod supervisor;
pub mod tracelink;

pub use tensorpool_agent::monotonic_ns;

/// Every counter kind of every role (each role's `counters.rs` declares its own table; the
/// counters registry, [`counters`], takes them as data and imports no role).
pub const COUNTER_KINDS: &[&[&counters::Kind]] = &[
    producer::counters::COUNTER_KINDS,
    consumer::counters::COUNTER_KINDS,
    driver::counters::COUNTER_KINDS,
    supervisor::counters::COUNTER_KINDS,
    bridge::counters::COUNTER_KINDS,
    ratelimiter::counters::COUNTER_KINDS,
];
