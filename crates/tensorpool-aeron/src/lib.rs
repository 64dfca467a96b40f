//! The only tensorpool crate that touches Aeron (through `rusteron`, which builds the real
//! Aeron C client and media driver): media drivers, publications, subscriptions, counters.
//!
//! Nothing Aeron-typed leaks out: the types here own the C objects and expose plain Rust.
//!
//! - [`EmbeddedMediaDriver`] runs the C media driver on its own threads in this process;
//!   [`run_standalone`] runs it in the foreground like Aeron's `aeronmd` (for `tp media-driver`).
//! - [`AeronClient`] connects to a driver and adds [`Publication`]s, [`Subscription`]s and
//!   [`Counter`]s; every wait has a deadline and ends in a typed timeout error.
//! - [`Publication::try_claim`] encodes straight into the term buffer;
//!   [`Publication::publish`] falls back to `offer` from a reusable buffer for long messages.
//! - [`Subscription::poll`] delivers whole messages, reassembled without allocating in steady
//!   state.
//!
//! ```no_run
//! use std::time::Duration;
//! use tensorpool_aeron::{AeronClient, EmbeddedMediaDriver, MediaDriverConfig};
//!
//! let driver = EmbeddedMediaDriver::start(MediaDriverConfig::default())?;
//! let client = AeronClient::connect(driver.dir(), Duration::from_secs(5))?;
//! let mut sub = client.add_subscription("aeron:ipc", 10, Duration::from_secs(5))?;
//! let mut publication = client.add_publication("aeron:ipc", 10, Duration::from_secs(5))?;
//! publication.try_claim(5, |buf| {
//!     buf.copy_from_slice(b"hello");
//!     Ok::<(), std::convert::Infallible>(())
//! })?;
//! sub.poll(|msg, info| println!("{} bytes at {}", msg.len(), info.position), 10)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

mod client;
mod counters;
mod driver;
mod error;
mod ffi;
mod pending;
mod publication;
mod subscription;

pub use client::{AeronClient, ClientConfig};
pub use counters::{
    Counter, CounterInfo, CountersReader, MAX_KEY_LENGTH, MAX_LABEL_LENGTH,
    TENSORPOOL_COUNTER_TYPE_ID_BASE, TENSORPOOL_COUNTER_TYPE_ID_LAST,
    is_tensorpool_counter_type_id, tensorpool_counter_type_id,
};
pub use driver::{
    DEFAULT_EMBEDDED_TERM_LENGTH, DriverIdleStrategy, EmbeddedMediaDriver, MediaDriverConfig,
    ParseThreadingModeError, StandaloneDriverInfo, StandaloneOptions, ThreadingMode,
    aeron_default_dir, default_base_dir, reclaim_dead_unique_dirs, run_standalone,
    run_standalone_with, unique_dir,
};
pub use error::{
    AddError, ClaimError, ConnectError, DriverError, PollError, PublishError, WaitingFor,
};
pub use pending::{PendingCounter, PendingPublication, PendingSubscription};
pub use publication::{Publication, PublishPath, Published};
pub use subscription::{FragmentInfo, ImageEventsSnapshot, Subscription};

/// Aeron's monotonic clock (`CLOCK_MONOTONIC`) in nanoseconds: the clock image events are
/// stamped with.
pub fn nano_clock() -> i64 {
    // SAFETY: reads the monotonic clock; no preconditions.
    unsafe { rusteron_client::bindings::aeron_nano_clock() }
}
