//! The SHM driver (Driver Model v1.0): the long-lived authority over shared memory. It
//! creates and owns the region files, grants leases, keeps one producer per stream, bumps
//! epochs, announces pools and shuts down on an authenticated request.
//!
//! The folder has the shape of every role (docs/ARCHITECTURE.md, "How to add a role"):
//!
//! | file | concern |
//! |---|---|
//! | `mod.rs` | [`ShmDriver`] (the agent: [`DriverCore`] on the Aeron control plane), [`DriverError`] |
//! | `config.rs` | the §17 configuration, environment overrides, validation; `DriverEndpoints::of_driver`, `ClientConfig::for_driver` |
//! | `core.rs` | [`DriverCore`]: the logic without transport (built from the config; `on_control` and `on_tick` write into [`Outputs`]) |
//! | `state.rs` | [`Lifecycle`], [`StreamInfo`] |
//! | `handlers.rs` | one `on_<message>` per request; `admin.rs` for the admin schema |
//! | `proxy.rs` | one `send_<message>` per outbound message |
//! | `work.rs` | the timers of the duty cycle (`on_tick`: expiry, liveness, announces, GC, drain) |
//! | `counters.rs` | the `counters!` table |
//! | `leases.rs` | leases and node ids |
//! | `streams.rs`, `stream_ids.rs` | streams; ids from ranges (dynamic, per-consumer) |
//! | `files.rs`, `gc.rs` | epoch files (create, validate, map) and their collection |
//!
//! [`ShmDriver`] is the [`Agent`]: [`DriverCore`] plus its Aeron control subscription and
//! publications. The core can be driven by hand (tests, fuzzing) with any
//! [`MessageSink`](crate::control::MessageSink).
//!
//! ```no_run
//! use std::time::Duration;
//! use tensorpool::config::ProcessEnv;
//! use tensorpool::driver::{DriverConfig, ShmDriver};
//! use tensorpool_agent::{Agent, monotonic_ns};
//!
//! let cfg = DriverConfig::load(Some("driver.toml".as_ref()), &ProcessEnv)?;
//! let aeron = tensorpool_aeron::AeronClient::connect("/dev/shm/aeron", Duration::from_secs(5))?;
//! let mut driver = ShmDriver::new(cfg, aeron, monotonic_ns())?;
//! while !driver.core().is_stopped() {
//!     if driver.do_work(monotonic_ns())? == 0 {
//!         std::thread::sleep(Duration::from_millis(1));
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod admin;
pub mod config;
mod core;
pub mod counters;
mod files;
mod gc;
mod handlers;
mod leases;
mod proxy;
mod state;
mod stream_ids;
mod streams;
mod work;

use std::path::PathBuf;
use std::time::Duration;

use tensorpool_aeron::{AeronClient, Publication, Subscription};
use tensorpool_agent::{Agent, AgentError, AgentResult};

pub use config::{DriverConfig, Policies, PoolConfig, Profile, StreamConfig};
pub use core::DriverCore;
pub use counters::Counters;
pub use files::ProvisionError;
pub use leases::Lease;
pub use proxy::Outputs;
pub use state::{Lifecycle, StreamInfo};
pub use stream_ids::{ConsumerStreamIds, Decline, PerConsumerStream};
pub use streams::ProducerRef;

