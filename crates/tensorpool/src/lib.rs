//! tensorpool: zero-copy tensor transport between processes over shared memory and Aeron.
#![forbid(unsafe_code)]
