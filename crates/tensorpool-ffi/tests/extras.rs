//! The C functions issue 18 added, end to end through one embedded media driver: metadata,
//! meta blobs and the source name reach a consumer; a claim's timestamp and trace id reach the
//! frame; progress reports reach a progress handler; every counter is a struct field; and the
//! same validation of ids, shapes and directories at every entry point.

use std::ffi::{CStr, CString, c_void};
use std::ptr::{null, null_mut};
use std::time::{Duration, Instant};

use tensorpool_ffi::*;
use tp_status::*;

fn last() -> String {
    // SAFETY: tp_last_error returns a NUL-terminated string valid until the next error.
    unsafe { CStr::from_ptr(tp_last_error()) }
        .to_string_lossy()
        .into_owned()
}

#[derive(Default)]
struct Seen {
    frames: Vec<(u64, u64, u64, u32)>,
    progress: Vec<(u64, u32, u64)>,
    recheck_ok: bool,
    bad_view: Option<tp_status>,
}

extern "C" fn on_frame(v: *const tp_frame_view, user: *mut c_void) {
    // SAFETY: `user` is the `Seen` the test passed; `v` is valid during the call.
    let (seen, view) = unsafe { (&mut *user.cast::<Seen>(), &*v) };
    let mut trace = 0;
    assert_eq!(tp_frame_trace_id(v, &mut trace), TP_OK);
    let mut publish = 0;
    assert_eq!(tp_frame_publish_timestamp_ns(v, &mut publish), TP_OK);
    seen.frames
        .push((view.seq, view.timestamp_ns, trace, view.meta_version));
}

extern "C" fn on_progress(p: *const tp_progress_view, user: *mut c_void) {
    // SAFETY: as above.
    let (seen, view) = unsafe { (&mut *user.cast::<Seen>(), &*p) };
    seen.progress
        .push((view.seq, view.state, view.bytes_filled));
    seen.recheck_ok |= tp_progress_recheck(p) == TP_OK;
    let copy = *view;
    seen.bad_view = Some(tp_progress_recheck(&copy));
}

fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn meta_progress_trace_and_counters_reach_a_consumer() {
    let shm = tempfile::Builder::new()
        .prefix("tp-ffi-extras-")
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
    // SAFETY: zeroed options are valid input; init fills them.
    let mut po: tp_producer_options = unsafe { std::mem::zeroed() };
    assert_eq!(tp_producer_options_init(&mut po, 10_050), TP_OK);
    let (name, summary) = (
        CString::new("cam0").unwrap(),
        CString::new("a test camera").unwrap(),
    );
    po.shm_base_dir = base.as_ptr();
    po.header_nslots = 8;
    po.stride_bytes = 4096;
    po.prefault = false;
    po.announce_period_ms = 50;
    po.name = name.as_ptr();
    po.summary = summary.as_ptr();
    let mut p = null_mut();
    assert_eq!(tp_producer_new(ctx, &po, &mut p), TP_OK, "{}", last());
    // SAFETY: as above.
    let mut co: tp_consumer_options = unsafe { std::mem::zeroed() };
    assert_eq!(tp_consumer_options_init(&mut co, 10_050), TP_OK);
    co.allowed_base_dir = base.as_ptr();
    co.supports_progress = true;
    co.progress_bytes_delta = 1;
    let mut c = null_mut();
    assert_eq!(tp_consumer_new(ctx, &co, &mut c), TP_OK, "{}", last());

    // Metadata before any was received is a state error, not garbage.
    let mut version = 0u32;
    let mut count = 0usize;
    assert_eq!(tp_consumer_meta(c, &mut version, &mut count), TP_ERR_STATE);
    let (k, f) = (
        CString::new("gain").unwrap(),
        CString::new("text/plain").unwrap(),
    );
    let attrs = [tp_meta_attribute {
        key: k.as_ptr(),
        format: f.as_ptr(),
        value: b"1.5".as_ptr(),
        value_len: 3,
    }];
    let mut v = 0u32;
    assert_eq!(
        tp_producer_set_meta(p, attrs.as_ptr(), 1, &mut v),
        TP_OK,
        "{}",
        last()
    );
    assert!(v >= 1);
    let blob = vec![0xA5u8; 3000];
    assert_eq!(
        tp_producer_publish_meta_blob(p, 7, blob.as_ptr(), blob.len()),
        TP_OK
    );

    let mut seen = Seen::default();
    let user = (&mut seen as *mut Seen).cast::<c_void>();
    let mut blob_view = tp_meta_blob_view {
        meta_version: 0,
        blob_type: 0,
        data: null(),
        len: 0,
    };
    until("metadata, blob and mapping", || {
        assert_eq!(tp_producer_do_work(p, 0, null_mut()), TP_OK, "{}", last());
        assert_eq!(
            tp_consumer_poll_progress(c, Some(on_frame), Some(on_progress), user, 16, null_mut()),
            TP_OK,
            "{}",
            last()
        );
        let mut st = tp_consumer_status::default();
        assert_eq!(tp_consumer_get_status(c, &mut st), TP_OK);
        st.state == tp_consumer_state::TP_CONSUMER_MAPPED as u32
            && tp_consumer_meta(c, &mut version, &mut count) == TP_OK
            && tp_consumer_meta_blob(c, &mut blob_view) == TP_OK
    });
    assert_eq!((version, count), (v, 1));
    let mut a = tp_meta_attribute {
        key: null(),
        format: null(),
        value: null(),
        value_len: 0,
    };
    assert_eq!(tp_consumer_meta_attribute(c, 0, &mut a), TP_OK);
    // SAFETY: NUL-terminated copies valid until the next call; value valid until next poll.
    unsafe {
        assert_eq!(CStr::from_ptr(a.key).to_str().unwrap(), "gain");
        assert_eq!(CStr::from_ptr(a.format).to_str().unwrap(), "text/plain");
        assert_eq!(std::slice::from_raw_parts(a.value, a.value_len), b"1.5");
    }
    assert_eq!(
        tp_consumer_meta_attribute(c, 1, &mut a),
        TP_ERR_INVALID_ARGUMENT
    );
    assert_eq!((blob_view.blob_type, blob_view.len), (7, 3000));
    // SAFETY: the blob bytes live in the consumer until its next poll.
    assert!(
        unsafe { std::slice::from_raw_parts(blob_view.data, blob_view.len) }
            .iter()
            .all(|&b| b == 0xA5)
    );
    let mut buf = [0 as std::ffi::c_char; 64];
    let mut len = 0;
    assert_eq!(
        tp_consumer_source_name(c, buf.as_mut_ptr(), 64, &mut len),
        TP_OK
    );
    // SAFETY: NUL-terminated by copy_string.
    assert_eq!(
        unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap(),
        "cam0"
    );

    // Claim-side calls need an open claim.
    assert_eq!(tp_producer_claim_set_trace_id(p, 5), TP_ERR_STATE);
    assert_eq!(tp_producer_claim_progress(p, 1, null_mut()), TP_ERR_STATE);
    let shape = [1024usize];
    let mut spec = null_mut();
    assert_eq!(
        tp_tensor_spec_new(0, 0, 1, shape.as_ptr(), null(), &mut spec),
        TP_OK
    );
    // Wait until the producer follows progress (the consumer's hello arrived).
    until("progress followed", || {
        assert_eq!(tp_producer_do_work(p, 0, null_mut()), TP_OK);
        assert_eq!(
            tp_consumer_poll_progress(c, Some(on_frame), Some(on_progress), user, 16, null_mut()),
            TP_OK
        );
        let mut info = tp_producer_info::default();
        assert_eq!(tp_producer_get_info(p, &mut info), TP_OK);
        info.progress_active && info.consumer_count == 1
    });
    let mut ci = tp_consumer_info::default();
    assert_eq!(tp_consumer_get_info(c, &mut ci), TP_OK);
    assert_eq!(ci.effective_mode, tp_mode::TP_MODE_STREAM as u32);
    let mut claim = tp_claim {
        seq: 0,
        data: null_mut(),
        len: 0,
    };
    assert_eq!(tp_producer_claim(p, spec, &mut claim), TP_OK, "{}", last());
    assert_eq!(tp_producer_claim_set_timestamp_ns(p, 123_456), TP_OK);
    assert_eq!(tp_producer_claim_set_trace_id(p, 0xBEEF), TP_OK);
    let mut sent = false;
    assert_eq!(tp_producer_claim_progress(p, 512, &mut sent), TP_OK);
    let mut seq = 0;
    assert_eq!(tp_producer_commit(p, &mut seq), TP_OK);
    until("the frame", || {
        assert_eq!(tp_producer_do_work(p, 0, null_mut()), TP_OK);
        assert_eq!(
            tp_consumer_poll_progress(c, Some(on_frame), Some(on_progress), user, 16, null_mut()),
            TP_OK
        );
        !seen.frames.is_empty()
    });
    assert_eq!(seen.frames[0].0, seq);
    assert_eq!(seen.frames[0].1, 123_456, "the claim's timestamp");
    assert_eq!(seen.frames[0].2, 0xBEEF, "the claim's trace id");
    assert_eq!(seen.frames[0].3, v, "the meta version");
    assert!(!seen.progress.is_empty(), "progress reports delivered");
    assert!(seen.progress.iter().all(|&(s, _, _)| s == seq));
    assert!(seen.recheck_ok, "recheck of the running report");
    assert_eq!(
        seen.bad_view,
        Some(TP_ERR_INVALID_HANDLE),
        "a copied view is refused"
    );

    // Every counter is a field; drops per cause are named constants.
    let mut pc = tp_producer_counters_all::default();
    assert_eq!(tp_producer_get_counters_all(p, &mut pc), TP_OK);
    assert_eq!(pc.committed, 1);
    assert!(pc.meta_sent >= 1 && pc.meta_blob_messages >= 3, "{pc:?}");
    assert!(pc.data_source_sent >= 1);
    // SAFETY: plain integers.
    let mut cc: tp_consumer_counters_all = unsafe { std::mem::zeroed() };
    assert_eq!(tp_consumer_get_counters_all(c, &mut cc), TP_OK);
    assert_eq!(cc.accepted, 1);
    assert_eq!(cc.blobs_completed, 1);
    let unmapped = CString::new("drops.unmapped").unwrap();
    let mut by_name = u64::MAX;
    assert_eq!(
        tp_consumer_counter(c, unmapped.as_ptr(), &mut by_name),
        TP_OK
    );
    assert_eq!(cc.drops[tp_drop_cause::TP_DROP_UNMAPPED as usize], by_name);
    assert_eq!(cc.drops.iter().sum::<u64>(), cc.drops_total);

    assert_eq!(tp_tensor_spec_free(spec), TP_OK);
    assert_eq!(tp_consumer_free(c), TP_OK);
    assert_eq!(tp_producer_free(p), TP_OK);
    assert_eq!(tp_context_free(ctx), TP_OK);
}

