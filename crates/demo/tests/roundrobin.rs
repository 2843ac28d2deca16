//! No sticky sessions: three demo server processes on a mesh, each with the forwarding layer
//! (`switchboard-forward`), behind HAProxy with `balance roundrobin` and no stickiness. Node's
//! `socket.io-client`, long-polling only, makes round trips and chats across servers; clients
//! upgrade to WebSocket through whichever server the proxy picks; a server killed mid-session
//! loses its clients at once and they reconnect elsewhere. The same servers without the layer
//! fail with "Session ID unknown": the negative control.

use std::{
    collections::BTreeSet,
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::{Value as Json, json};
use switchboard_mesh_discovery::{Discovery, DiscoveryOptions, RunningDiscovery};
use switchboard_testkit::{
    TestClient, check, eventually,
    services::{Proxy, ProxyKind, interop_dir, node_report},
};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

const SECRET: &str = "a secret the three servers share";
/// HAProxy's shipped config without its stickiness: plain `balance roundrobin`.
const STICKINESS: &str = "cookie SERVERID";

/// A demo server process, killed when dropped.
struct Server {
    child: Child,
    name: String,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn discovery() -> RunningDiscovery {
    Discovery::new(DiscoveryOptions::default(), None)
        .spawn(
            TcpListener::bind("127.0.0.1:0")
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|e| panic!("{e}"))
}

fn server(name: &str, discovery: &str, forward: bool) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard-demo"));
    cmd.envs([
        ("HOST", "127.0.0.1"),
        ("PORT", "0"),
        ("MESH_PORT", "0"),
        ("SERVER_NAME", name),
        ("DISCOVERY_URL", discovery),
        ("RUST_LOG", "warn"),
    ])
    .env_remove("FORWARD_SECRET")
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    if forward {
        cmd.env("FORWARD_SECRET", SECRET);
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("stdout"));
    let mut line = String::new();
    let _ = BufReader::new(stdout).read_line(&mut line);
    let port: u16 = line
        .strip_prefix("ready ")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name}: no ready line, got {line:?}"));
    Server {
        child,
        name: name.into(),
        addr: ([127, 0, 0, 1], port).into(),
    }
}

