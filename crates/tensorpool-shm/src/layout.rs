//! Canonical layout and creation of region files (Wire Spec §15.21a.3, §15.21a.6, §15.14,
//! §15.10; Driver Model §17 `shm.*`).
//!
//! ```text
//! <shm_base_dir>/tensorpool-<user>/<namespace>/<stream_id>/<epoch>/header.ring
//!                                                                 /<pool_id>.pool
//! ```
//!
//! Files are created **atomically**: under a temporary name in the epoch directory
//! (`O_CREAT | O_EXCL | O_NOFOLLOW`), sized, fully written (superblock; the slots are zero
//! from `ftruncate`, and touched when prefaulting), `fsync`ed, then renamed into place without
//! replacing anything (`renameat2(RENAME_NOREPLACE)`), so a consumer can never map a
//! half-initialized region. Modes are applied with `fchmod`, whatever the umask.
//!
//! Every file's blocks are **reserved** (`posix_fallocate`) right after sizing, prefault or
//! not: a full file system (a tmpfs `/dev/shm` is RAM) fails the creation with `ENOSPC`, and
//! the epoch comes back as [`LayoutError::NoSpace`] (the bytes needed and free, the mount)
//! with nothing of it left on disk, instead of a `SIGBUS` in whichever process first touches
//! an unbacked page.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::SUPERBLOCK_SIZE;
use crate::mapping::{MapOptions, Mapping};
use crate::pool::{PoolError, PoolGeometry, validate_pools};
use crate::superblock::{self, ExpectedRegion};
use crate::uri::{RegionUri, UriError};

/// Default `shm.base_dir` (Driver Model §17; PITFALLS #11).
pub const DEFAULT_BASE_DIR: &str = "/dev/shm/tensorpool";
/// Default namespace (`shm.namespace`, PITFALLS #11).
pub const DEFAULT_NAMESPACE: &str = "default";
/// Header ring file name.
pub const HEADER_RING_FILE: &str = "header.ring";

/// Directory and file modes for created regions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileModes {
    /// Mode of created directories (default `0o700`).
    pub dir_mode: u32,
    /// Mode of created files (default `0o600`).
    pub file_mode: u32,
}

impl Default for FileModes {
    fn default() -> Self {
        Self {
            dir_mode: 0o700,
            file_mode: 0o600,
        }
    }
}

