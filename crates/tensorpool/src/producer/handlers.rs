//! The producer core's inbound messages: one `on_<message>` each (control stream, QoS
//! stream, driver-client events), with the dispatchers the agent feeds.

use tensorpool_codec::Message;
use tensorpool_codec::wire::{ConsumerConfig, ConsumerHello, QosConsumer};

use super::core::{LinkOpener, ProducerCore, Sinks};
use super::proxy::{self, ConfigAnswer};
use super::regions;
use super::state::{ConsumerEntry, Granted, Registry};
use crate::client::ClientEvent;
use crate::control::{MessageSink, SendError};
use crate::control::{tid, wire_template};
use crate::streams::StreamRequest;

impl ProducerCore {
    /// One message of the shared control stream from another publication than the
    /// producer's own (`ConsumerHello`; `ConsumerConfig`, which only a supervisor sends
    /// there; anything else, another schema or a newer version is ignored). Answers go out
    /// on `out.control`. The agent drops the producer's own messages before this call.
    pub fn on_control(&mut self, msg: &[u8], now_ns: u64, out: &mut Sinks<'_>) {
        match wire_template(msg) {
            Some(tid::HELLO) => {
                if let Ok(hello) = ConsumerHello::decode(msg) {
                    self.on_consumer_hello(&hello, now_ns, &mut *out.control);
                }
            }
            Some(tid::CONFIG) => {
                if let Ok(config) = ConsumerConfig::decode(msg) {
                    self.on_supervisor_config(&config, now_ns);
                }
            }
            _ => {}
        }
    }

    /// A `ConsumerConfig` for our stream that the producer did not send: a supervisor is
    /// present (for the staleness window, see [`ProducerCore::is_supervised`]). Its
    /// assignment replaces the producer's own: the per-consumer descriptor / control
    /// publication it names is opened (the same path as the producer's own grants), one it
    /// declines (empty channel + 0) is closed, and the consumer's mode is the assigned one.
    fn on_supervisor_config(&mut self, config: &ConsumerConfig<'_>, now_ns: u64) {
        if config.stream_id != self.cfg.stream_id {
            return;
        }
        self.supervisor_seen_ns = Some(now_ns);
        self.out.counters.supervisor_configs += 1;
        let links = &mut *self.links;
        let Some(e) = find_or_insert(&mut self.out.registry, config.consumer_id, now_ns) else {
            return;
        };
        e.last_seen_ns = now_ns;
        e.mode = config.mode;
        // The supervisor's assignment is never answered by the producer.
        e.answer_due = false;
        let declined = grant_both(
            e,
            [
                (
                    config.descriptor_channel.as_bytes(),
                    config.descriptor_stream_id,
                ),
                (config.control_channel.as_bytes(), config.control_stream_id),
            ],
            true,
            links,
        );
        self.out.counters.per_consumer_declined += declined;
        self.out.registry.replan(&self.cfg);
    }

    /// One message of the QoS stream (`QosConsumer`; anything else is ignored).
    pub fn on_qos(&mut self, msg: &[u8], now_ns: u64) {
        if wire_template(msg) == Some(tid::QOS_CONSUMER)
            && let Ok(qos) = QosConsumer::decode(msg)
        {
            self.on_qos_consumer(&qos, now_ns);
        }
    }

    /// `QosConsumer` keeps a consumer (and its per-consumer streams) alive (Wire Spec §5).
    fn on_qos_consumer(&mut self, qos: &QosConsumer, now_ns: u64) {
        if qos.stream_id != self.cfg.stream_id {
            return;
        }
        self.out.counters.consumer_qos += 1;
        if let Some(e) = self.out.registry.find_mut(qos.consumer_id) {
            e.last_seen_ns = now_ns;
        }
    }

