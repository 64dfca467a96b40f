//! The Aeron C media driver, run in this process: embedded (its own threads, owned by a
//! handle) or standalone (in the foreground until a signal, like Aeron's `aeronmd`).

mod config;
mod embedded;
mod standalone;

pub use config::{
    DEFAULT_EMBEDDED_TERM_LENGTH, DriverIdleStrategy, MediaDriverConfig, ParseThreadingModeError,
    ThreadingMode, aeron_default_dir, default_base_dir, reclaim_dead_unique_dirs, unique_dir,
};
pub use embedded::EmbeddedMediaDriver;
pub use standalone::{
    StandaloneDriverInfo, StandaloneOptions, run_standalone, run_standalone_with,
};

use std::ffi::{CStr, CString};
use std::os::raw::c_int;
use std::path::PathBuf;

use rusteron_media_driver::bindings as md;

use crate::DriverError;
use crate::ffi::{last_error, owned_str, path_to_cstring};

/// Owns an `aeron_driver_context_t`; closes it (and so deletes the directory when configured)
/// on drop unless handed on.
struct DriverContext {
    ptr: *mut md::aeron_driver_context_t,
}

fn aeron_failure(op: &'static str) -> DriverError {
    let (code, message) = last_error();
    DriverError::Aeron { op, code, message }
}

fn check(op: &'static str, rc: c_int) -> Result<(), DriverError> {
    if rc < 0 {
        Err(aeron_failure(op))
    } else {
        Ok(())
    }
}

impl DriverContext {
    /// A context initialised from Aeron's defaults and every `AERON_*` environment variable.
    fn from_env() -> Result<Self, DriverError> {
        let mut ptr = std::ptr::null_mut();
        // SAFETY: `ptr` is a valid out-pointer; on success Aeron stores an owned context.
        let rc = unsafe { md::aeron_driver_context_init(&mut ptr) };
        if rc < 0 || ptr.is_null() {
            return Err(aeron_failure("aeron_driver_context_init"));
        }
        Ok(Self { ptr })
    }

    fn set_dir(&self, dir: &CStr) -> Result<(), DriverError> {
        // SAFETY: the context is live; Aeron copies the string.
        check("aeron_driver_context_set_dir", unsafe {
            md::aeron_driver_context_set_dir(self.ptr, dir.as_ptr())
        })
    }

    fn dir(&self) -> PathBuf {
        // SAFETY: the context is live; the returned string is owned by it and copied at once.
        PathBuf::from(unsafe { owned_str(md::aeron_driver_context_get_dir(self.ptr)) })
    }

    fn set_threading_mode(&self, mode: ThreadingMode) -> Result<(), DriverError> {
        let mode = match mode {
            ThreadingMode::Dedicated => {
                md::aeron_threading_mode_enum::AERON_THREADING_MODE_DEDICATED
            }
            ThreadingMode::SharedNetwork => {
                md::aeron_threading_mode_enum::AERON_THREADING_MODE_SHARED_NETWORK
            }
            ThreadingMode::Shared => md::aeron_threading_mode_enum::AERON_THREADING_MODE_SHARED,
        };
        // SAFETY: the context is live.
        check("aeron_driver_context_set_threading_mode", unsafe {
            md::aeron_driver_context_set_threading_mode(self.ptr, mode)
        })
    }

    /// The threading mode in effect (`None` for the invoker mode, which this crate never sets).
    fn threading_mode(&self) -> Option<ThreadingMode> {
        // SAFETY: the context is live.
        match unsafe { md::aeron_driver_context_get_threading_mode(self.ptr) } {
            md::aeron_threading_mode_enum::AERON_THREADING_MODE_DEDICATED => {
                Some(ThreadingMode::Dedicated)
            }
            md::aeron_threading_mode_enum::AERON_THREADING_MODE_SHARED_NETWORK => {
                Some(ThreadingMode::SharedNetwork)
            }
            md::aeron_threading_mode_enum::AERON_THREADING_MODE_SHARED => {
                Some(ThreadingMode::Shared)
            }
            md::aeron_threading_mode_enum::AERON_THREADING_MODE_INVOKER => None,
        }
    }

