//! A Node server (socket.io 4.8 + @socket.io/redis-adapter 8.3, from `xtask/interop`) and a
//! Switchboard server in one redis cluster, clients on both, every operation in both directions,
//! in classic and sharded (static) mode.

use std::time::Duration;

use serde_json::json;
use switchboard_adapter_core::AdapterOptions;
use switchboard_adapter_redis::{RedisOptions, RedisTransport};
use switchboard_testkit::{
    TestClient,
    interop::{NodeCluster, every_operation_both_ways},
    services::{NodeServer, RedisServer},
    start,
};

async fn interop(mode: &str) {
    let redis = RedisServer::start();
    let node = NodeServer::start(&redis.url(), mode);
    let options = if mode == "sharded" {
        RedisOptions::sharded()
    } else {
        RedisOptions::classic()
    };
    let transport = RedisTransport::connect(&redis.url(), options)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let rust = start(
        transport,
        AdapterOptions::default().requests_timeout(Duration::from_secs(3)),
    )
    .await;
    let mut cluster = NodeCluster::start(node, rust).await;
    // Node's sharded adapter has no allRooms across servers
    every_operation_both_ways(&mut cluster, mode == "classic").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_with_a_node_server() {
    interop("classic").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_with_a_node_server() {
    interop("sharded").await;
}

/// Node's sharded adapter defaults to `dynamic` subscriptions, which a socketioxide server cannot
/// follow: a Switchboard namespace refuses to start beside such a peer, and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamic_mode_node_peer_is_refused_loudly() {
    use socketioxide::{SocketIo, adapter::Emitter, extract::SocketRef};
    use switchboard_adapter_redis::{ClusterState, RedisAdapter};
    type Adapter = RedisAdapter<Emitter>;

    let redis = RedisServer::start();
    let node = NodeServer::start(&redis.url(), "sharded-dynamic");
    // a Node client in a room: the dynamic peer subscribes the room's channel
    let _nc = TestClient::connect(node.addr(), "/", json!({"rooms": ["room1"]}), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let transport = RedisTransport::connect(&redis.url(), RedisOptions::sharded())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (_layer, io) = SocketIo::builder()
        .with_adapter::<Adapter>(ClusterState::new(transport, AdapterOptions::default()))
        .build_layer();
    let refused = io.ns("/", async |_: SocketRef<Adapter>| {}).await;
    let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains("socket.io#/#room1#") && message.contains("static"),
        "{message}"
    );
}
