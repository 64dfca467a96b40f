//! The discovery registry core (Discovery v1.0) without transport: the C example config,
//! indexing from announces, expiry, epochs, filters, response rules and limits, and two
//! authorities (the multi-host registry).

use std::path::PathBuf;

use tensorpool::config::{Loader, NoEnv};
use tensorpool::discovery::{
    AnnounceOutcome, Answer, Authority, DiscoveryConfig, DiscoveryRegistry,
};
use tensorpool_codec::discovery::{DiscoveryRequest, DiscoveryResponse, DiscoveryStatus};
use tensorpool_codec::wire::{
    Attribute, ClockDomain, DataSourceAnnounce, DataSourceMeta, PayloadPool, ShmPoolAnnounce,
};
use tensorpool_codec::{Bytes, Group, Message};

const MS: u64 = 1_000_000;

fn shared_configs() -> Option<PathBuf> {
    let dir = std::env::var_os("TENSORPOOL_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
        .join("configs");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!("skipped: peer configs not found at {}", dir.display());
        None
    }
}

/// DS §4.2, §12 (C `tp_discoveryd`): the C example loads unchanged, every key read.
#[test]
fn ds_the_c_example_config_loads_unchanged() {
    let Some(dir) = shared_configs() else { return };
    let cfg = DiscoveryConfig::load(
        Some(&dir.join("tensor_pool_c/discovery_example.toml")),
        &NoEnv,
    )
    .unwrap();
    assert!(cfg.unknown_keys.is_empty(), "{:?}", cfg.unknown_keys);
    assert_eq!(
        (
            cfg.request_stream_id,
            cfg.announce_stream_id,
            cfg.metadata_stream_id,
            cfg.driver_control_stream_id,
            cfg.max_results,
            cfg.driver_instance_id.as_str()
        ),
        (9000, 1001, 1300, 1000, 1000, "driver-example")
    );
    assert_eq!(cfg.expiry_ns(), 3_000 * MS);
}

/// DS §5.2: a configuration that would emit a zero control stream id or an empty control
/// channel is refused, naming the key.
#[test]
fn ds_5_2_config_refuses_an_unusable_authority() {
    for (text, key) in [
        (
            "[discovery]\ndriver_control_stream_id = 0\n",
            "driver_control_stream_id",
        ),
        (
            "[discovery]\ndriver_control_channel = \"\"\n",
            "driver_control_channel",
        ),
        ("[discovery]\nmax_results = 0\n", "max_results"),
    ] {
        let e = DiscoveryConfig::from_toml(text, &NoEnv)
            .unwrap_err()
            .to_string();
        assert!(e.contains(key), "{text}: {e}");
    }
}

/// DS §4.2 ("MAY default to the driver control endpoint"): embedded in a driver, the
/// provider's endpoint and authority defaults are the driver's own; set keys still win.
#[test]
fn ds_4_2_embedded_defaults_are_the_drivers_endpoints() {
    let text = "[driver]\ninstance_id = \"cam-host\"\ncontrol_channel = \"aeron:ipc?term-length=1m\"\ncontrol_stream_id = 1010\nannounce_stream_id = 1011\n[policies]\nannounce_period_ms = 250\n[discovery]\nmax_results = 8\n";
    let mut l = Loader::from_str(text, "inline", &NoEnv).unwrap();
    let cfg = DiscoveryConfig::embedded(&mut l).unwrap();
    assert!(cfg.enabled);
    assert_eq!(cfg.driver_instance_id, "cam-host");
    assert_eq!(cfg.driver_control_channel, "aeron:ipc?term-length=1m");
    assert_eq!(cfg.request_channel, "aeron:ipc?term-length=1m");
    assert_eq!(cfg.metadata_channel, "aeron:ipc?term-length=1m");
    assert_eq!(cfg.announce_channel, "aeron:ipc?term-length=1m");
    assert_eq!(
        (
            cfg.driver_control_stream_id,
            cfg.announce_stream_id,
            cfg.request_stream_id,
            cfg.max_results
        ),
        (1010, 1011, 9000, 8)
    );
    assert_eq!(cfg.expiry_ns(), 750 * MS);
    assert!(cfg.unknown_keys.is_empty(), "{:?}", cfg.unknown_keys);
    // the standalone reading of the same text keeps the C defaults
    let standalone = DiscoveryConfig::from_toml(text, &NoEnv).unwrap();
    assert_eq!(standalone.driver_instance_id, "driver");
    assert_eq!(standalone.announce_stream_id, 1001);
}

