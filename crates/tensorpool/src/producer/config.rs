//! Producer configuration: every field with its default, the builder and validation.

use std::path::PathBuf;
use std::time::Duration;

use tensorpool_shm::layout::{DEFAULT_BASE_DIR, DEFAULT_NAMESPACE, FileModes};
use tensorpool_shm::pool::{PoolGeometry, validate_pools};

use super::{BuildError, Producer};
use crate::context::{Context, DEFAULT_AERON_TIMEOUT};
use crate::streams::{DriverEndpoints, Streams, streams_from_loader};

/// One payload pool (size class).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    /// Pool id announced to consumers.
    pub pool_id: u16,
    /// Bytes per slot: a non-zero multiple of 64 (a power of two keeps Julia peers happy).
    pub stride_bytes: u32,
}

/// Progress throttling values (Wire Spec §10.1.2, §10.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgressPolicy {
    /// Smallest interval between `PROGRESS` messages, µs.
    pub interval_us: u32,
    /// Smallest payload growth between `PROGRESS` messages, bytes.
    pub bytes_delta: u32,
    /// Smallest growth in rows/columns between `PROGRESS` messages (0: unset).
    pub major_delta_units: u32,
}

/// Where the producer's shared-memory regions come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegionMode {
    /// The producer creates its own files under the canonical layout and announces them
    /// (Wire Spec §15.14; no SHM driver).
    Standalone,
    /// The producer attaches to an SHM driver as PRODUCER and writes into the driver's files
    /// (Driver Model §2.2); the driver announces. `shm_base_dir` is then the directory the
    /// driver's URIs must lie in.
    Driver(DriverEndpoints),
}

/// Everything a producer is configured with. `ProducerConfig::new(stream_id)` gives the
/// defaults listed on each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerConfig {
    /// Data source (pool stream id).
    pub stream_id: u32,
    /// Producer id in announces and QoS (default 1).
    pub producer_id: u32,
    /// Shared logical streams (defaults: control 1000, announce 1001, descriptor 1100,
    /// QoS 1200, metadata 1300 on `aeron:ipc?term-length=4m`).
    pub streams: Streams,
    /// Header ring slots, a power of two (default 64).
    pub header_nslots: u32,
    /// Payload pools (default: pool 1 with a 1 MiB stride).
    pub pools: Vec<PoolConfig>,
    /// Region source (default standalone).
    pub mode: RegionMode,
    /// Standalone: `shm_base_dir` (default `/dev/shm/tensorpool`).
    pub shm_base_dir: PathBuf,
    /// Standalone: namespace of the canonical layout (default `default`).
    pub shm_namespace: String,
    /// Standalone: file and directory modes (default 0600 / 0700).
    pub shm_modes: FileModes,
    /// Standalone: touch every page when creating and mapping (default true).
    pub prefault: bool,
    /// `mlock` the mappings (default false; failure is an error).
    pub mlock: bool,
    /// `ShmPoolAnnounce` period, also the activity refresh period (default 1 s).
    pub announce_period: Duration,
    /// `QosProducer` period (default 1 s).
    pub qos_period: Duration,
    /// `DataSourceAnnounce` period (default 1 s).
    pub data_source_period: Duration,
    /// Periodic `DataSourceMeta` resend (default 1 s; also sent on change).
    pub meta_period: Duration,
    /// The consumers' hello / QoS interval the staleness rule refers to (default 1 s).
    pub consumer_hello_interval: Duration,
    /// A consumer heard from neither by hello nor QoS for this many intervals is stale
    /// (3..=5, default 4: the midpoint of Wire Spec §5's 3-5x).
    pub consumer_stale_factor: u32,
    /// Grant per-consumer descriptor / control streams when asked (default true).
    pub per_consumer_streams: bool,
    /// Consumers tracked at most (default 64); more are answered without per-consumer streams.
    pub max_consumers: usize,
    /// Progress defaults when no consumer gives hints (default 250 µs, 65536 B, 0).
    pub progress_default: ProgressPolicy,
    /// Progress safety floors: hints below them are raised (default 100 µs, 4096 B, 0).
    pub progress_floor: ProgressPolicy,
    /// Put the publish time in `FrameDescriptor.timestamp_ns` (default false: null, §10.2.1).
    pub publish_timestamp: bool,
    /// `ConsumerConfig.use_shm` sent to consumers (default true).
    pub use_shm: bool,
    /// `ConsumerConfig.payload_fallback_uri` sent to consumers (default empty).
    pub payload_fallback_uri: String,
    /// `DataSourceAnnounce` name (default empty).
    pub name: String,
    /// `DataSourceAnnounce` summary (default empty).
    pub summary: String,
    /// Meta blob chunk size, at most 64 KiB (default 64 KiB, Wire Spec §15.9 `CHUNK_MAX`).
    pub meta_blob_chunk_bytes: usize,
    /// Wait for the media driver to register a publication, subscription or counter
    /// (default 5 s).
    pub aeron_timeout: Duration,
    /// Publish the counters as Aeron counters in the media driver's counters file
    /// (default true; see [`crate::counters`]).
    pub aeron_counters: bool,
    /// The shared descriptor stream refusing every descriptor with back pressure for this
    /// long is a stall: logged and counted once (default 1 s).
    pub stall_threshold: Duration,
    /// Mint a TraceLink trace id for every frame (TraceLink §6.3 root frames; default
    /// false). The node id is `trace_node_id`, else the one the SHM driver assigned.
    pub trace_ids: bool,
    /// Node id of the trace ids (0 to 1023); required for a standalone producer with
    /// `trace_ids` (no driver assigns one).
    pub trace_node_id: Option<u32>,
}

