//! Mapped regions: [`HeaderRing`] and [`PayloadPool`], read-only or read-write.
//!
//! Opening follows one sequence and returns either a fully validated region or an error, with
//! nothing left mapped on error:
//!
//! 1. path containment and no-follow open ([`crate::paths`]), hugepage check if the URI asks;
//! 2. the file holds at least a superblock; the superblock (read with `pread`) is valid and
//!    matches the announce ([`crate::superblock::validate`]);
//! 3. the file holds exactly `64 + nslots * stride` bytes (hugetlbfs: at least that, and its
//!    length is a multiple of the huge page size, and the whole file is mapped); with
//!    [`OpenChecks`], the superblock's `activity_timestamp_ns` is fresh and the length is
//!    within the caller's cap -- all before anything is mapped;
//! 4. map (`PROT_READ` for [`ReadOnly`]); the superblock is read again from the mapping and
//!    validated again (the file may have been rewritten between 2 and 4).

use std::marker::PhantomData;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::mapping::{MapError, MapOptions, Mapping};
use crate::paths::{Access, AllowedBaseDirs, PathError, ValidatedFile};
use crate::pool::{PoolGeometry, payload_slot_offset};
use crate::slot::header_slot_offset;
use crate::superblock::{self, ExpectedRegion, RegionType, Superblock, SuperblockError};
use crate::uri::RegionUri;
use crate::{HEADER_SLOT_BYTES, SUPERBLOCK_SIZE};

mod sealed {
    pub trait Sealed {}
}

/// Access mode of a mapped region: [`ReadOnly`] or [`ReadWrite`].
pub trait Mode: sealed::Sealed + std::fmt::Debug + Send + Sync + 'static {
    /// How the file is opened and mapped.
    const ACCESS: Access;
}

/// Consumer mapping: `O_RDONLY` + `PROT_READ`; no method can write.
#[derive(Debug, Clone, Copy)]
pub enum ReadOnly {}
/// Producer / driver mapping.
#[derive(Debug, Clone, Copy)]
pub enum ReadWrite {}
impl sealed::Sealed for ReadOnly {}
impl sealed::Sealed for ReadWrite {}
impl Mode for ReadOnly {
    const ACCESS: Access = Access::ReadOnly;
}
impl Mode for ReadWrite {
    const ACCESS: Access = Access::ReadWrite;
}

/// Why a region could not be opened; nothing is mapped when this is returned.
#[derive(Debug, thiserror::Error)]
pub enum RegionError {
    /// Path containment / open failed.
    #[error(transparent)]
    Path(#[from] PathError),
    /// The superblock is invalid or does not match the announce.
    #[error("region `{path}`: {source}")]
    Superblock {
        /// Canonical path.
        path: PathBuf,
        /// What was wrong.
        source: SuperblockError,
    },
    /// The file is shorter than the region needs.
    #[error("region `{path}` is {found} bytes; expected at least {required}")]
    FileTooShort {
        /// Canonical path.
        path: PathBuf,
        /// File length.
        found: u64,
        /// Required length.
        required: u64,
    },
    /// The file is longer than the region (`64 + nslots * stride`): not what was announced.
    #[error("region `{path}` is {found} bytes; expected exactly {expected}")]
    FileLength {
        /// Canonical path.
        path: PathBuf,
        /// File length.
        found: u64,
        /// `64 + nslots * stride`.
        expected: u64,
    },
    /// The superblock's `activity_timestamp_ns` is outside the freshness window: nobody is
    /// writing this region (checked before mapping, [`OpenChecks::activity`]).
    #[error(
        "region `{path}`: activity_timestamp_ns {activity_ns} is stale at {now_ns} (window {window_ns} ns)"
    )]
    Stale {
        /// Canonical path.
        path: PathBuf,
        /// The superblock's activity timestamp.
        activity_ns: u64,
        /// Local time of the check.
        now_ns: u64,
        /// Window.
        window_ns: u64,
    },
    /// Mapping the region would exceed the caller's cap ([`OpenChecks::max_len`]).
    #[error("region `{path}` needs {len} bytes mapped; the cap is {cap}")]
    TooLarge {
        /// Canonical path.
        path: PathBuf,
        /// Bytes the mapping would take.
        len: u64,
        /// The cap.
        cap: u64,
    },
    /// On hugetlbfs, the file length is not a multiple of the huge page size.
    #[error(
        "hugetlbfs region `{path}` is {len} bytes; expected a multiple of the page size {page_size}"
    )]
    HugepageLength {
        /// Canonical path.
        path: PathBuf,
        /// File length.
        len: u64,
        /// Huge page size (`f_bsize`).
        page_size: u64,
    },
    /// Geometry overflows.
    #[error("region `{path}` geometry overflows: {nslots} slots of {stride} bytes")]
    Geometry {
        /// Canonical path.
        path: PathBuf,
        /// Slots.
        nslots: u32,
        /// Stride.
        stride: u64,
    },
    /// Reading the superblock failed.
    #[error("region `{path}`: reading the superblock failed: {source}")]
    Read {
        /// Canonical path.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// mmap / mlock failed.
    #[error("region `{path}`: {source}")]
    Map {
        /// Canonical path.
        path: PathBuf,
        /// What failed.
        source: MapError,
    },
}

