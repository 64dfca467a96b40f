//! `tp listen all` decodes one message of each kind published on each shared stream (and
//! prints a malformed one with its reason); `tp stat` sees a counter the test allocated.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{ChildGuard, DEADLINE, TP, bytes_of, connected_publication, offer};
use serde_json::{Value, json};
use tensorpool_codec::driver::{HugepagesPolicy, PublishMode, Role, ShmAttachRequest};
use tensorpool_codec::merge::{MergeRuleType, SequenceMergeMapAnnounce, SequenceMergeRule};
use tensorpool_codec::wire::*;
use tensorpool_codec::{AnyMessage, Bytes, Group};

/// Messages of the control stream (three schemas).
fn control_messages() -> Vec<AnyMessage<'static>> {
    let hello = AnyMessage::ConsumerHello(ConsumerHello {
        stream_id: 10_000,
        consumer_id: 7,
        supports_shm: true,
        supports_progress: false,
        mode: Mode::Stream,
        max_rate_hz: 0,
        expected_layout_version: 1,
        progress_interval_us: None,
        progress_bytes_delta: None,
        progress_major_delta_units: None,
        descriptor_stream_id: 0,
        control_stream_id: 0,
        descriptor_channel: Bytes::EMPTY,
        control_channel: Bytes::EMPTY,
    });
    let attach = AnyMessage::ShmAttachRequest(ShmAttachRequest {
        correlation_id: 99,
        stream_id: 10_000,
        client_id: 5,
        role: Role::Consumer,
        expected_layout_version: 1,
        publish_mode: Some(PublishMode::RequireExisting),
        require_hugepages: HugepagesPolicy::Unspecified,
        desired_node_id: None,
    });
    let progress = AnyMessage::FrameProgress(FrameProgress {
        stream_id: 10_000,
        epoch: 3,
        seq: 11,
        payload_bytes_filled: 64,
        state: FrameProgressState::Progress,
    });
    let rules = vec![SequenceMergeRule {
        input_stream_id: 10_001,
        rule_type: MergeRuleType::Offset,
        offset: Some(0),
        window_size: None,
    }];
    let merge = AnyMessage::SequenceMergeMapAnnounce(SequenceMergeMapAnnounce {
        out_stream_id: 20_000,
        epoch: 3,
        stale_timeout_ns: None,
        rules: Group::Owned(rules),
    });
    vec![hello, attach, progress, merge]
}

/// Messages per stream id: (stream id, messages).
fn messages() -> Vec<(i32, Vec<AnyMessage<'static>>)> {
    let pools = vec![PayloadPool {
        pool_id: 1,
        pool_nslots: 8,
        stride_bytes: 256,
        region_uri: Bytes::from("shm:file?path=/dev/shm/t/1.pool".to_owned()),
    }];
    let announce = AnyMessage::ShmPoolAnnounce(ShmPoolAnnounce {
        stream_id: 10_000,
        producer_id: 5,
        epoch: 3,
        announce_timestamp_ns: 1,
        announce_clock_domain: ClockDomain::Monotonic,
        layout_version: 1,
        header_nslots: 8,
        header_slot_bytes: 256,
        payload_pools: Group::Owned(pools),
        header_region_uri: Bytes::from("shm:file?path=/dev/shm/t/header.ring".to_owned()),
    });
    let descriptor = AnyMessage::FrameDescriptor(FrameDescriptor {
        stream_id: 10_000,
        epoch: 3,
        seq: 11,
        timestamp_ns: None,
        meta_version: Some(2),
        trace_id: None,
    });
    let qos_p = AnyMessage::QosProducer(QosProducer {
        stream_id: 10_000,
        producer_id: 5,
        epoch: 3,
        current_seq: 11,
        watermark: None,
    });
    let qos_c = AnyMessage::QosConsumer(QosConsumer {
        stream_id: 10_000,
        consumer_id: 7,
        epoch: 3,
        last_seq_seen: 9,
        drops_gap: 1,
        drops_late: 2,
        mode: Mode::RateLimited,
    });
    let source = AnyMessage::DataSourceAnnounce(DataSourceAnnounce {
        stream_id: 10_000,
        producer_id: 5,
        epoch: 3,
        meta_version: 2,
        name: Bytes::from("cam0".to_owned()),
        summary: Bytes::from("front camera".to_owned()),
    });
    // another stream: hidden by --filter-stream in the filtered run
    let other = AnyMessage::QosProducer(QosProducer {
        stream_id: 10_001,
        producer_id: 6,
        epoch: 1,
        current_seq: 1,
        watermark: None,
    });
    vec![
        (1000, control_messages()),
        (1001, vec![announce]),
        (1100, vec![descriptor]),
        (1200, vec![qos_p, qos_c, other]),
        (1300, vec![source]),
    ]
}

/// A QosConsumer header with a body cut short.
fn malformed() -> Vec<u8> {
    let mut b = vec![41, 0, 5, 0, 0x84, 3, 1, 0];
    b.extend_from_slice(&[0xAB; 10]);
    b
}

