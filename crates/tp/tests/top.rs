//! `tp top` under a pseudo-terminal (portable-pty; the screen is rebuilt with vt100): the
//! test publishes announces, data source announces and QoS through an embedded media driver,
//! reads the screen for the stream id, epoch, name, rate and lag, drills into the stream,
//! goes back, changes the sort, and quits with `q`.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::pty::{Screen, cell, contents, spawn_top};
use common::{DEADLINE, bytes_of, connected_publication, offer};
use tensorpool_aeron::Publication;
use tensorpool_codec::wire::*;
use tensorpool_codec::{AnyMessage, Bytes, Group};

const STREAM: u32 = 10_000;
const EPOCH: u64 = 42;
use tensorpool::consumer::counters::{
    DROPS as COUNTER_DROPS, FRAMES as COUNTER_FRAMES, LATENCY_P50 as COUNTER_P50,
    LATENCY_P99 as COUNTER_P99,
};

/// The publications of one fake producer (stream 10000) and one consumer (id 7).
struct Traffic {
    announce: Publication,
    qos: Publication,
    metadata: Publication,
    seq: u64,
    ticks: u64,
}

impl Traffic {
    /// One 100 ms tick: QoS every time (seq += 10, so 100 frames/s; the consumer 5
    /// behind), announces every fifth.
    fn tick(&mut self) {
        self.seq += 10;
        let producer = AnyMessage::QosProducer(QosProducer {
            stream_id: STREAM,
            producer_id: 5,
            epoch: EPOCH,
            current_seq: self.seq,
            watermark: None,
        });
        let consumer = AnyMessage::QosConsumer(QosConsumer {
            stream_id: STREAM,
            consumer_id: 7,
            epoch: EPOCH,
            last_seq_seen: self.seq - 5,
            drops_gap: 3,
            drops_late: 1,
            mode: Mode::Stream,
        });
        offer(&mut self.qos, &bytes_of(&producer));
        offer(&mut self.qos, &bytes_of(&consumer));
        if self.ticks.is_multiple_of(5) {
            offer(&mut self.announce, &bytes_of(&announce()));
            let source = AnyMessage::DataSourceAnnounce(DataSourceAnnounce {
                stream_id: STREAM,
                producer_id: 5,
                epoch: EPOCH,
                meta_version: 1,
                name: Bytes::from("cam0".to_owned()),
                summary: Bytes::from("front camera".to_owned()),
            });
            offer(&mut self.metadata, &bytes_of(&source));
        }
        self.ticks += 1;
    }
}

fn announce() -> AnyMessage<'static> {
    let pools = vec![PayloadPool {
        pool_id: 1,
        pool_nslots: 64,
        stride_bytes: 4096,
        region_uri: Bytes::from("shm:file?path=/dev/shm/t/1.pool".to_owned()),
    }];
    AnyMessage::ShmPoolAnnounce(ShmPoolAnnounce {
        stream_id: STREAM,
        producer_id: 5,
        epoch: EPOCH,
        announce_timestamp_ns: 1,
        announce_clock_domain: ClockDomain::Monotonic,
        layout_version: 1,
        header_nslots: 64,
        header_slot_bytes: 256,
        payload_pools: Group::Owned(pools),
        header_region_uri: Bytes::from("shm:file?path=/dev/shm/t/header.ring".to_owned()),
    })
}

