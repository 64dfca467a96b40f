//! Where the tools listen: the channel and stream id of each shared stream.
//!
//! Defaults follow STREAM_ID_CONVENTIONS (control 1000, announce 1001, descriptor 1100,
//! QoS 1200, metadata 1300) on `aeron:ipc`. `--config FILE` reads only the keys of a driver
//! TOML (Driver Model §17) that name those endpoints; this minimal reader is isolated here so
//! that the full configuration loader can replace it later.

use std::path::{Path, PathBuf};

/// Channel of every default endpoint. An IPC subscription hears IPC publications on its
/// stream whatever their `term-length`, so `aeron:ipc` also hears DM §17's
/// `aeron:ipc?term-length=4m`.
pub const DEFAULT_CHANNEL: &str = "aeron:ipc";

/// One stream to subscribe to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Aeron channel.
    pub channel: String,
    /// Aeron stream id.
    pub stream_id: i32,
}

impl Endpoint {
    fn new(channel: &str, stream_id: i32) -> Self {
        Self {
            channel: channel.to_owned(),
            stream_id,
        }
    }
}

/// The shared streams of a deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Driver / shared control stream (ConsumerHello, ConsumerConfig, FrameProgress, driver
    /// messages, merge maps).
    pub control: Endpoint,
    /// ShmPoolAnnounce stream.
    pub announce: Endpoint,
    /// Shared descriptor stream (FrameDescriptor).
    pub descriptor: Endpoint,
    /// QoS stream (QosProducer, QosConsumer).
    pub qos: Endpoint,
    /// Metadata stream (DataSourceAnnounce, DataSourceMeta, meta blobs, TraceLinkSet).
    pub metadata: Endpoint,
    /// `driver.aeron_dir` from the configuration, if given.
    pub aeron_dir: Option<PathBuf>,
}

impl Default for Endpoints {
    fn default() -> Self {
        Self {
            control: Endpoint::new(DEFAULT_CHANNEL, 1000),
            announce: Endpoint::new(DEFAULT_CHANNEL, 1001),
            descriptor: Endpoint::new(DEFAULT_CHANNEL, 1100),
            qos: Endpoint::new(DEFAULT_CHANNEL, 1200),
            metadata: Endpoint::new(DEFAULT_CHANNEL, 1300),
            aeron_dir: None,
        }
    }
}

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not TOML.
    #[error("config {path}: not valid TOML: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (first line).
        message: String,
    },
    /// A key has the wrong type or range.
    #[error("config {path}: `{key}` {expected}")]
    Key {
        /// The file.
        path: PathBuf,
        /// The dotted key.
        key: &'static str,
        /// What it must be.
        expected: &'static str,
    },
}

impl Endpoints {
    /// Reads `driver.{control,announce,qos}_{channel,stream_id}` and `driver.aeron_dir` from
    /// a driver TOML. Absent keys take DM §17's defaults: announce falls back to the control
    /// endpoint; QoS to stream 1200 on the default channel. Descriptor and metadata streams
    /// are not driver keys and keep their defaults. Every other key is ignored.
    pub fn from_config_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        Self::from_config_text(&text, path)
    }

    fn from_config_text(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Parse {
                path: path.into(),
                message: e.message().lines().next().unwrap_or_default().to_owned(),
            })?;
        let driver = table.get("driver").and_then(toml::Value::as_table);
        let key = |name: &'static str, expected| ConfigError::Key {
            path: path.into(),
            key: name,
            expected,
        };
        let string = |name: &'static str, field: &str| -> Result<Option<String>, ConfigError> {
            match driver.and_then(|d| d.get(field)) {
                None => Ok(None),
                Some(toml::Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
                Some(_) => Err(key(name, "must be a non-empty string")),
            }
        };
        let id = |name: &'static str, field: &str| -> Result<Option<i32>, ConfigError> {
            match driver.and_then(|d| d.get(field)) {
                None => Ok(None),
                Some(toml::Value::Integer(n)) => i32::try_from(*n)
                    .ok()
                    .filter(|n| *n > 0)
                    .map(Some)
                    .ok_or_else(|| key(name, "must be a stream id from 1 to 2147483647")),
                Some(_) => Err(key(name, "must be an integer stream id")),
            }
        };
        let defaults = Self::default();
        let control = Endpoint {
            channel: string("driver.control_channel", "control_channel")?
                .unwrap_or(defaults.control.channel),
            stream_id: id("driver.control_stream_id", "control_stream_id")?
                .unwrap_or(defaults.control.stream_id),
        };
        let announce = Endpoint {
            channel: string("driver.announce_channel", "announce_channel")?
                .unwrap_or_else(|| control.channel.clone()),
            stream_id: id("driver.announce_stream_id", "announce_stream_id")?
                .unwrap_or(control.stream_id),
        };
        let qos = Endpoint {
            channel: string("driver.qos_channel", "qos_channel")?.unwrap_or(defaults.qos.channel),
            stream_id: id("driver.qos_stream_id", "qos_stream_id")?
                .unwrap_or(defaults.qos.stream_id),
        };
        let aeron_dir = string("driver.aeron_dir", "aeron_dir")?.map(PathBuf::from);
        Ok(Self {
            control,
            announce,
            qos,
            aeron_dir,
            ..defaults
        })
    }

    /// The defaults, or the endpoints of `config` when given.
    pub fn load(config: Option<&Path>) -> Result<Self, ConfigError> {
        config.map_or_else(|| Ok(Self::default()), Self::from_config_file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Endpoints, ConfigError> {
        Endpoints::from_config_text(text, Path::new("test.toml"))
    }

    #[test]
    fn defaults_follow_the_stream_id_conventions() {
        let e = Endpoints::default();
        let ids = [
            e.control.stream_id,
            e.announce.stream_id,
            e.descriptor.stream_id,
            e.qos.stream_id,
            e.metadata.stream_id,
        ];
        assert_eq!(ids, [1000, 1001, 1100, 1200, 1300]);
    }

    #[test]
    fn config_keys_and_dm17_fallbacks() {
        let e = parse(
            "[driver]\ncontrol_channel = \"aeron:ipc?term-length=4m\"\ncontrol_stream_id = 2000\n\
             qos_stream_id = 2200\naeron_dir = \"/dev/shm/a\"\n[shm]\nbase_dir = \"/x\"\n",
        )
        .unwrap();
        assert_eq!(e.control.channel, "aeron:ipc?term-length=4m");
        assert_eq!(e.control.stream_id, 2000);
        // announce defaults to the control endpoint (DM §17)
        assert_eq!(e.announce, e.control);
        assert_eq!(
            (e.qos.channel.as_str(), e.qos.stream_id),
            ("aeron:ipc", 2200)
        );
        assert_eq!(e.descriptor.stream_id, 1100);
        assert_eq!(e.aeron_dir, Some(PathBuf::from("/dev/shm/a")));
        let e = parse("[driver]\nannounce_stream_id = 1001\n").unwrap();
        assert_eq!((e.control.stream_id, e.announce.stream_id), (1000, 1001));
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = parse("[driver]\ncontrol_stream_id = \"x\"\n").unwrap_err();
        assert!(e.to_string().contains("driver.control_stream_id"), "{e}");
        let e = parse("[driver]\nqos_stream_id = 0\n").unwrap_err();
        assert!(e.to_string().contains("driver.qos_stream_id"), "{e}");
        assert!(matches!(parse("[driver"), Err(ConfigError::Parse { .. })));
    }
}
