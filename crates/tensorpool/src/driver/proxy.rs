//! Outbound messages: one `send_<message>` per message the driver publishes. Each encodes
//! straight into the sink (an Aeron claim in production) and counts what could not be sent.

use tensorpool_codec::driver::{
    LeaseRevokeReason, ResponseCode, ShmAttachResponse, ShmDetachResponse, ShmDriverShutdown,
    ShmLeaseRevoked, ShutdownReason,
};
use tensorpool_codec::wire::{ClockDomain, ShmPoolAnnounce};
use tensorpool_codec::{Bytes, Group, Message};
use tensorpool_shm::HEADER_SLOT_BYTES;

use super::counters::DriverCells;
use super::files::LiveEpoch;
use super::leases::Lease;
use crate::control::{MessageSink, send, truncate_utf8};
use tensorpool_codec::driver::ERROR_MESSAGE_MAX_LEN;

/// Where the driver's messages go: the control stream, and the announce stream (`None`:
/// the same as control).
pub struct Outputs<'a> {
    /// Responses, revocations, shutdown notices, admin answers.
    pub control: &'a mut dyn MessageSink,
    /// `ShmPoolAnnounce` (when configured apart from control).
    pub announce: Option<&'a mut dyn MessageSink>,
}

impl std::fmt::Debug for Outputs<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outputs").finish_non_exhaustive()
    }
}

impl<'a> Outputs<'a> {
    /// Both kinds of message on one sink.
    pub fn single(control: &'a mut dyn MessageSink) -> Self {
        Self {
            control,
            announce: None,
        }
    }

    fn announce_sink(&mut self) -> &mut dyn MessageSink {
        match &mut self.announce {
            Some(a) => &mut **a,
            None => &mut *self.control,
        }
    }
}

fn deliver<'m, M: Message<'m>>(
    sink: &mut dyn MessageSink,
    msg: &M,
    counters: &mut DriverCells,
) -> bool {
    match send(sink, msg) {
        Ok(()) => true,
        Err(e) => {
            counters.messages_dropped += 1;
            tracing::debug!(message = M::NAME, error = %e, "driver message not sent");
            false
        }
    }
}

fn error_bytes(text: &str) -> Bytes<'_> {
    Bytes::new(truncate_utf8(text, ERROR_MESSAGE_MAX_LEN).as_bytes())
}

/// `ShmAttachResponse` with `code=OK` and every field §4.2 requires.
pub(crate) fn send_attach_ok(
    out: &mut Outputs<'_>,
    correlation_id: i64,
    lease: &Lease,
    live: &LiveEpoch,
    layout_version: u32,
    counters: &mut DriverCells,
) {
    let msg = ShmAttachResponse {
        correlation_id,
        code: ResponseCode::Ok,
        lease_id: Some(lease.lease_id),
        lease_expiry_timestamp_ns: Some(lease.expiry_ns),
        stream_id: Some(lease.stream_id),
        epoch: Some(live.epoch),
        layout_version: Some(layout_version),
        header_nslots: Some(live.header_nslots),
        header_slot_bytes: Some(HEADER_SLOT_BYTES as u16),
        node_id: lease.node_id,
        payload_pools: live.pools.group(),
        header_region_uri: Bytes::new(live.header_uri.as_bytes()),
        error_message: Bytes::EMPTY,
    };
    deliver(out.control, &msg, counters);
}

/// `ShmAttachResponse` with an error code: only `correlationId`, `code` and `errorMessage`
/// (at most 1024 bytes); every optional field null (§4.2).
pub(crate) fn send_attach_error(
    out: &mut Outputs<'_>,
    correlation_id: i64,
    code: ResponseCode,
    message: &str,
    counters: &mut DriverCells,
) {
    let msg = ShmAttachResponse {
        correlation_id,
        code,
        lease_id: None,
        lease_expiry_timestamp_ns: None,
        stream_id: None,
        epoch: None,
        layout_version: None,
        header_nslots: None,
        header_slot_bytes: None,
        node_id: None,
        payload_pools: Group::default(),
        header_region_uri: Bytes::EMPTY,
        error_message: error_bytes(message),
    };
    deliver(out.control, &msg, counters);
}

/// `ShmDetachResponse` echoing the request's correlation id.
pub(crate) fn send_detach_response(
    out: &mut Outputs<'_>,
    correlation_id: i64,
    code: ResponseCode,
    message: &str,
    counters: &mut DriverCells,
) {
    let msg = ShmDetachResponse {
        correlation_id,
        code,
        error_message: error_bytes(message),
    };
    deliver(out.control, &msg, counters);
}

/// `ShmLeaseRevoked` for one invalidated lease (§4.9: every invalidation).
pub(crate) fn send_lease_revoked(
    out: &mut Outputs<'_>,
    lease: &Lease,
    reason: LeaseRevokeReason,
    message: &str,
    now_ns: u64,
    counters: &mut DriverCells,
) {
    let msg = ShmLeaseRevoked {
        timestamp_ns: now_ns,
        lease_id: lease.lease_id,
        stream_id: lease.stream_id,
        client_id: lease.client_id,
        role: lease.role,
        reason,
        error_message: error_bytes(message),
    };
    deliver(out.control, &msg, counters);
}

/// `ShmPoolAnnounce` of a stream's live epoch (§8), MONOTONIC clock domain.
pub(crate) fn send_pool_announce(
    out: &mut Outputs<'_>,
    stream_id: u32,
    producer_id: u32,
    live: &LiveEpoch,
    layout_version: u32,
    now_ns: u64,
    counters: &mut DriverCells,
) {
    let msg = ShmPoolAnnounce {
        stream_id,
        producer_id,
        epoch: live.epoch,
        announce_timestamp_ns: now_ns,
        announce_clock_domain: ClockDomain::Monotonic,
        layout_version,
        header_nslots: live.header_nslots,
        header_slot_bytes: HEADER_SLOT_BYTES as u16,
        payload_pools: live.pools.group(),
        header_region_uri: Bytes::new(live.header_uri.as_bytes()),
    };
    if deliver(out.announce_sink(), &msg, counters) {
        counters.announces_sent += 1;
    }
}

/// `ShmDriverShutdown` (§4.13).
pub(crate) fn send_driver_shutdown(
    out: &mut Outputs<'_>,
    reason: ShutdownReason,
    message: &str,
    now_ns: u64,
    counters: &mut DriverCells,
) {
    let msg = ShmDriverShutdown {
        timestamp_ns: now_ns,
        reason,
        error_message: error_bytes(message),
    };
    deliver(out.control, &msg, counters);
}

/// Any admin answer (schema 990) on the control stream.
pub(crate) fn send_admin<'m, M: Message<'m>>(
    out: &mut Outputs<'_>,
    msg: &M,
    counters: &mut DriverCells,
) {
    deliver(out.control, msg, counters);
}
