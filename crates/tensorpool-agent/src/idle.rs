//! Idle strategies: what a runner does after a duty cycle that found little or nothing to do.

use std::fmt;
use std::hint;
use std::str::FromStr;
use std::thread;
use std::time::Duration;

/// Decides how to wait between duty cycles.
pub trait IdleStrategy {
    /// Called after every duty cycle with its work count; waits only when `work_count` is 0
    /// and resets its back-off state otherwise.
    fn idle_work(&mut self, work_count: usize) {
        if work_count > 0 {
            self.reset();
        } else {
            self.idle();
        }
    }

    /// Waits once, escalating according to the strategy.
    fn idle(&mut self);

    /// Returns to the least-waiting state (called when work was found).
    fn reset(&mut self) {}

    /// A short name for logs and benchmark output.
    fn alias(&self) -> &'static str;
}

impl<S: IdleStrategy + ?Sized> IdleStrategy for Box<S> {
    fn idle_work(&mut self, work_count: usize) {
        (**self).idle_work(work_count)
    }
    fn idle(&mut self) {
        (**self).idle()
    }
    fn reset(&mut self) {
        (**self).reset()
    }
    fn alias(&self) -> &'static str {
        (**self).alias()
    }
}

/// Never waits: for agents that must react at once and own a core.
#[derive(Debug, Default, Clone, Copy)]
pub struct BusySpinIdleStrategy;

impl IdleStrategy for BusySpinIdleStrategy {
    fn idle(&mut self) {
        hint::spin_loop();
    }
    fn alias(&self) -> &'static str {
        "busy-spin"
    }
}

/// Does nothing at all between cycles (not even a spin hint).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoOpIdleStrategy;

impl IdleStrategy for NoOpIdleStrategy {
    fn idle(&mut self) {}
    fn alias(&self) -> &'static str {
        "noop"
    }
}

/// Gives the rest of the time slice to other threads.
#[derive(Debug, Default, Clone, Copy)]
pub struct YieldingIdleStrategy;

impl IdleStrategy for YieldingIdleStrategy {
    fn idle(&mut self) {
        thread::yield_now();
    }
    fn alias(&self) -> &'static str {
        "yield"
    }
}

/// Sleeps for a fixed period whenever idle.
#[derive(Debug, Clone, Copy)]
pub struct SleepingIdleStrategy {
    period: Duration,
}

impl SleepingIdleStrategy {
    /// Sleeps for `period` per idle cycle.
    pub fn new(period: Duration) -> Self {
        Self { period }
    }
}

impl Default for SleepingIdleStrategy {
    fn default() -> Self {
        Self::new(Duration::from_millis(1))
    }
}

impl IdleStrategy for SleepingIdleStrategy {
    fn idle(&mut self) {
        thread::sleep(self.period);
    }
    fn alias(&self) -> &'static str {
        "sleep"
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BackoffState {
    NotIdle,
    Spinning,
    Yielding,
    Parking,
}

/// Spins, then yields, then parks for exponentially growing periods (as Agrona's and
/// Aeron's back-off strategy): low latency when busy, little CPU when quiet.
#[derive(Debug, Clone)]
pub struct BackoffIdleStrategy {
    max_spins: u32,
    max_yields: u32,
    min_park: Duration,
    max_park: Duration,
    state: BackoffState,
    spins: u32,
    yields: u32,
    park: Duration,
}

impl BackoffIdleStrategy {
    /// Default spins before yielding.
    pub const DEFAULT_MAX_SPINS: u32 = 10;
    /// Default yields before parking.
    pub const DEFAULT_MAX_YIELDS: u32 = 5;
    /// Default first park period.
    pub const DEFAULT_MIN_PARK: Duration = Duration::from_micros(1);
    /// Default longest park period.
    pub const DEFAULT_MAX_PARK: Duration = Duration::from_millis(1);

