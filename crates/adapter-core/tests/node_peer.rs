//! The engine against a Node peer, at the message level: a raw peer on the in-memory bus sends
//! exactly what Node's `ClusterAdapterWithHeartbeat` sends (6-character uid, 20-character socket
//! ids, the "emitter" uid) and checks what comes back.

use std::time::Duration;

use serde_json::json;
use switchboard_adapter_core::{
    AdapterOptions,
    memory::{MemoryHub, MemoryTransport},
};
use switchboard_testkit::{MemoryPeer, TestClient, TestServer, check, eventually, start};
use switchboard_wire::{
    Body, ClusterMessage, Handshake, MessageType, Opts, PacketObject, SocketDetails, Value,
};

const WAIT: Duration = Duration::from_secs(10);
const NODE_UID: &str = "NodeP1";
const NODE_SID: &str = "huaItNCoU-pb6HbQAAAA";

fn config() -> AdapterOptions {
    AdapterOptions::default()
        .heartbeat_interval(Duration::from_millis(100))
        .heartbeat_timeout(Duration::from_millis(600))
        .requests_timeout(Duration::from_secs(3))
}

async fn wait_count(server: &TestServer<MemoryTransport>, n: usize, peer: Option<&MemoryPeer>) {
    eventually(WAIT, async || {
        let got = server.server_count().await;
        if let Some(p) = peer {
            p.publish(Body::Heartbeat);
        }
        check(got == n, || format!("server count {got}, not {n}"))
    })
    .await;
}

/// A Rust server, a Node peer that said hello, and a client on the Rust server.
async fn setup() -> (
    MemoryHub,
    TestServer<MemoryTransport>,
    MemoryPeer,
    TestClient,
) {
    setup_with(config()).await
}

/// The same with other engine options (a 30 s request timeout proves a node's death, not the
/// timeout, ended a wait).
async fn setup_with(
    config: AdapterOptions,
) -> (
    MemoryHub,
    TestServer<MemoryTransport>,
    MemoryPeer,
    TestClient,
) {
    let hub = MemoryHub::new();
    let server = start(hub.transport(), config).await;
    let mut peer = MemoryPeer::join(&hub, "/", NODE_UID).await;
    peer.publish(Body::InitialHeartbeat);
    let hb = peer
        .expect(WAIT, |m| m.message_type() == MessageType::Heartbeat)
        .await;
    assert!(hb.is_some(), "INITIAL_HEARTBEAT is answered with HEARTBEAT");
    wait_count(&server, 2, Some(&peer)).await;
    let client = TestClient::connect(
        server.addr,
        "/",
        json!({"rooms": ["room1"]}),
        Some(json!({"from": "rust"})),
    )
    .await
    .expect("client");
    (hub, server, peer, client)
}

