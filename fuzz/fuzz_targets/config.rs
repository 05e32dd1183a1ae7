//! The TOML config loader: any text gives a config or an error, never a panic.
//! Its body is `moor_fuzz_targets::config` (tests/fuzz-targets), which the corpus replay
//! in `cargo test` runs too.
#![no_main]
libfuzzer_sys::fuzz_target!(|bytes: &[u8]| moor_fuzz_targets::config(bytes));
