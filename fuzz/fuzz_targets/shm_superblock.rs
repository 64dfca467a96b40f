//! Superblock decoding and validation (Wire Spec §7.1, §15.1) on arbitrary bytes: the first
//! 64 bytes (zero-padded) are the superblock, the rest (if any) the announced values it is
//! validated against. Never panics; a decoded superblock re-encodes to the same bytes; a
//! superblock always validates against the announce it describes, if it is structurally valid.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tensorpool_shm::superblock::{self, ExpectedRegion, RegionType, SuperblockError};

fn u32_at(d: &[u8], o: usize) -> u32 {
    let mut b = [0u8; 4];
    for (i, x) in b.iter_mut().enumerate() {
        *x = d.get(o + i).copied().unwrap_or(0);
    }
    u32::from_le_bytes(b)
}

fuzz_target!(|data: &[u8]| {
    let mut bytes = [0u8; 64];
    let n = data.len().min(64);
    bytes[..n].copy_from_slice(&data[..n]);
    let Ok(sb) = superblock::decode(&bytes) else {
        return;
    };
    let mut out = [0u8; 64];
    superblock::encode(&sb, &mut out);
    assert_eq!(out, bytes, "re-encoding reproduces the bytes");

    let own = ExpectedRegion {
        layout_version: sb.layout_version,
        epoch: sb.epoch,
        stream_id: sb.stream_id,
        region_type: sb.region_type,
        pool_id: sb.pool_id,
        nslots: sb.nslots,
        stride_bytes: sb.stride_bytes,
    };
    match superblock::validate(&sb, &own) {
        Ok(()) => {}
        Err(
            SuperblockError::HeaderRingPoolIdNonZero { .. }
            | SuperblockError::NslotsNotPowerOfTwo { .. }
            | SuperblockError::StrideNotMultipleOf64 { .. }
            | SuperblockError::BadSize { .. },
        ) => {}
        Err(e) => panic!("a superblock must match the announce it describes: {e}"),
    }
    let rest = &data[n..];
    let region_type = if rest.first().copied().unwrap_or(0) & 1 == 0 {
        RegionType::HeaderRing
    } else {
        RegionType::PayloadPool
    };
    let announced = ExpectedRegion {
        layout_version: u32_at(rest, 1),
        epoch: u64::from(u32_at(rest, 5)),
        stream_id: u32_at(rest, 9),
        region_type,
        pool_id: u32_at(rest, 13) as u16,
        nslots: u32_at(rest, 15),
        stride_bytes: u32_at(rest, 19),
    };
    let _ = superblock::validate(&sb, &announced);
    let _ = announced.region_len();
});
