//! Redis going away and coming back: local delivery never stops, requests fail instead of
//! hanging, and broadcasts flow again once redis returns (clients reconnect and resubscribe).

use std::time::Duration;

use serde_json::json;
use switchboard_adapter_core::{AdapterOptions, Liveness};
use switchboard_adapter_redis::{RedisOptions, RedisTransport};
use switchboard_testkit::services::RedisServer;
use switchboard_testkit::{
    TestClient, TestServer, converge, faults::survives_a_broker_restart, start,
};

const WAIT: Duration = Duration::from_secs(20);

async fn server(redis: &RedisServer, options: RedisOptions) -> TestServer<RedisTransport> {
    let t = RedisTransport::connect(&redis.url(), options)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    start(
        t,
        AdapterOptions::default().requests_timeout(Duration::from_secs(2)),
    )
    .await
}

async fn restart_mid_run(options: RedisOptions) {
    let mut redis = RedisServer::start();
    let a = server(&redis, options.clone()).await;
    let b = server(&redis, options).await;
    // redis counts the servers: without it a request cannot know whom to wait for, and fails
    survives_a_broker_restart(&mut redis, &a, &b, Liveness::Subscribers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_survives_a_redis_restart() {
    restart_mid_run(RedisOptions::classic()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_survives_a_redis_restart() {
    restart_mid_run(RedisOptions::sharded()).await;
}

/// Garbage and foreign payloads on every channel a server listens to: dropped without harm (and
/// counted, with the `prometheus` feature); broadcasts keep flowing.
async fn malformed_payloads(options: RedisOptions) {
    use fred::prelude::{Builder, ClientLike, Config as RedisConfig, PubsubInterface};
    let redis = RedisServer::start();
    let sharded = matches!(options.mode(), switchboard_adapter_redis::Mode::Sharded);
    #[cfg(feature = "prometheus")]
    let registry = prometheus::Registry::new();
    #[allow(unused_mut)] // mutated with the prometheus feature only
    let mut config = AdapterOptions::default();
    #[cfg(feature = "prometheus")]
    {
        config = config.metrics(
            switchboard_adapter_core::Metrics::new(&registry, "redis")
                .unwrap_or_else(|e| panic!("{e}")),
        );
    }
    let a = server(&redis, options.clone()).await;
    let t = RedisTransport::connect(&redis.url(), options)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let b = start(t, config).await;
    let mut cb = TestClient::connect(b.addr, "/", json!({}), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let raw =
        Builder::from_config(RedisConfig::from_url(&redis.url()).unwrap_or_else(|e| panic!("{e}")))
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
    raw.init().await.unwrap_or_else(|e| panic!("{e}"));
    let garbage: [&[u8]; 5] = [
        b"\xc1\xc1",
        b"{not json",
        b"\x92\x01\x02",
        b"\xdd\xff\xff\xff\xff",
        b"{\"type\":3,\"uid\":\"x\",\"nsp\":\"/\"}",
    ];
    let channels: &[&str] = if sharded {
        &["socket.io#/#"]
    } else {
        &[
            "socket.io#/#",
            "socket.io-request#/#",
            "socket.io-response#/#",
            "socket.io#/#room#",
        ]
    };
    for ch in channels {
        for g in garbage {
            let sent: Result<i64, _> = if sharded {
                raw.spublish(*ch, bytes::Bytes::from_static(g)).await
            } else {
                raw.publish(*ch, bytes::Bytes::from_static(g)).await
            };
            sent.unwrap_or_else(|e| panic!("{e}"));
        }
    }
    // still alive: a broadcast after the garbage arrives
    converge(&[&a], 2).await;
    a.io.emit("after-garbage", &1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(cb.receives("after-garbage", WAIT).await);
    #[cfg(feature = "prometheus")]
    {
        let families = registry.gather();
        let dropped: f64 = families
            .iter()
            .filter(|f| f.name() == "socketio_redis_dropped_total")
            .flat_map(|f| f.get_metric().iter())
            .map(|m| m.get_counter().get_value())
            .sum();
        assert!(
            dropped >= garbage.len() as f64,
            "malformed payloads are counted: {dropped}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_drops_malformed_payloads() {
    malformed_payloads(RedisOptions::classic()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_drops_malformed_payloads() {
    malformed_payloads(RedisOptions::sharded()).await;
}
