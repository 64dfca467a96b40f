//! The discovery provider's configuration: the `[discovery]` table of the C implementation's
//! `discovery_example.toml` (every key, with its default) and `[driver] aeron_dir`,
//! environment overrides (`DISCOVERY_MAX_RESULTS`, ...; the environment wins) and provenance.
//!
//! Two more keys make a registry that spans hosts (DS §8): `forward_channel` (re-publish the
//! local driver's announces and data-source messages on an Aeron channel, UDP to another
//! host's registry) and `[[discovery.endpoints]]` (further drivers whose announces arrive on
//! their own channels, each with its authority). Embedded in `tp driver`
//! ([`DiscoveryConfig::embedded`]), the endpoint defaults are the driver's own.

use std::path::Path;

use crate::config::{ConfigError, EnvSource, Loader, Provenance};
use crate::streams;

/// `discovery.request_stream_id` default (the C example's and `tp_discoveryd`'s).
pub const DEFAULT_REQUEST_STREAM_ID: u32 = 9000;
/// `discovery.max_results` default (DS §5.2: RECOMMENDED cap 1 000).
pub const DEFAULT_MAX_RESULTS: u32 = 1000;
/// `discovery.announce_period_ms` default: entries expire after 3 periods (DS §6.2).
pub const DEFAULT_ANNOUNCE_PERIOD_MS: u32 = 1000;

/// Another driver a registry indexes (`[[discovery.endpoints]]`, DS §8): where its
/// announces and data-source messages arrive and the authority its streams are attached
/// through.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryEndpoint {
    /// `driver_instance_id` of that driver (non-empty).
    pub driver_instance_id: String,
    /// Its control channel (non-empty, DS §5.2).
    pub driver_control_channel: String,
    /// Its control stream (non-zero).
    pub driver_control_stream_id: u32,
    /// Where its `ShmPoolAnnounce`s arrive (a UDP channel of this host, for a remote driver).
    pub announce_channel: String,
    /// Their stream (default 1001).
    #[serde(default = "default_announce_stream")]
    pub announce_stream_id: u32,
    /// Where its `DataSourceAnnounce` / `DataSourceMeta` arrive (default: the announce
    /// channel).
    #[serde(default)]
    pub metadata_channel: Option<String>,
    /// Their stream (default 1300).
    #[serde(default = "default_metadata_stream")]
    pub metadata_stream_id: u32,
}

fn default_announce_stream() -> u32 {
    streams::ANNOUNCE_STREAM_ID as u32
}

fn default_metadata_stream() -> u32 {
    streams::METADATA_STREAM_ID as u32
}

impl RegistryEndpoint {
    /// The metadata channel: its own or the announce channel.
    pub fn metadata_channel(&self) -> &str {
        self.metadata_channel
            .as_deref()
            .unwrap_or(&self.announce_channel)
    }
}

/// The defaults of the endpoint keys: the C standalone ones, or the driver's own when
/// embedded.
struct Defaults {
    channel: String,
    announce_channel: String,
    announce_stream_id: u32,
    instance_id: String,
    control_channel: String,
    control_stream_id: u32,
    announce_period_ms: u32,
}

/// A discovery provider's configuration.
#[derive(Debug, Clone)]
pub struct DiscoveryConfig {
    /// `enabled` (default true): with false, `tp driver` does not embed a provider.
    pub enabled: bool,
    /// `request_channel`: where requests arrive.
    pub request_channel: String,
    /// `request_stream_id` (default 9000).
    pub request_stream_id: u32,
    /// `announce_channel`: where `ShmPoolAnnounce` is read.
    pub announce_channel: String,
    /// `announce_stream_id` (default 1001).
    pub announce_stream_id: u32,
    /// `metadata_channel`: where `DataSourceAnnounce` / `DataSourceMeta` are read.
    pub metadata_channel: String,
    /// `metadata_stream_id` (default 1300).
    pub metadata_stream_id: u32,
    /// `driver_instance_id`: the authority the indexed streams are attached through.
    pub driver_instance_id: String,
    /// `driver_control_channel` (non-empty, DS §5.2).
    pub driver_control_channel: String,
    /// `driver_control_stream_id` (non-zero, DS §5.2).
    pub driver_control_stream_id: u32,
    /// `announce_period_ms`: entries expire after 3 of them without an announce (DS §6.2).
    pub announce_period_ms: u32,
    /// `max_results`: more matches than this answer `ERROR` (DS §5.2).
    pub max_results: u32,
    /// `forward_channel` (default empty: off): every `ShmPoolAnnounce` read on the announce
    /// stream and every `DataSourceAnnounce` / `DataSourceMeta` read on the metadata stream
    /// is published again, unchanged, on this channel (on `announce_stream_id` and
    /// `metadata_stream_id`): a UDP channel to another host's registry, which lists this
    /// driver in its `[[discovery.endpoints]]`. Only the local driver's messages are
    /// forwarded, never an endpoint's, so two registries feeding each other make no loop.
    pub forward_channel: String,
    /// `[[discovery.endpoints]]`: further drivers indexed (DS §8).
    pub endpoints: Vec<RegistryEndpoint>,
    /// `[driver] aeron_dir` (empty: the default).
    pub aeron_dir: String,
    /// Where each value came from.
    pub provenance: Provenance,
    /// Keys under `discovery.` nobody knows.
    pub unknown_keys: Vec<String>,
}