/// DS §8: `[[discovery.endpoints]]` and `forward_channel` load; an endpoint without a usable
/// authority, with the local driver's instance id, or with an unknown key is refused,
/// naming it.
#[test]
fn ds_8_registry_endpoints_load_and_bad_ones_are_refused() {
    let ok = "[discovery]\nforward_channel = \"aeron:udp?endpoint=10.0.0.2:40461\"\n[[discovery.endpoints]]\ndriver_instance_id = \"far\"\ndriver_control_channel = \"aeron:ipc\"\ndriver_control_stream_id = 1000\nannounce_channel = \"aeron:udp?endpoint=10.0.0.1:40461\"\n";
    let cfg = DiscoveryConfig::from_toml(ok, &NoEnv).unwrap();
    assert_eq!(cfg.forward_channel, "aeron:udp?endpoint=10.0.0.2:40461");
    assert_eq!(cfg.endpoints.len(), 1);
    let e = &cfg.endpoints[0];
    assert_eq!((e.announce_stream_id, e.metadata_stream_id), (1001, 1300));
    assert_eq!(e.metadata_channel(), "aeron:udp?endpoint=10.0.0.1:40461");
    assert!(cfg.unknown_keys.is_empty(), "{:?}", cfg.unknown_keys);
    for (replace, with, needle) in [
        (
            "driver_control_stream_id = 1000",
            "driver_control_stream_id = 0",
            "endpoints[0]",
        ),
        ("\"far\"", "\"driver\"", "must differ"),
        ("\"far\"", "\"\"", "endpoints[0]"),
        (
            "driver_control_stream_id = 1000",
            "driver_control_stream_id = 1000\nbogus = 1",
            "discovery.endpoints",
        ),
        (
            "announce_channel = \"aeron:udp?endpoint=10.0.0.1:40461\"",
            "",
            "discovery.endpoints",
        ),
    ] {
        let text = ok.replace(replace, with);
        let e = DiscoveryConfig::from_toml(&text, &NoEnv)
            .unwrap_err()
            .to_string();
        assert!(e.contains(needle), "{text}: {e}");
    }
}

fn announce(stream_id: u32, epoch: u64, nslots: u32, pool_nslots: u32) -> Vec<u8> {
    ShmPoolAnnounce {
        stream_id,
        producer_id: 7,
        epoch,
        announce_timestamp_ns: 1,
        announce_clock_domain: ClockDomain::Monotonic,
        layout_version: 1,
        header_nslots: nslots,
        header_slot_bytes: 256,
        payload_pools: Group::Owned(vec![PayloadPool {
            pool_id: 1,
            pool_nslots,
            stride_bytes: 4096,
            region_uri: Bytes::from(format!("shm:file?path=/dev/shm/x/{stream_id}/1.pool")),
        }]),
        header_region_uri: Bytes::from(format!("shm:file?path=/dev/shm/x/{stream_id}/header.ring")),
    }
    .encode_to_vec()
    .unwrap()
}

fn source(stream_id: u32, name: &str) -> Vec<u8> {
    DataSourceAnnounce {
        stream_id,
        producer_id: 7,
        epoch: 1,
        meta_version: 1,
        name: Bytes::from(name.to_owned()),
        summary: Bytes::EMPTY,
    }
    .encode_to_vec()
    .unwrap()
}

fn meta(stream_id: u32, attrs: &[(&str, &str)]) -> Vec<u8> {
    DataSourceMeta {
        stream_id,
        meta_version: 1,
        timestamp_ns: 0,
        attributes: Group::Owned(
            attrs
                .iter()
                .map(|(k, v)| Attribute {
                    key: Bytes::from(k.to_string()),
                    format: Bytes::from("text/plain".to_owned()),
                    value: Bytes::from(v.to_string()),
                })
                .collect(),
        ),
    }
    .encode_to_vec()
    .unwrap()
}

