//! The publishing connection of a single redis (the transport's own, not fred's): it
//! authenticates as the URL says, counts what redis refuses without dropping the connection,
//! and comes back when redis closes it.

use std::time::Duration;

use serde_json::json;
use switchboard_adapter_core::AdapterOptions;
use switchboard_adapter_redis::{RedisOptions, RedisTransport};
use switchboard_testkit::services::RedisServer;
use switchboard_testkit::{TestClient, TestServer, check, converge, eventually, start};

const WAIT: Duration = Duration::from_secs(20);
const PASSWORD: &str = "s3cret-Pass";

async fn server(url: &str) -> TestServer<RedisTransport> {
    let t = RedisTransport::connect(url, RedisOptions::classic())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    start(t, AdapterOptions::default()).await
}

async fn client(server: &TestServer<RedisTransport>) -> TestClient {
    TestClient::connect(server.addr, "/", json!({}), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_protected_redis() {
    let redis = RedisServer::start_with(&["--requirepass", PASSWORD]);
    let url = format!("redis://:{PASSWORD}@127.0.0.1:{}", redis.port());
    let a = server(&url).await;
    let b = server(&url).await;
    converge(&[&a, &b], 2).await;
    let mut ca = client(&a).await;
    let mut cb = client(&b).await;
    a.io.emit("from-a", &1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    b.io.emit("from-b", &2)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(cb.receives("from-a", WAIT).await, "a's broadcast reached b");
    assert!(ca.receives("from-b", WAIT).await, "b's broadcast reached a");
    assert_eq!(a.transport.publishes_dropped(), 0);

    let wrong = format!("redis://:not-{PASSWORD}@127.0.0.1:{}", redis.port());
    let refused = RedisTransport::connect(&wrong, RedisOptions::classic()).await;
    assert!(refused.is_err(), "a wrong password is refused");
}

/// A user that may not PUBLISH (an ACL): each publish is refused by redis, counted as failed,
/// and the connection stays up (the next one is refused too, not queued behind a reconnect).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_redis_refuses_is_counted() {
    let redis = RedisServer::start_with(&["--requirepass", PASSWORD]);
    redis.cli(&[
        "ACL", "SETUSER", "mute", "on", ">mute-pw", "~*", "&*", "+@all", "-publish",
    ]);
    let url = format!("redis://mute:mute-pw@127.0.0.1:{}", redis.port());
    let a = server(&url).await;
    let mut ca = client(&a).await;
    for round in 1..=2 {
        a.io.emit("muted", &round)
            .await
            .unwrap_or_else(|e| panic!("the local part goes on: {e}"));
        assert!(ca.receives("muted", WAIT).await, "local delivery");
        eventually(WAIT, async || {
            let dropped = a.transport.publishes_dropped();
            check(dropped == round, || {
                format!("{dropped} refused publishes counted, {round} expected")
            })
        })
        .await;
    }
}

/// Redis closes the publishing connection (CLIENT KILL, as a failover or a timeout would):
/// it reconnects on its own and broadcasts flow again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_publishing_connection_comes_back() {
    let redis = RedisServer::start_with(&["--requirepass", PASSWORD]);
    let url = format!("redis://:{PASSWORD}@127.0.0.1:{}", redis.port());
    let a = server(&url).await;
    let b = server(&url).await;
    converge(&[&a, &b], 2).await;
    let mut cb = client(&b).await;
    a.io.emit("before", &())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(cb.receives("before", WAIT).await);

    let list = redis.cli(&["CLIENT", "LIST"]);
    let publishers: Vec<&str> = list
        .lines()
        .filter(|l| l.contains("name=switchboard-publish"))
        .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")))
        .collect();
    assert_eq!(
        publishers.len(),
        2,
        "one publishing connection per server:\n{list}"
    );
    for id in &publishers {
        redis.cli(&["CLIENT", "KILL", "ID", id]);
    }
    let mut n = 0;
    eventually(WAIT, async || {
        n += 1;
        let _ = a.io.emit("after", &n).await;
        check(
            cb.receives("after", Duration::from_millis(200)).await,
            || "broadcasts have not resumed".into(),
        )
    })
    .await;
}
