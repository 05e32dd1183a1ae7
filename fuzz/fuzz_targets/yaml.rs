//! The yaml renderer's parser entry, for YAML and JSON files: objects or diagnostics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = moor_plugin_yaml::parse_file("fuzz.yaml", text);
    let _ = moor_plugin_yaml::parse_file("fuzz.json", text);
});
