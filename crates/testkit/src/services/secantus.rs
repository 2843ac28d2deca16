//! A SecantusDB server (`secantusd-py`, a MongoDB-wire server from PyPI, one-node replica set with
//! change streams) on a free port, in memory. It needs `secantusd-py` on the PATH (`.ci/run`
//! installs `secantusdb` in a venv and puts it there).

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc,
};

use super::{START, candidate_port};

/// Attempts at finding a port nobody takes while the server starts.
const ATTEMPTS: usize = 8;

/// A running SecantusDB, stopped when dropped.
pub struct SecantusDb {
    port: u16,
    child: Option<Child>,
}

/// Starts secantusd-py on `port`; `None` when it did not say it listens there (the port was
/// taken, or it exited).
fn launch(port: u16) -> Option<Child> {
    let mut child = Command::new("secantusd-py")
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--storage-path", ":memory:", "--enable-test-commands"])
        .args(["--log-level", "INFO"])
        // no secantusd.toml of the working directory is picked up
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start secantusd-py (pip install secantusdb; .ci/run does): {e}")
        });
    let (tx, rx) = mpsc::channel();
    let Some(stderr) = child.stderr.take() else {
        let _ = child.kill();
        let _ = child.wait();
        return None;
    };
    let wanted = format!("listening on 127.0.0.1:{port}");
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stderr).lines();
        let mut told = false;
        // keep draining after the line, so the server never blocks on a full pipe
        for line in lines.by_ref().map_while(Result::ok) {
            if !told && line.contains(&wanted) {
                told = true;
                let _ = tx.send(());
            }
        }
    });
    match rx.recv_timeout(START) {
        Ok(()) => Some(child),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            None
        }
    }
}

impl SecantusDb {
    /// Starts one on a free port and waits until it listens.
    pub fn start() -> Self {
        for _ in 0..ATTEMPTS {
            let port = candidate_port();
            if let Some(child) = launch(port) {
                return SecantusDb {
                    port,
                    child: Some(child),
                };
            }
        }
        panic!("secantusd-py found no free port in {ATTEMPTS} attempts")
    }

    /// `mongodb://127.0.0.1:<port>/?directConnection=true`.
    pub fn url(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?directConnection=true", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the server (clients see the connection drop; the data is gone).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again, empty, on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.child =
            Some(launch(self.port).unwrap_or_else(|| {
                panic!("secantusd-py could not get its port {} back", self.port)
            }));
    }
}

impl Drop for SecantusDb {
    fn drop(&mut self) {
        self.stop();
    }
}
