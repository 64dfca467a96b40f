//! The join stage (Join Barrier spec §5-§10): N input consumers, one [`JoinBarrier`], the
//! merge-map announces and requests of the control stream, and the joined sets handed to the
//! application; [`JoinOutput`] republishes a set as one frame with its `TraceLinkSet`
//! (TraceLink spec §7, §9).
//!
//! The stage uses the consumers and the producer as any application does (through
//! [`crate::prelude`]): every frame of a set is read again by seq
//! ([`Consumer::read_frame`], validated under the seqlock) after the barrier said the set may
//! be attempted, and rechecked after the application used it. A set whose frame is gone is
//! never delivered; it is counted (`JoinStageCounters::incomplete`).

use std::ops::RangeInclusive;

use tensorpool_aeron::{Publication, Subscription};
use tensorpool_codec::Message;
use tensorpool_codec::merge::{
    self, ClockDomain, SequenceMergeMapAnnounce, SequenceMergeMapRequest,
    TimestampMergeMapAnnounce, TimestampMergeMapRequest, TimestampSource,
};
use tensorpool_shm::DropReason;

use super::{InputSet, JoinBarrier, JoinMode, JoinStatus, LatestOrder, Stamp};
use crate::control::{self, Gate};
use crate::prelude::{
    ClaimError, Consumer, Context, Frame, PollError, Producer, SpecError, TensorSpec,
};
use crate::tracelink::TraceLinks;

/// Most inputs one stage joins.
pub const MAX_STAGE_INPUTS: usize = 16;
/// Descriptors remembered per input (seq, timestamps, trace id), by default.
pub const DEFAULT_HISTORY: usize = 256;
/// How far (in output sequences) a sequence stage may lag before it skips ahead, by default.
pub const DEFAULT_MAX_LAG: u64 = 32;

/// Probe output for deriving a rule's offset from its input range.
const PROBE: u64 = 1 << 40;

/// Why a stage or an output could not be built.
#[derive(Debug, thiserror::Error)]
pub enum JoinStageError {
    /// No input consumer.
    #[error("a join stage needs at least one input consumer")]
    NoInputs,
    /// More inputs than [`MAX_STAGE_INPUTS`].
    #[error("{0} input consumers: a join stage joins at most {MAX_STAGE_INPUTS}")]
    TooManyInputs(usize),
    /// Two consumers of one stream.
    #[error("two input consumers of stream {0}: one consumer per input stream")]
    DuplicateInput(u32),
    /// The history must hold at least one descriptor.
    #[error("join stage history must be at least 1 descriptor")]
    History,
    /// An Aeron publication or subscription could not be added.
    #[error("Aeron {what}: {source}")]
    Aeron {
        /// Which stream.
        what: &'static str,
        /// The Aeron error.
        source: tensorpool_aeron::AddError,
    },
}

/// Counters of a join stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JoinStageCounters {
    /// Sets delivered to the application.
    pub sets: u64,
    /// Sets not delivered: a frame the set needed was overwritten or no longer readable.
    pub incomplete: u64,
    /// Delivered sets whose recheck failed after the application used them (its result must
    /// be discarded, as for one frame).
    pub torn: u64,
    /// Outputs skipped: a lagging sequence stage jumped ahead, a timestamp leader frame was
    /// lost or went backwards.
    pub skipped: u64,
    /// Merge-map announces received on the control stream.
    pub announces: u64,
    /// Map requests sent.
    pub requests_sent: u64,
    /// Map requests that could not be sent.
    pub requests_failed: u64,
}

/// Which output a set is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKey {
    /// Sequence mode: the output sequence.
    Seq(u64),
    /// Timestamp mode: the output time.
    Time(u64),
    /// Latest-value mode (the n-th set since the start).
    Latest(u64),
}

