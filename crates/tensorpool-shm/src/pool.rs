//! Payload pool geometry (Wire Spec §9, §15.5, §15.22; PITFALLS #8).

use crate::SUPERBLOCK_SIZE;

/// Size and identity of one payload pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PoolGeometry {
    /// Pool id (size class).
    pub pool_id: u16,
    /// Bytes between payload slots: a non-zero multiple of 64.
    pub stride_bytes: u32,
    /// Slot count: equal to the header ring's (§15.5).
    pub nslots: u32,
}

/// Why a pool configuration is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// Stride is 0 or not a multiple of 64 (§15.22).
    #[error("pool {pool_id} stride_bytes {stride_bytes} is not a non-zero multiple of 64")]
    StrideNotMultipleOf64 {
        /// Pool id.
        pool_id: u16,
        /// Stride given.
        stride_bytes: u32,
    },
    /// nslots is 0 or not a power of two.
    #[error("nslots {nslots} is not a non-zero power of two")]
    NslotsNotPowerOfTwo {
        /// Value given.
        nslots: u32,
    },
    /// Pool nslots differs from the header ring's (§15.5).
    #[error(
        "pool {pool_id} has {pool_nslots} slots; the header ring has {header_nslots} and they must be equal"
    )]
    NslotsMismatch {
        /// Pool id.
        pool_id: u16,
        /// Pool nslots.
        pool_nslots: u32,
        /// Header ring nslots.
        header_nslots: u32,
    },
    /// Two pools share an id.
    #[error("pool id {pool_id} appears twice")]
    DuplicatePoolId {
        /// The id.
        pool_id: u16,
    },
    /// No pool at all (a stream needs at least one).
    #[error("no payload pool; at least one is required")]
    NoPools,
    /// Region size overflows.
    #[error("pool {pool_id}: 64 + {nslots} * {stride_bytes} bytes overflows")]
    TooLarge {
        /// Pool id.
        pool_id: u16,
        /// nslots.
        nslots: u32,
        /// stride.
        stride_bytes: u32,
    },
}

/// Whether `stride_bytes` is a non-zero multiple of 64 (the C copy of the spec; PITFALLS #8).
pub fn stride_is_valid(stride_bytes: u32) -> bool {
    stride_bytes != 0 && stride_bytes.is_multiple_of(64)
}

/// Whether a Julia peer (which requires a power-of-two multiple of 64) can map this stride.
/// Strides that are valid but not Julia-compatible deserve a warning naming that consequence.
pub fn stride_is_julia_compatible(stride_bytes: u32) -> bool {
    stride_is_valid(stride_bytes) && stride_bytes.is_power_of_two()
}

/// Byte offset of payload slot `slot`: `64 + slot * stride_bytes`; `None` on overflow.
pub fn payload_slot_offset(slot: u32, stride_bytes: u32) -> Option<u64> {
    u64::from(slot)
        .checked_mul(u64::from(stride_bytes))?
        .checked_add(SUPERBLOCK_SIZE as u64)
}

impl PoolGeometry {
    /// Checks stride and nslots against the header ring's `header_nslots`.
    pub fn validate(&self, header_nslots: u32) -> Result<(), PoolError> {
        if !stride_is_valid(self.stride_bytes) {
            return Err(PoolError::StrideNotMultipleOf64 {
                pool_id: self.pool_id,
                stride_bytes: self.stride_bytes,
            });
        }
        if !self.nslots.is_power_of_two() {
            return Err(PoolError::NslotsNotPowerOfTwo {
                nslots: self.nslots,
            });
        }
        if self.nslots != header_nslots {
            return Err(PoolError::NslotsMismatch {
                pool_id: self.pool_id,
                pool_nslots: self.nslots,
                header_nslots,
            });
        }
        if self.region_len().is_none() {
            return Err(PoolError::TooLarge {
                pool_id: self.pool_id,
                nslots: self.nslots,
                stride_bytes: self.stride_bytes,
            });
        }
        Ok(())
    }

    /// File length the pool needs: `64 + nslots * stride_bytes`.
    pub fn region_len(&self) -> Option<u64> {
        payload_slot_offset(self.nslots, self.stride_bytes)
    }
}

