//! `tp join` as a real process between `tp produce --standalone` processes on a private media
//! driver: the Julia implementation's three join-barrier example scenarios (sequence: two
//! inputs on OFFSET 0; timestamp: one input on OFFSET_NS 0; latest value: two inputs at
//! different rates) reproduced with our processes, and a republished join traced through
//! `tp trace` (the derived frame's parents are the inputs' trace ids). Private Aeron and SHM
//! directories; every wait is on output lines with a deadline; children stop on drop.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{DEADLINE, TP};
use serde_json::Value;

const A: &str = "10001";
const B: &str = "10002";

/// A child process whose stdout lines arrive on a channel; SIGTERM then SIGKILL on drop.
struct Proc {
    child: Option<Child>,
    name: String,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    fn spawn(name: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(TP)
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child: Some(child),
            name: name.to_owned(),
            lines: rx,
        }
    }

    /// The JSON lines of the output until one satisfies `done` (that one included).
    fn json_until(&mut self, what: &str, mut done: impl FnMut(&Value) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + DEADLINE;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let Ok(v) = serde_json::from_str::<Value>(&line) else {
                        continue;
                    };
                    let stop = done(&v);
                    seen.push(v);
                    if stop {
                        return seen;
                    }
                }
                Err(_) => panic!("{}: no {what} within {DEADLINE:?}; saw {seen:?}", self.name),
            }
        }
    }
}

