//! A raw node on the in-memory bus: it sends and receives cluster messages itself, to play a
//! Node server or an emitter in tests, byte for byte what they would send.

use std::time::Duration;

use switchboard_adapter_core::{
    Attach, Inbox, Link, Transport,
    memory::{MemoryHub, MemoryLink, MemoryTransport},
};
use switchboard_wire::{Body, ClusterMessage};
use tokio::sync::mpsc;

/// A participant on a [`MemoryHub`] that is not a socketioxide server.
pub struct MemoryPeer {
    transport: MemoryTransport,
    link: MemoryLink,
    nsp: String,
    uid: String,
    rx: mpsc::Receiver<ClusterMessage>,
}

impl MemoryPeer {
    /// Joins `hub` with uid `uid` on namespace `nsp`.
    pub async fn join(hub: &MemoryHub, nsp: &str, uid: &str) -> Self {
        let (inbox, rx) = Inbox::detached(4096);
        let transport = hub.transport();
        let link = transport
            .attach(Attach::new(nsp, uid, inbox))
            .await
            .unwrap_or_else(|e| panic!("a fresh in-memory transport attaches: {e}"));
        MemoryPeer {
            transport,
            link,
            nsp: nsp.to_owned(),
            uid: uid.to_owned(),
            rx,
        }
    }

    /// A message from this peer with `body`.
    pub fn message(&self, body: Body) -> ClusterMessage {
        ClusterMessage::new(&self.uid, &self.nsp, body)
    }

    /// Sends to every other member of the namespace.
    pub fn publish(&self, body: Body) {
        let _ = self.link.publish(self.message(body));
    }

    /// Sends to the member with uid `node` only.
    pub fn publish_to(&self, node: &str, body: Body) {
        let _ = self.link.publish_to(node, self.message(body));
    }

    /// The next message that reaches this peer within `within`.
    pub async fn recv(&mut self, within: Duration) -> Option<ClusterMessage> {
        tokio::time::timeout(within, self.rx.recv())
            .await
            .ok()
            .flatten()
    }

    /// The next message matching `pred` within `within`, skipping others (heartbeats…).
    pub async fn expect(
        &mut self,
        within: Duration,
        pred: impl Fn(&ClusterMessage) -> bool,
    ) -> Option<ClusterMessage> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let m = self.recv(left).await?;
            if pred(&m) {
                return Some(m);
            }
        }
    }

    /// Leaves the bus silently (a crash).
    pub fn vanish(self) {}
}

impl Drop for MemoryPeer {
    fn drop(&mut self) {
        // leaves the bus at once, without a goodbye
        self.transport.crash();
    }
}
