//! The discovery server: pods register `{serverId, address}` over WebSocket and every pod gets the
//! whole roster after each change (protocol.md §8.2).

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    extract::{
        ConnectInfo, State,
        ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade},
    },
    response::IntoResponse,
    routing::get,
};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt, stream::SplitSink};
use switchboard_wire::{
    Limits,
    mesh::{DiscoveryMessage, PeerInfo},
};
use tokio::{
    net::TcpListener,
    sync::{Notify, mpsc, watch},
};

use crate::{
    admission::{Admission, Admitting, Refusals},
    metrics::DiscoveryMetrics,
};

/// Close code for a wrong or missing token.
pub const CLOSE_UNAUTHORIZED: u16 = 4401;
/// Close code when the service shuts down.
pub const CLOSE_GOING_AWAY: u16 = 1001;

/// Options of the discovery service.
#[derive(Clone, Debug)]
pub struct DiscoveryOptions {
    /// Shared secret pods must send in `register` (`MESH_AUTH_TOKEN`).
    pub auth_token: Option<String>,
    /// WebSocket ping interval; a pod that did not answer the previous ping is dropped (15 s).
    /// A write to a pod that takes longer than this also drops it (it stopped reading).
    pub ping_interval: Duration,
    /// Largest message accepted (64 KiB: a register is a few dozen bytes). A larger one closes
    /// the connection with 1009.
    pub max_message_size: usize,
    /// How long a new connection has for the whole handshake, from the first byte of its HTTP
    /// request to its `register` (10 s); then it is cut.
    pub handshake_timeout: Duration,
    /// Connections that may be waiting for their registration at once (1,024); further ones
    /// are closed as soon as they are accepted, so that slow or idle clients cannot take every
    /// file descriptor from the pods.
    pub max_pending: usize,
    /// Roster changes within this window are sent as one roster (100 ms): at most one push per
    /// pod per window, always the latest, instead of one per registration.
    pub roster_interval: Duration,
}

impl Default for DiscoveryOptions {
    fn default() -> Self {
        DiscoveryOptions {
            auth_token: None,
            ping_interval: Duration::from_secs(15),
            max_message_size: 64 * 1024,
            handshake_timeout: Duration::from_secs(10),
            max_pending: 1024,
            roster_interval: Duration::from_millis(100),
        }
    }
}

/// Close code for a message over `max_message_size`.
pub const CLOSE_TOO_BIG: u16 = 1009;
/// Close code for a second server id on one connection (one connection registers one server).
pub const CLOSE_POLICY: u16 = 1008;

/// What a connection's writer is asked to send besides rosters (bounded: a pod that does not
/// take these is dropped).
enum Out {
    Ping,
    Close(u16, &'static str),
}

/// A pod's connection as the registry sees it: a bounded control queue and the latest roster
/// (a roster supersedes the one before, so a slow pod never holds more than one).
struct Conn {
    control: mpsc::Sender<Out>,
    roster: watch::Sender<Option<Bytes>>,
}

struct Entry {
    address: String,
    conn: u64,
}

struct Inner {
    options: DiscoveryOptions,
    registered: Mutex<HashMap<String, Entry>>,
    connections: Mutex<HashMap<u64, Conn>>,
    next_conn: AtomicU64,
    /// Connection tasks running (each holds its socket).
    open: AtomicUsize,
    /// Bytes of rosters written to pods.
    roster_bytes: AtomicU64,
    /// Set when the roster changed; the pusher sends it at most once per `roster_interval`.
    roster_changed: Notify,
    pusher_started: AtomicBool,
    refusals: Arc<Refusals>,
    metrics: Option<DiscoveryMetrics>,
}

/// The discovery service, as a library: build it, then [`serve`](Discovery::serve) it or mount
/// its [`router`](Discovery::router).
#[derive(Clone)]
pub struct Discovery {
    inner: Arc<Inner>,
}

/// A discovery service serving in a task ([`Discovery::spawn`]); dropping it shuts it down as
/// [`shutdown`](RunningDiscovery::shutdown) does.
#[derive(Debug)]
pub struct RunningDiscovery {
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
}

impl RunningDiscovery {
    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its URL for pods: `ws://<addr>`.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Stops accepting and closes every pod with 1001 `discovery-shutdown`.
    pub fn shutdown(self) {
        let _ = self.stop.send(());
    }
}

/// The roster of a registry, sorted by server id.
fn roster_of(map: &HashMap<String, Entry>) -> Vec<PeerInfo> {
    let mut servers: Vec<PeerInfo> = map
        .iter()
        .map(|(id, e)| PeerInfo {
            server_id: id.clone(),
            address: e.address.clone(),
        })
        .collect();
    servers.sort_by(|a, b| a.server_id.cmp(&b.server_id));
    servers
}

impl Discovery {
    /// A discovery service; `metrics` registers `socketio_mesh_discovery_*` in a registry.
    pub fn new(options: DiscoveryOptions, metrics: Option<DiscoveryMetrics>) -> Self {
        Discovery {
            inner: Arc::new(Inner {
                options,
                registered: Mutex::new(HashMap::new()),
                connections: Mutex::new(HashMap::new()),
                next_conn: AtomicU64::new(0),
                open: AtomicUsize::new(0),
                roster_bytes: AtomicU64::new(0),
                roster_changed: Notify::new(),
                pusher_started: AtomicBool::new(false),
                refusals: Arc::new(Refusals::default()),
                metrics,
            }),
        }
    }

