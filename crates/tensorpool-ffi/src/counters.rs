//! Every counter of a producer and a consumer as a documented C struct field (issue 18):
//! `tp_producer_counters_all`, `tp_consumer_counters_all` (with one drop counter per
//! `tp_drop_cause`, `drops[TP_DROP_UNMAPPED]` ...). The structs are filled by exhaustive
//! destructuring of the Rust snapshots, so a counter added in Rust without its C field does
//! not compile.

use tensorpool::consumer::{ConsumerCounters, DropCause};
use tensorpool::producer::ProducerCounters;

use crate::error::{guard, tp_status};
use crate::handles;

/// Number of drop causes (`tp_consumer_counters_all.drops` entries).
pub const TP_DROP_CAUSE_COUNT: usize = 30;

/// Why a descriptor did not become an accepted frame: the index into
/// `tp_consumer_counters_all.drops`. `tp_drop_cause_name` gives the snake_case name
/// `tp_consumer_counter` takes after `"drops."`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum tp_drop_cause {
    /// No regions mapped (Wire Spec §15.21).
    TP_DROP_UNMAPPED = 0,
    /// Descriptor epoch differs from the mapped epoch.
    TP_DROP_EPOCH_MISMATCH = 1,
    /// Sequence not above the last one seen in this epoch.
    TP_DROP_SEQ_REGRESSED = 2,
    /// Skipped by RATE_LIMITED gating.
    TP_DROP_RATE_LIMITED = 3,
    /// The slot was not committed.
    TP_DROP_NOT_COMMITTED = 4,
    /// Overwritten or unstable while read (seqlock).
    TP_DROP_LATE = 5,
    /// The slot holds an older frame.
    TP_DROP_STALE = 6,
    /// The slot was overwritten before it was read.
    TP_DROP_OVERWRITTEN = 7,
    /// The slot failed the header rule `header_bytes_length` (Wire Spec §8.2).
    TP_DROP_HEADER_BYTES_LENGTH = 8,
    /// The slot failed the header rule `embedded_block_length` (Wire Spec §8.2).
    TP_DROP_EMBEDDED_BLOCK_LENGTH = 9,
    /// The slot failed the header rule `embedded_template_id` (Wire Spec §8.2).
    TP_DROP_EMBEDDED_TEMPLATE_ID = 10,
    /// The slot failed the header rule `embedded_schema_id` (Wire Spec §8.2).
    TP_DROP_EMBEDDED_SCHEMA_ID = 11,
    /// The slot failed the header rule `embedded_version` (Wire Spec §8.2).
    TP_DROP_EMBEDDED_VERSION = 12,
    /// The slot failed the header rule `ndims_out_of_range` (Wire Spec §8.2).
    TP_DROP_NDIMS_OUT_OF_RANGE = 13,
    /// The slot failed the header rule `unknown_dtype` (Wire Spec §8.2).
    TP_DROP_UNKNOWN_DTYPE = 14,
    /// The slot failed the header rule `unknown_major_order` (Wire Spec §8.2).
    TP_DROP_UNKNOWN_MAJOR_ORDER = 15,
    /// The slot failed the header rule `unknown_progress_unit` (Wire Spec §8.2).
    TP_DROP_UNKNOWN_PROGRESS_UNIT = 16,
    /// The slot failed the header rule `negative_dim` (Wire Spec §8.2).
    TP_DROP_NEGATIVE_DIM = 17,
    /// The slot failed the header rule `negative_stride` (Wire Spec §8.2).
    TP_DROP_NEGATIVE_STRIDE = 18,
    /// The slot failed the header rule `strides_overlap` (Wire Spec §8.2).
    TP_DROP_STRIDES_OVERLAP = 19,
    /// The slot failed the header rule `strides_contradict_major_order` (Wire Spec §8.2).
    TP_DROP_STRIDES_CONTRADICT_MAJOR_ORDER = 20,
    /// The slot failed the header rule `progress_stride_invalid` (Wire Spec §8.2).
    TP_DROP_PROGRESS_STRIDE_INVALID = 21,
    /// The slot failed the header rule `extent_exceeds_values_len` (Wire Spec §8.2).
    TP_DROP_EXTENT_EXCEEDS_VALUES_LEN = 22,
    /// The slot failed the header rule `payload_offset_non_zero` (Wire Spec §8.2).
    TP_DROP_PAYLOAD_OFFSET_NON_ZERO = 23,
    /// The slot failed the header rule `payload_slot_mismatch` (Wire Spec §8.2).
    TP_DROP_PAYLOAD_SLOT_MISMATCH = 24,
    /// The slot failed the header rule `unknown_pool` (Wire Spec §8.2).
    TP_DROP_UNKNOWN_POOL = 25,
    /// The slot failed the header rule `values_len_exceeds_stride` (Wire Spec §8.2).
    TP_DROP_VALUES_LEN_EXCEEDS_STRIDE = 26,
    /// The slot failed the header rule `malformed` (Wire Spec §8.2).
    TP_DROP_MALFORMED = 27,
    /// The slot failed the header rule `region_dead` (Wire Spec §8.2).
    TP_DROP_REGION_DEAD = 28,
    /// Skipped unread to catch up: the producer had already begun the frame half a ring
    /// later (`consumer.catch_up`).
    TP_DROP_BEHIND = 29,
}

