//! SIGBUS protection for mapped region files.
//!
//! A file mapped `MAP_SHARED` that another process truncates raises `SIGBUS` on the next
//! access to a page past its new end: by default the reader dies. Every [`crate::mapping`]
//! mapping is registered in a fixed process-wide table, and a process-wide `SIGBUS` handler
//! (installed once, at the first registration, `SA_SIGINFO | SA_ONSTACK`) recognises faults
//! inside a registered mapping: it maps anonymous zero pages over the whole mapping with
//! `MAP_FIXED` (read-only for read-only mappings), marks the mapping **dead** and returns, so
//! the faulting load re-executes and reads zeros. Readers check the dead flag (one atomic
//! load) together with the seqlock recheck, so nothing read from a dead region is accepted
//! ([`crate::DropReason::RegionDead`]); a consumer then unmaps and waits for a new epoch.
//!
//! A fault outside every registered mapping goes to the handler that was installed before
//! ours (Rust's own stack-overflow handler, an application's), or, if there was none, to the
//! default action (the signal is re-raised with `SIG_DFL`: the process terminates as it would
//! have). The handler touches only atomics and calls `mmap` / `sigaction` / `raise` (system
//! calls; `mmap` is not on the POSIX async-signal-safe list but is a plain system call on
//! Linux). An application that installs its own `SIGBUS` handler after ours must chain to it.
//!
//! The table holds [`CAPACITY`] mappings; a mapping made when it is full is not protected
//! ([`protected_count`] tells how many are).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

/// Mappings the table holds at once.
pub const CAPACITY: usize = 1024;

const FREE: u8 = 0;
const CLAIMED: u8 = 1;
const LIVE: u8 = 2;
const BUSY: u8 = 3;

struct Entry {
    state: AtomicU8,
    start: AtomicUsize,
    len: AtomicUsize,
    writable: AtomicBool,
    dead: AtomicBool,
}

impl Entry {
    const fn new() -> Self {
        Self {
            state: AtomicU8::new(FREE),
            start: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
            writable: AtomicBool::new(false),
            dead: AtomicBool::new(false),
        }
    }
}

static TABLE: [Entry; CAPACITY] = [const { Entry::new() }; CAPACITY];
/// Faults repaired since the process started (tests and diagnostics).
static REPAIRED: AtomicUsize = AtomicUsize::new(0);
/// A flag that is never set: the dead flag of a mapping the table could not hold.
static NEVER_DEAD: AtomicBool = AtomicBool::new(false);

struct Previous(libc::sigaction);
// SAFETY: written once before our handler is installed, then only read.
unsafe impl Sync for Previous {}
// SAFETY: plain data.
unsafe impl Send for Previous {}
static PREVIOUS: OnceLock<Previous> = OnceLock::new();

/// A registered mapping; deregistered on drop (which must come before `munmap`).
#[derive(Debug)]
pub(crate) struct Registration {
    index: usize,
}

impl Registration {
    /// The mapping's dead flag: set (release) by the handler after it replaced the mapping.
    pub(crate) fn dead(&self) -> &'static AtomicBool {
        &TABLE[self.index].dead
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let e = &TABLE[self.index];
        // A handler repairing this mapping holds it BUSY for the length of one mmap call.
        while e
            .state
            .compare_exchange(LIVE, FREE, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            std::hint::spin_loop();
        }
    }
}

/// Registers `[start, start + len)`; `None` when the table is full (the mapping is then not
/// protected). Installs the handler at the first call.
pub(crate) fn register(start: usize, len: usize, writable: bool) -> Option<Registration> {
    install();
    for (index, e) in TABLE.iter().enumerate() {
        if e.state
            .compare_exchange(FREE, CLAIMED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            e.start.store(start, Ordering::Relaxed);
            e.len.store(len, Ordering::Relaxed);
            e.writable.store(writable, Ordering::Relaxed);
            e.dead.store(false, Ordering::Relaxed);
            e.state.store(LIVE, Ordering::Release);
            return Some(Registration { index });
        }
    }
    None
}

