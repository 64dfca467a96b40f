//! TraceLink v1.0 core: trace ids (layout, order, uniqueness within and across processes)
//! and TraceLinkSet rules (non-zero, unique parents, at least one), allocation-free.

use std::collections::HashSet;
use std::process::Command;

use tensorpool::tracelink::{self, TraceError, TraceIdGenerator, TraceLinks};
use tensorpool_codec::tracelink::{Parent, TraceLinkSet};
use tensorpool_codec::{Group, Message};
use tensorpool_testkit::CountingAllocator;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// TL §6.1: the Agrona layout (timestamp ms | 10-bit node | 12-bit sequence), ids strictly
/// increasing even when one millisecond's 4096 sequences are used up or the clock goes back,
/// and never the null id 0.
#[test]
fn tl_6_1_ids_follow_the_snowflake_layout_and_strictly_increase() {
    let mut g = TraceIdGenerator::new(5).unwrap();
    let id = g.next_id_at(1_700_000_000_000);
    assert_eq!(id, (1_700_000_000_000u64 << 22) | (5 << 12));
    let p = g.split(id);
    assert_eq!(
        (p.timestamp_ms, p.node_id, p.sequence),
        (1_700_000_000_000, 5, 0)
    );
    let mut last = id;
    for i in 0..10_000u64 {
        // the clock stands still, then goes back
        let now = if i < 5_000 {
            1_700_000_000_000
        } else {
            1_699_999_999_000
        };
        let next = g.next_id_at(now);
        assert!(next > last, "{next:#x} after {last:#x}");
        assert_eq!(g.split(next).node_id, 5);
        last = next;
    }
    let later = g.next_id_at(1_800_000_000_000);
    assert_eq!(g.split(later).timestamp_ms, 1_800_000_000_000);
    let mut zero = TraceIdGenerator::with_layout(0, 10, 12, 1_000).unwrap();
    assert_ne!(zero.next_id_at(1_000), 0, "never the null id");
    assert_ne!(TraceIdGenerator::new(1).unwrap().next_id(), 0);
}

/// TL §6.2: a node id that does not fit the layout, or a layout over 22 bits, is refused.
#[test]
fn tl_6_2_node_ids_must_fit_the_layout() {
    assert!(TraceIdGenerator::new(1023).is_ok());
    assert!(matches!(
        TraceIdGenerator::new(1024),
        Err(TraceError::NodeIdTooLarge {
            node_id: 1024,
            bits: 10,
            max: 1023
        })
    ));
    assert!(matches!(
        TraceIdGenerator::with_layout(1, 12, 12, 0),
        Err(TraceError::Layout { .. })
    ));
}

const CHILD_ENV: &str = "TP_TRACELINK_CHILD_NODE";

/// Child half of `tl_6_2_ids_are_unique_across_processes`: mints ids with the node id it is
/// given and prints them.
#[test]
fn child_mint() {
    let Ok(node) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut g = TraceIdGenerator::new(node.parse().unwrap()).unwrap();
    let ids: Vec<String> = (0..20_000).map(|_| g.next_id().to_string()).collect();
    println!("IDS {}", ids.join(","));
}