struct Req {
    channel: &'static str,
    stream: u32,
    stream_id: Option<u32>,
    name: &'static str,
    tags: Vec<&'static str>,
    data_source_id: Option<u64>,
}

impl Default for Req {
    fn default() -> Self {
        Self {
            channel: "aeron:ipc",
            stream: 7004,
            stream_id: None,
            name: "",
            tags: vec![],
            data_source_id: None,
        }
    }
}

fn request(r: &Req) -> Vec<u8> {
    DiscoveryRequest {
        request_id: 42,
        client_id: 3,
        response_stream_id: r.stream,
        stream_id: r.stream_id,
        producer_id: None,
        data_source_id: r.data_source_id,
        tags: Group::Owned(r.tags.iter().map(|t| Bytes::new(t.as_bytes())).collect()),
        response_channel: Bytes::new(r.channel.as_bytes()),
        data_source_name: Bytes::new(r.name.as_bytes()),
    }
    .encode_to_vec()
    .unwrap()
}

/// Answers `r`; returns (status, stream ids of the results, error message), after encoding
/// and decoding the response as a client would.
fn ask(
    reg: &mut DiscoveryRegistry,
    r: &Req,
    now: u64,
) -> Option<(DiscoveryStatus, Vec<u32>, String)> {
    let bytes = request(r);
    let req = DiscoveryRequest::decode(&bytes).unwrap();
    let (channel, stream, wire) = match reg.answer(&req, now) {
        Answer::Drop => return None,
        Answer::Respond {
            channel,
            stream_id,
            response,
        } => (
            channel.to_vec(),
            stream_id,
            response.encode_to_vec().unwrap(),
        ),
    };
    assert_eq!(
        (channel.as_slice(), stream),
        (r.channel.as_bytes(), r.stream)
    );
    let resp = DiscoveryResponse::decode(&wire).unwrap();
    assert_eq!(resp.request_id, 42, "DS §5.2: the request id is echoed");
    let ids = resp.results.iter().map(|x| x.stream_id).collect();
    Some((
        resp.status,
        ids,
        String::from_utf8_lossy(resp.error_message.as_bytes()).into(),
    ))
}

fn registry() -> (DiscoveryRegistry, usize) {
    let mut reg = DiscoveryRegistry::new(3_000 * MS, 1000);
    let a = reg.authority(Authority {
        instance_id: "host-a".into(),
        control_channel: "aeron:ipc?term-length=4m".into(),
        control_stream_id: 1000,
    });
    (reg, a)
}

fn feed(
    reg: &mut DiscoveryRegistry,
    a: usize,
    stream: u32,
    name: &str,
    attrs: &[(&str, &str)],
    now: u64,
) {
    reg.on_pool_announce(
        a,
        &ShmPoolAnnounce::decode(&announce(stream, 1, 8, 8)).unwrap(),
        now,
    );
    reg.on_data_source_announce(
        a,
        &DataSourceAnnounce::decode(&source(stream, name)).unwrap(),
    );
    reg.on_data_source_meta(a, &DataSourceMeta::decode(&meta(stream, attrs)).unwrap());
}

