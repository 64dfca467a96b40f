//! Default Aeron channels and stream ids of the producer and consumer roles
//! (STREAM_ID_CONVENTIONS; Wire Spec §5, §15.11; PITFALLS #19, #20). Every value is a default
//! only: builders take any channel and stream id.
//!
//! | logical stream | default stream id | carries |
//! |---|---|---|
//! | control | 1000 | `ConsumerHello`, `ConsumerConfig`, shared `FrameProgress` |
//! | announce | 1001 | `ShmPoolAnnounce` |
//! | descriptor | 1100 | `FrameDescriptor` |
//! | QoS | 1200 | `QosProducer`, `QosConsumer` |
//! | metadata | 1300 | `DataSourceAnnounce`, `DataSourceMeta`, meta blobs |
//!
//! Channel strings must be byte-identical in every process sharing an IPC stream, so every
//! logical stream defaults to the spec's [`DEFAULT_CHANNEL`].

/// `aeron:ipc?term-length=4m`: the spec's default channel (PITFALLS #20).
pub const DEFAULT_CHANNEL: &str = "aeron:ipc?term-length=4m";
/// Shared control stream id.
pub const CONTROL_STREAM_ID: i32 = 1000;
/// Announce stream id (`ShmPoolAnnounce`).
pub const ANNOUNCE_STREAM_ID: i32 = 1001;
/// Shared descriptor stream id.
pub const DESCRIPTOR_STREAM_ID: i32 = 1100;
/// QoS stream id.
pub const QOS_STREAM_ID: i32 = 1200;
/// Metadata stream id.
pub const METADATA_STREAM_ID: i32 = 1300;
/// First id of the conventional per-consumer descriptor range (31000-31999).
pub const PER_CONSUMER_DESCRIPTOR_BASE: i32 = 31_000;
/// First id of the conventional per-consumer control range (32000-32999).
pub const PER_CONSUMER_CONTROL_BASE: i32 = 32_000;
/// Conventional first pool stream id (the data source).
pub const DEFAULT_POOL_STREAM_ID: u32 = 10_000;

/// How long an untethered descriptor subscriber may lag a window behind the producer's
/// descriptor publication before the media driver lets it go (then it rests, Aeron's
/// `untethered-resting-timeout`, 10 s by default, and rejoins at the live position). With the
/// media driver's timer (`AERON_TIMER_INTERVAL`, 1 s by default: the driver checks on it) this
/// bounds how long a consumer that stopped polling (hung, or killed while its Aeron client
/// still counts as alive) holds back the descriptors of every other consumer. The resting
/// time stays long on purpose: a hung consumer that rejoined at once would stall the stream
/// again a window later.
pub const UNTETHERED_TIMEOUT: &str = "100ms";

/// The channel a consumer subscribes to descriptors on, and the tools (`tp listen`, `tp top`)
/// to anything: an IPC channel gets `tether=false` (unless it sets `tether` itself), so that
/// the publication's flow control may leave it behind. A tethered subscription that nobody polls stops the producer's descriptor
/// publication at one window (2 MiB: 21 845 descriptors) until the subscriber's client is
/// gone, and every other consumer of the stream loses frames meanwhile: the back pressure the
/// protocol rules out (Wire Spec §1, §15.4). Other media are unchanged.
pub fn untethered_subscription_channel(channel: &str) -> std::borrow::Cow<'_, str> {
    with_ipc_params(channel, &[("tether", "false")])
}

/// The channel a producer publishes descriptors on: an IPC channel gets
/// `untethered-window-limit-timeout` of [`UNTETHERED_TIMEOUT`] (Aeron's default is 5 s)
/// unless it sets it itself.
pub fn descriptor_publication_channel(channel: &str) -> std::borrow::Cow<'_, str> {
    with_ipc_params(
        channel,
        &[("untethered-window-limit-timeout", UNTETHERED_TIMEOUT)],
    )
}

