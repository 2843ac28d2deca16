//! Test fixtures: a `redis-server` and a 3-master Redis Cluster on free local ports, stopped when
//! dropped. They need `redis-server` (and `redis-cli` for the cluster) on the PATH. Outside semver.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

fn free_port() -> u16 {
    // bind to port 0, read the port, release it: the server binds it right after
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

fn spawn_redis(port: u16, extra: &[&str]) -> Child {
    Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(["--protected-mode", "no", "--loglevel", "warning"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start redis-server (is it installed?): {e}"))
}

fn cli(port: u16, args: &[&str]) -> Option<String> {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready() {
        assert!(Instant::now() < deadline, "{what} not ready in time");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A standalone `redis-server`.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one on a free port and waits until it answers PING.
    pub fn start() -> Self {
        let mut s = RedisServer {
            port: free_port(),
            child: None,
        };
        s.launch();
        s
    }

    fn launch(&mut self) {
        self.child = Some(spawn_redis(self.port, &[]));
        let port = self.port;
        wait_until("redis-server", || {
            cli(port, &["ping"]).is_some_and(|o| o.trim() == "PONG")
        });
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its process id while it runs (to read its CPU time and memory).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the server (clients see the connection drop).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Redis Cluster of 3 masters (no replicas), made with `redis-cli --cluster create`.
pub struct RedisCluster {
    ports: Vec<u16>,
    children: Vec<Child>,
    dir: PathBuf,
}

impl RedisCluster {
    /// Starts the nodes, creates the cluster and waits until it reports `cluster_state:ok`.
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "switchboard-cluster-{}-{}",
            std::process::id(),
            free_port()
        ));
        let _ = std::fs::create_dir_all(&dir);
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let children = ports
            .iter()
            .map(|p| {
                let conf = dir.join(format!("nodes-{p}.conf"));
                spawn_redis(
                    *p,
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        &conf.to_string_lossy(),
                        "--dir",
                        &dir.to_string_lossy(),
                    ],
                )
            })
            .collect();
        for p in &ports {
            let p = *p;
            wait_until("cluster node", || {
                cli(p, &["ping"]).is_some_and(|o| o.trim() == "PONG")
            });
        }
        let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(addrs.iter().map(String::as_str));
        args.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        let created = Command::new("redis-cli")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(created, "redis-cli --cluster create failed");
        for p in &ports {
            let p = *p;
            wait_until("cluster state", || {
                cli(p, &["cluster", "info"]).is_some_and(|o| o.contains("cluster_state:ok"))
            });
        }
        RedisCluster {
            ports,
            children,
            dir,
        }
    }

    /// `redis-cluster://127.0.0.1:<first port>`.
    pub fn url(&self) -> String {
        format!("redis-cluster://127.0.0.1:{}", self.ports[0])
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Node Socket.IO server (`xtask/interop/server.js`: socket.io 4.8 with
/// @socket.io/redis-adapter 8) in the cluster of a redis. Needs `node` and `npm ci` in
/// `xtask/interop`.
pub struct NodeServer {
    child: Child,
    port: u16,
}

impl NodeServer {
    /// Starts one with `mode` `classic` or `sharded` (static) on `redis_url`, and waits until it
    /// listens.
    pub fn start(redis_url: &str, mode: &str) -> Self {
        use std::io::{BufRead, BufReader};
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../xtask/interop");
        assert!(
            dir.join("node_modules/socket.io").is_dir(),
            "the Node peers are not installed: run `npm ci` in xtask/interop (.ci/run does)"
        );
        let mut child = Command::new("node")
            .arg(dir.join("server.js"))
            .args(["--redis", redis_url, "--mode", mode, "--port", "0"])
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start node: {e}"));
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("node stdout"));
        let mut lines = BufReader::new(stdout).lines();
        let port = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(p) = line
                        .strip_prefix("ready ")
                        .and_then(|p| p.trim().parse().ok())
                    {
                        break p;
                    }
                }
                _ => panic!("the Node server exited before it was ready"),
            }
        };
        // keep draining its output so it never blocks on a full pipe
        std::thread::spawn(move || for _ in lines.by_ref() {});
        NodeServer { child, port }
    }

    /// Where clients connect.
    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

impl Drop for NodeServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
