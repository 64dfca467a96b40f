//! `tp supervisor status` and producers obeying a supervisor, with real processes on a
//! private media driver: a standalone `tp supervisor`, a `tp produce` and a `tp consume`
//! asking for a per-consumer descriptor stream. The supervisor assigns it, the producer
//! publishes descriptors on it (a `tp listen` on that stream sees them) and stops answering
//! hellos itself (only one session sends `ConsumerConfig`), and `tp supervisor status
//! --json` shows the stream's producer and the consumer with its mode, assignment and QoS.
//! Then the same status against a supervisor embedded in `tp driver`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tensorpool_aeron::{DriverIdleStrategy, EmbeddedMediaDriver, MediaDriverConfig};

const TP: &str = env!("CARGO_BIN_EXE_tp");
const DEADLINE: Duration = Duration::from_secs(30);

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

fn media() -> EmbeddedMediaDriver {
    EmbeddedMediaDriver::start(
        MediaDriverConfig::default()
            .idle_strategy(DriverIdleStrategy::Sleeping(Duration::from_micros(200)))
            .ipc_term_buffer_length(1024 * 1024),
    )
    .expect("media driver")
}

/// Spawns `tp ARGS` with its stdout lines on a channel.
fn spawn(args: &[&str]) -> (Guard, mpsc::Receiver<String>) {
    let mut child = Command::new(TP)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tp");
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

fn expect_line(rx: &mpsc::Receiver<String>, needle: &str) -> String {
    let deadline = Instant::now() + DEADLINE;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(line) => seen.push(line),
            Err(_) => panic!("no line with {needle:?} within {DEADLINE:?}; saw {seen:?}"),
        }
    }
}

/// Consumer 7 asks for a per-consumer descriptor stream (31999, outside the supervisor's
/// range); consumer 8 asks for none (a producer answering hellos itself would answer it at
/// once, with no registration to wait for).
fn consumer_config(tmp: &std::path::Path, id: u32) -> std::path::PathBuf {
    let cfg = tmp.join(format!("consumer{id}.toml"));
    let request = if id == 7 {
        "request_descriptor_channel = \"aeron:ipc\"\nrequest_descriptor_stream_id = 31999\n"
    } else {
        ""
    };
    std::fs::write(
        &cfg,
        format!(
            "[consumer]\nconsumer_id = {id}\nhello_interval_ms = 100\nqos_interval_ms = 100\n{request}"
        ),
    )
    .unwrap();
    cfg
}

/// Runs `tp supervisor status --json` until `ok` holds for its output (or the deadline).
fn status_until(dir: &str, config: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let out = Command::new(TP)
            .args(["supervisor", "status", "--json", "--observe-ms", "700"])
            .args(["--aeron-dir", dir, "--config", config])
            .output()
            .expect("tp supervisor status");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let j: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
        if ok(&j) {
            return j;
        }
        assert!(Instant::now() < deadline, "status never as expected: {j}");
    }
}

fn consumer7(j: &Value) -> Option<&Value> {
    j["streams"]
        .as_array()?
        .iter()
        .find(|s| s["stream_id"] == 10_000)?["consumers"]
        .as_array()?
        .iter()
        .find(|c| c["consumer_id"] == 7)
}

