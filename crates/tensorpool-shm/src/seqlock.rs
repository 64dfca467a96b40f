//! The `seq_commit` seqlock (Wire Spec §8.3, §15.3, §15.18, §15.21).
//!
//! `seq_commit` is the first 8 bytes of every header slot, 8-byte aligned (slots start at
//! `64 + i * 256` in a page-aligned mapping), and the only slot field accessed atomically.
//!
//! Producer, for logical sequence `S`:
//! 1. [`begin`]: relaxed store of `S << 1` (in progress) **then `fence(Release)`**, so that no
//!    later payload or header write can become visible before the in-progress mark (a release
//!    store alone would only order the writes *before* it);
//! 2. write the payload and the whole header (never rely on earlier contents);
//! 3. [`commit`]: release store of `(S << 1) | 1`.
//!
//! Consumer, expecting sequence `S`:
//! 1. [`read_begin`]: acquire load; LSB 0 is [`DropReason::NotCommitted`]; an older sequence is
//!    [`DropReason::Stale`], a newer one [`DropReason::Overwritten`];
//! 2. copy / inspect the header and payload;
//! 3. [`read_end`]: `fence(Acquire)` then reload; any change is [`DropReason::Late`].
//!
//! Single attempt: no lock, no wait, no retry (§15.21 "no waiting").

use std::sync::atomic::{AtomicU64, Ordering, fence};

use crate::slot::DropReason;

/// Largest logical sequence the encoding can carry (`seq << 1` must not lose a bit).
pub const MAX_SEQ: u64 = u64::MAX >> 1;

/// `(seq << 1) | 0`.
pub fn in_progress(seq: u64) -> u64 {
    seq << 1
}

/// `(seq << 1) | 1`.
pub fn committed(seq: u64) -> u64 {
    (seq << 1) | 1
}

/// The logical sequence of a `seq_commit` value.
pub fn sequence(seq_commit: u64) -> u64 {
    seq_commit >> 1
}

/// Whether a `seq_commit` value has its commit bit set.
pub fn is_committed(seq_commit: u64) -> bool {
    seq_commit & 1 == 1
}

/// The atomic word the protocol runs on: the `AtomicU64` of a slot in a mapping, or a model
/// checker's atomic in a test (`tests/loom_seqlock.rs` runs these very functions under
/// `loom`). `fence` is the word's own kind of fence, so that a model checker sees it.
pub trait SeqWord {
    /// Atomic load.
    fn load_word(&self, order: Ordering) -> u64;
    /// Atomic store.
    fn store_word(&self, value: u64, order: Ordering);
    /// A memory fence of this word's kind.
    fn fence(order: Ordering);
}

impl SeqWord for AtomicU64 {
    #[inline]
    fn load_word(&self, order: Ordering) -> u64 {
        self.load(order)
    }

    #[inline]
    fn store_word(&self, value: u64, order: Ordering) {
        self.store(value, order)
    }

    #[inline]
    fn fence(order: Ordering) {
        fence(order)
    }
}

/// Producer step 1: mark the slot in progress for `seq`, then a release fence so that the
/// payload and header writes that follow cannot be seen before the mark.
#[inline]
pub fn begin<W: SeqWord + ?Sized>(word: &W, seq: u64) {
    word.store_word(in_progress(seq), Ordering::Relaxed);
    W::fence(Ordering::Release);
}

/// Producer last step: publish the frame with a release store of the committed value.
#[inline]
pub fn commit<W: SeqWord + ?Sized>(word: &W, seq: u64) {
    word.store_word(committed(seq), Ordering::Release);
}

/// Consumer step 1: acquire-load and classify. Returns the observed word on success.
#[inline]
pub fn read_begin<W: SeqWord + ?Sized>(word: &W, expected_seq: u64) -> Result<u64, DropReason> {
    let v = word.load_word(Ordering::Acquire);
    classify(v, expected_seq)?;
    Ok(v)
}

/// Classifies an observed `seq_commit` against the expected sequence.
pub fn classify(seq_commit: u64, expected_seq: u64) -> Result<(), DropReason> {
    let found = sequence(seq_commit);
    if found < expected_seq {
        // Older content (or a decreased seq_commit): stale; §15.3.
        return Err(DropReason::Stale);
    }
    if found > expected_seq {
        return Err(DropReason::Overwritten);
    }
    if !is_committed(seq_commit) {
        return Err(DropReason::NotCommitted);
    }
    Ok(())
}

/// Consumer last step: `fence(Acquire)` orders every read of the header / payload before the
/// reload; the frame is accepted only if the word did not change since [`read_begin`].
#[inline]
pub fn read_end<W: SeqWord + ?Sized>(word: &W, first: u64) -> Result<(), DropReason> {
    W::fence(Ordering::Acquire);
    if word.load_word(Ordering::Acquire) == first {
        Ok(())
    } else {
        Err(DropReason::Late)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn w_8_3_commit_encoding() {
        assert_eq!(in_progress(5), 10);
        assert_eq!(committed(5), 11);
        assert_eq!(sequence(11), 5);
        assert!(is_committed(11));
        assert!(!is_committed(10));
        assert_eq!(sequence(committed(MAX_SEQ)), MAX_SEQ);
    }

    #[test]
    fn w_8_3_consumer_drops_uncommitted() {
        let w = AtomicU64::new(0);
        begin(&w, 3);
        assert_eq!(read_begin(&w, 3), Err(DropReason::NotCommitted));
        commit(&w, 3);
        let v = read_begin(&w, 3).unwrap();
        assert_eq!(read_end(&w, v), Ok(()));
    }

    #[test]
    fn w_8_3_consumer_requires_expected_sequence() {
        let w = AtomicU64::new(committed(9));
        assert_eq!(read_begin(&w, 9).map(sequence), Ok(9));
        assert_eq!(read_begin(&w, 1), Err(DropReason::Overwritten));
        assert_eq!(read_begin(&w, 17), Err(DropReason::Stale));
    }

    #[test]
    fn w_15_3_decreased_seq_commit_is_stale() {
        let w = AtomicU64::new(committed(8));
        // the slot went backwards (e.g. a stale writer); we expected 16
        assert_eq!(read_begin(&w, 16), Err(DropReason::Stale));
        // never-written slot
        let z = AtomicU64::new(0);
        assert_eq!(read_begin(&z, 1), Err(DropReason::Stale));
        assert_eq!(read_begin(&z, 0), Err(DropReason::NotCommitted));
    }

    #[test]
    fn w_15_3_change_between_reads_is_late() {
        let w = AtomicU64::new(committed(4));
        let v = read_begin(&w, 4).unwrap();
        begin(&w, 12);
        assert_eq!(read_end(&w, v), Err(DropReason::Late));
    }
}
