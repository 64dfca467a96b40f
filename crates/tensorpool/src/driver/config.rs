//! The driver configuration: every key of Driver Model §17 with its default, plus
//! `shm.namespace` (default `"default"`, PITFALLS #11) and `policies.node_id_reuse_cooldown_ms`
//! (the C peer's key, default 1000). Environment variables override the file (§17).
//!
//! Loading never stops at an unknown key (peers' files carry `[supervisor]` and other tables
//! of their own): they are listed in [`DriverConfig::unknown_keys`] and logged as a warning.
//! Invalid values are errors naming the key and the expected form.

use std::path::{Path, PathBuf};

use tensorpool_codec::driver::Role as LeaseRole;
use tensorpool_shm::layout::{DEFAULT_BASE_DIR, DEFAULT_NAMESPACE, FileModes, ShmLayout};
use tensorpool_shm::pool::stride_is_julia_compatible;

use crate::client::ClientConfig;
use crate::config::{ConfigError, EnvSource, Loader, Provenance, Source};
use crate::streams::{
    DriverEndpoints, announce_period_ms, keepalive_interval_ms, read_driver_section,
};
// The `[driver]` table and the client timers are read where the roles and the driver client
// read them too (crate::streams): re-exported here under their old paths.
pub use crate::streams::{
    DEFAULT_ANNOUNCE_PERIOD_MS, DEFAULT_CONTROL_STREAM_ID, DEFAULT_KEEPALIVE_INTERVAL_MS,
    DEFAULT_QOS_STREAM_ID, DriverSection, client_timers,
};

/// `[shm]`: where and how regions are created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShmSection {
    /// `shm.base_dir` (default `"/dev/shm/tensorpool"`).
    pub base_dir: PathBuf,
    /// `shm.namespace` (default `"default"`; ours, PITFALLS #11).
    pub namespace: String,
    /// `shm.require_hugepages` (default false): policy for `requireHugepages=UNSPECIFIED`.
    pub require_hugepages: bool,
    /// `shm.page_size_bytes` (default 4096).
    pub page_size_bytes: u32,
    /// `shm.permissions_mode` (default `"660"`).
    pub permissions_mode: String,
    /// The modes parsed from `permissions_mode`.
    pub modes: FileModes,
    /// `shm.allowed_base_dirs` (default `[shm.base_dir]`).
    pub allowed_base_dirs: Vec<PathBuf>,
}

/// `[policies]`: leases, announces, epochs, shutdown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policies {
    /// `policies.allow_dynamic_streams` (default false).
    pub allow_dynamic_streams: bool,
    /// `policies.default_profile` (default: the first profile in the file).
    pub default_profile: String,
    /// `policies.announce_period_ms` (default 1000).
    pub announce_period_ms: u32,
    /// `policies.lease_keepalive_interval_ms` (default 1000).
    pub lease_keepalive_interval_ms: u32,
    /// `policies.lease_expiry_grace_intervals` (default 3).
    pub lease_expiry_grace_intervals: u32,
    /// `policies.prefault_shm` (default true).
    pub prefault_shm: bool,
    /// `policies.mlock_shm` (default false; failure is fatal when enabled).
    pub mlock_shm: bool,
    /// `policies.epoch_gc_enabled` (default true).
    pub epoch_gc_enabled: bool,
    /// `policies.epoch_gc_keep` (default 2: the live epoch and one before it).
    pub epoch_gc_keep: u32,
    /// `policies.epoch_gc_min_age_ns` (default 3 x announce period).
    pub epoch_gc_min_age_ns: u64,
    /// `policies.epoch_gc_on_startup` (default false).
    pub epoch_gc_on_startup: bool,
    /// `policies.shutdown_timeout_ms` (default 2000).
    pub shutdown_timeout_ms: u32,
    /// `policies.shutdown_token` (default empty: shutdown requests disabled).
    pub shutdown_token: String,
    /// `policies.node_id_reuse_cooldown_ms` (default 1000; the C peer's key).
    pub node_id_reuse_cooldown_ms: u32,
}

