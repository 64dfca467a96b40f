//! Structures stored in shared memory: the region superblock, the 256-byte header slot and
//! the tensor header embedded in it, with their byte offsets.
//!
//! Only the codec lives here. Semantic checks (ndims range, strides, epochs, the seqlock)
//! belong to the shared-memory layer, which also owns every atomic access: never encode a
//! [`SlotHeader`] straight over a live slot (see [`SlotHeader::encode_after_seq_commit`]).

use super::{Dtype, MajorOrder, ProgressUnit, RegionType, gw};
use crate::cursor::Reader;
use crate::{DecodeError, EncodeError, HEADER_LEN, Message, MessageHeader};

codec! {
    /// The first 64 bytes of every region file (no message header).
    block ShmRegionSuperblock = gw::ShmRegionSuperblock {
        /// Must be [`superblock::MAGIC`].
        magic: u64,
        /// SHM layout version.
        layout_version: u32,
        /// Region generation.
        epoch: u64,
        /// Stream the region belongs to.
        stream_id: u32,
        /// Header ring or payload pool.
        region_type: RegionType,
        /// Pool id (0 for the header ring).
        pool_id: u16,
        /// Number of slots.
        nslots: u32,
        /// Bytes per slot.
        slot_bytes: u32,
        /// Distance between slots.
        stride_bytes: u32,
        /// Process id of the writer.
        pid: u64,
        /// When the region was created.
        start_timestamp_ns: u64,
        /// Refreshed periodically by the writer; stale means the writer is gone.
        activity_timestamp_ns: u64,
    }
}

codec! {
    /// Type and shape of a frame. Stored in a [`SlotHeader`] with its own message header;
    /// as a [`Message`] it encodes and decodes with that header.
    message TensorHeader = gw::TensorHeader {
        /// Element type.
        dtype: Dtype,
        /// Row- or column-major.
        major_order: MajorOrder,
        /// Dimensions in use (the codec does not check the range).
        ndims: u8,
        /// Padding byte, kept so re-encoding reproduces the input.
        pad_align: u8,
        /// Unit of progressive fills.
        progress_unit: ProgressUnit,
        /// Bytes per progress unit (0 when `progress_unit` is NONE).
        progress_stride_bytes: u32,
        /// Size of each dimension; entries past `ndims` are zero.
        dims: [i32; tensor::MAX_DIMS],
        /// Byte stride of each dimension (0: contiguous).
        strides: [i32; tensor::MAX_DIMS],
        /// Trailing padding, kept so re-encoding reproduces the input.
        #[cfg_attr(feature = "serde", serde(with = "crate::serde_impls::hex_array"))]
        pad: [u8; tensor::PAD_LEN],
    }
}

/// One 256-byte header slot: the fixed SlotHeader fields, then `headerBytes` holding the
/// frame's [`TensorHeader`] with its message header (no message header of its own).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SlotHeader {
    /// Seqlock word: `seq << 1`, low bit set once committed. Written atomically by the
    /// shared-memory layer, never by this codec over a live slot.
    pub seq_commit: u64,
    /// Payload length (0 allowed).
    pub values_len_bytes: u32,
    /// Payload slot index.
    pub payload_slot: u32,
    /// Pool holding the payload.
    pub pool_id: u16,
    /// Offset of the payload in its slot.
    pub payload_offset: u32,
    /// Capture time.
    pub timestamp_ns: u64,
    /// Metadata version of the frame.
    pub meta_version: u32,
    /// Padding, kept so re-encoding reproduces the input.
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_impls::hex_array"))]
    pub pad: [u8; slot::PAD_LEN],
    /// The embedded tensor header.
    pub tensor: TensorHeader,
}