const U32: &str = "an unsigned 32-bit integer";
const STR: &str = "a string";

impl DiscoveryConfig {
    /// Loads `path` (or only defaults and environment when `None`).
    pub fn load(path: Option<&Path>, env: &dyn EnvSource) -> Result<Self, ConfigError> {
        Self::from_loader(&mut Loader::open(path, env)?)
    }

    /// Loads TOML text.
    pub fn from_toml(text: &str, env: &dyn EnvSource) -> Result<Self, ConfigError> {
        Self::from_loader(&mut Loader::from_str(text, "inline", env)?)
    }

    /// Reads the `[discovery]` table of `l` (a standalone provider: the C defaults).
    pub fn from_loader(l: &mut Loader<'_>) -> Result<Self, ConfigError> {
        let ch = streams::DEFAULT_CHANNEL.to_owned();
        Self::read(
            l,
            Defaults {
                channel: ch.clone(),
                announce_channel: ch.clone(),
                announce_stream_id: streams::ANNOUNCE_STREAM_ID as u32,
                instance_id: "driver".to_owned(),
                control_channel: ch,
                control_stream_id: streams::CONTROL_STREAM_ID as u32,
                announce_period_ms: DEFAULT_ANNOUNCE_PERIOD_MS,
            },
        )
    }

    /// Reads the `[discovery]` table of a driver's configuration, for the provider `tp
    /// driver` embeds: the defaults are the driver's own endpoints and identity
    /// (`request_channel`, `metadata_channel`, `driver_control_channel`: `driver.control_channel`;
    /// `announce_channel` / `announce_stream_id`: the driver's; `driver_instance_id`:
    /// `driver.instance_id`; `driver_control_stream_id`: `driver.control_stream_id`;
    /// `announce_period_ms`: `policies.announce_period_ms`), DS §4.2 "MAY default to the
    /// driver control endpoint".
    pub fn embedded(l: &mut Loader<'_>) -> Result<Self, ConfigError> {
        let d = streams::DriverSection::from_loader(l)?;
        let announce_period_ms = streams::announce_period_ms(l)?;
        Self::read(
            l,
            Defaults {
                channel: d.control_channel.clone(),
                announce_channel: d.announce_channel,
                announce_stream_id: d.announce_stream_id,
                instance_id: d.instance_id,
                control_channel: d.control_channel,
                control_stream_id: d.control_stream_id,
                announce_period_ms,
            },
        )
    }

    /// Loads `path` as [`DiscoveryConfig::embedded`] reads it when it is a driver's file (its
    /// `[driver]` table has a key other than `aeron_dir`), else as a standalone provider's:
    /// how `tp discover --config FILE` finds the request endpoint of either.
    pub fn load_any(path: &Path, env: &dyn EnvSource) -> Result<Self, ConfigError> {
        let mut l = Loader::open(Some(path), env)?;
        let driver_file = l
            .raw("driver")
            .and_then(|v| v.as_table())
            .is_some_and(|t| t.keys().any(|k| k != "aeron_dir"));
        if driver_file {
            Self::embedded(&mut l)
        } else {
            Self::from_loader(&mut l)
        }
    }

