//! The mesh transport: a WebSocket listener for peers, discovery clients (or a static roster), and
//! one connection per pair of servers, dialled by the smaller uid.

use std::{
    collections::{HashMap, HashSet},
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
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_tungstenite::tungstenite::{Message, protocol::WebSocketConfig};

use crate::{
    MeshError, MeshOptions,
    peers::{self, Peers},
};

/// Index of the static roster among the rosters.
const STATIC: usize = usize::MAX;

pub(crate) struct Inner {
    pub(crate) uid: String,
    pub(crate) address: String,
    pub(crate) options: MeshOptions,
    pub(crate) peers: Mutex<Peers>,
    namespaces: RwLock<HashMap<String, Inbox>>,
    rosters: Mutex<HashMap<usize, Vec<PeerInfo>>>,
    /// The merged roster last applied: a peer leaves when it was in it and is no longer.
    announced: Mutex<HashMap<String, String>>,
    dialing: Mutex<HashSet<String>>,
    local_addr: SocketAddr,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    closed: AtomicBool,
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

    fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|t| !t.is_finished());
        if !self.closed.load(Ordering::SeqCst) {
            tasks.push(tokio::spawn(fut));
        }
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
        if connected
            || !self
                .dialing
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(uid.clone())
        {
            return;
        }
        let inner = self.clone();
        self.spawn(async move {
            loop {
                if let Err(e) = peers::dial(inner.clone(), uid.clone(), address.clone()).await {
                    tracing::debug!(peer = %uid, %address, "dial failed: {e}");
                }
                let wanted = inner.roster().get(&uid) == Some(&address)
                    && !inner.closed.load(Ordering::SeqCst);
                if !wanted {
                    break;
                }
                // Node's fixed jittered delay: 1000 + random(0..999) ms
                tokio::time::sleep(Duration::from_millis(1000 + rand::random_range(0..1000))).await;
            }
            inner
                .dialing
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&uid);
        });
    }
}

/// The brokerless mesh transport (one per process: one uid shared by every namespace).
#[derive(Clone)]
pub struct MeshTransport {
    inner: Arc<Inner>,
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
            dialing: Mutex::new(HashSet::new()),
            local_addr,
            tasks: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
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
        Ok(MeshTransport { inner })
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
        self.inner.closed.store(true, Ordering::SeqCst);
        for t in self
            .inner
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            t.abort();
        }
        self.inner
            .peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.inner
            .namespaces
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

async fn acceptor(inner: Weak<Inner>, listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let Some(inner) = inner.upgrade() else { break };
        // frames are small and latency-bound (acks, request answers): no Nagle delay
        let _ = stream.set_nodelay(true);
        let config = WebSocketConfig::default()
            .max_frame_size(Some(inner.options.max_frame_size))
            .max_message_size(Some(inner.options.max_frame_size));
        let conn = inner.clone();
        inner.spawn(async move {
            if let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await
            {
                peers::accept(conn, ws).await;
            }
        });
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
        if let Ok((mut ws, _)) = tokio_tungstenite::connect_async(&url).await
            && ws
                .send(Message::Binary(register.to_msgpack().into()))
                .await
                .is_ok()
        {
            backoff = Duration::from_secs(1);
            while let Some(Ok(frame)) = ws.next().await {
                let Message::Binary(bytes) = frame else {
                    continue;
                };
                let Ok(DiscoveryMessage::Update { servers }) =
                    DiscoveryMessage::from_msgpack(&bytes, &Limits::DEFAULT)
                else {
                    continue;
                };
                let Some(me) = inner.upgrade() else { return };
                me.rosters
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(index, servers);
                me.apply_roster();
            }
            tracing::warn!(%url, "lost the discovery service: reconnecting");
        }
        tokio::time::sleep(backoff + Duration::from_millis(rand::random_range(0..250))).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
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
