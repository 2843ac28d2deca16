//! The change stream under injected failures (SecantusDB's `configureFailPoint`, scoped by
//! `appName` to the receiving server's client): resumable failures, a dropped connection and a
//! non-resumable getMore error lose no message; a lost history restarts from now and is counted.

use std::time::Duration;

use mongodb::{
    Client, Collection,
    bson::{Bson, Document, doc},
};
use prometheus::Registry;
use serde_json::json;
use switchboard_adapter_core::{AdapterOptions, Metrics};
use switchboard_adapter_mongo::{MongoMetrics, MongoOptions, MongoTransport};
use switchboard_testkit::{
    TestClient, TestServer, check, converge, eventually, services::SecantusDb, start,
};

const WAIT: Duration = Duration::from_secs(15);
const MESSAGES: i64 = 30;

struct Setup {
    db: SecantusDb,
    /// The sender.
    a: TestServer<MongoTransport>,
    /// The receiver, whose client (`appName=b`) the fail points hit.
    b: TestServer<MongoTransport>,
    /// B's metrics.
    registry: Registry,
    /// A client of B's.
    cb: TestClient,
}

async fn collection(db: &SecantusDb, app: &str) -> Collection<Document> {
    Client::with_uri_str(format!("{}&appName={app}", db.url()))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .database("socketio")
        .collection("events")
}

impl Setup {
    async fn start() -> Self {
        let db = SecantusDb::start();
        let options = || {
            AdapterOptions::default()
                .heartbeat_interval(Duration::from_millis(200))
                .heartbeat_timeout(Duration::from_secs(5))
        };
        let mongo = || MongoOptions::default().max_await_time(Duration::from_millis(100));
        let a = start(
            MongoTransport::new(collection(&db, "a").await, mongo()),
            options(),
        )
        .await;
        let registry = Registry::new();
        let engine = Metrics::new(&registry, "mongo").unwrap_or_else(|e| panic!("{e}"));
        let transport = MongoMetrics::new(&registry).unwrap_or_else(|e| panic!("{e}"));
        let b = start(
            MongoTransport::new(collection(&db, "b").await, mongo().metrics(transport)),
            options().metrics(engine),
        )
        .await;
        converge(&[&a, &b], 2).await;
        let cb = TestClient::connect(b.addr, "/", json!({}), None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        Setup {
            db,
            a,
            b,
            registry,
            cb,
        }
    }

    /// `configureFailPoint` on the admin database, through a client of its own.
    async fn fail_point(&self, name: &str, mode: Bson, data: Document) {
        let client = Client::with_uri_str(self.db.url())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        client
            .database("admin")
            .run_command(doc! {"configureFailPoint": name, "mode": mode, "data": data})
            .await
            .unwrap_or_else(|e| panic!("configureFailPoint {name}: {e}"));
    }

    fn counter(&self, name: &str) -> f64 {
        self.registry
            .gather()
            .iter()
            .filter(|f| f.name() == name)
            .flat_map(|f| f.get_metric().iter())
            .map(|m| m.get_counter().get_value())
            .sum()
    }

    /// A sends `seq` 0..MESSAGES, paced over about 1.5 s so the fail point fires in the middle;
    /// B's client must get every one, in order.
    async fn nothing_is_lost(&mut self) {
        for i in 0..MESSAGES {
            self.a
                .io
                .emit("seq", &i)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut got = Vec::new();
        while got.len() < MESSAGES as usize {
            let Some(e) = self.cb.expect("seq", WAIT).await else {
                panic!("B's client got {got:?}, then nothing for {WAIT:?}")
            };
            got.push(e.args[0].as_i64().unwrap_or(-1));
        }
        assert_eq!(got, (0..MESSAGES).collect::<Vec<_>>());
        assert_eq!(self.counter("socketio_mongo_possible_loss_total"), 0.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumable_getmore_failure_loses_nothing() {
    let mut s = Setup::start().await;
    // HostUnreachable inside the change stream's getMore: labelled ResumableChangeStreamError
    s.fail_point(
        "failGetMoreAfterCursorCheckout",
        Bson::Document(doc! {"times": 2}),
        doc! {"errorCode": 6, "appName": "b"},
    )
    .await;
    s.nothing_is_lost().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_loses_nothing() {
    let mut s = Setup::start().await;
    s.fail_point(
        "failCommand",
        Bson::Document(doc! {"times": 2}),
        doc! {"failCommands": ["getMore"], "closeConnection": true, "appName": "b"},
    )
    .await;
    s.nothing_is_lost().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_resumable_getmore_error_reopens_after_the_last_event() {
    let mut s = Setup::start().await;
    // no ResumableChangeStreamError label: the driver gives up, the transport reopens the
    // stream with its resume token
    s.fail_point(
        "failCommand",
        Bson::Document(doc! {"times": 1}),
        doc! {"failCommands": ["getMore"], "errorCode": 6, "errorLabels": [], "appName": "b"},
    )
    .await;
    s.nothing_is_lost().await;
    assert!(s.counter("socketio_mongo_stream_restarts_total") >= 1.0);
    assert!(s.counter("socketio_mongo_stream_resumes_total") >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_lost_restarts_from_now_and_is_counted() {
    let mut s = Setup::start().await;
    // the getMore fails, then resuming with the token is refused: ChangeStreamHistoryLost
    s.fail_point(
        "failCommand",
        Bson::Document(doc! {"times": 2}),
        doc! {"failCommands": ["getMore", "aggregate"], "errorCode": 286, "appName": "b"},
    )
    .await;
    eventually(WAIT, async || {
        let lost = s.counter("socketio_mongo_possible_loss_total");
        check(lost == 1.0, || format!("possible-loss events: {lost}"))
    })
    .await;
    // remote delivery comes back, from now
    let mut n = 0;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        s.a.io
            .emit("probe", &n)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        if s.cb.receives("probe", Duration::from_millis(300)).await {
            break;
        }
        n += 1;
        assert!(
            tokio::time::Instant::now() < deadline,
            "no remote delivery after the history was lost"
        );
    }
    assert_eq!(s.counter("socketio_mongo_possible_loss_total"), 1.0);
    assert!(s.counter("socketio_mongo_stream_restarts_total") >= 1.0);
    // heartbeats and broadcasts kept being inserted meanwhile
    assert!(s.counter("socketio_mongo_inserts_total") >= 1.0);
    drop(s.b);
}