    fn set_dir_delete(&self, on_start: bool, on_shutdown: bool) -> Result<(), DriverError> {
        // SAFETY: the context is live.
        check("aeron_driver_context_set_dir_delete_on_start", unsafe {
            md::aeron_driver_context_set_dir_delete_on_start(self.ptr, on_start)
        })?;
        // SAFETY: the context is live.
        check("aeron_driver_context_set_dir_delete_on_shutdown", unsafe {
            md::aeron_driver_context_set_dir_delete_on_shutdown(self.ptr, on_shutdown)
        })
    }

    fn dir_delete_on_start(&self) -> bool {
        // SAFETY: the context is live.
        unsafe { md::aeron_driver_context_get_dir_delete_on_start(self.ptr) }
    }

    fn dir_delete_on_shutdown(&self) -> bool {
        // SAFETY: the context is live.
        unsafe { md::aeron_driver_context_get_dir_delete_on_shutdown(self.ptr) }
    }

    fn set_idle_strategy(&self, strategy: DriverIdleStrategy) -> Result<(), DriverError> {
        type SetFn = unsafe extern "C" fn(
            *mut md::aeron_driver_context_t,
            *const std::os::raw::c_char,
        ) -> c_int;
        let agents: [(&'static str, SetFn, SetFn); 5] = [
            (
                "aeron_driver_context_set_conductor_idle_strategy",
                md::aeron_driver_context_set_conductor_idle_strategy_init_args,
                md::aeron_driver_context_set_conductor_idle_strategy,
            ),
            (
                "aeron_driver_context_set_sender_idle_strategy",
                md::aeron_driver_context_set_sender_idle_strategy_init_args,
                md::aeron_driver_context_set_sender_idle_strategy,
            ),
            (
                "aeron_driver_context_set_receiver_idle_strategy",
                md::aeron_driver_context_set_receiver_idle_strategy_init_args,
                md::aeron_driver_context_set_receiver_idle_strategy,
            ),
            (
                "aeron_driver_context_set_sharednetwork_idle_strategy",
                md::aeron_driver_context_set_sharednetwork_idle_strategy_init_args,
                md::aeron_driver_context_set_sharednetwork_idle_strategy,
            ),
            (
                "aeron_driver_context_set_shared_idle_strategy",
                md::aeron_driver_context_set_shared_idle_strategy_init_args,
                md::aeron_driver_context_set_shared_idle_strategy,
            ),
        ];
        let args: Option<CString> = strategy.aeron_init_args();
        let args_ptr = args.as_deref().map_or(std::ptr::null(), CStr::as_ptr);
        for (op, set_args, set_strategy) in agents {
            // SAFETY: the context is live; Aeron copies the init args (NULL: defaults) and
            // loads the strategy with them at once.
            check(op, unsafe { set_args(self.ptr, args_ptr) })?;
            // SAFETY: as above; the name is a static NUL-terminated string.
            check(op, unsafe {
                set_strategy(self.ptr, strategy.aeron_name().as_ptr())
            })?;
        }
        Ok(())
    }

    /// Applies every field of `config`; environment values stay for fields left `None`.
    fn apply(&self, config: &MediaDriverConfig, dir: &CStr) -> Result<(), DriverError> {
        self.set_dir(dir)?;
        self.set_threading_mode(config.threading_mode)?;
        self.set_idle_strategy(config.idle_strategy)?;
        self.set_dir_delete(config.dir_delete_on_start, config.dir_delete_on_shutdown)?;
        if let Some(len) = config.term_buffer_length {
            // SAFETY: the context is live.
            check("aeron_driver_context_set_term_buffer_length", unsafe {
                md::aeron_driver_context_set_term_buffer_length(self.ptr, len)
            })?;
        }
        if let Some(len) = config.ipc_term_buffer_length {
            // SAFETY: the context is live.
            check("aeron_driver_context_set_ipc_term_buffer_length", unsafe {
                md::aeron_driver_context_set_ipc_term_buffer_length(self.ptr, len)
            })?;
        }
        if let Some(sparse) = config.term_buffer_sparse_file {
            // SAFETY: the context is live.
            check("aeron_driver_context_set_term_buffer_sparse_file", unsafe {
                md::aeron_driver_context_set_term_buffer_sparse_file(self.ptr, sparse)
            })?;
        }
        if let Some(timeout) = config.driver_timeout {
            let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
            // SAFETY: the context is live.
            check("aeron_driver_context_set_driver_timeout_ms", unsafe {
                md::aeron_driver_context_set_driver_timeout_ms(self.ptr, ms)
            })?;
        }
        Ok(())
    }

    /// Closes the context now (deleting the directory if so configured).
    fn close(mut self) -> Result<(), DriverError> {
        let ptr = std::mem::replace(&mut self.ptr, std::ptr::null_mut());
        // SAFETY: `ptr` is the live context, no driver uses it any more, and it is closed once.
        check("aeron_driver_context_close", unsafe {
            md::aeron_driver_context_close(ptr)
        })
    }
}

impl Drop for DriverContext {
    fn drop(&mut self) {
        if !self.ptr.is_null() {
            // SAFETY: the context is live, no driver uses it, and `close` nulls the pointer.
            unsafe { md::aeron_driver_context_close(self.ptr) };
        }
    }
}

/// Owns an `aeron_driver_t`; closes it (stopping and joining its agent threads) on drop.
struct Driver {
    ptr: *mut md::aeron_driver_t,
}

impl Driver {
    /// Creates the driver: makes the directory, the CnC file and the agents.
    ///
    /// If that fails while a CnC file was already there (most likely another driver is
    /// active in the directory), the context is told not to delete the directory when it
    /// closes: it is not ours to delete.
    fn init(context: &DriverContext) -> Result<Self, DriverError> {
        let had_cnc = context.dir().join("cnc.dat").exists();
        let mut ptr = std::ptr::null_mut();
        // SAFETY: the context is live and will outlive the driver (callers close the driver
        // before the context); `ptr` is a valid out-pointer.
        let rc = unsafe { md::aeron_driver_init(&mut ptr, context.ptr) };
        if rc < 0 || ptr.is_null() {
            let failure = aeron_failure("aeron_driver_init");
            if had_cnc {
                let on_start = context.dir_delete_on_start();
                // Best effort: on failure the directory may be deleted, as Aeron would.
                let _ = context.set_dir_delete(on_start, false);
            }
            return Err(failure);
        }
        Ok(Self { ptr })
    }

