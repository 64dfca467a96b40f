//! `tp decode` on every vector of the C implementation reproduces its values, and
//! `tp encode` of that JSON gives the same bytes back (framed, and with --headerless for the
//! slot, superblock and tensor-header vectors).

mod common;

use std::path::Path;

use common::{tp, tp_with_input};
use serde_json::{Value, json};

/// File, `--headerless` type (if any), message name, and key fields (JSON pointer, value).
type Case = (
    &'static str,
    Option<&'static str>,
    &'static str,
    Vec<(&'static str, Value)>,
);

#[rustfmt::skip] // a table: one line per few fields reads better
fn cases() -> Vec<Case> {
    vec![
        (
            "consumer_config.bin",
            None,
            "ConsumerConfig",
            vec![
                ("/stream_id", json!(1000)),
                ("/consumer_id", json!(2)),
                ("/use_shm", json!(true)),
                ("/mode", json!("STREAM")),
                ("/descriptor_stream_id", json!(1100)),
                ("/descriptor_channel", json!("aeron:ipc")),
                ("/payload_fallback_uri", json!("")),
            ],
        ),
        (
            "consumer_hello.bin",
            None,
            "ConsumerHello",
            vec![
                ("/stream_id", json!(1000)),
                ("/supports_progress", json!(true)),
                ("/expected_layout_version", json!(1)),
                ("/progress_interval_us", Value::Null),
                ("/control_stream_id", json!(1000)),
                ("/control_channel", json!("aeron:ipc")),
            ],
        ),
        (
            "control_response.bin",
            None,
            "ControlResponse",
            vec![
                ("/correlation_id", json!(1)),
                ("/code", json!("OK")),
                ("/error_message", json!("ok")),
            ],
        ),
        (
            "data_source_announce.bin",
            None,
            "DataSourceAnnounce",
            vec![
                ("/stream_id", json!(1000)),
                ("/meta_version", json!(1)),
                ("/name", json!("camera")),
                ("/summary", json!("example")),
            ],
        ),
        (
            "data_source_meta.bin",
            None,
            "DataSourceMeta",
            vec![
                ("/stream_id", json!(1000)),
                ("/attributes/0/key", json!("dtype")),
                ("/attributes/0/format", json!("string")),
                ("/attributes/0/value", json!("float32")),
            ],
        ),
        (
            "meta_blob_announce.bin",
            None,
            "MetaBlobAnnounce",
            vec![
                ("/blob_type", json!(1)),
                ("/total_len", json!(4)),
                ("/checksum", json!(0x1234)),
            ],
        ),
        (
            "meta_blob_chunk.bin",
            None,
            "MetaBlobChunk",
            vec![("/chunk_offset", json!(0)), ("/bytes", json!("abcd"))],
        ),
        (
            "meta_blob_complete.bin",
            None,
            "MetaBlobComplete",
            vec![("/stream_id", json!(1000)), ("/checksum", json!(0x1234))],
        ),
        (
            "qos_consumer.bin",
            None,
            "QosConsumer",
            vec![
                ("/consumer_id", json!(2)),
                ("/last_seq_seen", json!(40)),
                ("/drops_gap", json!(1)),
                ("/drops_late", json!(0)),
                ("/mode", json!("STREAM")),
            ],
        ),
        (
            "qos_producer.bin",
            None,
            "QosProducer",
            vec![
                ("/producer_id", json!(1)),
                ("/current_seq", json!(42)),
                ("/watermark", json!(128)),
            ],
        ),
        (
            "sequence_map.bin",
            None,
            "SequenceMergeMapAnnounce",
            vec![
                ("/out_stream_id", json!(2000)),
                ("/stale_timeout_ns", json!(1_000_000)),
                ("/rules/0/input_stream_id", json!(1001)),
                ("/rules/0/rule_type", json!("OFFSET")),
                ("/rules/0/window_size", Value::Null),
            ],
        ),
        (
            "sequence_request.bin",
            None,
            "SequenceMergeMapRequest",
            vec![("/out_stream_id", json!(2000)), ("/epoch", json!(1))],
        ),
        (
            "shm_pool_announce.bin",
            None,
            "ShmPoolAnnounce",
            vec![
                ("/stream_id", json!(1000)),
                ("/epoch", json!(1)),
                ("/header_nslots", json!(8)),
                ("/announce_clock_domain", json!("MONOTONIC")),
                ("/payload_pools/0/stride_bytes", json!(1024)),
                ("/payload_pools/0/region_uri", json!("shm:///tmp/pool1")),
                ("/header_region_uri", json!("shm:///tmp/header")),
            ],
        ),
        (
            "timestamp_map.bin",
            None,
            "TimestampMergeMapAnnounce",
            vec![
                ("/out_stream_id", json!(2001)),
                ("/clock_domain", json!("MONOTONIC")),
                ("/rules/0/timestamp_source", json!("FRAME_DESCRIPTOR")),
            ],
        ),
        (
            "timestamp_request.bin",
            None,
            "TimestampMergeMapRequest",
            vec![("/out_stream_id", json!(2001))],
        ),
        (
            "trace_link_set.bin",
            None,
            "TraceLinkSet",
            vec![
                ("/trace_id", json!(0x1234)),
                ("/parents/0/trace_id", json!(0x1111)),
                ("/parents/1/trace_id", json!(0x2222)),
            ],
        ),
        (
            "tensor_header.bin",
            None,
            "TensorHeader",
            vec![
                ("/dtype", json!("FLOAT32")),
                ("/major_order", json!("ROW")),
                ("/ndims", json!(1)),
                ("/dims/0", json!(1)),
            ],
        ),
        (
            "slot_header.bin",
            Some("slot"),
            "SlotHeader",
            vec![
                ("/seq_commit", json!(1)),
                ("/values_len_bytes", json!(192)),
                ("/pool_id", json!(1)),
                ("/tensor/dtype", json!("FLOAT32")),
            ],
        ),
        (
            "slot_tensor.bin",
            Some("slot"),
            "SlotHeader",
            vec![
                ("/seq_commit", json!(3)),
                ("/values_len_bytes", json!(64)),
                ("/tensor/ndims", json!(1)),
            ],
        ),
        (
            "superblock.bin",
            Some("superblock"),
            "ShmRegionSuperblock",
            vec![
                ("/magic", json!(0x544F_504C_5348_4D31u64)),
                ("/stream_id", json!(1000)),
                ("/region_type", json!("HEADER_RING")),
                ("/nslots", json!(8)),
                ("/slot_bytes", json!(256)),
            ],
        ),
    ]
}

/// Files rejected, with what the error line must say and why.
const REJECTED: &[(&str, &str)] = &[
    // errorMessage written before the group by the C seed generator (see the codec's test)
    ("discovery_response.bin", "results"),
    // fuzzer harness input, not one SBE message
    ("progress.bin", "unknown message"),
    // URI strings
    ("shm_uri.bin", "unknown message"),
    ("shm_uri_validate.bin", "unknown message"),
];

/// Decodes `path` (with `headerless`), checks the fields, re-encodes, compares the bytes.
fn check(path: &Path, headerless: Option<&str>, name: &str, fields: &[(&str, Value)]) {
    let file = path.to_str().expect("utf-8 path");
    let mut args = vec!["decode", "--json", file];
    if let Some(kind) = headerless {
        args.extend(["--headerless", kind]);
    }
    let run = tp(&args).ok();
    assert!(run.stderr.is_empty(), "{file}: {}", run.stderr);
    let v = run.json();
    assert_eq!(v["message"], name, "{file}");
    assert_eq!(
        v["headerless"].as_bool(),
        headerless.map(|_| true),
        "{file}"
    );
    for (pointer, want) in fields {
        assert_eq!(v.pointer(pointer), Some(want), "{file}: {pointer} in {v}");
    }
    let back = tp_with_input(&["encode", "-", "-o", "-"], v.to_string().as_bytes()).ok();
    let original = std::fs::read(path).expect("read vector");
    assert_eq!(back.stdout, original, "{file}: tp encode gives other bytes");
}

#[test]
fn every_c_vector_decodes_and_round_trips() {
    let Some(dir) = common::vectors_dir() else {
        return;
    };
    let cases = cases();
    for (file, headerless, name, fields) in &cases {
        check(&dir.join(file), *headerless, name, fields);
    }
    for (file, needle) in REJECTED {
        let path = dir.join(file);
        tp(&["decode", path.to_str().expect("path")]).fails_with(needle);
    }
    let mut covered: Vec<&str> = cases.iter().map(|c| c.0).collect();
    covered.extend(REJECTED.iter().map(|r| r.0));
    for entry in std::fs::read_dir(&dir).expect("vector dir") {
        let name = entry.expect("entry").file_name();
        let name = name.to_string_lossy();
        assert!(covered.contains(&name.as_ref()), "{name} is not covered");
    }
}

/// The TensorHeader vector without its message header decodes as `--headerless tensor-header`
/// and encodes back to the 184-byte body.
#[test]
fn tensor_header_body_round_trips_headerless() {
    let Some(dir) = common::vectors_dir() else {
        return;
    };
    let framed = std::fs::read(dir.join("tensor_header.bin")).expect("vector");
    let tmp = tempfile::tempdir().expect("tempdir");
    let body = tmp.path().join("tensor_body.bin");
    std::fs::write(&body, &framed[8..]).expect("write");
    check(
        &body,
        Some("tensor-header"),
        "TensorHeader",
        &[("/dtype", json!("FLOAT32")), ("/dims/0", json!(1))],
    );
}

#[test]
fn text_output_names_the_message_and_its_fields() {
    let Some(dir) = common::vectors_dir() else {
        return;
    };
    let path = dir.join("qos_producer.bin");
    let out = tp(&["decode", path.to_str().expect("path")])
        .ok()
        .stdout_text();
    let first = out.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("QosProducer (schema 900, template 6"),
        "{out}"
    );
    assert!(out.contains("current_seq: 42"), "{out}");
    // hex input, as `tp listen --json` prints it
    let hex: String = std::fs::read(&path)
        .expect("read")
        .iter()
        .map(|b| format!("{b:02x} "))
        .collect();
    let out = tp_with_input(&["decode", "--hex", "-"], hex.as_bytes())
        .ok()
        .stdout_text();
    assert!(out.contains("watermark: 128"), "{out}");
}

