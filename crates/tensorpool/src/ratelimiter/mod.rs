//! The rate limiter (RateLimiter v1.0; the seed's decimator): reads source streams as an
//! ordinary consumer, selects frames by a per-mapping policy (at most `max_rate_hz`, or every
//! Nth sequence), copies the selected frames into its own pools as the driver-attached
//! producer of each destination stream, publishes their descriptors and forwards the source's
//! metadata (`meta_version` preserved). Any consumer, ours or
//! another implementation's, subscribes to a destination stream as to any stream.
//!
//! | file | concern |
//! |---|---|
//! | `config.rs` | [`RateLimiterConfig`]: `[rate_limiter]`, `[[mappings]]`, environment, validation |
//! | `core.rs` | [`RateLimiterCore`]: the policies without transport (frames in, verdicts out) |
//! | `state.rs` | [`Policy`], [`Verdict`], the per-mapping [`Lane`] |
//! | `work.rs` | the duty cycle: source frames through the core, copies, held frames released |
//! | `counters.rs` | what it counts, per mapping ([`Counters`]) |
//!
//! There is no `handlers.rs` or `proxy.rs`: the rate limiter has no message of its own. It
//! reads and writes frames only through the public API an application uses
//! ([`crate::prelude`]: [`Consumer`], [`Producer`], [`crate::prelude::Frame`], [`FrameStamp`]); every frame,
//! announce and metadata message goes through those. The only messages it touches itself are
//! the source's `FrameProgress` and QoS when forwarding is on (RL §6.1): decoded, rewritten
//! and re-encoded by [`RateLimiterCore::on_source_progress`] / [`RateLimiterCore::on_source_qos`]
//! between one subscription and one publication per kind. A source that goes stale closes
//! its destination (RL §7); `per_consumer` takes the rate from the destination's sole
//! consumer (RL §4, [`RateLimiterCore::set_consumer_rate`]).
//!
//! ```no_run
//! use std::time::Duration;
//! use tensorpool::config::ProcessEnv;
//! use tensorpool::prelude::Context;
//! use tensorpool::ratelimiter::{RateLimiter, RateLimiterConfig};
//! use tensorpool_agent::{Agent, monotonic_ns};
//!
//! let cfg = RateLimiterConfig::load(Some("rate_limiter.toml".as_ref()), &ProcessEnv)?;
//! let ctx = Context::connect("/dev/shm/aeron")?;
//! let mut rl = RateLimiter::new(cfg, ctx)?;
//! loop {
//!     if rl.do_work(monotonic_ns())? == 0 {
//!         std::thread::sleep(Duration::from_millis(1));
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod config;
mod core;
pub mod counters;
mod state;
mod work;

use std::time::Duration;

use tensorpool_aeron::{Publication, Subscription};
use tensorpool_agent::{Agent, AgentResult};

use crate::prelude::{
    Consumer, ConsumerBuildError, ConsumerConfig, Context, FrameStamp, Producer,
    ProducerBuildError, ProducerConfig, RegionMode, TensorSpec,
};
use crate::streams::{DriverEndpoints, Endpoint, Streams};

pub use self::core::{Lost, RateLimiterCore};
pub use config::{Mapping, RateLimiterConfig};
pub use counters::Counters;
pub use state::{Action, Lane, Policy, Verdict};

/// Why the rate limiter could not start.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A source consumer could not be built.
    #[error("source stream {stream_id}: {source}")]
    Source {
        /// The source stream.
        stream_id: u32,
        /// Why.
        source: ConsumerBuildError,
    },
    /// A destination producer could not be built (no lease, no driver, ...).
    #[error("destination stream {stream_id}: {source}")]
    Dest {
        /// The destination stream.
        stream_id: u32,
        /// Why.
        source: ProducerBuildError,
    },
    /// Aeron could not add the counters.
    #[error("aeron counters: {0}")]
    Aeron(#[from] tensorpool_aeron::AddError),
}

