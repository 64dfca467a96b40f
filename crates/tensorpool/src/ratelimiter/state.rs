//! The policies and the per-mapping state the core owns.

/// One mapping's selection rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Every frame (`max_rate_hz = 0`, no decimation).
    Unlimited,
    /// At most `hz` frames per second: two forwarded frames are at least
    /// `ceil(1e9 / hz)` ns apart on the rate limiter's monotonic clock; within an interval
    /// the newest frame wins and is forwarded when the next slot opens (RateLimiter §4).
    MaxRate {
        /// Frames per second, at least 1.
        hz: u32,
    },
    /// The frames whose sequence is a multiple of `n` (`seq % n == 0`). Gaps never shift the
    /// phase: a lost multiple is not replaced by a neighbour.
    EveryNth {
        /// The ratio, at least 1 (1 = every frame).
        n: u64,
    },
}

impl Policy {
    /// The minimum spacing of forwarded frames (ns), for [`Policy::MaxRate`].
    pub fn interval_ns(self) -> Option<u64> {
        match self {
            Policy::MaxRate { hz } if hz > 0 => Some(1_000_000_000u64.div_ceil(u64::from(hz))),
            _ => None,
        }
    }

    /// A short text for logs and `tp ratelimit`.
    pub fn describe(self) -> String {
        match self {
            Policy::Unlimited => "every frame".into(),
            Policy::MaxRate { hz } => format!("at most {hz} Hz"),
            Policy::EveryNth { n } => format!("every {n}th sequence"),
        }
    }
}

/// What to do with a source frame now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Copy it into the destination and publish it now.
    Forward,
    /// Copy it aside: it is the newest candidate for the next rate slot (replacing the one
    /// held before, which is counted as filtered).
    Hold,
    /// Not selected (counted).
    Drop,
}

/// The core's answer to one source frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// What to do with the frame.
    pub action: Action,
    /// The frame starts a new source epoch: the destination moves to a new epoch before
    /// this frame is forwarded (the source's sequences restart).
    pub remap: bool,
}

/// A frame held for the next rate slot (its bytes are with the agent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// Source sequence.
    pub seq: u64,
}

/// One mapping's policy state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lane {
    /// The selection rule.
    pub policy: Policy,
    /// Source epoch of the frames seen last (`None` before the first).
    pub epoch: Option<u64>,
    /// When the last frame was forwarded (`None`: the next one is eligible at once).
    pub last_forward_ns: Option<u64>,
    /// Sequence of the last frame forwarded in this epoch.
    pub last_seq: Option<u64>,
    /// The newest candidate waiting for the next rate slot.
    pub held: Option<Held>,
}

impl Lane {
    /// A lane that has seen nothing.
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            epoch: None,
            last_forward_ns: None,
            last_seq: None,
            held: None,
        }
    }

    /// Whether a frame may be forwarded at `now_ns` under the rate rule.
    pub fn slot_open(&self, now_ns: u64) -> bool {
        match (self.policy.interval_ns(), self.last_forward_ns) {
            (Some(i), Some(last)) => now_ns >= last.saturating_add(i),
            _ => true,
        }
    }
}