/// Checks a reader adds to the opening sequence, before anything is mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpenChecks {
    /// `(now_ns, window_ns)`: the superblock's `activity_timestamp_ns` (read with `pread`)
    /// must be within `window_ns` of `now_ns` (same clock), else [`RegionError::Stale`].
    pub activity: Option<(u64, u64)>,
    /// Largest mapping allowed, in bytes, else [`RegionError::TooLarge`].
    pub max_len: Option<u64>,
}

/// A validated, mapped region of either type (shared by [`HeaderRing`] and [`PayloadPool`]).
#[derive(Debug)]
struct Region {
    map: Mapping,
    superblock: Superblock,
    path: PathBuf,
}

impl Region {
    fn open(
        file: ValidatedFile,
        expected: &ExpectedRegion,
        opts: MapOptions,
        checks: OpenChecks,
    ) -> Result<Self, RegionError> {
        let path = file.path().to_path_buf();
        let len = file.len();
        if len < SUPERBLOCK_SIZE as u64 {
            return Err(RegionError::FileTooShort {
                path,
                found: len,
                required: SUPERBLOCK_SIZE as u64,
            });
        }
        let mut sb_bytes = [0u8; SUPERBLOCK_SIZE];
        file.file()
            .read_exact_at(&mut sb_bytes, 0)
            .map_err(|source| RegionError::Read {
                path: path.clone(),
                source,
            })?;
        let sb = superblock::decode(&sb_bytes)
            .and_then(|sb| superblock::validate(&sb, expected).map(|()| sb))
            .map_err(|source| RegionError::Superblock {
                path: path.clone(),
                source,
            })?;
        let required = expected.region_len().ok_or_else(|| RegionError::Geometry {
            path: path.clone(),
            nslots: expected.nslots,
            stride: match expected.region_type {
                RegionType::HeaderRing => HEADER_SLOT_BYTES as u64,
                RegionType::PayloadPool => u64::from(expected.stride_bytes),
            },
        })?;
        if len < required {
            return Err(RegionError::FileTooShort {
                path,
                found: len,
                required,
            });
        }
        if let Some((now_ns, window_ns)) = checks.activity
            && superblock::is_activity_stale(sb.activity_timestamp_ns, now_ns, window_ns)
        {
            return Err(RegionError::Stale {
                path,
                activity_ns: sb.activity_timestamp_ns,
                now_ns,
                window_ns,
            });
        }
        let fs = file.fs();
        if !fs.is_hugetlbfs() && len != required {
            return Err(RegionError::FileLength {
                path,
                found: len,
                expected: required,
            });
        }
        let map_len = if fs.is_hugetlbfs() {
            if fs.block_size == 0 || !len.is_multiple_of(fs.block_size) {
                return Err(RegionError::HugepageLength {
                    path,
                    len,
                    page_size: fs.block_size,
                });
            }
            len
        } else {
            required
        };
        if let Some(cap) = checks.max_len
            && map_len > cap
        {
            return Err(RegionError::TooLarge {
                path,
                len: map_len,
                cap,
            });
        }
        let writable = file.access() == crate::paths::Access::ReadWrite;
        let map = Mapping::map(file.file(), map_len, writable, opts).map_err(|source| {
            RegionError::Map {
                path: path.clone(),
                source,
            }
        })?;
        let region = Self {
            map,
            superblock: sb,
            path,
        };
        // Re-validate what is actually mapped; on error `region` drops and unmaps.
        let live = region
            .read_superblock()
            .and_then(|sb| superblock::validate(&sb, expected).map(|()| sb))
            .map_err(|source| RegionError::Superblock {
                path: region.path.clone(),
                source,
            })?;
        Ok(Self {
            superblock: live,
            ..region
        })
    }