impl Policies {
    /// Lease lifetime without a keepalive: interval x grace intervals, in ns.
    pub fn lease_duration_ns(&self) -> u64 {
        u64::from(self.lease_keepalive_interval_ms)
            .saturating_mul(u64::from(self.lease_expiry_grace_intervals))
            .saturating_mul(1_000_000)
    }

    /// The announce period in ns.
    pub fn announce_period_ns(&self) -> u64 {
        u64::from(self.announce_period_ms) * 1_000_000
    }
}

/// One payload pool of a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    /// `pool_id` (unique in the profile).
    pub pool_id: u16,
    /// `stride_bytes` (a non-zero multiple of 64).
    pub stride_bytes: u32,
}

/// `[profiles.<name>]`: the geometry of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The profile's name.
    pub name: String,
    /// `header_nslots` (default 1024, a power of two).
    pub header_nslots: u32,
    /// `payload_pools` (a profile with none is accepted with a warning: attaches to its
    /// streams answer INVALID_PARAMS, Driver Model §4.3).
    pub payload_pools: Vec<PoolConfig>,
}

/// `[streams.<name>]`: a statically provisioned stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConfig {
    /// The table name.
    pub name: String,
    /// `stream_id`.
    pub stream_id: u32,
    /// `profile`.
    pub profile: String,
}

/// The whole driver configuration, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverConfig {
    /// `[driver]`.
    pub driver: DriverSection,
    /// `[shm]`.
    pub shm: ShmSection,
    /// `[policies]`.
    pub policies: Policies,
    /// `[profiles.*]` in file order.
    pub profiles: Vec<Profile>,
    /// `[streams.*]` in file order.
    pub streams: Vec<StreamConfig>,
    /// Where each value came from.
    pub provenance: Provenance,
    /// Keys in the file that the driver does not know.
    pub unknown_keys: Vec<String>,
    /// Valid but questionable settings.
    pub warnings: Vec<String>,
}

const U32: &str = "an unsigned 32-bit integer";
const U64: &str = "an unsigned 64-bit integer";
const BOOL: &str = "true or false";
const STR: &str = "a string";

impl DriverConfig {
    /// Loads `path` (or only defaults and environment when `None`).
    pub fn load(path: Option<&Path>, env: &dyn EnvSource) -> Result<Self, ConfigError> {
        Self::from_loader(&mut Loader::open(path, env)?)
    }

    /// Loads TOML text (tests, embedded configurations).
    pub fn from_toml(text: &str, env: &dyn EnvSource) -> Result<Self, ConfigError> {
        let mut l = Loader::from_str(text, "inline", env)?;
        Self::from_loader(&mut l)
    }

    fn from_loader(l: &mut Loader<'_>) -> Result<Self, ConfigError> {
        let driver = read_driver_section(l)?;
        let shm = shm_section(l)?;
        let profiles = profiles(l)?;
        let streams = streams(l, &profiles)?;
        let policies = policies(l, &profiles)?;
        let mut cfg = Self {
            driver,
            shm,
            policies,
            profiles,
            streams,
            provenance: Provenance::default(),
            // [producer] and [consumer] are the roles' tables of a shared deployment file
            // (they report their own unknown keys)
            unknown_keys: l
                .unknown_keys()
                .into_iter()
                .filter(|k| !k.starts_with("producer.") && !k.starts_with("consumer."))
                .collect(),
            warnings: Vec::new(),
        };
        cfg.validate()?;
        cfg.provenance = l.take_provenance();
        Ok(cfg)
    }

    /// The profile called `name`.
    pub fn profile(&self, name: &str) -> Option<&Profile> {
        self.profiles.iter().find(|p| p.name == name)
    }