/// Why the driver could not start.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The SHM layout settings are invalid.
    #[error("shm layout: {0}")]
    Layout(#[from] tensorpool_shm::LayoutError),
    /// An allowed base dir is unusable.
    #[error("shm.allowed_base_dirs: {0}")]
    Path(#[from] tensorpool_shm::PathError),
    /// A static stream could not be provisioned.
    #[error("stream {stream_id}: {source}")]
    Provision {
        /// The stream.
        stream_id: u32,
        /// What failed.
        source: ProvisionError,
    },
    /// No epoch number left for a stream.
    #[error("stream {0}: epoch space exhausted")]
    EpochExhausted(u32),
    /// A file system operation failed.
    #[error("{what} {path}: {reason}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
    /// Aeron could not add the control-plane subscription or publications.
    #[error("aeron: {0}")]
    Aeron(#[from] tensorpool_aeron::AddError),
    /// A configured stream id is not an Aeron stream id.
    #[error("{0} is not an Aeron stream id")]
    StreamId(u32),
}

/// How long to wait for the media driver to register the control plane.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(10);
/// Fragments read per poll.
const FRAGMENT_LIMIT: usize = 64;

/// The driver agent: [`DriverCore`] on the Aeron control plane (Driver Model §4.5: every
/// driver message on the control stream; announces on the announce stream).
#[derive(Debug)]
pub struct ShmDriver {
    core: DriverCore,
    control_sub: Subscription,
    control_pub: Publication,
    announce_pub: Option<Publication>,
    _aeron: AeronClient,
}

fn aeron_stream_id(id: u32) -> Result<i32, DriverError> {
    i32::try_from(id).map_err(|_| DriverError::StreamId(id))
}

impl ShmDriver {
    /// Provisions the static streams and joins the control plane through `aeron`.
    pub fn new(cfg: DriverConfig, aeron: AeronClient, now_ns: u64) -> Result<Self, DriverError> {
        let d = cfg.driver.clone();
        let control = aeron_stream_id(d.control_stream_id)?;
        let announce = aeron_stream_id(d.announce_stream_id)?;
        // Messages published on the control stream before the driver joined it are not for this
        // driver (a killed client's attach request would otherwise be granted): skipped.
        let control_sub = aeron.add_subscription_skipping_backlog(
            &d.control_channel,
            control,
            REGISTER_TIMEOUT,
        )?;
        let control_pub = aeron.add_publication(&d.control_channel, control, REGISTER_TIMEOUT)?;
        let announce_pub = if d.announce_channel == d.control_channel && announce == control {
            None
        } else {
            Some(aeron.add_publication(&d.announce_channel, announce, REGISTER_TIMEOUT)?)
        };
        let mut core = DriverCore::new(cfg, now_ns)?;
        core.attach_aeron_counters(&aeron, REGISTER_TIMEOUT)?;
        tracing::info!(
            instance_id = %d.instance_id,
            control = %format!("{}#{}", d.control_channel, d.control_stream_id),
            announce = %format!("{}#{}", d.announce_channel, d.announce_stream_id),
            streams = core.streams().len(),
            "driver running"
        );
        Ok(Self {
            core,
            control_sub,
            control_pub,
            announce_pub,
            _aeron: aeron,
        })
    }

    /// The state machine (read-only).
    pub fn core(&self) -> &DriverCore {
        &self.core
    }

    /// Starts the drain of §4.13 (for SIGINT / SIGTERM: reason NORMAL).
    pub fn begin_shutdown(
        &mut self,
        reason: tensorpool_codec::driver::ShutdownReason,
        message: &str,
        now_ns: u64,
    ) {
        self.core.begin_shutdown(reason, message, now_ns);
    }
}

impl Agent for ShmDriver {
    fn do_work(&mut self, now_ns: u64) -> AgentResult {
        let Self {
            core,
            control_sub,
            control_pub,
            announce_pub,
            ..
        } = self;
        let mut work = 0;
        let polled = control_sub.poll(
            |buf, _| {
                let mut out = Outputs {
                    control: &mut *control_pub,
                    announce: announce_pub
                        .as_mut()
                        .map(|p| p as &mut dyn crate::control::MessageSink),
                };
                work += core.on_control(buf, now_ns, &mut out);
            },
            FRAGMENT_LIMIT,
        );
        if let Err(e) = polled {
            return Err(AgentError::failed(e));
        }
        let skipped = control_sub.backlog_dropped();
        if skipped != core.counters.control_backlog_dropped.get() {
            tracing::info!(
                skipped,
                "control messages published before the driver joined were dropped"
            );
            core.counters.control_backlog_dropped.set(skipped);
        }
        let mut out = Outputs {
            control: &mut *control_pub,
            announce: announce_pub
                .as_mut()
                .map(|p| p as &mut dyn crate::control::MessageSink),
        };
        work += core.on_tick(now_ns, &mut out);
        if core.fatal_error().is_some() || core.is_stopped() {
            return Err(AgentError::Terminate);
        }
        Ok(work)
    }

    fn role_name(&self) -> &str {
        "shm-driver"
    }
}
