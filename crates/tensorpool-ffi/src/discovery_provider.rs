//! The discovery provider in-process (`tp_discovery_provider`: create from a configuration,
//! run its duty cycle, read its counters, close), what `tp discovery serve` runs. Issue 20;
//! docs/discovery.md.

use std::ffi::c_char;
use std::time::Duration;

use tensorpool::config::ProcessEnv;
use tensorpool::discovery::{DiscoveryConfig, DiscoveryProvider};
use tensorpool_agent::{Agent, AgentError};

use crate::error::{FfiError, FfiResult, guard, tp_status, tp_status::*};
use crate::handles::{self, Kind};

/// How long the provider waits for each of its Aeron registrations.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(5);

/// A discovery provider on the Aeron connection of a context. Opaque; run it with
/// [`tp_discovery_provider_do_work`] and free it with [`tp_discovery_provider_close`].
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct tp_discovery_provider {
    provider: DiscoveryProvider,
}

/// The provider's counters and its registry's (docs/discovery.md, Counters).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
#[allow(non_camel_case_types)]
pub struct tp_discovery_provider_counters {
    /// Streams indexed now.
    pub entries: u64,
    /// Announces indexed (added, refreshed or replaced).
    pub announces: u64,
    /// Announces dropped: regressed epoch or not indexable.
    pub announces_dropped: u64,
    /// Entries expired.
    pub expired: u64,
    /// Requests answered.
    pub requests: u64,
    /// Requests dropped silently (empty response channel).
    pub requests_dropped: u64,
    /// Requests answered with `ERROR`.
    pub errors: u64,
    /// Responses delivered.
    pub responses_sent: u64,
    /// Responses dropped: no subscriber within the timeout, or the publication failed.
    pub responses_dropped: u64,
    /// Requests that did not decode.
    pub requests_malformed: u64,
    /// Requests with a response endpoint that is not one.
    pub requests_bad_stream: u64,
    /// Local messages published on the forward channel.
    pub forwarded: u64,
    /// Local messages the forward channel did not take.
    pub forward_dropped: u64,
}

fn get<'a>(p: *mut tp_discovery_provider) -> FfiResult<&'a mut tp_discovery_provider> {
    handles::get(p, Kind::DiscoveryProvider, "provider")
}

/// Creates a discovery provider on the Aeron connection of `ctx`. Its configuration (the
/// `[discovery]` table, `DISCOVERY_*` environment variables override it) comes from
/// `config_toml` (TOML text) or else `config_path` (a file); both NULL: the defaults.
/// Returns `TP_ERR_CONFIG` for a bad configuration, `TP_ERR_AERON` when its streams cannot
/// be added.
#[unsafe(no_mangle)]
pub extern "C" fn tp_discovery_provider_create(
    ctx: *mut crate::context::tp_context,
    config_toml: *const c_char,
    config_path: *const c_char,
    out: *mut *mut tp_discovery_provider,
) -> tp_status {
    guard("tp_discovery_provider_create", || {
        let out = handles::out(out, "out")?;
        *out = std::ptr::null_mut();
        let aeron = crate::context::get(ctx)?.ctx.client().clone();
        let cfg = match (
            handles::opt_string(config_toml, "config_toml")?,
            handles::opt_path(config_path, "config_path")?,
        ) {
            (Some(text), _) => DiscoveryConfig::from_toml(text, &ProcessEnv),
            (None, path) => DiscoveryConfig::load(path.as_deref(), &ProcessEnv),
        }
        .map_err(|e| FfiError::new(TP_ERR_CONFIG, format!("discovery configuration: {e}")))?;
        let provider = DiscoveryProvider::new(&cfg, aeron, REGISTER_TIMEOUT)
            .map_err(|e| FfiError::new(TP_ERR_AERON, format!("discovery provider: {e}")))?;
        *out = handles::register(tp_discovery_provider { provider }, Kind::DiscoveryProvider);
        Ok(())
    })
}

/// One duty cycle: indexes the announces that arrived, answers requests, expires entries.
/// `work` (may be NULL) receives the amount of work done (0: idle).
#[unsafe(no_mangle)]
pub extern "C" fn tp_discovery_provider_do_work(
    provider: *mut tp_discovery_provider,
    work: *mut u32,
) -> tp_status {
    guard("tp_discovery_provider_do_work", || {
        let p = get(provider)?;
        let done = match p.provider.do_work(tensorpool_agent::monotonic_ns()) {
            Ok(n) => n,
            Err(AgentError::Terminate) => 0,
            Err(e) => {
                return Err(FfiError::new(
                    TP_ERR_AERON,
                    format!("discovery provider: {e}"),
                ));
            }
        };
        handles::write_opt(work, u32::try_from(done).unwrap_or(u32::MAX));
        Ok(())
    })
}

/// A snapshot of the provider's counters into `out`.
#[unsafe(no_mangle)]
pub extern "C" fn tp_discovery_provider_get_counters(
    provider: *mut tp_discovery_provider,
    out: *mut tp_discovery_provider_counters,
) -> tp_status {
    guard("tp_discovery_provider_get_counters", || {
        let p = get(provider)?;
        let out = handles::out(out, "out")?;
        let registry = p.provider.registry();
        let r = registry.counters();
        let c = p.provider.counters();
        *out = tp_discovery_provider_counters {
            entries: registry.entries().len() as u64,
            announces: r.announces,
            announces_dropped: r.announces_dropped,
            expired: r.expired,
            requests: r.requests,
            requests_dropped: r.requests_dropped,
            errors: r.errors,
            responses_sent: c.responses_sent,
            responses_dropped: c.responses_dropped,
            requests_malformed: c.requests_malformed,
            requests_bad_stream: c.requests_bad_stream,
            forwarded: c.forwarded,
            forward_dropped: c.forward_dropped,
        };
        Ok(())
    })
}

/// Closes the provider (its subscriptions and response publications). NULL is a no-op.
#[unsafe(no_mangle)]
pub extern "C" fn tp_discovery_provider_close(provider: *mut tp_discovery_provider) -> tp_status {
    guard("tp_discovery_provider_close", || {
        handles::free(provider, Kind::DiscoveryProvider, "provider")
    })
}
