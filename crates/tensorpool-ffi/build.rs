//! Link settings of the shared library (`cdylib`): its SONAME is `libtensorpool.so.MAJOR`, the
//! name the CMake package installs it under (`libtensorpool.so.0.1.0`, with the `.so.0` and
//! `.so` links), so a program linked against it records `libtensorpool.so.0` and keeps
//! loading every ABI-compatible release. Set here, it holds for `cargo build` and for the
//! CMake build alike (which runs cargo). Only the `tp_*` functions are exported: rustc's
//! own version script for a cdylib already hides every other symbol, Aeron's included
//! (the package test checks it with `nm -D`).

fn main() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" || os == "freebsd" || os == "android" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libtensorpool.so.{major}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
