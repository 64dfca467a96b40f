//! The supervisor's duty cycle without Aeron: messages encoded with the codec crate are fed
//! to `SupervisorCore`, its `ConsumerConfig` answers are recorded and decoded. Per-consumer
//! stream assignment, reclaim after staleness, exhaustion declines, consumer-id collisions,
//! rules and global policies, capacity refusals, QoS aggregation, producer liveness, and a
//! restarted supervisor rebuilding the same assignments from soft state.

use tensorpool::config::NoEnv;
use tensorpool::control::RecordingSink;
use tensorpool::supervisor::{SupervisorConfig, SupervisorCore};
use tensorpool_codec::wire::{
    ClockDomain, ConsumerConfig, ConsumerHello, DataSourceAnnounce, Mode, QosConsumer, QosProducer,
    ShmPoolAnnounce,
};
use tensorpool_codec::{Bytes, Group, Message};

const MS: u64 = 1_000_000;
const STREAM: u32 = 10_000;
const DESC: &str = "aeron:ipc?term-length=64k";
const CTRL: &str = "aeron:ipc?term-length=128k";

fn config(extra: &str) -> SupervisorConfig {
    let text = format!(
        "[supervisor]\nper_consumer_enabled = true\nconsumer_stale_ms = 100\nproducer_stale_ms = 100\n{extra}"
    );
    SupervisorConfig::from_toml(&text, &NoEnv).unwrap_or_else(|e| panic!("{e}"))
}

fn core(extra: &str) -> SupervisorCore {
    SupervisorCore::new(config(extra), 0)
}

