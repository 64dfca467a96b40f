//! `bridge`: frames from a producer on host A through `tp bridge` (sender on A, receiver on
//! B) to a consumer on host B that reads every byte, next to raw Aeron UDP carrying the same
//! bytes between the same two hosts, in the same run. The two hosts are two network
//! namespaces joined by a veth pair; each runs its own `tp media-driver` and `tp driver`, and
//! its half of the bridge. Root and `ip` (iproute2) are needed: without them the benchmark
//! says why and reports nothing (it never fails for that).
//!
//! - 640 KiB frames: raw Aeron first (publisher flat out, `offer` of the whole message,
//!   fragmented by Aeron), then the bridge with its producer offered the rate raw Aeron
//!   delivered (a producer faster than the link would make the bridge drop frames half sent,
//!   which measures the overload, not the bridge). GB/s delivered, both; the CPU share of
//!   the bridge sender and receiver processes against the raw publisher and subscriber.
//! - 4 KiB frames at 10 kHz: one-way latency (commit stamp -> every byte read on B; same
//!   host, same `CLOCK_MONOTONIC`), raw Aeron against the bridge.
//!
//! Everything it creates (namespaces, veth pair, directories, processes) is removed by Drop
//! guards, on failure too.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::procs::{Proc, STARTUP, args, process_cpu_ns};
use super::report::{Figure, Target, conditions, s};
use super::{Output, Rig};
use crate::cmd::CmdError;

const BIG: usize = 640 * 1024;
const SMALL: usize = 4096;
const LATENCY_RATE: f64 = 10_000.0;
const BIG_SRC: u32 = 10_000;
const BIG_DST: u32 = 20_000;
const SMALL_SRC: u32 = 10_001;
const SMALL_DST: u32 = 20_001;
const ADDR_A: &str = "10.214.9.1";
const ADDR_B: &str = "10.214.9.2";
/// The veth pair's MTU: jumbo frames, so that one Aeron datagram (`mtu=8192` in
/// [`CHANNEL_PARAMS`]) is one IP packet.
const LINK_MTU: u32 = 9000;
/// Every UDP channel of the run (bridge payload and raw Aeron): Aeron MTU, socket buffers and
/// receiver window (within the hosts' `net.core.rmem_max` / `wmem_max` of 4 MiB, which the
/// benchmark reads and reports but never changes); term length Aeron's default (16 MiB).
const CHANNEL_PARAMS: &str = "mtu=8192|so-sndbuf=4m|so-rcvbuf=4m|rcv-wnd=4m";
/// The idle strategy of every measured process (bridge halves, producer, consumer, raw
/// publisher and subscriber): ten or so processes share 2 cores, so nobody busy-spins; parks
/// at most 100 us.
const IDLE: &str = "backoff:10,5,1us,100us";

/// Two network namespaces and the veth pair between them; removed on drop.
struct Net {
    a: String,
    b: String,
    veth_a: String,
}

fn ip(a: &[&str]) -> Result<(), CmdError> {
    let out = Command::new("ip")
        .args(a)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            a.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into())
    }
}

impl Net {
    fn create() -> Result<Self, CmdError> {
        let pid = std::process::id();
        let net = Self {
            a: format!("tpbencha{pid}"),
            b: format!("tpbenchb{pid}"),
            veth_a: format!("tpbva{pid}"),
        };
        let veth_b = format!("tpbvb{pid}");
        ip(&["netns", "add", &net.a])?;
        let mtu = LINK_MTU.to_string();
        let (a_cidr, b_cidr) = (format!("{ADDR_A}/24"), format!("{ADDR_B}/24"));
        let steps: [&[&str]; 12] = [
            &["netns", "add", &net.b],
            &[
                "link",
                "add",
                &net.veth_a,
                "type",
                "veth",
                "peer",
                "name",
                &veth_b,
            ],
            &["link", "set", &net.veth_a, "netns", &net.a],
            &["link", "set", &veth_b, "netns", &net.b],
            &["-n", &net.a, "link", "set", &net.veth_a, "mtu", &mtu],
            &["-n", &net.b, "link", "set", &veth_b, "mtu", &mtu],
            &["-n", &net.a, "addr", "add", &a_cidr, "dev", &net.veth_a],
            &["-n", &net.b, "addr", "add", &b_cidr, "dev", &veth_b],
            &["-n", &net.a, "link", "set", &net.veth_a, "up"],
            &["-n", &net.b, "link", "set", &veth_b, "up"],
            &["-n", &net.a, "link", "set", "lo", "up"],
            &["-n", &net.b, "link", "set", "lo", "up"],
        ];
        for step in steps {
            ip(step)?;
        }
        Ok(net)
    }