/// `CHUNK_MAX` (Wire Spec §15.9).
pub const META_BLOB_CHUNK_MAX: usize = 64 * 1024;

const U32: &str = "an unsigned 32-bit integer";
const BOOL: &str = "true or false";

/// `<prefix>_interval_us`, `<prefix>_bytes_delta`, `<prefix>_major_delta_units`.
fn progress_policy(
    l: &mut crate::config::Loader<'_>,
    prefix: &str,
    d: ProgressPolicy,
) -> Result<ProgressPolicy, crate::config::ConfigError> {
    Ok(ProgressPolicy {
        interval_us: l.value_or(&format!("{prefix}_interval_us"), d.interval_us, U32)?,
        bytes_delta: l.value_or(&format!("{prefix}_bytes_delta"), d.bytes_delta, U32)?,
        major_delta_units: l.value_or(
            &format!("{prefix}_major_delta_units"),
            d.major_delta_units,
            U32,
        )?,
    })
}

impl ProducerConfig {
    /// Loads a producer configuration: the `[producer]` table of `path` (or no file),
    /// environment variables overriding it (Driver Model §17 naming: `PRODUCER_STREAM_ID`,
    /// `PRODUCER_SHM_BASE_DIR`, ...), defaults for the rest. Every key is listed, with its
    /// default and variable, in `docs/roles.md`. Returns the configuration, where each
    /// value came from, and the keys of `[producer]` nobody knows.
    pub fn load(
        path: Option<&std::path::Path>,
        env: &dyn crate::config::EnvSource,
    ) -> Result<crate::config::Loaded<Self>, crate::config::ConfigError> {
        crate::config::Loaded::read_table(path, env, "producer", Self::from_loader)
    }