/// Every producer counter (`Producer::counters`), one field each.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
#[allow(non_camel_case_types)]
pub struct tp_producer_counters_all {
    /// Frames committed (seqlock committed, descriptor attempted).
    pub committed: u64,
    /// Payload bytes committed.
    pub bytes: u64,
    /// Claims dropped without commit (slot left in progress, no descriptor).
    pub aborted: u64,
    /// Frames dropped because no pool's stride holds them (Wire Spec §9).
    pub drops_no_pool: u64,
    /// Descriptors published on the shared stream.
    pub descriptors_sent: u64,
    /// Descriptors published on per-consumer streams.
    pub descriptors_per_consumer: u64,
    /// Descriptors skipped on a per-consumer stream by its `max_rate_hz` cap.
    pub descriptors_rate_capped: u64,
    /// Descriptors Aeron refused with back pressure or an admin action (shared or per-consumer stream); the frame stays committed.
    pub descriptors_back_pressured: u64,
    /// Descriptors not sent because no one subscribes to the stream.
    pub descriptors_not_connected: u64,
    /// Stalls of the shared descriptor stream: back pressure on every descriptor for longer than `stall_threshold`, counted (and logged) once per stall.
    pub descriptor_stalls: u64,
    /// Descriptors Aeron refused otherwise (publication closed, position exhausted).
    pub descriptor_failures: u64,
    /// `FrameProgress` messages published.
    pub progress_sent: u64,
    /// `ShmPoolAnnounce` messages published.
    pub announces_sent: u64,
    /// `QosProducer` messages published.
    pub qos_sent: u64,
    /// `DataSourceAnnounce` messages published.
    pub data_source_sent: u64,
    /// `DataSourceMeta` messages published.
    pub meta_sent: u64,
    /// Meta blob messages (announce, chunks, complete) published.
    pub meta_blob_messages: u64,
    /// `ConsumerHello` messages received for our stream.
    pub hellos: u64,
    /// `QosConsumer` messages received for our stream.
    pub consumer_qos: u64,
    /// `ConsumerConfig` messages sent.
    pub configs_sent: u64,
    /// `ConsumerConfig` messages for our stream from a supervisor (another publication), applied: their per-consumer streams opened, no answer of our own.
    pub supervisor_configs: u64,
    /// `ConsumerHello` messages left to the supervisor (not answered: supervised).
    pub hellos_left_to_supervisor: u64,
    /// Per-consumer streams granted (registered by the media driver).
    pub per_consumer_granted: u64,
    /// Per-consumer stream requests declined (invalid, disabled, full or failed).
    pub per_consumer_declined: u64,
    /// Consumers removed as stale (their per-consumer publications closed).
    pub consumers_stale: u64,
    /// Consumers tracked now (a level).
    pub consumers: u64,
    /// Epochs installed (created standalone, or granted by the driver).
    pub epochs: u64,
    /// The epoch being written now (a level; 0 while paused).
    pub epoch: u64,
    /// Times the producer paused (driver mode: lease revoked or lost, driver gone).
    pub pauses: u64,
    /// Other control messages Aeron refused to send.
    pub send_failures: u64,
}

