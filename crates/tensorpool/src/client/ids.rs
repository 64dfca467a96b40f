//! Correlation ids and client ids (Driver Model Appendix B).
//!
//! Correlation ids come from one per-process sequence seeded with a random value, so ids of
//! different processes and runs do not collide with stale responses, and an id is never
//! reused while it could be outstanding (the sequence only moves forward).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::control::random_u64;

static SEQUENCE: OnceLock<AtomicI64> = OnceLock::new();

/// The next correlation id of this process.
pub fn next_correlation_id() -> i64 {
    let seq = SEQUENCE.get_or_init(|| {
        // a positive 62-bit start: 2^62 ids before the sequence could wrap
        AtomicI64::new((random_u64() >> 2) as i64 | 1)
    });
    seq.fetch_add(1, Ordering::Relaxed)
}

/// A random client id: non-zero (0 is the auto-assign sentinel) and not the null value.
pub fn random_client_id() -> u32 {
    loop {
        let id = random_u64() as u32;
        if id != 0 && id != u32::MAX {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correlation_ids_move_forward_and_client_ids_are_valid() {
        let a = next_correlation_id();
        let b = next_correlation_id();
        assert!(b > a && a > 0);
        for _ in 0..100 {
            let id = random_client_id();
            assert!(id != 0 && id != u32::MAX);
        }
    }
}
