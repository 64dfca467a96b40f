//! Clocks: the one time source an agent cycle reads.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::time::{ClockId, clock_gettime};

/// A source of nanosecond timestamps.
pub trait Clock {
    /// The current time in nanoseconds.
    fn nanos(&self) -> u64;
}

fn read(clock: ClockId) -> u64 {
    // clock_gettime only fails for an invalid clock id; both ids used here always exist on
    // Linux. Should it ever fail, 0 is a safe "no time" answer rather than a panic.
    clock_gettime(clock)
        .map(|ts| (ts.tv_sec() as u64).saturating_mul(1_000_000_000) + ts.tv_nsec() as u64)
        .unwrap_or(0)
}

/// `CLOCK_MONOTONIC` in nanoseconds: the clock the protocol's MONOTONIC clock domain
/// means. Comparable between processes of one host, not between hosts.
pub fn monotonic_ns() -> u64 {
    read(ClockId::CLOCK_MONOTONIC)
}

/// `CLOCK_REALTIME` in nanoseconds since the Unix epoch (the REALTIME_SYNCED domain).
pub fn realtime_ns() -> u64 {
    read(ClockId::CLOCK_REALTIME)
}

/// The host's monotonic clock ([`monotonic_ns`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct MonotonicClock;

impl Clock for MonotonicClock {
    fn nanos(&self) -> u64 {
        monotonic_ns()
    }
}

/// The host's wall clock ([`realtime_ns`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct RealtimeClock;

impl Clock for RealtimeClock {
    fn nanos(&self) -> u64 {
        realtime_ns()
    }
}

/// A clock that moves only when told to: for duty-cycle tests that need exact control of
/// time. Clones share the same time.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    now: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock that reads `start_ns` until advanced.
    pub fn new(start_ns: u64) -> Self {
        Self {
            now: Arc::new(AtomicU64::new(start_ns)),
        }
    }

    /// Sets the time.
    pub fn set(&self, now_ns: u64) {
        self.now.store(now_ns, Ordering::Release);
    }

    /// Moves the time forward by `delta_ns`.
    pub fn advance(&self, delta_ns: u64) {
        self.now.fetch_add(delta_ns, Ordering::AcqRel);
    }
}

impl Clock for ManualClock {
    fn nanos(&self) -> u64 {
        self.now.load(Ordering::Acquire)
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn nanos(&self) -> u64 {
        (**self).nanos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_never_goes_back() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(a > 0);
        assert!(b >= a);
    }

    #[test]
    fn realtime_is_after_2020() {
        assert!(realtime_ns() > 1_577_836_800_000_000_000);
    }

    #[test]
    fn manual_clock_is_shared_between_clones() {
        let clock = ManualClock::new(5);
        let other = clock.clone();
        clock.advance(10);
        assert_eq!(other.nanos(), 15);
        other.set(100);
        assert_eq!(clock.nanos(), 100);
    }
}
