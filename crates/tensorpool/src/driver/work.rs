//! The duty cycle. One call of [`ShmDriver::do_work`](super::ShmDriver) is:
//!
//! 1. poll the control stream, one handler per request (`handlers.rs`);
//! 2. [`DriverCore::on_tick`]:
//!    1. expire leases whose keepalive deadline passed (revoke, bump producer streams);
//!    2. every announce period: liveness of the live epochs (refresh `activity_timestamp_ns`
//!       or watch the producer's refreshes), retry failed epoch bumps, announce every stream;
//!    3. send the announces that are due (changes go out in the cycle they happen);
//!    4. collect old epochs when a bump left some behind;
//!    5. when draining and the drain period is over, send `ShmDriverShutdown` and stop.
//!
//! Liveness decision (Driver Model §3): the driver refreshes `activity_timestamp_ns` of every
//! live epoch itself while no producer is attached, and while an attached producer has not
//! been seen refreshing it. Once the producer refreshes it (the value differs from the
//! driver's last write), refreshing is delegated to the producer and the driver watches it:
//! no refresh for 5 announce periods revokes the producer lease (§7, stale activity).

use tensorpool_codec::driver::LeaseRevokeReason;
use tensorpool_shm::LAYOUT_VERSION;

use super::core::DriverCore;
use super::gc::{GcOutcome, GcPolicy, Pin, collect};
use super::proxy::{Outputs, send_driver_shutdown, send_pool_announce};
use super::state::Lifecycle;

/// Announce periods without a producer refresh after which its lease is revoked.
pub(crate) const PRODUCER_STALE_PERIODS: u64 = 5;
/// Superblock freshness window, in announce periods (Wire Spec §15.1).
pub(crate) const FRESHNESS_PERIODS: u64 = 3;

impl DriverCore {
    /// The timer-driven part of the duty cycle; returns the work done.
    pub fn on_tick(&mut self, now_ns: u64, out: &mut Outputs<'_>) -> usize {
        let mut work = self.expire_leases(now_ns, out);
        if self.announce_timer.poll(now_ns) && self.is_running() {
            work += self.periodic(now_ns, out);
        }
        work += self.flush_announces(now_ns, out);
        work += self.collect_garbage(now_ns);
        let leases = self.leases.len() as u64;
        self.counters.leases_active.set(leases);
        work + self.finish_drain(now_ns, out)
    }

    fn expire_leases(&mut self, now_ns: u64, out: &mut Outputs<'_>) -> usize {
        let mut work = 0;
        while let Some(id) = self.leases.first_expired(now_ns) {
            self.invalidate(
                id,
                LeaseRevokeReason::Expired,
                "no keepalive before the lease expired",
                now_ns,
                out,
            );
            work += 1;
        }
        work
    }

    fn periodic(&mut self, now_ns: u64, out: &mut Outputs<'_>) -> usize {
        let stale_after = PRODUCER_STALE_PERIODS * self.cfg.policies.announce_period_ns();
        let mut stale = None;
        let mut retry = None;
        for s in self.streams.iter_mut() {
            s.announce_now = true;
            if s.needs_bump && s.live.is_none() {
                retry = Some(s.stream_id);
            }
            let Some(live) = s.live.as_mut() else {
                continue;
            };
            let activity = live.activity();
            if s.producer.is_some()
                && !live.producer_refreshes
                && activity != live.last_written_activity
            {
                live.producer_refreshes = true;
                tracing::debug!(
                    stream_id = s.stream_id,
                    "producer refreshes activity_timestamp_ns itself"
                );
            }
            match s.producer {
                Some(p) if live.producer_refreshes => {
                    if now_ns.saturating_sub(activity) > stale_after {
                        stale = Some(p.lease_id);
                    }
                }
                _ => live.refresh_activity(now_ns),
            }
        }
        if let Some(id) = stale {
            self.invalidate(
                id,
                LeaseRevokeReason::Revoked,
                "producer activity_timestamp_ns is stale",
                now_ns,
                out,
            );
        }
        if let Some(id) = retry {
            let _ = self.bump_epoch(id, now_ns);
        }
        1
    }

