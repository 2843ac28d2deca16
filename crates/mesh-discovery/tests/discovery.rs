//! The discovery service over real WebSockets: rosters, departures, tokens, garbage, health and
//! shutdown.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use switchboard_mesh_discovery::{
    CLOSE_GOING_AWAY, CLOSE_UNAUTHORIZED, Discovery, DiscoveryOptions,
};
use switchboard_wire::{Limits, mesh::DiscoveryMessage};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async, tungstenite::Message};

const WAIT: Duration = Duration::from_secs(10);
type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

async fn serve(
    options: DiscoveryOptions,
) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(Discovery::new(options, None).serve(listener, async move {
        let _ = rx.await;
    }));
    (addr, tx)
}

async fn register(addr: std::net::SocketAddr, id: &str, token: Option<&str>) -> Ws {
    let (mut ws, _) = connect_async(format!("ws://{addr}/"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let m = DiscoveryMessage::Register {
        server_id: id.into(),
        address: format!("ws://{id}:4000"),
        token: token.map(str::to_owned),
    };
    ws.send(Message::Binary(m.to_msgpack().into()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    ws
}

/// The next roster, as sorted server ids.
async fn roster(ws: &mut Ws) -> Vec<String> {
    loop {
        let frame = tokio::time::timeout(WAIT, ws.next()).await.ok().flatten();
        match frame {
            Some(Ok(Message::Binary(b))) => {
                if let Ok(DiscoveryMessage::Update { servers }) =
                    DiscoveryMessage::from_msgpack(&b, &Limits::DEFAULT)
                {
                    let mut ids: Vec<String> = servers.into_iter().map(|s| s.server_id).collect();
                    ids.sort();
                    return ids;
                }
            }
            Some(Ok(_)) => {}
            other => panic!("no roster: {other:?}"),
        }
    }
}

async fn close_code(ws: &mut Ws) -> Option<u16> {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.ok().flatten() {
            Some(Ok(Message::Close(Some(frame)))) => return Some(frame.code.into()),
            Some(Ok(_)) => {}
            _ => return None,
        }
    }
}

#[tokio::test]
async fn rosters_follow_registrations_and_departures() {
    let (addr, _stop) = serve(DiscoveryOptions::default()).await;
    let mut a = register(addr, "aaaa", None).await;
    assert_eq!(
        roster(&mut a).await,
        ["aaaa"],
        "the roster includes the receiver"
    );
    let mut b = register(addr, "bbbb", None).await;
    assert_eq!(roster(&mut b).await, ["aaaa", "bbbb"]);
    assert_eq!(roster(&mut a).await, ["aaaa", "bbbb"]);
    // garbage is ignored, the connection stays
    a.send(Message::Binary(vec![0xc1, 0x00].into()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    drop(b);
    assert_eq!(roster(&mut a).await, ["aaaa"], "a departure is broadcast");
}

#[tokio::test]
async fn a_wrong_token_is_refused() {
    let (addr, _stop) = serve(DiscoveryOptions {
        auth_token: Some("s3cret".into()),
        ..DiscoveryOptions::default()
    })
    .await;
    let mut bad = register(addr, "bad", Some("nope")).await;
    assert_eq!(close_code(&mut bad).await, Some(CLOSE_UNAUTHORIZED));
    let mut missing = register(addr, "none", None).await;
    assert_eq!(close_code(&mut missing).await, Some(CLOSE_UNAUTHORIZED));
    let mut good = register(addr, "good", Some("s3cret")).await;
    assert_eq!(roster(&mut good).await, ["good"]);
}

#[tokio::test]
async fn health_and_shutdown() {
    let (addr, stop) = serve(DiscoveryOptions::default()).await;
    let mut tcp = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut body = String::new();
    let _ = tcp.read_to_string(&mut body).await;
    assert!(
        body.starts_with("HTTP/1.1 200") && body.ends_with("ok"),
        "{body}"
    );

    let mut a = register(addr, "aaaa", None).await;
    assert_eq!(roster(&mut a).await, ["aaaa"]);
    let _ = stop.send(());
    assert_eq!(close_code(&mut a).await, Some(CLOSE_GOING_AWAY));
}

#[tokio::test]
async fn a_pod_that_stops_answering_pings_is_dropped() {
    let (addr, _stop) = serve(DiscoveryOptions {
        ping_interval: Duration::from_millis(200),
        ..DiscoveryOptions::default()
    })
    .await;
    let mut watcher = register(addr, "aaaa", None).await;
    assert_eq!(roster(&mut watcher).await, ["aaaa"]);
    // registers, then never reads again: it never answers a ping
    let mut silent = register(addr, "bbbb", None).await;
    assert_eq!(roster(&mut silent).await, ["aaaa", "bbbb"]);
    // the watcher keeps reading (and answering pings) and sees it join, then go
    assert_eq!(roster(&mut watcher).await, ["aaaa", "bbbb"]);
    assert_eq!(
        roster(&mut watcher).await,
        ["aaaa"],
        "the silent pod was terminated after a missed pong"
    );
    drop(silent);
}

/// Pods registering at the same moment: every pod sees rosters that only grow, so its last
/// update is the whole cluster (a stale roster arriving last would make it drop a peer for good).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_registrations_reach_every_pod_in_order() {
    const PODS: usize = 32;
    for _ in 0..20 {
        let (addr, _stop) = serve(DiscoveryOptions::default()).await;
        let pods = (0..PODS).map(|i| {
            tokio::spawn(async move {
                let mut ws = register(addr, &format!("pod-{i:02}"), None).await;
                let mut sizes = Vec::new();
                while sizes.last() != Some(&PODS) {
                    sizes.push(roster(&mut ws).await.len());
                }
                sizes
            })
        });
        for pod in futures_util::future::join_all(pods).await {
            let sizes = pod.unwrap_or_else(|e| panic!("{e}"));
            assert!(
                sizes.windows(2).all(|w| w[0] <= w[1]),
                "a pod saw the roster shrink while pods only registered: {sizes:?}"
            );
        }
    }
}

/// The binary as users run it: a port clash names the port and the option, the two ports may not
/// be the same, `/metrics` says Prometheus' text format version, and logs written to a pipe carry
/// no colour codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_names_its_ports_and_speaks_prometheus_text() {
    use std::process::{Command, Stdio};
    let bin = env!("CARGO_BIN_EXE_mesh-discovery");
    let run = |args: &[&str]| {
        Command::new(bin)
            .args(args)
            .env("RUST_LOG", "info")
            .env_remove("PORT")
            .env_remove("METRICS_PORT")
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    // a taken port
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let port = taken
        .local_addr()
        .unwrap_or_else(|e| panic!("{e}"))
        .port()
        .to_string();
    let out = run(&["--host", "127.0.0.1", "--port", &port]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("127.0.0.1:{port}")) && err.contains("--port"),
        "{err}"
    );
    // the same port twice
    let out = run(&["--port", "18123", "--metrics-port", "18123"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("both 18123"), "{err}");

    // metrics: content type and plain logs
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let (ws, metrics) = (free(), free());
    let mut child = Command::new(bin)
        .args(["--host", "127.0.0.1", "--port", &ws.to_string()])
        .args(["--metrics-port", &metrics.to_string()])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    switchboard_testkit::eventually(Duration::from_secs(10), async || {
        let got = http_head(metrics, "/metrics").await;
        switchboard_testkit::check(got.is_some(), || "metrics not up".to_owned())
    })
    .await;
    let head = http_head(metrics, "/metrics").await.unwrap_or_default();
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    let _ = child.kill();
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    let logs = String::from_utf8_lossy(&out.stdout);
    assert!(logs.contains("mesh discovery listening"), "{logs}");
    assert!(
        !logs.contains('\u{1b}'),
        "colour codes in piped logs: {logs:?}"
    );
}

/// The status line and headers of `GET path`, if something answers.
async fn http_head(port: u16, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    conn.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut buf = Vec::new();
    conn.read_to_end(&mut buf).await.ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    text.split_once("\r\n\r\n").map(|(h, _)| h.to_owned())
}
