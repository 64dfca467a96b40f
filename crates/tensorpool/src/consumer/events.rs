//! The consumer's signals: state changes as [`ConsumerEvent`]s in a fixed-capacity queue
//! ([`Consumer::poll_event`](super::Consumer::poll_event),
//! [`Consumer::drain_events`](super::Consumer::drain_events)), and the frame count of a
//! duty cycle ([`Polled`]).
//!
//! Events are derived after every duty cycle by comparing the mapping state and the unmap
//! counters with the previous cycle's, so they say what the application could have seen
//! with [`Consumer::state`](super::Consumer::state) plus what happened in between (an
//! unmap and a remap within one cycle is an [`ConsumerEvent::EpochChanged`]). The queue
//! holds [`EVENT_CAPACITY`] events in place (no allocation, ever): when it is full the
//! oldest event goes and [`Consumer::events_lost`](super::Consumer::events_lost) counts it.

use super::FrameHandler;
use super::core::ConsumerCore;
use super::progress::Progress;
use super::state::ConsumerState;
use crate::frame::Frame;

/// Events kept until read; older ones are dropped (and counted) beyond this.
pub const EVENT_CAPACITY: usize = 64;

/// Why a mapping was dropped (from the consumer's unmap counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnmapReason {
    /// The producer's activity timestamp went stale (producer stopped or hung).
    Stale,
    /// A superblock changed under the mapping (the file was reused for another epoch).
    SuperblockChanged,
    /// A region died (truncated, unlinked, or its producer's pid is gone).
    RegionDead,
    /// The producer or the SHM driver revoked the lease or the stream (driver mode,
    /// `use_shm = false`, a driver that went away).
    Revoked,
    /// Anything else (the consumer left the mapping for a fallback, ...).
    Other,
}

/// A change of the consumer's state (see the module docs for when each is recorded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsumerEvent {
    /// Regions of `epoch` are mapped and validated (from unmapped or fallback).
    Mapped {
        /// The mapped epoch.
        epoch: u64,
    },
    /// The mapping of `epoch` was dropped and nothing replaced it (yet).
    Unmapped {
        /// The epoch that was mapped.
        epoch: u64,
        /// Why.
        reason: UnmapReason,
    },
    /// A newer epoch replaced the mapped one (the producer restarted or bumped its epoch).
    EpochChanged {
        /// The epoch that was mapped.
        from: u64,
        /// The epoch mapped now.
        to: u64,
    },
    /// Frames come through the payload fallback, not shared memory (W §10.1.3).
    FallbackActive,
    /// The fallback ended.
    FallbackInactive,
    /// The Aeron client lost its media driver: no heartbeat within its driver timeout.
    /// Every later poll returns [`super::PollError::MediaDriverLost`]. Recorded once.
    MediaDriverLost,
}

/// What one duty cycle did: frames delivered to the handler and the work done (messages
/// read and sent, frames included; 0: idle, what an idle strategy wants).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Polled {
    /// Frames handed to the handler (each committed when it was read; a frame whose
    /// recheck then failed is still counted: the handler saw it).
    pub frames: usize,
    /// Work done, frames included.
    pub work: usize,
}

/// The fixed-capacity queue and what the last cycle saw.
#[derive(Debug)]
pub(crate) struct Events {
    ring: [Option<ConsumerEvent>; EVENT_CAPACITY],
    head: usize,
    len: usize,
    lost: u64,
    state: ConsumerState,
    /// unmaps_stale, unmaps_superblock, unmaps_dead, unmaps_revoked at the last look.
    unmaps: [u64; 4],
    driver_lost: bool,
}

impl Default for Events {
    fn default() -> Self {
        Self {
            ring: [None; EVENT_CAPACITY],
            head: 0,
            len: 0,
            lost: 0,
            state: ConsumerState::Unmapped,
            unmaps: [0; 4],
            driver_lost: false,
        }
    }
}

fn unmaps(core: &ConsumerCore) -> [u64; 4] {
    let c = &core.counters;
    [
        c.unmaps_stale.get(),
        c.unmaps_superblock.get(),
        c.unmaps_dead.get(),
        c.unmaps_revoked.get(),
    ]
}

