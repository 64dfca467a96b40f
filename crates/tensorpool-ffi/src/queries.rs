//! Role queries without a C function before issue 18, gathered in one struct per role:
//! `tp_producer_get_info` and `tp_consumer_get_info`.

use tensorpool_codec::wire::Mode;

use crate::error::{guard, tp_status};
use crate::handles;

/// What a producer reports about itself ([`tp_producer_get_info`]).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
#[allow(non_camel_case_types)]
pub struct tp_producer_info {
    /// Some consumer follows progress (so `tp_producer_claim_progress` publishes).
    pub progress_active: bool,
    /// The producer holds a lease from an SHM driver.
    pub is_driver_mode: bool,
    /// The producer has regions to write into (false while paused in driver mode, or closed).
    pub is_active: bool,
    /// Consumers tracked (heard from within the staleness window).
    pub consumer_count: u64,
    /// Consumers holding a registered per-consumer descriptor stream.
    pub per_consumer_descriptor_streams: u64,
}

/// What a consumer reports about itself ([`tp_consumer_get_info`]).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
#[allow(non_camel_case_types)]
pub struct tp_consumer_info {
    /// Times the mapping was lost (producer stopped or revoked, lease lost, driver gone,
    /// region dead) rather than replaced by a newer epoch.
    pub outages: u64,
    /// Descriptors come from a per-consumer stream.
    pub on_per_consumer_stream: bool,
    /// A per-consumer control (progress) stream is subscribed.
    pub on_per_consumer_control: bool,
    /// The delivery mode in force (a `tp_mode`): the configured one until a
    /// `ConsumerConfig` sets another (a supervisor forcing RATE_LIMITED).
    pub effective_mode: u32,
    /// Join time of the announce subscription (`CLOCK_MONOTONIC` ns; 0 before any image).
    pub join_time_ns: u64,
}

/// The producer's [`tp_producer_info`]. `TP_ERR_STATE` while a claim is open.
#[unsafe(no_mangle)]
pub extern "C" fn tp_producer_get_info(
    producer: *mut crate::producer::tp_producer,
    out: *mut tp_producer_info,
) -> tp_status {
    guard("tp_producer_get_info", || {
        let p = crate::producer::get(producer)?.producer()?;
        *handles::out(out, "out")? = tp_producer_info {
            progress_active: p.progress_active(),
            is_driver_mode: p.is_driver_mode(),
            is_active: p.is_active(),
            consumer_count: p.consumer_count() as u64,
            per_consumer_descriptor_streams: p.per_consumer_descriptor_streams() as u64,
        };
        Ok(())
    })
}

/// The consumer's [`tp_consumer_info`].
#[unsafe(no_mangle)]
pub extern "C" fn tp_consumer_get_info(
    consumer: *mut crate::consumer::tp_consumer,
    out: *mut tp_consumer_info,
) -> tp_status {
    guard("tp_consumer_get_info", || {
        let c = &crate::consumer::get(consumer)?.consumer;
        *handles::out(out, "out")? = tp_consumer_info {
            outages: c.outages(),
            on_per_consumer_stream: c.on_per_consumer_stream(),
            on_per_consumer_control: c.on_per_consumer_control(),
            effective_mode: match c.effective_mode() {
                Mode::RateLimited => 1,
                _ => 0,
            },
            join_time_ns: c.join_time_ns(),
        };
        Ok(())
    })
}

/// Why the last meta blob was discarded (`tp_consumer_last_blob_discard`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum tp_blob_discard {
    /// None was discarded.
    TP_BLOB_DISCARD_NONE = 0,
    /// A chunk started after the bytes received so far.
    TP_BLOB_DISCARD_GAP = 1,
    /// A chunk overlapped the bytes received, or ran past the total length.
    TP_BLOB_DISCARD_OVERLAP = 2,
    /// The CRC32C did not match.
    TP_BLOB_DISCARD_CHECKSUM = 3,
    /// Larger than `max_meta_blob_bytes`.
    TP_BLOB_DISCARD_TOO_LARGE = 4,
    /// Completed before every byte arrived.
    TP_BLOB_DISCARD_INCOMPLETE = 5,
    /// A cause this library does not name.
    TP_BLOB_DISCARD_OTHER = 6,
}

/// Why the consumer discarded its last meta blob (a `tp_blob_discard`, NONE if none).
#[unsafe(no_mangle)]
pub extern "C" fn tp_consumer_last_blob_discard(
    consumer: *mut crate::consumer::tp_consumer,
    out: *mut u32,
) -> tp_status {
    use tensorpool::consumer::BlobDiscard as B;
    guard("tp_consumer_last_blob_discard", || {
        let c = &crate::consumer::get(consumer)?.consumer;
        let code = match c.last_blob_discard() {
            None => tp_blob_discard::TP_BLOB_DISCARD_NONE,
            Some(B::Gap) => tp_blob_discard::TP_BLOB_DISCARD_GAP,
            Some(B::Overlap) => tp_blob_discard::TP_BLOB_DISCARD_OVERLAP,
            Some(B::Checksum) => tp_blob_discard::TP_BLOB_DISCARD_CHECKSUM,
            Some(B::TooLarge) => tp_blob_discard::TP_BLOB_DISCARD_TOO_LARGE,
            Some(B::Incomplete) => tp_blob_discard::TP_BLOB_DISCARD_INCOMPLETE,
            #[allow(unreachable_patterns)]
            Some(_) => tp_blob_discard::TP_BLOB_DISCARD_OTHER,
        };
        *handles::out(out, "out")? = code as u32;
        Ok(())
    })
}

/// The per-consumer descriptor stream assigned by the last `ConsumerConfig`: its channel is
/// copied into `buf` like `tp_context_aeron_dir` ("" if none) and its stream id into
/// `*stream_id` (0 if none; may be NULL).
#[unsafe(no_mangle)]
pub extern "C" fn tp_consumer_descriptor_assignment(
    consumer: *mut crate::consumer::tp_consumer,
    buf: *mut std::ffi::c_char,
    cap: usize,
    len: *mut usize,
    stream_id: *mut i32,
) -> tp_status {
    guard("tp_consumer_descriptor_assignment", || {
        let c = &crate::consumer::get(consumer)?.consumer;
        let a = c.descriptor_assignment();
        handles::write_opt(stream_id, a.map_or(0, |(_, id)| id));
        handles::copy_string(a.map_or("", |(ch, _)| ch), buf, cap, len)
    })
}
