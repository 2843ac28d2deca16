//! Raw BSON documents as a change stream would deliver them.
#![no_main]
use libfuzzer_sys::fuzz_target;
use switchboard_wire::{Limits, mongo};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = mongo::from_bson_bytes(data, &Limits::DEFAULT) {
        let _ = mongo::to_document(&m, None);
    }
});