#[test]
fn ids_shapes_and_directories_are_validated_alike_in_rust_and_c() {
    use tensorpool::frame::{Dtype, SpecError, TensorSpec};
    assert_eq!(
        TensorSpec::new(Dtype::Uint16, &[480, 0]),
        Err(SpecError::ZeroDim { index: 1 })
    );
    let shape = [480usize, 0];
    let mut spec = null_mut();
    assert_eq!(
        tp_tensor_spec_new(2, 0, 2, shape.as_ptr(), null(), &mut spec),
        TP_ERR_INVALID_ARGUMENT
    );
    assert!(last().contains("dimension 1 is 0"), "{}", last());
    assert!(spec.is_null());

    let rel = tensorpool::prelude::Context::embedded_with(
        tensorpool_aeron::MediaDriverConfig::default().dir("relative/aeron"),
    );
    assert!(matches!(
        rel,
        Err(tensorpool::context::ContextError::RelativeDir(_))
    ));
    let dir = CString::new("relative/aeron").unwrap();
    let mut ctx = null_mut();
    assert_eq!(
        tp_context_new_embedded(dir.as_ptr(), &mut ctx),
        TP_ERR_INVALID_ARGUMENT
    );
    assert!(last().contains("relative"), "{}", last());
    assert!(
        !std::path::Path::new("relative").exists(),
        "no relative directory made"
    );

    assert_eq!(
        tp_context_new_embedded(null(), &mut ctx),
        TP_OK,
        "{}",
        last()
    );
    // SAFETY: as above.
    let mut po: tp_producer_options = unsafe { std::mem::zeroed() };
    assert_eq!(tp_producer_options_init(&mut po, 0), TP_OK);
    let mut p = null_mut();
    assert_eq!(tp_producer_new(ctx, &po, &mut p), TP_ERR_CONFIG);
    assert!(last().contains("stream_id"), "{}", last());
    let rel_base = CString::new("relative/shm").unwrap();
    assert_eq!(tp_producer_options_init(&mut po, 10_051), TP_OK);
    po.shm_base_dir = rel_base.as_ptr();
    assert_eq!(tp_producer_new(ctx, &po, &mut p), TP_ERR_CONFIG);
    // SAFETY: as above.
    let mut co: tp_consumer_options = unsafe { std::mem::zeroed() };
    assert_eq!(tp_consumer_options_init(&mut co, 0), TP_OK);
    let mut c = null_mut();
    assert_eq!(tp_consumer_new(ctx, &co, &mut c), TP_ERR_CONFIG);
    assert!(last().contains("stream_id"), "{}", last());
    assert_eq!(tp_context_free(ctx), TP_OK);
}

