//! `tp bridge` as real processes: `tp produce` writes a source stream through the SHM
//! driver of host A, the bridge sends it over Aeron UDP, and the bridge on host B
//! re-materializes it into a driver-attached destination stream that `tp consume --verify`
//! reads; every frame B accepts has the right bytes (seq + CRC32C of each payload).
//!
//! Two layouts: both halves on one host over the loopback (one media driver, one SHM
//! driver), and two hosts as two network namespaces joined by a veth pair, each with its own
//! `tp media-driver` and `tp driver` (root only; skipped with a message otherwise). Every
//! name is unique per test process, and the namespaces, links and directories are removed by
//! Drop guards, on failure too. Every wait has a deadline.
//!
//! Also across namespaces: a source restart and a receiver restart (Bridge Spec §8), and a
//! faulty link (nftables loss plus the UDP fault proxy of `common/fault_proxy.rs`, which
//! delays, reorders and duplicates datagrams) on reliable and `reliable=false` channels.

#[path = "common/fault_proxy.rs"]
mod fault_proxy;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(30);
const SOURCE: u32 = 10_000;
const DEST: u32 = 20_000;
const DEST2: u32 = DEST + 1;
/// The third stream of the chain A -> B -> C.
const CHAIN: u32 = 30_000;

#[path = "common/proc.rs"]
mod proc;
use proc::Proc;

