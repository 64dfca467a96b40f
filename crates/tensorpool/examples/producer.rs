//! Produces 480x640 u16 frames at 100 Hz into shared memory (standalone: no SHM driver).
//! It also runs the Aeron media driver the consumer example connects to.
//!
//! ```sh
//! cargo run --release -p tensorpool --example producer     # terminal 1
//! cargo run --release -p tensorpool --example consumer     # terminal 2
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tensorpool::prelude::*;
use tensorpool_aeron::MediaDriverConfig;

/// Where the example's Aeron media driver lives, and its SHM files: under /dev/shm, or
/// under `$TP_EXAMPLE_ROOT` when set (both examples read it).
fn dirs() -> (PathBuf, PathBuf) {
    let root = PathBuf::from(std::env::var_os("TP_EXAMPLE_ROOT").unwrap_or("/dev/shm".into()));
    (
        root.join("tensorpool-example-aeron"),
        root.join("tensorpool-example"),
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Ctrl-C (or SIGTERM) ends the loop: the producer then removes its files and the embedded
    // media driver its directory.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone())?;
    }
    let (aeron_dir, shm_dir) = dirs();
    let ctx = Context::embedded_with(MediaDriverConfig::default().dir(aeron_dir))?;
    let mut producer = ctx.producer(10_000).standalone(&shm_dir).build()?;
    let spec = TensorSpec::new(Dtype::Uint16, &[480, 640])?;
    println!(
        "producing on stream 10000, epoch {:?}; Ctrl-C to stop",
        producer.epoch()
    );

    let period = Duration::from_millis(10);
    let mut next = Instant::now();
    for i in 0u64.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        // Claim a slot, write the tensor in place, commit: zero copy.
        let mut claim = producer.claim(&spec)?;
        let pixels = claim.payload_mut();
        for (j, px) in pixels.chunks_exact_mut(2).enumerate() {
            px.copy_from_slice(&((i as u16).wrapping_add(j as u16)).to_le_bytes());
        }
        let seq = claim.commit();
        if seq.is_multiple_of(100) {
            println!("frame {seq}, consumers: {}", producer.consumer_count());
        }
        // Announces, QoS and consumer hellos, until the next frame is due (at least once:
        // a producer running late, e.g. an unoptimized build, still announces itself).
        next += period;
        loop {
            producer.do_work(tensorpool::monotonic_ns());
            std::thread::sleep(Duration::from_micros(500));
            if Instant::now() >= next || stop.load(Ordering::Relaxed) {
                break;
            }
        }
    }
    // the producer removes its epoch files; the base directory it created goes too
    drop(producer);
    let _ = std::fs::remove_dir(&shm_dir);
    println!("stopped: files removed");
    Ok(())
}
