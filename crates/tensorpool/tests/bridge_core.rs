//! The bridge core without Aeron or shared memory (Bridge Spec v1.1 §5-§8): the sender's
//! chunks reassemble in order, out of order and with duplicates; every chunk field the spec
//! lists is checked (a bad one is dropped and counted, never a panic); a lost chunk loses
//! that frame only and its assembly times out; CRC32C mismatches are dropped; a frame
//! overwritten while being sent is abandoned; back pressure drops the frame; a frame the
//! publication's window cannot take whole is not started but kept pending (newest wins); forwarded
//! announces gate chunks and epochs; headers are validated before a frame is handed on.

mod bridge_common;

use bridge_common::*;
use proptest::prelude::*;
use tensorpool::bridge::{BridgeCore, SendOutcome, SourceFrame};
use tensorpool::control::{PublishError, RecordingSink, SendWindow};
use tensorpool_codec::bridge::BridgeFrameChunk;
use tensorpool_codec::{Bytes, Message};

fn ready(extra: &str) -> BridgeCore {
    let mut c = core(extra);
    assert_eq!(c.on_control(&announce(1), 0), 1);
    c
}

#[test]
fn frames_of_every_size_round_trip_in_order() {
    let mut tx = core("chunk_bytes = 1000");
    let mut rx = ready("chunk_bytes = 1000");
    let sizes = [
        1usize,
        100,
        743,
        744,
        745,
        1000,
        1744,
        1745,
        5000,
        STRIDE as usize,
    ];
    for (i, &len) in sizes.iter().enumerate() {
        let seq = i as u64 + 1;
        let msgs = chunks(&mut tx, seq, len, seq * 11);
        let got = receive(&mut rx, &msgs, MS);
        assert_eq!(
            got,
            vec![Got {
                seq,
                trace_id: Some(seq * 11),
                payload: payload(seq, len)
            }],
            "len {len}"
        );
        for m in &msgs {
            let c = BridgeFrameChunk::decode(m).unwrap();
            // §5.2: chunk bound, header only on chunk 0, offset 0 on chunk 0
            assert!(c.chunk_length <= 1000);
            assert_eq!(c.header_included, c.chunk_index == 0);
            assert_eq!(
                c.header_bytes.len(),
                if c.chunk_index == 0 { 256 } else { 0 }
            );
            assert_eq!(c.trace_id, Some(seq * 11));
            assert_eq!(c.payload_crc32c, 0);
        }
    }
    let c = rx.counters();
    assert_eq!(c.frames_received, sizes.len() as u64);
    assert_eq!(c.chunk_drops + c.frame_drops, 0);
    assert_eq!(tx.counters().frames_sent, sizes.len() as u64);
}

#[test]
fn trace_id_zero_is_absent_on_both_sides() {
    let mut tx = core("");
    let mut rx = ready("");
    let msgs = chunks(&mut tx, 5, 3000, 0);
    assert!(
        msgs.iter()
            .all(|m| BridgeFrameChunk::decode(m).unwrap().trace_id.is_none())
    );
    let got = receive(&mut rx, &msgs, MS);
    assert_eq!(got[0].trace_id, None);
}

#[test]
fn out_of_order_and_duplicates_assemble_once() {
    let mut tx = core("chunk_bytes = 500");
    let mut rx = ready("chunk_bytes = 500");
    let mut msgs = chunks(&mut tx, 1, 4000, 0);
    msgs.reverse();
    let dup = msgs[2].clone();
    msgs.insert(4, dup.clone());
    msgs.push(dup);
    let got = receive(&mut rx, &msgs, MS);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload, payload(1, 4000));
    // duplicates after completion are still ignored, never a second frame
    let again = receive(&mut rx, &msgs, MS);
    assert!(again.is_empty());
    assert!(rx.counters().duplicates >= 2);
    assert_eq!(rx.counters().frames_received, 1);
}

#[test]
fn a_lost_chunk_loses_that_frame_only_and_its_assembly_times_out() {
    let mut tx = core("chunk_bytes = 500\nassembly_timeout_ms = 100");
    let mut rx = ready("chunk_bytes = 500\nassembly_timeout_ms = 100");
    let mut a = chunks(&mut tx, 1, 3000, 0);
    a.remove(3);
    let b = chunks(&mut tx, 2, 3000, 0);
    let mut all = a.clone();
    all.extend(b);
    let got = receive(&mut rx, &all, MS);
    assert_eq!(got.iter().map(|g| g.seq).collect::<Vec<_>>(), vec![2]);
    assert_eq!(rx.poll_timers(50 * MS), 0, "not yet");
    assert_eq!(rx.poll_timers(MS + 100 * MS), 1);
    assert_eq!(rx.counters().assembly_timeouts, 1);
    assert_eq!(rx.counters().frames_received, 1);
}

#[test]
fn chunks_before_any_announce_are_dropped() {
    let mut tx = core("");
    let mut rx = core("");
    let msgs = chunks(&mut tx, 1, 100, 0);
    assert!(receive(&mut rx, &msgs, MS).is_empty());
    assert_eq!(rx.counters().no_announce_drops, 1);
    rx.on_control(&announce(1), 0);
    assert_eq!(receive(&mut rx, &msgs, MS).len(), 1);
}