/// Why a layout could not be configured or created.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// `shm.permissions_mode` is not an octal mode.
    #[error("permissions mode `{0}` is not 1-4 octal digits (e.g. \"660\")")]
    BadMode(String),
    /// The mode would make files or directories writable by everyone.
    #[error("mode {mode:o} is writable by others; refusing to create world-writable SHM")]
    WorldWritable {
        /// The mode.
        mode: u32,
    },
    /// A file mode with setuid/setgid/sticky bits.
    #[error("file mode {mode:o} has bits outside 0777")]
    FileModeSpecialBits {
        /// The mode.
        mode: u32,
    },
    /// Namespace is not a single safe path component.
    #[error("namespace `{0}` must be 1-255 of [A-Za-z0-9._-] and not `.` or `..`")]
    BadNamespace(String),
    /// Base dir is not absolute.
    #[error("shm base dir `{0}` is not absolute")]
    BaseDirNotAbsolute(PathBuf),
    /// An existing directory of the layout is not owned by us, or is not a directory.
    #[error("`{path}` exists but {reason}")]
    UnsafeDirectory {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Pool configuration invalid.
    #[error(transparent)]
    Pools(#[from] PoolError),
    /// A region size overflows.
    #[error("region `{0}` size overflows")]
    TooLarge(PathBuf),
    /// The target file already exists.
    #[error("`{0}` already exists; a new epoch needs a new directory")]
    AlreadyExists(PathBuf),
    /// Building the URI failed (path not representable).
    #[error(transparent)]
    Uri(#[from] UriError),
    /// The file system has no room for the epoch: nothing of it is left behind.
    #[error(
        "no room for epoch {epoch} of stream {stream_id}: it needs {needed} bytes, the file system at {mount} has {available} bytes free: {missing} bytes missing (free space there, lower the pool sizes or header_nslots, or lower policies.epoch_gc_keep)",
        missing = needed.saturating_sub(*available)
    )]
    NoSpace {
        /// The stream.
        stream_id: u32,
        /// The epoch that could not be created.
        epoch: u64,
        /// Bytes the whole epoch needs (every region file).
        needed: u64,
        /// Bytes free on the file system after the partial epoch was removed.
        available: u64,
        /// The file system (mount point and type; the base directory when unknown).
        mount: String,
    },
    /// An OS call failed.
    #[error("{op} `{path}`: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// OS error.
        source: io::Error,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> LayoutError + 'a {
    move |source| LayoutError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

impl FileModes {
    /// Parses `shm.permissions_mode` (octal, e.g. `"660"`, `"0600"`) as the file mode and
    /// derives the directory mode: a class that may read files gets `r-x` on the directories,
    /// one that may write gets `-wx` as well, plus setgid when the group has access
    /// (`660` -> `2770`, `640` -> `2750`, `600` -> `700`; §15.21a.6). World-writable modes are refused.
    pub fn from_permissions_mode(text: &str) -> Result<Self, LayoutError> {
        let digits = text.strip_prefix("0o").unwrap_or(text);
        if digits.is_empty()
            || digits.len() > 4
            || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
        {
            return Err(LayoutError::BadMode(text.to_owned()));
        }
        let file_mode =
            u32::from_str_radix(digits, 8).map_err(|_| LayoutError::BadMode(text.to_owned()))?;
        if file_mode & !0o777 != 0 {
            return Err(LayoutError::FileModeSpecialBits { mode: file_mode });
        }
        let mut dir_mode = 0;
        for shift in [6, 3, 0] {
            let class = (file_mode >> shift) & 0o7;
            let mut d = 0;
            if class & 0o4 != 0 {
                d |= 0o5; // read files: list + traverse
            }
            if class & 0o2 != 0 {
                d |= 0o3; // write files: create + traverse
            }
            dir_mode |= d << shift;
        }
        if file_mode & 0o070 != 0 {
            dir_mode |= 0o2000;
        }
        let m = Self {
            dir_mode,
            file_mode,
        };
        m.validate()?;
        Ok(m)
    }

    /// Refuses world-writable modes and special bits on files.
    pub fn validate(&self) -> Result<(), LayoutError> {
        if self.file_mode & !0o777 != 0 {
            return Err(LayoutError::FileModeSpecialBits {
                mode: self.file_mode,
            });
        }
        for mode in [self.file_mode, self.dir_mode] {
            if mode & 0o002 != 0 {
                return Err(LayoutError::WorldWritable { mode });
            }
        }
        Ok(())
    }
}

/// Sanitizes a user name into one safe path component: every byte outside `[A-Za-z0-9._-]`
/// becomes `_`, a leading `.` becomes `_` (so `.` and `..` cannot result), and an empty name
/// becomes `_`.
pub fn sanitize_user(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.starts_with('.') {
        s.replace_range(0..1, "_");
    }
    if s.is_empty() {
        s.push('_');
    }
    s.truncate(200);
    s
}

/// The effective user's name (`getpwuid_r(geteuid())`), or the uid in decimal when there is
/// no passwd entry; not yet sanitized.
pub fn effective_user_name() -> String {
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: `passwd` is plain old data; zeroed is valid.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; `buf` outlives the use of `pw.pw_name`.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc == 0 && !result.is_null() && !pw.pw_name.is_null() {
        // SAFETY: getpwuid_r succeeded: pw_name is a NUL-terminated string inside `buf`.
        let name = unsafe { std::ffi::CStr::from_ptr(pw.pw_name) };
        return name.to_string_lossy().into_owned();
    }
    uid.to_string()
}

fn validate_namespace(ns: &str) -> Result<(), LayoutError> {
    let ok = !ns.is_empty()
        && ns.len() <= 255
        && ns != "."
        && ns != ".."
        && ns
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(LayoutError::BadNamespace(ns.to_owned()))
    }
}

/// The canonical layout under one base directory, for one user and namespace.
#[derive(Debug, Clone)]
pub struct ShmLayout {
    base_dir: PathBuf,
    user_dir: String,
    namespace: String,
    modes: FileModes,
}

/// One region file to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreateOptions {
    /// Touch every page after sizing (Driver Model `policies.prefault_shm`).
    pub prefault: bool,
    /// Writer pid recorded in the superblock.
    pub pid: u64,
    /// `start_timestamp_ns` and initial `activity_timestamp_ns`.
    pub now_ns: u64,
}

