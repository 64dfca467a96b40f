//! TraceLink v1.0: trace ids and the links from a derived frame to its parents.
//!
//! - [`TraceIdGenerator`] mints 64-bit Snowflake ids in the layout of Agrona's
//!   `SnowflakeIdGenerator` (which the spec names, TL §6.1): from the top, one unused bit,
//!   the milliseconds since the generator's epoch, the node id (10 bits by default), and a
//!   per-millisecond sequence (12 bits by default). Ids of one generator increase strictly;
//!   ids of generators with different node ids never collide.
//! - [`TraceLinks`] collects the parents of one derived frame (N→1 stages) with the spec's
//!   rules (at least one, none zero, unique, in observed order) and encodes the
//!   `TraceLinkSet` without allocating.
//!
//! Propagation (TL §6.3): a root producer mints ([`crate::producer::Claim::set_trace_id`]
//! with [`TraceIdGenerator::next_id`]), a 1→1 stage (rate limiter, bridge) keeps the
//! upstream id, an N→1 stage mints a new id and emits a `TraceLinkSet`. Tracing never
//! blocks and never decides anything: a link that cannot be sent is dropped and counted.

use std::time::{SystemTime, UNIX_EPOCH};

use tensorpool_codec::tracelink::{Parent, TraceLinkSet};
use tensorpool_codec::{EncodeError, Group, Message};

/// Node-id bits of the default layout (Agrona's default).
pub const NODE_ID_BITS: u8 = 10;
/// Sequence bits of the default layout (Agrona's default).
pub const SEQUENCE_BITS: u8 = 12;
/// Most node-id plus sequence bits a layout may use (the rest hold the timestamp).
pub const MAX_NODE_AND_SEQUENCE_BITS: u8 = 22;
/// Most parents one [`TraceLinks`] holds (a join stage has at most 64 inputs).
pub const MAX_PARENTS: usize = 64;

/// Why a trace id generator or a link set could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceError {
    /// The node id does not fit the layout's node-id bits.
    #[error(
        "node id {node_id} does not fit the {bits}-bit node field of trace ids (at most {max}); set a smaller node id (producer.trace_node_id) or let a driver assign one"
    )]
    NodeIdTooLarge {
        /// The node id given.
        node_id: u64,
        /// Node-id bits of the layout.
        bits: u8,
        /// Largest node id that fits.
        max: u64,
    },
    /// Node-id plus sequence bits exceed [`MAX_NODE_AND_SEQUENCE_BITS`].
    #[error(
        "{node_bits} node-id bits + {sequence_bits} sequence bits exceed {MAX_NODE_AND_SEQUENCE_BITS}"
    )]
    Layout {
        /// Node-id bits asked for.
        node_bits: u8,
        /// Sequence bits asked for.
        sequence_bits: u8,
    },
    /// A parent trace id of 0 (the null id, TL §9.2).
    #[error("parent trace id 0 is the null id and cannot be a parent")]
    ZeroParent,
    /// A derived frame's own trace id of 0 (TL §8.1: traced frames carry a non-zero id).
    #[error("a derived frame's trace id cannot be 0")]
    ZeroTraceId,
    /// No parent (TL §9.2: `numInGroup` ≥ 1).
    #[error("a TraceLinkSet needs at least one parent")]
    NoParents,
    /// More parents than [`MAX_PARENTS`].
    #[error("more than {MAX_PARENTS} parents")]
    TooManyParents,
    /// Two equal parents in a received set (TL §9.2: unique).
    #[error("parent trace id {0:#x} appears twice")]
    DuplicateParent(u64),
}

/// The parts of a trace id (see [`TraceIdGenerator::split`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceIdParts {
    /// Milliseconds since the generator's epoch (the Unix epoch by default).
    pub timestamp_ms: u64,
    /// The node id.
    pub node_id: u64,
    /// The sequence within that millisecond.
    pub sequence: u64,
}

/// Mints trace ids (TL §6.1). Single-threaded: one per producer (`&mut self`, no atomics).
#[derive(Debug, Clone)]
pub struct TraceIdGenerator {
    node_bits: u8,
    sequence_bits: u8,
    node_part: u64,
    max_sequence: u64,
    epoch_offset_ms: u64,
    /// Timestamp and sequence of the last id (the node bits are or-ed in).
    last: u64,
}

impl TraceIdGenerator {
    /// A generator with the default layout (10 node-id bits, 12 sequence bits, Unix epoch).
    pub fn new(node_id: u64) -> Result<Self, TraceError> {
        Self::with_layout(node_id, NODE_ID_BITS, SEQUENCE_BITS, 0)
    }