    /// The canonical SHM layout these settings describe.
    pub fn layout(&self) -> Result<ShmLayout, tensorpool_shm::LayoutError> {
        ShmLayout::new(&self.shm.base_dir, &self.shm.namespace, self.shm.modes)
    }

    fn validate(&mut self) -> Result<(), ConfigError> {
        let fail = |key: &str, reason: String| ConfigError::Inconsistent {
            key: key.to_owned(),
            reason,
        };
        let p = &self.policies;
        for (key, v) in [
            ("policies.announce_period_ms", p.announce_period_ms),
            (
                "policies.lease_keepalive_interval_ms",
                p.lease_keepalive_interval_ms,
            ),
            (
                "policies.lease_expiry_grace_intervals",
                p.lease_expiry_grace_intervals,
            ),
            ("policies.epoch_gc_keep", p.epoch_gc_keep),
        ] {
            if v == 0 {
                return Err(fail(key, "must be at least 1".into()));
            }
        }
        for (key, id) in [
            ("driver.control_stream_id", self.driver.control_stream_id),
            ("driver.announce_stream_id", self.driver.announce_stream_id),
            ("driver.qos_stream_id", self.driver.qos_stream_id),
        ] {
            if i32::try_from(id).is_err() {
                return Err(fail(
                    key,
                    format!("{id} is not an Aeron stream id (expected 0..=2147483647)"),
                ));
            }
        }
        if !self.shm.page_size_bytes.is_power_of_two() {
            return Err(fail("shm.page_size_bytes", "must be a power of two".into()));
        }
        if self.profiles.is_empty() {
            return Err(ConfigError::Missing {
                key: "profiles".into(),
                expected: "at least one [profiles.<name>] table".into(),
            });
        }
        self.validate_ranges()?;
        self.collect_warnings();
        Ok(())
    }

    /// Driver Model §11: ranges must not overlap the control/announce/QoS ids, static stream
    /// ids, or each other.
    fn validate_ranges(&self) -> Result<(), ConfigError> {
        let d = &self.driver;
        let ranges = [
            ("driver.stream_id_range", d.stream_id_range),
            (
                "driver.descriptor_stream_id_range",
                d.descriptor_stream_id_range,
            ),
            ("driver.control_stream_id_range", d.control_stream_id_range),
        ];
        let fixed = [
            ("driver.control_stream_id", d.control_stream_id),
            ("driver.announce_stream_id", d.announce_stream_id),
            ("driver.qos_stream_id", d.qos_stream_id),
        ];
        for (i, (key, r)) in ranges.iter().enumerate() {
            let Some(r) = r else { continue };
            for (fixed_key, id) in fixed {
                if r.contains(id) {
                    return Err(ConfigError::Inconsistent {
                        key: (*key).into(),
                        reason: format!("range {r} contains {fixed_key} = {id}"),
                    });
                }
            }
            for s in &self.streams {
                if r.contains(s.stream_id) {
                    return Err(ConfigError::Inconsistent {
                        key: (*key).into(),
                        reason: format!(
                            "range {r} contains streams.{}.stream_id = {}",
                            s.name, s.stream_id
                        ),
                    });
                }
            }
            for (other_key, other) in &ranges[i + 1..] {
                if let Some(o) = other
                    && r.overlaps(o)
                {
                    return Err(ConfigError::Inconsistent {
                        key: (*key).into(),
                        reason: format!("range {r} overlaps {other_key} = {o}"),
                    });
                }
            }
        }
        Ok(())
    }

