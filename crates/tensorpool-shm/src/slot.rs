//! Header slots (Wire Spec §8.1, §8.2): the decoded 256-byte slot and every consumer-side
//! validation rule, each returning a [`DropReason`].

use tensorpool_codec::MessageHeader;
use tensorpool_codec::wire::{Dtype, MajorOrder, ProgressUnit, slot, tensor};

use crate::pool::PoolGeometry;
use crate::tensor::{TensorHeader, TensorLayout, validate_tensor};
use crate::{
    HEADER_SLOT_BYTES, SUPERBLOCK_SIZE, TENSOR_HEADER_BLOCK_LENGTH, TENSOR_HEADER_BYTES,
    TENSOR_HEADER_TEMPLATE_ID, WIRE_SCHEMA_ID, WIRE_SCHEMA_VERSION,
};

pub use tensorpool_codec::wire::SlotHeader;

/// Why a frame was dropped. One small `Copy` enum for every cause, so that a consumer can keep
/// one drop counter per cause: `counters[reason.index()]`, with [`DropReason::COUNT`] entries.
/// A drop is not an error (§15.21): the frame was overwritten, in flight, or invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[repr(u8)]
pub enum DropReason {
    // --- seqlock (§8.3, §15.3) ---
    /// `seq_commit` LSB is 0: the producer is writing this slot.
    #[error("slot not committed (producer writing)")]
    NotCommitted = 0,
    /// `seq_commit` changed between the two reads (`drops_late`).
    #[error("slot overwritten while it was read (late)")]
    Late,
    /// The slot holds an older sequence than expected (`seq_commit` decreased / not yet written).
    #[error("slot holds an older sequence than expected (stale)")]
    Stale,
    /// The slot already holds a newer sequence: the expected frame was overwritten.
    #[error("slot holds a newer sequence than expected (overwritten)")]
    Overwritten,
    // --- embedded header (§8.2, §8.3 step 5) ---
    /// `headerBytes` length is not 192.
    #[error("headerBytes length is not {TENSOR_HEADER_BYTES}")]
    HeaderBytesLength,
    /// Embedded message header blockLength is not 184.
    #[error("embedded header blockLength is not {TENSOR_HEADER_BLOCK_LENGTH}")]
    EmbeddedBlockLength,
    /// Embedded message header templateId is not 52.
    #[error("embedded header templateId is not {TENSOR_HEADER_TEMPLATE_ID}")]
    EmbeddedTemplateId,
    /// Embedded message header schemaId is not 900.
    #[error("embedded header schemaId is not {WIRE_SCHEMA_ID}")]
    EmbeddedSchemaId,
    /// Embedded message header version is not 1.
    #[error("embedded header version is not {WIRE_SCHEMA_VERSION}")]
    EmbeddedVersion,
    // --- TensorHeader (§8.2, §15.8) ---
    /// `ndims` is 0 or greater than 8.
    #[error("ndims outside 1..=8")]
    NdimsOutOfRange,
    /// `dtype` is UNKNOWN or unregistered.
    #[error("unknown dtype")]
    UnknownDtype,
    /// `major_order` is UNKNOWN or unregistered.
    #[error("unknown major order")]
    UnknownMajorOrder,
    /// `progress_unit` is unregistered.
    #[error("unknown progress unit")]
    UnknownProgressUnit,
    /// A used dimension is negative.
    #[error("negative dimension")]
    NegativeDim,
    /// A used stride is negative (not supported in v1.2).
    #[error("negative stride")]
    NegativeStride,
    /// Strides describe overlapping elements.
    #[error("strides overlap")]
    StridesOverlap,
    /// Strides contradict the declared major order.
    #[error("strides contradict the major order")]
    StridesContradictMajorOrder,
    /// `progress_unit != NONE` and `progress_stride_bytes` is 0 or not the true row/column stride.
    #[error("progress_stride_bytes is zero or not the row/column stride")]
    ProgressStrideInvalid,
    /// The tensor spans more bytes than `values_len_bytes` (or its size overflows).
    #[error("tensor extent exceeds values_len_bytes")]
    ExtentExceedsValuesLen,
    // --- slot / pool (§8.2, §9, §15.5) ---
    /// `payload_offset` is not 0.
    #[error("payload_offset is not 0")]
    PayloadOffsetNonZero,
    /// `payload_slot` differs from the header index.
    #[error("payload_slot differs from the header index")]
    PayloadSlotMismatch,
    /// `pool_id` names no mapped pool.
    #[error("pool_id names no mapped pool")]
    UnknownPool,
    /// `values_len_bytes` exceeds the pool's stride.
    #[error("values_len_bytes exceeds the pool stride")]
    ValuesLenExceedsStride,
    /// The slot bytes could not be decoded for another reason.
    #[error("slot bytes could not be decoded")]
    Malformed,
    // --- the mapping itself ---
    /// The header ring or the payload pool was truncated under the mapping (SIGBUS, see
    /// [`crate::sigbus`]): its pages are zeros now; the region must be unmapped.
    #[error("region file truncated under the mapping (region dead)")]
    RegionDead,
}

