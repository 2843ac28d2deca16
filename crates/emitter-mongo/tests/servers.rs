//! The emitter reaches Switchboard servers (`switchboard-adapter-mongo`) through a real
//! MongoDB-wire server (SecantusDB), on a TTL collection: its documents carry `createdAt` too.

use std::time::Duration;

use mongodb::{
    Client, Collection,
    bson::{Document, doc},
};
use serde_json::json;
use switchboard_adapter_core::AdapterOptions;
use switchboard_adapter_mongo::{MongoOptions, MongoTransport, create_ttl_index};
use switchboard_emitter_mongo::Emitter;
use switchboard_testkit::services::SecantusDb;
use switchboard_testkit::{TestClient, TestServer, check, eventually, start};

const WAIT: Duration = Duration::from_secs(10);

async fn collection(db: &SecantusDb) -> Collection<Document> {
    Client::with_uri_str(db.url())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .database("socketio")
        .collection("socket.io-adapter-events")
}

async fn server(db: &SecantusDb) -> TestServer<MongoTransport> {
    let options = MongoOptions::default()
        .add_created_at_field(true)
        .max_await_time(Duration::from_millis(100));
    start(
        MongoTransport::new(collection(db).await, options),
        AdapterOptions::default(),
    )
    .await
}

async fn connect(server: &TestServer<MongoTransport>, nsp: &str, rooms: &[&str]) -> TestClient {
    TestClient::connect(server.addr, nsp, json!({ "rooms": rooms }), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emitter_reaches_every_server() {
    let db = SecantusDb::start();
    let events = collection(&db).await;
    create_ttl_index(&events, Duration::from_secs(3600))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (a, b) = (server(&db).await, server(&db).await);
    // each server has seen the other's heartbeat: both change streams are open, so neither misses
    // the emitter's first document (CI saw one miss it)
    switchboard_testkit::converge(&[&a, &b], 2).await;
    let emitter = Emitter::new(events.clone()).add_created_at_field(true);

    let mut ca = connect(&a, "/", &["r1"]).await;
    let mut cb = connect(&b, "/", &["r1"]).await;
    let mut other = connect(&b, "/", &[]).await;
    let mut admin = connect(&a, "/admin", &[]).await;

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
    // then everyone but r1: `other` must get this one and not "news" before it
    emitter
        .except("r1")
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
    for server in [&a, &b] {
        eventually(WAIT, async || {
            let rooms = server.io.rooms().await.unwrap_or_default();
            check(rooms.iter().any(|r| r == "joined"), || {
                format!("the join is not applied: rooms {rooms:?}")
            })
        })
        .await;
    }
    emitter
        .to("joined")
        .emit("j", &())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(ca.receives("j", WAIT).await && cb.receives("j", WAIT).await);
    emitter
        .in_("r1")
        .sockets_leave(&["joined"])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for server in [&a, &b] {
        eventually(WAIT, async || {
            let rooms = server.io.rooms().await.unwrap_or_default();
            check(!rooms.iter().any(|r| r == "joined"), || {
                format!("the leave is not applied: rooms {rooms:?}")
            })
        })
        .await;
    }

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

    // TTL mode: every emitter document is dated, or the TTL monitor would never remove it
    let undated = events
        .count_documents(doc! {"uid": "emitter", "createdAt": {"$exists": false}})
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let dated = events
        .count_documents(doc! {"uid": "emitter", "createdAt": {"$type": "date"}})
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((undated, dated), (0, 8));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_an_error() {
    let client = Client::with_uri_str("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let emitter = Emitter::new(client.database("socketio").collection("events"));
    let err = emitter.emit("x", &()).await;
    assert!(
        matches!(err, Err(switchboard_emitter_mongo::EmitterError::Mongo(_))),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_document_is_refused_before_the_insert() {
    let client = Client::with_uri_str("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let emitter = Emitter::new(client.database("socketio").collection("events"));
    let big = bytes::Bytes::from(vec![0u8; 17 * 1024 * 1024]);
    let err = emitter.emit("big", &big).await;
    assert!(
        matches!(err, Err(switchboard_emitter_mongo::EmitterError::TooLarge(n)) if n > 17 * 1024 * 1024),
        "{err:?}"
    );
}
