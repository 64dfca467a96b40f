//! `tp_consumer` and the frame view: `tp_consumer_poll` calls a C function for every
//! accepted frame with a [`tp_frame_view`] pointing into the mapped memory (zero copy);
//! [`tp_frame_recheck`] tells whether what was read is the committed frame.

use std::cell::Cell;
use std::ffi::{c_char, c_void};

use tensorpool::consumer::{BuildError, ConsumerConfig, ConsumerState, Mode};
use tensorpool::prelude::{Consumer, Frame};
use tensorpool::streams::Streams;

use crate::driver::{endpoints, tp_driver_endpoints, tp_driver_endpoints_init};
use crate::error::{FfiError, FfiResult, err, guard, tp_status, tp_status::*};
use crate::handles::{self, Kind};
use crate::spec::{TP_MAX_DIMS, dtype_code, order_code};

/// Delivery mode (Wire Spec §11). Options take it as `uint32_t`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum tp_mode {
    /// Every descriptor; late frames dropped.
    TP_MODE_STREAM = 0,
    /// At most `max_rate_hz` frames per second.
    TP_MODE_RATE_LIMITED = 1,
}

/// Where a consumer stands (Wire Spec §15.12).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum tp_consumer_state {
    /// Waiting for a usable announce (or lease).
    TP_CONSUMER_UNMAPPED = 0,
    /// Regions mapped for `epoch`.
    TP_CONSUMER_MAPPED = 1,
    /// Shared memory not used (ordered by the producer, or mapping failed with a fallback).
    TP_CONSUMER_FALLBACK = 2,
}

/// How a consumer is built. Fill with [`tp_consumer_options_init`], then change fields.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct tp_consumer_options {
    /// Data source (pool stream id), non-zero.
    pub stream_id: u32,
    /// Consumer id (0: random, the default).
    pub consumer_id: u32,
    /// A [`tp_mode`] (default `TP_MODE_STREAM`).
    pub mode: u32,
    /// Rate cap of `TP_MODE_RATE_LIMITED` (0: unlimited).
    pub max_rate_hz: u32,
    /// Directory announced regions must lie in (NULL: `/dev/shm/tensorpool`).
    pub allowed_base_dir: *const c_char,
    /// SHM layout version understood (default: `tp_layout_version`).
    pub expected_layout_version: u32,
    /// Attach through the SHM driver at `driver` (default false: follow announces).
    pub use_driver: bool,
    /// Aeron channel of every logical stream (NULL: `aeron:ipc?term-length=4m`).
    pub channel: *const c_char,
    /// Wait for the media driver to add a stream, ms (default 5000).
    pub aeron_timeout_ms: u64,
    /// A mapped region idle this long is dead, ms (default 3000).
    pub activity_timeout_ms: u64,
    /// Driver mode: where the SHM driver listens.
    pub driver: tp_driver_endpoints,
    /// Ask the producer for `FrameProgress` reports (default false); they reach the
    /// progress handler of `tp_consumer_poll_progress`.
    pub supports_progress: bool,
    /// Progress hint: smallest interval between reports, µs (0: no hint).
    pub progress_interval_us: u32,
    /// Progress hint: smallest byte delta (0: no hint).
    pub progress_bytes_delta: u32,
    /// Progress hint: smallest row/column delta (0: no hint).
    pub progress_major_delta_units: u32,
    /// Request a per-consumer descriptor stream on this channel (NULL: none).
    pub descriptor_channel: *const c_char,
    /// Its stream id (non-zero when `descriptor_channel` is set).
    pub descriptor_stream_id: i32,
    /// Request a per-consumer control stream (for `FrameProgress`) on this channel (NULL: none).
    pub control_channel: *const c_char,
    /// Its stream id (non-zero when `control_channel` is set).
    pub control_stream_id: i32,
}

/// Where a consumer stands.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
#[allow(non_camel_case_types)]
pub struct tp_consumer_status {
    /// A [`tp_consumer_state`].
    pub state: u32,
    /// The mapped epoch (0 unless mapped).
    pub epoch: u64,
    /// Last sequence seen in this epoch (valid when `has_last_seq`).
    pub last_seq: u64,
    /// Whether a sequence was seen in this epoch.
    pub has_last_seq: bool,
}

