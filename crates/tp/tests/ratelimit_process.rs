//! `tp ratelimit` as a real process between `tp media-driver`, `tp driver`, `tp produce` and
//! consumers: an every-10th destination carries exactly the multiples of 10 with the source's
//! bytes (seq in the payload, CRC32C; `tp consume --verify`), a max_rate_hz destination never
//! has two frames closer than the interval (descriptor publish timestamps), and a source
//! killed and restarted on a new epoch is followed by the destination on a new epoch of its
//! own. Private Aeron and SHM directories; every wait has a deadline; children are stopped by
//! Drop guards.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tensorpool::prelude::*;
use tensorpool::streams::DriverEndpoints;

const TP: &str = env!("CARGO_BIN_EXE_tp");
const DEADLINE: Duration = Duration::from_secs(30);
const SOURCE: u32 = 10_000;
const EVERY_10: u32 = 11_000;
const RATE: u32 = 11_001;
const RATE_HZ: u64 = 50;
/// Issue 17 item 5: a 1 kHz source limited to 30 Hz.
const RATE_30: u32 = 11_003;
/// RL §9: the every-10th stream after a `tp bridge` (loopback UDP, same host).
const BRIDGED: u32 = 12_000;
/// A destination whose pool is too small for the source's frames (RateLimiter §5: drop).
const SMALL: u32 = 11_002;

