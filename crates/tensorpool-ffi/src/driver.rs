//! The SHM driver in-process (`tp_driver`: start, stop) and the attach options producers and
//! consumers use to reach a driver (`tp_driver_endpoints`).

use std::ffi::{CString, c_char};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tensorpool::config::ProcessEnv;
use tensorpool::driver::{DriverConfig, ShmDriver};
use tensorpool::prelude::Context;
use tensorpool::streams::{DEFAULT_CHANNEL, DriverEndpoints, Endpoint};
use tensorpool_agent::{
    Agent, AgentError, AgentResult, AgentRunner, BackoffIdleStrategy, MonotonicClock,
};
use tensorpool_codec::driver::ShutdownReason;

use crate::error::{FfiError, FfiResult, err, guard, tp_status, tp_status::*};
use crate::handles::{self, Kind};

/// Where the SHM driver listens, and the client's timers (Driver Model §4.4, §17). Fill
/// with [`tp_driver_endpoints_init`] (the §17 defaults) or [`tp_driver_endpoints_of`].
/// Channel strings may be NULL (`aeron:ipc?term-length=4m`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct tp_driver_endpoints {
    /// `driver.control_channel`.
    pub control_channel: *const c_char,
    /// `driver.control_stream_id` (default 1000).
    pub control_stream_id: i32,
    /// `driver.announce_channel` (NULL: the control channel).
    pub announce_channel: *const c_char,
    /// `driver.announce_stream_id` (default 1000, the control stream).
    pub announce_stream_id: i32,
    /// `policies.lease_keepalive_interval_ms` (default 1000).
    pub keepalive_interval_ms: u64,
    /// `policies.announce_period_ms` (default 1000).
    pub announce_period_ms: u64,
    /// How long building a producer or the first lease may take, ms (default 10000).
    pub attach_timeout_ms: u64,
}

/// Fills `out` with the Driver Model §17 defaults.
#[unsafe(no_mangle)]
pub extern "C" fn tp_driver_endpoints_init(out: *mut tp_driver_endpoints) -> tp_status {
    guard("tp_driver_endpoints_init", || {
        let out = handles::out(out, "out")?;
        let d = DriverEndpoints::default();
        *out = tp_driver_endpoints {
            control_channel: std::ptr::null(),
            control_stream_id: d.control.stream_id,
            announce_channel: std::ptr::null(),
            announce_stream_id: d.announce.stream_id,
            keepalive_interval_ms: d.keepalive_interval.as_millis() as u64,
            announce_period_ms: d.announce_period.as_millis() as u64,
            attach_timeout_ms: d.attach_timeout.as_millis() as u64,
        };
        Ok(())
    })
}

/// The Rust endpoints of a C struct.
pub(crate) fn endpoints(e: &tp_driver_endpoints) -> FfiResult<DriverEndpoints> {
    let d = DriverEndpoints::default();
    let control = handles::opt_string(e.control_channel, "driver.control_channel")?
        .unwrap_or(DEFAULT_CHANNEL);
    let announce =
        handles::opt_string(e.announce_channel, "driver.announce_channel")?.unwrap_or(control);
    Ok(DriverEndpoints {
        control: Endpoint::new(control, e.control_stream_id),
        announce: Endpoint::new(announce, e.announce_stream_id),
        keepalive_interval: handles::ms_or(e.keepalive_interval_ms, d.keepalive_interval),
        announce_period: handles::ms_or(e.announce_period_ms, d.announce_period),
        attach_timeout: handles::ms_or(e.attach_timeout_ms, d.attach_timeout),
    })
}

/// An SHM driver running on its own thread in this process. Opaque; stop it with
/// [`tp_driver_stop`] and free it with [`tp_driver_free`].
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct tp_driver {
    runner: Option<AgentRunner>,
    stop: Arc<AtomicBool>,
    /// Channel strings `tp_driver_endpoints_of` points into.
    control_channel: CString,
    announce_channel: CString,
    endpoints: DriverEndpoints,
    base_dir: CString,
    /// Keeps the media driver of an embedded context alive while the driver runs.
    _ctx: Context,
}

