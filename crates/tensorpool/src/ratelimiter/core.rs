//! [`RateLimiterCore`]: which source frames go to the destination, and when. No shared
//! memory, no Aeron: a frame arrives as (mapping, sequence, source epoch) with the time, and
//! the answer is a [`Verdict`]; the agent reports back what happened to the frames it was
//! told to forward. Tests and the `ratelimit_core` fuzz target drive it with a clock.
//!
//! The rules (docs/roles.md, "Rate limiter"):
//! - `MaxRate`: a frame arriving while the rate slot is open is forwarded at once; one
//!   arriving earlier is held (the newest held frame replaces the previous one) and
//!   [`RateLimiterCore::release`] hands it out when the slot opens. The slot opens
//!   `interval` after the last *successful* forward, measured on the rate limiter's clock,
//!   so two forwarded frames are never closer than the interval and a burst above the rate
//!   cannot happen. The first frame after start or a source epoch change is eligible at
//!   once (RateLimiter §4).
//! - `EveryNth`: forwarded iff `seq % n == 0`; a gap removes the multiples it covers and
//!   never shifts the phase.
//! - Sequences forwarded within one source epoch strictly increase; an older or repeated
//!   sequence is dropped as stale.
//! - A source epoch change (RateLimiter §7) drops the held frame, resets the rate timer and
//!   the sequence floor, and is reported (`Verdict::remap`) so the agent moves the
//!   destination to a new epoch before forwarding.
//! - Progress and QoS forwarding (RateLimiter §6.1, off unless switched on):
//!   [`RateLimiterCore::on_source_progress`] and [`RateLimiterCore::on_source_qos`] take one
//!   message of the shared source control / QoS stream and republish it for every mapping of
//!   its source stream with `streamId` rewritten to the destination. A `FrameProgress` keeps
//!   its `seq`, `payloadBytesFilled` and `state`; its `epoch` becomes the destination's (a
//!   consumer of the destination compares it with the epoch it mapped); it is forwarded only
//!   while the mapping knows the source epoch it names and has a destination, and not for a
//!   sequence the every-Nth policy never forwards. A `QosProducer` / `QosConsumer` keeps
//!   every other field (its epoch is the source's: observability of the source).

use tensorpool_codec::{Message, wire};

use super::counters::{Counters, RateLimiterCells};
use super::state::{Action, Held, Lane, Policy, Verdict};
use crate::control::{MessageSink, send, tid, wire_template};

const QOS_PRODUCER: u16 = <wire::QosProducer as Message<'_>>::TEMPLATE_ID;

/// One mapping's stream ids and its destination's current epoch (progress and QoS
/// forwarding).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Route {
    source: u32,
    dest: u32,
    dest_epoch: Option<u64>,
}

/// Why a frame the core selected did not reach the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lost {
    /// The source slot was overwritten while copied (the recheck failed).
    Torn,
    /// No destination pool holds the payload (RateLimiter §5).
    NoPool,
    /// The destination slot could not be claimed at once (RateLimiter §5: drop, never block).
    ClaimFailed,
}

/// The policies of every mapping, and their counters.
#[derive(Debug)]
pub struct RateLimiterCore {
    lanes: Vec<Lane>,
    cells: Vec<RateLimiterCells>,
    routes: Vec<Route>,
    /// The policies of the configuration (the fallback of per-consumer operation).
    configured: Vec<Policy>,
    forward_progress: bool,
    forward_qos: bool,
}

impl RateLimiterCore {
    /// One lane per mapping, in order.
    pub fn new(policies: &[Policy]) -> Self {
        let mut core = Self::unset(policies);
        for (c, &p) in core.cells.iter_mut().zip(policies) {
            c.rate_hz.set(rate_of(p));
        }
        core
    }

    fn unset(policies: &[Policy]) -> Self {
        Self {
            lanes: policies.iter().map(|&p| Lane::new(p)).collect(),
            cells: policies
                .iter()
                .map(|_| RateLimiterCells::default())
                .collect(),
            routes: vec![Route::default(); policies.len()],
            configured: policies.to_vec(),
            forward_progress: false,
            forward_qos: false,
        }
    }

    /// RL §4 per-consumer operation: the rate the sole consumer of `lane`'s destination asks
    /// for in its `ConsumerHello` (`Some(0)`: unlimited), or `None` (no consumer, several, or
    /// one not in RATE_LIMITED mode: the configured policy applies; several consumers are
    /// never aggregated). A decimation lane keeps its policy. The new rate counts from the
    /// last forward (a held frame is released when the new slot opens). Returns whether the
    /// policy in force changed.
    pub fn set_consumer_rate(&mut self, lane: usize, hz: Option<u32>) -> bool {
        let configured = self.configured[lane];
        let policy = match (configured, hz) {
            (Policy::EveryNth { .. }, _) | (_, None) => configured,
            (_, Some(0)) => Policy::Unlimited,
            (_, Some(hz)) => Policy::MaxRate { hz },
        };
        let l = &mut self.lanes[lane];
        if l.policy == policy {
            return false;
        }
        l.policy = policy;
        let c = &mut self.cells[lane];
        c.consumer_rate_changes += 1;
        c.rate_hz.set(rate_of(policy));
        true
    }