/// The stream geometry of one epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochSpec {
    /// Layout version to write.
    pub layout_version: u32,
    /// Stream id.
    pub stream_id: u32,
    /// Epoch (PITFALLS #10: `max(previous + 1, now_ns)`).
    pub epoch: u64,
    /// Header ring slots (power of two).
    pub header_nslots: u32,
    /// Pools (`nslots` must equal `header_nslots`).
    pub pools: Vec<PoolGeometry>,
}

/// The files of a created epoch and the URIs to announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedEpoch {
    /// The epoch directory.
    pub dir: PathBuf,
    /// Header ring URI.
    pub header_uri: RegionUri,
    /// Pool URIs, in the order of [`EpochSpec::pools`].
    pub pool_uris: Vec<(u16, RegionUri)>,
}

impl ShmLayout {
    /// A layout for the effective user. `base_dir` must be absolute (it is created with
    /// `modes.dir_mode` if missing); `namespace` must be one safe path component.
    pub fn new(
        base_dir: impl AsRef<Path>,
        namespace: &str,
        modes: FileModes,
    ) -> Result<Self, LayoutError> {
        Self::for_user(base_dir, &effective_user_name(), namespace, modes)
    }

    /// A layout for an explicit (deployment-specific) user identifier, sanitized.
    pub fn for_user(
        base_dir: impl AsRef<Path>,
        user: &str,
        namespace: &str,
        modes: FileModes,
    ) -> Result<Self, LayoutError> {
        let base_dir = base_dir.as_ref();
        if !base_dir.is_absolute() {
            return Err(LayoutError::BaseDirNotAbsolute(base_dir.into()));
        }
        validate_namespace(namespace)?;
        modes.validate()?;
        Ok(Self {
            base_dir: base_dir.to_path_buf(),
            user_dir: format!("tensorpool-{}", sanitize_user(user)),
            namespace: namespace.to_owned(),
            modes,
        })
    }

    /// `<base>/tensorpool-<user>/<namespace>/<stream_id>/<epoch>`.
    pub fn epoch_dir(&self, stream_id: u32, epoch: u64) -> PathBuf {
        self.stream_dir(stream_id).join(epoch.to_string())
    }

    /// `<base>/tensorpool-<user>/<namespace>/<stream_id>`.
    pub fn stream_dir(&self, stream_id: u32) -> PathBuf {
        self.base_dir
            .join(&self.user_dir)
            .join(&self.namespace)
            .join(stream_id.to_string())
    }

    /// `.../<epoch>/header.ring`.
    pub fn header_ring_path(&self, stream_id: u32, epoch: u64) -> PathBuf {
        self.epoch_dir(stream_id, epoch).join(HEADER_RING_FILE)
    }

    /// `.../<epoch>/<pool_id>.pool`.
    pub fn pool_path(&self, stream_id: u32, epoch: u64, pool_id: u16) -> PathBuf {
        self.epoch_dir(stream_id, epoch)
            .join(format!("{pool_id}.pool"))
    }

    /// The modes in use.
    pub fn modes(&self) -> FileModes {
        self.modes
    }

    /// Creates the epoch directory (which must not exist yet) and every region file of `spec`
    /// atomically; returns the URIs to announce. On error, the new epoch directory is removed.
    pub fn create_epoch(
        &self,
        spec: &EpochSpec,
        opts: CreateOptions,
    ) -> Result<CreatedEpoch, LayoutError> {
        validate_pools(&spec.pools, spec.header_nslots)?;
        let dir = self.ensure_epoch_dir(spec.stream_id, spec.epoch)?;
        let result = (|| {
            let ring = ExpectedRegion::header_ring(
                spec.layout_version,
                spec.epoch,
                spec.stream_id,
                spec.header_nslots,
            );
            let header_path = dir.join(HEADER_RING_FILE);
            create_region_file(&header_path, &ring, self.modes.file_mode, opts)?;
            let mut pool_uris = Vec::with_capacity(spec.pools.len());
            for p in &spec.pools {
                let e = ExpectedRegion::payload_pool(
                    spec.layout_version,
                    spec.epoch,
                    spec.stream_id,
                    p.pool_id,
                    p.nslots,
                    p.stride_bytes,
                );
                let path = dir.join(format!("{}.pool", p.pool_id));
                create_region_file(&path, &e, self.modes.file_mode, opts)?;
                pool_uris.push((p.pool_id, RegionUri::new(&path, None)?));
            }
            fsync_dir(&dir)?;
            Ok(CreatedEpoch {
                dir: dir.clone(),
                header_uri: RegionUri::new(&header_path, None)?,
                pool_uris,
            })
        })();
        if let Err(e) = &result {
            let _ = std::fs::remove_dir_all(&dir);
            if is_no_space(e) {
                return Err(self.no_space(spec));
            }
        }
        result
    }