/// The dead flag to use for a mapping without a registration.
pub(crate) fn never_dead() -> &'static AtomicBool {
    &NEVER_DEAD
}

/// Faults inside registered mappings repaired by the handler since the process started.
pub fn repaired_faults() -> usize {
    REPAIRED.load(Ordering::Relaxed)
}

/// Mappings currently registered (protected).
pub fn protected_count() -> usize {
    TABLE
        .iter()
        .filter(|e| e.state.load(Ordering::Relaxed) != FREE)
        .count()
}

fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: all-zero is a valid `sigaction` (no handler, empty mask, no flags).
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: querying the current action into a valid out pointer.
        unsafe { libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut old) };
        let _ = PREVIOUS.set(Previous(old));
        // SAFETY: as above.
        let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
        act.sa_sigaction = on_sigbus as *const () as usize;
        act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        // SAFETY: `sa_mask` is a valid sigset; the handler has the SA_SIGINFO signature.
        unsafe {
            libc::sigemptyset(&mut act.sa_mask);
            libc::sigaction(libc::SIGBUS, &act, std::ptr::null_mut());
        }
    });
}

/// Replaces entry `e`'s mapping with anonymous zero pages and marks it dead.
fn repair(e: &Entry) {
    let (start, len) = (
        e.start.load(Ordering::Relaxed),
        e.len.load(Ordering::Relaxed),
    );
    let prot = if e.writable.load(Ordering::Relaxed) {
        libc::PROT_READ | libc::PROT_WRITE
    } else {
        libc::PROT_READ
    };
    // SAFETY: [start, start + len) is a live mapping this process owns (the entry is BUSY,
    // so its owner cannot unmap it now); MAP_FIXED replaces it in place with zero pages.
    unsafe {
        libc::mmap(
            start as *mut libc::c_void,
            len,
            prot,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
            -1,
            0,
        );
    }
    e.dead.store(true, Ordering::Release);
    REPAIRED.fetch_add(1, Ordering::Relaxed);
}

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for an SA_SIGINFO handler.
    let addr = if info.is_null() {
        0
    } else {
        unsafe { (*info).si_addr() as usize }
    };
    for e in TABLE.iter() {
        if e.state.load(Ordering::Acquire) == FREE {
            continue;
        }
        let (start, len) = (
            e.start.load(Ordering::Relaxed),
            e.len.load(Ordering::Relaxed),
        );
        if addr < start || addr - start >= len {
            continue;
        }
        match e
            .state
            .compare_exchange(LIVE, BUSY, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                repair(e);
                e.state.store(LIVE, Ordering::Release);
                return;
            }
            Err(BUSY) => {
                // Another thread is repairing it: the faulting load succeeds once it is done.
                while e.state.load(Ordering::Acquire) == BUSY {
                    std::hint::spin_loop();
                }
                return;
            }
            Err(_) => {}
        }
    }
    chain(sig, info, ctx);
}

/// Not our fault: the previous handler, else the default action.
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let prev = PREVIOUS.get().map(|p| p.0.sa_sigaction);
    let flags = PREVIOUS.get().map_or(0, |p| p.0.sa_flags);
    match prev {
        Some(h) if h != libc::SIG_DFL && h != libc::SIG_IGN => {
            if flags & libc::SA_SIGINFO != 0 {
                // SAFETY: the previous handler was installed with SA_SIGINFO: this signature.
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    unsafe { std::mem::transmute(h) };
                f(sig, info, ctx);
            } else {
                // SAFETY: a plain handler takes the signal number only.
                let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(h) };
                f(sig);
            }
        }
        _ => {
            // SAFETY: restoring the default action and re-raising: the signal is blocked in
            // this handler, so it is delivered (and terminates) when the handler returns.
            unsafe {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigemptyset(&mut dfl.sa_mask);
                libc::sigaction(libc::SIGBUS, &dfl, std::ptr::null_mut());
                libc::raise(libc::SIGBUS);
            }
        }
    }
}
