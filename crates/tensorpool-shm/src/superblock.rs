//! The 64-byte region superblock (Wire Spec §6, §7.1, §15.1, §15.14).
//!
//! Decisions (PITFALLS #9): payload pools are written with `slot_bytes = stride_bytes`; on read
//! `slot_bytes` may be `stride_bytes` or `0xFFFFFFFF` (the C driver's value). Header rings are
//! written with `slot_bytes = 256`, `stride_bytes = 0`; on read `stride_bytes` may be 0 or 256.

use crate::{HEADER_SLOT_BYTES, LAYOUT_VERSION, MAGIC, SUPERBLOCK_SIZE};

/// `slot_bytes` the C driver writes into payload pool superblocks.
pub const POOL_SLOT_BYTES_UNSPECIFIED: u32 = 0xFFFF_FFFF;

use tensorpool_codec::wire::superblock as offsets;
pub use tensorpool_codec::wire::{RegionType, ShmRegionSuperblock as Superblock};

/// The superblock fields compared against the announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum SuperblockField {
    LayoutVersion,
    Epoch,
    StreamId,
    RegionType,
    PoolId,
    Nslots,
    SlotBytes,
    StrideBytes,
}

/// Why a superblock is refused; every variant carries what was expected and what was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SuperblockError {
    /// Magic is not `TPOLSHM1`.
    #[error(
        "superblock magic is 0x{found:016x}; expected 0x{:016x} (file bytes `1MHSLPOT`)",
        MAGIC
    )]
    BadMagic {
        /// The magic found.
        found: u64,
    },
    /// A field differs from the announced value.
    #[error("superblock {field:?} is {found}; expected {expected}")]
    Mismatch {
        /// Which field.
        field: SuperblockField,
        /// Announced value.
        expected: u64,
        /// Value in the file.
        found: u64,
    },
    /// `region_type` is not a registered value.
    #[error("superblock region_type is {found}; expected 1 (HEADER_RING) or 2 (PAYLOAD_POOL)")]
    UnknownRegionType {
        /// Raw value.
        found: i16,
    },
    /// Header ring with a non-zero pool id.
    #[error("header ring superblock pool_id is {found}; expected 0")]
    HeaderRingPoolIdNonZero {
        /// Pool id found.
        found: u16,
    },
    /// `nslots` is 0 or not a power of two.
    #[error("superblock nslots is {found}; expected a non-zero power of two")]
    NslotsNotPowerOfTwo {
        /// Value found.
        found: u32,
    },
    /// Payload pool stride is 0 or not a multiple of 64.
    #[error("payload pool stride_bytes is {found}; expected a non-zero multiple of 64")]
    StrideNotMultipleOf64 {
        /// Value found.
        found: u32,
    },
    /// The codec could not decode the block (cannot happen for 64 bytes with valid enums).
    #[error("superblock could not be decoded")]
    Undecodable,
    /// Header ring `slot_bytes` / `stride_bytes`, or pool `slot_bytes`, not an accepted value.
    #[error("superblock {field:?} is {found}; expected {expected} (or {alternative})")]
    BadSize {
        /// Which field.
        field: SuperblockField,
        /// Value found.
        found: u32,
        /// Preferred value.
        expected: u32,
        /// The other accepted value.
        alternative: u32,
    },
}

/// What the most recent `ShmPoolAnnounce` (or attach response) says a region must contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectedRegion {
    /// Layout version announced.
    pub layout_version: u32,
    /// Epoch announced.
    pub epoch: u64,
    /// Stream id.
    pub stream_id: u32,
    /// Header ring or payload pool.
    pub region_type: RegionType,
    /// 0 for the header ring.
    pub pool_id: u16,
    /// Slot count (header nslots; pools must equal it).
    pub nslots: u32,
    /// Pool stride (ignored for the header ring).
    pub stride_bytes: u32,
}

impl ExpectedRegion {
    /// Expected values for a header ring.
    pub fn header_ring(layout_version: u32, epoch: u64, stream_id: u32, nslots: u32) -> Self {
        Self {
            layout_version,
            epoch,
            stream_id,
            region_type: RegionType::HeaderRing,
            pool_id: 0,
            nslots,
            stride_bytes: 0,
        }
    }

    /// Expected values for a payload pool.
    pub fn payload_pool(
        layout_version: u32,
        epoch: u64,
        stream_id: u32,
        pool_id: u16,
        nslots: u32,
        stride_bytes: u32,
    ) -> Self {
        Self {
            layout_version,
            epoch,
            stream_id,
            region_type: RegionType::PayloadPool,
            pool_id,
            nslots,
            stride_bytes,
        }
    }

