//! The consumer's outbound messages: `ConsumerHello` and `QosConsumer`.

use tensorpool_codec::Bytes;
use tensorpool_codec::wire::{ConsumerHello, QosConsumer};

use super::core::ConsumerCore;
use crate::control::{MessageSink, SendError, send};

pub(crate) fn send_hello(p: &mut dyn MessageSink, core: &ConsumerCore) -> Result<(), SendError> {
    let c = &core.cfg;
    let (dc, di) = c.descriptor_request.as_ref().map_or((&[][..], 0), |e| {
        (e.channel.as_bytes(), e.stream_id.max(0) as u32)
    });
    let (cc, ci) = c.control_request.as_ref().map_or((&[][..], 0), |e| {
        (e.channel.as_bytes(), e.stream_id.max(0) as u32)
    });
    send(
        p,
        &ConsumerHello {
            stream_id: c.stream_id,
            consumer_id: c.consumer_id,
            supports_shm: true,
            supports_progress: c.supports_progress,
            mode: c.mode.wire(),
            max_rate_hz: c.mode.max_rate_hz(),
            expected_layout_version: c.expected_layout_version,
            progress_interval_us: c.progress_hints.interval_us,
            progress_bytes_delta: c.progress_hints.bytes_delta,
            progress_major_delta_units: c.progress_hints.major_delta_units,
            descriptor_stream_id: di,
            control_stream_id: ci,
            descriptor_channel: Bytes::new(dc),
            control_channel: Bytes::new(cc),
        },
    )
}

pub(crate) fn send_qos(p: &mut dyn MessageSink, core: &ConsumerCore) -> Result<(), SendError> {
    send(
        p,
        &QosConsumer {
            stream_id: core.cfg.stream_id,
            consumer_id: core.cfg.consumer_id,
            epoch: core.mapped.as_ref().map_or(0, |m| m.epoch),
            last_seq_seen: core.seqs.last.unwrap_or(0),
            drops_gap: core.drops.gap.get(),
            drops_late: core.drops.late(),
            mode: core.effective_mode,
        },
    )
}
