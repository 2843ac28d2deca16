//! Cluster-protocol messages (JSON or msgpack by first byte), both dialects.
#![no_main]
use libfuzzer_sys::fuzz_target;
use switchboard_wire::{ClusterMessage, Dialect, Limits};

fuzz_target!(|data: &[u8]| {
    for dialect in [Dialect::Cluster, Dialect::Mongo] {
        if let Ok(m) = ClusterMessage::decode(data, dialect, &Limits::DEFAULT) {
            // compare encodings, not values: NaN != NaN
            let bytes = m.to_msgpack();
            let back = ClusterMessage::decode(&bytes, dialect, &Limits::DEFAULT);
            assert_eq!(back.map(|b| b.to_msgpack()).ok(), Some(bytes));
            let _ = m.to_json_unless_binary();
        }
    }
});
