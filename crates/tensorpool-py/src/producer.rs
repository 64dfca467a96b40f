//! `Producer` and `Claim`: claim a slot, write it through a writable NumPy array, commit.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use numpy::{PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use tensorpool::frame::{Dtype, TensorSpec};
use tensorpool::prelude::{Claim as TpClaim, Producer as TpProducer};
use tensorpool::producer::{ProducerConfig, RegionMode};
use tensorpool::streams::Streams;

use crate::context::{Context, driver_arg};
use crate::types::{self, opt_seconds};
use crate::view::{self, Raw, SlotLease};
use crate::{FrameExpired, TensorpoolError};

/// The open claim of a producer and the array handed out for it.
#[derive(Debug)]
struct Open {
    claim: TpClaim<'static>,
    array: Py<PyAny>,
    lease: Py<SlotLease>,
}

/// A producer: standalone (creates and announces its SHM files under ``base_dir``) or in
/// driver mode (``driver=True`` or a ``DriverEndpoints``: leases the SHM driver's files).
///
/// Write a frame with ``claim(shape, dtype)`` (a writable NumPy array over the slot, then
/// ``commit()``) or ``offer(array)`` (one copy). Call ``do_work()`` regularly (or
/// ``work_for(seconds)``): announces, QoS and consumer hellos happen there.
#[pyclass(module = "tensorpool", unsendable)]
#[derive(Debug)]
pub struct Producer {
    /// `Box::into_raw` of the producer; freed in `Drop` after the open claim.
    producer: *mut TpProducer,
    open: Option<Open>,
    /// The spec of the last claim / offer (reused when the next one has the same tensor).
    last_spec: Option<(Dtype, Vec<usize>, TensorSpec)>,
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.open = None; // aborts the open claim before its producer goes
        // SAFETY: made by `Box::into_raw` in `new`; the claim borrowing it is gone.
        drop(unsafe { Box::from_raw(self.producer) });
    }
}

impl Producer {
    /// The producer, when no claim is open.
    fn get(&mut self) -> PyResult<&mut TpProducer> {
        if self.open.is_some() {
            return Err(TensorpoolError::new_err(
                "a claim is open: commit() or abort() it first",
            ));
        }
        // SAFETY: the Box pointer made in `new`, freed only in `drop`; no claim borrows it
        // now and `&mut self` makes this the only access.
        Ok(unsafe { &mut *self.producer })
    }

    fn spec(&mut self, d: Dtype, shape: &[usize]) -> PyResult<TensorSpec> {
        if let Some((ld, ls, spec)) = &self.last_spec
            && *ld == d
            && ls == shape
        {
            return Ok(spec.clone());
        }
        let spec = types::spec(d, shape)?;
        self.last_spec = Some((d, shape.to_vec(), spec.clone()));
        Ok(spec)
    }

    /// Ends the open claim (commit or abort), revokes its array, warns about escaped views.
    fn finish(&mut self, py: Python<'_>, seq: u64, commit: bool) -> PyResult<Option<u64>> {
        if self.open.as_ref().is_none_or(|o| o.claim.seq() != seq) {
            return Err(FrameExpired::new_err(format!(
                "claim {seq} is already committed or aborted"
            )));
        }
        let Some(open) = self.open.take() else {
            return Ok(None);
        };
        let Open {
            claim,
            array,
            lease,
        } = open;
        view::revoke(py, array.bind(py));
        let seq = if commit {
            Some(claim.commit())
        } else {
            claim.abort();
            None
        };
        // Not checked for escaped views here (unlike a frame at the end of its callback):
        // `a = claim.array; a[:] = x; claim.commit()` legitimately still holds `a`, now
        // emptied, and a view of it cannot be told from it by reference counts.
        drop((array, lease));
        Ok(seq)
    }
}