/// One joined set: a frame per rule of the map (in the map's order), `None` for an input that
/// is absent (stale, JB §7.4). Valid inside the callback only.
#[derive(Debug)]
pub struct JoinedSet<'s, 'f> {
    key: JoinKey,
    frames: &'s [Option<Frame<'f>>],
    absent: InputSet,
}

impl<'f> JoinedSet<'_, 'f> {
    /// The output this set is for.
    pub fn key(&self) -> JoinKey {
        self.key
    }

    /// Number of rules (inputs) of the set.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether the set has no rule (never for a delivered set).
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The frame of rule `index`; `None` when that input is absent.
    pub fn frame(&self, index: usize) -> Option<&Frame<'f>> {
        self.frames.get(index)?.as_ref()
    }

    /// The frames, in the map's rule order.
    pub fn frames(&self) -> impl Iterator<Item = Option<&Frame<'f>>> {
        self.frames.iter().map(Option::as_ref)
    }

    /// Inputs absent from this set (stale).
    pub fn absent(&self) -> InputSet {
        self.absent
    }

    /// Rechecks every frame of the set: `Err((rule, reason))` for the first one overwritten
    /// since it was read. Call it after reading the payloads, before trusting the result.
    pub fn recheck(&self) -> Result<(), (usize, DropReason)> {
        for (i, f) in self.frames.iter().enumerate() {
            if let Some(f) = f {
                f.recheck().map_err(|r| (i, r))?;
            }
        }
        Ok(())
    }
}

/// What the stage saw of one descriptor.
#[derive(Debug, Clone, Copy)]
struct Seen {
    seq: u64,
    epoch: u64,
    publish_ts: Option<u64>,
    header_ts: u64,
    trace_id: Option<u64>,
}

impl Seen {
    fn stamp(&self, source: TimestampSource) -> Option<u64> {
        match source {
            TimestampSource::FrameDescriptor => self.publish_ts,
            _ => Some(self.header_ts).filter(|&t| t != 0),
        }
    }
}

#[derive(Debug)]
struct Input {
    consumer: Consumer,
    stream_id: u32,
    /// Seen descriptors by `seq % len`.
    history: Box<[Option<Seen>]>,
    newest: Option<Seen>,
}

impl Input {
    fn record(history: &mut [Option<Seen>], newest: &mut Option<Seen>, s: Seen) {
        let n = history.len() as u64;
        history[(s.seq % n) as usize] = Some(s);
        if newest.is_none_or(|l| l.epoch != s.epoch || s.seq >= l.seq) {
            *newest = Some(s);
        }
    }

    fn seen(&self, seq: u64, epoch: u64) -> Option<Seen> {
        let n = self.history.len() as u64;
        self.history[(seq % n) as usize].filter(|s| s.seq == seq && s.epoch == epoch)
    }

    /// Reads a seen frame `seq` of the mapped epoch, with its descriptor fields.
    fn read(&self, seq: u64) -> Option<Frame<'_>> {
        let epoch = self.consumer.mapped_epoch()?;
        let s = self.seen(seq, epoch)?;
        let f = self.consumer.read_frame(seq).ok()?;
        Some(f.with_descriptor(s.publish_ts, s.trace_id))
    }

    /// The newest seen frame of the mapped epoch in `range` that still reads.
    fn read_newest_in(&self, range: RangeInclusive<u64>) -> Option<Frame<'_>> {
        let (lo, hi) = (*range.start(), *range.end());
        let span = self.history.len() as u64;
        let lo = lo.max(hi.saturating_sub(span - 1));
        (lo..=hi).rev().find_map(|seq| self.read(seq))
    }

    /// The newest seen frame of the mapped epoch whose `source` timestamp lies in `range`.
    fn read_time(&self, range: RangeInclusive<u64>, source: TimestampSource) -> Option<Frame<'_>> {
        let epoch = self.consumer.mapped_epoch()?;
        let best = self
            .history
            .iter()
            .flatten()
            .filter(|s| s.epoch == epoch && s.stamp(source).is_some_and(|t| range.contains(&t)))
            .max_by_key(|s| s.seq)?;
        self.read(best.seq)
    }
}

