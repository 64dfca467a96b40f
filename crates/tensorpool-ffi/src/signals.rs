//! Signals and waiting (issue 18 items 2 and 4): consumer events
//! (`tp_consumer_next_event`), the media driver's loss (`TP_ERR_MEDIA_DRIVER_LOST`,
//! `tp_*_media_driver_lost`, `tp_context_connect_with` for the driver timeout), frame counts
//! (`tp_consumer_poll_frames`), blocking polls (`tp_consumer_poll_wait`) and
//! `tp_producer_wait_for_consumers`.

use std::ffi::{c_char, c_void};
use std::time::Duration;

use tensorpool::consumer::{ConsumerEvent, PollError, UnmapReason};
use tensorpool::prelude::{Context, Producer};
use tensorpool::producer::WaitError;
use tensorpool_aeron::{AeronClient, ClientConfig};

use crate::consumer::{c_handler, tp_consumer, tp_frame_handler};
use crate::error::{FfiError, FfiResult, err, guard, tp_status, tp_status::*};
use crate::handles::{self, Kind};
use crate::producer::tp_producer;

/// What a [`tp_consumer_event`] reports.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum tp_consumer_event_kind {
    /// Regions of `epoch` mapped (from unmapped or fallback).
    TP_EVENT_MAPPED = 1,
    /// The mapping of `epoch` dropped, nothing replaced it yet; `reason` says why.
    TP_EVENT_UNMAPPED = 2,
    /// A newer epoch (`epoch`) replaced the mapped one (`from_epoch`).
    TP_EVENT_EPOCH_CHANGED = 3,
    /// Frames now come through the payload fallback.
    TP_EVENT_FALLBACK_ACTIVE = 4,
    /// The fallback ended.
    TP_EVENT_FALLBACK_INACTIVE = 5,
    /// The media driver is lost (recorded once; polls return `TP_ERR_MEDIA_DRIVER_LOST`).
    TP_EVENT_MEDIA_DRIVER_LOST = 6,
}

/// Why a mapping was dropped (`reason` of `TP_EVENT_UNMAPPED`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum tp_unmap_reason {
    /// Not an unmap event.
    TP_UNMAP_NONE = 0,
    /// The producer's activity timestamp went stale.
    TP_UNMAP_STALE = 1,
    /// A superblock changed under the mapping.
    TP_UNMAP_SUPERBLOCK_CHANGED = 2,
    /// A region died (truncated, unlinked, its producer gone).
    TP_UNMAP_REGION_DEAD = 3,
    /// The producer or the SHM driver revoked the stream or lease.
    TP_UNMAP_REVOKED = 4,
    /// Anything else (left for a fallback, ...).
    TP_UNMAP_OTHER = 5,
}

/// A consumer state change (see `tp_consumer_next_event`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
#[allow(non_camel_case_types)]
pub struct tp_consumer_event {
    /// A [`tp_consumer_event_kind`].
    pub kind: u32,
    /// The epoch mapped (`MAPPED`, `EPOCH_CHANGED`: the new one) or unmapped (`UNMAPPED`); 0
    /// otherwise.
    pub epoch: u64,
    /// `EPOCH_CHANGED`: the epoch that was mapped; 0 otherwise.
    pub from_epoch: u64,
    /// `UNMAPPED`: a [`tp_unmap_reason`]; `TP_UNMAP_NONE` otherwise.
    pub reason: u32,
}

fn event(e: ConsumerEvent) -> tp_consumer_event {
    use tp_consumer_event_kind::*;
    let (kind, epoch, from_epoch, reason) = match e {
        ConsumerEvent::Mapped { epoch } => {
            (TP_EVENT_MAPPED, epoch, 0, tp_unmap_reason::TP_UNMAP_NONE)
        }
        ConsumerEvent::Unmapped { epoch, reason } => (
            TP_EVENT_UNMAPPED,
            epoch,
            0,
            match reason {
                UnmapReason::Stale => tp_unmap_reason::TP_UNMAP_STALE,
                UnmapReason::SuperblockChanged => tp_unmap_reason::TP_UNMAP_SUPERBLOCK_CHANGED,
                UnmapReason::RegionDead => tp_unmap_reason::TP_UNMAP_REGION_DEAD,
                UnmapReason::Revoked => tp_unmap_reason::TP_UNMAP_REVOKED,
                UnmapReason::Other => tp_unmap_reason::TP_UNMAP_OTHER,
            },
        ),
        ConsumerEvent::EpochChanged { from, to } => (
            TP_EVENT_EPOCH_CHANGED,
            to,
            from,
            tp_unmap_reason::TP_UNMAP_NONE,
        ),
        ConsumerEvent::FallbackActive => (
            TP_EVENT_FALLBACK_ACTIVE,
            0,
            0,
            tp_unmap_reason::TP_UNMAP_NONE,
        ),
        ConsumerEvent::FallbackInactive => (
            TP_EVENT_FALLBACK_INACTIVE,
            0,
            0,
            tp_unmap_reason::TP_UNMAP_NONE,
        ),
        ConsumerEvent::MediaDriverLost => (
            TP_EVENT_MEDIA_DRIVER_LOST,
            0,
            0,
            tp_unmap_reason::TP_UNMAP_NONE,
        ),
    };
    tp_consumer_event {
        kind: kind as u32,
        epoch,
        from_epoch,
        reason: reason as u32,
    }
}