#[test]
fn a_producer_obeys_the_supervisor_and_status_shows_the_view() {
    let media = media();
    let tmp = tempfile::Builder::new()
        .prefix("tp-sup-status-")
        .tempdir_in("/dev/shm")
        .unwrap();
    let dir = media.dir().to_str().unwrap().to_owned();
    let sup_cfg = tmp.path().join("supervisor.toml");
    std::fs::write(
        &sup_cfg,
        "[supervisor]\nper_consumer_enabled = true\nper_consumer_descriptor_channel = \"aeron:ipc\"\n\
         per_consumer_descriptor_base = 31000\nper_consumer_descriptor_range = 10\n",
    )
    .unwrap();
    let sup_cfg = sup_cfg.to_str().unwrap().to_owned();
    let (_sup, sup_lines) = spawn(&[
        "supervisor",
        "--config",
        &sup_cfg,
        "--aeron-dir",
        &dir,
        "--idle",
        "sleep:1ms",
    ]);
    expect_line(&sup_lines, "tp supervisor: ready");
    let base = tmp.path().join("shm");
    std::fs::create_dir_all(&base).unwrap();
    let base = base.to_str().unwrap().to_owned();
    let (_producer, _) = spawn(&[
        "produce",
        "--standalone",
        "--aeron-dir",
        &dir,
        "--shm-base-dir",
        &base,
        "--size",
        "1024",
        "--rate",
        "50",
        "--count",
        "1000000",
    ]);
    let ccfg = consumer_config(tmp.path(), 7);
    let (_consumer, _) = spawn(&[
        "consume",
        "--aeron-dir",
        &dir,
        "--config",
        ccfg.to_str().unwrap(),
        "--allowed-base-dir",
        &base,
    ]);
    let ccfg8 = consumer_config(tmp.path(), 8);
    let (_consumer8, _) = spawn(&[
        "consume",
        "--aeron-dir",
        &dir,
        "--config",
        ccfg8.to_str().unwrap(),
        "--allowed-base-dir",
        &base,
    ]);
    // Frames arrive on the per-consumer stream the supervisor assigned (31007: base +
    // consumer id % range, the requested 31999 being outside the range; the producer on its
    // own would have granted 31999).
    let (_listen, listen_lines) = spawn(&[
        "listen",
        "descriptor",
        "--aeron-dir",
        &dir,
        "--channel",
        "aeron:ipc",
        "--stream-id",
        "31007",
        "--type",
        "FrameDescriptor",
        "--json",
    ]);
    let line = expect_line(&listen_lines, "FrameDescriptor");
    assert!(line.contains("10000"), "{line}");

    let j = status_until(&dir, &sup_cfg, |j| {
        consumer7(j).is_some_and(|c| {
            c["descriptor_stream_id"] == 31_007
                && c["mode"] == "STREAM"
                && c["stale"] == false
                && c["lag"].is_u64()
                && c["qos"].as_u64().is_some_and(|n| n > 0)
        }) && j["streams"][0]["producer"]["epoch"].is_u64()
            // only the supervisor answers hellos (consumer 8's too): the producer is
            // supervised
            && j["streams"][0]["consumers"].as_array().is_some_and(|c| c.len() == 2)
            && j["config_sessions"].as_array().is_some_and(|s| s.len() == 1)
    });
    assert_eq!(j["supervisor_seen"], true, "{j}");
    let c = consumer7(&j).unwrap();
    assert_eq!(c["descriptor_channel"], "aeron:ipc", "{j}");
    assert!(c["drops_gap"].is_u64() && c["drops_late"].is_u64(), "{j}");

    // The text form names the stream and the consumer.
    let out = Command::new(TP)
        .args(["supervisor", "status", "--observe-ms", "500"])
        .args(["--aeron-dir", &dir, "--config", &sup_cfg])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("stream 10000") && text.contains("consumer 7"),
        "{text}"
    );
}

#[test]
fn status_works_against_a_supervisor_embedded_in_tp_driver() {
    let media = media();
    let base = tempfile::Builder::new()
        .prefix("tp-sup-status-embedded-")
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
    let cfg = cfg.to_str().unwrap().to_owned();
    let dir = media.dir().to_str().unwrap().to_owned();
    let (_driver, lines) = spawn(&[
        "driver",
        "--config",
        &cfg,
        "--aeron-dir",
        &dir,
        "--idle",
        "sleep:1ms",
    ]);
    expect_line(&lines, "supervisor embedded");
    let ccfg = consumer_config(base.path(), 7);
    let (_consumer, _) = spawn(&[
        "consume",
        "--aeron-dir",
        &dir,
        "--config",
        ccfg.to_str().unwrap(),
        "--allowed-base-dir",
        base.path().to_str().unwrap(),
    ]);
    let j = status_until(&dir, &cfg, |j| {
        consumer7(j).is_some_and(|c| c["descriptor_stream_id"] == 31_007 && c["use_shm"] == false)
    });
    assert_eq!(j["supervisor_seen"], true, "{j}");
    assert_eq!(
        consumer7(&j).unwrap()["payload_fallback_uri"],
        "bridge://cam1",
        "{j}"
    );
}
