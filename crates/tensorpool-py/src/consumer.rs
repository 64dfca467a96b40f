//! `Consumer`, the in-place `Frame` a callback gets, the owned `FrameCopy` and the
//! `frames()` iterator.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use tensorpool::consumer::{ConsumerConfig, ConsumerState, DropCause, Mode};
use tensorpool::frame::{Dtype, Frame as TpFrame};
use tensorpool::prelude::Consumer as TpConsumer;
use tensorpool::streams::Streams;

use crate::context::{Context, driver_arg};
use crate::types::{self, opt_seconds};
use crate::view::{self, DlpackView, Raw, SlotLease};
use crate::{FrameExpired, FrameLate, TensorpoolError, ViewEscapedWarning};

/// A consumer of data source ``stream_id``: follows a standalone producer's announces
/// (default) or attaches through the SHM driver (``driver=True`` or ``DriverEndpoints``).
/// Mapped regions must lie in ``allowed_base_dir`` (default /dev/shm/tensorpool).
#[pyclass(module = "tensorpool", unsendable)]
#[derive(Debug)]
pub struct Consumer {
    consumer: TpConsumer,
}

/// What a frame says about itself, copied out of the validated header.
#[derive(Clone, Debug)]
struct Meta {
    seq: u64,
    epoch: u64,
    stream_id: u32,
    dtype: Dtype,
    shape: Vec<usize>,
    strides: Vec<usize>,
    timestamp_ns: u64,
    meta_version: u32,
}

impl Meta {
    fn of(f: &TpFrame<'_>) -> Self {
        Self {
            seq: f.seq(),
            epoch: f.epoch(),
            stream_id: f.stream_id(),
            dtype: f.dtype(),
            shape: f.shape().to_vec(),
            strides: f.strides().to_vec(),
            timestamp_ns: f.timestamp_ns(),
            meta_version: f.meta_version(),
        }
    }
}

/// An owned NumPy array of `bytes` laid out as `meta` says.
fn owned_array<'py>(py: Python<'py>, meta: &Meta, bytes: Vec<u8>) -> PyResult<Bound<'py, PyAny>> {
    let np = py.import("numpy")?;
    let buf = numpy::PyArray1::from_vec(py, bytes);
    let kwargs = PyDict::new(py);
    kwargs.set_item("shape", PyTuple::new(py, &meta.shape)?)?;
    kwargs.set_item("dtype", types::numpy_name(meta.dtype))?;
    kwargs.set_item("buffer", buf)?;
    kwargs.set_item("strides", PyTuple::new(py, &meta.strides)?)?;
    np.getattr("ndarray")?.call((), Some(&kwargs))
}

/// Copies the frame out (rechecked): `None` if it was overwritten while copied.
fn copy_out(f: &TpFrame<'_>) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; f.bytes().len()];
    f.copy_to(&mut buf).ok().map(|_| buf)
}

fn state_name(s: ConsumerState) -> &'static str {
    match s {
        ConsumerState::Unmapped => "unmapped",
        ConsumerState::Mapped { .. } => "mapped",
        ConsumerState::Fallback => "fallback",
    }
}

/// Runs the Python callback for each frame a duty cycle delivers.
struct Deliver {
    callback: Py<PyAny>,
    error: Option<PyErr>,
    skipped: u64,
}

impl Deliver {
    fn on_frame(&mut self, f: &TpFrame<'_>) {
        if self.error.is_some() {
            self.skipped += 1;
            return;
        }
        if let Err(e) = Python::attach(|py| self.call(py, f)) {
            self.error = Some(e);
        }
    }

