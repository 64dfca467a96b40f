//! Control-plane and QoS messages of the wire schema.

use super::{ClockDomain, FrameProgressState, Mode, ResponseCode, TEXT_MAX, gw};

codec! {
    /// Soft-state beacon of a stream: epoch, layout, header ring and payload pools.
    message ShmPoolAnnounce<'a> = gw::ShmPoolAnnounce {
        /// Stream the regions belong to.
        stream_id: u32,
        /// Producer of the stream.
        producer_id: u32,
        /// Current region generation.
        epoch: u64,
        /// When this announce was sent, in `announce_clock_domain`.
        announce_timestamp_ns: u64,
        /// Clock of `announce_timestamp_ns`.
        announce_clock_domain: ClockDomain,
        /// SHM layout version of the regions.
        layout_version: u32,
        /// Slots in the header ring.
        header_nslots: u32,
        /// Bytes per header slot.
        header_slot_bytes: u16,
    } groups {
        /// The payload pools, by size class.
        payload_pools: PayloadPool<'a> = "payloadPools",
    } data {
        /// Region URI of the header ring.
        header_region_uri: TEXT_MAX,
    }
}

codec! {
    /// A payload pool: entry of `ShmPoolAnnounce.payloadPools`, and of the same groups in
    /// `ShmAttachResponse` and `DiscoveryResponse` results (identical layout).
    entry PayloadPool<'a> = gw::shm_pool_announce::payloadPoolsEntry {
        /// Pool id (size class).
        pool_id: u16,
        /// Slots in the pool.
        pool_nslots: u32,
        /// Bytes per slot.
        stride_bytes: u32,
    } data {
        /// Region URI of the pool file.
        region_uri: TEXT_MAX,
    }
}

codec! {
    /// A consumer's capabilities and requests.
    message ConsumerHello<'a> = gw::ConsumerHello {
        /// Stream to consume.
        stream_id: u32,
        /// Consumer id.
        consumer_id: u32,
        /// Can map shared memory.
        supports_shm: bool,
        /// Wants `FrameProgress` messages.
        supports_progress: bool,
        /// Delivery mode requested.
        mode: Mode,
        /// Highest rate wanted in rate-limited mode (0: no limit).
        max_rate_hz: u32,
        /// SHM layout version the consumer understands.
        expected_layout_version: u32,
        /// Smallest interval between progress messages.
        progress_interval_us: Option<u32> = null(u32::MAX, progress_interval_us_opt),
        /// Smallest payload growth between progress messages.
        progress_bytes_delta: Option<u32> = null(u32::MAX, progress_bytes_delta_opt),
        /// Smallest growth in major-dimension units between progress messages.
        progress_major_delta_units: Option<u32> = null(u32::MAX, progress_major_delta_units_opt),
        /// Requested per-consumer descriptor stream (0: none).
        descriptor_stream_id: u32,
        /// Requested per-consumer control stream (0: none).
        control_stream_id: u32,
    } data {
        /// Channel of the requested descriptor stream.
        descriptor_channel: TEXT_MAX,
        /// Channel of the requested control stream.
        control_channel: TEXT_MAX,
    }
}

codec! {
    /// The producer's (or supervisor's) answer to a `ConsumerHello`.
    message ConsumerConfig<'a> = gw::ConsumerConfig {
        /// Stream concerned.
        stream_id: u32,
        /// Consumer addressed.
        consumer_id: u32,
        /// Whether to read payloads from shared memory.
        use_shm: bool,
        /// Delivery mode assigned.
        mode: Mode,
        /// Assigned descriptor stream (0 with an empty channel: declined).
        descriptor_stream_id: u32,
        /// Assigned control stream (0 with an empty channel: declined).
        control_stream_id: u32,
    } data {
        /// Where to get payloads when shared memory is not used.
        payload_fallback_uri: TEXT_MAX,
        /// Channel of the assigned descriptor stream.
        descriptor_channel: TEXT_MAX,
        /// Channel of the assigned control stream.
        control_channel: TEXT_MAX,
    }
}

codec! {
    /// A committed frame is ready in a header slot.
    message FrameDescriptor = gw::FrameDescriptor {
        /// Stream of the frame.
        stream_id: u32,
        /// Region generation the frame was written in.
        epoch: u64,
        /// Frame sequence number.
        seq: u64,
        /// Capture time.
        timestamp_ns: Option<u64> = null(u64::MAX, timestamp_ns_opt),
        /// Metadata version of the frame.
        meta_version: Option<u32> = null(u32::MAX, meta_version_opt),
        /// Trace id (null on the wire is 0).
        trace_id: Option<u64> = null(0, trace_id_opt),
    }
}

codec! {
    /// Partial fill of a frame's payload.
    message FrameProgress = gw::FrameProgress {
        /// Stream of the frame.
        stream_id: u32,
        /// Region generation.
        epoch: u64,
        /// Frame sequence number.
        seq: u64,
        /// Payload bytes written so far.
        payload_bytes_filled: u64,
        /// Stage of the fill.
        state: FrameProgressState,
    }
}

codec! {
    /// Consumer-side delivery statistics.
    message QosConsumer = gw::QosConsumer {
        /// Stream consumed.
        stream_id: u32,
        /// Consumer id.
        consumer_id: u32,
        /// Region generation.
        epoch: u64,
        /// Last sequence number received.
        last_seq_seen: u64,
        /// Frames missed (sequence gaps).
        drops_gap: u64,
        /// Frames overwritten before they were read.
        drops_late: u64,
        /// Delivery mode in use.
        mode: Mode,
    }
}

codec! {
    /// Producer-side progress.
    message QosProducer = gw::QosProducer {
        /// Stream produced.
        stream_id: u32,
        /// Producer id.
        producer_id: u32,
        /// Region generation.
        epoch: u64,
        /// Last sequence number published.
        current_seq: u64,
        /// Watermark, if the producer reports one.
        watermark: Option<u32> = null(u32::MAX, watermark_opt),
    }
}

codec! {
    /// Generic result of a control request.
    message ControlResponse<'a> = gw::ControlResponse {
        /// Correlation id of the request, where there is one.
        correlation_id: i64,
        /// Result.
        code: ResponseCode,
    } data {
        /// Human-readable reason (empty on success).
        error_message: TEXT_MAX,
    }
}
