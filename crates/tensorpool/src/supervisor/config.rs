//! The supervisor configuration: every key of the C implementation's `[supervisor]` table
//! (`driver_integration_example.toml`) with its default, two keys of ours
//! (`producer_stale_ms`, `rules`), environment overrides (`SUPERVISOR_CONSUMER_CAPACITY`,
//! ...: uppercase the key, `.` becomes `_`; the environment wins) and provenance.
//!
//! The endpoint keys default to the `[driver]` values of the same file when it has them
//! (as in the C driver that embeds the supervisor), else to the stream id conventions.
//!
//! `[[supervisor.rules]]` (ours) select consumers by `stream_id` and/or `consumer_id` and
//! override the global `force_mode`, `force_no_shm` and `payload_fallback_uri` for them; the
//! first matching rule wins. `max_rate_hz` records the rate a forced RATE_LIMITED consumer
//! is meant to get (ConsumerConfig has no rate field: it is reported, not sent).

use std::path::Path;

use tensorpool_codec::wire::Mode;

use crate::config::{ConfigError, EnvSource, IdRange, Loader, Provenance, Source};
use crate::streams;

/// `supervisor.consumer_capacity` default (C).
pub const DEFAULT_CONSUMER_CAPACITY: u32 = 256;
/// `supervisor.consumer_stale_ms` default (C).
pub const DEFAULT_CONSUMER_STALE_MS: u32 = 5000;
/// `supervisor.producer_stale_ms` default (ours: 5 x the 1 s announce period, W §15.14).
pub const DEFAULT_PRODUCER_STALE_MS: u32 = 5000;
/// `supervisor.per_consumer_*_range` default (C, Stream Id Conventions).
pub const DEFAULT_PER_CONSUMER_RANGE: u32 = 1000;
/// Longest channel or URI the supervisor stores for a consumer (bytes); a longer requested
/// channel is declined.
pub const MAX_CHANNEL_LEN: usize = 256;

/// One `[[supervisor.rules]]` entry: which consumers, and what to force on them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rule {
    /// Only consumers of this stream (absent: any stream).
    pub stream_id: Option<u32>,
    /// Only the consumer with this id (absent: any consumer).
    pub consumer_id: Option<u32>,
    /// Only consumers whose id is in this inclusive range (`consumer_id_range = "100-199"`;
    /// absent: any consumer). Not together with `consumer_id`.
    pub consumer_id_range: Option<IdRange>,
    /// Mode to force (absent: the global `force_mode`).
    pub force_mode: Option<Mode>,
    /// Rate meant for a forced RATE_LIMITED consumer (reported; not on the wire).
    pub max_rate_hz: Option<u32>,
    /// Force `use_shm = false` (absent: the global `force_no_shm`).
    pub force_no_shm: Option<bool>,
    /// Fallback URI (absent: the global `payload_fallback_uri`).
    pub payload_fallback_uri: Option<String>,
}

impl Rule {
    /// Whether the rule selects consumer `consumer_id` of `stream_id`.
    pub fn matches(&self, stream_id: u32, consumer_id: u32) -> bool {
        self.stream_id.is_none_or(|s| s == stream_id)
            && self.consumer_id.is_none_or(|c| c == consumer_id)
            && self
                .consumer_id_range
                .is_none_or(|r| r.contains(consumer_id))
    }
}

