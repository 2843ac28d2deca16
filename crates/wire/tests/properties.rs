//! Property tests: encode/decode round-trips of every message type.

use bytes::Bytes;
use proptest::prelude::*;
use switchboard_wire::{
    Body, ClusterMessage, Dialect, Flags, Handshake, Limits, Opts, OptsOrder, PacketObject,
    SocketDetails, Timestamp, Value, json, mesh, msgpack,
    redis::{ClassicBroadcast, ClassicRequest, ClassicResponse, RequestBody, ResponseBody},
};

const LIMITS: Limits = Limits::DEFAULT;

/// Non-integral floats (integral ones are integers in JS and encode as such).
fn float() -> BoxedStrategy<Value> {
    (any::<i32>(), 1u32..1024, -300i32..300)
        .prop_map(|(i, f, e)| {
            Value::Float((f64::from(i) + f64::from(f) / 1024.0) * 10f64.powi(e.min(0)))
        })
        .prop_filter(
            "non-integral",
            |v| matches!(v, Value::Float(f) if f.fract() != 0.0),
        )
        .boxed()
}

/// Whether JSON (with binary attachments when `attachments`) carries `v` without loss.
fn json_safe(v: &Value, attachments: bool) -> bool {
    match v {
        Value::Timestamp(_) | Value::Ext(..) => false,
        Value::Bin(_) => attachments,
        Value::Array(a) => a.iter().all(|v| json_safe(v, attachments)),
        Value::Map(m) => m.iter().all(|(_, v)| json_safe(v, attachments)),
        _ => true,
    }
}

/// Values as JSON can carry them: no binary, no dates, integers within i64, non-integral floats.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        float(),
        ".{0,40}".prop_map(Value::Str),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(("[a-zA-Z_]{0,8}", inner), 0..6).prop_map(Value::object),
        ]
    })
}

/// Every value msgpack carries.
fn any_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        ((i64::MAX as u64 + 1)..=u64::MAX).prop_map(Value::UInt),
        float(),
        ".{0,40}".prop_map(Value::Str),
        prop::collection::vec(any::<u8>(), 0..300).prop_map(|b| Value::Bin(Bytes::from(b))),
        (any::<i64>(), 0u32..1_000_000_000)
            .prop_map(|(secs, nanos)| Value::Timestamp(Timestamp { secs, nanos })),
        (1i8..127, prop::collection::vec(any::<u8>(), 2..20))
            .prop_map(|(t, b)| Value::Ext(t, Bytes::from(b))),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..20).prop_map(Value::Array),
            prop::collection::vec((".{0,8}", inner), 0..20).prop_map(Value::object),
        ]
    })
}

fn rooms() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec("[a-zA-Z0-9_-]{1,20}", 0..4)
}

fn opts() -> impl Strategy<Value = Opts> {
    (
        rooms(),
        rooms(),
        any::<Option<(bool, Option<u32>)>>(),
        any::<bool>(),
    )
        .prop_map(|(rooms, except, flags, emitter)| {
            let flags = flags.map(|(volatile, timeout)| {
                let mut f = Flags::default();
                if volatile {
                    f.set("volatile", Value::Bool(true));
                }
                if let Some(t) = timeout {
                    f.set("timeout", Value::Int(i64::from(t)));
                }
                f
            });
            Opts {
                rooms,
                except,
                order: if emitter && flags.is_some() {
                    OptsOrder::RoomsFlagsExcept
                } else {
                    OptsOrder::RoomsExceptFlags
                },
                flags,
            }
        })
}

fn packet() -> impl Strategy<Value = PacketObject> {
    (
        "[a-z]{1,10}",
        prop::collection::vec(any_value(), 0..4),
        prop::option::of("/[a-z]{0,6}"),
        prop::option::of(0i64..1000),
    )
        .prop_map(|(ev, args, nsp, id)| {
            let mut data = vec![Value::Str(ev)];
            data.extend(args);
            PacketObject {
                kind: 2,
                data,
                nsp,
                id,
            }
        })
}

