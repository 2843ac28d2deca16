//! The worker side: the connections the primary hands over (an `axum::serve` listener), the
//! sessions this worker opens and closes (told to the primary), and the rule that keeps
//! routing right: every HTTP response but a WebSocket upgrade closes its connection, so the
//! next request goes through the primary again.

use std::{
    collections::{HashMap, HashSet},
    io,
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Body,
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::Response,
};
use socketioxide::{SocketIo, adapter::Adapter};
use tokio::{
    io::AsyncWriteExt,
    net::{TcpStream, UnixStream, unix::OwnedWriteHalf},
    sync::{mpsc, watch},
};

use crate::{
    StickyError,
    control::{self, Up},
};

/// The largest handshake response the worker reads to learn the session id.
const MAX_HANDSHAKE: usize = 64 * 1024;

/// Which process this is, from the environment the primary gives its workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Not started by a sticky primary: this process is (or starts) the primary.
    Primary,
    /// A worker started by the primary.
    Worker {
        /// Its index among the primary's workers, from 0.
        index: usize,
    },
}

/// This process's role.
pub fn role() -> Role {
    match std::env::var(control::ENV_WORKER)
        .ok()
        .and_then(|i| i.parse().ok())
    {
        Some(index) => Role::Worker { index },
        None => Role::Primary,
    }
}

/// A session this worker told the primary about.
struct Seen {
    since: Instant,
    live: bool,
}

struct Inner {
    index: usize,
    up: tokio::sync::Mutex<OwnedWriteHalf>,
    sessions: Mutex<HashMap<String, Seen>>,
    closed: watch::Sender<bool>,
}

impl Inner {
    async fn tell(&self, up: Up) {
        let mut w = self.up.lock().await;
        if let Err(e) = w.write_all(&up.encode()).await {
            tracing::debug!("sticky worker: cannot reach the primary: {e}");
        }
    }

    async fn opened(&self, sid: &str) {
        let new = {
            let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
            if sessions.contains_key(sid) {
                false
            } else {
                sessions.insert(
                    sid.to_owned(),
                    Seen {
                        since: Instant::now(),
                        live: false,
                    },
                );
                true
            }
        };
        if new {
            self.tell(Up::Open(sid.to_owned())).await;
        }
    }
}

/// This worker's link to its primary: see the [crate docs](crate).
#[derive(Clone)]
pub struct Worker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("index", &self.inner.index)
            .finish()
    }
}

/// The connections the primary hands to this worker, for `axum::serve`.
#[derive(Debug)]
pub struct StickyListener {
    rx: mpsc::Receiver<TcpStream>,
    addr: SocketAddr,
}

impl axum::serve::Listener for StickyListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            let Some(stream) = self.rx.recv().await else {
                // the primary is gone: nothing more will come (see `Worker::closed`)
                return std::future::pending().await;
            };
            if let Ok(peer) = stream.peer_addr() {
                return (stream, peer);
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.addr)
    }
}

fn env(name: &'static str) -> Result<String, StickyError> {
    std::env::var(name).map_err(|_| StickyError::NotAWorker(name))
}

