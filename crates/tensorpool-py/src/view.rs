//! NumPy arrays and DLPack tensors over slot memory, and how they are taken back.
//!
//! Every array over a slot has a [`SlotLease`] as its NumPy base object; views derived from
//! it (slices, reshapes, `.T`) have the array as their base, and DLPack tensors of a frame
//! hold a reference to the lease. So once the callback (or the claim) is over, a reference to
//! the array or the lease beyond the ones this module holds means something kept a view of
//! the slot: it is reported (`ViewEscapedWarning`); it cannot be revoked.
//!
//! The array handed out itself is revoked in place ([`revoke`]): its shape becomes all zeros
//! and its data pointer moves to a static empty buffer, so reading it yields nothing and
//! indexing it raises `IndexError`; it is also made read-only.

use std::ffi::{c_char, c_int, c_void};

use dlpark::ffi::{DLDataType, DLDevice, DLManagedTensor, DLManagedTensorVersioned};
use dlpark::python::{DlpackExporter, ExportRequest};
use dlpark::{DlpackFlags, Managed, ManagedTensorBase};
use numpy::npyffi::{self, PY_ARRAY_API, npy_intp};
use pyo3::exceptions::{PyBufferError, PyValueError};
use pyo3::prelude::*;
use tensorpool::frame::Dtype;

/// The base object of every NumPy array over a slot. Holds no memory: it marks which frame
/// (or claim) the array belongs to, and its reference count tells whether views escaped.
#[pyclass(module = "tensorpool", frozen)]
#[derive(Debug)]
pub struct SlotLease {
    pub(crate) seq: u64,
    pub(crate) what: &'static str,
}

#[pymethods]
impl SlotLease {
    fn __repr__(&self) -> String {
        format!("<tensorpool slot of {} seq {}>", self.what, self.seq)
    }
}

/// Where an array lives: address, bytes available there, layout.
pub(crate) struct Raw<'a> {
    pub ptr: *mut u8,
    pub len: usize,
    pub dtype: Dtype,
    pub shape: &'a [usize],
    /// Byte strides, one per dimension.
    pub strides: &'a [usize],
}

impl Raw<'_> {
    /// Checks that every element the layout reaches lies inside `ptr..ptr+len`.
    pub(crate) fn check(&self) -> PyResult<()> {
        let item = self.dtype.size_bytes();
        if self.shape.len() != self.strides.len() || self.shape.is_empty() {
            return Err(PyValueError::new_err(
                "slot layout: shape and strides differ",
            ));
        }
        if self.shape.contains(&0) {
            return Ok(());
        }
        let mut last = item;
        for (&d, &s) in self.shape.iter().zip(self.strides) {
            last = (d - 1)
                .checked_mul(s)
                .and_then(|x| x.checked_add(last))
                .ok_or_else(|| PyValueError::new_err("slot layout overflows"))?;
        }
        if last > self.len {
            return Err(PyValueError::new_err(format!(
                "slot layout reaches {last} bytes, the slot holds {}",
                self.len
            )));
        }
        Ok(())
    }
}

fn descr(py: Python<'_>, d: Dtype) -> *mut npyffi::PyArray_Descr {
    use numpy::PyArrayDescrMethods;
    let descr = match d {
        Dtype::Uint8 | Dtype::Bytes | Dtype::Bit => numpy::dtype::<u8>(py),
        Dtype::Int8 => numpy::dtype::<i8>(py),
        Dtype::Uint16 => numpy::dtype::<u16>(py),
        Dtype::Int16 => numpy::dtype::<i16>(py),
        Dtype::Uint32 => numpy::dtype::<u32>(py),
        Dtype::Int32 => numpy::dtype::<i32>(py),
        Dtype::Uint64 => numpy::dtype::<u64>(py),
        Dtype::Int64 => numpy::dtype::<i64>(py),
        Dtype::Float32 => numpy::dtype::<f32>(py),
        Dtype::Float64 => numpy::dtype::<f64>(py),
        Dtype::Boolean => numpy::dtype::<bool>(py),
    };
    descr.into_dtype_ptr()
}

