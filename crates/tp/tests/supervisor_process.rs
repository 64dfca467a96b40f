//! `tp supervisor` as a real process on a private media driver: a consumer of ours (in this
//! process) sends its hello and receives the supervisor's `ConsumerConfig`: forced
//! RATE_LIMITED, SHM off with the fallback URI (the consumer reports FALLBACK), and a
//! per-consumer descriptor stream from the configured range (the consumer switches to it).
//! Also: a per-consumer range overlapping the driver's ranges is refused at startup with an
//! error naming both keys; a producer whose superblock activity goes stale is counted dead
//! while its announces continue (W §15.14); a consumer forced to RATE_LIMITED accepts at most
//! its rate.

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

// ---- `tp consume` processes under a standalone `tp supervisor` (issue 15 item 5) ----

/// A `tp consume --json` process with consumer id `id`, hellos and QoS every 100 ms, asking
/// for a per-consumer descriptor stream (an id outside the range: the supervisor picks).
fn spawn_consumer(dir: &str, tmp: &std::path::Path, id: u32) -> Child {
    spawn_consumer_with(dir, tmp, id, "")
}

/// [`spawn_consumer`] with `extra` lines appended to its `[consumer]` table.
fn spawn_consumer_with(dir: &str, tmp: &std::path::Path, id: u32, extra: &str) -> Child {
    let cfg = tmp.join(format!("consumer-{id}-{}.toml", rand_suffix()));
    std::fs::write(
        &cfg,
        format!(
            r#"[consumer]
stream_id = {STREAM}
consumer_id = {id}
hello_interval_ms = 100
qos_interval_ms = 100
request_descriptor_channel = "aeron:ipc"
request_descriptor_stream_id = 31999
{extra}"#
        ),
    )
    .unwrap();
    Command::new(TP)
        .args(["consume", "--json", "--config"])
        .arg(&cfg)
        .args(["--aeron-dir", dir, "--allowed-base-dir"])
        .arg(tmp)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tp consume")
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Stops a `tp consume` with SIGTERM and returns the JSON object of its last line.
fn stop_consumer(child: Child) -> serde_json::Value {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().expect("tp consume output");
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// SIGKILLs every remaining consumer when a test ends (also on failure).
struct Consumers(Vec<Child>);

impl Drop for Consumers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The supervisor counters (`supervisor.<name>`) of process `pid`, read with `tp stat`.
fn supervisor_counters(dir: &str, pid: u32) -> std::collections::BTreeMap<String, i64> {
    let out = Command::new(TP)
        .args([
            "stat",
            "--aeron-dir",
            dir,
            "--count",
            "1",
            "--json",
            "--filter",
            "supervisor",
        ])
        .output()
        .expect("tp stat");
    let mut m = std::collections::BTreeMap::new();
    let Ok(stat) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
        return m;
    };
    for c in stat["counters"].as_array().into_iter().flatten() {
        if c["key"]["pid"].as_u64() == Some(u64::from(pid))
            && let (Some(t), Some(v)) = (c["type"].as_str(), c["value"].as_i64())
        {
            m.insert(t.trim_start_matches("supervisor.").to_owned(), v);
        }
    }
    m
}

/// Polls the supervisor's counters until `done` holds, or panics after [`DEADLINE`].
fn wait_counters(
    dir: &str,
    pid: u32,
    what: &str,
    done: impl Fn(&std::collections::BTreeMap<String, i64>) -> bool,
) -> std::collections::BTreeMap<String, i64> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let m = supervisor_counters(dir, pid);
        if done(&m) {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {DEADLINE:?}: {m:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn get(m: &std::collections::BTreeMap<String, i64>, k: &str) -> i64 {
    m.get(k).copied().unwrap_or(0)
}

fn media() -> EmbeddedMediaDriver {
    EmbeddedMediaDriver::start(
        MediaDriverConfig::default()
            .idle_strategy(DriverIdleStrategy::Sleeping(Duration::from_micros(200)))
            .ipc_term_buffer_length(1024 * 1024),
    )
    .expect("media driver")
}

fn supervisor_config(tmp: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let cfg = tmp.join("supervisor.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[supervisor]
consumer_stale_ms = 600
per_consumer_enabled = true
per_consumer_descriptor_channel = "aeron:ipc"
per_consumer_descriptor_base = 31000
per_consumer_descriptor_range = 10
{extra}"#
        ),
    )
    .unwrap();
    cfg
}

fn start_supervisor(cfg: &std::path::Path, dir: &str) -> (Guard, mpsc::Receiver<String>) {
    let (sup, lines) = spawn_supervisor(&[
        "--config",
        cfg.to_str().unwrap(),
        "--aeron-dir",
        dir,
        "--idle",
        "sleep:1ms",
    ]);
    expect_line(&lines, "tp supervisor: ready");
    (sup, lines)
}

#[test]
fn per_consumer_streams_are_assigned_and_reclaimed_after_a_sigkill() {
    let media = media();
    let dir = media.dir().to_str().unwrap().to_owned();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = supervisor_config(tmp.path(), "");
    let (sup, _lines) = start_supervisor(&cfg, &dir);
    let pid = sup.0.id();
    // consumer id k prefers 31000 + k % 10
    let mut cs = Consumers(
        (1..=3)
            .map(|k| spawn_consumer(&dir, tmp.path(), k))
            .collect(),
    );
    wait_counters(&dir, pid, "three consumers assigned", |m| {
        get(m, "consumers") == 3 && get(m, "assignments") >= 3
    });
    // consumer 2 dies without a word: its id 31002 comes back after consumer_stale_ms
    let mut victim = cs.0.remove(1);
    victim.kill().unwrap();
    victim.wait().unwrap();
    wait_counters(&dir, pid, "the killed consumer reclaimed", |m| {
        get(m, "consumers-stale") >= 1 && get(m, "consumers") == 2
    });
    // consumer 12 prefers slot 2 too: it gets the reclaimed 31002
    cs.0.push(spawn_consumer(&dir, tmp.path(), 12));
    wait_counters(&dir, pid, "the newcomer assigned", |m| {
        get(m, "consumers") == 3 && get(m, "assignments") >= 4
    });
    let newcomer = stop_consumer(cs.0.pop().unwrap());
    assert_eq!(newcomer["descriptor_stream_id"], 31_002, "{newcomer}");
    let first = stop_consumer(cs.0.remove(0));
    assert_eq!(first["descriptor_stream_id"], 31_001, "{first}");
    let m = supervisor_counters(&dir, pid);
    assert_eq!(get(&m, "declines"), 0, "{m:?}");
}

#[test]
fn a_restarted_supervisor_rebuilds_its_view_and_reissues_the_same_assignments() {
    let media = media();
    let dir = media.dir().to_str().unwrap().to_owned();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = supervisor_config(tmp.path(), "");
    let (sup, _lines) = start_supervisor(&cfg, &dir);
    let mut cs = Consumers(vec![
        spawn_consumer(&dir, tmp.path(), 4),
        spawn_consumer(&dir, tmp.path(), 25),
    ]);
    wait_counters(&dir, sup.0.id(), "first supervisor's view", |m| {
        get(m, "consumers") == 2 && get(m, "assignments") >= 2
    });
    let mut sup = sup;
    sup.0.kill().unwrap();
    sup.0.wait().unwrap();
    // a new supervisor knows nothing: the consumers' next hellos (every 100 ms) rebuild it
    let (sup2, lines2) = start_supervisor(&cfg, &dir);
    let ready = Instant::now();
    let m = wait_counters(&dir, sup2.0.id(), "second supervisor's view", |m| {
        get(m, "consumers") == 2 && get(m, "assignments") == 2 && get(m, "configs-sent") >= 2
    });
    println!(
        "view rebuilt {:?} after ready (hello interval 100 ms): {m:?}",
        ready.elapsed()
    );
    let b = stop_consumer(cs.0.pop().unwrap());
    let a = stop_consumer(cs.0.pop().unwrap());
    // 4 % 10 and 25 % 10: the same ids as the first supervisor's (deterministic allocation)
    assert_eq!(a["descriptor_stream_id"], 31_004, "{a}");
    assert_eq!(b["descriptor_stream_id"], 31_005, "{b}");
    let _ = Command::new("kill")
        .args(["-TERM", &sup2.0.id().to_string()])
        .status();
    let fin = final_counters(&lines2);
    // exactly one assignment per consumer: none moved
    assert_eq!(fin.get("assignments"), Some(&2), "{fin:?}");
    assert_eq!(fin.get("declines"), Some(&0), "{fin:?}");
}

#[test]
fn two_consumers_with_one_id_are_a_counted_collision() {
    let media = media();
    let dir = media.dir().to_str().unwrap().to_owned();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = supervisor_config(tmp.path(), "");
    let (sup, _lines) = start_supervisor(&cfg, &dir);
    let _cs = Consumers(vec![
        spawn_consumer(&dir, tmp.path(), 7),
        spawn_consumer(&dir, tmp.path(), 7),
    ]);
    let m = wait_counters(&dir, sup.0.id(), "a collision", |m| {
        get(m, "collisions") >= 1
    });
    // one id, one tracked consumer, one assignment
    assert_eq!(get(&m, "consumers"), 1, "{m:?}");
    assert_eq!(get(&m, "assignments"), 1, "{m:?}");
}

#[test]
fn a_rule_forces_one_consumer_to_rate_limited() {
    let media = media();
    let dir = media.dir().to_str().unwrap().to_owned();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = supervisor_config(
        tmp.path(),
        "[[supervisor.rules]]\nconsumer_id = 5\nforce_mode = \"RATE_LIMITED\"\nmax_rate_hz = 10\n",
    );
    let (sup, _lines) = start_supervisor(&cfg, &dir);
    let mut cs = Consumers(vec![
        spawn_consumer(&dir, tmp.path(), 5),
        spawn_consumer(&dir, tmp.path(), 6),
    ]);
    // two forced configs for 5 and at least four configs in all: each got one before
    wait_counters(&dir, sup.0.id(), "configs sent", |m| {
        get(m, "forced-mode") >= 2 && get(m, "configs-sent") >= 6
    });
    let six = stop_consumer(cs.0.pop().unwrap());
    let five = stop_consumer(cs.0.pop().unwrap());
    assert_eq!(five["mode"], "rate_limited", "{five}");
    assert_eq!(six["mode"], "stream", "{six}");
    assert!(six["configs"].as_u64().is_some_and(|n| n >= 1), "{six}");
}

/// Frames counted by `role` process `pid` (`<role>.frames`, read with `tp stat`).
fn frames_of(dir: &str, role: &str, pid: u32) -> i64 {
    let out = Command::new(TP)
        .args(["stat", "--aeron-dir", dir, "--count", "1", "--json"])
        .args(["--filter", role])
        .output()
        .expect("tp stat");
    let Ok(stat) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
        return 0;
    };
    stat["counters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["key"]["pid"].as_u64() == Some(u64::from(pid)))
        .filter(|c| c["type"] == format!("{role}.frames").as_str())
        .filter_map(|c| c["value"].as_i64())
        .sum()
}

/// A consumer asking for STREAM with `max_rate_hz = 5`, forced to RATE_LIMITED by a rule,
/// accepts at most 5 frames per second from a `tp produce --rate 200`: the frames it accepted
/// are bounded above by 5 x the whole time it could have received any (from the producer's
/// start to the consumer's stop, measured by this test, so longer than the real window) plus
/// slack: one frame at the window's start and the frames of two hello intervals at 200/s
/// (40), during which the producer, not yet aware of the supervisor, may answer a hello with
/// STREAM. The test runs until the producer committed 600 frames (3 s at 200/s) and the
/// consumer accepted 8 (both bounded waits on counters): unthrottled, the consumer would
/// have accepted about as many as the producer committed, far above the bound (~56). No
/// lower bound on the rate is asserted.
#[test]
fn a_consumer_forced_to_rate_limited_accepts_at_most_its_rate() {
    let media = media();
    let dir = media.dir().to_str().unwrap().to_owned();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = supervisor_config(
        tmp.path(),
        "[[supervisor.rules]]\nconsumer_id = 5\nforce_mode = \"RATE_LIMITED\"\nmax_rate_hz = 5\n",
    );
    let (sup, _lines) = start_supervisor(&cfg, &dir);
    let mut cs = Consumers(vec![spawn_consumer_with(
        &dir,
        tmp.path(),
        5,
        "mode = \"stream\"\nmax_rate_hz = 5\n",
    )]);
    let consumer_pid = cs.0[0].id();
    wait_counters(&dir, sup.0.id(), "consumer 5 forced", |m| {
        get(m, "forced-mode") >= 1
    });
    let base = tmp.path().join("shm");
    std::fs::create_dir_all(&base).unwrap();
    let start = Instant::now();
    let producer = Command::new(TP)
        .args([
            "produce",
            "--standalone",
            "--aeron-dir",
            &dir,
            "--shm-base-dir",
        ])
        .arg(&base)
        .args(["--stream-id", &STREAM.to_string()])
        .args(["--size", "256", "--rate", "200", "--count", "100000000"])
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tp produce");
    let producer = Guard(producer);
    let producer_pid = producer.0.id();
    let deadline = Instant::now() + DEADLINE;
    while frames_of(&dir, "producer", producer_pid) < 600
        || frames_of(&dir, "consumer", consumer_pid) < 8
    {
        assert!(
            Instant::now() < deadline,
            "the producer did not commit 600 frames or the consumer accept 8"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let report = stop_consumer(cs.0.pop().unwrap());
    let elapsed = start.elapsed().as_secs_f64();
    assert_eq!(report["mode"], "rate_limited", "{report}");
    let accepted = report["accepted"].as_u64().expect("accepted") as f64;
    let bound = 5.0 * elapsed + 1.0 + 40.0;
    println!("accepted {accepted} in {elapsed:.2} s (bound {bound:.1})");
    assert!(
        accepted <= bound,
        "accepted {accepted} frames in {elapsed:.2} s: more than 5/s (bound {bound:.1}); {report}"
    );
}

/// W §15.14 with a real `tp supervisor` (`allowed_base_dirs` set, `producer_stale_ms =
/// 300`): this test announces, every 50 ms, a header region it created and never refreshes.
/// The announces alone would keep the producer alive; the supervisor reads the superblock's
/// activity timestamp, finds it stale, and counts the producer dead (`producers-stale`)
/// while the announces go on. Waits on the counters with a deadline.
#[test]
fn a_stale_superblock_activity_kills_a_producer_whose_announces_continue() {
    use tensorpool_codec::wire::{ClockDomain, ShmPoolAnnounce};
    use tensorpool_codec::{Bytes, Group, Message};
    use tensorpool_shm::{
        CreateOptions, EpochSpec, FileModes, LAYOUT_VERSION, PoolGeometry, ShmLayout,
    };
    let media = media();
    let dir = media.dir().to_str().unwrap().to_owned();
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap().join("shm");
    std::fs::create_dir_all(&base).unwrap();
    let cfg = supervisor_config(
        tmp.path(),
        &format!(
            "producer_stale_ms = 300\nallowed_base_dirs = [\"{}\"]\n",
            base.display()
        ),
    );
    let (sup, _lines) = start_supervisor(&cfg, &dir);
    let epoch = 77;
    let layout = ShmLayout::for_user(&base, "t", "default", FileModes::default()).unwrap();
    let created = layout
        .create_epoch(
            &EpochSpec {
                layout_version: LAYOUT_VERSION,
                stream_id: STREAM,
                epoch,
                header_nslots: 64,
                pools: vec![PoolGeometry {
                    pool_id: 1,
                    stride_bytes: 64,
                    nslots: 64,
                }],
            },
            CreateOptions {
                prefault: false,
                pid: u64::from(std::process::id()),
                now_ns: tensorpool_agent::monotonic_ns(),
            },
        )
        .unwrap();
    let uri = created.header_uri.to_string();
    let announce = ShmPoolAnnounce {
        stream_id: STREAM,
        producer_id: 9,
        epoch,
        announce_timestamp_ns: 1,
        announce_clock_domain: ClockDomain::Monotonic,
        layout_version: LAYOUT_VERSION,
        header_nslots: 64,
        header_slot_bytes: 256,
        payload_pools: Group::default(),
        header_region_uri: Bytes::new(uri.as_bytes()),
    }
    .encode_to_vec()
    .unwrap();
    let client =
        tensorpool_aeron::AeronClient::connect(media.dir(), Duration::from_secs(10)).unwrap();
    let mut publication = client
        .add_publication("aeron:ipc", 1001, Duration::from_secs(10))
        .unwrap();
    let pid = sup.0.id();
    let deadline = Instant::now() + DEADLINE;
    let mut alive_seen = false;
    loop {
        let _ = publication.offer(&announce);
        let m = supervisor_counters(&dir, pid);
        alive_seen |= get(&m, "producers") == 1;
        if alive_seen && get(&m, "producers-stale") >= 1 && get(&m, "producers") == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the producer was never counted dead while announced (alive seen: {alive_seen}): {m:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    layout.remove_epoch(STREAM, epoch).unwrap();
}
