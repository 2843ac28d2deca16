//! The mesh across processes: the engine's conformance suite with every server a process of its
//! own (the `suite_server` example, driven over its stdin); and three `node` example processes
//! with a discovery service: messages cross processes, a killed process is noticed within the
//! heartbeat timeout, a restarted one rejoins.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::json;
use switchboard_mesh_discovery::{Discovery, DiscoveryOptions, RunningDiscovery};
use switchboard_testkit::{Server, Servers, TestClient, check, eventually};

const WAIT: Duration = Duration::from_secs(15);

fn example(name: &str) -> PathBuf {
    switchboard_testkit::example("switchboard-adapter-mesh", name)
}

struct Node {
    child: Child,
    addr: SocketAddr,
}

impl Node {
    fn start(discovery: SocketAddr) -> Self {
        let mut child = Command::new(example("node"))
            .args(["--discovery", &format!("ws://{discovery}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start the node example ({}): {e}",
                    example("node").display()
                )
            });
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("stdout"));
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let port: u16 = line
            .trim()
            .strip_prefix("ready ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("node said {line:?}"));
        Node {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn count(c: &mut TestClient) -> i64 {
    c.emit_with_ack("count", vec![], WAIT)
        .await
        .and_then(|a| a.first().and_then(|v| v.as_i64()))
        .unwrap_or(0)
}

async fn wait_count(c: &mut TestClient, n: i64) {
    eventually(WAIT, async || {
        let got = count(c).await;
        check(got == n, || format!("the server count is {got}, not {n}"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_form_a_mesh_lose_a_node_and_get_it_back() {
    let running = Discovery::new(DiscoveryOptions::default(), None)
        .spawn_on(([127, 0, 0, 1], 0).into())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let discovery = running.local_addr();
    let mut nodes: Vec<Node> = (0..3).map(|_| Node::start(discovery)).collect();
    let mut a = TestClient::connect(nodes[0].addr, "/", json!({}), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut b = TestClient::connect(nodes[1].addr, "/", json!({}), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    wait_count(&mut a, 3).await;

    a.emit("shout", vec![json!("across processes")]);
    let e = b
        .expect("shouted", WAIT)
        .await
        .unwrap_or_else(|| panic!("the message did not cross processes"));
    assert_eq!(e.args, vec![json!("across processes")]);

    // a killed process: the others' count converges within the heartbeat timeout
    nodes[2].kill();
    wait_count(&mut a, 2).await;
    wait_count(&mut b, 2).await;
    // restarted: it rejoins
    nodes[2] = Node::start(discovery);
    wait_count(&mut a, 3).await;
    let c = TestClient::connect(nodes[2].addr, "/", json!({}), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    c.emit("shout", vec![json!("back")]);
    assert!(a.receives("shouted", WAIT).await && b.receives("shouted", WAIT).await);
}

/// Every server of the conformance suite is a `suite_server` process; discovery runs here.
struct Processes {
    discovery: RunningDiscovery,
}

impl Servers for Processes {
    async fn cluster() -> Self {
        let discovery = Discovery::new(DiscoveryOptions::default(), None)
            .spawn_on(([127, 0, 0, 1], 0).into())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        Processes { discovery }
    }

    async fn server(&self) -> Server {
        let mut command = tokio::process::Command::new(example("suite_server"));
        command.args(["--discovery", &self.discovery.url()]);
        Server::process(command).await
    }
}

mod suite {
    switchboard_testkit::conformance_suite!(super::Processes, crash);
}
