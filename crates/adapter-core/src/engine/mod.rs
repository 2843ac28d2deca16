//! The engine: socketioxide's `CoreAdapter` implemented once, over any [`Transport`].
//!
//! Semantics follow Node's `ClusterAdapterWithHeartbeat` (or plain `ClusterAdapter` when the
//! transport counts subscribers): one publish enqueued (never awaited), then the local delivery,
//! always.

mod ack_stream;
mod incoming;
mod nodes;
mod requests;
mod sockets;

use std::{
    collections::BTreeSet,
    future::Future,
    pin::Pin,
    str::FromStr,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use futures_core::future::BoxFuture;
use socketioxide_core::{
    Sid,
    adapter::{
        BroadcastOptions, CoreAdapter, CoreLocalAdapter, DefinedAdapter, RemoteSocketData, Room,
        RoomParam, SocketEmitter, Spawnable,
        errors::{AdapterError, BroadcastError},
    },
    packet::Packet,
    parser::Parse,
};
use switchboard_wire::{Body, ClusterMessage, Opts, SocketDetails, Value};
use tokio::{sync::mpsc, task::JoinSet};

pub use ack_stream::AckStream;
use nodes::Nodes;
use requests::{Collected, Reply, Requests, Waiting};

use crate::{
    AdapterOptions, Attach, ClusterState, Error, Inbox, Link, Liveness, Partial, Transport,
    UidScope,
    bridge::{self, ParserKind},
    ids::Aliases,
    state::{NamespaceOps, Registry},
};

/// A cluster adapter for socketioxide over transport `T`.
///
/// Build the state with [`ClusterState::new`] and plug it in with
/// `SocketIo::builder().with_adapter::<ClusterAdapter<_, T>>(state)`.
pub struct ClusterAdapter<E, T: Transport> {
    local: CoreLocalAdapter<E>,
    transport: Arc<T>,
    config: AdapterOptions,
    registry: Arc<Registry>,
    nsp: String,
    uid: String,
    parser: ParserKind,
    link: OnceLock<Arc<T::Link>>,
    inbox: Mutex<Option<(Inbox, mpsc::Receiver<ClusterMessage>)>>,
    nodes: Nodes,
    requests: Arc<Requests>,
    aliases: Aliases,
    last_publish: Mutex<Instant>,
    closed: AtomicBool,
    /// The receive loop, the heartbeat timer and the ack forwarders: one owner, aborted on close
    /// and on drop. `closed` changes only under this lock, so nothing is spawned after a close.
    tasks: Mutex<JoinSet<()>>,
}

/// The future of [`CoreAdapter::init`]: await it, or let socketioxide spawn it.
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct InitRes(BoxFuture<'static, Result<(), Error>>);

impl Future for InitRes {
    type Output = Result<(), Error>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx)
    }
}

impl Spawnable for InitRes {
    fn spawn(self) {
        tokio::spawn(async move {
            if let Err(e) = self.0.await {
                tracing::error!(
                    "could not initialise the cluster adapter: {}",
                    crate::report(&e)
                );
            }
        });
    }
}

impl<E: SocketEmitter, T: Transport> ClusterAdapter<E, T> {
    /// This node's uid for the namespace, as other nodes see it.
    pub fn uid(&self) -> &str {
        &self.uid
    }

    /// Requests (fetchSockets, serverSideEmit, broadcasts with acks) still awaiting answers: they
    /// are removed on completion, timeout or when their caller gives up.
    pub fn pending_requests(&self) -> usize {
        self.requests.len()
    }

    fn link(&self) -> Result<&Arc<T::Link>, Error> {
        self.link
            .get()
            .ok_or(if self.closed.load(Ordering::SeqCst) {
                Error::Closed
            } else {
                Error::NotInitialised
            })
    }

    fn liveness(&self) -> Liveness {
        self.link
            .get()
            .map_or(Liveness::Heartbeat, |l| l.liveness())
    }

    fn metrics(&self) -> Option<&crate::Metrics> {
        self.config.metrics.as_ref()
    }

    fn publish(&self, body: Body) -> Result<(), Error> {
        let link = self.link()?;
        let kind = body.message_type();
        *self.last_publish.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        link.publish(ClusterMessage::new(&self.uid, &self.nsp, body))?;
        if let Some(m) = self.metrics() {
            m.sent(kind);
        }
        Ok(())
    }