    /// The source and destination stream of `lane` (progress and QoS forwarding match
    /// messages on the source stream id and rewrite it to the destination's).
    pub fn set_route(&mut self, lane: usize, source_stream_id: u32, dest_stream_id: u32) {
        let r = &mut self.routes[lane];
        r.source = source_stream_id;
        r.dest = dest_stream_id;
    }

    /// Switches progress and QoS forwarding (RateLimiter §6.1) on or off.
    pub fn set_forwarding(&mut self, progress: bool, qos: bool) {
        self.forward_progress = progress;
        self.forward_qos = qos;
    }

    /// The current epoch of `lane`'s destination (`None` while it is being rebuilt).
    pub fn set_dest_epoch(&mut self, lane: usize, epoch: Option<u64>) {
        self.routes[lane].dest_epoch = epoch;
    }

    /// One message of the source control stream (`source_control_stream_id`): a
    /// `FrameProgress` of a mapped source stream is republished into `out` once per mapping of
    /// that source (module docs: `streamId` and `epoch` the destination's, `seq`,
    /// `payloadBytesFilled` and `state` kept). Anything else is ignored. Returns the number of
    /// messages republished.
    pub fn on_source_progress(&mut self, msg: &[u8], out: &mut dyn MessageSink) -> usize {
        if !self.forward_progress || wire_template(msg) != Some(tid::PROGRESS) {
            return 0;
        }
        let Ok(mut p) = wire::FrameProgress::decode(msg) else {
            return 0;
        };
        let mut sent = 0;
        for (i, r) in self.routes.iter().enumerate() {
            if r.source != p.stream_id {
                continue;
            }
            let l = &self.lanes[i];
            let c = &mut self.cells[i];
            let selectable = match l.policy {
                Policy::EveryNth { n } => p.seq.is_multiple_of(n.max(1)),
                _ => true,
            };
            let (Some(dest_epoch), true, true) =
                (r.dest_epoch, l.epoch == Some(p.epoch), selectable)
            else {
                c.progress_dropped += 1;
                continue;
            };
            let (source_epoch, source_stream) = (p.epoch, p.stream_id);
            p.stream_id = r.dest;
            p.epoch = dest_epoch;
            let result = send(out, &p);
            (p.stream_id, p.epoch) = (source_stream, source_epoch);
            match result {
                Ok(()) => {
                    c.progress_forwarded += 1;
                    sent += 1;
                }
                Err(_) => c.progress_dropped += 1,
            }
        }
        sent
    }

    /// One message of the source QoS stream (`source_qos_stream_id`): a `QosProducer` or
    /// `QosConsumer` of a mapped source stream is republished into `out` once per mapping of
    /// that source with `streamId` rewritten to the destination, every other field kept.
    /// Returns the number of messages republished.
    pub fn on_source_qos(&mut self, msg: &[u8], out: &mut dyn MessageSink) -> usize {
        if !self.forward_qos {
            return 0;
        }
        let (mut consumer, mut producer) = (None, None);
        let stream_id = match wire_template(msg) {
            Some(tid::QOS_CONSUMER) => match wire::QosConsumer::decode(msg) {
                Ok(m) => consumer.insert(m).stream_id,
                Err(_) => return 0,
            },
            Some(t) if t == QOS_PRODUCER => match wire::QosProducer::decode(msg) {
                Ok(m) => producer.insert(m).stream_id,
                Err(_) => return 0,
            },
            _ => return 0,
        };
        let mut sent = 0;
        for (i, r) in self.routes.iter().enumerate() {
            if r.source != stream_id {
                continue;
            }
            let result = match (consumer.as_mut(), producer.as_mut()) {
                (Some(m), _) => {
                    m.stream_id = r.dest;
                    send(out, &*m)
                }
                (_, Some(m)) => {
                    m.stream_id = r.dest;
                    send(out, &*m)
                }
                _ => Ok(()),
            };
            let c = &mut self.cells[i];
            match result {
                Ok(()) => {
                    c.qos_forwarded += 1;
                    sent += 1;
                }
                Err(_) => c.qos_dropped += 1,
            }
        }
        sent
    }

    /// Number of mappings.
    pub fn len(&self) -> usize {
        self.lanes.len()
    }

    /// Whether there is no mapping.
    pub fn is_empty(&self) -> bool {
        self.lanes.is_empty()
    }

    /// One mapping's state (panics on an index out of range: a programming error).
    pub fn lane(&self, lane: usize) -> &Lane {
        &self.lanes[lane]
    }

    /// One mapping's counters.
    pub fn counters(&self, lane: usize) -> Counters {
        self.cells[lane].snapshot()
    }