#[test]
fn epochs_other_than_the_announced_one_are_dropped_and_a_new_epoch_drops_in_flight() {
    let mut tx = core("chunk_bytes = 500");
    let mut rx = ready("chunk_bytes = 500");
    let old = chunks_of(&mut tx, 2, 1, &payload(1, 100), 0);
    assert!(
        receive(&mut rx, &old, MS).is_empty(),
        "epoch 2 before its announce"
    );
    let partial = chunks(&mut tx, 7, 3000, 0);
    receive(&mut rx, &partial[..2], MS);
    rx.on_control(&announce(2), MS);
    assert_eq!(rx.counters().epoch_drops, 1);
    // the rest of the epoch-1 frame is dropped now
    assert!(receive(&mut rx, &partial[2..], MS).is_empty());
    // an older announce does not bring epoch 1 back
    rx.on_control(&announce(1), MS);
    assert!(receive(&mut rx, &partial, MS).is_empty());
    let new = chunks_of(&mut tx, 2, 8, &payload(8, 3000), 0);
    assert_eq!(receive(&mut rx, &new, MS).len(), 1);
}

/// §8: a source epoch change asks the agent (once) to move the destination to a new local
/// epoch before a frame of the new epoch is handed on; the first announce, a repeated one
/// and an older one do not.
#[test]
fn br_8_a_source_epoch_change_requests_a_new_destination_epoch_once() {
    let mut rx = core("");
    rx.on_control(&announce(1), MS);
    assert!(
        !rx.take_dest_remap(0),
        "the first epoch: the attach was fresh"
    );
    rx.on_control(&announce(1), MS);
    assert!(!rx.take_dest_remap(0), "same epoch");
    rx.on_control(&announce(2), MS);
    assert!(rx.take_dest_remap(0), "a new source epoch");
    assert!(!rx.take_dest_remap(0), "taken once");
    rx.on_control(&announce(1), MS);
    assert!(!rx.take_dest_remap(0), "an older epoch is ignored");
    assert_eq!(rx.counters().source_epoch_changes, 1);
}

#[test]
fn control_channel_gates_on_schema_id() {
    let mut rx = core("");
    // a bridge-schema message on the control channel is not decoded as wire
    let mut tx = core("");
    let msgs = chunks(&mut tx, 1, 10, 0);
    assert_eq!(rx.on_control(&msgs[0], 0), 0);
    assert_eq!(rx.on_control(&[1, 2, 3], 0), 0);
    assert!(rx.mappings()[0].announce.is_none());
}

#[test]
fn source_announces_are_forwarded_for_mapped_streams_only() {
    let mut tx = core("");
    let mut sink = RecordingSink::with_capacity(4, 4096);
    assert_eq!(tx.on_source_announce(&announce(3), &mut sink), 1);
    assert_eq!(sink.messages().next().unwrap(), &announce(3)[..]);
    let mut other = announce(3);
    other[8..12].copy_from_slice(&999u32.to_le_bytes());
    assert_eq!(tx.on_source_announce(&other, &mut sink), 0);
    assert_eq!(sink.len(), 1);
    assert_eq!(tx.counters().announces_forwarded, 1);
}

