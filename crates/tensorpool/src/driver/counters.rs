//! What the driver counts (reported by `tp driver status`): one table. The fields with a kind
//! are also Aeron counters (`tp stat`, AeronStat) when the driver runs on an Aeron client;
//! their key has stream id 0 (driver-wide) and client id 0, and a per-cause counter's key
//! carries its response code or revoke reason (see [`crate::counters`]).

use tensorpool_codec::driver::{LeaseRevokeReason, ResponseCode};

use crate::counters::{Kind, Role};

/// `tensorpool:301`: attach requests granted.
pub const ATTACHES_OK: Kind = Kind::total(301, Role::Driver, "attaches ok", "attaches granted");
/// `tensorpool:302`: attach requests rejected, one counter per response code (key
/// `detail` = the code's wire value).
pub const ATTACHES_REJECTED: Kind = Kind::per_cause(
    302,
    Role::Driver,
    "attaches rejected",
    "attaches rejected, per response code",
    response_code_name,
);
/// `tensorpool:303`: leases held now.
pub const LEASES_ACTIVE: Kind = Kind::gauge(303, Role::Driver, "leases active", "leases held");
/// `tensorpool:304`: leases ended, one counter per revoke reason (key `detail` = the
/// reason's wire value).
pub const REVOCATIONS: Kind = Kind::per_cause(
    304,
    Role::Driver,
    "revocations",
    "leases ended, per reason (detached, expired, revoked)",
    revoke_reason_name,
);
/// `tensorpool:305`: epochs bumped (including startup provisioning).
pub const EPOCHS_BUMPED: Kind = Kind::total(
    305,
    Role::Driver,
    "epochs bumped",
    "epoch increments, startup provisioning included",
);
/// `tensorpool:306`: `ShmPoolAnnounce` messages sent.
pub const ANNOUNCES: Kind = Kind::total(
    306,
    Role::Driver,
    "announces sent",
    "ShmPoolAnnounce messages sent",
);
/// `tensorpool:307`: epoch directories removed by GC.
pub const GC_DELETIONS: Kind = Kind::total(
    307,
    Role::Driver,
    "gc deletions",
    "epoch directories removed by GC",
);

/// `tensorpool:308`: control messages dropped as published before the driver's control
/// subscription joined their publication (a request from a client gone since).
pub const CONTROL_BACKLOG_DROPPED: Kind = Kind::total(
    308,
    Role::Driver,
    "control backlog dropped",
    "control messages published before the driver joined, dropped",
);

/// Every driver counter kind.
pub const COUNTER_KINDS: &[&Kind] = &[
    &ATTACHES_OK,
    &ATTACHES_REJECTED,
    &LEASES_ACTIVE,
    &REVOCATIONS,
    &EPOCHS_BUMPED,
    &ANNOUNCES,
    &GC_DELETIONS,
    &CONTROL_BACKLOG_DROPPED,
];

fn code(c: ResponseCode) -> u16 {
    u16::try_from(i32::from(c)).unwrap_or(u16::MAX)
}

fn reason(r: LeaseRevokeReason) -> u16 {
    u16::from(u8::from(r))
}

fn response_code_name(detail: u16) -> Option<&'static str> {
    Some(match ResponseCode::try_from(i32::from(detail)).ok()? {
        ResponseCode::Ok => "ok",
        ResponseCode::Unsupported => "unsupported",
        ResponseCode::InvalidParams => "invalid_params",
        ResponseCode::Rejected => "rejected",
        ResponseCode::InternalError => "internal_error",
    })
}

fn revoke_reason_name(detail: u16) -> Option<&'static str> {
    Some(
        match LeaseRevokeReason::try_from(u8::try_from(detail).ok()?).ok()? {
            LeaseRevokeReason::Detached => "detached",
            LeaseRevokeReason::Expired => "expired",
            LeaseRevokeReason::Revoked => "revoked",
        },
    )
}

counters! {
    /// Driver counters since start.
    pub struct Counters, cells DriverCells {
        /// Attach requests granted.
        attaches_granted = ATTACHES_OK,
        /// Attach requests rejected (any code other than OK).
        attaches_rejected,
        /// ... with UNSUPPORTED.
        rejected_unsupported = ATTACHES_REJECTED[code(ResponseCode::Unsupported)],
        /// ... with INVALID_PARAMS.
        rejected_invalid_params = ATTACHES_REJECTED[code(ResponseCode::InvalidParams)],
        /// ... with REJECTED.
        rejected_rejected = ATTACHES_REJECTED[code(ResponseCode::Rejected)],
        /// ... with INTERNAL_ERROR.
        rejected_internal_error = ATTACHES_REJECTED[code(ResponseCode::InternalError)],
        /// Leases held now (a level).
        leases_active = LEASES_ACTIVE,
        /// Valid keepalives.
        keepalives,
        /// Keepalives that matched no lease exactly (ignored).
        keepalives_ignored,
        /// Leases detached by their client.
        leases_detached = REVOCATIONS[reason(LeaseRevokeReason::Detached)],
        /// Leases that expired.
        leases_expired = REVOCATIONS[reason(LeaseRevokeReason::Expired)],
        /// Leases revoked by the driver.
        leases_revoked = REVOCATIONS[reason(LeaseRevokeReason::Revoked)],
        /// Epoch increments (including startup provisioning).
        epoch_bumps = EPOCHS_BUMPED,
        /// `ShmPoolAnnounce` messages sent.
        announces_sent = ANNOUNCES,
        /// Outbound messages that could not be published.
        messages_dropped,
        /// Inbound messages of our schema that could not be decoded.
        malformed,
        /// Shutdown requests ignored (missing or wrong token, or shutdown disabled).
        shutdown_requests_rejected,
        /// Epoch directories removed by GC.
        epochs_collected = GC_DELETIONS,
        /// Epochs that found no room on the file system (ENOSPC), before the GC pass and
        /// retry.
        provision_no_space,
        /// Control messages published before the control subscription joined their
        /// publication, dropped unread (Aeron would start the driver at the slowest existing
        /// subscriber's position: a dead client's attach request would be granted).
        control_backlog_dropped = CONTROL_BACKLOG_DROPPED,
    }
}

impl DriverCells {
    /// Counts a rejected attach under its code.
    pub fn count_reject(&mut self, c: ResponseCode) {
        self.attaches_rejected += 1;
        match c {
            ResponseCode::Unsupported => self.rejected_unsupported += 1,
            ResponseCode::InvalidParams => self.rejected_invalid_params += 1,
            ResponseCode::Rejected => self.rejected_rejected += 1,
            ResponseCode::InternalError => self.rejected_internal_error += 1,
            ResponseCode::Ok => {}
        }
    }
}
