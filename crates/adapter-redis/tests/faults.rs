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

/// Redis down under a server publishing 64 KiB events: publishes are refused at once (Node's
/// adapter then reaches this server's clients only), nothing piles up in the queue, local
/// delivery goes on, and nothing sent during the outage reaches the other server after redis is
/// back (fred would otherwise flush its reconnection buffer: late, and all at once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_drops_publishes_at_once_and_delivers_nothing_late() {
    use fred::prelude::ClientLike;
    let mut redis = RedisServer::start();
    let a = server(&redis, RedisOptions::classic()).await;
    let b = server(&redis, RedisOptions::classic()).await;
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

    redis.stop();
    switchboard_testkit::eventually(WAIT, async || {
        switchboard_testkit::check(!a.transport.client().is_connected(), || {
            "the client has not seen redis go".into()
        })
    })
    .await;
    let pad = "x".repeat(64 * 1024);
    let mut refused = 0;
    for i in 0..200 {
        if a.io.emit("outage", &(i, &pad)).await.is_err() {
            refused += 1;
        }
    }
    assert_eq!(refused, 200, "every publish is refused while redis is down");
    assert_eq!(a.transport.queued_bytes(), 0, "nothing waits for redis");
    // local delivery goes on
    a.io.local()
        .emit("local-marker", &())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let got = ca
        .until("local-marker", WAIT)
        .await
        .unwrap_or_else(|| panic!("local delivery stopped"));
    assert_eq!(
        got.iter().filter(|e| e.name == "outage").count(),
        200,
        "the local clients got every event"
    );

    redis.restart();
    // everything b receives from now on: no event of the outage may be among it
    let mut received = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut resumed = false;
    let mut n = 0;
    while !resumed && tokio::time::Instant::now() < deadline {
        n += 1;
        let _ = a.io.emit("after", &n).await;
        let until = tokio::time::Instant::now() + Duration::from_millis(200);
        while let Some(e) = cb
            .event(until.saturating_duration_since(tokio::time::Instant::now()))
            .await
        {
            resumed |= e.name == "after";
            received.push(e);
        }
    }
    assert!(resumed, "broadcasts did not resume after redis came back");
    a.io.emit("end", &())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    received.extend(
        cb.until("end", WAIT)
            .await
            .unwrap_or_else(|| panic!("no end marker")),
    );
    let late = received.iter().filter(|e| e.name == "outage").count();
    assert_eq!(
        late, 0,
        "events published while redis was down arrived after it came back"
    );
}

