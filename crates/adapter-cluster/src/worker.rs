//! A worker's end: one connection to the relay per process (every namespace shares it and one
//! uid), reconnected with a backoff when the relay goes away; local delivery never depends on it.

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock, Weak},
    time::Duration,
};

use bytes::Bytes;
use switchboard_adapter_core::{
    Attach, Inbox, Link, Liveness, Transport, TransportError, TransportErrorKind, UidScope,
};
use switchboard_wire::{Body, ClusterMessage, Dialect, Limits};
use tokio::{
    net::UnixStream,
    sync::{Notify, mpsc},
    task::JoinSet,
};

use crate::frame::{self, FrameReader, Kind};

/// Options of a worker's transport.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    pub(crate) uid: Option<String>,
    pub(crate) max_frame: usize,
    pub(crate) queue_capacity: usize,
    pub(crate) connect_timeout: Duration,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            uid: None,
            max_frame: crate::DEFAULT_MAX_FRAME,
            queue_capacity: 65_536,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

impl ClusterOptions {
    /// This worker's uid in every namespace (default: 16 random hex characters).
    pub fn uid(mut self, uid: impl Into<String>) -> Self {
        self.uid = Some(uid.into());
        self
    }

    /// The largest frame sent or accepted (default 64 MiB, as the relay's): a larger message is
    /// refused with an error at publish.
    pub fn max_frame(mut self, bytes: usize) -> Self {
        self.max_frame = bytes.max(1024);
        self
    }

    /// Frames waiting to be written to the relay before further messages are refused (default
    /// 65,536).
    pub fn queue_capacity(mut self, frames: usize) -> Self {
        self.queue_capacity = frames.max(1);
        self
    }

    /// How long [`ClusterTransport::connect`] waits for the relay (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
}

struct Inner {
    uid: String,
    path: PathBuf,
    options: ClusterOptions,
    limits: Limits,
    namespaces: RwLock<HashMap<String, Inbox>>,
    /// The current connection's outgoing queue; `None` while disconnected.
    out: Mutex<Option<mpsc::Sender<Bytes>>>,
    /// The uids heard from, per namespace: told gone when the relay goes away.
    heard: Mutex<HashMap<String, HashSet<String>>>,
    connected: Notify,
    tasks: Mutex<JoinSet<()>>,
    #[cfg(feature = "prometheus")]
    metrics: std::sync::OnceLock<switchboard_adapter_core::Metrics>,
}

/// A worker's transport: connects to the relay at a Unix socket path. One per process.
#[derive(Clone)]
pub struct ClusterTransport {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ClusterTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterTransport")
            .field("uid", &self.inner.uid)
            .field("path", &self.inner.path)
            .finish()
    }
}

impl ClusterTransport {
    /// Connects to the relay at `path`, waiting up to the connect timeout for it; then keeps the
    /// connection up (reconnecting with a backoff) for as long as the transport lives.
    pub async fn connect(
        path: impl AsRef<Path>,
        options: ClusterOptions,
    ) -> Result<Self, TransportError> {
        let timeout = options.connect_timeout;
        let inner = Arc::new(Inner {
            uid: options
                .uid
                .clone()
                .unwrap_or_else(switchboard_wire::ids::random_uid),
            path: path.as_ref().to_path_buf(),
            limits: Limits {
                max_size: options.max_frame,
                ..Limits::DEFAULT
            },
            options,
            namespaces: RwLock::new(HashMap::new()),
            out: Mutex::new(None),
            heard: Mutex::new(HashMap::new()),
            connected: Notify::new(),
            tasks: Mutex::new(JoinSet::new()),
            #[cfg(feature = "prometheus")]
            metrics: std::sync::OnceLock::new(),
        });
        let reached = {
            let connected = inner.connected.notified();
            tokio::pin!(connected);
            connected.as_mut().enable();
            inner.tasks().spawn(run(Arc::downgrade(&inner)));
            tokio::time::timeout(timeout, connected).await.is_ok()
        };
        if !reached {
            return Err(TransportError::new(
                TransportErrorKind::Disconnected,
                format!(
                    "no cluster relay at {} within {timeout:?}",
                    inner.path.display()
                ),
            ));
        }
        Ok(ClusterTransport { inner })
    }

    /// This worker's uid (shared by all its namespaces).
    pub fn uid(&self) -> &str {
        &self.inner.uid
    }

    /// Whether the relay connection is up now.
    pub fn is_connected(&self) -> bool {
        self.inner.out().is_some()
    }