/// What a rule's frame is, for one output.
#[derive(Debug, Clone)]
enum Pick {
    Absent,
    Seqs(RangeInclusive<u64>),
    Time(RangeInclusive<u64>, TimestampSource),
    Latest(u64),
}

/// A join stage: the input consumers (one per input stream, built by the application from
/// one [`Context`]), a [`JoinBarrier`], and the control stream for merge maps. Poll it from
/// the thread that owns it; see docs/join.md ("The join stage").
#[derive(Debug)]
pub struct JoinStage {
    barrier: JoinBarrier,
    inputs: Vec<Input>,
    control_sub: Subscription,
    control_pub: Publication,
    /// Sequence mode: the next output sequence; timestamp mode: the next leader sequence.
    next: Option<u64>,
    /// Timestamp mode: the leader's epoch `next` belongs to.
    leader_epoch: Option<u64>,
    /// Latest mode: the (epoch, seq) per rule of the last set delivered.
    last_latest: Vec<Option<(u64, u64)>>,
    latest_sets: u64,
    max_lag: u64,
    counters: JoinStageCounters,
}

fn aeron(what: &'static str) -> impl FnOnce(tensorpool_aeron::AddError) -> JoinStageError {
    move |source| JoinStageError::Aeron { what, source }
}

impl JoinStage {
    /// A stage over `consumers` (one per input stream) gated by `barrier` (a map applied or
    /// not; without one the stage asks the authority on the control stream of the first
    /// consumer's configuration). Remembers [`DEFAULT_HISTORY`] descriptors per input.
    pub fn new(
        ctx: &Context,
        barrier: JoinBarrier,
        consumers: Vec<Consumer>,
    ) -> Result<Self, JoinStageError> {
        Self::with_history(ctx, barrier, consumers, DEFAULT_HISTORY)
    }

    /// [`Self::new`] remembering `history` descriptors per input (a window or timestamp rule
    /// finds its frame among them).
    pub fn with_history(
        ctx: &Context,
        barrier: JoinBarrier,
        consumers: Vec<Consumer>,
        history: usize,
    ) -> Result<Self, JoinStageError> {
        if consumers.is_empty() {
            return Err(JoinStageError::NoInputs);
        }
        if consumers.len() > MAX_STAGE_INPUTS {
            return Err(JoinStageError::TooManyInputs(consumers.len()));
        }
        if history == 0 {
            return Err(JoinStageError::History);
        }
        for (i, c) in consumers.iter().enumerate() {
            let id = c.config().stream_id;
            if consumers[..i].iter().any(|o| o.config().stream_id == id) {
                return Err(JoinStageError::DuplicateInput(id));
            }
        }
        let cfg = consumers[0].config();
        let (control, t) = (cfg.streams.control.clone(), cfg.aeron_timeout);
        let client = ctx.client();
        let sub = client
            .start_add_subscription(&control.channel, control.stream_id, t)
            .map_err(aeron("control subscription"))?;
        let publication = client
            .start_add_publication(&control.channel, control.stream_id, t)
            .map_err(aeron("control publication"))?;
        let control_sub = sub.wait().map_err(aeron("control subscription"))?;
        let control_pub = publication.wait().map_err(aeron("control publication"))?;
        let inputs = consumers
            .into_iter()
            .map(|consumer| Input {
                stream_id: consumer.config().stream_id,
                consumer,
                history: vec![None; history].into_boxed_slice(),
                newest: None,
            })
            .collect();
        Ok(Self {
            barrier,
            inputs,
            control_sub,
            control_pub,
            next: None,
            leader_epoch: None,
            last_latest: vec![None; super::MAX_JOIN_INPUTS],
            latest_sets: 0,
            max_lag: DEFAULT_MAX_LAG,
            counters: JoinStageCounters::default(),
        })
    }