/// The whole `[supervisor]` table, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupervisorConfig {
    /// `control_channel`: receives `ConsumerHello`, sends `ConsumerConfig`.
    pub control_channel: String,
    /// `control_stream_id` (default: `driver.control_stream_id`, else 1000).
    pub control_stream_id: u32,
    /// `announce_channel`: `ShmPoolAnnounce`.
    pub announce_channel: String,
    /// `announce_stream_id` (default: `driver.announce_stream_id`, else 1001).
    pub announce_stream_id: u32,
    /// `metadata_channel`: `DataSourceAnnounce`.
    pub metadata_channel: String,
    /// `metadata_stream_id` (default 1300).
    pub metadata_stream_id: u32,
    /// `qos_channel`: `QosConsumer` / `QosProducer`.
    pub qos_channel: String,
    /// `qos_stream_id` (default: `driver.qos_stream_id`, else 1200).
    pub qos_stream_id: u32,
    /// `consumer_capacity` (default 256): consumers tracked at once; preallocated.
    pub consumer_capacity: u32,
    /// `consumer_stale_ms` (default 5000): no hello or QoS for this long = gone.
    pub consumer_stale_ms: u32,
    /// `producer_stale_ms` (ours, default 5000): no announce or QoS for this long = dead.
    pub producer_stale_ms: u32,
    /// `per_consumer_enabled` (default false): assign per-consumer streams.
    pub per_consumer_enabled: bool,
    /// `per_consumer_descriptor_channel` (default empty: the consumer's requested channel).
    pub per_consumer_descriptor_channel: String,
    /// `per_consumer_descriptor_base` (default 31000; 0: grant the requested id).
    pub per_consumer_descriptor_base: u32,
    /// `per_consumer_descriptor_range` (default 1000).
    pub per_consumer_descriptor_range: u32,
    /// `per_consumer_control_channel` (default empty: the consumer's requested channel).
    pub per_consumer_control_channel: String,
    /// `per_consumer_control_base` (default 32000; 0: grant the requested id).
    pub per_consumer_control_base: u32,
    /// `per_consumer_control_range` (default 1000).
    pub per_consumer_control_range: u32,
    /// `force_no_shm` (default false): `use_shm = false` for every consumer.
    pub force_no_shm: bool,
    /// `force_mode` (default 0 = none; 1 STREAM, 2 RATE_LIMITED).
    pub force_mode: Option<Mode>,
    /// `payload_fallback_uri` (default empty).
    pub payload_fallback_uri: String,
    /// `allowed_base_dirs` (ours, default empty): directories the announced header regions
    /// must lie in for their superblock's activity timestamp to be read (W §15.14); empty:
    /// liveness follows announces and QoS only.
    pub allowed_base_dirs: Vec<std::path::PathBuf>,
    /// `[[supervisor.rules]]` (ours), in file order.
    pub rules: Vec<Rule>,
    /// Where each value came from.
    pub provenance: Provenance,
    /// Keys under `supervisor.` nobody knows.
    pub unknown_keys: Vec<String>,
    /// Valid but questionable settings.
    pub warnings: Vec<String>,
}

/// The driver's stream ids, as plain data, for [`SupervisorConfig::check_against_driver`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriverStreamIds {
    /// Ranges the driver allocates from itself, with their key (`driver.stream_id_range`).
    pub ranges: Vec<(String, IdRange)>,
    /// `driver.descriptor_stream_id_range`: the per-consumer descriptor ids the deployment
    /// reserves; a supervisor may allocate inside it (the C layout: the same range in both
    /// tables), never across its edge.
    pub descriptor_range: Option<IdRange>,
    /// `driver.control_stream_id_range`: the same for control ids.
    pub control_range: Option<IdRange>,
    /// Fixed ids (`driver.control_stream_id`, `streams.cam1.stream_id`, ...).
    pub fixed: Vec<(String, u32)>,
}

const U32: &str = "an unsigned 32-bit integer";
const BOOL: &str = "true or false";
const STR: &str = "a string";
const MODE: &str = "0 (none), 1 or \"STREAM\", 2 or \"RATE_LIMITED\"";

impl SupervisorConfig {
    /// Loads `path` (or only defaults and environment when `None`).
    pub fn load(path: Option<&Path>, env: &dyn EnvSource) -> Result<Self, ConfigError> {
        Self::from_loader(&mut Loader::open(path, env)?)
    }

    /// Loads TOML text.
    pub fn from_toml(text: &str, env: &dyn EnvSource) -> Result<Self, ConfigError> {
        Self::from_loader(&mut Loader::from_str(text, "inline", env)?)
    }

