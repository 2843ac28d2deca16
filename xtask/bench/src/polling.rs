//! Long-polling sessions through a sticky primary, or through HAProxy in front of three servers
//! (round robin with `switchboard-forward`, or the shipped sticky-cookie config without it), as
//! browsers on polling run them: each session makes round trips (an event with an ack sent by
//! POST, the ack read back by GET) over HTTP/1.1 with keep-alive whenever the server allows it,
//! keeping the cookies it is given. Figures: round trips/s over all sessions, p50 and p99 of a
//! round trip, TCP connections opened per round trip, sessions that failed.

use std::{net::SocketAddr, time::Duration};

use anyhow::{Context, Result, bail};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};

use crate::{
    Sizes,
    procs::{bench_server, server},
    scenarios::{Figures, latency},
    shared::now_us,
};

/// The secret of the forwarding servers.
const SECRET: &str = "the bench cluster's forwarding secret";

/// Three `bench-server --impl echo` behind HAProxy (Debian's, with `docs/deploy/haproxy.cfg`):
/// `forward`, round robin without the cookie and servers with `switchboard-forward`; otherwise
/// the shipped sticky-cookie config and servers without it.
pub(crate) async fn proxied(forward: bool, s: &Sizes) -> Result<Figures> {
    use switchboard_testkit::services::{Proxy, ProxyKind};
    if !ProxyKind::Haproxy.installed() {
        bail!("haproxy is not installed (apt-get install haproxy)");
    }
    let mut procs = Vec::new();
    let mut addrs = Vec::new();
    for _ in 0..3 {
        let mut command = std::process::Command::new(bench_server());
        command.args(["--impl", "echo"]);
        if forward {
            command.args(["--forward-secret", SECRET]);
        }
        let (p, a) = server(command)?;
        procs.push(p);
        addrs.push(a);
    }
    let without: &[&str] = if forward { &["cookie SERVERID"] } else { &[] };
    let proxy = Proxy::start(ProxyKind::Haproxy, [addrs[0], addrs[1], addrs[2]], without);
    let figures = polling(SocketAddr::from(([127, 0, 0, 1], proxy.port())), s).await;
    drop((proxy, procs));
    figures
}

/// One HTTP/1.1 client connection, reopened when the server closes it, and its cookie.
struct Http {
    addr: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
    opened: u64,
    /// `name=value` of the last `Set-Cookie` (a sticky proxy's).
    cookie: Option<String>,
}

impl Http {
    fn new(addr: SocketAddr) -> Self {
        Http {
            addr,
            conn: None,
            opened: 0,
            cookie: None,
        }
    }

