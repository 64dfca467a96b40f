//! The receiver's checks of one `BridgeFrameChunk` (Bridge Spec §5.2, §5.4), apart from what
//! depends on the receiver (which stream ids it takes, which epoch is current): the message
//! is gated on schema 902 and decoded ([`decode_chunk`]), then every field rule is checked
//! and the chunk is turned into the [`ChunkRef`] an [`super::Assembler`] places
//! ([`check_fields`]). A chunk that breaks a rule is a [`ChunkDrop`], never a panic.

use tensorpool_codec::Message;
use tensorpool_codec::bridge::{self as br, BridgeFrameChunk};
use tensorpool_shm::HEADER_SLOT_BYTES;

use super::assembly::ChunkRef;
use super::send::chunk_crc;
use crate::control::{Gate, gate};

/// Why a chunk was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkDrop {
    /// Not a decodable `BridgeFrameChunk` of schema 902.
    Malformed,
    /// No mapping (bridge) or not the consumer's stream: not ours.
    UnknownStream,
    /// No forwarded announce yet for the mapping (bridge).
    NoAnnounce,
    /// Not the epoch of the most recent announce (bridge), or older than the highest epoch
    /// seen (fallback consumer, Bridge Spec §8).
    Epoch,
    /// `chunkCount` 0 or above 65535, or `chunkIndex >= chunkCount`.
    Index,
    /// `headerIncluded` not TRUE exactly on chunk 0, or `headerBytes` not 256 / 0 bytes.
    Header,
    /// `chunkOffset` not 0 on chunk 0, or offset + length past `payloadLength`.
    Offset,
    /// `payloadBytes` length differs from `chunkLength`, or an empty chunk of a non-empty
    /// frame.
    Length,
    /// `chunkLength` above the chunk bound (`chunk_bytes`, MTU - 128, `max_chunk_bytes`).
    ChunkTooLong,
    /// `payloadLength` above `max_payload_bytes` or the largest buffer.
    PayloadTooLong,
    /// CRC32C missing (integrity required) or wrong.
    Crc,
}

/// The receiver's bounds for [`check_fields`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLimits {
    /// Largest `chunkLength` taken.
    pub chunk_bytes: u32,
    /// Largest `payloadLength` taken (`max_payload_bytes`, and the assembly buffer size).
    pub max_payload_bytes: u32,
    /// Integrity on: `payloadCrc32c` must be present (non-zero) and match.
    pub require_crc: bool,
    /// Integrity off: a non-zero `payloadCrc32c` is still checked (a sender that fills it in
    /// means it). The bridge receiver, as the spec words it, ignores it (false).
    pub check_present_crc: bool,
}

/// Gates `msg` on schema 902 / `BridgeFrameChunk` and decodes it.
pub fn decode_chunk(msg: &[u8]) -> Result<BridgeFrameChunk<'_>, ChunkDrop> {
    match gate(msg, br::SCHEMA_ID, br::SCHEMA_VERSION) {
        Gate::Accept(h) if h.template_id == <BridgeFrameChunk<'_> as Message<'_>>::TEMPLATE_ID => {}
        _ => return Err(ChunkDrop::Malformed),
    }
    BridgeFrameChunk::decode(msg).map_err(|_| ChunkDrop::Malformed)
}

/// Every §5.2 field rule, then the CRC32C of §5.4; on success the chunk as an assembler
/// places it. On [`ChunkDrop::Crc`] the caller should also kill the frame in its assembler
/// ([`super::Assembler::kill_frame`]): later chunks of it cannot complete it.
pub fn check_fields<'c>(
    c: &'c BridgeFrameChunk<'c>,
    limits: ChunkLimits,
) -> Result<ChunkRef<'c>, ChunkDrop> {
    if c.chunk_count == 0 || c.chunk_count > br::CHUNK_INDEX_MAX || c.chunk_index >= c.chunk_count {
        return Err(ChunkDrop::Index);
    }
    let first = c.chunk_index == 0;
    if c.header_included != first {
        return Err(ChunkDrop::Header);
    }
    let expect_header = if first { HEADER_SLOT_BYTES } else { 0 };
    if c.header_bytes.len() != expect_header {
        return Err(ChunkDrop::Header);
    }
    if first && c.chunk_offset != 0 {
        return Err(ChunkDrop::Offset);
    }
    if c.payload_bytes.len() != c.chunk_length as usize {
        return Err(ChunkDrop::Length);
    }
    if c.chunk_length > limits.chunk_bytes {
        return Err(ChunkDrop::ChunkTooLong);
    }
    if c.payload_length > limits.max_payload_bytes {
        return Err(ChunkDrop::PayloadTooLong);
    }
    if u64::from(c.chunk_offset) + u64::from(c.chunk_length) > u64::from(c.payload_length) {
        return Err(ChunkDrop::Offset);
    }
    if c.chunk_length == 0 && c.payload_length != 0 {
        return Err(ChunkDrop::Length);
    }
    let header = first.then(|| c.header_bytes.as_bytes());
    let payload = c.payload_bytes.as_bytes();
    let check = limits.require_crc || (limits.check_present_crc && c.payload_crc32c != 0);
    if check && (c.payload_crc32c == 0 || c.payload_crc32c != chunk_crc(header, payload)) {
        return Err(ChunkDrop::Crc);
    }
    Ok(ChunkRef {
        epoch: c.epoch,
        seq: c.seq,
        trace_id: c.trace_id.unwrap_or(0),
        chunk_index: c.chunk_index,
        chunk_count: c.chunk_count,
        chunk_offset: c.chunk_offset,
        payload_length: c.payload_length,
        header,
        payload,
    })
}
