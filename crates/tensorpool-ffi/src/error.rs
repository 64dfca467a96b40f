//! Status codes, the thread-local last-error message and the guard every entry point runs in.
//!
//! Every `extern "C"` function returns a [`tp_status`]: `TP_OK` or an error code, with a
//! one-line message for [`tp_last_error`]. A panic never crosses the boundary: the body runs
//! under `catch_unwind` and a panic becomes `TP_ERR_PANIC`.

use std::borrow::Cow;
use std::cell::RefCell;
use std::ffi::{c_char, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// The result of every call. `TP_OK` is 0; every other value is an error whose text
/// [`tp_last_error`] returns on the calling thread.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum tp_status {
    /// Success.
    TP_OK = 0,
    /// A required pointer argument was NULL.
    TP_ERR_NULL = 1,
    /// A handle is not a live handle of the expected kind (freed, or another kind).
    TP_ERR_INVALID_HANDLE = 2,
    /// An argument is out of range or malformed (the message names it).
    TP_ERR_INVALID_ARGUMENT = 3,
    /// A configuration field is invalid (the message names the field and what it must be).
    TP_ERR_CONFIG = 4,
    /// Aeron: the media driver could not be started or reached, or a stream not added.
    TP_ERR_AERON = 5,
    /// No lease from the SHM driver (absent, refusing, or not answering in time).
    TP_ERR_ATTACH = 6,
    /// A shared-memory file, directory or mapping was refused or failed.
    TP_ERR_SHM = 7,
    /// A region's superblock is invalid (magic, layout version, type, sizes).
    TP_ERR_REGION_INVALID = 8,
    /// The producer has no regions (closed, or paused while its lease is re-established).
    TP_ERR_NO_REGIONS = 9,
    /// No payload pool is large enough for the frame.
    TP_ERR_NO_POOL_FITS = 10,
    /// The operation is not allowed now (a claim is open, no claim is open, ...).
    TP_ERR_STATE = 11,
    /// The frame was overwritten while it was read: discard what was read.
    TP_ERR_LATE = 12,
    /// A caller's buffer is too small.
    TP_ERR_BUFFER_TOO_SMALL = 13,
    /// A deadline passed.
    TP_ERR_TIMEOUT = 14,
    /// An operating-system or file error.
    TP_ERR_IO = 15,
    /// A panic inside the library was caught at the boundary (a bug: please report).
    TP_ERR_PANIC = 16,
    /// The Aeron media driver is lost: no heartbeat within the client's driver timeout
    /// (`tp_context_connect_with`; Aeron's default 10 s). Nothing reaches or leaves this
    /// process any more; build a new context once a driver runs again.
    TP_ERR_MEDIA_DRIVER_LOST = 17,
}

use tp_status::*;

/// An error on its way out: the code and the message for [`tp_last_error`].
#[derive(Debug)]
pub(crate) struct FfiError {
    pub code: tp_status,
    /// Static text for errors on hot paths (no allocation), formatted text elsewhere.
    pub message: Cow<'static, str>,
}

