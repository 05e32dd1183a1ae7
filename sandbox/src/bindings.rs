//! The host's only `bindgen!` site: Rust types and calls for every world of the contract.
//!
//! One synthetic world (`moor:host/all`) imports `log` and exports every kind's interface,
//! so the shared types are generated once; each plugin is then driven through the
//! interface of its own kind (`GuestIndices::new` + `load`), never through this world.

wasmtime::component::bindgen!({
    path: "../wit",
    inline: "
        package moor:host;
        world all {
            import moor:plugin/log@0.1.0;
            export moor:plugin/render@0.1.0;
            export moor:plugin/rewrite-tree@0.1.0;
            export moor:plugin/validate@0.1.0;
            export moor:plugin/notify@0.1.0;
            export moor:plugin/notify-start@0.1.0;
            export moor:plugin/fetch@0.1.0;
        }
    ",
    world: "moor:host/all",
    additional_derives: [serde::Serialize],
});

pub use self::exports::moor::plugin::{fetch, notify, notify_start, render, rewrite_tree, validate};
pub use self::moor::plugin::log;
pub use self::moor::plugin::types;

include!(concat!(env!("OUT_DIR"), "/contract.rs"));
