//! The tools against a live system, every piece a real process: `tp media-driver`, `tp driver`
//! (its TOML generated here, shared with the roles: `[producer]` and `[consumer]` tables
//! added), `tp produce --config` and `tp consume --config`, both through the SHM driver.
//! Then `tp inspect`, `tp listen`, `tp stat`, `tp driver status|leases|streams` and `tp top`
//! (under a pseudo-terminal) are checked against what they must see. Own Aeron directory under
//! /dev/shm, own SHM base directory (a tempdir); every wait has a deadline; children are
//! stopped on failure; nothing is left behind.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::pty::{cell, spawn_top};
use common::{DEADLINE, TP, tp};
use serde_json::Value;

const STREAM: u32 = 10_000;
const WAIT: Duration = Duration::from_secs(20);

/// A `tp` child whose stdout lines arrive on a channel; SIGTERM then SIGKILL on drop.
struct Proc {
    child: Option<Child>,
    name: &'static str,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Proc {
    fn spawn(name: &'static str, args: &[&str], config: Option<&Path>) -> Self {
        let mut command = Command::new(TP);
        command.args(args);
        if let Some(c) = config {
            command.arg("--config").arg(c);
        }
        let mut child = command
            .env_remove("AERON_DIR")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let stdout = child.stdout.take().expect("stdout");
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
            name,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Waits (bounded) for a stdout line matching `f`.
    fn expect(&mut self, what: &str, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if f(&line) => return line,
                Ok(line) => self.seen.push(line),
                Err(_) => panic!("{}: no {what}; saw {:?}", self.name, self.seen),
            }
        }
    }

    fn signal(&self, signal: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args([signal, &c.id().to_string()])
                .status();
        }
    }

    /// SIGTERM and a bounded wait for the exit.
    fn stop(&mut self) -> ExitStatus {
        self.signal("-TERM");
        let deadline = Instant::now() + WAIT;
        let child = self.child.as_mut().expect("running");
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return status;
            }
            assert!(Instant::now() < deadline, "{} did not stop", self.name);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            self.signal("-TERM");
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline && c.try_wait().ok().flatten().is_none() {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Removes the Aeron directory whatever happens (the media driver removes it on a clean
/// stop; this covers a failed test).
struct DirGuard(PathBuf);

impl Drop for DirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The driver's file, with the roles' tables: one file for the whole deployment.
fn config(aeron: &Path, shm: &Path) -> String {
    format!(
        r#"[driver]
instance_id = "live"
aeron_dir = "{aeron}"

[shm]
base_dir = "{shm}"

[policies]
announce_period_ms = 200
prefault_shm = false
epoch_gc_enabled = false

[profiles.camera]
header_nslots = 64
payload_pools = [{{ pool_id = 1, stride_bytes = 4096 }}]

[streams.front]
stream_id = {STREAM}
profile = "camera"

[producer]
stream_id = {STREAM}
producer_id = 5
use_driver = true
shm_base_dir = "{shm}"
name = "front-camera"
qos_period_ms = 200
data_source_period_ms = 200

[consumer]
stream_id = {STREAM}
consumer_id = 77
use_driver = true
allowed_base_dirs = ["{shm}"]
qos_interval_ms = 200
"#,
        aeron = aeron.display(),
        shm = shm.display()
    )
}

/// `tp ARGS --json` on the live system: its JSON (one document).
fn json(args: &[&str]) -> Value {
    tp(args).ok().json()
}

/// Polls `f` (bounded) until it returns `Some`.
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn tools_see_a_live_driver_producer_and_consumer() {
    let started = Instant::now();
    let aeron = tensorpool_aeron::unique_dir();
    let _aeron_guard = DirGuard(aeron.clone());
    let shm = tempfile::Builder::new()
        .prefix("tp-live-")
        .tempdir_in("/dev/shm")
        .expect("shm tempdir");
    let cfg_dir = tempfile::tempdir().expect("config dir");
    let cfg = cfg_dir.path().join("deployment.toml");
    std::fs::write(&cfg, config(&aeron, shm.path())).expect("write config");
    let cfg_s = cfg.to_str().expect("utf-8 path");
    let aeron_s = aeron.to_str().expect("utf-8 path");

    let mut media = Proc::spawn(
        "tp media-driver",
        &[
            "media-driver",
            "--threading-mode",
            "shared",
            "--delete-dir-on-shutdown",
            "--dir",
            aeron_s,
        ],
        None,
    );
    media.expect("media driver running", |l| l.contains("running"));
    let mut driver = Proc::spawn("tp driver", &["driver"], Some(&cfg));
    driver.expect("driver ready", |l| l.contains("ready"));
    // The Aeron directory comes from driver.aeron_dir of the shared file.
    let mut producer = Proc::spawn(
        "tp produce",
        &[
            "produce", "--count", "1000000", "--rate", "200", "--shape", "16x32", "--dtype", "f32",
        ],
        Some(&cfg),
    );
    let mut consumer = Proc::spawn(
        "tp consume",
        &["consume", "--verify", "--json", "--duration", "55"],
        Some(&cfg),
    );

    // tp driver streams / leases / status: the stream, its epoch, both leases.
    let query = |what: &str| json(&["driver", what, "--config", cfg_s, "--json"]);
    let streams = eventually("the producer's lease on the stream", || {
        let v = query("streams");
        let s = v.pointer("/streams/0").cloned()?;
        (s["stream_id"] == STREAM
            && s["producer_client_id"].is_number()
            && s["consumer_count"] == 1)
            .then_some(v)
    });
    let stream = &streams["streams"][0];
    let epoch = stream["epoch"].as_u64().expect("a live epoch");
    let header_uri = stream["header_region_uri"]
        .as_str()
        .expect("uri")
        .to_owned();
    let leases = query("leases");
    let leases = leases["leases"].as_array().expect("leases").clone();
    let roles: Vec<&str> = leases.iter().filter_map(|l| l["role"].as_str()).collect();
    assert_eq!(leases.len(), 2, "{leases:?}");
    assert!(
        roles.contains(&"PRODUCER") && roles.contains(&"CONSUMER"),
        "{roles:?}"
    );
    assert!(
        leases.iter().all(|l| l["stream_id"] == STREAM),
        "{leases:?}"
    );
    // the producer's attach bumped the epoch: its lease carries the live one
    let producer_lease = leases
        .iter()
        .find(|l| l["role"] == "PRODUCER")
        .expect("producer");
    assert_eq!(producer_lease["epoch"], epoch, "{leases:?}");
    let status = query("status");
    let b = &status;
    assert_eq!(
        (b["stream_count"].clone(), b["lease_count"].clone()),
        (1.into(), 2.into())
    );
    assert_eq!(b["instance_id"], "live");

    // tp stat: the producer's and the consumer's counters, keyed by the stream.
    let counters = eventually("frames counted by both roles", || {
        let v = json(&["stat", "--aeron-dir", aeron_s, "--count", "1", "--json"]);
        let rows = v["counters"].as_array()?.clone();
        let frames = |role: &str| {
            rows.iter()
                .find(|c| c["type"] == format!("{role}.frames") && c["key"]["stream_id"] == STREAM)
                .and_then(|c| c["value"].as_i64())
        };
        (frames("producer")? > 0 && frames("consumer")? > 0).then_some(rows)
    });
    let find = |ty: &str| {
        counters
            .iter()
            .find(|c| c["type"] == ty)
            .unwrap_or_else(|| panic!("no {ty} counter"))
    };
    assert_eq!(find("producer.frames")["key"]["client_id"], 5);
    assert_eq!(find("consumer.frames")["key"]["client_id"], 77);
    assert_eq!(find("producer.epoch")["value"], epoch);
    assert_eq!(find("consumer.epoch")["value"], epoch);
    assert_eq!(
        find("producer.frames")["label"],
        format!("tp producer frames: stream={STREAM} client=5")
    );
    assert!(find("driver.attaches-ok")["value"].as_i64() >= Some(2));
    assert_eq!(find("driver.leases-active")["value"], 2);

    // tp inspect on the live header ring: committed slots with the producer's shape and
    // dtype, the driver (the files' owner) alive.
    let shm_s = shm.path().to_str().expect("utf-8 path");
    let v = json(&["inspect", &header_uri, "--allow", shm_s, "--json"]);
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["superblock"]["epoch"], epoch);
    assert_eq!(v["liveness"]["pid_alive"], true, "{v}");
    assert!(v["ring"]["committed"].as_u64() > Some(0), "{v}");
    let slot = v["ring"]["slots"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["state"] == "committed"))
        .expect("a committed slot")
        .clone();
    let tensor = &slot["header"]["tensor"];
    assert_eq!(tensor["dtype"], "FLOAT32", "{slot}");
    assert_eq!(
        tensor["dims"],
        serde_json::json!([16, 32, 0, 0, 0, 0, 0, 0])
    );

    // tp listen all: every kind of traffic of the stream, from the shared file's endpoints.
    let listen = tp(&[
        "listen",
        "all",
        "--json",
        "--duration",
        "3",
        "--config",
        cfg_s,
    ])
    .ok();
    let lines: Vec<Value> = listen
        .stdout_text()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let of_stream = |name: &str| -> Vec<&Value> {
        lines
            .iter()
            .filter(|l| l["message"] == name && l["body"]["stream_id"] == STREAM)
            .collect()
    };
    for name in [
        "ShmPoolAnnounce",
        "FrameDescriptor",
        "QosProducer",
        "QosConsumer",
        "DataSourceAnnounce",
    ] {
        assert!(
            !of_stream(name).is_empty(),
            "no {name} of stream {STREAM} in {} lines",
            lines.len()
        );
    }
    // A subscriber joining an IPC stream may first be handed messages sent before it came
    // (Aeron joins at the slowest subscriber's position): the latest announce is the live
    // epoch.
    let announces = of_stream("ShmPoolAnnounce");
    assert_eq!(
        announces.last().map(|a| &a["body"]["epoch"]),
        Some(&epoch.into())
    );
    assert_eq!(
        announces.last().map(|a| &a["source"]),
        Some(&"control+announce".into())
    );
    assert_eq!(
        of_stream("DataSourceAnnounce")[0]["body"]["name"],
        "front-camera"
    );
    assert!(
        of_stream("FrameDescriptor")
            .iter()
            .all(|d| d["body"]["epoch"] == epoch)
    );

    // tp top: the stream with a non-zero producer rate and its consumer.
    let top = spawn_top(&["--config", cfg_s, "--window-secs", "2"]);
    let id = STREAM.to_string();
    top.wait_for(
        "the live stream with a producer rate and a consumer",
        || {},
        |t| {
            cell(t, "FPS", &id)
                .and_then(|v| v.parse::<f64>().ok())
                .is_some_and(|fps| fps > 0.0)
                && cell(t, "CONS", &id).as_deref() == Some("1")
                && cell(t, "NAME", &id).as_deref() == Some("front-camera")
        },
    );
    top.quit();

    // Clean shutdown, in reverse order; nothing left behind.
    let c = consumer.stop();
    let summary = consumer.expect("the consumer's JSON summary", |l| l.starts_with('{'));
    let summary: Value = serde_json::from_str(&summary).expect("JSON summary");
    assert!(c.success(), "tp consume: {c:?}");
    assert!(summary["accepted"].as_u64() > Some(0), "{summary}");
    assert_eq!(summary["corrupt"], 0, "{summary}");
    assert!(producer.stop().success(), "tp produce");
    assert!(driver.stop().success(), "tp driver");
    assert!(media.stop().success(), "tp media-driver");
    assert!(!aeron.exists(), "Aeron directory left behind");
    drop(shm);
    assert!(started.elapsed() < DEADLINE, "took {:?}", started.elapsed());
}
