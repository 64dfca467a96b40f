//! Frames flow producer -> consumer in one process for 1-D..8-D tensors of every dtype and
//! both major orders; payloads, shapes, strides and dtypes arrive intact.

mod common;

use common::*;
use tensorpool::prelude::*;

fn shape_for(ndims: usize) -> Vec<usize> {
    // Small dims whose product stays well under the 64 KiB stride for 8-byte dtypes.
    [3usize, 2, 4, 1, 2, 3, 2, 2][..ndims].to_vec()
}

#[test]
fn w_10_2_1_frames_flow_for_every_dtype_ndims_and_order() {
    let world = World::new();
    let mut producer = world.producer().build().expect("producer");
    let mut consumer = world.consumer().build().expect("consumer");
    connect(&mut producer, &mut consumer);

    let mut expected = Vec::new();
    for dtype in Dtype::ALL {
        for ndims in 1..=8 {
            for order in [MajorOrder::Row, MajorOrder::Column] {
                let spec = TensorSpec::with_order(dtype, order, &shape_for(ndims)).unwrap();
                let mut payload = vec![0u8; spec.len_bytes()];
                let seq = producer.next_seq();
                fill(&mut payload, seq);
                assert_eq!(producer.offer(&spec, &payload).unwrap(), seq);
                expected.push((seq, dtype, order, shape_for(ndims), payload));
                let mut got = Vec::new();
                let deadline = std::time::Instant::now() + DEADLINE;
                let mut round = 0;
                while got.is_empty() {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "frame {seq} never arrived"
                    );
                    consumer
                        .poll(
                            |f: &Frame<'_>| {
                                let bytes = f.bytes().to_vec();
                                f.recheck().unwrap();
                                got.push((
                                    f.seq(),
                                    f.dtype(),
                                    f.major_order(),
                                    f.shape().to_vec(),
                                    f.strides().to_vec(),
                                    bytes,
                                ));
                            },
                            16,
                        )
                        .unwrap();
                    if got.is_empty() {
                        idle(&mut round);
                    }
                }
                let (s, d, o, sh, strides, bytes) = got.remove(0);
                let e = expected.last().unwrap();
                assert_eq!((s, d, o, &sh, &bytes), (e.0, e.1, e.2, &e.3, &e.4));
                // Inferred strides are contiguous in the declared order.
                let mut want = vec![0usize; ndims];
                let mut acc = dtype.size_bytes();
                let idx: Vec<usize> = match order {
                    MajorOrder::Row => (0..ndims).rev().collect(),
                    MajorOrder::Column => (0..ndims).collect(),
                };
                for i in idx {
                    want[i] = acc;
                    acc *= sh[i].max(1);
                }
                assert_eq!(strides, want, "{dtype} {ndims}-D {order:?}");
                producer.do_work(tensorpool::monotonic_ns());
            }
        }
    }
    assert_eq!(consumer.counters().accepted, expected.len() as u64);
    assert_eq!(expected.len(), 13 * 8 * 2);
    assert_eq!(consumer.drops().total(), 0, "{:?}", consumer.drops());
    drop(consumer);
    drop(producer);
    world.finish();
}

#[test]
fn w_15_2_standalone_epochs_start_seq_at_zero_and_clean_close_removes_files() {
    let world = World::new();
    let before = tensorpool_agent::realtime_ns();
    let mut p1 = world.producer().build().expect("producer");
    let e1 = p1.epoch().unwrap();
    assert!(e1 >= before, "epoch = max(previous + 1, now_ns)");
    assert_eq!(p1.next_seq(), 0);
    let dir = p1.epoch_dir().unwrap();
    assert!(dir.join("header.ring").is_file() && dir.join("1.pool").is_file());
    assert!(
        dir.starts_with(world.base()),
        "canonical layout under the base dir"
    );
    p1.close();
    assert!(!dir.exists(), "clean close removes the epoch directory");
    let p2 = world.producer().build().expect("producer");
    assert!(p2.epoch().unwrap() > e1, "a restart gets a greater epoch");
    drop(p2);
    drop(p1);
    world.finish();
}
