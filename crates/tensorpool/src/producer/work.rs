//! The producer's duty cycle: control and QoS input, then the periodic duties, each on its
//! own timer read from the cycle's one clock reading.

use tensorpool_agent::DeadlineTimer;

use super::Producer;
use super::proxy;

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
    /// One duty cycle: consumer hellos and QoS, per-consumer registrations in flight,
    /// announces and activity refresh, QoS, data-source announce and metadata, meta blob
    /// chunks, stale-consumer sweep. Returns the work done (0: idle). Never blocks.
    pub fn do_work(&mut self, now_ns: u64) -> usize {
        let mut work = self.poll_inputs(now_ns);
        work += self.grants_duty();
        work += self.driver_duty(now_ns);
        work += self.announce_duty(now_ns);
        work += self.metadata_duty(now_ns);
        if self.timers.qos.poll(now_ns) {
            let epoch = self.epoch().unwrap_or(0);
            match proxy::send_qos(&mut self.out.pubs.qos, &self.cfg, epoch, self.out.next_seq) {
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

    fn poll_inputs(&mut self, now_ns: u64) -> usize {
        let mut work = 0;
        let mut control = self.control_sub.take();
        if let Some(sub) = control.as_mut() {
            work += sub
                .poll(|msg, _| self.on_control_message(msg, now_ns), POLL_LIMIT)
                .unwrap_or(0);
        }
        self.control_sub = control;
        let mut qos = self.qos_sub.take();
        if let Some(sub) = qos.as_mut() {
            work += sub
                .poll(|msg, _| self.on_qos_message(msg, now_ns), POLL_LIMIT)
                .unwrap_or(0);
        }
        self.qos_sub = qos;
        work
    }

    fn announce_duty(&mut self, now_ns: u64) -> usize {
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
        match proxy::send_announce(&mut self.out.pubs.announce, &self.cfg, r, now_ns) {
            Ok(()) => self.out.counters.announces_sent += 1,
            Err(e) if e.is_not_connected() => {}
            Err(_) => self.out.counters.send_failures += 1,
        }
        1
    }

    fn metadata_duty(&mut self, now_ns: u64) -> usize {
        let mut work = 0;
        if self.timers.data_source.poll(now_ns) {
            let epoch = self.epoch().unwrap_or(0);
            let v = self.meta.version;
            match proxy::send_data_source_announce(&mut self.out.pubs.metadata, &self.cfg, epoch, v)
            {
                Ok(()) => self.out.counters.data_source_sent += 1,
                Err(e) if e.is_not_connected() => {}
                Err(_) => self.out.counters.send_failures += 1,
            }
            work += 1;
        }
        if self.timers.meta.poll(now_ns)
            && let Some(result) = self.meta.send_meta(&mut self.out.pubs.metadata)
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
            match self
                .meta
                .pump_blobs(&mut self.out.pubs.metadata, stream, chunk, BLOB_BUDGET)
            {
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