    fn respond(&self, to: &str, body: Body) {
        let kind = body.message_type();
        match self
            .link()
            .map(|l| l.publish_to(to, ClusterMessage::new(&self.uid, &self.nsp, body)))
        {
            Ok(Ok(())) => {
                if let Some(m) = self.metrics() {
                    m.sent(kind);
                }
            }
            Ok(Err(e)) => {
                tracing::debug!(nsp = %self.nsp, to, "could not send a response: {}", crate::report(&e))
            }
            Err(_) => {}
        }
    }

    /// Who must answer a request sent now.
    async fn waiting(&self) -> Result<Waiting, Error> {
        match self.liveness() {
            Liveness::Heartbeat => Ok(Waiting::Nodes(self.nodes.alive())),
            Liveness::Subscribers => {
                let count = self.link()?.server_count().await?;
                Ok(Waiting::Count(count.saturating_sub(1)))
            }
        }
    }

    /// Whether `opts` target one socket on another node (a socket from fetchSockets).
    fn remote_target(&self, opts: &BroadcastOptions) -> bool {
        opts.server_id.is_some_and(|u| u != self.local.server_id())
    }

    /// Wire options for socketioxide's, with aliases mapped back to the original ids.
    fn wire_opts(&self, opts: &BroadcastOptions, timeout: Option<Duration>) -> Opts {
        let mut wire = bridge::opts_to_wire(opts, timeout);
        if let Some(sid) = opts.sid {
            let original = self.aliases.original_sid(sid);
            let own = sid.to_string();
            for r in wire.rooms.iter_mut().chain(wire.except.iter_mut()) {
                if *r == own {
                    r.clone_from(&original);
                }
            }
        }
        wire
    }

