//! Golden tests: every payload the Node packages produced in `tests/data` (copied from
//! `shared/captures`) is decoded, checked field by field, and re-encoded byte-identical.

use bytes::Bytes;
use switchboard_wire::{
    Body, ClusterMessage, Dialect, Limits, MessageType, OptsOrder, Timestamp, Value, map,
    mesh::{self, DiscoveryMessage, Frame, Hello, PeerInfo},
    redis::{ClassicBroadcast, ClassicRequest, ClassicResponse, RequestBody, ResponseBody},
};

const LIMITS: Limits = Limits::DEFAULT;

fn data(name: &str) -> String {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length: {s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or_else(|_| panic!("bad hex {s}")))
        .collect()
}

/// One payload of a live capture: the header line (channel or document kind) and its bytes.
struct Payload {
    header: String,
    bytes: Vec<u8>,
}

/// Collects every hex-dumped payload that follows a line containing `marker` and the byte count
/// (`payload N bytes` or `BSON (N bytes)`), checking each dump has the announced length.
fn hex_dumps(text: &str, marker: &str) -> Vec<Payload> {
    let mut out = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(at) = line.find(marker) else {
            continue;
        };
        let rest = &line[at + marker.len()..];
        let len: usize = rest
            .trim_start_matches([' ', '('])
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no length in {line}"));
        let mut bytes = Vec::new();
        while let Some(next) = lines.peek() {
            let t = next.trim_start();
            let is_dump = t.len() > 6
                && t.as_bytes()[4] == b' '
                && t[..4].chars().all(|c| c.is_ascii_hexdigit());
            if !is_dump {
                break;
            }
            let hex_part = t[6..].split('|').next().unwrap_or("");
            bytes.extend(hex_part.split_whitespace().flat_map(unhex));
            lines.next();
        }
        assert_eq!(bytes.len(), len, "dump length for {line}");
        out.push(Payload {
            header: line.trim().to_owned(),
            bytes,
        });
    }
    out
}

fn channel(header: &str) -> &str {
    let start = header.find("channel=\"").map(|i| i + 9).unwrap_or(0);
    let end = header[start..]
        .find('"')
        .map(|i| start + i)
        .unwrap_or(header.len());
    &header[start..end]
}

#[test]
fn classic_redis_live_capture_round_trips() {
    let payloads = hex_dumps(
        &data("redis-classic-adapter-and-emitter.txt"),
        "\" payload ",
    );
    assert_eq!(
        payloads.len(),
        20,
        "every classic payload of the capture is checked"
    );
    let (mut broadcasts, mut requests, mut responses) = (0, 0, 0);
    for p in &payloads {
        let ch = channel(&p.header);
        let reencoded = if ch.starts_with("socket.io-request#") {
            requests += 1;
            ClassicRequest::decode(&p.bytes, &LIMITS).map(|r| r.encode())
        } else if ch.starts_with("socket.io-response#") {
            responses += 1;
            ClassicResponse::decode(&p.bytes, &LIMITS).map(|r| r.encode())
        } else {
            broadcasts += 1;
            let decoded = ClassicBroadcast::from_msgpack(&p.bytes, &LIMITS);
            // what Node published: its uid readable from the first bytes
            if let Ok(b) = &decoded {
                assert_eq!(ClassicBroadcast::peek_uid(&p.bytes), Some(b.uid.as_str()));
            }
            decoded.map(|b| b.to_msgpack())
        };
        match reencoded {
            Ok(bytes) => assert_eq!(bytes, p.bytes, "byte-identical re-encoding of {}", p.header),
            Err(e) => panic!("{}: {e}", p.header),
        }
    }
    assert!(
        broadcasts >= 5 && requests >= 5 && responses >= 5,
        "{broadcasts} {requests} {responses}"
    );
}

