//! Consumes the producer example's frames: prints shape, dtype and the mean pixel of one frame
//! per second, with the drop counters. Start the producer example first.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tensorpool::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone())?;
    }
    // the producer example's directories (under /dev/shm, or `$TP_EXAMPLE_ROOT`)
    let root = PathBuf::from(std::env::var_os("TP_EXAMPLE_ROOT").unwrap_or("/dev/shm".into()));
    let ctx = Context::connect(root.join("tensorpool-example-aeron"))?;
    let mut consumer = ctx
        .consumer(10_000)
        .allowed_base_dir(root.join("tensorpool-example"))
        .build()?;
    let mut last_print = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let mut report = None;
        let work = consumer.poll(
            |frame: &Frame<'_>| {
                if last_print.elapsed() < Duration::from_secs(1) {
                    return;
                }
                // Read in place, then recheck: only then are the bytes the committed frame.
                let sum: u64 = frame
                    .bytes()
                    .chunks_exact(2)
                    .map(|p| u64::from(u16::from_le_bytes([p[0], p[1]])))
                    .sum();
                if frame.recheck().is_ok() {
                    let n = frame.shape().iter().product::<usize>().max(1) as u64;
                    report = Some((frame.seq(), frame.shape(), frame.dtype(), sum / n));
                }
            },
            16,
        )?;
        if let Some((seq, shape, dtype, mean)) = report {
            last_print = Instant::now();
            let c = consumer.counters();
            let d = consumer.drops();
            println!(
                "frame {seq}: {shape:?} {dtype}, mean {mean}; accepted {}, dropped {}, gaps {}, state {:?}",
                c.accepted,
                d.total(),
                d.gap,
                consumer.state()
            );
        }
        if work == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    println!("stopped");
    Ok(())
}
