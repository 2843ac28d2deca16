//! The engine's life, driven through socketioxide's `CoreAdapter` trait directly: a close that
//! lands while `init()` is still attaching wins.

use std::{sync::Arc, time::Duration};

use socketioxide_core::{
    Sid, Str, Uid, Value,
    adapter::{
        BroadcastIter, CoreAdapter, CoreLocalAdapter, RemoteSocketData, SocketEmitter,
        errors::SocketError,
    },
    packet::Packet,
    parser::Parse,
};
use socketioxide_parser_common::CommonParser;
use switchboard_adapter_core::{
    AdapterOptions, Attach, ClusterAdapter, ClusterState, Error, Transport, TransportError,
    memory::{MemoryHub, MemoryLink, MemoryTransport},
};
use switchboard_testkit::MemoryPeer;
use switchboard_wire::MessageType;
use tokio::sync::Notify;

/// A namespace without sockets.
struct NoSockets(Str);

#[derive(Debug, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("no ack")]
struct NoAck;

impl SocketEmitter for NoSockets {
    type AckError = NoAck;
    type AckStream = futures_util::stream::Empty<(Sid, Result<Value, NoAck>)>;

    fn get_all_sids(&self, _: impl Fn(&Sid) -> bool) -> Vec<Sid> {
        Vec::new()
    }
    fn get_remote_sockets(&self, _: BroadcastIter<'_>) -> Vec<RemoteSocketData> {
        Vec::new()
    }
    fn send_many(&self, _: BroadcastIter<'_>, _: Value) -> Result<(), Vec<SocketError>> {
        Ok(())
    }
    fn send_many_volatile(&self, _: BroadcastIter<'_>, _: Value) {}
    fn send_many_with_ack(
        &self,
        _: BroadcastIter<'_>,
        _: Packet,
        _: Option<Duration>,
    ) -> (Self::AckStream, u32) {
        (futures_util::stream::empty(), 0)
    }
    fn disconnect_many(&self, _: Vec<Sid>) -> Result<(), Vec<SocketError>> {
        Ok(())
    }
    fn path(&self) -> &Str {
        &self.0
    }
    fn parser(&self) -> impl Parse {
        CommonParser
    }
    fn server_id(&self) -> Uid {
        Uid::ZERO
    }
    fn ack_timeout(&self) -> Duration {
        Duration::from_secs(5)
    }
}

/// The in-memory transport, whose `attach` waits until the test opens the gate.
#[derive(Clone)]
struct Gated {
    memory: MemoryTransport,
    entered: Arc<Notify>,
    gate: Arc<Notify>,
}

impl Transport for Gated {
    type Link = MemoryLink;

    async fn attach(&self, attach: Attach) -> Result<MemoryLink, TransportError> {
        self.entered.notify_one();
        self.gate.notified().await;
        self.memory.attach(attach).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_during_init_wins() {
    let hub = MemoryHub::new();
    let mut peer = MemoryPeer::join(&hub, "/", "00000000000000ff").await;
    let transport = Gated {
        memory: hub.transport(),
        entered: Arc::new(Notify::new()),
        gate: Arc::new(Notify::new()),
    };
    let state = ClusterState::new(transport.clone(), AdapterOptions::default());
    let adapter = Arc::new(ClusterAdapter::<NoSockets, Gated>::new(
        &state,
        CoreLocalAdapter::new(NoSockets(Str::from("/"))),
    ));
    let init = tokio::spawn(adapter.clone().init(|| {}));
    transport.entered.notified().await;
    // the namespace is closed while its transport is still attaching
    CoreAdapter::close(&*adapter)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    transport.gate.notify_one();
    let result = tokio::time::timeout(Duration::from_secs(10), init)
        .await
        .unwrap_or_else(|_| panic!("init returns"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(result, Err(Error::Closed)), "{result:?}");
    // nothing started: no INITIAL_HEARTBEAT went out (delivery on the bus is immediate), the
    // namespace was never registered
    let sent = peer.recv(Duration::ZERO).await;
    assert!(
        sent.as_ref()
            .is_none_or(|m| m.message_type() != MessageType::InitialHeartbeat),
        "{sent:?}"
    );
    assert!(matches!(
        state.server_side().of("/").emit("x", &()),
        Err(Error::UnknownNamespace(_))
    ));
}
