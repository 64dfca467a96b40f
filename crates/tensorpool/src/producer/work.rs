//! The producer's duty cycle. The agent ([`Producer::do_work`]): control and QoS input into
//! the core, the driver client's events, then the core's periodic duties
//! ([`ProducerCore::on_tick`]), each on its own timer read from the cycle's one clock reading.

use tensorpool_agent::DeadlineTimer;

use super::Producer;
use super::core::{ProducerCore, Sinks};
use super::proxy;
use super::state::{Resolved, poll_grant};

/// Fragments read per subscription per cycle.
const POLL_LIMIT: usize = 16;
/// Meta blob messages sent per cycle (spreads a large blob over cycles).
const BLOB_BUDGET: usize = 4;

/// The producer's periodic duties.
#[derive(Debug)]
pub(crate) struct Timers {
    pub announce: DeadlineTimer,
    pub qos: DeadlineTimer,
    pub data_source: DeadlineTimer,
    pub meta: DeadlineTimer,
    pub sweep: DeadlineTimer,
}

impl Timers {
    pub fn new(cfg: &super::ProducerConfig) -> Self {
        let ns = |d: std::time::Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Self {
            announce: DeadlineTimer::periodic_immediate(ns(cfg.announce_period)),
            qos: DeadlineTimer::periodic_immediate(ns(cfg.qos_period)),
            data_source: DeadlineTimer::periodic_immediate(ns(cfg.data_source_period)),
            meta: DeadlineTimer::periodic_immediate(ns(cfg.meta_period)),
            sweep: DeadlineTimer::periodic_immediate(ns(cfg.consumer_hello_interval) / 2),
        }
    }
}

impl Producer {
    /// One duty cycle: consumer hellos and QoS, the driver client (keepalives, revocations,
    /// re-attach), then the core's duties ([`ProducerCore::on_tick`]). Returns the work done
    /// (0: idle). Never blocks.
    pub fn do_work(&mut self, now_ns: u64) -> usize {
        let mut work = self.poll_inputs(now_ns);
        work += self.driver_duty(now_ns);
        work + self.core.on_tick(now_ns, &mut self.pubs.sinks())
    }

    fn poll_inputs(&mut self, now_ns: u64) -> usize {
        let Self {
            core,
            pubs,
            control_sub,
            qos_sub,
            ..
        } = self;
        let mut work = 0;
        if let Some(sub) = control_sub.as_mut() {
            // The producer's own messages (its `ConsumerConfig` answers) are not a
            // supervisor's: drop them by session id.
            let own = Some(pubs.control.session_id());
            work += sub
                .poll(
                    |msg, h| {
                        if Some(h.session_id) != own {
                            core.on_control(msg, now_ns, &mut pubs.sinks());
                        }
                    },
                    POLL_LIMIT,
                )
                .unwrap_or(0);
        }
        if let Some(sub) = qos_sub.as_mut() {
            work += sub
                .poll(|msg, _| core.on_qos(msg, now_ns), POLL_LIMIT)
                .unwrap_or(0);
        }
        work
    }

    /// Drives the driver client (keepalives, revocations, re-attach); hands its events to
    /// the core.
    fn driver_duty(&mut self, now_ns: u64) -> usize {
        let Some(link) = self.driver.as_mut() else {
            return 0;
        };
        let events = &mut link.events;
        let work = link.client.do_work(now_ns, &mut |e| events.push(e));
        for e in events.drain(..) {
            self.core.on_client_event(e);
        }
        work
    }
}

