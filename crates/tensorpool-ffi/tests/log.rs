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

/// Without a callback, `RUST_LOG` prints the library's events on stderr: this test runs itself
/// again as a child process with `RUST_LOG=info` and reads the child's stderr.
#[test]
fn rust_log_prints_on_stderr_without_a_callback() {
    if std::env::var_os("TP_LOG_CHILD").is_some() {
        // The child: install the subscriber (no callback) and log.
        assert_eq!(tp_set_log_callback(None, std::ptr::null_mut(), 0), TP_OK);
        let (info, debug) = (
            CString::new("child info line").unwrap(),
            CString::new("child debug line").unwrap(),
        );
        assert_eq!(tp_log(3, info.as_ptr()), TP_OK);
        assert_eq!(tp_log(4, debug.as_ptr()), TP_OK);
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "rust_log_prints_on_stderr_without_a_callback",
            "--nocapture",
        ])
        .env("TP_LOG_CHILD", "1")
        .env("RUST_LOG", "info")
        .output()
        .expect("run the test binary again");
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("child info line"), "stderr: {err}");
    assert!(!err.contains("child debug line"), "stderr: {err}");
}