/// DS §5.1: filters are AND-ed; names and tags match byte for byte (case-sensitive); all
/// requested tags must be present, duplicates count once; no filter returns everything;
/// the result carries the full tag set and the authority fields (DS §5.2).
#[test]
fn ds_5_1_filters_are_anded_and_exact() {
    let (mut reg, a) = registry();
    feed(
        &mut reg,
        a,
        10_001,
        "cam-left",
        &[("tag", "camera"), ("tag", "Left"), ("data_source_id", "77")],
        0,
    );
    feed(
        &mut reg,
        a,
        10_002,
        "cam-right",
        &[("tag", "camera"), ("tag", "right")],
        0,
    );
    feed(&mut reg, a, 10_003, "imu", &[("tag", "imu")], 0);
    let mut q = |r: Req| {
        let (status, mut ids, _) = ask(&mut reg, &r, 0).unwrap();
        assert_eq!(status, DiscoveryStatus::Ok);
        ids.sort_unstable();
        ids
    };
    assert_eq!(q(Req::default()), vec![10_001, 10_002, 10_003]);
    assert_eq!(
        q(Req {
            tags: vec!["camera"],
            ..Req::default()
        }),
        vec![10_001, 10_002]
    );
    assert_eq!(
        q(Req {
            tags: vec!["camera", "Left", "camera"],
            ..Req::default()
        }),
        vec![10_001]
    );
    assert_eq!(
        q(Req {
            tags: vec!["left"],
            ..Req::default()
        }),
        Vec::<u32>::new(),
        "case-sensitive"
    );
    assert_eq!(
        q(Req {
            name: "cam-right",
            ..Req::default()
        }),
        vec![10_002]
    );
    assert_eq!(
        q(Req {
            name: "CAM-RIGHT",
            ..Req::default()
        }),
        Vec::<u32>::new()
    );
    assert_eq!(
        q(Req {
            name: "imu",
            tags: vec!["camera"],
            ..Req::default()
        }),
        Vec::<u32>::new(),
        "AND"
    );
    assert_eq!(
        q(Req {
            stream_id: Some(10_003),
            ..Req::default()
        }),
        vec![10_003]
    );
    assert_eq!(
        q(Req {
            data_source_id: Some(77),
            ..Req::default()
        }),
        vec![10_001]
    );
    // the full result of one stream
    let bytes = request(&Req {
        stream_id: Some(10_001),
        ..Req::default()
    });
    let req = DiscoveryRequest::decode(&bytes).unwrap();
    let Answer::Respond { response, .. } = reg.answer(&req, 0) else {
        panic!("dropped")
    };
    let wire = response.encode_to_vec().unwrap();
    let resp = DiscoveryResponse::decode(&wire).unwrap();
    let r = resp.results.iter().next().unwrap();
    let tags: Vec<Vec<u8>> = r.tags.iter().map(|t| t.as_bytes().to_vec()).collect();
    assert_eq!(
        tags,
        vec![b"camera".to_vec(), b"Left".to_vec()],
        "full set, original case"
    );
    assert_eq!(r.data_source_name.as_bytes(), b"cam-left");
    assert_eq!(
        (r.header_slot_bytes, r.max_dims, r.header_nslots),
        (256, 8, 8)
    );
    assert_eq!(r.driver_instance_id.as_bytes(), b"host-a");
    assert_eq!(
        r.driver_control_channel.as_bytes(),
        b"aeron:ipc?term-length=4m"
    );
    assert_eq!(r.driver_control_stream_id, 1000);
    assert!(
        r.payload_pools
            .iter()
            .all(|p| p.pool_nslots == r.header_nslots)
    );
}

/// DS §5.1, §4.3: an empty response channel is dropped without any response; a zero
/// response stream is answered ERROR on the given channel; zero matches are OK with no
/// results; more than max_results is ERROR with an empty results group (DS §5.2).
#[test]
fn ds_5_1_5_2_request_validation_status_and_limits() {
    let (mut reg, a) = registry();
    assert!(
        ask(
            &mut reg,
            &Req {
                channel: "",
                ..Req::default()
            },
            0
        )
        .is_none()
    );
    assert_eq!(reg.counters().requests_dropped, 1);
    let (status, ids, msg) = ask(
        &mut reg,
        &Req {
            stream: 0,
            ..Req::default()
        },
        0,
    )
    .unwrap();
    assert_eq!((status, ids.len()), (DiscoveryStatus::Error, 0));
    assert!(msg.contains("response_stream_id"), "{msg}");
    let (status, ids, _) = ask(&mut reg, &Req::default(), 0).unwrap();
    assert_eq!(
        (status, ids.len()),
        (DiscoveryStatus::Ok, 0),
        "OK even with no match"
    );
    let mut small = DiscoveryRegistry::new(3_000 * MS, 2);
    let b = small.authority(reg.authorities()[a].clone());
    for s in 1..=3 {
        feed(&mut small, b, s, "x", &[], 0);
    }
    let (status, ids, msg) = ask(&mut small, &Req::default(), 0).unwrap();
    assert_eq!((status, ids.len()), (DiscoveryStatus::Error, 0));
    assert!(msg.contains("limit"), "{msg}");
    let (status, ids, _) = ask(
        &mut small,
        &Req {
            stream_id: Some(2),
            ..Req::default()
        },
        0,
    )
    .unwrap();
    assert_eq!((status, ids), (DiscoveryStatus::Ok, vec![2]));
}

