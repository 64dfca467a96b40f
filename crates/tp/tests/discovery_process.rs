//! Discovery as real processes (Discovery v1.0): `tp discovery serve` indexes announces and
//! data-source metadata published on its streams and answers `tp discover` /
//! `tp discovery list` (filters by tag and name, JSON), ignores other schemas on its request
//! stream, expires streams whose announces stop, and stops on SIGTERM with its counters.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ChildGuard, DEADLINE, TP, bytes_of, connected_publication, offer};
use serde_json::Value;
use tensorpool_codec::wire::*;
use tensorpool_codec::{AnyMessage, Bytes, Group};

fn announce(stream_id: u32) -> Vec<u8> {
    bytes_of(&AnyMessage::ShmPoolAnnounce(ShmPoolAnnounce {
        stream_id,
        producer_id: 3,
        epoch: 1,
        announce_timestamp_ns: 1,
        announce_clock_domain: ClockDomain::Monotonic,
        layout_version: 1,
        header_nslots: 8,
        header_slot_bytes: 256,
        payload_pools: Group::Owned(vec![PayloadPool {
            pool_id: 1,
            pool_nslots: 8,
            stride_bytes: 4096,
            region_uri: Bytes::from(format!("shm:file?path=/dev/shm/d/{stream_id}/1.pool")),
        }]),
        header_region_uri: Bytes::from(format!("shm:file?path=/dev/shm/d/{stream_id}/h.ring")),
    }))
}

fn metadata(stream_id: u32, name: &str, tags: &[&str]) -> [Vec<u8>; 2] {
    let source = bytes_of(&AnyMessage::DataSourceAnnounce(DataSourceAnnounce {
        stream_id,
        producer_id: 3,
        epoch: 1,
        meta_version: 1,
        name: Bytes::from(name.to_owned()),
        summary: Bytes::EMPTY,
    }));
    let meta = bytes_of(&AnyMessage::DataSourceMeta(DataSourceMeta {
        stream_id,
        meta_version: 1,
        timestamp_ns: 0,
        attributes: Group::Owned(
            tags.iter()
                .map(|t| Attribute {
                    key: Bytes::from("tag".to_owned()),
                    format: Bytes::from("text/plain".to_owned()),
                    value: Bytes::from(t.to_string()),
                })
                .collect(),
        ),
    }));
    [source, meta]
}

/// `tp discover --json args...`: the stream ids found.
fn discover(dir: &str, args: &[&str]) -> Vec<u64> {
    let out = Command::new(TP)
        .args(["discover", "--json", "--aeron-dir", dir, "--timeout", "10"])
        .args(["--request-channel", "aeron:ipc"])
        .args(args)
        .output()
        .expect("tp discover");
    assert!(
        out.status.success(),
        "tp discover {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut ids: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["driver_instance_id"], "host-a");
            assert_eq!(v["driver_control_stream_id"], 1000);
            v["stream_id"].as_u64().unwrap()
        })
        .collect();
    ids.sort_unstable();
    ids
}

#[test]
fn tp_discovery_serve_answers_filters_and_expires() {
    let driver = common::driver();
    let client = common::connect(&driver);
    let dir = driver.dir().to_str().expect("dir").to_owned();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("discovery.toml");
    std::fs::write(
        &cfg,
        "[discovery]\nrequest_channel = \"aeron:ipc\"\nannounce_channel = \"aeron:ipc\"\nmetadata_channel = \"aeron:ipc\"\ndriver_instance_id = \"host-a\"\nannounce_period_ms = 100\n",
    )
    .unwrap();
    let child = Command::new(TP)
        .args(["discovery", "serve", "--aeron-dir", &dir, "--config"])
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tp discovery serve");
    let mut guard = ChildGuard(Some(child));
    let stdout = guard.0.as_mut().and_then(|c| c.stdout.take()).unwrap();
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let line = lines.next().expect("provider output").unwrap();
        if line.contains("ready") {
            break;
        }
    }
    let mut announces = connected_publication(&client, 1001);
    let mut meta = connected_publication(&client, 1300);
    let mut requests = connected_publication(&client, 9000);
    // another schema on the request stream is skipped (DS §10)
    offer(&mut requests, &announce(1));
    let publish = |announces: &mut _, meta: &mut _| {
        offer(announces, &announce(10_001));
        offer(announces, &announce(10_002));
        for m in metadata(10_001, "cam-left", &["camera", "left"])
            .iter()
            .chain(metadata(10_002, "cam-right", &["camera"]).iter())
        {
            offer(meta, m);
        }
    };
    // keep announcing (as a driver does) until both are found with their tags
    let deadline = Instant::now() + DEADLINE;
    loop {
        publish(&mut announces, &mut meta);
        if discover(&dir, &["--tag", "camera"]) == vec![10_001, 10_002] {
            break;
        }
        assert!(Instant::now() < deadline, "both camera streams indexed");
        std::thread::sleep(Duration::from_millis(50));
    }
    publish(&mut announces, &mut meta);
    assert_eq!(discover(&dir, &["--name", "cam-right"]), vec![10_002]);
    publish(&mut announces, &mut meta);
    assert_eq!(
        discover(&dir, &["--tag", "camera", "--tag", "left"]),
        vec![10_001]
    );
    publish(&mut announces, &mut meta);
    assert_eq!(discover(&dir, &["--name", "CAM-RIGHT"]), Vec::<u64>::new());
    // `tp discovery list`: everything
    publish(&mut announces, &mut meta);
    let out = Command::new(TP)
        .args(["discovery", "list", "--json", "--aeron-dir", &dir])
        .args(["--request-channel", "aeron:ipc"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
    // announces stop: both expire (3 x 100 ms) and are no longer returned (DS §6.2)
    let deadline = Instant::now() + DEADLINE;
    while !discover(&dir, &[]).is_empty() {
        assert!(Instant::now() < deadline, "the streams expire");
        std::thread::sleep(Duration::from_millis(100));
    }
    // SIGTERM: exit 0 with the counters
    let pid = guard.0.as_ref().unwrap().id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = common::wait_exit(&mut guard, DEADLINE, "tp discovery serve");
    assert!(status.success(), "{status:?}");
    let sent = rest
        .iter()
        .find_map(|l| l.strip_prefix("responses_sent = "))
        .expect("counters printed")
        .parse::<u64>()
        .unwrap();
    assert!(sent >= 6, "{rest:?}");
    assert!(rest.iter().any(|l| l == "expired = 2"), "{rest:?}");
}
