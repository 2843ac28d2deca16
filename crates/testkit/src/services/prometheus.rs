//! Debian's `prometheus`, started on a free port with a config the test writes, and queried over
//! its HTTP API.

use std::{
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value as Json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{START, candidate_port};

const PROGRAM: &str = "/usr/bin/prometheus";
const PROMTOOL: &str = "/usr/bin/promtool";

/// A running Prometheus, stopped (and its storage removed) when dropped.
pub struct Prometheus {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Prometheus {
    /// Whether `prometheus` and `promtool` are installed (`.ci/run` installs them).
    pub fn installed() -> bool {
        Path::new(PROGRAM).exists() && Path::new(PROMTOOL).exists()
    }

    /// `promtool check config` on `path`: its output, `Err` when the config is refused.
    pub fn check_config(path: &Path) -> Result<String, String> {
        let out = Command::new(PROMTOOL)
            .args(["check", "config"])
            .arg(path)
            .output()
            .unwrap_or_else(|e| panic!("{PROMTOOL}: {e}"));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            Ok(text)
        } else {
            Err(text)
        }
    }

    /// Starts Prometheus with `config` (YAML text).
    pub fn start(config: &str) -> Self {
        for _ in 0..5 {
            let port = candidate_port();
            let dir = std::env::temp_dir().join(format!("sb-prom-{}-{port}", std::process::id()));
            let _ = std::fs::create_dir_all(&dir);
            let file = dir.join("prometheus.yml");
            std::fs::write(&file, config).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            if let Err(e) = Self::check_config(&file) {
                panic!("promtool refuses the config: {e}\n{config}");
            }
            let mut child = Command::new(PROGRAM)
                .arg(format!("--config.file={}", file.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("{PROGRAM}: {e}"));
            let started = Instant::now();
            while started.elapsed() < START {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Prometheus { child, port, dir };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(&dir);
        }
        panic!("prometheus did not start")
    }

    /// The `data.result` of an instant query (`/api/v1/query`), or the error Prometheus gave.
    pub async fn query(&self, promql: &str) -> Result<Vec<Json>, String> {
        let path = format!("/api/v1/query?query={}", encode(promql));
        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .map_err(|e| e.to_string())?;
        conn.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut response = Vec::new();
        conn.read_to_end(&mut response)
            .await
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&response);
        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        let json: Json = serde_json::from_str(body).map_err(|e| format!("{e}: {text}"))?;
        if json["status"] != "success" {
            return Err(json.to_string());
        }
        Ok(json["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }
}

/// Percent-encoding of a query parameter.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
