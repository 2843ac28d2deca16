//! The relay: runs in the primary (or any supervising process), listens on a Unix socket, and
//! routes the workers' messages as Node's `setupPrimary()` does (protocol.md §11): responses to the
//! requester only, everything else to every worker but the sender. Beyond Node, a worker whose
//! connection closes is announced to the others at once (an ADAPTER_CLOSE per namespace in its
//! name), so their pending requests complete with what arrived.

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use switchboard_wire::{Body, ClusterMessage};
use tokio::{
    net::{UnixListener, UnixStream},
    sync::{Notify, mpsc},
    task::JoinSet,
};

use crate::frame::{self, FrameError, FrameReader, Kind};

/// Options of the relay.
#[derive(Clone, Debug)]
pub struct RelayOptions {
    pub(crate) max_frame: usize,
    pub(crate) queue_capacity: usize,
    pub(crate) hello_timeout: Duration,
    #[cfg(feature = "prometheus")]
    pub(crate) metrics: Option<crate::RelayMetrics>,
}

impl Default for RelayOptions {
    fn default() -> Self {
        RelayOptions {
            max_frame: crate::DEFAULT_MAX_FRAME,
            queue_capacity: 65_536,
            hello_timeout: Duration::from_secs(5),
            #[cfg(feature = "prometheus")]
            metrics: None,
        }
    }
}

impl RelayOptions {
    /// The largest frame accepted from a worker (default 64 MiB); a larger one closes its
    /// connection.
    pub fn max_frame(mut self, bytes: usize) -> Self {
        self.max_frame = bytes.max(1024);
        self
    }

    /// Frames waiting to be written to one worker; a worker that falls this far behind is cut off
    /// (default 65,536).
    pub fn queue_capacity(mut self, frames: usize) -> Self {
        self.queue_capacity = frames.max(1);
        self
    }

    /// How long a new connection may take to say HELLO (default 5 s).
    pub fn hello_timeout(mut self, timeout: Duration) -> Self {
        self.hello_timeout = timeout;
        self
    }

    /// Records the relay's metrics (feature `prometheus`).
    #[cfg(feature = "prometheus")]
    pub fn metrics(mut self, metrics: crate::RelayMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }
}

/// Why the relay could not start.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// Another relay listens on the path.
    #[error("a relay already listens on {0}")]
    InUse(PathBuf),
    /// Binding, permissions or renaming failed.
    #[error("cannot listen on {path}: {source}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

struct Worker {
    uid: String,
    nsps: HashSet<String>,
    tx: mpsc::Sender<Bytes>,
    cut: Arc<Notify>,
}

#[derive(Default)]
struct Routes {
    workers: HashMap<u64, Worker>,
}

struct Shared {
    options: RelayOptions,
    routes: Mutex<Routes>,
    next_id: AtomicU64,
}