/// A NumPy array over `raw` whose base object is `lease` (read-only unless `writable`).
pub(crate) fn array<'py>(
    py: Python<'py>,
    raw: &Raw<'_>,
    lease: &Bound<'py, SlotLease>,
    writable: bool,
) -> PyResult<Bound<'py, PyAny>> {
    raw.check()?;
    let mut dims: Vec<npy_intp> = raw.shape.iter().map(|&d| d as npy_intp).collect();
    let mut strides: Vec<npy_intp> = raw.strides.iter().map(|&s| s as npy_intp).collect();
    let flags = if writable {
        npyffi::NPY_ARRAY_WRITEABLE
    } else {
        0
    };
    // SAFETY: `descr` is a new reference that PyArray_NewFromDescr steals; dims and strides
    // hold `nd` entries and are copied by NumPy; `raw.check()` proved every element the
    // layout reaches lies inside the `raw.len` bytes at `raw.ptr`, which stay mapped while
    // the lease (the base set below) is live and the callback / claim runs. The new
    // reference is owned by the returned Bound.
    unsafe {
        let subtype = npyffi::get_type_object(py, npyffi::NpyTypes::PyArray_Type);
        let obj = PY_ARRAY_API.PyArray_NewFromDescr(
            py,
            subtype,
            descr(py, raw.dtype),
            dims.len() as c_int,
            dims.as_mut_ptr(),
            strides.as_mut_ptr(),
            raw.ptr.cast::<c_void>(),
            flags,
            std::ptr::null_mut(),
        );
        let arr = Bound::from_owned_ptr_or_err(py, obj)?;
        // SetBaseObject steals a reference to the lease.
        let base = lease.clone().into_any().into_ptr();
        if PY_ARRAY_API.PyArray_SetBaseObject(py, arr.as_ptr().cast(), base) < 0 {
            return Err(PyErr::fetch(py));
        }
        PY_ARRAY_API.PyArray_UpdateFlags(py, arr.as_ptr().cast(), npyffi::NPY_ARRAY_UPDATE_ALL);
        Ok(arr)
    }
}

/// Empty, aligned bytes revoked arrays point at (never read: their shape is all zeros).
#[repr(C, align(64))]
struct Empty([u8; 64]);
static EMPTY: Empty = Empty([0; 64]);

/// Revokes an array made by [`array`]: every dimension becomes 0, the data pointer moves to
/// a static empty buffer and the array becomes read-only.
pub(crate) fn revoke(py: Python<'_>, arr: &Bound<'_, PyAny>) {
    // SAFETY: `arr` is an array made by `array` (an exact ndarray: type checked below); with
    // the GIL held nothing else touches it now. Its `dimensions` has `nd` entries; setting
    // them to 0 makes it a zero-element array, for which any aligned data pointer is valid
    // (NumPy never dereferences it), and clearing WRITEABLE keeps the static buffer unwritten.
    unsafe {
        if npyffi::PyArray_Check(py, arr.as_ptr()) == 0 {
            return;
        }
        let a = arr.as_ptr().cast::<npyffi::PyArrayObject>();
        let f = &mut (*a).fields;
        for i in 0..f.nd.max(0) as usize {
            *f.dimensions.add(i) = 0;
        }
        f.data = EMPTY.0.as_ptr().cast::<c_char>().cast_mut();
        f.flags &= !npyffi::NPY_ARRAY_WRITEABLE;
        PY_ARRAY_API.PyArray_UpdateFlags(py, a, npyffi::NPY_ARRAY_UPDATE_ALL);
    }
}

/// References to `obj` beyond the `held` ones this module owns: the array handed out (or a
/// view of it, whose NumPy base is that array) or a DLPack tensor (whose context holds the
/// lease) kept past the callback or claim.
pub(crate) fn extra_refs(obj: &Bound<'_, PyAny>, held: isize) -> isize {
    // SAFETY: `obj` is a live object (the caller holds a reference); its count is read with
    // the GIL held.
    let n = unsafe { pyo3::ffi::Py_REFCNT(obj.as_ptr()) };
    (n - held).max(0)
}

