//! Connecting and registering end in typed errors, within their deadlines.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tensorpool_aeron::{
    AddError, AeronClient, ConnectError, DriverError, EmbeddedMediaDriver, MediaDriverConfig,
    ThreadingMode, WaitingFor, unique_dir,
};

#[test]
fn connecting_where_no_driver_runs_times_out_naming_the_cnc_file() {
    let dir = unique_dir();
    let start = Instant::now();
    let err = AeronClient::connect(&dir, Duration::from_millis(300)).unwrap_err();
    let waited = start.elapsed();
    assert!(
        matches!(
            err,
            ConnectError::Timeout {
                waiting_for: WaitingFor::CncFile,
                ..
            }
        ),
        "{err}"
    );
    assert!(waited < Duration::from_secs(3), "waited {waited:?}");
    assert!(err.to_string().contains("cnc.dat"), "{err}");
    assert!(!dir.exists());
}

#[test]
fn a_stale_cnc_file_times_out_on_the_heartbeat() {
    // A driver that stopped without deleting its directory leaves a CnC file whose heartbeat
    // goes stale.
    struct RemoveDir(std::path::PathBuf);
    impl Drop for RemoveDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let dir = unique_dir();
    let _cleanup = RemoveDir(dir.clone());
    let config = MediaDriverConfig::default()
        .dir(&dir)
        .dir_delete(true, false);
    let mut driver = EmbeddedMediaDriver::start(config).unwrap();
    let live = AeronClient::driver_heartbeat_age(&dir, TIMEOUT).unwrap();
    assert!(live.is_some_and(|a| a < TIMEOUT), "{live:?}");
    driver.stop().unwrap();
    assert!(dir.join("cnc.dat").exists());
    let config = tensorpool_aeron::ClientConfig::new(&dir)
        .connect_timeout(Duration::from_millis(800))
        .driver_timeout(Duration::from_millis(200));
    // The event: the file holds no live heartbeat, cleared by the stopped driver or older than
    // the client's driver timeout (waited on, with a deadline). A client that connected anyway,
    // or timed out on anything but the heartbeat, fails below.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let age = AeronClient::driver_heartbeat_age(&dir, TIMEOUT).unwrap();
        if age.is_none_or(|a| a > Duration::from_millis(200)) {
            break;
        }
        assert!(Instant::now() < deadline, "heartbeat age {age:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    let err = AeronClient::connect_with(&config).unwrap_err();
    assert!(
        matches!(
            err,
            ConnectError::Timeout {
                waiting_for: WaitingFor::DriverHeartbeat,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn bad_arguments_are_errors() {
    let err = AeronClient::connect("", TIMEOUT).unwrap_err();
    assert!(
        matches!(
            err,
            ConnectError::InvalidArgument {
                what: "Aeron directory",
                ..
            }
        ),
        "{err}"
    );
    let err = AeronClient::connect("/tmp/a\0b", TIMEOUT).unwrap_err();
    assert!(
        matches!(
            err,
            ConnectError::InvalidArgument {
                what: "Aeron directory",
                ..
            }
        ),
        "{err}"
    );

    let driver = driver();
    let config = tensorpool_aeron::ClientConfig::new(driver.dir()).client_name("a\0b");
    let err = AeronClient::connect_with(&config).unwrap_err();
    assert!(
        matches!(
            err,
            ConnectError::InvalidArgument {
                what: "client name",
                ..
            }
        ),
        "{err}"
    );
    let config = tensorpool_aeron::ClientConfig::new(driver.dir()).client_name("tensorpool-test");
    AeronClient::connect_with(&config).unwrap();

    let client = connect(&driver);
    assert_eq!(
        client
            .add_publication("aeron:ipc\0", 1, TIMEOUT)
            .unwrap_err(),
        AddError::ContainsNul { what: "channel" }
    );
    let err = client
        .add_publication("aeron:bogus", 1, TIMEOUT)
        .unwrap_err();
    assert!(matches!(err, AddError::Rejected { .. }), "{err}");
    let err = client
        .add_subscription("aeron:udp?endpoint=not-a-host:x", 1, TIMEOUT)
        .unwrap_err();
    assert!(matches!(err, AddError::Rejected { .. }), "{err}");
    // The client survives rejected registrations.
    client
        .add_exclusive_publication("aeron:ipc", 1, TIMEOUT)
        .unwrap();
}

#[test]
fn invalid_driver_configuration_is_an_error() {
    let err = EmbeddedMediaDriver::start(MediaDriverConfig::default().ipc_term_buffer_length(1000))
        .unwrap_err();
    assert!(matches!(
        err,
        DriverError::InvalidConfig {
            field: "ipc_term_buffer_length",
            ..
        }
    ));
    let err = EmbeddedMediaDriver::start(MediaDriverConfig::default().dir("")).unwrap_err();
    assert!(matches!(
        err,
        DriverError::InvalidConfig { field: "dir", .. }
    ));
}

#[test]
fn drivers_in_every_threading_mode_start_in_parallel_and_clean_up() {
    let modes = [
        ThreadingMode::Dedicated,
        ThreadingMode::SharedNetwork,
        ThreadingMode::Shared,
    ];
    let drivers: Vec<_> = modes
        .iter()
        .map(|&mode| {
            EmbeddedMediaDriver::start(MediaDriverConfig::default().threading_mode(mode)).unwrap()
        })
        .collect();
    let dirs: Vec<_> = drivers.iter().map(|d| d.dir().to_path_buf()).collect();
    for (driver, mode) in drivers.iter().zip(modes) {
        assert_eq!(driver.threading_mode(), mode);
        assert!(driver.dir().join("cnc.dat").exists());
        let client = connect(driver);
        let mut sub = client.add_subscription("aeron:ipc", 5, TIMEOUT).unwrap();
        let mut publication = client.add_publication("aeron:ipc", 5, TIMEOUT).unwrap();
        wait_connected(&publication, &sub);
        publish_bytes(&mut publication, b"mode");
        assert_eq!(receive_one(&mut sub).0, b"mode");
    }
    assert_eq!(
        dirs.iter().collect::<std::collections::HashSet<_>>().len(),
        3
    );
    drop(drivers);
    for dir in dirs {
        assert_removed(dir);
    }
}

#[test]
fn a_second_driver_on_an_active_directory_fails_and_leaves_it_alone() {
    let first = driver();
    let config = MediaDriverConfig::default()
        .dir(first.dir())
        .dir_delete(false, true);
    let err = EmbeddedMediaDriver::start(config).unwrap_err();
    assert!(
        matches!(
            err,
            DriverError::Aeron {
                op: "aeron_driver_init",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("Active media driver detected"),
        "{err}"
    );
    assert!(
        first.dir().join("cnc.dat").exists(),
        "the active driver's directory survives"
    );
    let client = connect(&first);
    client.add_publication("aeron:ipc", 9, TIMEOUT).unwrap();
}

#[test]
fn aeron_default_dir_follows_aeron_dir_else_aerons_own_default() {
    // Not modifying the environment (tests run in parallel): compare with what it holds.
    let dir = tensorpool_aeron::aeron_default_dir();
    match std::env::var_os("AERON_DIR").filter(|d| !d.is_empty()) {
        Some(env) => assert_eq!(dir, std::path::PathBuf::from(env)),
        None => {
            let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            assert!(dir.is_absolute(), "{}", dir.display());
            assert!(name.starts_with("aeron"), "{}", dir.display());
        }
    }
}