/// Every consumer counter (`Consumer::counters`), one field each, and the drops per cause.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct tp_consumer_counters_all {
    /// Descriptors received for our stream.
    pub descriptors: u64,
    /// Frames accepted: delivered, and still committed after the handler returned.
    pub accepted: u64,
    /// Payload bytes of the frames accepted.
    pub bytes: u64,
    /// Resyncs: a sequence gap larger than `max_outstanding_seq_gap`.
    pub resyncs: u64,
    /// Announces received for our stream.
    pub announces: u64,
    /// Announces ignored as older than the freshness window.
    pub announces_stale: u64,
    /// MONOTONIC announces ignored as older than the subscription's join time.
    pub announces_pre_join: u64,
    /// Announces ignored for an older epoch than the mapped or freshest one.
    pub announces_older_epoch: u64,
    /// Announces ignored while waiting for a new epoch or backing off.
    pub announces_waiting: u64,
    /// Successful mappings.
    pub maps: u64,
    /// Failed mappings (nothing stays mapped).
    pub map_failures: u64,
    /// Remaps at an epoch change.
    pub remaps: u64,
    /// The mapped epoch (a level; 0 while unmapped).
    pub epoch: u64,
    /// Unmaps because `activity_timestamp_ns` went stale.
    pub unmaps_stale: u64,
    /// Unmaps because the superblock changed (pid, epoch, magic).
    pub unmaps_superblock: u64,
    /// Unmaps because a region file was truncated under the mapping (SIGBUS repaired).
    pub unmaps_dead: u64,
    /// Unmaps because the driver revoked the stream's producer or our own lease, shut down, was lost, or broke the protocol (driver mode).
    pub unmaps_revoked: u64,
    /// `FrameProgress` delivered to the handler.
    pub progress: u64,
    /// `FrameProgress` dropped (unmapped, epoch, slot, beyond values_len, regression).
    pub progress_dropped: u64,
    /// `FrameProgress` dropped because bytes regressed within a frame.
    pub progress_regressed: u64,
    /// `FrameProgress` dropped because bytes exceeded values_len_bytes.
    pub progress_beyond: u64,
    /// `ConsumerConfig` messages for us.
    pub configs: u64,
    /// `ConsumerHello` sent.
    pub hellos_sent: u64,
    /// `QosConsumer` sent.
    pub qos_sent: u64,
    /// Frames accepted through the payload fallback (also in `accepted`).
    pub fallback_frames: u64,
    /// `BridgeFrameChunk` messages read from the fallback payload stream.
    pub fallback_chunks: u64,
    /// Fallback chunks dropped (malformed, a field rule, an older epoch, CRC32C).
    pub fallback_chunk_drops: u64,
    /// Fallback chunks whose CRC32C was missing (integrity on) or wrong.
    pub fallback_crc_errors: u64,
    /// Fallback frames dropped (conflicting chunks, timed out, evicted, bad header).
    pub fallback_frame_drops: u64,
    /// Meta blobs reassembled and verified.
    pub blobs_completed: u64,
    /// Meta blobs discarded (gap, overlap, checksum, size).
    pub blobs_discarded: u64,
    /// `DataSourceMeta` versions stored.
    pub meta_updates: u64,
    /// Capture (slot `timestamp_ns`, `CLOCK_MONOTONIC`) to delivery of the last frame accepted, ns (a level; frames without a timestamp or from another clock are not measured).
    pub latency_last_ns: u64,
    /// Median of that latency over the last QoS interval, ns (a level; 0: no frame).
    pub latency_p50_ns: u64,
    /// 99th percentile of that latency over the last QoS interval, ns (a level).
    pub latency_p99_ns: u64,
    /// Descriptors dropped, every cause.
    pub drops_total: u64,
    /// Frames never seen (sum of sequence gaps; QoS `drops_gap`).
    pub drops_gap: u64,
    /// Drops QoS reports as late (seqlock instability or overwrite).
    pub drops_late: u64,
    /// Descriptors dropped per cause, indexed by `tp_drop_cause`.
    pub drops: [u64; TP_DROP_CAUSE_COUNT],
}

