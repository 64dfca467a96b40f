//! After construction the bridge core allocates nothing in its steady cycle: the sender
//! chunking frames (with CRC32C) into a publication, the receiver validating, assembling
//! (in order, reversed, with duplicates and a lost chunk), timing out and handing frames on,
//! a forwarded announce and forwarded metadata (stream id rewritten), for 200 frames. Counted on this test's own thread (the harness
//! thread may allocate at any time).

mod bridge_common;

use bridge_common::*;
use tensorpool::bridge::{Assembled, SourceFrame};
use tensorpool::control::RecordingSink;
use tensorpool_testkit::CountingAllocator;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[test]
fn steady_bridge_cycle_allocates_nothing() {
    let extra = "chunk_bytes = 1000\nintegrity_crc32c = true\nassembly_timeout_ms = 10\nmetadata_channel = \"aeron:udp?endpoint=127.0.0.1:40125\"";
    let mut tx = core(extra);
    let mut rx = core(extra);
    let ann = announce(1);
    rx.on_control(&ann, 0);
    let mut sink = RecordingSink::with_capacity(64, 1 << 20);
    let mut fwd = RecordingSink::with_capacity(4, 4096);
    let mut meta_out = RecordingSink::with_capacity(4, 4096);
    let meta = data_source_announce(SOURCE);
    let data = payload(1, 9000);
    let headers: Vec<[u8; 256]> = (0..=200).map(|s| header(s, 9000, 1)).collect();
    let mut order: Vec<usize> = Vec::with_capacity(64);
    let mut delivered = 0u64;
    let mut cycle = |seq: u64, now: u64| {
        sink.clear();
        fwd.clear();
        let frame = SourceFrame {
            stream_id: SOURCE,
            epoch: 1,
            seq,
            trace_id: seq,
            header: &headers[seq as usize],
            payload: &data,
        };
        tx.send_frame(&frame, &mut || true, &mut sink);
        tx.on_source_announce(&ann, &mut fwd);
        meta_out.clear();
        tx.on_source_metadata(&meta, &mut fwd);
        rx.on_metadata(&meta, &mut meta_out);
        rx.on_control(&ann, now);
        order.clear();
        let n = sink.len();
        match seq % 4 {
            0 => order.extend(0..n),
            1 => order.extend((0..n).rev()),
            2 => {
                order.extend(0..n);
                order.push(1);
                order.push(0);
            }
            _ => order.extend(1..n), // chunk 0 lost: times out later
        }
        for &i in order.iter() {
            let m = sink.messages().nth(i).unwrap();
            rx.on_chunk(m, now, &mut |f: &Assembled<'_>| {
                delivered += u64::from(f.payload.len() == 9000);
                true
            });
        }
        rx.poll_timers(now);
    };
    // warm up, then count
    for seq in 1..=8 {
        cycle(seq, seq * 20 * MS);
    }
    let ((), counts) = CountingAllocator::count_thread(|| {
        for seq in 9..=200 {
            cycle(seq, seq * 20 * MS);
        }
    });
    assert!(counts.is_zero(), "{counts:?}");
    assert_eq!(delivered, 150);
    assert!(rx.counters().assembly_timeouts >= 45);
    assert!(rx.counters().duplicates >= 45);
    assert_eq!(rx.counters().metadata_republished, 200);
}
