//! [`SupervisorCore`]: the supervisor without transport. Inbound messages are handed to it as
//! bytes (`on_message`, or one `on_<message>` each, see `handlers.rs`), time as `now_ns`,
//! and outbound `ConsumerConfig` go to any [`MessageSink`]. After [`SupervisorCore::new`]
//! nothing allocates: the consumer and producer tables and the id pools are preallocated.

use tensorpool_codec::wire::{self, Mode};

use super::config::{MAX_CHANNEL_LEN, SupervisorConfig};
use super::counters::{Counters, SupervisorCells};
use super::state::{ConsumerSlot, ConsumerView, IdPool, ProducerSlot, ProducerView};
use crate::control::{Gate, MessageSink, gate};

/// Bytes kept of a `DataSourceAnnounce` name.
const NAME_BYTES: usize = 256;

/// The supervisor's state machine.
#[derive(Debug)]
pub struct SupervisorCore {
    pub(crate) cfg: SupervisorConfig,
    pub(crate) consumers: Vec<ConsumerSlot>,
    pub(crate) producers: Vec<ProducerSlot>,
    pub(crate) descriptor_ids: IdPool,
    pub(crate) control_ids: IdPool,
    pub(crate) counters: SupervisorCells,
    pub(crate) consumer_stale_ns: u64,
    pub(crate) producer_stale_ns: u64,
    pub(crate) next_sweep_ns: u64,
}

