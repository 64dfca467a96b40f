//! Mapping the regions an announce names (Wire Spec §10.1.1, §15.1, §15.21a.5, §15.22): every
//! URI parsed and contained in the allowed base directories, every superblock checked against
//! the announce, all pools or nothing, read-only. Liveness afterwards: activity timestamp,
//! pid and epoch of the live superblock (§15.14).

use tensorpool_codec::wire::ShmPoolAnnounce;
use tensorpool_shm::superblock::is_activity_stale;
use tensorpool_shm::{
    AllowedBaseDirs, ExpectedRegion, HEADER_SLOT_BYTES, HeaderRing, MapOptions, OpenChecks,
    PayloadPool, PoolSet, ReadOnly, RegionUri,
};

/// What the consumer's configuration adds to every mapping: the header ring's activity must
/// be fresh at `now_ns` (before anything is mapped), and all regions together stay within
/// `max_mapped_bytes` (0: no cap).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub now_ns: u64,
    pub activity_window_ns: u64,
    pub max_mapped_bytes: u64,
}

impl Limits {
    /// Checks the announced geometry against the cap (nothing opened yet) and returns the
    /// checks for the header ring and for the pools.
    fn checks(&self, total: Option<u64>) -> Result<(OpenChecks, OpenChecks), MapFailure> {
        let cap = (self.max_mapped_bytes > 0).then_some(self.max_mapped_bytes);
        if let Some(cap) = cap
            && total.is_none_or(|t| t > cap)
        {
            return Err(MapFailure::TooLarge {
                total: total.unwrap_or(u64::MAX),
                cap,
            });
        }
        let pools = OpenChecks {
            activity: None,
            max_len: cap,
        };
        let ring = OpenChecks {
            activity: Some((self.now_ns, self.activity_window_ns)),
            ..pools
        };
        Ok((ring, pools))
    }
}

/// `64 + nslots * 256` plus `64 + nslots * stride` per pool; `None` on overflow.
fn total_len<I: IntoIterator<Item = (u32, u32)>>(header_nslots: u32, pools: I) -> Option<u64> {
    let ring = ExpectedRegion::header_ring(0, 0, 0, header_nslots).region_len()?;
    pools.into_iter().try_fold(ring, |acc, (nslots, stride)| {
        acc.checked_add(ExpectedRegion::payload_pool(0, 0, 0, 0, nslots, stride).region_len()?)
    })
}

/// Regions mapped for one epoch.
#[derive(Debug)]
pub(crate) struct Mapped {
    pub ring: HeaderRing<ReadOnly>,
    pub pools: PoolSet<ReadOnly>,
    pub epoch: u64,
    pub pid: u64,
}