struct Proc {
    child: Option<Child>,
    name: String,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Proc {
    fn spawn(name: &str, args: &[&str]) -> Self {
        let mut child = Command::new(TP)
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("RL_TEST_LOG").unwrap_or("warn".into()),
            )
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
            seen: Vec::new(),
        }
    }

    fn expect(&mut self, what: &str, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if f(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "{}: no {what} within {DEADLINE:?}; saw {:?}",
                    self.name, self.seen
                ),
            }
        }
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args([sig, &c.id().to_string()])
                .status();
        }
    }

    fn sigkill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then every stdout line until the process exits (bounded).
    fn stop(&mut self) -> Vec<String> {
        self.signal("-TERM");
        let deadline = Instant::now() + DEADLINE;
        let mut out = std::mem::take(&mut self.seen);
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            out.push(line);
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
        out
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline && c.try_wait().ok().flatten().is_none() {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

struct DirGuard(PathBuf);

impl Drop for DirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One file for the deployment: driver, producer, consumer and rate limiter tables; every
/// channel is the default `aeron:ipc?term-length=4m` so IPC streams are shared byte-exactly.
fn config(aeron: &Path, shm: &Path, extra: &str) -> String {
    let ch = "aeron:ipc?term-length=4m";
    format!(
        r#"[driver]
instance_id = "rl-test"
attach_timeout_ms = 2000
aeron_dir = "{aeron}"

[shm]
base_dir = "{shm}"

[policies]
announce_period_ms = 100
lease_keepalive_interval_ms = 100
lease_expiry_grace_intervals = 10
prefault_shm = false
epoch_gc_enabled = false

[profiles.cam]
header_nslots = 64
payload_pools = [{{ pool_id = 1, stride_bytes = 1024 }}]

[profiles.small]
header_nslots = 64
payload_pools = [{{ pool_id = 1, stride_bytes = 128 }}]

[streams.small]
stream_id = {SMALL}
profile = "small"

[streams.src]
stream_id = {SOURCE}
profile = "cam"

[streams.every10]
stream_id = {EVERY_10}
profile = "cam"

[streams.rate]
stream_id = {RATE}
profile = "cam"

[streams.rate30]
stream_id = {RATE_30}
profile = "cam"

[streams.bridged]
stream_id = {BRIDGED}
profile = "cam"

[producer]
stream_id = {SOURCE}
use_driver = true
shm_base_dir = "{shm}"
announce_period_ms = 100

[consumer]
use_driver = true
allowed_base_dirs = ["{shm}"]

[rate_limiter]
instance_id = "rl-test"
attach_timeout_ms = 2000
aeron_dir = "{aeron}"
descriptor_channel = "{ch}"
descriptor_stream_id = 1100
control_channel = "{ch}"
control_stream_id = 1000
qos_channel = "{ch}"
metadata_channel = "{ch}"
shm_base_dir = "{shm}"
{extra}

[[mappings]]
source_stream_id = {SOURCE}
dest_stream_id = {EVERY_10}
decimation = 10

[[mappings]]
source_stream_id = {SOURCE}
dest_stream_id = {RATE}
max_rate_hz = {RATE_HZ}

[[mappings]]
source_stream_id = {SOURCE}
dest_stream_id = {SMALL}

[[mappings]]
source_stream_id = {SOURCE}
dest_stream_id = {RATE_30}
max_rate_hz = 30
"#,
        aeron = aeron.display(),
        shm = shm.display()
    )
}

struct System {
    _shm: tempfile::TempDir,
    _cfg_dir: tempfile::TempDir,
    cfg: PathBuf,
    aeron: PathBuf,
    _media: Proc,
    _driver: Proc,
    _aeron_guard: DirGuard,
}

impl System {
    fn start() -> Self {
        Self::start_with("")
    }

    /// With `extra` lines in the `[rate_limiter]` table.
    fn start_with(extra: &str) -> Self {
        let aeron = tensorpool_aeron::unique_dir();
        let aeron_guard = DirGuard(aeron.clone());
        let shm = tempfile::Builder::new()
            .prefix("tp-rl-")
            .tempdir_in("/dev/shm")
            .unwrap();
        let cfg_dir = tempfile::tempdir().unwrap();
        let cfg = cfg_dir.path().join("deployment.toml");
        std::fs::write(&cfg, config(&aeron, shm.path(), extra)).unwrap();
        let aeron_s = aeron.to_str().unwrap();
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
        );
        media.expect("media driver running", |l| l.contains("running"));
        let mut driver = Proc::spawn(
            "tp driver",
            &[
                "driver",
                "--config",
                cfg.to_str().unwrap(),
                "--idle",
                "sleep:1ms",
            ],
        );
        driver.expect("driver ready", |l| l.contains("ready"));
        Self {
            _shm: shm,
            _cfg_dir: cfg_dir,
            cfg,
            aeron,
            _media: media,
            _driver: driver,
            _aeron_guard: aeron_guard,
        }
    }

    fn cfg(&self) -> &str {
        self.cfg.to_str().unwrap()
    }

    fn ratelimit(&self) -> Proc {
        let mut p = Proc::spawn(
            "tp ratelimit",
            &[
                "ratelimit",
                "--config",
                self.cfg(),
                "--driver-config",
                self.cfg(),
                "--idle",
                "sleep:200us",
            ],
        );
        p.expect("rate limiter ready", |l| l.contains("tp ratelimit: ready"));
        p
    }

    fn produce(&self, count: u64) -> Proc {
        let count = count.to_string();
        Proc::spawn(
            "tp produce",
            &[
                "produce",
                "--config",
                self.cfg(),
                "--count",
                &count,
                "--rate",
                "1000",
                "--size",
                "256",
                "--linger",
                "1",
            ],
        )
    }

    /// A consumer of ours on `stream` (driver mode), in this process.
    fn consumer(&self, ctx: &Context, stream: u32) -> Consumer {
        let shm = self._shm.path().to_path_buf();
        ctx.consumer(stream)
            .configure(|c| {
                c.driver = Some(DriverEndpoints {
                    keepalive_interval: Duration::from_millis(100),
                    announce_period: Duration::from_millis(100),
                    ..DriverEndpoints::default()
                });
                c.allowed_base_dirs = vec![shm];
            })
            .build()
            .unwrap()
    }
}

/// One frame as a destination consumer saw it.
#[derive(Debug, Clone, Copy)]
struct Seen {
    seq: u64,
    epoch: u64,
    timestamp_ns: u64,
    meta_version: u32,
    publish_ns: u64,
    payload_ok: bool,
}

/// The payload of `tp produce`: seq (8 bytes LE) + CRC32C of the rest (4 bytes LE) + data.
fn payload_ok(frame: &Frame<'_>) -> bool {
    let b = frame.bytes();
    let ok = b.len() >= 12
        && u64::from_le_bytes(b[..8].try_into().unwrap()) == frame.seq()
        && crc32c::crc32c(&b[12..]) == u32::from_le_bytes(b[8..12].try_into().unwrap());
    frame.recheck().is_ok() && ok
}

/// Polls `consumers` until `done` says so (bounded).
fn collect(
    consumers: &mut [&mut Consumer],
    seen: &mut [Vec<Seen>],
    what: &str,
    done: impl Fn(&[Vec<Seen>]) -> bool,
) {
    let deadline = Instant::now() + DEADLINE;
    while !done(seen) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; saw {:?}",
            seen.iter()
                .map(|s| s
                    .iter()
                    .map(|f| (f.seq, f.epoch % 100_000))
                    .collect::<Vec<_>>())
                .collect::<Vec<_>>()
        );
        let mut work = 0;
        for (c, s) in consumers.iter_mut().zip(seen.iter_mut()) {
            work += c
                .poll(
                    |f| {
                        s.push(Seen {
                            seq: f.seq(),
                            epoch: f.epoch(),
                            timestamp_ns: f.timestamp_ns(),
                            meta_version: f.meta_version(),
                            publish_ns: f.publish_timestamp_ns().unwrap_or(0),
                            payload_ok: payload_ok(f),
                        })
                    },
                    64,
                )
                .unwrap();
        }
        if work == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// One poll of `c` into `out`.
fn poll_once(c: &mut Consumer, out: &mut Vec<Seen>) {
    c.poll(
        |f| {
            out.push(Seen {
                seq: f.seq(),
                epoch: f.epoch(),
                timestamp_ns: f.timestamp_ns(),
                meta_version: f.meta_version(),
                publish_ns: f.publish_timestamp_ns().unwrap_or(0),
                payload_ok: payload_ok(f),
            })
        },
        64,
    )
    .unwrap();
}

fn counter(lines: &[String], mapping: usize, name: &str) -> u64 {
    let prefix = format!("mapping {mapping} (");
    let needle = format!(": {name} = ");
    lines
        .iter()
        .find(|l| l.starts_with(&prefix) && l.contains(&needle))
        .and_then(|l| l.rsplit(" = ").next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no counter {name} of mapping {mapping} in {lines:?}"))
}

#[test]
fn every_10th_and_max_rate_destinations_carry_the_right_frames_with_the_source_bytes() {
    let sys = System::start();
    let mut rl = sys.ratelimit();
    let ctx = Context::connect(&sys.aeron).unwrap();
    let mut every10 = sys.consumer(&ctx, EVERY_10);
    let mut rate = sys.consumer(&ctx, RATE);
    let mut source = sys.consumer(&ctx, SOURCE);
    let aeron_s = sys.aeron.to_str().unwrap().to_owned();
    let mut verify = Proc::spawn(
        "tp consume --verify",
        &[
            "consume",
            "--config",
            sys.cfg(),
            "--aeron-dir",
            &aeron_s,
            "--stream-id",
            "11000",
            "--verify",
            "--json",
            "--count",
            "20",
        ],
    );
    let total = 2000u64;
    let last = total - 1;
    let _producer = sys.produce(total);
    let mut seen = [Vec::new(), Vec::new(), Vec::new()];
    collect(
        &mut [&mut every10, &mut rate, &mut source],
        &mut seen,
        "the last multiple of 10 on the every-10th stream",
        |s| s[0].iter().any(|f| f.seq == last / 10 * 10),
    );
    // every-10th: exactly the multiples of 10 from the first one seen to the last
    let seqs: Vec<u64> = seen[0].iter().map(|f| f.seq).collect();
    let first = seqs[0];
    let want: Vec<u64> = (first..=last).filter(|s| s % 10 == 0).collect();
    assert_eq!(seqs, want, "every-10th carries exactly seq % 10 == 0");
    assert!(
        seen[0].iter().all(|f| f.payload_ok),
        "bytes equal the source's"
    );
    // RL §5: timestamp_ns and meta_version preserved (frames seen on both streams)
    let mut compared = 0;
    for d in seen[0].iter().chain(&seen[1]) {
        if let Some(s) = seen[2].iter().find(|s| s.seq == d.seq) {
            assert_eq!(
                (d.timestamp_ns, d.meta_version),
                (s.timestamp_ns, s.meta_version),
                "seq {}",
                d.seq
            );
            compared += 1;
        }
    }
    assert!(
        compared > 0,
        "no frame seen on both the source and a destination"
    );
    // max_rate_hz: never two frames closer than the interval, sequences increase
    let interval = 1_000_000_000u64.div_ceil(RATE_HZ);
    assert!(seen[1].len() >= 2, "rate stream: {:?}", seen[1]);
    for w in seen[1].windows(2) {
        assert!(w[1].seq > w[0].seq, "{w:?}");
        assert!(
            w[1].publish_ns - w[0].publish_ns >= interval,
            "two frames closer than {interval} ns: {w:?}"
        );
    }
    assert!(seen[1].iter().all(|f| f.payload_ok && f.publish_ns > 0));
    let min_gap = seen[1]
        .windows(2)
        .map(|w| w[1].publish_ns - w[0].publish_ns)
        .min()
        .unwrap();
    println!(
        "every-10th: {} frames ({}..={}); {RATE_HZ} Hz: {} frames, closest two {} us apart (interval {} us)",
        seqs.len(),
        first,
        seqs.last().unwrap(),
        seen[1].len(),
        min_gap / 1000,
        interval / 1000
    );
    // at most one frame per interval over the source's span, plus the first
    let span = seen[1].last().unwrap().publish_ns - seen[1][0].publish_ns;
    assert!(seen[1].len() as u64 <= 1 + span / interval);
    // tp consume --verify on the derived stream: every checksum holds
    let line = verify.expect("the JSON summary", |l| l.starts_with('{'));
    let j: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(j["corrupt"], 0, "{j}");
    assert!(j["accepted"].as_u64().unwrap() >= 20, "{j}");
    let lines = rl.stop();
    assert!(counter(&lines, 0, "forwarded") >= want.len() as u64);
    assert_eq!(counter(&lines, 0, "torn"), 0);
    assert!(
        counter(&lines, 1, "filtered") > 0,
        "the rate limit dropped frames"
    );
    // RL §5: a payload no destination pool holds is dropped, counted, never forwarded
    assert!(counter(&lines, 2, "no_pool") > 0);
    assert_eq!(counter(&lines, 2, "forwarded"), 0);
}

#[test]
fn rl_7_a_restarted_source_is_followed_on_a_new_destination_epoch() {
    let sys = System::start();
    let mut rl = sys.ratelimit();
    let ctx = Context::connect(&sys.aeron).unwrap();
    let mut every10 = sys.consumer(&ctx, EVERY_10);
    let mut seen = [Vec::new()];
    let mut producer = sys.produce(1_000_000);
    collect(
        &mut [&mut every10],
        &mut seen,
        "frames of the first source epoch",
        |s| s[0].iter().any(|f| f.seq >= 100),
    );
    let first_epoch = seen[0][0].epoch;
    producer.sigkill();
    wait_no_producer(&sys, SOURCE);
    let _producer = sys.produce(1_000_000);
    collect(
        &mut [&mut every10],
        &mut seen,
        "frames of a new destination epoch",
        |s| s[0].iter().any(|f| f.epoch != first_epoch && f.seq >= 100),
    );
    let (old, new): (Vec<Seen>, Vec<Seen>) = seen[0].iter().partition(|f| f.epoch == first_epoch);
    let second_epoch = new[0].epoch;
    assert!(
        second_epoch > first_epoch,
        "{first_epoch} -> {second_epoch}"
    );
    assert!(new.iter().all(|f| f.epoch == second_epoch), "{new:?}");
    for part in [&old, &new] {
        assert!(part.iter().all(|f| f.seq % 10 == 0 && f.payload_ok));
        assert!(part.windows(2).all(|w| w[1].seq > w[0].seq), "{part:?}");
    }
    println!(
        "epoch {first_epoch}: {} frames up to seq {}; epoch {second_epoch}: {} frames from seq {}",
        old.len(),
        old.last().unwrap().seq,
        new.len(),
        new[0].seq
    );
    let lines = rl.stop();
    assert!(counter(&lines, 0, "epoch_changes") >= 1);
    assert!(counter(&lines, 0, "dest_rebuilds") >= 1);
}

#[test]
fn rl_3_the_rate_limiter_does_not_start_when_its_destination_has_a_producer() {
    let sys = System::start();
    let _other = {
        let mut p = Proc::spawn(
            "tp produce on the destination",
            &[
                "produce",
                "--config",
                sys.cfg(),
                "--stream-id",
                &EVERY_10.to_string(),
                "--count",
                "1000000",
                "--rate",
                "100",
                "--size",
                "256",
            ],
        );
        // its lease is granted once it reports its epoch (stderr is not piped): wait until
        // the driver lists it
        let deadline = Instant::now() + DEADLINE;
        loop {
            let out = Command::new(TP)
                .args(["driver", "streams", "--json", "--config", sys.cfg()])
                .output()
                .unwrap();
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            if v["streams"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|s| s["stream_id"] == EVERY_10 && !s["producer_client_id"].is_null())
            }) {
                break;
            }
            assert!(Instant::now() < deadline, "no producer on {EVERY_10}: {v}");
            std::thread::sleep(Duration::from_millis(100));
        }
        p.seen.clear();
        p
    };
    let out = Command::new(TP)
        .args([
            "ratelimit",
            "--config",
            sys.cfg(),
            "--driver-config",
            sys.cfg(),
        ])
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started beside another producer");
    assert!(err.contains("destination stream 11000"), "{err}");
    println!("tp ratelimit refused to start: {}", err.trim());
}