/// DS §6.2: an entry without an announce for 3 announce periods is gone and never returned;
/// an announce keeps it alive.
#[test]
fn ds_6_2_entries_expire_after_three_announce_periods() {
    let (mut reg, a) = registry();
    feed(&mut reg, a, 1, "a", &[], 0);
    feed(&mut reg, a, 2, "b", &[], 0);
    reg.on_pool_announce(
        a,
        &ShmPoolAnnounce::decode(&announce(2, 1, 8, 8)).unwrap(),
        2_000 * MS,
    );
    let (_, ids, _) = ask(&mut reg, &Req::default(), 3_000 * MS).unwrap();
    assert_eq!(ids.len(), 2, "at exactly 3 periods both live");
    let (_, ids, _) = ask(&mut reg, &Req::default(), 3_000 * MS + 1).unwrap();
    assert_eq!(ids, vec![2]);
    assert_eq!(reg.counters().expired, 1);
}

/// DS §6.3, §6.1: a newer epoch replaces the entry, an older one is dropped; entries are
/// keyed by (authority, stream): the same stream id under two drivers (two hosts) are two
/// entries, each naming its own authority. Announces that are not indexable are dropped.
#[test]
fn ds_6_3_epochs_and_two_authorities() {
    let (mut reg, a) = registry();
    let b = reg.authority(Authority {
        instance_id: "host-b".into(),
        control_channel: "aeron:udp?endpoint=10.0.0.2:40000".into(),
        control_stream_id: 1000,
    });
    let ann = |reg: &mut DiscoveryRegistry, who, epoch, nslots, pool| {
        reg.on_pool_announce(
            who,
            &ShmPoolAnnounce::decode(&announce(5, epoch, nslots, pool)).unwrap(),
            0,
        )
    };
    assert_eq!(ann(&mut reg, a, 2, 8, 8), AnnounceOutcome::Added);
    assert_eq!(ann(&mut reg, a, 2, 8, 8), AnnounceOutcome::Refreshed);
    assert_eq!(ann(&mut reg, a, 3, 16, 16), AnnounceOutcome::EpochReplaced);
    assert_eq!(ann(&mut reg, a, 1, 8, 8), AnnounceOutcome::EpochRegressed);
    assert_eq!(ann(&mut reg, b, 1, 8, 8), AnnounceOutcome::Added);
    assert_eq!(
        ann(&mut reg, b, 2, 8, 4),
        AnnounceOutcome::Invalid,
        "pool_nslots != header_nslots"
    );
    let entries: Vec<(usize, u64, u32)> = reg
        .entries()
        .iter()
        .map(|e| (e.authority, e.epoch, e.header_nslots))
        .collect();
    assert_eq!(entries, vec![(a, 3, 16), (b, 1, 8)]);
    let bytes = request(&Req {
        stream_id: Some(5),
        ..Req::default()
    });
    let req = DiscoveryRequest::decode(&bytes).unwrap();
    let Answer::Respond { response, .. } = reg.answer(&req, 0) else {
        panic!()
    };
    let wire = response.encode_to_vec().unwrap();
    let resp = DiscoveryResponse::decode(&wire).unwrap();
    let hosts: Vec<Vec<u8>> = resp
        .results
        .iter()
        .map(|r| r.driver_instance_id.as_bytes().to_vec())
        .collect();
    assert_eq!(hosts, vec![b"host-a".to_vec(), b"host-b".to_vec()]);
}