/// The most used consumer counters (all of them by name: [`tp_consumer_counter`]).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
#[allow(non_camel_case_types)]
pub struct tp_consumer_counters {
    /// Descriptors received for our stream.
    pub descriptors: u64,
    /// Frames delivered and still committed after the handler returned.
    pub accepted: u64,
    /// Descriptors dropped, every cause.
    pub drops_total: u64,
    /// Frames never seen (sum of sequence gaps).
    pub drops_gap: u64,
    /// Frames overwritten or unstable while read (`drops_late` of QoS).
    pub drops_late: u64,
    /// Successful mappings.
    pub maps: u64,
    /// Failed mappings.
    pub map_failures: u64,
    /// Remaps at an epoch change.
    pub remaps: u64,
}

/// A frame as the handler sees it. `data`/`len` point into the producer's shared memory
/// (zero copy): the bytes are trustworthy only once [`tp_frame_recheck`] returns `TP_OK`
/// **after** you read them. Valid only inside the handler call; pass the pointer the
/// handler received (not a copy) to `tp_frame_recheck` / `tp_frame_copy_to`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct tp_frame_view {
    /// Logical sequence number.
    pub seq: u64,
    /// Epoch of the regions the frame lives in.
    pub epoch: u64,
    /// Data source (pool stream id).
    pub stream_id: u32,
    /// A `tp_dtype`.
    pub dtype: u32,
    /// A `tp_major_order`.
    pub major_order: u32,
    /// Number of dimensions (1..=8).
    pub ndims: u32,
    /// Dimension sizes (the first `ndims`).
    pub shape: [usize; TP_MAX_DIMS],
    /// Byte strides per dimension, zero strides replaced by their inferred value.
    pub strides: [usize; TP_MAX_DIMS],
    /// The payload in shared memory.
    pub data: *const u8,
    /// Payload bytes.
    pub len: usize,
    /// Capture time (`SlotHeader.timestamp_ns`, producer's `CLOCK_MONOTONIC`).
    pub timestamp_ns: u64,
    /// `DataSourceMeta` version the frame belongs to.
    pub meta_version: u32,
    /// Private to the library.
    pub token: *const c_void,
}

/// Called once per accepted frame, on the polling thread. It must not unwind (no C++
/// exception or `longjmp` may leave it).
#[allow(non_camel_case_types)]
pub type tp_frame_handler = Option<extern "C" fn(frame: *const tp_frame_view, user: *mut c_void)>;

thread_local! {
    /// The view handed to the handler running on this thread, and its frame (NULL outside
    /// handlers). A view is recognised by its address: nothing behind a pointer the caller
    /// passes is read before it matches.
    pub(crate) static CURRENT: Cell<(*const tp_frame_view, *const c_void)> =
        const { Cell::new((std::ptr::null(), std::ptr::null())) };
}

/// A consumer. Opaque; free with [`tp_consumer_free`].
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct tp_consumer {
    pub(crate) consumer: Consumer,
}

pub(crate) fn get<'a>(c: *mut tp_consumer) -> FfiResult<&'a mut tp_consumer> {
    handles::get(c, Kind::Consumer, "consumer")
}

pub(crate) fn build_error(e: BuildError) -> FfiError {
    let code = match &e {
        BuildError::InvalidConfig { .. } => TP_ERR_CONFIG,
        BuildError::Path(_) => TP_ERR_SHM,
        BuildError::Aeron { .. } => TP_ERR_AERON,
    };
    FfiError::new(code, e.to_string())
}

/// Fills `opts` with the defaults for data source `stream_id`.
#[unsafe(no_mangle)]
pub extern "C" fn tp_consumer_options_init(
    opts: *mut tp_consumer_options,
    stream_id: u32,
) -> tp_status {
    guard("tp_consumer_options_init", || {
        let opts = handles::out(opts, "opts")?;
        let d = ConsumerConfig::new(stream_id);
        let mut driver = std::mem::MaybeUninit::<tp_driver_endpoints>::uninit();
        tp_driver_endpoints_init(driver.as_mut_ptr());
        *opts = tp_consumer_options {
            stream_id,
            consumer_id: 0,
            mode: tp_mode::TP_MODE_STREAM as u32,
            max_rate_hz: 0,
            allowed_base_dir: std::ptr::null(),
            expected_layout_version: d.expected_layout_version,
            use_driver: false,
            channel: std::ptr::null(),
            aeron_timeout_ms: d.aeron_timeout.as_millis() as u64,
            activity_timeout_ms: d.activity_timeout.as_millis() as u64,
            // SAFETY: `tp_driver_endpoints_init` wrote every field.
            driver: unsafe { driver.assume_init() },
            supports_progress: d.supports_progress,
            progress_interval_us: 0,
            progress_bytes_delta: 0,
            progress_major_delta_units: 0,
            descriptor_channel: std::ptr::null(),
            descriptor_stream_id: 0,
            control_channel: std::ptr::null(),
            control_stream_id: 0,
        };
        Ok(())
    })
}

