//! The demo server as the deployment files run it: two servers on a mesh chat across each other,
//! `/health` and `/metrics` answer, SIGTERM stops the binary cleanly and tells its clients, and the
//! emitter mode reaches clients of a redis cluster.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::json;
use switchboard_demo::{Backend, DemoOptions, RunningDemo};
use switchboard_mesh_discovery::{Discovery, DiscoveryOptions, RunningDiscovery};
use switchboard_testkit::{TestClient, services::RedisServer};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

const WAIT: Duration = Duration::from_secs(15);

async fn discovery() -> RunningDiscovery {
    Discovery::new(DiscoveryOptions::default(), None)
        .spawn(
            TcpListener::bind("127.0.0.1:0")
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn mesh_demo(name: &str, discovery: &RunningDiscovery) -> RunningDemo {
    switchboard_demo::start(DemoOptions {
        name: name.into(),
        addr: ([127, 0, 0, 1], 0).into(),
        backend: Backend::Mesh {
            discovery: discovery.url(),
            ws_port: 0,
            server_address: None,
            auth_token: None,
        },
        forward: None,
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

/// `GET path` on `port`: the status line and headers, and the body.
async fn get(port: u16, path: &str) -> (String, String) {
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    conn.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut buf = Vec::new();
    let _ = conn.read_to_end(&mut buf).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_owned(), body.to_owned())
}

async fn client(port: u16, name: &str) -> TestClient {
    TestClient::connect(
        ([127, 0, 0, 1], port).into(),
        "/",
        json!({ "name": name }),
        None,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_chat_across_the_mesh() {
    let d = discovery().await;
    let one = mesh_demo("one", &d).await;
    let two = mesh_demo("two", &d).await;
    let mut a = client(one.addr().port(), "ada").await;
    let mut b = client(two.addr().port(), "bob").await;
    assert_eq!(
        a.expect("hello", WAIT).await.map(|e| e.args),
        Some(vec![json!({"server": "one"})])
    );
    assert!(b.receives("hello", WAIT).await);
    // once the two servers see each other, a line from ada reaches bob on the other server
    let mut got = None;
    for _ in 0..50 {
        a.emit("chat", vec![json!({"text": "hi"})]);
        if let Some(e) = b.expect("chat", Duration::from_millis(300)).await {
            got = Some(e.args);
            break;
        }
    }
    assert_eq!(
        got,
        Some(vec![json!({"from": "ada", "text": "hi", "server": "one"})])
    );
    let (head, body) = get(one.addr().port(), "/health").await;
    assert!(
        head.starts_with("HTTP/1.0 200") && body == "ok",
        "{head} {body}"
    );
    let (head, body) = get(one.addr().port(), "/metrics").await;
    assert!(head.contains("version=0.0.4"), "{head}");
    assert!(body.contains("socketio_mesh_peers_connected 1"), "{body}");
    assert!(body.contains("socketio_mesh_messages_sent_total"), "{body}");
    let (_, page) = get(one.addr().port(), "/").await;
    assert!(page.contains("Switchboard chat on <span>one</span>"));
    // shutting down tells the clients
    one.shutdown().await;
    assert!(a.disconnected(WAIT).await);
    two.shutdown().await;
}

/// The binary, started as a container starts it.
struct Bin(Child);

impl Drop for Bin {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn bin(args: &[&str], env: &[(&str, &str)]) -> (Bin, Option<u16>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard-demo"))
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    if !args.is_empty() {
        return (Bin(child), None);
    }
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("stdout"));
    let mut line = String::new();
    let _ = BufReader::new(stdout).read_line(&mut line);
    let port = line
        .strip_prefix("ready ")
        .and_then(|p| p.trim().parse().ok());
    (Bin(child), port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_and_stops_on_sigterm() {
    let d = discovery().await;
    let url = d.url();
    let (mut server, port) = bin(
        &[],
        &[
            ("HOST", "127.0.0.1"),
            ("PORT", "0"),
            ("MESH_PORT", "0"),
            ("SERVER_NAME", "bin"),
            ("DISCOVERY_URL", &url),
        ],
    );
    let port = port.unwrap_or_else(|| panic!("no ready line"));
    let mut c = client(port, "cli").await;
    assert_eq!(
        c.expect("hello", WAIT).await.map(|e| e.args),
        Some(vec![json!({"server": "bin"})])
    );
    let pid = server.0.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success());
    assert!(
        c.disconnected(WAIT).await,
        "SIGTERM disconnects the clients"
    );
    let exited = tokio::task::spawn_blocking(move || {
        let status = server.0.wait();
        (server, status)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        exited.1.as_ref().is_ok_and(|s| s.success()),
        "{:?}",
        exited.1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emitter_reaches_a_redis_cluster() {
    let redis = RedisServer::start();
    let demo = switchboard_demo::start(DemoOptions {
        name: "r1".into(),
        addr: ([127, 0, 0, 1], 0).into(),
        backend: Backend::Redis {
            url: redis.url(),
            sharded: false,
        },
        forward: None,
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let mut c = client(demo.addr().port(), "cli").await;
    let url = redis.url();
    let _emitter = bin(&["emit"], &[("REDIS_URL", &url), ("EMIT_EVERY_MS", "100")]);
    let line = c
        .expect("chat", WAIT)
        .await
        .unwrap_or_else(|| panic!("no line from the emitter"));
    assert_eq!(line.args[0]["from"], json!("emitter"));
    demo.shutdown().await;
}