    /// Reads the `[supervisor]` table of `l`.
    pub fn from_loader(l: &mut Loader<'_>) -> Result<Self, ConfigError> {
        let default_channel = streams::DEFAULT_CHANNEL.to_owned();
        let driver_control_channel = driver_str(l, "driver.control_channel");
        let driver_control_id = driver_u32(l, "driver.control_stream_id");
        let control_channel = derived(
            l,
            "supervisor.control_channel",
            driver_control_channel.clone(),
            "driver.control_channel",
            default_channel.clone(),
            STR,
        )?;
        let control_stream_id = derived(
            l,
            "supervisor.control_stream_id",
            driver_control_id,
            "driver.control_stream_id",
            streams::CONTROL_STREAM_ID as u32,
            U32,
        )?;
        let announce_channel = derived(
            l,
            "supervisor.announce_channel",
            driver_str(l, "driver.announce_channel").or(driver_control_channel),
            "driver.announce_channel",
            default_channel.clone(),
            STR,
        )?;
        let announce_stream_id = derived(
            l,
            "supervisor.announce_stream_id",
            driver_u32(l, "driver.announce_stream_id").or(driver_control_id),
            "driver.announce_stream_id",
            streams::ANNOUNCE_STREAM_ID as u32,
            U32,
        )?;
        let metadata_channel =
            l.value_or("supervisor.metadata_channel", default_channel.clone(), STR)?;
        let metadata_stream_id = l.value_or(
            "supervisor.metadata_stream_id",
            streams::METADATA_STREAM_ID as u32,
            U32,
        )?;
        let qos_channel = derived(
            l,
            "supervisor.qos_channel",
            driver_str(l, "driver.qos_channel"),
            "driver.qos_channel",
            default_channel,
            STR,
        )?;
        let qos_stream_id = derived(
            l,
            "supervisor.qos_stream_id",
            driver_u32(l, "driver.qos_stream_id"),
            "driver.qos_stream_id",
            streams::QOS_STREAM_ID as u32,
            U32,
        )?;
        let force_mode = match l.parsed("supervisor.force_mode", MODE, parse_mode)? {
            Some(m) => m,
            None => {
                l.record_default("supervisor.force_mode", &0u32);
                None
            }
        };
        let mut cfg = Self {
            control_channel,
            control_stream_id,
            announce_channel,
            announce_stream_id,
            metadata_channel,
            metadata_stream_id,
            qos_channel,
            qos_stream_id,
            consumer_capacity: l.value_or(
                "supervisor.consumer_capacity",
                DEFAULT_CONSUMER_CAPACITY,
                U32,
            )?,
            consumer_stale_ms: l.value_or(
                "supervisor.consumer_stale_ms",
                DEFAULT_CONSUMER_STALE_MS,
                U32,
            )?,
            producer_stale_ms: l.value_or(
                "supervisor.producer_stale_ms",
                DEFAULT_PRODUCER_STALE_MS,
                U32,
            )?,
            per_consumer_enabled: l.value_or("supervisor.per_consumer_enabled", false, BOOL)?,
            per_consumer_descriptor_channel: l.value_or(
                "supervisor.per_consumer_descriptor_channel",
                String::new(),
                STR,
            )?,
            per_consumer_descriptor_base: l.value_or(
                "supervisor.per_consumer_descriptor_base",
                streams::PER_CONSUMER_DESCRIPTOR_BASE as u32,
                U32,
            )?,
            per_consumer_descriptor_range: l.value_or(
                "supervisor.per_consumer_descriptor_range",
                DEFAULT_PER_CONSUMER_RANGE,
                U32,
            )?,
            per_consumer_control_channel: l.value_or(
                "supervisor.per_consumer_control_channel",
                String::new(),
                STR,
            )?,
            per_consumer_control_base: l.value_or(
                "supervisor.per_consumer_control_base",
                streams::PER_CONSUMER_CONTROL_BASE as u32,
                U32,
            )?,
            per_consumer_control_range: l.value_or(
                "supervisor.per_consumer_control_range",
                DEFAULT_PER_CONSUMER_RANGE,
                U32,
            )?,
            force_no_shm: l.value_or("supervisor.force_no_shm", false, BOOL)?,
            force_mode,
            payload_fallback_uri: l.value_or(
                "supervisor.payload_fallback_uri",
                String::new(),
                STR,
            )?,
            allowed_base_dirs: allowed_base_dirs(l)?,
            rules: rules(l)?,
            provenance: Provenance::default(),
            unknown_keys: Vec::new(),
            warnings: Vec::new(),
        };
        cfg.validate()?;
        cfg.unknown_keys = crate::config::unknown_keys_under(l, "supervisor");
        cfg.provenance = l.take_provenance();
        Ok(cfg)
    }