fn socket() -> impl Strategy<Value = SocketDetails> {
    ("[a-zA-Z0-9_-]{16,20}", rooms(), any_value(), any::<i64>()).prop_map(
        |(id, rooms, data, issued)| SocketDetails {
            id,
            handshake: Handshake {
                issued,
                url: "/socket.io/?EIO=4".into(),
                ..Handshake::default()
            },
            rooms,
            data,
        },
    )
}

fn body() -> impl Strategy<Value = Body> {
    let id = "[0-9a-f]{16}";
    prop_oneof![
        Just(Body::InitialHeartbeat),
        Just(Body::Heartbeat),
        Just(Body::AdapterClose),
        (packet(), prop::option::of(id), opts()).prop_map(|(packet, request_id, opts)| {
            Body::Broadcast {
                packet,
                request_id,
                opts,
            }
        }),
        (opts(), rooms()).prop_map(|(opts, rooms)| Body::SocketsJoin { opts, rooms }),
        (opts(), rooms()).prop_map(|(opts, rooms)| Body::SocketsLeave { opts, rooms }),
        (opts(), any::<Option<bool>>())
            .prop_map(|(opts, close)| Body::DisconnectSockets { opts, close }),
        (opts(), id).prop_map(|(opts, request_id)| Body::FetchSockets { opts, request_id }),
        (id, prop::collection::vec(socket(), 0..3)).prop_map(|(request_id, sockets)| {
            Body::FetchSocketsResponse {
                request_id,
                sockets,
            }
        }),
        (
            prop::option::of(id),
            prop::collection::vec(any_value(), 1..4)
        )
            .prop_map(|(request_id, packet)| Body::ServerSideEmit { request_id, packet }),
        (id, any_value())
            .prop_map(|(request_id, packet)| Body::ServerSideEmitResponse { request_id, packet }),
        (id, 0u64..100_000).prop_map(|(request_id, client_count)| Body::BroadcastClientCount {
            request_id,
            client_count
        }),
        (id, any_value())
            .prop_map(|(request_id, packet)| Body::BroadcastAck { request_id, packet }),
    ]
}