    /// socketioxide does not put a socket in the room named by its id, as Node does; Node peers
    /// target single sockets that way. Registers such rooms for local sockets named in `rooms`
    /// (they go away with the socket, in `del_all`).
    fn ensure_sid_rooms<'a>(&self, rooms: impl Iterator<Item = &'a str>) {
        for room in rooms {
            let Ok(sid) = Sid::from_str(room) else {
                continue;
            };
            let exists = !self
                .local
                .fetch_sockets(BroadcastOptions::new(sid))
                .is_empty();
            if exists && !self.local.socket_rooms(sid).iter().any(|r| r == room) {
                self.local.add_all(sid, [room.to_owned()]);
            }
        }
    }

    fn ensure_sid_rooms_of(&self, opts: &BroadcastOptions) {
        self.ensure_sid_rooms(
            opts.rooms
                .iter()
                .chain(opts.except.iter())
                .map(|r| r.as_ref()),
        );
    }

    /// socketsJoin (`join`) or socketsLeave: applied locally unless the target is one remote
    /// socket, published unless local.
    fn join_or_leave(
        &self,
        join: bool,
        opts: BroadcastOptions,
        rooms: Vec<Room>,
    ) -> Result<(), Error> {
        if !self.remote_target(&opts) {
            self.ensure_sid_rooms_of(&opts);
            if join {
                self.local.add_sockets(opts.clone(), rooms.clone());
            } else {
                self.local.del_sockets(opts.clone(), rooms.clone());
            }
        }
        if !opts.is_local(self.local.server_id()) {
            let wire = self.wire_opts(&opts, None);
            let rooms = rooms.iter().map(|r| r.to_string()).collect();
            self.publish(if join {
                Body::SocketsJoin { opts: wire, rooms }
            } else {
                Body::SocketsLeave { opts: wire, rooms }
            })?;
        }
        Ok(())
    }

    /// [`Self::ensure_sid_rooms`] for the rooms and except of received options.
    fn ensure_sid_rooms_wire(&self, opts: &Opts) {
        self.ensure_sid_rooms(
            opts.rooms
                .iter()
                .chain(opts.except.iter())
                .map(String::as_str),
        );
    }

    /// Sends a request and collects one reply per awaited node.
    async fn request(
        &self,
        kind: &str,
        body: impl FnOnce(String) -> Body,
        timeout: Duration,
    ) -> Result<Collected, Error> {
        let started = Instant::now();
        let waiting = self.waiting().await?;
        if waiting.expected() == 0 {
            return Ok(Collected {
                replies: Vec::new(),
                expected: 0,
                complete: true,
            });
        }
        let id = switchboard_wire::ids::random_uid();
        let (guard, done) = self.requests.collect(&id, waiting)?;
        self.publish(body(id.clone()))?;
        let _ = tokio::time::timeout(timeout, done).await;
        let collected = self.requests.take(&id);
        drop(guard);
        if let Some(m) = self.metrics() {
            m.request(kind, started.elapsed().as_secs_f64());
        }
        Ok(collected)
    }

    /// Remote sockets matching `opts`: `Ok` when every node answered, `Err` with what arrived.
    async fn fetch_remote(
        &self,
        kind: &str,
        opts: &BroadcastOptions,
    ) -> Result<
        Result<Vec<(String, SocketDetails)>, (Vec<(String, SocketDetails)>, usize, usize)>,
        Error,
    > {
        let timeout = self.config.requests_timeout;
        let wire = self.wire_opts(opts, Some(timeout));
        let collected = self
            .request(
                kind,
                |id| Body::FetchSockets {
                    opts: wire,
                    request_id: id,
                },
                timeout,
            )
            .await?;
        let answered = collected.replies.len();
        let sockets: Vec<(String, SocketDetails)> = collected
            .replies
            .into_iter()
            .flat_map(|(uid, reply)| match reply {
                Reply::Sockets(s) => s.into_iter().map(|d| (uid.clone(), d)).collect(),
                Reply::Value(_) => Vec::new(),
            })
            .collect();
        Ok(if collected.complete {
            Ok(sockets)
        } else {
            Err((sockets, answered, collected.expected))
        })
    }

    fn to_remote_data(&self, uid: &str, details: &SocketDetails) -> RemoteSocketData {
        RemoteSocketData {
            id: self.aliases.sid(&details.id, uid),
            server_id: self.aliases.uid(uid),
            ns: self.local.path().clone(),
        }
    }

    /// The remote half of a broadcast with acks: registers the request and publishes it. `None`
    /// when no other server is there to answer.
    async fn request_acks(
        &self,
        packet: &Packet,
        opts: &BroadcastOptions,
        timeout: Duration,
    ) -> Result<Option<(Waiting, requests::AckRequest)>, Error> {
        let wire = bridge::packet_to_wire(packet, &self.config.limits)?;
        let waiting = self.waiting().await?;
        if waiting.expected() == 0 {
            return Ok(None);
        }
        let id = switchboard_wire::ids::random_uid();
        let remote = self.requests.acks(&id)?;
        self.publish(Body::Broadcast {
            packet: wire,
            request_id: Some(id),
            opts: self.wire_opts(opts, Some(timeout)),
        })?;
        Ok(Some((waiting, remote)))
    }

    fn node_gone(&self, uid: &str) {
        tracing::debug!(nsp = %self.nsp, uid, "node gone");
        self.requests.node_gone(uid);
        self.aliases.forget_node(uid);
    }

    fn tasks(&self) -> std::sync::MutexGuard<'_, JoinSet<()>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `fut` as one of the adapter's tasks; not once the adapter is closed.
    pub(super) fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        let mut tasks = self.tasks();
        while tasks.try_join_next().is_some() {}
        if !self.closed.load(Ordering::SeqCst) {
            tasks.spawn(fut);
        }
    }

    /// Starts the receive loop and the heartbeat timer into `tasks` (the lock held by init).
    fn start(self: &Arc<Self>, tasks: &mut JoinSet<()>, rx: mpsc::Receiver<ClusterMessage>) {
        let weak = Arc::downgrade(self);
        tasks.spawn(async move {
            let mut rx = rx;
            while let Some(message) = rx.recv().await {
                let Some(adapter) = weak.upgrade() else { break };
                adapter.handle(message);
            }
        });
        if self.liveness() == Liveness::Heartbeat {
            let weak = Arc::downgrade(self);
            let interval = self.config.heartbeat_interval;
            let timeout = self.config.heartbeat_timeout;
            let tick = (interval / 2)
                .min(timeout / 4)
                .min(Duration::from_secs(1))
                .max(Duration::from_millis(5));
            tasks.spawn(async move {
                let mut ticker = tokio::time::interval(tick);
                let mut sampled = Instant::now() - Duration::from_secs(5);
                loop {
                    ticker.tick().await;
                    let Some(adapter) = weak.upgrade() else { break };
                    if let Some(m) = adapter.metrics()
                        && sampled.elapsed() >= Duration::from_secs(5)
                    {
                        sampled = Instant::now();
                        let mut all = BroadcastOptions::default();
                        all.add_flag(socketioxide_core::adapter::BroadcastFlags::Broadcast);
                        m.clients(&adapter.nsp, adapter.local.sockets(all).len());
                    }
                    let idle = adapter
                        .last_publish
                        .lock()
                        .map(|t| t.elapsed())
                        .unwrap_or_default();
                    if idle >= interval {
                        let _ = adapter.publish(Body::Heartbeat);
                    }
                    for dead in adapter.nodes.prune(timeout) {
                        adapter.node_gone(&dead);
                    }
                    if let Some(m) = adapter.metrics() {
                        m.nodes(&adapter.nsp, adapter.nodes.count());
                    }
                }
            });
        }
    }
}