    /// The descriptor id range (`None`: ids are not allocated from a range).
    pub fn descriptor_range(&self) -> Option<IdRange> {
        id_range(
            self.per_consumer_descriptor_base,
            self.per_consumer_descriptor_range,
        )
    }

    /// The control id range (`None`: ids are not allocated from a range).
    pub fn control_range(&self) -> Option<IdRange> {
        id_range(
            self.per_consumer_control_base,
            self.per_consumer_control_range,
        )
    }

    /// The first rule selecting consumer `consumer_id` of `stream_id`.
    pub fn rule_for(&self, stream_id: u32, consumer_id: u32) -> Option<(usize, &Rule)> {
        self.rules
            .iter()
            .enumerate()
            .find(|(_, r)| r.matches(stream_id, consumer_id))
    }

    /// Refuses per-consumer ranges that clash with the driver's ids (Driver Model §11: one
    /// id, one owner): overlapping a range the driver allocates itself, the driver's range of
    /// the other kind, or one of its fixed ids; or straddling the edge of the driver's range
    /// of the same kind (lying inside it is the C layout: the supervisor allocates the ids
    /// the driver's table reserves).
    pub fn check_against_driver(&self, driver: &DriverStreamIds) -> Result<(), ConfigError> {
        if !self.per_consumer_enabled {
            return Ok(());
        }
        let clash = |key: &str, reason: String| ConfigError::Inconsistent {
            key: key.into(),
            reason,
        };
        let kinds = [
            (
                "supervisor.per_consumer_descriptor_base",
                self.descriptor_range(),
                ("driver.descriptor_stream_id_range", driver.descriptor_range),
                ("driver.control_stream_id_range", driver.control_range),
            ),
            (
                "supervisor.per_consumer_control_base",
                self.control_range(),
                ("driver.control_stream_id_range", driver.control_range),
                ("driver.descriptor_stream_id_range", driver.descriptor_range),
            ),
        ];
        for (key, r, (same_key, same), (other_key, other)) in kinds {
            let Some(r) = r else { continue };
            for (dkey, d) in &driver.ranges {
                if r.overlaps(d) {
                    return Err(clash(
                        key,
                        format!(
                            "per-consumer ids {r} overlap the driver's {dkey} = {d}: two authorities would hand out the same stream ids"
                        ),
                    ));
                }
            }
            if let Some(o) = other
                && r.overlaps(&o)
            {
                return Err(clash(
                    key,
                    format!(
                        "per-consumer ids {r} overlap the driver's {other_key} = {o} (ids of the other kind)"
                    ),
                ));
            }
            if let Some(s) = same
                && r.overlaps(&s)
                && !(s.contains(r.start) && s.contains(r.end))
            {
                return Err(clash(
                    key,
                    format!(
                        "per-consumer ids {r} straddle the driver's {same_key} = {s}: lie inside it or apart from it"
                    ),
                ));
            }
            for (dkey, id) in &driver.fixed {
                if r.contains(*id) {
                    return Err(clash(
                        key,
                        format!("per-consumer ids {r} contain the driver's {dkey} = {id}"),
                    ));
                }
            }
        }
        Ok(())
    }

