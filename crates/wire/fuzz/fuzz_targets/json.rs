//! JSON decoding of arbitrary bytes, with and without binary placeholders.
#![no_main]
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use switchboard_wire::{Limits, json};

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = json::from_slice(data, &Limits::DEFAULT) {
        assert!(json::from_slice(&json::to_vec(&v), &Limits::DEFAULT).is_ok());
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = json::from_str_with_attachments(text, &[Bytes::from_static(b"x")], &Limits::DEFAULT);
    }
});
