//! Discovery embedded in `tp driver` and a registry spanning hosts (Discovery v1.0 §2.2, §8),
//! as real processes: each host runs `tp media-driver`, `tp driver` with a `[discovery]`
//! table and a `tp produce` attached to one of its streams; `tp discover --config
//! <driver.toml>` finds the stream through the provider the driver embeds.
//!
//! Across hosts: two network namespaces joined by a veth pair (root and iproute2 only;
//! skipped with a printed reason otherwise). Each driver's provider forwards its driver's
//! announces over Aeron UDP to the other host, where `[[discovery.endpoints]]` indexes them
//! under the remote driver's authority: a query on either host sees the streams of both.
//! Names are unique per test process; namespaces, links and directories are removed by Drop
//! guards, on failure too. Every wait has a deadline.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use tensorpool_aeron::AeronClient;
use tensorpool_codec::wire::{DataSourceAnnounce, DataSourceMeta};
use tensorpool_codec::{AnyMessage, Bytes, Group};

const TP: &str = env!("CARGO_BIN_EXE_tp");
const DEADLINE: Duration = Duration::from_secs(30);

#[path = "common/proc.rs"]
mod proc;
use proc::Proc;

/// One host: its directory (SHM base, Aeron dir, driver config), media driver, SHM driver
/// with embedded discovery, and a producer of `stream`.
struct Host {
    ns: Option<String>,
    dir: PathBuf,
    aeron: PathBuf,
    config: PathBuf,
    // dropped in this order: producer, SHM driver, media driver
    producer: Option<Proc>,
    driver: Option<Proc>,
    media: Option<Proc>,
}

