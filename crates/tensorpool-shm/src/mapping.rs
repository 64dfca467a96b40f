//! Memory mappings of region files: read-only for consumers (`PROT_READ` over an `O_RDONLY`
//! descriptor, so not even `mprotect` can make them writable), read-write for producers and
//! the driver. Optional prefault (`MAP_POPULATE`) and `mlock` (an error when it fails).
//! Unmapped on drop. Every mapping is registered with the SIGBUS handler of [`crate::sigbus`]:
//! a truncated file makes it dead (zero pages), never kills the process.

use std::io;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::sigbus;

/// Mapping options (Driver Model §17 `policies.prefault_shm`, `policies.mlock_shm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MapOptions {
    /// Fault every page in at map time (`MAP_POPULATE`).
    pub prefault: bool,
    /// `mlock` the mapping; failure is an error ([`MapError::Mlock`]).
    pub mlock: bool,
}

/// Why a mapping could not be made.
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    /// `mmap` failed.
    #[error("mmap of {len} bytes failed: {source}")]
    Mmap {
        /// Requested length.
        len: usize,
        /// OS error.
        source: io::Error,
    },
    /// `mlock` was requested and failed.
    #[error("mlock of {len} bytes failed (check RLIMIT_MEMLOCK): {source}")]
    Mlock {
        /// Requested length.
        len: usize,
        /// OS error.
        source: io::Error,
    },
    /// The region does not fit the address space.
    #[error("region of {len} bytes does not fit this address space")]
    TooLarge {
        /// Requested length.
        len: u64,
    },
    /// The mapping is not 64-byte aligned, so `seq_commit` words would not be aligned.
    #[error("mapping at {addr:#x} is not 64-byte aligned; seq_commit words must be aligned")]
    Misaligned {
        /// Base address.
        addr: usize,
    },
}

/// An owned `mmap` of a region file, unmapped on drop.
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    writable: bool,
    /// SIGBUS registration; `None` when the table was full.
    guard: Option<sigbus::Registration>,
}

// SAFETY: the mapping is plain shared memory owned by this value; concurrent access is governed
// by the seqlock protocol and by `&`/`&mut` on the owning region types.
unsafe impl Send for Mapping {}
// SAFETY: shared access only hands out atomics or byte views documented as racy (see frame.rs).
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes of `file` from offset 0.
    pub(crate) fn map(
        file: &std::fs::File,
        len: u64,
        writable: bool,
        opts: MapOptions,
    ) -> Result<Self, MapError> {
        let len_usize = usize::try_from(len).map_err(|_| MapError::TooLarge { len })?;
        if len_usize == 0 {
            return Err(MapError::TooLarge { len });
        }
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        let mut flags = libc::MAP_SHARED;
        if opts.prefault {
            flags |= libc::MAP_POPULATE;
        }
        // SAFETY: null hint, valid descriptor, offset 0; the result is checked against MAP_FAILED.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len_usize,
                prot,
                flags,
                file.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(MapError::Mmap {
                len: len_usize,
                source: io::Error::last_os_error(),
            });
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or(MapError::Mmap {
            len: len_usize,
            source: io::Error::other("null mapping"),
        })?;
        let m = Self {
            ptr,
            len: len_usize,
            writable,
            guard: sigbus::register(ptr.as_ptr() as usize, len_usize, writable),
        };
        if !(ptr.as_ptr() as usize).is_multiple_of(64) {
            return Err(MapError::Misaligned {
                addr: ptr.as_ptr() as usize,
            });
        }
        if opts.mlock {
            // SAFETY: the range is exactly our live mapping.
            if unsafe { libc::mlock(p, len_usize) } != 0 {
                return Err(MapError::Mlock {
                    len: len_usize,
                    source: io::Error::last_os_error(),
                });
            }
        }
        Ok(m)
    }

    /// Set once a SIGBUS inside the mapping (file truncated under it) replaced it with zero
    /// pages: nothing read from it since can be trusted.
    pub(crate) fn dead_flag(&self) -> &'static AtomicBool {
        self.guard
            .as_ref()
            .map_or_else(sigbus::never_dead, sigbus::Registration::dead)
    }

    /// Whether the mapping is dead (acquire load).
    pub(crate) fn is_dead(&self) -> bool {
        self.dead_flag().load(Ordering::Acquire)
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn base(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The aligned 8-byte word at `offset` as an atomic.
    ///
    /// Panics if `offset` is not 8-aligned or out of bounds (callers derive offsets from
    /// validated geometry, so this is an internal invariant).
    pub(crate) fn word(&self, offset: usize) -> &AtomicU64 {
        assert!(
            offset.is_multiple_of(8) && offset + 8 <= self.len,
            "word offset {offset} invalid"
        );
        // SAFETY: in bounds and 8-aligned (base is 64-aligned); the memory lives as long as
        // `self`; all concurrent accesses to this word are atomic. A read-only mapping only
        // ever performs loads through it (x86_64 / aarch64 64-bit atomic loads are plain loads).
        unsafe { AtomicU64::from_ptr(self.base().add(offset).cast::<u64>()) }
    }

    /// Copies `out.len()` bytes (a multiple of 8) from the 8-aligned `offset` with relaxed
    /// atomic word loads: a race-free snapshot of memory another process may be writing.
    pub(crate) fn copy_words(&self, offset: usize, out: &mut [u8]) {
        debug_assert!(out.len().is_multiple_of(8));
        for (i, chunk) in out.chunks_exact_mut(8).enumerate() {
            let v = self.word(offset + i * 8).load(Ordering::Relaxed);
            chunk.copy_from_slice(&v.to_ne_bytes());
        }
    }

    /// Stores `src` (a multiple of 8 bytes) at the 8-aligned `offset` with relaxed atomic
    /// word stores. Only for writable mappings.
    pub(crate) fn store_words(&self, offset: usize, src: &[u8]) {
        assert!(self.writable, "store into a read-only mapping");
        debug_assert!(src.len().is_multiple_of(8));
        for (i, chunk) in src.chunks_exact(8).enumerate() {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            self.word(offset + i * 8)
                .store(u64::from_ne_bytes(w), Ordering::Relaxed);
        }
    }

    /// A byte view of `[offset, offset + len)`. Another process may write it concurrently:
    /// contents are meaningful only under the seqlock protocol.
    pub(crate) fn bytes(&self, offset: usize, len: usize) -> Option<&[u8]> {
        let end = offset.checked_add(len)?;
        if end > self.len {
            return None;
        }
        // SAFETY: in bounds of a live mapping that outlives the borrow.
        Some(unsafe { std::slice::from_raw_parts(self.base().add(offset), len) })
    }

    /// A mutable byte view (writable mappings; `&mut self` keeps it exclusive in-process).
    pub(crate) fn bytes_mut(&mut self, offset: usize, len: usize) -> Option<&mut [u8]> {
        assert!(self.writable, "mutable view of a read-only mapping");
        let end = offset.checked_add(len)?;
        if end > self.len {
            return None;
        }
        // SAFETY: in bounds of a live writable mapping; `&mut self` gives exclusivity within
        // this process.
        Some(unsafe { std::slice::from_raw_parts_mut(self.base().add(offset), len) })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // Deregistered first: the handler never repairs a range that is being unmapped.
        self.guard = None;
        // SAFETY: unmapping exactly the range we mapped; no borrow of it can outlive `self`.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}