/// How long to wait for the media driver to register the counters.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(10);
/// Source frames read per mapping per cycle.
const FRAME_LIMIT: usize = 64;
/// Forwarded control / QoS fragments read per cycle.
const FRAGMENT_LIMIT: usize = 64;
/// After a failed destination rebuild, the next attempt comes this much later.
const REBUILD_BACKOFF_NS: u64 = 1_000_000_000;

/// The frame held for the next rate slot: a copy (the source ring may overwrite the slot
/// before the slot opens). The buffer grows to the largest frame once, then is reused.
#[derive(Debug, Default)]
struct HoldBuf {
    bytes: Vec<u8>,
    len: usize,
    spec: Option<TensorSpec>,
    stamp: Option<FrameStamp>,
    /// The held frame's trace id, kept on the forwarded frame.
    trace_id: Option<u64>,
}

/// One mapping's transport: its source consumer and destination producer.
struct LaneIo {
    mapping: Mapping,
    source: Consumer,
    dest: Option<Producer>,
    dest_cfg: ProducerConfig,
    rebuild_at_ns: u64,
    hold: HoldBuf,
    /// Forward the source's metadata (RL §6).
    forward_metadata: bool,
    /// The source `meta_version` last forwarded to the current destination producer.
    meta_forwarded: Option<u32>,
    /// Whether the source consumer was mapped at the end of the last cycle.
    source_mapped: bool,
    /// The source consumer's [`Consumer::outages`] at the end of the last cycle.
    source_outages: u64,
    /// RL §4 per-consumer operation (`rate_limiter.per_consumer`).
    per_consumer: bool,
}

impl std::fmt::Debug for LaneIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaneIo")
            .field("mapping", &self.mapping)
            .field("dest_epoch", &self.dest.as_ref().and_then(Producer::epoch))
            .finish_non_exhaustive()
    }
}

/// The rate limiter agent: [`RateLimiterCore`] between source consumers and destination
/// producers.
#[derive(Debug)]
pub struct RateLimiter {
    core: RateLimiterCore,
    lanes: Vec<LaneIo>,
    ctx: Context,
    /// RL §6.1: the source control stream read and the destination control stream written
    /// (`forward_progress`).
    progress_io: Option<(Subscription, Publication)>,
    /// RL §6.1: the source QoS stream read and the destination QoS stream written
    /// (`forward_qos`).
    qos_io: Option<(Subscription, Publication)>,
}

fn streams_of(cfg: &RateLimiterConfig, descriptor: &Endpoint) -> Streams {
    Streams {
        control: Endpoint {
            channel: cfg.control_channel.clone(),
            stream_id: cfg.control_stream_id as i32,
        },
        announce: cfg.driver_announce.clone(),
        descriptor: descriptor.clone(),
        qos: Endpoint {
            channel: cfg.qos_channel.clone(),
            stream_id: cfg.qos_stream_id as i32,
        },
        metadata: Endpoint {
            channel: cfg.metadata_channel.clone(),
            stream_id: cfg.metadata_stream_id as i32,
        },
    }
}

impl RateLimiter {
    /// Builds one source consumer and one destination producer per mapping (each producer
    /// attaches through the driver at [`RateLimiterConfig::driver_endpoints`] and waits for
    /// its lease), then registers the counters.
    pub fn new(cfg: RateLimiterConfig, ctx: Context) -> Result<Self, BuildError> {
        let driver = cfg.driver_endpoints();
        Self::with_driver(cfg, driver, ctx)
    }

