//! Two-process torn-read stress test (Wire Spec §8.3, §15.3, §15.13 "no torn reads").
//!
//! The test process creates an 8-slot ring with one 4 KiB pool, then re-executes its own test
//! binary as the producer (`--exact stress_child_producer --ignored`, with `TP_STRESS_DIR`
//! set). The producer overwrites the ring as fast as it can; every payload carries its
//! sequence number and a CRC32C, and the header carries the sequence in `timestamp_ns` and a
//! payload length derived from it. The test process reads the newest committed slot with the
//! seqlock protocol, verifies every accepted frame, and asserts: no corrupt frame accepted,
//! some frames accepted, some dropped as late / in flight (proof the race was exercised).
//!
//! `TP_STRESS_READS` sets the number of reads (default 1,000,000), e.g.
//! `TP_STRESS_READS=100000000 cargo test --release -p tensorpool-shm --test stress -- --nocapture`.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use tensorpool_shm::layout::{FileModes, ShmLayout};
use tensorpool_shm::tensor::{self, Dtype, MajorOrder};
use tensorpool_shm::{
    AllowedBaseDirs, DropReason, ExpectedRegion, FrameMeta, HeaderRing, LAYOUT_VERSION, MapOptions,
    PayloadPool, PoolSet, ReadOnly, ReadWrite, seqlock,
};

const NSLOTS: u32 = 8;
const STRIDE: u32 = 4096;
const DIR_ENV: &str = "TP_STRESS_DIR";

/// Payload length of frame `seq`: 1..=4096 bytes, varying so a torn read mixes lengths.
fn payload_len(seq: u64) -> u32 {
    1024 + ((seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 52) as u32 % 3073)
}

