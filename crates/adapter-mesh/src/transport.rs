//! The mesh transport: a WebSocket listener for peers, discovery clients (or a static roster), and
//! one connection per pair of servers, dialled by the smaller uid.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex, RwLock, Weak,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use switchboard_adapter_core::{
    Attach, Inbox, Link, Liveness, Transport, TransportError, TransportErrorKind, UidScope,
};
use switchboard_wire::{
    ClusterMessage, Limits,
    mesh::{self, DiscoveryMessage, PeerInfo},
};
use tokio::{
    net::TcpListener,
    sync::Notify,
    task::{AbortHandle, JoinSet},
};
use tokio_tungstenite::tungstenite::{Message, protocol::WebSocketConfig};

use crate::{
    MeshError, MeshOptions,
    peers::{self, Peers},
};

/// Index of the static roster among the rosters.
const STATIC: usize = usize::MAX;

/// Largest message taken from a discovery service.
const DISCOVERY_MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// How long a closing transport lets its peer writers send their Close frames.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_millis(500);

/// The transport's tasks, in one owner: dropping it aborts them all.
#[derive(Default)]
struct Tasks {
    /// The acceptor, discovery clients, dial loops and connection readers: aborted at once.
    services: JoinSet<()>,
    /// Peer writers: given [`CLOSE_GRACE`] to send a goodbye when the transport closes.
    writers: JoinSet<()>,
}

pub(crate) struct Inner {
    pub(crate) uid: String,
    pub(crate) address: String,
    pub(crate) options: MeshOptions,
    pub(crate) peers: Mutex<Peers>,
    namespaces: RwLock<HashMap<String, Inbox>>,
    rosters: Mutex<HashMap<usize, Vec<PeerInfo>>>,
    /// The merged roster last applied: a peer leaves when it was in it and is no longer.
    announced: Mutex<HashMap<String, String>>,
    /// Dial loops running, each woken early when its peer is announced again.
    dialing: Mutex<HashMap<String, Arc<Notify>>>,
    local_addr: SocketAddr,
    tasks: Mutex<Tasks>,
    closed: AtomicBool,
    /// Discovery services that refused our token (url → their reason), until one sends a roster.
    refused_by: Mutex<HashMap<String, String>>,
    /// The engine's metrics (from the first namespace attached), for frame sizes.
    #[cfg(feature = "prometheus")]
    engine_metrics: std::sync::OnceLock<switchboard_adapter_core::Metrics>,
}

impl Inner {
    /// Records a frame's size: "sent" once per publish, "received" per frame.
    pub(crate) fn frame(&self, _sent: bool, _len: usize) {
        #[cfg(feature = "prometheus")]
        if let Some(m) = self.engine_metrics.get() {
            m.bytes(_sent, _len);
        }
    }