impl ProducerCore {
    /// The periodic duties at `now_ns`: per-consumer registrations in flight (answers once
    /// they complete), announce and activity refresh, data-source announce and metadata, meta
    /// blob chunks, QoS, stale-consumer sweep. Returns the work done (0: idle).
    pub fn on_tick(&mut self, now_ns: u64, out: &mut Sinks<'_>) -> usize {
        let mut work = self.grants_duty(&mut *out.control);
        work += self.announce_duty(now_ns, &mut *out.announce);
        work += self.metadata_duty(now_ns, &mut *out.metadata);
        if self.timers.qos.poll(now_ns) {
            let epoch = self.epoch().unwrap_or(0);
            match proxy::send_qos(&mut *out.qos, &self.cfg, epoch, self.out.next_seq) {
                Ok(()) => self.out.counters.qos_sent += 1,
                Err(e) if e.is_not_connected() => {}
                Err(_) => self.out.counters.send_failures += 1,
            }
            work += 1;
        }
        if self.timers.sweep.poll(now_ns) {
            let stale_ns = u64::try_from(self.cfg.consumer_hello_interval.as_nanos())
                .unwrap_or(u64::MAX)
                .saturating_mul(u64::from(self.cfg.consumer_stale_factor));
            let removed = self.out.registry.sweep(now_ns, stale_ns);
            if removed > 0 {
                self.out.counters.consumers_stale += removed as u64;
                self.out.registry.replan(&self.cfg);
                work += removed;
            }
        }
        let consumers = self.out.registry.entries.len() as u64;
        self.out.counters.consumers.set(consumers);
        work
    }

    /// Polls the per-consumer registrations in flight (never blocks): a registered stream is
    /// granted, a refused or timed-out one declined; then answers the consumers whose
    /// registrations all completed. Returns the work done.
    fn grants_duty(&mut self, control: &mut dyn crate::control::MessageSink) -> usize {
        let mut work = 0;
        for i in 0..self.out.registry.entries.len() {
            let e = &mut self.out.registry.entries[i];
            // A supervisor's assignment registers with no answer due: poll it too.
            if !e.answer_due && !e.is_pending() {
                continue;
            }
            let mut changed = false;
            for slot in [&mut e.descriptor, &mut e.control] {
                match poll_grant(slot) {
                    Resolved::Unchanged => {}
                    Resolved::Ready => {
                        self.out.counters.per_consumer_granted += 1;
                        changed = true;
                    }
                    Resolved::Failed => {
                        self.out.counters.per_consumer_declined += 1;
                        changed = true;
                    }
                }
            }
            if changed {
                let id = e.consumer_id;
                self.answer_if_ready(id, control);
                self.out.registry.replan(&self.cfg);
                work += 1;
            }
        }
        work
    }

    fn announce_duty(
        &mut self,
        now_ns: u64,
        announce: &mut dyn crate::control::MessageSink,
    ) -> usize {
        if !self.timers.announce.poll(now_ns) {
            return 0;
        }
        let Some(r) = self.regions.as_ref() else {
            return 0;
        };
        r.refresh_activity(now_ns);
        if self.is_driver_mode() {
            return 1; // the driver announces (Driver Model §8)
        }
        match proxy::send_announce(announce, &self.cfg, r, now_ns) {
            Ok(()) => self.out.counters.announces_sent += 1,
            Err(e) if e.is_not_connected() => {}
            Err(_) => self.out.counters.send_failures += 1,
        }
        1
    }

    fn metadata_duty(
        &mut self,
        now_ns: u64,
        metadata: &mut dyn crate::control::MessageSink,
    ) -> usize {
        let mut work = 0;
        if self.timers.data_source.poll(now_ns) {
            let epoch = self.epoch().unwrap_or(0);
            let v = self.meta.version;
            match proxy::send_data_source_announce(&mut *metadata, &self.cfg, epoch, v) {
                Ok(()) => self.out.counters.data_source_sent += 1,
                Err(e) if e.is_not_connected() => {}
                Err(_) => self.out.counters.send_failures += 1,
            }
            work += 1;
        }
        if self.timers.meta.poll(now_ns)
            && let Some(result) = self.meta.send_meta(&mut *metadata)
        {
            match result {
                Ok(()) => self.out.counters.meta_sent += 1,
                Err(e) if e.is_not_connected() => {}
                Err(_) => self.out.counters.send_failures += 1,
            }
            work += 1;
        }
        if self.meta.has_blobs() {
            let chunk = self.cfg.meta_blob_chunk_bytes;
            let stream = self.cfg.stream_id;
            match self.meta.pump_blobs(metadata, stream, chunk, BLOB_BUDGET) {
                Ok(n) => {
                    self.out.counters.meta_blob_messages += n as u64;
                    work += n;
                }
                Err(_) => self.out.counters.send_failures += 1,
            }
        }
        work
    }
}