    /// Byte length the region needs: `64 + nslots * slot stride` (`None` on overflow).
    pub fn region_len(&self) -> Option<u64> {
        let stride = match self.region_type {
            RegionType::HeaderRing => HEADER_SLOT_BYTES as u64,
            RegionType::PayloadPool => u64::from(self.stride_bytes),
        };
        u64::from(self.nslots)
            .checked_mul(stride)?
            .checked_add(SUPERBLOCK_SIZE as u64)
    }
}

/// Decodes 64 superblock bytes. Magic is checked first, then the region type (so that an
/// unregistered value is named), then the codec decodes the rest. Never panics.
pub fn decode(bytes: &[u8; SUPERBLOCK_SIZE]) -> Result<Superblock, SuperblockError> {
    let mut m = [0u8; 8];
    m.copy_from_slice(&bytes[offsets::MAGIC_OFFSET..offsets::MAGIC_OFFSET + 8]);
    let magic = u64::from_le_bytes(m);
    if magic != MAGIC {
        return Err(SuperblockError::BadMagic { found: magic });
    }
    let o = offsets::REGION_TYPE_OFFSET;
    let raw = i16::from_le_bytes([bytes[o], bytes[o + 1]]);
    if RegionType::try_from(raw).is_err() {
        return Err(SuperblockError::UnknownRegionType { found: raw });
    }
    Superblock::decode(bytes).map_err(|_| SuperblockError::Undecodable)
}

/// Encodes a superblock into 64 bytes.
pub fn encode(sb: &Superblock, out: &mut [u8; SUPERBLOCK_SIZE]) {
    // A 64-byte buffer always holds the 64-byte block.
    let _ = sb.encode(out);
}

/// The superblock a producer / driver writes for a new region (the PITFALLS #9 sizes).
pub fn for_region(expected: &ExpectedRegion, pid: u64, now_ns: u64) -> Superblock {
    let (slot_bytes, stride_bytes) = match expected.region_type {
        RegionType::HeaderRing => (HEADER_SLOT_BYTES as u32, 0),
        RegionType::PayloadPool => (expected.stride_bytes, expected.stride_bytes),
    };
    Superblock {
        magic: MAGIC,
        layout_version: expected.layout_version,
        epoch: expected.epoch,
        stream_id: expected.stream_id,
        region_type: expected.region_type,
        pool_id: expected.pool_id,
        nslots: expected.nslots,
        slot_bytes,
        stride_bytes,
        pid,
        start_timestamp_ns: now_ns,
        activity_timestamp_ns: now_ns,
    }
}

/// Checks a superblock on its own (magic, header-ring pool id, nslots, sizes) and against the
/// announced values (§7.1, §15.1). Errors name the first wrong field with expected and found.
pub fn validate(sb: &Superblock, expected: &ExpectedRegion) -> Result<(), SuperblockError> {
    use SuperblockField as F;
    if sb.magic != MAGIC {
        return Err(SuperblockError::BadMagic { found: sb.magic });
    }
    let mismatch = |field, expected: u64, found: u64| {
        if expected == found {
            Ok(())
        } else {
            Err(SuperblockError::Mismatch {
                field,
                expected,
                found,
            })
        }
    };
    mismatch(
        F::LayoutVersion,
        expected.layout_version.into(),
        sb.layout_version.into(),
    )?;
    let region_type = sb.region_type;
    mismatch(
        F::RegionType,
        expected.region_type.raw() as u64,
        region_type.raw() as u64,
    )?;
    mismatch(F::Epoch, expected.epoch, sb.epoch)?;
    mismatch(F::StreamId, expected.stream_id.into(), sb.stream_id.into())?;
    if region_type == RegionType::HeaderRing && sb.pool_id != 0 {
        return Err(SuperblockError::HeaderRingPoolIdNonZero { found: sb.pool_id });
    }
    mismatch(F::PoolId, expected.pool_id.into(), sb.pool_id.into())?;
    if !sb.nslots.is_power_of_two() {
        return Err(SuperblockError::NslotsNotPowerOfTwo { found: sb.nslots });
    }
    mismatch(F::Nslots, expected.nslots.into(), sb.nslots.into())?;
    match region_type {
        RegionType::HeaderRing => {
            let slot = HEADER_SLOT_BYTES as u32;
            if sb.slot_bytes != slot {
                return Err(SuperblockError::BadSize {
                    field: F::SlotBytes,
                    found: sb.slot_bytes,
                    expected: slot,
                    alternative: slot,
                });
            }
            if sb.stride_bytes != 0 && sb.stride_bytes != slot {
                return Err(SuperblockError::BadSize {
                    field: F::StrideBytes,
                    found: sb.stride_bytes,
                    expected: 0,
                    alternative: slot,
                });
            }
        }
        RegionType::PayloadPool => {
            if sb.stride_bytes == 0 || !sb.stride_bytes.is_multiple_of(64) {
                return Err(SuperblockError::StrideNotMultipleOf64 {
                    found: sb.stride_bytes,
                });
            }
            mismatch(
                F::StrideBytes,
                expected.stride_bytes.into(),
                sb.stride_bytes.into(),
            )?;
            if sb.slot_bytes != sb.stride_bytes && sb.slot_bytes != POOL_SLOT_BYTES_UNSPECIFIED {
                return Err(SuperblockError::BadSize {
                    field: F::SlotBytes,
                    found: sb.slot_bytes,
                    expected: sb.stride_bytes,
                    alternative: POOL_SLOT_BYTES_UNSPECIFIED,
                });
            }
        }
    }
    Ok(())
}