fn config(o: &tp_consumer_options) -> FfiResult<ConsumerConfig> {
    let mut c = ConsumerConfig::new(o.stream_id);
    if o.consumer_id != 0 {
        c.consumer_id = o.consumer_id;
    }
    c.mode = match o.mode {
        0 => Mode::Stream,
        1 => Mode::RateLimited {
            max_rate_hz: o.max_rate_hz,
        },
        m => {
            return err(
                TP_ERR_INVALID_ARGUMENT,
                format!("mode {m} is not TP_MODE_STREAM (0) or TP_MODE_RATE_LIMITED (1)"),
            );
        }
    };
    if let Some(dir) = handles::opt_path(o.allowed_base_dir, "allowed_base_dir")? {
        c.allowed_base_dirs = vec![dir];
    }
    c.expected_layout_version = o.expected_layout_version;
    if o.use_driver {
        c.driver = Some(endpoints(&o.driver)?);
    }
    if let Some(ch) = handles::opt_string(o.channel, "channel")? {
        c.streams = Streams::on_channel(ch);
    }
    c.aeron_timeout = handles::ms_or(o.aeron_timeout_ms, c.aeron_timeout);
    c.activity_timeout = handles::ms_or(o.activity_timeout_ms, c.activity_timeout);
    crate::progress::apply_options(o, &mut c)?;
    Ok(c)
}

/// Builds a consumer: validates `opts`, resolves the allowed directory and adds the Aeron
/// streams. It maps the producer's regions from its first polls on.
#[unsafe(no_mangle)]
pub extern "C" fn tp_consumer_new(
    ctx: *mut crate::context::tp_context,
    opts: *const tp_consumer_options,
    out: *mut *mut tp_consumer,
) -> tp_status {
    guard("tp_consumer_new", || {
        let out = handles::out(out, "out")?;
        *out = std::ptr::null_mut();
        let c = crate::context::get(ctx)?;
        let cfg = config(handles::input(opts, "opts")?)?;
        let consumer = c
            .ctx
            .consumer(cfg.stream_id)
            .config(cfg)
            .build()
            .map_err(build_error)?;
        let handle = tp_consumer { consumer };
        *out = handles::register(handle, Kind::Consumer);
        Ok(())
    })
}

pub(crate) fn view_of(frame: &Frame<'_>) -> tp_frame_view {
    let mut shape = [0usize; TP_MAX_DIMS];
    let mut strides = [0usize; TP_MAX_DIMS];
    let (s, st) = (frame.shape(), frame.strides());
    shape[..s.len()].copy_from_slice(&s);
    strides[..st.len()].copy_from_slice(&st);
    let bytes = frame.bytes();
    tp_frame_view {
        seq: frame.seq(),
        epoch: frame.epoch(),
        stream_id: frame.stream_id(),
        dtype: dtype_code(frame.dtype()),
        major_order: order_code(frame.major_order()),
        ndims: s.len() as u32,
        shape,
        strides,
        data: bytes.as_ptr(),
        len: bytes.len(),
        timestamp_ns: frame.timestamp_ns(),
        meta_version: frame.meta_version(),
        token: (frame as *const Frame<'_>).cast::<c_void>(),
    }
}

/// The closure that hands each frame to a C handler as a [`tp_frame_view`] (recognised by
/// `tp_frame_recheck` / `tp_frame_copy_to` while the handler runs on this thread).
pub(crate) fn c_handler(
    handler: extern "C" fn(*const tp_frame_view, *mut c_void),
    user: *mut c_void,
) -> impl FnMut(&Frame<'_>) {
    move |frame: &Frame<'_>| {
        let view = view_of(frame);
        let outer = CURRENT.replace((&view, view.token));
        handler(&view, user);
        CURRENT.set(outer);
    }
}

