//! `tp supervisor` as a real process on a private media driver: a consumer of ours (in this
//! process) sends its hello and receives the supervisor's `ConsumerConfig`: forced
//! RATE_LIMITED, SHM off with the fallback URI (the consumer reports FALLBACK), and a
//! per-consumer descriptor stream from the configured range (the consumer switches to it).
//! Also: a per-consumer range overlapping the driver's ranges is refused at startup with an
//! error naming both keys.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tensorpool::prelude::*;
use tensorpool::streams::Endpoint;
use tensorpool_aeron::{DriverIdleStrategy, EmbeddedMediaDriver, MediaDriverConfig};

const TP: &str = env!("CARGO_BIN_EXE_tp");
const DEADLINE: Duration = Duration::from_secs(20);
const STREAM: u32 = 10_000;

struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_supervisor(args: &[&str]) -> (Guard, mpsc::Receiver<String>) {
    let mut child = Command::new(TP)
        .arg("supervisor")
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn tp supervisor");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (Guard(child), rx)
}

fn expect_line(rx: &mpsc::Receiver<String>, needle: &str) {
    let deadline = Instant::now() + DEADLINE;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return,
            Ok(line) => seen.push(line),
            Err(_) => panic!("no line with {needle:?} within {DEADLINE:?}; saw {seen:?}"),
        }
    }
}

#[test]
fn a_consumer_of_ours_obeys_the_supervisors_consumer_config() {
    let media = EmbeddedMediaDriver::start(
        MediaDriverConfig::default()
            .idle_strategy(DriverIdleStrategy::Sleeping(Duration::from_micros(200)))
            .ipc_term_buffer_length(1024 * 1024),
    )
    .expect("media driver");
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("supervisor.toml");
    std::fs::write(
        &cfg,
        r#"[supervisor]
per_consumer_enabled = true
per_consumer_descriptor_channel = "aeron:ipc"
per_consumer_descriptor_base = 31000
per_consumer_descriptor_range = 10
force_mode = 2
force_no_shm = true
payload_fallback_uri = "aeron:udp?endpoint=127.0.0.1:40999"
"#,
    )
    .unwrap();
    let dir = media.dir().to_str().unwrap().to_owned();
    let (sup, lines) = spawn_supervisor(&[
        "--config",
        cfg.to_str().unwrap(),
        "--aeron-dir",
        &dir,
        "--idle",
        "sleep:1ms",
    ]);
    expect_line(&lines, "tp supervisor: ready");

    let ctx = Context::connect(media.dir()).expect("context");
    let mut consumer = ctx
        .consumer(STREAM)
        .configure(|c| {
            c.consumer_id = 4_242;
            c.hello_interval = Duration::from_millis(100);
            c.descriptor_request = Some(Endpoint::new("aeron:ipc", 31_999));
        })
        .build()
        .expect("consumer");
    let deadline = Instant::now() + DEADLINE;
    let mut sleep = Duration::from_micros(200);
    while !(consumer.counters().configs > 0
        && consumer.state() == ConsumerState::Fallback
        && consumer.on_per_consumer_stream())
    {
        assert!(
            Instant::now() < deadline,
            "no ConsumerConfig obeyed within {DEADLINE:?}: configs {}, state {:?}, per-consumer {}",
            consumer.counters().configs,
            consumer.state(),
            consumer.on_per_consumer_stream()
        );
        consumer.poll(&mut |_: &Frame<'_>| {}, 16).expect("poll");
        std::thread::sleep(sleep);
        sleep = (sleep * 2).min(Duration::from_millis(5));
    }
    let fallback = consumer.fallback().expect("a fallback");
    assert_eq!(fallback.uri, "aeron:udp?endpoint=127.0.0.1:40999");
    // its counters are Aeron counters: `tp stat` reads them from the media driver
    let out = Command::new(TP)
        .args([
            "stat",
            "--aeron-dir",
            &dir,
            "--count",
            "1",
            "--json",
            "--filter",
            "supervisor",
        ])
        .output()
        .expect("tp stat");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stat: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let value = |t: &str| {
        stat["counters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == t)
            .and_then(|c| c["value"].as_i64())
    };
    assert!(
        value("supervisor.configs-sent").is_some_and(|v| v >= 1),
        "{stat}"
    );
    assert!(
        value("supervisor.forced-no-shm").is_some_and(|v| v >= 1),
        "{stat}"
    );
    assert_eq!(value("supervisor.consumers"), Some(1), "{stat}");
    // the supervisor's own account, printed when it stops: the mode was forced, SHM turned
    // off, one id assigned
    let _ = Command::new("kill")
        .args(["-TERM", &sup.0.id().to_string()])
        .status();
    let counters = final_counters(&lines);
    for key in [
        "forced_mode",
        "forced_no_shm",
        "assignments",
        "configs_sent",
    ] {
        let v = counters.get(key).copied();
        assert!(v.is_some_and(|v| v >= 1), "{key} = {v:?} in {counters:?}");
    }
    drop(consumer);
}

/// The `name = value` lines `tp supervisor` prints when it stops.
fn final_counters(rx: &mpsc::Receiver<String>) -> std::collections::BTreeMap<String, u64> {
    let deadline = Instant::now() + DEADLINE;
    let mut out = std::collections::BTreeMap::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("tp supervisor did not stop within {DEADLINE:?}"));
        if line.contains("tp supervisor: stopped") {
            return out;
        }
        if let Some((k, v)) = line.split_once(" = ")
            && let Ok(v) = v.trim().parse()
        {
            out.insert(k.to_owned(), v);
        }
    }
}

