//! `tp_runner`: a producer's or consumer's duty cycle on a dedicated thread (Aeron's
//! `AgentRunner`; calling `tp_producer_do_work` / `tp_consumer_poll` yourself is the
//! `AgentInvoker` model).
//!
//! # Threading rules
//!
//! While a runner drives a handle, the handle belongs to the runner: use it from any other
//! thread only between [`tp_runner_lock`] and [`tp_runner_unlock`] (the runner's thread
//! holds the same lock for each duty cycle, so the two never overlap). Free the runner
//! ([`tp_runner_free`], which stops and joins its thread) before freeing the handle; the
//! handle is then the caller's again. A consumer runner calls the frame handler on its own
//! thread, inside the lock.

use std::ffi::{c_char, c_void};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use tensorpool_agent::{IdleStrategy, IdleStrategyKind};

use crate::consumer::{c_handler, tp_consumer, tp_frame_handler, tp_frame_view};
use crate::error::{FfiError, FfiResult, err, guard, tp_status, tp_status::*};
use crate::handles::{self, Kind};
use crate::producer::tp_producer;

/// What the runner drives. The pointers are live handles the C caller keeps alive (and
/// does not use outside the lock) until the runner is freed.
enum Target {
    Producer(*mut tp_producer),
    Consumer {
        consumer: *mut tp_consumer,
        handler: extern "C" fn(*const tp_frame_view, *mut c_void),
        user: *mut c_void,
        limit: usize,
    },
}

// SAFETY: the handles are used by one thread at a time: the runner's thread only while it
// holds `Shared::lock`, other threads only between tp_runner_lock and tp_runner_unlock
// (the C contract above); `user` is the caller's, passed back to its handler unchanged.
unsafe impl Send for Target {}

struct Shared {
    lock: Mutex<()>,
    running: AtomicBool,
    cycles: AtomicU64,
    errors: AtomicU64,
    last_status: AtomicI32,
    last_error: Mutex<String>,
}

/// A duty cycle on its own thread. Opaque; free with [`tp_runner_free`].
#[allow(non_camel_case_types)]
pub struct tp_runner {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    /// Held by the C caller between tp_runner_lock and tp_runner_unlock.
    held: Option<MutexGuard<'static, ()>>,
}

impl std::fmt::Debug for tp_runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("tp_runner")
    }
}

impl Drop for tp_runner {
    fn drop(&mut self) {
        self.held = None;
        self.shared.running.store(false, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn get<'a>(r: *mut tp_runner) -> FfiResult<&'a mut tp_runner> {
    handles::get(r, Kind::Runner, "runner")
}

/// One duty cycle of the target.
fn cycle(target: &Target) -> FfiResult<usize> {
    match *target {
        Target::Producer(p) => {
            let p = crate::producer::get(p)?.producer()?;
            crate::signals::check_producer_driver(p)?;
            Ok(p.do_work(tensorpool::monotonic_ns()))
        }
        Target::Consumer {
            consumer,
            handler,
            user,
            limit,
        } => {
            let c = crate::consumer::get(consumer)?;
            c.consumer
                .poll(c_handler(handler, user), limit)
                .map_err(crate::signals::poll_error)
        }
    }
}

fn start(target: Target, idle: *const c_char, out: *mut *mut tp_runner) -> FfiResult {
    let out = handles::out(out, "out")?;
    *out = std::ptr::null_mut();
    let kind: IdleStrategyKind = match handles::opt_string(idle, "idle")? {
        None => "sleep:100us".parse().unwrap_or_default(),
        Some(s) => s
            .parse()
            .map_err(|e: tensorpool_agent::ParseIdleStrategyError| {
                FfiError::new(TP_ERR_INVALID_ARGUMENT, e.to_string())
            })?,
    };
    let mut idle: Box<dyn IdleStrategy + Send> = kind.build();
    let shared = Arc::new(Shared {
        lock: Mutex::new(()),
        running: AtomicBool::new(true),
        cycles: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        last_status: AtomicI32::new(TP_OK as i32),
        last_error: Mutex::new(String::new()),
    });
    let s = Arc::clone(&shared);
    let name = match target {
        Target::Producer(_) => "tp-producer",
        Target::Consumer { .. } => "tp-consumer",
    };
    let thread = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let target = target;
            while s.running.load(Ordering::Acquire) {
                let result = {
                    let _g = s.lock.lock().unwrap_or_else(|p| p.into_inner());
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cycle(&target)))
                        .unwrap_or_else(|_| err(TP_ERR_PANIC, "runner: duty cycle panicked"))
                };
                s.cycles.fetch_add(1, Ordering::Relaxed);
                match result {
                    Ok(work) => idle.idle_work(work),
                    Err(e) => {
                        s.errors.fetch_add(1, Ordering::AcqRel);
                        s.last_status.store(e.code as i32, Ordering::Release);
                        if let Ok(mut last) = s.last_error.lock()
                            && *last != e.message
                        {
                            last.clear();
                            last.push_str(&e.message);
                        }
                        idle.idle_work(0);
                    }
                }
            }
        })
        .map_err(|e| FfiError::new(TP_ERR_IO, format!("spawn the runner thread: {e}")))?;
    *out = handles::register(
        tp_runner {
            shared,
            thread: Some(thread),
            held: None,
        },
        Kind::Runner,
    );
    Ok(())
}

