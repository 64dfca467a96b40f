//! Schema 901 (`shm.tensorpool.driver`): leases and lifecycle between clients and the SHM
//! driver. Driver responses are broadcast; clients match them by `correlation_id` or
//! `lease_id`.

use crate::generated::admin::types as ag;
use crate::generated::driver as gd;
use crate::generated::driver::types as g;
pub use crate::wire::{PayloadPool, ResponseCode};

/// Schema id of the driver schema.
pub const SCHEMA_ID: u16 = gd::ShmAttachRequest::SCHEMA_ID;
/// Schema version implemented.
pub const SCHEMA_VERSION: u16 = gd::ShmAttachRequest::SCHEMA_VERSION;

/// Longest `error_message` a sender should put in a driver message (Driver Model). The
/// codec enforces only the schema's cap ([`crate::VAR_DATA_MAX_LEN`]); senders truncate to
/// this.
pub const ERROR_MESSAGE_MAX_LEN: usize = 1024;

const TEXT_MAX: usize = gd::caps::varAsciiEncoding;

// The payload pool entry is shared with the wire schema: same layout, checked here.
const _: () = {
    use gd::shm_attach_response::payloadPoolsEntry as D;
    use std::mem::offset_of;
    type W = crate::generated::wire::shm_pool_announce::payloadPoolsEntry;
    assert!(size_of::<D>() == size_of::<W>());
    assert!(offset_of!(D, pool_id) == offset_of!(W, pool_id));
    assert!(offset_of!(D, pool_nslots) == offset_of!(W, pool_nslots));
    assert!(offset_of!(D, stride_bytes) == offset_of!(W, stride_bytes));
};

wire_enum! {
    /// Whether the client requires hugepage-backed regions.
    HugepagesPolicy(HugepagesPolicyEnum): u8 in [g] { Unspecified, Standard, Hugepages }
}

wire_enum! {
    /// Role of a client.
    Role(RoleEnum): u8 in [g, ag] { Producer, Consumer }
}

wire_enum! {
    /// What a producer's attach may do when the stream has no regions yet.
    PublishMode(PublishModeEnum): u8 in [g] { RequireExisting, ExistingOrCreate }
}

wire_enum! {
    /// Why a lease ended.
    LeaseRevokeReason(LeaseRevokeReasonEnum): u8 in [g] { Detached, Expired, Revoked }
}

wire_enum! {
    /// Why the driver shuts down.
    ShutdownReason(ShutdownReasonEnum): u8 in [g] { Normal, Admin, Error }
}

codec! {
    /// Asks the driver for a lease on a stream.
    message ShmAttachRequest = gd::ShmAttachRequest {
        /// Chosen by the client; echoed in the response.
        correlation_id: i64,
        /// Stream to attach to.
        stream_id: u32,
        /// Client id.
        client_id: u32,
        /// Producer or consumer.
        role: Role,
        /// SHM layout version the client understands.
        expected_layout_version: u32,
        /// Producer's creation policy (null, 255 on the wire, means REQUIRE_EXISTING).
        publish_mode: Option<PublishMode> = null(255, publish_mode_opt),
        /// Hugepage requirement.
        require_hugepages: HugepagesPolicy,
        /// Node id the client would like.
        desired_node_id: Option<u32> = null(u32::MAX, desired_node_id_opt),
    }
}

codec! {
    /// Grants or rejects a lease. On rejection only `code` and `error_message` matter.
    message ShmAttachResponse<'a> = gd::ShmAttachResponse {
        /// Correlation id of the request.
        correlation_id: i64,
        /// Result.
        code: ResponseCode,
        /// Lease granted.
        lease_id: Option<u64> = null(u64::MAX, lease_id_opt),
        /// When the lease expires without a keepalive.
        lease_expiry_timestamp_ns: Option<u64> = null(u64::MAX, lease_expiry_timestamp_ns_opt),
        /// Stream attached.
        stream_id: Option<u32> = null(u32::MAX, stream_id_opt),
        /// Region generation.
        epoch: Option<u64> = null(u64::MAX, epoch_opt),
        /// SHM layout version of the regions.
        layout_version: Option<u32> = null(u32::MAX, layout_version_opt),
        /// Slots in the header ring.
        header_nslots: Option<u32> = null(u32::MAX, header_nslots_opt),
        /// Bytes per header slot.
        header_slot_bytes: Option<u16> = null(u16::MAX, header_slot_bytes_opt),
        /// Node id assigned.
        node_id: Option<u32> = null(u32::MAX, node_id_opt),
    } groups {
        /// The payload pools.
        payload_pools: PayloadPool<'a> = "payloadPools",
    } data {
        /// Region URI of the header ring.
        header_region_uri: TEXT_MAX,
        /// Reason for a rejection (see [`ERROR_MESSAGE_MAX_LEN`]).
        error_message: TEXT_MAX,
    }
}

codec! {
    /// Gives a lease back.
    message ShmDetachRequest = gd::ShmDetachRequest {
        /// Chosen by the client; echoed in the response.
        correlation_id: i64,
        /// Lease to release.
        lease_id: u64,
        /// Stream of the lease.
        stream_id: u32,
        /// Client id.
        client_id: u32,
        /// Role of the lease.
        role: Role,
    }
}

codec! {
    /// Result of a detach.
    message ShmDetachResponse<'a> = gd::ShmDetachResponse {
        /// Correlation id of the request.
        correlation_id: i64,
        /// Result.
        code: ResponseCode,
    } data {
        /// Reason for a failure (see [`ERROR_MESSAGE_MAX_LEN`]).
        error_message: TEXT_MAX,
    }
}

codec! {
    /// One-way lease refresh.
    message ShmLeaseKeepalive = gd::ShmLeaseKeepalive {
        /// Lease refreshed.
        lease_id: u64,
        /// Stream of the lease.
        stream_id: u32,
        /// Client id.
        client_id: u32,
        /// Role of the lease.
        role: Role,
        /// Client clock when sent.
        client_timestamp_ns: u64,
    }
}

codec! {
    /// The driver is shutting down.
    message ShmDriverShutdown<'a> = gd::ShmDriverShutdown {
        /// When the shutdown started.
        timestamp_ns: u64,
        /// Why.
        reason: ShutdownReason,
    } data {
        /// Details (see [`ERROR_MESSAGE_MAX_LEN`]).
        error_message: TEXT_MAX,
    }
}

codec! {
    /// A lease ended without the client asking.
    message ShmLeaseRevoked<'a> = gd::ShmLeaseRevoked {
        /// When the lease was revoked.
        timestamp_ns: u64,
        /// Lease revoked.
        lease_id: u64,
        /// Stream of the lease.
        stream_id: u32,
        /// Client id.
        client_id: u32,
        /// Role of the lease.
        role: Role,
        /// Why.
        reason: LeaseRevokeReason,
    } data {
        /// Details (see [`ERROR_MESSAGE_MAX_LEN`]).
        error_message: TEXT_MAX,
    }
}

codec! {
    /// Administrative request to stop the driver.
    message ShmDriverShutdownRequest<'a> = gd::ShmDriverShutdownRequest {
        /// Chosen by the requester.
        correlation_id: i64,
        /// Why.
        reason: ShutdownReason,
    } data {
        /// Shutdown token that authorizes the request.
        token: TEXT_MAX,
        /// Details (see [`ERROR_MESSAGE_MAX_LEN`]).
        error_message: TEXT_MAX,
    }
}