#[pymethods]
impl Producer {
    /// Builds a producer for data source ``stream_id``.
    ///
    /// Standalone (``driver=None``): creates its files under ``base_dir`` (default
    /// /dev/shm/tensorpool) with ``header_nslots`` slots (a power of two, default 64) of
    /// ``stride_bytes`` each (a multiple of 64, default 1 MiB). Driver mode (``driver=True``
    /// or ``DriverEndpoints``): the SHM driver's files, which must lie in ``base_dir``.
    /// Durations are in seconds.
    #[new]
    #[pyo3(signature = (context, stream_id, *, base_dir=None, driver=None, producer_id=None,
        header_nslots=None, stride_bytes=None, pool_id=None, prefault=None,
        announce_period=None, aeron_timeout=None, channel=None, name=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        context: &Context,
        stream_id: u32,
        base_dir: Option<PathBuf>,
        driver: Option<&Bound<'_, PyAny>>,
        producer_id: Option<u32>,
        header_nslots: Option<u32>,
        stride_bytes: Option<u32>,
        pool_id: Option<u16>,
        prefault: Option<bool>,
        announce_period: Option<f64>,
        aeron_timeout: Option<f64>,
        channel: Option<String>,
        name: Option<String>,
    ) -> PyResult<Self> {
        let mut c = ProducerConfig::new(stream_id);
        if let Some(id) = producer_id {
            c.producer_id = id;
        }
        if let Some(dir) = base_dir {
            c.shm_base_dir = dir;
        }
        c.mode = match driver_arg(driver)? {
            Some(e) => RegionMode::Driver(e),
            None => RegionMode::Standalone,
        };
        if let Some(n) = header_nslots {
            c.header_nslots = n;
        }
        if let Some(s) = stride_bytes {
            c.pools[0].stride_bytes = s;
        }
        if let Some(p) = pool_id {
            c.pools[0].pool_id = p;
        }
        if let Some(p) = prefault {
            c.prefault = p;
        }
        if let Some(d) = opt_seconds("announce_period", announce_period)? {
            c.announce_period = d;
        }
        if let Some(d) = opt_seconds("aeron_timeout", aeron_timeout)? {
            c.aeron_timeout = d;
        }
        if let Some(ch) = channel {
            c.streams = Streams::on_channel(&ch);
        }
        if let Some(n) = name {
            c.name = n;
        }
        let builder = context.ctx.producer(stream_id).config(c);
        let producer = py
            .detach(|| builder.build())
            .map_err(|e| TensorpoolError::new_err(format!("producer: {e}")))?;
        Ok(Self {
            producer: Box::into_raw(Box::new(producer)),
            open: None,
            last_spec: None,
        })
    }

    /// Claims the next slot for a ``shape`` tensor of ``dtype`` (a name such as ``"u16"`` /
    /// ``"uint16"``, or a NumPy dtype). Returns a ``Claim`` whose ``.array`` is a writable
    /// NumPy array over the slot itself (holding whatever an earlier frame left): fill it,
    /// then ``commit()``. One claim at a time.
    #[pyo3(signature = (shape, dtype=None))]
    fn claim(
        slf: &Bound<'_, Self>,
        py: Python<'_>,
        shape: &Bound<'_, PyAny>,
        dtype: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Claim> {
        let d = match dtype {
            Some(d) => types::dtype(d)?,
            None => Dtype::Uint8,
        };
        let shape = types::shape(shape)?;
        let mut this = slf.borrow_mut();
        let spec = this.spec(d, &shape)?;
        let p = this.get()?;
        // SAFETY: the producer lives at a fixed heap address until `Drop`, which drops the
        // claim first; while the claim is stored, `get()` refuses every other access, so the
        // claim's `&mut` stays unique.
        let p: &'static mut TpProducer = unsafe { &mut *(p as *mut TpProducer) };
        let mut claim = p
            .claim(&spec)
            .map_err(|e| TensorpoolError::new_err(format!("claim: {e}")))?;
        let seq = claim.seq();
        let payload = claim.payload_mut();
        let (ptr, len) = (payload.as_mut_ptr(), payload.len());
        let item = d.size_bytes();
        let mut strides = vec![item; shape.len()];
        for i in (0..shape.len().saturating_sub(1)).rev() {
            strides[i] = strides[i + 1] * shape[i + 1].max(1);
        }
        let lease = Bound::new(py, SlotLease { seq, what: "claim" })?;
        let raw = Raw {
            ptr,
            len,
            dtype: d,
            shape: &shape,
            strides: &strides,
        };
        let array = view::array(py, &raw, &lease, true)?;
        this.open = Some(Open {
            claim,
            array: array.clone().unbind(),
            lease: lease.unbind(),
        });
        Ok(Claim {
            producer: slf.clone().unbind(),
            seq,
            array: Some(array.unbind()),
        })
    }

    /// Copies ``array`` (any NumPy array or array-like; its dtype and shape are the
    /// frame's) into the next slot and commits it. Returns the frame's sequence.
    fn offer(&mut self, py: Python<'_>, array: &Bound<'_, PyAny>) -> PyResult<u64> {
        let np = py.import("numpy")?;
        let arr = np.getattr("ascontiguousarray")?.call1((array,))?;
        let arr = arr.cast_into::<PyUntypedArray>().map_err(|_| {
            PyValueError::new_err(
                "offer: expected a NumPy array (or something numpy.asarray takes)",
            )
        })?;
        let d = types::dtype(&arr.dtype().into_any())?;
        let shape = arr.shape().to_vec();
        let spec = self.spec(d, &shape)?;
        let nbytes = arr.len() * d.size_bytes();
        // SAFETY: `arr` is C-contiguous (ascontiguousarray) with `len()` elements of
        // `size_bytes` each; it stays alive (and, the GIL held, unchanged) during the copy.
        let bytes = unsafe {
            let a = arr.as_array_ptr();
            std::slice::from_raw_parts((*a).fields.data.cast::<u8>(), nbytes)
        };
        self.get()?
            .offer(&spec, bytes)
            .map_err(|e| TensorpoolError::new_err(format!("offer: {e}")))
    }

    /// One duty cycle: announces, QoS, consumer hellos, driver keepalives. Returns the
    /// work done (0: idle).
    fn do_work(&mut self) -> PyResult<usize> {
        Ok(self.get()?.do_work(tensorpool::monotonic_ns()))
    }

    /// Runs duty cycles for ``seconds`` with the GIL released (lets consumers drain).
    fn work_for(&mut self, py: Python<'_>, seconds: f64) -> PyResult<()> {
        let d = types::seconds("seconds", seconds)?;
        let p = self.get()?;
        let end = Instant::now() + d;
        run_until(py, end, || {
            p.do_work(tensorpool::monotonic_ns());
            false
        })
    }

    /// Runs duty cycles (GIL released) until ``count`` consumers are known or ``timeout``
    /// seconds pass; returns whether they came.
    #[pyo3(signature = (count=1, timeout=10.0))]
    fn wait_for_consumers(&mut self, py: Python<'_>, count: usize, timeout: f64) -> PyResult<bool> {
        let d = types::seconds("timeout", timeout)?;
        let p = self.get()?;
        let end = Instant::now() + d;
        let mut ok = false;
        run_until(py, end, || {
            p.do_work(tensorpool::monotonic_ns());
            ok = p.consumer_count() >= count;
            ok
        })?;
        Ok(ok)
    }

    /// Every producer counter by name (``committed``, ``descriptors_sent``, ...).
    fn counters<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in self.get()?.counters().table() {
            d.set_item(k, v)?;
        }
        Ok(d)
    }

    /// Consumers currently known (from their hellos and QoS).
    #[getter]
    fn consumer_count(&mut self) -> PyResult<usize> {
        Ok(self.get()?.consumer_count())
    }

    /// The current epoch (``None`` when closed or paused).
    #[getter]
    fn epoch(&mut self) -> PyResult<Option<u64>> {
        Ok(self.get()?.epoch())
    }

    /// The sequence the next claim gets.
    #[getter]
    fn next_seq(&mut self) -> PyResult<u64> {
        Ok(self.get()?.next_seq())
    }

    /// Whether the producer writes into an SHM driver's files.
    #[getter]
    fn is_driver_mode(&mut self) -> PyResult<bool> {
        Ok(self.get()?.is_driver_mode())
    }

    /// Whether frames can be claimed now (driver mode: holding a lease).
    #[getter]
    fn is_active(&mut self) -> PyResult<bool> {
        Ok(self.get()?.is_active())
    }

    /// The directory of the current epoch's files (``None`` when closed or paused).
    #[getter]
    fn epoch_dir(&mut self) -> PyResult<Option<PathBuf>> {
        Ok(self.get()?.epoch_dir())
    }

    /// Stops producing: detaches from the driver (driver mode) or removes the files
    /// (standalone). An open claim is aborted.
    fn close(&mut self, py: Python<'_>) -> PyResult<()> {
        if let Some(seq) = self.open.as_ref().map(|o| o.claim.seq()) {
            self.finish(py, seq, false)?;
        }
        self.get()?.close();
        Ok(())
    }
}