    fn ranges(&self) -> impl Iterator<Item = (&'static str, IdRange)> {
        [
            (
                "supervisor.per_consumer_descriptor_base",
                self.descriptor_range(),
            ),
            ("supervisor.per_consumer_control_base", self.control_range()),
        ]
        .into_iter()
        .filter_map(|(k, r)| r.map(|r| (k, r)))
    }

    fn validate(&mut self) -> Result<(), ConfigError> {
        let fail = |key: &str, reason: String| ConfigError::Inconsistent {
            key: key.to_owned(),
            reason,
        };
        if self.consumer_capacity == 0 {
            return Err(fail(
                "supervisor.consumer_capacity",
                "must be at least 1".into(),
            ));
        }
        if self.consumer_capacity > 65_536 {
            return Err(fail(
                "supervisor.consumer_capacity",
                format!("{} is above the limit of 65536", self.consumer_capacity),
            ));
        }
        for (key, v) in [
            ("supervisor.consumer_stale_ms", self.consumer_stale_ms),
            ("supervisor.producer_stale_ms", self.producer_stale_ms),
        ] {
            if v == 0 {
                return Err(fail(key, "must be at least 1".into()));
            }
        }
        let fixed = [
            ("supervisor.control_stream_id", self.control_stream_id),
            ("supervisor.announce_stream_id", self.announce_stream_id),
            ("supervisor.metadata_stream_id", self.metadata_stream_id),
            ("supervisor.qos_stream_id", self.qos_stream_id),
        ];
        for (key, id) in fixed {
            if i32::try_from(id).is_err() {
                return Err(fail(
                    key,
                    format!("{id} is not an Aeron stream id (expected 0..=2147483647)"),
                ));
            }
        }
        for (base_key, base, range_key, range) in [
            (
                "supervisor.per_consumer_descriptor_base",
                self.per_consumer_descriptor_base,
                "supervisor.per_consumer_descriptor_range",
                self.per_consumer_descriptor_range,
            ),
            (
                "supervisor.per_consumer_control_base",
                self.per_consumer_control_base,
                "supervisor.per_consumer_control_range",
                self.per_consumer_control_range,
            ),
        ] {
            if base != 0 && range == 0 {
                return Err(fail(
                    range_key,
                    format!("must be at least 1 when {base_key} = {base}"),
                ));
            }
            if base != 0 && u64::from(base) + u64::from(range) - 1 > i32::MAX as u64 {
                return Err(fail(
                    range_key,
                    format!("{base} + {range} ids go past the largest Aeron stream id 2147483647"),
                ));
            }
        }
        if self.per_consumer_enabled {
            let ranges: Vec<_> = self.ranges().collect();
            for (key, r) in &ranges {
                for (fixed_key, id) in fixed {
                    if r.contains(id) {
                        return Err(fail(key, format!("ids {r} contain {fixed_key} = {id}")));
                    }
                }
            }
            if let [(key, a), (other, b)] = ranges[..]
                && a.overlaps(&b)
            {
                return Err(fail(key, format!("ids {a} overlap {other} ids {b}")));
            }
        }
        check_uri(
            "supervisor.payload_fallback_uri",
            &self.payload_fallback_uri,
        )?;
        for (i, r) in self.rules.iter().enumerate() {
            if let Some(u) = &r.payload_fallback_uri {
                check_uri(&format!("supervisor.rules[{i}].payload_fallback_uri"), u)?;
            }
        }
        let mut w = Vec::new();
        if self.force_no_shm && self.payload_fallback_uri.is_empty() {
            w.push(
                "supervisor.force_no_shm = true without supervisor.payload_fallback_uri: consumers are told not to use SHM and given nowhere else to read payloads"
                    .to_owned(),
            );
        }
        if !self.per_consumer_enabled
            && (!self.per_consumer_descriptor_channel.is_empty()
                || !self.per_consumer_control_channel.is_empty())
        {
            w.push(
                "supervisor.per_consumer_*_channel set but supervisor.per_consumer_enabled = false: every per-consumer request is declined"
                    .to_owned(),
            );
        }
        self.warnings = w;
        Ok(())
    }
}

