//! After start, the driver allocates nothing per control message: a counting global allocator
//! sees 0 allocations over 20,000 consumer attach / keepalive / detach cycles (with their
//! revocations and the periodic announces, activity refreshes and producer keepalives in
//! between). Producer attaches and detaches are excluded on purpose: each one creates a new
//! epoch's files (paths, mappings), which is provisioning, not message handling.

mod driver_common;

use driver_common::*;
use tensorpool::driver::Outputs;
use tensorpool_codec::Message;
use tensorpool_codec::driver::{
    HugepagesPolicy, PublishMode, ResponseCode, Role, ShmAttachRequest, ShmAttachResponse,
    ShmDetachRequest, ShmLeaseKeepalive,
};
use tensorpool_testkit::CountingAllocator;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const STREAM: u32 = 10_000;

/// One consumer cycle, messages pre-encoded into `bufs` (no allocation while armed).
struct Cycle {
    attach: [u8; 64],
    attach_len: usize,
    keepalive: [u8; 64],
    keepalive_len: usize,
    detach: [u8; 64],
    detach_len: usize,
}

fn encode<'a, M: Message<'a>>(m: &M, buf: &mut [u8; 64]) -> usize {
    m.encode(buf).unwrap()
}

#[test]
fn consumer_cycles_allocate_nothing() {
    let mut h = Harness::with("node_id_reuse_cooldown_ms = 50", "");
    let producer = h.attach_ok(1, STREAM, Role::Producer);
    let mut producer_ka = [0u8; 64];
    let producer_ka_len = encode(
        &ShmLeaseKeepalive {
            lease_id: producer.lease_id.unwrap(),
            stream_id: STREAM,
            client_id: 1,
            role: Role::Producer,
            client_timestamp_ns: 0,
        },
        &mut producer_ka,
    );
    let mut cycle = Cycle {
        attach: [0; 64],
        attach_len: 0,
        keepalive: [0; 64],
        keepalive_len: 0,
        detach: [0; 64],
        detach_len: 0,
    };
    let run = |h: &mut Harness, cycle: &mut Cycle, cycles: u64, arm: bool| {
        for i in 0..cycles {
            let client = 1_000 + (i % 7) as u32;
            let correlation_id = i as i64;
            cycle.attach_len = encode(
                &ShmAttachRequest {
                    correlation_id,
                    stream_id: STREAM,
                    client_id: client,
                    role: Role::Consumer,
                    expected_layout_version: 1,
                    publish_mode: Some(PublishMode::RequireExisting),
                    require_hugepages: HugepagesPolicy::Unspecified,
                    desired_node_id: None,
                },
                &mut cycle.attach,
            );
            if arm {
                CountingAllocator::arm_thread();
            }
            h.sink.clear();
            let now = h.now();
            {
                let mut out = Outputs::single(&mut h.sink);
                h.core
                    .on_control(&cycle.attach[..cycle.attach_len], now, &mut out);
            }
            // the lease id from the response, read without allocating
            let resp = ShmAttachResponse::decode(h.sink.messages().next().unwrap()).unwrap();
            assert_eq!(resp.code, ResponseCode::Ok);
            let lease_id = resp.lease_id.unwrap();
            cycle.keepalive_len = encode(
                &ShmLeaseKeepalive {
                    lease_id,
                    stream_id: STREAM,
                    client_id: client,
                    role: Role::Consumer,
                    client_timestamp_ns: now,
                },
                &mut cycle.keepalive,
            );
            cycle.detach_len = encode(
                &ShmDetachRequest {
                    correlation_id: -correlation_id,
                    lease_id,
                    stream_id: STREAM,
                    client_id: client,
                    role: Role::Consumer,
                },
                &mut cycle.detach,
            );
            let mut out = Outputs::single(&mut h.sink);
            h.core
                .on_control(&cycle.keepalive[..cycle.keepalive_len], now, &mut out);
            h.core
                .on_control(&producer_ka[..producer_ka_len], now, &mut out);
            h.core
                .on_control(&cycle.detach[..cycle.detach_len], now, &mut out);
            h.core.on_tick(now, &mut out);
            CountingAllocator::disarm_thread();
            h.clock.advance(MS); // announces, refreshes and cooldown pruning happen on the way
        }
    };
    // DriverCore runs on this thread alone, so this thread is what is counted (counted
    // process-wide, the test harness's own thread allocated at times: 1 failure in 30 runs).
    // the allocator counts (negative control)
    CountingAllocator::arm_thread();
    let probe = std::hint::black_box(vec![1u8; 8]);
    CountingAllocator::disarm_thread();
    drop(probe);
    assert!(CountingAllocator::thread_counts().allocations > 0);
    // warm-up: every buffer reaches its steady-state size
    run(&mut h, &mut cycle, 2_000, false);
    CountingAllocator::reset_thread();
    run(&mut h, &mut cycle, 20_000, true);
    let allocations = CountingAllocator::thread_counts().allocations;
    assert_eq!(
        allocations, 0,
        "allocations during 20,000 attach/keepalive/detach cycles"
    );
    // the cycles really happened
    let c = h.core.counters();
    assert!(
        c.attaches_granted >= 22_000 && c.leases_detached >= 22_000 && c.keepalives >= 44_000,
        "{c:?}"
    );
    assert!(c.announces_sent >= 200, "{c:?}");
    assert!(h.core.lease(producer.lease_id.unwrap()).is_some());
}
