//! Data-source metadata on the consumer side (Wire Spec §10.3): the latest
//! `DataSourceAnnounce` and `DataSourceMeta`, and meta blob reassembly. A blob is kept only
//! if its chunks arrive in order without gap or overlap, cover `[0, total_len)` exactly and
//! match the CRC32C checksum (0 = no checksum); anything else is discarded (no repair in
//! v1.2, §10.3.3).

use tensorpool_codec::wire::{
    DataSourceAnnounce, DataSourceMeta, MetaBlobAnnounce, MetaBlobChunk, MetaBlobComplete,
};

use crate::meta::MetaAttribute;

/// A reassembled, verified meta blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaBlob {
    /// Metadata version the blob belongs to.
    pub meta_version: u32,
    /// Application-defined type.
    pub blob_type: u32,
    /// The bytes.
    pub data: Vec<u8>,
}

/// Why a blob was discarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobDiscard {
    /// A chunk started after the bytes received so far.
    Gap,
    /// A chunk started before the bytes received so far, or ran past the total length.
    Overlap,
    /// The checksum did not match.
    Checksum,
    /// The announced length exceeds the configured maximum.
    TooLarge,
    /// A new announce or complete arrived before the blob was whole.
    Incomplete,
}

#[derive(Debug)]
struct Assembly {
    meta_version: u32,
    blob_type: u32,
    total: u64,
    checksum: u64,
    data: Vec<u8>,
}

/// What the consumer knows of its data source's metadata.
#[derive(Debug, Default)]
pub(crate) struct MetaStore {
    pub name: Option<String>,
    pub announced_version: Option<u32>,
    pub version: Option<u32>,
    pub attributes: Vec<MetaAttribute>,
    pub blob: Option<MetaBlob>,
    pub last_discard: Option<BlobDiscard>,
    assembly: Option<Assembly>,
}

/// Outcome of a blob message.
pub(crate) enum BlobEvent {
    None,
    Completed,
    Discarded,
}

impl MetaStore {
    pub fn on_announce(&mut self, a: &DataSourceAnnounce<'_>) {
        if self.name.as_deref().map(str::as_bytes) != Some(a.name.as_bytes()) {
            self.name = Some(String::from_utf8_lossy(a.name.as_bytes()).into_owned());
        }
        self.announced_version = Some(a.meta_version);
    }

    /// Stores attributes of a new version; returns whether anything changed.
    pub fn on_meta(&mut self, m: &DataSourceMeta<'_>) -> bool {
        if self.version == Some(m.meta_version) {
            return false;
        }
        self.version = Some(m.meta_version);
        self.attributes = m
            .attributes
            .iter()
            .map(|a| MetaAttribute {
                key: String::from_utf8_lossy(a.key.as_bytes()).into_owned(),
                format: String::from_utf8_lossy(a.format.as_bytes()).into_owned(),
                value: a.value.as_bytes().to_vec(),
            })
            .collect();
        true
    }

    fn discard(&mut self, why: BlobDiscard) -> BlobEvent {
        self.assembly = None;
        self.last_discard = Some(why);
        BlobEvent::Discarded
    }

    pub fn on_blob_announce(&mut self, a: &MetaBlobAnnounce, max: u64) -> BlobEvent {
        let replaced = self.assembly.is_some();
        if a.total_len > max {
            return self.discard(BlobDiscard::TooLarge);
        }
        self.assembly = Some(Assembly {
            meta_version: a.meta_version,
            blob_type: a.blob_type,
            total: a.total_len,
            checksum: a.checksum,
            data: Vec::with_capacity(usize::try_from(a.total_len).unwrap_or(0)),
        });
        if replaced {
            self.last_discard = Some(BlobDiscard::Incomplete);
            return BlobEvent::Discarded;
        }
        BlobEvent::None
    }

    pub fn on_blob_chunk(&mut self, c: &MetaBlobChunk<'_>) -> BlobEvent {
        let Some(a) = self.assembly.as_mut() else {
            return BlobEvent::None;
        };
        if a.meta_version != c.meta_version {
            return BlobEvent::None;
        }
        let received = a.data.len() as u64;
        let end = c.chunk_offset.saturating_add(c.bytes.len() as u64);
        if c.chunk_offset > received {
            return self.discard(BlobDiscard::Gap);
        }
        if c.chunk_offset < received || end > a.total {
            return self.discard(BlobDiscard::Overlap);
        }
        a.data.extend_from_slice(c.bytes.as_bytes());
        BlobEvent::None
    }

    pub fn on_blob_complete(&mut self, c: &MetaBlobComplete) -> BlobEvent {
        let Some(a) = self.assembly.take() else {
            return BlobEvent::None;
        };
        if a.meta_version != c.meta_version {
            self.assembly = Some(a);
            return BlobEvent::None;
        }
        if a.data.len() as u64 != a.total {
            return self.discard(BlobDiscard::Incomplete);
        }
        let crc = u64::from(crc32c::crc32c(&a.data));
        let claimed = [a.checksum, c.checksum];
        if claimed.iter().any(|&k| k != 0 && k != crc) {
            return self.discard(BlobDiscard::Checksum);
        }
        self.blob = Some(MetaBlob {
            meta_version: a.meta_version,
            blob_type: a.blob_type,
            data: a.data,
        });
        BlobEvent::Completed
    }
}
