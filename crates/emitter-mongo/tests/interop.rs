//! This emitter reaches the clients of a Node server (socket.io 4.8 + @socket.io/mongo-adapter
//! 0.4, from `xtask/interop`) and of a Switchboard server on the same collection, and Node's
//! `io.on(...)` gets its server-side events.

use std::time::Duration;

use mongodb::Client;
use serde_json::json;
use switchboard_adapter_core::AdapterOptions;
use switchboard_adapter_mongo::{MongoOptions, MongoTransport, create_capped_collection};
use switchboard_emitter_mongo::Emitter;
use switchboard_testkit::services::{NodeServer, SecantusDb};
use switchboard_testkit::{TestClient, start};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emitter_reaches_node_and_rust_servers() {
    let db = SecantusDb::start();
    let database = Client::with_uri_str(db.url())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .database("socketio");
    let collection = create_capped_collection(&database, "socket.io-adapter-events", 1_000_000)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let node = NodeServer::start(&db.url(), "mongo");
    let rust = start(
        MongoTransport::new(collection.clone(), MongoOptions::default()),
        AdapterOptions::default(),
    )
    .await;
    let mut nc = TestClient::connect(node.addr(), "/", json!({"rooms": ["room1"]}), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut rc = TestClient::connect(rust.addr, "/", json!({"rooms": ["room1"]}), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut control = TestClient::connect(node.addr(), "/control", json!({}), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let emitter = Emitter::new(collection);
    emitter
        .to("room1")
        .emit("from-rust-emitter", &(bytes::Bytes::from_static(&[8]), 2))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for c in [&mut nc, &mut rc] {
        let e = c
            .expect("from-rust-emitter", WAIT)
            .await
            .unwrap_or_else(|| panic!("the Rust emitter did not reach a client"));
        assert_eq!(e.binaries, vec![vec![8]]);
        assert_eq!(e.args[1], json!(2));
    }
    // join then emit to the new room: one collection, so Node applies them in order
    emitter
        .in_("room1")
        .sockets_join(&["joined-by-emitter"])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    emitter
        .to("joined-by-emitter")
        .emit("after-join", &())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(nc.receives("after-join", WAIT).await);
    // serverSideEmit reaches the Node server's io.on("note")
    emitter
        .server_side_emit("note", &"hello node")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let noted = control
        .expect("noted", WAIT)
        .await
        .unwrap_or_else(|| panic!("Node did not get the server-side event"));
    assert_eq!(noted.args, vec![json!("hello node")]);
    emitter
        .in_("room1")
        .disconnect_sockets(true)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(nc.disconnected(WAIT).await && rc.disconnected(WAIT).await);
}
