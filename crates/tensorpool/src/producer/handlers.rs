//! The producer's inbound messages: one `on_<message>` each.

use tensorpool_aeron::AeronClient;
use tensorpool_codec::Message;
use tensorpool_codec::wire::{ConsumerHello, QosConsumer};

use super::Producer;
use super::proxy::{self, ConfigAnswer};
use super::state::{ConsumerEntry, Granted};
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
    /// decline per-consumer streams, answer with `ConsumerConfig`.
    fn on_consumer_hello(&mut self, hello: &ConsumerHello<'_>, now_ns: u64) {
        if hello.stream_id != self.cfg.stream_id {
            return;
        }
        self.out.counters.hellos += 1;
        if self.out.registry.find_mut(hello.consumer_id).is_none()
            && self.out.registry.entries.len() < self.out.registry.capacity
        {
            self.out
                .registry
                .entries
                .push(ConsumerEntry::new(hello.consumer_id, now_ns));
        }
        let client = self.ctx.shared().client.clone();
        let timeout = self.cfg.aeron_timeout;
        let allow = self.cfg.per_consumer_streams;
        let mut granted = 0;
        let mut declined = 0;
        let answer = match self.out.registry.find_mut(hello.consumer_id) {
            Some(e) => {
                e.last_seen_ns = now_ns;
                e.supports_progress = hello.supports_progress;
                e.mode = hello.mode;
                e.max_rate_hz = hello.max_rate_hz;
                e.hints = [
                    hello.progress_interval_us,
                    hello.progress_bytes_delta,
                    hello.progress_major_delta_units,
                ];
                let d = &hello.descriptor_channel;
                let c = &hello.control_channel;
                for (slot, channel, id) in [
                    (&mut e.descriptor, d.as_bytes(), hello.descriptor_stream_id),
                    (&mut e.control, c.as_bytes(), hello.control_stream_id),
                ] {
                    match grant(slot, channel, id, allow, &client, timeout) {
                        Grant::Kept | Grant::Absent => {}
                        Grant::New => granted += 1,
                        Grant::Declined => declined += 1,
                    }
                }
                ConfigAnswer {
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
                }
            }
            None => {
                // Registry full: answer without per-consumer streams.
                if !hello.descriptor_channel.is_empty() || !hello.control_channel.is_empty() {
                    declined += 1;
                }
                ConfigAnswer {
                    consumer_id: hello.consumer_id,
                    mode: hello.mode,
                    descriptor: None,
                    control: None,
                }
            }
        };
        let sent = proxy::send_consumer_config(&mut self.out.pubs.control, &self.cfg, &answer);
        self.out.counters.per_consumer_granted += granted;
        self.out.counters.per_consumer_declined += declined;
        match sent {
            Ok(()) => self.out.counters.configs_sent += 1,
            Err(_) => self.out.counters.send_failures += 1,
        }
        self.out.registry.replan(&self.cfg);
    }
}

enum Grant {
    Absent,
    Kept,
    New,
    Declined,
}

/// Applies one per-consumer stream request: keep the existing publication if it matches,
/// create it if allowed and valid, otherwise decline (empty channel + 0, Wire Spec §10.1.3).
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
    match client.add_exclusive_publication(text, id, timeout) {
        Ok(publication) => {
            *slot = Some(Granted {
                channel: text.to_owned(),
                stream_id,
                publication,
            });
            Grant::New
        }
        Err(e) => {
            tracing::warn!(channel = text, stream_id, error = %e, "per-consumer stream declined");
            Grant::Declined
        }
    }
}
