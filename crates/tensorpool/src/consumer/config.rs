//! Consumer configuration: every field with its default, the builder and validation.

use std::path::PathBuf;
use std::time::Duration;

use tensorpool_shm::layout::DEFAULT_BASE_DIR;

use super::{BuildError, Consumer};
use crate::context::{Context, DEFAULT_AERON_TIMEOUT};
use crate::streams::{DriverEndpoints, Endpoint, Streams};

/// Delivery mode (Wire Spec §11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Every descriptor; late frames dropped.
    #[default]
    Stream,
    /// At most `max_rate_hz` frames per second (0: unlimited), gated on the descriptor's
    /// publish time, else the slot's capture time, else the local clock.
    RateLimited {
        /// Highest rate wanted.
        max_rate_hz: u32,
    },
}

impl Mode {
    pub(crate) fn wire(self) -> tensorpool_codec::wire::Mode {
        match self {
            Mode::Stream => tensorpool_codec::wire::Mode::Stream,
            Mode::RateLimited { .. } => tensorpool_codec::wire::Mode::RateLimited,
        }
    }

    /// The rate cap (0: none, and always 0 in STREAM mode).
    pub fn max_rate_hz(self) -> u32 {
        match self {
            Mode::Stream => 0,
            Mode::RateLimited { max_rate_hz } => max_rate_hz,
        }
    }
}

/// Progress hints sent in `ConsumerHello` (absent: producer defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProgressHints {
    /// Smallest interval between `PROGRESS` messages, µs.
    pub interval_us: Option<u32>,
    /// Smallest byte delta.
    pub bytes_delta: Option<u32>,
    /// Smallest row/column delta.
    pub major_delta_units: Option<u32>,
}

