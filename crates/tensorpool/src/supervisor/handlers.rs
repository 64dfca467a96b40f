//! One `on_<message>` per inbound message: `ShmPoolAnnounce`, `DataSourceAnnounce`,
//! `ConsumerHello`, `QosConsumer`, `QosProducer`. Malformed messages are counted and
//! dropped; nothing here allocates.

use tensorpool_codec::Message;
use tensorpool_codec::wire::{
    ConsumerHello, DataSourceAnnounce, QosConsumer, QosProducer, ShmPoolAnnounce,
};

use super::config::MAX_CHANNEL_LEN;
use super::core::SupervisorCore;
use super::proxy::{ConfigAnswer, send_consumer_config};
use super::state::SourceVerdict;
use crate::control::MessageSink;

/// A per-consumer stream request of a hello (W §10.1.2).
#[derive(Debug, Clone, Copy)]
enum Request<'a> {
    /// Empty channel and id 0.
    Absent,
    /// Only one of channel and id: MUST be rejected.
    Invalid,
    /// Both.
    Wanted { channel: &'a [u8], id: u32 },
}

fn request(channel: &[u8], id: u32) -> Request<'_> {
    match (channel.is_empty(), id == 0) {
        (true, true) => Request::Absent,
        (false, false) => Request::Wanted { channel, id },
        _ => Request::Invalid,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Descriptor,
    Control,
}

impl SupervisorCore {
    /// `ShmPoolAnnounce`: the stream's producer is alive; its epoch and layout.
    pub fn on_announce(&mut self, buf: &[u8], now_ns: u64) {
        let Ok(a) = ShmPoolAnnounce::decode(buf) else {
            self.counters.malformed += 1;
            return;
        };
        self.counters.announces += 1;
        let Some(i) = self.producer_slot(a.stream_id, now_ns) else {
            return;
        };
        let p = &mut self.producers[i];
        p.set_epoch(a.epoch);
        let revived = !p.alive && !p.activity_stale;
        p.alive |= revived;
        p.producer_id = a.producer_id;
        p.layout_version = a.layout_version;
        p.header_nslots = a.header_nslots;
        p.last_announce_ns = now_ns;
        p.last_seen_ns = now_ns;
        let uri = a.header_region_uri.as_bytes();
        if p.header_uri.as_bytes() != uri {
            p.header_uri.clear();
            if let Ok(uri) = std::str::from_utf8(uri)
                && uri.len() <= p.header_uri.capacity()
            {
                p.header_uri.push_str(uri);
            }
        }
        if revived {
            self.update_levels();
        }
    }

    /// `DataSourceAnnounce`: the data source's name and metadata version.
    pub fn on_data_source_announce(&mut self, buf: &[u8], now_ns: u64) {
        let Ok(a) = DataSourceAnnounce::decode(buf) else {
            self.counters.malformed += 1;
            return;
        };
        self.counters.data_source_announces += 1;
        let Some(i) = self.producer_slot(a.stream_id, now_ns) else {
            return;
        };
        let p = &mut self.producers[i];
        let name = String::from_utf8_lossy(a.name.as_bytes());
        let cap = p.name.capacity();
        let mut end = name.len().min(cap);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        if p.name != name[..end] {
            p.name.clear();
            p.name.push_str(&name[..end]);
        }
        p.meta_version = a.meta_version;
        if p.producer_id == 0 {
            p.producer_id = a.producer_id;
        }
    }

    /// `QosProducer`: the producer's sequence (consumers' lag is measured against it) and
    /// frame rate.
    pub fn on_qos_producer(&mut self, buf: &[u8], now_ns: u64) {
        let Ok(q) = QosProducer::decode(buf) else {
            self.counters.malformed += 1;
            return;
        };
        self.counters.qos_producer += 1;
        let Some(i) = self.producer_slot(q.stream_id, now_ns) else {
            return;
        };
        let p = &mut self.producers[i];
        if p.qos_at_ns != 0
            && p.epoch == q.epoch
            && q.current_seq >= p.current_seq
            && now_ns > p.qos_at_ns
        {
            let frames = u128::from(q.current_seq - p.current_seq);
            let dt = u128::from(now_ns - p.qos_at_ns);
            p.frames_per_s_milli =
                u64::try_from(frames * 1_000_000_000_000 / dt).unwrap_or(u64::MAX);
        } else {
            p.frames_per_s_milli = 0;
        }
        p.set_epoch(q.epoch);
        let revived = !p.alive && !p.activity_stale;
        p.alive |= revived;
        p.producer_id = q.producer_id;
        p.current_seq = q.current_seq;
        p.qos_at_ns = now_ns;
        p.last_seen_ns = now_ns;
        if revived {
            self.update_levels();
        }
    }

