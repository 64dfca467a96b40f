//! The driver agent and its clients over real Aeron IPC (an embedded media driver per test,
//! its own directory under /dev/shm; an SHM base dir per test): attach, epoch changes seen
//! through announces, producer revocation, admin queries, shutdown.

mod driver_common;

use std::time::{Duration, Instant};

use driver_common::shm_tempdir;
use tensorpool::client::{
    AdminQuery, AeronTransport, ClientConfig, ClientEvent, DriverClient, query_driver,
    request_shutdown,
};
use tensorpool::config::NoEnv;
use tensorpool::driver::{DriverConfig, ShmDriver};
use tensorpool_aeron::{AeronClient, EmbeddedMediaDriver, MediaDriverConfig};
use tensorpool_agent::{Agent, monotonic_ns};
use tensorpool_codec::AnyMessage;
use tensorpool_codec::driver::{Role, ShutdownReason};

const STREAM: u32 = 10_000;
const DEADLINE: Duration = Duration::from_secs(20);
const T: Duration = Duration::from_secs(5);

struct World {
    driver: Option<ShmDriver>,
    aeron: AeronClient,
    cfg: DriverConfig,
    _shm: tempfile::TempDir,
    _media: EmbeddedMediaDriver,
}

impl World {
    fn new() -> Self {
        let media = EmbeddedMediaDriver::start(MediaDriverConfig::default()).unwrap();
        let shm = shm_tempdir();
        let text = format!(
            r#"
[driver]
control_channel = "aeron:ipc?term-length=1m"
[shm]
base_dir = "{}"
[policies]
announce_period_ms = 50
lease_keepalive_interval_ms = 50
lease_expiry_grace_intervals = 3
shutdown_timeout_ms = 200
shutdown_token = "tok"
prefault_shm = false
[profiles.p]
header_nslots = 8
payload_pools = [{{ pool_id = 1, stride_bytes = 256 }}]
[streams.s]
stream_id = {STREAM}
profile = "p"
"#,
            shm.path().display()
        );
        let cfg = DriverConfig::from_toml(&text, &NoEnv).unwrap();
        let aeron = AeronClient::connect(media.dir(), T).unwrap();
        let driver = ShmDriver::new(
            cfg.clone(),
            AeronClient::connect(media.dir(), T).unwrap(),
            monotonic_ns(),
        )
        .unwrap();
        Self {
            driver: Some(driver),
            aeron,
            cfg,
            _shm: shm,
            _media: media,
        }
    }

    fn client(&self, role: Role) -> DriverClient<AeronTransport> {
        let mut c = ClientConfig::for_driver(STREAM, role, &self.cfg);
        c.attach_timeout = Duration::from_millis(500);
        c.allowed_base_dirs =
            Some(tensorpool_shm::AllowedBaseDirs::new(&self.cfg.shm.allowed_base_dirs).unwrap());
        let transport = AeronTransport::new(&self.aeron, &c, T).unwrap();
        DriverClient::new(c, transport)
    }

