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

use std::path::PathBuf;

use crate::config::{ConfigError, IdRange, Loader};

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
    /// Reads the driver's endpoints and client timers as the driver itself reads them: the
    /// `[driver]` table, `policies.announce_period_ms` and
    /// `policies.lease_keepalive_interval_ms` with the driver's defaults and environment
    /// overrides (`DRIVER_CONTROL_STREAM_ID`, ...), so a role can share the driver's file.
    pub fn from_loader(
        l: &mut crate::config::Loader<'_>,
    ) -> Result<Self, crate::config::ConfigError> {
        let section = DriverSection::from_loader(l)?;
        let (announce_ms, keepalive_ms) = client_timers(l)?;
        Ok(Self::of_section(&section, announce_ms, keepalive_ms))
    }

    pub(crate) fn of_section(
        d: &DriverSection,
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
}

/// Reads `<table>.channel` and `<table>.<stream>_stream_id` over `defaults`.
pub(crate) fn streams_from_loader(
    l: &mut crate::config::Loader<'_>,
    table: &str,
    defaults: Streams,
) -> Result<Streams, crate::config::ConfigError> {
    let channel: String = l.value_or(
        &format!("{table}.channel"),
        defaults.control.channel.clone(),
        "an Aeron channel",
    )?;
    let mut s = Streams::on_channel(&channel);
    for (name, e, d) in [
        ("control", &mut s.control, &defaults.control),
        ("announce", &mut s.announce, &defaults.announce),
        ("descriptor", &mut s.descriptor, &defaults.descriptor),
        ("qos", &mut s.qos, &defaults.qos),
        ("metadata", &mut s.metadata, &defaults.metadata),
    ] {
        e.stream_id = l.value_or(
            &format!("{table}.{name}_stream_id"),
            d.stream_id,
            "a stream id",
        )?;
    }
    Ok(s)
}

// ---- the driver's `[driver]` table and client timers, read as the driver reads them ----

const U32: &str = "an unsigned 32-bit integer";
const STR: &str = "a string";
const RANGE: &str = "a range \"start-end\" or [start, end] with start <= end";

/// `driver.control_stream_id` default (Driver Model §17): the shared control stream.
pub const DEFAULT_CONTROL_STREAM_ID: u32 = crate::streams::CONTROL_STREAM_ID as u32;
/// `driver.qos_stream_id` default (Driver Model §17): the shared QoS stream.
pub const DEFAULT_QOS_STREAM_ID: u32 = crate::streams::QOS_STREAM_ID as u32;
/// `policies.announce_period_ms` default.
pub const DEFAULT_ANNOUNCE_PERIOD_MS: u32 = 1000;
/// `policies.lease_keepalive_interval_ms` default.
pub const DEFAULT_KEEPALIVE_INTERVAL_MS: u32 = 1000;

/// `[driver]`: identity and control-plane endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverSection {
    /// `driver.instance_id` (default `"driver-01"`).
    pub instance_id: String,
    /// `driver.aeron_dir` (default: none; an empty string also means none).
    pub aeron_dir: Option<PathBuf>,
    /// `driver.control_channel` (default `"aeron:ipc?term-length=4m"`).
    pub control_channel: String,
    /// `driver.control_stream_id` (default 1000).
    pub control_stream_id: u32,
    /// `driver.announce_channel` (default: the control channel).
    pub announce_channel: String,
    /// `driver.announce_stream_id` (default: the control stream id).
    pub announce_stream_id: u32,
    /// `driver.qos_channel` (default `"aeron:ipc?term-length=4m"`).
    pub qos_channel: String,
    /// `driver.qos_stream_id` (default 1200).
    pub qos_stream_id: u32,
    /// `driver.stream_id_range` (default: none, dynamic streams disabled).
    pub stream_id_range: Option<IdRange>,
    /// `driver.descriptor_stream_id_range` (default: none).
    pub descriptor_stream_id_range: Option<IdRange>,
    /// `driver.control_stream_id_range` (default: none).
    pub control_stream_id_range: Option<IdRange>,
}

fn stream_id(l: &mut Loader<'_>, key: &str, default: u32) -> Result<u32, ConfigError> {
    l.value_or(key, default, U32)
}

fn range(l: &mut Loader<'_>, key: &str) -> Result<Option<IdRange>, ConfigError> {
    let parsed = l.parsed(key, RANGE, |v| IdRange::from_toml(v).ok())?;
    match parsed {
        Some(r) => Ok(r),
        None => {
            l.record_default(key, &"");
            Ok(None)
        }
    }
}

impl DriverSection {
    /// Reads the `[driver]` table (and its environment overrides) as the driver does: the
    /// tools and the roles that only need the driver's endpoints read them through this, so
    /// their defaults and derivations are the driver's.
    pub fn from_loader(l: &mut Loader<'_>) -> Result<Self, ConfigError> {
        read_driver_section(l)
    }
}

/// `policies.announce_period_ms` and `policies.lease_keepalive_interval_ms` (a driver
/// client's timers), read as the driver reads them.
pub fn client_timers(l: &mut Loader<'_>) -> Result<(u32, u32), ConfigError> {
    Ok((announce_period_ms(l)?, keepalive_interval_ms(l)?))
}

pub(crate) fn announce_period_ms(l: &mut Loader<'_>) -> Result<u32, ConfigError> {
    l.value_or(
        "policies.announce_period_ms",
        DEFAULT_ANNOUNCE_PERIOD_MS,
        U32,
    )
}

pub(crate) fn keepalive_interval_ms(l: &mut Loader<'_>) -> Result<u32, ConfigError> {
    l.value_or(
        "policies.lease_keepalive_interval_ms",
        DEFAULT_KEEPALIVE_INTERVAL_MS,
        U32,
    )
}

pub(crate) fn read_driver_section(l: &mut Loader<'_>) -> Result<DriverSection, ConfigError> {
    let instance_id = l.value_or("driver.instance_id", "driver-01".to_owned(), STR)?;
    let aeron_dir: String = l.value_or("driver.aeron_dir", String::new(), STR)?;
    let control_channel = l.value_or("driver.control_channel", DEFAULT_CHANNEL.to_owned(), STR)?;
    let control_stream_id = stream_id(l, "driver.control_stream_id", DEFAULT_CONTROL_STREAM_ID)?;
    let announce_channel = match l.value::<String>("driver.announce_channel", STR)? {
        Some(c) => c,
        None => {
            l.record_derived(
                "driver.announce_channel",
                &control_channel,
                "driver.control_channel",
            );
            control_channel.clone()
        }
    };
    let announce_stream_id = match l.value::<u32>("driver.announce_stream_id", U32)? {
        Some(id) => id,
        None => {
            l.record_derived(
                "driver.announce_stream_id",
                &control_stream_id,
                "driver.control_stream_id",
            );
            control_stream_id
        }
    };
    let qos_channel = l.value_or("driver.qos_channel", DEFAULT_CHANNEL.to_owned(), STR)?;
    let qos_stream_id = stream_id(l, "driver.qos_stream_id", DEFAULT_QOS_STREAM_ID)?;
    Ok(DriverSection {
        instance_id,
        aeron_dir: (!aeron_dir.is_empty()).then(|| PathBuf::from(aeron_dir)),
        control_channel,
        control_stream_id,
        announce_channel,
        announce_stream_id,
        qos_channel,
        qos_stream_id,
        stream_id_range: range(l, "driver.stream_id_range")?,
        descriptor_stream_id_range: range(l, "driver.descriptor_stream_id_range")?,
        control_stream_id_range: range(l, "driver.control_stream_id_range")?,
    })
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
