//! The boundary rules: every entry point answers NULL, freed and wrong-kind handles with an
//! error code and a message (never undefined behaviour or an abort), and claims follow their
//! state rules.

use std::ffi::{CStr, CString, c_void};
use std::ptr::{null, null_mut};

use tensorpool_ffi::*;
use tp_status::*;

fn last() -> String {
    // SAFETY: tp_last_error returns a NUL-terminated string valid until the next error.
    unsafe { CStr::from_ptr(tp_last_error()) }
        .to_string_lossy()
        .into_owned()
}

#[test]
fn null_and_foreign_handles_are_error_codes_at_every_entry_point() {
    let mut n = 0usize;
    let mut u = 0u64;
    let mut b = false;
    let mut sc = tp_supervisor_counters::default();
    let mut rc = tp_ratelimiter_counters::default();
    let mut bc = tp_bridge_counters::default();
    let mut bm = tp_bridge_mapping::default();
    let mut dr = std::mem::MaybeUninit::<tp_discovery_request>::uninit();
    assert_eq!(tp_discovery_request_init(dr.as_mut_ptr()), TP_OK);
    // SAFETY: tp_discovery_request_init filled every field.
    let dr = unsafe { dr.assume_init() };
    let mut results: *mut tp_discovery_results = null_mut();
    let mut dummy = 0u8;
    // A pointer that is no live handle: the address of a local.
    let fake = (&mut dummy as *mut u8).cast::<c_void>();
    let handles: [(*mut c_void, tp_status); 2] =
        [(null_mut(), TP_ERR_NULL), (fake, TP_ERR_INVALID_HANDLE)];
    for (h, want) in handles {
        let calls: Vec<(&str, tp_status)> = vec![
            (
                "context_aeron_dir",
                tp_context_aeron_dir(h.cast(), null_mut(), 0, &mut n),
            ),
            (
                "context_is_embedded",
                tp_context_is_embedded(h.cast(), &mut b),
            ),
            (
                "producer_claim",
                tp_producer_claim(h.cast(), null(), null_mut()),
            ),
            ("producer_commit", tp_producer_commit(h.cast(), &mut u)),
            ("producer_abort", tp_producer_abort(h.cast())),
            (
                "producer_offer",
                tp_producer_offer(h.cast(), null(), null(), 0, &mut u),
            ),
            ("producer_do_work", tp_producer_do_work(h.cast(), 0, &mut n)),
            ("producer_epoch", tp_producer_epoch(h.cast(), &mut u)),
            ("producer_next_seq", tp_producer_next_seq(h.cast(), &mut u)),
            ("producer_close", tp_producer_close(h.cast())),
            (
                "producer_bump_epoch",
                tp_producer_bump_epoch(h.cast(), &mut u),
            ),
            (
                "consumer_poll",
                tp_consumer_poll(h.cast(), None, null_mut(), 1, &mut n),
            ),
            (
                "consumer_mapping_error",
                tp_consumer_mapping_error(h.cast(), null_mut(), 0, &mut n),
            ),
            ("spec_len_bytes", tp_tensor_spec_len_bytes(h.cast(), &mut n)),
            ("driver_is_running", tp_driver_is_running(h.cast(), &mut b)),
            ("driver_stop", tp_driver_stop(h.cast(), 1)),
            ("idle_work", tp_idle_work(h.cast(), 0)),
            (
                "supervisor_do_work",
                tp_supervisor_do_work(h.cast(), null_mut()),
            ),
            (
                "supervisor_get_counters",
                tp_supervisor_get_counters(h.cast(), &mut sc),
            ),
            (
                "ratelimiter_do_work",
                tp_ratelimiter_do_work(h.cast(), null_mut()),
            ),
            (
                "ratelimiter_mapping_count",
                tp_ratelimiter_mapping_count(h.cast(), &mut n),
            ),
            (
                "ratelimiter_get_counters",
                tp_ratelimiter_get_counters(h.cast(), 0, &mut rc),
            ),
            ("bridge_do_work", tp_bridge_do_work(h.cast(), null_mut())),
            (
                "bridge_mapping_count",
                tp_bridge_mapping_count(h.cast(), &mut n),
            ),
            (
                "bridge_get_mapping",
                tp_bridge_get_mapping(h.cast(), 0, &mut bm),
            ),
            (
                "bridge_get_counters",
                tp_bridge_get_counters(h.cast(), &mut bc),
            ),
            (
                "discovery_query",
                tp_discovery_query(h.cast(), &dr, &mut results),
            ),
            (
                "discovery_results_count",
                tp_discovery_results_count(h.cast(), &mut n),
            ),
            (
                "discovery_results_get",
                tp_discovery_results_get(h.cast(), 0, null_mut()),
            ),
            (
                "discovery_results_tag",
                tp_discovery_results_tag(h.cast(), 0, 0, null_mut()),
            ),
            (
                "discovery_results_pool",
                tp_discovery_results_pool(h.cast(), 0, 0, null_mut()),
            ),
            ("frame_recheck", tp_frame_recheck(h.cast())),
        ];
        for (name, got) in calls {
            let expected = if name == "frame_recheck" && want == TP_ERR_INVALID_HANDLE {
                // a fake view's token is not the running handler's frame
                TP_ERR_INVALID_HANDLE
            } else {
                want
            };
            assert_eq!(got, expected, "{name} with {h:?}: {}", last());
            assert!(!last().is_empty(), "{name} left a message");
        }
    }
    // Freeing NULL is a no-op; freeing a foreign pointer is an error, not a crash.
    assert_eq!(tp_producer_free(null_mut()), TP_OK);
    assert_eq!(tp_consumer_free(fake.cast()), TP_ERR_INVALID_HANDLE);
    assert!(last().contains("not a live Consumer handle"), "{}", last());
    assert_eq!(tp_supervisor_close(null_mut()), TP_OK);
    assert_eq!(tp_supervisor_close(fake.cast()), TP_ERR_INVALID_HANDLE);
    assert_eq!(tp_ratelimiter_close(null_mut()), TP_OK);
    assert_eq!(tp_ratelimiter_close(fake.cast()), TP_ERR_INVALID_HANDLE);
    assert_eq!(tp_bridge_close(null_mut()), TP_OK);
    assert_eq!(tp_bridge_close(fake.cast()), TP_ERR_INVALID_HANDLE);
    assert!(last().contains("not a live Bridge handle"), "{}", last());
    assert!(results.is_null(), "a failed query hands out no results");
    assert_eq!(tp_discovery_results_close(null_mut()), TP_OK);
    assert_eq!(
        tp_discovery_results_close(fake.cast()),
        TP_ERR_INVALID_HANDLE
    );
}