    /// Test plumbing: behaves like a killed process (nothing sent or received any more).
    #[cfg(feature = "__test-support")]
    #[doc(hidden)]
    pub fn crash_for_tests(&self) {
        self.inner.tasks().abort_all();
        *self.inner.out.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

impl Inner {
    fn tasks(&self) -> std::sync::MutexGuard<'_, JoinSet<()>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn out(&self) -> Option<mpsc::Sender<Bytes>> {
        self.out.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn dropped(&self, reason: &str) {
        #[cfg(feature = "prometheus")]
        if let Some(m) = self.metrics.get() {
            m.dropped(reason);
        }
        #[cfg(not(feature = "prometheus"))]
        let _ = reason;
    }

    fn bytes(&self, sent: bool, len: usize) {
        #[cfg(feature = "prometheus")]
        if let Some(m) = self.metrics.get() {
            m.bytes(sent, len);
        }
        #[cfg(not(feature = "prometheus"))]
        let _ = (sent, len);
    }

    fn send(&self, frame: Bytes) -> Result<(), TransportError> {
        let Some(out) = self.out() else {
            return Err(TransportError::new(
                TransportErrorKind::Disconnected,
                "not connected to the cluster relay",
            ));
        };
        self.bytes(true, frame.len());
        out.try_send(frame).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                self.dropped("queue_full");
                TransportError::new(TransportErrorKind::QueueFull, "cluster relay queue full")
            }
            mpsc::error::TrySendError::Closed(_) => TransportError::new(
                TransportErrorKind::Disconnected,
                "not connected to the cluster relay",
            ),
        })
    }

    fn encode(&self, message: &ClusterMessage) -> Result<Vec<u8>, TransportError> {
        let bytes = message.to_msgpack();
        if bytes.len() + 1 > self.options.max_frame {
            return Err(TransportError::new(
                TransportErrorKind::Other,
                format!(
                    "a message of {} bytes exceeds the cluster's frame limit of {} bytes",
                    bytes.len(),
                    self.options.max_frame
                ),
            ));
        }
        Ok(bytes)
    }

    /// A message from the relay, for its namespace.
    fn deliver(&self, body: &[u8]) {
        self.bytes(false, body.len() + 5);
        let message = match ClusterMessage::decode(body, Dialect::Cluster, &self.limits) {
            Ok(m) => m,
            Err(e) => {
                self.dropped("malformed");
                tracing::debug!(
                    "cluster: dropped a frame that is not a cluster message: {}",
                    switchboard_adapter_core::report(&e)
                );
                return;
            }
        };
        {
            // no allocation for a worker already heard from (every message but the first)
            let mut heard = self.heard.lock().unwrap_or_else(|e| e.into_inner());
            let close = matches!(message.body, Body::AdapterClose);
            match heard.get_mut(&message.nsp) {
                Some(uids) if close => {
                    uids.remove(&message.uid);
                }
                Some(uids) => {
                    if !uids.contains(&message.uid) {
                        uids.insert(message.uid.clone());
                    }
                }
                None if close => {}
                None => {
                    heard.insert(
                        message.nsp.clone(),
                        std::iter::once(message.uid.clone()).collect(),
                    );
                }
            }
        }
        let namespaces = self.namespaces.read().unwrap_or_else(|e| e.into_inner());
        match namespaces.get(&message.nsp) {
            Some(inbox) => {
                let _ = inbox.deliver(message);
            }
            None => self.dropped("other_namespace"),
        }
    }

    /// The relay went away: every worker heard from is gone for now (their pending requests
    /// complete with what arrived); they come back with their next heartbeat.
    fn lost_relay(&self) {
        *self.out.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let heard = std::mem::take(&mut *self.heard.lock().unwrap_or_else(|e| e.into_inner()));
        let namespaces = self.namespaces.read().unwrap_or_else(|e| e.into_inner());
        for (nsp, uids) in heard {
            if let Some(inbox) = namespaces.get(&nsp) {
                for uid in uids {
                    let _ =
                        inbox.deliver(ClusterMessage::new(uid, nsp.clone(), Body::AdapterClose));
                }
            }
        }
    }
}

