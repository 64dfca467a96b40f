//! The bridge configuration (Bridge Spec v1.1 §10): every key of the `[bridge]` table and of
//! each `[[mappings]]` entry, with the spec's defaults, environment overrides of the
//! `[bridge]` keys (`BRIDGE_MTU_BYTES`, ...: uppercase the key, `.` becomes `_`; the
//! environment wins) and provenance. The example files of both peer implementations load
//! unchanged (`tests/bridge_config.rs`).
//!
//! Decisions where §10 leaves room (docs/bridge.md):
//! - `mtu_bytes` defaults to the payload channel's `mtu=` parameter, else Aeron's default
//!   MTU (1408 bytes);
//! - `metadata_stream_id` (deployment-specific) defaults to 3002 and
//!   `source_metadata_stream_id` to 1300 (Stream Id Conventions);
//! - `forward_metadata = true` without `metadata_channel` is an error when the file or the
//!   environment says `true`, and a warning (forwarding off) when it is only the default:
//!   §7.1 says to disable it for the mapping and SHOULD fail fast;
//! - `forward_progress` / `forward_qos` with a mapping whose control ids are 0 is an error
//!   (§9: the mapping is invalid, fail fast).

use std::path::Path;

use crate::config::{ConfigError, EnvSource, IdRange, Loader, Provenance, Source};
use crate::streams;

/// Aeron's default MTU (`aeron.mtu.length`), the default of `bridge.mtu_bytes`.
pub const DEFAULT_MTU_BYTES: u32 = 1408;
/// Bytes of each MTU left for Aeron, IP and UDP headers (§5.2: `chunk_bytes = MTU - 128`).
pub const MTU_OVERHEAD: u32 = 128;
/// `bridge.max_chunk_bytes` default, also the schema's maximum `chunkLength`.
pub const DEFAULT_MAX_CHUNK_BYTES: u32 = 65_535;
/// `bridge.max_payload_bytes` default, also the schema's maximum `payloadLength`.
pub const DEFAULT_MAX_PAYLOAD_BYTES: u32 = 1 << 30;
/// `bridge.assembly_timeout_ms` default (§5.3a).
pub const DEFAULT_ASSEMBLY_TIMEOUT_MS: u32 = 250;
/// `bridge.metadata_stream_id` default (Stream Id Conventions: bridge metadata 3002).
pub const DEFAULT_METADATA_STREAM_ID: u32 = 3002;
/// Aeron's largest MTU (64 KiB), the upper bound of `bridge.mtu_bytes`.
pub const MAX_MTU_BYTES: u32 = 65_504;

/// One `[[mappings]]` entry: a source stream on the sending host bridged to a destination
/// stream on the receiving host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// `source_stream_id`: the stream consumed from the sending host's SHM.
    pub source_stream_id: u32,
    /// `dest_stream_id`: the stream produced on the receiving host (0: allocated from
    /// `bridge.dest_stream_id_range`).
    pub dest_stream_id: u32,
    /// `profile`: the destination driver profile (pool layout) the receiver asks for.
    pub profile: String,
    /// `metadata_stream_id` (default: `dest_stream_id`): the stream id forwarded metadata
    /// is rewritten to.
    pub metadata_stream_id: u32,
    /// `source_control_stream_id` (default 0: disabled): progress / QoS source.
    pub source_control_stream_id: u32,
    /// `dest_control_stream_id` (default 0: disabled): progress / QoS destination.
    pub dest_control_stream_id: u32,
}

