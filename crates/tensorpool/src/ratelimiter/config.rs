//! The rate limiter configuration: every key of RateLimiter v1.0 §8 (`[rate_limiter]` and
//! `[[mappings]]`) with its default, the keys of the Julia example file that §8 does not list
//! (read and recorded), a few keys of ours, environment overrides (`RATE_LIMITER_MAX_RATE_HZ`,
//! ...: uppercase the key, `.` becomes `_`; the environment wins; the `[[mappings]]` array has
//! none) and provenance. docs/roles.md ("Rate limiter") lists them all.

use std::path::{Path, PathBuf};

use crate::config::{ConfigError, EnvSource, Loader, Provenance, Source};
use crate::streams::{self, DriverEndpoints, Endpoint};

use super::state::Policy;

/// RL §8 default of `control_channel` and `qos_channel`.
pub const DEFAULT_LOCAL_CHANNEL: &str = "aeron:ipc?term-length=1m";
/// RL §8 default of `shm_base_dir`.
pub const DEFAULT_SHM_BASE_DIR: &str = "/dev/shm";

/// One `[[mappings]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// `source_stream_id` (required): the stream read.
    pub source_stream_id: u32,
    /// `dest_stream_id` (required): the stream written, with its own pools.
    pub dest_stream_id: u32,
    /// `max_rate_hz` (optional: inherits `rate_limiter.max_rate_hz`).
    pub max_rate_hz: Option<u32>,
    /// `metadata_stream_id` (optional: `dest_stream_id`).
    pub metadata_stream_id: u32,
    /// `decimation` (ours, optional): forward the frames whose sequence is a multiple of it.
    pub decimation: Option<u64>,
    /// The policy the keys resolve to.
    pub policy: Policy,
}

/// The `[rate_limiter]` table and the mappings, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimiterConfig {
    /// `instance_id` (required).
    pub instance_id: String,
    /// `descriptor_channel` / `descriptor_stream_id` (required): destination descriptors.
    pub descriptor: Endpoint,
    /// `source_descriptor_channel` / `source_descriptor_stream_id` (ours; default: the
    /// destination's): where the source producers publish their descriptors.
    pub source_descriptor: Endpoint,
    /// `forward_metadata` (default true): `DataSourceMeta` attributes and the source name,
    /// `meta_version` preserved (RL §6).
    pub forward_metadata: bool,
    /// `forward_progress` (default false): RL §6.1, source `FrameProgress` republished on
    /// `control_channel` / `dest_control_stream_id`.
    pub forward_progress: bool,
    /// `forward_qos` (default false): RL §6.1, source QoS republished on `qos_channel` /
    /// `dest_qos_stream_id`.
    pub forward_qos: bool,
    /// `max_rate_hz` (default 0 = unlimited): fallback of every mapping.
    pub max_rate_hz: u32,
    /// `per_consumer` (ours; default false): RL §4 per-consumer operation. When the
    /// destination has exactly one consumer and its `ConsumerHello` asks for RATE_LIMITED,
    /// its `max_rate_hz` (0 = unlimited) is the mapping's rate; otherwise the configured
    /// rate applies (never an aggregate of several consumers). Decimation mappings ignore it.
    pub per_consumer: bool,
    /// `control_channel` (default `aeron:ipc?term-length=1m`).
    pub control_channel: String,
    /// `control_stream_id` (referenced by RL §8, not defined there; default 1000).
    pub control_stream_id: u32,
    /// `source_control_stream_id` (default 0 = disabled).
    pub source_control_stream_id: u32,
    /// `dest_control_stream_id` (default 0 = disabled).
    pub dest_control_stream_id: u32,
    /// `qos_channel` (default `aeron:ipc?term-length=1m`).
    pub qos_channel: String,
    /// `qos_stream_id` (Julia example key; default 1200): QoS of the source consumers and
    /// destination producers.
    pub qos_stream_id: u32,
    /// `source_qos_stream_id` (default 0 = disabled).
    pub source_qos_stream_id: u32,
    /// `dest_qos_stream_id` (default 0 = disabled).
    pub dest_qos_stream_id: u32,
    /// `metadata_channel` (Julia example key; default the control channel).
    pub metadata_channel: String,
    /// `metadata_stream_id` (Julia example key; default 1300).
    pub metadata_stream_id: u32,
    /// `shm_base_dir` (default `/dev/shm`): source regions must lie under it; the driver's
    /// destination files too.
    pub shm_base_dir: PathBuf,
    /// `driver_control_channel` / `driver_control_stream_id` (default: `control_channel` /
    /// `control_stream_id`).
    pub driver_control: Endpoint,
    /// `driver_announce_channel` / `driver_announce_stream_id` (ours; default: the driver
    /// control endpoint, as Driver Model §17 defaults the announce stream).
    pub driver_announce: Endpoint,
    /// `aeron_dir` (Julia example key; empty = not set): the media driver's directory.
    pub aeron_dir: Option<PathBuf>,
    /// `attach_timeout_ms` (ours; default 10000): how long building a destination producer
    /// waits for its lease before the rate limiter gives up (startup) or retries (rebuild).
    pub attach_timeout_ms: u32,
    /// `[[mappings]]` (required, at least one), in file order.
    pub mappings: Vec<Mapping>,
    /// Where each value came from.
    pub provenance: Provenance,
    /// Keys under `rate_limiter.` nobody knows.
    pub unknown_keys: Vec<String>,
    /// Valid but questionable settings.
    pub warnings: Vec<String>,
}