/// Why an announce could not be mapped (a diagnostic; nothing stays mapped).
#[derive(Debug, thiserror::Error)]
pub(crate) enum MapFailure {
    #[error("header_slot_bytes is {0}; expected 256")]
    SlotBytes(u16),
    #[error("layout_version {found} is not the expected {expected}")]
    LayoutVersion { found: u32, expected: u32 },
    #[error("announce has no payload pool")]
    NoPools,
    #[error("the regions take {total} bytes; max_mapped_bytes is {cap}")]
    TooLarge { total: u64, cap: u64 },
    #[error("region URI `{uri}`: {reason}")]
    Uri { uri: String, reason: String },
    #[error("{0}")]
    Region(#[from] tensorpool_shm::RegionError),
    #[error("pools: {0}")]
    Pools(#[from] tensorpool_shm::PoolError),
}

fn uri(bytes: &[u8]) -> Result<RegionUri, MapFailure> {
    let text = std::str::from_utf8(bytes).map_err(|_| MapFailure::Uri {
        uri: String::from_utf8_lossy(bytes).into_owned(),
        reason: "not UTF-8".into(),
    })?;
    RegionUri::parse(text).map_err(|e| MapFailure::Uri {
        uri: text.to_owned(),
        reason: e.to_string(),
    })
}

/// Maps every region of `ann` read-only, or nothing.
pub(crate) fn map_announce(
    ann: &ShmPoolAnnounce<'_>,
    allowed: &AllowedBaseDirs,
    expected_layout_version: u32,
    limits: Limits,
) -> Result<Mapped, MapFailure> {
    if usize::from(ann.header_slot_bytes) != HEADER_SLOT_BYTES {
        return Err(MapFailure::SlotBytes(ann.header_slot_bytes));
    }
    if ann.layout_version != expected_layout_version {
        return Err(MapFailure::LayoutVersion {
            found: ann.layout_version,
            expected: expected_layout_version,
        });
    }
    if ann.payload_pools.is_empty() {
        return Err(MapFailure::NoPools);
    }
    let (lv, epoch, stream) = (ann.layout_version, ann.epoch, ann.stream_id);
    let opts = MapOptions::default();
    let total = total_len(
        ann.header_nslots,
        ann.payload_pools
            .iter()
            .map(|p| (p.pool_nslots, p.stride_bytes)),
    );
    let (ring_checks, pool_checks) = limits.checks(total)?;
    let ring_uri = uri(ann.header_region_uri.as_bytes())?;
    let expected = ExpectedRegion::header_ring(lv, epoch, stream, ann.header_nslots);
    let ring =
        HeaderRing::<ReadOnly>::open_checked(&ring_uri, allowed, &expected, opts, ring_checks)?;
    let mut pools = Vec::with_capacity(ann.payload_pools.len());
    for p in ann.payload_pools.iter() {
        let u = uri(p.region_uri.as_bytes())?;
        let e = ExpectedRegion::payload_pool(
            lv,
            epoch,
            stream,
            p.pool_id,
            p.pool_nslots,
            p.stride_bytes,
        );
        pools.push(PayloadPool::<ReadOnly>::open_checked(
            &u,
            allowed,
            &e,
            opts,
            pool_checks,
        )?);
    }
    let pools = PoolSet::new(pools, ring.nslots())?;
    let pid = ring.superblock().pid;
    Ok(Mapped {
        ring,
        pools,
        epoch,
        pid,
    })
}

/// Why a mapping must be dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Liveness {
    Alive,
    /// `activity_timestamp_ns` older than the timeout: the producer is gone.
    Stale,
    /// The live superblock changed (pid, epoch, magic): another writer or a recreation.
    Changed,
    /// A region file was truncated under the mapping: its pages are zeros now.
    Dead,
}

impl Mapped {
    /// Whether any region was truncated under the mapping (one flag load per region).
    pub fn is_dead(&self) -> bool {
        self.ring.is_dead() || self.pools.pools().iter().any(|p| p.is_dead())
    }

    /// Checks the live header-ring superblock.
    pub fn liveness(&self, now_ns: u64, timeout_ns: u64) -> Liveness {
        if self.is_dead() {
            return Liveness::Dead;
        }
        match self.ring.read_superblock() {
            // Reading it may have been what found the truncation.
            _ if self.is_dead() => Liveness::Dead,
            Err(_) => Liveness::Changed,
            Ok(sb) if sb.epoch != self.epoch || sb.pid != self.pid => Liveness::Changed,
            Ok(sb) if is_activity_stale(sb.activity_timestamp_ns, now_ns, timeout_ns) => {
                Liveness::Stale
            }
            Ok(_) => Liveness::Alive,
        }
    }
}

/// Maps the regions a driver lease names (already validated by the driver client; the
/// containment and superblock checks run again here, as for announces).
pub(crate) fn map_regions(
    r: &crate::client::Regions,
    allowed: &AllowedBaseDirs,
    limits: Limits,
) -> Result<Mapped, MapFailure> {
    let (lv, epoch, stream) = (r.layout_version, r.epoch, r.stream_id);
    let opts = MapOptions::default();
    let total = total_len(
        r.header_nslots,
        r.pools.iter().map(|p| (p.nslots, p.stride_bytes)),
    );
    let (ring_checks, pool_checks) = limits.checks(total)?;
    let expected = ExpectedRegion::header_ring(lv, epoch, stream, r.header_nslots);
    let ring =
        HeaderRing::<ReadOnly>::open_checked(&r.header_uri, allowed, &expected, opts, ring_checks)?;
    let mut pools = Vec::with_capacity(r.pools.len());
    for p in &r.pools {
        let e =
            ExpectedRegion::payload_pool(lv, epoch, stream, p.pool_id, p.nslots, p.stride_bytes);
        pools.push(PayloadPool::<ReadOnly>::open_checked(
            &p.uri,
            allowed,
            &e,
            opts,
            pool_checks,
        )?);
    }
    if pools.is_empty() {
        return Err(MapFailure::NoPools);
    }
    let pools = PoolSet::new(pools, ring.nslots())?;
    let pid = ring.superblock().pid;
    Ok(Mapped {
        ring,
        pools,
        epoch,
        pid,
    })
}
