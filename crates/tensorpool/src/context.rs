//! [`Context`]: the Aeron connection every producer and consumer of a process shares. It owns
//! an embedded Aeron media driver, or connects to an external one by its directory.
//!
//! The role builders hang off the context ([`Context::producer`], [`Context::consumer`]):
//! those methods are written in the role modules (`impl Context` blocks next to each
//! builder), so this module imports no role.
//!
//! ```no_run
//! use tensorpool::prelude::*;
//! let ctx = Context::embedded()?;
//! let producer = ctx.producer(10_000).standalone("/dev/shm/tensorpool").build()?;
//! let consumer = ctx.consumer(10_000).build()?;
//! # drop((producer, consumer));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tensorpool_aeron::{
    AeronClient, ConnectError, DriverError, DriverIdleStrategy, EmbeddedMediaDriver,
    MediaDriverConfig,
};

/// Default wait for the media driver to answer a registration (publication, subscription).
pub const DEFAULT_AERON_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a [`Context`] could not be created.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// The embedded media driver did not start.
    #[error("embedded Aeron media driver: {0}")]
    Driver(#[from] DriverError),
    /// No media driver answered in the Aeron directory.
    #[error("connecting to Aeron: {0}")]
    Connect(#[from] ConnectError),
    /// The embedded driver's directory is relative (it would depend on the working
    /// directory; every directory of the library is absolute, like `shm_base_dir`).
    #[error("the Aeron directory {0:?} is relative: give an absolute path")]
    RelativeDir(std::path::PathBuf),
}

/// Shared by the context and every role built from it: the client is declared first so it
/// closes before the embedded driver stops.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) client: AeronClient,
    /// Behind a mutex only so that the context is `Sync` (the driver handle is `Send`).
    driver: Mutex<Option<EmbeddedMediaDriver>>,
}

/// A handle on Aeron for the roles of this process. Cheap to clone. The embedded media driver
/// (if any) stops when the context **and** every role built from it are dropped.
#[derive(Debug, Clone)]
pub struct Context {
    shared: Arc<Shared>,
}

impl Context {
    /// Starts a private embedded media driver (fresh directory under `/dev/shm`, removed on
    /// shutdown; idle threads back off to sleeping) and connects to it.
    pub fn embedded() -> Result<Self, ContextError> {
        let config = MediaDriverConfig::default()
            .idle_strategy(DriverIdleStrategy::Sleeping(Duration::from_micros(100)));
        Self::embedded_with(config)
    }

    /// Starts an embedded media driver with `config` and connects to it.
    pub fn embedded_with(config: MediaDriverConfig) -> Result<Self, ContextError> {
        if let Some(dir) = config.dir.as_ref().filter(|d| !d.is_absolute()) {
            return Err(ContextError::RelativeDir(dir.clone()));
        }
        let driver = EmbeddedMediaDriver::start(config)?;
        let client = AeronClient::connect(driver.dir(), Duration::from_secs(10))?;
        Ok(Self::from_parts(client, Some(driver)))
    }

    /// Connects to the media driver running in `aeron_dir`.
    pub fn connect(aeron_dir: impl AsRef<Path>) -> Result<Self, ContextError> {
        let client = AeronClient::connect(aeron_dir, Duration::from_secs(10))?;
        Ok(Self::from_parts(client, None))
    }

    /// Connects with a full client configuration: its `driver_timeout` is how long the
    /// media driver may be silent before every role of this context reports it lost
    /// (`MediaDriverLost`; Aeron's default 10 s).
    pub fn connect_with(config: &tensorpool_aeron::ClientConfig) -> Result<Self, ContextError> {
        let client = AeronClient::connect_with(config)?;
        Ok(Self::from_parts(client, None))
    }

    /// Uses an already connected client.
    pub fn from_client(client: AeronClient) -> Self {
        Self::from_parts(client, None)
    }

    fn from_parts(client: AeronClient, driver: Option<EmbeddedMediaDriver>) -> Self {
        Self {
            shared: Arc::new(Shared {
                client,
                driver: Mutex::new(driver),
            }),
        }
    }

    /// The Aeron directory in use.
    pub fn aeron_dir(&self) -> PathBuf {
        self.shared.client.dir().to_path_buf()
    }

    /// Whether this context runs its own media driver.
    pub fn is_embedded(&self) -> bool {
        self.shared
            .driver
            .lock()
            .map(|d| d.is_some())
            .unwrap_or(false)
    }

    /// The Aeron client (for tools and tests that add their own publications).
    pub fn client(&self) -> &AeronClient {
        &self.shared.client
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}