const U32: &str = "an unsigned 32-bit integer";
const BOOL: &str = "true or false";
const STR: &str = "a string";
const MAPPING_FIELDS: [&str; 5] = [
    "source_stream_id",
    "dest_stream_id",
    "max_rate_hz",
    "metadata_stream_id",
    "decimation",
];

fn required<T: serde::de::DeserializeOwned + serde::Serialize>(
    l: &mut Loader<'_>,
    key: &str,
    expected: &str,
) -> Result<T, ConfigError> {
    l.value(key, expected)?.ok_or_else(|| ConfigError::Missing {
        key: key.to_owned(),
        expected: expected.to_owned(),
    })
}

fn fail(key: &str, reason: String) -> ConfigError {
    ConfigError::Inconsistent {
        key: key.to_owned(),
        reason,
    }
}

impl RateLimiterConfig {
    /// Loads `path` (or only defaults and environment when `None`: then the required keys
    /// must come from the environment).
    pub fn load(path: Option<&Path>, env: &dyn EnvSource) -> Result<Self, ConfigError> {
        Self::from_loader(&mut Loader::open(path, env)?)
    }

    /// Loads TOML text.
    pub fn from_toml(text: &str, env: &dyn EnvSource) -> Result<Self, ConfigError> {
        Self::from_loader(&mut Loader::from_str(text, "inline", env)?)
    }