    /// Reads the `[producer]` table through `l` (see [`ProducerConfig::load`]). With
    /// `producer.use_driver = true`, the driver's endpoints and client timers are read as the
    /// driver reads them (`[driver]` control / announce keys, `policies.announce_period_ms`,
    /// `policies.lease_keepalive_interval_ms`), so the producer can share the driver's file.
    pub fn from_loader(
        l: &mut crate::config::Loader<'_>,
    ) -> Result<Self, crate::config::ConfigError> {
        use crate::config::duration_ms;
        let stream_id = l.value_or(
            "producer.stream_id",
            crate::streams::DEFAULT_POOL_STREAM_ID,
            U32,
        )?;
        let mut c = Self::new(stream_id);
        c.producer_id = l.value_or("producer.producer_id", c.producer_id, U32)?;
        if l.value_or("producer.use_driver", false, BOOL)? {
            let mut endpoints = DriverEndpoints::from_loader(l)?;
            endpoints.attach_timeout =
                duration_ms(l, "producer.attach_timeout_ms", endpoints.attach_timeout)?;
            c.mode = RegionMode::Driver(endpoints);
        }
        c.header_nslots = l.value_or("producer.header_nslots", c.header_nslots, U32)?;
        let stride = l.value_or("producer.pool_stride_bytes", c.pools[0].stride_bytes, U32)?;
        c.pools = vec![PoolConfig {
            pool_id: 1,
            stride_bytes: stride,
        }];
        c.shm_base_dir = l.value_or("producer.shm_base_dir", c.shm_base_dir, "an absolute path")?;
        c.shm_namespace = l.value_or("producer.shm_namespace", c.shm_namespace, "a string")?;
        c.prefault = l.value_or("producer.prefault", c.prefault, BOOL)?;
        c.mlock = l.value_or("producer.mlock", c.mlock, BOOL)?;
        c.announce_period = duration_ms(l, "producer.announce_period_ms", c.announce_period)?;
        c.qos_period = duration_ms(l, "producer.qos_period_ms", c.qos_period)?;
        c.data_source_period =
            duration_ms(l, "producer.data_source_period_ms", c.data_source_period)?;
        c.meta_period = duration_ms(l, "producer.meta_period_ms", c.meta_period)?;
        c.consumer_hello_interval = duration_ms(
            l,
            "producer.consumer_hello_interval_ms",
            c.consumer_hello_interval,
        )?;
        c.consumer_stale_factor = l.value_or(
            "producer.consumer_stale_factor",
            c.consumer_stale_factor,
            "3, 4 or 5",
        )?;
        c.per_consumer_streams = l.value_or(
            "producer.per_consumer_streams",
            c.per_consumer_streams,
            BOOL,
        )?;
        c.max_consumers = l.value_or("producer.max_consumers", c.max_consumers, "a count")?;
        c.progress_default = progress_policy(l, "producer.progress", c.progress_default)?;
        c.progress_floor = progress_policy(l, "producer.progress_floor", c.progress_floor)?;
        c.publish_timestamp =
            l.value_or("producer.publish_timestamp", c.publish_timestamp, BOOL)?;
        c.use_shm = l.value_or("producer.use_shm", c.use_shm, BOOL)?;
        c.payload_fallback_uri = l.value_or(
            "producer.payload_fallback_uri",
            c.payload_fallback_uri,
            "a URI (empty: none)",
        )?;
        c.name = l.value_or("producer.name", c.name, "a string")?;
        c.summary = l.value_or("producer.summary", c.summary, "a string")?;
        c.meta_blob_chunk_bytes = l.value_or(
            "producer.meta_blob_chunk_bytes",
            c.meta_blob_chunk_bytes,
            "1 to 65536 bytes",
        )?;
        c.aeron_timeout = duration_ms(l, "producer.aeron_timeout_ms", c.aeron_timeout)?;
        c.aeron_counters = l.value_or("producer.aeron_counters", c.aeron_counters, BOOL)?;
        c.stall_threshold =
            crate::config::duration_ms(l, "producer.stall_threshold_ms", c.stall_threshold)?;
        c.trace_ids = l.value_or("producer.trace_ids", c.trace_ids, BOOL)?;
        c.trace_node_id = l.value::<u32>("producer.trace_node_id", "a node id, 0 to 1023")?;
        c.streams = streams_from_loader(l, "producer", c.streams)?;
        Ok(c)
    }

    /// Defaults for data source `stream_id`.
    pub fn new(stream_id: u32) -> Self {
        Self {
            stream_id,
            producer_id: 1,
            streams: Streams::default(),
            header_nslots: 64,
            pools: vec![PoolConfig {
                pool_id: 1,
                stride_bytes: 1 << 20,
            }],
            mode: RegionMode::Standalone,
            shm_base_dir: PathBuf::from(DEFAULT_BASE_DIR),
            shm_namespace: DEFAULT_NAMESPACE.to_owned(),
            shm_modes: FileModes::default(),
            prefault: true,
            mlock: false,
            announce_period: Duration::from_secs(1),
            qos_period: Duration::from_secs(1),
            data_source_period: Duration::from_secs(1),
            meta_period: Duration::from_secs(1),
            consumer_hello_interval: Duration::from_secs(1),
            consumer_stale_factor: 4,
            per_consumer_streams: true,
            max_consumers: 64,
            progress_default: ProgressPolicy {
                interval_us: 250,
                bytes_delta: 65_536,
                major_delta_units: 0,
            },
            progress_floor: ProgressPolicy {
                interval_us: 100,
                bytes_delta: 4096,
                major_delta_units: 0,
            },
            publish_timestamp: false,
            use_shm: true,
            payload_fallback_uri: String::new(),
            name: String::new(),
            summary: String::new(),
            meta_blob_chunk_bytes: META_BLOB_CHUNK_MAX,
            aeron_timeout: DEFAULT_AERON_TIMEOUT,
            aeron_counters: true,
            stall_threshold: Duration::from_secs(1),
            trace_ids: false,
            trace_node_id: None,
        }
    }