impl DropReason {
    /// Number of variants (size of a per-cause counter array).
    pub const COUNT: usize = DropReason::RegionDead as usize + 1;

    /// Every variant, in index order.
    pub const ALL: [DropReason; Self::COUNT] = [
        Self::NotCommitted,
        Self::Late,
        Self::Stale,
        Self::Overwritten,
        Self::HeaderBytesLength,
        Self::EmbeddedBlockLength,
        Self::EmbeddedTemplateId,
        Self::EmbeddedSchemaId,
        Self::EmbeddedVersion,
        Self::NdimsOutOfRange,
        Self::UnknownDtype,
        Self::UnknownMajorOrder,
        Self::UnknownProgressUnit,
        Self::NegativeDim,
        Self::NegativeStride,
        Self::StridesOverlap,
        Self::StridesContradictMajorOrder,
        Self::ProgressStrideInvalid,
        Self::ExtentExceedsValuesLen,
        Self::PayloadOffsetNonZero,
        Self::PayloadSlotMismatch,
        Self::UnknownPool,
        Self::ValuesLenExceedsStride,
        Self::Malformed,
        Self::RegionDead,
    ];

    /// Index for a per-cause counter array.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether this counts as `drops_late` in QoS (§15.4: commit instability / overwrite).
    pub fn is_late(self) -> bool {
        matches!(self, Self::NotCommitted | Self::Late | Self::Overwritten)
    }
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

/// Decodes the 256 bytes of a header slot (a private copy), checking first what the codec
/// would refuse, so that each cause gets its own [`DropReason`]: `headerBytes` length (192),
/// the embedded message header (blockLength 184, templateId 52, schemaId 900, version 1), then
/// registered enum values (§15.8). Never panics.
pub fn decode_slot(bytes: &[u8; HEADER_SLOT_BYTES]) -> Result<SlotHeader, DropReason> {
    let o = slot::HEADER_BYTES_LEN_OFFSET;
    let len = u32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
    if len as usize != TENSOR_HEADER_BYTES {
        return Err(DropReason::HeaderBytesLength);
    }
    let h = MessageHeader::decode(&bytes[slot::TENSOR_HEADER_OFFSET..])
        .map_err(|_| DropReason::Malformed)?;
    if usize::from(h.block_length) != TENSOR_HEADER_BLOCK_LENGTH {
        return Err(DropReason::EmbeddedBlockLength);
    }
    if h.template_id != TENSOR_HEADER_TEMPLATE_ID {
        return Err(DropReason::EmbeddedTemplateId);
    }
    if h.schema_id != WIRE_SCHEMA_ID {
        return Err(DropReason::EmbeddedSchemaId);
    }
    if h.version != WIRE_SCHEMA_VERSION {
        return Err(DropReason::EmbeddedVersion);
    }
    let body = slot::TENSOR_BODY_OFFSET;
    if Dtype::try_from(u16_at(bytes, body + tensor::DTYPE_OFFSET) as i16).is_err() {
        return Err(DropReason::UnknownDtype);
    }
    if MajorOrder::try_from(u16_at(bytes, body + tensor::MAJOR_ORDER_OFFSET) as i16).is_err() {
        return Err(DropReason::UnknownMajorOrder);
    }
    if ProgressUnit::try_from(bytes[body + tensor::PROGRESS_UNIT_OFFSET]).is_err() {
        return Err(DropReason::UnknownProgressUnit);
    }
    SlotHeader::decode(bytes).map_err(|_| DropReason::Malformed)
}

/// Encodes a slot into a private 256-byte buffer (pads as given; [`slot_for_frame`] zeroes
/// them). Writers into live memory copy bytes `8..` only: `seq_commit` is the seqlock's.
pub fn encode_slot(
    h: &SlotHeader,
    out: &mut [u8; HEADER_SLOT_BYTES],
) -> Result<(), tensorpool_codec::EncodeError> {
    h.encode(out).map(|_| ())
}

/// A producer's slot for `seq` (committed form of `seq_commit`), with the v1.2 constants
/// (`payload_offset = 0`, zero pads, unused dims/strides zero-filled) filled in.
pub fn slot_for_frame(
    seq: u64,
    header_index: u32,
    pool_id: u16,
    values_len_bytes: u32,
    tensor: &TensorHeader,
) -> SlotHeader {
    let mut tensor = tensor.clone();
    crate::tensor::zero_fill_unused(&mut tensor);
    tensor.pad = [0; tensor::PAD_LEN];
    tensor.pad_align = 0;
    SlotHeader {
        seq_commit: crate::seqlock::committed(seq),
        values_len_bytes,
        payload_slot: header_index,
        pool_id,
        payload_offset: 0,
        timestamp_ns: 0,
        meta_version: 0,
        pad: [0; slot::PAD_LEN],
        tensor,
    }
}

/// What a valid slot resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotCheck {
    /// Position of the slot's pool in the `pools` slice given to [`validate_slot`].
    pub pool_index: usize,
    /// The tensor layout.
    pub layout: TensorLayout,
}

