//! The producer's outbound messages: one `send_<message>` per message, each through
//! [`crate::control::send`] into a [`MessageSink`] (an Aeron claim in production, so encoded
//! in place: ARCHITECTURE rule 3). Failures are counted by the caller, never waited on.

use tensorpool_codec::Bytes;
use tensorpool_codec::wire::{
    ClockDomain, ConsumerConfig, DataSourceAnnounce, FrameDescriptor, FrameProgress,
    FrameProgressState, Mode, QosProducer, ShmPoolAnnounce,
};

use super::config::ProducerConfig;
use super::regions::Regions;
use crate::control::{MessageSink, SendError, send};

pub(crate) fn send_announce(
    p: &mut dyn MessageSink,
    cfg: &ProducerConfig,
    r: &Regions,
    now_ns: u64,
) -> Result<(), SendError> {
    send(
        p,
        &ShmPoolAnnounce {
            stream_id: cfg.stream_id,
            producer_id: cfg.producer_id,
            epoch: r.epoch,
            announce_timestamp_ns: now_ns,
            announce_clock_domain: ClockDomain::Monotonic,
            layout_version: r.layout_version,
            header_nslots: r.header_nslots,
            header_slot_bytes: tensorpool_shm::HEADER_SLOT_BYTES as u16,
            payload_pools: r.announce_pools.group(),
            header_region_uri: Bytes::new(r.header_uri.as_bytes()),
        },
    )
}

/// What a `FrameDescriptor` says about one committed frame.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Descriptor {
    pub stream_id: u32,
    pub epoch: u64,
    pub seq: u64,
    /// `timestamp_ns`: the publish time, when configured (else null, Wire Spec §10.2.1).
    pub publish_ts: Option<u64>,
    pub meta_version: u32,
    /// TraceLink id (`None`: 0 on the wire).
    pub trace_id: Option<u64>,
}

pub(crate) fn send_descriptor(p: &mut dyn MessageSink, d: &Descriptor) -> Result<(), SendError> {
    send(
        p,
        &FrameDescriptor {
            stream_id: d.stream_id,
            epoch: d.epoch,
            seq: d.seq,
            timestamp_ns: d.publish_ts,
            meta_version: Some(d.meta_version),
            trace_id: d.trace_id,
        },
    )
}

pub(crate) fn send_progress(
    p: &mut dyn MessageSink,
    stream_id: u32,
    epoch: u64,
    seq: u64,
    filled: u64,
    state: FrameProgressState,
) -> Result<(), SendError> {
    send(
        p,
        &FrameProgress {
            stream_id,
            epoch,
            seq,
            payload_bytes_filled: filled,
            state,
        },
    )
}

/// What a `ConsumerConfig` answer says (borrowed from the producer's state).
pub(crate) struct ConfigAnswer<'a> {
    pub consumer_id: u32,
    pub mode: Mode,
    pub descriptor: Option<(&'a str, u32)>,
    pub control: Option<(&'a str, u32)>,
}

pub(crate) fn send_consumer_config(
    p: &mut dyn MessageSink,
    cfg: &ProducerConfig,
    a: &ConfigAnswer<'_>,
) -> Result<(), SendError> {
    let (dc, di) = a.descriptor.unwrap_or(("", 0));
    let (cc, ci) = a.control.unwrap_or(("", 0));
    send(
        p,
        &ConsumerConfig {
            stream_id: cfg.stream_id,
            consumer_id: a.consumer_id,
            use_shm: cfg.use_shm,
            mode: a.mode,
            descriptor_stream_id: di,
            control_stream_id: ci,
            payload_fallback_uri: Bytes::new(cfg.payload_fallback_uri.as_bytes()),
            descriptor_channel: Bytes::new(dc.as_bytes()),
            control_channel: Bytes::new(cc.as_bytes()),
        },
    )
}

pub(crate) fn send_qos(
    p: &mut dyn MessageSink,
    cfg: &ProducerConfig,
    epoch: u64,
    current_seq: u64,
) -> Result<(), SendError> {
    send(
        p,
        &QosProducer {
            stream_id: cfg.stream_id,
            producer_id: cfg.producer_id,
            epoch,
            current_seq,
            watermark: None,
        },
    )
}

pub(crate) fn send_data_source_announce(
    p: &mut dyn MessageSink,
    cfg: &ProducerConfig,
    epoch: u64,
    meta_version: u32,
) -> Result<(), SendError> {
    send(
        p,
        &DataSourceAnnounce {
            stream_id: cfg.stream_id,
            producer_id: cfg.producer_id,
            epoch,
            meta_version,
            name: Bytes::new(cfg.name.as_bytes()),
            summary: Bytes::new(cfg.summary.as_bytes()),
        },
    )
}
