//! The mongo transport when MongoDB fails: local delivery never waits for it, requests fail with
//! a typed error instead of hanging, and remote delivery comes back when the server does.

use std::time::Duration;

use mongodb::Client;
use switchboard_adapter_core::{AdapterOptions, Liveness};
use switchboard_adapter_mongo::{MongoOptions, MongoTransport};
use switchboard_testkit::{
    TestServer, faults::survives_a_broker_restart, services::SecantusDb, start,
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
    // the in-memory server comes back empty: the change streams restart from now
    let resumed = survives_a_broker_restart(&mut db, &a, &b, Liveness::Heartbeat).await;
    eprintln!("remote delivery resumed {resumed:?} after MongoDB came back");
}
