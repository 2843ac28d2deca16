//! What a transport implements: publish to every other node of a namespace, publish to one node,
//! and deliver what arrives. Everything else lives in the engine.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use switchboard_wire::ClusterMessage;
use tokio::sync::mpsc;

/// How the engine learns which nodes are alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// Node's `ClusterAdapterWithHeartbeat`: INITIAL_HEARTBEAT, HEARTBEAT, ADAPTER_CLOSE
    /// (mongo, mesh, cluster, in-memory).
    Heartbeat,
    /// The broker counts subscribers (`PUBSUB NUMSUB` / `SHARDNUMSUB`): the engine asks
    /// [`Link::server_count`] and sends no heartbeats.
    Subscribers,
}

/// Whether a node uses one uid per namespace (what Node's `ClusterAdapter` does) or one per
/// process (the mesh, mongo).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UidScope {
    /// A fresh 16-hex uid for every namespace adapter.
    PerNamespace,
    /// This uid for every namespace of the process.
    Process(String),
}

/// An error of a transport: the broker is unreachable, a queue is full, a subscription failed.
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct TransportError {
    kind: TransportErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// The family of a [`TransportError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportErrorKind {
    /// Not connected to the broker or peers right now.
    #[error("disconnected")]
    Disconnected,
    /// The outbound queue is full: the message was dropped.
    #[error("queue full")]
    QueueFull,
    /// The transport is closed.
    #[error("closed")]
    Closed,
    /// Anything else the broker reported.
    #[error("transport error")]
    Other,
}

impl TransportError {
    /// An error of `kind` with a message.
    pub fn new(kind: TransportErrorKind, message: impl Into<String>) -> Self {
        TransportError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// The same, with its cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The family of the error.
    pub fn kind(&self) -> TransportErrorKind {
        self.kind
    }
}

/// The engine's end of a namespace: where a transport delivers decoded messages.
///
/// Bounded: when the engine cannot keep up, further messages are dropped and counted rather than
/// buffered without limit.
#[derive(Clone, Debug)]
pub struct Inbox {
    tx: mpsc::Sender<ClusterMessage>,
    dropped: Arc<AtomicU64>,
    metrics: Option<crate::Metrics>,
}

impl Inbox {
    pub(crate) fn new(
        capacity: usize,
        metrics: Option<crate::Metrics>,
    ) -> (Self, mpsc::Receiver<ClusterMessage>) {
        let (tx, rx) = mpsc::channel(capacity);
        (
            Inbox {
                tx,
                dropped: Arc::new(AtomicU64::new(0)),
                metrics,
            },
            rx,
        )
    }

    /// An inbox that no engine reads: its messages arrive on the returned receiver. For tools and
    /// tests that play a node themselves (a raw peer on a transport).
    pub fn detached(capacity: usize) -> (Self, mpsc::Receiver<ClusterMessage>) {
        Inbox::new(capacity, None)
    }

    /// Hands a message to the engine; returns `false` (and counts it) if the engine's queue is full
    /// or the namespace is closed.
    pub fn deliver(&self, message: ClusterMessage) -> bool {
        match self.tx.try_send(message) {
            Ok(()) => true,
            Err(_) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                if let Some(m) = &self.metrics {
                    m.dropped("inbox_full");
                }
                false
            }
        }
    }

    /// Messages dropped because the engine's queue was full or closed.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Whether the namespace this inbox feeds has been closed.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// What the engine tells a transport about a namespace it attaches.
#[derive(Debug)]
pub struct Attach {
    /// The namespace, e.g. `/` or `/admin`.
    pub nsp: String,
    /// This node's uid for the namespace.
    pub uid: String,
    /// Where to deliver messages for this namespace (already filtered or not: the engine drops its
    /// own messages and other namespaces' again).
    pub inbox: Inbox,
    /// Metrics to record wire sizes and dropped messages in, when configured.
    #[cfg(feature = "prometheus")]
    pub metrics: Option<crate::Metrics>,
}

impl Attach {
    /// What the engine passes for namespace `nsp`; built by hand by tools and tests that play a
    /// node on a transport (with [`Inbox::detached`]). No metrics.
    pub fn new(nsp: impl Into<String>, uid: impl Into<String>, inbox: Inbox) -> Self {
        Attach {
            nsp: nsp.into(),
            uid: uid.into(),
            inbox,
            #[cfg(feature = "prometheus")]
            metrics: None,
        }
    }
}

/// A transport: one per process, shared by every namespace (held in the adapter state).
pub trait Transport: Send + Sync + 'static {
    /// The per-namespace handle.
    type Link: Link;

    /// Subscribes whatever a namespace needs and starts delivering to `attach.inbox`.
    fn attach(
        &self,
        attach: Attach,
    ) -> impl Future<Output = Result<Self::Link, TransportError>> + Send;

    /// The uid scope this transport requires.
    fn uid_scope(&self) -> UidScope {
        UidScope::PerNamespace
    }
}

/// A namespace's connection to the other nodes.
///
/// `publish` and `publish_to` must not wait for the broker: they queue the message (bounded) and
/// return, so that broadcasts are pipelined. They return an error only when the message certainly
/// will not go out (disconnected, queue full, closed).
pub trait Link: Send + Sync + 'static {
    /// Sends `message` to every other node of the namespace.
    fn publish(&self, message: ClusterMessage) -> Result<(), TransportError>;

    /// Sends `message` (a response) to the node with uid `node` only.
    fn publish_to(&self, node: &str, message: ClusterMessage) -> Result<(), TransportError>;

    /// How liveness is known.
    fn liveness(&self) -> Liveness;

    /// Number of servers, this one included, for [`Liveness::Subscribers`].
    fn server_count(&self) -> impl Future<Output = Result<usize, TransportError>> + Send {
        std::future::ready(Ok(1))
    }

    /// Unsubscribes the namespace. Called once, after the engine published its goodbye.
    fn close(&self) -> impl Future<Output = Result<(), TransportError>> + Send {
        std::future::ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_wire::Body;

    #[test]
    fn a_full_inbox_drops_and_counts() {
        let (inbox, mut rx) = Inbox::new(1, None);
        let m = || ClusterMessage::new("u", "/", Body::Heartbeat);
        assert!(inbox.deliver(m()));
        assert!(!inbox.deliver(m()));
        assert_eq!(inbox.dropped(), 1);
        assert!(rx.try_recv().is_ok());
        drop(rx);
        assert!(inbox.is_closed());
        assert!(!inbox.deliver(m()));
        assert_eq!(inbox.dropped(), 2);
    }
}
