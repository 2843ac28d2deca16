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
    // the peer subscribes the room's channel after the join, asynchronously: the check at start
    // can only see it once redis has it (seen under load: the transport started first)
    switchboard_testkit::eventually(Duration::from_secs(10), async || {
        let out = redis.cli(&["PUBSUB", "SHARDCHANNELS", "socket.io#/#room1#"]);
        switchboard_testkit::check(!out.trim().is_empty(), || {
            "the dynamic peer has not subscribed the room's channel yet".into()
        })
    })
    .await;
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

/// A dynamic-mode Node peer the start-time check cannot see: idle when the Rust server started
/// (`node_first`), or started after it. Once one of its sockets joins a room, the periodic check
/// finds its room channel: logged as an error, counted, and reported by `incompatible_peer()`.
/// What it guards against is shown first: a single-room broadcast from that peer does not reach
/// the Rust server's client in the room.
async fn dynamic_peer_seen_later(node_first: bool) {
    let redis = RedisServer::start();
    let node_before = node_first.then(|| NodeServer::start(&redis.url(), "sharded-dynamic"));
    #[cfg(feature = "prometheus")]
    let registry = prometheus::Registry::new();
    #[allow(unused_mut)] // mutated with the prometheus feature only
    let mut config = AdapterOptions::default().requests_timeout(Duration::from_secs(3));
    #[cfg(feature = "prometheus")]
    {
        config = config.metrics(
            switchboard_adapter_core::Metrics::new(&registry, "redis")
                .unwrap_or_else(|e| panic!("{e}")),
        );
    }
    let transport = RedisTransport::connect(
        &redis.url(),
        RedisOptions::sharded().peer_check_interval(Duration::from_millis(200)),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let rust = start(transport, config).await;
    let node = node_before.unwrap_or_else(|| NodeServer::start(&redis.url(), "sharded-dynamic"));
    assert_eq!(rust.transport.incompatible_peer(), None);
    let mut cluster = NodeCluster::start(node, rust).await;
    let mut rc = cluster.client(false, &["room1"], "rust").await;
    // the Node peer subscribes room1's channel once one of its sockets is in the room
    let _nc = cluster.client(true, &["room1"], "node").await;
    cluster
        .cmd(json!({"op": "emit", "event": "lost", "rooms": ["room1"]}))
        .await;
    cluster.cmd(json!({"op": "emit", "event": "fence"})).await;
    let before = rc
        .until("fence", Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("fence"));
    assert!(
        before.iter().all(|e| e.name != "lost"),
        "a dynamic peer's room broadcast reached the Rust server: the check guards nothing"
    );
    switchboard_testkit::eventually(Duration::from_secs(10), async || {
        let seen = cluster.rust.transport.incompatible_peer();
        switchboard_testkit::check(seen.as_deref() == Some("socket.io#/#room1#"), || {
            format!("incompatible_peer() = {seen:?}")
        })
    })
    .await;
    #[cfg(feature = "prometheus")]
    {
        let counted: f64 = registry
            .gather()
            .iter()
            .filter(|f| f.name() == "socketio_redis_dropped_total")
            .flat_map(|f| f.get_metric().iter())
            .filter(|m| m.get_label().iter().any(|l| l.value() == "dynamic_peer"))
            .map(|m| m.get_counter().get_value())
            .sum();
        assert!(
            counted >= 1.0,
            "dropped{{reason=\"dynamic_peer\"}} = {counted}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_dynamic_peer_is_caught_once_it_has_a_room() {
    dynamic_peer_seen_later(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamic_peer_started_later_is_caught() {
    dynamic_peer_seen_later(false).await;
}