    /// `/` (the WebSocket endpoint; any path upgrades, as with Node's `ws` server) and `/health`.
    ///
    /// Mounted in your own server, the handshake deadline covers only the wait for `register`
    /// and there is no cap on waiting connections: [`serve`](Discovery::serve) applies both from
    /// the first byte.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/health", get(|| async { "ok" }))
            .fallback(get(upgrade))
            .with_state(self.clone())
    }

    /// Servers registered now.
    pub fn roster(&self) -> Vec<PeerInfo> {
        roster_of(
            &self
                .inner
                .registered
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        )
    }

    /// WebSocket connections open now, registered or not (each holds a socket).
    pub fn open_connections(&self) -> usize {
        self.inner.open.load(Ordering::Relaxed)
    }

    /// Bytes of rosters written to pods since the start.
    pub fn roster_bytes_sent(&self) -> u64 {
        self.inner.roster_bytes.load(Ordering::Relaxed)
    }

    /// Connections refused so far: (closed on accept because `max_pending` were waiting, cut at
    /// the handshake deadline).
    pub fn refused_connections(&self) -> (u64, u64) {
        let r = &self.inner.refusals;
        (
            r.over_capacity.load(Ordering::Relaxed),
            r.timed_out.load(Ordering::Relaxed),
        )
    }