/// Calls `step` with the GIL released until it returns true or `end`; checks for signals
/// (Ctrl-C) every 50 ms.
pub(crate) fn run_until(
    py: Python<'_>,
    end: Instant,
    mut step: impl FnMut() -> bool + Send,
) -> PyResult<()> {
    loop {
        let chunk_end = end.min(Instant::now() + Duration::from_millis(50));
        let done = py.detach(|| {
            loop {
                if step() {
                    return true;
                }
                if Instant::now() >= chunk_end {
                    return false;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        });
        if done || Instant::now() >= end {
            return Ok(());
        }
        py.check_signals()?;
    }
}

/// A claimed slot: ``.array`` is a writable NumPy array over the slot itself. Fill it, then
/// ``commit()`` (or ``abort()``). As a context manager it commits on a normal exit and
/// aborts on an exception. After commit/abort ``.array`` raises ``FrameExpired`` and the
/// array object handed out is emptied (shape all zeros, read-only).
#[pyclass(module = "tensorpool", unsendable)]
#[derive(Debug)]
pub struct Claim {
    producer: Py<Producer>,
    seq: u64,
    array: Option<Py<PyAny>>,
}

impl Claim {
    fn close(&mut self, py: Python<'_>, commit: bool) -> PyResult<()> {
        if self.array.take().is_none() {
            return Err(FrameExpired::new_err(format!(
                "claim {} is already committed or aborted",
                self.seq
            )));
        }
        self.producer.borrow_mut(py).finish(py, self.seq, commit)?;
        Ok(())
    }
}

#[pymethods]
impl Claim {
    /// The sequence the frame gets.
    #[getter]
    fn seq(&self) -> u64 {
        self.seq
    }

    /// The writable NumPy array over the slot (until commit/abort).
    #[getter]
    fn array(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match &self.array {
            Some(a) => Ok(a.clone_ref(py)),
            None => Err(FrameExpired::new_err(format!(
                "claim {} is committed or aborted: its array is gone",
                self.seq
            ))),
        }
    }

    /// Commits the frame (seqlock commit, then the descriptor). Returns its sequence.
    fn commit(&mut self, py: Python<'_>) -> PyResult<u64> {
        self.close(py, true)?;
        Ok(self.seq)
    }

    /// Abandons the frame (no descriptor; consumers never see it).
    fn abort(&mut self, py: Python<'_>) -> PyResult<()> {
        self.close(py, false)
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __exit__(
        &mut self,
        py: Python<'_>,
        exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        if self.array.is_some() {
            if exc_type.is_some_and(|t| !t.is_none()) {
                self.abort(py)?;
            } else {
                self.commit(py)?;
            }
        }
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!(
            "Claim(seq={}, {})",
            self.seq,
            if self.array.is_some() {
                "open"
            } else {
                "closed"
            }
        )
    }
}