    /// A source frame of mapping `lane` read intact at `now_ns`: what to do with it.
    pub fn on_frame(&mut self, lane: usize, seq: u64, epoch: u64, now_ns: u64) -> Verdict {
        let (l, c) = (&mut self.lanes[lane], &mut self.cells[lane]);
        c.received += 1;
        let remap = l.epoch.is_some_and(|e| e != epoch);
        if remap {
            c.epoch_changes += 1;
            if l.held.take().is_some() {
                c.epoch_drops += 1;
            }
            l.last_forward_ns = None;
            l.last_seq = None;
        }
        l.epoch = Some(epoch);
        let floor = l.held.map(|h| h.seq).max(l.last_seq);
        if floor.is_some_and(|f| seq <= f) {
            c.stale += 1;
            return Verdict {
                action: Action::Drop,
                remap,
            };
        }
        let action = match l.policy {
            Policy::Unlimited => Action::Forward,
            Policy::EveryNth { n } => {
                if seq.is_multiple_of(n.max(1)) {
                    Action::Forward
                } else {
                    c.filtered += 1;
                    Action::Drop
                }
            }
            Policy::MaxRate { .. } => {
                let replaced = if l.slot_open(now_ns) {
                    l.held.take().is_some()
                } else {
                    l.held.replace(Held { seq }).is_some()
                };
                if replaced {
                    c.filtered += 1;
                }
                if l.held.is_some() {
                    c.held += 1;
                    Action::Hold
                } else {
                    Action::Forward
                }
            }
        };
        Verdict { action, remap }
    }

    /// The source of `lane` went stale (its producer stopped: the source consumer unmapped)
    /// (RL §7): the held frame is dropped (counted `epoch_drops`), the rate timer and the
    /// sequence floor reset; the source epoch is kept, so a source coming back on a new epoch
    /// is still counted as an epoch change. The agent closes the destination meanwhile.
    pub fn on_source_stale(&mut self, lane: usize) {
        let (l, c) = (&mut self.lanes[lane], &mut self.cells[lane]);
        c.source_stale += 1;
        if l.held.take().is_some() {
            c.epoch_drops += 1;
        }
        l.last_forward_ns = None;
        l.last_seq = None;
    }

    /// The held frame of `lane` whose slot is open at `now_ns`, taken (the agent forwards it
    /// from its copy and reports with [`RateLimiterCore::on_forwarded`] or
    /// [`RateLimiterCore::on_lost`]).
    pub fn release(&mut self, lane: usize, now_ns: u64) -> Option<u64> {
        let l = &mut self.lanes[lane];
        if l.held.is_some() && l.slot_open(now_ns) {
            l.held.take().map(|h| h.seq)
        } else {
            None
        }
    }

    /// Whether `lane` holds a frame (waiting for its slot).
    pub fn holding(&self, lane: usize) -> Option<u64> {
        self.lanes[lane].held.map(|h| h.seq)
    }

    /// Frame `seq` of `lane` was committed and announced on the destination; `at_ns` is a
    /// clock reading taken after the commit (the next slot opens an interval later).
    pub fn on_forwarded(&mut self, lane: usize, seq: u64, at_ns: u64) {
        let l = &mut self.lanes[lane];
        l.last_forward_ns = Some(at_ns);
        l.last_seq = Some(seq);
        self.cells[lane].forwarded += 1;
    }

    /// A selected frame did not reach the destination (counted; the slot stays open). A
    /// frame that was being held is given up.
    pub fn on_lost(&mut self, lane: usize, seq: u64, why: Lost) {
        let l = &mut self.lanes[lane];
        if l.held.is_some_and(|h| h.seq == seq) {
            l.held = None;
        }
        let c = &mut self.cells[lane];
        match why {
            Lost::Torn => c.torn += 1,
            Lost::NoPool => c.no_pool += 1,
            Lost::ClaimFailed => c.claim_failed += 1,
        }
    }

    /// The source's metadata of `lane` was forwarded to the destination (RL §6).
    pub fn on_meta_forwarded(&mut self, lane: usize) {
        self.cells[lane].meta_forwarded += 1;
    }

    /// The destination of `lane` was rebuilt on a new epoch.
    pub fn on_dest_rebuilt(&mut self, lane: usize) {
        self.cells[lane].dest_rebuilds += 1;
    }

    /// Registers the Aeron counters of `lane` (key: `dest_stream_id`, role 6).
    pub fn attach_aeron_counters(
        &mut self,
        lane: usize,
        dest_stream_id: u32,
        aeron: &tensorpool_aeron::AeronClient,
        timeout: std::time::Duration,
    ) -> Result<(), tensorpool_aeron::AddError> {
        let mut reg = crate::counters::Registrar::new(
            aeron,
            crate::counters::Role::RateLimiter,
            dest_stream_id,
            0,
            format!("dest={dest_stream_id}"),
            timeout,
        );
        RateLimiterCells::register(&mut reg)?;
        let counters = reg.finish()?;
        self.cells[lane].attach(&mut counters.into_iter());
        Ok(())
    }
}

/// The `rate_hz` gauge of a policy.
fn rate_of(p: Policy) -> u64 {
    match p {
        Policy::MaxRate { hz } => u64::from(hz),
        _ => 0,
    }
}
