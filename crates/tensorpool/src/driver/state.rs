//! The state types [`super::DriverCore`] owns and shows: where the driver is in its life
//! ([`Lifecycle`]) and the read-only view of a stream ([`StreamInfo`]). The tables themselves
//! live with their concern: leases (`leases.rs`), streams (`streams.rs`), files (`files.rs`).

use tensorpool_codec::driver::ShutdownReason;

use super::streams::ProducerRef;

/// Where the driver is in its life (Driver Model §4.13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lifecycle {
    /// Granting leases.
    Running,
    /// Shutting down: no new leases; `ShmDriverShutdown` goes out at `deadline_ns`.
    Draining {
        /// Reason for the shutdown (mirrored in `ShmDriverShutdown`).
        reason: ShutdownReason,
        /// Text for `ShmDriverShutdown.errorMessage`.
        message: String,
        /// When the drain period ends.
        deadline_ns: u64,
    },
    /// `ShmDriverShutdown` was sent; the agent terminates.
    Stopped,
}

/// A read-only view of one stream (for tests, the admin schema and tools).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// Stream id.
    pub stream_id: u32,
    /// Profile name.
    pub profile: String,
    /// Created on demand.
    pub dynamic: bool,
    /// Live epoch (`None`: no regions right now).
    pub epoch: Option<u64>,
    /// Header ring URI of the live epoch.
    pub header_uri: Option<String>,
    /// Header ring slots.
    pub header_nslots: u32,
    /// Payload pools.
    pub pool_count: u16,
    /// Attached producer.
    pub producer: Option<ProducerRef>,
    /// Attached consumers.
    pub consumers: u32,
}
