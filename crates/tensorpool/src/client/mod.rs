//! The driver client: how a producer or consumer gets and keeps a lease (Driver Model §4,
//! Appendix B), as a poll-driven state machine for an agent's duty cycle, plus a blocking
//! [`attach`] for programs without one.
//!
//! One [`DriverClient`] holds at most one lease: one stream, one role, one client id, and at
//! most one attach in flight, so it never issues concurrent attaches for a stream and role
//! (§4.8). It:
//! - attaches with a timeout and retries with exponential backoff (§4.2);
//! - takes correlation ids from a per-process random sequence ([`next_correlation_id`]),
//!   ignores duplicate responses once an OK was accepted, and never lets a non-OK duplicate
//!   override it (B.1);
//! - with client id 0 picks a random non-zero id, and a new one when the driver answers
//!   `client_id already attached` (B.2);
//! - validates every OK response and announce (§4.2: required fields, URIs, 256-byte header
//!   slots, non-empty pools, `poolNslots == headerNslots`); a failure is a protocol error:
//!   the attach is dropped and made again (§4.7a);
//! - sends keepalives every interval, before the lease's expiry when the driver gave one
//!   (§4.4); a keepalive that cannot be sent means the driver is gone;
//! - reacts to its own lease's revocation (reattach), to the revocation of the producer of a
//!   stream it consumes (wait for the epoch-bumped announce, at most 3 announce periods,
//!   §4.9), to `ShmDriverShutdown` (§4.13) and to a driver that stopped announcing (§10);
//! - gates every message on schema id, version and template id (§4.4a).
//!
//! The client is not a role (roles embed it; it imports none) and takes the roles' shape
//! where it applies (docs/ARCHITECTURE.md, "How to add a role"):
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | [`DriverClient`] and its public API |
//! | `config.rs` | [`ClientConfig`]; `DriverEndpoints::client_config` |
//! | `state.rs` | [`ClientState`], [`ClientEvent`], [`ClientCounters`], the internal state machine |
//! | `handlers.rs` | one `on_<message>` per driver message and announce |
//! | `proxy.rs` | `send_attach`, `send_keepalive`, `send_detach`, through `control::send` |
//! | `work.rs` | [`DriverClient::do_work`]: the duty cycle and its timers |
//! | `transport.rs` | [`ClientTransport`] (the client's sink and source; no Aeron in the logic), [`AeronTransport`] |
//! | `validate.rs`, `blocking.rs`, `admin.rs`, `ids.rs` | concerns: response and announce validation; the blocking [`attach`]; the admin schema; ids |
//!
//! ```no_run
//! use std::time::Duration;
//! use tensorpool::client::{ClientConfig, attach};
//! use tensorpool_codec::driver::Role;
//!
//! let aeron = tensorpool_aeron::AeronClient::connect("/dev/shm/aeron", Duration::from_secs(5))?;
//! let cfg = ClientConfig::new(10_000, Role::Consumer);
//! let (mut client, info) = attach(&aeron, cfg, Duration::from_secs(10))?;
//! println!("lease {} epoch {}", info.lease_id, info.regions.epoch);
//! // in the duty cycle:
//! client.do_work(tensorpool_agent::monotonic_ns(), &mut |event| println!("{event:?}"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod admin;
mod blocking;
mod config;
mod handlers;
mod ids;
mod proxy;
mod state;
mod transport;
mod validate;
mod work;

use std::collections::VecDeque;

pub use admin::{AdminError, AdminQuery, query_driver, request_shutdown};
pub use blocking::{AttachError, attach, code_name};
pub use config::ClientConfig;
pub use ids::{next_correlation_id, random_client_id};
pub use state::{ClientCounters, ClientEvent, ClientState, LeaseLost};
pub use transport::{AeronTransport, ClientTransport};
pub use validate::{
    AttachInfo, PoolRegion, ProtocolError, Regions, validate_announce, validate_attach,
};

use state::{Inner, Machine};

/// The `errorMessage` with which drivers refuse a second lease for a client id (B.2).
pub const CLIENT_ID_ALREADY_ATTACHED: &str = "client_id already attached";

/// A driver client over a transport (see the module docs).
#[derive(Debug)]
pub struct DriverClient<T: ClientTransport> {
    transport: T,
    m: Machine,
}

impl<T: ClientTransport> DriverClient<T> {
    /// A client that attaches at its first duty cycle.
    pub fn new(cfg: ClientConfig, transport: T) -> Self {
        let auto_client_id = cfg.client_id == 0;
        let client_id = if auto_client_id {
            random_client_id()
        } else {
            cfg.client_id
        };
        let backoff_ns = ClientConfig::ns(cfg.backoff_initial);
        Self {
            transport,
            m: Machine {
                cfg,
                client_id,
                auto_client_id,
                state: Inner::Idle,
                backoff_ns,
                abandoned: [i64::MIN; 8],
                abandoned_next: 0,
                accepted: None,
                pending_detach: None,
                events: VecDeque::with_capacity(16),
                counters: ClientCounters::default(),
                join_time_ns: None,
                close_requested: false,
            },
        }
    }

    /// Where the client is.
    pub fn state(&self) -> ClientState {
        match self.m.state {
            Inner::Idle => ClientState::Unattached,
            Inner::Attaching { .. } => ClientState::Attaching,
            Inner::Attached(_) => ClientState::Attached,
            Inner::Backoff { .. } => ClientState::Backoff,
            Inner::Detaching { .. } => ClientState::Detaching,
            Inner::Closed => ClientState::Closed,
        }
    }

    /// The lease held, if attached.
    pub fn lease(&self) -> Option<&AttachInfo> {
        match &self.m.state {
            Inner::Attached(h) => Some(&h.info),
            _ => None,
        }
    }

    /// The client id in use (changes when an auto-assigned id collided).
    pub fn client_id(&self) -> u32 {
        self.m.client_id
    }

    /// Counters.
    pub fn counters(&self) -> ClientCounters {
        self.m.counters
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.m.cfg
    }

    /// Replaces the directories every URI the driver gives must be contained in
    /// ([`ClientConfig::allowed_base_dirs`]); from the next response or announce on. A
    /// consumer whose base dirs appeared after it started sets them once they are validated.
    pub fn set_allowed_base_dirs(&mut self, dirs: Option<tensorpool_shm::AllowedBaseDirs>) {
        self.m.cfg.allowed_base_dirs = dirs;
    }

    /// Detaches (when attached) and closes; [`ClientEvent::Detached`] follows.
    pub fn close(&mut self) {
        self.m.close_requested = true;
    }

    /// The transport (e.g. to share its publication).
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The transport, mutably (tests script it).
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }
}