/// Everything a consumer is configured with; `ConsumerConfig::new(stream_id)` gives the
/// defaults listed on each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerConfig {
    /// Data source (pool stream id).
    pub stream_id: u32,
    /// Consumer id (default: random, non-zero; Wire Spec §10.1.2 self-assigned ids are random).
    pub consumer_id: u32,
    /// Shared logical streams (same defaults as the producer's).
    pub streams: Streams,
    /// Standalone mode: also take `ShmPoolAnnounce` from the shared control stream (default
    /// true). Driver Model §17 makes the announce stream default to the control stream (1000,
    /// where the C producer announces); STREAM_ID_CONVENTIONS gives 1001 (where ours does).
    /// A default consumer follows both; `consumer.announce_stream_id` set in a file or the
    /// environment turns this off (unless `consumer.announce_on_control` says otherwise).
    /// Ignored when the announce and control endpoints are the same.
    pub announce_on_control: bool,
    /// Delivery mode (default STREAM).
    pub mode: Mode,
    /// Ask for `FrameProgress` (default false).
    pub supports_progress: bool,
    /// Progress hints (default: none, producer defaults apply).
    pub progress_hints: ProgressHints,
    /// Request a per-consumer descriptor stream (default none).
    pub descriptor_request: Option<Endpoint>,
    /// Request a per-consumer control stream for `FrameProgress` (default none).
    pub control_request: Option<Endpoint>,
    /// SHM layout version understood (default 1).
    pub expected_layout_version: u32,
    /// Directories announced regions must lie in (default `[/dev/shm/tensorpool]`).
    pub allowed_base_dirs: Vec<PathBuf>,
    /// Announces older than this (vs local receipt time) are ignored (default 3 s: 3x the
    /// 1 s announce period, Wire Spec §10.1.1).
    pub announce_freshness: Duration,
    /// A mapped region whose `activity_timestamp_ns` is older than this is dead: unmap and
    /// wait for a new epoch (default 3 s, §15.1 / §15.14).
    pub activity_timeout: Duration,
    /// After a failed mapping, the same epoch is not retried for this long (default 1 s).
    pub remap_backoff: Duration,
    /// `ConsumerHello` period (default 1 s; also sent at start).
    pub hello_interval: Duration,
    /// `QosConsumer` period (default 1 s).
    pub qos_interval: Duration,
    /// Seq gap above which the consumer counts a resync (default 256; 0 disables, §15.4).
    pub max_outstanding_seq_gap: u64,
    /// Catch up once lapped (default true): after a frame was lost to an overwrite (`late`,
    /// `overwritten`), every frame whose producer has already begun the frame half a header
    /// ring later (`nslots / 2`, rings of 4 slots or more) is dropped (cause `behind`)
    /// without being read, until one is read with that headroom. A consumer slower than its
    /// producer then reads frames with half a ring of headroom instead of always the oldest
    /// one, which the producer overwrites while it is being read (`consumer.catch_up`). A
    /// consumer that was never lapped loses nothing to it.
    pub catch_up: bool,
    /// Follow the metadata stream (default true).
    pub metadata: bool,
    /// Largest meta blob reassembled (default 16 MiB).
    pub max_meta_blob_bytes: u64,
    /// Cap on the bytes one epoch's regions may map, header ring and pools together, checked
    /// against the announce before anything is opened (default 16 GiB; 0: no cap).
    pub max_mapped_bytes: u64,
    /// Local fallback used when mapping fails (default none); see the `fallback_*` fields
    /// for how a fallback is served.
    pub payload_fallback_uri: Option<String>,
    /// Aeron stream id of an `aeron:` fallback URI that carries no `stream-id` parameter
    /// (`consumer.fallback_stream_id`; default 0: none, such a URI is refused).
    pub fallback_stream_id: i32,
    /// `bridge://<id>` fallback URIs: each id with the Aeron channel and stream id its
    /// chunks arrive on (`[consumer.bridges.<id>]` with `channel` and `stream_id`; default
    /// none: every `bridge://` URI is refused).
    pub fallback_bridges: Vec<BridgeRoute>,
    /// Largest frame payload received through a fallback (default 1 MiB; the assembly
    /// buffers, 4 of this size, are allocated on entering FALLBACK; larger frames are
    /// dropped and counted).
    pub fallback_max_payload_bytes: u32,
    /// Fallback chunks must carry a matching CRC32C (default false: a non-zero CRC32C is
    /// checked anyway; Bridge Spec §5.4).
    pub fallback_integrity_crc32c: bool,
    /// A frame still incomplete this long after its first chunk is dropped (default 250 ms,
    /// Bridge Spec §5.3a).
    pub fallback_assembly_timeout: Duration,
    /// Wait for the media driver to register a subscription or publication (default 5 s).
    pub aeron_timeout: Duration,
    /// Attach through an SHM driver as CONSUMER (Driver Model §2.3) instead of following
    /// announces directly (default none: standalone producers).
    pub driver: Option<DriverEndpoints>,
    /// Publish the counters as Aeron counters in the media driver's counters file
    /// (default true; see [`crate::counters`]).
    pub aeron_counters: bool,
    /// The rate cap (frames per second; 0: none) applied when the consumer asked for
    /// [`Mode::Stream`] and a supervisor's `ConsumerConfig` forces RATE_LIMITED
    /// (`consumer.max_rate_hz` with `mode = "stream"`; `ConsumerConfig` carries no rate).
    pub forced_rate_hz: u32,
}

/// One `bridge://<id>` fallback route (`[consumer.bridges.<id>]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeRoute {
    /// The `<id>` of `bridge://<id>`.
    pub id: String,
    /// The Aeron channel the bridge sender's chunks arrive on (its `payload_channel`).
    pub channel: String,
    /// Their stream id (the bridge's `payload_stream_id`).
    pub stream_id: i32,
}

fn random_id() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(tensorpool_agent::monotonic_ns());
    h.write_u32(std::process::id());
    (h.finish() as u32).max(1)
}

const BOOL: &str = "true or false";

/// Default [`ConsumerConfig::max_mapped_bytes`]: 16 GiB.
pub const DEFAULT_MAX_MAPPED_BYTES: u64 = 16 << 30;

