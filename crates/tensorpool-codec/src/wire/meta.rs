//! Metadata messages of the wire schema.

use super::{DATA_MAX, TEXT_MAX, gw};

codec! {
    /// Inventory beacon of a data source.
    message DataSourceAnnounce<'a> = gw::DataSourceAnnounce {
        /// Stream of the data source.
        stream_id: u32,
        /// Producer id.
        producer_id: u32,
        /// Region generation.
        epoch: u64,
        /// Current metadata version.
        meta_version: u32,
    } data {
        /// Name of the data source.
        name: TEXT_MAX,
        /// Short description.
        summary: TEXT_MAX,
    }
}

codec! {
    /// Structured attributes of a data source.
    message DataSourceMeta<'a> = gw::DataSourceMeta {
        /// Stream of the data source.
        stream_id: u32,
        /// Metadata version these attributes belong to.
        meta_version: u32,
        /// When the attributes were produced.
        timestamp_ns: u64,
    } groups {
        /// The attributes.
        attributes: Attribute<'a> = "attributes",
    }
}

codec! {
    /// One attribute of `DataSourceMeta` (a group entry with no fixed fields).
    entry Attribute<'a> = gw::data_source_meta::attributesEntry {
    } data {
        /// Attribute name.
        key: TEXT_MAX,
        /// How `value` is encoded.
        format: TEXT_MAX,
        /// The value.
        value: DATA_MAX,
    }
}

codec! {
    /// Start of a large metadata blob.
    message MetaBlobAnnounce = gw::MetaBlobAnnounce {
        /// Stream of the data source.
        stream_id: u32,
        /// Metadata version of the blob.
        meta_version: u32,
        /// Application-defined blob type.
        blob_type: u32,
        /// Total length of the blob.
        total_len: u64,
        /// Checksum of the whole blob.
        checksum: u64,
    }
}

codec! {
    /// One piece of a metadata blob.
    message MetaBlobChunk<'a> = gw::MetaBlobChunk {
        /// Stream of the data source.
        stream_id: u32,
        /// Metadata version of the blob.
        meta_version: u32,
        /// Offset of this chunk in the blob.
        chunk_offset: u64,
    } data {
        /// The chunk's bytes.
        bytes: DATA_MAX,
    }
}

codec! {
    /// End of a metadata blob.
    message MetaBlobComplete = gw::MetaBlobComplete {
        /// Stream of the data source.
        stream_id: u32,
        /// Metadata version of the blob.
        meta_version: u32,
        /// Checksum of the whole blob.
        checksum: u64,
    }
}
