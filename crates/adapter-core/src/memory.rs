//! The in-memory transport: several socketioxide servers in one process, for tests (yours and
//! ours). Messages go through the msgpack codec on the way, as on a real transport.
//!
//! `switchboard-testkit`'s `MemoryPeer` joins the same bus as a raw node (a Node server or an
//! emitter played byte for byte).

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, AtomicU64, Ordering},
};

use switchboard_wire::{ClusterMessage, Dialect, Limits};

use crate::{Attach, Inbox, Link, Liveness, Transport, TransportError, TransportErrorKind};

struct Member {
    transport: u64,
    nsp: String,
    uid: String,
    inbox: Inbox,
}

#[derive(Default)]
struct Hub {
    members: Mutex<Vec<Member>>,
    next_id: AtomicU64,
}

/// A bus shared by in-memory transports: make one, then one [`MemoryTransport`] per server.
#[derive(Clone, Default)]
pub struct MemoryHub(Arc<Hub>);

impl MemoryHub {
    /// A new, empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    /// A transport for one more server, with heartbeat liveness.
    pub fn transport(&self) -> MemoryTransport {
        self.transport_with(Liveness::Heartbeat)
    }

    /// A transport with the given liveness mode ([`Liveness::Subscribers`] counts the servers
    /// attached to a namespace, like `PUBSUB NUMSUB`).
    pub fn transport_with(&self, liveness: Liveness) -> MemoryTransport {
        MemoryTransport {
            hub: self.clone(),
            id: self.0.next_id.fetch_add(1, Ordering::Relaxed),
            liveness,
            dead: Arc::new(AtomicBool::new(false)),
        }
    }

    fn members(&self) -> std::sync::MutexGuard<'_, Vec<Member>> {
        self.0.members.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn send(&self, from: u64, message: &ClusterMessage, to: impl Fn(&Member) -> bool) {
        // through the codec, as on a real wire
        let bytes = message.to_msgpack();
        let Ok(decoded) = ClusterMessage::decode(&bytes, Dialect::Cluster, &Limits::DEFAULT) else {
            return;
        };
        for m in self
            .members()
            .iter()
            .filter(|m| m.transport != from && m.nsp == message.nsp && to(m))
        {
            m.inbox.deliver(decoded.clone());
        }
    }
}

/// One server's in-memory transport.
#[derive(Clone)]
pub struct MemoryTransport {
    hub: MemoryHub,
    id: u64,
    liveness: Liveness,
    dead: Arc<AtomicBool>,
}

impl MemoryTransport {
    /// Simulates a crash: from now on nothing this server sends goes out and nothing reaches it,
    /// and it says no goodbye (no ADAPTER_CLOSE reaches the others).
    pub fn crash(&self) {
        self.dead.store(true, Ordering::SeqCst);
        self.hub.members().retain(|m| m.transport != self.id);
    }
}

impl Transport for MemoryTransport {
    type Link = MemoryLink;

    async fn attach(&self, attach: Attach) -> Result<MemoryLink, TransportError> {
        if self.dead.load(Ordering::SeqCst) {
            return Err(TransportError::new(TransportErrorKind::Closed, "crashed"));
        }
        self.hub.members().push(Member {
            transport: self.id,
            nsp: attach.nsp.clone(),
            uid: attach.uid.clone(),
            inbox: attach.inbox,
        });
        Ok(MemoryLink {
            transport: self.clone(),
            nsp: attach.nsp,
            uid: attach.uid,
        })
    }
}

/// A namespace on the in-memory bus.
pub struct MemoryLink {
    transport: MemoryTransport,
    nsp: String,
    uid: String,
}

impl MemoryLink {
    fn check(&self) -> Result<(), TransportError> {
        if self.transport.dead.load(Ordering::SeqCst) {
            Err(TransportError::new(
                TransportErrorKind::Disconnected,
                "crashed",
            ))
        } else {
            Ok(())
        }
    }
}

impl Link for MemoryLink {
    fn publish(&self, message: ClusterMessage) -> Result<(), TransportError> {
        self.check()?;
        self.transport
            .hub
            .send(self.transport.id, &message, |_| true);
        Ok(())
    }

    fn publish_to(&self, node: &str, message: ClusterMessage) -> Result<(), TransportError> {
        self.check()?;
        self.transport
            .hub
            .send(self.transport.id, &message, |m| m.uid == node);
        Ok(())
    }

    fn liveness(&self) -> Liveness {
        self.transport.liveness
    }

    async fn server_count(&self) -> Result<usize, TransportError> {
        self.check()?;
        Ok(self
            .transport
            .hub
            .members()
            .iter()
            .filter(|m| m.nsp == self.nsp)
            .count())
    }

    async fn close(&self) -> Result<(), TransportError> {
        let (id, uid) = (self.transport.id, &self.uid);
        self.transport
            .hub
            .members()
            .retain(|m| !(m.transport == id && m.nsp == self.nsp && &m.uid == uid));
        Ok(())
    }
}
