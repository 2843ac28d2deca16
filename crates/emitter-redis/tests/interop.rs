//! Emitters across languages: Node's @socket.io/redis-emitter reaches clients of a Switchboard
//! server, and this emitter reaches clients of a Node server, in one classic redis cluster.

use std::time::Duration;

use fred::prelude::{Builder, ClientLike, Config as RedisConfig};
use serde_json::json;
use switchboard_adapter_core::AdapterOptions;
use switchboard_adapter_redis::{RedisOptions, RedisTransport};
use switchboard_emitter_redis::Emitter;
use switchboard_testkit::services::{NodeServer, RedisServer};
use switchboard_testkit::{TestClient, start};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emitters_reach_both_kinds_of_servers() {
    let redis = RedisServer::start();
    let node = NodeServer::start(&redis.url(), "classic");
    let transport = RedisTransport::connect(&redis.url(), RedisOptions::classic())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let rust = start(transport, AdapterOptions::default()).await;
    let mut rc = TestClient::connect(rust.addr, "/", json!({"rooms": ["room1"]}), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut nc = TestClient::connect(node.addr(), "/", json!({"rooms": ["room1"]}), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut control = TestClient::connect(node.addr(), "/control", json!({}), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // Node's emitter -> the Rust server's client
    let ack = control
        .emit_with_ack("cmd", vec![json!({"op": "emitter", "event": "from-node-emitter", "rooms": ["room1"], "args": [{"bin": [9]}, "x"]})], WAIT)
        .await;
    assert_eq!(ack, Some(vec![json!("ok")]));
    let e = rc
        .expect("from-node-emitter", WAIT)
        .await
        .unwrap_or_else(|| panic!("Node's emitter did not reach the Rust client"));
    assert_eq!(e.binaries, vec![vec![9]]);
    assert_eq!(e.args[1], json!("x"));

    // this emitter -> the Node server's client (and the Rust one)
    let client =
        Builder::from_config(RedisConfig::from_url(&redis.url()).unwrap_or_else(|e| panic!("{e}")))
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
    client.init().await.unwrap_or_else(|e| panic!("{e}"));
    let emitter = Emitter::new(client);
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
    // serverSideEmit from this emitter reaches the Node server's io.on("note")
    emitter
        .server_side_emit("note", &"hello node")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let noted = control
        .expect("noted", WAIT)
        .await
        .unwrap_or_else(|| panic!("Node did not get the server-side event"));
    assert_eq!(noted.args, vec![json!("hello node")]);
}