/// Starts `spawn()` again until it prints `ready`: a process restarted after a SIGKILL is
/// refused by its SHM driver until the killed one's lease expires (Driver Model §4.1).
fn spawn_until_ready(ready: &str, spawn: impl Fn() -> Proc) -> Proc {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let mut p = spawn();
        if p.ready_or_exit(ready, deadline) {
            return p;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One host: its directory (SHM base, Aeron dir, configs), media driver and SHM driver.
struct Host {
    ns: Option<String>,
    dir: PathBuf,
    aeron: PathBuf,
    driver_config: PathBuf,
    // dropped in reverse: the SHM driver before its media driver
    driver: Option<Proc>,
    media: Option<Proc>,
}

impl Host {
    fn start(name: &str, ns: Option<&str>) -> Self {
        Self::start_with(name, ns, "")
    }

    /// [`Host::start`] with `extra` lines appended to the driver's configuration (an
    /// embedded `[supervisor]`, for instance).
    fn start_with(name: &str, ns: Option<&str>, extra: &str) -> Self {
        let dir = PathBuf::from(format!("/dev/shm/tp-bridge-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let aeron = dir.join("aeron");
        let driver_config = dir.join("driver.toml");
        std::fs::write(
            &driver_config,
            format!(
                r#"[driver]
instance_id = "bridge-test-{name}"
control_channel = "aeron:ipc?term-length=1m"
announce_stream_id = 1001
aeron_dir = "{aeron}"
[shm]
base_dir = "{base}"
[policies]
epoch_gc_min_age_ns = 0
prefault_shm = false
lease_keepalive_interval_ms = 200
lease_expiry_grace_intervals = 3
[profiles.cam]
header_nslots = 64
payload_pools = [{{ pool_id = 1, stride_bytes = 4096 }}]
[streams.source]
stream_id = {SOURCE}
profile = "cam"
[streams.dest]
stream_id = {DEST}
profile = "cam"
[streams.dest2]
stream_id = {DEST2}
profile = "cam"
[streams.chain]
stream_id = {CHAIN}
profile = "cam"
{extra}
"#,
                aeron = aeron.display(),
                base = dir.join("shm").display()
            ),
        )
        .unwrap();
        let mut host = Self {
            ns: ns.map(str::to_owned),
            dir,
            aeron,
            driver_config,
            driver: None,
            media: None,
        };
        let aeron_s = host.aeron.to_str().unwrap().to_owned();
        // a SIGKILLed client's subscriptions hold their images back (flow control) until
        // the media driver declares the client dead: 2 s here instead of Aeron's 10 s
        let mut media = Proc::spawn_env(
            &format!("{name}/media-driver"),
            ns,
            &[
                "media-driver",
                "--dir",
                &aeron_s,
                "--delete-dir-on-start",
                "--delete-dir-on-shutdown",
            ],
            &[("AERON_CLIENT_LIVENESS_TIMEOUT", "2000000000")],
        );
        media.expect("media driver running", |l| l.contains(&aeron_s));
        host.media = Some(media);
        let cfg = host.driver_config.to_str().unwrap().to_owned();
        let mut driver = Proc::spawn(
            &format!("{name}/driver"),
            ns,
            &[
                "driver",
                "--config",
                &cfg,
                "--aeron-dir",
                &aeron_s,
                "--idle",
                "sleep:1ms",
            ],
        );
        driver.expect("driver ready", |l| l.contains("ready"));
        host.driver = Some(driver);
        host
    }

    fn tp(&self, name: &str, args: &[&str]) -> Proc {
        let mut all: Vec<&str> = args.to_vec();
        let cfg = self.driver_config.to_str().unwrap();
        let aeron = self.aeron.to_str().unwrap();
        all.extend(["--driver-config", cfg, "--aeron-dir", aeron]);
        Proc::spawn(name, self.ns.as_deref(), &all)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        drop(self.driver.take());
        drop(self.media.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn bridge_config(dir: &Path, receiver_ip: &str, port: u16, crc: bool) -> PathBuf {
    let path = dir.join(format!("bridge-{port}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"[bridge]
instance_id = "bridge-test"
payload_channel = "aeron:udp?endpoint={receiver_ip}:{port}"
payload_stream_id = 3000
control_channel = "aeron:udp?endpoint={receiver_ip}:{}"
control_stream_id = 3001
metadata_channel = "aeron:udp?endpoint={receiver_ip}:{}"
metadata_stream_id = 3002
mtu_bytes = 1408
integrity_crc32c = {crc}
assembly_timeout_ms = 250

[[mappings]]
source_stream_id = {SOURCE}
dest_stream_id = {DEST}
profile = "cam"
"#,
            port + 1,
            port + 2
        ),
    )
    .unwrap();
    path
}

fn last_json(lines: &[String]) -> serde_json::Value {
    let line = lines
        .iter()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON summary: {lines:?}"));
    serde_json::from_str(line).unwrap()
}

/// A port pair unique to this test process.
fn ports(salt: u16) -> u16 {
    20_000 + ((std::process::id() % 3_000) as u16) * 12 + salt * 3
}

/// Produce on `a`, consume on `b`, bridge sender on `a` and receiver on `b` (one process
/// when `a` and `b` are the same host).
fn run_bridge(a: &Host, b: Option<&Host>, receiver_ip: &str, port: u16, crc: bool) {
    let cfg = bridge_config(&a.dir, receiver_ip, port, crc);
    let cfg_s = cfg.to_str().unwrap().to_owned();
    let mut bridges = Vec::new();
    match b {
        None => {
            let mut p = a.tp(
                "bridge",
                &["bridge", "--config", &cfg_s, "--idle", "sleep:100us"],
            );
            p.expect("bridge ready", |l| l.contains("tp bridge: ready"));
            bridges.push(p);
        }
        Some(b) => {
            // the receiver first: it binds the UDP endpoints
            let mut r = b.tp(
                "B/bridge",
                &[
                    "bridge",
                    "--config",
                    &cfg_s,
                    "--side",
                    "receiver",
                    "--idle",
                    "sleep:100us",
                ],
            );
            r.expect("receiver ready", |l| l.contains("tp bridge: ready"));
            let mut s = a.tp(
                "A/bridge",
                &[
                    "bridge",
                    "--config",
                    &cfg_s,
                    "--side",
                    "sender",
                    "--idle",
                    "sleep:100us",
                ],
            );
            s.expect("sender ready", |l| l.contains("tp bridge: ready"));
            bridges.push(r);
            bridges.push(s);
        }
    }
    let dest = b.unwrap_or(a);
    let dest_s = DEST.to_string();
    let source_s = SOURCE.to_string();
    let mut consumer = dest.tp(
        "B/consume",
        &[
            "consume",
            "--stream-id",
            &dest_s,
            "--verify",
            "--json",
            "--count",
            "200",
        ],
    );
    let mut producer = a.tp(
        "A/produce",
        &[
            "produce",
            "--stream-id",
            &source_s,
            "--size",
            "3000",
            "--rate",
            "200",
            "--count",
            "4000",
        ],
    );
    let (ok, lines) = consumer.finish();
    let counters: Vec<String> = bridges.iter_mut().flat_map(|b| b.stop()).collect();
    drop(producer.stop());
    assert!(ok, "consume failed: {lines:?}\nbridge: {counters:?}");
    let j = last_json(&lines);
    assert!(j["accepted"].as_u64().unwrap() >= 200, "{j}");
    assert_eq!(
        j["corrupt"], 0,
        "every accepted frame has the right bytes: {j}"
    );
    let get = |name: &str| -> u64 {
        counters
            .iter()
            .filter_map(|l| l.strip_prefix(&format!("{name} = ")))
            .map(|v| v.trim().parse::<u64>().unwrap())
            .sum()
    };
    assert!(get("frames_sent") >= 200, "{counters:?}");
    assert!(get("frames_received") >= 200, "{counters:?}");
    assert!(get("announces_forwarded") >= 1, "{counters:?}");
    assert_eq!(get("header_drops"), 0, "{counters:?}");
}

#[test]
fn br_frames_cross_the_bridge_over_loopback_udp_with_the_right_bytes() {
    let a = Host::start("loop", None);
    run_bridge(&a, None, "127.0.0.1", ports(0), true);
}

/// Two network namespaces and the veth pair between them; removed on drop.
struct Netns {
    a: String,
    b: String,
    veth: String,
}

impl Netns {
    fn create() -> Option<Self> {
        let ok = |args: &[&str]| {
            Command::new("ip")
                .args(args)
                .output()
                .is_ok_and(|o: Output| o.status.success())
        };
        let pid = std::process::id();
        let n = Self {
            a: format!("tpbra{pid}"),
            b: format!("tpbrb{pid}"),
            veth: format!("tpva{pid}"),
        };
        let (va, vb) = (format!("tpva{pid}"), format!("tpvb{pid}"));
        if !ok(&["netns", "add", &n.a]) {
            return None;
        }
        let steps: [&[&str]; 10] = [
            &["netns", "add", &n.b],
            &["link", "add", &va, "type", "veth", "peer", "name", &vb],
            &["link", "set", &va, "netns", &n.a],
            &["link", "set", &vb, "netns", &n.b],
            &["-n", &n.a, "addr", "add", "10.213.7.1/24", "dev", &va],
            &["-n", &n.b, "addr", "add", "10.213.7.2/24", "dev", &vb],
            &["-n", &n.a, "link", "set", &va, "up"],
            &["-n", &n.b, "link", "set", &vb, "up"],
            &["-n", &n.a, "link", "set", "lo", "up"],
            &["-n", &n.b, "link", "set", "lo", "up"],
        ];
        for s in steps {
            assert!(ok(s), "ip {s:?} failed");
        }
        Some(n)
    }
}

impl Netns {
    /// Drops `percent` % of the UDP datagrams host A sends (nftables, in A's namespace);
    /// `None` if nft is missing.
    fn lossy(&self, percent: u32) -> Option<()> {
        let nft = |args: &[&str]| {
            Command::new("ip")
                .args(["netns", "exec", &self.a, "nft"])
                .args(args)
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if !nft(&["add", "table", "inet", "tploss"]) {
            return None;
        }
        assert!(nft(&[
            "add chain inet tploss out { type filter hook output priority 0 ; }"
        ]));
        let rule = format!(
            "add rule inet tploss out meta l4proto udp numgen random mod 100 < {percent} counter drop"
        );
        assert!(nft(&[&rule]));
        Some(())
    }

    /// Datagrams the loss rule dropped so far.
    fn dropped(&self) -> u64 {
        let out = Command::new("ip")
            .args([
                "netns", "exec", &self.a, "nft", "list", "table", "inet", "tploss",
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace()
            .skip_while(|w| *w != "packets")
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // deleting a namespace deletes the veth end inside it, and so the pair; a pair
        // still in the root namespace (setup failed half way) is deleted by name
        let _ = Command::new("ip")
            .args(["link", "del", &self.veth])
            .output();
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

#[test]
fn br_frames_cross_the_bridge_between_two_network_namespaces_with_the_right_bytes() {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let has_ip = Command::new("ip").arg("-V").output().is_ok();
    if !root || !has_ip {
        println!("skipped: needs root and iproute2 (ip netns)");
        return;
    }
    let Some(net) = Netns::create() else {
        println!("skipped: ip netns add failed (no CAP_SYS_ADMIN?)");
        return;
    };
    let a = Host::start("A", Some(&net.a));
    let b = Host::start("B", Some(&net.b));
    run_bridge(&a, Some(&b), "10.213.7.2", ports(1), true);
    drop(b);
    drop(a);
    drop(net);
}

/// Bridge Spec §4: the receiver attaches as the destination's exclusive producer; when
/// another producer holds the stream it fails at startup naming the stream. With
/// `dest_stream_id = 0` it takes the first id of `dest_stream_id_range` the driver grants
/// (here the held one is skipped).
#[test]
fn br_4_receiver_is_the_exclusive_producer_of_its_destination() {
    let host = Host::start("excl", None);
    let dest_s = DEST.to_string();
    let mut holder = Proc::spawn(
        "holder",
        None,
        &[
            "driver",
            "attach",
            "--config",
            host.driver_config.to_str().unwrap(),
            "--aeron-dir",
            host.aeron.to_str().unwrap(),
            "--role",
            "producer",
            "--stream-id",
            &dest_s,
            "--hold",
        ],
    );
    holder.expect("attached", |l| l.starts_with("attached"));
    let port = ports(2);
    let cfg = bridge_config(&host.dir, "127.0.0.1", port, false);
    let with_range = |name: &str, end: u32| {
        let text = std::fs::read_to_string(&cfg)
            .unwrap()
            .replace(&format!("dest_stream_id = {DEST}"), "dest_stream_id = 0")
            .replace(
                "assembly_timeout_ms = 250",
                &format!("assembly_timeout_ms = 250\ndest_stream_id_range = \"{DEST}-{end}\""),
            );
        let path = host.dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    // the only id is held: the receiver fails at startup naming the stream
    let only_held = with_range("only-held.toml", DEST);
    let mut refused = host.tp(
        "bridge",
        &["bridge", "--config", &only_held, "--side", "receiver"],
    );
    let (ok, lines) = refused.finish();
    assert!(!ok, "a second producer of {DEST} must not start: {lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("destination stream {DEST}"))
                && l.contains("already has a producer")),
        "{lines:?}"
    );
    // the range starts at the held id: the next one is granted
    let alloc = with_range("alloc.toml", DEST2);
    let mut b = host.tp(
        "bridge",
        &["bridge", "--config", &alloc, "--side", "receiver"],
    );
    b.expect("ready", |l| l.contains("tp bridge: ready"));
    assert!(
        b.seen
            .iter()
            .any(|l| l.contains(&format!("destinations [{DEST2}]"))),
        "{:?}",
        b.seen
    );
    drop(b);
    drop(holder);
}

/// On a link that drops 5 % of the sender host's datagrams (nftables), Aeron's
/// retransmissions and the bridge's loss rules still never let a wrong byte through: every
/// frame the destination accepts verifies, and frames keep flowing.
#[test]
fn br_5_3_a_lossy_link_never_delivers_a_wrong_byte() {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root || Command::new("ip").arg("-V").output().is_err() {
        println!("skipped: needs root and iproute2 (ip netns)");
        return;
    }
    let Some(net) = Netns::create() else {
        println!("skipped: ip netns add failed (no CAP_SYS_ADMIN?)");
        return;
    };
    if net.lossy(5).is_none() {
        println!("skipped: nft (nftables) not available");
        return;
    }
    let a = Host::start("A", Some(&net.a));
    let b = Host::start("B", Some(&net.b));
    run_bridge(&a, Some(&b), "10.213.7.2", ports(3), true);
    let dropped = net.dropped();
    println!("the lossy link dropped {dropped} datagrams");
    assert!(dropped > 0, "the link dropped nothing");
    drop(b);
    drop(a);
    drop(net);
}

// ---------------------------------------------------------------------------------------
// Restarts, faults, chains, multicast (issue 16 item 5)
// ---------------------------------------------------------------------------------------

fn root_with_ip() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root || Command::new("ip").arg("-V").output().is_err() {
        println!("skipped: needs root and iproute2 (ip netns)");
        return false;
    }
    true
}

/// The sum of counter `name` over the `name = value` lines `tp bridge` prints when it stops.
fn counter(lines: &[String], name: &str) -> u64 {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix(&format!("{name} = ")))
        .map(|v| v.trim().parse::<u64>().unwrap())
        .sum()
}

fn bridge_proc(host: &Host, name: &str, cfg: &Path, side: &str) -> Proc {
    let cfg = cfg.to_str().unwrap();
    host.tp(
        name,
        &[
            "bridge",
            "--config",
            cfg,
            "--side",
            side,
            "--idle",
            "sleep:100us",
        ],
    )
}

fn start_bridge(host: &Host, name: &str, cfg: &Path, side: &str) -> Proc {
    let mut p = bridge_proc(host, name, cfg, side);
    p.expect("bridge ready", |l| l.contains("tp bridge: ready"));
    p
}

fn consume(host: &Host, name: &str, stream: u32, count: u64) -> Proc {
    let (stream, count) = (stream.to_string(), count.to_string());
    host.tp(
        name,
        &[
            "consume",
            "--stream-id",
            &stream,
            "--verify",
            "--json",
            "--count",
            &count,
        ],
    )
}

/// `tp produce` of 3000-byte frames at 200 Hz (3 chunks each at MTU 1408).
fn produce(host: &Host, name: &str) -> Proc {
    let source = SOURCE.to_string();
    host.tp(
        name,
        &[
            "produce",
            "--stream-id",
            &source,
            "--size",
            "3000",
            "--rate",
            "200",
            "--count",
            "100000",
        ],
    )
}

const PRODUCE_READY: &str = "tp produce: stream";

/// Waits for the consumer's exit; it succeeded, accepted at least `min` frames and every
/// one verified (seq and CRC32C of its payload). Returns its summary.
fn verified(consumer: &mut Proc, min: u64, context: &[String]) -> serde_json::Value {
    let (ok, lines) = consumer.finish();
    assert!(ok, "consume failed: {lines:?}\ncontext: {context:?}");
    let j = last_json(&lines);
    assert!(j["accepted"].as_u64().unwrap() >= min, "{j}");
    assert_eq!(
        j["corrupt"], 0,
        "every accepted frame has the right bytes: {j}"
    );
    j
}

/// Two namespaces A and B, a host in each (dropped before the namespaces).
struct TwoHosts {
    b: Host,
    a: Host,
    net: Netns,
}

fn two_hosts() -> Option<TwoHosts> {
    if !root_with_ip() {
        return None;
    }
    let Some(net) = Netns::create() else {
        println!("skipped: ip netns add failed (no CAP_SYS_ADMIN?)");
        return None;
    };
    let a = Host::start("A", Some(&net.a));
    let b = Host::start("B", Some(&net.b));
    Some(TwoHosts { b, a, net })
}

const B_IP: &str = "10.213.7.2";

/// Bridge Spec §8: the source producer is SIGKILLed and restarted, so the source stream
/// moves to a new epoch (its seq restarts at 0). The receiver drops what was in flight,
/// moves the destination to a new local epoch (a fresh attach: seq restarts) and frames
/// resume there with the source's seq; the remote consumer follows the destination's epoch
/// change and every frame it accepts verifies.
#[test]
fn br_8_a_source_restart_moves_the_destination_to_a_new_epoch_and_frames_resume() {
    let Some(h) = two_hosts() else { return };
    let cfg = bridge_config(&h.a.dir, B_IP, 40_100, true);
    let mut r = start_bridge(&h.b, "B/bridge", &cfg, "receiver");
    let mut s = start_bridge(&h.a, "A/bridge", &cfg, "sender");
    let mut consumer = consume(&h.b, "B/consume", DEST, 400);
    let mut p1 = produce(&h.a, "A/produce-1");
    consumer.wait_accepted(100);
    p1.kill9();
    let mut p2 = spawn_until_ready(PRODUCE_READY, || produce(&h.a, "A/produce-2"));
    let j = verified(&mut consumer, 400, &[]);
    drop(p2.stop());
    drop(s.stop());
    let rc = r.stop();
    println!("consumer: {j}");
    assert!(counter(&rc, "source_epoch_changes") >= 1, "{rc:?}");
    assert!(counter(&rc, "dest_remaps") >= 1, "{rc:?}");
    assert_eq!(counter(&rc, "header_drops"), 0, "{rc:?}");
}

/// The receiving host's `tp bridge` is SIGKILLed and restarted (after its destination lease
/// expired, it attaches again: a new destination epoch, Bridge Spec §8); frames resume on
/// the destination and every frame the consumer there accepts verifies.
#[test]
fn br_8_a_receiver_restart_resumes_frames_on_the_destination() {
    let Some(h) = two_hosts() else { return };
    let cfg = bridge_config(&h.a.dir, B_IP, 40_100, true);
    let mut r1 = start_bridge(&h.b, "B/bridge-1", &cfg, "receiver");
    let mut s = start_bridge(&h.a, "A/bridge", &cfg, "sender");
    let mut consumer = consume(&h.b, "B/consume", DEST, 400);
    let mut p = produce(&h.a, "A/produce");
    consumer.wait_accepted(100);
    r1.kill9();
    let mut r2 = spawn_until_ready("tp bridge: ready", || {
        bridge_proc(&h.b, "B/bridge-2", &cfg, "receiver")
    });
    let j = verified(&mut consumer, 400, &[]);
    drop(p.stop());
    let sc = s.stop();
    let rc = r2.stop();
    println!("consumer: {j}");
    assert!(counter(&rc, "frames_received") >= 1, "{rc:?}");
    assert!(counter(&sc, "frames_sent") >= 400, "{sc:?}");
}

/// The sending host's `tp bridge` is SIGKILLed and restarted: the source epoch is
/// unchanged, the new sender's publication is a new image on the receiver, and frames
/// resume on the destination with their source seq; every accepted frame verifies.
#[test]
fn br_8_a_sender_restart_resumes_frames_on_the_destination() {
    let Some(h) = two_hosts() else { return };
    let cfg = bridge_config(&h.a.dir, B_IP, 40_100, true);
    let mut r = start_bridge(&h.b, "B/bridge", &cfg, "receiver");
    let mut s1 = start_bridge(&h.a, "A/bridge-1", &cfg, "sender");
    let mut consumer = consume(&h.b, "B/consume", DEST, 400);
    let mut p = produce(&h.a, "A/produce");
    consumer.wait_accepted(100);
    s1.kill9();
    let mut s2 = start_bridge(&h.a, "A/bridge-2", &cfg, "sender");
    let j = verified(&mut consumer, 400, &[]);
    drop(p.stop());
    let sc = s2.stop();
    let rc = r.stop();
    println!("consumer: {j}");
    assert!(counter(&sc, "frames_sent") >= 1, "{sc:?}");
    assert!(counter(&rc, "frames_received") >= 400, "{rc:?}");
    assert_eq!(counter(&rc, "seq_behind_drops"), 0, "{rc:?}");
}

/// nftables drops 5 % of host A's datagrams and the fault proxy (in A, on the payload
/// channel) delays every datagram 5 ms, reorders 5 % and duplicates 1 %. Every frame the
/// remote consumer accepts verifies; a frame missing a chunk is dropped alone (the frames
/// the receiver lost are at most the datagrams the link lost, plus what was in flight at
/// the stop); with `reliable=false` (Aeron does not repair the losses) the incomplete
/// frames are counted as assembly timeouts (or evictions, when more than 4 are incomplete).
fn faulty_link(reliable: bool) {
    let Some(h) = two_hosts() else { return };
    if h.net.lossy(5).is_none() {
        println!("skipped: nft (nftables) not available");
        return;
    }
    let port = 40_200;
    let proxy_port = 40_210;
    let cfg = bridge_config(&h.b.dir, B_IP, port, true);
    let text = std::fs::read_to_string(&cfg).unwrap();
    let rel = if reliable { "" } else { "|reliable=false" };
    let direct = format!("aeron:udp?endpoint={B_IP}:{port}");
    // 100 ms (the low end of §5.3a's range): at 200 frames/s and this loss rate, fewer than
    // the 4 assembly slots are incomplete within one timeout, so most incomplete frames
    // time out rather than being evicted by a fifth
    let text = text.replace("assembly_timeout_ms = 250", "assembly_timeout_ms = 100");
    let receiver_text = text.replace(&direct, &format!("{direct}{rel}"));
    std::fs::write(&cfg, &receiver_text).unwrap();
    let sender_cfg = h.a.dir.join("bridge-proxied.toml");
    std::fs::write(
        &sender_cfg,
        text.replace(
            &direct,
            &format!("aeron:udp?endpoint=10.213.7.1:{proxy_port}{rel}"),
        ),
    )
    .unwrap();
    let proxy = fault_proxy::FaultProxy::start(
        Some(&h.net.a),
        format!("10.213.7.1:{proxy_port}").parse().unwrap(),
        format!("{B_IP}:{port}").parse().unwrap(),
        fault_proxy::Faults {
            reorder_pct: 5,
            duplicate_pct: 1,
            delay: Duration::from_millis(5),
        },
    )
    .expect("fault proxy");
    let mut r = start_bridge(&h.b, "B/bridge", &cfg, "receiver");
    let mut s = start_bridge(&h.a, "A/bridge", &sender_cfg, "sender");
    let mut consumer = consume(&h.b, "B/consume", DEST, 300);
    let mut p = produce(&h.a, "A/produce");
    let j = verified(&mut consumer, 300, &[]);
    drop(p.stop());
    let sc = s.stop();
    let rc = r.stop();
    let dropped = h.net.dropped();
    let st = &proxy.stats;
    let (fwd, reo, dup) = (
        st.forwarded.load(std::sync::atomic::Ordering::Relaxed),
        st.reordered.load(std::sync::atomic::Ordering::Relaxed),
        st.duplicated.load(std::sync::atomic::Ordering::Relaxed),
    );
    drop(proxy);
    let (sent, received) = (counter(&sc, "frames_sent"), counter(&rc, "frames_received"));
    let timeouts = counter(&rc, "assembly_timeouts");
    println!(
        "reliable={reliable}: link dropped {dropped} datagrams; proxy forwarded {fwd}, \
         reordered {reo}, duplicated {dup}; frames sent {sent}, received {received}, \
         assembly timeouts {timeouts}, frame drops {}; consumer {j}",
        counter(&rc, "frame_drops")
    );
    assert!(dropped > 0, "the link dropped nothing");
    assert!(
        reo > 0 && dup > 0,
        "the proxy reordered {reo}, duplicated {dup}"
    );
    assert_eq!(counter(&rc, "header_drops"), 0, "{rc:?}");
    // a lost datagram loses at most its own frame; in flight at the stop: a few frames
    assert!(
        sent.saturating_sub(received) <= dropped + 20,
        "sent {sent}, received {received}, link dropped {dropped}"
    );
    if !reliable {
        // frames incomplete for good: timed out, or evicted when all 4 slots were incomplete
        assert!(timeouts >= 1, "incomplete frames time out: {rc:?}");
        assert!(
            timeouts + counter(&rc, "frame_drops") >= sent.saturating_sub(received + 20),
            "every frame not received was dropped and counted: {rc:?}"
        );
    }
}

#[test]
fn br_5_3_a_lossy_reordering_duplicating_link_never_delivers_a_wrong_byte_reliable() {
    faulty_link(true);
}

#[test]
fn br_5_3a_lossy_reordering_duplicating_unreliable_link_times_out_incomplete_frames() {
    faulty_link(false);
}

/// Namespaces on one Ethernet segment: a Linux bridge device in a switch namespace and a
/// veth pair from each host namespace to it; a multicast route in each host. Removed on
/// drop (deleting a namespace deletes the veth ends inside it, and so the pairs).
struct Lan {
    subnet: String,
    switch: String,
    hosts: Vec<String>,
    links: Vec<String>,
}

impl Lan {
    fn create(n: usize, subnet: &str) -> Option<Self> {
        let ok = |args: &[&str]| {
            Command::new("ip")
                .args(args)
                .output()
                .is_ok_and(|o| o.status.success())
        };
        let pid = std::process::id();
        let switch = format!("tpsw{pid}");
        if !ok(&["netns", "add", &switch]) {
            return None;
        }
        let mut lan = Self {
            subnet: subnet.to_owned(),
            switch,
            hosts: Vec::new(),
            links: Vec::new(),
        };
        let sw = lan.switch.clone();
        let br: [&[&str]; 2] = [
            &[
                "-n",
                &sw,
                "link",
                "add",
                "br0",
                "type",
                "bridge",
                "mcast_snooping",
                "0",
            ],
            &["-n", &sw, "link", "set", "br0", "up"],
        ];
        for s in br {
            assert!(ok(s), "ip {s:?} failed");
        }
        for i in 0..n {
            let ns = format!("tplan{i}x{pid}");
            let (h, s) = (format!("tph{i}{pid}"), format!("tps{i}{pid}"));
            assert!(ok(&["netns", "add", &ns]), "ip netns add {ns}");
            lan.hosts.push(ns.clone());
            lan.links.push(h.clone());
            let addr = format!("{}/24", lan.ip(i));
            let steps: [&[&str]; 10] = [
                &["link", "add", &h, "type", "veth", "peer", "name", &s],
                &["link", "set", &h, "netns", &ns],
                &["link", "set", &s, "netns", &sw],
                &["-n", &sw, "link", "set", &s, "master", "br0"],
                &["-n", &sw, "link", "set", &s, "up"],
                &["-n", &ns, "addr", "add", &addr, "dev", &h],
                &["-n", &ns, "link", "set", &h, "up"],
                &["-n", &ns, "link", "set", "lo", "up"],
                &["-n", &ns, "route", "add", "224.0.0.0/4", "dev", &h],
                &["-n", &ns, "link", "set", &h, "multicast", "on"],
            ];
            for st in steps {
                assert!(ok(st), "ip {st:?} failed");
            }
        }
        Some(lan)
    }

    fn ip(&self, i: usize) -> String {
        format!("{}.{}", self.subnet, i + 1)
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for l in &self.links {
            let _ = Command::new("ip").args(["link", "del", l]).output();
        }
        for ns in self.hosts.iter().chain([&self.switch]) {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// Hosts on a [`Lan`] (dropped before it).
struct LanHosts {
    hosts: Vec<Host>,
    lan: Lan,
}

fn lan_hosts(names: &[&str], subnet: &str) -> Option<LanHosts> {
    if !root_with_ip() {
        return None;
    }
    let Some(lan) = Lan::create(names.len(), subnet) else {
        println!("skipped: ip netns add failed (no CAP_SYS_ADMIN?)");
        return None;
    };
    let hosts = names
        .iter()
        .enumerate()
        .map(|(i, n)| Host::start(n, Some(&lan.hosts[i])))
        .collect();
    Some(LanHosts { hosts, lan })
}

/// A copy of a peer example bridge file with its three channels moved to UDP endpoints on
/// `ip` (ports `port`..`port + 2`) and its profile renamed to the test drivers' `cam`; every
/// other key is the example's.
fn adapted_example(name: &str, out: &Path, ip: &str, port: u16) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/configs/AeronTensorPool.jl")
        .join(name);
    // A fresh clone (CI) has no ../shared: the same chain written out here instead.
    let text = std::fs::read_to_string(&src).unwrap_or_else(|_| chain_config(name));
    let mut replaced = 0;
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            let key = l.split('=').next().unwrap_or("").trim();
            let new = match key {
                "payload_channel" => {
                    format!("payload_channel = \"aeron:udp?endpoint={ip}:{port}\"")
                }
                "control_channel" => {
                    format!("control_channel = \"aeron:udp?endpoint={ip}:{}\"", port + 1)
                }
                "metadata_channel" => {
                    format!(
                        "metadata_channel = \"aeron:udp?endpoint={ip}:{}\"",
                        port + 2
                    )
                }
                "profile" => "profile = \"cam\"".to_owned(),
                _ => return l.to_owned(),
            };
            replaced += 1;
            new
        })
        .collect();
    assert_eq!(replaced, 4, "{src:?} changed shape");
    let path = out.join(name);
    std::fs::write(&path, lines.join("\n")).unwrap();
    path
}

/// The chain example `name` with the keys and ids of the Julia examples (used when
/// `../shared/configs` is not beside the repository).
fn chain_config(name: &str) -> String {
    let (hop, base, src, dst) = match name {
        "bridge_chain_a_example.toml" => ("a", 3000, 10_000, 20_000),
        "bridge_chain_b_example.toml" => ("b", 4000, 20_000, 30_000),
        other => panic!("no built-in chain config {other}"),
    };
    format!(
        "[bridge]\n\
         instance_id = \"bridge-chain-{hop}\"\n\
         payload_channel = \"aeron:ipc\"\n\
         payload_stream_id = {base}\n\
         control_channel = \"aeron:ipc\"\n\
         control_stream_id = {}\n\
         metadata_channel = \"aeron:ipc\"\n\
         metadata_stream_id = {}\n\
         source_metadata_stream_id = 1300\n\
         mtu_bytes = 1408\n\
         chunk_bytes = 1000\n\
         max_chunk_bytes = 1200\n\
         integrity_crc32c = false\n\
         assembly_timeout_ms = 250\n\
         forward_metadata = true\n\
         \n\
         [[mappings]]\n\
         source_stream_id = {src}\n\
         dest_stream_id = {dst}\n\
         profile = \"bridge_chain\"\n\
         metadata_stream_id = {dst}\n",
        base + 1,
        base + 2,
    )
}

/// A chain A -> B -> C modelled on the Julia examples `bridge_chain_a_example.toml`
/// (10000 -> 20000) and `bridge_chain_b_example.toml` (20000 -> 30000), their channels moved
/// from IPC to UDP between three namespaces: B's destination stream is the source of the
/// second bridge, and a consumer on C verifies every frame produced on A.
#[test]
fn br_frames_cross_a_chain_of_two_bridges_over_three_namespaces() {
    let Some(l) = lan_hosts(&["A", "B", "C"], "10.213.8") else {
        return;
    };
    let [a, b, c] = [&l.hosts[0], &l.hosts[1], &l.hosts[2]];
    let cfg_a = adapted_example("bridge_chain_a_example.toml", &a.dir, &l.lan.ip(1), 40_300);
    let cfg_b = adapted_example("bridge_chain_b_example.toml", &b.dir, &l.lan.ip(2), 40_400);
    let mut rb = start_bridge(b, "B/bridge-a-receiver", &cfg_a, "receiver");
    let mut rc = start_bridge(c, "C/bridge-b-receiver", &cfg_b, "receiver");
    let mut sb = start_bridge(b, "B/bridge-b-sender", &cfg_b, "sender");
    let mut sa = start_bridge(a, "A/bridge-a-sender", &cfg_a, "sender");
    let mut consumer = consume(c, "C/consume", CHAIN, 200);
    let mut p = produce(a, "A/produce");
    let j = verified(&mut consumer, 200, &[]);
    drop(p.stop());
    let counters: Vec<Vec<String>> = [&mut sa, &mut rb, &mut sb, &mut rc]
        .into_iter()
        .map(|b| b.stop())
        .collect();
    println!("consumer on C: {j}");
    assert!(
        counter(&counters[1], "frames_received") >= 200,
        "{counters:?}"
    );
    assert!(counter(&counters[2], "frames_sent") >= 200, "{counters:?}");
    assert!(
        counter(&counters[3], "frames_received") >= 200,
        "{counters:?}"
    );
}

/// Multicast (Bridge Spec §3): one sender on A publishes the chunks and the
/// forwarded announces to a multicast group on a Linux bridge segment; receivers on B and
/// C, independent of each other, re-materialize them into their own destination streams
/// and a consumer on each verifies every frame.
#[test]
fn br_multicast_reaches_two_independent_receivers() {
    let Some(l) = lan_hosts(&["A", "B", "C"], "10.213.9") else {
        return;
    };
    let [a, b, c] = [&l.hosts[0], &l.hosts[1], &l.hosts[2]];
    let group =
        |port: u16| format!("aeron:udp?endpoint=239.255.13.1:{port}|interface=10.213.9.0/24");
    let cfg = a.dir.join("bridge-multicast.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[bridge]
instance_id = "bridge-multicast"
payload_channel = "{}"
payload_stream_id = 3000
control_channel = "{}"
control_stream_id = 3001
metadata_channel = "{}"
metadata_stream_id = 3002
integrity_crc32c = true

[[mappings]]
source_stream_id = {SOURCE}
dest_stream_id = {DEST}
profile = "cam"
"#,
            group(40_500),
            group(40_501),
            group(40_502)
        ),
    )
    .unwrap();
    let mut rb = start_bridge(b, "B/bridge", &cfg, "receiver");
    let mut rc = start_bridge(c, "C/bridge", &cfg, "receiver");
    let mut sa = start_bridge(a, "A/bridge", &cfg, "sender");
    let mut cb = consume(b, "B/consume", DEST, 200);
    let mut cc = consume(c, "C/consume", DEST, 200);
    let mut p = produce(a, "A/produce");
    let jb = verified(&mut cb, 200, &[]);
    let jc = verified(&mut cc, 200, &[]);
    drop(p.stop());
    let counters: Vec<Vec<String>> = [&mut sa, &mut rb, &mut rc]
        .into_iter()
        .map(|b| b.stop())
        .collect();
    println!("consumer on B: {jb}\nconsumer on C: {jc}");
    assert!(
        counter(&counters[1], "frames_received") >= 200,
        "{counters:?}"
    );
    assert!(
        counter(&counters[2], "frames_received") >= 200,
        "{counters:?}"
    );
}

/// W §10.1.3, §11, §15.12: a consumer told `use_shm = false` with a `payload_fallback_uri`
/// naming the bridge sender's payload channel receives its frames through the bridge. One
/// host: `tp driver` with an embedded supervisor whose rule turns SHM off for consumer 4242
/// only (the bridge's own source consumer keeps SHM); `tp bridge --side sender` sends the
/// source stream to a loopback UDP channel; `tp produce` writes it; `tp consume` as consumer
/// 4242 is the receiver of that channel: every frame it accepts came as chunks, was
/// reassembled and has the right bytes, and it ends in FALLBACK. `bridge_id`: the supervisor
/// sends `bridge://<id>` and the consumer's `[consumer.bridges.<id>]` route resolves it;
/// else the URI is the channel with its `stream-id` parameter. `salt` picks the ports: 1 and
/// 3, which only the namespace tests use otherwise (inside their own namespaces).
fn fallback_through_the_bridge(salt: u16, bridge_id: Option<&str>) {
    let port = ports(salt);
    let channel = format!("aeron:udp?endpoint=127.0.0.1:{port}");
    let (uri, route) = match bridge_id {
        Some(id) => (
            format!("bridge://{id}"),
            format!("[consumer.bridges.{id}]\nchannel = \"{channel}\"\nstream_id = 3000\n"),
        ),
        None => (format!("{channel}|stream-id=3000"), String::new()),
    };
    let a = Host::start_with(
        &format!("fallback{salt}"),
        None,
        &format!(
            r#"[supervisor]
[[supervisor.rules]]
consumer_id = 4242
force_no_shm = true
payload_fallback_uri = "{uri}"
"#
        ),
    );
    let cfg = bridge_config(&a.dir, "127.0.0.1", port, true);
    let mut sender = start_bridge(&a, "bridge", &cfg, "sender");
    let ccfg = a.dir.join("consumer.toml");
    std::fs::write(
        &ccfg,
        format!("[consumer]\nconsumer_id = 4242\nhello_interval_ms = 100\n{route}"),
    )
    .unwrap();
    let source_s = SOURCE.to_string();
    let mut consumer = a.tp(
        "consume",
        &[
            "consume",
            "--stream-id",
            &source_s,
            "--config",
            ccfg.to_str().unwrap(),
            "--verify",
            "--json",
            "--count",
            "200",
        ],
    );
    let mut producer = produce(&a, "produce");
    let j = verified(&mut consumer, 200, &[]);
    let counters = sender.stop();
    drop(producer.stop());
    assert_eq!(j["state"], "fallback", "{j}");
    assert!(j["fallback_frames"].as_u64().unwrap() >= 200, "{j}");
    assert_eq!(
        j["fallback_frames"], j["accepted"],
        "every frame came through the bridge: {j}"
    );
    let expect_channel = if bridge_id.is_some() { channel } else { uri };
    assert_eq!(
        j["fallback_source"]["channel"],
        expect_channel.as_str(),
        "{j}"
    );
    assert_eq!(j["fallback_source"]["stream_id"], 3000, "{j}");
    assert!(counter(&counters, "frames_sent") >= 200, "{counters:?}");
}

#[test]
fn w_15_12_a_consumer_told_use_shm_false_receives_its_frames_through_the_bridge() {
    fallback_through_the_bridge(1, None);
}

#[test]
fn w_10_1_3_a_bridge_id_fallback_resolves_through_the_consumers_route() {
    fallback_through_the_bridge(3, Some("cam1"));
}