/// `channel` with each `key=value` of `params` the channel does not set already, when it is
/// an IPC channel; any other channel as it is.
fn with_ipc_params<'a>(channel: &'a str, params: &[(&str, &str)]) -> std::borrow::Cow<'a, str> {
    let Some(rest) = channel.strip_prefix("aeron:ipc") else {
        return channel.into();
    };
    let query = rest.strip_prefix('?').unwrap_or("");
    let has = |key: &str| {
        query
            .split('|')
            .any(|kv| kv.split_once('=').is_some_and(|(k, _)| k.trim() == key))
    };
    let mut out = channel.to_owned();
    for (key, value) in params.iter().filter(|(k, _)| !has(k)) {
        if !out.ends_with(['?', '|']) {
            out.push(if out.contains('?') { '|' } else { '?' });
        }
        out.push_str(key);
        out.push('=');
        out.push_str(value);
    }
    out.into()
}

/// One Aeron endpoint: a channel and a stream id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// Aeron channel URI, passed to Aeron unchanged.
    pub channel: String,
    /// Aeron stream id.
    pub stream_id: i32,
}

impl Endpoint {
    /// An endpoint on `channel` / `stream_id`.
    pub fn new(channel: impl Into<String>, stream_id: i32) -> Self {
        Self {
            channel: channel.into(),
            stream_id,
        }
    }

    /// An endpoint on [`DEFAULT_CHANNEL`].
    pub fn ipc(stream_id: i32) -> Self {
        Self::new(DEFAULT_CHANNEL, stream_id)
    }
}

/// The shared logical streams of a data source, with the conventional defaults.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Streams {
    /// Control stream (hello, config, shared progress).
    pub control: Endpoint,
    /// Announce stream (`ShmPoolAnnounce`).
    pub announce: Endpoint,
    /// Shared descriptor stream.
    pub descriptor: Endpoint,
    /// QoS stream.
    pub qos: Endpoint,
    /// Metadata stream.
    pub metadata: Endpoint,
}

impl Default for Streams {
    fn default() -> Self {
        Self {
            control: Endpoint::ipc(CONTROL_STREAM_ID),
            announce: Endpoint::ipc(ANNOUNCE_STREAM_ID),
            descriptor: Endpoint::ipc(DESCRIPTOR_STREAM_ID),
            qos: Endpoint::ipc(QOS_STREAM_ID),
            metadata: Endpoint::ipc(METADATA_STREAM_ID),
        }
    }
}

impl Streams {
    /// Every logical stream on `channel` with the default stream ids.
    pub fn on_channel(channel: &str) -> Self {
        Self {
            control: Endpoint::new(channel, CONTROL_STREAM_ID),
            announce: Endpoint::new(channel, ANNOUNCE_STREAM_ID),
            descriptor: Endpoint::new(channel, DESCRIPTOR_STREAM_ID),
            qos: Endpoint::new(channel, QOS_STREAM_ID),
            metadata: Endpoint::new(channel, METADATA_STREAM_ID),
        }
    }
}

/// What a `ConsumerHello` asks for one per-consumer stream (Wire Spec §10.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamRequest {
    /// Empty channel and stream id 0: not requested.
    Absent,
    /// Non-empty channel and non-zero stream id.
    Requested,
    /// Only one of the two: the request must be rejected (declined).
    Invalid,
}

impl StreamRequest {
    /// Classifies a channel / stream id pair.
    pub fn classify(channel: &[u8], stream_id: u32) -> Self {
        match (channel.is_empty(), stream_id == 0) {
            (true, true) => Self::Absent,
            (false, false) => Self::Requested,
            _ => Self::Invalid,
        }
    }
}

/// How long building a producer (or a consumer's first attach) waits for its lease, by
/// default.
pub const DEFAULT_ATTACH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Where the SHM driver listens, and its timers (Driver Model §4.4, §17). Defaults: control
/// and announce on stream 1000 of [`DEFAULT_CHANNEL`] (§17: the announce stream defaults to
/// the control stream), 1 s keepalive, 1 s announce period, 10 s attach timeout.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DriverEndpoints {
    /// Driver control stream (`driver.control_channel` / `driver.control_stream_id`).
    pub control: Endpoint,
    /// Driver announce stream (`driver.announce_channel` / `driver.announce_stream_id`).
    pub announce: Endpoint,
    /// Lease keepalive interval (`policies.lease_keepalive_interval_ms`).
    pub keepalive_interval: std::time::Duration,
    /// The driver's announce period (`policies.announce_period_ms`).
    pub announce_period: std::time::Duration,
    /// How long building a producer waits for its lease.
    pub attach_timeout: std::time::Duration,
}

