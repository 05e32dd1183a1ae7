//! The inventory decoder (gzip, then JSON), on raw bytes and on gzip of the bytes.
#![no_main]
use std::io::Write;

use libfuzzer_sys::fuzz_target;
use moor::apply::inventory::Inventory;

fuzz_target!(|bytes: &[u8]| {
    let _ = Inventory::decode(bytes);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    if let Ok(inventory) = Inventory::decode(&gz.finish().unwrap()) {
        // What decodes encodes back to the same inventory.
        let again = Inventory::decode(&inventory.encode().unwrap()).unwrap();
        assert_eq!(again, inventory);
    }
});