#[test]
fn classic_redis_fields() {
    let payloads = hex_dumps(
        &data("redis-classic-adapter-and-emitter.txt"),
        "\" payload ",
    );
    // io.to('room1').emit('bin-ev', Buffer<01 02 03>)
    let bin = payloads
        .iter()
        .find(|p| p.header.contains("payload 68 bytes"))
        .map(|p| ClassicBroadcast::from_msgpack(&p.bytes, &LIMITS));
    let Some(Ok(bin)) = bin else {
        panic!("binary broadcast missing")
    };
    assert_eq!(bin.uid.len(), 6);
    assert_eq!(bin.packet.kind, 2);
    assert_eq!(bin.packet.nsp.as_deref(), Some("/"));
    assert_eq!(
        bin.packet.data,
        vec!["bin-ev".into(), Value::Bin(Bytes::from_static(&[1, 2, 3]))]
    );
    assert_eq!(bin.opts.rooms, vec!["room1"]);
    assert!(bin.opts.except.is_empty());
    assert_eq!(bin.opts.flags.as_ref().map(|f| f.entries().len()), Some(0));

    // the fetchSockets answer carries a full handshake
    let fetch = payloads
        .iter()
        .filter(|p| channel(&p.header).starts_with("socket.io-response#"))
        .filter_map(|p| ClassicResponse::decode(&p.bytes, &LIMITS).ok())
        .find_map(|r| match r.body {
            ResponseBody::Sockets(s) if !s.is_empty() => Some(s),
            _ => None,
        });
    let Some(sockets) = fetch else {
        panic!("no fetchSockets response")
    };
    let s = &sockets[0];
    assert_eq!(s.id.len(), 20);
    assert_eq!(s.rooms[0], s.id);
    assert_eq!(s.data, map![("name", "B")]);
    assert_eq!(s.handshake.address, "127.0.0.1");
    assert!(
        s.handshake
            .time
            .ends_with("GMT+0000 (Coordinated Universal Time)")
    );
    assert!(s.handshake.issued > 1_700_000_000_000);
    assert_eq!(s.handshake.query.get("name"), Some(&Value::from("B")));
    assert_eq!(
        s.handshake.headers.get("connection"),
        Some(&Value::from("Upgrade"))
    );
    assert!(!s.handshake.secure && !s.handshake.xdomain);

    // the emitter's requests have no uid; its broadcasts use the rooms, flags, except order
    let kinds: Vec<_> = payloads
        .iter()
        .filter(|p| channel(&p.header).starts_with("socket.io-request#"))
        .filter_map(|p| ClassicRequest::decode(&p.bytes, &LIMITS).ok())
        .collect();
    assert!(
        kinds
            .iter()
            .any(|r| r.uid.is_none() && matches!(r.body, RequestBody::RemoteJoin { .. }))
    );
    assert!(kinds.iter().any(|r| matches!(&r.body, RequestBody::Broadcast { opts, .. } if opts.flags().timeout_ms() == Some(1000))));
    let emitter = payloads
        .iter()
        .filter_map(|p| ClassicBroadcast::from_msgpack(&p.bytes, &LIMITS).ok())
        .find(|b| b.uid == "emitter");
    assert_eq!(
        emitter.map(|b| b.opts.order),
        Some(OptsOrder::RoomsFlagsExcept)
    );
}

fn check_sharded(name: &str) {
    let payloads = hex_dumps(&data(name), "\" payload ");
    assert_eq!(
        payloads.len(),
        14,
        "every sharded payload of {name} is checked"
    );
    let mut types = Vec::new();
    for p in &payloads {
        let msg = ClusterMessage::decode(&p.bytes, Dialect::Cluster, &LIMITS)
            .unwrap_or_else(|e| panic!("{}: {e}", p.header));
        assert_eq!(
            msg.to_json_unless_binary(),
            p.bytes,
            "byte-identical {}",
            p.header
        );
        assert_eq!(msg.uid.len(), 16);
        assert_eq!(msg.nsp, "/");
        // responses travel on the requester's own channel
        if msg.message_type().is_response() {
            let requester = channel(&p.header)
                .trim_end_matches('#')
                .rsplit('#')
                .next()
                .unwrap_or("");
            assert_eq!(requester.len(), 16, "{}", p.header);
            assert_ne!(requester, msg.uid);
        }
        types.push(msg.message_type());
    }
    for t in [
        MessageType::Broadcast,
        MessageType::FetchSockets,
        MessageType::FetchSocketsResponse,
        MessageType::ServerSideEmit,
        MessageType::ServerSideEmitResponse,
        MessageType::BroadcastClientCount,
        MessageType::BroadcastAck,
        MessageType::SocketsJoin,
        MessageType::DisconnectSockets,
    ] {
        assert!(types.contains(&t), "{name} has a {t:?}");
    }
}