/// Publishes a tick every 100 ms until `pred` holds for the screen (bounded).
fn publish_until(traffic: &mut Traffic, screen: &Screen, what: &str, pred: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        traffic.tick();
        let text = contents(screen);
        if pred(&text) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "screen never showed {what}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A producer rate is shown. Its value is not judged here: the ticks run on a shared machine's
/// wall clock (no rate can be asserted on it); the figure itself is proved with a synthetic
/// clock by `top::model::tests::producer_rate_consumer_lag_and_drops`.
fn fps_ok(text: &str) -> bool {
    cell(text, "FPS", "10000")
        .and_then(|v| v.parse::<f64>().ok())
        .is_some_and(|fps| fps > 0.0 && fps.is_finite())
}

#[test]
fn top_shows_streams_rates_and_details_under_a_pty() {
    let driver = common::driver();
    let client = common::connect(&driver);
    // Consumer 7's own counters, as a consumer publishes them: matched by key, not label.
    let key = |detail| {
        tensorpool::counters::CounterKey {
            stream_id: STREAM,
            client_id: 7,
            role: tensorpool::counters::Role::Consumer,
            detail,
            pid: std::process::id(),
        }
        .encode()
    };
    let consumer_counter = |kind: &tensorpool::counters::Kind, detail, label: &str, value| {
        let c = client
            .add_counter(kind.type_id(), &key(detail), label, common::TIMEOUT)
            .expect("counter");
        c.set(value);
        c
    };
    use tensorpool::consumer::DropCause;
    use tensorpool_shm::DropReason;
    let late = DropCause::Slot(DropReason::Late).index() as u16;
    let _counters = [
        consumer_counter(&COUNTER_FRAMES, 0, "consumer frames stream 10000", 777),
        consumer_counter(&COUNTER_P50, 0, "p50", 12_000),
        consumer_counter(&COUNTER_P99, 0, "p99", 48_000),
        consumer_counter(&COUNTER_DROPS, late, "drops late", 3),
    ];

    let mut top = spawn_top(&["--aeron-dir", driver.dir().to_str().expect("dir")]);
    let screen = top.screen.clone();
    let mut press = |bytes: &[u8]| {
        top.keys.write_all(bytes).expect("key");
        top.keys.flush().expect("flush");
    };

    let mut traffic = Traffic {
        announce: connected_publication(&client, 1001),
        qos: connected_publication(&client, 1200),
        metadata: connected_publication(&client, 1300),
        seq: 1000,
        ticks: 0,
    };
    publish_until(
        &mut traffic,
        &screen,
        "stream 10000 with epoch, name, rate and lag",
        |t| {
            t.contains("10000")
                && cell(t, "EPOCH", "10000").as_deref() == Some("42")
                && cell(t, "NAME", "10000").as_deref() == Some("cam0")
                && cell(t, "MAX_LAG", "10000").as_deref() == Some("5")
                && cell(t, "DROPS", "10000").as_deref() == Some("4")
                && fps_ok(t)
                && t.contains("consumer frames stream 10000")
        },
    );

    press(b"\r");
    publish_until(&mut traffic, &screen, "the stream's details", |t| {
        t.contains("stream 10000 cam0")
            && t.contains("epoch 42  producer 5")
            && t.contains("consumers (1)")
            && cell(t, "LAG", "7").as_deref() == Some("5")
            && t.contains("4096")
            && t.contains("first seen")
            && t.contains("777")
            && cell(t, "P50_US", "7").as_deref() == Some("12.0")
            && cell(t, "P99_US", "7").as_deref() == Some("48.0")
            && t.contains("late:3")
    });

    press(b"\x1b");
    publish_until(&mut traffic, &screen, "the stream table again", |t| {
        t.contains("streams (1)")
    });
    press(b"s");
    publish_until(&mut traffic, &screen, "sort by name", |t| {
        t.contains("sort: name")
    });

    top.quit();
}

#[test]
fn top_without_a_driver_fails_in_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().join("none");
    common::tp(&[
        "top",
        "--aeron-dir",
        d.to_str().expect("dir"),
        "--timeout",
        "1",
    ])
    .fails_with("timed out");
    common::tp(&["top", "--window-secs", "0"]).fails_with("--window-secs");
}

/// SIGTERM and SIGINT end `tp top` like `q`: exit 0 with the terminal restored (raw mode
/// off, alternate screen left), not a shell left in raw mode.
#[test]
fn top_restores_the_terminal_on_sigterm_and_sigint() {
    let driver = common::driver();
    for signal in ["TERM", "INT"] {
        let top = spawn_top(&["--aeron-dir", driver.dir().to_str().expect("dir")]);
        top.wait_for("its screen", || {}, |text| text.contains("streams ("));
        top.signal(signal);
    }
}

