//! Frame progress from C (issue 18): the producer's claim-side calls (`progress`, capture
//! timestamp, trace id), the consumer's poll with a progress handler, and the frame fields the
//! view does not carry (trace id, publish timestamp). The consumer options' progress hints and
//! per-consumer stream requests are applied here too.

use std::ffi::c_void;

use tensorpool::consumer::{ConsumerConfig, FrameHandler, Progress, ProgressHints};
use tensorpool::prelude::Frame;
use tensorpool::streams::Endpoint;
use tensorpool_codec::wire::FrameProgressState;

use crate::consumer::{CURRENT, tp_consumer_options, tp_frame_handler, tp_frame_view};
use crate::error::{FfiError, FfiResult, err, guard, tp_status, tp_status::*};
use crate::handles;

/// The state of a `FrameProgress` report.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum tp_progress_state {
    /// A state this library does not know.
    TP_PROGRESS_UNKNOWN = 0,
    /// The producer claimed the slot.
    TP_PROGRESS_STARTED = 1,
    /// Part of the payload is written.
    TP_PROGRESS_PROGRESS = 2,
    /// The payload is written (not yet committed: wait for the frame itself).
    TP_PROGRESS_COMPLETE = 3,
}

/// A progress report on a frame still being written, as the progress handler sees it.
/// Valid only inside the handler call.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct tp_progress_view {
    /// Sequence of the frame.
    pub seq: u64,
    /// Epoch.
    pub epoch: u64,
    /// A `tp_progress_state`.
    pub state: u32,
    /// Payload bytes the producer reports written.
    pub bytes_filled: u64,
    /// The frame's payload length.
    pub values_len: u64,
    /// The readable prefix in shared memory (NULL when the report is informational only);
    /// racy: read it, then call [`tp_progress_recheck`].
    pub prefix: *const u8,
    /// Bytes at `prefix`.
    pub prefix_len: usize,
    /// Private to the library.
    pub token: *const c_void,
}

/// Called for each progress report on the polling thread. It must not unwind.
#[allow(non_camel_case_types)]
pub type tp_progress_handler =
    Option<extern "C" fn(progress: *const tp_progress_view, user: *mut c_void)>;

thread_local! {
    /// The progress view handed to the handler running on this thread, and its report.
    static CURRENT_PROGRESS: std::cell::Cell<(*const tp_progress_view, *const c_void)> =
        const { std::cell::Cell::new((std::ptr::null(), std::ptr::null())) };
}

/// Applies the progress hints and per-consumer stream requests of `o` to `c`.
pub(crate) fn apply_options(o: &tp_consumer_options, c: &mut ConsumerConfig) -> FfiResult {
    let hint = |v: u32| (v != 0).then_some(v);
    c.supports_progress = o.supports_progress;
    c.progress_hints = ProgressHints {
        interval_us: hint(o.progress_interval_us),
        bytes_delta: hint(o.progress_bytes_delta),
        major_delta_units: hint(o.progress_major_delta_units),
    };
    c.descriptor_request = endpoint(
        o.descriptor_channel,
        o.descriptor_stream_id,
        "descriptor_channel",
    )?;
    c.control_request = endpoint(o.control_channel, o.control_stream_id, "control_channel")?;
    Ok(())
}

fn endpoint(
    channel: *const std::ffi::c_char,
    stream_id: i32,
    what: &str,
) -> FfiResult<Option<Endpoint>> {
    match handles::opt_string(channel, what)? {
        None => Ok(None),
        Some(ch) => Ok(Some(Endpoint::new(ch, stream_id))),
    }
}

struct Handlers {
    frame: extern "C" fn(*const tp_frame_view, *mut c_void),
    progress: Option<extern "C" fn(*const tp_progress_view, *mut c_void)>,
    user: *mut c_void,
}

impl FrameHandler for Handlers {
    fn on_frame(&mut self, frame: &Frame<'_>) {
        let view = crate::consumer::view_of(frame);
        let outer = CURRENT.replace((&view, view.token));
        (self.frame)(&view, self.user);
        CURRENT.set(outer);
    }