impl SlotHeader {
    /// Decodes a header slot. `headerBytes` must be exactly one TensorHeader with its
    /// message header: length 192, blockLength 184, templateId 52, schemaId 900, version 1.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf);
        let f: &gw::SlotHeader = r.block("SlotHeader", slot::HEADER_BYTES_LEN_OFFSET)?;
        let len = r.u32("SlotHeader.headerBytes")?;
        expect(
            "SlotHeader.headerBytes length",
            slot::HEADER_BYTES_LEN as u64,
            len.into(),
        )?;
        let embedded = r.take(slot::HEADER_BYTES_LEN, "SlotHeader.headerBytes")?;
        let h = MessageHeader::decode(embedded)?;
        let want = TensorHeader::header();
        expect(
            "embedded blockLength",
            want.block_length.into(),
            h.block_length.into(),
        )?;
        expect(
            "embedded templateId",
            want.template_id.into(),
            h.template_id.into(),
        )?;
        expect(
            "embedded schemaId",
            want.schema_id.into(),
            h.schema_id.into(),
        )?;
        expect("embedded version", want.version.into(), h.version.into())?;
        let body = embedded.get(HEADER_LEN..).unwrap_or_default();
        Ok(Self {
            seq_commit: f.seq_commit.get(),
            values_len_bytes: f.values_len_bytes.get(),
            payload_slot: f.payload_slot.get(),
            pool_id: f.pool_id.get(),
            payload_offset: f.payload_offset.get(),
            timestamp_ns: f.timestamp_ns.get(),
            meta_version: f.meta_version.get(),
            pad: f.pad,
            tensor: TensorHeader::decode_body(body, h.block_length, h.version)?,
        })
    }

    /// Encodes the whole slot ([`slot::LEN`] bytes, `seq_commit` included) at the start of
    /// `dst`, for a private buffer. Returns [`slot::LEN`].
    pub fn encode(&self, dst: &mut [u8]) -> Result<usize, EncodeError> {
        let have = dst.len();
        let dst = dst
            .get_mut(..slot::LEN)
            .ok_or(EncodeError::BufferTooSmall {
                need: slot::LEN,
                have,
            })?;
        let fixed = gw::SlotHeader {
            seq_commit: self.seq_commit.into(),
            values_len_bytes: self.values_len_bytes.into(),
            payload_slot: self.payload_slot.into(),
            pool_id: self.pool_id.into(),
            payload_offset: self.payload_offset.into(),
            timestamp_ns: self.timestamp_ns.into(),
            meta_version: self.meta_version.into(),
            pad: self.pad,
        };
        let mut w = crate::cursor::Writer::new(dst);
        w.block(&fixed)?;
        w.put(&(slot::HEADER_BYTES_LEN as u32).to_le_bytes())?;
        let n = self.tensor.encode(w.rest())?;
        w.advance(n);
        Ok(w.pos())
    }

    /// Encodes every byte of the slot after `seq_commit` (slot bytes
    /// `SEQ_COMMIT_OFFSET + 8 .. LEN`) at the start of `dst`, which represents slot byte 8.
    /// The shared-memory layer copies these into the slot between its two atomic stores of
    /// `seq_commit`. Returns `LEN - 8`.
    pub fn encode_after_seq_commit(&self, dst: &mut [u8]) -> Result<usize, EncodeError> {
        let mut whole = [0u8; slot::LEN];
        self.encode(&mut whole)?;
        let tail = whole.get(slot::SEQ_COMMIT_END..).unwrap_or_default();
        let have = dst.len();
        let dst = dst
            .get_mut(..tail.len())
            .ok_or(EncodeError::BufferTooSmall {
                need: tail.len(),
                have,
            })?;
        dst.copy_from_slice(tail);
        Ok(tail.len())
    }
}

fn expect(what: &'static str, expected: u64, found: u64) -> Result<(), DecodeError> {
    if expected == found {
        Ok(())
    } else {
        Err(DecodeError::Mismatch {
            what,
            expected,
            found,
        })
    }
}

/// Byte offsets in the region superblock (taken from the generated layout).
pub mod superblock {
    use super::gw::ShmRegionSuperblock as S;
    use std::mem::offset_of;

    /// Superblock length (every region's content starts after it).
    pub const LEN: usize = size_of::<S>();
    /// Required value of `magic`: ASCII `TPOLSHM1` read as a little-endian u64.
    pub const MAGIC: u64 = u64::from_le_bytes(*b"1MHSLPOT");
    /// Offset of `magic` (u64).
    pub const MAGIC_OFFSET: usize = offset_of!(S, magic);
    /// Offset of `layout_version` (u32).
    pub const LAYOUT_VERSION_OFFSET: usize = offset_of!(S, layout_version);
    /// Offset of `epoch` (u64, unaligned).
    pub const EPOCH_OFFSET: usize = offset_of!(S, epoch);
    /// Offset of `stream_id` (u32).
    pub const STREAM_ID_OFFSET: usize = offset_of!(S, stream_id);
    /// Offset of `region_type` (i16).
    pub const REGION_TYPE_OFFSET: usize = offset_of!(S, region_type);
    /// Offset of `pool_id` (u16).
    pub const POOL_ID_OFFSET: usize = offset_of!(S, pool_id);
    /// Offset of `nslots` (u32).
    pub const NSLOTS_OFFSET: usize = offset_of!(S, nslots);
    /// Offset of `slot_bytes` (u32).
    pub const SLOT_BYTES_OFFSET: usize = offset_of!(S, slot_bytes);
    /// Offset of `stride_bytes` (u32).
    pub const STRIDE_BYTES_OFFSET: usize = offset_of!(S, stride_bytes);
    /// Offset of `pid` (u64).
    pub const PID_OFFSET: usize = offset_of!(S, pid);
    /// Offset of `start_timestamp_ns` (u64).
    pub const START_TIMESTAMP_OFFSET: usize = offset_of!(S, start_timestamp_ns);
    /// Offset of `activity_timestamp_ns` (u64, 8-aligned: the one field refreshed in place).
    pub const ACTIVITY_TIMESTAMP_OFFSET: usize = offset_of!(S, activity_timestamp_ns);
}