#[test]
fn wrong_kind_double_free_bad_values_and_claim_states() {
    let mut spec = null_mut();
    let shape = [4usize, 4];
    assert_eq!(
        tp_tensor_spec_new(99, 0, 2, shape.as_ptr(), null(), &mut spec),
        TP_ERR_INVALID_ARGUMENT
    );
    assert!(last().contains("dtype 99"), "{}", last());
    assert_eq!(
        tp_tensor_spec_new(0, 0, 9, shape.as_ptr(), null(), &mut spec),
        TP_ERR_INVALID_ARGUMENT
    );
    assert_eq!(
        tp_tensor_spec_new(0, 0, 2, null(), null(), &mut spec),
        TP_ERR_NULL
    );
    assert_eq!(
        tp_tensor_spec_new(2, 0, 2, shape.as_ptr(), null(), &mut spec),
        TP_OK
    );
    let mut len = 0;
    assert_eq!(tp_tensor_spec_len_bytes(spec, &mut len), TP_OK);
    assert_eq!(len, 32);
    // A spec is not a producer.
    let mut seq = 0;
    assert_eq!(
        tp_producer_commit(spec.cast(), &mut seq),
        TP_ERR_INVALID_HANDLE
    );
    assert_eq!(tp_tensor_spec_free(spec), TP_OK);
    assert_eq!(
        tp_tensor_spec_len_bytes(spec, &mut len),
        TP_ERR_INVALID_HANDLE,
        "a handle used (so cached as valid on this thread), then freed"
    );
    assert_eq!(
        tp_tensor_spec_free(spec),
        TP_ERR_INVALID_HANDLE,
        "double free"
    );
    assert!(last().contains("double free"), "{}", last());

    let mut idle = null_mut();
    let bad = CString::new("sleep:banana").unwrap();
    assert_eq!(
        tp_idle_new(bad.as_ptr(), &mut idle),
        TP_ERR_INVALID_ARGUMENT
    );
    assert!(last().contains("idle strategy"), "{}", last());
    assert_eq!(tp_idle_new(null(), &mut idle), TP_OK);
    assert_eq!(tp_idle_work(idle, 1), TP_OK);
    assert_eq!(tp_idle_free(idle), TP_OK);

    // SAFETY: a zeroed options struct is valid input; init fills it.
    let mut o: tp_consumer_options = unsafe { std::mem::zeroed() };
    assert_eq!(tp_consumer_options_init(null_mut(), 1), TP_ERR_NULL);
    assert_eq!(tp_consumer_options_init(&mut o, 1), TP_OK);
    assert_eq!(o.expected_layout_version, tp_layout_version());
    assert_eq!(o.driver.control_stream_id, 1000);
}