    /// The [`LayoutError::NoSpace`] of `spec`, measured after its partial files are gone.
    fn no_space(&self, spec: &EpochSpec) -> LayoutError {
        let ring = ExpectedRegion::header_ring(
            spec.layout_version,
            spec.epoch,
            spec.stream_id,
            spec.header_nslots,
        );
        let needed = spec
            .pools
            .iter()
            .map(|p| {
                ExpectedRegion::payload_pool(
                    spec.layout_version,
                    spec.epoch,
                    spec.stream_id,
                    p.pool_id,
                    p.nslots,
                    p.stride_bytes,
                )
                .region_len()
                .unwrap_or(u64::MAX)
            })
            .fold(ring.region_len().unwrap_or(u64::MAX), u64::saturating_add);
        LayoutError::NoSpace {
            stream_id: spec.stream_id,
            epoch: spec.epoch,
            needed,
            available: crate::paths::available_bytes(&self.base_dir).unwrap_or(0),
            mount: crate::paths::mount_of(&self.base_dir)
                .map_or_else(|| self.base_dir.display().to_string(), |m| m.to_string()),
        }
    }

    /// Removes the epoch directories of `stream_id` whose writer is dead: the header ring's
    /// superblock names a pid that no longer exists **and** its `activity_timestamp_ns`
    /// (`CLOCK_MONOTONIC`, `now_ns`) is older than `stale_window_ns` (a writer in another pid
    /// namespace is invisible in `/proc` but still refreshes it), or (an epoch never
    /// completed) there is no header ring and every temporary file in the directory belongs
    /// to a dead pid. For a standalone producer killed before it could remove its files: the
    /// next one reclaims them at start. An epoch whose pid is alive (or was reused) stays.
    /// Returns the epochs removed.
    pub fn reclaim_dead_epochs(
        &self,
        stream_id: u32,
        now_ns: u64,
        stale_window_ns: u64,
    ) -> Vec<u64> {
        let Ok(rd) = std::fs::read_dir(self.stream_dir(stream_id)) else {
            return Vec::new();
        };
        let epochs: Vec<u64> = rd
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        let mut removed = Vec::new();
        for epoch in epochs {
            let dead = match read_header_superblock(&self.header_ring_path(stream_id, epoch)) {
                Some(sb) => {
                    !pid_alive(sb.pid)
                        && crate::superblock::is_activity_stale(
                            sb.activity_timestamp_ns,
                            now_ns,
                            stale_window_ns,
                        )
                }
                None => only_dead_tmp_files(&self.epoch_dir(stream_id, epoch)),
            };
            if dead && self.remove_epoch(stream_id, epoch).is_ok() {
                removed.push(epoch);
            }
        }
        removed
    }

    /// Removes an epoch directory and its files (symlink-safe: a symlink named like the epoch
    /// directory is refused, not followed). Missing directories are not an error.
    pub fn remove_epoch(&self, stream_id: u32, epoch: u64) -> Result<(), LayoutError> {
        let dir = self.epoch_dir(stream_id, epoch);
        match std::fs::symlink_metadata(&dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("examine", &dir)(e)),
            Ok(m) if !m.is_dir() => Err(LayoutError::UnsafeDirectory {
                path: dir,
                reason: "is not a directory (symlink?)".into(),
            }),
            Ok(_) => std::fs::remove_dir_all(&dir).map_err(io_err("remove", &dir)),
        }
    }

    fn ensure_epoch_dir(&self, stream_id: u32, epoch: u64) -> Result<PathBuf, LayoutError> {
        ensure_dir(&self.base_dir, self.modes.dir_mode, false)?;
        let mut p = self.base_dir.clone();
        for c in [
            self.user_dir.clone(),
            self.namespace.clone(),
            stream_id.to_string(),
        ] {
            p.push(c);
            ensure_dir(&p, self.modes.dir_mode, true)?;
        }
        // The epoch directory must be new: an epoch is never re-created in place.
        p.push(epoch.to_string());
        match std::fs::DirBuilder::new()
            .mode(self.modes.dir_mode)
            .create(&p)
        {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(LayoutError::AlreadyExists(p));
            }
            Err(e) => return Err(io_err("create directory", &p)(e)),
        }
        std::fs::set_permissions(
            &p,
            std::os::unix::fs::PermissionsExt::from_mode(self.modes.dir_mode),
        )
        .map_err(io_err("chmod", &p))?;
        Ok(p)
    }
}