impl ConsumerConfig {
    /// Loads a consumer configuration: the `[consumer]` table of `path` (or no file),
    /// environment variables overriding it (`CONSUMER_STREAM_ID`, `CONSUMER_MODE`, ...),
    /// defaults for the rest. Every key is listed, with its default and variable, in
    /// `docs/roles.md`. Returns the configuration, where each value came from, and the keys
    /// of `[consumer]` nobody knows.
    pub fn load(
        path: Option<&std::path::Path>,
        env: &dyn crate::config::EnvSource,
    ) -> Result<crate::config::Loaded<Self>, crate::config::ConfigError> {
        crate::config::Loaded::read_table(path, env, "consumer", Self::from_loader)
    }

    /// Reads the `[consumer]` table through `l` (see [`ConsumerConfig::load`]). With
    /// `consumer.use_driver = true`, the driver's endpoints and client timers are read as the
    /// driver reads them (`[driver]` control / announce keys, `policies.announce_period_ms`,
    /// `policies.lease_keepalive_interval_ms`).
    pub fn from_loader(
        l: &mut crate::config::Loader<'_>,
    ) -> Result<Self, crate::config::ConfigError> {
        use crate::config::duration_ms;
        let stream_id = l.value_or(
            "consumer.stream_id",
            crate::streams::DEFAULT_POOL_STREAM_ID,
            "a stream id",
        )?;
        let mut c = Self::new(stream_id);
        c.consumer_id = l.value_or("consumer.consumer_id", c.consumer_id, "a non-zero id")?;
        if l.value_or("consumer.use_driver", false, BOOL)? {
            let mut endpoints = DriverEndpoints::from_loader(l)?;
            endpoints.attach_timeout =
                duration_ms(l, "consumer.attach_timeout_ms", endpoints.attach_timeout)?;
            c.driver = Some(endpoints);
        }
        let mode: String = l.value_or(
            "consumer.mode",
            "stream".to_owned(),
            "stream or rate_limited",
        )?;
        let rate = l.value_or("consumer.max_rate_hz", 0u32, "frames per second")?;
        c.mode = match mode.as_str() {
            "rate_limited" | "rate-limited" => Mode::RateLimited { max_rate_hz: rate },
            "stream" => {
                c.forced_rate_hz = rate;
                Mode::Stream
            }
            _ => {
                let origin = l
                    .provenance()
                    .source("consumer.mode")
                    .cloned()
                    .unwrap_or(crate::config::Source::File);
                return Err(crate::config::ConfigError::Invalid {
                    key: "consumer.mode".into(),
                    origin,
                    expected: "stream or rate_limited".into(),
                    found: mode,
                });
            }
        };
        c.supports_progress = l.value_or("consumer.supports_progress", false, BOOL)?;
        c.progress_hints = ProgressHints {
            interval_us: l.value("consumer.progress_interval_us", "microseconds")?,
            bytes_delta: l.value("consumer.progress_bytes_delta", "bytes")?,
            major_delta_units: l.value("consumer.progress_major_delta_units", "rows or columns")?,
        };
        c.descriptor_request = request(l, "descriptor")?;
        c.control_request = request(l, "control")?;
        c.allowed_base_dirs = l.value_or(
            "consumer.allowed_base_dirs",
            c.allowed_base_dirs,
            "a list of absolute paths",
        )?;
        c.announce_freshness =
            duration_ms(l, "consumer.announce_freshness_ms", c.announce_freshness)?;
        c.activity_timeout = duration_ms(l, "consumer.activity_timeout_ms", c.activity_timeout)?;
        c.remap_backoff = duration_ms(l, "consumer.remap_backoff_ms", c.remap_backoff)?;
        c.hello_interval = duration_ms(l, "consumer.hello_interval_ms", c.hello_interval)?;
        c.qos_interval = duration_ms(l, "consumer.qos_interval_ms", c.qos_interval)?;
        c.max_outstanding_seq_gap = l.value_or(
            "consumer.max_outstanding_seq_gap",
            c.max_outstanding_seq_gap,
            "frames",
        )?;
        c.catch_up = l.value_or("consumer.catch_up", c.catch_up, BOOL)?;
        c.metadata = l.value_or("consumer.metadata", c.metadata, BOOL)?;
        c.max_meta_blob_bytes = l.value_or(
            "consumer.max_meta_blob_bytes",
            c.max_meta_blob_bytes,
            "bytes",
        )?;
        c.max_mapped_bytes = l.value_or(
            "consumer.max_mapped_bytes",
            c.max_mapped_bytes,
            "bytes (0: no cap)",
        )?;
        let fallback: String = l.value_or(
            "consumer.payload_fallback_uri",
            String::new(),
            "a URI (empty: none)",
        )?;
        c.payload_fallback_uri = (!fallback.is_empty()).then_some(fallback);
        c.fallback_stream_id = l.value_or(
            "consumer.fallback_stream_id",
            c.fallback_stream_id,
            "a stream id (0: none)",
        )?;
        for id in l.table_names("consumer.bridges")? {
            let key = |k: &str| format!("consumer.bridges.{id}.{k}");
            let channel: String =
                l.value(&key("channel"), "an Aeron channel")?
                    .ok_or_else(|| crate::config::ConfigError::Inconsistent {
                        key: key("channel"),
                        reason: "a bridge route needs a channel".into(),
                    })?;
            let stream_id: i32 = l
                .value(&key("stream_id"), "a positive stream id")?
                .ok_or_else(|| crate::config::ConfigError::Inconsistent {
                    key: key("stream_id"),
                    reason: "a bridge route needs a stream_id".into(),
                })?;
            c.fallback_bridges.push(BridgeRoute {
                id,
                channel,
                stream_id,
            });
        }
        c.fallback_max_payload_bytes = l.value_or(
            "consumer.fallback_max_payload_bytes",
            c.fallback_max_payload_bytes,
            "bytes",
        )?;
        c.fallback_integrity_crc32c = l.value_or(
            "consumer.fallback_integrity_crc32c",
            c.fallback_integrity_crc32c,
            BOOL,
        )?;
        c.fallback_assembly_timeout = duration_ms(
            l,
            "consumer.fallback_assembly_timeout_ms",
            c.fallback_assembly_timeout,
        )?;
        c.aeron_timeout = duration_ms(l, "consumer.aeron_timeout_ms", c.aeron_timeout)?;
        c.aeron_counters = l.value_or("consumer.aeron_counters", c.aeron_counters, BOOL)?;
        c.streams = crate::streams::streams_from_loader(l, "consumer", c.streams)?;
        // An announce stream given explicitly is the only one, unless said otherwise.
        let explicit = l
            .provenance()
            .source("consumer.announce_stream_id")
            .is_some_and(|s| *s != crate::config::Source::Default);
        c.announce_on_control = l.value_or("consumer.announce_on_control", !explicit, BOOL)?;
        Ok(c)
    }

