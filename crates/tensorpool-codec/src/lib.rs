//! SBE codecs of the SHM Tensor Pool protocol, generated at build time from `schemas/`.
