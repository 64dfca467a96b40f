//! Frame assembly on the receiver (Bridge Spec §5.2, §5.3, §5.3a): chunks of one
//! `(epoch, seq)` are placed by `chunkOffset`/`chunkLength` into a preallocated buffer, in
//! any order; an identical duplicate is ignored; an overlapping or conflicting chunk, a
//! chunk whose frame-wide fields (`chunkCount`, `payloadLength`, `traceId`) differ from the
//! first one seen, kills the frame; a frame still incomplete after the assembly timeout is
//! dropped. Every buffer is allocated once ([`Assembler::new`]): nothing allocates per chunk.

use tensorpool_shm::HEADER_SLOT_BYTES;

/// Where a frame's assembly stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState {
    /// Unused.
    Free,
    /// Chunks arriving.
    Assembling,
    /// Complete and handed on; later chunks of it are duplicates until the slot is reused.
    Done,
    /// Dropped (conflict, CRC, bad header); later chunks of it are dropped.
    Dead,
}

/// What placing one chunk did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    /// Stored; the frame is still incomplete.
    Stored,
    /// Stored, and the frame is now complete: read it with [`Assembler::slot`].
    Complete(usize),
    /// An identical duplicate (same offset, length and bytes) or a chunk of a frame already
    /// complete: ignored.
    Duplicate,
    /// The chunk belongs to a frame already dropped: ignored.
    OfDeadFrame,
    /// The chunk conflicts with the frame (overlap, different bytes for one offset, frame
    /// fields that differ, index seen twice, counts that cannot add up): the frame is dropped.
    Conflict,
    /// A complete frame in progress was evicted to make room (the new chunk was stored).
    StoredEvicting,
}

/// One chunk's fields, already checked one by one ([`super::receive::check_fields`]).
#[derive(Debug, Clone, Copy)]
pub struct ChunkRef<'a> {
    /// Source epoch.
    pub epoch: u64,
    /// Frame sequence.
    pub seq: u64,
    /// Trace id (0: none).
    pub trace_id: u64,
    /// Chunk index.
    pub chunk_index: u32,
    /// Chunks in the frame.
    pub chunk_count: u32,
    /// Offset into the payload.
    pub chunk_offset: u32,
    /// Total payload length.
    pub payload_length: u32,
    /// The header block (chunk 0 only).
    pub header: Option<&'a [u8]>,
    /// The chunk's payload bytes.
    pub payload: &'a [u8],
}

/// One in-flight frame.
#[derive(Debug)]
pub struct Slot {
    state: SlotState,
    epoch: u64,
    seq: u64,
    trace_id: u64,
    chunk_count: u32,
    payload_length: u32,
    chunks: u32,
    bytes: u64,
    started_ns: u64,
    header_seen: bool,
    header: [u8; HEADER_SLOT_BYTES],
    buf: Vec<u8>,
    covered: Vec<u64>,
    starts: Vec<u64>,
    indices: Vec<u64>,
}

impl Slot {
    fn new(capacity: usize) -> Self {
        Self {
            state: SlotState::Free,
            epoch: 0,
            seq: 0,
            trace_id: 0,
            chunk_count: 0,
            payload_length: 0,
            chunks: 0,
            bytes: 0,
            started_ns: 0,
            header_seen: false,
            header: [0; HEADER_SLOT_BYTES],
            buf: vec![0; capacity],
            covered: vec![0; capacity.div_ceil(64) + 1],
            starts: vec![0; capacity.div_ceil(64) + 1],
            indices: vec![0; 65_536 / 64],
        }
    }

    /// State.
    pub fn state(&self) -> SlotState {
        self.state
    }

    /// Sequence of the frame.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Epoch of the frame.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Trace id of the frame (0: none).
    pub fn trace_id(&self) -> u64 {
        self.trace_id
    }

    /// The header block (valid once complete).
    pub fn header(&self) -> &[u8; HEADER_SLOT_BYTES] {
        &self.header
    }