/// One duty cycle: announces, control, up to `limit` descriptors (each accepted frame goes
/// to `handler` with `user`), metadata and timers. `work` (may be NULL) gets the work done
/// (0: idle; **not** the frame count: `tp_consumer_poll_frames` gives both). Allocates
/// nothing in steady state. `TP_ERR_MEDIA_DRIVER_LOST` once the media driver is lost.
#[unsafe(no_mangle)]
pub extern "C" fn tp_consumer_poll(
    consumer: *mut tp_consumer,
    handler: tp_frame_handler,
    user: *mut c_void,
    limit: usize,
    work: *mut usize,
) -> tp_status {
    guard("tp_consumer_poll", || {
        let c = get(consumer)?;
        let Some(handler) = handler else {
            return err(TP_ERR_NULL, "handler is NULL");
        };
        let n = c
            .consumer
            .poll(c_handler(handler, user), limit)
            .map_err(crate::signals::poll_error)?;
        handles::write_opt(work, n);
        Ok(())
    })
}

/// The frame of the view handed to the handler running on this thread.
pub(crate) fn frame_of<'a>(view: *const tp_frame_view) -> FfiResult<&'a Frame<'a>> {
    if view.is_null() {
        return err(TP_ERR_NULL, "frame is NULL");
    }
    let (current_view, frame) = CURRENT.get();
    if view != current_view {
        return err(
            TP_ERR_INVALID_HANDLE,
            "frame is not the view passed to the running handler (used outside its handler, \
             copied, or on another thread)",
        );
    }
    // SAFETY: `frame` is the address of the `Frame` whose handler is running on this
    // thread right now (set together with `current_view`), which outlives this call.
    Ok(unsafe { &*frame.cast::<Frame<'a>>() })
}

/// `TP_OK` if the slot still holds this committed frame: everything read from `data`
/// before this call is the committed frame. `TP_ERR_LATE` if it was overwritten (discard
/// what was read). Allocates nothing.
#[unsafe(no_mangle)]
pub extern "C" fn tp_frame_recheck(frame: *const tp_frame_view) -> tp_status {
    guard("tp_frame_recheck", || match frame_of(frame)?.recheck() {
        Ok(()) => Ok(()),
        Err(_) => err(
            TP_ERR_LATE,
            "frame overwritten while read (seqlock recheck failed)",
        ),
    })
}

/// Copies the payload into `out` (`cap` bytes) and rechecks; `written` (may be NULL) gets
/// the bytes copied. `TP_ERR_BUFFER_TOO_SMALL` (nothing copied) or `TP_ERR_LATE`.
#[unsafe(no_mangle)]
pub extern "C" fn tp_frame_copy_to(
    frame: *const tp_frame_view,
    out: *mut u8,
    cap: usize,
    written: *mut usize,
) -> tp_status {
    guard("tp_frame_copy_to", || {
        let f = frame_of(frame)?;
        let need = f.bytes().len();
        if cap < need {
            return err(
                TP_ERR_BUFFER_TOO_SMALL,
                format!("buffer of {cap} bytes cannot hold the {need}-byte payload"),
            );
        }
        if out.is_null() && need > 0 {
            return err(TP_ERR_NULL, "out is NULL");
        }
        let buf: &mut [u8] = if need == 0 {
            &mut []
        } else {
            // SAFETY: non-NULL and `cap >= need` writable bytes (C API contract).
            unsafe { std::slice::from_raw_parts_mut(out, need) }
        };
        match f.copy_to(buf) {
            Ok(n) => {
                handles::write_opt(written, n);
                Ok(())
            }
            Err(_) => err(
                TP_ERR_LATE,
                "frame overwritten while copied: discard the copy",
            ),
        }
    })
}

/// Where the consumer stands: state, mapped epoch, last sequence.
#[unsafe(no_mangle)]
pub extern "C" fn tp_consumer_get_status(
    consumer: *mut tp_consumer,
    out: *mut tp_consumer_status,
) -> tp_status {
    guard("tp_consumer_get_status", || {
        let c = &get(consumer)?.consumer;
        let (state, epoch) = match c.state() {
            ConsumerState::Unmapped => (tp_consumer_state::TP_CONSUMER_UNMAPPED, 0),
            ConsumerState::Mapped { epoch } => (tp_consumer_state::TP_CONSUMER_MAPPED, epoch),
            ConsumerState::Fallback => (tp_consumer_state::TP_CONSUMER_FALLBACK, 0),
        };
        *handles::out(out, "out")? = tp_consumer_status {
            state: state as u32,
            epoch,
            last_seq: c.last_seq().unwrap_or(0),
            has_last_seq: c.last_seq().is_some(),
        };
        Ok(())
    })
}

/// The most used counters.
#[unsafe(no_mangle)]
pub extern "C" fn tp_consumer_get_counters(
    consumer: *mut tp_consumer,
    out: *mut tp_consumer_counters,
) -> tp_status {
    guard("tp_consumer_get_counters", || {
        let c = &get(consumer)?.consumer;
        let (k, d) = (c.counters(), c.drops());
        *handles::out(out, "out")? = tp_consumer_counters {
            descriptors: k.descriptors,
            accepted: k.accepted,
            drops_total: d.total(),
            drops_gap: d.gap,
            drops_late: d.late(),
            maps: k.maps,
            map_failures: k.map_failures,
            remaps: k.remaps,
        };
        Ok(())
    })
}

/// Any consumer counter by its Rust name (`"accepted"`, `"announces"`, ...), or a drop
/// cause as `"drops.<cause>"` (`"drops.late"`, `"drops.epoch_mismatch"`, ...).
#[unsafe(no_mangle)]
pub extern "C" fn tp_consumer_counter(
    consumer: *mut tp_consumer,
    name: *const c_char,
    value: *mut u64,
) -> tp_status {
    guard("tp_consumer_counter", || {
        let c = &get(consumer)?.consumer;
        let name = handles::string(name, "name")?;
        let out = handles::out(value, "value")?;
        let found = match name.strip_prefix("drops.") {
            Some(cause) => (0..tensorpool::consumer::DropCause::COUNT)
                .filter_map(tensorpool::consumer::DropCause::from_index)
                .find(|d| d.name() == cause)
                .map(|d| c.drops().get(d)),
            None => c
                .counters()
                .table()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v),
        };
        match found {
            Some(v) => {
                *out = v;
                Ok(())
            }
            None => err(
                TP_ERR_INVALID_ARGUMENT,
                format!("no consumer counter `{name}`"),
            ),
        }
    })
}