impl SupervisorCore {
    /// A supervisor with empty tables of `consumer_capacity` consumers and as many streams.
    pub fn new(cfg: SupervisorConfig, now_ns: u64) -> Self {
        let cap = cfg.consumer_capacity as usize;
        Self {
            consumers: (0..cap)
                .map(|_| ConsumerSlot::new(MAX_CHANNEL_LEN))
                .collect(),
            producers: (0..cap).map(|_| ProducerSlot::new(NAME_BYTES)).collect(),
            descriptor_ids: IdPool::new(cfg.descriptor_range()),
            control_ids: IdPool::new(cfg.control_range()),
            counters: SupervisorCells::default(),
            consumer_stale_ns: u64::from(cfg.consumer_stale_ms) * 1_000_000,
            producer_stale_ns: u64::from(cfg.producer_stale_ms) * 1_000_000,
            next_sweep_ns: now_ns,
            cfg,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SupervisorConfig {
        &self.cfg
    }

    /// Counters since start.
    pub fn counters(&self) -> Counters {
        self.counters.snapshot()
    }

    /// Publishes the counters as Aeron counters allocated from `aeron`.
    pub fn attach_aeron_counters(
        &mut self,
        aeron: &tensorpool_aeron::AeronClient,
        timeout: std::time::Duration,
    ) -> Result<(), tensorpool_aeron::AddError> {
        let scope = format!(
            "control={}#{}",
            self.cfg.control_channel, self.cfg.control_stream_id
        );
        let mut reg = crate::counters::Registrar::new(
            aeron,
            crate::counters::Role::Supervisor,
            0,
            0,
            scope,
            timeout,
        );
        SupervisorCells::register(&mut reg)?;
        let counters = reg.finish()?;
        self.counters.attach(&mut counters.into_iter());
        Ok(())
    }

    /// Handles any message of the wire schema from an unknown source (see
    /// [`SupervisorCore::on_message_from`]).
    pub fn on_message(&mut self, buf: &[u8], now_ns: u64, out: &mut dyn MessageSink) -> usize {
        self.on_message_from(buf, 0, now_ns, out)
    }

    /// Handles any inbound buffer: messages of the wire schema the supervisor observes are
    /// dispatched, others (other schemas, `ConsumerConfig`, descriptors) ignored. `source`
    /// identifies the sending publication (the Aeron session; 0: unknown) for consumer-id
    /// collision detection. Returns the work done (0 or 1).
    pub fn on_message_from(
        &mut self,
        buf: &[u8],
        source: u64,
        now_ns: u64,
        out: &mut dyn MessageSink,
    ) -> usize {
        let h = match gate(buf, wire::SCHEMA_ID, wire::SCHEMA_VERSION) {
            Gate::Accept(h) => h,
            Gate::OtherSchema | Gate::Truncated(_) => return 0,
            Gate::NewerVersion(_) => {
                self.counters.malformed += 1;
                return 0;
            }
        };
        use tensorpool_codec::Message;
        match h.template_id {
            t if t == wire::ShmPoolAnnounce::TEMPLATE_ID => self.on_announce(buf, now_ns),
            t if t == wire::DataSourceAnnounce::TEMPLATE_ID => {
                self.on_data_source_announce(buf, now_ns)
            }
            t if t == wire::ConsumerHello::TEMPLATE_ID => {
                self.on_hello_from(buf, source, now_ns, out)
            }
            t if t == wire::QosConsumer::TEMPLATE_ID => {
                self.on_qos_consumer_from(buf, source, now_ns)
            }
            t if t == wire::QosProducer::TEMPLATE_ID => self.on_qos_producer(buf, now_ns),
            _ => return 0,
        }
        1
    }

    pub(crate) fn find_consumer(&self, stream_id: u32, consumer_id: u32) -> Option<usize> {
        self.consumers
            .iter()
            .position(|c| c.in_use && c.stream_id == stream_id && c.consumer_id == consumer_id)
    }

    /// The slot of consumer `consumer_id` of `stream_id`, taking a free one if it is new;
    /// `None` (counted) when the table is full.
    pub(crate) fn consumer_slot(
        &mut self,
        stream_id: u32,
        consumer_id: u32,
        now_ns: u64,
    ) -> Option<usize> {
        if let Some(i) = self.find_consumer(stream_id, consumer_id) {
            return Some(i);
        }
        let Some(i) = self.consumers.iter().position(|c| !c.in_use) else {
            self.counters.consumers_refused += 1;
            return None;
        };
        self.consumers[i].occupy(stream_id, consumer_id, now_ns);
        self.update_levels();
        Some(i)
    }

    /// The producer slot of `stream_id`, taking a free (or dead) one if it is new.
    pub(crate) fn producer_slot(&mut self, stream_id: u32, now_ns: u64) -> Option<usize> {
        if let Some(i) = self
            .producers
            .iter()
            .position(|p| p.in_use && p.stream_id == stream_id)
        {
            return Some(i);
        }
        let free = self
            .producers
            .iter()
            .position(|p| !p.in_use)
            .or_else(|| self.producers.iter().position(|p| !p.alive));
        let Some(i) = free else {
            self.counters.producers_refused += 1;
            return None;
        };
        self.producers[i].occupy(stream_id, now_ns);
        self.update_levels();
        Some(i)
    }

    /// Stops tracking consumer slot `i` and releases its per-consumer ids.
    pub(crate) fn release_consumer(&mut self, i: usize) {
        let c = &mut self.consumers[i];
        if c.descriptor.is_assigned() {
            self.descriptor_ids.release(i, c.descriptor.stream_id);
        }
        if c.control.is_assigned() {
            self.control_ids.release(i, c.control.stream_id);
        }
        c.descriptor.clear();
        c.control.clear();
        c.in_use = false;
        self.update_levels();
    }

    pub(crate) fn update_levels(&mut self) {
        let consumers = self.consumers.iter().filter(|c| c.in_use).count() as u64;
        let producers = self
            .producers
            .iter()
            .filter(|p| p.in_use && p.alive)
            .count() as u64;
        self.counters.consumers.set(consumers);
        self.counters.producers.set(producers);
    }

    /// Consumers tracked now.
    pub fn consumers(&self) -> impl Iterator<Item = ConsumerView<'_>> {
        self.consumers
            .iter()
            .filter(|c| c.in_use)
            .map(|c| self.view(c))
    }

    /// Consumer `consumer_id` of `stream_id`, if tracked.
    pub fn consumer(&self, stream_id: u32, consumer_id: u32) -> Option<ConsumerView<'_>> {
        self.find_consumer(stream_id, consumer_id)
            .map(|i| self.view(&self.consumers[i]))
    }

