//! The rate limiter in-process (`tp_ratelimiter`: create from a configuration, run its duty
//! cycle, read each mapping's counters, close). Issue 17; docs/roles.md "Rate limiter".

use std::ffi::c_char;

use tensorpool::config::ProcessEnv;
use tensorpool::ratelimiter::{RateLimiter, RateLimiterConfig};
use tensorpool_agent::{Agent, AgentError};

use crate::driver::tp_driver_endpoints;
use crate::error::{FfiError, FfiResult, guard, tp_status, tp_status::*};
use crate::handles::{self, Kind};

/// A rate limiter on the Aeron connection of a context. Opaque; run it with
/// [`tp_ratelimiter_do_work`] and free it with [`tp_ratelimiter_close`].
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct tp_ratelimiter {
    rl: RateLimiter,
}

/// One mapping's counters (docs/roles.md "Rate limiter", `tensorpool:601`..`612`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
#[allow(non_camel_case_types)]
pub struct tp_ratelimiter_counters {
    /// Source stream of the mapping.
    pub source_stream_id: u32,
    /// Destination stream of the mapping.
    pub dest_stream_id: u32,
    /// Source frames handed to the policy.
    pub received: u64,
    /// Frames republished on the destination.
    pub forwarded: u64,
    /// Frames the policy did not select.
    pub filtered: u64,
    /// Source frames overwritten while copied (never forwarded).
    pub torn: u64,
    /// Frames no destination pool holds.
    pub no_pool: u64,
    /// Destination claims refused.
    pub claim_failed: u64,
    /// Source epoch changes.
    pub epoch_changes: u64,
    /// Held frames dropped at a remap boundary or when the source went stale.
    pub epoch_drops: u64,
    /// Frames not after the last forwarded sequence.
    pub stale: u64,
    /// Source `FrameProgress` messages forwarded (RL §6.1).
    pub progress_forwarded: u64,
    /// Source QoS messages forwarded (RL §6.1).
    pub qos_forwarded: u64,
    /// The `max_rate_hz` in force (0: unlimited or decimation).
    pub rate_hz: u64,
    /// Times the source went stale.
    pub source_stale: u64,
    /// Destination producers rebuilt on a new epoch.
    pub dest_rebuilds: u64,
}

fn get<'a>(r: *mut tp_ratelimiter) -> FfiResult<&'a mut tp_ratelimiter> {
    handles::get(r, Kind::RateLimiter, "rate limiter")
}

/// Creates a rate limiter on the Aeron connection of `ctx`: one source consumer and one
/// driver-attached destination producer per mapping (each waits for its lease). Its
/// configuration (`[rate_limiter]` and `[[mappings]]`, `RATE_LIMITER_*` environment variables
/// override the `[rate_limiter]` keys) comes from `config_toml` (TOML text) or else
/// `config_path` (a file); one of them is required. `driver` (may be NULL: the configuration's
/// `driver_*` keys) gives the SHM driver's endpoints and timers. Returns `TP_ERR_CONFIG` for a
/// bad configuration, `TP_ERR_AERON` when a source, a destination or a stream cannot be set
/// up (no driver, destination already has a producer, ...).
#[unsafe(no_mangle)]
pub extern "C" fn tp_ratelimiter_create(
    ctx: *mut crate::context::tp_context,
    config_toml: *const c_char,
    config_path: *const c_char,
    driver: *const tp_driver_endpoints,
    out: *mut *mut tp_ratelimiter,
) -> tp_status {
    guard("tp_ratelimiter_create", || {
        let out = handles::out(out, "out")?;
        *out = std::ptr::null_mut();
        let context = crate::context::get(ctx)?.ctx.clone();
        let cfg = match (
            handles::opt_string(config_toml, "config_toml")?,
            handles::opt_path(config_path, "config_path")?,
        ) {
            (Some(text), _) => RateLimiterConfig::from_toml(text, &ProcessEnv),
            (None, Some(path)) => RateLimiterConfig::load(Some(&path), &ProcessEnv),
            (None, None) => {
                return Err(FfiError::new(
                    TP_ERR_CONFIG,
                    "rate limiter configuration: config_toml or config_path is required",
                ));
            }
        }
        .map_err(|e| FfiError::new(TP_ERR_CONFIG, format!("rate limiter configuration: {e}")))?;
        let endpoints = if driver.is_null() {
            cfg.driver_endpoints()
        } else {
            crate::driver::endpoints(handles::input(driver, "driver")?)?
        };
        let rl = RateLimiter::with_driver(cfg, endpoints, context)
            .map_err(|e| FfiError::new(TP_ERR_AERON, format!("rate limiter: {e}")))?;
        *out = handles::register(tp_ratelimiter { rl }, Kind::RateLimiter);
        Ok(())
    })
}

