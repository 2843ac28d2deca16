//! The publishing connection to a single redis (not a cluster, not a sentinel): PUBLISH and
//! SPUBLISH written as RESP straight from the queue on a TCP connection of the transport's own,
//! their integer replies read back and counted.
//!
//! Why not fred for this: fred builds a command, a response channel and a router message per
//! PUBLISH, and routes every reply back to its caller. On the emitting server that was the
//! largest cost of a broadcast (callgrind, 20,000 emits of 64 B through the adapter path: about
//! 16k of 43k instructions per emit in fred's command path and the writer's join of futures). A
//! publish needs none of it: its reply is only counted. fred keeps the subscriber and every other
//! command (subscriber counts, checks), and publishing on a Redis Cluster or through a sentinel.

use std::{
    collections::VecDeque,
    sync::{Arc, Weak, atomic::Ordering},
    time::Duration,
};

use bytes::BytesMut;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::mpsc,
};

use super::{Inner, Namespace, Outgoing, take_fresh};

/// Where the direct connection goes, from the URL's config.
#[derive(Clone, Debug)]
pub(super) struct Target {
    host: String,
    port: u16,
    username: Option<String>,
    password: Option<String>,
}

impl Target {
    pub(super) fn host(&self) -> &str {
        &self.host
    }

    pub(super) fn port(&self) -> u16 {
        self.port
    }

    /// A target for a single redis; `None` for a cluster, a sentinel or a Unix socket (those
    /// publish through fred).
    pub(super) fn of(config: &fred::prelude::Config) -> Option<Target> {
        match &config.server {
            fred::types::config::ServerConfig::Centralized { server } => Some(Target {
                host: server.host.to_string(),
                port: server.port,
                username: config.username.clone(),
                password: config.password.clone(),
            }),
            _ => None,
        }
    }
}

/// Bytes written to the socket at once at most (a batch of large messages is written in parts).
const WRITE_CHUNK: usize = 256 * 1024;
/// A reply longer than this is not one redis sends to PUBLISH: the connection is dropped.
const MAX_REPLY: usize = 64 * 1024;

/// Appends `prefix`, `n` in decimal and CRLF.
fn header(buf: &mut BytesMut, prefix: u8, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&[prefix]);
    buf.extend_from_slice(&digits[at..]);
    buf.extend_from_slice(b"\r\n");
}

/// Appends a command: a RESP array of bulk strings.
pub(super) fn command(buf: &mut BytesMut, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len() + 24).sum();
    buf.reserve(len + 16);
    header(buf, b'*', parts.len());
    for p in parts {
        header(buf, b'$', p.len());
        buf.extend_from_slice(p);
        buf.extend_from_slice(b"\r\n");
    }
}

/// One reply of redis: `Ok(true)` for an integer or simple string, `Ok(false)` for an error
/// reply; `None` when `buf` does not hold a whole line yet.
fn reply(buf: &mut BytesMut) -> Option<Result<bool, String>> {
    let end = buf.windows(2).position(|w| w == b"\r\n")?;
    let line = buf.split_to(end + 2);
    Some(match line.first() {
        Some(b':' | b'+') => Ok(true),
        Some(b'-') => Ok(false),
        _ => Err(format!(
            "unexpected reply to a publish: {:?}",
            String::from_utf8_lossy(&line[..line.len().min(64)])
        )),
    })
}

#[derive(Debug)]
pub(super) enum Failure {
    Io(std::io::Error),
    Protocol(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Io(e) => write!(f, "{e}"),
            Failure::Protocol(e) => f.write_str(e),
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Io(e)
    }
}

/// The name of the publishing connection in `CLIENT LIST`.
pub(super) const PUBLISHER: &[u8] = b"switchboard-publish";

