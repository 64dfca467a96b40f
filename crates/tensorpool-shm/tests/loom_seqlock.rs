//! The `seq_commit` seqlock (Wire Spec §8.3, §15.3) checked by the `loom` model checker: every
//! interleaving of one writer and one reader, with the weak-memory outcomes loom models for
//! relaxed loads and for fences. The protocol functions are the crate's own
//! (`seqlock::begin` / `commit` / `read_begin` / `read_end`), run on loom's atomics through
//! [`SeqWord`]. The payload is two relaxed atomic words (a seqlock's reads race with the
//! writer by design; atomics let loom model that race instead of refusing it).
//!
//! The property: a reader that accepts frame `s` (read_begin and read_end both succeed) saw
//! both payload words as frame `s` wrote them, never a mix with another frame's words.
//! `a_writer_without_the_begin_fence_can_tear` and `a_reader_without_the_end_fence_can_tear`
//! show the check has teeth: the same model with either fence left out finds a torn accepted
//! read.

use loom::sync::Arc;
use loom::sync::atomic::{AtomicU64, Ordering};
use loom::thread;
use tensorpool_shm::seqlock::{self, SeqWord};

/// A slot's `seq_commit` word on loom's atomics.
struct Word(AtomicU64);

impl SeqWord for Word {
    fn load_word(&self, order: Ordering) -> u64 {
        self.0.load(order)
    }

    fn store_word(&self, value: u64, order: Ordering) {
        self.0.store(value, order)
    }

    fn fence(order: Ordering) {
        loom::sync::atomic::fence(order)
    }
}

struct Slot {
    word: Word,
    payload: [AtomicU64; 2],
}

impl Slot {
    fn new() -> Self {
        // Frame 1 is already committed with payload [1, 1].
        Self {
            word: Word(AtomicU64::new(seqlock::committed(1))),
            payload: [AtomicU64::new(1), AtomicU64::new(1)],
        }
    }
}

/// The writer overwrites the slot with frame 2; `with_fence` false leaves out step 1's fence.
fn write_frame_2(slot: &Slot, with_fence: bool) {
    if with_fence {
        seqlock::begin(&slot.word, 2);
    } else {
        slot.word
            .store_word(seqlock::in_progress(2), Ordering::Relaxed);
    }
    slot.payload[0].store(2, Ordering::Relaxed);
    slot.payload[1].store(2, Ordering::Relaxed);
    seqlock::commit(&slot.word, 2);
}

/// The reader tries frame `expected`; returns the payload it accepted, if any.
/// `with_fence` false replaces `read_end` by a bare acquire reload (no fence before it).
fn read(slot: &Slot, expected: u64, with_fence: bool) -> Option<[u64; 2]> {
    let first = seqlock::read_begin(&slot.word, expected).ok()?;
    let words = [
        slot.payload[0].load(Ordering::Relaxed),
        slot.payload[1].load(Ordering::Relaxed),
    ];
    if with_fence {
        seqlock::read_end(&slot.word, first).ok()?;
    } else if slot.word.load_word(Ordering::Acquire) != first {
        return None;
    }
    Some(words)
}

/// Runs the model; returns whether any interleaving accepted a torn frame.
fn model(with_fence: bool, expected: u64) -> bool {
    model_with(with_fence, true, expected)
}

fn model_with(writer_fence: bool, reader_fence: bool, expected: u64) -> bool {
    let torn = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = torn.clone();
    loom::model(move || {
        let slot = Arc::new(Slot::new());
        let writer = {
            let slot = slot.clone();
            thread::spawn(move || write_frame_2(&slot, writer_fence))
        };
        if read(&slot, expected, reader_fence).is_some_and(|w| w != [expected, expected]) {
            seen.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        writer.join().unwrap();
    });
    torn.load(std::sync::atomic::Ordering::Relaxed)
}

#[test]
fn w_8_3_a_reader_of_the_old_frame_never_accepts_a_torn_payload() {
    assert!(!model(true, 1), "frame 1 accepted with frame 2's words");
}

#[test]
fn w_8_3_a_reader_of_the_new_frame_never_accepts_a_torn_payload() {
    assert!(!model(true, 2), "frame 2 accepted with frame 1's words");
}

#[test]
fn a_writer_without_the_begin_fence_can_tear() {
    assert!(
        model(false, 1),
        "without the release fence after the in-progress mark the model should find a torn \
         read: if it does not, this test no longer proves the fence is needed"
    );
}

#[test]
fn a_reader_without_the_end_fence_can_tear() {
    assert!(
        model_with(true, false, 1),
        "without the acquire fence before the reload the model should find a torn read: if it \
         does not, this test no longer proves the fence is needed"
    );
}
