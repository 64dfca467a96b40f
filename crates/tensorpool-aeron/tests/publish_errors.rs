//! Typed publication results: not connected, closed, back-pressured; never a panic.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tensorpool_aeron::{AeronClient, ClaimError, ClientConfig, PollError, PublishError};

const STREAM: i32 = 2002;

fn fill_ok(buf: &mut [u8]) -> Result<(), ()> {
    buf.fill(7);
    Ok(())
}

#[test]
fn publishing_without_a_subscriber_is_not_connected() {
    let driver = driver();
    let client = connect(&driver);
    let mut publication = client
        .add_publication("aeron:ipc", STREAM, TIMEOUT)
        .unwrap();
    assert!(!publication.is_connected());
    assert_eq!(publication.offer(b"hello"), Err(PublishError::NotConnected));
    assert_eq!(
        publication.try_claim(16, fill_ok),
        Err(ClaimError::Publish(PublishError::NotConnected))
    );
    let long = publication.max_claim_len() + 10;
    assert_eq!(
        publication.publish(long, fill_ok),
        Err(ClaimError::Publish(PublishError::NotConnected))
    );
    assert!(PublishError::NotConnected.is_retryable());
}

#[test]
fn a_closed_publication_returns_closed() {
    let driver = driver();
    let client = connect(&driver);
    let _sub = client
        .add_subscription("aeron:ipc", STREAM, TIMEOUT)
        .unwrap();
    let mut publication = client
        .add_publication("aeron:ipc", STREAM, TIMEOUT)
        .unwrap();
    publication.close();
    publication.close();
    assert!(publication.is_closed());
    assert!(!publication.is_connected());
    assert_eq!(publication.offer(b"x"), Err(PublishError::Closed));
    assert_eq!(
        publication.try_claim(1, fill_ok),
        Err(ClaimError::Publish(PublishError::Closed))
    );
    assert_eq!(publication.position(), Err(PublishError::Closed));
    assert!(!PublishError::Closed.is_retryable());

    let mut sub = client
        .add_subscription("aeron:ipc", STREAM + 1, TIMEOUT)
        .unwrap();
    sub.close();
    assert_eq!(sub.poll(|_, _| {}, 10), Err(PollError::Closed));
}

#[test]
fn a_slow_subscriber_back_pressures_and_draining_recovers() {
    let driver = driver_with_term(64 * 1024);
    let client = connect(&driver);
    let mut sub = client
        .add_subscription("aeron:ipc", STREAM, TIMEOUT)
        .unwrap();
    let mut publication = client
        .add_publication("aeron:ipc", STREAM, TIMEOUT)
        .unwrap();
    wait_connected(&publication, &sub);

    let mut sent = 0usize;
    let mut backpressured = false;
    // A 64 KiB term gives a 32 KiB window: at most ~32 one-KiB messages fit.
    for _ in 0..1_000 {
        match publication.try_claim(1024, fill_ok) {
            Ok(_) => sent += 1,
            Err(ClaimError::Publish(PublishError::BackPressured)) => {
                backpressured = true;
                break;
            }
            Err(ClaimError::Publish(PublishError::AdminAction)) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert!(backpressured, "no back-pressure after {sent} messages");
    assert!(sent > 0);

    let mut received = 0usize;
    let deadline = Instant::now() + TIMEOUT;
    let mut backoff = Backoff::new();
    let mut published_after = false;
    while !published_after || received < sent + 1 {
        let n = sub
            .poll(
                |msg, _| {
                    assert_eq!(msg.len(), 1024);
                    received += 1;
                },
                64,
            )
            .unwrap();
        if !published_after {
            match publication.try_claim(1024, fill_ok) {
                Ok(_) => published_after = true,
                Err(ClaimError::Publish(e)) if e.is_retryable() => {}
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
        if n == 0 {
            assert!(Instant::now() < deadline, "back-pressure never cleared");
            backoff.idle();
        }
    }
    assert_eq!(received, sent + 1);
}

#[test]
fn losing_the_driver_closes_publications_without_exiting_the_process() {
    let mut driver = driver();
    let config = ClientConfig::new(driver.dir())
        .connect_timeout(TIMEOUT)
        .driver_timeout(Duration::from_millis(500));
    let client = AeronClient::connect_with(&config).unwrap();
    let mut sub = client
        .add_subscription("aeron:ipc", STREAM, TIMEOUT)
        .unwrap();
    let mut publication = client
        .add_publication("aeron:ipc", STREAM, TIMEOUT)
        .unwrap();
    wait_connected(&publication, &sub);
    driver.stop().unwrap();
    assert!(!driver.dir().exists());

    wait_until("the client to notice the driver is gone", || {
        matches!(publication.offer(b"x"), Err(PublishError::Closed))
    });
    assert!(client.is_closed());
    assert!(client.error_count() >= 1);
    let (_, message) = client.last_error().unwrap();
    assert!(message.contains("MediaDriver"), "{message}");
    assert!(matches!(
        publication.try_claim(8, fill_ok),
        Err(ClaimError::Publish(PublishError::Closed))
    ));
    // Polling a subscription of a closed client is harmless.
    let _ = sub.poll(|_, _| {}, 10);
}