impl Default for DriverEndpoints {
    fn default() -> Self {
        Self {
            control: Endpoint::ipc(CONTROL_STREAM_ID),
            announce: Endpoint::ipc(CONTROL_STREAM_ID),
            keepalive_interval: std::time::Duration::from_secs(1),
            announce_period: std::time::Duration::from_secs(1),
            attach_timeout: DEFAULT_ATTACH_TIMEOUT,
        }
    }
}

impl DriverEndpoints {
    /// The endpoints and timers of a driver configuration.
    pub fn of_driver(cfg: &crate::driver::DriverConfig) -> Self {
        let p = &cfg.policies;
        Self::of_section(
            &cfg.driver,
            p.announce_period_ms,
            p.lease_keepalive_interval_ms,
        )
    }

    /// Reads the driver's endpoints and client timers as the driver itself reads them: the
    /// `[driver]` table, `policies.announce_period_ms` and
    /// `policies.lease_keepalive_interval_ms` with the driver's defaults and environment
    /// overrides (`DRIVER_CONTROL_STREAM_ID`, ...), so a role can share the driver's file.
    pub fn from_loader(
        l: &mut crate::config::Loader<'_>,
    ) -> Result<Self, crate::config::ConfigError> {
        let section = crate::driver::config::DriverSection::from_loader(l)?;
        let (announce_ms, keepalive_ms) = crate::driver::config::client_timers(l)?;
        Ok(Self::of_section(&section, announce_ms, keepalive_ms))
    }

    fn of_section(
        d: &crate::driver::config::DriverSection,
        announce_period_ms: u32,
        keepalive_interval_ms: u32,
    ) -> Self {
        let ms = |v: u32| std::time::Duration::from_millis(u64::from(v));
        let id = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
        Self {
            control: Endpoint::new(d.control_channel.clone(), id(d.control_stream_id)),
            announce: Endpoint::new(d.announce_channel.clone(), id(d.announce_stream_id)),
            keepalive_interval: ms(keepalive_interval_ms),
            announce_period: ms(announce_period_ms),
            attach_timeout: DEFAULT_ATTACH_TIMEOUT,
        }
    }

    /// The driver client settings for `stream_id` in `role`.
    pub(crate) fn client_config(
        &self,
        stream_id: u32,
        role: tensorpool_codec::driver::Role,
        allowed: Option<tensorpool_shm::AllowedBaseDirs>,
    ) -> crate::client::ClientConfig {
        let mut c = crate::client::ClientConfig::new(stream_id, role);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_channels_untether_ipc_only_and_keep_what_the_channel_sets() {
        assert_eq!(
            untethered_subscription_channel(DEFAULT_CHANNEL),
            "aeron:ipc?term-length=4m|tether=false"
        );
        assert_eq!(
            untethered_subscription_channel("aeron:ipc"),
            "aeron:ipc?tether=false"
        );
        assert_eq!(
            untethered_subscription_channel("aeron:ipc?"),
            "aeron:ipc?tether=false"
        );
        // the channel's own choice wins
        assert_eq!(
            untethered_subscription_channel("aeron:ipc?tether=true"),
            "aeron:ipc?tether=true"
        );
        // other media are left alone (tether means nothing to a network subscription)
        let udp = "aeron:udp?endpoint=localhost:40123";
        assert_eq!(untethered_subscription_channel(udp), udp);
        assert_eq!(descriptor_publication_channel(udp), udp);
        assert_eq!(
            descriptor_publication_channel(DEFAULT_CHANNEL),
            "aeron:ipc?term-length=4m|untethered-window-limit-timeout=100ms"
        );
        let own = "aeron:ipc?untethered-window-limit-timeout=1s";
        assert_eq!(descriptor_publication_channel(own), own);
    }
}