    fn collect_warnings(&mut self) {
        let mut w = Vec::new();
        for p in &self.profiles {
            if p.payload_pools.is_empty() {
                w.push(format!(
                    "profiles.{}.payload_pools is empty: attaches to its streams are rejected with INVALID_PARAMS",
                    p.name
                ));
            }
            for pool in &p.payload_pools {
                if !stride_is_julia_compatible(pool.stride_bytes) {
                    w.push(format!(
                        "profiles.{}.payload_pools pool {} stride_bytes {} is not a power of two: Julia consumers cannot map it",
                        p.name, pool.pool_id, pool.stride_bytes
                    ));
                }
            }
        }
        if self.streams.is_empty() && !self.policies.allow_dynamic_streams {
            w.push(
                "no [streams] and policies.allow_dynamic_streams = false: every attach is rejected"
                    .into(),
            );
        }
        if self.policies.allow_dynamic_streams && self.driver.stream_id_range.is_none() {
            w.push(
                "policies.allow_dynamic_streams = true without driver.stream_id_range: dynamic attaches are rejected with INVALID_PARAMS"
                    .into(),
            );
        }
        if self.policies.shutdown_token.is_empty() {
            w.push("policies.shutdown_token is empty: ShmDriverShutdownRequest is disabled".into());
        }
        self.warnings = w;
    }
}

/// What a driver client and the roles know of this driver: its control-plane endpoints and
/// client timers (never the whole configuration).
impl DriverEndpoints {
    /// The endpoints and timers of a driver configuration.
    pub fn of_driver(cfg: &DriverConfig) -> Self {
        let p = &cfg.policies;
        Self::of_section(
            &cfg.driver,
            p.announce_period_ms,
            p.lease_keepalive_interval_ms,
        )
    }
}

impl ClientConfig {
    /// Endpoints and timers taken from a driver configuration (as
    /// [`DriverEndpoints::of_driver`] gives them).
    pub fn for_driver(stream_id: u32, role: LeaseRole, driver: &DriverConfig) -> Self {
        DriverEndpoints::of_driver(driver).client_config(stream_id, role, None)
    }
}

fn shm_section(l: &mut Loader<'_>) -> Result<ShmSection, ConfigError> {
    let base_dir: String = l.value_or("shm.base_dir", DEFAULT_BASE_DIR.to_owned(), STR)?;
    let base_dir = PathBuf::from(base_dir);
    let origin = l
        .provenance()
        .source("shm.base_dir")
        .cloned()
        .unwrap_or(Source::Default);
    if !base_dir.is_absolute() {
        return Err(ConfigError::Invalid {
            key: "shm.base_dir".into(),
            origin,
            found: base_dir.display().to_string(),
            expected: "an absolute path".into(),
        });
    }
    let namespace = l.value_or("shm.namespace", DEFAULT_NAMESPACE.to_owned(), STR)?;
    if ShmLayout::for_user(&base_dir, "u", &namespace, FileModes::default()).is_err() {
        return Err(ConfigError::Invalid {
            key: "shm.namespace".into(),
            origin: l
                .provenance()
                .source("shm.namespace")
                .cloned()
                .unwrap_or(Source::Default),
            found: format!("{namespace:?}"),
            expected: "1-255 characters of [A-Za-z0-9._-], not `.` or `..`".into(),
        });
    }
    let require_hugepages = l.value_or("shm.require_hugepages", false, BOOL)?;
    let page_size_bytes = l.value_or("shm.page_size_bytes", 4096u32, U32)?;
    let permissions_mode = l.value_or(
        "shm.permissions_mode",
        "660".to_owned(),
        "an octal mode string such as \"660\"",
    )?;
    let modes =
        FileModes::from_permissions_mode(&permissions_mode).map_err(|e| ConfigError::Invalid {
            key: "shm.permissions_mode".into(),
            origin: l
                .provenance()
                .source("shm.permissions_mode")
                .cloned()
                .unwrap_or(Source::Default),
            found: format!("{permissions_mode:?}"),
            expected: format!("an octal mode of at most 0777, not world-writable ({e})"),
        })?;
    let allowed_base_dirs = allowed_dirs(l, &base_dir)?;
    Ok(ShmSection {
        base_dir,
        namespace,
        require_hugepages,
        page_size_bytes,
        permissions_mode,
        modes,
        allowed_base_dirs,
    })
}