impl Shared {
    fn routes(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.routes.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn count(&self, what: Event) {
        #[cfg(feature = "prometheus")]
        if let Some(m) = &self.options.metrics {
            m.record(what);
        }
        #[cfg(not(feature = "prometheus"))]
        let _ = what;
    }

    fn workers_changed(&self, n: usize) {
        #[cfg(feature = "prometheus")]
        if let Some(m) = &self.options.metrics {
            m.workers.set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        #[cfg(not(feature = "prometheus"))]
        let _ = n;
    }

    /// Queues `frame` for a worker; a worker whose queue is full is cut off.
    fn send(&self, w: &Worker, frame: &Bytes) {
        match w.tx.try_send(frame.clone()) {
            Ok(()) => self.count(Event::Relayed),
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(
                    uid = %w.uid,
                    "cluster relay: a worker does not read its messages ({} queued): cutting it off",
                    self.options.queue_capacity
                );
                self.count(Event::CutOff);
                w.cut.notify_one();
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Routes a worker's frame (whole, as read). Messages are forwarded without a copy: the
    /// frame is relabelled in place.
    fn route(&self, from: u64, kind: Kind, mut frame: BytesMut) {
        match kind {
            Kind::Publish => {
                frame[4] = Kind::Message as u8;
                let frame = frame.freeze();
                let routes = self.routes();
                for (_, w) in routes.workers.iter().filter(|(i, _)| **i != from) {
                    self.send(w, &frame);
                }
            }
            Kind::PublishTo => {
                let Some((uid, frame)) = frame::publish_to_message(frame) else {
                    self.count(Event::Malformed);
                    return;
                };
                let routes = self.routes();
                match routes.workers.values().find(|w| w.uid == uid) {
                    Some(w) => self.send(w, &frame),
                    // the requester is gone: nobody waits for the answer
                    None => self.count(Event::Unroutable),
                }
            }
            Kind::Attach | Kind::Detach => {
                let Ok(nsp) = std::str::from_utf8(&frame[5..]) else {
                    self.count(Event::Malformed);
                    return;
                };
                let mut routes = self.routes();
                if let Some(w) = routes.workers.get_mut(&from) {
                    if kind == Kind::Attach {
                        w.nsps.insert(nsp.to_owned());
                    } else {
                        w.nsps.remove(nsp);
                    }
                }
            }
            Kind::Hello | Kind::Message => self.count(Event::Malformed),
        }
    }

    /// A worker left: forget it and tell the others, one ADAPTER_CLOSE per namespace it had.
    fn left(&self, id: u64) {
        let mut routes = self.routes();
        let Some(gone) = routes.workers.remove(&id) else {
            return;
        };
        self.workers_changed(routes.workers.len());
        for nsp in &gone.nsps {
            let close = ClusterMessage::new(gone.uid.clone(), nsp.clone(), Body::AdapterClose);
            let frame = frame::encode(Kind::Message, &[&close.to_msgpack()]);
            for w in routes.workers.values() {
                self.send(w, &frame);
            }
        }
        tracing::debug!(uid = %gone.uid, "cluster relay: worker left");
        drop(routes);
    }
}

/// What the relay counts (feature `prometheus`).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Event {
    Relayed,
    CutOff,
    Malformed,
    Unroutable,
    Refused,
}

/// A running relay: stops (and removes its socket file) when dropped or [`close`](Self::close)d.
pub struct Relay {
    path: PathBuf,
    shared: Arc<Shared>,
    tasks: JoinSet<()>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay").field("path", &self.path).finish()
    }
}

impl Relay {
    /// Listens on `path`, a Unix socket only its owner may connect to (0600). A socket file left
    /// by a relay that is gone is replaced; a live relay on the path is an error.
    pub async fn bind(path: impl AsRef<Path>, options: RelayOptions) -> Result<Relay, RelayError> {
        let path = path.as_ref().to_path_buf();
        let io = |source| RelayError::Io {
            path: path.clone(),
            source,
        };
        if path.exists() {
            if UnixStream::connect(&path).await.is_ok() {
                return Err(RelayError::InUse(path));
            }
            std::fs::remove_file(&path).map_err(io)?;
        }
        // bound under a temporary name, restricted, then renamed: no moment where another
        // user could connect to the final path
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = path.with_file_name(format!(".{file}.{}.tmp", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let listener = UnixListener::bind(&tmp).map_err(io)?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        }
        std::fs::rename(&tmp, &path).map_err(io)?;
        let shared = Arc::new(Shared {
            options,
            routes: Mutex::new(Routes::default()),
            next_id: AtomicU64::new(0),
        });
        let mut tasks = JoinSet::new();
        tasks.spawn(accept(listener, shared.clone()));
        Ok(Relay {
            path,
            shared,
            tasks,
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Workers connected now.
    pub fn workers(&self) -> usize {
        self.shared.routes().workers.len()
    }

    /// Stops listening, closes every worker connection and removes the socket file.
    pub fn close(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.tasks.abort_all();
        for w in self.shared.routes().workers.values() {
            w.cut.notify_one();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn accept(listener: UnixListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    let mut backoff = Duration::from_millis(10);
    loop {
        while connections.try_join_next().is_some() {}
        match listener.accept().await {
            Ok((stream, _)) => {
                backoff = Duration::from_millis(10);
                connections.spawn(connection(stream, shared.clone()));
            }
            Err(e) => {
                // out of file descriptors and the like: never spin
                tracing::warn!("cluster relay: accept failed, retrying in {backoff:?}: {e}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// One worker's connection: HELLO first (small, within the timeout), then its frames.
async fn connection(stream: UnixStream, shared: Arc<Shared>) {
    let (rd, wr) = stream.into_split();
    let mut rd = FrameReader::new(rd);
    let hello = tokio::time::timeout(shared.options.hello_timeout, rd.next(frame::MAX_HELLO)).await;
    let uid = match hello {
        Ok(Ok(Some((Kind::Hello, body)))) => frame::parse_hello(&body),
        _ => None,
    };
    let Some(uid) = uid else {
        tracing::debug!("cluster relay: a connection that is not a worker, closed");
        shared.count(Event::Refused);
        return;
    };
    let (tx, rx) = mpsc::channel(shared.options.queue_capacity);
    let cut = Arc::new(Notify::new());
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    {
        let mut routes = shared.routes();
        // the same worker reconnecting before its old connection was noticed closed
        let stale: Vec<u64> = routes
            .workers
            .iter()
            .filter(|(_, w)| w.uid == uid)
            .map(|(i, _)| *i)
            .collect();
        for i in stale {
            if let Some(w) = routes.workers.get(&i) {
                w.cut.notify_one();
            }
        }
        routes.workers.insert(
            id,
            Worker {
                uid: uid.clone(),
                nsps: HashSet::new(),
                tx,
                cut: cut.clone(),
            },
        );
        shared.workers_changed(routes.workers.len());
    }
    tracing::debug!(%uid, "cluster relay: worker joined");
    let mut writer = tokio::spawn(frame::write_all(wr, rx));
    let max = shared.options.max_frame;
    let reason = loop {
        tokio::select! {
            read = rd.next_frame(max) => match read {
                Ok(Some((kind, frame))) => shared.route(id, kind, frame),
                Ok(None) => break None,
                Err(FrameError::Io(_)) => break None,
                Err(e) => break Some(e),
            },
            () = cut.notified() => break None,
            _ = &mut writer => break None,
        }
    };
    if let Some(e) = reason {
        tracing::warn!(%uid, "cluster relay: closing a worker's connection: {e}");
        shared.count(Event::Malformed);
    }
    writer.abort();
    shared.left(id);
}
