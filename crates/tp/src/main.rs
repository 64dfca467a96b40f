//! `tp`: the one tensorpool binary.
#![forbid(unsafe_code)]

fn main() {}
