//! The Aeron UDP bridge (Bridge Spec v1.1): a sender on one host reads committed frames of a
//! source stream and sends them in chunks over Aeron UDP; a receiver on another host
//! reassembles them and re-materializes each into its own driver-attached destination
//! stream.
//!
//! | file | concern |
//! |---|---|
//! | `config.rs` | [`BridgeConfig`]: the `[bridge]` table and `[[mappings]]`, environment, validation |
//! | `counters.rs` | what it counts ([`Counters`]) |
pub mod config;
pub mod counters;

pub use config::{BridgeConfig, Mapping};
pub use counters::Counters;
