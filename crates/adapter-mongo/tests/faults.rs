//! The mongo transport when MongoDB fails: local delivery never waits for it, requests fail with
//! a typed error instead of hanging, and remote delivery comes back when the server does.

use std::time::{Duration, Instant};

use mongodb::Client;
use serde_json::json;
use switchboard_adapter_core::AdapterOptions;
use switchboard_adapter_mongo::{MongoOptions, MongoTransport};
use switchboard_testkit::{
    TestClient, TestServer, WAIT, check, converge, eventually, services::SecantusDb, start,
};

async fn server(db: &SecantusDb) -> TestServer<MongoTransport> {
    let collection = Client::with_uri_str(db.url())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .database("socketio")
        .collection("events");
    start(
        MongoTransport::new(
            collection,
            MongoOptions::default().max_await_time(Duration::from_millis(100)),
        ),
        AdapterOptions::default()
            .heartbeat_interval(Duration::from_millis(150))
            .heartbeat_timeout(Duration::from_millis(750))
            .requests_timeout(Duration::from_secs(2)),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_stopped_and_restarted_mid_run() {
    let mut db = SecantusDb::start();
    let a = server(&db).await;
    let b = server(&db).await;
    converge(&[&a, &b], 2).await;
    let mut ca = TestClient::connect(a.addr, "/", json!({}), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut cb = TestClient::connect(b.addr, "/", json!({}), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    a.io.emit("before", &1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(cb.receives("before", WAIT).await);

    db.stop();
    // local delivery goes on, at once
    a.io.emit("during", &2)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        ca.receives("during", WAIT).await,
        "local delivery must not stop"
    );
    // a request ends with what it has, it does not hang
    let fetched = tokio::time::timeout(WAIT, a.io.fetch_sockets()).await;
    assert!(
        fetched.is_ok(),
        "fetchSockets returns while MongoDB is down"
    );

    db.restart();
    let back = Instant::now();
    // the change streams reopen (the in-memory server lost its history: from now) and
    // broadcasts cross again
    let mut n = 0;
    eventually(Duration::from_secs(30), async || {
        n += 1;
        let _ = a.io.emit("after", &n).await;
        let got = cb.receives("after", Duration::from_millis(200)).await;
        check(got, || {
            "broadcasts did not resume after MongoDB came back".into()
        })
    })
    .await;
    eprintln!(
        "remote delivery resumed {:?} after MongoDB came back",
        back.elapsed()
    );
    converge(&[&a, &b], 2).await;
    b.io.emit("back", &1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(ca.receives("back", WAIT).await);
}