    fn read_superblock(&self) -> Result<Superblock, SuperblockError> {
        let mut b = [0u8; SUPERBLOCK_SIZE];
        self.map.copy_words(0, &mut b);
        superblock::decode(&b)
    }

    fn activity_word(&self) -> &AtomicU64 {
        self.map.word(superblock::ACTIVITY_TIMESTAMP_OFFSET)
    }
}

/// Reads and decodes the superblock of an opened, containment-checked region file with one
/// `pread` of its first 64 bytes: nothing is mapped, so a file truncated or replaced under the
/// reader is an error, never a SIGBUS. For observers that only need the superblock (the
/// supervisor's activity check, W §15.14). Errors: the file is shorter than a superblock,
/// the read failed, or the bytes are not a superblock (magic, undefined enum values).
pub fn read_superblock_of(file: &ValidatedFile) -> Result<Superblock, RegionError> {
    let path = || file.path().to_path_buf();
    let mut b = [0u8; SUPERBLOCK_SIZE];
    let mut read = 0;
    while read < SUPERBLOCK_SIZE {
        match file.file().read_at(&mut b[read..], read as u64) {
            Ok(0) => {
                return Err(RegionError::FileTooShort {
                    path: path(),
                    found: read as u64,
                    required: SUPERBLOCK_SIZE as u64,
                });
            }
            Ok(n) => read += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(RegionError::Read {
                    path: path(),
                    source,
                });
            }
        }
    }
    superblock::decode(&b).map_err(|source| RegionError::Superblock {
        path: path(),
        source,
    })
}

fn open_file<M: Mode>(
    uri: &RegionUri,
    allowed: &AllowedBaseDirs,
) -> Result<ValidatedFile, RegionError> {
    Ok(allowed.open(uri.path(), M::ACCESS, uri.requires_hugepages())?)
}

/// The header ring of a stream: superblock + `nslots` 256-byte slots.
#[derive(Debug)]
pub struct HeaderRing<M: Mode> {
    region: Region,
    nslots: u32,
    _mode: PhantomData<M>,
}

impl<M: Mode> HeaderRing<M> {
    /// Validates and maps the header ring named by `uri` (see the module docs for the steps).
    /// `expected` must describe a header ring ([`ExpectedRegion::header_ring`]).
    pub fn open(
        uri: &RegionUri,
        allowed: &AllowedBaseDirs,
        expected: &ExpectedRegion,
        opts: MapOptions,
    ) -> Result<Self, RegionError> {
        Self::open_checked(uri, allowed, expected, opts, OpenChecks::default())
    }

    /// [`HeaderRing::open`] with a reader's [`OpenChecks`] (activity freshness, size cap),
    /// made before anything is mapped.
    pub fn open_checked(
        uri: &RegionUri,
        allowed: &AllowedBaseDirs,
        expected: &ExpectedRegion,
        opts: MapOptions,
        checks: OpenChecks,
    ) -> Result<Self, RegionError> {
        let file = open_file::<M>(uri, allowed)?;
        Self::from_file_checked(file, expected, opts, checks)
    }

