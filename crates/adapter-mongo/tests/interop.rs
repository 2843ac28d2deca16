//! A Node server (socket.io 4.8 + @socket.io/mongo-adapter 0.4, from `xtask/interop`) and a
//! Switchboard server on one capped collection of a SecantusDB, clients on both: every operation
//! in both directions.

use std::time::Duration;

use mongodb::Client;
use serde_json::json;
use switchboard_adapter_core::AdapterOptions;
use switchboard_adapter_mongo::{MongoOptions, MongoTransport, create_capped_collection};
use switchboard_testkit::{
    interop::{NodeCluster, every_operation_both_ways},
    services::{NodeServer, SecantusDb},
    start,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_with_a_node_server() {
    let db = SecantusDb::start();
    let database = Client::with_uri_str(db.url())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .database("socketio");
    // the collection Node's server uses (it creates it too, tolerating ours)
    let collection = create_capped_collection(&database, "socket.io-adapter-events", 1_000_000)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let node = NodeServer::start(&db.url(), "mongo");
    let rust = start(
        MongoTransport::new(collection, MongoOptions::default()),
        AdapterOptions::default().requests_timeout(Duration::from_secs(3)),
    )
    .await;
    let mut cluster = NodeCluster::start(node, rust).await;

    // Node's mongo adapter has no allRooms across servers
    every_operation_both_ways(&mut cluster, false).await;

    // @socket.io/mongo-emitter 0.2 (driven by the Node server) reaches a Rust server's client
    let mut rc = cluster.client(false, &["room1"], "rust-e").await;
    cluster
        .cmd(json!({"op": "emitter", "event": "from-node-emitter", "rooms": ["room1"], "args": [{"bin": [9]}, "x"]}))
        .await;
    let e = rc
        .expect("from-node-emitter", Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("Node's mongo emitter did not reach the Rust client"));
    assert_eq!(e.binaries, vec![vec![9]]);
    assert_eq!(e.args[1], json!("x"));
}
