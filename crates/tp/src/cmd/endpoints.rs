//! Where the tools listen: the SHM driver's endpoints, read by the driver's own configuration
//! loader, and the producers' and consumers' shared streams.
//!
//! With `--config FILE` the file is loaded as `tp driver` loads it (`DriverConfig::load`:
//! validation, defaults, derivations, `DRIVER_*` environment overrides); without one, the
//! `[driver]` keys take the driver's defaults and environment overrides
//! (`DriverSection::from_loader` over no file). Either way control, announce, QoS and
//! `aeron_dir` are exactly what the driver would use. The descriptor and metadata streams
//! and the standalone producers' announce stream are not driver keys: they are the roles'
//! defaults (`tensorpool::streams::Streams`).

use std::path::{Path, PathBuf};

use tensorpool::config::{ConfigError, Loader, ProcessEnv};
use tensorpool::driver::DriverConfig;
use tensorpool::driver::config::DriverSection;
use tensorpool::streams::Streams;

pub use tensorpool::streams::Endpoint;

/// The shared streams of a deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Driver / shared control stream (ConsumerHello, ConsumerConfig, FrameProgress, driver
    /// messages, merge maps).
    pub control: Endpoint,
    /// The driver's ShmPoolAnnounce stream (Driver Model §17: the control stream unless
    /// configured).
    pub announce: Endpoint,
    /// The standalone producers' ShmPoolAnnounce stream (the roles' default, 1001).
    pub producer_announce: Endpoint,
    /// Shared descriptor stream (FrameDescriptor).
    pub descriptor: Endpoint,
    /// QoS stream (QosProducer, QosConsumer).
    pub qos: Endpoint,
    /// Metadata stream (DataSourceAnnounce, DataSourceMeta, meta blobs, TraceLinkSet).
    pub metadata: Endpoint,
    /// `driver.aeron_dir`, if set.
    pub aeron_dir: Option<PathBuf>,
}

impl Endpoints {
    /// The driver's endpoints as the driver reads them (from `config` or its defaults and
    /// environment), with the roles' shared streams.
    pub fn load(config: Option<&Path>) -> Result<Self, ConfigError> {
        let section = match config {
            Some(path) => DriverConfig::load(Some(path), &ProcessEnv)?.driver,
            None => DriverSection::from_loader(&mut Loader::empty(&ProcessEnv))?,
        };
        Ok(Self::of(&section))
    }

    /// The driver's defaults (no file, no environment) with the roles' streams.
    #[cfg(test)]
    pub fn defaults() -> Self {
        let mut l = Loader::empty(&tensorpool::config::NoEnv);
        Self::of(&DriverSection::from_loader(&mut l).expect("defaults load"))
    }

    fn of(d: &DriverSection) -> Self {
        let roles = Streams::default();
        let id = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
        Self {
            control: Endpoint::new(d.control_channel.clone(), id(d.control_stream_id)),
            announce: Endpoint::new(d.announce_channel.clone(), id(d.announce_stream_id)),
            producer_announce: roles.announce,
            descriptor: roles.descriptor,
            qos: Endpoint::new(d.qos_channel.clone(), id(d.qos_stream_id)),
            metadata: roles.metadata,
            aeron_dir: d.aeron_dir.clone(),
        }
    }

    /// Every endpoint with its label, in subscription order (duplicates included).
    pub fn all(&self) -> [(&'static str, &Endpoint); 6] {
        [
            ("control", &self.control),
            ("announce", &self.announce),
            ("announce", &self.producer_announce),
            ("descriptor", &self.descriptor),
            ("qos", &self.qos),
            ("metadata", &self.metadata),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tensorpool::config::NoEnv;
    use tensorpool::streams::DEFAULT_CHANNEL;

    fn section(text: &str) -> DriverSection {
        DriverSection::from_loader(&mut Loader::from_str(text, "test", &NoEnv).unwrap()).unwrap()
    }

    #[test]
    fn defaults_are_the_drivers_and_the_roles() {
        let e = Endpoints::of(&section(""));
        let ids = e.all().map(|(_, e)| e.stream_id);
        assert_eq!(ids, [1000, 1000, 1001, 1100, 1200, 1300]);
        assert!(e.all().iter().all(|(_, e)| e.channel == DEFAULT_CHANNEL));
        assert_eq!(e.aeron_dir, None);
    }

    #[test]
    fn driver_keys_and_their_derivations() {
        let e = Endpoints::of(&section(
            "[driver]\ncontrol_channel = \"aeron:ipc\"\ncontrol_stream_id = 2000\n\
             qos_stream_id = 2200\naeron_dir = \"/dev/shm/a\"\n",
        ));
        assert_eq!(e.control, Endpoint::new("aeron:ipc", 2000));
        assert_eq!(e.announce, e.control, "announce follows control (DM §17)");
        assert_eq!(e.qos, Endpoint::new(DEFAULT_CHANNEL, 2200));
        assert_eq!(e.producer_announce.stream_id, 1001);
        assert_eq!(e.aeron_dir, Some(PathBuf::from("/dev/shm/a")));
    }

    #[test]
    fn a_file_the_driver_rejects_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.toml");
        std::fs::write(&path, "[driver]\ncontrol_stream_id = \"x\"\n").unwrap();
        let e = Endpoints::load(Some(&path)).unwrap_err();
        assert!(e.to_string().contains("driver.control_stream_id"), "{e}");
        std::fs::write(&path, "[driver]\ncontrol_stream_id = 2000\n").unwrap();
        let e = Endpoints::load(Some(&path)).unwrap_err();
        assert!(e.to_string().contains("profiles"), "{e}");
    }
}