/// Byte offsets in a 256-byte header slot (taken from the generated layout).
pub mod slot {
    use super::gw::SlotHeader as S;
    use std::mem::offset_of;

    /// Offset of `seq_commit` (u64): the only field accessed atomically.
    pub const SEQ_COMMIT_OFFSET: usize = offset_of!(S, seq_commit);
    /// First byte after `seq_commit`.
    pub const SEQ_COMMIT_END: usize = SEQ_COMMIT_OFFSET + size_of::<u64>();
    /// Offset of `values_len_bytes` (u32).
    pub const VALUES_LEN_OFFSET: usize = offset_of!(S, values_len_bytes);
    /// Offset of `payload_slot` (u32).
    pub const PAYLOAD_SLOT_OFFSET: usize = offset_of!(S, payload_slot);
    /// Offset of `pool_id` (u16).
    pub const POOL_ID_OFFSET: usize = offset_of!(S, pool_id);
    /// Offset of `payload_offset` (u32, unaligned).
    pub const PAYLOAD_OFFSET_OFFSET: usize = offset_of!(S, payload_offset);
    /// Offset of `timestamp_ns` (u64, unaligned).
    pub const TIMESTAMP_OFFSET: usize = offset_of!(S, timestamp_ns);
    /// Offset of `meta_version` (u32).
    pub const META_VERSION_OFFSET: usize = offset_of!(S, meta_version);
    /// Offset of the padding.
    pub const PAD_OFFSET: usize = offset_of!(S, pad);
    /// Offset of the `headerBytes` length prefix (the SlotHeader blockLength).
    pub const HEADER_BYTES_LEN_OFFSET: usize = S::BLOCK_LENGTH as usize;
    /// Length of the padding (it ends the fixed block).
    pub const PAD_LEN: usize = HEADER_BYTES_LEN_OFFSET - PAD_OFFSET;
    /// Offset of the embedded TensorHeader message header.
    pub const TENSOR_HEADER_OFFSET: usize = HEADER_BYTES_LEN_OFFSET + size_of::<u32>();
    /// Offset of the embedded TensorHeader body.
    pub const TENSOR_BODY_OFFSET: usize = TENSOR_HEADER_OFFSET + crate::HEADER_LEN;
    /// Required `headerBytes` length: TensorHeader message header plus its block.
    pub const HEADER_BYTES_LEN: usize = crate::HEADER_LEN + super::tensor::LEN;
    /// Slot length.
    pub const LEN: usize = TENSOR_HEADER_OFFSET + HEADER_BYTES_LEN;

    const _: () = assert!(size_of::<S>() == HEADER_BYTES_LEN_OFFSET);
    const _: () = assert!(LEN == 256);
}

/// Offsets within a TensorHeader body (add [`slot::TENSOR_BODY_OFFSET`] for the slot).
pub mod tensor {
    use super::gw::TensorHeader as T;
    use std::mem::offset_of;

    /// Capacity of `dims` and `strides` (the schema's `maxDims` constant, not on the wire).
    pub const MAX_DIMS: usize = T::MAX_DIMS as usize;
    /// Body length (the TensorHeader blockLength).
    pub const LEN: usize = T::BLOCK_LENGTH as usize;
    /// Offset of `dtype` (i16).
    pub const DTYPE_OFFSET: usize = offset_of!(T, dtype);
    /// Offset of `major_order` (i16).
    pub const MAJOR_ORDER_OFFSET: usize = offset_of!(T, major_order);
    /// Offset of `ndims` (u8).
    pub const NDIMS_OFFSET: usize = offset_of!(T, ndims);
    /// Offset of `progress_unit` (u8).
    pub const PROGRESS_UNIT_OFFSET: usize = offset_of!(T, progress_unit);
    /// Offset of `progress_stride_bytes` (u32, unaligned).
    pub const PROGRESS_STRIDE_OFFSET: usize = offset_of!(T, progress_stride_bytes);
    /// Offset of `dims` (i32 array, unaligned).
    pub const DIMS_OFFSET: usize = offset_of!(T, dims);
    /// Offset of `strides` (i32 array, unaligned).
    pub const STRIDES_OFFSET: usize = offset_of!(T, strides);
    /// Offset of the trailing padding.
    pub const PAD_OFFSET: usize = offset_of!(T, pad);
    /// Length of the trailing padding.
    pub const PAD_LEN: usize = LEN - PAD_OFFSET;
}
