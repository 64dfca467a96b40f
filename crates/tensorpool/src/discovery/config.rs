//! The discovery provider's configuration: the `[discovery]` table of the C implementation's
//! `discovery_example.toml` (every key, with its default) and `[driver] aeron_dir`,
//! environment overrides (`DISCOVERY_MAX_RESULTS`, ...; the environment wins) and provenance.

use std::path::Path;

use crate::config::{ConfigError, EnvSource, Loader, Provenance};
use crate::streams;

/// `discovery.request_stream_id` default (the C example's and `tp_discoveryd`'s).
pub const DEFAULT_REQUEST_STREAM_ID: u32 = 9000;
/// `discovery.max_results` default (DS §5.2: RECOMMENDED cap 1 000).
pub const DEFAULT_MAX_RESULTS: u32 = 1000;
/// `discovery.announce_period_ms` default: entries expire after 3 periods (DS §6.2).
pub const DEFAULT_ANNOUNCE_PERIOD_MS: u32 = 1000;

/// A discovery provider's configuration.
#[derive(Debug, Clone)]
pub struct DiscoveryConfig {
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

    /// Reads the `[discovery]` table of `l`.
    pub fn from_loader(l: &mut Loader<'_>) -> Result<Self, ConfigError> {
        let ch = || streams::DEFAULT_CHANNEL.to_owned();
        let mut cfg = Self {
            request_channel: l.value_or("discovery.request_channel", ch(), STR)?,
            request_stream_id: l.value_or(
                "discovery.request_stream_id",
                DEFAULT_REQUEST_STREAM_ID,
                U32,
            )?,
            announce_channel: l.value_or("discovery.announce_channel", ch(), STR)?,
            announce_stream_id: l.value_or(
                "discovery.announce_stream_id",
                streams::ANNOUNCE_STREAM_ID as u32,
                U32,
            )?,
            metadata_channel: l.value_or("discovery.metadata_channel", ch(), STR)?,
            metadata_stream_id: l.value_or(
                "discovery.metadata_stream_id",
                streams::METADATA_STREAM_ID as u32,
                U32,
            )?,
            driver_instance_id: l.value_or(
                "discovery.driver_instance_id",
                "driver".to_owned(),
                STR,
            )?,
            driver_control_channel: l.value_or("discovery.driver_control_channel", ch(), STR)?,
            driver_control_stream_id: l.value_or(
                "discovery.driver_control_stream_id",
                streams::CONTROL_STREAM_ID as u32,
                U32,
            )?,
            announce_period_ms: l.value_or(
                "discovery.announce_period_ms",
                DEFAULT_ANNOUNCE_PERIOD_MS,
                U32,
            )?,
            max_results: l.value_or("discovery.max_results", DEFAULT_MAX_RESULTS, U32)?,
            aeron_dir: l.value_or("driver.aeron_dir", String::new(), STR)?,
            provenance: Provenance::default(),
            unknown_keys: Vec::new(),
        };
        cfg.validate()?;
        cfg.unknown_keys = crate::config::unknown_keys_under(l, "discovery");
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