impl<E: SocketEmitter, T: Transport> CoreAdapter<E> for ClusterAdapter<E, T> {
    type Error = Error;
    type State = ClusterState<T>;
    type AckStream = AckStream<E>;
    type InitRes = InitRes;

    fn new(state: &Self::State, local: CoreLocalAdapter<E>) -> Self {
        let uid = match state.transport.uid_scope() {
            UidScope::PerNamespace => switchboard_wire::ids::random_uid(),
            UidScope::Process(uid) => uid,
        };
        let parser = local
            .parser()
            .encode_value(&0u8, Some("probe"))
            .map(|v| ParserKind::of(&v))
            .unwrap_or_default();
        let (inbox, rx) = Inbox::new(state.config.inbox_capacity, state.config.metrics.clone());
        ClusterAdapter {
            nsp: local.path().to_string(),
            local,
            transport: state.transport.clone(),
            config: state.config.clone(),
            registry: state.registry.clone(),
            uid,
            parser,
            link: OnceLock::new(),
            inbox: Mutex::new(Some((inbox, rx))),
            nodes: Nodes::default(),
            requests: Requests::new(state.config.max_pending_requests),
            aliases: Aliases::new(state.config.max_aliases),
            last_publish: Mutex::new(Instant::now()),
            closed: AtomicBool::new(false),
            tasks: Mutex::new(JoinSet::new()),
        }
    }

    fn init(self: Arc<Self>, on_success: impl FnOnce() + Send + 'static) -> Self::InitRes {
        InitRes(Box::pin(async move {
            let taken = self.inbox.lock().unwrap_or_else(|e| e.into_inner()).take();
            let Some((inbox, rx)) = taken else {
                return Err(Error::Closed);
            };
            let link = self
                .transport
                .attach(Attach {
                    nsp: self.nsp.clone(),
                    uid: self.uid.clone(),
                    inbox,
                    #[cfg(feature = "prometheus")]
                    metrics: self.config.metrics.clone(),
                })
                .await?;
            let link = Arc::new(link);
            {
                // a close that came while attaching wins: nothing starts, the link is let go
                let mut tasks = self.tasks();
                if !self.closed.load(Ordering::SeqCst) {
                    let _ = self.link.set(link.clone());
                    self.start(&mut tasks, rx);
                    let ops: Arc<dyn NamespaceOps> = self.clone();
                    self.registry.register(&self.nsp, Arc::downgrade(&ops));
                    drop(tasks);
                    if self.liveness() == Liveness::Heartbeat {
                        self.publish(Body::InitialHeartbeat)?;
                    }
                    on_success();
                    return Ok(());
                }
            }
            if let Err(e) = link.close().await {
                tracing::debug!("closing the transport link: {}", crate::report(&e));
            }
            Err(Error::Closed)
        }))
    }

    fn close(&self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        // All the work happens here, not in the future: socketioxide may poll it only once.
        let tasks = {
            let mut tasks = self.tasks();
            (!self.closed.swap(true, Ordering::SeqCst)).then(|| std::mem::take(&mut *tasks))
        };
        if let Some(tasks) = tasks {
            // dropping the set aborts the receive loop, the heartbeat timer and ack forwarders
            drop(tasks);
            if self.liveness() == Liveness::Heartbeat {
                let _ = self.publish(Body::AdapterClose);
            }
            self.registry.unregister(&self.nsp);
            if let Some(link) = self.link.get().cloned() {
                tokio::spawn(async move {
                    if let Err(e) = link.close().await {
                        tracing::debug!("closing the transport link: {}", crate::report(&e));
                    }
                });
            }
        }
        std::future::ready(Ok(()))
    }