    fn call(&self, py: Python<'_>, f: &TpFrame<'_>) -> PyResult<()> {
        let meta = Meta::of(f);
        let lease = Py::new(
            py,
            SlotLease {
                seq: meta.seq,
                what: "frame",
            },
        )?;
        let bytes = f.bytes();
        let frame = Py::new(
            py,
            Frame {
                // the address of the frame of this running handler; cleared by `expire`
                // before the handler returns
                frame: (f as *const TpFrame<'_>).cast::<TpFrame<'static>>(),
                ptr: bytes.as_ptr().cast_mut(),
                len: bytes.len(),
                meta,
                array: None,
                lease,
            },
        )?;
        let result = self.callback.call1(py, (frame.clone_ref(py),));
        let escaped = frame.borrow_mut(py).expire(py);
        result?;
        if escaped > 0 {
            let msg = std::ffi::CString::new(format!(
                "{escaped} reference(s) to frame {}'s array, a view of it or a DLPack tensor of \
                 it outlived the callback: Frame.array is emptied, but views and DLPack tensors \
                 still point into shared memory the producer rewrites; keep copies instead \
                 (frame.copy(), numpy.array(frame.array))",
                frame.borrow(py).meta.seq
            ))
            .unwrap_or_default();
            PyErr::warn(py, &py.get_type::<ViewEscapedWarning>(), &msg, 1)?;
        }
        Ok(())
    }
}

#[pymethods]
impl Consumer {
    /// Builds a consumer. ``mode``: ``"stream"`` (every frame) or ``"rate_limited"`` (at most
    /// ``max_rate_hz`` frames per second). Durations in seconds.
    #[new]
    #[pyo3(signature = (context, stream_id, *, allowed_base_dir=None, driver=None,
        consumer_id=None, mode="stream", max_rate_hz=0, channel=None, aeron_timeout=None,
        activity_timeout=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        context: &Context,
        stream_id: u32,
        allowed_base_dir: Option<PathBuf>,
        driver: Option<&Bound<'_, PyAny>>,
        consumer_id: Option<u32>,
        mode: &str,
        max_rate_hz: u32,
        channel: Option<String>,
        aeron_timeout: Option<f64>,
        activity_timeout: Option<f64>,
    ) -> PyResult<Self> {
        let mut c = ConsumerConfig::new(stream_id);
        if let Some(id) = consumer_id {
            c.consumer_id = id;
        }
        c.mode = match mode {
            "stream" => Mode::Stream,
            "rate_limited" | "rate-limited" => Mode::RateLimited { max_rate_hz },
            m => {
                return Err(PyValueError::new_err(format!(
                    "mode {m:?}: expected \"stream\" or \"rate_limited\""
                )));
            }
        };
        if let Some(dir) = allowed_base_dir {
            c.allowed_base_dirs = vec![dir];
        }
        c.driver = driver_arg(driver)?;
        if let Some(ch) = channel {
            c.streams = Streams::on_channel(&ch);
        }
        if let Some(d) = opt_seconds("aeron_timeout", aeron_timeout)? {
            c.aeron_timeout = d;
        }
        if let Some(d) = opt_seconds("activity_timeout", activity_timeout)? {
            c.activity_timeout = d;
        }
        let builder = context.ctx.consumer(stream_id).config(c);
        let consumer = py
            .detach(|| builder.build())
            .map_err(|e| TensorpoolError::new_err(format!("consumer: {e}")))?;
        Ok(Self { consumer })
    }