    /// Starts the agents: on their own threads, or (manual) the conductor on the caller's.
    fn start(&self, manual_main_loop: bool) -> Result<(), DriverError> {
        // SAFETY: the driver is live and started once.
        check("aeron_driver_start", unsafe {
            md::aeron_driver_start(self.ptr, manual_main_loop)
        })
    }

    fn close(mut self) -> Result<(), DriverError> {
        let ptr = std::mem::replace(&mut self.ptr, std::ptr::null_mut());
        // SAFETY: `ptr` is the live driver, closed once; this stops and joins its threads.
        check("aeron_driver_close", unsafe { md::aeron_driver_close(ptr) })
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.ptr.is_null() {
            // SAFETY: the driver is live and `close` nulls the pointer, so it is closed once.
            unsafe { md::aeron_driver_close(self.ptr) };
        }
    }
}

/// Removes `dir` if it is still there after a shutdown that should have deleted it.
fn ensure_removed(dir: &std::path::Path) -> Result<(), DriverError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(DriverError::DirNotRemoved {
            dir: dir.display().to_string(),
            message: e.to_string(),
        }),
    }
}

fn dir_cstring(dir: &std::path::Path) -> Result<CString, DriverError> {
    path_to_cstring(dir).map_err(|reason| DriverError::InvalidConfig {
        field: "dir",
        reason,
    })
}
