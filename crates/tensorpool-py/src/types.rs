//! Python values to tensorpool types: dtypes (strings, NumPy dtypes and scalar types),
//! shapes, durations; every refusal is a `ValueError`/`TypeError` naming what was wrong.

use std::str::FromStr;
use std::time::Duration;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyString;
use tensorpool::frame::{Dtype, TensorSpec};

const DTYPES: &str = "u8/uint8, i8/int8, u16/uint16, i16/int16, u32/uint32, i32/int32, \
                      u64/uint64, i64/int64, f32/float32, f64/float64, bool, bytes, bit";

/// The tensorpool dtype of a NumPy dtype name (`uint16`, `float32`, `bool`, ...).
fn from_numpy_name(name: &str) -> Option<Dtype> {
    Some(match name {
        "uint8" => Dtype::Uint8,
        "int8" => Dtype::Int8,
        "uint16" => Dtype::Uint16,
        "int16" => Dtype::Int16,
        "uint32" => Dtype::Uint32,
        "int32" => Dtype::Int32,
        "uint64" => Dtype::Uint64,
        "int64" => Dtype::Int64,
        "float32" => Dtype::Float32,
        "float64" => Dtype::Float64,
        "bool" => Dtype::Boolean,
        _ => return None,
    })
}

/// The NumPy dtype name a tensorpool dtype is exposed as (BYTES and BIT as `uint8`).
pub(crate) fn numpy_name(d: Dtype) -> &'static str {
    match d {
        Dtype::Uint8 | Dtype::Bytes | Dtype::Bit => "uint8",
        Dtype::Int8 => "int8",
        Dtype::Uint16 => "uint16",
        Dtype::Int16 => "int16",
        Dtype::Uint32 => "uint32",
        Dtype::Int32 => "int32",
        Dtype::Uint64 => "uint64",
        Dtype::Int64 => "int64",
        Dtype::Float32 => "float32",
        Dtype::Float64 => "float64",
        Dtype::Boolean => "bool",
    }
}

/// The NumPy dtype object of a tensorpool dtype.
pub(crate) fn numpy_dtype<'py>(py: Python<'py>, d: Dtype) -> PyResult<Bound<'py, PyAny>> {
    py.import("numpy")?
        .getattr("dtype")?
        .call1((numpy_name(d),))
}

/// A dtype from a tensorpool name (`"u16"`), a NumPy name (`"uint16"`), a NumPy dtype or a
/// NumPy scalar type (`numpy.uint16`). Non-native byte orders and other kinds are refused.
pub(crate) fn dtype(obj: &Bound<'_, PyAny>) -> PyResult<Dtype> {
    if let Ok(s) = obj.cast::<PyString>() {
        let s = s.to_str()?;
        if let Ok(d) = Dtype::from_str(s) {
            return Ok(d);
        }
        if let Some(d) = from_numpy_name(s) {
            return Ok(d);
        }
    }
    let py = obj.py();
    let np_dtype = py
        .import("numpy")?
        .getattr("dtype")?
        .call1((obj,))
        .map_err(|_| {
            PyTypeError::new_err(format!(
                "dtype {}: not a dtype; expected one of {DTYPES} (a name, numpy dtype or numpy scalar type)",
                obj.repr().map(|r| r.to_string()).unwrap_or_default()
            ))
        })?;
    let name: String = np_dtype.getattr("name")?.extract()?;
    let byteorder: String = np_dtype.getattr("byteorder")?.extract()?;
    let d = from_numpy_name(&name).ok_or_else(|| {
        PyValueError::new_err(format!(
            "dtype {name} is not supported: tensorpool carries {DTYPES}"
        ))
    })?;
    if byteorder == ">" && d.size_bytes() > 1 {
        return Err(PyValueError::new_err(format!(
            "dtype {name} is big-endian: tensorpool tensors are little-endian (convert with .astype('<{}'))",
            &np_dtype.getattr("str")?.extract::<String>()?[1..]
        )));
    }
    Ok(d)
}

/// A shape: a sequence of 1 to 8 non-negative ints (an int alone is a 1-D shape).
pub(crate) fn shape(obj: &Bound<'_, PyAny>) -> PyResult<Vec<usize>> {
    let dims: Vec<i64> = if let Ok(n) = obj.extract::<i64>() {
        vec![n]
    } else {
        obj.extract().map_err(|_| {
            PyTypeError::new_err(format!(
                "shape {}: expected a sequence of ints",
                obj.repr().map(|r| r.to_string()).unwrap_or_default()
            ))
        })?
    };
    if dims.is_empty() || dims.len() > 8 {
        return Err(PyValueError::new_err(format!(
            "shape {dims:?}: a tensor has 1 to 8 dimensions, {} given",
            dims.len()
        )));
    }
    dims.iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| {
                PyValueError::new_err(format!("shape {dims:?}: dimension {d} is negative"))
            })
        })
        .collect()
}

/// A validated spec, or a `ValueError` naming why not.
pub(crate) fn spec(d: Dtype, shape: &[usize]) -> PyResult<TensorSpec> {
    TensorSpec::new(d, shape)
        .map_err(|e| PyValueError::new_err(format!("tensor {shape:?} of {d}: {e}")))
}

/// Seconds (a float, >= 0) as a duration.
pub(crate) fn seconds(what: &str, s: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(s).map_err(|_| {
        PyValueError::new_err(format!(
            "{what} = {s}: expected a finite number of seconds >= 0"
        ))
    })
}

/// An optional duration in seconds.
pub(crate) fn opt_seconds(what: &str, s: Option<f64>) -> PyResult<Option<Duration>> {
    s.map(|s| seconds(what, s)).transpose()
}