/// What a DLPack export of a frame points at; its context holds the lease.
pub(crate) struct DlpackView {
    pub ptr: *mut u8,
    pub dtype: Dtype,
    pub shape: Vec<i64>,
    /// Strides in elements.
    pub strides: Vec<i64>,
    pub lease: Py<SlotLease>,
}

/// Keeps the lease referenced while a DLPack tensor lives (dropped by its deleter).
struct LeaseRef(#[allow(dead_code)] Py<SlotLease>);

fn dl_dtype(d: Dtype) -> DLDataType {
    match d {
        Dtype::Uint8 | Dtype::Bytes | Dtype::Bit => DLDataType::U8,
        Dtype::Int8 => DLDataType::I8,
        Dtype::Uint16 => DLDataType::U16,
        Dtype::Int16 => DLDataType::I16,
        Dtype::Uint32 => DLDataType::U32,
        Dtype::Int32 => DLDataType::I32,
        Dtype::Uint64 => DLDataType::U64,
        Dtype::Int64 => DLDataType::I64,
        Dtype::Float32 => DLDataType::F32,
        Dtype::Float64 => DLDataType::F64,
        Dtype::Boolean => DLDataType::BOOL,
    }
}

impl DlpackView {
    /// The element strides of byte `strides`, or a BufferError if one is not a multiple of
    /// the element size.
    pub(crate) fn element_strides(d: Dtype, strides: &[usize]) -> PyResult<Vec<i64>> {
        let item = d.size_bytes();
        strides
            .iter()
            .map(|&s| {
                if s % item != 0 {
                    Err(PyBufferError::new_err(format!(
                        "byte stride {s} is not a multiple of the {item}-byte element: no DLPack export"
                    )))
                } else {
                    Ok((s / item) as i64)
                }
            })
            .collect()
    }

    fn managed<M: ManagedTensorBase>(
        &self,
        py: Python<'_>,
        versioned: bool,
    ) -> PyResult<Managed<M>> {
        let n = self.shape.len();
        let err = |e: dlpark::allocation::Error| PyValueError::new_err(format!("DLPack: {e}"));
        let mut alloc =
            dlpark::allocation::dynamic::Allocation::<M>::allocate(2 * n).map_err(err)?;
        alloc.extra_mut()[..n].copy_from_slice(&self.shape);
        alloc.extra_mut()[n..].copy_from_slice(&self.strides);
        let ctx = Box::new(LeaseRef(self.lease.clone_ref(py)));
        let mut init = alloc.initialize(ctx, n).map_err(err)?;
        let extra = init.extra_mut().as_mut_ptr();
        init.tensor_mut().shape = extra;
        // SAFETY: `extra` has 2n entries (allocated above): the strides start at n.
        init.tensor_mut().strides = unsafe { extra.add(n) };
        init.set_data(self.ptr.cast::<c_void>())
            .set_device(DLDevice::CPU)
            .set_dtype(dl_dtype(self.dtype));
        if versioned {
            init.set_flags(DlpackFlags::READ_ONLY)
                .map_err(|e| PyValueError::new_err(format!("DLPack flags: {e}")))?;
        }
        // SAFETY: data points at the slot the layout was checked against (`Raw::check` in
        // `Frame.__dlpack__`, with the GIL held), shape/strides point into the tensor's own allocation,
        // the device is the CPU, READ_ONLY (versioned ABI) matches the read-only mapping;
        // the context keeps the lease referenced so an escape is detected.
        Ok(unsafe { init.finish() })
    }
}

impl DlpackExporter for DlpackView {
    fn device(&self) -> DLDevice {
        DLDevice::CPU
    }

    fn flags(&self) -> DlpackFlags {
        DlpackFlags::READ_ONLY
    }

    fn prepare_export(&self, _py: Python<'_>, _request: &ExportRequest<'_>) -> PyResult<()> {
        Ok(())
    }

    fn export_legacy(&self, py: Python<'_>) -> PyResult<Managed<DLManagedTensor>> {
        self.managed(py, false)
    }

    fn export_versioned(&self, py: Python<'_>) -> PyResult<Managed<DLManagedTensorVersioned>> {
        self.managed(py, true)
    }
}