/// Runs `tp listen args...` while the test publishes on `streams`; returns its lines.
fn listen(args: &[&str], streams: &[i32], expected_lines: usize) -> Vec<String> {
    let driver = common::driver();
    let client = common::connect(&driver);
    let dir = driver.dir().to_str().expect("dir").to_owned();
    let child = Command::new(TP)
        .args(["listen", "--aeron-dir", &dir])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tp listen");
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
    for (stream_id, messages) in messages() {
        if !streams.contains(&stream_id) {
            continue;
        }
        let mut publication = connected_publication(&client, stream_id);
        for m in &messages {
            offer(&mut publication, &bytes_of(m));
        }
        if stream_id == 1200 {
            offer(&mut publication, &malformed());
        }
    }
    let deadline = Instant::now() + DEADLINE;
    let mut lines = Vec::new();
    while lines.len() < expected_lines {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(_) => panic!("{} of {expected_lines} lines: {lines:?}", lines.len()),
        }
    }
    let status = common::wait_exit(&mut guard, DEADLINE, "tp listen --duration");
    assert!(status.success(), "tp listen: {status:?}");
    lines
}

fn find<'a>(lines: &'a [Value], name: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["message"] == name)
        .unwrap_or_else(|| panic!("no {name} in {lines:#?}"))
}

#[test]
fn listen_all_decodes_every_kind_and_the_malformed_one() {
    let lines: Vec<Value> = listen(
        &["all", "--json", "--duration", "8"],
        &[1000, 1001, 1100, 1200, 1300],
        11,
    )
    .iter()
    .map(|l| serde_json::from_str(l).expect("a JSON line"))
    .collect();
    let announce = find(&lines, "ShmPoolAnnounce");
    assert_eq!(announce["source"], "announce");
    assert_eq!(announce["aeron_stream_id"], 1001);
    assert_eq!(announce["header"]["schema_id"], 900);
    assert_eq!(announce["body"]["epoch"], 3);
    assert_eq!(announce["body"]["payload_pools"][0]["stride_bytes"], 256);
    // the driver announces on its control stream by default: one subscription for both
    assert_eq!(find(&lines, "ConsumerHello")["source"], "control+announce");
    let attach = find(&lines, "ShmAttachRequest");
    assert_eq!(
        attach["header"]["schema_id"], 901,
        "driver schema, template 1"
    );
    assert_eq!(attach["body"]["correlation_id"], 99);
    assert_eq!(attach["body"]["publish_mode"], "REQUIRE_EXISTING");
    assert_eq!(find(&lines, "FrameProgress")["body"]["state"], "PROGRESS");
    let merge = find(&lines, "SequenceMergeMapAnnounce");
    assert_eq!(merge["header"]["schema_id"], 903);
    assert_eq!(merge["body"]["rules"][0]["input_stream_id"], 10_001);
    let fd = find(&lines, "FrameDescriptor");
    assert_eq!(
        (fd["source"].clone(), fd["body"]["seq"].clone()),
        (json!("descriptor"), json!(11))
    );
    let qc = find(&lines, "QosConsumer");
    assert_eq!(qc["body"]["mode"], "RATE_LIMITED");
    assert_eq!(qc["body"]["drops_late"], 2);
    assert_eq!(find(&lines, "DataSourceAnnounce")["body"]["name"], "cam0");
    let bad = find(&lines, "malformed");
    assert_eq!(bad["source"], "qos");
    assert!(
        bad["error"].as_str().expect("error").contains("truncated"),
        "{bad}"
    );
    assert!(
        bad["hex"]
            .as_str()
            .expect("hex")
            .starts_with("2900050084030100abab"),
        "{bad}"
    );
    assert_eq!(bad["len"], 18);
    // every decoded body encodes back to bytes (a captured message is a test vector)
    let qp = find(&lines, "QosProducer");
    let back = common::tp_with_input(&["encode", "-", "-o", "-"], qp.to_string().as_bytes()).ok();
    assert_eq!(back.stdout.len(), 36);
}

