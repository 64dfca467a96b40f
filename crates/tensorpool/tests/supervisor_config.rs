//! Supervisor configuration: the C implementation's `[supervisor]` example loads unchanged
//! and means what it says; defaults and derivations from `[driver]`; environment overrides
//! win; rules; every invalid key is an error naming it; a per-consumer range overlapping the
//! driver's stream-id ranges is refused.

use std::collections::HashMap;
use std::path::PathBuf;

use tensorpool::config::{ConfigError, IdRange, NoEnv, Source};
use tensorpool::driver::DriverConfig;
use tensorpool::supervisor::{DriverStreamIds, Rule, SupervisorConfig};
use tensorpool_codec::wire::Mode;

fn shared_configs() -> Option<PathBuf> {
    let dir = std::env::var_os("TENSORPOOL_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
        .join("configs");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!(
            "skipped: peer configs not found at {}; set TENSORPOOL_SHARED_DIR",
            dir.display()
        );
        None
    }
}

fn load(text: &str) -> Result<SupervisorConfig, ConfigError> {
    SupervisorConfig::from_toml(text, &NoEnv)
}

fn error(text: &str) -> String {
    match load(text) {
        Ok(c) => panic!("accepted: {c:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn c_integration_example_loads_unchanged_with_every_key() {
    let Some(dir) = shared_configs() else { return };
    let path = dir.join("tensor_pool_c/driver_integration_example.toml");
    let c = SupervisorConfig::load(Some(&path), &NoEnv).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.control_channel, "aeron:ipc?term-length=4m");
    assert_eq!(c.control_stream_id, 1000);
    assert_eq!(c.announce_channel, "aeron:ipc?term-length=4m");
    assert_eq!(c.announce_stream_id, 1001);
    assert_eq!(c.metadata_channel, "aeron:ipc?term-length=4m");
    assert_eq!(c.metadata_stream_id, 1300);
    assert_eq!(c.qos_channel, "aeron:ipc?term-length=4m");
    assert_eq!(c.qos_stream_id, 1200);
    assert_eq!(c.consumer_capacity, 256);
    assert_eq!(c.consumer_stale_ms, 5000);
    assert!(c.per_consumer_enabled);
    assert_eq!(
        c.per_consumer_descriptor_channel,
        "aeron:ipc?term-length=4m"
    );
    assert_eq!(c.per_consumer_descriptor_base, 31_000);
    assert_eq!(c.per_consumer_descriptor_range, 1000);
    assert_eq!(c.per_consumer_control_channel, "aeron:ipc?term-length=4m");
    assert_eq!(c.per_consumer_control_base, 32_000);
    assert_eq!(c.per_consumer_control_range, 1000);
    assert!(!c.force_no_shm);
    assert_eq!(c.force_mode, None);
    assert_eq!(c.payload_fallback_uri, "");
    assert!(c.rules.is_empty());
    assert!(c.unknown_keys.is_empty(), "{:?}", c.unknown_keys);
    // all 20 keys came from the file
    let from_file = c
        .provenance
        .entries()
        .iter()
        .filter(|e| e.source == Source::File)
        .count();
    assert_eq!(from_file, 20);
    assert_eq!(c.descriptor_range(), IdRange::new(31_000, 31_999));
    assert_eq!(c.control_range(), IdRange::new(32_000, 32_999));
}

#[test]
fn defaults_come_from_the_driver_table_then_the_conventions() {
    let c = load("").unwrap();
    assert_eq!(
        (
            c.control_stream_id,
            c.announce_stream_id,
            c.metadata_stream_id,
            c.qos_stream_id
        ),
        (1000, 1001, 1300, 1200)
    );
    assert_eq!(c.control_channel, "aeron:ipc?term-length=4m");
    assert!(!c.per_consumer_enabled);
    assert_eq!(
        (c.per_consumer_descriptor_base, c.per_consumer_control_base),
        (31_000, 32_000)
    );
    assert_eq!(
        c.provenance.source("supervisor.consumer_capacity"),
        Some(&Source::Default)
    );
    let c = load(
        "[driver]\ncontrol_channel = \"aeron:ipc?alias=ctl\"\ncontrol_stream_id = 1500\nqos_stream_id = 1600\n",
    )
    .unwrap();
    assert_eq!(c.control_channel, "aeron:ipc?alias=ctl");
    assert_eq!(c.control_stream_id, 1500);
    assert_eq!(
        c.announce_channel, "aeron:ipc?alias=ctl",
        "driver announce = driver control"
    );
    assert_eq!(c.announce_stream_id, 1500);
    assert_eq!(c.qos_stream_id, 1600);
    assert_eq!(
        c.provenance.source("supervisor.control_stream_id"),
        Some(&Source::Derived("driver.control_stream_id"))
    );
}

#[test]
fn environment_overrides_the_file() {
    let env = HashMap::from([
        ("SUPERVISOR_CONSUMER_CAPACITY".to_string(), "8".to_string()),
        (
            "SUPERVISOR_FORCE_MODE".to_string(),
            "RATE_LIMITED".to_string(),
        ),
        (
            "SUPERVISOR_PER_CONSUMER_ENABLED".to_string(),
            "true".to_string(),
        ),
    ]);
    let c = SupervisorConfig::from_toml("[supervisor]\nconsumer_capacity = 64\n", &env).unwrap();
    assert_eq!(c.consumer_capacity, 8);
    assert_eq!(c.force_mode, Some(Mode::RateLimited));
    assert!(c.per_consumer_enabled);
    assert_eq!(
        c.provenance.source("supervisor.consumer_capacity"),
        Some(&Source::Env("SUPERVISOR_CONSUMER_CAPACITY".into()))
    );
    let bad = HashMap::from([(
        "SUPERVISOR_CONSUMER_STALE_MS".to_string(),
        "soon".to_string(),
    )]);
    let e = SupervisorConfig::from_toml("", &bad)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("supervisor.consumer_stale_ms") && e.contains("SUPERVISOR_CONSUMER_STALE_MS"),
        "{e}"
    );
}

