//! The media driver in the foreground, like Aeron's `aeronmd`: configured from `AERON_*`
//! environment variables (read by the C driver itself) plus a few overrides, stopped by
//! SIGINT or SIGTERM.

use std::os::raw::c_void;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rusteron_media_driver::bindings as md;

use super::{Driver, DriverContext, ThreadingMode, check, dir_cstring, ensure_removed};
use crate::DriverError;

/// Overrides for the standalone driver; `None` leaves the `AERON_*` environment (or Aeron's
/// default) in effect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StandaloneOptions {
    /// The Aeron directory (else `AERON_DIR`, else Aeron's default `/dev/shm/aeron-<user>`).
    pub dir: Option<PathBuf>,
    /// The threading mode (else `AERON_THREADING_MODE`, else dedicated).
    pub threading_mode: Option<ThreadingMode>,
    /// Delete the directory on start (else `AERON_DIR_DELETE_ON_START`, else false).
    pub dir_delete_on_start: Option<bool>,
    /// Delete the directory on shutdown (else `AERON_DIR_DELETE_ON_SHUTDOWN`, else false).
    pub dir_delete_on_shutdown: Option<bool>,
}

/// What the standalone driver runs with, reported once it is ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandaloneDriverInfo {
    /// The Aeron directory clients connect to.
    pub dir: PathBuf,
    /// The threading mode in effect (`None`: Aeron's invoker mode, set through the environment).
    pub threading_mode: Option<ThreadingMode>,
}

/// Set by Aeron's termination hook; read by the duty cycle.
static STOP: AtomicBool = AtomicBool::new(false);

unsafe extern "C" fn on_termination(_state: *mut c_void) {
    STOP.store(true, Ordering::Release);
}

/// SIGINT and SIGTERM set a flag, through signal-hook (the one signal mechanism of every
/// tensorpool process); the registrations are removed when the driver returns.
struct Signals {
    raised: Arc<AtomicBool>,
    ids: Vec<signal_hook::SigId>,
}

impl Signals {
    fn install() -> Result<Self, DriverError> {
        let mut signals = Self {
            raised: Arc::new(AtomicBool::new(false)),
            ids: Vec::with_capacity(2),
        };
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            match signal_hook::flag::register(signal, signals.raised.clone()) {
                Ok(id) => signals.ids.push(id),
                Err(e) => {
                    let errno = e.raw_os_error().unwrap_or(0);
                    return Err(DriverError::SignalHandler { signal, errno });
                }
            }
        }
        Ok(signals)
    }

    fn raised(&self) -> bool {
        self.raised.load(Ordering::Acquire)
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// Runs the media driver in the foreground until SIGINT or SIGTERM (or an authorised
/// termination request), then closes it and returns `Ok(())`.
///
/// The C driver reads every `AERON_*` environment variable itself when its context is
/// created; `options` override the few listed there. `on_ready` is called once the driver
/// runs, e.g. to print the directory. Meant for a process's main thread, one at a time: it
/// registers process-wide SIGINT and SIGTERM handlers (removed on return).
pub fn run_standalone(
    options: &StandaloneOptions,
    on_ready: impl FnOnce(&StandaloneDriverInfo),
) -> Result<(), DriverError> {
    run_standalone_with(options, on_ready, || {}, || {})
}

/// [`run_standalone`] with two more hooks: `on_cycle` runs after every iteration of the
/// driver's main loop (its first call means the conductor has run once, so clients are
/// answered; a stuck loop stops calling it: a service watchdog feeds from it), `on_stopping`
/// runs once a signal or termination request ended the loop, before the driver closes.
pub fn run_standalone_with(
    options: &StandaloneOptions,
    on_ready: impl FnOnce(&StandaloneDriverInfo),
    mut on_cycle: impl FnMut(),
    on_stopping: impl FnOnce(),
) -> Result<(), DriverError> {
    STOP.store(false, Ordering::Release);
    let signals = Signals::install()?;
    let context = DriverContext::from_env()?;
    if let Some(dir) = &options.dir {
        context.set_dir(&dir_cstring(dir)?)?;
    }
    if let Some(mode) = options.threading_mode {
        context.set_threading_mode(mode)?;
    }
    if options.dir_delete_on_start.is_some() || options.dir_delete_on_shutdown.is_some() {
        let on_start = options
            .dir_delete_on_start
            .unwrap_or_else(|| context.dir_delete_on_start());
        let on_shutdown = options
            .dir_delete_on_shutdown
            .unwrap_or_else(|| context.dir_delete_on_shutdown());
        context.set_dir_delete(on_start, on_shutdown)?;
    }
    // SAFETY: the context is live; the hook is a plain function with no state.
    check("aeron_driver_context_set_driver_termination_hook", unsafe {
        md::aeron_driver_context_set_driver_termination_hook(
            context.ptr,
            Some(on_termination),
            std::ptr::null_mut(),
        )
    })?;
    // As aeronmd does: apply the AERON_*_CPU_AFFINITY settings, if any.
    // SAFETY: the context is live and no driver reads it yet.
    check(
        "aeron_driver_validate_and_apply_affinity_configuration",
        unsafe { md::aeron_driver_validate_and_apply_affinity_configuration(context.ptr) },
    )?;

    let driver = Driver::init(&context)?;
    driver.start(true)?;
    let info = StandaloneDriverInfo {
        dir: context.dir(),
        threading_mode: context.threading_mode(),
    };
    on_ready(&info);

    while !STOP.load(Ordering::Acquire) && !signals.raised() {
        // SAFETY: the driver is live and was started with a manual main loop, which this is.
        let work = unsafe { md::aeron_driver_main_do_work(driver.ptr) };
        // SAFETY: as above.
        unsafe { md::aeron_driver_main_idle_strategy(driver.ptr, work.max(0)) };
        on_cycle();
    }
    on_stopping();

    let delete_dir = context.dir_delete_on_shutdown();
    let driver_result = driver.close();
    let context_result = context.close();
    drop(signals);
    let dir_result = if delete_dir {
        ensure_removed(&info.dir)
    } else {
        Ok(())
    };
    driver_result.and(context_result).and(dir_result)
}