/// Creates `path` as a directory (mode applied with chmod regardless of umask) or checks that
/// the existing entry is a real directory (and, if `must_own`, owned by the effective user).
fn ensure_dir(path: &Path, mode: u32, must_own: bool) -> Result<(), LayoutError> {
    match std::fs::DirBuilder::new().mode(mode).create(path) {
        Ok(()) => {
            std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))
                .map_err(io_err("chmod", path))
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let m = std::fs::symlink_metadata(path).map_err(io_err("examine", path))?;
            if !m.is_dir() {
                return Err(LayoutError::UnsafeDirectory {
                    path: path.into(),
                    reason: "is not a directory".into(),
                });
            }
            // SAFETY: geteuid cannot fail.
            let euid = unsafe { libc::geteuid() };
            if must_own && m.uid() != euid {
                return Err(LayoutError::UnsafeDirectory {
                    path: path.into(),
                    reason: format!("is owned by uid {}, not by us ({euid})", m.uid()),
                });
            }
            Ok(())
        }
        Err(e) => Err(io_err("create directory", path)(e)),
    }
}

fn fsync_dir(dir: &Path) -> Result<(), LayoutError> {
    let f = File::open(dir).map_err(io_err("open directory", dir))?;
    f.sync_all().map_err(io_err("fsync directory", dir))
}

