//! Data-source metadata (Wire Spec §10.3, §15.9): attributes with meta_version bumps, meta
//! blobs reassembled and verified; gaps, overlaps and checksum mismatches discarded.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tensorpool::consumer::{BlobDiscard, Consumer};
use tensorpool::producer::MetaAttribute;
use tensorpool::streams::{DEFAULT_CHANNEL, METADATA_STREAM_ID};
use tensorpool_aeron::Publication;
use tensorpool_codec::wire::{MetaBlobAnnounce, MetaBlobChunk, MetaBlobComplete};
use tensorpool_codec::{Bytes, Message};

fn send<'a, M: Message<'a>>(p: &mut Publication, m: &M) {
    let deadline = Instant::now() + DEADLINE;
    while p
        .publish(m.encoded_len(), |b| m.encode(b).map(|_| ()))
        .is_err()
    {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn poll_until(consumer: &mut Consumer, what: &str, cond: impl Fn(&Consumer) -> bool) {
    let deadline = Instant::now() + DEADLINE;
    let mut round = 0;
    while !cond(consumer) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        if consumer.poll(|_| {}, 16).unwrap() == 0 {
            idle(&mut round);
        }
    }
}

#[test]
fn w_10_3_meta_and_blobs_reassemble_and_bad_blobs_are_discarded() {
    let world = World::new();
    let mut producer = world
        .producer()
        .configure(|c| c.name = "cam0".into())
        .build()
        .unwrap();
    let mut consumer = world.consumer().build().unwrap();
    connect(&mut producer, &mut consumer);

    let v = producer
        .set_meta(&[MetaAttribute::text("serial", "A123")])
        .unwrap();
    assert_eq!(v, 1);
    let blob: Vec<u8> = (0..200_000u32).map(|i| (i * 7) as u8).collect();
    producer.publish_meta_blob(7, blob.clone());
    pump_until("meta + blob", &mut producer, &mut consumer, |_, c| {
        c.meta_blob().is_some() && c.meta().is_some()
    });
    let (mv, attrs) = consumer.meta().unwrap();
    assert_eq!(
        (mv, attrs[0].key.as_str(), attrs[0].value.as_slice()),
        (1, "serial", &b"A123"[..])
    );
    let got = consumer.meta_blob().unwrap();
    assert_eq!(
        (got.meta_version, got.blob_type, got.data.len()),
        (1, 7, blob.len())
    );
    assert!(got.data == blob);
    assert_eq!(consumer.source_name(), Some("cam0"));
    // Frames carry the meta version.
    let spec = tensorpool::frame::TensorSpec::new(tensorpool::frame::Dtype::Uint8, &[8]).unwrap();
    producer.offer(&spec, &[0u8; 8]).unwrap();

    let mut raw = world
        .ctx
        .client()
        .add_exclusive_publication(DEFAULT_CHANNEL, METADATA_STREAM_ID, Duration::from_secs(5))
        .unwrap();
    let data = [5u8; 100];
    let crc = u64::from(crc32c::crc32c(&data));
    let ann = |checksum| MetaBlobAnnounce {
        stream_id: STREAM,
        meta_version: 9,
        blob_type: 1,
        total_len: 100,
        checksum,
    };
    let chunk = |off: usize, end: usize| MetaBlobChunk {
        stream_id: STREAM,
        meta_version: 9,
        chunk_offset: off as u64,
        bytes: Bytes::new(&data[off..end]),
    };
    let done = |checksum| MetaBlobComplete {
        stream_id: STREAM,
        meta_version: 9,
        checksum,
    };
    type Case<'a> = (BlobDiscard, &'a [(usize, usize)], u64);
    let cases: [Case<'_>; 3] = [
        (BlobDiscard::Gap, &[(0, 40), (50, 100)], crc),
        (BlobDiscard::Overlap, &[(0, 60), (40, 100)], crc),
        (BlobDiscard::Checksum, &[(0, 100)], crc ^ 1),
    ];
    for (i, (why, chunks, checksum)) in cases.into_iter().enumerate() {
        send(&mut raw, &ann(checksum));
        for &(a, b) in chunks {
            send(&mut raw, &chunk(a, b));
        }
        send(&mut raw, &done(checksum));
        poll_until(&mut consumer, "discard", |c| {
            c.counters().blobs_discarded == i as u64 + 1
        });
        assert_eq!(consumer.last_blob_discard(), Some(why));
        assert_eq!(
            consumer.meta_blob().unwrap().meta_version,
            1,
            "the good blob is kept"
        );
    }
    // And a good raw blob goes through.
    send(&mut raw, &ann(crc));
    send(&mut raw, &chunk(0, 50));
    send(&mut raw, &chunk(50, 100));
    send(&mut raw, &done(crc));
    poll_until(&mut consumer, "raw blob", |c| {
        c.counters().blobs_completed == 2
    });
    assert_eq!(consumer.meta_blob().unwrap().data, data.to_vec());
    drop(raw);
    drop((producer, consumer));
    world.finish();
}
