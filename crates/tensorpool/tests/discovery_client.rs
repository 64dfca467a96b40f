//! The discovery client's MUSTs (Discovery v1.0 §5.2, §7) on a private media driver: a
//! provider thread of this test answers each request with what a faulty or hostile provider
//! could send, and `discovery::query` returns only what the spec lets a client use.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use tensorpool::discovery::{ClientEndpoints, Query, QueryError, query};
use tensorpool_aeron::{AeronClient, EmbeddedMediaDriver, MediaDriverConfig};
use tensorpool_codec::discovery::{
    DiscoveryRequest, DiscoveryResponse, DiscoveryResult, DiscoveryStatus,
};
use tensorpool_codec::wire::PayloadPool;
use tensorpool_codec::{Bytes, Group, Message};

const REQUESTS: i32 = 9100;
const RESPONSES: i32 = 9104;
const TIMEOUT: Duration = Duration::from_secs(10);

fn result<'a>(
    stream_id: u32,
    channel: &'a str,
    control_stream: u32,
    pool_nslots: u32,
) -> DiscoveryResult<'a> {
    DiscoveryResult {
        stream_id,
        producer_id: 1,
        epoch: 1,
        layout_version: 1,
        header_nslots: 8,
        header_slot_bytes: 256,
        max_dims: 8,
        data_source_id: None,
        driver_control_stream_id: control_stream,
        payload_pools: Group::Owned(vec![PayloadPool {
            pool_id: 1,
            pool_nslots,
            stride_bytes: 1024,
            region_uri: Bytes::new(b"shm:file?path=/dev/shm/x/1.pool"),
        }]),
        tags: Group::Owned(vec![Bytes::new(b"camera")]),
        header_region_uri: Bytes::new(b"shm:file?path=/dev/shm/x/h.ring"),
        data_source_name: Bytes::new(b"cam"),
        driver_instance_id: Bytes::new(b"d"),
        driver_control_channel: Bytes::new(channel.as_bytes()),
    }
}

/// What the provider thread answers to the n-th request.
fn answers(request_id: u64, n: usize) -> Vec<Vec<u8>> {
    let encode = |r: DiscoveryResponse<'_>| r.encode_to_vec().unwrap();
    match n {
        // first a response to another request (same results), then the real one: four
        // results of which only stream 1 is usable
        0 => vec![
            encode(DiscoveryResponse {
                request_id: request_id.wrapping_add(1),
                status: DiscoveryStatus::Ok,
                results: Group::Owned(vec![result(99, "aeron:ipc", 1000, 8)]),
                error_message: Bytes::EMPTY,
            }),
            encode(DiscoveryResponse {
                request_id,
                status: DiscoveryStatus::Ok,
                results: Group::Owned(vec![
                    result(1, "aeron:ipc", 1000, 8),
                    result(2, "", 1000, 8),
                    result(3, "aeron:ipc", 0, 8),
                    result(4, "aeron:ipc", 1000, 16),
                ]),
                error_message: Bytes::EMPTY,
            }),
        ],
        // ERROR with a (forbidden) non-empty results group
        1 => vec![encode(DiscoveryResponse {
            request_id,
            status: DiscoveryStatus::Error,
            results: Group::Owned(vec![result(5, "aeron:ipc", 1000, 8)]),
            error_message: Bytes::new(b"result limit exceeded"),
        })],
        // NOT_FOUND with a (forbidden) non-empty results group
        _ => vec![encode(DiscoveryResponse {
            request_id,
            status: DiscoveryStatus::NotFound,
            results: Group::Owned(vec![result(6, "aeron:ipc", 1000, 8)]),
            error_message: Bytes::EMPTY,
        })],
    }
}

/// DS §5.2, §7: a response with an unknown request id is dropped; results with an empty
/// control channel, a zero control stream id or a pool whose slot count differs from the
/// ring's are ignored; results sent with `ERROR` or `NOT_FOUND` are ignored; a request with
/// an empty response channel or a zero response stream is never sent.
#[test]
fn ds_7_the_client_uses_only_valid_results_of_its_own_request() {
    let media = EmbeddedMediaDriver::start(MediaDriverConfig::default()).unwrap();
    let dir = media.dir().to_path_buf();
    let stop = Arc::new(AtomicBool::new(false));
    let (seen_tx, seen_rx) = mpsc::channel::<(u64, u32, String)>();
    let provider = {
        let stop = stop.clone();
        let dir = dir.clone();
        std::thread::spawn(move || {
            let client = AeronClient::connect(&dir, TIMEOUT).unwrap();
            let mut requests = client
                .add_subscription("aeron:ipc", REQUESTS, TIMEOUT)
                .unwrap();
            let mut responses = client
                .add_publication("aeron:ipc", RESPONSES, TIMEOUT)
                .unwrap();
            let mut n = 0;
            while !stop.load(Ordering::Acquire) {
                let mut got = Vec::new();
                requests
                    .poll(
                        |msg, _| {
                            let r = DiscoveryRequest::decode(msg).unwrap();
                            got.push((
                                r.request_id,
                                r.response_stream_id,
                                String::from_utf8_lossy(r.response_channel.as_bytes()).into_owned(),
                            ));
                        },
                        8,
                    )
                    .unwrap();
                for (id, stream, channel) in got {
                    seen_tx.send((id, stream, channel)).unwrap();
                    let deadline = Instant::now() + TIMEOUT;
                    while !responses.is_connected() && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    for bytes in answers(id, n) {
                        while responses.offer(&bytes).is_err() {
                            assert!(Instant::now() < deadline, "response not taken");
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    }
                    n += 1;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let client = AeronClient::connect(&dir, TIMEOUT).unwrap();
    let endpoints = ClientEndpoints {
        request_channel: "aeron:ipc".into(),
        request_stream_id: REQUESTS,
        response_channel: "aeron:ipc".into(),
        response_stream_id: RESPONSES,
    };
    let q = Query {
        tags: vec!["camera".into()],
        ..Query::default()
    };
    let found = query(&client, &endpoints, &q, TIMEOUT).unwrap();
    assert_eq!(
        found.iter().map(|f| f.stream_id).collect::<Vec<_>>(),
        vec![1],
        "{found:?}"
    );
    let (_, stream, channel) = seen_rx.recv_timeout(TIMEOUT).unwrap();
    assert_eq!((stream, channel.as_str()), (RESPONSES as u32, "aeron:ipc"));

    match query(&client, &endpoints, &q, TIMEOUT) {
        Err(QueryError::Provider(m)) => assert_eq!(m, "result limit exceeded"),
        other => panic!("ERROR answered {other:?}"),
    }
    assert!(matches!(
        query(&client, &endpoints, &q, TIMEOUT),
        Err(QueryError::NotFound)
    ));

    // DS §4.3: never a request without a response endpoint
    for (channel, stream) in [("", RESPONSES), ("aeron:ipc", 0)] {
        let bad = ClientEndpoints {
            response_channel: channel.into(),
            response_stream_id: stream,
            ..endpoints.clone()
        };
        assert!(matches!(
            query(&client, &bad, &q, TIMEOUT),
            Err(QueryError::Endpoints(_))
        ));
    }
    stop.store(true, Ordering::Release);
    provider.join().unwrap();
    // the provider saw exactly the three valid requests
    assert!(seen_rx.try_recv().is_ok());
    assert!(seen_rx.try_recv().is_ok());
    assert!(seen_rx.try_recv().is_err());
}
