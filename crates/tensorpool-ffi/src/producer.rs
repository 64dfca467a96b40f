//! `tp_producer`: claim a slot, write the tensor in place, commit (zero copy); `do_work` for
//! announces, QoS and consumer hellos. One claim at a time, held inside the handle.

use std::ffi::c_char;
use std::path::PathBuf;

use tensorpool::prelude::{Claim, Producer};
use tensorpool::producer::{BuildError, ClaimError, ProducerConfig, RegionMode};
use tensorpool::streams::Streams;

use crate::driver::{endpoints, tp_driver_endpoints, tp_driver_endpoints_init};
use crate::error::{FfiError, FfiResult, err, guard, tp_status, tp_status::*};
use crate::handles::{self, Kind};

/// How a producer is built. Fill with [`tp_producer_options_init`], then change fields.
/// Strings may be NULL (the default); they are copied by [`tp_producer_new`].
#[repr(C)]
#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct tp_producer_options {
    /// Data source (pool stream id), non-zero.
    pub stream_id: u32,
    /// Producer id in announces and QoS (default 1).
    pub producer_id: u32,
    /// false (default): standalone, the producer creates its own files under
    /// `shm_base_dir`; true: attach to the SHM driver at `driver` and write into its files,
    /// which must lie in `shm_base_dir`.
    pub use_driver: bool,
    /// SHM base directory, absolute (NULL: `/dev/shm/tensorpool`).
    pub shm_base_dir: *const c_char,
    /// Standalone: header ring slots, a power of two (default 64).
    pub header_nslots: u32,
    /// Standalone: payload pool id (default 1).
    pub pool_id: u16,
    /// Standalone: bytes per payload slot, a non-zero multiple of 64 (default 1 MiB).
    pub stride_bytes: u32,
    /// Standalone: touch every page when creating the files (default true).
    pub prefault: bool,
    /// `ShmPoolAnnounce` period in ms (default 1000).
    pub announce_period_ms: u64,
    /// Wait for the media driver to add a stream, ms (default 5000).
    pub aeron_timeout_ms: u64,
    /// Aeron channel of every logical stream (NULL: `aeron:ipc?term-length=4m`).
    pub channel: *const c_char,
    /// `DataSourceAnnounce` name (NULL: empty).
    pub name: *const c_char,
    /// Driver mode: where the SHM driver listens, and the attach timeout.
    pub driver: tp_driver_endpoints,
    /// `DataSourceAnnounce` summary (NULL: empty).
    pub summary: *const c_char,
}

/// A claimed slot: write `len` bytes at `data` (the shared-memory slot itself), then
/// [`tp_producer_commit`] or [`tp_producer_abort`]. Valid until then.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct tp_claim {
    /// Sequence of the frame being written.
    pub seq: u64,
    /// The payload slot in shared memory (holds whatever an earlier frame left there).
    pub data: *mut u8,
    /// Bytes reserved (the spec's `len_bytes`).
    pub len: usize,
}

/// The most used producer counters (all of them by name: [`tp_producer_counter`]).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
#[allow(non_camel_case_types)]
pub struct tp_producer_counters {
    /// Frames committed.
    pub committed: u64,
    /// Claims aborted.
    pub aborted: u64,
    /// Frames no payload pool could hold.
    pub drops_no_pool: u64,
    /// Descriptors published on the shared stream.
    pub descriptors_sent: u64,
    /// Descriptors Aeron refused (the frame stays committed).
    pub descriptor_failures: u64,
    /// `ShmPoolAnnounce` messages published.
    pub announces_sent: u64,
    /// Epochs installed.
    pub epochs: u64,
    /// Pauses (driver mode: lease lost).
    pub pauses: u64,
    /// Consumers currently tracked.
    pub consumers: u64,
}

/// A producer and its open claim. The claim borrows the producer, which lives on the heap
/// at a fixed address until the handle is freed; while a claim is open, only the claim
/// functions touch the producer.
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct tp_producer {
    producer: *mut Producer,
    pub(crate) claim: Option<Claim<'static>>,
}

impl tp_producer {
    /// The producer, when no claim is open.
    pub(crate) fn producer(&mut self) -> FfiResult<&mut Producer> {
        if self.claim.is_some() {
            return err(TP_ERR_STATE, "a claim is open: commit or abort it first");
        }
        // SAFETY: `producer` is the Box pointer made in `tp_producer_new`, freed only in
        // `drop`; no claim borrows it now, and `&mut self` makes this the only access.
        Ok(unsafe { &mut *self.producer })
    }
}