    /// One request; the status and the body. A kept-alive connection the server closed in the
    /// meantime is reopened once.
    async fn request(&mut self, method: &str, path: &str, body: &[u8]) -> Result<(u16, Vec<u8>)> {
        for attempt in 0..2 {
            let fresh = self.conn.is_none();
            let conn = match &mut self.conn {
                Some(c) => c,
                None => {
                    let s = TcpStream::connect(self.addr).await?;
                    s.set_nodelay(true)?;
                    self.opened += 1;
                    self.conn.insert(BufReader::new(s))
                }
            };
            let cookie = self
                .cookie
                .as_ref()
                .map(|c| format!("Cookie: {c}\r\n"))
                .unwrap_or_default();
            let head = format!(
                "{method} {path} HTTP/1.1\r\nHost: bench\r\n{cookie}Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            let mut req = head.into_bytes();
            req.extend_from_slice(body);
            match response(conn, &req).await {
                Ok((status, body, close, cookie)) => {
                    if close {
                        self.conn = None;
                    }
                    if cookie.is_some() {
                        self.cookie = cookie;
                    }
                    return Ok((status, body));
                }
                Err(e) => {
                    self.conn = None;
                    if fresh || attempt == 1 {
                        return Err(e);
                    }
                }
            }
        }
        bail!("unreachable")
    }
}

/// What a response says: status, body, whether the connection closes after it, the cookie it sets.
type Answer = (u16, Vec<u8>, bool, Option<String>);

/// Writes `req`, reads the response.
async fn response(conn: &mut BufReader<TcpStream>, req: &[u8]) -> Result<Answer> {
    conn.get_mut().write_all(req).await?;
    let mut line = String::new();
    if conn.read_line(&mut line).await? == 0 {
        bail!("closed before a response");
    }
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("status line {line:?}"))?;
    let (mut length, mut chunked, mut close) = (None, false, line.starts_with("HTTP/1.0"));
    let mut cookie = None;
    loop {
        line.clear();
        conn.read_line(&mut line).await?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        if k.trim().eq_ignore_ascii_case("set-cookie") {
            cookie = v.trim().split(';').next().map(str::to_owned);
        }
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_ascii_lowercase());
        match k.as_str() {
            "content-length" => length = v.parse::<usize>().ok(),
            "transfer-encoding" => chunked = v.contains("chunked"),
            "connection" => close = v.contains("close"),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            conn.read_line(&mut line).await?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .with_context(|| format!("chunk size {line:?}"))?;
            let mut chunk = vec![0; size + 2];
            conn.read_exact(&mut chunk).await?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(n) = length {
        body.resize(n, 0);
        conn.read_exact(&mut body).await?;
    } else {
        conn.read_to_end(&mut body).await?;
        close = true;
    }
    Ok((status, body, close, cookie))
}

/// The Engine.IO packets of a polling payload.
fn packets(body: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(body)
        .split('\u{1e}')
        .map(str::to_owned)
        .collect()
}

/// One session: handshake, CONNECT, `n` acked round trips; their latencies (µs) and the TCP
/// connections it opened.
async fn session(addr: SocketAddr, n: u64) -> Result<(Vec<u32>, u64)> {
    let mut h = Http::new(addr);
    let (status, body) = h
        .request("GET", "/socket.io/?EIO=4&transport=polling", b"")
        .await?;
    if status != 200 {
        bail!("handshake: {status} {}", String::from_utf8_lossy(&body));
    }
    let text = String::from_utf8_lossy(&body);
    let start = text.find("\"sid\":\"").context("no sid")? + 7;
    let sid: String = text[start..].chars().take_while(|c| *c != '"').collect();
    let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    let post = async |h: &mut Http, packet: &str| -> Result<()> {
        let (status, body) = h.request("POST", &path, packet.as_bytes()).await?;
        if status != 200 {
            bail!("POST: {status} {}", String::from_utf8_lossy(&body));
        }
        Ok(())
    };
    // polls until a packet starts with `prefix`, answering pings
    let until = async |h: &mut Http, prefix: &str| -> Result<()> {
        loop {
            let (status, body) = h.request("GET", &path, b"").await?;
            if status != 200 {
                bail!("GET: {status} {}", String::from_utf8_lossy(&body));
            }
            let mut found = false;
            for p in packets(&body) {
                if p == "2" {
                    post(h, "3").await?;
                } else if p.starts_with(prefix) {
                    found = true;
                }
            }
            if found {
                return Ok(());
            }
        }
    };
    post(&mut h, "40").await?;
    until(&mut h, "40").await?;
    let pad = "x".repeat(48);
    let mut lat = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    for i in 0..n {
        let t = now_us();
        post(&mut h, &format!("42{i}[\"echo\",\"{pad}\"]")).await?;
        until(&mut h, &format!("43{i}[")).await?;
        lat.push(u32::try_from(now_us() - t).unwrap_or(u32::MAX));
    }
    let _ = post(&mut h, "1").await;
    Ok((lat, h.opened))
}

/// `sessions` concurrent sessions of `round_trips` each through the primary at `addr`.
pub(crate) async fn polling(addr: SocketAddr, s: &Sizes) -> Result<Figures> {
    // the workers come up after the primary listens: wait for a handshake to succeed
    let deadline = now_us() + 30_000_000;
    loop {
        let mut h = Http::new(addr);
        match h
            .request("GET", "/socket.io/?EIO=4&transport=polling", b"")
            .await
        {
            Ok((200, _)) => break,
            _ if now_us() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            other => bail!("no worker answered: {other:?}"),
        }
    }
    let started = now_us();
    let tasks: Vec<_> = (0..s.polling_sessions)
        .map(|_| tokio::spawn(session(addr, s.polling_round_trips)))
        .collect();
    let mut all = Vec::new();
    let (mut opened, mut failed) = (0u64, 0u64);
    for t in tasks {
        match t.await {
            Ok(Ok((lat, o))) => {
                all.extend(lat);
                opened += o;
            }
            Ok(Err(e)) => {
                failed += 1;
                println!("  a polling session failed: {e:#}");
            }
            Err(e) => {
                failed += 1;
                println!("  a polling session panicked: {e}");
            }
        }
    }
    let secs = (now_us() - started) as f64 / 1e6;
    let mut f = Figures::new();
    f.insert("round_trips_per_s".into(), all.len() as f64 / secs);
    f.insert(
        "connections_per_round_trip".into(),
        opened as f64 / all.len().max(1) as f64,
    );
    f.insert("failed_sessions".into(), failed as f64);
    latency(&mut f, "", all);
    Ok(f)
}
