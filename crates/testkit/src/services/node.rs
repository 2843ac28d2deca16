//! A Node Socket.IO server from `xtask/interop` (socket.io 4.8 with @socket.io/redis-adapter 8 or
//! @socket.io/mongo-adapter 0.4).
//! It listens on port 0 and reports the port the system gave it: no port race.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
};

/// `xtask/interop`, where the pinned Node peers live.
pub fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../xtask/interop")
}

/// Runs `node <script> <args>` in `xtask/interop` (a client script that prints one JSON line
/// last): whether it exited 0, and that line. Panics when the last line is not JSON.
pub async fn node_report(script: &str, args: &[&str]) -> (bool, serde_json::Value) {
    let out = tokio::process::Command::new("node")
        .arg(interop_dir().join(script))
        .args(args)
        .current_dir(interop_dir())
        .output()
        .await
        .unwrap_or_else(|e| panic!("node: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let report = serde_json::from_str(line).unwrap_or_else(|_| {
        panic!(
            "{script} said {stdout:?}, stderr {:?}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), report)
}

/// A Node Socket.IO server in the cluster of a redis or a MongoDB. Needs `node` and `npm ci` in
/// `xtask/interop`.
pub struct NodeServer {
    child: Child,
    port: u16,
}

impl NodeServer {
    /// Starts one with `mode` `classic`, `sharded` (static) or `sharded-dynamic` on the redis at
    /// `broker_url`, or `mongo` on the MongoDB at `broker_url` (a capped collection), and waits
    /// until it listens.
    pub fn start(broker_url: &str, mode: &str) -> Self {
        Self::start_with(broker_url, mode, &[])
    }

    /// [`start`](Self::start) with more options of `server.js` (`--csr`: connection state
    /// recovery).
    pub fn start_with(broker_url: &str, mode: &str, extra: &[&str]) -> Self {
        let broker = if mode == "mongo" {
            "--mongo"
        } else {
            "--redis"
        };
        let dir = interop_dir();
        assert!(
            dir.join("node_modules/socket.io").is_dir(),
            "the Node peers are not installed: run `npm ci` in xtask/interop (.ci/run does)"
        );
        let mut child = Command::new("node")
            .arg(dir.join("server.js"))
            .args([broker, broker_url, "--mode", mode, "--port", "0"])
            .args(extra)
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
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

impl Drop for NodeServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
