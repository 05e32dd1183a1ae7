//! The inventory decoder (gzip, then JSON), on raw bytes and on gzip of the bytes.
//! Its body is `moor_fuzz_targets::inventory` (tests/fuzz-targets), which the corpus replay
//! in `cargo test` runs too.
#![no_main]
libfuzzer_sys::fuzz_target!(|bytes: &[u8]| moor_fuzz_targets::inventory(bytes));
