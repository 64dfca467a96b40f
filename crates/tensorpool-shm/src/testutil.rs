//! Helpers shared by unit tests.

/// A temporary directory on tmpfs (`/dev/shm`) when available, else the default temp dir;
/// removed on drop.
pub(crate) fn shm_tempdir() -> tempfile::TempDir {
    let b = tempfile::Builder::new()
        .prefix("tp-shm-test-")
        .tempdir_in("/dev/shm");
    b.or_else(|_| tempfile::Builder::new().prefix("tp-shm-test-").tempdir())
        .expect("tempdir")
}
