//! The bridge against socketioxide's real parsers: what they produce is read correctly,
//! and what the bridge produces they decode and encode for clients as Node would.

use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use socketioxide_core::{
    Sid, Value as SioValue,
    adapter::{BroadcastFlags, BroadcastOptions},
    packet::Packet,
    parser::Parse,
};
use socketioxide_parser_common::CommonParser;
use socketioxide_parser_msgpack::MsgPackParser;
use switchboard_wire::{Limits, Opts, PacketObject, Value, map};

use super::{self as bridge, ParserKind};

const LIMITS: Limits = Limits::DEFAULT;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Payload {
    a: i64,
    #[serde(with = "serde_bytes_compat")]
    bin: Vec<u8>,
}

/// Serialise as bytes (what `serde_bytes`/`Bytes` do), so parsers see binary.
mod serde_bytes_compat {
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};
    pub(super) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }
    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        Ok(Bytes::deserialize(d)?.to_vec())
    }
}

fn expected_args() -> Vec<Value> {
    vec![
        "ev".into(),
        map![
            ("a", 1i64),
            ("bin", Value::Bin(Bytes::from_static(&[1, 2, 3])))
        ],
        Value::Bin(Bytes::from_static(&[9])),
    ]
}

fn sample() -> (Payload, Bytes) {
    (
        Payload {
            a: 1,
            bin: vec![1, 2, 3],
        },
        Bytes::from_static(&[9]),
    )
}

#[test]
fn reads_what_socketioxide_parsers_produce() {
    for (kind, value) in [
        (
            ParserKind::Common,
            CommonParser.encode_value(&sample(), Some("ev")),
        ),
        (
            ParserKind::MsgPack,
            MsgPackParser.encode_value(&sample(), Some("ev")),
        ),
    ] {
        let value = value.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ParserKind::of(&value), kind);
        let args = bridge::args_from_socketioxide(&value, &LIMITS);
        assert_eq!(args.ok(), Some(expected_args()), "{kind:?}");
    }
}

#[test]
fn socketioxide_parsers_read_what_the_bridge_produces() {
    let mut common = bridge::args_to_socketioxide(&expected_args(), ParserKind::Common);
    assert_eq!(CommonParser.read_event(&common).ok(), Some("ev"));
    let decoded: Result<(Payload, Bytes), _> = CommonParser.decode_value(&mut common, true);
    assert_eq!(decoded.ok(), Some(sample()));

    let mut mp = bridge::args_to_socketioxide(&expected_args(), ParserKind::MsgPack);
    assert_eq!(MsgPackParser.read_event(&mp).ok(), Some("ev"));
    let decoded: Result<(Payload, Bytes), _> = MsgPackParser.decode_value(&mut mp, true);
    assert_eq!(decoded.ok(), Some(sample()));
}