/// Copies the last mapping diagnostic (why announced regions could not be mapped; "" if
/// none) into `buf`, like `tp_context_aeron_dir`.
#[unsafe(no_mangle)]
pub extern "C" fn tp_consumer_mapping_error(
    consumer: *mut tp_consumer,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> tp_status {
    guard("tp_consumer_mapping_error", || {
        let c = &get(consumer)?.consumer;
        handles::copy_string(c.last_error().unwrap_or(""), buf, cap, len)
    })
}

/// The last announce, region or mapping the consumer refused: its reason is copied into
/// `buf` like `tp_consumer_mapping_error` ("" if nothing was refused), its epoch into `*epoch`
/// and its wall-clock time (ns since the Unix epoch) into `*at_unix_ns` (both 0 if nothing
/// was refused; either pointer may be NULL).
#[unsafe(no_mangle)]
pub extern "C" fn tp_consumer_last_rejection(
    consumer: *mut tp_consumer,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
    epoch: *mut u64,
    at_unix_ns: *mut u64,
) -> tp_status {
    guard("tp_consumer_last_rejection", || {
        let c = &get(consumer)?.consumer;
        let r = c.last_rejection();
        handles::write_opt(epoch, r.map_or(0, |r| r.epoch));
        handles::write_opt(at_unix_ns, r.map_or(0, |r| r.at_unix_ns));
        handles::copy_string(r.map_or("", |r| r.reason.as_str()), buf, cap, len)
    })
}

/// Frees the consumer (detaching from the driver in driver mode). NULL is a no-op.
#[unsafe(no_mangle)]
pub extern "C" fn tp_consumer_free(consumer: *mut tp_consumer) -> tp_status {
    guard("tp_consumer_free", || {
        handles::free(consumer, Kind::Consumer, "consumer")
    })
}
