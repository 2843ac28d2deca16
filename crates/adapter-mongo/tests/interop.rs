//! A Node server (socket.io 4.8 + @socket.io/mongo-adapter 0.4, from `xtask/interop`) and a
//! Switchboard server on one capped collection of a SecantusDB, clients on both: every operation
//! in both directions.

use std::time::Duration;

use mongodb::{
    Client,
    bson::{Document, doc},
};
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

/// A Node server with connection state recovery keeps it with a Rust server in the cluster: its
/// client, cut off, gets on reconnection the Rust server's broadcasts it missed (Node finds them
/// in the collection by `_id`, so our documents must be what it queries), and the SESSION
/// documents Node writes are ignored by the Rust server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_connection_state_recovery_with_a_rust_server() {
    use switchboard_testkit::TestClient;
    const WAIT: Duration = Duration::from_secs(10);
    let db = SecantusDb::start();
    let database = Client::with_uri_str(db.url())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .database("socketio");
    let collection = create_capped_collection(&database, "socket.io-adapter-events", 1_000_000)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let node = NodeServer::start_with(&db.url(), "mongo", &["--csr"]);
    let rust = start(
        MongoTransport::new(collection.clone(), MongoOptions::default()),
        AdapterOptions::default(),
    )
    .await;
    let cluster = NodeCluster::start(node, rust).await;
    let addr = cluster.node.addr();

    let mut c = TestClient::connect(addr, "/", json!({"rooms": ["room1"]}), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let pid = c
        .pid()
        .unwrap_or_else(|| panic!("Node gave no pid: CSR is off"))
        .to_owned();
    let sid = c.sid().to_owned();
    cluster.rust_emit(&["room1"], "before").await;
    let before = c
        .expect("before", WAIT)
        .await
        .unwrap_or_else(|| panic!("the Rust broadcast did not reach the Node client"));
    // Node appended the document's _id as the offset
    let offset = before
        .args
        .last()
        .and_then(|o| o.as_str())
        .unwrap_or_else(|| panic!("no offset in {:?}", before.args))
        .to_owned();
    assert_eq!(offset.len(), 24, "an ObjectId: {offset}");

    // the connection is cut (no disconnect packet): Node keeps the session
    drop(c);
    mongodb_has(&collection, doc! {"type": 13, "data.pid": &pid}).await;
    cluster.rust_emit(&["room1"], "missed-1").await;
    cluster.rust_emit(&[], "missed-2").await;
    cluster.rust_emit(&["elsewhere"], "not-for-you").await;
    // our inserts are pipelined: the reconnection must not overtake them
    mongodb_has(
        &collection,
        doc! {"type": 3, "data.packet.data.0": "not-for-you"},
    )
    .await;
    // the Rust server is still fine after Node's SESSION document
    assert_eq!(cluster.rust.server_count().await, 2);

    let mut again = TestClient::connect(
        addr,
        "/",
        json!({"rooms": ["room1"], "pid": pid, "offset": offset}),
        None,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.sid(), sid, "the session was recovered");
    // Node replays what was missed before its CONNECT answer; the client queues it
    let got = again
        .until("missed-2", WAIT)
        .await
        .unwrap_or_else(|| panic!("the missed broadcasts were not replayed"));
    let names: Vec<&str> = got.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["missed-1"]);
}

/// Waits until the collection has a document matching `filter`.
async fn mongodb_has(collection: &mongodb::Collection<Document>, filter: Document) {
    use switchboard_testkit::{check, eventually};
    eventually(Duration::from_secs(10), async || {
        let n = collection
            .count_documents(filter.clone())
            .await
            .unwrap_or(0);
        check(n > 0, || format!("no document matches {filter}"))
    })
    .await;
}