struct Hello {
    stream_id: u32,
    consumer_id: u32,
    mode: Mode,
    supports_shm: bool,
    descriptor: (&'static str, u32),
    control: (&'static str, u32),
}

fn hello(consumer_id: u32) -> Hello {
    Hello {
        stream_id: STREAM,
        consumer_id,
        mode: Mode::Stream,
        supports_shm: true,
        descriptor: (DESC, 31_000),
        control: (CTRL, 32_000),
    }
}

fn hello_bytes(h: &Hello) -> Vec<u8> {
    ConsumerHello {
        stream_id: h.stream_id,
        consumer_id: h.consumer_id,
        supports_shm: h.supports_shm,
        supports_progress: false,
        mode: h.mode,
        max_rate_hz: 0,
        expected_layout_version: 1,
        progress_interval_us: None,
        progress_bytes_delta: None,
        progress_major_delta_units: None,
        descriptor_stream_id: h.descriptor.1,
        control_stream_id: h.control.1,
        descriptor_channel: Bytes::new(h.descriptor.0.as_bytes()),
        control_channel: Bytes::new(h.control.0.as_bytes()),
    }
    .encode_to_vec()
    .unwrap()
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Answer {
    stream_id: u32,
    consumer_id: u32,
    use_shm: bool,
    mode: Mode,
    fallback: String,
    descriptor: (String, u32),
    control: (String, u32),
}

fn answers(sink: &RecordingSink) -> Vec<Answer> {
    sink.messages()
        .map(|m| {
            let c = ConsumerConfig::decode(m).expect("a ConsumerConfig");
            let s = |b: Bytes<'_>| b.as_str().unwrap().to_owned();
            Answer {
                stream_id: c.stream_id,
                consumer_id: c.consumer_id,
                use_shm: c.use_shm,
                mode: c.mode,
                fallback: s(c.payload_fallback_uri),
                descriptor: (s(c.descriptor_channel), c.descriptor_stream_id),
                control: (s(c.control_channel), c.control_stream_id),
            }
        })
        .collect()
}

/// Sends one hello, returns the answers it produced.
fn say_hello(core: &mut SupervisorCore, h: &Hello, source: u64, now: u64) -> Vec<Answer> {
    let mut sink = RecordingSink::default();
    core.on_hello_from(&hello_bytes(h), source, now, &mut sink);
    core.check_invariants().unwrap();
    answers(&sink)
}

fn qos_consumer(consumer_id: u32, epoch: u64, last_seq: u64, gap: u64, late: u64) -> Vec<u8> {
    QosConsumer {
        stream_id: STREAM,
        consumer_id,
        epoch,
        last_seq_seen: last_seq,
        drops_gap: gap,
        drops_late: late,
        mode: Mode::Stream,
    }
    .encode_to_vec()
    .unwrap()
}

fn qos_producer(epoch: u64, seq: u64) -> Vec<u8> {
    QosProducer {
        stream_id: STREAM,
        producer_id: 7,
        epoch,
        current_seq: seq,
        watermark: None,
    }
    .encode_to_vec()
    .unwrap()
}

fn announce(epoch: u64) -> Vec<u8> {
    ShmPoolAnnounce {
        stream_id: STREAM,
        producer_id: 7,
        epoch,
        announce_timestamp_ns: 1,
        announce_clock_domain: ClockDomain::Monotonic,
        layout_version: 1,
        header_nslots: 64,
        header_slot_bytes: 256,
        payload_pools: Group::default(),
        header_region_uri: Bytes::new(b"shm:file?path=/dev/shm/x"),
    }
    .encode_to_vec()
    .unwrap()
}

#[test]
fn hello_gets_per_consumer_streams_from_the_ranges() {
    let mut c = core("");
    let a = say_hello(&mut c, &hello(1_005), 1, MS);
    assert_eq!(
        a,
        vec![Answer {
            stream_id: STREAM,
            consumer_id: 1_005,
            use_shm: true,
            mode: Mode::Stream,
            fallback: String::new(),
            // the requested ids 31000/32000 are in the ranges and free: granted
            descriptor: (DESC.into(), 31_000),
            control: (CTRL.into(), 32_000),
        }]
    );
    // a second consumer asking for the same ids gets base + id % range instead
    let a = say_hello(&mut c, &hello(2_007), 2, MS);
    assert_eq!(a[0].descriptor, (DESC.into(), 31_007));
    assert_eq!(a[0].control, (CTRL.into(), 32_007));
    // a periodic hello keeps the assignment
    let a = say_hello(&mut c, &hello(2_007), 2, 2 * MS);
    assert_eq!(a[0].descriptor.1, 31_007);
    assert_eq!(c.counters().assignments, 4);
    assert_eq!(c.counters().configs_sent, 3);
    // configured channels win over requested ones
    let mut c = core(
        "per_consumer_descriptor_channel = \"aeron:ipc?alias=d\"\nper_consumer_control_channel = \"aeron:ipc?alias=c\"",
    );
    let a = say_hello(&mut c, &hello(3), 1, MS);
    assert_eq!(a[0].descriptor, ("aeron:ipc?alias=d".into(), 31_000));
    assert_eq!(a[0].control, ("aeron:ipc?alias=c".into(), 32_000));
}

#[test]
fn requests_are_declined_when_disabled_or_invalid() {
    let mut c = SupervisorCore::new(
        SupervisorConfig::from_toml("[supervisor]\n", &NoEnv).unwrap(),
        0,
    );
    let a = say_hello(&mut c, &hello(1), 1, MS);
    assert_eq!(a[0].descriptor, (String::new(), 0));
    assert_eq!(a[0].control, (String::new(), 0));
    assert_eq!(c.counters().declines, 2);
    // W §10.1.2: a channel without a stream id (or the reverse) MUST be rejected
    let mut c = core("");
    let mut h = hello(2);
    h.descriptor = (DESC, 0);
    h.control = ("", 32_001);
    let a = say_hello(&mut c, &h, 1, MS);
    assert_eq!(a[0].descriptor, (String::new(), 0));
    assert_eq!(a[0].control, (String::new(), 0));
    assert_eq!(c.counters().invalid_requests, 2);
    // no request: nothing assigned, nothing declined
    let mut h = hello(3);
    h.descriptor = ("", 0);
    h.control = ("", 0);
    let a = say_hello(&mut c, &h, 2, MS);
    assert_eq!((a[0].descriptor.1, a[0].control.1), (0, 0));
    assert_eq!(c.counters().declines, 2);
}

#[test]
fn exhausted_range_is_declined_with_empty_channel_and_zero() {
    let mut c = core("per_consumer_descriptor_range = 2\nper_consumer_control_range = 2");
    let first = say_hello(&mut c, &hello(10), 1, MS);
    let second = say_hello(&mut c, &hello(11), 2, MS);
    let third = say_hello(&mut c, &hello(12), 3, MS);
    assert_ne!(first[0].descriptor.1, second[0].descriptor.1);
    assert!([31_000, 31_001].contains(&second[0].descriptor.1));
    assert_eq!(third[0].descriptor, (String::new(), 0));
    assert_eq!(third[0].control, (String::new(), 0));
    assert_eq!(c.counters().declines, 2);
    // the declined consumer is still tracked and answered (shared stream)
    assert!(c.consumer(STREAM, 12).is_some());
}

#[test]
fn stale_consumers_are_dropped_and_their_ids_reclaimed() {
    let mut c = core("per_consumer_descriptor_range = 1\nper_consumer_control_range = 1");
    let a = say_hello(&mut c, &hello(1), 1, MS);
    assert_eq!(a[0].descriptor.1, 31_000);
    let b = say_hello(&mut c, &hello(2), 2, MS);
    assert_eq!(b[0].descriptor.1, 0, "exhausted while consumer 1 lives");
    // consumer 2 keeps itself alive with QoS; consumer 1 goes silent
    c.on_qos_consumer_from(&qos_consumer(2, 1, 0, 0, 0), 20, 90 * MS);
    c.poll_timers(100 * MS);
    assert!(c.consumer(STREAM, 1).is_some(), "not stale before 100 ms");
    c.poll_timers(101 * MS + 300 * MS);
    assert!(c.consumer(STREAM, 1).is_none());
    assert_eq!(
        c.counters().consumers_stale,
        2,
        "both silent for 100 ms by then"
    );
    let a = say_hello(&mut c, &hello(2), 2, 500 * MS);
    assert_eq!(a[0].descriptor, (DESC.into(), 31_000), "the reclaimed id");
    assert_eq!(c.counters().consumers, 1);
}

#[test]
fn consumer_id_collision_is_detected_counted_and_not_answered() {
    let mut c = core("");
    assert_eq!(say_hello(&mut c, &hello(5), 100, MS).len(), 1);
    // another process (another publication) with the same id: it takes the id over
    assert_eq!(say_hello(&mut c, &hello(5), 200, 2 * MS).len(), 1);
    assert_eq!(
        c.counters().collisions,
        0,
        "a restarted consumer is not a collision"
    );
    // the first speaks again: both are alive
    assert!(say_hello(&mut c, &hello(5), 100, 3 * MS).is_empty());
    assert!(say_hello(&mut c, &hello(5), 100, 4 * MS).is_empty());
    assert_eq!(c.counters().collisions, 1, "counted once per pair");
    assert_eq!(c.consumer(STREAM, 5).unwrap().collisions, 1);
    // the newer keeps the id and its answers
    assert_eq!(say_hello(&mut c, &hello(5), 200, 5 * MS).len(), 1);
    // QoS from a third source under the same id, then the QoS owner again
    c.on_qos_consumer_from(&qos_consumer(5, 1, 1, 0, 0), 300, 6 * MS);
    c.on_qos_consumer_from(&qos_consumer(5, 1, 1, 0, 0), 301, 6 * MS);
    c.on_qos_consumer_from(&qos_consumer(5, 1, 1, 0, 0), 300, 6 * MS);
    assert_eq!(c.counters().collisions, 2);
    c.check_invariants().unwrap();
}

#[test]
fn rules_and_global_policies_shape_the_config() {
    let mut c = core(
        r#"force_mode = 0
force_no_shm = false
payload_fallback_uri = "aeron:udp?endpoint=10.0.0.1:40123"
[[supervisor.rules]]
consumer_id = 7
force_mode = "RATE_LIMITED"
max_rate_hz = 5
[[supervisor.rules]]
stream_id = 10001
force_no_shm = true
payload_fallback_uri = "bridge://cam1"
"#,
    );
    let a = say_hello(&mut c, &hello(7), 1, MS);
    assert_eq!(a[0].mode, Mode::RateLimited);
    assert!(a[0].use_shm);
    assert_eq!(a[0].fallback, "aeron:udp?endpoint=10.0.0.1:40123");
    assert_eq!(c.consumer(STREAM, 7).unwrap().forced_rate_hz, Some(5));
    let a = say_hello(&mut c, &hello(8), 2, MS);
    assert_eq!((a[0].mode, a[0].use_shm), (Mode::Stream, true));
    let mut h = hello(9);
    h.stream_id = 10_001;
    let a = say_hello(&mut c, &h, 3, MS);
    assert!(!a[0].use_shm);
    assert_eq!(a[0].fallback, "bridge://cam1");
    let k = c.counters();
    assert_eq!((k.forced_mode, k.forced_no_shm), (1, 1));
    // global force_mode / force_no_shm (the C keys)
    let mut c = core("force_mode = 2\nforce_no_shm = true\npayload_fallback_uri = \"bridge://x\"");
    let a = say_hello(&mut c, &hello(1), 1, MS);
    assert_eq!((a[0].mode, a[0].use_shm), (Mode::RateLimited, false));
    assert_eq!(a[0].fallback, "bridge://x");
    // a consumer without SHM support is told use_shm = false, not counted as forced
    let mut c = core("");
    let mut h = hello(1);
    h.supports_shm = false;
    assert!(!say_hello(&mut c, &h, 1, MS)[0].use_shm);
    assert_eq!(c.counters().forced_no_shm, 0);
}

#[test]
fn consumers_beyond_capacity_are_refused_and_counted() {
    let mut c = core("consumer_capacity = 2");
    assert_eq!(say_hello(&mut c, &hello(1), 1, MS).len(), 1);
    assert_eq!(say_hello(&mut c, &hello(2), 2, MS).len(), 1);
    assert!(say_hello(&mut c, &hello(3), 3, MS).is_empty());
    c.on_qos_consumer_from(&qos_consumer(4, 1, 0, 0, 0), 4, MS);
    assert_eq!(c.counters().consumers_refused, 2);
    assert_eq!(c.counters().consumers, 2);
    assert!(c.consumer(STREAM, 3).is_none());
    // room again once one goes stale
    c.on_qos_consumer_from(&qos_consumer(2, 1, 0, 0, 0), 2, 50 * MS);
    c.poll_timers(120 * MS);
    assert_eq!(say_hello(&mut c, &hello(3), 3, 130 * MS).len(), 1);
}

#[test]
fn restarted_supervisor_rebuilds_the_same_assignments_from_soft_state() {
    let ids = [3u32, 1_004, 77, 42_001, 999];
    let mut first = core("");
    let mut before = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        let mut h = hello(*id);
        h.descriptor.1 = 31_500; // all ask for one id: only the first gets it
        before.push(say_hello(&mut first, &h, n as u64 + 1, MS).remove(0));
    }
    // a new supervisor (no state) hears the hellos of the next interval, in another order:
    // the consumer that asked first asks first again (it holds the requested id)
    let mut second = core("");
    let order = [0usize, 4, 2, 3, 1];
    let hello_interval = 1_000 * MS;
    let mut after = vec![None; ids.len()];
    for n in order {
        let mut h = hello(ids[n]);
        h.descriptor.1 = 31_500;
        after[n] = Some(say_hello(&mut second, &h, n as u64 + 1, hello_interval).remove(0));
    }
    let after: Vec<Answer> = after.into_iter().map(Option::unwrap).collect();
    assert_eq!(before, after, "same assignments within one hello interval");
}

#[test]
fn qos_is_aggregated_per_consumer_with_lag_behind_the_producer() {
    let mut c = core("");
    c.on_announce(&announce(3), MS);
    c.on_qos_producer(&qos_producer(3, 100), MS);
    c.on_qos_producer(&qos_producer(3, 130), 1_001 * MS);
    let _ = say_hello(&mut c, &hello(1), 1, MS);
    c.on_qos_consumer_from(&qos_consumer(1, 3, 120, 4, 2), 11, 1_001 * MS);
    let v = c.consumer(STREAM, 1).unwrap();
    assert_eq!((v.qos.drops_gap, v.qos.drops_late), (4, 2));
    assert_eq!(v.qos.last_seq_seen, 120);
    assert_eq!(v.lag, Some(10));
    let p = c.producer(STREAM).unwrap();
    assert_eq!((p.producer_id, p.epoch, p.current_seq), (7, 3, 130));
    assert_eq!(p.frames_per_s_milli, 30_000);
    // another epoch: no lag figure (the sequences are not comparable)
    c.on_qos_consumer_from(&qos_consumer(1, 2, 120, 4, 2), 11, 1_002 * MS);
    assert_eq!(c.consumer(STREAM, 1).unwrap().lag, None);
    let name = DataSourceAnnounce {
        stream_id: STREAM,
        producer_id: 7,
        epoch: 3,
        meta_version: 2,
        name: Bytes::new(b"cam1"),
        summary: Bytes::new(b""),
    }
    .encode_to_vec()
    .unwrap();
    c.on_data_source_announce(&name, 1_002 * MS);
    assert_eq!(c.producer(STREAM).unwrap().name, "cam1");
}

#[test]
fn producer_liveness_follows_announces() {
    let mut c = core("");
    c.on_announce(&announce(1), MS);
    assert!(c.producer(STREAM).unwrap().alive);
    assert_eq!(c.counters().producers, 1);
    c.poll_timers(50 * MS);
    assert!(c.producer(STREAM).unwrap().alive);
    c.poll_timers(200 * MS);
    assert!(!c.producer(STREAM).unwrap().alive);
    assert_eq!(
        (c.counters().producers, c.counters().producers_stale),
        (0, 1)
    );
    c.on_announce(&announce(2), 300 * MS);
    let p = c.producer(STREAM).unwrap();
    assert!(p.alive);
    assert_eq!(p.epoch, 2);
}

fn announce_at(epoch: u64, uri: &str) -> Vec<u8> {
    ShmPoolAnnounce {
        stream_id: STREAM,
        producer_id: 7,
        epoch,
        announce_timestamp_ns: 1,
        announce_clock_domain: ClockDomain::Monotonic,
        layout_version: 1,
        header_nslots: 64,
        header_slot_bytes: 256,
        payload_pools: Group::default(),
        header_region_uri: Bytes::new(uri.as_bytes()),
    }
    .encode_to_vec()
    .unwrap()
}

#[test]
fn w_15_14_superblock_activity_keeps_a_producer_alive_and_a_stale_one_kills_it() {
    let mut c = core(""); // producer_stale_ms = 100
    c.on_announce(&announce(1), MS);
    // fresh activity without announces: still alive past the announce window
    assert_eq!(c.on_activity(STREAM, 1, 80 * MS, 90 * MS), 0);
    c.poll_timers(150 * MS);
    assert!(c.producer(STREAM).unwrap().alive);
    assert_eq!(c.producer(STREAM).unwrap().activity_ns, 80 * MS);
    // another epoch's activity is ignored
    assert_eq!(c.on_activity(STREAM, 2, 10 * MS, 160 * MS), 0);
    assert!(c.producer(STREAM).unwrap().alive);
    // a stale activity (older than producer_stale_ms) kills it at once, counted once
    assert_eq!(c.on_activity(STREAM, 1, 80 * MS, 181 * MS), 1);
    let p = c.producer(STREAM).unwrap();
    assert!(!p.alive && p.activity_stale);
    assert_eq!(
        (c.counters().producers, c.counters().producers_stale),
        (0, 1)
    );
    assert_eq!(c.on_activity(STREAM, 1, 80 * MS, 190 * MS), 0);
    assert_eq!(c.counters().producers_stale, 1);
    // announces and QoS of the same epoch do not revive it: the region is not refreshed
    c.on_announce(&announce(1), 191 * MS);
    c.on_qos_producer(&qos_producer(1, 5), 192 * MS);
    assert!(!c.producer(STREAM).unwrap().alive);
    // a fresh activity does
    assert_eq!(c.on_activity(STREAM, 1, 195 * MS, 196 * MS), 1);
    assert!(c.producer(STREAM).unwrap().alive);
    assert_eq!(c.counters().producers, 1);
    // killed again, then a new epoch's announce revives it (activity of the new epoch unknown)
    c.on_activity(STREAM, 1, 195 * MS, 400 * MS);
    assert!(!c.producer(STREAM).unwrap().alive);
    c.on_announce(&announce(2), 401 * MS);
    let p = c.producer(STREAM).unwrap();
    assert!(p.alive && !p.activity_stale);
    assert_eq!((p.epoch, p.activity_ns), (2, 0));
    // activity for an unknown stream: nothing
    assert_eq!(c.on_activity(STREAM + 1, 2, 401 * MS, 401 * MS), 0);
}

#[test]
fn w_15_14_the_agent_reads_activity_from_the_announced_header_region_read_only() {
    use tensorpool::supervisor::ActivityWatch;
    use tensorpool_shm::{
        CreateOptions, EpochSpec, ExpectedRegion, FileModes, HeaderRing, LAYOUT_VERSION,
        MapOptions, PoolGeometry, ReadWrite, ShmLayout,
    };
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().canonicalize().unwrap();
    let layout = ShmLayout::for_user(&base, "t", "default", FileModes::default()).unwrap();
    let spec = EpochSpec {
        layout_version: LAYOUT_VERSION,
        stream_id: STREAM,
        epoch: 5,
        header_nslots: 64,
        pools: vec![PoolGeometry {
            pool_id: 1,
            stride_bytes: 64,
            nslots: 64,
        }],
    };
    let opts = CreateOptions {
        prefault: false,
        pid: 1,
        now_ns: 10 * MS,
    };
    let created = layout.create_epoch(&spec, opts).unwrap();
    let uri = created.header_uri.to_string();
    let allowed = tensorpool_shm::AllowedBaseDirs::new([&base]).unwrap();
    let ring = HeaderRing::<ReadWrite>::open(
        &created.header_uri,
        &allowed,
        &ExpectedRegion::header_ring(LAYOUT_VERSION, 5, STREAM, 64),
        MapOptions::default(),
    )
    .unwrap();

    // no allowed base dirs: nothing is read
    let mut off = ActivityWatch::new(&[], 10 * MS, 4).unwrap();
    assert!(!off.is_enabled());
    let mut c = core("");
    c.on_announce(&announce_at(5, &uri), 10 * MS);
    assert_eq!(off.poll(&mut c, 300 * MS), 0);
    assert_eq!(c.producer(STREAM).unwrap().activity_ns, 0);

    // outside the allowed dirs: not opened, nothing read
    let other = tempfile::tempdir().unwrap();
    let mut outside = ActivityWatch::new(&[other.path().to_path_buf()], 10 * MS, 4).unwrap();
    outside.poll(&mut c, 20 * MS);
    assert_eq!(c.producer(STREAM).unwrap().activity_ns, 0);

    let mut w = ActivityWatch::new(std::slice::from_ref(&base), 10 * MS, 4).unwrap();
    // fresh: read, alive
    ring.refresh_activity(15 * MS);
    w.poll(&mut c, 20 * MS);
    let p = c.producer(STREAM).unwrap();
    assert_eq!((p.activity_ns, p.alive), (15 * MS, true));
    // within the period: not read again
    ring.refresh_activity(16 * MS);
    w.poll(&mut c, 25 * MS);
    assert_eq!(c.producer(STREAM).unwrap().activity_ns, 15 * MS);
    // the writer stops refreshing: stale at the next read, dead
    assert_eq!(w.poll(&mut c, 200 * MS), 1);
    let p = c.producer(STREAM).unwrap();
    assert!(!p.alive && p.activity_stale);
    assert_eq!(c.counters().producers_stale, 1);
    // refreshed again: alive
    ring.refresh_activity(205 * MS);
    assert_eq!(w.poll(&mut c, 210 * MS), 1);
    assert!(c.producer(STREAM).unwrap().alive);

    // an announce naming a region whose superblock holds another epoch: not read
    c.on_announce(&announce_at(6, &uri), 220 * MS);
    ring.refresh_activity(225 * MS);
    w.poll(&mut c, 230 * MS);
    assert_eq!(c.producer(STREAM).unwrap().activity_ns, 0);
    // the file removed (epoch gone): the open descriptor still reads, nothing panics
    drop(ring);
    layout.remove_epoch(STREAM, 5).unwrap();
    w.poll(&mut c, 300 * MS);
    c.on_announce(&announce_at(7, &uri), 310 * MS);
    w.poll(&mut c, 400 * MS); // the path no longer exists: open fails, logged
    assert_eq!(c.producer(STREAM).unwrap().activity_ns, 0);
}

#[test]
fn a_consumer_id_range_rule_shapes_the_config_of_the_consumers_in_it() {
    let mut c = core(
        "[[supervisor.rules]]\nconsumer_id_range = \"100-199\"\nforce_mode = \"RATE_LIMITED\"\nmax_rate_hz = 4\n",
    );
    for (id, mode, rule) in [
        (99, Mode::Stream, None),
        (100, Mode::RateLimited, Some(0)),
        (199, Mode::RateLimited, Some(0)),
        (200, Mode::Stream, None),
    ] {
        let a = say_hello(&mut c, &hello(id), u64::from(id), MS);
        assert_eq!(a[0].mode, mode, "consumer {id}");
        let v = c.consumer(STREAM, id).unwrap();
        assert_eq!(v.rule, rule, "consumer {id}");
        assert_eq!(v.forced_rate_hz, rule.map(|_| 4), "consumer {id}");
    }
}

#[test]
fn garbage_and_other_messages_are_ignored() {
    let mut c = core("");
    let mut sink = RecordingSink::default();
    for buf in [&b""[..], &[1, 2, 3], &[0u8; 64]] {
        c.on_message(buf, MS, &mut sink);
    }
    // truncated hello: counted as malformed
    let h = hello_bytes(&hello(1));
    c.on_message(&h[..h.len() - 3], MS, &mut sink);
    assert_eq!(c.counters().malformed, 1);
    // our own ConsumerConfig coming back on the control stream: ignored
    let _ = say_hello(&mut c, &hello(1), 1, MS);
    let cfg = ConsumerConfig {
        stream_id: STREAM,
        consumer_id: 1,
        use_shm: true,
        mode: Mode::Stream,
        descriptor_stream_id: 0,
        control_stream_id: 0,
        payload_fallback_uri: Bytes::new(b""),
        descriptor_channel: Bytes::new(b""),
        control_channel: Bytes::new(b""),
    }
    .encode_to_vec()
    .unwrap();
    assert_eq!(c.on_message(&cfg, MS, &mut sink), 0);
    assert!(sink.is_empty());
    // dispatch through on_message reaches the handlers
    assert_eq!(c.on_message(&h, 2 * MS, &mut sink), 1);
    assert_eq!(sink.len(), 1);
}

#[test]
fn base_zero_grants_requested_ids_unless_taken_or_in_the_other_range() {
    let mut c = core("per_consumer_descriptor_base = 0\nper_consumer_control_range = 2");
    let mut h = hello(1);
    h.descriptor.1 = 40_000;
    assert_eq!(
        say_hello(&mut c, &h, 1, MS)[0].descriptor,
        (DESC.into(), 40_000)
    );
    // the same id for another consumer: taken
    let mut h = hello(2);
    h.descriptor.1 = 40_000;
    assert_eq!(
        say_hello(&mut c, &h, 2, MS)[0].descriptor,
        (String::new(), 0)
    );
    // an id of the control pool's range: never granted as a descriptor id
    let mut h = hello(3);
    h.descriptor.1 = 32_001;
    assert_eq!(
        say_hello(&mut c, &h, 3, MS)[0].descriptor,
        (String::new(), 0)
    );
    // the control pool still hands out both of its ids
    assert_eq!(c.counters().assignments, 1 + 2);
}

#[derive(Debug, Clone)]
enum Op {
    Hello {
        id: u32,
        source: u64,
        stream: u32,
        desc: u32,
        ctrl: u32,
    },
    Qos {
        id: u32,
        source: u64,
    },
    Advance(u64),
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        4 => (0u32..10, 0u64..4, 0u32..2, 0u32..40, 0u32..3).prop_map(|(id, source, s, desc, ctrl)| Op::Hello {
            id,
            source,
            stream: STREAM + s,
            desc: if desc == 0 { 0 } else { 30_990 + desc },
            ctrl: [0, 32_000, 32_005][ctrl as usize],
        }),
        2 => (0u32..10, 0u64..4).prop_map(|(id, source)| Op::Qos { id, source }),
        1 => (0u64..60).prop_map(Op::Advance),
    ]
}

proptest::proptest! {
    /// Arbitrary sequences of hellos (valid, invalid and absent requests), QoS from several
    /// sources and clock steps, with small ranges and a small table: no two tracked consumers
    /// ever hold one stream id, and every answer assigns completely or declines empty.
    #[test]
    fn no_two_live_consumers_ever_share_an_assigned_stream_id(
        ops in proptest::collection::vec(op(), 1..200)
    ) {
        let mut c = core(
            "consumer_capacity = 6\nper_consumer_descriptor_range = 3\nper_consumer_control_range = 2",
        );
        let mut now = 0u64;
        for op in ops {
            match op {
                Op::Hello { id, source, stream, desc, ctrl } => {
                    let h = Hello {
                        stream_id: stream,
                        consumer_id: id,
                        mode: Mode::Stream,
                        supports_shm: true,
                        descriptor: (if desc % 7 == 0 { "" } else { DESC }, desc),
                        control: (CTRL, ctrl),
                    };
                    for a in say_hello(&mut c, &h, source, now) {
                        proptest::prop_assert_eq!(a.descriptor.0.is_empty(), a.descriptor.1 == 0);
                        proptest::prop_assert_eq!(a.control.0.is_empty(), a.control.1 == 0);
                    }
                }
                Op::Qos { id, source } => {
                    c.on_qos_consumer_from(&qos_consumer(id, 1, 0, 0, 0), source, now);
                }
                Op::Advance(ms) => {
                    now += ms * MS;
                    c.poll_timers(now);
                }
            }
            proptest::prop_assert!(c.check_invariants().is_ok(), "{:?}", c.check_invariants());
            proptest::prop_assert!(c.consumers().count() <= 6);
        }
    }
}