    /// A sysctl as seen inside namespace `ns`.
    fn sysctl(ns: &str, key: &str) -> String {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        Command::new("ip")
            .args(["netns", "exec", ns, "cat", &path])
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "?".into())
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // deleting a namespace deletes the veth end inside it, and so the pair; a pair still
        // in the root namespace (setup failed half way) is deleted by name
        let _ = ip(&["link", "del", &self.veth_a]);
        for ns in [&self.a, &self.b] {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// Why the benchmark cannot run here, if it cannot.
fn unavailable() -> Option<String> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        return Some("needs root (network namespaces and a veth pair)".into());
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("needs iproute2 (`ip`)".into());
    }
    None
}

/// One host: its namespace, directory (Aeron dir, SHM base, configuration), media driver and
/// SHM driver. Dropped in field order: the SHM driver, then the media driver, then the
/// directory.
struct Host {
    ns: String,
    driver: Option<Proc>,
    media: Option<Proc>,
    dir: PathBuf,
}

impl Host {
    fn start(rig: &mut Rig, name: &str, ns: &str) -> Result<Self, CmdError> {
        let dir = rig.scratch(&format!("bridge-{name}"));
        std::fs::create_dir_all(dir.join("shm"))?;
        let mut host = Self {
            ns: ns.to_owned(),
            driver: None,
            media: None,
            dir,
        };
        std::fs::write(host.config(), host.driver_toml(name))?;
        let aeron = host.aeron();
        let mut media = host.spawn(
            rig,
            &format!("{name}-media-driver"),
            &args(&[
                "media-driver",
                "--dir",
                &aeron,
                "--threading-mode",
                "shared",
                "--delete-dir-on-start",
            ]),
        )?;
        media.expect_line(STARTUP, |l| l.contains("running"))?;
        host.media = Some(media);
        let mut driver = host.spawn(
            rig,
            &format!("{name}-driver"),
            &args(&["driver", "--config", &host.config(), "--aeron-dir", &aeron]),
        )?;
        driver.expect_line(STARTUP, |l| l.contains("ready"))?;
        host.driver = Some(driver);
        Ok(host)
    }

    fn driver_toml(&self, name: &str) -> String {
        format!(
            r#"[driver]
instance_id = "bench-bridge-{name}"
aeron_dir = "{aeron}"
[shm]
base_dir = "{base}"
[policies]
epoch_gc_min_age_ns = 0
[profiles.big]
header_nslots = 32
payload_pools = [{{ pool_id = 1, stride_bytes = 1048576 }}]
[profiles.small]
header_nslots = 64
payload_pools = [{{ pool_id = 1, stride_bytes = 4096 }}]
[streams.big_src]
stream_id = {BIG_SRC}
profile = "big"
[streams.big_dst]
stream_id = {BIG_DST}
profile = "big"
[streams.small_src]
stream_id = {SMALL_SRC}
profile = "small"
[streams.small_dst]
stream_id = {SMALL_DST}
profile = "small"
"#,
            aeron = self.aeron(),
            base = self.shm()
        )
    }

    fn aeron(&self) -> String {
        self.dir.join("aeron").to_string_lossy().into_owned()
    }

    fn shm(&self) -> String {
        self.dir.join("shm").to_string_lossy().into_owned()
    }