/// Every §8.2 rule for a decoded slot read at `header_index`, against the mapped `pools`
/// (the embedded header was checked by [`decode_slot`]): `payload_offset == 0`, `payload_slot == header_index`, known `pool_id`,
/// `values_len_bytes <= stride`, then the TensorHeader rules ([`validate_tensor`]).
/// Does not look at `seq_commit` (that is the seqlock's job).
pub fn validate_slot(
    slot: &SlotHeader,
    header_index: u32,
    pools: &[PoolGeometry],
) -> Result<SlotCheck, DropReason> {
    if slot.payload_offset != 0 {
        return Err(DropReason::PayloadOffsetNonZero);
    }
    if slot.payload_slot != header_index {
        return Err(DropReason::PayloadSlotMismatch);
    }
    let pool_index = pools
        .iter()
        .position(|p| p.pool_id == slot.pool_id)
        .ok_or(DropReason::UnknownPool)?;
    let pool = &pools[pool_index];
    if slot.values_len_bytes > pool.stride_bytes {
        return Err(DropReason::ValuesLenExceedsStride);
    }
    if header_index >= pool.nslots {
        return Err(DropReason::PayloadSlotMismatch);
    }
    let layout = validate_tensor(&slot.tensor, slot.values_len_bytes)?;
    Ok(SlotCheck { pool_index, layout })
}

/// Byte offset of header slot `index` in the header ring file: `64 + index * 256` (§8.1).
pub fn header_slot_offset(index: u32) -> u64 {
    SUPERBLOCK_SIZE as u64 + u64::from(index) * HEADER_SLOT_BYTES as u64
}

