//! [`AgentInvoker`]: the application drives an agent's duty cycle from its own loop.

use crate::{Agent, AgentError, AgentResult, Clock};

/// Runs an agent's duty cycle when the caller says so, on the caller's thread: the
/// "invoker" threading mode, for applications with their own loop (or a GUI, or Python).
///
/// Each [`AgentInvoker::invoke`] reads the clock once and runs one cycle. A
/// [`AgentError::Terminate`] closes the agent; other errors are counted and returned.
#[derive(Debug)]
pub struct AgentInvoker<A: Agent, C: Clock> {
    agent: A,
    clock: C,
    started: bool,
    closed: bool,
    errors: u64,
}

impl<A: Agent, C: Clock> AgentInvoker<A, C> {
    /// Wraps an agent; nothing runs until [`AgentInvoker::start`].
    pub fn new(agent: A, clock: C) -> Self {
        Self {
            agent,
            clock,
            started: false,
            closed: false,
            errors: 0,
        }
    }

    /// Calls `on_start` once. Calling it again does nothing.
    pub fn start(&mut self) -> Result<(), AgentError> {
        if self.started || self.closed {
            return Ok(());
        }
        self.started = true;
        self.agent.on_start().inspect_err(|_| {
            self.closed = true;
            self.agent.on_close();
        })
    }

    /// Runs one duty cycle (starting the agent first if needed). Returns 0 without running
    /// anything once the agent is closed.
    pub fn invoke(&mut self) -> AgentResult {
        if self.closed {
            return Ok(0);
        }
        if !self.started {
            self.start()?;
        }
        match self.agent.do_work(self.clock.nanos()) {
            Err(AgentError::Terminate) => {
                self.close();
                Err(AgentError::Terminate)
            }
            Err(e) => {
                self.errors += 1;
                Err(e)
            }
            ok => ok,
        }
    }

    /// Calls `on_close` once (if the agent was started).
    pub fn close(&mut self) {
        if !self.closed {
            self.closed = true;
            if self.started {
                self.agent.on_close();
            }
        }
    }

    /// Whether the agent is started and not closed.
    pub fn is_running(&self) -> bool {
        self.started && !self.closed
    }

    /// How many cycles returned an error (other than termination).
    pub fn error_count(&self) -> u64 {
        self.errors
    }

    /// The agent.
    pub fn agent(&self) -> &A {
        &self.agent
    }

    /// The agent, mutably.
    pub fn agent_mut(&mut self) -> &mut A {
        &mut self.agent
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }
}

impl<A: Agent, C: Clock> Drop for AgentInvoker<A, C> {
    fn drop(&mut self) {
        self.close();
    }
}
