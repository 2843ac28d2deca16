//! `redis-server` fixtures: a standalone server and a 3-master Redis Cluster. They need
//! `redis-server` and `redis-cli` on the PATH (`.ci/run` installs them).

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
};

use super::{START, candidate_port};
use crate::wait::eventually_blocking;

/// Attempts at finding a port nobody takes while our server starts.
const ATTEMPTS: usize = 8;

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
    cli_as(port, None, args)
}

/// `redis-cli` with the password of a server started with `--requirepass`.
fn cli_as(port: u16, password: Option<&str>, args: &[&str]) -> Option<String> {
    let mut command = Command::new("redis-cli");
    command.args(["-p", &port.to_string()]);
    if let Some(password) = password {
        command.args(["--no-auth-warning", "-a", password]);
    }
    let out = command.args(args).stderr(Stdio::null()).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Waits until the redis-server `child` answers on `port`. `false` when it exited (the port was
/// taken) or another process answers there.
fn started(child: &mut Child, port: u16, extra: &[String]) -> bool {
    let password = extra
        .iter()
        .position(|a| a == "--requirepass")
        .and_then(|i| extra.get(i + 1))
        .map(String::as_str);
    let pid = format!("process_id:{}", child.id());
    eventually_blocking(START, || {
        if let Ok(Some(status)) = child.try_wait() {
            return Ok(Err(format!("exited with {status}")));
        }
        match cli_as(port, password, &["info", "server"]) {
            Some(info) if info.lines().any(|l| l.trim() == pid) => Ok(Ok(())),
            Some(_) => Ok(Err("another redis-server holds the port".to_owned())),
            None => Err(format!("redis-server on port {port} does not answer")),
        }
    })
    .is_ok()
}

/// Starts redis-server with `extra` arguments on a free port, trying other ports on a clash.
fn start_on_free_port(extra: impl Fn(u16) -> Vec<String>) -> (u16, Child) {
    for _ in 0..ATTEMPTS {
        let port = candidate_port();
        let args = extra(port);
        let mut child = spawn_redis(port, &args.iter().map(String::as_str).collect::<Vec<_>>());
        if started(&mut child, port, &args) {
            return (port, child);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("redis-server found no free port in {ATTEMPTS} attempts")
}

/// A standalone `redis-server`.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    args: Vec<String>,
}

impl RedisServer {
    /// Starts one on a free port and waits until it answers.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// The same with more `redis-server` arguments (kept for [`restart`](Self::restart)), e.g.
    /// `["--requirepass", "secret"]` (the fixture's own probe then authenticates).
    pub fn start_with(args: &[&str]) -> Self {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let (port, child) = start_on_free_port(|_| args.clone());
        RedisServer {
            port,
            child: Some(child),
            args,
        }
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis-cli -p <port> <args>` (authenticated when started with `--requirepass`): its
    /// output. Panics when redis-cli fails.
    pub fn cli(&self, args: &[&str]) -> String {
        let password = self
            .args
            .iter()
            .position(|a| a == "--requirepass")
            .and_then(|i| self.args.get(i + 1))
            .map(String::as_str);
        cli_as(self.port, password, args)
            .unwrap_or_else(|| panic!("redis-cli {args:?} failed on port {}", self.port))
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

    /// Starts it again on the same port (clients reconnect to the address they know).
    pub fn restart(&mut self) {
        self.stop();
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let mut child = spawn_redis(self.port, &args);
        assert!(
            started(&mut child, self.port, &self.args),
            "redis-server could not get its port {} back",
            self.port
        );
        self.child = Some(child);
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
            "switchboard-cluster-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let _ = std::fs::create_dir_all(&dir);
        let (ports, children): (Vec<u16>, Vec<Child>) = (0..3)
            .map(|_| {
                start_on_free_port(|port| {
                    let conf = dir.join(format!("nodes-{port}.conf"));
                    vec![
                        "--cluster-enabled".into(),
                        "yes".into(),
                        "--cluster-config-file".into(),
                        conf.to_string_lossy().into_owned(),
                        "--dir".into(),
                        dir.to_string_lossy().into_owned(),
                    ]
                })
            })
            .unzip();
        let cluster = RedisCluster {
            ports,
            children,
            dir,
        };
        let addrs: Vec<String> = cluster
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
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
        for &p in &cluster.ports {
            eventually_blocking(START, || {
                cli(p, &["cluster", "info"])
                    .filter(|o| o.contains("cluster_state:ok"))
                    .map(drop)
                    .ok_or_else(|| format!("cluster node {p} not in state ok"))
            });
        }
        cluster
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