impl Proc {
    /// The next JSON line within `within`, if any.
    fn next_json(&mut self, within: Duration) -> Option<Value> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).ok()?;
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                return Some(v);
            }
        }
    }

    /// SIGTERM, then the JSON lines until the summary line.
    fn stop_summary(&mut self) -> Value {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
        }
        let lines = self.json_until("the summary", |v| v.get("summary").is_some());
        lines.last().unwrap()["summary"].clone()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && c.try_wait().ok().flatten().is_none() {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn s(p: &Path) -> String {
    p.to_str().expect("utf-8 path").to_owned()
}

/// `tp produce --standalone` of 64-byte frames at `rate` Hz; `node` turns trace ids on.
fn produce(aeron: &Path, shm: &Path, stream: &str, rate: &str, node: Option<&str>) -> Proc {
    let mut env = Vec::new();
    if let Some(n) = node {
        env.push(("PRODUCER_TRACE_IDS", "true"));
        env.push(("PRODUCER_TRACE_NODE_ID", n));
    }
    Proc::spawn(
        &format!("produce {stream}"),
        &[
            "produce",
            "--standalone",
            "--stream-id",
            stream,
            "--size",
            "64",
            "--rate",
            rate,
            "--count",
            "100000",
            "--nslots",
            "64",
            "--linger",
            "0",
            "--aeron-dir",
            &s(aeron),
            "--shm-base-dir",
            &s(shm),
        ],
        &env,
    )
}

/// `tp join --json` with `args`, over this world's directories.
fn join(aeron: &Path, shm: &Path, args: &[&str]) -> Proc {
    let mut all = vec!["join", "--json", "--idle", "sleep:1ms", "--duration", "60"];
    all.extend_from_slice(args);
    let (a, b) = (s(aeron), s(shm));
    all.extend_from_slice(&["--aeron-dir", &a, "--allowed-base-dir", &b]);
    Proc::spawn("join", &all, &[])
}

struct World {
    driver: tensorpool_aeron::EmbeddedMediaDriver,
    shm: tempfile::TempDir,
}

impl World {
    fn new() -> Self {
        let driver = common::driver();
        let shm = tempfile::Builder::new()
            .prefix("tp-join-")
            .tempdir_in("/dev/shm")
            .unwrap();
        Self { driver, shm }
    }

    fn aeron(&self) -> &Path {
        self.driver.dir()
    }
}

fn sets(lines: &[Value]) -> Vec<&Value> {
    lines.iter().filter(|v| v.get("set").is_some()).collect()
}

fn frame(set: &Value, i: usize) -> &Value {
    &set["frames"][i]
}

/// JB §7.1, the Julia sequence example: two inputs on OFFSET 0; output `s` is ready once
/// both inputs reached `s`, and the set holds frame `s` of each (read by seq, rechecked).
#[test]
fn jb_process_sequence_example_two_inputs_offset_zero() {
    let w = World::new();
    let mut j = join(
        w.aeron(),
        w.shm.path(),
        &["--input", A, "--input", B, "--count", "1000000"],
    );
    let _pa = produce(w.aeron(), w.shm.path(), A, "200", None);
    let _pb = produce(w.aeron(), w.shm.path(), B, "200", None);
    let mut n = 0;
    let lines = j.json_until("10 sequence sets", |v| {
        n += usize::from(v.get("set").is_some());
        n >= 10
    });
    let mut last = None;
    for set in sets(&lines) {
        let out = set["set"]["seq"].as_u64().expect("a sequence set");
        assert!(last.is_none_or(|l| out > l), "{lines:?}");
        last = Some(out);
        assert_eq!(frame(set, 0)["stream_id"], 10001);
        assert_eq!(frame(set, 1)["stream_id"], 10002);
        assert_eq!(frame(set, 0)["seq"], out, "{set}");
        assert_eq!(frame(set, 1)["seq"], out, "{set}");
    }
}

/// JB §8.1, the Julia timestamp example: one input on OFFSET_NS 0: every frame of it is a
/// set at its own timestamp.
#[test]
fn jb_process_timestamp_example_one_input_offset_ns_zero() {
    let w = World::new();
    let mut j = join(
        w.aeron(),
        w.shm.path(),
        &["--mode", "timestamp", "--input", A, "--count", "1000000"],
    );
    let _pa = produce(w.aeron(), w.shm.path(), A, "200", None);
    let mut n = 0;
    let lines = j.json_until("10 timestamp sets", |v| {
        n += usize::from(v.get("set").is_some());
        n >= 10
    });
    let mut last = 0;
    for set in sets(&lines) {
        let t = set["set"]["time_ns"].as_u64().expect("a timestamp set");
        assert_eq!(frame(set, 0)["timestamp_ns"], t, "{set}");
        assert!(t > last, "times increase: {lines:?}");
        last = t;
    }
}

/// JB §9.1, the Julia latest-value example: two inputs at different rates; a set as soon as
/// both have a frame, each holding the input's newest frame, a new set whenever one moved.
#[test]
fn jb_process_latest_example_two_inputs() {
    let w = World::new();
    let mut j = join(
        w.aeron(),
        w.shm.path(),
        &[
            "--mode", "latest", "--input", A, "--input", B, "--count", "1000000",
        ],
    );
    let _pa = produce(w.aeron(), w.shm.path(), A, "200", None);
    let _pb = produce(w.aeron(), w.shm.path(), B, "20", None);
    let mut n = 0;
    let lines = j.json_until("20 latest sets", |v| {
        n += usize::from(v.get("set").is_some());
        n >= 20
    });
    let sets = sets(&lines);
    let mut prev: Option<(u64, u64)> = None;
    for set in &sets {
        let a = frame(set, 0)["seq"].as_u64().expect("frame of A");
        let b = frame(set, 1)["seq"].as_u64().expect("frame of B");
        if let Some((pa, pb)) = prev {
            assert!(a >= pa && b >= pb, "newest values never go back: {lines:?}");
            assert!((a, b) != (pa, pb), "a new set only when an input moved");
        }
        prev = Some((a, b));
    }
    // at 200 Hz against 20 Hz, A moves on while B holds its value
    assert!(
        sets.windows(2)
            .any(|w| frame(w[0], 1)["seq"] == frame(w[1], 1)["seq"]),
        "{lines:?}"
    );
}

/// TL §7, §9: a join republished with `--output` traces through: `tp trace` sees a
/// TraceLinkSet for the output frame `tp join` published, naming as parents the trace ids
/// of the two input frames of that set (non-zero, minted by nodes 1 and 2), and the output's
/// id minted by node 3.
#[test]
fn tl_process_propagation_through_a_join() {
    let w = World::new();
    let mut trace = Proc::spawn(
        "trace",
        &[
            "trace",
            "--json",
            "--duration",
            "60",
            "--aeron-dir",
            &s(w.aeron()),
        ],
        &[],
    );
    let mut j = join(
        w.aeron(),
        w.shm.path(),
        &[
            "--input",
            A,
            "--input",
            B,
            "--output",
            "--out-stream-id",
            "9000",
            "--trace-node-id",
            "3",
            "--out-stride-bytes",
            "1024",
            "--shm-base-dir",
            &s(w.shm.path()),
            "--count",
            "1000000",
        ],
    );
    let _pa = produce(w.aeron(), w.shm.path(), A, "100", Some("1"));
    let _pb = produce(w.aeron(), w.shm.path(), B, "100", Some("2"));
    let published = j.json_until("5 published sets", |v| {
        v.get("published").is_some() && v["published"]["seq"].as_u64().unwrap_or(0) >= 4
    });
    let link = trace.json_until("a link set of stream 9000", |v| v["stream_id"] == 9000);
    let link = link.last().unwrap();
    let seq = link["seq"].as_u64().unwrap();
    let set = published
        .iter()
        .find(|v| v["published"]["seq"] == seq)
        .unwrap_or_else(|| panic!("no published seq {seq}: {published:?}"));
    assert_eq!(
        link["trace_id"], set["published"]["trace_id"],
        "{link} {set}"
    );
    let parents: Vec<u64> = link["parents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap())
        .collect();
    let inputs: Vec<u64> = (0..2)
        .map(|i| frame(set, i)["trace_id"].as_u64().expect("traced input"))
        .collect();
    assert_eq!(parents, inputs, "{link} {set}");
    let layout = tensorpool::tracelink::TraceIdGenerator::new(0).unwrap();
    assert_eq!(layout.split(parents[0]).node_id, 1);
    assert_eq!(layout.split(parents[1]).node_id, 2);
    let out_id = link["trace_id"].as_u64().unwrap();
    assert_eq!(layout.split(out_id).node_id, 3);
    assert!(parents.iter().all(|&p| p != 0 && p != out_id));
}

/// JB §10.1, §10.3: `tp join --announced-map` has no map of its own: it asks on the control
/// stream and joins once an authority's `SequenceMergeMapAnnounce` (here `tp encode` +
/// `tp send`, as a deployment's authority would publish it) arrives there.
#[test]
fn jb_process_announced_map_arrives_on_the_control_stream() {
    let w = World::new();
    let mut j = join(
        w.aeron(),
        w.shm.path(),
        &[
            "--announced-map",
            "--input",
            A,
            "--input",
            B,
            "--count",
            "1000000",
        ],
    );
    let _pa = produce(w.aeron(), w.shm.path(), A, "100", None);
    let _pb = produce(w.aeron(), w.shm.path(), B, "100", None);
    let map = w.shm.path().join("map.bin");
    let json = r#"{"message":"SequenceMergeMapAnnounce","out_stream_id":9000,"epoch":1,"stale_timeout_ns":null,"rules":[{"input_stream_id":10001,"rule_type":"OFFSET","offset":0,"window_size":null},{"input_stream_id":10002,"rule_type":"OFFSET","offset":0,"window_size":null}]}"#;
    std::fs::write(w.shm.path().join("map.json"), json).unwrap();
    let enc = Command::new(TP)
        .args(["encode", &s(&w.shm.path().join("map.json")), "-o", &s(&map)])
        .output()
        .unwrap();
    assert!(enc.status.success(), "{enc:?}");
    // the authority publishes the announce; `tp send` waits for a subscriber of the control
    // stream, which may be a producer's before it is `tp join`'s: sent again until a set
    // comes (each wait bounded, the whole by DEADLINE)
    let deadline = Instant::now() + DEADLINE;
    let mut first = None;
    while first.is_none() {
        assert!(Instant::now() < deadline, "no set after the announce");
        let sent = Command::new(TP)
            .args([
                "send",
                &s(&map),
                "--channel",
                "aeron:ipc?term-length=4m",
                "--stream",
                "1000",
                "--aeron-dir",
                &s(w.aeron()),
            ])
            .output()
            .unwrap();
        assert!(sent.status.success(), "{sent:?}");
        first = j
            .next_json(Duration::from_secs(2))
            .filter(|v| v.get("set").is_some());
    }
    let mut n = 1;
    let mut lines = vec![first.unwrap()];
    lines.extend(j.json_until("3 sets after the announce", |v| {
        n += usize::from(v.get("set").is_some());
        n >= 3
    }));
    for set in sets(&lines) {
        let out = set["set"]["seq"].as_u64().unwrap();
        assert_eq!(frame(set, 0)["seq"], out);
        assert_eq!(frame(set, 1)["seq"], out);
    }
    let summary = j.stop_summary();
    assert!(summary["maps_applied"].as_u64().unwrap() >= 1, "{summary}");
    assert!(summary["announces"].as_u64().unwrap() >= 1, "{summary}");
}

/// Bad flags are one clear error line, before anything connects: a stream id of 0, an
/// unknown rule, a rule of the wrong kind for --mode.
#[test]
fn tp_join_refuses_bad_inputs_clearly() {
    common::tp(&["join", "--input", "0"]).fails_with("bad stream id");
    common::tp(&["join", "--input", "10001:every=2"]).fails_with("unknown rule `every`");
    common::tp(&["join", "--input", "10001:offset=x"]).fails_with("bad value `x` for offset");
    common::tp(&["join", "--input", "10001:offset-ns=5"]).fails_with("does not fit --mode");
    common::tp(&["join", "--mode", "timestamp", "--input", "10001:window=2"])
        .fails_with("does not fit --mode");
    common::tp(&["join", "--input", "10001", "--duration=-1"]).fails_with("--duration");
}

/// Without --json each set is one text line, `set seq=N STREAM:SEQ ...`, and the counters
/// end the output.
#[test]
fn tp_join_prints_sets_as_text() {
    let w = World::new();
    let (a, b) = (s(w.aeron()), s(w.shm.path()));
    let j = Proc::spawn(
        "join",
        &[
            "join",
            "--input",
            A,
            "--count",
            "3",
            "--idle",
            "sleep:1ms",
            "--aeron-dir",
            &a,
            "--allowed-base-dir",
            &b,
        ],
        &[],
    );
    let _pa = produce(w.aeron(), w.shm.path(), A, "100", None);
    let deadline = Instant::now() + DEADLINE;
    let mut lines = Vec::new();
    while !lines
        .iter()
        .any(|l: &String| l.starts_with("tp join: 3 sets"))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match j.lines.recv_timeout(left) {
            Ok(l) => lines.push(l),
            Err(_) => panic!("no summary: {lines:?}"),
        }
    }
    let sets: Vec<_> = lines.iter().filter(|l| l.starts_with("set ")).collect();
    assert_eq!(sets.len(), 3, "{lines:?}");
    for l in sets {
        let seq = l
            .strip_prefix("set seq=")
            .and_then(|r| r.split(' ').next())
            .unwrap_or_else(|| panic!("{l}"));
        assert_eq!(*l, format!("set seq={seq} 10001:{seq}"));
    }
}
