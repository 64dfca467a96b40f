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

#[test]
fn counters_are_allocated_together_without_blocking() {
    let driver = driver();
    let client = connect(&driver);
    let type_id = tensorpool_aeron::tensorpool_counter_type_id(9);
    let mut pending: Vec<_> = (0..8u8)
        .map(|i| {
            client
                .start_add_counter(type_id, &[i], &format!("pending counter {i}"), TIMEOUT)
                .unwrap()
        })
        .collect();
    let mut counters: Vec<Option<tensorpool_aeron::Counter>> = (0..8).map(|_| None).collect();
    wait_until("eight counters", || {
        for (p, c) in pending.iter_mut().zip(counters.iter_mut()) {
            if c.is_none() {
                *c = p.poll().unwrap();
            }
        }
        counters.iter().all(Option::is_some)
    });
    let counters: Vec<_> = counters.into_iter().flatten().collect();
    counters[3].set(33);
    let reader = client.counters_reader();
    let mut seen = Vec::new();
    reader.for_each(|info| {
        if info.type_id == type_id {
            seen.push((info.key[0], info.label().to_owned(), info.value));
        }
    });
    seen.sort();
    assert_eq!(seen.len(), 8);
    assert_eq!(seen[3], (3, "pending counter 3".to_owned(), 33));
    let too_long = client.start_add_counter(type_id, &[0; 113], "x", TIMEOUT);
    assert!(matches!(too_long, Err(AddError::TooLong { .. })));
}