/// Starts a thread running `tp_producer_do_work` on `producer` until the runner is freed,
/// idling with `idle` (a `tp_idle_new` text; NULL: `sleep:100us`) after a cycle without
/// work. See the threading rules: `producer` is used only between `tp_runner_lock` and
/// `tp_runner_unlock` until `tp_runner_free`.
#[unsafe(no_mangle)]
pub extern "C" fn tp_runner_start_producer(
    producer: *mut tp_producer,
    idle: *const c_char,
    out: *mut *mut tp_runner,
) -> tp_status {
    guard("tp_runner_start_producer", || {
        crate::producer::get(producer)?;
        start(Target::Producer(producer), idle, out)
    })
}

/// Starts a thread polling `consumer` (`limit` frames per cycle, each to `handler` with
/// `user`, on the runner's thread) until the runner is freed. See the threading rules.
#[unsafe(no_mangle)]
pub extern "C" fn tp_runner_start_consumer(
    consumer: *mut tp_consumer,
    handler: tp_frame_handler,
    user: *mut c_void,
    limit: usize,
    idle: *const c_char,
    out: *mut *mut tp_runner,
) -> tp_status {
    guard("tp_runner_start_consumer", || {
        crate::consumer::get(consumer)?;
        let Some(handler) = handler else {
            return err(TP_ERR_NULL, "handler is NULL");
        };
        start(
            Target::Consumer {
                consumer,
                handler,
                user,
                limit,
            },
            idle,
            out,
        )
    })
}

/// Waits until the runner's thread is between cycles and keeps it there: the driven handle
/// may be used on this thread until [`tp_runner_unlock`] (same thread). `TP_ERR_STATE` if
/// already locked through this runner.
#[unsafe(no_mangle)]
pub extern "C" fn tp_runner_lock(runner: *mut tp_runner) -> tp_status {
    guard("tp_runner_lock", || {
        let r = get(runner)?;
        if r.held.is_some() {
            return err(TP_ERR_STATE, "runner already locked");
        }
        let shared: &Shared = &r.shared;
        // SAFETY: the guard borrows `shared`, which the runner's Arc keeps alive; the guard
        // is dropped (field `held`) before the Arc in every path (unlock, or Drop first
        // clears `held`).
        let shared: &'static Shared = unsafe { &*(shared as *const Shared) };
        r.held = Some(shared.lock.lock().unwrap_or_else(|p| p.into_inner()));
        Ok(())
    })
}

/// Lets the runner's thread run cycles again. `TP_ERR_STATE` if not locked.
#[unsafe(no_mangle)]
pub extern "C" fn tp_runner_unlock(runner: *mut tp_runner) -> tp_status {
    guard("tp_runner_unlock", || {
        let r = get(runner)?;
        if r.held.take().is_none() {
            return err(TP_ERR_STATE, "runner not locked");
        }
        Ok(())
    })
}

/// Duty cycles run so far, and how many failed (either may be NULL).
#[unsafe(no_mangle)]
pub extern "C" fn tp_runner_counts(
    runner: *mut tp_runner,
    cycles: *mut u64,
    errors: *mut u64,
) -> tp_status {
    guard("tp_runner_counts", || {
        let r = get(runner)?;
        handles::write_opt(cycles, r.shared.cycles.load(Ordering::Relaxed));
        handles::write_opt(errors, r.shared.errors.load(Ordering::Acquire));
        Ok(())
    })
}

/// The last failed cycle: its status into `*status` (`TP_OK` if none failed; may be NULL)
/// and its message into `buf` like `tp_context_aeron_dir` ("" if none). A runner goes on
/// after a failed cycle (idling as after one without work).
#[unsafe(no_mangle)]
pub extern "C" fn tp_runner_last_error(
    runner: *mut tp_runner,
    status: *mut i32,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> tp_status {
    guard("tp_runner_last_error", || {
        let r = get(runner)?;
        handles::write_opt(status, r.shared.last_status.load(Ordering::Acquire));
        let text = r
            .shared
            .last_error
            .lock()
            .map(|t| t.clone())
            .unwrap_or_default();
        handles::copy_string(&text, buf, cap, len)
    })
}

/// Stops the thread after its current cycle, waits for it, and frees the runner; the
/// driven handle is the caller's again. NULL is a no-op.
#[unsafe(no_mangle)]
pub extern "C" fn tp_runner_free(runner: *mut tp_runner) -> tp_status {
    guard("tp_runner_free", || {
        handles::free(runner, Kind::Runner, "runner")
    })
}
