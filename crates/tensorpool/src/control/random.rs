//! Per-process random numbers for ids (correlation id seeds, client ids, lease id starts):
//! std's randomly keyed SipHash over the time, the pid and a counter. Not cryptographic;
//! enough to make ids of different processes and runs unlikely to collide (Appendix B).

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// A fresh random 64-bit value.
pub fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    h.write_u128(since_epoch);
    h.write_u64(tensorpool_agent::monotonic_ns());
    h.finish()
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_differ() {
        let a = super::random_u64();
        let b = super::random_u64();
        assert_ne!(a, b);
    }
}
