//! The logging hook: the library's `tracing` events reach a C callback at or above its level,
//! and stop when it is removed. Its own test binary: the subscriber is process-wide.

use std::ffi::{CStr, CString, c_char, c_void};
use std::sync::Mutex;

use tensorpool_ffi::*;
use tp_status::*;

static GOT: Mutex<Vec<(u32, String, String)>> = Mutex::new(Vec::new());

extern "C" fn sink(level: u32, target: *const c_char, message: *const c_char, user: *mut c_void) {
    assert_eq!(user as usize, 42);
    // SAFETY: NUL-terminated strings valid during the call.
    let (t, m) = unsafe { (CStr::from_ptr(target), CStr::from_ptr(message)) };
    GOT.lock().unwrap().push((
        level,
        t.to_string_lossy().into_owned(),
        m.to_string_lossy().into_owned(),
    ));
}

#[test]
fn log_events_reach_the_callback_at_its_level() {
    let user = 42usize as *mut c_void;
    assert_eq!(
        tp_set_log_callback(Some(sink), user, 9),
        TP_ERR_INVALID_ARGUMENT
    );
    assert_eq!(
        tp_set_log_callback(Some(sink), user, tp_log_level::TP_LOG_INFO as u32),
        TP_OK
    );
    let (info, debug) = (
        CString::new("hello info").unwrap(),
        CString::new("hello debug").unwrap(),
    );
    assert_eq!(tp_log(3, info.as_ptr()), TP_OK);
    assert_eq!(tp_log(4, debug.as_ptr()), TP_OK);
    // A library event: a bad configuration is logged by nobody, so use a real role warning
    // path only through tp_log here; the target names the library.
    let got = GOT.lock().unwrap().clone();
    assert!(
        got.iter()
            .any(|(l, t, m)| *l == 3 && t == "tensorpool_ffi" && m == "hello info"),
        "{got:?}"
    );
    assert!(!got.iter().any(|(_, _, m)| m == "hello debug"), "{got:?}");
    assert_eq!(
        tp_set_log_callback(Some(sink), user, tp_log_level::TP_LOG_DEBUG as u32),
        TP_OK
    );
    assert_eq!(tp_log(4, debug.as_ptr()), TP_OK);
    assert!(
        GOT.lock()
            .unwrap()
            .iter()
            .any(|(l, _, m)| *l == 4 && m == "hello debug")
    );
    assert_eq!(tp_set_log_callback(None, std::ptr::null_mut(), 0), TP_OK);
    let n = GOT.lock().unwrap().len();
    assert_eq!(tp_log(1, info.as_ptr()), TP_OK);
    assert_eq!(GOT.lock().unwrap().len(), n, "no callback after removal");
    assert_eq!(tp_log(0, info.as_ptr()), TP_ERR_INVALID_ARGUMENT);
}
