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
//! thread, inside the lock. Unlike other handles, a runner may be used by several threads
//! at once (lock, unlock, counts, last error): they take turns for the lock; only
//! `tp_runner_free` must not overlap another call on it.

use std::ffi::{c_char, c_void};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{JoinHandle, ThreadId};

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

/// Who holds the runner: its own thread for a cycle, or a caller between tp_runner_lock and
/// tp_runner_unlock (a binary semaphore: acquired and released by calls, not a scope).
#[derive(Default)]
struct Hold {
    owner: Option<ThreadId>,
    waiters: u32,
}

struct Gate {
    hold: Mutex<Hold>,
    freed: Condvar,
}

impl Gate {
    fn acquire(&self) {
        let me = std::thread::current().id();
        let mut h = self.hold.lock().unwrap_or_else(|p| p.into_inner());
        while h.owner.is_some() {
            h.waiters += 1;
            h = self.freed.wait(h).unwrap_or_else(|p| p.into_inner());
            h.waiters -= 1;
        }
        h.owner = Some(me);
    }

    /// Releases if the calling thread holds it; false otherwise.
    fn release(&self) -> bool {
        let me = std::thread::current().id();
        let mut h = self.hold.lock().unwrap_or_else(|p| p.into_inner());
        if h.owner != Some(me) {
            return false;
        }
        h.owner = None;
        if h.waiters > 0 {
            self.freed.notify_one();
        }
        true
    }

    fn held_by_me(&self) -> bool {
        let h = self.hold.lock().unwrap_or_else(|p| p.into_inner());
        h.owner == Some(std::thread::current().id())
    }
}

struct Shared {
    gate: Gate,
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
}

impl std::fmt::Debug for tp_runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("tp_runner")
    }
}

impl Drop for tp_runner {
    fn drop(&mut self) {
        // a lock the freeing thread still holds would keep the runner's thread waiting
        self.shared.gate.release();
        self.shared.running.store(false, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The runner, shared: its functions (but `tp_runner_free`) may run on any threads at once.
fn get<'a>(r: *mut tp_runner) -> FfiResult<&'a tp_runner> {
    handles::get_shared(r, Kind::Runner, "runner")
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
        gate: Gate {
            hold: Mutex::new(Hold::default()),
            freed: Condvar::new(),
        },
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
                s.gate.acquire();
                let result =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cycle(&target)))
                        .unwrap_or_else(|_| err(TP_ERR_PANIC, "runner: duty cycle panicked"));
                s.gate.release();
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

/// Waits until the runner's thread is between cycles (and no other thread holds the lock)
/// and keeps it there: the driven handle may be used on this thread until
/// [`tp_runner_unlock`] from the same thread. Any number of threads may call it; they take
/// turns. `TP_ERR_STATE` if this thread already holds it (it is not recursive).
#[unsafe(no_mangle)]
pub extern "C" fn tp_runner_lock(runner: *mut tp_runner) -> tp_status {
    guard("tp_runner_lock", || {
        let shared = Arc::clone(&get(runner)?.shared);
        if shared.gate.held_by_me() {
            return err(TP_ERR_STATE, "runner already locked by this thread");
        }
        shared.gate.acquire();
        Ok(())
    })
}

/// Lets the runner's thread (or another waiting thread) go on. `TP_ERR_STATE` if this
/// thread does not hold the lock.
#[unsafe(no_mangle)]
pub extern "C" fn tp_runner_unlock(runner: *mut tp_runner) -> tp_status {
    guard("tp_runner_unlock", || {
        if !get(runner)?.shared.gate.release() {
            return err(TP_ERR_STATE, "runner not locked by this thread");
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