    /// Reads the `[rate_limiter]` table and `[[mappings]]` of `l`.
    pub fn from_loader(l: &mut Loader<'_>) -> Result<Self, ConfigError> {
        let instance_id: String = required(l, "rate_limiter.instance_id", STR)?;
        let descriptor_channel: String = required(l, "rate_limiter.descriptor_channel", STR)?;
        let descriptor_stream_id: u32 = required(l, "rate_limiter.descriptor_stream_id", U32)?;
        let source_descriptor_channel = derived(
            l,
            "rate_limiter.source_descriptor_channel",
            descriptor_channel.clone(),
            "rate_limiter.descriptor_channel",
            STR,
        )?;
        let source_descriptor_stream_id = derived(
            l,
            "rate_limiter.source_descriptor_stream_id",
            descriptor_stream_id,
            "rate_limiter.descriptor_stream_id",
            U32,
        )?;
        let local = DEFAULT_LOCAL_CHANNEL.to_owned();
        let control_channel = l.value_or("rate_limiter.control_channel", local.clone(), STR)?;
        let control_stream_id = l.value_or(
            "rate_limiter.control_stream_id",
            streams::CONTROL_STREAM_ID as u32,
            U32,
        )?;
        let driver_control_channel = derived(
            l,
            "rate_limiter.driver_control_channel",
            control_channel.clone(),
            "rate_limiter.control_channel",
            STR,
        )?;
        let driver_control_stream_id = derived(
            l,
            "rate_limiter.driver_control_stream_id",
            control_stream_id,
            "rate_limiter.control_stream_id",
            U32,
        )?;
        let driver_announce_channel = derived(
            l,
            "rate_limiter.driver_announce_channel",
            driver_control_channel.clone(),
            "rate_limiter.driver_control_channel",
            STR,
        )?;
        let driver_announce_stream_id = derived(
            l,
            "rate_limiter.driver_announce_stream_id",
            driver_control_stream_id,
            "rate_limiter.driver_control_stream_id",
            U32,
        )?;
        let metadata_channel = derived(
            l,
            "rate_limiter.metadata_channel",
            control_channel.clone(),
            "rate_limiter.control_channel",
            STR,
        )?;
        let aeron_dir: String = l.value_or("rate_limiter.aeron_dir", String::new(), STR)?;
        // Read for the record: the Julia example names its Aeron client's URI.
        let _aeron_uri: String = l.value_or("rate_limiter.aeron_uri", String::new(), STR)?;
        let max_rate_hz = l.value_or("rate_limiter.max_rate_hz", 0u32, U32)?;
        let mut cfg = Self {
            instance_id,
            descriptor: endpoint(
                "rate_limiter.descriptor_stream_id",
                descriptor_channel,
                descriptor_stream_id,
            )?,
            source_descriptor: endpoint(
                "rate_limiter.source_descriptor_stream_id",
                source_descriptor_channel,
                source_descriptor_stream_id,
            )?,
            forward_metadata: l.value_or("rate_limiter.forward_metadata", true, BOOL)?,
            forward_progress: l.value_or("rate_limiter.forward_progress", false, BOOL)?,
            forward_qos: l.value_or("rate_limiter.forward_qos", false, BOOL)?,
            max_rate_hz,
            per_consumer: l.value_or("rate_limiter.per_consumer", false, BOOL)?,
            control_channel,
            control_stream_id,
            source_control_stream_id: l.value_or(
                "rate_limiter.source_control_stream_id",
                0,
                U32,
            )?,
            dest_control_stream_id: l.value_or("rate_limiter.dest_control_stream_id", 0, U32)?,
            qos_channel: l.value_or("rate_limiter.qos_channel", local, STR)?,
            qos_stream_id: l.value_or(
                "rate_limiter.qos_stream_id",
                streams::QOS_STREAM_ID as u32,
                U32,
            )?,
            source_qos_stream_id: l.value_or("rate_limiter.source_qos_stream_id", 0, U32)?,
            dest_qos_stream_id: l.value_or("rate_limiter.dest_qos_stream_id", 0, U32)?,
            metadata_channel,
            metadata_stream_id: l.value_or(
                "rate_limiter.metadata_stream_id",
                streams::METADATA_STREAM_ID as u32,
                U32,
            )?,
            shm_base_dir: PathBuf::from(l.value_or(
                "rate_limiter.shm_base_dir",
                DEFAULT_SHM_BASE_DIR.to_owned(),
                STR,
            )?),
            driver_control: endpoint(
                "rate_limiter.driver_control_stream_id",
                driver_control_channel,
                driver_control_stream_id,
            )?,
            driver_announce: endpoint(
                "rate_limiter.driver_announce_stream_id",
                driver_announce_channel,
                driver_announce_stream_id,
            )?,
            aeron_dir: (!aeron_dir.is_empty()).then(|| PathBuf::from(aeron_dir)),
            attach_timeout_ms: l.value_or(
                "rate_limiter.attach_timeout_ms",
                streams::DEFAULT_ATTACH_TIMEOUT.as_millis() as u32,
                U32,
            )?,
            mappings: mappings(l, max_rate_hz)?,
            provenance: Provenance::default(),
            unknown_keys: Vec::new(),
            warnings: Vec::new(),
        };
        cfg.validate()?;
        cfg.unknown_keys = crate::config::unknown_keys_under(l, "rate_limiter");
        cfg.provenance = l.take_provenance();
        for (i, m) in cfg.mappings.iter().enumerate() {
            let text = format!(
                "{} -> {}: {}",
                m.source_stream_id,
                m.dest_stream_id,
                m.policy.describe()
            );
            cfg.provenance
                .record_from(&format!("mappings[{i}]"), &text, Source::File);
        }
        Ok(cfg)
    }

