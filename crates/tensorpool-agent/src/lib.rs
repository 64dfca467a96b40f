//! The runtime every tensorpool role runs on.
//!
//! A role (driver, producer, consumer, bridge, ...) is an [`Agent`]: a single-threaded state
//! machine whose [`Agent::do_work`] performs one duty cycle and reports how much work it did.
//! Where and how often that cycle runs is decided outside the agent:
//!
//! - [`AgentRunner`] gives an agent (or a [`CompositeAgent`] of several) its own thread and
//!   an [`IdleStrategy`] for the cycles that find nothing to do;
//! - [`AgentInvoker`] lets the application call the duty cycle from its own loop.
//!
//! Time is read once per cycle from a [`Clock`] and handed to the agent, so every decision
//! inside one cycle sees the same instant, and tests can inject a [`ManualClock`].
//! Periodic and one-shot duties are [`DeadlineTimer`]s polled with that instant.
//!
//! ```
//! use tensorpool_agent::{Agent, AgentInvoker, AgentResult, ManualClock};
//!
//! struct Counter { cycles: u64 }
//! impl Agent for Counter {
//!     fn do_work(&mut self, _now_ns: u64) -> AgentResult {
//!         self.cycles += 1;
//!         Ok(1)
//!     }
//!     fn role_name(&self) -> &str { "counter" }
//! }
//!
//! let clock = ManualClock::new(0);
//! let mut invoker = AgentInvoker::new(Counter { cycles: 0 }, clock);
//! invoker.start().unwrap();
//! assert_eq!(invoker.invoke().unwrap(), 1);
//! invoker.close();
//! assert_eq!(invoker.agent().cycles, 1);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod agent;
mod clock;
mod composite;
mod idle;
mod invoker;
mod runner;
mod timer;

pub use agent::{Agent, AgentError, AgentResult};
pub use clock::{Clock, ManualClock, MonotonicClock, RealtimeClock, monotonic_ns, realtime_ns};
pub use composite::CompositeAgent;
pub use idle::{
    BackoffIdleStrategy, BusySpinIdleStrategy, IdleStrategy, IdleStrategyKind, NoOpIdleStrategy,
    ParseIdleStrategyError, SleepingIdleStrategy, YieldingIdleStrategy,
};
pub use invoker::AgentInvoker;
pub use runner::{AgentRunner, ErrorHandler, RunnerError};
pub use timer::DeadlineTimer;