fn id_range(base: u32, range: u32) -> Option<IdRange> {
    if base == 0 || range == 0 {
        return None;
    }
    IdRange::new(base, base.checked_add(range - 1)?)
}

/// W §10.1.3: a fallback URI is an Aeron channel or `bridge://<id>`; other schemes are
/// unsupported, so configuring one is an error.
fn check_uri(key: &str, uri: &str) -> Result<(), ConfigError> {
    let ok = uri.is_empty()
        || (uri.starts_with("aeron:") && uri.len() > "aeron:".len())
        || (uri.starts_with("bridge://") && uri.len() > "bridge://".len());
    if !ok || uri.len() > MAX_CHANNEL_LEN {
        return Err(ConfigError::Invalid {
            key: key.to_owned(),
            origin: Source::File,
            found: format!("{uri:?}"),
            expected: format!(
                "empty, an Aeron channel (aeron:...) or bridge://<id> (Wire Spec §10.1.3), at most {MAX_CHANNEL_LEN} bytes"
            ),
        });
    }
    Ok(())
}

fn parse_mode(v: &toml::Value) -> Option<Option<Mode>> {
    match v {
        toml::Value::Integer(0) => Some(None),
        toml::Value::Integer(1) => Some(Some(Mode::Stream)),
        toml::Value::Integer(2) => Some(Some(Mode::RateLimited)),
        toml::Value::String(s) => match s.to_ascii_uppercase().as_str() {
            "" | "NONE" => Some(None),
            "STREAM" => Some(Some(Mode::Stream)),
            "RATE_LIMITED" => Some(Some(Mode::RateLimited)),
            _ => None,
        },
        _ => None,
    }
}

fn driver_str(l: &Loader<'_>, key: &str) -> Option<String> {
    l.raw(key).and_then(|v| v.as_str()).map(str::to_owned)
}

fn driver_u32(l: &Loader<'_>, key: &str) -> Option<u32> {
    l.raw(key)
        .and_then(toml::Value::as_integer)
        .and_then(|v| u32::try_from(v).ok())
}

/// `key` from the environment or the file; else the driver's value (`from`); else `default`.
fn derived<T>(
    l: &mut Loader<'_>,
    key: &str,
    driver: Option<T>,
    from: &'static str,
    default: T,
    expected: &str,
) -> Result<T, ConfigError>
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    if let Some(v) = l.value::<T>(key, expected)? {
        return Ok(v);
    }
    match driver {
        Some(v) => {
            l.record_derived(key, &v, from);
            Ok(v)
        }
        None => {
            l.record_default(key, &default);
            Ok(default)
        }
    }
}

/// `supervisor.allowed_base_dirs`: absolute paths (default none).
fn allowed_base_dirs(l: &mut Loader<'_>) -> Result<Vec<std::path::PathBuf>, ConfigError> {
    let key = "supervisor.allowed_base_dirs";
    let dirs: Vec<String> = l.value_or(key, Vec::new(), "an array of absolute paths")?;
    if let Some(bad) = dirs.iter().find(|d| !std::path::Path::new(d).is_absolute()) {
        return Err(ConfigError::Invalid {
            key: key.into(),
            origin: Source::File,
            found: bad.clone(),
            expected: "absolute paths".into(),
        });
    }
    Ok(dirs.into_iter().map(std::path::PathBuf::from).collect())
}

const RULE_FIELDS: [&str; 7] = [
    "stream_id",
    "consumer_id",
    "consumer_id_range",
    "force_mode",
    "max_rate_hz",
    "force_no_shm",
    "payload_fallback_uri",
];