/// One duty cycle: source frames through the policies, copies into the destinations, held
/// frames released, destination duties, forwarding. `work` (may be NULL) receives the amount
/// of work done (0: idle).
#[unsafe(no_mangle)]
pub extern "C" fn tp_ratelimiter_do_work(rl: *mut tp_ratelimiter, work: *mut u32) -> tp_status {
    guard("tp_ratelimiter_do_work", || {
        let r = get(rl)?;
        let done = match r.rl.do_work(tensorpool_agent::monotonic_ns()) {
            Ok(n) => n,
            Err(AgentError::Terminate) => 0,
            Err(e) => return Err(FfiError::new(TP_ERR_AERON, format!("rate limiter: {e}"))),
        };
        handles::write_opt(work, u32::try_from(done).unwrap_or(u32::MAX));
        Ok(())
    })
}

/// The number of mappings into `out`.
#[unsafe(no_mangle)]
pub extern "C" fn tp_ratelimiter_mapping_count(
    rl: *mut tp_ratelimiter,
    out: *mut usize,
) -> tp_status {
    guard("tp_ratelimiter_mapping_count", || {
        let r = get(rl)?;
        *handles::out(out, "out")? = r.rl.core().len();
        Ok(())
    })
}

/// A snapshot of mapping `index`'s counters into `out` (`TP_ERR_INVALID_ARGUMENT` for an
/// index past the mappings).
#[unsafe(no_mangle)]
pub extern "C" fn tp_ratelimiter_get_counters(
    rl: *mut tp_ratelimiter,
    index: usize,
    out: *mut tp_ratelimiter_counters,
) -> tp_status {
    guard("tp_ratelimiter_get_counters", || {
        let r = get(rl)?;
        let out = handles::out(out, "out")?;
        let Some(m) = r.rl.mappings().nth(index) else {
            return Err(FfiError::new(
                TP_ERR_INVALID_ARGUMENT,
                format!(
                    "mapping {index}: the rate limiter has {}",
                    r.rl.core().len()
                ),
            ));
        };
        let c = r.rl.core().counters(index);
        *out = tp_ratelimiter_counters {
            source_stream_id: m.source_stream_id,
            dest_stream_id: m.dest_stream_id,
            received: c.received,
            forwarded: c.forwarded,
            filtered: c.filtered,
            torn: c.torn,
            no_pool: c.no_pool,
            claim_failed: c.claim_failed,
            epoch_changes: c.epoch_changes,
            epoch_drops: c.epoch_drops,
            stale: c.stale,
            progress_forwarded: c.progress_forwarded,
            qos_forwarded: c.qos_forwarded,
            rate_hz: c.rate_hz,
            source_stale: c.source_stale,
            dest_rebuilds: c.dest_rebuilds,
        };
        Ok(())
    })
}

/// Closes the rate limiter (detaches its destinations, closes its sources, streams and
/// counters). NULL is a no-op.
#[unsafe(no_mangle)]
pub extern "C" fn tp_ratelimiter_close(rl: *mut tp_ratelimiter) -> tp_status {
    guard("tp_ratelimiter_close", || {
        handles::free(rl, Kind::RateLimiter, "rate limiter")
    })
}
