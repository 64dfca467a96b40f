//! The supervisor (Wire Spec §10.5, §15.14; the C implementation's `[supervisor]`): watches
//! every producer and consumer, aggregates their QoS and tells consumers how to behave with
//! `ConsumerConfig` (forced mode, SHM off with a fallback URI, per-consumer descriptor and
//! control streams).
//!
//! | file | concern |
//! |---|---|
//! | `config.rs` | [`SupervisorConfig`]: the `[supervisor]` table, rules, environment, validation |
//! | `core.rs` | [`SupervisorCore`]: the state machine without transport |
//! | `state.rs` | consumer and producer tables, id pools, views |
//! | `handlers.rs` | one `on_<message>` per inbound message |
//! | `proxy.rs` | one `send_<message>` per outbound message (`ConsumerConfig`) |
//! | `work.rs` | the duty cycle's timers (stale consumers and producers), `on_activity` |
//! | `activity.rs` | [`ActivityWatch`]: reads producers' superblock activity timestamps |
//! | `counters.rs` | what it counts ([`Counters`]) |
//!
//! [`Supervisor`] is the [`Agent`]: [`SupervisorCore`] on its Aeron subscriptions (control,
//! announce, metadata, QoS; one per distinct endpoint) and its control publication.
//!
//! ```no_run
//! use std::time::Duration;
//! use tensorpool::config::ProcessEnv;
//! use tensorpool::supervisor::{Supervisor, SupervisorConfig};
//! use tensorpool_agent::{Agent, monotonic_ns};
//!
//! let cfg = SupervisorConfig::load(Some("driver.toml".as_ref()), &ProcessEnv)?;
//! let aeron = tensorpool_aeron::AeronClient::connect("/dev/shm/aeron", Duration::from_secs(5))?;
//! let mut supervisor = Supervisor::new(cfg, aeron, monotonic_ns())?;
//! loop {
//!     if supervisor.do_work(monotonic_ns())? == 0 {
//!         std::thread::sleep(Duration::from_millis(1));
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod activity;
pub mod config;
mod core;
pub mod counters;
mod handlers;
mod proxy;
mod state;
mod work;

use std::time::Duration;

use tensorpool_aeron::{AeronClient, Publication, Subscription};
use tensorpool_agent::{Agent, AgentError, AgentResult};

pub use self::core::SupervisorCore;
pub use activity::ActivityWatch;
pub use config::{DriverStreamIds, Rule, SupervisorConfig};
pub use counters::Counters;
pub use state::{ConsumerQos, ConsumerView, ProducerView};

/// Why the supervisor could not start.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// Aeron could not add a subscription, publication or counter.
    #[error("aeron: {0}")]
    Aeron(#[from] tensorpool_aeron::AddError),
    /// A configured stream id is not an Aeron stream id.
    #[error("{0} is not an Aeron stream id")]
    StreamId(u32),
    /// `supervisor.allowed_base_dirs` names a directory that cannot be used.
    #[error("supervisor.allowed_base_dirs: {0}")]
    BaseDirs(#[from] tensorpool_shm::PathError),
}

/// How long to wait for the media driver to register the subscriptions and publication.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(10);
/// Fragments read per subscription per poll.
const FRAGMENT_LIMIT: usize = 64;

/// The supervisor agent: [`SupervisorCore`] on Aeron.
#[derive(Debug)]
pub struct Supervisor {
    core: SupervisorCore,
    activity: ActivityWatch,
    subscriptions: Vec<Subscription>,
    control_pub: Publication,
    _aeron: AeronClient,
}

fn aeron_stream_id(id: u32) -> Result<i32, SupervisorError> {
    i32::try_from(id).map_err(|_| SupervisorError::StreamId(id))
}

impl Supervisor {
    /// Joins the control, announce, metadata and QoS streams through `aeron`.
    pub fn new(
        cfg: SupervisorConfig,
        aeron: AeronClient,
        now_ns: u64,
    ) -> Result<Self, SupervisorError> {
        let mut endpoints: Vec<(String, i32)> = Vec::with_capacity(4);
        for (channel, id) in [
            (&cfg.control_channel, cfg.control_stream_id),
            (&cfg.announce_channel, cfg.announce_stream_id),
            (&cfg.metadata_channel, cfg.metadata_stream_id),
            (&cfg.qos_channel, cfg.qos_stream_id),
        ] {
            let e = (channel.clone(), aeron_stream_id(id)?);
            if !endpoints.contains(&e) {
                endpoints.push(e);
            }
        }
        let mut subscriptions = Vec::with_capacity(endpoints.len());
        for (channel, id) in &endpoints {
            subscriptions.push(aeron.add_subscription(channel, *id, REGISTER_TIMEOUT)?);
        }
        let control_pub = aeron.add_publication(
            &cfg.control_channel,
            aeron_stream_id(cfg.control_stream_id)?,
            REGISTER_TIMEOUT,
        )?;
        tracing::info!(
            control = %format!("{}#{}", cfg.control_channel, cfg.control_stream_id),
            consumer_capacity = cfg.consumer_capacity,
            per_consumer_enabled = cfg.per_consumer_enabled,
            rules = cfg.rules.len(),
            "supervisor running"
        );
        // read superblocks as often as the sweep runs: 4 reads per staleness window
        let period_ns =
            (u64::from(cfg.producer_stale_ms) * 1_000_000 / 4).clamp(1_000_000, 250_000_000);
        let activity = ActivityWatch::new(
            &cfg.allowed_base_dirs,
            period_ns,
            cfg.consumer_capacity as usize,
        )?;
        let mut core = SupervisorCore::new(cfg, now_ns);
        core.attach_aeron_counters(&aeron, REGISTER_TIMEOUT)?;
        Ok(Self {
            core,
            activity,
            subscriptions,
            control_pub,
            _aeron: aeron,
        })
    }

    /// The state machine (read-only).
    pub fn core(&self) -> &SupervisorCore {
        &self.core
    }
}

/// A fragment's source: its publication's session, never 0.
fn source(session_id: i32) -> u64 {
    (1 << 32) | u64::from(session_id as u32)
}

impl Agent for Supervisor {
    fn do_work(&mut self, now_ns: u64) -> AgentResult {
        let Self {
            core,
            activity,
            subscriptions,
            control_pub,
            ..
        } = self;
        let mut work = 0;
        for sub in subscriptions.iter_mut() {
            let polled = sub.poll(
                |buf, info| {
                    work += core.on_message_from(buf, source(info.session_id), now_ns, control_pub);
                },
                FRAGMENT_LIMIT,
            );
            if let Err(e) = polled {
                return Err(AgentError::failed(e));
            }
        }
        work += activity.poll(core, now_ns);
        work += core.poll_timers(now_ns);
        Ok(work)
    }

    fn role_name(&self) -> &str {
        "supervisor"
    }
}
