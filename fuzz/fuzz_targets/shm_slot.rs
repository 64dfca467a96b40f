//! Header slot decoding and validation (Wire Spec §8.2, §15.8) on arbitrary bytes: the first
//! 256 bytes (zero-padded) are the slot; the next bytes choose the header index and the mapped
//! pools. Never panics; a decoded slot re-encodes to bytes that decode to the same slot; an
//! accepted slot's tensor fits its payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tensorpool_shm::PoolGeometry;
use tensorpool_shm::slot::{decode_slot, encode_slot, validate_slot};
use tensorpool_shm::tensor::validate_tensor;

fn u32_at(d: &[u8], o: usize) -> u32 {
    let mut b = [0u8; 4];
    for (i, x) in b.iter_mut().enumerate() {
        *x = d.get(o + i).copied().unwrap_or(0);
    }
    u32::from_le_bytes(b)
}

fuzz_target!(|data: &[u8]| {
    let mut bytes = [0u8; 256];
    let n = data.len().min(256);
    bytes[..n].copy_from_slice(&data[..n]);
    let Ok(slot) = decode_slot(&bytes) else {
        return;
    };
    let mut out = [0u8; 256];
    encode_slot(&slot, &mut out).expect("a decoded slot encodes");
    assert_eq!(decode_slot(&out).as_ref(), Ok(&slot));

    let rest = &data[n..];
    let index = u32_at(rest, 0);
    let pools = [
        PoolGeometry {
            pool_id: slot.pool_id,
            stride_bytes: u32_at(rest, 4),
            nslots: u32_at(rest, 8),
        },
        PoolGeometry {
            pool_id: u32_at(rest, 12) as u16,
            stride_bytes: u32_at(rest, 14),
            nslots: u32_at(rest, 8),
        },
    ];
    let _ = validate_tensor(&slot.tensor, u32_at(rest, 18));
    if let Ok(check) = validate_slot(&slot, index, &pools) {
        let pool = pools[check.pool_index];
        assert!(slot.values_len_bytes <= pool.stride_bytes);
        assert_eq!(slot.payload_slot, index);
        assert_eq!(slot.payload_offset, 0);
        assert!(
            slot.values_len_bytes == 0
                || check.layout.extent_bytes <= u64::from(slot.values_len_bytes)
        );
    }
});
