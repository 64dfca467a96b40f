//! Element types, major orders and `tp_tensor_spec`: what a producer claims a slot for,
//! validated once and reused for every claim.

use std::ffi::c_char;

use tensorpool::prelude::{Dtype, MajorOrder, TensorSpec};

use crate::error::{FfiResult, err, guard, tp_status, tp_status::*};
use crate::handles::{self, Kind};

/// Element type of a tensor (Wire Spec §15.8). Functions take it as `uint32_t`; values
/// outside this list are `TP_ERR_INVALID_ARGUMENT`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum tp_dtype {
    /// `uint8_t`.
    TP_DTYPE_UINT8 = 0,
    /// `int8_t`.
    TP_DTYPE_INT8 = 1,
    /// `uint16_t`.
    TP_DTYPE_UINT16 = 2,
    /// `int16_t`.
    TP_DTYPE_INT16 = 3,
    /// `uint32_t`.
    TP_DTYPE_UINT32 = 4,
    /// `int32_t`.
    TP_DTYPE_INT32 = 5,
    /// `uint64_t`.
    TP_DTYPE_UINT64 = 6,
    /// `int64_t`.
    TP_DTYPE_INT64 = 7,
    /// `float`.
    TP_DTYPE_FLOAT32 = 8,
    /// `double`.
    TP_DTYPE_FLOAT64 = 9,
    /// One byte per boolean.
    TP_DTYPE_BOOLEAN = 10,
    /// Raw bytes.
    TP_DTYPE_BYTES = 11,
    /// One bit per byte (v1.2).
    TP_DTYPE_BIT = 12,
}

/// Memory order of a tensor's dimensions. Functions take it as `uint32_t`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum tp_major_order {
    /// Row-major (C order): the last dimension varies fastest.
    TP_ORDER_ROW = 0,
    /// Column-major (Fortran order): the first dimension varies fastest.
    TP_ORDER_COLUMN = 1,
}

/// The most dimensions a tensor has.
pub const TP_MAX_DIMS: usize = 8;

/// The Rust dtype of a C value.
pub(crate) fn dtype(v: u32) -> FfiResult<Dtype> {
    match Dtype::ALL.get(v as usize) {
        Some(d) => Ok(*d),
        None => err(
            TP_ERR_INVALID_ARGUMENT,
            format!("dtype {v} is not a tp_dtype (0..=12)"),
        ),
    }
}

/// The C value of a Rust dtype (its index in `Dtype::ALL`, the order of [`tp_dtype`]).
pub(crate) fn dtype_code(d: Dtype) -> u32 {
    Dtype::ALL.iter().position(|x| *x == d).unwrap_or(11) as u32
}

pub(crate) fn order(v: u32) -> FfiResult<MajorOrder> {
    match v {
        0 => Ok(MajorOrder::Row),
        1 => Ok(MajorOrder::Column),
        _ => err(
            TP_ERR_INVALID_ARGUMENT,
            format!("major order {v} is not TP_ORDER_ROW (0) or TP_ORDER_COLUMN (1)"),
        ),
    }
}

pub(crate) fn order_code(o: MajorOrder) -> u32 {
    match o {
        MajorOrder::Row => 0,
        MajorOrder::Column => 1,
    }
}

/// A validated tensor description: dtype, shape, strides, order. Opaque; build it once
/// with [`tp_tensor_spec_new`] and reuse it for every claim.
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct tp_tensor_spec {
    pub(crate) spec: TensorSpec,
}

pub(crate) fn get<'a>(spec: *const tp_tensor_spec) -> FfiResult<&'a tp_tensor_spec> {
    handles::get(spec.cast_mut(), Kind::Spec, "spec").map(|s| &*s)
}

/// Builds a tensor spec: `ndims` (1..=8) sizes in `shape`; `strides` NULL for a contiguous
/// tensor, else `ndims` byte strides (0 entries inferred). `dtype` is a [`tp_dtype`],
/// `order` a [`tp_major_order`].
#[unsafe(no_mangle)]
pub extern "C" fn tp_tensor_spec_new(
    dtype: u32,
    order: u32,
    ndims: usize,
    shape: *const usize,
    strides: *const usize,
    out: *mut *mut tp_tensor_spec,
) -> tp_status {
    guard("tp_tensor_spec_new", || {
        let out = handles::out(out, "out")?;
        *out = std::ptr::null_mut();
        let d = self::dtype(dtype)?;
        let o = self::order(order)?;
        if ndims == 0 || ndims > TP_MAX_DIMS {
            return err(
                TP_ERR_INVALID_ARGUMENT,
                format!("a tensor has 1 to 8 dimensions; {ndims} given"),
            );
        }
        let shape = handles::slice(shape, ndims, "shape")?;
        let spec = if strides.is_null() {
            TensorSpec::with_order(d, o, shape)
        } else {
            TensorSpec::strided(d, o, shape, handles::slice(strides, ndims, "strides")?)
        }
        .map_err(|e| crate::error::FfiError::new(TP_ERR_INVALID_ARGUMENT, e.to_string()))?;
        *out = handles::register(tp_tensor_spec { spec }, Kind::Spec);
        Ok(())
    })
}

/// The payload bytes the tensor spans (what a claim reserves).
#[unsafe(no_mangle)]
pub extern "C" fn tp_tensor_spec_len_bytes(
    spec: *const tp_tensor_spec,
    out: *mut usize,
) -> tp_status {
    guard("tp_tensor_spec_len_bytes", || {
        let s = get(spec)?;
        *handles::out(out, "out")? = s.spec.len_bytes();
        Ok(())
    })
}

/// Frees a spec. NULL is a no-op.
#[unsafe(no_mangle)]
pub extern "C" fn tp_tensor_spec_free(spec: *mut tp_tensor_spec) -> tp_status {
    guard("tp_tensor_spec_free", || {
        handles::free(spec, Kind::Spec, "spec")
    })
}

/// Bytes per element of a [`tp_dtype`]; 0 for an unknown value.
#[unsafe(no_mangle)]
pub extern "C" fn tp_dtype_size(dtype: u32) -> usize {
    self::dtype(dtype).map(|d| d.size_bytes()).unwrap_or(0)
}

/// Short name of a [`tp_dtype`] (`"u16"`, `"f32"`, ...), `"?"` for an unknown value.
/// Static text.
#[unsafe(no_mangle)]
pub extern "C" fn tp_dtype_name(dtype: u32) -> *const c_char {
    const NAMES: [&[u8]; 13] = [
        b"u8\0", b"i8\0", b"u16\0", b"i16\0", b"u32\0", b"i32\0", b"u64\0", b"i64\0", b"f32\0",
        b"f64\0", b"bool\0", b"bytes\0", b"bit\0",
    ];
    NAMES
        .get(dtype as usize)
        .copied()
        .unwrap_or(b"?\0")
        .as_ptr()
        .cast::<c_char>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtype_codes_follow_the_c_enum() {
        for (i, d) in Dtype::ALL.iter().enumerate() {
            assert_eq!(dtype_code(*d), i as u32);
            assert_eq!(dtype(i as u32).unwrap(), *d);
        }
        assert_eq!(
            dtype_code(Dtype::Float32),
            tp_dtype::TP_DTYPE_FLOAT32 as u32
        );
        assert_eq!(dtype_code(Dtype::Bit), tp_dtype::TP_DTYPE_BIT as u32);
        assert!(dtype(13).is_err());
        assert_eq!(tp_dtype_size(tp_dtype::TP_DTYPE_FLOAT64 as u32), 8);
        assert_eq!(tp_dtype_size(99), 0);
    }
}