    /// The driver endpoints the source consumers and destination producers attach through
    /// (Driver Model timers at their defaults).
    pub fn driver_endpoints(&self) -> DriverEndpoints {
        DriverEndpoints {
            control: self.driver_control.clone(),
            announce: self.driver_announce.clone(),
            attach_timeout: self.attach_timeout(),
            ..DriverEndpoints::default()
        }
    }

    /// `attach_timeout_ms` as a duration.
    pub fn attach_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(u64::from(self.attach_timeout_ms))
    }

    fn validate(&mut self) -> Result<(), ConfigError> {
        if self.attach_timeout_ms == 0 {
            return Err(fail(
                "rate_limiter.attach_timeout_ms",
                "must be at least 1".into(),
            ));
        }
        if self.instance_id.is_empty() {
            return Err(fail("rate_limiter.instance_id", "must not be empty".into()));
        }
        // RL §8: forwarding never starts with a zero id; we fail fast.
        for (on, flag, ids) in [
            (
                self.forward_progress,
                "rate_limiter.forward_progress",
                [
                    (
                        "rate_limiter.source_control_stream_id",
                        self.source_control_stream_id,
                    ),
                    (
                        "rate_limiter.dest_control_stream_id",
                        self.dest_control_stream_id,
                    ),
                ],
            ),
            (
                self.forward_qos,
                "rate_limiter.forward_qos",
                [
                    (
                        "rate_limiter.source_qos_stream_id",
                        self.source_qos_stream_id,
                    ),
                    ("rate_limiter.dest_qos_stream_id", self.dest_qos_stream_id),
                ],
            ),
        ] {
            if !on {
                continue;
            }
            if let Some((key, _)) = ids.iter().find(|(_, id)| *id == 0) {
                return Err(fail(
                    key,
                    format!(
                        "must be nonzero when {flag} = true (RateLimiter §8: forwarding must not start with a zero stream id)"
                    ),
                ));
            }
            for (key, id) in ids {
                endpoint(key, String::new(), id)?;
            }
        }
        if self.mappings.is_empty() {
            return Err(ConfigError::Missing {
                key: "mappings".into(),
                expected: "at least one [[mappings]] entry".into(),
            });
        }
        let sources: Vec<u32> = self.mappings.iter().map(|m| m.source_stream_id).collect();
        for (i, m) in self.mappings.iter().enumerate() {
            let key = format!("mappings[{i}].dest_stream_id");
            if sources.contains(&m.dest_stream_id) {
                return Err(fail(
                    &key,
                    format!(
                        "{} is also a source stream: the rate limiter must never publish for a source stream (RateLimiter §3)",
                        m.dest_stream_id
                    ),
                ));
            }
            if self.mappings[..i]
                .iter()
                .any(|o| o.dest_stream_id == m.dest_stream_id)
            {
                return Err(fail(
                    &key,
                    format!(
                        "{} is the destination of an earlier mapping: a stream has one producer",
                        m.dest_stream_id
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn endpoint(key: &str, channel: String, id: u32) -> Result<Endpoint, ConfigError> {
    let stream_id = i32::try_from(id).map_err(|_| {
        fail(
            key,
            format!("{id} is not an Aeron stream id (at most 2^31 - 1)"),
        )
    })?;
    Ok(Endpoint { channel, stream_id })
}

fn derived<T: serde::de::DeserializeOwned + serde::Serialize>(
    l: &mut Loader<'_>,
    key: &str,
    from_value: T,
    from_key: &'static str,
    expected: &str,
) -> Result<T, ConfigError> {
    match l.value(key, expected)? {
        Some(v) => Ok(v),
        None => {
            l.record_derived(key, &from_value, from_key);
            Ok(from_value)
        }
    }
}

fn mappings(l: &mut Loader<'_>, global_hz: u32) -> Result<Vec<Mapping>, ConfigError> {
    let key = "mappings";
    let invalid = |key: String, found: String, expected: &str| ConfigError::Invalid {
        key,
        origin: Source::File,
        found,
        expected: expected.to_owned(),
    };
    let Some(raw) = l.raw(key).cloned() else {
        return Ok(Vec::new());
    };
    let toml::Value::Array(items) = raw else {
        return Err(invalid(
            key.into(),
            raw.to_string(),
            "an array of tables ([[mappings]])",
        ));
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let element = format!("{key}[{i}]");
        let Some(t) = item.as_table() else {
            return Err(invalid(element, item.to_string(), "a table"));
        };
        for f in t.keys() {
            if !MAPPING_FIELDS.contains(&f.as_str()) {
                return Err(invalid(
                    format!("{element}.{f}"),
                    t[f].to_string(),
                    "one of source_stream_id, dest_stream_id, max_rate_hz, metadata_stream_id, decimation",
                ));
            }
            l.mark_read(&format!("{element}.{f}"));
        }
        let field_u32 = |f: &str| -> Result<Option<u32>, ConfigError> {
            t.get(f)
                .map(|v| {
                    v.as_integer()
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or_else(|| invalid(format!("{element}.{f}"), v.to_string(), U32))
                })
                .transpose()
        };
        let need = |f: &str| -> Result<u32, ConfigError> {
            match field_u32(f)? {
                Some(0) => Err(fail(
                    &format!("{element}.{f}"),
                    "must be a nonzero stream id".into(),
                )),
                Some(v) => Ok(v),
                None => Err(ConfigError::Missing {
                    key: format!("{element}.{f}"),
                    expected: U32.into(),
                }),
            }
        };
        let source_stream_id = need("source_stream_id")?;
        let dest_stream_id = need("dest_stream_id")?;
        let max_rate_hz = field_u32("max_rate_hz")?;
        let metadata_stream_id = field_u32("metadata_stream_id")?.unwrap_or(dest_stream_id);
        let decimation = field_u32("decimation")?.map(u64::from);
        if source_stream_id == dest_stream_id {
            return Err(fail(
                &format!("{element}.dest_stream_id"),
                "must differ from source_stream_id (RateLimiter §3: a distinct stream)".into(),
            ));
        }
        let policy = match (decimation, max_rate_hz) {
            (Some(0), _) => {
                return Err(fail(
                    &format!("{element}.decimation"),
                    "must be at least 1 (1 = every frame)".into(),
                ));
            }
            (Some(_), Some(hz)) if hz > 0 => {
                return Err(fail(
                    &format!("{element}.decimation"),
                    format!(
                        "and max_rate_hz = {hz} both set: one policy per mapping (RateLimiter §4); use two mappings"
                    ),
                ));
            }
            (Some(n), _) => Policy::EveryNth { n },
            (None, hz) => match hz.unwrap_or(global_hz) {
                0 => Policy::Unlimited,
                hz => Policy::MaxRate { hz },
            },
        };
        out.push(Mapping {
            source_stream_id,
            dest_stream_id,
            max_rate_hz,
            metadata_stream_id,
            decimation,
            policy,
        });
    }
    Ok(out)
}