/// A consumer poll's error as a status (static text: no allocation on the frame path).
pub(crate) fn poll_error(e: PollError) -> FfiError {
    match e {
        PollError::MediaDriverLost => FfiError::new(
            TP_ERR_MEDIA_DRIVER_LOST,
            "poll: the Aeron media driver is lost (no heartbeat within the driver timeout)",
        ),
        e => FfiError::new(TP_ERR_AERON, format!("poll: {e}")),
    }
}

/// `TP_ERR_MEDIA_DRIVER_LOST` once the producer's client has lost its driver.
pub(crate) fn check_producer_driver(p: &Producer) -> FfiResult {
    if p.media_driver_lost() {
        return err(
            TP_ERR_MEDIA_DRIVER_LOST,
            "the Aeron media driver is lost (no heartbeat within the driver timeout)",
        );
    }
    Ok(())
}

/// Connects like `tp_context_connect`, with the driver timeout: how long the media driver
/// may be silent before every producer and consumer of this context fails with
/// `TP_ERR_MEDIA_DRIVER_LOST` (`driver_timeout_ms` 0: Aeron's 10 s). `connect_timeout_ms`
/// 0: 10 s.
#[unsafe(no_mangle)]
pub extern "C" fn tp_context_connect_with(
    aeron_dir: *const c_char,
    connect_timeout_ms: u64,
    driver_timeout_ms: u64,
    out: *mut *mut crate::context::tp_context,
) -> tp_status {
    guard("tp_context_connect_with", || {
        let out = handles::out(out, "out")?;
        *out = std::ptr::null_mut();
        let dir = handles::string(aeron_dir, "aeron_dir")?;
        if dir.is_empty() {
            return err(TP_ERR_INVALID_ARGUMENT, "aeron_dir is empty");
        }
        let mut config = ClientConfig::new(dir)
            .connect_timeout(handles::ms_or(connect_timeout_ms, Duration::from_secs(10)));
        if driver_timeout_ms != 0 {
            config = config.driver_timeout(Duration::from_millis(driver_timeout_ms));
        }
        let client = AeronClient::connect_with(&config).map_err(|e| {
            crate::context::context_error(tensorpool::context::ContextError::Connect(e))
        })?;
        let ctx = Context::from_client(client);
        *out = handles::register(crate::context::tp_context { ctx }, Kind::Context);
        Ok(())
    })
}

/// The oldest consumer state change not yet read: `*got` is true and `*event` filled, or
/// `*got` false (nothing new). Every poll records events; at most 64 wait (older ones are
/// dropped, `tp_consumer_events_lost`). Allocates nothing.
#[unsafe(no_mangle)]
pub extern "C" fn tp_consumer_next_event(
    consumer: *mut tp_consumer,
    event_out: *mut tp_consumer_event,
    got: *mut bool,
) -> tp_status {
    guard("tp_consumer_next_event", || {
        let c = crate::consumer::get(consumer)?;
        let out = handles::out(event_out, "event")?;
        let got = handles::out(got, "got")?;
        match c.consumer.poll_event() {
            Some(e) => {
                *out = event(e);
                *got = true;
            }
            None => *got = false,
        }
        Ok(())
    })
}

/// Events dropped because 64 were waiting unread.
#[unsafe(no_mangle)]
pub extern "C" fn tp_consumer_events_lost(consumer: *mut tp_consumer, out: *mut u64) -> tp_status {
    guard("tp_consumer_events_lost", || {
        let c = crate::consumer::get(consumer)?;
        *handles::out(out, "out")? = c.consumer.events_lost();
        Ok(())
    })
}