    fn config(&self) -> String {
        self.dir.join("driver.toml").to_string_lossy().into_owned()
    }

    /// `ip netns exec <ns> tp args...`.
    fn spawn(&self, rig: &mut Rig, name: &str, a: &[String]) -> Result<Proc, CmdError> {
        let mut all = args(&["netns", "exec", &self.ns]);
        all.push(rig.exe().to_string_lossy().into_owned());
        all.extend_from_slice(a);
        rig.spawn_program(name, Path::new("ip"), &all)
    }

    /// A bench role in this host, driver mode where it takes one.
    fn role(&self, rig: &mut Rig, name: &str, a: &[&str]) -> Result<Proc, CmdError> {
        let mut all = args(&["bench-role"]);
        all.extend(args(a));
        all.extend(args(&["--aeron-dir", &self.aeron()]));
        self.spawn(rig, name, &all)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        drop(self.driver.take());
        drop(self.media.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn udp(port: u16) -> String {
    format!("aeron:udp?endpoint={ADDR_B}:{port}|{CHANNEL_PARAMS}")
}

/// Ports unique to this process (several runs on one machine do not collide; each
/// namespace pair is its own anyway).
fn base_port() -> u16 {
    41_000 + (std::process::id() % 1000) as u16 * 8
}

fn bridge_toml(port: u16) -> String {
    format!(
        r#"[bridge]
instance_id = "bench-bridge"
payload_channel = "{payload}"
payload_stream_id = 3000
control_channel = "aeron:udp?endpoint={ADDR_B}:{control}"
control_stream_id = 3001

[[mappings]]
source_stream_id = {BIG_SRC}
dest_stream_id = {BIG_DST}
profile = "big"

[[mappings]]
source_stream_id = {SMALL_SRC}
dest_stream_id = {SMALL_DST}
profile = "small"
"#,
        payload = udp(port),
        control = port + 1
    )
}

/// What one side (raw Aeron or the bridge) gave.
struct Side {
    /// The reader's result (accepted, latency histogram).
    reader: Value,
    /// The writer's result.
    writer: Value,
    /// % of one core, whole processes, over the window: (sender side, receiver side).
    cpu: (f64, f64),
    window_s: f64,
    /// The bridge's counters (sender's and receiver's, by name; empty for raw Aeron).
    counters: serde_json::Map<String, Value>,
}

impl Side {
    fn fps(&self) -> f64 {
        self.reader["accepted"]["measure"].as_f64().unwrap_or(0.0) / self.window_s.max(1e-9)
    }

    fn us(&self, q: &str) -> f64 {
        self.reader["latency_ns"][q].as_f64().unwrap_or(f64::NAN) / 1000.0
    }

    fn counter(&self, name: &str) -> f64 {
        self.counters
            .get(name)
            .and_then(Value::as_f64)
            .unwrap_or(f64::NAN)
    }
}

/// Stops a `tp bridge` (SIGTERM) and reads the counters it prints as it stops
/// (`name = value` lines), as `side.name`.
fn stop_bridge(p: &mut Proc, side: &str, into: &mut serde_json::Map<String, Value>) {
    p.stop();
    let deadline = Instant::now() + Duration::from_secs(2);
    while let Ok(line) = p.next_line(deadline) {
        if let Some((k, v)) = line.split_once(" = ")
            && let Ok(n) = v.trim().parse::<u64>()
        {
            into.insert(format!("{side}.{}", k.trim()), n.into());
        }
    }
}

/// Samples the CPU time of `pids` over the measured window (after `warmup`, for
/// `duration`); % of one core each.
fn cpu_over_window(pids: &[u32], warmup: f64, duration: f64) -> Result<Vec<f64>, CmdError> {
    std::thread::sleep(Duration::from_secs_f64(warmup));
    let t0 = Instant::now();
    let c0 = pids
        .iter()
        .map(|p| process_cpu_ns(*p))
        .collect::<Result<Vec<_>, _>>()?;
    std::thread::sleep(Duration::from_secs_f64(duration));
    let c1 = pids
        .iter()
        .map(|p| process_cpu_ns(*p))
        .collect::<Result<Vec<_>, _>>()?;
    let wall = t0.elapsed().as_secs_f64() * 1e9;
    Ok(c0
        .iter()
        .zip(&c1)
        .map(|(a, b)| 100.0 * b.saturating_sub(*a) as f64 / wall)
        .collect())
}

struct Bench<'a> {
    a: &'a Host,
    b: &'a Host,
    /// The bridge file both halves read.
    cfg: String,
    warmup: f64,
    duration: f64,
}

impl Bench<'_> {
    /// One half of the bridge in `host`, ready.
    fn bridge(&self, rig: &mut Rig, host: &Host, side: &str) -> Result<Proc, CmdError> {
        let mut p = host.spawn(
            rig,
            &format!("bridge-{side}"),
            &args(&[
                "bridge",
                "--config",
                &self.cfg,
                "--side",
                side,
                "--driver-config",
                &host.config(),
                "--aeron-dir",
                &host.aeron(),
                "--idle",
                IDLE,
            ]),
        )?;
        p.expect_line(STARTUP, |l| l.contains("tp bridge: ready"))?;
        Ok(p)
    }

    /// Raw Aeron UDP from A to B: `size`-byte messages at `rate` (0: flat out).
    fn raw(&self, rig: &mut Rig, size: usize, rate: f64, port: u16) -> Result<Side, CmdError> {
        let stream = rig.stream_id().to_string();
        let channel = udp(port);
        let mut sub = self.b.role(
            rig,
            "B-aeron-sub",
            &[
                "aeron-sub",
                "--channel",
                &channel,
                "--stream-id",
                &stream,
                "--idle",
                IDLE,
            ],
        )?;
        sub.expect_event("ready", STARTUP)?;
        let mut publisher = self.a.role(
            rig,
            "A-aeron-pub",
            &[
                "aeron-pub",
                "--channel",
                &channel,
                "--stream-id",
                &stream,
                "--size",
                &size.to_string(),
                "--rate",
                &rate.to_string(),
                "--warmup",
                &self.warmup.to_string(),
                "--duration",
                &self.duration.to_string(),
                "--idle",
                IDLE,
            ],
        )?;
        publisher.expect_event("ready", STARTUP)?;
        publisher.say("go")?;
        let pids = [publisher.pid().unwrap_or(0), sub.pid().unwrap_or(0)];
        let cpu = cpu_over_window(&pids, self.warmup, self.duration)?;
        let writer = publisher.expect_event("result", STARTUP)?;
        std::thread::sleep(Duration::from_millis(300));
        sub.close_stdin();
        let reader = sub.expect_event("result", STARTUP)?;
        publisher.close_stdin();
        publisher.wait(STARTUP)?;
        sub.wait(STARTUP)?;
        rig.record(json!({"measurement": "bridge: raw aeron udp", "frame_bytes": size, "rate": rate, "channel": channel, "publisher_report": writer, "subscriber_report": reader, "cpu_percent": cpu}));
        Ok(Side {
            reader,
            writer,
            cpu: (cpu[0], cpu[1]),
            window_s: self.duration,
            counters: serde_json::Map::new(),
        })
    }

    /// Producer on A (stream `src`) -> bridge -> consumer on B (stream `dst`).
    fn bridged(
        &self,
        rig: &mut Rig,
        (src, dst): (u32, u32),
        size: usize,
        rate: f64,
    ) -> Result<Side, CmdError> {
        let (b_cfg, b_shm, a_cfg, a_shm) =
            (self.b.config(), self.b.shm(), self.a.config(), self.a.shm());
        // a fresh bridge pair per measurement, so that its counters are this measurement's;
        // the receiver first: it binds the UDP endpoints
        let mut receiver = self.bridge(rig, self.b, "receiver")?;
        let mut sender = self.bridge(rig, self.a, "sender")?;
        let bridges = (sender.pid().unwrap_or(0), receiver.pid().unwrap_or(0));
        let mut consumer = self.b.role(
            rig,
            "B-consumer",
            &[
                "consumer",
                "--stream-id",
                &dst.to_string(),
                "--driver-config",
                &b_cfg,
                "--allowed-base-dir",
                &b_shm,
                "--idle",
                IDLE,
            ],
        )?;
        consumer.expect_event("ready", STARTUP)?;
        let mut producer = self.a.role(
            rig,
            "A-producer",
            &[
                "producer",
                "--stream-id",
                &src.to_string(),
                "--driver-config",
                &a_cfg,
                "--driver-base-dir",
                &a_shm,
                "--size",
                &size.to_string(),
                "--rate",
                &rate.to_string(),
                "--warmup",
                &self.warmup.to_string(),
                "--duration",
                &self.duration.to_string(),
                "--idle",
                IDLE,
            ],
        )?;
        producer.expect_event("ready", STARTUP)?;
        consumer.expect_event("mapped", STARTUP)?;
        producer.say("go")?;
        let cpu = cpu_over_window(&[bridges.0, bridges.1], self.warmup, self.duration)?;
        let writer = producer.expect_event("result", STARTUP)?;
        std::thread::sleep(Duration::from_millis(300));
        consumer.close_stdin();
        let reader = consumer.expect_event("result", STARTUP)?;
        let mut counters = serde_json::Map::new();
        stop_bridge(&mut sender, "sender", &mut counters);
        stop_bridge(&mut receiver, "receiver", &mut counters);
        producer.close_stdin();
        producer.wait(STARTUP)?;
        consumer.wait(STARTUP)?;
        rig.record(json!({"measurement": "bridge: tp bridge", "frame_bytes": size, "rate": rate, "producer_report": writer, "consumer_report": reader, "cpu_percent": cpu, "bridge_counters": counters}));
        let window_s = writer["window_ns"].as_f64().unwrap_or(0.0) / 1e9;
        Ok(Side {
            reader,
            writer,
            cpu: (cpu[0], cpu[1]),
            window_s,
            counters,
        })
    }
}

fn run_conditions(net: &Net, what: &str, frame: usize, rate: &str, window: f64) -> Value {
    let sysctls: Vec<String> = [
        "net.core.rmem_max",
        "net.core.wmem_max",
        "net.core.rmem_default",
        "net.core.wmem_default",
    ]
    .iter()
    .map(|k| format!("{k}={}", Net::sysctl(&net.a, k)))
    .collect();
    conditions(&[
        (
            "hosts",
            s(format!(
                "two network namespaces on this machine joined by a veth pair (MTU {LINK_MTU}), {ADDR_A} (A) and {ADDR_B} (B); each runs its own tp media-driver (shared threading, Aeron's default backoff idle) and tp driver"
            )),
        ),
        (
            "processes",
            s(format!(
                "bridge: producer (A, driver-attached) -> tp bridge --side sender (A) -> UDP -> tp bridge --side receiver (B) -> consumer (B, driver-attached); baseline: Aeron publisher (A) -> UDP -> Aeron subscriber (B); {what}"
            )),
        ),
        (
            "channel",
            s(format!(
                "every UDP channel: aeron:udp?endpoint={ADDR_B}:PORT|{CHANNEL_PARAMS} (term length: Aeron's default, 16 MiB); bridge chunks of mtu - 128 bytes, CRC32C off (the default); control channel UDP without parameters"
            )),
        ),
        (
            "sysctls",
            s(sysctls.join(", ") + " (inside the namespaces; unchanged)"),
        ),
        (
            "idle",
            s(format!(
                "every measured process and both bridge halves: {IDLE}"
            )),
        ),
        (
            "payload",
            s(
                "touched: the writer memcpy's every byte from a private source frame and stamps 24 bytes; the reader sums every byte (ours after recheck())",
            ),
        ),
        ("frame_bytes", json!(frame)),
        ("rate", s(rate)),
        ("window_s", json!(window)),
    ])
}

/// `tp bench bridge`.
pub fn run(rig: &mut Rig) -> Result<Output, CmdError> {
    if let Some(why) = unavailable() {
        eprintln!("tp bench bridge: skipped: {why}");
        rig.record(json!({"measurement": "bridge", "skipped": why}));
        return Ok(Output::default());
    }
    let (warmup, duration) = if rig.quick() { (0.2, 0.5) } else { (1.0, 5.0) };
    let net = match Net::create() {
        Ok(n) => n,
        Err(e) => {
            eprintln!("tp bench bridge: skipped: cannot create network namespaces: {e}");
            rig.record(json!({"measurement": "bridge", "skipped": e.to_string()}));
            return Ok(Output::default());
        }
    };
    let result = run_on(rig, &net, warmup, duration);
    drop(net);
    result
}

fn run_on(rig: &mut Rig, net: &Net, warmup: f64, duration: f64) -> Result<Output, CmdError> {
    let a = Host::start(rig, "A", &net.a)?;
    let b = Host::start(rig, "B", &net.b)?;
    let port = base_port();
    let cfg = a.dir.join("bridge.toml");
    std::fs::write(&cfg, bridge_toml(port))?;
    let bench = Bench {
        a: &a,
        b: &b,
        cfg: cfg.to_string_lossy().into_owned(),
        warmup,
        duration,
    };
    let mut out = Output::default();

    // 640 KiB: raw Aeron flat out, then the bridge offered what raw Aeron delivered, then
    // 90 % of it
    let raw = bench.raw(rig, BIG, 0.0, port + 2)?;
    let offered = raw.fps().max(10.0).round();
    let ours = bench.bridged(rig, (BIG_SRC, BIG_DST), BIG, offered)?;
    let offered90 = (0.9 * offered).round();
    let ours90 = bench.bridged(rig, (BIG_SRC, BIG_DST), BIG, offered90)?;
    let c = run_conditions(
        net,
        "640 KiB: raw Aeron's publisher flat out (offer, fragmented by Aeron; retried after back pressure), the bridge's producer offered the frame rate raw Aeron delivered",
        BIG,
        &format!("raw Aeron flat out; bridge producer {offered} frames/s"),
        duration,
    );
    let gbps = |side: &Side| side.fps() * BIG as f64 / 1e9;
    let committed = ours.writer["committed"]["measure"].as_f64().unwrap_or(0.0);
    let accepted = ours.reader["accepted"]["measure"].as_f64().unwrap_or(0.0);
    out.figures.extend([
        Figure::new(
            "bridge",
            "640 KiB: GB/s delivered A -> B",
            gbps(&ours),
            "GB/s",
        )
        .vs(gbps(&raw), "raw Aeron UDP, same link")
        .target(Target::RatioAtLeast(0.9))
        .with(&c),
        Figure::new(
            "bridge",
            "640 KiB: frames/s delivered A -> B",
            ours.fps(),
            "frames/s",
        )
        .vs(raw.fps(), "raw Aeron UDP, same link")
        .with(&c),
        Figure::new(
            "bridge",
            "640 KiB: committed frames not delivered",
            100.0 * (committed - accepted).max(0.0) / committed.max(1.0),
            "%",
        )
        .with(&c),
        Figure::new(
            "bridge",
            "640 KiB: CPU, sender side (tp bridge --side sender)",
            ours.cpu.0,
            "% of a core",
        )
        .vs(raw.cpu.0, "raw Aeron publisher process")
        .with(&c),
        Figure::new(
            "bridge",
            "640 KiB: CPU, receiver side (tp bridge --side receiver)",
            ours.cpu.1,
            "% of a core",
        )
        .vs(raw.cpu.1, "raw Aeron subscriber process")
        .with(&c),
    ]);
    // where the frames not delivered went (the bridge's own counters, whole measurement)
    for (name, what) in [
        ("sender.frames_sent", "frames the sender sent whole"),
        (
            "sender.send_drops",
            "frames the sender dropped: the payload publication refused a chunk (back pressure)",
        ),
        (
            "sender.send_window_skips",
            "frames the sender never sent: pending (window full), then superseded by a newer frame",
        ),
        (
            "sender.send_abandoned",
            "frames the sender abandoned: overwritten in the source ring while being sent or pending",
        ),
        (
            "receiver.assembly_timeouts",
            "frames the receiver dropped incomplete after the assembly timeout",
        ),
        (
            "receiver.frame_drops",
            "frames the receiver dropped (incomplete and evicted, conflict, ...)",
        ),
        (
            "receiver.frames_received",
            "frames the receiver committed on B",
        ),
    ] {
        out.figures.push(
            Figure::new(
                "bridge",
                format!("640 KiB: {what} ({name}, warm-up included)"),
                ours.counter(name),
                "frames",
            )
            .with(&c),
        );
    }
    let c90 = run_conditions(
        net,
        "640 KiB: the bridge's producer offered 90 % of the frame rate raw Aeron delivered",
        BIG,
        &format!("bridge producer {offered90} frames/s"),
        duration,
    );
    let committed90 = ours90.writer["committed"]["measure"]
        .as_f64()
        .unwrap_or(0.0);
    let accepted90 = ours90.reader["accepted"]["measure"].as_f64().unwrap_or(0.0);
    out.figures.extend([
        Figure::new(
            "bridge",
            "640 KiB, 90 % of raw Aeron's rate offered: GB/s delivered A -> B",
            gbps(&ours90),
            "GB/s",
        )
        .vs(gbps(&raw), "raw Aeron UDP, same link, flat out")
        .with(&c90),
        Figure::new(
            "bridge",
            "640 KiB, 90 % offered: committed frames not delivered",
            100.0 * (committed90 - accepted90).max(0.0) / committed90.max(1.0),
            "%",
        )
        .with(&c90),
        Figure::new(
            "bridge",
            "640 KiB, 90 % offered: frames the sender dropped on back pressure (send_drops)",
            ours90.counter("sender.send_drops"),
            "frames",
        )
        .with(&c90),
        Figure::new(
            "bridge",
            "640 KiB, 90 % offered: pending frames superseded, window full (send_window_skips)",
            ours90.counter("sender.send_window_skips"),
            "frames",
        )
        .with(&c90),
    ]);

    // 4 KiB at 10 kHz: one-way latency
    let raw = bench.raw(rig, SMALL, LATENCY_RATE, port + 3)?;
    let ours = bench.bridged(rig, (SMALL_SRC, SMALL_DST), SMALL, LATENCY_RATE)?;
    let c = run_conditions(
        net,
        "4 KiB at a fixed 10 kHz, one message / frame each; one-way latency from the commit stamp (CLOCK_MONOTONIC, same machine) to every byte read on B",
        SMALL,
        "10000 frames/s, fixed",
        duration,
    );
    for (q, target) in [
        ("p50", Some(Target::RatioAtMost(1.3))),
        ("p99", None),
        ("p99_9", None),
    ] {
        let mut f = Figure::new(
            "bridge",
            format!("4 KiB 10 kHz: {} one-way A -> B", q.replace('_', ".")),
            ours.us(q),
            "us",
        )
        .vs(raw.us(q), "raw Aeron UDP, same link");
        if let Some(t) = target {
            f = f.target(t);
        }
        out.figures.push(f.with(&c));
    }
    let committed = ours.writer["committed"]["measure"].as_f64().unwrap_or(0.0);
    let accepted = ours.reader["accepted"]["measure"].as_f64().unwrap_or(0.0);
    out.figures.push(
        Figure::new(
            "bridge",
            "4 KiB 10 kHz: committed frames not delivered",
            (committed - accepted).max(0.0),
            "frames",
        )
        .with(&c),
    );
    drop(b);
    drop(a);
    Ok(out)
}
