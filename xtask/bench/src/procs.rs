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
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A child process killed on drop.
pub(crate) struct Proc {
    child: Child,
}

impl Proc {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
    let proc = Proc { child };
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let port: u16 = line
        .trim()
        .strip_prefix("ready ")
        .and_then(|p| p.parse().ok())
        .with_context(|| format!("{command:?} said {line:?}"))?;
    Ok((proc, SocketAddr::from(([127, 0, 0, 1], port))))
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
