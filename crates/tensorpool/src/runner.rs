//! [`Runner`]: an agent (a [`crate::producer::Producer`], a
//! [`crate::consumer::ConsumerAgent`], any [`Agent`]) driven on a dedicated thread, the
//! model of Aeron's `AgentRunner`. The other model, Aeron's `AgentInvoker`, is calling
//! `do_work` (or `poll`) yourself from a thread you own.
//!
//! The runner owns the agent behind a mutex: its thread takes the lock for one duty cycle
//! at a time and idles (the idle strategy given) without it; [`Runner::with`] takes the
//! same lock to use the agent from any other thread between cycles (a producer's claim and
//! commit, a consumer's counters). An error from a duty cycle is counted and kept
//! ([`Runner::error_count`], [`Runner::last_error`]); the runner goes on (idling as after
//! a cycle without work) until [`Runner::close`] or drop, as Aeron's runner does; an agent
//! returning [`AgentError::Terminate`] stops it.
//!
//! ```no_run
//! use std::time::Duration;
//! use tensorpool::prelude::*;
//! use tensorpool::runner::Runner;
//! use tensorpool_agent::SleepingIdleStrategy;
//!
//! let ctx = Context::embedded()?;
//! let consumer = ctx.consumer(10_000).build()?;
//! let runner = Runner::start(
//!     consumer.into_agent(|f: &Frame<'_>| println!("frame {}", f.seq()), 16),
//!     SleepingIdleStrategy::new(Duration::from_micros(100)),
//! )?;
//! let accepted = runner.with(|a| a.consumer().counters().accepted);
//! let consumer_agent = runner.close()?; // stops and joins; gives the agent back
//! # let _ = (accepted, consumer_agent);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use tensorpool_agent::{Agent, AgentError, IdleStrategy};

/// Why a runner could not start or stop.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The thread could not be spawned.
    #[error("could not spawn the runner thread: {0}")]
    Spawn(#[from] std::io::Error),
    /// The agent's `on_start` failed.
    #[error("agent failed to start: {0}")]
    Start(String),
    /// The thread panicked (a panic in the agent, or in a frame handler).
    #[error("the runner thread panicked")]
    Panicked,
}

#[derive(Debug)]
struct Shared<A> {
    agent: Mutex<A>,
    running: AtomicBool,
    cycles: AtomicU64,
    errors: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl<A> Shared<A> {
    fn lock(&self) -> MutexGuard<'_, A> {
        // A panic on the runner thread poisons the lock; the agent itself is still whole.
        self.agent.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// An agent driven on its own thread (see the module docs).
#[derive(Debug)]
pub struct Runner<A: Agent + Send + 'static> {
    shared: Arc<Shared<A>>,
    thread: Option<JoinHandle<()>>,
}

impl<A: Agent + Send + 'static> Runner<A> {
    /// Starts a thread (named after the agent's role) that calls `agent.on_start()`, then
    /// `do_work` until stopped, idling with `idle` after a cycle without work.
    pub fn start<I: IdleStrategy + Send + 'static>(
        mut agent: A,
        mut idle: I,
    ) -> Result<Self, RunnerError> {
        agent
            .on_start()
            .map_err(|e| RunnerError::Start(e.to_string()))?;
        let name = format!("tp-{}", agent.role_name());
        let shared = Arc::new(Shared {
            agent: Mutex::new(agent),
            running: AtomicBool::new(true),
            cycles: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            last_error: Mutex::new(None),
        });
        let s = Arc::clone(&shared);
        let thread = std::thread::Builder::new().name(name).spawn(move || {
            while s.running.load(Ordering::Acquire) {
                let result = {
                    let mut agent = s.lock();
                    agent.do_work(tensorpool_agent::monotonic_ns())
                };
                s.cycles.fetch_add(1, Ordering::Relaxed);
                match result {
                    Ok(work) => idle.idle_work(work),
                    Err(AgentError::Terminate) => break,
                    Err(e) => {
                        if s.errors.fetch_add(1, Ordering::AcqRel) == 0
                            || s.errors.load(Ordering::Relaxed).is_power_of_two()
                        {
                            tracing::warn!(error = %e, "runner: duty cycle failed");
                        }
                        if let Ok(mut last) = s.last_error.lock() {
                            // one allocation per failing cycle, and only while failing
                            *last = Some(e.to_string());
                        }
                        idle.idle_work(0);
                    }
                }
            }
            s.running.store(false, Ordering::Release);
        })?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// Runs `f` on the agent between two duty cycles (takes the runner's lock: keep it short).
    pub fn with<R>(&self, f: impl FnOnce(&mut A) -> R) -> R {
        f(&mut self.shared.lock())
    }

    /// Whether the thread still runs duty cycles.
    pub fn is_running(&self) -> bool {
        self.shared.running.load(Ordering::Acquire)
    }

    /// Duty cycles run so far.
    pub fn cycles(&self) -> u64 {
        self.shared.cycles.load(Ordering::Relaxed)
    }

    /// Duty cycles that failed.
    pub fn error_count(&self) -> u64 {
        self.shared.errors.load(Ordering::Acquire)
    }

    /// The last failure's message.
    pub fn last_error(&self) -> Option<String> {
        self.shared.last_error.lock().ok().and_then(|l| l.clone())
    }

    /// Asks the thread to stop after its current cycle (does not wait).
    pub fn signal_stop(&self) {
        self.shared.running.store(false, Ordering::Release);
    }

    fn join(&mut self) -> Result<(), RunnerError> {
        self.signal_stop();
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| RunnerError::Panicked),
            None => Ok(()),
        }
    }

    /// Stops the thread, waits for it and gives the agent back (not closed: dropping it
    /// closes it, or use it on this thread).
    pub fn close(mut self) -> Result<A, RunnerError> {
        self.join()?;
        let shared = Arc::clone(&self.shared);
        drop(self);
        match Arc::try_unwrap(shared) {
            Ok(s) => Ok(s.agent.into_inner().unwrap_or_else(|p| p.into_inner())),
            // the thread is joined and `self` dropped: no other reference exists
            Err(_) => Err(RunnerError::Panicked),
        }
    }
}

impl<A: Agent + Send + 'static> Drop for Runner<A> {
    /// Stops and joins the thread; the agent's `on_close` runs once the last reference goes.
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.join();
            self.shared.lock().on_close();
        }
    }
}
