//! `tp exporter` serves the counters of a live system (a standalone producer and a consumer,
//! real processes on an embedded media driver) as OpenMetrics text: the test scrapes it over
//! HTTP, checks every line's syntax, the producer's and consumer's frame counters and their
//! labels, and that a later scrape shows more frames. The Grafana dashboard queries only
//! metrics the exporter can produce.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ChildGuard, DEADLINE, TP};

/// One sample: name, labels, value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn is_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
}

/// Parses `{a="x",b="y"}` (escapes \\ \" \n); returns the labels and the rest of the line.
fn parse_labels(s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let Some(mut rest) = s.strip_prefix('{') else {
        return Ok((labels, s));
    };
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        let eq = rest.find('=').ok_or("label without =")?;
        let key = &rest[..eq];
        if !is_name(key) {
            return Err(format!("bad label name {key:?}"));
        }
        let mut chars = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or("label value not quoted")?
            .char_indices();
        let mut value = String::new();
        let end = loop {
            match chars.next().ok_or("unterminated label value")? {
                (i, '"') => break i,
                (_, '\\') => match chars.next().ok_or("bad escape")?.1 {
                    'n' => value.push('\n'),
                    c @ ('\\' | '"') => value.push(c),
                    c => return Err(format!("bad escape \\{c}")),
                },
                (_, c) => value.push(c),
            }
        };
        if labels.insert(key.to_owned(), value).is_some() {
            return Err(format!("label {key} twice"));
        }
        rest = &rest[eq + 1..][1 + end + 1..];
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        }
    }
}

/// Parses an OpenMetrics text exposition strictly: `# HELP`/`# TYPE`/`# UNIT` lines,
/// samples of a declared family, `# EOF` last.
fn parse(text: &str) -> Result<Vec<Sample>, String> {
    let mut types = BTreeMap::new();
    let mut samples = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    if lines.last() != Some(&"# EOF") {
        return Err("does not end with # EOF".into());
    }
    for line in &lines[..lines.len() - 1] {
        if let Some(meta) = line.strip_prefix("# ") {
            let mut parts = meta.splitn(3, ' ');
            let (what, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            if !is_name(name) {
                return Err(format!("bad family name: {line}"));
            }
            match what {
                "HELP" | "UNIT" => {}
                "TYPE" => {
                    let t = parts.next().unwrap_or("");
                    if !["counter", "gauge"].contains(&t) {
                        return Err(format!("unexpected type: {line}"));
                    }
                    types.insert(name.to_owned(), t.to_owned());
                }
                _ => return Err(format!("bad comment line: {line}")),
            }
            continue;
        }
        let end = line.find(['{', ' ']).ok_or(format!("no value: {line}"))?;
        let name = &line[..end];
        if !is_name(name) {
            return Err(format!("bad metric name: {line}"));
        }
        let (labels, rest) = parse_labels(&line[end..]).map_err(|e| format!("{e}: {line}"))?;
        let value: f64 = rest
            .strip_prefix(' ')
            .ok_or(format!("no space before value: {line}"))?
            .parse()
            .map_err(|e| format!("bad value ({e}): {line}"))?;
        let family = match types.get(name) {
            Some(t) if t == "gauge" => name,
            _ => match name.strip_suffix("_total") {
                Some(f) if types.get(f).is_some_and(|t| t == "counter") => f,
                _ => return Err(format!("sample of no declared family: {line}")),
            },
        };
        let _ = family;
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    Ok(samples)
}

/// GET `path` from `addr`: status line and body.
fn get(addr: &str, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the exporter");
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read the answer");
    let (head, body) = raw.split_once("\r\n\r\n").expect("HTTP head");
    let status = head.lines().next().unwrap_or_default().to_owned();
    // tiny_http answers with Content-Length here; a chunked body would fail the parse
    (status, body.to_owned())
}

fn frames(samples: &[Sample], name: &str, role: &str, stream: &str) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && s.labels.get("role").map(String::as_str) == Some(role)
                && s.labels.get("stream_id").map(String::as_str) == Some(stream)
        })
        .map(|s| s.value)
}