/// The driver agent plus the stop request of `tp_driver_stop` (a drain, Driver Model §4.13).
struct Stoppable {
    driver: ShmDriver,
    stop: Arc<AtomicBool>,
    draining: bool,
}

impl Agent for Stoppable {
    fn do_work(&mut self, now_ns: u64) -> AgentResult {
        if !self.draining && self.stop.load(Ordering::Acquire) {
            self.draining = true;
            self.driver
                .begin_shutdown(ShutdownReason::Normal, "tp_driver_stop", now_ns);
        }
        self.driver.do_work(now_ns)
    }

    fn role_name(&self) -> &str {
        "shm-driver"
    }
}

fn get<'a>(d: *mut tp_driver) -> FfiResult<&'a mut tp_driver> {
    handles::get(d, Kind::Driver, "driver")
}

fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', "?")).unwrap_or_default()
}

/// Starts an SHM driver on its own thread, on the Aeron connection of `ctx`. The
/// configuration (Driver Model §17 keys; environment variables override them) comes from
/// `config_toml` (TOML text) or else `config_path` (a file); both NULL: the defaults.
/// Returns once the driver runs, or with `TP_ERR_CONFIG` / `TP_ERR_SHM` / `TP_ERR_AERON`.
#[unsafe(no_mangle)]
pub extern "C" fn tp_driver_start(
    ctx: *mut crate::context::tp_context,
    config_toml: *const c_char,
    config_path: *const c_char,
    out: *mut *mut tp_driver,
) -> tp_status {
    guard("tp_driver_start", || {
        let out = handles::out(out, "out")?;
        *out = std::ptr::null_mut();
        let ctx = crate::context::get(ctx)?.ctx.clone();
        let cfg = match (
            handles::opt_string(config_toml, "config_toml")?,
            handles::opt_path(config_path, "config_path")?,
        ) {
            (Some(text), _) => DriverConfig::from_toml(text, &ProcessEnv),
            (None, path) => DriverConfig::load(path.as_deref(), &ProcessEnv),
        }
        .map_err(|e| FfiError::new(TP_ERR_CONFIG, format!("driver configuration: {e}")))?;
        let endpoints = DriverEndpoints::of_driver(&cfg);
        let base_dir = cstring(&cfg.shm.base_dir.to_string_lossy());
        let stop = Arc::new(AtomicBool::new(false));
        let (aeron, flag) = (ctx.client().clone(), stop.clone());
        let build = move || {
            let driver = ShmDriver::new(cfg, aeron, tensorpool::monotonic_ns())
                .map_err(AgentError::failed)?;
            Ok(Stoppable {
                driver,
                stop: flag,
                draining: false,
            })
        };
        let runner = AgentRunner::spawn(
            "tp-shm-driver",
            build,
            BackoffIdleStrategy::default(),
            MonotonicClock,
            None,
        )
        .map_err(|e| {
            let code = match &e {
                tensorpool_agent::RunnerError::Start { source, .. } => start_code(source),
                _ => TP_ERR_IO,
            };
            FfiError::new(code, format!("SHM driver: {e}"))
        })?;
        let handle = tp_driver {
            runner: Some(runner),
            stop,
            control_channel: cstring(&endpoints.control.channel),
            announce_channel: cstring(&endpoints.announce.channel),
            endpoints,
            base_dir,
            _ctx: ctx,
        };
        *out = handles::register(handle, Kind::Driver);
        Ok(())
    })
}

