//! Merge maps (Join Barrier spec §6, §10): the rules that tell a join stage which input
//! frames an output needs, decoded from and encoded to the schema-903 announces and
//! validated once, when a map arrives (a map is low-rate configuration; the barrier's hot
//! path never sees an unvalidated rule).

use std::ops::RangeInclusive;

use tensorpool_codec::Group;
use tensorpool_codec::merge::{
    ClockDomain, MergeRuleType, MergeTimeRuleType, SequenceMergeMapAnnounce, SequenceMergeRule,
    TimestampMergeMapAnnounce, TimestampMergeRule, TimestampSource,
};

/// Most rules (inputs) one merge map may carry here. Sets of inputs are reported as 64-bit
/// masks ([`super::InputSet`]) so that a readiness check allocates nothing; a map with more
/// rules is rejected with [`MergeMapError::TooManyRules`].
pub const MAX_JOIN_INPUTS: usize = 64;

/// Why a merge map was rejected. A rejected map leaves the barrier without a map for that
/// output (JB §6.2: "treated as invalid until replaced").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeMapError {
    /// The map has no rule.
    #[error("merge map for output stream {out_stream_id} epoch {epoch} has no rules")]
    NoRules {
        /// Output stream of the map.
        out_stream_id: u32,
        /// Epoch of the map.
        epoch: u64,
    },
    /// More rules than [`MAX_JOIN_INPUTS`].
    #[error(
        "merge map for output stream {out_stream_id} has {count} rules; at most {MAX_JOIN_INPUTS} are supported"
    )]
    TooManyRules {
        /// Output stream of the map.
        out_stream_id: u32,
        /// Rules in the map.
        count: usize,
    },
    /// An OFFSET / OFFSET_NS rule without its offset, or with a window (JB §6.2, §6.3).
    #[error(
        "merge map for output stream {out_stream_id}: rule {index} (input stream {input_stream_id}) is an offset rule, so it needs an offset and no window"
    )]
    BadOffsetRule {
        /// Output stream of the map.
        out_stream_id: u32,
        /// Position of the rule in the map.
        index: usize,
        /// Input stream of the rule.
        input_stream_id: u32,
    },
    /// A WINDOW / WINDOW_NS rule without a positive window, or with an offset (JB §6.2,
    /// §6.3).
    #[error(
        "merge map for output stream {out_stream_id}: rule {index} (input stream {input_stream_id}) is a window rule, so it needs a positive window and no offset"
    )]
    BadWindowRule {
        /// Output stream of the map.
        out_stream_id: u32,
        /// Position of the rule in the map.
        index: usize,
        /// Input stream of the rule.
        input_stream_id: u32,
    },
    /// The map is for another output stream than the barrier's.
    #[error("merge map is for output stream {got}, this join stage produces {expected}")]
    WrongOutputStream {
        /// The barrier's output stream.
        expected: u32,
        /// The map's output stream.
        got: u32,
    },
    /// The map is for another epoch than the output's current one (JB §6.4).
    #[error(
        "merge map is for epoch {got} of output stream {out_stream_id}, which is at epoch {current}"
    )]
    WrongEpoch {
        /// Output stream.
        out_stream_id: u32,
        /// The output's current epoch.
        current: u64,
        /// The map's epoch.
        got: u64,
    },
    /// A sequence map given to a timestamp barrier or the reverse.
    #[error("a {got} merge map cannot drive a {mode} join barrier")]
    WrongKind {
        /// The barrier's mode.
        mode: &'static str,
        /// The map's kind.
        got: &'static str,
    },
}

/// A map has 1 to [`MAX_JOIN_INPUTS`] rules (JB §6.2: "one or more").
fn check_count(out_stream_id: u32, epoch: u64, count: usize) -> Result<(), MergeMapError> {
    if count == 0 {
        return Err(MergeMapError::NoRules {
            out_stream_id,
            epoch,
        });
    }
    if count > MAX_JOIN_INPUTS {
        return Err(MergeMapError::TooManyRules {
            out_stream_id,
            count,
        });
    }
    Ok(())
}

/// How one input's sequence follows the output's (JB §6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceRule {
    /// `in_seq = out_seq + offset`.
    Offset(i32),
    /// `in_seq` in `[out_seq - n + 1, out_seq]`; `n > 0`.
    Window(u32),
}

impl SequenceRule {
    /// The input sequences an output sequence needs, or `None` while the rule cannot be
    /// ready for it (a negative `out_seq + offset`, `out_seq + 1 < n`, or past `u64::MAX`).
    pub fn input_range(self, out_seq: u64) -> Option<RangeInclusive<u64>> {
        match self {
            SequenceRule::Offset(offset) => {
                let seq = if offset >= 0 {
                    out_seq.checked_add(u64::from(offset.unsigned_abs()))?
                } else {
                    out_seq.checked_sub(u64::from(offset.unsigned_abs()))?
                };
                Some(seq..=seq)
            }
            SequenceRule::Window(n) => {
                let n = u64::from(n);
                if n == 0 || out_seq.checked_add(1)? < n {
                    return None;
                }
                Some(out_seq + 1 - n..=out_seq)
            }
        }
    }

