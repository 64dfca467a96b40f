//! What the driver counts (reported by `tp driver status`).

/// Driver counters since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Attach requests granted.
    pub attaches_granted: u64,
    /// Attach requests rejected (any code other than OK).
    pub attaches_rejected: u64,
    /// Valid keepalives.
    pub keepalives: u64,
    /// Keepalives that matched no lease exactly (ignored).
    pub keepalives_ignored: u64,
    /// Leases detached by their client.
    pub leases_detached: u64,
    /// Leases that expired.
    pub leases_expired: u64,
    /// Leases revoked by the driver.
    pub leases_revoked: u64,
    /// Epoch increments (including startup provisioning).
    pub epoch_bumps: u64,
    /// `ShmPoolAnnounce` messages sent.
    pub announces_sent: u64,
    /// Outbound messages that could not be published.
    pub messages_dropped: u64,
    /// Inbound messages of our schema that could not be decoded.
    pub malformed: u64,
    /// Shutdown requests ignored (missing or wrong token, or shutdown disabled).
    pub shutdown_requests_rejected: u64,
    /// Epoch directories removed by GC.
    pub epochs_collected: u64,
}
