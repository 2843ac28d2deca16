//! The proxy configs of `docs/deploy/` (nginx, HAProxy), run by the real programs in front of
//! three demo servers on a mesh: Node `socket.io-client` clients connect with long-polling
//! first (the default), upgrade to WebSocket through the proxy, and chat across servers. The same
//! proxies without their stickiness lines fail with "Session ID unknown": the negative control
//! that shows the test can fail.

use std::time::Duration;

use serde_json::{Value as Json, json};
use switchboard_demo::{Backend, DemoOptions, RunningDemo};
use switchboard_mesh_discovery::{Discovery, DiscoveryOptions, RunningDiscovery};
use switchboard_testkit::{
    TestClient, check, eventually,
    services::{Proxy, ProxyKind, node_report},
};
use tokio::net::TcpListener;

/// Three demo servers on one mesh, each seeing the other two.
async fn cluster() -> (RunningDiscovery, [RunningDemo; 3]) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let discovery = Discovery::new(DiscoveryOptions::default(), None)
        .spawn(listener)
        .unwrap_or_else(|e| panic!("{e}"));
    let url = discovery.url();
    let pod = async |name: &str| {
        switchboard_demo::start(DemoOptions {
            name: name.into(),
            addr: ([127, 0, 0, 1], 0).into(),
            backend: Backend::Mesh {
                discovery: url.clone(),
                ws_port: 0,
                server_address: None,
                auth_token: None,
            },
            forward: None,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    };
    let servers = [pod("s1").await, pod("s2").await, pod("s3").await];
    // every server sees every client: `who` on each answers three
    let mut probes = Vec::new();
    for s in &servers {
        probes.push(
            TestClient::connect(s.addr(), "/", json!({ "name": "probe" }), None)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        );
    }
    eventually(Duration::from_secs(20), async || {
        let mut seen = Vec::new();
        for p in probes.iter_mut() {
            let who = p.emit_with_ack("who", vec![], Duration::from_secs(5)).await;
            seen.push(who.and_then(|a| a.first().and_then(Json::as_array).map(Vec::len)));
        }
        check(seen == [Some(3); 3], || {
            format!("clients seen per server: {seen:?}")
        })
    })
    .await;
    (discovery, servers)
}

/// Runs `proxy-client.js` through `url` with `clients` clients; its JSON line and whether it
/// succeeded.
async fn clients_through(url: &str, clients: usize) -> (bool, Json) {
    node_report("proxy-client.js", &[url, &clients.to_string()]).await
}

async fn sticky_and_not(kind: ProxyKind, stickiness: &str) {
    if !kind.installed() {
        // .ci/run installs both proxies; a developer machine may not have them
        eprintln!("SKIPPED: {kind:?} is not installed (apt-get install nginx-light haproxy)");
        return;
    }
    let (_discovery, servers) = cluster().await;
    let addrs = [servers[0].addr(), servers[1].addr(), servers[2].addr()];

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