impl Host {
    /// Starts a host named `name` serving `stream`, with `discovery` as the body of its
    /// driver's `[discovery]` table.
    fn start(name: &str, ns: Option<&str>, stream: u32, discovery: &str) -> Self {
        let dir = PathBuf::from(format!("/dev/shm/tp-disco-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let aeron = dir.join("aeron");
        let config = dir.join("driver.toml");
        std::fs::write(
            &config,
            format!(
                r#"[driver]
instance_id = "ds-{name}"
control_channel = "aeron:ipc?term-length=1m"
announce_stream_id = 1001
aeron_dir = "{aeron}"
[shm]
base_dir = "{base}"
[policies]
announce_period_ms = 200
epoch_gc_min_age_ns = 0
prefault_shm = false
[profiles.small]
header_nslots = 8
payload_pools = [{{ pool_id = 1, stride_bytes = 1024 }}]
[streams.cam]
stream_id = {stream}
profile = "small"
[discovery]
{discovery}
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
            config,
            producer: None,
            driver: None,
            media: None,
        };
        let aeron_s = host.aeron.to_str().unwrap().to_owned();
        let cfg = host.config.to_str().unwrap().to_owned();
        let mut media = Proc::spawn(
            &format!("{name}/media-driver"),
            ns,
            &[
                "media-driver",
                "--dir",
                &aeron_s,
                "--delete-dir-on-start",
                "--delete-dir-on-shutdown",
            ],
        );
        media.expect("media driver running", |l| l.contains(&aeron_s));
        host.media = Some(media);
        let mut driver = Proc::spawn(
            &format!("{name}/driver"),
            ns,
            &["driver", "--config", &cfg, "--idle", "sleep:1ms"],
        );
        driver.expect("driver ready with discovery", |l| {
            l.contains("ready") && l.contains("discovery embedded")
        });
        host.driver = Some(driver);
        let stream_s = stream.to_string();
        let mut producer = Proc::spawn(
            &format!("{name}/produce"),
            ns,
            &[
                "produce",
                "--driver-config",
                &cfg,
                "--aeron-dir",
                &aeron_s,
                "--stream-id",
                &stream_s,
                "--size",
                "64",
                "--rate",
                "20",
                "--count",
                "1000000",
            ],
        );
        producer.expect("producer attached", |l| l.contains("tp produce: stream"));
        host.producer = Some(producer);
        host
    }

    /// `tp discover --json --config <driver.toml> args...` on this host: (stream id, driver
    /// instance id) of each result, sorted.
    fn discover(&self, args: &[&str]) -> Vec<(u64, String)> {
        let mut cmd = match &self.ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, TP]);
                c
            }
            None => Command::new(TP),
        };
        let out = cmd
            .args(["discover", "--json", "--timeout", "10", "--config"])
            .arg(&self.config)
            .args(args)
            .output()
            .expect("tp discover");
        assert!(
            out.status.success(),
            "tp discover {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut found: Vec<(u64, String)> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                assert_eq!(v["driver_control_stream_id"], 1000, "{v}");
                assert_eq!(
                    v["driver_control_channel"], "aeron:ipc?term-length=1m",
                    "{v}"
                );
                (
                    v["stream_id"].as_u64().unwrap(),
                    v["driver_instance_id"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        found.sort();
        found
    }

    /// Polls `tp discover args` until it answers `want` (bounded).
    fn discover_until(&self, args: &[&str], want: &[(u64, &str)]) {
        let want: Vec<(u64, String)> = want.iter().map(|(s, i)| (*s, i.to_string())).collect();
        let deadline = Instant::now() + DEADLINE;
        loop {
            let got = self.discover(args);
            if got == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "tp discover {args:?}: {got:?}, want {want:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        drop(self.producer.take());
        drop(self.driver.take());
        drop(self.media.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn data_source(stream_id: u32, name: &str, tag: &str) -> [Vec<u8>; 2] {
    let source = AnyMessage::DataSourceAnnounce(DataSourceAnnounce {
        stream_id,
        producer_id: 0,
        epoch: 1,
        meta_version: 1,
        name: Bytes::from(name.to_owned()),
        summary: Bytes::EMPTY,
    });
    let meta = AnyMessage::DataSourceMeta(DataSourceMeta {
        stream_id,
        meta_version: 1,
        timestamp_ns: 0,
        attributes: Group::Owned(vec![tensorpool_codec::wire::Attribute {
            key: Bytes::from("tag".to_owned()),
            format: Bytes::from("text/plain".to_owned()),
            value: Bytes::from(tag.to_owned()),
        }]),
    });
    [source, meta].map(|m| {
        let mut buf = vec![0u8; m.encoded_len()];
        m.encode(&mut buf).expect("encode");
        buf
    })
}

/// DS §2.2, §4.2: `tp driver` with a `[discovery]` table answers `tp discover` for its own
/// streams, under its own instance id and control endpoint (the embedded defaults), with
/// name and tag filters from data-source messages on its metadata stream; without the
/// table (or with `enabled = false`) it embeds nothing.
#[test]
fn tp_driver_with_discovery_answers_tp_discover() {
    let host = Host::start("solo", None, 10_101, "max_results = 16");
    host.discover_until(&[], &[(10_101, "ds-solo")]);
    host.discover_until(&["--stream-id", "10101"], &[(10_101, "ds-solo")]);
    assert_eq!(host.discover(&["--stream-id", "10102"]), vec![]);

    // a data source's name and tag, published on the driver's metadata stream
    let client = AeronClient::connect(&host.aeron, Duration::from_secs(10)).unwrap();
    let mut meta = client
        .add_publication("aeron:ipc", 1300, Duration::from_secs(10))
        .unwrap();
    let deadline = Instant::now() + DEADLINE;
    loop {
        for m in data_source(10_101, "cam-solo", "camera") {
            let _ = meta.offer(&m);
        }
        if host.discover(&["--name", "cam-solo", "--tag", "camera"])
            == vec![(10_101, "ds-solo".into())]
        {
            break;
        }
        assert!(Instant::now() < deadline, "the name and tag indexed");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(host.discover(&["--tag", "lidar"]), vec![]);
    drop(meta);
    drop(client);

    let mut host = host;
    let mut driver = host.driver.take().unwrap();
    drop(host.producer.take());
    let lines = driver.stop();
    let requests = lines
        .iter()
        .find_map(|l| l.strip_prefix("discovery.requests = "))
        .and_then(|v| v.trim().parse::<u64>().ok());
    assert!(requests.is_some_and(|n| n >= 5), "{lines:?}");
}

/// `enabled = false` in `[discovery]`: the driver starts without a provider.
#[test]
fn tp_driver_with_discovery_disabled_embeds_none() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("driver.toml");
    std::fs::write(
        &cfg,
        format!(
            "[driver]\ninstance_id = \"ds-off\"\n[shm]\nbase_dir = \"{}\"\n[profiles.p]\nheader_nslots = 8\npayload_pools = [{{ pool_id = 1, stride_bytes = 1024 }}]\n[discovery]\nenabled = false\n",
            dir.path().join("shm").display()
        ),
    )
    .unwrap();
    let mut driver = Proc::spawn(
        "off/driver",
        None,
        &[
            "driver",
            "--config",
            cfg.to_str().unwrap(),
            "--idle",
            "sleep:1ms",
        ],
    );
    let ready = driver.expect("driver ready", |l| l.contains("tp driver: ready"));
    assert!(!ready.contains("discovery"), "{ready}");
    let lines = driver.stop();
    assert!(
        !lines.iter().any(|l| l.starts_with("discovery.")),
        "{lines:?}"
    );
}

/// Two network namespaces and the veth pair between them; removed on drop.
struct Netns {
    a: String,
    b: String,
    veth: String,
}

const A_IP: &str = "10.213.9.1";
const B_IP: &str = "10.213.9.2";

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
            a: format!("tpdsa{pid}"),
            b: format!("tpdsb{pid}"),
            veth: format!("tpdva{pid}"),
        };
        let (va, vb) = (format!("tpdva{pid}"), format!("tpdvb{pid}"));
        if !ok(&["netns", "add", &n.a]) {
            return None;
        }
        let (a_addr, b_addr) = (format!("{A_IP}/24"), format!("{B_IP}/24"));
        let steps: [&[&str]; 10] = [
            &["netns", "add", &n.b],
            &["link", "add", &va, "type", "veth", "peer", "name", &vb],
            &["link", "set", &va, "netns", &n.a],
            &["link", "set", &vb, "netns", &n.b],
            &["-n", &n.a, "addr", "add", &a_addr, "dev", &va],
            &["-n", &n.b, "addr", "add", &b_addr, "dev", &vb],
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

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.veth])
            .output();
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// The `[discovery]` body of a host that forwards its driver's messages to `peer_ip` and
/// indexes the driver `peer` whose messages arrive on its own `my_ip`.
fn spanning(my_ip: &str, peer_ip: &str, peer: &str) -> String {
    format!(
        r#"forward_channel = "aeron:udp?endpoint={peer_ip}:40461"
[[discovery.endpoints]]
driver_instance_id = "ds-{peer}"
driver_control_channel = "aeron:ipc?term-length=1m"
driver_control_stream_id = 1000
announce_channel = "aeron:udp?endpoint={my_ip}:40461"
announce_stream_id = 1001
metadata_stream_id = 1300
"#
    )
}

/// DS §8: providers on two hosts feed each other's registry over Aeron UDP; a query on
/// either host sees the streams of both, each under the authority of the driver serving it;
/// a remote stream whose producer and driver stop expires from the other host's registry.
#[test]
fn a_registry_spans_two_hosts_over_aeron_udp() {
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
    let a = Host::start("A", Some(&net.a), 10_201, &spanning(A_IP, B_IP, "B"));
    let mut b = Host::start("B", Some(&net.b), 10_202, &spanning(B_IP, A_IP, "A"));
    let both = [(10_201, "ds-A"), (10_202, "ds-B")];
    a.discover_until(&[], &both);
    b.discover_until(&[], &both);
    b.discover_until(&["--stream-id", "10201"], &[(10_201, "ds-A")]);
    a.discover_until(&["--stream-id", "10202"], &[(10_202, "ds-B")]);

    // B's producer and driver stop: its stream expires from A's registry (3 periods)
    drop(b.producer.take());
    let lines = b.driver.take().unwrap().stop();
    let forwarded = lines
        .iter()
        .find_map(|l| l.strip_prefix("discovery.forwarded = "))
        .and_then(|v| v.trim().parse::<u64>().ok());
    assert!(forwarded.is_some_and(|n| n > 0), "{lines:?}");
    a.discover_until(&[], &[(10_201, "ds-A")]);
    drop(b);
    drop(a);
    drop(net);
}

/// `tp config validate --role discovery` of a driver's file reads its `[discovery]` table as
/// `tp driver` does (the driver's instance id, derived); `tp config validate` of the same
/// file does not list the `discovery.*` keys as unknown; a bad endpoint is refused naming it.
#[test]
fn tp_config_validate_reads_a_drivers_discovery_table() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("driver.toml");
    let text = format!(
        "[driver]\ninstance_id = \"ds-cfg\"\n[shm]\nbase_dir = \"{}\"\n[profiles.p]\nheader_nslots = 8\npayload_pools = [{{ pool_id = 1, stride_bytes = 1024 }}]\n[discovery]\nmax_results = 4\n{}",
        dir.path().join("shm").display(),
        spanning(A_IP, B_IP, "B")
    );
    std::fs::write(&cfg, &text).unwrap();
    let run = |args: &[&str]| {
        Command::new(TP)
            .args(["config", "validate"])
            .args(args)
            .arg(&cfg)
            .output()
            .expect("tp config validate")
    };
    let out = run(&["--role", "discovery"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.is_empty(), "no unknown key: {stderr}");
    assert!(stdout.contains("discovery provider for ds-cfg"), "{stdout}");
    let out = run(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("discovery."), "{stderr}");

    std::fs::write(&cfg, text.replace("ds-B", "ds-cfg")).unwrap();
    let out = run(&["--role", "discovery"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("discovery.endpoints[0]"), "{stderr}");
}