pub(crate) fn producer_all(c: ProducerCounters) -> tp_producer_counters_all {
    let ProducerCounters {
        committed,
        bytes,
        aborted,
        drops_no_pool,
        descriptors_sent,
        descriptors_per_consumer,
        descriptors_rate_capped,
        descriptors_back_pressured,
        descriptors_not_connected,
        descriptor_stalls,
        descriptor_failures,
        progress_sent,
        announces_sent,
        qos_sent,
        data_source_sent,
        meta_sent,
        meta_blob_messages,
        hellos,
        consumer_qos,
        configs_sent,
        supervisor_configs,
        hellos_left_to_supervisor,
        per_consumer_granted,
        per_consumer_declined,
        consumers_stale,
        consumers,
        epochs,
        epoch,
        pauses,
        send_failures,
    } = c;
    tp_producer_counters_all {
        committed,
        bytes,
        aborted,
        drops_no_pool,
        descriptors_sent,
        descriptors_per_consumer,
        descriptors_rate_capped,
        descriptors_back_pressured,
        descriptors_not_connected,
        descriptor_stalls,
        descriptor_failures,
        progress_sent,
        announces_sent,
        qos_sent,
        data_source_sent,
        meta_sent,
        meta_blob_messages,
        hellos,
        consumer_qos,
        configs_sent,
        supervisor_configs,
        hellos_left_to_supervisor,
        per_consumer_granted,
        per_consumer_declined,
        consumers_stale,
        consumers,
        epochs,
        epoch,
        pauses,
        send_failures,
    }
}

pub(crate) fn consumer_all(
    c: ConsumerCounters,
    d: &tensorpool::consumer::Drops,
) -> tp_consumer_counters_all {
    let ConsumerCounters {
        descriptors,
        accepted,
        bytes,
        resyncs,
        announces,
        announces_stale,
        announces_pre_join,
        announces_older_epoch,
        announces_waiting,
        maps,
        map_failures,
        remaps,
        epoch,
        unmaps_stale,
        unmaps_superblock,
        unmaps_dead,
        unmaps_revoked,
        progress,
        progress_dropped,
        progress_regressed,
        progress_beyond,
        configs,
        hellos_sent,
        qos_sent,
        fallback_frames,
        fallback_chunks,
        fallback_chunk_drops,
        fallback_crc_errors,
        fallback_frame_drops,
        blobs_completed,
        blobs_discarded,
        meta_updates,
        latency_last_ns,
        latency_p50_ns,
        latency_p99_ns,
    } = c;
    let mut drops = [0u64; TP_DROP_CAUSE_COUNT];
    for (i, slot) in drops.iter_mut().enumerate() {
        if let Some(cause) = DropCause::from_index(i) {
            *slot = d.get(cause);
        }
    }
    tp_consumer_counters_all {
        descriptors,
        accepted,
        bytes,
        resyncs,
        announces,
        announces_stale,
        announces_pre_join,
        announces_older_epoch,
        announces_waiting,
        maps,
        map_failures,
        remaps,
        epoch,
        unmaps_stale,
        unmaps_superblock,
        unmaps_dead,
        unmaps_revoked,
        progress,
        progress_dropped,
        progress_regressed,
        progress_beyond,
        configs,
        hellos_sent,
        qos_sent,
        fallback_frames,
        fallback_chunks,
        fallback_chunk_drops,
        fallback_crc_errors,
        fallback_frame_drops,
        blobs_completed,
        blobs_discarded,
        meta_updates,
        latency_last_ns,
        latency_p50_ns,
        latency_p99_ns,
        drops_total: d.total(),
        drops_gap: d.gap,
        drops_late: d.late(),
        drops,
    }
}