/// Whether the consumer's Aeron client has lost its media driver.
#[unsafe(no_mangle)]
pub extern "C" fn tp_consumer_media_driver_lost(
    consumer: *mut tp_consumer,
    out: *mut bool,
) -> tp_status {
    guard("tp_consumer_media_driver_lost", || {
        let c = crate::consumer::get(consumer)?;
        *handles::out(out, "out")? = c.consumer.media_driver_lost();
        Ok(())
    })
}

/// `tp_consumer_poll` that says how many frames it handed to `handler` (`frames`) next to the
/// work done (`work`, what `tp_consumer_poll` gives); either may be NULL. Allocates nothing
/// in steady state.
#[unsafe(no_mangle)]
pub extern "C" fn tp_consumer_poll_frames(
    consumer: *mut tp_consumer,
    handler: tp_frame_handler,
    user: *mut c_void,
    limit: usize,
    frames: *mut usize,
    work: *mut usize,
) -> tp_status {
    guard("tp_consumer_poll_frames", || {
        let c = crate::consumer::get(consumer)?;
        let Some(handler) = handler else {
            return err(TP_ERR_NULL, "handler is NULL");
        };
        let p = c
            .consumer
            .poll_frames(&mut c_handler(handler, user), limit)
            .map_err(poll_error)?;
        handles::write_opt(frames, p.frames);
        handles::write_opt(work, p.work);
        Ok(())
    })
}

/// Polls until at least one frame reached `handler` or `timeout_ms` passed (0: one poll);
/// `frames` (may be NULL) gets the frames delivered, 0 on timeout (not an error). Between
/// idle polls it spins, yields, then sleeps at most 1 ms.
#[unsafe(no_mangle)]
pub extern "C" fn tp_consumer_poll_wait(
    consumer: *mut tp_consumer,
    handler: tp_frame_handler,
    user: *mut c_void,
    limit: usize,
    timeout_ms: u64,
    frames: *mut usize,
) -> tp_status {
    guard("tp_consumer_poll_wait", || {
        let c = crate::consumer::get(consumer)?;
        let Some(handler) = handler else {
            return err(TP_ERR_NULL, "handler is NULL");
        };
        let n = c
            .consumer
            .poll_wait(
                &mut c_handler(handler, user),
                limit,
                Duration::from_millis(timeout_ms),
            )
            .map_err(poll_error)?;
        handles::write_opt(frames, n);
        Ok(())
    })
}

/// Whether the producer's Aeron client has lost its media driver.
#[unsafe(no_mangle)]
pub extern "C" fn tp_producer_media_driver_lost(
    producer: *mut tp_producer,
    out: *mut bool,
) -> tp_status {
    guard("tp_producer_media_driver_lost", || {
        let p = crate::producer::get(producer)?.producer()?;
        *handles::out(out, "out")? = p.media_driver_lost();
        Ok(())
    })
}

/// Consumers that have mapped the producer's current epoch: consumers of this library on
/// the same media driver, counted from their mapped-epoch Aeron counters (docs/roles.md).
#[unsafe(no_mangle)]
pub extern "C" fn tp_producer_mapped_consumers(
    producer: *mut tp_producer,
    out: *mut usize,
) -> tp_status {
    guard("tp_producer_mapped_consumers", || {
        let p = crate::producer::get(producer)?.producer()?;
        *handles::out(out, "out")? = p.mapped_consumers();
        Ok(())
    })
}

/// Runs the producer's duty cycle until at least `n` consumers have mapped its current
/// epoch and the descriptor stream is connected, or `timeout_ms` passes; `mapped` (may be
/// NULL) gets the consumers mapped (also on timeout). `TP_ERR_TIMEOUT`, `TP_ERR_NO_REGIONS`,
/// `TP_ERR_MEDIA_DRIVER_LOST`; `TP_ERR_STATE` while a claim is open.
#[unsafe(no_mangle)]
pub extern "C" fn tp_producer_wait_for_consumers(
    producer: *mut tp_producer,
    n: usize,
    timeout_ms: u64,
    mapped: *mut usize,
) -> tp_status {
    guard("tp_producer_wait_for_consumers", || {
        let p = crate::producer::get(producer)?.producer()?;
        match p.wait_for_consumers(n, Duration::from_millis(timeout_ms)) {
            Ok(m) => {
                handles::write_opt(mapped, m);
                Ok(())
            }
            Err(e) => {
                let code = match e {
                    WaitError::Timeout { mapped: m, .. } => {
                        handles::write_opt(mapped, m);
                        TP_ERR_TIMEOUT
                    }
                    WaitError::NoRegions => TP_ERR_NO_REGIONS,
                    WaitError::MediaDriverLost => TP_ERR_MEDIA_DRIVER_LOST,
                };
                err(code, format!("wait for consumers: {e}"))
            }
        }
    })
}
