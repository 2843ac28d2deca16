//! socket.io JSON text with binary attachments (what socketioxide's common parser hands the
//! engine) decoded into wire values.
#![no_main]
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use switchboard_wire::{Limits, json};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let bins = [Bytes::from_static(&[1, 2]), Bytes::new()];
        let _ = json::from_str_with_attachments(text, &bins, &Limits::DEFAULT);
    }
});