/// Every producer counter. `TP_ERR_STATE` while a claim is open.
#[unsafe(no_mangle)]
pub extern "C" fn tp_producer_get_counters_all(
    producer: *mut crate::producer::tp_producer,
    out: *mut tp_producer_counters_all,
) -> tp_status {
    guard("tp_producer_get_counters_all", || {
        let p = crate::producer::get(producer)?.producer()?;
        *handles::out(out, "out")? = producer_all(p.counters());
        Ok(())
    })
}

/// Every consumer counter and the drops per cause.
#[unsafe(no_mangle)]
pub extern "C" fn tp_consumer_get_counters_all(
    consumer: *mut crate::consumer::tp_consumer,
    out: *mut tp_consumer_counters_all,
) -> tp_status {
    guard("tp_consumer_get_counters_all", || {
        let c = &crate::consumer::get(consumer)?.consumer;
        *handles::out(out, "out")? = consumer_all(c.counters(), &c.drops());
        Ok(())
    })
}

/// The snake_case name of a `tp_drop_cause` (`"unmapped"`, `"late"`, ...; `"unknown"` past
/// the causes). Static text.
#[unsafe(no_mangle)]
pub extern "C" fn tp_drop_cause_name(cause: u32) -> *const std::ffi::c_char {
    static NAMES: [&[u8]; TP_DROP_CAUSE_COUNT] = [
        b"unmapped\0",
        b"epoch_mismatch\0",
        b"seq_regressed\0",
        b"rate_limited\0",
        b"not_committed\0",
        b"late\0",
        b"stale\0",
        b"overwritten\0",
        b"header_bytes_length\0",
        b"embedded_block_length\0",
        b"embedded_template_id\0",
        b"embedded_schema_id\0",
        b"embedded_version\0",
        b"ndims_out_of_range\0",
        b"unknown_dtype\0",
        b"unknown_major_order\0",
        b"unknown_progress_unit\0",
        b"negative_dim\0",
        b"negative_stride\0",
        b"strides_overlap\0",
        b"strides_contradict_major_order\0",
        b"progress_stride_invalid\0",
        b"extent_exceeds_values_len\0",
        b"payload_offset_non_zero\0",
        b"payload_slot_mismatch\0",
        b"unknown_pool\0",
        b"values_len_exceeds_stride\0",
        b"malformed\0",
        b"region_dead\0",
        b"behind\0",
    ];
    NAMES
        .get(cause as usize)
        .copied()
        .unwrap_or(b"unknown\0")
        .as_ptr()
        .cast()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn drop_cause_constants_match_the_rust_causes() {
        assert_eq!(TP_DROP_CAUSE_COUNT, DropCause::COUNT);
        for i in 0..DropCause::COUNT {
            let cause = DropCause::from_index(i).expect("index in range");
            // SAFETY: static NUL-terminated text.
            let name = unsafe { CStr::from_ptr(tp_drop_cause_name(i as u32)) };
            assert_eq!(name.to_str().unwrap(), cause.name(), "cause {i}");
        }
        assert_eq!(
            tp_drop_cause::TP_DROP_UNMAPPED as usize,
            DropCause::Unmapped.index()
        );
        assert_eq!(
            tp_drop_cause::TP_DROP_BEHIND as usize,
            DropCause::Behind.index()
        );
        assert_eq!(
            tp_drop_cause::TP_DROP_BEHIND as usize,
            TP_DROP_CAUSE_COUNT - 1
        );
    }
}