impl FfiError {
    pub fn new(code: tp_status, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

pub(crate) type FfiResult<T = ()> = Result<T, FfiError>;

/// Shorthand: an error value with `code` and `message`.
pub(crate) fn err<T>(code: tp_status, message: impl Into<Cow<'static, str>>) -> FfiResult<T> {
    Err(FfiError::new(code, message))
}

thread_local! {
    /// The last error message of this thread, NUL-terminated (capacity kept between errors).
    static LAST_ERROR: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn set_last_error(message: &str) {
    let _ = LAST_ERROR.try_with(|cell| {
        if let Ok(mut buf) = cell.try_borrow_mut() {
            buf.clear();
            // An interior NUL would cut the C string short: replace it.
            buf.extend(message.bytes().map(|b| if b == 0 { b'?' } else { b }));
            buf.push(0);
        }
    });
}

/// Runs an entry point's body: `Ok` -> `TP_OK`; an error -> its code, message stored; a
/// panic -> `TP_ERR_PANIC`, never unwinding into the caller.
pub(crate) fn guard(name: &str, body: impl FnOnce() -> FfiResult) -> tp_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => TP_OK,
        Ok(Err(e)) => {
            set_last_error(&e.message);
            e.code
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            set_last_error(&format!("{name}: internal panic: {what}"));
            TP_ERR_PANIC
        }
    }
}

/// The message of the last failed call on this thread ("" if none). The text stays valid
/// until the next failing call on the same thread; copy it to keep it.
#[unsafe(no_mangle)]
pub extern "C" fn tp_last_error() -> *const c_char {
    static EMPTY: &[u8] = b"\0";
    catch_unwind(|| {
        LAST_ERROR
            .try_with(|cell| match cell.try_borrow() {
                Ok(buf) if !buf.is_empty() => buf.as_ptr().cast::<c_char>(),
                _ => EMPTY.as_ptr().cast::<c_char>(),
            })
            .unwrap_or(EMPTY.as_ptr().cast::<c_char>())
    })
    .unwrap_or(EMPTY.as_ptr().cast::<c_char>())
}

/// The name of a status code (`"TP_ERR_TIMEOUT"`), `"TP_UNKNOWN"` for other values.
/// Static text.
#[unsafe(no_mangle)]
pub extern "C" fn tp_status_name(status: c_int) -> *const c_char {
    let name: &'static [u8] = match status {
        0 => b"TP_OK\0",
        1 => b"TP_ERR_NULL\0",
        2 => b"TP_ERR_INVALID_HANDLE\0",
        3 => b"TP_ERR_INVALID_ARGUMENT\0",
        4 => b"TP_ERR_CONFIG\0",
        5 => b"TP_ERR_AERON\0",
        6 => b"TP_ERR_ATTACH\0",
        7 => b"TP_ERR_SHM\0",
        8 => b"TP_ERR_REGION_INVALID\0",
        9 => b"TP_ERR_NO_REGIONS\0",
        10 => b"TP_ERR_NO_POOL_FITS\0",
        11 => b"TP_ERR_STATE\0",
        12 => b"TP_ERR_LATE\0",
        13 => b"TP_ERR_BUFFER_TOO_SMALL\0",
        14 => b"TP_ERR_TIMEOUT\0",
        15 => b"TP_ERR_IO\0",
        16 => b"TP_ERR_PANIC\0",
        17 => b"TP_ERR_MEDIA_DRIVER_LOST\0",
        _ => b"TP_UNKNOWN\0",
    };
    name.as_ptr().cast::<c_char>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn last() -> String {
        // SAFETY: tp_last_error returns a NUL-terminated string valid until the next error.
        unsafe { CStr::from_ptr(tp_last_error()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn a_panic_becomes_a_status_with_its_message() {
        let s = guard("tp_test", || panic!("boom"));
        assert_eq!(s, TP_ERR_PANIC);
        assert_eq!(last(), "tp_test: internal panic: boom");
        let s = guard("tp_test", || err(TP_ERR_CONFIG, "field `x`: expected y"));
        assert_eq!(s, TP_ERR_CONFIG);
        assert_eq!(last(), "field `x`: expected y");
        assert_eq!(guard("tp_test", || Ok(())), TP_OK);
        assert_eq!(
            last(),
            "field `x`: expected y",
            "success keeps the last error"
        );
    }

    #[test]
    fn every_status_has_a_name() {
        for code in 0..=17 {
            // SAFETY: static NUL-terminated text.
            let name = unsafe { CStr::from_ptr(tp_status_name(code)) };
            assert!(name.to_str().unwrap().starts_with("TP_"));
            assert_ne!(name.to_str().unwrap(), "TP_UNKNOWN", "{code}");
        }
    }
}