    fn tasks(&self) -> std::sync::MutexGuard<'_, Tasks> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `fut` as one of the transport's tasks (not once closed).
    pub(crate) fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        let mut tasks = self.tasks();
        while tasks.services.try_join_next().is_some() {}
        if !self.closed.load(Ordering::SeqCst) {
            tasks.services.spawn(fut);
        }
    }

    /// Runs a peer's writer; `None` once closed.
    pub(crate) fn spawn_writer(
        &self,
        fut: impl Future<Output = ()> + Send + 'static,
    ) -> Option<AbortHandle> {
        let mut tasks = self.tasks();
        while tasks.writers.try_join_next().is_some() {}
        (!self.closed.load(Ordering::SeqCst)).then(|| tasks.writers.spawn(fut))
    }

    /// Stops everything: the listener (its port is free again), the discovery clients (the
    /// services see us unregister), dial loops and peer connections. With `goodbye`, each peer
    /// is sent a Close (1001 `transport-closed`) first; without, connections are just cut, as when
    /// a process is killed.
    pub(crate) fn shutdown(&self, goodbye: bool) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        let peers = std::mem::take(&mut *self.peers.lock().unwrap_or_else(|e| e.into_inner()));
        if goodbye {
            for peer in peers.values() {
                peer.close(1001, "transport-closed");
            }
        }
        // the writers' queues close with the peers: each sends what is queued, then ends
        drop(peers);
        self.namespaces
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        let Tasks { services, writers } = std::mem::take(&mut *self.tasks());
        drop(services);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) if goodbye => {
                runtime.spawn(async move {
                    let mut writers = writers;
                    let drained = async { while writers.join_next().await.is_some() {} };
                    let _ = tokio::time::timeout(CLOSE_GRACE, drained).await;
                });
            }
            _ => drop(writers),
        }
        tracing::debug!(uid = %self.uid, "mesh transport closed");
    }

    /// Hands a message from a peer to its namespace.
    pub(crate) fn deliver(&self, message: ClusterMessage) {
        if message.uid == self.uid {
            return;
        }
        let namespaces = self.namespaces.read().unwrap_or_else(|e| e.into_inner());
        if let Some(inbox) = namespaces.get(&message.nsp) {
            inbox.deliver(message);
        }
    }

    /// Called when a peer connection ended (the dial loop redials when we are the dialler).
    pub(crate) fn peer_gone(&self, _uid: &str) {
        self.observe();
    }

    /// A peer was dropped for `reason`.
    pub(crate) fn dropped(&self, _reason: &str) {
        #[cfg(feature = "prometheus")]
        if let Some(m) = &self.options.metrics {
            m.dropped(_reason);
        }
    }

    /// Updates the gauges.
    pub(crate) fn observe(&self) {
        #[cfg(feature = "prometheus")]
        if let Some(m) = &self.options.metrics {
            let to_i64 = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
            m.peers_connected.set(to_i64(
                self.peers.lock().unwrap_or_else(|e| e.into_inner()).len(),
            ));
            m.peers_expected.set(to_i64(self.roster().len()));
            m.namespaces.set(to_i64(
                self.namespaces
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .len(),
            ));
        }
    }

    /// Every peer of every roster (discovery services merged, static list included).
    fn roster(&self) -> HashMap<String, String> {
        let rosters = self.rosters.lock().unwrap_or_else(|e| e.into_inner());
        rosters
            .values()
            .flatten()
            .filter(|p| p.server_id != self.uid)
            .map(|p| (p.server_id.clone(), p.address.clone()))
            .collect()
    }

    /// Drops peers that left or moved, dials the new ones we are responsible for. A connected
    /// peer that no roster announced yet stays: its Hello came before our discovery update did
    /// (updates reach servers at different times), and dropping it would cost a redial.
    fn apply_roster(self: &Arc<Self>) {
        let roster = self.roster();
        let announced = std::mem::replace(
            &mut *self.announced.lock().unwrap_or_else(|e| e.into_inner()),
            roster.clone(),
        );
        {
            let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
            peers.retain(|uid, peer| {
                let reason = match roster.get(uid) {
                    None if !announced.contains_key(uid) => return true,
                    None => "left-discovery",
                    // the address is only known for peers we dialled or that told us in Hello
                    Some(addr) if *addr != peer.address && !peer.address.is_empty() => {
                        "address-changed"
                    }
                    Some(_) => return true,
                };
                peer.close(1000, reason);
                self.dropped(reason);
                false
            });
        }
        self.observe();
        for (uid, address) in roster {
            if *self.uid < *uid {
                self.ensure_dialing(uid, address);
            }
        }
    }

    fn ensure_dialing(self: &Arc<Self>, uid: String, address: String) {
        let connected = self
            .peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&uid);
        if connected {
            return;
        }
        let wake = {
            let mut dialing = self.dialing.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(wake) = dialing.get(&uid) {
                // a loop is waiting to redial: the peer is announced again, so now
                wake.notify_one();
                return;
            }
            let wake = Arc::new(Notify::new());
            dialing.insert(uid.clone(), wake.clone());
            wake
        };
        let inner = self.clone();
        self.spawn(async move {
            let mut refusals = 0u32;
            loop {
                match peers::dial(inner.clone(), uid.clone(), address.clone()).await {
                    Ok(Some(refused)) => {
                        refusals += 1;
                        tracing::warn!(
                            peer = %uid, %address,
                            "the peer refused our Hello ({refused}): a different MESH_AUTH_TOKEN on \
                             one side, or it still holds a connection from us; retrying"
                        );
                    }
                    Ok(None) => refusals = 0,
                    Err(e) => tracing::debug!(peer = %uid, %address, "dial failed: {e}"),
                }
                {
                    // decided under the lock ensure_dialing takes: a peer announced again right
                    // now either finds this loop going on (and wakes it) or finds it gone
                    let mut dialing = inner.dialing.lock().unwrap_or_else(|e| e.into_inner());
                    let wanted = inner.roster().get(&uid) == Some(&address)
                        && !inner.closed.load(Ordering::SeqCst);
                    if !wanted {
                        dialing.remove(&uid);
                        break;
                    }
                }
                // Node's fixed jittered delay, 1000 + random(0..999) ms, growing up to 30 s
                // while the peer refuses us; cut short when a roster announces the peer again
                let delay = Duration::from_millis(1000 + rand::random_range(0..1000))
                    * 2u32.pow(refusals.min(4));
                tokio::select! {
                    () = tokio::time::sleep(delay.min(Duration::from_secs(30))) => {}
                    () = wake.notified() => {}
                }
            }
        });
    }
}