impl tp_producer {
    /// The open claim (`TP_ERR_STATE` when none is open).
    pub(crate) fn open_claim(&mut self) -> FfiResult<&mut Claim<'static>> {
        self.claim
            .as_mut()
            .ok_or_else(|| FfiError::new(TP_ERR_STATE, "no claim is open"))
    }
}

impl Drop for tp_producer {
    fn drop(&mut self) {
        self.claim = None; // aborts an open claim before its producer goes
        // SAFETY: made by `Box::into_raw` in `tp_producer_new`; the claim borrowing it is gone.
        drop(unsafe { Box::from_raw(self.producer) });
    }
}

pub(crate) fn get<'a>(p: *mut tp_producer) -> FfiResult<&'a mut tp_producer> {
    handles::get(p, Kind::Producer, "producer")
}

fn build_error(e: BuildError) -> FfiError {
    let code = match &e {
        BuildError::InvalidConfig { .. } | BuildError::Pools(_) => TP_ERR_CONFIG,
        BuildError::Layout(_) | BuildError::Path(_) | BuildError::Region(_) => TP_ERR_SHM,
        BuildError::Io { .. } => TP_ERR_IO,
        BuildError::Attach(_) => TP_ERR_ATTACH,
        BuildError::NotStandalone => TP_ERR_STATE,
        BuildError::Aeron { .. } => TP_ERR_AERON,
    };
    FfiError::new(code, e.to_string())
}

pub(crate) fn claim_error(e: ClaimError) -> FfiError {
    let code = match e {
        ClaimError::NoRegions => TP_ERR_NO_REGIONS,
        ClaimError::NoPoolFits { .. } => TP_ERR_NO_POOL_FITS,
        ClaimError::InvalidSpec(_) => TP_ERR_INVALID_ARGUMENT,
        ClaimError::MediaDriverLost => TP_ERR_MEDIA_DRIVER_LOST,
        _ => TP_ERR_STATE,
    };
    FfiError::new(code, format!("claim: {e}"))
}

/// Fills `opts` with the defaults for data source `stream_id` (standalone).
#[unsafe(no_mangle)]
pub extern "C" fn tp_producer_options_init(
    opts: *mut tp_producer_options,
    stream_id: u32,
) -> tp_status {
    guard("tp_producer_options_init", || {
        let opts = handles::out(opts, "opts")?;
        let d = ProducerConfig::new(stream_id);
        let mut driver = std::mem::MaybeUninit::<tp_driver_endpoints>::uninit();
        tp_driver_endpoints_init(driver.as_mut_ptr());
        *opts = tp_producer_options {
            stream_id,
            producer_id: d.producer_id,
            use_driver: false,
            shm_base_dir: std::ptr::null(),
            header_nslots: d.header_nslots,
            pool_id: d.pools[0].pool_id,
            stride_bytes: d.pools[0].stride_bytes,
            prefault: d.prefault,
            announce_period_ms: d.announce_period.as_millis() as u64,
            aeron_timeout_ms: d.aeron_timeout.as_millis() as u64,
            channel: std::ptr::null(),
            name: std::ptr::null(),
            summary: std::ptr::null(),
            // SAFETY: `tp_driver_endpoints_init` wrote every field.
            driver: unsafe { driver.assume_init() },
        };
        Ok(())
    })
}

fn config(o: &tp_producer_options) -> FfiResult<ProducerConfig> {
    let mut c = ProducerConfig::new(o.stream_id);
    c.producer_id = o.producer_id;
    if let Some(dir) = handles::opt_path(o.shm_base_dir, "shm_base_dir")? {
        c.shm_base_dir = dir;
    }
    c.mode = if o.use_driver {
        RegionMode::Driver(endpoints(&o.driver)?)
    } else {
        RegionMode::Standalone
    };
    c.header_nslots = o.header_nslots;
    c.pools[0].pool_id = o.pool_id;
    c.pools[0].stride_bytes = o.stride_bytes;
    c.prefault = o.prefault;
    c.announce_period = handles::ms_or(o.announce_period_ms, c.announce_period);
    c.aeron_timeout = handles::ms_or(o.aeron_timeout_ms, c.aeron_timeout);
    if let Some(ch) = handles::opt_string(o.channel, "channel")? {
        c.streams = Streams::on_channel(ch);
    }
    if let Some(name) = handles::opt_string(o.name, "name")? {
        c.name = name.to_owned();
    }
    if let Some(summary) = handles::opt_string(o.summary, "summary")? {
        c.summary = summary.to_owned();
    }
    Ok(c)
}