    /// The input sequence readiness waits for: the range's upper bound (JB §6.2.2).
    pub fn required_in_seq(self, out_seq: u64) -> Option<u64> {
        self.input_range(out_seq).map(|r| *r.end())
    }
}

/// One input of a sequence merge map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequenceInput {
    /// Input stream.
    pub stream_id: u32,
    /// How its sequence follows the output's.
    pub rule: SequenceRule,
}

/// A validated sequence merge map (JB §6.2, §10.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceMergeMap {
    /// Output stream.
    pub out_stream_id: u32,
    /// Output epoch the map belongs to.
    pub epoch: u64,
    /// How long an input may go without a frame before it is treated as absent (JB §7.4);
    /// `None`: block on it.
    pub stale_timeout_ns: Option<u64>,
    /// One rule per input, in announce order.
    pub inputs: Vec<SequenceInput>,
}

impl SequenceMergeMap {
    /// Validates a received announce (every rule's parameter pairing, 1 to
    /// [`MAX_JOIN_INPUTS`] rules).
    pub fn from_announce(msg: &SequenceMergeMapAnnounce<'_>) -> Result<Self, MergeMapError> {
        let map = Self {
            out_stream_id: msg.out_stream_id,
            epoch: msg.epoch,
            stale_timeout_ns: msg.stale_timeout_ns,
            inputs: Vec::new(),
        };
        let count = msg.rules.len();
        map.check_count(count)?;
        let mut inputs = Vec::with_capacity(count);
        for (index, r) in msg.rules.iter().enumerate() {
            inputs.push(map.check_rule(index, &r)?);
        }
        Ok(Self { inputs, ..map })
    }

    pub(super) fn check_count(&self, count: usize) -> Result<(), MergeMapError> {
        check_count(self.out_stream_id, self.epoch, count)
    }

    pub(super) fn check_rule(
        &self,
        index: usize,
        r: &SequenceMergeRule,
    ) -> Result<SequenceInput, MergeMapError> {
        let rule = match (r.rule_type, r.offset, r.window_size) {
            (MergeRuleType::Offset, Some(offset), None) => SequenceRule::Offset(offset),
            (MergeRuleType::Window, None, Some(n)) if n > 0 => SequenceRule::Window(n),
            (MergeRuleType::Offset, ..) => {
                return Err(MergeMapError::BadOffsetRule {
                    out_stream_id: self.out_stream_id,
                    index,
                    input_stream_id: r.input_stream_id,
                });
            }
            (MergeRuleType::Window, ..) => {
                return Err(MergeMapError::BadWindowRule {
                    out_stream_id: self.out_stream_id,
                    index,
                    input_stream_id: r.input_stream_id,
                });
            }
        };
        Ok(SequenceInput {
            stream_id: r.input_stream_id,
            rule,
        })
    }

    /// Checks a map built in code the way a received one is checked.
    pub fn validate(&self) -> Result<(), MergeMapError> {
        self.check_count(self.inputs.len())?;
        for (index, input) in self.inputs.iter().enumerate() {
            self.check_rule(index, &to_wire_rule(input))?;
        }
        Ok(())
    }

    /// The announce an authority publishes for this map.
    pub fn to_announce(&self) -> SequenceMergeMapAnnounce<'static> {
        SequenceMergeMapAnnounce {
            out_stream_id: self.out_stream_id,
            epoch: self.epoch,
            stale_timeout_ns: self.stale_timeout_ns,
            rules: Group::Owned(self.inputs.iter().map(to_wire_rule).collect()),
        }
    }
}

fn to_wire_rule(input: &SequenceInput) -> SequenceMergeRule {
    let (rule_type, offset, window_size) = match input.rule {
        SequenceRule::Offset(o) => (MergeRuleType::Offset, Some(o), None),
        SequenceRule::Window(n) => (MergeRuleType::Window, None, Some(n)),
    };
    SequenceMergeRule {
        input_stream_id: input.stream_id,
        rule_type,
        offset,
        window_size,
    }
}

/// How one input's timestamps follow the output time (JB §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampRule {
    /// `in_time = out_time + offset_ns`.
    OffsetNs(i64),
    /// `in_time` in `[out_time - window_ns, out_time]`; `window_ns > 0`.
    WindowNs(u64),
}

impl TimestampRule {
    /// The input times an output time needs, or `None` while the rule cannot be ready
    /// (a negative `out_time + offset_ns`, `out_time < window_ns`, or past `u64::MAX`).
    pub fn input_range(self, out_time: u64) -> Option<RangeInclusive<u64>> {
        match self {
            TimestampRule::OffsetNs(offset) => {
                let t = if offset >= 0 {
                    out_time.checked_add(offset.unsigned_abs())?
                } else {
                    out_time.checked_sub(offset.unsigned_abs())?
                };
                Some(t..=t)
            }
            TimestampRule::WindowNs(w) => {
                if w == 0 || out_time < w {
                    return None;
                }
                Some(out_time - w..=out_time)
            }
        }
    }