    /// `QosConsumer` from an unknown source.
    pub fn on_qos_consumer(&mut self, buf: &[u8], now_ns: u64) {
        self.on_qos_consumer_from(buf, 0, now_ns);
    }

    /// `QosConsumer`: keeps the consumer alive (a consumer seen only through QoS is tracked
    /// too, without assignments) and records its drops and position.
    pub fn on_qos_consumer_from(&mut self, buf: &[u8], source: u64, now_ns: u64) {
        let Ok(q) = QosConsumer::decode(buf) else {
            self.counters.malformed += 1;
            return;
        };
        self.counters.qos_consumer += 1;
        let Some(i) = self.consumer_slot(q.stream_id, q.consumer_id, now_ns) else {
            return;
        };
        if !self.accept_source(i, source, false) {
            return;
        }
        let c = &mut self.consumers[i];
        c.last_seen_ns = now_ns;
        c.qos.epoch = q.epoch;
        c.qos.last_seq_seen = q.last_seq_seen;
        c.qos.drops_gap = q.drops_gap;
        c.qos.drops_late = q.drops_late;
        c.qos.mode = Some(q.mode);
        c.qos.at_ns = now_ns;
    }

    /// `ConsumerHello` from an unknown source.
    pub fn on_hello(&mut self, buf: &[u8], now_ns: u64, out: &mut dyn MessageSink) {
        self.on_hello_from(buf, 0, now_ns, out);
    }

    /// `ConsumerHello`: tracks the consumer, applies the policies (rules, `force_mode`,
    /// `force_no_shm`), assigns or declines per-consumer streams and answers with a
    /// `ConsumerConfig` on `out`. A hello from a second live source using the same consumer
    /// id is counted as a collision and not answered (the answer would reach both).
    pub fn on_hello_from(
        &mut self,
        buf: &[u8],
        source: u64,
        now_ns: u64,
        out: &mut dyn MessageSink,
    ) {
        let Ok(h) = ConsumerHello::decode(buf) else {
            self.counters.malformed += 1;
            return;
        };
        self.counters.hellos += 1;
        let Some(i) = self.consumer_slot(h.stream_id, h.consumer_id, now_ns) else {
            return;
        };
        if !self.accept_source(i, source, true) {
            return;
        }
        {
            let c = &mut self.consumers[i];
            c.last_seen_ns = now_ns;
            c.hellos += 1;
            c.supports_shm = h.supports_shm;
            c.supports_progress = h.supports_progress;
            c.requested_mode = h.mode;
            c.requested_rate_hz = h.max_rate_hz;
        }
        let d = request(h.descriptor_channel.as_bytes(), h.descriptor_stream_id);
        let k = request(h.control_channel.as_bytes(), h.control_stream_id);
        self.assign(i, Which::Descriptor, d);
        self.assign(i, Which::Control, k);
        let (mode, use_shm, _, rule) =
            self.policy(h.stream_id, h.consumer_id, h.mode, h.supports_shm);
        let c = &mut self.consumers[i];
        c.mode = mode;
        c.use_shm = use_shm;
        c.rule = rule;
        if mode != h.mode {
            self.counters.forced_mode += 1;
        }
        if h.supports_shm && !use_shm {
            self.counters.forced_no_shm += 1;
        }
        let (_, _, fallback, _) = self.policy(h.stream_id, h.consumer_id, h.mode, h.supports_shm);
        let c = &self.consumers[i];
        let answer = ConfigAnswer {
            stream_id: c.stream_id,
            consumer_id: c.consumer_id,
            use_shm,
            mode,
            payload_fallback_uri: fallback,
            descriptor: (&c.descriptor.channel, c.descriptor.stream_id),
            control: (&c.control.channel, c.control.stream_id),
        };
        match send_consumer_config(out, &answer) {
            Ok(()) => {
                self.counters.configs_sent += 1;
                self.consumers[i].config_sent = true;
            }
            Err(_) => self.counters.messages_dropped += 1,
        }
    }