#[test]
fn admin_calls_check_their_arguments() {
    let mut json = null_mut();
    let mut e = std::mem::MaybeUninit::<tp_driver_endpoints>::uninit();
    assert_eq!(tp_driver_endpoints_init(e.as_mut_ptr()), TP_OK);
    // SAFETY: init wrote every field.
    let e = unsafe { e.assume_init() };
    assert_eq!(
        tp_driver_query(null_mut(), &e, 0, 1, &mut json),
        TP_ERR_NULL
    );
    assert_eq!(
        tp_driver_query(null_mut(), &e, 0, 1, null_mut()),
        TP_ERR_NULL
    );
    let mut ctx = null_mut();
    assert_eq!(tp_context_new_embedded(null(), &mut ctx), TP_OK);
    assert_eq!(
        tp_driver_query(ctx, &e, 9, 1, &mut json),
        TP_ERR_INVALID_ARGUMENT
    );
    let token = CString::new("t").unwrap();
    assert_eq!(
        tp_driver_request_shutdown(ctx, &e, token.as_ptr(), 7, null(), 1),
        TP_ERR_INVALID_ARGUMENT
    );
    assert_eq!(tp_string_free(null_mut()), TP_OK);
    assert_eq!(tp_context_free(ctx), TP_OK);
}

#[test]
fn claim_len_progress_units_and_consumer_queries() {
    let shm = tempfile::Builder::new()
        .prefix("tp-ffi-extras2-")
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
    // SAFETY: zeroed options are valid input; init fills them.
    let mut po: tp_producer_options = unsafe { std::mem::zeroed() };
    assert_eq!(tp_producer_options_init(&mut po, 10_052), TP_OK);
    po.shm_base_dir = base.as_ptr();
    po.header_nslots = 8;
    po.stride_bytes = 4096;
    po.prefault = false;
    let mut p = null_mut();
    assert_eq!(tp_producer_new(ctx, &po, &mut p), TP_OK, "{}", last());
    let shape = [4usize, 16];
    let mut spec = null_mut();
    assert_eq!(
        tp_tensor_spec_new(0, 0, 2, shape.as_ptr(), null(), &mut spec),
        TP_OK
    );
    assert_eq!(
        tp_tensor_spec_set_progress_unit(spec, tp_progress_unit::TP_PROGRESS_UNIT_ROWS as u32),
        TP_OK,
        "{}",
        last()
    );
    assert_eq!(
        tp_tensor_spec_set_progress_unit(spec, 9),
        TP_ERR_INVALID_ARGUMENT
    );
    let mut claim = tp_claim {
        seq: 0,
        data: null_mut(),
        len: 0,
    };
    assert_eq!(
        tp_producer_claim_len(p, spec, 128, &mut claim),
        TP_OK,
        "{}",
        last()
    );
    assert_eq!(claim.len, 128, "the explicit length");
    assert_eq!(
        tp_producer_claim_len(p, spec, 128, &mut claim),
        TP_ERR_STATE,
        "one claim at a time"
    );
    assert_eq!(tp_producer_commit(p, null_mut()), TP_OK);
    assert_eq!(
        tp_producer_claim_len(p, spec, 8, &mut claim),
        TP_ERR_INVALID_ARGUMENT,
        "{}",
        last()
    );

    // SAFETY: as above.
    let mut co: tp_consumer_options = unsafe { std::mem::zeroed() };
    assert_eq!(tp_consumer_options_init(&mut co, 10_052), TP_OK);
    co.allowed_base_dir = base.as_ptr();
    let mut c = null_mut();
    assert_eq!(tp_consumer_new(ctx, &co, &mut c), TP_OK, "{}", last());
    let (mut len, mut id) = (usize::MAX, -1i32);
    assert_eq!(
        tp_consumer_descriptor_assignment(c, null_mut(), 0, &mut len, &mut id),
        TP_OK
    );
    assert_eq!((len, id), (0, 0), "none assigned");
    let mut discard = u32::MAX;
    assert_eq!(tp_consumer_last_blob_discard(c, &mut discard), TP_OK);
    assert_eq!(discard, tp_blob_discard::TP_BLOB_DISCARD_NONE as u32);
    assert_eq!(tp_consumer_free(c), TP_OK);
    assert_eq!(tp_tensor_spec_free(spec), TP_OK);
    assert_eq!(tp_producer_free(p), TP_OK);
    assert_eq!(tp_context_free(ctx), TP_OK);
}
