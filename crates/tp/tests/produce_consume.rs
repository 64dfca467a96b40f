//! Frames flow between processes: `tp produce --standalone` and `tp consume --verify` through
//! a media driver embedded in the test, every payload checksum verified; and `tp demo --json`
//! runs to its summary leaving nothing behind.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tensorpool_aeron::{DriverIdleStrategy, EmbeddedMediaDriver, MediaDriverConfig};

const TP: &str = env!("CARGO_BIN_EXE_tp");
const DEADLINE: Duration = Duration::from_secs(60);

/// Kills the child if the test fails before it ends.
struct Guard(Option<Child>);

impl Guard {
    fn spawn(cmd: &mut Command) -> Self {
        Self(Some(
            cmd.stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn tp"),
        ))
    }

    fn wait(mut self) -> Output {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let child = self.0.as_mut().expect("running");
            if child.try_wait().expect("try_wait").is_some() {
                return self
                    .0
                    .take()
                    .expect("child")
                    .wait_with_output()
                    .expect("output");
            }
            assert!(Instant::now() < deadline, "tp did not finish in time");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p))
        } else {
            out.push(p)
        }
    }
    out
}

fn last_json(out: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| {
        panic!(
            "last line is not JSON ({e}): {text}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn w_10_2_1_frames_flow_between_processes_with_verified_checksums() {
    let driver = EmbeddedMediaDriver::start(
        MediaDriverConfig::default()
            .idle_strategy(DriverIdleStrategy::Sleeping(Duration::from_micros(200))),
    )
    .expect("media driver");
    let aeron = driver.dir().to_path_buf();
    let shm = tempfile::Builder::new()
        .prefix("tp-proc-")
        .tempdir_in("/dev/shm")
        .unwrap();
    let stream = "10001";
    let consumer = Guard::spawn(
        Command::new(TP)
            .args([
                "consume",
                "--verify",
                "--json",
                "--count",
                "300",
                "--stream-id",
                stream,
            ])
            .arg("--aeron-dir")
            .arg(&aeron)
            .arg("--allowed-base-dir")
            .arg(shm.path()),
    );
    let producer = Guard::spawn(
        Command::new(TP)
            .args([
                "produce",
                "--standalone",
                "--count",
                "3000",
                "--rate",
                "1000",
                "--shape",
                "64x96",
                "--dtype",
                "u16",
                "--stream-id",
                stream,
            ])
            .arg("--aeron-dir")
            .arg(&aeron)
            .arg("--shm-base-dir")
            .arg(shm.path()),
    );
    let c = consumer.wait();
    let p = producer.wait();
    assert!(
        c.status.success(),
        "consume failed: {}",
        String::from_utf8_lossy(&c.stderr)
    );
    assert!(
        p.status.success(),
        "produce failed: {}",
        String::from_utf8_lossy(&p.stderr)
    );
    let j = last_json(&c);
    assert!(j["accepted"].as_u64().unwrap() >= 300, "{j}");
    assert_eq!(j["corrupt"], 0, "{j}");
    // structured state, not a Debug string: "mapped" with its epoch
    assert_eq!(j["state"], "mapped", "{j}");
    assert!(j["epoch"].as_u64().is_some_and(|e| e > 0), "{j}");
    assert!(
        files_under(shm.path()).is_empty(),
        "SHM files left: {:?}",
        files_under(shm.path())
    );
    drop(driver);
    assert!(!aeron.exists());
}

/// A standalone producer SIGKILLed leaves its epoch files (nothing can remove them at the
/// kill); the next producer of that stream reclaims them at start (the writer pid in the
/// superblock is gone), goes above their epoch, and leaves nothing when it ends.
#[test]
fn a_killed_standalone_producers_files_are_reclaimed_by_the_next_one() {
    let driver = EmbeddedMediaDriver::start(
        MediaDriverConfig::default()
            .idle_strategy(DriverIdleStrategy::Sleeping(Duration::from_micros(200))),
    )
    .expect("media driver");
    let aeron = driver.dir().to_path_buf();
    let shm = tempfile::Builder::new()
        .prefix("tp-proc-")
        .tempdir_in("/dev/shm")
        .unwrap();
    let produce = |count: &str| {
        let mut c = Command::new(TP);
        c.args([
            "produce",
            "--standalone",
            "--count",
            count,
            "--rate",
            "1000",
        ])
        .args(["--size", "4096", "--stream-id", "10002", "--linger", "0"])
        .arg("--aeron-dir")
        .arg(&aeron)
        .arg("--shm-base-dir")
        .arg(shm.path());
        c
    };
    let mut killed = Guard::spawn(&mut produce("1000000"));
    let deadline = Instant::now() + DEADLINE;
    while files_under(shm.path()).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the first producer made no files"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let child = killed.0.as_mut().unwrap();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let left = files_under(shm.path());
    assert!(!left.is_empty(), "the kill leaves the files");
    // once the dead producer's activity timestamp is stale (3 announce periods), the next
    // producer's start removes its epoch
    let deadline = Instant::now() + DEADLINE;
    loop {
        let next = Guard::spawn(&mut produce("5")).wait();
        assert!(
            next.status.success(),
            "{}",
            String::from_utf8_lossy(&next.stderr)
        );
        if files_under(shm.path()).is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dead producer's files were never reclaimed: {:?} (were {left:?})",
            files_under(shm.path())
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(driver);
}

/// A process that dies with an embedded media driver cannot remove its Aeron directory; the
/// next embedded media driver started on the host removes it (its pid is gone), and leaves
/// the directories of living processes alone.
#[test]
fn the_aeron_directory_of_a_killed_embedded_driver_is_reclaimed_by_the_next_one() {
    // `tp driver` without an Aeron directory embeds its media driver; its SHM files go to
    // this test's own base dir
    let shm = tempfile::Builder::new()
        .prefix("tp-proc-")
        .tempdir_in("/dev/shm")
        .unwrap();
    let cfg = shm.path().join("driver.toml");
    std::fs::write(
        &cfg,
        format!(
            "[shm]\nbase_dir = \"{}\"\n[policies]\nprefault_shm = false\n\
             [profiles.p]\nheader_nslots = 8\npayload_pools = [{{ pool_id = 1, stride_bytes = 4096 }}]\n",
            shm.path().join("base").display()
        ),
    )
    .unwrap();
    let mut demo = Guard::spawn(Command::new(TP).arg("driver").arg("--config").arg(&cfg));
    let pid = demo.0.as_ref().unwrap().id();
    let prefix = format!("tensorpool-aeron-{pid}-");
    let find = || {
        std::fs::read_dir("/dev/shm")
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix))
            })
    };
    let deadline = Instant::now() + DEADLINE;
    let dir = loop {
        if let Some(d) = find() {
            break d;
        }
        assert!(
            Instant::now() < deadline,
            "tp driver made no Aeron directory"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let child = demo.0.as_mut().unwrap();
    child.kill().unwrap(); // SIGKILL: nothing runs at exit
    child.wait().unwrap();
    assert!(dir.exists(), "the kill leaves the directory");
    let driver = EmbeddedMediaDriver::start(MediaDriverConfig::default()).expect("media driver");
    assert!(!dir.exists(), "reclaimed: {}", dir.display());
    assert!(driver.dir().exists(), "a living process's directory stays");
}

#[test]
fn demo_runs_to_its_json_summary_and_cleans_up() {
    let out = Guard::spawn(Command::new(TP).args([
        "demo", "--frames", "300", "--rate", "300", "--shape", "64x64", "--json",
    ]))
    .wait();
    assert!(
        out.status.success(),
        "demo failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j = last_json(&out);
    assert_eq!(j["frames_produced"], 300, "{j}");
    let consumers = j["consumers"].as_array().unwrap();
    assert_eq!(consumers.len(), 2);
    for c in consumers {
        assert_eq!(c["corrupt"], 0, "{c}");
        assert!(c["latency_us"]["p99"].as_u64().is_some());
    }
    assert_eq!(consumers[0]["mode"], "STREAM");
    assert!(consumers[0]["accepted"].as_u64().unwrap() >= 290, "{j}");
    assert_eq!(consumers[1]["mode"], "RATE_LIMITED");
    assert!(consumers[1]["accepted"].as_u64().unwrap() < 100, "{j}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Aeron directory removed: true"), "{text}");
}

#[test]
fn dm_2_2_2_3_frames_flow_between_processes_through_the_shm_driver() {
    use tensorpool_agent::{AgentError, AgentRunner, MonotonicClock, SleepingIdleStrategy};
    let media = EmbeddedMediaDriver::start(
        MediaDriverConfig::default()
            .idle_strategy(DriverIdleStrategy::Sleeping(Duration::from_micros(200))),
    )
    .expect("media driver");
    let aeron = media.dir().to_path_buf();
    let shm = tempfile::Builder::new()
        .prefix("tp-proc-drv-")
        .tempdir_in("/dev/shm")
        .unwrap();
    let text = format!(
        "[shm]\nbase_dir = \"{}\"\n[policies]\nprefault_shm = false\n[profiles.p]\nheader_nslots = 64\n\
         payload_pools = [{{ pool_id = 1, stride_bytes = 65536 }}]\n[streams.s]\nstream_id = 10002\nprofile = \"p\"\n",
        shm.path().display()
    );
    let cfg =
        tensorpool::driver::DriverConfig::from_toml(&text, &tensorpool::config::NoEnv).unwrap();
    let dir = aeron.clone();
    let driver = AgentRunner::spawn(
        "shm-driver",
        move || {
            let a = tensorpool_aeron::AeronClient::connect(&dir, Duration::from_secs(10))
                .map_err(AgentError::failed)?;
            tensorpool::driver::ShmDriver::new(cfg, a, tensorpool_agent::monotonic_ns())
                .map_err(AgentError::failed)
        },
        SleepingIdleStrategy::new(Duration::from_micros(200)),
        MonotonicClock,
        None,
    )
    .unwrap();
    let stream = "10002";
    let consumer = Guard::spawn(
        Command::new(TP)
            .args([
                "consume",
                "--driver",
                "--verify",
                "--json",
                "--count",
                "300",
                "--stream-id",
                stream,
            ])
            .arg("--aeron-dir")
            .arg(&aeron)
            .arg("--allowed-base-dir")
            .arg(shm.path()),
    );
    let producer = Guard::spawn(
        Command::new(TP)
            .args([
                "produce",
                "--driver",
                "--count",
                "3000",
                "--rate",
                "1000",
                "--shape",
                "64x96",
                "--dtype",
                "u16",
                "--stream-id",
                stream,
            ])
            .arg("--aeron-dir")
            .arg(&aeron)
            .arg("--shm-base-dir")
            .arg(shm.path()),
    );
    let c = consumer.wait();
    let p = producer.wait();
    assert!(
        c.status.success(),
        "consume failed: {}",
        String::from_utf8_lossy(&c.stderr)
    );
    assert!(
        p.status.success(),
        "produce failed: {}",
        String::from_utf8_lossy(&p.stderr)
    );
    let j = last_json(&c);
    assert!(j["accepted"].as_u64().unwrap() >= 300, "{j}");
    assert_eq!(j["corrupt"], 0, "{j}");
    driver.close().unwrap();
    drop(media);
    assert!(!aeron.exists());
}

/// `tp produce --driver-config F` / `tp consume --driver-config F` take the base dir and the
/// allowed base dirs from the driver file's `[shm]` table (here a copy of the C project's
/// integration example with a temporary base dir), no base-dir flag given; `tp config
/// validate --driver-config F` names that file as the source of both values.
#[test]
fn driver_config_supplies_the_base_dirs_of_produce_and_consume() {
    use tensorpool_agent::{AgentError, AgentRunner, MonotonicClock, SleepingIdleStrategy};
    let media = EmbeddedMediaDriver::start(
        MediaDriverConfig::default()
            .idle_strategy(DriverIdleStrategy::Sleeping(Duration::from_micros(200))),
    )
    .expect("media driver");
    let aeron = media.dir().to_path_buf();
    let tmp = tempfile::Builder::new()
        .prefix("tp-drvcfg-")
        .tempdir_in("/dev/shm")
        .unwrap();
    let base = tmp.path().join("shm");
    std::fs::create_dir(&base).unwrap();
    let b = base.display();
    // driver_integration_example.toml of tensor_pool_c, with our base dir, small pools and
    // fast timers
    let text = format!(
        r#"[driver]
instance_id = "driver-example"
aeron_dir = ""
control_channel = "aeron:ipc?term-length=4m"
control_stream_id = 1000
announce_channel = "aeron:ipc?term-length=4m"
announce_stream_id = 1001
qos_channel = "aeron:ipc?term-length=4m"
qos_stream_id = 1200
stream_id_range = "20000-29999"
descriptor_stream_id_range = "31000-31999"
control_stream_id_range = "32000-32999"

[shm]
base_dir = "{b}"
namespace = "default"
require_hugepages = false
page_size_bytes = 4096
permissions_mode = "660"
allowed_base_dirs = ["{b}"]

[policies]
allow_dynamic_streams = false
default_profile = "camera"
announce_period_ms = 100
lease_keepalive_interval_ms = 100
lease_expiry_grace_intervals = 3
node_id_reuse_cooldown_ms = 1000
prefault_shm = false

[profiles.camera]
header_nslots = 64
payload_pools = [
  {{ pool_id = 1, stride_bytes = 65536 }}
]

[streams.cam1]
stream_id = 10000
profile = "camera"

[supervisor]
control_channel = "aeron:ipc?term-length=4m"
consumer_capacity = 256
"#
    );
    let driver_file = tmp.path().join("driver.toml");
    std::fs::write(&driver_file, &text).unwrap();

    // provenance first: no process needed
    let role_file = tmp.path().join("roles.toml");
    std::fs::write(
        &role_file,
        "[producer]\nstream_id = 10000\n[consumer]\nstream_id = 10000\n",
    )
    .unwrap();
    for (role, key) in [
        ("producer", "producer.shm_base_dir"),
        ("consumer", "consumer.allowed_base_dirs"),
    ] {
        let out = Command::new(TP)
            .args(["config", "validate", "--role", role])
            .arg(&role_file)
            .arg("--driver-config")
            .arg(&driver_file)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no {key}: {stdout}"));
        assert!(line.contains(&b.to_string()), "{line}");
        assert!(
            line.contains(&format!("driver file {}", driver_file.display())),
            "the source is the driver file: {line}"
        );
    }

    let cfg =
        tensorpool::driver::DriverConfig::from_toml(&text, &tensorpool::config::NoEnv).unwrap();
    let dir = aeron.clone();
    let driver = AgentRunner::spawn(
        "shm-driver",
        move || {
            let a = tensorpool_aeron::AeronClient::connect(&dir, Duration::from_secs(10))
                .map_err(AgentError::failed)?;
            tensorpool::driver::ShmDriver::new(cfg, a, tensorpool_agent::monotonic_ns())
                .map_err(AgentError::failed)
        },
        SleepingIdleStrategy::new(Duration::from_micros(200)),
        MonotonicClock,
        None,
    )
    .unwrap();
    let consumer = Guard::spawn(
        Command::new(TP)
            .args(["consume", "--verify", "--json", "--count", "300"])
            .arg("--driver-config")
            .arg(&driver_file)
            .arg("--aeron-dir")
            .arg(&aeron),
    );
    let producer = Guard::spawn(
        Command::new(TP)
            .args([
                "produce", "--count", "3000", "--rate", "1000", "--shape", "64x96", "--dtype",
                "u16",
            ])
            .arg("--driver-config")
            .arg(&driver_file)
            .arg("--aeron-dir")
            .arg(&aeron),
    );
    let c = consumer.wait();
    let p = producer.wait();
    assert!(
        c.status.success(),
        "consume failed: {}",
        String::from_utf8_lossy(&c.stderr)
    );
    assert!(
        p.status.success(),
        "produce failed: {}",
        String::from_utf8_lossy(&p.stderr)
    );
    let j = last_json(&c);
    assert!(j["accepted"].as_u64().unwrap() >= 300, "{j}");
    assert_eq!(j["corrupt"], 0, "{j}");
    assert_eq!(j["state"], "mapped", "{j}");
    driver.close().unwrap();
    drop(media);
    assert!(!aeron.exists());
}

/// A refused announce is visible: logged through `tracing` once per epoch with its reason
/// (the producer announces every second; the consumer retries after each backoff), and
/// `tp consume --json` reports it as `last_rejection`.
#[test]
fn consume_reports_and_logs_the_last_rejection_once_per_epoch() {
    let driver = EmbeddedMediaDriver::start(
        MediaDriverConfig::default()
            .idle_strategy(DriverIdleStrategy::Sleeping(Duration::from_micros(200))),
    )
    .expect("media driver");
    let aeron = driver.dir().to_path_buf();
    let shm = tempfile::Builder::new()
        .prefix("tp-proc-")
        .tempdir_in("/dev/shm")
        .unwrap();
    let elsewhere = tempfile::Builder::new()
        .prefix("tp-proc-other-")
        .tempdir_in("/dev/shm")
        .unwrap();
    let stream = "10003";
    let producer = Guard::spawn(
        Command::new(TP)
            .args([
                "produce",
                "--standalone",
                "--count",
                "100000",
                "--rate",
                "50",
            ])
            .args(["--size", "1024", "--stream-id", stream])
            .arg("--aeron-dir")
            .arg(&aeron)
            .arg("--shm-base-dir")
            .arg(shm.path()),
    );
    let consumer = Guard::spawn(
        Command::new(TP)
            .args([
                "consume",
                "--json",
                "--duration",
                "3.5",
                "--stream-id",
                stream,
            ])
            .arg("--aeron-dir")
            .arg(&aeron)
            .arg("--allowed-base-dir")
            .arg(elsewhere.path())
            .env("CONSUMER_REMAP_BACKOFF_MS", "200"),
    );
    let c = consumer.wait();
    drop(producer);
    let stderr = String::from_utf8_lossy(&c.stderr);
    assert!(c.status.success(), "consume failed: {stderr}");
    let j = last_json(&c);
    let r = &j["last_rejection"];
    assert!(
        r["reason"].as_str().is_some_and(|s| s.contains("outside")),
        "{j}"
    );
    assert!(r["epoch"].as_u64().is_some_and(|e| e > 0), "{j}");
    assert!(r["at"].as_u64().is_some_and(|t| t > 0), "{j}");
    let logged = stderr
        .lines()
        .filter(|l| l.contains("refused the announced regions"))
        .count();
    assert_eq!(logged, 1, "one warning for the epoch: {stderr}");
    drop(driver);
    assert!(!aeron.exists());
}

/// `tp consume --sum` adds up every byte of each accepted frame into a u64 and reports the
/// frames summed and the total in its JSON summary, with the times the benchmark's rate is
/// taken from (`first_frame_s`, `elapsed_s`). The producer is this test's own: every frame
/// holds 0..=255 rotated by its seq, 257 times over (65 792 bytes, across the 64 KiB blocks
/// the sum works in), so each frame sums to 257 x 32 640 whichever frames the consumer got.
#[test]
fn consume_sum_adds_up_every_byte_of_each_accepted_frame() {
    use tensorpool::prelude::*;

    const LEN: usize = 257 * 256;
    const FRAME_SUM: u64 = 257 * 32_640;
    let driver = EmbeddedMediaDriver::start(
        MediaDriverConfig::default()
            .idle_strategy(DriverIdleStrategy::Sleeping(Duration::from_micros(200))),
    )
    .expect("media driver");
    let aeron = driver.dir().to_path_buf();
    let shm = tempfile::Builder::new()
        .prefix("tp-sum-")
        .tempdir_in("/dev/shm")
        .unwrap();
    let stream = 10_007;
    let ctx = Context::connect(&aeron).expect("connect");
    let mut producer = ctx
        .producer(stream)
        .standalone(shm.path())
        .header_nslots(16)
        .pool(1, 128 * 1024)
        .configure(|c| {
            c.announce_period = Duration::from_millis(50);
            c.prefault = false;
        })
        .build()
        .expect("producer");
    let mut consumer = Guard::spawn(
        Command::new(TP)
            .args(["consume", "--sum", "--json", "--count", "50", "--stream-id"])
            .arg(stream.to_string())
            .arg("--aeron-dir")
            .arg(&aeron)
            .arg("--allowed-base-dir")
            .arg(shm.path()),
    );
    let spec = TensorSpec::new(Dtype::Uint8, &[LEN]).unwrap();
    let deadline = Instant::now() + DEADLINE;
    // Frames go out once the consumer said hello (it has mapped the pool), then one a
    // millisecond until it has summed its 50 and exited.
    loop {
        let child = consumer.0.as_mut().expect("running");
        if child.try_wait().expect("try_wait").is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "tp consume --sum did not finish");
        producer.do_work(tensorpool::monotonic_ns());
        if producer.consumer_count() > 0 {
            let mut claim = producer.claim(&spec).expect("claim");
            let seq = claim.seq() as usize;
            for (i, b) in claim.payload_mut().iter_mut().enumerate() {
                *b = (i + seq) as u8;
            }
            claim.commit();
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let c = consumer.wait();
    assert!(
        c.status.success(),
        "consume failed: {}",
        String::from_utf8_lossy(&c.stderr)
    );
    let j = last_json(&c);
    let accepted = j["accepted"].as_u64().unwrap();
    assert!(accepted >= 50, "{j}");
    assert_eq!(j["sum"]["frames"].as_u64(), Some(accepted), "{j}");
    assert_eq!(
        j["sum"]["total"].as_u64(),
        Some(accepted * FRAME_SUM),
        "{j}"
    );
    let first = j["first_frame_s"].as_f64().expect("first_frame_s");
    assert!(first <= j["elapsed_s"].as_f64().unwrap(), "{j}");
    producer.close();
    drop(ctx);
    drop(driver);
    assert!(!aeron.exists());
}
