//! The producer's core (`tensorpool::producer::ProducerCore`, no Aeron) under sequences of
//! consumer hellos, QoS, raw control bytes, claims with arbitrary specs and lengths committed
//! or aborted, clock jumps, refusing sinks, metadata and epoch bumps, against its own region
//! files under /dev/shm. Never a panic; every descriptor it emits names the frame just
//! committed and a consumer's read of the slot proves it; sequences strictly increase. The
//! interpreter is shared with the default test run (`crates/tensorpool/tests/producer_core.rs`
//! runs it under proptest).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/tensorpool/tests/producer_ops/mod.rs"]
mod producer_ops;

fuzz_target!(|data: &[u8]| {
    producer_ops::run(data);
});
