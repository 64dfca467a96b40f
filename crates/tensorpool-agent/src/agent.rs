//! The [`Agent`] contract.

use std::error::Error;
use std::fmt;

/// What one duty cycle returns: the amount of work done (0 means "nothing to do", which lets
/// the idle strategy back off), or an error.
pub type AgentResult = Result<usize, AgentError>;

/// Why a duty cycle did not complete normally.
#[derive(Debug)]
pub enum AgentError {
    /// The agent asks to be stopped; runners close it and end their loop.
    Terminate,
    /// A recoverable failure: runners hand it to their error handler, count it and keep
    /// running the agent.
    Failed(Box<dyn Error + Send + Sync>),
}

impl AgentError {
    /// Wraps any error as a recoverable failure.
    pub fn failed<E: Error + Send + Sync + 'static>(error: E) -> Self {
        Self::Failed(Box::new(error))
    }

    /// Whether this error asks the runner to stop the agent.
    pub fn is_terminate(&self) -> bool {
        matches!(self, Self::Terminate)
    }
}

impl fmt::Display for AgentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Terminate => f.write_str("agent requested termination"),
            Self::Failed(e) => write!(f, "{e}"),
        }
    }
}

impl Error for AgentError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Terminate => None,
            Self::Failed(e) => Some(e.as_ref()),
        }
    }
}

/// A single-threaded unit of work, driven by a runner or an invoker.
///
/// Agents hold no threads or locks of their own. All time-dependent decisions use the
/// `now_ns` handed to [`Agent::do_work`] (read once per cycle from the runner's clock).
pub trait Agent {
    /// Called once, on the thread that will run the agent, before the first duty cycle.
    fn on_start(&mut self) -> Result<(), AgentError> {
        Ok(())
    }

    /// One duty cycle. Returns how much work was done; 0 lets the idle strategy back off.
    fn do_work(&mut self, now_ns: u64) -> AgentResult;

    /// Called once after the last duty cycle, on the same thread.
    fn on_close(&mut self) {}

    /// A short name for logs, thread names and counters.
    fn role_name(&self) -> &str;
}

impl<A: Agent + ?Sized> Agent for Box<A> {
    fn on_start(&mut self) -> Result<(), AgentError> {
        (**self).on_start()
    }

    fn do_work(&mut self, now_ns: u64) -> AgentResult {
        (**self).do_work(now_ns)
    }

    fn on_close(&mut self) {
        (**self).on_close()
    }

    fn role_name(&self) -> &str {
        (**self).role_name()
    }
}