    /// How far (output sequences) a sequence stage may fall behind its inputs before it
    /// skips to the newest output they allow (counted in `skipped`); default
    /// [`DEFAULT_MAX_LAG`].
    pub fn with_max_lag(mut self, max_lag: u64) -> Self {
        self.max_lag = max_lag.max(1);
        self
    }

    /// The barrier (maps, readiness counters).
    pub fn barrier(&self) -> &JoinBarrier {
        &self.barrier
    }

    /// The barrier, mutably (apply a map, change the epoch).
    pub fn barrier_mut(&mut self) -> &mut JoinBarrier {
        &mut self.barrier
    }

    /// The input consumers, in the order given.
    pub fn consumers(&self) -> impl Iterator<Item = &Consumer> {
        self.inputs.iter().map(|i| &i.consumer)
    }

    /// Counters.
    pub fn counters(&self) -> JoinStageCounters {
        self.counters
    }

    /// The newest sequence seen on `stream_id` in its current epoch.
    pub fn latest_seq(&self, stream_id: u32) -> Option<u64> {
        self.input(stream_id)?.newest.map(|s| s.seq)
    }

    fn input(&self, stream_id: u32) -> Option<&Input> {
        self.inputs.iter().find(|i| i.stream_id == stream_id)
    }

    /// One duty cycle: the control stream (merge-map announces; a map request while none is
    /// active), every input consumer (up to `limit` descriptors each), then up to `limit`
    /// joined sets, each handed to `f`. Returns the work done (0: idle).
    pub fn poll<F: FnMut(&JoinedSet<'_, '_>)>(
        &mut self,
        f: F,
        limit: usize,
    ) -> Result<usize, PollError> {
        self.poll_at(tensorpool_agent::monotonic_ns(), f, limit)
    }

    /// [`Self::poll`] at `now_ns` (`CLOCK_MONOTONIC`).
    pub fn poll_at<F: FnMut(&JoinedSet<'_, '_>)>(
        &mut self,
        now_ns: u64,
        mut f: F,
        limit: usize,
    ) -> Result<usize, PollError> {
        let mut work = self.poll_control(now_ns)?;
        for input in &mut self.inputs {
            work += Self::poll_input(&mut self.barrier, input, now_ns, limit)?;
        }
        for _ in 0..limit.max(1) {
            if !self.join_one(now_ns, &mut f) {
                break;
            }
            work += 1;
        }
        Ok(work)
    }

    fn poll_control(&mut self, now_ns: u64) -> Result<usize, PollError> {
        let (barrier, counters) = (&mut self.barrier, &mut self.counters);
        let n = self.control_sub.poll(
            |buf, _| {
                let Gate::Accept(h) = control::gate(buf, merge::SCHEMA_ID, merge::SCHEMA_VERSION)
                else {
                    return;
                };
                if h.template_id == SequenceMergeMapAnnounce::TEMPLATE_ID {
                    if let Ok(m) = SequenceMergeMapAnnounce::decode(buf) {
                        counters.announces += 1;
                        let _ = barrier.on_sequence_announce(&m, now_ns);
                    }
                } else if h.template_id == TimestampMergeMapAnnounce::TEMPLATE_ID
                    && let Ok(m) = TimestampMergeMapAnnounce::decode(buf)
                {
                    counters.announces += 1;
                    let _ = barrier.on_timestamp_announce(&m, now_ns);
                }
            },
            16,
        )?;
        if let Some(req) = self.barrier.map_request(now_ns) {
            let sent = if req.timestamp {
                control::send(
                    &mut self.control_pub,
                    &TimestampMergeMapRequest {
                        out_stream_id: req.out_stream_id,
                        epoch: req.epoch,
                    },
                )
            } else {
                control::send(
                    &mut self.control_pub,
                    &SequenceMergeMapRequest {
                        out_stream_id: req.out_stream_id,
                        epoch: req.epoch,
                    },
                )
            };
            match sent {
                Ok(()) => self.counters.requests_sent += 1,
                Err(_) => self.counters.requests_failed += 1,
            }
        }
        Ok(n)
    }