impl Worker {
    /// Connects to the primary that started this process; the listener yields the connections
    /// it hands over. Fails with [`StickyError::NotAWorker`] in a process the primary did not
    /// start.
    pub async fn connect() -> Result<(Worker, StickyListener), StickyError> {
        let index: usize = env(control::ENV_WORKER)?
            .parse()
            .map_err(|_| StickyError::NotAWorker(control::ENV_WORKER))?;
        let path = PathBuf::from(env(control::ENV_SOCKET)?);
        let token = env(control::ENV_TOKEN)?;
        let addr: SocketAddr = env(control::ENV_ADDR)?
            .parse()
            .map_err(|_| StickyError::NotAWorker(control::ENV_ADDR))?;
        let stream = UnixStream::connect(&path)
            .await
            .map_err(|source| StickyError::Control { path, source })?;
        let (rd, mut wr) = stream.into_split();
        wr.write_all(&Up::Hello { index, token }.encode())
            .await
            .map_err(StickyError::Io)?;
        let (closed, _) = watch::channel(false);
        let inner = Arc::new(Inner {
            index,
            up: tokio::sync::Mutex::new(wr),
            sessions: Mutex::new(HashMap::new()),
            closed,
        });
        let (tx, rx) = mpsc::channel(64);
        let receiver = inner.clone();
        tokio::spawn(async move {
            loop {
                match control::recv_fd(rd.as_ref()).await {
                    Ok(Some(fd)) => {
                        let std = std::net::TcpStream::from(fd);
                        let stream = std
                            .set_nonblocking(true)
                            .and_then(|()| TcpStream::from_std(std));
                        match stream {
                            Ok(stream) => {
                                let _ = stream.set_nodelay(true);
                                if tx.send(stream).await.is_err() {
                                    break;
                                }
                            }
                            Err(e) => tracing::warn!("sticky worker: a handed connection: {e}"),
                        }
                    }
                    Ok(None) => {
                        tracing::info!("sticky worker: the primary has gone");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!("sticky worker: control socket: {e}");
                        break;
                    }
                }
            }
            let _ = receiver.closed.send(true);
        });
        // SIGTERM from the primary: a graceful stop (`closed`)
        let terminated = inner.clone();
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::spawn(async move {
                if term.recv().await.is_some() {
                    let _ = terminated.closed.send(true);
                }
            });
        }
        Ok((Worker { inner }, StickyListener { rx, addr }))
    }

    /// This worker's index among the primary's workers.
    pub fn index(&self) -> usize {
        self.inner.index
    }

    /// Completes when this worker should stop: SIGTERM (the primary stopping), or the primary
    /// gone. Pass it to `axum::serve(..).with_graceful_shutdown`.
    pub async fn closed(&self) {
        let mut rx = self.inner.closed.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }

    /// The app with what sticky routing needs: the session of every polling handshake is told
    /// to the primary before the response leaves, and every response but a WebSocket upgrade
    /// closes its connection (the next request of the connection may belong to a session of
    /// another worker; the primary routes each connection once).
    pub fn router<S: Clone + Send + Sync + 'static>(&self, app: Router<S>) -> Router<S> {
        app.layer(middleware::from_fn_with_state(self.inner.clone(), sessions))
    }

    /// Keeps the primary's view of this worker's sessions in step with `io`: sessions opened
    /// over WebSocket alone are told as they appear, closed ones as they go (checked every
    /// second). Without it the primary still routes, but its session counts only grow.
    pub fn watch<A: Adapter>(&self, io: SocketIo<A>) {
        let inner = Arc::downgrade(&self.inner);
        // a handshake whose client never connects to a namespace: closed by the engine then
        let grace = io.config().connect_timeout + Duration::from_secs(1);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = inner.upgrade() else {
                    return;
                };
                let live: HashSet<String> = io
                    .nsps()
                    .into_iter()
                    .flat_map(|ns| ns.sockets())
                    .map(|s| s.id.to_string())
                    .collect();
                let mut open = Vec::new();
                let mut close = Vec::new();
                {
                    let mut sessions = inner.sessions.lock().unwrap_or_else(|e| e.into_inner());
                    for sid in &live {
                        match sessions.get_mut(sid) {
                            Some(seen) => seen.live = true,
                            None => {
                                sessions.insert(
                                    sid.clone(),
                                    Seen {
                                        since: Instant::now(),
                                        live: true,
                                    },
                                );
                                open.push(sid.clone());
                            }
                        }
                    }
                    sessions.retain(|sid, seen| {
                        let keep =
                            live.contains(sid) || (!seen.live && seen.since.elapsed() < grace);
                        if !keep {
                            close.push(sid.clone());
                        }
                        keep
                    });
                }
                if !open.is_empty() || !close.is_empty() {
                    tracing::debug!(
                        worker = inner.index,
                        ?open,
                        ?close,
                        "sticky worker: sessions"
                    );
                }
                for sid in open {
                    inner.tell(Up::Open(sid)).await;
                }
                for sid in close {
                    inner.tell(Up::Close(sid)).await;
                }
            }
        });
    }
}

/// The middleware of [`Worker::router`].
async fn sessions(State(inner): State<Arc<Inner>>, req: Request, next: Next) -> Response {
    let handshake = req.uri().query().is_some_and(is_polling_handshake);
    let mut res = next.run(req).await;
    if handshake && res.status() == StatusCode::OK {
        let (parts, body) = res.into_parts();
        res = match axum::body::to_bytes(body, MAX_HANDSHAKE).await {
            Ok(bytes) => {
                if let Some(sid) = handshake_sid(&bytes) {
                    // before the client can learn the sid: its next request finds its owner
                    inner.opened(sid).await;
                }
                Response::from_parts(parts, Body::from(bytes))
            }
            Err(_) => {
                let mut r = Response::new(Body::empty());
                *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                r
            }
        };
    }
    if res.status() != StatusCode::SWITCHING_PROTOCOLS {
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    res
}

/// `EIO=…&transport=polling` without `sid`: a new session's first request.
fn is_polling_handshake(query: &str) -> bool {
    let mut eio = false;
    let mut polling = false;
    for kv in query.split('&') {
        match kv.split_once('=') {
            Some(("EIO", _)) => eio = true,
            Some(("transport", "polling")) => polling = true,
            Some(("sid", _)) => return false,
            _ => {}
        }
    }
    eio && polling
}

/// The `sid` of an Engine.IO open packet (`0{"sid":"…",…}`, v3's length prefix allowed).
fn handshake_sid(body: &[u8]) -> Option<&str> {
    const KEY: &[u8] = b"\"sid\":\"";
    let start = body.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let len = body[start..].iter().position(|&b| b == b'"')?;
    let sid = std::str::from_utf8(&body[start..start + len]).ok()?;
    crate::head::is_sid(sid).then_some(sid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshakes() {
        assert!(is_polling_handshake("EIO=4&transport=polling&t=abc"));
        assert!(!is_polling_handshake(
            "EIO=4&transport=polling&sid=AbCdEfGhIjKlMnOp"
        ));
        assert!(!is_polling_handshake("EIO=4&transport=websocket"));
        assert!(!is_polling_handshake("transport=polling"));
        let open = br#"0{"sid":"AbCdEfGhIjKlMnOp","upgrades":["websocket"],"pingInterval":25000}"#;
        assert_eq!(handshake_sid(open), Some("AbCdEfGhIjKlMnOp"));
        assert_eq!(
            handshake_sid(b"96:0{\"sid\":\"Ab-d_fGhIjKlMnOpQrSt\"}"),
            Some("Ab-d_fGhIjKlMnOpQrSt")
        );
        assert_eq!(handshake_sid(b"0{\"sid\":\"short\"}"), None);
        assert_eq!(handshake_sid(b"garbage"), None);
    }
}
