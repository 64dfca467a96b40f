//! Rate limiter configuration (RateLimiter v1.0 §8): the Julia example loads unchanged and
//! means what it says; every §8 default; environment overrides win; mapping policies; and
//! every invalid setting is an error naming its key (forwarding with a zero stream id,
//! a destination that is a source, two producers for one destination, both policies on one
//! mapping).

use std::collections::HashMap;
use std::path::PathBuf;

use tensorpool::config::{ConfigError, NoEnv, Source};
use tensorpool::ratelimiter::{Policy, RateLimiterConfig};

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

const MIN: &str = r#"
[rate_limiter]
instance_id = "rl"
descriptor_channel = "aeron:ipc"
descriptor_stream_id = 1100
[[mappings]]
source_stream_id = 10000
dest_stream_id = 11000
"#;

fn load(text: &str) -> Result<RateLimiterConfig, ConfigError> {
    RateLimiterConfig::from_toml(text, &NoEnv)
}

fn error(text: &str) -> String {
    match load(text) {
        Ok(c) => panic!("accepted: {c:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn julia_example_loads_unchanged_with_every_key() {
    let Some(dir) = shared_configs() else { return };
    let path = dir.join("AeronTensorPool.jl/rate_limiter_example.toml");
    let c = RateLimiterConfig::load(Some(&path), &NoEnv).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.instance_id, "rate-limiter-01");
    assert_eq!(c.descriptor.channel, "aeron:ipc");
    assert_eq!(c.descriptor.stream_id, 1100);
    assert_eq!(c.driver_control.channel, "aeron:ipc");
    assert_eq!(c.driver_control.stream_id, 1000);
    assert_eq!(c.control_channel, "aeron:ipc?term-length=1m");
    assert_eq!(
        (c.source_control_stream_id, c.dest_control_stream_id),
        (1000, 1000)
    );
    assert_eq!((c.source_qos_stream_id, c.dest_qos_stream_id), (1200, 1200));
    assert_eq!((c.qos_stream_id, c.metadata_stream_id), (1200, 1300));
    assert!(c.forward_metadata && !c.forward_progress && !c.forward_qos);
    assert_eq!(c.max_rate_hz, 0);
    assert_eq!(c.shm_base_dir, PathBuf::from("/dev/shm"));
    assert_eq!(c.aeron_dir, None, "empty aeron_dir means not set");
    assert_eq!(c.mappings.len(), 1);
    let m = &c.mappings[0];
    assert_eq!((m.source_stream_id, m.dest_stream_id), (10_000, 11_000));
    assert_eq!(m.metadata_stream_id, 11_000);
    assert_eq!(m.policy, Policy::MaxRate { hz: 30 });
    assert!(c.unknown_keys.is_empty(), "{:?}", c.unknown_keys);
}

#[test]
fn rl_8_defaults() {
    let c = load(MIN).unwrap();
    assert!(c.forward_metadata);
    assert!(!c.forward_progress);
    assert!(!c.forward_qos);
    assert!(!c.per_consumer, "per-consumer operation is off by default");
    assert_eq!(c.max_rate_hz, 0);
    assert_eq!(c.control_channel, "aeron:ipc?term-length=1m");
    assert_eq!(c.qos_channel, "aeron:ipc?term-length=1m");
    assert_eq!(c.source_control_stream_id, 0);
    assert_eq!(c.dest_control_stream_id, 0);
    assert_eq!(c.source_qos_stream_id, 0);
    assert_eq!(c.dest_qos_stream_id, 0);
    assert_eq!(c.shm_base_dir, PathBuf::from("/dev/shm"));
    // driver_control_* default to control_channel / control_stream_id
    assert_eq!(c.driver_control.channel, c.control_channel);
    assert_eq!(c.driver_control.stream_id as u32, c.control_stream_id);
    assert_eq!(c.source_descriptor, c.descriptor);
    assert_eq!(c.mappings[0].policy, Policy::Unlimited);
    assert_eq!(c.mappings[0].metadata_stream_id, 11_000);
    assert_eq!(
        c.provenance.source("rate_limiter.forward_metadata"),
        Some(&Source::Default)
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn environment_overrides_win_and_mappings_inherit_the_global_rate() {
    let env: HashMap<String, String> = [
        ("RATE_LIMITER_MAX_RATE_HZ".to_owned(), "25".to_owned()),
        ("RATE_LIMITER_INSTANCE_ID".to_owned(), "from-env".to_owned()),
    ]
    .into();
    let text = format!(
        "{MIN}\n[[mappings]]\nsource_stream_id = 10001\ndest_stream_id = 11001\nmax_rate_hz = 5\n\
         [[mappings]]\nsource_stream_id = 10002\ndest_stream_id = 11002\ndecimation = 10\n"
    );
    let c = RateLimiterConfig::from_toml(&text, &env).unwrap();
    assert_eq!(c.instance_id, "from-env");
    assert_eq!(c.max_rate_hz, 25);
    assert_eq!(
        c.provenance.source("rate_limiter.max_rate_hz"),
        Some(&Source::Env("RATE_LIMITER_MAX_RATE_HZ".into()))
    );
    let p: Vec<Policy> = c.mappings.iter().map(|m| m.policy).collect();
    assert_eq!(
        p,
        vec![
            Policy::MaxRate { hz: 25 },
            Policy::MaxRate { hz: 5 },
            Policy::EveryNth { n: 10 }
        ]
    );
}

#[test]
fn rl_8_forwarding_never_starts_with_a_zero_stream_id() {
    let e = error(&MIN.replace(
        "descriptor_stream_id = 1100",
        "descriptor_stream_id = 1100\nforward_progress = true\nsource_control_stream_id = 1000",
    ));
    assert!(e.contains("rate_limiter.dest_control_stream_id"), "{e}");
    let e = error(&MIN.replace(
        "descriptor_stream_id = 1100",
        "descriptor_stream_id = 1100\nforward_qos = true\ndest_qos_stream_id = 1200",
    ));
    assert!(e.contains("rate_limiter.source_qos_stream_id"), "{e}");
}

#[test]
fn rl_3_the_destination_is_never_a_source_stream_and_has_one_producer() {
    let e = error(&MIN.replace("dest_stream_id = 11000", "dest_stream_id = 10000"));
    assert!(e.contains("mappings[0].dest_stream_id"), "{e}");
    let two = format!("{MIN}\n[[mappings]]\nsource_stream_id = 11000\ndest_stream_id = 12000\n");
    let e = error(&two);
    assert!(
        e.contains("mappings[0].dest_stream_id") && e.contains("source"),
        "{e}"
    );
    let dup = format!("{MIN}\n[[mappings]]\nsource_stream_id = 10001\ndest_stream_id = 11000\n");
    let e = error(&dup);
    assert!(e.contains("mappings[1].dest_stream_id"), "{e}");
}

#[test]
fn invalid_settings_name_their_key() {
    for (text, key) in [
        (
            MIN.replace("instance_id = \"rl\"\n", ""),
            "rate_limiter.instance_id",
        ),
        (
            MIN.replace("descriptor_stream_id = 1100\n", ""),
            "rate_limiter.descriptor_stream_id",
        ),
        (
            MIN.replace("descriptor_stream_id = 1100", "descriptor_stream_id = -1"),
            "rate_limiter.descriptor_stream_id",
        ),
        (
            MIN.replace(
                "descriptor_stream_id = 1100",
                "descriptor_stream_id = 4000000000",
            ),
            "rate_limiter.descriptor_stream_id",
        ),
        (
            MIN.replace(
                "dest_stream_id = 11000",
                "dest_stream_id = 11000\ndecimation = 0",
            ),
            "mappings[0].decimation",
        ),
        (
            MIN.replace(
                "dest_stream_id = 11000",
                "dest_stream_id = 11000\ndecimation = 10\nmax_rate_hz = 30",
            ),
            "mappings[0].decimation",
        ),
        (
            MIN.replace(
                "dest_stream_id = 11000",
                "dest_stream_id = 11000\nmax_rate = 30",
            ),
            "mappings[0].max_rate",
        ),
        (
            MIN.replace("source_stream_id = 10000\n", ""),
            "mappings[0].source_stream_id",
        ),
        (
            MIN.replace("source_stream_id = 10000", "source_stream_id = 0"),
            "mappings[0].source_stream_id",
        ),
        (
            MIN.replace(
                "[[mappings]]\nsource_stream_id = 10000\ndest_stream_id = 11000\n",
                "",
            ),
            "mappings",
        ),
        (
            MIN.replace(
                "descriptor_stream_id = 1100",
                "descriptor_stream_id = 1100\nforward_qos = \"yes\"",
            ),
            "rate_limiter.forward_qos",
        ),
    ] {
        let e = error(&text);
        assert!(e.contains(key), "{key}: {e}");
    }
}
