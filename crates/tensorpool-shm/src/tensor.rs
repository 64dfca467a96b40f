//! The embedded TensorHeader (Wire Spec §8.2, §15.8): element types, shape and stride rules.
//!
//! Decisions where the spec leaves room (recorded in `docs/compliance.md`):
//! - **Element sizes**: BOOLEAN, BYTES and BIT take one byte per element, as in the C peer;
//!   a BIT tensor stores one bit per byte in v1.2 (byte strides cannot express packed bits).
//! - **Inferred strides** (`0`): contiguous in the declared major order, from the next inner
//!   dimension's effective stride times its size (a size-0 dimension counts as 1); the
//!   innermost inferred stride is the element size. Zero and explicit strides may mix.
//! - **Order and overlap**: for row-major, going from the innermost dimension outwards each
//!   effective stride must be `>=` the previous one (else it contradicts the major order) and
//!   `>=` previous stride times previous size (else rows overlap); an explicit innermost stride
//!   smaller than the element size overlaps elements (checked when that dimension has more
//!   than one element). Column-major is the mirror image.
//! - **Progress strides**: ROWS refers to dimension 0 and COLUMNS to dimension 1 (as the C
//!   peer): `progress_stride_bytes` must equal that dimension's effective stride.
//! - **Extent**: the bytes a tensor spans, `elem + sum((dims[i]-1) * strides[i])` (0 when any
//!   dimension is 0), must fit in `values_len_bytes`. When `values_len_bytes == 0` the frame
//!   carries no payload and the extent check is skipped (§8.2 "payload metadata may be ignored").

use crate::MAX_DIMS;
use crate::slot::DropReason;
pub use tensorpool_codec::wire::{Dtype, MajorOrder, ProgressUnit, TensorHeader};

/// Bytes per element (BOOLEAN, BYTES and BIT: 1, see the module docs); `None` for UNKNOWN.
pub fn dtype_size_bytes(dtype: Dtype) -> Option<u32> {
    Some(match dtype {
        Dtype::Unknown => return None,
        Dtype::Uint8 | Dtype::Int8 | Dtype::Boolean | Dtype::Bytes | Dtype::Bit => 1,
        Dtype::Uint16 | Dtype::Int16 => 2,
        Dtype::Uint32 | Dtype::Int32 | Dtype::Float32 => 4,
        Dtype::Uint64 | Dtype::Int64 | Dtype::Float64 => 8,
    })
}

/// The layout implied by a valid TensorHeader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorLayout {
    /// The element type.
    pub dtype: Dtype,
    /// The major order.
    pub order: MajorOrder,
    /// Number of dimensions.
    pub ndims: usize,
    /// Effective strides (zero strides replaced by their inferred value); `>= ndims` are 0.
    pub strides: [u64; MAX_DIMS],
    /// Bytes spanned by the tensor.
    pub extent_bytes: u64,
}

/// Producer helper: a header for `dims` with explicit `strides` (`0` entries are inferred),
/// zero-filling every entry past `dims.len()` (§8.2 producer rule) and validating it.
pub fn new_header(
    dtype: Dtype,
    order: MajorOrder,
    dims: &[i32],
    strides: &[i32],
) -> Result<TensorHeader, DropReason> {
    if dims.is_empty() || dims.len() > MAX_DIMS || strides.len() != dims.len() {
        return Err(DropReason::NdimsOutOfRange);
    }
    let mut h = TensorHeader {
        dtype,
        major_order: order,
        ndims: dims.len() as u8,
        pad_align: 0,
        progress_unit: ProgressUnit::None,
        progress_stride_bytes: 0,
        dims: [0; MAX_DIMS],
        strides: [0; MAX_DIMS],
        pad: [0; tensorpool_codec::wire::tensor::PAD_LEN],
    };
    h.dims[..dims.len()].copy_from_slice(dims);
    h.strides[..strides.len()].copy_from_slice(strides);
    validate_tensor(&h, 0)?;
    Ok(h)
}

/// Producer helper: a contiguous header (all strides inferred).
pub fn contiguous(
    dtype: Dtype,
    order: MajorOrder,
    dims: &[i32],
) -> Result<TensorHeader, DropReason> {
    new_header(
        dtype,
        order,
        dims,
        &[0; MAX_DIMS][..dims.len().min(MAX_DIMS)],
    )
}

