//! Stream id allocation from configured ranges (Driver Model §11): dynamic stream ids from
//! `driver.stream_id_range`, and per-consumer descriptor / control stream ids from
//! `driver.descriptor_stream_id_range` / `driver.control_stream_id_range`.
//!
//! The per-consumer allocator is a tested component with a small API; the producer /
//! supervisor side that answers `ConsumerHello` with `ConsumerConfig` wires it in:
//!
//! ```
//! use tensorpool::config::IdRange;
//! use tensorpool::driver::{ConsumerStreamIds, PerConsumerStream, Decline};
//!
//! let mut ids = ConsumerStreamIds::new(IdRange::new(31000, 31001), None);
//! // a consumer asks for a per-consumer descriptor stream with id 0: allocate one
//! assert_eq!(ids.descriptor(7, 0), PerConsumerStream::Allocated(31000));
//! // asking again returns the same id
//! assert_eq!(ids.descriptor(7, 0), PerConsumerStream::Allocated(31000));
//! // the control range is unset: decline, fall back to the shared stream
//! assert_eq!(ids.control(7, 0), PerConsumerStream::Declined(Decline::RangeUnset));
//! ids.release(7);
//! ```

use crate::config::IdRange;

/// Why a per-consumer stream request was declined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decline {
    /// The range is not configured: the consumer uses the shared stream (Driver Model §11).
    RangeUnset,
    /// Every id of the range is assigned: answer with an empty channel and stream id 0
    /// (Wire Spec §10.1.3; the attach itself may still succeed).
    Exhausted,
}

/// The answer to a per-consumer stream request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PerConsumerStream {
    /// An id allocated from the range (the request said 0).
    Allocated(u32),
    /// The consumer named a non-zero id itself; it is used as requested.
    Requested(u32),
    /// Declined.
    Declined(Decline),
}

/// Ids of one range handed out to consumers.
#[derive(Debug, Clone)]
struct IdPool {
    range: IdRange,
    assigned: Vec<(u32, u32)>, // (stream id, consumer id)
    cursor: u32,
}

impl IdPool {
    fn new(range: IdRange) -> Self {
        Self {
            range,
            assigned: Vec::new(),
            cursor: range.start,
        }
    }

    fn assign(&mut self, consumer_id: u32) -> Option<u32> {
        if let Some(&(id, _)) = self.assigned.iter().find(|(_, c)| *c == consumer_id) {
            return Some(id);
        }
        let id = next_free(self.range, &mut self.cursor, |id| {
            self.assigned.iter().any(|(a, _)| *a == id)
        })?;
        self.assigned.push((id, consumer_id));
        Some(id)
    }

    fn release(&mut self, consumer_id: u32) {
        self.assigned.retain(|(_, c)| *c != consumer_id);
    }
}

/// The next id of `range` at or after `cursor` (wrapping) that `taken` says is free; moves
/// the cursor past it. `None` when every id is taken.
pub(crate) fn next_free(
    range: IdRange,
    cursor: &mut u32,
    taken: impl Fn(u32) -> bool,
) -> Option<u32> {
    let mut candidate = if range.contains(*cursor) {
        *cursor
    } else {
        range.start
    };
    for _ in 0..range.len() {
        let next = if candidate == range.end {
            range.start
        } else {
            candidate + 1
        };
        if !taken(candidate) {
            *cursor = next;
            return Some(candidate);
        }
        candidate = next;
    }
    None
}

/// Per-consumer descriptor and control stream ids.
#[derive(Debug, Clone)]
pub struct ConsumerStreamIds {
    descriptor: Option<IdPool>,
    control: Option<IdPool>,
}

impl ConsumerStreamIds {
    /// An allocator over the two ranges (either may be unset).
    pub fn new(descriptor: Option<IdRange>, control: Option<IdRange>) -> Self {
        Self {
            descriptor: descriptor.map(IdPool::new),
            control: control.map(IdPool::new),
        }
    }

    fn request(pool: &mut Option<IdPool>, consumer_id: u32, requested: u32) -> PerConsumerStream {
        if requested != 0 {
            return PerConsumerStream::Requested(requested);
        }
        let Some(pool) = pool else {
            return PerConsumerStream::Declined(Decline::RangeUnset);
        };
        match pool.assign(consumer_id) {
            Some(id) => PerConsumerStream::Allocated(id),
            None => PerConsumerStream::Declined(Decline::Exhausted),
        }
    }

    /// A descriptor stream for `consumer_id`, which asked for `requested` (0: allocate).
    pub fn descriptor(&mut self, consumer_id: u32, requested: u32) -> PerConsumerStream {
        Self::request(&mut self.descriptor, consumer_id, requested)
    }

    /// A control stream for `consumer_id`, which asked for `requested` (0: allocate).
    pub fn control(&mut self, consumer_id: u32, requested: u32) -> PerConsumerStream {
        Self::request(&mut self.control, consumer_id, requested)
    }

    /// Frees every id assigned to `consumer_id` (it left or went stale).
    pub fn release(&mut self, consumer_id: u32) {
        for pool in [&mut self.descriptor, &mut self.control]
            .into_iter()
            .flatten()
        {
            pool.release(consumer_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_declines_when_exhausted_and_reuses_after_release() {
        let mut ids = ConsumerStreamIds::new(IdRange::new(10, 11), IdRange::new(20, 20));
        assert_eq!(ids.descriptor(1, 0), PerConsumerStream::Allocated(10));
        assert_eq!(ids.descriptor(2, 0), PerConsumerStream::Allocated(11));
        assert_eq!(
            ids.descriptor(3, 0),
            PerConsumerStream::Declined(Decline::Exhausted)
        );
        assert_eq!(ids.control(1, 0), PerConsumerStream::Allocated(20));
        assert_eq!(
            ids.control(2, 0),
            PerConsumerStream::Declined(Decline::Exhausted)
        );
        assert_eq!(ids.descriptor(4, 555), PerConsumerStream::Requested(555));
        ids.release(1);
        assert_eq!(ids.descriptor(3, 0), PerConsumerStream::Allocated(10));
        assert_eq!(ids.control(2, 0), PerConsumerStream::Allocated(20));
    }

    #[test]
    fn unset_ranges_decline_to_the_shared_stream() {
        let mut ids = ConsumerStreamIds::new(None, None);
        assert_eq!(
            ids.descriptor(1, 0),
            PerConsumerStream::Declined(Decline::RangeUnset)
        );
        assert_eq!(
            ids.control(1, 0),
            PerConsumerStream::Declined(Decline::RangeUnset)
        );
    }

    #[test]
    fn next_free_wraps_and_skips_taken_ids() {
        let r = IdRange::new(5, 7).unwrap();
        let mut cursor = 7;
        assert_eq!(next_free(r, &mut cursor, |id| id == 7), Some(5));
        assert_eq!(cursor, 6);
        assert_eq!(next_free(r, &mut cursor, |_| true), None);
    }
}
