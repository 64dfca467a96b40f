use super::*;
use tensorpool_codec::wire::{ClockDomain, Mode, PayloadPool};
use tensorpool_codec::{Bytes, Group};

const MS: u64 = 1_000_000;
const SEC: u64 = 1_000_000_000;

fn announce(stream_id: u32, epoch: u64) -> AnyMessage<'static> {
    let pools = vec![PayloadPool {
        pool_id: 1,
        pool_nslots: 64,
        stride_bytes: 4096,
        region_uri: Bytes::from("shm:file?path=/dev/shm/x/1.pool".to_owned()),
    }];
    AnyMessage::ShmPoolAnnounce(ShmPoolAnnounce {
        stream_id,
        producer_id: 5,
        epoch,
        announce_timestamp_ns: 0,
        announce_clock_domain: ClockDomain::Monotonic,
        layout_version: 1,
        header_nslots: 64,
        header_slot_bytes: 256,
        payload_pools: Group::Owned(pools),
        header_region_uri: Bytes::from("shm:file?path=/dev/shm/x/header.ring".to_owned()),
    })
}

fn producer(stream_id: u32, epoch: u64, seq: u64) -> AnyMessage<'static> {
    AnyMessage::QosProducer(QosProducer {
        stream_id,
        producer_id: 5,
        epoch,
        current_seq: seq,
        watermark: None,
    })
}

fn consumer(stream_id: u32, id: u32, seq: u64, gap: u64, late: u64) -> AnyMessage<'static> {
    AnyMessage::QosConsumer(QosConsumer {
        stream_id,
        consumer_id: id,
        epoch: 3,
        last_seq_seen: seq,
        drops_gap: gap,
        drops_late: late,
        mode: Mode::Stream,
    })
}

#[test]
fn rate_window_slope_reset_and_pruning() {
    let mut r = RateWindow::new(5 * SEC);
    assert_eq!(r.rate(), None);
    r.push(0, 0);
    assert_eq!(r.rate(), None);
    r.push(SEC, 100);
    r.push(2 * SEC, 200);
    assert_eq!(r.rate(), Some(100.0));
    // samples older than the window go, the slope stays that of the window
    for i in 3..20 {
        r.push(i * SEC, i * 50 + 100);
    }
    assert_eq!(r.rate(), Some(50.0));
    assert!(r.samples.len() <= 7);
    // a lower value (new epoch) starts over
    r.push(21 * SEC, 3);
    assert_eq!(r.rate(), None);
}

#[test]
fn announces_record_epochs_and_layout() {
    let mut m = Model::new(5 * SEC, 10 * SEC);
    m.on_message(&announce(10_000, 1), 0);
    m.on_message(&announce(10_000, 1), SEC);
    m.on_message(&announce(10_000, 2), 2 * SEC);
    let s = m.stream(10_000).unwrap();
    let epochs: Vec<u64> = s.epochs.iter().map(|&(e, _)| e).collect();
    assert_eq!(epochs, [1, 2]);
    let a = s.announce.as_ref().unwrap();
    assert_eq!((a.epoch, a.producer_id, a.header_nslots), (2, 5, 64));
    assert_eq!(a.pools[0].stride_bytes, 4096);
    assert_eq!(a.clock_domain, "Monotonic");
    let rows = m.rows(SortKey::Stream, 3 * SEC);
    assert_eq!(rows[0].announce_age_ms, Some(1000));
    assert_eq!(rows[0].epoch, Some(2));
    for e in 3..20 {
        m.on_message(&announce(10_000, e), 3 * SEC);
    }
    assert_eq!(m.stream(10_000).unwrap().epochs.len(), EPOCH_HISTORY);
}

#[test]
fn producer_rate_consumer_lag_and_drops() {
    let mut m = Model::new(5 * SEC, 10 * SEC);
    for i in 0..5u64 {
        m.on_message(&producer(10_000, 3, 100 + i * 30), i * SEC);
        m.on_message(&consumer(10_000, 7, 95 + i * 30, 1, 2), i * SEC);
        m.on_message(&consumer(10_000, 8, 80 + i * 30, 0, 4), i * SEC);
    }
    let rows = m.rows(SortKey::Stream, 4 * SEC);
    let r = &rows[0];
    assert_eq!(r.fps, Some(30.0));
    assert_eq!(r.consumers, 2);
    assert_eq!(r.max_lag, Some(20));
    assert_eq!(r.drops, 1 + 2 + 4);
    assert_eq!(r.epoch, Some(3));
    let s = m.stream(10_000).unwrap();
    let c = &s.consumers[&7];
    assert_eq!((s.lag(c), c.rate.rate()), (Some(5), Some(30.0)));
    assert_eq!(c.mode, "Stream");
}

#[test]
fn lag_needs_the_same_epoch() {
    let mut m = Model::new(5 * SEC, 10 * SEC);
    m.on_message(&producer(1, 4, 100), 0);
    m.on_message(&consumer(1, 7, 50, 0, 0), 0);
    let s = m.stream(1).unwrap();
    assert_eq!(s.lag(&s.consumers[&7]), None);
}

#[test]
fn descriptors_give_a_rate_without_qos() {
    let mut m = Model::new(5 * SEC, 10 * SEC);
    for i in 0..=20u64 {
        let fd = AnyMessage::FrameDescriptor(FrameDescriptor {
            stream_id: 9,
            epoch: 1,
            seq: i,
            timestamp_ns: None,
            meta_version: None,
            trace_id: None,
        });
        m.on_message(&fd, i * 50 * MS);
    }
    let rows = m.rows(SortKey::Stream, SEC);
    assert_eq!(rows[0].descriptor_fps, Some(20.0));
    assert_eq!(rows[0].fps, Some(20.0));
    assert_eq!(m.stream(9).unwrap().producer_seq(), Some(20));
}