#[test]
fn listen_filters_by_stream_and_type_and_prints_text() {
    let lines = listen(
        &[
            "qos",
            "--duration",
            "6",
            "--filter-stream",
            "10000",
            "--type",
            "QosProducer",
            "--type",
            "malformed",
        ],
        &[1200],
        2,
    );
    assert_eq!(lines.len(), 2, "{lines:?}");
    // <time> <source>:<aeron stream> <message> <fields>
    let words: Vec<&str> = lines[0].split(' ').collect();
    assert!(
        words[0].ends_with('Z') && words[0].contains('T'),
        "{}",
        lines[0]
    );
    assert_eq!(
        &words[1..4],
        ["qos:1200", "QosProducer", "stream_id=10000"],
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains("current_seq=11 watermark=null"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("qos:1200 MALFORMED (18 bytes)"),
        "{}",
        lines[1]
    );
    assert!(
        lines[1].contains("truncated") && lines[1].contains("hex=29000500"),
        "{}",
        lines[1]
    );
}

#[test]
fn listen_rejects_bad_flags_in_one_line() {
    common::tp(&["listen", "all", "--stream-id", "5"]).fails_with("not `all`");
    common::tp(&["listen", "qos", "--type", "Bogus"]).fails_with("unknown message type `Bogus`");
    common::tp(&["listen", "qos", "--duration=-1"]).fails_with("--duration");
    common::tp(&["listen", "nowhere"]).fails_with("possible values");
    common::tp(&["listen", "qos", "--config", "/nonexistent.toml"]).fails_with("config");
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().join("no-driver");
    common::tp(&[
        "listen",
        "qos",
        "--aeron-dir",
        d.to_str().expect("dir"),
        "--timeout",
        "1",
    ])
    .fails_with("timed out");
}

#[test]
fn stat_sees_a_tensorpool_counter() {
    let driver = common::driver();
    let client = common::connect(&driver);
    let type_id = tensorpool_aeron::tensorpool_counter_type_id(7);
    let counter = client
        .add_counter(
            type_id,
            b"k",
            "tp stat test: frames stream=10000",
            Duration::from_secs(10),
        )
        .expect("counter");
    counter.set(12_345);
    let dir = driver.dir().to_str().expect("dir");
    let v = common::tp(&["stat", "--aeron-dir", dir, "--count", "1", "--json"])
        .ok()
        .json();
    let counters = v["counters"].as_array().expect("counters");
    let c = counters
        .iter()
        .find(|c| c["label"] == "tp stat test: frames stream=10000")
        .unwrap_or_else(|| panic!("counter missing: {v}"));
    assert_eq!(c["value"], 12_345);
    assert_eq!(c["type"], "tensorpool:7");
    assert_eq!(c["tensorpool"], true);
    assert_eq!(c["id"], counter.id());
    assert!(c["rate_per_sec"].is_null(), "no rate on the first refresh");
    assert!(
        counters.iter().any(|c| c["type"] == "system"),
        "Aeron's own counters too"
    );

    // two refreshes, filtered, text: the rate column appears
    let text = common::tp(&[
        "stat",
        "--aeron-dir",
        dir,
        "--count",
        "2",
        "--interval",
        "50",
        "--filter",
        "tp stat test",
    ])
    .ok()
    .stdout_text();
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("tp stat test"))
        .collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert!(
        rows[1].contains("12345") && rows[1].contains("0.0"),
        "{text}"
    );
    common::tp(&["stat", "--aeron-dir", dir, "--count", "0"]).fails_with("--count");
}

#[test]
fn listen_takes_its_streams_from_a_driver_config() {
    let driver = common::driver();
    let client = common::connect(&driver);
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = tmp.path().join("driver.toml");
    let toml = format!(
        "[driver]\ninstance_id = \"d1\"\naeron_dir = \"{}\"\ncontrol_channel = \"aeron:ipc?term-length=4m\"\n\
         control_stream_id = 2000\n[shm]\nbase_dir = \"/dev/shm\"\n[profiles.p]\n\
         payload_pools = [{{ pool_id = 1, stride_bytes = 1024 }}]\n",
        driver.dir().display()
    );
    std::fs::write(&config, toml).expect("write config");
    // the file is read by the driver's own loader: its environment overrides apply too
    let child = Command::new(TP)
        .args(["listen", "all", "--json", "--duration", "5", "--config"])
        .arg(&config)
        .env("DRIVER_QOS_STREAM_ID", "2200")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tp listen");
    let mut guard = ChildGuard(Some(child));
    let read_all = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_string(&mut text);
            }
            let _ = tx.send(text);
        });
        rx
    };
    let running = guard.0.as_mut().expect("running");
    let out = read_all(running.stdout.take().map(|p| Box::new(p) as _));
    let err = read_all(running.stderr.take().map(|p| Box::new(p) as _));
    // QoS on 2200; announce falls back to the control stream 2000 (Driver Model §17)
    let mut qos = connected_publication(&client, 2200);
    let mut control = connected_publication(&client, 2000);
    offer(&mut qos, &bytes_of(&messages()[3].1[0]));
    offer(&mut control, &bytes_of(&messages()[1].1[0]));
    let status = common::wait_exit(&mut guard, DEADLINE, "tp listen --config");
    assert!(status.success(), "{status:?}");
    let out = out.recv_timeout(DEADLINE).expect("stdout");
    let err = err.recv_timeout(DEADLINE).expect("stderr");
    assert!(
        err.contains("control+announce on aeron:ipc?term-length=4m stream 2000"),
        "{err}"
    );
    assert!(
        err.contains("qos on aeron:ipc?term-length=4m stream 2200"),
        "the driver's default QoS channel: {err}"
    );
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let qp = find(&lines, "QosProducer");
    assert_eq!(
        (qp["aeron_stream_id"].clone(), qp["source"].clone()),
        (json!(2200), json!("qos"))
    );
    let an = find(&lines, "ShmPoolAnnounce");
    assert_eq!(an["source"], "control+announce");
    assert_eq!(an["aeron_stream_id"], 2000);
}
