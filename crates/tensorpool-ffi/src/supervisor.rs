//! The supervisor in-process (`tp_supervisor`: create from a configuration, run its duty
//! cycle, read its counters, close). Issue 15; docs/roles.md "Supervisor".

use std::ffi::c_char;

use tensorpool::config::ProcessEnv;
use tensorpool::supervisor::{Supervisor, SupervisorConfig};
use tensorpool_agent::{Agent, AgentError};

use crate::error::{FfiError, FfiResult, guard, tp_status, tp_status::*};
use crate::handles::{self, Kind};

/// A supervisor on the Aeron connection of a context. Opaque; run it with
/// [`tp_supervisor_do_work`] and free it with [`tp_supervisor_close`].
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct tp_supervisor {
    supervisor: Supervisor,
}

/// The supervisor's main counters (docs/roles.md, `tensorpool:501`..`512`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
#[allow(non_camel_case_types)]
pub struct tp_supervisor_counters {
    /// `ConsumerHello` handled.
    pub hellos: u64,
    /// `ConsumerConfig` sent.
    pub configs_sent: u64,
    /// Consumers tracked now.
    pub consumers: u64,
    /// Consumers refused (`consumer_capacity` reached).
    pub consumers_refused: u64,
    /// Consumers dropped as stale.
    pub consumers_stale: u64,
    /// Per-consumer stream ids assigned.
    pub assignments: u64,
    /// Per-consumer stream requests declined.
    pub declines: u64,
    /// Consumer-id collisions.
    pub collisions: u64,
    /// Configs forcing a mode.
    pub forced_mode: u64,
    /// Configs forcing SHM off.
    pub forced_no_shm: u64,
    /// Producers alive now.
    pub producers: u64,
    /// Producers gone stale.
    pub producers_stale: u64,
}

fn get<'a>(s: *mut tp_supervisor) -> FfiResult<&'a mut tp_supervisor> {
    handles::get(s, Kind::Supervisor, "supervisor")
}

/// Creates a supervisor on the Aeron connection of `ctx`. Its configuration (the
/// `[supervisor]` table, `SUPERVISOR_*` environment variables override it) comes from
/// `config_toml` (TOML text) or else `config_path` (a file); both NULL: the defaults.
/// Returns `TP_ERR_CONFIG` for a bad configuration, `TP_ERR_AERON` when its streams cannot
/// be added.
#[unsafe(no_mangle)]
pub extern "C" fn tp_supervisor_create(
    ctx: *mut crate::context::tp_context,
    config_toml: *const c_char,
    config_path: *const c_char,
    out: *mut *mut tp_supervisor,
) -> tp_status {
    guard("tp_supervisor_create", || {
        let out = handles::out(out, "out")?;
        *out = std::ptr::null_mut();
        let aeron = crate::context::get(ctx)?.ctx.client().clone();
        let cfg = match (
            handles::opt_string(config_toml, "config_toml")?,
            handles::opt_path(config_path, "config_path")?,
        ) {
            (Some(text), _) => SupervisorConfig::from_toml(text, &ProcessEnv),
            (None, path) => SupervisorConfig::load(path.as_deref(), &ProcessEnv),
        }
        .map_err(|e| FfiError::new(TP_ERR_CONFIG, format!("supervisor configuration: {e}")))?;
        let supervisor = Supervisor::new(cfg, aeron, tensorpool_agent::monotonic_ns())
            .map_err(|e| FfiError::new(TP_ERR_AERON, format!("supervisor: {e}")))?;
        *out = handles::register(tp_supervisor { supervisor }, Kind::Supervisor);
        Ok(())
    })
}

/// One duty cycle: reads what arrived, answers hellos, ages consumers and producers.
/// `work` (may be NULL) receives the amount of work done (0: idle).
#[unsafe(no_mangle)]
pub extern "C" fn tp_supervisor_do_work(
    supervisor: *mut tp_supervisor,
    work: *mut u32,
) -> tp_status {
    guard("tp_supervisor_do_work", || {
        let s = get(supervisor)?;
        let done = match s.supervisor.do_work(tensorpool_agent::monotonic_ns()) {
            Ok(n) => n,
            Err(AgentError::Terminate) => 0,
            Err(e) => return Err(FfiError::new(TP_ERR_AERON, format!("supervisor: {e}"))),
        };
        handles::write_opt(work, u32::try_from(done).unwrap_or(u32::MAX));
        Ok(())
    })
}

/// A snapshot of the supervisor's counters into `out`.
#[unsafe(no_mangle)]
pub extern "C" fn tp_supervisor_get_counters(
    supervisor: *mut tp_supervisor,
    out: *mut tp_supervisor_counters,
) -> tp_status {
    guard("tp_supervisor_get_counters", || {
        let s = get(supervisor)?;
        let out = handles::out(out, "out")?;
        let c = s.supervisor.core().counters();
        *out = tp_supervisor_counters {
            hellos: c.hellos,
            configs_sent: c.configs_sent,
            consumers: c.consumers,
            consumers_refused: c.consumers_refused,
            consumers_stale: c.consumers_stale,
            assignments: c.assignments,
            declines: c.declines,
            collisions: c.collisions,
            forced_mode: c.forced_mode,
            forced_no_shm: c.forced_no_shm,
            producers: c.producers,
            producers_stale: c.producers_stale,
        };
        Ok(())
    })
}

/// Closes the supervisor (its subscriptions, publication and counters). NULL is a no-op.
#[unsafe(no_mangle)]
pub extern "C" fn tp_supervisor_close(supervisor: *mut tp_supervisor) -> tp_status {
    guard("tp_supervisor_close", || {
        handles::free(supervisor, Kind::Supervisor, "supervisor")
    })
}
