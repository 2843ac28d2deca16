//! What the emitter inserts is byte-identical to what `@socket.io/mongo-emitter` 0.2 inserted for
//! the same calls (the documents of `shared/captures/mongo-adapter-on-secantusdb.txt` and
//! `encoder-mongo.txt`; the driver appends `_id`, added back here).

use bytes::Bytes;
use mongodb::{
    Client,
    bson::{Bson, Document, oid::ObjectId},
};
use switchboard_emitter_mongo::{Emitter, EmitterError};
use switchboard_wire::Value;

async fn emitter() -> Emitter {
    // never connected: only the documents are checked here
    let client = Client::with_uri_str("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=1")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    Emitter::new(
        client
            .database("socketio")
            .collection("socket.io-adapter-events"),
    )
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or_else(|_| panic!("bad hex")))
        .collect()
}

/// `doc` with the captured `_id` appended, as bytes, equals the capture.
fn check(mut doc: Document, id: Option<&str>, captured: &str) {
    if let Some(id) = id {
        let oid = ObjectId::parse_str(id).unwrap_or_else(|e| panic!("{e}"));
        doc.insert("_id", Bson::ObjectId(oid));
    }
    let bytes = doc.to_vec().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(bytes, unhex(captured), "{doc}");
}

#[tokio::test]
async fn documents_match_node() {
    let e = emitter().await;
    // emitter.emit('emitter-ev', 'from-emitter')
    check(
        e.emit_document("emitter-ev", vec!["from-emitter".into()])
            .unwrap_or_else(|e| panic!("{e}")),
        Some("6b0250daa34afe998876c0a5"),
        "ca0000001074797065000300000003646174610088000000037061636b6574004b000000107479706500020000000464617461002b0000000230000b000000656d69747465722d6576000231000d00000066726f6d2d656d69747465720000026e737000020000002f0000036f707473002a00000004726f6f6d7300050000000003666c616773000500000000046578636570740005000000000000027569640008000000656d697474657200026e737000020000002f00075f6964006b0250daa34afe998876c0a500",
    );
    // emitter.to('room1').emit('emitter-room-ev', 1)
    check(
        e.to("room1")
            .emit_document("emitter-room-ev", vec![Value::Int(1)])
            .unwrap_or_else(|e| panic!("{e}")),
        Some("6b0250dba34afe998876c0a6"),
        "cf000000107479706500030000000364617461008d000000037061636b65740043000000107479706500020000000464617461002300000002300010000000656d69747465722d726f6f6d2d6576001031000100000000026e737000020000002f0000036f707473003700000004726f6f6d73001200000002300006000000726f6f6d31000003666c616773000500000000046578636570740005000000000000027569640008000000656d697474657200026e737000020000002f00075f6964006b0250dba34afe998876c0a600",
    );
    // emitter.serverSideEmit('ss-ev', 'from-emitter')
    check(
        e.server_side_document("ss-ev", vec!["from-emitter".into()]),
        Some("6b0250dba34afe998876c0a7"),
        "750000001074797065000900000003646174610033000000047061636b657400260000000230000600000073732d6576000231000d00000066726f6d2d656d6974746572000000027569640008000000656d697474657200026e737000020000002f00075f6964006b0250dba34afe998876c0a700",
    );
    // emitter.in('O4mjFiK-3gpNaosfAAAA').socketsJoin('roomE')
    check(
        e.in_("O4mjFiK-3gpNaosfAAAA").join_document(&["roomE"]),
        Some("6b0250dca34afe998876c0a8"),
        "a0000000107479706500040000000364617461005e000000036f707473003a00000004726f6f6d730021000000023000150000004f346d6a46694b2d3367704e616f7366414141410000046578636570740005000000000004726f6f6d73001200000002300006000000726f6f6d45000000027569640008000000656d697474657200026e737000020000002f00075f6964006b0250dca34afe998876c0a800",
    );
    // encoder-mongo.txt: emit('hi', Buffer [1]) before the driver adds `_id`
    check(
        e.emit_document("hi", vec![Value::Bin(Bytes::from_static(&[1]))])
            .unwrap_or_else(|e| panic!("{e}")),
        None,
        "a60000001074797065000300000003646174610075000000037061636b6574003800000010747970650002000000046461746100180000000230000300000068690005310001000000000100026e737000020000002f0000036f707473002a00000004726f6f6d7300050000000003666c616773000500000000046578636570740005000000000000027569640008000000656d697474657200026e737000020000002f0000",
    );
}

/// The spec's table of emitter documents (§5.7): leave, disconnect, flags, namespaces, createdAt.
#[tokio::test]
async fn other_calls_have_node_shapes() {
    let e = emitter().await;
    let leave = e.of("admin").to("a").except("b").leave_document(&["x"]);
    assert_eq!(
        leave.to_string(),
        r#"{ "type": 5, "data": { "opts": { "rooms": ["a"], "except": ["b"] }, "rooms": ["x"] }, "uid": "emitter", "nsp": "/admin" }"#
    );
    let disconnect = e.disconnect_document(true);
    assert_eq!(
        disconnect.to_string(),
        r#"{ "type": 6, "data": { "opts": { "rooms": [], "except": [] }, "close": true }, "uid": "emitter", "nsp": "/" }"#
    );
    let flagged = e
        .volatile()
        .compress(false)
        .emit_document("f", vec![])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        flagged
            .get_document("data")
            .and_then(|d| d.get_document("opts"))
            .and_then(|o| o.get_document("flags"))
            .map(ToString::to_string)
            .ok(),
        Some(r#"{ "volatile": true, "compress": false }"#.to_owned())
    );
    // TTL mode: createdAt last, a date
    let dated = e.add_created_at_field(true).join_document(&["j"]);
    let keys: Vec<&str> = dated.keys().map(String::as_str).collect();
    assert_eq!(keys, ["type", "data", "uid", "nsp", "createdAt"]);
    assert!(dated.get_datetime("createdAt").is_ok());
}

#[tokio::test]
async fn reserved_events_are_refused() {
    let e = emitter().await;
    for name in ["connect", "disconnect", "newListener"] {
        assert!(matches!(
            e.emit_document(name, vec![]),
            Err(EmitterError::Reserved(n)) if n == name
        ));
    }
}