fn node_socket() -> SocketDetails {
    SocketDetails {
        id: NODE_SID.into(),
        handshake: Handshake::default(),
        rooms: vec![NODE_SID.into(), "nroom".into()],
        data: Value::map(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_sockets_get_aliases_and_operations_use_the_original_ids() {
    let (_hub, server, mut peer, _client) = setup().await;
    let io = server.io.clone();
    let fetch = tokio::spawn(async move { io.fetch_sockets().await });
    let request = peer
        .expect(WAIT, |m| m.message_type() == MessageType::FetchSockets)
        .await
        .expect("FETCH_SOCKETS reaches the Node peer");
    let Body::FetchSockets { request_id, .. } = request.body else {
        panic!()
    };
    assert_eq!(request_id.len(), 16);
    peer.publish_to(
        &request.uid,
        Body::FetchSocketsResponse {
            request_id,
            sockets: vec![node_socket()],
        },
    );
    let sockets = fetch.await.expect("join").expect("fetch");
    assert_eq!(sockets.len(), 2);
    let remote = sockets
        .into_iter()
        .find(|s| s.data().id.as_str() != _client.sid())
        .expect("the Node socket");
    assert_eq!(
        remote.data().id.as_str().len(),
        16,
        "an alias socketioxide accepts"
    );
    assert_ne!(remote.data().id.as_str(), &NODE_SID[..16]);

    remote
        .emit("direct", &1)
        .await
        .expect("emit to the Node socket");
    let m = peer
        .expect(WAIT, |m| m.message_type() == MessageType::Broadcast)
        .await
        .expect("broadcast");
    let Body::Broadcast {
        opts,
        packet,
        request_id: None,
    } = m.body
    else {
        panic!("{m:?}")
    };
    assert_eq!(
        opts.rooms,
        vec![NODE_SID.to_owned()],
        "the original id goes back on the wire"
    );
    assert!(opts.flags().expect_single_response());
    assert_eq!(packet.data, vec![Value::from("direct"), Value::Int(1)]);

    remote.join("vip").await.expect("join");
    let m = peer
        .expect(WAIT, |m| m.message_type() == MessageType::SocketsJoin)
        .await
        .expect("join");
    let Body::SocketsJoin { opts, rooms } = m.body else {
        panic!()
    };
    assert_eq!(
        (opts.rooms, rooms),
        (vec![NODE_SID.to_owned()], vec!["vip".to_owned()])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_requests_are_answered() {
    let (_hub, server, mut peer, mut client) = setup().await;
    let me = |m: &ClusterMessage| m.uid != NODE_UID;
    // fetchSockets from Node: one answer, to the requester, with the socket's own room
    peer.publish(Body::FetchSockets {
        opts: Opts::to_rooms(vec![]),
        request_id: "req1".into(),
    });
    let m = peer
        .expect(WAIT, |m| {
            me(m) && m.message_type() == MessageType::FetchSocketsResponse
        })
        .await
        .expect("answer");
    let Body::FetchSocketsResponse {
        request_id,
        sockets,
    } = m.body
    else {
        panic!()
    };
    assert_eq!(request_id, "req1");
    assert_eq!(sockets.len(), 1);
    assert_eq!(sockets[0].id, client.sid());
    assert_eq!(
        sockets[0].rooms,
        vec![client.sid().to_owned(), "room1".to_owned()]
    );

    // broadcast with acks from Node to a room nobody is in: the count, even 0
    peer.publish(Body::Broadcast {
        packet: PacketObject::event(vec!["ask".into()]),
        request_id: Some("req2".into()),
        opts: Opts::to_rooms(vec!["nobody".into()]),
    });
    let m = peer
        .expect(WAIT, |m| {
            m.message_type() == MessageType::BroadcastClientCount
        })
        .await
        .expect("count");
    assert!(
        matches!(m.body, Body::BroadcastClientCount { ref request_id, client_count: 0 } if request_id == "req2")
    );

    // to everyone: count 1, then the client's ack (first argument only)
    peer.publish(Body::Broadcast {
        packet: PacketObject::event(vec!["ask".into(), Value::Int(5)]),
        request_id: Some("req3".into()),
        opts: Opts::to_rooms(vec![]),
    });
    let m = peer
        .expect(WAIT, |m| {
            m.message_type() == MessageType::BroadcastClientCount
        })
        .await
        .expect("count");
    assert!(matches!(
        m.body,
        Body::BroadcastClientCount {
            client_count: 1,
            ..
        }
    ));
    let m = peer
        .expect(WAIT, |m| m.message_type() == MessageType::BroadcastAck)
        .await
        .expect("ack");
    let Body::BroadcastAck { request_id, packet } = m.body else {
        panic!()
    };
    assert_eq!(request_id, "req3");
    assert_eq!(packet, switchboard_wire::map![("from", "rust")]);
    assert!(client.receives("ask", WAIT).await);

    // serverSideEmit with ack from Node: the handler's answer goes back to the requester
    server.server_side.of("/").on("hello", |mut e| async move {
        let who: String = e.arg(0).unwrap_or_default();
        let _ = e.reply(&format!("hi {who}"));
    });
    peer.publish(Body::ServerSideEmit {
        request_id: Some("req4".into()),
        packet: vec!["hello".into(), "node".into()],
    });
    let m = peer
        .expect(WAIT, |m| {
            m.message_type() == MessageType::ServerSideEmitResponse
        })
        .await
        .expect("sse answer");
    assert_eq!(
        m.body,
        Body::ServerSideEmitResponse {
            request_id: "req4".into(),
            packet: Value::from("hi node")
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_targets_rust_sockets_by_id_and_emitters_are_not_servers() {
    let (hub, server, peer, mut client) = setup().await;
    let sid = client.sid().to_owned();
    peer.publish(Body::Broadcast {
        packet: PacketObject::event(vec!["direct".into()]),
        request_id: None,
        opts: Opts::to_rooms(vec![sid.clone()]),
    });
    assert!(
        client.receives("direct", WAIT).await,
        "rooms: [sid] reaches the socket"
    );
    let mut excluded = Opts::to_rooms(vec![]);
    excluded.except.push(sid.clone());
    peer.publish(Body::Broadcast {
        packet: PacketObject::event(vec!["not-me".into()]),
        request_id: None,
        opts: excluded,
    });
    // an emitter message after it: ordering shows "not-me" did not arrive
    let emitter = MemoryPeer::join(&hub, "/", "emitter").await;
    emitter.publish(Body::Broadcast {
        packet: PacketObject::event(vec!["from-emitter".into()]),
        request_id: None,
        opts: Opts::to_rooms(vec![]),
    });
    let e = client.event(WAIT).await.expect("event");
    assert_eq!(e.name, "from-emitter", "except: [sid] excluded the socket");
    assert_eq!(
        server.server_count().await,
        2,
        "the emitter is not a server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_node_is_dead_after_the_heartbeat_timeout() {
    let (_hub, server, peer, _client) = setup().await;
    peer.vanish();
    wait_count(&server, 1, None).await;
    // a request now expects nobody and returns at once
    let sockets = server.io.fetch_sockets().await.expect("fetch");
    assert_eq!(sockets.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adapter_close_removes_a_node_at_once() {
    // a heartbeat timeout far beyond the wait: only ADAPTER_CLOSE can remove the node in time
    let hub = MemoryHub::new();
    let server = start(
        hub.transport(),
        config().heartbeat_timeout(Duration::from_secs(60)),
    )
    .await;
    let mut peer = MemoryPeer::join(&hub, "/", NODE_UID).await;
    peer.publish(Body::InitialHeartbeat);
    peer.expect(WAIT, |m| m.message_type() == MessageType::Heartbeat)
        .await
        .expect("heartbeat");
    wait_count(&server, 2, None).await;
    peer.publish(Body::AdapterClose);
    wait_count(&server, 1, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_dying_mid_request_ends_the_wait() {
    let (_hub, server, mut peer, _client) =
        setup_with(config().requests_timeout(Duration::from_secs(30))).await;
    let io = server.io.clone();
    let fetch = tokio::spawn(async move { io.fetch_sockets().await });
    // the peer gets the request, never answers, and dies
    peer.expect(WAIT, |m| m.message_type() == MessageType::FetchSockets)
        .await
        .expect("request");
    peer.vanish();
    let sockets = tokio::time::timeout(WAIT, fetch)
        .await
        .expect("not the 30 s request timeout: the death ended it")
        .expect("join")
        .expect("complete without the dead node");
    assert_eq!(sockets.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_dying_mid_ack_stream_ends_the_stream() {
    use futures_util::StreamExt;
    let (_hub, server, mut peer, _client) =
        setup_with(config().requests_timeout(Duration::from_secs(30))).await;
    let stream = server
        .io
        .timeout(Duration::from_secs(30))
        .emit_with_ack::<_, serde_json::Value>("ask", &1)
        .await
        .expect("emit");
    let m = peer
        .expect(WAIT, |m| m.message_type() == MessageType::Broadcast)
        .await
        .expect("request");
    let Body::Broadcast {
        request_id: Some(id),
        ..
    } = m.body
    else {
        panic!("{m:?}")
    };
    // two clients counted, one ack sent, then the node dies
    peer.publish_to(
        &m.uid,
        Body::BroadcastClientCount {
            request_id: id.clone(),
            client_count: 2,
        },
    );
    peer.publish_to(
        &m.uid,
        Body::BroadcastAck {
            request_id: id,
            packet: Value::from("one"),
        },
    );
    // both are queued for the engine before the peer goes; its death is noticed a heartbeat
    // timeout later
    let collect = tokio::spawn(stream.collect::<Vec<_>>());
    peer.vanish();
    let acks = tokio::time::timeout(WAIT, collect)
        .await
        .expect("the stream ends at the death")
        .expect("join");
    let values: Vec<_> = acks.into_iter().filter_map(|(_, r)| r.ok()).collect();
    assert_eq!(
        values.len(),
        2,
        "the local client's ack and the one remote ack: {values:?}"
    );
    assert!(values.contains(&json!("one")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_acks_survive_a_broadcast_that_cannot_go_out() {
    use futures_util::StreamExt;
    // room for one pending request only, taken by a fetchSockets the peer never answers
    let (_hub, server, mut peer, _client) = setup_with(
        config()
            .requests_timeout(Duration::from_secs(30))
            .max_pending_requests(1),
    )
    .await;
    let io = server.io.clone();
    let _fetch = tokio::spawn(async move { io.fetch_sockets().await });
    peer.expect(WAIT, |m| m.message_type() == MessageType::FetchSockets)
        .await
        .expect("request");
    // the broadcast with acks cannot be registered: its local half still delivers and acks
    let stream = server
        .io
        .timeout(Duration::from_secs(5))
        .emit_with_ack::<_, serde_json::Value>("ask", &1)
        .await
        .expect("the local clients' acks, not an error");
    let acks = tokio::time::timeout(WAIT, stream.collect::<Vec<_>>())
        .await
        .expect("the stream ends with the local ack, not at its timeout");
    let values: Vec<_> = acks.into_iter().filter_map(|(_, r)| r.ok()).collect();
    assert_eq!(values, [json!({"from": "rust"})]);
}
