//! Registrations started without blocking and polled from a duty cycle.

mod common;

use std::time::Duration;

use common::*;
use tensorpool_aeron::AddError;

#[test]
fn publications_and_subscriptions_register_while_the_caller_keeps_working() {
    let driver = driver();
    let client = connect(&driver);
    let mut pending_sub = client
        .start_add_subscription("aeron:ipc", 5001, TIMEOUT)
        .unwrap();
    let mut pending_pub = client
        .start_add_exclusive_publication("aeron:ipc", 5001, TIMEOUT)
        .unwrap();
    let mut pending_shared = client
        .start_add_publication("aeron:ipc", 5002, TIMEOUT)
        .unwrap();

    let (mut sub, mut publication, mut shared) = (None, None, None);
    wait_until("all three registrations", || {
        // each call is one duty cycle: poll, never block
        if sub.is_none() {
            sub = pending_sub.poll().unwrap();
        }
        if publication.is_none() {
            publication = pending_pub.poll().unwrap();
        }
        if shared.is_none() {
            shared = pending_shared.poll().unwrap();
        }
        sub.is_some() && publication.is_some() && shared.is_some()
    });
    // polling a finished registration is an error, not a second resource
    assert!(matches!(pending_sub.poll(), Err(AddError::Rejected { .. })));

    let (mut sub, mut publication) = (sub.unwrap(), publication.unwrap());
    wait_connected(&publication, &sub);
    publication.offer(b"registered without blocking").unwrap();
    let mut got = Vec::new();
    wait_until("the message", || {
        sub.poll(|msg, _| got.extend_from_slice(msg), 10).unwrap();
        !got.is_empty()
    });
    assert_eq!(got, b"registered without blocking");
}

#[test]
fn a_registration_past_its_deadline_is_cancelled_with_a_timeout() {
    let driver = driver();
    let client = connect(&driver);
    let mut pending = client
        .start_add_subscription("aeron:ipc", 5003, Duration::ZERO)
        .unwrap();
    // With no time at all, the first poll that finds no answer gives up.
    match pending.poll() {
        Err(AddError::Timeout { .. }) | Ok(Some(_)) => {}
        other => panic!("expected a timeout (or an instant answer), got {other:?}"),
    }
    // Dropping in-flight registrations cancels them; the client stays usable.
    drop(
        client
            .start_add_exclusive_publication("aeron:ipc", 5004, TIMEOUT)
            .unwrap(),
    );
    let sub = client.add_subscription("aeron:ipc", 5004, TIMEOUT).unwrap();
    assert_eq!(sub.image_count(), 0);
}