    /// Defaults for data source `stream_id`.
    pub fn new(stream_id: u32) -> Self {
        Self {
            stream_id,
            consumer_id: random_id(),
            streams: Streams::default(),
            announce_on_control: true,
            mode: Mode::Stream,
            supports_progress: false,
            progress_hints: ProgressHints::default(),
            descriptor_request: None,
            control_request: None,
            expected_layout_version: tensorpool_shm::LAYOUT_VERSION,
            allowed_base_dirs: vec![PathBuf::from(DEFAULT_BASE_DIR)],
            announce_freshness: Duration::from_secs(3),
            activity_timeout: Duration::from_secs(3),
            remap_backoff: Duration::from_secs(1),
            hello_interval: Duration::from_secs(1),
            qos_interval: Duration::from_secs(1),
            max_outstanding_seq_gap: 256,
            catch_up: true,
            metadata: true,
            max_meta_blob_bytes: 16 << 20,
            max_mapped_bytes: DEFAULT_MAX_MAPPED_BYTES,
            payload_fallback_uri: None,
            fallback_stream_id: 0,
            fallback_bridges: Vec::new(),
            fallback_max_payload_bytes: 1 << 20,
            fallback_integrity_crc32c: false,
            fallback_assembly_timeout: Duration::from_millis(250),
            aeron_timeout: DEFAULT_AERON_TIMEOUT,
            driver: None,
            aeron_counters: true,
            forced_rate_hz: 0,
        }
    }