    fn poll_input(
        barrier: &mut JoinBarrier,
        input: &mut Input,
        now_ns: u64,
        limit: usize,
    ) -> Result<usize, PollError> {
        let Input {
            consumer,
            history,
            newest,
            ..
        } = input;
        let clock = barrier.clock_domain().unwrap_or(ClockDomain::Monotonic);
        let mode = barrier.mode();
        let mut observe = |frame: &Frame<'_>| {
            let s = Seen {
                seq: frame.seq(),
                epoch: frame.epoch(),
                publish_ts: frame.publish_timestamp_ns(),
                header_ts: frame.timestamp_ns(),
                trace_id: frame.trace_id(),
            };
            Input::record(history, newest, s);
            match mode {
                JoinMode::Sequence | JoinMode::LatestValue(LatestOrder::Sequence) => {
                    barrier.observe_seq(frame.stream_id(), s.epoch, s.seq, now_ns);
                }
                JoinMode::Timestamp | JoinMode::LatestValue(LatestOrder::Timestamp) => {
                    for source in [
                        TimestampSource::FrameDescriptor,
                        TimestampSource::SlotHeader,
                    ] {
                        let stamp = Stamp {
                            source,
                            timestamp_ns: s.stamp(source),
                            clock_domain: clock,
                        };
                        barrier.observe_time(frame.stream_id(), s.epoch, s.seq, stamp, now_ns);
                    }
                }
            }
        };
        consumer.poll_at(now_ns, &mut observe, limit)
    }

    /// Attempts one output; returns whether the stage made progress (a set delivered,
    /// counted incomplete, or skipped) and may try the next.
    fn join_one<F: FnMut(&JoinedSet<'_, '_>)>(&mut self, now_ns: u64, f: &mut F) -> bool {
        match self.barrier.mode() {
            JoinMode::Sequence => self.join_seq(now_ns, f),
            JoinMode::Timestamp => self.join_time(now_ns, f),
            JoinMode::LatestValue(_) => self.join_latest(now_ns, f),
        }
    }

    /// The output sequence rule `index` allows with the input's newest seq.
    fn seq_allowed(&self, index: usize) -> Option<u64> {
        let stream = self.barrier.input_stream_id(index)?;
        let newest = self.input(stream)?.newest?.seq;
        let k = i128::from(*self.barrier.input_seqs(index, PROBE)?.end()) - i128::from(PROBE);
        u64::try_from(i128::from(newest) - k).ok()
    }

    fn join_seq<F: FnMut(&JoinedSet<'_, '_>)>(&mut self, now_ns: u64, f: &mut F) -> bool {
        let n = self.barrier.inputs();
        if n == 0 {
            return false;
        }
        // the newest output every seen input allows
        let target = (0..n).filter_map(|i| self.seq_allowed(i)).min();
        let out = match (self.next, target) {
            (None, None) => return false,
            (None, Some(t)) => t,
            (Some(o), Some(t)) if t > o.saturating_add(self.max_lag) => {
                self.counters.skipped += t - o;
                t
            }
            (Some(o), _) => o,
        };
        self.next = Some(out);
        let r = self.barrier.ready_seq(out, now_ns);
        if r.status != JoinStatus::Ready {
            return false;
        }
        let mut picks = [const { None }; MAX_STAGE_INPUTS];
        for (i, p) in picks.iter_mut().enumerate().take(n) {
            *p = Some(match self.barrier.input_seqs(i, out) {
                _ if r.absent.contains(i) => Pick::Absent,
                Some(range) => Pick::Seqs(range),
                None => Pick::Absent,
            });
        }
        self.deliver(JoinKey::Seq(out), &picks[..n], r.absent, f);
        self.next = Some(out + 1);
        true
    }

    fn join_time<F: FnMut(&JoinedSet<'_, '_>)>(&mut self, now_ns: u64, f: &mut F) -> bool {
        let n = self.barrier.inputs();
        let (Some(clock), Some(leader_stream)) =
            (self.barrier.clock_domain(), self.barrier.input_stream_id(0))
        else {
            return false;
        };
        let Some(newest) = self.input(leader_stream).and_then(|l| l.newest) else {
            return false;
        };
        if self.leader_epoch != Some(newest.epoch) {
            // a new leader epoch restarts its sequence: go on from its newest frame (output
            // times still only increase, JB §8.2)
            self.leader_epoch = Some(newest.epoch);
            self.next = None;
        }
        let next = self.next.unwrap_or(newest.seq);
        if next > newest.seq {
            return false;
        }
        let source = self
            .barrier
            .input_source(0)
            .unwrap_or(TimestampSource::FrameDescriptor);
        let Some(seen) = self
            .input(leader_stream)
            .and_then(|l| l.seen(next, newest.epoch))
        else {
            // lost from the history (or another epoch): go on from the newest
            self.counters.skipped += newest.seq.saturating_sub(next).max(1);
            self.next = Some(newest.seq);
            return true;
        };
        let Some(t) = seen.stamp(source) else {
            self.counters.skipped += 1;
            self.next = Some(next + 1);
            return true;
        };
        let k = self
            .barrier
            .input_times(0, PROBE)
            .map_or(0, |r| i128::from(*r.end()) - i128::from(PROBE));
        let Ok(out_time) = u64::try_from(i128::from(t) - k) else {
            self.counters.skipped += 1;
            self.next = Some(next + 1);
            return true;
        };
        self.next = Some(next);
        let r = self.barrier.ready_time(out_time, clock, now_ns);
        match r.status {
            JoinStatus::Ready => {}
            JoinStatus::OutputRegressed => {
                self.counters.skipped += 1;
                self.next = Some(next + 1);
                return true;
            }
            _ => return false,
        }
        let mut picks = [const { None }; MAX_STAGE_INPUTS];
        for (i, p) in picks.iter_mut().enumerate().take(n) {
            let source = self
                .barrier
                .input_source(i)
                .unwrap_or(TimestampSource::FrameDescriptor);
            *p = Some(match self.barrier.input_times(i, out_time) {
                _ if r.absent.contains(i) => Pick::Absent,
                Some(range) => Pick::Time(range, source),
                None => Pick::Absent,
            });
        }
        self.deliver(JoinKey::Time(out_time), &picks[..n], r.absent, f);
        self.next = Some(next + 1);
        true
    }

    fn join_latest<F: FnMut(&JoinedSet<'_, '_>)>(&mut self, now_ns: u64, f: &mut F) -> bool {
        let n = self.barrier.inputs();
        let r = self.barrier.ready_latest(now_ns);
        if r.status != JoinStatus::Ready {
            return false;
        }
        let mut changed = false;
        let mut picks = [const { None }; MAX_STAGE_INPUTS];
        for (i, p) in picks.iter_mut().enumerate().take(n) {
            let latest = self.barrier.latest(i).filter(|_| !r.absent.contains(i));
            changed |= latest.is_some() && latest != self.last_latest[i];
            *p = Some(match latest {
                Some((_, seq)) => Pick::Latest(seq),
                None => Pick::Absent,
            });
        }
        if !changed {
            return false;
        }
        for i in 0..n {
            self.last_latest[i] = self.barrier.latest(i).filter(|_| !r.absent.contains(i));
        }
        let key = JoinKey::Latest(self.latest_sets);
        self.latest_sets += 1;
        self.deliver(key, &picks[..n], r.absent, f);
        true
    }

    /// Reads every picked frame (seqlock), hands the set to `f` when all read, rechecks it.
    fn deliver<F: FnMut(&JoinedSet<'_, '_>)>(
        &mut self,
        key: JoinKey,
        picks: &[Option<Pick>],
        absent: InputSet,
        f: &mut F,
    ) {
        let mut frames: [Option<Frame<'_>>; MAX_STAGE_INPUTS] = [const { None }; MAX_STAGE_INPUTS];
        let mut failed: Option<u32> = None;
        for (i, pick) in picks.iter().enumerate() {
            let Some(pick) = pick else { continue };
            let stream = self.barrier.input_stream_id(i);
            let input = stream.and_then(|s| self.inputs.iter().find(|x| x.stream_id == s));
            let frame = match (pick, input) {
                (Pick::Absent, _) => continue,
                (_, None) => None,
                (Pick::Seqs(range), Some(input)) => input.read_newest_in(range.clone()),
                (Pick::Time(range, source), Some(input)) => input.read_time(range.clone(), *source),
                (Pick::Latest(seq), Some(input)) => input.read(*seq),
            };
            match frame {
                Some(fr) => frames[i] = Some(fr),
                None => {
                    failed = stream;
                    break;
                }
            }
        }
        let n = picks.len();
        let torn = match failed {
            Some(_) => None,
            None => {
                let set = JoinedSet {
                    key,
                    frames: &frames[..n],
                    absent,
                };
                f(&set);
                Some(set.recheck().is_err())
            }
        };
        match torn {
            None => {
                self.counters.incomplete += 1;
                if let (Some(stream), JoinMode::LatestValue(_)) = (failed, self.barrier.mode()) {
                    // JB §9.1: the latest value failed validation, absent until a newer one
                    self.barrier.invalidate(stream);
                }
            }
            Some(torn) => {
                self.counters.sets += 1;
                if torn {
                    self.counters.torn += 1;
                }
            }
        }
    }
}