    /// A back-off strategy with explicit limits. `max_park` is raised to `min_park` if lower.
    pub fn new(max_spins: u32, max_yields: u32, min_park: Duration, max_park: Duration) -> Self {
        Self {
            max_spins,
            max_yields,
            min_park,
            max_park: max_park.max(min_park),
            state: BackoffState::NotIdle,
            spins: 0,
            yields: 0,
            park: min_park,
        }
    }
}

impl Default for BackoffIdleStrategy {
    fn default() -> Self {
        Self::new(
            Self::DEFAULT_MAX_SPINS,
            Self::DEFAULT_MAX_YIELDS,
            Self::DEFAULT_MIN_PARK,
            Self::DEFAULT_MAX_PARK,
        )
    }
}

impl IdleStrategy for BackoffIdleStrategy {
    fn idle(&mut self) {
        match self.state {
            BackoffState::NotIdle => {
                self.state = BackoffState::Spinning;
                self.spins = 1;
                hint::spin_loop();
            }
            BackoffState::Spinning => {
                hint::spin_loop();
                self.spins += 1;
                if self.spins > self.max_spins {
                    self.state = BackoffState::Yielding;
                    self.yields = 0;
                }
            }
            BackoffState::Yielding => {
                self.yields += 1;
                if self.yields > self.max_yields {
                    self.state = BackoffState::Parking;
                    self.park = self.min_park;
                } else {
                    thread::yield_now();
                }
            }
            BackoffState::Parking => {
                thread::sleep(self.park);
                self.park = (self.park * 2).min(self.max_park);
            }
        }
    }

    fn reset(&mut self) {
        self.state = BackoffState::NotIdle;
        self.spins = 0;
        self.yields = 0;
        self.park = self.min_park;
    }

    fn alias(&self) -> &'static str {
        "backoff"
    }
}

/// An idle strategy chosen by configuration (a flag or a config file value).
///
/// Textual forms: `busy-spin` (or `spin`), `noop`, `yield`, `sleep` or `sleep:<duration>`
/// (`500us`, `1ms`, `2s`, `100ns`, `1s 500ms`: [`humantime`]'s duration syntax), `backoff` or
/// `backoff:<max_spins>,<max_yields>,<min_park>,<max_park>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleStrategyKind {
    /// [`BusySpinIdleStrategy`].
    BusySpin,
    /// [`NoOpIdleStrategy`].
    NoOp,
    /// [`YieldingIdleStrategy`].
    Yielding,
    /// [`SleepingIdleStrategy`] with this period.
    Sleeping(Duration),
    /// [`BackoffIdleStrategy`] with these limits.
    Backoff {
        /// Spins before yielding.
        max_spins: u32,
        /// Yields before parking.
        max_yields: u32,
        /// First park period.
        min_park: Duration,
        /// Longest park period.
        max_park: Duration,
    },
}

impl Default for IdleStrategyKind {
    fn default() -> Self {
        Self::Backoff {
            max_spins: BackoffIdleStrategy::DEFAULT_MAX_SPINS,
            max_yields: BackoffIdleStrategy::DEFAULT_MAX_YIELDS,
            min_park: BackoffIdleStrategy::DEFAULT_MIN_PARK,
            max_park: BackoffIdleStrategy::DEFAULT_MAX_PARK,
        }
    }
}

impl IdleStrategyKind {
    /// Builds a fresh strategy of this kind.
    pub fn build(&self) -> Box<dyn IdleStrategy + Send> {
        match *self {
            Self::BusySpin => Box::new(BusySpinIdleStrategy),
            Self::NoOp => Box::new(NoOpIdleStrategy),
            Self::Yielding => Box::new(YieldingIdleStrategy),
            Self::Sleeping(period) => Box::new(SleepingIdleStrategy::new(period)),
            Self::Backoff {
                max_spins,
                max_yields,
                min_park,
                max_park,
            } => Box::new(BackoffIdleStrategy::new(
                max_spins, max_yields, min_park, max_park,
            )),
        }
    }
}

/// A textual idle strategy that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid idle strategy '{input}': {reason} (expected busy-spin, noop, yield, sleep[:<duration>] or backoff[:<spins>,<yields>,<min_park>,<max_park>])"
)]
pub struct ParseIdleStrategyError {
    input: String,
    reason: &'static str,
}

/// A duration with its unit (`200us`, `1ms`, `1s`, `1s 500ms`: humantime's syntax).
fn parse_duration(text: &str) -> Option<Duration> {
    humantime::parse_duration(text.trim()).ok()
}

