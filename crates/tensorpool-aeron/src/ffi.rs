//! Small helpers around the Aeron C API: error text, C strings, bounded waits.

use std::ffi::{CStr, CString};
use std::path::Path;
use std::time::{Duration, Instant};

use rusteron_client::bindings as c;

/// Aeron's per-thread last error code and message.
pub(crate) fn last_error() -> (i32, String) {
    // SAFETY: aeron_errcode and aeron_errmsg read this thread's error state; aeron_errmsg
    // returns a pointer to a NUL-terminated thread-local buffer that stays valid until the
    // next Aeron call on this thread, and we copy it out at once.
    unsafe {
        let code = c::aeron_errcode();
        let msg = c::aeron_errmsg();
        let message = if msg.is_null() {
            String::new()
        } else {
            CStr::from_ptr(msg).to_string_lossy().trim().to_owned()
        };
        (code, message)
    }
}

/// A path as a C string, or why it cannot be one.
pub(crate) fn path_to_cstring(path: &Path) -> Result<CString, &'static str> {
    let s = path
        .to_str()
        .ok_or("the path must be valid UTF-8 for Aeron")?;
    if s.is_empty() {
        return Err("the path must not be empty");
    }
    CString::new(s).map_err(|_| "the path must not contain a NUL byte")
}

/// Reads a C string Aeron owns into an owned `String` (lossy), or empty for NULL.
///
/// # Safety
/// `ptr` must be NULL or point to a NUL-terminated string valid for the call.
pub(crate) unsafe fn owned_str(ptr: *const std::os::raw::c_char) -> String {
    if ptr.is_null() {
        return String::new();
    }
    // SAFETY: guaranteed by the caller.
    unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

/// A deadline with a polite back-off: a few yields, then sleeps growing from 50 µs to 5 ms.
/// Used by every wait on the media driver, so no wait spins hot or runs forever.
pub(crate) struct Deadline {
    start: Instant,
    deadline: Instant,
    idle_count: u32,
}

impl Deadline {
    pub(crate) fn after(timeout: Duration) -> Self {
        let start = Instant::now();
        Self {
            start,
            deadline: start
                .checked_add(timeout)
                .unwrap_or(start + Duration::from_secs(86_400)),
            idle_count: 0,
        }
    }

    pub(crate) fn expired(&self) -> bool {
        Instant::now() >= self.deadline
    }

    pub(crate) fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    pub(crate) fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Backs off once: yields at first, then sleeps longer each time (never past the deadline).
    pub(crate) fn idle(&mut self) {
        self.idle_count = self.idle_count.saturating_add(1);
        if self.idle_count <= 4 {
            std::thread::yield_now();
            return;
        }
        let shift = (self.idle_count - 4).min(7);
        let sleep = Duration::from_micros(50u64 << shift).min(Duration::from_millis(5));
        std::thread::sleep(sleep.min(self.remaining()));
    }
}