/// Why a joined set could not be published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The output tensor is not valid (e.g. an empty concatenation).
    #[error("output tensor: {0}")]
    Spec(#[from] SpecError),
    /// The producer refused the claim.
    #[error("output claim: {0}")]
    Claim(#[from] ClaimError),
}

/// Counters of a [`JoinOutput`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JoinOutputCounters {
    /// Frames committed.
    pub published: u64,
    /// Sets not published: an input frame was overwritten while it was copied.
    pub torn: u64,
    /// `TraceLinkSet`s sent.
    pub links_sent: u64,
    /// `TraceLinkSet`s that could not be sent (dropped, TL §5: tracing never blocks).
    pub links_dropped: u64,
}

/// Republishes joined sets as frames of one output stream, with a `TraceLinkSet` for every
/// frame derived from two or more traced inputs (TraceLink spec §7, §9; sent on the
/// producer's metadata stream).
#[derive(Debug)]
pub struct JoinOutput {
    producer: Producer,
    links: TraceLinks,
    metadata: Publication,
    buf: Box<[u8]>,
    last_trace_id: Option<u64>,
    counters: JoinOutputCounters,
}

impl JoinOutput {
    /// An output writing through `producer` (its `producer.trace_ids` decides whether output
    /// frames carry trace ids and links are sent).
    pub fn new(ctx: &Context, producer: Producer) -> Result<Self, JoinStageError> {
        let cfg = producer.config();
        let (meta, t) = (cfg.streams.metadata.clone(), cfg.aeron_timeout);
        let metadata = ctx
            .client()
            .start_add_publication(&meta.channel, meta.stream_id, t)
            .map_err(aeron("metadata publication"))?
            .wait()
            .map_err(aeron("metadata publication"))?;
        Ok(Self {
            producer,
            links: TraceLinks::new(),
            metadata,
            buf: vec![0u8; 1024].into_boxed_slice(),
            last_trace_id: None,
            counters: JoinOutputCounters::default(),
        })
    }

