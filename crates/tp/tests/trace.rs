//! `tp trace` as a real process: traced descriptors and TraceLinkSets published on the
//! descriptor and metadata streams; it prints each link set's lineage down to the roots with
//! the frames and node ids, reports an invalid set with its reason, and `--trace` keeps only
//! the lineages that contain an id.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use common::{ChildGuard, DEADLINE, TP, bytes_of, connected_publication, offer};
use serde_json::Value;
use tensorpool::tracelink::TraceIdGenerator;
use tensorpool_codec::tracelink::{Parent, TraceLinkSet};
use tensorpool_codec::wire::FrameDescriptor;
use tensorpool_codec::{AnyMessage, Group};

fn descriptor(stream_id: u32, trace_id: u64) -> Vec<u8> {
    bytes_of(&AnyMessage::FrameDescriptor(FrameDescriptor {
        stream_id,
        epoch: 1,
        seq: 5,
        timestamp_ns: None,
        meta_version: None,
        trace_id: Some(trace_id),
    }))
}

fn links(stream_id: u32, trace_id: u64, parents: &[u64]) -> Vec<u8> {
    bytes_of(&AnyMessage::TraceLinkSet(TraceLinkSet {
        stream_id,
        epoch: 1,
        seq: 5,
        trace_id,
        parents: Group::Owned(
            parents
                .iter()
                .map(|&trace_id| Parent { trace_id })
                .collect(),
        ),
    }))
}

/// Runs `tp trace --json args...`: publishes three traced root frames, a first link set
/// (to know `tp trace` reads both streams), then `sets`; returns `expected` JSON lines
/// after the first one.
fn run_trace(args: &[&str], roots: &[(u32, u64)], sets: &[Vec<u8>], expected: usize) -> Vec<Value> {
    let driver = common::driver();
    let client = common::connect(&driver);
    let dir = driver.dir().to_str().expect("dir").to_owned();
    let child = Command::new(TP)
        .args(["trace", "--json", "--aeron-dir", &dir, "--duration", "60"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tp trace");
    let mut guard = ChildGuard(Some(child));
    let stdout = guard
        .0
        .as_mut()
        .and_then(|c| c.stdout.take())
        .expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let reads_descriptors = !args.contains(&"--no-descriptors");
    let mut metadata = connected_publication(&client, 1300);
    // kept open to the end, so the frames stay readable
    let _descriptors = reads_descriptors.then(|| {
        let mut descriptors = connected_publication(&client, 1100);
        for &(stream, id) in roots {
            offer(&mut descriptors, &descriptor(stream, id));
        }
        descriptors
    });
    // a first set, printed once `tp trace` has polled its link stream after the
    // descriptors were offered: the sets below are read after the descriptors
    offer(
        &mut metadata,
        &links(1, roots[0].1 + 1_000_000, &[roots[0].1, roots[1].1]),
    );
    let deadline = Instant::now() + DEADLINE;
    let next = |what: &str| -> Value {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no line for {what}"));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    };
    if args.is_empty() {
        next("the first set");
    }
    for s in sets {
        offer(&mut metadata, s);
    }
    (0..expected).map(|i| next(&format!("line {i}"))).collect()
}

fn lineage(line: &Value) -> Vec<(u64, u64, Option<u64>, u64)> {
    line["lineage"]
        .as_array()
        .expect("lineage")
        .iter()
        .map(|n| {
            (
                n["depth"].as_u64().unwrap(),
                n["trace_id"].as_u64().unwrap(),
                n["frame"]["stream_id"].as_u64(),
                n["node_id"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// TL §7, §9: a join of joins is printed down to the roots with frames and node ids; an
/// invalid set (a parent twice) is reported with the reason.
#[test]
fn tp_trace_prints_a_lineage_and_refuses_invalid_sets() {
    let mut gens: Vec<TraceIdGenerator> =
        (1..=4).map(|n| TraceIdGenerator::new(n).unwrap()).collect();
    let (a, b, c) = (gens[0].next_id(), gens[1].next_id(), gens[2].next_id());
    let (j1, j2) = (gens[3].next_id(), gens[3].next_id());
    let sets = [
        links(20_000, j1, &[a, b]),
        links(30_000, j2, &[j1, c]),
        links(30_000, j2 + 1, &[a, a]),
    ];
    let lines = run_trace(&[], &[(10_001, a), (10_002, b), (10_003, c)], &sets, 3);
    assert_eq!(
        lineage(&lines[0]),
        vec![
            (0, j1, Some(20_000), 4),
            (1, a, Some(10_001), 1),
            (1, b, Some(10_002), 2)
        ]
    );
    assert_eq!(
        lineage(&lines[1]),
        vec![
            (0, j2, Some(30_000), 4),
            (1, j1, Some(20_000), 4),
            (2, a, Some(10_001), 1),
            (2, b, Some(10_002), 2),
            (1, c, Some(10_003), 3),
        ]
    );
    assert!(
        lines[2]["invalid"].as_str().unwrap().contains("twice"),
        "{}",
        lines[2]
    );
}

/// `--trace ID` keeps only the link sets whose lineage contains ID: of two sets published
/// in order, only the second (the one descending from C) is printed.
#[test]
fn tp_trace_filters_by_trace_id() {
    let mut g = TraceIdGenerator::new(7).unwrap();
    let (a, b, c, j1, j2) = (
        g.next_id(),
        g.next_id(),
        g.next_id(),
        g.next_id(),
        g.next_id(),
    );
    let sets = [links(20_000, j1, &[a, b]), links(30_000, j2, &[b, c])];
    let c_text = c.to_string();
    let lines = run_trace(
        &["--trace", &c_text, "--no-descriptors"],
        &[(10_001, a), (10_002, b), (10_003, c)],
        &sets,
        1,
    );
    assert_eq!(lines[0]["trace_id"].as_u64(), Some(j2));
    assert_eq!(
        lines[0]["lineage"][1]["frame"],
        Value::Null,
        "no descriptors read"
    );
}