/// Closes the transport when the last handle (the transport's clones and the namespaces' links)
/// is dropped. The transport's own tasks hold `Inner`, never this.
struct Owner(Arc<Inner>);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.shutdown(true);
    }
}

/// The brokerless mesh transport (one per process: one uid shared by every namespace).
///
/// It runs until [`close`](MeshTransport::close) is called or its last handle is dropped (the
/// clones of the transport and the links of the namespaces attached to it): then the peer port
/// is released, peers are told (close 1001 `transport-closed`), the discovery services see it
/// unregister, and none of its tasks remain.
#[derive(Clone)]
pub struct MeshTransport {
    inner: Arc<Inner>,
    owner: Arc<Owner>,
}

impl MeshTransport {
    /// Listens for peers on `wsPort`, registers with the discovery services (or takes the static
    /// peer list) and connects to the peers it is responsible for.
    pub async fn start(options: MeshOptions) -> Result<Self, MeshError> {
        let listener = TcpListener::bind(SocketAddr::new(options.bind, options.ws_port)).await?;
        let local_addr = listener.local_addr()?;
        let address = options
            .server_address
            .clone()
            .or_else(|| std::env::var("MESH_SERVER_WS_ADDRESS").ok())
            .unwrap_or_else(|| format!("ws://localhost:{}", local_addr.port()));
        let inner = Arc::new(Inner {
            uid: options
                .uid
                .clone()
                .unwrap_or_else(switchboard_wire::ids::random_uid),
            address,
            options,
            peers: Mutex::new(HashMap::new()),
            namespaces: RwLock::new(HashMap::new()),
            rosters: Mutex::new(HashMap::new()),
            announced: Mutex::new(HashMap::new()),
            dialing: Mutex::new(HashMap::new()),
            local_addr,
            tasks: Mutex::new(Tasks::default()),
            closed: AtomicBool::new(false),
            refused_by: Mutex::new(HashMap::new()),
            #[cfg(feature = "prometheus")]
            engine_metrics: std::sync::OnceLock::new(),
        });
        inner.spawn(acceptor(Arc::downgrade(&inner), listener));
        if let Some(peers) = inner.options.static_peers.clone() {
            inner
                .rosters
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(STATIC, peers);
            inner.apply_roster();
        }
        for (i, url) in inner.options.discovery.clone().into_iter().enumerate() {
            inner.spawn(discovery(Arc::downgrade(&inner), i, url));
        }
        Ok(MeshTransport {
            owner: Arc::new(Owner(inner.clone())),
            inner,
        })
    }

    /// Closes the transport now, for every handle: see the type's docs. Namespaces still
    /// attached stop receiving; publishing on them goes nowhere.
    pub fn close(&self) {
        self.inner.shutdown(true);
    }