    /// One duty cycle (GIL released while it works): announces, control, up to ``limit``
    /// frames, each passed to ``callback(frame)`` as a ``Frame`` valid only during the
    /// call. Returns the work done (0: idle). If the callback raises, the exception
    /// propagates once the cycle ends and the cycle's later frames are not passed on.
    #[pyo3(signature = (callback, limit=16))]
    fn poll(&mut self, py: Python<'_>, callback: Py<PyAny>, limit: usize) -> PyResult<usize> {
        let mut d = Deliver {
            callback,
            error: None,
            skipped: 0,
        };
        let consumer = &mut self.consumer;
        let work = py
            .detach(|| consumer.poll(|f: &TpFrame<'_>| d.on_frame(f), limit))
            .map_err(|e| TensorpoolError::new_err(format!("poll: {e}")))?;
        match d.error {
            Some(e) => Err(e),
            None => Ok(work),
        }
    }

    /// Iterates over frames as owned copies (``FrameCopy``), waiting with the GIL released.
    /// Stops when no frame came for ``timeout`` seconds (``None``: never).
    #[pyo3(signature = (timeout=None))]
    fn frames(slf: &Bound<'_, Self>, timeout: Option<f64>) -> PyResult<FrameIter> {
        Ok(FrameIter {
            consumer: slf.clone().unbind(),
            timeout: opt_seconds("timeout", timeout)?,
        })
    }

    /// Waits (GIL released) up to ``timeout`` seconds for one frame; returns its copy or
    /// ``None``.
    #[pyo3(signature = (timeout=None))]
    fn next_frame(&mut self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<FrameCopy>> {
        let timeout = opt_seconds("timeout", timeout)?;
        self.next_copy(py, timeout)
    }

    /// Mapping state: ``"unmapped"``, ``"mapped"`` or ``"fallback"``.
    #[getter]
    fn state(&self) -> &'static str {
        state_name(self.consumer.state())
    }

    /// The mapped epoch (``None`` unless mapped).
    #[getter]
    fn epoch(&self) -> Option<u64> {
        match self.consumer.state() {
            ConsumerState::Mapped { epoch } => Some(epoch),
            _ => None,
        }
    }

    /// The last sequence seen in this epoch.
    #[getter]
    fn last_seq(&self) -> Option<u64> {
        self.consumer.last_seq()
    }

    /// Driver mode: the driver client's state (``"unattached"``, ``"attaching"``,
    /// ``"attached"``, ``"backoff"``, ``"detaching"``, ``"closed"``); ``None`` standalone.
    #[getter]
    fn driver_state(&self) -> Option<String> {
        self.consumer
            .driver_state()
            .map(|s| format!("{s:?}").to_lowercase())
    }

    /// Why announced regions could not be mapped (``None`` if nothing failed).
    #[getter]
    fn last_error(&self) -> Option<String> {
        self.consumer.last_error().map(str::to_owned)
    }

    /// Every consumer counter by name (``descriptors``, ``accepted``, ``maps``, ...).
    fn counters<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in self.consumer.counters().table() {
            d.set_item(k, v)?;
        }
        Ok(d)
    }

    /// Dropped descriptors by cause (``epoch_mismatch``, ``seq_regressed``, ...), their
    /// ``total``, ``drops_late`` (the causes QoS reports as late) and ``gap`` (frames never seen:
    /// the sum of sequence gaps, not part of ``total``).
    fn drops<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        let drops = self.consumer.drops();
        for c in (0..DropCause::COUNT).filter_map(DropCause::from_index) {
            d.set_item(c.name(), drops.get(c))?;
        }
        d.set_item("total", drops.total())?;
        d.set_item("drops_late", drops.late())?;
        d.set_item("gap", drops.gap)?;
        Ok(d)
    }
}

impl Consumer {
    fn next_copy(
        &mut self,
        py: Python<'_>,
        timeout: Option<Duration>,
    ) -> PyResult<Option<FrameCopy>> {
        let end = timeout.map(|t| Instant::now() + t);
        let mut got: Option<(Meta, Vec<u8>)> = None;
        let mut error = None;
        loop {
            let chunk = Instant::now() + Duration::from_millis(50);
            let chunk_end = end.map_or(chunk, |e| e.min(chunk));
            let consumer = &mut self.consumer;
            py.detach(|| {
                let mut idle = 0u32;
                while got.is_none() {
                    let r = consumer.poll(
                        |f: &TpFrame<'_>| {
                            if got.is_none()
                                && let Some(b) = copy_out(f)
                            {
                                got = Some((Meta::of(f), b));
                            }
                        },
                        1,
                    );
                    match r {
                        Ok(0) => {
                            idle += 1;
                            if Instant::now() >= chunk_end {
                                return;
                            }
                            if idle > 64 {
                                std::thread::sleep(Duration::from_micros(100));
                            } else {
                                std::hint::spin_loop();
                            }
                        }
                        Ok(_) => idle = 0,
                        Err(e) => {
                            error = Some(e.to_string());
                            return;
                        }
                    }
                }
            });
            if let Some(e) = error {
                return Err(TensorpoolError::new_err(format!("poll: {e}")));
            }
            if let Some((meta, bytes)) = got {
                let array = owned_array(py, &meta, bytes)?.unbind();
                return Ok(Some(FrameCopy { meta, array }));
            }
            if end.is_some_and(|e| Instant::now() >= e) {
                return Ok(None);
            }
            py.check_signals()?;
        }
    }
}

/// ``for frame in consumer.frames(timeout=...)``: owned copies, GIL released while waiting.
#[pyclass(module = "tensorpool", unsendable)]
#[derive(Debug)]
pub struct FrameIter {
    consumer: Py<Consumer>,
    timeout: Option<Duration>,
}

#[pymethods]
impl FrameIter {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<FrameCopy>> {
        self.consumer.borrow_mut(py).next_copy(py, self.timeout)
    }
}

