//! The consumer without Aeron: [`ConsumerCore`] takes decoded-from-the-wire message bytes and
//! a clock, and hands frames to a handler, exactly as [`super::Consumer`]'s duty cycle does
//! (the same handlers, the same state). For tests and fuzzing (`fuzz/`, target
//! `consumer_core`): the files it maps are whatever the announces name.

use tensorpool_shm::AllowedBaseDirs;

use super::state::Core;
use super::{
    BuildError, ConsumerConfig, ConsumerCounters, ConsumerState, Drops, FrameHandler, Rejection,
};

/// A consumer's message handlers and state, without subscriptions, publications or timers.
#[derive(Debug)]
pub struct ConsumerCore {
    core: Core,
}

impl ConsumerCore {
    /// A core for `cfg` (its allowed base dirs canonicalized now; no Aeron counters).
    pub fn new(cfg: ConsumerConfig) -> Result<Self, BuildError> {
        let allowed = AllowedBaseDirs::new(&cfg.allowed_base_dirs)?;
        Ok(Self {
            core: Core::new(cfg, allowed, Default::default(), Default::default()),
        })
    }

    /// One message of the announce stream (`ShmPoolAnnounce`; anything else is ignored).
    /// `join_time_ns` is the announce subscription's join time (MONOTONIC announces stamped
    /// before it are ignored).
    pub fn on_announce(&mut self, msg: &[u8], now_ns: u64, join_time_ns: u64) {
        self.core.join_time_ns = join_time_ns;
        self.core.on_announce_message(msg, now_ns);
    }

    /// One message of the descriptor stream; returns 1 if a frame reached the handler and
    /// was accepted.
    pub fn on_descriptor<H: FrameHandler + ?Sized>(
        &mut self,
        msg: &[u8],
        now_ns: u64,
        handler: &mut H,
    ) -> usize {
        let before = self.core.counters.accepted.get();
        self.core.on_descriptor_message(msg, now_ns, handler);
        usize::from(self.core.counters.accepted.get() != before)
    }

    /// One message of the control stream (`ConsumerConfig`, `FrameProgress`).
    pub fn on_control<H: FrameHandler + ?Sized>(&mut self, msg: &[u8], handler: &mut H) {
        self.core.on_control_message(msg, handler);
    }

    /// One message of the metadata stream.
    pub fn on_metadata(&mut self, msg: &[u8]) {
        self.core.on_metadata_message(msg);
    }

    /// The liveness timer (activity, superblock, dead regions).
    pub fn check_liveness(&mut self, now_ns: u64) {
        self.core.check_liveness(now_ns);
    }

    /// Mapping state.
    pub fn state(&self) -> ConsumerState {
        self.core.state()
    }

    /// Counters.
    pub fn counters(&self) -> ConsumerCounters {
        self.core.counters.snapshot()
    }

    /// Drops per cause and gaps.
    pub fn drops(&self) -> Drops {
        self.core.drops.snapshot()
    }

    /// Last sequence a slot proved in the current epoch.
    pub fn last_seq(&self) -> Option<u64> {
        self.core.seqs.last
    }

    /// The last rejection.
    pub fn last_rejection(&self) -> Option<&Rejection> {
        self.core.last_rejection.as_ref()
    }
}