#[test]
fn names_sorting_and_staleness() {
    let mut m = Model::new(5 * SEC, 10 * SEC);
    let ds = |id: u32, name: &str| {
        AnyMessage::DataSourceAnnounce(DataSourceAnnounce {
            stream_id: id,
            producer_id: 1,
            epoch: 1,
            meta_version: 1,
            name: Bytes::from(name.to_owned()),
            summary: Bytes::from("s".to_owned()),
        })
    };
    m.on_message(&ds(1, "zeta"), 0);
    m.on_message(&ds(2, "alpha"), 20 * SEC);
    for i in 0..3 {
        m.on_message(&producer(1, 1, i * 10), 20 * SEC + i * SEC);
    }
    let names: Vec<String> = m
        .rows(SortKey::Name, 22 * SEC)
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["alpha", "zeta"]);
    let fps: Vec<u32> = m
        .rows(SortKey::Fps, 22 * SEC)
        .iter()
        .map(|r| r.stream_id)
        .collect();
    assert_eq!(fps, [1, 2]);
    let rows = m.rows(SortKey::Stream, 31 * SEC);
    assert!(!rows[0].stale);
    assert!(rows[1].stale);
    m.on_malformed();
    assert_eq!((m.messages, m.malformed), (5, 1));
    let mut k = SortKey::default();
    for _ in 0..6 {
        k = k.next();
    }
    assert_eq!(k, SortKey::Stream);
}

fn counter(
    kind: u16,
    stream_id: u32,
    role: &'static str,
    client_id: u32,
    cause: Option<&'static str>,
    value: i64,
) -> CounterRow {
    CounterRow {
        id: 0,
        type_name: String::new(),
        label: format!("label of {kind}"),
        value,
        rate: None,
        key: Some(Key {
            stream_id,
            role,
            client_id,
            detail: 0,
            cause,
            pid: 1,
            kind,
        }),
    }
}

#[test]
fn counters_are_matched_to_streams_and_consumers_by_key() {
    let mut m = Model::new(5 * SEC, 10 * SEC);
    m.counters = vec![
        counter(101, 7, "producer", 5, None, 100),
        counter(201, 7, "consumer", 9, None, 90),
        counter(203, 7, "consumer", 9, Some("late"), 3),
        counter(203, 7, "consumer", 9, Some("epoch_mismatch"), 0),
        counter(203, 7, "consumer", 9, Some("stale"), 5),
        counter(208, 7, "consumer", 9, None, 12_000),
        counter(209, 7, "consumer", 9, None, 48_000),
        counter(209, 8, "consumer", 9, None, 1),
        counter(301, 0, "driver", 0, None, 1),
        CounterRow {
            key: None,
            ..counter(1, 7, "producer", 5, None, 1)
        },
    ];
    assert_eq!(m.stream_counters(7).count(), 7, "by key, not by label");
    assert_eq!(m.stream_counters(0).count(), 1);
    let c = m.consumer_counters(7, 9);
    assert_eq!(c.latency_p50_ns, Some(12_000));
    assert_eq!(c.latency_p99_ns, Some(48_000));
    assert_eq!(c.latency_last_ns, None);
    assert_eq!(c.drops, [("stale", 5), ("late", 3)]);
    assert_eq!(m.consumer_counters(7, 1), ConsumerCounters::default());
}

fn bytes(m: &AnyMessage<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let n = m.encode(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

#[test]
fn supervisor_section_follows_consumer_configs_and_marks_stale_consumers() {
    use tensorpool_codec::wire::ConsumerConfig;
    let mut m = Model::new(5 * SEC, 2 * SEC);
    assert!(!m.supervisor_running(0), "nothing heard, no counters");
    m.supervisor
        .on_message(&bytes(&consumer(10, 7, 95, 1, 2)), 11, SEC);
    m.supervisor
        .on_message(&bytes(&producer(10, 3, 100)), 12, SEC);
    assert!(!m.supervisor_running(SEC), "QoS alone is no supervisor");
    let config = AnyMessage::ConsumerConfig(ConsumerConfig {
        stream_id: 10,
        consumer_id: 7,
        use_shm: true,
        mode: Mode::RateLimited,
        descriptor_stream_id: 31_000,
        control_stream_id: 0,
        payload_fallback_uri: Bytes::from(String::new()),
        descriptor_channel: Bytes::from("aeron:ipc".to_owned()),
        control_channel: Bytes::from(String::new()),
    });
    m.supervisor.on_message(&bytes(&config), 13, SEC);
    assert!(m.supervisor_running(2 * SEC));
    let j = m.supervisor_json(2 * SEC);
    let c = &j["streams"][0]["consumers"][0];
    assert_eq!(c["consumer_id"], 7);
    assert_eq!(c["mode"], "RATE_LIMITED");
    assert_eq!(c["descriptor_stream_id"], 31_000);
    assert_eq!(c["lag"], 5);
    assert_eq!(c["stale"], false);
    // past the stale window: the consumer is stale, and the supervisor is no longer shown
    // (no counters of it, no ConsumerConfig lately)
    assert_eq!(
        m.supervisor_json(4 * SEC)["streams"][0]["consumers"][0]["stale"],
        true
    );
    assert!(!m.supervisor_running(4 * SEC));
    // its counters in the counters file: shown
    m.counters.push(CounterRow {
        id: 1,
        type_name: "supervisor.hellos".into(),
        label: String::new(),
        value: 1,
        rate: None,
        key: Some(Key {
            stream_id: 0,
            role: "supervisor",
            client_id: 0,
            detail: 0,
            cause: None,
            pid: 1,
            kind: 501,
        }),
    });
    assert!(m.supervisor_running(4 * SEC));
}
