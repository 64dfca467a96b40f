//! The driver client's state: where it is ([`ClientState`] outside, `Inner` inside, Driver
//! Model §4.12.1), the lease it holds (`Held`), the events it reports ([`ClientEvent`]), its
//! counters, and `Machine`: everything the handlers and timers act on (the transport lives
//! apart in [`super::DriverClient`] so that a poll callback can borrow the machine).

use std::collections::VecDeque;

use tensorpool_codec::driver::{LeaseRevokeReason, ResponseCode, ShutdownReason};

use super::{AttachInfo, ClientConfig, ProtocolError, Regions};

/// Where the client is (Driver Model §4.12.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    /// No lease; an attach goes out at the next duty cycle.
    Unattached,
    /// An attach is in flight.
    Attaching,
    /// Holding a lease; keepalives running.
    Attached,
    /// Waiting before the next attach.
    Backoff,
    /// A detach is in flight.
    Detaching,
    /// Detached for good.
    Closed,
}

/// Why a lease was lost without a revocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseLost {
    /// No keepalive could be sent before the lease's expiry.
    KeepaliveDeadline,
    /// The keepalive could not be published (driver gone, §4.4).
    KeepaliveFailed,
    /// The producer was revoked and no epoch-bumped announce came in 3 announce periods.
    RemapTimeout,
}

/// Something the application must know. Except `EpochChanged` (remap), every event after
/// `Attached` means: stop using the regions; the client attaches again by itself.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// A lease was granted: map these regions.
    Attached(AttachInfo),
    /// The driver refused the attach; retried after a backoff.
    Rejected {
        /// The code.
        code: ResponseCode,
        /// The driver's text.
        message: String,
    },
    /// No answer within the attach timeout; retried after a backoff.
    AttachTimedOut,
    /// An OK response or announce failed validation (§4.7a): dropped, reattaching.
    ProtocolError(ProtocolError),
    /// Our lease was revoked.
    LeaseRevoked {
        /// Why.
        reason: LeaseRevokeReason,
        /// The driver's text.
        message: String,
    },
    /// Our lease is gone for another reason.
    LeaseLost(LeaseLost),
    /// The producer of the stream we consume lost its lease: stop reading, wait for the new
    /// epoch (an [`ClientEvent::EpochChanged`] follows, or [`LeaseLost::RemapTimeout`]).
    ProducerRevoked {
        /// The producer's lease.
        lease_id: u64,
    },
    /// The stream moved to a new epoch: remap these regions.
    EpochChanged(Regions),
    /// The driver shut down (§4.13): leases are void; reattaching once it is back.
    DriverShutdown {
        /// Its reason.
        reason: ShutdownReason,
        /// Its text.
        message: String,
    },
    /// The driver stopped announcing (§10): leases are void; reattaching.
    DriverLost,
    /// Our detach completed.
    Detached,
}

/// Counters of a client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientCounters {
    /// Attach requests sent.
    pub attaches_sent: u64,
    /// Keepalives sent.
    pub keepalives_sent: u64,
    /// Messages of our schema rejected (newer version, undecodable, unknown enums).
    pub rejected_messages: u64,
    /// Duplicate or stale responses ignored.
    pub duplicates_ignored: u64,
    /// Announces ignored as stale or replayed.
    pub stale_announces: u64,
}

#[derive(Debug)]
pub(super) enum Inner {
    Idle,
    Attaching {
        correlation_id: i64,
        deadline_ns: u64,
    },
    Attached(Box<Held>),
    Backoff {
        until_ns: u64,
    },
    Detaching {
        correlation_id: i64,
        deadline_ns: u64,
    },
    Closed,
}

#[derive(Debug)]
pub(super) struct Held {
    pub(super) info: AttachInfo,
    pub(super) next_keepalive_ns: u64,
    /// Our estimate of the lease's expiry (driver's value, moved by each keepalive).
    pub(super) expiry_ns: Option<u64>,
    pub(super) lease_ns: u64,
    pub(super) last_announce_ns: u64,
    /// After a producer revocation: the epoch to exceed and the deadline.
    pub(super) awaiting_epoch: Option<(u64, u64)>,
}

#[derive(Debug)]
pub(super) struct Machine {
    pub(super) cfg: ClientConfig,
    pub(super) client_id: u32,
    pub(super) auto_client_id: bool,
    pub(super) state: Inner,
    pub(super) backoff_ns: u64,
    pub(super) abandoned: [i64; 8],
    pub(super) abandoned_next: usize,
    pub(super) accepted: Option<i64>,
    pub(super) pending_detach: Option<(i64, u64, u32, u32)>,
    pub(super) events: VecDeque<ClientEvent>,
    pub(super) counters: ClientCounters,
    pub(super) join_time_ns: Option<u64>,
    pub(super) close_requested: bool,
}