/// A frame in shared memory, valid only during the callback it was passed to.
///
/// ``.array`` is a read-only NumPy array over the slot itself (zero copy). The producer may
/// overwrite the slot at any time: what you read is the committed frame only if
/// ``recheck()`` returns ``True`` *after* you read it. ``copy()`` copies and rechecks in
/// one call. After the callback returns, the frame is dead: ``.array``, ``recheck()``,
/// ``copy()`` and ``__dlpack__`` raise ``FrameExpired``, and the array object it handed out
/// is emptied in place (shape all zeros, data no longer in shared memory).
#[pyclass(module = "tensorpool", unsendable)]
#[derive(Debug)]
pub struct Frame {
    /// The running handler's frame; null once the callback returned.
    frame: *const TpFrame<'static>,
    ptr: *mut u8,
    len: usize,
    meta: Meta,
    array: Option<Py<PyAny>>,
    lease: Py<SlotLease>,
}

impl Frame {
    fn live(&self) -> PyResult<&TpFrame<'_>> {
        if self.frame.is_null() {
            return Err(FrameExpired::new_err(format!(
                "frame {} is only valid inside its callback (copy what you keep: frame.copy())",
                self.meta.seq
            )));
        }
        // SAFETY: non-null only while the handler that delivered this frame runs on this
        // thread (`expire` clears it before the handler returns; the class is unsendable),
        // so the Frame it points at is alive.
        Ok(unsafe { &*self.frame })
    }

    /// Marks the frame dead and revokes its array; returns the references to the array or
    /// lease that outlive the callback.
    fn expire(&mut self, py: Python<'_>) -> isize {
        self.frame = std::ptr::null();
        let mut extra = 0;
        let mut lease_held = 1; // `self.lease`
        if let Some(a) = self.array.take() {
            let a = a.into_bound(py);
            view::revoke(py, &a);
            extra += view::extra_refs(&a, 1); // `a`
            lease_held += 1; // the array's base
        }
        extra + view::extra_refs(self.lease.bind(py).as_any(), lease_held)
    }
}

#[pymethods]
impl Frame {
    /// The read-only NumPy array over the slot (created on first access).
    #[getter]
    fn array(&mut self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.live()?;
        if let Some(a) = &self.array {
            return Ok(a.clone_ref(py));
        }
        let raw = Raw {
            ptr: self.ptr,
            len: self.len,
            dtype: self.meta.dtype,
            shape: &self.meta.shape,
            strides: &self.meta.strides,
        };
        let a = view::array(py, &raw, self.lease.bind(py), false)?.unbind();
        self.array = Some(a.clone_ref(py));
        Ok(a)
    }

    /// ``True`` if the slot still holds this committed frame: everything read from
    /// ``.array`` before this call is the committed frame. ``False``: discard it.
    fn recheck(&self) -> PyResult<bool> {
        Ok(self.live()?.recheck().is_ok())
    }