/// Three servers on one mesh, each seeing every client of the others.
async fn cluster(forward: bool) -> (RunningDiscovery, Vec<Server>) {
    let d = discovery().await;
    let servers: Vec<Server> = ["s1", "s2", "s3"]
        .iter()
        .map(|n| server(n, &d.url(), forward))
        .collect();
    let mut probes = Vec::new();
    for s in &servers {
        probes.push(
            TestClient::connect(s.addr, "/", json!({ "name": "probe" }), None)
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
    (d, servers)
}

fn round_robin(servers: &[Server]) -> Proxy {
    Proxy::start(
        ProxyKind::Haproxy,
        [servers[0].addr, servers[1].addr, servers[2].addr],
        &[STICKINESS],
    )
}

/// Runs `roundrobin-client.js` in `mode`; its JSON line and whether it succeeded.
async fn clients(url: &str, clients: usize, rounds: usize, mode: &str) -> (bool, Json) {
    let (clients, rounds) = (clients.to_string(), rounds.to_string());
    node_report("roundrobin-client.js", &[url, &clients, &rounds, mode]).await
}

/// `switchboard_forward_requests_total{kind, outcome}` on `server`'s `/metrics`.
async fn forwarded(server: &Server, kind: &str, outcome: &str) -> u64 {
    let mut conn = tokio::net::TcpStream::connect(server.addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    conn.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut text = String::new();
    let _ = conn.read_to_string(&mut text).await;
    let series =
        format!("switchboard_forward_requests_total{{kind=\"{kind}\",outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(series.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

async fn total(servers: &[Server], kind: &str, outcome: &str) -> u64 {
    let mut sum = 0;
    for s in servers {
        sum += forwarded(s, kind, outcome).await;
    }
    sum
}

fn installed() -> bool {
    if ProxyKind::Haproxy.installed() {
        return true;
    }
    // .ci/run installs it; a developer machine may not have it
    eprintln!("SKIPPED: haproxy is not installed (apt-get install haproxy)");
    false
}

fn distinct(report: &Json, key: &str) -> BTreeSet<String> {
    report[key]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Json::as_str)
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polling_works_behind_round_robin_and_fails_without_the_layer() {
    if !installed() {
        return;
    }
    let (_d, servers) = cluster(true).await;
    let proxy = round_robin(&servers);
    let (ok, report) = clients(&proxy.url(), 6, 20, "polling").await;
    eprintln!("with the layer: {report}");
    assert!(ok, "{report}");
    assert_eq!(report["roundtrips"], json!(120), "{report}");
    assert_eq!(
        report["received"],
        json!(36),
        "every line everywhere: {report}"
    );
    assert_eq!(
        distinct(&report, "transports"),
        BTreeSet::from(["polling".into()])
    );
    assert!(distinct(&report, "servers").len() >= 2, "{report}");
    // the proxy really spread each session's requests: the servers forwarded many of them
    let polling = total(&servers, "polling", "forwarded").await;
    let local = total(&servers, "polling", "local").await;
    eprintln!("polling requests forwarded {polling}, served by their owner {local}");
    assert!(polling >= 100, "forwarded {polling}, local {local}");
    assert!(local >= 100, "forwarded {polling}, local {local}");
    assert_eq!(total(&servers, "handshake", "sealed").await, 6);
    drop((proxy, servers));

    // the negative control: the same cluster and proxy, servers without the layer
    let (_d, servers) = cluster(false).await;
    let proxy = round_robin(&servers);
    let (ok, report) = clients(&proxy.url(), 6, 20, "polling").await;
    eprintln!("without the layer: {report}");
    assert!(!ok, "round robin without the layer should fail: {report}");
    assert_eq!(report["status"], json!(400), "{report}");
    assert!(
        report["body"]
            .as_str()
            .is_some_and(|b| b.contains("Session ID unknown")),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_upgrade_to_websocket_through_any_server() {
    if !installed() {
        return;
    }
    let (_d, servers) = cluster(true).await;
    let proxy = round_robin(&servers);
    // 12 clients: the chance that every upgrade lands on its own session's server is 3^-12
    let (ok, report) = clients(&proxy.url(), 12, 5, "upgrade").await;
    eprintln!("{report}");
    assert!(ok, "{report}");
    assert_eq!(
        distinct(&report, "transports"),
        BTreeSet::from(["websocket".into()])
    );
    assert_eq!(report["roundtrips"], json!(60), "{report}");
    assert_eq!(report["received"], json!(144), "{report}");
    let piped = total(&servers, "websocket", "forwarded").await;
    let local = total(&servers, "websocket", "local").await;
    eprintln!("upgrades piped to their owner {piped}, reaching their owner {local}");
    // every upgrade reached its session's owner once: directly, or piped by another server
    assert_eq!(local, 12, "piped {piped}, on their owner {local}");
    assert!(piped >= 1, "no upgrade went through another server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_s_clients_reconnect_elsewhere_at_once() {
    if !installed() {
        return;
    }
    let (_d, mut servers) = cluster(true).await;
    let proxy = round_robin(&servers);
    let mut node = tokio::process::Command::new("node")
        .arg(interop_dir().join("roundrobin-client.js"))
        .args([&proxy.url(), "9", "3", "kill"])
        .current_dir(interop_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("node: {e}"));
    let mut lines =
        tokio::io::BufReader::new(node.stdout.take().unwrap_or_else(|| panic!("stdout"))).lines();
    let next = async |lines: &mut tokio::io::Lines<_>| -> Json {
        let line = tokio::time::timeout(Duration::from_secs(90), lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("roundrobin-client.js said nothing in 90 s"))
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("roundrobin-client.js ended"));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    };
    let connected = next(&mut lines).await;
    eprintln!("{connected}");
    assert_eq!(connected["phase"], json!("connected"), "{connected}");
    let on: Vec<String> = connected["servers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Json::as_str)
        .map(str::to_owned)
        .collect();
    // kill the server with most clients, mid-session (SIGKILL: no goodbye to anyone)
    let victim = ["s1", "s2", "s3"]
        .into_iter()
        .max_by_key(|s| on.iter().filter(|o| o == s).count())
        .unwrap_or("s1");
    let index = servers
        .iter()
        .position(|s| s.name == victim)
        .unwrap_or_else(|| panic!("{victim}"));
    let killed = servers.remove(index);
    drop(killed);
    let mut stdin = node.stdin.take().unwrap_or_else(|| panic!("stdin"));
    stdin
        .write_all(format!("{victim}\n").as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let report = next(&mut lines).await;
    eprintln!("killed {victim}: {report}");
    let after: Vec<&str> = report["after"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Json::as_str)
        .collect();
    assert_eq!(after.len(), 9, "{report}");
    assert!(
        !after.contains(&victim),
        "a client is still on {victim}: {report}"
    );
    assert_eq!(report["roundtrips"], json!(27), "{report}");
    assert_eq!(report["received"], json!(81), "{report}");
    for (i, was) in on.iter().enumerate() {
        let left = &report["left"][i];
        if was == victim {
            // Engine.IO's error at once (the request to the dead owner failed), not a ping
            // timeout 45 s later
            assert_eq!(
                left["reason"],
                json!("transport error"),
                "client {i}: {report}"
            );
            let ms = left["ms"].as_i64().unwrap_or(i64::MAX);
            assert!(ms < 10_000, "client {i} noticed after {ms} ms: {report}");
        }
    }
}
