//! Schema 910 (`shm.tensorpool.discovery`): looking streams up by id, producer, data source,
//! name or tags.
//!
//! The `tags` groups are the one place where the generated code does not cover the schema.
//! Each tag is a u32 length followed by that many bytes. The schema declares that
//! length-prefixed composite as a `<field>` of the group, so sbe_gen lays it out as a fixed
//! 4-byte block with nothing after it and cannot reach the bytes. The peers write the tag
//! as var data after an empty block: the C vector's group header says blockLength 0
//! (`00 00 01 00`, then `04 00 00 00 "tag1"`), as does SBE.jl. The facade therefore codes
//! tags by hand ([`Entry`] for [`Bytes`]): it writes blockLength 0 like the C peer, and reads
//! by the group header's blockLength: 0, or at least 4 with the length at the start of the
//! block (how a fixed-block reading of the schema would write it).

use crate::cursor::{Reader, VAR_LEN_PREFIX, Writer};
use crate::generated::discovery as gs;
use crate::generated::discovery::types as g;
pub use crate::wire::PayloadPool;
use crate::{Bytes, DecodeError, EncodeError, Entry};

/// Schema id of the discovery schema.
pub const SCHEMA_ID: u16 = gs::DiscoveryRequest::SCHEMA_ID;
/// Schema version implemented.
pub const SCHEMA_VERSION: u16 = gs::DiscoveryRequest::SCHEMA_VERSION;

const TEXT_MAX: usize = gs::caps::varAsciiEncoding;

// The payload pool entry is shared with the wire schema: same layout, checked here.
const _: () = {
    use gs::discovery_response::payloadPoolsEntry as D;
    use std::mem::offset_of;
    type W = crate::generated::wire::shm_pool_announce::payloadPoolsEntry;
    assert!(size_of::<D>() == size_of::<W>());
    assert!(offset_of!(D, pool_id) == offset_of!(W, pool_id));
    assert!(offset_of!(D, pool_nslots) == offset_of!(W, pool_nslots));
    assert!(offset_of!(D, stride_bytes) == offset_of!(W, stride_bytes));
};

/// The generated (fixed-block) view of a tag entry: just the u32 length.
type TagEntry = gs::discovery_request::tagsEntry;
const _: () = assert!(size_of::<TagEntry>() == size_of::<gs::discovery_response::tagsEntry>());

/// A discovery tag, entry of the `tags` groups.
impl<'a> Entry<'a> for Bytes<'a> {
    const BLOCK_LENGTH: u16 = 0;
    #[allow(clippy::cast_possible_truncation)]
    const MIN_BLOCK_LENGTH: u16 = size_of::<TagEntry>() as u16;

    fn accepts_block_length(block_length: u16) -> bool {
        block_length == 0 || block_length >= Self::MIN_BLOCK_LENGTH
    }

    fn entry_len(&self) -> usize {
        VAR_LEN_PREFIX + self.len()
    }

    fn encode_entry(&self, dst: &mut [u8]) -> Result<usize, EncodeError> {
        let mut w = Writer::new(dst);
        w.var_data("tag", self, TEXT_MAX)?;
        Ok(w.pos())
    }

    fn decode_entry(buf: &'a [u8], block_length: u16) -> Result<(Self, usize), DecodeError> {
        let mut r = Reader::new(buf);
        let tag = if block_length == 0 {
            r.var_data("tag", TEXT_MAX)?
        } else {
            let e: &TagEntry = r.block("tag", usize::from(block_length))?;
            let len = e.tag.length.get() as usize;
            if len > TEXT_MAX {
                return Err(DecodeError::VarDataTooLong {
                    field: "tag",
                    len,
                    max: TEXT_MAX,
                });
            }
            Bytes::new(r.take(len, "tag")?)
        };
        Ok((tag, buf.len() - r.rest().len()))
    }
}

wire_enum! {
    /// Outcome of a discovery request.
    DiscoveryStatus(DiscoveryStatusEnum): u8 in [g] { Ok, NotFound, Error }
}

codec! {
    /// Query for matching streams; every filter is optional.
    message DiscoveryRequest<'a> = gs::DiscoveryRequest {
        /// Chosen by the client; echoed in the response.
        request_id: u64,
        /// Client id.
        client_id: u32,
        /// Stream the response goes to.
        response_stream_id: u32,
        /// Only this stream.
        stream_id: Option<u32> = null(u32::MAX, stream_id_opt),
        /// Only this producer.
        producer_id: Option<u32> = null(u32::MAX, producer_id_opt),
        /// Only this data source.
        data_source_id: Option<u64> = null(u64::MAX, data_source_id_opt),
    } groups {
        /// Only streams carrying all these tags.
        tags: Bytes<'a> = "tags",
    } data {
        /// Channel the response goes to.
        response_channel: TEXT_MAX,
        /// Only this data-source name (empty: any).
        data_source_name: TEXT_MAX,
    }
}

codec! {
    /// Streams matching a request.
    message DiscoveryResponse<'a> = gs::DiscoveryResponse {
        /// Request answered.
        request_id: u64,
        /// Outcome.
        status: DiscoveryStatus,
    } groups {
        /// Matching streams.
        results: DiscoveryResult<'a> = "results",
    } data {
        /// Reason for an error status.
        error_message: TEXT_MAX,
    }
}

codec! {
    /// One matching stream.
    entry DiscoveryResult<'a> = gs::discovery_response::resultsEntry {
        /// Stream id.
        stream_id: u32,
        /// Producer id.
        producer_id: u32,
        /// Region generation.
        epoch: u64,
        /// SHM layout version.
        layout_version: u32,
        /// Slots in the header ring.
        header_nslots: u32,
        /// Bytes per header slot.
        header_slot_bytes: u16,
        /// Tensor dimension capacity.
        max_dims: u8,
        /// Data-source id.
        data_source_id: Option<u64> = null(u64::MAX, data_source_id_opt),
        /// Control stream of the driver serving the stream.
        driver_control_stream_id: u32,
    } groups {
        /// Payload pools of the stream.
        payload_pools: PayloadPool<'a> = "payloadPools",
        /// Tags of the stream.
        tags: Bytes<'a> = "tags",
    } data {
        /// Region URI of the header ring.
        header_region_uri: TEXT_MAX,
        /// Data-source name.
        data_source_name: TEXT_MAX,
        /// Instance id of the driver.
        driver_instance_id: TEXT_MAX,
        /// Control channel of the driver.
        driver_control_channel: TEXT_MAX,
    }
}