    /// `ConsumerHello` (Wire Spec §10.1.2-§10.1.3): record capabilities and hints, grant or
    /// decline per-consumer streams, answer with `ConsumerConfig`. A newly granted stream is
    /// registered in the background: the answer waits for it (sent from the duty cycle by
    /// `grants_duty`), so the consumer is never told of a stream that fails.
    fn on_consumer_hello(
        &mut self,
        hello: &ConsumerHello<'_>,
        now_ns: u64,
        control: &mut dyn MessageSink,
    ) {
        if hello.stream_id != self.cfg.stream_id {
            return;
        }
        self.out.counters.hellos += 1;
        if self.is_supervised(now_ns) {
            self.on_supervised_hello(hello, now_ns);
            return;
        }
        let links = &mut *self.links;
        let allow = self.cfg.per_consumer_streams;
        let Some(e) = find_or_insert(&mut self.out.registry, hello.consumer_id, now_ns) else {
            // Registry full: answer without per-consumer streams.
            if !hello.descriptor_channel.is_empty() || !hello.control_channel.is_empty() {
                self.out.counters.per_consumer_declined += 1;
            }
            let answer = ConfigAnswer {
                consumer_id: hello.consumer_id,
                mode: hello.mode,
                descriptor: None,
                control: None,
            };
            self.send_config(control, &answer);
            return;
        };
        e.last_seen_ns = now_ns;
        e.supports_progress = hello.supports_progress;
        e.mode = hello.mode;
        e.max_rate_hz = hello.max_rate_hz;
        e.hints = [
            hello.progress_interval_us,
            hello.progress_bytes_delta,
            hello.progress_major_delta_units,
        ];
        let declined = grant_both(
            e,
            [
                (
                    hello.descriptor_channel.as_bytes(),
                    hello.descriptor_stream_id,
                ),
                (hello.control_channel.as_bytes(), hello.control_stream_id),
            ],
            allow,
            links,
        );
        e.answer_due = true;
        let consumer_id = e.consumer_id;
        self.out.counters.per_consumer_declined += declined;
        self.answer_if_ready(consumer_id, control);
        self.out.registry.replan(&self.cfg);
    }

    /// A hello while a supervisor is present: the consumer's liveness, capabilities and
    /// hints are recorded; its streams stay as the supervisor assigned them and the
    /// supervisor answers.
    fn on_supervised_hello(&mut self, hello: &ConsumerHello<'_>, now_ns: u64) {
        self.out.counters.hellos_left_to_supervisor += 1;
        if let Some(e) = find_or_insert(&mut self.out.registry, hello.consumer_id, now_ns) {
            e.last_seen_ns = now_ns;
            e.supports_progress = hello.supports_progress;
            e.max_rate_hz = hello.max_rate_hz;
            e.hints = [
                hello.progress_interval_us,
                hello.progress_bytes_delta,
                hello.progress_major_delta_units,
            ];
        }
        self.out.registry.replan(&self.cfg);
    }

    /// Sends the `ConsumerConfig` a consumer is due, unless one of its per-consumer streams
    /// is still being registered.
    pub(super) fn answer_if_ready(&mut self, consumer_id: u32, control: &mut dyn MessageSink) {
        let Some(e) = self.out.registry.find_mut(consumer_id) else {
            return;
        };
        if !e.answer_due || e.is_pending() {
            return;
        }
        e.answer_due = false;
        let answer = ConfigAnswer {
            consumer_id: e.consumer_id,
            mode: e.mode,
            descriptor: e
                .descriptor
                .as_ref()
                .map(|g| (g.channel.as_str(), g.stream_id)),
            control: e
                .control
                .as_ref()
                .map(|g| (g.channel.as_str(), g.stream_id)),
        };
        let sent = proxy::send_consumer_config(control, &self.cfg, &answer);
        self.count_config(sent);
    }

    fn send_config(&mut self, control: &mut dyn MessageSink, answer: &ConfigAnswer<'_>) {
        let sent = proxy::send_consumer_config(control, &self.cfg, answer);
        self.count_config(sent);
    }

    fn count_config(&mut self, sent: Result<(), SendError>) {
        match sent {
            Ok(()) => self.out.counters.configs_sent += 1,
            Err(_) => self.out.counters.send_failures += 1,
        }
    }

