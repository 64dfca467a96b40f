//! IPC round trips through a private embedded media driver.

mod common;

use common::*;
use tensorpool_aeron::{PublishPath, nano_clock};

const STREAM: i32 = 1001;

#[test]
fn ipc_round_trips_of_many_sizes_arrive_intact() {
    let driver = driver();
    let dir = driver.dir().to_path_buf();
    {
        let client = connect(&driver);
        let mut sub = client
            .add_subscription("aeron:ipc", STREAM, TIMEOUT)
            .unwrap();
        let mut publication = client
            .add_publication("aeron:ipc", STREAM, TIMEOUT)
            .unwrap();
        wait_connected(&publication, &sub);
        let max_claim = publication.max_claim_len();
        let sizes = [
            1,
            7,
            64,
            1000,
            max_claim - 1,
            max_claim,
            max_claim + 1,
            2 * max_claim + 3,
            4096,
            10_000,
            32 * 1024,
            64 * 1024 - 1,
            64 * 1024,
        ];
        for (i, &size) in sizes.iter().enumerate() {
            let message = pattern(size, i as u8);
            let published = publish_bytes(&mut publication, &message);
            let expected = if size <= max_claim {
                PublishPath::Claim
            } else {
                PublishPath::Offer
            };
            assert_eq!(published.path, expected, "size {size}");
            let (received, info) = receive_one(&mut sub);
            assert_eq!(received.len(), size, "size {size}");
            assert!(
                received == message,
                "content of a {size}-byte message differs"
            );
            assert_eq!(info.position, published.position, "size {size}");
            assert_eq!(info.session_id, publication.session_id());
            assert_eq!(info.stream_id, STREAM);
        }
    }
    drop(driver);
    assert_removed(dir);
}

#[test]
fn max_claim_len_goes_by_claim_and_one_more_byte_by_offer() {
    let driver = driver();
    let dir = driver.dir().to_path_buf();
    {
        let client = connect(&driver);
        let mut sub = client
            .add_subscription("aeron:ipc", STREAM, TIMEOUT)
            .unwrap();
        let mut publication = client
            .add_exclusive_publication("aeron:ipc", STREAM, TIMEOUT)
            .unwrap();
        assert!(publication.is_exclusive());
        wait_connected(&publication, &sub);
        let max = publication.max_claim_len();
        assert!(max > 0 && max < publication.max_message_len());

        let exact = pattern(max, 1);
        assert_eq!(
            publish_bytes(&mut publication, &exact).path,
            PublishPath::Claim
        );
        let longer = pattern(max + 1, 2);
        assert_eq!(
            publish_bytes(&mut publication, &longer).path,
            PublishPath::Offer
        );

        assert!(receive_one(&mut sub).0 == exact);
        assert!(receive_one(&mut sub).0 == longer);
    }
    drop(driver);
    assert_removed(dir);
}

#[test]
fn try_claim_commits_and_a_failed_fill_publishes_nothing() {
    let driver = driver();
    let client = connect(&driver);
    let mut sub = client
        .add_subscription("aeron:ipc", STREAM, TIMEOUT)
        .unwrap();
    let mut publication = client
        .add_publication("aeron:ipc", STREAM, TIMEOUT)
        .unwrap();
    wait_connected(&publication, &sub);

    let failed = publication.try_claim(8, |_buf| Err("encoder refused"));
    assert_eq!(
        failed,
        Err(tensorpool_aeron::ClaimError::Fill("encoder refused"))
    );
    let too_long = publication.try_claim(publication.max_claim_len() + 1, |_| Ok::<(), ()>(()));
    assert!(matches!(
        too_long,
        Err(tensorpool_aeron::ClaimError::Publish(
            tensorpool_aeron::PublishError::TooLong { .. }
        ))
    ));

    let position = publication
        .try_claim(4, |buf| {
            buf.copy_from_slice(&[1, 2, 3, 4]);
            Ok::<(), ()>(())
        })
        .unwrap();
    let (received, info) = receive_one(&mut sub);
    assert_eq!(received, [1, 2, 3, 4]);
    assert_eq!(info.position, position);
    assert_eq!(publication.position(), Ok(position));
}

#[test]
fn image_availability_is_recorded_with_a_monotonic_time() {
    let driver = driver();
    let client = connect(&driver);
    let before = nano_clock();
    let sub = client
        .add_subscription("aeron:ipc", STREAM, TIMEOUT)
        .unwrap();
    assert_eq!(sub.last_image_available_ns(), 0);
    let mut publication = client
        .add_publication("aeron:ipc", STREAM, TIMEOUT)
        .unwrap();
    wait_until("image available", || sub.last_image_available_ns() != 0);
    let events = sub.image_events();
    assert!(events.last_available_ns >= before && events.last_available_ns <= nano_clock());
    assert_eq!(events.available_count, 1);
    assert_eq!(events.last_available_session_id, publication.session_id());
    assert!(sub.is_connected());
    assert_eq!(sub.channel(), "aeron:ipc");
    assert_eq!(publication.channel(), "aeron:ipc");
    assert_eq!(sub.stream_id(), STREAM);

    publication.close();
    wait_until("image unavailable", || {
        sub.image_events().unavailable_count == 1
    });
    assert_eq!(
        sub.image_events().last_unavailable_session_id,
        publication.session_id()
    );
}

#[test]
fn two_publishers_interleave_large_messages_without_mixing_them() {
    let driver = driver();
    let client = connect(&driver);
    let mut sub = client
        .add_subscription("aeron:ipc", STREAM, TIMEOUT)
        .unwrap();
    let mut a = client
        .add_exclusive_publication("aeron:ipc", STREAM, TIMEOUT)
        .unwrap();
    let mut b = client
        .add_exclusive_publication("aeron:ipc", STREAM, TIMEOUT)
        .unwrap();
    wait_connected(&a, &sub);
    wait_connected(&b, &sub);
    wait_until("two images", || sub.image_count() == 2);
    let ma = pattern(20_000, 3);
    let mb = pattern(30_000, 4);
    publish_bytes(&mut a, &ma);
    publish_bytes(&mut b, &mb);
    let mut got = Vec::new();
    wait_until("both messages", || {
        sub.poll(|msg, info| got.push((info.session_id, msg.to_vec())), 3)
            .unwrap();
        got.len() == 2
    });
    for (session, msg) in got {
        if session == a.session_id() {
            assert!(msg == ma);
        } else {
            assert_eq!(session, b.session_id());
            assert!(msg == mb);
        }
    }
}