    /// Producers known (alive or not).
    pub fn producers(&self) -> impl Iterator<Item = ProducerView<'_>> {
        self.producers
            .iter()
            .filter(|p| p.in_use)
            .map(|p| ProducerView {
                stream_id: p.stream_id,
                producer_id: p.producer_id,
                alive: p.alive,
                epoch: p.epoch,
                layout_version: p.layout_version,
                header_nslots: p.header_nslots,
                last_announce_ns: p.last_announce_ns,
                current_seq: p.current_seq,
                frames_per_s_milli: p.frames_per_s_milli,
                name: &p.name,
                meta_version: p.meta_version,
                header_uri: &p.header_uri,
                activity_ns: p.activity_ns,
                activity_stale: p.activity_stale,
            })
    }

    /// The producer of `stream_id`, if known.
    pub fn producer(&self, stream_id: u32) -> Option<ProducerView<'_>> {
        self.producers().find(|p| p.stream_id == stream_id)
    }

    fn view<'a>(&'a self, c: &'a ConsumerSlot) -> ConsumerView<'a> {
        let lag = self
            .producers
            .iter()
            .find(|p| p.in_use && p.stream_id == c.stream_id)
            .filter(|p| p.qos_at_ns != 0 && c.qos.at_ns != 0 && p.epoch == c.qos.epoch)
            .map(|p| p.current_seq.saturating_sub(c.qos.last_seq_seen));
        ConsumerView {
            stream_id: c.stream_id,
            consumer_id: c.consumer_id,
            first_seen_ns: c.first_seen_ns,
            last_seen_ns: c.last_seen_ns,
            hellos: c.hellos,
            supports_shm: c.supports_shm,
            requested_mode: c.requested_mode,
            requested_rate_hz: c.requested_rate_hz,
            mode: c.mode,
            use_shm: c.use_shm,
            forced_rate_hz: c
                .rule
                .and_then(|r| self.cfg.rules.get(r))
                .and_then(|r| r.max_rate_hz),
            rule: c.rule,
            descriptor: (&c.descriptor.channel, c.descriptor.stream_id),
            control: (&c.control.channel, c.control.stream_id),
            collisions: c.collisions,
            qos: c.qos,
            lag,
        }
    }

    /// Checks the invariants (tests, fuzzing): no two tracked consumers share an assigned
    /// stream id (descriptor or control, of either kind), and the id pools agree with the
    /// table.
    pub fn check_invariants(&self) -> Result<(), String> {
        let live: Vec<&ConsumerSlot> = self.consumers.iter().filter(|c| c.in_use).collect();
        for (n, a) in live.iter().enumerate() {
            for b in &live[n + 1..] {
                for (x, y, what) in [
                    (&a.descriptor, &b.descriptor, "descriptor"),
                    (&a.control, &b.control, "control"),
                    (&a.descriptor, &b.control, "descriptor/control"),
                    (&a.control, &b.descriptor, "control/descriptor"),
                ] {
                    if x.is_assigned() && x.stream_id == y.stream_id {
                        return Err(format!(
                            "consumers {}/{} and {}/{} share {what} stream {}",
                            a.stream_id, a.consumer_id, b.stream_id, b.consumer_id, x.stream_id
                        ));
                    }
                }
                if a.stream_id == b.stream_id && a.consumer_id == b.consumer_id {
                    return Err(format!("consumer {} tracked twice", a.consumer_id));
                }
            }
        }
        for (i, c) in self.consumers.iter().enumerate() {
            for (pool, a) in [
                (&self.descriptor_ids, &c.descriptor),
                (&self.control_ids, &c.control),
            ] {
                if c.in_use
                    && a.is_assigned()
                    && pool.range.is_some_and(|r| r.contains(a.stream_id))
                    && pool.holder(a.stream_id) != Some(i)
                {
                    return Err(format!("stream {} not held by slot {i}", a.stream_id));
                }
            }
        }
        let held = self
            .consumers
            .iter()
            .filter(|c| c.in_use && c.descriptor.is_assigned())
            .filter(|c| {
                self.descriptor_ids
                    .range
                    .is_some_and(|r| r.contains(c.descriptor.stream_id))
            })
            .count();
        if held != self.descriptor_ids.in_use() {
            return Err(format!(
                "{held} descriptor ids assigned, {} held in the pool",
                self.descriptor_ids.in_use()
            ));
        }
        Ok(())
    }

    /// The mode, `use_shm`, fallback URI and rule for a consumer's hello.
    pub(crate) fn policy(
        &self,
        stream_id: u32,
        consumer_id: u32,
        requested: Mode,
        supports_shm: bool,
    ) -> (Mode, bool, &str, Option<usize>) {
        let rule = self.cfg.rule_for(stream_id, consumer_id);
        let r = rule.map(|(_, r)| r);
        let mode = r
            .and_then(|r| r.force_mode)
            .or(self.cfg.force_mode)
            .unwrap_or(requested);
        let no_shm = r
            .and_then(|r| r.force_no_shm)
            .unwrap_or(self.cfg.force_no_shm);
        let fallback = r
            .and_then(|r| r.payload_fallback_uri.as_deref())
            .unwrap_or(&self.cfg.payload_fallback_uri);
        (
            mode,
            supports_shm && !no_shm,
            fallback,
            rule.map(|(i, _)| i),
        )
    }
}
