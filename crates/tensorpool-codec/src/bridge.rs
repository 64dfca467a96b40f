//! Schema 902 (`shm.tensorpool.bridge`): frames forwarded between hosts in chunks.

use crate::generated::bridge as gb;

/// Schema id of the bridge schema.
pub const SCHEMA_ID: u16 = gb::BridgeFrameChunk::SCHEMA_ID;
/// Schema version implemented.
pub const SCHEMA_VERSION: u16 = gb::BridgeFrameChunk::SCHEMA_VERSION;

/// Longest `header_bytes` (the schema's `varDataEncoding256`).
pub const HEADER_BYTES_MAX_LEN: usize = gb::caps::varDataEncoding256;
/// Longest `payload_bytes` (the schema's `varDataEncoding`).
pub const PAYLOAD_BYTES_MAX_LEN: usize = gb::caps::varDataEncoding;
/// Schema maximum of `chunk_index` and `chunk_count`. Not enforced by the codec.
pub const CHUNK_INDEX_MAX: u32 = gb::limits::BridgeFrameChunk_chunkIndex as u32;
/// Schema maximum of `chunk_length`. Not enforced by the codec.
pub const CHUNK_LENGTH_MAX: u32 = gb::limits::BridgeFrameChunk_chunkLength as u32;
/// Schema maximum of `payload_length`. Not enforced by the codec.
pub const PAYLOAD_LENGTH_MAX: u32 = gb::limits::BridgeFrameChunk_payloadLength as u32;

const _: () =
    assert!(gb::limits::BridgeFrameChunk_chunkCount == gb::limits::BridgeFrameChunk_chunkIndex);

codec! {
    /// One chunk of a bridged frame. Field order on the wire follows the schema document,
    /// not the field ids (12 and 13 sit in the middle).
    message BridgeFrameChunk<'a> = gb::BridgeFrameChunk {
        /// Stream of the frame (on the sending host).
        stream_id: u32,
        /// Region generation of the frame.
        epoch: u64,
        /// Frame sequence number.
        seq: u64,
        /// Trace id (null on the wire is 0).
        trace_id: Option<u64> = null(0, trace_id_opt),
        /// Index of this chunk.
        chunk_index: u32,
        /// Chunks in the frame.
        chunk_count: u32,
        /// Offset of this chunk in the payload.
        chunk_offset: u32,
        /// Payload bytes in this chunk.
        chunk_length: u32,
        /// Total payload length.
        payload_length: u32,
        /// CRC32C of the whole payload.
        payload_crc32c: u32,
        /// Whether `header_bytes` holds the slot header.
        header_included: bool,
    } data {
        /// Slot header bytes (first chunk), at most [`HEADER_BYTES_MAX_LEN`].
        header_bytes: HEADER_BYTES_MAX_LEN,
        /// This chunk's payload bytes.
        payload_bytes: PAYLOAD_BYTES_MAX_LEN,
    }
}
