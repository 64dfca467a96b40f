//! Checks of every `code=OK` attach response and every announce before anything is mapped
//! (Driver Model §4.2, §4.7a; Wire Spec §10.1.1, §15.22): any failure is a protocol error,
//! and the client drops the attach and attaches again.

use tensorpool_codec::driver::ShmAttachResponse;
use tensorpool_codec::wire::{PayloadPool, ShmPoolAnnounce};
use tensorpool_codec::{Bytes, Group};
use tensorpool_shm::{AllowedBaseDirs, HEADER_SLOT_BYTES, RegionUri};

/// What is wrong with a response or announce.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A field required with `code=OK` is null.
    #[error("code=OK but {0} is null")]
    MissingField(&'static str),
    /// `headerSlotBytes` is not 256.
    #[error("headerSlotBytes is {0}, expected 256")]
    HeaderSlotBytes(u16),
    /// `headerNslots` is 0 or not a power of two.
    #[error("headerNslots {0} is not a power of two")]
    HeaderNslots(u32),
    /// No payload pool.
    #[error("the payloadPools group is empty")]
    NoPools,
    /// A pool's slot count differs from the header ring's.
    #[error("pool {pool_id} has poolNslots {found}, expected headerNslots {expected}")]
    PoolNslots {
        /// The pool.
        pool_id: u16,
        /// Its nslots.
        found: u32,
        /// headerNslots.
        expected: u32,
    },
    /// A stride is not a non-zero multiple of 64.
    #[error("pool {pool_id} strideBytes {stride} is not a non-zero multiple of 64")]
    Stride {
        /// The pool.
        pool_id: u16,
        /// Its stride.
        stride: u32,
    },
    /// A URI is empty, not valid or outside the allowed base directories.
    #[error("{field}: {reason}")]
    Uri {
        /// Which URI.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The response names another stream than requested.
    #[error("streamId {found} differs from the requested {expected}")]
    StreamId {
        /// Requested.
        expected: u32,
        /// Answered.
        found: u32,
    },
    /// A message for us could not be decoded (unknown enum, truncated...).
    #[error("undecodable driver message: {0}")]
    Undecodable(tensorpool_codec::DecodeError),
}

/// One payload pool of an epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolRegion {
    /// Pool id.
    pub pool_id: u16,
    /// Slots (= header slots).
    pub nslots: u32,
    /// Bytes per slot.
    pub stride_bytes: u32,
    /// Where the pool file is.
    pub uri: RegionUri,
}

/// The regions of one epoch of a stream: what a producer or consumer maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regions {
    /// Stream id.
    pub stream_id: u32,
    /// Epoch.
    pub epoch: u64,
    /// SHM layout version.
    pub layout_version: u32,
    /// Header ring slots.
    pub header_nslots: u32,
    /// Header ring URI.
    pub header_uri: RegionUri,
    /// Payload pools.
    pub pools: Vec<PoolRegion>,
}

/// A granted lease and its regions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachInfo {
    /// Lease id.
    pub lease_id: u64,
    /// Client id the lease was granted to.
    pub client_id: u32,
    /// Node id assigned, if any.
    pub node_id: Option<u32>,
    /// Hard deadline of the first keepalive (driver clock), if the driver gave one.
    pub lease_expiry_ns: Option<u64>,
    /// The regions.
    pub regions: Regions,
}

fn required<T>(v: Option<T>, field: &'static str) -> Result<T, ProtocolError> {
    v.ok_or(ProtocolError::MissingField(field))
}

fn uri(
    bytes: &Bytes<'_>,
    field: &'static str,
    allowed: Option<&AllowedBaseDirs>,
) -> Result<RegionUri, ProtocolError> {
    let bad = |reason: String| ProtocolError::Uri { field, reason };
    let text = bytes.as_str().map_err(|_| bad("not UTF-8".into()))?;
    if text.trim().is_empty() {
        return Err(bad("empty or blank".into()));
    }
    let uri = RegionUri::parse(text).map_err(|e| bad(e.to_string()))?;
    if let Some(allowed) = allowed {
        allowed.check(uri.path()).map_err(|e| bad(e.to_string()))?;
    }
    Ok(uri)
}

#[allow(clippy::too_many_arguments)] // the fields of the two message types, spelled out
fn regions(
    stream_id: u32,
    epoch: u64,
    layout_version: u32,
    header_nslots: u32,
    header_slot_bytes: u16,
    pools: &Group<'_, PayloadPool<'_>>,
    header_uri: &Bytes<'_>,
    allowed: Option<&AllowedBaseDirs>,
) -> Result<Regions, ProtocolError> {
    if usize::from(header_slot_bytes) != HEADER_SLOT_BYTES {
        return Err(ProtocolError::HeaderSlotBytes(header_slot_bytes));
    }
    if !header_nslots.is_power_of_two() {
        return Err(ProtocolError::HeaderNslots(header_nslots));
    }
    if pools.is_empty() {
        return Err(ProtocolError::NoPools);
    }
    let mut out = Vec::with_capacity(pools.len());
    for p in pools.iter() {
        if p.pool_nslots != header_nslots {
            return Err(ProtocolError::PoolNslots {
                pool_id: p.pool_id,
                found: p.pool_nslots,
                expected: header_nslots,
            });
        }
        if p.stride_bytes == 0 || !p.stride_bytes.is_multiple_of(64) {
            return Err(ProtocolError::Stride {
                pool_id: p.pool_id,
                stride: p.stride_bytes,
            });
        }
        out.push(PoolRegion {
            pool_id: p.pool_id,
            nslots: p.pool_nslots,
            stride_bytes: p.stride_bytes,
            uri: uri(&p.region_uri, "payloadPools.regionUri", allowed)?,
        });
    }
    Ok(Regions {
        stream_id,
        epoch,
        layout_version,
        header_nslots,
        header_uri: uri(header_uri, "headerRegionUri", allowed)?,
        pools: out,
    })
}

/// Validates a `code=OK` response to our attach for `stream_id`.
pub fn validate_attach(
    r: &ShmAttachResponse<'_>,
    stream_id: u32,
    client_id: u32,
    allowed: Option<&AllowedBaseDirs>,
) -> Result<AttachInfo, ProtocolError> {
    let lease_id = required(r.lease_id, "leaseId")?;
    let answered = required(r.stream_id, "streamId")?;
    let epoch = required(r.epoch, "epoch")?;
    let layout_version = required(r.layout_version, "layoutVersion")?;
    let header_nslots = required(r.header_nslots, "headerNslots")?;
    let header_slot_bytes = required(r.header_slot_bytes, "headerSlotBytes")?;
    // a dynamic stream may be created under another id than the one asked for (§11)
    let _ = stream_id;
    let regions = regions(
        answered,
        epoch,
        layout_version,
        header_nslots,
        header_slot_bytes,
        &r.payload_pools,
        &r.header_region_uri,
        allowed,
    )?;
    Ok(AttachInfo {
        lease_id,
        client_id,
        node_id: r.node_id,
        lease_expiry_ns: r.lease_expiry_timestamp_ns,
        regions,
    })
}

/// Validates an announce of our stream.
pub fn validate_announce(
    a: &ShmPoolAnnounce<'_>,
    allowed: Option<&AllowedBaseDirs>,
) -> Result<Regions, ProtocolError> {
    regions(
        a.stream_id,
        a.epoch,
        a.layout_version,
        a.header_nslots,
        a.header_slot_bytes,
        &a.payload_pools,
        &a.header_region_uri,
        allowed,
    )
}
