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