/// `shm.allowed_base_dirs` (default `[shm.base_dir]`), which must contain the base dir.
fn allowed_dirs(l: &mut Loader<'_>, base_dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let allowed: Option<Vec<String>> =
        l.value("shm.allowed_base_dirs", "an array of absolute paths")?;
    let allowed_base_dirs = match allowed {
        Some(dirs) if !dirs.is_empty() => dirs.into_iter().map(PathBuf::from).collect(),
        _ => {
            let v = vec![base_dir.to_path_buf()];
            l.record_default(
                "shm.allowed_base_dirs",
                &vec![base_dir.display().to_string()],
            );
            v
        }
    };
    if let Some(bad) = allowed_base_dirs.iter().find(|d| !d.is_absolute()) {
        return Err(ConfigError::Invalid {
            key: "shm.allowed_base_dirs".into(),
            origin: Source::File,
            found: bad.display().to_string(),
            expected: "absolute paths".into(),
        });
    }
    if !allowed_base_dirs.iter().any(|d| base_dir.starts_with(d)) {
        return Err(ConfigError::Inconsistent {
            key: "shm.allowed_base_dirs".into(),
            reason: format!(
                "shm.base_dir {} is not inside any allowed base dir: the driver's own URIs would be rejected",
                base_dir.display()
            ),
        });
    }
    Ok(allowed_base_dirs)
}

fn policies(l: &mut Loader<'_>, profiles: &[Profile]) -> Result<Policies, ConfigError> {
    let allow_dynamic_streams = l.value_or("policies.allow_dynamic_streams", false, BOOL)?;
    let first = profiles.first().map(|p| p.name.clone()).unwrap_or_default();
    let default_profile = match l.value::<String>("policies.default_profile", STR)? {
        Some(p) if !p.is_empty() => p,
        _ => {
            l.record_default("policies.default_profile", &first);
            first
        }
    };
    if !default_profile.is_empty() && !profiles.iter().any(|p| p.name == default_profile) {
        return Err(ConfigError::Inconsistent {
            key: "policies.default_profile".into(),
            reason: format!("no profile named {default_profile:?}"),
        });
    }
    let announce_period_ms = announce_period_ms(l)?;
    let epoch_gc_min_age_ns = match l.value::<u64>("policies.epoch_gc_min_age_ns", U64)? {
        Some(v) => v,
        None => {
            let v = 3 * u64::from(announce_period_ms) * 1_000_000;
            l.record_default("policies.epoch_gc_min_age_ns", &v);
            v
        }
    };
    Ok(Policies {
        allow_dynamic_streams,
        default_profile,
        announce_period_ms,
        lease_keepalive_interval_ms: keepalive_interval_ms(l)?,
        lease_expiry_grace_intervals: l.value_or(
            "policies.lease_expiry_grace_intervals",
            3u32,
            U32,
        )?,
        prefault_shm: l.value_or("policies.prefault_shm", true, BOOL)?,
        mlock_shm: l.value_or("policies.mlock_shm", false, BOOL)?,
        epoch_gc_enabled: l.value_or("policies.epoch_gc_enabled", true, BOOL)?,
        epoch_gc_keep: l.value_or("policies.epoch_gc_keep", 2u32, U32)?,
        epoch_gc_min_age_ns,
        epoch_gc_on_startup: l.value_or("policies.epoch_gc_on_startup", false, BOOL)?,
        shutdown_timeout_ms: l.value_or("policies.shutdown_timeout_ms", 2000u32, U32)?,
        shutdown_token: l.value_or("policies.shutdown_token", String::new(), STR)?,
        node_id_reuse_cooldown_ms: l.value_or(
            "policies.node_id_reuse_cooldown_ms",
            1000u32,
            U32,
        )?,
    })
}