    /// The payload (valid once complete).
    pub fn payload(&self) -> &[u8] {
        &self.buf[..self.payload_length as usize]
    }

    fn reset(&mut self, c: &ChunkRef<'_>, now_ns: u64) {
        let words = (c.payload_length as usize).div_ceil(64) + 1;
        self.covered[..words].fill(0);
        self.starts[..words].fill(0);
        self.indices.fill(0);
        self.state = SlotState::Assembling;
        self.epoch = c.epoch;
        self.seq = c.seq;
        self.trace_id = c.trace_id;
        self.chunk_count = c.chunk_count;
        self.payload_length = c.payload_length;
        self.chunks = 0;
        self.bytes = 0;
        self.started_ns = now_ns;
        self.header_seen = false;
    }

    fn place(&mut self, c: &ChunkRef<'_>) -> Placed {
        if c.chunk_count != self.chunk_count
            || c.payload_length != self.payload_length
            || c.trace_id != self.trace_id
        {
            self.state = SlotState::Dead;
            return Placed::Conflict;
        }
        let off = c.chunk_offset as usize;
        let len = c.payload.len();
        let end = off + len;
        let index_seen = bit(&self.indices, c.chunk_index as usize);
        if index_seen {
            let identical = len > 0
                && bit(&self.starts, off)
                && all_set(&self.covered, off, end)
                && (end == self.payload_length as usize || bit(&self.starts, end))
                && !any_set(&self.starts, off + 1, end)
                && self.buf[off..end] == *c.payload;
            let empty_identical = len == 0 && self.payload_length == 0;
            let header_ok = match c.header {
                Some(h) => self.header_seen && self.header[..] == *h,
                None => true,
            };
            if (identical || empty_identical) && header_ok {
                return Placed::Duplicate;
            }
            self.state = SlotState::Dead;
            return Placed::Conflict;
        }
        if any_set(&self.covered, off, end) {
            self.state = SlotState::Dead;
            return Placed::Conflict;
        }
        self.buf[off..end].copy_from_slice(c.payload);
        set_range(&mut self.covered, off, end);
        set_bit(&mut self.starts, off);
        set_bit(&mut self.indices, c.chunk_index as usize);
        if let Some(h) = c.header {
            self.header.copy_from_slice(h);
            self.header_seen = true;
        }
        self.chunks += 1;
        self.bytes += len as u64;
        let full = self.bytes == u64::from(self.payload_length);
        if self.chunks == self.chunk_count {
            if full && self.header_seen {
                self.state = SlotState::Done;
                return Placed::Complete(usize::MAX);
            }
            self.state = SlotState::Dead;
            return Placed::Conflict;
        }
        if full && self.payload_length > 0 {
            // every byte is here but chunks are missing: they could only overlap
            self.state = SlotState::Dead;
            return Placed::Conflict;
        }
        Placed::Stored
    }
}

fn bit(words: &[u64], i: usize) -> bool {
    words[i / 64] & (1 << (i % 64)) != 0
}

fn set_bit(words: &mut [u64], i: usize) {
    words[i / 64] |= 1 << (i % 64);
}

/// Mask of bits `lo..hi` of one word (`hi <= 64`).
/// The words of bit range `start..end` (non-empty): first and last word index and the masks
/// of the bits of the range in them (the words between are wholly inside). One pass over
/// whole words, which the compiler vectorizes: a chunk of 8 KiB is 128 words, where a loop
/// per word with its own mask cost more than copying the chunk.
fn span(start: usize, end: usize) -> (usize, usize, u64, u64) {
    let (first, last) = (start / 64, (end - 1) / 64);
    let lo = u64::MAX << (start % 64);
    let hi = u64::MAX >> (63 - (end - 1) % 64);
    (first, last, lo, hi)
}