/// Fills a payload: 8 bytes of seq, pseudo-random bytes, last 4 bytes CRC32C of the rest.
fn fill_payload(seq: u64, p: &mut [u8]) {
    let n = p.len();
    p[..8].copy_from_slice(&seq.to_le_bytes());
    let mut x = seq | 1;
    for b in &mut p[8..n - 4] {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let crc = crc32c::crc32c(&p[..n - 4]);
    p[n - 4..].copy_from_slice(&crc.to_le_bytes());
}

/// Whether an accepted frame is exactly what the producer wrote for `seq`.
fn frame_ok(seq: u64, timestamp_ns: u64, values_len: u32, p: &[u8]) -> bool {
    let n = p.len();
    n == payload_len(seq) as usize
        && values_len as usize == n
        && timestamp_ns == seq
        && p[..8] == seq.to_le_bytes()
        && crc32c::crc32c(&p[..n - 4]).to_le_bytes() == p[n - 4..]
}

fn layout(base: &Path) -> (ShmLayout, AllowedBaseDirs) {
    (
        ShmLayout::for_user(base, "tester", "default", FileModes::default()).unwrap(),
        AllowedBaseDirs::new([base]).unwrap(),
    )
}

fn open<M: tensorpool_shm::Mode>(base: &Path) -> (HeaderRing<M>, PoolSet<M>) {
    let (layout, allowed) = layout(base);
    let ring_uri =
        tensorpool_shm::RegionUri::new(layout.header_ring_path(STREAM_ID, EPOCH), None).unwrap();
    let ring = HeaderRing::open(
        &ring_uri,
        &allowed,
        &ExpectedRegion::header_ring(LAYOUT_VERSION, EPOCH, STREAM_ID, NSLOTS),
        MapOptions::default(),
    )
    .unwrap();
    let pool_uri =
        tensorpool_shm::RegionUri::new(layout.pool_path(STREAM_ID, EPOCH, 1), None).unwrap();
    let pool = PayloadPool::open(
        &pool_uri,
        &allowed,
        &ExpectedRegion::payload_pool(LAYOUT_VERSION, EPOCH, STREAM_ID, 1, NSLOTS, STRIDE),
        MapOptions::default(),
    )
    .unwrap();
    (ring, PoolSet::new(vec![pool], NSLOTS).unwrap())
}

/// The producer half; runs only when re-executed by the stress test.
#[test]
#[ignore = "child process of w_15_13_two_process_torn_read_stress"]
fn stress_child_producer() {
    let Some(dir) = std::env::var_os(DIR_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let stop = dir.join("stop");
    let (mut ring, mut pools) = open::<ReadWrite>(&dir.join("tp"));
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut seq = 1u64;
    loop {
        let len = payload_len(seq);
        let meta = FrameMeta {
            tensor: tensor::contiguous(Dtype::Uint8, MajorOrder::Row, &[len as i32]).unwrap(),
            timestamp_ns: seq,
            meta_version: seq as u32,
        };
        ring.write_frame(&mut pools, seq, &meta, len, |p| fill_payload(seq, p))
            .unwrap();
        seq += 1;
        if seq.is_multiple_of(256) && (stop.exists() || Instant::now() > deadline) {
            break;
        }
    }
    println!("producer wrote {} frames", seq - 1);
}

struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The newest committed sequence visible in the ring (0 if none).
fn newest_committed(ring: &HeaderRing<ReadOnly>) -> u64 {
    (0..ring.nslots())
        .map(|i| ring.seq_commit(i))
        .filter(|&w| seqlock::is_committed(w))
        .map(seqlock::sequence)
        .max()
        .unwrap_or(0)
}

#[test]
fn w_15_13_two_process_torn_read_stress() {
    let reads: u64 = std::env::var("TP_STRESS_READS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let s = create_stream(NSLOTS, &[STRIDE]);
    let dir = s.tmp.path().to_path_buf();
    let exe = std::env::current_exe().unwrap();
    let child = Command::new(exe)
        .args([
            "--exact",
            "stress_child_producer",
            "--nocapture",
            "--ignored",
            "--test-threads=1",
        ])
        .env(DIR_ENV, &dir)
        // the child's own test-harness summary must not mix with this run's output
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn producer");
    let mut guard = ChildGuard(child);

    let (ring, pools) = open::<ReadOnly>(&s.base);
    let start_deadline = Instant::now() + Duration::from_secs(30);
    while newest_committed(&ring) == 0 {
        assert!(
            Instant::now() < start_deadline,
            "producer process committed nothing within 30 s"
        );
        if let Ok(Some(status)) = guard.0.try_wait() {
            panic!("producer exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }

    let started = Instant::now();
    let mut accepted = 0u64;
    let mut corrupt = 0u64;
    let mut torn_caught = 0u64;
    let mut drops = [0u64; DropReason::COUNT];
    let mut copy = vec![0u8; STRIDE as usize];
    for i in 0..reads {
        // Mostly the newest frame; every 4th read the oldest one still in the ring, which the
        // producer is about to overwrite (the most likely torn read).
        let newest = newest_committed(&ring);
        let seq = if i % 4 == 3 {
            newest.saturating_sub(u64::from(NSLOTS) - 1).max(1)
        } else {
            newest
        };
        match ring.read_frame(&pools, seq) {
            Err(r) => drops[r.index()] += 1,
            Ok(view) if i % 2 == 0 => {
                // copy, then recheck (copy_payload_to does both)
                match view.copy_payload_to(&mut copy) {
                    Some(Ok(n)) => {
                        accepted += 1;
                        let h = view.header();
                        if !frame_ok(seq, h.timestamp_ns, h.values_len_bytes, &copy[..n]) {
                            corrupt += 1;
                        }
                    }
                    Some(Err(r)) => drops[r.index()] += 1,
                    None => corrupt += 1,
                }
            }
            Ok(view) => {
                // zero copy: inspect in place, then recheck before trusting the verdict
                let h = view.header();
                let ok = frame_ok(seq, h.timestamp_ns, h.values_len_bytes, view.payload());
                match view.recheck() {
                    Ok(()) => {
                        accepted += 1;
                        if !ok {
                            corrupt += 1;
                        }
                    }
                    Err(r) => {
                        drops[r.index()] += 1;
                        // the bytes really were torn, and only the recheck caught it
                        torn_caught += u64::from(!ok);
                    }
                }
            }
        }
    }
    let elapsed = started.elapsed();
    let written = newest_committed(&ring);
    std::fs::write(dir.join("stop"), b"").unwrap();
    let wait_deadline = Instant::now() + Duration::from_secs(10);
    while guard.0.try_wait().unwrap().is_none() && Instant::now() < wait_deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let exited = guard.0.try_wait().unwrap();
    let mut child_out = String::new();
    if exited.is_some() {
        if let Some(mut o) = guard.0.stdout.take() {
            let _ = o.read_to_string(&mut child_out);
        }
        if let Some(mut e) = guard.0.stderr.take() {
            let _ = e.read_to_string(&mut child_out);
        }
    }
    drop(guard);
    let produced = child_out
        .lines()
        .find(|l| l.contains("producer wrote"))
        .unwrap_or("producer output unavailable");
    println!("{produced}");
    assert!(
        exited.is_some_and(|s| s.success()),
        "producer failed: {exited:?}\n{child_out}"
    );

    let rejected: u64 = drops.iter().sum();
    println!(
        "stress: {reads} reads in {:.2} s, producer reached seq {written}; accepted {accepted}, rejected {rejected}, corrupt accepted {corrupt}, torn payloads caught by the recheck {torn_caught}",
        elapsed.as_secs_f64()
    );
    for r in DropReason::ALL {
        if drops[r.index()] > 0 {
            println!("  dropped {:?}: {}", r, drops[r.index()]);
        }
    }
    assert_eq!(corrupt, 0, "a torn frame was accepted");
    assert!(accepted > 0, "no frame accepted");
    let racy = drops[DropReason::Late.index()]
        + drops[DropReason::NotCommitted.index()]
        + drops[DropReason::Overwritten.index()];
    assert!(
        racy > 0,
        "no late / in-flight drop: the race was not exercised"
    );
    let structural = rejected - racy - drops[DropReason::Stale.index()];
    assert_eq!(
        structural, 0,
        "validation drops under a correct producer: {drops:?}"
    );
}
