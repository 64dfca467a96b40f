//! The logging hook (issue 18): the library logs through `tracing`; a C program routes those
//! events into its own logger with [`tp_set_log_callback`]. Without a callback, `RUST_LOG`
//! (`RUST_LOG=debug`, `RUST_LOG=tensorpool=trace`, ...) prints them on stderr.
//!
//! The subscriber is installed once per process, as the global `tracing` default, by the
//! first `tp_set_log_callback`, or by the first context created while `RUST_LOG` is set; it
//! stays (a `tracing` global
//! cannot be replaced), and the callback, its level and `user` can be changed any time.

use std::cell::Cell;
use std::ffi::{CString, c_char, c_void};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{OnceLock, RwLock};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

use crate::error::{err, guard, tp_status, tp_status::*};

/// Severity of a log event, and the most verbose level a callback wants.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[allow(non_camel_case_types)]
pub enum tp_log_level {
    /// Nothing (as a maximum: the callback gets no events).
    TP_LOG_OFF = 0,
    /// Errors.
    TP_LOG_ERROR = 1,
    /// Warnings.
    TP_LOG_WARN = 2,
    /// Information.
    TP_LOG_INFO = 3,
    /// Debugging detail.
    TP_LOG_DEBUG = 4,
    /// Tracing detail.
    TP_LOG_TRACE = 5,
}

/// Receives one log event: its `tp_log_level`, its target (the Rust module, e.g.
/// `"tensorpool::consumer"`), the message with its fields (`"unmapped stream_id=7"`) and the
/// `user` pointer given to [`tp_set_log_callback`]. The strings are valid during the call.
/// Called on the thread that logged (any library thread); it must not unwind. Events the
/// callback causes itself are dropped.
#[allow(non_camel_case_types)]
pub type tp_log_callback = Option<
    extern "C" fn(level: u32, target: *const c_char, message: *const c_char, user: *mut c_void),
>;

#[derive(Clone, Copy)]
struct Sink {
    callback: extern "C" fn(u32, *const c_char, *const c_char, *mut c_void),
    user: usize,
}

static SINK: RwLock<Option<Sink>> = RwLock::new(None);
/// The callback's maximum level (a `tp_log_level`; 0 with no callback).
static MAX: AtomicU32 = AtomicU32::new(0);
static INSTALLED: OnceLock<bool> = OnceLock::new();

thread_local! {
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

fn level_code(l: &Level) -> u32 {
    match *l {
        Level::ERROR => 1,
        Level::WARN => 2,
        Level::INFO => 3,
        Level::DEBUG => 4,
        Level::TRACE => 5,
    }
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let sep = if self.0.is_empty() { "" } else { " " };
            let _ = write!(self.0, "{sep}{}={value:?}", field.name());
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let sep = if self.0.is_empty() { "" } else { " " };
            let _ = write!(self.0, "{sep}{}={value}", field.name());
        }
    }
}

/// Forwards events to the C callback.
struct Forward;

impl<S: Subscriber> Layer<S> for Forward {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let meta = event.metadata();
        if level_code(meta.level()) > MAX.load(Ordering::Relaxed) {
            return;
        }
        if IN_CALLBACK.try_with(Cell::get).unwrap_or(true) {
            return;
        }
        let sink = match SINK.read() {
            Ok(s) => *s,
            Err(p) => *p.into_inner(),
        };
        let Some(sink) = sink else { return };
        let mut m = Message(String::new());
        event.record(&mut m);
        let nul_free = |s: &str| CString::new(s.replace('\0', "?")).unwrap_or_default();
        let (target, message) = (nul_free(meta.target()), nul_free(&m.0));
        IN_CALLBACK.set(true);
        (sink.callback)(
            level_code(meta.level()),
            target.as_ptr(),
            message.as_ptr(),
            sink.user as *mut c_void,
        );
        IN_CALLBACK.set(false);
    }
}

fn callback_installed() -> bool {
    MAX.load(Ordering::Relaxed) != 0
}

/// At a context's creation: installs the subscriber when `RUST_LOG` is set (otherwise nothing
/// is installed until a callback is, and `tracing` stays on its no-subscriber fast path).
pub(crate) fn install_for_rust_log() {
    if std::env::var_os("RUST_LOG").is_some() {
        ensure_installed();
    }
}

/// Installs the process's subscriber once: the callback layer, and `RUST_LOG` on stderr
/// while no callback is set. False when another global subscriber was installed first.
pub(crate) fn ensure_installed() -> bool {
    *INSTALLED.get_or_init(|| {
        let env = tracing_subscriber::EnvFilter::try_from_default_env()
            .ok()
            .map(|f| {
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_filter(f)
                    .with_filter(tracing_subscriber::filter::filter_fn(|_| {
                        !callback_installed()
                    }))
            });
        // Both layers filter per layer: neither hides events from the other.
        let forward = Forward.with_filter(tracing_subscriber::filter::filter_fn(|meta| {
            level_code(meta.level()) <= MAX.load(Ordering::Relaxed)
        }));
        let subscriber = tracing_subscriber::registry().with(forward).with(env);
        tracing::subscriber::set_global_default(subscriber).is_ok()
    })
}

/// Routes the library's log events of `max_level` (a `tp_log_level`) and more severe to
/// `callback` with `user`; NULL (or `TP_LOG_OFF`) removes it (then `RUST_LOG`, if set when the
/// subscriber was installed, prints on stderr again). `TP_ERR_STATE` when the process already
/// has another global `tracing` subscriber (a Rust program that installed its own).
#[unsafe(no_mangle)]
pub extern "C" fn tp_set_log_callback(
    callback: tp_log_callback,
    user: *mut c_void,
    max_level: u32,
) -> tp_status {
    guard("tp_set_log_callback", || {
        if max_level > tp_log_level::TP_LOG_TRACE as u32 {
            return err(
                TP_ERR_INVALID_ARGUMENT,
                format!("max_level {max_level} is not a tp_log_level (0..=5)"),
            );
        }
        if !ensure_installed() {
            return err(
                TP_ERR_STATE,
                "another global tracing subscriber is installed in this process",
            );
        }
        let mut sink = SINK.write().unwrap_or_else(|p| p.into_inner());
        match callback {
            Some(cb) if max_level != 0 => {
                *sink = Some(Sink {
                    callback: cb,
                    user: user as usize,
                });
                MAX.store(max_level, Ordering::Relaxed);
            }
            _ => {
                *sink = None;
                MAX.store(0, Ordering::Relaxed);
            }
        }
        drop(sink);
        tracing::callsite::rebuild_interest_cache();
        Ok(())
    })
}

/// Logs `message` at `level` through the library's logger (target `"tensorpool_ffi"`): the
/// callback, or `RUST_LOG` on stderr. For tests and for applications that want their own
/// lines in the same stream.
#[unsafe(no_mangle)]
pub extern "C" fn tp_log(level: u32, message: *const c_char) -> tp_status {
    guard("tp_log", || {
        let message = crate::handles::string(message, "message")?;
        match level {
            1 => tracing::error!(target: "tensorpool_ffi", "{message}"),
            2 => tracing::warn!(target: "tensorpool_ffi", "{message}"),
            3 => tracing::info!(target: "tensorpool_ffi", "{message}"),
            4 => tracing::debug!(target: "tensorpool_ffi", "{message}"),
            5 => tracing::trace!(target: "tensorpool_ffi", "{message}"),
            l => {
                return err(
                    TP_ERR_INVALID_ARGUMENT,
                    format!("level {l} is not a tp_log_level (1..=5)"),
                );
            }
        }
        Ok(())
    })
}
