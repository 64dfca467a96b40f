//! `tp_bridge_*` from Rust: the counters struct carries every bridge counter, the options'
//! defaults, and every bad configuration or option is an error code with a message, never a
//! crash or a half-built handle. (Frames crossing the bridge through the C API:
//! `tests/cpp/bridge_c_test.c` and `tests/cpp/bridge_test.cpp`, run by scripts/cpp-test.)

use std::ffi::{CStr, CString};
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
fn bridge_counters_struct_has_every_bridge_counter() {
    let n = tensorpool::bridge::Counters::default().table().count();
    assert_eq!(
        std::mem::size_of::<tp_bridge_counters>(),
        n * std::mem::size_of::<u64>(),
        "tp_bridge_counters has one uint64_t per bridge counter ({n})"
    );
}

#[test]
fn bridge_options_defaults_are_both_sides_and_the_driver_defaults() {
    let mut o = std::mem::MaybeUninit::<tp_bridge_options>::uninit();
    assert_eq!(tp_bridge_options_init(o.as_mut_ptr()), TP_OK);
    // SAFETY: tp_bridge_options_init returned TP_OK, so it wrote every field.
    let o = unsafe { o.assume_init() };
    assert_eq!(o.side, tp_bridge_side::TP_BRIDGE_BOTH as u32);
    assert!(o.shm_base_dir.is_null() && o.allowed_base_dir.is_null());
    assert_eq!(o.driver.control_stream_id, 1000);
    assert_eq!(tp_bridge_options_init(null_mut()), TP_ERR_NULL);
}

#[test]
fn bad_bridge_configurations_and_options_are_errors_with_a_message() {
    let mut ctx = null_mut();
    assert_eq!(
        tp_context_new_embedded(null(), &mut ctx),
        TP_OK,
        "{}",
        last()
    );
    let good = CString::new(
        "[bridge]\ninstance_id = \"r\"\npayload_channel = \"aeron:udp?endpoint=127.0.0.1:40999\"\n\
         payload_stream_id = 3000\ncontrol_channel = \"aeron:udp?endpoint=127.0.0.1:41000\"\n\
         control_stream_id = 3001\n[[mappings]]\nsource_stream_id = 1\ndest_stream_id = 2\n\
         profile = \"p\"\n",
    )
    .unwrap();
    let cases: [(&str, &str); 4] = [
        ("[bridge]\ninstance_id = \"x\"\n", "bridge.payload_channel"),
        ("not = = toml", "bridge configuration"),
        (
            "[bridge]\ninstance_id = \"x\"\npayload_channel = \"aeron:ipc\"\npayload_stream_id = 1\n\
             control_channel = \"aeron:ipc\"\ncontrol_stream_id = 2\n",
            "mappings",
        ),
        (
            "[bridge]\ninstance_id = \"x\"\npayload_channel = \"aeron:ipc\"\npayload_stream_id = 1\n\
             control_channel = \"aeron:ipc\"\ncontrol_stream_id = 2\nmtu_bytes = 64\n\
             [[mappings]]\nsource_stream_id = 1\ndest_stream_id = 2\nprofile = \"p\"\n",
            "bridge.mtu_bytes",
        ),
    ];
    for (toml, names) in cases {
        let text = CString::new(toml).unwrap();
        let mut b = std::ptr::dangling_mut::<tp_bridge>();
        assert_eq!(
            tp_bridge_create(ctx, text.as_ptr(), null(), null(), &mut b),
            TP_ERR_CONFIG,
            "{toml}"
        );
        assert!(last().contains(names), "{toml}: {}", last());
        assert!(b.is_null(), "no handle on an error");
    }
    let mut b = null_mut();
    assert_eq!(
        tp_bridge_create(ctx, null(), null(), null(), &mut b),
        TP_ERR_CONFIG
    );
    assert!(last().contains("config_toml or config_path"), "{}", last());
    let missing = CString::new("/nonexistent/tp-bridge.toml").unwrap();
    assert_eq!(
        tp_bridge_create(ctx, null(), missing.as_ptr(), null(), &mut b),
        TP_ERR_CONFIG
    );
    let mut o = std::mem::MaybeUninit::<tp_bridge_options>::uninit();
    assert_eq!(tp_bridge_options_init(o.as_mut_ptr()), TP_OK);
    // SAFETY: tp_bridge_options_init returned TP_OK, so it wrote every field.
    let mut o = unsafe { o.assume_init() };
    o.side = 3;
    assert_eq!(
        tp_bridge_create(ctx, good.as_ptr(), null(), &o, &mut b),
        TP_ERR_INVALID_ARGUMENT
    );
    assert!(last().contains("side 3"), "{}", last());
    o.side = tp_bridge_side::TP_BRIDGE_SENDER as u32;
    let relative = CString::new("relative/dir").unwrap();
    o.shm_base_dir = relative.as_ptr();
    assert_eq!(
        tp_bridge_create(ctx, good.as_ptr(), null(), &o, &mut b),
        TP_ERR_INVALID_ARGUMENT
    );
    assert!(last().contains("not absolute"), "{}", last());
    assert_eq!(
        tp_bridge_create(null_mut(), good.as_ptr(), null(), null(), &mut b),
        TP_ERR_NULL
    );
    assert_eq!(
        tp_bridge_create(ctx, good.as_ptr(), null(), null(), null_mut()),
        TP_ERR_NULL
    );
    assert!(b.is_null());
    assert_eq!(tp_context_free(ctx), TP_OK);
}