/// Builds a producer: validates `opts`, creates (standalone) or leases (driver mode) the
/// regions and adds the Aeron streams. `TP_ERR_CONFIG`, `TP_ERR_SHM`, `TP_ERR_ATTACH` or
/// `TP_ERR_AERON` say what failed.
#[unsafe(no_mangle)]
pub extern "C" fn tp_producer_new(
    ctx: *mut crate::context::tp_context,
    opts: *const tp_producer_options,
    out: *mut *mut tp_producer,
) -> tp_status {
    guard("tp_producer_new", || {
        let out = handles::out(out, "out")?;
        *out = std::ptr::null_mut();
        let c = crate::context::get(ctx)?;
        let cfg = config(handles::input(opts, "opts")?)?;
        let producer = c
            .ctx
            .producer(cfg.stream_id)
            .config(cfg)
            .build()
            .map_err(build_error)?;
        let handle = tp_producer {
            producer: Box::into_raw(Box::new(producer)),
            claim: None,
        };
        *out = handles::register(handle, Kind::Producer);
        Ok(())
    })
}

/// Claims the next slot for a tensor of `spec`; `out` gets the sequence and the slot's
/// address and length. Write the payload there, then commit or abort. `TP_ERR_STATE` if a
/// claim is already open.
#[unsafe(no_mangle)]
pub extern "C" fn tp_producer_claim(
    producer: *mut tp_producer,
    spec: *const crate::spec::tp_tensor_spec,
    out: *mut tp_claim,
) -> tp_status {
    guard("tp_producer_claim", || {
        let h = get(producer)?;
        let spec = crate::spec::get(spec)?;
        let out = handles::out(out, "out")?;
        let p = h.producer()?;
        // SAFETY: the producer lives at a fixed heap address until the handle is dropped,
        // and `Drop` drops the claim first; while the claim is stored, `producer()` refuses
        // every other access, so the claim's `&mut` stays unique.
        let p: &'static mut Producer = unsafe { &mut *(p as *mut Producer) };
        let mut claim = p.claim(&spec.spec).map_err(claim_error)?;
        let seq = claim.seq();
        let payload = claim.payload_mut();
        *out = tp_claim {
            seq,
            data: payload.as_mut_ptr(),
            len: payload.len(),
        };
        h.claim = Some(claim);
        Ok(())
    })
}

/// Commits the open claim: seqlock commit, then the `FrameDescriptor`. `seq` (may be NULL)
/// gets the frame's sequence. `TP_ERR_STATE` if no claim is open.
#[unsafe(no_mangle)]
pub extern "C" fn tp_producer_commit(producer: *mut tp_producer, seq: *mut u64) -> tp_status {
    guard("tp_producer_commit", || {
        let h = get(producer)?;
        let Some(claim) = h.claim.take() else {
            return err(TP_ERR_STATE, "commit: no claim is open");
        };
        let s = claim.commit();
        handles::write_opt(seq, s);
        Ok(())
    })
}

/// Aborts the open claim (no descriptor is sent; the slot stays in progress). No claim
/// open is not an error.
#[unsafe(no_mangle)]
pub extern "C" fn tp_producer_abort(producer: *mut tp_producer) -> tp_status {
    guard("tp_producer_abort", || {
        let h = get(producer)?;
        if let Some(claim) = h.claim.take() {
            claim.abort();
        }
        Ok(())
    })
}

/// Copies `len` bytes at `data` into the next slot and commits them (claim + copy + commit).
#[unsafe(no_mangle)]
pub extern "C" fn tp_producer_offer(
    producer: *mut tp_producer,
    spec: *const crate::spec::tp_tensor_spec,
    data: *const u8,
    len: usize,
    seq: *mut u64,
) -> tp_status {
    guard("tp_producer_offer", || {
        let h = get(producer)?;
        let spec = crate::spec::get(spec)?;
        let bytes = handles::slice(data, len, "data")?;
        let s = h
            .producer()?
            .offer(&spec.spec, bytes)
            .map_err(claim_error)?;
        handles::write_opt(seq, s);
        Ok(())
    })
}

/// One duty cycle: announces, QoS, consumer hellos, driver keepalives. `now_ns` is
/// `CLOCK_MONOTONIC` (`tp_monotonic_ns`), 0 for "now". `work` (may be
/// NULL) gets the work done (0: idle). `TP_ERR_MEDIA_DRIVER_LOST` once the media driver is
/// lost (claims and offers fail with it too).
#[unsafe(no_mangle)]
pub extern "C" fn tp_producer_do_work(
    producer: *mut tp_producer,
    now_ns: u64,
    work: *mut usize,
) -> tp_status {
    guard("tp_producer_do_work", || {
        let p = get(producer)?.producer()?;
        let now = if now_ns == 0 {
            tensorpool::monotonic_ns()
        } else {
            now_ns
        };
        crate::signals::check_producer_driver(p)?;
        handles::write_opt(work, p.do_work(now));
        Ok(())
    })
}

