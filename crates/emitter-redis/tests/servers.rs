//! The emitter reaches Switchboard servers (classic redis mode) through a real redis.

use std::time::Duration;

use fred::prelude::{Builder, ClientLike, Config as RedisConfig};
use serde_json::json;
use switchboard_adapter_core::AdapterOptions;
use switchboard_adapter_redis::{RedisOptions, RedisTransport};
use switchboard_emitter_redis::Emitter;
use switchboard_testkit::services::RedisServer;
use switchboard_testkit::{TestClient, TestServer, check, eventually, start};

const WAIT: Duration = Duration::from_secs(10);

async fn server(redis: &RedisServer) -> TestServer<RedisTransport> {
    let t = RedisTransport::connect(&redis.url(), RedisOptions::classic())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    start(t, AdapterOptions::default()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emitter_reaches_every_server() {
    let redis = RedisServer::start();
    let (a, b) = (server(&redis).await, server(&redis).await);
    let client =
        Builder::from_config(RedisConfig::from_url(&redis.url()).unwrap_or_else(|e| panic!("{e}")))
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
    client.init().await.unwrap_or_else(|e| panic!("{e}"));
    let emitter = Emitter::new(client);

    let mut ca = TestClient::connect(a.addr, "/", json!({"rooms": ["r1"]}), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut cb = TestClient::connect(b.addr, "/", json!({"rooms": ["r1"]}), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut other = TestClient::connect(b.addr, "/", json!({}), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut admin = TestClient::connect(a.addr, "/admin", json!({}), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    emitter
        .to("r1")
        .emit("news", &("hi", bytes::Bytes::from_static(&[7])))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for c in [&mut ca, &mut cb] {
        let e = c
            .expect("news", WAIT)
            .await
            .unwrap_or_else(|| panic!("news"));
        assert_eq!(e.args[0], json!("hi"));
        assert_eq!(e.binaries, vec![vec![7]]);
    }
    emitter
        .of("admin")
        .emit("adm", &1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(admin.receives("adm", WAIT).await);
    // then everyone: `other` must get this one and not "news" before it
    emitter
        .emit("all", &())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let first = other.event(WAIT).await.unwrap_or_else(|| panic!("all"));
    assert_eq!(first.name, "all");

    emitter
        .in_("r1")
        .sockets_join(&["joined"])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // ordering: the join request and the next broadcast travel on different channels, so wait
    // until the rooms show the join
    eventually(WAIT, async || {
        let rooms = a.io.rooms().await.unwrap_or_default();
        check(rooms.iter().any(|r| r == "joined"), || {
            format!("the join is not applied: rooms {rooms:?}")
        })
    })
    .await;
    emitter
        .to("joined")
        .emit("j", &())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(ca.receives("j", WAIT).await && cb.receives("j", WAIT).await);

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    b.server_side.of("/").on("refresh", move |e| {
        let tx = tx.clone();
        async move {
            let _ = tx.send((e.from().to_owned(), e.arg::<String>(0).unwrap_or_default()));
        }
    });
    emitter
        .server_side_emit("refresh", &"now")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let got = tokio::time::timeout(WAIT, rx.recv()).await.ok().flatten();
    assert_eq!(got, Some(("emitter".to_owned(), "now".to_owned())));

    emitter
        .in_("r1")
        .disconnect_sockets(false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(ca.disconnected(WAIT).await && cb.disconnected(WAIT).await);
}
