//! The proxy configs of `docs/deploy/` (nginx, HAProxy), run by the real programs in front of
//! three Switchboard servers on a mesh: Node `socket.io-client` clients connect with long-polling
//! first (the default), upgrade to WebSocket through the proxy, and chat across servers. The same
//! proxies without their stickiness lines fail with "Session ID unknown": the negative control
//! that shows the test can fail.

use std::{net::SocketAddr, process::Command, time::Duration};

use serde_json::{Value as Json, json};
use socketioxide::{
    SocketIo,
    adapter::Emitter,
    extract::{Data, SocketRef},
};
use switchboard_adapter_mesh::{
    AdapterOptions, ClusterState, MeshAdapter, MeshOptions, MeshTransport, ServerSide,
};
use switchboard_mesh_discovery::{Discovery, DiscoveryOptions, RunningDiscovery};
use switchboard_testkit::{
    check, eventually,
    services::{Proxy, ProxyKind, interop_dir},
};
use tokio::net::TcpListener;

type Adapter = MeshAdapter<Emitter>;

/// One chat server: greets each client with `hello {server}`, re-emits `chat` to every client of
/// every server.
struct Server {
    addr: SocketAddr,
    server_side: ServerSide,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn server(name: &'static str, discovery: SocketAddr) -> Server {
    let transport = MeshTransport::start(
        MeshOptions::default()
            .bind([127, 0, 0, 1].into())
            .ws_port(0)
            .discovery(format!("ws://{discovery}")),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let state = ClusterState::new(transport, AdapterOptions::default());
    let server_side = state.server_side();
    let (layer, io) = SocketIo::builder()
        .with_adapter::<Adapter>(state)
        .build_layer();
    // (the clients send `chat` only once upgraded, long after the handler is in place)
    io.ns(
        "/",
        async move |socket: SocketRef<Adapter>, io: SocketIo<Adapter>| {
            let _ = socket.emit("hello", &json!({ "server": name }));
            socket.on("chat", async move |Data(line): Data<Json>| {
                let _ = io.emit("chat", &line).await;
            });
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, axum::Router::new().layer(layer)).await;
    });
    Server {
        addr,
        server_side,
        task,
    }
}

/// Three servers on one mesh, each counting three.
async fn cluster() -> (RunningDiscovery, [Server; 3]) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let discovery = Discovery::new(DiscoveryOptions::default(), None)
        .spawn(listener)
        .unwrap_or_else(|e| panic!("{e}"));
    let d = discovery.local_addr();
    let servers = [
        server("s1", d).await,
        server("s2", d).await,
        server("s3", d).await,
    ];
    eventually(Duration::from_secs(20), async || {
        let mut counts = Vec::new();
        for s in &servers {
            counts.push(s.server_side.of("/").server_count().await.unwrap_or(0));
        }
        check(counts == [3, 3, 3], || format!("server counts {counts:?}"))
    })
    .await;
    (discovery, servers)
}

/// Runs `proxy-client.js` through `url` with `clients` clients; its JSON line and whether it
/// succeeded.
async fn clients_through(url: &str, clients: usize) -> (bool, Json) {
    let url = url.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(interop_dir().join("proxy-client.js"))
            .args([&url, &clients.to_string()])
            .current_dir(interop_dir())
            .output()
            .unwrap_or_else(|e| panic!("node: {e}"))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let report: Json = serde_json::from_str(line).unwrap_or_else(|_| {
        panic!(
            "proxy-client.js said {stdout:?}, stderr {:?}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), report)
}

async fn sticky_and_not(kind: ProxyKind, stickiness: &str) {
    if !kind.installed() {
        // .ci/run installs both proxies; a developer machine may not have them
        eprintln!("SKIPPED: {kind:?} is not installed (apt-get install nginx-light haproxy)");
        return;
    }
    let (_discovery, servers) = cluster().await;
    let addrs = [servers[0].addr, servers[1].addr, servers[2].addr];

    // the shipped config: every client upgrades, lands on a server of its own, chats across them
    let proxy = Proxy::start(kind, addrs, &[]);
    let (ok, report) = clients_through(&proxy.url(), 6).await;
    eprintln!("{kind:?}: {report}");
    assert!(ok, "{kind:?} with the shipped config: {report}");
    assert_eq!(report["upgraded"], json!(6), "{report}");
    assert_eq!(
        report["received"],
        json!(36),
        "every line reached every client: {report}"
    );
    let distinct: std::collections::BTreeSet<&str> = report["servers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Json::as_str)
        .collect();
    assert!(distinct.len() >= 2, "clients on one server only: {report}");
    drop(proxy);

    // the negative control: the same config without its stickiness
    let proxy = Proxy::start(kind, addrs, &[stickiness]);
    let (ok, report) = clients_through(&proxy.url(), 6).await;
    eprintln!("{kind:?} without `{stickiness}`: {report}");
    assert!(!ok, "{kind:?} without stickiness should fail: {report}");
    assert_eq!(report["status"], json!(400), "{report}");
    assert!(
        report["body"]
            .as_str()
            .is_some_and(|b| b.contains("Session ID unknown")),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_with_the_shipped_config() {
    sticky_and_not(ProxyKind::Nginx, "hash $remote_addr").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_with_the_shipped_config() {
    sticky_and_not(ProxyKind::Haproxy, "cookie SERVERID").await;
}