/// Header index of a sequence: `seq & (nslots - 1)`; `nslots` must be a power of two.
pub fn header_index(seq: u64, nslots: u32) -> u32 {
    debug_assert!(nslots.is_power_of_two());
    (seq & u64::from(nslots.wrapping_sub(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pools() -> [PoolGeometry; 2] {
        [
            PoolGeometry {
                pool_id: 1,
                stride_bytes: 256,
                nslots: 8,
            },
            PoolGeometry {
                pool_id: 2,
                stride_bytes: 4096,
                nslots: 8,
            },
        ]
    }

    fn good(seq: u64) -> SlotHeader {
        let t = crate::tensor::contiguous(Dtype::Float32, MajorOrder::Row, &[4, 4]).unwrap();
        slot_for_frame(seq, header_index(seq, 8), 1, 64, &t)
    }

    fn bytes_of(s: &SlotHeader) -> [u8; HEADER_SLOT_BYTES] {
        let mut b = [0u8; HEADER_SLOT_BYTES];
        encode_slot(s, &mut b).unwrap();
        b
    }

    #[test]
    fn w_8_1_slot_offsets_and_index() {
        assert_eq!(header_slot_offset(0), 64);
        assert_eq!(header_slot_offset(3), 64 + 3 * 256);
        assert_eq!(header_index(13, 8), 5);
        assert_eq!(header_index(u64::MAX, 1024), 1023);
    }

    #[test]
    fn w_8_2_accepts_correct_slot() {
        let c = validate_slot(&good(13), 5, &pools()).unwrap();
        assert_eq!(c.pool_index, 0);
        assert_eq!(c.layout.extent_bytes, 64);
    }

    #[test]
    fn w_8_2_rejects_nonzero_payload_offset() {
        let mut s = good(5);
        s.payload_offset = 64;
        assert_eq!(
            validate_slot(&s, 5, &pools()),
            Err(DropReason::PayloadOffsetNonZero)
        );
    }

    #[test]
    fn w_8_2_rejects_payload_slot_mismatch() {
        let mut s = good(5);
        s.payload_slot = 4;
        assert_eq!(
            validate_slot(&s, 5, &pools()),
            Err(DropReason::PayloadSlotMismatch)
        );
    }

    #[test]
    fn w_8_2_rejects_unknown_pool_id() {
        let mut s = good(5);
        s.pool_id = 9;
        assert_eq!(validate_slot(&s, 5, &pools()), Err(DropReason::UnknownPool));
    }

    #[test]
    fn w_9_rejects_values_len_over_stride() {
        let mut s = good(5);
        s.values_len_bytes = 257;
        assert_eq!(
            validate_slot(&s, 5, &pools()),
            Err(DropReason::ValuesLenExceedsStride)
        );
        s.pool_id = 2;
        assert!(validate_slot(&s, 5, &pools()).is_ok());
    }

    #[test]
    fn w_8_2_empty_payload_is_valid() {
        let mut s = good(5);
        s.values_len_bytes = 0;
        assert!(validate_slot(&s, 5, &pools()).is_ok());
    }

    #[test]
    fn w_8_3_rejects_bad_embedded_header() {
        let emb = slot::TENSOR_HEADER_OFFSET;
        let cases: [(usize, &[u8], DropReason); 5] = [
            (
                slot::HEADER_BYTES_LEN_OFFSET,
                &184u32.to_le_bytes(),
                DropReason::HeaderBytesLength,
            ),
            (emb, &183u16.to_le_bytes(), DropReason::EmbeddedBlockLength),
            (
                emb + 2,
                &51u16.to_le_bytes(),
                DropReason::EmbeddedTemplateId,
            ),
            (emb + 4, &901u16.to_le_bytes(), DropReason::EmbeddedSchemaId),
            (emb + 6, &2u16.to_le_bytes(), DropReason::EmbeddedVersion),
        ];
        for (off, patch, reason) in cases {
            let mut b = bytes_of(&good(5));
            b[off..off + patch.len()].copy_from_slice(patch);
            assert_eq!(decode_slot(&b), Err(reason), "{reason:?}");
        }
    }

    #[test]
    fn w_15_8_rejects_unregistered_enum_values() {
        let body = slot::TENSOR_BODY_OFFSET;
        for dtype in [0i16, 12, 15, -1, i16::MAX] {
            let mut b = bytes_of(&good(5));
            b[body + tensor::DTYPE_OFFSET..][..2].copy_from_slice(&dtype.to_le_bytes());
            let r = decode_slot(&b).and_then(|s| validate_slot(&s, 5, &pools()).map(|_| ()));
            assert_eq!(r, Err(DropReason::UnknownDtype), "dtype {dtype}");
        }
        for order in [0i16, 3, -1] {
            let mut b = bytes_of(&good(5));
            b[body + tensor::MAJOR_ORDER_OFFSET..][..2].copy_from_slice(&order.to_le_bytes());
            let r = decode_slot(&b).and_then(|s| validate_slot(&s, 5, &pools()).map(|_| ()));
            assert_eq!(r, Err(DropReason::UnknownMajorOrder), "order {order}");
        }
        let mut b = bytes_of(&good(5));
        b[body + tensor::PROGRESS_UNIT_OFFSET] = 3;
        assert_eq!(decode_slot(&b), Err(DropReason::UnknownProgressUnit));
    }

    #[test]
    fn drop_reason_indices_are_dense() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }

    #[test]
    fn w_8_2_encode_decode_roundtrip() {
        let mut s = good(77);
        s.timestamp_ns = 0x0102_0304_0506_0708;
        s.meta_version = 9;
        assert_eq!(decode_slot(&bytes_of(&s)), Ok(s));
    }
}