#[test]
fn sharded_redis_live_capture_round_trips() {
    check_sharded("redis-sharded-adapter.txt");
}

#[test]
fn sharded_redis_cluster_live_capture_round_trips() {
    check_sharded("redis-sharded-on-cluster.txt");
}

#[cfg(feature = "bson")]
#[test]
fn mongo_live_capture_round_trips() {
    use switchboard_wire::mongo;
    let payloads = hex_dumps(&data("mongo-adapter-on-secantusdb.txt"), "BSON (");
    assert!(payloads.len() >= 20, "{} documents", payloads.len());
    let mut types = Vec::new();
    for p in &payloads {
        let doc = bson::Document::from_reader(p.bytes.as_slice()).unwrap_or_else(|e| panic!("{e}"));
        let msg = mongo::from_bson_bytes(&p.bytes, &LIMITS)
            .unwrap_or_else(|e| panic!("{}: {e}", p.header));
        // rebuild: the message, createdAt (TTL mode), then the driver's _id
        let created = doc
            .get_datetime("createdAt")
            .ok()
            .map(|d| Timestamp::from_millis(d.timestamp_millis()));
        let mut rebuilt = mongo::to_document(&msg, created);
        if let Some(id) = doc.get("_id") {
            rebuilt.insert("_id", id.clone());
        }
        let bytes = rebuilt.to_vec().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(bytes, p.bytes, "byte-identical {}", p.header);
        types.push(msg.message_type());
        if let Body::Broadcast { packet, .. } = &msg.body
            && packet.data.first() == Some(&Value::from("bin-ev"))
        {
            assert_eq!(packet.data[1], Value::Bin(Bytes::from_static(&[1, 2, 3])));
        }
    }
    assert!(types.contains(&MessageType::InitialHeartbeat));
    assert!(types.contains(&MessageType::Broadcast));
    assert!(types.contains(&MessageType::FetchSocketsResponse));
    assert!(types.contains(&MessageType::BroadcastAck));
}

#[cfg(feature = "bson")]
#[test]
fn mongo_emitter_document_bytes() {
    use switchboard_wire::mongo;
    let text = data("encoder-mongo.txt");
    let hex = text
        .lines()
        .skip_while(|l| !l.starts_with("# bson bytes"))
        .nth(1)
        .unwrap_or("");
    let bytes = unhex(hex.trim());
    let msg = mongo::from_bson_bytes(&bytes, &LIMITS).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(msg.uid, "emitter");
    let Body::Broadcast {
        packet,
        opts,
        request_id: None,
    } = &msg.body
    else {
        panic!("{msg:?}")
    };
    assert_eq!(
        packet.data,
        vec!["hi".into(), Value::Bin(Bytes::from_static(&[1]))]
    );
    assert_eq!(packet.nsp.as_deref(), Some("/"));
    assert_eq!(opts.order, OptsOrder::RoomsFlagsExcept);
    let doc = mongo::to_document(&msg, None);
    assert_eq!(doc.to_vec().ok(), Some(bytes));
}

/// `(buffer)`, `(msgpack)`, `(string)` and `(json)` lines of the encoder captures.
fn encoder_lines<'a>(text: &'a str, prefix: &str) -> Vec<(&'a str, Vec<u8>)> {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| {
            for (tag, hex) in [
                (" (buffer) ", true),
                (" (msgpack) ", true),
                (" (string) ", false),
                (" (json) ", false),
            ] {
                if let Some((head, payload)) = l.split_once(tag) {
                    let ch = head.rsplit(' ').next().unwrap_or("");
                    let bytes = if hex {
                        unhex(payload.trim())
                    } else {
                        payload.as_bytes().to_vec()
                    };
                    return Some((ch, bytes));
                }
            }
            None
        })
        .collect()
}

