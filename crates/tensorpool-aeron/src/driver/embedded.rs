//! A media driver embedded in this process, on its own threads, owned by a handle.

use std::path::{Path, PathBuf};

use super::{Driver, DriverContext, MediaDriverConfig, ThreadingMode, dir_cstring, ensure_removed};
use crate::DriverError;

/// The Aeron C media driver running inside this process on its own agent threads.
///
/// Dropping the handle (or [`stop`](Self::stop)) stops and joins those threads and, with
/// `dir_delete_on_shutdown` (the default), removes the directory. Close the clients of this
/// driver first: a client whose driver is gone declares it dead after the driver timeout.
///
/// ```no_run
/// use tensorpool_aeron::{EmbeddedMediaDriver, MediaDriverConfig};
/// let driver = EmbeddedMediaDriver::start(MediaDriverConfig::default())?;
/// println!("aeron dir: {}", driver.dir().display());
/// # Ok::<(), tensorpool_aeron::DriverError>(())
/// ```
#[derive(Debug)]
pub struct EmbeddedMediaDriver {
    running: Option<Running>,
    dir: PathBuf,
    threading_mode: ThreadingMode,
    delete_dir_on_shutdown: bool,
}

struct Running {
    driver: Driver,
    context: DriverContext,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Running")
    }
}

// SAFETY: the driver and context pointers are used only by this handle (to close them, from
// whichever thread owns it); the C driver's own threads synchronise with that close through
// aeron_driver_close, which stops and joins them.
unsafe impl Send for EmbeddedMediaDriver {}

impl EmbeddedMediaDriver {
    /// Starts a media driver with `config`; returns once its agent threads run and its CnC
    /// file exists, so clients can connect at once. Without a configured directory it takes a
    /// fresh unique one, first removing those of dead processes
    /// ([`reclaim_dead_unique_dirs`](super::reclaim_dead_unique_dirs)).
    pub fn start(config: MediaDriverConfig) -> Result<Self, DriverError> {
        config.validate()?;
        let dir = match config.dir.clone() {
            Some(dir) => dir,
            None => {
                super::reclaim_dead_unique_dirs(&super::default_base_dir());
                super::unique_dir()
            }
        };
        let c_dir = dir_cstring(&dir)?;
        let context = DriverContext::from_env()?;
        context.apply(&config, &c_dir)?;
        let driver = Driver::init(&context)?;
        driver.start(false)?;
        let delete_dir_on_shutdown = context.dir_delete_on_shutdown();
        let dir = context.dir();
        Ok(Self {
            running: Some(Running { driver, context }),
            dir,
            threading_mode: config.threading_mode,
            delete_dir_on_shutdown,
        })
    }

    /// The Aeron directory clients connect to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The threading mode the driver runs with.
    pub fn threading_mode(&self) -> ThreadingMode {
        self.threading_mode
    }

    /// Stops the driver, joins its threads and removes its directory (when configured).
    /// Idempotent: a second call does nothing.
    pub fn stop(&mut self) -> Result<(), DriverError> {
        let Some(Running { driver, context }) = self.running.take() else {
            return Ok(());
        };
        let driver_result = driver.close();
        let context_result = context.close();
        let dir_result = if self.delete_dir_on_shutdown {
            ensure_removed(&self.dir)
        } else {
            Ok(())
        };
        driver_result.and(context_result).and(dir_result)
    }
}

impl Drop for EmbeddedMediaDriver {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!(error = %e, "embedded media driver did not stop cleanly");
        }
    }
}
