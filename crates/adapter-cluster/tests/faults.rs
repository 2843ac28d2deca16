//! The relay and the workers under faults and bad input: large binary payloads, garbage and
//! oversized frames, a connection that is not a worker, a worker that stops reading, the relay
//! restarted mid-run, the socket file's permissions and a second relay on the same path.

use std::{path::PathBuf, time::Duration};

use prometheus::Registry;
use serde_json::json;
use switchboard_adapter_cluster::{
    ClusterOptions, ClusterTransport, Relay, RelayError, RelayMetrics, RelayOptions,
};
use switchboard_testkit::{
    TestClient, TestServer, check, converge, eventually, start, test_options,
};
use tokio::{io::AsyncWriteExt, net::UnixStream};

const WAIT: Duration = Duration::from_secs(10);

fn socket_path() -> PathBuf {
    switchboard_testkit::socket_path("sb-cluster-f")
}

async fn relay(path: &PathBuf, registry: &Registry) -> Relay {
    let metrics = RelayMetrics::new(registry).unwrap_or_else(|e| panic!("{e}"));
    Relay::bind(path, RelayOptions::default().metrics(metrics))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn worker(path: &PathBuf) -> TestServer<ClusterTransport> {
    let t = ClusterTransport::connect(path, ClusterOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    start(t, test_options()).await
}

async fn client(s: &TestServer<ClusterTransport>) -> TestClient {
    TestClient::connect(s.addr, "/", json!({}), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

fn events(registry: &Registry, event: &str) -> f64 {
    registry
        .gather()
        .iter()
        .filter(|f| f.name() == "socketio_cluster_relay_frames_total")
        .flat_map(|f| f.get_metric().iter())
        .filter(|m| m.get_label().iter().any(|l| l.value() == event))
        .map(|m| m.get_counter().get_value())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_binary_payloads_cross_intact() {
    let path = socket_path();
    let registry = Registry::new();
    let _relay = relay(&path, &registry).await;
    let (a, b) = (worker(&path).await, worker(&path).await);
    converge(&[&a, &b], 2).await;
    let mut cb = client(&b).await;
    for size in [1 << 20, 5 << 20] {
        let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        a.io.emit("big", &(bytes::Bytes::from(payload.clone()),))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let e = cb
            .expect("big", WAIT)
            .await
            .unwrap_or_else(|| panic!("{size} bytes did not arrive"));
        assert_eq!(e.binaries, vec![payload]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_connections_are_closed_and_counted() {
    let path = socket_path();
    let registry = Registry::new();
    let metrics = RelayMetrics::new(&registry).unwrap_or_else(|e| panic!("{e}"));
    let options = RelayOptions::default()
        .hello_timeout(Duration::from_millis(300))
        .metrics(metrics);
    let _relay = Relay::bind(&path, options)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (a, b) = (worker(&path).await, worker(&path).await);
    converge(&[&a, &b], 2).await;

    // not a worker: silence past the hello timeout, garbage, a foreign HELLO, an oversized
    // first frame
    for bytes in [
        &b""[..],
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        &b"\x00\x00\x00\x0c\x00other/1\x00uid"[..],
        &b"\xff\xff\xff\xff"[..],
    ] {
        let mut s = UnixStream::connect(&path)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let _ = s.write_all(bytes).await;
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(WAIT, tokio::io::AsyncReadExt::read(&mut s, &mut buf))
            .await
            .unwrap_or_else(|_| panic!("the relay kept {bytes:?} open"));
        assert!(matches!(n, Ok(0) | Err(_)), "closed: {n:?}");
    }
    // a worker that says HELLO, then an oversized frame, then garbage: cut off
    for tail in [&b"\x7f\xff\xff\xff"[..], &b"\x00\x00\x00\x02\x09\x09"[..]] {
        let mut s = UnixStream::connect(&path)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let hello = b"\x00\x00\x00\x1a\x00switchboard-cluster/1\x00evil";
        s.write_all(hello).await.unwrap_or_else(|e| panic!("{e}"));
        s.write_all(tail).await.unwrap_or_else(|e| panic!("{e}"));
        let mut buf = vec![0u8; 1 << 16];
        let closed = tokio::time::timeout(WAIT, async {
            loop {
                match tokio::io::AsyncReadExt::read(&mut s, &mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "the relay kept a bad worker");
    }
    assert_eq!(events(&registry, "refused"), 4.0);
    assert_eq!(events(&registry, "malformed"), 2.0);
    // the real workers never noticed
    let mut cb = client(&b).await;
    a.io.emit("still", &1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(cb.receives("still", WAIT).await);
    converge(&[&a, &b], 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_stops_reading_is_cut_off() {
    let path = socket_path();
    let registry = Registry::new();
    let metrics = RelayMetrics::new(&registry).unwrap_or_else(|e| panic!("{e}"));
    let _relay = Relay::bind(
        &path,
        RelayOptions::default().queue_capacity(64).metrics(metrics),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let (a, b) = (worker(&path).await, worker(&path).await);
    converge(&[&a, &b], 2).await;
    // a worker that says HELLO and never reads
    let mut lazy = UnixStream::connect(&path)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    lazy.write_all(b"\x00\x00\x00\x1a\x00switchboard-cluster/1\x00lazy")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut cb = client(&b).await;
    let pad = "x".repeat(16 * 1024);
    let n = 2_000;
    for i in 0..n {
        a.io.emit("n", &(i, &pad))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    a.io.emit("done", &())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // b got everything, in order
    let got = cb
        .until("done", WAIT)
        .await
        .unwrap_or_else(|| panic!("b stalled behind the lazy worker"));
    assert_eq!(got.len(), n);
    eventually(WAIT, async || {
        let cut = events(&registry, "cut_off");
        check(cut >= 1.0, || format!("cut off: {cut}"))
    })
    .await;
    drop(lazy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_restarted_mid_run() {
    let path = socket_path();
    let registry = Registry::new();
    let relay1 = relay(&path, &registry).await;
    let (a, b) = (worker(&path).await, worker(&path).await);
    converge(&[&a, &b], 2).await;
    let mut ca = client(&a).await;
    let mut cb = client(&b).await;
    relay1.close();
    // local delivery goes on without the relay; the emit itself may say that the remote part
    // failed (once the worker has seen the relay go) or not (just before): both are right
    let _ = a.io.emit("local", &1).await;
    assert!(ca.receives("local", WAIT).await);
    // the other worker is forgotten at once (no heartbeat timeout to wait for)
    assert_eq!(a.server_count().await, 1);
    let started = tokio::time::Instant::now();
    let _relay2 = relay(&path, &Registry::new()).await;
    converge(&[&a, &b], 2).await;
    eprintln!(
        "workers back together {:?} after the relay",
        started.elapsed()
    );
    a.io.emit("remote", &2)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(cb.receives("remote", WAIT).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_is_private_and_not_shared() {
    use std::os::unix::fs::PermissionsExt;
    let path = socket_path();
    let registry = Registry::new();
    let relay1 = relay(&path, &registry).await;
    let mode = std::fs::metadata(&path)
        .unwrap_or_else(|e| panic!("{e}"))
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    match Relay::bind(&path, RelayOptions::default()).await {
        Err(RelayError::InUse(p)) => assert_eq!(p, path),
        other => panic!("a second relay on a live path: {other:?}"),
    }
    drop(relay1);
    assert!(!path.exists(), "a closed relay removes its socket file");
    // a socket file left behind by a process that is gone is replaced
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap_or_else(|e| panic!("{e}")));
    assert!(path.exists());
    let relay2 = Relay::bind(&path, RelayOptions::default()).await;
    assert!(relay2.is_ok(), "{relay2:?}");
    // no relay: connect says so within its timeout
    let missing = socket_path();
    let err = ClusterTransport::connect(
        &missing,
        ClusterOptions::default().connect_timeout(Duration::from_millis(300)),
    )
    .await;
    assert!(err.is_err());
}
