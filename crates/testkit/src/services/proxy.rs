//! nginx and HAProxy (Debian's packages) in front of test servers, each run with a config shipped
//! in `docs/deploy/`: the file as users get it, with only its ports replaced (the listen port
//! `8080`, the servers `3001`, `3002`, `3003`), and optionally some lines left out (a negative
//! control: the same proxy without its stickiness).

use std::{
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use super::{START, candidate_port};

/// Attempts at finding a port nobody takes while the proxy starts.
const ATTEMPTS: usize = 5;

/// Which proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyKind {
    /// `nginx`, with `docs/deploy/nginx.conf` included in a minimal main config.
    Nginx,
    /// `haproxy`, with `docs/deploy/haproxy.cfg`.
    Haproxy,
}

impl ProxyKind {
    fn program(self) -> &'static str {
        match self {
            ProxyKind::Nginx => "/usr/sbin/nginx",
            ProxyKind::Haproxy => "/usr/sbin/haproxy",
        }
    }

    fn shipped(self) -> PathBuf {
        let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/deploy");
        match self {
            ProxyKind::Nginx => docs.join("nginx.conf"),
            ProxyKind::Haproxy => docs.join("haproxy.cfg"),
        }
    }

    /// Whether the program is installed (`.ci/run` installs both).
    pub fn installed(self) -> bool {
        Path::new(self.program()).exists()
    }
}

/// A running proxy, stopped when dropped.
pub struct Proxy {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Proxy {
    /// Starts `kind` with its shipped config in front of `servers` (three), leaving out the lines
    /// that contain any of `without`.
    pub fn start(kind: ProxyKind, servers: [SocketAddr; 3], without: &[&str]) -> Self {
        assert!(
            kind.installed(),
            "{} is not installed: apt-get install nginx-light haproxy (.ci/run does)",
            kind.program()
        );
        let shipped = std::fs::read_to_string(kind.shipped())
            .unwrap_or_else(|e| panic!("{}: {e}", kind.shipped().display()));
        for _ in 0..ATTEMPTS {
            let port = candidate_port();
            let dir = std::env::temp_dir().join(format!("sb-proxy-{}-{port}", std::process::id()));
            let _ = std::fs::create_dir_all(&dir);
            let mut config: String = shipped
                .lines()
                .filter(|l| !without.iter().any(|w| l.contains(w)))
                .map(|l| format!("{l}\n"))
                .collect();
            config = config.replace(":8080", &format!(":{port}"));
            for (i, s) in servers.iter().enumerate() {
                config = config.replace(&format!("127.0.0.1:{}", 3001 + i), &s.to_string());
            }
            let mut child = match kind {
                ProxyKind::Nginx => {
                    let site = dir.join("socketio.conf");
                    write(&site, &config);
                    let main = dir.join("nginx.conf");
                    write(
                        &main,
                        &format!(
                            "pid {d}/nginx.pid;\nerror_log {d}/error.log;\nworker_processes 1;\n\
                             events {{}}\nhttp {{\n access_log off;\n client_body_temp_path {d};\n \
                             proxy_temp_path {d};\n fastcgi_temp_path {d};\n uwsgi_temp_path {d};\n \
                             scgi_temp_path {d};\n include {site};\n}}\n",
                            d = dir.display(),
                            site = site.display()
                        ),
                    );
                    Command::new(kind.program())
                        .arg("-c")
                        .arg(&main)
                        .args(["-g", "daemon off;"])
                        .stdout(Stdio::null())
                        .stderr(Stdio::inherit())
                        .spawn()
                }
                ProxyKind::Haproxy => {
                    let cfg = dir.join("haproxy.cfg");
                    write(&cfg, &config);
                    Command::new(kind.program())
                        .arg("-f")
                        .arg(&cfg)
                        .arg("-db")
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                }
            }
            .unwrap_or_else(|e| panic!("{}: {e}", kind.program()));
            let started = Instant::now();
            while started.elapsed() < START {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // exited: the port was taken, or the config is wrong
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Proxy { child, port, dir };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("{} did not start in {ATTEMPTS} attempts", kind.program())
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The proxy's URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // SIGTERM: nginx's master stops its workers (a SIGKILL would leave them running, still
        // listening on the port); SIGKILL only if it does not exit
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