/// The `[bridge]` table and its mappings, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeConfig {
    /// `bridge.instance_id` (required): name in logs and counters.
    pub instance_id: String,
    /// `bridge.payload_channel` (required): Aeron channel of `BridgeFrameChunk`.
    pub payload_channel: String,
    /// `bridge.payload_stream_id` (required).
    pub payload_stream_id: u32,
    /// `bridge.control_channel` (required): forwarded `ShmPoolAnnounce` (+ QoS, progress).
    pub control_channel: String,
    /// `bridge.control_stream_id` (required).
    pub control_stream_id: u32,
    /// `bridge.mtu_bytes` (default: the payload channel's `mtu=`, else 1408).
    pub mtu_bytes: u32,
    /// `bridge.chunk_bytes` (default: `mtu_bytes - 128`).
    pub chunk_bytes: u32,
    /// `bridge.max_chunk_bytes` (default 65535).
    pub max_chunk_bytes: u32,
    /// `bridge.max_payload_bytes` (default 1073741824).
    pub max_payload_bytes: u32,
    /// `bridge.integrity_crc32c` (default false): CRC32C in every chunk, checked on receipt.
    pub integrity_crc32c: bool,
    /// `bridge.dest_stream_id_range` (default: none).
    pub dest_stream_id_range: Option<IdRange>,
    /// `bridge.forward_metadata` (default true; off when no metadata channel).
    pub forward_metadata: bool,
    /// `bridge.forward_tracelink` (default false).
    pub forward_tracelink: bool,
    /// `bridge.metadata_channel` (default empty: metadata not forwarded).
    pub metadata_channel: String,
    /// `bridge.metadata_stream_id` (default 3002).
    pub metadata_stream_id: u32,
    /// `bridge.source_metadata_stream_id` (default 1300).
    pub source_metadata_stream_id: u32,
    /// `bridge.forward_qos` (default false).
    pub forward_qos: bool,
    /// `bridge.forward_progress` (default false).
    pub forward_progress: bool,
    /// `bridge.assembly_timeout_ms` (default 250).
    pub assembly_timeout_ms: u32,
    /// `[[mappings]]`, in file order (at least one).
    pub mappings: Vec<Mapping>,
    /// Where each value came from.
    pub provenance: Provenance,
    /// Keys under `bridge.` and `mappings` nobody knows.
    pub unknown_keys: Vec<String>,
    /// Valid but questionable settings.
    pub warnings: Vec<String>,
}

const U32: &str = "an unsigned 32-bit integer";
const BOOL: &str = "true or false";
const STR: &str = "a string";
const RANGE: &str = "an inclusive range \"start-end\" or [start, end], or empty";

fn missing(key: &str, expected: &str) -> ConfigError {
    ConfigError::Missing {
        key: key.to_owned(),
        expected: expected.to_owned(),
    }
}

fn fail(key: &str, reason: String) -> ConfigError {
    ConfigError::Inconsistent {
        key: key.to_owned(),
        reason,
    }
}

/// The `mtu=` parameter of an Aeron channel, if any.
pub fn channel_mtu(channel: &str) -> Option<u32> {
    let params = channel.split_once('?')?.1;
    params
        .split('|')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim() == "mtu")
        .and_then(|(_, v)| v.trim().parse().ok())
}

impl BridgeConfig {
    /// Loads `path` (or only the environment when `None`).
    pub fn load(path: Option<&Path>, env: &dyn EnvSource) -> Result<Self, ConfigError> {
        Self::from_loader(&mut Loader::open(path, env)?)
    }

    /// Loads TOML text.
    pub fn from_toml(text: &str, env: &dyn EnvSource) -> Result<Self, ConfigError> {
        Self::from_loader(&mut Loader::from_str(text, "inline", env)?)
    }

    /// The chunk payload size the sender uses and the receiver accepts at most:
    /// `min(chunk_bytes, mtu_bytes - 128, max_chunk_bytes)` (§5.2).
    pub fn effective_chunk_bytes(&self) -> u32 {
        self.chunk_bytes
            .min(self.mtu_bytes - MTU_OVERHEAD)
            .min(self.max_chunk_bytes)
    }

    /// Whether metadata is forwarded (the flag and a metadata channel).
    pub fn metadata_enabled(&self) -> bool {
        (self.forward_metadata || self.forward_tracelink) && !self.metadata_channel.is_empty()
    }