fn reencode(msg: &[u8], f: impl FnOnce(&mut BridgeFrameChunk<'_>)) -> Vec<u8> {
    let mut c = BridgeFrameChunk::decode(msg).unwrap();
    f(&mut c);
    c.encode_to_vec().unwrap()
}

#[test]
fn every_chunk_field_is_checked() {
    let mut tx = core("chunk_bytes = 500");
    let msgs = chunks(&mut tx, 1, 1200, 0);
    assert_eq!(msgs.len(), 3);
    let big_payload = vec![0u8; 600];
    let big_header = vec![0u8; 255];
    type Mutation = Box<dyn Fn(&mut BridgeFrameChunk<'_>)>;
    let cases: Vec<(&str, usize, Mutation)> = vec![
        ("unknown stream", 1, Box::new(|c| c.stream_id = 1)),
        ("chunkCount 0", 1, Box::new(|c| c.chunk_count = 0)),
        (
            "chunkCount > 65535",
            1,
            Box::new(|c| c.chunk_count = 65_536),
        ),
        (
            "chunkIndex >= chunkCount",
            1,
            Box::new(|c| c.chunk_index = 3),
        ),
        (
            "header on chunk > 0",
            1,
            Box::new(|c| c.header_included = true),
        ),
        (
            "no header flag on chunk 0",
            0,
            Box::new(|c| c.header_included = false),
        ),
        (
            "headerBytes 255 on chunk 0",
            0,
            Box::new(move |c| c.header_bytes = Bytes::new(b"x")),
        ),
        ("offset on chunk 0", 0, Box::new(|c| c.chunk_offset = 8)),
        (
            "payloadBytes != chunkLength",
            1,
            Box::new(|c| c.chunk_length -= 1),
        ),
        (
            "offset past payload",
            2,
            Box::new(|c| c.chunk_offset = 1100),
        ),
        (
            "payloadLength > stride",
            1,
            Box::new(|c| c.payload_length = STRIDE + 1),
        ),
        (
            "payloadLength > max",
            1,
            Box::new(|c| c.payload_length = u32::MAX),
        ),
        (
            "empty chunk of a non-empty frame",
            2,
            Box::new(|c| {
                c.chunk_length = 0;
                c.payload_bytes = Bytes::new(b"");
            }),
        ),
    ];
    let _ = (&big_payload, &big_header);
    for (name, which, mutate) in &cases {
        let mut rx = ready("chunk_bytes = 500");
        let bad = reencode(&msgs[*which], |c| mutate(c));
        let before = rx.counters().chunk_drops;
        assert_eq!(
            rx.on_chunk(&bad, MS, &mut |_: &tensorpool::bridge::Assembled<'_>| true),
            0,
            "{name}"
        );
        assert_eq!(rx.counters().chunk_drops, before + 1, "{name}");
        // the frame cannot complete from the good chunks minus the bad one
        let mut rest: Vec<Vec<u8>> = msgs.clone();
        rest.remove(*which);
        assert!(receive(&mut rx, &rest, MS).is_empty(), "{name}");
    }
    // a chunk longer than the receiver's chunk bound
    let mut tx_big = core("chunk_bytes = 1000");
    let long = chunks(&mut tx_big, 1, 1200, 0);
    let mut rx = ready("chunk_bytes = 500");
    assert!(receive(&mut rx, &long, MS).is_empty());
    // chunk 0 carries 1000 - 256 = 744 bytes (> 500): dropped; chunk 1 (456) fits
    assert_eq!(rx.counters().chunk_drops, 1);
    // varData longer than the schema allows never decodes: dropped as malformed
    let mut bad = msgs[1].clone();
    let n = bad.len();
    bad[n - 500 - 4..n - 500].copy_from_slice(&u32::MAX.to_le_bytes());
    let mut rx = ready("chunk_bytes = 500");
    assert_eq!(
        rx.on_chunk(&bad, MS, &mut |_: &tensorpool::bridge::Assembled<'_>| true),
        0
    );
    assert_eq!(rx.counters().malformed, 1);
    // truncations of every length: dropped, never a panic
    for cut in 0..msgs[0].len() {
        rx.on_chunk(
            &msgs[0][..cut],
            MS,
            &mut |_: &tensorpool::bridge::Assembled<'_>| true,
        );
    }
}

#[test]
fn conflicting_chunks_drop_the_frame() {
    let mut tx = core("chunk_bytes = 500");
    let msgs = chunks(&mut tx, 1, 1200, 0);
    // same offset, other bytes
    let mut rx = ready("chunk_bytes = 500");
    let changed = reencode(&msgs[1], |c| {
        c.payload_bytes = Bytes::from(vec![0xAA; 500]);
    });
    receive(&mut rx, &[msgs[1].clone(), changed], MS);
    assert!(receive(&mut rx, &msgs, MS).is_empty());
    assert_eq!(rx.counters().frame_drops, 1);
    // traceId differing across chunks of one frame
    let mut rx = ready("chunk_bytes = 500");
    let traced = reencode(&msgs[2], |c| c.trace_id = Some(9));
    assert!(receive(&mut rx, &[msgs[0].clone(), msgs[1].clone(), traced], MS).is_empty());
    assert_eq!(rx.counters().frame_drops, 1);
    // overlapping slice under another index
    let mut rx = ready("chunk_bytes = 500");
    let overlap = reencode(&msgs[2], |c| c.chunk_offset = 400);
    assert!(receive(&mut rx, &[msgs[0].clone(), msgs[1].clone(), overlap], MS).is_empty());
    assert_eq!(rx.counters().frame_drops, 1);
    // chunkCount differing across chunks
    let mut rx = ready("chunk_bytes = 500");
    let count = reencode(&msgs[2], |c| c.chunk_count = 4);
    assert!(receive(&mut rx, &[msgs[0].clone(), msgs[1].clone(), count], MS).is_empty());
    assert_eq!(rx.counters().frame_drops, 1);
}

#[test]
fn crc32c_mismatch_and_zero_crc_are_dropped() {
    let mut tx = core("chunk_bytes = 500\nintegrity_crc32c = true");
    let msgs = chunks(&mut tx, 1, 1200, 0);
    assert!(
        msgs.iter()
            .all(|m| BridgeFrameChunk::decode(m).unwrap().payload_crc32c != 0)
    );
    let mut rx = ready("chunk_bytes = 500\nintegrity_crc32c = true");
    assert_eq!(receive(&mut rx, &msgs, MS).len(), 1);
    let mut flipped = msgs.clone();
    let n = flipped[1].len();
    flipped[1][n - 1] ^= 1;
    let mut rx = ready("chunk_bytes = 500\nintegrity_crc32c = true");
    assert!(receive(&mut rx, &flipped, MS).is_empty());
    assert_eq!(rx.counters().crc_errors, 1);
    let zero = reencode(&msgs[1], |c| c.payload_crc32c = 0);
    let mut rx = ready("chunk_bytes = 500\nintegrity_crc32c = true");
    assert!(receive(&mut rx, &[msgs[0].clone(), zero, msgs[2].clone()], MS).is_empty());
    assert_eq!(rx.counters().crc_errors, 1);
    // a header byte flipped on chunk 0 is caught too
    let mut h = msgs.clone();
    h[0][70] ^= 0x40;
    let mut rx = ready("chunk_bytes = 500\nintegrity_crc32c = true");
    assert!(receive(&mut rx, &h, MS).is_empty());
}

#[test]
fn a_frame_overwritten_while_sent_is_abandoned_and_never_completes() {
    let mut tx = core("chunk_bytes = 500");
    let data = payload(1, 1200);
    let h = header(1, 1200, 1);
    let frame = SourceFrame {
        stream_id: SOURCE,
        epoch: 1,
        seq: 1,
        trace_id: 0,
        header: &h,
        payload: &data,
    };
    for torn_at in 0..3 {
        let mut sink = RecordingSink::with_capacity(16, 1 << 16);
        let mut calls = 0;
        let out = tx.send_frame(
            &frame,
            &mut || {
                calls += 1;
                calls <= torn_at
            },
            &mut sink,
        );
        assert_eq!(
            out,
            SendOutcome::Abandoned {
                chunks: torn_at as u32
            }
        );
        assert_eq!(sink.len(), torn_at, "the torn chunk never leaves");
        let mut rx = ready("chunk_bytes = 500");
        let msgs: Vec<Vec<u8>> = sink.messages().map(<[u8]>::to_vec).collect();
        assert!(receive(&mut rx, &msgs, MS).is_empty());
    }
    assert_eq!(tx.counters().send_abandoned, 3);
}

#[test]
fn back_pressure_drops_the_frame_and_counts_it() {
    let mut tx = core("chunk_bytes = 500");
    let data = payload(1, 1200);
    let h = header(1, 1200, 1);
    let frame = SourceFrame {
        stream_id: SOURCE,
        epoch: 1,
        seq: 1,
        trace_id: 0,
        header: &h,
        payload: &data,
    };
    let mut sink = RecordingSink::with_capacity(16, 1 << 16);
    sink.fail_with = Some(PublishError::BackPressured);
    let out = tx.send_frame(&frame, &mut || true, &mut sink);
    assert_eq!(
        out,
        SendOutcome::Refused {
            chunks: 0,
            back_pressured: true
        }
    );
    assert_eq!(tx.counters().send_drops, 1);
    let too_big = vec![0u8; 70_000];
    let h = header(2, 70_000, 1);
    let mut tx = core("chunk_bytes = 1\nmax_chunk_bytes = 1");
    let f = SourceFrame {
        header: &h,
        payload: &too_big,
        ..frame
    };
    assert_eq!(
        tx.send_frame(&f, &mut || true, &mut sink),
        SendOutcome::TooLarge
    );
    assert_eq!(tx.counters().send_too_large, 1);
}

#[test]
fn a_frame_the_window_cannot_take_whole_is_not_started_and_counted() {
    let mut tx = core("chunk_bytes = 500");
    let data = payload(1, 1200);
    let h = header(1, 1200, 1);
    let frame = SourceFrame {
        stream_id: SOURCE,
        epoch: 1,
        seq: 1,
        trace_id: 0,
        header: &h,
        payload: &data,
    };
    // the encoded chunks of this frame, to size the windows below
    let mut probe = RecordingSink::with_capacity(16, 1 << 16);
    core("chunk_bytes = 500").send_frame(&frame, &mut || true, &mut probe);
    let n = probe.len();
    assert!(n > 1);
    let whole: usize = probe.messages().map(<[u8]>::len).sum();
    let first = probe.messages().next().unwrap().len();

    // a roomy window first (the sender learns the window can hold the frame)
    let mut roomy = RecordingSink::with_capacity(16, 1 << 16);
    roomy.window = Some(SendWindow {
        available: 1 << 20,
        capacity: 1 << 20,
    });
    assert_eq!(
        tx.send_frame(&frame, &mut || true, &mut roomy),
        SendOutcome::Sent { chunks: n as u32 }
    );
    let sent_before = tx.counters().chunks_sent;

    // room for the first chunk only: nothing leaves, the recheck is never asked
    let mut sink = RecordingSink::with_capacity(16, 1 << 16);
    sink.window = Some(SendWindow {
        available: first,
        capacity: 1 << 20,
    });
    let mut rechecks = 0;
    let out = tx.send_frame(
        &frame,
        &mut || {
            rechecks += 1;
            true
        },
        &mut sink,
    );
    assert_eq!(
        out,
        SendOutcome::WindowFull {
            needed: whole,
            available: first
        }
    );
    assert!(sink.is_empty(), "no chunk of a frame that does not fit");
    assert_eq!(rechecks, 0);
    let c = tx.counters();
    assert_eq!(
        (c.send_window_skips, c.send_drops, c.chunks_sent),
        (0, 0, sent_before)
    );
    assert_eq!(tx.pending(0), Some((1, 1)), "kept for the next duty cycle");

    // one byte short still skips; exactly the frame's bytes sends every chunk
    sink.window = Some(SendWindow {
        available: whole - 1,
        capacity: 1 << 20,
    });
    assert!(matches!(
        tx.send_frame(&frame, &mut || true, &mut sink),
        SendOutcome::WindowFull { .. }
    ));
    assert!(sink.is_empty());
    sink.window = Some(SendWindow {
        available: whole,
        capacity: 1 << 20,
    });
    assert_eq!(
        tx.send_frame(&frame, &mut || true, &mut sink),
        SendOutcome::Sent { chunks: n as u32 }
    );
    let c = tx.counters();
    assert_eq!(sink.len(), n);
    assert_eq!(
        (c.send_window_skips, c.frames_sent, c.chunks_sent),
        (0, 2, sent_before + n as u64)
    );
    assert_eq!(tx.pending(0), None, "sent: no longer pending");
    let mut rx = ready("chunk_bytes = 500");
    let msgs: Vec<Vec<u8>> = sink.messages().map(<[u8]>::to_vec).collect();
    assert_eq!(
        receive(&mut rx, &msgs, MS).len(),
        1,
        "the frame arrives whole"
    );

    // a frame larger than the window can ever be is tried as before (never starved)
    sink.clear();
    sink.window = Some(SendWindow {
        available: 0,
        capacity: whole - 1,
    });
    assert_eq!(
        tx.send_frame(&frame, &mut || true, &mut sink),
        SendOutcome::Sent { chunks: n as u32 }
    );
    // not connected: refused and counted as a send drop, as before, not as a window skip
    sink.window = Some(SendWindow {
        available: 0,
        capacity: 1 << 20,
    });
    sink.fail_with = Some(PublishError::NotConnected);
    assert!(matches!(
        tx.send_frame(&frame, &mut || true, &mut sink),
        SendOutcome::Refused { chunks: 0, .. }
    ));
    let c = tx.counters();
    assert_eq!((c.send_window_skips, c.send_drops), (0, 1));
    assert_eq!(tx.pending(0), None);
}

/// BR §3 with the pending frame: a frame the window cannot take whole waits for the next
/// duty cycle (one per mapping) and leaves whole once the window opens; a newer frame of
/// the mapping supersedes it (newest wins, `send_window_skips`); one that can no longer be
/// read from its slot is dropped (`send_abandoned`); a pending frame overwritten in the
/// slot between two tries is rechecked chunk by chunk and never leaves torn.
#[test]
fn a_frame_the_window_cannot_take_is_kept_pending_until_it_fits_newest_wins() {
    let mut tx = core("chunk_bytes = 500");
    let mut rx = ready("chunk_bytes = 500");
    let data = payload(1, 1200);
    let headers: Vec<[u8; 256]> = (0..6).map(|s| header(s, 1200, 1)).collect();
    let frame = |seq: u64| SourceFrame {
        stream_id: SOURCE,
        epoch: 1,
        seq,
        trace_id: 0,
        header: &headers[seq as usize],
        payload: &data,
    };
    let open = SendWindow {
        available: 1 << 20,
        capacity: 1 << 20,
    };
    let full = SendWindow {
        available: 100,
        capacity: 1 << 20,
    };
    let mut sink = RecordingSink::with_capacity(64, 1 << 16);
    sink.window = Some(open);
    assert!(matches!(
        tx.send_frame(&frame(1), &mut || true, &mut sink),
        SendOutcome::Sent { .. }
    ));
    let per_frame = sink.len();
    sink.clear();

    // window full: frame 2 pending, nothing leaves; still full on the next cycle
    sink.window = Some(full);
    for _ in 0..3 {
        assert!(matches!(
            tx.send_frame(&frame(2), &mut || true, &mut sink),
            SendOutcome::WindowFull { .. }
        ));
        assert_eq!(tx.pending(0), Some((1, 2)));
    }
    assert!(sink.is_empty());
    // the window opens: the pending frame leaves whole, in its own seq
    sink.window = Some(open);
    assert!(matches!(
        tx.send_frame(&frame(2), &mut || true, &mut sink),
        SendOutcome::Sent { .. }
    ));
    assert_eq!(tx.pending(0), None);
    let msgs: Vec<Vec<u8>> = sink.messages().map(<[u8]>::to_vec).collect();
    let got = receive(&mut rx, &msgs, MS);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].seq, 2);
    let c = tx.counters();
    assert_eq!(
        (c.frames_sent, c.send_window_skips, c.send_abandoned),
        (2, 0, 0)
    );

    // newest wins: frame 3 pending, frame 4 comes while the window is still full
    sink.clear();
    sink.window = Some(full);
    tx.send_frame(&frame(3), &mut || true, &mut sink);
    tx.send_frame(&frame(4), &mut || true, &mut sink);
    assert_eq!(tx.pending(0), Some((1, 4)));
    assert_eq!(tx.counters().send_window_skips, 1, "frame 3 superseded");
    // frame 5 fits (the window opened): sent, and frame 4 is superseded, never sent late
    sink.window = Some(open);
    assert!(matches!(
        tx.send_frame(&frame(5), &mut || true, &mut sink),
        SendOutcome::Sent { .. }
    ));
    assert_eq!(tx.pending(0), None);
    assert_eq!(tx.counters().send_window_skips, 2);
    assert_eq!(sink.len(), per_frame, "only frame 5 left");

    // a pending frame the caller can no longer read (its slot overwritten) is dropped
    sink.clear();
    sink.window = Some(full);
    tx.send_frame(&frame(3), &mut || true, &mut sink);
    assert!(tx.drop_pending(0));
    assert!(!tx.drop_pending(0), "counted once");
    assert_eq!(tx.pending(0), None);
    assert_eq!(tx.counters().send_abandoned, 1);

    // a pending frame overwritten between tries: the recheck fails while it is being sent,
    // the frame is abandoned after its first chunk is encoded, before any is committed
    tx.send_frame(&frame(4), &mut || true, &mut sink);
    assert_eq!(tx.pending(0), Some((1, 4)));
    sink.window = Some(open);
    assert_eq!(
        tx.send_frame(&frame(4), &mut || false, &mut sink),
        SendOutcome::Abandoned { chunks: 0 }
    );
    assert!(sink.is_empty(), "no torn chunk left");
    assert_eq!(tx.pending(0), None);
    let c = tx.counters();
    assert_eq!((c.send_abandoned, c.frames_sent), (2, 3));
}

#[test]
fn headers_are_validated_before_a_frame_is_handed_on() {
    let mut tx = core("chunk_bytes = 500");
    let data = payload(1, 1200);
    let send = |tx: &mut BridgeCore, h: &[u8; 256], seq: u64| {
        let frame = SourceFrame {
            stream_id: SOURCE,
            epoch: 1,
            seq,
            trace_id: 0,
            header: h,
            payload: &data,
        };
        let mut sink = RecordingSink::with_capacity(16, 1 << 16);
        tx.send_frame(&frame, &mut || true, &mut sink);
        sink.messages().map(<[u8]>::to_vec).collect::<Vec<_>>()
    };
    let cases: Vec<(&str, [u8; 256], u64)> = vec![
        ("values_len differs", header(1, 1000, 1), 1),
        ("pool not announced", header(2, 1200, 9), 2),
        ("seq differs from seq_commit >> 1", header(99, 1200, 1), 3),
        (
            "embedded header broken",
            {
                let mut h = header(4, 1200, 1);
                h[64] ^= 0xFF;
                h
            },
            4,
        ),
    ];
    let mut rx = ready("chunk_bytes = 500");
    for (name, h, seq) in &cases {
        let msgs = send(&mut tx, h, *seq);
        assert!(receive(&mut rx, &msgs, MS).is_empty(), "{name}");
    }
    assert_eq!(rx.counters().header_drops, cases.len() as u64);
    // a frame larger than the announced source stride
    let mut rx = core("chunk_bytes = 500");
    rx.set_local_capacity(0, DEST, 1 << 20);
    rx.on_control(&announce(1), 0);
    let big = payload(5, STRIDE as usize + 1);
    let h = header(5, big.len() as u32, 1);
    let msgs = chunks_of(&mut tx, 1, 5, &big, 0);
    let _ = h;
    assert!(receive(&mut rx, &msgs, MS).is_empty());
    assert_eq!(rx.counters().header_drops, 1);
    // the destination refusing the frame is counted
    let mut rx = ready("chunk_bytes = 500");
    let msgs = chunks(&mut tx, 6, 700, 0);
    for m in &msgs {
        rx.on_chunk(m, MS, &mut |_: &tensorpool::bridge::Assembled<'_>| false);
    }
    assert_eq!(rx.counters().dest_drops, 1);
    assert_eq!(rx.counters().frames_received, 0);
}

#[test]
fn in_flight_frames_past_capacity_evict_the_oldest() {
    let mut tx = core("chunk_bytes = 500");
    let mut rx = ready("chunk_bytes = 500");
    let mut partial = Vec::new();
    for seq in 1..=5 {
        partial.push(chunks(&mut tx, seq, 1200, 0)[0].clone());
    }
    receive(&mut rx, &partial, MS);
    assert_eq!(rx.counters().frame_drops, 1, "one evicted to make room");
    let whole = chunks(&mut tx, 6, 1200, 0);
    assert_eq!(receive(&mut rx, &whole, 2 * MS).len(), 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random loss, reordering and duplication never lets a frame out with wrong bytes:
    /// every frame handed on is exactly the frame sent with that seq.
    #[test]
    fn loss_reorder_and_duplication_never_emit_wrong_bytes(
        lens in proptest::collection::vec(1usize..6000, 1..8),
        ops in proptest::collection::vec((0u8..4, any::<u16>()), 0..200),
        crc in any::<bool>(),
    ) {
        let extra = if crc { "chunk_bytes = 700\nintegrity_crc32c = true" } else { "chunk_bytes = 700" };
        let mut tx = core(extra);
        let mut rx = ready(extra);
        let mut stream: Vec<Vec<u8>> = Vec::new();
        for (i, &len) in lens.iter().enumerate() {
            stream.extend(chunks(&mut tx, i as u64 + 1, len, 0));
        }
        for (op, k) in ops {
            if stream.is_empty() { break; }
            let i = usize::from(k) % stream.len();
            match op {
                0 => { stream.remove(i); }
                1 => { let m = stream[i].clone(); stream.push(m); }
                2 => { let j = (i * 7 + 3) % stream.len(); stream.swap(i, j); }
                _ => { let n = stream[i].len(); stream[i][usize::from(k) % n] ^= 0x5A; }
            }
        }
        let got = receive(&mut rx, &stream, MS);
        let mut seen = std::collections::HashSet::new();
        for g in got {
            let len = lens[(g.seq - 1) as usize];
            // a frame may be lost; one handed on is the frame sent, once
            prop_assert!(seen.insert(g.seq));
            if !crc {
                // without CRC a flipped payload byte cannot be detected (§5.4): only check
                // lengths then
                prop_assert_eq!(g.payload.len(), len);
            } else {
                prop_assert_eq!(g.payload, payload(g.seq, len));
            }
        }
    }

    /// Without corruption (loss, reorder, duplication only), every frame handed on has
    /// exactly its bytes.
    #[test]
    fn loss_reorder_and_duplication_without_corruption_are_exact(
        lens in proptest::collection::vec(1usize..6000, 1..8),
        ops in proptest::collection::vec((0u8..3, any::<u16>()), 0..200),
    ) {
        let mut tx = core("chunk_bytes = 600");
        let mut rx = ready("chunk_bytes = 600");
        let mut stream: Vec<Vec<u8>> = Vec::new();
        for (i, &len) in lens.iter().enumerate() {
            stream.extend(chunks(&mut tx, i as u64 + 1, len, 0));
        }
        for (op, k) in ops {
            if stream.is_empty() { break; }
            let i = usize::from(k) % stream.len();
            match op {
                0 => { stream.remove(i); }
                1 => { let m = stream[i].clone(); stream.push(m); }
                _ => { let j = (i * 7 + 3) % stream.len(); stream.swap(i, j); }
            }
        }
        for g in receive(&mut rx, &stream, MS) {
            prop_assert_eq!(g.payload, payload(g.seq, lens[(g.seq - 1) as usize]));
        }
    }
}

fn data_source_meta(stream_id: u32) -> Vec<u8> {
    use tensorpool_codec::wire::{Attribute, DataSourceMeta};
    let attrs = [Attribute {
        key: Bytes::new(b"fps"),
        format: Bytes::new(b"text"),
        value: Bytes::new(b"30"),
    }];
    DataSourceMeta {
        stream_id,
        meta_version: 5,
        timestamp_ns: 9,
        attributes: tensorpool_codec::Group::Slice(&attrs),
    }
    .encode_to_vec()
    .unwrap()
}

const WITH_METADATA: &str =
    "metadata_channel = \"aeron:udp?endpoint=127.0.0.1:40125\"\nmetadata_stream_id = 3002";

#[test]
fn metadata_is_forwarded_and_republished_with_the_stream_id_rewritten() {
    use tensorpool_codec::wire::{DataSourceAnnounce, DataSourceMeta};
    let mut tx = core(WITH_METADATA);
    let mut rx = core(WITH_METADATA);
    let mut bridge = RecordingSink::with_capacity(8, 4096);
    let mut local = RecordingSink::with_capacity(8, 4096);
    // the sender forwards a mapped stream's metadata unchanged, nothing else
    assert_eq!(
        tx.on_source_metadata(&data_source_announce(SOURCE), &mut bridge),
        1
    );
    assert_eq!(
        tx.on_source_metadata(&data_source_meta(SOURCE), &mut bridge),
        1
    );
    assert_eq!(
        tx.on_source_metadata(&data_source_announce(1), &mut bridge),
        0
    );
    assert_eq!(tx.on_source_metadata(&announce(1), &mut bridge), 0);
    assert_eq!(bridge.len(), 2);
    assert_eq!(
        bridge.messages().next().unwrap(),
        &data_source_announce(SOURCE)[..]
    );
    // the receiver republishes with stream_id = the mapping's metadata_stream_id
    // (default dest_stream_id), meta_version kept
    for m in bridge.messages() {
        assert_eq!(rx.on_metadata(m, &mut local), 1);
    }
    let mut it = local.messages();
    let a = DataSourceAnnounce::decode(it.next().unwrap()).unwrap();
    assert_eq!(
        (a.stream_id, a.meta_version, a.name.as_bytes()),
        (DEST, 5, &b"camera"[..])
    );
    let m = DataSourceMeta::decode(it.next().unwrap()).unwrap();
    assert_eq!((m.stream_id, m.meta_version), (DEST, 5));
    assert_eq!(m.attributes.iter().next().unwrap().value.as_bytes(), b"30");
    assert_eq!(rx.counters().metadata_republished, 2);
    assert_eq!(tx.counters().metadata_forwarded, 2);
}

#[test]
fn metadata_is_not_forwarded_without_a_metadata_channel() {
    let mut tx = core("");
    let mut rx = core("");
    let mut sink = RecordingSink::with_capacity(8, 4096);
    assert_eq!(
        tx.on_source_metadata(&data_source_announce(SOURCE), &mut sink),
        0
    );
    assert_eq!(rx.on_metadata(&data_source_announce(SOURCE), &mut sink), 0);
    assert!(sink.is_empty());
}

fn control_core(extra: &str) -> BridgeCore {
    let cfg = tensorpool::bridge::BridgeConfig::from_toml(
        &format!(
            "[bridge]\ninstance_id = \"t\"\npayload_channel = \"aeron:udp?endpoint=127.0.0.1:40123\"\npayload_stream_id = 3000\ncontrol_channel = \"aeron:udp?endpoint=127.0.0.1:40124\"\ncontrol_stream_id = 3001\n{extra}\n[[mappings]]\nsource_stream_id = {SOURCE}\ndest_stream_id = {DEST}\nprofile = \"default\"\nsource_control_stream_id = 1000\ndest_control_stream_id = 2000\n"
        ),
        &tensorpool::config::NoEnv,
    )
    .unwrap();
    BridgeCore::new(&cfg)
}

fn progress(stream_id: u32) -> Vec<u8> {
    use tensorpool_codec::wire::{FrameProgress, FrameProgressState};
    FrameProgress {
        stream_id,
        epoch: 3,
        seq: 77,
        payload_bytes_filled: 1024,
        state: FrameProgressState::Progress,
    }
    .encode_to_vec()
    .unwrap()
}

fn qos_producer(stream_id: u32) -> Vec<u8> {
    tensorpool_codec::wire::QosProducer {
        stream_id,
        producer_id: 4,
        epoch: 3,
        current_seq: 77,
        watermark: None,
    }
    .encode_to_vec()
    .unwrap()
}

#[test]
fn progress_is_forwarded_and_republished_on_the_destination_control_stream() {
    use tensorpool_codec::wire::{FrameProgress, FrameProgressState};
    let mut tx = control_core("forward_progress = true");
    let mut rx = control_core("forward_progress = true");
    let mut bridge = RecordingSink::with_capacity(8, 4096);
    assert_eq!(tx.on_source_control(&progress(SOURCE), &mut bridge), 1);
    assert_eq!(
        tx.on_source_control(&progress(5), &mut bridge),
        0,
        "unmapped"
    );
    assert_eq!(
        tx.on_source_control(&qos_producer(SOURCE), &mut bridge),
        0,
        "QoS off"
    );
    assert_eq!(bridge.len(), 1);
    let sent = FrameProgress::decode(bridge.messages().next().unwrap()).unwrap();
    assert_eq!(
        sent.stream_id, SOURCE,
        "streamId is the source's on the bridge"
    );
    let mut local = vec![Some(RecordingSink::with_capacity(8, 4096))];
    for m in bridge.messages() {
        assert_eq!(rx.on_forwarded_control(m, &mut local), 1);
    }
    let out = local[0].as_ref().unwrap();
    let p = FrameProgress::decode(out.messages().next().unwrap()).unwrap();
    // streamId rewritten; epoch, seq, bytes and state preserved
    assert_eq!(
        (p.stream_id, p.epoch, p.seq, p.payload_bytes_filled, p.state),
        (DEST, 3, 77, 1024, FrameProgressState::Progress)
    );
    // a mapping without a destination control stream drops it
    let mut none: Vec<Option<RecordingSink>> = vec![None];
    assert_eq!(rx.on_forwarded_control(&progress(SOURCE), &mut none), 0);
    // announces on the control channel are not progress
    assert_eq!(rx.on_forwarded_control(&announce(1), &mut local), 0);
}

#[test]
fn qos_is_forwarded_only_when_enabled() {
    use tensorpool_codec::wire::QosProducer;
    let mut off = control_core("");
    let mut sink = RecordingSink::with_capacity(8, 4096);
    assert_eq!(off.on_source_control(&qos_producer(SOURCE), &mut sink), 0);
    assert_eq!(off.on_source_control(&progress(SOURCE), &mut sink), 0);
    let mut tx = control_core("forward_qos = true");
    let mut rx = control_core("forward_qos = true");
    assert_eq!(tx.on_source_control(&qos_producer(SOURCE), &mut sink), 1);
    let mut local = vec![Some(RecordingSink::with_capacity(8, 4096))];
    assert_eq!(
        rx.on_forwarded_control(sink.messages().next().unwrap(), &mut local),
        1
    );
    let q = QosProducer::decode(local[0].as_ref().unwrap().messages().next().unwrap()).unwrap();
    assert_eq!((q.stream_id, q.current_seq), (DEST, 77));
}

fn trace_link(stream_id: u32) -> Vec<u8> {
    use tensorpool_codec::tracelink::{Parent, TraceLinkSet};
    let parents = [Parent { trace_id: 11 }, Parent { trace_id: 12 }];
    TraceLinkSet {
        stream_id,
        epoch: 1,
        seq: 9,
        trace_id: 99,
        parents: tensorpool_codec::Group::Slice(&parents),
    }
    .encode_to_vec()
    .unwrap()
}

#[test]
fn trace_link_sets_are_forwarded_only_with_forward_tracelink() {
    use tensorpool_codec::tracelink::TraceLinkSet;
    let mut sink = RecordingSink::with_capacity(8, 4096);
    let mut off = core(WITH_METADATA);
    assert_eq!(off.on_source_metadata(&trace_link(SOURCE), &mut sink), 0);
    let on = format!("{WITH_METADATA}\nforward_tracelink = true");
    let mut tx = core(&on);
    let mut rx = core(&on);
    assert_eq!(tx.on_source_metadata(&trace_link(SOURCE), &mut sink), 1);
    assert_eq!(
        tx.on_source_metadata(&trace_link(3), &mut sink),
        0,
        "unmapped"
    );
    let mut local = RecordingSink::with_capacity(8, 4096);
    assert_eq!(
        rx.on_metadata(sink.messages().next().unwrap(), &mut local),
        1
    );
    let t = TraceLinkSet::decode(local.messages().next().unwrap()).unwrap();
    assert_eq!((t.stream_id, t.seq, t.trace_id), (DEST, 9, 99));
    let parents: Vec<u64> = t.parents.iter().map(|p| p.trace_id).collect();
    assert_eq!(parents, vec![11, 12]);
}

/// Flow control can hold the window below the publication's capacity for good (an Aeron
/// receiver window smaller than a frame): a frame larger than every window seen is tried,
/// never skipped for ever.
#[test]
fn a_frame_larger_than_every_window_seen_is_tried_not_skipped_for_ever() {
    let mut tx = core("chunk_bytes = 500");
    let data = payload(1, 1200);
    let h = header(1, 1200, 1);
    let frame = SourceFrame {
        stream_id: SOURCE,
        epoch: 1,
        seq: 1,
        trace_id: 0,
        header: &h,
        payload: &data,
    };
    let mut sink = RecordingSink::with_capacity(64, 1 << 16);
    sink.window = Some(SendWindow {
        available: 600,
        capacity: 1 << 20,
    });
    for _ in 0..3 {
        assert!(matches!(
            tx.send_frame(&frame, &mut || true, &mut sink),
            SendOutcome::Sent { .. }
        ));
    }
    assert_eq!(tx.counters().send_window_skips, 0);
    assert_eq!(tx.counters().frames_sent, 3);
}