    /// Validates and maps an already opened and containment-checked file.
    pub fn from_file(
        file: ValidatedFile,
        expected: &ExpectedRegion,
        opts: MapOptions,
    ) -> Result<Self, RegionError> {
        Self::from_file_checked(file, expected, opts, OpenChecks::default())
    }

    fn from_file_checked(
        file: ValidatedFile,
        expected: &ExpectedRegion,
        opts: MapOptions,
        checks: OpenChecks,
    ) -> Result<Self, RegionError> {
        let expected = ExpectedRegion {
            region_type: RegionType::HeaderRing,
            pool_id: 0,
            ..*expected
        };
        let region = Region::open(file, &expected, opts, checks)?;
        let nslots = region.superblock.nslots;
        Ok(Self {
            region,
            nslots,
            _mode: PhantomData,
        })
    }

    /// The superblock as validated at open time.
    pub fn superblock(&self) -> &Superblock {
        &self.region.superblock
    }

    /// A fresh copy of the live superblock (word-wise atomic loads; fields are unaligned).
    /// Errors if the file was overwritten with something that is no longer a superblock.
    pub fn read_superblock(&self) -> Result<Superblock, SuperblockError> {
        self.region.read_superblock()
    }

    /// Current `activity_timestamp_ns` (acquire load of the aligned word at offset 56).
    pub fn activity_timestamp_ns(&self) -> u64 {
        self.region.activity_word().load(Ordering::Acquire)
    }

    /// Slot count (a power of two).
    pub fn nslots(&self) -> u32 {
        self.nslots
    }

    /// Epoch of the mapped region.
    pub fn epoch(&self) -> u64 {
        self.region.superblock.epoch
    }

    /// Canonical path of the backing file.
    pub fn path(&self) -> &Path {
        &self.region.path
    }

    /// Whether the file was truncated under the mapping (see [`crate::sigbus`]): its pages
    /// are zeros now and nothing read from it can be trusted. One acquire load.
    pub fn is_dead(&self) -> bool {
        self.region.map.is_dead()
    }

    /// Header index of `seq`: `seq & (nslots - 1)`.
    pub fn index_of(&self, seq: u64) -> u32 {
        crate::slot::header_index(seq, self.nslots)
    }

    /// The `seq_commit` word of slot `index` (`index < nslots`, else panics). Crate-private
    /// for every mode: a read-only ring hands out values, never the word itself.
    pub(crate) fn word_of(&self, index: u32) -> &AtomicU64 {
        assert!(
            index < self.nslots,
            "slot index {index} >= nslots {}",
            self.nslots
        );
        self.region.map.word(header_slot_offset(index) as usize)
    }

    /// Acquire load of slot `index`'s `seq_commit`.
    pub fn seq_commit(&self, index: u32) -> u64 {
        self.word_of(index).load(Ordering::Acquire)
    }

    /// Word-wise atomic copy of the 256 bytes of slot `index`.
    pub fn copy_slot(&self, index: u32, out: &mut [u8; HEADER_SLOT_BYTES]) {
        assert!(
            index < self.nslots,
            "slot index {index} >= nslots {}",
            self.nslots
        );
        self.region
            .map
            .copy_words(header_slot_offset(index) as usize, out);
    }

    pub(crate) fn mapping(&self) -> &Mapping {
        &self.region.map
    }
}

impl HeaderRing<ReadWrite> {
    /// The `seq_commit` word of slot `index`, for a producer driving the seqlock itself
    /// ([`crate::seqlock::begin`] / [`crate::seqlock::commit`]); prefer
    /// [`HeaderRing::write_frame`]. Panics if `index >= nslots`.
    pub fn seq_word(&self, index: u32) -> &AtomicU64 {
        self.word_of(index)
    }

    /// Refreshes `activity_timestamp_ns` (single aligned atomic store, release).
    pub fn refresh_activity(&self, now_ns: u64) {
        self.region.activity_word().store(now_ns, Ordering::Release);
    }
}

/// One payload pool: superblock + `nslots` slots of `stride_bytes`.
#[derive(Debug)]
pub struct PayloadPool<M: Mode> {
    region: Region,
    geometry: PoolGeometry,
    _mode: PhantomData<M>,
}