/// Redis alive but not answering (stopped with SIGSTOP: the connection stays up, publishes wait
/// for replies): the publish queue is bounded by bytes, not only by count, and what waited past
/// `max_publish_age` is dropped when redis answers again, not delivered late.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_redis_bounds_the_queue_by_bytes() {
    let redis = RedisServer::start();
    let options = RedisOptions::classic()
        .queue_bytes(1024 * 1024)
        .max_publish_age(Duration::from_millis(500));
    let a = server(&redis, options.clone()).await;
    let b = server(&redis, options).await;
    converge(&[&a, &b], 2).await;
    let mut cb = TestClient::connect(b.addr, "/", json!({}), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let pid = redis.pid().unwrap_or_else(|| panic!("redis runs"));
    let signal = |sig: &str| {
        let status = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap_or_else(|e| panic!("kill: {e}"));
        assert!(status.success());
    };
    signal("-STOP");
    let pad = "x".repeat(64 * 1024);
    let mut refused = 0;
    let mut peak = 0;
    for i in 0..400 {
        if a.io.emit("stalled", &(i, &pad)).await.is_err() {
            refused += 1;
        }
        peak = peak.max(a.transport.queued_bytes());
    }
    // the writer holds one batch in flight (at most 256 messages) besides the queue
    eprintln!(
        "redis stalled: {refused} of 400 × 64 KiB publishes refused, queue peaked at {peak} bytes"
    );
    assert!(refused > 0, "the byte bound refused publishes");
    assert!(
        peak <= 1024 * 1024 + 70 * 1024,
        "queued bytes over the bound: {peak}"
    );
    // the queue waited well past max_publish_age: once redis answers, those are dropped
    tokio::time::sleep(Duration::from_secs(1)).await;
    signal("-CONT");
    a.io.emit("fresh", &1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let before = cb
        .until("fresh", WAIT)
        .await
        .unwrap_or_else(|| panic!("delivery resumed"));
    let late = before.iter().filter(|e| e.name == "stalled").count();
    eprintln!("{late} stalled events reached the other server after redis answered again");
    assert!(
        late <= 256,
        "only the batch already sent to redis may arrive: {late}"
    );
}

/// A transport over fred clients given to `RedisTransport::new` (fred subscribes).
async fn fred_server(redis: &RedisServer, options: RedisOptions) -> TestServer<RedisTransport> {
    use fred::prelude::{Builder, ClientLike, Config};
    let config = Config::from_url(&redis.url()).unwrap_or_else(|e| panic!("{e}"));
    let mut builder = Builder::from_config(config);
    let client = builder.build().unwrap_or_else(|e| panic!("{e}"));
    builder.with_performance_config(|p| p.broadcast_channel_capacity = 16_384);
    let subscriber = builder
        .build_subscriber_client()
        .unwrap_or_else(|e| panic!("{e}"));
    client.init().await.unwrap_or_else(|e| panic!("{e}"));
    subscriber.init().await.unwrap_or_else(|e| panic!("{e}"));
    start(
        RedisTransport::new(client, subscriber, options),
        AdapterOptions::default().requests_timeout(Duration::from_secs(2)),
    )
    .await
}

/// fred subscribing (`RedisTransport::new`), a server that handles received messages slower
/// than redis sends them (its dispatcher paused): what fred receives is held up to
/// `receive_queue_bytes` and the rest dropped and counted, not kept; once the dispatcher runs
/// again, what was held is delivered and delivery goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_receiver_bounds_its_backlog_by_bytes() {
    use switchboard_testkit::resources::rss_kib;
    const BOUND: usize = 1024 * 1024;
    const SENT: usize = 400;
    let redis = RedisServer::start();
    let a = fred_server(&redis, RedisOptions::classic()).await;
    let b = fred_server(&redis, RedisOptions::classic().receive_queue_bytes(BOUND)).await;
    converge(&[&a, &b], 2).await;
    let mut cb = TestClient::connect(b.addr, "/", json!({}), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    b.transport.pause_dispatch_for_tests(true);
    let rss_before = rss_kib();
    let pad = "x".repeat(64 * 1024);
    for i in 0..SENT {
        a.io.emit("burst", &(i, &pad))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    // every message reached b: held (within the bound) or dropped
    let held_max = BOUND / (64 * 1024) + 1;
    let mut peak = 0;
    switchboard_testkit::eventually(WAIT, async || {
        peak = peak.max(b.transport.received_bytes());
        let dropped = b.transport.received_dropped();
        switchboard_testkit::check(dropped as usize >= SENT - held_max, || {
            format!("{dropped} of {SENT} dropped so far")
        })
    })
    .await;
    peak = peak.max(b.transport.received_bytes());
    let dropped = b.transport.received_dropped() as usize;
    eprintln!(
        "dispatcher paused, {SENT} × 64 KiB received: {dropped} dropped, backlog peaked at \
         {peak} bytes, RSS +{} KiB",
        rss_kib().saturating_sub(rss_before)
    );
    assert!(
        peak <= BOUND + 70 * 1024,
        "received backlog over the bound: {peak} bytes"
    );
    b.transport.pause_dispatch_for_tests(false);
    a.io.emit("after", &1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let before = cb
        .until("after", WAIT)
        .await
        .unwrap_or_else(|| panic!("delivery resumed"));
    let held: Vec<_> = before
        .iter()
        .filter(|e| e.name == "burst")
        .map(|e| e.args[0].clone())
        .collect();
    // the last of the burst may have come in after the pause ended
    let dropped = b.transport.received_dropped() as usize;
    assert_eq!(
        held.len(),
        SENT - dropped,
        "what was held is delivered: {held:?}"
    );
    assert_eq!(b.transport.received_bytes(), 0);
}

/// The transport's own subscribing connection (a single redis), a server that reads slower than
/// redis sends (its reading paused): nothing piles up in the process. What it has not read waits
/// in redis until redis's `client-output-buffer-limit pubsub` (1 MiB here) closes the
/// connection; the server reconnects, resubscribes, and delivery goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_receiver_leaves_the_backlog_to_redis() {
    use switchboard_testkit::resources::rss_kib;
    const SENT: usize = 400;
    let redis = RedisServer::start_with(&["--client-output-buffer-limit", "pubsub 1mb 0 0"]);
    let a = server(&redis, RedisOptions::classic()).await;
    let b = server(&redis, RedisOptions::classic()).await;
    converge(&[&a, &b], 2).await;
    let mut cb = TestClient::connect(b.addr, "/", json!({}), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    b.transport.pause_dispatch_for_tests(true);
    let rss_before = rss_kib();
    let pad = "x".repeat(64 * 1024);
    let mut held = 0;
    for i in 0..SENT {
        a.io.emit("burst", &(i, &pad))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        held = held.max(b.transport.received_bytes());
    }
    // redis closes b's subscribing connection once 1 MiB waits for it (a's stays)
    switchboard_testkit::eventually(WAIT, async || {
        let subscribers = redis
            .cli(&["client", "list"])
            .lines()
            .filter(|l| l.contains("name=switchboard-subscribe"))
            .count();
        switchboard_testkit::check(subscribers == 1, || {
            format!("{subscribers} subscribing connections: redis has not closed b's")
        })
    })
    .await;
    held = held.max(b.transport.received_bytes());
    // the whole test process (both servers, other tests): for the record only
    let grown = rss_kib().saturating_sub(rss_before);
    eprintln!(
        "reading paused, {SENT} x 64 KiB published: b held at most {held} bytes read and not \
         handled, process RSS +{grown} KiB"
    );
    b.transport.pause_dispatch_for_tests(false);
    let mut n = 0;
    let mut got = Vec::new();
    switchboard_testkit::eventually(WAIT, async || {
        n += 1;
        let _ = a.io.emit("after", &n).await;
        let until = tokio::time::Instant::now() + Duration::from_millis(200);
        let mut resumed = false;
        while let Some(e) = cb
            .event(until.saturating_duration_since(tokio::time::Instant::now()))
            .await
        {
            resumed |= e.name == "after";
            got.push(e);
        }
        switchboard_testkit::check(resumed, || "delivery has not resumed".into())
    })
    .await;
    let bursts = got.iter().filter(|e| e.name == "burst").count();
    eprintln!("{bursts} of {SENT} reached b's client (the rest were dropped by redis)");
    assert!(bursts < SENT, "redis dropped what b did not read");
    assert!(
        held <= 256 * 1024,
        "b held {held} bytes it had not handled (a read is at most a message and a buffer)"
    );
}

/// A server starting before its redis: `connect` fails at once, `connect_with_retry` keeps trying
/// for as long as it is told to, and succeeds once redis is up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_with_retry_waits_for_a_late_redis() {
    use std::time::Instant;
    let mut redis = RedisServer::start();
    let url = redis.url();
    redis.stop();
    assert!(
        RedisTransport::connect(&url, RedisOptions::classic())
            .await
            .is_err(),
        "redis is down: connect fails"
    );
    let started = Instant::now();
    let gave_up = RedisTransport::connect_with_retry(
        &url,
        RedisOptions::classic(),
        Duration::from_millis(700),
    )
    .await;
    let waited = started.elapsed();
    assert!(gave_up.is_err());
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(8),
        "retried for its wait, then gave up: {waited:?}"
    );
    let url2 = url.clone();
    let waiting = tokio::spawn(async move {
        RedisTransport::connect_with_retry(&url2, RedisOptions::classic(), Duration::from_secs(20))
            .await
    });
    // (kept until the end of the test: dropping it stops the server)
    let _redis = tokio::task::spawn_blocking(move || {
        redis.restart();
        redis
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let transport = tokio::time::timeout(WAIT, waiting)
        .await
        .unwrap_or_else(|_| panic!("connect_with_retry did not return"))
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("connect_with_retry: {e}"));
    assert!(fred::prelude::ClientLike::is_connected(transport.client()));
}
