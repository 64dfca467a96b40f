//! Behaviour of the runner, the invoker and the composite agent.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tensorpool_agent::*;

#[derive(Debug, thiserror::Error)]
#[error("cycle {0} failed")]
struct CycleFailed(u64);

/// Records its lifecycle into a shared log; fails on chosen cycles; terminates at a limit.
struct Probe {
    name: &'static str,
    log: Arc<Mutex<Vec<String>>>,
    cycles: Arc<AtomicU64>,
    fail_every: u64,
    terminate_at: u64,
    fail_start: bool,
    last_now: u64,
}

impl Probe {
    fn new(name: &'static str, log: &Arc<Mutex<Vec<String>>>) -> Self {
        Self {
            name,
            log: Arc::clone(log),
            cycles: Arc::new(AtomicU64::new(0)),
            fail_every: 0,
            terminate_at: u64::MAX,
            fail_start: false,
            last_now: 0,
        }
    }
    fn push(&self, what: &str) {
        self.log
            .lock()
            .unwrap()
            .push(format!("{}:{what}", self.name));
    }
}

impl Agent for Probe {
    fn on_start(&mut self) -> Result<(), AgentError> {
        self.push("start");
        if self.fail_start {
            return Err(AgentError::failed(CycleFailed(0)));
        }
        Ok(())
    }
    fn do_work(&mut self, now_ns: u64) -> AgentResult {
        assert!(now_ns >= self.last_now, "clock went backwards");
        self.last_now = now_ns;
        let n = self.cycles.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= self.terminate_at {
            return Err(AgentError::Terminate);
        }
        if self.fail_every > 0 && n.is_multiple_of(self.fail_every) {
            return Err(AgentError::failed(CycleFailed(n)));
        }
        Ok(1)
    }
    fn on_close(&mut self) {
        self.push("close");
    }
    fn role_name(&self) -> &str {
        self.name
    }
}

fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn runner_counts_errors_keeps_running_and_closes() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut probe = Probe::new("p", &log);
    probe.fail_every = 10;
    let cycles = Arc::clone(&probe.cycles);
    let handled = Arc::new(AtomicU64::new(0));
    let handled_in = Arc::clone(&handled);
    let runner = AgentRunner::start(
        probe,
        SleepingIdleStrategy::new(Duration::from_micros(10)),
        MonotonicClock,
        Some(Box::new(move |role, err| {
            assert_eq!(role, "p");
            assert!(err.to_string().contains("failed"));
            handled_in.fetch_add(1, Ordering::Relaxed);
        })),
    )
    .unwrap();
    assert_eq!(runner.name(), "p");
    wait_until("50 cycles", || cycles.load(Ordering::Relaxed) >= 50);
    assert!(runner.is_running());
    assert!(runner.error_count() >= 5);
    runner.close().unwrap();
    assert!(handled.load(Ordering::Relaxed) >= 5);
    assert_eq!(*log.lock().unwrap(), ["p:start", "p:close"]);
}

#[test]
fn runner_stops_when_the_agent_terminates() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut probe = Probe::new("t", &log);
    probe.terminate_at = 3;
    let runner = AgentRunner::start(probe, YieldingIdleStrategy, MonotonicClock, None).unwrap();
    wait_until("termination", || runner.is_finished());
    assert!(!runner.is_running());
    runner.close().unwrap();
    assert_eq!(*log.lock().unwrap(), ["t:start", "t:close"]);
}

#[test]
fn runner_reports_a_failed_start_and_never_runs() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut probe = Probe::new("bad", &log);
    probe.fail_start = true;
    let cycles = Arc::clone(&probe.cycles);
    let err = AgentRunner::start(probe, NoOpIdleStrategy, MonotonicClock, None).unwrap_err();
    assert!(
        matches!(err, RunnerError::Start { ref name, .. } if name == "bad"),
        "{err}"
    );
    assert_eq!(cycles.load(Ordering::Relaxed), 0);
    let err = AgentRunner::spawn::<Probe, _, _, _>(
        "unbuildable",
        || Err(AgentError::failed(CycleFailed(7))),
        NoOpIdleStrategy,
        MonotonicClock,
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("unbuildable"), "{err}");
}

struct Panics;
impl Agent for Panics {
    fn do_work(&mut self, _now_ns: u64) -> AgentResult {
        panic!("boom");
    }
    fn role_name(&self) -> &str {
        "panics"
    }
}

#[test]
fn runner_reports_a_panicking_agent() {
    let runner = AgentRunner::start(Panics, NoOpIdleStrategy, MonotonicClock, None).unwrap();
    wait_until("the panic", || runner.is_finished());
    assert!(!runner.is_running());
    assert!(matches!(runner.close(), Err(RunnerError::Panicked { .. })));
}

#[test]
fn invoker_runs_cycles_on_the_callers_thread_with_the_injected_clock() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut probe = Probe::new("i", &log);
    probe.fail_every = 2;
    probe.terminate_at = 5;
    let clock = ManualClock::new(100);
    let mut invoker = AgentInvoker::new(probe, clock.clone());
    assert!(!invoker.is_running());
    assert_eq!(invoker.invoke().unwrap(), 1); // starts implicitly
    assert!(invoker.is_running());
    clock.advance(50);
    assert!(invoker.invoke().is_err()); // cycle 2 fails
    assert_eq!(invoker.agent().last_now, 150);
    assert_eq!(invoker.invoke().unwrap(), 1);
    assert!(invoker.invoke().is_err()); // cycle 4 fails
    assert_eq!(invoker.error_count(), 2);
    assert!(matches!(invoker.invoke(), Err(AgentError::Terminate)));
    assert!(!invoker.is_running());
    assert_eq!(invoker.invoke().unwrap(), 0, "closed agents do not run");
    drop(invoker);
    assert_eq!(*log.lock().unwrap(), ["i:start", "i:close"]);
}

#[test]
fn composite_runs_every_member_and_closes_in_reverse() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut a = Probe::new("a", &log);
    a.fail_every = 1;
    let b = Probe::new("b", &log);
    let b_cycles = Arc::clone(&b.cycles);
    let composite = CompositeAgent::new(vec![Box::new(a), Box::new(b)]);
    assert_eq!(composite.role_name(), "composite[a,b]");
    let mut invoker = AgentInvoker::new(composite, ManualClock::new(0));
    invoker.start().unwrap();
    assert!(invoker.invoke().is_err(), "a's failure is reported");
    assert_eq!(b_cycles.load(Ordering::Relaxed), 1, "b still ran");
    invoker.close();
    assert_eq!(
        *log.lock().unwrap(),
        ["a:start", "b:start", "b:close", "a:close"]
    );
}

#[test]
fn composite_start_failure_closes_the_members_already_started() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let a = Probe::new("a", &log);
    let mut b = Probe::new("b", &log);
    b.fail_start = true;
    let mut composite = CompositeAgent::new(vec![Box::new(a), Box::new(b)]);
    assert!(composite.on_start().is_err());
    assert_eq!(*log.lock().unwrap(), ["a:start", "b:start", "a:close"]);
}
