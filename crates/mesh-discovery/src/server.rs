//! The discovery server: pods register `{serverId, address}` over WebSocket and every pod gets the
//! whole roster after each change (protocol.md §8.2).

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    extract::{
        State,
        ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade},
    },
    response::IntoResponse,
    routing::get,
};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use switchboard_wire::{
    Limits,
    mesh::{DiscoveryMessage, PeerInfo},
};
use tokio::{net::TcpListener, sync::mpsc};

use crate::metrics::DiscoveryMetrics;

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
    pub ping_interval: Duration,
    /// Largest message accepted (64 KiB: a register is a few dozen bytes).
    pub max_message_size: usize,
}

impl Default for DiscoveryOptions {
    fn default() -> Self {
        DiscoveryOptions {
            auth_token: None,
            ping_interval: Duration::from_secs(15),
            max_message_size: 64 * 1024,
        }
    }
}

enum Out {
    Frame(Bytes),
    Ping,
    Close(u16, &'static str),
}

struct Entry {
    address: String,
    conn: u64,
}

struct Inner {
    options: DiscoveryOptions,
    registered: Mutex<HashMap<String, Entry>>,
    connections: Mutex<HashMap<u64, mpsc::UnboundedSender<Out>>>,
    next_conn: AtomicU64,
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
                metrics,
            }),
        }
    }

    /// `/` (the WebSocket endpoint; any path upgrades, as with Node's `ws` server) and `/health`.
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

    /// Serves on `listener` until `shutdown` resolves, then closes every pod with 1001
    /// `discovery-shutdown`.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let this = self.clone();
        let app = self
            .router()
            .into_make_service_with_connect_info::<SocketAddr>();
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
        let conns: Vec<_> = self
            .inner
            .connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for tx in conns {
            let _ = tx.send(Out::Close(CLOSE_GOING_AWAY, "discovery-shutdown"));
        }
    }

    /// Sends the roster to every registered pod. Computed and sent under the registry's lock:
    /// two changes at once (two pods registering together) must not reach a pod out of order,
    /// or its last update would be the stale one and it would drop a peer for good.
    fn broadcast_roster(&self) {
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
        for entry in registered.values() {
            if let Some(tx) = conns.get(&entry.conn) {
                let _ = tx.send(Out::Frame(frame.clone()));
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

    async fn connection(self, socket: WebSocket) {
        let conn = self.inner.next_conn.fetch_add(1, Ordering::Relaxed);
        let (mut sink, mut stream) = socket.split();
        let (tx, mut rx) = mpsc::unbounded_channel();
        self.inner
            .connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(conn, tx.clone());
        let writer = tokio::spawn(async move {
            while let Some(out) = rx.recv().await {
                let sent = match out {
                    Out::Frame(b) => sink.send(Message::Binary(b)).await,
                    Out::Ping => sink.send(Message::Ping(Bytes::new())).await,
                    Out::Close(code, reason) => {
                        let _ = sink
                            .send(Message::Close(Some(CloseFrame {
                                code,
                                reason: reason.into(),
                            })))
                            .await;
                        break;
                    }
                };
                if sent.is_err() {
                    break;
                }
            }
        });
        let mut ticker = tokio::time::interval(self.inner.options.ping_interval);
        ticker.tick().await;
        let mut answered = true;
        let limits = Limits {
            max_size: self.inner.options.max_message_size,
            ..Limits::DEFAULT
        };
        let mut registered_as: Option<String> = None;
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    if !answered {
                        tracing::info!(conn, "no pong since the last ping: terminating");
                        break;
                    }
                    answered = false;
                    let _ = tx.send(Out::Ping);
                }
                frame = stream.next() => {
                    let Some(Ok(frame)) = frame else { break };
                    match frame {
                        Message::Pong(_) => answered = true,
                        Message::Binary(b) => {
                            let Ok(DiscoveryMessage::Register { server_id, address, token }) = DiscoveryMessage::from_msgpack(&b, &limits) else {
                                continue; // undecodable or another type: ignored, as in Node
                            };
                            if let Some(expected) = &self.inner.options.auth_token
                                && !token.as_deref().is_some_and(|t| switchboard_wire::ids::same_secret(t, expected))
                            {
                                tracing::warn!(conn, %server_id, "registration with a wrong token");
                                let _ = tx.send(Out::Close(CLOSE_UNAUTHORIZED, "unauthorized"));
                                break;
                            }
                            tracing::info!(%server_id, %address, "registered");
                            self.inner.registered.lock().unwrap_or_else(|e| e.into_inner()).insert(server_id.clone(), Entry { address, conn });
                            registered_as = Some(server_id);
                            if let Some(m) = &self.inner.metrics {
                                m.registrations.inc();
                            }
                            self.broadcast_roster();
                        }
                        Message::Close(_) => break,
                        _ => {}
                    }
                }
            }
        }
        self.inner
            .connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&conn);
        if let Some(id) = registered_as {
            let removed = {
                let mut map = self
                    .inner
                    .registered
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
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
                if let Some(m) = &self.inner.metrics {
                    m.disconnects.inc();
                }
                self.broadcast_roster();
            }
        }
        drop(tx);
        let _ = writer.await;
    }
}

async fn upgrade(State(discovery): State<Discovery>, ws: WebSocketUpgrade) -> impl IntoResponse {
    let max = discovery.inner.options.max_message_size;
    ws.max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| discovery.connection(socket))
}