/// Connects, authenticates when the URL has a password, and names the connection (`CLIENT
/// LIST` shows `name`).
pub(super) async fn open(target: &Target, name: &[u8]) -> Result<TcpStream, Failure> {
    let mut stream = tokio::time::timeout(
        Duration::from_secs(5),
        TcpStream::connect((target.host.as_str(), target.port)),
    )
    .await
    .map_err(|_| Failure::Protocol("connect timed out".into()))??;
    stream.set_nodelay(true)?;
    let mut buf = BytesMut::new();
    let mut steps = Vec::new();
    if let Some(password) = &target.password {
        match &target.username {
            Some(user) => command(&mut buf, &[b"AUTH", user.as_bytes(), password.as_bytes()]),
            None => command(&mut buf, &[b"AUTH", password.as_bytes()]),
        }
        steps.push("AUTH");
    }
    command(&mut buf, &[b"CLIENT", b"SETNAME", name]);
    steps.push("CLIENT SETNAME");
    stream.write_all(&buf).await?;
    buf.clear();
    let answers = async {
        for step in &steps {
            let answer = loop {
                if let Some(r) = reply(&mut buf) {
                    break r;
                }
                if buf.len() > MAX_REPLY || stream.read_buf(&mut buf).await? == 0 {
                    return Err(Failure::Protocol(format!("no answer to {step}")));
                }
            };
            if answer != Ok(true) {
                return Err(Failure::Protocol(format!("{step} refused")));
            }
        }
        Ok(())
    };
    tokio::time::timeout(Duration::from_secs(5), answers)
        .await
        .map_err(|_| Failure::Protocol("no answer from redis".into()))??;
    Ok(stream)
}

/// Publishes what is queued on a connection of its own (`first`, opened by `connect`),
/// reconnecting with backoff (100 ms doubling to 5 s, as fred's clients). While it is down
/// publishes are refused at once (`enqueue` checks `Inner::direct_up`); what was queued or in
/// flight when the connection failed is dropped and counted, never sent late.
pub(super) async fn direct_writer(
    weak: Weak<Inner>,
    target: Target,
    first: TcpStream,
    mut rx: mpsc::Receiver<Outgoing>,
) {
    let mut pause = Duration::from_millis(100);
    let mut stream = Some(first);
    loop {
        if let Some(s) = stream.take() {
            pause = Duration::from_millis(100);
            let Some(inner) = weak.upgrade() else { return };
            inner.direct_up.store(true, Ordering::Release);
            drop(inner);
            let failure = run(&weak, s, &mut rx).await;
            let Some(inner) = weak.upgrade() else { return };
            inner.direct_up.store(false, Ordering::Release);
            match failure {
                None => return,
                Some(e) => tracing::warn!(
                    host = %target.host,
                    port = target.port,
                    "redis publishing connection lost: {e}"
                ),
            }
        }
        // what was queued meanwhile would go out late: dropped, as publishes to a redis that is down
        let Some(inner) = weak.upgrade() else { return };
        let mut stale = Vec::new();
        while let Ok(o) = rx.try_recv() {
            stale.push(o);
        }
        let bytes: usize = stale.iter().map(|o| o.payload.len()).sum();
        inner.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
        fail(
            &inner,
            stale.iter().map(|o| &o.ns),
            "publish failed, redis unreachable?",
        );
        drop(inner);
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
        match open(&target, PUBLISHER).await {
            Ok(s) => stream = Some(s),
            Err(e) => tracing::debug!(
                host = %target.host,
                port = target.port,
                "redis publishing connection: {e}"
            ),
        }
    }
}

/// Counts the publishes of `namespaces` as failed.
fn fail<'a>(inner: &Inner, namespaces: impl Iterator<Item = &'a Arc<Namespace>>, why: &str) {
    let mut n = 0;
    for ns in namespaces {
        ns.dropped("publish_failed");
        n += 1;
    }
    if n > 0 {
        inner.drops.note(n, why);
    }
}