    /// This server's uid (shared by all its namespaces).
    pub fn uid(&self) -> &str {
        &self.inner.uid
    }

    /// The address peers are told to connect to.
    pub fn address(&self) -> &str {
        &self.inner.address
    }

    /// Where the peer listener is bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// The discovery services that refused this server's `auth_token` (close 4401), with their
    /// reason, until one of them accepts it: while not empty, this server is alone or missing
    /// peers. For a health check; each refusal is also logged as an error and counted
    /// (`socketio_mesh_peer_drops_total{reason="discovery-refused"}`).
    pub fn discovery_refusals(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self
            .inner
            .refused_by
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(u, r)| (u.clone(), r.clone()))
            .collect();
        v.sort();
        v
    }

    /// Uids of the peers connected now.
    pub fn connected_peers(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .inner
            .peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        v.sort();
        v
    }

    /// Test plumbing: behaves like a killed process (no goodbye, connections cut).
    #[cfg(feature = "__test-support")]
    #[doc(hidden)]
    pub fn crash_for_tests(&self) {
        self.inner.shutdown(false);
    }
}

/// Errors of one connection, not of the listener (hyper's list): accept again at once.
fn connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// Accepts peers. A failing `accept()` (out of file descriptors) pauses the loop, 10 ms doubling
/// to 1 s, with a log, instead of spinning; at most `max_pending_handshakes` connections may be
/// waiting for their Hello at once, further ones are closed at once.
async fn acceptor(inner: Weak<Inner>, listener: TcpListener) {
    let Some(max_pending) = inner.upgrade().map(|i| i.options.max_pending_handshakes) else {
        return;
    };
    let pending = Arc::new(tokio::sync::Semaphore::new(max_pending.max(1)));
    let mut backoff = Duration::ZERO;
    let mut errors = 0u64;
    let mut refused = 0u64;
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => {
                backoff = Duration::ZERO;
                stream
            }
            Err(e) if connection_error(&e) => continue,
            Err(e) => {
                backoff = (backoff * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                errors += 1;
                if errors.is_power_of_two() {
                    tracing::error!(errors, pause = ?backoff, "accepting a peer failed: {e}");
                }
                if let Some(inner) = inner.upgrade() {
                    inner.dropped("accept-error");
                }
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        let Some(inner) = inner.upgrade() else { break };
        let Ok(permit) = pending.clone().try_acquire_owned() else {
            refused += 1;
            if refused.is_power_of_two() {
                tracing::warn!(
                    refused,
                    "too many peer connections waiting for their Hello: closing new ones"
                );
            }
            inner.dropped("handshake-capacity");
            continue;
        };
        // frames are small and latency-bound (acks, request answers): no Nagle delay
        let _ = stream.set_nodelay(true);
        let conn = inner.clone();
        inner.spawn(peers::accept(conn, stream, permit));
    }
}

/// Registers with one discovery service and follows its roster; reconnects with exponential
/// backoff 1 s → 30 s plus 0-249 ms of jitter. Peers stay connected while it is away.
async fn discovery(inner: Weak<Inner>, index: usize, url: String) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let Some(me) = inner.upgrade() else { break };
        let register = DiscoveryMessage::Register {
            server_id: me.uid.clone(),
            address: me.address.clone(),
            token: me.options.auth_token.clone(),
        };
        drop(me);
        // a roster of 10,000 servers is about 600 KB
        let config = WebSocketConfig::default()
            .max_frame_size(Some(DISCOVERY_MAX_MESSAGE))
            .max_message_size(Some(DISCOVERY_MAX_MESSAGE));
        if let Ok((mut ws, _)) =
            tokio_tungstenite::connect_async_with_config(&url, Some(config), false).await
            && ws
                .send(Message::Binary(register.to_msgpack().into()))
                .await
                .is_ok()
        {
            let mut refused = false;
            while let Some(Ok(frame)) = ws.next().await {
                let bytes = match frame {
                    Message::Binary(bytes) => bytes,
                    Message::Close(Some(close)) => {
                        refused = discovery_closed(&url, u16::from(close.code), &close.reason);
                        if u16::from(close.code) == 4401
                            && let Some(me) = inner.upgrade()
                        {
                            me.dropped("discovery-refused");
                            me.refused_by
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .insert(url.clone(), close.reason.to_string());
                        }
                        break;
                    }
                    _ => continue,
                };
                let Ok(DiscoveryMessage::Update { servers }) =
                    DiscoveryMessage::from_msgpack(&bytes, &Limits::DEFAULT)
                else {
                    continue;
                };
                let Some(me) = inner.upgrade() else { return };
                // registered: a refusal would have come instead of a roster
                backoff = Duration::from_secs(1);
                me.refused_by
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&url);
                me.rosters
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(index, servers);
                me.apply_roster();
            }
            if !refused {
                tracing::warn!(%url, "lost the discovery service: reconnecting");
            }
        }
        tokio::time::sleep(backoff + Duration::from_millis(rand::random_range(0..250))).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// Logs why a discovery service closed our connection, in words; true when it refused us (the
