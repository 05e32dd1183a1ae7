//! The KRM ResourceList decoder: a function's output, whatever it is, gives objects and
//! Its body is `moor_fuzz_targets::resource_list` (tests/fuzz-targets), which the corpus replay
//! in `cargo test` runs too.
#![no_main]
libfuzzer_sys::fuzz_target!(|bytes: &[u8]| moor_fuzz_targets::resource_list(bytes));
