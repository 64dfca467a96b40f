//! Steady-state duty cycles allocate nothing: a ping agent and an echo agent exchange
//! messages over Aeron IPC through a real embedded media driver, driven as one composite
//! agent by an invoker, and a counting global allocator sees 0 bytes over 1 000 000 cycles.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tensorpool_aeron::{
    AeronClient, ClaimError, DriverIdleStrategy, EmbeddedMediaDriver, MediaDriverConfig,
    Publication, PublishError, Subscription,
};
use tensorpool_agent::{
    Agent, AgentError, AgentInvoker, AgentResult, CompositeAgent, MonotonicClock,
};
use tensorpool_testkit::CountingAllocator;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const PING_STREAM: i32 = 4001;
const PONG_STREAM: i32 = 4002;
const CHANNEL: &str = "aeron:ipc?term-length=1m";
const TIMEOUT: Duration = Duration::from_secs(10);
const MESSAGE_LEN: usize = 64;

#[derive(Debug, thiserror::Error)]
enum EchoError {
    #[error("publication failed: {0}")]
    Publish(#[from] PublishError),
    #[error("echo carried {found}, expected {expected}")]
    WrongEcho { expected: u64, found: u64 },
}

fn fail(e: impl Into<EchoError>) -> AgentError {
    AgentError::failed(e.into())
}

/// Sends one numbered message at a time and waits for its echo.
struct Ping {
    publication: Publication,
    subscription: Subscription,
    next: u64,
    awaiting: Option<u64>,
}

/// Round trips completed by the ping agent (read by the test through the composite).
static ROUND_TRIPS: AtomicU64 = AtomicU64::new(0);

impl Agent for Ping {
    fn do_work(&mut self, now_ns: u64) -> AgentResult {
        let mut work = 0;
        if self.awaiting.is_none() {
            let seq = self.next;
            match self.publication.try_claim(MESSAGE_LEN, |buf| {
                buf[..8].copy_from_slice(&seq.to_le_bytes());
                buf[8..16].copy_from_slice(&now_ns.to_le_bytes());
                Ok::<(), PublishError>(())
            }) {
                Ok(_) => {
                    self.awaiting = Some(seq);
                    self.next += 1;
                    work += 1;
                }
                Err(ClaimError::Publish(p)) if p.is_retryable() => {}
                Err(ClaimError::Publish(p) | ClaimError::Fill(p)) => return Err(fail(p)),
            }
        }
        let mut wrong = None;
        let awaiting = &mut self.awaiting;
        work += self
            .subscription
            .poll(
                |msg, _info| {
                    let found = u64::from_le_bytes(msg[..8].try_into().unwrap_or([0; 8]));
                    match *awaiting {
                        Some(expected) if expected == found => {
                            *awaiting = None;
                            ROUND_TRIPS.fetch_add(1, Ordering::Relaxed);
                        }
                        Some(expected) => wrong = Some((expected, found)),
                        None => wrong = Some((u64::MAX, found)),
                    }
                },
                10,
            )
            .map_err(AgentError::failed)?;
        if let Some((expected, found)) = wrong {
            return Err(fail(EchoError::WrongEcho { expected, found }));
        }
        Ok(work)
    }

    fn role_name(&self) -> &str {
        "ping"
    }
}

/// Echoes every message it receives.
struct Echo {
    publication: Publication,
    subscription: Subscription,
    scratch: [u8; MESSAGE_LEN],
    pending: bool,
}

impl Agent for Echo {
    fn do_work(&mut self, _now_ns: u64) -> AgentResult {
        let mut work = 0;
        if !self.pending {
            let scratch = &mut self.scratch;
            let pending = &mut self.pending;
            work += self
                .subscription
                .poll(
                    |msg, _info| {
                        let n = msg.len().min(MESSAGE_LEN);
                        scratch[..n].copy_from_slice(&msg[..n]);
                        *pending = true;
                    },
                    1,
                )
                .map_err(AgentError::failed)?;
        }
        if self.pending {
            match self.publication.offer(&self.scratch) {
                Ok(_) => {
                    self.pending = false;
                    work += 1;
                }
                Err(e) if e.is_retryable() => {}
                Err(e) => return Err(fail(e)),
            }
        }
        Ok(work)
    }

    fn role_name(&self) -> &str {
        "echo"
    }
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_million_echo_agent_cycles_allocate_nothing() {
    let driver = EmbeddedMediaDriver::start(
        MediaDriverConfig::default()
            .idle_strategy(DriverIdleStrategy::Sleeping(Duration::from_micros(200))),
    )
    .expect("embedded media driver starts");
    let client = AeronClient::connect(driver.dir(), TIMEOUT).expect("client connects");
    let ping = Ping {
        publication: client
            .add_exclusive_publication(CHANNEL, PING_STREAM, TIMEOUT)
            .unwrap(),
        subscription: client
            .add_subscription(CHANNEL, PONG_STREAM, TIMEOUT)
            .unwrap(),
        next: 0,
        awaiting: None,
    };
    let echo = Echo {
        publication: client
            .add_exclusive_publication(CHANNEL, PONG_STREAM, TIMEOUT)
            .unwrap(),
        subscription: client
            .add_subscription(CHANNEL, PING_STREAM, TIMEOUT)
            .unwrap(),
        scratch: [0; MESSAGE_LEN],
        pending: false,
    };
    wait_until("both directions connected", || {
        ping.publication.is_connected()
            && echo.publication.is_connected()
            && ping.subscription.image_count() > 0
            && echo.subscription.image_count() > 0
    });

    let composite = CompositeAgent::new(vec![Box::new(ping), Box::new(echo)]);
    let mut invoker = AgentInvoker::new(composite, MonotonicClock);
    invoker.start().unwrap();
    for _ in 0..20_000 {
        invoker.invoke().expect("warm-up cycle");
    }
    let round_trips_before = ROUND_TRIPS.load(Ordering::Relaxed);

    // the counter itself counts (negative control)
    CountingAllocator::arm_process();
    drop(std::hint::black_box(vec![1u8; 8]));
    CountingAllocator::disarm_process();
    assert!(CountingAllocator::process_counts().allocations > 0);

    CountingAllocator::reset_process();
    CountingAllocator::arm_process();
    let mut errors = 0u64;
    for _ in 0..1_000_000 {
        if invoker.invoke().is_err() {
            errors += 1;
        }
    }
    CountingAllocator::disarm_process();

    let round_trips = ROUND_TRIPS.load(Ordering::Relaxed) - round_trips_before;
    assert_eq!(errors, 0, "no cycle failed");
    assert!(
        round_trips > 100_000,
        "the agents really exchanged messages: {round_trips}"
    );
    assert_eq!(
        {
            let c = CountingAllocator::process_counts();
            (c.allocations, c.bytes)
        },
        (0, 0),
        "steady-state cycles allocated"
    );
    invoker.close();
}
