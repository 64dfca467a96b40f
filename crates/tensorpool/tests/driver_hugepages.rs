//! `shm.require_hugepages = true` on a real hugetlbfs (Driver Model §17, W §15.22; issue 21
//! item 7): with huge pages reserved and a hugetlbfs mounted by the test (root), the driver
//! starts on it, provisions hugepage-backed epochs (their URIs say `require_hugepages=true`),
//! grants HUGEPAGES and UNSPECIFIED attaches and refuses STANDARD ones, and a reader maps the
//! regions with their hugepage requirement checked. Skips with the reason when the kernel or
//! the user cannot provide huge pages.

mod driver_common;

use driver_common::*;
use tensorpool_codec::driver::{HugepagesPolicy, ResponseCode, Role};
use tensorpool_shm::{
    AllowedBaseDirs, ExpectedRegion, HeaderRing, MapOptions, ReadOnly, RegionUri,
};
use tensorpool_testkit::HugeTlbfs;

const STREAM: u32 = 10_000;

#[test]
fn dm_17_require_hugepages_on_a_real_hugetlbfs_is_provisioned_granted_and_mapped() {
    // two epochs of two files, one 2 MiB page each, and room to spare
    let fs = match HugeTlbfs::mount(16) {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let dir = tempfile::Builder::new()
        .prefix("base-")
        .tempdir_in(fs.path())
        .unwrap();
    let mut h = Harness::edited_in(dir, |t| {
        t.replace("[shm]\n", "[shm]\nrequire_hugepages = true\n")
    });
    let mut req = h.attach_req(5, STREAM, Role::Consumer);
    req.require_hugepages = HugepagesPolicy::Hugepages;
    let (c, _) = h.attach_with(&req);
    assert_eq!(c.code, ResponseCode::Ok, "{c:?}");
    assert!(
        c.header_uri.ends_with("|require_hugepages=true"),
        "{}",
        c.header_uri
    );
    assert!(
        c.pools
            .iter()
            .all(|p| p.3.ends_with("|require_hugepages=true")),
        "{:?}",
        c.pools
    );
    // a reader maps the header ring: on hugetlbfs, as its URI requires
    let uri: RegionUri = c.header_uri.parse().unwrap();
    let allowed = AllowedBaseDirs::new([fs.path()]).unwrap();
    let expected =
        ExpectedRegion::header_ring(1, c.epoch.unwrap(), STREAM, c.header_nslots.unwrap());
    let ring = HeaderRing::<ReadOnly>::open(&uri, &allowed, &expected, MapOptions::default());
    assert!(ring.is_ok(), "{ring:?}");
    drop(ring);
    // UNSPECIFIED follows shm.require_hugepages; STANDARD cannot be served here
    let p = h.attach_ok(6, STREAM, Role::Producer);
    assert!(
        p.epoch.unwrap() > c.epoch.unwrap(),
        "a new hugepage epoch for the producer"
    );
    let mut std_req = h.attach_req(7, STREAM, Role::Consumer);
    std_req.require_hugepages = HugepagesPolicy::Standard;
    let (r, _) = h.attach_with(&std_req);
    assert_eq!(r.code, ResponseCode::Rejected, "{r:?}");
    assert!(r.error.contains("standard-page"), "{}", r.error);
    drop(h);
    drop(fs);
}