    /// Serves on `listener` until `shutdown` resolves, then closes every pod with 1001
    /// `discovery-shutdown`. Connections get `handshake_timeout` to register, at most
    /// `max_pending` at once; a failing `accept()` (out of file descriptors) pauses the loop.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let this = self.clone();
        let listener = Admitting::new(
            listener,
            self.inner.options.max_pending,
            self.inner.options.handshake_timeout,
            self.inner.refusals.clone(),
        );
        let app = self
            .router()
            .into_make_service_with_connect_info::<Admission>();
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                shutdown.await;
                this.close_all();
            })
            .await
    }

    /// Serves on `listener` in a task of its own until the returned handle is shut down or
    /// dropped (embedding, tests).
    pub fn spawn(self, listener: TcpListener) -> std::io::Result<RunningDiscovery> {
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(self.serve(listener, async move {
            let _ = stopped.await;
        }));
        Ok(RunningDiscovery { addr, stop })
    }

    /// Binds `addr` (port 0: a free one) and serves there in a task of its own, as
    /// [`spawn`](Discovery::spawn).
    pub async fn spawn_on(self, addr: SocketAddr) -> std::io::Result<RunningDiscovery> {
        self.spawn(TcpListener::bind(addr).await?)
    }

    /// Closes every connection with 1001 `discovery-shutdown`.
    pub fn close_all(&self) {
        let conns = self
            .inner
            .connections
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for conn in conns.values() {
            let _ = conn
                .control
                .try_send(Out::Close(CLOSE_GOING_AWAY, "discovery-shutdown"));
        }
    }

    /// The roster changed: the pusher sends it within `roster_interval`.
    fn roster_changed(&self) {
        if !self.inner.pusher_started.swap(true, Ordering::SeqCst) {
            tokio::spawn(pusher(Arc::downgrade(&self.inner)));
        }
        self.inner.roster_changed.notify_one();
    }

    /// Puts the current roster in every registered pod's slot. One task does this, from the
    /// registry as it is now, so a pod can never get an older roster after a newer one.
    fn push_roster(&self) {
        let registered = self
            .inner
            .registered
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let message = DiscoveryMessage::Update {
            servers: roster_of(&registered),
        };
        let frame = Bytes::from(message.to_msgpack());
        let conns = self
            .inner
            .connections
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // one server id per connection: one roster per pod
        for entry in registered.values() {
            if let Some(c) = conns.get(&entry.conn) {
                c.roster.send_replace(Some(frame.clone()));
            }
        }
        let count = registered.len();
        drop(conns);
        drop(registered);
        if let Some(m) = &self.inner.metrics {
            m.roster_broadcasts.inc();
            m.registered.set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }

    async fn connection(self, socket: WebSocket, admission: Option<Admission>) {
        let inner = &self.inner;
        let conn = inner.next_conn.fetch_add(1, Ordering::Relaxed);
        inner.open.fetch_add(1, Ordering::Relaxed);
        let (sink, mut stream) = socket.split();
        let (control, control_rx) = mpsc::channel(CONTROL_QUEUE);
        let (roster, roster_rx) = watch::channel(None);
        inner
            .connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                conn,
                Conn {
                    control: control.clone(),
                    roster,
                },
            );
        let mut writer = tokio::spawn(write(
            sink,
            control_rx,
            roster_rx,
            inner.options.ping_interval,
            self.clone(),
        ));
        let mut writer_done = false;
        let mut ticker = tokio::time::interval(inner.options.ping_interval);
        ticker.tick().await;
        let mut answered = true;
        let limits = Limits {
            max_size: inner.options.max_message_size,
            ..Limits::DEFAULT
        };
        let register_by = tokio::time::sleep(inner.options.handshake_timeout);
        tokio::pin!(register_by);
        let mut registered_as: Option<String> = None;
        let mut close: Option<(u16, &'static str)> = None;
        loop {
            tokio::select! {
                biased;
                _ = &mut writer => {
                    // it sent a Close (shutdown), or could not write for a whole ping interval,
                    // or the socket failed
                    writer_done = true;
                    tracing::debug!(conn, "the connection's writer ended: finishing");
                    break;
                }
                () = &mut register_by, if registered_as.is_none() => {
                    tracing::info!(conn, "no register within the handshake deadline: closing");
                    close = Some((CLOSE_POLICY, "register-timeout"));
                    break;
                }
                _ = ticker.tick() => {
                    if !answered {
                        tracing::info!(conn, "no pong since the last ping: terminating");
                        break;
                    }
                    answered = false;
                    if control.try_send(Out::Ping).is_err() {
                        tracing::info!(conn, "the pod stopped reading: terminating");
                        break;
                    }
                }
                frame = stream.next() => {
                    let message = match frame {
                        Some(Ok(message)) => message,
                        Some(Err(e)) => {
                            if too_big(&e) {
                                tracing::info!(conn, "a message over {} bytes: closing", inner.options.max_message_size);
                                close = Some((CLOSE_TOO_BIG, "message-too-big"));
                            }
                            break;
                        }
                        None => break,
                    };
                    match message {
                        Message::Pong(_) => answered = true,
                        Message::Binary(b) => {
                            let Ok(DiscoveryMessage::Register { server_id, address, token }) = DiscoveryMessage::from_msgpack(&b, &limits) else {
                                continue; // undecodable or another type: ignored, as in Node
                            };
                            if let Some(expected) = &inner.options.auth_token
                                && !token.as_deref().is_some_and(|t| switchboard_wire::ids::same_secret(t, expected))
                            {
                                tracing::warn!(conn, %server_id, "registration with a wrong token");
                                close = Some((CLOSE_UNAUTHORIZED, "unauthorized"));
                                break;
                            }
                            if registered_as.as_ref().is_some_and(|id| *id != server_id) {
                                tracing::warn!(conn, %server_id, "a second server id on one connection: closing");
                                close = Some((CLOSE_POLICY, "one-server-id-per-connection"));
                                break;
                            }
                            if let Some(a) = &admission {
                                a.admit();
                            }
                            tracing::info!(%server_id, %address, "registered");
                            inner.registered.lock().unwrap_or_else(|e| e.into_inner()).insert(server_id.clone(), Entry { address, conn });
                            registered_as = Some(server_id);
                            if let Some(m) = &inner.metrics {
                                m.registrations.inc();
                            }
                            self.roster_changed();
                        }
                        Message::Close(_) => break,
                        _ => {}
                    }
                }
            }
        }
        // the registry forgets this connection: no more rosters are queued for it
        let entry = inner
            .connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&conn);
        if let Some(id) = registered_as {
            let removed = {
                let mut map = inner.registered.lock().unwrap_or_else(|e| e.into_inner());
                // a re-registration on another connection replaced this one: keep it
                if map.get(&id).is_some_and(|e| e.conn == conn) {
                    map.remove(&id);
                    true
                } else {
                    false
                }
            };
            if removed {
                tracing::info!(server_id = %id, "gone");
                if let Some(m) = &inner.metrics {
                    m.disconnects.inc();
                }
                self.roster_changed();
            }
        }
        if let Some((code, reason)) = close {
            let _ = control.try_send(Out::Close(code, reason));
        }
        // the writer sends what is queued (a Close, or the reply to the pod's Close), then ends;
        // a pod that does not read is not waited for
        drop((entry, control));
        if !writer_done
            && tokio::time::timeout(CLOSE_GRACE, &mut writer)
                .await
                .is_err()
        {
            writer.abort();
        }
        inner.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Control messages a pod may have waiting (pings and a Close): one that lets them pile up is
/// not reading.
const CONTROL_QUEUE: usize = 4;

/// How long a closing connection's writer may take to send its Close.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Whether a read failed because the message was over the size limit.
fn too_big(e: &axum::Error) -> bool {
    // axum hides the tungstenite error's type: its text names the capacity error
    e.to_string().contains("Space limit exceeded")
}

/// Writes a pod's rosters (the latest only) and control messages; ends when a write takes longer
/// than `limit`, on a Close, or when the connection is forgotten. Closes the socket on its way
/// out (which also answers a Close the pod sent).
async fn write(
    mut sink: SplitSink<WebSocket, Message>,
    mut control: mpsc::Receiver<Out>,
    mut roster: watch::Receiver<Option<Bytes>>,
    limit: Duration,
    discovery: Discovery,
) {
    loop {
        let (message, closing, roster_len) = tokio::select! {
            biased;
            out = control.recv() => match out {
                Some(Out::Ping) => (Message::Ping(Bytes::new()), false, 0),
                Some(Out::Close(code, reason)) => (
                    Message::Close(Some(CloseFrame { code, reason: reason.into() })),
                    true,
                    0,
                ),
                None => break,
            },
            changed = roster.changed() => {
                if changed.is_err() {
                    break;
                }
                let Some(frame) = roster.borrow_and_update().clone() else { continue };
                let len = frame.len();
                (Message::Binary(frame), false, len)
            }
        };
        match tokio::time::timeout(limit, sink.send(message)).await {
            Ok(Ok(())) => {}
            _ => return,
        }
        if roster_len > 0 {
            discovery
                .inner
                .roster_bytes
                .fetch_add(roster_len as u64, Ordering::Relaxed);
        }
        if closing {
            break;
        }
    }
    let _ = tokio::time::timeout(CLOSE_GRACE, sink.close()).await;
}

/// Sends the roster after changes, at most once per `roster_interval`: registrations arriving
/// together (a deployment starting 1,000 pods) cost one roster per pod per interval, not one per
/// registration. Ends with the service.
async fn pusher(inner: Weak<Inner>) {
    loop {
        let changed = {
            let Some(inner) = inner.upgrade() else { return };
            let interval = inner.options.roster_interval;
            let waited =
                tokio::time::timeout(Duration::from_secs(1), inner.roster_changed.notified())
                    .await
                    .is_ok();
            waited.then_some(interval)
        };
        let Some(interval) = changed else { continue };
        tokio::time::sleep(interval).await;
        let Some(inner) = inner.upgrade() else { return };
        Discovery { inner }.push_roster();
    }
}

async fn upgrade(
    State(discovery): State<Discovery>,
    extensions: axum::http::Extensions,
    ws: WebSocketUpgrade,
) -> impl IntoResponse {
    let admission = extensions
        .get::<ConnectInfo<Admission>>()
        .map(|c| c.0.clone());
    let max = discovery.inner.options.max_message_size;
    ws.max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| discovery.connection(socket, admission))
}
