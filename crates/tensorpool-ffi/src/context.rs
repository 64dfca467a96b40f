//! `tp_context`: the Aeron connection producers, consumers and drivers of a process share
//! (an embedded media driver, or an external one by its directory).

use std::ffi::c_char;
use std::time::Duration;

use tensorpool::context::ContextError;
use tensorpool::prelude::Context;
use tensorpool_aeron::{AeronClient, MediaDriverConfig};

use crate::error::{FfiError, FfiResult, guard, tp_status, tp_status::*};
use crate::handles::{self, Kind};

/// A process's Aeron connection. Opaque; free with [`tp_context_free`]. Producers, consumers
/// and drivers keep what they need of it alive, so it may be freed before them.
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct tp_context {
    pub(crate) ctx: Context,
}

pub(crate) fn context_error(e: ContextError) -> FfiError {
    let code = match e {
        ContextError::RelativeDir(_) => TP_ERR_INVALID_ARGUMENT,
        _ => TP_ERR_AERON,
    };
    FfiError::new(code, e.to_string())
}

/// The context behind a handle.
pub(crate) fn get<'a>(ctx: *mut tp_context) -> FfiResult<&'a mut tp_context> {
    handles::get(ctx, Kind::Context, "context")
}

/// Starts an embedded Aeron media driver and connects to it. `aeron_dir` NULL or "": a
/// fresh private directory under /dev/shm (removed at shutdown); otherwise that directory,
/// which other processes can connect to with [`tp_context_connect`].
#[unsafe(no_mangle)]
pub extern "C" fn tp_context_new_embedded(
    aeron_dir: *const c_char,
    out: *mut *mut tp_context,
) -> tp_status {
    guard("tp_context_new_embedded", || {
        crate::log::install_for_rust_log();
        let out = handles::out(out, "out")?;
        *out = std::ptr::null_mut();
        let dir = handles::opt_path(aeron_dir, "aeron_dir")?;
        let ctx = match dir {
            None => Context::embedded(),
            Some(dir) => Context::embedded_with(MediaDriverConfig::default().dir(dir)),
        }
        .map_err(context_error)?;
        *out = handles::register(tp_context { ctx }, Kind::Context);
        Ok(())
    })
}

/// Connects to the media driver running in `aeron_dir`, waiting at most `timeout_ms`
/// (0: 10 s). `TP_ERR_AERON` names what did not answer.
#[unsafe(no_mangle)]
pub extern "C" fn tp_context_connect(
    aeron_dir: *const c_char,
    timeout_ms: u64,
    out: *mut *mut tp_context,
) -> tp_status {
    guard("tp_context_connect", || {
        crate::log::install_for_rust_log();
        let out = handles::out(out, "out")?;
        *out = std::ptr::null_mut();
        let dir = handles::string(aeron_dir, "aeron_dir")?;
        if dir.is_empty() {
            return crate::error::err(TP_ERR_INVALID_ARGUMENT, "aeron_dir is empty");
        }
        let timeout = handles::ms_or(timeout_ms, Duration::from_secs(10));
        let client = AeronClient::connect(dir, timeout)
            .map_err(|e| context_error(ContextError::Connect(e)))?;
        let ctx = Context::from_client(client);
        *out = handles::register(tp_context { ctx }, Kind::Context);
        Ok(())
    })
}

/// Copies the Aeron directory in use into `buf` (`cap` bytes with the NUL); `len` (may be
/// NULL) gets its length. `buf` NULL and `cap` 0 only query the length.
#[unsafe(no_mangle)]
pub extern "C" fn tp_context_aeron_dir(
    ctx: *mut tp_context,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> tp_status {
    guard("tp_context_aeron_dir", || {
        let c = get(ctx)?;
        let dir = c.ctx.aeron_dir();
        handles::copy_string(&dir.to_string_lossy(), buf, cap, len)
    })
}

/// Whether the context runs its own (embedded) media driver: 1 or 0 in `out`.
#[unsafe(no_mangle)]
pub extern "C" fn tp_context_is_embedded(ctx: *mut tp_context, out: *mut bool) -> tp_status {
    guard("tp_context_is_embedded", || {
        let c = get(ctx)?;
        *handles::out(out, "out")? = c.ctx.is_embedded();
        Ok(())
    })
}

/// Frees the handle. The embedded media driver stops once no producer, consumer or
/// driver built from this context remains. NULL is a no-op.
#[unsafe(no_mangle)]
pub extern "C" fn tp_context_free(ctx: *mut tp_context) -> tp_status {
    guard("tp_context_free", || {
        handles::free(ctx, Kind::Context, "context")
    })
}

/// `CLOCK_MONOTONIC` in nanoseconds: the clock `do_work` and frame timestamps use.
#[unsafe(no_mangle)]
pub extern "C" fn tp_monotonic_ns() -> u64 {
    std::panic::catch_unwind(tensorpool::monotonic_ns).unwrap_or(0)
}

/// The library version (`"0.1.0"`), static text.
#[unsafe(no_mangle)]
pub extern "C" fn tp_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0")
        .as_ptr()
        .cast::<c_char>()
}

/// The SHM layout version this library writes and reads.
#[unsafe(no_mangle)]
pub extern "C" fn tp_layout_version() -> u32 {
    tensorpool_shm::LAYOUT_VERSION
}
