//! The webhook signature check: only the right HMAC passes.
//! Its body is `moor_fuzz_targets::webhook_signature` (tests/fuzz-targets), which the corpus replay
//! in `cargo test` runs too.
#![no_main]
libfuzzer_sys::fuzz_target!(|bytes: &[u8]| moor_fuzz_targets::webhook_signature(bytes));