fn message() -> impl Strategy<Value = ClusterMessage> {
    ("[0-9a-f]{16}|emitter", "/[a-z]{0,8}", body()).prop_map(|(uid, nsp, body)| ClusterMessage {
        uid,
        nsp,
        body,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn msgpack_round_trips(v in any_value()) {
        let bytes = msgpack::to_vec(&v);
        prop_assert_eq!(msgpack::from_slice(&bytes, &LIMITS).ok(), Some(v));
    }

    #[test]
    fn json_round_trips(v in json_value()) {
        let bytes = json::to_vec(&v);
        let back = json::from_slice(&bytes, &LIMITS);
        prop_assert!(back.is_ok(), "{:?} from {}", back, String::from_utf8_lossy(&bytes));
        prop_assert_eq!(back.ok(), Some(v));
    }

    #[test]
    fn cluster_messages_round_trip(m in message()) {
        let via_msgpack = ClusterMessage::decode(&m.to_msgpack(), Dialect::Cluster, &LIMITS);
        prop_assert_eq!(via_msgpack.as_ref().ok(), Some(&m));
        let sharded = ClusterMessage::decode(&m.to_json_unless_binary(), Dialect::Cluster, &LIMITS);
        prop_assert!(sharded.is_ok());
        // JSON turns dates into strings, as in Node; binary switches the whole message to msgpack
        let value = m.to_value();
        if json_safe(&value, false) || (m.message_type().may_carry_binary() && value.has_binary()) {
            prop_assert_eq!(sharded.ok(), via_msgpack.ok());
        }
        let frame = mesh::mesh_frame(&m);
        prop_assert_eq!(mesh::decode_frame(&frame, &LIMITS).ok(), Some(mesh::Frame::Mesh(m)));
    }

    #[test]
    fn json_messages_without_binary_round_trip(body in body(), uid in "[0-9a-f]{16}") {
        let m = ClusterMessage::new(uid, "/", body);
        prop_assume!(json_safe(&m.to_value(), false));
        prop_assert_eq!(ClusterMessage::decode(&m.to_json(), Dialect::Cluster, &LIMITS).ok(), Some(m));
    }

    #[test]
    fn classic_broadcast_round_trips(uid in "[a-zA-Z0-9_-]{6}|emitter", packet in packet(), opts in opts()) {
        let b = ClassicBroadcast { uid, packet, opts };
        let bytes = b.to_msgpack();
        // the direct writer gives the bytes of the value's encoding
        prop_assert_eq!(&bytes, &msgpack::to_vec(&b.to_value()));
        // the uid read from the first bytes is the decoded one
        prop_assert_eq!(ClassicBroadcast::peek_uid(&bytes), Some(b.uid.as_str()));
        prop_assert_eq!(ClassicBroadcast::from_msgpack(&bytes, &LIMITS).ok(), Some(b));
    }

    #[test]
    fn classic_requests_round_trip(uid in prop::option::of("[a-zA-Z0-9]{6}"), rid in prop::option::of("[a-zA-Z0-9]{6}"), opts in opts(), rooms in rooms(), close in any::<bool>(), packet in packet(), pick in 0usize..8) {
        let body = match pick {
            0 => RequestBody::Sockets { rooms },
            1 => RequestBody::AllRooms,
            2 => RequestBody::RemoteJoin { opts, rooms },
            3 => RequestBody::RemoteLeave { opts, rooms },
            4 => RequestBody::RemoteDisconnect { opts, close },
            5 => RequestBody::RemoteFetch { opts },
            6 => RequestBody::LegacyJoin { sid: "sid".into(), room: "r".into() },
            _ => RequestBody::Broadcast { packet, opts },
        };
        let r = ClassicRequest { uid, request_id: rid, body };
        let bytes = r.encode();
        prop_assert_eq!(bytes[0] == b'{', !matches!(r.body, RequestBody::Broadcast { .. }));
        prop_assert_eq!(ClassicRequest::decode(&bytes, &LIMITS).ok(), Some(r));
    }

    #[test]
    fn classic_responses_round_trip(rid in "[a-zA-Z0-9]{6}", rooms in prop::collection::vec("[a-z]{1,8}", 1..4), sockets in prop::collection::vec(socket(), 1..3), v in any_value(), n in any::<u32>(), pick in 0usize..6) {
        let body = match pick {
            0 => ResponseBody::Rooms(rooms),
            1 => ResponseBody::SocketIds(rooms),
            2 => ResponseBody::Sockets(sockets),
            3 => ResponseBody::ClientCount(u64::from(n)),
            4 => ResponseBody::Ack(v),
            _ => ResponseBody::Done,
        };
        let r = ClassicResponse { request_id: rid, body };
        let back = ClassicResponse::decode(&r.encode(), &LIMITS);
        match &r.body {
            // JSON loses binary and dates, exactly as in Node
            ResponseBody::Sockets(s) if s.iter().any(|s| !json_safe(&s.data, false)) => prop_assert!(back.is_ok()),
            _ => prop_assert_eq!(back.ok(), Some(r)),
        }
    }

    #[test]
    fn decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = ClusterMessage::decode(&bytes, Dialect::Cluster, &LIMITS);
        let _ = ClassicRequest::decode(&bytes, &LIMITS);
        let _ = ClassicResponse::decode(&bytes, &LIMITS);
        let _ = ClassicBroadcast::from_msgpack(&bytes, &LIMITS);
        let _ = mesh::decode_frame(&bytes, &LIMITS);
        let _ = mesh::DiscoveryMessage::from_msgpack(&bytes, &LIMITS);
    }
}
