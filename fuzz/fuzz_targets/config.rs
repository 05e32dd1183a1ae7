//! The TOML config loader: any text gives a config or an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let builtin: Vec<&str> = moor::plugins::builtin_names().collect();
    let _ = moor::config::Config::parse(std::path::Path::new("/fuzz/moor.toml"), text.to_owned(), &builtin);
});
