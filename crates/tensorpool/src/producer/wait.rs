//! The producer's signals: whether its media driver is alive, and waiting until consumers
//! have mapped the current epoch ([`super::Producer::wait_for_consumers`]).
//!
//! # What "mapped" means
//!
//! No message of the wire protocol tells a producer that a consumer has mapped its regions
//! (`ConsumerHello` and `QosConsumer` carry no epoch). Every consumer of this library
//! publishes its mapped epoch as an Aeron counter (`tensorpool:206`, `epoch`, keyed by
//! stream and consumer id; 0 while unmapped) in its media driver's counters file. A consumer
//! counts as mapped when that counter, in the producer's media driver, holds the
//! producer's current epoch for the producer's stream. So:
//!
//! * only consumers on the same media driver are seen (SHM consumers are on the same host;
//!   a host normally runs one media driver), and only consumers built with
//!   `aeron_counters = true` (the default) by this library;
//! * a consumer process that died without closing keeps its counter until its media driver
//!   times its client out (Aeron's client liveness timeout, 10 s by default);
//! * the wait also needs the shared descriptor publication to be connected, so that the
//!   next descriptor reaches the consumers counted.

use std::time::{Duration, Instant};

use tensorpool_aeron::tensorpool_counter_type_id;

use super::{ClaimError, Producer};
use crate::counters::{CounterKey, Role};

/// `n` of the consumer's mapped-epoch counter (`consumer/counters.rs`, `EPOCH`).
const CONSUMER_EPOCH_COUNTER: u16 = 206;

/// Why [`Producer::wait_for_consumers`] returned without its consumers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WaitError {
    /// The timeout passed with fewer consumers mapped than wanted.
    #[error("{mapped} of {wanted} consumers mapped the current epoch before the timeout")]
    Timeout {
        /// Consumers mapped when the wait gave up.
        mapped: usize,
        /// Consumers wanted.
        wanted: usize,
    },
    /// The producer has no epoch (closed, or paused in driver mode without a lease).
    #[error("the producer has no mapped regions (closed or paused)")]
    NoRegions,
    /// The Aeron client lost its media driver.
    #[error("the Aeron media driver is lost (no heartbeat within the driver timeout)")]
    MediaDriverLost,
}

impl Producer {
    /// Whether the Aeron client has lost its media driver (no heartbeat within its driver
    /// timeout: [`tensorpool_aeron::ClientConfig::driver_timeout`], Aeron's default 10 s).
    /// From then on claims fail with [`ClaimError::MediaDriverLost`] and the agent's duty
    /// cycle with [`WaitError::MediaDriverLost`].
    pub fn media_driver_lost(&self) -> bool {
        self._ctx.client().is_closed()
    }

    pub(crate) fn check_driver(&self) -> Result<(), ClaimError> {
        match self.media_driver_lost() {
            true => Err(ClaimError::MediaDriverLost),
            false => Ok(()),
        }
    }

    /// Consumers that have mapped the current epoch, as their mapped-epoch counters say
    /// (see the module docs for what is seen). Reads the counters file: not for the frame
    /// path.
    pub fn mapped_consumers(&self) -> usize {
        let Some(epoch) = self.epoch() else {
            return 0;
        };
        let stream = self.config().stream_id;
        let type_id = tensorpool_counter_type_id(CONSUMER_EPOCH_COUNTER);
        let mut n = 0;
        self._ctx.client().counters_reader().for_each(|c| {
            if c.type_id == type_id
                && u64::try_from(c.value).ok() == Some(epoch)
                && CounterKey::decode(c.key)
                    .is_some_and(|k| k.role == Role::Consumer && k.stream_id == stream)
            {
                n += 1;
            }
        });
        n
    }

    /// Runs the duty cycle until at least `n` consumers have mapped the current epoch and the
    /// descriptor publication is connected (see the module docs), or `timeout` passes.
    /// Returns the consumers mapped. Sleeps between cycles (1 ms at most). `n == 0` returns
    /// at once.
    pub fn wait_for_consumers(&mut self, n: usize, timeout: Duration) -> Result<usize, WaitError> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.media_driver_lost() {
                return Err(WaitError::MediaDriverLost);
            }
            if self.epoch().is_none() {
                return Err(WaitError::NoRegions);
            }
            let mapped = self.mapped_consumers();
            if mapped >= n && (n == 0 || self.pubs.descriptor.is_connected()) {
                return Ok(mapped);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(WaitError::Timeout { mapped, wanted: n });
            }
            if self.do_work(tensorpool_agent::monotonic_ns()) == 0 {
                std::thread::sleep(Duration::from_millis(1).min(deadline - now));
            }
        }
    }
}