#[test]
fn remote_packets_reach_clients_as_node_would_send_them() {
    // {type:2, data:["up", <bin 010203>, {x: <bin 04>}], id:5} on /admin, protocol.md §9.1
    let obj = PacketObject {
        kind: 2,
        data: vec![
            "up".into(),
            Value::Bin(Bytes::from_static(&[1, 2, 3])),
            map![("x", Value::Bin(Bytes::from_static(&[4])))],
        ],
        nsp: Some("/ignored".into()),
        id: Some(5),
    };
    let packet = bridge::packet_from_wire(&obj, "/admin".into(), ParserKind::Common);
    let Ok(packet) = packet else {
        panic!("{packet:?}")
    };
    let SioValue::Str(text, Some(bins)) = CommonParser.encode(packet.clone()) else {
        panic!("expected text with attachments")
    };
    assert_eq!(
        text.as_str(),
        r#"52-/admin,5["up",{"_placeholder":true,"num":0},{"x":{"_placeholder":true,"num":1}}]"#
    );
    assert_eq!(
        Vec::from(bins),
        vec![Bytes::from_static(&[1, 2, 3]), Bytes::from_static(&[4])]
    );

    // and back: a local packet becomes the same object (nsp absent, as cluster messages have it)
    let back = bridge::packet_to_wire(&packet, &LIMITS);
    assert_eq!(
        back.ok(),
        Some(PacketObject {
            nsp: None,
            ..obj.clone()
        })
    );

    let plain = PacketObject::event(vec!["hello".into(), "world".into()]);
    let packet = bridge::packet_from_wire(&plain, "/".into(), ParserKind::Common);
    let encoded = packet.map(|p| CommonParser.encode(p));
    assert_eq!(
        encoded.ok().and_then(|v| v.as_str().map(|s| s.to_string())),
        Some(r#"2["hello","world"]"#.into())
    );

    assert!(
        bridge::packet_from_wire(
            &PacketObject { kind: 0, ..plain },
            "/".into(),
            ParserKind::Common
        )
        .is_err()
    );
    assert!(bridge::packet_to_wire(&Packet::disconnect("/"), &LIMITS).is_err());
}

#[test]
fn acks_carry_the_first_argument_only() {
    let ack = CommonParser
        .encode_value(&("ok-5", 2), None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        bridge::ack_to_wire(&ack, &LIMITS).ok(),
        Some(Value::from("ok-5"))
    );
    let empty = SioValue::Str("[]".into(), None);
    assert_eq!(bridge::ack_to_wire(&empty, &LIMITS).ok(), Some(Value::Nil));
    let mut back = bridge::ack_from_wire(&Value::from("ok-5"), ParserKind::Common);
    let decoded: Result<String, _> = CommonParser.decode_value(&mut back, false);
    assert_eq!(decoded.ok(), Some("ok-5".to_owned()));
}

#[test]
fn options_map_both_ways() {
    let sid = Sid::new();
    let check = |opts: &BroadcastOptions, timeout, expected: &str| {
        let wire = bridge::opts_to_wire(opts, timeout);
        let text =
            String::from_utf8_lossy(&switchboard_wire::json::to_vec(&wire.to_value())).into_owned();
        assert_eq!(text, expected.replace("SID", sid.as_str()));
    };
    // io.to("room1").except("room3").volatile
    let mut o = BroadcastOptions::default();
    o.rooms.push("room1".into());
    o.except.push("room3".into());
    o.add_flag(BroadcastFlags::Volatile);
    check(
        &o,
        None,
        r#"{"rooms":["room1"],"except":["room3"],"flags":{"volatile":true}}"#,
    );
    // socket.broadcast.emit: the sender is excluded
    let mut o = BroadcastOptions::new(sid);
    o.add_flag(BroadcastFlags::Broadcast);
    check(&o, None, r#"{"rooms":[],"except":["SID"],"flags":{}}"#);
    // an operation on one (remote) socket, with a timeout: as Node's RemoteSocket
    let o = BroadcastOptions::new(sid);
    check(
        &o,
        Some(Duration::from_millis(500)),
        r#"{"rooms":["SID"],"except":[],"flags":{"expectSingleResponse":true,"timeout":500}}"#,
    );

    // received: empty rooms means the whole namespace (Broadcast flag), volatile kept
    let wire = Opts::from_value(map![
        ("rooms", Value::Array(vec![])),
        ("except", Value::Array(vec!["x".into(), Value::Int(7)])),
        ("flags", map![("volatile", true), ("unknownFlag", 3i64)]),
    ]);
    let Ok(wire) = wire else { panic!("{wire:?}") };
    let local = bridge::opts_from_wire(&wire);
    assert!(local.rooms.is_empty());
    assert_eq!(
        local.except.iter().map(|r| r.as_ref()).collect::<Vec<_>>(),
        vec!["x", "7"]
    );
    assert!(local.has_flag(BroadcastFlags::Broadcast));
    assert!(local.has_flag(BroadcastFlags::Volatile));
    assert!(!local.has_flag(BroadcastFlags::Local));
    assert_eq!(local.sid, None);
}

fn any_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        (1u32..1024).prop_map(|f| Value::Float(f64::from(f) + 0.5)),
        ".{0,20}".prop_map(Value::Str),
        prop::collection::vec(any::<u8>(), 0..16).prop_map(|b| Value::Bin(b.into())),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-z]{0,6}", inner), 0..4).prop_map(Value::object),
        ]
    })
}

proptest! {
    #[test]
    fn round_trips_through_the_common_parser(args in prop::collection::vec(any_value(), 0..6)) {
        // the common parser carries JSON plus attachments: every value above survives
        let sio = bridge::args_to_socketioxide(&args, ParserKind::Common);
        prop_assert_eq!(ParserKind::of(&sio), ParserKind::Common);
        prop_assert_eq!(bridge::args_from_socketioxide(&sio, &LIMITS).ok(), Some(args));
    }

    #[test]
    fn round_trips_through_the_msgpack_parser(args in prop::collection::vec(any_value(), 0..6)) {
        let sio = bridge::args_to_socketioxide(&args, ParserKind::MsgPack);
        prop_assert_eq!(ParserKind::of(&sio), ParserKind::MsgPack);
        prop_assert_eq!(bridge::args_from_socketioxide(&sio, &LIMITS).ok(), Some(args));
    }
}
