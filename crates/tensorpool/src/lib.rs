//! tensorpool: zero-copy tensor transport between processes over shared memory and Aeron.
//!
//! | module | what |
//! |---|---|
//! | [`driver`] | the SHM driver (Driver Model v1.0): leases, epochs, files, announces |
//! | [`client`] | the driver client producers and consumers attach through |
//! | [`control`] | control-plane pieces: schema gating, bounded error texts, sinks |
//! | [`config`] | TOML + environment configuration with provenance |
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod config;
pub mod control;
pub mod driver;

pub use tensorpool_agent::monotonic_ns;
