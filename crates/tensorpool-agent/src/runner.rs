//! [`AgentRunner`]: a thread that runs one agent's duty cycle until told to stop.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};

use crate::{Agent, AgentError, Clock, IdleStrategy};

/// Receives the errors an agent's duty cycle returns: the role name and the error.
pub type ErrorHandler = Box<dyn FnMut(&str, &AgentError) + Send>;

/// Why a runner could not start or did not end cleanly.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The operating system refused to create the thread.
    #[error("could not spawn the agent thread '{name}': {source}")]
    Spawn {
        /// Thread name.
        name: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Building the agent or its `on_start` failed; the agent never ran.
    #[error("agent '{name}' failed to start: {source}")]
    Start {
        /// Role name (or thread name when the agent could not be built).
        name: String,
        /// What failed.
        source: AgentError,
    },
    /// The agent thread panicked.
    #[error("agent thread '{name}' panicked")]
    Panicked {
        /// Thread name.
        name: String,
    },
}

/// Runs an agent on a dedicated thread: `on_start`, then duty cycles with one clock read
/// each and the idle strategy between them, then `on_close` when stopped.
///
/// Errors from `do_work` go to the error handler and are counted; the agent keeps running.
/// [`AgentError::Terminate`] ends the loop. Dropping the runner stops and joins the thread.
#[derive(Debug)]
pub struct AgentRunner {
    name: String,
    running: Arc<AtomicBool>,
    errors: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl AgentRunner {
    /// Builds the agent on a new thread named `thread_name` (so agents holding
    /// thread-affine resources need not be `Send`) and runs it. Returns once `on_start` has
    /// succeeded, or with the error that prevented the start.
    pub fn spawn<A, F, I, C>(
        thread_name: &str,
        build: F,
        mut idle: I,
        clock: C,
        mut error_handler: Option<ErrorHandler>,
    ) -> Result<Self, RunnerError>
    where
        A: Agent,
        F: FnOnce() -> Result<A, AgentError> + Send + 'static,
        I: IdleStrategy + Send + 'static,
        C: Clock + Send + 'static,
    {
        let running = Arc::new(AtomicBool::new(true));
        let errors = Arc::new(AtomicU64::new(0));
        let (started_tx, started_rx) = mpsc::sync_channel::<Result<(), RunnerError>>(1);
        let thread_running = Arc::clone(&running);
        let thread_errors = Arc::clone(&errors);
        let name = thread_name.to_owned();
        let thread_name_owned = name.clone();
        let thread = thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                // Clears the running flag however the thread ends, panics included.
                let _stopped = StopOnExit(Arc::clone(&thread_running));
                let mut agent = match build() {
                    Ok(agent) => agent,
                    Err(source) => {
                        let _ = started_tx.send(Err(RunnerError::Start {
                            name: thread_name_owned,
                            source,
                        }));
                        return;
                    }
                };
                if let Err(source) = agent.on_start() {
                    let name = agent.role_name().to_owned();
                    agent.on_close();
                    let _ = started_tx.send(Err(RunnerError::Start { name, source }));
                    return;
                }
                let _ = started_tx.send(Ok(()));
                while thread_running.load(Ordering::Acquire) {
                    match agent.do_work(clock.nanos()) {
                        Ok(work) => idle.idle_work(work),
                        Err(AgentError::Terminate) => break,
                        Err(error) => {
                            thread_errors.fetch_add(1, Ordering::Relaxed);
                            if let Some(handler) = error_handler.as_mut() {
                                handler(agent.role_name(), &error);
                            }
                            idle.idle_work(0);
                        }
                    }
                }
                agent.on_close();
            })
            .map_err(|source| RunnerError::Spawn {
                name: name.clone(),
                source,
            })?;
        let runner = Self {
            name: name.clone(),
            running,
            errors,
            thread: Some(thread),
        };
        match started_rx.recv() {
            Ok(Ok(())) => Ok(runner),
            Ok(Err(e)) => {
                let _ = runner.join();
                Err(e)
            }
            // The thread ended without reporting: it panicked while building or starting.
            Err(_) => Err(runner
                .join()
                .err()
                .unwrap_or(RunnerError::Panicked { name })),
        }
    }

    /// Runs an agent that can be moved to the new thread.
    pub fn start<A, I, C>(
        agent: A,
        idle: I,
        clock: C,
        error_handler: Option<ErrorHandler>,
    ) -> Result<Self, RunnerError>
    where
        A: Agent + Send + 'static,
        I: IdleStrategy + Send + 'static,
        C: Clock + Send + 'static,
    {
        let name = agent.role_name().to_owned();
        Self::spawn(&name, move || Ok(agent), idle, clock, error_handler)
    }

    /// The thread's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the duty cycle is still running (false once stopped or terminated).
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    /// Whether the agent thread has ended (stopped, terminated, failed to start or panicked).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// How many duty cycles returned an error so far.
    pub fn error_count(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Asks the agent to stop after its current cycle, without waiting.
    pub fn signal_stop(&self) {
        self.running.store(false, Ordering::Release);
    }

    /// Stops the agent, waits for `on_close` to finish and reports a panic if there was one.
    pub fn close(mut self) -> Result<(), RunnerError> {
        self.signal_stop();
        self.join_thread()
    }

    fn join(mut self) -> Result<(), RunnerError> {
        self.join_thread()
    }

    fn join_thread(&mut self) -> Result<(), RunnerError> {
        match self.thread.take() {
            Some(thread) => thread.join().map_err(|_| RunnerError::Panicked {
                name: self.name.clone(),
            }),
            None => Ok(()),
        }
    }
}

struct StopOnExit(Arc<AtomicBool>);

impl Drop for StopOnExit {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Drop for AgentRunner {
    fn drop(&mut self) {
        self.signal_stop();
        let _ = self.join_thread();
    }
}
