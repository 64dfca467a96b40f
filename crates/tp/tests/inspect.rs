//! `tp inspect` on regions created by the shm crate: a ring with committed slots written by
//! its write path, a pool, a file with a bad magic, a FIFO, a path outside `--allow`.

mod common;

use std::path::{Path, PathBuf};

use common::tp;
use serde_json::json;
use tensorpool_shm::layout::{CreateOptions, EpochSpec, FileModes, ShmLayout};
use tensorpool_shm::tensor::{Dtype, MajorOrder, contiguous};
use tensorpool_shm::{
    FrameMeta, HeaderRing, MapOptions, PayloadPool, PoolGeometry, PoolSet, ReadWrite,
    superblock::ExpectedRegion,
};

const STREAM: u32 = 10_000;
const EPOCH: u64 = 7;
const NSLOTS: u32 = 8;

/// A stream epoch in a tempdir: header ring + one pool, with `frames` committed frames.
struct Region {
    _tmp: tempfile::TempDir,
    ring: PathBuf,
    pool: PathBuf,
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn region(frames: u64) -> Region {
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = ShmLayout::new(tmp.path(), "default", FileModes::default()).expect("layout");
    let spec = EpochSpec {
        layout_version: 1,
        stream_id: STREAM,
        epoch: EPOCH,
        header_nslots: NSLOTS,
        pools: vec![PoolGeometry {
            pool_id: 1,
            stride_bytes: 256,
            nslots: NSLOTS,
        }],
    };
    let opts = CreateOptions {
        prefault: false,
        pid: u64::from(std::process::id()),
        now_ns: tensorpool_agent::monotonic_ns(),
    };
    let created = layout.create_epoch(&spec, opts).expect("create epoch");
    let allowed = tensorpool_shm::AllowedBaseDirs::new([tmp.path()]).expect("allowed");
    let ring_expected = ExpectedRegion::header_ring(1, EPOCH, STREAM, NSLOTS);
    let mut ring = HeaderRing::<ReadWrite>::open(
        &created.header_uri,
        &allowed,
        &ring_expected,
        MapOptions::default(),
    )
    .expect("open ring");
    let pool_expected = ExpectedRegion::payload_pool(1, EPOCH, STREAM, 1, NSLOTS, 256);
    let pool = PayloadPool::<ReadWrite>::open(
        &created.pool_uris[0].1,
        &allowed,
        &pool_expected,
        MapOptions::default(),
    )
    .expect("open pool");
    let mut pools = PoolSet::new(vec![pool], NSLOTS).expect("pool set");
    let meta = FrameMeta {
        tensor: contiguous(Dtype::Float32, MajorOrder::Row, &[4, 4]).expect("tensor"),
        timestamp_ns: 123_456,
        meta_version: 3,
    };
    for seq in 0..frames {
        ring.write_frame(&mut pools, seq, &meta, 64, |b| b.fill(seq as u8))
            .expect("write frame");
    }
    Region {
        ring: created.header_uri.to_path_buf(),
        pool: created.pool_uris[0].1.to_path_buf(),
        _tmp: tmp,
    }
}

#[test]
fn ring_with_committed_slots() {
    let r = region(3);
    let v = tp(&["inspect", path_str(&r.ring), "--json"]).ok().json();
    assert_eq!(v["region"], "header ring");
    assert_eq!(v["valid"], true, "{v}");
    let sb = &v["superblock"];
    assert_eq!(
        (
            sb["stream_id"].clone(),
            sb["epoch"].clone(),
            sb["nslots"].clone()
        ),
        (json!(STREAM), json!(EPOCH), json!(NSLOTS))
    );
    assert_eq!(sb["slot_bytes"], 256);
    assert!(
        v["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .all(|c| c["ok"] == true),
        "{v}"
    );
    assert_eq!(v["liveness"]["pid_alive"], true);
    assert_eq!(v["liveness"]["clock"], "monotonic");
    assert_eq!(v["liveness"]["stale"], false);
    let ring = &v["ring"];
    assert_eq!(
        (
            ring["committed"].clone(),
            ring["empty"].clone(),
            ring["in_progress"].clone()
        ),
        (json!(3), json!(5), json!(0))
    );
    assert_eq!(ring["latest"], json!([2, 2]));
    let slots = ring["slots"].as_array().expect("slots");
    assert_eq!(slots.len(), 3, "only committed slots by default");
    let s = &slots[1];
    assert_eq!(
        (s["index"].clone(), s["state"].clone(), s["seq"].clone()),
        (json!(1), json!("committed"), json!(1))
    );
    assert_eq!(s["valid"], true);
    let h = &s["header"];
    assert_eq!(
        (
            h["pool_id"].clone(),
            h["values_len_bytes"].clone(),
            h["timestamp_ns"].clone()
        ),
        (json!(1), json!(64), json!(123_456))
    );
    assert_eq!(h["tensor"]["dtype"], "FLOAT32");
    assert_eq!(h["tensor"]["dims"], json!([4, 4, 0, 0, 0, 0, 0, 0]));
    // contiguous: strides 0 (inferred by consumers)
    assert_eq!(h["tensor"]["strides"], json!([0, 0, 0, 0, 0, 0, 0, 0]));

    let text = tp(&["inspect", path_str(&r.ring)]).ok().stdout_text();
    assert!(text.contains("verdict       valid"), "{text}");
    assert!(
        text.contains("3 committed, 0 in progress, 5 empty, latest seq 2 in slot 2"),
        "{text}"
    );
    assert!(text.contains("FLOAT32"), "{text}");
    assert!(text.contains("[4,4]"), "{text}");
}

#[test]
fn slot_range_lists_every_state() {
    let r = region(2);
    let v = tp(&["inspect", path_str(&r.ring), "--slots", "1..4", "--json"])
        .ok()
        .json();
    let states: Vec<&str> = v["ring"]["slots"]
        .as_array()
        .expect("slots")
        .iter()
        .map(|s| s["state"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(states, ["committed", "empty", "empty"]);
    tp(&["inspect", path_str(&r.ring), "--slots", "8.."]).fails_with("ring has 8 slots");
    tp(&["inspect", path_str(&r.ring), "--slots", "5..2"]).fails_with("is empty");
}

#[test]
fn pool_and_uri_with_allow() {
    let r = region(0);
    let dir = r.pool.parent().expect("dir").parent().expect("stream dir");
    let uri = format!("shm:file?path={}", r.pool.display());
    let v = tp(&["inspect", &uri, "--allow", path_str(dir), "--json"])
        .ok()
        .json();
    assert_eq!(v["region"], "payload pool");
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["superblock"]["stride_bytes"], 256);
    assert_eq!(v["superblock"]["pool_id"], 1);
    assert!(v["ring"].is_null());
    let text = tp(&["inspect", path_str(&r.pool)]).ok().stdout_text();
    assert!(text.contains("a power-of-two multiple of 64"), "{text}");
}

#[test]
fn bad_magic_is_reported_and_fails() {
    let r = region(1);
    let bad = r.ring.with_file_name("bad.ring");
    let mut bytes = std::fs::read(&r.ring).expect("read");
    bytes[..8].copy_from_slice(b"NOTMAGIC");
    std::fs::write(&bad, &bytes).expect("write");
    let run = tp(&["inspect", path_str(&bad), "--json"]).fails_with("magic");
    let v = run.json();
    assert_eq!(v["valid"], false);
    let magic = &v["checks"][0];
    assert_eq!(
        (magic["field"].clone(), magic["ok"].clone()),
        (json!("magic"), json!(false))
    );
    assert!(v["ring"].is_null(), "no slots read from an invalid region");
    // the stream id etc. are still shown
    assert_eq!(v["superblock"]["stream_id"], STREAM);
}

#[test]
fn short_files_fifos_and_paths_outside_allow_are_refused() {
    let r = region(0);
    let dir = r.ring.parent().expect("dir");
    let short = dir.join("short.ring");
    std::fs::write(&short, [0u8; 10]).expect("write");
    tp(&["inspect", path_str(&short)]).fails_with("64-byte superblock");

    let fifo = dir.join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    tp(&["inspect", path_str(&fifo)]).fails_with("expected a regular file");

    let elsewhere = tempfile::tempdir().expect("tempdir");
    tp(&[
        "inspect",
        path_str(&r.ring),
        "--allow",
        path_str(elsewhere.path()),
    ])
    .fails_with("outside every allowed base dir");
    tp(&["inspect", "/nonexistent/header.ring"]).fails_with("No such file");
    tp(&["inspect", "shm:file?path=relative"]).fails_with("relative");
    tp(&["inspect", "http://x/y"]).fails_with("unknown region URI scheme");
}
