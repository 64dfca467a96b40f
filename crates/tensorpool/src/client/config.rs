//! What a driver client needs to know: the stream and role it attaches as, the driver's
//! control-plane endpoints, and its timers.

use std::time::Duration;

use tensorpool_codec::driver::{HugepagesPolicy, PublishMode, Role};
use tensorpool_shm::AllowedBaseDirs;

use crate::streams::DriverEndpoints;

/// Driver client settings. [`ClientConfig::new`] takes the Driver Model defaults.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Stream to attach to.
    pub stream_id: u32,
    /// Producer or consumer.
    pub role: Role,
    /// Client id; 0 picks a random non-zero id, and a new one when the driver answers
    /// `client_id already attached` (Appendix B.2).
    pub client_id: u32,
    /// `publishMode` (`None` is sent as null, which drivers read as REQUIRE_EXISTING).
    pub publish_mode: Option<PublishMode>,
    /// `requireHugepages`.
    pub require_hugepages: HugepagesPolicy,
    /// `expectedLayoutVersion` (0: whatever the driver uses).
    pub expected_layout_version: u32,
    /// `desiredNodeId`.
    pub desired_node_id: Option<u32>,
    /// Driver control channel (`driver.control_channel`).
    pub control_channel: String,
    /// Driver control stream id (`driver.control_stream_id`).
    pub control_stream_id: i32,
    /// Announce channel (`driver.announce_channel`).
    pub announce_channel: String,
    /// Announce stream id (`driver.announce_stream_id`).
    pub announce_stream_id: i32,
    /// How long an attach may go unanswered before it is retried (Driver Model §4.2).
    pub attach_timeout: Duration,
    /// First retry delay after a failure; doubles up to `backoff_max`.
    pub backoff_initial: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// Keepalive interval (`policies.lease_keepalive_interval_ms` of the driver).
    pub keepalive_interval: Duration,
    /// The driver's announce period (`policies.announce_period_ms`): announces older than
    /// 3 periods are stale, an epoch bump is awaited 3 periods after a producer revocation.
    pub announce_period: Duration,
    /// The driver is considered lost after this long without an announce of our stream.
    pub driver_timeout: Duration,
    /// When set, every URI the driver gives must be contained in these directories (the
    /// check consumers make before mapping, Wire Spec §15.21a.5) or the response is a
    /// protocol error.
    pub allowed_base_dirs: Option<AllowedBaseDirs>,
}

impl ClientConfig {
    /// Defaults for `stream_id` / `role` against a driver with the §17 defaults.
    pub fn new(stream_id: u32, role: Role) -> Self {
        Self {
            stream_id,
            role,
            client_id: 0,
            publish_mode: Some(PublishMode::RequireExisting),
            require_hugepages: HugepagesPolicy::Unspecified,
            expected_layout_version: tensorpool_shm::LAYOUT_VERSION,
            desired_node_id: None,
            control_channel: crate::streams::DEFAULT_CHANNEL.to_owned(),
            control_stream_id: crate::streams::CONTROL_STREAM_ID,
            announce_channel: crate::streams::DEFAULT_CHANNEL.to_owned(),
            announce_stream_id: crate::streams::CONTROL_STREAM_ID,
            attach_timeout: Duration::from_secs(2),
            backoff_initial: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            keepalive_interval: Duration::from_secs(1),
            announce_period: Duration::from_secs(1),
            driver_timeout: Duration::from_secs(5),
            allowed_base_dirs: None,
        }
    }

    pub(crate) fn ns(d: Duration) -> u64 {
        u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
    }
}

/// The client side of the driver's endpoints ([`DriverEndpoints`] is what a role knows of a
/// driver: never its configuration).
impl DriverEndpoints {
    /// The driver client settings for `stream_id` in `role`.
    pub(crate) fn client_config(
        &self,
        stream_id: u32,
        role: tensorpool_codec::driver::Role,
        allowed: Option<tensorpool_shm::AllowedBaseDirs>,
    ) -> ClientConfig {
        let mut c = ClientConfig::new(stream_id, role);
        c.control_channel = self.control.channel.clone();
        c.control_stream_id = self.control.stream_id;
        c.announce_channel = self.announce.channel.clone();
        c.announce_stream_id = self.announce.stream_id;
        c.keepalive_interval = self.keepalive_interval;
        c.announce_period = self.announce_period;
        c.driver_timeout = self.announce_period * 5;
        c.allowed_base_dirs = allowed;
        c
    }
}
