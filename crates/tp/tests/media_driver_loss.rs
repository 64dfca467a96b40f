//! Losing the media driver is an error on both sides (issue 18 item 2): a `tp media-driver`
//! child process, a producer and a consumer connected to it with a 1 s driver timeout, the
//! driver SIGKILLed; both roles must report `MediaDriverLost` (claims, polls, the agent's
//! duty cycle, the consumer's event) within the timeout plus Aeron's keepalive interval.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ChildGuard, DEADLINE, TP};
use tensorpool::consumer::{ConsumerEvent, PollError};
use tensorpool::prelude::*;
use tensorpool_aeron::ClientConfig;
use tensorpool_agent::Agent;

const STREAM: u32 = 10_000;

#[test]
fn a_killed_media_driver_is_an_error_for_producer_and_consumer() {
    let aeron = tempfile::Builder::new()
        .prefix("tp-test-aeron-")
        .tempdir_in("/dev/shm")
        .unwrap();
    let shm = tempfile::Builder::new()
        .prefix("tp-test-shm-")
        .tempdir_in("/dev/shm")
        .unwrap();
    let dir = aeron.path().join("driver");
    let mut driver = ChildGuard(Some(
        Command::new(TP)
            .args(["media-driver", "--dir"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn tp media-driver"),
    ));
    let config = ClientConfig::new(&dir)
        .connect_timeout(Duration::from_secs(20))
        .driver_timeout(Duration::from_secs(1));
    let ctx = Context::connect_with(&config).expect("connect to tp media-driver");
    let mut producer = ctx
        .producer(STREAM)
        .standalone(shm.path())
        .header_nslots(16)
        .pool(1, 4096)
        .configure(|c| {
            c.announce_period = Duration::from_millis(50);
            c.prefault = false;
        })
        .build()
        .unwrap();
    let mut consumer = ctx
        .consumer(STREAM)
        .allowed_base_dir(shm.path())
        .build()
        .unwrap();
    let spec = TensorSpec::new(Dtype::Uint8, &[64]).unwrap();
    // working pair first: a frame goes through
    let deadline = Instant::now() + DEADLINE;
    let mut got = 0;
    while got == 0 {
        assert!(Instant::now() < deadline, "no frame before the kill");
        producer.do_work(tensorpool::monotonic_ns());
        if matches!(consumer.state(), ConsumerState::Mapped { .. }) && producer.consumer_count() > 0
        {
            producer.offer(&spec, &[3u8; 64]).unwrap();
        }
        got += consumer
            .poll_wait(&mut |_: &Frame<'_>| {}, 16, Duration::from_millis(20))
            .unwrap();
    }
    assert!(!producer.media_driver_lost() && !consumer.media_driver_lost());

    let child = driver.0.as_mut().unwrap();
    let killed = Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let _ = child.wait();
    driver.0 = None;
    let killed_at = Instant::now();

    // both sides keep being driven, as an application would, until they report the loss
    let deadline = Instant::now() + DEADLINE;
    let (mut producer_lost, mut consumer_lost) = (None, None);
    while producer_lost.is_none() || consumer_lost.is_none() {
        assert!(
            Instant::now() < deadline,
            "no MediaDriverLost: producer {producer_lost:?}, consumer {consumer_lost:?}"
        );
        if producer_lost.is_none() {
            producer.do_work(tensorpool::monotonic_ns());
            match producer.offer(&spec, &[4u8; 64]) {
                Err(ClaimError::MediaDriverLost) => producer_lost = Some(killed_at.elapsed()),
                Ok(_) => {}
                Err(e) => panic!("offer: {e}"),
            }
        }
        if consumer_lost.is_none() {
            match consumer.poll(|_| {}, 16) {
                Err(PollError::MediaDriverLost) => consumer_lost = Some(killed_at.elapsed()),
                Ok(_) => {}
                Err(e) => panic!("poll: {e}"),
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!("MediaDriverLost after: producer {producer_lost:?}, consumer {consumer_lost:?}");
    assert!(producer.media_driver_lost());
    assert!(Agent::do_work(&mut producer, tensorpool::monotonic_ns()).is_err());
    let mut events = Vec::new();
    consumer.drain_events(|e| events.push(e));
    assert_eq!(events.last(), Some(&ConsumerEvent::MediaDriverLost));
    assert!(
        consumer.poll(|_| {}, 16) == Err(PollError::MediaDriverLost),
        "the error stays"
    );
    assert_eq!(
        consumer.drain_events(|_| {}),
        0,
        "MediaDriverLost is recorded once"
    );
    // a runner reports it as a failed duty cycle, and goes on
    let runner = tensorpool::runner::Runner::start(
        producer,
        tensorpool_agent::SleepingIdleStrategy::new(Duration::from_millis(1)),
    )
    .unwrap();
    let deadline = Instant::now() + DEADLINE;
    while runner.error_count() == 0 {
        assert!(Instant::now() < deadline, "the runner saw no error");
        std::thread::sleep(Duration::from_millis(1));
    }
    let last = runner.last_error().unwrap_or_default();
    assert!(last.contains("media driver is lost"), "{last}");
    assert!(runner.is_running());
    let producer = runner.close().unwrap();
    drop((producer, consumer, ctx));
    // the killed driver could not remove its directory
    let _ = std::fs::remove_dir_all(&dir);
}
