//! Classic redis broadcasts, requests and responses.
#![no_main]
use libfuzzer_sys::fuzz_target;
use switchboard_wire::{
    Limits,
    redis::{ClassicBroadcast, ClassicRequest, ClassicResponse},
};

fuzz_target!(|data: &[u8]| {
    let l = Limits::DEFAULT;
    if let Ok(b) = ClassicBroadcast::from_msgpack(data, &l) {
        let bytes = b.to_msgpack();
        assert_eq!(ClassicBroadcast::from_msgpack(&bytes, &l).map(|b| b.to_msgpack()).ok(), Some(bytes));
    }
    if let Ok(r) = ClassicRequest::decode(data, &l) {
        assert!(ClassicRequest::decode(&r.encode(), &l).is_ok());
    }
    if let Ok(r) = ClassicResponse::decode(data, &l) {
        assert!(ClassicResponse::decode(&r.encode(), &l).is_ok());
    }
});
