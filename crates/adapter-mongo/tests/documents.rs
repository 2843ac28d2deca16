//! What lands in the collection, and what the transport does with documents it did not expect.

use std::time::Duration;

use mongodb::{
    Client, Collection,
    bson::{Bson, Document, doc},
};
use serde_json::json;
use switchboard_adapter_core::AdapterOptions;
use switchboard_adapter_mongo::{
    MongoOptions, MongoTransport, create_capped_collection, create_ttl_index,
};
use switchboard_testkit::{TestClient, TestServer, WAIT, converge, services::SecantusDb, start};

const COLLECTION: &str = "events";

fn options() -> AdapterOptions {
    AdapterOptions::default()
        .heartbeat_interval(Duration::from_millis(150))
        .heartbeat_timeout(Duration::from_millis(750))
}

async fn collection(db: &SecantusDb) -> Collection<Document> {
    Client::with_uri_str(db.url())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .database("socketio")
        .collection(COLLECTION)
}

async fn server(db: &SecantusDb, ttl: bool) -> TestServer<MongoTransport> {
    let transport = MongoTransport::new(
        collection(db).await,
        MongoOptions::default().add_created_at_field(ttl),
    );
    start(transport, options()).await
}

async fn all_documents(c: &Collection<Document>) -> Vec<Document> {
    use futures_util::TryStreamExt;
    c.find(doc! {})
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_mode_dates_every_document_and_capped_mode_none() {
    for ttl in [true, false] {
        let db = SecantusDb::start();
        let c = collection(&db).await;
        if ttl {
            create_ttl_index(&c, Duration::from_secs(3600))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        } else {
            create_capped_collection(
                &Client::with_uri_str(db.url())
                    .await
                    .unwrap_or_else(|e| panic!("{e}"))
                    .database("socketio"),
                COLLECTION,
                1_000_000,
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        }
        let a = server(&db, ttl).await;
        let b = server(&db, ttl).await;
        converge(&[&a, &b], 2).await;
        a.io.emit("hello", &1)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let docs = all_documents(&c).await;
        assert!(docs.len() >= 3, "heartbeats and a broadcast: {docs:?}");
        for d in &docs {
            assert!(matches!(d.get("type"), Some(Bson::Int32(_))), "{d}");
            let dated = matches!(d.get("createdAt"), Some(Bson::DateTime(_)));
            assert_eq!(dated, ttl, "createdAt in TTL mode only: {d}");
        }
        // no ADAPTER_CLOSE document: 13 means SESSION to Node's mongo adapter
        drop((a, b));
        let docs = all_documents(&c).await;
        assert!(!docs.iter().any(|d| d.get("type") == Some(&Bson::Int32(13))));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_and_malformed_documents_are_dropped() {
    let db = SecantusDb::start();
    let c = collection(&db).await;
    let a = server(&db, false).await;
    let registry = prometheus::Registry::new();
    let metrics = switchboard_adapter_core::Metrics::new(&registry, "mongo")
        .unwrap_or_else(|e| panic!("{e}"));
    let b = start(
        MongoTransport::new(collection(&db).await, MongoOptions::default()),
        options().metrics(metrics),
    )
    .await;
    converge(&[&a, &b], 2).await;
    let mut cb = TestClient::connect(b.addr, "/", json!({}), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut deep = doc! {"x": 1};
    for _ in 0..90 {
        deep = doc! {"x": deep};
    }
    for garbage in [
        doc! {"type": "three", "uid": "x", "nsp": "/"},
        doc! {"type": 3, "uid": "x", "nsp": "/"},
        doc! {"type": 99, "uid": "x", "nsp": "/", "data": {}},
        doc! {"type": 3, "uid": 7, "nsp": "/", "data": {"packet": 1}},
        doc! {"type": 3, "uid": "x", "nsp": "/", "data": {"packet": deep.clone(), "opts": {}}},
        doc! {"type": 3, "uid": "x", "nsp": "/elsewhere", "data": {"packet": {"type": 2, "data": ["nope"]}, "opts": {"rooms": [], "except": [], "flags": {}}}},
        doc! {"hello": "world"},
        doc! {"type": 13, "uid": "node", "nsp": "/", "data": {"sid": "s", "pid": "p", "rooms": [], "data": {}}},
    ] {
        c.insert_one(garbage)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    // still alive and delivering
    a.io.emit("after", &1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(cb.receives("after", WAIT).await);
    let nope = cb.until("after", Duration::ZERO).await;
    assert!(nope.is_none_or(|e| e.is_empty()));
    // counted by reason: six malformed, one for a namespace this server does not have; the
    // SESSION document of a Node peer is not an error
    let dropped = |reason: &str| -> f64 {
        registry
            .gather()
            .iter()
            .filter(|f| f.name() == "socketio_mongo_dropped_total")
            .flat_map(|f| f.get_metric().iter())
            .filter(|m| m.get_label().iter().any(|l| l.value() == reason))
            .map(|m| m.get_counter().get_value())
            .sum()
    };
    assert_eq!(dropped("malformed"), 6.0);
    assert_eq!(dropped("other_namespace"), 1.0);
}