    /// Runs the driver and `clients` until `done` says so (bounded), collecting events.
    fn run(
        &mut self,
        clients: &mut [&mut DriverClient<AeronTransport>],
        events: &mut Vec<(usize, ClientEvent)>,
        mut done: impl FnMut(&[(usize, ClientEvent)], Option<&ShmDriver>) -> bool,
    ) {
        let start = Instant::now();
        loop {
            let now = monotonic_ns();
            let mut work = 0;
            if let Some(d) = &mut self.driver {
                match d.do_work(now) {
                    Ok(w) => work += w,
                    Err(_) => self.driver = None, // stopped
                }
            }
            for (i, c) in clients.iter_mut().enumerate() {
                work += c.do_work(now, &mut |e| events.push((i, e)));
            }
            if done(events, self.driver.as_ref()) {
                return;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "timed out; events so far: {events:?}"
            );
            if work == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

fn has(events: &[(usize, ClientEvent)], who: usize, f: impl Fn(&ClientEvent) -> bool) -> bool {
    events.iter().any(|(i, e)| *i == who && f(e))
}

#[test]
fn consumer_follows_producer_epochs_through_announces() {
    let mut w = World::new();
    let mut consumer = w.client(Role::Consumer);
    let mut producer = w.client(Role::Producer);
    let mut ev = Vec::new();
    w.run(&mut [&mut consumer], &mut ev, |e, _| {
        has(e, 0, |e| matches!(e, ClientEvent::Attached(_)))
    });
    let e0 = consumer.lease().unwrap().regions.epoch;
    // the producer attaches: a new epoch, announced; the consumer remaps
    w.run(&mut [&mut consumer, &mut producer], &mut ev, |e, _| {
        has(e, 1, |e| matches!(e, ClientEvent::Attached(_)))
            && has(e, 0, |e| matches!(e, ClientEvent::EpochChanged(_)))
    });
    let e1 = producer.lease().unwrap().regions.epoch;
    assert!(e1 > e0);
    assert_eq!(consumer.lease().unwrap().regions.epoch, e1);
    // leases live on keepalives for many grace periods
    let until = Instant::now() + Duration::from_millis(600);
    w.run(&mut [&mut consumer, &mut producer], &mut ev, |_, _| {
        Instant::now() > until
    });
    assert!(
        producer.lease().is_some() && consumer.lease().is_some(),
        "{ev:?}"
    );
    // admin queries see both leases
    let status = query_driver(
        &w.aeron,
        &w.cfg.driver.control_channel,
        1000,
        AdminQuery::Leases,
        Duration::from_millis(10),
    );
    assert!(status.is_err(), "the driver must be polled to answer");
    // the producer detaches: revocation, then the bumped epoch
    ev.clear();
    producer.close();
    w.run(&mut [&mut consumer, &mut producer], &mut ev, |e, _| {
        has(
            e,
            0,
            |e| matches!(e, ClientEvent::EpochChanged(r) if r.epoch > e1),
        )
    });
    let order: Vec<&ClientEvent> = ev.iter().filter(|(i, _)| *i == 0).map(|(_, e)| e).collect();
    assert!(
        matches!(order[0], ClientEvent::ProducerRevoked { .. }),
        "{order:?}"
    );
    assert!(has(&ev, 1, |e| matches!(e, ClientEvent::Detached)));
}

#[test]
fn admin_queries_and_authenticated_shutdown() {
    let mut w = World::new();
    let mut consumer = w.client(Role::Consumer);
    let mut ev = Vec::new();
    w.run(&mut [&mut consumer], &mut ev, |e, _| {
        has(e, 0, |e| matches!(e, ClientEvent::Attached(_)))
    });
    // answer a query while the driver runs: the query blocks, so run the driver on a thread
    let mut driver = w.driver.take().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    // the driver's count of ignored shutdown requests, as the driver thread last saw it
    let rejected = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let rejected2 = rejected.clone();
    let handle = std::thread::spawn(move || {
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            let r = driver.do_work(monotonic_ns());
            rejected2.store(
                driver.core().counters().shutdown_requests_rejected,
                std::sync::atomic::Ordering::Release,
            );
            if r.is_err() {
                return Some(driver);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Some(driver)
    });
    let channel = w.cfg.driver.control_channel.clone();
    let bytes = query_driver(&w.aeron, &channel, 1000, AdminQuery::Streams, T).unwrap();
    let AnyMessage::DriverStreamsResponse(s) = AnyMessage::decode(&bytes).unwrap() else {
        panic!()
    };
    let streams: Vec<_> = s.streams.iter().collect();
    assert_eq!(streams.len(), 1);
    assert_eq!(
        (streams[0].stream_id, streams[0].consumer_count),
        (STREAM, 1)
    );
    let bytes = query_driver(&w.aeron, &channel, 1000, AdminQuery::Status, T).unwrap();
    let AnyMessage::DriverStatusResponse(st) = AnyMessage::decode(&bytes).unwrap() else {
        panic!()
    };
    assert_eq!((st.lease_count, st.consumer_count), (1, 1));
    assert_eq!(st.instance_id.as_str().unwrap(), "driver-01");
    // a wrong token changes nothing; the right one stops the driver after the drain
    request_shutdown(
        &w.aeron,
        &channel,
        1000,
        "nope",
        ShutdownReason::Admin,
        "",
        T,
    )
    .unwrap();
    // Wait for the driver to have handled (and ignored) it: its rejection counter is the
    // event. Were a wrong token accepted, the counter stays 0 and the driver stops: the wait
    // fails at its deadline, or the next assertions fail.
    let start = Instant::now();
    while rejected.load(std::sync::atomic::Ordering::Acquire) == 0 {
        assert!(
            start.elapsed() < DEADLINE && !handle.is_finished(),
            "the wrong-token request was not rejected"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(rejected.load(std::sync::atomic::Ordering::Acquire), 1);
    assert!(!handle.is_finished(), "wrong token ignored");
    request_shutdown(
        &w.aeron,
        &channel,
        1000,
        "tok",
        ShutdownReason::Admin,
        "maintenance",
        T,
    )
    .unwrap();
    let start = Instant::now();
    while !handle.is_finished() {
        assert!(start.elapsed() < DEADLINE);
        consumer.do_work(monotonic_ns(), &mut |e| ev.push((0, e)));
        std::thread::sleep(Duration::from_millis(1));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let driver = handle.join().unwrap().unwrap();
    assert!(driver.core().is_stopped());
    let start = Instant::now();
    while !has(&ev, 0, |e| matches!(e, ClientEvent::DriverShutdown { .. })) {
        assert!(start.elapsed() < DEADLINE, "{ev:?}");
        consumer.do_work(monotonic_ns(), &mut |e| ev.push((0, e)));
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(has(
        &ev,
        0,
        |e| matches!(e, ClientEvent::DriverShutdown { reason: ShutdownReason::Admin, message } if message == "maintenance")
    ));
}
