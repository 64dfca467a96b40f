//! The only crate that touches Aeron (through rusteron): media drivers, publications,
//! subscriptions and counters.