/// The current epoch. `TP_ERR_NO_REGIONS` when closed or paused.
#[unsafe(no_mangle)]
pub extern "C" fn tp_producer_epoch(producer: *mut tp_producer, epoch: *mut u64) -> tp_status {
    guard("tp_producer_epoch", || {
        let p = get(producer)?.producer()?;
        let out = handles::out(epoch, "epoch")?;
        match p.epoch() {
            Some(e) => {
                *out = e;
                Ok(())
            }
            None => err(
                TP_ERR_NO_REGIONS,
                "the producer has no regions (closed or paused)",
            ),
        }
    })
}

/// The sequence the next claim gets.
#[unsafe(no_mangle)]
pub extern "C" fn tp_producer_next_seq(producer: *mut tp_producer, seq: *mut u64) -> tp_status {
    guard("tp_producer_next_seq", || {
        let p = get(producer)?.producer()?;
        *handles::out(seq, "seq")? = p.next_seq();
        Ok(())
    })
}

/// The most used counters and the number of consumers tracked.
#[unsafe(no_mangle)]
pub extern "C" fn tp_producer_get_counters(
    producer: *mut tp_producer,
    out: *mut tp_producer_counters,
) -> tp_status {
    guard("tp_producer_get_counters", || {
        let p = get(producer)?.producer()?;
        let c = p.counters();
        *handles::out(out, "out")? = tp_producer_counters {
            committed: c.committed,
            aborted: c.aborted,
            drops_no_pool: c.drops_no_pool,
            descriptors_sent: c.descriptors_sent,
            descriptor_failures: c.descriptor_failures,
            announces_sent: c.announces_sent,
            epochs: c.epochs,
            pauses: c.pauses,
            consumers: p.consumer_count() as u64,
        };
        Ok(())
    })
}

/// Any producer counter by its Rust name (`"committed"`, `"hellos"`, ...).
/// `TP_ERR_INVALID_ARGUMENT` for an unknown name.
#[unsafe(no_mangle)]
pub extern "C" fn tp_producer_counter(
    producer: *mut tp_producer,
    name: *const c_char,
    value: *mut u64,
) -> tp_status {
    guard("tp_producer_counter", || {
        let p = get(producer)?.producer()?;
        let name = handles::string(name, "name")?;
        let out = handles::out(value, "value")?;
        match p.counters().table().find(|(n, _)| *n == name) {
            Some((_, v)) => {
                *out = v;
                Ok(())
            }
            None => err(
                TP_ERR_INVALID_ARGUMENT,
                format!("no producer counter `{name}`"),
            ),
        }
    })
}

/// Standalone: moves to a new epoch (new files, seq from 0); `epoch` gets it.
#[unsafe(no_mangle)]
pub extern "C" fn tp_producer_bump_epoch(producer: *mut tp_producer, epoch: *mut u64) -> tp_status {
    guard("tp_producer_bump_epoch", || {
        let p = get(producer)?.producer()?;
        let e = p.bump_epoch().map_err(build_error)?;
        handles::write_opt(epoch, e);
        Ok(())
    })
}

/// Copies the current epoch's directory (standalone) into `buf`, like
/// `tp_context_aeron_dir`. `TP_ERR_STATE` in driver mode or when closed.
#[unsafe(no_mangle)]
pub extern "C" fn tp_producer_epoch_dir(
    producer: *mut tp_producer,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> tp_status {
    guard("tp_producer_epoch_dir", || {
        let p = get(producer)?.producer()?;
        let dir: PathBuf = match p.epoch_dir() {
            Some(d) => d,
            None => return err(TP_ERR_STATE, "no epoch directory (driver mode or closed)"),
        };
        handles::copy_string(&dir.to_string_lossy(), buf, cap, len)
    })
}

/// Closes cleanly (aborts an open claim, unmaps, removes a standalone epoch's files,
/// detaches from the driver). Idempotent; the handle stays valid until freed.
#[unsafe(no_mangle)]
pub extern "C" fn tp_producer_close(producer: *mut tp_producer) -> tp_status {
    guard("tp_producer_close", || {
        let h = get(producer)?;
        h.claim = None;
        h.producer()?.close();
        Ok(())
    })
}

/// Closes and frees the producer. NULL is a no-op.
#[unsafe(no_mangle)]
pub extern "C" fn tp_producer_free(producer: *mut tp_producer) -> tp_status {
    guard("tp_producer_free", || {
        handles::free(producer, Kind::Producer, "producer")
    })
}
