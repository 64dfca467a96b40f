//! Path containment (Wire Spec §15.21a.5, §15.22; Driver Model §9).
//!
//! Before any region is mapped, its announced path goes through two stages:
//!
//! 1. [`AllowedBaseDirs::check`]: the path is absolute, is canonicalized (`realpath`), must lie
//!    component-wise inside one of the base directories (canonicalized once, when the
//!    [`AllowedBaseDirs`] was built), and `lstat` on the canonical path must show a regular
//!    file. The result is a [`CheckedPath`] that remembers the file's device and inode.
//! 2. [`CheckedPath::open`]: opens with `O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY`
//!    (non-blocking so that a FIFO swapped in after the check cannot hang us), then
//!    re-validates the opened descriptor with `fstat`: a regular file with the same device
//!    and inode as the checked path, with exactly one hard link (`st_nlink == 1`: no other
//!    name reaches the inode). If the region requires hugepages, `fstatfs` on the
//!    descriptor must report hugetlbfs.
//!
//! Every failure is an error value ([`PathError`]); nothing is mapped on failure (fail closed).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

/// `f_type` of hugetlbfs as reported by `fstatfs` (Linux `HUGETLBFS_MAGIC`).
pub const HUGETLBFS_MAGIC: i64 = 0x9584_58f6;

/// What kind of file system object a path turned out to be (for error messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file (the only accepted kind).
    Regular,
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// A FIFO (named pipe).
    Fifo,
    /// A UNIX domain socket.
    Socket,
    /// A block device.
    BlockDevice,
    /// A character device.
    CharDevice,
    /// Anything else.
    Other,
}

impl FileKind {
    fn of(ft: std::fs::FileType) -> Self {
        if ft.is_file() {
            Self::Regular
        } else if ft.is_dir() {
            Self::Directory
        } else if ft.is_symlink() {
            Self::Symlink
        } else if ft.is_fifo() {
            Self::Fifo
        } else if ft.is_socket() {
            Self::Socket
        } else if ft.is_block_device() {
            Self::BlockDevice
        } else if ft.is_char_device() {
            Self::CharDevice
        } else {
            Self::Other
        }
    }
}

