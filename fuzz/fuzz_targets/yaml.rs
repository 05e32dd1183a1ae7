//! The yaml renderer's parser entry, for YAML and JSON files: objects or diagnostics.
//! Its body is `moor_fuzz_targets::yaml` (tests/fuzz-targets), which the corpus replay
//! in `cargo test` runs too.
#![no_main]
libfuzzer_sys::fuzz_target!(|bytes: &[u8]| moor_fuzz_targets::yaml(bytes));