fn profiles(l: &mut Loader<'_>) -> Result<Vec<Profile>, ConfigError> {
    let mut out = Vec::new();
    for name in l.table_names("profiles")? {
        let base = format!("profiles.{name}");
        let header_nslots = l.value_or(&format!("{base}.header_nslots"), 1024u32, U32)?;
        if !header_nslots.is_power_of_two() {
            return Err(ConfigError::Invalid {
                key: format!("{base}.header_nslots"),
                origin: l
                    .provenance()
                    .source(&format!("{base}.header_nslots"))
                    .cloned()
                    .unwrap_or(Source::File),
                found: header_nslots.to_string(),
                expected: "a power of two".into(),
            });
        }
        let payload_pools = pools(l, &base)?;
        out.push(Profile {
            name,
            header_nslots,
            payload_pools,
        });
    }
    Ok(out)
}

#[derive(serde::Deserialize, serde::Serialize)]
struct RawPool {
    pool_id: u16,
    stride_bytes: u32,
}

fn pools(l: &mut Loader<'_>, base: &str) -> Result<Vec<PoolConfig>, ConfigError> {
    let key = format!("{base}.payload_pools");
    let expected = "an array of { pool_id = <u16>, stride_bytes = <non-zero multiple of 64> }";
    let raw: Option<Vec<toml::Table>> = l.value(&key, expected)?;
    let mut out: Vec<PoolConfig> = Vec::new();
    for (i, t) in raw.unwrap_or_default().into_iter().enumerate() {
        let element = format!("{key}[{i}]");
        for k in t.keys() {
            if k == "pool_id" || k == "stride_bytes" {
                l.mark_read(&format!("{element}.{k}"));
            }
        }
        let found = toml::Value::Table(t.clone()).to_string();
        let invalid = |expected: &str| ConfigError::Invalid {
            key: element.clone(),
            origin: Source::File,
            found: found.clone(),
            expected: expected.to_owned(),
        };
        // other fields stay unread: they are reported by `unknown_keys`
        let mut known = t;
        known.retain(|k, _| k == "pool_id" || k == "stride_bytes");
        let p: RawPool = known.try_into().map_err(|_| invalid(expected))?;
        if p.stride_bytes == 0 || !p.stride_bytes.is_multiple_of(64) {
            return Err(invalid(
                "stride_bytes a non-zero multiple of 64 (Wire Spec §15.22)",
            ));
        }
        if out.iter().any(|q| q.pool_id == p.pool_id) {
            return Err(invalid("pool_id unique within the profile"));
        }
        out.push(PoolConfig {
            pool_id: p.pool_id,
            stride_bytes: p.stride_bytes,
        });
    }
    Ok(out)
}

fn streams(l: &mut Loader<'_>, profiles: &[Profile]) -> Result<Vec<StreamConfig>, ConfigError> {
    let mut out: Vec<StreamConfig> = Vec::new();
    for name in l.table_names("streams")? {
        let base = format!("streams.{name}");
        let stream_id: u32 =
            l.value(&format!("{base}.stream_id"), U32)?
                .ok_or(ConfigError::Missing {
                    key: format!("{base}.stream_id"),
                    expected: U32.into(),
                })?;
        let profile: String =
            l.value(&format!("{base}.profile"), STR)?
                .ok_or(ConfigError::Missing {
                    key: format!("{base}.profile"),
                    expected: "the name of a [profiles.<name>] table".into(),
                })?;
        if !profiles.iter().any(|p| p.name == profile) {
            return Err(ConfigError::Inconsistent {
                key: format!("{base}.profile"),
                reason: format!("no profile named {profile:?}"),
            });
        }
        if let Some(dup) = out.iter().find(|s| s.stream_id == stream_id) {
            return Err(ConfigError::Inconsistent {
                key: format!("{base}.stream_id"),
                reason: format!("{stream_id} is also streams.{}.stream_id", dup.name),
            });
        }
        out.push(StreamConfig {
            name,
            stream_id,
            profile,
        });
    }
    Ok(out)
}
