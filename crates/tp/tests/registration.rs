//! Per-consumer streams are registered without blocking a duty cycle (Wire Spec §5,
//! §10.1.3; ARCHITECTURE rule 8). The library's producer and consumer run in this process
//! against a `tp media-driver` process that the test pauses (SIGSTOP) so that a registration
//! stays pending for as long as the test needs: the producer keeps committing frames, and the
//! consumer keeps accepting them, until the media driver answers.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ChildGuard, DEADLINE, TP, wait_exit};
use tensorpool::consumer::Consumer;
use tensorpool::prelude::*;
use tensorpool::streams::{CONTROL_STREAM_ID, DEFAULT_CHANNEL};
use tensorpool_codec::Message;
use tensorpool_codec::wire::{ConsumerConfig, ConsumerHello, Mode};

const STREAM: u32 = 10_000;
/// Longest one duty cycle may take while a registration is pending (a blocking registration
/// would wait the producer's whole 5 s `aeron_timeout`).
const CYCLE_BOUND: Duration = Duration::from_millis(250);

/// Removes the Aeron directory whatever happens.
struct DirGuard(PathBuf);

impl Drop for DirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `tp media-driver` process that can be paused and resumed.
struct MediaDriver {
    child: ChildGuard,
    dir: PathBuf,
    paused: bool,
}

impl MediaDriver {
    fn start(dir: PathBuf) -> Self {
        let mut child = Command::new(TP)
            .args(["media-driver", "--threading-mode", "shared"])
            .arg("--delete-dir-on-shutdown")
            .arg("--dir")
            .arg(&dir)
            .env_remove("AERON_DIR")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn tp media-driver");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let guard = ChildGuard(Some(child));
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains("running") => break,
                Ok(_) => {}
                Err(e) => panic!("tp media-driver never said it runs: {e}"),
            }
        }
        Self {
            child: guard,
            dir,
            paused: false,
        }
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.0.as_ref().expect("running").id();
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {pid}");
    }

    fn pause(&mut self) {
        self.signal("-STOP");
        self.paused = true;
    }

    fn resume(&mut self) {
        self.signal("-CONT");
        self.paused = false;
    }

    /// SIGTERM and a bounded wait for a clean exit.
    fn stop(mut self) {
        self.resume();
        self.signal("-TERM");
        let status = wait_exit(&mut self.child, DEADLINE, "tp media-driver");
        assert!(status.success(), "tp media-driver exit: {status:?}");
    }
}

impl Drop for MediaDriver {
    fn drop(&mut self) {
        if self.paused {
            self.signal("-CONT"); // a stopped process cannot be reaped
        }
    }
}

/// Commits one frame and runs one producer and one consumer cycle; returns the time the
/// producer's duty cycle took.
fn cycle(producer: &mut Producer, consumer: &mut Consumer, spec: &TensorSpec) -> Duration {
    let mut claim = producer.claim(spec).expect("claim");
    claim.payload_mut().fill(7);
    claim.commit();
    let start = Instant::now();
    producer.do_work(tensorpool::monotonic_ns());
    let took = start.elapsed();
    consumer.poll(|_| {}, 64).expect("poll");
    took
}