    /// The pools as geometry for the shared-memory layer.
    pub(crate) fn geometry(&self) -> Vec<PoolGeometry> {
        self.pools
            .iter()
            .map(|p| PoolGeometry {
                pool_id: p.pool_id,
                stride_bytes: p.stride_bytes,
                nslots: self.header_nslots,
            })
            .collect()
    }

    /// Checks every field; the error names the field and what it must be.
    pub fn validate(&self) -> Result<(), BuildError> {
        let bad = |field: &'static str, expected: &'static str| {
            Err(BuildError::InvalidConfig { field, expected })
        };
        if self.stream_id == 0 {
            return bad("stream_id", "a non-zero stream id");
        }
        validate_pools(&self.geometry(), self.header_nslots).map_err(BuildError::Pools)?;
        for (field, d) in [
            ("announce_period", self.announce_period),
            ("qos_period", self.qos_period),
            ("data_source_period", self.data_source_period),
            ("meta_period", self.meta_period),
            ("consumer_hello_interval", self.consumer_hello_interval),
        ] {
            if d.is_zero() {
                return bad(field, "a non-zero duration");
            }
        }
        if !(3..=5).contains(&self.consumer_stale_factor) {
            return bad("consumer_stale_factor", "3, 4 or 5 (Wire Spec §5: 3-5x)");
        }
        if self.max_consumers == 0 {
            return bad("max_consumers", "at least 1");
        }
        if self.meta_blob_chunk_bytes == 0 || self.meta_blob_chunk_bytes > META_BLOB_CHUNK_MAX {
            return bad("meta_blob_chunk_bytes", "1 to 65536 bytes");
        }
        if !self.shm_base_dir.is_absolute() {
            return bad("shm_base_dir", "an absolute path");
        }
        if let Some(node) = self.trace_node_id
            && crate::tracelink::TraceIdGenerator::new(u64::from(node)).is_err()
        {
            return bad("trace_node_id", "a node id that fits trace ids: 0 to 1023");
        }
        if self.trace_ids
            && self.trace_node_id.is_none()
            && matches!(self.mode, RegionMode::Standalone)
        {
            return bad(
                "trace_node_id",
                "a node id when trace_ids is on in standalone mode (no driver assigns one)",
            );
        }
        Ok(())
    }
}

/// Builds a [`Producer`] (see [`Context::producer`]).
#[derive(Debug)]
pub struct ProducerBuilder {
    ctx: Context,
    config: ProducerConfig,
}

impl Context {
    /// A builder for a producer of data source `stream_id`.
    pub fn producer(&self, stream_id: u32) -> ProducerBuilder {
        ProducerBuilder::new(self.clone(), stream_id)
    }
}

impl ProducerBuilder {
    pub(crate) fn new(ctx: Context, stream_id: u32) -> Self {
        Self {
            ctx,
            config: ProducerConfig::new(stream_id),
        }
    }

    /// Standalone mode with its own files under `shm_base_dir`.
    pub fn standalone(mut self, shm_base_dir: impl Into<PathBuf>) -> Self {
        self.config.mode = RegionMode::Standalone;
        self.config.shm_base_dir = shm_base_dir.into();
        self
    }

    /// Driver mode: attach to the SHM driver at `endpoints`; its files must lie in
    /// `shm_base_dir`.
    pub fn driver(mut self, endpoints: DriverEndpoints, shm_base_dir: impl Into<PathBuf>) -> Self {
        self.config.mode = RegionMode::Driver(endpoints);
        self.config.shm_base_dir = shm_base_dir.into();
        self
    }

