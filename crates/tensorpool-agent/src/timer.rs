//! [`DeadlineTimer`]: periodic and one-shot duties polled from the duty cycle.

/// A deadline checked against the cycle's `now_ns`, never by a thread of its own.
///
/// A periodic timer re-arms itself `period` after the instant it fired (a late cycle does
/// not cause a burst of catch-up firings). A one-shot timer disarms when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadlineTimer {
    deadline_ns: Option<u64>,
    period_ns: u64,
}

impl DeadlineTimer {
    /// A timer that fires every `period_ns`, first at `now_ns + period_ns`.
    pub fn periodic(period_ns: u64, now_ns: u64) -> Self {
        Self {
            deadline_ns: Some(now_ns.saturating_add(period_ns)),
            period_ns,
        }
    }

    /// A periodic timer that fires at the first poll, then every `period_ns`.
    pub fn periodic_immediate(period_ns: u64) -> Self {
        Self {
            deadline_ns: Some(0),
            period_ns,
        }
    }

    /// A one-shot timer, not armed.
    pub fn one_shot() -> Self {
        Self {
            deadline_ns: None,
            period_ns: 0,
        }
    }

    /// Arms the timer to fire at `deadline_ns`.
    pub fn arm_at(&mut self, deadline_ns: u64) {
        self.deadline_ns = Some(deadline_ns);
    }

    /// Arms the timer to fire `delay_ns` after `now_ns`.
    pub fn arm_in(&mut self, now_ns: u64, delay_ns: u64) {
        self.deadline_ns = Some(now_ns.saturating_add(delay_ns));
    }

    /// Disarms the timer.
    pub fn disarm(&mut self) {
        self.deadline_ns = None;
    }

    /// The next deadline, if armed.
    pub fn deadline_ns(&self) -> Option<u64> {
        self.deadline_ns
    }

    /// The period (0 for one-shot timers).
    pub fn period_ns(&self) -> u64 {
        self.period_ns
    }

    /// Whether the timer is armed and its deadline has passed.
    pub fn is_due(&self, now_ns: u64) -> bool {
        self.deadline_ns.is_some_and(|d| now_ns >= d)
    }

    /// Fires if due: returns true once per deadline and re-arms (periodic) or disarms
    /// (one-shot).
    pub fn poll(&mut self, now_ns: u64) -> bool {
        if !self.is_due(now_ns) {
            return false;
        }
        self.deadline_ns = if self.period_ns > 0 {
            Some(now_ns.saturating_add(self.period_ns))
        } else {
            None
        };
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periodic_fires_once_per_period_without_catch_up_bursts() {
        let mut t = DeadlineTimer::periodic(100, 1_000);
        assert!(!t.poll(1_050));
        assert!(t.poll(1_100));
        assert!(!t.poll(1_150));
        // A late cycle fires once and re-arms from now.
        assert!(t.poll(1_900));
        assert!(!t.poll(1_950));
        assert!(t.poll(2_000));
    }

    #[test]
    fn immediate_periodic_fires_at_first_poll() {
        let mut t = DeadlineTimer::periodic_immediate(10);
        assert!(t.poll(5));
        assert!(!t.poll(14));
        assert!(t.poll(15));
    }

    #[test]
    fn one_shot_fires_once_when_armed() {
        let mut t = DeadlineTimer::one_shot();
        assert!(!t.poll(u64::MAX));
        t.arm_in(10, 5);
        assert_eq!(t.deadline_ns(), Some(15));
        assert!(!t.poll(14));
        assert!(t.poll(15));
        assert!(!t.poll(100));
        t.arm_at(200);
        t.disarm();
        assert!(!t.poll(300));
    }

    #[test]
    fn saturates_instead_of_overflowing() {
        let mut t = DeadlineTimer::periodic(10, u64::MAX - 1);
        assert_eq!(t.deadline_ns(), Some(u64::MAX));
        assert!(t.poll(u64::MAX));
    }
}