/// Validates a set of pools for one stream: at least one, unique ids, valid strides, nslots
/// a power of two equal to `header_nslots`.
pub fn validate_pools(pools: &[PoolGeometry], header_nslots: u32) -> Result<(), PoolError> {
    if !header_nslots.is_power_of_two() {
        return Err(PoolError::NslotsNotPowerOfTwo {
            nslots: header_nslots,
        });
    }
    if pools.is_empty() {
        return Err(PoolError::NoPools);
    }
    for (i, p) in pools.iter().enumerate() {
        p.validate(header_nslots)?;
        if pools[..i].iter().any(|q| q.pool_id == p.pool_id) {
            return Err(PoolError::DuplicatePoolId { pool_id: p.pool_id });
        }
    }
    Ok(())
}

/// Pool selection (§9): the index of the smallest pool whose stride holds `values_len_bytes`;
/// `None` when nothing fits: the producer drops the frame, it never blocks.
pub fn select_pool(pools: &[PoolGeometry], values_len_bytes: u32) -> Option<usize> {
    pools
        .iter()
        .enumerate()
        .filter(|(_, p)| p.stride_bytes >= values_len_bytes)
        .min_by_key(|(_, p)| p.stride_bytes)
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(pool_id: u16, stride_bytes: u32, nslots: u32) -> PoolGeometry {
        PoolGeometry {
            pool_id,
            stride_bytes,
            nslots,
        }
    }

    #[test]
    fn w_15_22_rejects_stride_not_multiple_of_64() {
        assert_eq!(
            g(1, 100, 8).validate(8),
            Err(PoolError::StrideNotMultipleOf64 {
                pool_id: 1,
                stride_bytes: 100
            })
        );
        assert!(g(1, 0, 8).validate(8).is_err());
        assert!(
            g(1, 64 * 3, 8).validate(8).is_ok(),
            "any multiple of 64 (C copy wins)"
        );
    }

    #[test]
    fn pitfall_8_julia_compatibility_helper() {
        assert!(stride_is_julia_compatible(4096));
        assert!(!stride_is_julia_compatible(192));
        assert!(stride_is_valid(192));
        assert!(!stride_is_julia_compatible(100));
    }

    #[test]
    fn w_3_rejects_nslots_not_power_of_two() {
        assert_eq!(
            g(1, 64, 6).validate(6),
            Err(PoolError::NslotsNotPowerOfTwo { nslots: 6 })
        );
        assert_eq!(
            validate_pools(&[g(1, 64, 6)], 6),
            Err(PoolError::NslotsNotPowerOfTwo { nslots: 6 })
        );
    }

    #[test]
    fn w_15_5_rejects_pool_nslots_mismatch() {
        assert_eq!(
            validate_pools(&[g(1, 64, 8), g(2, 128, 16)], 8),
            Err(PoolError::NslotsMismatch {
                pool_id: 2,
                pool_nslots: 16,
                header_nslots: 8
            })
        );
        assert_eq!(
            validate_pools(&[g(1, 64, 8), g(1, 128, 8)], 8),
            Err(PoolError::DuplicatePoolId { pool_id: 1 })
        );
        assert_eq!(validate_pools(&[], 8), Err(PoolError::NoPools));
    }

    #[test]
    fn w_9_selects_smallest_fitting_pool() {
        let pools = [g(3, 1 << 20, 8), g(1, 4096, 8), g(2, 65536, 8)];
        assert_eq!(select_pool(&pools, 0), Some(1));
        assert_eq!(select_pool(&pools, 4096), Some(1));
        assert_eq!(select_pool(&pools, 4097), Some(2));
        assert_eq!(select_pool(&pools, 1 << 20), Some(0));
    }

    #[test]
    fn w_9_no_fitting_pool_is_a_drop() {
        assert_eq!(select_pool(&[g(1, 64, 8)], 65), None);
        assert_eq!(select_pool(&[], 0), None);
    }

    #[test]
    fn w_9_slot_offset_overflow_checked() {
        assert_eq!(payload_slot_offset(0, 4096), Some(64));
        assert_eq!(payload_slot_offset(3, 4096), Some(64 + 3 * 4096));
        assert_eq!(
            payload_slot_offset(u32::MAX, u32::MAX),
            Some(64 + u64::from(u32::MAX) * u64::from(u32::MAX))
        );
    }
}
