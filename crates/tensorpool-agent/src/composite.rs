//! [`CompositeAgent`]: several agents sharing one thread.

use crate::{Agent, AgentError, AgentResult};

/// Runs several agents as one, in order, within each duty cycle: the "shared" threading
/// mode. Every member runs in every cycle even when an earlier one fails; the first
/// failure of the cycle is returned after all have run. Termination of any member ends the
/// composite.
pub struct CompositeAgent {
    name: String,
    agents: Vec<Box<dyn Agent>>,
}

impl std::fmt::Debug for CompositeAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompositeAgent")
            .field("name", &self.name)
            .finish()
    }
}

impl CompositeAgent {
    /// Combines `agents`; the role name lists them: `composite[a,b]`.
    pub fn new(agents: Vec<Box<dyn Agent>>) -> Self {
        let names: Vec<&str> = agents.iter().map(|a| a.role_name()).collect();
        Self {
            name: format!("composite[{}]", names.join(",")),
            agents,
        }
    }

    /// The member agents.
    pub fn agents(&self) -> &[Box<dyn Agent>] {
        &self.agents
    }
}

impl Agent for CompositeAgent {
    fn on_start(&mut self) -> Result<(), AgentError> {
        for (started, agent) in self.agents.iter_mut().enumerate() {
            if let Err(e) = agent.on_start() {
                // Close the ones already started, newest first.
                for earlier in self.agents[..started].iter_mut().rev() {
                    earlier.on_close();
                }
                return Err(e);
            }
        }
        Ok(())
    }

    fn do_work(&mut self, now_ns: u64) -> AgentResult {
        let mut work = 0;
        let mut first_error = None;
        for agent in &mut self.agents {
            match agent.do_work(now_ns) {
                Ok(n) => work += n,
                Err(AgentError::Terminate) => return Err(AgentError::Terminate),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(work),
        }
    }

    fn on_close(&mut self) {
        for agent in self.agents.iter_mut().rev() {
            agent.on_close();
        }
    }

    fn role_name(&self) -> &str {
        &self.name
    }
}