    /// Reads `[bridge]` and `[[mappings]]` of `l`.
    pub fn from_loader(l: &mut Loader<'_>) -> Result<Self, ConfigError> {
        let instance_id: String = l
            .value("bridge.instance_id", STR)?
            .ok_or_else(|| missing("bridge.instance_id", STR))?;
        let payload_channel: String = l
            .value("bridge.payload_channel", STR)?
            .ok_or_else(|| missing("bridge.payload_channel", "an Aeron channel (aeron:udp?...)"))?;
        let payload_stream_id: u32 = l
            .value("bridge.payload_stream_id", U32)?
            .ok_or_else(|| missing("bridge.payload_stream_id", U32))?;
        let control_channel: String = l
            .value("bridge.control_channel", STR)?
            .ok_or_else(|| missing("bridge.control_channel", "an Aeron channel"))?;
        let control_stream_id: u32 = l
            .value("bridge.control_stream_id", U32)?
            .ok_or_else(|| missing("bridge.control_stream_id", U32))?;
        let mtu_bytes = match l.value::<u32>("bridge.mtu_bytes", U32)? {
            Some(v) => v,
            None => match channel_mtu(&payload_channel) {
                Some(m) => {
                    l.record_derived("bridge.mtu_bytes", &m, "bridge.payload_channel (mtu=)");
                    m
                }
                None => {
                    l.record_default("bridge.mtu_bytes", &DEFAULT_MTU_BYTES);
                    DEFAULT_MTU_BYTES
                }
            },
        };
        if !(MTU_OVERHEAD + 1..=MAX_MTU_BYTES).contains(&mtu_bytes) {
            return Err(fail(
                "bridge.mtu_bytes",
                format!(
                    "{mtu_bytes} is outside {}..={MAX_MTU_BYTES} (chunks carry mtu_bytes - {MTU_OVERHEAD} payload bytes)",
                    MTU_OVERHEAD + 1
                ),
            ));
        }
        let chunk_bytes = match l.value::<u32>("bridge.chunk_bytes", U32)? {
            Some(v) => v,
            None => {
                let v = mtu_bytes - MTU_OVERHEAD;
                l.record_derived("bridge.chunk_bytes", &v, "bridge.mtu_bytes - 128");
                v
            }
        };
        let forward_metadata_given = l.value::<bool>("bridge.forward_metadata", BOOL)?;
        if forward_metadata_given.is_none() {
            l.record_default("bridge.forward_metadata", &true);
        }
        let forward_tracelink_given = l.value::<bool>("bridge.forward_tracelink", BOOL)?;
        if forward_tracelink_given.is_none() {
            l.record_default("bridge.forward_tracelink", &false);
        }
        let dest_stream_id_range = match l.parsed("bridge.dest_stream_id_range", RANGE, |v| {
            IdRange::from_toml(v).ok()
        })? {
            Some(r) => r,
            None => {
                l.record_default("bridge.dest_stream_id_range", &"");
                None
            }
        };
        let mut cfg = Self {
            instance_id,
            payload_channel,
            payload_stream_id,
            control_channel,
            control_stream_id,
            mtu_bytes,
            chunk_bytes,
            max_chunk_bytes: l.value_or("bridge.max_chunk_bytes", DEFAULT_MAX_CHUNK_BYTES, U32)?,
            max_payload_bytes: l.value_or(
                "bridge.max_payload_bytes",
                DEFAULT_MAX_PAYLOAD_BYTES,
                U32,
            )?,
            integrity_crc32c: l.value_or("bridge.integrity_crc32c", false, BOOL)?,
            dest_stream_id_range,
            forward_metadata: forward_metadata_given.unwrap_or(true),
            forward_tracelink: forward_tracelink_given.unwrap_or(false),
            metadata_channel: l.value_or("bridge.metadata_channel", String::new(), STR)?,
            metadata_stream_id: l.value_or(
                "bridge.metadata_stream_id",
                DEFAULT_METADATA_STREAM_ID,
                U32,
            )?,
            source_metadata_stream_id: l.value_or(
                "bridge.source_metadata_stream_id",
                streams::METADATA_STREAM_ID as u32,
                U32,
            )?,
            forward_qos: l.value_or("bridge.forward_qos", false, BOOL)?,
            forward_progress: l.value_or("bridge.forward_progress", false, BOOL)?,
            assembly_timeout_ms: l.value_or(
                "bridge.assembly_timeout_ms",
                DEFAULT_ASSEMBLY_TIMEOUT_MS,
                U32,
            )?,
            mappings: mappings(l)?,
            provenance: Provenance::default(),
            unknown_keys: Vec::new(),
            warnings: Vec::new(),
        };
        cfg.validate(
            forward_metadata_given == Some(true),
            forward_tracelink_given == Some(true),
        )?;
        cfg.unknown_keys = crate::config::unknown_keys_under(l, "bridge");
        cfg.unknown_keys.extend(
            l.unknown_keys()
                .into_iter()
                .filter(|k| k.starts_with("mappings")),
        );
        cfg.provenance = l.take_provenance();
        Ok(cfg)
    }

