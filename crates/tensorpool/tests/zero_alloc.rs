//! ARCHITECTURE rule 2: after start-up, 10^6 produce/commit/publish and poll/accept cycles
//! allocate nothing, with progress and QoS enabled and every periodic timer (announce, QoS,
//! data-source announce, metadata, hello, liveness) firing during the measured window. A
//! counting global allocator counts allocations made by this thread.

mod common;

use std::time::Duration;

use common::*;
use tensorpool::consumer::{FrameHandler, Progress, ProgressHints};
use tensorpool::prelude::*;
use tensorpool::producer::{MetaAttribute, ProgressPolicy};
use tensorpool_testkit::CountingAllocator;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[derive(Default)]
struct Sink {
    frames: u64,
    progress: u64,
    checksum: u64,
}

impl FrameHandler for Sink {
    fn on_frame(&mut self, frame: &Frame<'_>) {
        let b = frame.bytes();
        let s = u64::from(b[0]) + u64::from(b[b.len() - 1]);
        if frame.recheck().is_ok() {
            self.frames += 1;
            self.checksum = self.checksum.wrapping_add(s);
        }
    }
    fn on_progress(&mut self, _p: &Progress<'_>) {
        self.progress += 1;
    }
}

#[test]
fn arch_2_a_million_cycles_allocate_nothing() {
    let cycles: u64 = std::env::var("TP_ZERO_ALLOC_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let world = World::new();
    let fast = Duration::from_millis(5);
    let zero = ProgressPolicy {
        interval_us: 0,
        bytes_delta: 0,
        major_delta_units: 0,
    };
    let mut producer = world
        .producer()
        .configure(|c| {
            c.announce_period = fast;
            c.qos_period = fast;
            c.data_source_period = fast;
            c.meta_period = fast;
            c.progress_floor = zero;
            c.name = "zero-alloc".into();
        })
        .build()
        .unwrap();
    let hints = ProgressHints {
        interval_us: Some(0),
        bytes_delta: Some(0),
        major_delta_units: None,
    };
    let mut consumer = world
        .consumer()
        .progress(hints)
        .configure(|c| {
            c.hello_interval = fast;
            c.qos_interval = fast;
            c.activity_timeout = Duration::from_millis(500);
        })
        .build()
        .unwrap();
    producer.set_meta(&[MetaAttribute::text("k", "v")]).unwrap();
    connect(&mut producer, &mut consumer);
    pump_until("progress active", &mut producer, &mut consumer, |p, c| {
        p.progress_active() && c.meta().is_some()
    });
    let spec = TensorSpec::new(Dtype::Uint8, &[16, 64])
        .unwrap()
        .progress_rows()
        .unwrap();
    let mut sink = Sink::default();
    let cycle = |producer: &mut Producer,
                 consumer: &mut tensorpool::consumer::Consumer,
                 sink: &mut Sink,
                 i: u64| {
        let mut claim = producer.claim(&spec).expect("claim");
        let p = claim.payload_mut();
        p[0] = i as u8;
        p[1023] = (i >> 8) as u8;
        claim.progress(512);
        claim.commit();
        producer.do_work(tensorpool::monotonic_ns());
        consumer.poll_handler(sink, 16).expect("poll");
    };
    for i in 0..20_000 {
        cycle(&mut producer, &mut consumer, &mut sink, i);
    }
    let before = (producer.counters(), consumer.counters(), sink.frames);
    let start = std::time::Instant::now();
    // the counter itself counts (negative control)
    let ((), probe) = CountingAllocator::count_thread(|| drop(std::hint::black_box(vec![1u8; 8])));
    assert_eq!(probe.allocations, 1);
    let ((), counts) = CountingAllocator::count_thread(|| {
        for i in 0..cycles {
            cycle(&mut producer, &mut consumer, &mut sink, i);
        }
    });
    let elapsed = start.elapsed();
    let (allocs, bytes) = (counts.allocations, counts.bytes);
    let (p, c) = (producer.counters(), consumer.counters());
    println!(
        "zero-alloc: {cycles} cycles in {elapsed:?} ({:.2} us/cycle): {allocs} allocations, {bytes} bytes; \
         frames {} progress {} announces {} qos {}+{} meta {} hellos {}",
        elapsed.as_secs_f64() * 1e6 / cycles as f64,
        sink.frames - before.2,
        sink.progress,
        p.announces_sent - before.0.announces_sent,
        p.qos_sent - before.0.qos_sent,
        c.qos_sent - before.1.qos_sent,
        p.meta_sent - before.0.meta_sent,
        c.hellos_sent - before.1.hellos_sent,
    );
    assert_eq!((allocs, bytes), (0, 0), "steady-state cycles allocated");
    assert!(
        sink.frames - before.2 >= cycles * 99 / 100,
        "frames accepted {}",
        sink.frames - before.2
    );
    assert!(
        p.announces_sent > before.0.announces_sent,
        "announce timer fired"
    );
    assert!(
        p.qos_sent > before.0.qos_sent && c.qos_sent > before.1.qos_sent,
        "QoS timers fired"
    );
    // the consumer's latency histogram (hdrhistogram) recorded every frame and was rolled
    // into the quantile counters at each QoS interval, inside the measured window
    assert!(
        c.latency_p50_ns > 0 && c.latency_p99_ns >= c.latency_p50_ns,
        "latency quantiles {} / {}",
        c.latency_p50_ns,
        c.latency_p99_ns
    );
    assert!(c.hellos_sent > before.1.hellos_sent && p.meta_sent > before.0.meta_sent);
    assert!(sink.progress > cycles, "progress delivered");
    drop((producer, consumer));
    world.finish();
}
