//! What the emitter publishes is byte-identical to what `@socket.io/redis-emitter` 5.1 published
//! for the same calls (the emitter part of the Node capture, `encoder-redis.txt`).

use bytes::Bytes;
use fred::prelude::Builder;
use switchboard_emitter_redis::{Emitter, EmitterError, Publication};
use switchboard_wire::Value;

fn emitter() -> Emitter {
    // never connected: only the encodings are checked here
    let client = Builder::default_centralized()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    Emitter::new(client)
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or(0))
        .collect()
}

fn check(p: Publication, channel: &str, payload: &[u8]) {
    assert_eq!(p.channel, channel);
    assert_eq!(
        p.payload.as_ref(),
        payload,
        "{}",
        String::from_utf8_lossy(&p.payload)
    );
}

#[test]
fn broadcasts_match_node() {
    let e = emitter();
    check(
        e.emit_publication("hello", vec!["world".into()])
            .unwrap_or_else(|e| panic!("{e}")),
        "socket.io#/#",
        &unhex(
            "93a7656d697474657283a47479706502a46461746192a568656c6c6fa5776f726c64a36e7370a12f83a5726f6f6d7390a5666c61677380a665786365707490",
        ),
    );
    check(
        e.to("room1")
            .emit_publication("a", vec![Value::Int(1)])
            .unwrap_or_else(|e| panic!("{e}")),
        "socket.io#/#room1#",
        &unhex(
            "93a7656d697474657283a47479706502a46461746192a16101a36e7370a12f83a5726f6f6d7391a5726f6f6d31a5666c61677380a665786365707490",
        ),
    );
    check(
        e.of("admin")
            .to("r1")
            .to("r2")
            .except("r3")
            .volatile()
            .compress(true)
            .emit_publication("b", vec![Value::Bin(Bytes::from_static(&[0xff]))])
            .unwrap_or_else(|e| panic!("{e}")),
        "socket.io#/admin#",
        &unhex(
            "93a7656d697474657283a47479706502a46461746192a162c401ffa36e7370a62f61646d696e83a5726f6f6d7392a27231a27232a5666c61677382a8766f6c6174696c65c3a8636f6d7072657373c3a665786365707491a27233",
        ),
    );
}

#[test]
fn requests_match_node() {
    let e = emitter();
    check(
        e.join_publication(&["x"]),
        "socket.io-request#/#",
        br#"{"type":2,"opts":{"rooms":[],"except":[]},"rooms":["x"]}"#,
    );
    check(
        e.in_("room1").leave_publication(&["y"]),
        "socket.io-request#/#",
        br#"{"type":3,"opts":{"rooms":["room1"],"except":[]},"rooms":["y"]}"#,
    );
    check(
        e.disconnect_publication(true),
        "socket.io-request#/#",
        br#"{"type":4,"opts":{"rooms":[],"except":[]},"close":true}"#,
    );
    check(
        e.server_side_publication("sse", vec![Value::Int(1)]),
        "socket.io-request#/#",
        br#"{"uid":"emitter","type":6,"data":["sse",1]}"#,
    );
}

#[test]
fn reserved_events_are_refused() {
    for ev in [
        "connect",
        "connect_error",
        "disconnect",
        "disconnecting",
        "newListener",
        "removeListener",
    ] {
        assert!(matches!(
            emitter().emit_publication(ev, vec![]),
            Err(EmitterError::Reserved(_))
        ));
    }
}
