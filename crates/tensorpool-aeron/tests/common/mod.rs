//! Shared test helpers: a private embedded driver per test, bounded waits.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tensorpool_aeron::{
    AeronClient, DriverIdleStrategy, EmbeddedMediaDriver, MediaDriverConfig, Publication,
    PublishError, Subscription,
};

pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A driver with its own unique directory, sleeping when idle, with `term_length` terms.
pub fn driver_with_term(term_length: usize) -> EmbeddedMediaDriver {
    let config = MediaDriverConfig::default()
        .idle_strategy(DriverIdleStrategy::Sleeping(Duration::from_micros(200)))
        .term_buffer_length(term_length)
        .ipc_term_buffer_length(term_length);
    EmbeddedMediaDriver::start(config).expect("embedded media driver starts")
}

pub fn driver() -> EmbeddedMediaDriver {
    driver_with_term(1024 * 1024)
}

pub fn connect(driver: &EmbeddedMediaDriver) -> AeronClient {
    AeronClient::connect(driver.dir(), TIMEOUT).expect("client connects")
}

/// Sleeps a little longer each time, never hot.
pub struct Backoff(u32);

impl Backoff {
    pub fn new() -> Self {
        Self(0)
    }
    pub fn idle(&mut self) {
        self.0 = (self.0 + 1).min(10);
        std::thread::sleep(Duration::from_micros(20u64 << self.0.min(6)));
    }
    pub fn reset(&mut self) {
        self.0 = 0;
    }
}

/// Waits (bounded) until `cond` holds.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    let mut backoff = Backoff::new();
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        backoff.idle();
    }
}

/// Waits (bounded) until publication and subscription see each other.
pub fn wait_connected(publication: &Publication, subscription: &Subscription) {
    wait_until("publication connected", || publication.is_connected());
    wait_until("subscription image", || subscription.image_count() > 0);
}

/// Publishes with retries on retryable errors (bounded).
pub fn publish_bytes(publication: &mut Publication, message: &[u8]) -> tensorpool_aeron::Published {
    let deadline = Instant::now() + TIMEOUT;
    let mut backoff = Backoff::new();
    loop {
        match publication.publish(message.len(), |buf| {
            buf.copy_from_slice(message);
            Ok::<(), std::convert::Infallible>(())
        }) {
            Ok(published) => return published,
            Err(tensorpool_aeron::ClaimError::Publish(e)) if e.is_retryable() => {
                assert!(Instant::now() < deadline, "publish kept failing: {e}");
                backoff.idle();
            }
            Err(e) => panic!("publish failed: {e}"),
        }
    }
}

/// Polls (bounded) until one message arrives; returns it.
pub fn receive_one(subscription: &mut Subscription) -> (Vec<u8>, tensorpool_aeron::FragmentInfo) {
    let deadline = Instant::now() + TIMEOUT;
    let mut backoff = Backoff::new();
    let mut got = None;
    while got.is_none() {
        let n = subscription
            .poll(
                |msg, info| {
                    if got.is_none() {
                        got = Some((msg.to_vec(), info));
                    }
                },
                1,
            )
            .expect("poll");
        if n == 0 {
            assert!(Instant::now() < deadline, "no message arrived");
            backoff.idle();
        }
    }
    got.expect("message")
}

/// Deterministic test bytes.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Asserts the driver directory is gone once the driver is dropped.
pub fn assert_removed(dir: PathBuf) {
    assert!(
        !dir.exists(),
        "driver directory {} left behind",
        dir.display()
    );
}

pub fn is_not_connected(e: &PublishError) -> bool {
    matches!(e, PublishError::NotConnected)
}