    /// The producer.
    pub fn producer(&self) -> &Producer {
        &self.producer
    }

    /// The producer, mutably (its duty cycle, epochs).
    pub fn producer_mut(&mut self) -> &mut Producer {
        &mut self.producer
    }

    /// The trace id of the last frame published (`None`: untraced).
    pub fn last_trace_id(&self) -> Option<u64> {
        self.last_trace_id
    }

    /// Counters.
    pub fn counters(&self) -> JoinOutputCounters {
        self.counters
    }

    /// Publishes the concatenation of the set's payloads (rule order, absent inputs left
    /// out) as one 1-D `u8` frame. See [`Self::publish`].
    pub fn publish_concat(&mut self, set: &JoinedSet<'_, '_>) -> Result<Option<u64>, PublishError> {
        let len: usize = set.frames().flatten().map(|f| f.bytes().len()).sum();
        let spec = TensorSpec::new(crate::prelude::Dtype::Uint8, &[len])?;
        self.publish(set, &spec, |set, out| {
            let mut at = 0;
            for f in set.frames().flatten() {
                let b = f.bytes();
                out[at..at + b.len()].copy_from_slice(b);
                at += b.len();
            }
        })
    }

    /// Publishes one frame of `spec` that `fill` writes from the set. The set is rechecked
    /// after `fill`: when an input frame was overwritten meanwhile, the claim is aborted and
    /// counted (`torn`), and `Ok(None)` returned. Trace ids (TL §7, §8.1), when the
    /// producer traces (`producer.trace_ids`): a set of one frame is a 1→1 lineage and the
    /// output keeps that frame's id; a set of several frames is N→1: the output carries the
    /// producer's new id and a `TraceLinkSet` naming the traced inputs' ids as parents
    /// (non-zero, unique, in rule order) is sent on the metadata stream, best effort (a
    /// failed send is counted, never retried or waited for). Returns the committed seq.
    pub fn publish(
        &mut self,
        set: &JoinedSet<'_, '_>,
        spec: &TensorSpec,
        fill: impl FnOnce(&JoinedSet<'_, '_>, &mut [u8]),
    ) -> Result<Option<u64>, PublishError> {
        self.links.clear();
        for f in set.frames().flatten() {
            // at most MAX_STAGE_INPUTS parents: never TooManyParents
            let _ = self.links.push(f.trace_id().unwrap_or(0));
        }
        let stream_id = self.producer.config().stream_id;
        let mut claim = self.producer.claim(spec)?;
        fill(set, claim.payload_mut());
        if set.recheck().is_err() {
            claim.abort();
            self.counters.torn += 1;
            return Ok(None);
        }
        let inputs = set.frames().flatten().count();
        if inputs == 1 && claim.trace_id().is_some() && self.links.len() == 1 {
            // one frame in, one out: a 1→1 lineage keeps the upstream id (TL §8.1)
            claim.set_trace_id(self.links.parents().next());
        }
        let trace_id = claim.trace_id();
        let seq = claim.commit();
        self.last_trace_id = trace_id;
        self.counters.published += 1;
        // N→1 (TL §8.1): the frame has the producer's new id; its parents are the traced
        // inputs (an untraced input has no id to name)
        if let (Some(id), true) = (trace_id, inputs > 1 && !self.links.is_empty()) {
            let epoch = self.producer.epoch().unwrap_or(0);
            match self.links.encode(&mut self.buf, stream_id, epoch, seq, id) {
                Ok(Ok(n)) => match control::send_bytes(&mut self.metadata, &self.buf[..n]) {
                    Ok(()) => self.counters.links_sent += 1,
                    Err(_) => self.counters.links_dropped += 1,
                },
                _ => self.counters.links_dropped += 1,
            }
        }
        Ok(Some(seq))
    }
}
