//! The region files of an epoch: created atomically under the canonical layout by the shm
//! crate, then opened and validated exactly as a consumer would (Driver Model §9: URI
//! syntax, containment in `shm.allowed_base_dirs`, regular file, no-follow open, superblock
//! against the announced geometry), and kept mapped while the epoch is live: for the
//! activity timestamp and, with `policies.mlock_shm`, to hold the pages locked.

use std::path::Path;

use tensorpool_codec::EncodedGroup;
use tensorpool_codec::driver::PayloadPool as PoolEntry;
use tensorpool_shm::{
    AllowedBaseDirs, CreateOptions, EpochSpec, ExpectedRegion, HeaderRing, LayoutError, MapOptions,
    PayloadPool, PoolGeometry, ReadWrite, RegionError, RegionUri, ShmLayout, UriError,
};

use super::config::Profile;

/// Why an epoch could not be provisioned.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// Creating the files failed.
    #[error("creating the epoch failed: {0}")]
    Create(#[from] LayoutError),
    /// Our own files failed the consumer-side validation.
    #[error("the driver's own region failed validation: {0}")]
    Validate(#[from] RegionError),
    /// A URI could not be built.
    #[error("region URI: {0}")]
    Uri(#[from] UriError),
    /// The pool group could not be encoded.
    #[error("encoding the pool group failed: {0}")]
    Encode(#[from] tensorpool_codec::EncodeError),
    /// No epoch number is left (u64 exhausted).
    #[error("epoch space exhausted")]
    EpochExhausted,
    /// `mlock` failed with `policies.mlock_shm = true`: fatal (Driver Model §17).
    #[error("mlock of SHM regions failed with policies.mlock_shm = true: {0}")]
    Mlock(RegionError),
}

/// Settings that do not change while the driver runs.
#[derive(Debug)]
pub(crate) struct FileSettings {
    pub layout: ShmLayout,
    pub allowed: AllowedBaseDirs,
    pub prefault: bool,
    pub mlock: bool,
    /// `shm.base_dir` is on hugetlbfs: regions are hugepage-backed and say so in their URIs.
    pub hugepages: bool,
    pub pid: u64,
    pub layout_version: u32,
    /// The file system of the base directory, for error texts (`/dev/shm (tmpfs)`).
    pub mount: String,
}

/// The files of a stream's live epoch, validated and mapped.
#[derive(Debug)]
pub(crate) struct LiveEpoch {
    pub epoch: u64,
    pub header_nslots: u32,
    pub header_uri: String,
    /// The `payloadPools` group, encoded once: every response and announce copies it.
    pub pools: EncodedGroup<PoolEntry<'static>>,
    pub ring: HeaderRing<ReadWrite>,
    pub pool_maps: Vec<PayloadPool<ReadWrite>>,
    /// Last `activity_timestamp_ns` the driver wrote.
    pub last_written_activity: u64,
    /// The producer refreshes the activity timestamp itself (delegation, Driver Model §3).
    pub producer_refreshes: bool,
}

impl LiveEpoch {
    /// Writes `now_ns` into every superblock's activity timestamp.
    pub fn refresh_activity(&mut self, now_ns: u64) {
        self.ring.refresh_activity(now_ns);
        for p in &self.pool_maps {
            p.refresh_activity(now_ns);
        }
        self.last_written_activity = now_ns;
    }

    /// The header ring's current activity timestamp.
    pub fn activity(&self) -> u64 {
        self.ring.activity_timestamp_ns()
    }
}

/// `max(previous + 1, now_ns)` (PITFALLS #10); never the null value `u64::MAX`.
pub(crate) fn next_epoch(previous: u64, now_ns: u64) -> Option<u64> {
    let e = previous.checked_add(1)?.max(now_ns);
    (e < u64::MAX).then_some(e)
}

/// Creates epoch `epoch` of `stream_id` with `profile`'s geometry, then validates and maps
/// it. If the directory already exists (another process?), the next epoch is tried once.
pub(crate) fn provision(
    s: &FileSettings,
    stream_id: u32,
    profile: &Profile,
    epoch: u64,
    now_ns: u64,
) -> Result<LiveEpoch, ProvisionError> {
    let pools: Vec<PoolGeometry> = profile
        .payload_pools
        .iter()
        .map(|p| PoolGeometry {
            pool_id: p.pool_id,
            stride_bytes: p.stride_bytes,
            nslots: profile.header_nslots,
        })
        .collect();
    let mut spec = EpochSpec {
        layout_version: s.layout_version,
        stream_id,
        epoch,
        header_nslots: profile.header_nslots,
        pools,
    };
    let opts = CreateOptions {
        prefault: s.prefault,
        pid: s.pid,
        now_ns,
    };
    let created = match s.layout.create_epoch(&spec, opts) {
        Err(LayoutError::AlreadyExists(_)) => {
            spec.epoch = next_epoch(epoch, now_ns).ok_or(ProvisionError::EpochExhausted)?;
            s.layout.create_epoch(&spec, opts)?
        }
        other => other?,
    };
    let opened = open_epoch(s, &spec, &created.header_uri, &created.pool_uris);
    if opened.is_err() {
        let _ = s.layout.remove_epoch(stream_id, spec.epoch);
    }
    opened
}

fn uri(s: &FileSettings, created: &RegionUri) -> Result<RegionUri, UriError> {
    RegionUri::new(created.path(), s.hugepages.then_some(true))
}

fn map_opts(s: &FileSettings) -> MapOptions {
    MapOptions {
        prefault: false,
        mlock: s.mlock,
    }
}

fn mlock_or(s: &FileSettings, e: RegionError) -> ProvisionError {
    if s.mlock
        && matches!(
            e,
            RegionError::Map {
                source: tensorpool_shm::MapError::Mlock { .. },
                ..
            }
        )
    {
        ProvisionError::Mlock(e)
    } else {
        ProvisionError::Validate(e)
    }
}

fn open_epoch(
    s: &FileSettings,
    spec: &EpochSpec,
    header_uri: &RegionUri,
    pool_uris: &[(u16, RegionUri)],
) -> Result<LiveEpoch, ProvisionError> {
    let header_uri = uri(s, header_uri)?;
    let expected = ExpectedRegion::header_ring(
        spec.layout_version,
        spec.epoch,
        spec.stream_id,
        spec.header_nslots,
    );
    let ring = HeaderRing::<ReadWrite>::open(&header_uri, &s.allowed, &expected, map_opts(s))
        .map_err(|e| mlock_or(s, e))?;
    let mut entries = Vec::with_capacity(spec.pools.len());
    let mut pool_maps = Vec::with_capacity(spec.pools.len());
    for (geometry, (_, created)) in spec.pools.iter().zip(pool_uris) {
        let u = uri(s, created)?;
        let expected = ExpectedRegion::payload_pool(
            spec.layout_version,
            spec.epoch,
            spec.stream_id,
            geometry.pool_id,
            geometry.nslots,
            geometry.stride_bytes,
        );
        pool_maps.push(
            PayloadPool::<ReadWrite>::open(&u, &s.allowed, &expected, map_opts(s))
                .map_err(|e| mlock_or(s, e))?,
        );
        entries.push(PoolEntry {
            pool_id: geometry.pool_id,
            pool_nslots: geometry.nslots,
            stride_bytes: geometry.stride_bytes,
            region_uri: u.to_string().into(),
        });
    }
    Ok(LiveEpoch {
        epoch: spec.epoch,
        header_nslots: spec.header_nslots,
        header_uri: header_uri.to_string(),
        pools: EncodedGroup::new(&entries)?,
        ring,
        pool_maps,
        last_written_activity: 0,
        producer_refreshes: false,
    })
}

/// The highest epoch directory under `stream_dir` (numeric names only), 0 when none: after a
/// restart the next epoch must exceed it (Driver Model §10).
pub(crate) fn highest_epoch_on_disk(stream_dir: &Path) -> u64 {
    epochs_on_disk(stream_dir).into_iter().max().unwrap_or(0)
}

/// The numeric epoch directories under `stream_dir`, unsorted (missing dir: none).
pub(crate) fn epochs_on_disk(stream_dir: &Path) -> Vec<u64> {
    let Ok(rd) = std::fs::read_dir(stream_dir) else {
        return Vec::new();
    };
    rd.filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u64>().ok()))
        .collect()
}

/// Whether `dir` is on hugetlbfs, from the mount table (longest mount point that contains
/// it). Unknown (no mount table) counts as not hugetlbfs.
pub(crate) fn is_on_hugetlbfs(dir: &Path) -> bool {
    tensorpool_shm::paths::mount_of(dir).is_some_and(|m| m.fs_type == "hugetlbfs")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_follow_max_previous_plus_one_now() {
        assert_eq!(next_epoch(5, 3), Some(6));
        assert_eq!(next_epoch(5, 1_000), Some(1_000));
        assert_eq!(next_epoch(u64::MAX - 1, 0), None);
        assert_eq!(next_epoch(u64::MAX, 0), None);
    }

    #[test]
    fn tmp_is_not_hugetlbfs() {
        assert!(!is_on_hugetlbfs(&std::env::temp_dir()));
    }
}