    /// Header ring slots (a power of two).
    pub fn header_nslots(mut self, nslots: u32) -> Self {
        self.config.header_nslots = nslots;
        self
    }

    /// Replaces the pools with one pool of `stride_bytes`.
    pub fn pool(mut self, pool_id: u16, stride_bytes: u32) -> Self {
        self.config.pools = vec![PoolConfig {
            pool_id,
            stride_bytes,
        }];
        self
    }

    /// Sets the shared logical streams.
    pub fn streams(mut self, streams: Streams) -> Self {
        self.config.streams = streams;
        self
    }

    /// Changes any other field.
    pub fn configure(mut self, f: impl FnOnce(&mut ProducerConfig)) -> Self {
        f(&mut self.config);
        self
    }

    /// Replaces the whole configuration (its `stream_id` included).
    pub fn config(mut self, config: ProducerConfig) -> Self {
        self.config = config;
        self
    }

    /// The configuration so far.
    pub fn config_ref(&self) -> &ProducerConfig {
        &self.config
    }

    /// Validates, creates the regions and the Aeron publications and subscriptions.
    pub fn build(self) -> Result<Producer, BuildError> {
        self.config.validate()?;
        Producer::new(self.ctx, self.config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn dm_17_producer_keys_from_file_with_environment_overrides() {
        let env = HashMap::from([("PRODUCER_HEADER_NSLOTS".to_string(), "128".to_string())]);
        let text = "[producer]\nstream_id = 10003\nheader_nslots = 16\nannounce_period_ms = 250\nchannel = \"aeron:ipc\"\n";
        let mut l = crate::config::Loader::from_str(text, "inline", &env).unwrap();
        let c = ProducerConfig::from_loader(&mut l).unwrap();
        assert_eq!(
            (c.stream_id, c.header_nslots),
            (10003, 128),
            "the environment wins"
        );
        assert_eq!(c.announce_period, Duration::from_millis(250));
        assert_eq!(c.streams.descriptor.channel, "aeron:ipc");
        assert_eq!(
            c.streams.descriptor.stream_id,
            crate::streams::DESCRIPTOR_STREAM_ID
        );
        c.validate().unwrap();
        let mut bad =
            crate::config::Loader::from_str("[producer]\nheader_nslots = \"x\"\n", "inline", &env)
                .unwrap();
        assert!(
            ProducerConfig::from_loader(&mut bad).is_ok(),
            "env value 128 wins over the bad file value"
        );
    }

    #[test]
    fn dm_17_producer_file_every_kind_of_key_and_driver_mode() {
        let env = HashMap::from([("PRODUCER_AERON_COUNTERS".to_string(), "false".to_string())]);
        let text = "[producer]\nuse_driver = true\nattach_timeout_ms = 1500\nprefault = false\n\
                    progress_floor_bytes_delta = 512\nsummary = \"s\"\nmax_consumers = 3\n\
                    [driver]\ncontrol_stream_id = 1500\n";
        let loaded = {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("p.toml");
            std::fs::write(&path, text).unwrap();
            ProducerConfig::load(Some(&path), &env).unwrap()
        };
        let c = &loaded.config;
        let RegionMode::Driver(d) = &c.mode else {
            panic!("driver mode")
        };
        assert_eq!(d.control.stream_id, 1500);
        assert_eq!(d.announce.stream_id, 1500);
        assert_eq!(d.attach_timeout, Duration::from_millis(1500));
        assert!(!c.prefault && !c.aeron_counters);
        assert_eq!(c.progress_floor.bytes_delta, 512);
        assert_eq!((c.summary.as_str(), c.max_consumers), ("s", 3));
        let p = &loaded.provenance;
        use crate::config::Source;
        assert_eq!(p.source("producer.prefault"), Some(&Source::File));
        assert_eq!(
            p.source("producer.aeron_counters"),
            Some(&Source::Env("PRODUCER_AERON_COUNTERS".into()))
        );
        assert_eq!(p.source("producer.qos_period_ms"), Some(&Source::Default));
        assert!(loaded.unknown_keys.is_empty());
        // no file: defaults and the environment
        let none = ProducerConfig::load(None, &env).unwrap();
        assert_eq!(none.config.mode, RegionMode::Standalone);
        assert!(!none.config.aeron_counters);
    }
}
