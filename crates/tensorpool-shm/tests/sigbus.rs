//! A region file truncated under a live mapping (SIGBUS): the process survives, the mapping
//! turns dead, and no frame is accepted from it ([`DropReason::RegionDead`]). A SIGBUS
//! outside our mappings still takes the default action.
//!
//! `TP_SIGBUS_TRUNCATIONS` sets the number of truncations (default 1000).

mod common;

use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use tensorpool_shm::tensor::{self, Dtype, MajorOrder};
use tensorpool_shm::{DropReason, FrameMeta, ReadOnly, ReadWrite, sigbus};

const NSLOTS: u32 = 8;
const STRIDE: u32 = 4096;

fn pattern(seq: u64, i: usize) -> u8 {
    ((seq.wrapping_mul(7) as usize + i * 31) as u8) | 1
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Debug, Default)]
struct Tally {
    truncations: u64,
    accepted: u64,
    dead_drops: u64,
    dead_readers: u64,
}

/// One stream, a writer and a reader in this thread, and a thread that truncates the header
/// ring or the pool at a random moment to a random length; reading goes on until the reader
/// has touched the truncated pages.
fn one_truncation(rng: &mut Rng, tally: &mut Tally) {
    let s = create_stream(NSLOTS, &[STRIDE]);
    let mut wring = s.ring::<ReadWrite>();
    let mut wpools = s.pools::<ReadWrite>();
    let rring = s.ring::<ReadOnly>();
    let rpools = s.pools::<ReadOnly>();
    let meta = FrameMeta {
        tensor: tensor::contiguous(Dtype::Uint8, MajorOrder::Row, &[STRIDE as i32]).unwrap(),
        timestamp_ns: 1,
        meta_version: 0,
    };
    let header = rng.below(2) == 0;
    let (path, new_len) = if header {
        // 8 slots fit one page: only length 0 leaves no page behind.
        (s.header_path(), 0)
    } else {
        let pages = rng.below(u64::from(NSLOTS));
        (s.created.pool_uris[0].1.to_path_buf(), pages * 4096)
    };
    let delay = Duration::from_micros(rng.below(300));
    let done = Arc::new(AtomicBool::new(false));
    let truncator = {
        let done = done.clone();
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            f.set_len(new_len).unwrap();
            done.store(true, Ordering::Release);
        })
    };
    let dead = || rring.is_dead() || rpools.pools()[0].is_dead();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seq = 0u64;
    let mut after = 0;
    let mut copy = vec![0u8; STRIDE as usize];
    // Until the truncation happened and the reader went round the whole ring twice.
    while !(done.load(Ordering::Acquire) && after > 2 * NSLOTS) {
        assert!(Instant::now() < deadline, "truncation never happened");
        if done.load(Ordering::Acquire) {
            after += 1;
        }
        wring
            .write_frame(&mut wpools, seq, &meta, STRIDE, |p| {
                for (i, b) in p.iter_mut().enumerate() {
                    *b = pattern(seq, i);
                }
            })
            .unwrap();
        match rring.read_frame(&rpools, seq) {
            Ok(view) => match view.copy_payload_to(&mut copy) {
                Some(Ok(n)) => {
                    assert_eq!(n, STRIDE as usize);
                    assert!(
                        copy.iter().enumerate().all(|(i, &b)| b == pattern(seq, i)),
                        "accepted frame {seq} with bytes that were not committed"
                    );
                    tally.accepted += 1;
                }
                Some(Err(DropReason::RegionDead)) => tally.dead_drops += 1,
                Some(Err(_)) => {}
                None => unreachable!(),
            },
            Err(DropReason::RegionDead) => tally.dead_drops += 1,
            Err(_) => {}
        }
        seq += 1;
    }
    truncator.join().unwrap();
    // A truncated header ring: the reader touched its only page, the mapping is dead. A
    // truncated pool: the writer's own mapping died at its next write, so it stopped
    // committing (the slots stay in progress); the reader is dead if it read a payload
    // committed before the cut. Either way a read now is refused.
    if header {
        assert!(dead(), "reader touched the truncated page but is not dead");
    }
    if dead() {
        tally.dead_readers += 1;
    }
    let again = rring.read_frame(&rpools, seq - 1).and_then(|v| v.recheck());
    assert!(again.is_err(), "a frame read from a dead region");
    tally.truncations += 1;
}

#[test]
fn w_15_21_truncation_under_a_live_mapping_is_survived_and_nothing_is_accepted_from_it() {
    let n: u64 = std::env::var("TP_SIGBUS_TRUNCATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut rng = Rng(seed);
    let mut tally = Tally::default();
    let start = Instant::now();
    let repaired = sigbus::repaired_faults();
    for _ in 0..n {
        one_truncation(&mut rng, &mut tally);
    }
    eprintln!(
        "seed {seed:#x}: {tally:?}, {} faults repaired, {:?}",
        sigbus::repaired_faults() - repaired,
        start.elapsed()
    );
    assert_eq!(tally.truncations, n);
    assert!(tally.accepted > 0, "frames flowed before the truncations");
    assert!(sigbus::repaired_faults() - repaired >= n as usize);
    assert_eq!(sigbus::protected_count(), 0, "every mapping deregistered");
}

const CHILD: &str = "TP_SIGBUS_CHILD";

/// A SIGBUS outside every registered mapping is not swallowed: with our handler installed,
/// touching a truncated page of a mapping we did not register kills the process with SIGBUS.
#[test]
fn sigbus_outside_our_mappings_takes_the_default_action() {
    if std::env::var_os(CHILD).is_some() {
        let no_core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: setting our own core size limit to 0 (no core file from the expected death).
        unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) };
        let s = create_stream(NSLOTS, &[STRIDE]);
        let _ring = s.ring::<ReadOnly>(); // installs the handler
        let f = tempfile::tempfile_in(s.tmp.path()).unwrap();
        f.set_len(8192).unwrap();
        use std::os::fd::AsRawFd;
        // SAFETY: a fresh private test mapping of our own file.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                8192,
                libc::PROT_READ,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        // The process dies below without running destructors: the parent removes the dir.
        println!("tmp={}", s.tmp.path().display());
        std::io::Write::flush(&mut std::io::stdout()).unwrap();
        f.set_len(0).unwrap();
        // SAFETY: in bounds of the mapping; the page is past the end of the file: SIGBUS.
        let v = unsafe { std::ptr::read_volatile(p.cast::<u8>().add(4096)) };
        println!("survived with {v}");
        std::process::exit(0);
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sigbus_outside_our_mappings_takes_the_default_action",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if let Some(dir) = stdout.lines().find_map(|l| l.strip_prefix("tmp=")) {
        std::fs::remove_dir_all(dir).unwrap();
    }
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGBUS),
        "{:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
}