/// caller keeps backing off instead of starting over at 1 s).
fn discovery_closed(url: &str, code: u16, reason: &str) -> bool {
    match code {
        4401 => {
            tracing::error!(
                %url, code, %reason,
                "the discovery service refused our MESH_AUTH_TOKEN: give this server the token \
                 the service was started with; retrying with backoff"
            );
            true
        }
        1001 => {
            tracing::warn!(%url, code, %reason, "the discovery service is shutting down: reconnecting");
            false
        }
        _ => {
            tracing::warn!(%url, code, %reason, "the discovery service closed our connection: reconnecting");
            code >= 4000 || code == 1002 || code == 1008
        }
    }
}

impl Transport for MeshTransport {
    type Link = MeshLink;

    async fn attach(&self, attach: Attach) -> Result<MeshLink, TransportError> {
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(TransportError::new(
                TransportErrorKind::Closed,
                "mesh transport closed",
            ));
        }
        self.inner
            .namespaces
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(attach.nsp.clone(), attach.inbox);
        #[cfg(feature = "prometheus")]
        if let Some(m) = attach.metrics {
            let _ = self.inner.engine_metrics.set(m);
        }
        self.inner.observe();
        Ok(MeshLink {
            inner: self.inner.clone(),
            _owner: self.owner.clone(),
            nsp: attach.nsp,
        })
    }

    fn uid_scope(&self) -> UidScope {
        UidScope::Process(self.inner.uid.clone())
    }
}

/// A namespace on the mesh.
pub struct MeshLink {
    inner: Arc<Inner>,
    _owner: Arc<Owner>,
    nsp: String,
}

impl MeshLink {
    /// Sends `frame` to the peers chosen by `to`, cutting off any over its byte budget.
    fn send(&self, frame: Bytes, to: impl Fn(&str) -> bool) {
        self.inner.frame(true, frame.len());
        let threshold = self.inner.options.buffered_amount_threshold;
        let mut peers = self.inner.peers.lock().unwrap_or_else(|e| e.into_inner());
        peers.retain(|uid, peer| {
            if !to(uid) || peer.send(&frame, threshold) {
                return true;
            }
            tracing::warn!(peer = %uid, "slow consumer: dropped");
            peer.close(1000, "slow-consumer");
            self.inner.dropped("slow-consumer");
            false
        });
    }
}

impl Link for MeshLink {
    fn publish(&self, message: ClusterMessage) -> Result<(), TransportError> {
        self.send(Bytes::from(mesh::mesh_frame(&message)), |_| true);
        Ok(())
    }

    fn publish_to(&self, node: &str, message: ClusterMessage) -> Result<(), TransportError> {
        self.send(Bytes::from(mesh::mesh_frame(&message)), |uid| uid == node);
        Ok(())
    }

    fn liveness(&self) -> Liveness {
        Liveness::Heartbeat
    }

    async fn close(&self) -> Result<(), TransportError> {
        self.inner
            .namespaces
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.nsp);
        Ok(())
    }
}