#[test]
fn a_range_overlapping_the_drivers_is_refused_at_startup() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("driver.toml");
    std::fs::write(
        &cfg,
        r#"[driver]
descriptor_stream_id_range = "31500-31599"
[shm]
base_dir = "/dev/shm/tp-supervisor-never-created"
[profiles.p]
header_nslots = 64
payload_pools = [{ pool_id = 1, stride_bytes = 1024 }]
[supervisor]
per_consumer_enabled = true
"#,
    )
    .unwrap();
    let out = Command::new(TP)
        .args(["supervisor", "--config", cfg.to_str().unwrap()])
        .output()
        .expect("run tp supervisor");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("supervisor.per_consumer_descriptor_base")
            && err.contains("driver.descriptor_stream_id_range"),
        "{err}"
    );
}

#[test]
fn config_validate_accepts_the_c_layout_and_prints_sources() {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/configs/tensor_pool_c/driver_integration_example.toml");
    if !path.is_file() {
        println!("skipped: {} not found", path.display());
        return;
    }
    // [driver] reserves the per-consumer ids that [supervisor] allocates: one authority
    let out = Command::new(TP)
        .args(["config", "validate", "--role", "supervisor"])
        .arg(&path)
        .output()
        .expect("tp config validate");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("supervisor.consumer_capacity = 256"),
        "{text}"
    );
    assert!(text.contains("# supervisor, 0 rule(s): valid"), "{text}");
}

#[test]
fn a_supervisor_table_in_the_driver_file_runs_it_embedded_in_tp_driver() {
    let media = EmbeddedMediaDriver::start(
        MediaDriverConfig::default()
            .idle_strategy(DriverIdleStrategy::Sleeping(Duration::from_micros(200)))
            .ipc_term_buffer_length(1024 * 1024),
    )
    .expect("media driver");
    let base = tempfile::Builder::new()
        .prefix("tp-sup-embedded-")
        .tempdir_in("/dev/shm")
        .unwrap();
    let cfg = base.path().join("driver.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[driver]
descriptor_stream_id_range = "31000-31009"
[shm]
base_dir = "{}"
[policies]
prefault_shm = false
[profiles.p]
header_nslots = 64
payload_pools = [{{ pool_id = 1, stride_bytes = 1024 }}]
[supervisor]
per_consumer_enabled = true
per_consumer_descriptor_channel = "aeron:ipc"
per_consumer_descriptor_base = 31000
per_consumer_descriptor_range = 10
force_no_shm = true
payload_fallback_uri = "bridge://cam1"
"#,
            base.path().join("shm").display()
        ),
    )
    .unwrap();
    let dir = media.dir().to_str().unwrap().to_owned();
    let mut child = Command::new(TP)
        .args([
            "driver",
            "--config",
            cfg.to_str().unwrap(),
            "--aeron-dir",
            &dir,
        ])
        .args(["--idle", "sleep:1ms"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn tp driver");
    let stdout = child.stdout.take().unwrap();
    let guard = Guard(child);
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    expect_line(&lines, "supervisor embedded");

    let ctx = Context::connect(media.dir()).expect("context");
    let mut consumer = ctx
        .consumer(STREAM)
        .configure(|c| {
            c.hello_interval = Duration::from_millis(100);
            c.descriptor_request = Some(Endpoint::new("aeron:ipc", 31_005));
        })
        .build()
        .expect("consumer");
    let deadline = Instant::now() + DEADLINE;
    while !(consumer.state() == ConsumerState::Fallback && consumer.on_per_consumer_stream()) {
        assert!(
            Instant::now() < deadline,
            "no ConsumerConfig obeyed: configs {}, state {:?}",
            consumer.counters().configs,
            consumer.state()
        );
        consumer.poll(&mut |_: &Frame<'_>| {}, 16).expect("poll");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(consumer.fallback().unwrap().uri, "bridge://cam1");
    drop(consumer);
    drop(guard);
}