#[test]
fn classic_encoder_capture_round_trips() {
    let text = data("encoder-redis.txt");
    let lines: Vec<_> = ["pub PUBLISH", "emitter PUBLISH"]
        .iter()
        .flat_map(|p| encoder_lines(&text, p))
        .collect();
    assert_eq!(lines.len(), 24);
    for (ch, bytes) in &lines {
        let out = if ch.starts_with("socket.io-request#") {
            ClassicRequest::decode(bytes, &LIMITS).map(|r| r.encode())
        } else if ch.starts_with("socket.io-response#") {
            ClassicResponse::decode(bytes, &LIMITS).map(|r| r.encode())
        } else {
            ClassicBroadcast::from_msgpack(bytes, &LIMITS).map(|b| b.to_msgpack())
        };
        assert_eq!(
            out.ok().as_ref(),
            Some(bytes),
            "{ch} {}",
            String::from_utf8_lossy(bytes)
        );
    }
    // the Date on /admin is a msgpack timestamp
    let admin = lines
        .iter()
        .find(|(ch, _)| *ch == "socket.io#/admin#")
        .map(|(_, b)| ClassicBroadcast::from_msgpack(b, &LIMITS));
    let Some(Ok(admin)) = admin else {
        panic!("admin broadcast")
    };
    assert_eq!(
        admin.packet.data[1],
        Value::Timestamp(Timestamp::from_millis(0))
    );
}

#[test]
fn sharded_and_streams_encoder_capture_round_trips() {
    let text = data("encoder-sharded_streams.txt");
    let sharded = encoder_lines(&text, "pub SPUBLISH");
    assert_eq!(sharded.len(), 9);
    for (ch, bytes) in &sharded {
        let msg = ClusterMessage::decode(bytes, Dialect::Cluster, &LIMITS)
            .unwrap_or_else(|e| panic!("{ch}: {e}"));
        assert_eq!(&msg.to_json_unless_binary(), bytes, "{ch}");
    }
    // streams 0.3 pub/sub: always msgpack of the whole message
    let streams = encoder_lines(&text, "redis PUBLISH");
    assert_eq!(streams.len(), 2);
    for (ch, bytes) in &streams {
        let msg = ClusterMessage::decode(bytes, Dialect::Cluster, &LIMITS)
            .unwrap_or_else(|e| panic!("{ch}: {e}"));
        assert_eq!(&msg.to_msgpack(), bytes, "{ch}");
    }
}

#[test]
fn cluster_encoder_capture() {
    let text = data("encoder-cluster.txt");
    let mut checked = 0;
    for line in text.lines().filter(|l| l.starts_with('{')) {
        let msg = ClusterMessage::decode(line.as_bytes(), Dialect::Cluster, &LIMITS)
            .unwrap_or_else(|e| panic!("{line}: {e}"));
        if line.contains("$bin") {
            // the capture renders binary as {"$bin":hex}; the structure must still decode
            assert_eq!(msg.message_type(), MessageType::Broadcast);
        } else {
            assert_eq!(String::from_utf8_lossy(&msg.to_json()), line);
        }
        checked += 1;
    }
    assert!(checked >= 15, "{checked}");
    let hex = text.lines().find(|l| l.starts_with("84a4")).unwrap_or("");
    let bytes = unhex(hex);
    let msg =
        ClusterMessage::decode(&bytes, Dialect::Cluster, &LIMITS).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(msg.to_msgpack(), bytes);
    assert_eq!(msg.uid, "6e0e5a4f1a3b2c1d");
}