#[test]
fn rl_6_metadata_is_forwarded_with_its_version_and_the_destination_stream_id() {
    use tensorpool::meta::MetaAttribute;
    let sys = System::start();
    let _rl = sys.ratelimit();
    let ctx = Context::connect(&sys.aeron).unwrap();
    let mut every10 = sys.consumer(&ctx, EVERY_10);
    let shm = sys._shm.path().to_path_buf();
    let mut producer = ctx
        .producer(SOURCE)
        .configure(|c| {
            c.mode = RegionMode::Driver(DriverEndpoints {
                keepalive_interval: Duration::from_millis(100),
                announce_period: Duration::from_millis(100),
                ..DriverEndpoints::default()
            });
            c.shm_base_dir = shm;
            c.announce_period = Duration::from_millis(100);
            c.data_source_period = Duration::from_millis(100);
            c.meta_period = Duration::from_millis(100);
            c.name = "cam-front".into();
        })
        .build()
        .unwrap();
    let attrs = vec![
        MetaAttribute::text("exposure_us", "800"),
        MetaAttribute::text("lens", "f/2.0"),
    ];
    producer.set_meta(&attrs).unwrap();
    let version = producer.set_meta(&attrs).unwrap();
    assert_eq!(
        version, 2,
        "two versions: the forwarded one is not 1 by chance"
    );
    let spec = TensorSpec::new(Dtype::Uint8, &[64]).unwrap();
    let payload = [7u8; 64];
    let deadline = Instant::now() + DEADLINE;
    let mut frame_versions = Vec::new();
    loop {
        let got = every10.meta().map(|(v, a)| (v, a.to_vec()));
        if got.is_some() && !frame_versions.is_empty() {
            assert_eq!(
                got,
                Some((version, attrs.clone())),
                "attributes and version"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no forwarded metadata within {DEADLINE:?}: meta {got:?}, frames {frame_versions:?}"
        );
        let _ = producer.offer(&spec, &payload);
        producer.do_work(tensorpool::monotonic_ns());
        every10
            .poll(|f| frame_versions.push(f.meta_version()), 64)
            .unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        frame_versions.iter().all(|v| *v == version),
        "{frame_versions:?}"
    );
    assert_eq!(every10.source_name(), Some("cam-front"));
}

#[test]
fn config_validate_role_ratelimit_accepts_the_julia_example_and_names_bad_keys() {
    let shared = std::env::var_os("TENSORPOOL_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let example = shared.join("configs/AeronTensorPool.jl/rate_limiter_example.toml");
    if example.is_file() {
        let out = Command::new(TP)
            .args(["config", "validate", "--role", "ratelimit"])
            .arg(&example)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(
            text.contains("mappings[0] = \"10000 -> 11000: at most 30 Hz\""),
            "{text}"
        );
        assert!(text.contains("rate_limiter.max_rate_hz = 0"), "{text}");
    } else {
        println!("skipped the example: {} not found", example.display());
    }
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[rate_limiter]\ninstance_id = \"x\"\ndescriptor_channel = \"aeron:ipc\"\ndescriptor_stream_id = 1100\n\
         [[mappings]]\nsource_stream_id = 10000\ndest_stream_id = 10000\n",
    )
    .unwrap();
    let out = Command::new(TP)
        .args(["config", "validate", "--role", "ratelimit"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mappings[0].dest_stream_id"), "{err}");
}

#[test]
fn rl_6_1_progress_and_qos_are_forwarded_with_the_destination_stream_id() {
    use tensorpool_codec::Message;
    use tensorpool_codec::wire::{FrameProgress, FrameProgressState, Mode, QosConsumer};
    const CH: &str = "aeron:ipc?term-length=4m";
    let sys = System::start_with(
        "forward_progress = true\nsource_control_stream_id = 2001\ndest_control_stream_id = 2002\n\
         forward_qos = true\nsource_qos_stream_id = 3001\ndest_qos_stream_id = 3002",
    );
    let rl = sys.ratelimit();
    let ctx = Context::connect(&sys.aeron).unwrap();
    let aeron = ctx.client();
    let t = Duration::from_secs(10);
    let mut progress_pub = aeron.add_publication(CH, 2001, t).unwrap();
    let mut qos_pub = aeron.add_publication(CH, 3001, t).unwrap();
    let mut progress_sub = aeron.add_subscription(CH, 2002, t).unwrap();
    let mut qos_sub = aeron.add_subscription(CH, 3002, t).unwrap();
    // frames flow, so the rate limiter knows the source epoch; our consumers learn the
    // source and destination epochs
    let _producer = sys.produce(1_000_000);
    let mut source = sys.consumer(&ctx, SOURCE);
    let mut every10 = sys.consumer(&ctx, EVERY_10);
    let mut seen = [Vec::new(), Vec::new()];
    collect(
        &mut [&mut source, &mut every10],
        &mut seen,
        "frames on the source and the every-10th stream",
        |s| !s[0].is_empty() && !s[1].is_empty(),
    );
    let source_epoch = seen[0][0].epoch;
    // every epoch the every-10th destination had while we looked (a loaded machine may see a
    // lease re-established on a new epoch)
    let mut dest_epochs: Vec<u64> = vec![seen[1][0].epoch];
    let sent_progress = FrameProgress {
        stream_id: SOURCE,
        epoch: source_epoch,
        seq: 1_000_000_000,
        payload_bytes_filled: 96,
        state: FrameProgressState::Progress,
    }
    .encode_to_vec()
    .unwrap();
    let sent_qos = QosConsumer {
        stream_id: SOURCE,
        consumer_id: 77,
        epoch: source_epoch,
        last_seq_seen: 1234,
        drops_gap: 5,
        drops_late: 6,
        mode: Mode::Stream,
    }
    .encode_to_vec()
    .unwrap();
    let (mut progress, mut qos) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + DEADLINE;
    // each mapping of the source gets its copy: every-10th, 50 Hz, the small one, 30 Hz
    while progress.len() < 4 || qos.len() < 4 {
        assert!(
            Instant::now() < deadline,
            "forwarded progress {progress:?}, QoS {qos:?}"
        );
        if progress.len() < 4 {
            let _ = tensorpool::control::send_bytes(&mut progress_pub, &sent_progress);
        }
        if qos.len() < 4 {
            let _ = tensorpool::control::send_bytes(&mut qos_pub, &sent_qos);
        }
        std::thread::sleep(Duration::from_millis(20));
        progress_sub
            .poll(
                |b, _| {
                    let p = FrameProgress::decode(b).unwrap();
                    if !progress
                        .iter()
                        .any(|q: &FrameProgress| q.stream_id == p.stream_id)
                    {
                        progress.push(p);
                    }
                },
                64,
            )
            .unwrap();
        qos_sub
            .poll(
                |b, _| {
                    let q = QosConsumer::decode(b).unwrap();
                    if !qos.iter().any(|x: &QosConsumer| x.stream_id == q.stream_id) {
                        qos.push(q);
                    }
                },
                64,
            )
            .unwrap();
        source.poll(|_| {}, 64).unwrap();
        every10
            .poll(
                |f| {
                    if !dest_epochs.contains(&f.epoch()) {
                        dest_epochs.push(f.epoch());
                    }
                },
                64,
            )
            .unwrap();
    }
    let mut streams: Vec<u32> = progress.iter().map(|p| p.stream_id).collect();
    streams.sort_unstable();
    assert_eq!(
        streams,
        vec![EVERY_10, RATE, SMALL, RATE_30],
        "streamId rewritten"
    );
    for p in &progress {
        assert_eq!(
            (p.seq, p.payload_bytes_filled, p.state),
            (1_000_000_000, 96, FrameProgressState::Progress),
            "seq, bytes and state kept: {p:?}"
        );
        assert_ne!(p.epoch, source_epoch, "the destination's epoch: {p:?}");
    }
    let p10 = progress.iter().find(|p| p.stream_id == EVERY_10).unwrap();
    while !dest_epochs.contains(&p10.epoch) && Instant::now() < deadline {
        every10
            .poll(
                |f| {
                    if !dest_epochs.contains(&f.epoch()) {
                        dest_epochs.push(f.epoch());
                    }
                },
                64,
            )
            .unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        dest_epochs.contains(&p10.epoch),
        "the every-10th destination's epoch: {p10:?}, consumer saw {dest_epochs:?}"
    );
    let mut streams: Vec<u32> = qos.iter().map(|q| q.stream_id).collect();
    streams.sort_unstable();
    assert_eq!(
        streams,
        vec![EVERY_10, RATE, SMALL, RATE_30],
        "streamId rewritten"
    );
    for q in &qos {
        assert_eq!(
            (
                q.consumer_id,
                q.epoch,
                q.last_seq_seen,
                q.drops_gap,
                q.drops_late,
                q.mode
            ),
            (77, source_epoch, 1234, 5, 6, Mode::Stream),
            "every other field kept"
        );
    }
    println!(
        "progress forwarded to {:?} (destination epochs {:?}); QoS to {streams:?}",
        progress.iter().map(|p| p.stream_id).collect::<Vec<_>>(),
        progress.iter().map(|p| p.epoch).collect::<Vec<_>>()
    );
    let mut rl = rl;
    let lines = rl.stop();
    assert!(counter(&lines, 0, "progress_forwarded") >= 1);
    assert!(counter(&lines, 0, "qos_forwarded") >= 1);
}

/// Issue 17 item 5: a 1 kHz source through `max_rate_hz = 30` for 10 s. Returns the derived
/// frames published within 10 s of the first one, after checking that no two derived frames
/// are closer than the interval (descriptor publish timestamps) and that there are at most 301.
fn thirty_hz_for_ten_seconds() -> usize {
    const WINDOW_NS: u64 = 10_000_000_000;
    let sys = System::start();
    let mut rl = sys.ratelimit();
    let ctx = Context::connect(&sys.aeron).unwrap();
    let mut rate30 = sys.consumer(&ctx, RATE_30);
    // 12 s of frames at 1 kHz: the 10 s window closes while the source still runs
    let _producer = sys.produce(12_000);
    let mut seen = [Vec::new()];
    let deadline = Instant::now() + DEADLINE;
    loop {
        let first = seen[0].first().map(|f: &Seen| f.publish_ns);
        if first.is_some_and(|p0| seen[0].iter().any(|f| f.publish_ns >= p0 + WINDOW_NS)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no 10 s of the 30 Hz stream within {DEADLINE:?}: {} frames",
            seen[0].len()
        );
        let n = rate30
            .poll(
                |f| {
                    seen[0].push(Seen {
                        seq: f.seq(),
                        epoch: f.epoch(),
                        timestamp_ns: f.timestamp_ns(),
                        meta_version: f.meta_version(),
                        publish_ns: f.publish_timestamp_ns().unwrap_or(0),
                        payload_ok: payload_ok(f),
                    })
                },
                64,
            )
            .unwrap();
        if n == 0 {
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    let frames = &seen[0];
    let interval = 1_000_000_000u64.div_ceil(30);
    assert!(frames.iter().all(|f| f.payload_ok && f.publish_ns > 0));
    for w in frames.windows(2) {
        assert!(w[1].seq > w[0].seq, "{w:?}");
        assert!(
            w[1].publish_ns - w[0].publish_ns >= interval,
            "two frames closer than {interval} ns: {w:?}"
        );
    }
    let p0 = frames[0].publish_ns;
    let in_window = frames
        .iter()
        .filter(|f| f.publish_ns < p0 + WINDOW_NS)
        .count();
    assert!(in_window <= 301, "{in_window} frames in 10 s at 30 Hz");
    let min_gap = frames
        .windows(2)
        .map(|w| w[1].publish_ns - w[0].publish_ns)
        .min()
        .unwrap_or(0);
    println!(
        "1 kHz -> 30 Hz: {in_window} derived frames in 10 s ({:.1}/s; at most 301 asserted, 300 \
         expected), closest two {} us apart (interval {} us)",
        in_window as f64 / 10.0,
        min_gap / 1000,
        interval / 1000
    );
    let lines = rl.stop();
    assert_eq!(counter(&lines, 3, "torn"), 0);
    in_window
}

/// Upper bound and spacing only: the count is printed, never asserted from below (a loaded
/// 2-core machine may deliver fewer frames; docs/compliance.md, RL §4).
#[test]
fn rl_4_a_1_khz_source_at_max_rate_30_gives_at_most_301_frames_in_10_s() {
    thirty_hz_for_ten_seconds();
}

/// The lower bound (at least 29 frames a second), by hand on a quiet machine:
/// `cargo nextest run -p tp --test ratelimit_process --run-ignored only`.
#[test]
#[ignore = "rate lower bound: run by hand on a quiet machine"]
fn rl_4_a_1_khz_source_at_max_rate_30_gives_at_least_29_frames_a_second() {
    let n = thirty_hz_for_ten_seconds();
    assert!(n >= 290, "{n} frames in 10 s: below 29/s");
}

/// Polls `tp driver streams --json` until `done` holds for stream `id`'s entry (`None`:
/// the driver lists no such stream), bounded by `DEADLINE`; `what` names the wait.
fn wait_stream(
    sys: &System,
    id: u32,
    what: &str,
    done: impl Fn(Option<&serde_json::Value>) -> bool,
) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let out = Command::new(TP)
            .args(["driver", "streams", "--json", "--config", sys.cfg()])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let entry = v["streams"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["stream_id"] == id));
        if done(entry) {
            return;
        }
        assert!(Instant::now() < deadline, "stream {id}: {what}: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until stream `id` has a producer lease at the driver.
fn wait_producer(sys: &System, id: u32) {
    wait_stream(sys, id, "no producer", |s| {
        s.is_some_and(|s| !s["producer_client_id"].is_null())
    });
}

/// Waits until stream `id` has no producer lease at the driver.
fn wait_no_producer(sys: &System, id: u32) {
    wait_stream(sys, id, "still has a producer", |s| {
        s.is_none_or(|s| s["producer_client_id"].is_null())
    });
}

/// Waits until stream `id` has a consumer lease at the driver.
fn wait_consumer(sys: &System, id: u32) {
    wait_stream(sys, id, "no consumer", |s| {
        s.is_some_and(|s| s["consumer_count"].as_u64().is_some_and(|n| n >= 1))
    });
}

#[test]
fn rl_7_a_stale_source_is_seen_downstream_as_a_stopped_destination() {
    let sys = System::start();
    let mut rl = sys.ratelimit();
    let ctx = Context::connect(&sys.aeron).unwrap();
    let mut every10 = sys.consumer(&ctx, EVERY_10);
    let mut seen = [Vec::new()];
    let mut producer = sys.produce(1_000_000);
    collect(
        &mut [&mut every10],
        &mut seen,
        "frames on the every-10th stream",
        |s| s[0].iter().any(|f| f.seq >= 100),
    );
    assert!(matches!(every10.state(), ConsumerState::Mapped { .. }));
    wait_producer(&sys, EVERY_10);
    // the source's producer dies and is not restarted
    producer.sigkill();
    wait_no_producer(&sys, SOURCE);
    // downstream: the destinations lose their producer at the driver, and a consumer of
    // the destination unmaps (the driver revokes it or its activity goes stale)
    wait_no_producer(&sys, EVERY_10);
    wait_no_producer(&sys, RATE);
    let deadline = Instant::now() + DEADLINE;
    while matches!(every10.state(), ConsumerState::Mapped { .. }) {
        assert!(
            Instant::now() < deadline,
            "the destination consumer still mapped"
        );
        every10.poll(|_| {}, 64).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    println!(
        "source killed: destination {EVERY_10} lost its producer, its consumer is {:?} ({:?})",
        every10.state(),
        every10.last_rejection().map(|r| r.reason.clone())
    );
    let lines = rl.stop();
    assert!(counter(&lines, 0, "source_stale") >= 1);
}

#[test]
fn rl_9_only_the_reduced_stream_crosses_a_bridge_after_the_rate_limiter() {
    let sys = System::start();
    let mut rl = sys.ratelimit();
    // tp bridge, both halves in one process over loopback UDP: the every-10th stream (the
    // rate limiter's destination) -> BRIDGED, re-materialized on this host
    let port = 40_000 + (std::process::id() % 5_000) as u16 * 3;
    let bridge_cfg = sys._cfg_dir.path().join("bridge.toml");
    std::fs::write(
        &bridge_cfg,
        format!(
            r#"[bridge]
instance_id = "rl-bridge"
payload_channel = "aeron:udp?endpoint=127.0.0.1:{port}"
payload_stream_id = 3000
control_channel = "aeron:udp?endpoint=127.0.0.1:{}"
control_stream_id = 3001
metadata_channel = "aeron:udp?endpoint=127.0.0.1:{}"
metadata_stream_id = 3002
mtu_bytes = 1408
integrity_crc32c = true

[[mappings]]
source_stream_id = {EVERY_10}
dest_stream_id = {BRIDGED}
profile = "cam"
"#,
            port + 1,
            port + 2
        ),
    )
    .unwrap();
    let aeron_s = sys.aeron.to_str().unwrap().to_owned();
    let mut bridge = Proc::spawn(
        "tp bridge",
        &[
            "bridge",
            "--config",
            bridge_cfg.to_str().unwrap(),
            "--driver-config",
            sys.cfg(),
            "--aeron-dir",
            &aeron_s,
            "--side",
            "both",
            "--idle",
            "sleep:100us",
        ],
    );
    bridge.expect("bridge ready", |l| l.contains("tp bridge: ready"));
    // the bridge's sender reads the every-10th stream, and the bridged stream exists (its
    // announce crossed the UDP control channel) before any frame exists, so every derived
    // frame can cross
    wait_consumer(&sys, EVERY_10);
    let ctx = Context::connect(&sys.aeron).unwrap();
    let mut bridged = sys.consumer(&ctx, BRIDGED);
    let deadline = Instant::now() + DEADLINE;
    while !matches!(bridged.state(), ConsumerState::Mapped { .. }) {
        assert!(Instant::now() < deadline, "the bridged stream never mapped");
        bridged.poll(|_| {}, 64).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut producer = sys.produce(1000);
    let mut seen = [Vec::new()];
    // done: the source has finished, and the bridge has sent as many frames as the rate
    // limiter forwarded, twice in a row
    let mut agreed = None;
    loop {
        poll_once(&mut bridged, &mut seen[0]);
        let exited = producer
            .child
            .as_mut()
            .is_none_or(|c| c.try_wait().ok().flatten().is_some());
        let forwarded = rl_counter(&sys, "ratelimiter.forwarded", EVERY_10);
        let sent = rl_counter(&sys, "bridge.frames-sent", 0);
        let now = (forwarded, sent);
        if exited && forwarded.is_some() && forwarded == sent && agreed == Some(now) {
            break;
        }
        agreed = (forwarded == sent).then_some(now);
        assert!(
            Instant::now() < deadline + DEADLINE,
            "rate limiter forwarded {forwarded:?}, bridge sent {sent:?}, source exited: {exited}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(500) && !seen[0].iter().any(|f| f.seq == 990) {
        poll_once(&mut bridged, &mut seen[0]);
        std::thread::sleep(Duration::from_millis(1));
    }
    let frames = &seen[0];
    assert!(
        frames.iter().all(|f| f.seq % 10 == 0),
        "only the reduced stream crosses: {:?}",
        frames.iter().map(|f| f.seq).collect::<Vec<_>>()
    );
    assert!(frames.windows(2).all(|w| w[1].seq > w[0].seq));
    assert!(
        frames.iter().all(|f| f.payload_ok),
        "bridged bytes equal the source's (seq + CRC32C)"
    );
    // stop the rate limiter first: all it forwarded has been read by the bridge (the last
    // multiple crossed), then the bridge
    let rl_lines = rl.stop();
    let forwarded = counter(&rl_lines, 0, "forwarded");
    let received = counter(&rl_lines, 0, "received");
    let bridge_lines = bridge.stop();
    let get = |name: &str| -> u64 {
        bridge_lines
            .iter()
            .find_map(|l| l.strip_prefix(&format!("{name} = ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {bridge_lines:?}"))
    };
    let sent = get("frames_sent");
    assert!(!frames.is_empty(), "no bridged frame");
    println!(
        "source frames read by the rate limiter: {received}; derived (every 10th): {forwarded}; \
         bridge frames_sent: {sent}; bridged frames seen: {}",
        frames.len()
    );
    assert_eq!(
        sent, forwarded,
        "the bridge sends exactly the derived stream's frames"
    );
    assert!(received > forwarded, "the source is not what crosses");
}

/// `tp stat --json`: the value of the rate limiter counter `type_name` keyed by `dest`.
fn rl_counter(sys: &System, type_name: &str, dest: u32) -> Option<i64> {
    let out = Command::new(TP)
        .args([
            "stat",
            "--aeron-dir",
            sys.aeron.to_str().unwrap(),
            "--count",
            "1",
            "--json",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(text.lines().next()?).ok()?;
    v["counters"].as_array()?.iter().find_map(|c| {
        (c["type"] == type_name && c["key"]["stream_id"] == dest).then(|| c["value"].as_i64())?
    })
}

#[test]
fn rl_4_per_consumer_the_sole_consumers_max_rate_hz_is_authoritative() {
    let sys = System::start_with("per_consumer = true");
    let mut rl = sys.ratelimit();
    let ctx = Context::connect(&sys.aeron).unwrap();
    // the only consumer of the 50 Hz destination asks for RATE_LIMITED at 10 Hz
    let shm = sys._shm.path().to_path_buf();
    let mut slow = ctx
        .consumer(RATE)
        .configure(|c| {
            c.driver = Some(DriverEndpoints {
                keepalive_interval: Duration::from_millis(100),
                announce_period: Duration::from_millis(100),
                ..DriverEndpoints::default()
            });
            c.allowed_base_dirs = vec![shm];
            c.mode = Mode::RateLimited { max_rate_hz: 10 };
        })
        .build()
        .unwrap();
    let _producer = sys.produce(1_000_000);
    let deadline = Instant::now() + DEADLINE;
    loop {
        slow.poll(|_| {}, 64).unwrap();
        if rl_counter(&sys, "ratelimiter.rate-hz", RATE) == Some(10) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rate in force never became the consumer's 10 Hz: {:?}",
            rl_counter(&sys, "ratelimiter.rate-hz", RATE)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // from now on the destination gets at most one frame per 100 ms (an upper bound only)
    let f0 = rl_counter(&sys, "ratelimiter.forwarded", RATE).unwrap();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(2) {
        slow.poll(|_| {}, 64).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    let f1 = rl_counter(&sys, "ratelimiter.forwarded", RATE).unwrap();
    let elapsed_ms = t0.elapsed().as_millis() as i64;
    println!(
        "sole consumer at 10 Hz: {} frames forwarded in {elapsed_ms} ms (configured 50 Hz would give ~{})",
        f1 - f0,
        elapsed_ms / 20
    );
    assert!(
        f1 - f0 <= 2 + elapsed_ms / 100,
        "{} frames in {elapsed_ms} ms: above 10 Hz",
        f1 - f0
    );
    // the every-10th mapping keeps its policy; its rate gauge stays 0
    assert_eq!(rl_counter(&sys, "ratelimiter.rate-hz", EVERY_10), Some(0));
    // the consumer leaves: the configured 50 Hz is the fallback again
    drop(slow);
    let deadline = Instant::now() + DEADLINE;
    while rl_counter(&sys, "ratelimiter.rate-hz", RATE) != Some(RATE_HZ as i64) {
        assert!(
            Instant::now() < deadline,
            "the configured rate never came back"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let lines = rl.stop();
    assert!(counter(&lines, 1, "consumer_rate_changes") >= 2);
}

/// `tp decimator` is the rate limiter under the seed's name (../shared/SPECS.md): the same
/// command, flags and config validation.
#[test]
fn tp_decimator_is_the_rate_limiter_command() {
    let out = std::process::Command::new(TP)
        .args(["decimator", "--config", "/nonexistent/rate_limiter.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/rate_limiter.toml"), "{err}");
    let help = std::process::Command::new(TP)
        .args(["decimator", "--help"])
        .output()
        .unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--config"));
}