/// Why a path was refused. Every variant names the path and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    /// An allowed base directory given at configuration time is unusable.
    #[error("allowed base dir `{path}` cannot be used: {reason}")]
    BadBaseDir {
        /// The configured directory.
        path: PathBuf,
        /// Why (not absolute, does not exist, not a directory...).
        reason: String,
    },
    /// No base directory configured: nothing can be contained.
    #[error("no allowed base dir configured; every region would be rejected")]
    NoBaseDirs,
    /// The announced path is not absolute.
    #[error("region path `{0}` is not absolute")]
    NotAbsolute(PathBuf),
    /// `realpath` failed (missing file, dangling link, permission...).
    #[error("region path `{path}` cannot be canonicalized: {source}")]
    Canonicalize {
        /// The announced path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The canonical path is not inside any allowed base dir.
    #[error("region path `{canonical}` is outside every allowed base dir {allowed:?}")]
    OutsideBaseDirs {
        /// Canonical form of the announced path.
        canonical: PathBuf,
        /// The canonical allowed base dirs.
        allowed: Vec<PathBuf>,
    },
    /// `lstat`/`fstat` showed something other than a regular file.
    #[error("region path `{path}` is a {found:?}; expected a regular file")]
    NotRegularFile {
        /// The path checked.
        path: PathBuf,
        /// What it is.
        found: FileKind,
    },
    /// `lstat` failed.
    #[error("region path `{path}` cannot be examined: {source}")]
    Stat {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The no-follow open found a symbolic link (swapped in after the check).
    #[error("region path `{0}` became a symbolic link after it was checked; refusing to follow it")]
    SymlinkAtOpen(PathBuf),
    /// The open failed for another reason.
    #[error("region path `{path}` cannot be opened: {source}")]
    Open {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The opened file is not the file that was checked (device/inode differ).
    #[error(
        "region path `{path}` changed between check and open: checked dev {checked_dev} ino \
         {checked_ino}, opened dev {opened_dev} ino {opened_ino}"
    )]
    IdentityChanged {
        /// The path.
        path: PathBuf,
        /// Device at check time.
        checked_dev: u64,
        /// Inode at check time.
        checked_ino: u64,
        /// Device of the opened descriptor.
        opened_dev: u64,
        /// Inode of the opened descriptor.
        opened_ino: u64,
    },
    /// The file has more than one hard link: another name (possibly outside the base dirs,
    /// or owned by someone else) reaches the same inode.
    #[error("region path `{path}` has {nlink} hard links; expected exactly 1")]
    HardLinked {
        /// The path.
        path: PathBuf,
        /// `st_nlink` of the opened descriptor.
        nlink: u64,
    },
    /// The URI requires hugepages but the file is not on hugetlbfs.
    #[error(
        "region `{path}` requires hugepages but its file system type is 0x{found_fs_type:x}; \
         expected hugetlbfs (0x{:x})",
        HUGETLBFS_MAGIC
    )]
    NotHugepageBacked {
        /// The path.
        path: PathBuf,
        /// `f_type` reported by `fstatfs`.
        found_fs_type: i64,
    },
    /// `fstatfs` failed.
    #[error("cannot query the file system of `{path}`: {source}")]
    StatFs {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

/// The canonical allowed base directories, resolved once at configuration time
/// (§15.21a.5 step 3).
#[derive(Debug, Clone)]
pub struct AllowedBaseDirs {
    dirs: Vec<PathBuf>,
}

impl AllowedBaseDirs {
    /// Canonicalizes each directory now; later checks use only these canonical forms.
    /// Each must be absolute, exist and be a directory.
    pub fn new<I, P>(dirs: I) -> Result<Self, PathError>
    where
        I: IntoIterator<Item = P>,
        P: AsRef<Path>,
    {
        let mut out = Vec::new();
        for d in dirs {
            let d = d.as_ref();
            if !d.is_absolute() {
                return Err(PathError::BadBaseDir {
                    path: d.into(),
                    reason: "not absolute".into(),
                });
            }
            let canonical = std::fs::canonicalize(d).map_err(|e| PathError::BadBaseDir {
                path: d.into(),
                reason: e.to_string(),
            })?;
            if !canonical.is_dir() {
                return Err(PathError::BadBaseDir {
                    path: d.into(),
                    reason: "not a directory".into(),
                });
            }
            if !out.contains(&canonical) {
                out.push(canonical);
            }
        }
        if out.is_empty() {
            return Err(PathError::NoBaseDirs);
        }
        Ok(Self { dirs: out })
    }

    /// No directory at all: contains nothing, so every region is refused (a consumer
    /// waiting for its base dirs to appear holds this meanwhile).
    pub fn none() -> Self {
        Self { dirs: Vec::new() }
    }

    /// Whether `dir` does not exist (yet): `lstat` says so.
    pub fn is_missing(dir: &Path) -> bool {
        matches!(std::fs::symlink_metadata(dir), Err(e) if e.kind() == io::ErrorKind::NotFound)
    }

    /// Checks a base dir that appeared after the process started (nobody vouched for it when
    /// it was configured): it must be a directory itself, not a symlink to one, and owned by
    /// the effective user or root.
    pub fn check_appeared(dir: &Path) -> Result<(), PathError> {
        let bad = |reason: String| PathError::BadBaseDir {
            path: dir.into(),
            reason,
        };
        let m = std::fs::symlink_metadata(dir).map_err(|e| bad(e.to_string()))?;
        if m.file_type().is_symlink() {
            return Err(bad("appeared as a symbolic link, not a directory".into()));
        }
        if !m.is_dir() {
            return Err(bad(format!(
                "appeared as a {:?}, not a directory",
                FileKind::of(m.file_type())
            )));
        }
        // SAFETY: geteuid cannot fail.
        let euid = unsafe { libc::geteuid() };
        if m.uid() != euid && m.uid() != 0 {
            return Err(bad(format!(
                "appeared owned by uid {}, neither us ({euid}) nor root",
                m.uid()
            )));
        }
        Ok(())
    }

    /// The canonical directories.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Whether a canonical path lies strictly inside one of the base dirs, compared component
    /// by component (`/dev/shm/tp` does not contain `/dev/shm/tp2/x`).
    pub fn contains(&self, canonical: &Path) -> bool {
        self.dirs.iter().any(|base| {
            canonical != base.as_path()
                && canonical.starts_with(base)
                && canonical
                    .components()
                    .all(|c| !matches!(c, Component::ParentDir | Component::CurDir))
        })
    }

    /// Steps 1-5 of §15.21a.5: absolute, canonicalized, contained, `lstat` says regular file.
    pub fn check(&self, announced: &Path) -> Result<CheckedPath, PathError> {
        if !announced.is_absolute() {
            return Err(PathError::NotAbsolute(announced.into()));
        }
        let canonical =
            std::fs::canonicalize(announced).map_err(|source| PathError::Canonicalize {
                path: announced.into(),
                source,
            })?;
        if !self.contains(&canonical) {
            return Err(PathError::OutsideBaseDirs {
                canonical,
                allowed: self.dirs.clone(),
            });
        }
        let meta = std::fs::symlink_metadata(&canonical).map_err(|source| PathError::Stat {
            path: canonical.clone(),
            source,
        })?;
        let kind = FileKind::of(meta.file_type());
        if kind != FileKind::Regular {
            return Err(PathError::NotRegularFile {
                path: canonical,
                found: kind,
            });
        }
        Ok(CheckedPath {
            canonical,
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    /// Both stages: [`check`](Self::check) then [`CheckedPath::open`].
    pub fn open(
        &self,
        announced: &Path,
        access: Access,
        require_hugepages: bool,
    ) -> Result<ValidatedFile, PathError> {
        self.check(announced)?.open(access, require_hugepages)
    }
}

/// Read-only (consumers) or read-write (producer / driver) access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `O_RDONLY`: the descriptor (and so every mapping of it) cannot write.
    ReadOnly,
    /// `O_RDWR`.
    ReadWrite,
}

/// A path that passed the containment and `lstat` checks, with the identity it had then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedPath {
    canonical: PathBuf,
    dev: u64,
    ino: u64,
}

impl CheckedPath {
    /// The canonical path.
    pub fn canonical(&self) -> &Path {
        &self.canonical
    }

    /// Step 6 of §15.21a.5: open without following symlinks and re-validate the descriptor.
    pub fn open(
        &self,
        access: Access,
        require_hugepages: bool,
    ) -> Result<ValidatedFile, PathError> {
        let path = &self.canonical;
        let mut opts = OpenOptions::new();
        opts.read(true).write(access == Access::ReadWrite);
        // std adds O_CLOEXEC itself; we add it again to be explicit.
        opts.custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY);
        let file = opts.open(path).map_err(|source| {
            if source.raw_os_error() == Some(libc::ELOOP) {
                PathError::SymlinkAtOpen(path.clone())
            } else {
                PathError::Open {
                    path: path.clone(),
                    source,
                }
            }
        })?;
        let meta = file.metadata().map_err(|source| PathError::Stat {
            path: path.clone(),
            source,
        })?;
        let kind = FileKind::of(meta.file_type());
        if kind != FileKind::Regular {
            return Err(PathError::NotRegularFile {
                path: path.clone(),
                found: kind,
            });
        }
        if meta.dev() != self.dev || meta.ino() != self.ino {
            return Err(PathError::IdentityChanged {
                path: path.clone(),
                checked_dev: self.dev,
                checked_ino: self.ino,
                opened_dev: meta.dev(),
                opened_ino: meta.ino(),
            });
        }
        if meta.nlink() != 1 {
            return Err(PathError::HardLinked {
                path: path.clone(),
                nlink: meta.nlink(),
            });
        }
        let fs = fs_info(&file).map_err(|source| PathError::StatFs {
            path: path.clone(),
            source,
        })?;
        if require_hugepages && fs.fs_type != HUGETLBFS_MAGIC {
            return Err(PathError::NotHugepageBacked {
                path: path.clone(),
                found_fs_type: fs.fs_type,
            });
        }
        Ok(ValidatedFile {
            file,
            path: path.clone(),
            access,
            len: meta.len(),
            fs,
        })
    }
}

/// File system facts read with `fstatfs` on an opened descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsInfo {
    /// `f_type` (e.g. [`HUGETLBFS_MAGIC`], tmpfs `0x01021994`).
    pub fs_type: i64,
    /// `f_bsize`: on hugetlbfs, the huge page size.
    pub block_size: u64,
}

