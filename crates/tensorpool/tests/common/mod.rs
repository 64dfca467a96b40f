//! Shared test helpers: a private embedded media driver and SHM base dir per test, bounded
//! waits, nothing left behind.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tensorpool::consumer::{Consumer, ConsumerBuilder};
use tensorpool::prelude::*;
use tensorpool::producer::ProducerBuilder;

pub const DEADLINE: Duration = Duration::from_secs(20);
pub const STREAM: u32 = 10_000;

/// One test's world: its own media driver (own dir under /dev/shm) and SHM base dir.
pub struct World {
    pub ctx: Context,
    pub shm: tempfile::TempDir,
    aeron_dir: PathBuf,
}

impl World {
    pub fn new() -> Self {
        let ctx = Context::embedded().expect("embedded media driver");
        let shm = tempfile::Builder::new()
            .prefix("tp-test-shm-")
            .tempdir_in("/dev/shm")
            .expect("shm tempdir");
        let aeron_dir = ctx.aeron_dir();
        Self {
            ctx,
            shm,
            aeron_dir,
        }
    }

    pub fn base(&self) -> &Path {
        self.shm.path()
    }

    /// A standalone producer with fast timers and small pools.
    pub fn producer(&self) -> ProducerBuilder {
        self.ctx
            .producer(STREAM)
            .standalone(self.base())
            .header_nslots(16)
            .pool(1, 64 * 1024)
            .configure(|c| {
                c.announce_period = Duration::from_millis(50);
                c.qos_period = Duration::from_millis(100);
                c.consumer_hello_interval = Duration::from_millis(100);
                c.prefault = false;
            })
    }

    /// A consumer allowed to map this world's files, with fast timers.
    pub fn consumer(&self) -> ConsumerBuilder {
        self.ctx
            .consumer(STREAM)
            .allowed_base_dir(self.base())
            .configure(|c| {
                c.hello_interval = Duration::from_millis(100);
                c.qos_interval = Duration::from_millis(100);
            })
    }

    /// Checks nothing is left: no files under the SHM base dir.
    pub fn assert_clean_shm(&self) {
        let left: Vec<_> = walk(self.base());
        assert!(left.is_empty(), "files left behind: {left:?}");
    }

    /// Drops everything and checks the Aeron dir is gone.
    pub fn finish(self) {
        self.assert_clean_shm();
        self.finish_aeron();
    }

    /// Drops everything (the SHM tempdir with whatever a driver left) and checks the Aeron
    /// dir is gone.
    pub fn finish_aeron(self) {
        let dir = self.aeron_dir.clone();
        drop(self);
        assert!(!dir.exists(), "aeron dir {} left behind", dir.display());
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Sleeps a little longer each idle round, never hot.
pub fn idle(round: &mut u32) {
    *round = (*round + 1).min(6);
    std::thread::sleep(Duration::from_micros(50u64 << *round));
}

/// Runs producer housekeeping and consumer polling until `cond` holds (bounded).
pub fn pump_until(
    what: &str,
    producer: &mut Producer,
    consumer: &mut Consumer,
    mut cond: impl FnMut(&Producer, &Consumer) -> bool,
) {
    let deadline = Instant::now() + DEADLINE;
    let mut round = 0;
    while !cond(producer, consumer) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        let w =
            producer.do_work(tensorpool::monotonic_ns()) + consumer.poll(|_| {}, 16).expect("poll");
        if w == 0 {
            idle(&mut round);
        } else {
            round = 0;
        }
    }
}

/// Waits until the consumer is mapped on the producer's epoch and the producer knows it.
pub fn connect(producer: &mut Producer, consumer: &mut Consumer) {
    pump_until("consumer mapped and known", producer, consumer, |p, c| {
        c.state()
            == (ConsumerState::Mapped {
                epoch: p.epoch().unwrap(),
            })
            && p.consumer_count() > 0
    });
}

/// Deterministic payload for `seq`.
pub fn fill(buf: &mut [u8], seq: u64) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = (i as u64)
            .wrapping_mul(31)
            .wrapping_add(seq.wrapping_mul(7)) as u8;
    }
}