/// A publication held at its limit by a subscription that never polls (tethered, in this
/// process): `tp top` names the holding subscription under its title.
#[test]
fn top_names_the_subscription_holding_a_stalled_stream() {
    let driver = common::driver();
    let client = common::connect(&driver);
    let holder = client
        .add_subscription("aeron:ipc", 1100, Duration::from_secs(5))
        .expect("subscription");
    let mut publication = client
        .add_exclusive_publication("aeron:ipc?term-length=64k", 1100, Duration::from_secs(5))
        .expect("publication");
    common::wait_until("the subscriber connected", || publication.is_connected());
    let deadline = Instant::now() + DEADLINE;
    // fill the window (32 KiB) until Aeron refuses with back pressure
    while publication.offer(&[7u8; 64]).is_ok() {
        assert!(Instant::now() < deadline, "never back-pressured");
    }
    let top = spawn_top(&["--aeron-dir", driver.dir().to_str().expect("dir")]);
    let needle = format!("held by subscription {}", holder.registration_id());
    top.wait_for(
        &needle,
        || {},
        |text| text.contains("HELD stream 1100") && text.contains(&needle),
    );
    top.quit();
}

/// A real `tp supervisor` (a rule forcing consumer 7 to RATE_LIMITED) answers the hellos this
/// test publishes for consumer 7: `tp top` shows a SUPERVISOR section with the consumer's
/// asked and assigned modes, its lag from QoS, and `live`.
#[test]
fn top_shows_the_supervisors_view_when_one_runs() {
    let driver = common::driver();
    let client = common::connect(&driver);
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = tmp.path().join("supervisor.toml");
    std::fs::write(
        &cfg,
        "[supervisor]\ncontrol_channel = \"aeron:ipc\"\nconsumer_capacity = 8\n[[supervisor.rules]]\nconsumer_id = 7\nforce_mode = \"RATE_LIMITED\"\n",
    )
    .expect("config");
    let dir = driver.dir().to_str().expect("dir").to_owned();
    let supervisor = std::process::Command::new(common::TP)
        .args(["supervisor", "--config", cfg.to_str().expect("cfg")])
        .args(["--aeron-dir", &dir, "--idle", "backoff"])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("spawn tp supervisor");
    let _supervisor = common::ChildGuard(Some(supervisor));

    let top = spawn_top(&["--aeron-dir", &dir]);
    let mut control = connected_publication(&client, 1000);
    let mut traffic = Traffic {
        announce: connected_publication(&client, 1001),
        qos: connected_publication(&client, 1200),
        metadata: connected_publication(&client, 1300),
        seq: 1000,
        ticks: 0,
    };
    let hello = AnyMessage::ConsumerHello(ConsumerHello {
        stream_id: STREAM,
        consumer_id: 7,
        supports_shm: true,
        supports_progress: false,
        mode: Mode::Stream,
        max_rate_hz: 0,
        expected_layout_version: 1,
        progress_interval_us: None,
        progress_bytes_delta: None,
        progress_major_delta_units: None,
        descriptor_stream_id: 0,
        control_stream_id: 0,
        descriptor_channel: Bytes::from(String::new()),
        control_channel: Bytes::from(String::new()),
    });
    let hello = bytes_of(&hello);
    top.wait_for(
        "the SUPERVISOR section with consumer 7 forced to RATE_LIMITED",
        || {
            offer(&mut control, &hello);
            traffic.tick();
        },
        |t| {
            t.contains("SUPERVISOR (ConsumerConfig from 1 session(s)")
                && cell(t, "SUP_MODE", "10000/7").as_deref() == Some("RATE_LIMITED")
                && cell(t, "ASKED", "10000/7").as_deref() == Some("STREAM")
                && cell(t, "SUP_LAG", "10000/7").as_deref() == Some("5")
        },
    );
    top.quit();
}
