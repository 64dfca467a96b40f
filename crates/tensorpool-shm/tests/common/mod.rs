//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use tensorpool_shm::layout::{CreateOptions, CreatedEpoch, EpochSpec, FileModes, ShmLayout};
use tensorpool_shm::{
    AllowedBaseDirs, ExpectedRegion, HeaderRing, LAYOUT_VERSION, MapOptions, Mode, PayloadPool,
    PoolGeometry, PoolSet,
};

/// A temp dir on tmpfs when available (removed on drop).
pub fn shm_tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("tp-shm-test-")
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::Builder::new().prefix("tp-shm-test-").tempdir())
        .expect("tempdir")
}

/// One stream created under a temp dir.
pub struct Stream {
    pub tmp: tempfile::TempDir,
    pub base: PathBuf,
    pub layout: ShmLayout,
    pub allowed: AllowedBaseDirs,
    pub created: CreatedEpoch,
    pub spec: EpochSpec,
}

pub const STREAM_ID: u32 = 10_000;
pub const EPOCH: u64 = 1_700_000_000_000_000_000;

pub fn create_stream(nslots: u32, strides: &[u32]) -> Stream {
    let tmp = shm_tempdir();
    create_stream_in(tmp, nslots, strides)
}

pub fn create_stream_in(tmp: tempfile::TempDir, nslots: u32, strides: &[u32]) -> Stream {
    let base = tmp.path().join("tp");
    let layout = ShmLayout::for_user(&base, "tester", "default", FileModes::default()).unwrap();
    let spec = EpochSpec {
        layout_version: LAYOUT_VERSION,
        stream_id: STREAM_ID,
        epoch: EPOCH,
        header_nslots: nslots,
        pools: strides
            .iter()
            .enumerate()
            .map(|(i, &s)| PoolGeometry {
                pool_id: i as u16 + 1,
                stride_bytes: s,
                nslots,
            })
            .collect(),
    };
    let created = layout
        .create_epoch(
            &spec,
            CreateOptions {
                prefault: true,
                pid: u64::from(std::process::id()),
                now_ns: 42,
            },
        )
        .unwrap();
    let allowed = AllowedBaseDirs::new([&base]).unwrap();
    Stream {
        tmp,
        base,
        layout,
        allowed,
        created,
        spec,
    }
}

impl Stream {
    pub fn ring_expected(&self) -> ExpectedRegion {
        ExpectedRegion::header_ring(LAYOUT_VERSION, EPOCH, STREAM_ID, self.spec.header_nslots)
    }

    pub fn pool_expected(&self, i: usize) -> ExpectedRegion {
        let p = self.spec.pools[i];
        ExpectedRegion::payload_pool(
            LAYOUT_VERSION,
            EPOCH,
            STREAM_ID,
            p.pool_id,
            p.nslots,
            p.stride_bytes,
        )
    }

    pub fn ring<M: Mode>(&self) -> HeaderRing<M> {
        HeaderRing::open(
            &self.created.header_uri,
            &self.allowed,
            &self.ring_expected(),
            MapOptions::default(),
        )
        .unwrap()
    }

    pub fn try_ring(
        &self,
    ) -> Result<HeaderRing<tensorpool_shm::ReadOnly>, tensorpool_shm::RegionError> {
        HeaderRing::open(
            &self.created.header_uri,
            &self.allowed,
            &self.ring_expected(),
            MapOptions::default(),
        )
    }

    pub fn pools<M: Mode>(&self) -> PoolSet<M> {
        let pools = (0..self.spec.pools.len())
            .map(|i| {
                PayloadPool::open(
                    &self.created.pool_uris[i].1,
                    &self.allowed,
                    &self.pool_expected(i),
                    MapOptions::default(),
                )
                .unwrap()
            })
            .collect();
        PoolSet::new(pools, self.spec.header_nslots).unwrap()
    }

    pub fn header_path(&self) -> PathBuf {
        self.created.header_uri.to_path_buf()
    }
}

/// Lines of /proc/self/maps that mention `path`.
pub fn maps_of(path: &Path) -> Vec<String> {
    let canon = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let needle = canon.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|l| l.ends_with(&needle) || l.contains(&format!("{needle} (deleted)")))
        .map(str::to_owned)
        .collect()
}