    /// Whether a message from `source` for consumer slot `i` is used (collisions counted).
    fn accept_source(&mut self, i: usize, source: u64, hello: bool) -> bool {
        let c = &mut self.consumers[i];
        let track = if hello {
            &mut c.hello_source
        } else {
            &mut c.qos_source
        };
        match track.observe(source) {
            SourceVerdict::Accept | SourceVerdict::TakeOver => true,
            SourceVerdict::Collision { first } => {
                if first {
                    c.collisions += 1;
                    self.counters.collisions += 1;
                    tracing::warn!(
                        stream_id = c.stream_id,
                        consumer_id = c.consumer_id,
                        "two live consumers use one consumer id (W §10.1.2): the newer keeps it, the older is ignored"
                    );
                }
                false
            }
        }
    }

    /// Assigns, keeps, releases or declines one per-consumer stream of slot `i`.
    fn assign(&mut self, i: usize, which: Which, req: Request<'_>) {
        let (channel, requested_id) = match req {
            Request::Absent => {
                self.release_assignment(i, which);
                return;
            }
            Request::Invalid => {
                self.release_assignment(i, which);
                self.counters.invalid_requests += 1;
                self.counters.declines += 1;
                return;
            }
            Request::Wanted { channel, id } => (channel, id),
        };
        if !self.cfg.per_consumer_enabled {
            self.counters.declines += 1;
            return;
        }
        let c = &self.consumers[i];
        let current = match which {
            Which::Descriptor => &c.descriptor,
            Which::Control => &c.control,
        };
        if current.is_assigned() {
            return;
        }
        let configured = match which {
            Which::Descriptor => self.cfg.per_consumer_descriptor_channel.as_str(),
            Which::Control => self.cfg.per_consumer_control_channel.as_str(),
        };
        let channel: &str = if configured.is_empty() {
            match std::str::from_utf8(channel) {
                Ok(s) if s.len() <= MAX_CHANNEL_LEN && !s.trim().is_empty() => s,
                _ => {
                    self.counters.declines += 1;
                    return;
                }
            }
        } else {
            configured
        };
        let consumer_id = c.consumer_id;
        let pool = match which {
            Which::Descriptor => &mut self.descriptor_ids,
            Which::Control => &mut self.control_ids,
        };
        let id = if pool.range.is_some() {
            pool.allocate(i, consumer_id, requested_id)
        } else {
            // base 0: the consumer's own id, unless another tracked consumer holds it or it
            // lies in the other pool's range (which hands its ids out itself)
            let taken = self.consumers.iter().enumerate().any(|(j, o)| {
                j != i
                    && o.in_use
                    && (o.descriptor.stream_id == requested_id
                        || o.control.stream_id == requested_id)
            }) || self
                .descriptor_ids
                .range
                .is_some_and(|r| r.contains(requested_id))
                || self
                    .control_ids
                    .range
                    .is_some_and(|r| r.contains(requested_id));
            (!taken && i32::try_from(requested_id).is_ok()).then_some(requested_id)
        };
        let Some(id) = id else {
            self.counters.declines += 1;
            return;
        };
        let c = &mut self.consumers[i];
        let a = match which {
            Which::Descriptor => &mut c.descriptor,
            Which::Control => &mut c.control,
        };
        a.stream_id = id;
        a.channel.clear();
        a.channel.push_str(channel);
        self.counters.assignments += 1;
    }

    fn release_assignment(&mut self, i: usize, which: Which) {
        let c = &mut self.consumers[i];
        let (a, pool) = match which {
            Which::Descriptor => (&mut c.descriptor, &mut self.descriptor_ids),
            Which::Control => (&mut c.control, &mut self.control_ids),
        };
        if a.is_assigned() {
            pool.release(i, a.stream_id);
            a.clear();
        }
    }
}
