//! Data-source metadata (Wire Spec §10.3): `DataSourceMeta` encoded once per change and
//! resent periodically, `meta_version` bumped on every change, and meta blobs sent as
//! announce -> chunks (at most `CHUNK_MAX`, monotonic non-overlapping offsets covering
//! `[0, total_len)`) -> complete, with a CRC32C checksum (§10.3.3, §15.9).

use std::collections::VecDeque;

use tensorpool_codec::wire::{
    Attribute, DataSourceMeta, MetaBlobAnnounce, MetaBlobChunk, MetaBlobComplete,
};
use tensorpool_codec::{Bytes, EncodeError, Message};

use crate::control::{MessageSink, SendError, send, send_bytes};
use crate::meta::MetaAttribute;

#[derive(Debug)]
struct PendingBlob {
    meta_version: u32,
    blob_type: u32,
    data: Vec<u8>,
    checksum: u64,
    announced: bool,
    offset: usize,
}

/// Metadata of one data source.
#[derive(Debug, Default)]
pub(crate) struct Meta {
    pub version: u32,
    encoded: Option<Vec<u8>>,
    blobs: VecDeque<PendingBlob>,
}

impl Meta {
    /// Replaces the attributes: bumps `meta_version` and encodes `DataSourceMeta` once.
    pub fn set(
        &mut self,
        stream_id: u32,
        attrs: &[MetaAttribute],
        now_ns: u64,
    ) -> Result<u32, EncodeError> {
        self.set_version(stream_id, attrs, self.version.wrapping_add(1), now_ns)
    }

    /// Replaces the attributes with an explicit `version` (a re-publisher preserving the
    /// source's `meta_version`) and encodes `DataSourceMeta` once.
    pub fn set_version(
        &mut self,
        stream_id: u32,
        attrs: &[MetaAttribute],
        version: u32,
        now_ns: u64,
    ) -> Result<u32, EncodeError> {
        let entries: Vec<Attribute<'_>> = attrs
            .iter()
            .map(|a| Attribute {
                key: Bytes::new(a.key.as_bytes()),
                format: Bytes::new(a.format.as_bytes()),
                value: Bytes::new(&a.value),
            })
            .collect();
        let msg = DataSourceMeta {
            stream_id,
            meta_version: version,
            timestamp_ns: now_ns,
            attributes: entries.as_slice().into(),
        };
        self.encoded = Some(msg.encode_to_vec()?);
        self.version = version;
        Ok(version)
    }

    /// Sends the current `DataSourceMeta`, if any.
    pub fn send_meta(&self, p: &mut dyn MessageSink) -> Option<Result<(), SendError>> {
        self.encoded.as_deref().map(|b| send_bytes(p, b))
    }

    /// Queues a blob for the current `meta_version`.
    pub fn queue_blob(&mut self, blob_type: u32, data: Vec<u8>) {
        let checksum = u64::from(crc32c::crc32c(&data));
        self.blobs.push_back(PendingBlob {
            meta_version: self.version,
            blob_type,
            data,
            checksum,
            announced: false,
            offset: 0,
        });
    }

    /// Whether blob messages are waiting.
    pub fn has_blobs(&self) -> bool {
        !self.blobs.is_empty()
    }

    /// Sends up to `budget` blob messages; a refused message is retried next time (offsets
    /// only advance once a chunk is sent). Returns the messages sent.
    pub fn pump_blobs(
        &mut self,
        p: &mut dyn MessageSink,
        stream_id: u32,
        chunk_max: usize,
        budget: usize,
    ) -> Result<usize, SendError> {
        let mut sent = 0;
        while sent < budget {
            let Some(b) = self.blobs.front_mut() else {
                break;
            };
            if !b.announced {
                delivered(send(
                    p,
                    &MetaBlobAnnounce {
                        stream_id,
                        meta_version: b.meta_version,
                        blob_type: b.blob_type,
                        total_len: b.data.len() as u64,
                        checksum: b.checksum,
                    },
                ))?;
                b.announced = true;
            } else if b.offset < b.data.len() {
                let end = (b.offset + chunk_max).min(b.data.len());
                delivered(send(
                    p,
                    &MetaBlobChunk {
                        stream_id,
                        meta_version: b.meta_version,
                        chunk_offset: b.offset as u64,
                        bytes: Bytes::new(&b.data[b.offset..end]),
                    },
                ))?;
                b.offset = end;
            } else {
                delivered(send(
                    p,
                    &MetaBlobComplete {
                        stream_id,
                        meta_version: b.meta_version,
                        checksum: b.checksum,
                    },
                ))?;
                self.blobs.pop_front();
            }
            sent += 1;
        }
        Ok(sent)
    }
}

/// A broadcast nobody subscribes to counts as delivered (there is no repair in v1.2).
fn delivered(r: Result<(), SendError>) -> Result<(), SendError> {
    match r {
        Err(e) if e.is_not_connected() => Ok(()),
        other => other,
    }
}
