//! Mesh peer frames and discovery messages.
#![no_main]
use libfuzzer_sys::fuzz_target;
use switchboard_wire::{Limits, mesh};

fuzz_target!(|data: &[u8]| {
    let _ = mesh::decode_frame(data, &Limits::DEFAULT);
    if let Ok(m) = mesh::DiscoveryMessage::from_msgpack(data, &Limits::DEFAULT) {
        assert_eq!(mesh::DiscoveryMessage::from_msgpack(&m.to_msgpack(), &Limits::DEFAULT).ok(), Some(m));
    }
});