impl FromStr for IdleStrategyKind {
    type Err = ParseIdleStrategyError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason| ParseIdleStrategyError {
            input: input.to_owned(),
            reason,
        };
        let (name, args) = match input.split_once(':') {
            Some((name, args)) => (name.trim(), Some(args)),
            None => (input.trim(), None),
        };
        match (name, args) {
            ("busy-spin" | "spin", None) => Ok(Self::BusySpin),
            ("noop", None) => Ok(Self::NoOp),
            ("yield", None) => Ok(Self::Yielding),
            ("sleep", None) => Ok(Self::Sleeping(Duration::from_millis(1))),
            ("sleep", Some(period)) => parse_duration(period)
                .map(Self::Sleeping)
                .ok_or_else(|| err("bad sleep period")),
            ("backoff", None) => Ok(Self::default()),
            ("backoff", Some(args)) => {
                let parts: Vec<&str> = args.split(',').collect();
                let [spins, yields, min_park, max_park] = parts.as_slice() else {
                    return Err(err("backoff takes four comma-separated values"));
                };
                let max_spins = spins.trim().parse().map_err(|_| err("bad spin count"))?;
                let max_yields = yields.trim().parse().map_err(|_| err("bad yield count"))?;
                let min_park = parse_duration(min_park).ok_or_else(|| err("bad min park"))?;
                let max_park = parse_duration(max_park).ok_or_else(|| err("bad max park"))?;
                Ok(Self::Backoff {
                    max_spins,
                    max_yields,
                    min_park,
                    max_park,
                })
            }
            (_, Some(_)) if matches!(name, "busy-spin" | "spin" | "noop" | "yield") => {
                Err(err("this strategy takes no arguments"))
            }
            _ => Err(err("unknown strategy")),
        }
    }
}

/// The same syntax back (`1ms`, `250us`, `1s 500ms`): humantime's.
fn fmt_duration(d: Duration, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(f, "{}", humantime::format_duration(d))
}

impl fmt::Display for IdleStrategyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BusySpin => f.write_str("busy-spin"),
            Self::NoOp => f.write_str("noop"),
            Self::Yielding => f.write_str("yield"),
            Self::Sleeping(period) => {
                f.write_str("sleep:")?;
                fmt_duration(period, f)
            }
            Self::Backoff {
                max_spins,
                max_yields,
                min_park,
                max_park,
            } => {
                write!(f, "backoff:{max_spins},{max_yields},")?;
                fmt_duration(min_park, f)?;
                f.write_str(",")?;
                fmt_duration(max_park, f)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn parses_every_form_and_prints_it_back() {
        for text in [
            "busy-spin",
            "noop",
            "yield",
            "sleep:1ms",
            "sleep:250us",
            "sleep:1s 500ms",
            "backoff:10,5,1us,1ms",
        ] {
            let kind: IdleStrategyKind = text.parse().unwrap();
            assert_eq!(kind.to_string(), text);
            assert_eq!(kind.to_string().parse::<IdleStrategyKind>().unwrap(), kind);
        }
        assert_eq!(
            "spin".parse::<IdleStrategyKind>().unwrap(),
            IdleStrategyKind::BusySpin
        );
        assert_eq!(
            "backoff".parse::<IdleStrategyKind>().unwrap(),
            IdleStrategyKind::default()
        );
    }

    #[test]
    fn rejects_nonsense_with_a_reason() {
        for text in [
            "",
            "fast",
            "sleep:",
            "sleep:10",
            "sleep:1parsec",
            "sleep:-1ms",
            "backoff:1,2",
            "yield:3",
        ] {
            let err = text.parse::<IdleStrategyKind>().unwrap_err();
            assert!(err.to_string().contains("invalid idle strategy"), "{err}");
        }
    }

    #[test]
    fn backoff_escalates_to_parking_and_resets() {
        let mut idle =
            BackoffIdleStrategy::new(2, 2, Duration::from_micros(50), Duration::from_micros(200));
        for _ in 0..6 {
            idle.idle();
        }
        assert_eq!(idle.state, BackoffState::Parking);
        let started = Instant::now();
        idle.idle();
        assert!(started.elapsed() >= Duration::from_micros(50));
        for _ in 0..10 {
            idle.idle();
        }
        assert_eq!(
            idle.park,
            Duration::from_micros(200),
            "park period is capped"
        );
        idle.idle_work(1);
        assert_eq!(idle.state, BackoffState::NotIdle);
        assert_eq!(idle.park, Duration::from_micros(50));
    }

    #[test]
    fn built_strategies_report_their_alias() {
        let kinds = [
            IdleStrategyKind::BusySpin,
            IdleStrategyKind::NoOp,
            IdleStrategyKind::Yielding,
            IdleStrategyKind::Sleeping(Duration::from_micros(1)),
            IdleStrategyKind::default(),
        ];
        let aliases: Vec<_> = kinds.iter().map(|k| k.build().alias()).collect();
        assert_eq!(aliases, ["busy-spin", "noop", "yield", "sleep", "backoff"]);
        for kind in kinds {
            let mut s = kind.build();
            s.idle_work(0);
            s.idle_work(3);
        }
    }
}
