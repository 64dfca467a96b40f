//! The join barrier (Join Barrier spec §5-§9): a readiness gate over several input streams.
//!
//! It only tells a join stage *when to try*: it never waits for a slot's commit, never holds
//! a producer back, and the frames the stage then reads are validated (seqlock) once each,
//! dropped on failure, like every other read (JB §5, §7.2, §8.3, §9.3). It owns no transport:
//! the stage feeds it what its consumers observed (`observe_*`), the maps its control
//! subscription received (`on_*_announce`), and the clock; it answers with a [`Readiness`].
//! Everything is preallocated in [`JoinBarrier::new`], maps included: applying a map,
//! observing, and checking readiness allocate nothing.

use std::ops::RangeInclusive;

use tensorpool_codec::merge::{
    ClockDomain, SequenceMergeMapAnnounce, TimestampMergeMapAnnounce, TimestampSource,
};

use super::map::{
    MAX_JOIN_INPUTS, MergeMapError, SequenceInput, SequenceMergeMap, SequenceRule, TimestampInput,
    TimestampMergeMap, TimestampRule,
};

/// Which rule decides readiness (JB §7, §8, §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinMode {
    /// Sequence alignment: `ready_seq(out_seq)`; needs a sequence map.
    Sequence,
    /// Timestamp alignment: `ready_time(out_time)`; needs a timestamp map.
    Timestamp,
    /// As-of join on the newest frame of each input: `ready_latest()`. "Newest" is by
    /// sequence (inputs fed with `observe_seq`) or by timestamp (fed with `observe_time`,
    /// needing a timestamp map for its clock domain); one order per stage (JB §9.2).
    LatestValue(LatestOrder),
}

/// How a latest-value join orders each input's frames (JB §9.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatestOrder {
    /// By `FrameDescriptor.seq`.
    Sequence,
    /// By the rule's timestamp, in the map's clock domain.
    Timestamp,
}

impl JoinMode {
    fn name(self) -> &'static str {
        match self {
            JoinMode::Sequence => "sequence",
            JoinMode::Timestamp => "timestamp",
            JoinMode::LatestValue(LatestOrder::Sequence) => "latest-value (by sequence)",
            JoinMode::LatestValue(LatestOrder::Timestamp) => "latest-value (by timestamp)",
        }
    }
}

/// A set of inputs, by their position in the active map (bit `i` = rule `i`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InputSet(u64);

impl InputSet {
    /// Whether rule `index` is in the set.
    pub fn contains(self, index: usize) -> bool {
        index < MAX_JOIN_INPUTS && self.0 & (1 << index) != 0
    }
    /// Number of inputs in the set.
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }
    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// The rule positions in the set, ascending.
    pub fn iter(self) -> impl Iterator<Item = usize> {
        (0..MAX_JOIN_INPUTS).filter(move |&i| self.contains(i))
    }
    /// The raw mask.
    pub fn bits(self) -> u64 {
        self.0
    }
    fn insert(&mut self, index: usize) {
        self.0 |= 1 << index;
    }
}

/// The outcome of a readiness check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinStatus {
    /// Every input that is not absent has what the output needs: the stage may try.
    Ready,
    /// Some input has not reached what the output needs yet (see `missing`).
    Waiting,
    /// No valid map for the output's current epoch: blocked (JB §6.4, §7.3).
    NoMap,
    /// Some input was rejected (non-monotonic timestamps, another clock domain) and blocks
    /// the join until its next epoch or a new map (JB §8.2).
    Rejected,
    /// The output value went backwards (`out_time` and `out_seq` must not decrease, JB §8.2).
    OutputRegressed,
    /// The output time is in another clock domain than the map's (JB §8.2).
    ClockMismatch,
    /// The call does not fit the barrier's mode or map kind (e.g. `ready_time` on a
    /// sequence barrier).
    WrongMode,
}

/// What a readiness check found. Allocation-free; the sets index the map's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// The verdict.
    pub status: JoinStatus,
    /// Inputs that block: not yet at what the output needs.
    pub missing: InputSet,
    /// Inputs past the map's stale timeout, treated as absent: they do not block, and the
    /// stage must not expect a frame from them this time (JB §7.4 "surface absent inputs").
    pub absent: InputSet,
    /// Rejected inputs (they block).
    pub rejected: InputSet,
}

impl Readiness {
    fn of(status: JoinStatus) -> Self {
        Self {
            status,
            missing: InputSet::default(),
            absent: InputSet::default(),
            rejected: InputSet::default(),
        }
    }

