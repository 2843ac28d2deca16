//! Workers as processes of their own (the `cluster_suite_server` example) on a relay in this
//! process: the engine's conformance suite; a worker killed (`kill -9`) in the middle of a broadcast with
//! acks and of a fetchSockets ends both at once with what the live workers answered, long before
//! any timeout; a restarted worker rejoins.

use std::{path::PathBuf, process::Command, time::Duration};

use serde_json::json;
use switchboard_adapter_cluster::{Relay, RelayOptions};
use switchboard_testkit::{
    Server, Servers, TestClient, check,
    control::{Arg, Target},
    eventually,
};

const WAIT: Duration = Duration::from_secs(15);

fn example(name: &str) -> PathBuf {
    switchboard_testkit::example("switchboard-adapter-cluster", name)
}

fn socket_path() -> PathBuf {
    switchboard_testkit::socket_path("sb-cluster-p")
}

/// Every server of the conformance suite is a `cluster_suite_server` process; the relay runs here.
struct Processes {
    relay: Relay,
}

impl Processes {
    async fn worker(&self, extra: &[&str]) -> Server {
        let mut command = tokio::process::Command::new(example("cluster_suite_server"));
        command.arg("--relay").arg(self.relay.path()).args(extra);
        Server::process(command).await
    }
}

impl Servers for Processes {
    async fn cluster() -> Self {
        let relay = Relay::bind(socket_path(), RelayOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        Processes { relay }
    }

    async fn server(&self) -> Server {
        self.worker(&[]).await
    }
}

mod suite {
    switchboard_testkit::conformance_suite!(super::Processes, crash);
}

async fn converge(servers: &[&Server], n: usize) {
    eventually(WAIT, async || {
        let mut counts = Vec::new();
        for s in servers {
            counts.push(s.server_count("/").await);
        }
        check(counts.iter().all(|&c| c == n), || {
            format!("server counts {counts:?}, not {n}")
        })
    })
    .await;
}

async fn client(s: &Server, name: &str, acks: bool) -> TestClient {
    TestClient::connect(
        s.addr,
        "/",
        json!({}),
        acks.then(|| json!({ "from": name })),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

fn signal(s: &Server, sig: &str) {
    let pid = s.pid().unwrap_or_else(|| panic!("not a process"));
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .is_ok_and(|st| st.success());
    assert!(ok, "kill {sig} {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_request_ends_it_at_once() {
    let c = Processes::cluster().await;
    // 30 s heartbeat and request timeouts: only the relay's notice can end a request early
    let slow = ["--slow-liveness"];
    let (s0, s1, s2) = (
        c.worker(&slow).await,
        c.worker(&slow).await,
        c.worker(&slow).await,
    );
    converge(&[&s0, &s1, &s2], 3).await;
    let _a = client(&s0, "a", true).await;
    let _b = client(&s1, "b", true).await;
    // never acks: the request waits for it until its worker dies
    let _d = client(&s2, "d", false).await;

    let started = tokio::time::Instant::now();
    let (acks, ()) = tokio::join!(
        s0.emit_with_ack(
            Target::default(),
            Some(30_000),
            "ask",
            vec![Arg::Json(json!(1))]
        ),
        async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            s2.crash();
        }
    );
    let took = started.elapsed();
    let acks = acks.unwrap_or_else(|e| panic!("{e}"));
    let mut from: Vec<String> = acks
        .iter()
        .filter_map(|a| a.as_ref().ok())
        .map(|a| a["from"].as_str().unwrap_or("?").to_owned())
        .collect();
    from.sort();
    assert_eq!(from, ["a", "b"]);
    assert!(took < Duration::from_secs(5), "took {took:?}");

    // a hung worker (stopped) holds a fetchSockets up; killed, it is answered at once
    converge(&[&s0, &s1], 2).await;
    signal(&s1, "-STOP");
    let started = tokio::time::Instant::now();
    let (sockets, ()) = tokio::join!(s0.fetch_sockets(Target::default()), async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        signal(&s1, "-KILL");
    });
    let took = started.elapsed();
    let sockets = sockets.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sockets.len(), 1, "{sockets:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_worker_rejoins() {
    let c = Processes::cluster().await;
    let s0 = c.worker(&[]).await;
    let s1 = c.worker(&[]).await;
    converge(&[&s0, &s1], 2).await;
    s1.crash();
    converge(&[&s0], 1).await;
    let s1 = c.worker(&[]).await;
    converge(&[&s0, &s1], 2).await;
    let mut b = client(&s1, "b", true).await;
    s0.emit(Target::default(), "again", vec![Arg::Json(json!("hi"))])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(b.receives("again", WAIT).await);
}

/// The `cluster` example: a primary with two workers of itself; a shout crosses them, and the
/// workers count each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_example_runs() {
    use tokio::io::AsyncBufReadExt;
    let mut primary = tokio::process::Command::new(example("cluster"))
        .args(["--workers", "2", "--port", "0"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = primary.stdout.take().unwrap_or_else(|| panic!("stdout"));
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut ports = Vec::new();
    while ports.len() < 2 {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("the workers did not start"))
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("the primary exited"));
        if let Some(p) = line
            .strip_prefix("ready ")
            .and_then(|p| p.parse::<u16>().ok())
        {
            ports.push(p);
        }
    }
    let addr = |p: u16| std::net::SocketAddr::from(([127, 0, 0, 1], p));
    let mut a = TestClient::connect(addr(ports[0]), "/", json!({}), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut b = TestClient::connect(addr(ports[1]), "/", json!({}), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    eventually(WAIT, async || {
        let n = a.emit_with_ack("count", vec![], WAIT).await;
        check(n == Some(vec![json!(2)]), || format!("count {n:?}"))
    })
    .await;
    a.emit("shout", vec![json!("hello")]);
    let got = b
        .expect("shouted", WAIT)
        .await
        .unwrap_or_else(|| panic!("the shout did not cross workers"));
    assert_eq!(got.args, vec![json!("hello")]);
    // the workers go with the primary (their stdin closes)
    let _ = primary.kill().await;
    assert!(b.disconnected(WAIT).await);
}
