//! systemd's notify protocol for the long-running roles (`tp media-driver`, `tp driver`,
//! `tp supervisor`, `tp bridge`, `tp ratelimit`; docs/ops.md), through the `sd-notify` crate.
//!
//! `READY=1` (with a `STATUS=` line) once the role really serves, `WATCHDOG=1` from its duty
//! cycle at most every half `WATCHDOG_USEC` (only when `WATCHDOG_USEC` is set and
//! `WATCHDOG_PID`, if set, is this process: a duty cycle that stops turning stops the pings,
//! and systemd restarts the unit), `STOPPING=1` once on SIGINT / SIGTERM before the clean
//! shutdown. Without `NOTIFY_SOCKET` every call is a no-op.

use sd_notify::NotifyState;

/// One role's notifications to the service manager.
#[derive(Debug)]
pub(crate) struct ServiceNotifier {
    /// `NOTIFY_SOCKET` is set: the process runs under a service manager.
    enabled: bool,
    /// Half the watchdog period, in nanoseconds, when the watchdog is on for this process.
    ping_interval_ns: Option<u64>,
    /// Monotonic time of the next ping.
    next_ping_ns: u64,
    ready: bool,
    stopping: bool,
    /// A send already failed and was reported (reported once, not per cycle).
    failed: bool,
}

impl ServiceNotifier {
    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` of this process.
    pub(crate) fn from_env() -> Self {
        let enabled = std::env::var_os("NOTIFY_SOCKET").is_some_and(|s| !s.is_empty());
        let ping_interval_ns = sd_notify::watchdog_enabled()
            .filter(|d| enabled && !d.is_zero())
            .map(|d| u64::try_from(d.as_nanos() / 2).unwrap_or(u64::MAX).max(1));
        Self {
            enabled,
            ping_interval_ns,
            next_ping_ns: 0,
            ready: false,
            stopping: false,
            failed: false,
        }
    }

    fn send(&mut self, states: &[NotifyState]) {
        if !self.enabled {
            return;
        }
        if let Err(e) = sd_notify::notify(states)
            && !self.failed
        {
            self.failed = true;
            tracing::warn!(error = %e, "cannot notify the service manager (NOTIFY_SOCKET)");
        }
    }

    /// `READY=1` and `STATUS=status`, once; never after `STOPPING=1` (a signal that came
    /// during the start).
    pub(crate) fn ready(&mut self, status: &str) {
        if self.ready || self.stopping {
            return;
        }
        self.ready = true;
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// Whether `READY=1` was sent (or would have been, without a service manager), or the
    /// role is stopping: nothing more to announce.
    pub(crate) fn is_ready(&self) -> bool {
        self.ready || self.stopping
    }

    /// `STOPPING=1` and `STATUS=status`, once.
    pub(crate) fn stopping(&mut self, status: &str) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        self.send(&[NotifyState::Stopping, NotifyState::Status(status)]);
    }

    /// Called from every duty cycle with its monotonic time: `WATCHDOG=1` when a ping is due.
    /// No pings before `READY=1` (systemd's start timeout covers that time); they go on while
    /// a stopping role drains, as long as its duty cycle turns.
    pub(crate) fn cycle(&mut self, now_ns: u64) {
        let Some(interval) = self.ping_interval_ns else {
            return;
        };
        if !self.ready || now_ns < self.next_ping_ns {
            return;
        }
        self.next_ping_ns = now_ns.saturating_add(interval);
        self.send(&[NotifyState::Watchdog]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_service_manager_every_call_is_a_no_op() {
        let mut n = ServiceNotifier {
            enabled: false,
            ping_interval_ns: None,
            next_ping_ns: 0,
            ready: false,
            stopping: false,
            failed: false,
        };
        n.ready("x");
        n.cycle(1);
        n.stopping("z");
        assert!(n.is_ready());
        assert!(!n.failed);
    }
}