    /// Whether the stage may attempt the output.
    pub fn is_ready(&self) -> bool {
        self.status == JoinStatus::Ready
    }
}

/// Why an input was rejected from a timestamp-based join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputRejection {
    /// Its timestamps went backwards (JB §8.2).
    NonMonotonic,
    /// Its timestamps are in another clock domain than the map's (JB §8.2, §14).
    ClockDomain,
}

/// A merge map request the stage should send (JB §10.3, §10.5: a late joiner asks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapRequest {
    /// Output stream.
    pub out_stream_id: u32,
    /// Output epoch.
    pub epoch: u64,
    /// Ask with a `TimestampMergeMapRequest` (else a `SequenceMergeMapRequest`).
    pub timestamp: bool,
}

/// One timestamp of an observed frame: which one, its value (`None`: null), its clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// `FrameDescriptor.timestamp_ns` or `SlotHeader.timestamp_ns`.
    pub source: TimestampSource,
    /// The value; `None` when the field is null.
    pub timestamp_ns: Option<u64>,
    /// The clock it was taken on.
    pub clock_domain: ClockDomain,
}

impl Stamp {
    /// A frame-descriptor timestamp on the monotonic clock.
    pub fn descriptor(timestamp_ns: Option<u64>) -> Self {
        Self {
            source: TimestampSource::FrameDescriptor,
            timestamp_ns,
            clock_domain: ClockDomain::Monotonic,
        }
    }
}

/// Counters of a join barrier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JoinCounters {
    /// Maps applied.
    pub maps_applied: u64,
    /// Maps rejected (invalid rules, other output or epoch, wrong kind).
    pub maps_rejected: u64,
    /// Maps dropped because the output moved to a new epoch.
    pub maps_dropped_on_epoch: u64,
    /// Inputs rejected (non-monotonic timestamps or another clock domain).
    pub inputs_rejected: u64,
    /// Observations without a timestamp (null): they leave the input not ready.
    pub timestamps_missing: u64,
    /// Readiness checks whose output value went backwards.
    pub outputs_regressed: u64,
    /// Readiness checks that found the barrier ready.
    pub ready: u64,
    /// Map requests handed out.
    pub requests: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Seq(SequenceRule),
    Time(TimestampRule, TimestampSource),
}

#[derive(Debug, Clone, Copy)]
struct Input {
    stream_id: u32,
    rule: Rule,
    /// The input's epoch the state below belongs to.
    epoch: Option<u64>,
    observed_seq: Option<u64>,
    processed_seq: Option<u64>,
    observed_time: Option<u64>,
    processed_time: Option<u64>,
    /// The newest frame's sequence (latest-value selection), while not invalidated.
    latest_seq: Option<u64>,
    last_observed_ns: Option<u64>,
    rejected: Option<InputRejection>,
}

impl Input {
    const EMPTY: Input = Input {
        stream_id: 0,
        rule: Rule::Seq(SequenceRule::Offset(0)),
        epoch: None,
        observed_seq: None,
        processed_seq: None,
        observed_time: None,
        processed_time: None,
        latest_seq: None,
        last_observed_ns: None,
        rejected: None,
    };

    fn fresh(stream_id: u32, rule: Rule) -> Self {
        Self {
            stream_id,
            rule,
            ..Self::EMPTY
        }
    }

    fn source(&self) -> Option<TimestampSource> {
        match self.rule {
            Rule::Seq(_) => None,
            Rule::Time(_, s) => Some(s),
        }
    }

