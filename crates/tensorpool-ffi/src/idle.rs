//! `tp_idle`: the Agrona-style idle strategies of the Rust roles, for C and C++ duty cycles
//! (so a C++ loop backs off exactly like `tp produce` / `tp consume`).

use std::ffi::c_char;

use tensorpool_agent::{IdleStrategy, IdleStrategyKind};

use crate::error::{FfiError, guard, tp_status, tp_status::*};
use crate::handles::{self, Kind};

/// An idle strategy. Opaque; free with [`tp_idle_free`].
#[allow(non_camel_case_types)]
pub struct tp_idle {
    strategy: Box<dyn IdleStrategy + Send>,
}

impl std::fmt::Debug for tp_idle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("tp_idle")
    }
}

/// Builds an idle strategy from its text: `busy-spin`, `noop`, `yield`, `sleep:<duration>`
/// (`500us`, `1ms`), `backoff` or `backoff:<spins>,<yields>,<min_park>,<max_park>`
/// (`tp consume` uses `backoff:10,10,1us,200us`). NULL or "": `backoff`.
#[unsafe(no_mangle)]
pub extern "C" fn tp_idle_new(spec: *const c_char, out: *mut *mut tp_idle) -> tp_status {
    guard("tp_idle_new", || {
        let out = handles::out(out, "out")?;
        *out = std::ptr::null_mut();
        let kind: IdleStrategyKind = match handles::opt_string(spec, "spec")? {
            None => IdleStrategyKind::default(),
            Some(s) => s
                .parse()
                .map_err(|e: tensorpool_agent::ParseIdleStrategyError| {
                    FfiError::new(TP_ERR_INVALID_ARGUMENT, e.to_string())
                })?,
        };
        *out = handles::register(
            tp_idle {
                strategy: kind.build(),
            },
            Kind::Idle,
        );
        Ok(())
    })
}

/// Idles after a duty cycle that did `work` (0: back off one step; otherwise reset).
#[unsafe(no_mangle)]
pub extern "C" fn tp_idle_work(idle: *mut tp_idle, work: usize) -> tp_status {
    guard("tp_idle_work", || {
        handles::get(idle, Kind::Idle, "idle")?
            .strategy
            .idle_work(work);
        Ok(())
    })
}

/// Frees an idle strategy. NULL is a no-op.
#[unsafe(no_mangle)]
pub extern "C" fn tp_idle_free(idle: *mut tp_idle) -> tp_status {
    guard("tp_idle_free", || handles::free(idle, Kind::Idle, "idle"))
}