fn any_set(words: &[u64], start: usize, end: usize) -> bool {
    if start >= end {
        return false;
    }
    let (first, last, lo, hi) = span(start, end);
    if first == last {
        return words[first] & lo & hi != 0;
    }
    let inner = words[first + 1..last].iter().fold(0u64, |a, &w| a | w);
    words[first] & lo != 0 || words[last] & hi != 0 || inner != 0
}

fn all_set(words: &[u64], start: usize, end: usize) -> bool {
    if start >= end {
        return true;
    }
    let (first, last, lo, hi) = span(start, end);
    if first == last {
        let m = lo & hi;
        return words[first] & m == m;
    }
    let inner = words[first + 1..last].iter().fold(u64::MAX, |a, &w| a & w);
    words[first] & lo == lo && words[last] & hi == hi && inner == u64::MAX
}

fn set_range(words: &mut [u64], start: usize, end: usize) {
    if start >= end {
        return;
    }
    let (first, last, lo, hi) = span(start, end);
    if first == last {
        words[first] |= lo & hi;
        return;
    }
    words[first] |= lo;
    words[first + 1..last].fill(u64::MAX);
    words[last] |= hi;
}

/// The in-flight frames of one mapping: `slots` frames of at most `capacity` payload bytes.
#[derive(Debug)]
pub struct Assembler {
    slots: Vec<Slot>,
    capacity: usize,
    timeout_ns: u64,
    /// The last [`RECENT`] frames completed `(epoch, seq)`: a late duplicate of one of them
    /// is ignored even after its slot was reused, so no frame is handed on twice.
    recent: [(u64, u64); RECENT],
    recent_next: usize,
}

/// Completed frames remembered per mapping (see `Assembler::recent`).
pub const RECENT: usize = 64;

/// What [`Assembler::expire`] dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expired {
    /// Incomplete frames past the timeout.
    pub timed_out: u64,
}

impl Assembler {
    /// Preallocates `slots` assembly buffers of `capacity` payload bytes each.
    pub fn new(slots: usize, capacity: usize, timeout_ns: u64) -> Self {
        Self {
            slots: (0..slots.max(1)).map(|_| Slot::new(capacity)).collect(),
            capacity,
            timeout_ns,
            recent: [(u64::MAX, u64::MAX); RECENT],
            recent_next: 0,
        }
    }

    /// Largest payload a frame may have.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Slot `i`.
    pub fn slot(&self, i: usize) -> &Slot {
        &self.slots[i]
    }