    async fn server_count(&self) -> Result<u16, Self::Error> {
        let count = match self.liveness() {
            Liveness::Heartbeat => 1 + self.nodes.count(),
            Liveness::Subscribers => self.link()?.server_count().await?.max(1),
        };
        if let Some(m) = self.metrics() {
            m.nodes(&self.nsp, count - 1);
        }
        Ok(u16::try_from(count).unwrap_or(u16::MAX))
    }

    async fn broadcast(
        &self,
        packet: Packet,
        opts: BroadcastOptions,
    ) -> Result<(), BroadcastError> {
        let remote_target = self.remote_target(&opts);
        let publish = !opts.is_local(self.local.server_id());
        // convert once for the wire, before the local delivery consumes the packet
        let wire = if publish {
            Some(bridge::packet_to_wire(&packet, &self.config.limits))
        } else {
            None
        };
        // publish first: enqueueing costs little, and remote clients do not wait for the local
        // fan-out; the local delivery happens whatever the publish did
        let sent = wire.map(|wire| {
            wire.map_err(Error::from).and_then(|packet| {
                self.publish(Body::Broadcast {
                    packet,
                    request_id: None,
                    opts: self.wire_opts(&opts, None),
                })
            })
        });
        let local = if remote_target {
            Ok(())
        } else {
            self.ensure_sid_rooms_of(&opts);
            self.local.broadcast(packet, opts)
        };
        if let Some(Err(e)) = sent {
            local?;
            return Err(BroadcastError::Adapter(AdapterError::from(e)));
        }
        local.map_err(BroadcastError::from)
    }

    async fn broadcast_with_ack(
        &self,
        packet: Packet,
        opts: BroadcastOptions,
        timeout: Option<Duration>,
    ) -> Result<Self::AckStream, Self::Error> {
        let timeout = timeout.unwrap_or_else(|| self.local.ack_timeout());
        let deadline = tokio::time::sleep(timeout);
        // as in `broadcast`: the request goes out first, then the local delivery, which happens
        // whatever the remote half did; a remote failure leaves the caller its local acks
        let remote = if opts.is_local(self.local.server_id()) {
            Ok(None)
        } else {
            self.request_acks(&packet, &opts, timeout).await
        };
        let local = if self.remote_target(&opts) {
            // no local socket is targeted: options without rooms, sid or flag match nobody
            self.local
                .broadcast_with_ack(packet, BroadcastOptions::default(), Some(timeout))
                .0
        } else {
            self.ensure_sid_rooms_of(&opts);
            self.local.broadcast_with_ack(packet, opts, Some(timeout)).0
        };
        let (waiting, remote) = match remote {
            Ok(Some((waiting, remote))) => (waiting, Some(remote)),
            Ok(None) => (Waiting::Count(0), None),
            Err(e) => {
                tracing::warn!(
                    nsp = %self.nsp,
                    "a broadcast with acks reached this server's clients only: {}",
                    crate::report(&e)
                );
                if let Some(m) = self.metrics() {
                    m.dropped("broadcast_with_ack_unsent");
                }
                (Waiting::Count(0), None)
            }
        };
        let stream = AckStream::new(local, remote, waiting, deadline, self.parser);
        Ok(match self.metrics() {
            Some(m) if stream.waits_remotely() => stream.timed(m.clone()),
            _ => stream,
        })
    }

    async fn add_sockets(
        &self,
        opts: BroadcastOptions,
        rooms: impl RoomParam,
    ) -> Result<(), Self::Error> {
        self.join_or_leave(true, opts, rooms.into_room_iter().collect())
    }

    async fn del_sockets(
        &self,
        opts: BroadcastOptions,
        rooms: impl RoomParam,
    ) -> Result<(), Self::Error> {
        self.join_or_leave(false, opts, rooms.into_room_iter().collect())
    }

    async fn disconnect_socket(&self, opts: BroadcastOptions) -> Result<(), BroadcastError> {
        let local = if self.remote_target(&opts) {
            Ok(())
        } else {
            self.ensure_sid_rooms_of(&opts);
            self.local.disconnect_socket(opts.clone())
        };
        if !opts.is_local(self.local.server_id())
            && let Err(e) = self.publish(Body::DisconnectSockets {
                opts: self.wire_opts(&opts, None),
                close: Some(false),
            })
        {
            local.map_err(BroadcastError::Socket)?;
            return Err(BroadcastError::Adapter(AdapterError::from(e)));
        }
        local.map_err(BroadcastError::Socket)
    }