    /// [`RateLimiter::new`] with the driver's endpoints and timers given (read from the
    /// driver's own file: `tp ratelimit --driver-config`). The destination producers refresh
    /// their activity at least once per driver announce period, so the driver never takes a
    /// live destination for a stale one.
    pub fn with_driver(
        cfg: RateLimiterConfig,
        driver: DriverEndpoints,
        ctx: Context,
    ) -> Result<Self, BuildError> {
        let mut lanes = Vec::with_capacity(cfg.mappings.len());
        for m in &cfg.mappings {
            let mut ccfg = ConsumerConfig::new(m.source_stream_id);
            ccfg.streams = streams_of(&cfg, &cfg.source_descriptor);
            ccfg.allowed_base_dirs = vec![cfg.shm_base_dir.clone()];
            ccfg.driver = Some(driver.clone());
            ccfg.metadata = cfg.forward_metadata;
            let source = ctx
                .consumer(m.source_stream_id)
                .config(ccfg)
                .build()
                .map_err(|source| BuildError::Source {
                    stream_id: m.source_stream_id,
                    source,
                })?;
            let mut pcfg = ProducerConfig::new(m.dest_stream_id);
            pcfg.streams = streams_of(&cfg, &cfg.descriptor);
            pcfg.mode = RegionMode::Driver(driver.clone());
            pcfg.shm_base_dir = cfg.shm_base_dir.clone();
            pcfg.publish_timestamp = true;
            pcfg.announce_period = pcfg.announce_period.min(driver.announce_period);
            let dest = ctx
                .producer(m.dest_stream_id)
                .config(pcfg.clone())
                .build()
                .map_err(|source| BuildError::Dest {
                    stream_id: m.dest_stream_id,
                    source,
                })?;
            tracing::info!(
                source = m.source_stream_id,
                dest = m.dest_stream_id,
                policy = %m.policy.describe(),
                dest_epoch = dest.epoch().unwrap_or(0),
                "rate limiter mapping ready"
            );
            lanes.push(LaneIo {
                mapping: m.clone(),
                source,
                dest: Some(dest),
                dest_cfg: pcfg,
                rebuild_at_ns: 0,
                hold: HoldBuf::default(),
                forward_metadata: cfg.forward_metadata,
                meta_forwarded: None,
                source_mapped: false,
                source_outages: 0,
                per_consumer: cfg.per_consumer,
            });
        }
        let policies: Vec<Policy> = cfg.mappings.iter().map(|m| m.policy).collect();
        let mut core = RateLimiterCore::new(&policies);
        core.set_forwarding(cfg.forward_progress, cfg.forward_qos);
        for (i, m) in cfg.mappings.iter().enumerate() {
            core.set_route(i, m.source_stream_id, m.dest_stream_id);
            core.set_dest_epoch(i, lanes[i].dest.as_ref().and_then(Producer::epoch));
            core.attach_aeron_counters(i, m.dest_stream_id, ctx.client(), REGISTER_TIMEOUT)?;
        }
        // RL §6.1: one subscription and one publication shared by every mapping
        // (disambiguation by streamId); the ids are nonzero and valid (checked at load)
        let pair = |channel: &str, from: u32, to: u32| -> Result<_, BuildError> {
            let aeron = ctx.client();
            Ok((
                aeron.add_subscription(channel, from as i32, REGISTER_TIMEOUT)?,
                aeron.add_publication(channel, to as i32, REGISTER_TIMEOUT)?,
            ))
        };
        let progress_io = if cfg.forward_progress {
            Some(pair(
                &cfg.control_channel,
                cfg.source_control_stream_id,
                cfg.dest_control_stream_id,
            )?)
        } else {
            None
        };
        let qos_io = if cfg.forward_qos {
            Some(pair(
                &cfg.qos_channel,
                cfg.source_qos_stream_id,
                cfg.dest_qos_stream_id,
            )?)
        } else {
            None
        };
        Ok(Self {
            core,
            lanes,
            ctx,
            progress_io,
            qos_io,
        })
    }

    /// The policies and counters (read-only).
    pub fn core(&self) -> &RateLimiterCore {
        &self.core
    }

    /// The mappings, in order.
    pub fn mappings(&self) -> impl Iterator<Item = &Mapping> {
        self.lanes.iter().map(|l| &l.mapping)
    }

    /// The destination epoch of mapping `lane` (`None` while its producer is being rebuilt).
    pub fn dest_epoch(&self, lane: usize) -> Option<u64> {
        self.lanes[lane].dest.as_ref().and_then(Producer::epoch)
    }
}

impl Agent for RateLimiter {
    fn do_work(&mut self, now_ns: u64) -> AgentResult {
        work::duty_cycle(self, now_ns)
    }

    fn role_name(&self) -> &str {
        "ratelimiter"
    }
}