fn rules(l: &mut Loader<'_>) -> Result<Vec<Rule>, ConfigError> {
    let key = "supervisor.rules";
    let Some(raw) = l.raw(key).cloned() else {
        return Ok(Vec::new());
    };
    let invalid = |key: String, found: String, expected: &str| ConfigError::Invalid {
        key,
        origin: Source::File,
        found,
        expected: expected.to_owned(),
    };
    let toml::Value::Array(items) = raw else {
        return Err(invalid(
            key.into(),
            raw.to_string(),
            "an array of tables ([[supervisor.rules]])",
        ));
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let element = format!("{key}[{i}]");
        let Some(t) = item.as_table() else {
            return Err(invalid(element, item.to_string(), "a table"));
        };
        for f in RULE_FIELDS {
            if t.contains_key(f) {
                l.mark_read(&format!("{element}.{f}"));
            }
        }
        // W §10.1.2: ConsumerHello carries no name, so a rule cannot select by one
        if let Some(f) = ["name", "consumer_name"]
            .into_iter()
            .find(|f| t.contains_key(*f))
        {
            return Err(ConfigError::Inconsistent {
                key: format!("{element}.{f}"),
                reason: "a ConsumerHello carries no consumer name (Wire Spec §10.1.2): select consumers by consumer_id, consumer_id_range or stream_id".into(),
            });
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
        let force_mode = match t.get("force_mode") {
            None => None,
            Some(v) => parse_mode(v)
                .ok_or_else(|| invalid(format!("{element}.force_mode"), v.to_string(), MODE))?,
        };
        let force_no_shm = t
            .get("force_no_shm")
            .map(|v| {
                v.as_bool()
                    .ok_or_else(|| invalid(format!("{element}.force_no_shm"), v.to_string(), BOOL))
            })
            .transpose()?;
        let payload_fallback_uri = t
            .get("payload_fallback_uri")
            .map(|v| {
                v.as_str().map(str::to_owned).ok_or_else(|| {
                    invalid(
                        format!("{element}.payload_fallback_uri"),
                        v.to_string(),
                        STR,
                    )
                })
            })
            .transpose()?;
        let consumer_id_range = t
            .get("consumer_id_range")
            .map(|v| match IdRange::from_toml(v) {
                Ok(Some(r)) => Ok(r),
                Ok(None) => Err(invalid(
                    format!("{element}.consumer_id_range"),
                    v.to_string(),
                    "a non-empty range \"start-end\" or [start, end]",
                )),
                Err(e) => Err(invalid(
                    format!("{element}.consumer_id_range"),
                    v.to_string(),
                    &e.to_string(),
                )),
            })
            .transpose()?;
        let rule = Rule {
            stream_id: field_u32("stream_id")?,
            consumer_id: field_u32("consumer_id")?,
            consumer_id_range,
            force_mode,
            max_rate_hz: field_u32("max_rate_hz")?,
            force_no_shm,
            payload_fallback_uri,
        };
        if rule.force_mode.is_none()
            && rule.force_no_shm.is_none()
            && rule.payload_fallback_uri.is_none()
            && rule.max_rate_hz.is_none()
        {
            return Err(ConfigError::Inconsistent {
                key: element,
                reason:
                    "a rule must set force_mode, max_rate_hz, force_no_shm or payload_fallback_uri"
                        .into(),
            });
        }
        if rule.consumer_id.is_some() && rule.consumer_id_range.is_some() {
            return Err(ConfigError::Inconsistent {
                key: format!("{element}.consumer_id_range"),
                reason: "set consumer_id or consumer_id_range, not both".into(),
            });
        }
        if rule.max_rate_hz.is_some() && rule.force_mode != Some(Mode::RateLimited) {
            return Err(ConfigError::Inconsistent {
                key: format!("{element}.max_rate_hz"),
                reason: "only meaningful with force_mode = \"RATE_LIMITED\" (2)".into(),
            });
        }
        out.push(rule);
    }
    Ok(out)
}