#[test]
fn ipc_and_remote_encoder_captures_decode() {
    let ipc = data("encoder-ipc.txt");
    let mut n = 0;
    for line in ipc
        .lines()
        .filter_map(|l| l.split_once(": {").map(|(_, j)| format!("{{{j}")))
    {
        let msg = ClusterMessage::decode(line.as_bytes(), Dialect::Cluster, &LIMITS)
            .unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(msg.nsp, "/");
        n += 1;
    }
    assert!(n >= 14, "{n}");
    let remote = data("encoder-remote.txt");
    let msgs: Vec<_> = remote
        .lines()
        .filter_map(|l| l.split_once(" PUB ").map(|(_, j)| j))
        .map(|j| {
            ClusterMessage::decode(j.as_bytes(), Dialect::Cluster, &LIMITS)
                .unwrap_or_else(|e| panic!("{j}: {e}"))
        })
        .collect();
    let single = msgs.iter().filter(|m| match &m.body {
        Body::Broadcast { opts, .. }
        | Body::SocketsJoin { opts, .. }
        | Body::SocketsLeave { opts, .. }
        | Body::DisconnectSockets { opts, .. } => opts.flags().expect_single_response(),
        _ => false,
    });
    assert_eq!(single.count(), 5);
    for m in &msgs {
        assert_eq!(
            String::from_utf8_lossy(&m.to_json()),
            remote
                .lines()
                .find_map(|l| l
                    .split_once(" PUB ")
                    .map(|(_, j)| j)
                    .filter(|j| *j == String::from_utf8_lossy(&m.to_json())))
                .unwrap_or("missing")
        );
    }
}

#[test]
fn mesh_frames_of_the_spec() {
    let register = DiscoveryMessage::Register {
        server_id: "3f2a9c0d11e4b7a8".into(),
        address: "ws://10.0.0.1:4000".into(),
        token: None,
    };
    let bytes = unhex(
        "83a474797065a87265676973746572a87365727665724964b033663261396330643131653462376138a761646472657373b277733a2f2f31302e302e302e313a34303030",
    );
    assert_eq!(register.to_msgpack(), bytes);
    assert_eq!(
        DiscoveryMessage::from_msgpack(&bytes, &LIMITS).ok(),
        Some(register)
    );
    let update = DiscoveryMessage::Update {
        servers: vec![PeerInfo {
            server_id: "a".into(),
            address: "ws://a".into(),
        }],
    };
    assert!(
        update
            .to_msgpack()
            .starts_with(&unhex("82a474797065a6757064617465a7736572766572739182"))
    );
    assert_eq!(
        DiscoveryMessage::from_msgpack(&update.to_msgpack(), &LIMITS).ok(),
        Some(update)
    );

    let hello = Hello {
        uid: "3f2a9c0d11e4b7a8".into(),
        address: "ws://10.0.0.1:4000".into(),
        token: None,
    };
    let bytes = unhex(
        "0082a3756964b033663261396330643131653462376138a761646472657373b277733a2f2f31302e302e302e313a34303030",
    );
    assert_eq!(hello.to_frame(), bytes);
    assert_eq!(
        mesh::decode_frame(&bytes, &LIMITS).ok(),
        Some(Frame::Hello(hello))
    );

    for hex in [
        "0183a47479706502a3756964b033663261396330643131653462376138a36e7370a12f",
        "0184a47479706503a46461746182a67061636b657482a47479706502a46461746192a463686174a26869a46f70747383a5726f6f6d7391a5726f6f6d31a665786365707490a5666c61677380a3756964b033663261396330643131653462376138a36e7370a12f",
    ] {
        let bytes = unhex(hex);
        let Ok(Frame::Mesh(msg)) = mesh::decode_frame(&bytes, &LIMITS) else {
            panic!("{hex}")
        };
        assert_eq!(msg.uid, "3f2a9c0d11e4b7a8");
        assert_eq!(mesh::mesh_frame(&msg), bytes);
    }
    assert_eq!(
        mesh::decode_frame(&[7, 0x80], &LIMITS).ok(),
        Some(Frame::Unknown(7))
    );
    assert!(mesh::decode_frame(&[0], &LIMITS).is_err());
    assert!(mesh::decode_frame(&[], &LIMITS).is_err());
}
