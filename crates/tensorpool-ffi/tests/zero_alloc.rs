//! ARCHITECTURE rule 2 through the C ABI: after start-up, claim -> write -> commit ->
//! do_work -> poll or poll_frames + next_event (handler reads every byte, rechecks) cycles made only of `tp_*` calls
//! allocate nothing. A counting global allocator counts this thread's allocations.

use std::cell::Cell;
use std::ffi::{CString, c_void};
use std::ptr::null_mut;

use tensorpool_ffi::*;
use tensorpool_testkit::CountingAllocator;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// What the handler saw; `Cell`s because the C handler gets it back as a shared pointer.
#[derive(Default)]
struct Sink {
    frames: Cell<u64>,
    late: Cell<u64>,
    sum: Cell<u64>,
}

extern "C" fn on_frame(frame: *const tp_frame_view, user: *mut c_void) {
    // SAFETY: the library passes a valid view and our `Sink` back for the call's duration.
    let (v, sink) = unsafe { (&*frame, &*user.cast::<Sink>()) };
    // SAFETY: `data` points to `len` mapped bytes for the handler's duration.
    let bytes = unsafe { std::slice::from_raw_parts(v.data, v.len) };
    let s = bytes
        .iter()
        .fold(0u64, |a, &b| a.wrapping_add(u64::from(b)));
    if tp_frame_recheck(frame) == tp_status::TP_OK {
        sink.frames.set(sink.frames.get() + 1);
        sink.sum.set(sink.sum.get().wrapping_add(s));
    } else {
        sink.late.set(sink.late.get() + 1);
    }
}

fn ok(s: tp_status) {
    assert_eq!(s, tp_status::TP_OK, "{s:?}");
}

#[test]
fn arch_2_claim_commit_poll_cycles_through_the_c_abi_allocate_nothing() {
    let cycles: u64 = std::env::var("TP_ZERO_ALLOC_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let shm = tempfile::Builder::new()
        .prefix("tp-ffi-zero-alloc-")
        .tempdir_in("/dev/shm")
        .unwrap();
    let base = CString::new(shm.path().to_str().unwrap()).unwrap();
    let mut ctx = null_mut();
    ok(tp_context_new_embedded(std::ptr::null(), &mut ctx));

    // SAFETY (all option structs below): zeroed then fully initialised by the init calls.
    let mut popts: tp_producer_options = unsafe { std::mem::zeroed() };
    ok(tp_producer_options_init(&mut popts, 10_000));
    popts.shm_base_dir = base.as_ptr();
    popts.header_nslots = 16;
    popts.stride_bytes = 64 * 1024;
    popts.prefault = false;
    popts.announce_period_ms = 5;
    let mut producer = null_mut();
    ok(tp_producer_new(ctx, &popts, &mut producer));

    // SAFETY: as above, zeroed then initialised by tp_consumer_options_init.
    let mut copts: tp_consumer_options = unsafe { std::mem::zeroed() };
    ok(tp_consumer_options_init(&mut copts, 10_000));
    copts.allowed_base_dir = base.as_ptr();
    let mut consumer = null_mut();
    ok(tp_consumer_new(ctx, &copts, &mut consumer));

    let shape = [16usize, 64];
    let mut spec = null_mut();
    ok(tp_tensor_spec_new(
        tp_dtype::TP_DTYPE_UINT8 as u32,
        tp_major_order::TP_ORDER_ROW as u32,
        2,
        shape.as_ptr(),
        std::ptr::null(),
        &mut spec,
    ));

    let sink = Sink::default();
    let user = (&sink as *const Sink).cast_mut().cast::<c_void>();
    let cycle = |i: u64| {
        let mut claim = tp_claim {
            seq: 0,
            data: null_mut(),
            len: 0,
        };
        ok(tp_producer_claim(producer, spec, &mut claim));
        // SAFETY: the claim's slot holds `len` writable bytes until commit.
        let payload = unsafe { std::slice::from_raw_parts_mut(claim.data, claim.len) };
        payload.fill(i as u8);
        ok(tp_producer_commit(producer, std::ptr::null_mut()));
        ok(tp_producer_do_work(producer, 0, std::ptr::null_mut()));
        if i.is_multiple_of(2) {
            ok(tp_consumer_poll(
                consumer,
                Some(on_frame),
                user,
                16,
                std::ptr::null_mut(),
            ));
        } else {
            // the frame-counting poll and the event queue allocate nothing either
            let (mut frames, mut work) = (0, 0);
            ok(tp_consumer_poll_frames(
                consumer,
                Some(on_frame),
                user,
                16,
                &mut frames,
                &mut work,
            ));
            let mut event = tp_consumer_event::default();
            let mut got = false;
            ok(tp_consumer_next_event(consumer, &mut event, &mut got));
        }
    };
    // Warm up until the consumer maps and frames flow.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut i = 0;
    while sink.frames.get() < 1000 {
        assert!(
            std::time::Instant::now() < deadline,
            "no frames within 20 s"
        );
        cycle(i);
        i += 1;
    }
    let before = sink.frames.get();
    // the counter itself counts (negative control)
    let ((), probe) = CountingAllocator::count_thread(|| drop(std::hint::black_box(vec![1u8; 8])));
    assert_eq!(probe.allocations, 1);
    let ((), counts) = CountingAllocator::count_thread(|| {
        for j in 0..cycles {
            cycle(i + j);
        }
    });
    let allocs = counts.allocations;
    let delivered = sink.frames.get() - before;
    println!(
        "zero-alloc through the C ABI: {cycles} cycles, {allocs} allocations, {delivered} frames, {} late",
        sink.late.get()
    );
    assert_eq!(allocs, 0, "steady-state C ABI cycles allocated");
    assert!(
        delivered >= cycles * 99 / 100,
        "frames accepted {delivered}"
    );

    ok(tp_tensor_spec_free(spec));
    ok(tp_consumer_free(consumer));
    ok(tp_producer_free(producer));
    ok(tp_context_free(ctx));
}
