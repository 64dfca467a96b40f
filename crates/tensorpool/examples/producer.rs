//! Produces 480x640 u16 frames at 100 Hz into shared memory (standalone: no SHM driver).
//! It also runs the Aeron media driver the consumer example connects to.
//!
//! ```sh
//! cargo run --release -p tensorpool --example producer     # terminal 1
//! cargo run --release -p tensorpool --example consumer     # terminal 2
//! ```

use std::time::{Duration, Instant};

use tensorpool::prelude::*;
use tensorpool_aeron::MediaDriverConfig;

/// Where the example's Aeron media driver lives, and its SHM files.
pub const AERON_DIR: &str = "/dev/shm/tensorpool-example-aeron";
pub const SHM_DIR: &str = "/dev/shm/tensorpool-example";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ctx = Context::embedded_with(MediaDriverConfig::default().dir(AERON_DIR))?;
    let mut producer = ctx.producer(10_000).standalone(SHM_DIR).build()?;
    let spec = TensorSpec::new(Dtype::Uint16, &[480, 640])?;
    println!(
        "producing on stream 10000, epoch {:?}; Ctrl-C to stop",
        producer.epoch()
    );

    let period = Duration::from_millis(10);
    let mut next = Instant::now();
    for i in 0u64.. {
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
            if Instant::now() >= next {
                break;
            }
        }
    }
    Ok(())
}
