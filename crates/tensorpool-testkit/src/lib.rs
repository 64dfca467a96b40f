//! Test support shared by the workspace's test binaries. Dev-only: no library crate depends on
//! it outside `[dev-dependencies]`, and it is never published.
//!
//! [`CountingAllocator`] is the one counting global allocator of the zero-allocation tests
//! (ARCHITECTURE rule 2). It forwards every call to the system allocator and counts
//! allocations (`alloc`, `alloc_zeroed`, `realloc`; frees are not counted) two ways at once:
//!
//! - **per thread**: while the calling thread is armed ([`CountingAllocator::arm_thread`]), the
//!   allocations that thread makes; other threads (the Aeron conductor, a test harness) are not
//!   counted. For a single hot thread measured while others run.
//! - **process-wide**: while armed ([`CountingAllocator::arm_process`]), the allocations of
//!   every thread. For a duty cycle spread over threads, or to prove that no helper thread
//!   allocates either.
//!
//! A test binary installs it with
//!
//! ```ignore
//! use tensorpool_testkit::CountingAllocator;
//! #[global_allocator]
//! static GLOBAL: CountingAllocator = CountingAllocator;
//! ```
//!
//! and every test first proves that the counter counts (a negative control: an armed `Box`
//! or `Vec` is seen), so a zero can never be a vacuous pass.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Allocations seen while armed: how many calls and how many bytes they asked for
/// (`realloc` counts its new size).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub allocations: u64,
    pub bytes: u64,
}

impl Counts {
    /// No allocation and no byte.
    pub fn is_zero(&self) -> bool {
        *self == Counts::default()
    }
}

/// The counting global allocator (see the crate documentation).
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAllocator;

// Per thread: `const` thread-locals of `Cell<u64>`/`Cell<bool>` need no destructor, so their
// first use registers nothing and allocates nothing (no recursion into the allocator).
thread_local! {
    static THREAD_ARMED: Cell<bool> = const { Cell::new(false) };
    static THREAD_ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static THREAD_BYTES: Cell<u64> = const { Cell::new(0) };
}

static PROCESS_ARMED: AtomicBool = AtomicBool::new(false);
static PROCESS_ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static PROCESS_BYTES: AtomicU64 = AtomicU64::new(0);

/// Counts one allocation of `size` bytes. Neither allocates nor panics (`try_with`: a thread
/// being torn down is simply not counted).
fn note(size: usize) {
    if PROCESS_ARMED.load(Ordering::Relaxed) {
        PROCESS_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        PROCESS_BYTES.fetch_add(size as u64, Ordering::Relaxed);
    }
    let _ = THREAD_ARMED.try_with(|armed| {
        if armed.get() {
            let _ = THREAD_ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
            let _ = THREAD_BYTES.try_with(|b| b.set(b.get() + size as u64));
        }
    });
}

impl CountingAllocator {
    /// Starts counting this thread's allocations (the counts go on from where they are).
    pub fn arm_thread() {
        THREAD_ARMED.with(|a| a.set(true));
    }

    /// Stops counting this thread's allocations.
    pub fn disarm_thread() {
        THREAD_ARMED.with(|a| a.set(false));
    }

    /// This thread's counts so far.
    pub fn thread_counts() -> Counts {
        Counts {
            allocations: THREAD_ALLOCATIONS.with(Cell::get),
            bytes: THREAD_BYTES.with(Cell::get),
        }
    }

    /// Sets this thread's counts back to zero.
    pub fn reset_thread() {
        THREAD_ALLOCATIONS.with(|n| n.set(0));
        THREAD_BYTES.with(|b| b.set(0));
    }

    /// The allocations this thread makes while `f` runs (armed around `f` alone).
    pub fn count_thread<R>(f: impl FnOnce() -> R) -> (R, Counts) {
        let before = Self::thread_counts();
        Self::arm_thread();
        let r = f();
        Self::disarm_thread();
        let after = Self::thread_counts();
        (
            r,
            Counts {
                allocations: after.allocations - before.allocations,
                bytes: after.bytes - before.bytes,
            },
        )
    }

    /// Starts counting every thread's allocations.
    pub fn arm_process() {
        PROCESS_ARMED.store(true, Ordering::SeqCst);
    }

    /// Stops counting every thread's allocations.
    pub fn disarm_process() {
        PROCESS_ARMED.store(false, Ordering::SeqCst);
    }