/// Offset of the 8-aligned `activity_timestamp_ns` word (from the codec's layout).
pub(crate) const ACTIVITY_TIMESTAMP_OFFSET: usize = offsets::ACTIVITY_TIMESTAMP_OFFSET;
const _: () = assert!(ACTIVITY_TIMESTAMP_OFFSET.is_multiple_of(8));

/// Liveness (§7.1, §15.1, §15.14): whether `activity_timestamp_ns` is farther than `window_ns`
/// from `now_ns` (same clock). A timestamp in the future by more than the window is also
/// stale: it cannot come from a live writer on the same clock (fail closed).
pub fn is_activity_stale(activity_ns: u64, now_ns: u64, window_ns: u64) -> bool {
    activity_ns.abs_diff(now_ns) > window_ns
}

/// The current layout version this crate writes and accepts.
pub fn current_layout_version() -> u32 {
    LAYOUT_VERSION
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> ExpectedRegion {
        ExpectedRegion::header_ring(LAYOUT_VERSION, 7, 1000, 8)
    }
    fn pool() -> ExpectedRegion {
        ExpectedRegion::payload_pool(LAYOUT_VERSION, 7, 1000, 1, 8, 4096)
    }

    #[test]
    fn w_7_1_writes_expected_sizes() {
        let r = for_region(&ring(), 42, 5);
        assert_eq!((r.slot_bytes, r.stride_bytes, r.pool_id), (256, 0, 0));
        let p = for_region(&pool(), 42, 5);
        assert_eq!((p.slot_bytes, p.stride_bytes), (4096, 4096));
        assert!(validate(&r, &ring()).is_ok());
        assert!(validate(&p, &pool()).is_ok());
        let mut b = [0u8; 64];
        encode(&p, &mut b);
        // §7.1 names the magic `TPOLSHM1` but gives the number 0x544F504C53484D31, whose
        // little-endian bytes read `1MHSLPOT` (its big-endian reading is `TOPLSHM1`, not
        // `TPOLSHM1`). The number wins: it is what the C peer writes (superblock.bin).
        assert_eq!(&b[..8], b"1MHSLPOT");
        assert_eq!(crate::MAGIC, 0x544F_504C_5348_4D31);
        assert_eq!(decode(&b), Ok(p));
    }

    #[test]
    fn w_7_1_rejects_bad_magic() {
        let mut s = for_region(&ring(), 1, 1);
        s.magic = u64::from_le_bytes(*b"2MHSLPOT");
        assert_eq!(
            validate(&s, &ring()),
            Err(SuperblockError::BadMagic { found: s.magic })
        );
    }

    #[test]
    fn w_15_1_rejects_wrong_layout_version() {
        let mut s = for_region(&ring(), 1, 1);
        s.layout_version = 2;
        assert_eq!(
            validate(&s, &ring()),
            Err(SuperblockError::Mismatch {
                field: SuperblockField::LayoutVersion,
                expected: 1,
                found: 2
            })
        );
    }

    #[test]
    fn w_15_1_rejects_mismatched_fields() {
        type M = fn(&mut Superblock);
        let cases: [(M, SuperblockField, u64, u64); 4] = [
            (|s| s.epoch = 8, SuperblockField::Epoch, 7, 8),
            (
                |s| s.stream_id = 1001,
                SuperblockField::StreamId,
                1000,
                1001,
            ),
            (|s| s.nslots = 16, SuperblockField::Nslots, 8, 16),
            (|s| s.pool_id = 2, SuperblockField::PoolId, 1, 2),
        ];
        for (m, field, expected, found) in cases {
            let mut s = for_region(&pool(), 1, 1);
            m(&mut s);
            assert_eq!(
                validate(&s, &pool()),
                Err(SuperblockError::Mismatch {
                    field,
                    expected,
                    found
                })
            );
        }
        let mut s = for_region(&pool(), 1, 1);
        s.stride_bytes = 8192;
        s.slot_bytes = 8192;
        assert_eq!(
            validate(&s, &pool()),
            Err(SuperblockError::Mismatch {
                field: SuperblockField::StrideBytes,
                expected: 4096,
                found: 8192
            })
        );
        let s = for_region(&pool(), 1, 1);
        assert!(matches!(
            validate(&s, &ring()),
            Err(SuperblockError::Mismatch {
                field: SuperblockField::RegionType,
                expected: 1,
                found: 2
            })
        ));
        let mut b = [0u8; 64];
        encode(&s, &mut b);
        b[offsets::REGION_TYPE_OFFSET..][..2].copy_from_slice(&3i16.to_le_bytes());
        assert_eq!(
            decode(&b),
            Err(SuperblockError::UnknownRegionType { found: 3 })
        );
        b[0] ^= 1;
        assert!(matches!(decode(&b), Err(SuperblockError::BadMagic { .. })));
    }

    #[test]
    fn w_7_1_header_ring_pool_id_must_be_zero() {
        let mut s = for_region(&ring(), 1, 1);
        s.pool_id = 1;
        let mut e = ring();
        e.pool_id = 1; // even if an announce claimed otherwise
        assert_eq!(
            validate(&s, &e),
            Err(SuperblockError::HeaderRingPoolIdNonZero { found: 1 })
        );
    }

    #[test]
    fn w_7_1_rejects_wrong_sizes() {
        let mut s = for_region(&ring(), 1, 1);
        s.slot_bytes = 128;
        assert!(matches!(
            validate(&s, &ring()),
            Err(SuperblockError::BadSize {
                field: SuperblockField::SlotBytes,
                ..
            })
        ));
        let mut s = for_region(&ring(), 1, 1);
        s.stride_bytes = 64;
        assert!(matches!(
            validate(&s, &ring()),
            Err(SuperblockError::BadSize {
                field: SuperblockField::StrideBytes,
                ..
            })
        ));
        let mut s = for_region(&pool(), 1, 1);
        s.slot_bytes = 1024;
        assert!(matches!(
            validate(&s, &pool()),
            Err(SuperblockError::BadSize {
                field: SuperblockField::SlotBytes,
                ..
            })
        ));
    }

    #[test]
    fn pitfall_9_accepts_peer_size_conventions() {
        let mut s = for_region(&ring(), 1, 1);
        s.stride_bytes = 256;
        assert!(validate(&s, &ring()).is_ok());
        let mut s = for_region(&pool(), 1, 1);
        s.slot_bytes = POOL_SLOT_BYTES_UNSPECIFIED;
        assert!(validate(&s, &pool()).is_ok());
    }

    #[test]
    fn w_15_22_superblock_stride_not_multiple_of_64() {
        let e = ExpectedRegion::payload_pool(1, 7, 1000, 1, 8, 100);
        let s = for_region(&e, 1, 1);
        assert_eq!(
            validate(&s, &e),
            Err(SuperblockError::StrideNotMultipleOf64 { found: 100 })
        );
    }

    #[test]
    fn w_3_superblock_nslots_not_power_of_two() {
        let e = ExpectedRegion::header_ring(1, 7, 1000, 6);
        let s = for_region(&e, 1, 1);
        assert_eq!(
            validate(&s, &e),
            Err(SuperblockError::NslotsNotPowerOfTwo { found: 6 })
        );
        let e = ExpectedRegion::header_ring(1, 7, 1000, 0);
        assert_eq!(
            validate(&for_region(&e, 1, 1), &e),
            Err(SuperblockError::NslotsNotPowerOfTwo { found: 0 })
        );
    }

    #[test]
    fn w_15_1_activity_staleness_window() {
        assert!(!is_activity_stale(1_000, 1_000, 0));
        assert!(!is_activity_stale(1_000, 4_000, 3_000));
        assert!(is_activity_stale(1_000, 4_001, 3_000));
        assert!(
            is_activity_stale(10_000, 1_000, 3_000),
            "future beyond the window is stale"
        );
        assert!(!is_activity_stale(0, u64::MAX, u64::MAX));
    }

    #[test]
    fn w_6_region_len_overflow_checked() {
        assert_eq!(pool().region_len(), Some(64 + 8 * 4096));
        assert_eq!(ring().region_len(), Some(64 + 8 * 256));
        let e = ExpectedRegion::payload_pool(1, 1, 1, 1, u32::MAX, u32::MAX);
        assert_eq!(
            e.region_len(),
            Some(64 + u64::from(u32::MAX) * u64::from(u32::MAX))
        );
    }
}