impl<M: Mode> PayloadPool<M> {
    /// Validates and maps the pool named by `uri`. `expected` must describe a payload pool
    /// ([`ExpectedRegion::payload_pool`]).
    pub fn open(
        uri: &RegionUri,
        allowed: &AllowedBaseDirs,
        expected: &ExpectedRegion,
        opts: MapOptions,
    ) -> Result<Self, RegionError> {
        Self::open_checked(uri, allowed, expected, opts, OpenChecks::default())
    }

    /// [`PayloadPool::open`] with a reader's [`OpenChecks`] (size cap; activity if asked).
    pub fn open_checked(
        uri: &RegionUri,
        allowed: &AllowedBaseDirs,
        expected: &ExpectedRegion,
        opts: MapOptions,
        checks: OpenChecks,
    ) -> Result<Self, RegionError> {
        let file = open_file::<M>(uri, allowed)?;
        Self::from_file_checked(file, expected, opts, checks)
    }

    /// Validates and maps an already opened and containment-checked file.
    pub fn from_file(
        file: ValidatedFile,
        expected: &ExpectedRegion,
        opts: MapOptions,
    ) -> Result<Self, RegionError> {
        Self::from_file_checked(file, expected, opts, OpenChecks::default())
    }

    fn from_file_checked(
        file: ValidatedFile,
        expected: &ExpectedRegion,
        opts: MapOptions,
        checks: OpenChecks,
    ) -> Result<Self, RegionError> {
        let expected = ExpectedRegion {
            region_type: RegionType::PayloadPool,
            ..*expected
        };
        let region = Region::open(file, &expected, opts, checks)?;
        let sb = &region.superblock;
        let geometry = PoolGeometry {
            pool_id: sb.pool_id,
            stride_bytes: sb.stride_bytes,
            nslots: sb.nslots,
        };
        Ok(Self {
            region,
            geometry,
            _mode: PhantomData,
        })
    }

    /// Pool id, stride and nslots.
    pub fn geometry(&self) -> PoolGeometry {
        self.geometry
    }

    /// The superblock as validated at open time.
    pub fn superblock(&self) -> &Superblock {
        &self.region.superblock
    }

    /// A fresh copy of the live superblock.
    pub fn read_superblock(&self) -> Result<Superblock, SuperblockError> {
        self.region.read_superblock()
    }

    /// Canonical path of the backing file.
    pub fn path(&self) -> &Path {
        &self.region.path
    }

    /// Whether the file was truncated under the mapping (see [`crate::sigbus`]).
    pub fn is_dead(&self) -> bool {
        self.region.map.is_dead()
    }

    pub(crate) fn dead_flag(&self) -> &'static std::sync::atomic::AtomicBool {
        self.region.map.dead_flag()
    }

    /// The first `len` bytes of payload slot `slot` (`None` if out of range or `len > stride`).
    /// Racy shared memory: trust the contents only under the seqlock (see [`crate::frame`]).
    pub fn slot_bytes(&self, slot: u32, len: u32) -> Option<&[u8]> {
        let off = self.slot_offset(slot, len)?;
        self.region.map.bytes(off, len as usize)
    }

    fn slot_offset(&self, slot: u32, len: u32) -> Option<usize> {
        if slot >= self.geometry.nslots || len > self.geometry.stride_bytes {
            return None;
        }
        usize::try_from(payload_slot_offset(slot, self.geometry.stride_bytes)?).ok()
    }
}

impl PayloadPool<ReadWrite> {
    /// Writable view of the first `len` bytes of payload slot `slot`.
    pub fn slot_bytes_mut(&mut self, slot: u32, len: u32) -> Option<&mut [u8]> {
        let off = self.slot_offset(slot, len)?;
        self.region.map.bytes_mut(off, len as usize)
    }

    /// Refreshes `activity_timestamp_ns` of the pool superblock.
    pub fn refresh_activity(&self, now_ns: u64) {
        self.region.activity_word().store(now_ns, Ordering::Release);
    }
}
