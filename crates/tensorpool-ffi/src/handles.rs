//! Handle bookkeeping and argument checks shared by every entry point.
//!
//! A handle is a `Box` turned into a raw pointer. Every live handle is recorded with its
//! kind in a process-wide registry, so that a NULL, freed, foreign or wrong-kind pointer is
//! an error code (`TP_ERR_NULL`, `TP_ERR_INVALID_HANDLE`) instead of undefined behaviour.
//! A lookup first asks a small per-thread cache of handles validated since the last free
//! anywhere (one atomic load), else takes the registry's read lock: no allocation and, in
//! steady state, no lock on the frame path.

use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::{CStr, c_char};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, RwLock};

use crate::error::{FfiResult, err, tp_status::*};

/// What a handle points to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Context,
    Spec,
    Producer,
    Consumer,
    Driver,
    Idle,
    Supervisor,
    RateLimiter,
    Bridge,
    Runner,
    DiscoveryResults,
    DiscoveryProvider,
}

/// Hashes a handle address with one multiplication (Fibonacci hashing): the keys are heap
/// addresses, not attacker-chosen, and the lookup is on every call of the frame path.
#[derive(Default)]
struct AddressHasher(u64);

impl std::hash::Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_usize(&mut self, v: usize) {
        self.0 = (v as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type Registry = HashMap<usize, Kind, std::hash::BuildHasherDefault<AddressHasher>>;

static LIVE: LazyLock<RwLock<Registry>> =
    LazyLock::new(|| RwLock::new(Registry::with_capacity_and_hasher(64, Default::default())));

/// Moves `value` to the heap, records it and returns the handle.
pub(crate) fn register<T>(value: T, kind: Kind) -> *mut T {
    let ptr = Box::into_raw(Box::new(value));
    let mut live = LIVE.write().unwrap_or_else(|p| p.into_inner());
    live.insert(ptr as usize, kind);
    ptr
}

/// Bumped (under the write lock) by every free: it voids every thread's cache.
static FREES: AtomicU64 = AtomicU64::new(0);

/// Entries of the per-thread cache: (address, kind, `FREES` when validated).
const CACHE: usize = 4;

thread_local! {
    static VALIDATED: Cell<[(usize, Option<Kind>, u64); CACHE]> =
        const { Cell::new([(0, None, 0); CACHE]) };
    static NEXT: Cell<usize> = const { Cell::new(0) };
}

fn is_live(ptr: usize, kind: Kind) -> bool {
    // Read before the registry: a free after this load voids what we cache below.
    let frees = FREES.load(Ordering::Acquire);
    let cached = VALIDATED
        .try_with(|v| v.get().contains(&(ptr, Some(kind), frees)))
        .unwrap_or(false);
    if cached {
        return true;
    }
    let live = {
        let registry = LIVE.read().unwrap_or_else(|p| p.into_inner());
        registry.get(&ptr) == Some(&kind)
    };
    if live {
        let _ = VALIDATED.try_with(|v| {
            let i = NEXT
                .try_with(|n| n.replace((n.get() + 1) % CACHE))
                .unwrap_or(0);
            let mut entries = v.get();
            entries[i] = (ptr, Some(kind), frees);
            v.set(entries);
        });
    }
    live
}

/// The object behind a live handle of `kind`. The caller promises what the C API says: a
/// handle is used by one thread at a time and not freed while in use.
pub(crate) fn get<'a, T>(ptr: *mut T, kind: Kind, what: &str) -> FfiResult<&'a mut T> {
    if ptr.is_null() {
        return err(TP_ERR_NULL, format!("{what} is NULL"));
    }
    if !is_live(ptr as usize, kind) {
        return err(
            TP_ERR_INVALID_HANDLE,
            format!("{what} is not a live {kind:?} handle (freed, or another kind)"),
        );
    }
    // SAFETY: the pointer came from `register::<T>` for this kind and has not been freed
    // (it is still in the registry); the C API forbids concurrent use of one handle.
    Ok(unsafe { &mut *ptr })
}

/// The object behind a live handle of `kind`, shared: for the few handles whose functions
/// may run on several threads at once (`tp_runner`), which only need `&T` (their state is
/// behind atomics and locks).
pub(crate) fn get_shared<'a, T: Sync>(ptr: *mut T, kind: Kind, what: &str) -> FfiResult<&'a T> {
    if ptr.is_null() {
        return err(TP_ERR_NULL, format!("{what} is NULL"));
    }
    if !is_live(ptr as usize, kind) {
        return err(
            TP_ERR_INVALID_HANDLE,
            format!("{what} is not a live {kind:?} handle (freed, or another kind)"),
        );
    }
    // SAFETY: the pointer came from `register::<T>` for this kind and has not been freed;
    // `T: Sync` and only `&T` is made, so concurrent callers do not alias a `&mut`.
    Ok(unsafe { &*ptr })
}

/// Unregisters and drops a handle. NULL is a no-op; a handle that is not live is an error.
pub(crate) fn free<T>(ptr: *mut T, kind: Kind, what: &str) -> FfiResult {
    if ptr.is_null() {
        return Ok(());
    }
    let removed = {
        let mut live = LIVE.write().unwrap_or_else(|p| p.into_inner());
        let removed = match live.get(&(ptr as usize)) {
            Some(k) if *k == kind => live.remove(&(ptr as usize)).is_some(),
            _ => false,
        };
        if removed {
            FREES.fetch_add(1, Ordering::AcqRel);
        }
        removed
    };
    if !removed {
        return err(
            TP_ERR_INVALID_HANDLE,
            format!("{what} is not a live {kind:?} handle (double free?)"),
        );
    }
    // SAFETY: the pointer came from `Box::into_raw` in `register` and was live until the
    // removal above, which only one caller can win.
    drop(unsafe { Box::from_raw(ptr) });
    Ok(())
}

/// A required out-pointer.
pub(crate) fn out<'a, T>(ptr: *mut T, what: &str) -> FfiResult<&'a mut T> {
    if ptr.is_null() {
        return err(TP_ERR_NULL, format!("{what} is NULL"));
    }
    // SAFETY: non-NULL; the C API requires it to point to writable storage for a `T`.
    Ok(unsafe { &mut *ptr })
}

/// Writes through an optional out-pointer (NULL: not wanted).
pub(crate) fn write_opt<T>(ptr: *mut T, value: T) {
    if !ptr.is_null() {
        // SAFETY: non-NULL; the C API requires it to point to writable storage for a `T`.
        unsafe { ptr.write(value) };
    }
}

/// A required input struct.
pub(crate) fn input<'a, T>(ptr: *const T, what: &str) -> FfiResult<&'a T> {
    if ptr.is_null() {
        return err(TP_ERR_NULL, format!("{what} is NULL"));
    }
    // SAFETY: non-NULL; the C API requires it to point to an initialised `T`.
    Ok(unsafe { &*ptr })
}

/// A required NUL-terminated UTF-8 string.
pub(crate) fn string<'a>(ptr: *const c_char, what: &str) -> FfiResult<&'a str> {
    if ptr.is_null() {
        return err(TP_ERR_NULL, format!("{what} is NULL"));
    }
    // SAFETY: non-NULL; the C API requires a NUL-terminated string that outlives the call.
    let c = unsafe { CStr::from_ptr(ptr) };
    c.to_str().map_err(|_| {
        crate::error::FfiError::new(TP_ERR_INVALID_ARGUMENT, format!("{what} is not UTF-8"))
    })
}

/// An optional string: NULL or "" mean "not given".
pub(crate) fn opt_string<'a>(ptr: *const c_char, what: &str) -> FfiResult<Option<&'a str>> {
    if ptr.is_null() {
        return Ok(None);
    }
    let s = string(ptr, what)?;
    Ok((!s.is_empty()).then_some(s))
}

/// An optional path.
pub(crate) fn opt_path(ptr: *const c_char, what: &str) -> FfiResult<Option<PathBuf>> {
    Ok(opt_string(ptr, what)?.map(PathBuf::from))
}

/// A slice of `len` elements at `ptr` (NULL allowed when `len` is 0).
pub(crate) fn slice<'a, T>(ptr: *const T, len: usize, what: &str) -> FfiResult<&'a [T]> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return err(
            TP_ERR_NULL,
            format!("{what} is NULL but its length is {len}"),
        );
    }
    // SAFETY: non-NULL; the C API requires `len` initialised elements at `ptr`.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Copies `text` into a caller's buffer as a C string; `needed` gets the length without NUL.
pub(crate) fn copy_string(
    text: &str,
    buf: *mut c_char,
    cap: usize,
    needed: *mut usize,
) -> FfiResult {
    write_opt(needed, text.len());
    if cap == 0 && buf.is_null() {
        return Ok(()); // a size query
    }
    if buf.is_null() {
        return err(TP_ERR_NULL, "buf is NULL but cap is not 0");
    }
    if cap < text.len() + 1 {
        return err(
            TP_ERR_BUFFER_TOO_SMALL,
            format!(
                "buffer of {cap} bytes cannot hold {} bytes and a NUL",
                text.len()
            ),
        );
    }
    // SAFETY: `buf` holds at least `cap >= len + 1` writable bytes (C API contract).
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), text.len());
        buf.add(text.len()).write(0);
    }
    Ok(())
}

/// Milliseconds to a duration; 0 means "the default".
pub(crate) fn ms_or(v: u64, default: std::time::Duration) -> std::time::Duration {
    if v == 0 {
        default
    } else {
        std::time::Duration::from_millis(v)
    }
}