    /// The process-wide counts so far.
    pub fn process_counts() -> Counts {
        Counts {
            allocations: PROCESS_ALLOCATIONS.load(Ordering::SeqCst),
            bytes: PROCESS_BYTES.load(Ordering::SeqCst),
        }
    }

    /// Sets the process-wide counts back to zero.
    pub fn reset_process() {
        PROCESS_ALLOCATIONS.store(0, Ordering::SeqCst);
        PROCESS_BYTES.store(0, Ordering::SeqCst);
    }
}

// SAFETY: forwards every call to the system allocator with the caller's own arguments, so the
// `GlobalAlloc` contract holds exactly as it does for `System`; the bookkeeping (`note`) uses
// atomics and const thread-locals only: it neither allocates nor panics nor unwinds.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// A small tmpfs mounted for one test (a full file system on demand: `ENOSPC` tests). Needs
/// root (CI runs as root); [`SmallTmpfs::mount`] returns why not otherwise, and the test skips
/// with that reason. Unmounted (lazily) and removed on drop.
#[derive(Debug)]
pub struct SmallTmpfs {
    dir: std::path::PathBuf,
}

impl SmallTmpfs {
    /// Mounts a tmpfs of `bytes` (rounded up to pages by the kernel) on a fresh directory.
    pub fn mount(bytes: u64) -> Result<Self, String> {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tp-tmpfs-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={bytes},mode=0700"),
                "tmpfs",
            ])
            .arg(&dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Ok(Self { dir }),
            Ok(o) => {
                let _ = std::fs::remove_dir(&dir);
                Err(format!(
                    "cannot mount a tmpfs (not root?): {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ))
            }
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                Err(format!("cannot run mount: {e}"))
            }
        }
    }

    /// The mount point.
    pub fn path(&self) -> &std::path::Path {
        &self.dir
    }
}

impl Drop for SmallTmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// A hugetlbfs mounted for one test, with huge pages reserved for it
/// (`/proc/sys/vm/nr_hugepages` raised by the pages asked for, restored on drop). Needs root
/// and a kernel with hugetlbfs; [`HugeTlbfs::mount`] returns why not otherwise (the test
/// skips with that reason).
#[derive(Debug)]
pub struct HugeTlbfs {
    dir: std::path::PathBuf,
    restore_pages: Option<u64>,
}

const NR_HUGEPAGES: &str = "/proc/sys/vm/nr_hugepages";

fn read_nr_hugepages() -> Result<u64, String> {
    std::fs::read_to_string(NR_HUGEPAGES)
        .map_err(|e| format!("{NR_HUGEPAGES}: {e}"))?
        .trim()
        .parse()
        .map_err(|e| format!("{NR_HUGEPAGES}: {e}"))
}

impl HugeTlbfs {
    /// Reserves `pages` more default-size huge pages and mounts a hugetlbfs on a fresh
    /// directory.
    pub fn mount(pages: u64) -> Result<Self, String> {
        static N: AtomicU64 = AtomicU64::new(0);
        let before = read_nr_hugepages()?;
        std::fs::write(NR_HUGEPAGES, (before + pages).to_string())
            .map_err(|e| format!("cannot reserve huge pages (not root?): {e}"))?;
        let mut fs = Self {
            dir: std::env::temp_dir().join(format!(
                "tp-hugetlbfs-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            )),
            restore_pages: Some(before),
        };
        let got = read_nr_hugepages()?;
        if got < before + pages {
            return Err(format!(
                "the kernel reserved {} of {pages} huge pages (memory fragmented?)",
                got.saturating_sub(before)
            ));
        }
        std::fs::create_dir_all(&fs.dir).map_err(|e| format!("mkdir: {e}"))?;
        let out = std::process::Command::new("mount")
            .args(["-t", "hugetlbfs", "-o", "mode=0700", "none"])
            .arg(&fs.dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            let why = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            let _ = std::fs::remove_dir(&fs.dir);
            fs.dir = std::path::PathBuf::new();
            return Err(format!("cannot mount hugetlbfs: {why}"));
        }
        Ok(fs)
    }

    /// The mount point.
    pub fn path(&self) -> &std::path::Path {
        &self.dir
    }
}

impl Drop for HugeTlbfs {
    fn drop(&mut self) {
        if !self.dir.as_os_str().is_empty() {
            let _ = std::process::Command::new("umount").arg(&self.dir).status();
            let _ = std::fs::remove_dir(&self.dir);
        }
        if let Some(before) = self.restore_pages {
            let _ = std::fs::write(NR_HUGEPAGES, before.to_string());
        }
    }
}