/// Connects, serves the connection until it breaks, and again, with a backoff from 50 ms to 2 s.
async fn run(inner: Weak<Inner>) {
    let mut backoff = Duration::from_millis(50);
    let mut warned = false;
    loop {
        let Some(path) = inner.upgrade().map(|i| i.path.clone()) else {
            return;
        };
        match UnixStream::connect(&path).await {
            Ok(stream) => {
                backoff = Duration::from_millis(50);
                warned = false;
                serve(&inner, stream).await;
                let Some(me) = inner.upgrade() else { return };
                me.lost_relay();
                tracing::warn!(
                    "cluster: the connection to the relay at {} closed, reconnecting",
                    path.display()
                );
            }
            Err(e) => {
                if !warned {
                    tracing::warn!(
                        "cluster: cannot reach the relay at {}, retrying: {e}",
                        path.display()
                    );
                    warned = true;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// One connection: HELLO, ATTACH for every namespace and an INITIAL_HEARTBEAT in each (so the
/// others answer at once after a reconnection), then frames both ways until it breaks.
async fn serve(inner: &Weak<Inner>, stream: UnixStream) {
    let Some(me) = inner.upgrade() else { return };
    let (rd, wr) = stream.into_split();
    let mut rd = FrameReader::new(rd);
    let (tx, rx) = mpsc::channel(me.options.queue_capacity);
    {
        let namespaces = me.namespaces.read().unwrap_or_else(|e| e.into_inner());
        let _ = tx.try_send(frame::hello(&me.uid));
        for nsp in namespaces.keys() {
            let _ = tx.try_send(frame::encode(Kind::Attach, &[nsp.as_bytes()]));
            let hi = ClusterMessage::new(me.uid.clone(), nsp.clone(), Body::InitialHeartbeat);
            let _ = tx.try_send(frame::encode(Kind::Publish, &[&hi.to_msgpack()]));
        }
        *me.out.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
    }
    me.connected.notify_waiters();
    let max = me.options.max_frame;
    drop(me);
    let mut writer = tokio::spawn(frame::write_all(wr, rx));
    loop {
        tokio::select! {
            read = rd.next(max) => match read {
                Ok(Some((Kind::Message, body))) => {
                    let Some(me) = inner.upgrade() else { break };
                    me.deliver(&body);
                }
                Ok(Some((kind, _))) => {
                    tracing::warn!("cluster: unexpected {kind:?} frame from the relay, reconnecting");
                    break;
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!("cluster: reading from the relay failed: {e}");
                    break;
                }
            },
            _ = &mut writer => break,
        }
    }
    writer.abort();
}

impl Transport for ClusterTransport {
    type Link = ClusterLink;

    async fn attach(&self, attach: Attach) -> Result<ClusterLink, TransportError> {
        #[cfg(feature = "prometheus")]
        if let Some(m) = &attach.metrics {
            let _ = self.inner.metrics.set(m.clone());
        }
        let nsp = attach.nsp.clone();
        {
            let mut namespaces = self
                .inner
                .namespaces
                .write()
                .unwrap_or_else(|e| e.into_inner());
            namespaces.insert(nsp.clone(), attach.inbox);
            // under the lock: a connection being set up either saw this namespace or is not
            // published yet
            if let Some(out) = self.inner.out() {
                let _ = out.try_send(frame::encode(Kind::Attach, &[nsp.as_bytes()]));
            }
        }
        Ok(ClusterLink {
            inner: self.inner.clone(),
            nsp,
        })
    }

    fn uid_scope(&self) -> UidScope {
        UidScope::Process(self.inner.uid.clone())
    }
}

/// A namespace's link to the relay.
pub struct ClusterLink {
    inner: Arc<Inner>,
    nsp: String,
}

impl Link for ClusterLink {
    fn publish(&self, message: ClusterMessage) -> Result<(), TransportError> {
        let body = self.inner.encode(&message)?;
        self.inner.send(frame::encode(Kind::Publish, &[&body]))
    }

    /// Responses go to the requester only (Node's `requesterUid` routing).
    fn publish_to(&self, node: &str, message: ClusterMessage) -> Result<(), TransportError> {
        let body = self.inner.encode(&message)?;
        let uid = node.as_bytes();
        let Ok(len) = u8::try_from(uid.len()) else {
            return Err(TransportError::new(
                TransportErrorKind::Other,
                "a worker uid longer than 255 bytes",
            ));
        };
        self.inner
            .send(frame::encode(Kind::PublishTo, &[&[len], uid, &body]))
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
        if let Some(out) = self.inner.out() {
            let _ = out.try_send(frame::encode(Kind::Detach, &[self.nsp.as_bytes()]));
        }
        Ok(())
    }
}