/// Creates one region file atomically at `path` (see the module docs).
pub fn create_region_file(
    path: &Path,
    expected: &ExpectedRegion,
    mode: u32,
    opts: CreateOptions,
) -> Result<(), LayoutError> {
    let dir = path
        .parent()
        .ok_or_else(|| LayoutError::TooLarge(path.into()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let unique = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{}-{unique}",
        std::process::id(),
        opts.now_ns
    ));
    let len = expected
        .region_len()
        .ok_or_else(|| LayoutError::TooLarge(path.into()))?;
    let result = (|| {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
            .map_err(io_err("create", &tmp))?;
        // SAFETY: valid descriptor; fchmod sets the exact mode regardless of umask.
        if unsafe { libc::fchmod(file.as_raw_fd(), mode as libc::mode_t) } != 0 {
            return Err(io_err("fchmod", &tmp)(io::Error::last_os_error()));
        }
        // On hugetlbfs the file (and every mapping of it) spans whole huge pages.
        let fs = crate::paths::fs_info(&file).map_err(io_err("statfs", &tmp))?;
        let len = if fs.is_hugetlbfs() && fs.block_size > 0 {
            len.div_ceil(fs.block_size)
                .checked_mul(fs.block_size)
                .ok_or_else(|| LayoutError::TooLarge(path.into()))?
        } else {
            len
        };
        file.set_len(len).map_err(io_err("size", &tmp))?;
        reserve(&file, len).map_err(io_err("reserve space for", &tmp))?;
        let mut sb_bytes = [0u8; SUPERBLOCK_SIZE];
        superblock::encode(
            &superblock::for_region(expected, opts.pid, opts.now_ns),
            &mut sb_bytes,
        );
        {
            let mut map = Mapping::map(
                &file,
                len,
                true,
                MapOptions {
                    prefault: opts.prefault,
                    mlock: false,
                },
            )
            .map_err(|e| LayoutError::Io {
                op: "map",
                path: tmp.clone(),
                source: io::Error::other(e.to_string()),
            })?;
            let whole = map
                .bytes_mut(0, map.len())
                .ok_or_else(|| LayoutError::TooLarge(path.into()))?;
            // Explicit zeroes: every slot word starts at 0 whatever the file system did; this
            // also faults every page in when prefaulting was asked for.
            if opts.prefault {
                whole.fill(0);
            }
            whole[..SUPERBLOCK_SIZE].copy_from_slice(&sb_bytes);
        }
        file.sync_all().map_err(io_err("fsync", &tmp))?;
        rename_noreplace(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Reserves the file's blocks (`posix_fallocate`): a full file system is an `ENOSPC` error
/// here, not a `SIGBUS` when a page is first touched through a mapping. File systems that
/// cannot reserve (`EOPNOTSUPP`, `EINVAL`) are left sparse, as before.
fn reserve(file: &File, len: u64) -> io::Result<()> {
    let Ok(len) = libc::off_t::try_from(len) else {
        return Err(io::Error::from_raw_os_error(libc::EFBIG));
    };
    if len == 0 {
        return Ok(());
    }
    // SAFETY: valid descriptor for the duration of the call; plain integer arguments.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) };
    match rc {
        0 | libc::EOPNOTSUPP | libc::EINVAL => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

fn is_no_space(e: &LayoutError) -> bool {
    matches!(e, LayoutError::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC))
}

/// The pid in a region file's temporary name (`.<name>.tmp-<pid>-<ns>-<n>`, as
/// [`create_region_file`] names it), `None` for any other name.
pub fn tmp_file_pid(name: &str) -> Option<u64> {
    let rest = name.strip_prefix('.')?;
    let (_, tail) = rest.split_once(".tmp-")?;
    tail.split('-').next()?.parse().ok()
}

/// Whether process `pid` exists (on this host's pid namespace); 0 never does.
pub fn pid_alive(pid: u64) -> bool {
    pid != 0 && Path::new("/proc").join(pid.to_string()).exists()
}

/// A header ring's superblock, read (not mapped) from `path` of our own layout; `None` when
/// the file is missing, not a regular file or not a superblock. For epoch GC and reclaim,
/// which look at epochs nobody maps any more (a reader of foreign paths uses
/// [`crate::region::read_superblock_of`] on a containment-checked file).
pub fn read_header_superblock(path: &Path) -> Option<crate::superblock::Superblock> {
    use std::io::Read;
    if !std::fs::symlink_metadata(path).ok()?.is_file() {
        return None;
    }
    let mut bytes = [0u8; SUPERBLOCK_SIZE];
    File::open(path).ok()?.read_exact(&mut bytes).ok()?;
    crate::superblock::decode(&bytes).ok()
}

/// Whether every entry of `dir` is a temporary file of a dead pid (an empty directory too).
fn only_dead_tmp_files(dir: &Path) -> bool {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return false;
    };
    rd.filter_map(Result::ok).all(|e| {
        e.file_name()
            .to_str()
            .and_then(tmp_file_pid)
            .is_some_and(|pid| !pid_alive(pid))
    })
}

fn rename_noreplace(from: &Path, to: &Path) -> Result<(), LayoutError> {
    let c_from = CString::new(from.as_os_str().as_bytes())
        .map_err(|e| io_err("rename", from)(io::Error::other(e)))?;
    let c_to = CString::new(to.as_os_str().as_bytes())
        .map_err(|e| io_err("rename", to)(io::Error::other(e)))?;
    // SAFETY: both strings are valid NUL-terminated paths for the duration of the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            c_from.as_ptr(),
            libc::AT_FDCWD,
            c_to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EEXIST) => Err(LayoutError::AlreadyExists(to.into())),
        // File systems without RENAME_NOREPLACE: link() also refuses to replace.
        Some(libc::EINVAL) | Some(libc::ENOSYS) => {
            std::fs::hard_link(from, to).map_err(|e| {
                if e.kind() == io::ErrorKind::AlreadyExists {
                    LayoutError::AlreadyExists(to.into())
                } else {
                    io_err("link", to)(e)
                }
            })?;
            std::fs::remove_file(from).map_err(io_err("unlink", from))
        }
        _ => Err(io_err("rename", to)(err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_region_file_names_give_their_pid() {
        assert_eq!(tmp_file_pid(".1.pool.tmp-4242-123-0"), Some(4242));
        assert_eq!(tmp_file_pid(".header.ring.tmp-7-1-2"), Some(7));
        assert_eq!(tmp_file_pid("1.pool"), None);
        assert_eq!(tmp_file_pid("header.ring"), None);
        assert_eq!(tmp_file_pid(".1.pool.tmp-x-1-2"), None);
        assert!(pid_alive(u64::from(std::process::id())));
        assert!(!pid_alive(0));
    }
}