/// TL §6.2: generators of different node ids in different processes, minting in the same
/// milliseconds, never produce the same id.
#[test]
fn tl_6_2_ids_are_unique_across_processes() {
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (1..=4)
        .map(|node| {
            Command::new(&exe)
                .args(["child_mint", "--exact", "--nocapture", "--test-threads=1"])
                .env(CHILD_ENV, node.to_string())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut all = HashSet::new();
    let mut total = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        // libtest prints "test child_mint ... " on the same line before the ids
        let ids = text
            .split("IDS ")
            .nth(1)
            .and_then(|rest| rest.lines().next())
            .expect("the child printed its ids");
        for id in ids.split(',') {
            total += 1;
            assert!(all.insert(id.parse::<u64>().unwrap()), "duplicate id {id}");
        }
    }
    assert_eq!(total, 80_000);
}

/// TL §9.2: parents are non-zero and unique, in observed order; at least one; the derived
/// id is non-zero. Zero and repeated parents are skipped when collecting, refused when
/// received.
#[test]
fn tl_9_2_trace_link_set_rules() {
    let mut links = TraceLinks::new();
    assert_eq!(links.push(0), Ok(false), "an untraced input is no parent");
    assert_eq!(links.push(7), Ok(true));
    assert_eq!(links.push(3), Ok(true));
    assert_eq!(
        links.push(7),
        Ok(false),
        "a diamond's two branches share a parent once"
    );
    assert_eq!(links.parents().collect::<Vec<_>>(), vec![7, 3]);
    assert!(links.is_join());
    assert!(matches!(
        links.message(1, 1, 1, 0),
        Err(TraceError::ZeroTraceId)
    ));
    let mut buf = [0u8; 256];
    let len = links.encode(&mut buf, 1000, 2, 42, 99).unwrap().unwrap();
    let set = TraceLinkSet::decode(&buf[..len]).unwrap();
    assert_eq!(
        (set.stream_id, set.epoch, set.seq, set.trace_id),
        (1000, 2, 42, 99)
    );
    assert_eq!(
        set.parents.iter().map(|p| p.trace_id).collect::<Vec<_>>(),
        vec![7, 3]
    );
    assert_eq!(tracelink::validate(&set), Ok(()));
    links.clear();
    assert!(matches!(
        links.message(1, 1, 1, 5),
        Err(TraceError::NoParents)
    ));
    for _ in 0..64 {
        let n = links.len() as u64 + 1;
        links.push(n).unwrap();
    }
    assert_eq!(links.push(1_000), Err(TraceError::TooManyParents));

    let received = |parents: Vec<u64>, trace_id: u64| TraceLinkSet {
        stream_id: 1,
        epoch: 1,
        seq: 1,
        trace_id,
        parents: Group::Owned(
            parents
                .into_iter()
                .map(|trace_id| Parent { trace_id })
                .collect(),
        ),
    };
    assert_eq!(
        tracelink::validate(&received(vec![], 5)),
        Err(TraceError::NoParents)
    );
    assert_eq!(
        tracelink::validate(&received(vec![1, 0], 5)),
        Err(TraceError::ZeroParent)
    );
    assert_eq!(
        tracelink::validate(&received(vec![1, 2, 1], 5)),
        Err(TraceError::DuplicateParent(1))
    );
    assert_eq!(
        tracelink::validate(&received(vec![1], 0)),
        Err(TraceError::ZeroTraceId)
    );
    assert_eq!(tracelink::validate(&received(vec![4], 5)), Ok(()));
}

/// TL §14.1 / ARCHITECTURE: minting, collecting parents and encoding allocate nothing.
#[test]
fn minting_and_linking_allocate_nothing() {
    let mut g = TraceIdGenerator::new(9).unwrap();
    let mut links = TraceLinks::new();
    let mut buf = [0u8; 1024];
    let (probe, probed) = CountingAllocator::count_thread(|| std::hint::black_box(vec![1u8; 8]));
    drop(probe);
    assert!(probed.allocations > 0, "the allocator counts");
    let ((), counts) = CountingAllocator::count_thread(|| {
        for _ in 0..10_000 {
            links.clear();
            for _ in 0..8 {
                links.push(g.next_id()).unwrap();
            }
            let id = g.next_id();
            let n = links.encode(&mut buf, 1, 1, 1, id).unwrap().unwrap();
            std::hint::black_box(n);
        }
    });
    assert_eq!(counts.allocations, 0, "{counts:?}");
}

fn set(stream_id: u32, seq: u64, trace_id: u64, parents: &[u64]) -> TraceLinkSet<'static> {
    TraceLinkSet {
        stream_id,
        epoch: 1,
        seq,
        trace_id,
        parents: Group::Owned(
            parents
                .iter()
                .map(|&trace_id| Parent { trace_id })
                .collect(),
        ),
    }
}

/// An observer's graph: two joins stacked (A+B -> J1, J1+C -> J2) give J2's lineage down to
/// the roots with the frames seen; invalid sets change nothing; the oldest ids are
/// forgotten past the capacity.
#[test]
fn trace_graph_walks_a_lineage() {
    use tensorpool::tracelink::{FrameRef, TraceGraph};
    let mut g = TraceGraph::new(100);
    let f = |stream_id, seq| FrameRef {
        stream_id,
        epoch: 1,
        seq,
    };
    g.record_frame(11, f(1, 5));
    g.record_frame(12, f(2, 5));
    g.record_frame(13, f(3, 9));
    g.record_links(&set(20, 5, 21, &[11, 12])).unwrap();
    g.record_links(&set(30, 5, 31, &[21, 13])).unwrap();
    assert!(g.record_links(&set(30, 6, 32, &[21, 21])).is_err());
    assert!(g.parents(32).is_empty());
    let walk: Vec<(usize, u64, Option<u32>)> = g
        .lineage(31, 8)
        .iter()
        .map(|n| (n.depth, n.trace_id, n.frame.map(|f| f.stream_id)))
        .collect();
    assert_eq!(
        walk,
        vec![
            (0, 31, Some(30)),
            (1, 21, Some(20)),
            (2, 11, Some(1)),
            (2, 12, Some(2)),
            (1, 13, Some(3)),
        ]
    );
    assert_eq!(g.lineage(31, 1).len(), 3, "depth limit");
    let mut small = TraceGraph::new(2);
    for id in 1..=5 {
        small.record_frame(id, f(1, id));
    }
    assert_eq!((small.frame(3), small.frame(4).is_some()), (None, true));
}
