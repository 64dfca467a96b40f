//! `tp send` as a real process on a private media driver, against a running `tp consume`:
//! `tp send consumer-config --no-shm --fallback URI` turns the consumer to FALLBACK (its
//! `--json` summary says so), and the generic `tp send FILE` publishes a `ConsumerConfig`
//! that `tp encode` wrote, with the same effect. Bad flags are clear errors.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tensorpool_aeron::{DriverIdleStrategy, EmbeddedMediaDriver, MediaDriverConfig};

const TP: &str = env!("CARGO_BIN_EXE_tp");
const DEADLINE: Duration = Duration::from_secs(20);

struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
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

/// A `tp consume --json` of consumer 7 on stream 10000; its stderr lines (a state line a
/// second) go to the receiver.
fn spawn_consume(dir: &str, tmp: &std::path::Path) -> (Guard, mpsc::Receiver<String>) {
    let cfg = tmp.join("consumer.toml");
    std::fs::write(
        &cfg,
        "[consumer]\nconsumer_id = 7\nhello_interval_ms = 100\nqos_interval_ms = 100\n",
    )
    .unwrap();
    let mut child = Command::new(TP)
        .args([
            "consume",
            "--json",
            "--stream-id",
            "10000",
            "--aeron-dir",
            dir,
        ])
        .arg("--config")
        .arg(&cfg)
        .arg("--allowed-base-dir")
        .arg(tmp)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tp consume");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
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

/// SIGINT, then the `--json` object on the last stdout line.
fn stop_and_summary(mut consume: Guard) -> serde_json::Value {
    let _ = Command::new("kill")
        .args(["-INT", &consume.0.id().to_string()])
        .status();
    let mut out = String::new();
    use std::io::Read;
    consume
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let last = out.lines().last().expect("a summary line");
    serde_json::from_str(last).expect("JSON summary")
}

fn tp(args: &[&str]) -> std::process::Output {
    Command::new(TP).args(args).output().expect("run tp")
}

#[test]
fn send_consumer_config_turns_a_running_consumer_to_fallback() {
    let media = media();
    let tmp = tempfile::tempdir().unwrap();
    let dir = media.dir().to_str().unwrap().to_owned();
    let (consume, lines) = spawn_consume(&dir, tmp.path());
    let out = tp(&[
        "send",
        "consumer-config",
        "--aeron-dir",
        &dir,
        "--stream",
        "10000",
        "--consumer-id",
        "7",
        "--no-shm",
        "--fallback",
        "aeron:udp?endpoint=127.0.0.1:40998",
        "--timeout-ms",
        "20000",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("sent"));
    expect_line(&lines, "Fallback");
    let summary = stop_and_summary(consume);
    assert_eq!(summary["state"], "fallback", "{summary}");
}

#[test]
fn send_publishes_what_tp_encode_wrote() {
    let media = media();
    let tmp = tempfile::tempdir().unwrap();
    let dir = media.dir().to_str().unwrap().to_owned();
    let json = tmp.path().join("config.json");
    std::fs::write(
        &json,
        r#"{"message":"ConsumerConfig","stream_id":10000,"consumer_id":7,"use_shm":false,"mode":"STREAM","descriptor_stream_id":0,"control_stream_id":0,"payload_fallback_uri":"aeron:udp?endpoint=127.0.0.1:40997","descriptor_channel":"","control_channel":""}"#,
    )
    .unwrap();
    let bin = tmp.path().join("config.bin");
    let out = tp(&[
        "encode",
        json.to_str().unwrap(),
        "-o",
        bin.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (consume, lines) = spawn_consume(&dir, tmp.path());
    let out = tp(&[
        "send",
        bin.to_str().unwrap(),
        "--aeron-dir",
        &dir,
        "--channel",
        tensorpool::streams::DEFAULT_CHANNEL,
        "--stream",
        "1000",
        "--timeout-ms",
        "20000",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    expect_line(&lines, "Fallback");
    let summary = stop_and_summary(consume);
    assert_eq!(summary["state"], "fallback", "{summary}");
}

#[test]
fn send_refuses_bad_flags_clearly() {
    for (args, needle) in [
        (
            &[
                "send",
                "consumer-config",
                "--stream",
                "1",
                "--consumer-id",
                "2",
                "--descriptor",
                "aeron:ipc",
            ][..],
            "is not a stream id",
        ),
        (
            &[
                "send",
                "consumer-config",
                "--stream",
                "1",
                "--consumer-id",
                "2",
                "--control",
                "aeron:ipc:0",
            ][..],
            "non-zero",
        ),
        (
            &[
                "send",
                "/nonexistent/x.bin",
                "--channel",
                "aeron:ipc",
                "--stream",
                "5",
            ][..],
            "x.bin",
        ),
    ] {
        let out = tp(args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}
