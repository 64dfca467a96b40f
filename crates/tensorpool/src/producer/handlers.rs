//! The producer's inbound messages: one `on_<message>` each.

use tensorpool_aeron::AeronClient;
use tensorpool_codec::Message;
use tensorpool_codec::wire::{ConsumerHello, QosConsumer};

use super::Producer;
use super::proxy::{self, ConfigAnswer};
use super::state::{ConsumerEntry, Granted, Link, Resolved, poll_grant};
use crate::io::{tid, wire_template};
use crate::streams::StreamRequest;

impl Producer {
    /// Dispatches one message from the shared control stream (schema, then template).
    pub(super) fn on_control_message(&mut self, msg: &[u8], now_ns: u64) {
        if wire_template(msg) == Some(tid::HELLO)
            && let Ok(hello) = ConsumerHello::decode(msg)
        {
            self.on_consumer_hello(&hello, now_ns);
        }
    }

    /// Dispatches one message from the QoS stream.
    pub(super) fn on_qos_message(&mut self, msg: &[u8], now_ns: u64) {
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
    /// [`Producer::grants_duty`]), so the consumer is never told of a stream that fails.
    fn on_consumer_hello(&mut self, hello: &ConsumerHello<'_>, now_ns: u64) {
        if hello.stream_id != self.cfg.stream_id {
            return;
        }
        self.out.counters.hellos += 1;
        let registry = &mut self.out.registry;
        if registry.find_mut(hello.consumer_id).is_none()
            && registry.entries.len() < registry.capacity
        {
            registry
                .entries
                .push(ConsumerEntry::new(hello.consumer_id, now_ns));
        }
        let client = self.ctx.shared().client.clone();
        let timeout = self.cfg.aeron_timeout;
        let allow = self.cfg.per_consumer_streams;
        let Some(e) = registry.find_mut(hello.consumer_id) else {
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
            self.send_config(&answer);
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
        let mut declined = 0;
        for (slot, channel, id) in [
            (
                &mut e.descriptor,
                hello.descriptor_channel.as_bytes(),
                hello.descriptor_stream_id,
            ),
            (
                &mut e.control,
                hello.control_channel.as_bytes(),
                hello.control_stream_id,
            ),
        ] {
            if grant(slot, channel, id, allow, &client, timeout) == Grant::Declined {
                declined += 1;
            }
        }
        e.answer_due = true;
        let consumer_id = e.consumer_id;
        self.out.counters.per_consumer_declined += declined;
        self.answer_if_ready(consumer_id);
        self.out.registry.replan(&self.cfg);
    }

    /// Sends the `ConsumerConfig` a consumer is due, unless one of its per-consumer streams
    /// is still being registered.
    fn answer_if_ready(&mut self, consumer_id: u32) {
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
        let sent = proxy::send_consumer_config(&mut self.out.pubs.control, &self.cfg, &answer);
        self.count_config(sent);
    }

    fn send_config(&mut self, answer: &ConfigAnswer<'_>) {
        let sent = proxy::send_consumer_config(&mut self.out.pubs.control, &self.cfg, answer);
        self.count_config(sent);
    }

    fn count_config(&mut self, sent: Result<(), crate::io::SendError>) {
        match sent {
            Ok(()) => self.out.counters.configs_sent += 1,
            Err(_) => self.out.counters.send_failures += 1,
        }
    }

    /// Polls the per-consumer registrations in flight (never blocks): a registered stream is
    /// granted, a refused or timed-out one declined; then answers the consumers whose
    /// registrations all completed. Returns the work done.
    pub(super) fn grants_duty(&mut self) -> usize {
        let mut work = 0;
        for i in 0..self.out.registry.entries.len() {
            let e = &mut self.out.registry.entries[i];
            if !e.answer_due {
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
                self.answer_if_ready(id);
                self.out.registry.replan(&self.cfg);
                work += 1;
            }
        }
        work
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grant {
    Absent,
    Kept,
    Started,
    Declined,
}

/// Applies one per-consumer stream request: keep the existing stream (registered or in
/// flight) if it matches, start registering it if allowed and valid, otherwise decline
/// (empty channel + 0, Wire Spec §10.1.3).
fn grant(
    slot: &mut Option<Granted>,
    channel: &[u8],
    stream_id: u32,
    allow: bool,
    client: &AeronClient,
    timeout: std::time::Duration,
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
    match client.start_add_exclusive_publication(text, id, timeout) {
        Ok(pending) => {
            *slot = Some(Granted {
                channel: text.to_owned(),
                stream_id,
                link: Link::Pending(pending),
            });
            Grant::Started
        }
        Err(e) => {
            tracing::warn!(channel = text, stream_id, error = %e, "per-consumer stream declined");
            Grant::Declined
        }
    }
}