    fn read(l: &mut Loader<'_>, d: Defaults) -> Result<Self, ConfigError> {
        let mut cfg = Self {
            enabled: l.value_or("discovery.enabled", true, "a boolean")?,
            request_channel: l.value_or("discovery.request_channel", d.channel.clone(), STR)?,
            request_stream_id: l.value_or(
                "discovery.request_stream_id",
                DEFAULT_REQUEST_STREAM_ID,
                U32,
            )?,
            announce_channel: l.value_or("discovery.announce_channel", d.announce_channel, STR)?,
            announce_stream_id: l.value_or(
                "discovery.announce_stream_id",
                d.announce_stream_id,
                U32,
            )?,
            metadata_channel: l.value_or("discovery.metadata_channel", d.channel, STR)?,
            metadata_stream_id: l.value_or(
                "discovery.metadata_stream_id",
                streams::METADATA_STREAM_ID as u32,
                U32,
            )?,
            driver_instance_id: l.value_or("discovery.driver_instance_id", d.instance_id, STR)?,
            driver_control_channel: l.value_or(
                "discovery.driver_control_channel",
                d.control_channel,
                STR,
            )?,
            driver_control_stream_id: l.value_or(
                "discovery.driver_control_stream_id",
                d.control_stream_id,
                U32,
            )?,
            announce_period_ms: l.value_or(
                "discovery.announce_period_ms",
                d.announce_period_ms,
                U32,
            )?,
            max_results: l.value_or("discovery.max_results", DEFAULT_MAX_RESULTS, U32)?,
            forward_channel: l.value_or("discovery.forward_channel", String::new(), STR)?,
            endpoints: l.value_or(
                "discovery.endpoints",
                Vec::new(),
                "an array of tables with driver_instance_id, driver_control_channel, \
                 driver_control_stream_id, announce_channel and optionally announce_stream_id, \
                 metadata_channel, metadata_stream_id",
            )?,
            aeron_dir: l.value_or("driver.aeron_dir", String::new(), STR)?,
            provenance: Provenance::default(),
            unknown_keys: Vec::new(),
        };
        cfg.validate()?;
        // the endpoint tables were read whole (unknown fields there are refused above)
        cfg.unknown_keys = crate::config::unknown_keys_under(l, "discovery")
            .into_iter()
            .filter(|k| !k.starts_with("discovery.endpoints"))
            .collect();
        cfg.provenance = l.take_provenance();
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, reason: &str| {
            Err(ConfigError::Inconsistent {
                key: key.into(),
                reason: reason.into(),
            })
        };
        for (key, id) in [
            ("discovery.request_stream_id", self.request_stream_id),
            ("discovery.announce_stream_id", self.announce_stream_id),
            ("discovery.metadata_stream_id", self.metadata_stream_id),
            (
                "discovery.driver_control_stream_id",
                self.driver_control_stream_id,
            ),
        ] {
            if id == 0 || i32::try_from(id).is_err() {
                return bad(key, "must be a stream id from 1 to 2^31-1");
            }
        }
        if self.driver_control_channel.trim().is_empty() {
            return bad(
                "discovery.driver_control_channel",
                "must not be empty: results name the driver to attach through (DS §5.2)",
            );
        }
        if self.driver_instance_id.is_empty() {
            return bad("discovery.driver_instance_id", "must not be empty");
        }
        for (i, e) in self.endpoints.iter().enumerate() {
            let key = format!("discovery.endpoints[{i}]");
            if e.driver_instance_id.trim().is_empty() {
                return bad(&key, "driver_instance_id must not be empty");
            }
            if e.driver_instance_id == self.driver_instance_id {
                return bad(
                    &key,
                    "driver_instance_id must differ from discovery.driver_instance_id \
                     (one authority per driver, DS §6.1)",
                );
            }
            if e.driver_control_channel.trim().is_empty() || e.announce_channel.trim().is_empty() {
                return bad(
                    &key,
                    "driver_control_channel and announce_channel must not be empty",
                );
            }
            for id in [
                e.driver_control_stream_id,
                e.announce_stream_id,
                e.metadata_stream_id,
            ] {
                if id == 0 || i32::try_from(id).is_err() {
                    return bad(&key, "stream ids must be from 1 to 2^31-1");
                }
            }
        }
        if self.announce_period_ms == 0 {
            return bad("discovery.announce_period_ms", "must be at least 1");
        }
        if self.max_results == 0 {
            return bad("discovery.max_results", "must be at least 1");
        }
        Ok(())
    }

    /// How long an entry lives without an announce: 3 announce periods (DS §6.2).
    pub fn expiry_ns(&self) -> u64 {
        3 * u64::from(self.announce_period_ms) * 1_000_000
    }
}
