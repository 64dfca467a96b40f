//! The supervisor's timers: consumers without hello or QoS for `consumer_stale_ms` are
//! dropped and their per-consumer ids reclaimed (W §10.1.3); producers without announce or
//! QoS for `producer_stale_ms` are marked dead (W §15.14). Sweeps run at most every quarter
//! of the shorter window (and at least every 250 ms).

use super::core::SupervisorCore;

impl SupervisorCore {
    /// Runs the timers due at `now_ns`; returns the work done.
    pub fn poll_timers(&mut self, now_ns: u64) -> usize {
        if now_ns < self.next_sweep_ns {
            return 0;
        }
        let period =
            (self.consumer_stale_ns.min(self.producer_stale_ns) / 4).clamp(1_000_000, 250_000_000);
        self.next_sweep_ns = now_ns.saturating_add(period);
        let mut work = 0;
        for i in 0..self.consumers.len() {
            let c = &self.consumers[i];
            if c.in_use && now_ns.saturating_sub(c.last_seen_ns) >= self.consumer_stale_ns {
                tracing::info!(
                    stream_id = c.stream_id,
                    consumer_id = c.consumer_id,
                    descriptor_stream_id = c.descriptor.stream_id,
                    control_stream_id = c.control.stream_id,
                    "consumer stale: dropped, its per-consumer ids reclaimed"
                );
                self.release_consumer(i);
                self.counters.consumers_stale += 1;
                work += 1;
            }
        }
        let mut changed = false;
        for p in &mut self.producers {
            if p.in_use
                && p.alive
                && now_ns.saturating_sub(p.last_seen_ns) >= self.producer_stale_ns
            {
                tracing::info!(
                    stream_id = p.stream_id,
                    producer_id = p.producer_id,
                    "producer stale"
                );
                p.alive = false;
                self.counters.producers_stale += 1;
                changed = true;
                work += 1;
            }
        }
        if changed {
            self.update_levels();
        }
        work
    }
}

impl SupervisorCore {
    /// The `activity_timestamp_ns` the agent read from the superblock of `stream_id`'s
    /// announced header region of `epoch` at `now_ns` (same clock; W §7.1, §15.14). Ignored
    /// unless `epoch` is the producer's current one. Fresh (within `producer_stale_ms` of
    /// `now_ns`): a sign of life like an announce (revives a dead producer). Stale: the
    /// producer is dead at once (counted in `producers_stale` if it was alive) and stays dead
    /// until a fresh activity or a new epoch; announces and QoS of that epoch do not revive it.
    /// Returns the work done (0 or 1).
    pub fn on_activity(
        &mut self,
        stream_id: u32,
        epoch: u64,
        activity_ns: u64,
        now_ns: u64,
    ) -> usize {
        let Some(p) = self
            .producers
            .iter_mut()
            .find(|p| p.in_use && p.stream_id == stream_id)
        else {
            return 0;
        };
        if p.epoch != epoch {
            return 0;
        }
        p.activity_ns = activity_ns;
        let stale = activity_ns.abs_diff(now_ns) > self.producer_stale_ns;
        let was_alive = p.alive;
        if stale {
            p.activity_stale = true;
            p.alive = false;
            if was_alive {
                tracing::info!(
                    stream_id,
                    epoch,
                    activity_ns,
                    "producer stale: its superblock's activity timestamp stopped"
                );
                self.counters.producers_stale += 1;
            }
        } else {
            p.activity_stale = false;
            p.alive = true;
            p.last_seen_ns = now_ns;
        }
        let alive_now = p.alive;
        if was_alive != alive_now {
            self.update_levels();
            return 1;
        }
        0
    }
}