    fn validate(&mut self, metadata_said: bool, tracelink_said: bool) -> Result<(), ConfigError> {
        let mut w = Vec::new();
        if self.instance_id.trim().is_empty() {
            return Err(fail("bridge.instance_id", "must not be empty".into()));
        }
        for (key, ch) in [
            ("bridge.payload_channel", &self.payload_channel),
            ("bridge.control_channel", &self.control_channel),
        ] {
            if !ch.starts_with("aeron:") {
                return Err(ConfigError::Invalid {
                    key: key.into(),
                    origin: Source::File,
                    found: format!("{ch:?}"),
                    expected: "an Aeron channel (aeron:udp?endpoint=host:port, aeron:ipc)".into(),
                });
            }
        }
        if !self.metadata_channel.is_empty() && !self.metadata_channel.starts_with("aeron:") {
            return Err(ConfigError::Invalid {
                key: "bridge.metadata_channel".into(),
                origin: Source::File,
                found: format!("{:?}", self.metadata_channel),
                expected: "empty or an Aeron channel".into(),
            });
        }
        let mut ids = vec![
            ("bridge.payload_stream_id", self.payload_stream_id),
            ("bridge.control_stream_id", self.control_stream_id),
            ("bridge.metadata_stream_id", self.metadata_stream_id),
            (
                "bridge.source_metadata_stream_id",
                self.source_metadata_stream_id,
            ),
        ];
        for (key, id) in &ids {
            if i32::try_from(*id).is_err() {
                return Err(fail(
                    key,
                    format!("{id} is not an Aeron stream id (expected 0..=2147483647)"),
                ));
            }
        }
        if self.chunk_bytes == 0 {
            return Err(fail("bridge.chunk_bytes", "must be at least 1".into()));
        }
        if self.max_chunk_bytes == 0 || self.max_chunk_bytes > DEFAULT_MAX_CHUNK_BYTES {
            return Err(fail(
                "bridge.max_chunk_bytes",
                format!(
                    "{} is outside 1..={DEFAULT_MAX_CHUNK_BYTES} (the schema's chunkLength maximum)",
                    self.max_chunk_bytes
                ),
            ));
        }
        if self.max_payload_bytes == 0 || self.max_payload_bytes > DEFAULT_MAX_PAYLOAD_BYTES {
            return Err(fail(
                "bridge.max_payload_bytes",
                format!(
                    "{} is outside 1..={DEFAULT_MAX_PAYLOAD_BYTES} (the schema's payloadLength maximum)",
                    self.max_payload_bytes
                ),
            ));
        }
        let max_frame = u64::from(self.effective_chunk_bytes()) * 65_535;
        if u64::from(self.max_payload_bytes) > max_frame {
            w.push(format!(
                "bridge.max_payload_bytes = {} needs more than 65535 chunks of {} bytes: frames above {max_frame} bytes are dropped by the sender",
                self.max_payload_bytes,
                self.effective_chunk_bytes()
            ));
        }
        if self.assembly_timeout_ms == 0 {
            return Err(fail(
                "bridge.assembly_timeout_ms",
                "must be at least 1".into(),
            ));
        }
        if self.metadata_channel.is_empty() {
            if self.forward_metadata && metadata_said {
                return Err(fail(
                    "bridge.forward_metadata",
                    "true needs bridge.metadata_channel (Bridge Spec §7.1)".into(),
                ));
            }
            if self.forward_tracelink && tracelink_said {
                return Err(fail(
                    "bridge.forward_tracelink",
                    "true needs bridge.metadata_channel (Bridge Spec §7.1)".into(),
                ));
            }
            if self.forward_metadata {
                w.push(
                    "bridge.metadata_channel is empty: metadata is not forwarded (bridge.forward_metadata defaults to true)"
                        .into(),
                );
            }
        } else if self.metadata_channel == self.control_channel
            && self.metadata_stream_id == self.control_stream_id
        {
            return Err(fail(
                "bridge.metadata_stream_id",
                "metadata must not share the control channel and stream (Bridge Spec §7.2)".into(),
            ));
        }
        if self.mappings.is_empty() {
            return Err(missing(
                "mappings",
                "at least one [[mappings]] entry with source_stream_id, dest_stream_id, profile",
            ));
        }
        for (i, m) in self.mappings.iter().enumerate() {
            let el = |f: &str| format!("mappings[{i}].{f}");
            for (f, id) in [
                ("source_stream_id", m.source_stream_id),
                ("dest_stream_id", m.dest_stream_id),
                ("metadata_stream_id", m.metadata_stream_id),
                ("source_control_stream_id", m.source_control_stream_id),
                ("dest_control_stream_id", m.dest_control_stream_id),
            ] {
                if i32::try_from(id).is_err() {
                    return Err(fail(&el(f), format!("{id} is not an Aeron stream id")));
                }
            }
            if m.source_stream_id == 0 {
                return Err(fail(&el("source_stream_id"), "must not be 0".into()));
            }
            if m.profile.trim().is_empty() {
                return Err(fail(&el("profile"), "must not be empty".into()));
            }
            if m.dest_stream_id == 0 && self.dest_stream_id_range.is_none() {
                return Err(fail(
                    &el("dest_stream_id"),
                    "0 (allocate) needs bridge.dest_stream_id_range (Bridge Spec §4)".into(),
                ));
            }
            if (self.forward_progress || self.forward_qos)
                && (m.source_control_stream_id == 0 || m.dest_control_stream_id == 0)
            {
                return Err(fail(
                    &el(if m.source_control_stream_id == 0 {
                        "source_control_stream_id"
                    } else {
                        "dest_control_stream_id"
                    }),
                    "must be non-zero when bridge.forward_progress or bridge.forward_qos is true (Bridge Spec §9)"
                        .into(),
                ));
            }
            for (j, o) in self.mappings.iter().enumerate().take(i) {
                if o.source_stream_id == m.source_stream_id {
                    return Err(fail(
                        &el("source_stream_id"),
                        format!(
                            "{} is also mappings[{j}].source_stream_id (stream ids must be distinct, Bridge Spec §2.3)",
                            m.source_stream_id
                        ),
                    ));
                }
                if m.dest_stream_id != 0 && o.dest_stream_id == m.dest_stream_id {
                    return Err(fail(
                        &el("dest_stream_id"),
                        format!(
                            "{} is also mappings[{j}].dest_stream_id (one producer per stream)",
                            m.dest_stream_id
                        ),
                    ));
                }
            }
        }
        if let Some(r) = self.dest_stream_id_range {
            for m in &self.mappings {
                ids.push((
                    "a mapping's source_control_stream_id",
                    m.source_control_stream_id,
                ));
                ids.push((
                    "a mapping's dest_control_stream_id",
                    m.dest_control_stream_id,
                ));
            }
            for (key, id) in ids {
                if id != 0 && r.contains(id) {
                    return Err(fail(
                        "bridge.dest_stream_id_range",
                        format!("{r} contains {key} = {id} (Bridge Spec §10)"),
                    ));
                }
            }
            if r.end > i32::MAX as u32 {
                return Err(fail(
                    "bridge.dest_stream_id_range",
                    format!("{r} goes past the largest Aeron stream id 2147483647"),
                ));
            }
        }
        self.warnings = w;
        Ok(())
    }
}

