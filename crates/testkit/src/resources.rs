//! What a process uses (CPU time, resident memory, descriptors), and a listener at the file
//! descriptor limit: `accept()` fails with EMFILE while connections wait in the backlog, what a
//! test needs to show an acceptor pauses instead of spinning on the error.
//!
//! [`cpu_share_at_fd_limit`] lowers the limit of the **whole process**: a test using it belongs
//! alone in its test binary.

use std::{
    fs::File,
    io::{BufRead, BufReader, Read, Seek, SeekFrom},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// CPU time of this process (user + system), read from `/proc/self/stat` through a file opened
/// beforehand (at the limit, opening it would fail).
pub struct ProcessCpu(File);

impl ProcessCpu {
    /// Opens `/proc/self/stat`.
    pub fn open() -> Self {
        Self(File::open("/proc/self/stat").unwrap_or_else(|e| panic!("/proc/self/stat: {e}")))
    }

    /// User + system CPU time used so far.
    pub fn used(&mut self) -> Duration {
        let mut text = String::new();
        let _ = self.0.seek(SeekFrom::Start(0));
        let _ = self.0.read_to_string(&mut text);
        // fields after the command name (which may hold spaces): utime is field 14, stime 15
        let rest = text.rsplit_once(')').map_or("", |(_, r)| r);
        let ticks: u64 = rest
            .split_whitespace()
            .skip(11)
            .take(2)
            .filter_map(|f| f.parse::<u64>().ok())
            .sum();
        // clock ticks: 100 per second on Linux
        Duration::from_millis(ticks * 10)
    }
}

/// Resident memory of this process, in KiB.
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Descriptors this process has open.
pub fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64)
}

/// `count` idle TCP connections to `127.0.0.1:port`, held by a `python3` child (which lifts its own
/// descriptor limit) until dropped.
pub struct IdleConnections(Child);

impl IdleConnections {
    /// Connects them all; returns once every one is established (in the listener's backlog at
    /// least: keep `count` under the backlog, 128 for tokio and std listeners).
    pub async fn open(port: u16, count: usize) -> Self {
        let script = format!(
            "import resource, socket, sys\n\
             h = resource.getrlimit(resource.RLIMIT_NOFILE)[1]\n\
             resource.setrlimit(resource.RLIMIT_NOFILE, (h, h))\n\
             s = [socket.create_connection(('127.0.0.1', {port})) for _ in range({count})]\n\
             print('connected', flush=True)\n\
             sys.stdin.read()\n"
        );
        let mut child = Command::new("python3")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("python3: {e}"));
        let stdout = child
            .stdout
            .take()
            .unwrap_or_else(|| panic!("python3 stdout"));
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            line
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            line.trim(),
            "connected",
            "python3 could not open {count} connections"
        );
        Self(child)
    }
}

impl Drop for IdleConnections {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The share of a core this process uses over 2 s while a listener on `port` is at the descriptor
/// limit with ~80 connections waiting in its backlog (100 connected, a few taken before the limit
/// bites). The limit is restored and the connections closed before it returns, so the caller can
/// then check the listener serves again. An acceptor that retries `accept()` at once spins at a
/// full core; one that pauses stays near zero.
pub async fn cpu_share_at_fd_limit(port: u16) -> f64 {
    let mut cpu = ProcessCpu::open();
    let limit = getrlimit(Resource::Nofile);
    // a few descriptors to spare, then none
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(open_fds() + 24),
            maximum: limit.maximum,
        },
    )
    .unwrap_or_else(|e| panic!("setrlimit: {e}"));
    let conns = IdleConnections::open(port, 100).await;
    // let the acceptor take what it can and hit the limit
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (cpu0, t0) = (cpu.used(), Instant::now());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let share = cpu.used().saturating_sub(cpu0).as_secs_f64() / t0.elapsed().as_secs_f64();
    setrlimit(Resource::Nofile, limit).unwrap_or_else(|e| panic!("setrlimit: {e}"));
    drop(conns);
    share
}
