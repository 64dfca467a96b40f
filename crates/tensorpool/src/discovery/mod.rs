//! Discovery v1.0: find streams by id, producer, data-source name or tags.
//!
//! [`DiscoveryRegistry`] is the transport-free core of a discovery provider: it indexes the
//! announces it is given and answers requests (advisory only: it grants nothing, a client
//! still attaches through the driver a result names, DS §3). [`DiscoveryConfig`] reads the
//! C implementation's `[discovery]` table. docs/discovery.md describes both.

mod client;
mod config;
mod provider;
mod registry;

pub use client::{ClientEndpoints, Found, Query, QueryError, query};
pub use config::{
    DEFAULT_ANNOUNCE_PERIOD_MS, DEFAULT_MAX_RESULTS, DEFAULT_REQUEST_STREAM_ID, DiscoveryConfig,
    RegistryEndpoint,
};
pub use provider::{
    DiscoveryProvider, MAX_RESPONDERS, ProviderCounters, RESPONDER_IDLE, RESPONSE_TIMEOUT,
};
pub use registry::{
    AnnounceOutcome, Answer, Authority, DiscoveryRegistry, ERROR_MESSAGE_MAX, HEADER_SLOT_BYTES,
    MAX_DIMS, PoolInfo, RegistryCounters, StreamEntry,
};