/// The status code of a driver that failed to start.
fn start_code(e: &AgentError) -> tp_status {
    let AgentError::Failed(inner) = e else {
        return TP_ERR_IO;
    };
    match inner.downcast_ref::<tensorpool::driver::DriverError>() {
        Some(tensorpool::driver::DriverError::Aeron(_)) => TP_ERR_AERON,
        Some(tensorpool::driver::DriverError::StreamId(_)) => TP_ERR_CONFIG,
        Some(_) => TP_ERR_SHM,
        None => TP_ERR_IO,
    }
}

/// The endpoints producers and consumers reach this driver at. The channel strings point
/// into the driver handle: valid until it is freed.
#[unsafe(no_mangle)]
pub extern "C" fn tp_driver_endpoints_of(
    driver: *mut tp_driver,
    out: *mut tp_driver_endpoints,
) -> tp_status {
    guard("tp_driver_endpoints_of", || {
        let d = get(driver)?;
        let e = &d.endpoints;
        *handles::out(out, "out")? = tp_driver_endpoints {
            control_channel: d.control_channel.as_ptr(),
            control_stream_id: e.control.stream_id,
            announce_channel: d.announce_channel.as_ptr(),
            announce_stream_id: e.announce.stream_id,
            keepalive_interval_ms: e.keepalive_interval.as_millis() as u64,
            announce_period_ms: e.announce_period.as_millis() as u64,
            attach_timeout_ms: e.attach_timeout.as_millis() as u64,
        };
        Ok(())
    })
}

/// The driver's `shm.base_dir` (where its files are), static for the handle's life.
#[unsafe(no_mangle)]
pub extern "C" fn tp_driver_base_dir(driver: *mut tp_driver, out: *mut *const c_char) -> tp_status {
    guard("tp_driver_base_dir", || {
        let d = get(driver)?;
        *handles::out(out, "out")? = d.base_dir.as_ptr();
        Ok(())
    })
}

/// Whether the driver's duty cycle still runs.
#[unsafe(no_mangle)]
pub extern "C" fn tp_driver_is_running(driver: *mut tp_driver, out: *mut bool) -> tp_status {
    guard("tp_driver_is_running", || {
        let d = get(driver)?;
        *handles::out(out, "out")? = d.runner.as_ref().is_some_and(AgentRunner::is_running);
        Ok(())
    })
}

impl tp_driver {
    /// Drains (announces the shutdown, waits for detaches up to `shutdown_timeout_ms`) and
    /// joins the thread; after `timeout` the thread is stopped without the drain.
    fn stop(&mut self, timeout: Duration) -> FfiResult {
        let Some(runner) = self.runner.take() else {
            return Ok(());
        };
        self.stop.store(true, Ordering::Release);
        let deadline = Instant::now() + timeout;
        while !runner.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        let drained = runner.is_finished();
        runner
            .close()
            .map_err(|e| FfiError::new(TP_ERR_PANIC, format!("SHM driver thread: {e}")))?;
        if drained {
            Ok(())
        } else {
            err(
                TP_ERR_TIMEOUT,
                format!("the SHM driver did not drain within {timeout:?}: stopped without it"),
            )
        }
    }
}

/// Stops the driver: a clean shutdown (Driver Model §4.13) within `timeout_ms` (0: 5 s),
/// else `TP_ERR_TIMEOUT` after stopping it anyway. Idempotent.
#[unsafe(no_mangle)]
pub extern "C" fn tp_driver_stop(driver: *mut tp_driver, timeout_ms: u64) -> tp_status {
    guard("tp_driver_stop", || {
        get(driver)?.stop(handles::ms_or(timeout_ms, Duration::from_secs(5)))
    })
}

impl Drop for tp_driver {
    fn drop(&mut self) {
        let _ = self.stop(Duration::from_secs(5));
    }
}

/// Stops (if running) and frees the driver. NULL is a no-op.
#[unsafe(no_mangle)]
pub extern "C" fn tp_driver_free(driver: *mut tp_driver) -> tp_status {
    guard("tp_driver_free", || {
        handles::free(driver, Kind::Driver, "driver")
    })
}