#[test]
fn hand_written_json_becomes_a_test_vector() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("fd.bin");
    let json = r#"{"message":"FrameDescriptor","stream_id":10000,"epoch":7,"seq":42,
                   "timestamp_ns":null,"meta_version":1,"trace_id":null}"#;
    tp_with_input(
        &["encode", "-", "-o", out.to_str().expect("path")],
        json.as_bytes(),
    )
    .ok();
    let bytes = std::fs::read(&out).expect("written");
    assert_eq!(
        &bytes[..8],
        &[40, 0, 4, 0, 0x84, 3, 1, 0],
        "header: BL 40, tid 4, 900, v1"
    );
    let v = tp(&["decode", "--json", out.to_str().expect("path")])
        .ok()
        .json();
    assert_eq!(
        (v["seq"].clone(), v["meta_version"].clone()),
        (json!(42), json!(1))
    );
}

#[test]
fn bad_input_gives_one_error_line() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let garbage = tmp.path().join("garbage.bin");
    std::fs::write(&garbage, b"\x01\x02\x03").expect("write");
    let g = garbage.to_str().expect("path");
    tp(&["decode", g]).fails_with("truncated");
    tp(&["decode", "/nonexistent/x.bin"]).fails_with("No such file");
    tp(&["decode", g, "--headerless", "slot"]).fails_with("SlotHeader");
    tp(&["decode", g, "--headerless", "bogus"]).fails_with("unknown type `bogus`");
    tp_with_input(&["decode", "--hex", "-"], b"zz").fails_with("not a hex digit");
    tp_with_input(&["decode", "-"], b"").fails_with("empty input");
    tp_with_input(&["encode", "-", "-o", "-"], b"{not json").fails_with("not JSON");
    tp_with_input(&["encode", "-", "-o", "-"], br#"{"message":"Nope"}"#)
        .fails_with("unknown message `Nope`");
    tp_with_input(&["encode", "-", "-o", "-"], br#"{"message":"QosProducer"}"#)
        .fails_with("missing field");
    tp(&["encode", "-"]).fails_with("--output");
}