#[test]
fn exporter_serves_the_counters_of_a_live_system() {
    let driver = common::driver();
    let aeron = driver.dir().to_path_buf();
    let shm = tempfile::Builder::new()
        .prefix("tp-exp-")
        .tempdir_in("/dev/shm")
        .unwrap();
    let stream = "10031";
    let spawn = |args: &[&str], base_flag: &str| {
        let child = Command::new(TP)
            .args(args)
            .args(["--stream-id", stream])
            .arg("--aeron-dir")
            .arg(&aeron)
            .arg(base_flag)
            .arg(shm.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn tp");
        ChildGuard(Some(child))
    };
    let _consumer = spawn(&["consume"], "--allowed-base-dir");
    let _producer = spawn(
        &[
            "produce",
            "--standalone",
            "--count",
            "1000000",
            "--rate",
            "200",
            "--size",
            "1024",
            "--linger",
            "0",
        ],
        "--shm-base-dir",
    );
    let mut exporter = Command::new(TP)
        .args(["exporter", "--listen", "127.0.0.1:0", "--aeron-dir"])
        .arg(&aeron)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tp exporter");
    let stdout = exporter.stdout.take().unwrap();
    let mut exporter = ChildGuard(Some(exporter));
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first).unwrap();
    let addr = first
        .strip_prefix("serving http://")
        .and_then(|r| r.split_once("/metrics"))
        .map(|(a, _)| a.to_owned())
        .unwrap_or_else(|| panic!("unexpected first line: {first:?}"));

    let scrape = || {
        let (status, body) = get(&addr, "/metrics");
        assert!(status.contains(" 200 "), "{status}\n{body}");
        parse(&body).unwrap_or_else(|e| panic!("bad exposition: {e}\n{body}"))
    };
    // wait (bounded) until both roles' frame counters are there and moving
    let deadline = Instant::now() + DEADLINE;
    let (p1, c1, samples) = loop {
        let s = scrape();
        let p = frames(&s, "tensorpool_producer_frames_total", "producer", stream);
        let c = frames(&s, "tensorpool_consumer_frames_total", "consumer", stream);
        if let (Some(p), Some(c)) = (p, c)
            && p > 0.0
            && c > 0.0
        {
            break (p, c, s);
        }
        assert!(
            Instant::now() < deadline,
            "no producer and consumer frames in time"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let consumer = samples
        .iter()
        .find(|s| s.name == "tensorpool_consumer_frames_total")
        .unwrap();
    for l in ["stream_id", "role", "client_id", "pid"] {
        assert!(consumer.labels.contains_key(l), "{l}: {consumer:?}");
    }
    assert!(
        consumer.labels["client_id"].parse::<u32>().is_ok(),
        "{consumer:?}"
    );
    // per-cause drops carry a cause label; other families do not
    for s in &samples {
        let per_cause = s.name == "tensorpool_consumer_drops_total";
        assert_eq!(s.labels.contains_key("cause"), per_cause, "{s:?}");
    }
    assert!(
        samples
            .iter()
            .any(|s| s.name == "tensorpool_producer_epoch" && s.value > 0.0),
        "producer epoch gauge"
    );
    // a later scrape reads the counters fresh
    let deadline = Instant::now() + DEADLINE;
    loop {
        let s = scrape();
        let p = frames(&s, "tensorpool_producer_frames_total", "producer", stream).unwrap_or(0.0);
        let c = frames(&s, "tensorpool_consumer_frames_total", "consumer", stream).unwrap_or(0.0);
        if p > p1 && c > c1 {
            break;
        }
        assert!(Instant::now() < deadline, "frame counters did not increase");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, _) = get(&addr, "/nothing");
    assert!(status.contains(" 404 "), "{status}");

    // SIGTERM stops it cleanly
    let pid = exporter.0.as_ref().unwrap().id();
    let killed = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = common::wait_exit(&mut exporter, DEADLINE, "tp exporter");
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_bad_listen_address_fails_with_one_line() {
    let driver = common::driver();
    let dir = driver.dir().to_str().unwrap().to_owned();
    common::tp(&["exporter", "--listen", "nonsense", "--aeron-dir", &dir])
        .fails_with("--listen nonsense");
    // the address in use
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    common::tp(&["exporter", "--listen", &addr, "--aeron-dir", &dir]).fails_with("cannot listen");
}

#[test]
fn no_media_driver_fails_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    common::tp(&[
        "exporter",
        "--timeout",
        "1",
        "--aeron-dir",
        dir.path().to_str().unwrap(),
    ])
    .fails_with("no media driver");
}

/// Every metric a Grafana dashboard query names is one the exporter can produce.
#[test]
fn the_grafana_dashboard_queries_only_exported_metrics() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../config/grafana/tensorpool.json"
    );
    let text = std::fs::read_to_string(path).expect("dashboard");
    let dash: serde_json::Value = serde_json::from_str(&text).expect("dashboard is JSON");
    let known: BTreeSet<String> = common::tp(&["exporter", "--list-metrics"])
        .ok()
        .stdout_text()
        .lines()
        .map(str::to_owned)
        .collect();
    let mut exprs = Vec::new();
    for panel in dash["panels"].as_array().expect("panels") {
        for t in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(t["expr"].as_str().expect("expr").to_owned());
        }
    }
    assert!(exprs.len() >= 6, "{exprs:?}");
    let mut used = BTreeSet::new();
    for e in &exprs {
        for word in e.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("tensorpool_") || word.starts_with("aeron_") {
                assert!(known.contains(word), "{word} (in {e}) is not exported");
                used.insert(word.to_owned());
            }
        }
    }
    for needed in [
        "tensorpool_consumer_frames_total",
        "tensorpool_consumer_bytes_total",
        "tensorpool_consumer_drops_total",
        "tensorpool_consumer_latency_p50_ns",
        "tensorpool_consumer_latency_p99_ns",
        "tensorpool_driver_leases_active",
    ] {
        assert!(used.contains(needed), "the dashboard lacks {needed}");
    }
}
