//! Property tests (§8.2): whatever a correct producer writes is accepted; overlapping or
//! order-contradicting strides are rejected; decoding arbitrary slot bytes never panics.

use proptest::prelude::*;
use tensorpool_shm::slot::{decode_slot, encode_slot, slot_for_frame, validate_slot};
use tensorpool_shm::tensor::{self, Dtype, MajorOrder, validate_tensor};
use tensorpool_shm::{DropReason, PoolGeometry};

const DTYPES: [Dtype; 13] = [
    Dtype::Uint8,
    Dtype::Int8,
    Dtype::Uint16,
    Dtype::Int16,
    Dtype::Uint32,
    Dtype::Int32,
    Dtype::Uint64,
    Dtype::Int64,
    Dtype::Float32,
    Dtype::Float64,
    Dtype::Boolean,
    Dtype::Bytes,
    Dtype::Bit,
];

fn dtype() -> impl Strategy<Value = Dtype> {
    (0..DTYPES.len()).prop_map(|i| DTYPES[i])
}
fn order() -> impl Strategy<Value = MajorOrder> {
    prop_oneof![Just(MajorOrder::Row), Just(MajorOrder::Column)]
}

/// Strides a correct producer would write: contiguous in `order`, each dimension padded by
/// `pad[i]` extra elements' worth of bytes (0 = tightly packed).
fn producer_strides(d: Dtype, o: MajorOrder, dims: &[i32], pad: &[i32]) -> Vec<i32> {
    let elem = tensor::dtype_size_bytes(d).unwrap() as i64;
    let n = dims.len();
    let mut strides = vec![0i32; n];
    let mut next = elem;
    for step in 0..n {
        let i = if o == MajorOrder::Row {
            n - 1 - step
        } else {
            step
        };
        strides[i] = (next + i64::from(pad[i]) * elem) as i32;
        next = i64::from(strides[i]) * i64::from(dims[i].max(1));
    }
    strides
}

proptest! {
    #[test]
    fn w_8_2_prop_accepts_contiguous_and_padded_producer_layouts(
        d in dtype(),
        o in order(),
        dims in prop::collection::vec(0i32..6, 1..=8),
        pads in prop::collection::vec(0i32..3, 8),
        explicit in any::<bool>(),
    ) {
        let n = dims.len();
        let strides = if explicit { producer_strides(d, o, &dims, &pads[..n]) } else { vec![0; n] };
        let h = tensor::new_header(d, o, &dims, &strides).unwrap();
        let layout = validate_tensor(&h, 0).unwrap();
        prop_assert!(layout.extent_bytes <= u64::from(u32::MAX));
        let values_len = (layout.extent_bytes as u32).max(1);
        prop_assert!(validate_tensor(&h, values_len).is_ok());
        // the same header through a whole slot, encoded and decoded
        let stride = values_len.div_ceil(64) * 64;
        let slot = slot_for_frame(13, 5, 2, values_len, &h);
        let mut bytes = [0u8; 256];
        encode_slot(&slot, &mut bytes).unwrap();
        let decoded = decode_slot(&bytes).unwrap();
        let pools = [PoolGeometry { pool_id: 2, stride_bytes: stride, nslots: 8 }];
        prop_assert!(validate_slot(&decoded, 5, &pools).is_ok());
        // progress strides computed by the helper are accepted
        if n >= 2 {
            for unit in [tensor::ProgressUnit::Rows, tensor::ProgressUnit::Columns] {
                if let Ok(p) = tensor::with_progress(h.clone(), unit) {
                    prop_assert!(validate_tensor(&p, values_len).is_ok());
                }
            }
        }
    }

    #[test]
    fn w_8_2_prop_rejects_overlapping_strides(
        d in dtype(),
        o in order(),
        dims in prop::collection::vec(2i32..6, 2..=8),
        pick in 0usize..8,
        shrink in 1i32..64,
    ) {
        let n = dims.len();
        let mut strides = producer_strides(d, o, &dims, &[0; 8][..n]);
        // pick a non-innermost dimension and make its stride smaller than the span of the
        // next inner dimension (but still >= that dimension's stride, so only overlap)
        let inner_of = |i: usize| if o == MajorOrder::Row { i + 1 } else { i - 1 };
        let i = if o == MajorOrder::Row { pick % (n - 1) } else { 1 + pick % (n - 1) };
        let inner = inner_of(i);
        let span = strides[inner] * dims[inner];
        strides[i] = (span - shrink).max(strides[inner]);
        let h = {
            let mut h = tensor::contiguous(d, o, &dims).unwrap();
            h.strides[..n].copy_from_slice(&strides);
            h
        };
        prop_assert_eq!(validate_tensor(&h, 0).unwrap_err(), DropReason::StridesOverlap);
        // and strides below the next inner stride contradict the major order
        let mut h2 = h.clone();
        h2.strides[i] = strides[inner] - 1;
        if h2.strides[i] > 0 {
            prop_assert_eq!(validate_tensor(&h2, 0).unwrap_err(), DropReason::StridesContradictMajorOrder);
        }
    }

    #[test]
    fn w_8_2_prop_decode_and_validate_never_panic(bytes in prop::collection::vec(any::<u8>(), 256), index in 0u32..16) {
        let arr: [u8; 256] = bytes.try_into().unwrap();
        if let Ok(s) = decode_slot(&arr) {
            let pools = [PoolGeometry { pool_id: s.pool_id, stride_bytes: 1 << 20, nslots: 16 }];
            let _ = validate_slot(&s, index, &pools);
        }
    }
}