fn pump_until(
    what: &str,
    producer: &mut Producer,
    consumer: &mut Consumer,
    mut cond: impl FnMut(&Producer, &Consumer) -> bool,
) {
    let deadline = Instant::now() + DEADLINE;
    while !cond(producer, consumer) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        producer.do_work(tensorpool::monotonic_ns());
        consumer.poll(|_| {}, 64).expect("poll");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Publishes `bytes` on a connected publication (bounded retries while back-pressured).
fn send(publication: &mut tensorpool_aeron::Publication, bytes: &[u8]) {
    let deadline = Instant::now() + DEADLINE;
    while let Err(e) = publication.offer(bytes) {
        assert!(e.is_retryable() && Instant::now() < deadline, "offer: {e}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn w_5_registrations_in_flight_never_stall_the_producer_or_the_consumer() {
    let dir = tensorpool_aeron::unique_dir();
    let _dir_guard = DirGuard(dir.clone());
    let shm = tempfile::Builder::new()
        .prefix("tp-test-shm-")
        .tempdir_in("/dev/shm")
        .expect("shm tempdir");
    let mut driver = MediaDriver::start(dir.clone());
    let ctx = Context::connect(&driver.dir).expect("connect");
    let mut producer = ctx
        .producer(STREAM)
        .standalone(shm.path())
        .header_nslots(64)
        .pool(1, 4096)
        .configure(|c| {
            c.announce_period = Duration::from_millis(50);
            c.prefault = false;
        })
        .build()
        .expect("producer");
    // Only the first hello goes out: a later one without a request would cancel the
    // request this test injects for the same consumer.
    let mut consumer = ctx
        .consumer(STREAM)
        .allowed_base_dir(shm.path())
        .configure(|c| {
            c.hello_interval = Duration::from_secs(600);
            c.qos_interval = Duration::from_millis(100);
        })
        .build()
        .expect("consumer");
    let consumer_id = consumer.config().consumer_id;
    // The test's own control publication, connected before the media driver pauses.
    let mut control = ctx
        .client()
        .add_exclusive_publication(DEFAULT_CHANNEL, CONTROL_STREAM_ID, Duration::from_secs(10))
        .expect("control publication");
    pump_until("consumer mapped", &mut producer, &mut consumer, |p, c| {
        p.consumer_count() == 1
            && c.state()
                == (ConsumerState::Mapped {
                    epoch: p.epoch().unwrap(),
                })
            && control.is_connected()
    });
    let spec = TensorSpec::new(Dtype::Uint8, &[1024]).unwrap();
    for _ in 0..10 {
        cycle(&mut producer, &mut consumer, &spec);
    }
    pump_until("frames flowing", &mut producer, &mut consumer, |_, c| {
        c.counters().accepted >= 10
    });

    // 1. Producer: a per-consumer descriptor stream requested while the media driver cannot
    //    answer. The registration stays pending; frames keep being committed and published on
    //    the shared stream, and the consumer keeps accepting them.
    driver.pause();
    let hello = ConsumerHello {
        stream_id: STREAM,
        consumer_id,
        supports_shm: true,
        supports_progress: false,
        mode: Mode::Stream,
        max_rate_hz: 0,
        expected_layout_version: 1,
        progress_interval_us: None,
        progress_bytes_delta: None,
        progress_major_delta_units: None,
        descriptor_stream_id: 31_005,
        control_stream_id: 0,
        descriptor_channel: tensorpool_codec::Bytes::new(DEFAULT_CHANNEL.as_bytes()),
        control_channel: tensorpool_codec::Bytes::new(b""),
    };
    send(&mut control, &hello.encode_to_vec().unwrap());
    let before = (producer.counters(), consumer.counters().accepted);
    let mut slowest = Duration::ZERO;
    let deadline = Instant::now() + DEADLINE;
    while producer.counters().hellos == before.0.hellos {
        assert!(Instant::now() < deadline, "hello never arrived");
        slowest = slowest.max(cycle(&mut producer, &mut consumer, &spec));
    }
    for _ in 0..200 {
        slowest = slowest.max(cycle(&mut producer, &mut consumer, &spec));
    }
    let p = producer.counters();
    assert!(p.committed >= before.0.committed + 200, "frames committed");
    assert!(p.descriptors_sent >= before.0.descriptors_sent + 200);
    assert_eq!(
        producer.per_consumer_descriptor_streams(),
        0,
        "still pending"
    );
    assert_eq!(p.per_consumer_granted, 0);
    assert_eq!(
        p.configs_sent, before.0.configs_sent,
        "no ConsumerConfig before the stream exists"
    );
    assert!(
        consumer.counters().accepted >= before.1 + 150,
        "the consumer kept accepting: {} -> {}",
        before.1,
        consumer.counters().accepted
    );
    assert!(slowest < CYCLE_BOUND, "a producer cycle took {slowest:?}");

    // Resumed: the registration completes, the answer goes out, the consumer switches
    // (registering its subscription in the background too) and frames arrive on its stream.
    driver.resume();
    pump_until(
        "per-consumer stream granted and used",
        &mut producer,
        &mut consumer,
        |p, c| p.per_consumer_descriptor_streams() == 1 && c.on_per_consumer_stream(),
    );
    assert_eq!(producer.counters().per_consumer_granted, 1);
    let on_own = producer.counters().descriptors_per_consumer;
    let accepted = consumer.counters().accepted;
    for _ in 0..20 {
        cycle(&mut producer, &mut consumer, &spec);
    }
    pump_until(
        "frames on the own stream",
        &mut producer,
        &mut consumer,
        |_, c| c.counters().accepted >= accepted + 20,
    );
    assert!(producer.counters().descriptors_per_consumer >= on_own + 20);

    // 2. Consumer: told to go back to the shared stream while the media driver cannot
    //    answer. Its subscription is pending; it keeps polling its current stream, and its
    //    cycles stay short. The config comes from this test's session, so the producer takes
    //    it as a supervisor's decision (W §10.1.3, decision in docs/compliance.md) and stops
    //    publishing on the per-consumer stream: no frame is expected until the switch is done.
    driver.pause();
    let config = ConsumerConfig {
        stream_id: STREAM,
        consumer_id,
        use_shm: true,
        mode: Mode::Stream,
        descriptor_stream_id: 0,
        control_stream_id: 0,
        payload_fallback_uri: tensorpool_codec::Bytes::new(b""),
        descriptor_channel: tensorpool_codec::Bytes::new(b""),
        control_channel: tensorpool_codec::Bytes::new(b""),
    };
    let configs = consumer.counters().configs;
    send(&mut control, &config.encode_to_vec().unwrap());
    let deadline = Instant::now() + DEADLINE;
    let mut slowest = Duration::ZERO;
    while consumer.counters().configs == configs {
        assert!(Instant::now() < deadline, "ConsumerConfig never arrived");
        cycle(&mut producer, &mut consumer, &spec);
    }
    for _ in 0..100 {
        let start = Instant::now();
        cycle(&mut producer, &mut consumer, &spec);
        slowest = slowest.max(start.elapsed());
    }
    assert!(consumer.on_per_consumer_stream(), "the switch is pending");
    assert!(
        producer.counters().supervisor_configs > 0,
        "the producer saw the config as a supervisor's"
    );
    assert!(slowest < CYCLE_BOUND, "a cycle took {slowest:?}");
    driver.resume();
    pump_until(
        "back on the shared stream",
        &mut producer,
        &mut consumer,
        |_, c| !c.on_per_consumer_stream(),
    );
    let accepted = consumer.counters().accepted;
    for _ in 0..20 {
        cycle(&mut producer, &mut consumer, &spec);
    }
    pump_until(
        "frames on the shared stream",
        &mut producer,
        &mut consumer,
        |_, c| c.counters().accepted >= accepted + 20,
    );

    drop((control, producer, consumer, ctx));
    driver.stop();
    let left: Vec<_> = std::fs::read_dir(shm.path())
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "SHM files left: {left:?}");
    assert!(!dir.exists(), "Aeron directory left behind");
}