    /// Checks every field; the error names the field and what it must be.
    pub fn validate(&self) -> Result<(), BuildError> {
        let bad = |field: &'static str, expected: &'static str| {
            Err(BuildError::InvalidConfig { field, expected })
        };
        if self.stream_id == 0 {
            return bad("stream_id", "a non-zero stream id");
        }
        if self.consumer_id == 0 {
            return bad("consumer_id", "a non-zero id");
        }
        for (field, r) in [
            ("descriptor_request", &self.descriptor_request),
            ("control_request", &self.control_request),
        ] {
            // Never a non-empty channel with stream id 0 (Wire Spec §10.1.2).
            if let Some(e) = r
                && (e.channel.is_empty() || e.stream_id <= 0)
            {
                return bad(field, "a non-empty channel and a positive stream id");
            }
        }
        for (field, d) in [
            ("announce_freshness", self.announce_freshness),
            ("activity_timeout", self.activity_timeout),
            ("hello_interval", self.hello_interval),
            ("qos_interval", self.qos_interval),
        ] {
            if d.is_zero() {
                return bad(field, "a non-zero duration");
            }
        }
        if self.allowed_base_dirs.is_empty() {
            return bad("allowed_base_dirs", "at least one directory");
        }
        if self.fallback_stream_id < 0 {
            return bad("fallback_stream_id", "0 (none) or a positive stream id");
        }
        if self
            .fallback_bridges
            .iter()
            .any(|b| b.id.is_empty() || b.channel.is_empty() || b.stream_id <= 0)
        {
            return bad(
                "fallback_bridges",
                "routes with an id, a non-empty channel and a positive stream id",
            );
        }
        if self.fallback_max_payload_bytes == 0 {
            return bad("fallback_max_payload_bytes", "a non-zero size");
        }
        if self.fallback_assembly_timeout.is_zero() {
            return bad("fallback_assembly_timeout", "a non-zero duration");
        }
        Ok(())
    }
}

/// Builds a [`Consumer`] (see [`Context::consumer`]).
#[derive(Debug)]
pub struct ConsumerBuilder {
    ctx: Context,
    config: ConsumerConfig,
}

impl Context {
    /// A builder for a consumer of data source `stream_id`.
    pub fn consumer(&self, stream_id: u32) -> ConsumerBuilder {
        ConsumerBuilder::new(self.clone(), stream_id)
    }
}

impl ConsumerBuilder {
    pub(crate) fn new(ctx: Context, stream_id: u32) -> Self {
        Self {
            ctx,
            config: ConsumerConfig::new(stream_id),
        }
    }

    /// Delivery mode.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.config.mode = mode;
        self
    }

    /// Directories announced regions must lie in (replaces the default).
    pub fn allowed_base_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.allowed_base_dirs = vec![dir.into()];
        self
    }

    /// Asks for `FrameProgress`.
    pub fn progress(mut self, hints: ProgressHints) -> Self {
        self.config.supports_progress = true;
        self.config.progress_hints = hints;
        self
    }

    /// Requests a per-consumer descriptor stream.
    pub fn descriptor_stream(mut self, endpoint: Endpoint) -> Self {
        self.config.descriptor_request = Some(endpoint);
        self
    }

    /// Driver mode: attach to the SHM driver at `endpoints` and map the regions it grants.
    pub fn driver(mut self, endpoints: DriverEndpoints) -> Self {
        self.config.driver = Some(endpoints);
        self
    }

    /// Sets the shared logical streams.
    pub fn streams(mut self, streams: Streams) -> Self {
        self.config.streams = streams;
        self
    }

    /// Changes any other field.
    pub fn configure(mut self, f: impl FnOnce(&mut ConsumerConfig)) -> Self {
        f(&mut self.config);
        self
    }

    /// Replaces the whole configuration (its `stream_id` included).
    pub fn config(mut self, config: ConsumerConfig) -> Self {
        self.config = config;
        self
    }

    /// Validates, resolves the allowed directories and adds the Aeron streams.
    pub fn build(self) -> Result<Consumer, BuildError> {
        self.config.validate()?;
        Consumer::new(self.ctx, self.config)
    }
}