    /// A generator with its own layout and epoch (milliseconds subtracted from the Unix
    /// time). Everyone decoding the ids must use the same layout.
    pub fn with_layout(
        node_id: u64,
        node_bits: u8,
        sequence_bits: u8,
        epoch_offset_ms: u64,
    ) -> Result<Self, TraceError> {
        if u16::from(node_bits) + u16::from(sequence_bits) > u16::from(MAX_NODE_AND_SEQUENCE_BITS) {
            return Err(TraceError::Layout {
                node_bits,
                sequence_bits,
            });
        }
        let max_node = (1u64 << node_bits) - 1;
        if node_id > max_node {
            return Err(TraceError::NodeIdTooLarge {
                node_id,
                bits: node_bits,
                max: max_node,
            });
        }
        Ok(Self {
            node_bits,
            sequence_bits,
            node_part: node_id << sequence_bits,
            max_sequence: (1u64 << sequence_bits) - 1,
            epoch_offset_ms,
            last: 0,
        })
    }

    fn shift(&self) -> u8 {
        self.node_bits + self.sequence_bits
    }

    /// The node id.
    pub fn node_id(&self) -> u64 {
        self.node_part >> self.sequence_bits
    }

    /// The next id at wall-clock millisecond `now_ms` (Unix time). Strictly greater than
    /// every id this generator gave before; when the millisecond's sequence is used up, or
    /// the clock went back, the id borrows from the next millisecond instead of waiting, so
    /// minting never blocks. Never 0 (the null trace id).
    pub fn next_id_at(&mut self, now_ms: u64) -> u64 {
        let ts = now_ms.saturating_sub(self.epoch_offset_ms);
        let last_ts = self.last >> self.shift();
        self.last = if ts > last_ts {
            ts << self.shift()
        } else if self.last & self.max_sequence < self.max_sequence {
            self.last + 1
        } else {
            (last_ts + 1) << self.shift()
        };
        if self.last == 0 {
            // the epoch's very first millisecond: sequence 1, so the id is never the null 0
            self.last = 1;
        }
        self.last | self.node_part
    }

    /// The next id now.
    pub fn next_id(&mut self) -> u64 {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.next_id_at(now_ms)
    }

    /// The parts of an id of this layout.
    pub fn split(&self, trace_id: u64) -> TraceIdParts {
        TraceIdParts {
            timestamp_ms: (trace_id >> self.shift()) + self.epoch_offset_ms,
            node_id: (trace_id >> self.sequence_bits) & ((1u64 << self.node_bits) - 1),
            sequence: trace_id & self.max_sequence,
        }
    }
}

/// The parents of one derived frame, collected by an N→1 stage, and the `TraceLinkSet`
/// that reports them (TL §7, §9). Preallocated: collecting and encoding allocate nothing.
#[derive(Debug, Clone)]
pub struct TraceLinks {
    parents: [Parent; MAX_PARENTS],
    len: usize,
}

impl Default for TraceLinks {
    fn default() -> Self {
        Self::new()
    }
}

impl TraceLinks {
    /// An empty set.
    pub fn new() -> Self {
        Self {
            parents: std::array::from_fn(|_| Parent { trace_id: 0 }),
            len: 0,
        }
    }

    /// Forgets the parents (for the next output).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Adds a parent in observed order. An untraced input (0) and a parent already present
    /// (two inputs of one lineage, e.g. the two branches of a diamond) are skipped: the
    /// set stays valid (TL §9.2: non-zero, unique). Returns whether it was added.
    pub fn push(&mut self, parent: u64) -> Result<bool, TraceError> {
        if parent == 0 || self.parents().any(|p| p == parent) {
            return Ok(false);
        }
        if self.len == MAX_PARENTS {
            return Err(TraceError::TooManyParents);
        }
        self.parents[self.len] = Parent { trace_id: parent };
        self.len += 1;
        Ok(true)
    }

    /// The parents so far, in order.
    pub fn parents(&self) -> impl Iterator<Item = u64> + '_ {
        self.parents[..self.len].iter().map(|p| p.trace_id)
    }

    /// Number of parents.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is no parent.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether a `TraceLinkSet` is worth sending: more than one parent (TL §7: SHOULD only
    /// then; one parent is a 1→1 lineage that keeps its id).
    pub fn is_join(&self) -> bool {
        self.len > 1
    }

    /// The `TraceLinkSet` of output frame (`stream_id`, `epoch`, `seq`) with id `trace_id`.
    pub fn message(
        &self,
        stream_id: u32,
        epoch: u64,
        seq: u64,
        trace_id: u64,
    ) -> Result<TraceLinkSet<'_>, TraceError> {
        if trace_id == 0 {
            return Err(TraceError::ZeroTraceId);
        }
        if self.len == 0 {
            return Err(TraceError::NoParents);
        }
        Ok(TraceLinkSet {
            stream_id,
            epoch,
            seq,
            trace_id,
            parents: Group::Slice(&self.parents[..self.len]),
        })
    }

    /// Encodes the `TraceLinkSet` (with its message header) into `dst`; returns its length.
    pub fn encode(
        &self,
        dst: &mut [u8],
        stream_id: u32,
        epoch: u64,
        seq: u64,
        trace_id: u64,
    ) -> Result<Result<usize, EncodeError>, TraceError> {
        Ok(self.message(stream_id, epoch, seq, trace_id)?.encode(dst))
    }
}