#[test]
fn rules_select_by_consumer_id_range_and_refuse_names() {
    let c = load(
        r#"[[supervisor.rules]]
consumer_id_range = "100-199"
stream_id = 10001
force_no_shm = true
[[supervisor.rules]]
consumer_id_range = [200, 200]
force_mode = "RATE_LIMITED"
"#,
    )
    .unwrap();
    assert_eq!(
        c.rules[0].consumer_id_range,
        Some(IdRange {
            start: 100,
            end: 199
        })
    );
    assert!(c.unknown_keys.is_empty(), "{:?}", c.unknown_keys);
    let rule = |s, id| c.rule_for(s, id).map(|(i, _)| i);
    assert_eq!(rule(10_001, 100), Some(0));
    assert_eq!(rule(10_001, 199), Some(0));
    assert_eq!(rule(10_001, 99), None);
    assert_eq!(rule(10_002, 150), None, "the stream selector still applies");
    assert_eq!(rule(10_001, 200), Some(1));
    assert_eq!(rule(10_002, 201), None);

    // a name is not on the wire (ConsumerHello has no name field): refused, not ignored
    for f in ["name", "consumer_name"] {
        let e = load(&format!(
            "[[supervisor.rules]]\n{f} = \"cam-viewer\"\nforce_no_shm = true\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains(&format!("supervisor.rules[0].{f}")) && e.contains("no consumer name"),
            "{e}"
        );
    }
    for (text, key) in [
        (
            "consumer_id = 1\nconsumer_id_range = \"1-5\"",
            "consumer_id_range",
        ),
        ("consumer_id_range = \"9-1\"", "consumer_id_range"),
        ("consumer_id_range = \"\"", "consumer_id_range"),
        ("consumer_id_range = 5", "consumer_id_range"),
    ] {
        let e = load(&format!(
            "[[supervisor.rules]]\n{text}\nforce_no_shm = true\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains(&format!("supervisor.rules[0].{key}")),
            "{text}: {e}"
        );
    }
}

#[test]
fn rules_are_read_in_order_and_unknown_fields_reported() {
    let c = load(
        r#"[[supervisor.rules]]
consumer_id = 7
force_mode = 2
max_rate_hz = 5
[[supervisor.rules]]
stream_id = 10001
force_no_shm = true
payload_fallback_uri = "bridge://cam1"
colour = "red"
"#,
    )
    .unwrap();
    assert_eq!(
        c.rules,
        vec![
            Rule {
                consumer_id: Some(7),
                force_mode: Some(Mode::RateLimited),
                max_rate_hz: Some(5),
                ..Rule::default()
            },
            Rule {
                stream_id: Some(10_001),
                force_no_shm: Some(true),
                payload_fallback_uri: Some("bridge://cam1".into()),
                ..Rule::default()
            },
        ]
    );
    assert_eq!(
        c.unknown_keys,
        vec!["supervisor.rules[1].colour".to_string()]
    );
    assert_eq!(
        c.rule_for(10_001, 7).map(|(i, _)| i),
        Some(0),
        "first match wins"
    );
    assert_eq!(c.rule_for(10_001, 8).map(|(i, _)| i), Some(1));
    assert!(c.rule_for(10_000, 8).is_none());
}

#[test]
fn each_invalid_key_is_a_clear_error() {
    let cases: &[(&str, &str)] = &[
        (
            "[supervisor]\nconsumer_capacity = 0",
            "supervisor.consumer_capacity",
        ),
        (
            "[supervisor]\nconsumer_capacity = -1",
            "supervisor.consumer_capacity",
        ),
        (
            "[supervisor]\nconsumer_capacity = 100000",
            "supervisor.consumer_capacity",
        ),
        (
            "[supervisor]\nconsumer_stale_ms = 0",
            "supervisor.consumer_stale_ms",
        ),
        (
            "[supervisor]\nproducer_stale_ms = 0",
            "supervisor.producer_stale_ms",
        ),
        ("[supervisor]\nforce_mode = 3", "supervisor.force_mode"),
        (
            "[supervisor]\nforce_mode = \"FAST\"",
            "supervisor.force_mode",
        ),
        ("[supervisor]\nforce_no_shm = 1", "supervisor.force_no_shm"),
        (
            "[supervisor]\nallowed_base_dirs = [\"relative/dir\"]",
            "supervisor.allowed_base_dirs",
        ),
        (
            "[supervisor]\nallowed_base_dirs = \"/dev/shm\"",
            "supervisor.allowed_base_dirs",
        ),
        (
            "[supervisor]\ncontrol_stream_id = 3000000000",
            "supervisor.control_stream_id",
        ),
        ("[supervisor]\nqos_channel = 5", "supervisor.qos_channel"),
        (
            "[supervisor]\npayload_fallback_uri = \"http://x\"",
            "supervisor.payload_fallback_uri",
        ),
        (
            "[supervisor]\npayload_fallback_uri = \"bridge://\"",
            "supervisor.payload_fallback_uri",
        ),
        (
            "[supervisor]\nper_consumer_descriptor_range = 0",
            "supervisor.per_consumer_descriptor_range",
        ),
        (
            "[supervisor]\nper_consumer_control_base = 2147483000",
            "supervisor.per_consumer_control_range",
        ),
        (
            "[supervisor]\nper_consumer_enabled = true\nper_consumer_control_base = 31500",
            "supervisor.per_consumer_descriptor_base",
        ),
        (
            "[supervisor]\nper_consumer_enabled = true\nper_consumer_descriptor_base = 1000\nper_consumer_descriptor_range = 10",
            "supervisor.per_consumer_descriptor_base",
        ),
        ("[supervisor]\nrules = 3", "supervisor.rules"),
        (
            "[[supervisor.rules]]\nconsumer_id = 1",
            "supervisor.rules[0]",
        ),
        (
            "[[supervisor.rules]]\nconsumer_id = -1\nforce_mode = 1",
            "supervisor.rules[0].consumer_id",
        ),
        (
            "[[supervisor.rules]]\nforce_mode = \"x\"",
            "supervisor.rules[0].force_mode",
        ),
        (
            "[[supervisor.rules]]\nforce_no_shm = \"yes\"",
            "supervisor.rules[0].force_no_shm",
        ),
        (
            "[[supervisor.rules]]\nmax_rate_hz = 5",
            "supervisor.rules[0].max_rate_hz",
        ),
        (
            "[[supervisor.rules]]\npayload_fallback_uri = \"file:///x\"",
            "supervisor.rules[0].payload_fallback_uri",
        ),
    ];
    for (text, key) in cases {
        let e = error(text);
        assert!(e.starts_with(key), "{text:?}: {e:?} does not name {key}");
    }
}

fn driver_ids(d: &DriverConfig) -> DriverStreamIds {
    let s = &d.driver;
    let mut fixed = vec![
        ("driver.control_stream_id".to_owned(), s.control_stream_id),
        ("driver.announce_stream_id".to_owned(), s.announce_stream_id),
        ("driver.qos_stream_id".to_owned(), s.qos_stream_id),
    ];
    for st in &d.streams {
        fixed.push((format!("streams.{}.stream_id", st.name), st.stream_id));
    }
    DriverStreamIds {
        ranges: s
            .stream_id_range
            .map(|r| ("driver.stream_id_range".to_owned(), r))
            .into_iter()
            .collect(),
        descriptor_range: s.descriptor_stream_id_range,
        control_range: s.control_stream_id_range,
        fixed,
    }
}

#[test]
fn the_c_example_passes_the_check_against_its_own_driver_table() {
    // the C layout: [driver] reserves 31000-31999 / 32000-32999 and [supervisor] allocates
    // exactly those ids; one authority, not a clash
    let Some(dir) = shared_configs() else { return };
    let path = dir.join("tensor_pool_c/driver_integration_example.toml");
    let d = DriverConfig::load(Some(&path), &NoEnv).unwrap();
    let c = SupervisorConfig::load(Some(&path), &NoEnv).unwrap();
    c.check_against_driver(&driver_ids(&d)).unwrap();
}

#[test]
fn ranges_overlapping_the_drivers_are_refused() {
    let c = load("[supervisor]\nper_consumer_enabled = true\n").unwrap();
    let refused = |d: &DriverStreamIds, keys: [&str; 2]| {
        let e = c.check_against_driver(d).unwrap_err().to_string();
        assert!(
            keys.iter().all(|k| e.contains(k)),
            "{e} does not name {keys:?}"
        );
    };
    let r = |a, b| IdRange::new(a, b).unwrap();
    // straddling the edge of the driver's range of the same kind
    refused(
        &DriverStreamIds {
            descriptor_range: Some(r(31_500, 32_600)),
            ..DriverStreamIds::default()
        },
        [
            "supervisor.per_consumer_descriptor_base",
            "driver.descriptor_stream_id_range",
        ],
    );
    // the driver's range of the other kind
    refused(
        &DriverStreamIds {
            control_range: Some(r(31_900, 31_950)),
            ..DriverStreamIds::default()
        },
        [
            "supervisor.per_consumer_descriptor_base",
            "driver.control_stream_id_range",
        ],
    );
    // a range the driver allocates itself
    refused(
        &DriverStreamIds {
            ranges: vec![("driver.stream_id_range".into(), r(32_500, 40_000))],
            ..DriverStreamIds::default()
        },
        [
            "supervisor.per_consumer_control_base",
            "driver.stream_id_range",
        ],
    );
    // a fixed id
    refused(
        &DriverStreamIds {
            fixed: vec![("streams.cam1.stream_id".into(), 32_010)],
            ..DriverStreamIds::default()
        },
        [
            "supervisor.per_consumer_control_base",
            "streams.cam1.stream_id",
        ],
    );
    // inside the driver's same-kind ranges, apart from the rest: accepted
    let apart = DriverStreamIds {
        ranges: vec![("driver.stream_id_range".into(), r(20_000, 29_999))],
        descriptor_range: Some(r(30_000, 31_999)),
        control_range: Some(r(32_000, 32_999)),
        fixed: vec![("streams.cam1.stream_id".into(), 10_000)],
    };
    c.check_against_driver(&apart).unwrap();
    // disabled: nothing allocated, nothing to clash
    load("")
        .unwrap()
        .check_against_driver(&DriverStreamIds {
            fixed: vec![("x".into(), 31_000)],
            ..DriverStreamIds::default()
        })
        .unwrap();
}

#[test]
fn questionable_settings_are_warnings() {
    let c = load("[supervisor]\nforce_no_shm = true\n").unwrap();
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("payload_fallback_uri")),
        "{:?}",
        c.warnings
    );
}