    /// Frames being assembled now.
    pub fn in_flight(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.state == SlotState::Assembling)
            .count()
    }

    /// Places a chunk whose fields were checked (offset + length within the payload, the
    /// payload within [`Assembler::capacity`]).
    pub fn place(&mut self, c: &ChunkRef<'_>, now_ns: u64) -> Placed {
        debug_assert!(c.payload_length as usize <= self.capacity);
        debug_assert!(c.chunk_offset as usize + c.payload.len() <= c.payload_length as usize);
        if self.recent.contains(&(c.epoch, c.seq)) {
            return Placed::Duplicate;
        }
        if let Some(i) = self
            .slots
            .iter()
            .position(|s| s.state != SlotState::Free && s.epoch == c.epoch && s.seq == c.seq)
        {
            let s = &mut self.slots[i];
            return match s.state {
                SlotState::Done => Placed::Duplicate,
                SlotState::Dead => Placed::OfDeadFrame,
                _ => match s.place(c) {
                    Placed::Complete(_) => {
                        self.remember(c.epoch, c.seq);
                        Placed::Complete(i)
                    }
                    p => p,
                },
            };
        }
        // a new frame: a free slot, else the oldest finished one, else evict the oldest
        let pick = self
            .slots
            .iter()
            .position(|s| s.state == SlotState::Free)
            .or_else(|| {
                self.slots
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| matches!(s.state, SlotState::Done | SlotState::Dead))
                    .min_by_key(|(_, s)| s.started_ns)
                    .map(|(i, _)| i)
            });
        let (i, evicted) = match pick {
            Some(i) => (i, false),
            None => {
                let i = self
                    .slots
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, s)| s.started_ns)
                    .map_or(0, |(i, _)| i);
                (i, true)
            }
        };
        let s = &mut self.slots[i];
        s.reset(c, now_ns);
        match s.place(c) {
            Placed::Complete(_) => {
                self.remember(c.epoch, c.seq);
                Placed::Complete(i)
            }
            Placed::Stored if evicted => Placed::StoredEvicting,
            p => p,
        }
    }

    fn remember(&mut self, epoch: u64, seq: u64) {
        self.recent[self.recent_next] = (epoch, seq);
        self.recent_next = (self.recent_next + 1) % RECENT;
    }

    /// Drops every frame of an older epoch than `epoch` (or every frame: `u64::MAX`);
    /// returns the incomplete ones dropped.
    pub fn drop_before(&mut self, epoch: u64) -> u64 {
        let mut n = 0;
        for s in &mut self.slots {
            if s.state != SlotState::Free && s.epoch < epoch {
                n += u64::from(s.state == SlotState::Assembling);
                s.state = SlotState::Free;
            }
        }
        n
    }

    /// Frees slots older than the timeout; counts the incomplete ones.
    pub fn expire(&mut self, now_ns: u64) -> Expired {
        let mut e = Expired::default();
        for s in &mut self.slots {
            if s.state != SlotState::Free && now_ns.saturating_sub(s.started_ns) >= self.timeout_ns
            {
                e.timed_out += u64::from(s.state == SlotState::Assembling);
                s.state = SlotState::Free;
            }
        }
        e
    }

    /// Marks slot `i` dead (a complete frame failed validation after assembly).
    pub fn kill(&mut self, i: usize) {
        self.slots[i].state = SlotState::Dead;
    }

    /// Marks the frame `(epoch, seq)` dead if it is being assembled (a chunk of it failed
    /// its CRC): later chunks of it are dropped.
    pub fn kill_frame(&mut self, epoch: u64, seq: u64) -> bool {
        for s in &mut self.slots {
            if s.state == SlotState::Assembling && s.epoch == epoch && s.seq == seq {
                s.state = SlotState::Dead;
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_ranges() {
        let mut w = vec![0u64; 4];
        set_range(&mut w, 3, 130);
        assert!(all_set(&w, 3, 130));
        assert!(!any_set(&w, 0, 3));
        assert!(!any_set(&w, 130, 256));
        assert!(any_set(&w, 129, 131));
        assert!(!all_set(&w, 2, 5));
        assert!(all_set(&w, 64, 128));
        assert!(!any_set(&w, 5, 5));
        assert!(all_set(&w, 5, 5));
    }

    /// The word-wise helpers agree with a bit-by-bit reference on every range of 4 words,
    /// over bitmaps with one range set.
    #[test]
    fn bit_ranges_match_a_bit_by_bit_reference() {
        let n = 256;
        let naive = |w: &[u64], a: usize, b: usize| (a..b).map(|i| bit(w, i)).collect::<Vec<_>>();
        for (s0, s1) in [
            (0, 0),
            (0, 1),
            (3, 130),
            (63, 65),
            (64, 128),
            (0, 256),
            (200, 201),
        ] {
            let mut w = vec![0u64; 4];
            set_range(&mut w, s0, s1);
            for i in 0..n {
                assert_eq!(bit(&w, i), (s0..s1).contains(&i), "set {s0}..{s1} bit {i}");
            }
            for a in 0..=n {
                for b in a..=n {
                    let r = naive(&w, a, b);
                    assert_eq!(any_set(&w, a, b), r.iter().any(|&x| x), "any {a}..{b}");
                    assert_eq!(all_set(&w, a, b), r.iter().all(|&x| x), "all {a}..{b}");
                }
            }
        }
    }
}