/// Checks a received `TraceLinkSet` (TL §9.2): a non-zero id, at least one parent, no zero
/// parent, no parent twice.
pub fn validate(set: &TraceLinkSet<'_>) -> Result<(), TraceError> {
    if set.trace_id == 0 {
        return Err(TraceError::ZeroTraceId);
    }
    if set.parents.is_empty() {
        return Err(TraceError::NoParents);
    }
    for (i, p) in set.parents.iter().enumerate() {
        if p.trace_id == 0 {
            return Err(TraceError::ZeroParent);
        }
        if set
            .parents
            .iter()
            .skip(i + 1)
            .any(|q| q.trace_id == p.trace_id)
        {
            return Err(TraceError::DuplicateParent(p.trace_id));
        }
    }
    Ok(())
}

/// Which frame a trace id belongs to (from its `FrameDescriptor` or `TraceLinkSet`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct FrameRef {
    /// Stream of the frame.
    pub stream_id: u32,
    /// Its epoch.
    pub epoch: u64,
    /// Its sequence.
    pub seq: u64,
}

/// One ancestor in a lineage walk ([`TraceGraph::lineage`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineageNode {
    /// 0 for the frame asked about, 1 for its parents, and so on.
    pub depth: usize,
    /// The ancestor's trace id.
    pub trace_id: u64,
    /// Its frame, when seen.
    pub frame: Option<FrameRef>,
}

/// What an observer (`tp trace`) learnt of frames and links: the frame of each trace id
/// seen on a descriptor, and the parents of each derived id. Bounded: past `capacity`
/// trace ids the oldest are forgotten. For tools, not hot paths (it allocates).
#[derive(Debug)]
pub struct TraceGraph {
    frames: std::collections::HashMap<u64, FrameRef>,
    parents: std::collections::HashMap<u64, Vec<u64>>,
    order: std::collections::VecDeque<u64>,
    capacity: usize,
}

impl TraceGraph {
    /// A graph remembering up to `capacity` trace ids.
    pub fn new(capacity: usize) -> Self {
        Self {
            frames: Default::default(),
            parents: Default::default(),
            order: Default::default(),
            capacity: capacity.max(1),
        }
    }

    fn remember(&mut self, trace_id: u64) {
        if self.frames.contains_key(&trace_id) || self.parents.contains_key(&trace_id) {
            return;
        }
        self.order.push_back(trace_id);
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.frames.remove(&old);
                self.parents.remove(&old);
            }
        }
    }

    /// A frame carrying `trace_id` was seen (0: untraced, ignored).
    pub fn record_frame(&mut self, trace_id: u64, frame: FrameRef) {
        if trace_id == 0 {
            return;
        }
        self.remember(trace_id);
        self.frames.insert(trace_id, frame);
    }

    /// A `TraceLinkSet` was received: validated (TL §9.2), then its frame and parents are
    /// recorded. An invalid set changes nothing.
    pub fn record_links(&mut self, set: &TraceLinkSet<'_>) -> Result<(), TraceError> {
        validate(set)?;
        self.record_frame(
            set.trace_id,
            FrameRef {
                stream_id: set.stream_id,
                epoch: set.epoch,
                seq: set.seq,
            },
        );
        self.parents.insert(
            set.trace_id,
            set.parents.iter().map(|p| p.trace_id).collect(),
        );
        Ok(())
    }

    /// The frame of `trace_id`, if seen.
    pub fn frame(&self, trace_id: u64) -> Option<FrameRef> {
        self.frames.get(&trace_id).copied()
    }

    /// The recorded parents of `trace_id` (empty for a root or an unknown id).
    pub fn parents(&self, trace_id: u64) -> &[u64] {
        self.parents.get(&trace_id).map_or(&[], Vec::as_slice)
    }

    /// `trace_id` and its ancestors, depth first in parent order, down to `max_depth`
    /// generations; an id met twice (a diamond) is listed under each child that has it.
    pub fn lineage(&self, trace_id: u64, max_depth: usize) -> Vec<LineageNode> {
        let mut out = Vec::new();
        let mut stack = vec![(trace_id, 0usize)];
        while let Some((id, depth)) = stack.pop() {
            out.push(LineageNode {
                depth,
                trace_id: id,
                frame: self.frame(id),
            });
            if depth < max_depth {
                for &p in self.parents(id).iter().rev() {
                    stack.push((p, depth + 1));
                }
            }
        }
        out
    }
}