/// Producer helper: sets the progress unit and the matching `progress_stride_bytes`.
pub fn with_progress(mut h: TensorHeader, unit: ProgressUnit) -> Result<TensorHeader, DropReason> {
    let layout = validate_tensor(&h, 0)?;
    h.progress_unit = unit;
    h.progress_stride_bytes = match unit {
        ProgressUnit::None => 0,
        ProgressUnit::Rows => progress_dim_stride(&layout, 0)?,
        ProgressUnit::Columns => progress_dim_stride(&layout, 1)?,
    };
    Ok(h)
}

/// Producer rule (§8.2): zero `dims[i]` and `strides[i]` for `i >= ndims`.
pub fn zero_fill_unused(h: &mut TensorHeader) {
    let n = usize::from(h.ndims).min(MAX_DIMS);
    h.dims[n..].fill(0);
    h.strides[n..].fill(0);
}

fn progress_dim_stride(layout: &TensorLayout, dim: usize) -> Result<u32, DropReason> {
    if dim >= layout.ndims {
        return Err(DropReason::ProgressStrideInvalid);
    }
    match u32::try_from(layout.strides[dim]) {
        Ok(s) if s > 0 => Ok(s),
        _ => Err(DropReason::ProgressStrideInvalid),
    }
}

/// Validates a TensorHeader against every §8.2 rule, in this order: ndims, dtype, major order,
/// progress unit, non-negative dims and strides, order/overlap, progress stride, extent.
pub fn validate_tensor(
    t: &TensorHeader,
    values_len_bytes: u32,
) -> Result<TensorLayout, DropReason> {
    let n = usize::from(t.ndims);
    if n == 0 || n > MAX_DIMS {
        return Err(DropReason::NdimsOutOfRange);
    }
    let elem = u64::from(dtype_size_bytes(t.dtype).ok_or(DropReason::UnknownDtype)?);
    let (dtype, unit) = (t.dtype, t.progress_unit);
    let order = match t.major_order {
        MajorOrder::Unknown => return Err(DropReason::UnknownMajorOrder),
        o => o,
    };
    if t.dims[..n].iter().any(|&d| d < 0) {
        return Err(DropReason::NegativeDim);
    }
    if t.strides[..n].iter().any(|&s| s < 0) {
        return Err(DropReason::NegativeStride);
    }
    let mut eff = [0u64; MAX_DIMS];
    // Visit dimensions from the fastest-varying outwards.
    let mut prev: Option<usize> = None;
    for step in 0..n {
        let i = if order == MajorOrder::Column {
            step
        } else {
            n - 1 - step
        };
        let explicit = t.strides[i] as u64;
        let d = t.dims[i] as u64;
        eff[i] = match prev {
            None => {
                if explicit == 0 {
                    elem
                } else if explicit < elem && d > 1 {
                    return Err(DropReason::StridesOverlap);
                } else {
                    explicit
                }
            }
            Some(p) => {
                let min = eff[p]
                    .checked_mul((t.dims[p] as u64).max(1))
                    .ok_or(DropReason::ExtentExceedsValuesLen)?;
                if explicit == 0 {
                    min
                } else if explicit < eff[p] {
                    return Err(DropReason::StridesContradictMajorOrder);
                } else if explicit < min {
                    return Err(DropReason::StridesOverlap);
                } else {
                    explicit
                }
            }
        };
        prev = Some(i);
    }
    match unit {
        ProgressUnit::None => {}
        ProgressUnit::Rows | ProgressUnit::Columns => {
            let dim = if unit == ProgressUnit::Rows { 0 } else { 1 };
            if t.progress_stride_bytes == 0
                || dim >= n
                || eff[dim] != u64::from(t.progress_stride_bytes)
            {
                return Err(DropReason::ProgressStrideInvalid);
            }
        }
    }
    let extent = if t.dims[..n].contains(&0) {
        0
    } else {
        let mut sum = elem;
        for (&d, &stride) in t.dims[..n].iter().zip(&eff[..n]) {
            let span = (d as u64 - 1)
                .checked_mul(stride)
                .ok_or(DropReason::ExtentExceedsValuesLen)?;
            sum = sum
                .checked_add(span)
                .ok_or(DropReason::ExtentExceedsValuesLen)?;
        }
        sum
    };
    if values_len_bytes != 0 && extent > u64::from(values_len_bytes) {
        return Err(DropReason::ExtentExceedsValuesLen);
    }
    Ok(TensorLayout {
        dtype,
        order,
        ndims: n,
        strides: eff,
        extent_bytes: extent,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A header with arbitrary (possibly invalid) contents, bypassing the producer helpers.
    pub(crate) fn raw(
        dtype: Dtype,
        order: MajorOrder,
        dims: &[i32],
        strides: &[i32],
    ) -> TensorHeader {
        let mut t = TensorHeader {
            dtype,
            major_order: order,
            ndims: dims.len() as u8,
            pad_align: 0,
            progress_unit: ProgressUnit::None,
            progress_stride_bytes: 0,
            dims: [0; MAX_DIMS],
            strides: [0; MAX_DIMS],
            pad: [0; tensorpool_codec::wire::tensor::PAD_LEN],
        };
        t.dims[..dims.len()].copy_from_slice(dims);
        t.strides[..strides.len()].copy_from_slice(strides);
        t
    }
    const F32: Dtype = Dtype::Float32;
    const ROW: MajorOrder = MajorOrder::Row;
    const COL: MajorOrder = MajorOrder::Column;

    #[test]
    fn w_8_2_rejects_ndims_0_and_9() {
        let mut t = raw(F32, ROW, &[2], &[0]);
        t.ndims = 0;
        assert_eq!(validate_tensor(&t, 0), Err(DropReason::NdimsOutOfRange));
        t.ndims = 9;
        assert_eq!(validate_tensor(&t, 0), Err(DropReason::NdimsOutOfRange));
        t.ndims = 8;
        assert!(
            validate_tensor(&t, 0).is_ok(),
            "ndims 8 with zero dims beyond is valid"
        );
        assert_eq!(
            contiguous(Dtype::Uint8, MajorOrder::Row, &[]),
            Err(DropReason::NdimsOutOfRange)
        );
        assert_eq!(
            contiguous(Dtype::Uint8, MajorOrder::Row, &[1; 9]),
            Err(DropReason::NdimsOutOfRange)
        );
    }

    // Unregistered raw values (dtype 12, 15, ...) are rejected when the slot is decoded:
    // see slot::tests::w_15_8_rejects_unregistered_enum_values.
    #[test]
    fn w_15_8_rejects_unknown_dtype() {
        assert_eq!(
            validate_tensor(&raw(Dtype::Unknown, ROW, &[2], &[0]), 0),
            Err(DropReason::UnknownDtype)
        );
    }

    #[test]
    fn w_15_8_rejects_unknown_major_order() {
        assert_eq!(
            validate_tensor(&raw(F32, MajorOrder::Unknown, &[2], &[0]), 0),
            Err(DropReason::UnknownMajorOrder)
        );
    }

    #[test]
    fn w_15_8_element_sizes() {
        let sizes = [
            (1, 1),
            (2, 1),
            (3, 2),
            (4, 2),
            (5, 4),
            (6, 4),
            (7, 8),
            (8, 8),
            (9, 4),
            (10, 8),
            (11, 1),
            (13, 1),
            (14, 1),
        ];
        for (raw, size) in sizes {
            let d = Dtype::try_from(raw).unwrap();
            assert_eq!(dtype_size_bytes(d), Some(size), "dtype {raw}");
        }
        assert_eq!(dtype_size_bytes(Dtype::Unknown), None);
        assert!(Dtype::try_from(12i16).is_err(), "12 is unassigned");
    }

    #[test]
    fn w_8_2_rejects_negative_dims() {
        assert_eq!(
            validate_tensor(&raw(F32, ROW, &[2, -1], &[0, 0]), 0),
            Err(DropReason::NegativeDim)
        );
    }

    #[test]
    fn w_8_2_rejects_negative_strides() {
        assert_eq!(
            validate_tensor(&raw(F32, ROW, &[2, 2], &[-8, 4]), 0),
            Err(DropReason::NegativeStride)
        );
    }

    #[test]
    fn w_8_2_ignores_dims_and_strides_beyond_ndims() {
        let mut t = raw(F32, ROW, &[2, 3], &[0, 0]);
        t.dims[5] = -7;
        t.strides[7] = -1;
        assert!(validate_tensor(&t, 24).is_ok());
        zero_fill_unused(&mut t);
        assert_eq!(t.dims[2..], [0; 6]);
        assert_eq!(t.strides[2..], [0; 6]);
    }

    #[test]
    fn w_8_2_infers_zero_strides_contiguous() {
        let l = validate_tensor(&raw(F32, ROW, &[2, 3, 4], &[0, 0, 0]), 96).unwrap();
        assert_eq!(l.strides[..3], [48, 16, 4]);
        assert_eq!(l.extent_bytes, 96);
        let l = validate_tensor(&raw(F32, COL, &[2, 3, 4], &[0, 0, 0]), 96).unwrap();
        assert_eq!(l.strides[..3], [4, 8, 24]);
        // mixed: padded rows with inferred elements
        let l = validate_tensor(&raw(F32, ROW, &[2, 3], &[64, 0]), 76).unwrap();
        assert_eq!(l.strides[..2], [64, 4]);
        assert_eq!(l.extent_bytes, 64 + 12);
    }

    #[test]
    fn w_8_2_rejects_overlapping_strides() {
        // rows of 4 floats (16 bytes) but row stride 8
        assert_eq!(
            validate_tensor(&raw(F32, ROW, &[3, 4], &[8, 4]), 0),
            Err(DropReason::StridesOverlap)
        );
        // elements closer than their size
        assert_eq!(
            validate_tensor(&raw(F32, ROW, &[4], &[2]), 0),
            Err(DropReason::StridesOverlap)
        );
        assert_eq!(
            validate_tensor(&raw(F32, COL, &[4, 3], &[4, 8]), 0),
            Err(DropReason::StridesOverlap)
        );
        // equal strides on dims > 1 overlap
        assert_eq!(
            validate_tensor(&raw(F32, ROW, &[2, 2], &[4, 4]), 0),
            Err(DropReason::StridesOverlap)
        );
    }

    #[test]
    fn w_8_2_rejects_strides_contradicting_major_order() {
        // column-major strides declared as row-major
        assert_eq!(
            validate_tensor(&raw(F32, ROW, &[3, 4], &[4, 12]), 0),
            Err(DropReason::StridesContradictMajorOrder)
        );
        assert_eq!(
            validate_tensor(&raw(F32, COL, &[3, 4], &[16, 4]), 0),
            Err(DropReason::StridesContradictMajorOrder)
        );
    }

    #[test]
    fn w_8_2_progress_stride_rules() {
        // unit NONE: any progress stride, including 0 (PITFALLS #3)
        let t = raw(F32, ROW, &[3, 4], &[0, 0]);
        assert!(validate_tensor(&t, 48).is_ok());
        let ok = with_progress(t.clone(), ProgressUnit::Rows).unwrap();
        assert_eq!(ok.progress_stride_bytes, 16);
        assert!(validate_tensor(&ok, 48).is_ok());
        let ok = with_progress(t.clone(), ProgressUnit::Columns).unwrap();
        assert_eq!(ok.progress_stride_bytes, 4);
        let cm = with_progress(raw(F32, COL, &[3, 4], &[0, 0]), ProgressUnit::Columns).unwrap();
        assert_eq!(cm.progress_stride_bytes, 12);
    }

    #[test]
    fn w_8_2_rejects_bad_progress_stride() {
        let mut t = raw(F32, ROW, &[3, 4], &[0, 0]);
        t.progress_unit = ProgressUnit::Rows;
        t.progress_stride_bytes = 0;
        assert_eq!(
            validate_tensor(&t, 0),
            Err(DropReason::ProgressStrideInvalid)
        );
        t.progress_stride_bytes = 12;
        assert_eq!(
            validate_tensor(&t, 0),
            Err(DropReason::ProgressStrideInvalid)
        );
        let mut one_d = raw(F32, ROW, &[3], &[0]);
        one_d.progress_unit = ProgressUnit::Columns;
        one_d.progress_stride_bytes = 4;
        assert_eq!(
            validate_tensor(&one_d, 0),
            Err(DropReason::ProgressStrideInvalid)
        );
    }

    #[test]
    fn w_8_2_extent_must_fit_values_len() {
        let t = raw(F32, ROW, &[3, 4], &[0, 0]);
        assert!(validate_tensor(&t, 48).is_ok());
        assert!(validate_tensor(&t, 4096).is_ok());
        assert_eq!(
            validate_tensor(&t, 47),
            Err(DropReason::ExtentExceedsValuesLen)
        );
        // values_len 0: empty payload, extent not checked
        assert!(validate_tensor(&t, 0).is_ok());
        // a zero dimension spans nothing
        assert_eq!(
            validate_tensor(&raw(F32, ROW, &[0, 4], &[0, 0]), 1)
                .unwrap()
                .extent_bytes,
            0
        );
        // overflow is a rejection, not a panic
        let huge = raw(Dtype::Float64, ROW, &[i32::MAX; 8], &[0; 8]);
        assert_eq!(
            validate_tensor(&huge, u32::MAX),
            Err(DropReason::ExtentExceedsValuesLen)
        );
    }
}