    /// The observed time readiness waits for: the range's upper bound less the map's
    /// lateness (JB §8.1; lateness applies only here).
    pub fn required_observed_time(self, out_time: u64, lateness_ns: u64) -> Option<u64> {
        self.input_range(out_time)
            .map(|r| r.end().saturating_sub(lateness_ns))
    }
}

/// One input of a timestamp merge map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampInput {
    /// Input stream.
    pub stream_id: u32,
    /// How its timestamps follow the output time.
    pub rule: TimestampRule,
    /// Which timestamp of the input's frames is compared.
    pub source: TimestampSource,
}

/// A validated timestamp merge map (JB §6.3, §10.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampMergeMap {
    /// Output stream.
    pub out_stream_id: u32,
    /// Output epoch the map belongs to.
    pub epoch: u64,
    /// How long an input may go without a frame before it is treated as absent (JB §7.4).
    pub stale_timeout_ns: Option<u64>,
    /// The one clock of every timestamp of the join.
    pub clock_domain: ClockDomain,
    /// Lateness budget; an absent `latenessNs` is 0 (JB §8.2).
    pub lateness_ns: u64,
    /// One rule per input, in announce order.
    pub inputs: Vec<TimestampInput>,
}

impl TimestampMergeMap {
    /// Validates a received announce.
    pub fn from_announce(msg: &TimestampMergeMapAnnounce<'_>) -> Result<Self, MergeMapError> {
        let map = Self {
            out_stream_id: msg.out_stream_id,
            epoch: msg.epoch,
            stale_timeout_ns: msg.stale_timeout_ns,
            clock_domain: msg.clock_domain,
            lateness_ns: msg.lateness_ns.unwrap_or(0),
            inputs: Vec::new(),
        };
        let count = msg.rules.len();
        map.check_count(count)?;
        let mut inputs = Vec::with_capacity(count);
        for (index, r) in msg.rules.iter().enumerate() {
            inputs.push(map.check_rule(index, &r)?);
        }
        Ok(Self { inputs, ..map })
    }

    pub(super) fn check_count(&self, count: usize) -> Result<(), MergeMapError> {
        check_count(self.out_stream_id, self.epoch, count)
    }

    pub(super) fn check_rule(
        &self,
        index: usize,
        r: &TimestampMergeRule,
    ) -> Result<TimestampInput, MergeMapError> {
        let rule = match (r.rule_type, r.offset_ns, r.window_ns) {
            (MergeTimeRuleType::OffsetNs, Some(o), None) => TimestampRule::OffsetNs(o),
            (MergeTimeRuleType::WindowNs, None, Some(w)) if w > 0 => TimestampRule::WindowNs(w),
            (MergeTimeRuleType::OffsetNs, ..) => {
                return Err(MergeMapError::BadOffsetRule {
                    out_stream_id: self.out_stream_id,
                    index,
                    input_stream_id: r.input_stream_id,
                });
            }
            (MergeTimeRuleType::WindowNs, ..) => {
                return Err(MergeMapError::BadWindowRule {
                    out_stream_id: self.out_stream_id,
                    index,
                    input_stream_id: r.input_stream_id,
                });
            }
        };
        Ok(TimestampInput {
            stream_id: r.input_stream_id,
            rule,
            source: r.timestamp_source,
        })
    }

    /// Checks a map built in code the way a received one is checked.
    pub fn validate(&self) -> Result<(), MergeMapError> {
        self.check_count(self.inputs.len())?;
        for (index, input) in self.inputs.iter().enumerate() {
            self.check_rule(index, &to_wire_time_rule(input))?;
        }
        Ok(())
    }

    /// The announce an authority publishes for this map (`latenessNs` always present).
    pub fn to_announce(&self) -> TimestampMergeMapAnnounce<'static> {
        TimestampMergeMapAnnounce {
            out_stream_id: self.out_stream_id,
            epoch: self.epoch,
            stale_timeout_ns: self.stale_timeout_ns,
            clock_domain: self.clock_domain,
            lateness_ns: Some(self.lateness_ns),
            rules: Group::Owned(self.inputs.iter().map(to_wire_time_rule).collect()),
        }
    }
}

fn to_wire_time_rule(input: &TimestampInput) -> TimestampMergeRule {
    let (rule_type, offset_ns, window_ns) = match input.rule {
        TimestampRule::OffsetNs(o) => (MergeTimeRuleType::OffsetNs, Some(o), None),
        TimestampRule::WindowNs(w) => (MergeTimeRuleType::WindowNs, None, Some(w)),
    };
    TimestampMergeRule {
        input_stream_id: input.stream_id,
        rule_type,
        timestamp_source: input.source,
        offset_ns,
        window_ns,
    }
}