    async fn rooms(&self, opts: BroadcastOptions) -> Result<Vec<Room>, Self::Error> {
        self.ensure_sid_rooms_of(&opts);
        let mut rooms: BTreeSet<String> = self
            .local
            .rooms(opts.clone())
            .into_iter()
            .map(|r| r.to_string())
            .collect();
        // Node puts every socket in the room of its own id, and other servers answer with those
        // rooms: so does this one for its own sockets
        rooms.extend(
            self.local
                .sockets(opts.clone())
                .into_iter()
                .map(|sid| sid.to_string()),
        );
        if opts.is_local(self.local.server_id()) {
            return Ok(rooms.into_iter().map(Room::from).collect());
        }
        match self.fetch_remote("allRooms", &opts).await? {
            Ok(sockets) => {
                rooms.extend(sockets.into_iter().flat_map(|(_, s)| s.rooms));
                Ok(rooms.into_iter().map(Room::from).collect())
            }
            Err((sockets, answered, expected)) => {
                rooms.extend(sockets.into_iter().flat_map(|(_, s)| s.rooms));
                Err(Error::Timeout {
                    answered,
                    expected,
                    partial: Partial::Rooms(rooms.into_iter().collect()),
                })
            }
        }
    }

    async fn fetch_sockets(
        &self,
        opts: BroadcastOptions,
    ) -> Result<Vec<RemoteSocketData>, Self::Error> {
        let remote_target = self.remote_target(&opts);
        let mut sockets = if remote_target {
            Vec::new()
        } else {
            self.ensure_sid_rooms_of(&opts);
            self.local.fetch_sockets(opts.clone())
        };
        if opts.is_local(self.local.server_id()) {
            return Ok(sockets);
        }
        match self.fetch_remote("fetchSockets", &opts).await? {
            Ok(remote) => {
                sockets.extend(remote.iter().map(|(uid, d)| self.to_remote_data(uid, d)));
                Ok(sockets)
            }
            Err((remote, answered, expected)) => {
                sockets.extend(remote.iter().map(|(uid, d)| self.to_remote_data(uid, d)));
                Err(Error::Timeout {
                    answered,
                    expected,
                    partial: Partial::Sockets(sockets),
                })
            }
        }
    }

    fn get_local(&self) -> &CoreLocalAdapter<E> {
        &self.local
    }
}

impl<E, T: Transport> DefinedAdapter for ClusterAdapter<E, T> {}

impl<E: SocketEmitter, T: Transport> NamespaceOps for ClusterAdapter<E, T> {
    fn server_side_emit(&self, packet: Vec<Value>) -> Result<(), Error> {
        self.publish(Body::ServerSideEmit {
            request_id: None,
            packet,
        })
    }

    fn server_side_emit_with_ack(
        &self,
        packet: Vec<Value>,
    ) -> BoxFuture<'_, Result<Vec<Value>, Error>> {
        Box::pin(async move {
            let collected = self
                .request(
                    "serverSideEmit",
                    |id| Body::ServerSideEmit {
                        request_id: Some(id),
                        packet,
                    },
                    self.config.requests_timeout,
                )
                .await?;
            let answered = collected.replies.len();
            let replies: Vec<Value> = collected
                .replies
                .into_iter()
                .filter_map(|(_, r)| match r {
                    Reply::Value(v) => Some(v),
                    Reply::Sockets(_) => None,
                })
                .collect();
            if collected.complete {
                Ok(replies)
            } else {
                Err(Error::Timeout {
                    answered,
                    expected: collected.expected,
                    partial: Partial::Replies(replies),
                })
            }
        })
    }

    fn count_servers(&self) -> BoxFuture<'_, Result<usize, Error>> {
        Box::pin(async move { Ok(usize::from(CoreAdapter::server_count(self).await?)) })
    }

    fn live_sockets(&self) -> std::collections::HashSet<Sid> {
        self.local_sids()
    }

    fn fetch_details(&self, rooms: Vec<String>) -> BoxFuture<'_, crate::sockets::Fetched> {
        Box::pin(self.details_everywhere(rooms))
    }

    fn socket_op(&self, id: &str, op: crate::sockets::SocketOp) -> Result<(), Error> {
        self.op_on_socket(id, op)
    }
}
