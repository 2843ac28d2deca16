//! The processes of a benchmark: benchmark servers (Rust or Node), the redis ceiling, and what
//! /proc says about their CPU time and peak memory.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use anyhow::{Context, Result};

/// CPU time (user + system) of process `pid`, in µs.
pub(crate) fn cpu_us(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // fields after the command name in parentheses: state is field 3, utime 14, stime 15
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| f.get(i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    ticks * 1_000_000 / clock_ticks()
}

fn clock_ticks() -> u64 {
    // sysconf(_SC_CLK_TCK) is 100 on every Linux this runs on
    100
}

/// Peak resident memory of process `pid` (VmHWM), in KiB.
pub(crate) fn peak_rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmHWM:")
}

/// Resident memory of process `pid` now (VmRSS), in KiB.
pub(crate) fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A server process killed on drop: a child of ours, or a worker of one (Node's `cluster`).
pub(crate) struct Proc {
    child: Option<Child>,
    pid: u32,
}

impl Proc {
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        match &mut self.child {
            Some(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            None => {
                let _ = Command::new("kill")
                    .args(["-9", &self.pid.to_string()])
                    .status();
            }
        }
    }
}

/// `redis-benchmark` PUBLISH of 64 bytes, pipelined: requests per second.
pub(crate) fn publish_ceiling(port: u16, requests: u32) -> Option<f64> {
    let out = Command::new("redis-benchmark")
        .args([
            "-p",
            &port.to_string(),
            "-n",
            &requests.to_string(),
            "-c",
            "20",
            "-P",
            "16",
            "-q",
            "PUBLISH",
            "bench-channel",
            &"x".repeat(64),
        ])
        .output()
        .ok()?;
    // "PUBLISH bench-channel xxx: 812345.67 requests per second, p50=..."
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "\n");
    text.lines()
        .rev()
        .filter_map(|l| l.split(": ").nth(1))
        .filter_map(|r| r.split_whitespace().next())
        .find_map(|v| v.parse::<f64>().ok())
}

/// Starts a benchmark server and waits for its `ready <port>` line.
pub(crate) fn server(mut command: Command) -> Result<(Proc, SocketAddr)> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("{command:?}"))?;
    let stdout = child.stdout.take().context("stdout")?;
    let pid = child.id();
    let proc = Proc {
        child: Some(child),
        pid,
    };
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let port: u16 = line
        .trim()
        .strip_prefix("ready ")
        .and_then(|p| p.parse().ok())
        .with_context(|| format!("{command:?} said {line:?}"))?;
    Ok((proc, SocketAddr::from(([127, 0, 0, 1], port))))
}

/// Starts a primary that forks `n` workers, each saying `ready <port> <pid>`: the primary (the
/// relay) and the workers (the servers).
pub(crate) fn cluster(mut command: Command, n: usize) -> Result<(Proc, Vec<(Proc, SocketAddr)>)> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("{command:?}"))?;
    let stdout = child.stdout.take().context("stdout")?;
    let pid = child.id();
    let primary = Proc {
        child: Some(child),
        pid,
    };
    let mut lines = BufReader::new(stdout);
    let mut workers = Vec::new();
    while workers.len() < n {
        let mut line = String::new();
        if lines.read_line(&mut line)? == 0 {
            anyhow::bail!(
                "{command:?} exited with {} of {n} workers ready",
                workers.len()
            );
        }
        let mut words = line.trim().strip_prefix("ready ").unwrap_or("").split(' ');
        let port: Option<u16> = words.next().and_then(|p| p.parse().ok());
        let pid: Option<u32> = words.next().and_then(|p| p.parse().ok());
        if let (Some(port), Some(pid)) = (port, pid) {
            workers.push((
                Proc { child: None, pid },
                SocketAddr::from(([127, 0, 0, 1], port)),
            ));
        }
    }
    // keep reading so the primary never blocks on a full pipe
    std::thread::spawn(move || {
        let mut sink = String::new();
        while lines.read_line(&mut sink).is_ok_and(|n| n > 0) {
            sink.clear();
        }
    });
    Ok((primary, workers))
}

/// The bench-server binary next to this one.
pub(crate) fn bench_server() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("bench-server")))
        .unwrap_or_else(|| PathBuf::from("bench-server"))
}

/// `xtask/interop`, where the Node side lives.
pub(crate) fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../interop")
}