    /// Moves to `epoch`, forgetting everything seen in another one (JB §9.1: never use
    /// frames from prior epochs).
    fn adopt_epoch(&mut self, epoch: u64) {
        if self.epoch != Some(epoch) {
            *self = Self {
                epoch: Some(epoch),
                ..Self::fresh(self.stream_id, self.rule)
            };
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MapKind {
    None,
    Sequence,
    Timestamp {
        clock_domain: ClockDomain,
        lateness_ns: u64,
    },
}

/// The join barrier of one output stream. See the module documentation.
#[derive(Debug)]
pub struct JoinBarrier {
    out_stream_id: u32,
    mode: JoinMode,
    use_processed: bool,
    request_interval_ns: u64,
    /// The output's current epoch, once known (from `set_epoch` or the first map).
    epoch: Option<u64>,
    kind: MapKind,
    stale_timeout_ns: Option<u64>,
    applied_ns: u64,
    inputs: Vec<Input>,
    scratch: Vec<Input>,
    last_out: Option<u64>,
    last_request_ns: Option<u64>,
    counters: JoinCounters,
}

/// Default interval between two merge-map requests while a map is missing.
pub const DEFAULT_MAP_REQUEST_INTERVAL_NS: u64 = 1_000_000_000;

impl JoinBarrier {
    /// A barrier for `out_stream_id` in `mode`, without a map (blocked until one arrives).
    pub fn new(out_stream_id: u32, mode: JoinMode) -> Self {
        Self {
            out_stream_id,
            mode,
            use_processed: false,
            request_interval_ns: DEFAULT_MAP_REQUEST_INTERVAL_NS,
            epoch: None,
            kind: MapKind::None,
            stale_timeout_ns: None,
            applied_ns: 0,
            inputs: Vec::with_capacity(MAX_JOIN_INPUTS),
            scratch: Vec::with_capacity(MAX_JOIN_INPUTS),
            last_out: None,
            last_request_ns: None,
            counters: JoinCounters::default(),
        }
    }

    /// Also require the processed cursor (or time) of each input to reach what the output
    /// needs (JB §7.1, §8.1 "if configured"); fed by `processed_seq` / `processed_time`.
    pub fn with_processed_cursor(mut self, on: bool) -> Self {
        self.use_processed = on;
        self
    }

    /// Interval between two map requests while no map is known (default 1 s).
    pub fn with_request_interval_ns(mut self, interval_ns: u64) -> Self {
        self.request_interval_ns = interval_ns;
        self
    }

    /// The output stream.
    pub fn out_stream_id(&self) -> u32 {
        self.out_stream_id
    }

    /// The barrier's mode.
    pub fn mode(&self) -> JoinMode {
        self.mode
    }

    /// The output's current epoch, if known.
    pub fn epoch(&self) -> Option<u64> {
        self.epoch
    }

    /// Whether a valid map for the current epoch is active.
    pub fn has_map(&self) -> bool {
        self.kind != MapKind::None
    }

    /// Number of inputs (rules) of the active map; 0 without one.
    pub fn inputs(&self) -> usize {
        if self.has_map() { self.inputs.len() } else { 0 }
    }

    /// Input stream of rule `index`.
    pub fn input_stream_id(&self, index: usize) -> Option<u32> {
        self.inputs.get(index).map(|i| i.stream_id)
    }

    /// Why rule `index`'s input is rejected, if it is.
    pub fn input_rejection(&self, index: usize) -> Option<InputRejection> {
        self.inputs.get(index).and_then(|i| i.rejected)
    }

    /// The timestamp rule `index` reads (`None` for a sequence rule or no such rule).
    pub fn input_source(&self, index: usize) -> Option<TimestampSource> {
        self.inputs.get(index)?.source()
    }

    /// The clock domain of the active timestamp map (`None` without one).
    pub fn clock_domain(&self) -> Option<ClockDomain> {
        match self.kind {
            MapKind::Timestamp { clock_domain, .. } => Some(clock_domain),
            _ => None,
        }
    }

    /// The counters.
    pub fn counters(&self) -> JoinCounters {
        self.counters
    }

    /// The output moved to `epoch`. A map of another epoch stops applying: the barrier is
    /// blocked until a map for `epoch` arrives (JB §6.4).
    pub fn set_epoch(&mut self, epoch: u64) {
        if self.epoch == Some(epoch) {
            return;
        }
        self.epoch = Some(epoch);
        self.last_out = None;
        self.last_request_ns = None;
        if self.kind != MapKind::None {
            // the rules go; what was observed of the inputs stays for the next map
            self.kind = MapKind::None;
            self.counters.maps_dropped_on_epoch += 1;
        }
    }

    fn check_target(&mut self, out_stream_id: u32, epoch: u64) -> Result<(), MergeMapError> {
        if out_stream_id != self.out_stream_id {
            return Err(MergeMapError::WrongOutputStream {
                expected: self.out_stream_id,
                got: out_stream_id,
            });
        }
        if let Some(current) = self.epoch
            && current != epoch
        {
            return Err(MergeMapError::WrongEpoch {
                out_stream_id,
                current,
                got: epoch,
            });
        }
        Ok(())
    }

    fn reject(&mut self, e: MergeMapError) -> Result<(), MergeMapError> {
        self.counters.maps_rejected += 1;
        Err(e)
    }

    /// Installs the rules in `rules` (validated): keeps what was observed of an input the
    /// old map had too (same stream and timestamp source), starts the others fresh.
    fn install(
        &mut self,
        epoch: u64,
        stale_timeout_ns: Option<u64>,
        kind: MapKind,
        rules: impl Iterator<Item = (u32, Rule)>,
        now_ns: u64,
    ) {
        std::mem::swap(&mut self.inputs, &mut self.scratch);
        self.inputs.clear();
        for (stream_id, rule) in rules {
            let mut input = Input::fresh(stream_id, rule);
            let source = input.source();
            if let Some(old) = self
                .scratch
                .iter()
                .find(|o| o.stream_id == stream_id && o.source() == source)
            {
                input = Input { rule, ..*old };
                if matches!(kind, MapKind::Timestamp { .. }) && old.rejected.is_some() {
                    // a new map is a new chance for a rejected input (JB §6.2 "until replaced")
                    input.rejected = None;
                    input.observed_time = None;
                    input.processed_time = None;
                }
            }
            self.inputs.push(input);
        }
        self.scratch.clear();
        self.epoch = Some(epoch);
        self.kind = kind;
        self.stale_timeout_ns = stale_timeout_ns;
        self.applied_ns = now_ns;
        self.counters.maps_applied += 1;
    }

    fn mode_accepts(&self, timestamp_map: bool) -> Result<(), MergeMapError> {
        let ok = match self.mode {
            JoinMode::Sequence => !timestamp_map,
            JoinMode::Timestamp | JoinMode::LatestValue(LatestOrder::Timestamp) => timestamp_map,
            JoinMode::LatestValue(LatestOrder::Sequence) => true,
        };
        if ok {
            Ok(())
        } else {
            Err(MergeMapError::WrongKind {
                mode: self.mode.name(),
                got: if timestamp_map {
                    "timestamp"
                } else {
                    "sequence"
                },
            })
        }
    }

    /// Applies a received `SequenceMergeMapAnnounce`: validated first, in place, without
    /// allocating. On error the previous state is kept if the map was for another output,
    /// epoch or kind; an invalid map for this output and epoch leaves the barrier without a
    /// map until a valid one replaces it (JB §6.2).
    pub fn on_sequence_announce(
        &mut self,
        msg: &SequenceMergeMapAnnounce<'_>,
        now_ns: u64,
    ) -> Result<(), MergeMapError> {
        if let Err(e) = self
            .check_target(msg.out_stream_id, msg.epoch)
            .and_then(|()| self.mode_accepts(false))
        {
            return self.reject(e);
        }
        let probe = SequenceMergeMap {
            out_stream_id: msg.out_stream_id,
            epoch: msg.epoch,
            stale_timeout_ns: msg.stale_timeout_ns,
            inputs: Vec::new(),
        };
        if let Err(e) = validate_seq_rules(&probe, msg) {
            self.invalidate_map();
            return self.reject(e);
        }
        self.install(
            msg.epoch,
            msg.stale_timeout_ns,
            MapKind::Sequence,
            msg.rules
                .iter()
                .enumerate()
                .filter_map(|(index, r)| probe.check_rule(index, &r).ok())
                .map(|i| (i.stream_id, Rule::Seq(i.rule))),
            now_ns,
        );
        Ok(())
    }

    /// Applies a received `TimestampMergeMapAnnounce` (see [`Self::on_sequence_announce`]).
    pub fn on_timestamp_announce(
        &mut self,
        msg: &TimestampMergeMapAnnounce<'_>,
        now_ns: u64,
    ) -> Result<(), MergeMapError> {
        if let Err(e) = self
            .check_target(msg.out_stream_id, msg.epoch)
            .and_then(|()| self.mode_accepts(true))
        {
            return self.reject(e);
        }
        let probe = TimestampMergeMap {
            out_stream_id: msg.out_stream_id,
            epoch: msg.epoch,
            stale_timeout_ns: msg.stale_timeout_ns,
            clock_domain: msg.clock_domain,
            lateness_ns: msg.lateness_ns.unwrap_or(0),
            inputs: Vec::new(),
        };
        if let Err(e) = validate_time_rules(&probe, msg) {
            self.invalidate_map();
            return self.reject(e);
        }
        self.install(
            msg.epoch,
            msg.stale_timeout_ns,
            MapKind::Timestamp {
                clock_domain: msg.clock_domain,
                lateness_ns: msg.lateness_ns.unwrap_or(0),
            },
            msg.rules
                .iter()
                .enumerate()
                .filter_map(|(index, r)| probe.check_rule(index, &r).ok())
                .map(|i| (i.stream_id, Rule::Time(i.rule, i.source))),
            now_ns,
        );
        Ok(())
    }

    /// Applies a sequence map built in code (validated like a received one).
    pub fn apply_sequence_map(
        &mut self,
        map: &SequenceMergeMap,
        now_ns: u64,
    ) -> Result<(), MergeMapError> {
        if let Err(e) = self
            .check_target(map.out_stream_id, map.epoch)
            .and_then(|()| self.mode_accepts(false))
            .and_then(|()| map.validate())
        {
            return self.reject(e);
        }
        self.install(
            map.epoch,
            map.stale_timeout_ns,
            MapKind::Sequence,
            map.inputs
                .iter()
                .map(|i: &SequenceInput| (i.stream_id, Rule::Seq(i.rule))),
            now_ns,
        );
        Ok(())
    }

    /// Applies a timestamp map built in code (validated like a received one).
    pub fn apply_timestamp_map(
        &mut self,
        map: &TimestampMergeMap,
        now_ns: u64,
    ) -> Result<(), MergeMapError> {
        if let Err(e) = self
            .check_target(map.out_stream_id, map.epoch)
            .and_then(|()| self.mode_accepts(true))
            .and_then(|()| map.validate())
        {
            return self.reject(e);
        }
        self.install(
            map.epoch,
            map.stale_timeout_ns,
            MapKind::Timestamp {
                clock_domain: map.clock_domain,
                lateness_ns: map.lateness_ns,
            },
            map.inputs
                .iter()
                .map(|i: &TimestampInput| (i.stream_id, Rule::Time(i.rule, i.source))),
            now_ns,
        );
        Ok(())
    }

    fn invalidate_map(&mut self) {
        self.kind = MapKind::None;
    }

    /// The request to send while no map is active for a known epoch, at most once per
    /// request interval (JB §10.3: a late joiner asks the authority).
    pub fn map_request(&mut self, now_ns: u64) -> Option<MapRequest> {
        if self.kind != MapKind::None {
            return None;
        }
        let epoch = self.epoch?;
        if let Some(last) = self.last_request_ns
            && now_ns.saturating_sub(last) < self.request_interval_ns
        {
            return None;
        }
        self.last_request_ns = Some(now_ns);
        self.counters.requests += 1;
        Some(MapRequest {
            out_stream_id: self.out_stream_id,
            epoch,
            timestamp: matches!(
                self.mode,
                JoinMode::Timestamp | JoinMode::LatestValue(LatestOrder::Timestamp)
            ),
        })
    }

    /// A frame `seq` of `stream_id`'s `epoch` was observed (its `FrameDescriptor`) at
    /// local monotonic time `now_ns`. Returns whether a rule uses that stream.
    pub fn observe_seq(&mut self, stream_id: u32, epoch: u64, seq: u64, now_ns: u64) -> bool {
        let mut used = false;
        for input in self.inputs.iter_mut().filter(|i| i.stream_id == stream_id) {
            used = true;
            input.adopt_epoch(epoch);
            input.observed_seq = Some(input.observed_seq.map_or(seq, |o| o.max(seq)));
            if input.latest_seq.is_none_or(|l| seq >= l) {
                input.latest_seq = Some(seq);
            }
            input.last_observed_ns = Some(now_ns);
        }
        used
    }

    /// A frame of `stream_id`'s `epoch` with sequence `seq` and the timestamp `stamp` was
    /// observed. A null timestamp leaves the input
    /// not ready; a timestamp that goes backwards, or one in another clock domain than the
    /// map's, rejects the input until its next epoch or a new map (JB §8.2). Returns
    /// whether a rule uses that stream and source.
    pub fn observe_time(
        &mut self,
        stream_id: u32,
        epoch: u64,
        seq: u64,
        stamp: Stamp,
        now_ns: u64,
    ) -> bool {
        let Stamp {
            source,
            timestamp_ns,
            clock_domain,
        } = stamp;
        let MapKind::Timestamp {
            clock_domain: map_clock,
            ..
        } = self.kind
        else {
            // without a timestamp map there is no clock domain to check against
            return false;
        };
        let mut used = false;
        for input in self
            .inputs
            .iter_mut()
            .filter(|i| i.stream_id == stream_id && i.source() == Some(source))
        {
            used = true;
            input.adopt_epoch(epoch);
            if input.rejected.is_some() {
                continue;
            }
            if map_clock != clock_domain {
                input.rejected = Some(InputRejection::ClockDomain);
                self.counters.inputs_rejected += 1;
                continue;
            }
            let Some(t) = timestamp_ns else {
                self.counters.timestamps_missing += 1;
                continue;
            };
            if input.observed_time.is_some_and(|o| t < o) {
                input.rejected = Some(InputRejection::NonMonotonic);
                self.counters.inputs_rejected += 1;
                continue;
            }
            input.observed_time = Some(t);
            if input.latest_seq.is_none_or(|l| seq >= l) {
                input.latest_seq = Some(seq);
            }
            input.last_observed_ns = Some(now_ns);
        }
        used
    }

    /// The stage processed `seq` of `stream_id`'s `epoch` (the processed cursor).
    pub fn processed_seq(&mut self, stream_id: u32, epoch: u64, seq: u64) {
        for input in self.inputs.iter_mut().filter(|i| i.stream_id == stream_id) {
            input.adopt_epoch(epoch);
            input.processed_seq = Some(input.processed_seq.map_or(seq, |p| p.max(seq)));
        }
    }

    /// The stage processed a frame of `stream_id`'s `epoch` with the `source` timestamp
    /// `timestamp_ns` (the processed time; a decrease rejects the input, JB §8.2).
    pub fn processed_time(
        &mut self,
        stream_id: u32,
        epoch: u64,
        source: TimestampSource,
        timestamp_ns: u64,
    ) {
        for input in self
            .inputs
            .iter_mut()
            .filter(|i| i.stream_id == stream_id && i.source() == Some(source))
        {
            input.adopt_epoch(epoch);
            if input.processed_time.is_some_and(|p| timestamp_ns < p) {
                if input.rejected.is_none() {
                    self.counters.inputs_rejected += 1;
                }
                input.rejected = Some(InputRejection::NonMonotonic);
                continue;
            }
            input.processed_time = Some(timestamp_ns);
        }
    }

    /// The latest frame selected for `stream_id` was overwritten or failed validation: the
    /// input is absent until a newer frame is observed (JB §9.1).
    pub fn invalidate(&mut self, stream_id: u32) {
        for input in self.inputs.iter_mut().filter(|i| i.stream_id == stream_id) {
            input.latest_seq = None;
        }
    }

    /// The sequence of the newest valid frame of rule `index`'s input in its current epoch,
    /// with that epoch (latest-value selection).
    pub fn latest(&self, index: usize) -> Option<(u64, u64)> {
        let i = self.inputs.get(index)?;
        Some((i.epoch?, i.latest_seq?))
    }

    /// The input sequences rule `index` needs for `out_seq` (a window rule's whole range;
    /// the stage tolerates any of them being gone, JB §6.2.2).
    pub fn input_seqs(&self, index: usize, out_seq: u64) -> Option<RangeInclusive<u64>> {
        match self.inputs.get(index)?.rule {
            Rule::Seq(rule) => rule.input_range(out_seq),
            Rule::Time(..) => None,
        }
    }

    /// The input times rule `index` needs for `out_time`.
    pub fn input_times(&self, index: usize, out_time: u64) -> Option<RangeInclusive<u64>> {
        match self.inputs.get(index)?.rule {
            Rule::Time(rule, _) => rule.input_range(out_time),
            Rule::Seq(_) => None,
        }
    }

    fn stale(&self, input: &Input, now_ns: u64) -> bool {
        let Some(timeout) = self.stale_timeout_ns else {
            return false;
        };
        let since = input.last_observed_ns.unwrap_or(self.applied_ns);
        now_ns.saturating_sub(since) > timeout
    }

    fn accept_out(&mut self, out: u64) -> bool {
        if self.last_out.is_some_and(|l| out < l) {
            self.counters.outputs_regressed += 1;
            return false;
        }
        self.last_out = Some(out);
        true
    }

    fn finish(&mut self, mut r: Readiness) -> Readiness {
        r.status = if !r.rejected.is_empty() {
            JoinStatus::Rejected
        } else if !r.missing.is_empty() {
            JoinStatus::Waiting
        } else {
            self.counters.ready += 1;
            JoinStatus::Ready
        };
        r
    }

    /// May the stage attempt output `out_seq`? (JB §7.1, §7.4; `out_seq` must not decrease.)
    pub fn ready_seq(&mut self, out_seq: u64, now_ns: u64) -> Readiness {
        if self.mode != JoinMode::Sequence {
            return Readiness::of(JoinStatus::WrongMode);
        }
        if self.kind == MapKind::None {
            return Readiness::of(JoinStatus::NoMap);
        }
        if !self.accept_out(out_seq) {
            return Readiness::of(JoinStatus::OutputRegressed);
        }
        let mut r = Readiness::of(JoinStatus::Waiting);
        for (index, input) in self.inputs.iter().enumerate() {
            let Rule::Seq(rule) = input.rule else {
                continue;
            };
            let Some(required) = rule.required_in_seq(out_seq) else {
                r.missing.insert(index);
                continue;
            };
            let ok = input.observed_seq.is_some_and(|o| o >= required)
                && (!self.use_processed || input.processed_seq.is_some_and(|p| p >= required));
            if !ok {
                if self.stale(input, now_ns) {
                    r.absent.insert(index);
                } else {
                    r.missing.insert(index);
                }
            }
        }
        self.finish(r)
    }

    /// May the stage attempt the output at `out_time` (in `clock_domain`)? (JB §8.1, §7.4;
    /// `out_time` must not decrease.)
    pub fn ready_time(
        &mut self,
        out_time: u64,
        clock_domain: ClockDomain,
        now_ns: u64,
    ) -> Readiness {
        if self.mode != JoinMode::Timestamp {
            return Readiness::of(JoinStatus::WrongMode);
        }
        let MapKind::Timestamp {
            clock_domain: map_clock,
            lateness_ns,
        } = self.kind
        else {
            return Readiness::of(JoinStatus::NoMap);
        };
        if clock_domain != map_clock {
            return Readiness::of(JoinStatus::ClockMismatch);
        }
        if !self.accept_out(out_time) {
            return Readiness::of(JoinStatus::OutputRegressed);
        }
        let mut r = Readiness::of(JoinStatus::Waiting);
        for (index, input) in self.inputs.iter().enumerate() {
            if input.rejected.is_some() {
                r.rejected.insert(index);
                continue;
            }
            let Rule::Time(rule, _) = input.rule else {
                continue;
            };
            let Some(required) = rule.required_observed_time(out_time, lateness_ns) else {
                r.missing.insert(index);
                continue;
            };
            let ok = input.observed_time.is_some_and(|o| o >= required)
                && (!self.use_processed || input.processed_time.is_some_and(|p| p >= required));
            if !ok {
                if self.stale(input, now_ns) {
                    r.absent.insert(index);
                } else {
                    r.missing.insert(index);
                }
            }
        }
        self.finish(r)
    }

    /// May the stage attempt an as-of output now? Ready when every input has a valid
    /// newest frame in its current epoch; stale inputs are absent (JB §9.1, §7.4).
    pub fn ready_latest(&mut self, now_ns: u64) -> Readiness {
        if !matches!(self.mode, JoinMode::LatestValue(_)) {
            return Readiness::of(JoinStatus::WrongMode);
        }
        if self.kind == MapKind::None {
            return Readiness::of(JoinStatus::NoMap);
        }
        let mut r = Readiness::of(JoinStatus::Waiting);
        for (index, input) in self.inputs.iter().enumerate() {
            if input.rejected.is_some() {
                r.rejected.insert(index);
                continue;
            }
            if self.stale(input, now_ns) {
                r.absent.insert(index);
            } else if input.latest_seq.is_none() {
                r.missing.insert(index);
            }
        }
        self.finish(r)
    }
}

fn validate_seq_rules(
    probe: &SequenceMergeMap,
    msg: &SequenceMergeMapAnnounce<'_>,
) -> Result<(), MergeMapError> {
    probe.check_count(msg.rules.len())?;
    for (index, r) in msg.rules.iter().enumerate() {
        probe.check_rule(index, &r)?;
    }
    Ok(())
}

fn validate_time_rules(
    probe: &TimestampMergeMap,
    msg: &TimestampMergeMapAnnounce<'_>,
) -> Result<(), MergeMapError> {
    probe.check_count(msg.rules.len())?;
    for (index, r) in msg.rules.iter().enumerate() {
        probe.check_rule(index, &r)?;
    }
    Ok(())
}
