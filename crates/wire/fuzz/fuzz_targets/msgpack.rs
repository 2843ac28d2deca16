//! msgpack decoding of arbitrary bytes: an error or a value that re-encodes and decodes the same.
#![no_main]
use libfuzzer_sys::fuzz_target;
use switchboard_wire::{Limits, msgpack};

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = msgpack::from_slice(data, &Limits::DEFAULT) {
        let again = msgpack::from_slice(&msgpack::to_vec(&v), &Limits::DEFAULT);
        assert!(again.is_ok(), "re-encoded value must decode");
    }
});