#[test]
fn claims_open_one_at_a_time_and_block_other_producer_calls() {
    let shm = tempfile::Builder::new()
        .prefix("tp-ffi-claims-")
        .tempdir_in("/dev/shm")
        .unwrap();
    let base = CString::new(shm.path().to_str().unwrap()).unwrap();
    let mut ctx = null_mut();
    assert_eq!(
        tp_context_new_embedded(null(), &mut ctx),
        TP_OK,
        "{}",
        last()
    );
    // SAFETY: a zeroed options struct is valid input; init fills it.
    let mut o: tp_producer_options = unsafe { std::mem::zeroed() };
    assert_eq!(tp_producer_options_init(&mut o, 10_000), TP_OK);
    o.shm_base_dir = base.as_ptr();
    o.header_nslots = 8;
    o.stride_bytes = 4096;
    o.prefault = false;
    let mut p = null_mut();
    assert_eq!(tp_producer_new(ctx, &o, &mut p), TP_OK, "{}", last());
    assert_eq!(
        tp_context_free(ctx),
        TP_OK,
        "the producer keeps what it needs"
    );
    let shape = [64usize];
    let mut spec = null_mut();
    assert_eq!(
        tp_tensor_spec_new(0, 0, 1, shape.as_ptr(), null(), &mut spec),
        TP_OK
    );
    let mut seq = 99;
    assert_eq!(
        tp_producer_commit(p, &mut seq),
        TP_ERR_STATE,
        "nothing to commit"
    );
    let mut claim = tp_claim {
        seq: 0,
        data: null_mut(),
        len: 0,
    };
    assert_eq!(tp_producer_claim(p, spec, &mut claim), TP_OK, "{}", last());
    assert_eq!((claim.seq, claim.len), (0, 64));
    assert!(!claim.data.is_null());
    let mut again = claim;
    assert_eq!(tp_producer_claim(p, spec, &mut again), TP_ERR_STATE);
    assert_eq!(tp_producer_do_work(p, 0, null_mut()), TP_ERR_STATE);
    assert!(last().contains("a claim is open"), "{}", last());
    assert_eq!(tp_producer_commit(p, &mut seq), TP_OK);
    assert_eq!(seq, 0);
    assert_eq!(tp_producer_claim(p, spec, &mut claim), TP_OK);
    assert_eq!(tp_producer_abort(p), TP_OK);
    let data = [7u8; 64];
    assert_eq!(
        tp_producer_offer(p, spec, data.as_ptr(), 64, &mut seq),
        TP_OK,
        "{}",
        last()
    );
    assert_eq!(seq, 1, "an aborted claim's sequence is reused");
    let big = [0u8; 8192];
    let shape = [8192usize];
    let mut big_spec = null_mut();
    assert_eq!(
        tp_tensor_spec_new(0, 0, 1, shape.as_ptr(), null(), &mut big_spec),
        TP_OK
    );
    assert_eq!(
        tp_producer_offer(p, big_spec, big.as_ptr(), 8192, &mut seq),
        TP_ERR_NO_POOL_FITS
    );
    assert!(
        last().contains("no payload pool holds 8192 bytes"),
        "{}",
        last()
    );
    let mut c = tp_producer_counters::default();
    assert_eq!(tp_producer_get_counters(p, &mut c), TP_OK);
    assert_eq!((c.committed, c.aborted, c.drops_no_pool), (2, 1, 1));
    let name = CString::new("committed").unwrap();
    let mut v = 0;
    assert_eq!(tp_producer_counter(p, name.as_ptr(), &mut v), TP_OK);
    assert_eq!(v, 2);
    // A claim left open when the handle is freed is aborted first.
    assert_eq!(tp_producer_claim(p, spec, &mut claim), TP_OK);
    assert_eq!(tp_producer_free(p), TP_OK);
    assert_eq!(tp_tensor_spec_free(spec), TP_OK);
    assert_eq!(tp_tensor_spec_free(big_spec), TP_OK);
    let left: Vec<_> = std::fs::read_dir(shm.path()).unwrap().collect();
    assert!(
        left.is_empty() || left.len() == 1,
        "epoch files removed: {left:?}"
    );
}