impl Events {
    pub fn push(&mut self, e: ConsumerEvent) {
        if self.len == EVENT_CAPACITY {
            self.head = (self.head + 1) % EVENT_CAPACITY;
            self.len -= 1;
            self.lost += 1;
        }
        self.ring[(self.head + self.len) % EVENT_CAPACITY] = Some(e);
        self.len += 1;
    }

    pub fn pop(&mut self) -> Option<ConsumerEvent> {
        if self.len == 0 {
            return None;
        }
        let e = self.ring[self.head].take();
        self.head = (self.head + 1) % EVENT_CAPACITY;
        self.len -= 1;
        e
    }

    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// The media driver is gone: recorded once.
    pub fn driver_lost(&mut self) {
        if !self.driver_lost {
            self.driver_lost = true;
            self.push(ConsumerEvent::MediaDriverLost);
        }
    }

    /// Compares the core's state with the last look and records the changes.
    pub fn observe(&mut self, core: &ConsumerCore) {
        let now = core.state();
        let counts = unmaps(core);
        let was = self.state;
        let unmapped_since = counts != self.unmaps;
        let reason = || {
            const REASONS: [UnmapReason; 4] = [
                UnmapReason::Stale,
                UnmapReason::SuperblockChanged,
                UnmapReason::RegionDead,
                UnmapReason::Revoked,
            ];
            (0..4)
                .rev()
                .find(|&i| counts[i] != self.unmaps[i])
                .map_or(UnmapReason::Other, |i| REASONS[i])
        };
        if now == was && !unmapped_since {
            return;
        }
        let reason = reason();
        self.unmaps = counts;
        self.state = now;
        use ConsumerState::*;
        match (was, now) {
            (Mapped { epoch: a }, Mapped { epoch: b }) if a != b => {
                self.push(ConsumerEvent::EpochChanged { from: a, to: b })
            }
            (Mapped { epoch: a }, Mapped { .. }) => {
                // unmapped and mapped again within one cycle (same epoch number)
                self.push(ConsumerEvent::Unmapped { epoch: a, reason });
                self.push(ConsumerEvent::Mapped { epoch: a });
            }
            (Mapped { epoch }, Unmapped) => self.push(ConsumerEvent::Unmapped { epoch, reason }),
            (Mapped { epoch }, Fallback) => {
                self.push(ConsumerEvent::Unmapped { epoch, reason });
                self.push(ConsumerEvent::FallbackActive);
            }
            (Unmapped, Mapped { epoch }) => self.push(ConsumerEvent::Mapped { epoch }),
            (Unmapped, Fallback) => self.push(ConsumerEvent::FallbackActive),
            (Fallback, Unmapped) => self.push(ConsumerEvent::FallbackInactive),
            (Fallback, Mapped { epoch }) => {
                self.push(ConsumerEvent::FallbackInactive);
                self.push(ConsumerEvent::Mapped { epoch });
            }
            (Unmapped, Unmapped) | (Fallback, Fallback) => {}
        }
    }
}

/// A handler that counts the frames it passes on.
pub(crate) struct Counting<'h, H: ?Sized> {
    pub inner: &'h mut H,
    pub frames: usize,
}

impl<H: FrameHandler + ?Sized> FrameHandler for Counting<'_, H> {
    fn on_frame(&mut self, frame: &Frame<'_>) {
        self.frames += 1;
        self.inner.on_frame(frame);
    }

    fn on_progress(&mut self, progress: &Progress<'_>) {
        self.inner.on_progress(progress);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_keeps_the_newest_and_counts_the_rest() {
        let mut q = Events::default();
        for i in 0..(EVENT_CAPACITY as u64 + 3) {
            q.push(ConsumerEvent::Mapped { epoch: i });
        }
        assert_eq!(q.lost(), 3);
        assert_eq!(q.pop(), Some(ConsumerEvent::Mapped { epoch: 3 }));
        let mut n = 1;
        while q.pop().is_some() {
            n += 1;
        }
        assert_eq!(n, EVENT_CAPACITY);
        q.driver_lost();
        q.driver_lost();
        assert_eq!(q.pop(), Some(ConsumerEvent::MediaDriverLost));
        assert_eq!(q.pop(), None, "recorded once");
    }
}