    fn on_progress(&mut self, p: &Progress<'_>) {
        let Some(handler) = self.progress else {
            return;
        };
        let prefix = p.prefix();
        let view = tp_progress_view {
            seq: p.seq(),
            epoch: p.epoch(),
            state: match p.state() {
                FrameProgressState::Started => tp_progress_state::TP_PROGRESS_STARTED,
                FrameProgressState::Progress => tp_progress_state::TP_PROGRESS_PROGRESS,
                FrameProgressState::Complete => tp_progress_state::TP_PROGRESS_COMPLETE,
                _ => tp_progress_state::TP_PROGRESS_UNKNOWN,
            } as u32,
            bytes_filled: p.bytes_filled(),
            values_len: p.values_len(),
            prefix: prefix.map_or(std::ptr::null(), <[u8]>::as_ptr),
            prefix_len: prefix.map_or(0, <[u8]>::len),
            token: (p as *const Progress<'_>).cast::<c_void>(),
        };
        let outer = CURRENT_PROGRESS.replace((&view, view.token));
        handler(&view, self.user);
        CURRENT_PROGRESS.set(outer);
    }
}

/// `tp_consumer_poll` with a progress handler as well: `on_progress` (may be NULL) gets every
/// `FrameProgress` report of a frame still being written (ask for them with
/// `tp_consumer_options.supports_progress`), `on_frame` every accepted frame. Both get `user`.
#[unsafe(no_mangle)]
pub extern "C" fn tp_consumer_poll_progress(
    consumer: *mut crate::consumer::tp_consumer,
    on_frame: tp_frame_handler,
    on_progress: tp_progress_handler,
    user: *mut c_void,
    limit: usize,
    work: *mut usize,
) -> tp_status {
    guard("tp_consumer_poll_progress", || {
        let c = crate::consumer::get(consumer)?;
        let Some(frame) = on_frame else {
            return err(TP_ERR_NULL, "on_frame is NULL");
        };
        let mut h = Handlers {
            frame,
            progress: on_progress,
            user,
        };
        let n = c
            .consumer
            .poll_handler(&mut h, limit)
            .map_err(|e| FfiError::new(TP_ERR_AERON, format!("poll: {e}")))?;
        handles::write_opt(work, n);
        Ok(())
    })
}

/// `TP_OK` while the slot still belongs to the reported frame (what was read from `prefix`
/// before this call is that frame's), `TP_ERR_LATE` otherwise. Only with the view pointer the
/// running progress handler received (`TP_ERR_INVALID_HANDLE` for any other).
#[unsafe(no_mangle)]
pub extern "C" fn tp_progress_recheck(progress: *const tp_progress_view) -> tp_status {
    guard("tp_progress_recheck", || {
        if progress.is_null() {
            return err(TP_ERR_NULL, "progress is NULL");
        }
        let (view, token) = CURRENT_PROGRESS.get();
        if view != progress {
            return err(
                TP_ERR_INVALID_HANDLE,
                "progress is not the view passed to the running progress handler",
            );
        }
        // SAFETY: `token` is the address of the `Progress` whose handler is running on this
        // thread right now (set together with `view`), which outlives this call.
        let p = unsafe { &*token.cast::<Progress<'_>>() };
        match p.recheck() {
            Ok(()) => Ok(()),
            Err(_) => err(TP_ERR_LATE, "the slot moved on to another frame"),
        }
    })
}

/// The frame's TraceLink trace id (0: none). Only with the view the running handler received.
#[unsafe(no_mangle)]
pub extern "C" fn tp_frame_trace_id(frame: *const tp_frame_view, trace_id: *mut u64) -> tp_status {
    guard("tp_frame_trace_id", || {
        let f = crate::consumer::frame_of(frame)?;
        *handles::out(trace_id, "trace_id")? = f.trace_id().unwrap_or(0);
        Ok(())
    })
}

/// The descriptor's publish timestamp (`CLOCK_MONOTONIC` ns at commit; 0: not sent).
#[unsafe(no_mangle)]
pub extern "C" fn tp_frame_publish_timestamp_ns(
    frame: *const tp_frame_view,
    ts: *mut u64,
) -> tp_status {
    guard("tp_frame_publish_timestamp_ns", || {
        let f = crate::consumer::frame_of(frame)?;
        *handles::out(ts, "ts")? = f.publish_timestamp_ns().unwrap_or(0);
        Ok(())
    })
}

/// Reports that the first `bytes_filled` bytes of the open claim are written: sends
/// `FrameProgress` when some consumer asked for it and the throttle allows; `sent` (may be
/// NULL) tells whether a message went out. `TP_ERR_STATE` when no claim is open.
#[unsafe(no_mangle)]
pub extern "C" fn tp_producer_claim_progress(
    producer: *mut crate::producer::tp_producer,
    bytes_filled: usize,
    sent: *mut bool,
) -> tp_status {
    guard("tp_producer_claim_progress", || {
        let c = crate::producer::get(producer)?.open_claim()?;
        handles::write_opt(sent, c.progress(bytes_filled));
        Ok(())
    })
}

/// Overrides the open claim's capture timestamp (`SlotHeader.timestamp_ns`, default the claim
/// time on `CLOCK_MONOTONIC`). `TP_ERR_STATE` when no claim is open.
#[unsafe(no_mangle)]
pub extern "C" fn tp_producer_claim_set_timestamp_ns(
    producer: *mut crate::producer::tp_producer,
    timestamp_ns: u64,
) -> tp_status {
    guard("tp_producer_claim_set_timestamp_ns", || {
        crate::producer::get(producer)?
            .open_claim()?
            .set_timestamp_ns(timestamp_ns);
        Ok(())
    })
}

/// Sets the TraceLink trace id the open claim's `FrameDescriptor` carries (0: none).
#[unsafe(no_mangle)]
pub extern "C" fn tp_producer_claim_set_trace_id(
    producer: *mut crate::producer::tp_producer,
    trace_id: u64,
) -> tp_status {
    guard("tp_producer_claim_set_trace_id", || {
        crate::producer::get(producer)?
            .open_claim()?
            .set_trace_id(Some(trace_id));
        Ok(())
    })
}

/// The unit a tensor declares its progress in (`tp_tensor_spec_set_progress_unit`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum tp_progress_unit {
    /// Rows (dimension 0): consumers get whole-row prefixes of a row-major tensor.
    TP_PROGRESS_UNIT_ROWS = 1,
    /// Columns (dimension 1): whole-column prefixes of a column-major tensor.
    TP_PROGRESS_UNIT_COLUMNS = 2,
}

/// Declares the unit `FrameProgress` reports of this tensor use (a `tp_progress_unit`), so
/// progress handlers get layout-safe prefixes. `TP_ERR_INVALID_ARGUMENT` for another value or
/// a tensor the unit does not fit.
#[unsafe(no_mangle)]
pub extern "C" fn tp_tensor_spec_set_progress_unit(
    spec: *mut crate::spec::tp_tensor_spec,
    unit: u32,
) -> tp_status {
    guard("tp_tensor_spec_set_progress_unit", || {
        let s = handles::get(spec, handles::Kind::Spec, "spec")?;
        let next = match unit {
            1 => s.spec.clone().progress_rows(),
            2 => s.spec.clone().progress_columns(),
            u => {
                return err(
                    TP_ERR_INVALID_ARGUMENT,
                    format!("unit {u} is not a tp_progress_unit"),
                );
            }
        }
        .map_err(|e| FfiError::new(TP_ERR_INVALID_ARGUMENT, e.to_string()))?;
        s.spec = next;
        Ok(())
    })
}

/// `tp_producer_claim` with an explicit payload length `len` (at least the tensor's extent,
/// at most the pool's stride): the claim's `len` bytes are reserved and described.
#[unsafe(no_mangle)]
pub extern "C" fn tp_producer_claim_len(
    producer: *mut crate::producer::tp_producer,
    spec: *const crate::spec::tp_tensor_spec,
    len: usize,
    out: *mut crate::producer::tp_claim,
) -> tp_status {
    guard("tp_producer_claim_len", || {
        let h = crate::producer::get(producer)?;
        let spec = crate::spec::get(spec)?;
        let out = handles::out(out, "out")?;
        let p = h.producer()?;
        // SAFETY: as in `tp_producer_claim`: the producer lives at a fixed heap address until
        // the handle is dropped, whose `Drop` drops the claim first; while the claim is stored,
        // `producer()` refuses every other access, so the claim's `&mut` stays unique.
        let p: &'static mut tensorpool::prelude::Producer =
            unsafe { &mut *(p as *mut tensorpool::prelude::Producer) };
        let mut claim = p
            .claim_len(&spec.spec, len)
            .map_err(crate::producer::claim_error)?;
        let seq = claim.seq();
        let payload = claim.payload_mut();
        *out = crate::producer::tp_claim {
            seq,
            data: payload.as_mut_ptr(),
            len: payload.len(),
        };
        h.claim = Some(claim);
        Ok(())
    })
}