    /// A driver-client event (Driver Model §4.12.2): a lease (again) -> Active with its
    /// regions; own lease revoked or lost, driver shut down or gone, protocol error -> Paused
    /// (regions unmapped, claims fail with `NoRegions`); the client re-attaches by itself.
    pub fn on_client_event(&mut self, event: ClientEvent) {
        let regions = match event {
            ClientEvent::Attached(info) => {
                // a new lease may carry a new node id; a lease without one keeps the
                // generator the producer was built with (building refused none at all)
                let _ = self.arm_tracing(info.node_id);
                Some(info.regions)
            }
            ClientEvent::EpochChanged(r) => Some(r),
            ClientEvent::LeaseRevoked { .. }
            | ClientEvent::LeaseLost(_)
            | ClientEvent::DriverShutdown { .. }
            | ClientEvent::DriverLost
            | ClientEvent::ProtocolError(_) => {
                self.regions = None;
                self.out.counters.epoch.set(0);
                self.out.counters.pauses += 1;
                None
            }
            _ => None,
        };
        let (Some(r), super::core::RegionSource::Driver { allowed }) = (regions, &self.source)
        else {
            return;
        };
        let map = tensorpool_shm::MapOptions {
            prefault: false,
            mlock: self.cfg.mlock,
        };
        // The old epoch's mappings go before the new ones are made.
        self.regions = None;
        match regions::map_driver_regions(&r, allowed, map) {
            Ok(m) => self.install(m),
            Err(e) => tracing::warn!(error = %e, "producer could not map the driver's regions"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grant {
    Absent,
    Kept,
    Started,
    Declined,
}

/// The registry entry of `consumer_id`, added (last seen `now_ns`) when there is room;
/// `None` when the registry is full.
fn find_or_insert(
    registry: &mut Registry,
    consumer_id: u32,
    now_ns: u64,
) -> Option<&mut ConsumerEntry> {
    if registry.find_mut(consumer_id).is_none() && registry.entries.len() < registry.capacity {
        registry
            .entries
            .push(ConsumerEntry::new(consumer_id, now_ns));
    }
    registry.find_mut(consumer_id)
}

/// Applies a consumer's two per-consumer stream requests (descriptor, then control) to its
/// entry; returns how many were declined.
fn grant_both(
    e: &mut ConsumerEntry,
    [descriptor, control]: [(&[u8], u32); 2],
    allow: bool,
    links: &mut dyn LinkOpener,
) -> u64 {
    let d = grant(&mut e.descriptor, descriptor.0, descriptor.1, allow, links);
    let c = grant(&mut e.control, control.0, control.1, allow, links);
    u64::from(d == Grant::Declined) + u64::from(c == Grant::Declined)
}

/// Applies one per-consumer stream request: keep the existing stream (registered or in
/// flight) if it matches, start registering it if allowed and valid, otherwise decline
/// (empty channel + 0, Wire Spec §10.1.3).
fn grant(
    slot: &mut Option<Granted>,
    channel: &[u8],
    stream_id: u32,
    allow: bool,
    links: &mut dyn LinkOpener,
) -> Grant {
    match StreamRequest::classify(channel, stream_id) {
        StreamRequest::Absent => {
            *slot = None;
            return Grant::Absent;
        }
        StreamRequest::Invalid => {
            *slot = None;
            return Grant::Declined;
        }
        StreamRequest::Requested => {}
    }
    if slot.as_ref().is_some_and(|g| g.matches(channel, stream_id)) {
        return Grant::Kept;
    }
    *slot = None;
    let (Ok(text), Ok(id), true) = (
        std::str::from_utf8(channel),
        i32::try_from(stream_id),
        allow,
    ) else {
        return Grant::Declined;
    };
    if !text.starts_with("aeron:") {
        return Grant::Declined;
    }
    match links.open(text, id) {
        Ok(link) => {
            *slot = Some(Granted {
                channel: text.to_owned(),
                stream_id,
                link,
                ready: false,
            });
            Grant::Started
        }
        Err(e) => {
            tracing::warn!(channel = text, stream_id, error = %e, "per-consumer stream declined");
            Grant::Declined
        }
    }
}
