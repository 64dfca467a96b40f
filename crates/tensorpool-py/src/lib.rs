//! The Python module `tensorpool` (pyo3 + maturin): a producer writes frames into the
//! shared-memory slots through writable NumPy arrays, a consumer reads them through read-only
//! NumPy arrays (and DLPack) that point straight into the mapped slot. docs/python.md has the
//! API and the view contract; `tensorpool.pyi` the types.
//!
//! Written against the public API of the `tensorpool` crate only. `unsafe` is confined to
//! [`view`] (NumPy arrays and DLPack tensors over raw slot memory) and to the two places
//! that hold a borrow across Python calls (an open claim, the frame of a running callback),
//! each with a `// SAFETY:` line.

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyRuntimeWarning};
use pyo3::prelude::*;

mod consumer;
mod context;
mod producer;
mod types;
mod view;

create_exception!(
    tensorpool,
    TensorpoolError,
    PyException,
    "Base class of the errors this module raises (building a role, Aeron, shared memory)."
);
create_exception!(
    tensorpool,
    FrameExpired,
    TensorpoolError,
    "A Frame (or a Claim) was used after its callback returned (after commit/abort)."
);
create_exception!(
    tensorpool,
    FrameLate,
    TensorpoolError,
    "The producer overwrote the slot while it was read: what was read must be discarded."
);
create_exception!(
    tensorpool,
    ViewEscapedWarning,
    PyRuntimeWarning,
    "A view of a slot (a slice of Frame.array, a DLPack tensor) outlived its callback."
);

/// CRC32C (Castagnoli) of a bytes-like object (bytes, bytearray, a contiguous NumPy array).
/// The checksum `tp produce` payloads carry.
#[pyfunction(name = "crc32c")]
fn crc32c_of(py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<u32> {
    let buf = pyo3::buffer::PyBuffer::<u8>::get(data).or_else(|_| {
        pyo3::buffer::PyBuffer::<u8>::get(
            &data.call_method0("view")?.call_method1("view", ("u1",))?,
        )
    })?;
    let bytes = buf.to_vec(py)?;
    Ok(::crc32c::crc32c(&bytes))
}

/// `CLOCK_MONOTONIC` in nanoseconds: the clock of frame timestamps.
#[pyfunction]
fn monotonic_ns() -> u64 {
    tensorpool::monotonic_ns()
}

/// Zero-copy tensor transport over shared memory and Aeron.
#[pymodule(name = "tensorpool")]
fn tensorpool_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("TensorpoolError", py.get_type::<TensorpoolError>())?;
    m.add("FrameExpired", py.get_type::<FrameExpired>())?;
    m.add("FrameLate", py.get_type::<FrameLate>())?;
    m.add("ViewEscapedWarning", py.get_type::<ViewEscapedWarning>())?;
    m.add_function(wrap_pyfunction!(crc32c_of, m)?)?;
    m.add_function(wrap_pyfunction!(monotonic_ns, m)?)?;
    m.add_class::<context::Context>()?;
    m.add_class::<context::DriverEndpoints>()?;
    m.add_class::<producer::Producer>()?;
    m.add_class::<producer::Claim>()?;
    m.add_class::<consumer::Consumer>()?;
    m.add_class::<consumer::Frame>()?;
    m.add_class::<consumer::FrameCopy>()?;
    m.add_class::<consumer::FrameIter>()?;
    m.add_class::<view::SlotLease>()?;
    Ok(())
}