    fn flush_announces(&mut self, now_ns: u64, out: &mut Outputs<'_>) -> usize {
        let mut work = 0;
        for s in self.streams.iter_mut().filter(|s| s.announce_now) {
            s.announce_now = false;
            if let Some(live) = &s.live {
                let producer_id = s.producer.map_or(0, |p| p.client_id);
                send_pool_announce(
                    out,
                    s.stream_id,
                    producer_id,
                    live,
                    LAYOUT_VERSION,
                    now_ns,
                    &mut self.counters,
                );
                work += 1;
            }
        }
        work
    }

    fn collect_garbage(&mut self, now_ns: u64) -> usize {
        if !self.cfg.policies.epoch_gc_enabled {
            return 0;
        }
        let policy = self.gc_policy(self.cfg.policies.epoch_gc_keep);
        let mut work = 0;
        for i in 0..self.streams.len() {
            let s = self.streams.at(i);
            if !s.gc_pending || now_ns < s.gc_next_ns {
                continue;
            }
            let outcome = self.gc_stream(s.stream_id, policy, now_ns);
            let s = self.streams.at_mut(i);
            s.gc_pending = outcome.retry_at.is_some();
            s.gc_next_ns = outcome.retry_at.unwrap_or(0);
            work += 1;
        }
        work
    }

    /// No room for a new epoch of `stream_id` (ENOSPC): one collection pass over every
    /// stream now, whatever the timers, keeping one epoch fewer than `epoch_gc_keep` (the new
    /// epoch will count as one of them) and still never the live epoch, an epoch under a
    /// lease, one younger than the minimum age or one whose superblock is live. Returns the
    /// epoch directories removed (none with `epoch_gc_enabled = false`: then nothing is ever
    /// deleted).
    pub(crate) fn collect_garbage_for_room(&mut self, stream_id: u32, now_ns: u64) -> u64 {
        if !self.cfg.policies.epoch_gc_enabled {
            return 0;
        }
        let policy = self.gc_policy(self.cfg.policies.epoch_gc_keep.saturating_sub(1));
        let mut ids: Vec<u32> = (0..self.streams.len())
            .map(|i| self.streams.at(i).stream_id)
            .collect();
        if !ids.contains(&stream_id) {
            ids.push(stream_id);
        }
        let mut removed = 0;
        for id in ids {
            removed += self.gc_stream(id, policy, now_ns).removed;
        }
        tracing::info!(
            stream_id,
            removed,
            "no room for a new epoch: epoch GC ran once"
        );
        removed
    }

    fn gc_policy(&self, keep: u32) -> GcPolicy {
        let p = &self.cfg.policies;
        GcPolicy {
            keep,
            min_age_ns: p.epoch_gc_min_age_ns,
            stale_window_ns: FRESHNESS_PERIODS * p.announce_period_ns(),
        }
    }

    /// One pass of `collect` over `stream_id` (in the table or not), counted.
    fn gc_stream(&mut self, stream_id: u32, policy: GcPolicy, now_ns: u64) -> GcOutcome {
        let leases = &self.leases;
        let stream = self.streams.get(stream_id);
        let live = stream.and_then(|s| s.live.as_ref().map(|l| l.epoch));
        let pinned = |e: u64| {
            if Some(e) == live {
                Pin::Live
            } else if leases
                .iter()
                .any(|l| l.stream_id == stream_id && l.epoch == e)
            {
                Pin::Lease
            } else {
                Pin::None
            }
        };
        let retired = stream.map_or(&[][..], |s| &s.retired[..]);
        let outcome = collect(
            &self.files.layout,
            stream_id,
            policy,
            &pinned,
            retired,
            now_ns,
        );
        self.counters.epochs_collected += outcome.removed;
        let layout = &self.files.layout;
        if let Some(s) = self.streams.get_mut(stream_id) {
            s.retired
                .retain(|r| layout.epoch_dir(stream_id, r.epoch).exists());
        }
        outcome
    }

    fn finish_drain(&mut self, now_ns: u64, out: &mut Outputs<'_>) -> usize {
        let Lifecycle::Draining {
            reason,
            message,
            deadline_ns,
        } = &self.lifecycle
        else {
            return 0;
        };
        if now_ns < *deadline_ns {
            return 0;
        }
        send_driver_shutdown(out, *reason, message, now_ns, &mut self.counters);
        tracing::info!(?reason, "driver shutdown sent");
        self.lifecycle = Lifecycle::Stopped;
        1
    }
}