const MAPPING_FIELDS: [&str; 6] = [
    "source_stream_id",
    "dest_stream_id",
    "profile",
    "metadata_stream_id",
    "source_control_stream_id",
    "dest_control_stream_id",
];

fn mappings(l: &mut Loader<'_>) -> Result<Vec<Mapping>, ConfigError> {
    let key = "mappings";
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
            "an array of tables ([[mappings]])",
        ));
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let element = format!("{key}[{i}]");
        let Some(t) = item.as_table() else {
            return Err(invalid(element, item.to_string(), "a table"));
        };
        for f in MAPPING_FIELDS {
            if t.contains_key(f) {
                l.mark_read(&format!("{element}.{f}"));
            }
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
        let source_stream_id = field_u32("source_stream_id")?
            .ok_or_else(|| missing(&format!("{element}.source_stream_id"), U32))?;
        let dest_stream_id = field_u32("dest_stream_id")?
            .ok_or_else(|| missing(&format!("{element}.dest_stream_id"), U32))?;
        let profile = match t.get("profile") {
            None => return Err(missing(&format!("{element}.profile"), STR)),
            Some(v) => v
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| invalid(format!("{element}.profile"), v.to_string(), STR))?,
        };
        out.push(Mapping {
            source_stream_id,
            dest_stream_id,
            profile,
            metadata_stream_id: field_u32("metadata_stream_id")?.unwrap_or(dest_stream_id),
            source_control_stream_id: field_u32("source_control_stream_id")?.unwrap_or(0),
            dest_control_stream_id: field_u32("dest_control_stream_id")?.unwrap_or(0),
        });
    }
    Ok(out)
}
