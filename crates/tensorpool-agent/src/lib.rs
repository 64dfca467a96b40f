//! Agent runtime: `Agent`, idle strategies, runner, invoker, composite agent, clock, timers.
#![forbid(unsafe_code)]