    /// An owned NumPy copy of the frame, rechecked; raises ``FrameLate`` if the producer
    /// overwrote the slot meanwhile.
    fn copy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let f = self.live()?;
        match copy_out(f) {
            Some(b) => owned_array(py, &self.meta, b),
            None => Err(FrameLate::new_err(format!(
                "frame {} was overwritten while copied",
                self.meta.seq
            ))),
        }
    }

    /// Logical sequence number.
    #[getter]
    fn seq(&self) -> u64 {
        self.meta.seq
    }

    /// Epoch of the regions the frame lives in.
    #[getter]
    fn epoch(&self) -> u64 {
        self.meta.epoch
    }

    /// Data source (pool stream id).
    #[getter]
    fn stream_id(&self) -> u32 {
        self.meta.stream_id
    }

    /// Shape (a tuple of ints).
    #[getter]
    fn shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, &self.meta.shape)
    }

    /// Byte strides.
    #[getter]
    fn strides<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, &self.meta.strides)
    }

    /// The NumPy dtype (tensorpool ``bytes`` and ``bit`` are ``uint8``).
    #[getter]
    fn dtype<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        types::numpy_dtype(py, self.meta.dtype)
    }

    /// The tensorpool dtype name (``u8``, ``u16``, ``f32``, ``bool``, ``bytes``, ``bit``...).
    #[getter]
    fn dtype_name(&self) -> &'static str {
        self.meta.dtype.name()
    }

    /// Payload bytes.
    #[getter]
    fn nbytes(&self) -> usize {
        self.len
    }

    /// Capture time (the producer's ``CLOCK_MONOTONIC``, ns).
    #[getter]
    fn timestamp_ns(&self) -> u64 {
        self.meta.timestamp_ns
    }

    /// ``DataSourceMeta`` version the frame belongs to.
    #[getter]
    fn meta_version(&self) -> u32 {
        self.meta.meta_version
    }

    /// Whether the frame can still be used (inside its callback).
    #[getter]
    fn alive(&self) -> bool {
        !self.frame.is_null()
    }

    /// DLPack export of the slot (zero copy, read-only, CPU). Valid only inside the callback.
    #[pyo3(signature = (*, stream=None, max_version=None, dl_device=None, copy=None))]
    fn __dlpack__(
        &self,
        py: Python<'_>,
        stream: Option<&Bound<'_, PyAny>>,
        max_version: Option<(u32, u32)>,
        dl_device: Option<(u32, i32)>,
        copy: Option<bool>,
    ) -> PyResult<Py<PyAny>> {
        self.live()?;
        let raw = Raw {
            ptr: self.ptr,
            len: self.len,
            dtype: self.meta.dtype,
            shape: &self.meta.shape,
            strides: &self.meta.strides,
        };
        raw.check()?; // every element the export's layout reaches lies in the slot
        let v = DlpackView {
            ptr: self.ptr,
            dtype: self.meta.dtype,
            shape: self.meta.shape.iter().map(|&d| d as i64).collect(),
            strides: DlpackView::element_strides(self.meta.dtype, &self.meta.strides)?,
            lease: self.lease.clone_ref(py),
        };
        let request = dlpark::python::ExportRequest::parse(stream, max_version, dl_device, copy)?;
        dlpark::python::export_dlpack(&v, py, request)
    }

    /// ``(1, 0)``: the CPU.
    fn __dlpack_device__(&self) -> (u32, i32) {
        (1, 0)
    }

    fn __repr__(&self) -> String {
        format!(
            "Frame(seq={}, shape={:?}, dtype={}, {})",
            self.meta.seq,
            self.meta.shape,
            self.meta.dtype,
            if self.frame.is_null() {
                "expired"
            } else {
                "live"
            }
        )
    }
}

/// An owned copy of a frame (from ``Consumer.frames()`` / ``next_frame()``): ``.array`` is
/// an ordinary NumPy array the caller owns.
#[pyclass(module = "tensorpool", unsendable)]
#[derive(Debug)]
pub struct FrameCopy {
    meta: Meta,
    array: Py<PyAny>,
}

#[pymethods]
impl FrameCopy {
    /// The frame's data (an owned NumPy array).
    #[getter]
    fn array(&self, py: Python<'_>) -> Py<PyAny> {
        self.array.clone_ref(py)
    }

    /// Logical sequence number.
    #[getter]
    fn seq(&self) -> u64 {
        self.meta.seq
    }

    /// Epoch of the regions the frame came from.
    #[getter]
    fn epoch(&self) -> u64 {
        self.meta.epoch
    }

    /// Data source (pool stream id).
    #[getter]
    fn stream_id(&self) -> u32 {
        self.meta.stream_id
    }

    /// Shape (a tuple of ints).
    #[getter]
    fn shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, &self.meta.shape)
    }

    /// The NumPy dtype.
    #[getter]
    fn dtype<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        types::numpy_dtype(py, self.meta.dtype)
    }

    /// The tensorpool dtype name.
    #[getter]
    fn dtype_name(&self) -> &'static str {
        self.meta.dtype.name()
    }

    /// Capture time (the producer's ``CLOCK_MONOTONIC``, ns).
    #[getter]
    fn timestamp_ns(&self) -> u64 {
        self.meta.timestamp_ns
    }

    /// DLPack export of the copy (NumPy's).
    #[pyo3(signature = (**kwargs))]
    fn __dlpack__(
        &self,
        py: Python<'_>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        Ok(self
            .array
            .bind(py)
            .call_method("__dlpack__", (), kwargs)?
            .unbind())
    }

    fn __dlpack_device__(&self) -> (u32, i32) {
        (1, 0)
    }

    fn __repr__(&self) -> String {
        format!(
            "FrameCopy(seq={}, shape={:?}, dtype={})",
            self.meta.seq, self.meta.shape, self.meta.dtype
        )
    }
}
