//! socketioxide values (common parser text with attachments, msgpack bytes) into wire arguments.
#![no_main]
use std::collections::VecDeque;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use socketioxide_core::Value;
use switchboard_wire::{Limits, bridge};

fuzz_target!(|data: &[u8]| {
    let l = Limits::DEFAULT;
    if let Ok(text) = std::str::from_utf8(data) {
        let bins: VecDeque<Bytes> = [Bytes::from_static(&[1, 2]), Bytes::new()].into();
        let _ = bridge::args_from_socketioxide(&Value::Str(text.to_owned().into(), Some(bins)), &l);
    }
    let _ = bridge::args_from_socketioxide(&Value::Bytes(Bytes::copy_from_slice(data)), &l);
});