/// Encodes `batch` and writes it, in parts of at most about [`WRITE_CHUNK`] bytes.
async fn write_batch(
    write: &mut tokio::net::tcp::OwnedWriteHalf,
    out: &mut BytesMut,
    batch: &mut Vec<Outgoing>,
    in_flight: &mut VecDeque<Arc<Namespace>>,
) -> std::io::Result<()> {
    for o in batch.drain(..) {
        let verb: &[u8] = if o.sharded { b"SPUBLISH" } else { b"PUBLISH" };
        command(out, &[verb, o.channel.as_bytes(), &o.payload]);
        in_flight.push_back(o.ns);
        if out.len() >= WRITE_CHUNK {
            write.write_all(out).await?;
            out.clear();
        }
    }
    write.write_all(out).await?;
    out.clear();
    Ok(())
}

/// Writes batches and reads replies on one connection until it fails (`Some`) or the transport
/// is gone (`None`).
async fn run(
    weak: &Weak<Inner>,
    stream: TcpStream,
    rx: &mut mpsc::Receiver<Outgoing>,
) -> Option<Failure> {
    let (mut read, mut write) = stream.into_split();
    let mut batch = Vec::with_capacity(256);
    let mut out = BytesMut::with_capacity(64 * 1024);
    let mut replies = BytesMut::with_capacity(4 * 1024);
    // the namespace of each publish waiting for its reply, in order
    let mut in_flight: VecDeque<Arc<Namespace>> = VecDeque::new();
    let failure = loop {
        tokio::select! {
            n = rx.recv_many(&mut batch, 256) => {
                if n == 0 {
                    return None;
                }
                let inner = weak.upgrade()?;
                take_fresh(&inner, &mut batch);
                drop(inner);
                if let Err(e) = write_batch(&mut write, &mut out, &mut batch, &mut in_flight).await {
                    break Some(Failure::Io(e));
                }
            }
            read = read.read_buf(&mut replies) => {
                match read {
                    Ok(0) => break Some(Failure::Io(std::io::ErrorKind::UnexpectedEof.into())),
                    Err(e) => break Some(Failure::Io(e)),
                    Ok(_) => {}
                }
                let inner = weak.upgrade()?;
                let mut bad = None;
                while let Some(r) = reply(&mut replies) {
                    let ns = in_flight.pop_front();
                    match r {
                        Ok(true) => {}
                        Ok(false) => fail(&inner, ns.iter(), "publish refused by redis"),
                        Err(e) => {
                            bad = Some(e);
                            break;
                        }
                    }
                }
                if let Some(e) = bad {
                    break Some(Failure::Protocol(e));
                }
                if replies.len() > MAX_REPLY {
                    break Some(Failure::Protocol("reply too long".into()));
                }
            }
        }
    };
    if let Some(inner) = weak.upgrade() {
        fail(
            &inner,
            in_flight.iter(),
            "publish failed, redis unreachable?",
        );
    }
    failure
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_resp_arrays_of_bulk_strings() {
        let mut buf = BytesMut::new();
        command(&mut buf, &[b"PUBLISH", b"socket.io#/#", b"\x93\xa1a"]);
        assert_eq!(
            &buf[..],
            b"*3\r\n$7\r\nPUBLISH\r\n$12\r\nsocket.io#/#\r\n$3\r\n\x93\xa1a\r\n"
        );
    }

    #[test]
    fn replies_are_read_line_by_line() {
        let mut buf = BytesMut::from(&b":2\r\n-ERR unknown command\r\n+OK\r\n:1"[..]);
        assert_eq!(reply(&mut buf), Some(Ok(true)));
        assert_eq!(reply(&mut buf), Some(Ok(false)));
        assert_eq!(reply(&mut buf), Some(Ok(true)));
        assert_eq!(reply(&mut buf), None, "a partial line waits for more");
        buf.extend_from_slice(b"\r\n$5\r\n");
        assert_eq!(reply(&mut buf), Some(Ok(true)));
        assert!(
            matches!(reply(&mut buf), Some(Err(_))),
            "not a publish reply"
        );
    }
}
