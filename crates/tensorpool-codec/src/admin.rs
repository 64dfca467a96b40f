//! Schema 990 (`shm.tensorpool.admin`): **our** extension, not part of the SHM Tensor Pool
//! specifications. Read-only status queries of the SHM driver (`tp driver status`,
//! `tp driver leases`, `tp driver streams`), carried on the driver control stream.
//!
//! Requests carry a `correlation_id` that the response echoes (responses are broadcast like
//! every driver response). The driver sends these responses only in answer to a request of
//! this schema; peers that do not know the schema ignore it because every receiver gates on
//! the schema id before the template id.

pub use crate::driver::Role;
use crate::generated::admin as ga;
use crate::generated::admin::types as g;

/// Schema id of the admin schema (ours; 990).
pub const SCHEMA_ID: u16 = ga::DriverStatusRequest::SCHEMA_ID;
/// Schema version implemented.
pub const SCHEMA_VERSION: u16 = ga::DriverStatusRequest::SCHEMA_VERSION;

const TEXT_MAX: usize = ga::caps::varAsciiEncoding;

wire_enum! {
    /// Lifecycle state of the driver.
    DriverState(DriverStateEnum): u8 in [g] { Running, Draining }
}

codec! {
    /// Asks the driver for its status.
    message DriverStatusRequest = ga::DriverStatusRequest {
        /// Chosen by the requester; echoed in the response.
        correlation_id: i64,
    }
}

codec! {
    /// The driver's status and counters.
    message DriverStatusResponse<'a> = ga::DriverStatusResponse {
        /// Correlation id of the request.
        correlation_id: i64,
        /// Running or draining.
        state: DriverState,
        /// Process id of the driver.
        pid: u64,
        /// When the driver started (its monotonic clock).
        start_timestamp_ns: u64,
        /// The driver's clock when it answered.
        now_ns: u64,
        /// Streams managed.
        stream_count: u32,
        /// Active leases.
        lease_count: u32,
        /// Active producer leases.
        producer_count: u32,
        /// Active consumer leases.
        consumer_count: u32,
        /// Attach requests granted.
        attaches_granted: u64,
        /// Attach requests rejected.
        attaches_rejected: u64,
        /// Valid keepalives received.
        keepalives: u64,
        /// Leases that expired.
        leases_expired: u64,
        /// Leases revoked by the driver.
        leases_revoked: u64,
        /// Leases detached by their client.
        leases_detached: u64,
        /// Epoch increments.
        epoch_bumps: u64,
        /// `ShmPoolAnnounce` messages sent.
        announces_sent: u64,
        /// Outbound messages that could not be published.
        messages_dropped: u64,
    } data {
        /// `driver.instance_id`.
        instance_id: TEXT_MAX,
        /// `shm.base_dir`.
        shm_base_dir: TEXT_MAX,
    }
}

codec! {
    /// Asks the driver for its active leases.
    message DriverLeasesRequest = ga::DriverLeasesRequest {
        /// Chosen by the requester; echoed in the response.
        correlation_id: i64,
    }
}

codec! {
    /// The driver's active leases.
    message DriverLeasesResponse<'a> = ga::DriverLeasesResponse {
        /// Correlation id of the request.
        correlation_id: i64,
        /// The driver's clock when it answered.
        now_ns: u64,
    } groups {
        /// One entry per active lease.
        leases: LeaseEntry = "leases",
    }
}

codec! {
    /// One active lease.
    entry LeaseEntry = ga::driver_leases_response::leasesEntry {
        /// Lease id.
        lease_id: u64,
        /// Stream of the lease.
        stream_id: u32,
        /// Client holding it.
        client_id: u32,
        /// Producer or consumer.
        role: Role,
        /// Node id assigned with the lease.
        node_id: Option<u32> = null(u32::MAX, node_id_opt),
        /// Stream epoch when the lease was granted.
        epoch: u64,
        /// When the lease was granted (driver clock).
        attached_timestamp_ns: u64,
        /// When the lease expires without a keepalive (driver clock).
        expiry_timestamp_ns: u64,
    }
}

codec! {
    /// Asks the driver for the streams it manages.
    message DriverStreamsRequest = ga::DriverStreamsRequest {
        /// Chosen by the requester; echoed in the response.
        correlation_id: i64,
    }
}

codec! {
    /// The streams the driver manages.
    message DriverStreamsResponse<'a> = ga::DriverStreamsResponse {
        /// Correlation id of the request.
        correlation_id: i64,
    } groups {
        /// One entry per stream.
        streams: StreamEntry<'a> = "streams",
    }
}

codec! {
    /// One stream.
    entry StreamEntry<'a> = ga::driver_streams_response::streamsEntry {
        /// Stream id.
        stream_id: u32,
        /// Live epoch (`None` when the stream has no regions).
        epoch: Option<u64> = null(u64::MAX, epoch_opt),
        /// SHM layout version.
        layout_version: u32,
        /// Header ring slots.
        header_nslots: u32,
        /// Payload pools.
        pool_count: u16,
        /// Client id of the attached producer.
        producer_client_id: Option<u32> = null(u32::MAX, producer_client_id_opt),
        /// Lease id of the attached producer.
        producer_lease_id: Option<u64> = null(u64::MAX, producer_lease_id_opt),
        /// Active consumer leases.
        consumer_count: u32,
        /// Created on demand (not in the configuration).
        dynamic: bool,
    } data {
        /// Profile name.
        profile: TEXT_MAX,
        /// Region URI of the live header ring (empty when none).
        header_region_uri: TEXT_MAX,
    }
}
