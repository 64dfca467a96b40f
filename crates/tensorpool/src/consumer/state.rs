//! The data and state-machine types [`super::ConsumerCore`] owns: the mapping state of Wire
//! Spec §15.12 / §15.21 ([`ConsumerState`], [`Fallback`], [`Rejection`]), the per-consumer
//! stream assignment, sequence accounting ([`SeqTracker`]) and the remap backoffs.

/// Where the consumer stands (Wire Spec §15.12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerState {
    /// Waiting for a usable `ShmPoolAnnounce` (M0).
    Unmapped,
    /// Regions mapped and validated for `epoch` (M1).
    Mapped {
        /// The mapped epoch.
        epoch: u64,
    },
    /// SHM not used: the producer said `use_shm = false`, or mapping failed and a fallback
    /// URI is configured. See [`super::Consumer::fallback`].
    Fallback,
}

/// Why and where the consumer falls back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fallback {
    /// `payload_fallback_uri` (empty when none was given).
    pub uri: String,
    /// Whether the scheme is one this library recognises (`aeron:` channels, `bridge://`);
    /// undefined schemes are unsupported (Wire Spec §10.1.3).
    pub supported: bool,
    /// The Aeron channel and stream id the frames come through (as `BridgeFrameChunk`s,
    /// see `consumer/fallback.rs`); `None` when the URI cannot be served (an undefined
    /// scheme, an `aeron:` channel without a stream id, an unknown `bridge://` id: the
    /// reason is in [`super::Consumer::last_rejection`]), and then no frame arrives.
    pub target: Option<(String, i32)>,
    /// Whether the producer (or supervisor) ordered it, as opposed to a local mapping failure.
    pub ordered: bool,
}

impl Fallback {
    pub(crate) fn new(uri: &[u8], ordered: bool) -> Self {
        let uri = String::from_utf8_lossy(uri).into_owned();
        let supported = uri.starts_with("aeron:") || uri.starts_with("bridge://");
        Self {
            uri,
            supported,
            ordered,
            target: None,
        }
    }
}

/// Why the consumer last refused an announce, its regions, or a mapping it held (see
/// [`super::Consumer::last_rejection`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// What was wrong, in words (the region, the field, expected and found).
    pub reason: String,
    /// The epoch concerned.
    pub epoch: u64,
    /// When, wall clock: nanoseconds since the Unix epoch.
    pub at_unix_ns: u64,
}

/// A per-consumer stream assignment received in `ConsumerConfig`, applied after the poll.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Assignment {
    pub descriptor: Option<(String, i32)>,
    pub control: Option<(String, i32)>,
}

/// Sequence accounting within an epoch (§15.4). Only a frame the slot proved (committed with
/// that sequence) moves `last`; a descriptor the slot refused changes nothing but the count
/// of sequences seen since, so that a forged descriptor (any sequence, any epoch) can neither
/// make the real frames look like regressions nor add gaps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SeqTracker {
    /// Last sequence proven by its slot.
    pub last: Option<u64>,
    /// Descriptors refused by the slot since `last`, counted once per increasing sequence
    /// (they were seen, so they are not gaps).
    seen_between: u64,
    top: Option<u64>,
}

impl SeqTracker {
    /// Whether `seq` is not above the last proven sequence (a duplicate or regression).
    pub fn regressed(&self, seq: u64) -> bool {
        self.last.is_some_and(|last| seq <= last)
    }

    /// A descriptor for `seq` (above `last`) that its slot refused.
    pub fn unproven(&mut self, seq: u64) {
        if self.top.is_none_or(|t| seq > t) {
            self.top = Some(seq);
            self.seen_between += 1;
        }
    }

    /// The slot proved frame `seq` (above `last`): returns the frames never seen since the
    /// last proven one (0 for the first frame of an epoch).
    pub fn prove(&mut self, seq: u64) -> u64 {
        let gap = self
            .last
            .map_or(0, |last| (seq - last - 1).saturating_sub(self.seen_between));
        *self = Self {
            last: Some(seq),
            seen_between: 0,
            top: None,
        };
        gap
    }
}

/// Backoff after a failed mapping, per announce: keyed by epoch and by what the announce
/// names (URIs and geometry, [`Backoffs`] callers hash them), a few at once, so that a
/// failing (possibly forged) announce delays neither other epochs nor a different announce
/// of the same epoch, and is retried itself after its time.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Backoffs {
    /// (epoch, announce key, not before); `until == 0` for a free entry.
    entries: [(u64, u64, u64); 8],
}

impl Backoffs {
    /// Whether this announce failed and its backoff has not run out at `now_ns`.
    pub fn active(&self, epoch: u64, key: u64, now_ns: u64) -> bool {
        self.entries
            .iter()
            .any(|&(e, k, until)| e == epoch && k == key && now_ns < until)
    }

    /// The announce failed: not retried before `until`. Takes its own entry, else an
    /// expired one, else the one that expires first.
    pub fn fail(&mut self, epoch: u64, key: u64, until: u64, now_ns: u64) {
        let i = self
            .entries
            .iter()
            .position(|&(e, k, u)| e == epoch && k == key && u != 0)
            .or_else(|| self.entries.iter().position(|&(_, _, u)| u <= now_ns))
            .unwrap_or_else(|| {
                (0..self.entries.len())
                    .min_by_key(|&i| self.entries[i].2)
                    .unwrap_or(0)
            });
        self.entries[i] = (epoch, key, until.max(1));
    }

    /// `epoch` mapped: every backoff of it goes.
    pub fn clear(&mut self, epoch: u64) {
        for entry in &mut self.entries {
            if entry.0 == epoch {
                *entry = (0, 0, 0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_tracker_moves_only_on_proof() {
        let mut s = SeqTracker::default();
        assert_eq!(s.prove(10), 0);
        // forged descriptors: a huge sequence, then the real 11 (refused: not yet written)
        s.unproven(1 << 60);
        assert!(!s.regressed(11));
        assert_eq!(s.last, Some(10));
        assert_eq!(s.prove(12), 0, "a forged descriptor hides at most one gap");
        assert!(s.regressed(12));
        s.unproven(13);
        s.unproven(14);
        s.unproven(14);
        assert_eq!(
            s.prove(20),
            5,
            "13 and 14 were seen (dropped), 15..=19 never"
        );
    }

    #[test]
    fn backoffs_are_per_epoch() {
        let mut b = Backoffs::default();
        b.fail(7, 1, 100, 0);
        assert!(b.active(7, 1, 50));
        assert!(!b.active(7, 2, 50), "another announce of the same epoch");
        assert!(!b.active(8, 1, 50));
        assert!(!b.active(7, 1, 100));
        for e in 100..120 {
            b.fail(e, 1, 200 + e, 10);
        }
        assert!(b.active(119, 1, 150));
        b.clear(119);
        assert!(!b.active(119, 1, 150));
    }
}