impl FsInfo {
    /// Whether the file lives on hugetlbfs.
    pub fn is_hugetlbfs(&self) -> bool {
        self.fs_type == HUGETLBFS_MAGIC
    }
}

pub(crate) fn fs_info(file: &File) -> io::Result<FsInfo> {
    use std::os::fd::AsRawFd;
    // SAFETY: `statfs` is plain old data; all-zero is a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: the descriptor is open for the duration of the call and `st` is a valid out pointer.
    let rc = unsafe { libc::fstatfs(file.as_raw_fd(), &mut st) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)]
    Ok(FsInfo {
        fs_type: st.f_type as i64,
        block_size: st.f_bsize as u64,
    })
}

/// An opened region file that passed every §15.21a.5 check.
#[derive(Debug)]
pub struct ValidatedFile {
    file: File,
    path: PathBuf,
    access: Access,
    len: u64,
    fs: FsInfo,
}

impl ValidatedFile {
    /// The open file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The canonical path it was opened at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How it was opened.
    pub fn access(&self) -> Access {
        self.access
    }

    /// File length from `fstat` at open time.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// File system facts from `fstatfs`.
    pub fn fs(&self) -> FsInfo {
        self.fs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::shm_tempdir;

    fn setup() -> (tempfile::TempDir, AllowedBaseDirs, PathBuf) {
        let tmp = shm_tempdir();
        let base = tmp.path().join("tp");
        std::fs::create_dir(&base).unwrap();
        let allowed = AllowedBaseDirs::new([&base]).unwrap();
        (tmp, allowed, base)
    }

    fn touch(p: &Path) {
        std::fs::write(p, [0u8; 128]).unwrap();
    }

    #[test]
    fn w_15_21a_5_accepts_regular_file_inside_base() {
        let (_t, allowed, base) = setup();
        let f = base.join("a.pool");
        touch(&f);
        let v = allowed.open(&f, Access::ReadOnly, false).unwrap();
        assert_eq!(v.len(), 128);
        assert_eq!(v.path(), std::fs::canonicalize(&f).unwrap());
    }

    #[test]
    fn w_15_21a_5_rejects_relative_path() {
        let (_t, allowed, _) = setup();
        assert!(matches!(
            allowed.check(Path::new("tp/a.pool")),
            Err(PathError::NotAbsolute(_))
        ));
    }

    #[test]
    fn w_15_21a_5_rejects_path_outside_base() {
        let (t, allowed, _) = setup();
        let outside = t.path().join("outside.pool");
        touch(&outside);
        assert!(matches!(
            allowed.check(&outside),
            Err(PathError::OutsideBaseDirs { .. })
        ));
    }

    #[test]
    fn w_15_21a_5_rejects_dotdot_traversal() {
        let (t, allowed, base) = setup();
        let outside = t.path().join("outside.pool");
        touch(&outside);
        let sneaky = base.join("..").join("outside.pool");
        assert!(matches!(
            allowed.check(&sneaky),
            Err(PathError::OutsideBaseDirs { .. })
        ));
        // `..` that stays inside is fine once canonicalized.
        std::fs::create_dir(base.join("d")).unwrap();
        touch(&base.join("in.pool"));
        assert!(allowed.check(&base.join("d/../in.pool")).is_ok());
    }

    #[test]
    fn w_15_21a_5_rejects_prefix_sibling_dir() {
        let (t, allowed, _) = setup();
        let sibling = t.path().join("tp2");
        std::fs::create_dir(&sibling).unwrap();
        let f = sibling.join("x");
        touch(&f);
        assert!(matches!(
            allowed.check(&f),
            Err(PathError::OutsideBaseDirs { .. })
        ));
    }

    #[test]
    fn w_15_21a_5_rejects_the_base_dir_itself_and_directories() {
        let (_t, allowed, base) = setup();
        assert!(matches!(
            allowed.check(&base),
            Err(PathError::OutsideBaseDirs { .. })
        ));
        let d = base.join("sub");
        std::fs::create_dir(&d).unwrap();
        assert!(matches!(
            allowed.check(&d),
            Err(PathError::NotRegularFile {
                found: FileKind::Directory,
                ..
            })
        ));
    }

    #[test]
    fn w_15_21a_5_rejects_symlink_escaping_base() {
        let (t, allowed, base) = setup();
        let outside = t.path().join("outside.pool");
        touch(&outside);
        let link = base.join("link.pool");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        assert!(matches!(
            allowed.check(&link),
            Err(PathError::OutsideBaseDirs { .. })
        ));
    }

    #[test]
    fn w_15_21a_5_rejects_fifo() {
        let (_t, allowed, base) = setup();
        let fifo = base.join("fifo.pool");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: `c` is a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(matches!(
            allowed.check(&fifo),
            Err(PathError::NotRegularFile {
                found: FileKind::Fifo,
                ..
            })
        ));
    }

    #[test]
    fn w_15_21a_5_rejects_socket() {
        let (_t, allowed, base) = setup();
        let sock = base.join("sock.pool");
        let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        assert!(matches!(
            allowed.check(&sock),
            Err(PathError::NotRegularFile {
                found: FileKind::Socket,
                ..
            })
        ));
    }

    #[test]
    fn w_15_21a_5_rejects_char_device() {
        let allowed = AllowedBaseDirs::new(["/dev"]).unwrap();
        assert!(matches!(
            allowed.check(Path::new("/dev/null")),
            Err(PathError::NotRegularFile {
                found: FileKind::CharDevice,
                ..
            })
        ));
    }

    #[test]
    fn w_15_21a_5_rejects_symlink_swap_after_check() {
        let (_t, allowed, base) = setup();
        let f = base.join("a.pool");
        let other = base.join("b.pool");
        touch(&f);
        touch(&other);
        let checked = allowed.check(&f).unwrap();
        // Between lstat and open an attacker replaces the file by a symlink.
        std::fs::remove_file(&f).unwrap();
        std::os::unix::fs::symlink(&other, &f).unwrap();
        assert!(matches!(
            checked.open(Access::ReadOnly, false),
            Err(PathError::SymlinkAtOpen(_))
        ));
    }

    #[test]
    fn w_15_21a_5_rejects_file_swap_after_check() {
        let (_t, allowed, base) = setup();
        let f = base.join("a.pool");
        let other = base.join("b.pool");
        touch(&f);
        touch(&other);
        let checked = allowed.check(&f).unwrap();
        std::fs::rename(&other, &f).unwrap();
        assert!(matches!(
            checked.open(Access::ReadWrite, false),
            Err(PathError::IdentityChanged { .. })
        ));
    }

    #[test]
    fn w_15_21a_5_rejects_fifo_swap_after_check_without_hanging() {
        let (_t, allowed, base) = setup();
        let f = base.join("a.pool");
        touch(&f);
        let checked = allowed.check(&f).unwrap();
        std::fs::remove_file(&f).unwrap();
        let c = std::ffi::CString::new(f.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: `c` is a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // O_NONBLOCK: the read-only open of a FIFO without writer returns at once.
        assert!(matches!(
            checked.open(Access::ReadOnly, false),
            Err(PathError::NotRegularFile {
                found: FileKind::Fifo,
                ..
            })
        ));
        // Read-write open of a FIFO with O_NONBLOCK also returns at once (success on Linux).
        assert!(checked.open(Access::ReadWrite, false).is_err());
    }

    #[test]
    fn w_15_22_rejects_non_hugepage_file_when_required() {
        let (_t, allowed, base) = setup();
        let f = base.join("a.pool");
        touch(&f);
        let e = allowed.open(&f, Access::ReadOnly, true).unwrap_err();
        assert!(matches!(e, PathError::NotHugepageBacked { .. }), "{e}");
        assert!(e.to_string().contains("hugetlbfs"));
    }

    #[test]
    fn w_15_21a_5_base_dirs_must_exist_and_be_absolute() {
        assert!(matches!(
            AllowedBaseDirs::new(["rel"]),
            Err(PathError::BadBaseDir { .. })
        ));
        assert!(matches!(
            AllowedBaseDirs::new(["/nonexistent/tp-shm-nope"]),
            Err(PathError::BadBaseDir { .. })
        ));
        assert!(matches!(
            AllowedBaseDirs::new(Vec::<PathBuf>::new()),
            Err(PathError::NoBaseDirs)
        ));
    }

    #[test]
    fn w_15_21a_5_base_dirs_canonicalized_once() {
        let (t, _, base) = setup();
        let link = t.path().join("link-to-tp");
        std::os::unix::fs::symlink(&base, &link).unwrap();
        let allowed = AllowedBaseDirs::new([&link]).unwrap();
        assert_eq!(allowed.dirs(), &[std::fs::canonicalize(&base).unwrap()]);
        // Re-pointing the symlink later does not move the allowed dir.
        std::fs::remove_file(&link).unwrap();
        let other = t.path().join("other");
        std::fs::create_dir(&other).unwrap();
        std::os::unix::fs::symlink(&other, &link).unwrap();
        let f = other.join("x.pool");
        touch(&f);
        assert!(matches!(
            allowed.check(&link.join("x.pool")),
            Err(PathError::OutsideBaseDirs { .. })
        ));
    }
}

/// A mount: where a file system is mounted and its type (from `/proc/self/mounts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The mount point.
    pub point: PathBuf,
    /// The file system type (`tmpfs`, `hugetlbfs`, `ext4`, ...).
    pub fs_type: String,
}

impl std::fmt::Display for Mount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.point.display(), self.fs_type)
    }
}

/// The mount that holds `path`: the longest mount point of the mount table that contains its
/// canonical form (the last such line wins, as the kernel stacks mounts). `None` when the
/// table is unreadable.
pub fn mount_of(path: &Path) -> Option<Mount> {
    let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    let mut best: Option<Mount> = None;
    for line in mounts.lines() {
        let mut f = line.split_whitespace();
        let (Some(_dev), Some(point), Some(fs_type)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let point = PathBuf::from(point.replace("\\040", " "));
        if canonical.starts_with(&point)
            && best
                .as_ref()
                .is_none_or(|b| point.as_os_str().len() >= b.point.as_os_str().len())
        {
            best = Some(Mount {
                point,
                fs_type: fs_type.to_owned(),
            });
        }
    }
    best
}

/// Bytes an unprivileged writer may still allocate on the file system holding `path`
/// (`statvfs`: available blocks x fragment size); `None` when it cannot be asked.
pub fn available_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: `statvfs` is plain old data; all-zero is a valid value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a valid out pointer for the call.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    #[allow(clippy::unnecessary_cast)]
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}