/// `consumer.request_<which>_channel` + `consumer.request_<which>_stream_id`: a
/// per-consumer stream request (both, or neither).
fn request(
    l: &mut crate::config::Loader<'_>,
    which: &str,
) -> Result<Option<Endpoint>, crate::config::ConfigError> {
    let ck = format!("consumer.request_{which}_channel");
    let ik = format!("consumer.request_{which}_stream_id");
    let channel: String = l.value_or(&ck, String::new(), "an Aeron channel (empty: none)")?;
    let id: i32 = l.value_or(&ik, 0, "a stream id (0: none)")?;
    match (channel.is_empty(), id) {
        (true, 0) => Ok(None),
        (false, id) if id > 0 => Ok(Some(Endpoint::new(channel, id))),
        _ => Err(crate::config::ConfigError::Inconsistent {
            key: ck,
            reason: format!("{ik} must be given with it (both, or neither)"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn stream_mode_keeps_max_rate_hz_for_a_supervisor_forced_rate_limit() {
        let env = HashMap::new();
        let text = "[consumer]\nmode = \"stream\"\nmax_rate_hz = 7\n";
        let mut l = crate::config::Loader::from_str(text, "inline", &env).unwrap();
        let c = ConsumerConfig::from_loader(&mut l).unwrap();
        assert_eq!((c.mode, c.forced_rate_hz), (Mode::Stream, 7));
        assert_eq!(
            c.mode.max_rate_hz(),
            0,
            "the hello asks for no rate in STREAM"
        );
        let text = "[consumer]\nmode = \"rate_limited\"\nmax_rate_hz = 7\n";
        let mut l = crate::config::Loader::from_str(text, "inline", &env).unwrap();
        let c = ConsumerConfig::from_loader(&mut l).unwrap();
        assert_eq!(
            (c.mode, c.forced_rate_hz),
            (Mode::RateLimited { max_rate_hz: 7 }, 0)
        );
    }

    #[test]
    fn catch_up_is_read_from_the_file_and_the_environment() {
        let text = "[consumer]\nstream_id = 1\ncatch_up = false\n";
        let env = HashMap::new();
        let mut l = crate::config::Loader::from_str(text, "inline", &env).unwrap();
        assert!(!ConsumerConfig::from_loader(&mut l).unwrap().catch_up);
        let env = HashMap::from([("CONSUMER_CATCH_UP".to_string(), "true".to_string())]);
        let mut l = crate::config::Loader::from_str(text, "inline", &env).unwrap();
        assert!(ConsumerConfig::from_loader(&mut l).unwrap().catch_up);
    }

    #[test]
    fn dm_17_consumer_keys_from_file_with_environment_overrides() {
        let env = HashMap::from([("CONSUMER_MAX_RATE_HZ".to_string(), "25".to_string())]);
        let text = "[consumer]\nstream_id = 10005\nmode = \"rate_limited\"\nmax_rate_hz = 5\ndescriptor_stream_id = 1111\n";
        let mut l = crate::config::Loader::from_str(text, "inline", &env).unwrap();
        let c = ConsumerConfig::from_loader(&mut l).unwrap();
        assert_eq!(c.stream_id, 10005);
        assert_eq!(
            c.mode,
            Mode::RateLimited { max_rate_hz: 25 },
            "the environment wins"
        );
        assert_eq!(c.streams.descriptor.stream_id, 1111);
        assert_eq!(
            c.streams.control.stream_id,
            crate::streams::CONTROL_STREAM_ID
        );
        let mut bad =
            crate::config::Loader::from_str("[consumer]\nmode = \"fast\"\n", "inline", &env)
                .unwrap();
        let err = ConsumerConfig::from_loader(&mut bad).unwrap_err();
        assert!(err.to_string().contains("consumer.mode"), "{err}");
    }

    #[test]
    fn dm_17_consumer_announces_on_control_unless_an_announce_stream_is_given() {
        let env = HashMap::new();
        let load = |text: &str, env: &HashMap<String, String>| {
            let mut l = crate::config::Loader::from_str(text, "inline", env).unwrap();
            ConsumerConfig::from_loader(&mut l).unwrap()
        };
        assert!(load("", &env).announce_on_control, "default: 1001 and 1000");
        let c = load("[consumer]\nannounce_stream_id = 1002\n", &env);
        assert!(
            !c.announce_on_control,
            "an explicit announce stream is the only one"
        );
        assert_eq!(c.streams.announce.stream_id, 1002);
        let c = load(
            "[consumer]\nannounce_stream_id = 1002\nannounce_on_control = true\n",
            &env,
        );
        assert!(c.announce_on_control, "unless said otherwise");
        let by_env = HashMap::from([(
            "CONSUMER_ANNOUNCE_STREAM_ID".to_string(),
            "1001".to_string(),
        )]);
        assert!(
            !load("", &by_env).announce_on_control,
            "the environment counts too"
        );
    }

    #[test]
    fn max_mapped_bytes_from_file_and_environment() {
        let none = HashMap::new();
        let mut l = crate::config::Loader::from_str("[consumer]\n", "inline", &none).unwrap();
        let c = ConsumerConfig::from_loader(&mut l).unwrap();
        assert_eq!(c.max_mapped_bytes, DEFAULT_MAX_MAPPED_BYTES);
        let text = "[consumer]\nmax_mapped_bytes = 1048576\n";
        let mut l = crate::config::Loader::from_str(text, "inline", &none).unwrap();
        assert_eq!(
            ConsumerConfig::from_loader(&mut l)
                .unwrap()
                .max_mapped_bytes,
            1 << 20
        );
        let env = HashMap::from([("CONSUMER_MAX_MAPPED_BYTES".to_string(), "0".to_string())]);
        let mut l = crate::config::Loader::from_str(text, "inline", &env).unwrap();
        assert_eq!(
            ConsumerConfig::from_loader(&mut l)
                .unwrap()
                .max_mapped_bytes,
            0,
            "the environment wins; 0 is no cap"
        );
    }

    #[test]
    fn dm_17_consumer_driver_mode_shares_the_drivers_keys() {
        let env = HashMap::from([("DRIVER_CONTROL_STREAM_ID".to_string(), "2000".to_string())]);
        let text = "[consumer]\nuse_driver = true\nrequest_descriptor_channel = \"aeron:ipc\"\n\
                    request_descriptor_stream_id = 31001\npayload_fallback_uri = \"aeron:ipc\"\n\
                    bogus = 1\n[driver]\ncontrol_channel = \"aeron:ipc\"\n\
                    [policies]\nannounce_period_ms = 250\n[profiles.p]\nheader_nslots = 8\n";
        let mut l = crate::config::Loader::from_str(text, "inline", &env).unwrap();
        let c = ConsumerConfig::from_loader(&mut l).unwrap();
        let d = c.driver.as_ref().expect("driver mode");
        assert_eq!(d.control, Endpoint::new("aeron:ipc", 2000));
        assert_eq!(
            d.announce, d.control,
            "announce follows control, as in the driver"
        );
        assert_eq!(d.announce_period, Duration::from_millis(250));
        assert_eq!(
            c.descriptor_request,
            Some(Endpoint::new("aeron:ipc", 31_001))
        );
        assert_eq!(c.control_request, None);
        assert_eq!(c.payload_fallback_uri.as_deref(), Some("aeron:ipc"));
        assert_eq!(
            crate::config::unknown_keys_under(&l, "consumer"),
            ["consumer.bogus"],
            "the driver's tables are a peer's, not unknown"
        );
        let half = "[consumer]\nrequest_control_channel = \"aeron:ipc\"\n";
        let mut l = crate::config::Loader::from_str(half, "inline", &env).unwrap();
        let err = ConsumerConfig::from_loader(&mut l).unwrap_err();
        assert!(
            err.to_string().contains("request_control_stream_id"),
            "{err}"
        );
    }
}
